/* vkllm profile: per-kernel GPU time of a prefill and of decode steps, with the bytes and FLOPs each
 * kernel must move and do, and the fraction of the device's read ceiling measured in the same run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vkllm/ops.h"

typedef struct kstat {
    char name[64]; /* the dispatch name without its layer prefix, e.g. "attn_qkv.q5_k" */
    uint32_t calls;
    double ns;
    uint64_t bytes, flops;
} kstat;

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
    vkllm_chain_options o = { .timestamps = 1 };
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

static void table(const char *title, kstat *k, int nk, double step_ns, uint32_t steps, double ceiling)
{
    qsort(k, (size_t)nk, sizeof *k, by_time);
    double total = 0;
    for (int i = 0; i < nk; i++) total += k[i].ns;
    printf("\n%s: GPU busy %.3f ms per step (sum of dispatch times), %.3f ms from first start to last end\n\n", title,
           total / steps / 1e6, step_ns / 1e6);
    printf("| kernel | calls/step | total us/step | mean us | share | MB/step | GB/s | of read ceiling | TFLOP/s |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < nk; i++) {
        double gbs = k[i].ns > 0 ? k[i].bytes / k[i].ns : 0;
        printf("| %s | %u | %.1f | %.2f | %.1f%% | %.2f | %.0f | %.1f%% | %.2f |\n", k[i].name, k[i].calls / steps,
               k[i].ns / steps / 1e3, k[i].ns / k[i].calls / 1e3, 100 * k[i].ns / total, k[i].bytes / steps / 1e6, gbs,
               ceiling > 0 ? 100 * gbs / ceiling : 0, k[i].ns > 0 ? k[i].flops / k[i].ns / 1e3 : 0);
    }
}

static int add(kstat *k, int nk, int cap, const vkllm_timing *t, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const char *nm = strip_layer(t[i].name);
        int j = 0;
        while (j < nk && strcmp(k[j].name, nm)) j++;
        if (j == nk) {
            if (nk == cap) continue;
            memset(&k[nk], 0, sizeof k[nk]);
            snprintf(k[nk].name, sizeof k[nk].name, "%s", nm);
            nk++;
        }
        k[j].calls++;
        k[j].ns += t[i].duration_ns;
        k[j].bytes += t[i].bytes;
        k[j].flops += t[i].flops;
    }
    return nk;
}

int cmd_profile(int argc, char **argv)
{
    const char *cmd = "profile", *model = NULL, *device = NULL;
    uint32_t np = 512, ng = 16, depth = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: vkllm profile [-m model.gguf] [-p 512] [-n 16] [--depth N] [--device D]\n"
                   "Times every dispatch of a prefill of -p tokens and of -n decode steps (timestamps around each)\n"
                   "and prints per kernel: calls, GPU time, share, bytes moved, GB/s and the fraction of the read\n"
                   "ceiling measured in the same run.\n");
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
        else if (!strcmp(a, "--device")) device = v;
        else {
            fprintf(stderr, "vkllm profile: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) return 2;
        i++;
    }
    char builtin[4096];
    if (!model && !(model = cli_builtin_model(builtin, sizeof builtin))) return 1;
    int rc = 1;
    vkllm_device *dev = cli_open_device(cmd, device);
    if (!dev) return 1;
    if (vkllm_device_features(dev)->timestamp_period_ns <= 0) {
        fprintf(stderr, "vkllm profile: '%s' has no timestamps on its compute queue\n", vkllm_device_features(dev)->name);
        vkllm_device_destroy(dev);
        return 1;
    }
    uint32_t n_ctx = depth + np + ng + 1;
    if (n_ctx < 256) n_ctx = 256;
    vkllm_model *m = cli_load_model(cmd, dev, model, n_ctx);
    vkllm_session *s = NULL;
    int32_t *toks = NULL;
    kstat *k = calloc(256, sizeof *k);
    if (!m || !k) goto done;
    const vkllm_phi3_hparams *hp = vkllm_model_hparams(m);
    if (n_ctx > hp->n_ctx_train) {
        fprintf(stderr, "vkllm profile: %u tokens exceed the model's context of %u\n", n_ctx, hp->n_ctx_train);
        goto done;
    }
    double ceiling = read_ceiling(dev);
    vkllm_session_options so = { .n_ctx = n_ctx, .max_batch = np ? np : 1, .timestamps = 1 };
    if (vkllm_session_create(m, &so, &s)) goto fail;
    toks = malloc(4ull * (depth + np + 1));
    if (!toks) goto done;
    for (uint32_t i = 0; i < depth + np + 1; i++) toks[i] = (int32_t)((i * 2654435761u) % hp->n_vocab);
    printf("model %s on %s; read ceiling %.0f GB/s (measured now)\n", model, vkllm_device_features(dev)->name, ceiling);
    if (depth && vkllm_session_prefill(s, toks, depth, NULL)) goto fail;
    const vkllm_timing *t;
    uint32_t n;
    if (np) {
        if (vkllm_session_prefill(s, toks + depth, np, NULL)) goto fail; /* warm-up */
        if (vkllm_session_rewind(s, depth) || vkllm_session_prefill(s, toks + depth, np, NULL)) goto fail;
        if (vkllm_session_timings(s, &t, &n)) goto fail;
        int nk = add(k, 0, 256, t, n);
        char title[96];
        snprintf(title, sizeof title, "prefill of %u tokens at depth %u", np, depth);
        table(title, k, nk, vkllm_session_last_gpu_ns(s), 1, ceiling);
    }
    if (ng) {
        memset(k, 0, 256 * sizeof *k);
        int nk = 0;
        int32_t tok = toks[depth], next;
        if (vkllm_session_decode(s, tok, NULL, &next, NULL)) goto fail; /* warm-up */
        double span = 0;
        for (uint32_t i = 0; i < ng; i++) {
            tok = next;
            if (vkllm_session_decode(s, tok, NULL, &next, NULL)) goto fail;
            if (vkllm_session_timings(s, &t, &n)) goto fail;
            nk = add(k, nk, 256, t, n);
            span += vkllm_session_last_gpu_ns(s);
        }
        char title[96];
        snprintf(title, sizeof title, "decode, %u steps from depth %u", ng, vkllm_session_pos(s) - ng);
        table(title, k, nk, span / ng, ng, ceiling);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "vkllm profile: %s\n", vkllm_device_error(dev));
done:
    free(toks);
    free(k);
    vkllm_session_destroy(s);
    vkllm_model_destroy(m);
    vkllm_device_destroy(dev);
    return rc;
}
