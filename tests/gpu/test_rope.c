/* RoPE kernel (both layouts, both angle paths) against vkllm_ref_rope on fresh seeded random data.
 * Bounds: with the fp64 angle path the kernel's only error is float32 cos/sin of an argument
 * already reduced to [-pi, pi] plus two float32 multiply-adds: a few ulp per element, so
 * NMSE <= 1e-10 at any position. The float32 angle path forms pos * inv_freq in float32, an angle
 * error of about pos * 2^-24 radians: at positions below 2048 that is <= 1.2e-4 rad, NMSE <= ~1e-8,
 * so that path is held to 1e-7 at positions below 2048. */
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/ref.h"

typedef struct rope_case {
    uint32_t n_tok, n_head, head_dim, n_rot;
    uint32_t extra_tok; /* token stride = n_head * head_dim + extra_tok (fused-QKV style rows) */
    int neox, in_place, force_fp32;
    int32_t max_pos;
    float attn_factor;
    int with_factors;
} rope_case;

static void run_case(vkllm_device *dev, const rope_case *k, uint64_t case_id)
{
    tu_rng r = tu_rng_for(case_id);
    uint32_t tok_stride = k->n_head * k->head_dim + k->extra_tok;
    size_t nx = (size_t)k->n_tok * tok_stride;
    float *x = malloc(nx * 4), *ref = malloc(nx * 4), *out = malloc(nx * 4);
    int32_t *pos = malloc(k->n_tok * 4);
    double *inv = malloc(k->n_rot / 2 * sizeof(double) + 8);
    float *table = malloc(k->n_rot * 4 + 8), *factors = malloc(k->n_rot / 2 * 4 + 4);
    assert_true(x && ref && out && pos && inv && table && factors);
    tu_fill_normal(&r, x, nx, 2.0f);
    for (uint32_t t = 0; t < k->n_tok; t++) pos[t] = (int32_t)(tu_next(&r) % (uint64_t)(k->max_pos + 1));
    pos[0] = k->max_pos; /* always exercise the largest position */
    for (uint32_t i = 0; i < k->n_rot / 2; i++) factors[i] = tu_uniform(&r, 1.0f, 8.0f);
    vkllm_rope_inv_freq(inv, k->n_rot, 10000.0, 1.0, k->with_factors ? factors : NULL);
    vkllm_rope_table(table, inv, k->n_rot / 2);
    vkllm_rope_params rp = { k->n_tok, k->n_head, k->head_dim, k->n_rot, tok_stride, k->head_dim, tok_stride, k->head_dim,
                             k->neox, k->attn_factor };
    memcpy(ref, x, nx * 4); /* the extra columns are left alone by both */
    vkllm_ref_rope(&rp, x, ref, pos, inv);

    tu_fbuf bx = tu_fbuf_alloc(dev, nx), by = tu_fbuf_alloc(dev, nx), bp = tu_fbuf_alloc(dev, k->n_tok),
            bt = tu_fbuf_alloc(dev, k->n_rot ? k->n_rot : 2);
    tu_fbuf_upload(dev, &bx, x);
    tu_fbuf_upload(dev, &bp, (const float *)pos);
    tu_fbuf_upload(dev, &bt, table);
    if (k->in_place) {
        by = bx;
    } else {
        tu_fbuf_upload(dev, &by, x); /* the unrotated extra columns must survive */
        if (k->extra_tok == 0) tu_fbuf_poison(dev, &by);
    }
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_rope_args a = { tu_view(&bx), tu_view(&by), tu_view(&bp), tu_view(&bt), k->n_tok, k->n_head, k->head_dim, k->n_rot,
                          tok_stride, k->head_dim, tok_stride, k->head_dim, k->neox, k->attn_factor, k->force_fp32, NULL };
    if (vkllm_op_rope(c, &a)) fail_msg("rope: %s", vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &by, out);
    double bound = k->force_fp32 ? 1e-7 : 1e-10;
    tu_assert_nmse(out, ref, nx, bound, "rope %s%s tok=%u heads=%u dim=%u rot=%u maxpos=%d%s%s",
                   k->neox ? "neox" : "interleaved", k->force_fp32 ? " fp32-angle" : "", k->n_tok, k->n_head, k->head_dim,
                   k->n_rot, k->max_pos, k->in_place ? " in-place" : "", k->with_factors ? " factors" : "");
    tu_fbuf_free(dev, &bx);
    if (!k->in_place) tu_fbuf_free(dev, &by);
    tu_fbuf_free(dev, &bp);
    tu_fbuf_free(dev, &bt);
    free(x); free(ref); free(out); free(pos); free(inv); free(table); free(factors);
}

static void test_rope_shapes(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    static const uint32_t dims[] = { 2, 64, 96, 128 };
    static const uint32_t heads[] = { 1, 7, 40 };
    static const uint32_t toks[] = { 1, 3, 17 };
    uint64_t id = 0;
    for (int neox = 0; neox < 2; neox++)
        for (size_t d = 0; d < 4; d++)
            for (size_t h = 0; h < 3; h++)
                for (size_t t = 0; t < 3; t++) {
                    rope_case k = { toks[t], heads[h], dims[d], dims[d], 0, neox, 0, 0, 4096, 1.0f, 0 };
                    run_case(dev, &k, ++id);
                }
    tu_device_close(dev);
}

static void test_rope_variants(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const rope_case cases[] = {
        { 5, 32, 96, 64, 0, 1, 0, 0, 1000, 1.0f, 0 },        /* partial rotation: tail copied */
        { 4, 40, 128, 128, 2560, 1, 0, 0, 16384, 1.0f, 0 },  /* Q inside a fused QKV row (extra columns) */
        { 3, 10, 128, 128, 0, 1, 1, 0, 131071, 1.0f, 0 },    /* in place, very long position */
        { 6, 32, 96, 96, 0, 1, 0, 0, 4000, 1.19f, 1 },       /* LongRoPE factors and attention factor */
        { 9, 8, 64, 64, 0, 0, 0, 0, 70000, 1.0f, 0 },
        { 17, 40, 128, 128, 0, 1, 0, 1, 2047, 1.0f, 0 },     /* float32 angle path */
        { 17, 40, 128, 128, 0, 0, 0, 1, 2047, 1.0f, 0 },
        { 512, 40, 128, 128, 0, 1, 0, 0, 8191, 1.0f, 0 },    /* a prefill batch */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(dev, &cases[i], 1000 + i);
    tu_device_close(dev);
}

static void test_rope_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 256);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_rope_args a = { tu_view(&b), tu_view(&b), tu_view(&b), tu_view(&b), 1, 1, 7, 7, 7, 7, 7, 7, 1, 1.0f, 0, NULL };
    assert_int_equal(vkllm_op_rope(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* odd head_dim */
    a.head_dim = 64; a.n_rot = 96; a.x_tok = a.y_tok = a.x_head = a.y_head = 64;
    assert_int_equal(vkllm_op_rope(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* n_rot > head_dim */
    a.n_rot = 64; a.n_tok = 8;
    assert_int_equal(vkllm_op_rope(c, &a), VKLLM_ERROR_OUT_OF_RANGE); /* 8 x 64 floats > 256 */
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_shapes),
        cmocka_unit_test(test_rope_variants),
        cmocka_unit_test(test_rope_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
