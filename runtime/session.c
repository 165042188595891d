/* A session: KV cache, scratch, and the recorded chains of the forward pass.
 *
 * Per-step values (token ids, positions, the live cache length) are written by the host into a
 * small host-visible buffer; each chain starts by copying them into device memory (so no kernel
 * reads across PCIe) and ends by copying the sampled token / top-k back. Nothing else crosses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_internal.h"
#include "vkllm/half.h"
#include "vkllm/ops_attn.h"
#include "vkllm/ops_gemm.h"
#include "vkllm/ops_matvec.h"
#include "vkllm/ops_misc.h"
#include "vkllm/ref.h"

#define MAX_PREFILL_CHAINS 4
#define MATVEC_MAX_ROWS 8 /* up to this many tokens the mat-vec kernel (n_vec rows) beats the GEMM */
#define TOPK VKLLM_TOPK_MAX_K

/* Output region (device `dout`, and the tail of the host params buffer). */
enum { OUT_ARGMAX = 0, OUT_STATUS = 256, OUT_TOPK_V = 512, OUT_TOPK_I = 768, OUT_SIZE = 1024 };

static uint64_t r256(uint64_t x) { return (x + 255) / 256 * 256; }

typedef struct acts {
    vkllm_buffer x;      /* (B, n_embd) residual stream */
    vkllm_buffer xmid;   /* (B, n_embd) capture: stream after attention */
    vkllm_buffer xn;     /* (B, n_embd) normalized */
    vkllm_buffer qkv;    /* (B, qkv_dim) fused projection */
    vkllm_buffer q;      /* (B, n_head * head_dim) rotated queries */
    vkllm_buffer attn;   /* (B, n_head * head_dim) attention output */
    vkllm_buffer gu;     /* (B, 2 n_ff) gate then up */
    vkllm_buffer act;    /* (B, n_ff) silu(gate) * up */
    vkllm_buffer logits; /* (L, n_vocab) L = 1, or B when capturing */
    vkllm_buffer xq;     /* act_q8_global: one token's input quantized (vkllm_q8_act_bytes(max(n_embd, q_dim, n_ff), 1)) */
} acts;

typedef struct prefill_chain {
    uint32_t m;
    vkllm_chain *c;
    uint64_t last_use;
} prefill_chain;

struct vkllm_session {
    vkllm_model *m;
    vkllm_device *dev;
    uint32_t n_ctx, max_batch, pos;
    uint32_t qkv_dim, q_dim, kv_dim;
    vkllm_buffer *k, *v;      /* (n_layer) caches, fp16 [n_kv][n_ctx][head_dim] */
    vkllm_buffer table;       /* RoPE (hi, lo) pairs [n_rot/2] */
    float attn_factor;
    vkllm_buffer hparams;     /* host-visible: ids, pos, len, then the output region */
    vkllm_buffer dparams;     /* device copy of ids, pos, len */
    vkllm_buffer dout;        /* device outputs (OUT_*) */
    uint64_t off_pos, off_len, params_in;
    acts a;
    vkllm_buffer attn_scratch, argmax_scratch, topk_scratch;
    vkllm_chain *decode_greedy, *decode_topk;
    prefill_chain prefill[MAX_PREFILL_CHAINS];
    uint64_t uses;
    int timestamps;
    int act_q8; /* decode steps use vkllm_op_matvec_q8 for the weights it supports */
    int act_q8_global; /* with act_q8: each input quantized once into a.xq (quant_q8), ffn_down included */
    int fuse_rope;     /* with act_q8_global: RoPE + KV append in the QKV mat-vec where supported */
    uint32_t rope_fused_layers; /* of the last decode (M = 1, no capture) chain recorded */
    double last_gpu_ns;
    double host_ns; /* time spent preparing and submitting steps (not waiting), summed */
    vkllm_chain *last; /* the chain of the last step (for its timings) */
    uint64_t steps;
};

uint64_t vkllm_session_scratch_estimate(const vkllm_phi3_hparams *hp, uint32_t n_ctx, uint32_t max_batch)
{
    uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim, kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
    uint64_t per_row = 3ull * hp->n_embd + (hp->n_embd + 2 * kv_dim) + 2 * q_dim + 3ull * hp->n_ff;
    return 4 * per_row * max_batch + 4ull * hp->n_vocab + vkllm_attn_decode_scratch_bytes(1, hp->n_head, hp->head_dim, n_ctx, 0) +
           vkllm_argmax_scratch_bytes(hp->n_vocab, 1) + vkllm_topk_scratch_bytes(hp->n_vocab, 1, TOPK) + (16u << 10);
}

static vkllm_view V(vkllm_buffer b, uint64_t off)
{
    vkllm_view v = { b, off };
    return v;
}

static const char *tname(vkllm_dtype t) { return vkllm_dtype_name(t); }

/* y = W x (+ residual) for M rows: the mat-vec kernel up to MATVEC_MAX_ROWS rows, else the GEMM. */
static vkllm_status proj(vkllm_chain *c, const weight *w, vkllm_view x, uint32_t M, vkllm_view y, const vkllm_view *res,
                         const char *name)
{
    vkllm_view none = { { 0 }, 0 };
    if (M <= MATVEC_MAX_ROWS) {
        vkllm_matvec_args a = { .w = V(w->buf, 0), .type = w->type, .n_out = w->rows, .n_in = w->cols, .x = x, .y = y,
                                .residual = res ? *res : none, .n_vec = M, .x_stride = w->cols, .y_stride = w->rows,
                                .r_stride = w->rows, .name = name };
        return vkllm_op_matvec(c, &a);
    }
    vkllm_gemm_args a = { .w = V(w->buf, 0), .type = w->type, .n_out = w->rows, .n_in = w->cols, .x = x, .y = y,
                          .residual = res ? *res : none, .m = M, .x_stride = w->cols, .y_stride = w->rows,
                          .r_stride = w->rows, .name = name };
    return vkllm_op_gemm(c, &a);
}

/* Whether the one-token step takes the 8-bit-activation mat-vec (prologue fused) for weight w. */
static int q8(const vkllm_session *s, const weight *w, uint32_t M)
{
    return s->act_q8 && M == 1 && vkllm_matvec_q8_supported(s->dev, w->type, w->cols, 1);
}

/* y = W P(x) (+ residual) for one token with 8-bit activations; P: VKLLM_MVQ_* with its gain / up offset.
 * act_q8_global: P and the quantization run once in a quant_q8 dispatch into a.xq, which the mat-vec
 * reads instead of each of its workgroups re-doing them (same codes); xq_ready: a.xq already holds
 * Q8(P(x)) (the attention's merge wrote it), so no quant_q8 dispatch. */
static vkllm_status proj_q8(const vkllm_session *s, vkllm_chain *c, const weight *w, vkllm_view x, uint32_t x_stride,
                            uint32_t prologue, const weight *gain, float eps, uint32_t up_offset, vkllm_view y,
                            const vkllm_view *res, const char *name, int xq_ready, const vkllm_kv_write_args *rope_kv)
{
    vkllm_view none = { { 0 }, 0 };
    vkllm_matvec_q8_args a = { .w = V(w->buf, 0), .type = w->type, .n_out = w->rows, .n_in = w->cols, .x = x, .y = y,
                               .residual = res ? *res : none, .n_vec = 1, .x_stride = x_stride, .y_stride = w->rows,
                               .r_stride = w->rows, .prologue = prologue, .norm = gain ? V(gain->buf, 0) : none,
                               .eps = eps, .up_offset = up_offset, .name = name, .rope_kv = rope_kv };
    if (s->act_q8_global && xq_ready)
        a.xq = V(s->a.xq, 0);
    else if (s->act_q8_global) {
        char qn[112];
        snprintf(qn, sizeof qn, "%.90s.quant_q8", name);
        vkllm_quantize_q8_args q = { .x = x, .out = V(s->a.xq, 0), .n_in = w->cols, .n_vec = 1, .x_stride = x_stride,
                                     .prologue = prologue, .norm = a.norm, .eps = eps, .up_offset = up_offset, .name = qn };
        vkllm_status st = vkllm_op_quantize_q8(c, &q);
        if (st) return st;
        a.xq = V(s->a.xq, 0);
    }
    return vkllm_op_matvec_q8(c, &a);
}

/* Checkpoint buffers of a capture run: per layer the fixture's row-major [R][width] tensors. */
enum { CP_ATTN_NORM, CP_Q, CP_ATTN, CP_ATTN_OUT, CP_FFN_NORM, CP_FFN_ACT, CP_FFN_OUT, CP_OUT, CP_PER_LAYER };
static const char *cp_names[CP_PER_LAYER] = { "attn_norm", "q", "attn", "attn_out", "ffn_norm", "ffn_act", "ffn_out", "out" };

typedef struct capture {
    uint32_t rows;
    vkllm_buffer *b;          /* (n_layer * CP_PER_LAYER) */
    vkllm_buffer output_norm; /* (R, n_embd) */
    vkllm_buffer logits;      /* (R, n_vocab) */
} capture;

static uint32_t cp_width(const vkllm_session *s, int which)
{
    const vkllm_phi3_hparams *hp = &s->m->hp;
    switch (which) {
    case CP_Q: case CP_ATTN: return s->q_dim;
    case CP_FFN_ACT: return hp->n_ff;
    default: return hp->n_embd;
    }
}

/* Records the forward pass of M tokens whose ids/positions/length are in dparams. With cp, every
 * checkpoint goes to its own buffer and the residual adds are separate dispatches; without, the
 * residual is fused into the O and down projections and only the last row reaches the output head. */
static vkllm_status record_forward(vkllm_session *s, vkllm_chain *c, uint32_t M, const capture *cp)
{
    vkllm_model *m = s->m;
    const vkllm_phi3_hparams *hp = &m->hp;
    const uint32_t E = hp->n_embd;
    acts *a = &s->a;
    char name[96];
    vkllm_status st;
    vkllm_view ids = V(s->dparams, 0), pos = V(s->dparams, s->off_pos), len = V(s->dparams, s->off_len);

    vkllm_embed_args ea = { .table = V(m->tok_embd.buf, 0), .ids = ids, .out = V(a->x, 0), .status = V(s->dout, OUT_STATUS),
                            .type = m->tok_embd.type, .n_vocab = hp->n_vocab, .n_embd = E, .n_tok = M, .out_stride = E,
                            .name = "token_embd" };
    if ((st = vkllm_op_embed(c, &ea))) return st;
    vkllm_buffer x = a->x; /* the stream; in capture mode it moves through the checkpoint buffers */
    if (M == 1 && !cp) s->rope_fused_layers = 0;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const layer_weights *L = &m->layer[l];
        vkllm_buffer *cpl = cp ? &cp->b[l * CP_PER_LAYER] : NULL;
        /* With 8-bit activations the norms and the SwiGLU run inside the next mat-vec; a capture
         * still runs them on their own, only to fill its checkpoints. */
        /* ffn_down stays on the float kernel after the SwiGLU dispatch: with the SwiGLU as its
         * prologue every workgroup reads 2 n_ff floats (143 KB for Phi-4) besides ~235 KB of weights,
         * and on the H100 that measured 85 us against 50 + 4.6 (bench-matvec --q8, BENCHMARKS.md) */
        /* With act_q8_global (the default) the SwiGLU and quantization are one small dispatch, and
         * ffn_down reads 1.4 bytes per element from L2: it takes 8-bit inputs too */
        const int q8_qkv = q8(s, &L->qkv, M), q8_o = q8(s, &L->o, M), q8_up = q8(s, &L->up, M);
        const int q8_down = s->act_q8_global && q8(s, &L->down, M);
        vkllm_buffer xn = cp ? cpl[CP_ATTN_NORM] : a->xn;
        snprintf(name, sizeof name, "L%02u.attn_norm", l);
        vkllm_rmsnorm_args rn = { V(x, 0), V(L->attn_norm.buf, 0), V(xn, 0), E, M, E, E, hp->rms_eps, name };
        if ((!q8_qkv || cp) && (st = vkllm_op_rmsnorm(c, &rn))) return st;
        snprintf(name, sizeof name, "L%02u.attn_qkv.%s", l, tname(L->qkv.type));
        vkllm_buffer q = cp ? cpl[CP_Q] : a->q;
        char kwname[96];
        snprintf(kwname, sizeof kwname, "L%02u.kv_write", l);
        vkllm_kv_write_args kw = { .qkv = V(a->qkv, 0), .pos = pos, .table = V(s->table, 0), .q = V(q, 0),
                                   .k_cache = V(s->k[l], 0), .v_cache = V(s->v[l], 0), .n_tok = M, .n_q = hp->n_head,
                                   .n_kv = hp->n_head_kv, .head_dim = hp->head_dim, .n_rot = hp->n_rot,
                                   .qkv_stride = s->qkv_dim, .ctx = s->n_ctx, .neox = 1, .attn_factor = s->attn_factor,
                                   .name = kwname };
        /* decode: the QKV mat-vec rotates Q and K and appends K and V itself (no kv_write dispatch) */
        const int rope_fused = q8_qkv && s->fuse_rope && vkllm_matvec_q8_rope_supported(s->dev, L->qkv.type, L->qkv.cols, &kw);
        st = q8_qkv ? proj_q8(s, c, &L->qkv, V(x, 0), E, VKLLM_MVQ_RMSNORM, &L->attn_norm, hp->rms_eps, 0, V(a->qkv, 0), NULL, name, 0,
                              rope_fused ? &kw : NULL)
                    : proj(c, &L->qkv, V(xn, 0), M, V(a->qkv, 0), NULL, name);
        if (st) return st;
        if (!rope_fused && (st = vkllm_op_kv_write(c, &kw))) return st;
        if (M == 1 && !cp) s->rope_fused_layers += rope_fused != 0;
        vkllm_buffer at = cp ? cpl[CP_ATTN] : a->attn;
        vkllm_attn_args aa = { .q = V(q, 0), .k_cache = V(s->k[l], 0), .v_cache = V(s->v[l], 0), .len = len,
                               .out = V(at, 0), .scratch = V(s->attn_scratch, 0), .n_tok = M, .n_q = hp->n_head,
                               .n_kv = hp->n_head_kv, .head_dim = hp->head_dim, .ctx = s->n_ctx,
                               .window = hp->sliding_window, .one_pass = 1, .name = name };
        /* 8-bit inputs quantized once: the attention's merge quantizes attn_output's input itself */
        const int attn_q8 = M == 1 && q8_o && s->act_q8_global && hp->head_dim % 32 == 0 && s->dev->f.subgroup_size >= 8;
        if (attn_q8) aa.q8_out = V(a->xq, 0);
        snprintf(name, sizeof name, "L%02u.attn", l);
        st = M == 1 ? vkllm_op_attn_decode(c, &aa) : vkllm_op_attn_prefill(c, &aa);
        if (st) return st;
        snprintf(name, sizeof name, "L%02u.attn_output.%s", l, tname(L->o.type));
        if (cp) {
            st = q8_o ? proj_q8(s, c, &L->o, V(at, 0), s->q_dim, VKLLM_MVQ_NONE, NULL, 0, 0, V(cpl[CP_ATTN_OUT], 0), NULL, name, attn_q8, NULL)
                      : proj(c, &L->o, V(at, 0), M, V(cpl[CP_ATTN_OUT], 0), NULL, name);
            if (st) return st;
            vkllm_add_args ad = { V(x, 0), V(cpl[CP_ATTN_OUT], 0), V(a->xmid, 0), M * E, "residual" };
            if ((st = vkllm_op_add(c, &ad))) return st;
            x = a->xmid;
        } else {
            vkllm_view r = V(x, 0);
            st = q8_o ? proj_q8(s, c, &L->o, V(at, 0), s->q_dim, VKLLM_MVQ_NONE, NULL, 0, 0, V(x, 0), &r, name, attn_q8, NULL)
                      : proj(c, &L->o, V(at, 0), M, V(x, 0), &r, name);
            if (st) return st;
        }
        xn = cp ? cpl[CP_FFN_NORM] : a->xn;
        snprintf(name, sizeof name, "L%02u.ffn_norm", l);
        vkllm_rmsnorm_args fn = { V(x, 0), V(L->ffn_norm.buf, 0), V(xn, 0), E, M, E, E, hp->rms_eps, name };
        if ((!q8_up || cp) && (st = vkllm_op_rmsnorm(c, &fn))) return st;
        snprintf(name, sizeof name, "L%02u.ffn_up.%s", l, tname(L->up.type));
        st = q8_up ? proj_q8(s, c, &L->up, V(x, 0), E, VKLLM_MVQ_RMSNORM, &L->ffn_norm, hp->rms_eps, 0, V(a->gu, 0), NULL, name, 0, NULL)
                   : proj(c, &L->up, V(xn, 0), M, V(a->gu, 0), NULL, name);
        if (st) return st;
        vkllm_buffer act = cp ? cpl[CP_FFN_ACT] : a->act;
        snprintf(name, sizeof name, "L%02u.swiglu", l);
        vkllm_swiglu_args sw = { V(a->gu, 0), V(act, 0), hp->n_ff, M, 2 * hp->n_ff, hp->n_ff, name };
        if ((!q8_down || cp) && (st = vkllm_op_swiglu(c, &sw))) return st;
        snprintf(name, sizeof name, "L%02u.ffn_down.%s", l, tname(L->down.type));
        if (cp) {
            st = q8_down ? proj_q8(s, c, &L->down, V(a->gu, 0), 2 * hp->n_ff, VKLLM_MVQ_SWIGLU, NULL, 0, hp->n_ff,
                                   V(cpl[CP_FFN_OUT], 0), NULL, name, 0, NULL)
                         : proj(c, &L->down, V(act, 0), M, V(cpl[CP_FFN_OUT], 0), NULL, name);
            if (st) return st;
            vkllm_add_args ad = { V(x, 0), V(cpl[CP_FFN_OUT], 0), V(cpl[CP_OUT], 0), M * E, "residual" };
            if ((st = vkllm_op_add(c, &ad))) return st;
            x = cpl[CP_OUT];
        } else {
            vkllm_view r = V(x, 0);
            st = q8_down ? proj_q8(s, c, &L->down, V(a->gu, 0), 2 * hp->n_ff, VKLLM_MVQ_SWIGLU, NULL, 0, hp->n_ff, V(x, 0), &r, name, 0, NULL)
                         : proj(c, &L->down, V(act, 0), M, V(x, 0), &r, name);
            if (st) return st;
        }
    }
    /* The output head: every row when capturing, else only the last token's (the row offset must be
     * a valid binding offset; otherwise all rows are normalized and the last is used). */
    uint32_t rows = M, first = 0;
    if (!cp && ((uint64_t)(M - 1) * E * 4) % 256 == 0) {
        first = M - 1;
        rows = 1;
    }
    vkllm_buffer on = cp ? cp->output_norm : a->xn;
    vkllm_rmsnorm_args rn = { V(x, (uint64_t)first * E * 4), V(m->out_norm.buf, 0), V(on, 0), E, rows, E, E, hp->rms_eps,
                              "output_norm" };
    const int q8_out = q8(s, &m->output, M);
    if ((!q8_out || cp) && (st = vkllm_op_rmsnorm(c, &rn))) return st;
    snprintf(name, sizeof name, "output.%s", tname(m->output.type));
    if (q8_out) /* M == 1: the only row */
        return proj_q8(s, c, &m->output, V(x, 0), E, VKLLM_MVQ_RMSNORM, &m->out_norm, hp->rms_eps, 0,
                       V(cp ? cp->logits : a->logits, 0), NULL, name, 0, NULL);
    if (cp) return proj(c, &m->output, V(on, 0), M, V(cp->logits, 0), NULL, name);
    if (rows == 1) return proj(c, &m->output, V(on, 0), 1, V(a->logits, 0), NULL, name);
    /* unaligned last row: the head on the last normalized row, copied to the aligned start first */
    if ((st = vkllm_chain_copy(c, &on, (uint64_t)(M - 1) * E * 4, &a->xmid, 0, (uint64_t)E * 4))) return st;
    return proj(c, &m->output, V(a->xmid, 0), 1, V(a->logits, 0), NULL, name);
}

typedef enum tail { TAIL_NONE, TAIL_ARGMAX, TAIL_TOPK } tail;

/* A whole step: params in, forward, sampling tail, outputs back. */
static vkllm_status record_step(vkllm_session *s, vkllm_chain *c, uint32_t M, tail t, const capture *cp)
{
    vkllm_status st = vkllm_chain_begin(c);
    if (!st) st = vkllm_chain_copy(c, &s->hparams, 0, &s->dparams, 0, s->params_in);
    if (!st) st = record_forward(s, c, M, cp);
    const uint32_t n_vocab = s->m->hp.n_vocab;
    if (!st && t == TAIL_ARGMAX) {
        vkllm_argmax_args aa = { V(s->a.logits, 0), V(s->dout, OUT_ARGMAX), V(s->argmax_scratch, 0), n_vocab, 1, n_vocab, "argmax" };
        st = vkllm_op_argmax(c, &aa);
    }
    if (!st && t == TAIL_TOPK) {
        vkllm_topk_args ta = { V(s->a.logits, 0), V(s->dout, OUT_TOPK_V), V(s->dout, OUT_TOPK_I), V(s->topk_scratch, 0),
                               n_vocab, 1, n_vocab, TOPK, "topk" };
        st = vkllm_op_topk(c, &ta);
    }
    if (!st) st = vkllm_chain_copy(c, &s->dout, 0, &s->hparams, s->params_in, OUT_SIZE);
    if (!st) st = vkllm_chain_end(c);
    return st;
}

static vkllm_status alloc_dev(vkllm_session *s, vkllm_buffer *b, uint64_t bytes)
{
    return vkllm_buffer_alloc(s->dev, VKLLM_MEM_DEVICE, bytes ? bytes : 4, b);
}

vkllm_status vkllm_session_create(vkllm_model *m, const vkllm_session_options *o, vkllm_session **out)
{
    if (!m || !out) return VKLLM_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    vkllm_device *dev = m->dev;
    const vkllm_phi3_hparams *hp = &m->hp;
    vkllm_session *s = calloc(1, sizeof *s);
    if (!s) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory creating a session");
    s->m = m;
    s->dev = dev;
    s->n_ctx = o && o->n_ctx ? o->n_ctx : hp->n_ctx_train;
    s->max_batch = o && o->max_batch ? o->max_batch : 512;
    s->timestamps = o ? o->timestamps : 0;
    {
        const int want = o ? o->act_q8 : 0;
        s->act_q8 = want >= 0 && dev->f.integer_dot && (want > 0 || dev->f.integer_dot_4x8_accel);
        /* VKLLM_ACT_Q8_GLOBAL=0/1 overrides the option (so `vkllm bench` can compare the two) */
        const char *env = getenv("VKLLM_ACT_Q8_GLOBAL");
        const int global = env && *env ? atoi(env) != 0 : (o ? o->act_q8_global >= 0 : 1);
        s->act_q8_global = s->act_q8 && global && vkllm_kernel_available("quant_q8");
        env = getenv("VKLLM_FUSE_ROPE");
        s->fuse_rope = s->act_q8_global && (env && *env ? atoi(env) != 0 : (o ? o->fuse_rope >= 0 : 1));
    }
    s->q_dim = hp->n_head * hp->head_dim;
    s->kv_dim = hp->n_head_kv * hp->head_dim;
    s->qkv_dim = s->q_dim + 2 * s->kv_dim;
    vkllm_status st = VKLLM_OK;
    if (s->n_ctx > hp->n_ctx_train)
        st = vkllm_fail(dev, VKLLM_ERROR_CONFIG, "context %u is larger than the model's %u tokens", s->n_ctx, hp->n_ctx_train);
    if (!st && (s->max_batch > 8192))
        st = vkllm_fail(dev, VKLLM_ERROR_CONFIG, "batch %u is larger than 8192", s->max_batch);
    s->k = calloc(hp->n_layer, sizeof *s->k);
    s->v = calloc(hp->n_layer, sizeof *s->v);
    if (!st && (!s->k || !s->v)) st = vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    uint64_t kvb = vkllm_kv_cache_bytes(hp->n_head_kv, s->n_ctx, hp->head_dim);
    for (uint32_t l = 0; l < hp->n_layer && !st; l++) {
        st = alloc_dev(s, &s->k[l], kvb);
        if (!st) st = alloc_dev(s, &s->v[l], kvb);
    }
    /* RoPE table for this context (LongRoPE factors depend on it) */
    if (!st) {
        float *factors = calloc(hp->n_rot / 2 + 1, sizeof *factors), *table = calloc(hp->n_rot + 2, sizeof *table);
        double *inv = calloc(hp->n_rot / 2 + 1, sizeof *inv);
        int has = 0;
        char err[512];
        if (!factors || !table || !inv) st = vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (!st && vkllm_phi3_rope_scaling(m->g, hp, s->n_ctx, factors, &has, &s->attn_factor, err, sizeof err))
            st = vkllm_fail(dev, VKLLM_ERROR_BAD_MODEL, "%s", err);
        if (!st) {
            vkllm_rope_inv_freq(inv, hp->n_rot, hp->rope_base, 1.0, has ? factors : NULL);
            vkllm_rope_table(table, inv, hp->n_rot / 2);
            st = alloc_dev(s, &s->table, (uint64_t)hp->n_rot * 4);
        }
        if (!st) st = vkllm_buffer_write(dev, &s->table, 0, table, (uint64_t)hp->n_rot * 4);
        free(factors);
        free(table);
        free(inv);
    }
    s->off_pos = r256(4ull * s->max_batch);
    s->off_len = s->off_pos + r256(4ull * s->max_batch);
    s->params_in = s->off_len + 256;
    if (!st) st = vkllm_buffer_alloc(dev, VKLLM_MEM_HOST, s->params_in + OUT_SIZE, &s->hparams);
    if (!st) st = alloc_dev(s, &s->dparams, s->params_in);
    if (!st) st = alloc_dev(s, &s->dout, OUT_SIZE);
    if (!st) st = vkllm_buffer_fill(dev, &s->dout, 0, OUT_SIZE, 0); /* the embedding's error words start at 0 */
    if (!st) memset(vkllm_buffer_map(&s->hparams), 0, s->params_in + OUT_SIZE);
    const uint64_t B = s->max_batch;
    if (!st) st = alloc_dev(s, &s->a.x, B * hp->n_embd * 4);
    if (!st) st = alloc_dev(s, &s->a.xmid, B * hp->n_embd * 4);
    if (!st) st = alloc_dev(s, &s->a.xn, B * hp->n_embd * 4);
    if (!st) st = alloc_dev(s, &s->a.qkv, B * s->qkv_dim * 4);
    if (!st) st = alloc_dev(s, &s->a.q, B * s->q_dim * 4);
    if (!st) st = alloc_dev(s, &s->a.attn, B * s->q_dim * 4);
    if (!st) st = alloc_dev(s, &s->a.gu, B * 2ull * hp->n_ff * 4);
    if (!st) st = alloc_dev(s, &s->a.act, B * hp->n_ff * 4);
    if (!st) st = alloc_dev(s, &s->a.logits, 4ull * hp->n_vocab);
    if (!st && s->act_q8_global) {
        uint64_t w = hp->n_embd > s->q_dim ? hp->n_embd : s->q_dim;
        if (hp->n_ff > w) w = hp->n_ff;
        st = alloc_dev(s, &s->a.xq, vkllm_q8_act_bytes((uint32_t)((w + 31) / 32 * 32), 1));
    }
    if (!st) st = alloc_dev(s, &s->attn_scratch, vkllm_attn_decode_scratch_bytes(1, hp->n_head, hp->head_dim, s->n_ctx, 0));
    /* the one-pass decode attention's counters start at zero; every call leaves them so */
    if (!st) st = vkllm_buffer_fill(dev, &s->attn_scratch, 0, vkllm_attn_decode_counter_bytes(1, hp->n_head), 0);
    if (!st) st = alloc_dev(s, &s->argmax_scratch, vkllm_argmax_scratch_bytes(hp->n_vocab, 1));
    if (!st) st = alloc_dev(s, &s->topk_scratch, vkllm_topk_scratch_bytes(hp->n_vocab, 1, TOPK));
    vkllm_chain_options co = { .timestamps = s->timestamps, .label = "decode" };
    if (!st) st = vkllm_chain_create(dev, &co, &s->decode_greedy);
    if (!st) st = record_step(s, s->decode_greedy, 1, TAIL_ARGMAX, NULL);
    if (st) {
        vkllm_session_destroy(s);
        return st;
    }
    *out = s;
    return VKLLM_OK;
}

void vkllm_session_destroy(vkllm_session *s)
{
    if (!s) return;
    vkllm_device *dev = s->dev;
    vkllm_chain_destroy(s->decode_greedy);
    vkllm_chain_destroy(s->decode_topk);
    for (int i = 0; i < MAX_PREFILL_CHAINS; i++) vkllm_chain_destroy(s->prefill[i].c);
    for (uint32_t l = 0; l < s->m->hp.n_layer; l++) {
        if (s->k) vkllm_buffer_free(dev, &s->k[l]);
        if (s->v) vkllm_buffer_free(dev, &s->v[l]);
    }
    free(s->k);
    free(s->v);
    vkllm_buffer *bufs[] = { &s->table, &s->hparams, &s->dparams, &s->dout, &s->a.x, &s->a.xmid, &s->a.xn, &s->a.qkv,
                             &s->a.q, &s->a.attn, &s->a.gu, &s->a.act, &s->a.logits, &s->a.xq, &s->attn_scratch,
                             &s->argmax_scratch, &s->topk_scratch };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) vkllm_buffer_free(dev, bufs[i]);
    free(s);
}

void vkllm_session_reset(vkllm_session *s)
{
    if (s) s->pos = 0;
}

vkllm_status vkllm_session_timings(vkllm_session *s, const vkllm_timing **t, uint32_t *n)
{
    if (!s || !t || !n) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (!s->timestamps || !s->last)
        return vkllm_fail(s->dev, VKLLM_ERROR_INVALID_ARGUMENT, "no timings: the session was created without timestamps or has not run");
    return vkllm_chain_timings(s->last, t, n);
}

vkllm_status vkllm_session_rewind(vkllm_session *s, uint32_t pos)
{
    if (!s) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (pos > s->pos)
        return vkllm_fail(s->dev, VKLLM_ERROR_OUT_OF_RANGE, "cannot rewind to position %u: only %u tokens are in the cache", pos,
                          s->pos);
    s->pos = pos;
    return VKLLM_OK;
}

void vkllm_session_host_time(vkllm_session *s, double *ns, uint64_t *steps, int reset)
{
    if (ns) *ns = s ? s->host_ns : 0;
    if (steps) *steps = s ? s->steps : 0;
    if (s && reset) {
        s->host_ns = 0;
        s->steps = 0;
    }
}

uint32_t vkllm_session_pos(const vkllm_session *s) { return s ? s->pos : 0; }
uint32_t vkllm_session_rope_fused(const vkllm_session *s) { return s ? s->rope_fused_layers : 0; }
int vkllm_session_act_q8(const vkllm_session *s) { return s && s->act_q8 ? 1 + (s->act_q8_global != 0) : 0; }
uint32_t vkllm_session_n_ctx(const vkllm_session *s) { return s ? s->n_ctx : 0; }
double vkllm_session_last_gpu_ns(const vkllm_session *s) { return s ? s->last_gpu_ns : 0; }

void vkllm_session_sizes(const vkllm_session *s, uint64_t *kv_bytes, uint64_t *scratch_bytes)
{
    if (kv_bytes) *kv_bytes = s ? vkllm_session_kv_estimate(&s->m->hp, s->n_ctx) : 0;
    if (scratch_bytes) *scratch_bytes = s ? vkllm_session_scratch_estimate(&s->m->hp, s->n_ctx, s->max_batch) : 0;
    if (scratch_bytes && s && s->act_q8_global) { /* the quantized-input buffer (a.xq), allocated only then */
        const vkllm_phi3_hparams *hp = &s->m->hp;
        uint64_t w = hp->n_embd > s->q_dim ? hp->n_embd : s->q_dim;
        if (hp->n_ff > w) w = hp->n_ff;
        *scratch_bytes += vkllm_q8_act_bytes((uint32_t)((w + 31) / 32 * 32), 1);
    }
}

static vkllm_status check_tokens(vkllm_session *s, const int32_t *tokens, uint32_t n)
{
    const uint32_t n_vocab = s->m->hp.n_vocab;
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= n_vocab)
            return vkllm_fail(s->dev, VKLLM_ERROR_INVALID_ARGUMENT, "token id %d (at %u) is outside the vocabulary [0, %u)",
                              tokens[i], i, n_vocab);
    if (n > s->n_ctx - s->pos)
        return vkllm_fail(s->dev, VKLLM_ERROR_OUT_OF_RANGE,
                          "context full: %u tokens in the cache + %u new > the session's context of %u tokens", s->pos, n,
                          s->n_ctx);
    return VKLLM_OK;
}

/* Writes ids/positions/length for tokens at positions pos .. pos+n-1. */
static void set_params(vkllm_session *s, const int32_t *tokens, uint32_t n)
{
    uint8_t *p = vkllm_buffer_map(&s->hparams);
    int32_t *ids = (int32_t *)p, *pos = (int32_t *)(p + s->off_pos);
    uint32_t *len = (uint32_t *)(p + s->off_len);
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = tokens[i];
        pos[i] = (int32_t)(s->pos + i);
    }
    *len = s->pos + n;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* t0: when the host started preparing this step (before writing the params). */
static vkllm_status run_chain(vkllm_session *s, vkllm_chain *c, double t0)
{
    vkllm_status st = vkllm_chain_submit(c);
    s->host_ns += now_ns() - t0;
    s->steps++;
    if (!st) st = vkllm_chain_wait(c, UINT64_MAX);
    if (st) return st;
    const uint32_t *status = (const uint32_t *)((uint8_t *)vkllm_buffer_map(&s->hparams) + s->params_in + OUT_STATUS);
    if (status[0])
        return vkllm_fail(s->dev, VKLLM_ERROR_INTERNAL, "the embedding kernel saw %u out-of-vocabulary id(s), e.g. %d",
                          status[0], (int32_t)status[1]);
    s->last_gpu_ns = 0;
    s->last = c;
    if (s->timestamps) {
        const vkllm_timing *t;
        uint32_t n;
        if (!vkllm_chain_timings(c, &t, &n)) s->last_gpu_ns = vkllm_chain_gpu_time_ns(c);
    }
    return VKLLM_OK;
}

static vkllm_status prefill_chain_for(vkllm_session *s, uint32_t M, vkllm_chain **out)
{
    prefill_chain *slot = NULL;
    for (int i = 0; i < MAX_PREFILL_CHAINS; i++)
        if (s->prefill[i].c && s->prefill[i].m == M) slot = &s->prefill[i];
    if (!slot) { /* record into a free or the least recently used slot */
        slot = &s->prefill[0];
        for (int i = 0; i < MAX_PREFILL_CHAINS; i++) {
            if (!s->prefill[i].c) { slot = &s->prefill[i]; break; }
            if (s->prefill[i].last_use < slot->last_use) slot = &s->prefill[i];
        }
        if (!slot->c) {
            vkllm_chain_options co = { .timestamps = s->timestamps, .label = "prefill" };
            vkllm_status st = vkllm_chain_create(s->dev, &co, &slot->c);
            if (st) return st;
        }
        slot->m = 0;
        vkllm_status st = record_step(s, slot->c, M, TAIL_NONE, NULL);
        if (st) return st;
        slot->m = M;
    }
    slot->last_use = ++s->uses;
    *out = slot->c;
    return VKLLM_OK;
}

vkllm_status vkllm_session_prefill(vkllm_session *s, const int32_t *tokens, uint32_t n, float *logits)
{
    if (!s || (!tokens && n)) return VKLLM_ERROR_INVALID_ARGUMENT;
    vkllm_status st = check_tokens(s, tokens, n);
    if (st) return st;
    for (uint32_t done = 0; done < n;) {
        uint32_t M = n - done < s->max_batch ? n - done : s->max_batch;
        vkllm_chain *c;
        if ((st = prefill_chain_for(s, M, &c))) return st;
        double t0 = now_ns();
        set_params(s, tokens + done, M);
        if ((st = run_chain(s, c, t0))) return st;
        s->pos += M;
        done += M;
    }
    if (logits && n) return vkllm_buffer_read(s->dev, &s->a.logits, 0, logits, 4ull * s->m->hp.n_vocab);
    return VKLLM_OK;
}

vkllm_status vkllm_session_decode(vkllm_session *s, int32_t token, vkllm_sampler *sampler, int32_t *next, float *logits)
{
    if (!s || !next) return VKLLM_ERROR_INVALID_ARGUMENT;
    vkllm_status st = check_tokens(s, &token, 1);
    if (st) return st;
    const uint32_t n_vocab = s->m->hp.n_vocab;
    int full = logits || (sampler && vkllm_sampler_needs_full_logits(sampler));
    uint32_t k = sampler ? vkllm_sampler_top_k(sampler) : 1;
    int use_topk = !full && k != 1;
    if (use_topk && (k == 0 || k > TOPK)) {
        full = 1;
        use_topk = 0;
    }
    vkllm_chain *c = s->decode_greedy;
    if (use_topk) {
        if (!s->decode_topk) {
            vkllm_chain_options co = { .timestamps = s->timestamps, .label = "decode top-k" };
            if ((st = vkllm_chain_create(s->dev, &co, &s->decode_topk))) return st;
            if ((st = record_step(s, s->decode_topk, 1, TAIL_TOPK, NULL))) {
                vkllm_chain_destroy(s->decode_topk);
                s->decode_topk = NULL;
                return st;
            }
        }
        c = s->decode_topk;
    }
    double t0 = now_ns();
    set_params(s, &token, 1);
    if ((st = run_chain(s, c, t0))) return st;
    s->pos++;
    const uint8_t *out = (const uint8_t *)vkllm_buffer_map(&s->hparams) + s->params_in;
    if (!full && !use_topk) {
        *next = (int32_t) * (const uint32_t *)(out + OUT_ARGMAX);
        return VKLLM_OK;
    }
    vkllm_candidate *cand = malloc((full ? n_vocab : TOPK) * sizeof *cand);
    float *lg = logits ? logits : (full ? malloc(4ull * n_vocab) : NULL);
    if (!cand || (full && !lg)) st = vkllm_fail(s->dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory sampling");
    size_t nc = 0;
    if (!st && full) {
        st = vkllm_buffer_read(s->dev, &s->a.logits, 0, lg, 4ull * n_vocab);
        for (uint32_t i = 0; i < n_vocab && !st; i++) cand[nc++] = (vkllm_candidate){ lg[i], (int32_t)i };
    } else if (!st) {
        const float *vals = (const float *)(out + OUT_TOPK_V);
        const uint32_t *idx = (const uint32_t *)(out + OUT_TOPK_I);
        for (uint32_t i = 0; i < TOPK && i < n_vocab; i++) cand[nc++] = (vkllm_candidate){ vals[i], (int32_t)idx[i] };
    }
    if (!st) {
        if (sampler) {
            vkllm_status ss = vkllm_sampler_sample(sampler, cand, nc, next);
            if (ss == VKLLM_ERROR_OUT_OF_RANGE)
                st = vkllm_fail(s->dev, VKLLM_ERROR_INTERNAL, "every logit is NaN or infinite at position %u", s->pos - 1);
            else if (ss)
                st = vkllm_fail(s->dev, ss, "sampling failed");
        } else {
            *next = (int32_t) * (const uint32_t *)(out + OUT_ARGMAX);
        }
    }
    free(cand);
    if (lg != logits) free(lg);
    return st;
}

/* ---- checkpoints for validation ---- */

static void capture_free(vkllm_session *s, capture *cp)
{
    if (cp->b)
        for (uint32_t i = 0; i < s->m->hp.n_layer * CP_PER_LAYER; i++) vkllm_buffer_free(s->dev, &cp->b[i]);
    free(cp->b);
    vkllm_buffer_free(s->dev, &cp->output_norm);
    vkllm_buffer_free(s->dev, &cp->logits);
}

vkllm_status vkllm_session_capture(vkllm_session *s, const int32_t *tokens, uint32_t n, int as_prefill, vkllm_checkpoint_cb cb,
                                   void *user)
{
    if (!s || !tokens || !n || !cb) return VKLLM_ERROR_INVALID_ARGUMENT;
    vkllm_device *dev = s->dev;
    const vkllm_phi3_hparams *hp = &s->m->hp;
    vkllm_session_reset(s);
    vkllm_status st = check_tokens(s, tokens, n);
    if (st) return st;
    if (as_prefill && n > s->max_batch)
        return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "capture: %u tokens exceed the batch of %u", n, s->max_batch);
    const uint32_t R = as_prefill ? n : 1, NL = hp->n_layer;
    capture cp = { .rows = R };
    cp.b = calloc((size_t)NL * CP_PER_LAYER, sizeof *cp.b);
    /* host copies of every checkpoint, [n][width] */
    float **host = calloc((size_t)NL * CP_PER_LAYER + 2, sizeof *host);
    if (!cp.b || !host) st = vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t i = 0; i < NL * CP_PER_LAYER && !st; i++) {
        uint32_t w = cp_width(s, (int)(i % CP_PER_LAYER));
        st = alloc_dev(s, &cp.b[i], 4ull * R * w);
        if (!st && !(host[i] = malloc(4ull * n * w))) st = vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    float **h_on = &host[NL * CP_PER_LAYER], **h_lg = &host[NL * CP_PER_LAYER + 1];
    if (!st) st = alloc_dev(s, &cp.output_norm, 4ull * R * hp->n_embd);
    if (!st) st = alloc_dev(s, &cp.logits, 4ull * R * hp->n_vocab);
    if (!st && (!(*h_on = malloc(4ull * n * hp->n_embd)) || !(*h_lg = malloc(4ull * n * hp->n_vocab))))
        st = vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkllm_chain *c = NULL;
    if (!st) st = vkllm_chain_create(dev, NULL, &c);
    if (!st) st = record_step(s, c, R, TAIL_NONE, &cp);
    for (uint32_t step = 0; step < n && !st; step += R) {
        set_params(s, tokens + step, R);
        if ((st = run_chain(s, c, now_ns()))) break;
        s->pos += R;
        for (uint32_t i = 0; i < NL * CP_PER_LAYER && !st; i++) {
            uint32_t w = cp_width(s, (int)(i % CP_PER_LAYER));
            st = vkllm_buffer_read(dev, &cp.b[i], 0, host[i] + (size_t)step * w, 4ull * R * w);
        }
        if (!st) st = vkllm_buffer_read(dev, &cp.output_norm, 0, *h_on + (size_t)step * hp->n_embd, 4ull * R * hp->n_embd);
        if (!st) st = vkllm_buffer_read(dev, &cp.logits, 0, *h_lg + (size_t)step * hp->n_vocab, 4ull * R * hp->n_vocab);
    }
    /* k and v after the run, from the caches: fp16 [n_kv][ctx][hd] -> float [n][n_kv * hd] */
    uint16_t *raw = NULL;
    float *kv = NULL;
    if (!st) {
        raw = malloc(2ull * s->kv_dim * n);
        kv = malloc(4ull * s->kv_dim * n);
        if (!raw || !kv) st = vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    for (uint32_t l = 0; l < NL && !st; l++) {
        for (int which = 0; which < 2 && !st; which++) {
            vkllm_buffer *cache = which ? &s->v[l] : &s->k[l];
            for (uint32_t h = 0; h < hp->n_head_kv && !st; h++)
                st = vkllm_buffer_read(dev, cache, 2ull * h * s->n_ctx * hp->head_dim, raw + (size_t)h * n * hp->head_dim,
                                       2ull * n * hp->head_dim);
            if (st) break;
            for (uint32_t t = 0; t < n; t++)
                for (uint32_t h = 0; h < hp->n_head_kv; h++)
                    for (uint32_t e = 0; e < hp->head_dim; e++)
                        kv[(size_t)t * s->kv_dim + h * hp->head_dim + e] =
                            vkllm_fp16_to_fp32(raw[((size_t)h * n + t) * hp->head_dim + e]);
            if (which == 0) {
                for (int i = CP_ATTN_NORM; i <= CP_Q; i++)
                    cb(user, (int)l, cp_names[i], host[l * CP_PER_LAYER + i], n, cp_width(s, i));
                cb(user, (int)l, "k", kv, n, s->kv_dim);
            } else {
                cb(user, (int)l, "v", kv, n, s->kv_dim);
                for (int i = CP_ATTN; i < CP_PER_LAYER; i++)
                    cb(user, (int)l, cp_names[i], host[l * CP_PER_LAYER + i], n, cp_width(s, i));
            }
        }
    }
    if (!st) {
        cb(user, -1, "output_norm", *h_on, n, hp->n_embd);
        cb(user, -1, "logits", *h_lg, n, hp->n_vocab);
    }
    free(raw);
    free(kv);
    vkllm_chain_destroy(c);
    capture_free(s, &cp);
    if (host)
        for (uint32_t i = 0; i < NL * CP_PER_LAYER + 2; i++) free(host[i]);
    free(host);
    return st;
}

const char *vkllm_session_error(const vkllm_session *s) { return s ? vkllm_device_error(s->dev) : "no session"; }

vkllm_status vkllm_session_set_profiling(vkllm_session *s, int on)
{
    if (!s) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (on < 0) on = 0;
    if (on == s->timestamps) return VKLLM_OK; /* any other mode (VKLLM_STAMPS_*) is checked by the chain */
    if (on && s->dev->f.timestamp_period_ns <= 0)
        return vkllm_fail(s->dev, VKLLM_ERROR_UNSUPPORTED, "profiling: the queue of '%s' has no timestamps", s->dev->f.name);
    /* Timestamp queries are recorded into the chains: record them again (the cache is untouched). */
    vkllm_chain_options co = { .timestamps = on, .label = "decode" };
    vkllm_chain *c = NULL;
    vkllm_status st = vkllm_chain_create(s->dev, &co, &c);
    int was = s->timestamps;
    s->timestamps = on;
    if (!st) st = record_step(s, c, 1, TAIL_ARGMAX, NULL);
    if (st) {
        s->timestamps = was;
        vkllm_chain_destroy(c);
        return st;
    }
    vkllm_chain_destroy(s->decode_greedy);
    s->decode_greedy = c;
    vkllm_chain_destroy(s->decode_topk); /* recorded again at its next use */
    s->decode_topk = NULL;
    for (int i = 0; i < MAX_PREFILL_CHAINS; i++) {
        vkllm_chain_destroy(s->prefill[i].c);
        s->prefill[i].c = NULL;
        s->prefill[i].m = 0;
    }
    s->last = NULL;
    s->last_gpu_ns = 0;
    return VKLLM_OK;
}
