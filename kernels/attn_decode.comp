#version 450
// Decode attention over the fp16 KV cache, flash-decoding style, in two phases from this one source:
//   MERGE = 0 (attn_decode):       each workgroup takes one chunk of cache positions for one KV head
//                                  and all G query heads of its group, for one query row, and writes
//                                  a partial (max, sum, unnormalized output) to the scratch buffer.
//   MERGE = 1 (attn_decode_merge): one workgroup per (query row, query head) merges the partials.
// out[t][h][:] = sum_k softmax_k(scale * q[t][h] . K[h/G][k]) V[h/G][k] over the allowed k:
//   query row t (0 <= t < n_tok) sits at position qpos = L - n_tok + t, L = min(len[0], ctx) the live
//   cache length read from a device buffer (so a recorded chain replays as the context grows);
//   allowed k: max(0, qpos - window + 1) <= k <= qpos (window = 0: no window).
// The split count n_split is fixed at record time; the chunk is derived at run time from the live
// range: chunk = max(MIN_CHUNK, roundup16(ceil(range / n_split))), so all splits share the work at
// any length and splits past the end exit at once (the merge derives the same count of live splits).
//
// Layout: q, out float32 [n_tok][n_q][HD]; k, v fp16 [n_kv][ctx][HD] read as uvec4 (8 halves);
// scratch float32 [n_tok][n_q][n_split][HD + 4] (the output, then max and sum at HD and HD + 1;
// max and output in the log2 domain of scores scaled by scale * log2(e)).
// Workgroup (phase 0): WG threads. Scores: one thread per cache position of a tile of WG positions,
// dot products of the whole K row (uvec4 loads) with the G query rows held in shared memory. Values:
// VL = HD/8 lanes per position (one uvec4 each), KG = WG/VL positions at a time, each lane keeping
// its own online-softmax state for its 8 columns of G rows; the KG states merge in shared memory.
// Per call: reads 2 * 2 * n_kv * range * HD bytes of cache (once per query row; K/V of a chunk are
// read by one workgroup only) plus q; FLOPs about 4 * n_q * range * HD per query row.
#extension GL_GOOGLE_include_directive : require

#ifndef MERGE
#define MERGE 0
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint HD = 128;      // head_dim, a multiple of 8
layout(constant_id = 2) const uint G = 1;         // query heads per KV head
layout(constant_id = 3) const uint MIN_CHUNK = 64;

const uint D4 = HD / 4;
const uint VL = HD / 8;
const uint KG = WG / VL;
const uint UV = 8; // V rows loaded per lane before they are used

layout(push_constant) uniform Params {
    uint n_tok, n_q, n_kv, ctx;
    uint n_split, window;
    float scale; // 1/sqrt(HD) usually, times log2(e) by the host
    uint pad;
} p;

#if MERGE == 0
layout(std430, binding = 3) readonly buffer Len { uint len[]; };
#else
layout(std430, binding = 1) readonly buffer Len { uint len[]; };
#endif

// The allowed range [lo, hi) of query row t and the chunk length of its splits.
void row_range(uint t, out uint lo, out uint hi, out uint chunk)
{
    const uint L = min(len[0], p.ctx);
    const int qpos = int(L) - int(p.n_tok) + int(t);
    hi = qpos < 0 ? 0u : uint(qpos) + 1u;
    lo = (p.window > 0 && hi > p.window) ? hi - p.window : 0u;
    const uint n = hi - lo;
    chunk = max(MIN_CHUNK, (((n + p.n_split - 1) / p.n_split) + 15u) & ~15u);
}

#if MERGE == 0
layout(std430, binding = 0) readonly buffer Q4 { vec4 q4[]; };
layout(std430, binding = 1) readonly buffer K8 { uvec4 k8[]; };
layout(std430, binding = 2) readonly buffer V8 { uvec4 v8[]; };
layout(std430, binding = 4) writeonly buffer S { float scr[]; };
layout(std430, binding = 4) writeonly buffer S4 { vec4 scr4[]; };

shared vec4 qs[G * D4];
shared float sc[G * WG];
shared float mrg_m[KG * G];
shared float mrg_l[KG * G];
shared vec4 mrg_o[KG * G * D4];

void main()
{
    const uint s = gl_WorkGroupID.x, kvh = gl_WorkGroupID.y, t = gl_WorkGroupID.z;
    const uint tid = gl_LocalInvocationID.x;
    uint lo, hi, chunk;
    row_range(t, lo, hi, chunk);
    const uint k0 = lo + s * chunk;
    if (k0 >= hi) return; // past the live range: uniform over the workgroup, before any barrier
    const uint k1 = min(hi, k0 + chunk);

    for (uint i = tid; i < G * D4; i += WG) {
        const uint g = i / D4, c = i % D4;
        qs[i] = q4[(t * p.n_q + kvh * G + g) * D4 + c] * p.scale;
    }
    barrier();

    const uint lane = tid % VL, kg = tid / VL;
    const float NEG_INF = uintBitsToFloat(0xff800000u);
    float m[G], l[G];
    vec4 acc0[G], acc1[G];
    for (uint g = 0; g < G; g++) {
        m[g] = NEG_INF;
        l[g] = 0.0;
        acc0[g] = vec4(0.0);
        acc1[g] = vec4(0.0);
    }
    const uint head_base = kvh * p.ctx; // in rows of HD halves

    for (uint tile = k0; tile < k1; tile += WG) {
        const uint key = tile + tid;
        if (key < k1) {
            float sg[G];
            for (uint g = 0; g < G; g++) sg[g] = 0.0;
            const uint kb = (head_base + key) * VL;
            for (uint c = 0; c < VL; c++) {
                const uvec4 w = k8[kb + c];
                const vec4 ka = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
                const vec4 kb4 = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
                for (uint g = 0; g < G; g++) sg[g] += dot(qs[g * D4 + 2 * c], ka) + dot(qs[g * D4 + 2 * c + 1], kb4);
            }
            for (uint g = 0; g < G; g++) sc[g * WG + tid] = sg[g];
        }
        barrier();
        if (kg < KG) {
            const uint n_here = min(WG, k1 - tile);
            // the tile's max over this lane group's positions first, so the loop below has no
            // branches and can keep UV loads of V in flight per lane
            for (uint g = 0; g < G; g++) {
                float tm = NEG_INF;
                for (uint j = kg; j < n_here; j += KG) tm = max(tm, sc[g * WG + j]);
                const float mn = max(m[g], tm);
                if (mn != NEG_INF) { // else this lane group has seen nothing yet
                    const float a = exp2(m[g] - mn);
                    l[g] *= a;
                    acc0[g] *= a;
                    acc1[g] *= a;
                    m[g] = mn;
                }
            }
            for (uint j0 = kg; j0 < n_here; j0 += UV * KG) {
                uvec4 w[UV];
                for (uint u = 0; u < UV; u++) {
                    const uint j = j0 + u * KG;
                    w[u] = j < n_here ? v8[(head_base + tile + j) * VL + lane] : uvec4(0);
                }
                for (uint u = 0; u < UV; u++) {
                    const uint j = j0 + u * KG;
                    if (j >= n_here) break;
                    const vec4 va = vec4(unpackHalf2x16(w[u].x), unpackHalf2x16(w[u].y));
                    const vec4 vb = vec4(unpackHalf2x16(w[u].z), unpackHalf2x16(w[u].w));
                    for (uint g = 0; g < G; g++) {
                        const float pe = exp2(sc[g * WG + j] - m[g]);
                        l[g] += pe;
                        acc0[g] += pe * va;
                        acc1[g] += pe * vb;
                    }
                }
            }
        }
        barrier(); // sc is overwritten by the next tile
    }

    if (kg < KG) {
        for (uint g = 0; g < G; g++) {
            mrg_o[(kg * G + g) * D4 + 2 * lane] = acc0[g];
            mrg_o[(kg * G + g) * D4 + 2 * lane + 1] = acc1[g];
            if (lane == 0) {
                mrg_m[kg * G + g] = m[g];
                mrg_l[kg * G + g] = l[g];
            }
        }
    }
    barrier();
    for (uint i = tid; i < G * D4; i += WG) {
        const uint g = i / D4, c = i % D4;
        float M = NEG_INF;
        for (uint k = 0; k < KG; k++) M = max(M, mrg_m[k * G + g]);
        vec4 o = vec4(0.0);
        float L = 0.0;
        for (uint k = 0; k < KG; k++) {
            const float w = exp2(mrg_m[k * G + g] - M); // 0 for a lane group that saw no position
            o += w * mrg_o[(k * G + g) * D4 + c];
            L += w * mrg_l[k * G + g];
        }
        const uint rec = ((t * p.n_q + kvh * G + g) * p.n_split + s) * (HD + 4);
        scr4[rec / 4 + c] = o;
        if (c == 0) {
            scr[rec + HD] = M;
            scr[rec + HD + 1] = L;
        }
    }
}
#else
layout(std430, binding = 0) readonly buffer S { float scr[]; };
layout(std430, binding = 0) readonly buffer S4 { vec4 scr4[]; };
layout(std430, binding = 2) writeonly buffer O4 { vec4 out4[]; };

const uint MAX_SPLIT = 1024; // the host keeps n_split at or below this
const uint SL = WG / D4;     // split lanes: threads (c, sl) sum splits sl, sl + SL, ...
shared float wsh[MAX_SPLIT];
shared float red[WG];
shared vec4 osh[WG];

// One workgroup per (query head h = x, query row t = y): the global max over the live splits, their
// weights into shared memory, then SL lanes per output vec4 sum the weighted partial outputs (loads of
// different splits are independent, so many are in flight) and one lane per vec4 adds the SL sums.
void main()
{
    const uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x;
    uint lo, hi, chunk;
    row_range(t, lo, hi, chunk);
    const uint n_live = (hi - lo + chunk - 1) / chunk;
    const uint rec0 = (t * p.n_q + h) * p.n_split;
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    float mx = NEG_INF;
    for (uint s = tid; s < n_live; s += WG) mx = max(mx, scr[(rec0 + s) * (HD + 4) + HD]);
    red[tid] = mx;
    barrier();
    for (uint w = WG / 2; w > 0; w /= 2) { // WG is a power of two
        if (tid < w) red[tid] = max(red[tid], red[tid + w]);
        barrier();
    }
    const float M = red[0];
    barrier();
    float ls = 0.0;
    for (uint s = tid; s < n_live; s += WG) {
        const uint rec = (rec0 + s) * (HD + 4);
        const float w = exp2(scr[rec + HD] - M);
        wsh[s] = w;
        ls += w * scr[rec + HD + 1];
    }
    red[tid] = ls;
    barrier();
    for (uint w = WG / 2; w > 0; w /= 2) {
        if (tid < w) red[tid] += red[tid + w];
        barrier();
    }
    const float L = red[0];

    const uint c = tid % D4, sl = tid / D4;
    vec4 o = vec4(0.0);
    if (sl < SL)
        for (uint s = sl; s < n_live; s += SL) o += wsh[s] * scr4[(rec0 + s) * ((HD + 4) / 4) + c];
    osh[tid] = o;
    barrier();
    if (tid < D4) {
        vec4 sum = vec4(0.0);
        for (uint k = 0; k < SL; k++) sum += osh[k * D4 + tid];
        out4[(t * p.n_q + h) * D4 + tid] = L > 0.0 ? sum / L : vec4(0.0); // a row with no position: 0
    }
}
#endif
