/* host/quant.c: block layouts (known-answer blocks built by hand from the GGUF/ggml layout), the 6-bit
 * K scale packing (against an unpacker written bit by bit from the spec), round-trip error bounds on
 * several distributions, idempotence, alignment, shapes, error returns and the dtype size table.
 *
 * Error bounds are NMSE = mse(deq, x) / mse(x, 0). A uniform quantizer with step q has noise q^2/12;
 * the bounds below are about 1.3x the worst NMSE measured over many seeds for 16384-element tensors,
 * which is where ggml's reference quantizers land too (relative RMS error on N(0,1): q8_0 0.54%,
 * q6_K 1.8%, q5_K 3.6%, q4_K 7.2%, q4_0 8.6%). A bound far above that would let a broken scale search
 * through; one much tighter would fail on unlucky seeds. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "vkllm/half.h"
#include "vkllm/quant.h"

#define NTYPES_Q 5
static const vkllm_dtype QTYPES[NTYPES_Q] = { VKLLM_DTYPE_Q8_0, VKLLM_DTYPE_Q4_0, VKLLM_DTYPE_Q4_K,
                                              VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K };
#define NTYPES_ALL 8
static const vkllm_dtype ALLTYPES[NTYPES_ALL] = { VKLLM_DTYPE_F32, VKLLM_DTYPE_F16, VKLLM_DTYPE_BF16,
                                                  VKLLM_DTYPE_Q8_0, VKLLM_DTYPE_Q4_0, VKLLM_DTYPE_Q4_K,
                                                  VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K };

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static size_t qbytes(vkllm_dtype t, size_t n)
{
    uint64_t b = 0;
    assert_int_equal(vkllm_dtype_bytes(t, n, &b), VKLLM_OK);
    return (size_t)b;
}

/* Exact comparison of a dequantized block against hand-computed values (all exactly representable:
 * the scales are powers of two and the products small integers or halves). */
static void expect_exact(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (!(got[i] == want[i])) {
            fprintf(stderr, "%s: element %zu: got %.9g want %.9g\n", what, i, got[i], want[i]);
            fail_msg("%s: mismatch at %zu", what, i);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Known answers: bytes -> floats */

static void test_kat_f16_bf16(void **state)
{
    (void)state;
    uint8_t h[12];
    /* fp16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff (largest finite), 2^-24 = 0x0001 (smallest
     * subnormal), -0.0 = 0x8000, 0.3125 = 0x3500 (exp 13 -> 2^-2, mantissa 256/1024 -> x1.25) */
    const uint16_t hv[6] = { 0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x3500 };
    const float hw[6] = { 1.0f, -2.0f, 65504.0f, 5.9604644775390625e-08f, -0.0f, 0.3125f };
    for (int i = 0; i < 6; i++) put16(h + 2 * i, hv[i]);
    float y[6];
    tu_poison(y, 6);
    vkllm_dequantize(VKLLM_DTYPE_F16, h, y, 6);
    expect_exact(y, hw, 6, "f16");
    assert_true(signbit(y[4]));

    /* bf16: 1.0 = 0x3f80, -3.0 = 0xc040 (exp 128 -> 2, mantissa 64/128 -> x1.5),
     * 3.140625 = 0x4049 (2 * (1 + 73/128)) */
    const uint16_t bv[3] = { 0x3f80, 0xc040, 0x4049 };
    const float bw[3] = { 1.0f, -3.0f, 3.140625f };
    for (int i = 0; i < 3; i++) put16(h + 2 * i, bv[i]);
    tu_poison(y, 3);
    vkllm_dequantize(VKLLM_DTYPE_BF16, h, y, 3);
    expect_exact(y, bw, 3, "bf16");
}

static void test_kat_q8_0(void **state)
{
    (void)state;
    uint8_t b[34];
    put16(b, 0x3800); /* d = 0.5 */
    for (int i = 0; i < 32; i++) b[2 + i] = (uint8_t)i;
    b[2 + 0] = 0x00; /* 0 */
    b[2 + 1] = 0x01; /* 1 -> 0.5 */
    b[2 + 2] = 0xff; /* -1 -> -0.5 */
    b[2 + 3] = 0x7f; /* 127 -> 63.5 */
    b[2 + 4] = 0x80; /* -128 -> -64 */
    float want[32] = { 0.0f, 0.5f, -0.5f, 63.5f, -64.0f };
    for (int i = 5; i < 32; i++) want[i] = 0.5f * (float)i;
    float y[32];
    tu_poison(y, 32);
    vkllm_dequantize(VKLLM_DTYPE_Q8_0, b, y, 32);
    expect_exact(y, want, 32, "q8_0");
}

static void test_kat_q4_0(void **state)
{
    (void)state;
    uint8_t b[18];
    put16(b, 0xc000); /* d = -2 */
    /* byte j: low nibble j (element j), high nibble 15 - j (element j + 16); value = (q - 8) * d */
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    float want[32];
    for (int j = 0; j < 16; j++) {
        want[j] = 16.0f - 2.0f * (float)j;       /* -2 * (j - 8) */
        want[j + 16] = 2.0f * (float)j - 14.0f;  /* -2 * ((15 - j) - 8) */
    }
    /* spot values by hand: q=0 -> 16, q=15 -> -14 */
    assert_true(want[0] == 16.0f && want[15] == -14.0f && want[16] == -14.0f && want[31] == 16.0f);
    float y[32];
    tu_poison(y, 32);
    vkllm_dequantize(VKLLM_DTYPE_Q4_0, b, y, 32);
    expect_exact(y, want, 32, "q4_0");
}

/* Scales/mins used by the Q4_K and Q5_K answers, and their 12 packed bytes worked out by hand:
 *   sc = {1, 2, 3, 4, 5, 17, 33, 63}, m = {0, 1, 2, 3, 60, 16, 32, 48}
 *   b[0..3]  = sc[0..3] | (sc[4..7] >> 4) << 6 = 1|0<<6, 2|1<<6, 3|2<<6, 4|3<<6 = 01 42 83 c4
 *   b[4..7]  = m[0..3] | (m[4..7] >> 4) << 6   = 0|3<<6, 1|1<<6, 2|2<<6, 3|3<<6 = c0 41 82 c3
 *   b[8..11] = (sc[4..7] & 15) | (m[4..7] & 15) << 4 = 5|12<<4, 1|0, 1|0, 15|0 = c5 01 01 0f */
static const uint8_t KSC[8] = { 1, 2, 3, 4, 5, 17, 33, 63 };
static const uint8_t KMN[8] = { 0, 1, 2, 3, 60, 16, 32, 48 };
static const uint8_t KPACKED[12] = { 0x01, 0x42, 0x83, 0xc4, 0xc0, 0x41, 0x82, 0xc3, 0xc5, 0x01, 0x01, 0x0f };

static void test_kat_q4_k(void **state)
{
    (void)state;
    uint8_t b[144];
    put16(b, 0x3c00);     /* d = 1 */
    put16(b + 2, 0x3800); /* dmin = 0.5 */
    memcpy(b + 4, KPACKED, 12);
    for (int k = 0; k < 128; k++) b[16 + k] = (uint8_t)k;
    /* element e: sub-block s = e/32; 64-element chunk c = e/64 uses bytes qs[32c .. 32c+31], the
     * first 32 elements of the chunk the low nibbles, the next 32 the high nibbles */
    float want[256];
    for (int e = 0; e < 256; e++) {
        int s = e / 32, c = e / 64, l = e % 32, byte = 32 * c + l;
        int q = (e % 64) < 32 ? (byte & 15) : (byte >> 4);
        want[e] = 1.0f * (float)KSC[s] * (float)q - 0.5f * (float)KMN[s];
    }
    /* spot values by hand: e=0 -> 1*1*0 - 0 = 0; e=32 -> 2*0 - 0.5 = -0.5;
     * e=130 (byte 66 = 0x42, low 2, s=4) -> 5*2 - 30 = -20; e=200 (byte 104 = 0x68, low 8, s=6)
     * -> 33*8 - 16 = 248; e=255 (byte 127, high 7, s=7) -> 63*7 - 24 = 417 */
    assert_true(want[0] == 0.0f && want[32] == -0.5f && want[130] == -20.0f && want[200] == 248.0f &&
                want[255] == 417.0f);
    float y[256];
    tu_poison(y, 256);
    vkllm_dequantize(VKLLM_DTYPE_Q4_K, b, y, 256);
    expect_exact(y, want, 256, "q4_K");
}

static void test_kat_q5_k(void **state)
{
    (void)state;
    uint8_t b[176];
    put16(b, 0x3400);     /* d = 0.25 */
    put16(b + 2, 0x3c00); /* dmin = 1 */
    memcpy(b + 4, KPACKED, 12);
    /* qh[l]: 0xa5 (bits 0,2,5,7) for even l, 0x5a (bits 1,3,4,6) for odd l; bit s is the fifth bit
     * of element 32s + l */
    for (int l = 0; l < 32; l++) b[16 + l] = (uint8_t)(l % 2 == 0 ? 0xa5 : 0x5a);
    for (int k = 0; k < 128; k++) b[48 + k] = (uint8_t)(255 - k);
    float want[256];
    for (int e = 0; e < 256; e++) {
        int s = e / 32, c = e / 64, l = e % 32, byte = 255 - (32 * c + l);
        int lo4 = (e % 64) < 32 ? (byte & 15) : (byte >> 4);
        int qh = l % 2 == 0 ? 0xa5 : 0x5a;
        int q = lo4 + 16 * ((qh >> s) & 1);
        want[e] = 0.25f * (float)KSC[s] * (float)q - 1.0f * (float)KMN[s];
    }
    /* by hand: e=0: qs 255 low 15, qh[0]=a5 bit0=1 -> q 31, 0.25*1*31 - 0 = 7.75;
     * e=33: qs[1]=254 high 15, qh[1]=5a bit1=1 -> 31, 0.25*2*31 - 1 = 14.5;
     * e=130: qs[66]=189=0xbd low 13, qh[2]=a5 bit4=0 -> 13, 0.25*5*13 - 60 = -43.75;
     * e=255: qs[127]=128 high 8, qh[31]=5a bit7=0 -> 8, 0.25*63*8 - 48 = 78 */
    assert_true(want[0] == 7.75f && want[33] == 14.5f && want[130] == -43.75f && want[255] == 78.0f);
    float y[256];
    tu_poison(y, 256);
    vkllm_dequantize(VKLLM_DTYPE_Q5_K, b, y, 256);
    expect_exact(y, want, 256, "q5_K");
}

static void test_kat_q6_k(void **state)
{
    (void)state;
    static const int8_t sc[16] = { 1, -1, 2, -2, 3, -3, 4, -4, 127, -128, 5, -5, 6, -6, 7, -7 };
    uint8_t b[210];
    for (int k = 0; k < 128; k++) b[k] = (uint8_t)k;           /* ql */
    for (int k = 0; k < 64; k++) b[128 + k] = 0xe4;            /* qh: bit pairs 0,1,2,3 */
    for (int k = 0; k < 16; k++) b[192 + k] = (uint8_t)sc[k];  /* int8 scales */
    put16(b + 208, 0x3800);                                    /* d = 0.5 */
    /* element e: half h = e/128, group g = (e%128)/32, l = e%32; low 4 bits from ql[64h + l + 32(g&1)]
     * (low nibble for g < 2, high for g >= 2); top 2 bits from bits 2g..2g+1 of qh[32h + l], here
     * always g (0xe4 = 11 10 01 00); value = d * scales[e/16] * (q - 32) */
    float want[256];
    for (int e = 0; e < 256; e++) {
        int h = e / 128, g = (e % 128) / 32, l = e % 32;
        int byte = 64 * h + l + 32 * (g & 1);
        int lo4 = g < 2 ? (byte & 15) : (byte >> 4);
        int q = lo4 | (g << 4);
        want[e] = 0.5f * (float)sc[e / 16] * (float)(q - 32);
    }
    /* by hand: e=0 -> 0.5*1*(0-32) = -16; e=40: ql[40]=0x28 low 8, g=1 -> q 24, s[2]=2 -> -8;
     * e=100: ql[36]=0x24 high 2, g=3 -> q 50, s[6]=4 -> 36; e=130: ql[66] low 2, g=0 -> 2, s[8]=127
     * -> -1905; e=150: ql[86]=0x56 low 6 -> 6, s[9]=-128 -> 1664; e=255: ql[127] high 7, g=3 -> 55,
     * s[15]=-7 -> -80.5 */
    assert_true(want[0] == -16.0f && want[40] == -8.0f && want[100] == 36.0f && want[130] == -1905.0f &&
                want[150] == 1664.0f && want[255] == -80.5f);
    float y[256];
    tu_poison(y, 256);
    vkllm_dequantize(VKLLM_DTYPE_Q6_K, b, y, 256);
    expect_exact(y, want, 256, "q6_K");
}

/* Known answers the other way: inputs on the format's own grid give exact bytes. */
static void test_kat_quantize_exact_grid(void **state)
{
    (void)state;
    /* Q4_0: x = (i%16) - 8; the first element of largest magnitude is -8, so d = -8/-8 = 1 and the codes
     * are x + 8 = i%16: byte j = j | j<<4, d = 0x3c00 */
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)(i % 16) - 8.0f;
    uint8_t b[34];
    assert_int_equal(vkllm_quantize(VKLLM_DTYPE_Q4_0, x, b, 32), VKLLM_OK);
    assert_int_equal(b[0], 0x00);
    assert_int_equal(b[1], 0x3c);
    for (int j = 0; j < 16; j++) assert_int_equal(b[2 + j], j | (j << 4));

    /* Q8_0: amax 63.5 -> d = 63.5/127 = 0.5 (0x3800); codes x/0.5 */
    for (int i = 0; i < 32; i++) x[i] = 0.5f * (float)(i - 16);
    x[0] = -63.5f;
    assert_int_equal(vkllm_quantize(VKLLM_DTYPE_Q8_0, x, b, 32), VKLLM_OK);
    assert_int_equal(b[0], 0x00);
    assert_int_equal(b[1], 0x38);
    assert_int_equal(b[2], 0x81); /* -127 */
    for (int i = 1; i < 32; i++) assert_int_equal((int8_t)b[2 + i], i - 16);
}

/* ---------------------------------------------------------------------------------------------
 * 6-bit scale packing vs. a from-spec unpacker */

/* Where bit `bit` (0..5) of sub-block s's scale (is_min = 0) or min (is_min = 1) lives, from the
 * layout description: s < 4: scale in bits 0-5 of byte s, min in bits 0-5 of byte s+4; s >= 4: the low
 * four bits in byte s+4 (scale in its low nibble, min in its high nibble), the top two bits in bits
 * 6-7 of byte s-4 (scale) or byte s (min). */
static void spec_bit_location(int s, int is_min, int bit, int *byte, int *pos)
{
    if (s < 4) {
        *byte = is_min ? s + 4 : s;
        *pos = bit;
    } else if (bit < 4) {
        *byte = s + 4;
        *pos = is_min ? 4 + bit : bit;
    } else {
        *byte = is_min ? s : s - 4;
        *pos = 6 + (bit - 4);
    }
}

static void spec_unpack(const uint8_t b[12], uint8_t sc[8], uint8_t mn[8])
{
    for (int s = 0; s < 8; s++) {
        int v[2] = { 0, 0 };
        for (int is_min = 0; is_min < 2; is_min++) {
            for (int bit = 0; bit < 6; bit++) {
                int byte, pos;
                spec_bit_location(s, is_min, bit, &byte, &pos);
                v[is_min] |= ((b[byte] >> pos) & 1) << bit;
            }
        }
        sc[s] = (uint8_t)v[0];
        mn[s] = (uint8_t)v[1];
    }
}

static void test_k_scale_packing(void **state)
{
    (void)state;
    /* the spec's map uses each of the 96 bits exactly once */
    int used[12][8] = { { 0 } };
    for (int s = 0; s < 8; s++)
        for (int is_min = 0; is_min < 2; is_min++)
            for (int bit = 0; bit < 6; bit++) {
                int byte, pos;
                spec_bit_location(s, is_min, bit, &byte, &pos);
                used[byte][pos]++;
            }
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 8; j++) assert_int_equal(used[i][j], 1);

    /* the hand-packed bytes of the known-answer tests */
    uint8_t out[12], sc[8], mn[8];
    vkllm_k_scales_pack(out, KSC, KMN);
    assert_memory_equal(out, KPACKED, 12);
    spec_unpack(KPACKED, sc, mn);
    assert_memory_equal(sc, KSC, 8);
    assert_memory_equal(mn, KMN, 8);

    tu_rng r = tu_rng_for(0x5ca1e);
    for (int iter = 0; iter < 2000; iter++) {
        uint8_t in_sc[8], in_mn[8], raw_sc[8], raw_mn[8];
        for (int s = 0; s < 8; s++) {
            raw_sc[s] = (uint8_t)tu_next(&r); /* high bits must be ignored */
            raw_mn[s] = (uint8_t)tu_next(&r);
            in_sc[s] = raw_sc[s] & 63;
            in_mn[s] = raw_mn[s] & 63;
        }
        vkllm_k_scales_pack(out, raw_sc, raw_mn);
        spec_unpack(out, sc, mn);
        if (memcmp(sc, in_sc, 8) || memcmp(mn, in_mn, 8))
            fail_msg("pack disagrees with the spec (seed VKLLM_SEED=%llu, iter %d)",
                     (unsigned long long)tu_seed(), iter);
        vkllm_k_scales_unpack(out, sc, mn);
        assert_memory_equal(sc, in_sc, 8);
        assert_memory_equal(mn, in_mn, 8);

        /* any 12 bytes: library unpacker == spec unpacker */
        uint8_t rb[12], sc2[8], mn2[8];
        for (int i = 0; i < 12; i++) rb[i] = (uint8_t)tu_next(&r);
        vkllm_k_scales_unpack(rb, sc, mn);
        spec_unpack(rb, sc2, mn2);
        if (memcmp(sc, sc2, 8) || memcmp(mn, mn2, 8))
            fail_msg("unpack disagrees with the spec (seed VKLLM_SEED=%llu, iter %d)",
                     (unsigned long long)tu_seed(), iter);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Round trips */

enum dist { D_GAUSS, D_UNIFORM, D_OUTLIERS, D_TINY3, D_TINY4, D_TINY6, D_LARGE_U, D_LARGE_G, D_COUNT };
static const char *const DIST_NAME[D_COUNT] = { "gauss",     "uniform",   "outliers",  "tiny 1e-3",
                                                "tiny 1e-4", "tiny 1e-6", "large uniform 65504",
                                                "large gauss 2e4" };

static void fill(tu_rng *r, enum dist d, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (d) {
        case D_GAUSS: x[i] = tu_normal(r); break;
        case D_UNIFORM: x[i] = tu_uniform(r, -1.0f, 1.0f); break;
        case D_OUTLIERS: { /* 1% of elements 30x larger: one outlier per 100 elements dominates its block */
            float g = tu_normal(r);
            x[i] = tu_uniform(r, 0.0f, 1.0f) < 0.01f ? 30.0f * g : g;
            break;
        }
        case D_TINY3: x[i] = 1e-3f * tu_normal(r); break;
        case D_TINY4: x[i] = 1e-4f * tu_normal(r); break;
        case D_TINY6: x[i] = 1e-6f * tu_normal(r); break;
        case D_LARGE_U: x[i] = tu_uniform(r, -65504.0f, 65504.0f); break;
        case D_LARGE_G: x[i] = 2e4f * tu_normal(r); break;
        case D_COUNT: break;
        }
    }
}

/* NMSE bounds [type][dist], order of QTYPES. Tiny data (1e-4: fp16 block scales are subnormal) keep
 * near-normal accuracy because scales are rounded up, never flushed; at 1e-6 the scale's fp16 grid
 * (2^-24) is coarse against the data, 1e-2 still rules out garbage (zeros would give 1). Outliers
 * stretch their blocks' scales, so the rest of those blocks quantize coarsely. */
static const double BOUND[NTYPES_Q][D_COUNT] = {
    /*          gauss   uniform  outliers tiny3   tiny4   tiny6   largeU  largeG */
    /* q8_0 */ { 4.0e-5, 2.0e-5, 2.5e-4, 4.0e-5, 4.5e-5, 5e-4, 2.0e-5, 4.0e-5 },
    /* q4_0 */ { 9.5e-3, 5.5e-3, 2.5e-2, 9.5e-3, 9.5e-3, 1.2e-2, 5.5e-3, 9.5e-3 },
    /* q4_K */ { 6.5e-3, 4.0e-3, 1.6e-2, 6.5e-3, 6.5e-3, 1.2e-2, 4.0e-3, 6.5e-3 },
    /* q5_K */ { 1.7e-3, 1.0e-3, 4.5e-3, 1.7e-3, 1.8e-3, 1.2e-2, 1.0e-3, 1.7e-3 },
    /* q6_K */ { 4.2e-4, 2.4e-4, 2.0e-3, 4.2e-4, 4.5e-4, 1.2e-2, 2.6e-4, 4.5e-4 },
};

#define RT_N (256 * 64) /* a multiple of every block size */

static void test_roundtrip_distributions(void **state)
{
    (void)state;
    float *x = malloc(RT_N * sizeof *x), *y = malloc(RT_N * sizeof *y);
    uint8_t *q = malloc(RT_N * 2);
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(q);
    int verbose = getenv("VKLLM_VERBOSE") != NULL;
    for (int ti = 0; ti < NTYPES_Q; ti++) {
        vkllm_dtype t = QTYPES[ti];
        for (int d = 0; d < D_COUNT; d++) {
            tu_rng r = tu_rng_for((uint64_t)(100 * ti + d));
            fill(&r, (enum dist)d, x, RT_N);
            assert_int_equal(vkllm_quantize(t, x, q, RT_N), VKLLM_OK);
            tu_poison(y, RT_N);
            vkllm_dequantize(t, q, y, RT_N);
            assert_int_equal(tu_count_nonfinite(y, RT_N), 0);
            if (verbose)
                fprintf(stderr, "  %-5s %-20s nmse %.3e (bound %.1e)\n", vkllm_dtype_name(t), DIST_NAME[d],
                        tu_nmse(y, x, RT_N), BOUND[ti][d]);
            tu_assert_nmse(y, x, RT_N, BOUND[ti][d], "%s round trip, %s", vkllm_dtype_name(t), DIST_NAME[d]);
        }
    }
    free(x);
    free(y);
    free(q);
}

static void test_roundtrip_float_types(void **state)
{
    (void)state;
    enum { N = 4099 }; /* odd: these have 1-element blocks */
    float x[N], y[N];
    uint8_t q[4 * N];
    tu_rng r = tu_rng_for(7);
    tu_fill_normal(&r, x, N, 3.0f);
    /* F32 exact; F16 half-ulp 2^-11 relative -> NMSE <= 2^-22/3 ~ 8e-8; BF16 half-ulp 2^-8 -> ~5e-6 */
    const vkllm_dtype ts[3] = { VKLLM_DTYPE_F32, VKLLM_DTYPE_F16, VKLLM_DTYPE_BF16 };
    const double bound[3] = { 0.0, 1e-7, 6e-6 };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vkllm_quantize(ts[i], x, q, N), VKLLM_OK);
        tu_poison(y, N);
        vkllm_dequantize(ts[i], q, y, N);
        tu_assert_nmse(y, x, N, bound[i], "%s round trip", vkllm_dtype_name(ts[i]));
        /* exact idempotence: the dequantized values are representable */
        uint8_t q2[4 * N];
        assert_int_equal(vkllm_quantize(ts[i], y, q2, N), VKLLM_OK);
        assert_memory_equal(q, q2, qbytes(ts[i], N));
    }
    /* F16 keeps NaN and infinities, and saturates nothing itself: 1e6 -> inf is IEEE behaviour */
    float sp[4] = { NAN, INFINITY, -INFINITY, 1e6f }, out[4];
    assert_int_equal(vkllm_quantize(VKLLM_DTYPE_F16, sp, q, 4), VKLLM_OK);
    vkllm_dequantize(VKLLM_DTYPE_F16, q, out, 4);
    assert_true(isnan(out[0]) && out[1] == INFINITY && out[2] == -INFINITY && out[3] == INFINITY);
}

static void test_zero_and_constant_blocks(void **state)
{
    (void)state;
    float x[512], y[512];
    uint8_t q[1024];
    /* constants: positive, negative, an fp16-exact one and an inexact one; one value per block */
    const float consts[4] = { 0.37f, -1.5f, 1000.0f, -3.3e-3f };
    for (int ti = 0; ti < NTYPES_Q; ti++) {
        vkllm_dtype t = QTYPES[ti];
        size_t n = 2 * vkllm_dtype_block_elems(t);
        for (size_t i = 0; i < n; i++) x[i] = 0.0f;
        assert_int_equal(vkllm_quantize(t, x, q, n), VKLLM_OK);
        tu_poison(y, n);
        vkllm_dequantize(t, q, y, n);
        for (size_t i = 0; i < n; i++) assert_true(y[i] == 0.0f);
        for (int c = 0; c < 4; c++) {
            for (size_t i = 0; i < n; i++) x[i] = consts[c];
            assert_int_equal(vkllm_quantize(t, x, q, n), VKLLM_OK);
            tu_poison(y, n);
            vkllm_dequantize(t, q, y, n);
            /* a constant is the format's best case: only the fp16 scale (and for K types the 6-bit
             * sub-scale times it) rounds, relative error ~2^-11 -> NMSE ~1e-7. Except where the
             * block scale is an fp16 subnormal (spacing 2^-24): Q6_K's d is ~max/4096, subnormal for
             * |c| < 0.25, and for c = -3.3e-3 (d ~ 8e-7) the int8 sub-scale then absorbs a ~0.5% step
             * -> NMSE up to ~3e-5. */
            double bound = (t == VKLLM_DTYPE_Q6_K && fabsf(consts[c]) < 0.25f) ? 5e-5 : 1e-6;
            tu_assert_nmse(y, x, n, bound, "%s constant %g", vkllm_dtype_name(t), (double)consts[c]);
        }
        /* one zero block between two random ones stays exactly zero */
        tu_rng r = tu_rng_for((uint64_t)(200 + ti));
        size_t be = vkllm_dtype_block_elems(t);
        tu_fill_normal(&r, x, be, 1.0f);
        for (size_t i = be; i < 2 * be; i++) x[i] = 0.0f;
        assert_int_equal(vkllm_quantize(t, x, q, 2 * be), VKLLM_OK);
        vkllm_dequantize(t, q, y, 2 * be);
        for (size_t i = be; i < 2 * be; i++) assert_true(y[i] == 0.0f);
    }
}

/* Q8_0 and Q4_0 are exactly idempotent on their own output: the scale is recomputed exactly (the
 * largest element maps to the end of the code range) and every value lies on the grid. K types
 * re-run a search that may settle on a neighbouring grid; the drift must stay far below the first
 * pass's error. Scales here are normal fp16 numbers (subnormal scales make the largest code, and so
 * the recomputed scale, inexact). */
static void test_requantize_stable(void **state)
{
    (void)state;
    float *x = malloc(RT_N * sizeof *x), *y = malloc(RT_N * sizeof *y), *y2 = malloc(RT_N * sizeof *y2);
    uint8_t *q = malloc(RT_N * 2), *q2 = malloc(RT_N * 2);
    assert_true(x && y && y2 && q && q2);
    const enum dist ds[4] = { D_GAUSS, D_UNIFORM, D_OUTLIERS, D_LARGE_G };
    for (int ti = 0; ti < NTYPES_Q; ti++) {
        vkllm_dtype t = QTYPES[ti];
        for (int k = 0; k < 4; k++) {
            tu_rng r = tu_rng_for((uint64_t)(300 + 10 * ti + k));
            fill(&r, ds[k], x, RT_N);
            assert_int_equal(vkllm_quantize(t, x, q, RT_N), VKLLM_OK);
            vkllm_dequantize(t, q, y, RT_N);
            assert_int_equal(vkllm_quantize(t, y, q2, RT_N), VKLLM_OK);
            if (t == VKLLM_DTYPE_Q8_0 || t == VKLLM_DTYPE_Q4_0) {
                if (memcmp(q, q2, qbytes(t, RT_N)) != 0)
                    fail_msg("%s not idempotent on %s (seed VKLLM_SEED=%llu)", vkllm_dtype_name(t),
                             DIST_NAME[ds[k]], (unsigned long long)tu_seed());
                continue;
            }
            vkllm_dequantize(t, q2, y2, RT_N);
            double first = tu_nmse(y, x, RT_N);
            /* measured worst drift ratio ~0.07 (Q5_K, whose narrower search cannot always find the
             * exact grid again); 0.25 leaves margin */
            tu_assert_nmse(y2, y, RT_N, 0.25 * first, "%s requantize drift, %s", vkllm_dtype_name(t),
                           DIST_NAME[ds[k]]);
        }
    }
    free(x); free(y); free(y2); free(q); free(q2);
}

/* Block independence and awkward counts: quantizing n blocks at once gives exactly the bytes of
 * quantizing them one by one, for 1, 7 and 33 blocks. */
static void test_shapes_block_independent(void **state)
{
    (void)state;
    const size_t counts[3] = { 1, 7, 33 };
    for (int ti = 0; ti < NTYPES_ALL; ti++) {
        vkllm_dtype t = ALLTYPES[ti];
        size_t be = vkllm_dtype_block_elems(t), bb = vkllm_dtype_block_bytes(t);
        for (int c = 0; c < 3; c++) {
            size_t n = counts[c] * be;
            float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
            uint8_t *q = malloc(n * 4), *q1 = malloc(n * 4);
            assert_true(x && y && q && q1);
            tu_rng r = tu_rng_for((uint64_t)(400 + 10 * ti + c));
            tu_fill_normal(&r, x, n, 2.0f);
            assert_int_equal(vkllm_quantize(t, x, q, n), VKLLM_OK);
            for (size_t b = 0; b < counts[c]; b++)
                assert_int_equal(vkllm_quantize(t, x + b * be, q1 + b * bb, be), VKLLM_OK);
            assert_memory_equal(q, q1, counts[c] * bb);
            tu_poison(y, n);
            vkllm_dequantize(t, q, y, n);
            assert_int_equal(tu_count_nonfinite(y, n), 0);
            /* few blocks: loose bound, only to catch a block dequantized into the wrong place */
            tu_assert_nmse(y, x, n, 5e-2, "%s %zu blocks", vkllm_dtype_name(t), counts[c]);
            free(x); free(y); free(q); free(q1);
        }
    }
}

/* src and dst at odd addresses: Q4_0 and Q6_K blocks are only 2-byte aligned inside files, and the
 * API promises no alignment at all. Results must equal the aligned ones bit for bit. */
static void test_unaligned(void **state)
{
    (void)state;
    for (int ti = 0; ti < NTYPES_ALL; ti++) {
        vkllm_dtype t = ALLTYPES[ti];
        size_t n = 3 * vkllm_dtype_block_elems(t) * (vkllm_dtype_block_elems(t) == 1 ? 37 : 1);
        size_t nb = qbytes(t, n);
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *y1 = malloc(n * sizeof *y1);
        uint8_t *q = malloc(nb), *buf = malloc(nb + 8);
        assert_true(x && y && y1 && q && buf);
        tu_rng r = tu_rng_for((uint64_t)(500 + ti));
        tu_fill_normal(&r, x, n, 1.0f);
        assert_int_equal(vkllm_quantize(t, x, q, n), VKLLM_OK);
        vkllm_dequantize(t, q, y, n);
        for (size_t off = 1; off < 4; off++) {
            memset(buf, 0xcc, nb + 8);
            assert_int_equal(vkllm_quantize(t, x, buf + off, n), VKLLM_OK);
            assert_memory_equal(buf + off, q, nb);
            assert_int_equal(buf[off - 1], 0xcc); /* nothing written outside */
            assert_int_equal(buf[off + nb], 0xcc);
            tu_poison(y1, n);
            vkllm_dequantize(t, buf + off, y1, n);
            assert_memory_equal(y1, y, n * sizeof *y);
        }
        free(x); free(y); free(y1); free(q); free(buf);
    }
}

/* Finite but extreme inputs never produce NaN or infinity; non-finite inputs are refused. */
static void test_extremes_and_nonfinite(void **state)
{
    (void)state;
    float x[512], y[512];
    uint8_t q[1024];
    for (int ti = 0; ti < NTYPES_Q; ti++) {
        vkllm_dtype t = QTYPES[ti];
        size_t n = 2 * vkllm_dtype_block_elems(t);
        tu_rng r = tu_rng_for((uint64_t)(600 + ti));
        for (size_t i = 0; i < n; i++) {
            float u = tu_uniform(&r, 0.0f, 1.0f);
            x[i] = u < 0.1f ? FLT_MAX : u < 0.2f ? -FLT_MAX : u < 0.3f ? 1e30f : u < 0.4f ? FLT_MIN
                 : u < 0.5f ? 1e-40f /* subnormal */ : tu_normal(&r);
        }
        assert_int_equal(vkllm_quantize(t, x, q, n), VKLLM_OK);
        tu_poison(y, n);
        vkllm_dequantize(t, q, y, n);
        if (tu_count_nonfinite(y, n) != 0)
            fail_msg("%s: non-finite output for extreme inputs (seed VKLLM_SEED=%llu)", vkllm_dtype_name(t),
                     (unsigned long long)tu_seed());
        /* values beyond fp16 range saturate: the sign survives */
        for (size_t i = 0; i < n; i++)
            if (x[i] == FLT_MAX && !(y[i] > 0))
                fail_msg("%s: FLT_MAX at %zu came back as %g (seed VKLLM_SEED=%llu)", vkllm_dtype_name(t), i,
                         (double)y[i], (unsigned long long)tu_seed());

        const float bad[3] = { NAN, INFINITY, -INFINITY };
        for (int k = 0; k < 3; k++) {
            tu_fill_normal(&r, x, n, 1.0f);
            x[n - 1 - (size_t)k] = bad[k];
            assert_int_equal(vkllm_quantize(t, x, q, n), VKLLM_ERROR_INVALID_ARGUMENT);
        }
    }
}

static void test_argument_errors(void **state)
{
    (void)state;
    float x[300] = { 0 }, y[300];
    uint8_t q[1200];
    assert_int_equal(vkllm_quantize((vkllm_dtype)3, x, q, 32), VKLLM_ERROR_UNSUPPORTED_TYPE);
    assert_int_equal(vkllm_quantize(VKLLM_DTYPE_Q8_0, x, q, 33), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_quantize(VKLLM_DTYPE_Q4_K, x, q, 255), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_quantize(VKLLM_DTYPE_Q6_K, NULL, q, 256), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_quantize(VKLLM_DTYPE_Q6_K, x, NULL, 256), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_quantize(VKLLM_DTYPE_Q6_K, NULL, NULL, 0), VKLLM_OK);
    /* dequantize has no status: contract violations show up as NaN, never as stale data */
    memset(q, 0, sizeof q);
    for (int i = 0; i < 300; i++) y[i] = 1.0f;
    vkllm_dequantize((vkllm_dtype)3, q, y, 10);
    assert_int_equal(tu_count_nonfinite(y, 10), 10);
    for (int i = 0; i < 300; i++) y[i] = 1.0f;
    vkllm_dequantize(VKLLM_DTYPE_Q8_0, q, y, 40); /* one block + 8 */
    assert_int_equal(tu_count_nonfinite(y, 32), 0);
    assert_int_equal(tu_count_nonfinite(y + 32, 8), 8);
}

static void test_dtype_table(void **state)
{
    (void)state;
    static const struct { vkllm_dtype t; int id; const char *name; size_t be, bb; } tab[] = {
        { VKLLM_DTYPE_F32, 0, "f32", 1, 4 },      { VKLLM_DTYPE_F16, 1, "f16", 1, 2 },
        { VKLLM_DTYPE_Q4_0, 2, "q4_0", 32, 18 },  { VKLLM_DTYPE_Q8_0, 8, "q8_0", 32, 34 },
        { VKLLM_DTYPE_Q4_K, 12, "q4_K", 256, 144 }, { VKLLM_DTYPE_Q5_K, 13, "q5_K", 256, 176 },
        { VKLLM_DTYPE_Q6_K, 14, "q6_K", 256, 210 }, { VKLLM_DTYPE_BF16, 30, "bf16", 1, 2 },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        assert_int_equal((int)tab[i].t, tab[i].id); /* GGUF's ggml_type numbers */
        assert_true(vkllm_dtype_valid(tab[i].id));
        assert_string_equal(vkllm_dtype_name(tab[i].t), tab[i].name);
        assert_int_equal(vkllm_dtype_block_elems(tab[i].t), tab[i].be);
        assert_int_equal(vkllm_dtype_block_bytes(tab[i].t), tab[i].bb);
        uint64_t b = 1;
        assert_int_equal(vkllm_dtype_bytes(tab[i].t, 0, &b), VKLLM_OK);
        assert_int_equal(b, 0);
        assert_int_equal(vkllm_dtype_bytes(tab[i].t, 5 * tab[i].be, &b), VKLLM_OK);
        assert_int_equal(b, 5 * tab[i].bb);
        if (tab[i].be > 1) assert_int_equal(vkllm_dtype_bytes(tab[i].t, tab[i].be + 1, &b), VKLLM_ERROR_BAD_FILE);
    }
    const int invalid[] = { -1, 3, 4, 6, 7, 9, 10, 11, 15, 16, 29, 31, 1000 };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        assert_false(vkllm_dtype_valid(invalid[i]));
        assert_string_equal(vkllm_dtype_name((vkllm_dtype)invalid[i]), "unknown");
        assert_int_equal(vkllm_dtype_block_elems((vkllm_dtype)invalid[i]), 0);
        assert_int_equal(vkllm_dtype_block_bytes((vkllm_dtype)invalid[i]), 0);
        uint64_t b;
        assert_int_equal(vkllm_dtype_bytes((vkllm_dtype)invalid[i], 32, &b), VKLLM_ERROR_UNSUPPORTED_TYPE);
    }
    /* overflow: checked where it happens, including the exact boundary */
    uint64_t b;
    assert_int_equal(vkllm_dtype_bytes(VKLLM_DTYPE_F32, UINT64_MAX / 4, &b), VKLLM_OK);
    assert_true(b == UINT64_MAX / 4 * 4);
    assert_int_equal(vkllm_dtype_bytes(VKLLM_DTYPE_F32, UINT64_MAX / 4 + 1, &b), VKLLM_ERROR_TOO_LARGE);
    assert_int_equal(vkllm_dtype_bytes(VKLLM_DTYPE_F16, UINT64_C(1) << 63, &b), VKLLM_ERROR_TOO_LARGE);
    assert_int_equal(vkllm_dtype_bytes(VKLLM_DTYPE_Q8_0, UINT64_MAX / 32 * 32, &b), VKLLM_ERROR_TOO_LARGE);
    /* Q6_K has fewer bytes than elements: the largest whole-block count cannot overflow */
    assert_int_equal(vkllm_dtype_bytes(VKLLM_DTYPE_Q6_K, UINT64_MAX / 256 * 256, &b), VKLLM_OK);
    assert_true(b == UINT64_MAX / 256 * 210);
    assert_int_equal(vkllm_dtype_bytes(VKLLM_DTYPE_Q6_K, 256, NULL), VKLLM_ERROR_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_kat_f16_bf16),
        cmocka_unit_test(test_kat_q8_0),
        cmocka_unit_test(test_kat_q4_0),
        cmocka_unit_test(test_kat_q4_k),
        cmocka_unit_test(test_kat_q5_k),
        cmocka_unit_test(test_kat_q6_k),
        cmocka_unit_test(test_kat_quantize_exact_grid),
        cmocka_unit_test(test_k_scale_packing),
        cmocka_unit_test(test_roundtrip_distributions),
        cmocka_unit_test(test_roundtrip_float_types),
        cmocka_unit_test(test_zero_and_constant_blocks),
        cmocka_unit_test(test_requantize_stable),
        cmocka_unit_test(test_shapes_block_independent),
        cmocka_unit_test(test_unaligned),
        cmocka_unit_test(test_extremes_and_nonfinite),
        cmocka_unit_test(test_argument_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
