/* Argmax against vkllm_ref_argmax: exact (an index is right or wrong). Rows of seeded random
 * normals with planted specials, each row a different pattern: ties of the maximum (in different
 * chunks and inside one vec4), NaN sprinkled and at the would-be maximum, all NaN (-> 0), all -inf,
 * +0/-0 ties, many equal integers, the maximum at 0 and at n - 1. Shapes: n = 1, 7, 5123 and vocab
 * sizes 32064, 100352, 200064 with 1..3 rows, contiguous (vec4 path) and with odd strides (scalar path). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/ref_misc.h"

static void fill_row(tu_rng *r, float *x, uint32_t n, int pattern)
{
    tu_fill_normal(r, x, n, 2.0f);
    uint32_t a = (uint32_t)(tu_next(r) % n), b = (uint32_t)(tu_next(r) % n);
    switch (pattern % 9) {
    case 0: break;
    case 1: x[a] = 50.0f; x[b] = 50.0f; break;                                   /* a tie, anywhere */
    case 2: for (uint32_t i = 0; i < n; i++) if (tu_next(r) % 10 == 0) x[i] = NAN;  /* NaN sprinkled */
        x[a] = NAN; break;
    case 3: for (uint32_t i = 0; i < n; i++) x[i] = NAN; break;                   /* all NaN -> 0 */
    case 4: for (uint32_t i = 0; i < n; i++) x[i] = -INFINITY; break;             /* all -inf -> 0 */
    case 5: for (uint32_t i = 0; i < n; i++) x[i] = (tu_next(r) & 1) ? -0.0f : 0.0f; x[0] = -0.0f; break;
    case 6: for (uint32_t i = 0; i < n; i++) x[i] = (float)(tu_next(r) % 5); break;  /* many ties */
    case 7: x[n - 1] = 60.0f; x[a] = INFINITY; x[b] = INFINITY; break;
    default: x[0] = 70.0f; if (n > 3) { x[n - 1] = 70.0f; x[n / 2] = 70.0f; } break;
    }
}

static void run_case(vkllm_device *dev, uint32_t n, uint32_t rows, uint32_t stride, int pattern0, uint64_t case_id)
{
    tu_rng r = tu_rng_for(case_id);
    size_t nx = (size_t)(rows - 1) * stride + n;
    float *x = malloc(nx * 4);
    uint32_t ref[8], out[8];
    assert_non_null(x);
    assert_true(rows <= 8);
    tu_poison(x, nx);
    for (uint32_t row = 0; row < rows; row++) fill_row(&r, x + (size_t)row * stride, n, pattern0 + (int)row);
    vkllm_ref_argmax(x, n, rows, stride, ref);

    uint64_t sb = vkllm_argmax_scratch_bytes(n, rows);
    tu_fbuf bx = tu_fbuf_alloc(dev, nx), bo = tu_fbuf_alloc(dev, rows), bs = tu_fbuf_alloc(dev, sb / 4);
    tu_fbuf_upload(dev, &bx, x);
    tu_fbuf_poison(dev, &bo);
    tu_fbuf_poison(dev, &bs);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_argmax_args a = { tu_view(&bx), tu_view(&bo), tu_view(&bs), n, rows, stride, NULL };
    if (vkllm_op_argmax(c, &a)) fail_msg("argmax: %s", vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &bo, (float *)out);
    float *scratch = malloc(sb);
    assert_non_null(scratch);
    tu_fbuf_download(dev, &bs, scratch); /* its guard words: the partials stay inside the scratch size */
    free(scratch);
    for (uint32_t row = 0; row < rows; row++)
        if (out[row] != ref[row])
            fail_msg("argmax n=%u rows=%u stride=%u pattern %d row %u (seed %llu): got %u (%g), expected %u (%g)", n, rows, stride,
                     (pattern0 + (int)row) % 9, row, (unsigned long long)tu_seed(), out[row],
                     out[row] < n ? x[(size_t)row * stride + out[row]] : NAN, ref[row], x[(size_t)row * stride + ref[row]]);
    tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &bo); tu_fbuf_free(dev, &bs);
    free(x);
}

static void test_argmax_patterns(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    static const uint32_t ns[] = { 1, 7, 5123, 32064, 100352, 200064 };
    uint64_t id = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (int p = 0; p < 9; p += 3) {
            run_case(dev, ns[i], 3, ns[i], p, ++id);       /* contiguous: vec4 loads where n % 4 == 0 */
            run_case(dev, ns[i], 1, ns[i], p + 1, ++id);
            run_case(dev, ns[i], 2, ns[i] + 5, p + 2, ++id); /* odd stride: scalar loads */
        }
    tu_device_close(dev);
}

static void test_argmax_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 64);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_argmax_args a = { tu_view(&b), tu_view(&b), tu_view(&b), 0, 1, 0, NULL };
    assert_int_equal(vkllm_op_argmax(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.n = 64; a.rows = 2; a.stride = 63;
    assert_int_equal(vkllm_op_argmax(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.stride = 64; a.rows = 4; /* 4 rows of 64 in a buffer of 64 floats + 64 guard words */
    assert_int_equal(vkllm_op_argmax(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argmax_patterns),
        cmocka_unit_test(test_argmax_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
