/* vkllm chat: an interactive multi-turn chat with the model's chat template. The KV cache is kept
 * across turns, so each turn prefills only its own tokens (the end of the previous reply, the user's
 * message, the start of the assistant's turn). Also the helpers `vkllm run -p` shares with it:
 * sampling flags, sampling from full logits, the tokenizer of a loaded model, streamed text. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "vkllm/gguf.h"
#include "vkllm/sampler.h"

int cli_sampling_flag(const char *cmd, const char *a, const char *v, vkllm_sampler_params *sp)
{
    if (!strcmp(a, "--temp")) return cli_float(cmd, "--temp", v, 0, 100, &sp->temperature);
    if (!strcmp(a, "--top-k")) return cli_u32(cmd, "--top-k", v, 0, 1u << 30, &sp->top_k);
    if (!strcmp(a, "--top-p")) return cli_float(cmd, "--top-p", v, 1e-9f, 1, &sp->top_p);
    if (!strcmp(a, "--min-p")) return cli_float(cmd, "--min-p", v, 0, 1, &sp->min_p);
    if (!strcmp(a, "--repeat-penalty")) return cli_float(cmd, "--repeat-penalty", v, 1e-3f, 100, &sp->repeat_penalty);
    if (!strcmp(a, "--seed")) return cli_u64(cmd, "--seed", v, &sp->seed);
    return -1;
}

int cli_sample_logits(vkllm_sampler *smp, const float *logits, uint32_t n_vocab, int32_t *tok)
{
    vkllm_candidate *cand = malloc((size_t)n_vocab * sizeof *cand);
    if (!cand) return 0;
    for (uint32_t i = 0; i < n_vocab; i++) cand[i] = (vkllm_candidate){ logits[i], (int32_t)i };
    vkllm_status s = vkllm_sampler_sample(smp, cand, n_vocab, tok);
    free(cand);
    return s == VKLLM_OK;
}

vkllm_tokenizer *cli_load_tokenizer(const char *cmd, vkllm_model *m)
{
    char err[1024];
    vkllm_tokenizer *t;
    if (vkllm_tokenizer_create_gguf(vkllm_model_gguf(m), &t, err, sizeof err)) {
        fprintf(stderr, "vkllm %s: the model's tokenizer: %s\n", cmd, err);
        return NULL;
    }
    return t;
}

void cli_print_token(vkllm_detok *d, int32_t tok)
{
    const char *s;
    size_t n;
    /* an id the vocabulary lacks (a model whose output is wider than its vocabulary) prints nothing */
    if (vkllm_detok_push(d, tok, &s, &n) == VKLLM_OK && n) {
        fwrite(s, 1, n, stdout);
        fflush(stdout);
    }
}

void cli_print_flush(vkllm_detok *d)
{
    const char *s;
    size_t n;
    if (vkllm_detok_flush(d, &s, &n) == VKLLM_OK && n) fwrite(s, 1, n, stdout);
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm chat [-m model.gguf] [-n 512] [--system TEXT] [options]\n"
            "  Type a message and press Enter; the reply streams back. The conversation stays in the KV cache,\n"
            "  so each turn processes only its new tokens.\n"
            "  /reset clears the conversation, Ctrl-C stops the current reply, Ctrl-D (end of input) quits.\n"
            "  -m, --model FILE   a phi3-architecture GGUF file with a Phi-3 or Phi-4 chat template (default: the\n"
            "                     built-in tiny random-weight model, which answers in random words)\n"
            "  -n N               most tokens per reply (default 512)\n"
            "  --system TEXT      a system message at the start of the conversation (and after /reset)\n"
            "  --temp T  --top-k K  --top-p P  --min-p P  --repeat-penalty R  --seed S   sampling, as vkllm run\n"
            "  --ctx N            context length (default: the model's, capped by device memory)\n"
            "  --batch N          prefill batch size (default 512)\n"
            "  --device D         device index or name part\n");
}

typedef struct chat {
    vkllm_device *dev;
    vkllm_session *s;
    vkllm_sampler *smp;
    vkllm_tokenizer *t;
    vkllm_detok *d;
    float *logits;
    uint32_t n_vocab;
    const char *system;
    vkllm_tokens pending; /* what the next turn must feed first: the end of the last reply */
    int started;
} chat;

/* One turn: prefill the new tokens, stream the reply. 0 ok, 1 a device error (fatal). */
static int turn(chat *c, const char *msg, size_t len, uint32_t n_reply)
{
    vkllm_tokens in = { 0 };
    vkllm_status st = VKLLM_OK;
    if (!c->started) {
        if (vkllm_tokenizer_adds_bos(c->t)) st = vkllm_tokens_push(&in, vkllm_tokenizer_bos(c->t));
        if (!st && c->system) st = vkllm_chat_append_message(c->t, "system", c->system, strlen(c->system), &in);
    } else {
        for (size_t i = 0; i < c->pending.n && !st; i++) st = vkllm_tokens_push(&in, c->pending.ids[i]);
    }
    if (!st) st = vkllm_chat_append_message(c->t, "user", msg, len, &in);
    if (!st) st = vkllm_chat_append_generation_prompt(c->t, &in);
    if (st) {
        fprintf(stderr, "vkllm chat: %s\n", vkllm_tokenizer_error(c->t));
        vkllm_tokens_free(&in);
        return 0;
    }
    uint32_t pos = vkllm_session_pos(c->s), n_ctx = vkllm_session_n_ctx(c->s);
    if (in.n >= (size_t)(n_ctx - pos)) {
        fprintf(stderr, "vkllm chat: this message (%zu tokens) does not fit in the context (%u of %u tokens used); "
                        "/reset starts over\n", in.n, pos, n_ctx);
        vkllm_tokens_free(&in);
        return 0;
    }
    for (size_t i = 0; i < in.n; i++) vkllm_sampler_accept(c->smp, in.ids[i]);
    if (vkllm_session_prefill(c->s, in.ids, (uint32_t)in.n, c->logits)) {
        fprintf(stderr, "vkllm chat: %s\n", vkllm_device_error(c->dev));
        vkllm_tokens_free(&in);
        return 1;
    }
    vkllm_tokens_free(&in);
    c->started = 1;
    c->pending.n = 0;
    int32_t tok;
    if (!cli_sample_logits(c->smp, c->logits, c->n_vocab, &tok)) {
        fprintf(stderr, "vkllm chat: sampling failed (out of memory or no finite logit)\n");
        return 1;
    }
    vkllm_detok_reset(c->d, VKLLM_DECODE_STRIP_SPACE);
    uint32_t produced = 0;
    int ended = 0;
    for (;;) {
        if (vkllm_tokenizer_is_eog(c->t, tok)) {
            ended = 1; /* the end-of-turn token is not fed: the next turn's end-of-turn text stands for it */
            break;
        }
        cli_print_token(c->d, tok);
        vkllm_sampler_accept(c->smp, tok);
        produced++;
        if (produced >= n_reply || cli_interrupted || vkllm_session_pos(c->s) >= n_ctx) break;
        int32_t next;
        if (vkllm_session_decode(c->s, tok, c->smp, &next, NULL)) {
            fprintf(stderr, "\nvkllm chat: %s\n", vkllm_device_error(c->dev));
            return 1;
        }
        tok = next;
    }
    cli_print_flush(c->d);
    fputc('\n', stdout);
    fflush(stdout);
    /* the last printed token was sampled but not fed: it opens the next turn, then the end of turn */
    if (!ended && vkllm_tokens_push(&c->pending, tok)) return 1;
    if (vkllm_chat_append_end_of_turn(c->t, &c->pending)) return 1;
    if (cli_interrupted) {
        cli_interrupted = 0;
        fprintf(stderr, "[stopped]\n");
    } else if (!ended) {
        fprintf(stderr, "[reply cut at %u tokens%s]\n", produced, vkllm_session_pos(c->s) >= n_ctx ? ": the context is full" : "");
    }
    return 0;
}

int cmd_chat(int argc, char **argv)
{
    const char *cmd = "chat", *model = NULL, *device = NULL;
    uint32_t n_reply = 512, n_ctx = 0, batch = 512;
    vkllm_sampler_params sp = vkllm_sampler_defaults();
    chat c;
    memset(&c, 0, sizeof c);
    for (int i = 1; i < argc; i += 2) { /* flag, value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "vkllm chat: unknown option or missing value: '%s' (see --help)\n", a);
            return 2;
        }
        int ok = cli_sampling_flag(cmd, a, v, &sp);
        if (ok < 0) {
            ok = 1;
            if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
            else if (!strcmp(a, "-n")) ok = cli_u32(cmd, "-n", v, 1, 1u << 30, &n_reply);
            else if (!strcmp(a, "--system")) c.system = v;
            else if (!strcmp(a, "--ctx")) ok = cli_u32(cmd, "--ctx", v, 1, 1u << 24, &n_ctx);
            else if (!strcmp(a, "--batch")) ok = cli_u32(cmd, "--batch", v, 1, 8192, &batch);
            else if (!strcmp(a, "--device")) device = v;
            else {
                fprintf(stderr, "vkllm chat: unknown option '%s' (see --help)\n", a);
                return 2;
            }
        }
        if (!ok) return 2;
    }
    char builtin[4096];
    if (!model && !(model = cli_builtin_model(builtin, sizeof builtin))) return 1;
    int rc = 1;
    vkllm_model *m = NULL;
    char *line = NULL;
    size_t cap = 0;
    c.dev = cli_open_device(cmd, device);
    if (!c.dev) return 1;
    m = cli_load_model(cmd, c.dev, model, n_ctx);
    if (!m) goto done;
    const vkllm_phi3_hparams *hp = vkllm_model_hparams(m);
    if (n_ctx > hp->n_ctx_train) {
        fprintf(stderr, "vkllm chat: --ctx %u is larger than the model's context of %u tokens\n", n_ctx, hp->n_ctx_train);
        goto done;
    }
    if (!(c.t = cli_load_tokenizer(cmd, m))) goto done;
    if (vkllm_tokenizer_chat_format(c.t) == VKLLM_CHAT_NONE) {
        fprintf(stderr, "vkllm chat: %s has no chat template vkllm knows (Phi-3 or Phi-4); use vkllm run -p for plain "
                        "completion\n", model);
        goto done;
    }
    if (!n_ctx) n_ctx = vkllm_model_max_ctx(m, batch); /* the model's, or what fits in device memory */
    vkllm_session_options so = { .n_ctx = n_ctx, .max_batch = batch };
    if (vkllm_session_create(m, &so, &c.s)) {
        fprintf(stderr, "vkllm chat: %s\n", vkllm_device_error(c.dev));
        goto done;
    }
    if (vkllm_sampler_create(&sp, &c.smp) || vkllm_detok_create(c.t, VKLLM_DECODE_STRIP_SPACE, &c.d)) {
        fprintf(stderr, "vkllm chat: bad sampling parameters or out of memory\n");
        goto done;
    }
    c.n_vocab = hp->n_vocab;
    c.logits = malloc(4ull * hp->n_vocab);
    if (!c.logits) goto done;
    int interactive = isatty(STDIN_FILENO);
    if (interactive)
        fprintf(stderr, "vkllm chat: %s template, %u tokens of context. /reset clears, Ctrl-C stops a reply, Ctrl-D "
                        "quits.\n", vkllm_chat_format_name(vkllm_tokenizer_chat_format(c.t)), vkllm_session_n_ctx(c.s));
    cli_catch_sigint();
    rc = 0;
    for (;;) {
        if (interactive) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            if (cli_interrupted && !feof(stdin)) {
                /* Ctrl-C at the prompt: a fresh prompt, not the end */
                cli_interrupted = 0;
                clearerr(stdin);
                fputc('\n', stdout);
                continue;
            }
            if (interactive) fputc('\n', stdout);
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        cli_interrupted = 0;
        if (!n) continue;
        if (!strcmp(line, "/reset")) {
            vkllm_session_reset(c.s);
            vkllm_sampler_reset(c.smp);
            c.pending.n = 0;
            c.started = 0;
            fprintf(stderr, "[the conversation is cleared]\n");
            continue;
        }
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
        if (turn(&c, line, (size_t)n, n_reply)) {
            rc = 1;
            break;
        }
    }
done:
    free(line);
    free(c.logits);
    vkllm_tokens_free(&c.pending);
    vkllm_detok_destroy(c.d);
    vkllm_tokenizer_destroy(c.t);
    vkllm_sampler_destroy(c.smp);
    vkllm_session_destroy(c.s);
    vkllm_model_destroy(m);
    if (c.dev && vkllm_device_validation_errors(c.dev)) {
        fprintf(stderr, "vkllm chat: the validation layer reported %llu error(s)\n",
                (unsigned long long)vkllm_device_validation_errors(c.dev));
        rc = 1;
    }
    vkllm_device_destroy(c.dev);
    return rc;
}
