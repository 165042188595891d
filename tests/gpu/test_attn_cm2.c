/* Prefill attention on the NV cooperative_matrix2 kernel (kernels/attn_prefill_cm2.comp, chosen by
 * vkllm_op_attn_prefill where the device has coopmat2) against host/ref/attn.c: Phi-4 (40/10 x 128,
 * GQA group of 4 sharing a workgroup) and Phi-3 (32/32 x 96) shapes at 1, 17, 255 and 4097 tokens,
 * long cache prefixes, sliding windows, peaky softmax, groups of 2, 5 and 8, a batch longer than the
 * context (rows that see nothing), other tile shapes through VKLLM_ATTN_CM2, and the switch back to
 * the older kernels (VKLLM_ATTN_PREFILL_CM2=0). Skipped where the device or the build lacks
 * cooperative_matrix2 (lavapipe, and everything but NVIDIA today).
 *
 * Cache rows past the live length hold fp16 NaN: the kernel's clamped K/V loads must never bring
 * them into a product (0 x NaN would poison the row). The 4097-token cases compare every 61st row
 * and the first and last 20 (the CPU reference is O(T^2) per head).
 *
 * Bounds and why: the reference is fed the same fp16 K/V bits; the kernel rounds Q (scaled) and the
 * probabilities P to fp16 (relative 2^-12 rms each) and accumulates in fp32. A score then carries an
 * absolute error of about |q| 2.8e-4, which moves the softmax weights by as much relatively: NMSE
 * ~1e-7 at unit-variance q, ~1e-6 at q_scale 4 (scores of magnitude ~4). Bounds 1e-5 and 2e-5
 * (peaky); one wrong position of 255, a missed rescale or a masked key let through costs ~1e-3. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/half.h"
#include "vkllm/pipeline.h"
#include "vkllm/ref.h"
#include "vkllm/ref_attn.h"

typedef struct cm2_case {
    uint32_t n_tok, n_q, n_kv, hd, ctx, n_live, window;
    float q_scale; /* larger: peakier softmax */
} cm2_case;

static int has_cm2(vkllm_device *dev)
{
    return vkllm_device_features(dev)->coopmat2 && vkllm_kernel_available("attn_prefill_cm2");
}

/* rows compared: all, or for long batches every 61st and the first and last 20 */
static int row_checked(uint32_t t, uint32_t n_tok)
{
    return n_tok <= 512 || t < 20 || t + 20 >= n_tok || t % 61 == 0;
}

static void run_case(vkllm_device *dev, const cm2_case *k, uint64_t id, const char *tile)
{
    tu_rng r = tu_rng_for(id);
    const size_t nq = (size_t)k->n_tok * k->n_q * k->hd, nc = (size_t)k->n_kv * k->ctx * k->hd, row = (size_t)k->n_q * k->hd;
    float *q = malloc(nq * 4), *out = malloc(nq * 4), *ref = malloc(row * 4), *got = malloc(nq * 4), *want = malloc(nq * 4);
    uint16_t *kc = malloc(nc * 2), *vc = malloc(nc * 2);
    assert_true(q && out && ref && got && want && kc && vc);
    tu_fill_normal(&r, q, nq, k->q_scale);
    const uint32_t L = k->n_live < k->ctx ? k->n_live : k->ctx;
    for (uint32_t h = 0; h < k->n_kv; h++)
        for (uint32_t pos = 0; pos < k->ctx; pos++)
            for (uint32_t e = 0; e < k->hd; e++) {
                size_t i = ((size_t)h * k->ctx + pos) * k->hd + e;
                kc[i] = pos < L ? vkllm_fp32_to_fp16(tu_normal(&r)) : 0x7e00;
                vc[i] = pos < L ? vkllm_fp32_to_fp16(tu_normal(&r)) : 0x7e00;
            }
    tu_fbuf bq = tu_fbuf_alloc(dev, nq), bk = tu_fbuf_alloc(dev, nc / 2), bv = tu_fbuf_alloc(dev, nc / 2),
            blen = tu_fbuf_alloc(dev, 1), bo = tu_fbuf_alloc(dev, nq);
    tu_fbuf_upload(dev, &bq, q);
    tu_fbuf_upload(dev, &bk, (const float *)kc);
    tu_fbuf_upload(dev, &bv, (const float *)vc);
    tu_fbuf_upload(dev, &blen, (const float *)&k->n_live);
    tu_fbuf_poison(dev, &bo);
    if (tile) setenv("VKLLM_ATTN_CM2", tile, 1);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_attn_args a = { .q = tu_view(&bq), .k_cache = tu_view(&bk), .v_cache = tu_view(&bv), .len = tu_view(&blen),
                          .out = tu_view(&bo), .scratch = tu_view(&blen), .n_tok = k->n_tok, .n_q = k->n_q, .n_kv = k->n_kv,
                          .head_dim = k->hd, .ctx = k->ctx, .window = k->window };
    if (vkllm_op_attn_prefill(c, &a)) fail_msg("attn_prefill: %s", vkllm_device_error(dev));
    if (tile) unsetenv("VKLLM_ATTN_CM2");
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &bo, out);

    /* the reference one row at a time: a 1-row batch whose live length ends at the row's position */
    size_t n = 0;
    for (uint32_t t = 0; t < k->n_tok; t++) {
        if (!row_checked(t, k->n_tok)) continue;
        const int64_t qpos = (int64_t)L - k->n_tok + t;
        if (qpos < 0) {
            memset(ref, 0, row * 4); /* sees nothing: zeros, as the reference */
        } else {
            vkllm_attn_params p = { 1, k->n_q, k->n_kv, k->hd, k->ctx, (uint32_t)qpos + 1, k->window, 0.0f };
            vkllm_ref_attn(&p, q + t * row, kc, vc, ref);
        }
        memcpy(got + n, out + t * row, row * 4);
        memcpy(want + n, ref, row * 4);
        n += row;
    }
    const double bound = k->q_scale > 2 ? 2e-5 : 1e-5;
    tu_assert_nmse(got, want, n, bound, "attn prefill cm2 tok=%u q=%u kv=%u hd=%u ctx=%u live=%u window=%u qs=%g tile=%s", k->n_tok,
                   k->n_q, k->n_kv, k->hd, k->ctx, k->n_live, k->window, (double)k->q_scale, tile ? tile : "default");
    tu_fbuf_free(dev, &bq); tu_fbuf_free(dev, &bk); tu_fbuf_free(dev, &bv); tu_fbuf_free(dev, &blen); tu_fbuf_free(dev, &bo);
    free(q); free(out); free(ref); free(got); free(want); free(kc); free(vc);
}

static void test_attn_cm2_prefill(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    if (!has_cm2(dev)) {
        fprintf(stderr, "[ attn_cm2 ] no cooperative_matrix2 on this device or in this build: skipped\n");
        tu_device_close(dev);
        skip();
    }
    const cm2_case cases[] = {
        { 1, 40, 10, 128, 64, 1, 0, 1.0f },          /* Phi-4, one row, context 1 */
        { 17, 40, 10, 128, 4224, 4097, 0, 1.0f },    /* 17 rows after a long prefix */
        { 17, 40, 10, 128, 4224, 4097, 1000, 1.0f }, /* ... windowed */
        { 255, 40, 10, 128, 256, 255, 0, 1.0f },     /* batch from position 0, 255 rows: ragged last tile */
        { 255, 40, 10, 128, 600, 555, 100, 4.0f },   /* offset + window shorter than the batch, peaky */
        { 4097, 40, 10, 128, 4224, 4097, 0, 1.0f },  /* long batch from position 0 */
        { 4097, 40, 10, 128, 4224, 4097, 1000, 1.0f },
        { 1, 32, 32, 96, 64, 33, 0, 1.0f },          /* Phi-3: group 1 */
        { 255, 32, 32, 96, 300, 290, 0, 1.0f },
        { 17, 32, 32, 96, 4200, 4097, 2047, 4.0f },  /* window, peaky */
        { 33, 6, 3, 16, 40, 37, 0, 1.0f },           /* group 2, hd 16 */
        { 100, 10, 2, 64, 128, 120, 0, 1.0f },       /* group 5: one head per workgroup */
        { 5, 8, 1, 64, 16, 3, 0, 1.0f },             /* group 8; batch longer than the context: rows 0, 1 see nothing */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(dev, &cases[i], 500 + i, NULL);
    /* tile shapes bench-attn sweeps (rows, key tile, threads, K/V staged by the shader) */
    const char *tiles[] = { "64,64,256", "32,64,128", "64,64,128,1", "64,64,256,1", "64,32,128,1",
                            "128,64,256,1", "128,32,256,1", "32,64,128,1", "16,16,64,1" };
    const size_t pick[] = { 2, 3, 4, 5, 8, 9, 10, 11, 12 };
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++)
        for (size_t i = 0; i < sizeof pick / sizeof pick[0]; i++) run_case(dev, &cases[pick[i]], 600 + 10 * t + i, tiles[t]);
    /* the switch back to the older kernels (KHR cooperative matrix here) must still give a right result */
    setenv("VKLLM_ATTN_PREFILL_CM2", "0", 1);
    run_case(dev, &cases[3], 700, NULL);
    unsetenv("VKLLM_ATTN_PREFILL_CM2");
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attn_cm2_prefill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
