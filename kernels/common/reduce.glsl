// Workgroup-wide sum: subgroup reduction, then one partial per subgroup in shared memory, then the
// first subgroup sums the partials. Correct for any subgroup size (8 on lavapipe, 32 on NVIDIA,
// 32/64 on AMD) and any workgroup size up to 1024 with subgroups of at least 4 lanes.
#ifndef VKLLM_REDUCE_GLSL
#define VKLLM_REDUCE_GLSL
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

shared float reduce_partial[256];

float workgroup_sum(float v)
{
    v = subgroupAdd(v);
    if (gl_NumSubgroups == 1) return v;
    if (subgroupElect()) reduce_partial[gl_SubgroupID] = v;
    barrier();
    if (gl_SubgroupID == 0) {
        float s = 0.0;
        for (uint i = gl_SubgroupInvocationID; i < gl_NumSubgroups; i += gl_SubgroupSize) s += reduce_partial[i];
        s = subgroupAdd(s);
        if (subgroupElect()) reduce_partial[0] = s;
    }
    barrier();
    float r = reduce_partial[0];
    barrier(); // the next call may overwrite reduce_partial
    return r;
}
#endif
