#include <math.h>
#include <stdlib.h>

#include "vkllm/ref.h"

/* The activation quantization of kernels/matvec_q8.comp, in float32 as the kernel does it (x * (1/d)
 * rather than x / d: the same products on both sides, so the codes differ only where the GPU's
 * division rounds d or 1/d differently from IEEE by an ulp and a product lands on a rounding edge). */
void vkllm_ref_quantize_q8_act(const float *x, uint32_t n, int8_t *q, float *d)
{
    for (uint32_t b = 0; b < n / 32; b++) {
        const float *xb = x + (size_t)b * 32; // (32) one block
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
        const float db = amax / 127.0f;
        const float id = amax != 0.0f ? 1.0f / db : 0.0f;
        for (int i = 0; i < 32; i++) {
            float v = roundf(xb[i] * id); // half away from zero
            v = v < -127.0f ? -127.0f : v > 127.0f ? 127.0f : v;
            q[(size_t)b * 32 + i] = (int8_t)v;
        }
        d[b] = db;
    }
}

vkllm_status vkllm_ref_matvec_q8(vkllm_dtype type, const void *w, size_t n_out, size_t n_in, const float *x, size_t x_stride,
                                 uint32_t prologue, const float *norm, float eps, size_t up_offset, float *y, size_t y_stride,
                                 const float *r, size_t r_stride, size_t n_vec)
{
    uint64_t row_bytes;
    if (!vkllm_dtype_valid((int)type) || vkllm_dtype_bytes(type, n_in, &row_bytes) || n_in % 32 || prologue > 2 ||
        (prologue == 1 && !norm))
        return VKLLM_ERROR_INVALID_ARGUMENT;
    size_t nb = n_in / 32;
    float *xp = malloc(n_in * sizeof *xp);            // (n_in) x' of one vector
    float *xd = malloc(n_vec * nb * sizeof *xd);       // (n_vec, n_in / 32) block scales
    int8_t *xq = malloc(n_vec * n_in);                 // (n_vec, n_in) codes
    float *wr = malloc(n_in * sizeof *wr);             // (n_in) one dequantized weight row
    if (!xp || !xd || !xq || !wr) {
        free(xp); free(xd); free(xq); free(wr);
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    for (size_t v = 0; v < n_vec; v++) {
        const float *xv = x + v * x_stride; // (x_stride)
        double scale = 1.0;
        if (prologue == 1) {
            double ss = 0;
            for (size_t i = 0; i < n_in; i++) ss += (double)xv[i] * xv[i];
            scale = 1.0 / sqrt(ss / (double)n_in + eps);
        }
        for (size_t i = 0; i < n_in; i++) {
            double a = xv[i];
            if (prologue == 1) a = a * norm[i] * scale;
            if (prologue == 2) a = a / (1.0 + exp(-a)) * xv[up_offset + i];
            xp[i] = (float)a;
        }
        vkllm_ref_quantize_q8_act(xp, (uint32_t)n_in, xq + v * n_in, xd + v * nb);
    }
    // outputs first read r (it may alias y), so each y is written after its own r was read
    for (size_t o = 0; o < n_out; o++) {
        vkllm_dequantize(type, (const uint8_t *)w + o * row_bytes, wr, n_in);
        for (size_t v = 0; v < n_vec; v++) {
            double s = 0;
            for (size_t i = 0; i < n_in; i++) s += (double)wr[i] * ((double)xd[v * nb + i / 32] * xq[v * n_in + i]);
            if (r) s += r[v * r_stride + o];
            y[v * y_stride + o] = (float)s;
        }
    }
    free(xp); free(xd); free(xq); free(wr);
    return VKLLM_OK;
}
