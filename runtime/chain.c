/* Command chain: dispatches recorded into one command buffer, barriers only on real conflicts,
 * one submit, optional per-dispatch timestamps (every dispatch, or sampled: several command
 * buffers that differ only in which dispatches they stamp, replayed in turn). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define QUERIES_PER_POOL 512u
#define SETS_PER_POOL 256u
#define MAX_REPLAYS VKLLM_STAMPS_MAX_REPLAYS
#define GROUP_MAX 16u /* dispatches per sampling group at most (chains without layer names) */

typedef struct access_range {
    VkBuffer buffer;
    uint64_t begin, end;
    int write;
} access_range;

typedef struct dispatch_rec {
    char *name;
    uint64_t bytes, flops;
    const char *kernel;
    uint32_t replay;  /* the replay that stamps it */
    int32_t qs, qe;   /* its start and end queries in that replay (qs may be the previous end stamp) */
    int overlap;      /* no barrier since the previous dispatch */
    uint64_t run;     /* the run that timed it last (0: none) */
    double start_ns, duration_ns, device_ns;
} dispatch_rec;

struct vkllm_chain {
    vkllm_device *dev;
    VkCommandPool cmd_pool; /* the chain's own: recording into a pool's buffers needs the pool to be
                             * externally synchronized, and chains of sessions in several threads record at once */
    VkCommandBuffer cmd[MAX_REPLAYS]; /* one per replay; only cmd[0] without sampled timestamps */
    uint32_t n_cmd, n_active;         /* replays recorded, and rotated through (cut to the groups) */
    uint32_t next_replay, cur_replay; /* the replay the next submission uses, the one in flight/last run */
    uint64_t runs;                    /* finished runs since recording, collected */
    VkFence fence;
    int recording, recorded, submitted, auto_barriers;
    vkllm_chain_options opts;

    VkDescriptorPool *dpools;
    uint32_t n_dpools, cur_dpool;

    VkQueryPool *qpools;
    uint32_t n_qpools;
    int kind;                         /* VKLLM_STAMPS_*, 0 = off */
    int span_stamps;                  /* a stamp at the start and the end of every replay */
    uint32_t n_q[MAX_REPLAYS];        /* queries each replay writes */
    int32_t last_end[MAX_REPLAYS];    /* the replay's end stamp if nothing was recorded after it, else -1 */
    int32_t q_final[MAX_REPLAYS];     /* the replay's end-of-chain stamp */
    uint32_t group, group_size, barriers_at_prev; /* sampling groups while recording */
    int group_layer;
    uint64_t *ts;                     /* query results, scratch */
    uint32_t cap_ts;

    access_range *pending;
    uint32_t n_pending, cap_pending;

    dispatch_rec *recs;
    uint32_t n_recs, cap_recs;
    uint32_t n_barriers;

    vkllm_timing *timings;
    double gpu_ns;
    char label[64];
};

vkllm_status vkllm_chain_create(vkllm_device *dev, const vkllm_chain_options *opts, vkllm_chain **out)
{
    if (!dev || !out) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_chain_create: NULL argument");
    *out = NULL;
    vkllm_chain *c = calloc(1, sizeof *c);
    if (!c) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory creating a chain");
    c->dev = dev;
    c->auto_barriers = 1;
    if (opts) c->opts = *opts;
    if (c->opts.label) snprintf(c->label, sizeof c->label, "%s", c->opts.label);
    c->opts.label = NULL; /* the copy above is what lives on */
    const int t = c->opts.timestamps;
    const uint32_t k = t > 0 ? (uint32_t)VKLLM_STAMPS_REPLAYS(t) : 0;
    if (t && (t < 0 || VKLLM_STAMPS_KIND(t) < VKLLM_STAMPS_COMPUTE || VKLLM_STAMPS_KIND(t) > VKLLM_STAMPS_END || k > MAX_REPLAYS ||
              (t >> 16))) {
        free(c);
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "timestamps 0x%x: the kind must be 1-3 (VKLLM_STAMPS_*) and sampling at most %u replays", (unsigned)t,
                          MAX_REPLAYS);
    }
    c->kind = t ? VKLLM_STAMPS_KIND(t) : 0;
    c->n_cmd = k > 1 ? k : 1;
    c->n_active = 1;
    c->span_stamps = c->kind == VKLLM_STAMPS_END || c->n_cmd > 1;
    if (c->kind && dev->f.timestamp_period_ns <= 0) {
        free(c);
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "timestamps were asked for but the queue of '%s' has none", dev->f.name);
    }
    VkCommandPoolCreateInfo cpi = { .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                    .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                    .queueFamilyIndex = dev->queue_family };
    VkResult r = vkCreateCommandPool(dev->device, &cpi, NULL, &c->cmd_pool);
    VkCommandBufferAllocateInfo cai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = c->cmd_pool,
                                        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = c->n_cmd };
    VkFenceCreateInfo fci = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
    if (r == VK_SUCCESS) r = vkAllocateCommandBuffers(dev->device, &cai, c->cmd);
    if (r == VK_SUCCESS) r = vkCreateFence(dev->device, &fci, NULL, &c->fence);
    if (r != VK_SUCCESS) {
        vkllm_chain_destroy(c);
        VK_CHECK(dev, r);
    }
    *out = c;
    return VKLLM_OK;
}

static void free_recs(vkllm_chain *c)
{
    for (uint32_t i = 0; i < c->n_recs; i++) free(c->recs[i].name);
    c->n_recs = 0;
}

void vkllm_chain_destroy(vkllm_chain *c)
{
    if (!c) return;
    vkllm_device *dev = c->dev;
    if (c->submitted) vkWaitForFences(dev->device, 1, &c->fence, VK_TRUE, UINT64_MAX);
    for (uint32_t i = 0; i < c->n_dpools; i++) vkDestroyDescriptorPool(dev->device, c->dpools[i], NULL);
    for (uint32_t i = 0; i < c->n_qpools; i++) vkDestroyQueryPool(dev->device, c->qpools[i], NULL);
    if (c->fence) vkDestroyFence(dev->device, c->fence, NULL);
    if (c->cmd[0]) vkFreeCommandBuffers(dev->device, c->cmd_pool, c->n_cmd, c->cmd);
    if (c->cmd_pool) vkDestroyCommandPool(dev->device, c->cmd_pool, NULL);
    free_recs(c);
    free(c->recs);
    free(c->dpools);
    free(c->qpools);
    free(c->pending);
    free(c->timings);
    free(c->ts);
    free(c);
}

void vkllm_chain_set_auto_barriers(vkllm_chain *c, int on)
{
    if (c) c->auto_barriers = on;
}

/* Writes the next timestamp query of replay r at stage; *q gets its number. The replays share the
 * query pools (only one runs at a time, and its results are collected before the next submit), each
 * numbering its queries from 0, so a replay resets a pool in its own command buffer on first use. */
static vkllm_status stamp(vkllm_chain *c, uint32_t r, VkPipelineStageFlagBits stage, int32_t *q)
{
    uint32_t query = c->n_q[r]++, pool = query / QUERIES_PER_POOL, idx = query % QUERIES_PER_POOL;
    vkllm_device *dev = c->dev;
    if (pool >= c->n_qpools) {
        VkQueryPool *np = realloc(c->qpools, (pool + 1) * sizeof *np);
        if (!np) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for query pools");
        c->qpools = np;
        VkQueryPoolCreateInfo qci = { .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO, .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                      .queryCount = QUERIES_PER_POOL };
        VK_CHECK(dev, vkCreateQueryPool(dev->device, &qci, NULL, &c->qpools[pool]));
        c->n_qpools = pool + 1;
    }
    if (idx == 0) vkCmdResetQueryPool(c->cmd[r], c->qpools[pool], 0, QUERIES_PER_POOL);
    vkCmdWriteTimestamp(c->cmd[r], stage, c->qpools[pool], idx);
    if (q) *q = (int32_t)query;
    return VKLLM_OK;
}

vkllm_status vkllm_chain_begin(vkllm_chain *c)
{
    if (!c) return VKLLM_ERROR_INVALID_ARGUMENT;
    vkllm_device *dev = c->dev;
    if (c->submitted) {
        VK_CHECK(dev, vkWaitForFences(dev->device, 1, &c->fence, VK_TRUE, UINT64_MAX));
        c->submitted = 0;
    }
    for (uint32_t r = 0; r < c->n_cmd; r++) VK_CHECK(dev, vkResetCommandBuffer(c->cmd[r], 0));
    for (uint32_t i = 0; i < c->n_dpools; i++) VK_CHECK(dev, vkResetDescriptorPool(dev->device, c->dpools[i], 0));
    c->cur_dpool = 0;
    free_recs(c);
    c->n_pending = 0;
    c->n_barriers = 0;
    c->recorded = 0;
    c->runs = 0;
    c->next_replay = c->cur_replay = 0;
    c->n_active = 1;
    c->group = c->group_size = c->barriers_at_prev = 0;
    c->group_layer = -1;
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO };
    for (uint32_t r = 0; r < c->n_cmd; r++) {
        c->n_q[r] = 0;
        c->last_end[r] = c->q_final[r] = -1;
        VK_CHECK(dev, vkBeginCommandBuffer(c->cmd[r], &bi));
        if (c->label[0] && dev->cmd_begin_label) {
            VkDebugUtilsLabelEXT label = { .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_LABEL_EXT, .pLabelName = c->label };
            dev->cmd_begin_label(c->cmd[r], &label);
        }
        vkllm_status s;
        if (c->span_stamps && (s = stamp(c, r, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, NULL))) return s; /* query 0: the start */
    }
    c->recording = 1;
    return VKLLM_OK;
}

static vkllm_status alloc_set(vkllm_chain *c, VkDescriptorSetLayout layout, VkDescriptorSet *out)
{
    vkllm_device *dev = c->dev;
    while (c->cur_dpool < c->n_dpools) {
        VkDescriptorSetAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                           .descriptorPool = c->dpools[c->cur_dpool], .descriptorSetCount = 1,
                                           .pSetLayouts = &layout };
        VkResult r = vkAllocateDescriptorSets(dev->device, &ai, out);
        if (r == VK_SUCCESS) return VKLLM_OK;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) VK_CHECK(dev, r);
        c->cur_dpool++;
    }
    VkDescriptorPool *np = realloc(c->dpools, (c->n_dpools + 1) * sizeof *np);
    if (!np) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for descriptor pools");
    c->dpools = np;
    VkDescriptorPoolSize ps = { VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * VKLLM_MAX_BINDINGS };
    VkDescriptorPoolCreateInfo pci = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = SETS_PER_POOL,
                                       .poolSizeCount = 1, .pPoolSizes = &ps };
    VK_CHECK(dev, vkCreateDescriptorPool(dev->device, &pci, NULL, &c->dpools[c->n_dpools]));
    c->cur_dpool = c->n_dpools++;
    VkDescriptorSetAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                       .descriptorPool = c->dpools[c->cur_dpool], .descriptorSetCount = 1,
                                       .pSetLayouts = &layout };
    VK_CHECK(dev, vkAllocateDescriptorSets(dev->device, &ai, out));
    return VKLLM_OK;
}

/* One global memory barrier covers compute dispatches and the chain's small buffer copies alike. */
static void record_barrier(vkllm_chain *c)
{
    const VkAccessFlags acc = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                              VK_ACCESS_TRANSFER_WRITE_BIT;
    const VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = acc, .dstAccessMask = acc };
    for (uint32_t r = 0; r < c->n_cmd; r++) vkCmdPipelineBarrier(c->cmd[r], st, st, 0, 1, &mb, 0, NULL, 0, NULL);
    c->n_barriers++;
    c->n_pending = 0;
}

/* Adds ranges to the pending set, recording a barrier first if any conflicts with it. */
static vkllm_status track(vkllm_chain *c, const access_range *r, uint32_t n, const char *name)
{
    if (!c->auto_barriers) return VKLLM_OK;
    int conflict = 0;
    for (uint32_t i = 0; i < n && !conflict; i++)
        for (uint32_t j = 0; j < c->n_pending && !conflict; j++)
            if ((r[i].write || c->pending[j].write) && c->pending[j].buffer == r[i].buffer &&
                c->pending[j].begin < r[i].end && r[i].begin < c->pending[j].end)
                conflict = 1;
    if (conflict) record_barrier(c);
    if (c->n_pending + n > c->cap_pending) {
        uint32_t nc = (c->cap_pending + n) * 2;
        access_range *np = realloc(c->pending, nc * sizeof *np);
        if (!np) return vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory recording '%s'", name);
        c->pending = np;
        c->cap_pending = nc;
    }
    for (uint32_t i = 0; i < n; i++) c->pending[c->n_pending++] = r[i];
    return VKLLM_OK;
}

vkllm_status vkllm_chain_copy(vkllm_chain *c, const vkllm_buffer *src, uint64_t src_off, const vkllm_buffer *dst,
                              uint64_t dst_off, uint64_t size)
{
    vkllm_device *dev = c ? c->dev : NULL;
    if (!c || !src || !dst || !src->block || !dst->block)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_chain_copy: NULL or unallocated buffer");
    if (!c->recording) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_chain_copy: chain is not recording");
    if (size == 0) return VKLLM_OK;
    if (src_off > src->size || size > src->size - src_off || dst_off > dst->size || size > dst->size - dst_off)
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE, "vkllm_chain_copy: %llu bytes do not fit the buffers",
                          (unsigned long long)size);
    VkBufferCopy bc = { src->offset + src_off, dst->offset + dst_off, size };
    access_range r[2] = { { src->block->buffer, bc.srcOffset, bc.srcOffset + size, 0 },
                          { dst->block->buffer, bc.dstOffset, bc.dstOffset + size, 1 } };
    vkllm_status s = track(c, r, 2, "copy");
    if (s) return s;
    for (uint32_t r = 0; r < c->n_cmd; r++) {
        vkCmdCopyBuffer(c->cmd[r], src->block->buffer, dst->block->buffer, 1, &bc);
        c->last_end[r] = -1; /* a dispatch after the copy must not count the copy as its own time */
    }
    return VKLLM_OK;
}

vkllm_status vkllm_chain_barrier(vkllm_chain *c)
{
    if (!c || !c->recording) return vkllm_fail(c ? c->dev : NULL, VKLLM_ERROR_INVALID_ARGUMENT, "chain is not recording");
    record_barrier(c);
    return VKLLM_OK;
}

vkllm_status vkllm_chain_dispatch(vkllm_chain *c, const vkllm_dispatch *d)
{
    if (!c || !d || !d->pipeline) return vkllm_fail(c ? c->dev : NULL, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_chain_dispatch: NULL argument");
    vkllm_device *dev = c->dev;
    const vkllm_pipeline *p = d->pipeline;
    const char *name = d->name ? d->name : p->kernel;
    if (!c->recording) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "%s: chain is not recording (call vkllm_chain_begin)", name);
    if (d->n_bindings != p->n_bindings)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u bindings given, kernel '%s' has %u", name, d->n_bindings,
                          p->kernel, p->n_bindings);
    if (p->push_size && !d->push) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "%s: push constants missing", name);
    for (int i = 0; i < 3; i++)
        if (d->groups[i] > dev->f.max_workgroup_count[i])
            return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "%s: %u workgroups in dimension %d exceed the device limit %u", name,
                              d->groups[i], i, dev->f.max_workgroup_count[i]);
    if (!d->groups[0] || !d->groups[1] || !d->groups[2]) return VKLLM_OK;

    VkDescriptorBufferInfo infos[VKLLM_MAX_BINDINGS];
    VkWriteDescriptorSet writes[VKLLM_MAX_BINDINGS];
    for (uint32_t i = 0; i < d->n_bindings; i++) {
        const vkllm_binding *b = &d->bindings[i];
        if (!b->buf.block) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "%s: binding %u has no buffer", name, i);
        if (b->offset > b->buf.size)
            return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE, "%s: binding %u offset %llu beyond its %llu-byte buffer", name, i,
                              (unsigned long long)b->offset, (unsigned long long)b->buf.size);
        uint64_t size = b->size ? b->size : b->buf.size - b->offset;
        if (size > b->buf.size - b->offset)
            return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_RANGE, "%s: binding %u range [%llu, +%llu) exceeds its %llu-byte buffer",
                              name, i, (unsigned long long)b->offset, (unsigned long long)size, (unsigned long long)b->buf.size);
        uint64_t off = b->buf.offset + b->offset;
        if (off % dev->f.min_storage_buffer_offset_alignment)
            return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "%s: binding %u offset %llu is not a multiple of %llu", name, i,
                              (unsigned long long)b->offset, (unsigned long long)dev->f.min_storage_buffer_offset_alignment);
        if (size > dev->f.max_storage_buffer_range)
            return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE,
                              "%s: binding %u is %llu bytes, over the device's maxStorageBufferRange (%llu bytes)", name, i,
                              (unsigned long long)size, (unsigned long long)dev->f.max_storage_buffer_range);
        infos[i] = (VkDescriptorBufferInfo){ b->buf.block->buffer, off, size };
        writes[i] = (VkWriteDescriptorSet){ .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstBinding = i,
                                            .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                            .pBufferInfo = &infos[i] };
    }

    /* A barrier is needed if this dispatch reads or writes what a dispatch since the last barrier
     * wrote, or writes what one read. */
    access_range ranges[VKLLM_MAX_BINDINGS];
    for (uint32_t i = 0; i < d->n_bindings; i++)
        ranges[i] = (access_range){ infos[i].buffer, infos[i].offset, infos[i].offset + infos[i].range,
                                    (d->bindings[i].access & VKLLM_WRITE) != 0 };
    vkllm_status ts = track(c, ranges, d->n_bindings, name);
    if (ts) return ts;

    VkDescriptorSet set;
    vkllm_status s = alloc_set(c, p->set_layout, &set);
    if (s) return s;
    for (uint32_t i = 0; i < d->n_bindings; i++) writes[i].dstSet = set;
    vkUpdateDescriptorSets(dev->device, d->n_bindings, writes, 0, NULL);

    if (c->n_recs == c->cap_recs) {
        uint32_t nc = c->cap_recs ? c->cap_recs * 2 : 64;
        dispatch_rec *nr = realloc(c->recs, nc * sizeof *nr);
        if (!nr) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory recording '%s'", name);
        c->recs = nr;
        c->cap_recs = nc;
    }
    size_t nl = strlen(name) + 1;
    char *copy = malloc(nl);
    if (!copy) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory recording '%s'", name);
    memcpy(copy, name, nl);
    uint32_t idx = c->n_recs++;
    c->recs[idx] = (dispatch_rec){ copy, d->bytes, d->flops, p->kernel, 0, -1, -1, idx > 0 && c->n_barriers == c->barriers_at_prev,
                                   0, 0, 0, 0 };
    c->barriers_at_prev = c->n_barriers;

    /* Sampling group: a new one at each new layer ("L<n>." prefix; names without one stay in the
     * current group, so the attention merge and the output head join their layer, and what comes
     * before the first layer joins that layer) or when full. */
    int layer = -1;
    if (name[0] == 'L' && name[1] >= '0' && name[1] <= '9') {
        const char *q = name + 1;
        int v = 0;
        while (*q >= '0' && *q <= '9' && v < 1000000) v = v * 10 + (*q++ - '0');
        if (*q == '.') layer = v;
    }
    if (idx > 0 && ((layer >= 0 && c->group_layer >= 0 && layer != c->group_layer) || c->group_size >= GROUP_MAX)) {
        c->group++;
        c->group_size = 0;
    }
    if (layer >= 0) c->group_layer = layer;
    c->group_size++;
    c->recs[idx].replay = c->group % c->n_cmd;

    for (uint32_t r = 0; r < c->n_cmd; r++) {
        VkCommandBuffer cb = c->cmd[r];
        if (dev->cmd_begin_label) {
            VkDebugUtilsLabelEXT label = { .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_LABEL_EXT, .pLabelName = copy };
            dev->cmd_begin_label(cb, &label);
        }
        int stamped = c->kind && r == c->recs[idx].replay;
        if (stamped) {
            if (c->kind == VKLLM_STAMPS_END && c->last_end[r] >= 0)
                c->recs[idx].qs = c->last_end[r]; /* one stamp per dispatch: this one starts where the last ended */
            else if ((s = stamp(c, r,
                                c->kind == VKLLM_STAMPS_COMPUTE ? VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT
                                : c->kind == VKLLM_STAMPS_TOP   ? VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT
                                                                : VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT,
                                &c->recs[idx].qs)))
                return s;
        }
        vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
        vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
        if (p->push_size) vkCmdPushConstants(cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p->push_size, d->push);
        vkCmdDispatch(cb, d->groups[0], d->groups[1], d->groups[2]);
        c->last_end[r] = -1;
        if (stamped) {
            if ((s = stamp(c, r, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, &c->recs[idx].qe))) return s;
            c->last_end[r] = c->recs[idx].qe;
        }
        if (dev->cmd_end_label) dev->cmd_end_label(cb);
    }
    return VKLLM_OK;
}

vkllm_status vkllm_chain_end(vkllm_chain *c)
{
    if (!c || !c->recording) return vkllm_fail(c ? c->dev : NULL, VKLLM_ERROR_INVALID_ARGUMENT, "chain is not recording");
    /* Make the chain's writes visible to whatever comes next in queue order (transfers, host reads). */
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                            VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_HOST_READ_BIT };
    for (uint32_t r = 0; r < c->n_cmd; r++) {
        vkllm_status s;
        if (c->span_stamps && (s = stamp(c, r, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, &c->q_final[r]))) return s;
        vkCmdPipelineBarrier(c->cmd[r], VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0,
                             1, &mb, 0, NULL, 0, NULL);
        if (c->label[0] && c->dev->cmd_end_label) c->dev->cmd_end_label(c->cmd[r]);
        VK_CHECK(c->dev, vkEndCommandBuffer(c->cmd[r]));
    }
    c->recording = 0;
    /* Replays beyond the number of groups would stamp nothing: rotate only through those that do. */
    c->n_active = c->n_recs && c->group + 1 < c->n_cmd ? c->group + 1 : c->n_cmd;
    c->recorded = 1;
    return VKLLM_OK;
}

/* Collects the timestamps of the run that just finished (its replay's queries) into the dispatch
 * records: each dispatch keeps the times of the latest run that stamped it. */
static vkllm_status collect(vkllm_chain *c)
{
    c->runs++;
    if (!c->kind) return VKLLM_OK;
    vkllm_device *dev = c->dev;
    const uint32_t r = c->cur_replay, nq = c->n_q[r];
    if (nq > c->cap_ts) {
        uint64_t *nt = realloc(c->ts, (size_t)nq * sizeof *nt);
        if (!nt) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory reading timestamps");
        c->ts = nt;
        c->cap_ts = nq;
    }
    uint64_t *ts = c->ts;
    for (uint32_t q = 0; q < nq; q += QUERIES_PER_POOL) {
        uint32_t cnt = nq - q < QUERIES_PER_POOL ? nq - q : QUERIES_PER_POOL;
        VK_CHECK(dev, vkGetQueryPoolResults(dev->device, c->qpools[q / QUERIES_PER_POOL], 0, cnt, cnt * sizeof(uint64_t), ts + q,
                                            sizeof(uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
    }
    const uint64_t mask = dev->f.timestamp_valid_bits >= 64 ? ~0ull : ((1ull << dev->f.timestamp_valid_bits) - 1);
    const double period = dev->f.timestamp_period_ns;
    int have_t0 = c->span_stamps && nq;
    uint64_t t0 = have_t0 ? ts[0] & mask : 0, tend = t0;
    for (uint32_t i = 0; i < c->n_recs; i++) {
        dispatch_rec *d = &c->recs[i];
        if (d->replay != r || d->qs < 0 || d->qe < 0) continue;
        uint64_t a = ts[d->qs] & mask, b = ts[d->qe] & mask;
        if (!have_t0) { /* every dispatch stamped, no start stamp of the buffer: time from the first */
            t0 = tend = a;
            have_t0 = 1;
        }
        d->start_ns = (double)((a - t0) & mask) * period;
        d->duration_ns = (double)((b - a) & mask) * period;
        d->device_ns = (double)a * period;
        d->run = c->runs;
        if (((b - t0) & mask) > ((tend - t0) & mask)) tend = b;
    }
    if (c->span_stamps && c->q_final[r] >= 0) tend = ts[c->q_final[r]] & mask;
    c->gpu_ns = (double)((tend - t0) & mask) * period;
    return VKLLM_OK;
}

vkllm_status vkllm_chain_submit(vkllm_chain *c)
{
    if (!c || !c->recorded) return vkllm_fail(c ? c->dev : NULL, VKLLM_ERROR_INVALID_ARGUMENT, "chain has nothing recorded");
    vkllm_device *dev = c->dev;
    if (c->submitted) {
        VK_CHECK(dev, vkWaitForFences(dev->device, 1, &c->fence, VK_TRUE, UINT64_MAX));
        c->submitted = 0;
        vkllm_status s = collect(c); /* before this submit writes the shared queries again */
        if (s) return s;
    }
    VK_CHECK(dev, vkResetFences(dev->device, 1, &c->fence));
    const uint32_t r = c->next_replay;
    VkSubmitInfo si = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &c->cmd[r] };
    VkResult res = vkllm_fault_submit(dev); /* VK_SUCCESS unless a test armed a fault */
    if (res == VK_SUCCESS) {
        pthread_mutex_lock(&dev->queue_lock); /* the queue is shared by every chain and transfer of the device */
        res = vkQueueSubmit(dev->queue, 1, &si, c->fence);
        pthread_mutex_unlock(&dev->queue_lock);
    }
    if (res != VK_SUCCESS)
        return vkllm_fail(dev, vkllm_vk_status(res),
                          "vkQueueSubmit of a chain of %u dispatches (first '%s', last '%s') failed with %s",
                          c->n_recs, c->n_recs ? c->recs[0].name : "-", c->n_recs ? c->recs[c->n_recs - 1].name : "-",
                          vkllm_vk_result_name(res));
    c->cur_replay = r;
    c->next_replay = (r + 1) % c->n_active;
    c->submitted = 1;
    return VKLLM_OK;
}

vkllm_status vkllm_chain_wait(vkllm_chain *c, uint64_t timeout_ns)
{
    if (!c) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (!c->submitted) return VKLLM_OK;
    vkllm_device *dev = c->dev;
    VkResult r = vkWaitForFences(dev->device, 1, &c->fence, VK_TRUE, timeout_ns);
    if (r == VK_TIMEOUT) return vkllm_fail(dev, VKLLM_ERROR_TIMEOUT, "chain of %u dispatches did not finish in time", c->n_recs);
    if (r != VK_SUCCESS)
        return vkllm_fail(dev, vkllm_vk_status(r), "waiting for a chain of %u dispatches (first '%s') failed with %s", c->n_recs,
                          c->n_recs ? c->recs[0].name : "-", vkllm_vk_result_name(r));
    c->submitted = 0;
    return collect(c);
}

vkllm_status vkllm_chain_run(vkllm_chain *c)
{
    vkllm_status s = vkllm_chain_submit(c);
    return s ? s : vkllm_chain_wait(c, UINT64_MAX);
}

uint32_t vkllm_chain_dispatch_count(const vkllm_chain *c) { return c ? c->n_recs : 0; }
uint32_t vkllm_chain_barrier_count(const vkllm_chain *c) { return c ? c->n_barriers : 0; }
uint32_t vkllm_chain_replays(const vkllm_chain *c) { return c ? c->n_active : 0; }

vkllm_status vkllm_chain_timings(vkllm_chain *c, const vkllm_timing **out, uint32_t *n)
{
    if (!c || !out || !n) return VKLLM_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    *n = 0;
    vkllm_device *dev = c->dev;
    if (!c->kind) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "chain was created without timestamps");
    if (c->submitted || !c->recorded || !c->runs)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "no finished run to time (wait first)");
    free(c->timings);
    c->timings = calloc(c->n_recs ? c->n_recs : 1, sizeof *c->timings);
    if (!c->timings) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory reading timestamps");
    for (uint32_t i = 0; i < c->n_recs; i++) {
        const dispatch_rec *d = &c->recs[i];
        c->timings[i] = (vkllm_timing){ d->name, d->start_ns, d->duration_ns, d->bytes, d->flops, d->kernel, d->device_ns,
                                        d->run && d->run == c->runs, d->run > 0, d->overlap };
    }
    *out = c->timings;
    *n = c->n_recs;
    return VKLLM_OK;
}

double vkllm_chain_gpu_time_ns(const vkllm_chain *c) { return c ? c->gpu_ns : 0; }

vkllm_device *vkllm_chain_device(vkllm_chain *chain) { return chain ? chain->dev : NULL; }
