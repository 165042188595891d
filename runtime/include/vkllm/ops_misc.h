/* Kernel operations of the misc family (see ops.h for the pattern): SwiGLU, residual add, embedding
 * lookup, and the sampling helpers argmax and top-k. CPU references: vkllm/ref_misc.h. */
#ifndef VKLLM_OPS_MISC_H
#define VKLLM_OPS_MISC_H
#include "vkllm/ops.h"
#include "vkllm/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* act[t, i] = silu(gu[t, i]) * gu[t, n_ff + i] for t < n_tok, i < n_ff (Phi-3's fused gate/up
 * output: gate in the first n_ff columns, up in the next n_ff). Strides in elements:
 * gu_stride >= 2 * n_ff, act_stride >= n_ff. act may not overlap gu. */
typedef struct vkllm_swiglu_args {
    vkllm_view gu, act;
    uint32_t n_ff, n_tok, gu_stride, act_stride;
    const char *name; /* dispatch name (NULL: "swiglu") */
} vkllm_swiglu_args;
vkllm_status vkllm_op_swiglu(vkllm_chain *chain, const vkllm_swiglu_args *a);

/* y[i] = a[i] + b[i], i < n (float32). y may be the same view as a (in place), not a partial
 * overlap. */
typedef struct vkllm_add_args {
    vkllm_view a, b, y;
    uint32_t n;
    const char *name; /* NULL: "add" */
} vkllm_add_args;
vkllm_status vkllm_op_add(vkllm_chain *chain, const vkllm_add_args *a);

/* out[t, :] = row ids[t] of a GGUF token-embedding table (n_vocab rows of n_embd elements of `type`,
 * any of vkllm_dtype; rows of whole blocks), dequantized to float32. ids: int32 [n_tok] on the
 * device. status: 2 uint32 words the caller zeroes once; every id outside [0, n_vocab) writes a row
 * of zeros, adds 1 to word 0 and leaves the id in word 1 (sticky across replays).
 * The table's binding must fit maxStorageBufferRange; out_stride (elements) >= n_embd. */
typedef struct vkllm_embed_args {
    vkllm_view table, ids, out, status;
    vkllm_dtype type;
    uint32_t n_vocab, n_embd, n_tok, out_stride;
    int force_u32;  /* tests: the portable uint32-storage decoder even where 16-bit storage exists */
    int decode4;    /* tests: 0 = the 8-element decoders, 1 = two 4-element calls, 2 = Q4_0's split 8 */
    const char *name; /* NULL: "embed" */
} vkllm_embed_args;
vkllm_status vkllm_op_embed(vkllm_chain *chain, const vkllm_embed_args *a);

/* out[r] = index of the largest x[r, i], i < n, for r < rows (uint32): ties -> the lowest index,
 * NaN ignored, -0 == +0, a row of only NaN -> 0. stride (elements) >= n. Two dispatches; scratch
 * holds the per-chunk partials: at least vkllm_argmax_scratch_bytes(n, rows) bytes. */
typedef struct vkllm_argmax_args {
    vkllm_view x, out, scratch;
    uint32_t n, rows, stride;
    const char *name; /* prefix of the two dispatch names (NULL: "argmax") */
} vkllm_argmax_args;
uint64_t vkllm_argmax_scratch_bytes(uint32_t n, uint32_t rows);
vkllm_status vkllm_op_argmax(vkllm_chain *chain, const vkllm_argmax_args *a);

/* The k (1..64, k <= n) largest x[r, i], i < n, per row r < rows, sorted descending with ties by
 * the lower index (NaN ranks below -inf; -0 == +0): vals float32 [rows][k] (the values as stored
 * in x) and idx uint32 [rows][k]. Two dispatches; scratch: vkllm_topk_scratch_bytes(n, rows, k). */
typedef struct vkllm_topk_args {
    vkllm_view x, vals, idx, scratch;
    uint32_t n, rows, stride, k;
    const char *name; /* NULL: "topk" */
} vkllm_topk_args;
#define VKLLM_TOPK_MAX_K 64
uint64_t vkllm_topk_scratch_bytes(uint32_t n, uint32_t rows, uint32_t k);
vkllm_status vkllm_op_topk(vkllm_chain *chain, const vkllm_topk_args *a);

#ifdef __cplusplus
}
#endif
#endif
