#version 450
// Prefill attention with GL_NV_cooperative_matrix2 (workgroup-scope matrices, fp16 operands, fp32
// accumulate), same contract as attn_prefill.comp: out[t][h][:] = softmax over allowed k of
// (scale q[t][h] . K[h/G][k]) V[h/G][k], query row t at position L - n_tok + t (L = min(len[0], ctx)
// from a device buffer), causal, optional sliding window (k > qpos - window), online softmax over key
// tiles (no score matrix in memory).
//
// Layout: q, out float32 [n_tok][n_q][HD]; k, v fp16 [n_kv][ctx][HD].
// Workgroup: WG threads (spec constant 0, 64..256); the driver spreads every matrix operation over
// them. Matrix sides must follow the driver's flexible-dimension granularity for that workgroup size
// (H100, driver 580: rows multiples of 32 from 128 threads, columns of 32 at 256; the host checks:
// runtime/ops_attn_cm2.c).
// One workgroup = BT consecutive tokens (spec constant 3) x GH consecutive query heads of one KV head
// (spec constant 2: the GQA group, or 1), i.e. BR = BT * GH matrix rows, row r = (token r / GH,
// head r % GH). Those rows are one 3-D slice [BT][GH][HD] of q and out (the group's heads are
// adjacent in a token's row), so Q is one clamped tensor load and O one clamped tensor store, and
// each K/V tile loaded serves all GH heads (GQA sharing: a quarter of the K/V traffic at Phi-4's 4).
// Q: loaded once (fp32, clamped: tokens past n_tok read 0), scaled by scale * log2(e), converted to
// an fp16 A matrix (BR x HD) kept for the whole key loop.
// Per key tile of BC positions (spec constant 4), kb = kmin, kmin + BC, ... < kmax (tiles above the
// diagonal are never visited; kmax = position of the tile's last real row + 1; with a window, kmin
// starts at the first row's window):
//   S (BR x BC) = Q K^T, K^T by a transposing tensor view of the cache (rows past kmax read 0), or
//     with ST = 1 (spec constant 5) from a shared-memory copy of the K and V tiles that all threads
//     store from registers loaded during the previous tile's products (keys past kmax stored as 0;
//     shared 2 * BC * (HD + 8) * 2 B: 34 KiB at BC 64, HD 128; one barrier before and one after);
//   where the tile crosses the diagonal or a window edge, disallowed pairs set to -inf (per element);
//   row max by coopMatReduceNV; m_new = max(m, rowmax); P = exp2(S - m_new); row sums by reduce;
//   alpha = exp2(m - m_new); l = alpha l + rowsum; O = alpha O (alpha smeared to BR x HD by a row
//   reduce into the wider matrix) + P V with P converted to fp16 and V (BC x HD) by tensor load (or
//   from the staged copy).
// m starts at -1e30 (finite), so rows with nothing allowed yet get P = exp2(-inf) = 0 and alpha = 1,
// never -inf - -inf; the first allowed score's alpha = exp2(-1e30 - s) = 0 clears nothing but zeros.
// End: out = O / l (0 for rows that saw no position, as the reference).
// m and l are kept as BR x BC accumulators whose rows hold one value each (reductions smear).
// Error against the float64 reference: Q and P rounded to fp16 (relative 2^-11 each), K and V fp16
// already, fp32 accumulation: as the KHR kernel, NMSE ~1e-7 (peaky softmax ~1e-6).
// Shared memory: the staged K/V tiles with ST = 1, plus whatever the driver stages.
// H100 (driver 580, Phi-4 40/10 x 128, causal from position 0, bench-attn, 2026-11-23):
// default tile (64 rows, BC 64, 128 threads, ST 0) 19.5 / 49.3 / 66.3 TFLOP/s at T = 512 / 2048 /
// 8192 (the KHR kernel 20.5 / 32.8 / 37.7 and torch SDPA fp16 80.5 / 357 / 593 in the same run):
// 0.24 / 0.14 / 0.11 of SDPA. ST 1 with 64 rows, BC 32 or 64: 90 TFLOP/s at 8192 once each, not
// yet checked under the validation layer, so not the default. 256 threads with tensor loads: 30-81
// (swings between runs). The first few calls of every new pipeline ran 2-4x slower than later
// calls of the same pipeline in the same process. Not profiled yet; suspects: three row reductions
// and four per-element passes per tile (each may go through the driver's shared-memory staging),
// K/V loads not double-buffered, 64-row tiles re-reading K/V from L2 once per 16 tokens.
// Per call: FLOPs 4 * n_q * HD * (allowed pairs) (causal from position 0: about n_tok^2 / 2 per
// head; the benchmark counts 2 * n_q * HD * n_tok^2); bytes: q and out once (8 * n_tok * n_q * HD),
// K and V of the batch's live range once per row tile from L2.
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : require // [[unroll]]: the prefetch registers stay registers

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint HD = 128;
layout(constant_id = 2) const uint GH = 4;  // query heads per workgroup
layout(constant_id = 3) const uint BT = 16; // tokens per workgroup
layout(constant_id = 4) const uint BC = 64; // key positions per tile
layout(constant_id = 5) const uint ST = 0;  // 1: K/V tiles staged in shared memory by the workgroup
const uint BR = BT * GH;
const uint LDK = HD / 4u + 2u; // f16vec4 per staged K/V row (16 bytes of padding against bank conflicts)
const uint NLD = ST != 0u ? (BC * (HD / 8u) + WG - 1u) / WG : 1u; // uvec4 of K (and of V) per thread per tile

layout(push_constant) uniform Params {
    uint n_tok, n_q, n_kv, ctx;
    uint window, group;
    float scale; // 1/sqrt(HD) times log2(e)
    uint pad;
} p;

layout(std430, binding = 0) readonly buffer Q { float qb[]; };
layout(std430, binding = 1) readonly buffer K { float16_t kc[]; };
layout(std430, binding = 2) readonly buffer V { float16_t vc[]; };
layout(std430, binding = 1) readonly buffer K8 { uvec4 k8[]; };
layout(std430, binding = 2) readonly buffer V8 { uvec4 v8[]; };
layout(std430, binding = 3) readonly buffer Len { uint len[]; };
layout(std430, binding = 4) writeonly buffer O { float ob[]; };

#define ACC(r, c) coopmat<float, gl_ScopeWorkgroup, r, c, gl_MatrixUseAccumulator>

// ST = 1: K tile rows 0..BC-1, V tile rows BC..2BC-1, as f16vec4 (coopMatLoad counts in array elements)
shared f16vec4 kvs[ST != 0u ? 2u * BC * LDK : 1u];
uvec4 pk[NLD], pv[NLD];

// the tile at kb into registers (positions at or past kmax as zeros: stale cache rows may hold NaN)
void fetch(const int kb, const int kmax, const uint base8)
{
    [[unroll]] for (uint u = 0u; u < NLD; u++) {
        const uint i = gl_LocalInvocationID.x + u * WG, c = i / (HD / 8u), j = i % (HD / 8u);
        const int key = kb + int(c);
        const bool ok = i < BC * (HD / 8u) && key < kmax;
        pk[u] = ok ? k8[base8 + uint(key) * (HD / 8u) + j] : uvec4(0u);
        pv[u] = ok ? v8[base8 + uint(key) * (HD / 8u) + j] : uvec4(0u);
    }
}

void stash()
{
    [[unroll]] for (uint u = 0u; u < NLD; u++) {
        const uint i = gl_LocalInvocationID.x + u * WG, c = i / (HD / 8u), j = i % (HD / 8u);
        if (i < BC * (HD / 8u)) {
            kvs[c * LDK + 2u * j] = f16vec4(unpackFloat2x16(pk[u].x), unpackFloat2x16(pk[u].y));
            kvs[c * LDK + 2u * j + 1u] = f16vec4(unpackFloat2x16(pk[u].z), unpackFloat2x16(pk[u].w));
            kvs[(BC + c) * LDK + 2u * j] = f16vec4(unpackFloat2x16(pv[u].x), unpackFloat2x16(pv[u].y));
            kvs[(BC + c) * LDK + 2u * j + 1u] = f16vec4(unpackFloat2x16(pv[u].z), unpackFloat2x16(pv[u].w));
        }
    }
}

float op_max(const in float a, const in float b) { return max(a, b); }
float op_add(const in float a, const in float b) { return a + b; }

// row r is token q0-relative r / GH: pairs past the row's position or before its window are -inf
float el_mask(const in uint r, const in uint c, const in float s, const in int q0, const in int kb, const in int win)
{
    const int qpos = q0 + int(r / GH), key = kb + int(c);
    return (key > qpos || (win > 0 && key <= qpos - win)) ? uintBitsToFloat(0xff800000u) : s;
}
float el_max(const in uint r, const in uint c, const in float a, const in float b) { return max(a, b); }
float el_exp(const in uint r, const in uint c, const in float s, const in float m) { return exp2(s - m); }
float el_div(const in uint r, const in uint c, const in float o, const in float l) { return l > 0.0 ? o / l : 0.0; }

void main()
{
    // the longest row tiles (last tokens: the most positions) start first, the short ones fill in
    const uint t0 = (gl_NumWorkGroups.x - 1u - gl_WorkGroupID.x) * BT;
    const uint h0 = gl_WorkGroupID.y * GH, kvh = h0 / p.group;
    const int L = int(min(len[0], p.ctx));
    const int p0 = L - int(p.n_tok);
    const uint tl = min(t0 + BT, p.n_tok) - 1u; // last real token of the tile
    const int q0 = p0 + int(t0), qlast = p0 + int(tl);
    const int win = int(p.window);
    const int kmin = win > 0 ? max(0, q0 - win + 1) : 0;
    const int kmax = max(qlast + 1, 0);

    tensorLayoutNV<3, gl_CooperativeMatrixClampModeConstantNV> lq = createTensorLayoutNV(3, gl_CooperativeMatrixClampModeConstantNV);
    lq = setTensorLayoutDimensionNV(lq, p.n_tok, p.n_q, HD);
    ACC(BR, HD) qf;
    coopMatLoadTensorNV(qf, qb, 0, sliceTensorLayoutNV(lq, t0, BT, h0, GH, 0, HD));
    qf = qf * p.scale;
    const coopmat<float16_t, gl_ScopeWorkgroup, BR, HD, gl_MatrixUseA> qa = coopmat<float16_t, gl_ScopeWorkgroup, BR, HD, gl_MatrixUseA>(qf);

    // this KV head's positions [0, kmax): later ones (future or stale cache rows) read as 0
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lk = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    lk = setTensorLayoutDimensionNV(lk, uint(kmax), HD);
    const tensorViewNV<2, false, 1, 0> tr = createTensorViewNV(2, false, 1, 0); // K rows are K^T's columns
    const uint kvoff = kvh * p.ctx * HD;

    ACC(BR, HD) o = ACC(BR, HD)(0.0);
    ACC(BR, BC) m = ACC(BR, BC)(-1e30), l = ACC(BR, BC)(0.0);
    const uint base8 = kvoff / 8u;
    if (ST != 0u) fetch(kmin, kmax, base8);
    for (int kb = kmin; kb < kmax; kb += int(BC)) {
        coopmat<float16_t, gl_ScopeWorkgroup, HD, BC, gl_MatrixUseB> kt;
        if (ST != 0u) {
            barrier(); // every thread is done with the previous tile
            stash();
            barrier();
            if (kb + int(BC) < kmax) fetch(kb + int(BC), kmax, base8); // in flight during this tile's products
            coopMatLoad(kt, kvs, 0u, LDK, gl_CooperativeMatrixLayoutColumnMajor); // K rows = K^T columns
        } else {
            coopMatLoadTensorNV(kt, kc, kvoff, sliceTensorLayoutNV(lk, kb, BC, 0, HD), tr);
        }
        ACC(BR, BC) s = ACC(BR, BC)(0.0);
        s = coopMatMulAdd(qa, kt, s);
        // a pair of this tile may be disallowed only if its last key is past the first row's position
        // (the diagonal, and the zero rows past kmax) or its first key is outside the last row's window
        if (kb + int(BC) - 1 > q0 || (win > 0 && kb <= qlast - win)) coopMatPerElementNV(s, s, el_mask, q0, kb, win);

        ACC(BR, BC) rm, mn;
        coopMatReduceNV(rm, s, gl_CooperativeMatrixReduceRowNV, op_max);
        coopMatPerElementNV(mn, rm, el_max, m);
        coopMatPerElementNV(s, s, el_exp, mn);  // P
        coopMatReduceNV(rm, s, gl_CooperativeMatrixReduceRowNV, op_add);
        coopMatPerElementNV(m, m, el_exp, mn);  // alpha = exp2(m_old - m_new)
        l = l * m + rm;
        ACC(BR, HD) ao;
        coopMatReduceNV(ao, m, gl_CooperativeMatrixReduceRowNV, op_max); // alpha, smeared to O's shape
        o = o * ao;
        m = mn;

        const coopmat<float16_t, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseA> pa = coopmat<float16_t, gl_ScopeWorkgroup, BR, BC, gl_MatrixUseA>(s);
        coopmat<float16_t, gl_ScopeWorkgroup, BC, HD, gl_MatrixUseB> vt;
        if (ST != 0u) coopMatLoad(vt, kvs, BC * LDK, LDK, gl_CooperativeMatrixLayoutRowMajor);
        else coopMatLoadTensorNV(vt, vc, kvoff, sliceTensorLayoutNV(lk, kb, BC, 0, HD));
        o = coopMatMulAdd(pa, vt, o);
    }

    ACC(BR, HD) lo;
    coopMatReduceNV(lo, l, gl_CooperativeMatrixReduceRowNV, op_max);
    coopMatPerElementNV(o, o, el_div, lo);
    // clamped: rows of tokens past n_tok are dropped
    tensorLayoutNV<3, gl_CooperativeMatrixClampModeConstantNV> lout = createTensorLayoutNV(3, gl_CooperativeMatrixClampModeConstantNV);
    lout = setTensorLayoutDimensionNV(lout, p.n_tok, p.n_q, HD);
    coopMatStoreTensorNV(o, ob, 0, sliceTensorLayoutNV(lout, t0, BT, h0, GH, 0, HD));
}
