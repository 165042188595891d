/* Small helpers shared by the ops files: a binding from a view, and a 1D workgroup count as a 2D
 * grid within the device's limits. */
#ifndef VKLLM_OPS_INTERNAL_H
#define VKLLM_OPS_INTERNAL_H
#include "internal.h"
#include "vkllm/ops.h"

static inline vkllm_binding bind(vkllm_view v, uint64_t size, vkllm_access acc)
{
    vkllm_binding b = { v.buf, v.offset, size, acc };
    return b;
}

/* A view's offset within its pool block (alignment checks). */
static inline uint64_t abs_off(vkllm_view v) { return v.buf.offset + v.offset; }

/* 1 if the two views start at the same byte of the same block. */
static inline int same_view(vkllm_view a, vkllm_view b) { return a.buf.block == b.buf.block && abs_off(a) == abs_off(b); }

/* 1 if a_bytes from view a and b_bytes from view b share a byte (same block, ranges intersecting). */
static inline int views_overlap(vkllm_view a, uint64_t a_bytes, vkllm_view b, uint64_t b_bytes)
{
    if (a.buf.block != b.buf.block) return 0;
    const uint64_t a0 = abs_off(a), b0 = abs_off(b);
    return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

/* How y = op(..) + r uses r (y_bytes / r_bytes: the spans the op touches): 1 in place (r is y, same
 * start and stride), 0 apart, -1 overlapping y without being it (the caller refuses that). */
static inline int residual_mode(vkllm_view y, uint64_t y_bytes, uint32_t y_stride, vkllm_view r, uint64_t r_bytes, uint32_t r_stride)
{
    if (same_view(r, y) && r_stride == y_stride) return 1;
    return views_overlap(y, y_bytes, r, r_bytes) ? -1 : 0;
}

static inline void grid_2d(const vkllm_device *dev, uint64_t groups, uint32_t out[3])
{
    uint32_t maxx = dev->f.max_workgroup_count[0];
    if (groups <= maxx) {
        out[0] = (uint32_t)groups;
        out[1] = 1;
    } else {
        out[0] = maxx;
        out[1] = (uint32_t)((groups + maxx - 1) / maxx);
    }
    out[2] = 1;
}
/* runtime/ops_attn.c: the dispatch every prefill-attention kernel takes (q, K, V, len, out and the
 * same push constants; profiling counts the causal FLOPs of a batch that starts the context), on a
 * gx x gy grid, refused with a message where the grid exceeds the device's workgroup counts. */
/* runtime/ops_attn_cm2.c: 1 where vkllm_op_attn_prefill asks the cooperative_matrix2 kernel first
 * (device features, the build, VKLLM_ATTN_PREFILL_CM2 not "0"); it may still decline a shape. */
int vkllm_attn_prefill_cm2_enabled(const vkllm_device *dev);
vkllm_status vkllm_attn_prefill_dispatch(vkllm_chain *chain, const vkllm_attn_args *a, vkllm_pipeline *p, const char *kernel,
                                         uint32_t gx, uint32_t gy);
#endif
