#version 450
// Prefill attention with GL_KHR_cooperative_matrix (fp16 inputs, fp32 accumulate), same contract as
// attn_prefill.comp: out[t][h][:] = softmax over allowed k of (scale q[t][h] . K[h/G][k]) V[h/G][k],
// query row t at position L - n_tok + t (L = min(len[0], ctx) from a device buffer), causal, optional
// sliding window (k > qpos - window), online softmax over key tiles (no score matrix in memory).
//
// Layout: q, out float32 [n_tok][n_q][HD]; k, v fp16 [n_kv][ctx][HD] (uvec4 = 8 halves).
// Workgroup: NSG subgroups (WG = NSG * subgroup size, spec constant 0), each with RB 16-row blocks
// (spec constant 4): BR = 16 * RB * NSG query rows of one query head; subgroup s owns rows
// RS s .. RS s + RS - 1, RS = 16 RB. Per key tile of BC positions (spec constant 5, 32 by default):
//   - all threads copy the K and V tiles (fp16, no conversion) into shared memory from registers
//     loaded during the previous tile's products (one tile of prefetch; PF = 0, spec constant 6:
//     loaded right before, fewer registers); one barrier;
//   - S (RS x BC) = Q_s (fp16 A matrices kept in registers, pre-scaled by scale * log2 e) x K^T:
//     each K fragment loaded from shared memory serves the RB row blocks (shared-memory reads per
//     product fall as 1 / RB), fp32 accumulators stored to shared memory;
//   - online softmax in scalar code, SGS / 16 lanes per row (SGS = subgroup size, spec constant 3;
//     below 16, 16 / SGS rows per lane), columns rotated by row against bank conflicts, scores in
//     registers: masking, row max through subgroup shuffles, P = exp2(S - m) written as fp16, the
//     rescale factor per row written over the row's first 16 scores;
//   - O (RS x HD, fp32 accumulators) *= the rescale (a 16 x 16 matrix whose element (r, c) is
//     alpha[r], loaded from the score area, multiplied component-wise), then O += P x V, each V
//     fragment serving the RB row blocks. (Element-to-lane mapping of KHR matrices is opaque, hence
//     the detour.)
// Only 16x16x16 f16 x f16 -> f32 subgroup-scope shapes are used (the host checks). HD % 16 == 0.
// Error against the float64 reference: Q and P are rounded to fp16 (relative 2^-11 each), K and V
// are fp16 already; accumulation is fp32.
// Shared memory: K and V tiles 2 * BC * (HD + 8) * 2 B (which also stage Q, 2 BC rows per pass),
// S NSG * RS * BC * 4 B, P NSG * RS * (BC + 8) * 2 B: 30.4 KiB at HD 128, NSG 4, RB 1 (43.4 at RB 2).
// CM_EMU = 1 builds the same kernel with every matrix operation emulated in scalar code through
// shared memory (lane i holds elements i, i + SGS, ... of a 16 x 16 matrix): slow, for tests on devices
// without cooperative matrices, so the tiling, masking, softmax and indexing above are checked
// everywhere; the host runs it with NSG = 2 (its scratch adds NSG * 2 KiB).
// Per call: FLOPs 4 * n_q * HD * (allowed pairs) (causal: about n_tok^2 / 2 pairs per head).
// H100 (driver 580, Phi-4 40/10 x 128, causal, bench-attn): 20.5 / 32.9 / 37.6 TFLOP/s at T = 512 /
// 2048 / 8192 (torch SDPA fp16: ~55 / 300-350 / 560-580). NSG 8 is +4% at 8192; RB 2 and BC 64
// are slower. KHR subgroup matrices through shared memory (mma.sync-class), a scalar softmax through
// shared memory and two workgroup barriers per key tile; GL_NV_cooperative_matrix2 (row reductions
// on the accumulator, tensor loads) is the next step.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#ifndef CM_EMU
#define CM_EMU 0
#endif
#if CM_EMU
#extension GL_EXT_control_flow_attributes : require
#else
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint HD = 128;
layout(constant_id = 2) const uint NSG = 4; // subgroups per workgroup
layout(constant_id = 3) const uint SGS = 32; // subgroup size (pinned by the host where it may vary)
layout(constant_id = 4) const uint RB = 1;  // 16-row blocks per subgroup
layout(constant_id = 5) const uint BC = 32; // key positions per tile (16, 32 or 64)
layout(constant_id = 6) const uint PF = 1;  // 1: next K/V tile loaded into registers during this tile's products

const uint RS = 16 * RB;  // rows per subgroup
const uint BR = RS * NSG;
const uint LDK4 = HD / 4 + 2; // f16vec4 per shared K/V/Q row (16 bytes of padding against bank conflicts)
const uint LDP = BC + 8;  // halves per shared P row
const uint ND = HD / 16;  // 16-wide column blocks of Q, K, V, O
const uint NC = BC / 16;  // 16-wide column blocks of S
const uint LPR = SGS >= 16 ? SGS / 16 : 1; // softmax lanes per row
const uint RPL = SGS >= 16 ? 1 : 16 / SGS; // softmax rows per lane
const uint CPL = BC / LPR;                 // score columns per softmax lane

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
layout(std430, binding = 4) writeonly buffer O { float outf[]; };

// K tile then V tile (the Q tile before the first key tile) as f16vec4, matching the matrices'
// component type; the matrix loads count offsets and strides in f16vec4 units.
shared f16vec4 kvs[2 * BC * LDK4];
// scores per subgroup; also, in each row's first 16 columns, the per-row factor matrices (element
// (r, c) = factor of row r) and the output staging at the end
shared float ss[NSG * RS * BC];
shared float16_t ps[NSG * RS * LDP];

#if !CM_EMU
#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define MAT_ACC(n) ACC n
#define MAT_ACC_ARR(n, k) ACC n[k]
#define MAT_A(n) coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> n
#define MAT_A_ARR(n, k) coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> n[k]
#define MAT_B(n) coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> n
#define ACC_ZERO(x) x = ACC(0.0)
#define LOAD_V4_ROW(x, buf, off, st) coopMatLoad(x, buf, off, st, gl_CooperativeMatrixLayoutRowMajor)
#define LOAD_V4_COL(x, buf, off, st) coopMatLoad(x, buf, off, st, gl_CooperativeMatrixLayoutColumnMajor)
#define LOAD_ROW(x, buf, off, st) coopMatLoad(x, buf, off, st, gl_CooperativeMatrixLayoutRowMajor)
#define STORE_ROW(x, buf, off, st) coopMatStore(x, buf, off, st, gl_CooperativeMatrixLayoutRowMajor)
#define MULADD(c, a, b) c = coopMatMulAdd(a, b, c)
#define ACC_MUL(x, y) x = x * y
#else
// Lane i holds elements e = i + SGS * j (row e / 16, column e % 16) of each 16 x 16 matrix.
const uint EPL = 256 / SGS;
shared float emu_a[NSG * 256], emu_b[NSG * 256];
#define MAT_ACC(n) float n[EPL]
#define MAT_ACC_ARR(n, k) float n[k][EPL]
#define MAT_A(n) float n[EPL]
#define MAT_A_ARR(n, k) float n[k][EPL]
#define MAT_B(n) float n[EPL]
#define EMU_FOR [[dont_unroll]] for (uint j_ = 0, e_ = lane, r_ = lane / 16, c_ = lane % 16; j_ < EPL; j_++, e_ += SGS, r_ = e_ / 16, c_ = e_ % 16)
#define ACC_ZERO(x) EMU_FOR x[j_] = 0.0
#define LOAD_V4_ROW(x, buf, off, st) EMU_FOR { const uint h_ = (off) * 4 + r_ * (st) * 4 + c_; x[j_] = float(buf[h_ / 4][h_ % 4]); }
#define LOAD_V4_COL(x, buf, off, st) EMU_FOR { const uint h_ = (off) * 4 + c_ * (st) * 4 + r_; x[j_] = float(buf[h_ / 4][h_ % 4]); }
#define LOAD_ROW(x, buf, off, st) EMU_FOR x[j_] = float(buf[(off) + r_ * (st) + c_])
#define STORE_ROW(x, buf, off, st) EMU_FOR buf[(off) + r_ * (st) + c_] = x[j_]
#define MULADD(c, a, b) { \
    EMU_FOR { emu_a[sg * 256 + e_] = a[j_]; emu_b[sg * 256 + e_] = b[j_]; } \
    subgroupMemoryBarrierShared(); subgroupBarrier(); \
    EMU_FOR { float s_ = 0.0; [[dont_unroll]] for (uint k_ = 0; k_ < 16; k_++) s_ += emu_a[sg * 256 + r_ * 16 + k_] * emu_b[sg * 256 + k_ * 16 + c_]; c[j_] += s_; } \
    subgroupMemoryBarrierShared(); subgroupBarrier(); }
#define ACC_MUL(x, y) EMU_FOR x[j_] *= y[j_]
#endif

// The next K/V tile travels through registers: its global loads are issued before the current
// tile's products, stored to shared memory after them.
const uint NLD = (BC * (HD / 8) + WG - 1) / WG;
uvec4 pk[NLD], pv[NLD];

void fetch(int kb, int kmax, uint head_base)
{
    for (uint u = 0; u < NLD; u++) {
        const uint i = gl_LocalInvocationID.x + u * WG;
        const uint c = i / (HD / 8), j = i % (HD / 8);
        const int key = kb + int(c);
        const bool ok = i < BC * (HD / 8) && key < kmax;
        pk[u] = ok ? k8[(head_base + uint(key)) * (HD / 8) + j] : uvec4(0);
        pv[u] = ok ? v8[(head_base + uint(key)) * (HD / 8) + j] : uvec4(0);
    }
}

void stash()
{
    for (uint u = 0; u < NLD; u++) {
        const uint i = gl_LocalInvocationID.x + u * WG;
        if (i >= BC * (HD / 8)) break;
        const uint c = i / (HD / 8), j = i % (HD / 8);
        kvs[c * LDK4 + 2 * j] = f16vec4(unpackFloat2x16(pk[u].x), unpackFloat2x16(pk[u].y));
        kvs[c * LDK4 + 2 * j + 1] = f16vec4(unpackFloat2x16(pk[u].z), unpackFloat2x16(pk[u].w));
        kvs[(BC + c) * LDK4 + 2 * j] = f16vec4(unpackFloat2x16(pv[u].x), unpackFloat2x16(pv[u].y));
        kvs[(BC + c) * LDK4 + 2 * j + 1] = f16vec4(unpackFloat2x16(pv[u].z), unpackFloat2x16(pv[u].w));
    }
}

void main()
{
    const uint tid = gl_LocalInvocationID.x;
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint part = lane / 16; // which of the LPR lanes of a row (0 when SGS <= 16)
    // the longest row tiles (last rows: the most positions) start first, the short ones fill in
    const uint row0 = (gl_NumWorkGroups.x - 1 - gl_WorkGroupID.x) * BR, h = gl_WorkGroupID.y;
    const uint kvh = h / p.group;
    const int L = int(min(len[0], p.ctx));
    const int p0 = L - int(p.n_tok);
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    // Q tile (fp16, pre-scaled) through the K/V area, 2 BC rows per pass, then into registers
    MAT_A_ARR(qa, RB * ND);
    for (uint pr = 0; pr < BR; pr += 2 * BC) {
        if (pr > 0) barrier();
        for (uint i = tid; i < 2 * BC * (HD / 8); i += WG) {
            const uint rr = i / (HD / 8), c = i % (HD / 8);
            const uint row = row0 + pr + rr;
            vec4 a = vec4(0.0), b = vec4(0.0);
            if (pr + rr < BR && row < p.n_tok) {
                a = q4[(row * p.n_q + h) * (HD / 4) + 2 * c] * p.scale;
                b = q4[(row * p.n_q + h) * (HD / 4) + 2 * c + 1] * p.scale;
            }
            kvs[rr * LDK4 + 2 * c] = f16vec4(a);
            kvs[rr * LDK4 + 2 * c + 1] = f16vec4(b);
        }
        barrier();
        for (uint rb = 0; rb < RB; rb++) {
            const uint r16 = sg * RS + rb * 16; // first row of the block in the tile
            if (r16 >= pr && r16 < pr + 2 * BC)
                for (uint d = 0; d < ND; d++) LOAD_V4_ROW(qa[rb * ND + d], kvs, (r16 - pr) * LDK4 + d * 4, LDK4);
        }
    }
    MAT_ACC_ARR(o, RB * ND);
    for (uint d = 0; d < RB * ND; d++) ACC_ZERO(o[d]);

    // softmax rows of this lane, in each row block rb: (lane % 16) + SGS * k, k < RPL
    int qpos[RB * RPL], lo_r[RB * RPL];
    bool live[RB * RPL];
    float m[RB * RPL], l[RB * RPL];
    for (uint k = 0; k < RB * RPL; k++) {
        const uint row = row0 + sg * RS + (k / RPL) * 16 + lane % 16 + SGS * (k % RPL);
        qpos[k] = p0 + int(row);
        live[k] = row < p.n_tok && qpos[k] >= 0;
        lo_r[k] = p.window > 0 ? max(0, qpos[k] - int(p.window) + 1) : 0;
        m[k] = NEG_INF;
        l[k] = 0.0;
    }
    const uint last_row = min(row0 + BR, p.n_tok) - 1;
    const int first_q = p0 + int(row0);
    const int kmin = p.window > 0 ? max(0, first_q - int(p.window) + 1) : 0;
    const int kmax = p0 + int(last_row) + 1;
    const uint head_base = kvh * p.ctx;
    const uint sbase = sg * RS * BC, pbase = sg * RS * LDP;

    fetch(kmin, kmax, head_base);
    for (int kb = kmin; kb < kmax; kb += int(BC)) {
        barrier(); // every subgroup is done with the previous tile (and with the Q staging)
        if (PF == 0 && kb != kmin) fetch(kb, kmax, head_base);
        stash();
        barrier();
        if (PF != 0 && kb + int(BC) < kmax) fetch(kb + int(BC), kmax, head_base); // in flight during this tile's products

        // S = Q K^T (K row-major in shared = K^T column-major); each K fragment serves RB row blocks
        for (uint n = 0; n < NC; n++) {
            MAT_ACC_ARR(s, RB);
            for (uint rb = 0; rb < RB; rb++) ACC_ZERO(s[rb]);
            for (uint d = 0; d < ND; d++) {
                MAT_B(kb_);
                LOAD_V4_COL(kb_, kvs, (n * 16) * LDK4 + d * 4, LDK4);
                for (uint rb = 0; rb < RB; rb++) MULADD(s[rb], qa[rb * ND + d], kb_);
            }
            for (uint rb = 0; rb < RB; rb++) STORE_ROW(s[rb], ss, sbase + rb * 16 * BC + n * 16, BC);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // online softmax: this lane takes columns part + LPR j' of its rows, j' = (j + r) % CPL for
        // j < CPL: rotated by the row so that the 16 rows' lanes hit different shared-memory banks
        // (rows are BC floats apart: unrotated, all 16 would read one bank); scores stay in registers.
        // The row's factor goes to the first 16 columns of its own score row: each cell is written by
        // the lane that read it (same column parity), so no other lane's read is overtaken.
        for (uint k = 0; k < RB * RPL; k++) {
            const uint r = (k / RPL) * 16 + lane % 16 + SGS * (k % RPL); // row within the subgroup's rows
            float sv[CPL];
            float tmax = NEG_INF;
            for (uint j = 0; j < CPL; j++) {
                const uint c = part + LPR * ((j + r) % CPL);
                const int key = kb + int(c);
                const bool ok = live[k] && key <= qpos[k] && key >= lo_r[k] && key < kmax;
                sv[j] = ok ? ss[sbase + r * BC + c] : NEG_INF;
                tmax = max(tmax, sv[j]);
            }
            for (uint off = 16; off < SGS; off *= 2) tmax = max(tmax, subgroupShuffleXor(tmax, off));
            const float mn = max(m[k], tmax);
            const bool none = mn == NEG_INF; // nothing allowed for this row yet
            const float alpha = none ? 1.0 : exp2(m[k] - mn);
            float sum = 0.0;
            for (uint j = 0; j < CPL; j++) {
                const uint c = part + LPR * ((j + r) % CPL);
                const float pe = none ? 0.0 : exp2(sv[j] - mn);
                ps[pbase + r * LDP + c] = float16_t(pe);
                sum += pe;
            }
            for (uint off = 16; off < SGS; off *= 2) sum += subgroupShuffleXor(sum, off);
            l[k] = l[k] * alpha + sum;
            m[k] = mn;
            for (uint j = 0; j < 16 / LPR; j++) ss[sbase + r * BC + part + LPR * ((j + r) % (16 / LPR))] = alpha;
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // O = diag(alpha) O + P V; each V fragment serves RB row blocks
        for (uint rb = 0; rb < RB; rb++) {
            MAT_ACC(am);
            LOAD_ROW(am, ss, sbase + rb * 16 * BC, BC); // (r, c) = alpha[r]
            for (uint d = 0; d < ND; d++) ACC_MUL(o[rb * ND + d], am);
        }
        for (uint kk = 0; kk < NC; kk++) {
            MAT_A_ARR(pa, RB);
            for (uint rb = 0; rb < RB; rb++) LOAD_ROW(pa[rb], ps, pbase + rb * 16 * LDP + kk * 16, LDP);
            for (uint d = 0; d < ND; d++) {
                MAT_B(vb);
                LOAD_V4_ROW(vb, kvs, (BC + kk * 16) * LDK4 + d * 4, LDK4);
                for (uint rb = 0; rb < RB; rb++) MULADD(o[rb * ND + d], pa[rb], vb);
            }
        }
        subgroupMemoryBarrierShared(); // the next tile's score stores overwrite the factors
        subgroupBarrier();
    }

    // out = O / l, through the subgroup's score area (rows past n_tok are not written)
    subgroupBarrier();
    for (uint k = 0; k < RB * RPL; k++) {
        const uint r = (k / RPL) * 16 + lane % 16 + SGS * (k % RPL);
        for (uint c = part; c < 16; c += LPR) ss[sbase + r * BC + c] = l[k] > 0.0 ? 1.0 / l[k] : 0.0;
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    for (uint rb = 0; rb < RB; rb++) {
        MAT_ACC(inv);
        LOAD_ROW(inv, ss, sbase + rb * 16 * BC, BC);
        for (uint d = 0; d < ND; d++) ACC_MUL(o[rb * ND + d], inv);
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    for (uint d = 0; d < ND; d++) {
        for (uint rb = 0; rb < RB; rb++) STORE_ROW(o[rb * ND + d], ss, sbase + rb * 256, 16); // RS x 16, row-major
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        for (uint e = lane; e < RS * 16; e += SGS) {
            const uint orow = row0 + sg * RS + e / 16;
            if (orow < p.n_tok) outf[(orow * p.n_q + h) * HD + d * 16 + e % 16] = ss[sbase + e];
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }
}
