/* Fault injection on the tiny model: every failure must come back as a status with a clear message
 * and leave nothing behind (pool statistics back to where they were; under the sanitizer build,
 * LeakSanitizer checks host memory at exit).
 *
 *  - device-pool allocation failure at every allocation of a model load and of a session creation
 *    (VKLLM_FAULT=alloc:N through vkllm_fault_set), and a pool capped below what the model needs;
 *  - VK_ERROR_DEVICE_LOST / VK_ERROR_OUT_OF_DEVICE_MEMORY from a chain submit, in prefill and in decode:
 *    the message names the chain that was running;
 *  - the model file truncated or written in place while it is being loaded: detected, not trusted,
 *    no SIGBUS;
 *  - a load cancelled from its progress callback (what the CLI's SIGINT handler does). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gpu_testutil.h"
#include "vkllm/fault.h"
#include "vkllm/mkmodel.h"
#include "vkllm/model.h"
#include "vkllm/pool.h"

static char model_path[] = "/tmp/vkllm-test-faults-XXXXXX";

static int write_model(void **state)
{
    (void)state;
    int fd = mkstemp(model_path);
    if (fd < 0) return -1;
    close(fd);
    vkllm_mkmodel_config cfg;
    if (vkllm_mkmodel_preset("tiny", &cfg)) return -1;
    cfg.ftype = VKLLM_MKMODEL_Q4_K_M;
    cfg.seed = 11;
    cfg.threads = 2;
    char err[512];
    uint64_t size;
    if (vkllm_mkmodel_write(&cfg, model_path, &size, err, sizeof err)) {
        fprintf(stderr, "mkmodel: %s\n", err);
        return -1;
    }
    return 0;
}

static int remove_model(void **state)
{
    (void)state;
    remove(model_path);
    return 0;
}

/* Everything a failed call may have allocated must be back: same live allocations and bytes. */
static void assert_pool_as(vkllm_device *dev, const vkllm_pool_stats *want, const char *what)
{
    vkllm_pool_stats now;
    vkllm_pool_stats_get(dev, &now);
    for (int k = 0; k < 2; k++)
        if (now.allocations[k] != want->allocations[k] || now.used_bytes[k] != want->used_bytes[k])
            fail_msg("%s: pool kind %d holds %llu allocations / %llu bytes, %llu / %llu before", what, k,
                     (unsigned long long)now.allocations[k], (unsigned long long)now.used_bytes[k],
                     (unsigned long long)want->allocations[k], (unsigned long long)want->used_bytes[k]);
}

static void assert_msg(vkllm_device *dev, const char *needle, const char *what)
{
    const char *e = vkllm_device_error(dev);
    if (!strstr(e, needle)) fail_msg("%s: message '%s' does not mention '%s'", what, e, needle);
}

static void test_fault_spec(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    assert_int_equal(vkllm_fault_set(dev, "alloc:3,submit_oom"), VKLLM_OK);
    assert_int_equal(vkllm_fault_set(dev, "alloc:0"), VKLLM_ERROR_CONFIG);
    assert_int_equal(vkllm_fault_set(dev, "alloc:x"), VKLLM_ERROR_CONFIG);
    assert_int_equal(vkllm_fault_set(dev, "frobnicate"), VKLLM_ERROR_CONFIG);
    assert_msg(dev, "unknown fault 'frobnicate'", "bad spec");
    assert_int_equal(vkllm_fault_set(dev, NULL), VKLLM_OK);
    tu_device_close(dev);
}

/* Pool allocation failure at each allocation of a load, each on a fresh device so that the first
 * allocations (the staging buffer among them) fail too; then each allocation of a session. */
static void test_alloc_every_site(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    vkllm_model *m = NULL;
    if (vkllm_model_load(dev, model_path, NULL, &m)) fail_msg("load: %s", vkllm_device_error(dev));
    uint64_t n_load;
    vkllm_fault_counts(dev, &n_load, NULL);
    vkllm_model_destroy(m);
    tu_device_close(dev);
    assert_true(n_load >= 5);

    for (uint64_t k = 1; k <= n_load; k++) {
        dev = tu_device_open();
        vkllm_pool_stats before;
        vkllm_pool_stats_get(dev, &before);
        char spec[32];
        snprintf(spec, sizeof spec, "alloc:%llu", (unsigned long long)k);
        assert_int_equal(vkllm_fault_set(dev, spec), VKLLM_OK);
        m = (vkllm_model *)&m; /* must come back NULL */
        vkllm_status s = vkllm_model_load(dev, model_path, NULL, &m);
        if (s != VKLLM_ERROR_OUT_OF_DEVICE_MEMORY) fail_msg("load with %s: status %d (%s)", spec, (int)s, vkllm_device_error(dev));
        assert_null(m);
        assert_msg(dev, "refused by fault injection", spec);
        /* the staging buffer is the device's, kept for later transfers; nothing else may remain */
        vkllm_pool_stats after;
        vkllm_pool_stats_get(dev, &after);
        assert_int_equal(after.allocations[VKLLM_MEM_DEVICE], before.allocations[VKLLM_MEM_DEVICE]);
        assert_int_equal(after.used_bytes[VKLLM_MEM_DEVICE], before.used_bytes[VKLLM_MEM_DEVICE]);
        assert_true(after.allocations[VKLLM_MEM_HOST] <= 1);
        tu_device_close(dev);
    }
    print_message("load: %llu allocation sites failed in turn, each reported and freed\n", (unsigned long long)n_load);

    dev = tu_device_open();
    if (vkllm_model_load(dev, model_path, NULL, &m)) fail_msg("load: %s", vkllm_device_error(dev));
    vkllm_pool_stats loaded;
    vkllm_pool_stats_get(dev, &loaded);
    vkllm_session_options so = { .n_ctx = 64, .max_batch = 16 };
    vkllm_session *ss;
    assert_int_equal(vkllm_fault_set(dev, NULL), VKLLM_OK);
    if (vkllm_session_create(m, &so, &ss)) fail_msg("session: %s", vkllm_device_error(dev));
    uint64_t n_sess;
    vkllm_fault_counts(dev, &n_sess, NULL);
    vkllm_session_destroy(ss);
    assert_pool_as(dev, &loaded, "session destroyed");
    for (uint64_t k = 1; k <= n_sess; k++) {
        char spec[32];
        snprintf(spec, sizeof spec, "alloc:%llu", (unsigned long long)k);
        assert_int_equal(vkllm_fault_set(dev, spec), VKLLM_OK);
        ss = (vkllm_session *)&ss;
        vkllm_status s = vkllm_session_create(m, &so, &ss);
        if (s != VKLLM_ERROR_OUT_OF_DEVICE_MEMORY) fail_msg("session with %s: status %d (%s)", spec, (int)s, vkllm_device_error(dev));
        assert_null(ss);
        assert_msg(dev, "refused by fault injection", spec);
        assert_pool_as(dev, &loaded, spec);
    }
    print_message("session: %llu allocation sites failed in turn, each reported and freed\n", (unsigned long long)n_sess);
    vkllm_model_destroy(m);
    tu_device_close(dev);
}

/* A pool capped below the model's needs (as VKLLM_POOL_LIMIT_MB does): a message naming the limit. */
static void test_pool_cap(void **state)
{
    (void)state;
    int refused = 0;
    for (uint64_t mb = 1; mb <= 64; mb *= 2) {
        vkllm_device *dev = tu_device_open();
        vkllm_pool_set_limit(dev, mb << 20);
        vkllm_pool_set_block_size(dev, 1u << 20);
        vkllm_model *m = NULL;
        vkllm_status s = vkllm_model_load(dev, model_path, NULL, &m);
        if (s) {
            if (s != VKLLM_ERROR_OUT_OF_DEVICE_MEMORY) fail_msg("cap %llu MiB: status %d (%s)", (unsigned long long)mb, (int)s,
                                                                vkllm_device_error(dev));
            assert_null(m);
            assert_msg(dev, "pool limit", "capped pool");
            vkllm_pool_stats st;
            vkllm_pool_stats_get(dev, &st);
            assert_int_equal(st.allocations[VKLLM_MEM_DEVICE], 0);
            refused++;
        }
        vkllm_model_destroy(m);
        tu_device_close(dev);
        if (!s) break;
    }
    assert_true(refused >= 1); /* the tiny model's weights are over 1 MiB */
}

static void test_submit_faults(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    vkllm_model *m;
    if (vkllm_model_load(dev, model_path, NULL, &m)) fail_msg("load: %s", vkllm_device_error(dev));
    vkllm_session_options so = { .n_ctx = 64, .max_batch = 16 };
    vkllm_session *ss;
    if (vkllm_session_create(m, &so, &ss)) fail_msg("session: %s", vkllm_device_error(dev));
    const int32_t toks[3] = { 1, 2, 3 };

    assert_int_equal(vkllm_fault_set(dev, "submit_device_lost"), VKLLM_OK);
    assert_int_equal(vkllm_session_prefill(ss, toks, 3, NULL), VKLLM_ERROR_DEVICE_LOST);
    assert_msg(dev, "VK_ERROR_DEVICE_LOST", "device lost in prefill");
    assert_msg(dev, "vkQueueSubmit of a chain of", "device lost in prefill");
    assert_msg(dev, "first '", "device lost in prefill");
    print_message("prefill: %s\n", vkllm_device_error(dev));

    vkllm_session_reset(ss);
    assert_int_equal(vkllm_fault_set(dev, NULL), VKLLM_OK);
    if (vkllm_session_prefill(ss, toks, 3, NULL)) fail_msg("prefill after the fault: %s", vkllm_device_error(dev));
    assert_int_equal(vkllm_fault_set(dev, "submit_oom"), VKLLM_OK);
    int32_t next;
    assert_int_equal(vkllm_session_decode(ss, 4, NULL, &next, NULL), VKLLM_ERROR_OUT_OF_DEVICE_MEMORY);
    assert_msg(dev, "VK_ERROR_OUT_OF_DEVICE_MEMORY", "oom in decode");
    print_message("decode: %s\n", vkllm_device_error(dev));

    vkllm_session_destroy(ss);
    vkllm_model_destroy(m);
    tu_device_close(dev); /* no validation message from the unsubmitted chains */
}

/* What the progress callback does to the file (or the load) after the first chunk. */
typedef struct tamper {
    const char *path;
    int mode; /* 0 truncate, 1 write in place, 2 cancel */
    int done;
    volatile int cancel;
} tamper;

static void on_progress(void *user, uint64_t done, uint64_t total)
{
    tamper *t = user;
    (void)done;
    (void)total;
    if (t->done++) return;
    if (t->mode == 2) {
        t->cancel = 1;
        return;
    }
    struct stat st;
    assert_int_equal(stat(t->path, &st), 0);
    if (t->mode == 0) {
        assert_int_equal(truncate(t->path, 4096), 0); /* inside the metadata: every tensor is gone */
        return;
    }
    /* past the coarse kernel clock tick of the file's last write, so its mtime really moves */
    nanosleep(&(struct timespec){ 0, 30 * 1000 * 1000 }, NULL);
    int fd = open(t->path, O_WRONLY);
    assert_true(fd >= 0);
    static const char junk[16] = "not the weights";
    assert_int_equal(pwrite(fd, junk, sizeof junk, st.st_size - 64), (ssize_t)sizeof junk);
    close(fd);
}

static void load_tampered(int mode, vkllm_status want, const char *needle)
{
    char copy[] = "/tmp/vkllm-test-faults-copy-XXXXXX";
    int out = mkstemp(copy), in = open(model_path, O_RDONLY);
    assert_true(out >= 0 && in >= 0);
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) assert_int_equal(write(out, buf, (size_t)n), n);
    close(in);
    close(out);

    vkllm_device *dev = tu_device_open();
    vkllm_pool_set_block_size(dev, 1u << 20);
    tamper t = { copy, mode, 0, 0 };
    vkllm_load_options lo = { .progress = on_progress, .user = &t, .cancel = &t.cancel };
    vkllm_model *m = (vkllm_model *)&m;
    vkllm_status s = vkllm_model_load(dev, copy, &lo, &m);
    remove(copy);
    if (s != want) fail_msg("tamper mode %d: status %d, wanted %d (%s)", mode, (int)s, (int)want, vkllm_device_error(dev));
    assert_null(m);
    assert_msg(dev, needle, "tampered load");
    print_message("mode %d: %s\n", mode, vkllm_device_error(dev));
    vkllm_pool_stats st;
    vkllm_pool_stats_get(dev, &st);
    assert_int_equal(st.allocations[VKLLM_MEM_DEVICE], 0);
    tu_device_close(dev);
}

static void test_truncated_while_loading(void **state)
{
    (void)state;
    load_tampered(0, VKLLM_ERROR_IO, "truncated while in use");
}

static void test_modified_while_loading(void **state)
{
    (void)state;
    load_tampered(1, VKLLM_ERROR_BAD_FILE, "modified while in use");
}

static void test_cancelled_load(void **state)
{
    (void)state;
    load_tampered(2, VKLLM_ERROR_CANCELLED, "cancelled");
}

int main(void)
{
    tu_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_spec),
        cmocka_unit_test(test_alloc_every_site),
        cmocka_unit_test(test_pool_cap),
        cmocka_unit_test(test_submit_faults),
        cmocka_unit_test(test_truncated_while_loading),
        cmocka_unit_test(test_modified_while_loading),
        cmocka_unit_test(test_cancelled_load),
    };
    return cmocka_run_group_tests(tests, write_model, remove_model);
}
