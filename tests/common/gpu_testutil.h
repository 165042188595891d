/* GPU test helpers: a device under validation that must end with zero validation errors, and
 * float buffers with NaN-poisoned contents and guard words after them. */
#ifndef VKLLM_GPU_TESTUTIL_H
#define VKLLM_GPU_TESTUTIL_H

#include "testutil.h"
#include "vkllm/chain.h"
#include "vkllm/device.h"
#include "vkllm/ops.h"
#include "vkllm/pool.h"

#define TU_GUARD_WORDS 64u
#define TU_GUARD 0xDEADBEEFu
#define TU_NAN_BITS 0x7FC00000u

/* Opens the device for a test (validation per VKLLM_VALIDATE, which ctest sets); fails the test
 * with the device's message if it cannot. */
vkllm_device *tu_device_open(void);
/* Fails if the validation layer reported anything, then destroys the device. */
void tu_device_close(vkllm_device *dev);

/* A device buffer of n floats followed by TU_GUARD_WORDS guard words. */
typedef struct tu_fbuf {
    vkllm_buffer buf;
    size_t n;
} tu_fbuf;
tu_fbuf tu_fbuf_alloc(vkllm_device *dev, size_t n);
/* Uploads host floats into the buffer (and resets the guard words). */
void tu_fbuf_upload(vkllm_device *dev, tu_fbuf *b, const float *src);
/* Fills the data with NaN and the guard with TU_GUARD. */
void tu_fbuf_poison(vkllm_device *dev, tu_fbuf *b);
/* Downloads the data; fails the test if any guard word changed (an out-of-bounds write). */
void tu_fbuf_download(vkllm_device *dev, const tu_fbuf *b, float *dst);
void tu_fbuf_free(vkllm_device *dev, tu_fbuf *b);
/* The output of a y = op(..) + r test: NaN everywhere, except, when res is given (an in-place
 * y += op(..)), the first n elements of each of the n_vec vectors (stride elements apart), which
 * hold res's. */
void tu_fbuf_init_output(vkllm_device *dev, tu_fbuf *y, const float *res, uint32_t n_vec, size_t stride, uint32_t n);
vkllm_view tu_view(const tu_fbuf *b);

/* Ends, runs (waiting) and destroys a chain, failing the test on an error. */
void tu_chain_run_once(vkllm_chain *c);
/* An fp16 K or V cache after a write, against the reference's (same layout, n halves; the untouched
 * halves hold poison in both): fails on a stray write (a poison half of the reference changed) or a
 * written half off by more than |ref| * rel + abs; returns the number of written halves. */
size_t tu_check_fp16_cache(const uint16_t *got, const uint16_t *ref, size_t n, uint16_t poison, float rel, float abs,
                           const char *what);

#endif
