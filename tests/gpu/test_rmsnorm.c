/* RMSNorm kernel against vkllm_ref_rmsnorm on fresh seeded random data.
 * Bound: NMSE <= 1e-10. The kernel accumulates the sum of squares in float32 (relative error about
 * n * 2^-24 in the worst case, far less in practice) and applies one inversesqrt (a few ulp); the
 * output error is a few float32 ulp per element, i.e. NMSE around 1e-14, so 1e-10 leaves margin
 * while any indexing or reduction bug gives NMSE of order 1. */
#include <stdlib.h>

#include "gpu_testutil.h"
#include "vkllm/ref.h"

static void run_case(vkllm_device *dev, uint32_t n, uint32_t rows, uint32_t x_stride, uint32_t y_stride, uint64_t case_id)
{
    tu_rng r = tu_rng_for(case_id);
    size_t nx = (size_t)(rows - 1) * x_stride + n, ny = (size_t)(rows - 1) * y_stride + n;
    float *x = malloc(nx * 4), *w = malloc(n * 4), *ref = malloc(ny * 4), *out = malloc(ny * 4);
    assert_non_null(x); assert_non_null(w); assert_non_null(ref); assert_non_null(out);
    tu_fill_normal(&r, x, nx, 1.0f + 3.0f * tu_uniform(&r, 0, 1)); /* a scale per case: rmsnorm must undo it */
    tu_fill_uniform(&r, w, n, 0.5f, 1.5f);
    tu_poison(ref, ny);
    tu_poison(out, ny);
    vkllm_ref_rmsnorm(x, w, ref, n, rows, x_stride, y_stride, 1e-5f);

    tu_fbuf bx = tu_fbuf_alloc(dev, nx), bw = tu_fbuf_alloc(dev, n), by = tu_fbuf_alloc(dev, ny);
    tu_fbuf_upload(dev, &bx, x);
    tu_fbuf_upload(dev, &bw, w);
    tu_fbuf_poison(dev, &by);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_rmsnorm_args a = { tu_view(&bx), tu_view(&bw), tu_view(&by), n, rows, x_stride, y_stride, 1e-5f, NULL };
    vkllm_status s = vkllm_op_rmsnorm(c, &a);
    if (s) fail_msg("rmsnorm: %s", vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &by, out);
    /* rows with a stride gap: compare only the written elements, and the gaps must stay NaN */
    for (uint32_t row = 0; row < rows; row++)
        tu_assert_nmse(out + (size_t)row * y_stride, ref + (size_t)row * y_stride, n, 1e-10,
                       "rmsnorm n=%u rows=%u strides %u/%u row %u", n, rows, x_stride, y_stride, row);
    tu_fbuf_free(dev, &bx);
    tu_fbuf_free(dev, &bw);
    tu_fbuf_free(dev, &by);
    free(x); free(w); free(ref); free(out);
}

static void test_rmsnorm_shapes(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    static const uint32_t ns[] = { 1, 7, 128, 3072, 5120, 5123 };
    static const uint32_t rows[] = { 1, 3, 64 };
    uint64_t id = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof rows / sizeof rows[0]; j++) run_case(dev, ns[i], rows[j], ns[i], ns[i], ++id);
    tu_device_close(dev);
}

static void test_rmsnorm_strides(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    run_case(dev, 5120, 5, 5121, 5120, 100);  /* odd input stride: scalar path */
    run_case(dev, 3072, 4, 3072 + 8, 3072 + 4, 101);
    run_case(dev, 96, 700, 96, 100, 102);     /* many small rows */
    tu_device_close(dev);
}

static void test_rmsnorm_many_rows(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    run_case(dev, 5120, 512, 5120, 5120, 200);
    tu_device_close(dev);
}

static void test_rmsnorm_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 64);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_rmsnorm_args a = { tu_view(&b), tu_view(&b), tu_view(&b), 0, 1, 0, 0, 1e-5f, NULL };
    assert_int_equal(vkllm_op_rmsnorm(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.n = 64; a.rows = 4; a.x_stride = 64; a.y_stride = 64; /* needs 1 KiB, buffer has 64 floats */
    assert_int_equal(vkllm_op_rmsnorm(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm_shapes),
        cmocka_unit_test(test_rmsnorm_strides),
        cmocka_unit_test(test_rmsnorm_many_rows),
        cmocka_unit_test(test_rmsnorm_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
