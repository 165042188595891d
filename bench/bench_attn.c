/* Microbenchmarks of the attention family at Phi-4 shapes (40 query heads over 10 KV heads, head_dim
 * 128), method in benchutil.h:
 *   decode (one pass, and split + merge; one query row) at contexts 512, 1024, 4096, 8192, 16384, Phi-4
 *     and Phi-3-mini (32/32 x 96) shapes: bytes = the K and V the call must read, 2 * n_kv * ctx * hd
 *     * 2, against the streaming-read ceiling; caches rotate through enough copies that L2 never holds
 *     the next call's cache (the copies kept across the cases of one context);
 *   prefill (portable tiles at 512 and 2048, then the cooperative-matrix kernel where the device has
 *     it at 512, 2048, 8192: the KHR one, and the NV cooperative_matrix2 one where that exists, in the
 *     same run; VKLLM_BENCH_ATTN=prefill runs only these) from position 0: TFLOP/s counted as causal,
 *     4 * n_q * hd * T^2 / 2 (what bench/torch_attn.py counts for SDPA);
 *   kv_write of 1 and 512 tokens (bytes: QKV rows read, Q written, K and V halves written).
 * Each result is checked against the CPU reference (prefill: a few rows per head, the reference is
 * O(T^2)). A call's time for decode is from its first dispatch's start to its last one's end;
 * VKLLM_BENCH_DECODE_ONLY=1 stops after the decode rows.
 * VKLLM_BENCH_SWEEP=1 adds other decode split counts and workgroup shapes and prefill tile shapes
 * (through VKLLM_ATTN_DECODE / VKLLM_ATTN_PREFILL), then the decode defaults again. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "vkllm/half.h"
#include "vkllm/pipeline.h"
#include "vkllm/ref.h"
#include "vkllm/ref_attn.h"

static const uint32_t NQ = 40, NKV = 10, HD = 128;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint16_t *random_halves(size_t n)
{
    uint16_t *h = malloc(n * 2);
    if (!h) exit(1);
    for (size_t i = 0; i < n; i++) h[i] = vkllm_fp32_to_fp16(bu_normal());
    return h;
}

static vkllm_buffer upload(vkllm_device *dev, const void *data, uint64_t bytes)
{
    vkllm_buffer b;
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, bytes, &b));
    if (data) BU_CK(dev, vkllm_buffer_write(dev, &b, 0, data, bytes));
    else BU_CK(dev, vkllm_buffer_fill(dev, &b, 0, bytes / 4 * 4, 0x7FC00000u));
    return b;
}

/* ---- decode ---- */
/* K/V caches (all copies), q and the reference output of the last (shape, ctx): cases of one context
 * share them, so a sweep does not re-upload 100s of MB per case (and measures on the same pages) */
typedef struct decode_data {
    uint32_t nq, nkv, hd, ctx, copies;
    uint64_t cache, pair;
    vkllm_buffer kv, q, len;
    float *ref;
    int live, fresh; /* fresh: uploaded since the last timed case */
} decode_data;
static decode_data dd;
static int decode_wrong; /* a decode case failed its check */

static void decode_release(vkllm_device *dev)
{
    if (!dd.live) return;
    vkllm_buffer_free(dev, &dd.kv); vkllm_buffer_free(dev, &dd.q); vkllm_buffer_free(dev, &dd.len);
    free(dd.ref);
    dd.live = 0;
}

static void decode_data_get(vkllm_device *dev, uint32_t nq, uint32_t nkv, uint32_t hd, uint32_t ctx)
{
    if (dd.live && dd.nq == nq && dd.nkv == nkv && dd.hd == hd && dd.ctx == ctx) return;
    decode_release(dev);
    memset(&dd, 0, sizeof dd);
    dd.nq = nq, dd.nkv = nkv, dd.hd = hd, dd.ctx = ctx, dd.live = 1, dd.fresh = 1;
    dd.cache = vkllm_kv_cache_bytes(nkv, ctx, hd);
    dd.pair = bu_round256(2 * dd.cache);
    uint32_t n_disp;
    bu_plan(2 * dd.cache, &dd.copies, &n_disp);
    const size_t nc = (size_t)nkv * ctx * hd, nqe = (size_t)nq * hd;
    uint16_t *kc = random_halves(nc), *vc = random_halves(nc);
    float *q = malloc(nqe * 4);
    dd.ref = malloc(nqe * 4);
    if (!q || !dd.ref) exit(1);
    for (size_t i = 0; i < nqe; i++) q[i] = bu_normal();
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, dd.pair * dd.copies, &dd.kv));
    for (uint32_t j = 0; j < dd.copies; j++) {
        BU_CK(dev, vkllm_buffer_write(dev, &dd.kv, j * dd.pair, kc, dd.cache));
        BU_CK(dev, vkllm_buffer_write(dev, &dd.kv, j * dd.pair + bu_round256(dd.cache), vc, dd.cache));
    }
    dd.q = upload(dev, q, nqe * 4);
    dd.len = upload(dev, &ctx, 4);
    vkllm_attn_params p = { 1, nq, nkv, hd, ctx, ctx, 0, 0.0f };
    vkllm_ref_attn(&p, q, kc, vc, dd.ref);
    free(kc); free(vc); free(q);
}

/* One decode case: nq/nkv heads x hd at full context ctx, one query row; n_split 0 = the op's
 * choice; shape_override = VKLLM_ATTN_DECODE for this case; one_pass as the op's field. */
static void bench_decode(vkllm_device *dev, uint32_t nq, uint32_t nkv, uint32_t hd, uint32_t ctx, uint32_t n_split,
                         const char *shape_override, int one_pass)
{
    if (shape_override) setenv("VKLLM_ATTN_DECODE", shape_override, 1);
    decode_data_get(dev, nq, nkv, hd, ctx);
    const uint64_t call = 2 * dd.cache;
    uint32_t copies, n_disp;
    bu_plan(call, &copies, &n_disp);
    copies = dd.copies;
    if (n_disp > 400) n_disp = 400;
    const size_t nqe = (size_t)nq * hd;
    float *out = malloc(nqe * 4);
    vkllm_buffer bo = upload(dev, NULL, nqe * 4);
    vkllm_buffer bs = upload(dev, NULL, vkllm_attn_decode_scratch_bytes(1, nq, hd, ctx, n_split));
    BU_CK(dev, vkllm_buffer_fill(dev, &bs, 0, vkllm_attn_decode_counter_bytes(1, nq), 0)); /* one-pass counters */
    const int one = one_pass && vkllm_attn_decode_one_pass_available(dev);
    const uint32_t per = one ? 1 : 2; /* dispatches per call */
    vkllm_chain_options o = { .timestamps = 1, .max_dispatches = per * n_disp };
    vkllm_chain *c;
    BU_CK(dev, vkllm_chain_create(dev, &o, &c));
    BU_CK(dev, vkllm_chain_begin(c));
    for (uint32_t i = 0; i < n_disp; i++) {
        uint32_t j = i % copies;
        vkllm_attn_args a = { { dd.q, 0 }, { dd.kv, j * dd.pair }, { dd.kv, j * dd.pair + bu_round256(dd.cache) }, { dd.len, 0 },
                              { bo, 0 }, { bs, 0 }, 1, nq, nkv, hd, ctx, 0, 0.0f, n_split, NULL, 0, one_pass, { { 0 }, 0 } };
        BU_CK(dev, vkllm_op_attn_decode(c, &a));
    }
    BU_CK(dev, vkllm_chain_end(c));
    /* Warm-up: the chain again until VKLLM_BENCH_WARM_MS have passed (1500 right after a new cache
     * was uploaded, else 200), then the timed run. On the H100 the calls right after the host-side
     * upload of a new cache (a second or two of GPU idle) ran up to 4x slower than the same calls
     * half a second later (the first run of commit 97a17d8, see docs/BENCHMARKS.md), which one
     * warm-up run of ~20 ms did not cover. */
    const char *wms = getenv("VKLLM_BENCH_WARM_MS");
    const double warm_s = (wms ? atof(wms) : bu_quick ? 0 : dd.fresh ? 1500 : 200) / 1e3;
    dd.fresh = 0;
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    do {
        BU_CK(dev, vkllm_chain_run(c));
        clock_gettime(CLOCK_MONOTONIC, &w1);
    } while ((double)(w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9 < warm_s);
    BU_CK(dev, vkllm_chain_run(c));
    const vkllm_timing *t;
    uint32_t nt;
    BU_CK(dev, vkllm_chain_timings(c, &t, &nt));
    double *d = malloc(n_disp * sizeof *d);
    double merge_med = 0;
    if (!one) {
        for (uint32_t i = 0; i < n_disp; i++) d[i] = t[2 * i + 1].duration_ns;
        qsort(d, n_disp, sizeof *d, cmp_double);
        merge_med = d[n_disp / 2];
    }
    /* a call: from its first dispatch's start to its last one's end */
    for (uint32_t i = 0; i < n_disp; i++)
        d[i] = t[per * i + per - 1].start_ns + t[per * i + per - 1].duration_ns - t[per * i].start_ns;
    qsort(d, n_disp, sizeof *d, cmp_double);
    double med = d[n_disp / 2], mn = d[0];
    vkllm_chain_destroy(c);
    BU_CK(dev, vkllm_buffer_read(dev, &bo, 0, out, nqe * 4));
    uint32_t cnt[64] = { 0 };
    BU_CK(dev, vkllm_buffer_read(dev, &bs, 0, cnt, sizeof cnt));
    double e = bu_nmse(out, dd.ref, nqe);
    for (uint32_t i = 0; i < nkv && i < 64; i++)
        if (cnt[i]) e = INFINITY; /* a counter left nonzero breaks the next call */
    char shape[128];
    vkllm_attn_args a0 = { .n_tok = 1, .n_q = nq, .n_kv = nkv, .head_dim = hd, .ctx = ctx, .n_split = n_split };
    snprintf(shape, sizeof shape, "%s %u/%ux%u ctx=%u splits=%u%s%s", nkv == 10 ? "phi4" : nkv == 32 ? "phi3" : "gqa", nq, nkv, hd, ctx,
             vkllm_attn_decode_split_count(dev, &a0), shape_override ? " wg,U,P,o,tg=" : "", shape_override ? shape_override : "");
    if (shape_override) unsetenv("VKLLM_ATTN_DECODE");
    bu_report(one ? "attn_decode_1p" : "attn_decode+merge", shape, call, 4ull * nq * ctx * hd, med, mn, e);
    if (!one) fprintf(stderr, "bench-attn: decode %s: merge %.2f us of %.2f us\n", shape, merge_med / 1e3, med / 1e3);
    if (!(e <= 1e-8)) { /* the rest of a sweep still runs; the exit status says it */
        fprintf(stderr, "bench-attn: decode %s is WRONG (NMSE %.3e)\n", shape, e);
        decode_wrong = 1;
    }
    vkllm_buffer_free(dev, &bo); vkllm_buffer_free(dev, &bs);
    free(out); free(d);
}

/* The decode table: one pass (where the device has it) and split + merge at contexts 512..16384,
 * Phi-4 and Phi-3-mini (32/32 x 96) shapes; VKLLM_BENCH_SWEEP=1 adds split counts and workgroup
 * shapes (VKLLM_ATTN_DECODE="wg,U[,P[,order[,target]]]"), then the defaults again. */
static void bench_decode_all(vkllm_device *dev)
{
    const uint32_t ctxs[5] = { 512, 1024, 4096, 8192, 16384 };
    for (int i = 0; i < 5; i++) {
        bench_decode(dev, NQ, NKV, HD, ctxs[i], 0, NULL, 1);
        bench_decode(dev, NQ, NKV, HD, ctxs[i], 0, NULL, 0);
    }
    for (int i = 0; i < 5; i++) {
        bench_decode(dev, 32, 32, 96, ctxs[i], 0, NULL, 1);
        bench_decode(dev, 32, 32, 96, ctxs[i], 0, NULL, 0);
    }
    /* split + merge with the split counts of commit 4ca20e2 (64 at 4096, 128 at 16384) */
    bench_decode(dev, NQ, NKV, HD, 4096, 64, NULL, 0);
    bench_decode(dev, NQ, NKV, HD, 16384, 128, NULL, 0);
    if (getenv("VKLLM_BENCH_SWEEP")) {
        /* one pass: workgroup shapes (threads, rows per slot and step) x workgroup targets (the op's
         * split count) at 4096 and 16384, both model shapes; a few explicit split counts at 512 */
        const char *shapes[5] = { "128,4", "128,2", "128,8", "256,2", "256,4" };
        const unsigned targets[4] = { 128, 256, 384, 512 };
        const uint32_t sw_ctx[2] = { 4096, 16384 };
        for (int m = 0; m < 2; m++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 5; j++)
                    for (int k = 0; k < 4; k++) {
                        char ov[48];
                        snprintf(ov, sizeof ov, "%s,16,0,%u", shapes[j], targets[k]);
                        if (m == 0) bench_decode(dev, NQ, NKV, HD, sw_ctx[i], 0, ov, 1);
                        else bench_decode(dev, 32, 32, 96, sw_ctx[i], 0, ov, 1);
                    }
        bench_decode(dev, NQ, NKV, HD, 512, 4, NULL, 1);
        bench_decode(dev, NQ, NKV, HD, 512, 16, NULL, 1);
        bench_decode(dev, NQ, NKV, HD, 512, 16, "128,2", 1);
        bench_decode(dev, NQ, NKV, HD, 512, 32, "128,2", 1);
        /* the defaults again */
        for (int i = 0; i < 5; i++) bench_decode(dev, NQ, NKV, HD, ctxs[i], 0, NULL, 1);
    }
    decode_release(dev);
}

/* ---- prefill ---- */
typedef struct {
    vkllm_buffer q, k, v, len, out, scr;
    uint32_t T;
    int portable;
} prefill_case;
static void rec_prefill(vkllm_chain *c, uint32_t i, void *u)
{
    prefill_case *k = u;
    (void)i;
    vkllm_attn_args a = { { k->q, 0 }, { k->k, 0 }, { k->v, 0 }, { k->len, 0 }, { k->out, 0 }, { k->scr, 0 },
                          k->T, NQ, NKV, HD, k->T, 0, 0.0f, 0, NULL, k->portable, 0, { { 0 }, 0 } };
    if (vkllm_op_attn_prefill(c, &a)) exit(1);
}

/* 1 if vkllm_op_attn_prefill takes the NV cooperative_matrix2 kernel (runtime/ops_attn_cm2.c) */
static int prefill_cm2(vkllm_device *dev)
{
    const char *e = getenv("VKLLM_ATTN_PREFILL_CM2");
    return vkllm_device_features(dev)->coopmat2 && vkllm_kernel_available("attn_prefill_cm2") && !(e && !strcmp(e, "0"));
}

static void bench_prefill(vkllm_device *dev, uint32_t T, int portable)
{
    const int cm2 = !portable && prefill_cm2(dev);
    const int cm = cm2 || (!portable && vkllm_attn_prefill_uses_coopmat(dev, HD));
    const size_t nc = (size_t)NKV * T * HD, nq = (size_t)T * NQ * HD;
    uint16_t *kc = random_halves(nc), *vc = random_halves(nc);
    float *q = malloc(nq * 4), *out = malloc(nq * 4), ref[128];
    for (size_t i = 0; i < nq; i++) q[i] = bu_normal();
    prefill_case k = { upload(dev, q, nq * 4), upload(dev, kc, nc * 2), upload(dev, vc, nc * 2), upload(dev, &T, 4),
                       upload(dev, NULL, nq * 4), { 0 }, T, portable };
    k.scr = k.len;
    double med, mn;
    uint32_t n = bu_quick ? 2 : (T >= 8192 ? 5 : 20);
    bu_time_dispatches(dev, n, rec_prefill, &k, &med, &mn);
    BU_CK(dev, vkllm_buffer_read(dev, &k.out, 0, out, nq * 4));
    /* rows 0, T/2 and T-1 of every head: query at position t sees 0..t */
    double num = 0, den = 0;
    const uint32_t rows[3] = { 0, T / 2, T - 1 };
    for (int r = 0; r < 3; r++)
        for (uint32_t h = 0; h < NQ; h++) {
            /* the reference with one query head: pick KV head h / 4 by passing that head's cache rows */
            vkllm_attn_params p = { 1, 1, 1, HD, T, rows[r] + 1, 0, 0.0f };
            size_t qo = ((size_t)rows[r] * NQ + h) * HD, co = (size_t)(h / (NQ / NKV)) * T * HD;
            vkllm_ref_attn(&p, q + qo, kc + co, vc + co, ref);
            for (uint32_t e = 0; e < HD; e++) {
                double dd = (double)out[qo + e] - ref[e];
                num += isfinite(out[qo + e]) ? dd * dd : INFINITY;
                den += (double)ref[e] * ref[e];
            }
        }
    double e = num / den;
    char shape[96];
    const char *ov = cm ? getenv(cm2 ? "VKLLM_ATTN_CM2" : "VKLLM_ATTN_PREFILL") : NULL;
    snprintf(shape, sizeof shape, "phi4 40/10x128 T=%u causal%s%s", T, ov ? (cm2 ? " br,bc,wg,st=" : " sg,rb,bc,pf=") : "", ov ? ov : "");
    uint64_t flops = 2ull * NQ * HD * T * T;
    bu_report(cm2 ? "attn_prefill_cm2" : cm ? "attn_prefill_cm" : "attn_prefill", shape, 2 * nq * 4 + 2 * nc * 2, flops, med, mn, e);
    if (!(e <= (cm ? 1e-4 : 1e-8))) {
        fprintf(stderr, "bench-attn: prefill %s is WRONG (NMSE %.3e)\n", shape, e);
        exit(1);
    }
    vkllm_buffer_free(dev, &k.q); vkllm_buffer_free(dev, &k.k); vkllm_buffer_free(dev, &k.v); vkllm_buffer_free(dev, &k.len);
    vkllm_buffer_free(dev, &k.out);
    free(kc); free(vc); free(q); free(out);
}

/* ---- kv write ---- */
typedef struct {
    vkllm_buffer qkv, pos, table, q, k, v;
    uint32_t n_tok, ctx, copies;
    uint64_t qkv_bytes;
} kvw_case;
static void rec_kvw(vkllm_chain *c, uint32_t i, void *u)
{
    kvw_case *k = u;
    uint32_t j = i % k->copies, stride = (NQ + 2 * NKV) * HD;
    vkllm_kv_write_args a = { { k->qkv, j * k->qkv_bytes }, { k->pos, 0 }, { k->table, 0 }, { k->q, 0 }, { k->k, 0 }, { k->v, 0 },
                              k->n_tok, NQ, NKV, HD, HD, stride, k->ctx, 1, 1.0f, 0, NULL };
    if (vkllm_op_kv_write(c, &a)) exit(1);
}

static void bench_kv_write(vkllm_device *dev, uint32_t n_tok)
{
    const uint32_t stride = (NQ + 2 * NKV) * HD, ctx = 4096;
    kvw_case k = { .n_tok = n_tok, .ctx = ctx };
    k.qkv_bytes = bu_round256((uint64_t)n_tok * stride * 4);
    const uint64_t call = (uint64_t)n_tok * stride * 4 + (uint64_t)n_tok * NQ * HD * 4 + (uint64_t)n_tok * 2 * NKV * HD * 2;
    uint32_t n_disp;
    bu_plan(call, &k.copies, &n_disp);
    k.qkv = bu_random_buffer(dev, k.qkv_bytes * k.copies);
    int32_t *pos = malloc(n_tok * 4);
    for (uint32_t t = 0; t < n_tok; t++) pos[t] = (int32_t)(1000 + t);
    double inv[64];
    float table[128];
    vkllm_rope_inv_freq(inv, HD, 250000.0, 1.0, NULL);
    vkllm_rope_table(table, inv, HD / 2);
    k.pos = upload(dev, pos, n_tok * 4);
    k.table = upload(dev, table, sizeof table);
    k.q = upload(dev, NULL, (uint64_t)n_tok * NQ * HD * 4);
    k.k = upload(dev, NULL, vkllm_kv_cache_bytes(NKV, ctx, HD));
    k.v = upload(dev, NULL, vkllm_kv_cache_bytes(NKV, ctx, HD));
    double med, mn;
    bu_time_dispatches(dev, n_disp, rec_kvw, &k, &med, &mn);
    /* Q of copy (n_disp - 1) % copies was written last */
    size_t nqkv = (size_t)n_tok * stride, nq = (size_t)n_tok * NQ * HD;
    float *qkv = malloc(nqkv * 4), *qo = malloc(nq * 4), *qr = malloc(nq * 4);
    uint16_t *kr = malloc(vkllm_kv_cache_bytes(NKV, ctx, HD)), *vr = malloc(vkllm_kv_cache_bytes(NKV, ctx, HD));
    BU_CK(dev, vkllm_buffer_read(dev, &k.qkv, (uint64_t)((n_disp - 1) % k.copies) * k.qkv_bytes, qkv, nqkv * 4));
    BU_CK(dev, vkllm_buffer_read(dev, &k.q, 0, qo, nq * 4));
    vkllm_kv_write_params p = { n_tok, NQ, NKV, HD, HD, stride, ctx, 1, 1.0f };
    vkllm_ref_kv_write(&p, qkv, pos, inv, qr, kr, vr);
    double e = bu_nmse(qo, qr, nq);
    char shape[64];
    snprintf(shape, sizeof shape, "phi4 tok=%u", n_tok);
    bu_report("kv_write_neox", shape, call, (uint64_t)n_tok * (NQ + NKV) * HD * 3, med, mn, e);
    if (!(e <= 1e-7)) {
        fprintf(stderr, "bench-attn: kv_write %s is WRONG (NMSE %.3e)\n", shape, e);
        exit(1);
    }
    vkllm_buffer_free(dev, &k.qkv); vkllm_buffer_free(dev, &k.pos); vkllm_buffer_free(dev, &k.table); vkllm_buffer_free(dev, &k.q);
    vkllm_buffer_free(dev, &k.k); vkllm_buffer_free(dev, &k.v);
    free(pos); free(qkv); free(qo); free(qr); free(kr); free(vr);
}

int main(int argc, char **argv)
{
    vkllm_device *dev = bu_open(argc, argv, "bench-attn");
    bu_measure_ceiling(dev);
    if (bu_quick) {
        bench_decode(dev, NQ, NKV, HD, 512, 0, NULL, 1);
        bench_decode(dev, NQ, NKV, HD, 512, 0, NULL, 0);
        decode_release(dev);
        bench_prefill(dev, 128, 1);
        if (vkllm_attn_prefill_uses_coopmat(dev, HD)) bench_prefill(dev, 128, 0);
        bench_kv_write(dev, 1);
    } else {
        const uint32_t ts[3] = { 512, 2048, 8192 };
        /* VKLLM_BENCH_ATTN=prefill: the cooperative-matrix prefill rows (and their sweep) only */
        const char *only = getenv("VKLLM_BENCH_ATTN");
        const int pf_only = only && !strcmp(only, "prefill");
        if (!pf_only) bench_decode_all(dev); /* the decode rows, and the decode sweep */
        if (getenv("VKLLM_BENCH_DECODE_ONLY")) { /* the decode rows alone */
            bu_close(dev);
            return decode_wrong;
        }
        if (!pf_only) for (int i = 0; i < 2; i++) bench_prefill(dev, ts[i], 1); /* 8192: 74 ms a call on the H100 */
        const int cm = vkllm_attn_prefill_uses_coopmat(dev, HD), cm2 = prefill_cm2(dev);
        if (cm && cm2) { /* the KHR kernel too, for the comparison in one run */
            setenv("VKLLM_ATTN_PREFILL_CM2", "0", 1);
            for (int i = 0; i < 3; i++) bench_prefill(dev, ts[i], 0);
            unsetenv("VKLLM_ATTN_PREFILL_CM2");
        }
        if (cm || cm2)
            for (int i = 0; i < 3; i++) bench_prefill(dev, ts[i], 0);
        if (cm2 && getenv("VKLLM_BENCH_SWEEP")) {
            /* cooperative_matrix2 tiles (VKLLM_ATTN_CM2 = rows, key tile, threads), then the default again */
            const char *tiles[] = { "64,64,256", "32,64,128", "64,64,128,1", "64,64,256,1", "64,32,128,1",
                                    "128,64,256,1", "128,32,256,1", "32,64,128,1" };
            for (size_t s = 0; s < sizeof tiles / sizeof tiles[0]; s++) {
                setenv("VKLLM_ATTN_CM2", tiles[s], 1);
                for (int i = 0; i < 3; i++) bench_prefill(dev, ts[i], 0);
                unsetenv("VKLLM_ATTN_CM2");
            }
            for (int i = 0; i < 3; i++) bench_prefill(dev, ts[i], 0);
        }
        if (pf_only) {
            bu_close(dev);
            return 0;
        }
        bench_kv_write(dev, 1);
        bench_kv_write(dev, 512);
        if (getenv("VKLLM_BENCH_SWEEP")) {
            /* the prefill tile by VKLLM_ATTN_PREFILL (subgroups, row blocks, key tile, prefetch): its
             * effect (the decode sweep ran in bench_decode_all) */
            if (cm) {
                if (cm2) setenv("VKLLM_ATTN_PREFILL_CM2", "0", 1); /* these shapes are the KHR kernel's */
                const char *shapes[4] = { "8,1", "4,2", "4,1,16,1", "4,1,32,0" };
                for (int s = 0; s < 4; s++) {
                    setenv("VKLLM_ATTN_PREFILL", shapes[s], 1);
                    bench_prefill(dev, 2048, 0);
                    unsetenv("VKLLM_ATTN_PREFILL");
                }
                unsetenv("VKLLM_ATTN_PREFILL_CM2");
            }
        }
    }
    bu_close(dev);
    return decode_wrong;
}
