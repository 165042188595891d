#version 450
// 8-bit activations for the decode mat-vec, once per layer input: xq = Q8(P(x[v])) for v < n_vec.
// P (PRO, constant 1): 0 none, 1 RMSNorm x[i] * g[i] / sqrt(mean(x^2) + eps), 2 SwiGLU
// silu(x[i]) * x[up_offset + i]; Q8 the per-32 int8 quantization of vkllm_ref_quantize_q8_act. Both
// come from common/q8act.glsl, the same code as matvec_q8.comp's per-workgroup prologue, so its XG=1
// variant reading this buffer multiplies the same codes.
//
// Layout: x float32, vector v at v * x_stride elements (x_stride, up_offset multiples of 4), g[n_in].
// Output, one buffer view (n = n_in, NB = n / 32): codes [n_vec][n] int8 (4 per uint, element 4k in
// the low byte of word k), then (d, d * sum(q)) [n_vec][NB] vec2 at byte n_vec * n, then the two
// 16-element sums of q of each block as int16 (low half first) [n_vec][NB] int at byte
// n_vec * (n + 8 NB). Total vkllm_q8_act_bytes = n_vec * (n + 12 NB).
// Workgroup: WGS lanes (constant 0, a multiple of 8), one vec4 each: workgroup (i, v) quantizes
// elements [4 WGS i, 4 WGS (i + 1)) of vector v, 8 lanes per block. RMSNorm: every workgroup of a
// vector sums the squares of the whole vector itself (n floats from L2; no second dispatch, no atomics).
//
// Per call: reads 4 n n_vec bytes of x (x2 for SwiGLU; RMSNorm also the gain, and each workgroup
// re-reads x for the sum of squares, from L2), writes n_vec * (n + 12 NB) bytes; FLOPs ~ 8 n n_vec.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint PRO = 0; // 0 none, 1 rmsnorm, 2 swiglu

layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer G4 { vec4 g4[]; };
// one view, three parts (aliased declarations of one binding)
layout(std430, binding = 2) writeonly buffer QW { uint qw[]; };
layout(std430, binding = 2) writeonly buffer QD { vec2 qd[]; };
layout(std430, binding = 2) writeonly buffer QH { int qh[]; };

layout(push_constant) uniform Params {
    uint n_in;
    uint n_vec;
    uint x_stride;  // elements
    uint up_offset; // SwiGLU: elements from gate to up
    float eps;
} p;

#include "common/reduce.glsl"
#include "common/q8act.glsl"

void main()
{
    // lanes numbered by subgroup, so each group of 8 (one block) is inside one subgroup
    const uint tid = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
    const uint wgs = gl_WorkGroupSize.x;
    const uint v = gl_WorkGroupID.y, n4 = p.n_in / 4u, nb = p.n_in / 32u;
    const uint xb = (v * p.x_stride) >> 2;
    const uint e = gl_WorkGroupID.x * wgs + tid; // this lane's vec4
    float scale = 1.0;
    if (PRO == 1u) { // uniform: every lane takes part in the workgroup sum
        float ss = 0.0;
        for (uint i = tid; i < n4; i += wgs) {
            const vec4 a = x4[xb + i];
            ss += dot(a, a);
        }
        scale = q8_rms_scale(workgroup_sum(ss), p.n_in, p.eps);
    }
    if (e >= n4) return; // whole blocks: n4 is a multiple of 8
    vec4 a = x4[xb + e];
    if (PRO == 1u) a = q8_rms(a, scale, g4[e]);
    if (PRO == 2u) a = q8_swiglu(a, x4[xb + (p.up_offset >> 2) + e]);
    const q8_quad q = q8_quant4(a);
    qw[v * n4 + e] = q.word;
    if ((e & 7u) == 0u) {
        const uint blk = v * nb + (e >> 3);
        qd[p.n_vec * (p.n_in / 8u) + blk] = q8_ds(q);
        qh[p.n_vec * n4 + p.n_vec * nb * 2u + blk] = q8_h(q);
    }
}
