/* Small helpers shared by the ops files: a binding from a view, and a 1D workgroup count as a 2D
 * grid within the device's limits. */
#ifndef VKLLM_OPS_INTERNAL_H
#define VKLLM_OPS_INTERNAL_H
#include "internal.h"
#include "vkllm/ops.h"

static inline vkllm_binding bind(vkllm_view v, uint64_t size, vkllm_access acc)
{
    vkllm_binding b = { v.buf, v.offset, size, acc };
    return b;
}

static inline void grid_2d(const vkllm_device *dev, uint64_t groups, uint32_t out[3])
{
    uint32_t maxx = dev->f.max_workgroup_count[0];
    if (groups <= maxx) {
        out[0] = (uint32_t)groups;
        out[1] = 1;
    } else {
        out[0] = maxx;
        out[1] = (uint32_t)((groups + maxx - 1) / maxx);
    }
    out[2] = 1;
}
#endif
