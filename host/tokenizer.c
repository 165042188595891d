/* Tokenizer from GGUF metadata: byte-level BPE ("gpt2") and SentencePiece-style BPE ("llama"), the
 * streaming decoder and the Phi chat templates; see vkllm/tokenizer.h.
 *
 * Byte-level BPE encodes a text as: special tokens cut out (a byte trie, longest match), each run of
 * valid UTF-8 cut into pieces by the pre-tokenizer regex (PCRE2), each piece's bytes mapped to byte
 * tokens and merged by rank with a binary heap over a linked list of symbols (lazy deletion: an entry
 * whose pair has changed is skipped when popped), so a piece of m bytes costs O(m log m). Pieces
 * repeat a lot in real text, so a bounded cache maps piece bytes to their tokens.
 *
 * SentencePiece BPE follows llama.cpp's llm_tokenizer_spm (itself sentencepiece's bpe_model): symbols
 * are UTF-8 characters, the adjacent pair whose concatenation is the best-scoring token merges first,
 * and what never merged into a token falls back to byte tokens. */
#include "vkllm/tokenizer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "vkllm/gguf.h"

#define ERR_SIZE 512
#define MAX_TOKENS (1u << 24)
#define MAX_MERGES (1u << 24)
#define MAX_TOKEN_BYTES 65536u
#define MAX_EOG 8

/* Word cache: slots, bytes of cached words, cached token ids; cleared whole when any fills up. */
#define WC_SLOTS (1u << 15)
#define WC_WORD_BYTES (1u << 20)
#define WC_TOKS (1u << 18)
#define WC_MAX_WORD 64u

/* Longest run the merge loops take at once (their scratch is ~50 bytes per byte). A longer
 * pre-tokenized piece (64 KiB of letters with no space) or SentencePiece text run is cut at a
 * character boundary (SentencePiece: before a space when one is near), so tokens never span such
 * a cut; real text never has pieces this long. */
#define MAX_RUN (64u << 10)

typedef struct wc_slot {
    uint64_t h;
    uint32_t woff, toff;
    uint16_t wlen, ntok; /* wlen 0 = empty */
} wc_slot;

typedef struct trie_node {
    int32_t id;          /* token ending here, -1 none */
    uint32_t child;      /* first child, 0 = none (node 0 is the root) */
    uint32_t sibling;    /* next sibling, 0 = none */
    uint8_t byte;
} trie_node;

typedef struct pair_slot {
    uint64_t key;        /* (left << 32 | right) + 1; 0 = empty */
    uint32_t rank, result;
} pair_slot;

typedef struct bpe_sym {
    int32_t id;
    int32_t prev, next;  /* -1 = none */
} bpe_sym;

typedef struct bpe_ent {
    uint32_t rank, pos;
    int32_t a, b;
} bpe_ent;

typedef struct spm_sym {
    uint32_t start, n;   /* bytes of the escaped text; n 0 = merged away */
    int32_t prev, next, id;
} spm_sym;

typedef struct spm_ent {
    float score;
    uint32_t left, right, size;
    int32_t id;
} spm_ent;

struct vkllm_tokenizer {
    vkllm_tokenizer_kind kind;
    uint32_t n;
    char *text;          /* every token's text, each NUL-terminated */
    uint32_t *text_off, *text_len;
    char *piece;         /* every token's decoded bytes */
    uint32_t *piece_off, *piece_len;
    uint8_t *type;
    uint8_t *special;    /* 1: decoded only with VKLLM_DECODE_SPECIAL */
    float *score;
    uint32_t *tok_hash;
    uint32_t *map;       /* text -> id + 1, open addressing */
    uint32_t map_mask;
    pair_slot *pairs;
    uint32_t pairs_mask, n_merges;
    int32_t byte_tok[256];
    trie_node *trie;
    uint32_t n_trie;
    uint8_t trie_first[256];
    int32_t bos, eos, unk, pad;
    int add_bos, add_eos, add_space_prefix;
    int32_t eog[MAX_EOG];
    int n_eog;
    vkllm_chat_format chat;
    /* pre-tokenizer */
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    int jit;
    /* scratch */
    bpe_sym *bsym;
    size_t bsym_cap;
    bpe_ent *bheap;
    size_t bheap_cap;
    spm_sym *ssym;
    size_t ssym_cap;
    spm_ent *sheap;
    size_t sheap_cap;
    char *buf;           /* raw text of a fragment (segments joined) */
    size_t buf_cap;
    char *esc;           /* SPM escaped text */
    size_t esc_cap;
    wc_slot *wc;
    char *wc_words;
    int32_t *wc_toks;
    uint32_t wc_count, wc_wused, wc_tused;
    char err[ERR_SIZE];
};

#if defined(__GNUC__)
#define PRINTF_LIKE(a, b) __attribute__((format(printf, a, b)))
#else
#define PRINTF_LIKE(a, b)
#endif

static void PRINTF_LIKE(2, 3) set_err(vkllm_tokenizer *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
}

static void PRINTF_LIKE(3, 4) put_err(char *err, size_t n, const char *fmt, ...)
{
    if (!err || !n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

/* A token text for a message: printable ASCII as is, the rest escaped, cut at 40 bytes. */
static const char *show(const char *s, size_t n, char out[200])
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < 180; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 40) {
            k += (size_t)snprintf(out + k, 200 - k, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\') out[k++] = (char)c;
        else k += (size_t)snprintf(out + k, 200 - k, "\\x%02x", c);
    }
    out[k] = 0;
    return out;
}

/* ------------------------------------------------------------------------------------------------
 * UTF-8 */

/* Length of the valid UTF-8 character at s[0..n) (1..4), or 0 if invalid or cut short; *prefix gets
 * how many bytes form a valid beginning of a character (the "maximal subpart", >= 1 when invalid
 * unless s[0] itself cannot start one), and *cut is set when the character runs past n. */
static size_t utf8_char(const uint8_t *s, size_t n, size_t *prefix, int *cut)
{
    uint8_t c = s[0];
    *cut = 0;
    if (c < 0x80) {
        *prefix = 1;
        return 1;
    }
    size_t k;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) k = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        *prefix = 0;
        return 0;
    }
    size_t j = 1;
    for (; j < k; j++) {
        if (j >= n) {
            *cut = 1;
            break;
        }
        uint8_t d = s[j];
        if (j == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf)) break;
    }
    *prefix = j;
    return j == k ? k : 0;
}

/* Bytes of valid UTF-8 at the start of s[0..n). */
static size_t utf8_valid_run(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t p;
        int cut;
        size_t l = utf8_char(s + i, n - i, &p, &cut);
        if (!l) break;
        i += l;
    }
    return i;
}

/* Length of the character at s (valid or not: an invalid byte counts 1). */
static size_t char_len(const uint8_t *s, size_t n)
{
    size_t p;
    int cut;
    size_t l = utf8_char(s, n, &p, &cut);
    return l ? l : 1;
}

static size_t put_cp(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static uint32_t get_cp(const uint8_t *s, size_t l)
{
    if (l == 1) return s[0];
    if (l == 2) return (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
    if (l == 3) return (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
    return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 | (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
}

/* GPT-2's byte alphabet: printable bytes stand for themselves, the other 68 map to U+0100.. in
 * order. cp[b] is byte b's code point; rev[cp] is the byte of code point cp < 324, or -1. */
#define ALPHABET_END (256 + 68)
static void byte_alphabet(uint32_t cp[256], int16_t rev[ALPHABET_END])
{
    uint32_t extra = 256;
    for (int i = 0; i < ALPHABET_END; i++) rev[i] = -1;
    for (unsigned c = 0; c < 256; c++) {
        int direct = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
        cp[c] = direct ? c : extra++;
        rev[cp[c]] = (int16_t)c;
    }
}

/* ------------------------------------------------------------------------------------------------
 * Hashing and the text -> id map */

static inline uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

int32_t vkllm_tokenizer_find(const vkllm_tokenizer *t, const char *s, size_t len)
{
    if (!t || (!s && len)) return -1;
    uint32_t h = (uint32_t)hash_bytes(s, len);
    for (uint32_t i = h & t->map_mask;; i = (i + 1) & t->map_mask) {
        uint32_t v = t->map[i];
        if (!v) return -1;
        uint32_t id = v - 1;
        if (t->tok_hash[id] == h && t->text_len[id] == len && !memcmp(t->text + t->text_off[id], s, len))
            return (int32_t)id;
    }
}

static inline const pair_slot *pair_find(const vkllm_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (uint32_t i = (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & t->pairs_mask;; i = (i + 1) & t->pairs_mask) {
        const pair_slot *p = &t->pairs[i];
        if (p->key == key) return p;
        if (!p->key) return NULL;
    }
}

/* ------------------------------------------------------------------------------------------------
 * Growable scratch */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return 0;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

void vkllm_tokens_free(vkllm_tokens *v)
{
    if (!v) return;
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

vkllm_status vkllm_tokens_push(vkllm_tokens *v, int32_t id)
{
    if (!v) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (v->n == v->cap && !grow((void **)&v->ids, &v->cap, v->n + 1, sizeof(int32_t)))
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    v->ids[v->n++] = id;
    return VKLLM_OK;
}

static vkllm_status push_many(vkllm_tokens *v, const int32_t *ids, size_t n)
{
    if (v->n + n > v->cap && !grow((void **)&v->ids, &v->cap, v->n + n, sizeof(int32_t)))
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    memcpy(v->ids + v->n, ids, n * sizeof(int32_t));
    v->n += n;
    return VKLLM_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Byte-level BPE */

static inline int bpe_less(const bpe_ent *x, const bpe_ent *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void bheap_push(bpe_ent *h, size_t *n, bpe_ent e)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (!bpe_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static bpe_ent bheap_pop(bpe_ent *h, size_t *n)
{
    bpe_ent top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && bpe_less(&h[c + 1], &h[c])) c++;
        if (!bpe_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static inline void bpe_try(vkllm_tokenizer *t, size_t *nh, int32_t l)
{
    if (l < 0) return;
    int32_t r = t->bsym[l].next;
    if (r < 0) return;
    const pair_slot *p = pair_find(t, t->bsym[l].id, t->bsym[r].id);
    if (p) bheap_push(t->bheap, nh, (bpe_ent){ p->rank, (uint32_t)l, t->bsym[l].id, t->bsym[r].id });
}

static void wc_clear(vkllm_tokenizer *t)
{
    memset(t->wc, 0, WC_SLOTS * sizeof(wc_slot));
    t->wc_count = t->wc_wused = t->wc_tused = 0;
}

/* Appends the tokens of one pre-tokenized piece w[0..m). */
static vkllm_status bpe_piece(vkllm_tokenizer *t, const uint8_t *w, size_t m, vkllm_tokens *out)
{
    if (m == 1) return vkllm_tokens_push(out, t->byte_tok[w[0]]);
    uint64_t h = 0;
    wc_slot *slot = NULL;
    if (m <= WC_MAX_WORD) {
        h = hash_bytes((const char *)w, m);
        uint32_t i = (uint32_t)h & (WC_SLOTS - 1);
        for (;; i = (i + 1) & (WC_SLOTS - 1)) {
            wc_slot *s = &t->wc[i];
            if (!s->wlen) break;
            if (s->h == h && s->wlen == m && !memcmp(t->wc_words + s->woff, w, m))
                return push_many(out, t->wc_toks + s->toff, s->ntok);
        }
    }
    /* m - 1 first pairs, then at most two per merge and at most m - 1 merges: under 3m entries */
    if (!grow((void **)&t->bsym, &t->bsym_cap, m, sizeof(bpe_sym)) ||
        !grow((void **)&t->bheap, &t->bheap_cap, 3 * m + 2, sizeof(bpe_ent)))
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    bpe_sym *s = t->bsym;
    for (size_t i = 0; i < m; i++) {
        s[i].id = t->byte_tok[w[i]];
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < m ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < m; i++) bpe_try(t, &nh, (int32_t)i);
    while (nh) {
        bpe_ent e = bheap_pop(t->bheap, &nh);
        bpe_sym *l = &s[e.pos];
        if (l->id != e.a || l->next < 0) continue; /* stale: the left symbol changed or was absorbed */
        bpe_sym *r = &s[l->next];
        if (r->id != e.b) continue;
        const pair_slot *p = pair_find(t, e.a, e.b);
        l->id = (int32_t)p->result;
        r->id = -1; /* marks it absorbed for stale entries that start at it */
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = (int32_t)e.pos;
        bpe_try(t, &nh, l->prev);
        bpe_try(t, &nh, (int32_t)e.pos);
    }
    size_t first = out->n;
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        vkllm_status st = vkllm_tokens_push(out, s[i].id);
        if (st) return st;
    }
    size_t nt = out->n - first;
    if (m <= WC_MAX_WORD && nt <= 0xffff) {
        if (t->wc_count * 2 >= WC_SLOTS || t->wc_wused + m > WC_WORD_BYTES || t->wc_tused + nt > WC_TOKS) wc_clear(t);
        uint32_t i = (uint32_t)h & (WC_SLOTS - 1);
        while (t->wc[i].wlen) i = (i + 1) & (WC_SLOTS - 1);
        slot = &t->wc[i];
        slot->h = h;
        slot->wlen = (uint16_t)m;
        slot->ntok = (uint16_t)nt;
        slot->woff = t->wc_wused;
        slot->toff = t->wc_tused;
        memcpy(t->wc_words + t->wc_wused, w, m);
        memcpy(t->wc_toks + t->wc_tused, out->ids + first, nt * sizeof(int32_t));
        t->wc_wused += (uint32_t)m;
        t->wc_tused += (uint32_t)nt;
        t->wc_count++;
    }
    return VKLLM_OK;
}

/* Where pre-tokenized pieces go: encoding, or vkllm_tokenizer_split's list of ends. */
typedef struct piece_sink {
    vkllm_tokens *out;   /* encoding when not NULL */
    const uint8_t *base; /* split: start of the whole text */
    size_t *ends, cap, n;
} piece_sink;

/* Where to cut s[0..n) (n > MAX_RUN) for a run of at most MAX_RUN bytes: a character boundary,
 * before a space within the last 4 KiB if prefer_space. */
static size_t cut_point(const uint8_t *s, size_t n, int prefer_space)
{
    size_t c = MAX_RUN < n ? MAX_RUN : n;
    if (prefer_space)
        for (size_t i = c; i > c - 4096; i--)
            if (s[i - 1] == ' ' && i > 1) return i - 1;
    for (int k = 0; k < 3 && c > 1 && (s[c] & 0xc0) == 0x80; k++) c--; /* not inside a character */
    return c;
}

static vkllm_status emit(vkllm_tokenizer *t, const uint8_t *s, size_t n, piece_sink *k)
{
    if (k->out) {
        vkllm_status st = VKLLM_OK;
        while (n > MAX_RUN && !st) {
            size_t c = cut_point(s, n, 0);
            st = bpe_piece(t, s, c, k->out);
            s += c;
            n -= c;
        }
        return st ? st : bpe_piece(t, s, n, k->out);
    }
    if (k->n < k->cap) k->ends[k->n] = (size_t)(s + n - k->base);
    k->n++;
    return VKLLM_OK;
}

/* Pre-tokenizes a run of valid UTF-8 and passes each piece on. */
static vkllm_status bpe_valid_run(vkllm_tokenizer *t, const uint8_t *s, size_t n, piece_sink *k)
{
    size_t off = 0;
    vkllm_status st = VKLLM_OK;
    while (off < n && st == VKLLM_OK) {
        int rc = t->jit ? pcre2_jit_match(t->re, s, n, off, PCRE2_NO_UTF_CHECK, t->md, t->mctx)
                        : pcre2_match(t->re, s, n, off, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) {
            st = emit(t, s + off, n - off, k);
            break;
        }
        if (rc < 0) {
            /* a limit of the matcher (never expected with these patterns): one character alone */
            size_t l = char_len(s + off, n - off);
            st = emit(t, s + off, l, k);
            off += l;
            continue;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        size_t a = ov[0], b = ov[1];
        if (a < off || a > n) a = off;
        if (a > off) st = emit(t, s + off, a - off, k); /* text the pattern skipped: a piece */
        if (st) break;
        if (b <= a || b > n) b = a + char_len(s + a, n - a);
        st = emit(t, s + a, b - a, k);
        off = b;
    }
    return st;
}

static vkllm_status bpe_text(vkllm_tokenizer *t, const uint8_t *s, size_t n, piece_sink *k)
{
    size_t i = 0;
    vkllm_status st = VKLLM_OK;
    while (i < n && st == VKLLM_OK) {
        size_t v = utf8_valid_run(s + i, n - i);
        if (v) {
            st = bpe_valid_run(t, s + i, v, k);
            i += v;
        } else {
            st = k->out ? vkllm_tokens_push(k->out, t->byte_tok[s[i]]) : emit(t, s + i, 1, k);
            i++;
        }
    }
    return st;
}

vkllm_status vkllm_tokenizer_split(vkllm_tokenizer *t, const char *text, size_t len, size_t *ends, size_t cap, size_t *n)
{
    if (!t) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (!n || (!text && len) || (!ends && cap)) {
        set_err(t, "split: NULL argument");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    if (t->kind != VKLLM_TOKENIZER_BPE) {
        set_err(t, "split: only byte-level BPE has a pre-tokenizer");
        return VKLLM_ERROR_UNSUPPORTED;
    }
    piece_sink k = { NULL, (const uint8_t *)text, ends, cap, 0 };
    bpe_text(t, (const uint8_t *)text, len, &k);
    *n = k.n;
    if (k.n > cap) {
        set_err(t, "split: %zu pieces, room for %zu", k.n, cap);
        return VKLLM_ERROR_OUT_OF_RANGE;
    }
    return VKLLM_OK;
}

/* ------------------------------------------------------------------------------------------------
 * SentencePiece BPE */

static inline int spm_better(const spm_ent *x, const spm_ent *y)
{
    return x->score > y->score || (x->score == y->score && x->left < y->left);
}

static void sheap_push(spm_ent *h, size_t *n, spm_ent e)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (!spm_better(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static spm_ent sheap_pop(spm_ent *h, size_t *n)
{
    spm_ent top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && spm_better(&h[c + 1], &h[c])) c++;
        if (!spm_better(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static inline int spm_mergeable(const vkllm_tokenizer *t, int32_t id)
{
    return id >= 0 && (t->type[id] == VKLLM_TOKEN_NORMAL || t->type[id] == VKLLM_TOKEN_UNDEFINED);
}

static void spm_try(vkllm_tokenizer *t, size_t *nh, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return;
    const spm_sym *a = &t->ssym[l], *b = &t->ssym[r];
    int32_t id = vkllm_tokenizer_find(t, t->esc + a->start, a->n + b->n);
    if (!spm_mergeable(t, id)) return;
    sheap_push(t->sheap, nh, (spm_ent){ t->score[id], (uint32_t)l, (uint32_t)r, a->n + b->n, id });
}

static vkllm_status spm_text(vkllm_tokenizer *t, const uint8_t *s, size_t n, int prefix, vkllm_tokens *out)
{
    /* escape: an optional leading space, every ' ' as U+2581 (3 bytes) */
    if (n > (SIZE_MAX - 3) / 3 || n > UINT32_MAX / 4) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    if (!grow((void **)&t->esc, &t->esc_cap, 3 * n + 3, 1)) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    size_t e = 0;
    if (prefix) {
        memcpy(t->esc, "\xe2\x96\x81", 3);
        e = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(t->esc + e, "\xe2\x96\x81", 3);
            e += 3;
        } else {
            t->esc[e++] = (char)s[i];
        }
    }
    if (!e) return VKLLM_OK;
    if (!grow((void **)&t->ssym, &t->ssym_cap, e, sizeof(spm_sym)) ||
        !grow((void **)&t->sheap, &t->sheap_cap, 3 * e + 2, sizeof(spm_ent)))
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    size_t m = 0;
    for (size_t i = 0; i < e;) {
        size_t l = char_len((const uint8_t *)t->esc + i, e - i);
        t->ssym[m] = (spm_sym){ (uint32_t)i, (uint32_t)l, (int32_t)m - 1, (int32_t)m + 1, -1 };
        m++;
        i += l;
    }
    t->ssym[m - 1].next = -1;
    size_t nh = 0;
    for (size_t i = 1; i < m; i++) spm_try(t, &nh, (int32_t)i - 1, (int32_t)i);
    while (nh) {
        spm_ent b = sheap_pop(t->sheap, &nh);
        spm_sym *l = &t->ssym[b.left], *r = &t->ssym[b.right];
        if (!l->n || !r->n || l->next != (int32_t)b.right || l->n + r->n != b.size) continue;
        l->n += r->n;
        l->id = b.id;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) t->ssym[r->next].prev = (int32_t)b.left;
        spm_try(t, &nh, l->prev, (int32_t)b.left);
        spm_try(t, &nh, (int32_t)b.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = t->ssym[i].next) {
        const spm_sym *y = &t->ssym[i];
        int32_t id = y->id;
        if (id < 0) {
            id = vkllm_tokenizer_find(t, t->esc + y->start, y->n);
            if (!spm_mergeable(t, id)) id = -1;
        }
        vkllm_status st;
        if (id >= 0) {
            st = vkllm_tokens_push(out, id);
        } else {
            st = VKLLM_OK;
            for (uint32_t k = 0; k < y->n && !st; k++) st = vkllm_tokens_push(out, t->byte_tok[(uint8_t)t->esc[y->start + k]]);
        }
        if (st) return st;
    }
    return VKLLM_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Fragments: special tokens and runs of text */

typedef enum { SEG_RAW, SEG_PARSE, SEG_TOKEN } seg_kind;
typedef struct seg {
    seg_kind kind;
    const char *s;
    size_t n;
    int32_t id;
} seg;

/* Longest special token at s[0..n), its id and length; -1 if none. */
static int32_t match_special(const vkllm_tokenizer *t, const uint8_t *s, size_t n, size_t *len)
{
    int32_t best = -1;
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = t->trie[node].child;
        while (c && t->trie[c].byte != s[i]) c = t->trie[c].sibling;
        if (!c) break;
        node = c;
        if (t->trie[node].id >= 0) {
            best = t->trie[node].id;
            *len = i + 1;
        }
    }
    return best;
}

typedef struct frag_state {
    size_t n;       /* raw bytes gathered in t->buf */
    int prev_special;
} frag_state;

static vkllm_status flush_raw(vkllm_tokenizer *t, frag_state *f, vkllm_tokens *out)
{
    if (!f->n) return VKLLM_OK;
    piece_sink k = { out, NULL, NULL, 0, 0 };
    vkllm_status st = VKLLM_OK;
    if (t->kind == VKLLM_TOKENIZER_BPE) {
        st = bpe_text(t, (const uint8_t *)t->buf, f->n, &k);
    } else {
        const uint8_t *s = (const uint8_t *)t->buf;
        size_t n = f->n;
        int prefix = t->add_space_prefix && f->prev_special;
        while (n > MAX_RUN && !st) {
            size_t c = cut_point(s, n, 1);
            st = spm_text(t, s, c, prefix, out);
            prefix = 0;
            s += c;
            n -= c;
        }
        if (!st) st = spm_text(t, s, n, prefix, out);
    }
    f->n = 0;
    f->prev_special = 0;
    return st;
}

static vkllm_status add_raw(vkllm_tokenizer *t, frag_state *f, const char *s, size_t n)
{
    if (!n) return VKLLM_OK;
    if (f->n + n < f->n || !grow((void **)&t->buf, &t->buf_cap, f->n + n, 1)) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    memcpy(t->buf + f->n, s, n);
    f->n += n;
    return VKLLM_OK;
}

static vkllm_status encode_segs(vkllm_tokenizer *t, const seg *segs, size_t nseg, unsigned flags, vkllm_tokens *out)
{
    size_t n0 = out->n;
    frag_state f = { 0, 1 };
    vkllm_status st = VKLLM_OK;
    if ((flags & VKLLM_TOKENIZE_ADD_SPECIAL) && t->add_bos && t->bos >= 0) st = vkllm_tokens_push(out, t->bos);
    for (size_t k = 0; k < nseg && !st; k++) {
        const seg *g = &segs[k];
        if (g->kind == SEG_TOKEN) {
            st = flush_raw(t, &f, out);
            if (!st) st = vkllm_tokens_push(out, g->id);
            f.prev_special = 1;
        } else if (g->kind == SEG_RAW || !t->n_trie) {
            st = add_raw(t, &f, g->s, g->n);
        } else {
            const uint8_t *s = (const uint8_t *)g->s;
            size_t start = 0;
            for (size_t i = 0; i < g->n && !st; i++) {
                if (!t->trie_first[s[i]]) continue;
                size_t len = 0;
                int32_t id = match_special(t, s + i, g->n - i, &len);
                if (id < 0) continue;
                st = add_raw(t, &f, g->s + start, i - start);
                if (!st) st = flush_raw(t, &f, out);
                if (!st) st = vkllm_tokens_push(out, id);
                f.prev_special = 1;
                i += len - 1;
                start = i + 1;
            }
            if (!st) st = add_raw(t, &f, g->s + start, g->n - start);
        }
    }
    if (!st) st = flush_raw(t, &f, out);
    if (!st && (flags & VKLLM_TOKENIZE_ADD_SPECIAL) && t->add_eos && t->eos >= 0) st = vkllm_tokens_push(out, t->eos);
    if (st) {
        out->n = n0;
        set_err(t, "out of memory while encoding");
    }
    return st;
}

vkllm_status vkllm_tokenizer_encode(vkllm_tokenizer *t, const char *text, size_t len, unsigned flags, vkllm_tokens *out)
{
    if (!t) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (!out || (!text && len)) {
        set_err(t, "encode: NULL %s", out ? "text" : "output");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    seg g = { (flags & VKLLM_TOKENIZE_SPECIAL) ? SEG_PARSE : SEG_RAW, text, len, -1 };
    return encode_segs(t, &g, 1, flags, out);
}

/* ------------------------------------------------------------------------------------------------
 * Decoding */

vkllm_status vkllm_tokenizer_piece(vkllm_tokenizer *t, int32_t id, unsigned flags, const char **bytes, size_t *len)
{
    if (!t || !bytes || !len) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (id < 0 || (uint32_t)id >= t->n) {
        set_err(t, "token id %d is outside the vocabulary of %u tokens", (int)id, t->n);
        return VKLLM_ERROR_OUT_OF_RANGE;
    }
    *bytes = t->piece + t->piece_off[id];
    *len = (t->special[id] && !(flags & VKLLM_DECODE_SPECIAL)) ? 0 : t->piece_len[id];
    return VKLLM_OK;
}

static int strips_space(const vkllm_tokenizer *t, unsigned flags)
{
    return (flags & VKLLM_DECODE_STRIP_SPACE) && t->kind == VKLLM_TOKENIZER_SPM && t->add_space_prefix;
}

/* A token after which the encoder starts a new run of text (and so adds a space prefix). */
static int space_boundary(const vkllm_tokenizer *t, int32_t id)
{
    return t->type[id] == VKLLM_TOKEN_CONTROL || t->type[id] == VKLLM_TOKEN_USER_DEFINED;
}

vkllm_status vkllm_tokenizer_decode(vkllm_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char **out,
                                    size_t *len)
{
    if (!t || !out || (!ids && n)) return VKLLM_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *b;
        size_t l;
        vkllm_status st = vkllm_tokenizer_piece(t, ids[i], flags, &b, &l);
        if (st) return st;
        total += l;
    }
    char *s = malloc(total + 1);
    if (!s) {
        set_err(t, "out of memory for %zu decoded bytes", total);
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    size_t k = 0;
    int mode = strips_space(t, flags), strip = mode;
    for (size_t i = 0; i < n; i++) {
        const char *b;
        size_t l;
        vkllm_tokenizer_piece(t, ids[i], flags, &b, &l);
        if (strip && l) {
            if (b[0] == ' ') {
                b++;
                l--;
            }
            strip = 0;
        }
        memcpy(s + k, b, l);
        k += l;
        if (mode && space_boundary(t, ids[i])) strip = 1;
    }
    s[k] = 0;
    *out = s;
    if (len) *len = k;
    return VKLLM_OK;
}

struct vkllm_detok {
    const vkllm_tokenizer *t;
    unsigned flags;
    int mode, strip;
    uint8_t held[4];
    size_t n_held;
    char *out;
    size_t out_cap;
    char err[128];
};

vkllm_status vkllm_detok_create(const vkllm_tokenizer *t, unsigned flags, vkllm_detok **out)
{
    if (!out) return VKLLM_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    if (!t) return VKLLM_ERROR_INVALID_ARGUMENT;
    vkllm_detok *d = calloc(1, sizeof *d);
    if (!d) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    d->t = t;
    vkllm_detok_reset(d, flags);
    *out = d;
    return VKLLM_OK;
}

void vkllm_detok_destroy(vkllm_detok *d)
{
    if (!d) return;
    free(d->out);
    free(d);
}

void vkllm_detok_reset(vkllm_detok *d, unsigned flags)
{
    if (!d) return;
    d->flags = flags;
    d->mode = d->strip = strips_space(d->t, flags);
    d->n_held = 0;
    d->err[0] = 0;
}

const char *vkllm_detok_error(const vkllm_detok *d) { return d ? d->err : ""; }

size_t vkllm_detok_pending(const vkllm_detok *d) { return d ? d->n_held : 0; }

vkllm_status vkllm_detok_push(vkllm_detok *d, int32_t id, const char **text, size_t *len)
{
    if (!d || !text || !len) return VKLLM_ERROR_INVALID_ARGUMENT;
    *text = "";
    *len = 0;
    const vkllm_tokenizer *t = d->t;
    if (id < 0 || (uint32_t)id >= t->n) {
        snprintf(d->err, sizeof d->err, "token id %d is outside the vocabulary of %u tokens", (int)id, t->n);
        return VKLLM_ERROR_OUT_OF_RANGE;
    }
    const uint8_t *p = (const uint8_t *)t->piece + t->piece_off[id];
    size_t l = (t->special[id] && !(d->flags & VKLLM_DECODE_SPECIAL)) ? 0 : t->piece_len[id];
    if (d->strip && l) {
        if (p[0] == ' ') {
            p++;
            l--;
        }
        d->strip = 0;
    }
    if (d->mode && space_boundary(t, id)) d->strip = 1;
    /* worst case every byte becomes U+FFFD (3 bytes) */
    size_t total = d->n_held + l;
    if (!grow((void **)&d->out, &d->out_cap, 3 * total + 1, 1)) {
        snprintf(d->err, sizeof d->err, "out of memory");
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    /* the held bytes are at most 3: join them with the piece's start in a small window */
    uint8_t win[8];
    size_t k = 0, i = 0;
    size_t nw = d->n_held;
    memcpy(win, d->held, nw);
    size_t take = l < 4 ? l : 4;
    memcpy(win + nw, p, take);
    size_t wlen = nw + take;
    /* process positions that start in the window (held bytes); then the rest of the piece in place */
    while (i < total) {
        const uint8_t *s;
        size_t avail;
        if (i < nw) {
            s = win + i;
            avail = wlen - i;
        } else {
            s = p + (i - nw);
            avail = total - i;
        }
        size_t pre = 1;
        int cut = 0;
        size_t c = s[0] < 0x80 ? 1 : utf8_char(s, avail, &pre, &cut);
        if (c) {
            memcpy(d->out + k, s, c);
            k += c;
            i += c;
            continue;
        }
        if (cut && i + pre == total) {
            /* an incomplete character at the end: hold it back */
            uint8_t tmp[4];
            memcpy(tmp, s, pre);
            memcpy(d->held, tmp, pre);
            d->n_held = pre;
            *text = d->out;
            *len = k;
            return VKLLM_OK;
        }
        memcpy(d->out + k, "\xef\xbf\xbd", 3);
        k += 3;
        i += pre ? pre : 1;
    }
    d->n_held = 0;
    *text = d->out;
    *len = k;
    return VKLLM_OK;
}

vkllm_status vkllm_detok_flush(vkllm_detok *d, const char **text, size_t *len)
{
    if (!d || !text || !len) return VKLLM_ERROR_INVALID_ARGUMENT;
    *text = "";
    *len = 0;
    if (!d->n_held) return VKLLM_OK;
    if (!grow((void **)&d->out, &d->out_cap, 4, 1)) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    memcpy(d->out, "\xef\xbf\xbd", 3);
    d->n_held = 0;
    *text = d->out;
    *len = 3;
    return VKLLM_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Chat templates */

const char *vkllm_chat_format_name(vkllm_chat_format f)
{
    return f == VKLLM_CHAT_PHI3 ? "phi3" : f == VKLLM_CHAT_PHI4 ? "phi4" : "none";
}

vkllm_chat_format vkllm_tokenizer_chat_format(const vkllm_tokenizer *t) { return t ? t->chat : VKLLM_CHAT_NONE; }

static int32_t find_str(const vkllm_tokenizer *t, const char *s) { return vkllm_tokenizer_find(t, s, strlen(s)); }

static int valid_role(const char *role)
{
    return role && (!strcmp(role, "system") || !strcmp(role, "user") || !strcmp(role, "assistant"));
}

char *vkllm_chat_render_message(vkllm_chat_format f, const char *role, const char *content)
{
    if (f == VKLLM_CHAT_NONE || !valid_role(role) || !content) return NULL;
    size_t n = strlen(content) + 64;
    char *s = malloc(n);
    if (!s) return NULL;
    if (f == VKLLM_CHAT_PHI3) snprintf(s, n, "<|%s|>\n%s<|end|>\n", role, content);
    else snprintf(s, n, "<|im_start|>%s<|im_sep|>%s<|im_end|>", role, content);
    return s;
}

static vkllm_status chat_check(vkllm_tokenizer *t, vkllm_tokens *out)
{
    if (!t) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (!out) {
        set_err(t, "chat: NULL output");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    if (t->chat == VKLLM_CHAT_NONE) {
        set_err(t, "this model has no chat template vkllm knows (Phi-3 <|user|>/<|end|> or Phi-4 "
                   "<|im_start|>/<|im_sep|>/<|im_end|>); use plain completion (vkllm run -p)");
        return VKLLM_ERROR_UNSUPPORTED;
    }
    return VKLLM_OK;
}

vkllm_status vkllm_chat_append_message(vkllm_tokenizer *t, const char *role, const char *content, size_t len,
                                       vkllm_tokens *out)
{
    vkllm_status st = chat_check(t, out);
    if (st) return st;
    if (!valid_role(role) || (!content && len)) {
        set_err(t, "chat: role must be system, user or assistant (got '%s')%s", role ? role : "(null)",
                valid_role(role) ? ", and content may not be NULL" : "");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    if (t->chat == VKLLM_CHAT_PHI3) {
        char name[32];
        snprintf(name, sizeof name, "<|%s|>", role);
        int32_t head = find_str(t, name), end = find_str(t, "<|end|>");
        if (head < 0) {
            set_err(t, "chat: this model has no %s token", name);
            return VKLLM_ERROR_UNSUPPORTED;
        }
        seg g[5] = { { SEG_TOKEN, NULL, 0, head }, { SEG_RAW, "\n", 1, -1 }, { SEG_RAW, content, len, -1 },
                     { SEG_TOKEN, NULL, 0, end }, { SEG_RAW, "\n", 1, -1 } };
        return encode_segs(t, g, 5, 0, out);
    }
    seg g[5] = { { SEG_TOKEN, NULL, 0, find_str(t, "<|im_start|>") }, { SEG_RAW, role, strlen(role), -1 },
                 { SEG_TOKEN, NULL, 0, find_str(t, "<|im_sep|>") }, { SEG_RAW, content, len, -1 },
                 { SEG_TOKEN, NULL, 0, find_str(t, "<|im_end|>") } };
    return encode_segs(t, g, 5, 0, out);
}

vkllm_status vkllm_chat_append_generation_prompt(vkllm_tokenizer *t, vkllm_tokens *out)
{
    vkllm_status st = chat_check(t, out);
    if (st) return st;
    if (t->chat == VKLLM_CHAT_PHI3) {
        seg g[2] = { { SEG_TOKEN, NULL, 0, find_str(t, "<|assistant|>") }, { SEG_RAW, "\n", 1, -1 } };
        return encode_segs(t, g, 2, 0, out);
    }
    seg g[3] = { { SEG_TOKEN, NULL, 0, find_str(t, "<|im_start|>") }, { SEG_RAW, "assistant", 9, -1 },
                 { SEG_TOKEN, NULL, 0, find_str(t, "<|im_sep|>") } };
    return encode_segs(t, g, 3, 0, out);
}

vkllm_status vkllm_chat_append_end_of_turn(vkllm_tokenizer *t, vkllm_tokens *out)
{
    vkllm_status st = chat_check(t, out);
    if (st) return st;
    if (t->chat == VKLLM_CHAT_PHI3) {
        seg g[2] = { { SEG_TOKEN, NULL, 0, find_str(t, "<|end|>") }, { SEG_RAW, "\n", 1, -1 } };
        return encode_segs(t, g, 2, 0, out);
    }
    return vkllm_tokens_push(out, find_str(t, "<|im_end|>"));
}

static vkllm_chat_format pick_chat(const vkllm_tokenizer *t, const char *tmpl)
{
    int has4 = find_str(t, "<|im_start|>") >= 0 && find_str(t, "<|im_sep|>") >= 0 && find_str(t, "<|im_end|>") >= 0;
    int has3 = find_str(t, "<|user|>") >= 0 && find_str(t, "<|assistant|>") >= 0 && find_str(t, "<|end|>") >= 0;
    if (tmpl) {
        if (strstr(tmpl, "<|im_start|>") && strstr(tmpl, "<|im_sep|>")) return has4 ? VKLLM_CHAT_PHI4 : VKLLM_CHAT_NONE;
        if (strstr(tmpl, "<|user|>") && strstr(tmpl, "<|end|>")) return has3 ? VKLLM_CHAT_PHI3 : VKLLM_CHAT_NONE;
    }
    /* no template we recognize: the vocabulary says which family */
    if (has4) return VKLLM_CHAT_PHI4;
    if (has3) return VKLLM_CHAT_PHI3;
    return VKLLM_CHAT_NONE;
}

/* ------------------------------------------------------------------------------------------------
 * Construction */

vkllm_tokenizer_desc vkllm_tokenizer_desc_default(void)
{
    vkllm_tokenizer_desc d;
    memset(&d, 0, sizeof d);
    d.bos = d.eos = d.unk = d.pad = -1;
    d.add_space_prefix = -1;
    return d;
}

void vkllm_tokenizer_destroy(vkllm_tokenizer *t)
{
    if (!t) return;
    free(t->text);
    free(t->text_off);
    free(t->text_len);
    free(t->piece);
    free(t->piece_off);
    free(t->piece_len);
    free(t->type);
    free(t->special);
    free(t->score);
    free(t->tok_hash);
    free(t->map);
    free(t->pairs);
    free(t->trie);
    if (t->md) pcre2_match_data_free(t->md);
    if (t->mctx) pcre2_match_context_free(t->mctx);
    if (t->jit_stack) pcre2_jit_stack_free(t->jit_stack);
    if (t->re) pcre2_code_free(t->re);
    free(t->bsym);
    free(t->bheap);
    free(t->ssym);
    free(t->sheap);
    free(t->buf);
    free(t->esc);
    free(t->wc);
    free(t->wc_words);
    free(t->wc_toks);
    free(t);
}

const char *vkllm_tokenizer_error(const vkllm_tokenizer *t) { return t ? t->err : ""; }
vkllm_tokenizer_kind vkllm_tokenizer_kind_of(const vkllm_tokenizer *t) { return t ? t->kind : VKLLM_TOKENIZER_BPE; }
uint32_t vkllm_tokenizer_n_vocab(const vkllm_tokenizer *t) { return t ? t->n : 0; }
int32_t vkllm_tokenizer_bos(const vkllm_tokenizer *t) { return t ? t->bos : -1; }
int32_t vkllm_tokenizer_eos(const vkllm_tokenizer *t) { return t ? t->eos : -1; }
int vkllm_tokenizer_adds_bos(const vkllm_tokenizer *t) { return t && t->add_bos && t->bos >= 0; }

int vkllm_tokenizer_is_eog(const vkllm_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || (uint32_t)id >= t->n) return 0;
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return 1;
    return 0;
}

const char *vkllm_tokenizer_token_text(const vkllm_tokenizer *t, int32_t id, size_t *len)
{
    if (!t || id < 0 || (uint32_t)id >= t->n) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->text_len[id];
    return t->text + t->text_off[id];
}

vkllm_token_type vkllm_tokenizer_token_type(const vkllm_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || (uint32_t)id >= t->n) return VKLLM_TOKEN_UNDEFINED;
    return (vkllm_token_type)t->type[id];
}

static int hex_digit(uint8_t c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decoded bytes of token i into o (room for its text length; decoding never grows a text). */
static uint32_t decode_token(const vkllm_tokenizer *t, uint32_t i, const int16_t *rev, char *o)
{
    const uint8_t *s = (const uint8_t *)t->text + t->text_off[i];
    uint32_t n = t->text_len[i], k = 0;
    uint8_t ty = t->type[i];
    if (ty == VKLLM_TOKEN_CONTROL || ty == VKLLM_TOKEN_UNKNOWN || ty == VKLLM_TOKEN_UNUSED ||
        ty == VKLLM_TOKEN_USER_DEFINED) {
        memcpy(o, s, n);
        return n;
    }
    if (t->kind == VKLLM_TOKENIZER_SPM && ty == VKLLM_TOKEN_BYTE) {
        if (n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && hex_digit(s[3]) >= 0 && hex_digit(s[4]) >= 0) {
            o[0] = (char)(hex_digit(s[3]) * 16 + hex_digit(s[4]));
            return 1;
        }
        memcpy(o, s, n);
        return n;
    }
    for (uint32_t j = 0; j < n;) {
        size_t pre;
        int cut;
        size_t l = utf8_char(s + j, n - j, &pre, &cut);
        if (!l) {
            o[k++] = (char)s[j++];
            continue;
        }
        if (t->kind == VKLLM_TOKENIZER_SPM) {
            if (l == 3 && !memcmp(s + j, "\xe2\x96\x81", 3)) o[k++] = ' ';
            else {
                memcpy(o + k, s + j, l);
                k += (uint32_t)l;
            }
        } else {
            uint32_t cp = get_cp(s + j, l);
            int b = cp < ALPHABET_END ? rev[cp] : -1;
            if (b >= 0) o[k++] = (char)b;
            else {
                memcpy(o + k, s + j, l);
                k += (uint32_t)l;
            }
        }
        j += (uint32_t)l;
    }
    return k;
}

static int trie_add(vkllm_tokenizer *t, const uint8_t *s, size_t n, int32_t id, size_t *cap)
{
    uint32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = t->trie[node].child, last = 0;
        while (c && t->trie[c].byte != s[i]) {
            last = c;
            c = t->trie[c].sibling;
        }
        if (!c) {
            if (!grow((void **)&t->trie, cap, t->n_trie + 1, sizeof(trie_node))) return 0;
            c = t->n_trie++;
            t->trie[c] = (trie_node){ -1, 0, 0, s[i] };
            if (last) t->trie[last].sibling = c;
            else t->trie[node].child = c;
        }
        node = c;
    }
    if (t->trie[node].id < 0) t->trie[node].id = id; /* duplicates: the first id */
    return 1;
}

static const char *pre_regex(const char *pre)
{
    static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    static const char gpt4[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char gpt4o[] =
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
        "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (pre && (!strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2") || !strcmp(pre, "phi-2") || !strcmp(pre, "starcoder") ||
                !strcmp(pre, "refact")))
        return gpt2;
    if (pre && !strcmp(pre, "gpt-4o")) return gpt4o;
    /* dbrx (Phi-4's files), llama3, llama-bpe, smaug-bpe, default and anything unknown: GPT-4's */
    return gpt4;
}

static vkllm_status build(vkllm_tokenizer *t, const vkllm_tokenizer_desc *d, char *err, size_t en)
{
    uint32_t n = d->n_tokens;
    char tb[200], tb2[200];
    if (d->kind != VKLLM_TOKENIZER_BPE && d->kind != VKLLM_TOKENIZER_SPM) {
        put_err(err, en, "tokenizer kind %d is not byte-level BPE (1) or SentencePiece (2)", (int)d->kind);
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    if (!n || n > MAX_TOKENS || !d->tokens) {
        put_err(err, en, "the vocabulary has %u tokens (want 1..%u)%s", n, MAX_TOKENS, d->tokens ? "" : " or no token array");
        return n && !d->tokens ? VKLLM_ERROR_INVALID_ARGUMENT : VKLLM_ERROR_BAD_MODEL;
    }
    if (d->n_merges > MAX_MERGES || (d->n_merges && !d->merges)) {
        put_err(err, en, "%u merges (at most %u, and the array must be given)", d->n_merges, MAX_MERGES);
        return VKLLM_ERROR_BAD_MODEL;
    }
    t->kind = d->kind;
    t->n = n;
    t->text_off = malloc(n * sizeof(uint32_t));
    t->text_len = malloc(n * sizeof(uint32_t));
    t->piece_off = malloc(n * sizeof(uint32_t));
    t->piece_len = malloc(n * sizeof(uint32_t));
    t->type = malloc(n);
    t->special = calloc(n, 1);
    t->score = calloc(n, sizeof(float));
    t->tok_hash = malloc(n * sizeof(uint32_t));
    uint32_t msize = 1;
    while (msize < 2 * n) msize *= 2;
    t->map = calloc(msize, sizeof(uint32_t));
    t->map_mask = msize - 1;
    if (!t->text_off || !t->text_len || !t->piece_off || !t->piece_len || !t->type || !t->special || !t->score ||
        !t->tok_hash || !t->map)
        goto oom;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!d->tokens[i]) {
            put_err(err, en, "token %u has no text (NULL)", i);
            return VKLLM_ERROR_INVALID_ARGUMENT;
        }
        size_t l = d->token_lens ? d->token_lens[i] : strlen(d->tokens[i]);
        if (l > MAX_TOKEN_BYTES) {
            put_err(err, en, "token %u is %zu bytes long (at most %u)", i, l, MAX_TOKEN_BYTES);
            return VKLLM_ERROR_BAD_MODEL;
        }
        int32_t ty = d->types ? d->types[i] : VKLLM_TOKEN_NORMAL;
        if (ty < 0 || ty > VKLLM_TOKEN_BYTE) {
            put_err(err, en, "token %u ('%s') has type %d (known types are 0..6)", i, show(d->tokens[i], l, tb), (int)ty);
            return VKLLM_ERROR_BAD_MODEL;
        }
        if (d->scores && isnan(d->scores[i])) {
            put_err(err, en, "token %u ('%s') has a NaN score", i, show(d->tokens[i], l, tb));
            return VKLLM_ERROR_BAD_MODEL;
        }
        t->text_off[i] = (uint32_t)total;
        t->text_len[i] = (uint32_t)l;
        t->type[i] = (uint8_t)ty;
        if (d->scores) t->score[i] = d->scores[i];
        total += l + 1;
        if (total > UINT32_MAX) {
            put_err(err, en, "the vocabulary's texts exceed 4 GiB");
            return VKLLM_ERROR_BAD_MODEL;
        }
    }
    t->text = malloc(total ? total : 1);
    t->piece = malloc(total ? total : 1);
    if (!t->text || !t->piece) goto oom;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(t->text + t->text_off[i], d->tokens[i], t->text_len[i]);
        t->text[t->text_off[i] + t->text_len[i]] = 0;
        uint32_t h = (uint32_t)hash_bytes(t->text + t->text_off[i], t->text_len[i]);
        t->tok_hash[i] = h;
        if (vkllm_tokenizer_find(t, t->text + t->text_off[i], t->text_len[i]) >= 0) continue; /* duplicate: first wins */
        uint32_t k = h & t->map_mask;
        while (t->map[k]) k = (k + 1) & t->map_mask;
        t->map[k] = i + 1;
    }
    uint32_t poff = 0, alpha_cp[256];
    int16_t alpha_rev[ALPHABET_END];
    byte_alphabet(alpha_cp, alpha_rev);
    for (uint32_t i = 0; i < n; i++) {
        t->piece_off[i] = poff;
        t->piece_len[i] = decode_token(t, i, alpha_rev, t->piece + poff);
        poff += t->piece_len[i];
        uint8_t ty = t->type[i];
        t->special[i] = ty == VKLLM_TOKEN_CONTROL || ty == VKLLM_TOKEN_UNKNOWN || ty == VKLLM_TOKEN_UNUSED;
    }
    /* ids */
    const struct { const char *name; int32_t id; } ids[4] = { { "bos", d->bos }, { "eos", d->eos }, { "unknown", d->unk },
                                                             { "padding", d->pad } };
    for (int i = 0; i < 4; i++)
        if (ids[i].id < -1 || ids[i].id >= (int64_t)n) {
            put_err(err, en, "the %s token id %d is outside the vocabulary of %u tokens", ids[i].name, (int)ids[i].id, n);
            return VKLLM_ERROR_BAD_MODEL;
        }
    t->bos = d->bos;
    t->eos = d->eos;
    t->unk = d->unk;
    t->pad = d->pad;
    t->add_bos = d->add_bos != 0;
    t->add_eos = d->add_eos != 0;
    t->add_space_prefix = d->kind == VKLLM_TOKENIZER_SPM && d->add_space_prefix != 0;
    if (t->eos >= 0) t->eog[t->n_eog++] = t->eos;
    static const char *const eog_names[] = { "<|end|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>" };
    for (size_t i = 0; i < sizeof eog_names / sizeof eog_names[0]; i++) {
        int32_t id = find_str(t, eog_names[i]);
        /* converters mark Phi-3's <|end|> control or user-defined depending on their version */
        if (id >= 0 && id != t->eos && space_boundary(t, id) && t->n_eog < MAX_EOG) t->eog[t->n_eog++] = id;
    }
    /* special tokens matched in text */
    size_t trie_cap = 0;
    if (!grow((void **)&t->trie, &trie_cap, 1, sizeof(trie_node))) goto oom;
    t->trie[0] = (trie_node){ -1, 0, 0, 0 };
    t->n_trie = 1;
    for (uint32_t i = 0; i < n; i++) {
        if ((t->type[i] != VKLLM_TOKEN_CONTROL && t->type[i] != VKLLM_TOKEN_USER_DEFINED) || !t->text_len[i]) continue;
        const uint8_t *s = (const uint8_t *)t->text + t->text_off[i];
        if (!trie_add(t, s, t->text_len[i], (int32_t)i, &trie_cap)) goto oom;
        t->trie_first[s[0]] = 1;
    }
    if (t->n_trie == 1) t->n_trie = 0; /* nothing to match */
    /* byte tokens */
    for (unsigned b = 0; b < 256; b++) {
        int32_t id;
        char s[8];
        if (d->kind == VKLLM_TOKENIZER_BPE) {
            size_t l = put_cp(s, alpha_cp[b]);
            id = vkllm_tokenizer_find(t, s, l);
            if (id < 0) {
                s[l] = 0;
                put_err(err, en, "byte-level BPE vocabulary lacks the token for byte 0x%02x ('%s'): every byte needs one", b, s);
                return VKLLM_ERROR_BAD_MODEL;
            }
        } else {
            snprintf(s, sizeof s, "<0x%02X>", b);
            id = find_str(t, s);
            if (id < 0 && b < 0x80) {
                s[0] = (char)b;
                id = vkllm_tokenizer_find(t, s, 1);
            }
            if (id < 0) id = t->unk;
            if (id < 0) {
                put_err(err, en, "SentencePiece vocabulary has no <0x%02X> byte token and no unknown token to fall back to", b);
                return VKLLM_ERROR_BAD_MODEL;
            }
        }
        t->byte_tok[b] = id;
    }
    /* merges */
    if (d->kind == VKLLM_TOKENIZER_BPE) {
        uint32_t psize = 1;
        while (psize < 2 * (d->n_merges + 1)) psize *= 2;
        t->pairs = calloc(psize, sizeof(pair_slot));
        if (!t->pairs) goto oom;
        t->pairs_mask = psize - 1;
        if (!grow((void **)&t->buf, &t->buf_cap, 2 * MAX_TOKEN_BYTES, 1)) goto oom;
        for (uint32_t r = 0; r < d->n_merges; r++) {
            const char *m = d->merges[r];
            if (!m) {
                put_err(err, en, "merge %u is NULL", r);
                return VKLLM_ERROR_INVALID_ARGUMENT;
            }
            size_t l = d->merge_lens ? d->merge_lens[r] : strlen(m);
            const char *sp = l > 1 ? memchr(m + 1, ' ', l - 1) : NULL;
            if (!sp || sp + 1 == m + l || memchr(sp + 1, ' ', (size_t)(m + l - sp - 1))) {
                put_err(err, en, "merge %u ('%s') is not two tokens separated by one space", r, show(m, l, tb));
                return VKLLM_ERROR_BAD_MODEL;
            }
            size_t la = (size_t)(sp - m), lb = l - la - 1;
            int32_t a = vkllm_tokenizer_find(t, m, la), b = vkllm_tokenizer_find(t, sp + 1, lb);
            if (a < 0 || b < 0) {
                put_err(err, en, "merge %u ('%s'): '%s' is not a token", r, show(m, l, tb),
                        a < 0 ? show(m, la, tb2) : show(sp + 1, lb, tb2));
                return VKLLM_ERROR_BAD_MODEL;
            }
            if (la + lb > MAX_TOKEN_BYTES) {
                put_err(err, en, "merge %u is too long", r);
                return VKLLM_ERROR_BAD_MODEL;
            }
            char *cat = t->buf; /* sized below, before the loop */
            memcpy(cat, m, la);
            memcpy(cat + la, sp + 1, lb);
            int32_t c = vkllm_tokenizer_find(t, cat, la + lb);
            if (c < 0) {
                put_err(err, en, "merge %u ('%s'): the merged text '%s' is not a token", r, show(m, l, tb),
                        show(cat, la + lb, tb2));
                return VKLLM_ERROR_BAD_MODEL;
            }
            uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
            uint32_t k = (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & t->pairs_mask;
            while (t->pairs[k].key && t->pairs[k].key != key) k = (k + 1) & t->pairs_mask;
            if (t->pairs[k].key) continue; /* a repeated merge: the first (best) rank stands */
            t->pairs[k] = (pair_slot){ key, r, (uint32_t)c };
        }
        t->n_merges = d->n_merges;
        /* the pre-tokenizer */
        int ec;
        PCRE2_SIZE eo;
        const char *pat = pre_regex(d->pre);
        t->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
        if (!t->re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof msg);
            put_err(err, en, "the pre-tokenizer pattern does not compile at offset %zu: %s (PCRE2 without Unicode support?)",
                    (size_t)eo, (const char *)msg);
            return VKLLM_ERROR_INTERNAL;
        }
        t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
        t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
        t->mctx = pcre2_match_context_create(NULL);
        if (!t->md || !t->mctx) goto oom;
        if (t->jit) {
            t->jit_stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
            if (!t->jit_stack) goto oom;
            pcre2_jit_stack_assign(t->mctx, NULL, t->jit_stack);
        }
        t->wc = calloc(WC_SLOTS, sizeof(wc_slot));
        t->wc_words = malloc(WC_WORD_BYTES);
        t->wc_toks = malloc(WC_TOKS * sizeof(int32_t));
        if (!t->wc || !t->wc_words || !t->wc_toks) goto oom;
    }
    t->chat = pick_chat(t, d->chat_template);
    return VKLLM_OK;
oom:
    put_err(err, en, "out of memory building a tokenizer of %u tokens", n);
    return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
}

vkllm_status vkllm_tokenizer_create(const vkllm_tokenizer_desc *desc, vkllm_tokenizer **out, char *err, size_t err_size)
{
    if (err && err_size) err[0] = 0;
    if (!out) {
        put_err(err, err_size, "NULL output pointer");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (!desc) {
        put_err(err, err_size, "NULL tokenizer description");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    vkllm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        put_err(err, err_size, "out of memory");
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    vkllm_status st = build(t, desc, err, err_size);
    if (st) {
        vkllm_tokenizer_destroy(t);
        return st;
    }
    *out = t;
    return VKLLM_OK;
}

/* ------------------------------------------------------------------------------------------------
 * From GGUF */

/* An optional token id key: absent = -1; u32/i32/u64/i64 accepted, -1 read as none. */
static vkllm_status gguf_id(vkllm_gguf *g, const char *key, int32_t *out, char *err, size_t en)
{
    *out = -1;
    vkllm_gguf_ref r = vkllm_gguf_find(g, key);
    if (r.type == VKLLM_GGUF_NONE) return VKLLM_OK;
    int64_t v;
    if (vkllm_gguf_ref_i64(g, r, &v) || v < -1 || v > INT32_MAX) {
        put_err(err, en, "key '%s' is not a token id (%s)", key,
                r.type == VKLLM_GGUF_STRING || r.type == VKLLM_GGUF_ARRAY ? vkllm_gguf_type_name(r.type) : "out of range");
        return VKLLM_ERROR_BAD_MODEL;
    }
    *out = (int32_t)v;
    return VKLLM_OK;
}

static vkllm_status gguf_bool(vkllm_gguf *g, const char *key, int *out, char *err, size_t en)
{
    vkllm_gguf_ref r = vkllm_gguf_find(g, key);
    if (r.type == VKLLM_GGUF_NONE) return VKLLM_OK;
    if (vkllm_gguf_ref_bool(g, r, out)) {
        put_err(err, en, "key '%s': %s", key, vkllm_gguf_error(g));
        return VKLLM_ERROR_BAD_MODEL;
    }
    return VKLLM_OK;
}

static vkllm_status gguf_opt_string(vkllm_gguf *g, const char *key, const char **out, char *err, size_t en)
{
    *out = NULL;
    vkllm_gguf_ref r = vkllm_gguf_find(g, key);
    if (r.type == VKLLM_GGUF_NONE) return VKLLM_OK;
    if (vkllm_gguf_ref_string(g, r, out, NULL)) {
        put_err(err, en, "key '%s': %s", key, vkllm_gguf_error(g));
        return VKLLM_ERROR_BAD_MODEL;
    }
    return VKLLM_OK;
}

/* Strings of an array key into s/len (n elements); refuses non-string elements. */
static vkllm_status gguf_strings(vkllm_gguf *g, const char *key, vkllm_gguf_ref r, uint64_t n, const char **s,
                                 uint32_t *len, char *err, size_t en)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l = 0;
        if (vkllm_gguf_ref_string(g, vkllm_gguf_ref_at(r, i), &s[i], &l) || l > MAX_TOKEN_BYTES) {
            put_err(err, en, "key '%s': element %llu is %s", key, (unsigned long long)i,
                    l > MAX_TOKEN_BYTES ? "too long" : "not a string");
            return VKLLM_ERROR_BAD_MODEL;
        }
        len[i] = (uint32_t)l;
    }
    return VKLLM_OK;
}

vkllm_status vkllm_tokenizer_create_gguf(struct vkllm_gguf *g, vkllm_tokenizer **out, char *err, size_t en)
{
    if (err && en) err[0] = 0;
    if (!out) return VKLLM_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    if (!g) {
        put_err(err, en, "NULL GGUF file");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    vkllm_tokenizer_desc d = vkllm_tokenizer_desc_default();
    const char *model = NULL;
    vkllm_status st = VKLLM_OK;
    vkllm_gguf_ref rt, rm, rty, rs;
    uint64_t nt = 0, nm = 0;
    const char **toks = NULL, **merges = NULL;
    uint32_t *tlen = NULL, *mlen = NULL;
    int32_t *types = NULL;
    float *scores = NULL;
    if (vkllm_gguf_get_string(g, "tokenizer.ggml.model", &model, NULL)) {
        put_err(err, en, "%s: the file has no tokenizer", vkllm_gguf_error(g));
        return VKLLM_ERROR_BAD_MODEL;
    }
    if (!strcmp(model, "gpt2")) d.kind = VKLLM_TOKENIZER_BPE;
    else if (!strcmp(model, "llama")) d.kind = VKLLM_TOKENIZER_SPM;
    else {
        put_err(err, en, "tokenizer.ggml.model '%.64s' is not supported (gpt2 = byte-level BPE, llama = SentencePiece)", model);
        return VKLLM_ERROR_UNSUPPORTED;
    }
    if (vkllm_gguf_get_array(g, "tokenizer.ggml.tokens", VKLLM_GGUF_STRING, &rt, &nt)) {
        put_err(err, en, "%s", vkllm_gguf_error(g));
        return VKLLM_ERROR_BAD_MODEL;
    }
    if (nt == 0 || nt > MAX_TOKENS) {
        put_err(err, en, "tokenizer.ggml.tokens has %llu tokens (want 1..%u)", (unsigned long long)nt, MAX_TOKENS);
        return VKLLM_ERROR_BAD_MODEL;
    }
    toks = malloc(nt * sizeof *toks);
    tlen = malloc(nt * sizeof *tlen);
    if (!toks || !tlen) goto oom;
    st = gguf_strings(g, "tokenizer.ggml.tokens", rt, nt, toks, tlen, err, en);
    if (st) goto done;
    rty = vkllm_gguf_find(g, "tokenizer.ggml.token_type");
    if (rty.type != VKLLM_GGUF_NONE) {
        vkllm_gguf_type et = vkllm_gguf_ref_elem_type(rty);
        if (rty.type != VKLLM_GGUF_ARRAY || vkllm_gguf_ref_len(rty) != nt ||
            (et != VKLLM_GGUF_INT32 && et != VKLLM_GGUF_UINT32)) {
            put_err(err, en, "tokenizer.ggml.token_type must be an array of %llu i32 (found %s of %llu %s)",
                    (unsigned long long)nt, vkllm_gguf_type_name(rty.type), (unsigned long long)vkllm_gguf_ref_len(rty),
                    vkllm_gguf_type_name(et));
            st = VKLLM_ERROR_BAD_MODEL;
            goto done;
        }
        types = malloc(nt * sizeof *types);
        if (!types) goto oom;
        const uint8_t *raw = vkllm_gguf_ref_data(rty);
        for (uint64_t i = 0; i < nt; i++) {
            uint32_t v = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 | (uint32_t)raw[4 * i + 2] << 16 |
                         (uint32_t)raw[4 * i + 3] << 24;
            types[i] = v > 255 ? -1 : (int32_t)v; /* out-of-range values are refused by build() */
        }
        d.types = types;
    }
    rs = vkllm_gguf_find(g, "tokenizer.ggml.scores");
    if (rs.type != VKLLM_GGUF_NONE) {
        if (rs.type != VKLLM_GGUF_ARRAY || vkllm_gguf_ref_len(rs) != nt || vkllm_gguf_ref_elem_type(rs) != VKLLM_GGUF_FLOAT32) {
            put_err(err, en, "tokenizer.ggml.scores must be an array of %llu f32 (found %s of %llu %s)",
                    (unsigned long long)nt, vkllm_gguf_type_name(rs.type), (unsigned long long)vkllm_gguf_ref_len(rs),
                    vkllm_gguf_type_name(vkllm_gguf_ref_elem_type(rs)));
            st = VKLLM_ERROR_BAD_MODEL;
            goto done;
        }
        scores = malloc(nt * sizeof *scores);
        if (!scores) goto oom;
        memcpy(scores, vkllm_gguf_ref_data(rs), nt * sizeof *scores); /* little-endian host, as the reader assumes */
        d.scores = scores;
    }
    rm = vkllm_gguf_find(g, "tokenizer.ggml.merges");
    if (rm.type != VKLLM_GGUF_NONE) {
        if (rm.type != VKLLM_GGUF_ARRAY || vkllm_gguf_ref_elem_type(rm) != VKLLM_GGUF_STRING) {
            put_err(err, en, "tokenizer.ggml.merges must be an array of strings (found %s of %s)",
                    vkllm_gguf_type_name(rm.type), vkllm_gguf_type_name(vkllm_gguf_ref_elem_type(rm)));
            st = VKLLM_ERROR_BAD_MODEL;
            goto done;
        }
        nm = vkllm_gguf_ref_len(rm);
        if (nm > MAX_MERGES) {
            put_err(err, en, "tokenizer.ggml.merges has %llu merges (at most %u)", (unsigned long long)nm, MAX_MERGES);
            st = VKLLM_ERROR_BAD_MODEL;
            goto done;
        }
        if (d.kind == VKLLM_TOKENIZER_BPE && nm) {
            merges = malloc(nm * sizeof *merges);
            mlen = malloc(nm * sizeof *mlen);
            if (!merges || !mlen) goto oom;
            st = gguf_strings(g, "tokenizer.ggml.merges", rm, nm, merges, mlen, err, en);
            if (st) goto done;
            d.merges = merges;
            d.merge_lens = mlen;
            d.n_merges = (uint32_t)nm;
        }
    }
    if ((st = gguf_id(g, "tokenizer.ggml.bos_token_id", &d.bos, err, en)) ||
        (st = gguf_id(g, "tokenizer.ggml.eos_token_id", &d.eos, err, en)) ||
        (st = gguf_id(g, "tokenizer.ggml.unknown_token_id", &d.unk, err, en)) ||
        (st = gguf_id(g, "tokenizer.ggml.padding_token_id", &d.pad, err, en)))
        goto done;
    /* llama.cpp's defaults: SentencePiece files add BOS unless they say otherwise */
    d.add_bos = d.kind == VKLLM_TOKENIZER_SPM;
    if ((st = gguf_bool(g, "tokenizer.ggml.add_bos_token", &d.add_bos, err, en)) ||
        (st = gguf_bool(g, "tokenizer.ggml.add_eos_token", &d.add_eos, err, en)))
        goto done;
    int asp = -1;
    if ((st = gguf_bool(g, "tokenizer.ggml.add_space_prefix", &asp, err, en))) goto done;
    d.add_space_prefix = asp;
    if ((st = gguf_opt_string(g, "tokenizer.ggml.pre", &d.pre, err, en)) ||
        (st = gguf_opt_string(g, "tokenizer.chat_template", &d.chat_template, err, en)))
        goto done;
    d.n_tokens = (uint32_t)nt;
    d.tokens = toks;
    d.token_lens = tlen;
    st = vkllm_tokenizer_create(&d, out, err, en);
    goto done;
oom:
    put_err(err, en, "out of memory reading the vocabulary");
    st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
done:
    free(toks);
    free(tlen);
    free(merges);
    free(mlen);
    free(types);
    free(scores);
    return st;
}
