/* Two sessions of one model in two threads: each generates exactly what it generates alone.
 *
 * The model (the built-in tiny one) and the device are shared; each thread owns its session (KV
 * cache, chains) and sampler. Sessions are created inside the threads so that pool allocation,
 * pipeline lookup/creation and chain recording run concurrently too, then both generate at once.
 * Under the validation layer (ctest sets VKLLM_VALIDATE=1) its thread-safety checks report any
 * object used from two threads without the external synchronization Vulkan requires (the queue, a
 * command pool), and the synchronization checks report missing barriers; the test fails on any.
 *
 * Equality is exact: the same chain on the same data gives the same bits, so the tokens and the
 * prefill logits of the concurrent run must equal those of the sequential run. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_testutil.h"
#include "vkllm/vkllm.h"

#define N_GEN 24
#define PROMPT_MAX 40

typedef struct job {
    /* in */
    vkllm_model *m;
    const int32_t *prompt;
    uint32_t n_prompt;
    int use_sampler;        /* 0: argmax on the GPU; 1: seeded sampling from the GPU's top-k */
    uint64_t seed;
    uint32_t n_ctx;
    pthread_barrier_t *barrier; /* NULL when run alone */
    /* out */
    int32_t tokens[N_GEN];
    float *logits;          /* (n_vocab) after the prefill */
    vkllm_status st;
    char where[64];
    char err[512];
    char own_err[512];      /* the message of this thread's deliberate failure, read after the other's */
} job;

static void wait_barrier(job *j)
{
    if (j->barrier) pthread_barrier_wait(j->barrier);
}

static void *run_job(void *arg)
{
    job *j = arg;
    vkllm_session *s = NULL;
    vkllm_sampler *smp = NULL;
    vkllm_session_options so = { .n_ctx = j->n_ctx, .max_batch = 16 };
    wait_barrier(j); /* start together: session creation races too */
    j->st = vkllm_session_create(j->m, &so, &s);
    if (j->st) { snprintf(j->where, sizeof j->where, "session_create"); goto out; }
    if (j->use_sampler) {
        vkllm_sampler_params p = vkllm_sampler_defaults();
        p.seed = j->seed;
        p.top_p = 1.0f;
        p.min_p = 0.0f;
        if ((j->st = vkllm_sampler_create(&p, &smp))) { snprintf(j->where, sizeof j->where, "sampler_create"); goto out; }
        for (uint32_t i = 0; i < j->n_prompt; i++) vkllm_sampler_accept(smp, j->prompt[i]);
    }
    wait_barrier(j);
    if ((j->st = vkllm_session_prefill(s, j->prompt, j->n_prompt, j->logits))) {
        snprintf(j->where, sizeof j->where, "prefill");
        goto out;
    }
    /* the first generated token: argmax of the prefill's logits */
    uint32_t n_vocab = vkllm_model_hparams(j->m)->n_vocab;
    int32_t best = 0;
    for (uint32_t i = 1; i < n_vocab; i++)
        if (j->logits[i] > j->logits[best]) best = (int32_t)i;
    int32_t tok = best;
    for (int i = 0; i < N_GEN; i++) {
        j->tokens[i] = tok;
        int32_t next;
        if ((j->st = vkllm_session_decode(s, tok, smp, &next, NULL))) {
            snprintf(j->where, sizeof j->where, "decode %d", i);
            goto out;
        }
        if (smp) vkllm_sampler_accept(smp, next);
        tok = next;
    }
    /* Per-thread messages: both threads fail differently, then read their own message only after
     * the other has failed too; each must still see its own. */
    if (j->barrier) {
        vkllm_status e;
        if (j->use_sampler) {
            int32_t bad = (int32_t)n_vocab + 5;
            e = vkllm_session_prefill(s, &bad, 1, NULL);
        } else {
            e = vkllm_session_rewind(s, vkllm_session_pos(s) + 7);
        }
        wait_barrier(j);
        wait_barrier(j);
        snprintf(j->own_err, sizeof j->own_err, "%s", e ? vkllm_session_error(s) : "(no error)");
    }
out:
    if (j->st) snprintf(j->err, sizeof j->err, "%s", s ? vkllm_session_error(s) : vkllm_model_error(j->m));
    vkllm_sampler_destroy(smp);
    vkllm_session_destroy(s);
    return NULL;
}

static void check_job(const job *j, const char *what)
{
    if (j->st) fail_msg("%s: %s failed: %s: %s", what, j->where, vkllm_strerror(j->st), j->err);
}

static void test_two_sessions_two_threads(void **state)
{
    (void)state;
    uint64_t seed = tu_seed();
    tu_rng rng = tu_rng_for(1);

    char dir[] = "/tmp/vkllm-threads-XXXXXX", path[128], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    if (vkllm_write_tiny_model(path, err, sizeof err)) fail_msg("write_tiny_model: %s", err);

    vkllm_device *dev = tu_device_open();
    vkllm_model *m = NULL;
    vkllm_load_options lo = { .n_ctx = 256 };
    if (vkllm_model_load(dev, path, &lo, &m)) fail_msg("load: %s", vkllm_device_error(dev));
    const uint32_t n_vocab = vkllm_model_hparams(m)->n_vocab;

    /* Two different prompts (one over the prefill batch of 16, one under) and two decoding modes. */
    int32_t pa[PROMPT_MAX], pb[PROMPT_MAX];
    for (int i = 0; i < PROMPT_MAX; i++) {
        pa[i] = (int32_t)((uint32_t)tu_next(&rng) % n_vocab);
        pb[i] = (int32_t)((uint32_t)tu_next(&rng) % n_vocab);
    }
    job seq[2] = { { .m = m, .prompt = pa, .n_prompt = 37, .use_sampler = 0, .n_ctx = 128 },
                   { .m = m, .prompt = pb, .n_prompt = 9, .use_sampler = 1, .seed = seed ^ 0x5eed, .n_ctx = 96 } };
    job par[2];
    for (int i = 0; i < 2; i++) {
        assert_non_null(seq[i].logits = malloc(4ull * n_vocab));
    }
    /* one after the other, on this thread */
    for (int i = 0; i < 2; i++) {
        run_job(&seq[i]);
        check_job(&seq[i], i ? "alone B" : "alone A");
    }
    /* both at once, twice (a race shows up only sometimes) */
    for (int round = 0; round < 2; round++) {
        pthread_barrier_t barrier;
        assert_int_equal(pthread_barrier_init(&barrier, NULL, 2), 0);
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            par[i] = seq[i];
            assert_non_null(par[i].logits = malloc(4ull * n_vocab));
            memset(par[i].tokens, 0xff, sizeof par[i].tokens);
            par[i].barrier = &barrier;
            assert_int_equal(pthread_create(&th[i], NULL, run_job, &par[i]), 0);
        }
        for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
        pthread_barrier_destroy(&barrier);
        for (int i = 0; i < 2; i++) {
            check_job(&par[i], i ? "threaded B" : "threaded A");
            for (int t = 0; t < N_GEN; t++)
                if (par[i].tokens[t] != seq[i].tokens[t])
                    fail_msg("round %d session %c: token %d is %d in two threads, %d alone (seed %llu)", round, 'A' + i, t,
                             par[i].tokens[t], seq[i].tokens[t], (unsigned long long)seed);
            if (memcmp(par[i].logits, seq[i].logits, 4ull * n_vocab) != 0)
                fail_msg("round %d session %c: prefill logits differ between two threads and alone (seed %llu)", round,
                         'A' + i, (unsigned long long)seed);
            free(par[i].logits);
        }
        /* each thread saw its own failure's message, not the other's */
        if (!strstr(par[0].own_err, "cannot rewind")) fail_msg("thread A's message: '%s'", par[0].own_err);
        if (!strstr(par[1].own_err, "outside the vocabulary")) fail_msg("thread B's message: '%s'", par[1].own_err);
    }
    for (int i = 0; i < 2; i++) free(seq[i].logits);
    vkllm_model_destroy(m);
    tu_device_close(dev);
    remove(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_sessions_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
