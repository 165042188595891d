/* Self-check of the gemm family: a few small products against vkllm_ref_gemm (bounds and their
 * reasons as in tests/gpu/test_gemm.c), the cooperative-matrix kernel too where the device has it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "selfcheck_internal.h"
#include "vkllm/ops.h"
#include "vkllm/ref_gemm.h"

/* One product y = x W^T (+ y in place when res), m x n_out from n_in. */
static vkllm_status check(vkllm_device *dev, vkllm_chain *chain, rng *g, vkllm_dtype type, uint32_t m, uint32_t n_out,
                          uint32_t n_in, int res, int coopmat, vkllm_selfcheck_result *out)
{
    uint64_t row_bytes;
    vkllm_status s = vkllm_dtype_bytes(type, n_in, &row_bytes);
    if (s) return s;
    size_t nw = (size_t)n_out * n_in, nx = (size_t)m * n_in, ny = (size_t)m * n_out;
    uint64_t wq_bytes = (row_bytes * n_out + 3) & ~(uint64_t)3;
    float *wf = malloc(nw * 4), *x = malloc(nx * 4), *ref = malloc(ny * 4), *got = malloc(ny * 4);
    uint8_t *wq = calloc(1, wq_bytes);
    vkllm_buffer bw = { 0 }, bx = { 0 }, by = { 0 };
    if (!wf || !x || !ref || !got || !wq) s = vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "self-check gemm: out of host memory");
    if (!s) {
        for (size_t i = 0; i < nw; i++) wf[i] = 0.05f * normal(g);
        for (size_t i = 0; i < nx; i++) x[i] = normal(g);
        for (size_t i = 0; i < ny; i++) ref[i] = normal(g); /* the residual, when res */
        s = vkllm_quantize(type, wf, wq, nw);
    }
    if (!s) s = vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, wq_bytes, &bw);
    if (!s) s = vkllm_buffer_write(dev, &bw, 0, wq, wq_bytes);
    if (!s) s = vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, nx * 4, &bx);
    if (!s) s = vkllm_buffer_write(dev, &bx, 0, x, nx * 4);
    if (!s) s = vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, ny * 4, &by);
    if (!s) s = res ? vkllm_buffer_write(dev, &by, 0, ref, ny * 4) : vkllm_buffer_fill(dev, &by, 0, ny * 4, 0x7FC00000u);
    if (!s) s = vkllm_ref_gemm(type, wq, n_out, n_in, x, ref, res ? ref : NULL, m, n_in, n_out, n_out);
    vkllm_view none = { { NULL, 0, 0 }, 0 }, vy = { by, 0 };
    vkllm_gemm_args a = { .w = { bw, 0 }, .type = type, .n_out = n_out, .n_in = n_in, .x = { bx, 0 }, .y = vy,
                          .residual = res ? vy : none, .m = m, .x_stride = n_in, .y_stride = n_out, .r_stride = n_out,
                          .force_portable = !coopmat };
    if (!s) s = vkllm_chain_begin(chain);
    if (!s) s = vkllm_op_gemm(chain, &a);
    if (!s) s = vkllm_chain_end(chain);
    if (!s) s = vkllm_chain_run(chain);
    if (!s) s = vkllm_buffer_read(dev, &by, 0, got, ny * 4);
    if (!s) {
        const char *cm = NULL;
        if (coopmat) vkllm_gemm_uses_coopmat(dev, type, n_in, &cm);
        static const char *port_names[] = { "gemm_f32", "gemm_f16", "gemm_q4_0", "gemm_q8_0", "gemm_q4_k", "gemm_q5_k", "gemm_q6_k", "gemm_bf16" };
        out->kernel = cm ? cm
                      : port_names[type == VKLLM_DTYPE_F32 ? 0 : type == VKLLM_DTYPE_F16 ? 1 : type == VKLLM_DTYPE_Q4_0 ? 2
                                 : type == VKLLM_DTYPE_Q8_0 ? 3 : type == VKLLM_DTYPE_Q4_K ? 4 : type == VKLLM_DTYPE_Q5_K ? 5
                                 : type == VKLLM_DTYPE_Q6_K ? 6 : 7];
        snprintf(out->shape, sizeof out->shape, "m=%u %u->%u%s", m, n_in, n_out, res ? " +residual in place" : "");
        double num = 0, den = 0;
        int bad = 0;
        for (size_t i = 0; i < ny; i++) {
            if (!isfinite(got[i])) bad = 1;
            double d = (double)got[i] - ref[i];
            num += d * d;
            den += (double)ref[i] * ref[i];
        }
        out->nmse = bad ? INFINITY : den > 0 ? num / den : num;
        out->bound = coopmat ? 1e-4 : 1e-9; /* fp16 inputs / float32 summation order */
    }
    vkllm_buffer_free(dev, &bw); vkllm_buffer_free(dev, &bx); vkllm_buffer_free(dev, &by);
    free(wf); free(x); free(ref); free(got); free(wq);
    return s;
}

vkllm_status vkllm_selfcheck_gemm(vkllm_device *dev, vkllm_selfcheck_sink *sink)
{
    vkllm_chain *chain;
    vkllm_status s = vkllm_chain_create(dev, NULL, &chain);
    if (s) return s;
    rng g = { sink->seed ^ 0x67656d6dull };
    static const struct { vkllm_dtype t; uint32_t m, n, k; int res, cm; } cases[] = {
        { VKLLM_DTYPE_Q4_K, 5, 70, 256, 0, 0 },   { VKLLM_DTYPE_Q6_K, 3, 33, 256, 1, 0 },
        { VKLLM_DTYPE_Q8_0, 17, 65, 96, 1, 0 },   { VKLLM_DTYPE_F16, 2, 17, 40, 0, 0 },
        { VKLLM_DTYPE_Q4_K, 130, 200, 512, 1, 1 }, { VKLLM_DTYPE_F16, 64, 129, 256, 0, 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !s; i++) {
        if (cases[i].cm && !vkllm_gemm_uses_coopmat(dev, cases[i].t, cases[i].k, NULL)) continue;
        vkllm_selfcheck_result r;
        memset(&r, 0, sizeof r);
        s = check(dev, chain, &g, cases[i].t, cases[i].m, cases[i].n, cases[i].k, cases[i].res, cases[i].cm, &r);
        if (!s) vkllm_selfcheck_emit(sink, &r);
    }
    vkllm_chain_destroy(chain);
    return s;
}
