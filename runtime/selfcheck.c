/* Self-check of every kernel against the CPU reference: the same comparison the tests make, small
 * enough to run in a second at every `vkllm info`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vkllm/ops.h"
#include "vkllm/ref.h"
#include "selfcheck_internal.h"



static vkllm_status check_rmsnorm(ctx *c, rng *r, uint32_t n, uint32_t rows, vkllm_selfcheck_result *res)
{
    size_t nx = (size_t)n * rows;
    float *x = malloc(nx * 4), *w = malloc(n * 4), *ref = malloc(nx * 4), *out = malloc(nx * 4);
    vkllm_status s = VKLLM_OK;
    if (!x || !w || !ref || !out) s = vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory");
    vkllm_view vx = { { 0 }, 0 }, vw = vx, vy = vx;
    if (!s) {
        for (size_t i = 0; i < nx; i++) x[i] = 2.0f * normal(r);
        for (size_t i = 0; i < n; i++) w[i] = 1.0f + 0.1f * normal(r);
        vkllm_ref_rmsnorm(x, w, ref, n, rows, n, n, 1e-5f);
        s = upload(c, x, nx * 4, &vx);
    }
    if (!s) s = upload(c, w, n * 4, &vw);
    if (!s) s = upload(c, NULL, nx * 4, &vy);
    if (!s) s = vkllm_chain_begin(c->chain);
    vkllm_rmsnorm_args a = { vx, vw, vy, n, rows, n, n, 1e-5f, NULL };
    if (!s) s = vkllm_op_rmsnorm(c->chain, &a);
    if (!s) s = vkllm_chain_end(c->chain);
    if (!s) s = vkllm_chain_run(c->chain);
    if (!s) s = vkllm_buffer_read(c->dev, &vy.buf, 0, out, nx * 4);
    if (!s) {
        res->kernel = "rmsnorm";
        snprintf(res->shape, sizeof res->shape, "n=%u rows=%u", n, rows);
        res->nmse = nmse(out, ref, nx);
        res->bound = 1e-10;
    }
    release(c);
    free(x); free(w); free(ref); free(out);
    return s;
}

static vkllm_status check_rope(ctx *c, rng *r, int neox, int force_fp32, uint32_t n_tok, int32_t max_pos, vkllm_selfcheck_result *res)
{
    const uint32_t n_head = 8, head_dim = 128, n_rot = 128;
    size_t nx = (size_t)n_tok * n_head * head_dim;
    float *x = malloc(nx * 4), *ref = malloc(nx * 4), *out = malloc(nx * 4), table[128];
    int32_t *pos = malloc(n_tok * 4);
    double inv[64];
    vkllm_status s = VKLLM_OK;
    if (!x || !ref || !out || !pos) s = vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory");
    vkllm_view vx = { { 0 }, 0 }, vy = vx, vp = vx, vt = vx;
    if (!s) {
        for (size_t i = 0; i < nx; i++) x[i] = normal(r);
        for (uint32_t t = 0; t < n_tok; t++) pos[t] = (int32_t)(next(r) % (uint64_t)(max_pos + 1));
        vkllm_rope_inv_freq(inv, n_rot, 10000.0, 1.0, NULL);
        vkllm_rope_table(table, inv, n_rot / 2);
        vkllm_rope_params p = { n_tok, n_head, head_dim, n_rot, n_head * head_dim, head_dim, n_head * head_dim, head_dim, neox, 1.0f };
        vkllm_ref_rope(&p, x, ref, pos, inv);
        s = upload(c, x, nx * 4, &vx);
    }
    if (!s) s = upload(c, NULL, nx * 4, &vy);
    if (!s) s = upload(c, pos, n_tok * 4, &vp);
    if (!s) s = upload(c, table, sizeof table, &vt);
    if (!s) s = vkllm_chain_begin(c->chain);
    vkllm_rope_args a = { vx, vy, vp, vt, n_tok, n_head, head_dim, n_rot, n_head * head_dim, head_dim, n_head * head_dim,
                          head_dim, neox, 1.0f, force_fp32, NULL };
    if (!s) s = vkllm_op_rope(c->chain, &a);
    if (!s) s = vkllm_chain_end(c->chain);
    if (!s) s = vkllm_chain_run(c->chain);
    if (!s) s = vkllm_buffer_read(c->dev, &vy.buf, 0, out, nx * 4);
    if (!s) {
        int fp64 = c->dev->f.shader_fp64 && !force_fp32;
        res->kernel = neox ? (fp64 ? "rope_neox" : "rope_neox_f32") : (fp64 ? "rope_norm" : "rope_norm_f32");
        snprintf(res->shape, sizeof res->shape, "tok=%u heads=%u dim=%u pos<=%d", n_tok, n_head, head_dim, max_pos);
        res->nmse = nmse(out, ref, nx);
        res->bound = fp64 ? 1e-10 : 1e-7;
    }
    release(c);
    free(x); free(ref); free(out); free(pos);
    return s;
}

void vkllm_selfcheck_emit(vkllm_selfcheck_sink *sink, vkllm_selfcheck_result *r)
{
    r->pass = r->nmse <= r->bound;
    if (!r->pass && !r->message[0])
        snprintf(r->message, sizeof r->message, "NMSE %.3e exceeds %.1e (seed %llu)", r->nmse, r->bound,
                 (unsigned long long)sink->seed);
    sink->n_run++;
    if (!r->pass) sink->n_failed++;
    if (sink->cb) sink->cb(r, sink->user);
}

static vkllm_status selfcheck_norm_rope(vkllm_device *dev, vkllm_selfcheck_sink *sink)
{
    ctx c = { .dev = dev };
    vkllm_status s = vkllm_chain_create(dev, NULL, &c.chain);
    if (s) return s;
    rng r = { sink->seed };
    for (int i = 0; i < 6 && !s; i++) {
        vkllm_selfcheck_result res;
        memset(&res, 0, sizeof res);
        switch (i) {
        case 0: s = check_rmsnorm(&c, &r, 5120, 4, &res); break;
        case 1: s = check_rmsnorm(&c, &r, 5123, 3, &res); break;
        case 2: s = check_rope(&c, &r, 1, 0, 17, 16384, &res); break;
        case 3: s = check_rope(&c, &r, 0, 0, 17, 16384, &res); break;
        case 4: s = check_rope(&c, &r, 1, 1, 17, 2047, &res); break;
        default: s = check_rope(&c, &r, 0, 1, 17, 2047, &res); break;
        }
        if (!s) vkllm_selfcheck_emit(sink, &res);
    }
    vkllm_chain_destroy(c.chain);
    return s;
}

/* Families of other files register here. */
extern vkllm_status vkllm_selfcheck_gemm(vkllm_device *dev, vkllm_selfcheck_sink *sink);
extern vkllm_status vkllm_selfcheck_misc(vkllm_device *dev, vkllm_selfcheck_sink *sink);
extern vkllm_status vkllm_selfcheck_attn(vkllm_device *dev, vkllm_selfcheck_sink *sink);
extern vkllm_status vkllm_selfcheck_matvec(vkllm_device *dev, vkllm_selfcheck_sink *sink);
static const vkllm_selfcheck_family families[] = {
    selfcheck_norm_rope,
    vkllm_selfcheck_misc,
    vkllm_selfcheck_gemm,
    vkllm_selfcheck_attn,
    vkllm_selfcheck_matvec,
};

vkllm_status vkllm_selfcheck(vkllm_device *dev, uint64_t seed, vkllm_selfcheck_cb cb, void *user, int *n_run, int *n_failed)
{
    if (n_run) *n_run = 0;
    if (n_failed) *n_failed = 0;
    if (!dev) return VKLLM_ERROR_INVALID_ARGUMENT;
    vkllm_selfcheck_sink sink = { cb, user, seed, 0, 0 };
    vkllm_status s = VKLLM_OK;
    for (size_t i = 0; i < sizeof families / sizeof families[0] && !s; i++) s = families[i](dev, &sink);
    if (n_run) *n_run = sink.n_run;
    if (n_failed) *n_failed = sink.n_failed;
    return s;
}
