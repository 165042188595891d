/* Self-check of the attention family against host/ref/attn.c on small shapes (well under a second
 * on lavapipe): KV write (Q NMSE; the cache path is covered by tests/gpu/test_attn.c), decode at
 * Phi-4 and Phi-3 shapes (one with a sliding window) and prefill of a 17-row batch at an offset.
 * Bounds as the tests state them: attention runs on the same fp16 K/V as the reference, float32
 * arithmetic only, NMSE <= 1e-8; the cooperative-matrix prefill rounds Q and P to fp16, 1e-4. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ops_internal.h"
#include "selfcheck_internal.h"
#include "vkllm/half.h"
#include "vkllm/ops.h"
#include "vkllm/ref.h"
#include "vkllm/ref_attn.h"



static vkllm_status check_kv_write(ctx *c, rng *r, vkllm_selfcheck_result *res)
{
    const uint32_t n_tok = 3, n_q = 40, n_kv = 10, hd = 128, ctx_len = 64, stride = (n_q + 2 * n_kv) * hd;
    const size_t nqkv = (size_t)n_tok * stride, nq = (size_t)n_tok * n_q * hd, nc = (size_t)n_kv * ctx_len * hd;
    float *qkv = malloc(nqkv * 4), *qref = malloc(nq * 4), *out = malloc(nq * 4), table[128];
    uint16_t *kc = malloc(nc * 2), *vc = malloc(nc * 2);
    int32_t pos[3] = { 63, 17, 0 };
    double inv[64];
    vkllm_status s = VKLLM_OK;
    if (!qkv || !qref || !out || !kc || !vc) s = vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory");
    vkllm_view vqkv = { 0 }, vpos = { 0 }, vtab = { 0 }, vq = { 0 }, vk = { 0 }, vv = { 0 };
    if (!s) {
        for (size_t i = 0; i < nqkv; i++) qkv[i] = normal(r);
        vkllm_rope_inv_freq(inv, hd, 250000.0, 1.0, NULL);
        vkllm_rope_table(table, inv, hd / 2);
        vkllm_kv_write_params p = { n_tok, n_q, n_kv, hd, hd, stride, ctx_len, 1, 1.0f };
        vkllm_ref_kv_write(&p, qkv, pos, inv, qref, kc, vc);
        s = upload(c, qkv, nqkv * 4, &vqkv);
    }
    if (!s) s = upload(c, pos, sizeof pos, &vpos);
    if (!s) s = upload(c, table, sizeof table, &vtab);
    if (!s) s = upload(c, NULL, nq * 4, &vq);
    if (!s) s = upload(c, NULL, nc * 2, &vk);
    if (!s) s = upload(c, NULL, nc * 2, &vv);
    if (!s) s = vkllm_chain_begin(c->chain);
    vkllm_kv_write_args a = { vqkv, vpos, vtab, vq, vk, vv, n_tok, n_q, n_kv, hd, hd, stride, ctx_len, 1, 1.0f, 0, NULL };
    if (!s) s = vkllm_op_kv_write(c->chain, &a);
    if (!s) s = vkllm_chain_end(c->chain);
    if (!s) s = vkllm_chain_run(c->chain);
    if (!s) s = vkllm_buffer_read(c->dev, &vq.buf, 0, out, nq * 4);
    if (!s) {
        int fp64 = c->dev->f.shader_fp64;
        res->kernel = fp64 ? "kv_write_neox" : "kv_write_neox_f32";
        snprintf(res->shape, sizeof res->shape, "tok=%u q=%u kv=%u hd=%u pos<=63", n_tok, n_q, n_kv, hd);
        res->nmse = nmse(out, qref, nq);
        res->bound = fp64 ? 1e-10 : 1e-7;
    }
    release(c);
    free(qkv); free(qref); free(out); free(kc); free(vc);
    return s;
}

static vkllm_status check_attn(ctx *c, rng *r, int prefill, uint32_t n_tok, uint32_t n_q, uint32_t n_kv, uint32_t hd, uint32_t n_live,
                               uint32_t window, vkllm_selfcheck_result *res)
{
    const uint32_t ctx_len = n_live + 7;
    const size_t nq = (size_t)n_tok * n_q * hd, nc = (size_t)n_kv * ctx_len * hd;
    float *q = malloc(nq * 4), *ref = malloc(nq * 4), *out = malloc(nq * 4);
    uint16_t *kc = malloc(nc * 2), *vc = malloc(nc * 2);
    vkllm_status s = VKLLM_OK;
    if (!q || !ref || !out || !kc || !vc) s = vkllm_fail(c->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check: out of host memory");
    vkllm_view vq = { 0 }, vk = { 0 }, vv = { 0 }, vl = { 0 }, vo = { 0 }, vs = { 0 };
    if (!s) {
        for (size_t i = 0; i < nq; i++) q[i] = normal(r);
        for (size_t i = 0; i < nc; i++) kc[i] = vkllm_fp32_to_fp16(normal(r));
        for (size_t i = 0; i < nc; i++) vc[i] = vkllm_fp32_to_fp16(normal(r));
        vkllm_attn_params p = { n_tok, n_q, n_kv, hd, ctx_len, n_live, window, 0.0f };
        vkllm_ref_attn(&p, q, kc, vc, ref);
        s = upload(c, q, nq * 4, &vq);
    }
    if (!s) s = upload(c, kc, nc * 2, &vk);
    if (!s) s = upload(c, vc, nc * 2, &vv);
    if (!s) s = upload(c, &n_live, 4, &vl);
    if (!s) s = upload(c, NULL, nq * 4, &vo);
    if (!s) s = upload(c, NULL, vkllm_attn_decode_scratch_bytes(n_tok, n_q, hd, ctx_len, 0), &vs);
    /* decode runs the one-pass kernel where the device has it: its counters start at zero */
    if (!s) s = vkllm_buffer_fill(c->dev, &vs.buf, vs.offset, vkllm_attn_decode_counter_bytes(n_tok, n_q), 0);
    if (!s) s = vkllm_chain_begin(c->chain);
    vkllm_attn_args a = { vq, vk, vv, vl, vo, vs, n_tok, n_q, n_kv, hd, ctx_len, window, 0.0f, 0, NULL, 0, 1, { { 0 }, 0 } };
    if (!s) s = prefill ? vkllm_op_attn_prefill(c->chain, &a) : vkllm_op_attn_decode(c->chain, &a);
    if (!s) s = vkllm_chain_end(c->chain);
    if (!s) s = vkllm_chain_run(c->chain);
    if (!s) s = vkllm_buffer_read(c->dev, &vo.buf, 0, out, nq * 4);
    if (!s) {
        int cm = prefill && vkllm_attn_prefill_uses_coopmat(c->dev, hd);
        const int cm2 = prefill && vkllm_attn_prefill_cm2_enabled(c->dev);
        res->kernel = prefill ? (cm2 ? "attn_prefill_cm2" : cm ? "attn_prefill_cm" : "attn_prefill")
                              : vkllm_attn_decode_one_pass_available(c->dev) ? "attn_decode_1p" : "attn_decode";
        snprintf(res->shape, sizeof res->shape, "rows=%u q=%u kv=%u hd=%u ctx=%u%s", n_tok, n_q, n_kv, hd, n_live,
                 window ? " window" : "");
        res->nmse = nmse(out, ref, nq);
        res->bound = cm ? 1e-4 : 1e-8; /* coopmat: Q and P rounded to fp16 */
    }
    release(c);
    free(q); free(ref); free(out); free(kc); free(vc);
    return s;
}

vkllm_status vkllm_selfcheck_attn(vkllm_device *dev, vkllm_selfcheck_sink *sink)
{
    ctx c = { .dev = dev };
    vkllm_status s = vkllm_chain_create(dev, NULL, &c.chain);
    if (s) return s;
    rng r = { sink->seed ^ 0xa77e0000ull };
    for (int i = 0; i < 4 && !s; i++) {
        vkllm_selfcheck_result res;
        memset(&res, 0, sizeof res);
        switch (i) {
        case 0: s = check_kv_write(&c, &r, &res); break;
        case 1: s = check_attn(&c, &r, 0, 1, 40, 10, 128, 300, 0, &res); break;
        case 2: s = check_attn(&c, &r, 0, 1, 32, 32, 96, 257, 100, &res); break;
        default: s = check_attn(&c, &r, 1, 17, 40, 10, 128, 300, 0, &res); break;
        }
        if (!s) vkllm_selfcheck_emit(sink, &res);
    }
    vkllm_chain_destroy(c.chain);
    return s;
}
