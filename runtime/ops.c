/* Kernel operations: variant choice from the feature record and shape, then one dispatch. */
#include <string.h>

#include "internal.h"
#include "ops_internal.h"
#include "vkllm/ops.h"



static int aligned4(uint64_t off_bytes) { return off_bytes % 16 == 0; }

vkllm_status vkllm_op_rmsnorm(vkllm_chain *chain, const vkllm_rmsnorm_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (a->n == 0 || a->rows == 0 || a->x_stride < a->n || a->y_stride < a->n)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "rmsnorm: bad shape n=%u rows=%u strides %u/%u", a->n, a->rows,
                          a->x_stride, a->y_stride);
    int vec4 = a->n % 4 == 0 && a->x_stride % 4 == 0 && a->y_stride % 4 == 0 && aligned4(a->x.offset) &&
               aligned4(a->w.offset) && aligned4(a->y.offset);
    /* enough threads to cover a row in a few vec4 steps, at most 256 */
    uint32_t wg = dev->f.subgroup_size;
    uint32_t per_row = vec4 ? a->n / 4 : a->n;
    while (wg < 256 && wg * 2 <= per_row) wg *= 2;
    if (wg > dev->f.max_workgroup_invocations) wg = dev->f.max_workgroup_invocations;
    vkllm_pipeline_desc pd = { .kernel = "rmsnorm", .n_bindings = 3, .push_size = 20, .n_spec = 2, .spec = { wg, (uint32_t)vec4 } };
    vkllm_pipeline *p;
    vkllm_status s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    struct { uint32_t n, rows, xs, ys; float eps; } push = { a->n, a->rows, a->x_stride, a->y_stride, a->eps };
    uint64_t xbytes = ((uint64_t)(a->rows - 1) * a->x_stride + a->n) * 4;
    uint64_t ybytes = ((uint64_t)(a->rows - 1) * a->y_stride + a->n) * 4;
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : "rmsnorm", .n_bindings = 3,
                         .bindings = { bind(a->x, xbytes, VKLLM_READ), bind(a->w, (uint64_t)a->n * 4, VKLLM_READ),
                                       bind(a->y, ybytes, VKLLM_WRITE) },
                         .push = &push,
                         .bytes = (uint64_t)a->n * a->rows * 8 + (uint64_t)a->n * 4,
                         .flops = (uint64_t)a->n * a->rows * 4 };
    grid_2d(dev, a->rows, d.groups);
    return vkllm_chain_dispatch(chain, &d);
}

vkllm_status vkllm_op_rope(vkllm_chain *chain, const vkllm_rope_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (a->n_tok == 0 || a->n_head == 0 || a->head_dim == 0 || a->head_dim % 2 || a->n_rot % 2 || a->n_rot > a->head_dim)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "rope: bad shape (n_tok %u, n_head %u, head_dim %u, n_rot %u): head_dim and n_rot must be even, "
                          "n_rot <= head_dim",
                          a->n_tok, a->n_head, a->head_dim, a->n_rot);
    if (a->x_head < a->head_dim || a->y_head < a->head_dim)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "rope: head strides %u/%u are smaller than head_dim %u", a->x_head,
                          a->y_head, a->head_dim);
    uint64_t pairs = (uint64_t)a->n_tok * a->n_head * (a->head_dim / 2);
    if (pairs > UINT32_MAX) return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "rope: %llu pairs exceed one call", (unsigned long long)pairs);
    int fp64 = dev->f.shader_fp64 && !a->force_fp32;
    const char *kernel = a->neox ? (fp64 ? "rope_neox" : "rope_neox_f32") : (fp64 ? "rope_norm" : "rope_norm_f32");
    uint32_t wg = 256 < dev->f.max_workgroup_invocations ? 256 : dev->f.max_workgroup_invocations;
    vkllm_pipeline_desc pd = { .kernel = kernel, .n_bindings = 4, .push_size = 40, .n_spec = 1, .spec = { wg } };
    vkllm_pipeline *p;
    vkllm_status s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    struct { uint32_t n_tok, n_head, head_dim, n_rot, xt, xh, yt, yh; float af; uint32_t pad; } push = {
        a->n_tok, a->n_head, a->head_dim, a->n_rot, a->x_tok, a->x_head, a->y_tok, a->y_head,
        a->attn_factor == 0 ? 1.0f : a->attn_factor, 0 };
    uint64_t xlast = ((uint64_t)(a->n_tok - 1) * a->x_tok + (uint64_t)(a->n_head - 1) * a->x_head + a->head_dim) * 4;
    uint64_t ylast = ((uint64_t)(a->n_tok - 1) * a->y_tok + (uint64_t)(a->n_head - 1) * a->y_head + a->head_dim) * 4;
    int in_place = same_view(a->x, a->y);
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : kernel, .n_bindings = 4,
                         .bindings = { bind(a->x, xlast, in_place ? VKLLM_READ_WRITE : VKLLM_READ),
                                       bind(a->y, ylast, VKLLM_WRITE), bind(a->pos, (uint64_t)a->n_tok * 4, VKLLM_READ),
                                       bind(a->table, (uint64_t)(a->n_rot / 2 > 0 ? a->n_rot / 2 : 1) * 8, VKLLM_READ) },
                         .push = &push,
                         .bytes = pairs * 16 + (uint64_t)a->n_tok * 4 + (uint64_t)a->n_rot * 4,
                         .flops = pairs * 6 };
    grid_2d(dev, (pairs + wg - 1) / wg, d.groups);
    return vkllm_chain_dispatch(chain, &d);
}

vkllm_status vkllm_op_stream_read(vkllm_chain *chain, vkllm_view src, uint64_t n_bytes, vkllm_view dst)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (n_bytes == 0 || n_bytes % 16 || n_bytes / 16 > UINT32_MAX)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "stream_read: %llu bytes is not a positive multiple of 16",
                          (unsigned long long)n_bytes);
    vkllm_pipeline_desc pd = { .kernel = "stream_read", .n_bindings = 2, .push_size = 8, .n_spec = 1, .spec = { 256 } };
    vkllm_pipeline *p;
    vkllm_status s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    struct { uint32_t n, magic; } push = { (uint32_t)(n_bytes / 16), 0x9e3779b9u };
    /* enough workgroups to fill the machine several times over; each thread loops */
    uint64_t groups = n_bytes / 16 / 256 / 8;
    if (groups < 1) groups = 1;
    if (groups > 16384) groups = 16384;
    vkllm_dispatch d = { .pipeline = p, .name = "stream_read", .n_bindings = 2,
                         .bindings = { bind(src, n_bytes, VKLLM_READ), bind(dst, 4096, VKLLM_WRITE) },
                         .push = &push, .groups = { (uint32_t)groups, 1, 1 }, .bytes = n_bytes };
    return vkllm_chain_dispatch(chain, &d);
}
