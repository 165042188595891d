/* Tensor element types and block formats, byte-exact with GGUF (ggml) layouts; see quant.h.
 *
 * Layouts (little-endian, blocks packed back to back, so only byte alignment may be assumed):
 *   Q8_0 (34 B / 32):  d:f16 | q:int8[32]                        x[i] = d*q[i]
 *   Q4_0 (18 B / 32):  d:f16 | qs[16]   x[j] = d*((qs[j]&15)-8), x[j+16] = d*((qs[j]>>4)-8)
 *   Q4_K (144 B / 256): d:f16 | dmin:f16 | scales[12] | qs[128]
 *       eight 32-element sub-blocks s with 6-bit (sc[s], m[s]); x = d*sc*q - dmin*m, q in 0..15.
 *       64-element chunk c holds sub-blocks 2c (low nibbles of qs[32c..32c+31]) and 2c+1 (high).
 *   Q5_K (176 B / 256): d | dmin | scales[12] | qh[32] | qs[128]
 *       as Q4_K, plus a fifth bit: element 32s+l takes bit s of qh[l]; q in 0..31.
 *   Q6_K (210 B / 256): ql[128] | qh[64] | scales:int8[16] | d:f16
 *       x = d*scales[e/16]*(q-32). Half h (128 elements) uses ql[64h..], qh[32h..]; inside it,
 *       element 32k+l (k = 0..3, l = 0..31) takes its low nibble from ql[l + 32*(k&1)] (low nibble for
 *       k < 2, high for k >= 2) and its top two bits from bits 2k..2k+1 of qh[l].
 *   6-bit scale packing (Q4_K, Q5_K), 12 bytes b[]: for s < 4, sc = b[s]&63, m = b[s+4]&63; for s >= 4,
 *       sc = (b[s+4]&15) | (b[s-4]>>6)<<4,  m = (b[s+4]>>4) | (b[s]>>6)<<4.
 *
 * Quantizers follow the search strategy of ggml's reference quantizers (what llama.cpp's quantize
 * tool uses without an importance matrix), written so that each candidate costs one pass over the
 * sub-block: the weighted error of a candidate (scale, min) is evaluated from the sums the
 * least-squares fit needs anyway instead of a second pass. One difference on purpose: the integer
 * codes are always chosen against the fp16-rounded scales that will be stored, not the unrounded ones,
 * which never loses accuracy and makes Q8_0/Q4_0 exactly idempotent. */
#include "vkllm/quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "vkllm/half.h"

enum {
    Q8_0_BYTES = 2 + 32,
    Q4_0_BYTES = 2 + 16,
    Q4_K_BYTES = 2 + 2 + 12 + 128,
    Q5_K_BYTES = 2 + 2 + 12 + 32 + 128,
    Q6_K_BYTES = 128 + 64 + 16 + 2
};
_Static_assert(Q8_0_BYTES == 34 && Q4_0_BYTES == 18, "32-element block sizes");
_Static_assert(Q4_K_BYTES == 144 && Q5_K_BYTES == 176 && Q6_K_BYTES == 210, "K block sizes");
_Static_assert(VKLLM_QK8_0 == 32 && VKLLM_QK4_0 == 32 && VKLLM_QK_K == 256, "block element counts");

/* ---------------------------------------------------------------------------------------------
 * Type table */

int vkllm_dtype_valid(int t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: case VKLLM_DTYPE_F16: case VKLLM_DTYPE_BF16: case VKLLM_DTYPE_Q8_0:
    case VKLLM_DTYPE_Q4_0: case VKLLM_DTYPE_Q4_K: case VKLLM_DTYPE_Q5_K: case VKLLM_DTYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

const char *vkllm_dtype_name(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: return "f32";
    case VKLLM_DTYPE_F16: return "f16";
    case VKLLM_DTYPE_BF16: return "bf16";
    case VKLLM_DTYPE_Q8_0: return "q8_0";
    case VKLLM_DTYPE_Q4_0: return "q4_0";
    case VKLLM_DTYPE_Q4_K: return "q4_K";
    case VKLLM_DTYPE_Q5_K: return "q5_K";
    case VKLLM_DTYPE_Q6_K: return "q6_K";
    }
    return "unknown";
}

size_t vkllm_dtype_block_elems(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: case VKLLM_DTYPE_F16: case VKLLM_DTYPE_BF16: return 1;
    case VKLLM_DTYPE_Q8_0: return VKLLM_QK8_0;
    case VKLLM_DTYPE_Q4_0: return VKLLM_QK4_0;
    case VKLLM_DTYPE_Q4_K: case VKLLM_DTYPE_Q5_K: case VKLLM_DTYPE_Q6_K: return VKLLM_QK_K;
    }
    return 0;
}

size_t vkllm_dtype_block_bytes(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: return 4;
    case VKLLM_DTYPE_F16: case VKLLM_DTYPE_BF16: return 2;
    case VKLLM_DTYPE_Q8_0: return Q8_0_BYTES;
    case VKLLM_DTYPE_Q4_0: return Q4_0_BYTES;
    case VKLLM_DTYPE_Q4_K: return Q4_K_BYTES;
    case VKLLM_DTYPE_Q5_K: return Q5_K_BYTES;
    case VKLLM_DTYPE_Q6_K: return Q6_K_BYTES;
    }
    return 0;
}

vkllm_status vkllm_dtype_bytes(vkllm_dtype t, uint64_t n, uint64_t *out)
{
    if (out) *out = 0;
    if (!vkllm_dtype_valid((int)t)) return VKLLM_ERROR_UNSUPPORTED_TYPE;
    if (!out) return VKLLM_ERROR_INVALID_ARGUMENT;
    uint64_t be = vkllm_dtype_block_elems(t), bb = vkllm_dtype_block_bytes(t);
    if (n % be != 0) return VKLLM_ERROR_BAD_FILE;
    uint64_t blocks = n / be;
    if (blocks > UINT64_MAX / bb) return VKLLM_ERROR_TOO_LARGE;
    *out = blocks * bb;
    return VKLLM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers */

/* fp16 fields are read byte by byte: blocks in files are only 2- or 1-byte aligned, and this also
 * keeps the code independent of host byte order. */
static inline float load_f16(const uint8_t *p)
{
    return vkllm_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

static inline void put_u16(uint8_t *p, uint16_t h)
{
    p[0] = (uint8_t)(h & 0xffu);
    p[1] = (uint8_t)(h >> 8);
}

/* Stores a block scale f as fp16 and returns the value actually stored. The magnitude is rounded up,
 * not to nearest, so codes chosen against it never need clamping (the largest element still maps
 * to the end of the code range) and a tiny nonzero scale becomes the smallest subnormal instead of
 * zero; the cost is at most 2^-10 relative on the step. Saturates at the finite fp16 range so huge
 * inputs give huge, not infinite, scales; NaN (impossible for finite inputs) stores 0. */
static inline float store_scale(uint8_t *p, float f)
{
    if (!(f == f)) f = 0;
    float a = fabsf(f);
    uint16_t h = (uint16_t)(a >= 65504.0f ? 0x7bffu : vkllm_fp32_to_fp16(a));
    if (h < 0x7bffu && vkllm_fp16_to_fp32(h) < a) h++; /* next larger magnitude */
    if (f < 0) h |= 0x8000u;
    put_u16(p, h);
    return vkllm_fp16_to_fp32(h);
}

static inline int s8(uint8_t u) { return (int)u - (int)((u & 0x80u) << 1); }

/* Round to nearest (ties to even) for |v| < 2^22: adding 1.5*2^23 leaves the integer in the low
 * mantissa bits. Branch-free and vectorizable, unlike lrintf under default flags. */
static inline int round_int(float v)
{
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* For a sub-block with largest magnitude amax, the exponent e with amax = m * 2^e, m in [0.5, 1).
 * The fits run on x * 2^-e: scaling by a power of two is exact, so results are bit-identical to
 * unscaled arithmetic, except that squares and weights of huge (or tiny) finite inputs no longer
 * overflow (underflow). Returns 0 (no scaling) where 2^-e itself would not be a normal float. */
static inline int norm_exp(float amax)
{
    int e = 0;
    (void)frexpf(amax, &e);
    return e >= -126 && e <= 128 ? e : 0;
}

/* 1 if any of x[0..n) is NaN or infinite. */
static int has_nonfinite(const float *x, int n)
{
    uint32_t bad = 0;
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad != 0;
}

void vkllm_k_scales_pack(uint8_t out[12], const uint8_t sc[8], const uint8_t mn[8])
{
    for (int s = 0; s < 4; s++) {
        uint8_t sh = (uint8_t)(sc[s + 4] & 63), mh = (uint8_t)(mn[s + 4] & 63);
        out[s] = (uint8_t)((sc[s] & 63) | ((sh >> 4) << 6));
        out[s + 4] = (uint8_t)((mn[s] & 63) | ((mh >> 4) << 6));
        out[s + 8] = (uint8_t)((sh & 15) | ((mh & 15) << 4));
    }
}

void vkllm_k_scales_unpack(const uint8_t in[12], uint8_t sc[8], uint8_t mn[8])
{
    for (int s = 0; s < 4; s++) {
        sc[s] = (uint8_t)(in[s] & 63);
        mn[s] = (uint8_t)(in[s + 4] & 63);
        sc[s + 4] = (uint8_t)((in[s + 8] & 15) | ((in[s] >> 6) << 4));
        mn[s + 4] = (uint8_t)((in[s + 8] >> 4) | ((in[s + 4] >> 6) << 4));
    }
}

/* ---------------------------------------------------------------------------------------------
 * Dequantization, one block each; b points at the block's first byte. */

static void dq_q8_0(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int i = 0; i < 32; i++) y[i] = d * (float)s8(b[2 + i]);
}

static void dq_q4_0(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 15) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

/* Q4_K and Q5_K differ only by the fifth bit: qh is NULL for Q4_K. */
static void dq_k45(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y)
{
    float d = load_f16(b), dmin = load_f16(b + 2);
    uint8_t sc[8], mn[8];
    vkllm_k_scales_unpack(b + 4, sc, mn);
    for (int c = 0; c < 4; c++) {
        int s0 = 2 * c, s1 = 2 * c + 1;
        float d0 = d * (float)sc[s0], m0 = dmin * (float)mn[s0];
        float d1 = d * (float)sc[s1], m1 = dmin * (float)mn[s1];
        const uint8_t *q = qs + 32 * c;
        float *y0 = y + 64 * c, *y1 = y0 + 32;
        if (qh) {
            for (int l = 0; l < 32; l++) {
                int lo = (q[l] & 15) | (((qh[l] >> s0) & 1) << 4);
                int hi = (q[l] >> 4) | (((qh[l] >> s1) & 1) << 4);
                y0[l] = d0 * (float)lo - m0;
                y1[l] = d1 * (float)hi - m1;
            }
        } else {
            for (int l = 0; l < 32; l++) {
                y0[l] = d0 * (float)(q[l] & 15) - m0;
                y1[l] = d1 * (float)(q[l] >> 4) - m1;
            }
        }
    }
}

static void dq_q6_k(const uint8_t *b, float *y)
{
    float d = load_f16(b + 208);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h, *sc = b + 192 + 8 * h;
        float *yh = y + 128 * h;
        for (int l = 0; l < 32; l++) {
            int q0 = (ql[l] & 15) | ((qh[l] & 3) << 4);
            int q1 = (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4);
            int q2 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            int q3 = (ql[l + 32] >> 4) | ((qh[l] >> 6) << 4);
            int is = l / 16;
            yh[l] = d * (float)s8(sc[is]) * (float)(q0 - 32);
            yh[l + 32] = d * (float)s8(sc[is + 2]) * (float)(q1 - 32);
            yh[l + 64] = d * (float)s8(sc[is + 4]) * (float)(q2 - 32);
            yh[l + 96] = d * (float)s8(sc[is + 6]) * (float)(q3 - 32);
        }
    }
}

void vkllm_dequantize(vkllm_dtype t, const void *src, float *dst, size_t n)
{
    const uint8_t *p = src;
    size_t be = vkllm_dtype_block_elems(t), bb = vkllm_dtype_block_bytes(t);
    size_t nb = be ? n / be : 0;
    switch (t) {
    case VKLLM_DTYPE_F32:
        memcpy(dst, p, n * sizeof(float));
        return;
    case VKLLM_DTYPE_F16:
        for (size_t i = 0; i < n; i++) dst[i] = load_f16(p + 2 * i);
        return;
    case VKLLM_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = vkllm_bf16_to_fp32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        return;
    case VKLLM_DTYPE_Q8_0:
        for (size_t i = 0; i < nb; i++) dq_q8_0(p + i * bb, dst + i * be);
        break;
    case VKLLM_DTYPE_Q4_0:
        for (size_t i = 0; i < nb; i++) dq_q4_0(p + i * bb, dst + i * be);
        break;
    case VKLLM_DTYPE_Q4_K:
        for (size_t i = 0; i < nb; i++) dq_k45(p + i * bb, NULL, p + i * bb + 16, dst + i * be);
        break;
    case VKLLM_DTYPE_Q5_K:
        for (size_t i = 0; i < nb; i++) dq_k45(p + i * bb, p + i * bb + 16, p + i * bb + 48, dst + i * be);
        break;
    case VKLLM_DTYPE_Q6_K:
        for (size_t i = 0; i < nb; i++) dq_q6_k(p + i * bb, dst + i * be);
        break;
    }
    /* Contract violations (invalid type, partial last block) leave NaNs, never stale data. */
    for (size_t i = nb * be; i < n; i++) dst[i] = NAN;
}

/* ---------------------------------------------------------------------------------------------
 * Quantization */

static void q_q8_0(const float *x, uint8_t *b)
{
    float amax = 0;
    for (int i = 0; i < 32; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    float d = store_scale(b, amax / 127.0f);
    float id = d != 0 ? 1.0f / d : 0.0f;
    for (int i = 0; i < 32; i++) {
        int q = round_int(clampf(x[i] * id, -127.0f, 127.0f));
        b[2 + i] = (uint8_t)(q & 0xff);
    }
}

/* Like ggml's reference: the element of largest magnitude maps exactly to -8, so the scale carries
 * its sign and the asymmetric code range (-8..7) is used where it matters most. */
static void q_q4_0(const float *x, uint8_t *b)
{
    float amax = 0, max = 0;
    for (int i = 0; i < 32; i++) {
        float a = fabsf(x[i]);
        if (a > amax) { amax = a; max = x[i]; }
    }
    float d = store_scale(b, max / -8.0f);
    float id = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < 16; j++) {
        int lo = round_int(clampf(x[j] * id, -8.0f, 7.0f)) + 8;
        int hi = round_int(clampf(x[j + 16] * id, -8.0f, 7.0f)) + 8;
        b[2 + j] = (uint8_t)(lo | (hi << 4));
    }
}

/* Fits x[i] ~ scale*l[i] + off with integer l in 0..nmax, off <= 0, minimizing sum w[i]*err^2:
 * the grid is anchored at lo = min(x, 0) and stretched by nmax + rmin + k*rdelta (k = 0..nstep) steps
 * over the range; for each candidate grid the codes are fixed and (scale, off) re-fitted by weighted
 * least squares. The best candidate (or the plain min/max grid if none beats it) wins. Returns the
 * scale; *neg_off gets -off >= 0 (what the K formats store as the "min"). n <= 32.
 * Everything is computed on u = x - lo (0 <= u <= range), so the error expanded from the sums does
 * not cancel catastrophically when the block sits on a large negative offset. */
static float fit_scale_min(const float *x, const float *w, int n, int nmax, float rmin, float rdelta,
                           int nstep, float *neg_off)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (lo > 0) lo = 0;
    if (hi == lo) { /* constant block (zero or negative): the offset alone represents it */
        *neg_off = -lo;
        return 0;
    }
    float u[32], sw = 0, swu = 0, swuu = 0;
    for (int i = 0; i < n; i++) {
        u[i] = x[i] - lo;
        sw += w[i];
        swu += w[i] * u[i];
        swuu += w[i] * u[i] * u[i];
    }
    float range = hi - lo, fmax = (float)nmax;

    /* Weighted squared error of u ~ s*l + o given the sums over the codes. */
#define FIT_ERR(s, o, sl, sll, slu) \
    ((double)swuu + (double)(s) * (s) * (sll) + (double)(o) * (o) * sw + 2.0 * (s) * (o) * (sl) - \
     2.0 * (s) * (slu) - 2.0 * (o) * swu)

    /* candidate -1 is the plain grid: scale range/nmax, offset lo (o = 0 in u) */
    float best_s = range / fmax, best_o = 0;
    double best_err = 0;
    for (int k = -1; k <= nstep; k++) {
        float inv = (k < 0 ? fmax : fmax + rmin + rdelta * (float)k) / range, sl = 0, sll = 0, slu = 0;
        for (int i = 0; i < n; i++) {
            float t = u[i] * inv;
            t = t < fmax ? t : fmax;
            float l = (float)(int)(t + 0.5f);
            sl += w[i] * l;
            sll += w[i] * l * l;
            slu += w[i] * l * u[i];
        }
        if (k < 0) {
            best_err = FIT_ERR(best_s, 0.0f, sl, sll, slu);
            continue;
        }
        float det = sw * sll - sl * sl;
        if (!(det > 0)) continue;
        float s = (sw * slu - swu * sl) / det;
        float o = (sll * swu - sl * slu) / det;
        if (o + lo > 0) { /* the format cannot add an offset: pin it at x = 0, refit the scale */
            o = -lo;
            s = (slu - o * sl) / sll;
        }
        double err = FIT_ERR(s, o, sl, sll, slu);
        if (err < best_err) {
            best_err = err;
            best_s = s;
            best_o = o;
        }
    }
#undef FIT_ERR
    *neg_off = -(best_o + lo);
    return best_s;
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-element sub-block scale/min search with weights
 * rms + |x| (favouring large elements, as ggml's reference does), then the 8 scales and 8 mins are
 * quantized to 6 bits against the super-block d and dmin, and the codes re-chosen against the
 * rounded values. L receives the codes in element order. */
static void q_k45_block(const float *x, uint8_t *b, int nmax, float rmin, float rdelta, int nstep, uint8_t L[256])
{
    float scale[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int s = 0; s < 8; s++) {
        const float *xb = x + 32 * s;
        float amax = 0, xn[32];
        for (int l = 0; l < 32; l++) amax = fabsf(xb[l]) > amax ? fabsf(xb[l]) : amax;
        int e = norm_exp(amax);
        float f = ldexpf(1.0f, -e), sxx = 0;
        for (int l = 0; l < 32; l++) {
            xn[l] = xb[l] * f;
            sxx += xn[l] * xn[l];
        }
        float rms = sqrtf(sxx / 32.0f);
        for (int l = 0; l < 32; l++) w[l] = rms + fabsf(xn[l]);
        scale[s] = ldexpf(fit_scale_min(xn, w, 32, nmax, rmin, rdelta, nstep, &mins[s]), e);
        mins[s] = ldexpf(mins[s], e);
        max_scale = scale[s] > max_scale ? scale[s] : max_scale;
        max_min = mins[s] > max_min ? mins[s] : max_min;
    }
    float d = store_scale(b, max_scale / 63.0f);
    float dmin = store_scale(b + 2, max_min / 63.0f);
    float id = d > 0 ? 1.0f / d : 0.0f, idmin = dmin > 0 ? 1.0f / dmin : 0.0f;
    uint8_t sc[8], mn[8];
    for (int s = 0; s < 8; s++) {
        sc[s] = (uint8_t)round_int(clampf(scale[s] * id, 0.0f, 63.0f));
        mn[s] = (uint8_t)round_int(clampf(mins[s] * idmin, 0.0f, 63.0f));
    }
    float fmax = (float)nmax;
    for (int s = 0; s < 8; s++) {
        const float *xb = x + 32 * s;
        uint8_t *Lb = L + 32 * s;
        float ds = d * (float)sc[s], ms = dmin * (float)mn[s];
        if (ds == 0) {
            /* no scale left after rounding: the min alone should then give the sub-block's mean,
             * not the offset that was fitted together with a scale */
            float sum = 0;
            for (int l = 0; l < 32; l++) sum += xb[l];
            mn[s] = (uint8_t)round_int(clampf(-sum / 32.0f * idmin, 0.0f, 63.0f));
            memset(Lb, 0, 32);
            continue;
        }
        float ids = 1.0f / ds;
        for (int l = 0; l < 32; l++) Lb[l] = (uint8_t)round_int(clampf((xb[l] + ms) * ids, 0.0f, fmax));
    }
    vkllm_k_scales_pack(b + 4, sc, mn);
}

static void q_q4_k(const float *x, uint8_t *b)
{
    uint8_t L[256];
    q_k45_block(x, b, 15, -1.0f, 0.1f, 20, L);
    uint8_t *qs = b + 16;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

static void q_q5_k(const float *x, uint8_t *b)
{
    uint8_t L[256];
    q_k45_block(x, b, 31, -0.5f, 0.1f, 15, L);
    uint8_t *qh = b + 16, *qs = b + 48;
    memset(qh, 0, 32);
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
            qs[32 * c + l] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
            qh[l] = (uint8_t)(qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        }
    }
}

/* Symmetric fit x ~ scale*l, l in -32..31, weights x^2 (ggml's reference choice for Q6_K): the
 * element of largest magnitude is mapped to -32 +- k/10 steps (k = -9..9, the same trick as Q4_0 for
 * the asymmetric range) and the scale re-fitted by least squares for each candidate; the best
 * candidate by weighted error wins. n = 16. */
static float fit_scale_sym(const float *x)
{
    float amax = 0, max = 0;
    for (int i = 0; i < 16; i++) {
        float a = fabsf(x[i]);
        if (a > amax) { amax = a; max = x[i]; }
    }
    if (amax < 1e-15f) return 0;
    int e = norm_exp(amax);
    float f = ldexpf(1.0f, -e), xn[16], w[16];
    for (int i = 0; i < 16; i++) {
        xn[i] = x[i] * f;
        w[i] = xn[i] * xn[i];
    }
    max *= f;
    float best_slx = 0, best_sll = 0;
    for (int k = 0; k <= 18; k++) {
        /* k = 0 is the plain candidate; it must be tried first so ties keep it, as ggml does */
        int step = k == 0 ? 0 : (k <= 9 ? k - 10 : k - 9);
        float inv = -(32.0f + 0.1f * (float)step) / max, slx = 0, sll = 0;
        for (int i = 0; i < 16; i++) {
            float l = (float)round_int(clampf(xn[i] * inv, -32.0f, 31.0f));
            slx += w[i] * xn[i] * l;
            sll += w[i] * l * l;
        }
        /* maximizing slx^2/sll minimizes the weighted error at the least-squares scale slx/sll */
        if (sll > 0 && (best_sll == 0 || slx * slx * best_sll > best_slx * best_slx * sll)) {
            best_slx = slx;
            best_sll = sll;
        }
    }
    return best_sll > 0 ? ldexpf(best_slx / best_sll, e) : 0;
}

static void q_q6_k(const float *x, uint8_t *b)
{
    float scale[16], max_scale = 0, amax_scale = 0;
    for (int s = 0; s < 16; s++) {
        scale[s] = fit_scale_sym(x + 16 * s);
        float a = fabsf(scale[s]);
        if (a > amax_scale) { amax_scale = a; max_scale = scale[s]; }
    }
    int8_t L[256];
    memset(b, 0, Q6_K_BYTES);
    if (amax_scale < 1e-15f) return; /* all (near) zero: d = 0 and zero codes */
    /* the largest sub-block scale maps to -128, again using the asymmetric side of int8 */
    float d = store_scale(b + 208, max_scale / -128.0f);
    float id = d != 0 ? 1.0f / d : 0.0f;
    for (int s = 0; s < 16; s++) {
        int q = round_int(clampf(scale[s] * id, -128.0f, 127.0f));
        b[192 + s] = (uint8_t)(q & 0xff);
        float ds = d * (float)q;
        int8_t *Ls = L + 16 * s;
        if (ds == 0) {
            memset(Ls, 0, 16);
            continue;
        }
        float ids = 1.0f / ds;
        for (int l = 0; l < 16; l++) Ls[l] = (int8_t)round_int(clampf(x[16 * s + l] * ids, -32.0f, 31.0f));
    }
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const int8_t *Lh = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            int q0 = Lh[l] + 32, q1 = Lh[l + 32] + 32, q2 = Lh[l + 64] + 32, q3 = Lh[l + 96] + 32;
            ql[l] = (uint8_t)((q0 & 15) | ((q2 & 15) << 4));
            ql[l + 32] = (uint8_t)((q1 & 15) | ((q3 & 15) << 4));
            qh[l] = (uint8_t)((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
        }
    }
}

vkllm_status vkllm_quantize(vkllm_dtype t, const float *src, void *dst, size_t n)
{
    if (!vkllm_dtype_valid((int)t)) return VKLLM_ERROR_UNSUPPORTED_TYPE;
    size_t be = vkllm_dtype_block_elems(t), bb = vkllm_dtype_block_bytes(t);
    if (n % be != 0) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (n == 0) return VKLLM_OK;
    if (!src || !dst) return VKLLM_ERROR_INVALID_ARGUMENT;
    uint8_t *p = dst;
    size_t nb = n / be;
    void (*fn)(const float *, uint8_t *) = NULL;
    switch (t) {
    case VKLLM_DTYPE_F32:
        memcpy(p, src, n * sizeof(float));
        return VKLLM_OK;
    case VKLLM_DTYPE_F16:
        for (size_t i = 0; i < n; i++) put_u16(p + 2 * i, vkllm_fp32_to_fp16(src[i]));
        return VKLLM_OK;
    case VKLLM_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) put_u16(p + 2 * i, vkllm_fp32_to_bf16(src[i]));
        return VKLLM_OK;
    case VKLLM_DTYPE_Q8_0: fn = q_q8_0; break;
    case VKLLM_DTYPE_Q4_0: fn = q_q4_0; break;
    case VKLLM_DTYPE_Q4_K: fn = q_q4_k; break;
    case VKLLM_DTYPE_Q5_K: fn = q_q5_k; break;
    case VKLLM_DTYPE_Q6_K: fn = q_q6_k; break;
    }
    for (size_t i = 0; i < nb; i++) {
        const float *x = src + i * be;
        if (has_nonfinite(x, (int)be)) return VKLLM_ERROR_INVALID_ARGUMENT;
        fn(x, p + i * bb);
    }
    return VKLLM_OK;
}
