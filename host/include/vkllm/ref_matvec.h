/* CPU reference of the decode mat-vec (kernels/matvec.comp): the executable specification. */
#ifndef VKLLM_REF_MATVEC_H
#define VKLLM_REF_MATVEC_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[v][o] = sum_i W[o][i] * x[v][i] (+ r[v][o] if r), for v < n_vec, o < n_out; each row of w
 * dequantized with vkllm_dequantize, the dot product in double.
 * w: (n_out, row bytes = vkllm_dtype_bytes(type, n_in)) GGUF rows; x: (n_vec, x_stride);
 * y, r: (n_vec, y_stride / r_stride); r may be NULL or alias y (in place). n_in must be a whole
 * number of blocks. Returns VKLLM_ERROR_INVALID_ARGUMENT for a partial block or bad type,
 * VKLLM_ERROR_OUT_OF_HOST_MEMORY if the row buffer cannot be allocated. */
vkllm_status vkllm_ref_matvec(vkllm_dtype type, const void *w, size_t n_out, size_t n_in, const float *x, size_t x_stride,
                              float *y, size_t y_stride, const float *r, size_t r_stride, size_t n_vec);

#ifdef __cplusplus
}
#endif
#endif
