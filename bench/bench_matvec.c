/* Microbenchmark of the decode mat-vec (kernels/matvec.comp) at Phi-4 shapes in every weight type,
 * against the streaming-read ceiling measured in the same run; method in benchutil.h.
 * Bytes counted: the weight bytes only (x and y are a few KB next to MBs of weights), so "of read
 * ceiling" says how close the kernel streams its weights to the device's read bandwidth.
 * Every dispatch writes the same y (weights and x rotate through copies): the chain then puts a
 * barrier between consecutive dispatches, as in a decode chain where each mat-vec depends on the
 * op before it. With a y per copy the dispatches ran concurrently and each one's timestamps
 * spanned its neighbours' work too (durations inflated by the overlap, bimodal medians: 61 us for
 * a 14 MB Q4_K matrix on the H100 at c8eabe4, 395 us median vs 104 us min for gate_up).
 *   bench-matvec [common flags] [--sweep]
 *     --fresh  allocates each case's buffers anew (default: kept and grown; see reuse())
 *     --diag   also times a streaming read of each case's own weight copies (same rotation)
 *     --sweep  instead times rows-per-group x k-split x lanes-per-group (x staged or direct for the
 *              2-byte-aligned types) variants at seven shapes, each on the same data, to choose the
 *              defaults in runtime/ops_matvec.c for a device.
 *     --q8     instead times the 8-bit activation mat-vec (kernels/matvec_q8.comp) at the Phi-4 decode
 *              shapes with their prologues (qkv Q5_K + RMSNorm, o Q4_K, gate_up Q4_K + RMSNorm, down
 *              Q6_K + SwiGLU, output Q6_K + RMSNorm), each next to the float kernel on the same
 *              weights, over rows per workgroup x lanes per row x rows per lane (the first row of
 *              each shape is the default choice); checked against vkllm_ref_matvec_q8 (NMSE <= 1e-5,
 *              the bound of tests/gpu/test_matvec_q8.c). Weights bytes only are counted, as above.
 *              Each shape also times x quantized once (quant_q8 + matvec_q8x, vkllm_matvec_q8_args.xq,
 *              the session's act_q8_global path) at the default shape: rows "quant_q8 ..." (the small
 *              dispatch alone, its own bytes), "matvec_q8x_..." (the mat-vec alone) and "quant_q8 +
 *              matvec_q8x_..." (first start to second end of each pair, the barrier between them
 *              included; weight bytes, to compare with the prologue row "matvec_q8_... (default)").
 *     --q8-defaults  as --q8 with the default shape only (with and without prefetch, and quantized once).
 *     --q8x    as --q8 over launch shapes of the quantized-once path (matvec_q8x) only. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "vkllm/ops_matvec.h"
#include "vkllm/quant.h"
#include "vkllm/ref.h"
#include "vkllm/ref_matvec.h"

typedef struct {
    vkllm_device *dev;
    vkllm_buffer w, x, y;
    vkllm_dtype type;
    uint32_t n_out, n_in, n_vec, copies, rps, ks, lanes, stage;
    uint64_t w_stride, x_stride_b, y_stride_b; /* bytes between copies */
    /* --q8: prologue, tuning, the RMSNorm gain; x vectors are x_elems apart (2 n_in for SwiGLU) */
    uint32_t pro, q_rows, q_rpl, q_lanes, q_variant, x_elems;
    vkllm_buffer g;
    vkllm_buffer xq; /* --q8, quantized once: vkllm_q8_act_bytes(n_in, n_vec) (one, L2-resident as in a decode step) */
} mv_case;

/* --q8 variant bit (this file's, not the op's): x quantized once by quant_q8, then matvec_q8 reading xq */
#define XQ_ONCE 0x100u

static void rec_mvq8(vkllm_chain *c, uint32_t i, void *u)
{
    mv_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_matvec_q8_args a = { .w = { k->w, j * k->w_stride }, .type = k->type, .n_out = k->n_out, .n_in = k->n_in,
                               .x = { k->x, j * k->x_stride_b }, .y = { k->y, 0 }, .n_vec = k->n_vec, .x_stride = k->x_elems,
                               .y_stride = k->n_out, .prologue = k->pro, .norm = { k->g, 0 }, .eps = 1e-5f,
                               .up_offset = k->pro == VKLLM_MVQ_SWIGLU ? k->n_in : 0, .rows_per_wg = k->q_rows,
                               .rows_per_lane = k->q_rpl, .lanes_per_row = k->q_lanes, .variant = k->q_variant };
    if (vkllm_op_matvec_q8(c, &a)) bu_die(k->dev, "vkllm_op_matvec_q8");
}

/* a pair: quant_q8 of copy j's x into xq, then the mat-vec reading it */
static void rec_xq(vkllm_chain *c, uint32_t i, void *u)
{
    mv_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_quantize_q8_args q = { .x = { k->x, j * k->x_stride_b }, .out = { k->xq, 0 }, .n_in = k->n_in, .n_vec = k->n_vec,
                                 .x_stride = k->x_elems, .prologue = k->pro, .norm = { k->g, 0 }, .eps = 1e-5f,
                                 .up_offset = k->pro == VKLLM_MVQ_SWIGLU ? k->n_in : 0 };
    if (vkllm_op_quantize_q8(c, &q)) bu_die(k->dev, "vkllm_op_quantize_q8");
    vkllm_matvec_q8_args a = { .w = { k->w, j * k->w_stride }, .type = k->type, .n_out = k->n_out, .n_in = k->n_in,
                               .y = { k->y, 0 }, .n_vec = k->n_vec, .y_stride = k->n_out, .rows_per_wg = k->q_rows,
                               .rows_per_lane = k->q_rpl, .lanes_per_row = k->q_lanes, .variant = k->q_variant & ~XQ_ONCE,
                               .xq = { k->xq, 0 } };
    if (vkllm_op_matvec_q8(c, &a)) bu_die(k->dev, "vkllm_op_matvec_q8 (xq)");
}


static void rec_mv(vkllm_chain *c, uint32_t i, void *u)
{
    mv_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_matvec_args a = { .w = { k->w, j * k->w_stride }, .type = k->type, .n_out = k->n_out, .n_in = k->n_in,
                            .x = { k->x, j * k->x_stride_b }, .y = { k->y, 0 }, .n_vec = k->n_vec,
                            .x_stride = k->n_in, .y_stride = k->n_out, .rows_per_group = k->rps, .k_split = k->ks,
                            .lanes_per_group = k->lanes, .stage = k->stage };
    if (vkllm_op_matvec(c, &a)) bu_die(k->dev, "vkllm_op_matvec");
}

/* The streaming read of the same weight copies in the same rotation (a row per case with --diag):
 * tells a slow kernel from slow memory placement of this case's buffers. */
typedef struct { mv_case *k; vkllm_buffer dst; } rd_case;
static void rec_rd(vkllm_chain *c, uint32_t i, void *u)
{
    rd_case *r = u;
    uint32_t j = i % r->k->copies;
    vkllm_view s = { r->k->w, j * r->k->w_stride }, d = { r->dst, 0 };
    if (vkllm_op_stream_read(c, s, vkllm_matvec_weight_bytes(r->k->type, r->k->n_out, r->k->n_in) & ~255ull, d))
        bu_die(r->k->dev, "vkllm_op_stream_read");
}

/* A pool of quantized blocks from random normals (a random scale per block), 1 Mi elements. */
#define POOL_ELEMS (1u << 20)
static uint8_t *make_pool(vkllm_dtype t, size_t *unit_bytes, size_t *n_units)
{
    size_t be = vkllm_dtype_block_elems(t), bb = vkllm_dtype_block_bytes(t);
    if (be == 1) { /* float types: 64-element chunks */
        be = 64;
        bb *= 64;
    }
    float *src = malloc(POOL_ELEMS * 4);
    uint8_t *pool = malloc(POOL_ELEMS / be * bb);
    if (!src || !pool) bu_die(NULL, "out of memory");
    for (size_t b = 0; b < POOL_ELEMS / be; b++) {
        float s = 0.02f + 0.05f * (float)(bu_next_u64() % 1000) / 1000.0f;
        for (size_t i = 0; i < be; i++) src[b * be + i] = s * bu_normal();
    }
    if (vkllm_quantize(t, src, pool, POOL_ELEMS)) bu_die(NULL, "vkllm_quantize");
    free(src);
    *unit_bytes = bb;
    *n_units = POOL_ELEMS / be;
    return pool;
}

static int sweep, diag, fresh, q8, q8_defaults, q8x;

/* --q8: the dispatches again until ms have passed before each timing (bu_time_dispatches warms up
 * with one run). On the H100 the SM clock falls to 345-465 MHz while the host uploads (commit
 * 5174a4a, bench-attn) and a run of a few ms does not bring it back: the first sweep of matvec_q8
 * measured the same variant 2.5x apart within one run. */
static void warm(vkllm_device *dev, uint32_t n, bu_record_fn record, void *user, double ms)
{
    if (bu_quick) return;
    vkllm_chain *c;
    BU_CK(dev, vkllm_chain_create(dev, NULL, &c));
    BU_CK(dev, vkllm_chain_begin(c));
    for (uint32_t i = 0; i < n; i++) record(c, i, user);
    BU_CK(dev, vkllm_chain_end(c));
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    do {
        BU_CK(dev, vkllm_chain_run(c));
        clock_gettime(CLOCK_MONOTONIC, &w1);
    } while ((double)(w1.tv_sec - w0.tv_sec) * 1e3 + (w1.tv_nsec - w0.tv_nsec) / 1e6 < ms);
    vkllm_chain_destroy(c);
}

/* Buffers kept from case to case (grown when a case needs more), unless --fresh. With buffers
 * allocated per case the same kernel, variant and shape measured up to 5x apart between cases on
 * the H100 (Q8_0 5120x5120 at 7% of the read ceiling in one case, 33% in another). Keeping them did
 * not remove the swings (Q4_K 5120x5120: 28% in one run, 12.5% in the next, same binary); the cause
 * is open. Compare variants inside one case (--sweep), not across runs. */
static vkllm_buffer keep[3];
static uint64_t keep_size[3];
static vkllm_buffer reuse(vkllm_device *dev, int i, uint64_t need)
{
    vkllm_buffer b;
    if (fresh) {
        BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, need, &b));
        return b;
    }
    if (need > keep_size[i]) {
        if (keep_size[i]) vkllm_buffer_free(dev, &keep[i]);
        uint64_t sz = 2 * keep_size[i] > need ? 2 * keep_size[i] : need, cap = vkllm_device_features(dev)->max_allocation_size;
        if (sz > cap) sz = cap;
        BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, sz, &keep[i]));
        keep_size[i] = sz;
    }
    return keep[i];
}
static void release(vkllm_device *dev, vkllm_buffer *b)
{
    if (fresh) vkllm_buffer_free(dev, b);
}

/* Tuning variants timed on the same data: (rows per group, k split, lanes per group, stage); 0 = auto. */
typedef struct { uint32_t rps, ks, lanes, stage; } tuning;
static const tuning auto_tuning[] = { { 0, 0, 0, 0 } };
/* --q8 variants: (rows per workgroup, rows per lane, lanes per row); 0 = the op's choice */
typedef struct { uint32_t rows, rpl, lanes, variant; } q8_tuning;
static const q8_tuning *q8_tv;
static size_t q8_n_tv;
static uint32_t q8_pro;

static void bench_case(vkllm_device *dev, const char *what, vkllm_dtype t, uint32_t n_out, uint32_t n_in, uint32_t n_vec,
                       const tuning *tv, size_t n_tv)
{
    const vkllm_features *f = vkllm_device_features(dev);
    uint64_t wbytes = vkllm_matvec_weight_bytes(t, n_out, n_in);
    char shape[96];
    snprintf(shape, sizeof shape, "%s %ux%u %s n_vec=%u", what, n_out, n_in, vkllm_dtype_name(t), n_vec);
    if (wbytes > f->max_storage_buffer_range) {
        printf("| matvec_%s | %s | skipped: %.0f MiB of weights exceed maxStorageBufferRange (%.0f MiB) |||||||\n",
               vkllm_dtype_name(t), shape, wbytes / 1048576.0, f->max_storage_buffer_range / 1048576.0);
        return;
    }
    mv_case k = { .dev = dev, .type = t, .n_out = n_out, .n_in = n_in, .n_vec = n_vec };
    k.pro = q8_pro;
    k.x_elems = q8_pro == VKLLM_MVQ_SWIGLU ? 2 * n_in : n_in;
    k.w_stride = bu_round256(wbytes + 16);
    k.x_stride_b = bu_round256((uint64_t)k.x_elems * n_vec * 4);
    k.y_stride_b = bu_round256((uint64_t)n_out * n_vec * 4);
    uint32_t n_disp;
    bu_plan(wbytes, &k.copies, &n_disp);
    if ((uint64_t)k.copies * k.w_stride > f->max_allocation_size) k.copies = (uint32_t)(f->max_allocation_size / k.w_stride);
    if (k.copies < 1) {
        printf("| matvec_%s | %s | skipped: weights exceed maxMemoryAllocationSize |||||||\n", vkllm_dtype_name(t), shape);
        return;
    }
    /* the last dispatch uses copy 0 (the one checked against the reference) */
    n_disp = (n_disp + k.copies - 1) / k.copies * k.copies + 1;
    /* weights: pool units at random places, copy 0 kept on the host for the check */
    size_t ub, nu;
    uint8_t *pool = make_pool(t, &ub, &nu);
    uint8_t *w0 = malloc(k.w_stride);
    const uint64_t chunk = 16ull << 20;
    uint8_t *tmp = malloc(chunk);
    if (!w0 || !tmp) bu_die(dev, "out of memory");
    k.w = reuse(dev, 0, k.w_stride * k.copies);
    uint64_t units = wbytes / ub, per_chunk = chunk / ub;
    for (uint32_t j = 0; j < k.copies; j++)
        for (uint64_t u0 = 0; u0 < units; u0 += per_chunk) {
            uint64_t n = units - u0 < per_chunk ? units - u0 : per_chunk;
            for (uint64_t u = 0; u < n; u += 8) { /* runs of 8 units from a random place */
                uint64_t m = n - u < 8 ? n - u : 8, from = bu_next_u64() % (nu - 8);
                memcpy(tmp + u * ub, pool + from * ub, m * ub);
            }
            BU_CK(dev, vkllm_buffer_write(dev, &k.w, j * k.w_stride + u0 * ub, tmp, n * ub));
            if (j == 0) memcpy(w0 + u0 * ub, tmp, n * ub);
        }
    free(tmp);
    free(pool);
    k.x = reuse(dev, 1, k.x_stride_b * k.copies);
    {
        float *xs = malloc(k.x_stride_b * k.copies);
        if (!xs) bu_die(dev, "out of memory");
        for (uint64_t i = 0; i < k.x_stride_b * k.copies / 4; i++) xs[i] = bu_normal();
        BU_CK(dev, vkllm_buffer_write(dev, &k.x, 0, xs, k.x_stride_b * k.copies));
        free(xs);
    }
    k.y = reuse(dev, 2, k.y_stride_b);
    size_t nx = (size_t)k.x_elems * n_vec, ny = (size_t)n_out * n_vec;
    float *x = malloc(nx * 4), *out = malloc(ny * 4), *ref = malloc(ny * 4);
    if (!x || !out || !ref) bu_die(dev, "out of memory");
    BU_CK(dev, vkllm_buffer_read(dev, &k.x, 0, x, nx * 4));
    if (vkllm_ref_matvec(t, w0, n_out, n_in, x, k.x_elems, ref, n_out, NULL, 0, n_vec)) bu_die(dev, "vkllm_ref_matvec");
    vkllm_matvec_args a = { .type = t, .n_out = n_out, .n_in = n_in, .n_vec = n_vec };
    uint64_t flops;
    vkllm_matvec_cost(&a, NULL, &flops);
    if (diag) {
        rd_case rc = { &k, { 0 } };
        BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 4096, &rc.dst));
        double med, mn;
        if (q8) warm(dev, n_disp, rec_rd, &rc, 1000);
        bu_time_dispatches(dev, n_disp, rec_rd, &rc, &med, &mn);
        bu_report("stream_read of these weights", shape, wbytes & ~255ull, 0, med, mn, 0.0);
        vkllm_buffer_free(dev, &rc.dst);
    }
    for (size_t vi = 0; vi < n_tv; vi++) {
        k.rps = tv[vi].rps;
        k.ks = tv[vi].ks;
        k.lanes = tv[vi].lanes;
        k.stage = tv[vi].stage;
        if (k.stage && t != VKLLM_DTYPE_Q6_K && t != VKLLM_DTYPE_Q8_0 && t != VKLLM_DTYPE_Q4_0) continue;
        BU_CK(dev, vkllm_buffer_fill(dev, &k.y, 0, k.y_stride_b, 0x7FC00000u));
        double med, mn;
        if (q8) warm(dev, n_disp, rec_mv, &k, diag ? 200 : 1000);
        bu_time_dispatches(dev, n_disp, rec_mv, &k, &med, &mn);
        /* correctness of what was timed: copy 0 against the reference */
        BU_CK(dev, vkllm_buffer_read(dev, &k.y, 0, out, ny * 4));
        double e = bu_nmse(out, ref, ny);
        char kname[64];
        if (k.rps || k.ks || k.lanes || k.stage)
            snprintf(kname, sizeof kname, "matvec_%s r%u k%u l%u%s", vkllm_dtype_name(t), k.rps, k.ks, k.lanes,
                     k.stage == 1 ? " direct" : "");
        else
            snprintf(kname, sizeof kname, "matvec_%s", vkllm_dtype_name(t));
        bu_report(kname, shape, wbytes, flops, med, mn, e);
        /* the bound of tests/gpu/test_matvec.c: the reference dequantizes the same bytes */
        if (!(e <= 1e-9)) {
            fprintf(stderr, "bench-matvec: %s %s is WRONG (NMSE %.3e)\n", kname, shape, e);
            exit(1);
        }
    }
    if (q8_n_tv) {
        if (!vkllm_matvec_q8_supported(dev, t, n_in, n_vec)) {
            printf("| matvec_q8_%s | %s | skipped: not supported on this device |||||||\n", vkllm_dtype_name(t), shape);
        } else {
            float *gh = malloc((size_t)n_in * 4), *qref = malloc(ny * 4);
            if (!gh || !qref) bu_die(dev, "out of memory");
            k.g = bu_random_buffer(dev, (uint64_t)n_in * 4);
            BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, vkllm_q8_act_bytes(n_in, n_vec), &k.xq));
            BU_CK(dev, vkllm_buffer_read(dev, &k.g, 0, gh, (uint64_t)n_in * 4));
            if (vkllm_ref_matvec_q8(t, w0, n_out, n_in, x, k.x_elems, k.pro, gh, 1e-5f, n_in, qref, n_out, NULL, 0, n_vec))
                bu_die(dev, "vkllm_ref_matvec_q8");
            static const char *pn[] = { "", " +rmsnorm", " +swiglu" };
            /* the list twice, the second time backwards: the spread between the two timings of a
             * variant shows the run-to-run noise (large on the H100, see docs/BENCHMARKS.md) */
            size_t n_rounds = q8_n_tv > 1 ? 2 : 1;
            for (size_t ri = 0; ri < n_rounds * q8_n_tv; ri++) {
                size_t vi = ri < q8_n_tv ? ri : 2 * q8_n_tv - 1 - ri;
                k.q_rows = q8_tv[vi].rows;
                k.q_rpl = q8_tv[vi].rpl;
                k.q_lanes = q8_tv[vi].lanes;
                k.q_variant = q8_tv[vi].variant;
                if (k.q_lanes > f->subgroup_size) continue;
                { /* a variant the op refuses (workgroup too large, shared memory) is reported, not fatal */
                    vkllm_chain *tc;
                    BU_CK(dev, vkllm_chain_create(dev, NULL, &tc));
                    BU_CK(dev, vkllm_chain_begin(tc));
                    vkllm_matvec_q8_args ta = { .w = { k.w, 0 }, .type = t, .n_out = n_out, .n_in = n_in, .x = { k.x, 0 }, .y = { k.y, 0 },
                                                .n_vec = n_vec, .x_stride = k.x_elems, .y_stride = n_out, .prologue = k.pro,
                                                .norm = { k.g, 0 }, .up_offset = k.pro == VKLLM_MVQ_SWIGLU ? n_in : 0, .rows_per_wg = k.q_rows,
                                                .rows_per_lane = k.q_rpl, .lanes_per_row = k.q_lanes, .variant = k.q_variant & ~XQ_ONCE };
                    if (k.q_variant & XQ_ONCE) ta.xq = (vkllm_view){ k.xq, 0 };
                    vkllm_status st = vkllm_op_matvec_q8(tc, &ta);
                    vkllm_chain_end(tc);
                    vkllm_chain_destroy(tc);
                    if (st) {
                        printf("| matvec_q8_%s w%u r%u l%u | %s | refused: %s |||||||\n", vkllm_dtype_name(t), k.q_rows, k.q_rpl, k.q_lanes, shape,
                               vkllm_device_error(dev));
                        continue;
                    }
                }
                BU_CK(dev, vkllm_buffer_fill(dev, &k.y, 0, k.y_stride_b, 0x7FC00000u));
                double med, mn;
                if (k.q_variant & XQ_ONCE) {
                    double pm[3], pn3[3];
                    warm(dev, n_disp, rec_xq, &k, 200);
                    bu_time_calls(dev, n_disp, 2, rec_xq, &k, pm, pn3); /* quant, mat-vec, pair */
                    BU_CK(dev, vkllm_buffer_read(dev, &k.y, 0, out, ny * 4));
                    double e = bu_nmse(out, qref, ny);
                    vkllm_quantize_q8_args qa = { .n_in = n_in, .n_vec = n_vec, .prologue = k.pro };
                    uint64_t qbytes, qflops;
                    vkllm_quantize_q8_cost(&qa, &qbytes, &qflops);
                    char kname[96];
                    snprintf(kname, sizeof kname, "quant_q8%s", pn[k.pro]);
                    bu_report(kname, shape, qbytes, 0, pm[0], pn3[0], 0.0);
                    if (k.q_rows || k.q_rpl || k.q_lanes)
                        snprintf(kname, sizeof kname, "matvec_q8x_%s w%u r%u l%u%s", vkllm_dtype_name(t), k.q_rows, k.q_rpl, k.q_lanes,
                                 k.q_variant & VKLLM_MVQ_NO_PREFETCH ? " nopf" : "");
                    else
                        snprintf(kname, sizeof kname, "matvec_q8x_%s (default)%s", vkllm_dtype_name(t), k.q_variant & VKLLM_MVQ_NO_PREFETCH ? " nopf" : "");
                    bu_report(kname, shape, wbytes, flops, pm[1], pn3[1], e);
                    snprintf(kname, sizeof kname, "quant_q8%s + matvec_q8x_%s (pair)", pn[k.pro], vkllm_dtype_name(t));
                    bu_report(kname, shape, wbytes, flops, pm[2], pn3[2], e);
                    if (!(e <= 1e-5)) {
                        fprintf(stderr, "bench-matvec: quant_q8 + matvec_q8x_%s %s is WRONG (NMSE %.3e)\n", vkllm_dtype_name(t), shape, e);
                        exit(1);
                    }
                    continue;
                }
                warm(dev, n_disp, rec_mvq8, &k, 200);
                bu_time_dispatches(dev, n_disp, rec_mvq8, &k, &med, &mn);
                BU_CK(dev, vkllm_buffer_read(dev, &k.y, 0, out, ny * 4));
                double e = bu_nmse(out, qref, ny);
                char kname[80];
                if (k.q_rows || k.q_rpl || k.q_lanes)
                    snprintf(kname, sizeof kname, "matvec_q8_%s%s w%u r%u l%u%s", vkllm_dtype_name(t), pn[k.pro], k.q_rows, k.q_rpl, k.q_lanes,
                             k.q_variant ? " nopf" : "");
                else
                    snprintf(kname, sizeof kname, "matvec_q8_%s%s (default%s)", vkllm_dtype_name(t), pn[k.pro], k.q_variant ? ", nopf" : "");
                bu_report(kname, shape, wbytes, flops, med, mn, e);
                if (!(e <= 1e-5)) { /* tests/gpu/test_matvec_q8.c says why not 1e-8: codes flipped at rounding edges */
                    fprintf(stderr, "bench-matvec: %s %s is WRONG (NMSE %.3e)\n", kname, shape, e);
                    exit(1);
                }
            }
            vkllm_buffer_free(dev, &k.g);
            vkllm_buffer_free(dev, &k.xq);
            free(gh); free(qref);
        }
    }
    release(dev, &k.w); release(dev, &k.x); release(dev, &k.y);
    free(w0); free(x); free(out); free(ref);
}

int main(int argc, char **argv)
{
    /* our own flag out of the way of bu_open's */
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--sweep")) sweep = 1;
        else if (!strcmp(argv[i], "--diag")) diag = 1;
        else if (!strcmp(argv[i], "--fresh")) fresh = 1;
        else if (!strcmp(argv[i], "--q8")) q8 = 1;
        else if (!strcmp(argv[i], "--q8-defaults")) q8 = q8_defaults = 1;
        else if (!strcmp(argv[i], "--q8x")) q8 = q8x = 1;
        else argv[n++] = argv[i];
    }
    vkllm_device *dev = bu_open(n, argv, "bench-matvec");
    bu_measure_ceiling(dev);
    /* Phi-4 (14B): d_model 5120, QKV 7680, FFN 17920, vocab 100352 */
    static const struct { const char *what; uint32_t n_out, n_in; } shapes[] = {
        { "qkv", 7680, 5120 }, { "o", 5120, 5120 }, { "gate_up", 35840, 5120 }, { "down", 5120, 17920 }, { "output", 100352, 5120 },
    };
    static const vkllm_dtype types[] = { VKLLM_DTYPE_Q4_K, VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K, VKLLM_DTYPE_Q8_0,
                                         VKLLM_DTYPE_Q4_0, VKLLM_DTYPE_F16,  VKLLM_DTYPE_BF16, VKLLM_DTYPE_F32 };
    const uint32_t div = bu_quick ? 16 : 1; /* --quick: a sixteenth of the rows */
    if (q8) {
        /* Phi-4 decode mat-vecs with the prologue each would fuse */
        static const struct { const char *what; vkllm_dtype t; uint32_t n_out, n_in, pro; } qs[] = {
            { "qkv", VKLLM_DTYPE_Q5_K, 7680, 5120, VKLLM_MVQ_RMSNORM },       { "o", VKLLM_DTYPE_Q4_K, 5120, 5120, VKLLM_MVQ_NONE },
            { "gate_up", VKLLM_DTYPE_Q4_K, 35840, 5120, VKLLM_MVQ_RMSNORM }, { "down", VKLLM_DTYPE_Q6_K, 5120, 17920, VKLLM_MVQ_SWIGLU },
            { "output", VKLLM_DTYPE_Q6_K, 100352, 5120, VKLLM_MVQ_RMSNORM },  { "o", VKLLM_DTYPE_Q8_0, 5120, 5120, VKLLM_MVQ_NONE },
            { "o", VKLLM_DTYPE_Q4_0, 5120, 5120, VKLLM_MVQ_NONE },
        };
        /* the default, without prefetch, and the shapes that led in the first H100 sweep (rows per
         * workgroup 4..64 x rows per lane 1/2/4 x lanes 8/16/32: 1 or 2 rows per lane, 256 invocations) */
        static const q8_tuning all_tv[] = { { 0, 0, 0, 0 },  { 0, 0, 0, VKLLM_MVQ_NO_PREFETCH }, { 0, 0, 0, XQ_ONCE }, { 8, 1, 32, 0 }, { 16, 1, 16, 0 },
                                            { 16, 1, 32, 0 }, { 16, 2, 32, 0 }, { 32, 2, 16, 0 }, { 32, 1, 32, 0 },
                                            { 64, 2, 8, 0 }, { 64, 2, 16, 0 } };
        /* --q8x: x quantized once (quant_q8 + matvec_q8x) over launch shapes: without the shared x
         * of the prologue, small workgroups fit many per SM */
        static const q8_tuning x_tv[] = { { 0, 0, 0, XQ_ONCE },  { 0, 0, 0, XQ_ONCE | VKLLM_MVQ_NO_PREFETCH }, { 0, 0, 0, 0 },
                                          { 8, 1, 32, XQ_ONCE }, { 4, 1, 32, XQ_ONCE },  { 4, 2, 16, XQ_ONCE },  { 8, 2, 32, XQ_ONCE },
                                          { 16, 2, 32, XQ_ONCE }, { 8, 4, 16, XQ_ONCE }, { 16, 4, 8, XQ_ONCE },  { 8, 1, 16, XQ_ONCE },
                                          { 16, 2, 16, XQ_ONCE }, { 2, 1, 32, XQ_ONCE } };
        const q8_tuning *tv = q8x ? x_tv : all_tv;
        size_t n_tv = q8x ? sizeof x_tv / sizeof x_tv[0] : bu_quick || q8_defaults ? 3 : sizeof all_tv / sizeof all_tv[0];
        q8_tv = tv;
        q8_n_tv = n_tv;
        for (size_t s = 0; s < sizeof qs / sizeof qs[0]; s++) {
            q8_pro = qs[s].pro;
            bench_case(dev, qs[s].what, qs[s].t, qs[s].n_out / div, qs[s].n_in, 1, auto_tuning, 1);
        }
        q8_n_tv = 0;
        q8_pro = 0;
        /* a few vectors at once, default shape only */
        static const q8_tuning def[] = { { 0, 0, 0, 0 }, { 0, 0, 0, XQ_ONCE } };
        q8_tv = def;
        q8_n_tv = 2;
        q8_pro = VKLLM_MVQ_RMSNORM;
        bench_case(dev, "gate_up", VKLLM_DTYPE_Q4_K, 35840 / div, 5120, 4, auto_tuning, 1);
        q8_n_tv = 0;
        q8_pro = 0;
    }
    if (!sweep && !q8) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
                bench_case(dev, shapes[s].what, types[t], shapes[s].n_out / div, shapes[s].n_in, 1, auto_tuning, 1);
        /* a few vectors at once (speculative or batched decode) */
        bench_case(dev, "gate_up", VKLLM_DTYPE_Q4_K, 35840 / div, 5120, 4, auto_tuning, 1);
        bench_case(dev, "gate_up", VKLLM_DTYPE_Q4_K, 35840 / div, 5120, 8, auto_tuning, 1);
        bench_case(dev, "down", VKLLM_DTYPE_Q6_K, 5120 / div, 17920, 4, auto_tuning, 1);
        bench_case(dev, "qkv", VKLLM_DTYPE_Q5_K, 7680 / div, 5120, 8, auto_tuning, 1);
    }
    if (sweep) {
        static const struct { const char *what; vkllm_dtype t; uint32_t n_out, n_in, n_vec; } sw[] = {
            { "qkv", VKLLM_DTYPE_Q5_K, 7680, 5120, 1 }, { "o", VKLLM_DTYPE_Q4_K, 5120, 5120, 1 },
            { "gate_up", VKLLM_DTYPE_Q4_K, 35840, 5120, 1 }, { "down", VKLLM_DTYPE_Q6_K, 5120, 17920, 1 },
            { "output", VKLLM_DTYPE_Q6_K, 100352, 5120, 1 }, { "o", VKLLM_DTYPE_Q8_0, 5120, 5120, 1 },
            { "o", VKLLM_DTYPE_F16, 5120, 5120, 1 }, { "gate_up", VKLLM_DTYPE_Q4_K, 35840, 5120, 4 },
            { "qkv", VKLLM_DTYPE_Q5_K, 7680, 5120, 8 }, { "down", VKLLM_DTYPE_Q6_K, 5120, 17920, 4 },
        };
        /* lanes 0 = groups of 8; lanes = the subgroup size is one subgroup per row group, the
         * mapping of a plain "subgroup per row" mat-vec, for comparison */
        const uint32_t sg = vkllm_device_features(dev)->subgroup_size;
        tuning tv[48];
        size_t n_tv = 0;
        static const uint32_t rpss[] = { 1, 2, 4, 8 }, kss[] = { 1, 2, 4, 8 };
        for (size_t i = 0; i < 4; i++)
            for (size_t j = 0; j < 4; j++) {
                tv[n_tv++] = (tuning){ rpss[i], kss[j], 8 <= sg ? 8 : sg, 0 };
                tv[n_tv++] = (tuning){ rpss[i], kss[j], sg, 0 };
                if (i == 1) { /* Q6_K/Q8_0 direct (no shared-memory staging), for comparison (others skip it) */
                    tv[n_tv++] = (tuning){ rpss[i], kss[j], 8 <= sg ? 8 : sg, 1 };
                    tv[n_tv++] = (tuning){ rpss[i], kss[j], sg, 1 };
                }
            }
        for (size_t s = 0; s < sizeof sw / sizeof sw[0]; s++) bench_case(dev, sw[s].what, sw[s].t, sw[s].n_out / div, sw[s].n_in, sw[s].n_vec, tv, n_tv);
    }
    for (int i = 0; i < 3; i++)
        if (keep_size[i]) vkllm_buffer_free(dev, &keep[i]);
    bu_close(dev);
    return 0;
}
