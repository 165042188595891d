#include <math.h>
#include <stdlib.h>

#include "vkllm/half.h"
#include "vkllm/ref.h"
#include "vkllm/ref_attn.h"

void vkllm_ref_kv_write(const vkllm_kv_write_params *p, const float *qkv, const int32_t *pos, const double *inv_freq, float *q,
                        uint16_t *k_cache, uint16_t *v_cache)
{
    const uint32_t hd = p->head_dim, half_rot = p->n_rot / 2;
    double *y = malloc((size_t)hd * sizeof *y); // one head, rotated: (hd)
    if (!y) return;
    for (uint32_t t = 0; t < p->n_tok; t++) {
        const float *row = qkv + (size_t)t * p->qkv_stride; // (n_q + 2 n_kv, hd)
        const int in_cache = pos[t] >= 0 && (uint32_t)pos[t] < p->ctx;
        for (uint32_t h = 0; h < p->n_q + p->n_kv; h++) {
            const float *x = row + (size_t)h * hd;
            for (uint32_t e = 0; e < hd; e++) y[e] = x[e];
            for (uint32_t i = 0; i < half_rot; i++) {
                uint32_t ia = p->neox ? i : 2 * i, ib = p->neox ? i + half_rot : 2 * i + 1;
                double theta = (double)pos[t] * inv_freq[i];
                double c = cos(theta) * p->attn_factor, s = sin(theta) * p->attn_factor;
                y[ia] = x[ia] * c - x[ib] * s;
                y[ib] = x[ia] * s + x[ib] * c;
            }
            if (h < p->n_q) {
                for (uint32_t e = 0; e < hd; e++) q[((size_t)t * p->n_q + h) * hd + e] = (float)y[e];
            } else if (in_cache) {
                uint16_t *k = k_cache + ((size_t)(h - p->n_q) * p->ctx + (uint32_t)pos[t]) * hd; // (hd)
                for (uint32_t e = 0; e < hd; e++) k[e] = vkllm_fp32_to_fp16((float)y[e]);
            }
        }
        if (!in_cache) continue;
        for (uint32_t h = 0; h < p->n_kv; h++) {
            const float *x = row + (size_t)(p->n_q + p->n_kv + h) * hd;
            uint16_t *v = v_cache + ((size_t)h * p->ctx + (uint32_t)pos[t]) * hd;
            for (uint32_t e = 0; e < hd; e++) v[e] = vkllm_fp32_to_fp16(x[e]);
        }
    }
    free(y);
}

void vkllm_ref_attn(const vkllm_attn_params *p, const float *q, const uint16_t *k_cache, const uint16_t *v_cache, float *out)
{
    const uint32_t hd = p->head_dim, group = p->n_q / p->n_kv;
    const double scale = p->scale != 0 ? p->scale : 1.0 / sqrt((double)hd);
    const uint32_t L = p->n_live < p->ctx ? p->n_live : p->ctx;
    double *s = malloc(((size_t)L + 1) * sizeof *s); // scores of one row: (L)
    double *acc = malloc((size_t)hd * sizeof *acc);  // weighted sum of V rows: (hd)
    if (!s || !acc) {
        free(s);
        free(acc);
        return;
    }
    for (uint32_t t = 0; t < p->n_tok; t++)
        for (uint32_t h = 0; h < p->n_q; h++) {
            const float *qr = q + ((size_t)t * p->n_q + h) * hd;
            float *o = out + ((size_t)t * p->n_q + h) * hd;
            const int64_t qpos = (int64_t)L - p->n_tok + t;
            const int64_t lo = p->window && qpos - (int64_t)p->window + 1 > 0 ? qpos - (int64_t)p->window + 1 : 0;
            const uint16_t *kh = k_cache + (size_t)(h / group) * p->ctx * hd; // (ctx, hd)
            const uint16_t *vh = v_cache + (size_t)(h / group) * p->ctx * hd;
            double mx = -INFINITY, sum = 0;
            for (int64_t k = lo; k <= qpos; k++) {
                double d = 0;
                for (uint32_t e = 0; e < hd; e++) d += (double)qr[e] * vkllm_fp16_to_fp32(kh[(size_t)k * hd + e]);
                s[k] = d * scale;
                if (s[k] > mx) mx = s[k];
            }
            for (uint32_t e = 0; e < hd; e++) acc[e] = 0;
            for (int64_t k = lo; k <= qpos; k++) {
                double w = exp(s[k] - mx);
                sum += w;
                for (uint32_t e = 0; e < hd; e++) acc[e] += w * vkllm_fp16_to_fp32(vh[(size_t)k * hd + e]);
            }
            for (uint32_t e = 0; e < hd; e++) o[e] = sum > 0 ? (float)(acc[e] / sum) : 0.0f;
        }
    free(s);
    free(acc);
}
