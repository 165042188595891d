/* Microbenchmarks of the foundation kernels (RMSNorm, RoPE) against the streaming-read ceiling
 * measured in the same run; method in benchutil.h. */
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "vkllm/ref.h"

/* ---- RMSNorm ---- */
typedef struct {
    vkllm_buffer x, w, y;
    uint32_t n, rows, copies;
    uint64_t x_bytes, y_bytes;
} norm_case;
static void rec_norm(vkllm_chain *c, uint32_t i, void *u)
{
    norm_case *k = u;
    uint32_t j = i % k->copies;
    vkllm_rmsnorm_args a = { { k->x, j * k->x_bytes }, { k->w, 0 }, { k->y, j * k->y_bytes }, k->n, k->rows, k->n, k->n, 1e-5f, NULL };
    if (vkllm_op_rmsnorm(c, &a)) exit(1);
}

static void bench_rmsnorm(vkllm_device *dev, uint32_t n, uint32_t rows)
{
    norm_case k = { .n = n, .rows = rows };
    uint64_t call = (uint64_t)n * rows * 8 + (uint64_t)n * 4;
    k.x_bytes = bu_round256((uint64_t)n * rows * 4);
    k.y_bytes = k.x_bytes;
    uint32_t n_disp;
    bu_plan(call, &k.copies, &n_disp);
    k.x = bu_random_buffer(dev, k.x_bytes * k.copies);
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, k.y_bytes * k.copies, &k.y));
    BU_CK(dev, vkllm_buffer_fill(dev, &k.y, 0, k.y_bytes * k.copies, 0x7FC00000u));
    float *w = malloc(n * 4), *x = malloc(k.x_bytes), *ref = malloc((size_t)n * rows * 4), *out = malloc((size_t)n * rows * 4);
    for (uint32_t i = 0; i < n; i++) w[i] = 1.0f + 0.1f * bu_normal();
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, (uint64_t)n * 4, &k.w));
    BU_CK(dev, vkllm_buffer_write(dev, &k.w, 0, w, (uint64_t)n * 4));
    double med, mn;
    bu_time_dispatches(dev, n_disp, rec_norm, &k, &med, &mn);
    /* correctness of what was timed: copy 0 against the reference */
    BU_CK(dev, vkllm_buffer_read(dev, &k.x, 0, x, (uint64_t)n * rows * 4));
    BU_CK(dev, vkllm_buffer_read(dev, &k.y, 0, out, (uint64_t)n * rows * 4));
    vkllm_ref_rmsnorm(x, w, ref, n, rows, n, n, 1e-5f);
    double e = bu_nmse(out, ref, (size_t)n * rows);
    char shape[64];
    snprintf(shape, sizeof shape, "n=%u rows=%u", n, rows);
    bu_report("rmsnorm", shape, call, (uint64_t)n * rows * 4, med, mn, e);
    if (!(e <= 1e-10)) {
        fprintf(stderr, "bench-kernels: rmsnorm %s is WRONG (NMSE %.3e)\n", shape, e);
        exit(1);
    }
    vkllm_buffer_free(dev, &k.x); vkllm_buffer_free(dev, &k.y); vkllm_buffer_free(dev, &k.w);
    free(w); free(x); free(ref); free(out);
}

/* ---- RoPE ---- */
typedef struct {
    vkllm_buffer x, y, pos, table;
    uint32_t n_tok, n_head, head_dim, copies;
    uint64_t bytes_x;
} rope_case;
static void rec_rope(vkllm_chain *c, uint32_t i, void *u)
{
    rope_case *k = u;
    uint32_t j = i % k->copies, stride = k->n_head * k->head_dim;
    vkllm_rope_args a = { { k->x, j * k->bytes_x }, { k->y, j * k->bytes_x }, { k->pos, 0 }, { k->table, 0 },
                          k->n_tok, k->n_head, k->head_dim, k->head_dim, stride, k->head_dim, stride, k->head_dim, 1, 1.0f, 0,
                          NULL };
    if (vkllm_op_rope(c, &a)) exit(1);
}

static void bench_rope(vkllm_device *dev, uint32_t n_tok, uint32_t n_head, uint32_t head_dim)
{
    rope_case k = { .n_tok = n_tok, .n_head = n_head, .head_dim = head_dim };
    size_t nx = (size_t)n_tok * n_head * head_dim;
    uint64_t call = (uint64_t)nx * 8 + n_tok * 4ull + head_dim * 4ull;
    k.bytes_x = bu_round256(nx * 4);
    uint32_t n_disp;
    bu_plan(call, &k.copies, &n_disp);
    k.x = bu_random_buffer(dev, k.bytes_x * k.copies);
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, k.bytes_x * k.copies, &k.y));
    BU_CK(dev, vkllm_buffer_fill(dev, &k.y, 0, k.bytes_x * k.copies, 0x7FC00000u));
    int32_t *pos = malloc(n_tok * 4);
    for (uint32_t t = 0; t < n_tok; t++) pos[t] = (int32_t)(4096 + t);
    double inv[256];
    float table[512];
    vkllm_rope_inv_freq(inv, head_dim, 250000.0, 1.0, NULL);
    vkllm_rope_table(table, inv, head_dim / 2);
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, n_tok * 4ull, &k.pos));
    BU_CK(dev, vkllm_buffer_write(dev, &k.pos, 0, pos, n_tok * 4ull));
    BU_CK(dev, vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, head_dim * 4ull, &k.table));
    BU_CK(dev, vkllm_buffer_write(dev, &k.table, 0, table, head_dim * 4ull));
    double med, mn;
    bu_time_dispatches(dev, n_disp, rec_rope, &k, &med, &mn);
    float *x = malloc(nx * 4), *out = malloc(nx * 4), *ref = malloc(nx * 4);
    BU_CK(dev, vkllm_buffer_read(dev, &k.x, 0, x, nx * 4));
    BU_CK(dev, vkllm_buffer_read(dev, &k.y, 0, out, nx * 4));
    uint32_t stride = n_head * head_dim;
    vkllm_rope_params p = { n_tok, n_head, head_dim, head_dim, stride, head_dim, stride, head_dim, 1, 1.0f };
    vkllm_ref_rope(&p, x, ref, pos, inv);
    double e = bu_nmse(out, ref, nx);
    char shape[64];
    snprintf(shape, sizeof shape, "tok=%u %ux%u neox", n_tok, n_head, head_dim);
    bu_report(vkllm_device_features(dev)->shader_fp64 ? "rope_neox" : "rope_neox_f32", shape, call, (uint64_t)nx * 3, med, mn, e);
    if (!(e <= 1e-7)) {
        fprintf(stderr, "bench-kernels: rope %s is WRONG (NMSE %.3e)\n", shape, e);
        exit(1);
    }
    vkllm_buffer_free(dev, &k.x); vkllm_buffer_free(dev, &k.y); vkllm_buffer_free(dev, &k.pos); vkllm_buffer_free(dev, &k.table);
    free(pos); free(x); free(out); free(ref);
}

int main(int argc, char **argv)
{
    vkllm_device *dev = bu_open(argc, argv, "bench-kernels");
    bu_measure_ceiling(dev);
    bench_rmsnorm(dev, 5120, 1);
    bench_rmsnorm(dev, 5120, 512);
    bench_rmsnorm(dev, 3072, 512);
    bench_rope(dev, 1, 40, 128);
    bench_rope(dev, 512, 40, 128);
    bu_close(dev);
    return 0;
}
