/* The Vulkan device: instance, physical-device choice, one compute queue, and the feature record
 * from which every kernel variant is chosen (never from the device's name).
 *
 * Thread-safety: a device may be shared by threads (e.g. one session per thread): submissions to
 * its queue, its one-shot transfers, its memory pool and its pipeline list are serialized inside.
 * vkllm_device_error() returns the calling thread's last message. Destroy it last, from one thread. */
#ifndef VKLLM_DEVICE_H
#define VKLLM_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkllm_device vkllm_device;

/* One cooperative-matrix shape the device supports: M x N x K with A/B/C/Result component types
 * named like "f16", "f32", "s8", "bf16". */
typedef struct vkllm_coopmat_shape {
    uint32_t m, n, k;
    char a_type[8], b_type[8], c_type[8], r_type[8];
    int subgroup_scope; /* 1 if the scope is subgroup */
} vkllm_coopmat_shape;

#define VKLLM_MAX_COOPMAT_SHAPES 32

typedef struct vkllm_features {
    char name[256];
    char driver_name[256];
    char driver_info[256];
    uint32_t vendor_id, device_id;
    uint32_t api_version;        /* VK_MAKE_API_VERSION encoding */
    uint32_t driver_version;     /* vendor encoding; see driver_info for the readable form */
    uint8_t device_uuid[16];
    int discrete;                /* 1 for a discrete GPU, 0 for integrated/CPU/virtual */
    int cpu;                     /* 1 for a CPU implementation such as lavapipe */

    uint32_t subgroup_size;      /* default subgroup size */
    uint32_t min_subgroup_size, max_subgroup_size; /* with subgroup size control, else = subgroup_size */
    int subgroup_size_control;   /* requiredSubgroupSize can be set per pipeline */
    int subgroup_arithmetic;     /* subgroupAdd & co. in compute shaders */
    int shader_fp16;             /* shaderFloat16 arithmetic */
    int shader_fp64;             /* shaderFloat64 */
    int shader_int8;             /* shaderInt8 arithmetic */
    int shader_int16;
    int storage_8bit;            /* storageBuffer8BitAccess */
    int storage_16bit;           /* storageBuffer16BitAccess */
    int integer_dot;             /* VK_KHR_shader_integer_dot_product (core 1.3) */
    int integer_dot_4x8_accel;   /* packed 4x8-bit signed dot product is accelerated */
    int bf16;                    /* VK_KHR_shader_bfloat16: shaderBFloat16Type */
    int coopmat;                 /* VK_KHR_cooperative_matrix */
    int coopmat2;                /* VK_NV_cooperative_matrix2 (all of its features we use) */
    uint32_t n_coopmat_shapes;
    vkllm_coopmat_shape coopmat_shapes[VKLLM_MAX_COOPMAT_SHAPES];
    int memory_budget_ext;       /* VK_EXT_memory_budget */
    int debug_utils;             /* VK_EXT_debug_utils present on the instance */

    uint64_t device_local_bytes; /* size of the largest device-local heap */
    uint64_t device_local_budget;/* budget of that heap (VK_EXT_memory_budget), else its size */
    uint64_t device_local_usage; /* usage of that heap by this process, if known */
    uint64_t max_allocation_size;/* maxMemoryAllocationSize */
    uint64_t max_storage_buffer_range;
    uint64_t min_storage_buffer_offset_alignment;
    uint32_t max_push_constants;
    uint32_t max_shared_memory;  /* maxComputeSharedMemorySize, bytes */
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_count[3];
    float timestamp_period_ns;   /* ns per timestamp tick; 0 if the queue has no timestamps */
    uint32_t timestamp_valid_bits;
    /* last, so that the fields before keep their offsets for code built against older headers */
    int buffer_device_address;   /* bufferDeviceAddress enabled: pool buffers carry device addresses (the
                                    cooperative_matrix2 decode loads of the gemm reach W through them) */
} vkllm_features;

typedef struct vkllm_device_options {
    /* Device to use: NULL = $VKLLM_DEVICE if set, else the first discrete GPU, else the first device.
     * A decimal index into the enumeration order, or a case-insensitive substring of the name. */
    const char *select;
    /* -1 = follow $VKLLM_VALIDATE (1 enables), 0 = off, 1 = on. With validation the Khronos layer runs
     * with synchronization validation and every error message it prints is counted. */
    int validate;
    /* Optional features to turn off (also $VKLLM_DISABLE=coopmat,coopmat2,intdot,fp16,bf16,subgroup_size_control,
     * calibrated,bda), so tests can force the portable path on a device that has them. Comma-separated. */
    const char *disable;
    /* 0 = do not load or save the pipeline cache ($VKLLM_NO_PIPELINE_CACHE=1 does the same). */
    int pipeline_cache;
} vkllm_device_options;

/* Default options: select from the environment, validation from the environment, cache on. */
vkllm_device_options vkllm_device_options_default(void);

/* Opens a device. On failure *out is NULL and a message (what failed, what to do) is written into
 * err (if err_len > 0). Free with vkllm_device_destroy. */
vkllm_status vkllm_device_create(const vkllm_device_options *opts, vkllm_device **out, char *err, size_t err_len);
/* Waits for the device to be idle, saves the pipeline cache, frees everything. Accepts NULL. */
void vkllm_device_destroy(vkllm_device *dev);

/* The feature record (owned by the device; valid until destroy). */
const vkllm_features *vkllm_device_features(const vkllm_device *dev);
/* Re-reads the memory budget (VK_EXT_memory_budget) into the feature record. */
void vkllm_device_refresh_budget(vkllm_device *dev);
/* Reads the device's timestamp clock and the host's CLOCK_MONOTONIC at one instant
 * (VK_EXT_calibrated_timestamps), both in ns, so that GPU timestamps can be placed on the host's
 * timeline: host = t_device - *device_ns + *host_ns. *max_deviation_ns (optional): the driver's bound on
 * how far apart the two reads may be. VKLLM_ERROR_UNSUPPORTED (with a message) where the device lacks
 * the extension or either clock. */
vkllm_status vkllm_device_calibrate(vkllm_device *dev, double *device_ns, double *host_ns, double *max_deviation_ns);
/* The last error message set by any call on this device or its objects ("" if none). */
const char *vkllm_device_error(const vkllm_device *dev);
/* Number of validation-layer errors reported since the device was created (0 without validation). */
uint64_t vkllm_device_validation_errors(const vkllm_device *dev);
/* 1 if the validation layer is active on this device. */
int vkllm_device_validation_enabled(const vkllm_device *dev);

typedef enum vkllm_cache_state {
    VKLLM_CACHE_OFF = 0,       /* disabled */
    VKLLM_CACHE_EMPTY = 1,     /* no file yet */
    VKLLM_CACHE_LOADED = 2,    /* file matched this device and driver */
    VKLLM_CACHE_REJECTED = 3   /* file existed but was for another device/driver or corrupt */
} vkllm_cache_state;
/* What happened to the pipeline cache file at device creation, and its path ("" if off). */
vkllm_cache_state vkllm_device_pipeline_cache_state(const vkllm_device *dev, const char **path);

/* Lists the Vulkan devices (index, name, type) into buf, one per line. */
vkllm_status vkllm_list_devices(char *buf, size_t len);

/* Prints the feature record in a human-readable form into buf. Returns bytes that would be written. */
size_t vkllm_features_format(const vkllm_features *f, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
