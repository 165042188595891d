/* Each kernel family contributes a self-check: run its kernels once on random data at a few shapes
 * and report each comparison with the CPU reference through emit(). */
#ifndef VKLLM_SELFCHECK_INTERNAL_H
#define VKLLM_SELFCHECK_INTERNAL_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "vkllm/ops.h"
#include "vkllm/pool.h"
#include "vkllm/ref.h"
#include "vkllm/selfcheck.h"

typedef struct vkllm_selfcheck_sink {
    vkllm_selfcheck_cb cb;
    void *user;
    uint64_t seed;
    int n_run, n_failed;
} vkllm_selfcheck_sink;

/* Seeded inputs and the NMSE of the comparisons, shared by every family's self-check. */
typedef struct rng { uint64_t s; } rng;
static inline uint64_t next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline float normal(rng *r)
{
    double u1 = ((double)(next(r) >> 11) + 1.0) / 9007199254740993.0, u2 = (double)(next(r) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
/* mse(out, ref) / mse(ref, 0); +inf if out has a NaN or Inf. */
static inline double nmse(const float *out, const float *ref, size_t n) { return vkllm_ref_nmse(out, ref, n); }

/* A self-check's device: its chain and up to SC_MAX_BUFS buffers, freed together by release(). */
#define SC_MAX_BUFS 8
typedef struct ctx {
    vkllm_device *dev;
    vkllm_chain *chain;
    vkllm_buffer bufs[SC_MAX_BUFS];
    int n_bufs;
} ctx;

/* A device buffer of `bytes` (rounded up to whole words, the tail zeroed) holding data, or NaN
 * poison if data is NULL; the view starts at its beginning. */
static inline vkllm_status upload(ctx *c, const void *data, size_t bytes, vkllm_view *v)
{
    if (c->n_bufs == SC_MAX_BUFS) return VKLLM_ERROR_INTERNAL;
    vkllm_buffer *b = &c->bufs[c->n_bufs++];
    size_t size = (bytes + 3) / 4 * 4;
    vkllm_status s = vkllm_buffer_alloc(c->dev, VKLLM_MEM_DEVICE, size, b);
    if (!s) s = vkllm_buffer_fill(c->dev, b, 0, size, data ? 0u : 0x7FC00000u);
    if (!s && data) s = vkllm_buffer_write(c->dev, b, 0, data, bytes);
    v->buf = *b;
    v->offset = 0;
    return s;
}

static inline void release(ctx *c)
{
    for (int i = 0; i < c->n_bufs; i++) vkllm_buffer_free(c->dev, &c->bufs[i]);
    c->n_bufs = 0;
}

/* Records one result (sets pass and message from nmse/bound) and forwards it. */
void vkllm_selfcheck_emit(vkllm_selfcheck_sink *sink, vkllm_selfcheck_result *r);

/* One per family; each returns a status only if it could not run (device error). */
typedef vkllm_status (*vkllm_selfcheck_family)(vkllm_device *dev, vkllm_selfcheck_sink *sink);
#endif
