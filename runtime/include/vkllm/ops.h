/* Kernel operations: each records one kernel into a chain, choosing its variant (vector width,
 * workgroup size, precision path) from the device's feature record and the shape. */
#ifndef VKLLM_OPS_H
#define VKLLM_OPS_H

#include <stdint.h>

#include "vkllm/chain.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A float32 tensor view inside a buffer: offset in bytes (a multiple of the storage alignment, 256
 * is always safe). */
typedef struct vkllm_view {
    vkllm_buffer buf;
    uint64_t offset;
} vkllm_view;

/* y = rmsnorm(x) * w over `rows` rows of n floats; strides in elements. y may not alias x. */
typedef struct vkllm_rmsnorm_args {
    vkllm_view x, w, y;
    uint32_t n, rows, x_stride, y_stride;
    float eps;
    const char *name; /* dispatch name for profiling (NULL: "rmsnorm") */
} vkllm_rmsnorm_args;
vkllm_status vkllm_op_rmsnorm(vkllm_chain *chain, const vkllm_rmsnorm_args *a);

/* RoPE over n_tok tokens x n_head heads (see kernels/rope.comp and vkllm_ref_rope): positions are
 * int32 [n_tok] in `pos`; `table` holds the (hi, lo) pairs of vkllm_rope_table (n_rot/2 pairs).
 * y may equal x (same view) for in-place rotation. */
typedef struct vkllm_rope_args {
    vkllm_view x, y, pos, table;
    uint32_t n_tok, n_head, head_dim, n_rot;
    uint32_t x_tok, x_head, y_tok, y_head;
    int neox;
    float attn_factor;
    int force_fp32; /* use the float32 angle path even where fp64 exists (tests) */
    const char *name;
} vkllm_rope_args;
vkllm_status vkllm_op_rope(vkllm_chain *chain, const vkllm_rope_args *a);

/* Reads n_bytes (a multiple of 16) of src as fast as possible; dst gets at most 4 KiB of junk.
 * The benchmarks' streaming-read ceiling. */
vkllm_status vkllm_op_stream_read(vkllm_chain *chain, vkllm_view src, uint64_t n_bytes, vkllm_view dst);

#ifdef __cplusplus
}
#endif

/* The kernel families, one header each. */
#include "vkllm/ops_attn.h"
#include "vkllm/ops_gemm.h"
#include "vkllm/ops_matvec.h"
#include "vkllm/ops_misc.h"
#endif
