#version 450
// Prefill attention with GL_KHR_cooperative_matrix (fp16 inputs, fp32 accumulate), same contract as
// attn_prefill.comp: out[t][h][:] = softmax over allowed k of (scale q[t][h] . K[h/G][k]) V[h/G][k],
// query row t at position L - n_tok + t (L = min(len[0], ctx) from a device buffer), causal, optional
// sliding window (k > qpos - window), online softmax over key tiles (no score matrix in memory).
//
// Layout: q, out float32 [n_tok][n_q][HD]; k, v fp16 [n_kv][ctx][HD] (uvec4 = 8 halves).
// Workgroup: NSG subgroups (WG = NSG * subgroup size, spec constant 0), BR = 16 * NSG query rows of one
// query head; subgroup s owns rows 16 s .. 16 s + 15. Per key tile of BC = 32 positions:
//   - all threads copy the K and V tiles (fp16, no conversion) into shared memory from registers
//     loaded during the previous tile's products (one tile of prefetch); one barrier;
//   - S (16 x BC) = Q_s (16 x HD, fp16 A matrices kept in registers, pre-scaled by scale * log2 e)
//     x K^T: HD/16 x BC/16 16x16x16 products into fp32 accumulators, stored to shared memory;
//   - online softmax in scalar code, gl_SubgroupSize / 16 lanes per row (masking, row max through
//     subgroup shuffles, P = exp2(S - m) written as fp16, the rescale factor per row);
//   - O (16 x HD, fp32 accumulators) *= the rescale (a 16 x 16 matrix whose element (r, c) is
//     alpha[r], written to shared memory by the softmax lanes, multiplied component-wise), then
//     O += P x V.  (Element-to-lane mapping of KHR matrices is opaque, hence the detour.)
// Only 16x16x16 f16 x f16 -> f32 subgroup-scope shapes are used (the host checks). HD % 16 == 0.
// Error against the float64 reference: Q and P are rounded to fp16 (relative 2^-11 each), K and V
// are fp16 already; accumulation is fp32.
// Shared memory: K and V tiles 2 * BC * (HD + 8) * 2 B (reused for the Q staging of BR rows, which
// needs BR * (HD + 8) * 2 B: BR <= 2 * BC), S NSG * 16 * BC * 4 B, P NSG * 16 * (BC + 8) * 2 B,
// factors NSG * 1 KiB: 30.9 KiB at HD 128, NSG 4.
// Per call: FLOPs 4 * n_q * HD * (allowed pairs) (causal: about n_tok^2 / 2 pairs per head).
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint HD = 128;
layout(constant_id = 2) const uint NSG = 4; // subgroups per workgroup

const uint BR = 16 * NSG;
const uint BC = 32;
const uint LDK4 = HD / 4 + 2; // f16vec4 per shared K/V/Q row (16 bytes of padding against bank conflicts)
const uint LDP = BC + 8;  // halves per shared P row
const uint ND = HD / 16;  // 16-wide column blocks of Q, K, V, O
const uint NC = BC / 16;  // 16-wide column blocks of S

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
shared float ss[NSG * 16 * BC];     // scores per subgroup; the output staging at the end
shared float16_t ps[NSG * 16 * LDP];
shared float rowm[NSG * 256];       // 16 x 16 per subgroup, every column = the per-row factor

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define MATA coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MATB coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>

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
    const uint LPR = gl_SubgroupSize / 16; // lanes per row in the softmax
    const uint r = lane % 16, part = lane / 16;
    // the longest row tiles (last rows: the most positions) start first, the short ones fill in
    const uint row0 = (gl_NumWorkGroups.x - 1 - gl_WorkGroupID.x) * BR, h = gl_WorkGroupID.y;
    const uint kvh = h / p.group;
    const int L = int(min(len[0], p.ctx));
    const int p0 = L - int(p.n_tok);
    const float NEG_INF = uintBitsToFloat(0xff800000u);

    // Q tile (fp16, pre-scaled) through the K/V area, then into registers
    for (uint i = tid; i < BR * (HD / 8); i += WG) {
        const uint rr = i / (HD / 8), c = i % (HD / 8);
        const uint row = row0 + rr;
        vec4 a = vec4(0.0), b = vec4(0.0);
        if (row < p.n_tok) {
            a = q4[(row * p.n_q + h) * (HD / 4) + 2 * c] * p.scale;
            b = q4[(row * p.n_q + h) * (HD / 4) + 2 * c + 1] * p.scale;
        }
        kvs[rr * LDK4 + 2 * c] = f16vec4(a);
        kvs[rr * LDK4 + 2 * c + 1] = f16vec4(b);
    }
    barrier();
    MATA qa[ND];
    for (uint d = 0; d < ND; d++) coopMatLoad(qa[d], kvs, (sg * 16) * LDK4 + d * 4, LDK4, gl_CooperativeMatrixLayoutRowMajor);
    ACC o[ND];
    for (uint d = 0; d < ND; d++) o[d] = ACC(0.0);

    const uint row = row0 + sg * 16 + r;
    const int qpos = p0 + int(row);
    const bool live = row < p.n_tok && qpos >= 0;
    const int lo_r = p.window > 0 ? max(0, qpos - int(p.window) + 1) : 0;
    const uint last_row = min(row0 + BR, p.n_tok) - 1;
    const int first_q = p0 + int(row0);
    const int kmin = p.window > 0 ? max(0, first_q - int(p.window) + 1) : 0;
    const int kmax = p0 + int(last_row) + 1;
    float m = NEG_INF, l = 0.0;
    const uint head_base = kvh * p.ctx;
    const uint sbase = sg * 16 * BC, pbase = sg * 16 * LDP;

    fetch(kmin, kmax, head_base);
    for (int kb = kmin; kb < kmax; kb += int(BC)) {
        barrier(); // every subgroup is done with the previous tile (and with the Q staging)
        stash();
        barrier();
        if (kb + int(BC) < kmax) fetch(kb + int(BC), kmax, head_base); // in flight during this tile's products

        // S = Q K^T (K row-major in shared = K^T column-major)
        for (uint n = 0; n < NC; n++) {
            ACC s = ACC(0.0);
            for (uint d = 0; d < ND; d++) {
                MATB kb_;
                coopMatLoad(kb_, kvs, (n * 16) * LDK4 + d * 4, LDK4, gl_CooperativeMatrixLayoutColumnMajor);
                s = coopMatMulAdd(qa[d], kb_, s);
            }
            coopMatStore(s, ss, sbase + n * 16, BC, gl_CooperativeMatrixLayoutRowMajor);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // online softmax of row r: this lane takes columns part, part + LPR, ...
        float tmax = NEG_INF;
        for (uint c = part; c < BC; c += LPR) {
            const int key = kb + int(c);
            const bool ok = live && key <= qpos && key >= lo_r && key < kmax;
            const float sv = ok ? ss[sbase + r * BC + c] : NEG_INF;
            ss[sbase + r * BC + c] = sv;
            tmax = max(tmax, sv);
        }
        for (uint off = 16; off < gl_SubgroupSize; off *= 2) tmax = max(tmax, subgroupShuffleXor(tmax, off));
        const float mn = max(m, tmax);
        const bool none = mn == NEG_INF; // nothing allowed for this row yet
        const float alpha = none ? 1.0 : exp2(m - mn);
        float sum = 0.0;
        for (uint c = part; c < BC; c += LPR) {
            const float pe = none ? 0.0 : exp2(ss[sbase + r * BC + c] - mn);
            ps[pbase + r * LDP + c] = float16_t(pe);
            sum += pe;
        }
        for (uint off = 16; off < gl_SubgroupSize; off *= 2) sum += subgroupShuffleXor(sum, off);
        l = l * alpha + sum;
        m = mn;
        for (uint c = part; c < 16; c += LPR) rowm[sg * 256 + r * 16 + c] = alpha;
        subgroupMemoryBarrierShared();
        subgroupBarrier();

        // O = diag(alpha) O + P V
        ACC am;
        coopMatLoad(am, rowm, sg * 256, 16, gl_CooperativeMatrixLayoutRowMajor); // (r, c) = alpha[r]
        for (uint d = 0; d < ND; d++) o[d] = o[d] * am;
        for (uint kk = 0; kk < NC; kk++) {
            MATA pa;
            coopMatLoad(pa, ps, pbase + kk * 16, LDP, gl_CooperativeMatrixLayoutRowMajor);
            for (uint d = 0; d < ND; d++) {
                MATB vb;
                coopMatLoad(vb, kvs, (BC + kk * 16) * LDK4 + d * 4, LDK4, gl_CooperativeMatrixLayoutRowMajor);
                o[d] = coopMatMulAdd(pa, vb, o[d]);
            }
        }
    }

    // out = O / l, through the subgroup's score area (rows past n_tok are not written)
    subgroupBarrier();
    for (uint c = part; c < 16; c += LPR) rowm[sg * 256 + r * 16 + c] = l > 0.0 ? 1.0 / l : 0.0;
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    ACC inv;
    coopMatLoad(inv, rowm, sg * 256, 16, gl_CooperativeMatrixLayoutRowMajor);
    for (uint d = 0; d < ND; d++) {
        coopMatStore(o[d] * inv, ss, sbase, 16, gl_CooperativeMatrixLayoutRowMajor);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        for (uint e = lane; e < 256; e += gl_SubgroupSize) {
            const uint orow = row0 + sg * 16 + e / 16;
            if (orow < p.n_tok) outf[(orow * p.n_q + h) * HD + d * 16 + e % 16] = ss[sbase + e];
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }
}
