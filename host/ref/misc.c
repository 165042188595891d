/* CPU references of the misc kernels: see vkllm/ref_misc.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vkllm/ref.h"
#include "vkllm/ref_misc.h"

void vkllm_ref_swiglu(const float *gu, float *act, size_t n_ff, size_t n_tok, size_t gu_stride, size_t act_stride)
{
    for (size_t t = 0; t < n_tok; t++) {
        const float *gate = gu + t * gu_stride, *up = gate + n_ff; /* (n_ff) each */
        for (size_t i = 0; i < n_ff; i++) {
            double g = gate[i];
            act[t * act_stride + i] = (float)(g / (1.0 + exp(-g)) * (double)up[i]);
        }
    }
}

void vkllm_ref_add(const float *a, const float *b, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

size_t vkllm_ref_embed(vkllm_dtype t, const void *table, size_t n_vocab, size_t n_embd, const int32_t *ids, size_t n_tok,
                       float *out, size_t out_stride)
{
    size_t bad = 0;
    size_t row_bytes = n_embd / vkllm_dtype_block_elems(t) * vkllm_dtype_block_bytes(t);
    for (size_t k = 0; k < n_tok; k++) {
        float *y = out + k * out_stride; /* (n_embd) */
        if (ids[k] < 0 || (size_t)ids[k] >= n_vocab) {
            memset(y, 0, n_embd * sizeof *y);
            bad++;
            continue;
        }
        vkllm_dequantize(t, (const uint8_t *)table + (size_t)ids[k] * row_bytes, y, n_embd);
    }
    return bad;
}

uint32_t vkllm_ref_rank_key(float v)
{
    if (isnan(v)) return 0;
    if (v == 0.0f) v = 0.0f; /* -0 -> +0 */
    uint32_t b;
    memcpy(&b, &v, 4);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

void vkllm_ref_argmax(const float *x, size_t n, size_t rows, size_t stride, uint32_t *out)
{
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * stride; /* (n) */
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (vkllm_ref_rank_key(row[i]) > vkllm_ref_rank_key(row[best])) best = i;
        out[r] = (uint32_t)best;
    }
}

/* a ranks before b: larger key, then lower index */
static int before(const float *row, uint32_t a, uint32_t b)
{
    uint32_t ka = vkllm_ref_rank_key(row[a]), kb = vkllm_ref_rank_key(row[b]);
    return ka > kb || (ka == kb && a < b);
}

void vkllm_ref_topk(const float *x, size_t n, size_t rows, size_t stride, size_t k, float *vals, uint32_t *idx)
{
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * stride; /* (n) */
        uint32_t *top = idx + r * k;       /* (k), kept sorted by insertion */
        size_t have = 0;
        for (size_t i = 0; i < n; i++) {
            if (have == k && !before(row, (uint32_t)i, top[k - 1])) continue;
            size_t j = have < k ? have++ : k - 1;
            while (j > 0 && before(row, (uint32_t)i, top[j - 1])) {
                top[j] = top[j - 1];
                j--;
            }
            top[j] = (uint32_t)i;
        }
        for (size_t j = 0; j < k; j++) vals[r * k + j] = row[top[j]];
    }
}

double vkllm_ref_nmse(const float *out, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i])) return INFINITY;
        double d = (double)out[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}
