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
        cmocka_unit_test(test_greedy_deterministic),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
