#version 450
// Prefill attention (portable: shared-memory tiles, float32 arithmetic, no cooperative matrix):
// out[t][h][:] = sum_k softmax_k(scale * q[t][h] . K[h/G][k]) V[h/G][k] over the allowed k, with
// online softmax over tiles of BC cache positions (never a score matrix in memory).
//   Query row t (0 <= t < n_tok) sits at position qpos = L - n_tok + t, L = min(len[0], ctx) the live
//   cache length from a device buffer (the batch itself is already in the cache: kv_write ran first);
//   allowed k: max(0, qpos - window + 1) <= k <= qpos (window = 0: no window).
// Layout: q, out float32 [n_tok][n_q][HD]; k, v fp16 [n_kv][ctx][HD] (read as uvec4 = 8 halves).
// Workgroup: BR query rows of one query head, WG = 4 * BR threads; thread (r = tid / 4, q4 = tid % 4)
// computes scores of row r against positions q4, q4 + 4, ... of the tile and owns the output columns
// (as vec4) q4, q4 + 4, ... of row r. Q (pre-scaled by scale * log2 e), K and V tiles live in shared
// memory as float32 with rows padded by one vec4 so the 8 rows a warp reads hit distinct banks.
// Grid: (ceil(n_tok / BR), n_q). HD a multiple of 16.
// Per call: FLOPs 4 * n_q * HD * (allowed pairs) (about n_tok^2 / 2 causal); reads the K/V prefix
// once per (row tile, query head) from L2.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128; // = 4 * BR
layout(constant_id = 1) const uint HD = 128;
layout(constant_id = 2) const uint BR = 32;
layout(constant_id = 3) const uint BC = 16;

const uint D4 = HD / 4;
const uint P4 = D4 + 1; // padded row stride in vec4
const uint NO = HD / 16; // output vec4 per thread

layout(push_constant) uniform Params {
    uint n_tok, n_q, n_kv, ctx;
    uint window, group;
    float scale; // 1/sqrt(HD) times log2(e)
    uint pad;
} p;

layout(std430, binding = 0) readonly buffer Q4 { vec4 q4[]; };
layout(std430, binding = 1) readonly buffer K8 { uvec4 k8[]; };
layout(std430, binding = 2) readonly buffer V8 { uvec4 v8[]; };
layout(std430, binding = 3) readonly buffer Len { uint len[]; };
layout(std430, binding = 4) writeonly buffer O4 { vec4 out4[]; };

shared vec4 qs[BR * P4];
shared vec4 ks[BC * P4];
shared vec4 vs[BC * P4];
shared float sc[BR * BC];

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint r = tid / 4, q4i = tid % 4;
    // the longest row tiles (last rows: the most positions) start first, the short ones fill in
    const uint row0 = (gl_NumWorkGroups.x - 1 - gl_WorkGroupID.x) * BR, h = gl_WorkGroupID.y;
    const uint kvh = h / p.group;
    const int L = int(min(len[0], p.ctx));
    const int p0 = L - int(p.n_tok); // position of query row 0
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    // Q tile, pre-scaled; rows past n_tok are zero (computed, never written)
    for (uint i = tid; i < BR * D4; i += WG) {
        const uint rr = i / D4, c = i % D4;
        const uint row = row0 + rr;
        qs[rr * P4 + c] = row < p.n_tok ? q4[(row * p.n_q + h) * D4 + c] * p.scale : vec4(0.0);
    }

    const uint row = row0 + r;
    const int qpos = p0 + int(row);
    const bool live = row < p.n_tok && qpos >= 0;
    const int lo_r = p.window > 0 ? max(0, qpos - int(p.window) + 1) : 0;
    // positions the whole tile may need
    const uint last_row = min(row0 + BR, p.n_tok) - 1;
    const int first_q = p0 + int(row0);
    const int kmin = p.window > 0 ? max(0, first_q - int(p.window) + 1) : 0;
    const int kmax = p0 + int(last_row) + 1; // exclusive

    float m = NEG_INF, l = 0.0;
    vec4 o[NO];
    for (uint i = 0; i < NO; i++) o[i] = vec4(0.0);
    const uint head_base = kvh * p.ctx;

    for (int kb = kmin; kb < kmax; kb += int(BC)) {
        barrier(); // previous tile's K/V/scores are no longer read (and Q is written, first time)
        for (uint i = tid; i < BC * (HD / 8); i += WG) {
            const uint c = i / (HD / 8), j = i % (HD / 8);
            const int key = kb + int(c);
            uvec4 wk = uvec4(0), wv = uvec4(0);
            if (key < kmax) {
                wk = k8[(head_base + uint(key)) * (HD / 8) + j];
                wv = v8[(head_base + uint(key)) * (HD / 8) + j];
            }
            ks[c * P4 + 2 * j] = vec4(unpackHalf2x16(wk.x), unpackHalf2x16(wk.y));
            ks[c * P4 + 2 * j + 1] = vec4(unpackHalf2x16(wk.z), unpackHalf2x16(wk.w));
            vs[c * P4 + 2 * j] = vec4(unpackHalf2x16(wv.x), unpackHalf2x16(wv.y));
            vs[c * P4 + 2 * j + 1] = vec4(unpackHalf2x16(wv.z), unpackHalf2x16(wv.w));
        }
        barrier();
        for (uint c = q4i; c < BC; c += 4) {
            const int key = kb + int(c);
            float s = 0.0;
            for (uint d = 0; d < D4; d++) s += dot(qs[r * P4 + d], ks[c * P4 + d]);
            const bool ok = live && key <= qpos && key >= lo_r && key < kmax;
            sc[r * BC + c] = ok ? s : NEG_INF;
        }
        barrier();
        float mt = m;
        for (uint c = 0; c < BC; c++) mt = max(mt, sc[r * BC + c]);
        if (mt != NEG_INF) { // else nothing allowed yet for this row
            const float a = exp2(m - mt); // 0 when m is -inf
            l *= a;
            for (uint i = 0; i < NO; i++) o[i] *= a;
            for (uint c = 0; c < BC; c++) {
                const float pe = exp2(sc[r * BC + c] - mt);
                l += pe;
                for (uint i = 0; i < NO; i++) o[i] += pe * vs[c * P4 + q4i + 4 * i];
            }
            m = mt;
        }
    }
    if (row < p.n_tok)
        for (uint i = 0; i < NO; i++) out4[(row * p.n_q + h) * D4 + q4i + 4 * i] = l > 0.0 ? o[i] / l : vec4(0.0);
}
