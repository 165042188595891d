/* CPU reference of the gemm kernels: dequantize one weight row at a time, double accumulation. */
#include <stdlib.h>

#include "vkllm/ref_gemm.h"

vkllm_status vkllm_ref_gemm(vkllm_dtype type, const void *w, uint32_t n_out, uint32_t n_in, const float *x, float *y,
                            const float *r, uint32_t m, size_t x_stride, size_t y_stride, size_t r_stride)
{
    size_t be = vkllm_dtype_block_elems(type);
    if (!be || n_in % be) return VKLLM_ERROR_INVALID_ARGUMENT;
    uint64_t row_bytes;
    vkllm_status s = vkllm_dtype_bytes(type, n_in, &row_bytes);
    if (s) return s;
    float *wrow = malloc((size_t)n_in * sizeof *wrow); /* (n_in) one dequantized weight row */
    if (!wrow) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    for (uint32_t n = 0; n < n_out; n++) {
        vkllm_dequantize(type, (const uint8_t *)w + (size_t)n * row_bytes, wrow, n_in);
        for (uint32_t t = 0; t < m; t++) {
            const float *xt = x + (size_t)t * x_stride;
            /* four partial sums: independent add chains (the tests' large shapes run 3-4x faster);
             * in double the order changes the result far below float32 rounding */
            double a4[4] = { 0, 0, 0, 0 };
            uint32_t k = 0;
            for (; k + 4 <= n_in; k += 4)
                for (int j = 0; j < 4; j++) a4[j] += (double)xt[k + j] * wrow[k + j];
            for (; k < n_in; k++) a4[0] += (double)xt[k] * wrow[k];
            double acc = (a4[0] + a4[1]) + (a4[2] + a4[3]);
            if (r) acc += r[(size_t)t * r_stride + n];
            y[(size_t)t * y_stride + n] = (float)acc;
        }
    }
    free(wrow);
    return VKLLM_OK;
}
