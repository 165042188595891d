/* CPU reference of every kernel: the executable specification. Plain loops, double accumulation,
 * no cleverness; the GPU kernels are tested against these. */
#ifndef VKLLM_REF_H
#define VKLLM_REF_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[r, i] = x[r, i] / sqrt(mean(x[r, :]^2) + eps) * w[i]
 * x: (rows, x_stride) with n used per row; w: (n); y: (rows, y_stride). */
void vkllm_ref_rmsnorm(const float *x, const float *w, float *y, size_t n, size_t rows, size_t x_stride, size_t y_stride,
                       float eps);

/* Inverse frequencies of RoPE pairs i = 0 .. n_rot/2-1:
 *   inv_freq[i] = freq_scale / (factors ? factors[i] : 1) * base^(-2i / n_rot)
 * in double. factors (LongRoPE rope_factors_long/short) may be NULL. */
void vkllm_rope_inv_freq(double *inv_freq, uint32_t n_rot, double base, double freq_scale, const float *factors);

/* The table the rope kernel reads: (hi, lo) float pairs with hi + lo == inv_freq[i] to ~48 bits. */
void vkllm_rope_table(float *hi_lo, const double *inv_freq, uint32_t n_pairs);

typedef struct vkllm_rope_params {
    uint32_t n_tok, n_head, head_dim, n_rot;
    uint32_t x_tok, x_head, y_tok, y_head; /* strides in elements */
    int neox;                              /* 1: rotate-half pairs (i, i + n_rot/2); 0: interleaved (2i, 2i+1) */
    float attn_factor;                     /* multiplies cos and sin (1 unless LongRoPE/YaRN scaling) */
} vkllm_rope_params;

/* Rotates x into y (may alias) for tokens at positions pos[t], with inv_freq from vkllm_rope_inv_freq. */
void vkllm_ref_rope(const vkllm_rope_params *p, const float *x, float *y, const int32_t *pos, const double *inv_freq);

/* How far out is from ref: mse(out, ref) / mse(ref, 0) (llama.cpp's test-backend-ops NMSE),
 * +inf where out has a NaN or Inf; the plain mse when ref is all zero. What the self-checks
 * (vkllm info) and the benchmarks' result checks compare with their bounds. */
double vkllm_ref_nmse(const float *out, const float *ref, size_t n);

/* The per-32 activation quantization of the 8-bit mat-vec (kernels/matvec_q8.comp), in float32:
 * per block of 32, amax = max|x|, d = amax / 127, q = round-half-away-from-zero(x * (1 / d)) clamped
 * to [-127, 127] (q = 0 where amax == 0). x: (n), n a multiple of 32; q: (n); d: (n / 32). */
void vkllm_ref_quantize_q8_act(const float *x, uint32_t n, int8_t *q, float *d);

/* y[v][o] = sum_i W[o][i] * d[v][i / 32] * q[v][i] (+ r[v][o] if r): W dequantized with
 * vkllm_dequantize, (q, d) = vkllm_ref_quantize_q8_act(P(x[v])) with P in double then rounded to
 * float: prologue 0 none, 1 rmsnorm x[i] * norm[i] / sqrt(mean(x^2) + eps), 2 swiglu
 * silu(x[i]) * x[up_offset + i] (VKLLM_MVQ_* of ops_matvec.h); the product in double.
 * w: (n_out, row bytes) GGUF rows; x: (n_vec, x_stride); y, r: (n_vec, y_stride / r_stride); r may
 * be NULL or alias y. VKLLM_ERROR_INVALID_ARGUMENT for a partial block, bad type or prologue (or
 * rmsnorm without norm), VKLLM_ERROR_OUT_OF_HOST_MEMORY. */
vkllm_status vkllm_ref_matvec_q8(vkllm_dtype type, const void *w, size_t n_out, size_t n_in, const float *x, size_t x_stride,
                                 uint32_t prologue, const float *norm, float eps, size_t up_offset, float *y, size_t y_stride,
                                 const float *r, size_t r_stride, size_t n_vec);

#ifdef __cplusplus
}
#endif
#endif
