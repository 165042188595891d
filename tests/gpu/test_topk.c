/* Top-k against vkllm_ref_topk: exact (values compared as bits, indices equal). Rows of seeded
 * random normals with planted specials, one pattern per row: ties of the top values across chunks,
 * NaN sprinkled, mostly NaN (fewer than k other values, so NaNs fill the tail by lowest index), all
 * -inf, +0/-0, many equal integers (the top k are all ties, decided by index), +inf, the maximum at
 * both ends. Shapes: k = 1, 40, 64 over n = 1, 7, 64, 5123 and vocab sizes 32064, 100352, 200064, with
 * 1..3 rows and row strides with gaps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/half.h"
#include "vkllm/ref_misc.h"

#define N_PATTERNS 10

static void fill_row(tu_rng *r, float *x, uint32_t n, int pattern)
{
    tu_fill_normal(r, x, n, 2.0f);
    uint32_t a = (uint32_t)(tu_next(r) % n), b = (uint32_t)(tu_next(r) % n);
    switch (pattern % N_PATTERNS) {
    case 0: break;
    case 1: for (int j = 0; j < 20; j++) x[tu_next(r) % n] = 50.0f; x[a] = 49.0f; break; /* ties across chunks */
    case 2: for (uint32_t i = 0; i < n; i++) if (tu_next(r) % 10 == 0) x[i] = NAN;
        break;
    case 3: for (uint32_t i = 0; i < n; i++) x[i] = NAN;                                 /* mostly NaN */
        for (int j = 0; j < 5; j++) x[tu_next(r) % n] = tu_normal(r);
        break;
    case 4: for (uint32_t i = 0; i < n; i++) x[i] = -INFINITY; x[a] = -1.0f; break;
    case 5: for (uint32_t i = 0; i < n; i++) x[i] = (tu_next(r) & 1) ? -0.0f : 0.0f; x[a] = 1e-30f; break;
    case 6: for (uint32_t i = 0; i < n; i++) x[i] = (float)(tu_next(r) % 5); break;      /* many ties */
    case 7: x[a] = INFINITY; x[b] = INFINITY; x[n - 1] = 60.0f; break;
    case 8: x[0] = 70.0f; x[n - 1] = 70.0f; x[n / 2] = 70.0f; break;
    default: for (uint32_t i = 0; i < n; i++) x[i] = (float)(int)(4.0f * x[i]) * 0.25f; break; /* coarse values */
    }
}

static void run_case(vkllm_device *dev, uint32_t n, uint32_t rows, uint32_t stride, uint32_t k, int pattern0, uint64_t case_id)
{
    tu_rng r = tu_rng_for(case_id);
    size_t nx = (size_t)(rows - 1) * stride + n, no = (size_t)rows * k;
    float *x = malloc(nx * 4), *rv = malloc(no * 4), *ov = malloc(no * 4);
    uint32_t *ri = malloc(no * 4), *oi = malloc(no * 4);
    assert_non_null(x); assert_non_null(rv); assert_non_null(ov); assert_non_null(ri); assert_non_null(oi);
    tu_poison(x, nx);
    for (uint32_t row = 0; row < rows; row++) fill_row(&r, x + (size_t)row * stride, n, pattern0 + (int)row);
    vkllm_ref_topk(x, n, rows, stride, k, rv, ri);

    uint64_t sb = vkllm_topk_scratch_bytes(n, rows, k);
    tu_fbuf bx = tu_fbuf_alloc(dev, nx), bv = tu_fbuf_alloc(dev, no), bi = tu_fbuf_alloc(dev, no), bs = tu_fbuf_alloc(dev, sb / 4);
    tu_fbuf_upload(dev, &bx, x);
    tu_fbuf_poison(dev, &bv);
    tu_fbuf_poison(dev, &bi);
    tu_fbuf_poison(dev, &bs);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_topk_args a = { tu_view(&bx), tu_view(&bv), tu_view(&bi), tu_view(&bs), n, rows, stride, k, NULL };
    if (vkllm_op_topk(c, &a)) fail_msg("topk: %s", vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &bv, ov);
    tu_fbuf_download(dev, &bi, (float *)oi);
    float *scratch = malloc(sb);
    assert_non_null(scratch);
    tu_fbuf_download(dev, &bs, scratch); /* its guard words: the candidates stay inside the scratch size */
    free(scratch);
    for (uint32_t row = 0; row < rows; row++)
        for (uint32_t j = 0; j < k; j++) {
            size_t o = (size_t)row * k + j;
            if (oi[o] != ri[o] || vkllm_f32_to_bits(ov[o]) != vkllm_f32_to_bits(rv[o]))
                fail_msg("topk n=%u rows=%u stride=%u k=%u pattern %d row %u (seed %llu): rank %u is (%g, %u), expected (%g, %u)", n,
                         rows, stride, k, (pattern0 + (int)row) % N_PATTERNS, row, (unsigned long long)tu_seed(), j, ov[o], oi[o],
                         rv[o], ri[o]);
        }
    tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &bv); tu_fbuf_free(dev, &bi); tu_fbuf_free(dev, &bs);
    free(x); free(rv); free(ov); free(ri); free(oi);
}

static void test_topk_small(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    uint64_t id = 0;
    run_case(dev, 1, 1, 1, 1, 0, ++id);
    run_case(dev, 7, 3, 7, 7, 0, ++id);
    run_case(dev, 7, 3, 9, 3, 6, ++id);
    run_case(dev, 64, 3, 64, 64, 0, ++id);
    run_case(dev, 64, 3, 64, 40, 3, ++id);
    for (int p = 0; p < N_PATTERNS; p += 3) run_case(dev, 5123, 3, 5123, 64, p, ++id);
    tu_device_close(dev);
}

static void test_topk_vocab(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    static const uint32_t ns[] = { 32064, 100352, 200064 };
    static const uint32_t ks[] = { 1, 40, 64 };
    uint64_t id = 100;
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++)
            for (int p = 0; p < N_PATTERNS; p += 3) run_case(dev, ns[i], 1 + (uint32_t)((p / 3 + j) % 3), ns[i] + (uint32_t)j, ks[j], p, ++id);
    tu_device_close(dev);
}

static void test_topk_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 256);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_topk_args a = { tu_view(&b), tu_view(&b), tu_view(&b), tu_view(&b), 100, 1, 100, 0, NULL };
    assert_int_equal(vkllm_op_topk(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* k = 0 */
    a.k = 65;
    assert_int_equal(vkllm_op_topk(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    a.k = 8; a.n = 7; a.stride = 7;
    assert_int_equal(vkllm_op_topk(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* k > n */
    a.n = 1000; a.stride = 1000;
    assert_int_equal(vkllm_op_topk(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topk_small),
        cmocka_unit_test(test_topk_vocab),
        cmocka_unit_test(test_topk_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
