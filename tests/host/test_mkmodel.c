/* mkmodel: tiny models in every type read back with all keys, tensor names, shapes and types as
 * llama.cpp's phi3 loader expects them; weight statistics; the Q4_K_M mix; byte-identical output for
 * the same seed whatever the thread count; configuration errors. */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vkllm/gguf.h"
#include "vkllm/mkmodel.h"

static char tmpdir[256];

#define OK(x) do { vkllm_status s_ = (x); if (s_ != VKLLM_OK) fail_msg("%s -> %s", #x, vkllm_strerror(s_)); } while (0)

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void write_model(const vkllm_mkmodel_config *cfg, const char *path)
{
    char err[512];
    uint64_t predicted = 0, dry = 0;
    OK(vkllm_mkmodel_write(cfg, NULL, &dry, err, sizeof err));
    vkllm_status s = vkllm_mkmodel_write(cfg, path, &predicted, err, sizeof err);
    if (s != VKLLM_OK) fail_msg("mkmodel: %s", err);
    size_t n;
    free(slurp(path, &n));
    assert_int_equal(n, predicted);
    assert_int_equal(n, dry);
}

static uint32_t get_u32(vkllm_gguf *g, const char *key)
{
    uint32_t v = 0;
    if (vkllm_gguf_get_u32(g, key, &v) != VKLLM_OK) fail_msg("%s", vkllm_gguf_error(g));
    return v;
}

/* llama.cpp's use_more_bits, restated here independently of mkmodel.c */
static int more_bits(uint32_t i, uint32_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static vkllm_dtype expected_type(vkllm_mkmodel_ftype ft, const char *kind, uint32_t layer, uint32_t n_layer)
{
    if (strstr(kind, "norm")) return VKLLM_DTYPE_F32;
    switch (ft) {
    case VKLLM_MKMODEL_F32: return VKLLM_DTYPE_F32;
    case VKLLM_MKMODEL_F16: return VKLLM_DTYPE_F16;
    case VKLLM_MKMODEL_Q8_0: return VKLLM_DTYPE_Q8_0;
    case VKLLM_MKMODEL_Q4_0: return !strcmp(kind, "output") ? VKLLM_DTYPE_Q6_K : VKLLM_DTYPE_Q4_0;
    case VKLLM_MKMODEL_Q4_K_M:
        if (!strcmp(kind, "output")) return VKLLM_DTYPE_Q6_K;
        if (!strcmp(kind, "attn_qkv")) return VKLLM_DTYPE_Q5_K;
        if (!strcmp(kind, "ffn_down") && more_bits(layer, n_layer)) return VKLLM_DTYPE_Q6_K;
        return VKLLM_DTYPE_Q4_K;
    }
    return VKLLM_DTYPE_F32;
}

/* mean and standard deviation of a tensor's dequantized values */
static void stats(const vkllm_gguf_tensor *t, double *mean, double *sd)
{
    float *x = malloc((size_t)t->n_elems * sizeof(float));
    assert_non_null(x);
    tu_poison(x, (size_t)t->n_elems);
    vkllm_dequantize(t->type, t->data, x, (size_t)t->n_elems);
    assert_int_equal(tu_count_nonfinite(x, (size_t)t->n_elems), 0);
    double s = 0, s2 = 0;
    for (uint64_t i = 0; i < t->n_elems; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    *mean = s / (double)t->n_elems;
    *sd = sqrt(s2 / (double)t->n_elems - *mean * *mean);
    free(x);
}

static void check_model(const char *path, const vkllm_mkmodel_config *cfg)
{
    char err[512];
    vkllm_gguf *g;
    if (vkllm_gguf_open(path, &g, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    const char *s;
    OK(vkllm_gguf_get_string(g, "general.architecture", &s, NULL));
    assert_string_equal(s, "phi3");
    OK(vkllm_gguf_get_string(g, "general.name", &s, NULL));
    assert_string_equal(s, cfg->name);
    assert_int_equal(get_u32(g, "general.file_type"), (uint32_t)cfg->ftype);
    assert_int_equal(get_u32(g, "phi3.context_length"), cfg->n_ctx);
    assert_int_equal(get_u32(g, "phi3.embedding_length"), cfg->n_embd);
    assert_int_equal(get_u32(g, "phi3.feed_forward_length"), cfg->n_ff);
    assert_int_equal(get_u32(g, "phi3.block_count"), cfg->n_layer);
    assert_int_equal(get_u32(g, "phi3.attention.head_count"), cfg->n_head);
    assert_int_equal(get_u32(g, "phi3.attention.head_count_kv"), cfg->n_head_kv);
    assert_int_equal(get_u32(g, "phi3.rope.dimension_count"), cfg->n_embd / cfg->n_head);
    assert_int_equal(get_u32(g, "phi3.attention.sliding_window"), cfg->sliding_window);
    float f;
    OK(vkllm_gguf_get_f32(g, "phi3.attention.layer_norm_rms_epsilon", &f));
    assert_true(f == cfg->eps);
    OK(vkllm_gguf_get_f32(g, "phi3.rope.freq_base", &f));
    assert_true(f == cfg->rope_base);

    /* tokenizer */
    OK(vkllm_gguf_get_string(g, "tokenizer.ggml.model", &s, NULL));
    assert_string_equal(s, "gpt2");
    OK(vkllm_gguf_get_string(g, "tokenizer.ggml.pre", &s, NULL));
    assert_string_equal(s, "dbrx");
    OK(vkllm_gguf_get_string(g, "tokenizer.chat_template", &s, NULL));
    assert_non_null(strstr(s, "<|im_start|>assistant<|im_sep|>"));
    int b;
    OK(vkllm_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b));
    assert_int_equal(b, 0);
    vkllm_gguf_ref toks, types, merges;
    uint64_t n_tok, n_types, n_merges;
    OK(vkllm_gguf_get_array(g, "tokenizer.ggml.tokens", VKLLM_GGUF_STRING, &toks, &n_tok));
    OK(vkllm_gguf_get_array(g, "tokenizer.ggml.token_type", VKLLM_GGUF_INT32, &types, &n_types));
    OK(vkllm_gguf_get_array(g, "tokenizer.ggml.merges", VKLLM_GGUF_STRING, &merges, &n_merges));
    assert_int_equal(n_tok, cfg->n_vocab);
    assert_int_equal(n_types, cfg->n_vocab);
    assert_int_equal(n_merges, cfg->n_merges);
    uint32_t base = 256 + cfg->n_merges;
    assert_int_equal(vkllm_mkmodel_base_vocab(cfg->n_merges), base + 8);
    static const char *const special[8] = { "<|endoftext|>", "<|im_start|>", "<|im_sep|>", "<|im_end|>",
                                            "<|user|>", "<|assistant|>", "<|system|>", "<|end|>" };
    for (uint32_t i = 0; i < 8; i++) {
        int32_t ty;
        OK(vkllm_gguf_ref_string(g, vkllm_gguf_ref_at(toks, base + i), &s, NULL));
        assert_string_equal(s, special[i]);
        OK(vkllm_gguf_ref_i32(g, vkllm_gguf_ref_at(types, base + i), &ty));
        assert_int_equal(ty, 3); /* CONTROL */
    }
    assert_int_equal(get_u32(g, "tokenizer.ggml.bos_token_id"), base);
    assert_int_equal(get_u32(g, "tokenizer.ggml.eos_token_id"), base + 3);
    /* token strings are unique; the byte tokens come first; every merge joins two tokens into a
     * token that exists */
    const char **all = calloc(n_tok, sizeof(char *));
    for (uint64_t i = 0; i < n_tok; i++) {
        OK(vkllm_gguf_ref_string(g, vkllm_gguf_ref_at(toks, i), &all[i], NULL));
        int32_t ty;
        OK(vkllm_gguf_ref_i32(g, vkllm_gguf_ref_at(types, i), &ty));
        assert_int_equal(ty, i < base ? 1 : i < base + 8 ? 3 : 5);
    }
    assert_string_equal(all[0], "!");
    assert_string_equal(all[220], "\xc4\xa0"); /* byte 0x20 is U+0120, token 220 as in GPT-2 */
    for (uint64_t i = 0; i < n_tok; i++)
        for (uint64_t j = i + 1; j < n_tok; j++)
            if (!strcmp(all[i], all[j])) fail_msg("tokens %" PRIu64 " and %" PRIu64 " are both '%s'", i, j, all[i]);
    for (uint64_t m = 0; m < n_merges; m++) {
        OK(vkllm_gguf_ref_string(g, vkllm_gguf_ref_at(merges, m), &s, NULL));
        const char *sp = strchr(s, ' ');
        assert_non_null(sp);
        assert_null(strchr(sp + 1, ' '));
        char joined[256];
        snprintf(joined, sizeof joined, "%.*s%s", (int)(sp - s), s, sp + 1);
        assert_string_equal(all[256 + m], joined);
    }
    free(all);

    /* tensors: names, shapes, types, scale */
    uint64_t hd = cfg->n_embd / cfg->n_head;
    assert_int_equal(vkllm_gguf_n_tensors(g), 3 + 6 * (uint64_t)cfg->n_layer);
    const vkllm_gguf_tensor *t;
    struct { const char *kind; uint32_t nd; uint64_t ne0, ne1; double sigma; } k[] = {
        { "attn_norm", 1, cfg->n_embd, 1, 0.02 },
        { "attn_qkv", 2, cfg->n_embd, cfg->n_embd + 2 * cfg->n_head_kv * hd, 1 / sqrt(cfg->n_embd) },
        { "attn_output", 2, cfg->n_embd, cfg->n_embd, 1 / sqrt(cfg->n_embd) / sqrt(2.0 * cfg->n_layer) },
        { "ffn_norm", 1, cfg->n_embd, 1, 0.02 },
        { "ffn_up", 2, cfg->n_embd, 2 * (uint64_t)cfg->n_ff, 1 / sqrt(cfg->n_embd) },
        { "ffn_down", 2, cfg->n_ff, cfg->n_embd, 1 / sqrt(cfg->n_ff) / sqrt(2.0 * cfg->n_layer) },
        { "token_embd", 2, cfg->n_embd, cfg->n_vocab, 1.0 },
        { "output_norm", 1, cfg->n_embd, 1, 0.02 },
        { "output", 2, cfg->n_embd, cfg->n_vocab, 1 / sqrt(cfg->n_embd) },
    };
    for (uint32_t l = 0; l <= cfg->n_layer; l++)
        for (size_t i = l < cfg->n_layer ? 0 : 6; i < (l < cfg->n_layer ? 6u : 9u); i++) {
            char name[64];
            if (l < cfg->n_layer) snprintf(name, sizeof name, "blk.%u.%s.weight", l, k[i].kind);
            else snprintf(name, sizeof name, "%s.weight", k[i].kind);
            vkllm_dtype want = expected_type(cfg->ftype, k[i].kind, l, cfg->n_layer), got;
            OK(vkllm_mkmodel_tensor_type(cfg, name, &got));
            assert_int_equal(got, want);
            vkllm_status st = vkllm_gguf_expect_tensor(g, name, VKLLM_DTYPE_BIT(want), k[i].nd,
                                                       (uint64_t[]){ k[i].ne0, k[i].ne1 }, &t);
            if (st != VKLLM_OK) fail_msg("%s", vkllm_gguf_error(g));
            double mean, sd;
            stats(t, &mean, &sd);
            if (strstr(k[i].kind, "norm")) {
                if (fabs(mean - 1.0) > 0.01 || sd > 0.03 || sd < 0.01) fail_msg("%s: mean %g sd %g", name, mean, sd);
            } else if (fabs(sd / k[i].sigma - 1.0) > 0.1 || fabs(mean) > 0.05 * k[i].sigma) {
                /* 10%: fp16 rounding of block scales and, for --exact, quantization noise */
                fail_msg("%s (%s): mean %g sd %g, want 0 and %g", name, vkllm_dtype_name(t->type), mean, sd, k[i].sigma);
            }
        }
    vkllm_gguf_close(g);
}

static vkllm_mkmodel_config tiny(vkllm_mkmodel_ftype ft)
{
    vkllm_mkmodel_config c;
    OK(vkllm_mkmodel_preset("tiny", &c));
    c.ftype = ft;
    c.threads = 2;
    return c;
}

static void test_types(void **state)
{
    (void)state;
    static const vkllm_mkmodel_ftype fts[] = { VKLLM_MKMODEL_F32, VKLLM_MKMODEL_F16, VKLLM_MKMODEL_Q8_0,
                                               VKLLM_MKMODEL_Q4_0, VKLLM_MKMODEL_Q4_K_M };
    for (size_t i = 0; i < sizeof fts / sizeof fts[0]; i++)
        for (int exact = 0; exact < 2; exact++) {
            if (exact && (fts[i] == VKLLM_MKMODEL_F32 || fts[i] == VKLLM_MKMODEL_F16)) continue;
            vkllm_mkmodel_config c = tiny(fts[i]);
            c.exact_quant = exact;
            char path[300];
            snprintf(path, sizeof path, "%s/tiny-%s%s.gguf", tmpdir, vkllm_mkmodel_ftype_name(fts[i]), exact ? "-exact" : "");
            write_model(&c, path);
            check_model(path, &c);
            unlink(path);
        }
}

static void test_shapes(void **state)
{
    (void)state;
    /* odd shapes: MHA, rows that are not K blocks (fallbacks), one layer, a longer vocabulary */
    vkllm_mkmodel_config c = tiny(VKLLM_MKMODEL_Q4_K_M);
    c.n_layer = 1;
    c.n_embd = 96;
    c.n_head = 3;
    c.n_head_kv = 3;
    c.n_ff = 160;
    c.n_vocab = 1000;
    c.sliding_window = 2047;
    c.n_merges = 100;
    c.name = "odd";
    char path[300];
    snprintf(path, sizeof path, "%s/odd.gguf", tmpdir);
    vkllm_dtype t;
    OK(vkllm_mkmodel_tensor_type(&c, "blk.0.attn_qkv.weight", &t));
    assert_int_equal(t, VKLLM_DTYPE_Q8_0);  /* q5_K falls back */
    OK(vkllm_mkmodel_tensor_type(&c, "blk.0.ffn_up.weight", &t));
    assert_int_equal(t, VKLLM_DTYPE_Q4_0);  /* q4_K falls back */
    assert_int_equal(vkllm_mkmodel_tensor_type(&c, "blk.1.ffn_up.weight", &t), VKLLM_ERROR_CONFIG);
    assert_int_equal(vkllm_mkmodel_tensor_type(&c, "blk.0.ffn_gate.weight", &t), VKLLM_ERROR_CONFIG);
    char err[512];
    OK(vkllm_mkmodel_write(&c, path, NULL, err, sizeof err));
    vkllm_gguf *g;
    OK(vkllm_gguf_open(path, &g, err, sizeof err));
    const vkllm_gguf_tensor *x;
    OK(vkllm_gguf_expect_tensor(g, "blk.0.attn_qkv.weight", VKLLM_DTYPE_BIT(VKLLM_DTYPE_Q8_0), 2, (uint64_t[]){ 96, 288 }, &x));
    OK(vkllm_gguf_expect_tensor(g, "blk.0.ffn_down.weight", VKLLM_DTYPE_BIT(VKLLM_DTYPE_Q8_0), 2, (uint64_t[]){ 160, 96 }, &x));
    vkllm_gguf_close(g);
    unlink(path);

    /* the mix of the big presets, against llama.cpp's rule */
    static const char *const presets[] = { "phi3-mini", "phi4" };
    for (int p = 0; p < 2; p++) {
        OK(vkllm_mkmodel_preset(presets[p], &c));
        uint64_t size;
        OK(vkllm_mkmodel_write(&c, NULL, &size, err, sizeof err)); /* dry run: validates, sizes */
        int n6 = 0;
        for (uint32_t l = 0; l < c.n_layer; l++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%u.ffn_down.weight", l);
            OK(vkllm_mkmodel_tensor_type(&c, name, &t));
            assert_int_equal(t, more_bits(l, c.n_layer) ? VKLLM_DTYPE_Q6_K : VKLLM_DTYPE_Q4_K);
            n6 += t == VKLLM_DTYPE_Q6_K;
        }
        assert_true(n6 > (int)c.n_layer / 3 && n6 < (int)c.n_layer * 2 / 3);
        OK(vkllm_mkmodel_tensor_type(&c, "token_embd.weight", &t));
        assert_int_equal(t, VKLLM_DTYPE_Q4_K);
        if (p == 1) assert_true(size > 8900000000ull && size < 9300000000ull); /* published: 9.05 GB */
    }
}

static void test_reproducible(void **state)
{
    (void)state;
    vkllm_mkmodel_config c = tiny(VKLLM_MKMODEL_Q4_K_M);
    c.seed = 42;
    char p1[300], p2[300], p3[300];
    snprintf(p1, sizeof p1, "%s/r1.gguf", tmpdir);
    snprintf(p2, sizeof p2, "%s/r2.gguf", tmpdir);
    snprintf(p3, sizeof p3, "%s/r3.gguf", tmpdir);
    c.threads = 1;
    write_model(&c, p1);
    c.threads = 3;
    write_model(&c, p2);
    c.seed = 43;
    write_model(&c, p3);
    size_t n1, n2, n3;
    uint8_t *a = slurp(p1, &n1), *b = slurp(p2, &n2), *d = slurp(p3, &n3);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    assert_int_equal(n1, n3);
    assert_true(memcmp(a, d, n1) != 0);
    free(a);
    free(b);
    free(d);
    /* the same for a float type through the other generator path */
    c = tiny(VKLLM_MKMODEL_F16);
    c.threads = 1;
    write_model(&c, p1);
    c.threads = 4;
    write_model(&c, p2);
    a = slurp(p1, &n1);
    b = slurp(p2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    free(a);
    free(b);
    unlink(p1);
    unlink(p2);
    unlink(p3);
}

static void expect_config_error(vkllm_mkmodel_config c, const char *needle)
{
    char err[512] = "";
    char path[300];
    snprintf(path, sizeof path, "%s/never.gguf", tmpdir);
    assert_int_equal(vkllm_mkmodel_write(&c, path, NULL, err, sizeof err), VKLLM_ERROR_CONFIG);
    if (!strstr(err, needle)) fail_msg("message '%s' lacks '%s'", err, needle);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_config_errors(void **state)
{
    (void)state;
    vkllm_mkmodel_config c = tiny(VKLLM_MKMODEL_Q4_K_M);
    vkllm_mkmodel_config x = c;
    x.n_head = 5;
    expect_config_error(x, "heads = 5");
    x = c;
    x.n_head_kv = 3;
    expect_config_error(x, "kv-heads = 3");
    x = c;
    x.n_vocab = 100;
    expect_config_error(x, "vocab = 100");
    x = c;
    x.n_layer = 0;
    expect_config_error(x, "layers = 0");
    x = c;
    x.n_merges = vkllm_mkmodel_max_merges() + 1;
    x.n_vocab = 4096;
    expect_config_error(x, "the built-in text yields only");
    x = c;
    x.eps = 0;
    expect_config_error(x, "eps");
    x = c;
    x.n_embd = 250;
    x.n_head = 5; /* head size 50, fine; 250 is not a q4_0 block multiple, so f16 fallback */
    x.n_head_kv = 5;
    vkllm_dtype t;
    OK(vkllm_mkmodel_tensor_type(&x, "blk.0.ffn_up.weight", &t));
    assert_int_equal(t, VKLLM_DTYPE_F16);
    assert_true(vkllm_mkmodel_max_merges() >= 600);
    assert_int_equal(vkllm_mkmodel_preset("nope", &x), VKLLM_ERROR_CONFIG);
    vkllm_mkmodel_ftype ft;
    assert_int_equal(vkllm_mkmodel_parse_ftype("q4_k_s", &ft), VKLLM_ERROR_CONFIG);
    OK(vkllm_mkmodel_parse_ftype("q4_k_m", &ft));
    assert_int_equal(ft, VKLLM_MKMODEL_Q4_K_M);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/vkllm_test_mkmodel_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
