#version 450
// Streaming-read ceiling: every thread reads uvec4s in a grid-stride loop and folds them into one
// word, written only if it could never match (so the reads cannot be optimised away and almost
// nothing is written). Used by the benchmarks to measure the device's read bandwidth in the same run
// as the kernel they judge. Per call: reads 16 * n_vec4 bytes.
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) readonly buffer Src { uvec4 src[]; };
layout(std430, binding = 1) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform Params { uint n_vec4; uint magic; } p;

void main()
{
    const uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uvec4 acc = uvec4(0);
    for (uint i = gl_GlobalInvocationID.x; i < p.n_vec4; i += stride) acc ^= src[i];
    const uint v = acc.x ^ acc.y ^ acc.z ^ acc.w;
    if (v == p.magic) dst[gl_GlobalInvocationID.x & 1023u] = v;
}
