/* Tokenizer: known tokenizations of hand-built vocabularies of both kinds (merge order, the GPT-4
 * pre-tokenizer split, byte fallback, special tokens inside text, emoji, combining marks, CJK,
 * numbers in threes, runs of spaces and newlines), encode/decode round trips on random valid and
 * invalid UTF-8, the streaming decoder holding back split characters, the tiny model's vocabulary
 * end to end, chat templates, and hostile metadata refused with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "vkllm/gguf.h"
#include "vkllm/mkmodel.h"
#include "vkllm/tokenizer.h"

/* ------------------------------------------------------------------------------------------------
 * Hand-built byte-level BPE vocabularies */

typedef struct vocab {
    char *tok[1024];
    int32_t type[1024];
    float score[1024];
    uint32_t n;
    char *merge[512];
    uint32_t n_merges;
} vocab;

static void vocab_free(vocab *v)
{
    for (uint32_t i = 0; i < v->n; i++) free(v->tok[i]);
    for (uint32_t i = 0; i < v->n_merges; i++) free(v->merge[i]);
    memset(v, 0, sizeof *v);
}

static uint32_t add_tok(vocab *v, const char *s, int32_t type)
{
    assert_true(v->n < 1024);
    v->tok[v->n] = strdup(s);
    v->type[v->n] = type;
    v->score[v->n] = 0;
    return v->n++;
}

/* The GPT-2 byte alphabet, written independently of the library: byte b's character. */
static void byte_char(unsigned b, char out[4])
{
    unsigned cp = b, extra = 0;
    int direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    if (!direct) {
        for (unsigned c = 0; c < b; c++)
            if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) extra++;
        cp = 256 + extra;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

/* 256 byte tokens in byte order: byte b is token b. */
static void bpe_bytes(vocab *v)
{
    memset(v, 0, sizeof *v);
    for (unsigned b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        add_tok(v, c, VKLLM_TOKEN_NORMAL);
    }
}

/* Adds the merge "a b" (texts in the byte alphabet, given as plain bytes) and its token. */
static uint32_t add_merge(vocab *v, const char *a, const char *b)
{
    char ea[64] = "", eb[64] = "", m[160];
    for (const char *p = a; *p; p++) byte_char((uint8_t)*p, ea + strlen(ea));
    for (const char *p = b; *p; p++) byte_char((uint8_t)*p, eb + strlen(eb));
    snprintf(m, sizeof m, "%s %s", ea, eb);
    v->merge[v->n_merges++] = strdup(m);
    char cat[128];
    snprintf(cat, sizeof cat, "%s%s", ea, eb);
    for (uint32_t i = 0; i < v->n; i++)
        if (!strcmp(v->tok[i], cat)) return i;
    return add_tok(v, cat, VKLLM_TOKEN_NORMAL);
}

static vkllm_tokenizer *make(const vocab *v, vkllm_tokenizer_kind kind, const char *pre)
{
    vkllm_tokenizer_desc d = vkllm_tokenizer_desc_default();
    d.kind = kind;
    d.n_tokens = v->n;
    d.tokens = (const char *const *)v->tok;
    d.types = v->type;
    d.scores = v->score;
    d.n_merges = v->n_merges;
    d.merges = (const char *const *)v->merge;
    d.pre = pre;
    vkllm_tokenizer *t = NULL;
    char err[512];
    vkllm_status s = vkllm_tokenizer_create(&d, &t, err, sizeof err);
    if (s) fail_msg("tokenizer_create: %s", err);
    return t;
}

/* Encodes and compares with want[0..n). */
static void expect_ids(vkllm_tokenizer *t, const char *text, unsigned flags, const int32_t *want, size_t n)
{
    vkllm_tokens out = { 0 };
    assert_int_equal(vkllm_tokenizer_encode(t, text, strlen(text), flags, &out), VKLLM_OK);
    int same = out.n == n;
    for (size_t i = 0; same && i < n; i++) same = out.ids[i] == want[i];
    if (!same) {
        fprintf(stderr, "encode('%s'): got", text);
        for (size_t i = 0; i < out.n; i++) fprintf(stderr, " %d", out.ids[i]);
        fprintf(stderr, ", want");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
        fail();
    }
    vkllm_tokens_free(&out);
}

static void test_bpe_merge_order(void **state)
{
    (void)state;
    vocab v;
    bpe_bytes(&v);
    uint32_t ab = add_merge(&v, "a", "b"), bc = add_merge(&v, "b", "c");
    vkllm_tokenizer *t = make(&v, VKLLM_TOKENIZER_BPE, NULL);
    expect_ids(t, "abc", 0, (int32_t[]){ (int32_t)ab, 'c' }, 2);
    vkllm_tokenizer_destroy(t);
    /* the same merges in the other order: the other split */
    char *m0 = v.merge[0];
    v.merge[0] = v.merge[1];
    v.merge[1] = m0;
    t = make(&v, VKLLM_TOKENIZER_BPE, NULL);
    expect_ids(t, "abc", 0, (int32_t[]){ 'a', (int32_t)bc }, 2);
    /* leftmost first among equal ranks; merged results merge further */
    vkllm_tokenizer_destroy(t);
    vocab_free(&v);
    bpe_bytes(&v);
    uint32_t aa = add_merge(&v, "a", "a"), aaaa = add_merge(&v, "aa", "aa");
    t = make(&v, VKLLM_TOKENIZER_BPE, NULL);
    expect_ids(t, "aaa", 0, (int32_t[]){ (int32_t)aa, 'a' }, 2);
    expect_ids(t, "aaaaa", 0, (int32_t[]){ (int32_t)aaaa, 'a' }, 2);
    expect_ids(t, "aaaaaaa", 0, (int32_t[]){ (int32_t)aaaa, (int32_t)aa, 'a' }, 3);
    /* a piece longer than the merge loop takes at once is cut at 64 KiB: here the cuts fall on
     * multiples of 4, so the tokens are those of the whole */
    {
        size_t big = 200000;
        char *huge = malloc(big);
        memset(huge, 'a', big);
        vkllm_tokens out = { 0 };
        assert_int_equal(vkllm_tokenizer_encode(t, huge, big, 0, &out), VKLLM_OK);
        assert_int_equal(out.n, big / 4);
        for (size_t i = 0; i < out.n; i++) assert_int_equal(out.ids[i], (int32_t)aaaa);
        vkllm_tokens_free(&out);
        free(huge);
    }
    /* a long word goes through the same merge loop (and the cache, the second time) */
    char longw[1001];
    memset(longw, 'a', 1000);
    longw[1000] = 0;
    for (int rep = 0; rep < 2; rep++) {
        vkllm_tokens out = { 0 };
        assert_int_equal(vkllm_tokenizer_encode(t, longw, 1000, 0, &out), VKLLM_OK);
        assert_int_equal(out.n, 250);
        for (size_t i = 0; i < out.n; i++) assert_int_equal(out.ids[i], (int32_t)aaaa);
        vkllm_tokens_free(&out);
    }
    vkllm_tokenizer_destroy(t);
    vocab_free(&v);
}

/* Checks the pre-tokenizer's pieces of text against want (pieces joined by '|'). */
static void expect_split(vkllm_tokenizer *t, const char *text, const char *want)
{
    size_t ends[256], n = 0, len = strlen(text);
    assert_int_equal(vkllm_tokenizer_split(t, text, len, ends, 256, &n), VKLLM_OK);
    char got[2048];
    size_t k = 0, prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) got[k++] = '|';
        memcpy(got + k, text + prev, ends[i] - prev);
        k += ends[i] - prev;
        prev = ends[i];
    }
    got[k] = 0;
    assert_int_equal(prev, len);
    if (strcmp(got, want)) fail_msg("split('%s'):\n got  '%s'\n want '%s'", text, got, want);
}

static void test_bpe_pretokenizer(void **state)
{
    (void)state;
    vocab v;
    bpe_bytes(&v);
    vkllm_tokenizer *t = make(&v, VKLLM_TOKENIZER_BPE, "dbrx");
    /* GPT-4 (cl100k) rules */
    expect_split(t, "Hello world", "Hello| world");
    expect_split(t, "I'm  fine!\n\n", "I|'m| | fine|!\n\n");
    expect_split(t, "DON'T you've", "DON|'T| you|'ve");
    expect_split(t, "1234567 89", "123|456|7| |89");
    expect_split(t, "a  b", "a| | b");
    expect_split(t, "a\n\n  b", "a|\n\n| | b");
    expect_split(t, "end.   ", "end|.|   ");
    expect_split(t, "x\r\n\r\ny", "x|\r\n\r\n|y");
    expect_split(t, "日本語のテキスト", "日本語のテキスト");            /* CJK letters: one run */
    expect_split(t, "hi 😀😀!", "hi| 😀😀!");                          /* emoji are punctuation-like */
    expect_split(t, "cafe\xcc\x81 ok", "cafe|\xcc\x81| ok");            /* a combining mark is not a letter */
    expect_split(t, "$100.5", "$|100|.|5");
    expect_split(t, "\tfoo", "\tfoo");                                  /* one non-letter may lead a word */
    /* an invalid byte is a piece of its own; the valid text around it is split as usual */
    expect_split(t, "ab\xff" "cd ef", "ab|\xff|cd| ef");
    vkllm_tokenizer_destroy(t);
    /* GPT-2 rules: numbers not cut in threes, no case-insensitive contractions */
    t = make(&v, VKLLM_TOKENIZER_BPE, "gpt2");
    expect_split(t, "1234567 89", "1234567| 89");
    expect_split(t, "I'M ok", "I|'|M| ok");
    vkllm_tokenizer_destroy(t);
    vocab_free(&v);
}

static void test_bpe_special(void **state)
{
    (void)state;
    vocab v;
    bpe_bytes(&v);
    uint32_t hi = add_merge(&v, "h", "i");
    uint32_t user = add_tok(&v, "<|user|>", VKLLM_TOKEN_CONTROL);
    uint32_t end = add_tok(&v, "<|end|>", VKLLM_TOKEN_CONTROL);
    uint32_t im = add_tok(&v, "<|im|>", VKLLM_TOKEN_USER_DEFINED);
    uint32_t im_long = add_tok(&v, "<|im|>x", VKLLM_TOKEN_USER_DEFINED);
    add_tok(&v, "<|unused|>", VKLLM_TOKEN_UNUSED);
    vkllm_tokenizer *t = make(&v, VKLLM_TOKENIZER_BPE, NULL);
    expect_ids(t, "<|user|>hi<|end|>", VKLLM_TOKENIZE_SPECIAL, (int32_t[]){ (int32_t)user, (int32_t)hi, (int32_t)end }, 3);
    /* inside a word, next to each other, longest first; unused tokens are not matched */
    expect_ids(t, "h<|end|><|end|>i", VKLLM_TOKENIZE_SPECIAL, (int32_t[]){ 'h', (int32_t)end, (int32_t)end, 'i' }, 4);
    expect_ids(t, "<|im|>x<|im|>", VKLLM_TOKENIZE_SPECIAL, (int32_t[]){ (int32_t)im_long, (int32_t)im }, 2);
    vkllm_tokens out = { 0 };
    assert_int_equal(vkllm_tokenizer_encode(t, "<|unused|>", 10, VKLLM_TOKENIZE_SPECIAL, &out), VKLLM_OK);
    assert_int_equal(out.n, 10);
    vkllm_tokens_free(&out);
    /* without the flag the text is text */
    assert_int_equal(vkllm_tokenizer_encode(t, "<|user|>", 8, 0, &out), VKLLM_OK);
    assert_int_equal(out.n, 8);
    assert_int_equal(out.ids[0], '<');
    vkllm_tokens_free(&out);
    /* a partial special token is text */
    expect_ids(t, "<|use", VKLLM_TOKENIZE_SPECIAL, (int32_t[]){ '<', '|', 'u', 's', 'e' }, 5);
    /* decoding: control tokens only with DECODE_SPECIAL, user-defined always */
    int32_t ids[3] = { (int32_t)user, (int32_t)hi, (int32_t)im };
    char *s;
    size_t n;
    assert_int_equal(vkllm_tokenizer_decode(t, ids, 3, 0, &s, &n), VKLLM_OK);
    assert_string_equal(s, "hi<|im|>");
    free(s);
    assert_int_equal(vkllm_tokenizer_decode(t, ids, 3, VKLLM_DECODE_SPECIAL, &s, &n), VKLLM_OK);
    assert_string_equal(s, "<|user|>hi<|im|>");
    free(s);
    int32_t bad = (int32_t)v.n;
    assert_int_equal(vkllm_tokenizer_decode(t, &bad, 1, 0, &s, &n), VKLLM_ERROR_OUT_OF_RANGE);
    assert_non_null(strstr(vkllm_tokenizer_error(t), "outside the vocabulary"));
    vkllm_tokenizer_destroy(t);
    vocab_free(&v);
}

/* ------------------------------------------------------------------------------------------------
 * SentencePiece */

#define SP "\xe2\x96\x81"

/* <unk> <s> </s> <0x00>..<0xFF>, then pieces with scores. */
static void spm_base(vocab *v)
{
    memset(v, 0, sizeof *v);
    add_tok(v, "<unk>", VKLLM_TOKEN_UNKNOWN);
    add_tok(v, "<s>", VKLLM_TOKEN_CONTROL);
    add_tok(v, "</s>", VKLLM_TOKEN_CONTROL);
    for (unsigned b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        add_tok(v, s, VKLLM_TOKEN_BYTE);
    }
}

static uint32_t add_piece(vocab *v, const char *s, float score)
{
    uint32_t id = add_tok(v, s, VKLLM_TOKEN_NORMAL);
    v->score[id] = score;
    return id;
}

static vkllm_tokenizer *make_spm(const vocab *v, int add_bos)
{
    vkllm_tokenizer_desc d = vkllm_tokenizer_desc_default();
    d.kind = VKLLM_TOKENIZER_SPM;
    d.n_tokens = v->n;
    d.tokens = (const char *const *)v->tok;
    d.types = v->type;
    d.scores = v->score;
    d.unk = 0;
    d.bos = 1;
    d.eos = 2;
    d.add_bos = add_bos;
    vkllm_tokenizer *t = NULL;
    char err[512];
    if (vkllm_tokenizer_create(&d, &t, err, sizeof err)) fail_msg("create: %s", err);
    return t;
}

static void test_spm(void **state)
{
    (void)state;
    vocab v;
    spm_base(&v);
    int32_t sp = (int32_t)add_piece(&v, SP, -10);
    int32_t h = (int32_t)add_piece(&v, "h", -11), e = (int32_t)add_piece(&v, "e", -12);
    int32_t l = (int32_t)add_piece(&v, "l", -13), o = (int32_t)add_piece(&v, "o", -14);
    int32_t ll = (int32_t)add_piece(&v, "ll", -1);
    int32_t he = (int32_t)add_piece(&v, "he", -3);
    int32_t el = (int32_t)add_piece(&v, "el", -2);
    int32_t hell = (int32_t)add_piece(&v, "hell", -4);
    int32_t sp_hell = (int32_t)add_piece(&v, SP "hell", -5);
    int32_t sp_h = (int32_t)add_piece(&v, SP "h", -6);
    int32_t w = (int32_t)add_piece(&v, "w", -15);
    int32_t user = (int32_t)add_tok(&v, "<|user|>", VKLLM_TOKEN_CONTROL);
    add_piece(&v, "ca", -19);
    int32_t cafe = (int32_t)add_piece(&v, "caf", -20);
    (void)el;
    (void)sp_h;
    (void)ll;
    vkllm_tokenizer *t = make_spm(&v, 1);
    /* "▁hello": ll (-1) first, then he (-3; el lost its l), then hell, ▁hell, and o stays */
    expect_ids(t, "hello", 0, (int32_t[]){ sp_hell, o }, 2);
    expect_ids(t, "hello", VKLLM_TOKENIZE_ADD_SPECIAL, (int32_t[]){ 1, sp_hell, o }, 3);
    /* scores decide, not order: with el above ll the word splits differently */
    vkllm_tokenizer_destroy(t);
    v.score[el] = 0;
    t = make_spm(&v, 0);
    expect_ids(t, "hello", 0, (int32_t[]){ sp_h, el, l, o }, 4);
    vkllm_tokenizer_destroy(t);
    v.score[el] = -2;
    t = make_spm(&v, 0);
    (void)he;
    (void)hell;
    (void)h;
    (void)e;
    /* spaces are pieces; byte fallback for characters the vocabulary lacks */
    expect_ids(t, "w  w", 0, (int32_t[]){ sp, w, sp, sp, w }, 5);
    expect_ids(t, "café", 0, (int32_t[]){ sp, cafe, 3 + 0xc3, 3 + 0xa9 }, 4);
    expect_ids(t, "😀", 0, (int32_t[]){ sp, 3 + 0xf0, 3 + 0x9f, 3 + 0x98, 3 + 0x80 }, 5);
    /* invalid UTF-8 falls back to its bytes too */
    expect_ids(t, "w\xff", 0, (int32_t[]){ sp, w, 3 + 0xff }, 3);
    /* special tokens: matched whole, and the text after one gets the space prefix again */
    expect_ids(t, "<|user|>w", VKLLM_TOKENIZE_SPECIAL, (int32_t[]){ user, sp, w }, 3);
    expect_ids(t, "w<|user|>", VKLLM_TOKENIZE_SPECIAL, (int32_t[]){ sp, w, user }, 3);
    /* decoding: ▁ is a space, bytes are bytes, the leading space goes with STRIP_SPACE */
    vkllm_tokens out = { 0 };
    const char *text = "  hello café 😀\nw";
    assert_int_equal(vkllm_tokenizer_encode(t, text, strlen(text), VKLLM_TOKENIZE_ADD_SPECIAL, &out), VKLLM_OK);
    char *s;
    size_t n;
    assert_int_equal(vkllm_tokenizer_decode(t, out.ids, out.n, VKLLM_DECODE_STRIP_SPACE, &s, &n), VKLLM_OK);
    assert_string_equal(s, text);
    free(s);
    assert_int_equal(vkllm_tokenizer_decode(t, out.ids, out.n, 0, &s, &n), VKLLM_OK);
    assert_int_equal(s[0], ' ');
    assert_string_equal(s + 1, text);
    free(s);
    vkllm_tokens_free(&out);
    /* a long run of text is cut before a space: the bytes still come back */
    {
        size_t big = 3 * 70001;
        char *huge = malloc(big + 1);
        for (size_t i = 0; i < big; i += 3) memcpy(huge + i, i % 2 ? "w\xc3\xa9" : "ww ", 3);
        huge[big] = 0;
        assert_int_equal(vkllm_tokenizer_encode(t, huge, big, 0, &out), VKLLM_OK);
        assert_int_equal(vkllm_tokenizer_decode(t, out.ids, out.n, VKLLM_DECODE_STRIP_SPACE, &s, &n), VKLLM_OK);
        assert_int_equal(n, big);
        assert_memory_equal(s, huge, big);
        free(s);
        free(huge);
        vkllm_tokens_free(&out);
    }
    /* SentencePiece has no regex pre-tokenizer */
    size_t ends[4], ne;
    assert_int_equal(vkllm_tokenizer_split(t, "a", 1, ends, 4, &ne), VKLLM_ERROR_UNSUPPORTED);
    vkllm_tokenizer_destroy(t);
    vocab_free(&v);
}

/* ------------------------------------------------------------------------------------------------
 * Streaming decoder */

/* Reference: Python's bytes.decode("utf-8", "replace"), written from the Unicode table of
 * well-formed sequences (3.9 in the standard): one U+FFFD per maximal ill-formed subpart. */
static size_t ref_replace(const uint8_t *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c <= 0x7f) need = 1;
        else if (c >= 0xc2 && c <= 0xdf) need = 2;
        else if (c == 0xe0) { need = 3; lo = 0xa0; }
        else if (c >= 0xe1 && c <= 0xec) need = 3;
        else if (c == 0xed) { need = 3; hi = 0x9f; }
        else if (c >= 0xee && c <= 0xef) need = 3;
        else if (c == 0xf0) { need = 4; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) need = 4;
        else if (c == 0xf4) { need = 4; hi = 0x8f; }
        else need = 0;
        if (need == 1) {
            out[k++] = (char)c;
            i++;
            continue;
        }
        size_t j = 1;
        if (need) {
            for (; j < need && i + j < n; j++) {
                uint8_t d = s[i + j];
                if (j == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf)) break;
            }
        }
        if (need && j == need) {
            memcpy(out + k, s + i, need);
            k += need;
            i += need;
        } else {
            memcpy(out + k, "\xef\xbf\xbd", 3);
            k += 3;
            i += j;
        }
    }
    return k;
}

static void test_detok_streaming(void **state)
{
    (void)state;
    vocab v;
    bpe_bytes(&v);
    int32_t e_acute = (int32_t)add_merge(&v, "\xc3", "\xa9"); /* é as one token */
    vkllm_tokenizer *t = make(&v, VKLLM_TOKENIZER_BPE, NULL);
    vkllm_detok *d;
    assert_int_equal(vkllm_detok_create(t, 0, &d), VKLLM_OK);
    const char *o;
    size_t n;
    /* 😀 = f0 9f 98 80 arriving one byte token at a time */
    const uint8_t emoji[4] = { 0xf0, 0x9f, 0x98, 0x80 };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vkllm_detok_push(d, emoji[i], &o, &n), VKLLM_OK);
        assert_int_equal(n, 0);
        assert_int_equal(vkllm_detok_pending(d), (size_t)i + 1);
    }
    assert_int_equal(vkllm_detok_push(d, emoji[3], &o, &n), VKLLM_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(o, emoji, 4);
    /* a whole character in one token passes straight through */
    assert_int_equal(vkllm_detok_push(d, e_acute, &o, &n), VKLLM_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(o, "\xc3\xa9", 2);
    /* a broken sequence: replaced when the next byte shows it cannot complete */
    assert_int_equal(vkllm_detok_push(d, 0xe2, &o, &n), VKLLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(vkllm_detok_push(d, 'x', &o, &n), VKLLM_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(o, "\xef\xbf\xbdx", 4);
    /* an incomplete character at the end comes out as U+FFFD on flush */
    assert_int_equal(vkllm_detok_push(d, 0xf0, &o, &n), VKLLM_OK);
    assert_int_equal(vkllm_detok_push(d, 0x9f, &o, &n), VKLLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(vkllm_detok_flush(d, &o, &n), VKLLM_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(o, "\xef\xbf\xbd", 3);
    assert_int_equal(vkllm_detok_flush(d, &o, &n), VKLLM_OK);
    assert_int_equal(n, 0);
    /* a bad id is refused with a message and changes nothing */
    assert_int_equal(vkllm_detok_push(d, 0xe2, &o, &n), VKLLM_OK);
    assert_int_equal(vkllm_detok_push(d, -1, &o, &n), VKLLM_ERROR_OUT_OF_RANGE);
    assert_non_null(strstr(vkllm_detok_error(d), "outside"));
    assert_int_equal(vkllm_detok_pending(d), 1);
    vkllm_detok_reset(d, 0);
    assert_int_equal(vkllm_detok_pending(d), 0);

    /* random bytes in random token-sized chunks: the stream equals the reference on the whole */
    tu_rng r = tu_rng_for(40);
    for (int iter = 0; iter < 300; iter++) {
        uint8_t raw[64];
        size_t len = tu_next(&r) % 64;
        for (size_t i = 0; i < len; i++) {
            uint64_t x = tu_next(&r);
            /* mostly UTF-8 shaped bytes so that valid sequences happen too */
            static const uint8_t pick[] = { 'a', 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xed, 0xa0, 0xff, 0xc0, 0x80, 0xbf };
            raw[i] = (x & 1) ? pick[(x >> 1) % sizeof pick] : (uint8_t)(x >> 8);
        }
        char want[256], got[256];
        size_t nw = ref_replace(raw, len, want), ng = 0;
        vkllm_detok_reset(d, 0);
        for (size_t i = 0; i < len; i++) {
            assert_int_equal(vkllm_detok_push(d, raw[i], &o, &n), VKLLM_OK);
            memcpy(got + ng, o, n);
            ng += n;
        }
        assert_int_equal(vkllm_detok_flush(d, &o, &n), VKLLM_OK);
        memcpy(got + ng, o, n);
        ng += n;
        if (ng != nw || memcmp(got, want, nw)) {
            fprintf(stderr, "seed %llu iter %d: input", (unsigned long long)tu_seed(), iter);
            for (size_t i = 0; i < len; i++) fprintf(stderr, " %02x", raw[i]);
            fprintf(stderr, "\n");
            fail();
        }
    }
    vkllm_detok_destroy(d);
    vkllm_tokenizer_destroy(t);
    vocab_free(&v);
}

/* ------------------------------------------------------------------------------------------------
 * The tiny model's vocabulary (mkmodel) end to end */

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vkllm-test-tokenizer-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static vkllm_tokenizer *tiny_tokenizer(vkllm_gguf **g_out)
{
    char path[320], err[512];
    snprintf(path, sizeof path, "%s/tiny.gguf", tmpdir);
    if (access(path, R_OK)) {
        vkllm_mkmodel_config cfg;
        assert_int_equal(vkllm_mkmodel_preset("tiny", &cfg), VKLLM_OK);
        cfg.n_layer = 1;
        cfg.ftype = VKLLM_MKMODEL_F32;
        if (vkllm_mkmodel_write(&cfg, path, NULL, err, sizeof err)) fail_msg("mkmodel: %s", err);
    }
    vkllm_gguf *g;
    if (vkllm_gguf_open(path, &g, err, sizeof err)) fail_msg("open: %s", err);
    vkllm_tokenizer *t;
    if (vkllm_tokenizer_create_gguf(g, &t, err, sizeof err)) fail_msg("tokenizer: %s", err);
    if (g_out) *g_out = g;
    else vkllm_gguf_close(g);
    return t;
}

static void test_tiny_model(void **state)
{
    (void)state;
    vkllm_tokenizer *t = tiny_tokenizer(NULL);
    assert_int_equal(vkllm_tokenizer_kind_of(t), VKLLM_TOKENIZER_BPE);
    assert_int_equal(vkllm_tokenizer_n_vocab(t), 1024);
    assert_int_equal(vkllm_tokenizer_chat_format(t), VKLLM_CHAT_PHI4);
    int32_t im_end = vkllm_tokenizer_find(t, "<|im_end|>", 10);
    assert_true(im_end > 0);
    assert_int_equal(vkllm_tokenizer_eos(t), im_end);
    assert_true(vkllm_tokenizer_is_eog(t, im_end));
    assert_true(vkllm_tokenizer_is_eog(t, vkllm_tokenizer_find(t, "<|end|>", 7)));
    assert_false(vkllm_tokenizer_is_eog(t, 'a'));
    /* text from the training prose compresses well; every decode gives the text back */
    const char *text = "The small town sat at the edge of a wide river, and every morning the fog rolled in.";
    vkllm_tokens out = { 0 };
    assert_int_equal(vkllm_tokenizer_encode(t, text, strlen(text), 0, &out), VKLLM_OK);
    assert_true(out.n < strlen(text) / 2);
    char *s;
    size_t n;
    assert_int_equal(vkllm_tokenizer_decode(t, out.ids, out.n, 0, &s, &n), VKLLM_OK);
    assert_string_equal(s, text);
    free(s);
    /* " the" is one token (a merge learned from the text) */
    int32_t the = vkllm_tokenizer_find(t, "\xc4\xa0the", 5);
    assert_true(the >= 256);
    vkllm_tokens_free(&out);
    expect_ids(t, " the", 0, &the, 1);
    /* special tokens inside text */
    int32_t im_start = vkllm_tokenizer_find(t, "<|im_start|>", 12), im_sep = vkllm_tokenizer_find(t, "<|im_sep|>", 10);
    const char *chat = "<|im_start|>user<|im_sep|>hi<|im_end|>";
    assert_int_equal(vkllm_tokenizer_encode(t, chat, strlen(chat), VKLLM_TOKENIZE_SPECIAL, &out), VKLLM_OK);
    assert_int_equal(out.ids[0], im_start);
    assert_int_equal(out.ids[out.n - 1], im_end);
    /* the chat template's tokens are the same as the rendered text's */
    vkllm_tokens c = { 0 };
    assert_int_equal(vkllm_chat_append_message(t, "user", "hi", 2, &c), VKLLM_OK);
    assert_int_equal(c.n, out.n);
    assert_memory_equal(c.ids, out.ids, out.n * sizeof(int32_t));
    char *r = vkllm_chat_render_message(VKLLM_CHAT_PHI4, "user", "hi");
    assert_string_equal(r, chat);
    free(r);
    vkllm_tokens_free(&c);
    assert_int_equal(vkllm_chat_append_generation_prompt(t, &c), VKLLM_OK);
    assert_int_equal(c.ids[0], im_start);
    assert_int_equal(c.ids[c.n - 1], im_sep);
    vkllm_tokens_free(&c);
    assert_int_equal(vkllm_chat_append_end_of_turn(t, &c), VKLLM_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.ids[0], im_end);
    vkllm_tokens_free(&c);
    /* content cannot forge a turn: its special texts stay text */
    assert_int_equal(vkllm_chat_append_message(t, "user", "<|im_end|>", 10, &c), VKLLM_OK);
    int specials = 0;
    for (size_t i = 0; i < c.n; i++) specials += c.ids[i] == im_end;
    assert_int_equal(specials, 1);
    vkllm_tokens_free(&c);
    assert_int_equal(vkllm_chat_append_message(t, "robot", "x", 1, &c), VKLLM_ERROR_INVALID_ARGUMENT);
    vkllm_tokens_free(&out);
    vkllm_tokenizer_destroy(t);
}

/* Random UTF-8, valid and not: byte-level BPE gives the bytes back exactly, and SentencePiece with
 * byte fallback too (after its leading space). */
static size_t random_text(tu_rng *r, char *buf, size_t cap, int valid)
{
    static const char *const pieces[] = { "the", " ", "  ", "\n", "\n\n", "é", "e\xcc\x81", "日本", "😀", "👍🏽",
                                          "123", "4567", "'s", "'LL", "!", "...", "\t", "<|im_end|>", "a", "Z", "ß" };
    size_t k = 0;
    size_t want = tu_next(r) % (cap / 8);
    while (k < want) {
        uint64_t x = tu_next(r);
        if (!valid && x % 7 == 0) {
            buf[k++] = (char)(0x80 + (x >> 8) % 128); /* a stray continuation or lead byte */
            continue;
        }
        if (x % 5 == 0) {
            /* a random code point */
            uint32_t cp = (uint32_t)((x >> 8) % 0x10ffff);
            if (cp >= 0xd800 && cp < 0xe000) cp = 'q';
            if (cp == 0x2581) cp = 'u'; /* ▁ decodes as a space in SentencePiece */
            if (cp < 0x80) buf[k++] = (char)(cp ? cp : 'z');
            else if (cp < 0x800) {
                buf[k++] = (char)(0xc0 | (cp >> 6));
                buf[k++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                buf[k++] = (char)(0xe0 | (cp >> 12));
                buf[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                buf[k++] = (char)(0x80 | (cp & 0x3f));
            } else {
                buf[k++] = (char)(0xf0 | (cp >> 18));
                buf[k++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                buf[k++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                buf[k++] = (char)(0x80 | (cp & 0x3f));
            }
            continue;
        }
        const char *p = pieces[(x >> 8) % (sizeof pieces / sizeof pieces[0])];
        size_t l = strlen(p);
        memcpy(buf + k, p, l);
        k += l;
    }
    return k;
}

static void test_round_trip(void **state)
{
    (void)state;
    vkllm_tokenizer *bpe = tiny_tokenizer(NULL);
    vocab v;
    spm_base(&v);
    add_piece(&v, SP, -1);
    add_piece(&v, "t", -2);
    add_piece(&v, "h", -3);
    add_piece(&v, "th", -1.5f);
    add_piece(&v, SP "the", -0.5f);
    add_piece(&v, "he", -1.2f);
    add_piece(&v, "1", -4);
    add_tok(&v, "<|im_end|>", VKLLM_TOKEN_CONTROL); /* the space prefix after it must decode away */
    vkllm_tokenizer *spm = make_spm(&v, 1);
    tu_rng r = tu_rng_for(77);
    char text[1024];
    for (int iter = 0; iter < 400; iter++) {
        int valid = iter % 2;
        size_t len = random_text(&r, text, sizeof text, valid);
        for (int kind = 0; kind < 2; kind++) {
            vkllm_tokenizer *t = kind ? spm : bpe;
            vkllm_tokens out = { 0 };
            assert_int_equal(vkllm_tokenizer_encode(t, text, len, VKLLM_TOKENIZE_ADD_SPECIAL, &out), VKLLM_OK);
            char *s;
            size_t n;
            assert_int_equal(vkllm_tokenizer_decode(t, out.ids, out.n, VKLLM_DECODE_STRIP_SPACE, &s, &n), VKLLM_OK);
            if (n != len || memcmp(s, text, len)) {
                fprintf(stderr, "seed %llu iter %d %s: round trip differs (%zu -> %zu bytes)\n",
                        (unsigned long long)tu_seed(), iter, kind ? "spm" : "bpe", len, n);
                fail();
            }
            free(s);
            /* the streaming decoder gives the same text when it is valid */
            if (valid) {
                vkllm_detok *d;
                assert_int_equal(vkllm_detok_create(t, VKLLM_DECODE_STRIP_SPACE, &d), VKLLM_OK);
                char got[1024 + 16];
                size_t ng = 0;
                for (size_t i = 0; i < out.n; i++) {
                    const char *o;
                    assert_int_equal(vkllm_detok_push(d, out.ids[i], &o, &n), VKLLM_OK);
                    assert_true(ng + n <= sizeof got);
                    memcpy(got + ng, o, n);
                    ng += n;
                }
                assert_int_equal(vkllm_detok_pending(d), 0);
                assert_int_equal(ng, len);
                assert_memory_equal(got, text, len);
                vkllm_detok_destroy(d);
            }
            /* with special tokens matched (<|im_end|> is one in both vocabularies) and rendered, the
             * bytes come back too: SentencePiece's space after a special token decodes away */
            vkllm_tokens sp = { 0 };
            assert_int_equal(vkllm_tokenizer_encode(t, text, len, VKLLM_TOKENIZE_SPECIAL, &sp), VKLLM_OK);
            assert_int_equal(vkllm_tokenizer_decode(t, sp.ids, sp.n, VKLLM_DECODE_SPECIAL | VKLLM_DECODE_STRIP_SPACE, &s, &n),
                             VKLLM_OK);
            assert_int_equal(n, len);
            assert_memory_equal(s, text, len);
            free(s);
            vkllm_tokens_free(&sp);
            vkllm_tokens_free(&out);
        }
    }
    vkllm_tokenizer_destroy(spm);
    vkllm_tokenizer_destroy(bpe);
    vocab_free(&v);
}

/* ------------------------------------------------------------------------------------------------
 * GGUF: an SPM vocabulary through the file, chat format choice, hostile metadata */

typedef struct gfile {
    const char *model;       /* NULL: key absent */
    int tokens_kind;         /* 0 strings, 1 u32 array, 2 absent */
    uint32_t n_types;        /* token_type length (0 = absent) */
    int32_t bad_type;        /* written into token_type[5] */
    uint32_t n_scores;
    int scores_i32;
    const char *merge;       /* one merge (NULL = no merges key) */
    int64_t bos;             /* written as u32 when >= 0, i32 when < 0 */
    const char *tmpl;
    int drop_byte;           /* 1: token 'A' renamed (a byte missing) */
} gfile;

static const char *const g_extra[] = { "ab", "<|user|>", "<|assistant|>", "<|end|>", "<|system|>" };

static vkllm_status gfile_try(const gfile *f, vkllm_tokenizer **out, char *err, size_t en)
{
    char path[320];
    snprintf(path, sizeof path, "%s/h.gguf", tmpdir);
    vkllm_gguf_writer *w;
    assert_int_equal(vkllm_gguf_writer_create(path, &w, err, en), VKLLM_OK);
    uint32_t n = 256 + 5;
    char *tok[256 + 5];
    int32_t types[256 + 5];
    float scores[256 + 5];
    for (unsigned b = 0; b < 256; b++) {
        tok[b] = malloc(4);
        byte_char(b, tok[b]);
        if (f->drop_byte && b == 'A') strcpy(tok[b], "AA");
        types[b] = 1;
        scores[b] = 0;
    }
    for (unsigned i = 0; i < 5; i++) {
        tok[256 + i] = strdup(g_extra[i]);
        types[256 + i] = i ? 3 : 1;
        scores[256 + i] = 0;
    }
    types[5] = f->bad_type ? f->bad_type : 1;
    if (f->model) assert_int_equal(vkllm_gguf_writer_add_string(w, "tokenizer.ggml.model", f->model), VKLLM_OK);
    if (f->tokens_kind == 0)
        assert_int_equal(vkllm_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", (const char *const *)tok, n), VKLLM_OK);
    else if (f->tokens_kind == 1)
        assert_int_equal(vkllm_gguf_writer_add_array(w, "tokenizer.ggml.tokens", VKLLM_GGUF_INT32, types, n), VKLLM_OK);
    if (f->n_types)
        assert_int_equal(vkllm_gguf_writer_add_array(w, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, types, f->n_types), VKLLM_OK);
    if (f->n_scores)
        assert_int_equal(vkllm_gguf_writer_add_array(w, "tokenizer.ggml.scores", f->scores_i32 ? VKLLM_GGUF_INT32 : VKLLM_GGUF_FLOAT32,
                                                     scores, f->n_scores), VKLLM_OK);
    if (f->merge) assert_int_equal(vkllm_gguf_writer_add_string_array(w, "tokenizer.ggml.merges", &f->merge, 1), VKLLM_OK);
    if (f->bos >= 0) assert_int_equal(vkllm_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)f->bos), VKLLM_OK);
    else if (f->bos < -1) assert_int_equal(vkllm_gguf_writer_add_i32(w, "tokenizer.ggml.bos_token_id", (int32_t)f->bos), VKLLM_OK);
    if (f->tmpl) assert_int_equal(vkllm_gguf_writer_add_string(w, "tokenizer.chat_template", f->tmpl), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_write_header(w), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_finish(w), VKLLM_OK);
    vkllm_gguf_writer_destroy(w);
    for (uint32_t i = 0; i < n; i++) free(tok[i]);
    vkllm_gguf *g;
    assert_int_equal(vkllm_gguf_open(path, &g, err, en), VKLLM_OK);
    vkllm_status s = vkllm_tokenizer_create_gguf(g, out, err, en);
    vkllm_gguf_close(g);
    return s;
}

static gfile gfile_ok(void)
{
    gfile f;
    memset(&f, 0, sizeof f);
    f.model = "gpt2";
    f.n_types = 261;
    f.n_scores = 261;
    f.merge = "a b";
    f.bos = 257;
    return f;
}

static void test_gguf_good(void **state)
{
    (void)state;
    char err[512];
    vkllm_tokenizer *t;
    gfile f = gfile_ok();
    if (gfile_try(&f, &t, err, sizeof err)) fail_msg("%s", err);
    /* no template, Phi-3's tokens: the Phi-3 format */
    assert_int_equal(vkllm_tokenizer_chat_format(t), VKLLM_CHAT_PHI3);
    assert_int_equal(vkllm_tokenizer_bos(t), 257);
    vkllm_tokens c = { 0 };
    assert_int_equal(vkllm_chat_append_message(t, "system", "ab", 2, &c), VKLLM_OK);
    int32_t want[] = { 260, '\n', 256, 259, '\n' };
    assert_int_equal(c.n, 5);
    assert_memory_equal(c.ids, want, sizeof want);
    vkllm_tokens_free(&c);
    assert_int_equal(vkllm_chat_append_generation_prompt(t, &c), VKLLM_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.ids[0], 258);
    vkllm_tokens_free(&c);
    vkllm_tokenizer_destroy(t);
    /* a Phi-4 template but no Phi-4 tokens: no chat format (not a broken one) */
    f.tmpl = "{{'<|im_start|>' + role + '<|im_sep|>'}}";
    if (gfile_try(&f, &t, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(vkllm_tokenizer_chat_format(t), VKLLM_CHAT_NONE);
    assert_int_equal(vkllm_chat_append_generation_prompt(t, &c), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_tokenizer_error(t), "chat template"));
    vkllm_tokenizer_destroy(t);
    /* the same vocabulary as SentencePiece: no byte tokens and no unknown token */
    f = gfile_ok();
    f.model = "llama";
    assert_int_equal(gfile_try(&f, &t, err, sizeof err), VKLLM_ERROR_BAD_MODEL);
    assert_non_null(strstr(err, "byte token"));
}

/* A Phi-3-style SentencePiece file: scores, byte tokens, Phi-3's specials (<|end|> user-defined, as
 * some converters write it) and template; BOS by default; the chat turn equals the rendered text
 * tokenized with specials, "\n" after a special getting its space prefix as Phi-3's tokenizer does. */
static void test_gguf_spm_phi3(void **state)
{
    (void)state;
    vocab v;
    spm_base(&v);
    int32_t sp = (int32_t)add_piece(&v, SP, -1);
    add_piece(&v, "h", -2);
    add_piece(&v, "i", -3);
    int32_t hi = (int32_t)add_piece(&v, "hi", -0.5f);
    int32_t eot = (int32_t)add_tok(&v, "<|endoftext|>", VKLLM_TOKEN_CONTROL);
    int32_t asst = (int32_t)add_tok(&v, "<|assistant|>", VKLLM_TOKEN_CONTROL);
    int32_t end = (int32_t)add_tok(&v, "<|end|>", VKLLM_TOKEN_USER_DEFINED);
    add_tok(&v, "<|system|>", VKLLM_TOKEN_CONTROL);
    int32_t user = (int32_t)add_tok(&v, "<|user|>", VKLLM_TOKEN_CONTROL);
    /* both families' tokens: the template decides */
    add_tok(&v, "<|im_start|>", VKLLM_TOKEN_CONTROL);
    add_tok(&v, "<|im_sep|>", VKLLM_TOKEN_CONTROL);
    add_tok(&v, "<|im_end|>", VKLLM_TOKEN_CONTROL);
    char path[320], err[512];
    snprintf(path, sizeof path, "%s/phi3.gguf", tmpdir);
    vkllm_gguf_writer *w;
    assert_int_equal(vkllm_gguf_writer_create(path, &w, err, sizeof err), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_add_string(w, "tokenizer.ggml.model", "llama"), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, v.n), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_add_array(w, "tokenizer.ggml.scores", VKLLM_GGUF_FLOAT32, v.score, v.n), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_add_array(w, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, v.type, v.n), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eot), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_add_string(w, "tokenizer.chat_template",
                                                  "{% for message in messages %}{% if message['role'] == 'user' %}"
                                                  "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}"
                                                  "{% endfor %}{{ '<|assistant|>\\n' }}"), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_write_header(w), VKLLM_OK);
    assert_int_equal(vkllm_gguf_writer_finish(w), VKLLM_OK);
    vkllm_gguf_writer_destroy(w);
    vkllm_gguf *g;
    assert_int_equal(vkllm_gguf_open(path, &g, err, sizeof err), VKLLM_OK);
    vkllm_tokenizer *t;
    if (vkllm_tokenizer_create_gguf(g, &t, err, sizeof err)) fail_msg("%s", err);
    vkllm_gguf_close(g);
    assert_int_equal(vkllm_tokenizer_kind_of(t), VKLLM_TOKENIZER_SPM);
    assert_int_equal(vkllm_tokenizer_chat_format(t), VKLLM_CHAT_PHI3);
    assert_true(vkllm_tokenizer_adds_bos(t));
    assert_true(vkllm_tokenizer_is_eog(t, eot));
    assert_true(vkllm_tokenizer_is_eog(t, end));
    assert_false(vkllm_tokenizer_is_eog(t, asst));
    vkllm_tokens c = { 0 }, r = { 0 };
    assert_int_equal(vkllm_chat_append_message(t, "user", "hi", 2, &c), VKLLM_OK);
    char *txt = vkllm_chat_render_message(VKLLM_CHAT_PHI3, "user", "hi");
    assert_string_equal(txt, "<|user|>\nhi<|end|>\n");
    assert_int_equal(vkllm_tokenizer_encode(t, txt, strlen(txt), VKLLM_TOKENIZE_SPECIAL, &r), VKLLM_OK);
    free(txt);
    int32_t want[] = { user, sp, 3 + '\n', hi, end, sp, 3 + '\n' };
    assert_int_equal(c.n, 7);
    assert_memory_equal(c.ids, want, sizeof want);
    assert_int_equal(r.n, 7);
    assert_memory_equal(r.ids, want, sizeof want);
    vkllm_tokens_free(&c);
    assert_int_equal(vkllm_chat_append_generation_prompt(t, &c), VKLLM_OK);
    int32_t gen[] = { asst, sp, 3 + '\n' };
    assert_int_equal(c.n, 3);
    assert_memory_equal(c.ids, gen, sizeof gen);
    vkllm_tokens_free(&c);
    assert_int_equal(vkllm_chat_append_end_of_turn(t, &c), VKLLM_OK);
    int32_t eotk[] = { end, sp, 3 + '\n' };
    assert_int_equal(c.n, 3);
    assert_memory_equal(c.ids, eotk, sizeof eotk);
    /* a reply "▁hi" streams as "hi" */
    vkllm_detok *d;
    assert_int_equal(vkllm_detok_create(t, VKLLM_DECODE_STRIP_SPACE, &d), VKLLM_OK);
    const char *o;
    size_t n;
    assert_int_equal(vkllm_detok_push(d, sp, &o, &n), VKLLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(vkllm_detok_push(d, hi, &o, &n), VKLLM_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(o, "hi", 2);
    vkllm_detok_destroy(d);
    vkllm_tokens_free(&c);
    vkllm_tokens_free(&r);
    vkllm_tokenizer_destroy(t);
    vocab_free(&v);
}

static void test_gguf_hostile(void **state)
{
    (void)state;
    struct { gfile f; vkllm_status want; const char *msg; } cases[16];
    int n = 0;
#define CASE(field_edit, st, m)                 \
    do {                                        \
        cases[n].f = gfile_ok();                \
        { gfile *F = &cases[n].f; field_edit; } \
        cases[n].want = st;                     \
        cases[n].msg = m;                       \
        n++;                                    \
    } while (0)
    CASE(F->model = NULL, VKLLM_ERROR_BAD_MODEL, "tokenizer.ggml.model");
    CASE(F->model = "wordpiece", VKLLM_ERROR_UNSUPPORTED, "not supported");
    CASE(F->tokens_kind = 1, VKLLM_ERROR_BAD_MODEL, "tokenizer.ggml.tokens");
    CASE(F->tokens_kind = 2, VKLLM_ERROR_BAD_MODEL, "tokenizer.ggml.tokens");
    CASE(F->n_types = 100, VKLLM_ERROR_BAD_MODEL, "token_type");
    CASE(F->bad_type = 9, VKLLM_ERROR_BAD_MODEL, "type 9");
    CASE(F->bad_type = -3, VKLLM_ERROR_BAD_MODEL, "type");
    CASE(F->n_scores = 3, VKLLM_ERROR_BAD_MODEL, "scores");
    CASE(F->scores_i32 = 1, VKLLM_ERROR_BAD_MODEL, "scores");
    CASE(F->merge = "ab", VKLLM_ERROR_BAD_MODEL, "one space");
    CASE(F->merge = "a b c", VKLLM_ERROR_BAD_MODEL, "one space");
    CASE(F->merge = "a zz", VKLLM_ERROR_BAD_MODEL, "not a token");
    CASE(F->merge = "b a", VKLLM_ERROR_BAD_MODEL, "merged text");
    CASE(F->bos = 261, VKLLM_ERROR_BAD_MODEL, "bos token id 261");
    CASE(F->bos = -7, VKLLM_ERROR_BAD_MODEL, "bos_token_id");
    CASE(F->drop_byte = 1, VKLLM_ERROR_BAD_MODEL, "byte 0x41");
#undef CASE
    for (int i = 0; i < n; i++) {
        char err[512] = "";
        vkllm_tokenizer *t = (vkllm_tokenizer *)&err; /* must come back NULL */
        vkllm_status s = gfile_try(&cases[i].f, &t, err, sizeof err);
        if (s != cases[i].want || t || !strstr(err, cases[i].msg))
            fail_msg("case %d: status %d (want %d), message '%s' (want '%s')", i, (int)s, (int)cases[i].want, err, cases[i].msg);
    }
    /* in-memory refusals */
    char err[256];
    vkllm_tokenizer *t;
    assert_int_equal(vkllm_tokenizer_create(NULL, &t, err, sizeof err), VKLLM_ERROR_INVALID_ARGUMENT);
    vkllm_tokenizer_desc d = vkllm_tokenizer_desc_default();
    d.kind = VKLLM_TOKENIZER_BPE;
    assert_int_equal(vkllm_tokenizer_create(&d, &t, err, sizeof err), VKLLM_ERROR_BAD_MODEL);
    assert_non_null(strstr(err, "0 tokens"));
    vocab v;
    spm_base(&v);
    v.score[7] = NAN;
    d = vkllm_tokenizer_desc_default();
    d.kind = VKLLM_TOKENIZER_SPM;
    d.n_tokens = v.n;
    d.tokens = (const char *const *)v.tok;
    d.scores = v.score;
    assert_int_equal(vkllm_tokenizer_create(&d, &t, err, sizeof err), VKLLM_ERROR_BAD_MODEL);
    assert_non_null(strstr(err, "NaN"));
    assert_null(t);
    vocab_free(&v);
}

int main(void)
{
    tu_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_merge_order),
        cmocka_unit_test(test_bpe_pretokenizer),
        cmocka_unit_test(test_bpe_special),
        cmocka_unit_test(test_spm),
        cmocka_unit_test(test_detok_streaming),
        cmocka_unit_test(test_tiny_model),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_gguf_good),
        cmocka_unit_test(test_gguf_spm_phi3),
        cmocka_unit_test(test_gguf_hostile),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
