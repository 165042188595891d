/* CPU reference of the phi3 forward pass; see vkllm/ref_model.h. Reads top to bottom like the math. */
#include "vkllm/ref_model.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkllm/quant.h"
#include "vkllm/ref.h"

const char *const vkllm_ref_layer_checkpoints[VKLLM_REF_N_LAYER_CHECKPOINTS] = {
    "attn_norm", "q", "k", "v", "attn", "attn_out", "ffn_norm", "ffn_act", "ffn_out", "out",
};
const char *const vkllm_ref_final_checkpoints[VKLLM_REF_N_FINAL_CHECKPOINTS] = { "output_norm", "logits" };

/* Shapes: E = n_embd, Q = n_head * head_dim, KV = n_head_kv * head_dim, F = n_ff, V = n_vocab,
 * C = n_ctx (cache length). Matrices are (rows, columns), row-major, as GGUF stores them. */
typedef struct ref_layer {
    float *attn_norm;   /* (E) */
    float *wqkv;        /* (Q + 2 KV, E): q rows, k rows, v rows */
    float *wo;          /* (E, Q) */
    float *ffn_norm;    /* (E) */
    float *wup;         /* (2 F, E): gate rows, then up rows */
    float *wdown;       /* (E, F) */
    float *k_cache;     /* (C, KV) keys after RoPE */
    float *v_cache;     /* (C, KV) */
    int q8_qkv, q8_o, q8_up, q8_down; /* act_q8: the weight's type takes 8-bit inputs */
} ref_layer;

struct vkllm_ref_model {
    vkllm_phi3_hparams hp;
    uint32_t n_ctx;           /* cache length */
    uint32_t n_filled;        /* positions 0 .. n_filled-1 hold valid K/V */
    uint32_t window;          /* sliding window in positions; 0 = none */
    float *token_embd;        /* (V, E) */
    float *output_norm;       /* (E) */
    float *output;            /* (V, E); == token_embd when the file ties them */
    int output_tied;
    int act_q8, q8_output;
    ref_layer *layer;         /* (n_layer) */
    double *inv_freq;         /* (n_rot / 2) RoPE inverse frequencies, LongRoPE factors applied */
    float attn_factor;        /* multiplies RoPE's cos and sin (LongRoPE) */
    uint64_t bytes;           /* weights + cache */
    char err[512];
};

static vkllm_status fail(char *err, size_t n, vkllm_status s, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* ------------------------------------------------------------------------------------------------
 * Loading */

/* A float copy of tensor t (n elements), or NULL when out of memory. */
/* The weight types whose decode mat-vec takes 8-bit activations (vkllm_op_matvec_q8). */
static int q8_type(vkllm_dtype t)
{
    return t == VKLLM_DTYPE_Q4_K || t == VKLLM_DTYPE_Q5_K || t == VKLLM_DTYPE_Q6_K || t == VKLLM_DTYPE_Q8_0 ||
           t == VKLLM_DTYPE_Q4_0;
}

static float *dequant(const vkllm_gguf_tensor *t)
{
    float *w = malloc((size_t)t->n_elems * sizeof(float));
    if (w) vkllm_dequantize(t->type, t->data, w, (size_t)t->n_elems);
    return w;
}

vkllm_status vkllm_ref_model_create(vkllm_gguf *g, const vkllm_phi3_hparams *hp, const vkllm_ref_model_options *opt,
                                    vkllm_ref_model **out, char *err, size_t err_size)
{
    if (out) *out = NULL;
    if (!g || !hp || !out) return fail(err, err_size, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_ref_model_create: NULL argument");
    vkllm_ref_model_options o = { 0, 0, 0, 0 };
    if (opt) o = *opt;
    if (!o.n_ctx) o.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (!o.max_bytes) o.max_bytes = 8ull << 30;
    if (o.n_ctx > (1u << 24))
        return fail(err, err_size, VKLLM_ERROR_CONFIG, "context of %" PRIu32 " tokens: at most 16777216", o.n_ctx);

    vkllm_phi3_tensors t;
    vkllm_status s = vkllm_phi3_check_tensors(g, hp, &t, err, err_size);
    if (s != VKLLM_OK) return s;

    /* What the model will hold, in floats; hparams are range-checked so this cannot overflow. */
    const uint64_t E = hp->n_embd, Q = vkllm_phi3_q_dim(hp), KV = vkllm_phi3_kv_dim(hp), F = hp->n_ff;
    const uint64_t V = hp->n_vocab;
    uint64_t per_layer = 2 * E + (Q + 2 * KV) * E + E * Q + 2 * F * E + E * F + 2 * (uint64_t)o.n_ctx * KV;
    uint64_t floats = V * E * (t.output_tied ? 1 : 2) + E + per_layer * hp->n_layer;
    uint64_t bytes = floats * sizeof(float);
    if (bytes > o.max_bytes) {
        vkllm_phi3_tensors_free(&t);
        return fail(err, err_size, VKLLM_ERROR_TOO_LARGE,
                    "the CPU reference needs %.1f MiB for float32 weights and a %" PRIu32
                    "-token cache, more than the cap of %.1f MiB: use a smaller model, a shorter context, or a larger cap",
                    (double)bytes / (1 << 20), o.n_ctx, (double)o.max_bytes / (1 << 20));
    }

    vkllm_ref_model *m = calloc(1, sizeof *m);
    if (!m) {
        vkllm_phi3_tensors_free(&t);
        return fail(err, err_size, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory");
    }
    m->hp = *hp;
    m->n_ctx = o.n_ctx;
    m->window = o.no_sliding_window ? 0 : hp->sliding_window;
    m->bytes = bytes;
    m->output_tied = t.output_tied;
    m->act_q8 = o.act_q8 != 0;
    m->q8_output = q8_type(t.output->type);
    m->layer = calloc(hp->n_layer, sizeof *m->layer);
    m->inv_freq = calloc(hp->n_rot / 2, sizeof *m->inv_freq);
    float *factors = calloc(hp->n_rot / 2, sizeof *factors);
    int ok = m->layer && m->inv_freq && factors;
    ok = ok && (m->token_embd = dequant(t.token_embd)) && (m->output_norm = dequant(t.output_norm));
    if (ok) m->output = t.output_tied ? m->token_embd : dequant(t.output);
    ok = ok && m->output;
    for (uint32_t l = 0; ok && l < hp->n_layer; l++) {
        ref_layer *L = &m->layer[l];
        ok = (L->attn_norm = dequant(t.layer[l].attn_norm)) && (L->wqkv = dequant(t.layer[l].attn_qkv)) &&
             (L->wo = dequant(t.layer[l].attn_output)) && (L->ffn_norm = dequant(t.layer[l].ffn_norm)) &&
             (L->wup = dequant(t.layer[l].ffn_up)) && (L->wdown = dequant(t.layer[l].ffn_down)) &&
             (L->k_cache = calloc((size_t)o.n_ctx * KV, sizeof(float))) &&
             (L->v_cache = calloc((size_t)o.n_ctx * KV, sizeof(float)));
        L->q8_qkv = q8_type(t.layer[l].attn_qkv->type);
        L->q8_o = q8_type(t.layer[l].attn_output->type);
        L->q8_up = q8_type(t.layer[l].ffn_up->type);
        /* the runtime keeps ffn_down on float inputs unless act_q8_global (runtime/session.c) */
        L->q8_down = o.act_q8 == 2 && q8_type(t.layer[l].ffn_down->type);
    }
    vkllm_phi3_tensors_free(&t);
    if (!ok) {
        free(factors);
        vkllm_ref_model_destroy(m);
        return fail(err, err_size, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory loading %.2f GiB of weights and cache",
                    (double)bytes / (1 << 30));
    }

    int has_factors = 0;
    s = vkllm_phi3_rope_scaling(g, hp, o.n_ctx, factors, &has_factors, &m->attn_factor, err, err_size);
    if (s != VKLLM_OK) {
        free(factors);
        vkllm_ref_model_destroy(m);
        return s;
    }
    /* Phi-3 RoPE has no linear frequency scaling: freq_scale = 1. */
    vkllm_rope_inv_freq(m->inv_freq, hp->n_rot, hp->rope_base, 1.0, has_factors ? factors : NULL);
    free(factors);
    *out = m;
    return VKLLM_OK;
}

void vkllm_ref_model_destroy(vkllm_ref_model *m)
{
    if (!m) return;
    for (uint32_t l = 0; m->layer && l < m->hp.n_layer; l++) {
        ref_layer *L = &m->layer[l];
        free(L->attn_norm); free(L->wqkv); free(L->wo); free(L->ffn_norm); free(L->wup); free(L->wdown);
        free(L->k_cache); free(L->v_cache);
    }
    free(m->layer);
    if (!m->output_tied) free(m->output);
    free(m->token_embd);
    free(m->output_norm);
    free(m->inv_freq);
    free(m);
}

const char *vkllm_ref_model_error(const vkllm_ref_model *m) { return m ? m->err : "NULL model"; }
const vkllm_phi3_hparams *vkllm_ref_model_hparams(const vkllm_ref_model *m) { return &m->hp; }
uint32_t vkllm_ref_model_n_ctx(const vkllm_ref_model *m) { return m->n_ctx; }
uint64_t vkllm_ref_model_bytes(const vkllm_ref_model *m) { return m->bytes; }

/* ------------------------------------------------------------------------------------------------
 * The pieces of the forward pass */

/* y (T, rows) = x (T, cols) · W^T, W (rows, cols). */
static void matmul(float *y, const float *x, const float *w, uint32_t T, uint64_t rows, uint64_t cols)
{
    for (uint32_t t = 0; t < T; t++)
        for (uint64_t r = 0; r < rows; r++) {
            const float *wr = w + r * cols, *xt = x + (size_t)t * cols;
            double acc = 0;
            for (uint64_t c = 0; c < cols; c++) acc += (double)wr[c] * xt[c];
            y[(size_t)t * rows + r] = (float)acc;
        }
}

/* matmul, the input rows first rounded to 8 bits per 32 elements when `round` (act_q8 mode); tmp
 * holds T * cols floats. */
static void matmul_in(float *y, const float *x, const float *w, uint32_t T, uint64_t rows, uint64_t cols, int round,
                      float *tmp)
{
    if (!round || cols % 32) {
        matmul(y, x, w, T, rows, cols);
        return;
    }
    int8_t q[32];
    float d;
    for (size_t i = 0; i < (size_t)T * cols; i += 32) {
        vkllm_ref_quantize_q8_act(x + i, 32, q, &d);
        for (int j = 0; j < 32; j++) tmp[i + j] = (float)q[j] * d;
    }
    matmul(y, tmp, w, T, rows, cols);
}

static double silu(double x) { return x / (1.0 + exp(-x)); }

/* Attention of one token at position p, all heads: out (Q) from q (Q) over cache positions
 * max(0, p+1-window) .. p. Query head h reads kv head h / (n_head / n_head_kv) (GQA). */
static void attend(const vkllm_ref_model *m, const ref_layer *L, const float *q, uint32_t p, float *out,
                   double *score /* (n_ctx) */)
{
    const vkllm_phi3_hparams *hp = &m->hp;
    const uint32_t D = hp->head_dim, KV = vkllm_phi3_kv_dim(hp), group = hp->n_head / hp->n_head_kv;
    const uint32_t lo = m->window && p + 1 > m->window ? p + 1 - m->window : 0;
    const double scale = 1.0 / sqrt((double)D);
    for (uint32_t h = 0; h < hp->n_head; h++) {
        const float *qh = q + (size_t)h * D;         /* (D) */
        const uint32_t kvh = h / group;
        double max = -INFINITY;
        for (uint32_t j = lo; j <= p; j++) {
            const float *kj = L->k_cache + (size_t)j * KV + (size_t)kvh * D; /* (D) */
            double dot = 0;
            for (uint32_t d = 0; d < D; d++) dot += (double)qh[d] * kj[d];
            score[j] = dot * scale;
            if (score[j] > max) max = score[j];
        }
        double sum = 0;
        for (uint32_t j = lo; j <= p; j++) sum += score[j] = exp(score[j] - max);
        for (uint32_t d = 0; d < D; d++) {
            double acc = 0;
            for (uint32_t j = lo; j <= p; j++) acc += score[j] * L->v_cache[(size_t)j * KV + (size_t)kvh * D + d];
            out[(size_t)h * D + d] = (float)(acc / sum);
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Forward */

typedef struct scratch {
    float *x;        /* (T, E) residual stream */
    float *xn;       /* (T, E) normalized input of a sub-block */
    float *qkv;      /* (T, Q + 2 KV) */
    float *q;        /* (T, Q) after RoPE */
    float *k;        /* (T, KV) after RoPE */
    float *v;        /* (T, KV) */
    float *att;      /* (T, Q) attention output before the O matrix */
    float *proj;     /* (T, E) output of the O or down matrix */
    float *gu;       /* (T, 2 F) gate then up */
    float *act;      /* (T, F) silu(gate) * up */
    float *logits;   /* (T, V) */
    float *rq;       /* (T, max(E, Q, F)) inputs rounded to 8 bits (act_q8) */
    double *score;   /* (C) */
    int32_t *pos;    /* (T) */
} scratch;

static void scratch_free(scratch *s)
{
    free(s->x); free(s->xn); free(s->qkv); free(s->q); free(s->k); free(s->v); free(s->att); free(s->proj);
    free(s->gu); free(s->act); free(s->logits); free(s->rq); free(s->score); free(s->pos);
}

static int scratch_alloc(scratch *s, const vkllm_ref_model *m, uint32_t T, uint32_t logit_rows)
{
    const vkllm_phi3_hparams *hp = &m->hp;
    const size_t E = hp->n_embd, Q = vkllm_phi3_q_dim(hp), KV = vkllm_phi3_kv_dim(hp), F = hp->n_ff;
    memset(s, 0, sizeof *s);
    s->x = malloc(T * E * sizeof(float));
    s->xn = malloc(T * E * sizeof(float));
    s->qkv = malloc(T * (Q + 2 * KV) * sizeof(float));
    s->q = malloc(T * Q * sizeof(float));
    s->k = malloc(T * KV * sizeof(float));
    s->v = malloc(T * KV * sizeof(float));
    s->att = malloc(T * Q * sizeof(float));
    s->proj = malloc(T * E * sizeof(float));
    s->gu = malloc(T * 2 * F * sizeof(float));
    s->act = malloc(T * F * sizeof(float));
    s->logits = malloc((size_t)logit_rows * hp->n_vocab * sizeof(float));
    s->score = malloc(m->n_ctx * sizeof(double));
    s->pos = malloc(T * sizeof(int32_t));
    const size_t W = E > Q ? (E > F ? E : F) : (Q > F ? Q : F);
    s->rq = malloc(T * W * sizeof(float));
    return s->x && s->xn && s->qkv && s->q && s->k && s->v && s->att && s->proj && s->gu && s->act && s->logits &&
           s->rq && s->score && s->pos;
}

vkllm_status vkllm_ref_model_forward(vkllm_ref_model *m, const int32_t *tokens, uint32_t n_tok, uint32_t pos0,
                                     float *logits, int all_logits, vkllm_ref_checkpoint_fn cb, void *user)
{
    if (!m) return VKLLM_ERROR_INVALID_ARGUMENT;
    m->err[0] = 0;
    if (!tokens || !n_tok)
        return fail(m->err, sizeof m->err, VKLLM_ERROR_INVALID_ARGUMENT, "forward: no tokens");
    if (pos0 > m->n_filled || (uint64_t)pos0 + n_tok > m->n_ctx)
        return fail(m->err, sizeof m->err, VKLLM_ERROR_OUT_OF_RANGE,
                    "forward: positions %" PRIu32 "..%" PRIu64 " with %" PRIu32 " filled of a %" PRIu32
                    "-token cache: the start may not skip unfilled positions and the end must fit",
                    pos0, (uint64_t)pos0 + n_tok - 1, m->n_filled, m->n_ctx);
    const vkllm_phi3_hparams *hp = &m->hp;
    for (uint32_t t = 0; t < n_tok; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab)
            return fail(m->err, sizeof m->err, VKLLM_ERROR_INVALID_ARGUMENT,
                        "forward: token %" PRIu32 " = %" PRId32 " is outside the vocabulary [0, %" PRIu32 ")", t,
                        tokens[t], hp->n_vocab);

    const uint32_t T = n_tok, E = hp->n_embd, Q = vkllm_phi3_q_dim(hp), KV = vkllm_phi3_kv_dim(hp), F = hp->n_ff;
    const uint32_t V = hp->n_vocab, QKV = Q + 2 * KV;
    /* every row's logits when someone looks at them, else only the last token's */
    const uint32_t logit_rows = (cb || all_logits) ? T : 1;
    const int rq = m->act_q8 && T == 1; /* the runtime's decode step: one token */
    scratch s;
    if (!scratch_alloc(&s, m, T, logit_rows)) {
        scratch_free(&s);
        return fail(m->err, sizeof m->err, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "forward: out of memory for %" PRIu32 " tokens", T);
    }
#define CHECKPOINT(layer, name, data, width) do { if (cb) cb(user, (layer), (name), (data), T, (width)); } while (0)

    for (uint32_t t = 0; t < T; t++) {
        s.pos[t] = (int32_t)(pos0 + t);
        memcpy(s.x + (size_t)t * E, m->token_embd + (size_t)tokens[t] * E, E * sizeof(float));
    }
    const vkllm_rope_params rope_q = { T, hp->n_head, hp->head_dim, hp->n_rot, Q, hp->head_dim, Q, hp->head_dim, 1,
                                       m->attn_factor };
    const vkllm_rope_params rope_k = { T, hp->n_head_kv, hp->head_dim, hp->n_rot, KV, hp->head_dim, KV, hp->head_dim, 1,
                                       m->attn_factor };

    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const ref_layer *L = &m->layer[l];
        const int li = (int)l;

        /* attention block */
        vkllm_ref_rmsnorm(s.x, L->attn_norm, s.xn, E, T, E, E, hp->rms_eps);
        CHECKPOINT(li, "attn_norm", s.xn, E);
        matmul_in(s.qkv, s.xn, L->wqkv, T, QKV, E, rq && L->q8_qkv, s.rq);
        for (uint32_t t = 0; t < T; t++) {
            const float *row = s.qkv + (size_t)t * QKV;
            memcpy(s.q + (size_t)t * Q, row, Q * sizeof(float));
            memcpy(s.k + (size_t)t * KV, row + Q, KV * sizeof(float));
            memcpy(s.v + (size_t)t * KV, row + Q + KV, KV * sizeof(float));
        }
        vkllm_ref_rope(&rope_q, s.q, s.q, s.pos, m->inv_freq);
        vkllm_ref_rope(&rope_k, s.k, s.k, s.pos, m->inv_freq);
        CHECKPOINT(li, "q", s.q, Q);
        CHECKPOINT(li, "k", s.k, KV);
        CHECKPOINT(li, "v", s.v, KV);
        memcpy(L->k_cache + (size_t)pos0 * KV, s.k, (size_t)T * KV * sizeof(float));
        memcpy(L->v_cache + (size_t)pos0 * KV, s.v, (size_t)T * KV * sizeof(float));
        for (uint32_t t = 0; t < T; t++) attend(m, L, s.q + (size_t)t * Q, pos0 + t, s.att + (size_t)t * Q, s.score);
        CHECKPOINT(li, "attn", s.att, Q);
        matmul_in(s.proj, s.att, L->wo, T, E, Q, rq && L->q8_o, s.rq);
        CHECKPOINT(li, "attn_out", s.proj, E);
        for (size_t i = 0; i < (size_t)T * E; i++) s.x[i] += s.proj[i];

        /* feed-forward block */
        vkllm_ref_rmsnorm(s.x, L->ffn_norm, s.xn, E, T, E, E, hp->rms_eps);
        CHECKPOINT(li, "ffn_norm", s.xn, E);
        matmul_in(s.gu, s.xn, L->wup, T, 2 * (uint64_t)F, E, rq && L->q8_up, s.rq);
        for (uint32_t t = 0; t < T; t++) {
            const float *gate = s.gu + (size_t)t * 2 * F, *up = gate + F;
            for (uint32_t i = 0; i < F; i++) s.act[(size_t)t * F + i] = (float)(silu(gate[i]) * up[i]);
        }
        CHECKPOINT(li, "ffn_act", s.act, F);
        matmul_in(s.proj, s.act, L->wdown, T, E, F, rq && L->q8_down, s.rq);
        CHECKPOINT(li, "ffn_out", s.proj, E);
        for (size_t i = 0; i < (size_t)T * E; i++) s.x[i] += s.proj[i];
        CHECKPOINT(li, "out", s.x, E);
    }
    m->n_filled = pos0 + T;

    vkllm_ref_rmsnorm(s.x, m->output_norm, s.xn, E, T, E, E, hp->rms_eps);
    CHECKPOINT(-1, "output_norm", s.xn, E);
    const float *last = s.xn + (size_t)(T - logit_rows) * E;
    matmul_in(s.logits, last, m->output, logit_rows, V, E, rq && m->q8_output, s.rq);
    CHECKPOINT(-1, "logits", s.logits, V);
#undef CHECKPOINT
    if (logits) {
        if (all_logits) memcpy(logits, s.logits, (size_t)T * V * sizeof(float));
        else memcpy(logits, s.logits + (size_t)(logit_rows - 1) * V, (size_t)V * sizeof(float));
    }
    scratch_free(&s);
    return VKLLM_OK;
}

static int32_t argmax(const float *x, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

vkllm_status vkllm_ref_model_generate_greedy(vkllm_ref_model *m, const int32_t *prompt, uint32_t n_prompt,
                                             uint32_t n_gen, int32_t *out_tokens)
{
    if (!m) return VKLLM_ERROR_INVALID_ARGUMENT;
    if (!prompt || !n_prompt || (n_gen && !out_tokens))
        return fail(m->err, sizeof m->err, VKLLM_ERROR_INVALID_ARGUMENT, "generate: empty prompt or NULL output");
    if (!n_gen) return VKLLM_OK;
    if ((uint64_t)n_prompt + n_gen - 1 > m->n_ctx)
        return fail(m->err, sizeof m->err, VKLLM_ERROR_OUT_OF_RANGE,
                    "generate: %" PRIu32 " prompt + %" PRIu32 " generated tokens do not fit a %" PRIu32 "-token cache",
                    n_prompt, n_gen, m->n_ctx);
    float *logits = malloc((size_t)m->hp.n_vocab * sizeof(float));
    if (!logits) return fail(m->err, sizeof m->err, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "generate: out of memory");
    vkllm_status s = vkllm_ref_model_forward(m, prompt, n_prompt, 0, logits, 0, NULL, NULL);
    for (uint32_t i = 0; s == VKLLM_OK && i < n_gen; i++) {
        out_tokens[i] = argmax(logits, m->hp.n_vocab);
        if (i + 1 < n_gen) s = vkllm_ref_model_forward(m, &out_tokens[i], 1, n_prompt + i, logits, 0, NULL, NULL);
    }
    free(logits);
    return s;
}
