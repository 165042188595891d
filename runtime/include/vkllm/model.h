/* A Phi-3-family model on the GPU (architecture "phi3": Phi-3, Phi-3.5, Phi-4) and sessions that
 * run it: a session owns a KV cache and the recorded command chains (one for a decode step, one per
 * prefill batch size), replayed with positions and lengths read from a small device buffer.
 *
 * Thread-safety: a model is read-only once loaded and may be shared by sessions in any threads; a
 * session belongs to one thread at a time; sessions of one device run concurrently (the device
 * serializes what they share: its queue, transfers, memory pool, pipelines). Destroy sessions
 * before their model. Errors: the message of the calling thread's last failure is
 * vkllm_session_error() / vkllm_model_error() / vkllm_device_error() (vkllm/vkllm.h). */
#ifndef VKLLM_MODEL_H
#define VKLLM_MODEL_H

#include <stdint.h>

#include "vkllm/chain.h"
#include "vkllm/device.h"
#include "vkllm/phi3.h"
#include "vkllm/sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkllm_model vkllm_model;
typedef struct vkllm_session vkllm_session;

typedef struct vkllm_load_options {
    /* Called after each uploaded chunk (bytes done, bytes total); may be NULL. */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *user;
    /* Set to nonzero (e.g. from a signal handler) to stop the load: it returns VKLLM_ERROR_CANCELLED. */
    const volatile int *cancel;
    /* Context the caller intends to use (for the memory check before uploading); 0 = the model's. */
    uint32_t n_ctx;
} vkllm_load_options;

/* Maps and checks the GGUF file (architecture phi3, every tensor present with the right shape and a
 * supported type), checks the device memory budget against weights + KV cache + scratch for
 * opts->n_ctx, and uploads the weights. On failure *out is NULL and vkllm_device_error() says why
 * (and, for memory, how much is needed and free and what to change). */
vkllm_status vkllm_model_load(vkllm_device *dev, const char *path, const vkllm_load_options *opts, vkllm_model **out);
/* Frees the weights and the mapped file. Every session of m must be destroyed first. Accepts NULL. */
void vkllm_model_destroy(vkllm_model *m);
/* The model's shape as read from the file (owned by m; NULL for NULL m). */
const vkllm_phi3_hparams *vkllm_model_hparams(const vkllm_model *m);
/* Bytes of tensor data in the file, and bytes of device memory the weights took. */
void vkllm_model_sizes(const vkllm_model *m, uint64_t *file_tensor_bytes, uint64_t *device_weight_bytes);
/* The largest context (the model's own, else a multiple of 256) whose KV cache and scratch fit in
 * the device memory left after loading; what a session gets by default from the CLI. */
uint32_t vkllm_model_max_ctx(vkllm_model *m, uint32_t max_batch);
/* The GGUF file behind the model (owned by the model). */
struct vkllm_gguf *vkllm_model_gguf(const vkllm_model *m);

typedef struct vkllm_session_options {
    uint32_t n_ctx;        /* 0 = the model's training context */
    uint32_t max_batch;    /* prefill batch size (default 512) */
    int timestamps;        /* 0 off; 1 a stamp pair around every dispatch; any VKLLM_STAMPS_* of chain.h
                            * (VKLLM_STAMPS_SAMPLED(VKLLM_STAMPS_COMPUTE, 8): what vkllm profile uses) */
    int act_q8;            /* decode steps (one token): the mat-vecs of quantized weights take 8-bit
                            * activations and integer dot products, the RMSNorm / SwiGLU before them
                            * included (vkllm_op_matvec_q8; how: act_q8_global). 0 = where the device's
                            * packed 4x8 integer dot product is accelerated, 1 = wherever it runs, -1 = never */
    int act_q8_global;     /* with act_q8 on: 0 (default) or 1 = each one-token mat-vec input is quantized
                            * once (a vkllm_op_quantize_q8 dispatch: RMSNorm / SwiGLU / none + Q8; the one-pass
                            * decode attention quantizes attn_output's input in its merge) and the mat-vecs
                            * read its codes (vkllm_matvec_q8_args.xq), ffn_down included; -1 = the prologue
                            * in every mat-vec workgroup instead (ffn_down then stays on float inputs). On the
                            * H100, tg128 175 against 144-150 tokens/s (docs/BENCHMARKS.md). The environment
                            * variable VKLLM_ACT_Q8_GLOBAL=0/1 overrides it (0 the prologue, 1 once). */
    int fuse_rope;         /* with inputs quantized once: 0 (default) = the QKV mat-vec of a decode step also
                            * applies RoPE and appends K and V to the cache (vkllm_matvec_q8_args.rope_kv)
                            * where vkllm_matvec_q8_rope_supported, so no kv_write dispatch; -1 = a separate
                            * kv_write. The environment variable VKLLM_FUSE_ROPE=0/1 overrides it. */
} vkllm_session_options;

/* Allocates the KV cache (fp16) and scratch, builds the RoPE table for n_ctx, records the decode
 * chain; opts may be NULL (defaults). On failure *out is NULL: VKLLM_ERROR_OUT_OF_DEVICE_MEMORY
 * (the message says how much), VKLLM_ERROR_CONFIG (n_ctx over the model's training context,
 * max_batch over 8192), VKLLM_ERROR_INVALID_ARGUMENT (NULL arguments), a Vulkan error. Free with vkllm_session_destroy. */
vkllm_status vkllm_session_create(vkllm_model *m, const vkllm_session_options *opts, vkllm_session **out);
/* Waits for the session's last step, frees its cache, scratch and chains. Accepts NULL. */
void vkllm_session_destroy(vkllm_session *s);
/* Forgets the context (the cache is reused from position 0). */
void vkllm_session_reset(vkllm_session *s);
/* Keeps only the first pos tokens of the cache (pos <= vkllm_session_pos). */
vkllm_status vkllm_session_rewind(vkllm_session *s, uint32_t pos);
/* Host time spent preparing and submitting steps (writing the step's parameters, vkQueueSubmit;
 * not waiting), summed over steps since the last reset; reset = 1 zeroes the counters. */
void vkllm_session_host_time(vkllm_session *s, double *ns, uint64_t *steps, int reset);
/* Tokens in the cache, and the most it holds (0 for NULL s). */
uint32_t vkllm_session_pos(const vkllm_session *s);
/* 1 when the session's decode steps use 8-bit activations (vkllm_session_options.act_q8 resolved), 2
 * when each input is also quantized once into a buffer (act_q8_global), 0 otherwise. */
int vkllm_session_act_q8(const vkllm_session *s);
/* Layers of the decode chain whose QKV mat-vec also applies RoPE and appends K and V to the cache
 * (vkllm_session_options.fuse_rope; 0 when every layer runs a kv_write dispatch). */
uint32_t vkllm_session_rope_fused(const vkllm_session *s);
uint32_t vkllm_session_n_ctx(const vkllm_session *s);
/* Bytes of the KV cache and of the scratch buffers. */
void vkllm_session_sizes(const vkllm_session *s, uint64_t *kv_bytes, uint64_t *scratch_bytes);

/* Runs tokens through the model (in batches of max_batch), appending them to the cache. If logits
 * is not NULL it receives the last token's logits (n_vocab floats). VKLLM_ERROR_OUT_OF_RANGE when
 * the tokens do not fit in the context; ids outside the vocabulary are refused before anything runs. */
vkllm_status vkllm_session_prefill(vkllm_session *s, const int32_t *tokens, uint32_t n, float *logits);
/* One decode step: feeds `token` at the next position and picks the next token with the sampler
 * (greedy: argmax on the GPU, 4 bytes back; otherwise the GPU's top-k or, if the sampler needs them,
 * the full logits). logits (optional) receives the full logits. */
vkllm_status vkllm_session_decode(vkllm_session *s, int32_t token, vkllm_sampler *sampler, int32_t *next, float *logits);

/* Per-dispatch GPU times of the last step (timestamps on); valid until the next step. */
vkllm_status vkllm_session_timings(vkllm_session *s, const vkllm_timing **t, uint32_t *n);
/* GPU time of the last step's dispatches (timestamps on), ns; 0 otherwise. */
double vkllm_session_last_gpu_ns(const vkllm_session *s);

/* Checkpoints of one forward pass, for `vkllm validate`: runs tokens[0..n) from position 0 either as
 * one prefill (as_prefill = 1) or one token at a time, and calls cb for every checkpoint of the
 * fixture schema (layer -1 for output_norm and logits) with float32 rows [n][width]. Resets the
 * session first. */
typedef void (*vkllm_checkpoint_cb)(void *user, int layer, const char *name, const float *data, uint32_t n_rows,
                                    uint32_t width);
vkllm_status vkllm_session_capture(vkllm_session *s, const int32_t *tokens, uint32_t n, int as_prefill, vkllm_checkpoint_cb cb,
                                   void *user);

#ifdef __cplusplus
}
#endif
#endif
