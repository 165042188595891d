/* Residual add against vkllm_ref_add: exact. One float32 addition is correctly rounded on every
 * IEEE device, so the output must equal the reference bit for bit (compared as bits). Cases: tails of
 * 1-3 elements after the vec4 part, in place (y == a), a prefill-sized batch. */
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/ref_misc.h"

static void run_case(vkllm_device *dev, uint32_t n, int in_place, uint64_t case_id)
{
    tu_rng r = tu_rng_for(case_id);
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4), *ref = malloc((size_t)n * 4), *out = malloc((size_t)n * 4);
    assert_non_null(a); assert_non_null(b); assert_non_null(ref); assert_non_null(out);
    tu_fill_normal(&r, a, n, 10.0f);
    tu_fill_normal(&r, b, n, 1.0f);
    tu_poison(out, n);
    vkllm_ref_add(a, b, ref, n);

    tu_fbuf ba = tu_fbuf_alloc(dev, n), bb = tu_fbuf_alloc(dev, n), by = tu_fbuf_alloc(dev, n);
    tu_fbuf_upload(dev, &ba, a);
    tu_fbuf_upload(dev, &bb, b);
    tu_fbuf_poison(dev, &by);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_add_args args = { tu_view(&ba), tu_view(&bb), in_place ? tu_view(&ba) : tu_view(&by), n, NULL };
    if (vkllm_op_add(c, &args)) fail_msg("add: %s", vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, in_place ? &ba : &by, out);
    if (memcmp(out, ref, (size_t)n * 4)) {
        for (uint32_t i = 0; i < n; i++)
            if (memcmp(&out[i], &ref[i], 4))
                fail_msg("add n=%u%s (seed %llu): element %u is %.9g, expected %.9g", n, in_place ? " in place" : "",
                         (unsigned long long)tu_seed(), i, out[i], ref[i]);
    }
    tu_fbuf_free(dev, &ba);
    tu_fbuf_free(dev, &bb);
    tu_fbuf_free(dev, &by);
    free(a); free(b); free(ref); free(out);
}

static void test_add_shapes(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    static const uint32_t ns[] = { 1, 2, 3, 4, 5, 7, 5120, 5123, 3072 * 3 };
    uint64_t id = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        run_case(dev, ns[i], 0, ++id);
        run_case(dev, ns[i], 1, ++id);
    }
    run_case(dev, 5120 * 512, 1, 100);
    tu_device_close(dev);
}

static void test_add_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 64);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_add_args a = { tu_view(&b), tu_view(&b), tu_view(&b), 0, NULL };
    assert_int_equal(vkllm_op_add(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.n = 1000; /* more than the buffer holds */
    assert_int_equal(vkllm_op_add(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_shapes),
        cmocka_unit_test(test_add_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
