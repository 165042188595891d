/* CPU reference of the attention family (kernels/kv_write.comp, attn_decode.comp, attn_prefill.comp):
 * plain loops, double accumulation. KV cache layout as in runtime's ops_attn.h:
 * fp16 bits [n_kv][ctx][head_dim]. */
#ifndef VKLLM_REF_ATTN_H
#define VKLLM_REF_ATTN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkllm_kv_write_params {
    uint32_t n_tok, n_q, n_kv, head_dim, n_rot;
    uint32_t qkv_stride; /* floats between QKV rows, >= (n_q + 2 n_kv) * head_dim */
    uint32_t ctx;        /* cache capacity in positions */
    int neox;
    float attn_factor;
} vkllm_kv_write_params;

/* qkv: (n_tok, qkv_stride) rows of Q | K | V; pos: (n_tok); inv_freq: (n_rot/2) from vkllm_rope_inv_freq.
 * q: (n_tok, n_q, head_dim) rotated; k_cache, v_cache: fp16 (n_kv, ctx, head_dim), rows pos[t] written
 * (rotated K, plain V) where 0 <= pos[t] < ctx, the rest untouched. */
void vkllm_ref_kv_write(const vkllm_kv_write_params *p, const float *qkv, const int32_t *pos, const double *inv_freq, float *q,
                        uint16_t *k_cache, uint16_t *v_cache);

typedef struct vkllm_attn_params {
    uint32_t n_tok, n_q, n_kv, head_dim, ctx;
    uint32_t n_live;  /* live cache length L; query row t sits at position L - n_tok + t */
    uint32_t window;  /* 0 = none; else position k is seen from qpos iff qpos - window < k <= qpos */
    float scale;      /* 0 = 1/sqrt(head_dim) */
} vkllm_attn_params;

/* q: (n_tok, n_q, head_dim); caches fp16 (n_kv, ctx, head_dim); out: (n_tok, n_q, head_dim).
 * Softmax over all allowed positions in double; query head h reads KV head h / (n_q / n_kv).
 * A row with no allowed position (its position < 0) gets zeros. */
void vkllm_ref_attn(const vkllm_attn_params *p, const float *q, const uint16_t *k_cache, const uint16_t *v_cache, float *out);

#ifdef __cplusplus
}
#endif
#endif
