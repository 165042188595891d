/* Compute pipelines made from the SPIR-V embedded in the library, by kernel name, with
 * specialization constants; created once per (kernel, constants) and kept by the device.
 * The device's VkPipelineCache is saved under $XDG_CACHE_HOME/vkllm/ and checked against the
 * device UUID and driver version when loaded. */
#ifndef VKLLM_PIPELINE_H
#define VKLLM_PIPELINE_H

#include <stdint.h>

#include "vkllm/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vkllm_pipeline vkllm_pipeline;

#define VKLLM_MAX_SPEC 16
#define VKLLM_MAX_BINDINGS 8

typedef struct vkllm_pipeline_desc {
    const char *kernel;        /* name of the embedded module, e.g. "rmsnorm" */
    uint32_t n_bindings;       /* storage buffers at set 0, bindings 0..n-1 */
    uint32_t push_size;        /* bytes of push constants (multiple of 4, <= 128) */
    uint32_t n_spec;
    uint32_t spec[VKLLM_MAX_SPEC]; /* constant_id i = spec[i] (32-bit values; floats by bits) */
    uint32_t required_subgroup_size; /* 0 = driver's choice */
} vkllm_pipeline_desc;

/* Returns the pipeline for desc, creating it on first use (the device owns it). Fails with
 * VKLLM_ERROR_UNSUPPORTED if the kernel is not in this build (the message says which glslang
 * feature it needed). */
vkllm_status vkllm_pipeline_get(vkllm_device *dev, const vkllm_pipeline_desc *desc, vkllm_pipeline **out);
/* 1 if the kernel is in this build's registry. */
int vkllm_kernel_available(const char *kernel);
/* Names of the kernels in this build, one per line, into buf; and those skipped with the reason. */
void vkllm_kernels_describe(char *buf, size_t len);
/* Number of pipelines the device holds. */
uint32_t vkllm_pipeline_count(const vkllm_device *dev);
/* Writes the pipeline cache file now (also done by vkllm_device_destroy). */
vkllm_status vkllm_pipeline_cache_save(vkllm_device *dev);

#ifdef __cplusplus
}
#endif
#endif
