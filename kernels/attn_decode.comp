#version 450
// Decode attention over the fp16 KV cache, flash-decoding style, from this one source:
//   MERGE = 0, ONEPASS = 1 (attn_decode_1p): each workgroup takes one share of cache positions for one
//                                  KV head and all G query heads of its group, for one query row, and
//                                  writes a partial (max, sum, unnormalized output) to the scratch
//                                  buffer; the LAST workgroup of each (query row, KV head) to finish
//                                  (a device-scope acquire/release counter in the scratch) merges the
//                                  partials, writes out and puts the counter back to 0. One dispatch.
//   MERGE = 0, ONEPASS = 0 (attn_decode): the same split phase only; MERGE = 1 (attn_decode_merge):
//                                  one workgroup per (query row, query head) merges the partials in a
//                                  second dispatch (the fallback where the device lacks the Vulkan
//                                  memory model at device scope, and the comparison).
// out[t][h][:] = sum_k softmax_k(scale * q[t][h] . K[h/G][k]) V[h/G][k] over the allowed k:
//   query row t (0 <= t < n_tok) sits at position qpos = L - n_tok + t, L = min(len[0], ctx) the live
//   cache length read from a device buffer (so a recorded chain replays as the context grows);
//   allowed k: max(0, qpos - window + 1) <= k <= qpos (window = 0: no window).
// The split count n_split is fixed at record time. The live range is cut into steps of STEP = NSLOT * U
// positions (spec constant 3; NSLOT and U below). ORDER = 0 (spec constant 6): split s takes steps
// s, s + n_split, ...: the running workgroups of a head read one moving window of the cache. ORDER = 1:
// split s takes one contiguous run of ceil(steps / n_split) steps. Splits with no step exit at once;
// every phase derives the same count of live splits (live_splits below).
//
// Layout: q, out float32 [n_tok][n_q][HD]; k, v fp16 [n_kv][ctx][HD] read as uvec4 (8 halves);
// scratch partials float32 [n_tok][n_q][n_split][HD + 4] (the output, then max and sum at HD and
// HD + 1; max and output in the log2 domain of scores scaled by scale * log2(e)); one-pass counters
// uint [n_tok][n_kv] in their own binding (the host puts them at the start of the scratch: they must
// be zero before the first call and every call leaves them zero).
// Workgroup (phase 0): WG threads in slots of P lanes (P a power of two <= the subgroup size, spec
// constant 4); a slot takes one cache position at a time, lane sl holding uvec4 columns sl + P i
// (i < NI = ceil(VL / P), VL = HD / 8) of the K and V rows, so a subgroup's load covers consecutive
// rows contiguously. Per step a slot loads U rows (spec constant 5) of K and V (2 U NI uvec4 per lane,
// issued one step ahead into a second register set, so they fly during the previous step's
// arithmetic; q is read straight into registers, no barrier before the first loads), the G scores
// of each row are partial dot products summed over the slot by xor shuffles, then one online-softmax
// update per step and query head (state per slot: max, sum, 8 NI columns of output per lane for each
// of the G heads). No barrier in the loop: the NSLOT = WG / P slot states merge in shared memory at
// the end. The one-pass merge: thread (g, c) of the last workgroup folds the live splits' vec4 c of
// head g, 16 splits' loads in flight at a time (the tail of the call: keep the split count modest).
// QOUT (attn_decode_1p, one query row): the merge also writes the output quantized per 32 for the
// 8-bit mat-vec after it (attn_output), in quant_q8.comp's layout: the quant_q8 dispatch between
// them is gone (a dependent dispatch costs ~2.4 us on the H100, bench-misc --latency).
// Per call: reads 2 * 2 * n_kv * range * HD bytes of cache (once per query row; K/V of a step are
// read by one workgroup only) plus q; FLOPs about 4 * n_q * range * HD per query row.
// H100 (driver 580, Phi-4 40/10 x 128, one row, bench-attn with the GPU warmed up; docs/BENCHMARKS.md):
// one pass ctx 512 9.9 us, 4096 17.6 us (38% of the 3.16 TB/s read ceiling), 16384 39.9 us (66%);
// split + merge with the same splits 13.5 / 20.1 / 42.6 us (the merge dispatch ~5.5 us). From 8192
// to 16384 the extra 42 MB stream at 3.0 TB/s: what is left is a fixed ~12 us per call (dispatch and
// timestamps, first loads, the counter and the merge tail). The 184 us once measured at 16384 was the
// GPU at 345-465 MHz after a second of idle (host-side uploads), not this kernel.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_arithmetic : require

#ifndef MERGE
#define MERGE 0
#endif
#ifndef ONEPASS
#define ONEPASS 0
#endif
#if ONEPASS
#extension GL_KHR_memory_scope_semantics : require
#define SCR_QUAL coherent
#else
#define SCR_QUAL writeonly
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint HD = 128;      // head_dim, a multiple of 8
layout(constant_id = 2) const uint G = 1;         // query heads per KV head
layout(constant_id = 3) const uint STEP = 32;     // positions per workgroup step, = (WG / P) * U

layout(constant_id = 4) const uint P = 16;        // lanes per slot (phase 0)
layout(constant_id = 5) const uint U = 4;         // rows per slot and step (phase 0)
layout(constant_id = 6) const uint ORDER = 0;     // 0: split s takes steps s, s + n_split, ...; 1: a contiguous run
layout(constant_id = 7) const uint QOUT = 0;      // ONEPASS, n_tok = 1: the output also quantized (below)

const uint D4 = HD / 4;
const uint VL = HD / 8;
const uint NI = (VL + P - 1) / P;
const uint NSLOT = WG / P;

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

// The allowed range [lo, hi) of query row t and its number of steps.
void row_range(uint t, out uint lo, out uint hi, out uint steps)
{
    const uint L = min(len[0], p.ctx);
    const int qpos = int(L) - int(p.n_tok) + int(t);
    hi = qpos < 0 ? 0u : uint(qpos) + 1u;
    lo = (p.window > 0 && hi > p.window) ? hi - p.window : 0u;
    steps = (hi - lo + STEP - 1) / STEP;
}

// Steps per split in contiguous order, and the splits that get at least one step (both orders).
uint run_len(uint steps) { return (steps + p.n_split - 1) / p.n_split; }
uint live_splits(uint steps)
{
    if (ORDER == 0) return min(p.n_split, steps);
    const uint r = run_len(steps);
    return r == 0 ? 0u : (steps + r - 1) / r;
}

#if MERGE == 0
layout(std430, binding = 0) readonly buffer Q4 { vec4 q4[]; };
layout(std430, binding = 1) readonly buffer K8 { uvec4 k8[]; };
layout(std430, binding = 2) readonly buffer V8 { uvec4 v8[]; };
layout(std430, binding = 4) SCR_QUAL buffer S { float scr[]; };
layout(std430, binding = 4) SCR_QUAL buffer S4 { vec4 scr4[]; };
#if ONEPASS
layout(std430, binding = 5) coherent buffer C { uint cnt[]; };
layout(std430, binding = 6) writeonly buffer O4 { vec4 out4[]; };
shared uint last_wg;
// QOUT: the merged output (one query row, n = n_q * HD elements) also quantized per 32 for the next
// mat-vec (vkllm_matvec_q8_args.xq), in the layout of quant_q8.comp with no prologue: codes, (d,
// d * sum(q)), the int16 half sums; the arithmetic of common/q8act.glsl (the same codes as a
// quant_q8 dispatch after it would write, which this replaces). A block is 8 consecutive vec4 of
// one head, held by 8 consecutive lanes of one subgroup (the merge numbers its threads by subgroup).
#include "common/q8act.glsl"
layout(std430, binding = 7) writeonly buffer QW { uint qw[]; };
layout(std430, binding = 7) writeonly buffer QD { vec2 qd[]; };
layout(std430, binding = 7) writeonly buffer QH { int qh[]; };
void q8_store(uint e, vec4 r) // vec4 e of the row
{
    const uint n4 = p.n_q * D4, nb = n4 / 8u;
    const q8_quad q = q8_quant4(r);
    qw[e] = q.word;
    if ((e & 7u) == 0u) {
        qd[n4 / 2u + (e >> 3)] = q8_ds(q);
        qh[n4 + nb * 2u + (e >> 3)] = q8_h(q);
    }
}
#endif

shared float mrg_m[NSLOT * G];
shared float mrg_l[NSLOT * G];
shared vec4 mrg_o[NSLOT * G * D4];

void main()
{
    const uint s = gl_WorkGroupID.x, kvh = gl_WorkGroupID.y, t = gl_WorkGroupID.z;
    const uint tid = gl_LocalInvocationID.x;
    uint lo, hi, steps;
    row_range(t, lo, hi, steps);
    const uint n_live = live_splits(steps);
#if ONEPASS
    if (steps == 0 && s == 0) { // a row that sees no position: nobody merges, its output is 0
        const uint mi = QOUT != 0u ? gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID : tid;
        for (uint i = mi; i < G * D4; i += WG) {
            out4[(t * p.n_q + kvh * G) * D4 + i] = vec4(0.0);
            if (QOUT != 0u) q8_store(kvh * G * D4 + i, vec4(0.0));
        }
    }
#endif
    if (s >= n_live) return; // no step for this split: uniform over the workgroup, before any barrier
    const uint k1 = hi;
    // this split's steps: first, stride and end (ORDER 0: s, s + n_split, ...; 1: one run)
    const uint st0 = ORDER == 0 ? s : s * run_len(steps);
    const uint sstr = ORDER == 0 ? p.n_split : 1u;
    const uint st1 = ORDER == 0 ? steps : min(steps, st0 + run_len(steps));

    // slot: P lanes of one subgroup (aligned, so xor shuffles below P stay inside it)
    const uint sl = gl_SubgroupInvocationID % P;
    const uint slot = gl_SubgroupID * (gl_SubgroupSize / P) + gl_SubgroupInvocationID / P;
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    // this lane's columns: uvec4 number c = sl + P * i (8 halves each), i < NI, c < VL; its q
    // columns straight from memory (no shared copy, no barrier: they load with the first K/V)
    vec4 qa[G * NI], qb[G * NI];
    for (uint g = 0; g < G; g++)
        for (uint i = 0; i < NI; i++) {
            const uint c = min(sl + P * i, VL - 1); // lanes past VL compute a copy and never store it
            const uint qb4 = (t * p.n_q + kvh * G + g) * D4 + 2 * c;
            qa[g * NI + i] = q4[qb4] * p.scale;
            qb[g * NI + i] = q4[qb4 + 1] * p.scale;
        }
    float m[G], l[G];
    vec4 acc0[G * NI], acc1[G * NI];
    for (uint g = 0; g < G; g++) {
        m[g] = NEG_INF;
        l[g] = 0.0;
        for (uint i = 0; i < NI; i++) {
            acc0[g * NI + i] = vec4(0.0);
            acc1[g * NI + i] = vec4(0.0);
        }
    }
    const uint head_base = kvh * p.ctx; // in rows of HD halves

    // Step: rows base + u * NSLOT + slot, u < U. The next step's K and V loads are issued before
    // this step's arithmetic (2 U NI uvec4 of each per lane in flight while it computes).
    uvec4 kw[U * NI], vw[U * NI], kn[U * NI], vn[U * NI];
    for (uint u = 0; u < U; u++) {
        const uint row = lo + st0 * STEP + u * NSLOT + slot;
        for (uint i = 0; i < NI; i++) {
            const uint c = sl + P * i;
            const bool ok = row < k1 && c < VL;
            kn[u * NI + i] = ok ? k8[(head_base + row) * VL + c] : uvec4(0);
            vn[u * NI + i] = ok ? v8[(head_base + row) * VL + c] : uvec4(0);
        }
    }
    for (uint st = st0; st < st1; st += sstr) {
        const uint base = lo + st * STEP;
        for (uint j = 0; j < U * NI; j++) {
            kw[j] = kn[j];
            vw[j] = vn[j];
        }
        const uint nb = base + sstr * STEP;
        if (st + sstr < st1) { // uniform over the workgroup
            for (uint u = 0; u < U; u++) {
                const uint row = nb + u * NSLOT + slot;
                for (uint i = 0; i < NI; i++) {
                    const uint c = sl + P * i;
                    const bool ok = row < k1 && c < VL;
                    kn[u * NI + i] = ok ? k8[(head_base + row) * VL + c] : uvec4(0);
                    vn[u * NI + i] = ok ? v8[(head_base + row) * VL + c] : uvec4(0);
                }
            }
        }
        float sv[U * G];
        for (uint u = 0; u < U; u++) {
            for (uint g = 0; g < G; g++) sv[u * G + g] = 0.0;
            for (uint i = 0; i < NI; i++) {
                const uvec4 w = kw[u * NI + i];
                const vec4 ka = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
                const vec4 kb = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
                for (uint g = 0; g < G; g++) sv[u * G + g] += dot(qa[g * NI + i], ka) + dot(qb[g * NI + i], kb);
            }
        }
        for (uint off = 1; off < P; off *= 2)
            for (uint j = 0; j < U * G; j++) sv[j] += subgroupShuffleXor(sv[j], off);
        for (uint g = 0; g < G; g++) {
            float tm = NEG_INF;
            for (uint u = 0; u < U; u++) {
                if (base + u * NSLOT + slot >= k1) sv[u * G + g] = NEG_INF;
                tm = max(tm, sv[u * G + g]);
            }
            const float mn = max(m[g], tm);
            if (mn == NEG_INF) continue; // this slot has seen no position yet
            const float a = exp2(m[g] - mn);
            m[g] = mn;
            float ls = 0.0;
            vec4 s0[NI], s1[NI];
            for (uint i = 0; i < NI; i++) {
                s0[i] = vec4(0.0);
                s1[i] = vec4(0.0);
            }
            for (uint u = 0; u < U; u++) {
                const float pe = exp2(sv[u * G + g] - mn);
                ls += pe;
                for (uint i = 0; i < NI; i++) {
                    const uvec4 w = vw[u * NI + i];
                    s0[i] += pe * vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
                    s1[i] += pe * vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
                }
            }
            l[g] = l[g] * a + ls;
            for (uint i = 0; i < NI; i++) {
                acc0[g * NI + i] = acc0[g * NI + i] * a + s0[i];
                acc1[g * NI + i] = acc1[g * NI + i] * a + s1[i];
            }
        }
    }

    // the NSLOT slot states merge through shared memory
    for (uint g = 0; g < G; g++) {
        for (uint i = 0; i < NI; i++) {
            const uint c = sl + P * i;
            if (c < VL) {
                mrg_o[(slot * G + g) * D4 + 2 * c] = acc0[g * NI + i];
                mrg_o[(slot * G + g) * D4 + 2 * c + 1] = acc1[g * NI + i];
            }
        }
        if (sl == 0) {
            mrg_m[slot * G + g] = m[g];
            mrg_l[slot * G + g] = l[g];
        }
    }
    barrier();
    for (uint i = tid; i < G * D4; i += WG) {
        const uint g = i / D4, c = i % D4;
        float M = NEG_INF;
        for (uint k = 0; k < NSLOT; k++) M = max(M, mrg_m[k * G + g]);
        vec4 o = vec4(0.0);
        float L = 0.0;
        for (uint k = 0; k < NSLOT; k++) {
            const float mk = mrg_m[k * G + g];
            if (mk == NEG_INF) continue; // a slot that saw no position (its output is 0 too)
            const float w = exp2(mk - M);
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
#if ONEPASS
    // Every thread's partial stores are released at device scope and acquired by thread 0 (the
    // barrier), whose acquire-release increment then publishes them to the workgroup that counts
    // last; that one acquires all earlier increments' releases through the counter's RMW chain and
    // hands them on to its threads through the second barrier.
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeDevice, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared,
                   gl_SemanticsAcquireRelease);
    const uint ci = t * p.n_kv + kvh;
    if (tid == 0) {
        const uint prev = atomicAdd(cnt[ci], 1u, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsAcquireRelease);
        last_wg = prev + 1 == n_live ? 1u : 0u;
    }
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeDevice, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared,
                   gl_SemanticsAcquireRelease);
    if (last_wg == 0u) return; // uniform: one shared value read after the barrier
    // every other split has counted: nobody touches this counter again in this dispatch, and the
    // next dispatch that writes the scratch comes after a pipeline barrier
    if (tid == 0) atomicStore(cnt[ci], 0u, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsRelaxed);
    const uint MB = 16; // splits whose loads are in flight together
    // QOUT: threads numbered by subgroup, so the 8 vec4 of a block are 8 lanes of one subgroup (the
    // host keeps WG a multiple of the subgroup size and HD a multiple of 32)
    const uint mi = QOUT != 0u ? gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID : tid;
    for (uint i = mi; i < G * D4; i += WG) {
        const uint g = i / D4, c = i % D4;
        const uint rec0 = (t * p.n_q + kvh * G + g) * p.n_split;
        float M = NEG_INF, L = 0.0;
        vec4 o = vec4(0.0);
        for (uint s0 = 0; s0 < n_live; s0 += MB) {
            float mk[MB], lk[MB];
            vec4 ok[MB];
            for (uint j = 0; j < MB; j++) {
                const bool ok_s = s0 + j < n_live;
                const uint rec = (rec0 + min(s0 + j, n_live - 1)) * (HD + 4);
                mk[j] = ok_s ? scr[rec + HD] : NEG_INF;
                lk[j] = scr[rec + HD + 1];
                ok[j] = scr4[rec / 4 + c];
            }
            float bm = M;
            for (uint j = 0; j < MB; j++) bm = max(bm, mk[j]);
            if (bm == NEG_INF) continue; // nothing seen yet (a live split always has a position)
            const float a = exp2(M - bm); // 0 while M is still -inf
            o *= a;
            L *= a;
            for (uint j = 0; j < MB; j++) {
                const float w = exp2(mk[j] - bm); // 0 for splits past n_live
                o += w * ok[j];
                L += w * lk[j];
            }
            M = bm;
        }
        const vec4 r = L > 0.0 ? o / L : vec4(0.0);
        out4[(t * p.n_q + kvh * G + g) * D4 + c] = r;
        if (QOUT != 0u) q8_store((kvh * G + g) * D4 + c, r);
    }
#endif
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
    uint lo, hi, steps;
    row_range(t, lo, hi, steps);
    const uint n_live = live_splits(steps);
    const uint rec0 = (t * p.n_q + h) * p.n_split;
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    // global max and weighted sum over the live splits: subgroup reductions, then one shared slot
    // per subgroup (two barriers each instead of a log2(WG)-step tree)
    float mx = NEG_INF;
    for (uint s = tid; s < n_live; s += WG) mx = max(mx, scr[(rec0 + s) * (HD + 4) + HD]);
    mx = subgroupMax(mx);
    if (gl_SubgroupInvocationID == 0) red[gl_SubgroupID] = mx;
    barrier();
    float M = NEG_INF;
    for (uint i = 0; i < gl_NumSubgroups; i++) M = max(M, red[i]);
    barrier(); // red is reused below
    float ls = 0.0;
    for (uint s = tid; s < n_live; s += WG) {
        const uint rec = (rec0 + s) * (HD + 4);
        const float w = exp2(scr[rec + HD] - M);
        wsh[s] = w;
        ls += w * scr[rec + HD + 1];
    }
    ls = subgroupAdd(ls);
    if (gl_SubgroupInvocationID == 0) red[gl_SubgroupID] = ls;
    barrier();
    float L = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; i++) L += red[i];

    const uint c = tid % D4, sl = tid / D4;
    // four independent sums, so four loads of different splits are in flight per lane
    vec4 o0 = vec4(0.0), o1 = vec4(0.0), o2 = vec4(0.0), o3 = vec4(0.0);
    if (sl < SL) {
        const uint RV = (HD + 4) / 4;
        uint s = sl;
        for (; s + 3 * SL < n_live; s += 4 * SL) {
            o0 += wsh[s] * scr4[(rec0 + s) * RV + c];
            o1 += wsh[s + SL] * scr4[(rec0 + s + SL) * RV + c];
            o2 += wsh[s + 2 * SL] * scr4[(rec0 + s + 2 * SL) * RV + c];
            o3 += wsh[s + 3 * SL] * scr4[(rec0 + s + 3 * SL) * RV + c];
        }
        for (; s < n_live; s += SL) o0 += wsh[s] * scr4[(rec0 + s) * RV + c];
    }
    osh[tid] = (o0 + o1) + (o2 + o3);
    barrier();
    if (tid < D4) {
        vec4 sum = vec4(0.0);
        for (uint k = 0; k < SL; k++) sum += osh[k * D4 + tid];
        out4[(t * p.n_q + h) * D4 + tid] = L > 0.0 ? sum / L : vec4(0.0); // a row with no position: 0
    }
}
#endif
