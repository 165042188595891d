/* HDF5 fixtures: the CPU reference's intermediate values for one token sequence, written by
 * tools/mkfixtures and read by tests and `vkllm validate`. Any tool may write them; the schema is:
 *
 *   root attributes  format = "vkllm-fixture" (string, fixed or variable length), version = 1,
 *                    n_layer n_embd n_head n_head_kv head_dim n_ff n_vocab (integers),
 *                    rope_base rms_eps (floats)
 *   /tokens          int32 (T): processed from position 0
 *   /layer_NN/       NN = layer index, two digits (00, 01, ...); float32 datasets (T, width), row-major:
 *                      attn_norm (T, n_embd)           q (T, n_head*head_dim), after RoPE
 *                      k (T, n_head_kv*head_dim), after RoPE     v (T, n_head_kv*head_dim)
 *                      attn (T, n_head*head_dim), before the O matrix    attn_out (T, n_embd), after it
 *                      ffn_norm (T, n_embd)   ffn_act (T, n_ff) = silu(gate)*up   ffn_out (T, n_embd)
 *                      out (T, n_embd): the residual stream after the layer
 *   /output_norm     float32 (T, n_embd)
 *   /logits          float32 (T, n_vocab)
 *
 * Any checkpoint may be absent (a writer may store only some); readers skip absent ones with a
 * notice. The reader treats the file as hostile: attribute types and counts, dataset ranks, shapes
 * and classes are checked before anything is read; a bad file gets VKLLM_ERROR_BAD_FILE with a
 * message, never a crash from our code. HDF5's own error printing is switched off (process-wide:
 * H5Eset_auto). Limit: HDF5 1.10 itself is not memory-safe on crafted files (byte-flip fuzzing found
 * a heap overflow inside H5Aexists on a corrupted object header), so a fixture from an untrusted
 * source belongs in a sandboxed process; damage from truncation and from wrong writers (types,
 * shapes, attributes) is refused cleanly. */
#ifndef VKLLM_FIXTURE_H
#define VKLLM_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/phi3.h"
#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VKLLM_FIXTURE_FORMAT "vkllm-fixture"
#define VKLLM_FIXTURE_VERSION 1

typedef struct vkllm_fixture_dims {
    uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
    double rope_base, rms_eps;
    uint32_t n_tok; /* T, the length of /tokens */
} vkllm_fixture_dims;

/* The dims of a model with hparams hp for n_tok tokens. */
void vkllm_fixture_dims_from_hparams(vkllm_fixture_dims *d, const vkllm_phi3_hparams *hp, uint32_t n_tok);
/* Row width of checkpoint (layer, name): per-layer names need 0 <= layer < n_layer, output_norm and
 * logits need layer -1. 0 when (layer, name) is not a checkpoint of the schema. */
uint32_t vkllm_fixture_width(const vkllm_fixture_dims *d, int layer, const char *name);
/* The dataset path of (layer, name) ("/layer_03/q", "/logits") into buf; 0 if it did not fit. */
int vkllm_fixture_path(char *buf, size_t n, int layer, const char *name);

typedef struct vkllm_fixture vkllm_fixture;

/* Creates (truncates) path and writes the root attributes and /tokens (d->n_tok of them, each in
 * [0, n_vocab)). On failure *out is NULL and err says why. Finish with vkllm_fixture_close. */
vkllm_status vkllm_fixture_create(const char *path, const vkllm_fixture_dims *d, const int32_t *tokens,
                                  vkllm_fixture **out, char *err, size_t err_size);
/* Writes checkpoint (layer, name): data (n_tok, width), which must be (T, vkllm_fixture_width()). */
vkllm_status vkllm_fixture_write(vkllm_fixture *f, int layer, const char *name, const float *data, uint32_t n_tok,
                                 uint32_t width);

/* Opens path read-only and checks format, version, the dims (all positive, within limits,
 * n_head a multiple of n_head_kv) and /tokens (1-d, integers in [0, n_vocab)). When hp is not NULL
 * the dims must match the model's (VKLLM_ERROR_MISMATCH naming the attribute and both values). */
vkllm_status vkllm_fixture_open(const char *path, const vkllm_phi3_hparams *hp, vkllm_fixture **out, char *err,
                                size_t err_size);
const vkllm_fixture_dims *vkllm_fixture_get_dims(const vkllm_fixture *f);
/* The tokens, checked at open: (T) int32, owned by f. */
const int32_t *vkllm_fixture_tokens(const vkllm_fixture *f);
/* Reads checkpoint (layer, name) into out (cap floats; needs T * width). An absent checkpoint is not
 * an error: *found = 0 and VKLLM_OK (the caller skips it with a notice). A present one with the
 * wrong rank, shape or class fails with VKLLM_ERROR_BAD_FILE. */
vkllm_status vkllm_fixture_read(vkllm_fixture *f, int layer, const char *name, float *out, size_t cap, int *found);

/* Closes the file and frees f (for a writer: flushes it; the status says whether that worked, err
 * (may be NULL) why not). NULL is fine. */
vkllm_status vkllm_fixture_close(vkllm_fixture *f, char *err, size_t err_size);
/* Message of the last failed call on f ("" if none); owned by f. */
const char *vkllm_fixture_error(const vkllm_fixture *f);

#ifdef __cplusplus
}
#endif
#endif
