#include <math.h>

#include "vkllm/ref.h"

void vkllm_rope_inv_freq(double *inv_freq, uint32_t n_rot, double base, double freq_scale, const float *factors)
{
    for (uint32_t i = 0; i < n_rot / 2; i++) {
        double f = pow(base, -2.0 * i / (double)n_rot) * freq_scale;
        if (factors) f /= factors[i];
        inv_freq[i] = f;
    }
}

void vkllm_rope_table(float *hi_lo, const double *inv_freq, uint32_t n_pairs)
{
    for (uint32_t i = 0; i < n_pairs; i++) {
        float hi = (float)inv_freq[i];
        hi_lo[2 * i] = hi;
        hi_lo[2 * i + 1] = (float)(inv_freq[i] - hi);
    }
}

void vkllm_ref_rope(const vkllm_rope_params *p, const float *x, float *y, const int32_t *pos, const double *inv_freq)
{
    const uint32_t half_rot = p->n_rot / 2;
    for (uint32_t t = 0; t < p->n_tok; t++)
        for (uint32_t h = 0; h < p->n_head; h++) {
            const float *xh = x + (size_t)t * p->x_tok + (size_t)h * p->x_head; // (head_dim)
            float *yh = y + (size_t)t * p->y_tok + (size_t)h * p->y_head;       // (head_dim)
            for (uint32_t i = 0; i < half_rot; i++) {
                uint32_t ia = p->neox ? i : 2 * i, ib = p->neox ? i + half_rot : 2 * i + 1;
                double theta = (double)pos[t] * inv_freq[i];
                double c = cos(theta) * p->attn_factor, s = sin(theta) * p->attn_factor;
                double a = xh[ia], b = xh[ib];
                yh[ia] = (float)(a * c - b * s);
                yh[ib] = (float)(a * s + b * c);
            }
            for (uint32_t e = 2 * half_rot; e < p->head_dim; e++) yh[e] = xh[e];
        }
}
