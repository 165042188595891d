/* Chrome trace-event JSON and SVG chart writers for `vkllm profile --trace` (see trace.h). */
#include "trace.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Track ids. The trace-event format nests "X" slices of one (pid, tid) by time, so every track must
 * hold properly nested slices: steps, layers and dispatches each get their own. */
enum { PID_GPU = 1, PID_CPU = 2, TID_STEPS = 1, TID_LAYERS = 2, TID_QUEUE = 10, TID_HOST = 1 };

void trace_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

void trace_json_escape(char *dst, size_t n, const char *s)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p && n; p++) {
        char e[8];
        int len = *p == '"' || *p == '\\' ? snprintf(e, sizeof e, "\\%c", *p)
                  : *p < 0x20              ? snprintf(e, sizeof e, "\\u%04x", *p)
                                           : snprintf(e, sizeof e, "%c", *p);
        if (o + (size_t)len >= n) break;
        memcpy(dst + o, e, (size_t)len);
        o += (size_t)len;
    }
    if (n) dst[o] = 0;
}

static void sep(trace_writer *w)
{
    fputs(w->first ? "\n" : ",\n", w->f);
    w->first = 0;
}

static void thread_name(trace_writer *w, int pid, int tid, const char *name)
{
    sep(w);
    fprintf(w->f, "{\"ph\": \"M\", \"pid\": %d, \"tid\": %d, \"name\": \"thread_name\", \"args\": {\"name\": ", pid, tid);
    trace_json_string(w->f, name);
    fputs("}}", w->f);
    /* Perfetto orders tracks by this index; keep steps above layers above the queue */
    sep(w);
    fprintf(w->f, "{\"ph\": \"M\", \"pid\": %d, \"tid\": %d, \"name\": \"thread_sort_index\", \"args\": {\"sort_index\": %d}}",
            pid, tid, tid);
}

static void process_name(trace_writer *w, int pid, const char *name)
{
    sep(w);
    fprintf(w->f, "{\"ph\": \"M\", \"pid\": %d, \"name\": \"process_name\", \"args\": {\"name\": ", pid);
    trace_json_string(w->f, name);
    fputs("}}", w->f);
}

/* A complete ("X") event; args: a JSON object's members or NULL. */
static void slice(trace_writer *w, int pid, int tid, const char *name, const char *cat, double ts, double dur, const char *args)
{
    sep(w);
    fprintf(w->f, "{\"ph\": \"X\", \"pid\": %d, \"tid\": %d, \"ts\": %.3f, \"dur\": %.3f, \"cat\": ", pid, tid, ts,
            dur > 0 ? dur : 0);
    trace_json_string(w->f, cat);
    fputs(", \"name\": ", w->f);
    trace_json_string(w->f, name);
    if (args) fprintf(w->f, ", \"args\": {%s}", args);
    fputc('}', w->f);
}

/* Copies a kernel name for an args object built with printf: anything but [A-Za-z0-9_.-] becomes '_'
 * (kernel names are identifiers; this keeps a surprise from breaking the JSON). */
static void identifier(char *dst, size_t n, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < n; i++)
        dst[i] = isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-' ? s[i] : '_';
    dst[i] = 0;
}

int trace_begin(trace_writer *w, FILE *f, const char *gpu_name)
{
    memset(w, 0, sizeof *w);
    w->f = f;
    w->first = 1;
    w->layer_end = -1e300;
    for (int i = 0; i < TRACE_MAX_LANES; i++) w->lane_end[i] = -1e300;
    fputs("{\"displayTimeUnit\": \"ns\", \"traceEvents\": [", f);
    char name[160];
    snprintf(name, sizeof name, "GPU: %s", gpu_name ? gpu_name : "?");
    process_name(w, PID_GPU, name);
    process_name(w, PID_CPU, "CPU: vkllm");
    thread_name(w, PID_GPU, TID_STEPS, "steps (submitted chains)");
    thread_name(w, PID_GPU, TID_LAYERS, "layers");
    thread_name(w, PID_CPU, TID_HOST, "host thread");
    return ferror(f) ? -1 : 0;
}

int trace_layer_family(const char *name, char *family, size_t n)
{
    const char *p = name ? name : "";
    int layer = -1;
    if (p[0] == 'L' && isdigit((unsigned char)p[1])) {
        const char *q = p + 1;
        long v = 0;
        while (isdigit((unsigned char)*q) && v < 1000000) v = v * 10 + (*q++ - '0');
        if (*q == '.') {
            layer = (int)v;
            p = q + 1;
        }
    }
    size_t len = strcspn(p, ".");
    if (n) {
        if (len >= n) len = n - 1;
        memcpy(family, p, len);
        family[len] = 0;
    }
    return layer;
}

int trace_gpu_step(trace_writer *w, const char *step, const trace_slice *s, uint32_t n)
{
    return trace_gpu_step_span(w, step, s, n, 0, 0, n);
}

int trace_gpu_step_span(trace_writer *w, const char *step, const trace_slice *s, uint32_t n, double t0_us, double t1_us,
                        uint32_t of)
{
    char args[256];
    double t0 = t0_us, t1 = t1_us;
    if (!(t1_us > t0_us)) {
        if (!n) return 0;
        t0 = s[0].start_us;
        t1 = s[0].start_us + s[0].dur_us;
        for (uint32_t i = 1; i < n; i++) {
            if (s[i].start_us < t0) t0 = s[i].start_us;
            if (s[i].start_us + s[i].dur_us > t1) t1 = s[i].start_us + s[i].dur_us;
        }
    }
    if (n == of) snprintf(args, sizeof args, "\"dispatches\": %u", n);
    else snprintf(args, sizeof args, "\"dispatches\": %u, \"timed\": %u", of, n);
    slice(w, PID_GPU, TID_STEPS, step, "step", t0, t1 - t0, args);

    /* layer groups: runs of dispatches of one layer, from the run's first start to its last end;
     * a group starts no earlier than the previous one ends so the track nests (the overlap is at
     * most one dispatch that ran without a barrier) */
    for (uint32_t i = 0; i < n;) {
        char fam[32];
        int layer = trace_layer_family(s[i].name, fam, sizeof fam);
        uint32_t j = i;
        double a = s[i].start_us, b = s[i].start_us + s[i].dur_us;
        while (j + 1 < n && trace_layer_family(s[j + 1].name, fam, sizeof fam) == layer) {
            j++;
            if (s[j].start_us < a) a = s[j].start_us;
            if (s[j].start_us + s[j].dur_us > b) b = s[j].start_us + s[j].dur_us;
        }
        if (layer >= 0) {
            if (a < w->layer_end) a = w->layer_end;
            char nm[32];
            snprintf(nm, sizeof nm, "L%02d", layer);
            snprintf(args, sizeof args, "\"dispatches\": %u", j - i + 1);
            if (b > a) slice(w, PID_GPU, TID_LAYERS, nm, "layer", a, b - a, args);
            if (b > w->layer_end) w->layer_end = b;
        }
        i = j + 1;
    }

    for (uint32_t i = 0; i < n; i++) {
        double a = s[i].start_us, b = a + s[i].dur_us;
        int lane = -1;
        for (int k = 0; k < w->n_lanes && lane < 0; k++)
            if (w->lane_end[k] <= a + 1e-3) lane = k; /* 1 ns slack: adjacent stamps may round alike */
        if (lane < 0 && w->n_lanes < TRACE_MAX_LANES) {
            lane = w->n_lanes++;
            char nm[64];
            if (lane == 0) snprintf(nm, sizeof nm, "compute queue");
            else snprintf(nm, sizeof nm, "compute queue (overlap %d)", lane);
            thread_name(w, PID_GPU, TID_QUEUE + lane, nm);
        }
        if (lane < 0) { /* more overlap than lanes: the least busy lane, nesting lost there */
            lane = 0;
            for (int k = 1; k < w->n_lanes; k++)
                if (w->lane_end[k] < w->lane_end[lane]) lane = k;
        }
        if (b > w->lane_end[lane]) w->lane_end[lane] = b;
        double dur = s[i].dur_us > 0 ? s[i].dur_us : 0;
        char kern[64];
        identifier(kern, sizeof kern, s[i].kernel);
        snprintf(args, sizeof args, "\"kernel\": \"%s\", \"bytes\": %llu, \"flops\": %llu, \"GB/s\": %.2f, \"TFLOP/s\": %.4f",
                 kern, (unsigned long long)s[i].bytes, (unsigned long long)s[i].flops,
                 dur > 0 ? s[i].bytes / (dur * 1e3) : 0.0, dur > 0 ? s[i].flops / (dur * 1e6) : 0.0);
        slice(w, PID_GPU, TID_QUEUE + lane, s[i].name, "dispatch", a, dur, args);
    }
    return ferror(w->f) ? -1 : 0;
}

int trace_cpu_slice(trace_writer *w, const char *what, double start_us, double dur_us)
{
    slice(w, PID_CPU, TID_HOST, what, "host", start_us, dur_us, NULL);
    return ferror(w->f) ? -1 : 0;
}

int trace_end(trace_writer *w, const char *other)
{
    fprintf(w->f, "\n], \"otherData\": {%s}}\n", other ? other : "");
    return ferror(w->f) ? -1 : 0;
}

/* ---- chart ---- */

int trace_chart_add(trace_chart *c, const char *name, double us)
{
    char fam[32], bar[32];
    int layer = trace_layer_family(name, fam, sizeof fam);
    if (layer >= 0) snprintf(bar, sizeof bar, "L%02d", layer);
    else snprintf(bar, sizeof bar, "%s", fam);
    int fi = -1;
    for (uint32_t i = 0; i < c->n_fam && fi < 0; i++)
        if (!strcmp(c->fam[i], fam)) fi = (int)i;
    if (fi < 0) {
        if (c->n_fam == c->cap_fam) { /* grow the family dimension: re-lay the matrix */
            uint32_t nc = c->cap_fam ? 2 * c->cap_fam : 8;
            char (*nf)[32] = realloc(c->fam, nc * sizeof *nf);
            if (!nf) return -1;
            c->fam = nf;
            double *nu = calloc((size_t)(c->cap_bars ? c->cap_bars : 1) * nc, sizeof *nu);
            if (!nu) return -1;
            for (uint32_t b = 0; b < c->n_bars; b++)
                for (uint32_t k = 0; k < c->n_fam; k++) nu[(size_t)b * nc + k] = c->us[(size_t)b * c->cap_fam + k];
            free(c->us);
            c->us = nu;
            c->cap_fam = nc;
        }
        snprintf(c->fam[c->n_fam], sizeof c->fam[0], "%s", fam);
        fi = (int)c->n_fam++;
    }
    int bi = -1;
    for (uint32_t i = 0; i < c->n_bars && bi < 0; i++)
        if (!strcmp(c->bar[i], bar)) bi = (int)i;
    if (bi < 0) {
        if (c->n_bars == c->cap_bars) {
            uint32_t nc = c->cap_bars ? 2 * c->cap_bars : 16;
            char (*nb)[32] = realloc(c->bar, nc * sizeof *nb);
            if (!nb) return -1;
            c->bar = nb;
            double *nu = realloc(c->us, (size_t)nc * c->cap_fam * sizeof *nu);
            if (!nu) return -1;
            memset(nu + (size_t)c->cap_bars * c->cap_fam, 0, (size_t)(nc - c->cap_bars) * c->cap_fam * sizeof *nu);
            c->us = nu;
            c->cap_bars = nc;
        }
        snprintf(c->bar[c->n_bars], sizeof c->bar[0], "%s", bar);
        bi = (int)c->n_bars++;
    }
    c->us[(size_t)bi * c->cap_fam + (size_t)fi] += us;
    return 0;
}

void trace_chart_free(trace_chart *c)
{
    if (!c) return;
    free(c->bar);
    free(c->fam);
    free(c->us);
    memset(c, 0, sizeof *c);
}

static void xml_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '<') fputs("&lt;", f);
        else if (*p == '>') fputs("&gt;", f);
        else if (*p == '&') fputs("&amp;", f);
        else if (*p == '"') fputs("&quot;", f);
        else if (*p >= 0x20) fputc(*p, f);
    }
}

/* A step on the value axis of 1, 2 or 5 x 10^k giving at most 5 ticks up to max. */
static double nice_step(double max)
{
    double raw = max / 5, p = 1;
    while (p * 10 <= raw) p *= 10;
    while (p > raw && p > 1e-9) p /= 10;
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

int trace_svg(FILE *f, const trace_chart *charts, uint32_t n)
{
    static const char *palette[] = { "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                                     "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#8c564b", "#17becf", "#bcbd22",
                                     "#7f7f7f", "#d62728", "#2ca02c", "#9467bd", "#e377c2", "#393b79" };
    const int np = (int)(sizeof palette / sizeof palette[0]);
    const double left = 70, top = 40, plot_h = 240, legend_w = 190, panel_h = plot_h + 110;
    uint32_t max_bars = 1;
    for (uint32_t i = 0; i < n; i++)
        if (charts[i].n_bars > max_bars) max_bars = charts[i].n_bars;
    double bw = max_bars > 60 ? 8 : max_bars > 30 ? 12 : 18, plot_w = max_bars * (bw + 3);
    if (plot_w < 300) plot_w = 300;
    double W = left + plot_w + 30 + legend_w, H = n * panel_h + 20;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    for (uint32_t ci = 0; ci < n; ci++) {
        const trace_chart *c = &charts[ci];
        double y0 = ci * panel_h + top, base = y0 + plot_h, max = 0;
        for (uint32_t b = 0; b < c->n_bars; b++) {
            double t = 0;
            for (uint32_t k = 0; k < c->n_fam; k++) t += c->us[(size_t)b * c->cap_fam + k];
            if (t > max) max = t;
        }
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"14\" font-weight=\"bold\">", left, y0 - 15);
        xml_text(f, c->title);
        fputs("</text>\n", f);
        double step = nice_step(max > 0 ? max : 1), ymax = ceil((max > 0 ? max : 1) / step) * step;
        for (double v = 0; v <= ymax + step / 2; v += step) {
            double y = base - v / ymax * plot_h;
            fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                       "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                    left, left + plot_w, y, y, left - 5, y + 4, v);
        }
        fprintf(f, "<text transform=\"translate(%.0f,%.0f) rotate(-90)\" text-anchor=\"middle\">GPU time, us</text>\n",
                left - 50, y0 + plot_h / 2);
        for (uint32_t b = 0; b < c->n_bars; b++) {
            double x = left + 3 + b * (bw + 3), y = base;
            for (uint32_t k = 0; k < c->n_fam; k++) {
                double v = c->us[(size_t)b * c->cap_fam + k];
                if (v <= 0) continue;
                double h = v / ymax * plot_h;
                y -= h;
                fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"%.0f\" height=\"%.2f\" fill=\"%s\"><title>", x, y, bw, h,
                        palette[k % np]);
                xml_text(f, c->bar[b]);
                fputc(' ', f);
                xml_text(f, c->fam[k]);
                fprintf(f, ": %.2f us</title></rect>\n", v);
            }
            fprintf(f, "<text transform=\"translate(%.1f,%.0f) rotate(-60)\" text-anchor=\"end\" font-size=\"9\">", x + bw / 2 + 3,
                    base + 10);
            xml_text(f, c->bar[b]);
            fputs("</text>\n", f);
        }
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", left, left + plot_w, base, base);
        for (uint32_t k = 0; k < c->n_fam; k++) {
            double total = 0;
            for (uint32_t b = 0; b < c->n_bars; b++) total += c->us[(size_t)b * c->cap_fam + k];
            double lx = left + plot_w + 30, ly = y0 + k * 16;
            fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">", lx, ly,
                    palette[k % np], lx + 14, ly + 9);
            xml_text(f, c->fam[k]);
            fprintf(f, " (%.1f us)</text>\n", total);
        }
    }
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}
