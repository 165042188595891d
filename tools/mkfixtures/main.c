/* mkfixtures: run the CPU reference over a token sequence and write every checkpoint to an HDF5
 * fixture (schema in vkllm/fixture.h). See --help. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkllm/fixture.h"
#include "vkllm/gguf.h"
#include "vkllm/phi3.h"
#include "vkllm/ref_model.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mkfixtures -m model.gguf (--tokens 1,2,3 | --random N [--seed S]) -o ref.h5\n"
        "\n"
        "Runs the CPU reference (float32 weights, double sums) of a phi3 model over the tokens from\n"
        "position 0 and writes an HDF5 fixture: root attributes (format, version, dims), /tokens, and\n"
        "per layer /layer_NN/{attn_norm,q,k,v,attn,attn_out,ffn_norm,ffn_act,ffn_out,out}, then\n"
        "/output_norm and /logits, one row per token.\n"
        "\n"
        "options:\n"
        "  -m, --model PATH      the GGUF model (architecture phi3)\n"
        "  --tokens LIST         comma-separated token ids\n"
        "  --random N            N tokens drawn uniformly from the vocabulary\n"
        "  --seed S              seed for --random (default 1)\n"
        "  --ctx N               context size for LongRoPE factor choice and the cache (default: the\n"
        "                        number of tokens)\n"
        "  --max-ram-gib X       refuse models whose float32 weights and cache need more (default 8)\n"
        "  --no-sliding-window   attend to the whole prefix even if the model sets a window\n"
        "  -o, --output PATH     the fixture to write\n"
        "  -h, --help\n");
}

static int parse_u64(const char *flag, const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v > max || s[0] == '-') {
        fprintf(stderr, "mkfixtures: %s needs a whole number up to %" PRIu64 ", got '%s'\n", flag, max, s ? s : "(nothing)");
        return 0;
    }
    *out = v;
    return 1;
}

/* "1,2,3" -> tokens (malloc'd); 0 with a message on a bad list. */
static int parse_tokens(const char *s, int32_t **out, uint32_t *n)
{
    uint32_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *t = malloc(cap * sizeof *t);
    if (!t) {
        fprintf(stderr, "mkfixtures: out of memory\n");
        return 0;
    }
    uint32_t k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end != ',' && *end != 0)) {
            fprintf(stderr, "mkfixtures: --tokens: '%s' is not a comma-separated list of token ids\n", s);
            free(t);
            return 0;
        }
        t[k++] = (int32_t)v;
        if (!*end) break;
        p = end + 1;
    }
    *out = t;
    *n = k;
    return 1;
}

typedef struct sink {
    vkllm_fixture *f;
    vkllm_status st;
    char err[600];
} sink;

static void on_checkpoint(void *user, int layer, const char *name, const float *data, uint32_t n_tok, uint32_t width)
{
    sink *s = user;
    if (s->st != VKLLM_OK) return;
    s->st = vkllm_fixture_write(s->f, layer, name, data, n_tok, width);
    if (s->st != VKLLM_OK) snprintf(s->err, sizeof s->err, "%s", vkllm_fixture_error(s->f));
}

int main(int argc, char **argv)
{
    const char *model = NULL, *output = NULL, *tokens_arg = NULL;
    uint64_t n_random = 0, seed = 1, ctx = 0;
    double max_gib = 8;
    int no_window = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model = v, i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            output = v, i++;
        } else if (!strcmp(a, "--tokens")) {
            tokens_arg = v, i++;
        } else if (!strcmp(a, "--random")) {
            if (!parse_u64(a, v, 1u << 20, &n_random)) return 2;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_u64(a, v, UINT64_MAX, &seed)) return 2;
            i++;
        } else if (!strcmp(a, "--ctx")) {
            if (!parse_u64(a, v, 1u << 24, &ctx)) return 2;
            i++;
        } else if (!strcmp(a, "--max-ram-gib")) {
            char *end;
            max_gib = v ? strtod(v, &end) : 0;
            if (!v || *end || !(max_gib > 0) || max_gib > 1e6) {
                fprintf(stderr, "mkfixtures: --max-ram-gib needs a positive number, got '%s'\n", v ? v : "(nothing)");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--no-sliding-window")) {
            no_window = 1;
        } else {
            fprintf(stderr, "mkfixtures: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (i >= argc) {
            fprintf(stderr, "mkfixtures: %s needs a value\n", a);
            return 2;
        }
    }
    if (!model || !output) {
        fprintf(stderr, "mkfixtures: -m MODEL and -o OUTPUT are required (see --help)\n");
        return 2;
    }
    if (!!tokens_arg == !!n_random) {
        fprintf(stderr, "mkfixtures: give exactly one of --tokens LIST and --random N (N >= 1)\n");
        return 2;
    }

    char err[600];
    int32_t *tokens = NULL;
    uint32_t n_tok = 0;
    vkllm_gguf *g = NULL;
    vkllm_ref_model *m = NULL;
    sink s = { NULL, VKLLM_OK, "" };
    int rc = 1;
    vkllm_phi3_hparams hp;
    if (vkllm_gguf_open(model, &g, err, sizeof err) != VKLLM_OK) {
        fprintf(stderr, "mkfixtures: %s\n", err); /* names the file already */
        goto out;
    }
    if (vkllm_phi3_read_hparams(g, &hp, err, sizeof err) != VKLLM_OK) {
        fprintf(stderr, "mkfixtures: %s: %s\n", model, err);
        goto out;
    }
    if (tokens_arg) {
        if (!parse_tokens(tokens_arg, &tokens, &n_tok)) goto out;
    } else {
        n_tok = (uint32_t)n_random;
        tokens = malloc(n_tok * sizeof *tokens);
        if (!tokens) {
            fprintf(stderr, "mkfixtures: out of memory\n");
            goto out;
        }
        uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ull; /* xorshift64*: reproducible on every platform */
        for (uint32_t i = 0; i < n_tok; i++) {
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            tokens[i] = (int32_t)((x * 0x2545f4914f6cdd1dull >> 32) % hp.n_vocab);
        }
    }
    for (uint32_t i = 0; i < n_tok; i++)
        if ((uint32_t)tokens[i] >= hp.n_vocab) {
            fprintf(stderr, "mkfixtures: token %" PRId32 " (at %" PRIu32 ") is outside the model's vocabulary of %" PRIu32 "\n",
                    tokens[i], i, hp.n_vocab);
            goto out;
        }
    if (ctx && ctx < n_tok) {
        fprintf(stderr, "mkfixtures: --ctx %" PRIu64 " is shorter than the %" PRIu32 " tokens\n", ctx, n_tok);
        goto out;
    }
    vkllm_ref_model_options opt = { ctx ? (uint32_t)ctx : n_tok, (uint64_t)(max_gib * (double)(1ull << 30)), no_window, 0 };
    if (vkllm_ref_model_create(g, &hp, &opt, &m, err, sizeof err) != VKLLM_OK) {
        fprintf(stderr, "mkfixtures: %s: %s\n", model, err);
        goto out;
    }
    vkllm_fixture_dims d;
    vkllm_fixture_dims_from_hparams(&d, &hp, n_tok);
    if (vkllm_fixture_create(output, &d, tokens, &s.f, err, sizeof err) != VKLLM_OK) {
        fprintf(stderr, "mkfixtures: %s\n", err);
        goto out;
    }
    if (vkllm_ref_model_forward(m, tokens, n_tok, 0, NULL, 0, on_checkpoint, &s) != VKLLM_OK) {
        fprintf(stderr, "mkfixtures: %s\n", vkllm_ref_model_error(m));
        goto out;
    }
    if (s.st != VKLLM_OK) {
        fprintf(stderr, "mkfixtures: %s: %s\n", output, s.err);
        goto out;
    }
    vkllm_status cs = vkllm_fixture_close(s.f, err, sizeof err);
    s.f = NULL;
    if (cs != VKLLM_OK) {
        fprintf(stderr, "mkfixtures: %s: %s\n", output, err);
        goto out;
    }
    printf("mkfixtures: %s: %" PRIu32 " tokens, %" PRIu32 " layers, %d checkpoints per layer\n", output, n_tok, hp.n_layer,
           VKLLM_REF_N_LAYER_CHECKPOINTS);
    rc = 0;
out:
    if (s.f) {
        vkllm_fixture_close(s.f, NULL, 0);
        remove(output); /* no half-written fixture left behind */
    }
    vkllm_ref_model_destroy(m);
    vkllm_gguf_close(g);
    free(tokens);
    return rc;
}
