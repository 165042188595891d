/* 8-bit activation mat-vec (kernels/matvec_q8.comp, vkllm_op_matvec_q8) against vkllm_ref_matvec_q8
 * on seeded random data: every type x prologue (none, RMSNorm, SwiGLU) x residual (none, separate,
 * in place), n_vec 1..4, awkward row counts, the tuning shapes, and what must be refused.
 * Weights: vkllm_quantize of random normals (a random scale per row; for large shapes quantized
 * blocks of a pool at pseudo-random places, as tests/gpu/test_matvec.c).
 * Bound: NMSE <= 1e-5 against the reference of the same quantization (n_out >= 16). The integer dots
 * are exact; float32 against double accumulation costs ~sqrt(n) * 2^-24 relative (NMSE 1e-14..1e-13
 * measured). But a code that lands on the other side of a rounding edge than in the reference (the
 * GPU's x' from a float32 prologue, exp and division within a few ulp, against x' in double: about
 * 1e-5 of the elements with a prologue) moves every row by w * d_x, NMSE (d_x / sigma_x)^2 / n per
 * flipped code: 1e-7 (Gaussian x) to 3e-7 (SwiGLU's tails) at n = 5120, 6e-6 at n = 256; seen in
 * about one vector in a hundred. A wrong block, scale or sum gives 1e-3 or more.
 * With fewer than 16 outputs every element must satisfy
 * |out - ref| <= 1e-5 * (sum_i |w_i * d_x * q_i| + |r|) + 2 * max_i |w_i| * max d_x (float32 summation
 * plus two flipped codes).
 * Sanity of the quantization itself: against vkllm_ref_matvec (float weights times the unquantized
 * x') NMSE <= 1e-3: rounding to 1/127 of each block's amax adds noise of variance (amax/127)^2 / 12
 * per element, NMSE ~3e-5 for Gaussian x (amax ~2.5 sigma) and more for SwiGLU's heavier tails
 * (measured up to 3e-4 at 17 outputs); a broken quantization (wrong scale, lost sign) gives 1e-2 or
 * more.
 * x quantized once (vkllm_op_quantize_q8, then vkllm_op_matvec_q8 with xq; test_q8_global): the
 * product has the same bounds as above (same codes up to the same rounding-edge flips), and the
 * quantized buffer is checked against vkllm_ref_quantize_q8_act of the reference's x' directly:
 * codes equal except at most 2 + 1 per thousand that differ by one (the flips above, float32 x'
 * against double), each scale d within 2e-5 relative of the reference's (amax / 127 of an x' that
 * is within a few float32 ulp, the RMSNorm's float32 sum of squares over up to 8192 elements
 * ~ sqrt(n) ulp: 1e-5 at most; a wrong block or element gives O(1)), d * sum(q) within 1e-6
 * relative of the buffer's own d times the sum of its own codes, the two int16 half sums exact.
 * QKV with RoPE and the cache append in the epilogue (rope_kv; test_q8_rope): against
 * vkllm_ref_matvec_q8 then vkllm_ref_kv_write of its output. Without a prologue the codes are the
 * reference's exactly, so the only differences are float32 accumulation (~1e-7 relative), the
 * float32 rotation with a double angle (test_attn's kv_write bound: Q NMSE 1e-10) and fp16 rounding:
 * Q NMSE <= 1e-9, every K and V half within 1 fp16 ulp of the reference's plus 1e-5 absolute (a
 * half that rounds the other way after a 1e-7 relative difference; a 1% scale error is ~10 ulp);
 * with the RMSNorm prologue, code flips (above) allow NMSE 1e-5 on Q, K and V. Every cache half
 * outside row pos must keep its poison (no stray writes), none at all for a position outside the
 * cache, where Q is still rotated. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/ops_matvec.h"
#include "vkllm/ref.h"
#include "vkllm/ref_matvec.h"
#include "vkllm/ref_attn.h"
#include "vkllm/half.h"

#define BOUND 1e-5
#define SANE 1e-3

static const vkllm_dtype q8_types[] = { VKLLM_DTYPE_Q4_K, VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K, VKLLM_DTYPE_Q8_0, VKLLM_DTYPE_Q4_0 };
#define N_TYPES (sizeof q8_types / sizeof q8_types[0])


typedef enum { RES_NONE, RES_SEPARATE, RES_IN_PLACE } res_mode;
static const char *pro_name[] = { "none", "rmsnorm", "swiglu" };
static const char *res_name[] = { "none", "separate", "in-place" };

/* Tuning overrides for the next run_case calls (0 = the op's choice). */
static uint32_t tune_rows, tune_rpl, tune_lanes, tune_variant;
static int use_xq; /* 1: quantize_q8 into a global buffer, then matvec_q8 reading it (xq) */
static double worst_dq; /* worst relative scale difference of the quantized buffer */
static uint64_t flips_seen, codes_seen;

/* The quantized buffer (layout of ops_matvec.h) against vkllm_ref_quantize_q8_act of x' (xp). */
static void check_xq(const uint8_t *qb, const float *xp, uint32_t n_in, uint32_t n_vec, const char *what)
{
    const uint32_t nb = n_in / 32;
    int8_t *q = malloc(n_in);
    float *d = malloc((size_t)nb * 4);
    assert_non_null(q); assert_non_null(d);
    uint64_t flips = 0;
    for (uint32_t v = 0; v < n_vec; v++) {
        vkllm_ref_quantize_q8_act(xp + (size_t)v * n_in, n_in, q, d);
        const int8_t *gq = (const int8_t *)qb + (size_t)v * n_in;
        for (uint32_t i = 0; i < n_in; i++) {
            if (gq[i] == q[i]) continue;
            if (abs(gq[i] - q[i]) > 1)
                fail_msg("quantize_q8 %s: vector %u code %u is %d, reference %d (seed VKLLM_SEED=%llu)", what, v, i, gq[i], q[i],
                         (unsigned long long)tu_seed());
            flips++;
        }
        for (uint32_t b = 0; b < nb; b++) {
            float ds[2];
            int32_t h;
            memcpy(ds, qb + (size_t)n_vec * n_in + ((size_t)v * nb + b) * 8, 8);
            memcpy(&h, qb + (size_t)n_vec * n_in + (size_t)n_vec * nb * 8 + ((size_t)v * nb + b) * 4, 4);
            double rel = d[b] != 0 ? fabs((double)ds[0] - d[b]) / d[b] : fabs(ds[0]);
            if (!(rel <= 2e-5))
                fail_msg("quantize_q8 %s: vector %u block %u d = %.9g, reference %.9g (seed VKLLM_SEED=%llu)", what, v, b, ds[0], d[b],
                         (unsigned long long)tu_seed());
            if (rel > worst_dq) worst_dq = rel;
            int s0 = 0, s1 = 0;
            for (uint32_t i = 0; i < 16; i++) s0 += gq[b * 32 + i], s1 += gq[b * 32 + 16 + i];
            if ((int16_t)(h & 0xffff) != s0 || (h >> 16) != s1)
                fail_msg("quantize_q8 %s: vector %u block %u half sums %d %d, codes give %d %d", what, v, b, (int16_t)(h & 0xffff), h >> 16,
                         s0, s1);
            double want = (double)ds[0] * (s0 + s1);
            if (!(fabs(ds[1] - want) <= 1e-6 * fabs((double)ds[0]) * (abs(s0 + s1) + 1)))
                fail_msg("quantize_q8 %s: vector %u block %u d*sum = %.9g, d * sum of its codes %.9g", what, v, b, ds[1], want);
        }
    }
    if (flips > 2 + (uint64_t)n_in * n_vec / 1000)
        fail_msg("quantize_q8 %s: %llu codes of %u differ by one from the reference (seed VKLLM_SEED=%llu)", what, (unsigned long long)flips,
                 n_in * n_vec, (unsigned long long)tu_seed());
    flips_seen += flips;
    codes_seen += (uint64_t)n_in * n_vec;
    free(q);
    free(d);
}
static double worst_nmse, worst_sane; /* reported at the end of each test */

static void run_case(vkllm_device *dev, vkllm_dtype t, uint32_t n_out, uint32_t n_in, uint32_t n_vec, uint32_t pro, res_mode rm,
                     uint32_t x_pad, uint32_t y_pad, uint64_t case_id)
{
    tu_rng r = tu_rng_for(case_id);
    uint32_t up = pro == VKLLM_MVQ_SWIGLU ? n_in + 4 * (uint32_t)(case_id % 3) : 0; /* gap between gate and up sometimes */
    uint32_t xs = (pro == VKLLM_MVQ_SWIGLU ? up + n_in : n_in) + x_pad, ys = n_out + y_pad;
    size_t nx = (size_t)n_vec * xs, ny = (size_t)(n_vec - 1) * ys + n_out;
    uint64_t wbytes;
    uint8_t *w = tu_random_weights(&r, t, n_out, n_in, 16, &wbytes);
    float *x = malloc(nx * 4), *g = malloc((size_t)n_in * 4), *res = malloc(ny * 4), *ref = malloc(ny * 4), *out = malloc(ny * 4);
    float *xp = malloc((size_t)n_vec * n_in * 4), *fref = malloc(ny * 4);
    assert_non_null(x); assert_non_null(g); assert_non_null(res); assert_non_null(ref); assert_non_null(out);
    assert_non_null(xp); assert_non_null(fref);
    tu_fill_normal(&r, x, nx, pro == VKLLM_MVQ_RMSNORM ? 5.0f : 1.5f);
    tu_fill_uniform(&r, g, n_in, 0.2f, 2.0f);
    tu_fill_normal(&r, res, ny, 3.0f);
    tu_poison(ref, ny);
    for (uint32_t v = 0; v < n_vec; v++)
        if (rm == RES_IN_PLACE) memcpy(ref + (size_t)v * ys, res + (size_t)v * ys, n_out * 4);
    const float *rp = rm == RES_SEPARATE ? res : rm == RES_IN_PLACE ? ref : NULL;
    memcpy(fref, ref, ny * 4);
    const float *frp = rm == RES_SEPARATE ? res : rm == RES_IN_PLACE ? fref : NULL;
    assert_int_equal(vkllm_ref_matvec_q8(t, w, n_out, n_in, x, xs, pro, g, 1e-5f, up, ref, ys, rp, ys, n_vec), VKLLM_OK);
    /* x' unquantized (the prologue in double, as the reference) for the sanity bound */
    for (uint32_t v = 0; v < n_vec; v++) {
        const float *xv = x + (size_t)v * xs;
        double ss = 0;
        for (uint32_t i = 0; i < n_in; i++) ss += (double)xv[i] * xv[i];
        double sc = 1.0 / sqrt(ss / n_in + 1e-5);
        for (uint32_t i = 0; i < n_in; i++) {
            double a = xv[i];
            if (pro == VKLLM_MVQ_RMSNORM) a = a * g[i] * sc;
            if (pro == VKLLM_MVQ_SWIGLU) a = a / (1.0 + exp(-a)) * xv[up + i];
            xp[(size_t)v * n_in + i] = (float)a;
        }
    }
    assert_int_equal(vkllm_ref_matvec(t, w, n_out, n_in, xp, n_in, fref, ys, frp, ys, n_vec), VKLLM_OK);

    tu_fbuf bw = tu_fbuf_alloc(dev, (size_t)((wbytes + 15) / 16 * 4)), bx = tu_fbuf_alloc(dev, nx), by = tu_fbuf_alloc(dev, ny);
    tu_fbuf bg = tu_fbuf_alloc(dev, n_in), br = { { 0 }, 0 };
    tu_fbuf_upload(dev, &bw, (const float *)w);
    tu_fbuf_upload(dev, &bx, x);
    tu_fbuf_upload(dev, &bg, g);
    tu_fbuf_init_output(dev, &by, rm == RES_IN_PLACE ? res : NULL, n_vec, ys, n_out);
    if (rm == RES_SEPARATE) {
        br = tu_fbuf_alloc(dev, ny);
        tu_fbuf_upload(dev, &br, res);
    }
    assert_true(vkllm_matvec_q8_supported(dev, t, n_in, n_vec));
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_matvec_q8_args a = { .w = tu_view(&bw), .type = t, .n_out = n_out, .n_in = n_in, .x = tu_view(&bx), .y = tu_view(&by),
                               .n_vec = n_vec, .x_stride = xs, .y_stride = ys, .r_stride = ys, .prologue = pro,
                               .norm = tu_view(&bg), .eps = 1e-5f, .up_offset = up,
                               .rows_per_wg = tune_rows, .rows_per_lane = tune_rpl, .lanes_per_row = tune_lanes,
                               .variant = tune_variant };
    if (rm == RES_SEPARATE) a.residual = tu_view(&br);
    if (rm == RES_IN_PLACE) a.residual = tu_view(&by);
    const uint64_t qbytes = vkllm_q8_act_bytes(n_in, n_vec);
    tu_fbuf bq = { { 0 }, 0 };
    vkllm_status s;
    if (use_xq) {
        bq = tu_fbuf_alloc(dev, qbytes / 4);
        tu_fbuf_poison(dev, &bq);
        vkllm_quantize_q8_args qa = { .x = tu_view(&bx), .out = tu_view(&bq), .n_in = n_in, .n_vec = n_vec, .x_stride = xs,
                                      .prologue = pro, .norm = tu_view(&bg), .eps = 1e-5f, .up_offset = up };
        if ((s = vkllm_op_quantize_q8(c, &qa))) fail_msg("quantize_q8 %ux%u: %s", n_in, n_vec, vkllm_device_error(dev));
        a.xq = tu_view(&bq);
        /* ignored with xq: a prologue the kernel would have to refuse, no gain */
        a.prologue = 7;
        a.norm = (vkllm_view){ { 0 }, 0 };
    }
    s = vkllm_op_matvec_q8(c, &a);
    if (s) fail_msg("matvec_q8 %s %ux%u: %s", vkllm_dtype_name(t), n_out, n_in, vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &by, out);
    if (use_xq) {
        uint8_t *qh = malloc(qbytes);
        assert_non_null(qh);
        tu_fbuf_download(dev, &bq, (float *)qh);
        char what[96];
        snprintf(what, sizeof what, "n_in=%u n_vec=%u %s", n_in, n_vec, pro_name[pro]);
        check_xq(qh, xp, n_in, n_vec, what);
        free(qh);
        tu_fbuf_free(dev, &bq);
    }

    float *wrow = malloc((size_t)n_in * 4), *xd = malloc((size_t)n_in / 32 * 4);
    int8_t *xq = malloc(n_in);
    assert_non_null(wrow); assert_non_null(xd); assert_non_null(xq);
    for (uint32_t v = 0; v < n_vec; v++) {
        if (n_out >= 16) {
            tu_assert_nmse(out + (size_t)v * ys, ref + (size_t)v * ys, n_out, BOUND, "matvec_q8 %s n_out=%u n_in=%u n_vec=%u %s res=%s vec %u",
                           vkllm_dtype_name(t), n_out, n_in, n_vec, pro_name[pro], res_name[rm], v);
            double e = tu_nmse(out + (size_t)v * ys, ref + (size_t)v * ys, n_out);
            if (e > worst_nmse) worst_nmse = e;
            if (rm == RES_NONE) { /* a residual would hide the product's error in the sanity NMSE */
                tu_assert_nmse(out + (size_t)v * ys, fref + (size_t)v * ys, n_out, SANE,
                               "matvec_q8 %s n_out=%u n_in=%u %s vec %u against the unquantized x'", vkllm_dtype_name(t), n_out, n_in,
                               pro_name[pro], v);
                e = tu_nmse(out + (size_t)v * ys, fref + (size_t)v * ys, n_out);
                if (e > worst_sane) worst_sane = e;
            }
        } else {
            vkllm_ref_quantize_q8_act(xp + (size_t)v * n_in, n_in, xq, xd);
            double dmax = 0;
            for (uint32_t b = 0; b < n_in / 32; b++) dmax = fmax(dmax, xd[b]);
            for (uint32_t o = 0; o < n_out; o++) {
                vkllm_dequantize(t, w + (size_t)o * (wbytes / n_out), wrow, n_in);
                double cond = rm == RES_NONE ? 0 : fabs(res[(size_t)v * ys + o]), wmax = 0;
                for (uint32_t i = 0; i < n_in; i++) {
                    cond += fabs((double)wrow[i] * xd[i / 32] * xq[i]);
                    wmax = fmax(wmax, fabs(wrow[i]));
                }
                double bound = 1e-5 * cond + 2 * wmax * dmax;
                float got = out[(size_t)v * ys + o], want = ref[(size_t)v * ys + o];
                if (!(fabs((double)got - want) <= bound))
                    fail_msg("matvec_q8 %s n_out=%u n_in=%u n_vec=%u %s res=%s: y[%u][%u] = %.9g, reference %.9g, bound %.6g "
                             "(seed VKLLM_SEED=%llu)", vkllm_dtype_name(t), n_out, n_in, n_vec, pro_name[pro], res_name[rm], v, o, got,
                             want, bound, (unsigned long long)tu_seed());
            }
        }
        if (v + 1 < n_vec)
            for (uint32_t i = n_out; i < ys; i++)
                if (!isnan(out[(size_t)v * ys + i])) fail_msg("matvec_q8 %s: y gap element %u of vector %u was written", vkllm_dtype_name(t), i, v);
    }
    free(wrow); free(xd); free(xq);
    tu_fbuf_free(dev, &bw); tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &by); tu_fbuf_free(dev, &bg);
    if (rm == RES_SEPARATE) tu_fbuf_free(dev, &br);
    free(w); free(x); free(g); free(res); free(ref); free(out); free(xp); free(fref);
}

static void report(const char *what)
{
    print_message("matvec_q8 %s: worst NMSE %.3e against the q8 reference (bound %.0e), %.3e against unquantized x' (bound %.0e)\n",
                  what, worst_nmse, BOUND, worst_sane, SANE);
    worst_nmse = worst_sane = 0;
}

/* Every type x prologue x residual at awkward row counts (1, 3, 17, 257) and row lengths
 * (256/512/5120 for K types, 32/96 for Q8_0/Q4_0), n_vec rotating 1..4, strides with gaps. */
static void test_q8_types(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    if (!vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q4_K, 256, 1)) {
        print_message("matvec_q8 not supported here (no integer dot product): skipped\n");
        tu_device_close(dev);
        skip();
    }
    static const uint32_t outs[] = { 257, 17, 3, 1 };
    uint64_t id = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        vkllm_dtype t = q8_types[ti];
        int k = vkllm_dtype_block_elems(t) == 256;
        const uint32_t ins[3] = { k ? 256 : 32, k ? 512 : 96, k ? 5120 : 5120 };
        for (uint32_t pro = 0; pro < 3; pro++)
            for (uint32_t rm = 0; rm < 3; rm++) {
                id++;
                uint32_t n_vec = 1 + (uint32_t)(id % 4);
                uint32_t n_out = outs[(id + pro) % 4], n_in = ins[(pro + rm + ti) % 3];
                if ((uint64_t)n_out * n_in > 300000) n_out = 67; /* keep the CPU reference quick */
                run_case(dev, t, n_out, n_in, n_vec, pro, (res_mode)rm, id % 5 == 0 ? 4 : 0, id % 4 == 1 ? 5 : 0, 3000 + id);
            }
    }
    report("types");
    tu_device_close(dev);
}

/* Phi-3-mini / Phi-4 shapes with fewer rows: QKV (Q5_K, RMSNorm), o (Q4_K + residual in place),
 * gate/up (Q4_K, RMSNorm), down (Q6_K, SwiGLU, residual in place), output (Q6_K, RMSNorm). */
static void test_q8_phi(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    if (!vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q4_K, 256, 1)) {
        tu_device_close(dev);
        skip();
    }
    run_case(dev, VKLLM_DTYPE_Q5_K, 96, 3072, 1, VKLLM_MVQ_RMSNORM, RES_NONE, 0, 0, 4001);
    run_case(dev, VKLLM_DTYPE_Q4_K, 80, 3072, 1, VKLLM_MVQ_NONE, RES_IN_PLACE, 0, 0, 4002);
    run_case(dev, VKLLM_DTYPE_Q4_K, 64, 5120, 1, VKLLM_MVQ_RMSNORM, RES_NONE, 0, 0, 4003);
    run_case(dev, VKLLM_DTYPE_Q6_K, 48, 8192, 1, VKLLM_MVQ_SWIGLU, RES_IN_PLACE, 0, 0, 4004);
    run_case(dev, VKLLM_DTYPE_Q6_K, 40, 5120, 2, VKLLM_MVQ_RMSNORM, RES_NONE, 0, 0, 4005);
    run_case(dev, VKLLM_DTYPE_Q8_0, 64, 3072, 1, VKLLM_MVQ_SWIGLU, RES_SEPARATE, 0, 0, 4006);
    run_case(dev, VKLLM_DTYPE_Q4_0, 64, 3072, 3, VKLLM_MVQ_RMSNORM, RES_NONE, 0, 0, 4007);
    report("phi");
    tu_device_close(dev);
}

/* The tuning shapes the benchmark sweeps (rows per workgroup 2..64, rows per lane 1..4, lanes 8..the
 * subgroup size), each on every type once, and the variants of vkllm_matvec_q8_args.variant. */
static void test_q8_tuning(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    if (!vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q4_K, 256, 1)) {
        tu_device_close(dev);
        skip();
    }
    uint32_t sg = vkllm_device_features(dev)->subgroup_size;
    static const struct { uint32_t rows, rpl; } tv[] = { { 2, 1 }, { 8, 4 }, { 32, 2 }, { 12, 3 }, { 64, 1 } };
    uint64_t id = 5000;
    for (size_t i = 0; i < sizeof tv / sizeof tv[0]; i++) {
        tune_rows = tv[i].rows;
        tune_rpl = tv[i].rpl;
        tune_lanes = i % 2 ? sg : 8;
        run_case(dev, q8_types[i % N_TYPES], 131, 512, 1 + (uint32_t)(i % 2), (uint32_t)(i % 3), (res_mode)(i % 3), 0, 0, ++id);
    }
    tune_rows = tune_rpl = tune_lanes = 0;
    /* the no-prefetch variant on a direct and a staged type */
    for (uint32_t v = 1; v < 3; v++) {
        tune_variant = VKLLM_MVQ_NO_PREFETCH;
        run_case(dev, VKLLM_DTYPE_Q4_K, 67, 1024, 1 + v % 2, VKLLM_MVQ_RMSNORM, (res_mode)(v % 3), 0, 0, ++id);
        run_case(dev, VKLLM_DTYPE_Q6_K, 67, 1024, 1 + v % 2, VKLLM_MVQ_RMSNORM, (res_mode)(v % 3), 0, 0, ++id);
    }
    tune_variant = 0;
    report("tuning");
    tu_device_close(dev);
}

/* What must be refused, with a message: non-q8 types, partial blocks, shared memory beyond the
 * device (predicate says 0 first), bad prologue and alignment. */
static void test_q8_refused(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const vkllm_features *f = vkllm_device_features(dev);
    assert_false(vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_F16, 256, 1));
    assert_false(vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q4_K, 300, 1));
    assert_false(vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q8_0, 48, 1));
    assert_false(vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q4_K, 256, 9));
    uint32_t big = (f->max_shared_memory / 256 + 1) * 256; /* x codes alone exceed shared memory */
    assert_false(vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q4_K, big, 1));
    if (!vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q4_K, 256, 1)) {
        tu_device_close(dev);
        skip();
    }
    tu_fbuf b = tu_fbuf_alloc(dev, (size_t)big * 8);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_matvec_q8_args a = { .w = tu_view(&b), .type = VKLLM_DTYPE_Q4_K, .n_out = 1, .n_in = big, .x = tu_view(&b), .y = tu_view(&b),
                               .n_vec = 1, .x_stride = big, .y_stride = 1 };
    a.y.offset = (uint64_t)big * 4;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_device_error(dev), "shared memory"));
    a.type = VKLLM_DTYPE_F16;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_UNSUPPORTED);
    a.type = VKLLM_DTYPE_Q4_K;
    a.n_in = 256;
    a.x_stride = 256;
    a.prologue = 3;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.prologue = VKLLM_MVQ_RMSNORM; /* no gain */
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.prologue = VKLLM_MVQ_NONE;
    a.x.offset = 4;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.x.offset = 0;
    a.lanes_per_row = 3;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

/* x quantized once: quantize_q8 then matvec_q8 reading xq, every type x prologue x residual at
 * awkward shapes, the Phi shapes, and what must be refused. */
static void test_q8_global(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    if (!vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q4_K, 256, 1) || !vkllm_kernel_available("matvec_q8x_q4_k")) {
        tu_device_close(dev);
        skip();
    }
    use_xq = 1;
    static const uint32_t outs[] = { 257, 17, 3, 1 };
    uint64_t id = 6000;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        vkllm_dtype t = q8_types[ti];
        int k = vkllm_dtype_block_elems(t) == 256;
        const uint32_t ins[3] = { k ? 256 : 32, k ? 512 : 96, 2048 };
        for (uint32_t pro = 0; pro < 3; pro++) {
            id++;
            uint32_t rm = (uint32_t)((id + ti) % 3), n_vec = 1 + (uint32_t)(id % 3);
            uint32_t n_out = outs[(id + pro) % 4], n_in = ins[(pro + ti) % 3];
            if ((uint64_t)n_out * n_in > 150000) n_out = 41;
            run_case(dev, t, n_out, n_in, n_vec, pro, (res_mode)rm, id % 5 == 0 ? 4 : 0, id % 4 == 1 ? 5 : 0, id);
        }
    }
    /* Phi-4's inputs: qkv/gate-up/output after RMSNorm (5120), o (5120, none), down (17920, SwiGLU) */
    run_case(dev, VKLLM_DTYPE_Q4_K, 64, 5120, 1, VKLLM_MVQ_RMSNORM, RES_NONE, 0, 0, 6101);
    run_case(dev, VKLLM_DTYPE_Q5_K, 48, 5120, 1, VKLLM_MVQ_NONE, RES_IN_PLACE, 0, 0, 6102);
    run_case(dev, VKLLM_DTYPE_Q6_K, 24, 17920, 1, VKLLM_MVQ_SWIGLU, RES_IN_PLACE, 0, 0, 6103);
    tune_variant = VKLLM_MVQ_NO_PREFETCH;
    run_case(dev, VKLLM_DTYPE_Q4_K, 67, 1024, 2, VKLLM_MVQ_RMSNORM, RES_SEPARATE, 0, 0, 6104);
    tune_variant = 0;
    use_xq = 0;
    report("global");
    print_message("quantize_q8: %llu of %llu codes flipped against the double-precision x', worst scale difference %.3e (bound 2e-5)\n",
                  (unsigned long long)flips_seen, (unsigned long long)codes_seen, worst_dq);

    /* refusals: xq misaligned or too small; quantize_q8 partial block, bad prologue, no gain */
    tu_fbuf b = tu_fbuf_alloc(dev, 4096);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_matvec_q8_args a = { .w = tu_view(&b), .type = VKLLM_DTYPE_Q4_K, .n_out = 1, .n_in = 256, .y = tu_view(&b), .n_vec = 1,
                               .y_stride = 1, .xq = tu_view(&b) };
    a.y.offset = 8192;
    a.xq.offset = 4;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.xq.offset = 16384 - 16;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    assert_non_null(strstr(vkllm_device_error(dev), "vkllm_q8_act_bytes"));
    vkllm_quantize_q8_args qa = { .x = tu_view(&b), .out = tu_view(&b), .n_in = 48, .n_vec = 1, .x_stride = 48 };
    qa.out.offset = 8192;
    assert_int_equal(vkllm_op_quantize_q8(c, &qa), VKLLM_ERROR_INVALID_ARGUMENT);
    qa.n_in = qa.x_stride = 64;
    qa.prologue = 3;
    assert_int_equal(vkllm_op_quantize_q8(c, &qa), VKLLM_ERROR_INVALID_ARGUMENT);
    qa.prologue = VKLLM_MVQ_RMSNORM;
    assert_int_equal(vkllm_op_quantize_q8(c, &qa), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_q8_act_bytes(48, 1), 0);
    assert_int_equal(vkllm_q8_act_bytes(5120, 2), 2 * (5120 + 160 * 12));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

/* ---- QKV + RoPE + KV append (rope_kv) ---- */
typedef struct rope_case {
    vkllm_dtype t;
    uint32_t n_q, n_kv, hd, n_in, ctx;
    int32_t pos;
    uint32_t pro;  /* VKLLM_MVQ_NONE or RMSNORM */
    uint32_t rows; /* rows per workgroup override, 0 = chosen */
} rope_case;

static void run_rope(vkllm_device *dev, const rope_case *k, uint64_t id)
{
    tu_rng r = tu_rng_for(id);
    const uint32_t n_out = (k->n_q + 2 * k->n_kv) * k->hd, nq = k->n_q * k->hd;
    const size_t nc = (size_t)k->n_kv * k->ctx * k->hd; /* halves per cache */
    uint64_t wbytes;
    uint8_t *w = tu_random_weights(&r, k->t, n_out, k->n_in, 16, &wbytes);
    float *x = malloc((size_t)k->n_in * 4), *g = malloc((size_t)k->n_in * 4), *qkv = malloc((size_t)n_out * 4);
    float *qref = malloc((size_t)nq * 4), *qout = malloc((size_t)nq * 4), table[512];
    uint16_t *kref = malloc(nc * 2), *vref = malloc(nc * 2), *kout = malloc(nc * 2), *vout = malloc(nc * 2);
    double inv[256];
    assert_true(w && x && g && qkv && qref && qout && kref && vref && kout && vout);
    tu_fill_normal(&r, x, k->n_in, 3.0f);
    tu_fill_uniform(&r, g, k->n_in, 0.2f, 2.0f);
    assert_int_equal(vkllm_ref_matvec_q8(k->t, w, n_out, k->n_in, x, k->n_in, k->pro, g, 1e-5f, 0, qkv, n_out, NULL, n_out, 1), VKLLM_OK);
    vkllm_rope_inv_freq(inv, k->hd, 10000.0, 1.0, NULL);
    vkllm_rope_table(table, inv, k->hd / 2);
    const uint16_t POISON = 0x7e00;
    for (size_t i = 0; i < nc; i++) kref[i] = vref[i] = POISON;
    const float af = 1.0f + 0.1f * (float)(id % 3); /* LongRoPE's attention factor, 1 or not */
    vkllm_kv_write_params rp = { 1, k->n_q, k->n_kv, k->hd, k->hd, n_out, k->ctx, 1, af };
    vkllm_ref_kv_write(&rp, qkv, &k->pos, inv, qref, kref, vref);

    tu_fbuf bw = tu_fbuf_alloc(dev, (size_t)((wbytes + 15) / 16 * 4)), bx = tu_fbuf_alloc(dev, k->n_in), bg = tu_fbuf_alloc(dev, k->n_in);
    tu_fbuf bq = tu_fbuf_alloc(dev, nq), bpos = tu_fbuf_alloc(dev, 1), btab = tu_fbuf_alloc(dev, k->hd);
    tu_fbuf bk = tu_fbuf_alloc(dev, nc / 2), bv = tu_fbuf_alloc(dev, nc / 2);
    tu_fbuf bxq = tu_fbuf_alloc(dev, vkllm_q8_act_bytes(k->n_in, 1) / 4);
    tu_fbuf_upload(dev, &bw, (const float *)w);
    tu_fbuf_upload(dev, &bx, x);
    tu_fbuf_upload(dev, &bg, g);
    tu_fbuf_upload(dev, &bpos, (const float *)&k->pos);
    tu_fbuf_upload(dev, &btab, table);
    tu_fbuf_poison(dev, &bq);
    uint16_t *poison = malloc(nc * 2);
    assert_non_null(poison);
    for (size_t i = 0; i < nc; i++) poison[i] = POISON;
    tu_fbuf_upload(dev, &bk, (const float *)poison);
    tu_fbuf_upload(dev, &bv, (const float *)poison);

    vkllm_kv_write_args kv = { .pos = tu_view(&bpos), .table = tu_view(&btab), .q = tu_view(&bq), .k_cache = tu_view(&bk),
                               .v_cache = tu_view(&bv), .n_tok = 1, .n_q = k->n_q, .n_kv = k->n_kv, .head_dim = k->hd,
                               .n_rot = k->hd, .ctx = k->ctx, .neox = 1, .attn_factor = af };
    if (!k->rows) assert_true(vkllm_matvec_q8_rope_supported(dev, k->t, k->n_in, &kv));
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_quantize_q8_args qa = { .x = tu_view(&bx), .out = tu_view(&bxq), .n_in = k->n_in, .n_vec = 1, .x_stride = k->n_in,
                                  .prologue = k->pro, .norm = tu_view(&bg), .eps = 1e-5f };
    if (vkllm_op_quantize_q8(c, &qa)) fail_msg("quantize_q8: %s", vkllm_device_error(dev));
    vkllm_matvec_q8_args a = { .w = tu_view(&bw), .type = k->t, .n_out = n_out, .n_in = k->n_in, .n_vec = 1, .xq = tu_view(&bxq),
                               .rope_kv = &kv, .rows_per_wg = k->rows };
    if (vkllm_op_matvec_q8(c, &a)) fail_msg("matvec_q8 rope %s: %s", vkllm_dtype_name(k->t), vkllm_device_error(dev));
    tu_chain_run_once(c);
    tu_fbuf_download(dev, &bq, qout);
    tu_fbuf_download(dev, &bk, (float *)kout);
    tu_fbuf_download(dev, &bv, (float *)vout);

    const int exact = k->pro == VKLLM_MVQ_NONE;
    tu_assert_nmse(qout, qref, nq, exact ? 1e-9 : BOUND, "matvec_q8 rope %s Q q=%u kv=%u hd=%u n_in=%u pos=%d", vkllm_dtype_name(k->t),
                   k->n_q, k->n_kv, k->hd, k->n_in, k->pos);
    const int in_cache = k->pos >= 0 && (uint32_t)k->pos < k->ctx;
    for (int which = 0; which < 2; which++) {
        const uint16_t *o = which ? vout : kout, *rf = which ? vref : kref;
        float *go = malloc((size_t)k->n_kv * k->hd * 4), *ge = malloc((size_t)k->n_kv * k->hd * 4);
        assert_true(go && ge);
        /* absolute part: float32 accumulation against double, ~1e-6 of the row's RMS (|a| and |b| of a
         * rotation pair are of that size), on top of the element's own fp16 ulp; with the prologue the
         * code flips allow only the NMSE below (NaN still fails) */
        double ms = 0;
        for (uint32_t i = 0; i < k->n_kv * k->hd; i++) {
            const double e = qkv[nq + which * k->n_kv * k->hd + i];
            ms += e * e;
        }
        const float tol = (float)(4e-6 * sqrt(ms / (k->n_kv * k->hd)) * af);
        char what[80];
        snprintf(what, sizeof what, "matvec_q8 rope %s %c cache, pos %d", vkllm_dtype_name(k->t), "KV"[which], k->pos);
        const size_t written = tu_check_fp16_cache(o, rf, nc, POISON, exact ? 1.0f / 1024.0f : INFINITY, tol, what);
        assert_int_equal(written, in_cache ? k->n_kv * k->hd : 0);
        uint32_t n = 0;
        for (size_t i = 0; i < nc; i++)
            if (rf[i] != POISON) go[n] = vkllm_fp16_to_fp32(o[i]), ge[n++] = vkllm_fp16_to_fp32(rf[i]);
        assert_int_equal(n, in_cache ? k->n_kv * k->hd : 0);
        if (n) tu_assert_nmse(go, ge, n, exact ? 1e-6 : BOUND, "matvec_q8 rope %s %c row", vkllm_dtype_name(k->t), "KV"[which]);
        free(go); free(ge);
    }
    tu_fbuf_free(dev, &bw); tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &bg); tu_fbuf_free(dev, &bq); tu_fbuf_free(dev, &bpos);
    tu_fbuf_free(dev, &btab); tu_fbuf_free(dev, &bk); tu_fbuf_free(dev, &bv); tu_fbuf_free(dev, &bxq);
    free(w); free(x); free(g); free(qkv); free(qref); free(qout); free(kref); free(vref); free(kout); free(vout); free(poison);
}

static void test_q8_rope(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const vkllm_kv_write_args probe = { .n_tok = 1, .n_q = 4, .n_kv = 2, .head_dim = 16, .n_rot = 16, .ctx = 8, .neox = 1 };
    if (!vkllm_matvec_q8_rope_supported(dev, VKLLM_DTYPE_Q4_K, 256, &probe)) {
        print_message("matvec_q8 rope: not supported on this device (int dot, shaderFloat64 or the module missing), skipped\n");
        tu_device_close(dev);
        skip();
    }
    const rope_case cases[] = {
        { VKLLM_DTYPE_Q4_K, 40, 10, 128, 256, 64, 63, VKLLM_MVQ_NONE, 0 },      /* Phi-4 heads */
        { VKLLM_DTYPE_Q5_K, 32, 32, 96, 512, 4097, 4096, VKLLM_MVQ_NONE, 0 },   /* Phi-3 heads, a long cache */
        { VKLLM_DTYPE_Q6_K, 8, 2, 64, 256, 40, 39, VKLLM_MVQ_RMSNORM, 0 },      /* as the session calls it */
        { VKLLM_DTYPE_Q8_0, 4, 2, 16, 96, 20, 0, VKLLM_MVQ_NONE, 0 },          /* position 0, tiny heads */
        { VKLLM_DTYPE_Q4_0, 6, 2, 32, 64, 30, 33, VKLLM_MVQ_NONE, 0 },         /* outside the cache: Q only */
        { VKLLM_DTYPE_Q4_K, 6, 3, 32, 256, 50, 17, VKLLM_MVQ_NONE, 16 },       /* 16 rows: 8 pairs per workgroup */
        { VKLLM_DTYPE_Q5_K, 4, 2, 24, 256, 9, 5, VKLLM_MVQ_RMSNORM, 4 },       /* 4 rows: hd 24, 2 pairs */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_rope(dev, &cases[i], 7000 + i);
    print_message("matvec_q8 rope: %zu cases passed\n", sizeof cases / sizeof cases[0]);

    /* refusals */
    tu_fbuf b = tu_fbuf_alloc(dev, 1 << 16);
    vkllm_view v = tu_view(&b);
    vkllm_kv_write_args kv = probe;
    kv.pos = kv.table = kv.q = kv.k_cache = kv.v_cache = v;
    kv.q.offset = 4096, kv.k_cache.offset = 8192, kv.v_cache.offset = 12288, kv.table.offset = 16384, kv.pos.offset = 20480;
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_matvec_q8_args a = { .w = v, .type = VKLLM_DTYPE_Q4_K, .n_out = (4 + 2 * 2) * 16, .n_in = 256, .n_vec = 1, .xq = v, .rope_kv = &kv };
    a.w.offset = 32768;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_OK); /* the baseline is accepted */
    a.n_out -= 16;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_device_error(dev), "n_out"));
    a.n_out += 16;
    a.residual = kv.q;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.residual = (vkllm_view){ { 0 }, 0 };
    kv.n_rot = 8; /* partial rotation: kv_write's job */
    assert_false(vkllm_matvec_q8_rope_supported(dev, VKLLM_DTYPE_Q4_K, 256, &kv));
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_UNSUPPORTED);
    kv.n_rot = 16, kv.neox = 0;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_UNSUPPORTED);
    kv.neox = 1, kv.force_fp32 = 1;
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_device_error(dev), "shaderFloat64"));
    kv.force_fp32 = 0, kv.head_dim = kv.n_rot = 12, a.n_out = 8 * 12; /* not a multiple of 8 */
    assert_false(vkllm_matvec_q8_rope_supported(dev, VKLLM_DTYPE_Q4_K, 256, &kv));
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_UNSUPPORTED);
    kv.head_dim = kv.n_rot = 16, a.n_out = 8 * 16;
    a.rows_per_wg = 32; /* 16 pairs per workgroup do not divide a half head of 8 */
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.rows_per_wg = 0;
    kv.k_cache.offset = kv.q.offset; /* q and the K cache overlap */
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    kv.k_cache.offset = 8192;
    a.xq = (vkllm_view){ { 0 }, 0 }, a.x = v; /* rope_kv without xq */
    assert_int_equal(vkllm_op_matvec_q8(c, &a), VKLLM_ERROR_UNSUPPORTED);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_types),
        cmocka_unit_test(test_q8_phi),
        cmocka_unit_test(test_q8_tuning),
        cmocka_unit_test(test_q8_refused),
        cmocka_unit_test(test_q8_global),
        cmocka_unit_test(test_q8_rope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
