/* vkllm profile: per-kernel GPU time of a prefill and of decode steps, with the bytes and FLOPs each
 * kernel must move and do, the fraction of the device's read ceiling and matrix rate measured in the
 * same run, the step totals (GPU busy, gaps between dispatches, host time), and optionally a Chrome
 * trace (GPU and CPU timelines) with an SVG chart next to it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "trace.h"
#include "vkllm/ops.h"
#include "vkllm/ops_gemm.h"

#define MAX_KSTATS 256

typedef struct kstat {
    char name[64];    /* the dispatch name without its layer prefix, e.g. "attn_qkv.q5_K" */
    char kernel[48];  /* the pipeline's kernel, e.g. "matvec" */
    uint32_t calls;
    double ns;
    uint64_t bytes, flops;
} kstat;

/* What one phase (the prefill, or all decode steps) adds up to. */
typedef struct phase {
    kstat *k;
    int nk;
    uint32_t steps;
    double span_ns;   /* first dispatch start to last end, summed over steps */
    double busy_ns;   /* union of the dispatch intervals (overlapping dispatches counted once) */
    double sum_ns;    /* sum of dispatch times */
    double host_ns;   /* host: parameters + vkQueueSubmit (vkllm_session_host_time) */
    double wall_ns;   /* host: the session call from entry to return (waiting included) */
    trace_chart chart;
} phase;

static const char *strip_layer(const char *n)
{
    if (n[0] == 'L' && n[1] >= '0' && n[1] <= '9') {
        const char *dot = strchr(n, '.');
        if (dot) return dot + 1;
    }
    return n;
}

static int by_time(const void *a, const void *b)
{
    const kstat *x = a, *y = b;
    return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : 0;
}

static int by_start(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0;
}

/* Streaming-read ceiling on this device, GB/s (the bench's stream_read kernel over 1 GiB). */
static double read_ceiling(vkllm_device *dev)
{
    const vkllm_features *f = vkllm_device_features(dev);
    uint64_t bytes = 1ull << 30;
    if (bytes > f->max_storage_buffer_range) bytes = f->max_storage_buffer_range / 256 * 256;
    if (bytes > f->device_local_budget / 8) bytes = f->device_local_budget / 8 / 256 * 256;
    vkllm_buffer src, dst;
    if (vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, bytes, &src)) return 0;
    if (vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 4096, &dst)) {
        vkllm_buffer_free(dev, &src);
        return 0;
    }
    vkllm_buffer_fill(dev, &src, 0, bytes, 0x3f8ccccdu); /* not zeros */
    vkllm_chain_options o = { .timestamps = 1, .label = "profile: read ceiling" };
    vkllm_chain *c;
    double best = 0;
    if (!vkllm_chain_create(dev, &o, &c)) {
        vkllm_view s = { src, 0 }, d = { dst, 0 };
        if (!vkllm_chain_begin(c)) {
            for (int i = 0; i < 10; i++) vkllm_op_stream_read(c, s, bytes, d);
            vkllm_chain_end(c);
            for (int r = 0; r < 2; r++) vkllm_chain_run(c);
            const vkllm_timing *t;
            uint32_t n;
            if (!vkllm_chain_timings(c, &t, &n))
                for (uint32_t i = 0; i < n; i++)
                    if (bytes / t[i].duration_ns > best) best = bytes / t[i].duration_ns;
        }
        vkllm_chain_destroy(c);
    }
    vkllm_buffer_free(dev, &src);
    vkllm_buffer_free(dev, &dst);
    return best;
}

/* Matrix rate, TFLOP/s: the best of 8 F16-weight GEMMs (the cooperative-matrix kernel where the
 * device has one, else the portable one) at a prefill-sized shape; a CPU device gets a small shape so
 * the measurement stays under a second. *desc says which path and shape. 0 if it could not run. */
static double matrix_rate(vkllm_device *dev, char *desc, size_t desc_n)
{
    const vkllm_features *f = vkllm_device_features(dev);
    uint32_t m = f->cpu ? 64 : 512, n = f->cpu ? 512 : 8192, k = f->cpu ? 512 : 8192;
    const char *kern = NULL;
    int cm = vkllm_gemm_uses_coopmat(dev, VKLLM_DTYPE_F16, k, &kern);
    snprintf(desc, desc_n, "F16 GEMM %ux%ux%u, %s", m, n, k, cm ? "cooperative matrix" : "portable kernel");
    vkllm_buffer w, x, y;
    double best = 0;
    if (vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 2ull * n * k, &w)) return 0;
    if (vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 4ull * m * k, &x)) {
        vkllm_buffer_free(dev, &w);
        return 0;
    }
    if (vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 4ull * m * n, &y)) {
        vkllm_buffer_free(dev, &w);
        vkllm_buffer_free(dev, &x);
        return 0;
    }
    /* W = 1.0 (fp16 pairs), X = 0.01: sums stay far inside fp16 range, nothing is zero */
    vkllm_buffer_fill(dev, &w, 0, w.size, 0x3c003c00u);
    vkllm_buffer_fill(dev, &x, 0, x.size, 0x3c23d70au);
    vkllm_chain_options o = { .timestamps = 1, .label = "profile: matrix rate" };
    vkllm_chain *c;
    if (!vkllm_chain_create(dev, &o, &c)) {
        vkllm_gemm_args a = { .w = { w, 0 }, .type = VKLLM_DTYPE_F16, .n_out = n, .n_in = k, .x = { x, 0 }, .y = { y, 0 },
                              .m = m, .x_stride = k, .y_stride = n, .name = "matrix_rate" };
        int ok = !vkllm_chain_begin(c);
        for (int i = 0; i < 8 && ok; i++) ok = !vkllm_op_gemm(c, &a);
        if (ok) ok = !vkllm_chain_end(c);
        for (int r = 0; r < 2 && ok; r++) ok = !vkllm_chain_run(c);
        const vkllm_timing *t;
        uint32_t nt;
        if (ok && !vkllm_chain_timings(c, &t, &nt))
            for (uint32_t i = 0; i < nt; i++)
                if (t[i].duration_ns > 0 && 2.0 * m * n * k / t[i].duration_ns / 1e3 > best)
                    best = 2.0 * m * n * k / t[i].duration_ns / 1e3;
        vkllm_chain_destroy(c);
    }
    vkllm_buffer_free(dev, &w);
    vkllm_buffer_free(dev, &x);
    vkllm_buffer_free(dev, &y);
    return best;
}

static void add(phase *p, const vkllm_timing *t, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const char *nm = strip_layer(t[i].name), *kn = t[i].kernel ? t[i].kernel : "";
        int j = 0;
        while (j < p->nk && (strcmp(p->k[j].name, nm) || strcmp(p->k[j].kernel, kn))) j++;
        if (j == p->nk) {
            if (p->nk == MAX_KSTATS) continue;
            memset(&p->k[j], 0, sizeof p->k[j]);
            snprintf(p->k[j].name, sizeof p->k[j].name, "%s", nm);
            snprintf(p->k[j].kernel, sizeof p->k[j].kernel, "%s", kn);
            p->nk++;
        }
        p->k[j].calls++;
        p->k[j].ns += t[i].duration_ns;
        p->k[j].bytes += t[i].bytes;
        p->k[j].flops += t[i].flops;
    }
}

/* Span and busy time (union of intervals) of one step; 0 on out of memory (then busy = sum). */
static void span_busy(const vkllm_timing *t, uint32_t n, double *span, double *busy, double *sum)
{
    *span = *busy = *sum = 0;
    if (!n) return;
    double *iv = malloc(2 * sizeof(double) * n);
    double lo = t[0].start_ns, hi = t[0].start_ns + t[0].duration_ns;
    for (uint32_t i = 0; i < n; i++) {
        *sum += t[i].duration_ns;
        if (t[i].start_ns < lo) lo = t[i].start_ns;
        if (t[i].start_ns + t[i].duration_ns > hi) hi = t[i].start_ns + t[i].duration_ns;
        if (iv) {
            iv[2 * i] = t[i].start_ns;
            iv[2 * i + 1] = t[i].start_ns + t[i].duration_ns;
        }
    }
    *span = hi - lo;
    if (!iv) {
        *busy = *sum < *span ? *sum : *span;
        return;
    }
    qsort(iv, n, 2 * sizeof(double), by_start);
    double a = iv[0], b = iv[1];
    for (uint32_t i = 1; i < n; i++) {
        if (iv[2 * i] > b) {
            *busy += b - a;
            a = iv[2 * i];
            b = iv[2 * i + 1];
        } else if (iv[2 * i + 1] > b) {
            b = iv[2 * i + 1];
        }
    }
    *busy += b - a;
    free(iv);
}

static void table(const char *title, phase *p, double ceiling, double mrate)
{
    qsort(p->k, (size_t)p->nk, sizeof *p->k, by_time);
    const double steps = p->steps ? p->steps : 1;
    printf("\n%s\n\n", title);
    printf("| kernel | shader | calls/step | total us/step | mean us | share | MB/step | GB/s | of read ceiling | GFLOP/step "
           "| TFLOP/s | of matrix rate |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    /* The matrix rate bounds only kernels with enough FLOPs per byte to reach it: above a quarter of the
     * device's ridge point (matrix rate / read ceiling); below that the read ceiling is their bound. */
    double ridge = ceiling > 0 ? mrate * 1e3 / ceiling : 0;
    for (int i = 0; i < p->nk; i++) {
        const kstat *k = &p->k[i];
        double gbs = k->ns > 0 ? k->bytes / k->ns : 0, tfs = k->ns > 0 ? k->flops / k->ns / 1e3 : 0;
        char of_mr[16] = "-";
        if (mrate > 0 && ridge > 0 && k->flops > ridge / 4 * k->bytes) snprintf(of_mr, sizeof of_mr, "%.1f%%", 100 * tfs / mrate);
        printf("| %s | %s | %.4g | %.1f | %.2f | %.1f%% | %.3g | %.4g | %.1f%% | %.3g | %.3g | %s |\n", k->name, k->kernel,
               k->calls / steps, k->ns / steps / 1e3, k->calls ? k->ns / k->calls / 1e3 : 0, p->sum_ns > 0 ? 100 * k->ns / p->sum_ns : 0,
               k->bytes / steps / 1e6, gbs, ceiling > 0 ? 100 * gbs / ceiling : 0, k->flops / steps / 1e9, tfs, of_mr);
    }
    double span = p->span_ns / steps, busy = p->busy_ns / steps, host = p->host_ns / steps, wall = p->wall_ns / steps;
    printf("\nper step: GPU span %.3f ms (first dispatch start to last end); GPU busy %.3f ms (%.1f%%, overlapping dispatches "
           "counted once; sum of dispatch times %.3f ms); gaps between dispatches %.3f ms (%.1f%%)\n",
           span / 1e6, busy / 1e6, span > 0 ? 100 * busy / span : 0, p->sum_ns / steps / 1e6, (span - busy) / 1e6,
           span > 0 ? 100 * (span - busy) / span : 0);
    printf("per step: CPU prepare+submit %.1f us (parameters + vkQueueSubmit; the chain is recorded once, not per step), "
           "call to return %.3f ms (submit, wait, timestamp read-back)\n",
           host / 1e3, wall / 1e6);
}

/* Where the trace's clocks meet: with calibration, a GPU time maps to the host clock exactly (to the
 * driver's deviation); without, each step's GPU start is placed at its submit (approximate). */
typedef struct clockmap {
    int calibrated;
    double dev_ns, host_ns, origin_ns, max_dev_ns;
} clockmap;

static double now_ns(void) { return cli_now() * 1e9; }

/* Writes one step to the trace: GPU slices on the host clock, then the host's two slices. */
static int trace_step(trace_writer *w, vkllm_device *dev, clockmap *cm, const char *step, const vkllm_timing *t, uint32_t n,
                      double call0, double host, double call1)
{
    if (cm->origin_ns == 0) cm->origin_ns = call0; /* the trace starts at the first traced step */
    if (cm->calibrated) /* once per step: the two clocks may drift apart over a long run */
        cm->calibrated = !vkllm_device_calibrate(dev, &cm->dev_ns, &cm->host_ns, &cm->max_dev_ns);
    trace_slice *s = malloc((n ? n : 1) * sizeof *s);
    if (!s) return -1;
    for (uint32_t i = 0; i < n; i++) {
        double start = cm->calibrated ? t[i].device_ns - cm->dev_ns + cm->host_ns - cm->origin_ns
                                      : call0 + host - cm->origin_ns + t[i].start_ns;
        s[i] = (trace_slice){ t[i].name, t[i].kernel, start / 1e3, t[i].duration_ns / 1e3, t[i].bytes, t[i].flops };
    }
    char what[96];
    int r = trace_gpu_step(w, step, s, n);
    free(s);
    snprintf(what, sizeof what, "%s: prepare+submit", step);
    if (!r) r = trace_cpu_slice(w, what, (call0 - cm->origin_ns) / 1e3, host / 1e3);
    snprintf(what, sizeof what, "%s: wait+read-back", step);
    if (!r) r = trace_cpu_slice(w, what, (call0 + host - cm->origin_ns) / 1e3, (call1 - call0 - host) / 1e3);
    return r;
}

/* Records one finished step into the phase (table, totals, chart) and the trace. */
static int account(phase *p, vkllm_session *s, trace_writer *tw, vkllm_device *dev, clockmap *cm, const char *step, double call0,
                   double host, double call1)
{
    const vkllm_timing *t;
    uint32_t n;
    if (vkllm_session_timings(s, &t, &n)) return -1;
    add(p, t, n);
    double span, busy, sum;
    span_busy(t, n, &span, &busy, &sum);
    p->span_ns += span;
    p->busy_ns += busy;
    p->sum_ns += sum;
    p->host_ns += host;
    p->wall_ns += call1 - call0;
    p->steps++;
    for (uint32_t i = 0; i < n; i++)
        if (trace_chart_add(&p->chart, t[i].name, t[i].duration_ns / 1e3)) return -1;
    if (tw && trace_step(tw, dev, cm, step, t, n, call0, host, call1)) return -2;
    return 0;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

/* Profiling overhead: wall time per decode step (and of the prefill) of a session without timestamps
 * against sessions with them (start stamps at the compute stage, and at the top of the pipe), rounds
 * interleaved so drift (clocks, heat) hits all alike, and the order within a round rotating so none
 * always runs on another's warmed caches; medians. */
static int overhead(vkllm_model *m, const vkllm_session_options *base, const int32_t *toks, uint32_t depth, uint32_t np,
                    uint32_t ng, uint32_t rounds)
{
    enum { MODES = 3 };
    vkllm_session *s[MODES] = { NULL, NULL, NULL };
    double pf[MODES][32], dc[MODES][32];
    int rc = -1;
    if (rounds > 32) rounds = 32;
    for (int mode = 0; mode < MODES; mode++) {
        vkllm_session_options o = *base;
        o.timestamps = mode; /* 0 off, 1 compute-stage start stamps, 2 top-of-pipe start stamps */
        if (vkllm_session_create(m, &o, &s[mode])) goto out;
        if (depth && vkllm_session_prefill(s[mode], toks, depth, NULL)) goto out;
    }
    for (uint32_t r = 0; r <= rounds; r++) /* round 0 warms up (records the chains) */
        for (int k = 0; k < MODES; k++) {
            int mode = (k + (int)r) % MODES;
            vkllm_session *ss = s[mode];
            if (vkllm_session_rewind(ss, depth)) goto out;
            double t0 = now_ns();
            if (np && vkllm_session_prefill(ss, toks + depth, np, NULL)) goto out;
            double t1 = now_ns();
            int32_t tok = toks[depth], next;
            for (uint32_t i = 0; i < ng; i++, tok = next)
                if (vkllm_session_decode(ss, tok, NULL, &next, NULL)) goto out;
            double t2 = now_ns();
            if (r) {
                pf[mode][r - 1] = t1 - t0;
                dc[mode][r - 1] = ng ? (t2 - t1) / ng : 0;
            }
        }
    double p[MODES], d[MODES];
    for (int mode = 0; mode < MODES; mode++) {
        p[mode] = median(pf[mode], (int)rounds);
        d[mode] = median(dc[mode], (int)rounds);
    }
    printf("\nprofiling overhead (wall time, median of %u interleaved rounds; off = no timestamp queries recorded; on = a "
           "stamp before and after every dispatch, the start stamp at the compute stage (--stamps compute) or at the top "
           "of the pipe (--stamps top)):\n", rounds);
    printf("| step | profiling off | on, compute | change | on, top | change |\n|---|---:|---:|---:|---:|---:|\n");
    if (np)
        printf("| prefill of %u tokens | %.3f ms | %.3f ms | %+.2f%% | %.3f ms | %+.2f%% |\n", np, p[0] / 1e6, p[1] / 1e6,
               p[0] > 0 ? 100 * (p[1] / p[0] - 1) : 0, p[2] / 1e6, p[0] > 0 ? 100 * (p[2] / p[0] - 1) : 0);
    if (ng)
        printf("| decode step | %.3f ms | %.3f ms | %+.2f%% | %.3f ms | %+.2f%% |\n", d[0] / 1e6, d[1] / 1e6,
               d[0] > 0 ? 100 * (d[1] / d[0] - 1) : 0, d[2] / 1e6, d[0] > 0 ? 100 * (d[2] / d[0] - 1) : 0);
    rc = 0;
out:
    for (int mode = 0; mode < MODES; mode++) vkllm_session_destroy(s[mode]);
    return rc;
}

/* out.json -> out.svg (or out.trace -> out.trace.svg) */
static void svg_path(const char *trace, char *out, size_t n)
{
    size_t len = strlen(trace);
    if (len >= 5 && !strcmp(trace + len - 5, ".json")) snprintf(out, n, "%.*s.svg", (int)(len - 5), trace);
    else snprintf(out, n, "%s.svg", trace);
}

int cmd_profile(int argc, char **argv)
{
    const char *cmd = "profile", *model = NULL, *device = NULL, *trace = NULL;
    uint32_t np = 512, ng = 64, depth = 0, rounds = 0;
    int stamps = 1;
    for (int i = 1; i < argc; i += 2) { /* every option but --help takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: vkllm profile [-m model.gguf] [-p 512] [-n 64] [--depth N] [--trace out.json] [--overhead R]\n"
                   "                     [--stamps compute|top] [--device D]\n"
                   "Times every dispatch of a prefill of -p tokens and of -n decode steps (a timestamp query before and\n"
                   "after each) and prints per kernel: calls, GPU time, share, bytes and FLOPs, GB/s and TFLOP/s, and the\n"
                   "fractions of the read ceiling and of the matrix rate measured in the same run; then the step totals:\n"
                   "GPU span and busy time, gaps between dispatches, host prepare+submit time.\n"
                   "  --trace F     Chrome trace-event JSON (Perfetto, chrome://tracing): GPU timeline (steps, layers,\n"
                   "                one slice per dispatch) and host timeline on calibrated clocks where the device\n"
                   "                has VK_EXT_calibrated_timestamps; also an SVG chart of time per kernel family and\n"
                   "                layer next to it (F with .svg for .json)\n"
                   "  --stamps S    where the start stamp of each dispatch is written: 'compute' (default: once every\n"
                   "                earlier dispatch is done; exact durations) or 'top' (top of the pipe: waits for\n"
                   "                nothing, cheaper; a duration then includes the dispatch's wait on earlier work)\n"
                   "  --overhead R  also time R interleaved rounds of the same prefill and decode steps with profiling\n"
                   "                off (no queries recorded) and on (both --stamps), and print the change in wall time\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "vkllm profile: unknown option or missing value: '%s' (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-p")) ok = cli_u32(cmd, "-p", v, 0, 1u << 16, &np);
        else if (!strcmp(a, "-n")) ok = cli_u32(cmd, "-n", v, 0, 1u << 16, &ng);
        else if (!strcmp(a, "--depth")) ok = cli_u32(cmd, "--depth", v, 0, 1u << 24, &depth);
        else if (!strcmp(a, "--overhead")) ok = cli_u32(cmd, "--overhead", v, 1, 32, &rounds);
        else if (!strcmp(a, "--trace")) trace = v;
        else if (!strcmp(a, "--stamps")) {
            if (!strcmp(v, "compute")) stamps = 1;
            else if (!strcmp(v, "top")) stamps = 2;
            else {
                fprintf(stderr, "vkllm profile: --stamps needs 'compute' or 'top', not '%s'\n", v);
                return 2;
            }
        }
        else if (!strcmp(a, "--device")) device = v;
        else {
            fprintf(stderr, "vkllm profile: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) return 2;
    }
    char builtin[4096];
    if (!model && !(model = cli_builtin_model(builtin, sizeof builtin))) return 1;
    int rc = 1;
    FILE *tf = NULL;
    trace_writer tw;
    char svg[4096];
    if (trace) {
        svg_path(trace, svg, sizeof svg);
        if (!(tf = fopen(trace, "w"))) {
            fprintf(stderr, "vkllm profile: cannot write the trace '%s'\n", trace);
            return 1;
        }
    }
    vkllm_device *dev = cli_open_device(cmd, device);
    if (!dev) {
        if (tf) fclose(tf);
        return 1;
    }
    const vkllm_features *f = vkllm_device_features(dev);
    if (f->timestamp_period_ns <= 0) {
        fprintf(stderr, "vkllm profile: '%s' has no timestamps on its compute queue\n", f->name);
        if (tf) fclose(tf);
        vkllm_device_destroy(dev);
        return 1;
    }
    uint32_t n_ctx = depth + np + ng + 1;
    if (n_ctx < 256) n_ctx = 256;
    vkllm_model *m = cli_load_model(cmd, dev, model, n_ctx);
    vkllm_session *s = NULL;
    int32_t *toks = NULL;
    phase ph[2];
    memset(ph, 0, sizeof ph);
    ph[0].k = calloc(MAX_KSTATS, sizeof(kstat));
    ph[1].k = calloc(MAX_KSTATS, sizeof(kstat));
    if (!m || !ph[0].k || !ph[1].k) goto done;
    const vkllm_phi3_hparams *hp = vkllm_model_hparams(m);
    if (n_ctx > hp->n_ctx_train) {
        fprintf(stderr, "vkllm profile: %u tokens exceed the model's context of %u\n", n_ctx, hp->n_ctx_train);
        goto done;
    }
    char mdesc[96];
    double ceiling = read_ceiling(dev), mrate = matrix_rate(dev, mdesc, sizeof mdesc);
    vkllm_session_options so = { .n_ctx = n_ctx, .max_batch = np ? np : 1, .timestamps = stamps };
    double t_create = now_ns();
    if (vkllm_session_create(m, &so, &s)) goto fail;
    t_create = now_ns() - t_create;
    toks = malloc(4ull * (depth + np + 1));
    if (!toks) goto done;
    for (uint32_t i = 0; i < depth + np + 1; i++) toks[i] = (int32_t)((i * 2654435761u) % hp->n_vocab);
    printf("model %s on %s (%s); start stamps at the %s\n", model, f->name, f->driver_info,
           stamps == 2 ? "top of the pipe (durations include waits on earlier work)" : "compute stage");
    printf("read ceiling %.4g GB/s (stream_read, measured now); matrix rate %.4g TFLOP/s (%s, best of 8, measured now)\n",
           ceiling, mrate, mdesc);

    clockmap cm = { 0 };
    cm.calibrated = !vkllm_device_calibrate(dev, &cm.dev_ns, &cm.host_ns, &cm.max_dev_ns);
    if (tf && trace_begin(&tw, tf, f->name)) goto werr;
    if (depth && vkllm_session_prefill(s, toks, depth, NULL)) goto fail;
    double h0, h1, c0, c1, t_first_prefill = 0, t_first_decode = 0;
    int r;
    if (np) {
        c0 = now_ns();
        if (vkllm_session_prefill(s, toks + depth, np, NULL)) goto fail; /* warm-up; records the chain */
        t_first_prefill = now_ns() - c0;
        if (vkllm_session_rewind(s, depth)) goto fail;
        vkllm_session_host_time(s, &h0, NULL, 0);
        c0 = now_ns();
        if (vkllm_session_prefill(s, toks + depth, np, NULL)) goto fail;
        c1 = now_ns();
        vkllm_session_host_time(s, &h1, NULL, 0);
        if ((r = account(&ph[0], s, tf ? &tw : NULL, dev, &cm, "prefill", c0, h1 - h0, c1)) == -2) goto werr;
        if (r) goto fail;
    }
    if (ng) {
        int32_t tok = toks[depth], next;
        c0 = now_ns();
        if (vkllm_session_decode(s, tok, NULL, &next, NULL)) goto fail; /* warm-up */
        t_first_decode = now_ns() - c0;
        for (uint32_t i = 0; i < ng; i++) {
            tok = next;
            char step[32];
            snprintf(step, sizeof step, "decode %u", i);
            vkllm_session_host_time(s, &h0, NULL, 0);
            c0 = now_ns();
            if (vkllm_session_decode(s, tok, NULL, &next, NULL)) goto fail;
            c1 = now_ns();
            vkllm_session_host_time(s, &h1, NULL, 0);
            if ((r = account(&ph[1], s, tf ? &tw : NULL, dev, &cm, step, c0, h1 - h0, c1)) == -2) goto werr;
            if (r) goto fail;
        }
    }
    char title[160];
    if (np) {
        snprintf(title, sizeof title, "prefill of %u tokens at depth %u", np, depth);
        table(title, &ph[0], ceiling, mrate);
    }
    if (ng) {
        snprintf(title, sizeof title, "decode, %u steps from depth %u (per step: the mean)", ng, depth + np + 1);
        table(title, &ph[1], ceiling, mrate);
    }
    printf("\nhost, once: session create %.1f ms (records the decode chain); first prefill %.1f ms (records its chain, "
           "then runs); first decode step %.1f ms\n",
           t_create / 1e6, t_first_prefill / 1e6, t_first_decode / 1e6);
    if (tf) {
        char other[1024], devname[512];
        trace_json_escape(devname, sizeof devname, f->name);
        snprintf(other, sizeof other,
                 "\"device\": \"%s\", \"clock\": \"%s\", \"max_deviation_ns\": %.0f, \"read_ceiling_gbs\": %.1f, "
                 "\"matrix_tflops\": %.3f, \"prompt_tokens\": %u, \"decode_steps\": %u, \"depth\": %u, \"start_stamps\": \"%s\"",
                 devname, cm.calibrated ? "calibrated (VK_EXT_calibrated_timestamps, CLOCK_MONOTONIC)" : "approximate (GPU step placed at its submit)",
                 cm.max_dev_ns, ceiling, mrate, np, ng, depth, stamps == 2 ? "top of pipe" : "compute stage");
        if (trace_end(&tw, other) || fclose(tf)) {
            tf = NULL;
            goto werr;
        }
        tf = NULL;
        /* the chart shows decode per step: divide the accumulated times by the step count */
        if (ph[1].steps)
            for (uint32_t i = 0; i < ph[1].chart.n_bars * ph[1].chart.cap_fam; i++) ph[1].chart.us[i] /= ph[1].steps;
        snprintf(ph[0].chart.title, sizeof ph[0].chart.title, "prefill of %u tokens: GPU time per layer and kernel family", np);
        snprintf(ph[1].chart.title, sizeof ph[1].chart.title, "decode step (mean of %u): GPU time per layer and kernel family", ng);
        trace_chart charts[2];
        uint32_t nc = 0;
        if (ph[0].steps) charts[nc++] = ph[0].chart;
        if (ph[1].steps) charts[nc++] = ph[1].chart;
        FILE *sf = fopen(svg, "w");
        if (!sf || trace_svg(sf, charts, nc) || fclose(sf)) {
            fprintf(stderr, "vkllm profile: cannot write the chart '%s'\n", svg);
            goto done;
        }
        printf("\ntrace: %s (open in https://ui.perfetto.dev or chrome://tracing; clock %s); chart: %s\n", trace,
               cm.calibrated ? "calibrated" : "approximate", svg);
    }
    vkllm_session_destroy(s); /* the overhead runs hold two sessions of their own */
    s = NULL;
    if (rounds && overhead(m, &so, toks, depth, np, ng, rounds)) goto fail;
    rc = 0;
    goto done;
werr:
    fprintf(stderr, "vkllm profile: writing the trace '%s' failed\n", trace);
    goto done;
fail:
    fprintf(stderr, "vkllm profile: %s\n", vkllm_device_error(dev));
done:
    if (tf) fclose(tf);
    free(toks);
    for (int i = 0; i < 2; i++) {
        free(ph[i].k);
        trace_chart_free(&ph[i].chart);
    }
    vkllm_session_destroy(s);
    vkllm_model_destroy(m);
    vkllm_device_destroy(dev);
    return rc;
}
