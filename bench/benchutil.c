#include "benchutil.h"

#include "vkllm/ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bu_quick;
double bu_ceiling_gbs;
static FILE *json;
static int json_first = 1;
static uint64_t rng_state = 0x1234567ull;

void bu_seed(uint64_t s) { rng_state = s; }

uint64_t bu_next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float bu_normal(void)
{
    double u1 = ((double)(bu_next_u64() >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(bu_next_u64() >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void bu_die(vkllm_device *dev, const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, vkllm_device_error(dev));
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bu_time_calls(vkllm_device *dev, uint32_t n, uint32_t per, bu_record_fn record, void *user, double *median_ns, double *min_ns)
{
    vkllm_chain_options o = { .timestamps = 1, .max_dispatches = n * per };
    vkllm_chain *c;
    BU_CK(dev, vkllm_chain_create(dev, &o, &c));
    BU_CK(dev, vkllm_chain_begin(c));
    for (uint32_t i = 0; i < n; i++) record(c, i, user);
    BU_CK(dev, vkllm_chain_end(c));
    BU_CK(dev, vkllm_chain_run(c)); /* warm-up: clocks, code caches, page tables */
    BU_CK(dev, vkllm_chain_run(c));
    const vkllm_timing *t;
    uint32_t nt;
    BU_CK(dev, vkllm_chain_timings(c, &t, &nt));
    const uint32_t calls = nt / per; /* what was recorded (per = 1: every dispatch) */
    if (!calls) bu_die(dev, "bu_time_calls: nothing was recorded");
    double *d = malloc((size_t)calls * sizeof *d);
    if (!d) bu_die(dev, "out of memory");
    for (uint32_t j = 0; j <= per; j++) {
        for (uint32_t i = 0; i < calls; i++) {
            const vkllm_timing *a = &t[i * per], *b = &t[i * per + per - 1];
            d[i] = j < per ? t[i * per + j].duration_ns : b->start_ns + b->duration_ns - a->start_ns;
        }
        qsort(d, calls, sizeof *d, cmp_double);
        median_ns[j] = calls % 2 ? d[calls / 2] : 0.5 * (d[calls / 2 - 1] + d[calls / 2]);
        min_ns[j] = d[0];
    }
    free(d);
    vkllm_chain_destroy(c);
}

void bu_time_dispatches(vkllm_device *dev, uint32_t n, bu_record_fn record, void *user, double *median_ns, double *min_ns)
{
    double med[2], mn[2];
    bu_time_calls(dev, n, 1, record, user, med, mn);
    *median_ns = med[0];
    *min_ns = mn[0];
}

void bu_plan(uint64_t call_bytes, uint32_t *copies, uint32_t *n_disp)
{
    uint64_t rot = bu_quick ? (4ull << 20) : BU_ROTATE_BYTES;
    uint64_t k = (rot + call_bytes - 1) / call_bytes;
    if (k < 2) k = 2;
    uint64_t n = k > 200 ? k : 200;
    if (n > 4000) n = 4000;
    if (k > n) k = n;
    if (bu_quick) n = k < 20 ? k : 20;
    *copies = (uint32_t)k;
    *n_disp = (uint32_t)n;
}

uint64_t bu_round256(uint64_t x) { return (x + 255) / 256 * 256; }

vkllm_buffer bu_random_buffer(vkllm_device *dev, uint64_t bytes)
{
    vkllm_buffer b;
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, bytes, &b));
    const uint64_t chunk = 16ull << 20;
    float *tmp = malloc(chunk);
    if (!tmp) bu_die(dev, "out of memory");
    for (uint64_t i = 0; i < chunk / 4; i++) tmp[i] = bu_normal();
    for (uint64_t off = 0; off < bytes; off += chunk) {
        for (int j = 0; j < 64; j++) tmp[bu_next_u64() % (chunk / 4)] = bu_normal(); /* copies differ */
        BU_CK(dev, vkllm_buffer_write(dev, &b, off, tmp, bytes - off < chunk ? bytes - off : chunk));
    }
    free(tmp);
    return b;
}

double bu_nmse(const float *out, const float *ref, size_t n) { return vkllm_ref_nmse(out, ref, n); }

typedef struct { vkllm_buffer src, dst; uint64_t bytes; } read_case;
static void rec_read(vkllm_chain *c, uint32_t i, void *u)
{
    read_case *k = u;
    (void)i;
    vkllm_view s = { k->src, 0 }, d = { k->dst, 0 };
    if (vkllm_op_stream_read(c, s, k->bytes, d)) exit(1);
}

void bu_measure_ceiling(vkllm_device *dev)
{
    const vkllm_features *f = vkllm_device_features(dev);
    uint64_t bytes = bu_quick ? 32ull << 20 : 2ull << 30;
    if (bytes > f->max_storage_buffer_range) bytes = f->max_storage_buffer_range / 256 * 256;
    if (bytes > f->max_allocation_size / 2) bytes = f->max_allocation_size / 2 / 256 * 256;
    if (bytes > f->device_local_budget / 4) bytes = f->device_local_budget / 4 / 256 * 256;
    read_case k = { bu_random_buffer(dev, bytes), { 0 }, bytes };
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 4096, &k.dst));
    double med, mn;
    bu_time_dispatches(dev, bu_quick ? 5 : 20, rec_read, &k, &med, &mn);
    bu_ceiling_gbs = bytes / med;
    char shape[64];
    snprintf(shape, sizeof shape, "%.0f MiB, uvec4 loads", bytes / 1048576.0);
    bu_report("stream_read", shape, bytes, 0, med, mn, 0.0);
    vkllm_buffer_free(dev, &k.src);
    vkllm_buffer_free(dev, &k.dst);
}

vkllm_device *bu_open(int argc, char **argv, const char *title)
{
    const char *json_path = NULL, *device = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) bu_quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) rng_state = strtoull(argv[++i], NULL, 0);
        else {
            int help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: %s [--quick] [--json out.json] [--device <index|name>] [--seed N]\n"
                    "  --quick  small sizes and few repetitions (a smoke run; numbers mean nothing)\n",
                    title);
            exit(help ? 0 : 2);
        }
    }
    vkllm_device_options o = vkllm_device_options_default();
    o.select = device;
    vkllm_device *dev;
    char err[1024];
    if (vkllm_device_create(&o, &dev, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", title, err);
        exit(1);
    }
    const vkllm_features *f = vkllm_device_features(dev);
    if (f->timestamp_period_ns <= 0) {
        fprintf(stderr, "%s: device '%s' has no timestamps on its compute queue\n", title, f->name);
        vkllm_device_destroy(dev);
        exit(1);
    }
    if (json_path && !(json = fopen(json_path, "w"))) {
        fprintf(stderr, "%s: cannot write %s\n", title, json_path);
        vkllm_device_destroy(dev);
        exit(1);
    }
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("%s | device: %s | driver: %s %s | %s%s\n\n", title, f->name, f->driver_name, f->driver_info, date,
           bu_quick ? " | QUICK (smoke run)" : "");
    printf("| kernel | shape | KiB/call | median us | min us | GB/s | of read ceiling | TFLOP/s | NMSE |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    if (json)
        fprintf(json, "{\"bench\": \"%s\", \"device\": \"%s\", \"driver\": \"%s %s\", \"date\": \"%s\", \"quick\": %d, \"results\": [",
                title, f->name, f->driver_name, f->driver_info, date, bu_quick);
    return dev;
}

void bu_report(const char *kernel, const char *shape, uint64_t bytes, uint64_t flops, double med_ns, double min_ns, double nmse)
{
    double gbs = (double)bytes / med_ns; /* bytes per ns = GB/s */
    double tfs = flops ? (double)flops / med_ns / 1000.0 : 0.0;
    printf("| %s | %s | %.1f | %.2f | %.2f | %.1f | %.1f%% | %.3f | %.1e |\n", kernel, shape, bytes / 1024.0, med_ns / 1000.0,
           min_ns / 1000.0, gbs, bu_ceiling_gbs > 0 ? 100.0 * gbs / bu_ceiling_gbs : 0.0, tfs, nmse);
    fflush(stdout);
    if (json) {
        fprintf(json, "%s\n    {\"kernel\": \"%s\", \"shape\": \"%s\", \"bytes\": %llu, \"flops\": %llu, \"median_us\": %.3f, "
                      "\"min_us\": %.3f, \"gbs\": %.2f, \"fraction_of_ceiling\": %.4f, \"tflops\": %.4f, \"nmse\": %.3e}",
                json_first ? "" : ",", kernel, shape, (unsigned long long)bytes, (unsigned long long)flops, med_ns / 1000.0,
                min_ns / 1000.0, gbs, bu_ceiling_gbs > 0 ? gbs / bu_ceiling_gbs : 0.0, tfs, nmse);
        json_first = 0;
    }
}

void bu_close(vkllm_device *dev)
{
    if (json) {
        fprintf(json, "\n], \"read_ceiling_gbs\": %.2f}\n", bu_ceiling_gbs);
        fclose(json);
        json = NULL;
    }
    vkllm_device_destroy(dev);
}
