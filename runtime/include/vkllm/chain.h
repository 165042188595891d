/* The command chain: many dispatches recorded into one command buffer, with a memory barrier
 * only where a dispatch touches what an earlier one wrote (or writes what an earlier one read),
 * submitted once; optional timestamp queries around every dispatch, named by kernel.
 *
 * A recorded chain can be submitted again and again without re-recording (values that change per
 * run must come from buffers). Thread-safety: one thread per chain; chains of one device may be
 * recorded and submitted from several threads at once (each has its own command, descriptor and
 * query pools; the device serializes queue submission). */
#ifndef VKLLM_CHAIN_H
#define VKLLM_CHAIN_H

#include <stdint.h>

#include "vkllm/pipeline.h"
#include "vkllm/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkllm_chain vkllm_chain;

typedef enum vkllm_access {
    VKLLM_READ = 1,
    VKLLM_WRITE = 2,
    VKLLM_READ_WRITE = 3
} vkllm_access;

typedef struct vkllm_binding {
    vkllm_buffer buf;
    uint64_t offset;  /* bytes into buf; a multiple of minStorageBufferOffsetAlignment */
    uint64_t size;    /* bytes; 0 = to the end of buf */
    vkllm_access access;
} vkllm_binding;

typedef struct vkllm_dispatch {
    vkllm_pipeline *pipeline;
    const char *name;               /* for timestamps and debug labels, e.g. "L3.attn_norm.rmsnorm" (copied) */
    uint32_t n_bindings;            /* must equal the pipeline's */
    vkllm_binding bindings[VKLLM_MAX_BINDINGS];
    const void *push;               /* pipeline's push_size bytes (copied at record time) */
    uint32_t groups[3];             /* workgroup counts; 0 is treated as "skip" */
    uint64_t bytes;                 /* bytes the kernel must move, for profiling (optional) */
    uint64_t flops;                 /* FLOPs it must do, for profiling (optional) */
} vkllm_dispatch;

typedef struct vkllm_chain_options {
    /* 0: no timestamp queries at all (the command buffer is what it would be without a profiler).
     * Otherwise a kind in the low byte, optionally with sampling (VKLLM_STAMPS_SAMPLED):
     * VKLLM_STAMPS_COMPUTE (1): a stamp before and after every dispatch, the start stamp at the
     *    compute stage (written once all earlier dispatches are done: exact durations, overlap
     *    serialized).
     * VKLLM_STAMPS_TOP (2): the same with the start stamp at the top of the pipe: it waits for
     *    nothing, which is cheaper where every stage-waiting stamp drains the GPU; a duration then
     *    includes any wait of the dispatch on earlier work (its barrier), and dispatches issued
     *    without a barrier may overlap.
     * VKLLM_STAMPS_END (3): one stamp after every dispatch (bottom of the pipe: once all earlier work
     *    is done); a dispatch's start is the previous dispatch's end stamp, so its duration includes
     *    the barrier and launch before it, and one that ran without a barrier alongside the previous
     *    one (vkllm_timing.overlap) gets only the time it added. Plus a stamp at the start of the
     *    command buffer (top of the pipe) and one at its end: the step's span.
     * VKLLM_STAMPS_SAMPLED(kind, k): k command buffers are recorded that differ only in which
     *    dispatches are stamped: dispatches fall into groups (a new group at every new layer prefix
     *    "L<n>." of the name but the first, and after 16 dispatches), and the replay r stamps the
     *    groups g with g mod k == r; submissions rotate through the replays, so each run pays about
     *    1/k of the stamps and k runs time every dispatch once (k is cut to the number of groups at
     *    vkllm_chain_end). Every replay has the start and end stamps of the step. */
    int timestamps;
    uint32_t max_dispatches; /* capacity hint for timestamps (grown as needed; 0 = 256) */
    const char *label;    /* optional debug label around the whole chain, e.g. "decode" (VK_EXT_debug_utils; copied) */
} vkllm_chain_options;

#define VKLLM_STAMPS_COMPUTE 1
#define VKLLM_STAMPS_TOP 2
#define VKLLM_STAMPS_END 3
#define VKLLM_STAMPS_MAX_REPLAYS 16
#define VKLLM_STAMPS_SAMPLED(kind, k) ((kind) | ((k) << 8))
#define VKLLM_STAMPS_KIND(t) ((t) & 0xff)
#define VKLLM_STAMPS_REPLAYS(t) (((t) >> 8) & 0xff) /* 0 or 1: every run stamps every dispatch */

/* An empty chain (opts may be NULL). VKLLM_ERROR_UNSUPPORTED for timestamps on a queue without
 * them, VKLLM_ERROR_INVALID_ARGUMENT for an unknown stamp kind or more than VKLLM_STAMPS_MAX_REPLAYS
 * replays; on failure *out is NULL. Free with vkllm_chain_destroy. */
vkllm_status vkllm_chain_create(vkllm_device *dev, const vkllm_chain_options *opts, vkllm_chain **out);
/* Waits for its last submission, then frees it. Accepts NULL. */
void vkllm_chain_destroy(vkllm_chain *chain);

/* Starts (re-)recording; discards what was recorded before. */
vkllm_status vkllm_chain_begin(vkllm_chain *chain);
/* Records one dispatch and, before it, a barrier if it conflicts with an earlier dispatch. */
vkllm_status vkllm_chain_dispatch(vkllm_chain *chain, const vkllm_dispatch *d);
/* Records a copy of size bytes between buffers (device or host memory), ordered against the
 * dispatches around it like a dispatch that reads src and writes dst. For the few bytes that move
 * between host-visible and device memory per step (token ids, positions, the sampled token). */
vkllm_status vkllm_chain_copy(vkllm_chain *chain, const vkllm_buffer *src, uint64_t src_off, const vkllm_buffer *dst,
                              uint64_t dst_off, uint64_t size);
/* Forces a full compute barrier at this point (rarely needed: conflicts are found automatically). */
vkllm_status vkllm_chain_barrier(vkllm_chain *chain);
/* Ends recording. */
vkllm_status vkllm_chain_end(vkllm_chain *chain);
/* Submits the recorded chain (one vkQueueSubmit) without waiting. */
vkllm_status vkllm_chain_submit(vkllm_chain *chain);
/* Waits for the last submission (timeout in ns, UINT64_MAX = forever). */
vkllm_status vkllm_chain_wait(vkllm_chain *chain, uint64_t timeout_ns);
/* submit + wait. */
vkllm_status vkllm_chain_run(vkllm_chain *chain);

/* Number of dispatches recorded and barriers inserted. */
uint32_t vkllm_chain_dispatch_count(const vkllm_chain *chain);
uint32_t vkllm_chain_barrier_count(const vkllm_chain *chain);

typedef struct vkllm_timing {
    const char *name;     /* as given at record time (owned by the chain) */
    double start_ns;      /* relative to the start of the run that timed it: the first dispatch's start
                           * (kinds COMPUTE and TOP, unsampled) or the command buffer's start stamp */
    double duration_ns;
    uint64_t bytes, flops;
    const char *kernel;   /* the pipeline's kernel, e.g. "matvec" (owned by the device) */
    double device_ns;     /* start on the device's timestamp clock, ns (for vkllm_device_calibrate) */
    int fresh;            /* 1: timed by the last run; 0: the numbers are from an earlier run (sampled
                           * stamps time a share of the dispatches per run), or from none (timed 0) */
    int timed;            /* 1: some run since the chain was recorded has timed it; 0: all numbers 0 */
    int overlap;          /* 1: no barrier between it and the previous dispatch: the two may have run at
                           * the same time (with VKLLM_STAMPS_END its start is the previous end) */
} vkllm_timing;

/* After a wait: the per-dispatch GPU times, each dispatch's from the latest run that timed it (the
 * last run, unless sampled: see `fresh`); needs timestamps on. *n = count. The results of every run
 * are collected when it is waited for (vkllm_chain_wait/run, or the wait inside the next submit). */
vkllm_status vkllm_chain_timings(vkllm_chain *chain, const vkllm_timing **out, uint32_t *n);
/* GPU time of the last run, ns (timestamps on): the command buffer's start stamp to its end stamp
 * (VKLLM_STAMPS_END or sampled), else the first dispatch's start to the last one's end. */
double vkllm_chain_gpu_time_ns(const vkllm_chain *chain);
/* Replays the submissions rotate through: 1, or for sampled timestamps k cut to the number of
 * dispatch groups recorded (after vkllm_chain_end). */
uint32_t vkllm_chain_replays(const vkllm_chain *chain);

/* Test hook: with 0, the chain inserts no barriers at all (to prove that synchronization validation
 * catches the missing ones). Never use outside tests. */
void vkllm_chain_set_auto_barriers(vkllm_chain *chain, int on);

#ifdef __cplusplus
}
#endif
#endif
