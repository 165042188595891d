/* Attention family ops: RoPE + KV append, decode (one pass, or split + merge), prefill. Shapes are checked here;
 * variants are picked from the feature record (fp64 angles, shared-memory size for tile shapes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ops_internal.h"
#include "vkllm/ops_matvec.h"
#include "vkllm/ops.h"

#define LOG2E 1.4426950408889634


uint64_t vkllm_kv_cache_bytes(uint32_t n_kv_head, uint32_t ctx, uint32_t head_dim)
{
    return (uint64_t)n_kv_head * ctx * head_dim * 2;
}

vkllm_status vkllm_op_kv_write(vkllm_chain *chain, const vkllm_kv_write_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (a->n_tok == 0 || a->n_q == 0 || a->n_kv == 0 || a->head_dim == 0 || a->head_dim % 4 || a->n_rot % 4 ||
        a->n_rot > a->head_dim || a->ctx == 0)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "kv_write: bad shape (n_tok %u, n_q %u, n_kv %u, head_dim %u, n_rot %u, ctx %u): head_dim and n_rot "
                          "must be multiples of 4, n_rot <= head_dim",
                          a->n_tok, a->n_q, a->n_kv, a->head_dim, a->n_rot, a->ctx);
    uint64_t row = (uint64_t)(a->n_q + 2 * a->n_kv) * a->head_dim;
    if (a->qkv_stride < row)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "kv_write: qkv_stride %u is shorter than a QKV row (%llu)", a->qkv_stride,
                          (unsigned long long)row);
    uint64_t units = (uint64_t)a->n_tok * (a->n_q + 2 * a->n_kv) * (a->head_dim / 4);
    uint64_t cache = vkllm_kv_cache_bytes(a->n_kv, a->ctx, a->head_dim);
    if (units > UINT32_MAX || cache / 2 > UINT32_MAX)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "kv_write: %llu units / %llu-byte cache exceed one call",
                          (unsigned long long)units, (unsigned long long)cache);
    int fp64 = dev->f.shader_fp64 && !a->force_fp32;
    const char *kernel = a->neox ? (fp64 ? "kv_write_neox" : "kv_write_neox_f32") : (fp64 ? "kv_write_norm" : "kv_write_norm_f32");
    uint32_t wg = 256 < dev->f.max_workgroup_invocations ? 256 : dev->f.max_workgroup_invocations;
    vkllm_pipeline_desc pd = { .kernel = kernel, .n_bindings = 6, .push_size = 32, .n_spec = 1, .spec = { wg } };
    vkllm_pipeline *p;
    vkllm_status s = vkllm_pipeline_get(dev, &pd, &p);
    if (s) return s;
    struct { uint32_t n_tok, n_q, n_kv, hd, n_rot, stride, ctx; float af; } push = {
        a->n_tok, a->n_q, a->n_kv, a->head_dim, a->n_rot, a->qkv_stride, a->ctx, a->attn_factor == 0 ? 1.0f : a->attn_factor };
    uint64_t qkv_bytes = ((uint64_t)(a->n_tok - 1) * a->qkv_stride + row) * 4;
    uint64_t q_bytes = (uint64_t)a->n_tok * a->n_q * a->head_dim * 4;
    uint64_t pairs = (uint64_t)a->n_tok * (a->n_q + a->n_kv) * (a->n_rot / 2);
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : kernel, .n_bindings = 6,
                         .bindings = { bind(a->qkv, qkv_bytes, VKLLM_READ), bind(a->pos, (uint64_t)a->n_tok * 4, VKLLM_READ),
                                       bind(a->table, (uint64_t)(a->n_rot / 2 > 0 ? a->n_rot / 2 : 1) * 8, VKLLM_READ),
                                       bind(a->q, q_bytes, VKLLM_WRITE), bind(a->k_cache, cache, VKLLM_WRITE),
                                       bind(a->v_cache, cache, VKLLM_WRITE) },
                         .push = &push,
                         .bytes = (uint64_t)a->n_tok * row * 4 + q_bytes + (uint64_t)a->n_tok * a->n_kv * a->head_dim * 4,
                         .flops = pairs * 6 };
    grid_2d(dev, (units + wg - 1) / wg, d.groups);
    return vkllm_chain_dispatch(chain, &d);
}

static vkllm_status check_attn(vkllm_device *dev, const vkllm_attn_args *a, const char *what)
{
    if (a->n_tok == 0 || a->n_q == 0 || a->n_kv == 0 || a->n_q % a->n_kv || a->head_dim == 0 || a->head_dim % 16 ||
        a->head_dim > 256 || a->ctx == 0)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                          "%s: bad shape (n_tok %u, n_q %u, n_kv %u, head_dim %u, ctx %u): n_q must be a multiple of n_kv, "
                          "head_dim a multiple of 16 up to 256",
                          what, a->n_tok, a->n_q, a->n_kv, a->head_dim, a->ctx);
    if ((uint64_t)a->n_kv * a->ctx * a->head_dim / 8 > UINT32_MAX ||
        (uint64_t)a->n_tok * a->n_q * a->head_dim > UINT32_MAX)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "%s: cache or batch too large for 32-bit indexing", what);
    return VKLLM_OK;
}

uint32_t vkllm_attn_decode_splits(uint32_t ctx, uint32_t n_split)
{
    if (n_split) return n_split;
    /* the most splits a call at this capacity may use (the scratch is sized for them): one per 64
     * positions up to 128; the op picks fewer from the live work (decode_policy below) */
    uint32_t s = (ctx + 63) / 64;
    return s < 1 ? 1 : s > 128 ? 128 : s;
}

uint64_t vkllm_attn_decode_counter_bytes(uint32_t n_tok, uint32_t n_q)
{
    /* sized by n_q >= n_kv so that the region does not depend on the KV head count, and a scratch
     * zeroed for n_tok rows serves any call of fewer rows */
    return ((uint64_t)n_tok * n_q * 4 + 255) / 256 * 256;
}

uint64_t vkllm_attn_decode_scratch_bytes(uint32_t n_tok, uint32_t n_q, uint32_t head_dim, uint32_t ctx, uint32_t n_split)
{
    return vkllm_attn_decode_counter_bytes(n_tok, n_q) +
           (uint64_t)n_tok * n_q * vkllm_attn_decode_splits(ctx, n_split) * (head_dim + 4) * 4;
}

int vkllm_attn_decode_one_pass_available(vkllm_device *dev)
{
    const char *e = getenv("VKLLM_ATTN_DECODE_TWO_PASS");
    return dev && dev->memory_model && dev->memory_model_device_scope && vkllm_kernel_available("attn_decode_1p") &&
           !(e && *e && strcmp(e, "0"));
}

/* Decode shape: workgroup threads, rows per slot and step, lanes per slot, step order, and the
 * workgroup count the automatic split count aims at (all queries and KV heads together). */
typedef struct decode_shape { uint32_t wg, u, pl, order, target; } decode_shape;

/* Defaults: slots of P lanes, the smallest power of two covering a K/V row in uvec4 (VL = head_dim /
 * 8), at most 16 and the subgroup size (P lanes sum a score by xor shuffles); U = 4 rows per slot and
 * step; 128 threads; the moving-window step order (the contiguous one measured the same on the H100);
 * a workgroup target of 256 in all (512 where each KV head serves one query head): on the H100 (132
 * SMs) about one wave, whose partials the last workgroup merges quickly. The H100 sweep (attention
 * decode in docs/BENCHMARKS.md): Phi-4 (G = 4) at 4096 / 16384 took 17.7 / 40.0 us at 256, 23.7 /
 * 45.5 at 512 (the old 1280 at 16384: 50.0 split + merge); Phi-3 (G = 1) 26.6 / 80.8 at 256, 25.8 /
 * 75.5 at 512. The best other shapes gained at most 6% on Phi-4 (256 threads x U 4 at target 128:
 * 16.7 / 39.0) and matched target 512 on Phi-3 (128 threads x U 8 at 256: 25.9 / 75.6).
 * VKLLM_ATTN_DECODE="wg,U[,P[,order[,target]]]" overrides (benchmarks, tests) where well-formed. */
static void decode_policy(const vkllm_device *dev, uint32_t vl, uint32_t g, decode_shape *d)
{
    const uint32_t sgs = dev->f.subgroup_size;
    uint32_t pl = 1;
    while (pl < vl && pl < 16 && pl * 2 <= sgs) pl *= 2;
    *d = (decode_shape){ 128 < dev->f.max_workgroup_invocations ? 128 : dev->f.max_workgroup_invocations, 4, pl, 0, g == 1 ? 512u : 256u };
    const char *ov = getenv("VKLLM_ATTN_DECODE");
    if (!ov) return;
    unsigned x = 0, y = 0, z = pl, o = d->order, tg = d->target;
    if (sscanf(ov, "%u,%u,%u,%u,%u", &x, &y, &z, &o, &tg) >= 2 && x >= sgs && x <= dev->f.max_workgroup_invocations && !(x & (x - 1)) &&
        y >= 1 && y <= 16 && z >= 1 && z <= sgs && z <= x && !(z & (z - 1)) && o <= 1 && tg >= 1)
        *d = (decode_shape){ x, y, z, o, tg };
}

/* The decode call's shape: workgroup (wg, step = positions per workgroup step) and split count. */
static vkllm_status decode_plan(vkllm_device *dev, const vkllm_attn_args *a, decode_shape *ds, uint32_t *wg_out, uint32_t *step_out,
                                uint32_t *split_out)
{
    vkllm_status s = check_attn(dev, a, "attn_decode");
    if (s) return s;
    const uint32_t hd = a->head_dim, g = a->n_q / a->n_kv, vl = hd / 8;
    const uint32_t max_split = vkllm_attn_decode_splits(a->ctx, a->n_split);
    if (max_split > 1024)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "attn_decode: n_split %u is over 1024 (the merge's limit)", max_split);
    const uint32_t sgs = dev->f.subgroup_size;
    decode_policy(dev, vl, g, ds);
    uint32_t wg = ds->wg;
    if (sgs & (sgs - 1) || wg % sgs)
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "attn_decode: subgroup size %u does not divide the workgroup %u", sgs, wg);
    for (;;) {
        uint64_t nslot = wg / ds->pl;
        uint64_t shared = (uint64_t)g * hd * 4 + nslot * g * (8 + hd * 4);
        if (shared <= dev->f.max_shared_memory) break;
        if (wg / 2 < sgs || wg / 2 < ds->pl)
            return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "attn_decode: group %u x head_dim %u needs more shared memory than %u bytes",
                              g, hd, dev->f.max_shared_memory);
        wg /= 2;
    }
    const uint32_t step = wg / ds->pl * ds->u; /* positions per workgroup step; the merge needs it too */
    /* Split count: as asked, else enough workgroups for ds->target over all rows and KV heads, at
     * least 2 steps of the full capacity each, never more than the scratch holds. Fewer splits mean
     * fewer partials to merge (the one-pass tail). */
    uint32_t n_split = a->n_split;
    if (!n_split) {
        const uint64_t steps = ((uint64_t)a->ctx + step - 1) / step, per_row = (uint64_t)a->n_kv * a->n_tok;
        uint64_t n = (ds->target + per_row - 1) / per_row;
        if (n > (steps + 1) / 2) n = (steps + 1) / 2;
        n_split = n < 1 ? 1 : n > max_split ? max_split : (uint32_t)n;
    }
    *wg_out = wg;
    *step_out = step;
    *split_out = n_split;
    return VKLLM_OK;
}

uint32_t vkllm_attn_decode_split_count(vkllm_device *dev, const vkllm_attn_args *a)
{
    decode_shape ds;
    uint32_t wg, step, n_split;
    if (!dev || !a || decode_plan(dev, a, &ds, &wg, &step, &n_split)) return 0;
    return n_split;
}

vkllm_status vkllm_op_attn_decode(vkllm_chain *chain, const vkllm_attn_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    decode_shape ds;
    uint32_t wg, step, n_split;
    vkllm_status s = decode_plan(dev, a, &ds, &wg, &step, &n_split);
    if (s) return s;
    const uint32_t hd = a->head_dim, g = a->n_q / a->n_kv;
    const int one = a->one_pass && vkllm_attn_decode_one_pass_available(dev);
    const int q8o = a->q8_out.buf.block != NULL;
    const uint64_t q8_bytes = q8o ? vkllm_q8_act_bytes(a->n_q * hd, 1) : 0;
    if (q8o) {
        if (a->n_tok != 1 || hd % 32 || dev->f.subgroup_size < 8 || wg % dev->f.subgroup_size)
            return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT,
                              "attn_decode: q8_out needs one query row (n_tok %u), head_dim %u a multiple of 32 and subgroups of 8 or more",
                              a->n_tok, hd);
        if (a->q8_out.offset + q8_bytes > a->q8_out.buf.size || abs_off(a->q8_out) % 16)
            return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "attn_decode: q8_out needs %llu bytes at a 16-byte offset",
                              (unsigned long long)q8_bytes);
        if (views_overlap(a->q8_out, q8_bytes, a->out, (uint64_t)a->n_q * hd * 4) || views_overlap(a->q8_out, q8_bytes, a->q, (uint64_t)a->n_q * hd * 4))
            return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "attn_decode: q8_out overlaps q or out");
    }
    const uint32_t qout = q8o && one;
    vkllm_pipeline_desc pd = { .kernel = one ? "attn_decode_1p" : "attn_decode", .n_bindings = one ? 8 : 5, .push_size = 32,
                               .n_spec = 8, .spec = { wg, hd, g, step, ds.pl, ds.u, ds.order, qout } };
    /* slots are carved out of subgroups of the size the host assumed: pin it where it may vary */
    if (dev->f.subgroup_size_control && dev->f.min_subgroup_size != dev->f.max_subgroup_size) pd.required_subgroup_size = dev->f.subgroup_size;
    vkllm_pipeline *p, *pm = NULL;
    if ((s = vkllm_pipeline_get(dev, &pd, &p))) return s;
    uint32_t mwg = 256; /* merge: a power of two >= head_dim / 4 */
    while (mwg > dev->f.max_workgroup_invocations) mwg /= 2;
    if (!one) {
        if (mwg < hd / 4) return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "attn_decode: merge workgroup %u < head_dim / 4", mwg);
        vkllm_pipeline_desc pdm = { .kernel = "attn_decode_merge", .n_bindings = 3, .push_size = 32, .n_spec = 7,
                                    .spec = { mwg, hd, g, step, ds.pl, ds.u, ds.order } };
        if ((s = vkllm_pipeline_get(dev, &pdm, &pm))) return s;
    }
    float scale = (float)((a->scale != 0 ? a->scale : 1.0 / sqrt((double)hd)) * LOG2E);
    struct { uint32_t n_tok, n_q, n_kv, ctx, n_split, window; float scale; uint32_t pad; } push = {
        a->n_tok, a->n_q, a->n_kv, a->ctx, n_split, a->window, scale, 0 };
    uint64_t qo = (uint64_t)a->n_tok * a->n_q * hd * 4;
    uint64_t cache = vkllm_kv_cache_bytes(a->n_kv, a->ctx, hd);
    /* scratch: counters at its start, the partials after them (a 256-byte multiple) */
    const uint64_t cnt_bytes = vkllm_attn_decode_counter_bytes(a->n_tok, a->n_q);
    const uint64_t part = (uint64_t)a->n_tok * a->n_q * n_split * (hd + 4) * 4;
    vkllm_view vpart = { a->scratch.buf, a->scratch.offset + cnt_bytes };
    /* profiling counts at full context: the cache bytes of the live range are not known at record time */
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : pd.kernel, .n_bindings = pd.n_bindings,
                         .bindings = { bind(a->q, qo, VKLLM_READ), bind(a->k_cache, cache, VKLLM_READ),
                                       bind(a->v_cache, cache, VKLLM_READ), bind(a->len, 4, VKLLM_READ),
                                       bind(vpart, part, one ? VKLLM_READ_WRITE : VKLLM_WRITE) },
                         .push = &push, .groups = { n_split, a->n_kv, a->n_tok },
                         .bytes = 2 * cache * a->n_tok, .flops = 4ull * a->n_q * a->ctx * hd * a->n_tok };
    if (one) {
        d.bindings[5] = bind(a->scratch, (uint64_t)a->n_tok * a->n_kv * 4, VKLLM_READ_WRITE);
        d.bindings[6] = bind(a->out, qo, VKLLM_WRITE);
        /* the module declares the quantized output: without it, out stands in (never written) */
        d.bindings[7] = qout ? bind(a->q8_out, q8_bytes, VKLLM_WRITE) : bind(a->out, qo, VKLLM_WRITE);
        d.bytes += qo + q8_bytes;
        return vkllm_chain_dispatch(chain, &d);
    }
    if ((s = vkllm_chain_dispatch(chain, &d))) return s;
    vkllm_dispatch m = { .pipeline = pm, .name = "attn_decode_merge", .n_bindings = 3,
                         .bindings = { bind(vpart, part, VKLLM_READ), bind(a->len, 4, VKLLM_READ), bind(a->out, qo, VKLLM_WRITE) },
                         .push = &push, .groups = { a->n_q, a->n_tok, 1 }, .bytes = part + qo };
    if ((s = vkllm_chain_dispatch(chain, &m)) || !q8o) return s;
    vkllm_quantize_q8_args qa = { .x = a->out, .out = a->q8_out, .n_in = a->n_q * hd, .n_vec = 1, .x_stride = a->n_q * hd,
                                  .prologue = VKLLM_MVQ_NONE, .name = "attn_decode.quant_q8" };
    return vkllm_op_quantize_q8(chain, &qa);
}

enum { CM_NSG = 4, CM_RB = 1, CM_BC = 32 };

/* coopmat kernel tile shape: subgroups, 16-row blocks per subgroup, key tile, register prefetch */
typedef struct cm_tile { uint32_t nsg, rb, bc, pf; } cm_tile;

/* K and V tiles (which also stage Q, 2 BC rows per pass), scores, probabilities, emulation scratch */
static uint64_t cm_shared_bytes(uint32_t hd, cm_tile t, int emu)
{
    return 2ull * t.bc * (hd + 8) * 2 + (uint64_t)t.nsg * t.rb * 16 * t.bc * 4 + (uint64_t)t.nsg * t.rb * 16 * (t.bc + 8) * 2 +
           (emu ? (uint64_t)t.nsg * 2048 : 0);
}

/* VKLLM_ATTN_PREFILL="nsg,rb[,bc[,pf]]" (benchmarks, tests) replaces the default tile where it is
 * well-formed and fits; else *t is left alone */
static void cm_override(const vkllm_device *dev, uint32_t hd, int emu, cm_tile *t)
{
    const char *ov = getenv("VKLLM_ATTN_PREFILL");
    unsigned x = 0, y = 0, z = t->bc, w = t->pf;
    if (!ov || sscanf(ov, "%u,%u,%u,%u", &x, &y, &z, &w) < 2) return;
    cm_tile n = { x, y, z, w };
    if (x >= 1 && x <= 16 && y >= 1 && y <= 4 && (z == 16 || z == 32 || z == 64) && w <= 1 &&
        x * dev->f.subgroup_size <= dev->f.max_workgroup_invocations && cm_shared_bytes(hd, n, emu) <= dev->f.max_shared_memory)
        *t = n;
}

int vkllm_attn_prefill_uses_coopmat(vkllm_device *dev, uint32_t head_dim)
{
    if (!dev) return 0;
    const vkllm_features *f = &dev->f;
    int shape = 0;
    for (uint32_t i = 0; i < f->n_coopmat_shapes; i++) {
        const vkllm_coopmat_shape *c = &f->coopmat_shapes[i];
        if (c->m == 16 && c->n == 16 && c->k == 16 && c->subgroup_scope && !strcmp(c->a_type, "f16") && !strcmp(c->b_type, "f16") &&
            !strcmp(c->c_type, "f32") && !strcmp(c->r_type, "f32"))
            shape = 1;
    }
    uint32_t sg = f->subgroup_size;
    return shape && f->coopmat && f->shader_fp16 && vkllm_kernel_available("attn_prefill_cm") && head_dim % 16 == 0 &&
           head_dim <= 256 && sg >= 16 && (sg & (sg - 1)) == 0 && CM_NSG * sg <= f->max_workgroup_invocations &&
           cm_shared_bytes(head_dim, (cm_tile){ CM_NSG, CM_RB, CM_BC, 1 }, 0) <= f->max_shared_memory;
}

vkllm_status vkllm_attn_prefill_dispatch(vkllm_chain *chain, const vkllm_attn_args *a, vkllm_pipeline *p, const char *kernel,
                                         uint32_t gx, uint32_t gy)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (gx > dev->f.max_workgroup_count[0] || gy > dev->f.max_workgroup_count[1])
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE, "attn_prefill (%s): grid %u x %u exceeds the device's workgroup counts", kernel, gx,
                          gy);
    const uint32_t hd = a->head_dim;
    float scale = (float)((a->scale != 0 ? a->scale : 1.0 / sqrt((double)hd)) * LOG2E);
    struct { uint32_t n_tok, n_q, n_kv, ctx, window, group; float scale; uint32_t pad; } push = {
        a->n_tok, a->n_q, a->n_kv, a->ctx, a->window, a->n_q / a->n_kv, scale, 0 };
    uint64_t qo = (uint64_t)a->n_tok * a->n_q * hd * 4;
    uint64_t cache = vkllm_kv_cache_bytes(a->n_kv, a->ctx, hd);
    /* profiling: causal FLOPs of a batch that starts the context (4 * n_q * hd * T^2 / 2) */
    vkllm_dispatch d = { .pipeline = p, .name = a->name ? a->name : kernel, .n_bindings = 5,
                         .bindings = { bind(a->q, qo, VKLLM_READ), bind(a->k_cache, cache, VKLLM_READ),
                                       bind(a->v_cache, cache, VKLLM_READ), bind(a->len, 4, VKLLM_READ),
                                       bind(a->out, qo, VKLLM_WRITE) },
                         .push = &push, .groups = { gx, gy, 1 },
                         .bytes = 2 * qo + 2 * (uint64_t)a->n_kv * a->n_tok * hd * 2,
                         .flops = 2ull * a->n_q * hd * a->n_tok * a->n_tok };
    return vkllm_chain_dispatch(chain, &d);
}

/* runtime/ops_attn_cm2.c: records the NV cooperative_matrix2 kernel and returns 1, or returns 0 */
int vkllm_attn_prefill_cm2(vkllm_chain *chain, const vkllm_attn_args *a, vkllm_status *s);

vkllm_status vkllm_op_attn_prefill(vkllm_chain *chain, const vkllm_attn_args *a)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    if (!dev || !a) return VKLLM_ERROR_INVALID_ARGUMENT;
    vkllm_status s = check_attn(dev, a, "attn_prefill");
    if (s) return s;
    if (!a->force_portable && vkllm_attn_prefill_cm2(chain, a, &s)) return s;
    const uint32_t hd = a->head_dim, bc = 16;
    const int emu = a->force_portable < 0;
    if (emu || (!a->force_portable && vkllm_attn_prefill_uses_coopmat(dev, hd))) {
        const uint32_t sg = dev->f.subgroup_size;
        /* the emulation runs 2 subgroups x 1 row block by default */
        cm_tile tl = emu ? (cm_tile){ 2, 1, CM_BC, 1 } : (cm_tile){ CM_NSG, CM_RB, CM_BC, 1 };
        cm_override(dev, hd, emu, &tl);
        const uint32_t nsg = tl.nsg, br = 16 * tl.nsg * tl.rb;
        if (emu && ((sg & (sg - 1)) || sg > 256 || nsg * sg > dev->f.max_workgroup_invocations ||
                    cm_shared_bytes(hd, tl, 1) > dev->f.max_shared_memory))
            return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "attn_prefill: the coopmat emulation does not fit this device (head_dim %u)",
                              hd);
        vkllm_pipeline_desc pd = { .kernel = emu ? "attn_prefill_cmemu" : "attn_prefill_cm", .n_bindings = 5, .push_size = 32,
                                   .n_spec = 7, .spec = { nsg * sg, hd, nsg, sg, tl.rb, tl.bc, tl.pf } };
        /* the kernel's lanes-per-row split of the softmax reads gl_SubgroupSize: pin it where it may vary */
        if (dev->f.subgroup_size_control && dev->f.min_subgroup_size != dev->f.max_subgroup_size) pd.required_subgroup_size = sg;
        vkllm_pipeline *p;
        if ((s = vkllm_pipeline_get(dev, &pd, &p))) return s;
        return vkllm_attn_prefill_dispatch(chain, a, p, pd.kernel, (a->n_tok + br - 1) / br, a->n_q);
    }
    uint32_t br = 32;
    for (;;) {
        uint64_t shared = (uint64_t)(br + 2 * bc) * (hd + 4) * 4 + (uint64_t)br * bc * 4;
        if (shared <= dev->f.max_shared_memory && br * 4 <= dev->f.max_workgroup_invocations) break;
        if (br == 4) return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED, "attn_prefill: head_dim %u needs more shared memory", hd);
        br /= 2;
    }
    vkllm_pipeline_desc pd = { .kernel = "attn_prefill", .n_bindings = 5, .push_size = 32, .n_spec = 4, .spec = { 4 * br, hd, br, bc } };
    vkllm_pipeline *p;
    if ((s = vkllm_pipeline_get(dev, &pd, &p))) return s;
    return vkllm_attn_prefill_dispatch(chain, a, p, "attn_prefill", (a->n_tok + br - 1) / br, a->n_q);
}
