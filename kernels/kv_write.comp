#version 450
// KV write: RoPE on Q and K of a fused QKV row, Q out as float32, K and V appended to the fp16 cache,
// in one dispatch (so the rotated K never makes a trip through memory as float).
//
// Input  qkv   float32 [n_tok][qkv_stride], each row Q (n_q * hd) then K (n_kv * hd) then V (n_kv * hd).
//        pos   int32 [n_tok]: cache position of each token (a device buffer, so a recorded chain is
//              replayed for every token without re-recording).
//        table (hi, lo) float pairs from vkllm_rope_table, n_rot/2 of them (same format as rope.comp).
// Output q     float32 [n_tok][n_q][hd], rotated.
//        k, v  fp16 caches [n_kv][ctx][hd] (as uint words holding 2 halves: element e of position p of
//              head h is half (h * ctx + p) * hd + e), rotated K and plain V at pos[t]. A position
//              outside [0, ctx) writes nothing to the caches (never out of bounds).
// Rotation as rope.comp (NEOX = 1: pairs (i, i + n_rot/2); NEOX = 0: pairs (2i, 2i+1)); the angle is
// formed and reduced in double with FP64 = 1, in float with FP64 = 0. Elements n_rot..hd-1 are copied.
//
// One thread per "unit" of 4 elements of one head of one token: in the rotated part, unit u holds
// the pairs 2u and 2u+1, so its K writes are two whole 32-bit words (n_rot % 4 == 0 and hd % 4 == 0
// are required by the op); units of V and of the unrotated tail copy 4 consecutive elements.
// Units per token: (n_q + 2 n_kv) * hd / 4; a 2D grid beyond 65535 workgroups.
// Per call: reads 4 * n_tok * (n_q + 2 n_kv) * hd bytes, writes 4 * n_tok * n_q * hd (Q) and
// 2 * 2 * n_tok * n_kv * hd (K and V) bytes; about 6 FLOPs per rotated pair plus one sin/cos.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#ifndef NEOX
#define NEOX 1
#endif

layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };
layout(std430, binding = 1) readonly buffer Pos { int pos[]; };
layout(std430, binding = 2) readonly buffer Freq { vec2 inv_freq[]; };
layout(std430, binding = 3) writeonly buffer Q { float q[]; };
layout(std430, binding = 4) writeonly buffer KC { uint kc[]; };
layout(std430, binding = 5) writeonly buffer VC { uint vc[]; };

layout(push_constant) uniform Params {
    uint n_tok, n_q, n_kv, hd;
    uint n_rot, qkv_stride, ctx;
    float attn_factor;
} p;

#include "common/rope_angle.glsl"

// cos/sin of pos * inv_freq[i], times attn_factor
vec2 rot(int ps, uint i)
{
    return rope_cs(ps, inv_freq[i]) * p.attn_factor;
}

void main()
{
    const uint units = p.hd / 4;
    const uint heads = p.n_q + 2 * p.n_kv;
    const uint idx = gl_GlobalInvocationID.y * (gl_NumWorkGroups.x * gl_WorkGroupSize.x) + gl_GlobalInvocationID.x;
    if (idx >= p.n_tok * heads * units) return;
    const uint u = idx % units;
    const uint h = (idx / units) % heads; // 0..n_q-1: Q, then K heads, then V heads
    const uint t = idx / (units * heads);
    const uint src = t * p.qkv_stride + h * p.hd;
    const int ps = pos[t];
    const bool in_cache = ps >= 0 && uint(ps) < p.ctx;

    if (h >= p.n_q + p.n_kv) { // V: plain copy into the cache
        if (!in_cache) return;
        const uint kvh = h - p.n_q - p.n_kv;
        const uint dst = ((kvh * p.ctx + uint(ps)) * p.hd + 4 * u) / 2;
        const uint s = src + 4 * u;
        vc[dst] = packHalf2x16(vec2(qkv[s], qkv[s + 1]));
        vc[dst + 1] = packHalf2x16(vec2(qkv[s + 2], qkv[s + 3]));
        return;
    }
    const bool is_k = h >= p.n_q;
    const uint half_rot = p.n_rot / 2;
    // four element indices and their values after rotation
    uint e0, e1, e2, e3;
    vec4 y;
    if (4 * u >= p.n_rot) { // unrotated tail
        e0 = 4 * u; e1 = e0 + 1; e2 = e0 + 2; e3 = e0 + 3;
        y = vec4(qkv[src + e0], qkv[src + e1], qkv[src + e2], qkv[src + e3]);
    } else {
        const uint i = 2 * u; // pairs i and i + 1
#if NEOX
        e0 = i; e1 = i + 1; e2 = i + half_rot; e3 = i + 1 + half_rot; // (e0, e2) and (e1, e3) are pairs
#else
        e0 = 2 * i; e1 = 2 * i + 2; e2 = 2 * i + 1; e3 = 2 * i + 3;
#endif
        const vec2 c0 = rot(ps, i), c1 = rot(ps, i + 1);
        const float a0 = qkv[src + e0], b0 = qkv[src + e2], a1 = qkv[src + e1], b1 = qkv[src + e3];
        y = vec4(a0 * c0.x - b0 * c0.y, a1 * c1.x - b1 * c1.y, a0 * c0.y + b0 * c0.x, a1 * c1.y + b1 * c1.x);
    }
    if (!is_k) {
        const uint dst = (t * p.n_q + h) * p.hd;
        q[dst + e0] = y.x; q[dst + e1] = y.y; q[dst + e2] = y.z; q[dst + e3] = y.w;
        return;
    }
    if (!in_cache) return;
    const uint base = ((h - p.n_q) * p.ctx + uint(ps)) * p.hd;
#if NEOX
    // e0, e1 adjacent (even e0) and e2, e3 adjacent (even e2 since half_rot is even)
    kc[(base + e0) / 2] = packHalf2x16(y.xy);
    kc[(base + e2) / 2] = packHalf2x16(y.zw);
#else
    // e0 = 4u, e2 = 4u + 1, e1 = 4u + 2, e3 = 4u + 3 (tail: e0..e3 consecutive)
    if (4 * u >= p.n_rot) {
        kc[(base + e0) / 2] = packHalf2x16(y.xy);
        kc[(base + e2) / 2] = packHalf2x16(y.zw);
    } else {
        kc[(base + e0) / 2] = packHalf2x16(vec2(y.x, y.z));
        kc[(base + e1) / 2] = packHalf2x16(vec2(y.y, y.w));
    }
#endif
}
