/* The embedding API of vkllm/vkllm.h beyond what the runtime tests cover: version calls against
 * the macros, per-object error messages, the model's tokenizer, and profiling turned on and off
 * on a live session (same tokens either way, per-dispatch records only while on). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_testutil.h"
#include "vkllm/vkllm.h"

static char model_path[128], model_dir[64];

static int setup(void **state)
{
    (void)state;
    char err[512];
    snprintf(model_dir, sizeof model_dir, "/tmp/vkllm-api-XXXXXX");
    if (!mkdtemp(model_dir)) return -1;
    snprintf(model_path, sizeof model_path, "%s/tiny.gguf", model_dir);
    if (vkllm_write_tiny_model(model_path, err, sizeof err)) {
        fprintf(stderr, "write_tiny_model: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove(model_path);
    rmdir(model_dir);
    return 0;
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(vkllm_version(), VKLLM_VERSION);
    assert_string_equal(vkllm_version_string(), VKLLM_VERSION_STRING);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", VKLLM_VERSION_MAJOR, VKLLM_VERSION_MINOR, VKLLM_VERSION_PATCH);
    assert_string_equal(buf, VKLLM_VERSION_STRING);
    assert_string_equal(vkllm_model_error(NULL), "no model");
    assert_string_equal(vkllm_session_error(NULL), "no session");
    assert_int_equal(vkllm_session_set_profiling(NULL, 1), VKLLM_ERROR_INVALID_ARGUMENT);
    char err[64];
    assert_int_equal(vkllm_write_tiny_model(NULL, err, sizeof err), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_true(err[0] != '\0');
    assert_int_not_equal(vkllm_write_tiny_model("/nonexistent-dir/x.gguf", err, sizeof err), VKLLM_OK);
    assert_true(err[0] != '\0');
}

/* n greedy tokens after prompt; timings (if not NULL) get the dispatch count of the last step. */
static void generate(vkllm_session *s, const int32_t *prompt, uint32_t n_prompt, int32_t *out, int n, uint32_t *n_timed)
{
    vkllm_session_reset(s);
    if (vkllm_session_prefill(s, prompt, n_prompt - 1, NULL)) fail_msg("prefill: %s", vkllm_session_error(s));
    int32_t tok = prompt[n_prompt - 1];
    for (int i = 0; i < n; i++) {
        if (vkllm_session_decode(s, tok, NULL, &tok, NULL)) fail_msg("decode: %s", vkllm_session_error(s));
        out[i] = tok;
    }
    if (n_timed) {
        const vkllm_timing *t;
        *n_timed = 0;
        if (vkllm_session_timings(s, &t, n_timed) == VKLLM_OK)
            for (uint32_t i = 0; i < *n_timed; i++) {
                assert_non_null(t[i].name);
                assert_true(t[i].duration_ns >= 0);
            }
    }
}

static void test_session_api(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    vkllm_model *m = NULL;
    vkllm_load_options lo = { .n_ctx = 128 };
    if (vkllm_model_load(dev, model_path, &lo, &m)) fail_msg("load: %s", vkllm_device_error(dev));
    assert_ptr_equal(vkllm_model_device(m), dev);

    /* the model's own tokenizer: text round trip */
    vkllm_tokenizer *tok = NULL;
    if (vkllm_model_tokenizer(m, &tok)) fail_msg("tokenizer: %s", vkllm_model_error(m));
    assert_int_equal(vkllm_tokenizer_n_vocab(tok) <= vkllm_model_hparams(m)->n_vocab, 1);
    const char *text = "the cat sat on the mat";
    vkllm_tokens ids = { 0 };
    assert_int_equal(vkllm_tokenizer_encode(tok, text, strlen(text), 0, &ids), VKLLM_OK);
    assert_true(ids.n > 1);
    char *back = NULL;
    size_t len = 0;
    assert_int_equal(vkllm_tokenizer_decode(tok, ids.ids, ids.n, 0, &back, &len), VKLLM_OK);
    assert_string_equal(back, text);
    free(back);

    vkllm_session *s = NULL;
    vkllm_session_options so = { .n_ctx = 64 };
    if (vkllm_session_create(m, &so, &s)) fail_msg("session: %s", vkllm_model_error(m));

    /* errors land on the session (this thread's last message) */
    int32_t bad = (int32_t)vkllm_model_hparams(m)->n_vocab;
    assert_int_equal(vkllm_session_prefill(s, &bad, 1, NULL), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_session_error(s), "outside the vocabulary"));
    assert_string_equal(vkllm_session_error(s), vkllm_model_error(m));
    assert_string_equal(vkllm_session_error(s), vkllm_device_error(dev));

    /* profiling off -> on -> off: same tokens, records only while on */
    enum { N = 6 };
    int32_t a[N], b[N], c[N];
    uint32_t na, nb, nc;
    generate(s, ids.ids, (uint32_t)ids.n, a, N, &na);
    assert_int_equal(na, 0);
    if (vkllm_device_features(dev)->timestamp_period_ns > 0) {
        assert_int_equal(vkllm_session_set_profiling(s, 1), VKLLM_OK);
        generate(s, ids.ids, (uint32_t)ids.n, b, N, &nb);
        assert_true(nb > 4 * vkllm_model_hparams(m)->n_layer); /* several dispatches per layer */
        assert_true(vkllm_session_last_gpu_ns(s) > 0);
        assert_memory_equal(a, b, sizeof a);
    }
    assert_int_equal(vkllm_session_set_profiling(s, 0), VKLLM_OK);
    generate(s, ids.ids, (uint32_t)ids.n, c, N, &nc);
    assert_int_equal(nc, 0);
    assert_memory_equal(a, c, sizeof a);

    vkllm_tokens_free(&ids);
    vkllm_session_destroy(s);
    vkllm_tokenizer_destroy(tok);
    vkllm_model_destroy(m);
    tu_device_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_session_api),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
