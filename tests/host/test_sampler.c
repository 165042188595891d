/* Sampler: greedy is the argmax (ties to the lower id, NaN never wins), the same seed gives the same
 * draws, top-k/top-p/min-p cut where they should, the repetition penalty moves the right tokens,
 * and the empirical distribution matches the softmax. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "vkllm/sampler.h"

static vkllm_sampler *mk(vkllm_sampler_params p)
{
    vkllm_sampler *s;
    assert_int_equal(vkllm_sampler_create(&p, &s), VKLLM_OK);
    return s;
}

static void test_greedy(void **state)
{
    (void)state;
    vkllm_sampler_params p = vkllm_sampler_defaults();
    p.temperature = 0;
    vkllm_sampler *s = mk(p);
    vkllm_candidate c[5] = { { 1.0f, 10 }, { NAN, 11 }, { 3.0f, 12 }, { 3.0f, 9 }, { -INFINITY, 13 } };
    int32_t t;
    assert_int_equal(vkllm_sampler_sample(s, c, 5, &t), VKLLM_OK);
    assert_int_equal(t, 9); /* tie between 12 and 9: the lower id */
    vkllm_candidate all_nan[2] = { { NAN, 4 }, { NAN, 5 } };
    assert_int_equal(vkllm_sampler_sample(s, all_nan, 2, &t), VKLLM_ERROR_OUT_OF_RANGE);
    assert_int_equal(vkllm_sampler_top_k(s), 1);
    vkllm_sampler_destroy(s);
}

static void fill(vkllm_candidate *c, size_t n, tu_rng *r)
{
    for (size_t i = 0; i < n; i++) c[i] = (vkllm_candidate){ tu_normal(r) * 3.0f, (int32_t)i };
}

static void test_seeded_determinism(void **state)
{
    (void)state;
    /* a flat distribution (no min-p/top-p cut that could leave one candidate), so that another
     * seed must draw differently at least once in 200 draws */
    vkllm_sampler_params p = vkllm_sampler_defaults();
    p.temperature = 1.0f;
    p.min_p = 0.0f;
    p.top_p = 1.0f;
    p.top_k = 50;
    p.seed = 1234;
    vkllm_sampler *a = mk(p), *b = mk(p);
    p.seed = 1235;
    vkllm_sampler *d = mk(p);
    tu_rng r = tu_rng_for(1);
    vkllm_candidate base[500], c1[500], c2[500];
    fill(base, 500, &r);
    for (int i = 0; i < 500; i++) base[i].logit *= 0.1f; /* logits within ~1 of each other */
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x, y, z;
        memcpy(c1, base, sizeof base);
        memcpy(c2, base, sizeof base);
        assert_int_equal(vkllm_sampler_sample(a, c1, 500, &x), VKLLM_OK);
        assert_int_equal(vkllm_sampler_sample(b, c2, 500, &y), VKLLM_OK);
        assert_int_equal(x, y);
        memcpy(c1, base, sizeof base);
        assert_int_equal(vkllm_sampler_sample(d, c1, 500, &z), VKLLM_OK);
        differ += z != x;
    }
    assert_true(differ > 0); /* another seed, other draws */
    vkllm_sampler_destroy(a);
    vkllm_sampler_destroy(b);
    vkllm_sampler_destroy(d);
}

static void test_cutoffs(void **state)
{
    (void)state;
    tu_rng r = tu_rng_for(2);
    vkllm_candidate base[100], c[100];
    fill(base, 100, &r);
    /* the 3 best ids */
    memcpy(c, base, sizeof c);
    int best[3] = { -1, -1, -1 };
    for (int k = 0; k < 3; k++) {
        int bi = -1;
        for (int i = 0; i < 100; i++) {
            if (i == best[0] || i == best[1]) continue;
            if (bi < 0 || base[i].logit > base[bi].logit) bi = i;
        }
        best[k] = bi;
    }
    vkllm_sampler_params p = vkllm_sampler_defaults();
    p.temperature = 5.0f; /* flat: without the cut, far tokens would be drawn often */
    p.top_k = 3;
    p.top_p = 1;
    p.min_p = 0;
    vkllm_sampler *s = mk(p);
    for (int i = 0; i < 300; i++) {
        int32_t t;
        memcpy(c, base, sizeof c);
        assert_int_equal(vkllm_sampler_sample(s, c, 100, &t), VKLLM_OK);
        assert_true(t == best[0] || t == best[1] || t == best[2]);
    }
    vkllm_sampler_destroy(s);
    /* min-p = 1 keeps only the most likely token */
    p.top_k = 0;
    p.min_p = 1.0f;
    s = mk(p);
    for (int i = 0; i < 50; i++) {
        int32_t t;
        memcpy(c, base, sizeof c);
        assert_int_equal(vkllm_sampler_sample(s, c, 100, &t), VKLLM_OK);
        assert_int_equal(t, best[0]);
    }
    vkllm_sampler_destroy(s);
    /* a tiny top-p keeps only the most likely token too */
    p.min_p = 0;
    p.top_p = 1e-6f;
    s = mk(p);
    int32_t t;
    memcpy(c, base, sizeof c);
    assert_int_equal(vkllm_sampler_sample(s, c, 100, &t), VKLLM_OK);
    assert_int_equal(t, best[0]);
    vkllm_sampler_destroy(s);
}

static void test_distribution(void **state)
{
    (void)state;
    /* three tokens with logits log(0.5), log(0.3), log(0.2) at temperature 1: frequencies within 4 sigma */
    vkllm_sampler_params p = { 1.0f, 0, 1.0f, 0.0f, 1.0f, 0, 99 };
    vkllm_sampler *s = mk(p);
    const double want[3] = { 0.5, 0.3, 0.2 };
    int count[3] = { 0, 0, 0 };
    const int N = 20000;
    for (int i = 0; i < N; i++) {
        vkllm_candidate c[3] = { { logf(0.5f), 0 }, { logf(0.3f), 1 }, { logf(0.2f), 2 } };
        int32_t t;
        assert_int_equal(vkllm_sampler_sample(s, c, 3, &t), VKLLM_OK);
        count[t]++;
    }
    for (int k = 0; k < 3; k++) {
        double sigma = sqrt(want[k] * (1 - want[k]) / N);
        assert_true(fabs((double)count[k] / N - want[k]) < 4 * sigma);
    }
    vkllm_sampler_destroy(s);
}

static void test_repeat_penalty(void **state)
{
    (void)state;
    vkllm_sampler_params p = { 1.0f, 1, 1.0f, 0.0f, 100.0f, 8, 5 };
    vkllm_sampler *s = mk(p);
    assert_true(vkllm_sampler_needs_full_logits(s));
    vkllm_sampler_accept(s, 7);
    int32_t t;
    vkllm_candidate c[3] = { { 5.0f, 7 }, { 4.0f, 8 }, { -1.0f, 9 } };
    assert_int_equal(vkllm_sampler_sample(s, c, 3, &t), VKLLM_OK); /* top-k 1 after the penalty */
    assert_int_equal(t, 8);
    vkllm_sampler_reset(s);
    vkllm_candidate c2[3] = { { 5.0f, 7 }, { 4.0f, 8 }, { -1.0f, 9 } };
    assert_int_equal(vkllm_sampler_sample(s, c2, 3, &t), VKLLM_OK);
    assert_int_equal(t, 7);
    vkllm_sampler_destroy(s);
}

static void test_bad_params(void **state)
{
    (void)state;
    char err[128];
    vkllm_sampler_params p = vkllm_sampler_defaults();
    p.temperature = -1;
    assert_int_equal(vkllm_sampler_check(&p, err, sizeof err), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "temperature"));
    p = vkllm_sampler_defaults();
    p.top_p = 0;
    assert_int_equal(vkllm_sampler_check(&p, err, sizeof err), VKLLM_ERROR_INVALID_ARGUMENT);
    p = vkllm_sampler_defaults();
    p.min_p = NAN;
    assert_int_equal(vkllm_sampler_check(&p, err, sizeof err), VKLLM_ERROR_INVALID_ARGUMENT);
    p = vkllm_sampler_defaults();
    p.repeat_penalty = 0;
    vkllm_sampler *s;
    assert_int_equal(vkllm_sampler_create(&p, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),          cmocka_unit_test(test_seeded_determinism),
        cmocka_unit_test(test_cutoffs),         cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_repeat_penalty),  cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
