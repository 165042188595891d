/* The phi3 architecture (Phi-3, Phi-3.5, Phi-4) as GGUF files describe it: hyperparameters, the
 * tensors a forward pass needs, and LongRoPE. Shared by the CPU reference (host/ref/model.c) and the
 * GPU runtime, so both refuse the same files with the same messages.
 *
 * Per layer (x is the residual stream, one row of n_embd per token):
 *   h = rmsnorm(x) * attn_norm;  [q k v] = attn_qkv · h  (fused rows: n_embd, kv_dim, kv_dim)
 *   q, k = rope_neox(q, k);  a = attention(q, K, V) with GQA;  x += attn_output · a
 *   h = rmsnorm(x) * ffn_norm;  [g u] = ffn_up · h  (fused rows: n_ff gate, n_ff up)
 *   x += ffn_down · (silu(g) * u)
 * then logits = output · (rmsnorm(x) * output_norm). */
#ifndef VKLLM_PHI3_H
#define VKLLM_PHI3_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/gguf.h"
#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkllm_phi3_hparams {
    uint32_t n_layer;        /* phi3.block_count */
    uint32_t n_embd;         /* phi3.embedding_length */
    uint32_t n_head;         /* phi3.attention.head_count */
    uint32_t n_head_kv;      /* phi3.attention.head_count_kv (absent: n_head) */
    uint32_t head_dim;       /* n_embd / n_head */
    uint32_t n_ff;           /* phi3.feed_forward_length */
    uint32_t n_vocab;        /* rows of token_embd (or length of tokenizer.ggml.tokens) */
    uint32_t n_ctx_train;    /* phi3.context_length */
    uint32_t n_rot;          /* phi3.rope.dimension_count (absent: head_dim); even, <= head_dim */
    float rope_base;         /* phi3.rope.freq_base (absent: 10000) */
    float rms_eps;           /* phi3.attention.layer_norm_rms_epsilon */
    uint32_t sliding_window; /* phi3.attention.sliding_window; 0 = none (Phi-4 files say 0) */
    int has_rope_factors;    /* 1: rope_factors_long/short.weight present (Phi-3.5, Phi-3-128k) */
    uint32_t n_ctx_orig;     /* phi3.rope.scaling.original_context_length (absent: n_ctx_train) */
    float rope_attn_factor;  /* phi3.rope.scaling.attn_factor (absent: 1) */
} vkllm_phi3_hparams;

/* Reads and range-checks the hyperparameters of g. general.architecture must be "phi3". Every
 * refusal is VKLLM_ERROR_BAD_MODEL with a message in err (may be NULL) naming the key and value. */
vkllm_status vkllm_phi3_read_hparams(vkllm_gguf *g, vkllm_phi3_hparams *hp, char *err, size_t err_size);

/* Row widths: kv_dim = n_head_kv * head_dim, q_dim = n_head * head_dim. */
static inline uint32_t vkllm_phi3_kv_dim(const vkllm_phi3_hparams *hp) { return hp->n_head_kv * hp->head_dim; }
static inline uint32_t vkllm_phi3_q_dim(const vkllm_phi3_hparams *hp) { return hp->n_head * hp->head_dim; }

/* Shapes below are (rows, columns); in GGUF ne[0] is the row length (columns). */
typedef struct vkllm_phi3_layer {
    const vkllm_gguf_tensor *attn_norm;   /* (n_embd) f32 */
    const vkllm_gguf_tensor *attn_qkv;    /* (n_embd + 2 kv_dim, n_embd): rows q, then k, then v */
    const vkllm_gguf_tensor *attn_output; /* (n_embd, q_dim) */
    const vkllm_gguf_tensor *ffn_norm;    /* (n_embd) f32 */
    const vkllm_gguf_tensor *ffn_up;      /* (2 n_ff, n_embd): gate rows, then up rows */
    const vkllm_gguf_tensor *ffn_down;    /* (n_embd, n_ff) */
} vkllm_phi3_layer;

typedef struct vkllm_phi3_tensors {
    const vkllm_gguf_tensor *token_embd;  /* (n_vocab, n_embd) */
    const vkllm_gguf_tensor *output_norm; /* (n_embd) f32 */
    const vkllm_gguf_tensor *output;      /* (n_vocab, n_embd); == token_embd when output_tied */
    int output_tied;                      /* 1: the file has no output.weight */
    const vkllm_gguf_tensor *rope_long;   /* (n_rot/2) or NULL */
    const vkllm_gguf_tensor *rope_short;  /* (n_rot/2) or NULL */
    vkllm_phi3_layer *layer;              /* (n_layer), owned; free with vkllm_phi3_tensors_free */
} vkllm_phi3_tensors;

/* Checks every tensor the architecture needs: present, expected shape, supported type (F32, F16,
 * BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K for matrices; F32 for norms; F32/F16 for rope factors). On
 * success fills *t (may be NULL to only check; then nothing is allocated). Refusals are
 * VKLLM_ERROR_BAD_MODEL with a message naming the tensor, the expected and the found shape/type. */
vkllm_status vkllm_phi3_check_tensors(vkllm_gguf *g, const vkllm_phi3_hparams *hp, vkllm_phi3_tensors *t,
                                      char *err, size_t err_size);
/* Frees t->layer; t may be NULL. */
void vkllm_phi3_tensors_free(vkllm_phi3_tensors *t);

/* LongRoPE, as llama.cpp applies it: for a context of n_ctx tokens, the long factors apply when
 * n_ctx > n_ctx_orig, else the short ones; attn_factor is the file's rope.scaling.attn_factor
 * (1 when absent), which multiplies cos and sin, whatever the context (the converter computes it
 * as sqrt(1 + ln(n_ctx_train / n_ctx_orig) / ln(n_ctx_orig))).
 * factors: (n_rot/2) floats filled when the file has factors, *has_factors says whether it does
 * (0: plain RoPE, factors untouched). Pass the factors to vkllm_rope_inv_freq. */
vkllm_status vkllm_phi3_rope_scaling(vkllm_gguf *g, const vkllm_phi3_hparams *hp, uint32_t n_ctx, float *factors,
                                     int *has_factors, float *attn_factor, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif
#endif
