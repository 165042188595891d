/* Misc-family operations: shape checks, variant choice, one or two dispatches each. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "ops_internal.h"
#include "vkllm/ops.h"



static uint32_t min_u32(uint64_t a, uint64_t b) { return (uint32_t)(a < b ? a : b); }
static int aligned16(uint64_t off_bytes) { return off_bytes % 16 == 0; }
static uint32_t wg_size(const vkllm_device *dev, uint32_t want)
{
    return want < dev->f.max_workgroup_invocations ? want : dev->f.max_workgroup_invocations;
}
/* 256 threads, or 64 when that still leaves fewer than ~256 workgroups (a single decode token):
 * small calls then spread over more of the GPU's multiprocessors (132 on an H100). */
static uint32_t wg_for_threads(const vkllm_device *dev, uint64_t threads)
{
    return wg_size(dev, threads >= 256ull * 256 ? 256 : 64);
}
static vkllm_status need_subgroup_arithmetic(vkllm_device *dev, const char *op)
{
    if (dev->f.subgroup_arithmetic) return VKLLM_OK;
    return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "%s: needs subgroup arithmetic in compute shaders, which this device lacks", op);
}

vkllm_status vkllm_op_swiglu(vkllm_chain *chain, const vkllm_swiglu_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (a->n_ff == 0 || a->n_tok == 0 || a->gu_stride < 2ull * a->n_ff || a->act_stride < a->n_ff)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "swiglu: bad shape n_ff=%u n_tok=%u strides %u/%u (need gu_stride >= 2*n_ff, act_stride >= n_ff)",
                          a->n_ff, a->n_tok, a->gu_stride, a->act_stride);
    int vec4 = a->n_ff % 4 == 0 && a->gu_stride % 4 == 0 && a->act_stride % 4 == 0 && aligned16(a->gu.offset) &&
               aligned16(a->act.offset);
    uint64_t threads = (uint64_t)a->n_tok * (vec4 ? a->n_ff / 4 : a->n_ff);
    if (threads > UINT32_MAX)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "swiglu: %llu threads exceed one call", (unsigned long long)threads);
    uint32_t wg = wg_for_threads(dev, threads);
    vkllm_pipeline_desc pd = { .kernel = "swiglu", .n_bindings = 2, .push_size = 16, .n_spec = 2, .spec = { wg, (uint32_t)vec4 } };
    vkllm_pipeline *p;
    vkllm_status s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    struct { uint32_t n_ff, n_tok, gs, as; } push = { a->n_ff, a->n_tok, a->gu_stride, a->act_stride };
    uint64_t n = (uint64_t)a->n_ff * a->n_tok;
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : "swiglu", .n_bindings = 2,
                         .bindings = { bind(a->gu, ((uint64_t)(a->n_tok - 1) * a->gu_stride + 2ull * a->n_ff) * 4, VKLLM_READ),
                                       bind(a->act, ((uint64_t)(a->n_tok - 1) * a->act_stride + a->n_ff) * 4, VKLLM_WRITE) },
                         .push = &push, .bytes = n * 12, .flops = n * 5 };
    grid_2d(dev, (threads + wg - 1) / wg, d.groups);
    return vkllm_chain_dispatch(chain, &d);
}

vkllm_status vkllm_op_add(vkllm_chain *chain, const vkllm_add_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (a->n == 0) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "add: n = 0");
    if (!aligned16(a->a.offset) || !aligned16(a->b.offset) || !aligned16(a->y.offset))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "add: view offsets must be multiples of 16 bytes (256 is safe)");
    uint64_t bytes = (uint64_t)a->n * 4, threads = a->n / 4 + a->n % 4;
    uint32_t wg = wg_for_threads(dev, threads);
    vkllm_pipeline_desc pd = { .kernel = "add", .n_bindings = 3, .push_size = 4, .n_spec = 1, .spec = { wg } };
    vkllm_pipeline *p;
    vkllm_status s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    uint32_t push = a->n;
    int in_place = same_view(a->a, a->y);
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : "add", .n_bindings = 3,
                         .bindings = { bind(a->a, bytes, in_place ? VKLLM_READ_WRITE : VKLLM_READ), bind(a->b, bytes, VKLLM_READ),
                                       bind(a->y, bytes, VKLLM_WRITE) },
                         .push = &push, .bytes = bytes * 3, .flops = a->n };
    grid_2d(dev, (threads + wg - 1) / wg, d.groups);
    return vkllm_chain_dispatch(chain, &d);
}

vkllm_status vkllm_op_embed(vkllm_chain *chain, const vkllm_embed_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (!vkllm_dtype_valid(a->type))
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED_TYPE, "embed: table type %d is not one vkllm reads", (int)a->type);
    size_t be = vkllm_dtype_block_elems(a->type), bb = vkllm_dtype_block_bytes(a->type);
    if (a->n_vocab == 0 || a->n_embd == 0 || a->n_tok == 0 || a->out_stride < a->n_embd || a->n_embd % be)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "embed: bad shape n_vocab=%u n_embd=%u n_tok=%u out_stride=%u (%s rows need a multiple of %zu elements)",
                          a->n_vocab, a->n_embd, a->n_tok, a->out_stride, vkllm_dtype_name(a->type), be);
    uint64_t row_bytes = (uint64_t)a->n_embd / be * bb, table_bytes = row_bytes * a->n_vocab;
    if ((table_bytes + 3) / 4 * 4 > dev->f.max_storage_buffer_range)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE,
                          "embed: the %llu-byte table exceeds maxStorageBufferRange (%llu bytes); it must be bound whole because "
                          "the ids are read on the device",
                          (unsigned long long)table_bytes, (unsigned long long)dev->f.max_storage_buffer_range);
    int u16 = dev->f.storage_16bit && !a->force_u32;
    /* The uint32-storage decoder reads whole words, so a table of an odd number of halfwords (e.g.
     * Q6_K rows of 105 halfwords) needs its last word bound too. */
    uint64_t bind_bytes = u16 ? table_bytes : (table_bytes + 3) / 4 * 4;
    if (bind_bytes > a->table.buf.size || a->table.offset > a->table.buf.size - bind_bytes)
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE,
                          "embed: the table needs %llu bytes from offset %llu of its %llu-byte buffer (allocate tables with their "
                          "size rounded up to 4 bytes: this device decodes them as 32-bit words)",
                          (unsigned long long)bind_bytes, (unsigned long long)a->table.offset, (unsigned long long)a->table.buf.size);
    uint32_t d8 = a->decode4 == 1 ? 0 : (a->decode4 == 2 && a->type == VKLLM_DTYPE_Q4_0) ? 2 : 1;
    uint32_t wg = wg_size(dev, 64);
    vkllm_pipeline_desc pd = { .kernel = u16 ? "embed_u16" : "embed", .n_bindings = 4, .push_size = 24, .n_spec = 3,
                               .spec = { wg, (uint32_t)a->type, d8 } };
    vkllm_pipeline *p;
    vkllm_status s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    struct { uint32_t n_vocab, n_embd, n_tok, out_stride, row_units, out_vec4; } push = {
        a->n_vocab, a->n_embd, a->n_tok, a->out_stride,
        (uint32_t)(a->type == VKLLM_DTYPE_F32 ? a->n_embd : row_bytes / 2),
        (uint32_t)(a->out_stride % 4 == 0 && a->n_embd % 4 == 0 && aligned16(a->out.offset)) };
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : "embed", .n_bindings = 4,
                         .bindings = { bind(a->table, bind_bytes, VKLLM_READ), bind(a->ids, (uint64_t)a->n_tok * 4, VKLLM_READ),
                                       bind(a->out, ((uint64_t)(a->n_tok - 1) * a->out_stride + a->n_embd) * 4, VKLLM_WRITE),
                                       bind(a->status, 8, VKLLM_READ_WRITE) },
                         .push = &push,
                         .bytes = (row_bytes + (uint64_t)a->n_embd * 4 + 4) * a->n_tok };
    uint64_t groups8 = ((uint64_t)a->n_embd + 7) / 8;
    d.groups[0] = (uint32_t)((groups8 + wg - 1) / wg);
    d.groups[1] = min_u32(a->n_tok, dev->f.max_workgroup_count[1]);
    d.groups[2] = 1;
    return vkllm_chain_dispatch(chain, &d);
}

/* ---- argmax: chunk partials, then a per-row merge ---- */

/* About 100 chunks per row: enough workgroups to spread one 100k-200k row over the whole GPU, few
 * enough that the merge is one short loop. A multiple of 4 (vec4 loads). */
static uint32_t argmax_chunk(uint32_t n)
{
    uint32_t c = (n + 127) / 128;
    c = (c + 1023) / 1024 * 1024;
    return c;
}

uint64_t vkllm_argmax_scratch_bytes(uint32_t n, uint32_t rows)
{
    if (n == 0) return 8;
    uint32_t c = argmax_chunk(n);
    return (uint64_t)((n + c - 1) / c) * rows * 8;
}

vkllm_status vkllm_op_argmax(vkllm_chain *chain, const vkllm_argmax_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (a->n == 0 || a->rows == 0 || a->stride < a->n)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "argmax: bad shape n=%u rows=%u stride=%u", a->n, a->rows, a->stride);
    vkllm_status s = need_subgroup_arithmetic(dev, "argmax");
    if (s) return s;
    uint32_t chunk = argmax_chunk(a->n), n_chunks = (a->n + chunk - 1) / chunk;
    int vec4 = a->n % 4 == 0 && a->stride % 4 == 0 && aligned16(a->x.offset);
    uint32_t wg = wg_size(dev, 256);
    vkllm_pipeline *p1, *p2;
    vkllm_pipeline_desc pd = { .kernel = "argmax_chunk", .n_bindings = 2, .push_size = 20, .n_spec = 2, .spec = { wg, (uint32_t)vec4 } };
    s = vkllm_pipeline_get(dev, &pd, &p1);
    if (s) return s;
    pd.kernel = "argmax_merge";
    pd.n_bindings = 3;
    pd.spec[1] = 0;
    s = vkllm_pipeline_get(dev, &pd, &p2);
    if (s) return s;
    struct { uint32_t n, rows, stride, chunk, n_chunks; } push = { a->n, a->rows, a->stride, chunk, n_chunks };
    const char *base = a->name ? a->name : "argmax";
    char n1[96], n2[96];
    snprintf(n1, sizeof n1, "%s.chunk", base);
    snprintf(n2, sizeof n2, "%s.merge", base);
    uint64_t xbytes = ((uint64_t)(a->rows - 1) * a->stride + a->n) * 4, pbytes = (uint64_t)n_chunks * a->rows * 8;
    vkllm_dispatch d1 = { .pipeline = p1, .name = n1, .n_bindings = 2,
                          .bindings = { bind(a->x, xbytes, VKLLM_READ), bind(a->scratch, pbytes, VKLLM_WRITE) },
                          .push = &push, .groups = { n_chunks, min_u32(a->rows, dev->f.max_workgroup_count[1]), 1 },
                          .bytes = (uint64_t)a->n * a->rows * 4 + pbytes, .flops = (uint64_t)a->n * a->rows };
    if (n_chunks > dev->f.max_workgroup_count[0])
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "argmax: n=%u needs %u chunks", a->n, n_chunks);
    s = vkllm_chain_dispatch(chain, &d1);
    if (s) return s;
    /* the merge binds x only to share the layout; it reads just the partials */
    vkllm_dispatch d2 = { .pipeline = p2, .name = n2, .n_bindings = 3,
                          .bindings = { bind(a->x, 4, VKLLM_READ), bind(a->scratch, pbytes, VKLLM_READ),
                                        bind(a->out, (uint64_t)a->rows * 4, VKLLM_WRITE) },
                          .push = &push, .groups = { min_u32(a->rows, dev->f.max_workgroup_count[0]), 1, 1 },
                          .bytes = pbytes + (uint64_t)a->rows * 4 };
    return vkllm_chain_dispatch(chain, &d2);
}

/* ---- top-k: per-chunk top k, then a per-row merge ---- */

#define TOPK_CHUNK 2048u /* 256 threads x 8 elements in registers: kernels/topk.comp */

uint64_t vkllm_topk_scratch_bytes(uint32_t n, uint32_t rows, uint32_t k)
{
    return (uint64_t)((n + TOPK_CHUNK - 1) / TOPK_CHUNK) * rows * (k ? k : 1) * 8;
}

vkllm_status vkllm_op_topk(vkllm_chain *chain, const vkllm_topk_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (a->n == 0 || a->rows == 0 || a->stride < a->n || a->k == 0 || a->k > VKLLM_TOPK_MAX_K || a->k > a->n)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "topk: bad shape n=%u rows=%u stride=%u k=%u (need 1 <= k <= min(n, %d))",
                          a->n, a->rows, a->stride, a->k, VKLLM_TOPK_MAX_K);
    if (dev->f.max_workgroup_invocations < 256)
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "topk: needs 256 invocations per workgroup, the device has %u",
                          dev->f.max_workgroup_invocations);
    vkllm_status s = need_subgroup_arithmetic(dev, "topk");
    if (s) return s;
    uint32_t n_chunks = (a->n + TOPK_CHUNK - 1) / TOPK_CHUNK;
    if (n_chunks > dev->f.max_workgroup_count[0] || (uint64_t)n_chunks * a->k * a->rows > UINT32_MAX)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "topk: n=%u rows=%u is too large for one call", a->n, a->rows);
    vkllm_pipeline *p1, *p2;
    vkllm_pipeline_desc pd = { .kernel = "topk_chunk", .n_bindings = 2, .push_size = 20 };
    s = vkllm_pipeline_get(dev, &pd, &p1);
    if (s) return s;
    pd.kernel = "topk_merge";
    pd.n_bindings = 4;
    s = vkllm_pipeline_get(dev, &pd, &p2);
    if (s) return s;
    struct { uint32_t n, rows, stride, k, n_chunks; } push = { a->n, a->rows, a->stride, a->k, n_chunks };
    const char *base = a->name ? a->name : "topk";
    char n1[96], n2[96];
    snprintf(n1, sizeof n1, "%s.chunk", base);
    snprintf(n2, sizeof n2, "%s.merge", base);
    uint64_t xbytes = ((uint64_t)(a->rows - 1) * a->stride + a->n) * 4, cbytes = (uint64_t)n_chunks * a->rows * a->k * 8;
    uint64_t obytes = (uint64_t)a->rows * a->k * 4;
    vkllm_dispatch d1 = { .pipeline = p1, .name = n1, .n_bindings = 2,
                          .bindings = { bind(a->x, xbytes, VKLLM_READ), bind(a->scratch, cbytes, VKLLM_WRITE) },
                          .push = &push, .groups = { n_chunks, min_u32(a->rows, dev->f.max_workgroup_count[1]), 1 },
                          .bytes = (uint64_t)a->n * a->rows * 4 + cbytes };
    s = vkllm_chain_dispatch(chain, &d1);
    if (s) return s;
    vkllm_dispatch d2 = { .pipeline = p2, .name = n2, .n_bindings = 4,
                          .bindings = { bind(a->x, xbytes, VKLLM_READ), bind(a->scratch, cbytes, VKLLM_READ),
                                        bind(a->vals, obytes, VKLLM_WRITE), bind(a->idx, obytes, VKLLM_WRITE) },
                          .push = &push, .groups = { min_u32(a->rows, dev->f.max_workgroup_count[0]), 1, 1 },
                          .bytes = cbytes + obytes * 2 };
    return vkllm_chain_dispatch(chain, &d2);
}
