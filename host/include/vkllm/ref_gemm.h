/* CPU reference of the gemm family (plain loops, double accumulation). */
#ifndef VKLLM_REF_GEMM_H
#define VKLLM_REF_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/quant.h"
#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[m][n] = sum_k x[m][k] * W[n][k] (+ r[m][n] if r != NULL; r may equal y)
 * w: n_out rows of n_in elements of `type` as in GGUF (n_in a whole number of blocks);
 * x: (m, x_stride); y: (m, y_stride); r: (m, r_stride). Each W row is dequantized with
 * vkllm_dequantize and every dot product accumulated in double.
 * Fails with VKLLM_ERROR_INVALID_ARGUMENT if n_in is not a whole number of blocks of `type`,
 * VKLLM_ERROR_OUT_OF_HOST_MEMORY if a row buffer cannot be allocated. */
vkllm_status vkllm_ref_gemm(vkllm_dtype type, const void *w, uint32_t n_out, uint32_t n_in, const float *x, float *y,
                            const float *r, uint32_t m, size_t x_stride, size_t y_stride, size_t r_stride);

#ifdef __cplusplus
}
#endif
#endif
