/* Microbenchmarks of the misc kernels (SwiGLU, residual add, embedding lookup, argmax, top-k)
 * against the streaming-read ceiling measured in the same run; method in benchutil.h. Argmax and
 * top-k are two dispatches (chunk, merge): their time is from the start of the first to the end of
 * the second, barrier included. The NMSE column is 0 for exact matches (argmax/top-k/embed report
 * the fraction of wrong outputs there; the run fails if it is not 0).
 *   bench-misc [common flags] [--latency]
 *     --latency  instead times the fixed cost of a dispatch in a chain (bench_latency below). */
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "benchutil.h"
#include "vkllm/half.h"
#include "vkllm/ref_misc.h"


static float *read_floats(vkllm_device *dev, vkllm_buffer *b, uint64_t off, size_t n)
{
    float *p = malloc(n * 4);
    if (!p) bu_die(dev, "out of memory");
    BU_CK(dev, vkllm_buffer_read(dev, b, off, p, n * 4));
    return p;
}

static void check_or_die(const char *kernel, const char *shape, double e, double bound)
{
    if (!(e <= bound)) {
        fprintf(stderr, "bench-misc: %s %s is WRONG (error %.3e > %.1e)\n", kernel, shape, e, bound);
        exit(1);
    }
}

/* ---- SwiGLU ---- */
typedef struct {
    vkllm_buffer gu, act;
    uint32_t n_ff, n_tok, copies;
    uint64_t gu_bytes, act_bytes;
} swiglu_case;
static void rec_swiglu(vkllm_chain *c, uint32_t i, void *u)
{
    swiglu_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_swiglu_args a = { { k->gu, j * k->gu_bytes }, { k->act, j * k->act_bytes }, k->n_ff, k->n_tok, 2 * k->n_ff, k->n_ff, NULL };
    if (vkllm_op_swiglu(c, &a)) exit(1);
}

static void bench_swiglu(vkllm_device *dev, uint32_t n_ff, uint32_t n_tok)
{
    swiglu_case k = { .n_ff = n_ff, .n_tok = n_tok };
    uint64_t n = (uint64_t)n_ff * n_tok, call = n * 12;
    k.gu_bytes = bu_round256(n * 8);
    k.act_bytes = bu_round256(n * 4);
    uint32_t n_disp;
    bu_plan(call, &k.copies, &n_disp);
    k.gu = bu_random_buffer(dev, k.gu_bytes * k.copies);
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, k.act_bytes * k.copies, &k.act));
    BU_CK(dev, vkllm_buffer_fill(dev, &k.act, 0, k.act_bytes * k.copies, 0x7FC00000u));
    double med, mn;
    bu_time_dispatches(dev, n_disp, rec_swiglu, &k, &med, &mn);
    float *gu = read_floats(dev, &k.gu, 0, n * 2), *out = read_floats(dev, &k.act, 0, n), *ref = malloc(n * 4);
    vkllm_ref_swiglu(gu, ref, n_ff, n_tok, 2 * n_ff, n_ff);
    double e = bu_nmse(out, ref, n);
    char shape[64];
    snprintf(shape, sizeof shape, "n_ff=%u tok=%u", n_ff, n_tok);
    bu_report("swiglu", shape, call, n * 5, med, mn, e);
    check_or_die("swiglu", shape, e, 1e-10);
    vkllm_buffer_free(dev, &k.gu); vkllm_buffer_free(dev, &k.act);
    free(gu); free(out); free(ref);
}

/* ---- residual add (in place, as in the layer) ---- */
typedef struct {
    vkllm_buffer a, b;
    uint32_t n, copies;
    uint64_t bytes;
} add_case;
static void rec_add(vkllm_chain *c, uint32_t i, void *u)
{
    add_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_add_args a = { { k->a, j * k->bytes }, { k->b, j * k->bytes }, { k->a, j * k->bytes }, k->n, NULL };
    if (vkllm_op_add(c, &a)) exit(1);
}

static void bench_add(vkllm_device *dev, uint32_t n_embd, uint32_t n_tok)
{
    add_case k = { .n = n_embd * n_tok };
    uint64_t call = (uint64_t)k.n * 12;
    k.bytes = bu_round256((uint64_t)k.n * 4);
    uint32_t n_disp;
    bu_plan(call, &k.copies, &n_disp);
    k.a = bu_random_buffer(dev, k.bytes * k.copies);
    k.b = bu_random_buffer(dev, k.bytes * k.copies);
    float *a0 = read_floats(dev, &k.a, 0, k.n), *b0 = read_floats(dev, &k.b, 0, k.n), *ref = malloc((size_t)k.n * 4);
    /* copy 0 is added to twice per run (warm-up, timed) times its uses per run */
    uint32_t uses = 2 * ((n_disp + k.copies - 1) / k.copies);
    for (uint32_t i = 0; i < k.n; i++) {
        float y = a0[i];
        for (uint32_t u = 0; u < uses; u++) y = y + b0[i];
        ref[i] = y;
    }
    double med, mn;
    bu_time_dispatches(dev, n_disp, rec_add, &k, &med, &mn);
    float *out = read_floats(dev, &k.a, 0, k.n);
    double e = bu_nmse(out, ref, k.n);
    char shape[64];
    snprintf(shape, sizeof shape, "n=%u x tok=%u, in place", n_embd, n_tok);
    bu_report("add", shape, call, k.n, med, mn, e);
    check_or_die("add", shape, e, 0.0);
    vkllm_buffer_free(dev, &k.a); vkllm_buffer_free(dev, &k.b);
    free(a0); free(b0); free(ref); free(out);
}

/* ---- embedding lookup from a Q4_K table ---- */
typedef struct {
    vkllm_buffer table, ids, out, status;
    uint32_t n_vocab, n_embd, n_tok, copies;
    int force_u32;
    uint64_t ids_bytes, out_bytes;
} embed_case;
static void rec_embed(vkllm_chain *c, uint32_t i, void *u)
{
    embed_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_embed_args a = { { k->table, 0 }, { k->ids, i * k->ids_bytes }, { k->out, j * k->out_bytes }, { k->status, 0 },
                           VKLLM_DTYPE_Q4_K, k->n_vocab, k->n_embd, k->n_tok, k->n_embd, k->force_u32, 0, NULL };
    if (vkllm_op_embed(c, &a)) exit(1);
}

static void bench_embed(vkllm_device *dev, uint32_t n_vocab, uint32_t n_embd, uint32_t n_tok, int force_u32)
{
    const vkllm_features *f = vkllm_device_features(dev);
    uint64_t row_bytes = (uint64_t)n_embd / 256 * 144, tb = row_bytes * n_vocab;
    while (tb > f->max_storage_buffer_range) { /* lavapipe: 128 MiB */
        n_vocab /= 2;
        tb = row_bytes * n_vocab;
    }
    embed_case k = { .n_vocab = n_vocab, .n_embd = n_embd, .n_tok = n_tok, .force_u32 = force_u32 };
    uint64_t call = (row_bytes + (uint64_t)n_embd * 4 + 4) * n_tok;
    k.ids_bytes = bu_round256((uint64_t)n_tok * 4);
    k.out_bytes = bu_round256((uint64_t)n_embd * n_tok * 4);
    uint32_t n_disp;
    bu_plan(call, &k.copies, &n_disp);
    /* the table: random codes, fp16 scales in [2^-14, 1) (no inf/NaN), uploaded in pieces */
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, (tb + 3) / 4 * 4, &k.table));
    const uint64_t piece_rows = 4096;
    uint8_t *host = malloc(piece_rows * row_bytes), *row0 = malloc(row_bytes);
    if (!host || !row0) bu_die(dev, "out of memory");
    for (uint64_t r0 = 0; r0 < n_vocab; r0 += piece_rows) {
        uint64_t nr = n_vocab - r0 < piece_rows ? n_vocab - r0 : piece_rows;
        for (uint64_t i = 0; i < nr * row_bytes; i += 8) {
            uint64_t v = bu_next_u64();
            memcpy(host + i, &v, 8);
        }
        for (uint64_t b = 0; b < nr * row_bytes / 144; b++) {
            uint8_t *q = host + b * 144;
            for (int s = 0; s < 2; s++) {
                uint16_t h = (uint16_t)((bu_next_u64() & 0x3ff) | ((1 + bu_next_u64() % 14) << 10));
                q[2 * s] = (uint8_t)h;
                q[2 * s + 1] = (uint8_t)(h >> 8);
            }
        }
        BU_CK(dev, vkllm_buffer_write(dev, &k.table, r0 * row_bytes, host, nr * row_bytes));
    }
    /* fresh random ids for every dispatch: rows come from memory, not from L2 */
    uint64_t n_ids = (uint64_t)n_disp * k.ids_bytes / 4;
    int32_t *ids = malloc(n_ids * 4);
    if (!ids) bu_die(dev, "out of memory");
    for (uint64_t i = 0; i < n_ids; i++) ids[i] = (int32_t)(bu_next_u64() % n_vocab);
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, n_ids * 4, &k.ids));
    BU_CK(dev, vkllm_buffer_write(dev, &k.ids, 0, ids, n_ids * 4));
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, k.out_bytes * k.copies, &k.out));
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 256, &k.status));
    BU_CK(dev, vkllm_buffer_fill(dev, &k.status, 0, 256, 0));
    double med, mn;
    bu_time_dispatches(dev, n_disp, rec_embed, &k, &med, &mn);
    /* copy 0 of the output was last written by the last dispatch i with i % copies == 0 */
    uint32_t last = (n_disp - 1) / k.copies * k.copies;
    float *out = read_floats(dev, &k.out, 0, (size_t)n_embd * n_tok), *ref = malloc((size_t)n_embd * n_tok * 4);
    int32_t *lid = ids + (uint64_t)last * k.ids_bytes / 4;
    uint64_t wrong = 0;
    for (uint32_t t = 0; t < n_tok; t++) {
        BU_CK(dev, vkllm_buffer_read(dev, &k.table, (uint64_t)lid[t] * row_bytes, row0, row_bytes));
        vkllm_dequantize(VKLLM_DTYPE_Q4_K, row0, ref + (size_t)t * n_embd, n_embd);
    }
    for (size_t i = 0; i < (size_t)n_embd * n_tok; i++) /* fma-contraction bound of test_embed */
        wrong += !(fabsf(out[i] - ref[i]) <= ldexpf(fabsf(ref[i]) + 63.0f, -23));
    uint32_t st[2];
    BU_CK(dev, vkllm_buffer_read(dev, &k.status, 0, st, 8));
    wrong += st[0];
    char shape[96];
    snprintf(shape, sizeof shape, "q4_K %ux%u, tok=%u", n_vocab, n_embd, n_tok);
    double e = (double)wrong / ((double)n_embd * n_tok);
    int u16 = vkllm_device_features(dev)->storage_16bit && !force_u32;
    bu_report(u16 ? "embed_u16" : "embed", shape, call, 0, med, mn, e);
    check_or_die("embed", shape, e, 0.0);
    vkllm_buffer_free(dev, &k.table); vkllm_buffer_free(dev, &k.ids); vkllm_buffer_free(dev, &k.out);
    vkllm_buffer_free(dev, &k.status);
    free(host); free(row0); free(ids); free(out); free(ref);
}

/* ---- argmax and top-k over one vocab-sized row of logits ---- */
typedef struct {
    vkllm_buffer x, out, vals, scratch;
    uint32_t n, rows, k, copies;
    uint64_t x_bytes, out_bytes, scratch_bytes;
} sel_case;
static void rec_argmax(vkllm_chain *c, uint32_t i, void *u)
{
    sel_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_argmax_args a = { { k->x, j * k->x_bytes }, { k->out, j * k->out_bytes }, { k->scratch, j * k->scratch_bytes }, k->n, k->rows,
                            k->n, NULL };
    if (vkllm_op_argmax(c, &a)) exit(1);
}
static void rec_topk(vkllm_chain *c, uint32_t i, void *u)
{
    sel_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_topk_args a = { { k->x, j * k->x_bytes }, { k->vals, j * k->out_bytes }, { k->out, j * k->out_bytes },
                          { k->scratch, j * k->scratch_bytes }, k->n, k->rows, k->n, k->k, NULL };
    if (vkllm_op_topk(c, &a)) exit(1);
}

static void bench_select(vkllm_device *dev, uint32_t n, uint32_t rows, uint32_t topk)
{
    sel_case k = { .n = n, .rows = rows, .k = topk };
    uint32_t per_row = topk ? topk : 1;
    uint64_t call = (uint64_t)n * rows * 4 + (uint64_t)rows * per_row * (topk ? 8 : 4);
    k.x_bytes = bu_round256((uint64_t)n * rows * 4);
    k.out_bytes = bu_round256((uint64_t)rows * per_row * 4);
    k.scratch_bytes = bu_round256(topk ? vkllm_topk_scratch_bytes(n, rows, topk) : vkllm_argmax_scratch_bytes(n, rows));
    uint32_t n_disp;
    bu_plan(call, &k.copies, &n_disp);
    k.x = bu_random_buffer(dev, k.x_bytes * k.copies);
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, k.out_bytes * k.copies, &k.out));
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, k.out_bytes * k.copies, &k.vals));
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, k.scratch_bytes * k.copies, &k.scratch));
    double med, mn;
    double m3[3], n3[3]; /* the two dispatches, then the call's span */
    bu_time_calls(dev, n_disp, 2, topk ? rec_topk : rec_argmax, &k, m3, n3);
    med = m3[2];
    mn = n3[2];
    float *x = read_floats(dev, &k.x, 0, (size_t)n * rows);
    uint32_t *oi = malloc((size_t)rows * per_row * 4), *ri = malloc((size_t)rows * per_row * 4);
    float *ov = malloc((size_t)rows * per_row * 4), *rv = malloc((size_t)rows * per_row * 4);
    BU_CK(dev, vkllm_buffer_read(dev, &k.out, 0, oi, (uint64_t)rows * per_row * 4));
    uint64_t wrong = 0;
    if (topk) {
        BU_CK(dev, vkllm_buffer_read(dev, &k.vals, 0, ov, (uint64_t)rows * per_row * 4));
        vkllm_ref_topk(x, n, rows, n, topk, rv, ri);
        for (size_t i = 0; i < (size_t)rows * topk; i++) wrong += oi[i] != ri[i] || memcmp(&ov[i], &rv[i], 4) != 0;
    } else {
        vkllm_ref_argmax(x, n, rows, n, ri);
        for (uint32_t r = 0; r < rows; r++) wrong += oi[r] != ri[r];
    }
    char shape[64];
    if (topk) snprintf(shape, sizeof shape, "n=%u rows=%u k=%u", n, rows, topk);
    else snprintf(shape, sizeof shape, "n=%u rows=%u", n, rows);
    double e = (double)wrong / ((double)rows * per_row);
    bu_report(topk ? "topk" : "argmax", shape, call, 0, med, mn, e);
    check_or_die(topk ? "topk" : "argmax", shape, e, 0.0);
    vkllm_buffer_free(dev, &k.x); vkllm_buffer_free(dev, &k.out); vkllm_buffer_free(dev, &k.vals);
    vkllm_buffer_free(dev, &k.scratch);
    free(x); free(oi); free(ri); free(ov); free(rv);
}

/* ---- --latency: the fixed cost of a dispatch in a chain (no timestamps: wall time of whole
 * replays of n dispatches, submit and wait included once per replay). Dependent dispatches
 * (in-place adds on one vector: the chain puts a barrier before each) against independent ones
 * (each its own slice: no barrier, so they may overlap). On the H100 (docs/BENCHMARKS.md): 2.35 us
 * per dependent dispatch, 0.19 us per independent one; a barrier covering the compute stage only
 * (instead of compute + transfer) measured the same, so the chain keeps its one barrier kind. */
static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}
static void bench_latency(vkllm_device *dev, uint32_t n_elems, int dependent)
{
    const uint32_t n = bu_quick ? 50 : 2000;
    const uint64_t bytes = bu_round256((uint64_t)n_elems * 4);
    vkllm_buffer a = bu_random_buffer(dev, bytes * (dependent ? 1 : n)), b = bu_random_buffer(dev, bytes);
    vkllm_chain *c;
    BU_CK(dev, vkllm_chain_create(dev, NULL, &c));
    BU_CK(dev, vkllm_chain_begin(c));
    for (uint32_t i = 0; i < n; i++) {
        uint64_t o = dependent ? 0 : i * bytes;
        vkllm_add_args x = { { a, o }, { b, 0 }, { a, o }, n_elems, NULL };
        BU_CK(dev, vkllm_op_add(c, &x));
    }
    BU_CK(dev, vkllm_chain_end(c));
    double t[9];
    for (int r = 0; r < 2; r++) BU_CK(dev, vkllm_chain_run(c)); /* warm-up */
    for (int r = 0; r < 9; r++) {
        double t0 = now_ns();
        BU_CK(dev, vkllm_chain_run(c));
        t[r] = now_ns() - t0;
    }
    for (int i = 0; i < 9; i++) /* median of 9 */
        for (int j = i + 1; j < 9; j++)
            if (t[j] < t[i]) { double x = t[i]; t[i] = t[j]; t[j] = x; }
    char shape[96];
    snprintf(shape, sizeof shape, "%u floats, %u dispatches, %s", n_elems, n, dependent ? "dependent (barriers)" : "independent (no barrier)");
    bu_report("add (latency per dispatch)", shape, 12ull * n_elems, n_elems, t[4] / n, t[0] / n, 0.0);
    vkllm_chain_destroy(c);
    vkllm_buffer_free(dev, &a);
    vkllm_buffer_free(dev, &b);
}

int main(int argc, char **argv)
{
    int latency = 0, n = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--latency")) latency = 1;
        else argv[n++] = argv[i];
    }
    argc = n;
    vkllm_device *dev = bu_open(argc, argv, "bench-misc");
    if (latency) {
        static const uint32_t sizes[] = { 256, 5120, 1u << 20 };
        for (int i = 0; i < 3; i++) {
            bench_latency(dev, sizes[i], 1);
            if (sizes[i] < (1u << 20)) bench_latency(dev, sizes[i], 0);
        }
        bu_close(dev);
        return 0;
    }
    bu_measure_ceiling(dev);
    bench_swiglu(dev, 17920, 1);
    bench_swiglu(dev, 17920, bu_quick ? 16 : 512);
    bench_add(dev, 5120, 1);
    bench_add(dev, 5120, bu_quick ? 16 : 512);
    bench_embed(dev, bu_quick ? 8192 : 100352, 5120, 1, 0);
    bench_embed(dev, bu_quick ? 8192 : 100352, 5120, bu_quick ? 16 : 512, 0);
    bench_embed(dev, bu_quick ? 8192 : 100352, 5120, bu_quick ? 16 : 512, 1); /* the portable uint32 decoder */
    bench_select(dev, 100352, 1, 0);
    bench_select(dev, 100352, 4, 0);
    bench_select(dev, 100352, 1, 40);
    bench_select(dev, 100352, 4, 40);
    bu_close(dev);
    return 0;
}
