#version 450
// Rotary position embedding, in both layouts:
//   NEOX = 1 (rotate-half, as Phi-3 uses): pairs (i, i + n_rot/2) of each head
//   NEOX = 0 (interleaved):                pairs (2i, 2i + 1)
// For pair i (0 <= i < n_rot/2) of the head of token t:
//   theta = pos[t] * inv_freq[i];  (a, b) -> (a cos - b sin, a sin + b cos) * attn_factor
// Elements from n_rot to head_dim are copied unchanged.
//
// inv_freq comes from the host (vkllm_rope_inv_freq: base^(-2i/n_rot) * freq_scale / factor_i, so
// LongRoPE factors and linear scaling live there) as (hi, lo) float pairs whose sum is the double
// value. With FP64 = 1 the angle is formed and reduced mod 2*pi in double, so a position of 10^5
// still gives float32-accurate cos/sin; with FP64 = 0 (devices without shaderFloat64) it is formed in
// float, accurate to about pos * 2^-24 radians.
//
// Layout: x and y are [n_tok][n_head][head_dim] float32 with token strides x_tok / y_tok and head
// strides x_head / y_head (elements), so Q and K can be rotated inside a fused QKV row; y may alias x.
// One thread per pair; a 2D grid when there are more than 65535 workgroups.
// Per call: reads and writes 4 * n_tok * n_head * head_dim bytes each, plus 4 bytes of position per
// token and 8 * n_rot/2 of table; about 6 FLOPs per pair plus one sin/cos.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#ifndef NEOX
#define NEOX 1
#endif

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(std430, binding = 2) readonly buffer Pos { int pos[]; };
layout(std430, binding = 3) readonly buffer Freq { vec2 inv_freq[]; };

layout(push_constant) uniform Params {
    uint n_tok, n_head, head_dim, n_rot;
    uint x_tok, x_head, y_tok, y_head;
    float attn_factor;
    uint neox_override; // unused, keeps the block 16-byte sized
} p;

#include "common/rope_angle.glsl"

void main()
{
    const uint half_dim = p.head_dim / 2;
    const uint idx = gl_GlobalInvocationID.y * (gl_NumWorkGroups.x * gl_WorkGroupSize.x) + gl_GlobalInvocationID.x;
    if (idx >= p.n_tok * p.n_head * half_dim) return;
    const uint i = idx % half_dim;
    const uint h = (idx / half_dim) % p.n_head;
    const uint t = idx / (half_dim * p.n_head);
    const uint xb = t * p.x_tok + h * p.x_head;
    const uint yb = t * p.y_tok + h * p.y_head;
    const uint half_rot = p.n_rot / 2;

    if (i >= half_rot) {
        // past the rotated part: pair slots map to element 2i, 2i+1 of the tail (both layouts)
        const uint e = half_rot * 2 + (i - half_rot) * 2;
        y[yb + e] = x[xb + e];
        y[yb + e + 1] = x[xb + e + 1];
        return;
    }
#if NEOX
    const uint ia = i, ib = i + half_rot;
#else
    const uint ia = 2 * i, ib = 2 * i + 1;
#endif
    const vec2 cs = rope_cs(pos[t], inv_freq[i]);
    const float c = cs.x * p.attn_factor, s = cs.y * p.attn_factor;
    const float a = x[xb + ia], b = x[xb + ib];
    y[yb + ia] = a * c - b * s;
    y[yb + ib] = a * s + b * c;
}
