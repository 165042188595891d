/* Buffer pool: best-fit sub-allocation from device-memory blocks, coalescing free lists,
 * synchronous uploads/downloads through a host-visible staging buffer. Thread-safe: the pool's
 * lists under dev->pool_lock, one transfer at a time under dev->xfer_lock. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ALIGN 256u /* >= every minStorageBufferOffsetAlignment seen, and keeps vec4/uvec4 loads aligned */

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static const char *kind_name(vkllm_mem_kind k) { return k == VKLLM_MEM_DEVICE ? "device-local" : "host-visible"; }

static vkllm_status new_block(vkllm_device *dev, vkllm_mem_kind kind, uint64_t size, vkllm_block **out)
{
    if (dev->pool_limit && dev->reserved[kind] + size > dev->pool_limit)
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_DEVICE_MEMORY,
                          "%s memory: a new %.1f MiB block would exceed the pool limit of %.1f MiB (%.1f MiB reserved)",
                          kind_name(kind), size / 1048576.0, dev->pool_limit / 1048576.0, dev->reserved[kind] / 1048576.0);
    vkllm_block *b = calloc(1, sizeof *b);
    free_range *fr = calloc(1, sizeof *fr);
    if (!b || !fr) {
        free(b);
        free(fr);
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a pool block");
    }
    VkBufferCreateInfo bci = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                               .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                        VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                               .sharingMode = VK_SHARING_MODE_EXCLUSIVE };
    /* With bufferDeviceAddress every block can be reached by address: the cooperative_matrix2 decode
     * loads (kernels/gemm.comp) turn their SSBO into a physical pointer, which needs both flags. */
    if (dev->f.buffer_device_address) bci.usage |= VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT;
    VkMemoryAllocateFlagsInfo mafi = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
                                       .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT };
    VkResult r = vkCreateBuffer(dev->device, &bci, NULL, &b->buffer);
    VkMemoryRequirements req = { 0 };
    if (r == VK_SUCCESS) {
        vkGetBufferMemoryRequirements(dev->device, b->buffer, &req);
        if (!(req.memoryTypeBits & (1u << dev->mem_type[kind]))) r = VK_ERROR_FEATURE_NOT_PRESENT;
    }
    if (r == VK_SUCCESS) {
        VkMemoryAllocateInfo mai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                     .pNext = dev->f.buffer_device_address ? &mafi : NULL, .allocationSize = req.size,
                                     .memoryTypeIndex = dev->mem_type[kind] };
        r = vkAllocateMemory(dev->device, &mai, NULL, &b->memory);
    }
    if (r == VK_SUCCESS) r = vkBindBufferMemory(dev->device, b->buffer, b->memory, 0);
    if (r == VK_SUCCESS && kind == VKLLM_MEM_HOST) r = vkMapMemory(dev->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped);
    if (r != VK_SUCCESS) {
        if (b->buffer) vkDestroyBuffer(dev->device, b->buffer, NULL);
        if (b->memory) vkFreeMemory(dev->device, b->memory, NULL);
        free(b);
        free(fr);
        vkllm_device_refresh_budget(dev);
        return vkllm_fail(dev, vkllm_vk_status(r),
                          "cannot allocate a %.1f MiB %s block (%s); %.1f MiB already reserved, device budget %.1f MiB, "
                          "in use %.1f MiB: use a smaller model or context",
                          size / 1048576.0, kind_name(kind), vkllm_vk_result_name(r), dev->reserved[kind] / 1048576.0,
                          dev->f.device_local_budget / 1048576.0, dev->f.device_local_usage / 1048576.0);
    }
    vkllm_name_object(dev, VK_OBJECT_TYPE_BUFFER, (uint64_t)(uintptr_t)b->buffer,
                      kind == VKLLM_MEM_DEVICE ? "vkllm.pool.device" : "vkllm.pool.host");
    b->size = size;
    b->kind = kind;
    fr->offset = 0;
    fr->size = size;
    b->free_list = fr;
    b->next = dev->blocks[kind];
    dev->blocks[kind] = b;
    dev->reserved[kind] += size;
    *out = b;
    return VKLLM_OK;
}

static vkllm_status alloc_locked(vkllm_device *dev, vkllm_mem_kind kind, uint64_t size, uint64_t need, vkllm_buffer *out);

vkllm_status vkllm_buffer_alloc(vkllm_device *dev, vkllm_mem_kind kind, uint64_t size, vkllm_buffer *out)
{
    if (!out) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_buffer_alloc: out is NULL");
    memset(out, 0, sizeof *out);
    if (!dev || (kind != VKLLM_MEM_DEVICE && kind != VKLLM_MEM_HOST))
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_buffer_alloc: bad device or memory kind %d", (int)kind);
    if (size == 0) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_buffer_alloc: size 0");
    if (vkllm_fault_alloc(dev))
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_DEVICE_MEMORY,
                          "cannot allocate %llu bytes of %s memory: allocation #%llu refused by fault injection (VKLLM_FAULT)",
                          (unsigned long long)size, kind_name(kind), (unsigned long long)dev->fault.allocs);
    if (size > UINT64_MAX - ALIGN) return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "vkllm_buffer_alloc: size overflows");
    uint64_t need = align_up(size, ALIGN);
    if (need > dev->f.max_allocation_size)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE,
                          "a buffer of %llu bytes exceeds the device's maxMemoryAllocationSize (%llu bytes)",
                          (unsigned long long)size, (unsigned long long)dev->f.max_allocation_size);

    pthread_mutex_lock(&dev->pool_lock);
    vkllm_status st = alloc_locked(dev, kind, size, need, out);
    pthread_mutex_unlock(&dev->pool_lock);
    return st;
}

static vkllm_status alloc_locked(vkllm_device *dev, vkllm_mem_kind kind, uint64_t size, uint64_t need, vkllm_buffer *out)
{
    /* best fit over every block's free list */
    vkllm_block *best_b = NULL;
    free_range *best = NULL, *best_prev = NULL;
    for (int attempt = 0; attempt < 2 && !best; attempt++) {
        for (vkllm_block *b = dev->blocks[kind]; b; b = b->next) {
            free_range *prev = NULL;
            for (free_range *fr = b->free_list; fr; prev = fr, fr = fr->next)
                if (fr->size >= need && (!best || fr->size < best->size)) {
                    best = fr;
                    best_prev = prev;
                    best_b = b;
                }
        }
        if (!best) {
            uint64_t bs = dev->block_size > need ? dev->block_size : need;
            if (bs > dev->f.max_allocation_size) bs = dev->f.max_allocation_size;
            /* a capped pool still fits a request that alone is under the cap */
            if (dev->pool_limit && dev->reserved[kind] + bs > dev->pool_limit && dev->reserved[kind] + need <= dev->pool_limit)
                bs = need;
            vkllm_block *nb;
            vkllm_status s = new_block(dev, kind, bs, &nb);
            if (s) return s;
        }
    }
    if (!best) return vkllm_fail(dev, VKLLM_ERROR_INTERNAL, "pool: no free range after adding a block");
    out->block = best_b;
    out->offset = best->offset;
    out->size = size;
    best->offset += need;
    best->size -= need;
    if (best->size == 0) {
        if (best_prev) best_prev->next = best->next;
        else best_b->free_list = best->next;
        free(best);
    }
    best_b->used += need;
    best_b->live++;
    dev->used[kind] += need;
    dev->live[kind]++;
    if (dev->used[kind] > dev->peak[kind]) dev->peak[kind] = dev->used[kind];
    return VKLLM_OK;
}

void vkllm_buffer_free(vkllm_device *dev, vkllm_buffer *buf)
{
    if (!dev || !buf || !buf->block) return;
    vkllm_block *b = buf->block;
    uint64_t off = buf->offset, len = align_up(buf->size, ALIGN);
    pthread_mutex_lock(&dev->pool_lock);
    free_range *prev = NULL, *cur = b->free_list;
    while (cur && cur->offset < off) { prev = cur; cur = cur->next; }
    int merged = 0;
    if (prev && prev->offset + prev->size == off) {
        prev->size += len;
        merged = 1;
        if (cur && prev->offset + prev->size == cur->offset) {
            prev->size += cur->size;
            prev->next = cur->next;
            free(cur);
        }
    } else if (cur && off + len == cur->offset) {
        cur->offset = off;
        cur->size += len;
        merged = 1;
    }
    if (!merged) {
        free_range *fr = malloc(sizeof *fr);
        if (fr) { /* on failure the range is lost until the device is destroyed: a leak, never corruption */
            fr->offset = off;
            fr->size = len;
            fr->next = cur;
            if (prev) prev->next = fr;
            else b->free_list = fr;
        }
    }
    b->used -= len;
    b->live--;
    dev->used[b->kind] -= len;
    dev->live[b->kind]--;
    pthread_mutex_unlock(&dev->pool_lock);
    memset(buf, 0, sizeof *buf);
}

void *vkllm_buffer_map(const vkllm_buffer *buf)
{
    if (!buf || !buf->block || !buf->block->mapped) return NULL;
    return (char *)buf->block->mapped + buf->offset;
}

void vkllm_pool_destroy_all(vkllm_device *dev)
{
    for (int k = 0; k < 2; k++) {
        vkllm_block *b = dev->blocks[k];
        while (b) {
            vkllm_block *n = b->next;
            for (free_range *fr = b->free_list; fr;) {
                free_range *fn = fr->next;
                free(fr);
                fr = fn;
            }
            if (b->mapped) vkUnmapMemory(dev->device, b->memory);
            vkDestroyBuffer(dev->device, b->buffer, NULL);
            vkFreeMemory(dev->device, b->memory, NULL);
            free(b);
            b = n;
        }
        dev->blocks[k] = NULL;
        dev->reserved[k] = dev->used[k] = dev->live[k] = 0;
    }
}

void vkllm_pool_stats_get(const vkllm_device *dev, vkllm_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!dev) return;
    pthread_mutex_t *lock = (pthread_mutex_t *)&dev->pool_lock; /* the stats are read, the lock is not const */
    pthread_mutex_lock(lock);
    for (int k = 0; k < 2; k++) {
        uint64_t total_free = 0, largest = 0;
        for (vkllm_block *b = dev->blocks[k]; b; b = b->next) {
            out->blocks[k]++;
            for (free_range *fr = b->free_list; fr; fr = fr->next) {
                total_free += fr->size;
                if (fr->size > largest) largest = fr->size;
            }
        }
        out->reserved_bytes[k] = dev->reserved[k];
        out->used_bytes[k] = dev->used[k];
        out->peak_used_bytes[k] = dev->peak[k];
        out->allocations[k] = dev->live[k];
        out->largest_free[k] = largest;
        out->fragmentation[k] = total_free ? 1.0 - (double)largest / (double)total_free : 0.0;
    }
    pthread_mutex_unlock(lock);
}

void vkllm_pool_set_limit(vkllm_device *dev, uint64_t bytes)
{
    if (!dev) return;
    pthread_mutex_lock(&dev->pool_lock);
    dev->pool_limit = bytes;
    pthread_mutex_unlock(&dev->pool_lock);
}

void vkllm_pool_set_block_size(vkllm_device *dev, uint64_t bytes)
{
    if (!dev) return;
    if (bytes < (1u << 20)) bytes = 1u << 20;
    if (bytes > dev->f.max_allocation_size) bytes = dev->f.max_allocation_size;
    pthread_mutex_lock(&dev->pool_lock);
    dev->block_size = align_up(bytes, ALIGN);
    pthread_mutex_unlock(&dev->pool_lock);
}

/* ---- synchronous transfers through the staging buffer ---- */

vkllm_status vkllm_xfer_begin(vkllm_device *dev)
{
    VK_CHECK(dev, vkResetCommandBuffer(dev->xfer_cmd, 0));
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT };
    VK_CHECK(dev, vkBeginCommandBuffer(dev->xfer_cmd, &bi));
    return VKLLM_OK;
}

vkllm_status vkllm_xfer_submit_wait(vkllm_device *dev)
{
    VK_CHECK(dev, vkEndCommandBuffer(dev->xfer_cmd));
    VkSubmitInfo si = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &dev->xfer_cmd };
    VK_CHECK(dev, vkResetFences(dev->device, 1, &dev->xfer_fence));
    pthread_mutex_lock(&dev->queue_lock);
    VkResult r = vkQueueSubmit(dev->queue, 1, &si, dev->xfer_fence);
    pthread_mutex_unlock(&dev->queue_lock);
    VK_CHECK(dev, r);
    VK_CHECK(dev, vkWaitForFences(dev->device, 1, &dev->xfer_fence, VK_TRUE, UINT64_MAX));
    return VKLLM_OK;
}

/* Orders the transfer against compute work before and after it in queue order. */
static void xfer_barrier(vkllm_device *dev, VkPipelineStageFlags src, VkAccessFlags src_access, VkPipelineStageFlags dst,
                         VkAccessFlags dst_access)
{
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = src_access, .dstAccessMask = dst_access };
    vkCmdPipelineBarrier(dev->xfer_cmd, src, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

#define XFER_CHUNK (64ull << 20)

static vkllm_status ensure_staging(vkllm_device *dev, uint64_t size)
{
    if (dev->staging.block && dev->staging.size >= size) return VKLLM_OK;
    vkllm_buffer_free(dev, &dev->staging);
    return vkllm_buffer_alloc(dev, VKLLM_MEM_HOST, size, &dev->staging);
}

static vkllm_status check_range(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, uint64_t size, const char *what)
{
    if (!dev) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (!buf || !buf->block) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "%s: buffer is not allocated", what);
    if (offset > buf->size || size > buf->size - offset)
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE, "%s: range [%llu, +%llu) is outside the %llu-byte buffer", what,
                          (unsigned long long)offset, (unsigned long long)size, (unsigned long long)buf->size);
    return VKLLM_OK;
}

static vkllm_status copy_locked(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, void *host, uint64_t size,
                               int upload);

/* One transfer at a time per device (staging and xfer_cmd are shared by every session). */
static vkllm_status copy(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, void *host, uint64_t size, int upload)
{
    vkllm_status s = check_range(dev, buf, offset, size, upload ? "vkllm_buffer_write" : "vkllm_buffer_read");
    if (s || size == 0) return s;
    if (buf->block->mapped) { /* host-visible: the device must be idle for coherent access to be safe */
        pthread_mutex_lock(&dev->queue_lock);
        VkResult r = vkQueueWaitIdle(dev->queue);
        pthread_mutex_unlock(&dev->queue_lock);
        VK_CHECK(dev, r);
        char *p = (char *)buf->block->mapped + buf->offset + offset;
        if (upload) memcpy(p, host, size);
        else memcpy(host, p, size);
        return VKLLM_OK;
    }
    pthread_mutex_lock(&dev->xfer_lock);
    s = copy_locked(dev, buf, offset, host, size, upload);
    pthread_mutex_unlock(&dev->xfer_lock);
    return s;
}

static vkllm_status copy_locked(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, void *host, uint64_t size,
                               int upload)
{
    vkllm_status s;
    uint64_t chunk = size < XFER_CHUNK ? size : XFER_CHUNK;
    if ((s = ensure_staging(dev, chunk))) return s;
    for (uint64_t done = 0; done < size; done += chunk) {
        uint64_t n = size - done < chunk ? size - done : chunk;
        if (upload) memcpy((char *)dev->staging.block->mapped + dev->staging.offset, (char *)host + done, n);
        if ((s = vkllm_xfer_begin(dev))) return s;
        VkBufferCopy c = { .size = n };
        if (upload) {
            c.srcOffset = dev->staging.offset;
            c.dstOffset = buf->offset + offset + done;
            xfer_barrier(dev, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
                         VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT);
            vkCmdCopyBuffer(dev->xfer_cmd, dev->staging.block->buffer, buf->block->buffer, 1, &c);
            xfer_barrier(dev, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                         VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
        } else {
            c.srcOffset = buf->offset + offset + done;
            c.dstOffset = dev->staging.offset;
            xfer_barrier(dev, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_ACCESS_TRANSFER_READ_BIT);
            vkCmdCopyBuffer(dev->xfer_cmd, buf->block->buffer, dev->staging.block->buffer, 1, &c);
            xfer_barrier(dev, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_HOST_BIT,
                         VK_ACCESS_HOST_READ_BIT);
        }
        if ((s = vkllm_xfer_submit_wait(dev))) return s;
        if (!upload) memcpy((char *)host + done, (char *)dev->staging.block->mapped + dev->staging.offset, n);
    }
    return VKLLM_OK;
}

vkllm_status vkllm_buffer_write(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, const void *src, uint64_t size)
{
    return copy(dev, buf, offset, (void *)(uintptr_t)src, size, 1);
}

vkllm_status vkllm_buffer_read(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, void *dst, uint64_t size)
{
    return copy(dev, buf, offset, dst, size, 0);
}

static vkllm_status fill_locked(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, uint64_t size, uint32_t pattern);

vkllm_status vkllm_buffer_fill(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, uint64_t size, uint32_t pattern)
{
    vkllm_status s = check_range(dev, buf, offset, size, "vkllm_buffer_fill");
    if (s || size == 0) return s;
    if ((offset | size) & 3) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_buffer_fill: offset/size not multiples of 4");
    pthread_mutex_lock(&dev->xfer_lock);
    s = fill_locked(dev, buf, offset, size, pattern);
    pthread_mutex_unlock(&dev->xfer_lock);
    return s;
}

static vkllm_status fill_locked(vkllm_device *dev, const vkllm_buffer *buf, uint64_t offset, uint64_t size, uint32_t pattern)
{
    vkllm_status s;
    if ((s = vkllm_xfer_begin(dev))) return s;
    xfer_barrier(dev, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT,
                 VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT);
    vkCmdFillBuffer(dev->xfer_cmd, buf->block->buffer, buf->offset + offset, size, pattern);
    xfer_barrier(dev, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
    return vkllm_xfer_submit_wait(dev);
}
