/* vkllm bench: prompt processing and generation speed, at one or more context depths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm bench [-m model.gguf] [-p 512] [-n 128] [-r 5] [--depth 0,4096] [--ctx N] [--batch N]\n"
            "  -p N        prompt tokens per prompt-processing test (0 = skip)\n"
            "  -n N        tokens per generation test (0 = skip)\n"
            "  -r N        repetitions (mean and standard deviation are printed)\n"
            "  --depth L   comma-separated context depths: tokens already in the cache when a test starts\n"
            "  --ctx N     context length (default: the largest depth + p + n, at least 512)\n"
            "  --act-q8 M  decode mat-vecs with 8-bit activations and integer dot products: auto (where the\n"
            "              device accelerates them), on, off\n"
            "Prompts are random token ids (seeded); generation is greedy, sampled on the GPU.\n");
}

static void stats(const double *v, int n, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *cmd = "bench", *model = NULL, *device = NULL;
    uint32_t np = 512, ng = 128, reps = 5, n_ctx = 0, batch = 512, depths[16] = { 0 }, n_depth = 1;
    int act_q8 = 0;
    for (int i = 1; i < argc; i += 2) { /* option, value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "vkllm bench: unknown option or missing value: '%s' (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-p")) ok = cli_u32(cmd, "-p", v, 0, 1u << 20, &np);
        else if (!strcmp(a, "-n")) ok = cli_u32(cmd, "-n", v, 0, 1u << 20, &ng);
        else if (!strcmp(a, "-r")) ok = cli_u32(cmd, "-r", v, 1, 1000, &reps);
        else if (!strcmp(a, "--ctx")) ok = cli_u32(cmd, "--ctx", v, 1, 1u << 24, &n_ctx);
        else if (!strcmp(a, "--batch")) ok = cli_u32(cmd, "--batch", v, 1, 8192, &batch);
        else if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--act-q8")) ok = cli_act_q8(cmd, v, &act_q8);
        else if (!strcmp(a, "--depth")) {
            int32_t *d;
            uint32_t nd;
            ok = cli_tokens(cmd, v, &d, &nd);
            if (ok && nd > 16) {
                fprintf(stderr, "vkllm bench: at most 16 depths\n");
                ok = 0;
            }
            for (uint32_t k = 0; ok && k < nd; k++) depths[k] = (uint32_t)d[k];
            if (ok) n_depth = nd;
            if (ok) free(d);
        } else {
            fprintf(stderr, "vkllm bench: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) return 2;
    }
    uint32_t max_depth = 0;
    for (uint32_t k = 0; k < n_depth; k++)
        if (depths[k] > max_depth) max_depth = depths[k];
    uint32_t need = max_depth + np + ng;
    if (!n_ctx) n_ctx = need < 512 ? 512 : need;
    if (need > n_ctx) {
        fprintf(stderr, "vkllm bench: depth %u + %u prompt + %u generated tokens do not fit --ctx %u\n", max_depth, np, ng, n_ctx);
        return 2;
    }
    char builtin[4096];
    if (!model && !(model = cli_builtin_model(builtin, sizeof builtin))) return 1;
    int rc = 1;
    vkllm_device *dev = cli_open_device(cmd, device);
    if (!dev) return 1;
    vkllm_model *m = cli_load_model(cmd, dev, model, n_ctx);
    vkllm_session *s = NULL;
    int32_t *toks = NULL;
    double *v = calloc(reps, sizeof *v);
    if (!m || !v) goto done;
    const vkllm_phi3_hparams *hp = vkllm_model_hparams(m);
    if (n_ctx > hp->n_ctx_train) {
        fprintf(stderr, "vkllm bench: a context of %u tokens is larger than the model's %u\n", n_ctx, hp->n_ctx_train);
        goto done;
    }
    vkllm_session_options so = { .n_ctx = n_ctx, .max_batch = batch, .act_q8 = act_q8 };
    if (vkllm_session_create(m, &so, &s)) {
        fprintf(stderr, "vkllm bench: %s\n", vkllm_device_error(dev));
        goto done;
    }
    toks = malloc(4ull * (max_depth + np + 1));
    if (!toks) goto done;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 0; i < max_depth + np + 1; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        toks[i] = (int32_t)(x % hp->n_vocab);
    }
    uint64_t fb;
    vkllm_model_sizes(m, &fb, NULL);
    printf("| model | size | device | test | t/s |\n|---|---:|---|---|---:|\n");
    cli_catch_sigint();
    double host_ns_all = 0, gpu_wall_all = 0;
    uint64_t steps_all = 0;
    for (uint32_t k = 0; k < n_depth && !cli_interrupted; k++) {
        uint32_t d = depths[k];
        vkllm_session_reset(s);
        if (d && vkllm_session_prefill(s, toks, d, NULL)) goto fail;
        char test[64];
        if (np) {
            /* warm-up with the timed batch itself: its chain is recorded and its pipelines created on
             * first use (with 8 tokens instead, the first repetition of pp512 paid that: ± 1450 on the H100) */
            if (vkllm_session_prefill(s, toks + d, np, NULL) || vkllm_session_rewind(s, d)) goto fail;
            for (uint32_t r = 0; r < reps; r++) {
                if (vkllm_session_rewind(s, d)) goto fail;
                double t0 = cli_now();
                if (vkllm_session_prefill(s, toks + d, np, NULL)) goto fail;
                v[r] = np / (cli_now() - t0);
            }
            double mean, sd;
            stats(v, (int)reps, &mean, &sd);
            snprintf(test, sizeof test, d ? "pp%u @ d%u" : "pp%u", np, d);
            printf("| %s | %.2f GiB | %s | %s | %.2f ± %.2f |\n", model, fb / 1073741824.0, vkllm_device_features(dev)->name, test,
                   mean, sd);
            fflush(stdout);
        }
        if (ng) {
            for (uint32_t r = 0; r < reps; r++) {
                if (vkllm_session_rewind(s, d)) goto fail;
                int32_t t = toks[d], next;
                if (vkllm_session_decode(s, t, NULL, &next, NULL)) goto fail; /* warm-up step */
                vkllm_session_host_time(s, NULL, NULL, 1);
                double t0 = cli_now();
                for (uint32_t i = 1; i < ng; i++) {
                    t = next;
                    if (vkllm_session_decode(s, t, NULL, &next, NULL)) goto fail;
                }
                double wall = cli_now() - t0;
                v[r] = (ng - 1) / wall;
                double hns;
                uint64_t st;
                vkllm_session_host_time(s, &hns, &st, 1);
                host_ns_all += hns;
                steps_all += st;
                gpu_wall_all += wall * 1e9;
            }
            double mean, sd;
            stats(v, (int)reps, &mean, &sd);
            snprintf(test, sizeof test, d ? "tg%u @ d%u" : "tg%u", ng, d);
            printf("| %s | %.2f GiB | %s | %s | %.2f ± %.2f |\n", model, fb / 1073741824.0, vkllm_device_features(dev)->name, test,
                   mean, sd);
            fflush(stdout);
        }
    }
    if (steps_all)
        printf("\nhost time per decode step (writing parameters + vkQueueSubmit, no waiting): %.1f us = %.2f%% of the "
               "step's wall time\n",
               host_ns_all / steps_all / 1000.0, 100.0 * host_ns_all / gpu_wall_all);
    const int q8 = vkllm_session_act_q8(s);
    printf("decode mat-vecs: %s\n",
           q8 == 2 ? "8-bit activations and integer dot products, every input quantized once (quant_q8, the attention's merge)"
           : q8    ? "8-bit activations and integer dot products, quantized in every workgroup (VKLLM_ACT_Q8_GLOBAL=0; not ffn_down)"
                   : "float32 activations (--act-q8 off, or not accelerated here)");
    const uint32_t rf = vkllm_session_rope_fused(s);
    if (rf) printf("decode QKV: RoPE and the KV-cache append in the QKV mat-vec's epilogue in %u of %u layers (VKLLM_FUSE_ROPE=0: a kv_write dispatch)\n", rf, vkllm_model_hparams(m)->n_layer);
    cli_memory_report(stdout, m, s);
    rc = cli_interrupted ? 1 : 0;
    goto done;
fail:
    fprintf(stderr, "vkllm bench: %s\n", vkllm_device_error(dev));
done:
    free(toks);
    free(v);
    vkllm_session_destroy(s);
    vkllm_model_destroy(m);
    vkllm_device_destroy(dev);
    return rc;
}
