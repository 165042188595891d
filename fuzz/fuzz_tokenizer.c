/* libFuzzer target: the tokenizer on arbitrary bytes, against the tiny model's byte-level BPE
 * vocabulary (written by mkmodel at start-up and read back through the GGUF reader) and a small
 * SentencePiece vocabulary with byte fallback.
 *
 * Input: byte 0 picks the mode, the rest is the text (or, for mode 3, token ids).
 *   0/1  byte-level BPE encode (1: special tokens matched) then decode: must give the bytes back
 *   2    SentencePiece encode (specials matched) then decode: must give the bytes back unless the
 *        text holds U+2581, which decodes as a space by design
 *   3    the rest as little-endian int32 ids, any value: raw decode and the streaming decoder, whose
 *        output must be valid UTF-8 and must not hold back more than 3 bytes
 * A broken invariant aborts (a finding); so does any sanitizer report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vkllm/gguf.h"
#include "vkllm/mkmodel.h"
#include "vkllm/tokenizer.h"

static vkllm_tokenizer *bpe, *spm;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", what, msg);
    abort();
}

static void make_spm(void)
{
    static const char *const pieces[] = { "\xe2\x96\x81", "t", "h", "e", "th", "he", "\xe2\x96\x81the", "\xe2\x96\x81t", "a", "n",
                                          "an", "\342\226\201an", "d", "and", "\xe3\x81\x82", "<|user|>", "<|end|>" };
    enum { NP = sizeof pieces / sizeof pieces[0] };
    const char *tok[3 + 256 + NP];
    char bytes[256][8];
    int32_t type[3 + 256 + NP];
    float score[3 + 256 + NP];
    uint32_t n = 0;
    tok[n] = "<unk>", type[n] = VKLLM_TOKEN_UNKNOWN, score[n++] = 0;
    tok[n] = "<s>", type[n] = VKLLM_TOKEN_CONTROL, score[n++] = 0;
    tok[n] = "</s>", type[n] = VKLLM_TOKEN_CONTROL, score[n++] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[n] = bytes[b], type[n] = VKLLM_TOKEN_BYTE, score[n++] = 0;
    }
    for (int i = 0; i < NP; i++) {
        tok[n] = pieces[i];
        type[n] = pieces[i][0] == '<' ? VKLLM_TOKEN_CONTROL : VKLLM_TOKEN_NORMAL;
        score[n++] = -(float)(i % 5);
    }
    vkllm_tokenizer_desc d = vkllm_tokenizer_desc_default();
    d.kind = VKLLM_TOKENIZER_SPM;
    d.n_tokens = n;
    d.tokens = tok;
    d.types = type;
    d.scores = score;
    d.unk = 0;
    d.bos = 1;
    d.eos = 2;
    d.add_bos = 1;
    char err[512];
    if (vkllm_tokenizer_create(&d, &spm, err, sizeof err)) die("SentencePiece vocabulary", err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/fuzz-tokenizer-XXXXXX", path[64], err[512];
    if (!mkdtemp(dir)) die("mkdtemp", "failed");
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    vkllm_mkmodel_config cfg;
    vkllm_mkmodel_preset("tiny", &cfg);
    cfg.n_layer = 1;
    cfg.ftype = VKLLM_MKMODEL_F32;
    cfg.threads = 1;
    if (vkllm_mkmodel_write(&cfg, path, NULL, err, sizeof err)) die("mkmodel", err);
    vkllm_gguf *g;
    if (vkllm_gguf_open(path, &g, err, sizeof err)) die("open", err);
    if (vkllm_tokenizer_create_gguf(g, &bpe, err, sizeof err)) die("tiny vocabulary", err);
    vkllm_gguf_close(g);
    remove(path);
    rmdir(dir);
    make_spm();
    return 0;
}

static int valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && s[i + 1] < 0xa0) return 0;
        if (c == 0xed && s[i + 1] > 0x9f) return 0;
        if (c == 0xf0 && s[i + 1] < 0x90) return 0;
        if (c == 0xf4 && s[i + 1] > 0x8f) return 0;
        i += k;
    }
    return 1;
}

static void round_trip(vkllm_tokenizer *t, const uint8_t *text, size_t len, unsigned eflags, unsigned dflags, int check)
{
    vkllm_tokens out = { 0 };
    if (vkllm_tokenizer_encode(t, (const char *)text, len, eflags, &out)) die("encode", vkllm_tokenizer_error(t));
    char *s;
    size_t n;
    if (vkllm_tokenizer_decode(t, out.ids, out.n, dflags, &s, &n)) die("decode", vkllm_tokenizer_error(t));
    if (check && (n != len || memcmp(s, text, len))) die("round trip", "decode(encode(text)) != text");
    free(s);
    vkllm_tokens_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0] % 4;
    const uint8_t *text = data + 1;
    size_t len = size - 1;
    if (mode == 0) round_trip(bpe, text, len, 0, 0, 1);
    else if (mode == 1) round_trip(bpe, text, len, VKLLM_TOKENIZE_SPECIAL, VKLLM_DECODE_SPECIAL, 1);
    else if (mode == 2) {
        int has_sp = 0;
        for (size_t i = 0; i + 2 < len; i++) has_sp |= text[i] == 0xe2 && text[i + 1] == 0x96 && text[i + 2] == 0x81;
        /* (no ADD_SPECIAL: a BOS rendered as "<s>" would not be in the text) */
        round_trip(spm, text, len, VKLLM_TOKENIZE_SPECIAL, VKLLM_DECODE_SPECIAL | VKLLM_DECODE_STRIP_SPACE, !has_sp);
    } else {
        vkllm_tokenizer *t = (len & 1) ? spm : bpe;
        size_t n = len / 4;
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        if (!ids) return 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)text[4 * i] | (uint32_t)text[4 * i + 1] << 8 | (uint32_t)text[4 * i + 2] << 16 |
                         (uint32_t)text[4 * i + 3] << 24;
            /* mostly in range, sometimes anything */
            ids[i] = (v >> 31) ? (int32_t)v : (int32_t)(v % (vkllm_tokenizer_n_vocab(t) + 2));
        }
        char *s;
        size_t sl;
        vkllm_status st = vkllm_tokenizer_decode(t, ids, n, VKLLM_DECODE_SPECIAL, &s, &sl);
        if (st == VKLLM_OK) free(s);
        else if (st != VKLLM_ERROR_OUT_OF_RANGE) die("decode", vkllm_tokenizer_error(t));
        vkllm_detok *d;
        if (vkllm_detok_create(t, len ? text[0] & 3u : 0u, &d)) die("detok", "create");
        for (size_t i = 0; i < n; i++) {
            const char *o;
            size_t on;
            st = vkllm_detok_push(d, ids[i], &o, &on);
            if (st == VKLLM_ERROR_OUT_OF_RANGE) continue;
            if (st) die("detok push", vkllm_detok_error(d));
            if (!valid_utf8((const uint8_t *)o, on)) die("detok", "invalid UTF-8 out");
            if (vkllm_detok_pending(d) > 3) die("detok", "holds more than 3 bytes");
        }
        const char *o;
        size_t on;
        if (vkllm_detok_flush(d, &o, &on) || !valid_utf8((const uint8_t *)o, on)) die("detok", "flush");
        vkllm_detok_destroy(d);
        free(ids);
    }
    return 0;
}
