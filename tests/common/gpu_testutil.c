#include "gpu_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkllm/half.h"

vkllm_device *tu_device_open(void)
{
    char err[1024];
    vkllm_device *dev = NULL;
    vkllm_device_options o = vkllm_device_options_default();
    vkllm_status s = vkllm_device_create(&o, &dev, err, sizeof err);
    if (s) fail_msg("cannot open a Vulkan device: %s (%s)", err, vkllm_strerror(s));
    static int printed;
    if (!printed) {
        printed = 1;
        fprintf(stderr, "[ device   ] %s, subgroup %u, validation %s\n", vkllm_device_features(dev)->name,
                vkllm_device_features(dev)->subgroup_size, vkllm_device_validation_enabled(dev) ? "on" : "OFF");
    }
    return dev;
}

void tu_device_close(vkllm_device *dev)
{
    uint64_t n = vkllm_device_validation_errors(dev);
    vkllm_device_destroy(dev);
    if (n) fail_msg("the validation layer reported %llu error(s) (see above)", (unsigned long long)n);
}

tu_fbuf tu_fbuf_alloc(vkllm_device *dev, size_t n)
{
    tu_fbuf b = { .n = n };
    vkllm_status s = vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, (n + TU_GUARD_WORDS) * 4, &b.buf);
    if (s) fail_msg("buffer of %zu floats: %s", n, vkllm_device_error(dev));
    return b;
}

void tu_fbuf_poison(vkllm_device *dev, tu_fbuf *b)
{
    if (b->n && vkllm_buffer_fill(dev, &b->buf, 0, b->n * 4, TU_NAN_BITS)) fail_msg("fill: %s", vkllm_device_error(dev));
    if (vkllm_buffer_fill(dev, &b->buf, b->n * 4, TU_GUARD_WORDS * 4, TU_GUARD)) fail_msg("fill: %s", vkllm_device_error(dev));
}

void tu_fbuf_upload(vkllm_device *dev, tu_fbuf *b, const float *src)
{
    tu_fbuf_poison(dev, b);
    if (b->n && vkllm_buffer_write(dev, &b->buf, 0, src, b->n * 4)) fail_msg("upload: %s", vkllm_device_error(dev));
}

void tu_fbuf_download(vkllm_device *dev, const tu_fbuf *b, float *dst)
{
    uint32_t guard[TU_GUARD_WORDS];
    if (b->n && vkllm_buffer_read(dev, &b->buf, 0, dst, b->n * 4)) fail_msg("download: %s", vkllm_device_error(dev));
    if (vkllm_buffer_read(dev, &b->buf, b->n * 4, guard, sizeof guard)) fail_msg("download: %s", vkllm_device_error(dev));
    for (unsigned i = 0; i < TU_GUARD_WORDS; i++)
        if (guard[i] != TU_GUARD) fail_msg("out-of-bounds write: guard word %u after %zu floats is 0x%08x", i, b->n, guard[i]);
}

void tu_fbuf_free(vkllm_device *dev, tu_fbuf *b) { vkllm_buffer_free(dev, &b->buf); }

vkllm_view tu_view(const tu_fbuf *b)
{
    vkllm_view v = { b->buf, 0 };
    return v;
}

void tu_fbuf_init_output(vkllm_device *dev, tu_fbuf *y, const float *res, uint32_t n_vec, size_t stride, uint32_t n)
{
    if (!res) {
        tu_fbuf_poison(dev, y);
        return;
    }
    float *init = malloc(y->n * 4);
    assert_non_null(init);
    tu_poison(init, y->n);
    for (uint32_t v = 0; v < n_vec; v++) memcpy(init + (size_t)v * stride, res + (size_t)v * stride, (size_t)n * 4);
    tu_fbuf_upload(dev, y, init);
    free(init);
}

void tu_chain_run_once(vkllm_chain *c)
{
    assert_int_equal(vkllm_chain_end(c), VKLLM_OK);
    assert_int_equal(vkllm_chain_run(c), VKLLM_OK);
    vkllm_chain_destroy(c);
}

size_t tu_check_fp16_cache(const uint16_t *got, const uint16_t *ref, size_t n, uint16_t poison, float rel, float abs,
                           const char *what)
{
    size_t written = 0;
    for (size_t i = 0; i < n; i++) {
        if (ref[i] == poison) {
            if (got[i] != poison)
                fail_msg("%s: stray write at half %zu (0x%04x), seed %llu", what, i, got[i], (unsigned long long)tu_seed());
            continue;
        }
        const float g = vkllm_fp16_to_fp32(got[i]), e = vkllm_fp16_to_fp32(ref[i]);
        if (!(fabsf(g - e) <= fabsf(e) * rel + abs))
            fail_msg("%s: half %zu is %g, reference %g, tolerance %g (seed %llu)", what, i, g, e, fabsf(e) * rel + abs,
                     (unsigned long long)tu_seed());
        written++;
    }
    return written;
}
