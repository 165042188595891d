/* HDF5 fixtures: a reference run written and read back bit-exactly; an absent checkpoint reported
 * as absent (not an error); the variable-length string attributes h5py writes accepted; one
 * corrupted file per fault class refused with a message naming what is wrong (missing or mistyped
 * attributes, wrong format/version, zero or huge dims, bad tokens, wrong dataset shapes or classes,
 * a non-HDF5 file, a truncated file); a fixture of another model refused as a mismatch; and the
 * mkfixtures tool end to end when its binary is at hand. */
#include "testutil.h"

#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vkllm/fixture.h"
#include "vkllm/gguf.h"
#include "vkllm/mkmodel.h"
#include "vkllm/phi3.h"
#include "vkllm/ref_model.h"

#define OK(x) do { vkllm_status s_ = (x); if (s_ != VKLLM_OK) fail_msg("%s -> %s", #x, vkllm_strerror(s_)); } while (0)

static char tmpdir[256], model_path[320], good_path[320];
static vkllm_phi3_hparams hp;
enum { T = 5 };
static const int32_t tokens[T] = { 4, 99, 0, 17, 300 };

/* every checkpoint of the reference run, kept to compare with what is read back */
typedef struct kept {
    int layer;
    char name[16];
    float *data;
    uint32_t width;
} kept;
static kept store[64];
static int n_store;

typedef struct writer_ctx {
    vkllm_fixture *f;
    int skip_layer;        /* this layer's "ffn_act" is not written */
    vkllm_status st;
} writer_ctx;

static void on_checkpoint(void *user, int layer, const char *name, const float *data, uint32_t n_tok, uint32_t width)
{
    writer_ctx *w = user;
    if (n_store < 64) {
        kept *k = &store[n_store++];
        k->layer = layer;
        snprintf(k->name, sizeof k->name, "%s", name);
        k->width = width;
        k->data = malloc((size_t)n_tok * width * sizeof(float));
        memcpy(k->data, data, (size_t)n_tok * width * sizeof(float));
    }
    if (layer == w->skip_layer && !strcmp(name, "ffn_act")) return;
    if (w->st == VKLLM_OK) w->st = vkllm_fixture_write(w->f, layer, name, data, n_tok, width);
    if (w->st != VKLLM_OK) fprintf(stderr, "write: %s\n", vkllm_fixture_error(w->f));
}

static int setup(void **state)
{
    (void)state;
    char err[512];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vkllm_test_fixture_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(model_path, sizeof model_path, "%s/m.gguf", tmpdir);
    snprintf(good_path, sizeof good_path, "%s/good.h5", tmpdir);
    vkllm_mkmodel_config c;
    vkllm_mkmodel_preset("tiny", &c);
    c.n_layer = 2;
    c.n_embd = 64;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.n_ff = 96;
    c.n_merges = 16;
    c.n_vocab = 320;
    c.n_ctx = 64;
    c.ftype = VKLLM_MKMODEL_F16;
    c.threads = 1;
    if (vkllm_mkmodel_write(&c, model_path, NULL, err, sizeof err) != VKLLM_OK) {
        fprintf(stderr, "mkmodel: %s\n", err);
        return -1;
    }
    /* the reference run, with blk 1's ffn_act left out of the file */
    vkllm_gguf *g;
    vkllm_ref_model *m;
    if (vkllm_gguf_open(model_path, &g, err, sizeof err) || vkllm_phi3_read_hparams(g, &hp, err, sizeof err) ||
        vkllm_ref_model_create(g, &hp, NULL, &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    vkllm_gguf_close(g);
    vkllm_fixture_dims d;
    vkllm_fixture_dims_from_hparams(&d, &hp, T);
    writer_ctx w = { NULL, 1, VKLLM_OK };
    if (vkllm_fixture_create(good_path, &d, tokens, &w.f, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    vkllm_status s = vkllm_ref_model_forward(m, tokens, T, 0, NULL, 0, on_checkpoint, &w);
    vkllm_ref_model_destroy(m);
    if (vkllm_fixture_close(w.f, err, sizeof err) || s || w.st) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < n_store; i++) free(store[i].data);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_round_trip(void **state)
{
    (void)state;
    char err[512];
    vkllm_fixture *f;
    if (vkllm_fixture_open(good_path, &hp, &f, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    const vkllm_fixture_dims *d = vkllm_fixture_get_dims(f);
    assert_int_equal(d->n_tok, T);
    assert_int_equal(d->n_layer, hp.n_layer);
    assert_int_equal(d->head_dim, hp.head_dim);
    assert_true(d->rope_base == hp.rope_base);
    assert_true(d->rms_eps == hp.rms_eps);
    assert_memory_equal(vkllm_fixture_tokens(f), tokens, sizeof tokens);
    assert_int_equal(n_store, 2 * VKLLM_REF_N_LAYER_CHECKPOINTS + 2);
    float *buf = malloc((size_t)T * hp.n_vocab * sizeof(float));
    int n_found = 0;
    for (int i = 0; i < n_store; i++) {
        int found = -1;
        size_t n = (size_t)T * store[i].width;
        tu_poison(buf, n);
        OK(vkllm_fixture_read(f, store[i].layer, store[i].name, buf, (size_t)T * hp.n_vocab, &found));
        if (store[i].layer == 1 && !strcmp(store[i].name, "ffn_act")) {
            assert_int_equal(found, 0); /* absent: reported, not an error */
            continue;
        }
        assert_int_equal(found, 1);
        n_found++;
        assert_memory_equal(buf, store[i].data, n * sizeof(float));
    }
    assert_int_equal(n_found, n_store - 1);
    /* bad requests: unknown name, layer out of range, small buffer */
    int found;
    assert_int_equal(vkllm_fixture_read(f, 0, "qq", buf, (size_t)T * hp.n_vocab, &found), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_fixture_read(f, 2, "q", buf, (size_t)T * hp.n_vocab, &found), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_fixture_read(f, -1, "q", buf, (size_t)T * hp.n_vocab, &found), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_fixture_read(f, -1, "logits", buf, 10, &found), VKLLM_ERROR_INVALID_ARGUMENT);
    print_message("  refusal: %s\n", vkllm_fixture_error(f));
    OK(vkllm_fixture_close(f, err, sizeof err));
    free(buf);
    assert_int_equal(vkllm_fixture_close(NULL, NULL, 0), VKLLM_OK);
}

static void test_widths_and_paths(void **state)
{
    (void)state;
    vkllm_fixture_dims d;
    vkllm_fixture_dims_from_hparams(&d, &hp, 3);
    assert_int_equal(vkllm_fixture_width(&d, 0, "q"), 64);
    assert_int_equal(vkllm_fixture_width(&d, 1, "k"), 32);
    assert_int_equal(vkllm_fixture_width(&d, 1, "ffn_act"), 96);
    assert_int_equal(vkllm_fixture_width(&d, -1, "logits"), 320);
    assert_int_equal(vkllm_fixture_width(&d, -1, "out"), 0);
    assert_int_equal(vkllm_fixture_width(&d, 2, "out"), 0);
    assert_int_equal(vkllm_fixture_width(&d, -2, "logits"), 0);
    char p[32];
    assert_true(vkllm_fixture_path(p, sizeof p, 7, "attn_out"));
    assert_string_equal(p, "/layer_07/attn_out");
    assert_true(vkllm_fixture_path(p, sizeof p, -1, "logits"));
    assert_string_equal(p, "/logits");
    assert_false(vkllm_fixture_path(p, 8, 7, "attn_out"));
}

/* ------------------------------------------------------------------------------------------------
 * Corrupted files: copy the good one, apply one fault with raw HDF5 calls, expect a refusal. */

static void copy_file(const char *src, const char *dst)
{
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

static void set_attr(hid_t file, const char *name, hid_t type, int rank, hsize_t n, const void *v)
{
    if (H5Aexists(file, name) > 0) assert_true(H5Adelete(file, name) >= 0);
    hid_t sp = rank ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, type, v) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static void set_dataset(hid_t file, const char *path, hid_t type, int rank, const hsize_t *dims, const void *v)
{
    if (H5Lexists(file, path, H5P_DEFAULT) > 0) assert_true(H5Ldelete(file, path, H5P_DEFAULT) >= 0);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(file, path, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
}

enum fault {
    F_NO_FORMAT, F_FORMAT_WRONG, F_FORMAT_VARLEN_OK, F_FORMAT_INT, F_VERSION_2, F_VERSION_FLOAT, F_VERSION_ARRAY,
    F_NO_N_EMBD, F_N_EMBD_ZERO, F_N_EMBD_HUGE, F_N_EMBD_STRING, F_KV_NOT_DIVIDING, F_ROPE_NAN, F_NO_TOKENS,
    F_TOKENS_2D, F_TOKENS_FLOAT, F_TOKEN_RANGE, F_CKPT_SHAPE, F_CKPT_CLASS, F_CKPT_GROUP, F_N_FF_OTHER_MODEL,
};

static void apply(enum fault fault, const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    int64_t i64;
    double f64;
    switch (fault) {
    case F_NO_FORMAT: H5Adelete(f, "format"); break;
    case F_FORMAT_WRONG: {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 8);
        set_attr(f, "format", t, 0, 1, "vkllm-fx");
        H5Tclose(t);
        break;
    }
    case F_FORMAT_VARLEN_OK: {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        const char *s = VKLLM_FIXTURE_FORMAT;
        set_attr(f, "format", t, 0, 1, &s);
        H5Tclose(t);
        break;
    }
    case F_FORMAT_INT: i64 = 1; set_attr(f, "format", H5T_NATIVE_INT64, 0, 1, &i64); break;
    case F_VERSION_2: i64 = 2; set_attr(f, "version", H5T_NATIVE_INT64, 0, 1, &i64); break;
    case F_VERSION_FLOAT: f64 = 1; set_attr(f, "version", H5T_NATIVE_DOUBLE, 0, 1, &f64); break;
    case F_VERSION_ARRAY: { int64_t v[2] = { 1, 1 }; set_attr(f, "version", H5T_NATIVE_INT64, 1, 2, v); break; }
    case F_NO_N_EMBD: H5Adelete(f, "n_embd"); break;
    case F_N_EMBD_ZERO: i64 = 0; set_attr(f, "n_embd", H5T_NATIVE_INT64, 0, 1, &i64); break;
    case F_N_EMBD_HUGE: i64 = INT64_MAX; set_attr(f, "n_embd", H5T_NATIVE_INT64, 0, 1, &i64); break;
    case F_N_EMBD_STRING: {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 2);
        set_attr(f, "n_embd", t, 0, 1, "64");
        H5Tclose(t);
        break;
    }
    case F_KV_NOT_DIVIDING: i64 = 3; set_attr(f, "n_head_kv", H5T_NATIVE_INT64, 0, 1, &i64); break;
    case F_ROPE_NAN: f64 = NAN; set_attr(f, "rope_base", H5T_NATIVE_DOUBLE, 0, 1, &f64); break;
    case F_NO_TOKENS: H5Ldelete(f, "/tokens", H5P_DEFAULT); break;
    case F_TOKENS_2D: { hsize_t d[2] = { 1, T }; set_dataset(f, "/tokens", H5T_NATIVE_INT32, 2, d, tokens); break; }
    case F_TOKENS_FLOAT: {
        float v[T] = { 1, 2, 3, 4, 5 };
        hsize_t d = T;
        set_dataset(f, "/tokens", H5T_NATIVE_FLOAT, 1, &d, v);
        break;
    }
    case F_TOKEN_RANGE: {
        int32_t v[T] = { 1, 2, 320, 4, 5 };
        hsize_t d = T;
        set_dataset(f, "/tokens", H5T_NATIVE_INT32, 1, &d, v);
        break;
    }
    case F_CKPT_SHAPE: {
        float v[T * 63] = { 0 };
        hsize_t d[2] = { T, 63 };
        set_dataset(f, "/layer_00/q", H5T_NATIVE_FLOAT, 2, d, v);
        break;
    }
    case F_CKPT_CLASS: {
        int32_t v[T * 64] = { 0 };
        hsize_t d[2] = { T, 64 };
        set_dataset(f, "/layer_00/q", H5T_NATIVE_INT32, 2, d, v);
        break;
    }
    case F_CKPT_GROUP: {
        H5Ldelete(f, "/layer_00/q", H5P_DEFAULT);
        hid_t g = H5Gcreate2(f, "/layer_00/q", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Gclose(g);
        break;
    }
    case F_N_FF_OTHER_MODEL: i64 = 97; set_attr(f, "n_ff", H5T_NATIVE_INT64, 0, 1, &i64); break;
    }
    assert_true(H5Fclose(f) >= 0);
}

/* Opens the faulty copy (with the model's hparams) and reads layer 0's q. */
static vkllm_status try_fixture(const char *path, char *err, size_t n)
{
    vkllm_fixture *f;
    vkllm_status s = vkllm_fixture_open(path, &hp, &f, err, n);
    if (s != VKLLM_OK) return s;
    static float buf[T * 320];
    int found;
    s = vkllm_fixture_read(f, 0, "q", buf, sizeof buf / sizeof buf[0], &found);
    if (s != VKLLM_OK) snprintf(err, n, "%s", vkllm_fixture_error(f));
    vkllm_fixture_close(f, NULL, 0);
    return s;
}

static void test_corrupted(void **state)
{
    (void)state;
    static const struct { enum fault f; vkllm_status want; const char *needle; } cases[] = {
        { F_NO_FORMAT, VKLLM_ERROR_BAD_FILE, "'format' is missing" },
        { F_FORMAT_WRONG, VKLLM_ERROR_BAD_FILE, "vkllm-fx" },
        { F_FORMAT_VARLEN_OK, VKLLM_OK, NULL },
        { F_FORMAT_INT, VKLLM_ERROR_BAD_FILE, "'format'" },
        { F_VERSION_2, VKLLM_ERROR_BAD_FILE, "'version' = 2" },
        { F_VERSION_FLOAT, VKLLM_ERROR_BAD_FILE, "'version'" },
        { F_VERSION_ARRAY, VKLLM_ERROR_BAD_FILE, "'version'" },
        { F_NO_N_EMBD, VKLLM_ERROR_BAD_FILE, "'n_embd' is missing" },
        { F_N_EMBD_ZERO, VKLLM_ERROR_BAD_FILE, "'n_embd' = 0" },
        { F_N_EMBD_HUGE, VKLLM_ERROR_BAD_FILE, "'n_embd' = 9223372036854775807" },
        { F_N_EMBD_STRING, VKLLM_ERROR_BAD_FILE, "'n_embd'" },
        { F_KV_NOT_DIVIDING, VKLLM_ERROR_BAD_FILE, "n_head_kv = 3" },
        { F_ROPE_NAN, VKLLM_ERROR_BAD_FILE, "rope_base" },
        { F_NO_TOKENS, VKLLM_ERROR_BAD_FILE, "/tokens is missing" },
        { F_TOKENS_2D, VKLLM_ERROR_BAD_FILE, "/tokens" },
        { F_TOKENS_FLOAT, VKLLM_ERROR_BAD_FILE, "/tokens" },
        { F_TOKEN_RANGE, VKLLM_ERROR_BAD_FILE, "/tokens[2] = 320" },
        { F_CKPT_SHAPE, VKLLM_ERROR_BAD_FILE, "(5, 63)" },
        { F_CKPT_CLASS, VKLLM_ERROR_BAD_FILE, "/layer_00/q" },
        { F_CKPT_GROUP, VKLLM_ERROR_BAD_FILE, "/layer_00/q" },
        { F_N_FF_OTHER_MODEL, VKLLM_ERROR_MISMATCH, "'n_ff' = 97" },
    };
    char path[340], err[512];
    snprintf(path, sizeof path, "%s/bad.h5", tmpdir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        copy_file(good_path, path);
        apply(cases[i].f, path);
        err[0] = 0;
        vkllm_status s = try_fixture(path, err, sizeof err);
        print_message("  case %zu: %s\n", i, s ? err : "accepted");
        if (s != cases[i].want) fail_msg("case %zu: status %d (%s), wanted %d", i, (int)s, err, (int)cases[i].want);
        if (cases[i].needle && !strstr(err, cases[i].needle))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err, cases[i].needle);
    }
    unlink(path);
}

static void test_not_hdf5(void **state)
{
    (void)state;
    char path[340], err[512];
    vkllm_fixture *f = (vkllm_fixture *)&hp;
    snprintf(path, sizeof path, "%s/none.h5", tmpdir);
    assert_int_equal(vkllm_fixture_open(path, NULL, &f, err, sizeof err), VKLLM_ERROR_IO);
    assert_null(f);
    print_message("  %s\n", err);
    /* the GGUF model is not HDF5 */
    assert_int_equal(vkllm_fixture_open(model_path, NULL, &f, err, sizeof err), VKLLM_ERROR_BAD_FILE);
    print_message("  %s\n", err);
    /* truncated copies: a clean refusal at open or at read, never a crash */
    FILE *a = fopen(good_path, "rb");
    fseek(a, 0, SEEK_END);
    long size = ftell(a);
    fclose(a);
    for (int k = 1; k < 8; k++) {
        snprintf(path, sizeof path, "%s/trunc.h5", tmpdir);
        copy_file(good_path, path);
        assert_int_equal(truncate(path, size * k / 8), 0);
        vkllm_status s = try_fixture(path, err, sizeof err);
        print_message("  truncated to %d/8: %s\n", k, s ? err : "accepted");
        assert_int_not_equal(s, VKLLM_OK);
    }
    unlink(path);
}

static void test_writer_refusals(void **state)
{
    (void)state;
    char path[340], err[512];
    snprintf(path, sizeof path, "%s/w.h5", tmpdir);
    vkllm_fixture_dims d;
    vkllm_fixture_dims_from_hparams(&d, &hp, T);
    vkllm_fixture *f;
    int32_t bad[T] = { 0, 1, 2, 3, 320 };
    assert_int_equal(vkllm_fixture_create(path, &d, bad, &f, err, sizeof err), VKLLM_ERROR_INVALID_ARGUMENT);
    OK(vkllm_fixture_create(path, &d, tokens, &f, err, sizeof err));
    float x[T * 96] = { 0 };
    assert_int_equal(vkllm_fixture_write(f, 0, "q", x, T, 63), VKLLM_ERROR_INVALID_ARGUMENT);
    print_message("  %s\n", vkllm_fixture_error(f));
    assert_int_equal(vkllm_fixture_write(f, 0, "nope", x, T, 64), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_fixture_write(f, 5, "q", x, T, 64), VKLLM_ERROR_INVALID_ARGUMENT);
    OK(vkllm_fixture_write(f, 1, "ffn_act", x, T, 96));
    assert_int_equal(vkllm_fixture_write(f, 1, "ffn_act", x, T, 96), VKLLM_ERROR_IO); /* exists already */
    OK(vkllm_fixture_close(f, err, sizeof err));
    unlink(path);
}

/* The tool end to end, when the build put it next to the tests. */
static void test_mkfixtures_tool(void **state)
{
    (void)state;
    const char *bin = getenv("VKLLM_BIN");
    char tool[400], cmd[1400], out[340], err[512];
    snprintf(tool, sizeof tool, "%s/mkfixtures", bin ? bin : ".");
    if (!bin || access(tool, X_OK)) {
        print_message("  skipped: no mkfixtures binary in VKLLM_BIN\n");
        return;
    }
    snprintf(out, sizeof out, "%s/tool.h5", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' --tokens 4,99,0,17,300 -o '%s' > /dev/null", tool, model_path, out);
    assert_int_equal(system(cmd), 0);
    vkllm_fixture *f;
    if (vkllm_fixture_open(out, &hp, &f, err, sizeof err) != VKLLM_OK) fail_msg("%s", err);
    static float buf[T * 320];
    int found;
    OK(vkllm_fixture_read(f, -1, "logits", buf, sizeof buf / sizeof buf[0], &found));
    assert_int_equal(found, 1);
    for (int i = 0; i < n_store; i++)
        if (store[i].layer == -1 && !strcmp(store[i].name, "logits"))
            assert_memory_equal(buf, store[i].data, sizeof buf);
    vkllm_fixture_close(f, NULL, 0);
    /* bad input: one line on stderr, non-zero exit */
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' --tokens 4,x -o '%s' 2> /dev/null", tool, model_path, out);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' -m '%s' --random 3 --tokens 1 -o '%s' 2> /dev/null", tool, model_path, out);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' --help > /dev/null", tool);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_widths_and_paths),
        cmocka_unit_test(test_corrupted),
        cmocka_unit_test(test_not_hdf5),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_mkfixtures_tool),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
