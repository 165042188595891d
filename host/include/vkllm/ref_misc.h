/* CPU references of the misc kernels (SwiGLU, residual add, embedding lookup, argmax, top-k): plain
 * loops, double arithmetic where there is arithmetic; the executable specification of
 * runtime/include/vkllm/ops_misc.h. */
#ifndef VKLLM_REF_MISC_H
#define VKLLM_REF_MISC_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* act[t, i] = silu(gu[t, i]) * gu[t, n_ff + i], silu(g) = g / (1 + exp(-g)) in double.
 * gu: (n_tok, gu_stride); act: (n_tok, act_stride). */
void vkllm_ref_swiglu(const float *gu, float *act, size_t n_ff, size_t n_tok, size_t gu_stride, size_t act_stride);

/* y[i] = a[i] + b[i] (y may alias a). */
void vkllm_ref_add(const float *a, const float *b, float *y, size_t n);

/* out[t, :] = vkllm_dequantize of row ids[t] of table (n_vocab rows of n_embd elements of type t);
 * an id outside [0, n_vocab) gives a row of zeros. out: (n_tok, out_stride). Returns the number of
 * such ids. */
size_t vkllm_ref_embed(vkllm_dtype t, const void *table, size_t n_vocab, size_t n_embd, const int32_t *ids, size_t n_tok,
                       float *out, size_t out_stride);

/* The order both argmax and top-k rank by: a key that is larger for a larger value, NaN lowest
 * (below -inf), -0 equal to +0. */
uint32_t vkllm_ref_rank_key(float v);

/* out[r] = index of the largest x[r, i] (by vkllm_ref_rank_key; ties -> lowest index; all-NaN -> 0).
 * x: (rows, stride). */
void vkllm_ref_argmax(const float *x, size_t n, size_t rows, size_t stride, uint32_t *out);

/* The k <= n largest per row, descending by vkllm_ref_rank_key, ties by lower index:
 * vals (rows, k) = the x values as stored, idx (rows, k). */
void vkllm_ref_topk(const float *x, size_t n, size_t rows, size_t stride, size_t k, float *vals, uint32_t *idx);

#ifdef __cplusplus
}
#endif
#endif
