/* Kernel operations of the gemm family (see ops.h for the pattern): the prefill matrix product of
 * float32 activations with a weight matrix stored exactly as in GGUF. */
#ifndef VKLLM_OPS_GEMM_H
#define VKLLM_OPS_GEMM_H
#include "vkllm/ops.h"
#include "vkllm/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Y[m][n] = sum_k X[m][k] * W[n][k]  (+ R[m][n] if residual.buf.block != NULL)
 * for m < m (tokens), n < n_out, k < n_in.
 * w: n_out rows of n_in elements of `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), rows
 *    contiguous, exactly as a GGUF tensor [n_in, n_out]; n_in must be a whole number of blocks.
 * x: float32 (m, x_stride); y: float32 (m, y_stride); residual: float32 (m, r_stride), may be the same
 *    view as y (in-place residual add: y += X W^T). y may not overlap x or w otherwise.
 * Variant (force_portable == 0 and n_in % 32 == 0): the NV cooperative_matrix2 kernel (workgroup
 * scope) where the device has VK_NV_cooperative_matrix2, else the KHR cooperative-matrix kernel where
 * it has a usable f16 x f16 -> f32 subgroup shape (both need the kernel in the build); otherwise the
 * portable float32 tiled kernel. VKLLM_DISABLE=coopmat2 forces the KHR kernel, VKLLM_DISABLE=coopmat
 * the portable one, for the whole device; VKLLM_GEMM_CM=khr the KHR kernel per call. The
 * cooperative-matrix paths round X and W to fp16 (NMSE ~1e-7..1e-5 against the float32 result), so
 * |X| and |W| must stay below 65504. Tuning, read per call: VKLLM_GEMM_CM_TILE=256 (128 x 256 x 16
 * tile, both kernels) or BMxBNxBK[s|p|d] (cooperative_matrix2 tile; d: the decode-load kernel; see
 * ops_gemm.c); VKLLM_GEMM_CM2=decode the cooperative_matrix2 kernel that reads W by tensor loads with
 * a decode function per block format (needs bufferDeviceAddress; slower than the default staged one
 * on the H100), =staged the default.
 * name: dispatch name for profiling (NULL: the kernel's name). */
typedef struct vkllm_gemm_args {
    vkllm_view w;
    vkllm_dtype type;
    uint32_t n_out, n_in;
    vkllm_view x, y, residual;
    uint32_t m, x_stride, y_stride, r_stride;
    int force_portable;
    const char *name;
} vkllm_gemm_args;
vkllm_status vkllm_op_gemm(vkllm_chain *chain, const vkllm_gemm_args *a);

/* 1 if vkllm_op_gemm would take the cooperative-matrix path for this device, type and n_in (with
 * force_portable 0); the kernel name it would use goes to *kernel (if not NULL). */
int vkllm_gemm_uses_coopmat(vkllm_device *dev, vkllm_dtype type, uint32_t n_in, const char **kernel);

#ifdef __cplusplus
}
#endif
#endif
