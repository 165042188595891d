/* Tensor element types and quantized block formats, byte-exact with GGUF (ggml) layouts.
 * The enum values are GGUF's ggml_type numbers, so a tensor's type field maps directly. */
#ifndef VKLLM_QUANT_H
#define VKLLM_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vkllm_dtype {
    VKLLM_DTYPE_F32 = 0,
    VKLLM_DTYPE_F16 = 1,
    VKLLM_DTYPE_Q4_0 = 2,
    VKLLM_DTYPE_Q8_0 = 8,
    VKLLM_DTYPE_Q4_K = 12,
    VKLLM_DTYPE_Q5_K = 13,
    VKLLM_DTYPE_Q6_K = 14,
    VKLLM_DTYPE_BF16 = 30
} vkllm_dtype;

/* Byte sizes of the blocks (static layout facts, also asserted in quant.c):
 *   Q8_0: 34 = fp16 d + 32 x int8                          (32 elements)
 *   Q4_0: 18 = fp16 d + 16 bytes of nibbles                  (32 elements; low nibbles = first 16)
 *   Q4_K: 144 = fp16 d, fp16 dmin, 12 bytes 6-bit scales/mins, 128 bytes nibbles   (256 elements)
 *   Q5_K: 176 = fp16 d, fp16 dmin, 12 bytes scales/mins, 32 bytes high bits, 128 bytes nibbles
 *   Q6_K: 210 = 128 bytes low nibbles, 64 bytes high 2 bits, 16 x int8 scales, fp16 d */
#define VKLLM_QK8_0 32
#define VKLLM_QK4_0 32
#define VKLLM_QK_K 256

/* 1 if t is one of the types above. */
int vkllm_dtype_valid(int t);
/* "f32", "f16", "q4_0", ... ; "unknown" for anything else. */
const char *vkllm_dtype_name(vkllm_dtype t);
/* Elements per block (1 for f32/f16/bf16); 0 for an invalid type. */
size_t vkllm_dtype_block_elems(vkllm_dtype t);
/* Bytes per block; 0 for an invalid type. */
size_t vkllm_dtype_block_bytes(vkllm_dtype t);
/* Bytes of n elements of type t into *out. Fails (VKLLM_ERROR_BAD_FILE) if n is not a whole number
 * of blocks, VKLLM_ERROR_TOO_LARGE on overflow, VKLLM_ERROR_UNSUPPORTED_TYPE for an invalid type. */
vkllm_status vkllm_dtype_bytes(vkllm_dtype t, uint64_t n, uint64_t *out);

/* Dequantize n elements (a whole number of blocks) from src into dst. src needs no alignment.
 * (Contract violations, an invalid type or a partial last block, leave NaN in the affected dst.) */
void vkllm_dequantize(vkllm_dtype t, const void *src, float *dst, size_t n);
/* Quantize n elements (a whole number of blocks) from src into dst with a per-block scale search of
 * reference quality (comparable errors to the common GGUF tools). Thread-safe, no allocation.
 * dst needs no alignment. Fails with VKLLM_ERROR_UNSUPPORTED_TYPE for an invalid type, and with
 * VKLLM_ERROR_INVALID_ARGUMENT if n is not a whole number of blocks or a block to be quantized to a
 * Q type holds a NaN or infinity (dst is then partly written). F32/F16/BF16 take any value; values
 * beyond a Q format's range saturate (block scales are clamped to the finite fp16 range). */
vkllm_status vkllm_quantize(vkllm_dtype t, const float *src, void *dst, size_t n);

/* The 12-byte 6-bit scale/min packing of Q4_K and Q5_K (8 sub-blocks; values 0..63, higher bits of
 * the inputs are ignored). For sub-block s < 4: sc = b[s] & 63, m = b[s+4] & 63; for s >= 4:
 * sc = (b[s+4] & 15) | (b[s-4] >> 6) << 4, m = (b[s+4] >> 4) | (b[s] >> 6) << 4. */
void vkllm_k_scales_pack(uint8_t out[12], const uint8_t sc[8], const uint8_t mn[8]);
void vkllm_k_scales_unpack(const uint8_t in[12], uint8_t sc[8], uint8_t mn[8]);

#ifdef __cplusplus
}
#endif
#endif
