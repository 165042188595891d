/* Microbenchmark of the gemm kernels (kernels/gemm.comp) at Phi-4 prefill shapes: TFLOP/s = 2 M N K / time
 * for each weight type, M and variant (cooperative matrix where the device has it, portable float32).
 * Compare with bench/torch_gemm.py (fp16 torch.matmul of the same shapes on the same GPU).
 *
 * Weights: a 32-row tile of normal(0, 0.05) weights quantized once per type and repeated over all rows
 * (the kernels' speed does not depend on the values). X: normal(0, 1). Method as benchutil.h, except the
 * number of timed dispatches, which is capped by an estimate of their time (GEMMs are long). The
 * timed result is checked against the CPU reference at sampled entries (4 tokens x 257 outputs).
 *
 * Extra flags: --types q4_K,f16,... (names as vkllm_dtype_name)  --m 512,2048  --variant coopmat|portable|both
 * --torch FILE (the output of bench/torch_gemm.py on the same GPU: a last table gives the ratio
 * TFLOP/s(ours) / TFLOP/s(torch fp16) per shape)  --cm-tiles both (the coopmat kernel with its 128 x 32 and
 * its 256 x 16 W tile, $VKLLM_GEMM_CM_TILE; reported as gemm_cm_<type> and gemm_cm256_<type>)
 * --cm khr|cm2|both (which cooperative-matrix kernels: where the device has VK_NV_cooperative_matrix2 both
 * run by default, reported as gemm_cm2_<type> / gemm_cm2x256_<type> and the KHR ones as above)
 * --cm2-tiles 128x256x32s,128x128x64s,... (cooperative_matrix2 tiles, $VKLLM_GEMM_CM_TILE: tokens x W rows x
 * k-step, s = one shared buffer, d = the decode-load kernel gemm_cm2d_* with W never staged, df = that
 * kernel with X by fp32 tensor loads; reported as gemm_cm2x<tile>_<type>; the words staged and decode
 * time that kernel's default tile, reported as gemm_cm2_<type> / gemm_cm2d_<type>)  --target S (seconds of timed dispatches
 * per case, estimated from 200 TFLOP/s; default 0.3)  --mix (only the four layer shapes in the types of a Q4_K_M
 * file: qkv Q5_K, o Q4_K, gate+up Q4_K, down Q6_K)
 * (default: coopmat where available, portable at M = 16 and 512 for comparison; --variant both runs
 * portable at every M). */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "vkllm/quant.h"
#include "vkllm/ref_gemm.h"

typedef struct {
    vkllm_device *dev;
    vkllm_buffer w, x, y;
    vkllm_dtype type;
    uint32_t m, n, k, copies_w, copies_x;
    uint64_t w_stride, x_bytes, y_bytes; /* bytes per copy */
    int portable;
    const char *name;
} gemm_case;

/* Results kept for the ratio table. */
typedef struct { char kernel[48]; uint32_t m, k, n; double tflops; } result;
static result results[1024];
static int n_results, n_wrong;

static void rec_gemm(vkllm_chain *c, uint32_t i, void *u)
{
    gemm_case *g = u;
    vkllm_view none = { { NULL, 0, 0 }, 0 };
    vkllm_gemm_args a = { .w = { g->w, (i % g->copies_w) * g->w_stride }, .type = g->type, .n_out = g->n, .n_in = g->k,
                          .x = { g->x, (i % g->copies_x) * g->x_bytes }, .y = { g->y, (i % g->copies_x) * g->y_bytes },
                          .residual = none, .m = g->m, .x_stride = g->k, .y_stride = g->n, .r_stride = 0,
                          .force_portable = g->portable, .name = g->name };
    if (vkllm_op_gemm(c, &a)) {
        fprintf(stderr, "bench-gemm: %s\n", vkllm_device_error(g->dev));
        exit(1);
    }
}

static int in_list(const char *list, const char *item)
{
    if (!list) return 1;
    size_t n = strlen(item);
    for (const char *p = list; (p = strstr(p, item)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

static int both_tiles;
static const char *cm2_tiles; /* --cm2-tiles 128x256x32s,...: cooperative_matrix2 tiles to time */
static int cm_only; /* --cm khr|cm2: 1 = KHR rows only, 2 = cooperative_matrix2 rows only, 0 = both */
static double target_s = 0.3; /* --target S: timed seconds per case (estimated; 5..100 dispatches) */

static void bench_shape(vkllm_device *dev, vkllm_dtype type, uint32_t k, uint32_t n, const uint32_t *ms, int n_ms, const char *variant)
{
    const vkllm_features *f = vkllm_device_features(dev);
    uint64_t row_bytes;
    BU_CK(dev, vkllm_dtype_bytes(type, k, &row_bytes));
    uint64_t w_bytes = row_bytes * n, w_stride = bu_round256(w_bytes);
    if (w_stride > f->max_storage_buffer_range || w_stride > f->max_allocation_size) {
        printf("| skipped | %s K=%u N=%u: %.0f MiB of weights exceed one binding |\n", vkllm_dtype_name(type), k, n, w_bytes / 1048576.0);
        return;
    }
    /* the 32-row tile, quantized once */
    const uint32_t tile = 32;
    float *wf = malloc((size_t)tile * k * 4);
    uint8_t *wq = malloc(row_bytes * tile);
    if (!wf || !wq) bu_die(dev, "out of memory");
    for (size_t i = 0; i < (size_t)tile * k; i++) wf[i] = 0.05f * bu_normal();
    BU_CK(dev, vkllm_quantize(type, wf, wq, (size_t)tile * k));
    /* weights are read once per call from DRAM at large N; rotate copies only where W is small */
    uint32_t copies_w = (uint32_t)((BU_ROTATE_BYTES + w_stride - 1) / w_stride);
    if (copies_w > 8) copies_w = 8;
    if (copies_w < 1) copies_w = 1;
    gemm_case g = { .dev = dev, .type = type, .k = k, .n = n, .copies_w = copies_w, .w_stride = w_stride };
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, w_stride * copies_w, &g.w));
    {
        uint32_t rows_per_chunk = tile * (uint32_t)((16u << 20) / (row_bytes * tile) + 1);
        uint8_t *chunk = malloc(row_bytes * rows_per_chunk);
        if (!chunk) bu_die(dev, "out of memory");
        for (uint32_t r = 0; r < rows_per_chunk; r++) memcpy(chunk + r * row_bytes, wq + (r % tile) * row_bytes, row_bytes);
        for (uint32_t c = 0; c < copies_w; c++)
            for (uint32_t r = 0; r < n; r += rows_per_chunk) {
                uint32_t rows = n - r < rows_per_chunk ? n - r : rows_per_chunk;
                BU_CK(dev, vkllm_buffer_write(dev, &g.w, c * w_stride + r * row_bytes, chunk, rows * row_bytes));
            }
        free(chunk);
    }
    for (int mi = 0; mi < n_ms; mi++) {
        uint32_t m = ms[mi];
        g.m = m;
        g.x_bytes = bu_round256((uint64_t)m * k * 4);
        g.y_bytes = bu_round256((uint64_t)m * n * 4);
        if (g.x_bytes > f->max_storage_buffer_range || g.y_bytes > f->max_storage_buffer_range) continue;
        uint32_t copies_x = (uint32_t)((BU_ROTATE_BYTES + g.x_bytes - 1) / g.x_bytes);
        if (copies_x > 8) copies_x = 8;
        while (copies_x > 1 && copies_x * (g.x_bytes + g.y_bytes) > (1ull << 30)) copies_x--; /* Y is large at N = 100352 */
        g.copies_x = copies_x;
        g.x = bu_random_buffer(dev, g.x_bytes * copies_x);
        BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, g.y_bytes * copies_x, &g.y));
        /* variants: cooperative_matrix2 (default tile, then the 256-row W tile or the --cm2-tiles list),
         * KHR coopmat (128- and 256-row W tile), portable */
        const char *vt[16];
        int vk[16], nv = 0; /* 0 cm2, 1 khr, 2 portable */
        vt[nv] = NULL; vk[nv++] = 0;
        if (cm2_tiles) {
            static char tl[256];
            snprintf(tl, sizeof tl, "%s", cm2_tiles);
            for (char *sv = NULL, *tok = strtok_r(tl, ",", &sv); tok && nv < 12; tok = strtok_r(NULL, ",", &sv)) { vt[nv] = tok; vk[nv++] = 0; }
        } else if (both_tiles) { vt[nv] = "256"; vk[nv++] = 0; }
        vt[nv] = NULL; vk[nv++] = 1;
        if (both_tiles) { vt[nv] = "256"; vk[nv++] = 1; }
        vt[nv] = NULL; vk[nv++] = 2;
        for (int v = 0; v < nv; v++) {
            int portable = vk[v] == 2, khr = vk[v] == 1;
            /* the op reads the tile and kernel choice per call; the pipelines of all stay cached */
            /* "staged"/"decode": that cooperative_matrix2 kernel's default tile; else a tile */
            int kw = vt[v] && (!strcmp(vt[v], "staged") || !strcmp(vt[v], "decode"));
            if (kw) setenv("VKLLM_GEMM_CM2", vt[v], 1);
            else unsetenv("VKLLM_GEMM_CM2");
            if (vt[v] && !kw) setenv("VKLLM_GEMM_CM_TILE", vt[v], 1);
            else unsetenv("VKLLM_GEMM_CM_TILE");
            if (khr) setenv("VKLLM_GEMM_CM", "khr", 1);
            else unsetenv("VKLLM_GEMM_CM");
            const char *kname = NULL;
            int cm = vkllm_gemm_uses_coopmat(dev, type, k, &kname);
            int is_cm2 = cm && !strncmp(kname, "gemm_cm2", 8); /* gemm_cm2_* staged, gemm_cm2d_* decode loads */
            if (!portable && !khr && !is_cm2) continue; /* no cm2 here (or not this tile): the KHR rows cover coopmat */
            if (cm_only && !portable && (cm_only == 2) != is_cm2) continue;
            int want = portable ? (variant ? !strcmp(variant, "portable") || !strcmp(variant, "both") : m <= 512 || !cm)
                                : cm && !(variant && !strcmp(variant, "portable"));
            if (!want) continue;
            g.portable = portable;
            char kn[48];
            if (portable) snprintf(kn, sizeof kn, "gemm_%s", vkllm_dtype_name(type));
            else if (is_cm2 && (!vt[v] || kw)) snprintf(kn, sizeof kn, "%s", kname);
            else if (is_cm2) snprintf(kn, sizeof kn, "gemm_cm2x%s_%s", vt[v], vkllm_dtype_name(type));
            else snprintf(kn, sizeof kn, "gemm_%s_%s", vt[v] ? "cm256" : "cm", vkllm_dtype_name(type));
            for (char *q = kn; *q; q++) *q = (char)tolower((unsigned char)*q); /* the kernels' names */
            g.name = kn;
            BU_CK(dev, vkllm_buffer_fill(dev, &g.y, 0, g.y_bytes * copies_x, 0x7FC00000u));
            double flops = 2.0 * m * n * k;
            double est_s = flops / (portable ? 20e12 : 200e12);
            uint32_t n_disp = (uint32_t)(target_s / est_s);
            if (n_disp > 100) n_disp = 100;
            if (n_disp < 5) n_disp = 5;
            if (bu_quick) n_disp = 3;
            if (n_disp < copies_x) n_disp = copies_x; /* every y copy written: copy 0 is the one checked */
            double med, mn;
            bu_time_dispatches(dev, n_disp, rec_gemm, &g, &med, &mn);
            /* check copy 0 of y (written with w copy 0 and x copy 0) at sampled entries */
            uint32_t toks[4] = { 0, m / 3, 2 * m / 3, m - 1 };
            const uint32_t n_samp = 257;
            float *xr = malloc((size_t)k * 4), *wrow = malloc((size_t)k * 4), *yr = malloc((size_t)n * 4);
            double num = 0, den = 0;
            int bad = 0;
            for (int t = 0; t < 4; t++) {
                BU_CK(dev, vkllm_buffer_read(dev, &g.x, (uint64_t)toks[t] * k * 4, xr, (uint64_t)k * 4));
                BU_CK(dev, vkllm_buffer_read(dev, &g.y, (uint64_t)toks[t] * n * 4, yr, (uint64_t)n * 4));
                for (uint32_t s = 0; s < n_samp; s++) {
                    uint32_t col = (uint32_t)((uint64_t)s * (n - 1) / (n_samp - 1));
                    vkllm_dequantize(type, wq + (col % tile) * row_bytes, wrow, k);
                    double acc = 0;
                    for (uint32_t i = 0; i < k; i++) acc += (double)xr[i] * wrow[i];
                    if (!isfinite(yr[col])) bad = 1;
                    num += (yr[col] - acc) * (yr[col] - acc);
                    den += acc * acc;
                }
            }
            double e = bad ? INFINITY : num / den;
            free(xr); free(wrow); free(yr);
            char shape[96];
            snprintf(shape, sizeof shape, "M=%u K=%u N=%u", m, k, n);
            /* bytes: what the call must move at least (W once, X and Y once) */
            bu_report(kn, shape, w_bytes + (uint64_t)m * k * 4 + (uint64_t)m * n * 4, (uint64_t)flops, med, mn, e);
            if (n_results < (int)(sizeof results / sizeof results[0])) {
                result *rs = &results[n_results++];
                snprintf(rs->kernel, sizeof rs->kernel, "%s", kn);
                rs->m = m; rs->k = k; rs->n = n;
                rs->tflops = flops / med / 1000.0;
            }
            double bound = portable ? 1e-9 : 1e-4; /* as tests/gpu/test_gemm.c */
            if (!(e <= bound)) { /* the sweep goes on; the exit status says it */
                fprintf(stderr, "bench-gemm: %s %s is WRONG (NMSE %.3e > %.0e)\n", kn, shape, e, bound);
                n_wrong++;
            }
        }
        unsetenv("VKLLM_GEMM_CM_TILE");
        unsetenv("VKLLM_GEMM_CM");
        unsetenv("VKLLM_GEMM_CM2");
        vkllm_buffer_free(dev, &g.x);
        vkllm_buffer_free(dev, &g.y);
    }
    vkllm_buffer_free(dev, &g.w);
    free(wf); free(wq);
}

/* Reads bench/torch_gemm.py's lines "torch_fp16 M=.. K=.. N=.. ms=.. TFLOP/s=.." and prints, per result
 * of this run, the ratio of its TFLOP/s to torch's at the same shape. */
static void ratio_table(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "bench-gemm: cannot read %s\n", path);
        return;
    }
    struct { uint32_t m, k, n; double tf; } t[256];
    int nt = 0;
    char line[512];
    while (fgets(line, sizeof line, fp) && nt < 256) {
        double ms, tf;
        if (sscanf(line, "torch_fp16 M=%u K=%u N=%u ms=%lf TFLOP/s=%lf", &t[nt].m, &t[nt].k, &t[nt].n, &ms, &tf) == 5) t[nt++].tf = tf;
    }
    fclose(fp);
    printf("\n| kernel | M | K | N | TFLOP/s | torch fp16 TFLOP/s | ratio |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n_results; i++)
        for (int j = 0; j < nt; j++)
            if (t[j].m == results[i].m && t[j].k == results[i].k && t[j].n == results[i].n)
                printf("| %s | %u | %u | %u | %.1f | %.1f | %.2f |\n", results[i].kernel, results[i].m, results[i].k, results[i].n,
                       results[i].tflops, t[j].tf, results[i].tflops / t[j].tf);
}

int main(int argc, char **argv)
{
    const char *types = NULL, *mlist = NULL, *variant = NULL, *torch = NULL;
    int mix = 0;
    char **rest = malloc(sizeof *rest * (size_t)(argc + 1));
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--m") && i + 1 < argc) mlist = argv[++i];
        else if (!strcmp(argv[i], "--variant") && i + 1 < argc) variant = argv[++i];
        else if (!strcmp(argv[i], "--torch") && i + 1 < argc) torch = argv[++i];
        else if (!strcmp(argv[i], "--cm-tiles") && i + 1 < argc) both_tiles = !strcmp(argv[++i], "both");
        else if (!strcmp(argv[i], "--target") && i + 1 < argc) target_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--cm2-tiles") && i + 1 < argc) cm2_tiles = argv[++i];
        else if (!strcmp(argv[i], "--mix")) mix = 1;
        else if (!strcmp(argv[i], "--cm") && i + 1 < argc) { i++; cm_only = !strcmp(argv[i], "khr") ? 1 : !strcmp(argv[i], "cm2") ? 2 : 0; }
        else rest[nrest++] = argv[i];
    }
    rest[nrest] = NULL;
    vkllm_device *dev = bu_open(nrest, rest, "bench-gemm");
    bu_measure_ceiling(dev);
    uint32_t ms[8];
    int n_ms = 0;
    if (mlist) {
        for (const char *p = mlist; *p && n_ms < 8;) {
            ms[n_ms++] = (uint32_t)strtoul(p, (char **)&p, 10);
            if (*p == ',') p++;
            else break;
        }
    } else if (bu_quick) {
        ms[n_ms++] = 16; ms[n_ms++] = 67;
    } else {
        ms[n_ms++] = 16; ms[n_ms++] = 512; ms[n_ms++] = 2048;
    }
    static const vkllm_dtype tlist[] = { VKLLM_DTYPE_Q4_K, VKLLM_DTYPE_Q5_K, VKLLM_DTYPE_Q6_K, VKLLM_DTYPE_Q8_0, VKLLM_DTYPE_F16 };
    /* Phi-4: qkv, o, gate+up, down, output (K -> N) */
    static const uint32_t shapes[][2] = { { 5120, 7680 }, { 5120, 5120 }, { 5120, 35840 }, { 17920, 5120 }, { 5120, 100352 } };
    static const uint32_t quick_shapes[][2] = { { 512, 768 }, { 768, 256 } };
    /* --mix: each Phi-4 layer shape in the type a Q4_K_M file gives it (qkv Q5_K, o Q4_K, gate+up Q4_K,
     * down Q6_K), the set */
    static const struct { vkllm_dtype t; uint32_t k, n; } mixed[] = { { VKLLM_DTYPE_Q5_K, 5120, 7680 }, { VKLLM_DTYPE_Q4_K, 5120, 5120 },
                                                                      { VKLLM_DTYPE_Q4_K, 5120, 35840 }, { VKLLM_DTYPE_Q6_K, 17920, 5120 } };
    for (size_t i = 0; mix && i < sizeof mixed / sizeof mixed[0]; i++) bench_shape(dev, mixed[i].t, mixed[i].k, mixed[i].n, ms, n_ms, variant);
    for (size_t ti = 0; ti < sizeof tlist / sizeof tlist[0] && !mix; ti++) {
        if (!in_list(types, vkllm_dtype_name(tlist[ti]))) continue;
        if (bu_quick)
            for (size_t s = 0; s < 2; s++) bench_shape(dev, tlist[ti], quick_shapes[s][0], quick_shapes[s][1], ms, n_ms, variant);
        else
            for (size_t s = 0; s < 5; s++) bench_shape(dev, tlist[ti], shapes[s][0], shapes[s][1], ms, n_ms, variant);
    }
    if (torch) ratio_table(torch);
    bu_close(dev);
    free(rest);
    if (n_wrong) fprintf(stderr, "bench-gemm: %d case(s) WRONG\n", n_wrong);
    return n_wrong ? 1 : 0;
}
