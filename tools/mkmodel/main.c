/* mkmodel: write a random-weight phi3 (Phi-3 / Phi-4 shaped) GGUF model. See --help. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vkllm/mkmodel.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: mkmodel [--preset NAME] [options] -o out.gguf\n"
        "\n"
        "Writes a GGUF model of architecture phi3 with random weights, the metadata keys and tensor\n"
        "names llama.cpp writes for Phi-3/Phi-4, and a small real byte-level BPE vocabulary (gpt2\n"
        "tokenizer: 256 byte tokens, merges learned from a built-in English text, 8 special tokens\n"
        "<|endoftext|> <|im_start|> <|im_sep|> <|im_end|> <|user|> <|assistant|> <|system|> <|end|>,\n"
        "padded with <|dummy_N|> up to the vocabulary size). Same seed and options give the same bytes,\n"
        "whatever the thread count.\n"
        "\n"
        "presets (default tiny):\n"
        "  tiny       2 layers, embd 256, 4 heads of 64, 2 kv heads, ff 512, vocab 1024, ctx 4096\n"
        "  phi3-mini  32 layers, embd 3072, 32 heads, 32 kv heads, ff 8192, vocab 32064 (the gpt2\n"
        "             vocabulary above padded to 32064, not Phi-3's SentencePiece one), ctx 4096,\n"
        "             rope base 10000, sliding window 2047\n"
        "  phi4       40 layers, embd 5120, 40 heads, 10 kv heads of 128, ff 17920, vocab 100352,\n"
        "             ctx 16384, rope base 250000, no sliding window\n"
        "\n"
        "options (override the preset):\n"
        "  --layers N --embd N --heads N --kv-heads N --ff N --vocab N --ctx N\n"
        "  --rope-base X --eps X --sliding-window N (0 = none) --merges N (BPE merges, default 600)\n"
        "  --name TEXT          general.name\n"
        "  --type T             f32 | f16 | q8_0 | q4_0 | q4_k_m (default q4_k_m). Norms are always f32.\n"
        "                       q4_k_m: attn_qkv q5_K, output q6_K, ffn_down q6_K in llama.cpp's\n"
        "                       use_more_bits layers, the rest (token_embd included) q4_K.\n"
        "                       q4_0: output q6_K as llama.cpp does. Rows that are not whole blocks\n"
        "                       fall back to q4_0/q8_0, then f16.\n"
        "  --exact              draw float weights and quantize them with the reference quantizer\n"
        "                       (slow); default: draw valid quantized blocks of the same scale directly\n"
        "  --seed N             default 1\n"
        "  --threads N          default: all CPUs\n"
        "  -o, --output PATH    the file to write (required)\n"
        "  -n, --dry-run        check the options and print the size, write nothing\n"
        "  -q, --quiet          no progress bar or summary\n"
        "  -h, --help\n");
}

static int parse_u32(const char *flag, const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v > UINT32_MAX || s[0] == '-') {
        fprintf(stderr, "mkmodel: %s needs a whole number up to %" PRIu32 ", got '%s'\n", flag, UINT32_MAX,
                s ? s : "(nothing)");
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

static int parse_f32(const char *flag, const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || errno || !isfinite(v)) {
        fprintf(stderr, "mkmodel: %s needs a number, got '%s'\n", flag, s ? s : "(nothing)");
        return 0;
    }
    *out = (float)v;
    return 1;
}

typedef struct progress_state { double t0; int last; } progress_state;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress(void *user, uint64_t done, uint64_t total)
{
    progress_state *p = user;
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (pct == p->last) return;
    p->last = pct;
    double dt = now() - p->t0;
    int bar = pct / 2;
    fprintf(stderr, "\r[%.*s%*s] %3d%% %8.1f MiB %6.1f MiB/s", bar,
            "##################################################", 50 - bar, "", pct,
            (double)done / 1048576.0, dt > 0 ? (double)done / 1048576.0 / dt : 0.0);
    if (done == total) fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    const char *preset = "tiny", *out = NULL;
    int dry = 0, quiet = 0;
    /* the preset must be known before the overrides, so find it first */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--preset")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mkmodel: --preset needs a name (tiny, phi3-mini, phi4)\n");
                return 2;
            }
            preset = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
    vkllm_mkmodel_config cfg;
    if (vkllm_mkmodel_preset(preset, &cfg) != VKLLM_OK) {
        fprintf(stderr, "mkmodel: unknown preset '%s' (tiny, phi3-mini, phi4)\n", preset);
        return 2;
    }
    uint32_t merges_before = cfg.n_merges, vocab_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1, takes = 1;
        if (!strcmp(a, "--preset")) ;
        else if (!strcmp(a, "--layers")) ok = parse_u32(a, v, &cfg.n_layer);
        else if (!strcmp(a, "--embd")) ok = parse_u32(a, v, &cfg.n_embd);
        else if (!strcmp(a, "--heads")) ok = parse_u32(a, v, &cfg.n_head);
        else if (!strcmp(a, "--kv-heads")) ok = parse_u32(a, v, &cfg.n_head_kv);
        else if (!strcmp(a, "--ff")) ok = parse_u32(a, v, &cfg.n_ff);
        else if (!strcmp(a, "--vocab")) { ok = parse_u32(a, v, &cfg.n_vocab); vocab_set = 1; }
        else if (!strcmp(a, "--ctx")) ok = parse_u32(a, v, &cfg.n_ctx);
        else if (!strcmp(a, "--sliding-window")) ok = parse_u32(a, v, &cfg.sliding_window);
        else if (!strcmp(a, "--merges")) ok = parse_u32(a, v, &cfg.n_merges);
        else if (!strcmp(a, "--threads")) {
            uint32_t t;
            ok = parse_u32(a, v, &t);
            cfg.threads = t;
        } else if (!strcmp(a, "--rope-base")) ok = parse_f32(a, v, &cfg.rope_base);
        else if (!strcmp(a, "--eps")) ok = parse_f32(a, v, &cfg.eps);
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = v ? strtoull(v, &end, 0) : 0;
            ok = v && *v && !*end && !errno && v[0] != '-';
            if (!ok) fprintf(stderr, "mkmodel: --seed needs a whole number, got '%s'\n", v ? v : "(nothing)");
            cfg.seed = s;
        } else if (!strcmp(a, "--name")) {
            ok = v != NULL;
            if (!ok) fprintf(stderr, "mkmodel: --name needs a text\n");
            cfg.name = v;
        } else if (!strcmp(a, "--type")) {
            ok = vkllm_mkmodel_parse_ftype(v, &cfg.ftype) == VKLLM_OK;
            if (!ok) fprintf(stderr, "mkmodel: --type must be f32, f16, q8_0, q4_0 or q4_k_m, got '%s'\n", v ? v : "(nothing)");
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            ok = v != NULL;
            if (!ok) fprintf(stderr, "mkmodel: %s needs a path\n", a);
            out = v;
        } else {
            takes = 0;
            if (!strcmp(a, "--exact")) cfg.exact_quant = 1;
            else if (!strcmp(a, "-n") || !strcmp(a, "--dry-run")) dry = 1;
            else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) quiet = 1;
            else {
                fprintf(stderr, "mkmodel: unknown option '%s' (see --help)\n", a);
                return 2;
            }
        }
        if (!ok) return 2;
        i += takes;
    }
    /* the tiny preset's vocabulary follows the merge count unless given */
    if (!vocab_set && !strcmp(preset, "tiny") && cfg.n_merges != merges_before)
        cfg.n_vocab = (vkllm_mkmodel_base_vocab(cfg.n_merges) + 255) / 256 * 256;
    if (!out && !dry) {
        fprintf(stderr, "mkmodel: no output file: give -o out.gguf (or --dry-run)\n");
        return 2;
    }
    progress_state ps = { now(), -1 };
    if (!quiet && !dry && isatty(2)) {
        cfg.progress = progress;
        cfg.progress_user = &ps;
    }
    char err[512];
    uint64_t size = 0;
    vkllm_status s = vkllm_mkmodel_write(&cfg, dry ? NULL : out, &size, err, sizeof err);
    if (s != VKLLM_OK) {
        fprintf(stderr, "mkmodel: %s\n", err);
        return 1;
    }
    double dt = now() - ps.t0;
    if (!quiet)
        fprintf(stderr, "mkmodel: %s%s: %s %s, %" PRIu32 " layers, embd %" PRIu32 ", vocab %" PRIu32
                ", %.1f MiB%s in %.2f s\n", dry ? "would write " : "", dry ? (out ? out : "(nothing)") : out,
                preset, vkllm_mkmodel_ftype_name(cfg.ftype), cfg.n_layer, cfg.n_embd, cfg.n_vocab,
                (double)size / 1048576.0, dry ? "" : " written", dt);
    return 0;
}
