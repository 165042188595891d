#version 450
// Quantized mat-vec for decode:  y[v][o] = sum_i W[o][i] * x[v][i]  (+ r[v][o] when HAS_RES),
// for v < NV vectors (1..8). r may be y itself (in-place y += W x: each output is read and then
// written by the same invocation).
//
// Layout: W exactly as in GGUF: row o = output o, n_in elements of the type's blocks, rows
// contiguous (row_h halfwords each). The type is a -D define: F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K.
// x, y, r float32, vector v at v * {x,y,r}_stride elements. The vector paths read x as vec4
// (x_stride % 4 == 0, checked by the host).
//
// Workgroup: KS x RG groups of C lanes (constants 7, 1, 6; C = 8 on devices with subgroups of 8 or
// more). Group rg owns R consecutive rows (constant 2), so a workgroup owns RG*R rows; the KS groups
// with the same rg split those rows' units (interleaved by C) and add up through shared memory (one
// barrier). The C lanes of a group take consecutive units: 32 elements of a quantized row (one
// Q8_0/Q4_0 block, 1/8 of a K block: 16 bytes of Q4_K/Q5_K nibbles, 24 bytes of Q6_K), 4 (F32) or 8
// (F16/BF16) elements in the vector path (one uvec4 each), 1 element in the scalar path (VEC = 0,
// any n_in and stride). Q6_K, Q8_0 and Q4_0 blocks (2-byte aligned) are first copied into shared
// memory with coalesced uvec4 loads (STAGE, constant 8; see "Staging" below).
// Default since the H100 sweep (runtime/ops_matvec.c): C = the subgroup size, KS = 1, R = 2, i.e.
// one subgroup per 2 rows, no shared memory or barrier (Q6_K still staged). The 8-lane groups below
// remain as tuning options; on the H100 they measured slower (x reuse did not pay for the split).
// Why groups of 8 lanes rather than whole subgroups per row (the original reasoning): all groups of a
// subgroup read the same x addresses at the same time (the cache broadcasts them), so one x load
// instruction touches the x of one block (8 lines) instead of four (32 lines, each a separate L1
// wavefront on NVIDIA), and the K split keeps a row spread over KS*C lanes. The R rows' loads of a
// unit are issued together and two units are processed per loop step, so each lane keeps 2*R
// independent weight loads in flight (the H100 needs tens of KB in flight per SM); x is read
// through the cache once per unit and reused for the R rows. Quantized codes become floats by the
// exponent trick (2^23 + q has q in its mantissa; subtracting 2^23 is exact) instead of int-to-float
// conversions, which are quarter rate on NVIDIA. Scales are applied per sub-block:
// d*sc * sum(q*x) - dmin*m * sum(x), with sum(x) shared by the R rows. A group's lanes add up with
// subgroupShuffleXor.
//
// Per call: reads the weight bytes (vkllm_dtype_bytes(type, n_in) * n_out) once, x (4*n_in*NV bytes,
// from the cache for all but the first reader), writes 4*n_out*NV bytes (+ reads as many of r); FLOPs
// 2*n_in*n_out*NV. The benchmark divides the weight bytes by time.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

layout(local_size_x_id = 0) in; // = KS * RG * C
layout(constant_id = 1) const uint RG = 4;  // lane groups (of R rows each) per workgroup
layout(constant_id = 2) const uint R = 2;   // rows per lane group
layout(constant_id = 3) const uint NV = 1;  // vectors
layout(constant_id = 4) const uint HAS_RES = 0;
layout(constant_id = 5) const uint VEC = 1; // float types: one uvec4 of weights per unit
layout(constant_id = 6) const uint C = 8;   // lanes per group: a power of two <= the subgroup size
layout(constant_id = 7) const uint KS = 4;  // groups that split each row's units
layout(constant_id = 8) const uint STAGE = 0; // Q6_K/Q8_0/Q4_0 through shared memory (whole blocks per group)
layout(constant_id = 9) const uint XCK = 0;   // x staged in shared memory in chunks of XCK vec4s per vector (0: x via the cache)

layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 0) readonly buffer W1 { uint w32[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) readonly buffer X1 { float x1[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer Res { float res[]; };

layout(push_constant) uniform Params {
    uint n_in;
    uint n_out;
    uint row_h;    // halfwords per weight row
    uint x_stride; // elements between vectors
    uint y_stride;
    uint r_stride;
} p;

// x staging (XCK != 0; experimental, off by default: on the H100 it lost 3x where x needs several
// chunks and did not win clearly elsewhere): the workgroup copies a chunk of every vector's x into shared memory (one
// coalesced pass, two barriers per chunk) and the units read it from there. Read through the cache,
// x was evicted from L1 by the streaming weights and re-read from L2 by every subgroup (7x the weight
// bytes for Q4_K at one vector, 28x at four, if L1 keeps none of it) - the hypothesis for the 20-50% of
// the read ceiling and the swings between buffer placements, not confirmed by this variant. One vec4 of
// padding per 16 spreads the lanes' 16-byte reads (64 bytes apart within a K block) over all banks.
shared vec4 xsh[XCK != 0u ? NV * (XCK + XCK / 16u) : 1u];
uint xc0; // first vec4 (element / 4) of the staged chunk
// vec4 index of elements e..e+3 of vector v, then the load
uint XI(uint v, uint e) { return XCK != 0u ? v * XCK + (e >> 2) - xc0 : (v * p.x_stride + e) >> 2; }
vec4 XR(uint i) { return XCK != 0u ? xsh[i + (i >> 4)] : x4[i]; }

#define BLK_BUF_U32 w32
#include "common/blocks.glsl"

shared float part[KS * RG * R * NV]; // per-group sums when KS > 1
float acc[R * NV]; // acc[r * NV + v]: this lane's partial dot of row r with vector v
uint grp;          // this lane's group in the workgroup
uint row[R];       // the R rows (clamped to n_out - 1; the extra ones are not written)

const float MAGIC = 8388608.0;
float sum4(vec4 v) { return (v.x + v.y) + (v.z + v.w); }
// Codes as 1 + q/2^n (the n-bit code q of byte k of w moved into the top mantissa bits of 1.0):
// one shift and one AND/OR per element and no subtraction, since sum(q*x) = 2^n * (sum(f*x) - sum(x))
// and sum(x) per 32 elements is shared by all rows (f*x stays within 2|x|, so the difference loses
// at most a few bits: relative error ~1e-6, NMSE ~1e-13, against the 1e-9 bound). Conversions of
// codes to floats otherwise cost an int-to-float (quarter rate on NVIDIA) or a subtraction each; the
// decode is most of the kernel's instructions and limited K-quant speed on the H100 (ALU-bound at
// 40-60% of the read ceiling, F16 at 96%).
const uint ONE = 0x3F800000u;
vec4 m4lo(uint w) { return uintBitsToFloat((uvec4(w << 19, w << 11, w << 3, w >> 5) & 0x00780000u) | ONE); } // low nibbles, 1+q/16
vec4 m4hi(uint w) { return uintBitsToFloat((uvec4(w << 15, w << 7, w >> 1, w >> 9) & 0x00780000u) | ONE); } // high nibbles
vec4 m5(uint w) { return uintBitsToFloat((uvec4(w << 18, w << 10, w << 2, w >> 6) & 0x007C0000u) | ONE); }    // 5-bit bytes, 1+q/32
vec4 m6(uint w) { return uintBitsToFloat((uvec4(w << 17, w << 9, w << 1, w >> 7) & 0x007E0000u) | ONE); }     // 6-bit bytes, 1+q/64
vec4 m8(uint w) { return uintBitsToFloat((uvec4(w << 15, w << 7, w >> 1, w >> 9) & 0x007F8000u) | ONE); }     // bytes, 1+q/256
// small unsigned integer to float without an int-to-float conversion
float u2f(uint v) { return uintBitsToFloat(v | 0x4B000000u) - MAGIC; }

#if defined(Q6_K) || defined(Q8_0) || defined(Q4_0)
// Staging (STAGE != 0): Q6_K, Q8_0 and Q4_0 blocks (210, 34, 18 bytes) are only 2-byte aligned, so
// direct reads are 32-bit words at block strides (a fraction of each cache line used per load
// instruction). Staged, the C lanes of a group copy the blocks they are about to decode, for each of
// their R rows, with coalesced uvec4 loads of the 16-byte chunks covering them (a whole line per 8
// lanes) into shared memory, then decode from there. Region per (group, row): CHL*C chunks + 4 words.
#if defined(Q6_K)
const uint UPB = 8u, BHW = Q6_K_HALFWORDS; // units per block, halfwords per block
#elif defined(Q8_0)
const uint UPB = 1u, BHW = Q8_0_HALFWORDS;
#else
const uint UPB = 1u, BHW = Q4_0_HALFWORDS;
#endif
const uint CH = ((C / UPB) * BHW * 2u + 14u + 15u) >> 4; // most chunks a group's blocks can touch
const uint CHL = (CH + C - 1u) / C;                       // chunks per lane
const uint REGW = CHL * C * 4u + 4u;
shared uint stg[STAGE != 0u ? KS * RG * R * REGW : 1u];
uint stbase[R]; // word index of each row's first staged chunk

// The whole group, at its first unit ub (a multiple of UPB: whole blocks).
void stage(uint ub, uint lane)
{
    const uint nb = p.n_in >> (UPB == 8u ? 8 : 5);
    const uint b0 = ub / UPB, nbk = min(C / UPB, nb - b0);
    for (uint r = 0; r < R; r++) {
        const uint h0 = row[r] * p.row_h + b0 * BHW;
        const uint c0 = h0 >> 3, c1 = (h0 + nbk * BHW + 7u) >> 3;
        stbase[r] = c0 << 2;
        const uint reg = (grp * R + r) * REGW;
        for (uint i = 0; i < CHL; i++) {
            const uint k = lane + i * C;
            if (c0 + k < c1) {
                const uvec4 v = w4[c0 + k];
                stg[reg + 4u * k] = v.x;
                stg[reg + 4u * k + 1u] = v.y;
                stg[reg + 4u * k + 2u] = v.z;
                stg[reg + 4u * k + 3u] = v.w;
            }
        }
    }
    subgroupBarrier();
}
// Word wi of the weights (row slot r), staged or from the buffer.
uint wword(uint wi, uint r) { return STAGE != 0u ? stg[(grp * R + r) * REGW + wi - stbase[r]] : w32[wi]; }
// 2 words starting at halfword a (row slot r).
uvec2 ld2h_r(uint a, uint r)
{
    const uint w = a >> 1;
    const uint x0 = wword(w, r), x1 = wword(w + 1u, r);
    if ((a & 1u) == 0u) return uvec2(x0, x1);
    const uint x2 = wword(w + 2u, r);
    return uvec2((x0 >> 16) | (x1 << 16), (x1 >> 16) | (x2 << 16));
}
#endif

#if defined(Q4_K) || defined(Q5_K)
// (sc, m) of sub-block s from the three scale words of a K block header.
uvec2 ksm(uvec3 sw, uint s)
{
    const uint lo = s < 4u ? s : s + 4u; // byte holding sc (s < 4) or the low bits of both (s >= 4)
    const uint b0 = (sw[lo >> 2] >> ((lo & 3u) << 3)) & 0xffu;
    if (s < 4u) return uvec2(b0 & 63u, (sw[1] >> (s << 3)) & 63u);
    const uint bs = (sw[0] >> ((s - 4u) << 3)) & 0xffu, bm = (sw[1] >> ((s - 4u) << 3)) & 0xffu;
    return uvec2((b0 & 15u) | ((bs >> 6) << 4), (b0 >> 4) | ((bm >> 6) << 4));
}
#endif

void unit(uint u)
{
#if defined(Q4_K) || defined(Q5_K)
#if defined(Q4_K)
    const uint BLK4 = 9u; // 144 bytes in uvec4s
#else
    const uint BLK4 = 11u; // 176 bytes
#endif
    const uint b = u >> 3, j = u & 7u, g = j >> 1;
    const uint xe = b * 256u + 64u * g + 16u * (j & 1u); // first low-nibble element; high ones at +32
    uvec4 hd[R], qs[R];
#if defined(Q5_K)
    uvec4 qh[R];
#endif
    for (uint r = 0; r < R; r++) {
        const uint base = row[r] * (p.row_h >> 3) + b * BLK4;
        hd[r] = w4[base];
#if defined(Q4_K)
        qs[r] = w4[base + 1u + j];
#else
        qh[r] = w4[base + 1u + (j & 1u)];
        qs[r] = w4[base + 3u + j];
#endif
    }
    vec4 f[R]; // d*sc and dmin*m of the low (sub-block 2g) and high (2g+1) halves
    for (uint r = 0; r < R; r++) {
        const uvec2 sl = ksm(hd[r].yzw, 2u * g), sh = ksm(hd[r].yzw, 2u * g + 1u);
        const float d = blk_half(hd[r].x), dm = blk_half(hd[r].x >> 16);
        f[r] = vec4(d * u2f(sl.x), dm * u2f(sl.y), d * u2f(sh.x), dm * u2f(sh.y));
    }
    for (uint v = 0; v < NV; v++) {
        const uint xi = XI(v, xe);
        const vec4 a0 = XR(xi), a1 = XR(xi + 1u), a2 = XR(xi + 2u), a3 = XR(xi + 3u);
        const vec4 c0 = XR(xi + 8u), c1 = XR(xi + 9u), c2 = XR(xi + 10u), c3 = XR(xi + 11u);
        const float sa = sum4((a0 + a1) + (a2 + a3)), sc = sum4((c0 + c1) + (c2 + c3));
        for (uint r = 0; r < R; r++) {
#if defined(Q4_K)
            const float fl = (dot(m4lo(qs[r].x), a0) + dot(m4lo(qs[r].y), a1)) + (dot(m4lo(qs[r].z), a2) + dot(m4lo(qs[r].w), a3));
            const float fh = (dot(m4hi(qs[r].x), c0) + dot(m4hi(qs[r].y), c1)) + (dot(m4hi(qs[r].z), c2) + dot(m4hi(qs[r].w), c3));
            const float dl = 16.0 * (fl - sa), dh = 16.0 * (fh - sc); // sum(q*x) of each half
#else
            const uvec4 lo = (qs[r] & 0x0f0f0f0fu) | (((qh[r] >> (2u * g)) & 0x01010101u) << 4);
            const uvec4 hi = ((qs[r] >> 4) & 0x0f0f0f0fu) | (((qh[r] >> (2u * g + 1u)) & 0x01010101u) << 4);
            const float fl = (dot(m5(lo.x), a0) + dot(m5(lo.y), a1)) + (dot(m5(lo.z), a2) + dot(m5(lo.w), a3));
            const float fh = (dot(m5(hi.x), c0) + dot(m5(hi.y), c1)) + (dot(m5(hi.z), c2) + dot(m5(hi.w), c3));
            const float dl = 32.0 * (fl - sa), dh = 32.0 * (fh - sc);
#endif
            acc[r * NV + v] += (f[r].x * dl - f[r].y * sa) + (f[r].z * dh - f[r].w * sc);
        }
    }
#elif defined(Q6_K)
    // unit j of block b: half t = j/4, l = lq..lq+7 (lq = 8*(j%4)) of each of the 4 groups g:
    // element 128t + 32g + l; low bits in ql[64t + 32(g&1) + l] nibble g>>1, high in qh[32t + l] bits 2g.
    const uint b = u >> 3, j = u & 7u, t = j >> 2, lq = (j & 3u) << 3;
    uvec2 qa[R], qb[R], qh[R], sw[R];
    float d[R];
    for (uint r = 0; r < R; r++) {
        const uint h = row[r] * p.row_h + b * Q6_K_HALFWORDS;
        qa[r] = ld2h_r(h + (t << 5) + (lq >> 1), r);
        qb[r] = ld2h_r(h + (t << 5) + 16u + (lq >> 1), r);
        qh[r] = ld2h_r(h + 64u + (t << 4) + (lq >> 1), r);
        sw[r] = ld2h_r(h + 96u + (t << 2), r);
        const uint hd = h + 104u;
        d[r] = blk_half(wword(hd >> 1, r) >> ((hd & 1u) << 4));
    }
    const uint xe = b * 256u + 128u * t + lq, sb = lq >> 4; // scale of group g: byte sb + 2g of sw
    for (uint v = 0; v < NV; v++) {
        const uint xi = XI(v, xe);
        const vec4 x00 = XR(xi), x01 = XR(xi + 1u), x10 = XR(xi + 8u), x11 = XR(xi + 9u);
        const vec4 x20 = XR(xi + 16u), x21 = XR(xi + 17u), x30 = XR(xi + 24u), x31 = XR(xi + 25u);
        const float xs[4] = float[4](sum4(x00 + x01), sum4(x10 + x11), sum4(x20 + x21), sum4(x30 + x31));
        for (uint r = 0; r < R; r++) {
            const uvec2 c0 = (qa[r] & 0x0f0f0f0fu) | ((qh[r] & 0x03030303u) << 4);
            const uvec2 c1 = (qb[r] & 0x0f0f0f0fu) | (((qh[r] >> 2) & 0x03030303u) << 4);
            const uvec2 c2 = ((qa[r] >> 4) & 0x0f0f0f0fu) | (((qh[r] >> 4) & 0x03030303u) << 4);
            const uvec2 c3 = ((qb[r] >> 4) & 0x0f0f0f0fu) | (((qh[r] >> 6) & 0x03030303u) << 4);
            // sum((q - 32) x) = 64 sum(f x) - 96 sum(x) with f = 1 + q/64
            const float s0 = 64.0 * (dot(m6(c0.x), x00) + dot(m6(c0.y), x01)) - 96.0 * xs[0];
            const float s1 = 64.0 * (dot(m6(c1.x), x10) + dot(m6(c1.y), x11)) - 96.0 * xs[1];
            const float s2 = 64.0 * (dot(m6(c2.x), x20) + dot(m6(c2.y), x21)) - 96.0 * xs[2];
            const float s3 = 64.0 * (dot(m6(c3.x), x30) + dot(m6(c3.y), x31)) - 96.0 * xs[3];
            // int8 scales sb, sb+2 (word 0) and sb+4, sb+6 (word 1)
            const ivec2 si = ivec2(sw[r]);
            const float k0 = float(bitfieldExtract(si.x, int(sb << 3), 8)), k1 = float(bitfieldExtract(si.x, int((sb + 2u) << 3), 8));
            const float k2 = float(bitfieldExtract(si.y, int(sb << 3), 8)), k3 = float(bitfieldExtract(si.y, int((sb + 2u) << 3), 8));
            acc[r * NV + v] += d[r] * ((k0 * s0 + k1 * s1) + (k2 * s2 + k3 * s3));
        }
    }
#elif defined(Q8_0) || defined(Q4_0)
    // unit = block u; the block starts at halfword h: d, then the codes. 9 (5) words cover it for
    // either parity of h.
#if defined(Q8_0)
    const uint NW = 8u, HW = Q8_0_HALFWORDS;
#else
    const uint NW = 4u, HW = Q4_0_HALFWORDS;
#endif
    uint q[R][NW];
    float d[R];
    for (uint r = 0; r < R; r++) {
        const uint h = row[r] * p.row_h + u * HW, w = h >> 1;
        const uint a0 = wword(w, r);
        uint prev = a0;
        if ((h & 1u) == 0u) {
            d[r] = blk_half(a0);
            for (uint i = 0; i < NW; i++) {
                const uint nx = wword(w + 1u + i, r);
                q[r][i] = (prev >> 16) | (nx << 16);
                prev = nx;
            }
        } else {
            d[r] = blk_half(a0 >> 16);
            for (uint i = 0; i < NW; i++) q[r][i] = wword(w + 1u + i, r);
        }
    }
    for (uint v = 0; v < NV; v++) {
        const uint xi = XI(v, u * 32u);
        vec4 xv[8];
        for (uint i = 0; i < 8u; i++) xv[i] = XR(xi + i);
        const float xsum = sum4(((xv[0] + xv[1]) + (xv[2] + xv[3])) + ((xv[4] + xv[5]) + (xv[6] + xv[7])));
        for (uint r = 0; r < R; r++) {
            float s = 0.0;
#if defined(Q8_0)
            // sum((u - 128) x) = 256 sum(f x) - 384 sum(x), u = q + 128, f = 1 + u/256
            for (uint i = 0; i < 8u; i++) s += dot(m8(q[r][i] ^ 0x80808080u), xv[i]);
            s = 256.0 * s - 384.0 * xsum;
#else
            // sum((q - 8) x) = 16 sum(f x) - 24 sum(x), f = 1 + q/16
            for (uint i = 0; i < 4u; i++) s += dot(m4lo(q[r][i]), xv[i]) + dot(m4hi(q[r][i]), xv[i + 4u]);
            s = 16.0 * s - 24.0 * xsum;
#endif
            acc[r * NV + v] += d[r] * s;
        }
    }
#elif defined(F32) || defined(F16) || defined(BF16)
    if (VEC != 0) {
        // one uvec4 per unit: 4 (F32) or 8 (F16/BF16) elements; rows are 16-byte aligned (host checks)
        uvec4 wv[R];
        for (uint r = 0; r < R; r++) wv[r] = w4[row[r] * (p.row_h >> 3) + u];
        for (uint v = 0; v < NV; v++) {
#if defined(F32)
            const vec4 xa = XR(XI(v, 4u * u));
            for (uint r = 0; r < R; r++) acc[r * NV + v] += dot(uintBitsToFloat(wv[r]), xa);
#else
            const uint xi = XI(v, 8u * u);
            const vec4 xa = XR(xi), xb = XR(xi + 1u);
            for (uint r = 0; r < R; r++) {
#if defined(F16)
                // unpackHalf2x16: fp16 subnormals (|w| < 6.1e-5) may be flushed by some drivers; their
                // share of a dot product is below float32 rounding of realistic rows.
                const vec4 wa = vec4(unpackHalf2x16(wv[r].x), unpackHalf2x16(wv[r].y));
                const vec4 wb = vec4(unpackHalf2x16(wv[r].z), unpackHalf2x16(wv[r].w));
#else
                const vec4 wa = uintBitsToFloat(uvec4(wv[r].x << 16, wv[r].x & 0xffff0000u, wv[r].y << 16, wv[r].y & 0xffff0000u));
                const vec4 wb = uintBitsToFloat(uvec4(wv[r].z << 16, wv[r].z & 0xffff0000u, wv[r].w << 16, wv[r].w & 0xffff0000u));
#endif
                acc[r * NV + v] += dot(wa, xa) + dot(wb, xb);
            }
#endif
        }
    } else {
        // scalar: element u of any row length and stride
        float wv[R];
        for (uint r = 0; r < R; r++) {
#if defined(F32)
            wv[r] = uintBitsToFloat(w32[row[r] * (p.row_h >> 1) + u]);
#else
            const uint h = row[r] * p.row_h + u;
            const uint bits = (w32[h >> 1] >> ((h & 1u) << 4)) & 0xffffu;
#if defined(F16)
            wv[r] = blk_half(bits);
#else
            wv[r] = uintBitsToFloat(bits << 16);
#endif
#endif
        }
        for (uint v = 0; v < NV; v++) {
            const float xs = x1[v * p.x_stride + u];
            for (uint r = 0; r < R; r++) acc[r * NV + v] += wv[r] * xs;
        }
    }
#else
#error "define one of F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K"
#endif
}

uint units_per_row()
{
#if defined(F32)
    return VEC != 0 ? p.n_in >> 2 : p.n_in;
#elif defined(F16) || defined(BF16)
    return VEC != 0 ? p.n_in >> 3 : p.n_in;
#else
    return p.n_in >> 5; // 32 elements per unit for every quantized type
#endif
}

void main()
{
    // thread t = (ks * RG + rg) * C + lane: lane group rg owns rows base + rg*R .. +R-1; the KS
    // groups of a row split its units (interleaved by C), then meet in shared memory.
    const uint t = gl_LocalInvocationID.x, lane = t % C, rg = (t / C) % RG, ks = t / (C * RG);
    const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    const uint base = wg * (RG * R);
    if (base >= p.n_out) return; // the whole workgroup (grid padding)
    for (uint r = 0; r < R; r++) row[r] = min(base + rg * R + r, p.n_out - 1u);
    for (uint i = 0; i < R * NV; i++) acc[i] = 0.0;
    grp = t / C;
    const uint units = units_per_row(), step = KS * C;
    // x chunks (one chunk of all units when XCK = 0): units c0u..c1u
    const uint epu = p.n_in / max(units, 1u); // elements per unit (32, 8, 4; 1 in the scalar path, never staged)
    const uint cu = XCK != 0u ? XCK * 4u / epu : units;
    for (uint c0u = 0; c0u < units; c0u += cu) {
        const uint c1u = min(units, c0u + cu);
        if (XCK != 0u) {
            barrier(); // the previous chunk is consumed
            xc0 = c0u * epu / 4u;
            const uint n4 = (c1u - c0u) * epu / 4u;
            for (uint v = 0; v < NV; v++)
                for (uint i = t; i < n4; i += gl_WorkGroupSize.x) {
                    const uint d = v * XCK + i;
                    xsh[d + (d >> 4)] = x4[((v * p.x_stride) >> 2) + xc0 + i];
                }
            barrier();
        }
#if defined(Q6_K) || defined(Q8_0) || defined(Q4_0)
        if (STAGE != 0u) {
            // group-uniform loop (ub is the group's first unit): stage, decode, wait before restaging
            for (uint ub = c0u + ks * C; ub < c1u; ub += step) {
                stage(ub, lane);
                if (ub + lane < c1u) unit(ub + lane);
                subgroupBarrier();
            }
        } else
#endif
        {
            uint u = c0u + ks * C + lane;
            for (; u + step < c1u; u += 2u * step) {
                unit(u);
                unit(u + step);
            }
            if (u < c1u) unit(u);
        }
    }
    // sum over the C lanes of the group (consecutive invocations, inside one subgroup)
    for (uint i = 0; i < R * NV; i++) {
        float s = acc[i];
        for (uint off = C >> 1; off > 0u; off >>= 1) s += subgroupShuffleXor(s, off);
        acc[i] = s;
    }
    if (KS == 1) {
        if (lane == 0u)
            for (uint r = 0; r < R; r++) {
                const uint o = base + rg * R + r;
                if (o < p.n_out)
                    for (uint v = 0; v < NV; v++)
                        y[v * p.y_stride + o] = HAS_RES != 0 ? acc[r * NV + v] + res[v * p.r_stride + o] : acc[r * NV + v];
            }
        return;
    }
    const uint NQ = RG * R * NV; // outputs of the workgroup: q = (rg * R + r) * NV + v
    if (lane == 0u)
        for (uint i = 0; i < R * NV; i++) part[ks * NQ + rg * R * NV + i] = acc[i];
    barrier();
    for (uint q = t; q < NQ; q += gl_WorkGroupSize.x) {
        float s = 0.0;
        for (uint k = 0; k < KS; k++) s += part[k * NQ + q];
        const uint o = base + q / NV, v = q % NV;
        if (o < p.n_out) y[v * p.y_stride + o] = HAS_RES != 0 ? s + res[v * p.r_stride + o] : s;
    }
}
