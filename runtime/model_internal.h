/* The model and session layouts shared by model.c and session.c. */
#ifndef VKLLM_MODEL_INTERNAL_H
#define VKLLM_MODEL_INTERNAL_H

#include "internal.h"
#include "vkllm/gguf.h"
#include "vkllm/model.h"
#include "vkllm/ops.h"

/* A weight on the device: its buffer and its GGUF type/shape. */
typedef struct weight {
    vkllm_buffer buf;
    vkllm_dtype type;
    uint32_t rows, cols; /* rows = outputs (ne[1]), cols = inputs (ne[0]) */
} weight;

typedef struct layer_weights {
    weight attn_norm; /* (n_embd) f32 */
    weight qkv;       /* (n_embd + 2 kv_dim) x n_embd */
    weight o;         /* n_embd x q_dim */
    weight ffn_norm;  /* (n_embd) f32 */
    weight up;        /* 2 n_ff x n_embd: gate rows, then up rows */
    weight down;      /* n_embd x n_ff */
} layer_weights;

struct vkllm_model {
    vkllm_device *dev;
    vkllm_gguf *g;
    vkllm_phi3_hparams hp;
    vkllm_phi3_tensors t;
    weight tok_embd;   /* n_vocab x n_embd */
    weight out_norm;   /* (n_embd) f32 */
    weight output;     /* n_vocab x n_embd; shares tok_embd's buffer when tied */
    layer_weights *layer; /* (n_layer) */
    uint64_t file_bytes, device_bytes;
};

/* Device bytes a session needs besides its KV cache, for a prefill batch of max_batch tokens. */
uint64_t vkllm_session_scratch_estimate(const vkllm_phi3_hparams *hp, uint32_t n_ctx, uint32_t max_batch);
/* KV cache bytes of a session of n_ctx tokens. */
uint64_t vkllm_session_kv_estimate(const vkllm_phi3_hparams *hp, uint32_t n_ctx);

#endif
