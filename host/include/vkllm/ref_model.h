/* CPU reference of the whole phi3 forward pass: the executable specification the GPU runtime and the
 * HDF5 fixtures are checked against. All weights are dequantized to float32 (fine for small models;
 * a RAM cap refuses big ones politely), every sum accumulates in double, softmax runs in double.
 *
 * Checkpoints: forward() can hand every intermediate to a callback, one call per (layer, name), with
 * one row per token of the batch. The names are exactly the fixture's (vkllm/fixture.h):
 *   per layer:  attn_norm q k v attn attn_out ffn_norm ffn_act ffn_out out
 *   after them (layer -1): output_norm logits */
#ifndef VKLLM_REF_MODEL_H
#define VKLLM_REF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/gguf.h"
#include "vkllm/phi3.h"
#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VKLLM_REF_N_LAYER_CHECKPOINTS 10
#define VKLLM_REF_N_FINAL_CHECKPOINTS 2
/* The per-layer checkpoint names in the order forward() produces them, then the final ones. */
extern const char *const vkllm_ref_layer_checkpoints[VKLLM_REF_N_LAYER_CHECKPOINTS];
extern const char *const vkllm_ref_final_checkpoints[VKLLM_REF_N_FINAL_CHECKPOINTS];

/* Receives one checkpoint: layer (-1 for output_norm and logits), its name, data (n_tok, width)
 * row-major, valid only during the call. */
typedef void (*vkllm_ref_checkpoint_fn)(void *user, int layer, const char *name, const float *data,
                                        uint32_t n_tok, uint32_t width);

typedef struct vkllm_ref_model_options {
    uint32_t n_ctx;        /* KV cache length in tokens; 0: min(n_ctx_train, 4096). Also picks the
                            * LongRoPE factors (long when n_ctx > n_ctx_orig) */
    uint64_t max_bytes;    /* refuse when weights + cache need more; 0: 8 GiB */
    int no_sliding_window; /* 1: attend to the whole prefix even if the file sets a window. The
                            * window (key j visible from position p when p - j < window, as HF and
                            * llama.cpp mask) applies by default; note that current llama.cpp ignores
                            * Phi's window (it warns "Phi SWA is currently disabled"), so compare
                            * with it beyond the window only with this set */
    int act_q8;            /* 1: in calls of one token, the input rows of the QKV, attn_output, ffn_up and
                            * output weights that are Q4_K/Q5_K/Q6_K/Q8_0/Q4_0 (not ffn_down) are first
                            * rounded to 8 bits per 32 elements
                            * (vkllm_ref_quantize_q8_act), as the runtime's decode mat-vec does with
                            * vkllm_session_options.act_q8 on; 2: the same and ffn_down's inputs too (the
                            * runtime with vkllm_session_options.act_q8_global); 0: float inputs everywhere */
} vkllm_ref_model_options;

typedef struct vkllm_ref_model vkllm_ref_model;

/* Dequantizes every weight of g (checked with vkllm_phi3_check_tensors against hp, which normally
 * comes from vkllm_phi3_read_hparams(g)) and allocates the KV cache. g may be closed afterwards.
 * opt may be NULL for the defaults. On failure *out is NULL and err (may be NULL) says why:
 * VKLLM_ERROR_TOO_LARGE names the bytes needed and the cap. Destroy with vkllm_ref_model_destroy. */
vkllm_status vkllm_ref_model_create(vkllm_gguf *g, const vkllm_phi3_hparams *hp, const vkllm_ref_model_options *opt,
                                    vkllm_ref_model **out, char *err, size_t err_size);
/* Frees everything; NULL is fine. */
void vkllm_ref_model_destroy(vkllm_ref_model *m);
/* Message of the last failed call on m ("" if none); owned by m. */
const char *vkllm_ref_model_error(const vkllm_ref_model *m);
const vkllm_phi3_hparams *vkllm_ref_model_hparams(const vkllm_ref_model *m);
uint32_t vkllm_ref_model_n_ctx(const vkllm_ref_model *m);
/* Bytes held by weights and cache (what the RAM cap was compared with). */
uint64_t vkllm_ref_model_bytes(const vkllm_ref_model *m);

/* Runs tokens[0..n_tok-1] at positions pos0 .. pos0+n_tok-1. The cache must hold positions
 * 0..pos0-1 from earlier calls (pos0 <= number of positions filled so far; a smaller pos0 rewinds
 * and overwrites). logits (may be NULL): (n_tok, n_vocab) when all_logits, else only the last
 * token's (n_vocab). cb (may be NULL) receives every checkpoint. Fails with
 * VKLLM_ERROR_OUT_OF_RANGE when pos0 + n_tok exceeds the cache or pos0 skips unfilled positions,
 * VKLLM_ERROR_INVALID_ARGUMENT for a token id outside [0, n_vocab). */
vkllm_status vkllm_ref_model_forward(vkllm_ref_model *m, const int32_t *tokens, uint32_t n_tok, uint32_t pos0,
                                     float *logits, int all_logits, vkllm_ref_checkpoint_fn cb, void *user);

/* Greedy decoding from position 0: runs the prompt (n_prompt >= 1), then n_gen times appends the
 * argmax of the last logits (lowest id on ties) to out_tokens (n_gen) and feeds it back. Needs
 * n_prompt + n_gen - 1 <= n_ctx. */
vkllm_status vkllm_ref_model_generate_greedy(vkllm_ref_model *m, const int32_t *prompt, uint32_t n_prompt,
                                             uint32_t n_gen, int32_t *out_tokens);

#ifdef __cplusplus
}
#endif
#endif
