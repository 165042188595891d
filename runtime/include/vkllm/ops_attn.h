/* Kernel operations of the attn family (see ops.h for the pattern): RoPE + KV-cache append, decode
 * attention (flash-decoding: one pass, or split + merge) and prefill attention over an fp16 KV cache.
 *
 * KV cache layout (one K and one V tensor per layer, allocated by the runtime):
 *   fp16 [n_kv_head][ctx][head_dim]: element e of position p of KV head h is half number
 *   (h * ctx + p) * head_dim + e, i.e. 2 * ctx * head_dim * n_kv_head bytes per tensor. Each head's
 *   positions are contiguous, so decode streams them with 16-byte loads.
 * Live length: a device buffer `len` whose first uint32 is the number of valid cache positions L
 *   (after this step's KV write); query row t of an n_tok-row batch sits at position L - n_tok + t.
 *   Positions for the KV write come from an int32 buffer too. Nothing that changes per token is a
 *   push constant, so a recorded chain replays for every token.
 * Requirements: head_dim a multiple of 16 (Phi-3: 96, Phi-4: 128), n_q a multiple of n_kv_head,
 * n_rot a multiple of 4, views at 256-byte multiples. */
#ifndef VKLLM_OPS_ATTN_H
#define VKLLM_OPS_ATTN_H
#include "vkllm/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of one K (or V) cache tensor. */
uint64_t vkllm_kv_cache_bytes(uint32_t n_kv_head, uint32_t ctx, uint32_t head_dim);

/* From the fused QKV rows (float32 [n_tok][qkv_stride]: Q n_q*hd, K n_kv*hd, V n_kv*hd), rotates Q
 * into q (float32 [n_tok][n_q][hd]) and K into the cache, and stores V, both as fp16 at the positions
 * pos[t] (int32 [n_tok]; outside [0, ctx) skips the cache write). RoPE as vkllm_op_rope (neox or
 * interleaved, (hi, lo) table of vkllm_rope_table, fp64 angle where the device has shaderFloat64).
 * The positions of one call must be distinct (two tokens writing one cache row would race). */
typedef struct vkllm_kv_write_args {
    vkllm_view qkv, pos, table, q, k_cache, v_cache;
    uint32_t n_tok, n_q, n_kv, head_dim, n_rot, qkv_stride, ctx;
    int neox;
    float attn_factor; /* 0 = 1 */
    int force_fp32;    /* float32 angle path even where fp64 exists (tests) */
    const char *name;
} vkllm_kv_write_args;
vkllm_status vkllm_op_kv_write(vkllm_chain *chain, const vkllm_kv_write_args *a);

/* Attention of n_tok query rows (q float32 [n_tok][n_q][hd]) over the cache, causal, optional
 * sliding window (window > 0: position k is seen from qpos iff qpos - window < k <= qpos), scale
 * 1/sqrt(hd) unless `scale` is given; out float32 [n_tok][n_q][hd] (may not alias q).
 * vkllm_op_attn_decode (n_tok small, e.g. 1..8): scratch must hold vkllm_attn_decode_scratch_bytes(...)
 * bytes (for the same n_tok, n_q, head_dim, ctx, n_split); n_split = 0 picks the split count from the
 * KV heads, rows and ctx (at most vkllm_attn_decode_splits(ctx, 0)). With one_pass = 1 it is one
 * dispatch where vkllm_attn_decode_one_pass_available(dev) (the last workgroup of each row and KV head
 * merges, found by a counter), else a split dispatch and a merge dispatch.
 *   Scratch layout: [0, vkllm_attn_decode_counter_bytes(n_tok, n_q)) the one-pass counters, then the
 *   partials. The counters must be ZERO before the first one-pass call on a scratch (e.g.
 *   vkllm_buffer_fill(dev, &buf, scratch_offset, vkllm_attn_decode_counter_bytes(max_rows, n_q), 0)
 *   once when the scratch is allocated); every one-pass call leaves them zero, so a recorded chain
 *   replays without re-zeroing. A region zeroed for n_tok rows serves calls of fewer rows. Calls that
 *   share a scratch must run one after another (the chain's barriers do that: each writes it).
 * vkllm_op_attn_prefill: one dispatch, any n_tok (the batch's K/V must already be in the cache);
 * the cooperative-matrix kernel where the device has 16x16x16 f16 -> f32 matrices, else the portable one. */
typedef struct vkllm_attn_args {
    vkllm_view q, k_cache, v_cache, len, out, scratch;
    uint32_t n_tok, n_q, n_kv, head_dim, ctx;
    uint32_t window;  /* 0 = none */
    float scale;      /* 0 = 1/sqrt(head_dim) */
    uint32_t n_split; /* decode only; 0 = auto */
    const char *name;
    int force_portable; /* prefill: 1 = the shared-memory float32 kernel even where cooperative matrices
                         * exist; -1 = the cooperative-matrix kernel with its matrix operations emulated
                         * in scalar code (tests only: checks that kernel's logic on any device; slow) */
    int one_pass;       /* decode: 1 = one dispatch where available (the caller has zeroed the scratch's
                         * counters once, see above); 0 = split + merge dispatches, no counters used.
                         * $VKLLM_ATTN_DECODE_TWO_PASS=1 forces split + merge (comparison, fallback). */
    vkllm_view q8_out;  /* decode, n_tok = 1, q8_out.buf.block != NULL: out also quantized per 32 for
                         * vkllm_op_matvec_q8's xq (vkllm_op_quantize_q8's layout, no prologue;
                         * vkllm_q8_act_bytes(n_q * head_dim, 1) bytes, offset a multiple of 16; head_dim
                         * a multiple of 32): by the one-pass kernel's merge, else a quantize_q8 dispatch */
} vkllm_attn_args;
/* The most splits a decode call at capacity ctx may use (n_split if nonzero): what the scratch is sized for. */
uint32_t vkllm_attn_decode_splits(uint32_t ctx, uint32_t n_split);
uint64_t vkllm_attn_decode_scratch_bytes(uint32_t n_tok, uint32_t n_q, uint32_t head_dim, uint32_t ctx, uint32_t n_split);
/* The split count vkllm_op_attn_decode would use for these arguments on this device (0 if it would fail). */
uint32_t vkllm_attn_decode_split_count(vkllm_device *dev, const vkllm_attn_args *a);
/* Bytes at the start of the decode scratch holding the one-pass counters (uint32, a multiple of 256). */
uint64_t vkllm_attn_decode_counter_bytes(uint32_t n_tok, uint32_t n_q);
/* 1 if one_pass = 1 gets the one-dispatch kernel on this device (the Vulkan memory model at device
 * scope, the kernel in this build, $VKLLM_ATTN_DECODE_TWO_PASS unset or 0). */
int vkllm_attn_decode_one_pass_available(vkllm_device *dev);
vkllm_status vkllm_op_attn_decode(vkllm_chain *chain, const vkllm_attn_args *a);
vkllm_status vkllm_op_attn_prefill(vkllm_chain *chain, const vkllm_attn_args *a);
/* 1 if vkllm_op_attn_prefill takes the cooperative-matrix kernel (fp16 Q and P, fp32 accumulate:
 * NMSE ~1e-7 instead of ~1e-12) for this head_dim on this device, unless forced portable. */
int vkllm_attn_prefill_uses_coopmat(vkllm_device *dev, uint32_t head_dim);

#ifdef __cplusplus
}
#endif
#endif
