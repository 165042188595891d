/* Kernel microbenchmarks with the device's streaming-read ceiling measured in the same run.
 *
 * For each case: check the result against the CPU reference once (NaN-poisoned output), then record
 * many dispatches in one chain with a timestamp pair around each, rotating through enough copies of
 * the inputs that the bytes touched between two uses of a copy exceed 128 MiB (over twice the
 * largest L2 we target), run it once to warm up and time the second run; report the median dispatch
 * time, the bytes the kernel must move per call, GB/s and the fraction of the ceiling.
 * The ceiling is kernels/stream_read.comp reading a buffer far larger than L2 (uvec4 loads). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vkllm/device.h"
#include "vkllm/ops.h"
#include "vkllm/ref.h"

#define ROTATE_BYTES (128ull << 20)

static int quick;
static FILE *json;
static int json_first = 1;
static double ceiling_gbs;

static uint64_t rng_state = 0x1234567ull;
static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rnd_normal(void)
{
    double u1 = ((double)(next_u64() >> 11) + 1.0) / 9007199254740993.0, u2 = (double)(next_u64() >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void die(vkllm_device *dev, const char *what)
{
    fprintf(stderr, "bench-kernels: %s: %s\n", what, vkllm_device_error(dev));
    exit(1);
}
#define CK(dev, call) do { if (call) die(dev, #call); } while (0)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef void (*record_fn)(vkllm_chain *c, uint32_t i, void *user);

/* Records n dispatches (record(i) for i in 0..n-1) with timestamps; runs twice; returns the median
 * and the minimum dispatch time of the second run in ns. */
static void time_dispatches(vkllm_device *dev, uint32_t n, record_fn record, void *user, double *median_ns, double *min_ns)
{
    vkllm_chain_options o = { .timestamps = 1, .max_dispatches = n };
    vkllm_chain *c;
    CK(dev, vkllm_chain_create(dev, &o, &c));
    CK(dev, vkllm_chain_begin(c));
    for (uint32_t i = 0; i < n; i++) record(c, i, user);
    CK(dev, vkllm_chain_end(c));
    CK(dev, vkllm_chain_run(c)); /* warm-up: clocks, caches of code, page tables */
    CK(dev, vkllm_chain_run(c));
    const vkllm_timing *t;
    uint32_t nt;
    CK(dev, vkllm_chain_timings(c, &t, &nt));
    double *d = malloc(nt * sizeof *d);
    for (uint32_t i = 0; i < nt; i++) d[i] = t[i].duration_ns;
    qsort(d, nt, sizeof *d, cmp_double);
    *median_ns = nt % 2 ? d[nt / 2] : 0.5 * (d[nt / 2 - 1] + d[nt / 2]);
    *min_ns = d[0];
    free(d);
    vkllm_chain_destroy(c);
}

static void report(const char *kernel, const char *shape, uint64_t bytes, double med_ns, double min_ns, double nmse)
{
    double gbs = (double)bytes / med_ns; /* bytes per ns = GB/s */
    printf("| %-12s | %-28s | %10.1f | %9.2f | %9.2f | %8.1f | %6.1f%% | %.1e |\n", kernel, shape, bytes / 1024.0, med_ns / 1000.0,
           min_ns / 1000.0, gbs, ceiling_gbs > 0 ? 100.0 * gbs / ceiling_gbs : 0.0, nmse);
    if (json) {
        fprintf(json, "%s\n    {\"kernel\": \"%s\", \"shape\": \"%s\", \"bytes\": %llu, \"median_us\": %.3f, \"min_us\": %.3f, "
                      "\"gbs\": %.2f, \"fraction_of_ceiling\": %.4f, \"nmse\": %.3e}",
                json_first ? "" : ",", kernel, shape, (unsigned long long)bytes, med_ns / 1000.0, min_ns / 1000.0, gbs,
                ceiling_gbs > 0 ? gbs / ceiling_gbs : 0.0, nmse);
        json_first = 0;
    }
}

static double nmse(const float *out, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i])) return INFINITY;
        double d = (double)out[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

/* Allocates a buffer and fills it with random floats (never zeros: compressing memory systems). */
static vkllm_buffer random_buffer(vkllm_device *dev, uint64_t bytes)
{
    vkllm_buffer b;
    CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, bytes, &b));
    const uint64_t chunk = 16ull << 20;
    float *tmp = malloc(chunk);
    for (uint64_t i = 0; i < chunk / 4; i++) tmp[i] = rnd_normal();
    for (uint64_t off = 0; off < bytes; off += chunk) {
        for (int j = 0; j < 64; j++) tmp[next_u64() % (chunk / 4)] = rnd_normal(); /* copies differ */
        CK(dev, vkllm_buffer_write(dev, &b, off, tmp, bytes - off < chunk ? bytes - off : chunk));
    }
    free(tmp);
    return b;
}

/* ---- streaming-read ceiling ---- */
typedef struct { vkllm_buffer src, dst; uint64_t bytes; } read_case;
static void rec_read(vkllm_chain *c, uint32_t i, void *u)
{
    read_case *k = u;
    (void)i;
    vkllm_view s = { k->src, 0 }, d = { k->dst, 0 };
    if (vkllm_op_stream_read(c, s, k->bytes, d)) exit(1);
}

static void bench_ceiling(vkllm_device *dev)
{
    const vkllm_features *f = vkllm_device_features(dev);
    uint64_t bytes = quick ? 32ull << 20 : 2ull << 30;
    if (bytes > f->max_storage_buffer_range) bytes = f->max_storage_buffer_range / 256 * 256;
    if (bytes > f->max_allocation_size / 2) bytes = f->max_allocation_size / 2 / 256 * 256;
    if (bytes > f->device_local_budget / 4) bytes = f->device_local_budget / 4 / 256 * 256;
    read_case k = { random_buffer(dev, bytes), { 0 }, bytes };
    CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 4096, &k.dst));
    double med, mn;
    time_dispatches(dev, quick ? 5 : 20, rec_read, &k, &med, &mn);
    ceiling_gbs = bytes / med;
    char shape[64];
    snprintf(shape, sizeof shape, "%.0f MiB, uvec4 loads", bytes / 1048576.0);
    report("stream_read", shape, bytes, med, mn, 0.0);
    vkllm_buffer_free(dev, &k.src);
    vkllm_buffer_free(dev, &k.dst);
}

/* ---- RMSNorm ---- */
typedef struct {
    vkllm_buffer x, w, y;
    uint32_t n, rows, copies;
    uint64_t x_bytes, y_bytes;
} norm_case;
static void rec_norm(vkllm_chain *c, uint32_t i, void *u)
{
    norm_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_rmsnorm_args a = { { k->x, j * k->x_bytes }, { k->w, 0 }, { k->y, j * k->y_bytes }, k->n, k->rows, k->n, k->n, 1e-5f, NULL };
    if (vkllm_op_rmsnorm(c, &a)) exit(1);
}

static uint64_t round256(uint64_t x) { return (x + 255) / 256 * 256; }

static void bench_rmsnorm(vkllm_device *dev, uint32_t n, uint32_t rows)
{
    norm_case k = { .n = n, .rows = rows };
    uint64_t call = (uint64_t)n * rows * 8 + (uint64_t)n * 4;
    k.x_bytes = round256((uint64_t)n * rows * 4);
    k.y_bytes = k.x_bytes;
    uint64_t rot = quick ? (4ull << 20) : ROTATE_BYTES;
    k.copies = (uint32_t)((rot + call - 1) / call);
    if (k.copies < 2) k.copies = 2;
    uint32_t n_disp = k.copies > 200 ? k.copies : 200;
    if (n_disp > 4000) n_disp = 4000;
    if (k.copies > n_disp) k.copies = n_disp;
    if (quick) n_disp = k.copies < 20 ? k.copies : 20;
    k.x = random_buffer(dev, k.x_bytes * k.copies);
    CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, k.y_bytes * k.copies, &k.y));
    CK(dev, vkllm_buffer_fill(dev, &k.y, 0, k.y_bytes * k.copies, 0x7FC00000u));
    float *w = malloc(n * 4), *x = malloc(k.x_bytes), *ref = malloc((size_t)n * rows * 4), *out = malloc((size_t)n * rows * 4);
    for (uint32_t i = 0; i < n; i++) w[i] = 1.0f + 0.1f * rnd_normal();
    CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, (uint64_t)n * 4, &k.w));
    CK(dev, vkllm_buffer_write(dev, &k.w, 0, w, (uint64_t)n * 4));
    double med, mn;
    time_dispatches(dev, n_disp, rec_norm, &k, &med, &mn);
    /* correctness of what was timed: copy 0 against the reference */
    CK(dev, vkllm_buffer_read(dev, &k.x, 0, x, (uint64_t)n * rows * 4));
    CK(dev, vkllm_buffer_read(dev, &k.y, 0, out, (uint64_t)n * rows * 4));
    vkllm_ref_rmsnorm(x, w, ref, n, rows, n, n, 1e-5f);
    double e = nmse(out, ref, (size_t)n * rows);
    char shape[64];
    snprintf(shape, sizeof shape, "n=%u rows=%u", n, rows);
    report("rmsnorm", shape, call, med, mn, e);
    if (!(e <= 1e-10)) {
        fprintf(stderr, "bench-kernels: rmsnorm %s is WRONG (NMSE %.3e)\n", shape, e);
        exit(1);
    }
    vkllm_buffer_free(dev, &k.x); vkllm_buffer_free(dev, &k.y); vkllm_buffer_free(dev, &k.w);
    free(w); free(x); free(ref); free(out);
}

/* ---- RoPE ---- */
typedef struct {
    vkllm_buffer x, y, pos, table;
    uint32_t n_tok, n_head, head_dim, copies;
    uint64_t bytes_x;
} rope_case;
static void rec_rope(vkllm_chain *c, uint32_t i, void *u)
{
    rope_case *k = u;
    uint32_t j = i % k->copies, stride = k->n_head * k->head_dim;
    vkllm_rope_args a = { { k->x, j * k->bytes_x }, { k->y, j * k->bytes_x }, { k->pos, 0 }, { k->table, 0 },
                          k->n_tok, k->n_head, k->head_dim, k->head_dim, stride, k->head_dim, stride, k->head_dim, 1, 1.0f, 0,
                          NULL };
    if (vkllm_op_rope(c, &a)) exit(1);
}

static void bench_rope(vkllm_device *dev, uint32_t n_tok, uint32_t n_head, uint32_t head_dim)
{
    rope_case k = { .n_tok = n_tok, .n_head = n_head, .head_dim = head_dim };
    size_t nx = (size_t)n_tok * n_head * head_dim;
    uint64_t call = (uint64_t)nx * 8 + n_tok * 4ull + head_dim * 4ull;
    k.bytes_x = round256(nx * 4);
    uint64_t rot = quick ? (4ull << 20) : ROTATE_BYTES;
    k.copies = (uint32_t)((rot + call - 1) / call);
    if (k.copies < 2) k.copies = 2;
    uint32_t n_disp = k.copies > 200 ? k.copies : 200;
    if (n_disp > 4000) n_disp = 4000;
    if (k.copies > n_disp) k.copies = n_disp;
    if (quick) n_disp = k.copies < 20 ? k.copies : 20;
    k.x = random_buffer(dev, k.bytes_x * k.copies);
    CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, k.bytes_x * k.copies, &k.y));
    CK(dev, vkllm_buffer_fill(dev, &k.y, 0, k.bytes_x * k.copies, 0x7FC00000u));
    int32_t *pos = malloc(n_tok * 4);
    for (uint32_t t = 0; t < n_tok; t++) pos[t] = (int32_t)(4096 + t);
    double inv[256];
    float table[512];
    vkllm_rope_inv_freq(inv, head_dim, 250000.0, 1.0, NULL);
    vkllm_rope_table(table, inv, head_dim / 2);
    CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, n_tok * 4ull, &k.pos));
    CK(dev, vkllm_buffer_write(dev, &k.pos, 0, pos, n_tok * 4ull));
    CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, head_dim * 4ull, &k.table));
    CK(dev, vkllm_buffer_write(dev, &k.table, 0, table, head_dim * 4ull));
    double med, mn;
    time_dispatches(dev, n_disp, rec_rope, &k, &med, &mn);
    float *x = malloc(nx * 4), *out = malloc(nx * 4), *ref = malloc(nx * 4);
    CK(dev, vkllm_buffer_read(dev, &k.x, 0, x, nx * 4));
    CK(dev, vkllm_buffer_read(dev, &k.y, 0, out, nx * 4));
    uint32_t stride = n_head * head_dim;
    vkllm_rope_params p = { n_tok, n_head, head_dim, head_dim, stride, head_dim, stride, head_dim, 1, 1.0f };
    vkllm_ref_rope(&p, x, ref, pos, inv);
    double e = nmse(out, ref, nx);
    char shape[64];
    snprintf(shape, sizeof shape, "tok=%u %ux%u neox", n_tok, n_head, head_dim);
    report(vkllm_device_features(dev)->shader_fp64 ? "rope_neox" : "rope_neox_f32", shape, call, med, mn, e);
    if (!(e <= 1e-7)) {
        fprintf(stderr, "bench-kernels: rope %s is WRONG (NMSE %.3e)\n", shape, e);
        exit(1);
    }
    vkllm_buffer_free(dev, &k.x); vkllm_buffer_free(dev, &k.y); vkllm_buffer_free(dev, &k.pos); vkllm_buffer_free(dev, &k.table);
    free(pos); free(x); free(out); free(ref);
}

int main(int argc, char **argv)
{
    const char *json_path = NULL, *device = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) rng_state = strtoull(argv[++i], NULL, 0);
        else {
            fprintf(stderr, "usage: bench-kernels [--quick] [--json out.json] [--device <index|name>] [--seed N]\n"
                            "  --quick  small sizes and few repetitions (a smoke run; numbers mean nothing)\n");
            return !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ? 0 : 2;
        }
    }
    vkllm_device_options o = vkllm_device_options_default();
    o.select = device;
    vkllm_device *dev;
    char err[1024];
    if (vkllm_device_create(&o, &dev, err, sizeof err)) {
        fprintf(stderr, "bench-kernels: %s\n", err);
        return 1;
    }
    const vkllm_features *f = vkllm_device_features(dev);
    if (f->timestamp_period_ns <= 0) {
        fprintf(stderr, "bench-kernels: device '%s' has no timestamps on its compute queue\n", f->name);
        vkllm_device_destroy(dev);
        return 1;
    }
    if (json_path && !(json = fopen(json_path, "w"))) {
        fprintf(stderr, "bench-kernels: cannot write %s\n", json_path);
        vkllm_device_destroy(dev);
        return 1;
    }
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("device: %s | driver: %s %s | %s%s\n\n", f->name, f->driver_name, f->driver_info, date, quick ? " | QUICK (smoke run)" : "");
    printf("| kernel       | shape                        |  KiB/call  | median us |   min us |     GB/s | of read ceiling | NMSE |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    if (json) fprintf(json, "{\"device\": \"%s\", \"driver\": \"%s %s\", \"date\": \"%s\", \"quick\": %d, \"results\": [", f->name,
                      f->driver_name, f->driver_info, date, quick);
    bench_ceiling(dev);
    bench_rmsnorm(dev, 5120, 1);
    bench_rmsnorm(dev, 5120, 512);
    bench_rmsnorm(dev, 3072, 512);
    bench_rope(dev, 1, 40, 128);
    bench_rope(dev, 512, 40, 128);
    if (json) {
        fprintf(json, "\n], \"read_ceiling_gbs\": %.2f}\n", ceiling_gbs);
        fclose(json);
    }
    vkllm_device_destroy(dev);
    return 0;
}
