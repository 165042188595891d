/* GGUF reader/writer: a round trip of every metadata type and several tensor types, writer misuse,
 * and one corrupted file per class of bad input, each built by patching bytes of a valid file and
 * checked for the status and for a message that names the field. */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vkllm/gguf.h"

static char tmpdir[256];

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

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

#define OK(x) do { vkllm_status s_ = (x); if (s_ != VKLLM_OK) fail_msg("%s -> %s", #x, vkllm_strerror(s_)); } while (0)
#define WOK(w, x) do { vkllm_status s_ = (x); if (s_ != VKLLM_OK) fail_msg("%s -> %s: %s", #x, vkllm_strerror(s_), vkllm_gguf_writer_error(w)); } while (0)

/* ------------------------------------------------------------------------------------------------
 * Round trip */

typedef struct tspec { const char *name; vkllm_dtype type; uint32_t n_dims; uint64_t ne[4]; } tspec;

static const tspec round_tensors[] = {
    { "odd.f32", VKLLM_DTYPE_F32, 1, { 7 } },
    { "mat.f16", VKLLM_DTYPE_F16, 2, { 33, 3 } },
    { "mat.bf16", VKLLM_DTYPE_BF16, 2, { 5, 5 } },
    { "blk.0.q8_0", VKLLM_DTYPE_Q8_0, 2, { 64, 3 } },
    { "blk.0.q4_0", VKLLM_DTYPE_Q4_0, 3, { 32, 3, 2 } },
    { "blk.1.q4_k", VKLLM_DTYPE_Q4_K, 2, { 256, 2 } },
    { "blk.1.q5_k", VKLLM_DTYPE_Q5_K, 1, { 512 } },
    { "blk.1.q6_k", VKLLM_DTYPE_Q6_K, 4, { 256, 1, 2, 1 } },
};
#define N_ROUND (sizeof round_tensors / sizeof round_tensors[0])

static uint64_t tbytes(const tspec *t)
{
    uint64_t n = 1, b = 0;
    for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d];
    assert_int_equal(vkllm_dtype_bytes(t->type, n, &b), VKLLM_OK);
    return b;
}

static void write_round(const char *path, uint32_t alignment, uint8_t **data, uint64_t seed)
{
    char err[512];
    vkllm_gguf_writer *w;
    OK(vkllm_gguf_writer_create(path, &w, err, sizeof err));
    if (alignment != VKLLM_GGUF_DEFAULT_ALIGNMENT) WOK(w, vkllm_gguf_writer_set_alignment(w, alignment));
    WOK(w, vkllm_gguf_writer_add_string(w, "general.architecture", "phi3"));
    WOK(w, vkllm_gguf_writer_add_u8(w, "t.u8", 200));
    WOK(w, vkllm_gguf_writer_add_i8(w, "t.i8", -100));
    WOK(w, vkllm_gguf_writer_add_u16(w, "t.u16", 65000));
    WOK(w, vkllm_gguf_writer_add_i16(w, "t.i16", -32000));
    WOK(w, vkllm_gguf_writer_add_u32(w, "t.u32", 4000000000u));
    WOK(w, vkllm_gguf_writer_add_i32(w, "t.i32", -2000000000));
    WOK(w, vkllm_gguf_writer_add_u64(w, "t.u64", 0xfedcba9876543210ull));
    WOK(w, vkllm_gguf_writer_add_i64(w, "t.i64", -5));
    WOK(w, vkllm_gguf_writer_add_f32(w, "t.f32", 1e-5f));
    WOK(w, vkllm_gguf_writer_add_f64(w, "t.f64", 250000.125));
    WOK(w, vkllm_gguf_writer_add_f64(w, "t.f64_big", -1e300));
    WOK(w, vkllm_gguf_writer_add_bool(w, "t.bool", 1));
    WOK(w, vkllm_gguf_writer_add_string_n(w, "t.str_nul", "a\0b", 3));
    WOK(w, vkllm_gguf_writer_add_string(w, "t.str_empty", ""));
    int32_t ia[5] = { 1, -2, 3, -4, 5 };
    WOK(w, vkllm_gguf_writer_add_array(w, "t.arr_i32", VKLLM_GGUF_INT32, ia, 5));
    float fa[3] = { 0.5f, -1.5f, 3.25f };
    WOK(w, vkllm_gguf_writer_add_array(w, "t.arr_f32", VKLLM_GGUF_FLOAT32, fa, 3));
    uint8_t ba[4] = { 1, 0, 0, 1 };
    WOK(w, vkllm_gguf_writer_add_array(w, "t.arr_bool", VKLLM_GGUF_BOOL, ba, 4));
    uint64_t ua[2] = { 1, UINT64_MAX };
    WOK(w, vkllm_gguf_writer_add_array(w, "t.arr_u64", VKLLM_GGUF_UINT64, ua, 2));
    double da[2] = { 1.0 / 3.0, -2.0 };
    WOK(w, vkllm_gguf_writer_add_array(w, "t.arr_f64", VKLLM_GGUF_FLOAT64, da, 2));
    int16_t sa[3] = { -1, 2, -3 };
    WOK(w, vkllm_gguf_writer_add_array(w, "t.arr_i16", VKLLM_GGUF_INT16, sa, 3));
    WOK(w, vkllm_gguf_writer_add_array(w, "t.arr_empty", VKLLM_GGUF_UINT8, NULL, 0));
    const char *strs[3] = { "hello", "", "w\xc3\xb6rld" };
    WOK(w, vkllm_gguf_writer_add_string_array(w, "t.arr_str", strs, 3));
    /* [[1,2],[],[3]] of u32 and [["x"],["y","z"]] */
    WOK(w, vkllm_gguf_writer_begin_array(w, "t.nested", VKLLM_GGUF_ARRAY));
    WOK(w, vkllm_gguf_writer_begin_array(w, NULL, VKLLM_GGUF_UINT32));
    WOK(w, vkllm_gguf_writer_add_u32(w, NULL, 1));
    WOK(w, vkllm_gguf_writer_add_u32(w, NULL, 2));
    WOK(w, vkllm_gguf_writer_end_array(w));
    WOK(w, vkllm_gguf_writer_begin_array(w, NULL, VKLLM_GGUF_UINT32));
    WOK(w, vkllm_gguf_writer_end_array(w));
    WOK(w, vkllm_gguf_writer_begin_array(w, NULL, VKLLM_GGUF_UINT32));
    WOK(w, vkllm_gguf_writer_add_u32(w, NULL, 3));
    assert_int_equal(vkllm_gguf_writer_add_i32(w, NULL, 3), VKLLM_ERROR_INVALID_ARGUMENT); /* wrong type */
    WOK(w, vkllm_gguf_writer_end_array(w));
    WOK(w, vkllm_gguf_writer_end_array(w));
    WOK(w, vkllm_gguf_writer_begin_array(w, "t.nested_str", VKLLM_GGUF_ARRAY));
    WOK(w, vkllm_gguf_writer_begin_array(w, NULL, VKLLM_GGUF_STRING));
    WOK(w, vkllm_gguf_writer_add_string(w, NULL, "x"));
    WOK(w, vkllm_gguf_writer_end_array(w));
    WOK(w, vkllm_gguf_writer_add_string_array(w, NULL, (const char *const[]){ "y", "z" }, 2));
    WOK(w, vkllm_gguf_writer_end_array(w));
    assert_int_equal(vkllm_gguf_writer_add_u32(w, "t.u8", 1), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_gguf_writer_error(w), "duplicate key 't.u8'"));

    tu_rng r = tu_rng_for(seed);
    for (size_t i = 0; i < N_ROUND; i++) {
        const tspec *t = &round_tensors[i];
        WOK(w, vkllm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne));
        uint64_t nb = tbytes(t);
        data[i] = malloc(nb);
        assert_non_null(data[i]);
        for (uint64_t k = 0; k < nb; k++) data[i][k] = (uint8_t)tu_next(&r);
    }
    assert_int_equal(vkllm_gguf_writer_add_tensor(w, "mat.f16", VKLLM_DTYPE_F16, 1, (uint64_t[]){ 2 }),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_gguf_writer_add_tensor(w, "bad.q8", VKLLM_DTYPE_Q8_0, 1, (uint64_t[]){ 48 }),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    uint64_t expect_size = vkllm_gguf_writer_file_size(w);
    WOK(w, vkllm_gguf_writer_write_header(w));
    for (size_t i = 0; i < N_ROUND; i++) {
        uint64_t nb = tbytes(&round_tensors[i]);
        /* stream in uneven pieces, as mkmodel's row chunks */
        uint64_t done = 0;
        while (done < nb) {
            uint64_t k = 1 + tu_next(&r) % 50;
            if (k > nb - done) k = nb - done;
            WOK(w, vkllm_gguf_writer_write_data(w, data[i] + done, (size_t)k));
            done += k;
        }
    }
    WOK(w, vkllm_gguf_writer_finish(w));
    vkllm_gguf_writer_destroy(w);
    size_t n;
    free(slurp(path, &n));
    assert_int_equal(n, expect_size);
}

static void check_round(const char *path, uint32_t alignment, uint8_t **data)
{
    char err[512];
    vkllm_gguf *g;
    vkllm_status s = vkllm_gguf_open(path, &g, err, sizeof err);
    if (s != VKLLM_OK) fail_msg("open: %s", err);
    assert_int_equal(vkllm_gguf_version(g), 3);
    assert_int_equal(vkllm_gguf_alignment(g), alignment);
    assert_int_equal(vkllm_gguf_data_offset(g) % alignment, 0);

    const char *str;
    uint64_t len;
    OK(vkllm_gguf_get_string(g, "general.architecture", &str, &len));
    assert_string_equal(str, "phi3");
    assert_int_equal(len, 4);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f32;
    double f64;
    int b;
    OK(vkllm_gguf_get_u32(g, "t.u8", &u32));
    assert_int_equal(u32, 200);
    OK(vkllm_gguf_get_i32(g, "t.i8", &i32));
    assert_int_equal(i32, -100);
    OK(vkllm_gguf_get_u32(g, "t.u16", &u32));
    assert_int_equal(u32, 65000);
    OK(vkllm_gguf_get_i32(g, "t.i16", &i32));
    assert_int_equal(i32, -32000);
    OK(vkllm_gguf_get_u32(g, "t.u32", &u32));
    assert_int_equal(u32, 4000000000u);
    OK(vkllm_gguf_get_u64(g, "t.u32", &u64)); /* widening */
    assert_int_equal(u64, 4000000000u);
    OK(vkllm_gguf_get_i32(g, "t.i32", &i32));
    assert_int_equal(i32, -2000000000);
    OK(vkllm_gguf_get_u64(g, "t.u64", &u64));
    assert_true(u64 == 0xfedcba9876543210ull);
    OK(vkllm_gguf_ref_i64(g, vkllm_gguf_find(g, "t.i64"), &i64));
    assert_true(i64 == -5);
    OK(vkllm_gguf_get_f32(g, "t.f32", &f32));
    assert_true(f32 == 1e-5f);
    OK(vkllm_gguf_ref_f64(g, vkllm_gguf_find(g, "t.f64"), &f64));
    assert_true(f64 == 250000.125);
    OK(vkllm_gguf_get_f32(g, "t.f64", &f32));
    assert_true(f32 == 250000.125f);
    OK(vkllm_gguf_get_f32(g, "t.f64_big", &f32)); /* saturates, no undefined conversion */
    assert_true(isinf(f32) && f32 < 0);
    OK(vkllm_gguf_get_bool(g, "t.bool", &b));
    assert_int_equal(b, 1);
    OK(vkllm_gguf_get_string(g, "t.str_nul", &str, &len));
    assert_int_equal(len, 3);
    assert_memory_equal(str, "a\0b", 4);
    OK(vkllm_gguf_get_string(g, "t.str_empty", &str, &len));
    assert_int_equal(len, 0);
    assert_string_equal(str, "");

    /* conversions that lose information are refused, naming the key */
    assert_int_equal(vkllm_gguf_get_u32(g, "t.i8", &u32), VKLLM_ERROR_BAD_MODEL);
    assert_non_null(strstr(vkllm_gguf_error(g), "t.i8"));
    assert_int_equal(vkllm_gguf_get_u32(g, "t.u64", &u32), VKLLM_ERROR_BAD_MODEL);
    assert_int_equal(vkllm_gguf_get_i32(g, "t.u32", &i32), VKLLM_ERROR_BAD_MODEL);
    assert_int_equal(vkllm_gguf_get_f32(g, "t.u32", &f32), VKLLM_ERROR_BAD_MODEL);
    assert_int_equal(vkllm_gguf_get_string(g, "t.u32", &str, NULL), VKLLM_ERROR_BAD_MODEL);
    assert_int_equal(vkllm_gguf_get_u32(g, "no.such.key", &u32), VKLLM_ERROR_BAD_MODEL);
    assert_non_null(strstr(vkllm_gguf_error(g), "'no.such.key' is missing"));
    assert_int_equal(vkllm_gguf_find(g, "no.such.key").type, VKLLM_GGUF_NONE);

    vkllm_gguf_ref a;
    uint64_t n;
    OK(vkllm_gguf_get_array(g, "t.arr_i32", VKLLM_GGUF_INT32, &a, &n));
    assert_int_equal(n, 5);
    for (uint64_t i = 0; i < n; i++) {
        OK(vkllm_gguf_ref_i32(g, vkllm_gguf_ref_at(a, i), &i32));
        assert_int_equal(i32, (i % 2 ? -1 : 1) * (int)(i + 1));
    }
    assert_int_equal(vkllm_gguf_ref_at(a, 5).type, VKLLM_GGUF_NONE);
    assert_int_equal(vkllm_gguf_get_array(g, "t.arr_i32", VKLLM_GGUF_STRING, &a, &n), VKLLM_ERROR_BAD_MODEL);
    OK(vkllm_gguf_get_array(g, "t.arr_f32", VKLLM_GGUF_FLOAT32, &a, &n));
    assert_int_equal(n, 3);
    OK(vkllm_gguf_ref_f32(g, vkllm_gguf_ref_at(a, 2), &f32));
    assert_true(f32 == 3.25f);
    OK(vkllm_gguf_get_array(g, "t.arr_bool", VKLLM_GGUF_BOOL, &a, &n));
    OK(vkllm_gguf_ref_bool(g, vkllm_gguf_ref_at(a, 3), &b));
    assert_int_equal(b, 1);
    OK(vkllm_gguf_get_array(g, "t.arr_u64", VKLLM_GGUF_UINT64, &a, &n));
    OK(vkllm_gguf_ref_u64(g, vkllm_gguf_ref_at(a, 1), &u64));
    assert_true(u64 == UINT64_MAX);
    OK(vkllm_gguf_get_array(g, "t.arr_f64", VKLLM_GGUF_FLOAT64, &a, &n));
    OK(vkllm_gguf_ref_f64(g, vkllm_gguf_ref_at(a, 0), &f64));
    assert_true(f64 == 1.0 / 3.0);
    OK(vkllm_gguf_get_array(g, "t.arr_i16", VKLLM_GGUF_INT16, &a, &n));
    const uint8_t *raw = vkllm_gguf_ref_data(a);
    assert_non_null(raw);
    assert_int_equal(raw[2] | raw[3] << 8, 2);
    OK(vkllm_gguf_get_array(g, "t.arr_empty", VKLLM_GGUF_UINT8, &a, &n));
    assert_int_equal(n, 0);
    OK(vkllm_gguf_get_array(g, "t.arr_str", VKLLM_GGUF_STRING, &a, &n));
    assert_int_equal(n, 3);
    OK(vkllm_gguf_ref_string(g, vkllm_gguf_ref_at(a, 2), &str, &len));
    assert_string_equal(str, "w\xc3\xb6rld");
    OK(vkllm_gguf_ref_string(g, vkllm_gguf_ref_at(a, 1), &str, &len));
    assert_int_equal(len, 0);

    OK(vkllm_gguf_get_array(g, "t.nested", VKLLM_GGUF_ARRAY, &a, &n));
    assert_int_equal(n, 3);
    assert_int_equal(vkllm_gguf_ref_len(vkllm_gguf_ref_at(a, 0)), 2);
    assert_int_equal(vkllm_gguf_ref_len(vkllm_gguf_ref_at(a, 1)), 0);
    assert_int_equal(vkllm_gguf_ref_elem_type(vkllm_gguf_ref_at(a, 2)), VKLLM_GGUF_UINT32);
    OK(vkllm_gguf_ref_u32(g, vkllm_gguf_ref_at(vkllm_gguf_ref_at(a, 0), 1), &u32));
    assert_int_equal(u32, 2);
    OK(vkllm_gguf_ref_u32(g, vkllm_gguf_ref_at(vkllm_gguf_ref_at(a, 2), 0), &u32));
    assert_int_equal(u32, 3);
    OK(vkllm_gguf_get_array(g, "t.nested_str", VKLLM_GGUF_ARRAY, &a, &n));
    assert_int_equal(n, 2);
    OK(vkllm_gguf_ref_string(g, vkllm_gguf_ref_at(vkllm_gguf_ref_at(a, 1), 1), &str, NULL));
    assert_string_equal(str, "z");

    /* keys in file order */
    assert_string_equal(vkllm_gguf_key(g, 0), alignment == 32 ? "general.architecture" : "general.alignment");
    assert_null(vkllm_gguf_key(g, vkllm_gguf_n_keys(g)));

    assert_int_equal(vkllm_gguf_n_tensors(g), N_ROUND);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < N_ROUND; i++) {
        const tspec *ts = &round_tensors[i];
        const vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        assert_non_null(t);
        assert_string_equal(t->name, ts->name);
        assert_ptr_equal(vkllm_gguf_find_tensor(g, ts->name), t);
        assert_int_equal(t->type, ts->type);
        assert_int_equal(t->n_dims, ts->n_dims);
        for (uint32_t d = 0; d < 4; d++) assert_int_equal(t->ne[d], d < ts->n_dims ? ts->ne[d] : 1);
        assert_int_equal(t->bytes, tbytes(ts));
        assert_int_equal(t->offset % alignment, 0);
        assert_true(t->offset >= prev_end);
        prev_end = t->offset + t->bytes;
        assert_memory_equal(t->data, data[i], t->bytes);
    }
    assert_null(vkllm_gguf_find_tensor(g, "nope"));
    assert_null(vkllm_gguf_tensor_at(g, N_ROUND));

    const vkllm_gguf_tensor *t;
    OK(vkllm_gguf_expect_tensor(g, "mat.f16", VKLLM_DTYPE_BIT(VKLLM_DTYPE_F16) | VKLLM_DTYPE_BIT(VKLLM_DTYPE_F32),
                                2, (uint64_t[]){ 33, 3 }, &t));
    OK(vkllm_gguf_expect_tensor(g, "mat.f16", VKLLM_DTYPE_ANY, 2, (uint64_t[]){ 0, 3 }, &t));
    assert_int_equal(vkllm_gguf_expect_tensor(g, "mat.f16", VKLLM_DTYPE_ANY, 2, (uint64_t[]){ 33, 4 }, &t),
                     VKLLM_ERROR_BAD_MODEL);
    assert_null(t);
    assert_non_null(strstr(vkllm_gguf_error(g), "tensor 'mat.f16': expected shape [33, 4] of any type, found [33, 3] of f16"));
    assert_int_equal(vkllm_gguf_expect_tensor(g, "mat.f16", VKLLM_DTYPE_BIT(VKLLM_DTYPE_Q4_K), 2,
                                              (uint64_t[]){ 33, 3 }, &t), VKLLM_ERROR_BAD_MODEL);
    assert_non_null(strstr(vkllm_gguf_error(g), "of q4_K, found [33, 3] of f16"));
    assert_int_equal(vkllm_gguf_expect_tensor(g, "gone", VKLLM_DTYPE_ANY, 1, (uint64_t[]){ 3 }, &t),
                     VKLLM_ERROR_BAD_MODEL);
    assert_non_null(strstr(vkllm_gguf_error(g), "tensor 'gone' is missing"));
    vkllm_gguf_close(g);
}

static void test_round_trip(void **state)
{
    (void)state;
    uint32_t aligns[3] = { 32, 64, 1 };
    for (int k = 0; k < 3; k++) {
        char path[300];
        tmp_path(path, sizeof path, "round.gguf");
        uint8_t *data[N_ROUND];
        write_round(path, aligns[k], data, 100 + (uint64_t)k);
        check_round(path, aligns[k], data);
        /* the same bytes through the memory reader */
        size_t n;
        uint8_t *buf = slurp(path, &n);
        vkllm_gguf *g;
        char err[512];
        assert_int_equal(vkllm_gguf_open_memory(buf, n, &g, err, sizeof err), VKLLM_OK);
        assert_int_equal(vkllm_gguf_n_tensors(g), N_ROUND);
        vkllm_gguf_close(g);
        free(buf);
        for (size_t i = 0; i < N_ROUND; i++) free(data[i]);
        unlink(path);
    }
}

static void test_writer_misuse(void **state)
{
    (void)state;
    char path[300], err[512];
    tmp_path(path, sizeof path, "misuse.gguf");
    vkllm_gguf_writer *w;
    OK(vkllm_gguf_writer_create(path, &w, err, sizeof err));
    WOK(w, vkllm_gguf_writer_add_tensor(w, "a", VKLLM_DTYPE_F32, 1, (uint64_t[]){ 4 }));
    WOK(w, vkllm_gguf_writer_add_tensor(w, "b", VKLLM_DTYPE_F32, 1, (uint64_t[]){ 2 }));
    assert_int_equal(vkllm_gguf_writer_add_tensor(w, "a", VKLLM_DTYPE_F32, 1, (uint64_t[]){ 4 }),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_gguf_writer_error(w), "duplicate tensor name 'a'"));
    assert_int_equal(vkllm_gguf_writer_set_alignment(w, 64), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_gguf_writer_add_u32(w, "general.alignment", 64), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_gguf_writer_error(w), "set_alignment"));
    assert_int_equal(vkllm_gguf_writer_write_data(w, "x", 1), VKLLM_ERROR_INVALID_ARGUMENT);
    WOK(w, vkllm_gguf_writer_write_header(w));
    assert_int_equal(vkllm_gguf_writer_add_u32(w, "late", 1), VKLLM_ERROR_INVALID_ARGUMENT);
    float x[5] = { 0 };
    assert_int_equal(vkllm_gguf_writer_write_data(w, x, 20), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_gguf_writer_error(w), "tensor 'a'"));
    WOK(w, vkllm_gguf_writer_write_data(w, x, 16));
    WOK(w, vkllm_gguf_writer_write_data(w, x, 4));
    assert_int_equal(vkllm_gguf_writer_finish(w), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_gguf_writer_error(w), "tensor 'b' got 4 of its 8 bytes"));
    vkllm_gguf_writer_destroy(w);
    assert_int_equal(access(path, F_OK), -1); /* an unfinished file is removed */
    vkllm_gguf_writer_destroy(NULL);
    vkllm_gguf_close(NULL);
}

/* ------------------------------------------------------------------------------------------------
 * Corruption: a small valid file, a walker that finds each field's offset, then one patch per class */

typedef struct fields {
    size_t n_kv, kv_at[16], kv_type_at[16], kv_val_at[16];
    size_t n_t, ti_at[8], ti_ndims_at[8], ti_ne_at[8], ti_type_at[8], ti_off_at[8];
    size_t data_at;
} fields;

static uint64_t r64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t r32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void w64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void w32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static size_t skip_value(const uint8_t *b, size_t p, uint32_t type)
{
    static const size_t sz[13] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
    if (type == VKLLM_GGUF_STRING) return p + 8 + r64(b + p);
    if (type == VKLLM_GGUF_ARRAY) {
        uint32_t et = r32(b + p);
        uint64_t n = r64(b + p + 4);
        p += 12;
        for (uint64_t i = 0; i < n; i++) p = skip_value(b, p, et);
        return p;
    }
    return p + sz[type];
}

static void walk(const uint8_t *b, fields *f)
{
    memset(f, 0, sizeof *f);
    f->n_t = r64(b + 8);
    f->n_kv = r64(b + 16);
    size_t p = 24;
    for (size_t i = 0; i < f->n_kv; i++) {
        f->kv_at[i] = p;
        p += 8 + r64(b + p);
        f->kv_type_at[i] = p;
        uint32_t t = r32(b + p);
        p += 4;
        f->kv_val_at[i] = p;
        p = skip_value(b, p, t);
    }
    for (size_t i = 0; i < f->n_t; i++) {
        f->ti_at[i] = p;
        p += 8 + r64(b + p);
        f->ti_ndims_at[i] = p;
        uint32_t nd = r32(b + p);
        p += 4;
        f->ti_ne_at[i] = p;
        p += 8 * nd;
        f->ti_type_at[i] = p;
        p += 4;
        f->ti_off_at[i] = p;
        p += 8;
    }
    f->data_at = (p + 31) / 32 * 32;
}

static uint8_t *valid;
static size_t valid_n;
static fields vf;

/* keys: 0 general.architecture (string), 1 general.alignment (u32 32), 2 a.x1 (u32 array),
 * 3 a.x2 (string array), 4 a.ok (bool); tensors t0 f32 [8,2], t1 q8_0 [32,2], t2 q4_k [256] */
static void make_valid(void)
{
    char path[300], err[512];
    tmp_path(path, sizeof path, "small.gguf");
    vkllm_gguf_writer *w;
    OK(vkllm_gguf_writer_create(path, &w, err, sizeof err));
    WOK(w, vkllm_gguf_writer_add_string(w, "general.architecture", "phi3"));
    WOK(w, vkllm_gguf_writer_add_u32(w, "general.alignment", 32));
    WOK(w, vkllm_gguf_writer_add_array(w, "a.x1", VKLLM_GGUF_UINT32, (uint32_t[]){ 1, 2, 3 }, 3));
    WOK(w, vkllm_gguf_writer_add_string_array(w, "a.x2", (const char *const[]){ "ab", "cde" }, 2));
    WOK(w, vkllm_gguf_writer_add_bool(w, "a.ok", 1));
    WOK(w, vkllm_gguf_writer_add_tensor(w, "t0", VKLLM_DTYPE_F32, 2, (uint64_t[]){ 8, 2 }));
    WOK(w, vkllm_gguf_writer_add_tensor(w, "t1", VKLLM_DTYPE_Q8_0, 2, (uint64_t[]){ 32, 2 }));
    WOK(w, vkllm_gguf_writer_add_tensor(w, "t2", VKLLM_DTYPE_Q4_K, 1, (uint64_t[]){ 256 }));
    WOK(w, vkllm_gguf_writer_write_header(w));
    uint8_t junk[144];
    memset(junk, 0x11, sizeof junk);
    WOK(w, vkllm_gguf_writer_write_data(w, junk, 64));
    WOK(w, vkllm_gguf_writer_write_data(w, junk, 68));
    WOK(w, vkllm_gguf_writer_write_data(w, junk, 144));
    WOK(w, vkllm_gguf_writer_finish(w));
    vkllm_gguf_writer_destroy(w);
    valid = slurp(path, &valid_n);
    walk(valid, &vf);
    assert_int_equal(vf.n_kv, 5);
    assert_int_equal(vf.n_t, 3);
    unlink(path);
}

/* Opens a (patched) copy of exactly n bytes, so any read past the end is out of the allocation. */
static vkllm_status try_open(const uint8_t *b, size_t n, char *err, size_t err_size)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n) memcpy(copy, b, n);
    vkllm_gguf *g = NULL;
    vkllm_status s = vkllm_gguf_open_memory(copy, n, &g, err, err_size);
    if (s == VKLLM_OK) {
        /* touch everything the API exposes */
        for (uint64_t i = 0; i < vkllm_gguf_n_tensors(g); i++) {
            const vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
            volatile uint8_t sink = 0;
            for (uint64_t k = 0; k < t->bytes; k++) sink ^= ((const uint8_t *)t->data)[k];
            (void)sink;
        }
        vkllm_gguf_close(g);
    } else {
        assert_null(g);
    }
    free(copy);
    return s;
}

typedef void (*patch_fn)(uint8_t *b);

static void expect_bad(const char *what, patch_fn patch, vkllm_status want, const char *needle)
{
    uint8_t *b = malloc(valid_n);
    assert_non_null(b);
    memcpy(b, valid, valid_n);
    patch(b);
    char err[1024];
    err[0] = 0;
    vkllm_status s = try_open(b, valid_n, err, sizeof err);
    if (s != want || !strstr(err, needle))
        fail_msg("%s: got %s (%s), want %s with '%s'", what, vkllm_strerror(s), err, vkllm_strerror(want), needle);
    /* the file reader gives the same verdict */
    char path[300];
    tmp_path(path, sizeof path, "bad.gguf");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, valid_n, f), valid_n);
    fclose(f);
    vkllm_gguf *g = NULL;
    char err2[1024];
    assert_int_equal(vkllm_gguf_open(path, &g, err2, sizeof err2), want);
    assert_null(g);
    assert_non_null(strstr(err2, needle));
    assert_non_null(strstr(err2, path));
    unlink(path);
    free(b);
}

static void p_magic(uint8_t *b) { b[0] = 'X'; }
static void p_version1(uint8_t *b) { w32(b + 4, 1); }
static void p_version9(uint8_t *b) { w32(b + 4, 9); }
static void p_big_endian(uint8_t *b) { w32(b + 4, 0x03000000u); }
static void p_kv_count(uint8_t *b) { w64(b + 16, 1ull << 60); }
static void p_kv_count_small(uint8_t *b) { w64(b + 16, 1000); }
static void p_t_count(uint8_t *b) { w64(b + 8, UINT64_MAX); }
static void p_key_len(uint8_t *b) { w64(b + vf.kv_at[0], 1ull << 40); }
static void p_key_nul(uint8_t *b) { b[vf.kv_at[0] + 8 + 2] = 0; }
static void p_str_len(uint8_t *b) { w64(b + vf.kv_val_at[0], valid_n); }
static void p_str_len_huge(uint8_t *b) { w64(b + vf.kv_val_at[0], UINT64_MAX - 3); }
static void p_val_type(uint8_t *b) { w32(b + vf.kv_type_at[0], 13); }
static void p_val_type_huge(uint8_t *b) { w32(b + vf.kv_type_at[4], 0xffffffffu); }
static void p_arr_etype(uint8_t *b) { w32(b + vf.kv_val_at[2], 99); }
static void p_arr_count(uint8_t *b) { w64(b + vf.kv_val_at[2] + 4, 1ull << 62); }
static void p_arr_str_count(uint8_t *b) { w64(b + vf.kv_val_at[3] + 4, 1ull << 59); }
static void p_arr_str_len(uint8_t *b) { w64(b + vf.kv_val_at[3] + 12, 1ull << 33); }
static void p_bool(uint8_t *b) { b[vf.kv_val_at[4]] = 2; }
static void p_dup_key(uint8_t *b) { b[vf.kv_at[3] + 8 + 3] = '1'; } /* a.x2 -> a.x1 */
static void p_align_type(uint8_t *b) { w32(b + vf.kv_type_at[1], VKLLM_GGUF_INT32); }
static void p_align_value(uint8_t *b) { w32(b + vf.kv_val_at[1], 24); }
static void p_align_zero(uint8_t *b) { w32(b + vf.kv_val_at[1], 0); }
static void p_name_len(uint8_t *b) { w64(b + vf.ti_at[1], 1ull << 50); }
static void p_name_long(uint8_t *b) { w64(b + vf.ti_at[1], 100); }
static void p_ndims0(uint8_t *b) { w32(b + vf.ti_ndims_at[1], 0); }
static void p_ndims5(uint8_t *b) { w32(b + vf.ti_ndims_at[1], 5); }
static void p_zero_dim(uint8_t *b) { w64(b + vf.ti_ne_at[1] + 8, 0); }
static void p_dim_overflow(uint8_t *b) { w64(b + vf.ti_ne_at[0], 1ull << 40); w64(b + vf.ti_ne_at[0] + 8, 1ull << 40); }
static void p_bytes_overflow(uint8_t *b) { w64(b + vf.ti_ne_at[0], 1ull << 61); w64(b + vf.ti_ne_at[0] + 8, 3); }
static void p_dim_huge(uint8_t *b) { w64(b + vf.ti_ne_at[2], UINT64_MAX - 255); }
static void p_ttype(uint8_t *b) { w32(b + vf.ti_type_at[1], 200); }
static void p_ttype_q5_0(uint8_t *b) { w32(b + vf.ti_type_at[1], 6); }
static void p_ttype_gap(uint8_t *b) { w32(b + vf.ti_type_at[1], 4); }
static void p_block(uint8_t *b) { w64(b + vf.ti_ne_at[1], 16); w64(b + vf.ti_ne_at[1] + 8, 4); }
static void p_misaligned(uint8_t *b) { w64(b + vf.ti_off_at[1], r64(b + vf.ti_off_at[1]) + 1); }
static void p_outside(uint8_t *b) { w64(b + vf.ti_off_at[2], 1ull << 40); }
static void p_outside_end(uint8_t *b) { w64(b + vf.ti_off_at[2], r64(b + vf.ti_off_at[2]) + 32); }
static void p_outside_wrap(uint8_t *b) { w64(b + vf.ti_off_at[2], UINT64_MAX - 31); }
static void p_overlap(uint8_t *b) { w64(b + vf.ti_off_at[1], r64(b + vf.ti_off_at[0])); }
static void p_overlap_partial(uint8_t *b) { w64(b + vf.ti_off_at[2], r64(b + vf.ti_off_at[1]) + 64); }
static void p_dup_name(uint8_t *b) { b[vf.ti_at[2] + 8 + 1] = '0'; } /* t2 -> t0 */
static void p_empty_name(uint8_t *b) { w64(b + vf.ti_at[0], 0); }

static void test_corrupt(void **state)
{
    (void)state;
    make_valid();
    char err[1024];
    assert_int_equal(try_open(valid, valid_n, err, sizeof err), VKLLM_OK);
    const vkllm_status BAD = VKLLM_ERROR_BAD_FILE;
    expect_bad("bad magic", p_magic, BAD, "bad magic at byte 0");
    expect_bad("version 1", p_version1, BAD, "version 1 at byte 4");
    expect_bad("version 9", p_version9, BAD, "version 9 at byte 4");
    expect_bad("big endian", p_big_endian, BAD, "version 50331648 at byte 4");
    expect_bad("absurd key count", p_kv_count, BAD, "key/value count 1152921504606846976 at byte 16");
    expect_bad("too many keys", p_kv_count_small, BAD, "key/value count 1000 at byte 16");
    expect_bad("absurd tensor count", p_t_count, BAD, "tensor count 18446744073709551615 at byte 8");
    expect_bad("key length", p_key_len, BAD, "key length 1099511627776 at byte 24 runs past the end");
    expect_bad("key NUL", p_key_nul, BAD, "key at byte 24 contains a NUL");
    expect_bad("string length", p_str_len, BAD, "key 'general.architecture' (at byte 24): string length");
    expect_bad("string length huge", p_str_len_huge, BAD, "string length 18446744073709551612");
    expect_bad("unknown value type", p_val_type, BAD, "key 'general.architecture' (at byte 24): unknown value type 13");
    expect_bad("unknown value type huge", p_val_type_huge, BAD, "key 'a.ok'");
    expect_bad("unknown array type", p_arr_etype, BAD, "key 'a.x1'");
    expect_bad("unknown array type msg", p_arr_etype, BAD, "unknown array element type 99");
    expect_bad("array count", p_arr_count, BAD, "key 'a.x1'");
    expect_bad("array count msg", p_arr_count, BAD, "array of 4611686018427387904 u32");
    expect_bad("string array count", p_arr_str_count, BAD, "array of 576460752303423488 string");
    expect_bad("string array elem length", p_arr_str_len, BAD, "string length 8589934592");
    expect_bad("bool", p_bool, BAD, "key 'a.ok'");
    expect_bad("duplicate key", p_dup_key, BAD, "duplicate key 'a.x1' at bytes");
    expect_bad("alignment type", p_align_type, BAD, "key 'general.alignment'");
    expect_bad("alignment value", p_align_value, BAD, "is 24, not a power of two");
    expect_bad("alignment zero", p_align_zero, BAD, "is 0, not a power of two");
    expect_bad("tensor name length", p_name_len, BAD, "tensor name length 1125899906842624");
    expect_bad("tensor name too long", p_name_long, BAD, "tensor name length 100");
    expect_bad("empty tensor name", p_empty_name, BAD, "empty tensor name");
    expect_bad("n_dims 0", p_ndims0, BAD, "tensor 't1' (tensor info at byte");
    expect_bad("n_dims 0 msg", p_ndims0, BAD, "n_dims 0 at byte");
    expect_bad("n_dims 5", p_ndims5, BAD, "n_dims 5 at byte");
    expect_bad("zero dim", p_zero_dim, BAD, "tensor 't1' (tensor info at byte");
    expect_bad("zero dim msg", p_zero_dim, BAD, "ne[1] at byte");
    expect_bad("dims overflow", p_dim_overflow, BAD, "ne[1]=1099511627776");
    expect_bad("dims overflow msg", p_dim_overflow, BAD, "overflow");
    expect_bad("byte size overflow", p_bytes_overflow, BAD, "tensor 't0'");
    expect_bad("byte size overflow msg", p_bytes_overflow, BAD, "byte size");
    expect_bad("dim past int64", p_dim_huge, BAD, "tensor 't2'");
    expect_bad("unknown tensor type", p_ttype, BAD, "unknown tensor type 200");
    expect_bad("unknown tensor type name", p_ttype, BAD, "tensor 't1'");
    expect_bad("removed ggml type", p_ttype_gap, BAD, "unknown tensor type 4");
    expect_bad("unsupported tensor type", p_ttype_q5_0, VKLLM_ERROR_UNSUPPORTED_TYPE, "type q5_0 (6)");
    expect_bad("non-whole block", p_block, BAD, "ne[0]=16 is not a whole number of q8_0 blocks of 32");
    expect_bad("misaligned offset", p_misaligned, BAD, "tensor 't1': offset 65 is not a multiple of alignment 32 (tensor info at byte");
    expect_bad("offset outside data", p_outside, BAD, "tensor 't2': offset 1099511627776 + 144 bytes lies outside the data section");
    expect_bad("offset past end", p_outside_end, BAD, "tensor 't2'");
    expect_bad("offset wraps", p_outside_wrap, BAD, "lies outside the data section");
    expect_bad("overlap", p_overlap, BAD, "tensors 't0' (offset 0, 64 bytes");
    expect_bad("overlap msg", p_overlap, BAD, "overlap");
    expect_bad("overlap partial", p_overlap_partial, BAD, "and 't2' (offset 128");
    expect_bad("duplicate tensor", p_dup_name, BAD, "duplicate tensor name 't0'");
    free(valid);
}

static void test_truncation(void **state)
{
    (void)state;
    make_valid();
    char err[1024];
    /* every prefix of the file that cuts the header, metadata, infos, padding or data; only the
     * padding after the last tensor may go */
    size_t data_end = vf.data_at + r64(valid + vf.ti_off_at[2]) + 144;
    assert_true(data_end < valid_n);
    for (size_t n = data_end; n <= valid_n; n++) assert_int_equal(try_open(valid, n, err, sizeof err), VKLLM_OK);
    for (size_t n = 0; n < data_end; n++) {
        err[0] = 0;
        vkllm_status s = try_open(valid, n, err, sizeof err);
        if (s != VKLLM_ERROR_BAD_FILE)
            fail_msg("truncated to %zu of %zu bytes: got %s (%s)", n, valid_n, vkllm_strerror(s), err);
        int named = strstr(err, "truncated") || strstr(err, "past the end") || strstr(err, "impossible") ||
                    strstr(err, "cannot fit") || strstr(err, "outside the data section");
        if (!named || !strstr(err, "byte")) fail_msg("truncated to %zu: unhelpful message '%s'", n, err);
    }
    /* a file with no tensors may end right after its metadata */
    vkllm_gguf_writer *w;
    char path[300];
    tmp_path(path, sizeof path, "notensor.gguf");
    OK(vkllm_gguf_writer_create(path, &w, err, sizeof err));
    WOK(w, vkllm_gguf_writer_add_u32(w, "k", 7));
    WOK(w, vkllm_gguf_writer_write_header(w));
    WOK(w, vkllm_gguf_writer_finish(w));
    vkllm_gguf_writer_destroy(w);
    size_t n;
    uint8_t *b = slurp(path, &n);
    assert_int_equal(try_open(b, 24 + 8 + 1 + 4 + 4, err, sizeof err), VKLLM_OK);
    free(b);
    unlink(path);
    /* missing and non-regular files */
    vkllm_gguf *g;
    assert_int_equal(vkllm_gguf_open("/nonexistent/x.gguf", &g, err, sizeof err), VKLLM_ERROR_IO);
    assert_non_null(strstr(err, "/nonexistent/x.gguf"));
    assert_int_equal(vkllm_gguf_open(tmpdir, &g, err, sizeof err), VKLLM_ERROR_IO);
    free(valid);
}

/* Random byte flips of the valid file: any verdict is fine, reading out of bounds is not (run under
 * VKLLM_SANITIZE=ON to make that loud; the fuzzer does this far more thoroughly). */
static void test_random_flips(void **state)
{
    (void)state;
    make_valid();
    tu_rng r = tu_rng_for(7);
    uint8_t *b = malloc(valid_n);
    char err[1024];
    for (int it = 0; it < 20000; it++) {
        memcpy(b, valid, valid_n);
        int flips = 1 + (int)(tu_next(&r) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(tu_next(&r) % valid_n);
            b[at] = (uint8_t)tu_next(&r);
        }
        vkllm_status s = try_open(b, valid_n, err, sizeof err);
        assert_true(s == VKLLM_OK || s == VKLLM_ERROR_BAD_FILE || s == VKLLM_ERROR_UNSUPPORTED_TYPE);
    }
    free(b);
    free(valid);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/vkllm_test_gguf_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
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
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_writer_misuse),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_random_flips),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
