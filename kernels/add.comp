#version 450
// Residual add:  y[i] = a[i] + b[i]  over n float32 elements; y may be the same memory as a.
//
// Layout: flat float32 arrays (bindings start 256-byte aligned, so vec4 access is always aligned).
// Thread j < n/4 adds vec4 j; the n % 4 tail elements go to the next threads one by one. One thread
// per vec4, workgroup WG (constant 0), flattened over a 2D grid.
// No `restrict`: a and y may alias (in-place), and each element is read and written by one thread.
// Per call: reads 8 * n bytes, writes 4 * n; n FLOPs (the benchmark divides 12 * n bytes by time).
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 1) readonly buffer B4 { vec4 b4[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };

layout(push_constant) uniform Params { uint n; } p;

void main()
{
    const uint j = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    const uint n4 = p.n / 4u;
    if (j < n4) {
        y4[j] = a4[j] + b4[j];
    } else {
        const uint e = 4u * n4 + (j - n4);
        if (e < p.n) y[e] = a[e] + b[e];
    }
}
