#version 450
// Decode mat-vec with 8-bit activations and integer dot products:
//   y[v][o] = sum_i W[o][i] * Q8(P(x[v]))[i]  (+ r[v][o] when HAS_RES), v < NV (1..8).
// P is the prologue (PRO, constant 6): 0 none, 1 RMSNorm x[i] * g[i] / sqrt(mean(x^2) + eps),
// 2 SwiGLU silu(x[i]) * x[up_offset + i]. Q8 quantizes per block of 32 elements exactly as
// vkllm_ref_quantize_q8_act (host/ref/matvec_q8.c): amax = max|x'|, d = amax / 127, id = 1 / d
// (0 when amax == 0), q = round-half-away-from-zero(x' * id) clamped to [-127, 127], all in float32.
// Every workgroup reads the whole x (from L2) and quantizes it into shared memory in a prologue
// (codes, d, d * sum(q) per 32, the two 16-element sums of q packed as int16): this replaces the
// rmsnorm/swiglu dispatch before the mat-vec, and its cost is amortized over the workgroup's ROWS rows.
// The weight codes then meet the x codes in dotPacked4x8AccSatEXT (OpSDot, 4 products + add per
// instruction, accelerated on NVIDIA): a Q4_K lane does w & 0x0f0f0f0f, (w >> 4) & 0x0f0f0f0f and
// two dots per 4 bytes of codes (the float kernel, kernels/matvec.comp, spent ~10 instructions per
// weight byte and was ALU-bound at 24-44% of the read ceiling on the H100). Codes are 0..63
// (unsigned) or -128..127 (Q8_0), so the signed dot is exact for every type; offsets (Q4_0 q-8,
// Q6_K q-32) and K-quant mins come from the per-block sums of the x codes.
// Integer sums become floats by the magic-number trick (|s| < 2^22: bits of 1.5*2^23 + s), not by
// int-to-float conversions (quarter rate on NVIDIA).
//
// Layout: W exactly as in GGUF, row o = output o, rows contiguous. x, y, r float32, vector v at
// v * {x,y,r}_stride elements (x_stride and up_offset multiples of 4; n_in = NIN, constant 7).
// Workgroup: ROWS / R groups of C lanes (constants 1, 2, 3); a group owns R consecutive rows, its
// C lanes take units u = lane, lane + C, ... of those rows and add up with subgroupShuffleXor.
// Units: Q4_K/Q5_K a sub-block pair (64 elements, 32 bytes of nibbles: two uvec4 loads straight
// from the buffer, 16-byte aligned since the blocks are 144/176 bytes; the 6-bit scales are
// unpacked once per pair); Q6_K a quarter block (64 elements: half t, 16 columns of its 4 groups);
// Q8_0/Q4_0 one block. Q6_K/Q8_0/Q4_0 blocks (210/34/18 bytes) are only 2-byte aligned: the group
// copies the 16-byte chunks covering its next C units of each row (coalesced uvec4 loads) into its
// own shared region and decodes from there (one subgroup barrier each way).
// The first units' weights are loaded before the prologue (their latency overlaps it) and each
// step's loads are issued before the previous step's arithmetic (two sets in flight per lane).
// Shared memory: NV * (NIN bytes of codes + 12 bytes per 32) + the staging regions; the host refuses
// what exceeds maxComputeSharedMemorySize (vkllm_matvec_q8_supported). XG=1: the staging regions only.
//
// Per call: reads the weight bytes once from memory, x (4*NIN*NV bytes, x2 for SwiGLU; XG=1: the
// 1.375*NIN*NV bytes of codes and scales) once per workgroup (from L2 after the first), writes
// 4*n_out*NV bytes (+ reads as many of r);
// FLOPs 2*n_in*n_out*NV. The benchmark divides the weight bytes by time.
//
// H100 (bench-matvec --q8 with warm-up, commit 83bb64b; docs/BENCHMARKS.md): far from the 85% aimed
// at. Best shapes: gate_up Q4_K + RMSNorm 56 us = 58% of the read ceiling (float kernel 73 us, a
// streaming read of the same weights 37 us = 88%), qkv Q5_K 19 us = 45% (float 27, stream 13),
// o Q4_K 14.4 us = 32% (float 17.3, stream 9.9 = 47%: small dispatches stay far from the ceiling),
// output Q6_K 211 us = 63% (float 214, stream 136), down Q6_K + SwiGLU 85 us = 28% (float 50: slower).
// What limits it, as far as measured: not the instruction count (~2.5 per weight byte); the second
// register set (PF) gained -1..25% (output most); more rows per workgroup won where the prologue's read of x is
// large against the weights (down reads 143 KB of gate/up per workgroup for 16 x 14.7 KB of weights).
// Next: split long rows over workgroups.
// XG=1 (modules matvec_q8x_*): x comes pre-quantized from a global buffer written by quant_q8.comp
// (binding 1: codes [NV][NIN] bytes, then (d, d*sum(q)) [NV][NIN/32] vec2, then the int16 half sums
// [NV][NIN/32]; layout in ops_matvec.h): no shared x, no prologue, no workgroup barrier, the lanes read
// their codes straight from L2 (1.375 bytes per element per workgroup instead of 4-8). PRO is ignored.
// Without the shared x, small workgroups fit many per SM: the H100 sweep (bench-matvec --q8x,
// docs/BENCHMARKS.md) put 8 rows x 2 per group x 16 lanes (64 invocations) first at every shape:
// gate_up Q4_K 41.9 us = 78% of the read ceiling (this prologue kernel: 56.3 us), output Q6_K 168.6 us
// = 79%, down Q6_K 38.4 us = 62%, qkv Q5_K 15.8 us = 54%, o Q4_K 11.5 us = 41%. The decode step takes
// this path (quant_q8 + matvec_q8x; vkllm_session_options.act_q8_global). Tried and dropped: the
// RMSNorm kept in factored form (the codes of x * g, 1 / rms applied by the reader from per-block sums
// of squares) so that a mat-vec's epilogue could quantize its own output for the next one (the last
// workgroup of each 32-block, found by a device-scope counter): correct, but the synchronization and
// the sums cost the mat-vecs more than the ~2.4 us dependent dispatch they saved (H100 tg128 139-159
// against 165-168 tokens/s). Also tried and dropped (fourth session, H100, binaries of 28a6572 with a
// variant): the quantization inside the mat-vec's own dispatch, by producer workgroups at the head of
// the grid that count themselves in a device-scope counter the mat-vec workgroups acquire after
// their first weight loads (no quant_q8 dispatch, no barrier before gate_up, down and the output).
// Correct (tests on lavapipe and the H100), but the codes must then be read through coherent loads
// (the Vulkan memory model's device-scope visibility without a barrier), which bypass L1: gate_up
// took 132.5 us against 45.4 + 5.9 for the pair, tg128 87 against 174-183 tokens/s. With plain
// loads (not guaranteed by the memory model, measured only) 53.8 us: the wait for the producers cost
// what the dispatch boundary had, tg128 165-168, no gain.
// The prologue and quantization are in common/q8act.glsl, shared with quant_q8.comp.
// ROPE=1 (with XG=1, modules matvec_q8x_rope_*; one vector, NEOX rotation over the whole head): the
// QKV projection with kv_write.comp's work in its epilogue, so the decode step needs no kv_write
// dispatch. n_out = (n_q + 2 n_kv) hd; the workgroup's ROWS rows are not consecutive in Q and K:
// logical row j of workgroup w (P = ROWS / 2 pairs; hd / 2 a multiple of P) is, within head
// h = w / (hd / 2P), element c P + j % P (c = w % (hd / 2P)), plus hd / 2 for j >= P, so every
// row's rotation partner (i, i + hd/2) is in the same workgroup; V rows stay in order. After the
// reduction the ROWS sums meet in shared memory and ROWS / 2 lanes each finish two adjacent
// elements: Q rotated (float32 to y = q [n_q][hd]), K rotated and V as fp16 pairs (one 32-bit
// word) into the caches at position pos[0] (none outside [0, ctx)). The angle is
// common/rope_angle.glsl's, in double (FP64 = 1 only; the host falls back to kv_write elsewhere).
// H100, Phi-4 QKV Q5_K in the decode step (vkllm profile, commit 8c37f28): 18.49 us against 17.7
// for the plain mat-vec plus 5.3 for the kv_write dispatch; tg128 @ d4096 +2.7-3.9%.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_integer_dot_product : require
#ifndef XG
#define XG 0
#endif
#ifndef ROPE
#define ROPE 0
#endif
#if ROPE && !XG
#error "ROPE needs XG"
#endif

layout(local_size_x_id = 0) in; // = (ROWS / R) * C
layout(constant_id = 1) const uint ROWS = 16; // rows per workgroup
layout(constant_id = 2) const uint R = 2;     // rows per lane group
layout(constant_id = 3) const uint C = 32;    // lanes per group: a power of two <= the subgroup size
layout(constant_id = 4) const uint NV = 1;
layout(constant_id = 5) const uint HAS_RES = 0;
layout(constant_id = 6) const uint PRO = 0;   // 0 none, 1 rmsnorm, 2 swiglu
layout(constant_id = 7) const uint NIN = 256; // n_in (sizes the shared arrays)
layout(constant_id = 8) const uint PF = 1;    // next step's weights loaded during this step's arithmetic

layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
#if XG
// one buffer view read as its three parts (aliased declarations of one binding)
layout(std430, binding = 1) readonly buffer XQ { uvec4 gq[]; };
layout(std430, binding = 1) readonly buffer XD { vec2 gd[]; };
layout(std430, binding = 1) readonly buffer XH { int gh[]; };
#else
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
#endif
layout(std430, binding = 2) buffer Y { float y[]; };
#if ROPE
layout(std430, binding = 3) readonly buffer Pos { int pos[]; };
layout(std430, binding = 4) readonly buffer Freq { vec2 inv_freq[]; };
layout(std430, binding = 5) writeonly buffer KC { uint kc[]; };
layout(std430, binding = 6) writeonly buffer VC { uint vc[]; };
#else
layout(std430, binding = 3) readonly buffer Res { float res[]; };
layout(std430, binding = 4) readonly buffer G4 { vec4 g4[]; };
#endif

layout(push_constant) uniform Params {
    uint n_out;
    uint row_c;    // Q4_K/Q5_K: uvec4s per row; staged types: halfwords per row
    uint x_stride; // elements
    uint y_stride;
    uint r_stride;
    uint up_offset; // SwiGLU: elements from gate to up
    float eps;
#if ROPE
    uint n_q, n_kv, hd, ctx;
    float attn_factor;
#endif
} p;

#include "common/reduce.glsl"
#include "common/q8act.glsl"
#if ROPE
#define FP64 1
#include "common/rope_angle.glsl"
shared float rsum[ROWS]; // the workgroup's row sums, logical order
// output row of logical row L (see ROPE above)
uint rope_row(uint L)
{
    const uint qk = (p.n_q + p.n_kv) * p.hd;
    if (L >= qk) return L;
    const uint P = ROWS / 2u, cph = p.hd / (2u * P), w = L / ROWS, j = L % ROWS;
    return (w / cph) * p.hd + (w % cph) * P + j % P + (j >= P ? p.hd / 2u : 0u);
}
#endif

const uint NB = NIN / 32u;           // x blocks per vector
#if XG
#define XQ(i) gq[i]
#define XDS(i) gd[NV * NIN / 8u + (i)]
#define XH(i) gh[NV * NIN / 4u + NV * NB * 2u + (i)]
#else
shared uvec4 xq[NV * NIN / 16u];     // x codes, 16 per uvec4; vector v at v * NIN / 16
shared vec2 xds[NV * NB];            // (d, d * sum(q)) per x block
shared int xh[NV * NB];              // the two 16-element sums of q, int16 each (Q6_K)
#define XQ(i) xq[i]
#define XDS(i) xds[i]
#define XH(i) xh[i]
#endif

// float(s) for |s| < 2^22 in two full-rate instructions
float fI(int s) { return intBitsToFloat(s + 0x4B400000) - 12582912.0; }

// fp16 bits (low 16 of x) to float, subnormals exact (block scales are often subnormal)
float half1(uint x)
{
    x &= 0xffffu;
    if ((x & 0x7c00u) != 0u) return unpackHalf2x16(x).x;
    const float m = float(x & 0x3ffu) * 5.9604644775390625e-8;
    return (x & 0x8000u) != 0u ? -m : m;
}

// ---- prologue: x' = P(x[v]) quantized into xq/xds/xh (8 lanes per 32-element block) ----
// RMSNorm takes two passes over x (sum of squares, then x'): one L2 read each where x fits in 16
// vec4 registers per lane (XRN below), else x is read twice. (Quantizing x * g in one pass and
// scaling the results by 1/rms at the end, the quantization being scale-invariant, moves more codes
// across rounding edges against the reference, which quantizes x' itself; not kept.)
const uint WGS = (ROWS / R) * C;               // = gl_WorkGroupSize.x
const uint XRN = (NIN / 4u + WGS - 1u) / WGS;  // vec4s of x per lane

#if !XG
// elements 4e..4e+3 of vector v (x' values a): the 8 lanes of a 32-block meet through shuffles
void quant4(uint v, uint e, vec4 a)
{
    const q8_quad q = q8_quant4(a);
    const uint k = e & 7u, blk = e >> 3;
    // 4 lanes fill one uvec4: gather the words to the first of them
    const uint w1 = subgroupShuffleXor(q.word, 1u), w2 = subgroupShuffleXor(q.word, 2u), w3 = subgroupShuffleXor(q.word, 3u);
    if ((k & 3u) == 0u) xq[v * (NIN / 16u) + (e >> 2)] = uvec4(q.word, w1, w2, w3);
    if (k == 0u) {
        xds[v * NB + blk] = q8_ds(q);
        xh[v * NB + blk] = q8_h(q);
    }
}

// WGS is a multiple of 8 and a group of 8 lanes sits inside one subgroup (the loops keep the 8
// lanes of a block together: NIN / 4 is a multiple of 8)
void prologue(uint tid)
{
    for (uint v = 0; v < NV; v++) {
        const uint xb = (v * p.x_stride) >> 2; // vec4 index of the vector
        if (PRO == 1u && XRN <= 16u) {
            vec4 xr[16];
            float ss = 0.0;
            for (uint k = 0; k < XRN; k++) {
                const uint e = tid + k * WGS;
                xr[k] = e < NIN / 4u ? x4[xb + e] : vec4(0.0);
                ss += dot(xr[k], xr[k]);
            }
            const float scale = q8_rms_scale(workgroup_sum(ss), NIN, p.eps);
            for (uint k = 0; k < XRN; k++) {
                const uint e = tid + k * WGS;
                if (e < NIN / 4u) quant4(v, e, q8_rms(xr[k], scale, g4[e]));
            }
        } else if (PRO == 1u) {
            float ss = 0.0;
            for (uint e = tid; e < NIN / 4u; e += WGS) {
                const vec4 a = x4[xb + e];
                ss += dot(a, a);
            }
            const float scale = q8_rms_scale(workgroup_sum(ss), NIN, p.eps);
            for (uint e = tid; e < NIN / 4u; e += WGS) quant4(v, e, q8_rms(x4[xb + e], scale, g4[e]));
        } else if (PRO == 2u) {
            for (uint e = tid; e < NIN / 4u; e += WGS) {
                const vec4 a = x4[xb + e], u = x4[xb + (p.up_offset >> 2) + e];
                quant4(v, e, q8_swiglu(a, u));
            }
        } else {
            for (uint e = tid; e < NIN / 4u; e += WGS) quant4(v, e, x4[xb + e]);
        }
    }
}
#endif

// ---- weights ----
uint grp;      // this lane's group
uint row[R];   // its rows (clamped to n_out - 1; the extra ones are not written)
float acc[R * NV];

#if defined(Q4_K) || defined(Q5_K)
#if defined(Q4_K)
const uint BLK4 = 9u; // block in uvec4s: header, 8 of nibbles
#else
const uint BLK4 = 11u; // header, 2 of high bits, 8 of nibbles
#endif
const uint UNITS = NIN / 64u;
// two register sets (k = 0, 1; constant after inlining) so that a step's loads are in flight
// during the previous step's arithmetic
uvec4 whd[2][R], wq0[2][R], wq1[2][R];
#if defined(Q5_K)
uvec4 wh0[2][R], wh1[2][R];
#endif

void load(uint k, uint u)
{
    const uint b = u >> 2, g = u & 3u;
    for (uint r = 0; r < R; r++) {
        const uint base = row[r] * p.row_c + b * BLK4;
        whd[k][r] = w4[base];
#if defined(Q4_K)
        wq0[k][r] = w4[base + 1u + 2u * g];
        wq1[k][r] = w4[base + 2u + 2u * g];
#else
        wh0[k][r] = w4[base + 1u];
        wh1[k][r] = w4[base + 2u];
        wq0[k][r] = w4[base + 3u + 2u * g];
        wq1[k][r] = w4[base + 4u + 2u * g];
#endif
    }
}

void compute(uint k, uint u)
{
    const uint b = u >> 2, g = u & 3u;
    // per row: d*sc and dmin*m of sub-blocks 2g (low nibbles) and 2g+1 (high nibbles), all eight
    // 6-bit scales unpacked as bytes at once, then the lane's two picked
    vec4 f[R];
    for (uint r = 0; r < R; r++) {
        const uvec4 hd = whd[k][r];
        const uint scw = g < 2u ? hd.y & 0x3f3f3f3fu : (hd.w & 0x0f0f0f0fu) | ((hd.y >> 2) & 0x30303030u);
        const uint mw = g < 2u ? hd.z & 0x3f3f3f3fu : ((hd.w >> 4) & 0x0f0f0f0fu) | ((hd.z >> 2) & 0x30303030u);
        const uint sh = (g & 1u) << 4;
        const int sc0 = int((scw >> sh) & 63u), sc1 = int((scw >> (sh + 8u)) & 63u);
        const int m0 = int((mw >> sh) & 63u), m1 = int((mw >> (sh + 8u)) & 63u);
        const float d = half1(hd.x), dm = half1(hd.x >> 16);
        f[r] = vec4(d * fI(sc0), dm * fI(m0), d * fI(sc1), dm * fI(m1));
    }
#if defined(Q5_K)
    uvec4 lo[R][2], hi[R][2];
    for (uint r = 0; r < R; r++) {
        const uvec4 a0 = wh0[k][r] >> (2u * g), a1 = wh1[k][r] >> (2u * g);
        lo[r][0] = (wq0[k][r] & 0x0f0f0f0fu) | ((a0 & 0x01010101u) << 4);
        lo[r][1] = (wq1[k][r] & 0x0f0f0f0fu) | ((a1 & 0x01010101u) << 4);
        hi[r][0] = ((wq0[k][r] >> 4) & 0x0f0f0f0fu) | ((a0 & 0x02020202u) << 3);
        hi[r][1] = ((wq1[k][r] >> 4) & 0x0f0f0f0fu) | ((a1 & 0x02020202u) << 3);
    }
#endif
    for (uint v = 0; v < NV; v++) {
        const uint xi = v * (NIN / 16u) + b * 16u + g * 4u; // low half: xi, xi+1; high: xi+2, xi+3
        const uvec4 xl0 = XQ(xi), xl1 = XQ(xi + 1u), xh0 = XQ(xi + 2u), xh1 = XQ(xi + 3u);
        const vec2 e0 = XDS(v * NB + b * 8u + 2u * g), e1 = XDS(v * NB + b * 8u + 2u * g + 1u);
        for (uint r = 0; r < R; r++) {
#if defined(Q4_K)
            const uvec4 l0 = wq0[k][r] & 0x0f0f0f0fu, l1 = wq1[k][r] & 0x0f0f0f0fu;
            const uvec4 h0 = (wq0[k][r] >> 4) & 0x0f0f0f0fu, h1 = (wq1[k][r] >> 4) & 0x0f0f0f0fu;
#else
            const uvec4 l0 = lo[r][0], l1 = lo[r][1], h0 = hi[r][0], h1 = hi[r][1];
#endif
            int s0 = 0, s1 = 0;
            s0 = dotPacked4x8AccSatEXT(int(l0.x), int(xl0.x), s0);
            s1 = dotPacked4x8AccSatEXT(int(h0.x), int(xh0.x), s1);
            s0 = dotPacked4x8AccSatEXT(int(l0.y), int(xl0.y), s0);
            s1 = dotPacked4x8AccSatEXT(int(h0.y), int(xh0.y), s1);
            s0 = dotPacked4x8AccSatEXT(int(l0.z), int(xl0.z), s0);
            s1 = dotPacked4x8AccSatEXT(int(h0.z), int(xh0.z), s1);
            s0 = dotPacked4x8AccSatEXT(int(l0.w), int(xl0.w), s0);
            s1 = dotPacked4x8AccSatEXT(int(h0.w), int(xh0.w), s1);
            s0 = dotPacked4x8AccSatEXT(int(l1.x), int(xl1.x), s0);
            s1 = dotPacked4x8AccSatEXT(int(h1.x), int(xh1.x), s1);
            s0 = dotPacked4x8AccSatEXT(int(l1.y), int(xl1.y), s0);
            s1 = dotPacked4x8AccSatEXT(int(h1.y), int(xh1.y), s1);
            s0 = dotPacked4x8AccSatEXT(int(l1.z), int(xl1.z), s0);
            s1 = dotPacked4x8AccSatEXT(int(h1.z), int(xh1.z), s1);
            s0 = dotPacked4x8AccSatEXT(int(l1.w), int(xl1.w), s0);
            s1 = dotPacked4x8AccSatEXT(int(h1.w), int(xh1.w), s1);
            // |s| <= 32 * 31 * 127 < 2^22
            acc[r * NV + v] += (e0.x * (f[r].x * fI(s0)) - f[r].y * e0.y) + (e1.x * (f[r].z * fI(s1)) - f[r].w * e1.y);
        }
    }
}
#define DIRECT 1

#elif defined(Q6_K) || defined(Q8_0) || defined(Q4_0)
// Staged: the group's next C units of each of its R rows, as the 16-byte chunks covering their
// blocks, in a shared region per (group, row); words read back at any halfword with funnel shifts.
#if defined(Q6_K)
const uint UPB = 4u, BHW = 105u, EPU = 64u; // units per block, halfwords per block, elements per unit
#elif defined(Q8_0)
const uint UPB = 1u, BHW = 17u, EPU = 32u;
#else
const uint UPB = 1u, BHW = 9u, EPU = 32u;
#endif
const uint UNITS = NIN / EPU;
const uint CH = ((C / UPB) * BHW * 2u + 14u + 15u) >> 4; // most chunks C units can touch
const uint CHL = (CH + C - 1u) / C;                       // chunks per lane
const uint REGW = CHL * C * 4u + 4u;                      // words per region (+1 word read past the end)
shared uint stg[(ROWS / R) * R * REGW];
uint c0[R]; // first chunk staged for each row

uvec4 wc[2][R][CHL]; // two register sets of chunks (k constant after inlining)
uint wfirst[2][R];

void load(uint k, uint ub) // ub: the group's first unit of the step
{
    const uint lane = gl_SubgroupInvocationID % C;
    const uint b0 = ub / UPB, nbk = min(C / UPB, NIN / (EPU * UPB) - b0);
    for (uint r = 0; r < R; r++) {
        const uint h0 = row[r] * p.row_c + b0 * BHW;
        const uint f = h0 >> 3, l = (h0 + nbk * BHW + 7u) >> 3;
        wfirst[k][r] = f;
        for (uint i = 0; i < CHL; i++) {
            const uint c = lane + i * C;
            wc[k][r][i] = f + c < l ? w4[f + c] : uvec4(0u);
        }
    }
}

void commit(uint k)
{
    const uint lane = gl_SubgroupInvocationID % C;
    for (uint r = 0; r < R; r++) {
        c0[r] = wfirst[k][r];
        const uint reg = (grp * R + r) * REGW;
        for (uint i = 0; i < CHL; i++) {
            const uint o = reg + (lane + i * C) * 4u;
            stg[o] = wc[k][r][i].x;
            stg[o + 1u] = wc[k][r][i].y;
            stg[o + 2u] = wc[k][r][i].z;
            stg[o + 3u] = wc[k][r][i].w;
        }
    }
}

uint fsh(uint a, uint b, bool odd) { return odd ? (a >> 16) | (b << 16) : a; }
// 16 bytes starting at absolute halfword h of row slot r
uvec4 ld4(uint r, uint h)
{
    const uint rel = h - c0[r] * 8u, wi = (grp * R + r) * REGW + (rel >> 1);
    const bool odd = (rel & 1u) != 0u;
    const uint a = stg[wi], b = stg[wi + 1u], c = stg[wi + 2u], d = stg[wi + 3u], e = stg[wi + 4u];
    return uvec4(fsh(a, b, odd), fsh(b, c, odd), fsh(c, d, odd), fsh(d, e, odd));
}
uvec2 ld2(uint r, uint h)
{
    const uint rel = h - c0[r] * 8u, wi = (grp * R + r) * REGW + (rel >> 1);
    const bool odd = (rel & 1u) != 0u;
    const uint a = stg[wi], b = stg[wi + 1u], c = stg[wi + 2u];
    return uvec2(fsh(a, b, odd), fsh(b, c, odd));
}
uint ld1h(uint r, uint h)
{
    const uint rel = h - c0[r] * 8u;
    return (stg[(grp * R + r) * REGW + (rel >> 1)] >> ((rel & 1u) << 4)) & 0xffffu;
}

void compute(uint u)
{
#if defined(Q6_K)
    // unit j of block b: half t = j/2, columns l0..l0+15 (l0 = 16*(j%2)) of groups g = 0..3:
    // element 128t + 32g + l; low bits in ql[64t + 32(g&1) + l] nibble g>>1, high in qh[32t + l]
    // bits 2g..2g+1; scale scales[8t + 2g + j%2]
    const uint b = u >> 2, j = u & 3u, t = j >> 1, hl = (j & 1u) << 3; // hl: l0 in halfwords
    // flat [r * 4 + g]: the same arrays as [R][4] (outer size a specialization constant) gave wrong
    // results on lavapipe at R = 2
    uvec4 c[R * 4u];
    float ds[R * 4u]; // d * scale of each group
    for (uint r = 0; r < R; r++) {
        const uint h = row[r] * p.row_c + b * BHW;
        const uvec4 qa = ld4(r, h + 32u * t + hl), qb = ld4(r, h + 32u * t + 16u + hl), qh = ld4(r, h + 64u + 16u * t + hl);
        c[r * 4u + 0u] = (qa & 0x0f0f0f0fu) | ((qh & 0x03030303u) << 4);
        c[r * 4u + 1u] = (qb & 0x0f0f0f0fu) | (((qh >> 2) & 0x03030303u) << 4);
        c[r * 4u + 2u] = ((qa >> 4) & 0x0f0f0f0fu) | (((qh >> 4) & 0x03030303u) << 4);
        c[r * 4u + 3u] = ((qb >> 4) & 0x0f0f0f0fu) | (((qh >> 6) & 0x03030303u) << 4);
        const ivec2 s = ivec2(ld2(r, h + 96u + 4u * t)); // scales 8t..8t+7
        const int o = int(j & 1u) << 3;
        const float d = half1(ld1h(r, h + 104u));
        ds[r * 4u + 0u] = d * fI(bitfieldExtract(s.x, o, 8));
        ds[r * 4u + 1u] = d * fI(bitfieldExtract(s.x, o + 16, 8));
        ds[r * 4u + 2u] = d * fI(bitfieldExtract(s.y, o, 8));
        ds[r * 4u + 3u] = d * fI(bitfieldExtract(s.y, o + 16, 8));
    }
    for (uint v = 0; v < NV; v++) {
        const uint xb = v * NB + b * 8u + 4u * t; // x block of group 0
        const uint xi = v * (NIN / 16u) + b * 16u + 8u * t + (j & 1u); // x uvec4 of group 0; group g at + 2g
        for (uint gg = 0; gg < 4u; gg++) {
            const uvec4 xv = XQ(xi + 2u * gg);
            const float dx = XDS(xb + gg).x;
            const int hs = XH(xb + gg), s16 = (j & 1u) != 0u ? hs >> 16 : bitfieldExtract(hs, 0, 16);
            for (uint r = 0; r < R; r++) {
                int s = -32 * s16; // codes are q + 32
                s = dotPacked4x8AccSatEXT(int(c[r * 4u + gg].x), int(xv.x), s);
                s = dotPacked4x8AccSatEXT(int(c[r * 4u + gg].y), int(xv.y), s);
                s = dotPacked4x8AccSatEXT(int(c[r * 4u + gg].z), int(xv.z), s);
                s = dotPacked4x8AccSatEXT(int(c[r * 4u + gg].w), int(xv.w), s);
                acc[r * NV + v] += (ds[r * 4u + gg] * dx) * fI(s); // |s| <= 16 * 63 * 127 + 32 * 16 * 127 < 2^22
            }
        }
    }
#else
    // one block: d, then 32 int8 codes (Q8_0) or 16 bytes of nibbles (Q4_0: element k low nibble
    // of byte k, element k + 16 the high nibble; value q - 8)
    const uint b = u;
    float d[R];
#if defined(Q8_0)
    uvec4 qa[R], qb[R];
#else
    uvec4 qa[R];
#endif
    for (uint r = 0; r < R; r++) {
        const uint h = row[r] * p.row_c + b * BHW;
        d[r] = half1(ld1h(r, h));
        qa[r] = ld4(r, h + 1u);
#if defined(Q8_0)
        qb[r] = ld4(r, h + 9u);
#endif
    }
    for (uint v = 0; v < NV; v++) {
        const uint xi = v * (NIN / 16u) + b * 2u;
        const uvec4 x0 = XQ(xi), x1 = XQ(xi + 1u);
        const vec2 e = XDS(v * NB + b);
        for (uint r = 0; r < R; r++) {
            int s = 0;
#if defined(Q8_0)
            s = dotPacked4x8AccSatEXT(int(qa[r].x), int(x0.x), s);
            s = dotPacked4x8AccSatEXT(int(qa[r].y), int(x0.y), s);
            s = dotPacked4x8AccSatEXT(int(qa[r].z), int(x0.z), s);
            s = dotPacked4x8AccSatEXT(int(qa[r].w), int(x0.w), s);
            s = dotPacked4x8AccSatEXT(int(qb[r].x), int(x1.x), s);
            s = dotPacked4x8AccSatEXT(int(qb[r].y), int(x1.y), s);
            s = dotPacked4x8AccSatEXT(int(qb[r].z), int(x1.z), s);
            s = dotPacked4x8AccSatEXT(int(qb[r].w), int(x1.w), s);
            acc[r * NV + v] += (d[r] * e.x) * fI(s); // |s| <= 32 * 128 * 127 < 2^22
#else
            const uvec4 l = qa[r] & 0x0f0f0f0fu, hh = (qa[r] >> 4) & 0x0f0f0f0fu;
            s = dotPacked4x8AccSatEXT(int(l.x), int(x0.x), s);
            s = dotPacked4x8AccSatEXT(int(l.y), int(x0.y), s);
            s = dotPacked4x8AccSatEXT(int(l.z), int(x0.z), s);
            s = dotPacked4x8AccSatEXT(int(l.w), int(x0.w), s);
            s = dotPacked4x8AccSatEXT(int(hh.x), int(x1.x), s);
            s = dotPacked4x8AccSatEXT(int(hh.y), int(x1.y), s);
            s = dotPacked4x8AccSatEXT(int(hh.z), int(x1.z), s);
            s = dotPacked4x8AccSatEXT(int(hh.w), int(x1.w), s);
            acc[r * NV + v] += d[r] * (e.x * fI(s) - 8.0 * e.y); // sum((q - 8) qx) = s - 8 sum(qx)
#endif
        }
    }
#endif
}
#define DIRECT 0
#else
#error "define one of Q4_K Q5_K Q6_K Q8_0 Q4_0"
#endif

void main()
{
    // lanes numbered by subgroup, so a group of C lanes and the prologue's groups of 8 are inside
    // one subgroup whatever the mapping of local ids to subgroups
    const uint tid = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
    const uint lane = gl_SubgroupInvocationID % C;
    grp = tid / C;
    const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    const uint base = wg * ROWS;
    if (base >= p.n_out) return; // the whole workgroup (grid padding)
#if ROPE
    for (uint r = 0; r < R; r++) row[r] = rope_row(min(base + grp * R + r, p.n_out - 1u));
#else
    for (uint r = 0; r < R; r++) row[r] = min(base + grp * R + r, p.n_out - 1u);
#endif
    for (uint i = 0; i < R * NV; i++) acc[i] = 0.0;

#if DIRECT
    // the first unit's loads in flight during the prologue; then each step loads the next one
    // into the other register set before its arithmetic
    load(0u, min(lane, UNITS - 1u));
#if !XG
    prologue(tid);
    barrier();
#endif
    if (PF == 0u) {
        if (lane < UNITS) compute(0u, lane);
        for (uint u = lane + C; u < UNITS; u += C) {
            load(0u, u);
            compute(0u, u);
        }
    } else
    for (uint u = lane; u < UNITS; u += 2u * C) {
        load(1u, min(u + C, UNITS - 1u));
        compute(0u, u);
        if (u + C >= UNITS) break;
        load(0u, min(u + 2u * C, UNITS - 1u));
        compute(1u, u + C);
    }
#else
    load(0u, 0u);
#if !XG
    prologue(tid);
    barrier();
#endif
    // group-uniform steps (every lane of a subgroup runs the same count: same n_in for all rows)
    if (PF == 0u)
        for (uint ub = 0; ub < UNITS; ub += C) {
            if (ub > 0u) load(0u, ub);
            commit(0u);
            subgroupBarrier();
            if (ub + lane < UNITS) compute(ub + lane);
            subgroupBarrier();
        }
    else
    for (uint ub = 0; ub < UNITS; ub += 2u * C) {
        commit(0u);
        subgroupBarrier();
        if (ub + C < UNITS) load(1u, ub + C);
        if (ub + lane < UNITS) compute(ub + lane);
        subgroupBarrier(); // the region is read before the next commit overwrites it
        if (ub + C >= UNITS) break;
        commit(1u);
        subgroupBarrier();
        if (ub + 2u * C < UNITS) load(0u, ub + 2u * C);
        if (ub + C + lane < UNITS) compute(ub + C + lane);
        subgroupBarrier();
    }
#endif
    for (uint i = 0; i < R * NV; i++) {
        float s = acc[i];
        for (uint off = C >> 1; off > 0u; off >>= 1) s += subgroupShuffleXor(s, off);
        acc[i] = s;
    }
#if ROPE
    // n_out is a multiple of ROWS (host-checked): every logical row exists
    if (lane == 0u)
        for (uint r = 0; r < R; r++) rsum[grp * R + r] = acc[r];
    barrier();
    if (tid < ROWS / 2u) {
        const uint j = 2u * tid, P = ROWS / 2u, half_hd = p.hd / 2u;
        const uint o = rope_row(base + j), h = o / p.hd, e = o % p.hd; // e even, e + 1 is row j + 1's
        const int ps = pos[0];
        const bool in_cache = ps >= 0 && uint(ps) < p.ctx;
        vec2 v = vec2(rsum[j], rsum[j + 1u]);
        if (h < p.n_q + p.n_kv) { // NEOX: (x_i, x_{i+hd/2}) -> (x_i c - x_{i+hd/2} s, x_i s + x_{i+hd/2} c)
            const uint i = e % half_hd, jp = (j + P) % ROWS;
            const vec2 cs0 = rope_cs(ps, inv_freq[i]) * p.attn_factor, cs1 = rope_cs(ps, inv_freq[i + 1u]) * p.attn_factor;
            const vec2 w = vec2(rsum[jp], rsum[jp + 1u]); // the partners
            v = e < half_hd ? vec2(v.x * cs0.x - w.x * cs0.y, v.y * cs1.x - w.y * cs1.y)
                            : vec2(w.x * cs0.y + v.x * cs0.x, w.y * cs1.y + v.y * cs1.x);
        }
        if (h < p.n_q) {
            y[o] = v.x;
            y[o + 1u] = v.y;
        } else if (in_cache && h < p.n_q + p.n_kv)
            kc[(((h - p.n_q) * p.ctx + uint(ps)) * p.hd + e) >> 1] = packHalf2x16(v);
        else if (in_cache)
            vc[(((h - p.n_q - p.n_kv) * p.ctx + uint(ps)) * p.hd + e) >> 1] = packHalf2x16(v);
    }
#else
    if (lane == 0u)
        for (uint r = 0; r < R; r++) {
            const uint o = base + grp * R + r;
            if (o < p.n_out)
                for (uint v = 0; v < NV; v++)
                    y[v * p.y_stride + o] = HAS_RES != 0u ? acc[r * NV + v] + res[v * p.r_stride + o] : acc[r * NV + v];
        }
#endif
}
