/* vkllm run: prompt in, text (or, for --tokens, token ids) streamed out, speeds at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vkllm/sampler.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm run [-m model.gguf] (-p text | --tokens 1,2,3) [-n 128] [options]\n"
            "  -m, --model FILE   a phi3-architecture GGUF file (Phi-3, Phi-3.5, Phi-4); without it, a built-in\n"
            "                     tiny random-weight model (written once to the cache directory)\n"
            "  -p, --prompt TEXT  the prompt as text, tokenized with the model's own vocabulary (special tokens such\n"
            "                     as <|user|> or <|im_start|> in it are recognized); the continuation streams out\n"
            "                     as text and stops at the end-of-text token\n"
            "  --tokens IDS       the prompt as comma-separated token ids; the output is token ids (default: 1)\n"
            "  -n N               tokens to generate (default 128)\n"
            "  --temp T           temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K          (default 40; 0 = off)      --top-p P   (default 0.95)\n"
            "  --min-p P          (default 0.05)             --repeat-penalty R (default 1 = off)\n"
            "  --seed S           sampling seed (default 0; the same seed gives the same tokens)\n"
            "  --ctx N            context length (default: the model's, capped by device memory)\n"
            "  --batch N          prefill batch size (default 512)\n"
            "  --act-q8 M         decode with 8-bit activations and integer dot products: auto (default: where\n"
            "                     the device accelerates them), on, off\n"
            "  --device D         device index or name part (default: $VKLLM_DEVICE, else the first discrete GPU)\n");
}

int cmd_run(int argc, char **argv)
{
    const char *cmd = "run", *model = NULL, *device = NULL, *text = NULL;
    int32_t *prompt = NULL;
    uint32_t n_prompt = 0, n_gen = 128, n_ctx = 0, batch = 512;
    int act_q8 = 0;
    vkllm_sampler_params sp = vkllm_sampler_defaults();
    int rc = 2;
    for (int i = 1; i < argc; i += 2) { /* flag, value */
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
        else if ((ok = cli_sampling_flag(cmd, a, v, &sp)) >= 0) {}
        else if (!strcmp(a, "--ctx")) ok = cli_u32(cmd, "--ctx", v, 1, 1u << 24, &n_ctx);
        else if (!strcmp(a, "--act-q8")) ok = cli_act_q8(cmd, v, &act_q8);
        else if (!strcmp(a, "--batch")) ok = cli_u32(cmd, "--batch", v, 1, 8192, &batch);
        else if (!strcmp(a, "--device")) device = v;
        else {
            ok = 1;
            fprintf(stderr, "vkllm run: unknown option '%s' (see --help)\n", a);
            goto out;
        }
        if (!ok) goto out;
    }
    if (text && prompt) {
        fprintf(stderr, "vkllm run: give the prompt either as text (-p) or as token ids (--tokens), not both\n");
        goto out;
    }
    if (!prompt && !text) {
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
    vkllm_tokenizer *tk = NULL;
    vkllm_detok *dt = NULL;
    if (!m) goto done;
    const vkllm_phi3_hparams *hp = vkllm_model_hparams(m);
    if (text) {
        vkllm_tokens ids = { 0 };
        if (!(tk = cli_load_tokenizer(cmd, m))) goto done;
        if (vkllm_tokenizer_encode(tk, text, strlen(text), VKLLM_TOKENIZE_SPECIAL | VKLLM_TOKENIZE_ADD_SPECIAL, &ids) ||
            (!ids.n && vkllm_tokenizer_bos(tk) >= 0 && vkllm_tokens_push(&ids, vkllm_tokenizer_bos(tk)))) {
            fprintf(stderr, "vkllm run: %s\n", vkllm_tokenizer_error(tk));
            vkllm_tokens_free(&ids);
            goto done;
        }
        if (!ids.n || ids.n > UINT32_MAX) {
            fprintf(stderr, "vkllm run: the prompt is empty and the model has no BOS token to start from; give some text\n");
            vkllm_tokens_free(&ids);
            goto done;
        }
        prompt = ids.ids;
        n_prompt = (uint32_t)ids.n;
        /* the continuation of the prompt: its first piece keeps its leading space */
        if (vkllm_detok_create(tk, 0, &dt)) goto done;
    }
    if (n_ctx > hp->n_ctx_train) {
        fprintf(stderr, "vkllm run: --ctx %u is larger than the model's context of %u tokens\n", n_ctx, hp->n_ctx_train);
        goto done;
    }
    if (!n_ctx) {
        n_ctx = vkllm_model_max_ctx(m, batch);
        if (n_ctx < hp->n_ctx_train)
            fprintf(stderr, "vkllm run: using a context of %u tokens (the model's %u do not fit in device memory)\n", n_ctx,
                    hp->n_ctx_train);
    }
    if (n_prompt > n_ctx) {
        fprintf(stderr, "vkllm run: the prompt has %u tokens, more than the context of %u\n", n_prompt, n_ctx);
        goto done;
    }
    vkllm_session_options so = { .n_ctx = n_ctx, .max_batch = batch, .act_q8 = act_q8 };
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
    if (n_gen > 0 && tk && vkllm_tokenizer_is_eog(tk, tok)) {
        n_gen = 0;
        stop_reason = "end-of-text token";
    }
    if (n_gen > 0) {
        if (dt) cli_print_token(dt, tok);
        else printf("%d", tok);
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
        tok = next;
        if (tk && vkllm_tokenizer_is_eog(tk, tok)) {
            stop_reason = "end-of-text token";
            break;
        }
        vkllm_sampler_accept(smp, next);
        if (dt) cli_print_token(dt, tok);
        else printf(" %d", tok);
        fflush(stdout);
        produced++;
    }
    double t2 = cli_now();
    if (dt) cli_print_flush(dt);
    printf("\n");
    fflush(stdout);
    if (cli_interrupted) stop_reason = "interrupted";
    if (stop_reason) fprintf(stderr, "vkllm run: stopped: %s (%u tokens in the cache)\n", stop_reason, vkllm_session_pos(s));
    fprintf(stderr, "prompt: %u tokens in %.3f s (%.1f tokens/s); time to first token %.3f s\n", n_prompt, t1 - t0,
            n_prompt / (t1 - t0), t1 - t0);
    if (produced > 1)
        fprintf(stderr, "generation: %u tokens in %.3f s (%.1f tokens/s)\n", produced - 1, t2 - t1, (produced - 1) / (t2 - t1));
    rc = 0;
done:
    vkllm_detok_destroy(dt);
    vkllm_tokenizer_destroy(tk);
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
