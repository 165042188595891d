/* Self-check of the matvec family: four weight types at a small shape against vkllm_ref_matvec
 * (weights quantized from random normals), one with an in-place residual and two vectors. Bound as in
 * tests/gpu/test_matvec.c: NMSE <= 1e-9, since the reference dequantizes the same bytes and only
 * float32 against double accumulation differs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "selfcheck_internal.h"
#include "vkllm/ops_matvec.h"
#include "vkllm/ref.h"
#include "vkllm/ref_matvec.h"



/* Random weights of type t (quantized from normals, zero tail up to wsize bytes) uploaded to a
 * view of c; the bytes stay in *w for the reference (the caller frees them). */
static vkllm_status upload_weights(ctx *c, rng *r, vkllm_dtype t, uint32_t n_out, uint32_t n_in, uint64_t wsize, uint8_t **w,
                                   vkllm_view *v)
{
    float *wf = malloc((size_t)n_out * n_in * 4);
    *w = calloc(1, wsize);
    vkllm_status s = (!wf || !*w) ? vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory") : VKLLM_OK;
    if (!s) {
        for (size_t i = 0; i < (size_t)n_out * n_in; i++) wf[i] = normal(r);
        s = vkllm_quantize(t, wf, *w, (size_t)n_out * n_in);
        if (s) s = vkllm_fail(c->dev, s, "self-check: cannot quantize to %s", vkllm_dtype_name(t));
    }
    if (!s) s = upload(c, *w, wsize, v);
    free(wf);
    return s;
}

/* y (n_vec, n_out) = W (n_out, n_in; type t) x (n_vec, n_in) [+ y in place] */
static vkllm_status check(ctx *c, rng *r, vkllm_dtype t, uint32_t n_out, uint32_t n_in, uint32_t n_vec, int in_place,
                          vkllm_selfcheck_result *res)
{
    uint64_t wsize = (vkllm_matvec_weight_bytes(t, n_out, n_in) + 3) & ~3ull;
    size_t nx = (size_t)n_in * n_vec, ny = (size_t)n_out * n_vec;
    float *x = malloc(nx * 4), *ref = malloc(ny * 4), *out = malloc(ny * 4);
    uint8_t *w = NULL;
    vkllm_view vw, vx, vy;
    vkllm_status s = (!x || !ref || !out) ? vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory")
                                         : upload_weights(c, r, t, n_out, n_in, wsize, &w, &vw);
    if (!s) {
        for (size_t i = 0; i < nx; i++) x[i] = normal(r);
        for (size_t i = 0; i < ny; i++) ref[i] = in_place ? normal(r) : NAN;
        s = upload(c, x, nx * 4, &vx);
    }
    if (!s) s = upload(c, ref, ny * 4, &vy); /* the residual, or NaN poison */
    if (!s && vkllm_ref_matvec(t, w, n_out, n_in, x, n_in, ref, n_out, in_place ? ref : NULL, n_out, n_vec))
        s = vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: matvec reference failed");
    if (!s) s = vkllm_chain_begin(c->chain);
    vkllm_matvec_args a = { .w = vw, .type = t, .n_out = n_out, .n_in = n_in, .x = vx, .y = vy,
                            .n_vec = n_vec, .x_stride = n_in, .y_stride = n_out, .r_stride = n_out };
    if (in_place) a.residual = a.y;
    if (!s) s = vkllm_op_matvec(c->chain, &a);
    if (!s) s = vkllm_chain_end(c->chain);
    if (!s) s = vkllm_chain_run(c->chain);
    if (!s) s = vkllm_buffer_read(c->dev, &vy.buf, 0, out, ny * 4);
    if (!s) {
        static const char *names[] = { [VKLLM_DTYPE_F16] = "matvec_f16", [VKLLM_DTYPE_Q8_0] = "matvec_q8_0",
                                       [VKLLM_DTYPE_Q4_K] = "matvec_q4_k", [VKLLM_DTYPE_Q6_K] = "matvec_q6_k" };
        res->kernel = names[t];
        snprintf(res->shape, sizeof res->shape, "%ux%u %s n_vec=%u%s", n_out, n_in, vkllm_dtype_name(t), n_vec,
                 in_place ? " y+=Wx" : "");
        res->nmse = nmse(out, ref, ny);
        res->bound = 1e-9;
    }
    release(c);
    free(x); free(ref); free(out); free(w);
    return s;
}

/* The 8-bit activation mat-vec with its RMSNorm prologue, Q4_K 67x512, against vkllm_ref_matvec_q8.
 * Bound as in tests/gpu/test_matvec_q8.c: NMSE <= 1e-5 (exact integer dots and float32 against double
 * accumulation: 1e-14; but a code on the other side of a rounding edge than in the reference, from the
 * float32 prologue, adds ~1e-6 at n = 512). */
static vkllm_status check_q8(ctx *c, rng *r, vkllm_selfcheck_result *res)
{
    const vkllm_dtype t = VKLLM_DTYPE_Q4_K;
    const uint32_t n_out = 67, n_in = 512;
    uint64_t wsize = (vkllm_matvec_weight_bytes(t, n_out, n_in) + 15) & ~15ull;
    float *x = malloc(n_in * 4), *g = malloc(n_in * 4), *ref = malloc(n_out * 4), *out = malloc(n_out * 4);
    uint8_t *w = NULL;
    vkllm_view vw, vx, vg, vy;
    vkllm_status s = (!x || !g || !ref || !out) ? vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory")
                                               : upload_weights(c, r, t, n_out, n_in, wsize, &w, &vw);
    if (!s) {
        for (size_t i = 0; i < n_in; i++) x[i] = 3.0f * normal(r), g[i] = 1.0f + 0.3f * normal(r);
        s = upload(c, x, n_in * 4, &vx);
    }
    if (!s) s = upload(c, g, n_in * 4, &vg);
    if (!s) s = upload(c, NULL, n_out * 4, &vy); /* NaN poison */
    if (!s && vkllm_ref_matvec_q8(t, w, n_out, n_in, x, n_in, VKLLM_MVQ_RMSNORM, g, 1e-5f, 0, ref, n_out, NULL, 0, 1))
        s = vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: matvec_q8 reference failed");
    if (!s) s = vkllm_chain_begin(c->chain);
    vkllm_matvec_q8_args a = { .w = vw, .type = t, .n_out = n_out, .n_in = n_in, .x = vx, .y = vy, .n_vec = 1,
                               .x_stride = n_in, .y_stride = n_out, .prologue = VKLLM_MVQ_RMSNORM, .norm = vg, .eps = 1e-5f };
    if (!s) s = vkllm_op_matvec_q8(c->chain, &a);
    if (!s) s = vkllm_chain_end(c->chain);
    if (!s) s = vkllm_chain_run(c->chain);
    if (!s) s = vkllm_buffer_read(c->dev, &vy.buf, 0, out, n_out * 4);
    if (!s) {
        res->kernel = "matvec_q8_q4_k";
        snprintf(res->shape, sizeof res->shape, "%ux%u %s n_vec=1 +rmsnorm", n_out, n_in, vkllm_dtype_name(t));
        res->nmse = nmse(out, ref, n_out);
        res->bound = 1e-5;
    }
    release(c);
    free(x); free(g); free(ref); free(out); free(w);
    return s;
}

vkllm_status vkllm_selfcheck_matvec(vkllm_device *dev, vkllm_selfcheck_sink *sink);
vkllm_status vkllm_selfcheck_matvec(vkllm_device *dev, vkllm_selfcheck_sink *sink)
{
    ctx c = { .dev = dev };
    vkllm_status s = vkllm_chain_create(dev, NULL, &c.chain);
    if (s) return s;
    rng r = { sink->seed ^ 0x6d617476ull };
    static const struct { vkllm_dtype t; uint32_t n_out, n_in, n_vec; int in_place; } cases[] = {
        { VKLLM_DTYPE_Q4_K, 67, 512, 1, 0 }, { VKLLM_DTYPE_Q6_K, 67, 512, 2, 1 },
        { VKLLM_DTYPE_Q8_0, 45, 96, 1, 0 },  { VKLLM_DTYPE_F16, 45, 100, 1, 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !s; i++) {
        vkllm_selfcheck_result res;
        memset(&res, 0, sizeof res);
        s = check(&c, &r, cases[i].t, cases[i].n_out, cases[i].n_in, cases[i].n_vec, cases[i].in_place, &res);
        if (!s) vkllm_selfcheck_emit(sink, &res);
    }
    if (!s && vkllm_matvec_q8_supported(dev, VKLLM_DTYPE_Q4_K, 512, 1)) {
        vkllm_selfcheck_result res;
        memset(&res, 0, sizeof res);
        s = check_q8(&c, &r, &res);
        if (!s) vkllm_selfcheck_emit(sink, &res);
    }
    vkllm_chain_destroy(c.chain);
    return s;
}
