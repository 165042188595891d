/* Self-check of the misc family (SwiGLU, add, embed, argmax, top-k) against the CPU references, on
 * small shapes (well under a second on lavapipe). Exact kernels report the fraction of wrong outputs
 * as their "NMSE" with bound 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "selfcheck_internal.h"
#include "vkllm/ops.h"
#include "vkllm/ref_misc.h"



static vkllm_status run_chain(ctx *c) { vkllm_status s = vkllm_chain_end(c->chain); return s ? s : vkllm_chain_run(c->chain); }

static vkllm_status check_swiglu(ctx *c, rng *r, vkllm_selfcheck_result *res)
{
    const uint32_t n_ff = 1003, n_tok = 3;
    size_t ngu = 2 * (size_t)n_ff * n_tok, n = (size_t)n_ff * n_tok;
    float *gu = malloc(ngu * 4), *ref = malloc(n * 4), *out = malloc(n * 4);
    vkllm_status s = (!gu || !ref || !out) ? vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory") : VKLLM_OK;
    vkllm_view vg = { { NULL, 0, 0 }, 0 }, va = { { NULL, 0, 0 }, 0 };
    if (!s) {
        for (size_t i = 0; i < ngu; i++) gu[i] = 3.0f * normal(r);
        gu[0] = -100.0f;
        gu[1] = 100.0f;
        vkllm_ref_swiglu(gu, ref, n_ff, n_tok, 2 * n_ff, n_ff);
        s = upload(c, gu, ngu * 4, &vg);
    }
    if (!s) s = upload(c, NULL, n * 4, &va);
    if (!s) s = vkllm_chain_begin(c->chain);
    vkllm_swiglu_args a = { vg, va, n_ff, n_tok, 2 * n_ff, n_ff, NULL };
    if (!s) s = vkllm_op_swiglu(c->chain, &a);
    if (!s) s = run_chain(c);
    if (!s) s = vkllm_buffer_read(c->dev, &va.buf, 0, out, n * 4);
    if (!s) {
        res->kernel = "swiglu";
        snprintf(res->shape, sizeof res->shape, "n_ff=%u tok=%u", n_ff, n_tok);
        res->nmse = nmse(out, ref, n);
        res->bound = 1e-10;
    }
    release(c);
    free(gu); free(ref); free(out);
    return s;
}

static vkllm_status check_add(ctx *c, rng *r, vkllm_selfcheck_result *res)
{
    const uint32_t n = 5123;
    float *a = malloc(n * 4), *b = malloc(n * 4), *ref = malloc(n * 4), *out = malloc(n * 4);
    vkllm_status s = (!a || !b || !ref || !out) ? vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory") : VKLLM_OK;
    vkllm_view va = { { NULL, 0, 0 }, 0 }, vb = { { NULL, 0, 0 }, 0 };
    if (!s) {
        for (uint32_t i = 0; i < n; i++) { a[i] = 10.0f * normal(r); b[i] = normal(r); }
        vkllm_ref_add(a, b, ref, n);
        s = upload(c, a, n * 4, &va);
    }
    if (!s) s = upload(c, b, n * 4, &vb);
    if (!s) s = vkllm_chain_begin(c->chain);
    vkllm_add_args args = { va, vb, va, n, NULL }; /* in place, as in the layer */
    if (!s) s = vkllm_op_add(c->chain, &args);
    if (!s) s = run_chain(c);
    if (!s) s = vkllm_buffer_read(c->dev, &va.buf, 0, out, n * 4);
    if (!s) {
        size_t wrong = 0;
        for (uint32_t i = 0; i < n; i++) wrong += memcmp(&out[i], &ref[i], 4) != 0;
        res->kernel = "add";
        snprintf(res->shape, sizeof res->shape, "n=%u in place (fraction not bit-exact)", n);
        res->nmse = (double)wrong / n;
        res->bound = 0;
    }
    release(c);
    free(a); free(b); free(ref); free(out);
    return s;
}

/* Q4_K and Q6_K tables quantized from random rows; ids include an out-of-range one. */
static vkllm_status check_embed(ctx *c, rng *r, vkllm_dtype type, vkllm_selfcheck_result *res)
{
    const uint32_t n_vocab = 16, n_embd = 512, n_tok = 5;
    int32_t ids[5] = { 0, 15, (int32_t)(next(r) % n_vocab), 16, 7 };
    uint64_t tb = 0;
    vkllm_dtype_bytes(type, (uint64_t)n_vocab * n_embd, &tb);
    float *x = malloc((size_t)n_vocab * n_embd * 4), *ref = malloc((size_t)n_tok * n_embd * 4), *out = malloc((size_t)n_tok * n_embd * 4);
    void *table = malloc(tb);
    vkllm_status s = (!x || !ref || !out || !table) ? vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory") : VKLLM_OK;
    vkllm_view vt = { { NULL, 0, 0 }, 0 }, vi = { { NULL, 0, 0 }, 0 }, vo = { { NULL, 0, 0 }, 0 }, vs = { { NULL, 0, 0 }, 0 };
    uint32_t st[2] = { 0, 0 };
    if (!s) {
        for (size_t i = 0; i < (size_t)n_vocab * n_embd; i++) x[i] = 0.05f * normal(r);
        s = vkllm_quantize(type, x, table, (size_t)n_vocab * n_embd);
    }
    size_t bad = 0;
    if (!s) {
        bad = vkllm_ref_embed(type, table, n_vocab, n_embd, ids, n_tok, ref, n_embd);
        s = upload(c, table, tb, &vt);
    }
    if (!s) s = upload(c, ids, sizeof ids, &vi);
    if (!s) s = upload(c, NULL, (size_t)n_tok * n_embd * 4, &vo);
    if (!s) s = upload(c, st, sizeof st, &vs);
    if (!s) s = vkllm_chain_begin(c->chain);
    vkllm_embed_args a = { vt, vi, vo, vs, type, n_vocab, n_embd, n_tok, n_embd, 0, 0, NULL };
    if (!s) s = vkllm_op_embed(c->chain, &a);
    if (!s) s = run_chain(c);
    if (!s) s = vkllm_buffer_read(c->dev, &vo.buf, 0, out, (size_t)n_tok * n_embd * 4);
    if (!s) s = vkllm_buffer_read(c->dev, &vs.buf, 0, st, sizeof st);
    if (!s) {
        res->kernel = c->dev->f.storage_16bit ? "embed_u16" : "embed";
        snprintf(res->shape, sizeof res->shape, "%s %ux%u tok=%u, one bad id", vkllm_dtype_name(type), n_vocab, n_embd, n_tok);
        res->nmse = nmse(out, ref, (size_t)n_tok * n_embd);
        res->bound = 1e-12; /* exact up to fma contraction in Q4_K (see tests/gpu/test_embed.c) */
        if (st[0] != bad) {
            res->nmse = INFINITY;
            snprintf(res->message, sizeof res->message, "status counted %u bad ids, expected %zu", st[0], bad);
        }
    }
    release(c);
    free(x); free(ref); free(out); free(table);
    return s;
}

static vkllm_status check_select(ctx *c, rng *r, uint32_t k, vkllm_selfcheck_result *res)
{
    const uint32_t n = 5123, rows = 2, per = k ? k : 1;
    float *x = malloc((size_t)n * rows * 4), *rv = malloc((size_t)rows * per * 4), *ov = malloc((size_t)rows * per * 4);
    uint32_t *ri = malloc((size_t)rows * per * 4), *oi = malloc((size_t)rows * per * 4);
    vkllm_status s = (!x || !rv || !ov || !ri || !oi) ? vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory") : VKLLM_OK;
    vkllm_view vx = { { NULL, 0, 0 }, 0 }, vo = { { NULL, 0, 0 }, 0 }, vv = { { NULL, 0, 0 }, 0 }, vs = { { NULL, 0, 0 }, 0 };
    if (!s) {
        for (size_t i = 0; i < (size_t)n * rows; i++) x[i] = normal(r);
        x[next(r) % n] = NAN;
        x[n + next(r) % n] = 9.0f; /* a tie in row 1 */
        x[n + next(r) % n] = 9.0f;
        if (k) vkllm_ref_topk(x, n, rows, n, k, rv, ri);
        else vkllm_ref_argmax(x, n, rows, n, ri);
        s = upload(c, x, (size_t)n * rows * 4, &vx);
    }
    if (!s) s = upload(c, NULL, (size_t)rows * per * 4, &vo);
    if (!s) s = upload(c, NULL, (size_t)rows * per * 4, &vv);
    if (!s) s = upload(c, NULL, k ? vkllm_topk_scratch_bytes(n, rows, k) : vkllm_argmax_scratch_bytes(n, rows), &vs);
    if (!s) s = vkllm_chain_begin(c->chain);
    if (!s && k) {
        vkllm_topk_args a = { vx, vv, vo, vs, n, rows, n, k, NULL };
        s = vkllm_op_topk(c->chain, &a);
    } else if (!s) {
        vkllm_argmax_args a = { vx, vo, vs, n, rows, n, NULL };
        s = vkllm_op_argmax(c->chain, &a);
    }
    if (!s) s = run_chain(c);
    if (!s) s = vkllm_buffer_read(c->dev, &vo.buf, 0, oi, (size_t)rows * per * 4);
    if (!s && k) s = vkllm_buffer_read(c->dev, &vv.buf, 0, ov, (size_t)rows * per * 4);
    if (!s) {
        size_t wrong = 0;
        for (size_t i = 0; i < (size_t)rows * per; i++) wrong += oi[i] != ri[i] || (k && memcmp(&ov[i], &rv[i], 4) != 0);
        res->kernel = k ? "topk_chunk+topk_merge" : "argmax_chunk+argmax_merge";
        snprintf(res->shape, sizeof res->shape, "n=%u rows=%u%s (fraction wrong)", n, rows, k ? " k=40" : "");
        res->nmse = (double)wrong / ((double)rows * per);
        res->bound = 0;
    }
    release(c);
    free(x); free(rv); free(ov); free(ri); free(oi);
    return s;
}

vkllm_status vkllm_selfcheck_misc(vkllm_device *dev, vkllm_selfcheck_sink *sink)
{
    ctx c = { .dev = dev };
    vkllm_status s = vkllm_chain_create(dev, NULL, &c.chain);
    if (s) return s;
    rng r = { sink->seed ^ 0x6d697363ull };
    for (int i = 0; i < 6 && !s; i++) {
        vkllm_selfcheck_result res;
        memset(&res, 0, sizeof res);
        switch (i) {
        case 0: s = check_swiglu(&c, &r, &res); break;
        case 1: s = check_add(&c, &r, &res); break;
        case 2: s = check_embed(&c, &r, VKLLM_DTYPE_Q4_K, &res); break;
        case 3: s = check_embed(&c, &r, VKLLM_DTYPE_Q6_K, &res); break;
        case 4: s = check_select(&c, &r, 0, &res); break;
        default: s = check_select(&c, &r, 40, &res); break;
        }
        if (!s) vkllm_selfcheck_emit(sink, &res);
    }
    vkllm_chain_destroy(c.chain);
    return s;
}
