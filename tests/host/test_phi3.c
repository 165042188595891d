/* phi3 architecture: hyperparameters and tensor checks on small mkmodel files, and refusals of files
 * patched one fault at a time (wrong architecture, bad key values, a missing tensor, a wrong shape, a
 * wrong type); LongRoPE factor selection and attention factor. */
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
#include "vkllm/quant.h"
#include "vkllm/ref_model.h"

static char tmpdir[256];
static char base_path[300];

#define OK(x) do { vkllm_status s_ = (x); if (s_ != VKLLM_OK) fail_msg("%s -> %s", #x, vkllm_strerror(s_)); } while (0)

static vkllm_mkmodel_config small_config(void)
{
    vkllm_mkmodel_config c;
    OK(vkllm_mkmodel_preset("tiny", &c));
    c.n_layer = 2;
    c.n_embd = 64;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.n_ff = 96;
    c.n_merges = 16;
    c.n_vocab = 320;
    c.n_ctx = 512;
    c.sliding_window = 7;
    c.ftype = VKLLM_MKMODEL_Q8_0;
    c.threads = 1;
    return c;
}

/* One fault to put into a copy of a model. Unset fields change nothing. */
typedef struct patch {
    const char *drop_key;
    const char *str_key, *str_val;      /* set (or add) a string key */
    const char *u32_key;                /* set (or add) a u32 key */
    uint32_t u32_val;
    const char *f32_key;                /* add an f32 key */
    float f32_val;
    const char *drop_tensor;
    const char *reshape_tensor;         /* give it ne = {ne0, ne1} (data zero) */
    uint64_t ne0, ne1;
    const char *retype_tensor;          /* declare it as F16 of the same shape (data zero) */
    int rope_factors;                   /* 1: add long and short; 2: only long */
    uint32_t n_rot_half;
} patch;

static int is_key(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static vkllm_status copy_value(vkllm_gguf *g, vkllm_gguf_writer *w, const char *key, vkllm_gguf_ref r)
{
    uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; double f64; float f32; int b;
    switch (r.type) {
    case VKLLM_GGUF_UINT8: OK(vkllm_gguf_ref_u32(g, r, &u32)); return vkllm_gguf_writer_add_u8(w, key, (uint8_t)u32);
    case VKLLM_GGUF_INT8: OK(vkllm_gguf_ref_i32(g, r, &i32)); return vkllm_gguf_writer_add_i8(w, key, (int8_t)i32);
    case VKLLM_GGUF_UINT16: OK(vkllm_gguf_ref_u32(g, r, &u32)); return vkllm_gguf_writer_add_u16(w, key, (uint16_t)u32);
    case VKLLM_GGUF_INT16: OK(vkllm_gguf_ref_i32(g, r, &i32)); return vkllm_gguf_writer_add_i16(w, key, (int16_t)i32);
    case VKLLM_GGUF_UINT32: OK(vkllm_gguf_ref_u32(g, r, &u32)); return vkllm_gguf_writer_add_u32(w, key, u32);
    case VKLLM_GGUF_INT32: OK(vkllm_gguf_ref_i32(g, r, &i32)); return vkllm_gguf_writer_add_i32(w, key, i32);
    case VKLLM_GGUF_UINT64: OK(vkllm_gguf_ref_u64(g, r, &u64)); return vkllm_gguf_writer_add_u64(w, key, u64);
    case VKLLM_GGUF_INT64: OK(vkllm_gguf_ref_i64(g, r, &i64)); return vkllm_gguf_writer_add_i64(w, key, i64);
    case VKLLM_GGUF_FLOAT32: OK(vkllm_gguf_ref_f32(g, r, &f32)); return vkllm_gguf_writer_add_f32(w, key, f32);
    case VKLLM_GGUF_FLOAT64: OK(vkllm_gguf_ref_f64(g, r, &f64)); return vkllm_gguf_writer_add_f64(w, key, f64);
    case VKLLM_GGUF_BOOL: OK(vkllm_gguf_ref_bool(g, r, &b)); return vkllm_gguf_writer_add_bool(w, key, b);
    case VKLLM_GGUF_STRING: {
        const char *s;
        uint64_t len;
        OK(vkllm_gguf_ref_string(g, r, &s, &len));
        return vkllm_gguf_writer_add_string_n(w, key, s, len);
    }
    case VKLLM_GGUF_ARRAY: {
        uint64_t n = vkllm_gguf_ref_len(r);
        vkllm_gguf_type et = vkllm_gguf_ref_elem_type(r);
        if (et != VKLLM_GGUF_STRING && et != VKLLM_GGUF_ARRAY)
            return vkllm_gguf_writer_add_array(w, key, et, vkllm_gguf_ref_data(r), n);
        OK(vkllm_gguf_writer_begin_array(w, key, et));
        for (uint64_t i = 0; i < n; i++) OK(copy_value(g, w, NULL, vkllm_gguf_ref_at(r, i)));
        return vkllm_gguf_writer_end_array(w);
    }
    default: return VKLLM_ERROR_INTERNAL;
    }
}

/* Copies src to dst with the fault p. */
static void patch_model(const char *src, const char *dst, const patch *p)
{
    char err[512];
    vkllm_gguf *g;
    vkllm_gguf_writer *w;
    if (vkllm_gguf_open(src, &g, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    OK(vkllm_gguf_writer_create(dst, &w, err, sizeof err));
    int str_done = 0, u32_done = 0;
    for (uint64_t i = 0; i < vkllm_gguf_n_keys(g); i++) {
        const char *key = vkllm_gguf_key(g, i);
        if (is_key(key, p->drop_key)) continue;
        if (is_key(key, "general.alignment")) {
            uint32_t a;
            OK(vkllm_gguf_get_u32(g, key, &a));
            OK(vkllm_gguf_writer_set_alignment(w, a));
        } else if (is_key(key, p->str_key)) {
            OK(vkllm_gguf_writer_add_string(w, key, p->str_val));
            str_done = 1;
        } else if (is_key(key, p->u32_key)) {
            OK(vkllm_gguf_writer_add_u32(w, key, p->u32_val));
            u32_done = 1;
        } else if (copy_value(g, w, key, vkllm_gguf_key_ref(g, i)) != VKLLM_OK) {
            fail_msg("copying key %s: %s", key, vkllm_gguf_writer_error(w));
        }
    }
    if (p->str_key && !str_done) OK(vkllm_gguf_writer_add_string(w, p->str_key, p->str_val));
    if (p->u32_key && !u32_done) OK(vkllm_gguf_writer_add_u32(w, p->u32_key, p->u32_val));
    if (p->f32_key) OK(vkllm_gguf_writer_add_f32(w, p->f32_key, p->f32_val));

    /* declare */
    uint64_t nt = vkllm_gguf_n_tensors(g);
    uint64_t *bytes = calloc(nt + 2, sizeof *bytes);
    assert_non_null(bytes);
    for (uint64_t i = 0; i < nt; i++) {
        const vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        if (is_key(t->name, p->drop_tensor)) continue;
        uint64_t ne[4] = { t->ne[0], t->ne[1], t->ne[2], t->ne[3] };
        vkllm_dtype type = t->type;
        if (is_key(t->name, p->reshape_tensor)) { ne[0] = p->ne0; ne[1] = p->ne1; }
        if (is_key(t->name, p->retype_tensor)) type = VKLLM_DTYPE_F16;
        OK(vkllm_gguf_writer_add_tensor(w, t->name, type, t->n_dims, ne));
        OK(vkllm_dtype_bytes(type, ne[0] * ne[1] * ne[2] * ne[3], &bytes[i]));
    }
    const uint64_t half = p->n_rot_half;
    if (p->rope_factors) OK(vkllm_gguf_writer_add_tensor(w, "rope_factors_long.weight", VKLLM_DTYPE_F32, 1, &half));
    if (p->rope_factors == 1) OK(vkllm_gguf_writer_add_tensor(w, "rope_factors_short.weight", VKLLM_DTYPE_F32, 1, &half));
    OK(vkllm_gguf_writer_write_header(w));

    /* data: the original bytes, or zeros where the shape or type changed */
    for (uint64_t i = 0; i < nt; i++) {
        const vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        if (is_key(t->name, p->drop_tensor)) continue;
        if (bytes[i] == t->bytes && !is_key(t->name, p->retype_tensor)) {
            OK(vkllm_gguf_writer_write_data(w, t->data, (size_t)t->bytes));
        } else {
            void *z = calloc(1, (size_t)bytes[i]);
            assert_non_null(z);
            OK(vkllm_gguf_writer_write_data(w, z, (size_t)bytes[i]));
            free(z);
        }
    }
    for (int f = 0; f < (p->rope_factors == 1 ? 2 : p->rope_factors == 2 ? 1 : 0); f++) {
        float v[256];
        assert_true(half <= 256);
        for (uint64_t i = 0; i < half; i++) v[i] = f == 0 ? 1.0f + 0.5f * (float)i : 1.0f + 0.01f * (float)i;
        OK(vkllm_gguf_writer_write_data(w, v, (size_t)half * sizeof(float)));
    }
    if (vkllm_gguf_writer_finish(w) != VKLLM_OK) fail_msg("%s", vkllm_gguf_writer_error(w));
    vkllm_gguf_writer_destroy(w);
    vkllm_gguf_close(g);
    free(bytes);
}

/* Opens path and runs both checks; returns the first failure's status with its message in err. */
static vkllm_status check(const char *path, vkllm_phi3_hparams *hp, vkllm_phi3_tensors *t, char *err, size_t n)
{
    vkllm_gguf *g;
    vkllm_status s = vkllm_gguf_open(path, &g, err, n);
    if (s != VKLLM_OK) return s;
    s = vkllm_phi3_read_hparams(g, hp, err, n);
    if (s == VKLLM_OK) s = vkllm_phi3_check_tensors(g, hp, t, err, n);
    vkllm_gguf_close(g);
    return s;
}

/* Patches the base model with p and expects a BAD_MODEL refusal whose message holds every needle. */
static void expect_refusal(const patch *p, const char *n1, const char *n2, const char *n3)
{
    char path[320], err[512] = "";
    snprintf(path, sizeof path, "%s/patched.gguf", tmpdir);
    patch_model(base_path, path, p);
    vkllm_phi3_hparams hp;
    vkllm_status s = check(path, &hp, NULL, err, sizeof err);
    print_message("  refusal: %s\n", err);
    assert_int_equal(s, VKLLM_ERROR_BAD_MODEL);
    const char *needles[3] = { n1, n2, n3 };
    for (int i = 0; i < 3; i++)
        if (needles[i] && !strstr(err, needles[i])) fail_msg("message '%s' lacks '%s'", err, needles[i]);
    unlink(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vkllm_test_phi3_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(base_path, sizeof base_path, "%s/base.gguf", tmpdir);
    vkllm_mkmodel_config c = small_config();
    char err[512];
    if (vkllm_mkmodel_write(&c, base_path, NULL, err, sizeof err) != VKLLM_OK) {
        fprintf(stderr, "mkmodel: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(base_path);
    rmdir(tmpdir);
    return 0;
}

static void test_hparams_and_tensors(void **state)
{
    (void)state;
    vkllm_mkmodel_config c = small_config();
    vkllm_phi3_hparams hp;
    vkllm_phi3_tensors t;
    char err[512];
    vkllm_gguf *g; /* tensor pointers are valid while g is open */
    if (vkllm_gguf_open(base_path, &g, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    if (vkllm_phi3_read_hparams(g, &hp, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    if (vkllm_phi3_check_tensors(g, &hp, &t, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    assert_int_equal(hp.n_layer, c.n_layer);
    assert_int_equal(hp.n_embd, c.n_embd);
    assert_int_equal(hp.n_head, c.n_head);
    assert_int_equal(hp.n_head_kv, c.n_head_kv);
    assert_int_equal(hp.head_dim, c.n_embd / c.n_head);
    assert_int_equal(hp.n_ff, c.n_ff);
    assert_int_equal(hp.n_vocab, c.n_vocab);
    assert_int_equal(hp.n_ctx_train, c.n_ctx);
    assert_int_equal(hp.n_rot, hp.head_dim);
    assert_int_equal(hp.sliding_window, c.sliding_window);
    assert_int_equal(hp.n_ctx_orig, c.n_ctx);
    assert_int_equal(hp.has_rope_factors, 0);
    assert_true(hp.rope_base == c.rope_base);
    assert_true(hp.rms_eps == c.eps);
    assert_true(hp.rope_attn_factor == 1.0f);
    assert_int_equal(t.output_tied, 0);
    assert_non_null(t.output);
    assert_null(t.rope_long);
    for (uint32_t l = 0; l < hp.n_layer; l++) {
        assert_non_null(t.layer[l].attn_qkv);
        assert_int_equal(t.layer[l].attn_qkv->ne[1], hp.n_embd + 2 * vkllm_phi3_kv_dim(&hp));
        assert_int_equal(t.layer[l].ffn_up->ne[1], 2 * hp.n_ff);
        assert_int_equal(t.layer[l].ffn_down->ne[0], hp.n_ff);
    }
    vkllm_phi3_tensors_free(&t);
    vkllm_phi3_tensors_free(NULL);
    vkllm_gguf_close(g);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refusal(&(patch){ .str_key = "general.architecture", .str_val = "llama" }, "general.architecture",
                   "llama", NULL);
    expect_refusal(&(patch){ .drop_key = "general.architecture" }, "general.architecture", NULL, NULL);
    expect_refusal(&(patch){ .u32_key = "phi3.block_count", .u32_val = 0 }, "phi3.block_count", "= 0", NULL);
    expect_refusal(&(patch){ .u32_key = "phi3.attention.head_count", .u32_val = 3 }, "phi3.attention.head_count",
                   "3", "64");
    expect_refusal(&(patch){ .u32_key = "phi3.attention.head_count_kv", .u32_val = 3 }, "head_count_kv", "3", NULL);
    expect_refusal(&(patch){ .u32_key = "phi3.rope.dimension_count", .u32_val = 7 }, "phi3.rope.dimension_count",
                   "7", NULL);
    expect_refusal(&(patch){ .u32_key = "phi3.rope.dimension_count", .u32_val = 18 }, "phi3.rope.dimension_count",
                   "18", NULL);
    expect_refusal(&(patch){ .drop_key = "phi3.attention.layer_norm_rms_epsilon" },
                   "phi3.attention.layer_norm_rms_epsilon", NULL, NULL);
    expect_refusal(&(patch){ .u32_key = "phi3.feed_forward_length", .u32_val = 0xffffffffu }, "phi3.feed_forward_length",
                   "4294967295", NULL);
    /* a wrong type for a key: a string where a number belongs */
    expect_refusal(&(patch){ .str_key = "phi3.embedding_length", .str_val = "64" }, "phi3.embedding_length", NULL,
                   NULL);
    expect_refusal(&(patch){ .drop_tensor = "blk.1.ffn_down.weight" }, "blk.1.ffn_down.weight", "missing", NULL);
    expect_refusal(&(patch){ .drop_tensor = "output_norm.weight" }, "output_norm.weight", NULL, NULL);
    /* qkv should be [64, 64 + 2*32] = [64, 128] */
    expect_refusal(&(patch){ .reshape_tensor = "blk.0.attn_qkv.weight", .ne0 = 64, .ne1 = 192 },
                   "blk.0.attn_qkv.weight", "[64, 128]", "[64, 192]");
    expect_refusal(&(patch){ .reshape_tensor = "blk.1.ffn_up.weight", .ne0 = 64, .ne1 = 96 }, "blk.1.ffn_up.weight",
                   "[64, 192]", "[64, 96]");
    expect_refusal(&(patch){ .retype_tensor = "blk.0.ffn_norm.weight" }, "blk.0.ffn_norm.weight", "f16", NULL);
    expect_refusal(&(patch){ .rope_factors = 2, .n_rot_half = 8 }, "rope_factors_short.weight", "missing", NULL);
    expect_refusal(&(patch){ .rope_factors = 1, .n_rot_half = 4 }, "rope_factors_long.weight", "[8]", "[4]");
}

static void test_tied_output(void **state)
{
    (void)state;
    char path[320], err[512];
    snprintf(path, sizeof path, "%s/tied.gguf", tmpdir);
    patch_model(base_path, path, &(patch){ .drop_tensor = "output.weight" });
    vkllm_phi3_hparams hp;
    vkllm_phi3_tensors t;
    if (check(path, &hp, &t, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    assert_int_equal(t.output_tied, 1);
    assert_ptr_equal(t.output, t.token_embd);
    vkllm_phi3_tensors_free(&t);
    unlink(path);
}

static void test_longrope(void **state)
{
    (void)state;
    char path[320], err[512];
    snprintf(path, sizeof path, "%s/longrope.gguf", tmpdir);
    /* head_dim 16 -> 8 factors; original context 128 of 512 */
    patch_model(base_path, path, &(patch){ .rope_factors = 1, .n_rot_half = 8,
                                           .u32_key = "phi3.rope.scaling.original_context_length", .u32_val = 128 });
    vkllm_gguf *g;
    if (vkllm_gguf_open(path, &g, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    vkllm_phi3_hparams hp;
    vkllm_phi3_tensors t;
    if (vkllm_phi3_read_hparams(g, &hp, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    if (vkllm_phi3_check_tensors(g, &hp, &t, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    assert_int_equal(hp.has_rope_factors, 1);
    assert_int_equal(hp.n_ctx_orig, 128);
    assert_non_null(t.rope_long);
    assert_non_null(t.rope_short);
    float f[8], af = 0;
    int has = 0;
    /* up to the original context: short factors */
    OK(vkllm_phi3_rope_scaling(g, &hp, 128, f, &has, &af, err, sizeof err));
    assert_int_equal(has, 1);
    for (int i = 0; i < 8; i++) assert_float_equal(f[i], 1.0f + 0.01f * (float)i, 0);
    assert_true(af == 1.0f);
    /* beyond it: long factors */
    OK(vkllm_phi3_rope_scaling(g, &hp, 129, f, &has, &af, err, sizeof err));
    for (int i = 0; i < 8; i++) assert_float_equal(f[i], 1.0f + 0.5f * (float)i, 0);
    vkllm_phi3_tensors_free(&t);
    vkllm_gguf_close(g);
    unlink(path);

    /* the attention factor comes from the file when present */
    vkllm_gguf_open(base_path, &g, err, sizeof err);
    OK(vkllm_phi3_read_hparams(g, &hp, err, sizeof err));
    has = 7;
    OK(vkllm_phi3_rope_scaling(g, &hp, 100000, NULL, &has, &af, err, sizeof err));
    assert_int_equal(has, 0);
    assert_true(af == 1.0f);
    vkllm_gguf_close(g);
}

/* LongRoPE reaches the reference model: layer 0's q equals W_q · attn_norm rotated with
 * inv_freq[i] = base^(-2i/d) / factor[i] and cos, sin scaled by the attention factor, with the long
 * factors for a context beyond the original one and the short ones otherwise. */
typedef struct q_grab { float *attn_norm, *q; } q_grab;

static void grab(void *user, int layer, const char *name, const float *data, uint32_t n_tok, uint32_t width)
{
    q_grab *g = user;
    float **slot = layer != 0 ? NULL : !strcmp(name, "attn_norm") ? &g->attn_norm : !strcmp(name, "q") ? &g->q : NULL;
    if (!slot) return;
    *slot = malloc((size_t)n_tok * width * sizeof(float));
    memcpy(*slot, data, (size_t)n_tok * width * sizeof(float));
}

static void test_longrope_in_reference(void **state)
{
    (void)state;
    char path[320], err[512];
    snprintf(path, sizeof path, "%s/longrope_ref.gguf", tmpdir);
    patch_model(base_path, path, &(patch){ .rope_factors = 1, .n_rot_half = 8, .f32_key = "phi3.rope.scaling.attn_factor",
                                           .f32_val = 1.19f, .u32_key = "phi3.rope.scaling.original_context_length",
                                           .u32_val = 128 });
    vkllm_gguf *g;
    vkllm_phi3_hparams hp;
    if (vkllm_gguf_open(path, &g, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    OK(vkllm_phi3_read_hparams(g, &hp, err, sizeof err));
    assert_float_equal(hp.rope_attn_factor, 1.19f, 0);
    const vkllm_gguf_tensor *tq = vkllm_gguf_find_tensor(g, "blk.0.attn_qkv.weight");
    float *w = malloc((size_t)tq->n_elems * sizeof(float));
    vkllm_dequantize(tq->type, tq->data, w, (size_t)tq->n_elems);
    const uint32_t T = 6, E = hp.n_embd, D = hp.head_dim, Q = hp.n_head * D;
    const int32_t tok[6] = { 5, 6, 7, 8, 9, 10 };
    for (int longctx = 0; longctx < 2; longctx++) {
        vkllm_ref_model *m;
        vkllm_ref_model_options o = { longctx ? 129 : 128, 0, 0, 0 };
        if (vkllm_ref_model_create(g, &hp, &o, &m, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
        q_grab c = { NULL, NULL };
        OK(vkllm_ref_model_forward(m, tok, T, 0, NULL, 0, grab, &c));
        float *want = malloc((size_t)T * Q * sizeof(float));
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t h = 0; h < hp.n_head; h++) {
                double raw[64];
                for (uint32_t d = 0; d < D; d++) {
                    double a = 0;
                    for (uint32_t e = 0; e < E; e++) a += (double)w[(size_t)(h * D + d) * E + e] * c.attn_norm[t * E + e];
                    raw[d] = a;
                }
                for (uint32_t i = 0; i < D / 2; i++) {
                    double factor = longctx ? 1.0 + 0.5 * i : 1.0 + 0.01 * i; /* what patch_model wrote */
                    double th = t * pow(hp.rope_base, -2.0 * i / D) / (float)factor;
                    double cs = cos(th) * 1.19f, sn = sin(th) * 1.19f;
                    want[t * Q + h * D + i] = (float)(raw[i] * cs - raw[i + D / 2] * sn);
                    want[t * Q + h * D + i + D / 2] = (float)(raw[i] * sn + raw[i + D / 2] * cs);
                }
            }
        tu_assert_nmse(c.q, want, (size_t)T * Q, 1e-10, "LongRoPE q (%s factors)", longctx ? "long" : "short");
        free(want);
        free(c.q);
        free(c.attn_norm);
        vkllm_ref_model_destroy(m);
    }
    free(w);
    vkllm_gguf_close(g);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hparams_and_tensors),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_tied_output),
        cmocka_unit_test(test_longrope),
        cmocka_unit_test(test_longrope_in_reference),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
