#version 450
// Top-k per row:  the k (<= 64) largest x[r, i], i < n, sorted descending, ties by the lower index,
// as values vals[r][0..k) and indices idx[r][0..k). NaN ranks below -inf (it appears only if a row
// has fewer than k other values); -0 and +0 are equal (then the lower index first).
//
// Two passes (PASS define):
//   PASS 1 (topk_chunk): workgroup (c, r) takes CHUNK = 256 * EPT elements of row r into registers
//          and writes their top k as (key, index) pairs, sorted, to cand[r][c][0..k) (a chunk with
//          m < k elements pads with (0, 0xffffffff), which pass 2 skips);
//   PASS 2 (topk_merge): workgroup r selects the top k of the n_chunks * k candidates of row r (in
//          registers when they fit: up to 4096, i.e. n <= 131072 at k = 64, any vocab at k <= 40) and
//          writes the values (re-read from x, so -0 and NaN payloads come back as they were) and
//          indices.
// Selection: every element is a unique 64-bit composite (key, ~index) where key is the
// order-preserving uint of the value (NaN -> 0), so "larger composite" is exactly "ranks higher".
// A radix select finds the k-th largest composite 8 bits at a time (256-bin histogram in shared
// memory, a workgroup suffix scan picks the bin), stopping as soon as the chosen bin holds exactly
// as many elements as are still needed (usually after 3-4 of the 8 digits); the k chosen elements
// are then placed by rank (each compares itself with the k - 1 others: one barrier, no sort network).
// Workgroup: 256 threads (one histogram bin each), any subgroup size.
// Per call: reads 4 * n * rows bytes (+ 8 * k * n_chunks * rows written and read back), writes
// 8 * k * rows.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

#define WG 256u
#define EPT 8u
#define CHUNK (WG * EPT)
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
#if PASS == 1
layout(std430, binding = 1) writeonly buffer CAND { uvec2 cand[]; };
#else
layout(std430, binding = 1) readonly buffer CAND { uvec2 cand[]; };
layout(std430, binding = 2) writeonly buffer VALS { float vals[]; };
layout(std430, binding = 3) writeonly buffer IDX { uint oidx[]; };
#endif

layout(push_constant) uniform Params {
    uint n;
    uint rows;
    uint stride;   // elements between rows of x
    uint k;        // 1..64
    uint n_chunks; // ceil(n / CHUNK)
} p;

const uint NONE = 0xffffffffu;

uint key_of(float f)
{
    uint b = floatBitsToUint(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) return 0u; // NaN, tested on bits: immune to fast-math
    if (b == 0x80000000u) b = 0u;                   // -0 == +0
    return (b & 0x80000000u) != 0u ? ~b : (b | 0x80000000u);
}

shared uint hist[256];
shared uint scan_part[64];
shared uint s_bin, s_rem, s_cnt, s_count;
shared uint sel_k[64], sel_n[64];

// Inclusive prefix sum over the workgroup in thread order.
uint workgroup_incl_scan(uint v)
{
    const uint incl = subgroupInclusiveAdd(v);
    if (gl_SubgroupInvocationID == gl_SubgroupSize - 1u) scan_part[gl_SubgroupID] = incl;
    barrier();
    uint off = 0u;
    for (uint s = 0u; s < gl_SubgroupID; s++) off += scan_part[s];
    return incl + off;
}

bool comp_gt(uint ak, uint an, uint bk, uint bn) { return ak > bk || (ak == bk && an > bn); }

// The elements a workgroup selects from live in registers (CAP per thread): the chunk in pass 1,
// the candidates in pass 2 when they fit (n_chunks * k <= 256 * CAP; else pass 2 re-reads them from
// the scratch buffer, L2-resident, at every digit).
#if PASS == 1
#define CAP EPT
#else
#define CAP 16u
#endif
uint elem_k[CAP], elem_n[CAP]; // key and ~index of each element
bool elem_ok[CAP];             // false past the end (pass 1) or for a padding candidate (pass 2)

// Runs STEP(ok, ck, cn) on every element of this thread (a macro so both loops unroll or stream).
#if PASS == 1
#define FOR_EACH_ELEM(STEP) for (uint j = 0u; j < CAP; j++) STEP(elem_ok[j], elem_k[j], elem_n[j])
#else
#define FOR_EACH_ELEM(STEP)                                                           \
    if (in_regs) {                                                                    \
        for (uint j = 0u; j < CAP; j++) STEP(elem_ok[j], elem_k[j], elem_n[j])        \
    } else {                                                                          \
        for (uint j = tid; j < M; j += WG) {                                          \
            const uvec2 q_ = cand[cbase + j];                                         \
            STEP(q_.y != NONE, q_.x, ~q_.y)                                           \
        }                                                                             \
    }
#endif
#define HIST_STEP(ok, ck, cn)                                                                        \
    if ((ok) && ((ck) & mhi) == phi && ((cn) & mlo) == plo) atomicAdd(hist[((d < 4u ? (ck) : (cn)) >> shift) & 255u], 1u);
#define COLLECT_STEP(ok, ck, cn)                                                                     \
    if ((ok) && (((ck) & mhi) > phi || (((ck) & mhi) == phi && ((cn) & mlo) >= plo))) {               \
        const uint s_ = atomicAdd(s_count, 1u);                                                      \
        sel_k[s_] = (ck);                                                                            \
        sel_n[s_] = (cn);                                                                            \
    }

void main()
{
    const uint tid = gl_LocalInvocationID.x, k = p.k;
#if PASS == 1
    const uint c = gl_WorkGroupID.x, lo = c * CHUNK, hi = min(p.n, lo + CHUNK);
    const uint m = hi - lo; // valid elements in this chunk
    const uint kk = min(k, m);
    for (uint r = gl_WorkGroupID.y; r < p.rows; r += gl_NumWorkGroups.y) {
        for (uint j = 0u; j < CAP; j++) {
            const uint e = lo + tid + j * WG;
            elem_ok[j] = e < hi;
            elem_k[j] = e < hi ? key_of(x[r * p.stride + e]) : 0u;
            elem_n[j] = ~e;
        }
#else
    const uint kk = k;
    const uint M = p.n_chunks * k; // candidates per row
    const bool in_regs = M <= WG * CAP;
    for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
        const uint cbase = r * M;
        if (in_regs)
            for (uint j = 0u; j < CAP; j++) {
                const uint i = tid + j * WG;
                const uvec2 q = i < M ? cand[cbase + i] : uvec2(0u, NONE);
                elem_ok[j] = q.y != NONE;
                elem_k[j] = q.x;
                elem_n[j] = ~q.y;
            }
#endif
        // radix select of the kk-th largest composite: prefix/mask over (key, ~index)
        uint phi = 0u, plo = 0u, mhi = 0u, mlo = 0u, rem = kk;
        bool need = true;
#if PASS == 1
        need = m > k; // a chunk of at most k elements is taken whole
#endif
        for (uint d = 0u; d < 8u && need; d++) {
            const uint shift = 24u - 8u * (d & 3u);
            hist[tid] = 0u;
            barrier();
            FOR_EACH_ELEM(HIST_STEP)
            barrier();
            const uint h = hist[255u - tid];
            const uint incl = workgroup_incl_scan(h); // = elements in bins >= 255 - tid
            if (incl >= rem && incl - h < rem) { s_bin = 255u - tid; s_rem = rem - (incl - h); s_cnt = h; }
            barrier();
            const uint bin = s_bin, cnt = s_cnt;
            rem = s_rem;
            if (d < 4u) { phi |= bin << shift; mhi |= 255u << shift; }
            else { plo |= bin << shift; mlo |= 255u << shift; }
            need = cnt != rem; // the chosen bin is taken whole: done
            barrier();         // s_* and hist are rewritten by the next digit
        }
        // collect: composites whose masked prefix is >= the found one (exactly kk of them)
        if (tid == 0u) s_count = 0u;
        barrier();
        FOR_EACH_ELEM(COLLECT_STEP)
        barrier();
        if (tid < kk) {
            const uint ck = sel_k[tid], cn = sel_n[tid];
            uint rank = 0u;
            for (uint j = 0u; j < kk; j++) rank += comp_gt(sel_k[j], sel_n[j], ck, cn) ? 1u : 0u;
#if PASS == 1
            cand[(r * p.n_chunks + c) * k + rank] = uvec2(ck, ~cn);
#else
            const uint e = ~cn;
            vals[r * k + rank] = x[r * p.stride + e];
            oidx[r * k + rank] = e;
#endif
        }
#if PASS == 1
        else if (tid < k) cand[(r * p.n_chunks + c) * k + tid] = uvec2(0u, NONE);
#endif
        barrier(); // sel_* and s_count are reused by the next row
    }
}
