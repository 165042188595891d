/* Kernel operations of the matvec family (see ops.h for the pattern): the quantized mat-vec of
 * decode, y = W x (+ r), for 1 to 8 vectors at once. */
#ifndef VKLLM_OPS_MATVEC_H
#define VKLLM_OPS_MATVEC_H
#include "vkllm/ops.h"
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

#ifdef __cplusplus
}
#endif
#endif
