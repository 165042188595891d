/* Self-check: every kernel of this build run once on fresh random data and compared with its CPU
 * reference (host/ref) by NMSE, with NaN-poisoned outputs. `vkllm info` prints it. */
#ifndef VKLLM_SELFCHECK_H
#define VKLLM_SELFCHECK_H

#include <stdint.h>

#include "vkllm/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkllm_selfcheck_result {
    const char *kernel;  /* module name, e.g. "rope_neox" */
    char shape[96];      /* what was run, e.g. "n=5120 rows=4" */
    double nmse, bound;
    int pass;
    char message[256];   /* why it failed, if it did ("" otherwise) */
} vkllm_selfcheck_result;

typedef void (*vkllm_selfcheck_cb)(const vkllm_selfcheck_result *r, void *user);

/* Runs every check, calling cb (may be NULL) after each. *n_failed gets the failures. Returns a
 * status only if the checks could not be run at all (device errors); a wrong result is a failure,
 * not an error status. */
vkllm_status vkllm_selfcheck(vkllm_device *dev, uint64_t seed, vkllm_selfcheck_cb cb, void *user, int *n_run, int *n_failed);

#ifdef __cplusplus
}
#endif
#endif
