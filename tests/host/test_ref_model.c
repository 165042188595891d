/* CPU reference model: a prefill of T tokens gives the logits of T single-token steps; GQA and the
 * sliding window checked exactly with a window of 1 (attention then returns the token's own V head);
 * a window changes exactly the rows that reach past it; checkpoints arrive complete and consistent;
 * greedy decoding is deterministic; RAM cap, bad tokens and bad positions are refused. */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vkllm/gguf.h"
#include "vkllm/quant.h"
#include "vkllm/mkmodel.h"
#include "vkllm/phi3.h"
#include "vkllm/ref.h"
#include "vkllm/ref_model.h"

#define OK(x) do { vkllm_status s_ = (x); if (s_ != VKLLM_OK) fail_msg("%s -> %s", #x, vkllm_strerror(s_)); } while (0)

static char tmpdir[256];
enum { M_GQA, M_WINDOW3, M_WINDOW1, M_COUNT };
static char paths[M_COUNT][320];

static vkllm_mkmodel_config config(int which)
{
    vkllm_mkmodel_config c;
    vkllm_mkmodel_preset("tiny", &c);
    c.n_layer = 2;
    c.n_embd = 64;
    c.n_head = 4;
    c.n_head_kv = 2; /* GQA: two query heads per kv head */
    c.n_ff = 96;
    c.n_merges = 16;
    c.n_vocab = 320;
    c.n_ctx = 256;
    c.ftype = VKLLM_MKMODEL_Q8_0;
    c.threads = 1;
    c.seed = 7 + (uint64_t)which;
    c.sliding_window = which == M_WINDOW3 ? 3 : which == M_WINDOW1 ? 1 : 0;
    return c;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vkllm_test_ref_model_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    for (int i = 0; i < M_COUNT; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/m%d.gguf", tmpdir, i);
        vkllm_mkmodel_config c = config(i);
        char err[512];
        if (vkllm_mkmodel_write(&c, paths[i], NULL, err, sizeof err) != VKLLM_OK) {
            fprintf(stderr, "mkmodel: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < M_COUNT; i++) unlink(paths[i]);
    rmdir(tmpdir);
    return 0;
}

static vkllm_ref_model *load(int which, const vkllm_ref_model_options *opt)
{
    char err[512];
    vkllm_gguf *g;
    vkllm_phi3_hparams hp;
    vkllm_ref_model *m;
    if (vkllm_gguf_open(paths[which], &g, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    if (vkllm_phi3_read_hparams(g, &hp, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    if (vkllm_ref_model_create(g, &hp, opt, &m, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    vkllm_gguf_close(g); /* the model owns float copies */
    return m;
}

static void random_tokens(tu_rng *r, int32_t *tok, uint32_t n, uint32_t n_vocab)
{
    for (uint32_t i = 0; i < n; i++) tok[i] = (int32_t)(tu_next(r) % n_vocab);
}

/* Prefill vs one token at a time. The two paths do the same arithmetic per row, so the bound is tight:
 * 1e-12 leaves room only for a different summation order, never for a wrong position or cache row. */
static void prefill_vs_steps(int which)
{
    vkllm_ref_model *m = load(which, NULL);
    const uint32_t T = 11, V = vkllm_ref_model_hparams(m)->n_vocab;
    tu_rng r = tu_rng_for(100 + (uint64_t)which);
    int32_t tok[11];
    random_tokens(&r, tok, T, V);
    float *a = malloc((size_t)T * V * sizeof(float)), *b = malloc((size_t)T * V * sizeof(float));
    assert_non_null(a);
    assert_non_null(b);
    tu_poison(a, (size_t)T * V);
    tu_poison(b, (size_t)T * V);
    OK(vkllm_ref_model_forward(m, tok, T, 0, a, 1, NULL, NULL));
    for (uint32_t t = 0; t < T; t++) OK(vkllm_ref_model_forward(m, &tok[t], 1, t, b + (size_t)t * V, 1, NULL, NULL));
    assert_int_equal(tu_count_nonfinite(a, (size_t)T * V), 0);
    tu_assert_nmse(b, a, (size_t)T * V, 1e-12, "model %d: steps vs prefill", which);
    /* a split prefill (5 then 6) agrees too, and last-row-only logits are the last row */
    OK(vkllm_ref_model_forward(m, tok, 5, 0, NULL, 0, NULL, NULL));
    OK(vkllm_ref_model_forward(m, tok + 5, T - 5, 5, b, 0, NULL, NULL));
    tu_assert_nmse(b, a + (size_t)(T - 1) * V, V, 1e-12, "model %d: split prefill", which);
    free(a);
    free(b);
    vkllm_ref_model_destroy(m);
}

static void test_prefill_equals_steps(void **state)
{
    (void)state;
    for (int i = 0; i < M_COUNT; i++) prefill_vs_steps(i);
}

/* Captures the checkpoints of one forward call. */
typedef struct capture {
    int calls[64][VKLLM_REF_N_LAYER_CHECKPOINTS];
    int final_calls[VKLLM_REF_N_FINAL_CHECKPOINTS];
    float *attn, *v;          /* layer 0: (T, Q), (T, KV) */
    float *out_last, *onorm;  /* (T, E) */
    uint32_t width[VKLLM_REF_N_LAYER_CHECKPOINTS];
    int n_layer;
} capture;

static float *copy_rows(const float *x, size_t n)
{
    float *y = malloc(n * sizeof(float));
    assert_non_null(y);
    memcpy(y, x, n * sizeof(float));
    return y;
}

static void on_checkpoint(void *user, int layer, const char *name, const float *data, uint32_t n_tok, uint32_t width)
{
    capture *c = user;
    assert_true(layer >= -1 && layer < c->n_layer);
    assert_int_equal(tu_count_nonfinite(data, (size_t)n_tok * width), 0);
    if (layer < 0) {
        int k = !strcmp(name, "output_norm") ? 0 : !strcmp(name, "logits") ? 1 : -1;
        if (k < 0) {
            fail_msg("unexpected final checkpoint '%s'", name);
            return;
        }
        c->final_calls[k]++;
        if (k == 0) c->onorm = copy_rows(data, (size_t)n_tok * width);
        return;
    }
    int k = -1;
    for (int i = 0; i < VKLLM_REF_N_LAYER_CHECKPOINTS; i++)
        if (!strcmp(name, vkllm_ref_layer_checkpoints[i])) k = i;
    if (k < 0) {
        fail_msg("unexpected layer checkpoint '%s'", name);
        return;
    }
    c->calls[layer][k]++;
    c->width[k] = width;
    if (layer == 0 && !strcmp(name, "attn")) c->attn = copy_rows(data, (size_t)n_tok * width);
    if (layer == 0 && !strcmp(name, "v")) c->v = copy_rows(data, (size_t)n_tok * width);
    if (layer == c->n_layer - 1 && !strcmp(name, "out")) c->out_last = copy_rows(data, (size_t)n_tok * width);
}

static void test_checkpoints_and_window1(void **state)
{
    (void)state;
    vkllm_ref_model *m = load(M_WINDOW1, NULL);
    const vkllm_phi3_hparams *hp = vkllm_ref_model_hparams(m);
    const uint32_t T = 6, D = hp->head_dim, Q = vkllm_phi3_q_dim(hp), KV = vkllm_phi3_kv_dim(hp);
    int32_t tok[6] = { 1, 300, 5, 5, 17, 0 };
    capture c;
    memset(&c, 0, sizeof c);
    c.n_layer = (int)hp->n_layer;
    OK(vkllm_ref_model_forward(m, tok, T, 0, NULL, 0, on_checkpoint, &c));
    for (int l = 0; l < c.n_layer; l++)
        for (int k = 0; k < VKLLM_REF_N_LAYER_CHECKPOINTS; k++) assert_int_equal(c.calls[l][k], 1);
    assert_int_equal(c.final_calls[0], 1);
    assert_int_equal(c.final_calls[1], 1);
    const uint32_t want[VKLLM_REF_N_LAYER_CHECKPOINTS] = { hp->n_embd, Q, KV, KV, Q, hp->n_embd, hp->n_embd,
                                                           hp->n_ff, hp->n_embd, hp->n_embd };
    for (int k = 0; k < VKLLM_REF_N_LAYER_CHECKPOINTS; k++) assert_int_equal(c.width[k], want[k]);

    /* window 1: each token sees only itself, so query head h returns V of kv head h / 2 exactly
     * (softmax of one score is 1) */
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t h = 0; h < hp->n_head; h++)
            for (uint32_t d = 0; d < D; d++)
                assert_float_equal(c.attn[(size_t)t * Q + h * D + d], c.v[(size_t)t * KV + (h / 2) * D + d], 0);

    /* output_norm is rmsnorm of the last layer's residual stream */
    vkllm_gguf *g;
    char err[512];
    assert_int_equal(vkllm_gguf_open(paths[M_WINDOW1], &g, err, sizeof err), VKLLM_OK);
    const vkllm_gguf_tensor *wn = vkllm_gguf_find_tensor(g, "output_norm.weight");
    float *y = malloc((size_t)T * hp->n_embd * sizeof(float));
    vkllm_ref_rmsnorm(c.out_last, wn->data, y, hp->n_embd, T, hp->n_embd, hp->n_embd, hp->rms_eps);
    tu_assert_nmse(c.onorm, y, (size_t)T * hp->n_embd, 1e-14, "output_norm checkpoint");
    vkllm_gguf_close(g);
    free(y);
    free(c.attn);
    free(c.v);
    free(c.out_last);
    free(c.onorm);
    vkllm_ref_model_destroy(m);
}

/* A window of 3 changes exactly the rows whose position reaches past it (t >= 3). */
static void test_window_rows(void **state)
{
    (void)state;
    vkllm_ref_model *a = load(M_WINDOW3, NULL);
    vkllm_ref_model *b = load(M_WINDOW3, &(vkllm_ref_model_options){ .no_sliding_window = 1 });
    const uint32_t T = 8, V = vkllm_ref_model_hparams(a)->n_vocab;
    tu_rng r = tu_rng_for(300);
    int32_t tok[8];
    random_tokens(&r, tok, T, V);
    float *la = malloc((size_t)T * V * sizeof(float)), *lb = malloc((size_t)T * V * sizeof(float));
    OK(vkllm_ref_model_forward(a, tok, T, 0, la, 1, NULL, NULL));
    OK(vkllm_ref_model_forward(b, tok, T, 0, lb, 1, NULL, NULL));
    for (uint32_t t = 0; t < T; t++) {
        double e = tu_nmse(la + (size_t)t * V, lb + (size_t)t * V, V);
        if (t < 3) assert_true(e == 0);
        else if (!(e > 1e-6)) fail_msg("row %" PRIu32 ": window made no difference (nmse %g)", t, e);
    }
    free(la);
    free(lb);
    vkllm_ref_model_destroy(a);
    vkllm_ref_model_destroy(b);
}

/* ------------------------------------------------------------------------------------------------
 * Every checkpoint recomputed from the previous ones by an independent restatement of the math
 * (fused row layouts, RoPE positions, GQA, residual adds). Inputs are the same float32 checkpoints,
 * so only summation order and libm differ: the bound 1e-10 is far below any real mistake (a wrong
 * row, head or position gives NMSE of order 1). */

typedef struct all_ckpt {
    float *data[8][VKLLM_REF_N_LAYER_CHECKPOINTS]; /* (T, width) per layer and name */
    float *final[VKLLM_REF_N_FINAL_CHECKPOINTS];
} all_ckpt;

static void keep_all(void *user, int layer, const char *name, const float *data, uint32_t n_tok, uint32_t width)
{
    all_ckpt *c = user;
    float **slot = NULL;
    if (layer < 0) slot = &c->final[strcmp(name, "logits") == 0];
    else
        for (int i = 0; i < VKLLM_REF_N_LAYER_CHECKPOINTS; i++)
            if (!strcmp(name, vkllm_ref_layer_checkpoints[i])) slot = &c->data[layer][i];
    assert_non_null(slot);
    *slot = copy_rows(data, (size_t)n_tok * width);
}

static float *weights(vkllm_gguf *g, const char *name)
{
    const vkllm_gguf_tensor *t = vkllm_gguf_find_tensor(g, name);
    assert_non_null(t);
    float *w = malloc((size_t)t->n_elems * sizeof(float));
    vkllm_dequantize(t->type, t->data, w, (size_t)t->n_elems);
    return w;
}

/* y (T, rows) = x (T, cols) W^T, with row offset r0 into W (rows of width cols) */
static float *mv(const float *w, size_t r0, size_t rows, size_t cols, const float *x, size_t T)
{
    float *y = malloc(T * rows * sizeof(float));
    for (size_t t = 0; t < T; t++)
        for (size_t r = 0; r < rows; r++) {
            double a = 0;
            for (size_t c = 0; c < cols; c++) a += (double)w[(r0 + r) * cols + c] * x[t * cols + c];
            y[t * rows + r] = (float)a;
        }
    return y;
}

static float *norm(const float *x, const float *w, size_t T, size_t n, double eps)
{
    float *y = malloc(T * n * sizeof(float));
    for (size_t t = 0; t < T; t++) {
        double ss = 0;
        for (size_t i = 0; i < n; i++) ss += (double)x[t * n + i] * x[t * n + i];
        for (size_t i = 0; i < n; i++) y[t * n + i] = (float)(x[t * n + i] / sqrt(ss / n + eps) * w[i]);
    }
    return y;
}

/* rotate-half RoPE in place: pairs (i, i + d/2), angle pos * base^(-2i/d) */
static void rope(float *x, size_t T, size_t heads, size_t d, double base)
{
    for (size_t t = 0; t < T; t++)
        for (size_t h = 0; h < heads; h++)
            for (size_t i = 0; i < d / 2; i++) {
                float *p = x + (t * heads + h) * d;
                double th = (double)t * pow(base, -2.0 * (double)i / (double)d), a = p[i], b = p[i + d / 2];
                p[i] = (float)(a * cos(th) - b * sin(th));
                p[i + d / 2] = (float)(a * sin(th) + b * cos(th));
            }
}

static void test_checkpoint_chain(void **state)
{
    (void)state;
    vkllm_ref_model *m = load(M_GQA, NULL);
    const vkllm_phi3_hparams *hp = vkllm_ref_model_hparams(m);
    const size_t T = 7, E = hp->n_embd, D = hp->head_dim, H = hp->n_head, HKV = hp->n_head_kv, F = hp->n_ff;
    const size_t Q = H * D, KV = HKV * D, V = hp->n_vocab;
    tu_rng r = tu_rng_for(500);
    int32_t tok[7];
    random_tokens(&r, tok, (uint32_t)T, (uint32_t)V);
    all_ckpt c;
    memset(&c, 0, sizeof c);
    OK(vkllm_ref_model_forward(m, tok, (uint32_t)T, 0, NULL, 0, keep_all, &c));
    vkllm_gguf *g;
    char err[512], name[64];
    assert_int_equal(vkllm_gguf_open(paths[M_GQA], &g, err, sizeof err), VKLLM_OK);
    float *emb = weights(g, "token_embd.weight");
    float *x = malloc(T * E * sizeof(float));
    for (size_t t = 0; t < T; t++) memcpy(x + t * E, emb + (size_t)tok[t] * E, E * sizeof(float));
#define W(s) (snprintf(name, sizeof name, "blk.%u.%s.weight", l, s), weights(g, name))
#define CMP(got, want, n, what) tu_assert_nmse(got, want, n, 1e-10, "layer %u %s", l, what)
    for (unsigned l = 0; l < hp->n_layer; l++) {
        float **k = c.data[l];
        float *wan = W("attn_norm"), *wqkv = W("attn_qkv"), *wo = W("attn_output"), *wfn = W("ffn_norm");
        float *wup = W("ffn_up"), *wdown = W("ffn_down");
        float *an = norm(x, wan, T, E, hp->rms_eps);
        CMP(k[0], an, T * E, "attn_norm");
        float *q = mv(wqkv, 0, Q, E, k[0], T), *kk = mv(wqkv, Q, KV, E, k[0], T), *v = mv(wqkv, Q + KV, KV, E, k[0], T);
        rope(q, T, H, D, hp->rope_base);
        rope(kk, T, HKV, D, hp->rope_base);
        CMP(k[1], q, T * Q, "q");
        CMP(k[2], kk, T * KV, "k");
        CMP(k[3], v, T * KV, "v");
        /* causal attention with GQA over the checkpointed q, k, v */
        float *att = malloc(T * Q * sizeof(float));
        for (size_t t = 0; t < T; t++)
            for (size_t h = 0; h < H; h++) {
                size_t kh = h / (H / HKV);
                double s[16], mx = -INFINITY, sum = 0;
                for (size_t j = 0; j <= t; j++) {
                    double dot = 0;
                    for (size_t d = 0; d < D; d++) dot += (double)k[1][t * Q + h * D + d] * k[2][j * KV + kh * D + d];
                    s[j] = dot / sqrt((double)D);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (size_t j = 0; j <= t; j++) sum += s[j] = exp(s[j] - mx);
                for (size_t d = 0; d < D; d++) {
                    double a = 0;
                    for (size_t j = 0; j <= t; j++) a += s[j] / sum * k[3][j * KV + kh * D + d];
                    att[t * Q + h * D + d] = (float)a;
                }
            }
        CMP(k[4], att, T * Q, "attn");
        float *ao = mv(wo, 0, E, Q, k[4], T);
        CMP(k[5], ao, T * E, "attn_out");
        for (size_t i = 0; i < T * E; i++) x[i] += k[5][i];
        float *fn = norm(x, wfn, T, E, hp->rms_eps);
        CMP(k[6], fn, T * E, "ffn_norm");
        float *gate = mv(wup, 0, F, E, k[6], T), *up = mv(wup, F, F, E, k[6], T);
        for (size_t i = 0; i < T * F; i++) gate[i] = (float)((double)gate[i] / (1 + exp(-(double)gate[i])) * up[i]);
        CMP(k[7], gate, T * F, "ffn_act");
        float *fo = mv(wdown, 0, E, F, k[7], T);
        CMP(k[8], fo, T * E, "ffn_out");
        for (size_t i = 0; i < T * E; i++) x[i] += k[8][i];
        CMP(k[9], x, T * E, "out");
        memcpy(x, k[9], T * E * sizeof(float));
        free(wan); free(wqkv); free(wo); free(wfn); free(wup); free(wdown); free(an); free(q); free(kk); free(v);
        free(att); free(ao); free(fn); free(gate); free(up); free(fo);
        for (int i = 0; i < VKLLM_REF_N_LAYER_CHECKPOINTS; i++) free(k[i]);
    }
#undef W
#undef CMP
    float *won = weights(g, "output_norm.weight"), *wout = weights(g, "output.weight");
    float *on = norm(x, won, T, E, hp->rms_eps);
    tu_assert_nmse(c.final[0], on, T * E, 1e-10, "output_norm");
    float *lg = mv(wout, 0, V, E, c.final[0], T);
    tu_assert_nmse(c.final[1], lg, T * V, 1e-10, "logits");
    free(won); free(wout); free(on); free(lg); free(emb); free(x); free(c.final[0]); free(c.final[1]);
    vkllm_gguf_close(g);
    vkllm_ref_model_destroy(m);
}

static void test_greedy_deterministic(void **state)
{
    (void)state;
    const int32_t prompt[4] = { 3, 14, 15, 92 };
    int32_t g1[12], g2[12], g3[12];
    vkllm_ref_model *a = load(M_GQA, NULL);
    vkllm_ref_model *b = load(M_GQA, NULL);
    OK(vkllm_ref_model_generate_greedy(a, prompt, 4, 12, g1));
    OK(vkllm_ref_model_generate_greedy(a, prompt, 4, 12, g2)); /* same model again: the cache rewinds */
    OK(vkllm_ref_model_generate_greedy(b, prompt, 4, 12, g3));
    assert_memory_equal(g1, g2, sizeof g1);
    assert_memory_equal(g1, g3, sizeof g1);
    for (int i = 0; i < 12; i++) assert_true(g1[i] >= 0 && g1[i] < 320);
    /* the first generated token is the argmax of the prompt's last logits */
    float l[320];
    OK(vkllm_ref_model_forward(b, prompt, 4, 0, l, 0, NULL, NULL));
    int best = 0;
    for (int i = 1; i < 320; i++)
        if (l[i] > l[best]) best = i;
    assert_int_equal(g1[0], best);
    vkllm_ref_model_destroy(a);
    vkllm_ref_model_destroy(b);
}

static void test_refusals(void **state)
{
    (void)state;
    char err[512] = "";
    vkllm_gguf *g;
    vkllm_phi3_hparams hp;
    vkllm_ref_model *m = (vkllm_ref_model *)&hp;
    assert_int_equal(vkllm_gguf_open(paths[M_GQA], &g, err, sizeof err), VKLLM_OK);
    OK(vkllm_phi3_read_hparams(g, &hp, err, sizeof err));
    assert_int_equal(vkllm_ref_model_create(g, &hp, &(vkllm_ref_model_options){ .max_bytes = 100000 }, &m, err, sizeof err),
                     VKLLM_ERROR_TOO_LARGE);
    assert_null(m);
    print_message("  refusal: %s\n", err);
    assert_non_null(strstr(err, "cap"));
    OK(vkllm_ref_model_create(g, &hp, &(vkllm_ref_model_options){ .n_ctx = 8 }, &m, err, sizeof err));
    vkllm_gguf_close(g);
    int32_t tok[9] = { 0 };
    tok[2] = 320;
    assert_int_equal(vkllm_ref_model_forward(m, tok, 3, 0, NULL, 0, NULL, NULL), VKLLM_ERROR_INVALID_ARGUMENT);
    print_message("  refusal: %s\n", vkllm_ref_model_error(m));
    assert_non_null(strstr(vkllm_ref_model_error(m), "320"));
    tok[2] = -1;
    assert_int_equal(vkllm_ref_model_forward(m, tok, 3, 0, NULL, 0, NULL, NULL), VKLLM_ERROR_INVALID_ARGUMENT);
    tok[2] = 0;
    assert_int_equal(vkllm_ref_model_forward(m, tok, 9, 0, NULL, 0, NULL, NULL), VKLLM_ERROR_OUT_OF_RANGE);
    assert_int_equal(vkllm_ref_model_forward(m, tok, 1, 1, NULL, 0, NULL, NULL), VKLLM_ERROR_OUT_OF_RANGE);
    print_message("  refusal: %s\n", vkllm_ref_model_error(m));
    OK(vkllm_ref_model_forward(m, tok, 8, 0, NULL, 0, NULL, NULL));
    int32_t out[8];
    assert_int_equal(vkllm_ref_model_generate_greedy(m, tok, 4, 6, out), VKLLM_ERROR_OUT_OF_RANGE);
    OK(vkllm_ref_model_generate_greedy(m, tok, 4, 5, out));
    vkllm_ref_model_destroy(m);
    vkllm_ref_model_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefill_equals_steps),
        cmocka_unit_test(test_checkpoints_and_window1),
        cmocka_unit_test(test_window_rows),
        cmocka_unit_test(test_checkpoint_chain),
        cmocka_unit_test(test_greedy_deterministic),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
