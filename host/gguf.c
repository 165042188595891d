/* GGUF reader (v2/v3, hostile input) and streaming writer (v3). See vkllm/gguf.h for the contract.
 *
 * Reader rule: every size comes from the file, so every size is compared with the bytes that remain
 * before it is used or allocated for; allocations are therefore bounded by a small multiple of the
 * file size. Messages name the field and its byte offset. */
#include "vkllm/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define MAX_KEY_LEN 65535u
#define MAX_NAME_LEN 63u   /* ggml's GGML_MAX_NAME (64) less the NUL: llama.cpp refuses longer */
#define MAX_NESTING 16
#define ERR_SIZE 512

/* ------------------------------------------------------------------------------------------------
 * Shared */

const char *vkllm_gguf_type_name(vkllm_gguf_type t)
{
    switch (t) {
    case VKLLM_GGUF_UINT8: return "u8";
    case VKLLM_GGUF_INT8: return "i8";
    case VKLLM_GGUF_UINT16: return "u16";
    case VKLLM_GGUF_INT16: return "i16";
    case VKLLM_GGUF_UINT32: return "u32";
    case VKLLM_GGUF_INT32: return "i32";
    case VKLLM_GGUF_FLOAT32: return "f32";
    case VKLLM_GGUF_BOOL: return "bool";
    case VKLLM_GGUF_STRING: return "string";
    case VKLLM_GGUF_ARRAY: return "array";
    case VKLLM_GGUF_UINT64: return "u64";
    case VKLLM_GGUF_INT64: return "i64";
    case VKLLM_GGUF_FLOAT64: return "f64";
    case VKLLM_GGUF_NONE: return "none";
    }
    return "unknown";
}

/* Bytes of one fixed-size value; 0 for string, array and unknown types. */
static size_t fixed_size(uint32_t t)
{
    switch (t) {
    case VKLLM_GGUF_UINT8: case VKLLM_GGUF_INT8: case VKLLM_GGUF_BOOL: return 1;
    case VKLLM_GGUF_UINT16: case VKLLM_GGUF_INT16: return 2;
    case VKLLM_GGUF_UINT32: case VKLLM_GGUF_INT32: case VKLLM_GGUF_FLOAT32: return 4;
    case VKLLM_GGUF_UINT64: case VKLLM_GGUF_INT64: case VKLLM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static int type_known(uint32_t t) { return t <= VKLLM_GGUF_FLOAT64; }

/* ggml type names, for messages about types vkllm does not implement. */
static const char *ggml_type_name(uint32_t t)
{
    static const char *const names[] = {
        "f32", "f16", "q4_0", "q4_1", NULL, NULL, "q5_0", "q5_1", "q8_0", "q8_1", "q2_K", "q3_K",
        "q4_K", "q5_K", "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq4_nl", "iq3_s",
        "iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64", "iq1_m", "bf16", NULL, NULL, NULL,
        "tq1_0", "tq2_0", NULL, NULL, NULL, "mxfp4",
    };
    if (t < sizeof names / sizeof names[0]) return names[t];
    return NULL;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* ------------------------------------------------------------------------------------------------
 * Reader */

typedef struct gnode {
    uint32_t type;
    uint32_t etype;          /* arrays: element type */
    uint64_t n;              /* arrays: element count; strings: byte length */
    union { uint64_t u; int64_t i; double f; } num;
    const char *str;         /* strings: NUL-terminated copy */
    const uint8_t *raw;      /* arrays of fixed-size elements: the elements in the file */
    struct gnode *elems;     /* arrays of strings or arrays */
} gnode;

typedef struct gkv {
    const char *key;
    uint64_t at;             /* byte offset of the key in the file */
    gnode val;
} gkv;

typedef struct blk { struct blk *next; size_t used, cap; } blk; /* owned allocation, data follow */

struct vkllm_gguf {
    const uint8_t *base;
    uint64_t size;
    int mapped;
    /* A file GGUF keeps its descriptor: tensor data is read through it (vkllm_gguf_read_tensor), so
     * a file truncated while mapped gives a short read rather than SIGBUS, and fstat on it tells
     * whether the very file we mapped was changed in place since open (vkllm_gguf_check_unchanged;
     * a file replaced by rename is not ours any more and cannot hurt the mapping). */
    int fd, has_fd;
    struct stat st;
    uint32_t version, alignment;
    uint64_t data_offset;
    uint64_t n_kv;
    gkv *kv;
    gkv **kv_sorted;
    uint64_t n_tensors;
    vkllm_gguf_tensor *tensors;
    uint64_t *tensor_info_at;
    const vkllm_gguf_tensor **t_sorted;
    blk *blocks;             /* all strings and element tables */
    blk *str_blk;            /* the block strings are bumped from */
    char err[ERR_SIZE];
};

static void set_err(vkllm_gguf *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
}

static vkllm_status bad(vkllm_gguf *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    return VKLLM_ERROR_BAD_FILE;
}

static void *g_alloc(vkllm_gguf *g, size_t bytes)
{
    size_t hdr = (sizeof(blk) + 15) & ~(size_t)15;
    if (bytes > SIZE_MAX - hdr) return NULL;
    blk *b = malloc(hdr + bytes);
    if (!b) return NULL;
    b->next = g->blocks;
    b->used = bytes;
    b->cap = bytes;
    g->blocks = b;
    return (char *)b + hdr;
}

/* A NUL-terminated copy of n bytes; small strings share blocks. */
static char *g_strdup(vkllm_gguf *g, const uint8_t *s, uint64_t n)
{
    size_t hdr = (sizeof(blk) + 15) & ~(size_t)15;
    if (n >= SIZE_MAX - hdr - 1) return NULL;
    size_t need = (size_t)n + 1;
    char *dst;
    if (need > 4096) {
        dst = g_alloc(g, need);
        if (!dst) return NULL;
    } else {
        blk *b = g->str_blk;
        if (!b || b->cap - b->used < need) {
            size_t cap = 65536;
            b = malloc(hdr + cap);
            if (!b) return NULL;
            b->next = g->blocks;
            b->used = 0;
            b->cap = cap;
            g->blocks = b;
            g->str_blk = b;
        }
        dst = (char *)b + hdr + b->used;
        b->used += need;
    }
    if (n) memcpy(dst, s, (size_t)n);
    dst[n] = 0;
    return dst;
}

typedef struct cursor {
    vkllm_gguf *g;
    uint64_t pos;
} cursor;

static uint64_t left(const cursor *c) { return c->g->size - c->pos; }

/* Ensures n more bytes exist; what names the field for the message. */
static vkllm_status need(cursor *c, uint64_t n, const char *ctx, const char *what)
{
    if (n > left(c))
        return bad(c->g, "%s: file truncated: %s needs %" PRIu64 " bytes at byte %" PRIu64
                   " but the file ends at byte %" PRIu64, ctx, what, n, c->pos, c->g->size);
    return VKLLM_OK;
}

#define TRY(x) do { vkllm_status s_ = (x); if (s_ != VKLLM_OK) return s_; } while (0)

static vkllm_status get_u32(cursor *c, uint32_t *v, const char *ctx, const char *what)
{
    TRY(need(c, 4, ctx, what));
    *v = rd32(c->g->base + c->pos);
    c->pos += 4;
    return VKLLM_OK;
}

static vkllm_status get_u64(cursor *c, uint64_t *v, const char *ctx, const char *what)
{
    TRY(need(c, 8, ctx, what));
    *v = rd64(c->g->base + c->pos);
    c->pos += 8;
    return VKLLM_OK;
}

/* A GGUF string: u64 length then bytes. Copies it out NUL-terminated. */
static vkllm_status get_str(cursor *c, const char **out, uint64_t *len, uint64_t max_len,
                            int allow_nul, const char *ctx, const char *what)
{
    uint64_t at = c->pos, n;
    TRY(get_u64(c, &n, ctx, what));
    if (n > left(c))
        return bad(c->g, "%s: %s length %" PRIu64 " at byte %" PRIu64 " runs past the end of the file"
                   " (%" PRIu64 " bytes left)", ctx, what, n, at, left(c));
    if (n > max_len)
        return bad(c->g, "%s: %s length %" PRIu64 " at byte %" PRIu64 " exceeds the limit %" PRIu64,
                   ctx, what, n, at, max_len);
    const uint8_t *p = c->g->base + c->pos;
    if (!allow_nul && n && memchr(p, 0, (size_t)n))
        return bad(c->g, "%s: %s at byte %" PRIu64 " contains a NUL byte", ctx, what, at);
    char *s = g_strdup(c->g, p, n);
    if (!s) {
        set_err(c->g, "%s: out of memory copying a %" PRIu64 "-byte %s", ctx, n, what);
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    c->pos += n;
    *out = s;
    if (len) *len = n;
    return VKLLM_OK;
}

static vkllm_status read_value(cursor *c, uint32_t type, gnode *v, int depth, const char *ctx)
{
    uint64_t at = c->pos;
    v->type = type;
    switch (type) {
    case VKLLM_GGUF_UINT8: case VKLLM_GGUF_BOOL:
        TRY(need(c, 1, ctx, "value"));
        v->num.u = c->g->base[c->pos];
        if (type == VKLLM_GGUF_BOOL && v->num.u > 1)
            return bad(c->g, "%s: bool value %" PRIu64 " at byte %" PRIu64 " is not 0 or 1", ctx,
                       v->num.u, at);
        c->pos += 1;
        return VKLLM_OK;
    case VKLLM_GGUF_INT8:
        TRY(need(c, 1, ctx, "value"));
        v->num.i = (int8_t)c->g->base[c->pos];
        c->pos += 1;
        return VKLLM_OK;
    case VKLLM_GGUF_UINT16:
        TRY(need(c, 2, ctx, "value"));
        v->num.u = rd16(c->g->base + c->pos);
        c->pos += 2;
        return VKLLM_OK;
    case VKLLM_GGUF_INT16:
        TRY(need(c, 2, ctx, "value"));
        v->num.i = (int16_t)rd16(c->g->base + c->pos);
        c->pos += 2;
        return VKLLM_OK;
    case VKLLM_GGUF_UINT32:
        TRY(need(c, 4, ctx, "value"));
        v->num.u = rd32(c->g->base + c->pos);
        c->pos += 4;
        return VKLLM_OK;
    case VKLLM_GGUF_INT32:
        TRY(need(c, 4, ctx, "value"));
        v->num.i = (int32_t)rd32(c->g->base + c->pos);
        c->pos += 4;
        return VKLLM_OK;
    case VKLLM_GGUF_FLOAT32: {
        TRY(need(c, 4, ctx, "value"));
        uint32_t u = rd32(c->g->base + c->pos);
        float f;
        memcpy(&f, &u, 4);
        v->num.f = f;
        c->pos += 4;
        return VKLLM_OK;
    }
    case VKLLM_GGUF_UINT64:
        TRY(need(c, 8, ctx, "value"));
        v->num.u = rd64(c->g->base + c->pos);
        c->pos += 8;
        return VKLLM_OK;
    case VKLLM_GGUF_INT64:
        TRY(need(c, 8, ctx, "value"));
        v->num.i = (int64_t)rd64(c->g->base + c->pos);
        c->pos += 8;
        return VKLLM_OK;
    case VKLLM_GGUF_FLOAT64: {
        TRY(need(c, 8, ctx, "value"));
        uint64_t u = rd64(c->g->base + c->pos);
        memcpy(&v->num.f, &u, 8);
        c->pos += 8;
        return VKLLM_OK;
    }
    case VKLLM_GGUF_STRING:
        return get_str(c, &v->str, &v->n, UINT64_MAX, 1, ctx, "string");
    case VKLLM_GGUF_ARRAY: {
        if (depth >= MAX_NESTING)
            return bad(c->g, "%s: arrays nested deeper than %d at byte %" PRIu64, ctx, MAX_NESTING, at);
        uint32_t et;
        uint64_t n;
        TRY(get_u32(c, &et, ctx, "array element type"));
        if (!type_known(et))
            return bad(c->g, "%s: unknown array element type %" PRIu32 " at byte %" PRIu64, ctx, et, at);
        uint64_t n_at = c->pos;
        TRY(get_u64(c, &n, ctx, "array length"));
        v->etype = et;
        v->n = n;
        size_t es = fixed_size(et);
        if (es) {
            if (n > left(c) / es)
                return bad(c->g, "%s: array of %" PRIu64 " %s (length at byte %" PRIu64
                           ") runs past the end of the file (%" PRIu64 " bytes left)", ctx, n,
                           vkllm_gguf_type_name((vkllm_gguf_type)et), n_at, left(c));
            v->raw = c->g->base + c->pos;
            if (et == VKLLM_GGUF_BOOL)
                for (uint64_t i = 0; i < n; i++)
                    if (v->raw[i] > 1)
                        return bad(c->g, "%s: bool element %" PRIu64 " at byte %" PRIu64
                                   " is %u, not 0 or 1", ctx, i, c->pos + i, v->raw[i]);
            c->pos += n * es;
            return VKLLM_OK;
        }
        /* strings take at least 8 bytes each, nested arrays at least 12 */
        uint64_t min = et == VKLLM_GGUF_STRING ? 8 : 12;
        if (n > left(c) / min)
            return bad(c->g, "%s: array of %" PRIu64 " %s (length at byte %" PRIu64
                       ") cannot fit in the %" PRIu64 " bytes left", ctx, n,
                       vkllm_gguf_type_name((vkllm_gguf_type)et), n_at, left(c));
        if (n) {
            v->elems = g_alloc(c->g, (size_t)n * sizeof(gnode));
            if (!v->elems) {
                set_err(c->g, "%s: out of memory for an array of %" PRIu64 " elements", ctx, n);
                return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
            }
            memset(v->elems, 0, (size_t)n * sizeof(gnode));
        }
        for (uint64_t i = 0; i < n; i++)
            TRY(read_value(c, et, &v->elems[i], depth + 1, ctx));
        return VKLLM_OK;
    }
    default:
        return bad(c->g, "%s: unknown value type %" PRIu32 " at byte %" PRIu64, ctx, type, at - 4);
    }
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp((*(gkv *const *)a)->key, (*(gkv *const *)b)->key);
}

static int cmp_tname(const void *a, const void *b)
{
    return strcmp((*(const vkllm_gguf_tensor *const *)a)->name,
                  (*(const vkllm_gguf_tensor *const *)b)->name);
}

typedef struct span { uint64_t off, bytes, idx; } span;
static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off ? 1 : (x->idx < y->idx ? -1 : x->idx > y->idx);
}

static vkllm_status parse_kv(vkllm_gguf *g, cursor *c)
{
    uint64_t n = g->n_kv;
    if (n) {
        g->kv = calloc((size_t)n, sizeof(gkv));
        g->kv_sorted = calloc((size_t)n, sizeof(gkv *));
        if (!g->kv || !g->kv_sorted) {
            set_err(g, "out of memory for %" PRIu64 " keys", n);
            return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        }
    }
    char ctx[160];
    for (uint64_t i = 0; i < n; i++) {
        gkv *kv = &g->kv[i];
        kv->at = c->pos;
        snprintf(ctx, sizeof ctx, "key %" PRIu64 " (at byte %" PRIu64 ")", i, kv->at);
        TRY(get_str(c, &kv->key, NULL, MAX_KEY_LEN, 0, ctx, "key"));
        if (!kv->key[0]) return bad(g, "%s: empty key", ctx);
        snprintf(ctx, sizeof ctx, "key '%.100s' (at byte %" PRIu64 ")", kv->key, kv->at);
        uint32_t type;
        TRY(get_u32(c, &type, ctx, "value type"));
        if (!type_known(type))
            return bad(g, "%s: unknown value type %" PRIu32 " at byte %" PRIu64, ctx, type, c->pos - 4);
        TRY(read_value(c, type, &kv->val, 0, ctx));
        g->kv_sorted[i] = kv;
    }
    if (n) qsort(g->kv_sorted, (size_t)n, sizeof(gkv *), cmp_kv);
    for (uint64_t i = 1; i < n; i++)
        if (!strcmp(g->kv_sorted[i - 1]->key, g->kv_sorted[i]->key)) {
            const gkv *a = g->kv_sorted[i - 1], *b = g->kv_sorted[i];
            if (a->at > b->at) { const gkv *t = a; a = b; b = t; }
            return bad(g, "duplicate key '%.100s' at bytes %" PRIu64 " and %" PRIu64, a->key, a->at, b->at);
        }
    return VKLLM_OK;
}

static vkllm_status parse_alignment(vkllm_gguf *g)
{
    g->alignment = VKLLM_GGUF_DEFAULT_ALIGNMENT;
    vkllm_gguf_ref r = vkllm_gguf_find(g, "general.alignment");
    if (r.type == VKLLM_GGUF_NONE) return VKLLM_OK;
    const gnode *v = r.node_;
    const gkv *kv = (const gkv *)((const char *)v - offsetof(gkv, val));
    if (v->type != VKLLM_GGUF_UINT32)
        return bad(g, "key 'general.alignment' (at byte %" PRIu64 ") has type %s; GGUF requires u32",
                   kv->at, vkllm_gguf_type_name((vkllm_gguf_type)v->type));
    uint64_t a = v->num.u;
    if (a == 0 || (a & (a - 1)))
        return bad(g, "key 'general.alignment' (at byte %" PRIu64 ") is %" PRIu64
                   ", not a power of two", kv->at, a);
    g->alignment = (uint32_t)a;
    return VKLLM_OK;
}

static vkllm_status parse_tensors(vkllm_gguf *g, cursor *c)
{
    uint64_t n = g->n_tensors;
    if (n) {
        g->tensors = calloc((size_t)n, sizeof(vkllm_gguf_tensor));
        g->tensor_info_at = calloc((size_t)n, sizeof(uint64_t));
        g->t_sorted = calloc((size_t)n, sizeof(*g->t_sorted));
        if (!g->tensors || !g->tensor_info_at || !g->t_sorted) {
            set_err(g, "out of memory for %" PRIu64 " tensor infos", n);
            return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        }
    }
    char ctx[200];
    for (uint64_t i = 0; i < n; i++) {
        vkllm_gguf_tensor *t = &g->tensors[i];
        uint64_t at = c->pos;
        g->tensor_info_at[i] = at;
        snprintf(ctx, sizeof ctx, "tensor %" PRIu64 " (tensor info at byte %" PRIu64 ")", i, at);
        TRY(get_str(c, &t->name, NULL, MAX_NAME_LEN, 0, ctx, "tensor name"));
        if (!t->name[0]) return bad(g, "%s: empty tensor name", ctx);
        snprintf(ctx, sizeof ctx, "tensor '%s' (tensor info at byte %" PRIu64 ")", t->name, at);
        TRY(get_u32(c, &t->n_dims, ctx, "n_dims"));
        if (t->n_dims < 1 || t->n_dims > VKLLM_GGUF_MAX_DIMS)
            return bad(g, "%s: n_dims %" PRIu32 " at byte %" PRIu64 " is outside 1..%d", ctx,
                       t->n_dims, c->pos - 4, VKLLM_GGUF_MAX_DIMS);
        uint64_t ne_total = 1;
        for (int d = 0; d < VKLLM_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            TRY(get_u64(c, &t->ne[d], ctx, "dimension"));
            if (t->ne[d] == 0)
                return bad(g, "%s: dimension ne[%" PRIu32 "] at byte %" PRIu64 " is zero", ctx, d, c->pos - 8);
            if (t->ne[d] > (uint64_t)INT64_MAX / ne_total)
                return bad(g, "%s: dimension ne[%" PRIu32 "]=%" PRIu64 " at byte %" PRIu64
                           " makes the element count overflow", ctx, d, t->ne[d], c->pos - 8);
            ne_total *= t->ne[d];
        }
        t->n_elems = ne_total;
        uint32_t type;
        TRY(get_u32(c, &type, ctx, "type"));
        if (!vkllm_dtype_valid((int)type)) {
            const char *nm = ggml_type_name(type);
            if (nm) {
                set_err(g, "%s: type %s (%" PRIu32 ") at byte %" PRIu64 " is not supported by vkllm"
                        " (supported: f32 f16 bf16 q8_0 q4_0 q4_K q5_K q6_K)", ctx, nm, type, c->pos - 4);
                return VKLLM_ERROR_UNSUPPORTED_TYPE;
            }
            return bad(g, "%s: unknown tensor type %" PRIu32 " at byte %" PRIu64, ctx, type, c->pos - 4);
        }
        t->type = (vkllm_dtype)type;
        uint64_t be = vkllm_dtype_block_elems(t->type);
        if (be == 0 || t->ne[0] % be)
            return bad(g, "%s: row length ne[0]=%" PRIu64 " is not a whole number of %s blocks of %"
                       PRIu64, ctx, t->ne[0], vkllm_dtype_name(t->type), be);
        vkllm_status s = vkllm_dtype_bytes(t->type, ne_total, &t->bytes);
        if (s != VKLLM_OK)
            return bad(g, "%s: byte size of %" PRIu64 " %s elements overflows", ctx, ne_total,
                       vkllm_dtype_name(t->type));
        uint64_t off_at = c->pos;
        TRY(get_u64(c, &t->offset, ctx, "offset"));
        if (t->offset % g->alignment)
            return bad(g, "tensor '%s': offset %" PRIu64 " is not a multiple of alignment %" PRIu32
                       " (tensor info at byte %" PRIu64 ", offset field at byte %" PRIu64 ")",
                       t->name, t->offset, g->alignment, at, off_at);
        g->t_sorted[i] = t;
    }
    if (n) qsort(g->t_sorted, (size_t)n, sizeof(*g->t_sorted), cmp_tname);
    for (uint64_t i = 1; i < n; i++)
        if (!strcmp(g->t_sorted[i - 1]->name, g->t_sorted[i]->name)) {
            uint64_t a = g->tensor_info_at[g->t_sorted[i - 1] - g->tensors];
            uint64_t b = g->tensor_info_at[g->t_sorted[i] - g->tensors];
            return bad(g, "duplicate tensor name '%s' (tensor infos at bytes %" PRIu64 " and %" PRIu64 ")",
                       g->t_sorted[i]->name, a < b ? a : b, a < b ? b : a);
        }
    return VKLLM_OK;
}

static vkllm_status parse_data(vkllm_gguf *g, cursor *c)
{
    uint64_t a = g->alignment, pos = c->pos;
    uint64_t pad = (a - pos % a) % a;
    if (pad > UINT64_MAX - pos) return bad(g, "data section offset overflows");
    g->data_offset = pos + pad;
    if (g->n_tensors == 0) return VKLLM_OK;
    if (g->data_offset > g->size)
        return bad(g, "file truncated: the data section starts at byte %" PRIu64 " (tensor infos end at"
                   " %" PRIu64 ", alignment %" PRIu64 ") but the file ends at byte %" PRIu64,
                   g->data_offset, pos, a, g->size);
    uint64_t data_size = g->size - g->data_offset;
    span *sp = malloc((size_t)g->n_tensors * sizeof(span));
    if (!sp) {
        set_err(g, "out of memory sorting %" PRIu64 " tensors", g->n_tensors);
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    vkllm_status st = VKLLM_OK;
    for (uint64_t i = 0; i < g->n_tensors && st == VKLLM_OK; i++) {
        vkllm_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_size || t->bytes > data_size - t->offset)
            st = bad(g, "tensor '%s': offset %" PRIu64 " + %" PRIu64 " bytes lies outside the data"
                     " section of %" PRIu64 " bytes at byte %" PRIu64 " (tensor info at byte %" PRIu64
                     "; file truncated?)", t->name, t->offset, t->bytes, data_size, g->data_offset,
                     g->tensor_info_at[i]);
        sp[i].off = t->offset;
        sp[i].bytes = t->bytes;
        sp[i].idx = i;
    }
    if (st == VKLLM_OK) {
        qsort(sp, (size_t)g->n_tensors, sizeof(span), cmp_span);
        for (uint64_t i = 1; i < g->n_tensors; i++)
            if (sp[i - 1].off + sp[i - 1].bytes > sp[i].off) {
                const vkllm_gguf_tensor *x = &g->tensors[sp[i - 1].idx], *y = &g->tensors[sp[i].idx];
                st = bad(g, "tensors '%s' (offset %" PRIu64 ", %" PRIu64 " bytes, tensor info at byte %"
                         PRIu64 ") and '%s' (offset %" PRIu64 ", tensor info at byte %" PRIu64 ") overlap",
                         x->name, x->offset, x->bytes, g->tensor_info_at[sp[i - 1].idx], y->name,
                         y->offset, g->tensor_info_at[sp[i].idx]);
                break;
            }
    }
    free(sp);
    if (st != VKLLM_OK) return st;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        vkllm_gguf_tensor *t = &g->tensors[i];
        t->offset += g->data_offset;
        t->data = g->base + t->offset;
    }
    return VKLLM_OK;
}

static vkllm_status parse(vkllm_gguf *g)
{
    cursor c = { g, 0 };
    if (g->size < 4 || memcmp(g->base, GGUF_MAGIC, 4)) {
        if (g->size < 4) return bad(g, "file truncated: %" PRIu64 " bytes, too short for the magic", g->size);
        return bad(g, "bad magic at byte 0: %02x %02x %02x %02x, expected 'GGUF' (not a GGUF file)",
                   g->base[0], g->base[1], g->base[2], g->base[3]);
    }
    c.pos = 4;
    TRY(get_u32(&c, &g->version, "header", "version"));
    if (g->version != 2 && g->version != 3) {
        if (g->version == 1)
            return bad(g, "version 1 at byte 4 is not supported (GGUF v1 used 32-bit counts); convert"
                       " the model again with a current tool");
        return bad(g, "version %" PRIu32 " at byte 4 is not supported (only GGUF v2 and v3; a big-endian"
                   " file also lands here)", g->version);
    }
    TRY(get_u64(&c, &g->n_tensors, "header", "tensor count"));
    TRY(get_u64(&c, &g->n_kv, "header", "key/value count"));
    /* the smallest key/value is 14 bytes and the smallest tensor info 33, so larger counts are lies */
    if (g->n_kv > left(&c) / 14)
        return bad(g, "key/value count %" PRIu64 " at byte 16 is impossible: only %" PRIu64
                   " bytes follow the header", g->n_kv, left(&c));
    if (g->n_tensors > left(&c) / 33)
        return bad(g, "tensor count %" PRIu64 " at byte 8 is impossible: only %" PRIu64
                   " bytes follow the header", g->n_tensors, left(&c));
    TRY(parse_kv(g, &c));
    TRY(parse_alignment(g));
    TRY(parse_tensors(g, &c));
    return parse_data(g, &c);
}

static void copy_err(char *err, size_t err_size, const char *msg)
{
    if (err && err_size) snprintf(err, err_size, "%s", msg);
}

static vkllm_status open_common(vkllm_gguf *g, vkllm_gguf **out, char *err, size_t err_size,
                                const char *what)
{
    vkllm_status s = parse(g);
    if (s != VKLLM_OK) {
        char msg[ERR_SIZE + 300];
        snprintf(msg, sizeof msg, "%s: %s", what, g->err);
        copy_err(err, err_size, msg);
        vkllm_gguf_close(g);
        *out = NULL;
        return s;
    }
    g->err[0] = 0;
    *out = g;
    return VKLLM_OK;
}

vkllm_status vkllm_gguf_open_memory(const void *data, size_t size, vkllm_gguf **out, char *err,
                                    size_t err_size)
{
    if (!out || (!data && size)) {
        copy_err(err, err_size, "vkllm_gguf_open_memory: NULL argument");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    *out = NULL;
    vkllm_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        copy_err(err, err_size, "out of memory");
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    static const uint8_t empty[1];
    g->base = size ? data : empty;
    g->size = size;
    return open_common(g, out, err, err_size, "GGUF buffer");
}

vkllm_status vkllm_gguf_open(const char *path, vkllm_gguf **out, char *err, size_t err_size)
{
    char msg[ERR_SIZE + 300];
    if (!out || !path) {
        copy_err(err, err_size, "vkllm_gguf_open: NULL argument");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, sizeof msg, "%s: cannot open: %s", path, strerror(errno));
        copy_err(err, err_size, msg);
        return VKLLM_ERROR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(msg, sizeof msg, "%s: not a regular file", path);
        close(fd);
        copy_err(err, err_size, msg);
        return VKLLM_ERROR_IO;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        snprintf(msg, sizeof msg, "%s: file too large to map", path);
        copy_err(err, err_size, msg);
        return VKLLM_ERROR_TOO_LARGE;
    }
    vkllm_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        close(fd);
        copy_err(err, err_size, "out of memory");
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    g->size = (uint64_t)st.st_size;
    g->fd = fd;
    g->has_fd = 1;
    g->st = st;
    if (g->size == 0) {
        static const uint8_t empty[1];
        g->base = empty;
    } else {
        void *m = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            snprintf(msg, sizeof msg, "%s: mmap of %" PRIu64 " bytes failed: %s", path, g->size,
                     strerror(errno));
            close(fd);
            free(g);
            copy_err(err, err_size, msg);
            return VKLLM_ERROR_IO;
        }
        g->base = m;
        g->mapped = 1;
    }
    return open_common(g, out, err, err_size, path);
}

void vkllm_gguf_close(vkllm_gguf *g)
{
    if (!g) return;
    if (g->mapped) munmap((void *)g->base, (size_t)g->size);
    if (g->has_fd) close(g->fd);
    for (blk *b = g->blocks; b;) {
        blk *n = b->next;
        free(b);
        b = n;
    }
    free(g->kv);
    free(g->kv_sorted);
    free(g->tensors);
    free(g->tensor_info_at);
    free(g->t_sorted);
    free(g);
}

const char *vkllm_gguf_error(const vkllm_gguf *g) { return g ? g->err : "NULL gguf"; }
uint32_t vkllm_gguf_version(const vkllm_gguf *g) { return g->version; }
uint32_t vkllm_gguf_alignment(const vkllm_gguf *g) { return g->alignment; }
uint64_t vkllm_gguf_data_offset(const vkllm_gguf *g) { return g->data_offset; }
uint64_t vkllm_gguf_file_size(const vkllm_gguf *g) { return g->size; }
uint64_t vkllm_gguf_n_keys(const vkllm_gguf *g) { return g->n_kv; }

const char *vkllm_gguf_key(const vkllm_gguf *g, uint64_t i) { return i < g->n_kv ? g->kv[i].key : NULL; }

static vkllm_gguf_ref node_ref(const gnode *v)
{
    vkllm_gguf_ref r = { (vkllm_gguf_type)v->type, v, UINT64_MAX };
    return r;
}

static const vkllm_gguf_ref no_ref = { VKLLM_GGUF_NONE, NULL, 0 };

vkllm_gguf_ref vkllm_gguf_key_ref(const vkllm_gguf *g, uint64_t i)
{
    return i < g->n_kv ? node_ref(&g->kv[i].val) : no_ref;
}

vkllm_gguf_ref vkllm_gguf_find(const vkllm_gguf *g, const char *key)
{
    if (!g || !key) return no_ref;
    uint64_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->kv_sorted[mid]->key, key);
        if (c == 0) return node_ref(&g->kv_sorted[mid]->val);
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return no_ref;
}

uint64_t vkllm_gguf_ref_len(vkllm_gguf_ref r)
{
    if (r.type != VKLLM_GGUF_ARRAY) return 0;
    const gnode *v = r.node_;
    return r.index_ == UINT64_MAX ? v->n : 0;
}

vkllm_gguf_type vkllm_gguf_ref_elem_type(vkllm_gguf_ref r)
{
    if (r.type != VKLLM_GGUF_ARRAY) return VKLLM_GGUF_NONE;
    return (vkllm_gguf_type)((const gnode *)r.node_)->etype;
}

vkllm_gguf_ref vkllm_gguf_ref_at(vkllm_gguf_ref r, uint64_t i)
{
    if (r.type != VKLLM_GGUF_ARRAY || r.index_ != UINT64_MAX) return no_ref;
    const gnode *v = r.node_;
    if (i >= v->n) return no_ref;
    if (v->elems) return node_ref(&v->elems[i]);
    vkllm_gguf_ref e = { (vkllm_gguf_type)v->etype, v, i };
    return e;
}

const void *vkllm_gguf_ref_data(vkllm_gguf_ref r)
{
    if (r.type != VKLLM_GGUF_ARRAY || r.index_ != UINT64_MAX) return NULL;
    return ((const gnode *)r.node_)->raw;
}

/* The scalar a ref points at, decoded into *s (arrays of fixed-size elements are read in place). */
static int ref_scalar(vkllm_gguf_ref r, gnode *s)
{
    if (r.type == VKLLM_GGUF_NONE || !r.node_) return 0;
    const gnode *v = r.node_;
    if (r.index_ == UINT64_MAX) {
        *s = *v;
        return 1;
    }
    memset(s, 0, sizeof *s);
    s->type = v->etype;
    const uint8_t *p = v->raw + r.index_ * fixed_size(v->etype);
    switch (v->etype) {
    case VKLLM_GGUF_UINT8: case VKLLM_GGUF_BOOL: s->num.u = p[0]; break;
    case VKLLM_GGUF_INT8: s->num.i = (int8_t)p[0]; break;
    case VKLLM_GGUF_UINT16: s->num.u = rd16(p); break;
    case VKLLM_GGUF_INT16: s->num.i = (int16_t)rd16(p); break;
    case VKLLM_GGUF_UINT32: s->num.u = rd32(p); break;
    case VKLLM_GGUF_INT32: s->num.i = (int32_t)rd32(p); break;
    case VKLLM_GGUF_UINT64: s->num.u = rd64(p); break;
    case VKLLM_GGUF_INT64: s->num.i = (int64_t)rd64(p); break;
    case VKLLM_GGUF_FLOAT32: { uint32_t u = rd32(p); float f; memcpy(&f, &u, 4); s->num.f = f; break; }
    case VKLLM_GGUF_FLOAT64: { uint64_t u = rd64(p); memcpy(&s->num.f, &u, 8); break; }
    default: return 0;
    }
    return 1;
}

static int is_signed_int(uint32_t t)
{
    return t == VKLLM_GGUF_INT8 || t == VKLLM_GGUF_INT16 || t == VKLLM_GGUF_INT32 || t == VKLLM_GGUF_INT64;
}
static int is_unsigned_int(uint32_t t)
{
    return t == VKLLM_GGUF_UINT8 || t == VKLLM_GGUF_UINT16 || t == VKLLM_GGUF_UINT32 || t == VKLLM_GGUF_UINT64;
}

static vkllm_status mismatch(vkllm_gguf *g, vkllm_gguf_ref r, const char *want)
{
    set_err(g, "value is %s, expected %s", r.type == VKLLM_GGUF_NONE ? "missing" :
            vkllm_gguf_type_name(r.type), want);
    return VKLLM_ERROR_BAD_MODEL;
}

/* Integer value as (negative?, magnitude in u64 or the value as i64). */
static vkllm_status ref_int(vkllm_gguf *g, vkllm_gguf_ref r, int64_t lo, uint64_t hi, uint64_t *u,
                            int64_t *i, const char *want)
{
    gnode s;
    if (!ref_scalar(r, &s) || (!is_signed_int(s.type) && !is_unsigned_int(s.type)))
        return mismatch(g, r, want);
    if (is_unsigned_int(s.type)) {
        if (s.num.u > hi) {
            set_err(g, "value %" PRIu64 " does not fit in %s", s.num.u, want);
            return VKLLM_ERROR_BAD_MODEL;
        }
        if (u) *u = s.num.u;
        if (i) *i = (int64_t)s.num.u;
        return VKLLM_OK;
    }
    if (s.num.i < lo || (s.num.i >= 0 && (uint64_t)s.num.i > hi)) {
        set_err(g, "value %" PRId64 " does not fit in %s", s.num.i, want);
        return VKLLM_ERROR_BAD_MODEL;
    }
    if (u) *u = (uint64_t)s.num.i;
    if (i) *i = s.num.i;
    return VKLLM_OK;
}

vkllm_status vkllm_gguf_ref_u32(vkllm_gguf *g, vkllm_gguf_ref r, uint32_t *out)
{
    uint64_t u = 0;
    vkllm_status s = ref_int(g, r, 0, UINT32_MAX, &u, NULL, "u32");
    if (s == VKLLM_OK) *out = (uint32_t)u;
    return s;
}

vkllm_status vkllm_gguf_ref_i32(vkllm_gguf *g, vkllm_gguf_ref r, int32_t *out)
{
    int64_t i = 0;
    vkllm_status s = ref_int(g, r, INT32_MIN, INT32_MAX, NULL, &i, "i32");
    if (s == VKLLM_OK) *out = (int32_t)i;
    return s;
}

vkllm_status vkllm_gguf_ref_u64(vkllm_gguf *g, vkllm_gguf_ref r, uint64_t *out)
{
    return ref_int(g, r, 0, UINT64_MAX, out, NULL, "u64");
}

vkllm_status vkllm_gguf_ref_i64(vkllm_gguf *g, vkllm_gguf_ref r, int64_t *out)
{
    return ref_int(g, r, INT64_MIN, INT64_MAX, NULL, out, "i64");
}

vkllm_status vkllm_gguf_ref_f64(vkllm_gguf *g, vkllm_gguf_ref r, double *out)
{
    gnode s;
    if (!ref_scalar(r, &s) || (s.type != VKLLM_GGUF_FLOAT32 && s.type != VKLLM_GGUF_FLOAT64))
        return mismatch(g, r, "f32 or f64");
    *out = s.num.f;
    return VKLLM_OK;
}

vkllm_status vkllm_gguf_ref_f32(vkllm_gguf *g, vkllm_gguf_ref r, float *out)
{
    double d = 0;
    vkllm_status s = vkllm_gguf_ref_f64(g, r, &d);
    /* out-of-range double -> float conversion is undefined in ISO C: saturate to infinity */
    if (s == VKLLM_OK) *out = d > FLT_MAX ? HUGE_VALF : d < -FLT_MAX ? -HUGE_VALF : (float)d;
    return s;
}

vkllm_status vkllm_gguf_ref_bool(vkllm_gguf *g, vkllm_gguf_ref r, int *out)
{
    gnode s;
    if (!ref_scalar(r, &s) || s.type != VKLLM_GGUF_BOOL) return mismatch(g, r, "bool");
    *out = s.num.u != 0;
    return VKLLM_OK;
}

vkllm_status vkllm_gguf_ref_string(vkllm_gguf *g, vkllm_gguf_ref r, const char **out, uint64_t *len)
{
    if (r.type != VKLLM_GGUF_STRING || r.index_ != UINT64_MAX) return mismatch(g, r, "string");
    const gnode *v = r.node_;
    *out = v->str;
    if (len) *len = v->n;
    return VKLLM_OK;
}

/* Runs a ref getter on key's value and prefixes a failure message with the key. */
static vkllm_status keyed(vkllm_gguf *g, const char *key, vkllm_gguf_ref *r)
{
    *r = vkllm_gguf_find(g, key);
    if (r->type == VKLLM_GGUF_NONE) {
        set_err(g, "key '%s' is missing", key ? key : "(null)");
        return VKLLM_ERROR_BAD_MODEL;
    }
    return VKLLM_OK;
}

static vkllm_status name_key(vkllm_gguf *g, const char *key, vkllm_status s)
{
    if (s != VKLLM_OK) {
        char tmp[ERR_SIZE];
        snprintf(tmp, sizeof tmp, "%s", g->err);
        set_err(g, "key '%s': %s", key, tmp);
    }
    return s;
}

#define KEY_GETTER(fn, ty, reader)                                                   \
    vkllm_status fn(vkllm_gguf *g, const char *key, ty *out)                         \
    {                                                                                \
        vkllm_gguf_ref r;                                                            \
        vkllm_status s = keyed(g, key, &r);                                          \
        if (s != VKLLM_OK) return s;                                                 \
        return name_key(g, key, reader(g, r, out));                                  \
    }
KEY_GETTER(vkllm_gguf_get_u32, uint32_t, vkllm_gguf_ref_u32)
KEY_GETTER(vkllm_gguf_get_i32, int32_t, vkllm_gguf_ref_i32)
KEY_GETTER(vkllm_gguf_get_u64, uint64_t, vkllm_gguf_ref_u64)
KEY_GETTER(vkllm_gguf_get_f32, float, vkllm_gguf_ref_f32)
KEY_GETTER(vkllm_gguf_get_bool, int, vkllm_gguf_ref_bool)

vkllm_status vkllm_gguf_get_string(vkllm_gguf *g, const char *key, const char **out, uint64_t *len)
{
    vkllm_gguf_ref r;
    vkllm_status s = keyed(g, key, &r);
    if (s != VKLLM_OK) return s;
    return name_key(g, key, vkllm_gguf_ref_string(g, r, out, len));
}

vkllm_status vkllm_gguf_get_array(vkllm_gguf *g, const char *key, vkllm_gguf_type want,
                                  vkllm_gguf_ref *out, uint64_t *n)
{
    vkllm_gguf_ref r;
    vkllm_status s = keyed(g, key, &r);
    if (s != VKLLM_OK) return s;
    if (r.type != VKLLM_GGUF_ARRAY) return name_key(g, key, mismatch(g, r, "array"));
    vkllm_gguf_type et = vkllm_gguf_ref_elem_type(r);
    if (want != VKLLM_GGUF_NONE && et != want) {
        set_err(g, "key '%s': array of %s, expected an array of %s", key, vkllm_gguf_type_name(et),
                vkllm_gguf_type_name(want));
        return VKLLM_ERROR_BAD_MODEL;
    }
    if (out) *out = r;
    if (n) *n = vkllm_gguf_ref_len(r);
    return VKLLM_OK;
}

uint64_t vkllm_gguf_n_tensors(const vkllm_gguf *g) { return g->n_tensors; }

const vkllm_gguf_tensor *vkllm_gguf_tensor_at(const vkllm_gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const vkllm_gguf_tensor *vkllm_gguf_find_tensor(const vkllm_gguf *g, const char *name)
{
    if (!g || !name) return NULL;
    uint64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->t_sorted[mid]->name, name);
        if (c == 0) return g->t_sorted[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

static void fmt_shape(char *buf, size_t n, uint32_t n_dims, const uint64_t *ne)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < n_dims && k < n; d++) {
        if (ne[d]) k += (size_t)snprintf(buf + k, n - k, "%s%" PRIu64, d ? ", " : "", ne[d]);
        else k += (size_t)snprintf(buf + k, n - k, "%s*", d ? ", " : "");
    }
    if (k < n) snprintf(buf + k, n - k, "]");
}

static void fmt_mask(char *buf, size_t n, uint64_t mask)
{
    if (mask == VKLLM_DTYPE_ANY) {
        snprintf(buf, n, "any type");
        return;
    }
    size_t k = 0;
    buf[0] = 0;
    for (unsigned t = 0; t < 64 && k < n; t++)
        if ((mask >> t) & 1)
            k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? "|" : "", vkllm_dtype_name((vkllm_dtype)t));
}

vkllm_status vkllm_gguf_expect_tensor(vkllm_gguf *g, const char *name, uint64_t type_mask,
                                      uint32_t n_dims, const uint64_t *ne,
                                      const vkllm_gguf_tensor **out)
{
    char want[160], got[160], types[160];
    if (out) *out = NULL;
    if (!g || !name || (n_dims && !ne) || n_dims > VKLLM_GGUF_MAX_DIMS) {
        if (g) set_err(g, "vkllm_gguf_expect_tensor: bad arguments");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    fmt_shape(want, sizeof want, n_dims, ne);
    fmt_mask(types, sizeof types, type_mask);
    const vkllm_gguf_tensor *t = vkllm_gguf_find_tensor(g, name);
    if (!t) {
        set_err(g, "tensor '%s' is missing (expected shape %s of %s)", name, want, types);
        return VKLLM_ERROR_BAD_MODEL;
    }
    int ok = t->n_dims == n_dims;
    for (uint32_t d = 0; ok && d < n_dims; d++)
        if (ne[d] && ne[d] != t->ne[d]) ok = 0;
    int type_ok = type_mask == VKLLM_DTYPE_ANY ||
                  ((unsigned)t->type < 64 && ((type_mask >> (unsigned)t->type) & 1));
    if (!ok || !type_ok) {
        fmt_shape(got, sizeof got, t->n_dims, t->ne);
        set_err(g, "tensor '%s': expected shape %s of %s, found %s of %s", name, want, types, got,
                vkllm_dtype_name(t->type));
        return VKLLM_ERROR_BAD_MODEL;
    }
    if (out) *out = t;
    return VKLLM_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Writer */

typedef struct wtensor {
    char *name;
    vkllm_dtype type;
    uint32_t n_dims;
    uint64_t ne[VKLLM_GGUF_MAX_DIMS];
    uint64_t bytes, offset;
} wtensor;

enum { W_DECLARE, W_DATA, W_DONE, W_FAILED };

struct vkllm_gguf_writer {
    char *path;
    FILE *f;
    int state;
    uint32_t alignment;
    uint8_t *kv;             /* serialized key/values */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    char **keys;
    size_t keys_cap;
    struct { size_t count_at; uint32_t etype; uint64_t count; } stack[MAX_NESTING];
    int depth;
    wtensor *t;
    uint64_t n_t, cap_t;
    uint64_t cur, cur_written, pos;
    char err[ERR_SIZE];
};

static vkllm_status wfail(vkllm_gguf_writer *w, vkllm_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    return s;
}

vkllm_status vkllm_gguf_writer_create(const char *path, vkllm_gguf_writer **out, char *err,
                                      size_t err_size)
{
    if (!path || !out) {
        copy_err(err, err_size, "vkllm_gguf_writer_create: NULL argument");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    *out = NULL;
    vkllm_gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->path = malloc(strlen(path) + 1);
    if (!w || !w->path) {
        free(w);
        copy_err(err, err_size, "out of memory");
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    strcpy(w->path, path);
    w->alignment = VKLLM_GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return VKLLM_OK;
}

void vkllm_gguf_writer_destroy(vkllm_gguf_writer *w)
{
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        if (w->state != W_DONE) unlink(w->path);
    }
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (uint64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w->path);
    free(w);
}

const char *vkllm_gguf_writer_error(const vkllm_gguf_writer *w) { return w ? w->err : "NULL writer"; }

static vkllm_status wput(vkllm_gguf_writer *w, const void *p, size_t n)
{
    if (n > w->kv_cap - w->kv_len) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap - w->kv_len < n) {
            if (cap > SIZE_MAX / 2) return wfail(w, VKLLM_ERROR_TOO_LARGE, "metadata too large");
            cap *= 2;
        }
        uint8_t *nk = realloc(w->kv, cap);
        if (!nk) return wfail(w, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory for metadata");
        w->kv = nk;
        w->kv_cap = cap;
    }
    if (n) memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return VKLLM_OK;
}

static vkllm_status wput32(vkllm_gguf_writer *w, uint32_t v)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    return wput(w, b, 4);
}

static vkllm_status wput64(vkllm_gguf_writer *w, uint64_t v)
{
    TRY(wput32(w, (uint32_t)v));
    return wput32(w, (uint32_t)(v >> 32));
}

static vkllm_status wputstr(vkllm_gguf_writer *w, const char *s, uint64_t n)
{
    TRY(wput64(w, n));
    return wput(w, s, (size_t)n);
}

/* Starts a value of type t: the key header for a top-level value, an element count bump inside an
 * array (after checking the element type). */
static vkllm_status begin_value(vkllm_gguf_writer *w, const char *key, uint32_t t)
{
    if (w->state != W_DECLARE)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "metadata must be added before the header is written");
    if (key) {
        if (w->depth)
            return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "key '%s' added while an array is open", key);
        size_t kl = strlen(key);
        if (kl == 0 || kl > MAX_KEY_LEN)
            return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "key length %zu is outside 1..%u", kl, MAX_KEY_LEN);
        for (uint64_t i = 0; i < w->n_kv; i++)
            if (!strcmp(w->keys[i], key))
                return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "duplicate key '%s'", key);
        if (w->n_kv == w->keys_cap) {
            size_t cap = w->keys_cap ? w->keys_cap * 2 : 64;
            char **nk = realloc(w->keys, cap * sizeof(char *));
            if (!nk) return wfail(w, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory");
            w->keys = nk;
            w->keys_cap = cap;
        }
        char *k = malloc(kl + 1);
        if (!k) return wfail(w, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory");
        memcpy(k, key, kl + 1);
        TRY(wputstr(w, key, kl));
        TRY(wput32(w, t));
        w->keys[w->n_kv++] = k;
        return VKLLM_OK;
    }
    if (!w->depth) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "NULL key with no open array");
    if (w->stack[w->depth - 1].etype != t)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "array of %s gets a %s element",
                     vkllm_gguf_type_name((vkllm_gguf_type)w->stack[w->depth - 1].etype),
                     vkllm_gguf_type_name((vkllm_gguf_type)t));
    w->stack[w->depth - 1].count++;
    return VKLLM_OK;
}

static vkllm_status add_fixed(vkllm_gguf_writer *w, const char *key, uint32_t t, uint64_t bits)
{
    /* the data layout depends on this key, so it only goes in through set_alignment */
    if (key && !strcmp(key, "general.alignment") && (t != VKLLM_GGUF_UINT32 || bits != w->alignment || w->n_t))
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "general.alignment must be set with "
                     "vkllm_gguf_writer_set_alignment before any tensor");
    TRY(begin_value(w, key, t));
    uint8_t b[8];
    size_t n = fixed_size(t);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(bits >> (8 * i));
    return wput(w, b, n);
}

vkllm_status vkllm_gguf_writer_add_u8(vkllm_gguf_writer *w, const char *key, uint8_t v) { return add_fixed(w, key, VKLLM_GGUF_UINT8, v); }
vkllm_status vkllm_gguf_writer_add_i8(vkllm_gguf_writer *w, const char *key, int8_t v) { return add_fixed(w, key, VKLLM_GGUF_INT8, (uint8_t)v); }
vkllm_status vkllm_gguf_writer_add_u16(vkllm_gguf_writer *w, const char *key, uint16_t v) { return add_fixed(w, key, VKLLM_GGUF_UINT16, v); }
vkllm_status vkllm_gguf_writer_add_i16(vkllm_gguf_writer *w, const char *key, int16_t v) { return add_fixed(w, key, VKLLM_GGUF_INT16, (uint16_t)v); }
vkllm_status vkllm_gguf_writer_add_u32(vkllm_gguf_writer *w, const char *key, uint32_t v) { return add_fixed(w, key, VKLLM_GGUF_UINT32, v); }
vkllm_status vkllm_gguf_writer_add_i32(vkllm_gguf_writer *w, const char *key, int32_t v) { return add_fixed(w, key, VKLLM_GGUF_INT32, (uint32_t)v); }
vkllm_status vkllm_gguf_writer_add_u64(vkllm_gguf_writer *w, const char *key, uint64_t v) { return add_fixed(w, key, VKLLM_GGUF_UINT64, v); }
vkllm_status vkllm_gguf_writer_add_i64(vkllm_gguf_writer *w, const char *key, int64_t v) { return add_fixed(w, key, VKLLM_GGUF_INT64, (uint64_t)v); }
vkllm_status vkllm_gguf_writer_add_bool(vkllm_gguf_writer *w, const char *key, int v) { return add_fixed(w, key, VKLLM_GGUF_BOOL, v != 0); }

vkllm_status vkllm_gguf_writer_add_f32(vkllm_gguf_writer *w, const char *key, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return add_fixed(w, key, VKLLM_GGUF_FLOAT32, u);
}

vkllm_status vkllm_gguf_writer_add_f64(vkllm_gguf_writer *w, const char *key, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return add_fixed(w, key, VKLLM_GGUF_FLOAT64, u);
}

vkllm_status vkllm_gguf_writer_add_string_n(vkllm_gguf_writer *w, const char *key, const char *s,
                                            uint64_t len)
{
    if (!s && len) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "NULL string");
    TRY(begin_value(w, key, VKLLM_GGUF_STRING));
    return wputstr(w, s, len);
}

vkllm_status vkllm_gguf_writer_add_string(vkllm_gguf_writer *w, const char *key, const char *s)
{
    if (!s) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "NULL string");
    return vkllm_gguf_writer_add_string_n(w, key, s, strlen(s));
}

vkllm_status vkllm_gguf_writer_begin_array(vkllm_gguf_writer *w, const char *key, vkllm_gguf_type elem)
{
    if (!type_known((uint32_t)elem))
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "unknown array element type %d", (int)elem);
    if (w->depth >= MAX_NESTING)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "arrays nested deeper than %d", MAX_NESTING);
    TRY(begin_value(w, key, VKLLM_GGUF_ARRAY));
    TRY(wput32(w, (uint32_t)elem));
    w->stack[w->depth].count_at = w->kv_len;
    w->stack[w->depth].etype = (uint32_t)elem;
    w->stack[w->depth].count = 0;
    w->depth++;
    return wput64(w, 0);
}

vkllm_status vkllm_gguf_writer_end_array(vkllm_gguf_writer *w)
{
    if (!w->depth) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "end_array with no open array");
    w->depth--;
    uint64_t n = w->stack[w->depth].count;
    uint8_t *p = w->kv + w->stack[w->depth].count_at;
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(n >> (8 * i));
    return VKLLM_OK;
}

vkllm_status vkllm_gguf_writer_add_array(vkllm_gguf_writer *w, const char *key, vkllm_gguf_type elem,
                                         const void *data, uint64_t n)
{
    size_t es = fixed_size((uint32_t)elem);
    if (!es) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "add_array needs a fixed-size element type");
    if (!data && n) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "NULL array data");
    if (n > SIZE_MAX / es) return wfail(w, VKLLM_ERROR_TOO_LARGE, "array too large");
    TRY(vkllm_gguf_writer_begin_array(w, key, elem));
    w->stack[w->depth - 1].count = n;
    TRY(wput(w, data, (size_t)(n * es)));
    return vkllm_gguf_writer_end_array(w);
}

vkllm_status vkllm_gguf_writer_add_string_array(vkllm_gguf_writer *w, const char *key,
                                                const char *const *s, uint64_t n)
{
    if (!s && n) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "NULL string array");
    TRY(vkllm_gguf_writer_begin_array(w, key, VKLLM_GGUF_STRING));
    for (uint64_t i = 0; i < n; i++) TRY(vkllm_gguf_writer_add_string(w, NULL, s[i]));
    return vkllm_gguf_writer_end_array(w);
}

vkllm_status vkllm_gguf_writer_set_alignment(vkllm_gguf_writer *w, uint32_t alignment)
{
    if (alignment == 0 || (alignment & (alignment - 1)))
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "alignment %" PRIu32 " is not a power of two", alignment);
    if (w->n_t) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "set the alignment before adding tensors");
    uint32_t old = w->alignment;
    w->alignment = alignment;
    vkllm_status s = vkllm_gguf_writer_add_u32(w, "general.alignment", alignment);
    if (s != VKLLM_OK) w->alignment = old;
    return s;
}

vkllm_status vkllm_gguf_writer_add_tensor(vkllm_gguf_writer *w, const char *name, vkllm_dtype type,
                                          uint32_t n_dims, const uint64_t *ne)
{
    if (w->state != W_DECLARE)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "tensors must be declared before the header is written");
    if (!name || !*name || strlen(name) > MAX_NAME_LEN)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "tensor name '%s' must have 1..%u bytes",
                     name ? name : "(null)", MAX_NAME_LEN);
    if (n_dims < 1 || n_dims > VKLLM_GGUF_MAX_DIMS || !ne)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "tensor '%s': n_dims %" PRIu32 " outside 1..4", name, n_dims);
    if (!vkllm_dtype_valid((int)type))
        return wfail(w, VKLLM_ERROR_UNSUPPORTED_TYPE, "tensor '%s': invalid type %d", name, (int)type);
    for (uint64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "duplicate tensor name '%s'", name);
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX / n)
            return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "tensor '%s': dimension %" PRIu32 " = %" PRIu64
                         " is zero or overflows", name, d, ne[d]);
        n *= ne[d];
    }
    uint64_t be = vkllm_dtype_block_elems(type);
    if (ne[0] % be)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "tensor '%s': row length %" PRIu64
                     " is not a multiple of the %s block size %" PRIu64, name, ne[0],
                     vkllm_dtype_name(type), be);
    uint64_t bytes;
    if (vkllm_dtype_bytes(type, n, &bytes) != VKLLM_OK)
        return wfail(w, VKLLM_ERROR_TOO_LARGE, "tensor '%s': byte size overflows", name);
    if (w->n_t == w->cap_t) {
        uint64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = realloc(w->t, (size_t)cap * sizeof(wtensor));
        if (!nt) return wfail(w, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = malloc(strlen(name) + 1);
    if (!t->name) return wfail(w, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory");
    strcpy(t->name, name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < VKLLM_GGUF_MAX_DIMS; d++) t->ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
    t->bytes = bytes;
    w->n_t++;
    return VKLLM_OK;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* Bytes of header + metadata + infos (unpadded); assigns tensor offsets; returns the file size. */
static uint64_t layout(vkllm_gguf_writer *w, uint64_t *meta_end)
{
    uint64_t p = 4 + 4 + 8 + 8 + w->kv_len;
    for (uint64_t i = 0; i < w->n_t; i++) p += 8 + strlen(w->t[i].name) + 4 + 8ull * w->t[i].n_dims + 4 + 8;
    *meta_end = p;
    uint64_t d = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = d;
        d = align_up(d + w->t[i].bytes, w->alignment);
    }
    return align_up(p, w->alignment) + d;
}

uint64_t vkllm_gguf_writer_file_size(const vkllm_gguf_writer *w)
{
    uint64_t m;
    return layout((vkllm_gguf_writer *)w, &m);
}

static vkllm_status fwrite_all(vkllm_gguf_writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n) {
        w->state = W_FAILED;
        return wfail(w, VKLLM_ERROR_IO, "%s: write failed at byte %" PRIu64 ": %s", w->path, w->pos,
                     strerror(errno));
    }
    w->pos += n;
    return VKLLM_OK;
}

static vkllm_status write_zeros(vkllm_gguf_writer *w, uint64_t n)
{
    static const uint8_t z[256];
    while (n) {
        size_t k = n > sizeof z ? sizeof z : (size_t)n;
        TRY(fwrite_all(w, z, k));
        n -= k;
    }
    return VKLLM_OK;
}

vkllm_status vkllm_gguf_writer_write_header(vkllm_gguf_writer *w)
{
    if (w->state != W_DECLARE) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "header already written");
    if (w->depth) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "an array is still open");
    uint64_t meta_end;
    layout(w, &meta_end);
    w->f = fopen(w->path, "wb");
    if (!w->f) {
        w->state = W_FAILED;
        return wfail(w, VKLLM_ERROR_IO, "%s: cannot create: %s", w->path, strerror(errno));
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    w->state = W_DATA;
    /* the header and infos go through the metadata buffer, reusing its little-endian writers */
    size_t kv_len = w->kv_len;
    uint8_t hdr[24] = { 'G', 'G', 'U', 'F', 3, 0, 0, 0 };
    for (int i = 0; i < 8; i++) hdr[8 + i] = (uint8_t)(w->n_t >> (8 * i));
    for (int i = 0; i < 8; i++) hdr[16 + i] = (uint8_t)(w->n_kv >> (8 * i));
    TRY(fwrite_all(w, hdr, sizeof hdr));
    TRY(fwrite_all(w, w->kv, kv_len));
    for (uint64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        w->kv_len = kv_len;
        TRY(wputstr(w, t->name, strlen(t->name)));
        TRY(wput32(w, t->n_dims));
        for (uint32_t d = 0; d < t->n_dims; d++) TRY(wput64(w, t->ne[d]));
        TRY(wput32(w, (uint32_t)t->type));
        TRY(wput64(w, t->offset));
        TRY(fwrite_all(w, w->kv + kv_len, w->kv_len - kv_len));
    }
    w->kv_len = kv_len;
    TRY(write_zeros(w, align_up(w->pos, w->alignment) - w->pos));
    w->cur = 0;
    w->cur_written = 0;
    return VKLLM_OK;
}

/* Pads after the current tensor when it is complete and moves on. */
static vkllm_status advance(vkllm_gguf_writer *w)
{
    while (w->cur < w->n_t && w->cur_written == w->t[w->cur].bytes) {
        TRY(write_zeros(w, align_up(w->t[w->cur].bytes, w->alignment) - w->t[w->cur].bytes));
        w->cur++;
        w->cur_written = 0;
    }
    return VKLLM_OK;
}

vkllm_status vkllm_gguf_writer_write_data(vkllm_gguf_writer *w, const void *data, size_t n)
{
    if (w->state != W_DATA)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "write_data needs the header written first%s",
                     w->state == W_FAILED ? " (an earlier write failed)" : "");
    if (!data && n) return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "NULL data");
    if (w->cur >= w->n_t) {
        if (!n) return VKLLM_OK;
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "%zu bytes written after the last tensor", n);
    }
    const wtensor *t = &w->t[w->cur];
    if (n > t->bytes - w->cur_written)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "tensor '%s': %" PRIu64 " + %zu bytes written,"
                     " more than its declared %" PRIu64, t->name, w->cur_written, n, t->bytes);
    TRY(fwrite_all(w, data, n));
    w->cur_written += n;
    return advance(w);
}

vkllm_status vkllm_gguf_writer_finish(vkllm_gguf_writer *w)
{
    if (w->state != W_DATA)
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "finish needs the header written%s",
                     w->state == W_FAILED ? " and no failed write" : "");
    TRY(advance(w));
    if (w->cur < w->n_t) {
        w->state = W_FAILED;
        return wfail(w, VKLLM_ERROR_INVALID_ARGUMENT, "tensor '%s' got %" PRIu64 " of its %" PRIu64
                     " bytes (and %" PRIu64 " tensors after it none)", w->t[w->cur].name,
                     w->cur_written, w->t[w->cur].bytes, w->n_t - w->cur - 1);
    }
    FILE *f = w->f;
    w->f = NULL;
    if (fflush(f) != 0 || fclose(f) != 0) {
        w->state = W_FAILED;
        unlink(w->path);
        return wfail(w, VKLLM_ERROR_IO, "%s: flush/close failed: %s", w->path, strerror(errno));
    }
    w->state = W_DONE;
    return VKLLM_OK;
}

vkllm_status vkllm_gguf_read_tensor(const vkllm_gguf *g, const vkllm_gguf_tensor *t, uint64_t offset, void *dst,
                                    uint64_t n, char *err, size_t err_size)
{
    char msg[512];
    if (!g || !t || (!dst && n)) {
        copy_err(err, err_size, "vkllm_gguf_read_tensor: NULL argument");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    if (offset > t->bytes || n > t->bytes - offset) {
        snprintf(msg, sizeof msg, "vkllm_gguf_read_tensor: bytes [%" PRIu64 ", +%" PRIu64 ") are outside tensor '%s' (%" PRIu64
                 " bytes)", offset, n, t->name, t->bytes);
        copy_err(err, err_size, msg);
        return VKLLM_ERROR_OUT_OF_RANGE;
    }
    if (!g->has_fd) {
        if (n) memcpy(dst, (const uint8_t *)t->data + offset, (size_t)n);
        return VKLLM_OK;
    }
    uint64_t pos = t->offset + offset, done = 0;
    while (done < n) {
        size_t want = n - done > (1u << 30) ? (1u << 30) : (size_t)(n - done);
        ssize_t r = pread(g->fd, (uint8_t *)dst + done, want, (off_t)(pos + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            struct stat now;
            if (r == 0 && fstat(g->fd, &now) == 0)
                snprintf(msg, sizeof msg, "the model file is now %" PRIu64 " bytes, %" PRIu64 " when it was opened: it was "
                         "truncated while in use (tensor '%s' ends at byte %" PRIu64 ")", (uint64_t)now.st_size, g->size,
                         t->name, t->offset + t->bytes);
            else
                snprintf(msg, sizeof msg, "reading tensor '%s' at byte %" PRIu64 " of the model file failed: %s", t->name,
                         pos + done, r < 0 ? strerror(errno) : "unexpected end of file");
            copy_err(err, err_size, msg);
            return VKLLM_ERROR_IO;
        }
        done += (uint64_t)r;
    }
    return VKLLM_OK;
}

vkllm_status vkllm_gguf_check_unchanged(const vkllm_gguf *g, char *err, size_t err_size)
{
    if (!g) {
        copy_err(err, err_size, "vkllm_gguf_check_unchanged: NULL argument");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    if (!g->has_fd) return VKLLM_OK;
    struct stat now;
    if (fstat(g->fd, &now) != 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "fstat of the model file failed: %s", strerror(errno));
        copy_err(err, err_size, msg);
        return VKLLM_ERROR_IO;
    }
    if (now.st_size != g->st.st_size || now.st_mtim.tv_sec != g->st.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != g->st.st_mtim.tv_nsec || now.st_ctim.tv_sec != g->st.st_ctim.tv_sec ||
        now.st_ctim.tv_nsec != g->st.st_ctim.tv_nsec) {
        char msg[512];
        snprintf(msg, sizeof msg, "the model file was modified while in use (size %" PRIu64 " -> %" PRIu64 " bytes, "
                 "modification time changed by %+.3f s): what was read from it is not trusted; load it again once "
                 "nothing writes to it", g->size, (uint64_t)now.st_size,
                 (double)(now.st_mtim.tv_sec - g->st.st_mtim.tv_sec) + (now.st_mtim.tv_nsec - g->st.st_mtim.tv_nsec) * 1e-9);
        copy_err(err, err_size, msg);
        return VKLLM_ERROR_BAD_FILE;
    }
    return VKLLM_OK;
}
