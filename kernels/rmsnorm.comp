#version 450
// RMSNorm with the weight multiply fused:  y[r, i] = x[r, i] / sqrt(mean_i(x[r, :]^2) + eps) * w[i]
//
// Layout: x, y float32 row-major with row strides (elements) x_stride / y_stride; w float32 [n].
// One workgroup per row (rows beyond the grid are taken in a grid-stride loop); WG threads
// (specialization constant 0) sum squares with vec4 loads when VEC4 (constant 1) is set (n, strides
// and offsets multiples of 4), then reduce through workgroup_sum().
// Per call: reads 4*n*rows (x, twice from the cache's point of view but once from memory) + 4*n (w),
// writes 4*n*rows bytes; about 4*n*rows FLOPs. The benchmark divides 8*n*rows + 4*n bytes by time.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common/reduce.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint VEC4 = 0;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 1) readonly buffer W4 { vec4 w4[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };

layout(push_constant) uniform Params {
    uint n;        // row length
    uint rows;
    uint x_stride; // elements between rows of x
    uint y_stride;
    float eps;
} p;

// Up to CACHE vec4 per thread stay in registers between the sum-of-squares pass and the scaling
// pass, so a row is read from memory once and all of a thread's loads are in flight together
// (5 per thread for n = 5120 with 256 threads); longer rows re-read the rest.
#define CACHE 8

void main()
{
    const uint WG = gl_WorkGroupSize.x;
    const uint tid = gl_LocalInvocationID.x;
    const uint n_groups = gl_NumWorkGroups.x * gl_NumWorkGroups.y;
    for (uint row = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; row < p.rows; row += n_groups) {
        float ss = 0.0;
        if (VEC4 != 0) {
            const uint xb = row * (p.x_stride / 4), yb = row * (p.y_stride / 4), n4 = p.n / 4;
            vec4 cache[CACHE];
            [[unroll]] for (uint k = 0; k < CACHE; k++) {
                const uint i = tid + k * WG;
                cache[k] = i < n4 ? x4[xb + i] : vec4(0.0);
            }
            [[unroll]] for (uint k = 0; k < CACHE; k++) ss += dot(cache[k], cache[k]);
            for (uint i = tid + CACHE * WG; i < n4; i += WG) {
                const vec4 v = x4[xb + i];
                ss += dot(v, v);
            }
            const float scale = inversesqrt(workgroup_sum(ss) / float(p.n) + p.eps);
            [[unroll]] for (uint k = 0; k < CACHE; k++) {
                const uint i = tid + k * WG;
                if (i < n4) y4[yb + i] = cache[k] * scale * w4[i];
            }
            for (uint i = tid + CACHE * WG; i < n4; i += WG) y4[yb + i] = x4[xb + i] * scale * w4[i];
        } else {
            const uint xb = row * p.x_stride, yb = row * p.y_stride;
            for (uint i = tid; i < p.n; i += WG) {
                const float v = x[xb + i];
                ss += v * v;
            }
            const float scale = inversesqrt(workgroup_sum(ss) / float(p.n) + p.eps);
            for (uint i = tid; i < p.n; i += WG) y[yb + i] = x[xb + i] * scale * w[i];
        }
    }
}
