#include <math.h>

#include "vkllm/ref.h"

void vkllm_ref_rmsnorm(const float *x, const float *w, float *y, size_t n, size_t rows, size_t x_stride, size_t y_stride,
                       float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * x_stride; // (n)
        float *yr = y + r * y_stride;       // (n)
        double ss = 0;
        for (size_t i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        double scale = 1.0 / sqrt(ss / (double)n + eps);
        for (size_t i = 0; i < n; i++) yr[i] = (float)(xr[i] * scale * w[i]);
    }
}
