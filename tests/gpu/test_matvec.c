/* Mat-vec kernel (every weight type) against vkllm_ref_matvec on seeded random data.
 * Weights: vkllm_quantize of random normals (a random scale per row or block); for large shapes the
 * quantized blocks (64-element chunks for float types) of a pool are placed at pseudo-random
 * positions, so every row is still different (a row or block index bug changes the result) without
 * quantizing and converting tens of millions of values.
 * Bound: NMSE <= 1e-9 (n_out >= 16). The reference dequantizes the very same bytes, so the only
 * difference is float32 accumulation (per sub-block, with the scale applied after the sum) against
 * double: relative error of a dot product of n terms about sqrt(n) * 2^-24 * sum|w x| / |y|, i.e.
 * NMSE 1e-14..1e-13 measured at every shape here (1e-12..1e-10 expected at worst), where a wrong
 * element, block or scale gives NMSE of order 1e-3 or more.
 * With fewer than 16 outputs one row whose dot product cancels (|y| << sum|w x|) can dominate the
 * NMSE, so there every element must satisfy |out - ref| <= 1e-5 * (sum_i |w_i x_i| + |r|), the
 * form of the float32 summation error bound (n * 2^-24 worst case, about sqrt(n) * 2^-24 typical:
 * 2e-6 at n = 1280). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/ops_matvec.h"
#include "vkllm/ref_matvec.h"

#define BOUND 1e-9

static const vkllm_dtype all_types[] = { VKLLM_DTYPE_F32,  VKLLM_DTYPE_F16,  VKLLM_DTYPE_BF16, VKLLM_DTYPE_Q8_0,
                                         VKLLM_DTYPE_Q4_0, VKLLM_DTYPE_Q4_K, VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K };
#define N_TYPES (sizeof all_types / sizeof all_types[0])


typedef enum { RES_NONE, RES_SEPARATE, RES_IN_PLACE } res_mode;

/* Tuning overrides for the next run_case calls (0 = the op's choice). */
static uint32_t tune_rows, tune_ks, tune_lanes, tune_stage;

/* One call with fresh data; gaps between vectors (strides) must stay NaN. */
static void run_case(vkllm_device *dev, vkllm_dtype t, uint32_t n_out, uint32_t n_in, uint32_t n_vec, res_mode rm,
                     uint32_t x_pad, uint32_t y_pad, uint64_t case_id)
{
    tu_rng r = tu_rng_for(case_id);
    uint32_t xs = n_in + x_pad, ys = n_out + y_pad;
    size_t nx = (size_t)(n_vec - 1) * xs + n_in, ny = (size_t)(n_vec - 1) * ys + n_out;
    uint64_t wbytes;
    uint8_t *w = tu_random_weights(&r, t, n_out, n_in, 4, &wbytes);
    float *x = malloc(nx * 4), *res = malloc(ny * 4), *ref = malloc(ny * 4), *out = malloc(ny * 4);
    assert_non_null(x); assert_non_null(res); assert_non_null(ref); assert_non_null(out);
    tu_fill_normal(&r, x, nx, 1.0f);
    tu_fill_normal(&r, res, ny, 3.0f);
    tu_poison(ref, ny);
    for (uint32_t v = 0; v < n_vec; v++) /* the reference writes only the used elements */
        if (rm == RES_IN_PLACE) memcpy(ref + (size_t)v * ys, res + (size_t)v * ys, n_out * 4);
    const float *rp = rm == RES_SEPARATE ? res : rm == RES_IN_PLACE ? ref : NULL;
    assert_int_equal(vkllm_ref_matvec(t, w, n_out, n_in, x, xs, ref, ys, rp, ys, n_vec), VKLLM_OK);

    size_t wwords = (size_t)((wbytes + 3) / 4);
    tu_fbuf bw = tu_fbuf_alloc(dev, wwords), bx = tu_fbuf_alloc(dev, nx), by = tu_fbuf_alloc(dev, ny), br = { { 0 }, 0 };
    tu_fbuf_upload(dev, &bw, (const float *)w);
    tu_fbuf_upload(dev, &bx, x);
    tu_fbuf_init_output(dev, &by, rm == RES_IN_PLACE ? res : NULL, n_vec, ys, n_out);
    if (rm == RES_SEPARATE) {
        br = tu_fbuf_alloc(dev, ny);
        tu_fbuf_upload(dev, &br, res);
    }
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_matvec_args a = { .w = tu_view(&bw), .type = t, .n_out = n_out, .n_in = n_in, .x = tu_view(&bx), .y = tu_view(&by),
                            .n_vec = n_vec, .x_stride = xs, .y_stride = ys, .r_stride = ys,
                            .rows_per_group = tune_rows, .k_split = tune_ks, .lanes_per_group = tune_lanes,
                            .stage = tune_stage };
    if (rm == RES_SEPARATE) a.residual = tu_view(&br);
    if (rm == RES_IN_PLACE) a.residual = tu_view(&by);
    vkllm_status s = vkllm_op_matvec(c, &a);
    if (s) fail_msg("matvec %s %ux%u: %s", vkllm_dtype_name(t), n_out, n_in, vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &by, out);
    static const char *rn[] = { "none", "separate", "in-place" };
    float *wrow = malloc((size_t)n_in * 4);
    assert_non_null(wrow);
    for (uint32_t v = 0; v < n_vec; v++) {
        if (n_out >= 16) {
            tu_assert_nmse(out + (size_t)v * ys, ref + (size_t)v * ys, n_out, BOUND,
                           "matvec %s n_out=%u n_in=%u n_vec=%u res=%s vec %u", vkllm_dtype_name(t), n_out, n_in, n_vec, rn[rm], v);
        } else {
            for (uint32_t o = 0; o < n_out; o++) {
                vkllm_dequantize(t, w + (size_t)o * (wbytes / n_out), wrow, n_in);
                double cond = rm == RES_NONE ? 0 : fabs(res[(size_t)v * ys + o]);
                for (uint32_t i = 0; i < n_in; i++) cond += fabs((double)wrow[i] * x[(size_t)v * xs + i]);
                float got = out[(size_t)v * ys + o], want = ref[(size_t)v * ys + o];
                if (!(fabs((double)got - want) <= 1e-5 * cond))
                    fail_msg("matvec %s n_out=%u n_in=%u n_vec=%u res=%s: y[%u][%u] = %.9g, reference %.9g, error bound 1e-5 * %.6g "
                             "(seed VKLLM_SEED=%llu)", vkllm_dtype_name(t), n_out, n_in, n_vec, rn[rm], v, o, got, want, cond,
                             (unsigned long long)tu_seed());
            }
        }
        if (v + 1 < n_vec)
            for (uint32_t i = n_out; i < ys; i++)
                if (!isnan(out[(size_t)v * ys + i])) fail_msg("matvec %s: y gap element %u of vector %u was written", vkllm_dtype_name(t), i, v);
    }
    free(wrow);
    tu_fbuf_free(dev, &bw); tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &by);
    if (rm == RES_SEPARATE) tu_fbuf_free(dev, &br);
    free(w); free(x); free(res); free(ref); free(out);
}

/* Awkward shapes for every type: 1, 3, 17, 257 outputs; the smallest rows; (n_vec, residual) pairs
 * rotating (few distinct pipelines: each costs about half a second to build on lavapipe); strides
 * with gaps. */
static void test_matvec_awkward(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    static const uint32_t outs[] = { 1, 3, 17, 257 };
    uint64_t id = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        vkllm_dtype t = all_types[ti];
        uint32_t be = (uint32_t)vkllm_dtype_block_elems(t);
        uint32_t ins[5];
        size_t n_ins = 0;
        if (be == 1) {
            ins[n_ins++] = 1; ins[n_ins++] = 33; ins[n_ins++] = 1000;
        } else if (be == 32) {
            ins[n_ins++] = 32; ins[n_ins++] = 96; ins[n_ins++] = 768;
        } else {
            ins[n_ins++] = 256; ins[n_ins++] = 768; ins[n_ins++] = 1280;
        }
        for (size_t oi = 0; oi < 4; oi++)
            for (size_t ii = 0; ii < n_ins; ii++) {
                id++;
                static const uint32_t nvs[] = { 1, 2, 1 };
                static const res_mode rms[] = { RES_NONE, RES_SEPARATE, RES_IN_PLACE };
                uint32_t n_vec = nvs[id % 3];
                res_mode rm = rms[id % 3];
                uint32_t xp = (id % 5 == 0) ? 4 : (be == 1 && id % 2) ? 3 : 0, yp = id % 4 == 1 ? 5 : 0;
                run_case(dev, t, outs[oi], ins[ii], n_vec, rm, xp, yp, 1000 + id);
            }
    }
    tu_device_close(dev);
}

/* n_vec 1..8 with each residual mode at a mid-size Q4_K shape, and the largest counts in Q6_K and
 * Q5_K (every type runs n_vec 1 and 2 in the awkward cases). */
static void test_matvec_nvec(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    uint64_t id = 2000;
    for (uint32_t nv = 1; nv <= 8; nv++) run_case(dev, VKLLM_DTYPE_Q4_K, 300, 1536, nv, (res_mode)(nv % 3), 0, 0, ++id);
    run_case(dev, VKLLM_DTYPE_Q6_K, 300, 1536, 5, RES_IN_PLACE, 0, 0, ++id);
    run_case(dev, VKLLM_DTYPE_Q5_K, 300, 1536, 8, RES_SEPARATE, 0, 0, ++id);
    tu_device_close(dev);
}

/* Phi-3 mini shapes: QKV 3072->9216, O 3072->3072, gate/up 3072->16384, down 8192->3072. Every type
 * at O and down; the big ones in the types a GGUF uses for them (F32 only where it fits 128 MiB). */
static void test_matvec_phi3(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    uint64_t id = 3000;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        run_case(dev, all_types[ti], 3072, 3072, 1, RES_IN_PLACE, 0, 0, ++id);
        run_case(dev, all_types[ti], 3072, 8192, 1, RES_IN_PLACE, 0, 0, ++id);
    }
    static const vkllm_dtype big[] = { VKLLM_DTYPE_Q4_K, VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K, VKLLM_DTYPE_Q8_0 };
    for (size_t ti = 0; ti < 4; ti++) {
        run_case(dev, big[ti], 9216, 3072, 1, RES_NONE, 0, 0, ++id);
        run_case(dev, big[ti], 16384, 3072, 1, RES_NONE, 0, 0, ++id);
    }
    run_case(dev, VKLLM_DTYPE_F32, 8192, 3072, 2, RES_NONE, 0, 0, ++id); /* 100 MB */
    tu_device_close(dev);
}

/* Phi-4 shapes under lavapipe's 128 MiB binding: QKV 5120->7680 (Q5_K), O 5120->5120, gate/up
 * 5120->35840 (Q4_K, 100 MB), down 17920->5120 (Q6_K and Q4_K), output 5120->100352 cut to 16384
 * rows (Q6_K). */
static void test_matvec_phi4(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    uint64_t id = 4000;
    run_case(dev, VKLLM_DTYPE_Q5_K, 7680, 5120, 1, RES_NONE, 0, 0, ++id);
    run_case(dev, VKLLM_DTYPE_Q4_K, 5120, 5120, 1, RES_IN_PLACE, 0, 0, ++id);
    run_case(dev, VKLLM_DTYPE_Q4_K, 35840, 5120, 1, RES_NONE, 0, 0, ++id);
    run_case(dev, VKLLM_DTYPE_Q6_K, 5120, 17920, 1, RES_IN_PLACE, 0, 0, ++id);
    run_case(dev, VKLLM_DTYPE_Q4_K, 5120, 17920, 4, RES_SEPARATE, 0, 0, ++id);
    run_case(dev, VKLLM_DTYPE_Q6_K, 16384, 5120, 1, RES_NONE, 0, 0, ++id);
    tu_device_close(dev);
}

/* Extreme tuning overrides (the benchmark's sweep) give the same results. */
static void test_matvec_tuning(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    /* lanes per group below the subgroup size: several lane groups per subgroup, as on NVIDIA/AMD
     * (lavapipe's subgroups of 8 otherwise hold one group of 8) */
    const uint32_t sg = vkllm_device_features(dev)->subgroup_size;
    static const uint32_t rps[] = { 1, 8, 2 }, nsg[] = { 16, 1, 4 }, lpg[] = { 0, 0, 2 };
    for (int i = 0; i < 3; i++) {
        if (lpg[i] > sg) continue;
        /* run_case has no tuning parameters: go through a small case by hand */
        tu_rng r = tu_rng_for(5000 + (uint64_t)i);
        const uint32_t n_out = 45, n_in = 512, nv = 2;
        uint64_t wb;
        uint8_t *w = tu_random_weights(&r, VKLLM_DTYPE_Q4_K, n_out, n_in, 4, &wb);
        float x[2 * 512], ref[2 * 45], out[2 * 45];
        tu_fill_normal(&r, x, 2 * n_in, 1.0f);
        vkllm_ref_matvec(VKLLM_DTYPE_Q4_K, w, n_out, n_in, x, n_in, ref, n_out, NULL, 0, nv);
        tu_fbuf bw = tu_fbuf_alloc(dev, (wb + 3) / 4), bx = tu_fbuf_alloc(dev, 2 * n_in), by = tu_fbuf_alloc(dev, 2 * n_out);
        tu_fbuf_upload(dev, &bw, (const float *)w);
        tu_fbuf_upload(dev, &bx, x);
        tu_fbuf_poison(dev, &by);
        vkllm_chain *c;
        assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
        assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
        vkllm_matvec_args a = { .w = tu_view(&bw), .type = VKLLM_DTYPE_Q4_K, .n_out = n_out, .n_in = n_in, .x = tu_view(&bx),
                                .y = tu_view(&by), .n_vec = nv, .x_stride = n_in, .y_stride = n_out,
                                .rows_per_group = rps[i], .k_split = nsg[i], .lanes_per_group = lpg[i] };
        if (vkllm_op_matvec(c, &a)) fail_msg("matvec: %s", vkllm_device_error(dev));
        assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
        assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
        vkllm_chain_destroy(c);
        tu_fbuf_download(dev, &by, out);
        tu_assert_nmse(out, ref, 2 * n_out, BOUND, "matvec q4_k tuning rows/group %u k_split %u lanes/group %u", rps[i], nsg[i],
                       lpg[i]);
        tu_fbuf_free(dev, &bw); tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &by);
        free(w);
    }
    tu_device_close(dev);
}

/* Every type with several lane groups per subgroup (2 or 4 lanes per group on lavapipe's subgroups
 * of 8, as 8-lane groups sit in NVIDIA's 32 and AMD's 64), with and without the K split. */
static void test_matvec_groups(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const uint32_t sg = vkllm_device_features(dev)->subgroup_size;
    uint64_t id = 6000;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        vkllm_dtype t = all_types[ti];
        uint32_t n_in = vkllm_dtype_block_elems(t) == 1 ? 1000 : 768;
        if (ti % 2 == 1) {
            tune_lanes = sg >= 4 ? 4 : sg; tune_rows = 3; tune_ks = 2;
            run_case(dev, t, 37, n_in, 2, RES_SEPARATE, 0, 0, ++id);
        } else {
            tune_lanes = sg >= 2 ? 2 : sg; tune_rows = 2; tune_ks = 1;
            run_case(dev, t, 37, vkllm_dtype_block_elems(t) == 1 ? 33 : n_in, 1, RES_IN_PLACE, 0, 0, ++id);
        }
    }
    tune_lanes = tune_rows = tune_ks = 0;
    tu_device_close(dev);
}

/* Q6_K, Q8_0, Q4_0 through shared memory (stage 2) and direct (stage 1), incl. tensors of an odd
 * number of halfwords. */
static void test_matvec_q6k_paths(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const uint32_t sg = vkllm_device_features(dev)->subgroup_size;
    uint64_t id = 7000;
    for (tune_stage = 1; tune_stage <= 2; tune_stage++) {
        if (tune_stage == 2 && sg < 8) continue; /* staging needs groups of 8 lanes */
        run_case(dev, VKLLM_DTYPE_Q6_K, 257, 1280, 2, RES_SEPARATE, 0, 0, ++id);
        run_case(dev, VKLLM_DTYPE_Q6_K, 3, 256, 1, RES_IN_PLACE, 0, 0, ++id);
        run_case(dev, VKLLM_DTYPE_Q8_0, 257, 1312, 2, RES_SEPARATE, 0, 0, ++id);
        run_case(dev, VKLLM_DTYPE_Q4_0, 3, 96, 1, RES_IN_PLACE, 0, 0, ++id);
        tune_ks = 1;
        run_case(dev, VKLLM_DTYPE_Q6_K, 33, 768, 1, RES_NONE, 0, 0, ++id);
        run_case(dev, VKLLM_DTYPE_Q8_0, 33, 96, 1, RES_NONE, 0, 0, ++id);
        tune_ks = 0;
    }
    tune_stage = 0;
    /* an odd number of halfwords in a buffer of exactly the tensor's size (3 rows of 630 bytes): the
     * last word would straddle the binding, so the op refuses (lavapipe would read it as 0) */
    {
        vkllm_buffer bw;
        assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 630, &bw), VKLLM_OK);
        tu_fbuf bx = tu_fbuf_alloc(dev, 256), by = tu_fbuf_alloc(dev, 3);
        vkllm_chain *c;
        assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
        assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
        vkllm_matvec_args a = { .w = { bw, 0 }, .type = VKLLM_DTYPE_Q6_K, .n_out = 3, .n_in = 256, .x = tu_view(&bx),
                                .y = tu_view(&by), .n_vec = 1, .x_stride = 256, .y_stride = 3 };
        assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
        assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
        vkllm_chain_destroy(c);
        vkllm_buffer_free(dev, &bw);
        tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &by);
    }
    tu_device_close(dev);
}

static void test_matvec_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 4096);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_matvec_args a = { .w = tu_view(&b), .type = VKLLM_DTYPE_Q4_K, .n_out = 4, .n_in = 300, .x = tu_view(&b), .y = tu_view(&b),
                            .n_vec = 1, .x_stride = 300, .y_stride = 4 };
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* partial K block */
    a.type = VKLLM_DTYPE_Q8_0; a.n_in = 48; a.x_stride = 48;
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* partial Q8_0 block */
    a.n_in = 64; a.x_stride = 64; a.n_vec = 9;
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.n_vec = 0;
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.n_vec = 2; a.x_stride = 66; /* quantized x must be vec4-aligned */
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.x_stride = 64; a.y_stride = 3; /* y_stride < n_out */
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.y_stride = 4; a.type = (vkllm_dtype)3;
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_UNSUPPORTED_TYPE);
    /* a weight binding over maxStorageBufferRange is refused before anything is bound */
    const vkllm_features *f = vkllm_device_features(dev);
    a.type = VKLLM_DTYPE_F32; a.n_vec = 1; a.n_in = 4096; a.x_stride = 4096;
    uint64_t rows = f->max_storage_buffer_range / (4096 * 4) + 1;
    a.n_out = rows > UINT32_MAX ? UINT32_MAX : (uint32_t)rows; a.y_stride = a.n_out;
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_TOO_LARGE);
    /* fits the limit but not the buffer */
    a.n_out = 8; a.y_stride = 8;
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    /* residual overlapping y without being it */
    tu_fbuf b2 = tu_fbuf_alloc(dev, 1024);
    a.n_out = 4; a.y_stride = 4; a.n_in = 64; a.x_stride = 64;
    a.y = tu_view(&b2); a.residual = tu_view(&b2); a.r_stride = 8; a.n_vec = 2; /* same start, other stride */
    assert_int_equal(vkllm_op_matvec(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_fbuf_free(dev, &b2);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matvec_awkward), cmocka_unit_test(test_matvec_nvec), cmocka_unit_test(test_matvec_tuning),
        cmocka_unit_test(test_matvec_phi3),    cmocka_unit_test(test_matvec_phi4), cmocka_unit_test(test_matvec_groups), cmocka_unit_test(test_matvec_q6k_paths),
        cmocka_unit_test(test_matvec_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
