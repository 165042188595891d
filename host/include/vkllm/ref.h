/* CPU reference of every kernel: the executable specification. Plain loops, double accumulation,
 * no cleverness; the GPU kernels are tested against these. */
#ifndef VKLLM_REF_H
#define VKLLM_REF_H

#include <stddef.h>
#include <stdint.h>

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

#ifdef __cplusplus
}
#endif
#endif
