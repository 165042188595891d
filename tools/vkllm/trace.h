/* Writers for `vkllm profile --trace`: a Chrome trace-event JSON file (opens in Perfetto and
 * chrome://tracing) and an SVG chart of GPU time per kernel family, stacked per layer.
 *
 * Knows no Vulkan: it takes named slices on one clock (microseconds from the trace's origin), so the
 * host tests can check it without a device. Dispatch names follow the runtime's convention
 * "L<layer>.<family>[.<detail>]" (e.g. "L03.attn_qkv.q4_K"); a name without the "L<digits>." prefix
 * is outside every layer and is its own family ("token_embd", "output.q6_K" -> "output"). */
#ifndef VKLLM_TRACE_H
#define VKLLM_TRACE_H

#include <stdint.h>
#include <stdio.h>

#define TRACE_MAX_LANES 8

typedef struct trace_slice {
    const char *name;     /* dispatch name, e.g. "L03.attn_qkv.q4_K" */
    const char *kernel;   /* the kernel behind it (may be NULL) */
    double start_us, dur_us;
    uint64_t bytes, flops;
} trace_slice;

typedef struct trace_writer {
    FILE *f;
    int first;                            /* no event written yet */
    int n_lanes;                          /* GPU queue lanes opened so far (named on first use) */
    double lane_end[TRACE_MAX_LANES];     /* where each lane's last slice ends */
    double layer_end;                     /* where the last layer group ends */
} trace_writer;

/* Starts a trace on f (the caller opens and closes f): process and track names for the GPU
 * (`gpu_name`) and the host. Returns 0, or -1 if writing failed. */
int trace_begin(trace_writer *w, FILE *f, const char *gpu_name);
/* One GPU step (a submitted chain), its dispatches in recording order: a slice named `step` over
 * the whole step on the "steps" track, one slice per layer on the "layers" track, and one slice per
 * dispatch on the compute queue's track. Dispatches that overlap (no barrier between them) go to a
 * second lane of the queue ("compute queue (overlap)") so every track nests properly. */
int trace_gpu_step(trace_writer *w, const char *step, const trace_slice *s, uint32_t n);
/* The same with the step's bounds given (t1_us > t0_us): for sampled profiling, where a step's
 * slices are the share of its dispatches that it timed and its start and end come from stamps of
 * their own; `of` is the step's dispatch count (timed or not), put in the step slice's args. A step
 * with no slices still gets its step slice. */
int trace_gpu_step_span(trace_writer *w, const char *step, const trace_slice *s, uint32_t n, double t0_us, double t1_us,
                        uint32_t of);
/* One host slice on the CPU track (`what`: e.g. "decode: prepare+submit"). */
int trace_cpu_slice(trace_writer *w, const char *what, double start_us, double dur_us);
/* Ends the event list and writes `other` (a JSON object's members without braces, e.g.
 * "\"clock\": \"calibrated\"", or NULL) as the trace's metadata. Returns 0, or -1 if any write failed. */
int trace_end(trace_writer *w, const char *other);

/* Escapes s for the inside of a JSON string literal into dst (n bytes, always terminated; cut
 * short rather than overflow). */
void trace_json_escape(char *dst, size_t n, const char *s);
/* Writes s as a JSON string literal (quotes included; ", \ and control characters escaped). */
void trace_json_string(FILE *f, const char *s);

/* The layer of a dispatch name ("L03.x" -> 3), or -1 outside layers; *family gets the family
 * ("attn_qkv"; "output" for "output.q6_K"), at most n bytes with its NUL. */
int trace_layer_family(const char *name, char *family, size_t n);

/* A chart: bars (one per layer, and one per family outside layers, in order of first appearance),
 * each stacked by family. */
typedef struct trace_chart {
    char title[128];
    uint32_t n_bars, n_fam, cap_bars, cap_fam;
    char (*bar)[32];   /* bar labels: "L03", "token_embd" */
    char (*fam)[32];   /* family names */
    double *us;        /* n_bars x cap_fam, row-major: time of a family in a bar */
} trace_chart;

/* Adds us microseconds of dispatch `name` to the chart (grows it); 0, or -1 out of memory. */
int trace_chart_add(trace_chart *c, const char *name, double us);
void trace_chart_free(trace_chart *c);
/* Writes the charts one above the other as one SVG document (bars: time per layer, colours: families,
 * a legend, hover titles with the numbers). Returns 0, or -1 if writing failed. */
int trace_svg(FILE *f, const trace_chart *charts, uint32_t n);
#endif
