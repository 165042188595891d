/* Fault injection, for tests and for trying the error paths by hand: make the Nth device-pool
 * allocation fail, or the Nth command-chain submit return VK_ERROR_DEVICE_LOST or
 * VK_ERROR_OUT_OF_DEVICE_MEMORY, without touching the driver. Off unless asked for; costs one
 * counter increment per allocation and per submit.
 *
 * The same spec is read from $VKLLM_FAULT at device creation (a bad spec fails the creation), so
 * any tool can be driven into the failure, e.g. VKLLM_FAULT=submit_device_lost:3 vkllm run ... */
#ifndef VKLLM_FAULT_H
#define VKLLM_FAULT_H

#include <stdint.h>

#include "vkllm/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Arms faults from a spec: comma-separated items, each "KIND" or "KIND:N" (N >= 1, default 1, the
 * Nth event counted from this call):
 *   alloc              the Nth vkllm_buffer_alloc fails with VKLLM_ERROR_OUT_OF_DEVICE_MEMORY
 *   submit_device_lost the Nth vkllm_chain_submit fails with VK_ERROR_DEVICE_LOST
 *   submit_oom         the Nth vkllm_chain_submit fails with VK_ERROR_OUT_OF_DEVICE_MEMORY
 * Each fault fires once. NULL or "" disarms everything. Returns VKLLM_ERROR_CONFIG (message on the
 * device) for a spec it does not understand, leaving the faults as they were. */
vkllm_status vkllm_fault_set(vkllm_device *dev, const char *spec);

/* Pool allocations and chain submits counted since the last vkllm_fault_set (or device creation). */
void vkllm_fault_counts(const vkllm_device *dev, uint64_t *allocs, uint64_t *submits);

#ifdef __cplusplus
}
#endif
#endif
