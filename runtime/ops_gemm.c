/* gemm family: prefill matrix product with GGUF-format weights (kernels/gemm.comp). Chooses, in this
 * order: the NV cooperative_matrix2 kernel (workgroup-scope fp16 x fp16 -> fp32) where the device has
 * VK_NV_cooperative_matrix2; the KHR cooperative-matrix kernel where the device has a usable
 * fp16 x fp16 -> fp32 subgroup shape; else the portable float32 tiled kernel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ops_internal.h"
#include "vkllm/ops.h"

/* Tile shapes, as in kernels/gemm.comp. */
enum { PORT_BN = 64, PORT_WG = 256, CM_BM = 128, CM_BN = 128, CM_BK = 32, CM_SUBGROUPS = 8, CM2_WG = 256 };

static const char *type_suffix(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: return "f32";
    case VKLLM_DTYPE_F16: return "f16";
    case VKLLM_DTYPE_BF16: return "bf16";
    case VKLLM_DTYPE_Q8_0: return "q8_0";
    case VKLLM_DTYPE_Q4_0: return "q4_0";
    case VKLLM_DTYPE_Q4_K: return "q4_k";
    case VKLLM_DTYPE_Q5_K: return "q5_k";
    case VKLLM_DTYPE_Q6_K: return "q6_k";
    }
    return NULL;
}

/* Workgroup tile of the coopmat kernels: token rows x W rows x k-step, and 1 or 2 shared buffers.
 * $VKLLM_GEMM_CM_TILE=256 picks 128 x 256 x 16 (X re-read half as often); "BMxBNxBK" or "BMxBNxBKs"
 * (s: one shared buffer, two barriers per step) picks any tile for the cooperative_matrix2 kernel
 * (tuning; the KHR kernel takes only 128 or 256 W rows and ignores it). Read per call, so a benchmark
 * can compare tiles in one process. cm2 = 1: for the cooperative_matrix2 kernel. */
typedef struct { uint32_t bm, bn, bk, nbuf, direct, decode; } cm_tile_t;

/* Default cooperative_matrix2 tiles, from bench-gemm --cm2-tiles on the H100 (Phi-4 shapes, M = 512
 * and 2048): block-quantized W spends its staging time on dequantization, so few W rows per token row
 * win (256 x 128 x 16, double-buffered: ~90-111 TFLOP/s in Q4_K against 74-85 for 128 x 128 x 32);
 * f16/bf16/f32 W is a plain 16-byte load, so more W rows per X re-read and a deeper k-step win
 * (128 x 256 x 32, one buffer: 123-154 TFLOP/s in F16 against 100-110). M <= 64 takes 64 token rows so
 * that few padded rows are computed. */
static cm_tile_t cm2_staged_tile(vkllm_dtype type, uint32_t m)
{
    int plain = type == VKLLM_DTYPE_F16 || type == VKLLM_DTYPE_BF16 || type == VKLLM_DTYPE_F32;
    if (m && m <= 64) return (cm_tile_t){ 64, 128, 32, 2, 0, 0 };
    return plain ? (cm_tile_t){ 128, 256, 32, 1, 0, 0 } : (cm_tile_t){ 256, 128, 16, 2, 0, 0 };
}

/* Tiles of the decode-load kernel (gemm_cm2d_*: W by tensor loads with a decode function, never
 * staged by us). H100 sweep (bench-gemm --mix, Q5_K 5120 -> 7680, M 512/2048, TFLOP/s): 256 x 128 x 32
 * with loads one step ahead 27.0/27.6, 128 x 128 x 16 24.2/24.0, 128 x 128 x 32 without step-ahead
 * loads 20.2/20.3 and with them 17.9/19.1, 128 x 256 x 64 8.0/8.1; the staged kernel 86.5/90.0 in the
 * same run. Not the default: see cm2_decode_wanted. */
static cm_tile_t cm2_decode_tile(vkllm_dtype type, uint32_t m)
{
    (void)type;
    if (m && m <= 64) return (cm_tile_t){ 64, 128, 32, 2, 0, 1 };
    return (cm_tile_t){ 256, 128, 32, 2, 0, 1 };
}

/* $VKLLM_GEMM_CM2=staged|decode picks the cooperative_matrix2 kernel per call (tests and benchmarks
 * compare both in one process); unset: the staged kernel, 3-5x faster on the H100 at every Phi-4 shape
 * measured (decode 15-39 TFLOP/s, staged 53-106; driver 580.159.04). */
static int cm2_decode_wanted(void)
{
    const char *e = getenv("VKLLM_GEMM_CM2");
    if (e && !strcmp(e, "decode")) return 1;
    if (e && !strcmp(e, "staged")) return 0;
    return 0; /* default: staged */
}

static cm_tile_t cm2_default_tile(vkllm_dtype type, uint32_t m)
{
    return cm2_decode_wanted() ? cm2_decode_tile(type, m) : cm2_staged_tile(type, m);
}

static cm_tile_t cm_tile_for(int cm2, vkllm_dtype type, uint32_t m)
{
    cm_tile_t t = { CM_BM, CM_BN, CM_BK, 2, 0, 0 };
    if (cm2) t = cm2_default_tile(type, m);
    const char *e = getenv("VKLLM_GEMM_CM_TILE");
    if (!e) return t;
    if (!strcmp(e, "256")) return (cm_tile_t){ CM_BM, 256, 16, 2, 0, 0 };
    unsigned bm, bn, bk;
    char sfx[8] = "";
    if (cm2 && sscanf(e, "%ux%ux%u%7s", &bm, &bn, &bk, sfx) >= 3) {
        /* suffixes: s one buffer; p two buffers and a two-deep prefetch; g (f16 W only) W by tensor loads; G X too;
         * d the decode-load kernel (nothing staged; s there: no loads one step ahead) */
        uint32_t decode = strchr(sfx, 'd') != NULL;
        uint32_t direct = decode || type != VKLLM_DTYPE_F16 ? 0 : strchr(sfx, 'G') ? 2 : strchr(sfx, 'g') ? 1 : 0;
        return (cm_tile_t){ bm, bn, bk, strchr(sfx, 's') ? 1u : strchr(sfx, 'p') && !decode ? 3u : 2u, direct, decode };
    }
    return t;
}

/* A cooperative_matrix2 tile the kernel can run: the staging loops give every thread whole vec4s of X
 * and groups of 8 weights, the workgroup's fp32 accumulator stays within 128 registers per thread,
 * the k-step divides K, and the tiles fit in shared memory. */
static int cm2_tile_ok(const vkllm_features *f, cm_tile_t t, uint32_t n_in)
{
    int dims = (t.bm == 64 || t.bm == 128 || t.bm == 256) && (t.bn == 64 || t.bn == 128 || t.bn == 256) &&
               (t.bk == 16 || t.bk == 32 || t.bk == 64) && t.bm * t.bn <= 128 * CM2_WG && n_in % t.bk == 0;
    if (t.decode) return dims && (t.nbuf == 1 || t.nbuf == 2); /* no shared memory of ours */
    return dims && (t.nbuf >= 1 && t.nbuf <= 3) && t.bm * t.bk / 4 % CM2_WG == 0 && t.bn * t.bk / 8 % CM2_WG == 0 &&
           (t.nbuf == 1 ? 1u : 2u) * (t.bm + t.bn) * (t.bk + 8u) * 2u <= f->max_shared_memory;
}

static void cm_tile(uint32_t *bn, uint32_t *bk)
{
    cm_tile_t t = cm_tile_for(0, VKLLM_DTYPE_F16, 0);
    *bn = t.bn;
    *bk = t.bk;
}

/* The coopmat shape for the kernel: f16 A/B, f32 C/result, subgroup scope, dividing the 64 x 32
 * subgroup block and the 16-deep k-step. 16x16x16 first (fewest loads per multiply), else the
 * largest. NULL if none. */
static const vkllm_coopmat_shape *pick_shape(const vkllm_features *f)
{
    const vkllm_coopmat_shape *best = NULL;
    for (uint32_t i = 0; i < f->n_coopmat_shapes; i++) {
        const vkllm_coopmat_shape *s = &f->coopmat_shapes[i];
        if (!s->subgroup_scope || strcmp(s->a_type, "f16") || strcmp(s->b_type, "f16") || strcmp(s->c_type, "f32") ||
            strcmp(s->r_type, "f32"))
            continue;
        if (!s->m || !s->n || !s->k || 64 % s->m || 32 % s->n || 16 % s->k) continue;
        if (s->m == 16 && s->n == 16 && s->k == 16) return s;
        if (!best || s->m * s->n * s->k > best->m * best->n * best->k) best = s;
    }
    return best;
}

/* $VKLLM_GEMM_CM=khr: the KHR kernel even where cooperative_matrix2 is usable (read per call, for
 * tests and benchmarks comparing both in one process; VKLLM_DISABLE=coopmat2 does it device-wide). */
static int cm2_allowed(void)
{
    const char *e = getenv("VKLLM_GEMM_CM");
    return !(e && !strcmp(e, "khr"));
}

static const char *cm_kernel_name(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: return "gemm_cm_f32";
    case VKLLM_DTYPE_F16: return "gemm_cm_f16";
    case VKLLM_DTYPE_BF16: return "gemm_cm_bf16";
    case VKLLM_DTYPE_Q8_0: return "gemm_cm_q8_0";
    case VKLLM_DTYPE_Q4_0: return "gemm_cm_q4_0";
    case VKLLM_DTYPE_Q4_K: return "gemm_cm_q4_k";
    case VKLLM_DTYPE_Q5_K: return "gemm_cm_q5_k";
    case VKLLM_DTYPE_Q6_K: return "gemm_cm_q6_k";
    }
    return NULL;
}

static const char *cm2d_kernel_name(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: return "gemm_cm2d_f32";
    case VKLLM_DTYPE_F16: return "gemm_cm2d_f16";
    case VKLLM_DTYPE_BF16: return "gemm_cm2d_bf16";
    case VKLLM_DTYPE_Q8_0: return "gemm_cm2d_q8_0";
    case VKLLM_DTYPE_Q4_0: return "gemm_cm2d_q4_0";
    case VKLLM_DTYPE_Q4_K: return "gemm_cm2d_q4_k";
    case VKLLM_DTYPE_Q5_K: return "gemm_cm2d_q5_k";
    case VKLLM_DTYPE_Q6_K: return "gemm_cm2d_q6_k";
    }
    return NULL;
}

/* The decode-load kernel can run: it reaches W through a physical pointer (bufferDeviceAddress, which
 * also gives every pool buffer its address) and declares its blocks with 16-bit members. */
static int cm2d_ok(vkllm_device *dev, vkllm_dtype type)
{
    const vkllm_features *f = &dev->f;
    const char *name = cm2d_kernel_name(type);
    return name && f->buffer_device_address && f->shader_int16 && f->storage_16bit && vkllm_kernel_available(name);
}

/* The cooperative_matrix2 tile for this call: the asked-for (or default) one; a decode tile where the
 * decode kernel cannot run falls back to the staged default. */
static cm_tile_t cm2_tile(vkllm_device *dev, vkllm_dtype type, uint32_t m)
{
    cm_tile_t t = cm_tile_for(1, type, m);
    if (t.decode && !cm2d_ok(dev, type)) t = cm2_staged_tile(type, m);
    return t;
}

static const char *cm2_kernel_name(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: return "gemm_cm2_f32";
    case VKLLM_DTYPE_F16: return "gemm_cm2_f16";
    case VKLLM_DTYPE_BF16: return "gemm_cm2_bf16";
    case VKLLM_DTYPE_Q8_0: return "gemm_cm2_q8_0";
    case VKLLM_DTYPE_Q4_0: return "gemm_cm2_q4_0";
    case VKLLM_DTYPE_Q4_K: return "gemm_cm2_q4_k";
    case VKLLM_DTYPE_Q5_K: return "gemm_cm2_q5_k";
    case VKLLM_DTYPE_Q6_K: return "gemm_cm2_q6_k";
    }
    return NULL;
}

/* 1 if the cooperative_matrix2 kernel can run: the device's feature record (all cm2 features we use)
 * and fp16 arithmetic, the kernel in this build, K % 32 == 0, 256 invocations and the double-buffered
 * fp16 X and W tiles in shared memory. */
static int uses_cm2(vkllm_device *dev, vkllm_dtype type, uint32_t n_in, const char **kernel)
{
    const vkllm_features *f = &dev->f;
    cm_tile_t t = cm2_tile(dev, type, 0);
    const char *name = t.decode ? cm2d_kernel_name(type) : cm2_kernel_name(type);
    /* the f16 kernel declares a 16-bit storage view of W (its optional tensor-load path) */
    int ok = name && f->coopmat2 && f->shader_fp16 && (type != VKLLM_DTYPE_F16 || f->storage_16bit) && cm2_allowed() && n_in % 32 == 0 &&
             cm2_tile_ok(f, t, n_in) && vkllm_kernel_available(name) && CM2_WG <= f->max_workgroup_invocations;
    if (ok && kernel) *kernel = name;
    return ok;
}

int vkllm_gemm_uses_coopmat(vkllm_device *dev, vkllm_dtype type, uint32_t n_in, const char **kernel)
{
    const char *name = cm_kernel_name(type);
    if (!dev || !name) return 0;
    if (uses_cm2(dev, type, n_in, kernel)) return 1;
    const vkllm_features *f = &dev->f;
    const vkllm_coopmat_shape *s = f->coopmat ? pick_shape(f) : NULL;
    uint32_t bn, bk;
    cm_tile(&bn, &bk);
    int ok = s && f->shader_fp16 && n_in % 32 == 0 && vkllm_kernel_available(name) &&
             f->subgroup_size <= 64 && /* so every thread loads at least one vec4 of X per step */
             (uint64_t)CM_SUBGROUPS * f->subgroup_size <= f->max_workgroup_invocations &&
             /* double-buffered fp16 X and W tiles + the epilogue scratch, as the kernel declares them */
             2u * (CM_BM + bn) * (bk + 8u) * 2u + CM_SUBGROUPS * s->m * s->n * 4u <= f->max_shared_memory;
    if (ok && kernel) *kernel = name;
    return ok;
}



vkllm_status vkllm_op_gemm(vkllm_chain *chain, const vkllm_gemm_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    const char *suf = type_suffix(a->type);
    if (!suf) return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED_TYPE, "gemm: weight type %d is not supported", (int)a->type);
    if (a->m == 0 || a->n_out == 0 || a->n_in == 0)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "gemm: empty shape (m %u, n_out %u, n_in %u)", a->m, a->n_out,
                          a->n_in);
    size_t be = vkllm_dtype_block_elems(a->type);
    if (a->n_in % be)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "gemm: n_in %u is not a whole number of %s blocks (%zu elements each); pad the tensor's rows",
                          a->n_in, vkllm_dtype_name(a->type), be);
    int has_res = a->residual.buf.block != NULL;
    if (a->x_stride < a->n_in || a->y_stride < a->n_out || (has_res && a->r_stride < a->n_out))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "gemm: strides x %u, y %u, r %u are smaller than n_in %u / n_out %u",
                          a->x_stride, a->y_stride, a->r_stride, a->n_in, a->n_out);
    uint64_t row_bytes;
    vkllm_status s = vkllm_dtype_bytes(a->type, a->n_in, &row_bytes);
    if (s) return vkllm_fail(dev, s, "gemm: bad row size for n_in %u", a->n_in);
    uint64_t w_bytes = row_bytes * a->n_out;
    uint64_t x_elems = (uint64_t)(a->m - 1) * a->x_stride + a->n_in;
    uint64_t y_elems = (uint64_t)(a->m - 1) * a->y_stride + a->n_out;
    uint64_t r_elems = has_res ? (uint64_t)(a->m - 1) * a->r_stride + a->n_out : 0;
    /* the kernel indexes in 32-bit: elements of x/y/r, halfwords of w */
    if (x_elems > UINT32_MAX || y_elems > UINT32_MAX || r_elems > UINT32_MAX || w_bytes / 2 > UINT32_MAX)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "gemm: operands exceed 32-bit indexing (m %u, n_out %u, n_in %u); split the call",
                          a->m, a->n_out, a->n_in);
    int in_place = has_res && same_view(a->residual, a->y);
    /* The kernel reads W in 32-bit words, and rows of Q8_0/Q4_0/Q6_K/F16/BF16 may end on a half word:
     * the binding must cover the last word (a GGUF loader's 32-byte tensor alignment always does). */
    uint64_t w_range = (w_bytes + 3) & ~(uint64_t)3;
    if (a->w.offset + w_range > a->w.buf.size)
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE,
                          "gemm: the weight view needs %llu bytes (n_out %u x %llu-byte rows, rounded up to 4) but its "
                          "buffer has %llu after offset %llu; allocate the weight buffer rounded up to 4 bytes",
                          (unsigned long long)w_range, a->n_out, (unsigned long long)row_bytes,
                          (unsigned long long)(a->w.buf.size > a->w.offset ? a->w.buf.size - a->w.offset : 0),
                          (unsigned long long)a->w.offset);

    const char *cm_kernel = NULL;
    int coop = !a->force_portable && vkllm_gemm_uses_coopmat(dev, a->type, a->n_in, &cm_kernel);
    const vkllm_features *f = &dev->f;
    uint32_t vec4x = a->x_stride % 4 == 0 && a->x.offset % 16 == 0;
    char kernel[32];
    vkllm_pipeline_desc pd = { .kernel = kernel, .n_bindings = 4, .push_size = 32, .n_spec = 11 };
    uint32_t bm, bn;
    int cm2 = coop && !strncmp(cm_kernel, "gemm_cm2", 8);
    if (cm2) {
        pd.spec[0] = CM2_WG;
        pd.spec[1] = pd.spec[2] = pd.spec[3] = 16; /* unused: the driver tiles the workgroup-scope product */
        pd.spec[5] = 4;                            /* unused */
        cm_tile_t t = cm2_tile(dev, a->type, a->m);
        if (!cm2_tile_ok(f, t, a->n_in)) t = cm2_tile(dev, a->type, 0); /* the small-M tile does not fit here */
        /* the kernel of the tile actually used (uses_cm2 checked the M-independent one, same kind) */
        snprintf(kernel, sizeof kernel, "%s", t.decode ? cm2d_kernel_name(a->type) : cm2_kernel_name(a->type));
        pd.spec[6] = t.bn;
        pd.spec[7] = t.bk;
        pd.spec[8] = t.bm;
        pd.spec[9] = t.nbuf;
        pd.spec[10] = t.direct;
        bm = t.bm;
        bn = t.bn;
    } else if (coop) {
        const vkllm_coopmat_shape *sh = pick_shape(f);
        snprintf(kernel, sizeof kernel, "%s", cm_kernel);
        pd.spec[0] = CM_SUBGROUPS * f->subgroup_size;
        pd.spec[1] = sh->m;
        pd.spec[2] = sh->n;
        pd.spec[3] = sh->k;
        pd.spec[5] = 4; /* unused */
        cm_tile(&pd.spec[6], &pd.spec[7]);
        pd.spec[8] = CM_BM;
        pd.spec[9] = 2;
        /* the kernel lays out exactly 8 subgroups: pin the size where the driver could vary it */
        if (f->subgroup_size_control && f->min_subgroup_size != f->max_subgroup_size) pd.required_subgroup_size = f->subgroup_size;
        bm = CM_BM;
        bn = pd.spec[6];
    } else {
        snprintf(kernel, sizeof kernel, "gemm_%s", suf);
        if (PORT_WG > f->max_workgroup_invocations)
            return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "gemm: the portable kernel needs %d invocations per workgroup, device has %u",
                              PORT_WG, f->max_workgroup_invocations);
        pd.spec[0] = PORT_WG;
        pd.spec[1] = pd.spec[2] = pd.spec[3] = 16; /* unused */
        /* rows per thread: the tile is 16 * rm tokens, so small M computes few padded rows */
        uint32_t rm = a->m <= 16 ? 1 : a->m <= 32 ? 2 : 4;
        pd.spec[5] = rm;
        pd.spec[6] = 128; /* unused */
        pd.spec[7] = 32;
        pd.spec[8] = 128; /* unused */
        pd.spec[9] = 2;   /* unused */
        bm = 16 * rm;
        bn = PORT_BN;
    }
    pd.spec[4] = vec4x;
    vkllm_pipeline *p;
    s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    uint32_t gx = (a->m + bm - 1) / bm, gy = (a->n_out + bn - 1) / bn;
    if (gx > f->max_workgroup_count[0] || gy > f->max_workgroup_count[1])
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "gemm: grid %u x %u exceeds the device's workgroup counts", gx, gy);
    struct { uint32_t M, N, K, xs, ys, rs, has_res, row_h; } push = {
        a->m, a->n_out, a->n_in, a->x_stride, a->y_stride, has_res ? a->r_stride : 0, (uint32_t)has_res, (uint32_t)(row_bytes / 2) };
    /* without a residual, binding 3 is x again (never read: has_res is 0) */
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : kernel, .n_bindings = 4,
                         .bindings = { bind(a->w, w_range, VKLLM_READ), bind(a->x, x_elems * 4, VKLLM_READ),
                                       bind(a->y, y_elems * 4, in_place ? VKLLM_READ_WRITE : VKLLM_WRITE),
                                       has_res ? bind(a->residual, r_elems * 4, VKLLM_READ) : bind(a->x, x_elems * 4, VKLLM_READ) },
                         .push = &push,
                         .groups = { gx, gy, 1 },
                         .bytes = w_bytes + (uint64_t)a->m * a->n_in * 4 + (uint64_t)a->m * a->n_out * (has_res ? 8 : 4),
                         .flops = 2ull * a->m * a->n_out * a->n_in };
    return vkllm_chain_dispatch(chain, &d);
}
