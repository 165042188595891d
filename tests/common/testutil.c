#include "testutil.h"

#include "vkllm/quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t tu_seed(void)
{
    static int have;
    static uint64_t seed;
    if (!have) {
        const char *e = getenv("VKLLM_SEED");
        if (e && *e) {
            seed = strtoull(e, NULL, 0);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull + (uint64_t)ts.tv_nsec;
            seed = splitmix(&x) & 0xffffffffull;
        }
        have = 1;
        fprintf(stderr, "[ seed     ] VKLLM_SEED=%" PRIu64 " (set it to replay this run)\n", seed);
    }
    return seed;
}

tu_rng tu_rng_for(uint64_t case_id)
{
    uint64_t x = tu_seed() ^ (case_id * 0xd1342543de82ef95ull);
    tu_rng r = { splitmix(&x) };
    return r;
}

uint64_t tu_next(tu_rng *r) { return splitmix(&r->s); }

float tu_uniform(tu_rng *r, float lo, float hi)
{
    double u = (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

float tu_normal(tu_rng *r)
{
    double u1 = ((double)(tu_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = tu_uniform(r, lo, hi);
}

void tu_fill_normal(tu_rng *r, float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * tu_normal(r);
}

double tu_nmse(const float *out, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i]) && isfinite(ref[i])) return INFINITY;
        double d = (double)out[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return num / den;
}

double tu_max_abs_err(const float *out, const float *ref, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - (double)ref[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

size_t tu_count_nonfinite(const float *x, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += !isfinite(x[i]);
    return c;
}

void tu_poison(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

void tu_check_nmse_impl(const char *file, int line, const float *out, const float *ref, size_t n,
                        double bound, const char *fmt, ...)
{
    double e = tu_nmse(out, ref, n);
    if (e <= bound) return;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t first = n;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - (double)ref[i]);
        if (!(d <= 1e-6 * (1.0 + fabs((double)ref[i])))) { first = i; break; }
    }
    fprintf(stderr, "%s:%d: %s: NMSE %.3e > bound %.1e (seed VKLLM_SEED=%llu, %zu non-finite)\n",
            file, line, what, e, bound, (unsigned long long)tu_seed(), tu_count_nonfinite(out, n));
    if (first < n)
        fprintf(stderr, "  first difference at [%zu]: got %.9g, want %.9g\n", first, out[first], ref[first]);
    fail_msg("%s: NMSE %.3e exceeds %.1e", what, e, bound);
}

uint8_t *tu_random_weights(tu_rng *r, int type, uint32_t n_out, uint32_t n_in, uint32_t pad, uint64_t *bytes)
{
    const vkllm_dtype t = (vkllm_dtype)type;
    uint64_t row_bytes;
    assert_int_equal(vkllm_dtype_bytes(t, n_in, &row_bytes), VKLLM_OK);
    *bytes = row_bytes * n_out;
    const uint64_t padded = (*bytes + pad) & ~(uint64_t)(pad - 1);
    uint8_t *w = calloc(1, padded);
    assert_non_null(w);
    size_t be = vkllm_dtype_block_elems(t), bb = vkllm_dtype_block_bytes(t);
    uint64_t n_blocks = (uint64_t)n_out * (n_in / be);
    const uint64_t POOL_ELEMS = 1u << 20;
    if (be == 1 && n_in % 64 == 0) { /* float types: 64-element chunks play the blocks */
        be = 64;
        bb *= 64;
        n_blocks = (uint64_t)n_out * (n_in / 64);
    }
    if ((uint64_t)n_out * n_in <= POOL_ELEMS || n_in % be) {
        float *row = malloc((size_t)n_in * 4);
        assert_non_null(row);
        for (uint32_t o = 0; o < n_out; o++) {
            tu_fill_normal(r, row, n_in, tu_uniform(r, 0.02f, 2.0f));
            assert_int_equal(vkllm_quantize(t, row, w + o * row_bytes, n_in), VKLLM_OK);
        }
        free(row);
    } else {
        size_t pool_blocks = POOL_ELEMS / be;
        float *src = malloc(POOL_ELEMS * 4);
        uint8_t *pool = malloc(pool_blocks * bb);
        assert_non_null(src);
        assert_non_null(pool);
        for (size_t i = 0; i < pool_blocks; i++) tu_fill_normal(r, src + i * be, be, tu_uniform(r, 0.02f, 2.0f));
        assert_int_equal(vkllm_quantize(t, src, pool, POOL_ELEMS), VKLLM_OK);
        for (uint64_t b = 0; b < n_blocks; b++) memcpy(w + b * bb, pool + (tu_next(r) % pool_blocks) * bb, bb);
        free(src);
        free(pool);
    }
    return w;
}
