/* Runtime internals shared by the files of runtime/: object layouts and the one VkResult check. */
#ifndef VKLLM_RUNTIME_INTERNAL_H
#define VKLLM_RUNTIME_INTERNAL_H

#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "vk_compat.h"
#include "vkllm/chain.h"
#include "vkllm/device.h"
#include "vkllm/pipeline.h"
#include "vkllm/pool.h"

/* Armed faults and event counters (fault.c, vkllm/fault.h); all zero = off. */
typedef struct vkllm_faults {
    uint64_t alloc_at, allocs;      /* fail the alloc_at-th vkllm_buffer_alloc (1-based) */
    uint64_t submit_at, submits;    /* make the submit_at-th chain submit return submit_result */
    VkResult submit_result;
} vkllm_faults;

/* A free range in a block, in a sorted singly-linked list. */
typedef struct free_range {
    uint64_t offset, size;
    struct free_range *next;
} free_range;

struct vkllm_block {
    VkDeviceMemory memory;
    VkBuffer buffer;          /* one buffer over the whole block; bindings are ranges of it */
    uint64_t size;
    void *mapped;             /* host-visible blocks only */
    vkllm_mem_kind kind;
    free_range *free_list;
    uint64_t used;
    uint32_t live;
    struct vkllm_block *next;
};

typedef struct pipeline_entry {
    vkllm_pipeline_desc desc;
    char kernel[64];
    struct vkllm_pipeline *p;
    struct pipeline_entry *next;
} pipeline_entry;

struct vkllm_pipeline {
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    uint32_t n_bindings, push_size;
    char kernel[64];
};

struct vkllm_device {
    VkInstance instance;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkDebugUtilsMessengerEXT messenger;
    int validate;
    _Atomic uint64_t validation_errors; /* the layer may call back from any thread making a Vulkan call */
    int quiet_validation; /* tests that expect errors set it to keep the log short */
    vkllm_features f;
    uint32_t device_local_heap;
    int memory_model, memory_model_device_scope; /* VkPhysicalDeviceVulkan12Features */

    /* memory */
    uint32_t mem_type[2];     /* per vkllm_mem_kind */
    uint64_t block_size;
    uint64_t pool_limit;      /* per kind, 0 = none */
    vkllm_block *blocks[2];
    uint64_t reserved[2], used[2], peak[2], live[2];
    vkllm_faults fault;

    /* one-shot transfers */
    VkCommandPool cmd_pool;
    VkCommandBuffer xfer_cmd;
    VkFence xfer_fence;
    vkllm_buffer staging;     /* grown on demand */

    /* pipelines */
    VkPipelineCache pcache;
    vkllm_cache_state pcache_state;
    char pcache_path[1024];
    size_t pcache_loaded_size;
    pipeline_entry *pipelines;
    uint32_t n_pipelines;

    PFN_vkSetDebugUtilsObjectNameEXT set_object_name;
    PFN_vkCmdBeginDebugUtilsLabelEXT cmd_begin_label;
    PFN_vkCmdEndDebugUtilsLabelEXT cmd_end_label;
    int calibrated_timestamps; /* VK_EXT_calibrated_timestamps enabled (device + CLOCK_MONOTONIC) */
    int no_calibrated_timestamps; /* VKLLM_DISABLE=calibrated */
    int pipeline_stats; /* VKLLM_PIPELINE_STATS: VK_KHR_pipeline_executable_properties enabled, statistics on stderr */
    PFN_vkGetCalibratedTimestampsEXT get_calibrated_timestamps;

    char err[1024];           /* last message set on this device by any thread (err_lock) */

    /* Threads (one session per thread, sessions sharing a model and this device): what they share
     * is guarded here; everything else belongs to one object (chain, session) and so to one thread.
     * Lock order: xfer_lock before pool_lock and queue_lock; err_lock innermost; never two others. */
    pthread_mutex_t queue_lock; /* vkQueueSubmit / vkQueueWaitIdle: the queue is externally synchronized */
    pthread_mutex_t xfer_lock;  /* one transfer at a time: cmd_pool, xfer_cmd, xfer_fence, staging */
    pthread_mutex_t pool_lock;  /* blocks, free lists and the counters of pool.c */
    pthread_mutex_t pipe_lock;  /* the pipeline list (lookup and creation) and the cache file */
    pthread_mutex_t err_lock;   /* err */
};

/* Records a formatted message on the device (and as the calling thread's last message, which
 * vkllm_device_error() returns to that thread) and returns status s. */
vkllm_status vkllm_fail(vkllm_device *dev, vkllm_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
const char *vkllm_vk_result_name(VkResult r);
vkllm_status vkllm_vk_status(VkResult r);

/* Every VkResult goes through here: on failure it records "file:line: call failed with VK_ERROR_X"
 * on the device and returns from the enclosing function with the mapped status. */
#define VK_CHECK(dev, call)                                                                          \
    do {                                                                                             \
        VkResult vk_check_r_ = (call);                                                               \
        if (vk_check_r_ != VK_SUCCESS)                                                               \
            return vkllm_fail((dev), vkllm_vk_status(vk_check_r_), "%s:%d: %s failed with %s",       \
                              __FILE__, __LINE__, #call, vkllm_vk_result_name(vk_check_r_));         \
    } while (0)

/* pool.c */
void vkllm_pool_destroy_all(vkllm_device *dev);
/* fault.c: count one allocation / submit; nonzero (or the VkResult to fake) when an armed fault fires */
int vkllm_fault_alloc(vkllm_device *dev);
VkResult vkllm_fault_submit(vkllm_device *dev);
/* transfers: callers hold xfer_lock from begin to the end of their use of xfer_cmd/staging */
vkllm_status vkllm_xfer_begin(vkllm_device *dev);
vkllm_status vkllm_xfer_submit_wait(vkllm_device *dev);
/* pipeline.c */
vkllm_status vkllm_pipeline_cache_open(vkllm_device *dev, int enabled);
void vkllm_pipelines_destroy_all(vkllm_device *dev);
/* chain.c: the device behind a chain */
vkllm_device *vkllm_chain_device(vkllm_chain *chain);
/* debug names (no-op without VK_EXT_debug_utils) */
void vkllm_name_object(vkllm_device *dev, VkObjectType type, uint64_t handle, const char *name);

#endif
