/* SwiGLU kernel against vkllm_ref_swiglu on fresh seeded random data.
 * Bound: NMSE <= 1e-10. Each output is exp, one add, one divide and one multiply in float32
 * against a double reference: a few ulp (2^-24 relative each) even with the GPU's approximate exp
 * and divide, i.e. NMSE around 1e-14; an indexing bug gives NMSE of order 1.
 * Large |g| (+-88.8, +-100, -1000) must give finite results: the test fails on any NaN/Inf. */
#include <math.h>
#include <stdlib.h>

#include "gpu_testutil.h"
#include "vkllm/ref_misc.h"

static void run_case(vkllm_device *dev, uint32_t n_ff, uint32_t n_tok, uint32_t gu_stride, uint32_t act_stride, uint64_t case_id)
{
    tu_rng r = tu_rng_for(case_id);
    size_t ngu = (size_t)(n_tok - 1) * gu_stride + 2 * (size_t)n_ff, nact = (size_t)(n_tok - 1) * act_stride + n_ff;
    float *gu = malloc(ngu * 4), *ref = malloc(nact * 4), *out = malloc(nact * 4);
    assert_non_null(gu); assert_non_null(ref); assert_non_null(out);
    tu_fill_normal(&r, gu, ngu, 3.0f);
    static const float extreme[] = { -1000.0f, -100.0f, -88.8f, -30.0f, 0.0f, 30.0f, 88.8f, 100.0f, 1000.0f };
    for (uint32_t t = 0; t < n_tok; t++) /* extremes at random gate positions */
        for (size_t e = 0; e < sizeof extreme / sizeof extreme[0]; e++) gu[(size_t)t * gu_stride + tu_next(&r) % n_ff] = extreme[e];
    tu_poison(ref, nact);
    tu_poison(out, nact);
    vkllm_ref_swiglu(gu, ref, n_ff, n_tok, gu_stride, act_stride);

    tu_fbuf bgu = tu_fbuf_alloc(dev, ngu), bact = tu_fbuf_alloc(dev, nact);
    tu_fbuf_upload(dev, &bgu, gu);
    tu_fbuf_poison(dev, &bact);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_swiglu_args a = { tu_view(&bgu), tu_view(&bact), n_ff, n_tok, gu_stride, act_stride, NULL };
    if (vkllm_op_swiglu(c, &a)) fail_msg("swiglu: %s", vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &bact, out);
    for (uint32_t t = 0; t < n_tok; t++) {
        tu_assert_nmse(out + (size_t)t * act_stride, ref + (size_t)t * act_stride, n_ff, 1e-10,
                       "swiglu n_ff=%u n_tok=%u strides %u/%u token %u", n_ff, n_tok, gu_stride, act_stride, t);
        if (t + 1 < n_tok) /* the stride gap must stay as poisoned */
            for (uint32_t i = n_ff; i < act_stride; i++)
                if (!isnan(out[(size_t)t * act_stride + i])) fail_msg("swiglu wrote the gap: token %u column %u", t, i);
    }
    tu_fbuf_free(dev, &bgu);
    tu_fbuf_free(dev, &bact);
    free(gu); free(ref); free(out);
}

static void test_swiglu_shapes(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    static const uint32_t nffs[] = { 1, 7, 5123, 8192, 17920 };
    static const uint32_t toks[] = { 1, 3 };
    uint64_t id = 0;
    for (size_t i = 0; i < sizeof nffs / sizeof nffs[0]; i++)
        for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++) run_case(dev, nffs[i], toks[j], 2 * nffs[i], nffs[i], ++id);
    run_case(dev, 8192, 64, 16384, 8192, 50); /* a prefill batch */
    tu_device_close(dev);
}

static void test_swiglu_strides(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    run_case(dev, 256, 5, 2 * 256 + 1, 256, 100);   /* odd input stride: scalar path */
    run_case(dev, 256, 5, 2 * 256 + 8, 256 + 4, 101); /* vec4 with gaps */
    run_case(dev, 17920, 3, 2 * 17920, 17920 + 3, 102);
    run_case(dev, 7, 700, 14, 8, 103);             /* many short rows */
    tu_device_close(dev);
}

static void test_swiglu_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 64);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_swiglu_args a = { tu_view(&b), tu_view(&b), 0, 1, 0, 0, NULL };
    assert_int_equal(vkllm_op_swiglu(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.n_ff = 32; a.n_tok = 1; a.gu_stride = 63; a.act_stride = 32; /* gu_stride < 2*n_ff */
    assert_int_equal(vkllm_op_swiglu(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.gu_stride = 64; a.n_tok = 4; /* needs 4 rows of 64, the buffer has one */
    assert_int_equal(vkllm_op_swiglu(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swiglu_shapes),
        cmocka_unit_test(test_swiglu_strides),
        cmocka_unit_test(test_swiglu_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
