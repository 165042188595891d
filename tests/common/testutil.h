/* Helpers shared by every test: a seeded generator whose seed is printed (and can be forced with
 * VKLLM_SEED=<n> to replay a failure), NMSE as llama.cpp's test-backend-ops defines it, NaN poison. */
#ifndef VKLLM_TESTUTIL_H
#define VKLLM_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

typedef struct tu_rng { uint64_t s; } tu_rng;

/* The run's base seed: VKLLM_SEED if set, else from the clock; printed once so failures replay. */
uint64_t tu_seed(void);
/* A generator for one test case: base seed mixed with a case id, so cases are independent. */
tu_rng tu_rng_for(uint64_t case_id);
uint64_t tu_next(tu_rng *r);
/* Uniform in [lo, hi). */
float tu_uniform(tu_rng *r, float lo, float hi);
/* Standard normal (Box-Muller). */
float tu_normal(tu_rng *r);
void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi);
void tu_fill_normal(tu_rng *r, float *x, size_t n, float scale);

/* mse(out, ref) / mse(ref, 0); returns +inf if out has a NaN or Inf where ref is finite. */
double tu_nmse(const float *out, const float *ref, size_t n);
double tu_max_abs_err(const float *out, const float *ref, size_t n);
size_t tu_count_nonfinite(const float *x, size_t n);
/* Fill with quiet NaNs so an element a kernel forgot to write cannot pass. */
void tu_poison(float *x, size_t n);

/* n_out random GGUF rows of n_in elements of type t (vkllm_quantize of normal rows with random
 * scales; large tensors copy blocks from a quantized pool, which keeps big shapes fast), in a
 * buffer whose size is the exact tensor bytes (*bytes) rounded up past the end to a multiple of
 * pad (a power of two; the padding is zero). Free with free(). */
uint8_t *tu_random_weights(tu_rng *r, int t, uint32_t n_out, uint32_t n_in, uint32_t pad, uint64_t *bytes);

/* Asserts nmse <= bound; on failure prints what, the seed, the NMSE and the first differing element. */
#define tu_assert_nmse(out, ref, n, bound, ...) \
    tu_check_nmse_impl(__FILE__, __LINE__, (out), (ref), (n), (bound), __VA_ARGS__)
void tu_check_nmse_impl(const char *file, int line, const float *out, const float *ref, size_t n,
                        double bound, const char *fmt, ...);

#endif
