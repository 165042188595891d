/* Prefill attention on the NV cooperative_matrix2 kernel (kernels/attn_prefill_cm2.comp):
 * vkllm_op_attn_prefill asks here first and falls back to its own kernels when this declines.
 * Switches (read per call, so a test or benchmark compares both paths in one process):
 *   VKLLM_ATTN_PREFILL_CM2=0   decline: the KHR cooperative-matrix or portable kernel runs instead
 *                              (VKLLM_DISABLE=coopmat2 does the same device-wide);
 *   VKLLM_ATTN_CM2=br,bc,wg[,st]  tile: target matrix rows per workgroup (tokens x group heads,
 *                              16..256), key tile (16..256, multiple of 16), threads (64..256, power of
 *                              two), st 1 = K/V tiles staged in shared memory by the shader, 0 = by the
 *                              driver's tensor loads. A malformed or unfitting tile is ignored. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ops_internal.h"
#include "vkllm/ops.h"


/* Default tile from bench-attn on the H100 (docs/BENCHMARKS.md): 64 matrix rows (16 tokens x 4
 * heads at Phi-4), 64 keys, 128 threads, K/V by the driver's tensor loads. MAX_DIM: the largest
 * matrix side asked of the driver's flexible dimensions. */
enum { CM2_BR = 64, CM2_BC = 64, CM2_WG = 128, CM2_ST = 0, CM2_MAX_DIM = 256 };

typedef struct cm2_tile { uint32_t br, bc, wg, st; } cm2_tile;

static int enabled(void)
{
    const char *e = getenv("VKLLM_ATTN_PREFILL_CM2");
    return !(e && !strcmp(e, "0"));
}

/* The requested tile (VKLLM_ATTN_CM2) where well-formed, else the default */
static cm2_tile tile_requested(void)
{
    cm2_tile t = { CM2_BR, CM2_BC, CM2_WG, CM2_ST };
    const char *e = getenv("VKLLM_ATTN_CM2");
    unsigned br = 0, bc = 0, wg = 0, st = 0;
    if (e && sscanf(e, "%u,%u,%u,%u", &br, &bc, &wg, &st) >= 3 && br >= 16 && br <= CM2_MAX_DIM && br % 16 == 0 && bc >= 16 &&
        bc <= CM2_MAX_DIM && bc % 16 == 0 && wg >= 64 && wg <= 256 && !(wg & (wg - 1)) && st <= 1)
        t = (cm2_tile){ br, bc, wg, st };
    return t;
}

/* Heads per workgroup gh and tokens bt (a multiple of 16 near br / gh): the whole GQA group shares
 * the K/V tiles where the group is a power of two and 16 tokens of it fit MAX_DIM, else one head.
 * The matrix rows bt * gh must be a multiple of gm (below). */
static void rows_for(uint32_t group, uint32_t br, uint32_t gm, uint32_t *gh, uint32_t *bt)
{
    *gh = 16 * group <= CM2_MAX_DIM && !(group & (group - 1)) ? group : 1;
    uint32_t b = br / (16 * *gh);
    *bt = 16 * (b ? b : 1);
    while ((*bt * *gh) % gm) *bt += 16;
}

/* Whether the tile's matrices are sizes the driver takes. Workgroup-scope flexible dimensions come
 * with a granularity per workgroup size; the H100 (driver 580) lists for f16 x f16 -> f32: M and N
 * multiples of 16 at 32 and 64 invocations, M of 32 and N of 16 at 128, M and N of 32 at 256, K of
 * 16 throughout (the feature record does not keep that list: assumed for every device). A size off
 * the list is undefined: an 80-row tile at 128 threads gave NMSE 0.19 there, head_dim 16 at 256
 * threads NaN. Matrix rows (M) are br; columns (N) bc for S and K^T, hd for V and O; K dims hd, bc.
 * Staged K/V (st 1) must leave 8 KiB of shared memory for what the driver stages itself. */
static int tile_ok(const vkllm_features *f, uint32_t hd, uint32_t br, cm2_tile t)
{
    const uint32_t gm = t.wg >= 128 ? 32 : 16, gn = t.wg >= 256 ? 32 : 16;
    return t.wg <= f->max_workgroup_invocations && br <= CM2_MAX_DIM && br % gm == 0 && t.bc % gn == 0 && hd % gn == 0 &&
           hd % 16 == 0 && hd <= CM2_MAX_DIM && (!t.st || 2ull * t.bc * (hd + 8) * 2 + 8192 <= f->max_shared_memory);
}

/* Records the cm2 kernel and returns 1 (with *s the status) where the device, the build and the
 * shape allow it; returns 0, recording nothing, where the caller should use another kernel. The
 * caller has checked the shape (check_attn in ops_attn.c). A requested tile that does not fit the
 * shape (e.g. 256 threads at head_dim 16) falls back to the default tile. */
int vkllm_attn_prefill_cm2_enabled(const vkllm_device *dev)
{
    const vkllm_features *f = &dev->f;
    return enabled() && f->coopmat2 && f->shader_fp16 && f->storage_16bit && vkllm_kernel_available("attn_prefill_cm2");
}

int vkllm_attn_prefill_cm2(vkllm_chain *chain, const vkllm_attn_args *a, vkllm_status *s);
int vkllm_attn_prefill_cm2(vkllm_chain *chain, const vkllm_attn_args *a, vkllm_status *s)
{
    vkllm_device *dev = vkllm_chain_device(chain);
    const vkllm_features *f = &dev->f;
    const uint32_t hd = a->head_dim, group = a->n_q / a->n_kv;
    if (!vkllm_attn_prefill_cm2_enabled(dev)) return 0;
    cm2_tile t = tile_requested();
    uint32_t gh, bt;
    rows_for(group, t.br, t.wg >= 128 ? 32 : 16, &gh, &bt);
    if (!tile_ok(f, hd, bt * gh, t)) {
        t = (cm2_tile){ CM2_BR, CM2_BC, CM2_WG, CM2_ST };
        rows_for(group, t.br, t.wg >= 128 ? 32 : 16, &gh, &bt);
        if (!tile_ok(f, hd, bt * gh, t)) return 0;
    }
    const uint32_t gx = (a->n_tok + bt - 1) / bt, gy = a->n_q / gh;
    vkllm_pipeline_desc pd = { .kernel = "attn_prefill_cm2", .n_bindings = 5, .push_size = 32, .n_spec = 6,
                               .spec = { t.wg, hd, gh, bt, t.bc, t.st } };
    vkllm_pipeline *p;
    if ((*s = vkllm_pipeline_get(dev, &pd, &p))) return 1;
    *s = vkllm_attn_prefill_dispatch(chain, a, p, "attn_prefill_cm2", gx, gy);
    return 1;
}
