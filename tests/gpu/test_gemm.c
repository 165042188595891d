/* gemm kernels (kernels/gemm.comp) against vkllm_ref_gemm on seeded random data, every weight type.
 *
 * Bounds (NMSE = mse(out, ref) / mse(ref, 0)):
 * - portable float32 path: 1e-9. W is dequantized exactly as the reference does (the same float32
 *   formulas; at most a fused multiply-add rounds differently, 1 ulp), products and sums are float32:
 *   the error is the summation-order rounding, relative ~sqrt(K) * 2^-24 per output (NMSE ~1e-12 at
 *   K = 8192). 1e-9 leaves margin; an indexing or tail bug gives NMSE of order 1.
 * - cooperative-matrix paths (KHR subgroup scope, and NV cooperative_matrix2 workgroup scope with
 *   staged tiles or with W decoded by its tensor loads; all with fp16-rounded X and W and float32
 *   accumulation): 1e-4. X and W are rounded to fp16 (relative error up to 2^-11 each,
 *   accumulation in float32), which for independent random data gives NMSE about 2 * 2^-22 / 3 ~ 2e-7;
 *   real layers with correlated rows reach 1e-6..1e-5. The kernel cannot run on lavapipe (no
 *   cooperative matrix): those cases run only where the device has it and print a notice otherwise.
 * Outputs are NaN-poisoned with guard words after them; the gaps of strided rows must stay NaN. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/ref_gemm.h"

#define BOUND_PORTABLE 1e-9
#define BOUND_COOPMAT 1e-4

enum { RES_NONE = 0, RES_SEPARATE = 1, RES_IN_PLACE = 2 };

static const vkllm_dtype all_types[] = { VKLLM_DTYPE_F32,  VKLLM_DTYPE_F16,  VKLLM_DTYPE_BF16, VKLLM_DTYPE_Q8_0,
                                         VKLLM_DTYPE_Q4_0, VKLLM_DTYPE_Q4_K, VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K };
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* Quantized weights. Large matrices: quantizing every row with the reference-quality search costs
 * about a second per 28M weights, so the first 61 rows are quantized and the rest copy one of them
 * (row n % 61) with their code bytes (not the scales) replaced by random bytes: every row still
 * differs, all code values occur, and the scales stay realistic. */
static void make_weights(tu_rng *r, vkllm_dtype type, const float *wf, uint8_t *wq, uint32_t n_out, uint32_t n_in, uint64_t row_bytes)
{
    const uint32_t pool = 61;
    size_t be = vkllm_dtype_block_elems(type), bb = vkllm_dtype_block_bytes(type);
    if (be == 1 || (uint64_t)n_out * n_in <= (1u << 20) || n_out <= pool) {
        assert_int_equal(vkllm_quantize(type, wf, wq, (size_t)n_out * n_in), VKLLM_OK);
        return;
    }
    assert_int_equal(vkllm_quantize(type, wf, wq, (size_t)pool * n_in), VKLLM_OK);
    /* [lo, hi) of the code bytes inside one block */
    size_t lo = 0, hi = 0;
    switch (type) {
    case VKLLM_DTYPE_Q8_0: case VKLLM_DTYPE_Q4_0: lo = 2; hi = bb; break;
    case VKLLM_DTYPE_Q4_K: lo = 16; hi = 144; break;
    case VKLLM_DTYPE_Q5_K: lo = 16; hi = 176; break;
    case VKLLM_DTYPE_Q6_K: lo = 0; hi = 192; break;
    default: fail_msg("make_weights: type %d", (int)type);
    }
    for (uint32_t n = pool; n < n_out; n++) {
        uint8_t *row = wq + (size_t)n * row_bytes;
        memcpy(row, wq + (size_t)(n % pool) * row_bytes, row_bytes);
        for (size_t b = 0; b < row_bytes / bb; b++)
            for (size_t i = lo; i < hi; i += 8) {
                uint64_t v = tu_next(r);
                memcpy(row + b * bb + i, &v, hi - i < 8 ? hi - i : 8);
            }
    }
}

/* Runs one case on the portable kernel (coopmat = 0) or the cooperative-matrix kernel (coopmat = 1).
 * Returns 0 if the case was skipped (coopmat requested but not available). */
static int run_case(vkllm_device *dev, vkllm_dtype type, uint32_t m, uint32_t n_out, uint32_t n_in, uint32_t x_pad,
                    uint32_t y_pad, int res, int coopmat, uint64_t case_id)
{
    if (coopmat && !vkllm_gemm_uses_coopmat(dev, type, n_in, NULL)) return 0;
    if (getenv("VKLLM_TEST_VERBOSE")) fprintf(stderr, "[ case     ] %s m=%u n_out=%u n_in=%u\n", vkllm_dtype_name(type), m, n_out, n_in);
    tu_rng r = tu_rng_for(case_id);
    uint32_t xs = n_in + x_pad, ys = n_out + y_pad, rs = res == RES_IN_PLACE ? ys : n_out + 3;
    size_t nx = (size_t)(m - 1) * xs + n_in, ny = (size_t)(m - 1) * ys + n_out, nr = (size_t)(m - 1) * rs + n_out;
    uint64_t row_bytes;
    assert_int_equal(vkllm_dtype_bytes(type, n_in, &row_bytes), VKLLM_OK);
    size_t nw = (size_t)n_out * n_in;
    float *wf = malloc(nw * 4), *x = malloc(nx * 4), *rr = malloc(nr * 4), *ref = malloc(ny * 4), *out = malloc(ny * 4);
    uint8_t *wq = malloc(row_bytes * n_out);
    assert_non_null(wf); assert_non_null(x); assert_non_null(rr); assert_non_null(ref); assert_non_null(out); assert_non_null(wq);
    tu_fill_normal(&r, wf, nw, 0.05f);
    tu_fill_normal(&r, x, nx, 1.0f);
    tu_fill_normal(&r, rr, nr, 1.0f);
    make_weights(&r, type, wf, wq, n_out, n_in, row_bytes);

    /* reference: gaps of strided outputs stay NaN; in place, the residual rows live in y */
    tu_poison(ref, ny);
    float *res_host = NULL;
    if (res == RES_SEPARATE) res_host = rr;
    if (res == RES_IN_PLACE) {
        for (uint32_t t = 0; t < m; t++) memcpy(ref + (size_t)t * ys, rr + (size_t)t * rs, n_out * 4);
        res_host = ref;
    }
    assert_int_equal(vkllm_ref_gemm(type, wq, n_out, n_in, x, ref, res_host, m, xs, ys, rs), VKLLM_OK);

    vkllm_buffer bw;
    /* rounded up to 4 bytes, as vkllm_op_gemm asks (a GGUF loader aligns tensors to 32) */
    if (vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, (row_bytes * n_out + 3) & ~(uint64_t)3, &bw) || vkllm_buffer_write(dev, &bw, 0, wq, row_bytes * n_out))
        fail_msg("weights: %s", vkllm_device_error(dev));
    tu_fbuf bx = tu_fbuf_alloc(dev, nx), by = tu_fbuf_alloc(dev, ny), br = tu_fbuf_alloc(dev, res == RES_SEPARATE ? nr : 1);
    tu_fbuf_upload(dev, &bx, x);
    if (res == RES_IN_PLACE) {
        /* y holds the residual rows; its gaps stay NaN */
        float *yinit = malloc(ny * 4);
        assert_non_null(yinit);
        tu_poison(yinit, ny);
        for (uint32_t t = 0; t < m; t++) memcpy(yinit + (size_t)t * ys, rr + (size_t)t * rs, n_out * 4);
        tu_fbuf_upload(dev, &by, yinit);
        free(yinit);
    } else {
        tu_fbuf_poison(dev, &by);
    }
    if (res == RES_SEPARATE) tu_fbuf_upload(dev, &br, rr);

    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_view none = { { NULL, 0, 0 }, 0 };
    vkllm_gemm_args a = { .w = { bw, 0 }, .type = type, .n_out = n_out, .n_in = n_in, .x = tu_view(&bx), .y = tu_view(&by),
                          .residual = res == RES_NONE ? none : res == RES_SEPARATE ? tu_view(&br) : tu_view(&by),
                          .m = m, .x_stride = xs, .y_stride = ys, .r_stride = rs, .force_portable = !coopmat };
    vkllm_status s = vkllm_op_gemm(c, &a);
    if (s) fail_msg("gemm: %s", vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &by, out);

    double bound = coopmat ? BOUND_COOPMAT : BOUND_PORTABLE;
    const char *what = res == RES_NONE ? "" : res == RES_SEPARATE ? " +residual" : " +residual in place";
    for (uint32_t t = 0; t < m; t++)
        for (uint32_t g = n_out; t + 1 < m && g < ys; g++)
            if (!isnan(out[(size_t)t * ys + g]))
                fail_msg("gemm %s: the stride gap y[%u][%u] was written", vkllm_dtype_name(type), t, g);
    /* compare the written elements only (rows one by one would hide a global scale error less well) */
    float *o2 = malloc((size_t)m * n_out * 4), *r2 = malloc((size_t)m * n_out * 4);
    assert_non_null(o2); assert_non_null(r2);
    for (uint32_t t = 0; t < m; t++) {
        memcpy(o2 + (size_t)t * n_out, out + (size_t)t * ys, n_out * 4);
        memcpy(r2 + (size_t)t * n_out, ref + (size_t)t * ys, n_out * 4);
    }
    const char *kname = "portable";
    if (coopmat) vkllm_gemm_uses_coopmat(dev, type, n_in, &kname);
    tu_assert_nmse(o2, r2, (size_t)m * n_out, bound, "gemm %s %s m=%u n_out=%u n_in=%u strides x+%u y+%u%s",
                   kname, vkllm_dtype_name(type), m, n_out, n_in, x_pad, y_pad, what);
    free(o2); free(r2);
    vkllm_buffer_free(dev, &bw);
    tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &by); tu_fbuf_free(dev, &br);
    free(wf); free(x); free(rr); free(ref); free(out); free(wq);
    return 1;
}

static void notice_skip(vkllm_device *dev, const char *test)
{
    fprintf(stderr, "[ notice   ] %s: no cooperative-matrix gemm on %s (no VK_KHR_cooperative_matrix f16 shape, "
                    "disabled, or not in this build): coopmat cases skipped\n",
            test, vkllm_device_features(dev)->name);
}

/* Awkward shapes: ragged M and N, the smallest K of each block size and an odd one, strides with
 * gaps (x stride odd: scalar loads), every type. */
static void shapes_all_types(int coopmat, const char *test)
{
    vkllm_device *dev = tu_device_open();
    uint64_t id = coopmat ? 5000 : 1000;
    int ran = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        vkllm_dtype t = all_types[ti];
        size_t be = vkllm_dtype_block_elems(t);
        /* K: one or two blocks (plain types: 17 and 37, a k tail not a multiple of 8) and a larger one */
        uint32_t k_small = be == 256 ? 256 : be == 32 ? 96 : 17;
        uint32_t k_mid = be == 256 ? 512 : be == 32 ? 288 : 37;
        if (coopmat && be == 1) { k_small = 32; k_mid = 96; } /* the coopmat kernel needs K % 32 == 0 */
        ran += run_case(dev, t, 2, 1, k_small, 0, 0, RES_NONE, coopmat, ++id);
        ran += run_case(dev, t, 3, 17, k_mid, 3, 5, RES_NONE, coopmat, ++id);
        ran += run_case(dev, t, 17, 257, k_small, 4, 1, RES_SEPARATE, coopmat, ++id);
        ran += run_case(dev, t, 100, 65, k_mid, 0, 2, RES_IN_PLACE, coopmat, ++id);
        ran += run_case(dev, t, 130, 129, k_small, 1, 0, RES_SEPARATE, coopmat, ++id); /* just over one tile each way */
    }
    if (!ran) notice_skip(dev, test);
    tu_device_close(dev);
}

static void test_gemm_portable_shapes(void **state) { (void)state; shapes_all_types(0, "portable_shapes"); }

/* Every cooperative-matrix kernel the device can run: the cooperative_matrix2 one (where the device has
 * VK_NV_cooperative_matrix2; VKLLM_GEMM_CM unset) and the KHR one (VKLLM_GEMM_CM=khr), each in both of
 * its W tiles (128 x 32, and 256 x 16 with VKLLM_GEMM_CM_TILE=256); then the cooperative_matrix2
 * decode-load kernel (gemm_cm2d_*, W by tensor loads with a decode function, VKLLM_GEMM_CM2=decode) in
 * its default tiles (64 or 128 tokens x 128 x 32, loads one step ahead) and in 256 x 128 x 64 without
 * the step-ahead loads (the 32-block cases with K % 64 != 0 fall back to the KHR kernel there, as the
 * op does). On a device without cm2 the first two passes run the same KHR kernel and the decode
 * passes are skipped. */
static void each_coopmat_kernel(void (*body)(int, const char *), const char *test)
{
    static const struct { const char *cm, *cm2, *tile, *what; } pass[] = {
        { NULL, NULL, NULL, "preferred, default tile" },     { NULL, NULL, "256", "preferred, 256-row W tile" },
        { "khr", NULL, NULL, "KHR, default tile" },           { "khr", NULL, "256", "KHR, 256-row W tile" },
        { NULL, "decode", NULL, "cm2 decode, default tile" }, { NULL, "decode", "256x128x64sd", "cm2 decode, 256x128x64, no prefetch" },
    };
    char label[96];
    for (size_t k = 0; k < sizeof pass / sizeof pass[0]; k++) {
        if (pass[k].cm) setenv("VKLLM_GEMM_CM", pass[k].cm, 1);
        else unsetenv("VKLLM_GEMM_CM");
        if (pass[k].cm2) setenv("VKLLM_GEMM_CM2", pass[k].cm2, 1);
        else unsetenv("VKLLM_GEMM_CM2");
        if (pass[k].tile) setenv("VKLLM_GEMM_CM_TILE", pass[k].tile, 1);
        else unsetenv("VKLLM_GEMM_CM_TILE");
        snprintf(label, sizeof label, "%s (%s)", test, pass[k].what);
        /* $VKLLM_TEST_GEMM_PASSES=decode: only the decode-kernel passes; =0,2,5: only those passes (by
         * index above): validated GPU runs split to fit a time limit */
        const char *only = getenv("VKLLM_TEST_GEMM_PASSES");
        if (only && !strcmp(only, "decode") && !pass[k].cm2) continue;
        if (only && strcmp(only, "decode")) {
            int listed = 0;
            for (const char *q = only; *q; q++)
                if (*q >= '0' && *q <= '9' && (size_t)(*q - '0') == k && (q[1] == ',' || !q[1]) && (q == only || q[-1] == ',')) listed = 1;
            if (!listed) continue;
        }
        if (pass[k].cm2) { /* only where the decode kernel is what the op would run */
            vkllm_device *dev = tu_device_open();
            const char *kn = NULL;
            int cm = vkllm_gemm_uses_coopmat(dev, VKLLM_DTYPE_Q4_K, 256, &kn);
            tu_device_close(dev);
            if (!cm || strncmp(kn, "gemm_cm2d_", 10)) {
                fprintf(stderr, "[ notice   ] %s: no cooperative_matrix2 decode kernel here (no cm2, no "
                                "bufferDeviceAddress, or not in this build): skipped\n", label);
                continue;
            }
        }
        fprintf(stderr, "[ pass     ] %s\n", label); /* progress: these passes are long on a slow CPU reference */
        body(1, label);
    }
    unsetenv("VKLLM_GEMM_CM");
    unsetenv("VKLLM_GEMM_CM2");
    unsetenv("VKLLM_GEMM_CM_TILE");
}

static void test_gemm_coopmat_shapes(void **state)
{
    (void)state;
    each_coopmat_kernel(shapes_all_types, "coopmat_shapes");
}

/* Model shapes: Phi-3 qkv (3072 -> 9216) and down (8192 -> 3072) at a small M, Phi-4 qkv (5120 -> 7680)
 * in Q4_K at M = 17. On lavapipe these dominate the run time, so the Phi-3 shapes take the types of a
 * Q4_K_M file plus F16; the awkward-shape test covers every type. */
static void model_shapes(int coopmat, const char *test)
{
    vkllm_device *dev = tu_device_open();
    uint64_t id = coopmat ? 6000 : 2000;
    static const vkllm_dtype types[] = { VKLLM_DTYPE_Q4_K, VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K, VKLLM_DTYPE_F16 };
    int ran = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        ran += run_case(dev, types[i], 2, 9216, 3072, 0, 0, i == 0 ? RES_NONE : RES_SEPARATE, coopmat, ++id);
        ran += run_case(dev, types[i], 3, 3072, 8192, 0, 0, RES_IN_PLACE, coopmat, ++id);
    }
    ran += run_case(dev, VKLLM_DTYPE_Q4_K, 17, 7680, 5120, 0, 0, RES_NONE, coopmat, ++id);
    if (coopmat) { /* a real prefill tile count on the GPU: several full 128 x 128 tiles and ragged edges */
        ran += run_case(dev, VKLLM_DTYPE_Q8_0, 300, 3072, 3072, 0, 0, RES_IN_PLACE, coopmat, ++id);
        ran += run_case(dev, VKLLM_DTYPE_Q4_0, 257, 1000, 3072, 0, 0, RES_NONE, coopmat, ++id);
        ran += run_case(dev, VKLLM_DTYPE_BF16, 200, 500, 1024, 0, 0, RES_NONE, coopmat, ++id);
        ran += run_case(dev, VKLLM_DTYPE_F32, 129, 300, 512, 0, 0, RES_SEPARATE, coopmat, ++id);
    }
    if (!ran) notice_skip(dev, test);
    tu_device_close(dev);
}

static void test_gemm_portable_models(void **state) { (void)state; model_shapes(0, "portable_models"); }
static void test_gemm_coopmat_models(void **state)
{
    (void)state;
    each_coopmat_kernel(model_shapes, "coopmat_models");
}

static void test_gemm_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 4096);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_view none = { { NULL, 0, 0 }, 0 };
    vkllm_gemm_args a = { .w = tu_view(&b), .type = VKLLM_DTYPE_Q4_K, .n_out = 4, .n_in = 100, .x = tu_view(&b),
                          .y = tu_view(&b), .residual = none, .m = 2, .x_stride = 100, .y_stride = 4 };
    assert_int_equal(vkllm_op_gemm(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* 100 is not a whole Q4_K block */
    assert_non_null(strstr(vkllm_device_error(dev), "whole number"));
    a.n_in = 256; a.x_stride = 255;
    assert_int_equal(vkllm_op_gemm(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* stride below n_in */
    a.type = (vkllm_dtype)7;
    assert_int_equal(vkllm_op_gemm(c, &a), VKLLM_ERROR_UNSUPPORTED_TYPE);
    a.type = VKLLM_DTYPE_F32; a.n_in = 1024; a.x_stride = 1024; a.n_out = 64; a.y_stride = 64; /* W needs 256 KiB, buffer has 16 KiB */
    assert_int_equal(vkllm_op_gemm(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    /* one Q8_0 row is 34 bytes: a 34-byte buffer lacks the last word's second half */
    vkllm_buffer w34;
    assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 34, &w34), VKLLM_OK);
    a.w.buf = w34; a.type = VKLLM_DTYPE_Q8_0; a.n_in = 32; a.x_stride = 32; a.n_out = 1;
    assert_int_equal(vkllm_op_gemm(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    assert_non_null(strstr(vkllm_device_error(dev), "rounded up to 4"));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    vkllm_buffer_free(dev, &w34);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_portable_shapes), cmocka_unit_test(test_gemm_portable_models),
        cmocka_unit_test(test_gemm_coopmat_shapes),  cmocka_unit_test(test_gemm_coopmat_models),
        cmocka_unit_test(test_gemm_bad_args),
    };
    /* $VKLLM_TEST_FILTER: run only the tests whose name matches (cmocka's pattern, e.g. *coopmat*) */
    const char *flt = getenv("VKLLM_TEST_FILTER");
    if (flt) cmocka_set_test_filter(flt);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
