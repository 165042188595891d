/* Each kernel family contributes a self-check: run its kernels once on random data at a few shapes
 * and report each comparison with the CPU reference through emit(). */
#ifndef VKLLM_SELFCHECK_INTERNAL_H
#define VKLLM_SELFCHECK_INTERNAL_H
#include "vkllm/selfcheck.h"

typedef struct vkllm_selfcheck_sink {
    vkllm_selfcheck_cb cb;
    void *user;
    uint64_t seed;
    int n_run, n_failed;
} vkllm_selfcheck_sink;

/* Records one result (sets pass and message from nmse/bound) and forwards it. */
void vkllm_selfcheck_emit(vkllm_selfcheck_sink *sink, vkllm_selfcheck_result *r);

/* One per family; each returns a status only if it could not run (device error). */
typedef vkllm_status (*vkllm_selfcheck_family)(vkllm_device *dev, vkllm_selfcheck_sink *sink);
#endif
