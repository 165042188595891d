/* Runtime core: buffer pool, pipeline cache, command chain barriers/replay/timestamps (every stamp
 * kind, sampled stamps rotating through replays that must all compute the same), and proof
 * that the validation layer's messages are counted (a deliberately invalid call and a deliberately
 * missing barrier must each be caught). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_testutil.h"
#include "internal.h" /* for the deliberately invalid Vulkan call */
#include "vkllm/pipeline.h"
#include "vkllm/ref.h"

static void test_pool_best_fit_and_coalescing(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    vkllm_pool_set_block_size(dev, 4u << 20);
    vkllm_buffer b[8];
    for (int i = 0; i < 8; i++) assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 256u * 1024, &b[i]), VKLLM_OK);
    vkllm_pool_stats st;
    vkllm_pool_stats_get(dev, &st);
    assert_int_equal(st.blocks[0], 1);
    assert_int_equal(st.allocations[0], 8);
    assert_int_equal(st.used_bytes[0], 8u * 256 * 1024);
    /* free 1 and 3: two holes of 256 KiB; free 5 and 6: one 512 KiB hole after coalescing */
    vkllm_buffer_free(dev, &b[1]);
    vkllm_buffer_free(dev, &b[3]);
    vkllm_buffer_free(dev, &b[5]);
    vkllm_buffer_free(dev, &b[6]);
    assert_null(b[1].block);
    vkllm_pool_stats_get(dev, &st);
    assert_true(st.fragmentation[0] > 0.0);
    /* best fit: a 512 KiB request must land in the coalesced 5+6 hole, not at the block's tail */
    vkllm_buffer big;
    assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 512u * 1024, &big), VKLLM_OK);
    assert_int_equal(big.offset, 5u * 256 * 1024);
    /* a 200 KiB request takes the smallest fitting hole (1, the lowest of two equal ones) */
    vkllm_buffer small;
    assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 200u * 1024, &small), VKLLM_OK);
    assert_int_equal(small.offset, 1u * 256 * 1024);
    vkllm_buffer_free(dev, &small);
    vkllm_buffer_free(dev, &big);
    for (int i = 0; i < 8; i++) vkllm_buffer_free(dev, &b[i]); /* freeing a zeroed buffer is a no-op */
    vkllm_pool_stats_get(dev, &st);
    assert_int_equal(st.allocations[0], 0);
    assert_int_equal(st.used_bytes[0], 0);
    assert_int_equal(st.largest_free[0], st.reserved_bytes[0]); /* everything coalesced back */
    assert_true(st.peak_used_bytes[0] >= 8u * 256 * 1024);
    tu_device_close(dev);
}

static void test_pool_random_stress(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    vkllm_pool_set_block_size(dev, 8u << 20);
    tu_rng r = tu_rng_for(7);
    enum { N = 200 };
    vkllm_buffer b[N];
    memset(b, 0, sizeof b);
    for (int it = 0; it < 4000; it++) {
        int i = (int)(tu_next(&r) % N);
        if (b[i].block) {
            vkllm_buffer_free(dev, &b[i]);
        } else {
            uint64_t sz = 1 + tu_next(&r) % (300u * 1024);
            assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, sz, &b[i]), VKLLM_OK);
            /* no live allocation may overlap another in the same block */
            for (int j = 0; j < N; j++)
                if (j != i && b[j].block == b[i].block)
                    assert_true(b[j].offset + b[j].size <= b[i].offset || b[i].offset + b[i].size <= b[j].offset);
        }
    }
    for (int i = 0; i < N; i++) vkllm_buffer_free(dev, &b[i]);
    vkllm_pool_stats st;
    vkllm_pool_stats_get(dev, &st);
    assert_int_equal(st.used_bytes[0], 0);
    assert_true(st.fragmentation[0] < 1e-9 || st.blocks[0] > 1);
    tu_device_close(dev);
}

static void test_pool_errors(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    vkllm_buffer b;
    assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 0, &b), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, UINT64_MAX - 10, &b), VKLLM_ERROR_TOO_LARGE);
    assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, vkllm_device_features(dev)->max_allocation_size + 1, &b),
                     VKLLM_ERROR_TOO_LARGE);
    assert_non_null(strstr(vkllm_device_error(dev), "maxMemoryAllocationSize"));
    vkllm_pool_set_limit(dev, 3u << 20);
    vkllm_pool_set_block_size(dev, 1u << 20);
    vkllm_buffer ok[3];
    for (int i = 0; i < 3; i++) assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 1u << 20, &ok[i]), VKLLM_OK);
    assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, 1u << 20, &b), VKLLM_ERROR_OUT_OF_DEVICE_MEMORY);
    assert_null(b.block);
    assert_non_null(strstr(vkllm_device_error(dev), "pool limit"));
    /* out-of-range copies are refused, not performed */
    char tmp[16];
    assert_int_equal(vkllm_buffer_read(dev, &ok[0], (1u << 20) - 8, tmp, 16), VKLLM_ERROR_OUT_OF_RANGE);
    for (int i = 0; i < 3; i++) vkllm_buffer_free(dev, &ok[i]);
    tu_device_close(dev);
}

static void test_buffer_roundtrip(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    size_t n = (size_t)3 << 20; /* 12 MiB: more than one staging chunk on small devices */
    uint32_t *a = malloc(n * 4), *b = malloc(n * 4);
    assert_true(a && b);
    tu_rng r = tu_rng_for(11);
    for (size_t i = 0; i < n; i++) a[i] = (uint32_t)tu_next(&r);
    vkllm_buffer buf;
    assert_int_equal(vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, n * 4, &buf), VKLLM_OK);
    assert_int_equal(vkllm_buffer_write(dev, &buf, 0, a, n * 4), VKLLM_OK);
    assert_int_equal(vkllm_buffer_read(dev, &buf, 0, b, n * 4), VKLLM_OK);
    assert_memory_equal(a, b, n * 4);
    assert_int_equal(vkllm_buffer_fill(dev, &buf, 4096, 4096, 0x01020304u), VKLLM_OK);
    assert_int_equal(vkllm_buffer_read(dev, &buf, 4092, b, 4104), VKLLM_OK);
    assert_int_equal(b[0], a[1023]);
    assert_int_equal(b[1], 0x01020304u);
    assert_int_equal(b[1024], 0x01020304u);
    assert_int_equal(b[1025], a[2048]);
    vkllm_buffer_free(dev, &buf);
    free(a);
    free(b);
    tu_device_close(dev);
}

static void test_pipeline_cache(void **state)
{
    (void)state;
    char dir[] = "/tmp/vkllm-pcache-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("XDG_CACHE_HOME", dir, 1);
    vkllm_pipeline_desc pd = { .kernel = "rmsnorm", .n_bindings = 3, .push_size = 20, .n_spec = 2, .spec = { 64, 0 } };
    vkllm_pipeline *p, *p2;
    const char *path;

    vkllm_device *dev = tu_device_open();
    assert_int_equal(vkllm_device_pipeline_cache_state(dev, &path), VKLLM_CACHE_EMPTY);
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", path);
    assert_non_null(strstr(saved, dir));
    assert_int_equal(vkllm_pipeline_get(dev, &pd, &p), VKLLM_OK);
    assert_int_equal(vkllm_pipeline_get(dev, &pd, &p2), VKLLM_OK);
    assert_ptr_equal(p, p2); /* created once per (kernel, constants) */
    pd.spec[0] = 128;
    assert_int_equal(vkllm_pipeline_get(dev, &pd, &p2), VKLLM_OK);
    assert_ptr_not_equal(p, p2);
    assert_int_equal(vkllm_pipeline_count(dev), 2);
    pd.kernel = "no_such_kernel";
    assert_int_equal(vkllm_pipeline_get(dev, &pd, &p2), VKLLM_ERROR_INVALID_ARGUMENT);
    tu_device_close(dev); /* saves */
    assert_int_equal(access(saved, R_OK), 0);

    dev = tu_device_open();
    assert_int_equal(vkllm_device_pipeline_cache_state(dev, &path), VKLLM_CACHE_LOADED);
    tu_device_close(dev);

    /* a cache written for another device or driver (or damaged) is rejected, not trusted */
    FILE *fp = fopen(saved, "r+b");
    assert_non_null(fp);
    fseek(fp, 8, SEEK_SET); /* first byte of the device UUID */
    int ch = fgetc(fp);
    fseek(fp, 8, SEEK_SET);
    fputc(ch ^ 0xff, fp);
    fclose(fp);
    dev = tu_device_open();
    assert_int_equal(vkllm_device_pipeline_cache_state(dev, &path), VKLLM_CACHE_REJECTED);
    pd.kernel = "rmsnorm";
    assert_int_equal(vkllm_pipeline_get(dev, &pd, &p), VKLLM_OK); /* and the device works regardless */
    tu_device_close(dev);

    /* a truncated file too */
    fp = fopen(saved, "r+b");
    assert_non_null(fp);
    assert_int_equal(ftruncate(fileno(fp), 40), 0);
    fclose(fp);
    dev = tu_device_open();
    assert_int_equal(vkllm_device_pipeline_cache_state(dev, &path), VKLLM_CACHE_REJECTED);
    tu_device_close(dev);
    remove(saved);
    unsetenv("XDG_CACHE_HOME");
}

/* records rmsnorm(src -> dst) */
static void norm(vkllm_chain *c, tu_fbuf *src, tu_fbuf *w, tu_fbuf *dst, uint32_t n)
{
    vkllm_rmsnorm_args a = { tu_view(src), tu_view(w), tu_view(dst), n, 1, n, n, 1e-6f, NULL };
    assert_int_equal(vkllm_op_rmsnorm(c, &a), VKLLM_OK);
}

static void test_chain_barriers_and_replay(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    const uint32_t n = 1000;
    tu_rng r = tu_rng_for(21);
    float *x = malloc(n * 4), *w = malloc(n * 4), *out = malloc(n * 4), *ref = malloc(n * 4), *tmp = malloc(n * 4);
    tu_fill_normal(&r, x, n, 3.0f);
    tu_fill_uniform(&r, w, n, 0.5f, 2.0f);
    tu_fbuf bx = tu_fbuf_alloc(dev, n), bw = tu_fbuf_alloc(dev, n), b1 = tu_fbuf_alloc(dev, n), b2 = tu_fbuf_alloc(dev, n),
            b3 = tu_fbuf_alloc(dev, n);
    tu_fbuf_upload(dev, &bx, x);
    tu_fbuf_upload(dev, &bw, w);
    tu_fbuf_poison(dev, &b1);
    tu_fbuf_poison(dev, &b2);
    tu_fbuf_poison(dev, &b3);

    vkllm_chain_options o = { .timestamps = vkllm_device_features(dev)->timestamp_period_ns > 0 };
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, &o, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    norm(c, &bx, &bw, &b1, n); /* reads x */
    norm(c, &bx, &bw, &b2, n); /* reads x, writes elsewhere: independent, no barrier */
    assert_int_equal(vkllm_chain_barrier_count(c), 0);
    norm(c, &b1, &bw, &b3, n); /* reads b1 written above: barrier (RAW) */
    assert_int_equal(vkllm_chain_barrier_count(c), 1);
    norm(c, &b2, &bw, &b1, n); /* writes b1 that the previous one read: barrier (WAR) */
    assert_int_equal(vkllm_chain_barrier_count(c), 2);
    assert_int_equal(vkllm_chain_dispatch_count(c), 4);
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);

    /* expected: b3 = norm(norm(x)), b1 = norm(norm(x)) too */
    vkllm_ref_rmsnorm(x, w, tmp, n, 1, n, n, 1e-6f);
    vkllm_ref_rmsnorm(tmp, w, ref, n, 1, n, n, 1e-6f);
    for (int rep = 0; rep < 3; rep++) { /* replay without re-recording */
        tu_fbuf_poison(dev, &b3);
        assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
        tu_fbuf_download(dev, &b3, out);
        tu_assert_nmse(out, ref, n, 1e-10, "chain replay %d, b3", rep);
        tu_fbuf_download(dev, &b1, out);
        tu_assert_nmse(out, ref, n, 1e-10, "chain replay %d, b1", rep);
    }
    if (o.timestamps) {
        const vkllm_timing *t;
        uint32_t nt;
        assert_int_equal(vkllm_chain_timings(c, &t, &nt), VKLLM_OK);
        assert_int_equal(nt, 4);
        for (uint32_t i = 0; i < nt; i++) {
            assert_string_equal(t[i].name, "rmsnorm");
            assert_true(t[i].duration_ns >= 0);
            assert_true(t[i].bytes > 0);
        }
        assert_true(vkllm_chain_gpu_time_ns(c) > 0);
    }
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &bw); tu_fbuf_free(dev, &b1); tu_fbuf_free(dev, &b2); tu_fbuf_free(dev, &b3);
    free(x); free(w); free(out); free(ref); free(tmp);
    tu_device_close(dev);
}

/* The stamp kinds and sampling: every replay of a sampled chain computes the same (each run's
 * output against the CPU reference: rmsnorm is float32 element-wise, NMSE 1e-10 leaves room for
 * the order of the sum of squares only), each run times exactly its replay's groups, k runs time
 * every dispatch, one-stamp-per-dispatch starts where the previous dispatch ended, and every time
 * lies inside the step's span. */
static void test_chain_stamp_modes(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    if (vkllm_device_features(dev)->timestamp_period_ns <= 0) {
        tu_device_close(dev);
        skip();
    }
    const uint32_t n = 777;
    tu_rng r = tu_rng_for(22);
    float *x = malloc(n * 4), *w = malloc(n * 4), *out = malloc(n * 4), *ref[7];
    tu_fill_normal(&r, x, n, 3.0f);
    tu_fill_uniform(&r, w, n, 0.5f, 2.0f);
    /* the dispatches: name, source and destination (0 = x copy, 1..5 buffers), the group the chain
     * should put each in (a new one per layer prefix but the first; unprefixed names join the
     * current one), and whether a barrier separates it from the previous one */
    static const struct { const char *name; int src, dst, group, overlap; } D[7] = {
        { "token_embd", 0, 1, 0, 0 }, { "L0.attn_norm", 1, 2, 0, 0 }, { "L0.side", 1, 3, 0, 1 },
        { "L1.ffn_norm", 2, 1, 1, 0 }, { "attn_decode_merge", 1, 2, 1, 0 }, { "L2.x", 2, 4, 2, 0 },
        { "output", 4, 5, 2, 0 },
    };
    const uint32_t n_groups = 3;
    float *val[6] = { x };
    for (int i = 0; i < 7; i++) {
        ref[i] = malloc(n * 4);
        vkllm_ref_rmsnorm(val[D[i].src], w, ref[i], n, 1, n, n, 1e-6f);
        val[D[i].dst] = ref[i];
    }
    tu_fbuf bx = tu_fbuf_alloc(dev, n), bw = tu_fbuf_alloc(dev, n), b[6];
    for (int i = 0; i < 6; i++) b[i] = tu_fbuf_alloc(dev, n);
    tu_fbuf_upload(dev, &bx, x);
    tu_fbuf_upload(dev, &bw, w);
    for (int i = 0; i < 6; i++) tu_fbuf_poison(dev, &b[i]);

    const int modes[] = { VKLLM_STAMPS_COMPUTE, VKLLM_STAMPS_TOP, VKLLM_STAMPS_END, VKLLM_STAMPS_SAMPLED(VKLLM_STAMPS_END, 2),
                          VKLLM_STAMPS_SAMPLED(VKLLM_STAMPS_COMPUTE, 3), VKLLM_STAMPS_SAMPLED(VKLLM_STAMPS_END, 16) };
    /* (with 2 replays over 3 groups, replay 0 stamps groups 0 and 2: two stamped runs of dispatches) */
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        const int mode = modes[m], kind = VKLLM_STAMPS_KIND(mode), k = VKLLM_STAMPS_REPLAYS(mode) ? VKLLM_STAMPS_REPLAYS(mode) : 1;
        const uint32_t active = (uint32_t)k < n_groups ? (uint32_t)k : n_groups;
        vkllm_chain_options o = { .timestamps = mode, .label = "stamps" };
        vkllm_chain *c;
        assert_int_equal(vkllm_chain_create(dev, &o, &c), VKLLM_OK);
        assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
        assert_int_equal(vkllm_chain_copy(c, &bx.buf, 0, &b[0].buf, 0, 4ull * n), VKLLM_OK);
        for (int i = 0; i < 7; i++) {
            vkllm_rmsnorm_args a = { tu_view(&b[D[i].src]), tu_view(&bw), tu_view(&b[D[i].dst]), n, 1, n, n, 1e-6f, D[i].name };
            assert_int_equal(vkllm_op_rmsnorm(c, &a), VKLLM_OK);
        }
        assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
        assert_int_equal(vkllm_chain_replays(c), active);
        for (uint32_t run = 0; run < 2 * active + 1; run++) {
            tu_fbuf_poison(dev, &b[5]);
            tu_fbuf_poison(dev, &b[3]);
            assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
            tu_fbuf_download(dev, &b[5], out);
            tu_assert_nmse(out, ref[6], n, 1e-10, "stamps 0x%x run %u, output", (unsigned)mode, run);
            tu_fbuf_download(dev, &b[3], out);
            tu_assert_nmse(out, ref[2], n, 1e-10, "stamps 0x%x run %u, side branch", (unsigned)mode, run);
            const vkllm_timing *t;
            uint32_t nt;
            assert_int_equal(vkllm_chain_timings(c, &t, &nt), VKLLM_OK);
            assert_int_equal(nt, 7);
            double span = vkllm_chain_gpu_time_ns(c);
            assert_true(span > 0);
            for (uint32_t i = 0; i < nt; i++) {
                assert_string_equal(t[i].name, D[i].name);
                assert_int_equal(t[i].overlap, D[i].overlap);
                int want_fresh = (uint32_t)D[i].group % (uint32_t)k == run % active;
                if (t[i].fresh != want_fresh)
                    fail_msg("stamps 0x%x run %u: '%s' fresh %d, expected %d", (unsigned)mode, run, t[i].name, t[i].fresh, want_fresh);
                assert_int_equal(t[i].timed, run + 1 >= active || (uint32_t)D[i].group % (uint32_t)k <= run);
                if (!t[i].fresh) continue;
                assert_true(t[i].duration_ns >= 0 && t[i].start_ns >= 0);
                assert_true(t[i].start_ns + t[i].duration_ns <= span + 1.0);
                if (kind == VKLLM_STAMPS_END && i > 0 && t[i - 1].fresh) /* one stamp: starts where the last ended */
                    assert_true(fabs(t[i].start_ns - (t[i - 1].start_ns + t[i - 1].duration_ns)) < 1.0);
            }
        }
        vkllm_chain_destroy(c);
    }
    /* unknown kinds and too many replays are refused with a message */
    const int bad[] = { 4, -1, VKLLM_STAMPS_SAMPLED(VKLLM_STAMPS_END, VKLLM_STAMPS_MAX_REPLAYS + 1), VKLLM_STAMPS_SAMPLED(0, 2) };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vkllm_chain_options o = { .timestamps = bad[i] };
        vkllm_chain *c = (vkllm_chain *)&o;
        assert_int_equal(vkllm_chain_create(dev, &o, &c), VKLLM_ERROR_INVALID_ARGUMENT);
        assert_null(c);
        assert_non_null(strstr(vkllm_device_error(dev), "VKLLM_STAMPS_"));
    }
    tu_fbuf_free(dev, &bx);
    tu_fbuf_free(dev, &bw);
    for (int i = 0; i < 6; i++) tu_fbuf_free(dev, &b[i]);
    for (int i = 0; i < 7; i++) free(ref[i]);
    free(x); free(w); free(out);
    tu_device_close(dev);
}

static void test_chain_errors(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    assert_int_equal(vkllm_chain_submit(c), VKLLM_ERROR_INVALID_ARGUMENT); /* nothing recorded */
    tu_fbuf b = tu_fbuf_alloc(dev, 64);
    vkllm_rmsnorm_args a = { tu_view(&b), tu_view(&b), tu_view(&b), 64, 1, 64, 64, 1e-6f, NULL };
    assert_int_equal(vkllm_op_rmsnorm(c, &a), VKLLM_ERROR_INVALID_ARGUMENT); /* not recording */
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    a.x.offset = 4; /* misaligned binding offset */
    a.n = 8; a.x_stride = 8; a.y_stride = 8;
    assert_int_equal(vkllm_op_rmsnorm(c, &a), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_device_error(dev), "multiple"));
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    vkllm_chain_destroy(c);
    vkllm_chain_destroy(NULL);
    tu_fbuf_free(dev, &b);
    tu_device_close(dev);
}

/* The layer is on (ctest sets VKLLM_VALIDATE=1) and what it reports is counted: a deliberately
 * invalid call must raise the count. */
static void test_validation_counts_invalid_call(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    if (!vkllm_device_validation_enabled(dev)) {
        vkllm_device_destroy(dev);
        fail_msg("validation is off: run under ctest (VKLLM_VALIDATE=1) with vulkan-validationlayers installed");
    }
    dev->quiet_validation = 1;
    assert_int_equal(vkllm_device_validation_errors(dev), 0);
    /* VUID-VkBufferCreateInfo-size-00912: size must be greater than 0 */
    VkBufferCreateInfo bci = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 0,
                               .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT };
    VkBuffer buf = VK_NULL_HANDLE;
    VkResult r = vkCreateBuffer(dev->device, &bci, NULL, &buf);
    if (r == VK_SUCCESS && buf) vkDestroyBuffer(dev->device, buf, NULL);
    assert_true(vkllm_device_validation_errors(dev) >= 1);
    vkllm_device_destroy(dev);
}

/* Synchronization validation is on: a chain recorded without its barriers must be caught. */
static void test_validation_catches_missing_barrier(void **state)
{
    (void)state;
    vkllm_device *dev = tu_device_open();
    if (!vkllm_device_validation_enabled(dev)) {
        vkllm_device_destroy(dev);
        fail_msg("validation is off: run under ctest (VKLLM_VALIDATE=1)");
    }
    /* Layers of the 1.4 series track dispatches' storage-descriptor accesses only with a heuristic
     * that is off by default and reports false hazards on sub-allocated buffers (runtime/device.c):
     * there this check cannot be made. CI's 1.3 layer makes it. */
    uint32_t nl = 0, spec = 0;
    vkEnumerateInstanceLayerProperties(&nl, NULL);
    VkLayerProperties *lp = calloc(nl ? nl : 1, sizeof *lp);
    assert_non_null(lp);
    vkEnumerateInstanceLayerProperties(&nl, lp);
    for (uint32_t i = 0; i < nl; i++)
        if (!strcmp(lp[i].layerName, "VK_LAYER_KHRONOS_validation")) spec = lp[i].specVersion;
    free(lp);
    if (VK_API_VERSION_MAJOR(spec) == 1 && VK_API_VERSION_MINOR(spec) >= 4) {
        fprintf(stderr, "[ runtime  ] validation layer %u.%u.%u does not track dispatch storage accesses by default: missing-barrier "
                        "check skipped (made with the 1.3 layers, as in CI)\n",
                VK_API_VERSION_MAJOR(spec), VK_API_VERSION_MINOR(spec), VK_API_VERSION_PATCH(spec));
        vkllm_device_destroy(dev);
        skip();
    }
    dev->quiet_validation = 1;
    const uint32_t n = 256;
    tu_fbuf bx = tu_fbuf_alloc(dev, n), bw = tu_fbuf_alloc(dev, n), b1 = tu_fbuf_alloc(dev, n), b2 = tu_fbuf_alloc(dev, n);
    vkllm_chain *c;
    assert_int_equal(vkllm_chain_create(dev, NULL, &c), VKLLM_OK);
    vkllm_chain_set_auto_barriers(c, 0);
    assert_int_equal(vkllm_chain_begin(c), VKLLM_OK);
    norm(c, &bx, &bw, &b1, n);
    norm(c, &b1, &bw, &b2, n); /* read-after-write with no barrier */
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    assert_true(vkllm_device_validation_errors(dev) >= 1);
    vkllm_chain_destroy(c);
    tu_fbuf_free(dev, &bx); tu_fbuf_free(dev, &bw); tu_fbuf_free(dev, &b1); tu_fbuf_free(dev, &b2);
    vkllm_device_destroy(dev);
}

static void test_device_selection(void **state)
{
    (void)state;
    char err[512];
    vkllm_device *dev = NULL;
    vkllm_device_options o = vkllm_device_options_default();
    o.select = "no-such-gpu-name";
    assert_int_equal(vkllm_device_create(&o, &dev, err, sizeof err), VKLLM_ERROR_NO_DEVICE);
    assert_null(dev);
    assert_non_null(strstr(err, "no-such-gpu-name"));
    o.select = "999";
    assert_int_equal(vkllm_device_create(&o, &dev, err, sizeof err), VKLLM_ERROR_NO_DEVICE);
    assert_non_null(strstr(err, "out of range"));
    o.select = "0";
    o.disable = "coopmat,intdot,fp64";
    assert_int_equal(vkllm_device_create(&o, &dev, err, sizeof err), VKLLM_OK);
    const vkllm_features *f = vkllm_device_features(dev);
    assert_false(f->coopmat);
    assert_false(f->integer_dot);
    assert_false(f->shader_fp64);
    assert_true(f->subgroup_size >= 1);
    assert_true(f->max_allocation_size > 0);
    assert_true(f->max_storage_buffer_range > 0);
    char buf[4096];
    assert_true(vkllm_features_format(f, buf, sizeof buf) > 100);
    assert_non_null(strstr(buf, "subgroup size"));
    uint64_t errs = vkllm_device_validation_errors(dev);
    vkllm_device_destroy(dev);
    assert_int_equal(errs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_best_fit_and_coalescing),
        cmocka_unit_test(test_pool_random_stress),
        cmocka_unit_test(test_pool_errors),
        cmocka_unit_test(test_buffer_roundtrip),
        cmocka_unit_test(test_pipeline_cache),
        cmocka_unit_test(test_chain_barriers_and_replay),
        cmocka_unit_test(test_chain_stamp_modes),
        cmocka_unit_test(test_chain_errors),
        cmocka_unit_test(test_validation_counts_invalid_call),
        cmocka_unit_test(test_validation_catches_missing_barrier),
        cmocka_unit_test(test_device_selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
