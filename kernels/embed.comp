#version 450
// Embedding lookup:  out[t, :] = dequantize(table row ids[t])  for t < n_tok, with the table stored as
// in GGUF: n_vocab rows of n_embd elements of TYPE (constant 1, the GGUF type number: F32, F16, BF16,
// Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), each row a whole number of blocks.
//
// Layout: ids int32 [n_tok] (read from the device, so a recorded chain replays for any token);
// out float32 [n_tok][out_stride]; status uint [2]: an id outside [0, n_vocab) makes its row zeros,
// adds 1 to status[0] (sticky: the host zeros it once and checks it when it wants) and stores the id
// in status[1]. The table is never read for such an id.
// Decoding goes through common/blocks.glsl, with uint16 storage (U16=1) or portable uint32 storage
// (U16=0). Each thread makes 8 consecutive outputs of one row, with the 8-element decoder (D8 = 1,
// constant 2) or two 4-element calls (D8 = 0); D8 = 2 takes Q4_0's natural split (elements j..j+3
// and j+16..j+19). Tests run every form so that every decoder of blocks.glsl is checked.
// F32/F16/BF16 rows may have any length: a last partial group of 8 is written element by element.
// Workgroup WG (constant 0) threads along the row (x), tokens along y in a grid-stride loop.
// Per call: reads n_tok rows of the table (n_embd * bytes per element) + 4 * n_tok, writes
// 4 * n_embd * n_tok bytes; no FLOPs to speak of.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TYPE = 0;
layout(constant_id = 2) const uint D8 = 1;

#if U16
#extension GL_EXT_shader_16bit_storage : require
layout(std430, binding = 0) readonly buffer T16 { uint16_t w16[]; };
#define BLK_BUF_U16 w16
#else
layout(std430, binding = 0) readonly buffer T32 { uint w32[]; };
#define BLK_BUF_U32 w32
#endif
layout(std430, binding = 0) readonly buffer TF { float tf[]; };
layout(std430, binding = 0) readonly buffer TF4 { vec4 tf4[]; };
layout(std430, binding = 1) readonly buffer IDS { int ids[]; };
layout(std430, binding = 2) writeonly buffer OUT { float o[]; };
layout(std430, binding = 2) writeonly buffer OUT4 { vec4 o4[]; };
layout(std430, binding = 3) buffer STATUS { uint st[]; };

layout(push_constant) uniform Params {
    uint n_vocab;
    uint n_embd;
    uint n_tok;
    uint out_stride;  // elements between output rows
    uint row_units;   // row length in the unit of the table's addressing: floats for F32, halfwords else
    uint out_vec4;    // 1: out_stride % 4 == 0 (vec4 stores)
} p;

#include "common/blocks.glsl"

#define T_F32 0u
#define T_F16 1u
#define T_Q4_0 2u
#define T_Q8_0 8u
#define T_Q4_K 12u
#define T_Q5_K 13u
#define T_Q6_K 14u
#define T_BF16 30u

void store4(uint ob, uint e, vec4 v)
{
    if (p.out_vec4 != 0u) o4[(ob + e) >> 2] = v;
    else { o[ob + e] = v.x; o[ob + e + 1u] = v.y; o[ob + e + 2u] = v.z; o[ob + e + 3u] = v.w; }
}

// One plain element (F32/F16/BF16) of the row at `base` (floats or halfwords).
float plain1(uint base, uint e)
{
    if (TYPE == T_F32) return tf[base + e];
    if (TYPE == T_F16) return blk_f16(base + e);
    return uintBitsToFloat(blk_u16(base + e) << 16);
}

void main()
{
    const uint g = gl_GlobalInvocationID.x;
    const uint e0 = 8u * g;
    if (e0 >= p.n_embd) return;
    for (uint t = gl_WorkGroupID.y; t < p.n_tok; t += gl_NumWorkGroups.y) {
        const int id = ids[t];
        const uint ob = t * p.out_stride;
        if (id < 0 || uint(id) >= p.n_vocab) {
            // zeros, and one report per bad token (from its first thread)
            if (e0 + 8u <= p.n_embd) { store4(ob, e0, vec4(0)); store4(ob, e0 + 4u, vec4(0)); }
            else for (uint e = e0; e < p.n_embd; e++) o[ob + e] = 0.0;
            if (g == 0u) { atomicAdd(st[0], 1u); st[1] = uint(id); }
            continue;
        }
        const uint base = uint(id) * p.row_units; // floats (F32) or halfwords (all others)
        vec4 a, b;
        if (TYPE == T_F32 || TYPE == T_F16 || TYPE == T_BF16) {
            if (e0 + 8u > p.n_embd || (TYPE == T_F32 && (p.n_embd & 3u) != 0u)) {
                // partial last group, or an F32 row that is not 16-byte aligned
                for (uint e = e0; e < min(e0 + 8u, p.n_embd); e++) o[ob + e] = plain1(base, e);
                continue;
            }
            if (TYPE == T_F32) { a = tf4[(base + e0) >> 2]; b = tf4[(base + e0 + 4u) >> 2]; }
            else if (TYPE == T_F16) { a = f16_dequant4(base, e0); b = f16_dequant4(base, e0 + 4u); }
            else { a = bf16_dequant4(base, e0); b = bf16_dequant4(base, e0 + 4u); }
        } else if (TYPE == T_Q8_0 || TYPE == T_Q4_0) {
            const uint h = base + (e0 >> 5) * (TYPE == T_Q8_0 ? Q8_0_HALFWORDS : Q4_0_HALFWORDS), i = e0 & 31u;
            if (TYPE == T_Q4_0 && D8 == 2u) {
                // thread (i/8) of the block makes elements j..j+3 and j+16..j+19, j = i/2
                const uint j = (i >> 3) << 2, eb = e0 - i;
                q4_0_dequant8_split(h, j, a, b);
                store4(ob, eb + j, a);
                store4(ob, eb + j + 16u, b);
                continue;
            }
            if (D8 != 0u) {
                if (TYPE == T_Q8_0) q8_0_dequant8(h, i, a, b); else q4_0_dequant8(h, i, a, b);
            } else if (TYPE == T_Q8_0) { a = q8_0_dequant4(h, i); b = q8_0_dequant4(h, i + 4u); }
            else { a = q4_0_dequant4(h, i); b = q4_0_dequant4(h, i + 4u); }
        } else {
            const uint hw = TYPE == T_Q4_K ? Q4_K_HALFWORDS : TYPE == T_Q5_K ? Q5_K_HALFWORDS : Q6_K_HALFWORDS;
            const uint h = base + (e0 >> 8) * hw, i = e0 & 255u;
            if (D8 != 0u) {
                if (TYPE == T_Q4_K) q4_k_dequant8(h, i, a, b);
                else if (TYPE == T_Q5_K) q5_k_dequant8(h, i, a, b);
                else q6_k_dequant8(h, i, a, b);
            } else if (TYPE == T_Q4_K) { a = q4_k_dequant4(h, i); b = q4_k_dequant4(h, i + 4u); }
            else if (TYPE == T_Q5_K) { a = q5_k_dequant4(h, i); b = q5_k_dequant4(h, i + 4u); }
            else { a = q6_k_dequant4(h, i); b = q6_k_dequant4(h, i + 4u); }
        }
        store4(ob, e0, a);
        store4(ob, e0 + 4u, b);
    }
}
