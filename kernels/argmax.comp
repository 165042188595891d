#version 450
// Argmax per row:  out[r] = the index of the largest x[r, i], i < n; ties go to the lowest index;
// NaN is ignored (it ranks below -inf); -0 and +0 are equal; a row of only NaN gives 0.
//
// Two passes (PASS define), because one workgroup cannot pull a 200k-float row fast enough:
//   PASS 1 (argmax_chunk): workgroup (c, r) reduces x[r, c*chunk .. c*chunk+chunk) to one
//          (key, index) pair in part[r * n_chunks + c];
//   PASS 2 (argmax_merge): workgroup r reduces the n_chunks pairs of row r and writes out[r].
// Values are compared as order-preserving uint keys (NaN -> 0, below -inf's key), so each
// reduction step is a subgroupMax of the key and a subgroupMin of the index among the lanes holding
// it; partials of the subgroups meet in shared memory. Any subgroup size (8 on lavapipe, 32 NVIDIA).
// Layout: x float32 [rows][stride]; part uvec2 [rows][n_chunks]; out uint32 [rows].
// Workgroup WG (constant 0) threads, VEC4 (constant 1: n, stride and chunk multiples of 4) loads
// 16 bytes per thread per step. Grid: (n_chunks, rows) for pass 1, (rows) for pass 2, both with
// grid-stride loops over rows beyond the grid.
// Per call: reads 4 * n * rows bytes (+ 8 * n_chunks * rows twice), writes 4 * rows; n * rows compares.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint VEC4 = 0;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
#if PASS == 1
layout(std430, binding = 1) writeonly buffer PART { uvec2 part[]; };
#else
layout(std430, binding = 1) readonly buffer PART { uvec2 part[]; };
layout(std430, binding = 2) writeonly buffer OUT { uint outp[]; };
#endif

layout(push_constant) uniform Params {
    uint n;
    uint rows;
    uint stride;   // elements between rows of x
    uint chunk;    // elements per pass-1 workgroup
    uint n_chunks; // ceil(n / chunk)
} p;

const uint NONE = 0xffffffffu;

uint key_of(float f)
{
    uint b = floatBitsToUint(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) return 0u; // NaN, tested on bits: immune to fast-math
    if (b == 0x80000000u) b = 0u;                   // -0 == +0
    return (b & 0x80000000u) != 0u ? ~b : (b | 0x80000000u);
}

// (k, i) better than (bk, bi): larger key, then lower index; NONE loses to anything.
void take(inout uint bk, inout uint bi, uint k, uint i)
{
    if (i != NONE && (bi == NONE || k > bk || (k == bk && i < bi))) { bk = k; bi = i; }
}

shared uint sh_k[64], sh_i[64];

// Workgroup-wide best pair; the result is valid in every thread.
uvec2 workgroup_best(uint bk, uint bi)
{
    uint m = subgroupMax(bi == NONE ? 0u : bk);
    uint mi = subgroupMin((bi != NONE && bk == m) ? bi : NONE);
    if (gl_NumSubgroups > 1u) {
        if (subgroupElect()) { sh_k[gl_SubgroupID] = m; sh_i[gl_SubgroupID] = mi; }
        barrier();
        uint k2 = 0u, i2 = NONE;
        for (uint s = 0u; s < gl_NumSubgroups; s++) take(k2, i2, sh_k[s], sh_i[s]);
        barrier(); // sh_* are reused by the next row
        m = k2;
        mi = i2;
    }
    return uvec2(m, mi);
}

void main()
{
    const uint WG = gl_WorkGroupSize.x, tid = gl_LocalInvocationID.x;
#if PASS == 1
    const uint c = gl_WorkGroupID.x;
    const uint lo = c * p.chunk, hi = min(p.n, lo + p.chunk);
    for (uint r = gl_WorkGroupID.y; r < p.rows; r += gl_NumWorkGroups.y) {
        uint bk = 0u, bi = NONE;
        if (VEC4 != 0) {
            // indices grow along each thread's walk, so a strict > keeps the lowest of equal values
            const uint rb = r * (p.stride >> 2);
            for (uint j = (lo >> 2) + tid; j < (hi >> 2); j += WG) {
                const vec4 v = x4[rb + j];
                const uint e = 4u * j;
                take(bk, bi, key_of(v.x), e);
                take(bk, bi, key_of(v.y), e + 1u);
                take(bk, bi, key_of(v.z), e + 2u);
                take(bk, bi, key_of(v.w), e + 3u);
            }
        } else {
            const uint rb = r * p.stride;
            for (uint e = lo + tid; e < hi; e += WG) take(bk, bi, key_of(x[rb + e]), e);
        }
        const uvec2 b = workgroup_best(bk, bi);
        if (tid == 0u) part[r * p.n_chunks + c] = b;
    }
#else
    for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
        uint bk = 0u, bi = NONE;
        for (uint c = tid; c < p.n_chunks; c += WG) {
            const uvec2 q = part[r * p.n_chunks + c];
            take(bk, bi, q.x, q.y);
        }
        const uvec2 b = workgroup_best(bk, bi);
        if (tid == 0u) outp[r] = b.y == NONE ? 0u : b.y;
    }
#endif
}
