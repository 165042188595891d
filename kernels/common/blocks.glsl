// GGUF block formats on the GPU: decode 4 or 8 consecutive elements of one block into floats.
// Byte layouts and value formulas are those of host/quant.c (the CPU reference) and ggml:
//   Q8_0  34 B / 32:  d:f16 | int8 q[32]                          x = d*q
//   Q4_0  18 B / 32:  d:f16 | qs[16]  element j: low nibble of qs[j], element j+16: high nibble;  x = d*(q-8)
//   Q4_K 144 B / 256: d:f16 | dmin:f16 | scales[12] | qs[128]       x = d*sc[s]*q - dmin*m[s], s = e/32
//   Q5_K 176 B / 256: d | dmin | scales[12] | qh[32] | qs[128]      as Q4_K, bit s of qh[e%32] is bit 4
//   Q6_K 210 B / 256: ql[128] | qh[64] | int8 scales[16] | d:f16   x = d*scales[e/16]*(q-32)
// K scales (Q4_K/Q5_K), 12 bytes b: s < 4: sc = b[s]&63, m = b[s+4]&63;
//   s >= 4: sc = (b[s+4]&15) | (b[s-4]>>6)<<4, m = (b[s+4]>>4) | (b[s]>>6)<<4.
//
// Storage. Every block size is even but Q8_0, Q4_0 and Q6_K blocks (17, 9, 105 halfwords) start on
// odd halfwords for odd block indices, so blocks are addressed in 16-bit units: `h` below is the
// halfword offset of the block's first byte in the buffer (tensor base / 2 + block * *_HALFWORDS).
// The including shader declares the buffer and names its array before the #include, one of:
//   #define BLK_BUF_U16 w16   // uint16_t w16[] (needs GL_EXT_shader_16bit_storage and the device's
//                             // storageBuffer16BitAccess; reads one halfword per access)
//   #define BLK_BUF_U32 w32   // uint w32[] (portable; a 32-bit read at an odd halfword costs two loads)
// All functions take `i`, the index of the first element inside the block; it must be a multiple of
// 4 (of 8 for the *_8 forms), so the elements never straddle a sub-block (16 or 32 elements).
// Values are computed in float32, in the same order as the CPU reference (d*sc first, then *q, then
// minus dmin*m), so on IEEE hardware they match vkllm_dequantize up to rounding of fused ops.
#ifndef VKLLM_BLOCKS_GLSL
#define VKLLM_BLOCKS_GLSL

#define Q8_0_HALFWORDS 17u
#define Q4_0_HALFWORDS 9u
#define Q4_K_HALFWORDS 72u
#define Q5_K_HALFWORDS 88u
#define Q6_K_HALFWORDS 105u
#define QK8_0 32u
#define QK4_0 32u
#define QK_K 256u

#if defined(BLK_BUF_U16)
#extension GL_EXT_shader_16bit_storage : require
uint blk_u16(uint h) { return uint(BLK_BUF_U16[h]); }
// 32 bits starting at halfword h (little-endian: byte 0 in bits 0-7).
uint blk_u32(uint h) { return uint(BLK_BUF_U16[h]) | (uint(BLK_BUF_U16[h + 1u]) << 16); }
#elif defined(BLK_BUF_U32)
uint blk_u16(uint h) { return (BLK_BUF_U32[h >> 1] >> ((h & 1u) << 4)) & 0xffffu; }
uint blk_u32(uint h)
{
    const uint w = h >> 1;
    if ((h & 1u) == 0u) return BLK_BUF_U32[w];
    return (BLK_BUF_U32[w] >> 16) | (BLK_BUF_U32[w + 1u] << 16);
}
#else
#error "define BLK_BUF_U16 or BLK_BUF_U32 (the storage array holding the blocks) before including blocks.glsl"
#endif

// Byte at byte address b.
uint blk_u8(uint b) { return (blk_u16(b >> 1) >> ((b & 1u) << 3)) & 0xffu; }

// fp16 bits (low 16 of x) to float, subnormals exact: block scales are often fp16 subnormals (a Q6_K
// d is about max|x|/4096, subnormal for max|x| < 0.25, common in real weights), and implementations
// may flush 16-bit denormals in unpackHalf2x16.
float blk_half(uint x)
{
    x &= 0xffffu;
    if ((x & 0x7c00u) != 0u) return unpackHalf2x16(x).x;
    const float m = float(x & 0x3ffu) * 5.9604644775390625e-8; // mantissa * 2^-24
    return (x & 0x8000u) != 0u ? -m : m;
}
float blk_f16(uint h) { return blk_half(blk_u16(h)); }

// Four bytes of a 32-bit word as unsigned / sign-extended values.
vec4 blk_bytes_u(uint v) { return vec4(uvec4(v, v >> 8, v >> 16, v >> 24) & 0xffu); }
vec4 blk_bytes_s(uint v)
{
    const int s = int(v);
    return vec4(bitfieldExtract(s, 0, 8), bitfieldExtract(s, 8, 8), bitfieldExtract(s, 16, 8), bitfieldExtract(s, 24, 8));
}

// ---- plain 16-bit types: element e of a tensor starting at halfword h ----
vec4 f16_dequant4(uint h, uint e)
{
    const uint a = blk_u32(h + e), b = blk_u32(h + e + 2u);
    return vec4(blk_half(a), blk_half(a >> 16), blk_half(b), blk_half(b >> 16));
}
vec4 bf16_dequant4(uint h, uint e)
{
    const uint a = blk_u32(h + e), b = blk_u32(h + e + 2u);
    return uintBitsToFloat(uvec4(a << 16, a & 0xffff0000u, b << 16, b & 0xffff0000u));
}

// ---- Q8_0 ----
vec4 q8_0_dequant4(uint h, uint i)
{
    return blk_f16(h) * blk_bytes_s(blk_u32(h + 1u + (i >> 1)));
}
void q8_0_dequant8(uint h, uint i, out vec4 a, out vec4 b)
{
    const float d = blk_f16(h);
    a = d * blk_bytes_s(blk_u32(h + 1u + (i >> 1)));
    b = d * blk_bytes_s(blk_u32(h + 3u + (i >> 1)));
}

// ---- Q4_0 ----
vec4 q4_0_dequant4(uint h, uint i)
{
    const uint q = (blk_u32(h + 1u + ((i & 15u) >> 1)) >> ((i >> 4) << 2)) & 0x0f0f0f0fu;
    return blk_f16(h) * (blk_bytes_u(q) - 8.0);
}
// The natural 8 of Q4_0: elements j..j+3 (low nibbles) into lo and j+16..j+19 (high nibbles of the
// same four bytes) into hi, for j in {0, 4, 8, 12}. One 32-bit read.
void q4_0_dequant8_split(uint h, uint j, out vec4 lo, out vec4 hi)
{
    const float d = blk_f16(h);
    const uint q = blk_u32(h + 1u + (j >> 1));
    lo = d * (blk_bytes_u(q & 0x0f0f0f0fu) - 8.0);
    hi = d * (blk_bytes_u((q >> 4) & 0x0f0f0f0fu) - 8.0);
}
void q4_0_dequant8(uint h, uint i, out vec4 a, out vec4 b)
{
    const float d = blk_f16(h);
    const uint sh = (i >> 4) << 2, o = h + 1u + ((i & 15u) >> 1);
    a = d * (blk_bytes_u((blk_u32(o) >> sh) & 0x0f0f0f0fu) - 8.0);
    b = d * (blk_bytes_u((blk_u32(o + 2u) >> sh) & 0x0f0f0f0fu) - 8.0);
}

// ---- K scales: (sc, m) of sub-block s (0..7) of a Q4_K/Q5_K block at halfword h ----
uvec2 k_scale_min(uint h, uint s)
{
    const uint b = 2u * h + 4u; // byte address of scales[0]
    if (s < 4u) return uvec2(blk_u8(b + s) & 63u, blk_u8(b + s + 4u) & 63u);
    const uint lo = blk_u8(b + s + 4u);
    return uvec2((lo & 15u) | ((blk_u8(b + s - 4u) >> 6) << 4), (lo >> 4) | ((blk_u8(b + s) >> 6) << 4));
}
// d*sc and dmin*m of sub-block s, the two factors of x = d*sc*q - dmin*m.
vec2 k_factors(uint h, uint s)
{
    const uint dm = blk_u32(h); // d in the low half, dmin in the high half
    const uvec2 sm = k_scale_min(h, s);
    return vec2(blk_half(dm) * float(sm.x), blk_half(dm >> 16) * float(sm.y));
}

// ---- Q4_K: element i -> sub-block s = i/32; byte 32*(i/64) + i%32 of qs, nibble s&1 ----
uint q4_k_nibbles(uint h, uint i)
{
    const uint o = h + 8u + ((i >> 6) << 4) + ((i & 31u) >> 1);
    return (blk_u32(o) >> (((i >> 5) & 1u) << 2)) & 0x0f0f0f0fu;
}
vec4 q4_k_dequant4(uint h, uint i)
{
    const vec2 f = k_factors(h, i >> 5);
    return f.x * blk_bytes_u(q4_k_nibbles(h, i)) - f.y;
}
void q4_k_dequant8(uint h, uint i, out vec4 a, out vec4 b)
{
    const vec2 f = k_factors(h, i >> 5);
    a = f.x * blk_bytes_u(q4_k_nibbles(h, i)) - f.y;
    b = f.x * blk_bytes_u(q4_k_nibbles(h, i + 4u)) - f.y;
}

// ---- Q5_K: as Q4_K with qs at byte 48, plus bit s of qh[i%32] (qh at byte 16) as bit 4 ----
uint q5_k_codes(uint h, uint i)
{
    const uint s = i >> 5, l = i & 31u;
    const uint lo = (blk_u32(h + 24u + ((i >> 6) << 4) + (l >> 1)) >> ((s & 1u) << 2)) & 0x0f0f0f0fu;
    const uint hi = (blk_u32(h + 8u + (l >> 1)) >> s) & 0x01010101u;
    return lo | (hi << 4);
}
vec4 q5_k_dequant4(uint h, uint i)
{
    const vec2 f = k_factors(h, i >> 5);
    return f.x * blk_bytes_u(q5_k_codes(h, i)) - f.y;
}
void q5_k_dequant8(uint h, uint i, out vec4 a, out vec4 b)
{
    const vec2 f = k_factors(h, i >> 5);
    a = f.x * blk_bytes_u(q5_k_codes(h, i)) - f.y;
    b = f.x * blk_bytes_u(q5_k_codes(h, i + 4u)) - f.y;
}

// ---- Q6_K: element i -> half t = i/128, group g = (i%128)/32, l = i%32;
//      low 4 bits: ql[64t + l + 32(g&1)], nibble g>>1; top 2 bits: bits 2g.. of qh[32t + l] ----
uint q6_k_codes(uint h, uint i)
{
    const uint t = i >> 7, g = (i >> 5) & 3u, l = i & 31u;
    const uint lo = (blk_u32(h + (t << 5) + ((g & 1u) << 4) + (l >> 1)) >> ((g >> 1) << 2)) & 0x0f0f0f0fu;
    const uint hi = (blk_u32(h + 64u + (t << 4) + (l >> 1)) >> (g << 1)) & 0x03030303u;
    return lo | (hi << 4);
}
// d * scales[i/16] for the sub-block of element i.
float q6_k_factor(uint h, uint i)
{
    const int sc = bitfieldExtract(int(blk_u8(2u * h + 192u + (i >> 4))), 0, 8);
    return blk_f16(h + 104u) * float(sc);
}
vec4 q6_k_dequant4(uint h, uint i)
{
    return q6_k_factor(h, i) * (blk_bytes_u(q6_k_codes(h, i)) - 32.0);
}
void q6_k_dequant8(uint h, uint i, out vec4 a, out vec4 b)
{
    const float f = q6_k_factor(h, i); // i % 8 == 0: all 8 share one 16-element sub-block
    a = f * (blk_bytes_u(q6_k_codes(h, i)) - 32.0);
    b = f * (blk_bytes_u(q6_k_codes(h, i + 4u)) - 32.0);
}

#endif
