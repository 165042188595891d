/* vkllm run: prompt in, tokens streamed out, speeds at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vkllm/sampler.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm run [-m model.gguf] (--tokens 1,2,3 | -p text) [-n 128] [options]\n"
            "  -m, --model FILE   a phi3-architecture GGUF file (Phi-3, Phi-3.5, Phi-4); without it, a built-in\n"
            "                     tiny random-weight model (written once to the cache directory)\n"
            "  --tokens IDS       the prompt as comma-separated token ids (default: 1)\n"
            "  -p, --prompt TEXT  the prompt as text (needs the tokenizer, which is not in this build yet)\n"
            "  -n N               tokens to generate (default 128)\n"
            "  --temp T           temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K          (default 40; 0 = off)      --top-p P   (default 0.95)\n"
            "  --min-p P          (default 0.05)             --repeat-penalty R (default 1 = off)\n"
            "  --seed S           sampling seed (default 0; the same seed gives the same tokens)\n"
            "  --ctx N            context length (default: the model's, capped by device memory)\n"
            "  --batch N          prefill batch size (default 512)\n"
            "  --device D         device index or name part (default: $VKLLM_DEVICE, else the first discrete GPU)\n");
}

int cmd_run(int argc, char **argv)
{
    const char *cmd = "run", *model = NULL, *device = NULL, *text = NULL;
    int32_t *prompt = NULL;
    uint32_t n_prompt = 0, n_gen = 128, n_ctx = 0, batch = 512;
    vkllm_sampler_params sp = vkllm_sampler_defaults();
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(prompt);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "vkllm run: unknown option or missing value: '%s' (see --help)\n", a);
            goto out;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokens")) { free(prompt); ok = cli_tokens(cmd, v, &prompt, &n_prompt); }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) text = v;
        else if (!strcmp(a, "-n")) ok = cli_u32(cmd, "-n", v, 0, 1u << 30, &n_gen);
        else if (!strcmp(a, "--temp")) ok = cli_float(cmd, "--temp", v, 0, 100, &sp.temperature);
        else if (!strcmp(a, "--top-k")) ok = cli_u32(cmd, "--top-k", v, 0, 1u << 30, &sp.top_k);
        else if (!strcmp(a, "--top-p")) ok = cli_float(cmd, "--top-p", v, 1e-9f, 1, &sp.top_p);
        else if (!strcmp(a, "--min-p")) ok = cli_float(cmd, "--min-p", v, 0, 1, &sp.min_p);
        else if (!strcmp(a, "--repeat-penalty")) ok = cli_float(cmd, "--repeat-penalty", v, 1e-3f, 100, &sp.repeat_penalty);
        else if (!strcmp(a, "--seed")) ok = cli_u64(cmd, "--seed", v, &sp.seed);
        else if (!strcmp(a, "--ctx")) ok = cli_u32(cmd, "--ctx", v, 1, 1u << 24, &n_ctx);
        else if (!strcmp(a, "--batch")) ok = cli_u32(cmd, "--batch", v, 1, 8192, &batch);
        else if (!strcmp(a, "--device")) device = v;
        else {
            fprintf(stderr, "vkllm run: unknown option '%s' (see --help)\n", a);
            goto out;
        }
        if (!ok) goto out;
        i++;
    }
    if (text) {
        fprintf(stderr, "vkllm run: text prompts need the tokenizer, which is not in this build yet; give token ids "
                        "with --tokens 1,2,3\n");
        goto out;
    }
    if (!prompt) {
        prompt = malloc(sizeof *prompt);
        if (!prompt) goto out;
        prompt[0] = 1;
        n_prompt = 1;
    }
    char builtin[4096];
    if (!model && !(model = cli_builtin_model(builtin, sizeof builtin))) {
        rc = 1;
        goto out;
    }
    rc = 1;
    vkllm_device *dev = cli_open_device(cmd, device);
    if (!dev) goto out;
    vkllm_model *m = cli_load_model(cmd, dev, model, n_ctx);
    vkllm_session *s = NULL;
    vkllm_sampler *smp = NULL;
    if (!m) goto done;
    const vkllm_phi3_hparams *hp = vkllm_model_hparams(m);
    if (n_ctx > hp->n_ctx_train) {
        fprintf(stderr, "vkllm run: --ctx %u is larger than the model's context of %u tokens\n", n_ctx, hp->n_ctx_train);
        goto done;
    }
    if (!n_ctx) n_ctx = hp->n_ctx_train;
    if (n_prompt > n_ctx) {
        fprintf(stderr, "vkllm run: the prompt has %u tokens, more than the context of %u\n", n_prompt, n_ctx);
        goto done;
    }
    vkllm_session_options so = { .n_ctx = n_ctx, .max_batch = batch };
    if (vkllm_session_create(m, &so, &s)) {
        fprintf(stderr, "vkllm run: %s\n", vkllm_device_error(dev));
        goto done;
    }
    if (vkllm_sampler_create(&sp, &smp)) {
        fprintf(stderr, "vkllm run: bad sampling parameters\n");
        goto done;
    }
    cli_catch_sigint();
    for (uint32_t i = 0; i < n_prompt; i++) vkllm_sampler_accept(smp, prompt[i]);
    float *logits = malloc(4ull * hp->n_vocab);
    if (!logits) goto done;
    double t0 = cli_now();
    if (vkllm_session_prefill(s, prompt, n_prompt, logits)) {
        fprintf(stderr, "vkllm run: %s\n", vkllm_device_error(dev));
        free(logits);
        goto done;
    }
    /* the first token from the prompt's last logits */
    vkllm_candidate *cand = malloc(hp->n_vocab * sizeof *cand);
    int32_t tok = 0;
    if (cand) {
        for (uint32_t i = 0; i < hp->n_vocab; i++) cand[i] = (vkllm_candidate){ logits[i], (int32_t)i };
        vkllm_sampler_sample(smp, cand, hp->n_vocab, &tok);
    }
    free(cand);
    free(logits);
    double t1 = cli_now();
    uint32_t produced = 0;
    const char *stop_reason = NULL;
    if (n_gen > 0) {
        printf("%d", tok);
        fflush(stdout);
        produced = 1;
        vkllm_sampler_accept(smp, tok);
    }
    while (produced < n_gen && !cli_interrupted) {
        if (vkllm_session_pos(s) >= vkllm_session_n_ctx(s)) {
            stop_reason = "the context is full";
            break;
        }
        int32_t next;
        if (vkllm_session_decode(s, tok, smp, &next, NULL)) {
            fprintf(stderr, "\nvkllm run: %s\n", vkllm_device_error(dev));
            goto done;
        }
        vkllm_sampler_accept(smp, next);
        tok = next;
        printf(" %d", tok);
        fflush(stdout);
        produced++;
    }
    double t2 = cli_now();
    printf("\n");
    if (cli_interrupted) stop_reason = "interrupted";
    if (stop_reason) fprintf(stderr, "vkllm run: stopped: %s (%u tokens in the cache)\n", stop_reason, vkllm_session_pos(s));
    fprintf(stderr, "prompt: %u tokens in %.3f s (%.1f tokens/s); time to first token %.3f s\n", n_prompt, t1 - t0,
            n_prompt / (t1 - t0), t1 - t0);
    if (produced > 1)
        fprintf(stderr, "generation: %u tokens in %.3f s (%.1f tokens/s)\n", produced - 1, t2 - t1, (produced - 1) / (t2 - t1));
    rc = 0;
done:
    vkllm_sampler_destroy(smp);
    vkllm_session_destroy(s);
    vkllm_model_destroy(m);
    if (dev && vkllm_device_validation_errors(dev)) {
        fprintf(stderr, "vkllm run: the validation layer reported %llu error(s)\n",
                (unsigned long long)vkllm_device_validation_errors(dev));
        rc = 1;
    }
    vkllm_device_destroy(dev);
out:
    free(prompt);
    return rc;
}
