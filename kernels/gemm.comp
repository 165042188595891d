#version 450
// Prefill matrix product with the weight in its GGUF block format:
//   Y[m][n] = sum_k X[m][k] * W[n][k]  (+ R[m][n] when HAS_RES is pushed; R may be Y itself)
//
// Layout: W = n_out rows of K elements of WTYPE (ggml type number: 0 f32, 1 f16, 2 q4_0, 8 q8_0,
// 12 q4_k, 13 q5_k, 14 q6_k, 30 bf16), rows contiguous, row_h halfwords per row (every block size is
// even), bound as uint words so every format decodes through common/blocks.glsl. X, Y, R float32
// row-major with row strides in elements. The W binding is rounded up to whole 32-bit words.
//
// Grid: x = ceil(M / BM) tiles of tokens (fastest, so the M tiles that share one W tile run together
// and W comes from DRAM about once), y = ceil(N / BN) tiles of outputs. Each k-step dequantizes a
// BN x BK tile of W into shared memory (never a full dequantized copy of W) next to a BM x BK tile of X.
//
// COOPMAT == 0, portable: BM = 16 * RM (spec constant 5: 1, 2 or 4, small for small M so that few
//   padded rows are computed), BN = 64, BK = 32, 256 threads (spec constant 0 must be 256), each
//   thread an RM x 4 register block (rows ty + 16 i, columns tx + 16 j: the shared reads of one
//   k are a broadcast of X and 16 consecutive W values). Float32 throughout: the only difference
//   from the reference is the summation order. K may be any whole number of blocks (f32/f16/bf16:
//   any K; the k tail is zero-filled).
// COOPMAT == 1, GL_KHR_cooperative_matrix: BM = 128, BN x BK = 128 x 32 (default) or 256 x 16
//   (spec constants 6, 7: halves the re-reads of X, which at these shapes cost as much L2 bandwidth
//   as the multiplies), 8 subgroups (WG = 8 * subgroup size, spec constant 0) in a 2 (m) x 4 (n)
//   grid, each subgroup a 64 x BN/4 block of CM_M x CM_N fp32 accumulators (shape from spec
//   constants 1..3, chosen by the host from the device's list).
//   X and the dequantized W tile are stored as fp16 in two shared buffers (double buffering: the
//   global loads of step k+1 are issued before the multiplies of step k; one barrier per step).
//   Needs K % 32 == 0. Shared memory: 2 * (128 + BN) * (BK + 8) * 2 B (40 or 36 KiB) + 8 KiB
//   epilogue scratch.
// COOPMAT == 2, GL_NV_cooperative_matrix2: the same staged fp16 tiles (fetch/stash below), but the
//   whole BM x BN block is one workgroup-scope fp32 accumulator and each k-step one BM x BK by BK x BN
//   product scheduled by the driver; 256 threads; epilogue by clamped tensor store (and tensor load of R).
//   Tile from spec constants 8 (BM: 64/128/256 tokens), 6 (BN: 64/128/256 W rows), 7 (BK: 16/32/64),
//   9 (1: one shared buffer and two barriers per step; 2: double-buffered; 3: double-buffered with a
//   two-deep register prefetch) and 10 (f16 W only: 1 = W tiles by tensor loads straight from the
//   buffer, 2 = X too, converted from an fp32 accumulator-use tile; tuning experiments, both slower
//   on the H100). Shared memory: NBUF * (BM + BN) * (BK + 8) * 2 B. Host defaults: ops_gemm.c.
// COOPMAT == 2 and WDECODE == 1 (modules gemm_cm2d_*): nothing staged by us. Each k-step loads the
//   BN x BK tile of W straight from the GGUF blocks by coopMatLoadTensorNV with a tensor layout of
//   1 x QB blocks and a decode function per format (below: a buffer_reference to one block, the
//   element's place in it, fp16 out), and the fp32 X tile by a tensor load converted to fp16; see
//   its main() for the arrangement. Tile: spec constants 8, 6, 7 as above, 9: 2 = next step's loads
//   before this step's product, 1 = not. Needs bufferDeviceAddress (the driver turns the W binding
//   into a physical pointer) and 16-bit storage/int16 (the block structs).
//
// Per call: reads N * row_bytes (W, once from DRAM when the M tiles of one W tile share L2) +
// 4 * M * K * ceil(N / BN) (X, mostly from L2) + 4 * M * N (R), writes 4 * M * N; 2 * M * N * K FLOPs
// (the benchmark's TFLOP/s divides 2 M N K by the time).
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : require // [[unroll]]: register arrays must stay in registers
#if COOPMAT
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#if COOPMAT == 2
#extension GL_NV_cooperative_matrix2 : require
#endif
#ifndef WDECODE
#define WDECODE 0
#endif
#if WDECODE
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require
#endif

layout(local_size_x_id = 0) in;
#if COOPMAT
layout(constant_id = 1) const uint CM_M = 16;
layout(constant_id = 2) const uint CM_N = 16;
layout(constant_id = 3) const uint CM_K = 16;
layout(constant_id = 6) const uint CM_BN = 128; // W rows per workgroup: 128, or 256 with CM_BK 16
layout(constant_id = 7) const uint CM_BK = 32;  // k per step (a multiple of 8 and of CM_K)
layout(constant_id = 8) const uint CM_BM = 128; // cm2: token rows per workgroup (KHR: always 128)
layout(constant_id = 9) const uint CM_NBUF = 2; // cm2: 2 = double-buffered tiles, 1 = one buffer (two barriers per
                                                // step), 3 = double-buffered and fetched two steps ahead
layout(constant_id = 10) const uint CM_DIRECT = 0; // cm2 with f16 W: 1 = W tiles by tensor loads from the buffer, 2 = X too
#endif
layout(constant_id = 4) const uint VEC4X = 0; // x_stride % 4 == 0 and x 16-byte aligned: vec4 loads of X
#if !COOPMAT
layout(constant_id = 5) const uint RM = 4;    // portable: rows of X per thread
#endif

layout(std430, binding = 0) readonly buffer W32 { uint w32[]; };
layout(std430, binding = 0) readonly buffer WF { float wf[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
#if COOPMAT == 2 && WTYPE == 1
#extension GL_EXT_shader_16bit_storage : require
layout(std430, binding = 0) readonly buffer WH { float16_t wh[]; }; // fp16 W for the cm2 tensor loads
#endif
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer R { float r[]; };

layout(push_constant) uniform Params {
    uint M, N, K;
    uint x_stride, y_stride, r_stride;
    uint has_res;
    uint row_h; // halfwords per W row
} p;

#define BLK_BUF_U32 w32
#include "common/blocks.glsl"

#if WDECODE && WTYPE != 1
// ---------------------------------------------------------------- decode functions (cm2 tensor loads)
// One struct per block (its size is the block's byte size, so the driver's pointer arithmetic
// block index * sizeof lands on the block), W element (row n, k) at block (n, k / QB), index k % QB.
// Values are computed in float32 as in common/blocks.glsl (subnormal-safe scales) and rounded to fp16
// once, so this path rounds W exactly as the staged kernel does.
#if WTYPE == 12 || WTYPE == 13
#define DEC_WORDS 1
#endif
#if DEC_WORDS
// Q4_K 144 B / Q5_K 176 B: 16-byte vectors, 16-byte aligned when the tensor is (GGUF aligns to 32, a
// binding to 256). The 16-byte header (d, dmin, 12 scale bytes) is one vector load.
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer WBlk { uvec4 q[WTYPE == 12 ? 9 : 11]; };
uint dec_byte(const in WBlk b, uint k) { return (b.q[k >> 4][(k >> 2) & 3u] >> ((k & 3u) << 3)) & 0xffu; }
// byte j of the scales (bytes 4..15 of the header)
uint hdr_byte(uvec4 hd, uint j) { return (hd[1u + (j >> 2)] >> ((j & 3u) << 3)) & 0xffu; }
// (d * sc, dmin * m) of sub-block s.
vec2 dec_kfac(const in WBlk b, uint s)
{
    const uvec4 hd = b.q[0];
    uint sc, m;
    if (s < 4u) {
        sc = hdr_byte(hd, s) & 63u;
        m = hdr_byte(hd, s + 4u) & 63u;
    } else {
        const uint lo = hdr_byte(hd, s + 4u);
        sc = (lo & 15u) | ((hdr_byte(hd, s - 4u) >> 6) << 4);
        m = (lo >> 4) | ((hdr_byte(hd, s) >> 6) << 4);
    }
    return vec2(blk_half(hd.x) * float(sc), blk_half(hd.x >> 16) * float(m));
}
#elif WTYPE == 0
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer WBlk { float v; };
#else
// Q8_0 34 B, Q4_0 18 B, Q6_K 210 B, BF16 2 B: halfwords (the blocks start on any even byte).
layout(buffer_reference, std430, buffer_reference_align = 2) readonly buffer WBlk {
    uint16_t h[WTYPE == 8 ? 17 : WTYPE == 2 ? 9 : WTYPE == 14 ? 105 : 1];
};
uint dec_byte(const in WBlk b, uint k) { return (uint(b.h[k >> 1]) >> ((k & 1u) << 3)) & 0xffu; }
#endif

float16_t w_decode(const in WBlk b, const in uint blk[2], const in uint at[2])
{
    const uint i = at[1];
#if WTYPE == 0
    return float16_t(b.v);
#elif WTYPE == 30
    return float16_t(uintBitsToFloat(uint(b.h[0]) << 16));
#elif WTYPE == 8
    const int q = bitfieldExtract(int(dec_byte(b, 2u + i)), 0, 8);
    return float16_t(blk_half(uint(b.h[0])) * float(q));
#elif WTYPE == 2
    const uint q = (dec_byte(b, 2u + (i & 15u)) >> ((i >> 4) << 2)) & 15u;
    return float16_t(blk_half(uint(b.h[0])) * (float(q) - 8.0));
#elif WTYPE == 12
    const vec2 f = dec_kfac(b, i >> 5);
    const uint q = (dec_byte(b, 16u + ((i >> 6) << 5) + (i & 31u)) >> (((i >> 5) & 1u) << 2)) & 15u;
    return float16_t(f.x * float(q) - f.y);
#elif WTYPE == 13
    const uint s = i >> 5;
    const vec2 f = dec_kfac(b, s);
    const uint lo = (dec_byte(b, 48u + ((i >> 6) << 5) + (i & 31u)) >> ((s & 1u) << 2)) & 15u;
    const uint hi = (dec_byte(b, 16u + (i & 31u)) >> s) & 1u;
    return float16_t(f.x * float(lo | (hi << 4)) - f.y);
#elif WTYPE == 14
    const uint t = i >> 7, g = (i >> 5) & 3u, l = i & 31u;
    const uint lo = (dec_byte(b, (t << 6) + ((g & 1u) << 5) + l) >> ((g >> 1) << 2)) & 15u;
    const uint hi = (dec_byte(b, 128u + (t << 5) + l) >> (g << 1)) & 3u;
    const int sc = bitfieldExtract(int(dec_byte(b, 192u + (i >> 4))), 0, 8);
    return float16_t(blk_half(uint(b.h[104])) * float(sc) * (float(lo | (hi << 4)) - 32.0));
#else
#error "no decode function for this WTYPE"
#endif
}
// elements per block along k
const uint DEC_QB = WTYPE == 12 || WTYPE == 13 || WTYPE == 14 ? 256u : WTYPE == 8 || WTYPE == 2 ? 32u : 1u;
#endif

// Eight consecutive weights W[n][k .. k+7]; k % 8 == 0 and k + 8 <= K (so they lie in one block).
void w_dequant8(uint n, uint k, out vec4 a, out vec4 b)
{
    const uint h = n * p.row_h;
#if WTYPE == 0
    const uint e = n * p.K + k;
    a = vec4(wf[e], wf[e + 1u], wf[e + 2u], wf[e + 3u]);
    b = vec4(wf[e + 4u], wf[e + 5u], wf[e + 6u], wf[e + 7u]);
#elif WTYPE == 1
    a = f16_dequant4(h, k);
    b = f16_dequant4(h, k + 4u);
#elif WTYPE == 30
    a = bf16_dequant4(h, k);
    b = bf16_dequant4(h, k + 4u);
#elif WTYPE == 8
    q8_0_dequant8(h + (k >> 5) * Q8_0_HALFWORDS, k & 31u, a, b);
#elif WTYPE == 2
    q4_0_dequant8(h + (k >> 5) * Q4_0_HALFWORDS, k & 31u, a, b);
#elif WTYPE == 12
    q4_k_dequant8(h + (k >> 8) * Q4_K_HALFWORDS, k & 255u, a, b);
#elif WTYPE == 13
    q5_k_dequant8(h + (k >> 8) * Q5_K_HALFWORDS, k & 255u, a, b);
#elif WTYPE == 14
    q6_k_dequant8(h + (k >> 8) * Q6_K_HALFWORDS, k & 255u, a, b);
#else
#error "unknown WTYPE"
#endif
}

#if WTYPE == 0 || WTYPE == 1 || WTYPE == 30
// One weight, for the k tail of the plain types (K not a multiple of 8).
float w_elem(uint n, uint k)
{
#if WTYPE == 0
    return wf[n * p.K + k];
#elif WTYPE == 1
    return blk_f16(n * p.row_h + k);
#else
    return uintBitsToFloat(blk_u16(n * p.row_h + k) << 16);
#endif
}
#define W_TAIL 1
#else
#define W_TAIL 0
#endif

// Eight weights W[n][k .. k+7] with zeros beyond K (and for n >= N).
void w_load8(uint n, uint k, out vec4 a, out vec4 b)
{
    a = vec4(0.0);
    b = vec4(0.0);
    if (n >= p.N) return;
    if (k + 8u <= p.K) {
        w_dequant8(n, k, a, b);
        return;
    }
#if W_TAIL
    float v[8];
    [[unroll]] for (uint i = 0u; i < 8u; i++) v[i] = k + i < p.K ? w_elem(n, k + i) : 0.0;
    a = vec4(v[0], v[1], v[2], v[3]);
    b = vec4(v[4], v[5], v[6], v[7]);
#endif
}

// Four activations X[m][k .. k+3] with zeros beyond M and K.
vec4 x_load4(uint m, uint k)
{
    if (m >= p.M) return vec4(0.0);
    if (VEC4X != 0u && k + 4u <= p.K) return x4[(m * p.x_stride + k) >> 2];
    const uint e = m * p.x_stride + k;
    return vec4(k < p.K ? x[e] : 0.0, k + 1u < p.K ? x[e + 1u] : 0.0, k + 2u < p.K ? x[e + 2u] : 0.0,
                k + 3u < p.K ? x[e + 3u] : 0.0);
}

void store_out(uint m, uint n, float v)
{
    if (m >= p.M || n >= p.N) return;
    if (p.has_res != 0u) v += r[m * p.r_stride + n];
    y[m * p.y_stride + n] = v;
}

#if !COOPMAT
// ---------------------------------------------------------------- portable float32 tiles
const uint BM = 16u * RM, BN = 64u, BK = 32u;
shared float xs[BK][BM + 1u]; // k-major: the RM rows a thread needs at one k are a broadcast
shared float ws[BK][BN + 1u];

void main()
{
    const uint tid = gl_LocalInvocationID.x; // 256 threads
    const uint tx = tid & 15u, ty = tid >> 4;
    const uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
    // loaders: 64 W rows x 32 k = 256 x 8 elements, one row segment of 8 per thread; X: BM rows alike
    const uint lr = tid >> 2, lk = (tid & 3u) * 8u;
    float acc[RM][4];
    [[unroll]] for (uint i = 0u; i < RM; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;

    for (uint k0 = 0u; k0 < p.K; k0 += BK) {
        vec4 xa = vec4(0.0), xb = vec4(0.0);
        if (lr < BM) {
            xa = x_load4(m0 + lr, k0 + lk);
            xb = x_load4(m0 + lr, k0 + lk + 4u);
        }
        vec4 wa, wb;
        w_load8(n0 + lr, k0 + lk, wa, wb);
        barrier(); // the previous step's reads of xs/ws are done
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            if (lr < BM) {
                xs[lk + i][lr] = xa[i];
                xs[lk + 4u + i][lr] = xb[i];
            }
            ws[lk + i][lr] = wa[i];
            ws[lk + 4u + i][lr] = wb[i];
        }
        barrier();
        for (uint kk = 0u; kk < BK; kk++) { // not unrolled: lavapipe compiles the 32-fold body for long
            float xv[RM], wv[4];
            [[unroll]] for (uint i = 0u; i < RM; i++) xv[i] = xs[kk][ty + 16u * i];
            [[unroll]] for (uint j = 0u; j < 4u; j++) wv[j] = ws[kk][tx + 16u * j];
            [[unroll]] for (uint i = 0u; i < RM; i++)
                [[unroll]] for (uint j = 0u; j < 4u; j++) acc[i][j] = fma(xv[i], wv[j], acc[i][j]);
        }
    }
    [[unroll]] for (uint i = 0u; i < RM; i++)
        [[unroll]] for (uint j = 0u; j < 4u; j++) store_out(m0 + ty + 16u * i, n0 + tx + 16u * j, acc[i][j]);
}

#else
// ---------------------------------------------------------------- cooperative matrix, fp16 x fp16 -> fp32
const uint BM = COOPMAT == 2 ? CM_BM : 128u, BN = CM_BN, BK = CM_BK;
const uint NBUF = COOPMAT == 2 ? (CM_NBUF == 1u ? 1u : 2u) : 2u; // shared buffers (CM_NBUF 3: two, plus two register sets)
// cm2 with fp16 weights can leave the W tile (and the X tile) to the driver's tensor loads
#if WDECODE
const bool W_DIRECT = true; // neither is staged by us (fetch/stash unused)
const bool X_DIRECT = true;
#else
const bool W_DIRECT = COOPMAT == 2 && WTYPE == 1 && CM_DIRECT != 0u;
const bool X_DIRECT = COOPMAT == 2 && WTYPE == 1 && CM_DIRECT == 2u;
#endif
const uint WM = 2u, WN = 4u;               // subgroup grid
const uint SM = BM / WM, SN = BN / WN;     // 64 x 32 (or 64 x 64) per subgroup
const uint TM = SM / CM_M, TN = SN / CM_N; // accumulator tiles per subgroup
const uint LD = (BK + 8u) / 4u;            // padded row in f16vec4 (80 or 48 B): 8 rows of 16 B hit distinct banks
const uint WG = gl_WorkGroupSize.x;
const uint XV = BM * BK / 4u / WG;         // vec4 of X per thread per step
const uint WV = BN * BK / 8u / WG;         // groups of 8 weights per thread per step

// Vectors of 4 halves, so a thread stores 8 or 16 bytes at once; coopMatLoad counts offsets and
// strides in array elements (as ggml-vulkan's mul_mm does with vec2).
shared f16vec4 as_[X_DIRECT ? 1u : NBUF * BM * LD]; // X tile, row m: as_[buf][m][k / 4]
shared f16vec4 bs_[W_DIRECT ? 1u : NBUF * BN * LD]; // W tile, row n: bs_[buf][n][k / 4] = B column-major
#if COOPMAT == 1
shared float cs_[8u * CM_M * CM_N];  // epilogue: one accumulator tile per subgroup
#endif

// Register sets of fetched tiles: set 0 always; set 1 for the cm2 two-deep prefetch (CM_NBUF 3). The
// set is a literal at every call, so after inlining all indices are constants (registers, no spills).
// Only the two-deep variant declares set 1: unused register arrays made the KHR kernel spill on the
// H100 (29-31 instead of 70-90 TFLOP/s in Q4_K).
#if COOPMAT == 2
const uint NSETS = CM_NBUF == 3u ? 2u : 1u;
#else
const uint NSETS = 1u;
#endif
f16vec4 xr[NSETS * XV];      // X, already fp16
f16vec4 wr[NSETS * 2u * WV]; // W, dequantized to fp16

void fetch_set(uint set, uint m0, uint n0, uint k0)
{
    const uint tid = gl_LocalInvocationID.x;
    [[unroll]] for (uint i = 0u; i < XV; i++) {
        const uint idx = tid + i * WG, row = idx / (BK / 4u), c = (idx % (BK / 4u)) * 4u;
        xr[set * XV + i] = f16vec4(x_load4(m0 + row, k0 + c));
    }
    if (W_DIRECT) return;
    [[unroll]] for (uint i = 0u; i < WV; i++) {
        const uint idx = tid + i * WG, row = idx / (BK / 8u), c = (idx % (BK / 8u)) * 8u;
        const uint n = n0 + row;
        const uint o = set * 2u * WV + 2u * i;
        wr[o] = f16vec4(0.0);
        wr[o + 1u] = f16vec4(0.0);
        if (n < p.N) {
#if WTYPE == 1
            // fp16 weights: one 16-byte load, bits kept as they are (K % 32 == 0, so a row starts on 64 bytes)
            const uvec4 q = w4[(n * p.row_h + k0 + c) >> 3];
            wr[o] = f16vec4(unpackFloat2x16(q.x), unpackFloat2x16(q.y));
            wr[o + 1u] = f16vec4(unpackFloat2x16(q.z), unpackFloat2x16(q.w));
#else
            vec4 a, b;
            w_dequant8(n, k0 + c, a, b);
            wr[o] = f16vec4(a);
            wr[o + 1u] = f16vec4(b);
#endif
        }
    }
}

void stash_set(uint set, uint buf)
{
    const uint tid = gl_LocalInvocationID.x;
    [[unroll]] for (uint i = 0u; i < XV; i++) {
        const uint idx = tid + i * WG, row = idx / (BK / 4u), c = (idx % (BK / 4u)) * 4u;
        as_[(buf * BM + row) * LD + c / 4u] = xr[set * XV + i];
    }
    if (W_DIRECT) return;
    [[unroll]] for (uint i = 0u; i < WV; i++) {
        const uint idx = tid + i * WG, row = idx / (BK / 8u), c = (idx % (BK / 8u)) * 8u;
        const uint o = (buf * BN + row) * LD + c / 4u;
        bs_[o] = wr[set * 2u * WV + 2u * i];
        bs_[o + 1u] = wr[set * 2u * WV + 2u * i + 1u];
    }
}

void fetch(uint m0, uint n0, uint k0) { fetch_set(0u, m0, n0, k0); }
void stash(uint buf) { stash_set(0u, buf); }

#if COOPMAT == 1
void main()
{
    const uint sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    const uint wm = sg / WN, wn = sg % WN;
    const uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;

    coopmat<float, gl_ScopeSubgroup, CM_M, CM_N, gl_MatrixUseAccumulator> acc[TM * TN];
    [[unroll]] for (uint t = 0u; t < TM * TN; t++) acc[t] = coopmat<float, gl_ScopeSubgroup, CM_M, CM_N, gl_MatrixUseAccumulator>(0.0);

    const uint nk = p.K / BK;
    fetch(m0, n0, 0u);
    stash(0u);
    barrier();
    for (uint kt = 0u; kt < nk; kt++) {
        const uint cur = kt & 1u;
        if (kt + 1u < nk) fetch(m0, n0, (kt + 1u) * BK); // in flight during the multiplies below
        [[unroll]] for (uint kk = 0u; kk < BK; kk += CM_K) {
            coopmat<float16_t, gl_ScopeSubgroup, CM_M, CM_K, gl_MatrixUseA> a[TM];
            [[unroll]] for (uint i = 0u; i < TM; i++)
                coopMatLoad(a[i], as_, (cur * BM + wm * SM + i * CM_M) * LD + kk / 4u, LD, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint j = 0u; j < TN; j++) {
                coopmat<float16_t, gl_ScopeSubgroup, CM_K, CM_N, gl_MatrixUseB> b;
                coopMatLoad(b, bs_, (cur * BN + wn * SN + j * CM_N) * LD + kk / 4u, LD, gl_CooperativeMatrixLayoutColumnMajor);
                [[unroll]] for (uint i = 0u; i < TM; i++) acc[i * TN + j] = coopMatMulAdd(a[i], b, acc[i * TN + j]);
            }
        }
        // The other buffer was last read in step kt-1, which ended with a barrier.
        if (kt + 1u < nk) stash(cur ^ 1u);
        barrier();
    }

    // Epilogue through a per-subgroup scratch tile: bounds for ragged M/N, and the residual.
    const uint cbase = sg * CM_M * CM_N;
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            coopMatStore(acc[i * TN + j], cs_, cbase, CM_N, gl_CooperativeMatrixLayoutRowMajor);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            const uint mb = m0 + wm * SM + i * CM_M, nb = n0 + wn * SN + j * CM_N;
            for (uint e = lane; e < CM_M * CM_N; e += gl_SubgroupSize)
                store_out(mb + e / CM_N, nb + e % CM_N, cs_[cbase + e]);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
}
#elif WDECODE
// ---------------------------------------------------------------- NV cooperative_matrix2, W by decode loads
// Computed transposed, Y^T = W X^T: W is operand A (BN x BK, its rows are A's rows, read with no
// view), X^T operand B (BK x BM: a tensor load of the fp32 X tile through a transposing view into an
// accumulator-use matrix, converted to fp16), and the BN x BM accumulator goes out through a
// transposing view. Nothing of ours in shared memory, no barrier of ours. CM_NBUF 2 (default): the
// tiles of step k+1 are loaded before the product of step k (register double buffering); 1: not.
// H100 (driver 580.159.04, bench-gemm, Phi-4 shapes, M 512/2048): X staged in shared memory beside
// the decode loads gave wrong results (NMSE ~1, with W as operand A or B); W as operand B through a
// transposing view with X by tensor loads: correct, 12-20 TFLOP/s; this arrangement 12-28 (best tile
// 256 x 128 x 32 with loads one step ahead, 27-28 in Q5_K), against 53-106 for the staged kernel in
// the same runs. Unclamped interior loads gave +30% (128 x 128 x 32, Q5_K), the step-ahead loads
// -6..-11% there (not measured without them at 256 x 128). The driver's pipeline compile of these
// modules takes seconds each (the validated test timed out in it).
void main()
{
    const uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
    coopmat<float, gl_ScopeWorkgroup, BN, BM, gl_MatrixUseAccumulator> acc =
        coopmat<float, gl_ScopeWorkgroup, BN, BM, gl_MatrixUseAccumulator>(0.0);
    const uint nk = p.K / BK;
    tensorViewNV<2, false, 1, 0> tr = createTensorViewNV(2, false, 1, 0);
    // Two copies of each layout: clamped (ragged edge tiles) and unclamped, which spares the
    // per-element bounds checks where the whole tile lies inside (every tile but the last row/column).
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lw = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    tensorLayoutNV<2> lwu = createTensorLayoutNV(2);
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lx = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    tensorLayoutNV<2> lxu = createTensorLayoutNV(2);
#if WTYPE != 1
    // strides in blocks (implicit: K / QB per row, rows are whole blocks back to back)
    lw = setTensorLayoutBlockSizeNV(lw, 1, DEC_QB);
    lw = setTensorLayoutDimensionNV(lw, p.N, p.K);
    lwu = setTensorLayoutBlockSizeNV(lwu, 1, DEC_QB);
    lwu = setTensorLayoutDimensionNV(lwu, p.N, p.K);
#define LOAD_W(a, L, kt) coopMatLoadTensorNV(a, w32, 0, sliceTensorLayoutNV(L, n0, BN, (kt) * BK, BK), w_decode)
#else
    lw = setTensorLayoutDimensionNV(lw, p.N, p.K);
    lw = setTensorLayoutStrideNV(lw, p.row_h, 1);
    lwu = setTensorLayoutDimensionNV(lwu, p.N, p.K);
    lwu = setTensorLayoutStrideNV(lwu, p.row_h, 1);
#define LOAD_W(a, L, kt) coopMatLoadTensorNV(a, wh, 0, sliceTensorLayoutNV(L, n0, BN, (kt) * BK, BK))
#endif
    lx = setTensorLayoutDimensionNV(lx, p.M, p.K);
    lx = setTensorLayoutStrideNV(lx, p.x_stride, 1);
    lxu = setTensorLayoutDimensionNV(lxu, p.M, p.K);
    lxu = setTensorLayoutStrideNV(lxu, p.x_stride, 1);
    const bool inside = n0 + BN <= p.N && m0 + BM <= p.M; // uniform over the workgroup
#define LOAD_X(xf, L, kt) coopMatLoadTensorNV(xf, x, 0, sliceTensorLayoutNV(L, m0, BM, (kt) * BK, BK), tr)
#define DEC_LOOP(LW, LX)                                                                                                  \
    if (CM_NBUF == 2u) {                                                                                                  \
        coopmat<float16_t, gl_ScopeWorkgroup, BN, BK, gl_MatrixUseA> a, an;                                               \
        coopmat<float, gl_ScopeWorkgroup, BK, BM, gl_MatrixUseAccumulator> xf, xn;                                        \
        LOAD_W(a, LW, 0u);                                                                                                \
        LOAD_X(xf, LX, 0u);                                                                                               \
        for (uint kt = 0u; kt < nk; kt++) {                                                                               \
            if (kt + 1u < nk) {                                                                                           \
                LOAD_W(an, LW, kt + 1u);                                                                                  \
                LOAD_X(xn, LX, kt + 1u);                                                                                  \
            }                                                                                                             \
            coopmat<float16_t, gl_ScopeWorkgroup, BK, BM, gl_MatrixUseB> b = coopmat<float16_t, gl_ScopeWorkgroup, BK, BM, gl_MatrixUseB>(xf); \
            acc = coopMatMulAdd(a, b, acc);                                                                               \
            a = an;                                                                                                       \
            xf = xn;                                                                                                      \
        }                                                                                                                 \
    } else {                                                                                                              \
        for (uint kt = 0u; kt < nk; kt++) {                                                                               \
            coopmat<float16_t, gl_ScopeWorkgroup, BN, BK, gl_MatrixUseA> a;                                               \
            LOAD_W(a, LW, kt);                                                                                            \
            coopmat<float, gl_ScopeWorkgroup, BK, BM, gl_MatrixUseAccumulator> xf;                                        \
            LOAD_X(xf, LX, kt);                                                                                           \
            coopmat<float16_t, gl_ScopeWorkgroup, BK, BM, gl_MatrixUseB> b = coopmat<float16_t, gl_ScopeWorkgroup, BK, BM, gl_MatrixUseB>(xf); \
            acc = coopMatMulAdd(a, b, acc);                                                                               \
        }                                                                                                                 \
    }
    if (inside) { DEC_LOOP(lwu, lxu) }
    else { DEC_LOOP(lw, lx) }

    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> ly = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    ly = setTensorLayoutDimensionNV(ly, p.M, p.N);
    ly = setTensorLayoutStrideNV(ly, p.y_stride, 1);
    if (p.has_res != 0u) {
        tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lr = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
        lr = setTensorLayoutDimensionNV(lr, p.M, p.N);
        lr = setTensorLayoutStrideNV(lr, p.r_stride, 1);
        coopmat<float, gl_ScopeWorkgroup, BN, BM, gl_MatrixUseAccumulator> res;
        coopMatLoadTensorNV(res, r, 0, sliceTensorLayoutNV(lr, m0, BM, n0, BN), tr);
        acc = acc + res;
    }
    coopMatStoreTensorNV(acc, y, 0, sliceTensorLayoutNV(ly, m0, BM, n0, BN), tr);
}
#else
// ---------------------------------------------------------------- NV cooperative_matrix2, workgroup scope
// The same staged fp16 tiles; the whole BM x BN block is one workgroup-scope accumulator and each
// k-step is one BM x BK by BK x BN product, which the driver schedules over the workgroup's subgroups
// (no per-subgroup fragment bookkeeping, no epilogue scratch: the store is a clamped tensor store).
void main()
{
    const uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
    coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> acc =
        coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>(0.0);

    const uint nk = p.K / BK;
#if WTYPE == 1
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lw = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    lw = setTensorLayoutDimensionNV(lw, p.N, p.K);
    lw = setTensorLayoutStrideNV(lw, p.row_h, 1);
    tensorViewNV<2, false, 1, 0> wt = createTensorViewNV(2, false, 1, 0); // W rows are B's columns
    if (X_DIRECT) {
        // everything by tensor loads: X as an fp32 accumulator-use tile converted to fp16 operand A
        tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lx = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
        lx = setTensorLayoutDimensionNV(lx, p.M, p.K);
        lx = setTensorLayoutStrideNV(lx, p.x_stride, 1);
        for (uint kt = 0u; kt < nk; kt++) {
            coopmat<float, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseAccumulator> xf;
            coopMatLoadTensorNV(xf, x, 0, sliceTensorLayoutNV(lx, m0, BM, kt * BK, BK));
            coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> a = coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA>(xf);
            coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> b;
            coopMatLoadTensorNV(b, wh, 0, sliceTensorLayoutNV(lw, n0, BN, kt * BK, BK), wt);
            acc = coopMatMulAdd(a, b, acc);
        }
    } else
#endif
    if (CM_NBUF == 3u) {
        // Two-deep prefetch: while step kt multiplies from shared buffer kt % 2, the global loads of
        // step kt + 2 are in flight into one register set and step kt + 1 (loaded during step kt - 1)
        // is stored from the other into buffer (kt + 1) % 2. Two steps per iteration keep the sets literal.
        fetch_set(0u, m0, n0, 0u);
        stash_set(0u, 0u);
        if (nk > 1u) fetch_set(0u, m0, n0, BK);
        barrier();
        for (uint kt = 0u; kt < nk; kt += 2u) {
            if (kt + 2u < nk) fetch_set(1u, m0, n0, (kt + 2u) * BK);
            {
                coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> a;
                coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> b;
                coopMatLoad(a, as_, 0u, LD, gl_CooperativeMatrixLayoutRowMajor);
                coopMatLoad(b, bs_, 0u, LD, gl_CooperativeMatrixLayoutColumnMajor);
                acc = coopMatMulAdd(a, b, acc);
            }
            if (kt + 1u < nk) stash_set(0u, 1u);
            barrier();
            if (kt + 1u >= nk) break;
            if (kt + 3u < nk) fetch_set(0u, m0, n0, (kt + 3u) * BK);
            {
                coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> a;
                coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> b;
                coopMatLoad(a, as_, BM * LD, LD, gl_CooperativeMatrixLayoutRowMajor);
                coopMatLoad(b, bs_, BN * LD, LD, gl_CooperativeMatrixLayoutColumnMajor);
                acc = coopMatMulAdd(a, b, acc);
            }
            if (kt + 2u < nk) stash_set(1u, 0u);
            barrier();
        }
    } else {
    fetch(m0, n0, 0u);
    stash(0u);
    barrier();
    for (uint kt = 0u; kt < nk; kt++) {
        const uint cur = NBUF == 2u ? kt & 1u : 0u;
        if (kt + 1u < nk) fetch(m0, n0, (kt + 1u) * BK); // in flight during the product below
        coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> a;
        coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> b;
        coopMatLoad(a, as_, cur * BM * LD, LD, gl_CooperativeMatrixLayoutRowMajor);
#if WTYPE == 1
        if (W_DIRECT) coopMatLoadTensorNV(b, wh, 0, sliceTensorLayoutNV(lw, n0, BN, kt * BK, BK), wt);
        else
#endif
        coopMatLoad(b, bs_, cur * BN * LD, LD, gl_CooperativeMatrixLayoutColumnMajor);
        acc = coopMatMulAdd(a, b, acc);
        if (NBUF == 1u) barrier(); // one buffer: every read of it is done before it is overwritten
        if (kt + 1u < nk) stash(NBUF == 2u ? cur ^ 1u : 0u);
        barrier();
    }
    }

    // Clamped layouts: elements outside M x N are neither read (0) nor written, so the gaps of
    // strided rows and ragged tiles stay untouched.
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> ly = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    ly = setTensorLayoutDimensionNV(ly, p.M, p.N);
    ly = setTensorLayoutStrideNV(ly, p.y_stride, 1);
    if (p.has_res != 0u) {
        tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> lr = createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
        lr = setTensorLayoutDimensionNV(lr, p.M, p.N);
        lr = setTensorLayoutStrideNV(lr, p.r_stride, 1);
        coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator> res;
        coopMatLoadTensorNV(res, r, 0, sliceTensorLayoutNV(lr, m0, BM, n0, BN));
        acc = acc + res;
    }
    coopMatStoreTensorNV(acc, y, 0, sliceTensorLayoutNV(ly, m0, BM, n0, BN));
}
#endif
#endif
