/* Loading a phi3-architecture GGUF file onto the GPU: checks, memory budget, weight upload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "vkllm/ops_attn.h"

#define UPLOAD_CHUNK (64ull << 20)

static double gib(uint64_t b) { return (double)b / 1073741824.0; }

/* Types the mat-vec, GEMM and embedding kernels read. */
static int matrix_type_ok(vkllm_dtype t)
{
    switch (t) {
    case VKLLM_DTYPE_F32: case VKLLM_DTYPE_F16: case VKLLM_DTYPE_BF16: case VKLLM_DTYPE_Q8_0:
    case VKLLM_DTYPE_Q4_0: case VKLLM_DTYPE_Q4_K: case VKLLM_DTYPE_Q5_K: case VKLLM_DTYPE_Q6_K:
        return 1;
    }
    return 0;
}

typedef struct upload_state {
    const vkllm_load_options *o;
    uint64_t done, total;
    /* Tensor bytes are read from the file into this host buffer (one chunk), not taken from the
     * mapping: a file truncated under us then fails the read with a message instead of killing the
     * process with SIGBUS (vkllm_gguf_read_tensor). */
    uint8_t *bounce;
} upload_state;

static vkllm_status upload(vkllm_model *m, const vkllm_gguf_tensor *t, weight *w, upload_state *u)
{
    vkllm_device *dev = m->dev;
    w->type = t->type;
    w->cols = (uint32_t)t->ne[0];
    w->rows = (uint32_t)(t->n_dims > 1 ? t->ne[1] : 1);
    if (!matrix_type_ok(t->type))
        return vkllm_fail(dev, VKLLM_ERROR_UNSUPPORTED_TYPE, "tensor '%s' has type %s, which vkllm's kernels do not read",
                          t->name, vkllm_dtype_name(t->type));
    if (t->bytes > dev->f.max_storage_buffer_range)
        return vkllm_fail(dev, VKLLM_ERROR_TOO_LARGE,
                          "tensor '%s' is %.1f MiB, over this device's largest storage binding (%.1f MiB, "
                          "maxStorageBufferRange): this model is too large for '%s'",
                          t->name, t->bytes / 1048576.0, dev->f.max_storage_buffer_range / 1048576.0, dev->f.name);
    /* rounded up to whole words: kernels on the portable path read 32-bit words */
    vkllm_status s = vkllm_buffer_alloc(dev, VKLLM_MEM_DEVICE, (t->bytes + 3) / 4 * 4, &w->buf);
    if (s) return s;
    m->device_bytes += (t->bytes + 255) / 256 * 256;
    for (uint64_t off = 0; off < t->bytes; off += UPLOAD_CHUNK) {
        if (u->o && u->o->cancel && *u->o->cancel)
            return vkllm_fail(dev, VKLLM_ERROR_CANCELLED, "model load cancelled");
        uint64_t n = t->bytes - off < UPLOAD_CHUNK ? t->bytes - off : UPLOAD_CHUNK;
        char err[640];
        if ((s = vkllm_gguf_read_tensor(m->g, t, off, u->bounce, n, err, sizeof err)))
            return vkllm_fail(dev, s, "%s", err);
        if ((s = vkllm_buffer_write(dev, &w->buf, off, u->bounce, n))) return s;
        u->done += n;
        if (u->o && u->o->progress) u->o->progress(u->o->user, u->done, u->total);
    }
    return VKLLM_OK;
}

uint64_t vkllm_session_kv_estimate(const vkllm_phi3_hparams *hp, uint32_t n_ctx)
{
    return 2ull * hp->n_layer * ((vkllm_kv_cache_bytes(hp->n_head_kv, n_ctx, hp->head_dim) + 255) / 256 * 256);
}

vkllm_status vkllm_model_load(vkllm_device *dev, const char *path, const vkllm_load_options *o, vkllm_model **out)
{
    if (!dev || !path || !out) return vkllm_fail(dev, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_model_load: NULL argument");
    *out = NULL;
    vkllm_model *m = calloc(1, sizeof *m);
    if (!m) return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory loading %s", path);
    m->dev = dev;
    char err[1024];
    vkllm_status s = vkllm_gguf_open(path, &m->g, err, sizeof err);
    if (s) {
        free(m);
        return vkllm_fail(dev, s, "%s", err);
    }
    if ((s = vkllm_phi3_read_hparams(m->g, &m->hp, err, sizeof err)) ||
        (s = vkllm_phi3_check_tensors(m->g, &m->hp, &m->t, err, sizeof err))) {
        vkllm_model_destroy(m);
        return vkllm_fail(dev, s, "%s: %s", path, err);
    }
    const vkllm_phi3_hparams *hp = &m->hp;

    /* Everything the GPU will hold, before any of it is uploaded. */
    uint64_t weights = 0;
    for (uint64_t i = 0; i < vkllm_gguf_n_tensors(m->g); i++) weights += (vkllm_gguf_tensor_at(m->g, i)->bytes + 255) / 256 * 256;
    m->file_bytes = 0;
    for (uint64_t i = 0; i < vkllm_gguf_n_tensors(m->g); i++) m->file_bytes += vkllm_gguf_tensor_at(m->g, i)->bytes;
    uint32_t n_ctx = o && o->n_ctx ? o->n_ctx : hp->n_ctx_train;
    uint64_t kv = vkllm_session_kv_estimate(hp, n_ctx), scratch = vkllm_session_scratch_estimate(hp, n_ctx, 512);
    vkllm_device_refresh_budget(dev);
    const vkllm_features *f = vkllm_device_features(dev);
    uint64_t free_bytes = f->device_local_budget > f->device_local_usage ? f->device_local_budget - f->device_local_usage : 0;
    if (weights + kv + scratch > free_bytes) {
        uint64_t per_1k = vkllm_session_kv_estimate(hp, 1024);
        vkllm_model_destroy(m);
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_DEVICE_MEMORY,
                          "%s needs %.2f GiB of device memory (weights %.2f + KV cache %.2f for %u tokens of context + "
                          "scratch %.2f) but '%s' has %.2f GiB free: use a smaller context (--ctx; every 1024 tokens take "
                          "%.0f MiB)%s",
                          path, gib(weights + kv + scratch), gib(weights), gib(kv), n_ctx, gib(scratch), f->name,
                          gib(free_bytes), per_1k / 1048576.0,
                          weights + scratch > free_bytes ? " — the weights alone do not fit: use a smaller model or quantization" : "");
    }

    m->layer = calloc(hp->n_layer, sizeof *m->layer);
    if (!m->layer) {
        vkllm_model_destroy(m);
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    uint64_t largest = 0;
    for (uint64_t i = 0; i < vkllm_gguf_n_tensors(m->g); i++)
        if (vkllm_gguf_tensor_at(m->g, i)->bytes > largest) largest = vkllm_gguf_tensor_at(m->g, i)->bytes;
    upload_state u = { o, 0, weights, malloc(largest < UPLOAD_CHUNK ? (size_t)largest + 1 : (size_t)UPLOAD_CHUNK) };
    if (!u.bounce) {
        vkllm_model_destroy(m);
        return vkllm_fail(dev, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for the upload buffer");
    }
    s = upload(m, m->t.token_embd, &m->tok_embd, &u);
    if (!s) s = upload(m, m->t.output_norm, &m->out_norm, &u);
    if (!s && !m->t.output_tied) s = upload(m, m->t.output, &m->output, &u);
    if (!s && m->t.output_tied) m->output = m->tok_embd;
    for (uint32_t l = 0; l < hp->n_layer && !s; l++) {
        const vkllm_phi3_layer *tl = &m->t.layer[l];
        layer_weights *L = &m->layer[l];
        if (!s) s = upload(m, tl->attn_norm, &L->attn_norm, &u);
        if (!s) s = upload(m, tl->attn_qkv, &L->qkv, &u);
        if (!s) s = upload(m, tl->attn_output, &L->o, &u);
        if (!s) s = upload(m, tl->ffn_norm, &L->ffn_norm, &u);
        if (!s) s = upload(m, tl->ffn_up, &L->up, &u);
        if (!s) s = upload(m, tl->ffn_down, &L->down, &u);
    }
    free(u.bounce);
    if (!s && (m->out_norm.type != VKLLM_DTYPE_F32))
        s = vkllm_fail(dev, VKLLM_ERROR_BAD_MODEL, "output_norm.weight must be F32, found %s", vkllm_dtype_name(m->out_norm.type));
    /* Metadata was checked and weights were read at different times: if anything wrote the file in
     * between, neither is trusted. */
    if (!s && (s = vkllm_gguf_check_unchanged(m->g, err, sizeof err))) s = vkllm_fail(dev, s, "%s: %s", path, err);
    if (s) {
        vkllm_model_destroy(m);
        return s;
    }
    *out = m;
    return VKLLM_OK;
}

void vkllm_model_destroy(vkllm_model *m)
{
    if (!m) return;
    if (m->layer) {
        for (uint32_t l = 0; l < m->hp.n_layer; l++) {
            layer_weights *L = &m->layer[l];
            vkllm_buffer_free(m->dev, &L->attn_norm.buf);
            vkllm_buffer_free(m->dev, &L->qkv.buf);
            vkllm_buffer_free(m->dev, &L->o.buf);
            vkllm_buffer_free(m->dev, &L->ffn_norm.buf);
            vkllm_buffer_free(m->dev, &L->up.buf);
            vkllm_buffer_free(m->dev, &L->down.buf);
        }
        free(m->layer);
    }
    if (!m->t.output_tied) vkllm_buffer_free(m->dev, &m->output.buf);
    vkllm_buffer_free(m->dev, &m->tok_embd.buf);
    vkllm_buffer_free(m->dev, &m->out_norm.buf);
    vkllm_phi3_tensors_free(&m->t);
    vkllm_gguf_close(m->g);
    free(m);
}

const vkllm_phi3_hparams *vkllm_model_hparams(const vkllm_model *m) { return m ? &m->hp : NULL; }

void vkllm_model_sizes(const vkllm_model *m, uint64_t *file_tensor_bytes, uint64_t *device_weight_bytes)
{
    if (file_tensor_bytes) *file_tensor_bytes = m ? m->file_bytes : 0;
    if (device_weight_bytes) *device_weight_bytes = m ? m->device_bytes : 0;
}

struct vkllm_gguf *vkllm_model_gguf(const vkllm_model *m) { return m ? m->g : NULL; }

uint32_t vkllm_model_max_ctx(vkllm_model *m, uint32_t max_batch)
{
    if (!m) return 0;
    vkllm_device_refresh_budget(m->dev);
    const vkllm_features *f = vkllm_device_features(m->dev);
    uint64_t free_bytes = f->device_local_budget > f->device_local_usage ? f->device_local_budget - f->device_local_usage : 0;
    uint32_t n = m->hp.n_ctx_train;
    /* the largest context (a multiple of 256, or the model's own) whose cache and scratch fit */
    while (n > 256 && vkllm_session_kv_estimate(&m->hp, n) + vkllm_session_scratch_estimate(&m->hp, n, max_batch ? max_batch : 512) >
                          free_bytes)
        n = (n - 1) / 256 * 256;
    return n;
}
