/* vkllm profile: per-kernel GPU time of a prefill and of decode steps (sampled timestamps by
 * default: each step stamps a rotating share of the dispatches), with the bytes and FLOPs each kernel
 * must move and do, the fraction of the device's read ceiling and matrix rate measured in the same
 * run, the step totals (GPU busy, gaps between dispatches, host time), and optionally a Chrome trace
 * (GPU and CPU timelines) with an SVG chart next to it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "trace.h"
#include "vkllm/ops.h"
#include "vkllm/ops_gemm.h"

#define MAX_KSTATS 256
#define DEFAULT_SAMPLE 8
#define DEFAULT_STAMPS VKLLM_STAMPS_COMPUTE /* with sampling: +0.7% on an H100 Phi-4 decode step, exact durations */

typedef struct kstat {
    char name[64];    /* the dispatch name without its layer prefix, e.g. "attn_qkv.q5_K" */
    char kernel[48];  /* the pipeline's kernel, e.g. "matvec" */
    uint32_t calls;   /* per step */
    double ns;        /* per step: the sum of its dispatches' mean times */
    uint64_t bytes, flops; /* per step */
} kstat;

/* One dispatch of a phase's chain over the phase's steps (the chain, so the list, is the same in
 * every step). With sampled timestamps a step times only a share of them, so every number per step
 * is built from each dispatch's mean over the steps that timed it. */
typedef struct dstat {
    char name[64], kernel[48];
    uint64_t bytes, flops;
    double ns;        /* sum of its timed durations */
    uint32_t timed;   /* steps that timed it */
} dstat;

/* What one phase (the prefill, or all decode steps) adds up to. */
typedef struct phase {
    dstat *d;
    uint32_t nd;
    uint32_t steps, full_steps; /* steps, and those that timed every dispatch */
    double span_ns;   /* the step's GPU span (vkllm_session_last_gpu_ns), summed over steps */
    double busy_ns;   /* union of the dispatch intervals (overlapping dispatches counted once), full steps */
    double sum_ns;    /* sum of dispatch times, full steps */
    double host_ns;   /* host: parameters + vkQueueSubmit (vkllm_session_host_time) */
    double wall_ns;   /* host: the session call from entry to return (waiting included) */
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

/* Runs a recorded chain at least twice and for at least 0.3 s, and returns the best work / duration
 * (per ns) over all its dispatches and runs. The time matters: the ceilings are measured right after
 * the model load left the GPU idle, and two runs (what this did before) measured 1.77 TB/s and 36-53
 * TFLOP/s in three of four H100 processes against 3.17 TB/s and 148 TFLOP/s in the fourth, while the
 * model's kernels ran at the same speed in all four: the clocks had not come up yet. */
static double best_rate(vkllm_chain *c, double work)
{
    double best = 0, t0 = cli_now();
    for (int r = 0; r < 500 && (r < 2 || cli_now() - t0 < 0.3); r++) {
        const vkllm_timing *t;
        uint32_t n;
        if (vkllm_chain_run(c) || vkllm_chain_timings(c, &t, &n)) break;
        for (uint32_t i = 0; i < n; i++)
            if (t[i].duration_ns > 0 && work / t[i].duration_ns > best) best = work / t[i].duration_ns;
    }
    return best;
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
            if (!vkllm_chain_end(c)) best = best_rate(c, (double)bytes);
        }
        vkllm_chain_destroy(c);
    }
    vkllm_buffer_free(dev, &src);
    vkllm_buffer_free(dev, &dst);
    return best;
}

/* Matrix rate, TFLOP/s: the best of 8 F16-weight GEMMs per run (the cooperative-matrix kernel where the
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
        if (ok) best = best_rate(c, 2.0 * m * n * k) / 1e3;
        vkllm_chain_destroy(c);
    }
    vkllm_buffer_free(dev, &w);
    vkllm_buffer_free(dev, &x);
    vkllm_buffer_free(dev, &y);
    return best;
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

/* Per-kernel rows from the dispatches' means (one row per dispatch name without its layer). */
static int kernel_rows(const phase *p, kstat *k, uint32_t *untimed)
{
    int nk = 0;
    *untimed = 0;
    for (uint32_t i = 0; i < p->nd; i++) {
        const dstat *d = &p->d[i];
        const char *nm = strip_layer(d->name);
        int j = 0;
        while (j < nk && (strcmp(k[j].name, nm) || strcmp(k[j].kernel, d->kernel))) j++;
        if (j == nk) {
            if (nk == MAX_KSTATS) continue;
            memset(&k[j], 0, sizeof k[j]);
            snprintf(k[j].name, sizeof k[j].name, "%s", nm);
            snprintf(k[j].kernel, sizeof k[j].kernel, "%s", d->kernel);
            nk++;
        }
        k[j].calls++;
        k[j].ns += d->timed ? d->ns / d->timed : 0;
        k[j].bytes += d->bytes;
        k[j].flops += d->flops;
        *untimed += !d->timed;
    }
    return nk;
}

static void table(const char *title, phase *p, kstat *k, double ceiling, double mrate)
{
    uint32_t untimed;
    int nk = kernel_rows(p, k, &untimed);
    qsort(k, (size_t)nk, sizeof *k, by_time);
    double sum = 0;
    for (int i = 0; i < nk; i++) sum += k[i].ns;
    const double steps = p->steps ? p->steps : 1;
    printf("\n%s\n\n", title);
    if (p->full_steps < p->steps) {
        uint32_t lo = UINT32_MAX, hi = 0;
        for (uint32_t i = 0; i < p->nd; i++) {
            if (p->d[i].timed < lo) lo = p->d[i].timed;
            if (p->d[i].timed > hi) hi = p->d[i].timed;
        }
        printf("sampled: each dispatch timed in %u to %u of the %u steps; the times are their means%s\n\n", lo, hi, p->steps,
               untimed ? " (some never timed: run more steps than --sample)" : "");
    }
    printf("| kernel | shader | calls/step | total us/step | mean us | share | MB/step | GB/s | of read ceiling | GFLOP/step "
           "| TFLOP/s | of matrix rate |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    /* The matrix rate bounds only kernels with enough FLOPs per byte to reach it: above a quarter of the
     * device's ridge point (matrix rate / read ceiling); below that the read ceiling is their bound. */
    double ridge = ceiling > 0 ? mrate * 1e3 / ceiling : 0;
    for (int i = 0; i < nk; i++) {
        const kstat *q = &k[i];
        double gbs = q->ns > 0 ? q->bytes / q->ns : 0, tfs = q->ns > 0 ? q->flops / q->ns / 1e3 : 0;
        char of_mr[16] = "-";
        if (mrate > 0 && ridge > 0 && q->flops > ridge / 4 * q->bytes) snprintf(of_mr, sizeof of_mr, "%.1f%%", 100 * tfs / mrate);
        printf("| %s | %s | %u | %.1f | %.2f | %.1f%% | %.3g | %.4g | %.1f%% | %.3g | %.3g | %s |\n", q->name, q->kernel, q->calls,
               q->ns / 1e3, q->calls ? q->ns / q->calls / 1e3 : 0, sum > 0 ? 100 * q->ns / sum : 0, q->bytes / 1e6, gbs,
               ceiling > 0 ? 100 * gbs / ceiling : 0, q->flops / 1e9, tfs, of_mr);
    }
    double span = p->span_ns / steps, host = p->host_ns / steps, wall = p->wall_ns / steps;
    if (p->full_steps == p->steps) {
        double busy = p->busy_ns / steps;
        printf("\nper step: GPU span %.3f ms (start to end of the step's work); GPU busy %.3f ms (%.1f%%, overlapping dispatches "
               "counted once; sum of dispatch times %.3f ms); gaps between dispatches %.3f ms (%.1f%%)\n",
               span / 1e6, busy / 1e6, span > 0 ? 100 * busy / span : 0, p->sum_ns / steps / 1e6, (span - busy) / 1e6,
               span > 0 ? 100 * (span - busy) / span : 0);
    } else { /* the means come from the steps that stamped each dispatch, with their stamps' cost; the span from all */
        printf("\nper step: GPU span %.3f ms (start to end of the step's work, every step); sum of the dispatches' means %.3f ms "
               "(%.1f%% of the span; each from the steps that stamped it, its stamps' cost included); gaps between dispatches: "
               "not measured when sampled (--sample 1 measures them)\n",
               span / 1e6, sum / 1e6, span > 0 ? 100 * sum / span : 0);
    }
    printf("per step: CPU prepare+submit %.1f us (parameters + vkQueueSubmit; the chain is recorded once, not per step), "
           "call to return %.3f ms (submit, wait, timestamp read-back)\n",
           host / 1e3, wall / 1e6);
}

/* The phase's chart: each dispatch's mean time, per layer and family. 0, or -1 out of memory. */
static int chart(const phase *p, trace_chart *c)
{
    for (uint32_t i = 0; i < p->nd; i++)
        if (p->d[i].timed && trace_chart_add(c, p->d[i].name, p->d[i].ns / p->d[i].timed / 1e3)) return -1;
    return 0;
}

/* Where the trace's clocks meet: with calibration, a GPU time maps to the host clock exactly (to the
 * driver's deviation); without, each step's GPU start is placed at its submit (approximate). */
typedef struct clockmap {
    int calibrated;
    double dev_ns, host_ns, origin_ns, max_dev_ns;
} clockmap;

static double now_ns(void) { return cli_now() * 1e9; }

/* Writes one step to the trace: the dispatches it timed as GPU slices on the host clock, the step
 * itself (with span stamps: from its start stamp over its GPU span, so a sampled step spans all of
 * its work), then the host's two slices. */
static int trace_step(trace_writer *w, vkllm_device *dev, clockmap *cm, const char *step, const vkllm_timing *t, uint32_t n,
                      int span_stamps, double gpu_ns, double call0, double host, double call1)
{
    if (cm->origin_ns == 0) cm->origin_ns = call0; /* the trace starts at the first traced step */
    if (cm->calibrated) /* once per step: the two clocks may drift apart over a long run */
        cm->calibrated = !vkllm_device_calibrate(dev, &cm->dev_ns, &cm->host_ns, &cm->max_dev_ns);
    trace_slice *s = malloc((n ? n : 1) * sizeof *s);
    if (!s) return -1;
    uint32_t m = 0;
    double b0 = 0, b1 = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!t[i].fresh) continue; /* an earlier step's time (sampled) */
        double start = cm->calibrated ? t[i].device_ns - cm->dev_ns + cm->host_ns - cm->origin_ns
                                      : call0 + host - cm->origin_ns + t[i].start_ns;
        if (span_stamps && !m) { /* start_ns counts from the step's start stamp */
            b0 = (start - t[i].start_ns) / 1e3;
            b1 = b0 + gpu_ns / 1e3;
        }
        s[m++] = (trace_slice){ t[i].name, t[i].kernel, start / 1e3, t[i].duration_ns / 1e3, t[i].bytes, t[i].flops };
    }
    char what[96];
    int r = trace_gpu_step_span(w, step, s, m, b0, b1, n);
    free(s);
    snprintf(what, sizeof what, "%s: prepare+submit", step);
    if (!r) r = trace_cpu_slice(w, what, (call0 - cm->origin_ns) / 1e3, host / 1e3);
    snprintf(what, sizeof what, "%s: wait+read-back", step);
    if (!r) r = trace_cpu_slice(w, what, (call0 + host - cm->origin_ns) / 1e3, (call1 - call0 - host) / 1e3);
    return r;
}

/* Records one finished step into the phase (per-dispatch sums, totals) and the trace. Returns 0, -1
 * (timings or memory), -2 (writing the trace); *all_timed: every dispatch of the phase has a time. */
static int account(phase *p, vkllm_session *s, trace_writer *tw, vkllm_device *dev, clockmap *cm, const char *step,
                   int span_stamps, double call0, double host, double call1, int *all_timed)
{
    const vkllm_timing *t;
    uint32_t n;
    if (vkllm_session_timings(s, &t, &n)) return -1;
    if (p->nd != n) { /* first step of the phase */
        dstat *d = calloc(n ? n : 1, sizeof *d);
        if (!d) return -1;
        free(p->d);
        p->d = d;
        p->nd = n;
        for (uint32_t i = 0; i < n; i++) {
            snprintf(d[i].name, sizeof d[i].name, "%s", t[i].name);
            snprintf(d[i].kernel, sizeof d[i].kernel, "%s", t[i].kernel ? t[i].kernel : "");
            d[i].bytes = t[i].bytes;
            d[i].flops = t[i].flops;
        }
    }
    uint32_t fresh = 0;
    *all_timed = 1;
    for (uint32_t i = 0; i < n; i++) {
        if (t[i].fresh) {
            p->d[i].ns += t[i].duration_ns;
            p->d[i].timed++;
            fresh++;
        }
        if (!p->d[i].timed) *all_timed = 0;
    }
    double gpu_ns = vkllm_session_last_gpu_ns(s);
    if (fresh == n) {
        double span, busy, sum;
        span_busy(t, n, &span, &busy, &sum);
        p->busy_ns += busy;
        p->sum_ns += sum;
        p->full_steps++;
    }
    p->span_ns += gpu_ns;
    p->host_ns += host;
    p->wall_ns += call1 - call0;
    p->steps++;
    if (tw && trace_step(tw, dev, cm, step, t, n, span_stamps, gpu_ns, call0, host, call1)) return -2;
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
 * against sessions with each kind of stamps, every dispatch and sampled, rounds interleaved so drift
 * (clocks, heat) hits all alike, and the order within a round rotating so none always runs on
 * another's warmed caches; medians. The first columns keep the layout bench/report.py reads. */
static int overhead(vkllm_model *m, const vkllm_session_options *base, const int32_t *toks, uint32_t depth, uint32_t np,
                    uint32_t ng, uint32_t rounds, uint32_t sample)
{
    enum { MODES = 6 };
    if (sample < 2) sample = DEFAULT_SAMPLE;
    const int mode_ts[MODES] = { 0, VKLLM_STAMPS_COMPUTE, VKLLM_STAMPS_TOP, VKLLM_STAMPS_END,
                                 VKLLM_STAMPS_SAMPLED(VKLLM_STAMPS_COMPUTE, (int)sample),
                                 VKLLM_STAMPS_SAMPLED(VKLLM_STAMPS_END, (int)sample) };
    vkllm_session *s[MODES] = { NULL };
    double pf[MODES][32], dc[MODES][32];
    int rc = -1;
    if (rounds > 32) rounds = 32;
    for (int mode = 0; mode < MODES; mode++) {
        vkllm_session_options o = *base;
        o.timestamps = mode_ts[mode];
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
    printf("\nprofiling overhead (wall time, median of %u interleaved rounds; off = no timestamp queries recorded; compute, "
           "top = a stamp before and after every dispatch, the start stamp at the compute stage or at the top of the pipe; "
           "end = one stamp after every dispatch; sampled = each step stamps the dispatches of one layer group in %u, "
           "compute or end stamps (--sample %u)):\n", rounds, sample, sample);
    printf("| step | profiling off | on, compute | change | on, top | change | on, end | change | sampled 1/%u, compute | change "
           "| sampled 1/%u, end | change |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n", sample, sample);
    for (int row = 0; row < 2; row++) {
        const double *v = row ? d : p;
        if (row ? !ng : !np) continue;
        char what[48];
        if (row) snprintf(what, sizeof what, "decode step");
        else snprintf(what, sizeof what, "prefill of %u tokens", np);
        printf("| %s | %.3f ms", what, v[0] / 1e6);
        for (int mode = 1; mode < MODES; mode++) printf(" | %.3f ms | %+.2f%%", v[mode] / 1e6, v[0] > 0 ? 100 * (v[mode] / v[0] - 1) : 0);
        printf(" |\n");
    }
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

static const char *stamps_desc(int kind)
{
    return kind == VKLLM_STAMPS_TOP   ? "a stamp before and after every dispatch, the start stamp at the top of the pipe "
                                        "(durations include waits on earlier work)"
           : kind == VKLLM_STAMPS_END ? "one stamp after every dispatch, a dispatch's start the previous one's end "
                                        "(durations include the barrier and launch before it)"
                                      : "a stamp before and after every dispatch, the start stamp at the compute stage";
}

int cmd_profile(int argc, char **argv)
{
    const char *cmd = "profile", *model = NULL, *device = NULL, *trace = NULL;
    uint32_t np = 512, ng = 64, depth = 0, rounds = 0, sample = DEFAULT_SAMPLE;
    int stamps = DEFAULT_STAMPS;
    for (int i = 1; i < argc; i += 2) { /* every option but --help takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: vkllm profile [-m model.gguf] [-p 512] [-n 64] [--depth N] [--trace out.json] [--overhead R]\n"
                   "                     [--stamps compute|top|end] [--sample K] [--device D]\n"
                   "Times every dispatch of a prefill of -p tokens and of -n decode steps with GPU timestamps and prints\n"
                   "per kernel: calls, GPU time, share, bytes and FLOPs, GB/s and TFLOP/s, and the fractions of the read\n"
                   "ceiling and of the matrix rate measured in the same run; then the step totals: GPU span and busy\n"
                   "time, gaps between dispatches, host prepare+submit time.\n"
                   "  --trace F     Chrome trace-event JSON (Perfetto, chrome://tracing): GPU timeline (steps, layers,\n"
                   "                one slice per timed dispatch) and host timeline on calibrated clocks where the device\n"
                   "                has VK_EXT_calibrated_timestamps; also an SVG chart of time per kernel family and\n"
                   "                layer next to it (F with .svg for .json)\n"
                   "  --stamps S    'compute': a stamp before and after each dispatch, the start stamp once every earlier\n"
                   "                dispatch is done (exact durations); 'top': the start stamp at the top of the pipe\n"
                   "                (waits for nothing; a duration includes the dispatch's wait on earlier work); 'end':\n"
                   "                one stamp after each dispatch, its start the previous one's end (a duration includes\n"
                   "                the barrier and launch before it). Default: %s\n"
                   "  --sample K    each step stamps the dispatches of one layer group in K (layers rotate), so a step\n"
                   "                pays about 1/K of the stamps and K steps time every dispatch once; the tables use\n"
                   "                each dispatch's mean, the prefill is run until every dispatch was timed. 1 = every\n"
                   "                dispatch in every step. Default %d, at most %d\n"
                   "  --overhead R  also time R interleaved rounds of the same prefill and decode steps with profiling\n"
                   "                off (no queries recorded) and on (every --stamps kind; sampled compute and end), and\n"
                   "                print the change in wall time\n",
                   DEFAULT_STAMPS == VKLLM_STAMPS_END ? "end" : "compute", DEFAULT_SAMPLE, VKLLM_STAMPS_MAX_REPLAYS);
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
        else if (!strcmp(a, "--sample")) ok = cli_u32(cmd, "--sample", v, 1, VKLLM_STAMPS_MAX_REPLAYS, &sample);
        else if (!strcmp(a, "--trace")) trace = v;
        else if (!strcmp(a, "--stamps")) {
            if (!strcmp(v, "compute")) stamps = VKLLM_STAMPS_COMPUTE;
            else if (!strcmp(v, "top")) stamps = VKLLM_STAMPS_TOP;
            else if (!strcmp(v, "end")) stamps = VKLLM_STAMPS_END;
            else {
                fprintf(stderr, "vkllm profile: --stamps needs 'compute', 'top' or 'end', not '%s'\n", v);
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
    const int sampled = sample > 1, span_stamps = sampled || stamps == VKLLM_STAMPS_END;
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
    trace_chart ch[2];
    memset(ch, 0, sizeof ch);
    kstat *ks = calloc(MAX_KSTATS, sizeof *ks);
    uint32_t prefill_runs = 0;
    if (!m || !ks) goto done;
    const vkllm_phi3_hparams *hp = vkllm_model_hparams(m);
    if (n_ctx > hp->n_ctx_train) {
        fprintf(stderr, "vkllm profile: %u tokens exceed the model's context of %u\n", n_ctx, hp->n_ctx_train);
        goto done;
    }
    char mdesc[96];
    double ceiling = read_ceiling(dev), mrate = matrix_rate(dev, mdesc, sizeof mdesc);
    vkllm_session_options so = { .n_ctx = n_ctx, .max_batch = np ? np : 1,
                                 .timestamps = sampled ? VKLLM_STAMPS_SAMPLED(stamps, (int)sample) : stamps };
    double t_create = now_ns();
    if (vkllm_session_create(m, &so, &s)) goto fail;
    t_create = now_ns() - t_create;
    toks = malloc(4ull * (depth + np + 1));
    if (!toks) goto done;
    for (uint32_t i = 0; i < depth + np + 1; i++) toks[i] = (int32_t)((i * 2654435761u) % hp->n_vocab);
    printf("model %s on %s (%s)\n", model, f->name, f->driver_info);
    printf("timestamps: %s", stamps_desc(stamps));
    if (sampled)
        printf("; sampled: each step stamps the dispatches of one layer group in %u (K steps time every dispatch once)", sample);
    printf("\n");
    printf("read ceiling %.4g GB/s (stream_read, measured now); matrix rate %.4g TFLOP/s (%s, best dispatch of >= 0.3 s of "
           "runs, measured now)\n",
           ceiling, mrate, mdesc);

    clockmap cm = { 0 };
    cm.calibrated = !vkllm_device_calibrate(dev, &cm.dev_ns, &cm.host_ns, &cm.max_dev_ns);
    if (tf && trace_begin(&tw, tf, f->name)) goto werr;
    if (depth && vkllm_session_prefill(s, toks, depth, NULL)) goto fail;
    double h0, h1, c0, c1, t_first_prefill = 0, t_first_decode = 0;
    int r, all;
    if (np) {
        c0 = now_ns();
        if (vkllm_session_prefill(s, toks + depth, np, NULL)) goto fail; /* warm-up; records the chain */
        t_first_prefill = now_ns() - c0;
        /* sampled: the prefill runs again until every dispatch has been timed once */
        for (all = 0; !all && prefill_runs < VKLLM_STAMPS_MAX_REPLAYS; prefill_runs++) {
            char step[32];
            if (!prefill_runs) snprintf(step, sizeof step, "prefill");
            else snprintf(step, sizeof step, "prefill %u", prefill_runs + 1);
            if (vkllm_session_rewind(s, depth)) goto fail;
            vkllm_session_host_time(s, &h0, NULL, 0);
            c0 = now_ns();
            if (vkllm_session_prefill(s, toks + depth, np, NULL)) goto fail;
            c1 = now_ns();
            vkllm_session_host_time(s, &h1, NULL, 0);
            if ((r = account(&ph[0], s, tf ? &tw : NULL, dev, &cm, step, span_stamps, c0, h1 - h0, c1, &all)) == -2) goto werr;
            if (r) goto fail;
        }
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
            if ((r = account(&ph[1], s, tf ? &tw : NULL, dev, &cm, step, span_stamps, c0, h1 - h0, c1, &all)) == -2) goto werr;
            if (r) goto fail;
        }
    }
    char title[160];
    if (np) {
        if (prefill_runs > 1) snprintf(title, sizeof title, "prefill of %u tokens at depth %u (%u runs; per run: the mean)", np, depth, prefill_runs);
        else snprintf(title, sizeof title, "prefill of %u tokens at depth %u", np, depth);
        table(title, &ph[0], ks, ceiling, mrate);
    }
    if (ng) {
        snprintf(title, sizeof title, "decode, %u steps from depth %u (per step: the mean)", ng, depth + np + 1);
        table(title, &ph[1], ks, ceiling, mrate);
    }
    printf("\nhost, once: session create %.1f ms (records the decode chain); first prefill %.1f ms (records its chain, "
           "then runs); first decode step %.1f ms\n",
           t_create / 1e6, t_first_prefill / 1e6, t_first_decode / 1e6);
    if (tf) {
        char other[1280], devname[512];
        trace_json_escape(devname, sizeof devname, f->name);
        snprintf(other, sizeof other,
                 "\"device\": \"%s\", \"clock\": \"%s\", \"max_deviation_ns\": %.0f, \"read_ceiling_gbs\": %.1f, "
                 "\"matrix_tflops\": %.3f, \"prompt_tokens\": %u, \"decode_steps\": %u, \"depth\": %u, \"start_stamps\": \"%s\", "
                 "\"sample\": %u, \"prefill_runs\": %u",
                 devname, cm.calibrated ? "calibrated (VK_EXT_calibrated_timestamps, CLOCK_MONOTONIC)" : "approximate (GPU step placed at its submit)",
                 cm.max_dev_ns, ceiling, mrate, np, ng, depth,
                 stamps == VKLLM_STAMPS_TOP ? "top of pipe" : stamps == VKLLM_STAMPS_END ? "previous end" : "compute stage", sample,
                 prefill_runs);
        if (trace_end(&tw, other) || fclose(tf)) {
            tf = NULL;
            goto werr;
        }
        tf = NULL;
        snprintf(ch[0].title, sizeof ch[0].title, "prefill of %u tokens: GPU time per layer and kernel family", np);
        snprintf(ch[1].title, sizeof ch[1].title, "decode step (mean of %u): GPU time per layer and kernel family", ng);
        trace_chart charts[2];
        uint32_t nc = 0;
        for (int i = 0; i < 2; i++)
            if (ph[i].steps) {
                if (chart(&ph[i], &ch[i])) goto done;
                charts[nc++] = ch[i];
            }
        FILE *sf = fopen(svg, "w");
        if (!sf || trace_svg(sf, charts, nc) || fclose(sf)) {
            fprintf(stderr, "vkllm profile: cannot write the chart '%s'\n", svg);
            goto done;
        }
        printf("\ntrace: %s (open in https://ui.perfetto.dev or chrome://tracing; clock %s); chart: %s\n", trace,
               cm.calibrated ? "calibrated" : "approximate", svg);
    }
    vkllm_session_destroy(s); /* the overhead runs hold sessions of their own */
    s = NULL;
    if (rounds && overhead(m, &so, toks, depth, np, ng, rounds, sample)) goto fail;
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
    free(ks);
    for (int i = 0; i < 2; i++) {
        free(ph[i].d);
        trace_chart_free(&ch[i]);
    }
    vkllm_session_destroy(s);
    vkllm_model_destroy(m);
    vkllm_device_destroy(dev);
    return rc;
}
