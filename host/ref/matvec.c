#include <stdlib.h>

#include "vkllm/ref_matvec.h"

vkllm_status vkllm_ref_matvec(vkllm_dtype type, const void *w, size_t n_out, size_t n_in, const float *x, size_t x_stride,
                              float *y, size_t y_stride, const float *r, size_t r_stride, size_t n_vec)
{
    uint64_t row_bytes;
    if (!vkllm_dtype_valid((int)type) || vkllm_dtype_bytes(type, n_in, &row_bytes)) return VKLLM_ERROR_INVALID_ARGUMENT;
    float *wr = malloc((n_in ? n_in : 1) * sizeof *wr); // (n_in) one dequantized row
    if (!wr) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    for (size_t o = 0; o < n_out; o++) {
        vkllm_dequantize(type, (const uint8_t *)w + o * row_bytes, wr, n_in);
        for (size_t v = 0; v < n_vec; v++) {
            const float *xv = x + v * x_stride; // (n_in)
            double s = 0;
            for (size_t i = 0; i < n_in; i++) s += (double)wr[i] * xv[i];
            if (r) s += r[v * r_stride + o];
            y[v * y_stride + o] = (float)s;
        }
    }
    free(wr);
    return VKLLM_OK;
}
