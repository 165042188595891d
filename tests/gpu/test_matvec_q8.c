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
 * relative of the buffer's own d times the sum of its own codes, the two int16 half sums exact. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/ops_matvec.h"
#include "vkllm/ref.h"
#include "vkllm/ref_matvec.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_types),
        cmocka_unit_test(test_q8_phi),
        cmocka_unit_test(test_q8_tuning),
        cmocka_unit_test(test_q8_refused),
        cmocka_unit_test(test_q8_global),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
