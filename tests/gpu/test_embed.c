/* Embedding lookup against vkllm_ref_embed (= vkllm_dequantize of each row) for every GGUF type.
 *
 * This test is also the GPU test of kernels/common/blocks.glsl: every type, both storage forms
 * (uint16 and portable uint32), and every decoder (the 8-element forms, the 4-element forms, Q4_0's
 * split 8), over tables of random block bytes (every code value at every in-block position, fp16
 * scales of random sign including subnormals), rows starting at odd halfwords (Q8_0/Q4_0/Q6_K rows
 * of odd block counts), so no separate test_blocks.c.
 *
 * Bound: exact (bit for bit) for F32, F16, BF16, Q8_0, Q4_0 and Q6_K: the decoders do the reference's
 * float32 operations in its order, each a single correctly rounded product. Q4_K and Q5_K compute
 * d*sc*q - dmin*m, which a GPU compiler may contract into one fma; that changes the result by at most
 * the rounding of the product d*sc*q, i.e. |out - ref| <= 2^-24 |d*sc*q| <= 2^-24 (|ref| + 63 |dmin|);
 * the test allows 2^-23 (|ref| + 63 |dmin|) per element and reports how many were not exact.
 * Ids at 0, n_vocab - 1 and outside [0, n_vocab) (-1, n_vocab, INT32_MIN, INT32_MAX): the bad ones
 * must give zero rows, the status counter must count them (also across a replay), and the guard words
 * after the output must survive. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/half.h"
#include "vkllm/ref_misc.h"

static const vkllm_dtype all_types[] = { VKLLM_DTYPE_F32, VKLLM_DTYPE_F16, VKLLM_DTYPE_BF16, VKLLM_DTYPE_Q8_0,
                                         VKLLM_DTYPE_Q4_0, VKLLM_DTYPE_Q4_K, VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K };

/* A random finite fp16 with exponent field 0..14 (|x| < 1, subnormals included), random sign. */
static uint16_t rand_scale(tu_rng *r)
{
    uint64_t v = tu_next(r);
    return (uint16_t)((v & 0x83ffu) | ((uint16_t)((v >> 16) % 15) << 10));
}
static void put16(uint8_t *p, uint16_t h) { p[0] = (uint8_t)h; p[1] = (uint8_t)(h >> 8); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Random table bytes: random codes, finite scales. */
static uint8_t *make_table(vkllm_dtype t, size_t n_vocab, size_t n_embd, tu_rng *r, size_t *bytes)
{
    size_t be = vkllm_dtype_block_elems(t), bb = vkllm_dtype_block_bytes(t), nb = n_vocab * n_embd / be;
    *bytes = nb * bb;
    uint8_t *p = malloc(*bytes + 8);
    assert_non_null(p);
    if (t == VKLLM_DTYPE_F32) {
        tu_fill_normal(r, (float *)p, n_vocab * n_embd, 1.0f);
        return p;
    }
    for (size_t i = 0; i < *bytes; i += 8) {
        uint64_t v = tu_next(r);
        memcpy(p + i, &v, 8);
    }
    for (size_t b = 0; b < nb; b++) {
        uint8_t *q = p + b * bb;
        switch (t) {
        case VKLLM_DTYPE_F16: { /* no inf/NaN: exponent 31 -> 15 */
            uint16_t h = get16(q);
            if (((h >> 10) & 31) == 31) put16(q, (uint16_t)(h & ~0x4000u));
            break;
        }
        case VKLLM_DTYPE_BF16: {
            uint16_t h = get16(q);
            if (((h >> 7) & 255) == 255) put16(q, (uint16_t)(h & ~0x4000u));
            break;
        }
        case VKLLM_DTYPE_Q8_0:
        case VKLLM_DTYPE_Q4_0: put16(q, rand_scale(r)); break;
        case VKLLM_DTYPE_Q4_K:
        case VKLLM_DTYPE_Q5_K: put16(q, rand_scale(r)); put16(q + 2, rand_scale(r)); break;
        case VKLLM_DTYPE_Q6_K: put16(q + 208, rand_scale(r)); break;
        default: break;
        }
    }
    return p;
}

typedef struct embed_case {
    vkllm_dtype type;
    uint32_t n_vocab, n_embd, n_tok, out_stride;
    int force_u32, decode4, replays;
} embed_case;

static void run_case(vkllm_device *dev, const embed_case *k, const uint8_t *table, size_t table_bytes, const int32_t *ids,
                     uint64_t case_id)
{
    (void)case_id;
    size_t nout = (size_t)(k->n_tok - 1) * k->out_stride + k->n_embd;
    float *ref = malloc(nout * 4), *out = malloc(nout * 4);
    assert_non_null(ref); assert_non_null(out);
    tu_poison(ref, nout);
    size_t bad = vkllm_ref_embed(k->type, table, k->n_vocab, k->n_embd, ids, k->n_tok, ref, k->out_stride);

    tu_fbuf bt = tu_fbuf_alloc(dev, (table_bytes + 3) / 4), bi = tu_fbuf_alloc(dev, k->n_tok), bo = tu_fbuf_alloc(dev, nout),
            bs = tu_fbuf_alloc(dev, 2);
    tu_fbuf_poison(dev, &bt);
    if (vkllm_buffer_write(dev, &bt.buf, 0, table, table_bytes)) fail_msg("upload: %s", vkllm_device_error(dev));
    tu_fbuf_upload(dev, &bi, (const float *)ids);
    tu_fbuf_poison(dev, &bo);
    const float zero2[2] = { 0, 0 };
    tu_fbuf_upload(dev, &bs, zero2);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_embed_args a = { tu_view(&bt), tu_view(&bi), tu_view(&bo), tu_view(&bs), k->type, k->n_vocab, k->n_embd, k->n_tok,
                           k->out_stride, k->force_u32, k->decode4, NULL };
    if (vkllm_op_embed(c, &a)) fail_msg("embed: %s", vkllm_device_error(dev));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    for (int i = 0; i < k->replays; i++) assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &bo, out);
    uint32_t st[2];
    tu_fbuf_download(dev, &bs, (float *)st);

    char what[160];
    snprintf(what, sizeof what, "embed %s n_vocab=%u n_embd=%u n_tok=%u out_stride=%u %s decode%d (seed %llu)",
             vkllm_dtype_name(k->type), k->n_vocab, k->n_embd, k->n_tok, k->out_stride, k->force_u32 ? "u32" : "default",
             k->decode4, (unsigned long long)tu_seed());
    int k45 = k->type == VKLLM_DTYPE_Q4_K || k->type == VKLLM_DTYPE_Q5_K;
    size_t inexact = 0, row_bytes = k->n_embd / vkllm_dtype_block_elems(k->type) * vkllm_dtype_block_bytes(k->type);
    for (uint32_t t = 0; t < k->n_tok; t++) {
        for (uint32_t e = 0; e < k->n_embd; e++) {
            size_t o = (size_t)t * k->out_stride + e;
            if (!memcmp(&out[o], &ref[o], 4)) continue;
            int ok = 0;
            if (k45 && isfinite(out[o]) && ids[t] >= 0 && (uint32_t)ids[t] < k->n_vocab) {
                const uint8_t *blk = table + (size_t)ids[t] * row_bytes + (size_t)(e / 256) * vkllm_dtype_block_bytes(k->type);
                double dmin = fabs(vkllm_fp16_to_fp32(get16(blk + 2)));
                ok = fabs((double)out[o] - ref[o]) <= ldexp(fabs(ref[o]) + 63 * dmin, -23);
            }
            if (!ok) fail_msg("%s: token %u (id %d) element %u is %.9g (0x%08x), expected %.9g (0x%08x)", what, t, ids[t], e, out[o],
                              vkllm_f32_to_bits(out[o]), ref[o], vkllm_f32_to_bits(ref[o]));
            inexact++;
        }
        if (t + 1 < k->n_tok)
            for (uint32_t e = k->n_embd; e < k->out_stride; e++)
                if (!isnan(out[(size_t)t * k->out_stride + e])) fail_msg("%s: wrote the gap after token %u", what, t);
    }
    if (inexact) fprintf(stderr, "[ note     ] %s: %zu elements within the fma bound, not bit-exact\n", what, inexact);
    if (st[0] != bad * (size_t)k->replays) fail_msg("%s: status counts %u bad ids, expected %zu", what, st[0], bad * k->replays);
    if (bad) {
        int found = 0;
        for (uint32_t t = 0; t < k->n_tok; t++) found |= (uint32_t)ids[t] == st[1] && (ids[t] < 0 || (uint32_t)ids[t] >= k->n_vocab);
        if (!found) fail_msg("%s: status word 1 (%d) is none of the bad ids", what, (int32_t)st[1]);
    }
    tu_fbuf_free(dev, &bt); tu_fbuf_free(dev, &bi); tu_fbuf_free(dev, &bo); tu_fbuf_free(dev, &bs);
    free(ref); free(out);
}

/* Every type x storage x decoder on a small table (rows of 2 super-blocks / 16 blocks of 32, and
 * odd block counts so rows start at odd halfwords). */
static void test_embed_all_types(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    uint64_t id = 0;
    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        static const uint32_t embds[] = { 512, 768 }; /* 768: 3 super-blocks, 24 blocks of 32 */
        for (size_t ei = 0; ei < 2; ei++) {
            const uint32_t n_vocab = 97, n_embd = embds[ei];
            tu_rng r = tu_rng_for(++id);
            size_t tb;
            uint8_t *table = make_table(all_types[ti], n_vocab, n_embd, &r, &tb);
            int32_t ids[12] = { 0, 96, -1, 97, INT32_MIN, INT32_MAX, 95, 1 };
            for (int i = 8; i < 12; i++) ids[i] = (int32_t)(tu_next(&r) % n_vocab);
            for (int u32 = 0; u32 < 2; u32++)
                for (int d = 0; d < 3; d++) {
                    if (d == 2 && all_types[ti] != VKLLM_DTYPE_Q4_0) continue;
                    embed_case k = { all_types[ti], n_vocab, n_embd, 12, n_embd + (d == 1 ? 4u : 0u), u32, d, 1 };
                    run_case(dev, &k, table, tb, ids, id);
                }
            free(table);
        }
    }
    tu_device_close(dev);
}

/* A table quantized from real floats by vkllm_quantize (the path a GGUF writer takes). */
static void test_embed_quantized(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const uint32_t n_vocab = 16, n_embd = 512;
    float *x = malloc((size_t)n_vocab * n_embd * 4);
    assert_non_null(x);
    tu_rng r = tu_rng_for(300);
    tu_fill_normal(&r, x, (size_t)n_vocab * n_embd, 0.02f);
    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        uint64_t tb;
        assert_int_equal(vkllm_dtype_bytes(all_types[ti], (uint64_t)n_vocab * n_embd, &tb), VKLLM_OK);
        uint8_t *table = malloc(tb);
        assert_non_null(table);
        assert_int_equal(vkllm_quantize(all_types[ti], x, table, (size_t)n_vocab * n_embd), VKLLM_OK);
        int32_t ids[5] = { 3, 0, 15, 7, 3 };
        embed_case k = { all_types[ti], n_vocab, n_embd, 5, n_embd, 0, 0, 1 };
        run_case(dev, &k, table, tb, ids, 300 + ti);
        free(table);
    }
    free(x);
    tu_device_close(dev);
}

/* Plain types at row lengths that are not multiples of 8 or 4. */
static void test_embed_odd_rows(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    static const uint32_t embds[] = { 1, 7, 5123 };
    uint64_t id = 400;
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t ei = 0; ei < 3; ei++) {
            tu_rng r = tu_rng_for(++id);
            size_t tb;
            uint8_t *table = make_table(all_types[ti], 33, embds[ei], &r, &tb);
            int32_t ids[6] = { 0, 32, 33, -5, 17, 1 };
            for (int u32 = 0; u32 < 2; u32++) {
                embed_case k = { all_types[ti], 33, embds[ei], 6, embds[ei] + (uint32_t)u32, u32, 0, 1 };
                run_case(dev, &k, table, tb, ids, id);
            }
            free(table);
        }
    tu_device_close(dev);
}

/* A real-size table (Phi-3 mini vocab; Q4_K, Q6_K, Q8_0: under lavapipe's 128 MiB binding limit) and a replayed chain: the bad-id count grows. */
static void test_embed_large(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    static const vkllm_dtype types[] = { VKLLM_DTYPE_Q4_K, VKLLM_DTYPE_Q6_K, VKLLM_DTYPE_Q8_0 };
    for (size_t ti = 0; ti < 3; ti++) {
        const uint32_t n_vocab = 32064, n_embd = 3072;
        tu_rng r = tu_rng_for(500 + ti);
        size_t tb;
        uint8_t *table = make_table(types[ti], n_vocab, n_embd, &r, &tb);
        int32_t ids[16] = { 0, (int32_t)n_vocab - 1, (int32_t)n_vocab, -1 };
        for (int i = 4; i < 16; i++) ids[i] = (int32_t)(tu_next(&r) % n_vocab);
        embed_case k = { types[ti], n_vocab, n_embd, 16, n_embd, 0, 0, 3 };
        run_case(dev, &k, table, tb, ids, 500 + ti);
        free(table);
    }
    tu_device_close(dev);
}

static void test_embed_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 1024);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_embed_args a = { tu_view(&b), tu_view(&b), tu_view(&b), tu_view(&b), VKLLM_DTYPE_Q4_K, 2, 100, 1, 100, 0, 0, NULL };
    assert_int_equal(vkllm_op_embed(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* 100 is not a multiple of 256 */
    a.type = (vkllm_dtype)7;
    assert_int_equal(vkllm_op_embed(c, &a), VKLLM_ERROR_UNSUPPORTED_TYPE);
    a.type = VKLLM_DTYPE_F32; a.n_vocab = 100; a.n_embd = 100; /* 40 KB table in a 4 KB buffer */
    assert_int_equal(vkllm_op_embed(c, &a), VKLLM_ERROR_OUT_OF_RANGE);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed_all_types),
        cmocka_unit_test(test_embed_quantized),
        cmocka_unit_test(test_embed_odd_rows),
        cmocka_unit_test(test_embed_large),
        cmocka_unit_test(test_embed_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
