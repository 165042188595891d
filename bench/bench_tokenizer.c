/* bench-tokenizer: encode and decode throughput of the tokenizer on one core.
 *
 * usage: bench-tokenizer [-m model.gguf] [-f text.txt] [--mb N] [--reps R] [--merges M]
 *   -m   the model whose tokenizer to measure (default: the tiny model's byte-level BPE vocabulary,
 *        written to a temporary file, with M merges: 600 as the tiny model, up to all the built-in
 *        text yields)
 *   -f   the text (default: N MiB of synthetic English: words drawn with Zipf's law from 20000
 *        word forms, common words first, with punctuation, numbers and paragraphs, so the word
 *        cache sees realistic reuse rather than one sentence repeated)
 * Reports the best of R runs (MB/s = 1e6 bytes of text per second) by wall clock and by the thread's
 * CPU time (steadier on a shared machine), bytes per token, and decode speed. No GPU is used. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vkllm/gguf.h"
#include "vkllm/mkmodel.h"
#include "vkllm/tokenizer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: on a shared machine it counts only the time the encoder ran */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *const common[] = {
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he",
    "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their", "one",
    "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "she",
    "other", "its", "may", "these", "about", "them", "than", "some", "time", "into", "only", "do", "could", "new",
    "people", "my", "first", "two", "any", "like", "very", "what", "then", "our", "years", "made", "after", "many",
    "model", "memory", "program", "river", "town", "bread", "water", "weather", "language", "computer", "number",
    "question", "answer", "problem", "system", "world", "example", "however", "between", "because", "through",
    "don't", "it's", "we've", "they're", "I'll", "you'd", "government", "information", "development", "understand",
};

static void make_text(char *buf, size_t n)
{
    static const char *const syl[] = { "ka", "ter", "lo", "min", "stra", "ble", "ing", "tion", "an", "er", "pre", "con",
                                       "ous", "ly", "ment", "ra", "di", "ver", "sum", "ple", "ex", "tri", "al", "ic" };
    const size_t n_forms = 20000, n_common = sizeof common / sizeof common[0];
    /* Zipf(1) by inverse CDF over ranks */
    double *cdf = malloc(n_forms * sizeof *cdf), z = 0;
    for (size_t i = 0; i < n_forms; i++) z += 1.0 / (i + 1);
    double acc = 0;
    for (size_t i = 0; i < n_forms; i++) cdf[i] = (acc += 1.0 / (i + 1) / z);
    size_t k = 0, in_sentence = 0;
    while (k + 64 < n) {
        double u = (double)(next() >> 11) / 9007199254740992.0;
        size_t lo = 0, hi = n_forms - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cdf[mid] < u) lo = mid + 1;
            else hi = mid;
        }
        char w[64];
        if (lo < n_common) snprintf(w, sizeof w, "%s", common[lo]);
        else {
            uint64_t h = lo * 0x9e3779b97f4a7c15ull;
            w[0] = 0;
            for (int s = 0; s < 1 + (int)(h % 4); s++) {
                strcat(w, syl[(h >> (8 + 5 * s)) % (sizeof syl / sizeof syl[0])]);
            }
        }
        if (!in_sentence) w[0] = (char)(w[0] >= 'a' && w[0] <= 'z' ? w[0] - 32 : w[0]);
        uint64_t r = next();
        if (r % 97 == 0) snprintf(w, sizeof w, "%llu", (unsigned long long)(r >> 20) % 100000);
        if (in_sentence) buf[k++] = ' ';
        size_t l = strlen(w);
        memcpy(buf + k, w, l);
        k += l;
        in_sentence++;
        if (r % 13 == 0) buf[k++] = ',';
        if (in_sentence > 6 && r % 9 == 0) {
            buf[k++] = r % 50 == 0 ? '?' : '.';
            in_sentence = 0;
            if (r % 7 == 0) {
                buf[k++] = '\n';
                buf[k++] = '\n';
            } else {
                buf[k++] = ' ';
            }
        }
    }
    buf[k] = 0;
    free(cdf);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *file = NULL;
    unsigned mb = 8, reps = 5, merges = 600;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--merges") && i + 1 < argc) merges = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) { mb = 1; reps = 1; }
        else {
            fprintf(stderr, "usage: bench-tokenizer [-m model.gguf] [-f text.txt] [--mb N] [--reps R] [--merges M] [--quick]\n");
            return 2;
        }
    }
    if (!mb) mb = 1;
    if (!reps) reps = 1;
    char tmp[] = "/tmp/bench-tokenizer-XXXXXX", path[64], err[512];
    if (!model) {
        if (!mkdtemp(tmp)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(path, sizeof path, "%s/tiny.gguf", tmp);
        vkllm_mkmodel_config cfg;
        vkllm_mkmodel_preset("tiny", &cfg);
        cfg.n_layer = 1;
        cfg.ftype = VKLLM_MKMODEL_F32;
        if (merges > vkllm_mkmodel_max_merges()) merges = vkllm_mkmodel_max_merges();
        cfg.n_merges = merges;
        cfg.n_vocab = (vkllm_mkmodel_base_vocab(merges) + 255) / 256 * 256;
        if (vkllm_mkmodel_write(&cfg, path, NULL, err, sizeof err)) {
            fprintf(stderr, "bench-tokenizer: %s\n", err);
            return 1;
        }
        model = path;
    }
    vkllm_gguf *g;
    if (vkllm_gguf_open(model, &g, err, sizeof err)) {
        fprintf(stderr, "bench-tokenizer: %s\n", err);
        return 1;
    }
    double t0 = now();
    vkllm_tokenizer *t;
    if (vkllm_tokenizer_create_gguf(g, &t, err, sizeof err)) {
        fprintf(stderr, "bench-tokenizer: %s: %s\n", model, err);
        return 1;
    }
    double t_build = now() - t0;
    vkllm_gguf_close(g);
    if (!file) {
        remove(path);
        rmdir(tmp);
    }
    char *text;
    size_t len;
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            perror(file);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        text = malloc((size_t)sz + 1);
        len = fread(text, 1, (size_t)sz, f);
        fclose(f);
    } else {
        len = (size_t)mb << 20;
        text = malloc(len + 1);
        make_text(text, len);
        len = strlen(text);
    }
    vkllm_tokens out = { 0 };
    double best = 1e30, best_cpu = 1e30;
    for (unsigned r = 0; r < reps; r++) {
        out.n = 0;
        /* a fresh tokenizer state is not needed: the cache is part of the design, but the first run
         * starts cold, and best-of-R reports the warm one */
        double a = now(), ac = cpu_now();
        if (vkllm_tokenizer_encode(t, text, len, 0, &out)) {
            fprintf(stderr, "bench-tokenizer: %s\n", vkllm_tokenizer_error(t));
            return 1;
        }
        double b = now() - a, bc = cpu_now() - ac;
        if (b < best) best = b;
        if (bc < best_cpu) best_cpu = bc;
        if (r == 0) printf("cold run: %.1f MB/s\n", len / b / 1e6);
    }
    char *dec;
    size_t dlen;
    double a = now();
    if (vkllm_tokenizer_decode(t, out.ids, out.n, 0, &dec, &dlen)) return 1;
    double td = now() - a;
    int exact = dlen == len && !memcmp(dec, text, len);
    printf("| vocabulary | text | bytes | tokens | bytes/token | build s | encode MB/s (wall) | encode MB/s (CPU time) "
           "| decode MB/s | round trip |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    printf("| %s (%u tokens, %s) | %s | %zu | %zu | %.2f | %.3f | %.1f | %.1f | %.0f | %s |\n", model == path ? "tiny" : model,
           vkllm_tokenizer_n_vocab(t), vkllm_tokenizer_kind_of(t) == VKLLM_TOKENIZER_BPE ? "byte-level BPE" : "SentencePiece",
           file ? file : "synthetic English (Zipf)", len, out.n, (double)len / out.n, t_build, len / best / 1e6, len / best_cpu / 1e6,
           len / td / 1e6, exact ? "exact" : "DIFFERS");
    free(dec);
    free(text);
    vkllm_tokens_free(&out);
    vkllm_tokenizer_destroy(t);
    return exact ? 0 : 1;
}
