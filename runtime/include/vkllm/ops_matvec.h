/* Kernel operations of the matvec family (see ops.h for the pattern): the quantized mat-vec of
 * decode, y = W x (+ r), for 1 to 8 vectors at once. */
#ifndef VKLLM_OPS_MATVEC_H
#define VKLLM_OPS_MATVEC_H
#include "vkllm/ops.h"
#include "vkllm/ops_attn.h"
#include "vkllm/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[v][o] = sum_i W[o][i] * x[v][i] (+ residual[v][o]) for v < n_vec, o < n_out.
 * w: the tensor exactly as in GGUF: n_out rows of n_in elements of `type` (row bytes =
 *    vkllm_dtype_bytes(type, n_in)), rows contiguous; F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K.
 *    n_in must be a whole number of blocks (256 for K types, 32 for Q4_0/Q8_0, any for float types).
 * x, y, residual: float32, vector v at v * {x,y,r}_stride elements. For quantized types x_stride must
 *    be a multiple of 4 (x is read as vec4). residual.buf.block == NULL: none; residual may be y itself
 *    (same view and r_stride == y_stride) for an in-place y += W x, otherwise it must not overlap y.
 * Bindings must fit in maxStorageBufferRange (refused with a message otherwise). The kernel reads
 * the weights as 32-bit words (16-byte chunks for staged Q6_K/Q8_0/Q4_0 where the buffer has room):
 * a tensor of an odd number of halfwords (possible for Q8_0/Q4_0/Q6_K with odd row and block counts)
 * needs 2 bytes after it in its buffer (VKLLM_ERROR_OUT_OF_RANGE otherwise).
 * rows_per_group (rows per group of lanes, 1..8), k_split (groups sharing a row, 1..16) and
 * lanes_per_group (a power of two <= the subgroup size) are tuning overrides for benchmarks and tests
 * (see kernels/matvec.comp); 0 = chosen from the device and shape (2, 1, the subgroup size). stage: Q6_K/Q8_0/Q4_0
 * blocks through shared memory, 0 = auto (Q6_K where possible: lanes_per_group a multiple of 8, and the buffer holds the
 * 16-byte chunk with the tensor's last byte), 1 = never, 2 = required (error if impossible). */
typedef struct vkllm_matvec_args {
    vkllm_view w;
    vkllm_dtype type;
    uint32_t n_out, n_in;
    vkllm_view x, y, residual;
    uint32_t n_vec, x_stride, y_stride, r_stride;
    const char *name; /* dispatch name for profiling (NULL: "matvec_<type>") */
    uint32_t rows_per_group, k_split, lanes_per_group, stage;
} vkllm_matvec_args;
vkllm_status vkllm_op_matvec(vkllm_chain *chain, const vkllm_matvec_args *a);

/* What one call must move and compute (profiling): bytes = weight bytes + 4*n_vec*(n_in + n_out)
 * (+ 4*n_vec*n_out with a residual), flops = 2*n_vec*n_in*n_out (+ n_vec*n_out). 0 for a bad type
 * or a partial block. */
void vkllm_matvec_cost(const vkllm_matvec_args *a, uint64_t *bytes, uint64_t *flops);
/* Bytes of the weight tensor (n_out rows), 0 for a bad type or partial block. */
uint64_t vkllm_matvec_weight_bytes(vkllm_dtype type, uint32_t n_out, uint32_t n_in);

/* ---- 8-bit activations, integer dot products (kernels/matvec_q8.comp) ----
 * The vector is quantized per block of 32 elements (after the prologue P) exactly as
 * vkllm_ref_quantize_q8_act: amax = max|x'|, d = amax / 127, q = round-half-away(x' * (1/d)) clamped
 * to [-127, 127] (q = 0 where amax == 0), in float32. Each workgroup does this itself into shared
 * memory, so the RMSNorm before QKV / gate-up / output and the SwiGLU before down need no dispatch
 * of their own. */
enum { VKLLM_MVQ_NONE = 0, VKLLM_MVQ_RMSNORM = 1, VKLLM_MVQ_SWIGLU = 2 };
/* y[v][o] = sum_i W[o][i] * Q8(P(x[v]))[i] (+ residual[v][o]), v < n_vec: P the prologue, Q8 the
 * per-32 int8 quantization above. Types Q4_K Q5_K Q6_K Q8_0 Q4_0.
 * P: NONE x' = x; RMSNORM x'[i] = x[i] * norm[i] / sqrt(mean(x^2) + eps); SWIGLU
 * x'[i] = silu(x[i]) * x[up_offset + i], silu(a) = a / (1 + exp(-a)).
 * Offsets of w, x and norm multiples of 16 bytes; x_stride and up_offset multiples of 4. Q6_K, Q8_0
 * and Q4_0 weights are read in 16-byte chunks: the buffer must hold the tensor rounded up to 16
 * bytes (VKLLM_ERROR_OUT_OF_RANGE otherwise; tensors 256-byte aligned in a pool always are, but for
 * the last one in its buffer). Unsupported type/shape/device (see vkllm_matvec_q8_supported):
 * VKLLM_ERROR_UNSUPPORTED with a message. rows_per_wg, rows_per_lane and lanes_per_row are tuning
 * overrides for benchmarks and tests (0 = chosen from the device and the shape). */
typedef struct vkllm_matvec_q8_args {
    vkllm_view w;
    vkllm_dtype type;
    uint32_t n_out, n_in;
    vkllm_view x;           /* float32; vector v at v * x_stride elements; SWIGLU: gate at [0, n_in), up at [up_offset, up_offset + n_in) */
    vkllm_view y, residual; /* as vkllm_matvec_args (residual may be y itself: in place y += W x') */
    uint32_t n_vec, x_stride, y_stride, r_stride;
    uint32_t prologue;      /* VKLLM_MVQ_* */
    vkllm_view norm;        /* RMSNORM: float32 gain g[n_in] */
    float eps;              /* RMSNORM */
    uint32_t up_offset;     /* SWIGLU, elements */
    const char *name;       /* dispatch name for profiling (NULL: "matvec_q8_<type>") */
    uint32_t rows_per_wg;   /* tuning override, 0 = chosen from device and shape */
    uint32_t rows_per_lane; /* tuning: rows each lane group keeps (1..4), 0 = 2 */
    uint32_t lanes_per_row; /* tuning: lanes sharing a row, power of two, 8..subgroup size; 0 = chosen */
    uint32_t variant;       /* experiments (benchmarks, tests): VKLLM_MVQ_NO_PREFETCH; 0 = default */
    vkllm_view xq;          /* xq.buf.block != NULL: x pre-quantized by vkllm_op_quantize_q8 (same n_in and n_vec;
                             * offset a multiple of 16 bytes): read from there, and x, x_stride, prologue, norm,
                             * eps and up_offset are ignored (no prologue, no shared x: modules matvec_q8x_*) */
    const struct vkllm_kv_write_args *rope_kv;
                            /* non-NULL (with xq, n_vec 1, no residual): the QKV projection of one token with
                             * vkllm_op_kv_write's work as its epilogue (modules matvec_q8x_rope_*): the
                             * rows are rope_kv's fused Q, K, V (n_out = (n_q + 2 n_kv) head_dim), Q is
                             * rotated into rope_kv->q, K rotated and V stored into the caches at
                             * rope_kv->pos[0]; y, y_stride and rope_kv->qkv are ignored. Needs neox,
                             * n_rot = head_dim, n_tok 1, shaderFloat64 and a launch shape whose rows per
                             * workgroup R satisfy R % 4 == 0 and (head_dim / 2) % (R / 2) == 0 (head_dim a
                             * multiple of 8 with the default 8 rows); vkllm_matvec_q8_rope_supported says
                             * beforehand. One dispatch fewer per layer than mat-vec + kv_write. */
} vkllm_matvec_q8_args;
/* variant bit: load each step's weights only when it starts (no second register set in flight) */
enum { VKLLM_MVQ_NO_PREFETCH = 1 };
vkllm_status vkllm_op_matvec_q8(vkllm_chain *chain, const vkllm_matvec_q8_args *a);
/* 1 when vkllm_op_matvec_q8 can run this type/shape/n_vec on dev (int dot feature present, type
 * supported, n_in a whole number of blocks, shared memory fits), else 0. */
int vkllm_matvec_q8_supported(const vkllm_device *dev, vkllm_dtype type, uint32_t n_in, uint32_t n_vec);
/* 1 when vkllm_op_matvec_q8 with xq and rope_kv = kv can run this type and n_in on dev (the checks of
 * vkllm_matvec_q8_supported, the module in this build, and kv's shape as rope_kv describes), else 0. */
int vkllm_matvec_q8_rope_supported(const vkllm_device *dev, vkllm_dtype type, uint32_t n_in, const struct vkllm_kv_write_args *kv);
/* bytes = weight bytes + x read (2x for SWIGLU, + the gain for RMSNORM) + y written (+ residual read);
 * flops = 2*n_vec*n_in*n_out (+ n_vec*n_out with a residual). 0 for a bad type or partial block. */
void vkllm_matvec_q8_cost(const vkllm_matvec_q8_args *a, uint64_t *bytes, uint64_t *flops);

/* ---- x quantized once per layer input (kernels/quant_q8.comp) ----
 * The prologue and quantization of vkllm_op_matvec_q8 in a dispatch of their own, written to a global
 * buffer that any number of vkllm_op_matvec_q8 calls then read (vkllm_matvec_q8_args.xq) instead of
 * each workgroup re-doing them: same arithmetic (kernels/common/q8act.glsl), same codes.
 * Layout of out (n = n_in, NB = n / 32), dense (no stride):
 *   bytes [0, n_vec n):              codes int8 [n_vec][n] (element i of vector v at byte v n + i)
 *   then [n_vec n, + 8 n_vec NB):    float32 pairs (d, d * sum of the block's 32 codes) [n_vec][NB]
 *   then 4 n_vec NB bytes:           int32 per block: sum of codes 0..15 (low 16 bits, signed) and
 *                                    16..31 (high 16 bits) [n_vec][NB] (Q6_K's offset terms)
 * vkllm_q8_act_bytes(n_in, n_vec) = n_vec * (n + 12 NB). */
typedef struct vkllm_quantize_q8_args {
    vkllm_view x;        /* float32, vector v at v * x_stride elements (offset a multiple of 16 bytes) */
    vkllm_view out;      /* vkllm_q8_act_bytes(n_in, n_vec) bytes, offset a multiple of 16; must not overlap x */
    uint32_t n_in;       /* a multiple of 32 */
    uint32_t n_vec;      /* 1..8 (as vkllm_op_matvec_q8) */
    uint32_t x_stride;   /* elements, a multiple of 4, >= n_in (+ up_offset for SWIGLU) */
    uint32_t prologue;   /* VKLLM_MVQ_* */
    vkllm_view norm;     /* RMSNORM: float32 gain g[n_in] */
    float eps;           /* RMSNORM */
    uint32_t up_offset;  /* SWIGLU, elements, a multiple of 4 */
    const char *name;    /* dispatch name for profiling (NULL: "quant_q8") */
} vkllm_quantize_q8_args;
/* out = Q8(P(x)) in the layout above. VKLLM_ERROR_INVALID_ARGUMENT with a message for a bad shape,
 * stride, alignment or a missing gain; VKLLM_ERROR_UNSUPPORTED where the device's subgroups are below 8. */
vkllm_status vkllm_op_quantize_q8(vkllm_chain *chain, const vkllm_quantize_q8_args *a);
/* Bytes of the quantized buffer for n_vec vectors of n_in elements (0 when n_in is not a multiple of 32). */
uint64_t vkllm_q8_act_bytes(uint32_t n_in, uint32_t n_vec);
/* bytes = x read (2x SWIGLU, + gain RMSNORM) + vkllm_q8_act_bytes written; flops ~ 8 n_in n_vec. */
void vkllm_quantize_q8_cost(const vkllm_quantize_q8_args *a, uint64_t *bytes, uint64_t *flops);

#ifdef __cplusplus
}
#endif
#endif
