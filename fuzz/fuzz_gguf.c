/* libFuzzer target for the GGUF reader: open any bytes, and on success walk everything the API
 * exposes (every value through every getter, every tensor's first and last byte, small tensors
 * dequantized), so a wrong bound anywhere becomes an ASan report. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vkllm/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;
static float deq[4096];

static void walk(vkllm_gguf *g, vkllm_gguf_ref r, int depth)
{
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f;
    double d;
    int b;
    const char *s;
    uint64_t len;
    if (vkllm_gguf_ref_u32(g, r, &u32) == VKLLM_OK) sink += u32;
    if (vkllm_gguf_ref_i32(g, r, &i32) == VKLLM_OK) sink += (uint64_t)i32;
    if (vkllm_gguf_ref_u64(g, r, &u64) == VKLLM_OK) sink += u64;
    if (vkllm_gguf_ref_i64(g, r, &i64) == VKLLM_OK) sink += (uint64_t)i64;
    if (vkllm_gguf_ref_f32(g, r, &f) == VKLLM_OK) sink += f == f;
    if (vkllm_gguf_ref_f64(g, r, &d) == VKLLM_OK) sink += d == d;
    if (vkllm_gguf_ref_bool(g, r, &b) == VKLLM_OK) sink += (uint64_t)b;
    if (vkllm_gguf_ref_string(g, r, &s, &len) == VKLLM_OK) sink += len + (uint8_t)s[len] + (len ? (uint8_t)s[0] : 0);
    uint64_t n = vkllm_gguf_ref_len(r);
    const uint8_t *raw = vkllm_gguf_ref_data(r);
    if (raw && n) sink += raw[0];
    /* the first and last few elements: enough to reach every kind of element access */
    for (uint64_t i = 0; i < n && depth < 20; i++) {
        if (i == 4 && n > 8) i = n - 4;
        walk(g, vkllm_gguf_ref_at(r, i), depth + 1);
    }
    sink += vkllm_gguf_ref_at(r, n).type == VKLLM_GGUF_NONE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    vkllm_gguf *g = NULL;
    if (vkllm_gguf_open_memory(data, size, &g, err, sizeof err) != VKLLM_OK) {
        sink += strlen(err);
        return 0;
    }
    for (uint64_t i = 0; i < vkllm_gguf_n_keys(g); i++) {
        const char *k = vkllm_gguf_key(g, i);
        vkllm_gguf_ref r = vkllm_gguf_find(g, k);
        walk(g, r, 0);
        uint32_t u;
        const char *s;
        vkllm_gguf_ref a;
        uint64_t n;
        sink += vkllm_gguf_get_u32(g, k, &u) + vkllm_gguf_get_string(g, k, &s, NULL) +
                vkllm_gguf_get_array(g, k, VKLLM_GGUF_NONE, &a, &n);
        sink += strlen(vkllm_gguf_error(g));
    }
    for (uint64_t i = 0; i < vkllm_gguf_n_tensors(g); i++) {
        const vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        sink += p[0] + p[t->bytes - 1];
        const vkllm_gguf_tensor *x;
        sink += vkllm_gguf_find_tensor(g, t->name) == t;
        sink += vkllm_gguf_expect_tensor(g, t->name, VKLLM_DTYPE_BIT(t->type), t->n_dims, t->ne, &x);
        sink += vkllm_gguf_expect_tensor(g, t->name, VKLLM_DTYPE_BIT(VKLLM_DTYPE_Q4_K), 2,
                                         (const uint64_t[]){ 0, 7 }, &x);
        if (t->n_elems <= sizeof deq / sizeof deq[0]) {
            vkllm_dequantize(t->type, t->data, deq, (size_t)t->n_elems);
            sink += deq[0] == deq[0];
        }
    }
    vkllm_gguf_close(g);
    return 0;
}
