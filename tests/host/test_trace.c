/* The writers behind `vkllm profile --trace` (tools/vkllm/trace.c): JSON strings are escaped, layer
 * and family come out of dispatch names, every track of the trace holds properly nested slices even
 * when dispatches overlap, nothing is lost or invented (dispatch count and total time), sampled steps
 * keep their bounds, and the chart adds up per layer and family however far it grows. The CLI test
 * checks a real trace with python3 -m json.tool and an XML parser. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* The tests/ build links one source per test and tools/ is no library: compile the writer in. */
#include "../../tools/vkllm/trace.c"

static void test_escape(void **state)
{
    (void)state;
    char b[64];
    trace_json_escape(b, sizeof b, "a\"b\\c\nd\x01");
    assert_string_equal(b, "a\\\"b\\\\c\\u000ad\\u0001");
    trace_json_escape(b, 6, "abc\"def"); /* cut before an escape that would not fit */
    assert_string_equal(b, "abc\\\"");
    trace_json_escape(b, 5, "abc\"def");
    assert_string_equal(b, "abc");
    trace_json_escape(b, sizeof b, NULL);
    assert_string_equal(b, "");
}

static void test_layer_family(void **state)
{
    (void)state;
    char f[32];
    assert_int_equal(trace_layer_family("L03.attn_qkv.q4_K", f, sizeof f), 3);
    assert_string_equal(f, "attn_qkv");
    assert_int_equal(trace_layer_family("L117.attn", f, sizeof f), 117);
    assert_string_equal(f, "attn");
    assert_int_equal(trace_layer_family("output.q6_K", f, sizeof f), -1);
    assert_string_equal(f, "output");
    assert_int_equal(trace_layer_family("L12", f, sizeof f), -1); /* no dot: not a layer prefix */
    assert_string_equal(f, "L12");
    assert_int_equal(trace_layer_family("Lx.attn", f, sizeof f), -1);
    assert_string_equal(f, "Lx");
    assert_int_equal(trace_layer_family("L5.a_very_long_family_name_that_does_not_fit", f, 8), 5);
    assert_string_equal(f, "a_very_");
}

typedef struct ev {
    int pid, tid;
    double ts, dur;
    char name[64];
} ev;

/* Reads back the "X" events (one per line, as the writer puts them). */
static int read_events(const char *text, ev *out, int cap)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, "{\"ph\": \"X\"")); p++) {
        assert_true(n < cap);
        ev *e = &out[n++];
        assert_int_equal(sscanf(p, "{\"ph\": \"X\", \"pid\": %d, \"tid\": %d, \"ts\": %lf, \"dur\": %lf", &e->pid, &e->tid, &e->ts, &e->dur), 4);
        const char *nm = strstr(p, "\"name\": \"");
        assert_non_null(nm);
        nm += 9;
        size_t len = 0;
        while (nm[len] && !(nm[len] == '"' && nm[len - 1] != '\\') && len < sizeof e->name - 1) len++;
        memcpy(e->name, nm, len);
        e->name[len] = 0;
    }
    return n;
}

static int by_track_time(const void *a, const void *b)
{
    const ev *x = a, *y = b;
    if (x->pid != y->pid) return x->pid - y->pid;
    if (x->tid != y->tid) return x->tid - y->tid;
    return x->ts < y->ts ? -1 : x->ts > y->ts ? 1 : (x->dur > y->dur ? -1 : x->dur < y->dur);
}

/* Brackets and braces balance outside strings, and the text is one object. */
static void check_balanced(const char *t)
{
    int depth = 0, in_str = 0;
    assert_int_equal(t[0], '{');
    for (const char *p = t; *p; p++) {
        if (in_str) {
            if (*p == '\\') p++;
            else if (*p == '"') in_str = 0;
            else assert_true((unsigned char)*p >= 0x20);
        } else if (*p == '"') in_str = 1;
        else if (*p == '{' || *p == '[') depth++;
        else if (*p == '}' || *p == ']') {
            depth--;
            assert_true(depth >= 0);
            if (!depth) assert_string_equal(p, "}\n");
        }
    }
    assert_int_equal(depth, 0);
    assert_int_equal(in_str, 0);
}

static void test_trace_nesting(void **state)
{
    (void)state;
    tu_rng r = tu_rng_for(1);
    enum { STEPS = 3, N = 200, CAP = STEPS * (N + 64) + 16 };
    static const char *fams[] = { "attn_norm", "attn_qkv", "kv_write", "attn", "attn_output", "ffn_norm", "ffn_up", "swiglu", "ffn_down" };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    trace_writer w;
    assert_int_equal(trace_begin(&w, f, "GPU \"quoted\"\tname"), 0);
    static char names[N][48];
    trace_slice s[N];
    double t = 100, total = 0;
    int n_layer_names = 0, depth = 1;
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < N; i++) {
            if (i == 0) snprintf(names[i], sizeof names[i], "token_embd");
            else if (i == N - 1) snprintf(names[i], sizeof names[i], "output.q6_K");
            else snprintf(names[i], sizeof names[i], "L%02d.%s.q4_K", (i - 1) / 9, fams[(i - 1) % 9]);
            /* a fifth of the dispatches start before the previous one ends (no barrier between them);
             * some of those overlap more than one earlier dispatch */
            double dur = tu_uniform(&r, 0.5f, 20.0f), gap = tu_uniform(&r, 0.0f, 2.0f);
            double start = tu_uniform(&r, 0, 1) < 0.2f ? t - tu_uniform(&r, 0.1f, 8.0f) : t + gap;
            s[i] = (trace_slice){ names[i], "matvec", start, dur, 1000, 2000 };
            int d = 1; /* how many slices are running at this one's start */
            for (int j = 0; j < i; j++) d += s[j].start_us <= start && s[j].start_us + s[j].dur_us > start + 1e-3;
            if (d > depth) depth = d;
            if (start + dur > t) t = start + dur;
            total += dur;
        }
        char step_name[32];
        snprintf(step_name, sizeof step_name, "decode %d", step);
        assert_int_equal(trace_gpu_step(&w, step_name, s, N), 0);
        assert_int_equal(trace_cpu_slice(&w, "decode: prepare+submit", t - 5, 3), 0);
        t += 50;
    }
    assert_int_equal(trace_end(&w, "\"clock\": \"test\""), 0);
    fclose(f);
    check_balanced(buf);
    assert_non_null(strstr(buf, "GPU \\\"quoted\\\"\\u0009name"));

    static ev e[CAP];
    int n = read_events(buf, e, CAP);
    int dispatches = 0, steps = 0, layers = 0, host = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].pid == 1 && e[i].tid >= 10) {
            dispatches++;
            sum += e[i].dur;
        }
        steps += e[i].pid == 1 && e[i].tid == 1;
        layers += e[i].pid == 1 && e[i].tid == 2;
        host += e[i].pid == 2;
        n_layer_names += e[i].pid == 1 && e[i].tid == 2 && e[i].name[0] == 'L';
    }
    assert_int_equal(dispatches, STEPS * N);
    assert_true(fabs(sum - total) < 1e-3 * STEPS * N); /* %.3f per slice */
    assert_int_equal(steps, STEPS);
    assert_int_equal(layers, n_layer_names);
    assert_true(layers >= STEPS * ((N - 2) / 9) * 9 / 10); /* an overlap may hide a group, rarely */
    assert_int_equal(host, STEPS);

    /* every track nests: a slice either ends before the next starts or contains it (the writer
     * promises that while no more dispatches overlap at once than it has lanes) */
    print_message("deepest overlap of the generated dispatches: %d\n", depth);
    assert_true(depth >= 2); /* the input did overlap */
    if (depth > TRACE_MAX_LANES) skip();
    qsort(e, (size_t)n, sizeof e[0], by_track_time);
    for (int i = 0; i < n;) {
        int j = i;
        double stack[64];
        int sp = 0;
        for (; j < n && e[j].pid == e[i].pid && e[j].tid == e[i].tid; j++) {
            while (sp && stack[sp - 1] <= e[j].ts + 2e-3) sp--;
            if (sp) assert_true(e[j].ts + e[j].dur <= stack[sp - 1] + 2e-3);
            assert_true(sp < 64);
            stack[sp++] = e[j].ts + e[j].dur;
        }
        i = j;
    }
    free(buf);
}

/* Sampled steps: the step slice spans the given bounds (not only the timed share), says how many
 * dispatches it has and how many were timed, and a step that timed none still appears. */
static void test_trace_sampled_steps(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    trace_writer w;
    assert_int_equal(trace_begin(&w, f, "gpu"), 0);
    trace_slice s[3] = { { "L04.attn_norm", "rmsnorm", 120, 5, 10, 0 }, { "L04.attn_qkv.q4_K", "matvec_q4_k", 125, 30, 100, 200 },
                         { "L12.attn_norm", "rmsnorm", 400, 5, 10, 0 } };
    assert_int_equal(trace_gpu_step_span(&w, "decode 0", s, 3, 100, 900, 365), 0);
    assert_int_equal(trace_gpu_step_span(&w, "decode 1", NULL, 0, 1000, 1800, 365), 0);
    assert_int_equal(trace_gpu_step(&w, "decode 2", s, 0), 0); /* nothing timed, no bounds: nothing written */
    assert_int_equal(trace_end(&w, NULL), 0);
    fclose(f);
    check_balanced(buf);
    ev e[16];
    int n = read_events(buf, e, 16), steps = 0, disp = 0, layers = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].pid == 1 && e[i].tid == 1) {
            steps++;
            assert_true(fabs(e[i].ts - (steps == 1 ? 100 : 1000)) < 1e-6 && fabs(e[i].dur - 800) < 1e-6);
        }
        disp += e[i].pid == 1 && e[i].tid >= 10;
        layers += e[i].pid == 1 && e[i].tid == 2;
    }
    assert_int_equal(steps, 2);
    assert_int_equal(disp, 3);
    assert_int_equal(layers, 2);
    assert_non_null(strstr(buf, "\"dispatches\": 365, \"timed\": 3"));
    assert_non_null(strstr(buf, "\"dispatches\": 365, \"timed\": 0"));
    free(buf);
}

static void test_chart(void **state)
{
    (void)state;
    tu_rng r = tu_rng_for(2);
    enum { LAYERS = 40, FAMS = 13 };
    static double want[LAYERS][FAMS];
    trace_chart c;
    memset(&c, 0, sizeof c);
    snprintf(c.title, sizeof c.title, "a <chart> & more");
    assert_int_equal(trace_chart_add(&c, "token_embd", 3.0), 0);
    for (int rep = 0; rep < 2; rep++)
        for (int l = 0; l < LAYERS; l++)
            for (int k = 0; k < FAMS; k++) {
                if ((l + k) % 7 == 3) continue; /* some cells stay empty */
                char name[64];
                snprintf(name, sizeof name, "L%02d.fam<%d>&.x", l, k);
                double v = tu_uniform(&r, 0.1f, 10.0f);
                want[l][k] += v;
                assert_int_equal(trace_chart_add(&c, name, v), 0);
            }
    assert_int_equal(trace_chart_add(&c, "output.q6_K", 5.0), 0);
    assert_int_equal(c.n_bars, LAYERS + 2);
    assert_int_equal(c.n_fam, FAMS + 2);
    assert_string_equal(c.bar[0], "token_embd");
    assert_string_equal(c.bar[1], "L00");
    assert_string_equal(c.bar[LAYERS + 1], "output");
    int cells = 2;
    for (int l = 0; l < LAYERS; l++)
        for (int k = 0; k < FAMS; k++) {
            char fam[32];
            snprintf(fam, sizeof fam, "fam<%d>&", k);
            int fi = -1;
            for (uint32_t i = 0; i < c.n_fam; i++)
                if (!strcmp(c.fam[i], fam)) fi = (int)i;
            assert_true(fi >= 0);
            assert_true(fabs(c.us[(size_t)(l + 1) * c.cap_fam + fi] - want[l][k]) < 1e-9);
            cells += want[l][k] > 0;
        }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(trace_svg(f, &c, 1), 0);
    fclose(f);
    assert_true(!strncmp(buf, "<svg ", 5));
    assert_non_null(strstr(buf, "a &lt;chart&gt; &amp; more"));
    assert_null(strstr(buf, "fam<")); /* every name escaped */
    int rects = 0;
    for (const char *p = buf; (p = strstr(p, "<rect x=")); p++) rects++;
    assert_int_equal(rects, cells + (int)c.n_fam); /* one per non-empty cell, one per legend entry */
    free(buf);
    trace_chart_free(&c);
    trace_chart_free(&c); /* freeing twice is harmless: the chart is zeroed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_layer_family),
        cmocka_unit_test(test_trace_nesting),
        cmocka_unit_test(test_trace_sampled_steps),
        cmocka_unit_test(test_chart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
