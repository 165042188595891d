/* Attention family against host/ref/attn.c: KV write (RoPE + fp16 append), decode (one pass with its
 * counters left at zero, and split + merge; several workgroup shapes and both step orders) and
 * prefill, GQA shapes of Phi-4 (40/10/128) and Phi-3 (32/32/96) plus awkward ones, sliding window on
 * and off, replay of one recorded chain as the context grows, and a KV write -> prefill chain.
 *
 * Bounds and why:
 * - KV write Q: as the rope kernel, NMSE <= 1e-10 with the fp64 angle path (float32 cos/sin of a
 *   reduced angle, two multiply-adds); 1e-7 on the float32 angle path at positions < 2048.
 * - KV write cache: every written V half within 1 fp16 ulp of the reference (packHalf2x16's rounding
 *   mode is the implementation's), every K half within 1 ulp plus 1e-5 absolute (the float32
 *   rotation of inputs of magnitude ~2..10 has a few 1e-7 of absolute error, which cancellation can
 *   turn into several ulp of a small result; on the float32 angle path, max_pos * 2^-24 rad of angle
 *   error times |a| + |b| <= 20); rows of other positions keep their poison.
 * - Attention: the reference is fed the same fp16 K/V bits, so the only differences are float32
 *   dot products over head_dim, exp2 of a float argument (a few ulp), and float32 sums of up to 4k
 *   weights: relative error per output below ~1e-5 worst case, NMSE ~1e-11 typically. Bound 1e-8
 *   (1e-7 for peaky softmax where exp amplifies the score error by |score|); any masking, indexing
 *   or merge error costs far more (one wrong position of 255 gives ~1e-3).
 * - Prefill with cooperative matrices (run where the device has them, besides the portable run): Q
 *   and the probabilities P are rounded to fp16 (2^-12 relative each): score errors of ~2.4e-4 x |q|
 *   scale and weight errors of the same size give NMSE ~1e-7 (~1e-6 for the peaky cases); bound
 *   1e-4, still far below what a structural error costs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_testutil.h"
#include "vkllm/half.h"
#include "vkllm/ref.h"
#include "vkllm/ref_attn.h"
#include "vkllm/ops_matvec.h"

/* ---------- KV write ---------- */

typedef struct kvw_case {
    uint32_t n_tok, n_q, n_kv, hd, n_rot, ctx;
    int neox, force_fp32;
    int32_t max_pos;
} kvw_case;

static void run_kvw(vkllm_device *dev, const kvw_case *k, uint64_t id)
{
    tu_rng r = tu_rng_for(id);
    const uint32_t stride = (k->n_q + 2 * k->n_kv) * k->hd + 8; /* a few extra columns, as a padded row */
    const size_t nqkv = (size_t)k->n_tok * stride, nq = (size_t)k->n_tok * k->n_q * k->hd;
    const size_t nc = (size_t)k->n_kv * k->ctx * k->hd; /* halves */
    float *qkv = malloc(nqkv * 4), *qref = malloc(nq * 4), *qout = malloc(nq * 4), table[512];
    uint16_t *kref = malloc(nc * 2), *vref = malloc(nc * 2), *kout = malloc(nc * 2), *vout = malloc(nc * 2);
    int32_t *pos = malloc(k->n_tok * 4);
    double inv[256];
    assert_true(qkv && qref && qout && kref && vref && kout && vout && pos);
    tu_fill_normal(&r, qkv, nqkv, 2.0f);
    /* distinct positions (two tokens at one position would race), one out of range when there is room */
    for (uint32_t t = 0; t < k->n_tok; t++) pos[t] = (int32_t)((uint32_t)k->max_pos - t * 7u);
    if (k->n_tok > 2) pos[1] = (int32_t)k->ctx + 5; /* skipped by the cache write, Q still rotated */
    vkllm_rope_inv_freq(inv, k->n_rot, 10000.0, 1.0, NULL);
    vkllm_rope_table(table, inv, k->n_rot / 2);
    const uint16_t POISON = 0x7e00; /* an fp16 NaN in every untouched half */
    for (size_t i = 0; i < nc; i++) kref[i] = vref[i] = POISON;
    vkllm_kv_write_params rp = { k->n_tok, k->n_q, k->n_kv, k->hd, k->n_rot, stride, k->ctx, k->neox, 1.0f };
    vkllm_ref_kv_write(&rp, qkv, pos, inv, qref, kref, vref);

    tu_fbuf bqkv = tu_fbuf_alloc(dev, nqkv), bpos = tu_fbuf_alloc(dev, k->n_tok), btab = tu_fbuf_alloc(dev, k->n_rot ? k->n_rot : 2),
            bq = tu_fbuf_alloc(dev, nq), bk = tu_fbuf_alloc(dev, nc / 2), bv = tu_fbuf_alloc(dev, nc / 2);
    tu_fbuf_upload(dev, &bqkv, qkv);
    tu_fbuf_upload(dev, &bpos, (const float *)pos);
    tu_fbuf_upload(dev, &btab, table);
    tu_fbuf_poison(dev, &bq);
    uint16_t *poison = malloc(nc * 2);
    for (size_t i = 0; i < nc; i++) poison[i] = POISON;
    tu_fbuf_upload(dev, &bk, (const float *)poison);
    tu_fbuf_upload(dev, &bv, (const float *)poison);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_kv_write_args a = { tu_view(&bqkv), tu_view(&bpos), tu_view(&btab), tu_view(&bq), tu_view(&bk), tu_view(&bv),
                              k->n_tok, k->n_q, k->n_kv, k->hd, k->n_rot, stride, k->ctx, k->neox, 1.0f, k->force_fp32, NULL };
    if (vkllm_op_kv_write(c, &a)) fail_msg("kv_write: %s", vkllm_device_error(dev));
    tu_chain_run_once(c);
    tu_fbuf_download(dev, &bq, qout);
    tu_fbuf_download(dev, &bk, (float *)kout);
    tu_fbuf_download(dev, &bv, (float *)vout);
    tu_assert_nmse(qout, qref, nq, k->force_fp32 ? 1e-7 : 1e-10, "kv_write Q %s%s tok=%u q=%u kv=%u hd=%u rot=%u",
                   k->neox ? "neox" : "interleaved", k->force_fp32 ? " fp32-angle" : "", k->n_tok, k->n_q, k->n_kv, k->hd, k->n_rot);
    /* the float32 angle path adds an angle error of up to max_pos * 2^-24 rad (times |a| + |b|) */
    const float k_abs = k->force_fp32 ? (float)k->max_pos * 6e-8f * 20.0f : 1e-5f;
    /* K: 1 ulp of the reference plus the float32 rotation's absolute error (cancellation in a c - b s
     * with |a|, |b| up to ~10 here: a few 1e-7); V: a plain conversion, 1 ulp */
    tu_check_fp16_cache(kout, kref, nc, POISON, 1.0f / 1024.0f, 1.0f / 16777216.0f + k_abs, "kv_write K cache");
    tu_check_fp16_cache(vout, vref, nc, POISON, 1.0f / 1024.0f, 1.0f / 16777216.0f, "kv_write V cache");
    tu_fbuf_free(dev, &bqkv); tu_fbuf_free(dev, &bpos); tu_fbuf_free(dev, &btab);
    tu_fbuf_free(dev, &bq); tu_fbuf_free(dev, &bk); tu_fbuf_free(dev, &bv);
    free(qkv); free(qref); free(qout); free(kref); free(vref); free(kout); free(vout); free(pos); free(poison);
}

static void test_kv_write(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const kvw_case cases[] = {
        { 1, 40, 10, 128, 128, 64, 1, 0, 63 },      /* Phi-4 decode step */
        { 17, 40, 10, 128, 128, 300, 1, 0, 255 },   /* Phi-4 batch, one token out of range */
        { 3, 32, 32, 96, 96, 4097, 1, 0, 4096 },    /* Phi-3 */
        { 5, 32, 32, 96, 64, 40, 1, 0, 39 },        /* partial rotation: tail copied */
        { 4, 6, 2, 16, 16, 33, 0, 0, 32 },          /* interleaved pairs, tiny heads */
        { 9, 8, 4, 64, 32, 100, 0, 0, 99 },         /* interleaved, partial */
        { 17, 40, 10, 128, 128, 2048, 1, 1, 2047 }, /* float32 angle path */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_kvw(dev, &cases[i], 100 + i);
    tu_device_close(dev);
}

/* ---------- attention ---------- */

typedef struct attn_case {
    int prefill;
    uint32_t n_tok, n_q, n_kv, hd, ctx, n_live, window, n_split;
    float q_scale; /* larger: peakier softmax */
    int coopmat;   /* prefill: 0 forces the portable kernel; 1 lets the op pick (run only where it picks
                    * coopmat); -1 the coopmat kernel with emulated matrix operations */
} attn_case;

typedef struct attn_bufs {
    tu_fbuf q, k, v, len, out, scr;
    tu_fbuf q8; /* decode, one row, head_dim a multiple of 32: the output quantized (vkllm_attn_args.q8_out) */
} attn_bufs;

/* decode: 1 = one pass (the scratch's counters zeroed first), 0 = split + merge */
static int g_one_pass = 1;

static void record_attn(vkllm_device *dev, vkllm_chain *c, const attn_case *k, attn_bufs *b)
{
    vkllm_attn_args a = { tu_view(&b->q), tu_view(&b->k), tu_view(&b->v), tu_view(&b->len), tu_view(&b->out), tu_view(&b->scr),
                          k->n_tok, k->n_q, k->n_kv, k->hd, k->ctx, k->window, 0.0f, k->n_split, NULL, k->coopmat < 0 ? -1 : !k->coopmat,
                          g_one_pass, { { 0 }, 0 } };
    if (b->q8.n) a.q8_out = tu_view(&b->q8);
    vkllm_status s = k->prefill ? vkllm_op_attn_prefill(c, &a) : vkllm_op_attn_decode(c, &a);
    if (s) fail_msg("attn: %s", vkllm_device_error(dev));
}

/* The one-pass counters at the start of the (NaN-poisoned) scratch: zero before the first call, as
 * a session zeroes them once. */
static void zero_counters(vkllm_device *dev, tu_fbuf *scr, uint32_t n_tok, uint32_t n_q)
{
    const uint64_t n = vkllm_attn_decode_counter_bytes(n_tok, n_q);
    void *z = calloc(1, n);
    assert_true(z != NULL);
    assert_int_equal(vkllm_buffer_write(dev, &scr->buf, 0, z, n), VKLLM_OK);
    free(z);
}

/* Every one-pass call must leave its counters zero (the next replay depends on it). */
static void check_counters(const float *scr, uint32_t n_tok, uint32_t n_q, const char *what)
{
    const uint32_t *cnt = (const uint32_t *)scr;
    for (uint64_t i = 0; i < vkllm_attn_decode_counter_bytes(n_tok, n_q) / 4; i++)
        if (cnt[i]) fail_msg("attn decode %s: counter %llu left at %u (seed %llu)", what, (unsigned long long)i, cnt[i],
                             (unsigned long long)tu_seed());
}

/* The quantized output (vkllm_attn_args.q8_out, quantize_q8's layout) against
 * vkllm_ref_quantize_q8_act of the GPU's own float output: the same float32 inputs, so the codes
 * agree but where the GPU's 1 / d rounds differently and a product lands on a rounding edge (at most
 * 2 + 1 per thousand codes, off by one), d within 1e-6 relative, d * sum(q) and the int16 half sums
 * those of the buffer's own codes. */
static void check_q8_out(const uint8_t *qb, const float *out, uint32_t n, const char *what)
{
    const uint32_t nb = n / 32;
    int8_t *q = malloc(n);
    float *d = malloc((size_t)nb * 4);
    assert_true(q && d);
    vkllm_ref_quantize_q8_act(out, n, q, d);
    uint32_t flips = 0;
    for (uint32_t i = 0; i < n; i++)
        if ((int8_t)qb[i] != q[i]) {
            if (abs((int8_t)qb[i] - q[i]) > 1)
                fail_msg("attn decode %s q8_out: code %u is %d, reference %d (seed %llu)", what, i, (int8_t)qb[i], q[i],
                         (unsigned long long)tu_seed());
            flips++;
        }
    if (flips > 2 + n / 1000) fail_msg("attn decode %s q8_out: %u of %u codes off by one", what, flips, n);
    for (uint32_t b = 0; b < nb; b++) {
        float ds[2];
        int32_t h;
        memcpy(ds, qb + n + (size_t)b * 8, 8);
        memcpy(&h, qb + n + (size_t)nb * 8 + (size_t)b * 4, 4);
        if (!(fabs((double)ds[0] - d[b]) <= 1e-6 * d[b]))
            fail_msg("attn decode %s q8_out: block %u d = %.9g, reference %.9g", what, b, ds[0], d[b]);
        int s0 = 0, s1 = 0;
        for (uint32_t i = 0; i < 16; i++) s0 += (int8_t)qb[b * 32 + i], s1 += (int8_t)qb[b * 32 + 16 + i];
        if ((int16_t)(h & 0xffff) != s0 || (h >> 16) != s1 || !(fabs(ds[1] - (double)ds[0] * (s0 + s1)) <= 1e-6 * ds[0] * (abs(s0 + s1) + 1)))
            fail_msg("attn decode %s q8_out: block %u sums do not match its codes", what, b);
    }
    free(q);
    free(d);
}

static void random_cache(tu_rng *r, uint16_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++) c[i] = vkllm_fp32_to_fp16(tu_normal(r));
}

static void check_attn(const attn_case *k, const float *q, const uint16_t *kc, const uint16_t *vc, uint32_t n_live,
                       const float *out)
{
    const size_t nq = (size_t)k->n_tok * k->n_q * k->hd;
    float *ref = malloc(nq * 4);
    vkllm_attn_params p = { k->n_tok, k->n_q, k->n_kv, k->hd, k->ctx, n_live, k->window, 0.0f };
    vkllm_ref_attn(&p, q, kc, vc, ref);
    double bound = k->coopmat ? 1e-4 : k->q_scale > 2 ? 1e-7 : 1e-8;
    if (k->coopmat < 0) bound = 1e-5; /* emulation: fp16 Q and P, fp32 sums (measured 2e-8 .. 1.5e-7) */
    const char *ov = getenv("VKLLM_ATTN_DECODE");
    tu_assert_nmse(out, ref, nq, bound, "attn %s%s%s%s tok=%u q=%u kv=%u hd=%u ctx=%u live=%u window=%u split=%u qs=%g",
                   k->prefill ? "prefill" : g_one_pass ? "decode one-pass" : "decode split+merge", !k->prefill && ov ? " shape " : "",
                   !k->prefill && ov ? ov : "", k->coopmat > 0 ? " coopmat" : k->coopmat < 0 ? " coopmat-emulated" : "", k->n_tok, k->n_q, k->n_kv, k->hd, k->ctx, n_live, k->window, k->n_split,
                   (double)k->q_scale);
    free(ref);
}

static void run_attn(vkllm_device *dev, const attn_case *k, uint64_t id)
{
    tu_rng r = tu_rng_for(id);
    const size_t nq = (size_t)k->n_tok * k->n_q * k->hd, nc = (size_t)k->n_kv * k->ctx * k->hd;
    float *q = malloc(nq * 4), *out = malloc(nq * 4);
    uint16_t *kc = malloc(nc * 2), *vc = malloc(nc * 2);
    assert_true(q && out && kc && vc);
    tu_fill_normal(&r, q, nq, k->q_scale);
    random_cache(&r, kc, nc);
    random_cache(&r, vc, nc);
    attn_bufs b = { tu_fbuf_alloc(dev, nq), tu_fbuf_alloc(dev, nc / 2), tu_fbuf_alloc(dev, nc / 2), tu_fbuf_alloc(dev, 1),
                    tu_fbuf_alloc(dev, nq),
                    tu_fbuf_alloc(dev, vkllm_attn_decode_scratch_bytes(k->n_tok, k->n_q, k->hd, k->ctx, k->n_split) / 4), { { 0 }, 0 } };
    tu_fbuf_upload(dev, &b.q, q);
    tu_fbuf_upload(dev, &b.k, (const float *)kc);
    tu_fbuf_upload(dev, &b.v, (const float *)vc);
    tu_fbuf_upload(dev, &b.len, (const float *)&k->n_live);
    tu_fbuf_poison(dev, &b.out);
    tu_fbuf_poison(dev, &b.scr);
    if (!k->prefill) zero_counters(dev, &b.scr, k->n_tok, k->n_q);
    const int q8 = !k->prefill && k->n_tok == 1 && k->hd % 32 == 0;
    if (q8) {
        b.q8 = tu_fbuf_alloc(dev, vkllm_q8_act_bytes(k->n_q * k->hd, 1) / 4);
        tu_fbuf_poison(dev, &b.q8);
    }
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    record_attn(dev, c, k, &b);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &b.out, out);
    tu_fbuf scr_check = b.scr;
    float *scr = malloc(scr_check.n * 4);
    tu_fbuf_download(dev, &scr_check, scr); /* the guard words, and the counters back at zero */
    if (!k->prefill) check_counters(scr, k->n_tok, k->n_q, "case");
    free(scr);
    check_attn(k, q, kc, vc, k->n_live, out);
    if (q8) {
        const uint32_t n = k->n_q * k->hd;
        uint8_t *qb = malloc(vkllm_q8_act_bytes(n, 1));
        assert_true(qb != NULL);
        tu_fbuf_download(dev, &b.q8, (float *)qb);
        check_q8_out(qb, out, n, g_one_pass ? "one-pass" : "split+merge");
        free(qb);
        tu_fbuf_free(dev, &b.q8);
    }
    tu_fbuf_free(dev, &b.q); tu_fbuf_free(dev, &b.k); tu_fbuf_free(dev, &b.v); tu_fbuf_free(dev, &b.len);
    tu_fbuf_free(dev, &b.out); tu_fbuf_free(dev, &b.scr);
    free(q); free(out); free(kc); free(vc);
}

static void test_attn_decode(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const attn_case cases[] = {
        { 0, 1, 40, 10, 128, 64, 1, 0, 0, 1.0f, 0 },       /* Phi-4, context 1 */
        { 0, 1, 40, 10, 128, 256, 255, 0, 0, 1.0f, 0 },    /* Phi-4, 255 */
        { 0, 1, 40, 10, 128, 4224, 4097, 0, 0, 1.0f, 0 },  /* Phi-4, 4097 (splits of the live range) */
        { 0, 1, 40, 10, 128, 4224, 4097, 1000, 0, 1.0f, 0 },/* sliding window */
        { 0, 1, 32, 32, 96, 256, 255, 0, 0, 1.0f, 0 },     /* Phi-3 */
        { 0, 1, 32, 32, 96, 4200, 4097, 0, 0, 1.0f, 0 },
        { 0, 1, 32, 32, 96, 4200, 4097, 2047, 0, 4.0f, 0 },/* window, peaky softmax */
        { 0, 3, 40, 10, 128, 512, 300, 0, 0, 1.0f, 0 },    /* a batch of 3 rows at consecutive positions */
        { 0, 2, 40, 10, 128, 512, 17, 5, 0, 1.0f, 0 },     /* window shorter than the context */
        { 0, 1, 6, 2, 64, 1000, 1000, 0, 1, 1.0f, 0 },     /* one split: whole range in one workgroup */
        { 0, 1, 6, 2, 64, 1000, 999, 0, 7, 1.0f, 0 },      /* odd split count */
        { 0, 1, 8, 1, 16, 200, 131, 0, 3, 8.0f, 0 },       /* multi-query, tiny heads, peaky */
        { 0, 3, 6, 2, 64, 100, 2, 0, 4, 1.0f, 0 },         /* batch longer than the context: row 0 sees nothing */
        { 0, 1, 4, 2, 64, 3000, 3000, 0, 1000, 1.0f, 0 },  /* many splits: 47 live chunks of 64 */
        { 0, 1, 4, 2, 64, 3000, 17, 0, 1000, 1.0f, 0 },    /* many splits, one live */
    };
    fprintf(stderr, "[ attn     ] one-pass decode: %s\n",
            vkllm_attn_decode_one_pass_available(dev) ? "tested besides split + merge" : "not on this device (split + merge only)");
    /* every case one-pass (falls back to split + merge where unavailable), then split + merge (the
     * long sliding-window and Phi-3 cases left out there: they add seconds on lavapipe and nothing
     * that case 6 does not cover) */
    for (int one = 1; one >= 0; one--) {
        g_one_pass = one;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            if (one || (i != 3 && i != 5)) run_attn(dev, &cases[i], 200 + i);
    }
    g_one_pass = 1;
    /* other shapes of the same kernel (VKLLM_ATTN_DECODE="wg,U[,P[,order[,target]]]", the benchmark
     * override): 64 threads with 3 rows per slot and step (steps of 24 positions on lavapipe, 12 at
     * subgroup size 32 and up); slots of 4 lanes (several uvec4 per lane and row) in contiguous step
     * runs; contiguous runs with a small workgroup target (few splits, long runs, uneven last run) */
    const char *shapes[3] = { "64,3", "64,2,4,1", "128,4,8,1,7" };
    const size_t pick[4] = { 2, 6, 11, 13 };
    for (int sh = 0; sh < 3; sh++) {
        setenv("VKLLM_ATTN_DECODE", shapes[sh], 1);
        for (int one = 1; one >= 0; one--) {
            g_one_pass = one;
            /* split + merge: the contiguous order only (its live-split count in the merge) */
            for (size_t i = 0; i < 4; i++)
                if (one || (sh == 1 && i > 0)) run_attn(dev, &cases[pick[i]], 200 + pick[i]);
        }
        unsetenv("VKLLM_ATTN_DECODE");
    }
    g_one_pass = 1;
    tu_device_close(dev);
}

static void test_attn_prefill(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const attn_case cases[] = {
        { 1, 1, 40, 10, 128, 64, 1, 0, 0, 1.0f, 0 },       /* Phi-4, one row, context 1 */
        { 1, 3, 40, 10, 128, 256, 255, 0, 0, 1.0f, 0 },    /* 3 rows at an offset */
        { 1, 17, 40, 10, 128, 4224, 4097, 0, 0, 1.0f, 0 }, /* 17 rows, long prefix */
        { 1, 17, 40, 10, 128, 4224, 4097, 1000, 0, 1.0f, 0 },
        { 1, 64, 32, 32, 96, 64, 64, 0, 0, 1.0f, 0 },      /* Phi-3, batch from position 0 */
        { 1, 64, 32, 32, 96, 64, 64, 16, 0, 4.0f, 0 },     /* window inside the batch, peaky */
        { 1, 64, 32, 32, 96, 1100, 1000, 300, 0, 1.0f, 0 },/* offset + window */
        { 1, 33, 6, 3, 16, 40, 37, 0, 0, 1.0f, 0 },        /* rows not a multiple of the tile, hd 16 */
        { 1, 5, 8, 1, 64, 16, 3, 0, 0, 1.0f, 0 },          /* batch longer than the context */
    };
    fprintf(stderr, "[ attn     ] cooperative-matrix prefill: %s\n",
            vkllm_attn_prefill_uses_coopmat(dev, 128) ? "tested besides the portable kernel" : "not on this device (portable only)");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_attn(dev, &cases[i], 300 + i);
        if (vkllm_attn_prefill_uses_coopmat(dev, cases[i].hd)) {
            attn_case cm = cases[i];
            cm.coopmat = 1;
            /* the KHR cooperative-matrix kernel: where the device has cooperative_matrix2 the op
             * would take attn_prefill_cm2 first (tests/gpu/test_attn_cm2.c covers that one) */
            setenv("VKLLM_ATTN_PREFILL_CM2", "0", 1);
            run_attn(dev, &cm, 300 + i);
            /* two other tile shapes bench-attn measures (the key-tile and prefetch variants are
             * covered by the emulation below: under validation on the H100 every extra shape costs
             * seconds) */
            const char *shapes[2] = { "4,2", "8,1" };
            for (int s = 0; s < 2; s++) {
                setenv("VKLLM_ATTN_PREFILL", shapes[s], 1);
                run_attn(dev, &cm, 300 + i);
                unsetenv("VKLLM_ATTN_PREFILL");
            }
            unsetenv("VKLLM_ATTN_PREFILL_CM2");
        }
    }
    /* The cooperative-matrix kernel with emulated matrix operations, on every device: its tiling,
     * masking, online softmax and output indexing. Short contexts only: besides being slow, the
     * emulation goes wrong on lavapipe (Mesa 22.3) once a workgroup passes ~200 barriers
     * (deterministically, at any head_dim: 3 key tiles at 128, 6 at 64, 22 at 16), which the real
     * kernel does not have (its products are single instructions). */
    const attn_case emu[] = {
        { 1, 1, 40, 10, 128, 64, 1, 0, 0, 1.0f, -1 },    /* Phi-4, context 1 */
        { 1, 3, 40, 10, 128, 64, 40, 0, 0, 1.0f, -1 },   /* Phi-4, 3 rows at an offset, 2 key tiles */
        { 1, 64, 32, 32, 96, 64, 64, 0, 0, 1.0f, -1 },   /* Phi-3, 2 row tiles from position 0 */
        { 1, 64, 32, 32, 96, 64, 64, 16, 0, 4.0f, -1 },  /* window inside the batch, peaky */
        { 1, 40, 4, 2, 64, 300, 290, 50, 0, 1.0f, -1 },  /* offset + window: 3 key tiles per row tile */
        { 1, 33, 6, 3, 16, 40, 37, 0, 0, 1.0f, -1 },     /* rows not a multiple of the tile, hd 16 */
        { 1, 5, 8, 1, 64, 16, 3, 0, 0, 1.0f, -1 },       /* batch longer than the context */
    };
    for (size_t i = 0; i < sizeof emu / sizeof emu[0]; i++) run_attn(dev, &emu[i], 350 + i);
    /* one subgroup with two 16-row blocks (each K and V fragment used twice), then 3 x 2 (96-row
     * tiles: Q staged in 2 passes). Cases with few matrix products: the lavapipe limit above counts
     * the emulation's subgroup barriers, two per product, twice as many with two row blocks. */
    setenv("VKLLM_ATTN_PREFILL", "1,2", 1);
    run_attn(dev, &emu[0], 360);
    run_attn(dev, &emu[5], 361);
    run_attn(dev, &emu[6], 362);
    setenv("VKLLM_ATTN_PREFILL", "3,2", 1);
    run_attn(dev, &emu[5], 363);
    setenv("VKLLM_ATTN_PREFILL", "2,1,64,1", 1); /* key tiles of 64 */
    run_attn(dev, &emu[5], 364);
    setenv("VKLLM_ATTN_PREFILL", "2,1,16,0", 1); /* key tiles of 16, loaded without register prefetch */
    run_attn(dev, &emu[4], 365);
    run_attn(dev, &emu[5], 366);
    unsetenv("VKLLM_ATTN_PREFILL");
    tu_device_close(dev);
}

/* One recorded decode chain replayed as the live length grows (len is the only thing that changes);
 * one-pass: the counters zeroed once before the first run only. Both paths. */
static void run_replay(vkllm_device *dev)
{
    const attn_case k = { 0, 1, 40, 10, 128, 2048, 0, 0, 0, 1.0f, 0 };
    tu_rng r = tu_rng_for(400);
    const size_t nq = (size_t)k.n_q * k.hd, nc = (size_t)k.n_kv * k.ctx * k.hd;
    float *q = malloc(nq * 4), *out = malloc(nq * 4);
    uint16_t *kc = malloc(nc * 2), *vc = malloc(nc * 2);
    tu_fill_normal(&r, q, nq, 1.0f);
    random_cache(&r, kc, nc);
    random_cache(&r, vc, nc);
    attn_bufs b = { tu_fbuf_alloc(dev, nq), tu_fbuf_alloc(dev, nc / 2), tu_fbuf_alloc(dev, nc / 2), tu_fbuf_alloc(dev, 1),
                    tu_fbuf_alloc(dev, nq), tu_fbuf_alloc(dev, vkllm_attn_decode_scratch_bytes(1, k.n_q, k.hd, k.ctx, 0) / 4),
                    { { 0 }, 0 } };
    tu_fbuf_upload(dev, &b.q, q);
    tu_fbuf_upload(dev, &b.k, (const float *)kc);
    tu_fbuf_upload(dev, &b.v, (const float *)vc);
    tu_fbuf_poison(dev, &b.scr);
    zero_counters(dev, &b.scr, 1, k.n_q);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    record_attn(dev, c, &k, &b);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    const uint32_t lens[] = { 1, 2, 100, 257, 2047, 2048 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        tu_fbuf_upload(dev, &b.len, (const float *)&lens[i]);
        tu_fbuf_poison(dev, &b.out);
        assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
        tu_fbuf_download(dev, &b.out, out);
        check_attn(&k, q, kc, vc, lens[i], out);
    }
    vkllm_chain_destroy(c);
    float *scr = malloc(b.scr.n * 4);
    tu_fbuf_download(dev, &b.scr, scr);
    check_counters(scr, 1, k.n_q, "replay");
    free(scr);
    tu_fbuf_free(dev, &b.q); tu_fbuf_free(dev, &b.k); tu_fbuf_free(dev, &b.v); tu_fbuf_free(dev, &b.len);
    tu_fbuf_free(dev, &b.out); tu_fbuf_free(dev, &b.scr);
    free(q); free(out); free(kc); free(vc);
}

static void test_attn_replay(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    for (int one = 1; one >= 0; one--) {
        g_one_pass = one;
        run_replay(dev);
    }
    g_one_pass = 1;
    tu_device_close(dev);
}

/* KV write then prefill then decode of the next token in chains, as the model runs them: the
 * barriers between the write and the reads come from the declared accesses. */
static void test_attn_pipeline(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const uint32_t n_q = 8, n_kv = 2, hd = 64, ctx = 96, T = 37;
    const uint32_t stride = (n_q + 2 * n_kv) * hd;
    tu_rng r = tu_rng_for(500);
    const size_t nqkv = (size_t)(T + 1) * stride, nq = (size_t)(T + 1) * n_q * hd, nc = (size_t)n_kv * ctx * hd;
    float *qkv = malloc(nqkv * 4), *qref = malloc(nq * 4), *out = malloc(nq * 4), table[64];
    uint16_t *kref = calloc(nc, 2), *vref = calloc(nc, 2);
    int32_t pos[64];
    double inv[32];
    tu_fill_normal(&r, qkv, nqkv, 1.0f);
    for (uint32_t t = 0; t <= T; t++) pos[t] = (int32_t)t;
    vkllm_rope_inv_freq(inv, hd, 10000.0, 1.0, NULL);
    vkllm_rope_table(table, inv, hd / 2);
    vkllm_kv_write_params rp = { T + 1, n_q, n_kv, hd, hd, stride, ctx, 1, 1.0f };
    vkllm_ref_kv_write(&rp, qkv, pos, inv, qref, kref, vref);

    tu_fbuf bqkv = tu_fbuf_alloc(dev, nqkv), bpos = tu_fbuf_alloc(dev, T + 1), btab = tu_fbuf_alloc(dev, hd),
            bq = tu_fbuf_alloc(dev, nq), bk = tu_fbuf_alloc(dev, nc / 2), bv = tu_fbuf_alloc(dev, nc / 2), blen = tu_fbuf_alloc(dev, 1),
            bo = tu_fbuf_alloc(dev, nq), bs = tu_fbuf_alloc(dev, vkllm_attn_decode_scratch_bytes(1, n_q, hd, ctx, 0) / 4);
    tu_fbuf_upload(dev, &bqkv, qkv);
    tu_fbuf_upload(dev, &bpos, (const float *)pos);
    tu_fbuf_upload(dev, &btab, table);
    tu_fbuf_poison(dev, &bq); tu_fbuf_poison(dev, &bk); tu_fbuf_poison(dev, &bv); tu_fbuf_poison(dev, &bo);
    tu_fbuf_poison(dev, &bs);
    zero_counters(dev, &bs, 1, n_q);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    for (int step = 0; step < 2; step++) {
        /* step 0: prefill of T tokens; step 1: decode of token T (views at row offsets of 256-byte multiples) */
        uint32_t n_tok = step ? 1 : T, first = step ? T : 0, L = step ? T + 1 : T;
        tu_fbuf_upload(dev, &blen, (const float *)&L);
        vkllm_view vqkv = { bqkv.buf, (uint64_t)first * stride * 4 }, vpos = { bpos.buf, 0 };
        vkllm_view vq = { bq.buf, (uint64_t)first * n_q * hd * 4 }, vo = { bo.buf, (uint64_t)first * n_q * hd * 4 };
        if (step) {
            uint32_t p1 = T;
            vkllm_buffer_write(dev, &bpos.buf, 0, &p1, 4);
        }
        assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
        vkllm_kv_write_args w = { vqkv, vpos, tu_view(&btab), vq, tu_view(&bk), tu_view(&bv), n_tok, n_q, n_kv, hd, hd, stride, ctx, 1,
                                  1.0f, 0, NULL };
        if (vkllm_op_kv_write(c, &w)) fail_msg("kv_write: %s", vkllm_device_error(dev));
        vkllm_attn_args a = { vq, tu_view(&bk), tu_view(&bv), tu_view(&blen), vo, tu_view(&bs), n_tok, n_q, n_kv, hd, ctx, 0, 0.0f, 0, NULL, 0, 1,
                              { { 0 }, 0 } };
        if ((step ? vkllm_op_attn_decode(c, &a) : vkllm_op_attn_prefill(c, &a))) fail_msg("attn: %s", vkllm_device_error(dev));
        assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
        assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    }
    vkllm_chain_destroy(c);
    tu_fbuf_download(dev, &bo, out);
    float *ref = malloc(nq * 4);
    /* prefill rows (L = T) and the decode row (L = T + 1) against the reference on the reference cache */
    vkllm_attn_params p = { T, n_q, n_kv, hd, ctx, T, 0, 0.0f };
    vkllm_ref_attn(&p, qref, kref, vref, ref);
    vkllm_attn_params p1 = { 1, n_q, n_kv, hd, ctx, T + 1, 0, 0.0f };
    vkllm_ref_attn(&p1, qref + (size_t)T * n_q * hd, kref, vref, ref + (size_t)T * n_q * hd);
    /* K/V on the GPU may differ from the reference's by one fp16 ulp: inputs differ by ~1e-7 NMSE */
    tu_assert_nmse(out, ref, nq, vkllm_attn_prefill_uses_coopmat(dev, hd) ? 1e-4 : 1e-6, "kv_write -> prefill -> decode chain");
    free(ref);
    tu_fbuf_free(dev, &bqkv); tu_fbuf_free(dev, &bpos); tu_fbuf_free(dev, &btab); tu_fbuf_free(dev, &bq); tu_fbuf_free(dev, &bk);
    tu_fbuf_free(dev, &bv); tu_fbuf_free(dev, &blen); tu_fbuf_free(dev, &bo); tu_fbuf_free(dev, &bs);
    free(qkv); free(qref); free(out); free(kref); free(vref);
    tu_device_close(dev);
}

static void test_attn_bad_args(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    tu_fbuf b = tu_fbuf_alloc(dev, 1024);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    vkllm_view v = tu_view(&b);
    vkllm_attn_args a = { v, v, v, v, v, v, 1, 6, 4, 64, 4, 0, 0.0f, 0, NULL, 0, 1, { { 0 }, 0 } };
    assert_int_equal(vkllm_op_attn_decode(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* 6 heads over 4 KV heads */
    a.n_kv = 2; a.head_dim = 72;
    assert_int_equal(vkllm_op_attn_prefill(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* head_dim not a multiple of 16 */
    a.head_dim = 64; a.ctx = 4096;
    assert_int_equal(vkllm_op_attn_prefill(c, &a), VKLLM_ERROR_OUT_OF_RANGE); /* cache larger than the buffer */
    vkllm_kv_write_args w = { v, v, v, v, v, v, 1, 4, 2, 64, 62, 512, 4, 1, 1.0f, 0, NULL };
    assert_int_equal(vkllm_op_kv_write(c, &w), VKLLM_ERROR_INVALID_ARGUMENT); /* n_rot not a multiple of 4 */
    w.n_rot = 64; w.qkv_stride = 100;
    assert_int_equal(vkllm_op_kv_write(c, &w), VKLLM_ERROR_INVALID_ARGUMENT); /* row shorter than Q|K|V */
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_write),
        cmocka_unit_test(test_attn_decode),
        cmocka_unit_test(test_attn_prefill),
        cmocka_unit_test(test_attn_replay),
        cmocka_unit_test(test_attn_pipeline),
        cmocka_unit_test(test_attn_bad_args),
    };
    /* TEST_ATTN_ONLY=pattern runs the matching tests only (e.g. "test_attn_decode" on a busy device) */
    const char *only = getenv("TEST_ATTN_ONLY");
    if (only && *only) cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
