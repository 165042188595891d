/* Fault injection (vkllm/fault.h): counters on the device that the pool and the chain consult. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vkllm/fault.h"

vkllm_status vkllm_fault_set(vkllm_device *dev, const char *spec)
{
    if (!dev) return VKLLM_ERROR_INVALID_ARGUMENT;
    vkllm_faults f = { 0 };
    const char *p = spec ? spec : "";
    while (*p) {
        size_t len = strcspn(p, ",:");
        uint64_t n = 1;
        const char *q = p + len;
        if (*q == ':') {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(q + 1, &end, 10);
            if (end == q + 1 || errno || v == 0 || q[1] == '-' || (*end && *end != ','))
                return vkllm_fail(dev, VKLLM_ERROR_CONFIG, "fault spec '%s': the count after ':' must be an integer >= 1", spec);
            n = v;
            q = end;
        }
        if (len == 5 && !strncmp(p, "alloc", len)) f.alloc_at = n;
        else if (len == 18 && !strncmp(p, "submit_device_lost", len)) f.submit_at = n, f.submit_result = VK_ERROR_DEVICE_LOST;
        else if (len == 10 && !strncmp(p, "submit_oom", len)) f.submit_at = n, f.submit_result = VK_ERROR_OUT_OF_DEVICE_MEMORY;
        else
            return vkllm_fail(dev, VKLLM_ERROR_CONFIG,
                              "fault spec '%s': unknown fault '%.*s' (known: alloc, submit_device_lost, submit_oom; "
                              "each optionally :N)", spec, (int)len, p);
        p = *q == ',' ? q + 1 : q;
    }
    dev->fault = f;
    return VKLLM_OK;
}

void vkllm_fault_counts(const vkllm_device *dev, uint64_t *allocs, uint64_t *submits)
{
    if (allocs) *allocs = dev ? dev->fault.allocs : 0;
    if (submits) *submits = dev ? dev->fault.submits : 0;
}

int vkllm_fault_alloc(vkllm_device *dev)
{
    uint64_t n = ++dev->fault.allocs;
    return dev->fault.alloc_at && n == dev->fault.alloc_at;
}

VkResult vkllm_fault_submit(vkllm_device *dev)
{
    uint64_t n = ++dev->fault.submits;
    return dev->fault.submit_at && n == dev->fault.submit_at ? dev->fault.submit_result : VK_SUCCESS;
}
