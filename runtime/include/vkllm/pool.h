/* Buffer pool: sub-allocates buffers from device-memory blocks of at most maxMemoryAllocationSize,
 * best-fit with coalescing free lists; device-local and host-visible (staging/readback) memory are
 * kept apart. A buffer never spans two blocks. Allocation failure is a status with a message. */
#ifndef VKLLM_POOL_H
#define VKLLM_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vkllm_mem_kind {
    VKLLM_MEM_DEVICE = 0,  /* device-local: weights, activations, KV cache */
    VKLLM_MEM_HOST = 1     /* host-visible, coherent: staging and readback */
} vkllm_mem_kind;

typedef struct vkllm_block vkllm_block;

/* A sub-allocation: a range of one block. A plain value; copy it freely, free it once. */
typedef struct vkllm_buffer {
    vkllm_block *block;
    uint64_t offset; /* bytes from the start of the block */
    uint64_t size;   /* bytes requested */
} vkllm_buffer;

typedef struct vkllm_pool_stats {
    uint32_t blocks[2];           /* per kind */
    uint64_t reserved_bytes[2];   /* sum of block sizes */
    uint64_t used_bytes[2];       /* sum of live allocations (aligned sizes) */
    uint64_t peak_used_bytes[2];
    uint64_t allocations[2];      /* live allocations */
    uint64_t largest_free[2];     /* largest free range */
    double fragmentation[2];      /* 1 - largest_free / total_free (0 when nothing is free) */
} vkllm_pool_stats;

/* Allocates size bytes (> 0) of the given kind, aligned for storage-buffer binding. On failure
 * *out is zeroed and the device error says what was asked and what is free. */
vkllm_status vkllm_buffer_alloc(vkllm_device *dev, vkllm_mem_kind kind, uint64_t size, vkllm_buffer *out);
/* Returns the range to its block's free list (coalescing neighbours) and zeroes *buf. Accepts a
 * zeroed buffer. */
void vkllm_buffer_free(vkllm_device *dev, vkllm_buffer *buf);
/* Host pointer of a VKLLM_MEM_HOST buffer (NULL for device-local memory). */
void *vkllm_buffer_map(const vkllm_buffer *buf);

/* Copies size bytes from host memory into buf at offset (through staging for device memory);
 * synchronous. */
vkllm_status vkllm_buffer_write(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, const void *src, uint64_t size);
/* Copies size bytes from buf at offset into host memory; synchronous. */
vkllm_status vkllm_buffer_read(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, void *dst, uint64_t size);
/* Fills size bytes at offset with a repeated 32-bit pattern (size a multiple of 4); synchronous. */
vkllm_status vkllm_buffer_fill(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, uint64_t size, uint32_t pattern);

/* A snapshot of the pool's counters (zeroed for NULL dev). */
void vkllm_pool_stats_get(const vkllm_device *dev, vkllm_pool_stats *out);
/* Caps each kind's total reserved bytes (0 = no cap); for tests and fault injection. Also read from
 * $VKLLM_POOL_LIMIT_MB at device creation. */
void vkllm_pool_set_limit(vkllm_device *dev, uint64_t bytes);
/* Default block size for new blocks (bytes, clamped to maxMemoryAllocationSize). */
void vkllm_pool_set_block_size(vkllm_device *dev, uint64_t bytes);

#ifdef __cplusplus
}
#endif
#endif
