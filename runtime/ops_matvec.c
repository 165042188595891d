/* The decode mat-vec: variant (module per weight type, float vector path) and tuning (rows per
 * subgroup, subgroups per workgroup) from the device and the shape; one dispatch. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ops_internal.h"
#include "vkllm/ops_matvec.h"


static const char *kernel_name(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: return "matvec_f32";
    case VKLLM_DTYPE_F16: return "matvec_f16";
    case VKLLM_DTYPE_BF16: return "matvec_bf16";
    case VKLLM_DTYPE_Q8_0: return "matvec_q8_0";
    case VKLLM_DTYPE_Q4_0: return "matvec_q4_0";
    case VKLLM_DTYPE_Q4_K: return "matvec_q4_k";
    case VKLLM_DTYPE_Q5_K: return "matvec_q5_k";
    case VKLLM_DTYPE_Q6_K: return "matvec_q6_k";
    }
    return NULL;
}

uint64_t vkllm_matvec_weight_bytes(vkllm_dtype type, uint32_t n_out, uint32_t n_in)
{
    uint64_t row;
    if (!vkllm_dtype_valid((int)type) || vkllm_dtype_bytes(type, n_in, &row)) return 0;
    return row * n_out;
}

void vkllm_matvec_cost(const vkllm_matvec_args *a, uint64_t *bytes, uint64_t *flops)
{
    uint64_t wb = vkllm_matvec_weight_bytes(a->type, a->n_out, a->n_in);
    int res = a->residual.buf.block != NULL;
    if (bytes) *bytes = wb ? wb + 4ull * a->n_vec * (a->n_in + a->n_out * (res ? 2ull : 1ull)) : 0;
    if (flops) *flops = wb ? 2ull * a->n_vec * a->n_in * a->n_out + (res ? (uint64_t)a->n_vec * a->n_out : 0) : 0;
}


vkllm_status vkllm_op_matvec(vkllm_chain *chain, const vkllm_matvec_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    const char *kernel = vkllm_dtype_valid((int)a->type) ? kernel_name(a->type) : NULL;
    if (!kernel)
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED_TYPE, "matvec: weight type %d is not one of f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k",
                          (int)a->type);
    const char *tn = vkllm_dtype_name(a->type);
    if (a->n_out == 0 || a->n_in == 0 || a->n_vec == 0 || a->n_vec > 8)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec: bad shape n_out=%u n_in=%u n_vec=%u (all > 0, n_vec <= 8)",
                          a->n_out, a->n_in, a->n_vec);
    uint32_t blk = (uint32_t)vkllm_dtype_block_elems(a->type);
    if (a->n_in % blk)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "matvec: n_in=%u is not a whole number of %s blocks (%u elements); pad the rows or use another type",
                          a->n_in, tn, blk);
    int has_res = a->residual.buf.block != NULL;
    if (a->x_stride < a->n_in || a->y_stride < a->n_out || (has_res && a->r_stride < a->n_out))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "matvec: strides x %u / y %u / r %u are smaller than n_in %u / n_out %u", a->x_stride, a->y_stride,
                          a->r_stride, a->n_in, a->n_out);
    int quant = blk > 1;
    uint32_t vec_elems = a->type == VKLLM_DTYPE_F32 ? 4 : 8;
    int vec = quant || (a->n_in % vec_elems == 0 && a->x_stride % 4 == 0);
    if (quant && a->x_stride % 4)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec: x_stride %u must be a multiple of 4 for %s weights",
                          a->x_stride, tn);
    if (vec && (abs_off(a->w) % 16 || abs_off(a->x) % 16))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec: weight and x offsets must be multiples of 16 bytes");

    uint64_t wbytes = vkllm_matvec_weight_bytes(a->type, a->n_out, a->n_in);
    uint64_t xbytes = ((uint64_t)(a->n_vec - 1) * a->x_stride + a->n_in) * 4;
    uint64_t ybytes = ((uint64_t)(a->n_vec - 1) * a->y_stride + a->n_out) * 4;
    uint64_t rbytes = has_res ? ((uint64_t)(a->n_vec - 1) * a->r_stride + a->n_out) * 4 : 0;
    /* the kernel reads 32-bit words: a tensor of an odd number of halfwords needs its last word whole */
    uint64_t wbind = (wbytes + 3) & ~3ull;
    uint64_t range = dev->f.max_storage_buffer_range;
    /* halfword indices are 32-bit in the kernel */
    if (range > (1ull << 32) - 16) range = (1ull << 32) - 16;
    if (wbind > range || xbytes > range || ybytes > range || rbytes > range)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE,
                          "matvec: a binding exceeds the device's maxStorageBufferRange of %llu bytes (weights %llu = %u x %u %s, "
                          "x %llu, y %llu): split the tensor into row ranges",
                          (unsigned long long)range, (unsigned long long)wbind, a->n_out, a->n_in, tn, (unsigned long long)xbytes,
                          (unsigned long long)ybytes);
    /* The kernel reads 32-bit words; a tensor of an odd number of halfwords ending exactly at its
     * buffer's end would need a word that straddles the binding (robust implementations such as
     * lavapipe return 0 for it, losing the last block's scale): refuse rather than be wrong. */
    if (wbind != wbytes && a->w.offset + wbind > a->w.buf.size)
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE,
                          "matvec: the %llu-byte %s tensor (an odd number of halfwords) needs 2 bytes after it in its buffer "
                          "(the kernel reads 32-bit words): allocate the buffer rounded up to 4 bytes",
                          (unsigned long long)wbytes, tn);
    const int in_place = has_res ? residual_mode(a->y, ybytes, a->y_stride, a->residual, rbytes, a->r_stride) : 0;
    if (in_place < 0)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec: residual overlaps y without being y itself (same offset and stride)");

    const uint32_t sg = dev->f.subgroup_size ? dev->f.subgroup_size : 32;
    /* Default: one subgroup per R = 2 rows (C = the subgroup size, KS = 1: no shared memory, no
     * barrier). Measured on the H100 (bench-matvec --sweep, same data per shape) it was the best or
     * within 5% of the best of 1/2/4/8 rows x 1/2/4/8 K groups x 8/32 lanes at every shape tried
     * (Q5_K qkv, Q4_K o and gate_up, Q6_K down and output, Q8_0 and F16 o); the former default
     * (8-lane groups, KS = 4) was 1.6x slower on Q6_K down and 1.9x on Q8_0 o. 4 or 8 rows were
     * slower (fewer subgroups in flight). */
    uint32_t rps = a->rows_per_group ? a->rows_per_group : 2;
    uint32_t ks = a->k_split ? a->k_split : 1;
    if (rps > 8 || ks > 16)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec: tuning rows_per_group %u (<= 8) / k_split %u (<= 16)", rps, ks);
    uint32_t cl = a->lanes_per_group ? a->lanes_per_group : sg;
    if (cl > sg || (cl & (cl - 1)))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec: lanes_per_group %u must be a power of two <= the subgroup size %u",
                          cl, sg);
    /* x through shared memory (kernels/matvec.comp), in workgroups of 8 subgroups: an experiment,
     * off unless VKLLM_MATVEC_XS=1. On the H100 it was 3x slower where x needs several chunks (down
     * 5120x17920, n_vec 4: barriers per chunk) and mixed elsewhere (within the run-to-run spread). */
    const char *xenv = getenv("VKLLM_MATVEC_XS");
    int xs_on = vec && xenv && xenv[0] == '1';
    uint32_t nsg = xs_on ? 8 : 1;
    while (nsg > 1 && ks * nsg * sg > dev->f.max_workgroup_invocations) nsg /= 2;
    uint32_t rg = sg / cl * nsg;
    /* per shape: no more K groups than keep two units per lane (short rows need no split) */
    uint32_t units = quant ? a->n_in / 32 : vec ? a->n_in / vec_elems : a->n_in;
    if (!a->k_split)
        while (ks > 1 && units < 2 * ks * cl) ks /= 2;
    while (ks > 1 && (ks * rg * cl > dev->f.max_workgroup_invocations || ks * rg * rps * a->n_vec * 4 > dev->f.max_shared_memory))
        ks /= 2;
    uint32_t wg = ks * rg * cl, rows_wg = rg * rps;

    /* Q6_K, Q8_0 and Q4_0 blocks (only 2-byte aligned) through shared memory (kernels/matvec.comp
     * says why): needs groups of whole blocks, the 16-byte chunk holding the tensor's last byte
     * inside the buffer, and the room. */
    if (a->stage > 2)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec: stage %u (0 auto, 1 direct, 2 staged)", a->stage);
    uint32_t stage = 0;
    uint32_t upb = a->type == VKLLM_DTYPE_Q6_K ? 8 : 1; /* kernel units per block */
    int stageable = a->type == VKLLM_DTYPE_Q6_K || a->type == VKLLM_DTYPE_Q8_0 || a->type == VKLLM_DTYPE_Q4_0;
    /* auto: Q6_K only (H100 sweep with whole-subgroup groups: staged 1.4x faster for Q6_K down, 8%
     * slower for Q6_K output; direct 1.25x faster for Q8_0) */
    int want = a->stage == 2 || (a->stage == 0 && a->type == VKLLM_DTYPE_Q6_K);
    if (stageable && want && cl % upb == 0) {
        uint64_t bb = vkllm_dtype_block_bytes(a->type);
        uint64_t ch = ((uint64_t)(cl / upb) * bb + 29) / 16, chl = (ch + cl - 1) / cl, regw = chl * cl * 4 + 4;
        uint64_t smem = (uint64_t)ks * rg * rps * regw * 4 + (uint64_t)ks * rg * rps * a->n_vec * 4;
        uint64_t w16 = (wbytes + 15) & ~15ull;
        if (smem <= dev->f.max_shared_memory && a->w.offset + w16 <= a->w.buf.size && w16 <= range) {
            stage = 1;
            wbind = w16;
        }
    }
    if (a->stage == 2 && !stage)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "matvec: staged path asked for %s weights with %u lanes per group (needs q6_K/q8_0/q4_0, whole blocks "
                          "per group, 16 bytes of room at the tensor's end, shared memory)", tn, cl);

    /* x chunk in vec4s per vector: the whole row where it fits in 32 KiB (with the padding of one
     * vec4 per 16), else the most that fits, a multiple of 64 (whole K blocks, whole staged groups) */
    uint32_t xck = 0;
    if (xs_on) {
        uint64_t used = (uint64_t)ks * rg * rps * a->n_vec * 4;
        if (stage) {
            uint64_t bb = vkllm_dtype_block_bytes(a->type);
            uint64_t ch = ((uint64_t)(cl / upb) * bb + 29) / 16, chl = (ch + cl - 1) / cl, regw = chl * cl * 4 + 4;
            used += (uint64_t)ks * rg * rps * regw * 4;
        }
        uint64_t budget = dev->f.max_shared_memory > used ? dev->f.max_shared_memory - used : 0;
        if (budget > 32768) budget = 32768;
        uint64_t most = budget / ((uint64_t)a->n_vec * 17) / 64 * 64, full = ((uint64_t)a->n_in / 4 + 63) / 64 * 64;
        xck = (uint32_t)(full < most ? full : most);
    }
    vkllm_pipeline_desc pd = { .kernel = kernel, .n_bindings = 4, .push_size = 24, .n_spec = 10,
                               .spec = { wg, rg, rps, a->n_vec, (uint32_t)has_res, (uint32_t)vec, cl, ks, stage, xck } };
    vkllm_pipeline *p;
    vkllm_status s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    uint64_t row_bytes = wbytes / a->n_out;
    struct { uint32_t n_in, n_out, row_h, xs, ys, rs; } push = { a->n_in, a->n_out, (uint32_t)(row_bytes / 2), a->x_stride,
                                                                  a->y_stride, has_res ? a->r_stride : 0 };
    uint64_t bytes, flops;
    vkllm_matvec_cost(a, &bytes, &flops);
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : kernel, .n_bindings = 4,
                         .bindings = { bind(a->w, wbind, VKLLM_READ), bind(a->x, xbytes, VKLLM_READ),
                                       bind(a->y, ybytes, in_place ? VKLLM_READ_WRITE : VKLLM_WRITE),
                                       /* no residual: x stands in, never read (HAS_RES = 0) */
                                       has_res ? bind(a->residual, rbytes, VKLLM_READ) : bind(a->x, xbytes, VKLLM_READ) },
                         .push = &push, .bytes = bytes, .flops = flops };
    grid_2d(dev, ((uint64_t)a->n_out + rows_wg - 1) / rows_wg, d.groups);
    return vkllm_chain_dispatch(chain, &d);
}

/* ---- 8-bit activation mat-vec (kernels/matvec_q8.comp) ---- */

static const char *q8_kernel_name(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_Q8_0: return "matvec_q8_q8_0";
    case VKLLM_DTYPE_Q4_0: return "matvec_q8_q4_0";
    case VKLLM_DTYPE_Q4_K: return "matvec_q8_q4_k";
    case VKLLM_DTYPE_Q5_K: return "matvec_q8_q5_k";
    case VKLLM_DTYPE_Q6_K: return "matvec_q8_q6_k";
    default: return NULL;
    }
}

/* the XG=1 modules: x pre-quantized in a global buffer (vkllm_matvec_q8_args.xq) */
static const char *q8x_kernel_name(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_Q8_0: return "matvec_q8x_q8_0";
    case VKLLM_DTYPE_Q4_0: return "matvec_q8x_q4_0";
    case VKLLM_DTYPE_Q4_K: return "matvec_q8x_q4_k";
    case VKLLM_DTYPE_Q5_K: return "matvec_q8x_q5_k";
    case VKLLM_DTYPE_Q6_K: return "matvec_q8x_q6_k";
    default: return NULL;
    }
}

/* the QKV projection with RoPE and the cache append as its epilogue (ROPE=1) */
static const char *q8x_rope_kernel_name(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_Q8_0: return "matvec_q8x_rope_q8_0";
    case VKLLM_DTYPE_Q4_0: return "matvec_q8x_rope_q4_0";
    case VKLLM_DTYPE_Q4_K: return "matvec_q8x_rope_q4_k";
    case VKLLM_DTYPE_Q5_K: return "matvec_q8x_rope_q5_k";
    case VKLLM_DTYPE_Q6_K: return "matvec_q8x_rope_q6_k";
    default: return NULL;
    }
}

/* Shape of one launch: rows per workgroup, rows per lane group, lanes per row. */
typedef struct { uint32_t rows, r, c; } q8_shape;

/* Shared memory of the kernel (its arrays, in bytes): x codes and per-32 (d, d*sum) and int16 sums,
 * reduce.glsl's partials, and for the 2-byte-aligned types the staging regions. */
static uint64_t q8_smem(vkllm_dtype t, uint32_t n_in, uint32_t n_vec, q8_shape s, int xg)
{
    uint64_t nb = n_in / 32, bytes = (xg ? 0 : (uint64_t)n_vec * (n_in + nb * 12)) + 256 * 4;
    uint32_t upb = 0, bhw = 0;
    if (t == VKLLM_DTYPE_Q6_K) upb = 4, bhw = 105;
    if (t == VKLLM_DTYPE_Q8_0) upb = 1, bhw = 17;
    if (t == VKLLM_DTYPE_Q4_0) upb = 1, bhw = 9;
    if (upb) {
        uint64_t ch = ((uint64_t)(s.c / upb) * bhw * 2 + 29) >> 4, chl = (ch + s.c - 1) / s.c, regw = chl * s.c * 4 + 4;
        bytes += (uint64_t)s.rows * regw * 4;
    }
    return bytes;
}

/* Type, int dot, build and subgroup checks shared by the predicate and the op; NULL message if fine. */
static const char *q8_refusal(const vkllm_device *dev, vkllm_dtype t, uint32_t n_in, uint32_t n_vec)
{
    if (!vkllm_dtype_valid((int)t) || !q8_kernel_name(t)) return "weight type is not one of q4_K q5_K q6_K q8_0 q4_0";
    if (!dev->f.integer_dot) return "the device has no shaderIntegerDotProduct (or VKLLM_DISABLE=intdot)";
    if (!vkllm_kernel_available(q8_kernel_name(t))) return "the kernel is not in this build (glslang lacked GL_EXT_integer_dot_product)";
    if (dev->f.subgroup_size < 8) return "the subgroup size is below 8";
    if (n_in == 0 || n_in % (uint32_t)vkllm_dtype_block_elems(t)) return "n_in is not a whole number of blocks";
    if (n_vec == 0 || n_vec > 8) return "n_vec is not 1..8";
    return NULL;
}

/* Launch shape: the overrides where given, else the best of the H100 sweep (bench-matvec --q8 with
 * warm-up, commit 83bb64b, docs/BENCHMARKS.md; the two passes of each variant agreed within 1%):
 * 64 rows per workgroup, 2 rows per lane group, 16 lanes per row for Q4_K/Q5_K/Q4_0 (qkv 19.0 us
 * against 22-28 for the others, gate_up 56 against 58-78, o within 3% of the best); Q8_0 16 x 1 x 32
 * (its staging leaves no room for 64 rows of 16 lanes); Q6_K 64 x 2 x 8 for long matrices (output
 * 211 us against 227-340) and 16 x 1 x 16 otherwise (down 85 against 94). Lanes are capped at the
 * subgroup size; rows per workgroup are halved until the shared memory fits; rows 0 if nothing does. */
static q8_shape q8_choose(const vkllm_device *dev, vkllm_dtype t, uint32_t n_in, uint32_t n_vec, uint32_t n_out, uint32_t rows_wg,
                          uint32_t rpl, uint32_t lanes, int xg)
{
    uint32_t sg = dev->f.subgroup_size, cmax = sg < 32 ? sg : 32;
    q8_shape d = { 64, 2, 16 };
    if (t == VKLLM_DTYPE_Q8_0) d = (q8_shape){ 16, 1, 32 };
    if (t == VKLLM_DTYPE_Q6_K) d = n_out >= 32768 ? (q8_shape){ 64, 2, 8 } : (q8_shape){ 16, 1, 16 };
    /* x pre-quantized (no shared x): small workgroups won at every shape of the H100 sweep
     * (bench-matvec --q8x, docs/BENCHMARKS.md): 8 rows x 2 per group x 16 lanes (64 invocations),
     * Q4_0 8 x 1 x 32 */
    if (xg) d = t == VKLLM_DTYPE_Q4_0 ? (q8_shape){ 8, 1, 32 } : (q8_shape){ 8, 2, 16 };
    q8_shape s = { rows_wg ? rows_wg : d.rows, rpl ? rpl : d.r, lanes ? lanes : (d.c < cmax ? d.c : cmax) };
    if (s.rows < s.r) s.rows = s.r;
    while (q8_smem(t, n_in, n_vec, s, xg) > dev->f.max_shared_memory) {
        if (rows_wg || s.rows <= s.r) {
            s.rows = 0;
            break;
        }
        s.rows /= 2;
        if (s.rows < s.r) s.rows = s.r;
    }
    return s;
}

int vkllm_matvec_q8_supported(const vkllm_device *dev, vkllm_dtype type, uint32_t n_in, uint32_t n_vec)
{
    if (!dev || q8_refusal(dev, type, n_in, n_vec)) return 0;
    /* both default shapes (Q6_K's depends on n_out) */
    return q8_choose(dev, type, n_in, n_vec, 0, 0, 0, 0, 0).rows != 0 && q8_choose(dev, type, n_in, n_vec, UINT32_MAX, 0, 0, 0, 0).rows != 0;
}

/* rope_kv checks that need no views (type checked by q8_refusal); NULL if fine */
static const char *rope_refusal(const vkllm_device *dev, vkllm_dtype t, const vkllm_kv_write_args *kv)
{
    if (!vkllm_kernel_available(q8x_rope_kernel_name(t))) return "its kernel is not in this build";
    if (!dev->f.shader_fp64 || kv->force_fp32) return "it forms the RoPE angle in double: the device has no shaderFloat64";
    if (!kv->neox || kv->n_rot != kv->head_dim) return "it rotates whole heads, NEOX pairs (neox = 1, n_rot = head_dim)";
    if (kv->n_tok != 1) return "it takes one token (n_tok = 1)";
    if (kv->n_q == 0 || kv->n_kv == 0 || kv->head_dim == 0 || kv->head_dim % 8 || kv->ctx == 0)
        return "the shape needs n_q, n_kv, ctx > 0 and head_dim a multiple of 8";
    if ((uint64_t)(kv->n_q + 2 * kv->n_kv) * kv->head_dim > UINT32_MAX || vkllm_kv_cache_bytes(kv->n_kv, kv->ctx, kv->head_dim) / 2 > UINT32_MAX)
        return "the QKV row or the cache exceeds 32-bit indexing";
    return NULL;
}

int vkllm_matvec_q8_rope_supported(const vkllm_device *dev, vkllm_dtype type, uint32_t n_in, const vkllm_kv_write_args *kv)
{
    if (!dev || !kv || q8_refusal(dev, type, n_in, 1) || !vkllm_kernel_available(q8x_kernel_name(type)) || rope_refusal(dev, type, kv))
        return 0;
    q8_shape sh = q8_choose(dev, type, n_in, 1, (kv->n_q + 2u * kv->n_kv) * kv->head_dim, 0, 0, 0, 1);
    return sh.rows && sh.rows % 4 == 0 && (kv->head_dim / 2) % (sh.rows / 2) == 0;
}

void vkllm_matvec_q8_cost(const vkllm_matvec_q8_args *a, uint64_t *bytes, uint64_t *flops)
{
    uint64_t wb = vkllm_matvec_weight_bytes(a->type, a->n_out, a->n_in);
    int res = a->residual.buf.block != NULL;
    uint64_t xr = a->xq.buf.block ? vkllm_q8_act_bytes(a->n_in, a->n_vec)
                                  : 4ull * a->n_vec * a->n_in * (a->prologue == VKLLM_MVQ_SWIGLU ? 2 : 1) +
                                        (a->prologue == VKLLM_MVQ_RMSNORM ? 4ull * a->n_in : 0);
    uint64_t yw = 4ull * a->n_vec * a->n_out * (res ? 2 : 1);
    if (a->rope_kv) /* Q float32, K and V fp16 */
        yw = 4ull * a->rope_kv->n_q * a->rope_kv->head_dim + 4ull * a->rope_kv->n_kv * a->rope_kv->head_dim;
    if (bytes) *bytes = wb ? wb + xr + yw : 0;
    if (flops) *flops = wb ? 2ull * a->n_vec * a->n_in * a->n_out + (res ? (uint64_t)a->n_vec * a->n_out : 0) : 0;
}

/* Checks of the tuning overrides and the launch shape shared by both paths; 0 with *sh set, else the failure. */
static vkllm_status q8_shape_for(vkllm_device *dev, const vkllm_matvec_q8_args *a, int xg, q8_shape *sh)
{
    uint32_t sg = dev->f.subgroup_size;
    if (a->lanes_per_row && (a->lanes_per_row < 8 || a->lanes_per_row > sg || (a->lanes_per_row & (a->lanes_per_row - 1))))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: lanes_per_row %u must be a power of two in 8..%u (subgroup size)",
                          a->lanes_per_row, sg);
    if (a->rows_per_lane > 4)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: rows_per_lane %u (1..4)", a->rows_per_lane);
    *sh = q8_choose(dev, a->type, a->n_in, a->n_vec, a->n_out, a->rows_per_wg, a->rows_per_lane, a->lanes_per_row, xg);
    if (sh->rows % sh->r || (uint64_t)sh->rows / sh->r * sh->c > dev->f.max_workgroup_invocations)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "matvec_q8: rows_per_wg %u must be a multiple of rows_per_lane %u with (rows / rows_per_lane) x %u lanes <= %u invocations",
                          sh->rows, sh->r, sh->c, dev->f.max_workgroup_invocations);
    if (!sh->rows || q8_smem(a->type, a->n_in, a->n_vec, *sh, xg) > dev->f.max_shared_memory)
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED,
                          "matvec_q8: %s n_in %u x n_vec %u needs %llu bytes of shared memory, the device has %u: use vkllm_op_matvec "
                          "(vkllm_matvec_q8_supported says so beforehand)",
                          vkllm_dtype_name(a->type), a->n_in, a->n_vec,
                          (unsigned long long)q8_smem(a->type, a->n_in, a->n_vec, sh->rows ? *sh : (q8_shape){ 2, 2, sh->c }, xg),
                          dev->f.max_shared_memory);
    return VKLLM_OK;
}

/* The checks and the dispatch both paths share, once each path has checked its own input: `in` is
 * x (in_bytes of floats, prologue applied in the kernel) or the pre-quantized xq (xg = 1). */
static vkllm_status q8_record(vkllm_device *dev, vkllm_chain *chain, const vkllm_matvec_q8_args *a, const char *kernel, int xg,
                              vkllm_view in, uint64_t in_bytes)
{
    const char *tn = vkllm_dtype_name(a->type), *in_name = xg ? "xq" : "x";
    const int has_res = a->residual.buf.block != NULL, rms = !xg && a->prologue == VKLLM_MVQ_RMSNORM;
    const int swiglu = !xg && a->prologue == VKLLM_MVQ_SWIGLU;
    q8_shape sh = { 0, 0, 0 };
    vkllm_status s = q8_shape_for(dev, a, xg, &sh);
    if (s) return s;
    uint64_t wbytes = vkllm_matvec_weight_bytes(a->type, a->n_out, a->n_in);
    const vkllm_kv_write_args *kv = a->rope_kv;
    const vkllm_view yv = kv ? kv->q : a->y;
    uint64_t ybytes = kv ? 4ull * kv->n_q * kv->head_dim : ((uint64_t)(a->n_vec - 1) * a->y_stride + a->n_out) * 4;
    uint64_t rbytes = has_res ? ((uint64_t)(a->n_vec - 1) * a->r_stride + a->n_out) * 4 : 0;
    int staged = a->type == VKLLM_DTYPE_Q6_K || a->type == VKLLM_DTYPE_Q8_0 || a->type == VKLLM_DTYPE_Q4_0;
    uint64_t wbind = staged ? (wbytes + 15) & ~15ull : wbytes;
    uint64_t range = dev->f.max_storage_buffer_range;
    if (range > (1ull << 32) - 16) range = (1ull << 32) - 16; /* chunk and halfword indices are 32-bit */
    if (wbind > range || in_bytes > range || ybytes > range || rbytes > range)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE,
                          "matvec_q8: a binding exceeds the device's maxStorageBufferRange of %llu bytes (weights %llu = %u x %u %s, %s %llu, "
                          "y %llu): split the tensor into row ranges",
                          (unsigned long long)range, (unsigned long long)wbind, a->n_out, a->n_in, tn, in_name,
                          (unsigned long long)in_bytes, (unsigned long long)ybytes);
    if (a->w.offset + wbind > a->w.buf.size)
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE,
                          "matvec_q8: the %llu-byte %s tensor is read in 16-byte chunks and needs %llu bytes from its offset, the buffer "
                          "has %llu: allocate it rounded up to 16 bytes",
                          (unsigned long long)wbytes, tn, (unsigned long long)wbind, (unsigned long long)(a->w.buf.size - a->w.offset));
    const int in_place = has_res ? residual_mode(a->y, ybytes, a->y_stride, a->residual, rbytes, a->r_stride) : 0;
    if (in_place < 0)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: residual overlaps y without being y itself (same offset and stride)");
    if (kv && (sh.rows % 4 || (kv->head_dim / 2) % (sh.rows / 2)))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "matvec_q8: with rope_kv the rows per workgroup (%u) must be a multiple of 4 with head_dim / 2 (%u) a multiple of "
                          "half of them (a rotation pair in one workgroup)",
                          sh.rows, kv->head_dim / 2);
    if (views_overlap(yv, ybytes, in, in_bytes))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: y overlaps %s (every workgroup reads the whole %s)", in_name,
                          in_name);
    if (kv) {
        uint64_t cache = vkllm_kv_cache_bytes(kv->n_kv, kv->ctx, kv->head_dim);
        if (views_overlap(kv->k_cache, cache, in, in_bytes) || views_overlap(kv->v_cache, cache, in, in_bytes) ||
            views_overlap(kv->k_cache, cache, kv->v_cache, cache) || views_overlap(kv->q, ybytes, kv->k_cache, cache) ||
            views_overlap(kv->q, ybytes, kv->v_cache, cache))
            return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8 with rope_kv: q, the K cache, the V cache and xq must not overlap");
    }
    if (a->variant > 1)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: variant %u (0 or VKLLM_MVQ_NO_PREFETCH)", a->variant);
    uint32_t wg = sh.rows / sh.r * sh.c, pf = !(a->variant & VKLLM_MVQ_NO_PREFETCH);
    vkllm_pipeline_desc pd = { .kernel = kernel, .n_bindings = kv ? 7 : 5, .push_size = kv ? 48 : 28, .n_spec = 9,
                               .spec = { wg, sh.rows, sh.r, sh.c, a->n_vec, (uint32_t)has_res, xg ? 0u : a->prologue, a->n_in, pf } };
    vkllm_pipeline *p;
    if ((s = vkllm_pipeline_get(dev, &pd, &p))) return s;
    uint64_t row_bytes = wbytes / a->n_out;
    struct { uint32_t n_out, row_c, xs, ys, rs, up; float eps; uint32_t n_q, n_kv, hd, ctx; float af; } push = {
        a->n_out, (uint32_t)(staged ? row_bytes / 2 : row_bytes / 16), xg ? 0 : a->x_stride, a->y_stride, has_res ? a->r_stride : 0,
        swiglu ? a->up_offset : 0, xg ? 0.0f : a->eps, 0, 0, 0, 0, 0.0f };
    uint64_t bytes, flops;
    vkllm_matvec_q8_cost(a, &bytes, &flops);
    vkllm_binding bi = bind(in, in_bytes, VKLLM_READ);
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : kernel, .n_bindings = 5,
                         .bindings = { bind(a->w, wbind, VKLLM_READ), bi,
                                       bind(a->y, ybytes, in_place ? VKLLM_READ_WRITE : VKLLM_WRITE),
                                       /* absent residual / gain: the input stands in, never read */
                                       has_res ? bind(a->residual, rbytes, VKLLM_READ) : bi,
                                       rms ? bind(a->norm, 4ull * a->n_in, VKLLM_READ) : bi },
                         .push = &push, .bytes = bytes, .flops = flops };
    if (kv) { /* q, pos, RoPE table, K and V caches in place of y, residual and gain */
        uint64_t cache = vkllm_kv_cache_bytes(kv->n_kv, kv->ctx, kv->head_dim);
        push.n_q = kv->n_q, push.n_kv = kv->n_kv, push.hd = kv->head_dim, push.ctx = kv->ctx;
        push.af = kv->attn_factor == 0 ? 1.0f : kv->attn_factor;
        d.n_bindings = 7;
        d.bindings[2] = bind(kv->q, ybytes, VKLLM_WRITE);
        d.bindings[3] = bind(kv->pos, 4, VKLLM_READ);
        d.bindings[4] = bind(kv->table, (uint64_t)kv->head_dim / 2 * 8, VKLLM_READ);
        d.bindings[5] = bind(kv->k_cache, cache, VKLLM_WRITE);
        d.bindings[6] = bind(kv->v_cache, cache, VKLLM_WRITE);
        d.flops += (uint64_t)(kv->n_q + kv->n_kv) * kv->head_dim / 2 * 6;
    }
    grid_2d(dev, ((uint64_t)a->n_out + sh.rows - 1) / sh.rows, d.groups);
    return vkllm_chain_dispatch(chain, &d);
}

vkllm_status vkllm_op_matvec_q8(vkllm_chain *chain, const vkllm_matvec_q8_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    const char *why = q8_refusal(dev, a->type, a->n_in, a->n_vec);
    if (why)
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "matvec_q8: %s (type %s, n_in %u, n_vec %u): use vkllm_op_matvec", why,
                          vkllm_dtype_valid((int)a->type) ? vkllm_dtype_name(a->type) : "?", a->n_in, a->n_vec);
    const int xg = a->xq.buf.block != NULL;
    const char *kernel = xg ? q8x_kernel_name(a->type) : q8_kernel_name(a->type);
    if (a->rope_kv) {
        const vkllm_kv_write_args *kv = a->rope_kv;
        const char *rw = !xg ? "it needs x pre-quantized (xq)" : rope_refusal(dev, a->type, kv);
        if (rw) return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "matvec_q8 with rope_kv: %s", rw);
        if (a->n_vec != 1 || a->residual.buf.block || a->n_out != (kv->n_q + 2 * kv->n_kv) * kv->head_dim)
            return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                              "matvec_q8 with rope_kv: one vector (n_vec %u), no residual, n_out %u = (n_q %u + 2 n_kv %u) x head_dim %u",
                              a->n_vec, a->n_out, kv->n_q, kv->n_kv, kv->head_dim);
        kernel = q8x_rope_kernel_name(a->type);
    }
    if (xg && !vkllm_kernel_available(kernel))
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "matvec_q8: %s is not in this build: use x and a prologue instead of xq", kernel);
    if (a->n_out == 0) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: n_out is 0");
    const int has_res = a->residual.buf.block != NULL;
    if (xg) { /* x pre-quantized (vkllm_op_quantize_q8): the codes view at binding 1 */
        if ((!a->rope_kv && a->y_stride < a->n_out) || (has_res && a->r_stride < a->n_out))
            return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: strides y %u / r %u are smaller than n_out %u", a->y_stride,
                              a->r_stride, a->n_out);
        if (abs_off(a->w) % 16 || abs_off(a->xq) % 16)
            return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: weight and xq offsets must be multiples of 16 bytes");
        uint64_t qbytes = vkllm_q8_act_bytes(a->n_in, a->n_vec);
        if (a->xq.offset + qbytes > a->xq.buf.size)
            return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE, "matvec_q8: xq needs %llu bytes (vkllm_q8_act_bytes(%u, %u)), its view has %llu",
                              (unsigned long long)qbytes, a->n_in, a->n_vec, (unsigned long long)(a->xq.buf.size - a->xq.offset));
        return q8_record(dev, chain, a, kernel, 1, a->xq, qbytes);
    }
    if (a->prologue > VKLLM_MVQ_SWIGLU)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: prologue %u is not VKLLM_MVQ_NONE/RMSNORM/SWIGLU", a->prologue);
    int swiglu = a->prologue == VKLLM_MVQ_SWIGLU, rms = a->prologue == VKLLM_MVQ_RMSNORM;
    uint64_t x_used = (uint64_t)a->n_in + (swiglu ? a->up_offset : 0);
    if (a->x_stride < x_used || a->y_stride < a->n_out || (has_res && a->r_stride < a->n_out))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "matvec_q8: strides x %u / y %u / r %u are smaller than the used %llu / n_out %u", a->x_stride, a->y_stride,
                          a->r_stride, (unsigned long long)x_used, a->n_out);
    if (a->x_stride % 4 || (swiglu && a->up_offset % 4))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: x_stride %u and up_offset %u must be multiples of 4 (vec4 reads)",
                          a->x_stride, a->up_offset);
    if (abs_off(a->w) % 16 || abs_off(a->x) % 16 || (rms && abs_off(a->norm) % 16))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: weight, x and norm offsets must be multiples of 16 bytes");
    if (rms && !a->norm.buf.block) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "matvec_q8: RMSNORM needs the gain view norm");
    return q8_record(dev, chain, a, kernel, 0, a->x, ((uint64_t)(a->n_vec - 1) * a->x_stride + x_used) * 4);
}

/* ---- x quantized once per layer input (kernels/quant_q8.comp) ---- */

uint64_t vkllm_q8_act_bytes(uint32_t n_in, uint32_t n_vec)
{
    if (n_in % 32) return 0;
    return (uint64_t)n_vec * (n_in + (uint64_t)n_in / 32 * 12);
}

void vkllm_quantize_q8_cost(const vkllm_quantize_q8_args *a, uint64_t *bytes, uint64_t *flops)
{
    uint64_t xr = 4ull * a->n_vec * a->n_in * (a->prologue == VKLLM_MVQ_SWIGLU ? 2 : 1) + (a->prologue == VKLLM_MVQ_RMSNORM ? 4ull * a->n_in : 0);
    if (bytes) *bytes = xr + vkllm_q8_act_bytes(a->n_in, a->n_vec);
    if (flops) *flops = 8ull * a->n_in * a->n_vec;
}

vkllm_status vkllm_op_quantize_q8(vkllm_chain *chain, const vkllm_quantize_q8_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (dev->f.subgroup_size < 8)
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "quantize_q8: the subgroup size %u is below 8 (a block is 8 lanes)", dev->f.subgroup_size);
    if (a->n_in == 0 || a->n_in % 32 || a->n_vec == 0 || a->n_vec > 8)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "quantize_q8: n_in %u must be a positive multiple of 32 and n_vec %u in 1..8",
                          a->n_in, a->n_vec);
    if (a->prologue > VKLLM_MVQ_SWIGLU)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "quantize_q8: prologue %u is not VKLLM_MVQ_NONE/RMSNORM/SWIGLU", a->prologue);
    int swiglu = a->prologue == VKLLM_MVQ_SWIGLU, rms = a->prologue == VKLLM_MVQ_RMSNORM;
    uint64_t x_used = (uint64_t)a->n_in + (swiglu ? a->up_offset : 0);
    if (a->x_stride < x_used || a->x_stride % 4 || (swiglu && a->up_offset % 4))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "quantize_q8: x_stride %u must be a multiple of 4 and >= %llu, up_offset %u a multiple of 4", a->x_stride,
                          (unsigned long long)x_used, a->up_offset);
    if (rms && !a->norm.buf.block) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "quantize_q8: RMSNORM needs the gain view norm");
    if (abs_off(a->x) % 16 || abs_off(a->out) % 16 || (rms && abs_off(a->norm) % 16))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "quantize_q8: x, out and norm offsets must be multiples of 16 bytes");
    uint64_t xbytes = ((uint64_t)(a->n_vec - 1) * a->x_stride + x_used) * 4, qbytes = vkllm_q8_act_bytes(a->n_in, a->n_vec);
    if (a->out.offset + qbytes > a->out.buf.size)
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE, "quantize_q8: out needs %llu bytes (vkllm_q8_act_bytes(%u, %u)), its view has %llu",
                          (unsigned long long)qbytes, a->n_in, a->n_vec, (unsigned long long)(a->out.buf.size - a->out.offset));
    if (xbytes > dev->f.max_storage_buffer_range)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "quantize_q8: x (%llu bytes) exceeds maxStorageBufferRange %llu",
                          (unsigned long long)xbytes, (unsigned long long)dev->f.max_storage_buffer_range);
    if (views_overlap(a->out, qbytes, a->x, xbytes)) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "quantize_q8: out overlaps x");
    /* 256 lanes (1024 elements) per workgroup: Phi-4's 5120 / 17920 inputs give 5 / 18 workgroups,
     * each re-reading the 20 KB x for RMSNorm from L2 rather than a second pass or atomics */
    uint32_t wgs = dev->f.max_workgroup_invocations < 256 ? dev->f.max_workgroup_invocations & ~7u : 256;
    /* VKLLM_QUANT_Q8_WG=n (a multiple of the subgroup size up to the device limit) overrides, for benchmarks */
    const char *ov = getenv("VKLLM_QUANT_Q8_WG");
    if (ov && *ov) {
        long v = strtol(ov, NULL, 10);
        if (v > 0 && v <= (long)dev->f.max_workgroup_invocations && v % dev->f.subgroup_size == 0) wgs = (uint32_t)v;
    }
    vkllm_pipeline_desc pd = { .kernel = "quant_q8", .n_bindings = 3, .push_size = 20, .n_spec = 2, .spec = { wgs, a->prologue } };
    vkllm_pipeline *p;
    vkllm_status s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    struct { uint32_t n_in, n_vec, xs, up; float eps; } push = { a->n_in, a->n_vec, a->x_stride, swiglu ? a->up_offset : 0, a->eps };
    uint64_t bytes, flops;
    vkllm_quantize_q8_cost(a, &bytes, &flops);
    vkllm_binding bx = bind(a->x, xbytes, VKLLM_READ);
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : "quant_q8", .n_bindings = 3,
                         .bindings = { bx, rms ? bind(a->norm, 4ull * a->n_in, VKLLM_READ) : bx /* unused gain: x stands in */,
                                       bind(a->out, qbytes, VKLLM_WRITE) },
                         .push = &push, .bytes = bytes, .flops = flops };
    d.groups[0] = (a->n_in / 4 + wgs - 1) / wgs;
    d.groups[1] = a->n_vec;
    d.groups[2] = 1;
    return vkllm_chain_dispatch(chain, &d);
}
