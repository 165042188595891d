/* The phi3 architecture: hyperparameters, tensor checks, LongRoPE; see vkllm/phi3.h. */
#include "vkllm/phi3.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkllm/quant.h"

static vkllm_status fail(char *err, size_t n, vkllm_status s, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* A required u32 key in [lo, hi]. */
static vkllm_status get_u32(vkllm_gguf *g, const char *key, uint32_t lo, uint32_t hi, uint32_t *out, char *err,
                            size_t n)
{
    if (vkllm_gguf_get_u32(g, key, out) != VKLLM_OK)
        return fail(err, n, VKLLM_ERROR_BAD_MODEL, "%s", vkllm_gguf_error(g));
    if (*out < lo || *out > hi)
        return fail(err, n, VKLLM_ERROR_BAD_MODEL, "key '%s' = %" PRIu32 ": must be %" PRIu32 "..%" PRIu32, key, *out,
                    lo, hi);
    return VKLLM_OK;
}

/* An optional u32 key: *out keeps its default when absent. */
static vkllm_status opt_u32(vkllm_gguf *g, const char *key, uint32_t lo, uint32_t hi, uint32_t *out, char *err,
                            size_t n)
{
    if (vkllm_gguf_find(g, key).type == VKLLM_GGUF_NONE) return VKLLM_OK;
    return get_u32(g, key, lo, hi, out, err, n);
}

/* An optional float key in (lo, hi) (open interval; finite). */
static vkllm_status opt_f32(vkllm_gguf *g, const char *key, double lo, double hi, int required, float *out,
                            char *err, size_t n)
{
    if (!required && vkllm_gguf_find(g, key).type == VKLLM_GGUF_NONE) return VKLLM_OK;
    if (vkllm_gguf_get_f32(g, key, out) != VKLLM_OK)
        return fail(err, n, VKLLM_ERROR_BAD_MODEL, "%s", vkllm_gguf_error(g));
    if (!isfinite(*out) || !(*out > lo) || !(*out < hi))
        return fail(err, n, VKLLM_ERROR_BAD_MODEL, "key '%s' = %g: must be a number in (%g, %g)", key, (double)*out,
                    lo, hi);
    return VKLLM_OK;
}

/* Limits: far above any real model, low enough that products of them fit 64 bits. */
#define MAX_LAYER 4096u
#define MAX_EMBD (1u << 20)
#define MAX_FF (1u << 22)
#define MAX_VOCAB (1u << 24)
#define MAX_CTX (1u << 24)

vkllm_status vkllm_phi3_read_hparams(vkllm_gguf *g, vkllm_phi3_hparams *hp, char *err, size_t n)
{
    if (!g || !hp) return fail(err, n, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_phi3_read_hparams: NULL argument");
    memset(hp, 0, sizeof *hp);
    vkllm_status s;
    const char *arch = NULL;
    if (vkllm_gguf_get_string(g, "general.architecture", &arch, NULL) != VKLLM_OK)
        return fail(err, n, VKLLM_ERROR_BAD_MODEL, "%s", vkllm_gguf_error(g));
    if (strcmp(arch, "phi3"))
        return fail(err, n, VKLLM_ERROR_BAD_MODEL,
                    "key 'general.architecture' = '%.64s': vkllm runs only 'phi3' (Phi-3, Phi-3.5, Phi-4)", arch);
#define T(x) do { if ((s = (x)) != VKLLM_OK) return s; } while (0)
    T(get_u32(g, "phi3.block_count", 1, MAX_LAYER, &hp->n_layer, err, n));
    T(get_u32(g, "phi3.embedding_length", 1, MAX_EMBD, &hp->n_embd, err, n));
    T(get_u32(g, "phi3.attention.head_count", 1, hp->n_embd, &hp->n_head, err, n));
    if (hp->n_embd % hp->n_head)
        return fail(err, n, VKLLM_ERROR_BAD_MODEL,
                    "key 'phi3.attention.head_count' = %" PRIu32 " does not divide phi3.embedding_length = %" PRIu32,
                    hp->n_head, hp->n_embd);
    hp->head_dim = hp->n_embd / hp->n_head;
    hp->n_head_kv = hp->n_head;
    T(opt_u32(g, "phi3.attention.head_count_kv", 1, hp->n_head, &hp->n_head_kv, err, n));
    if (hp->n_head % hp->n_head_kv)
        return fail(err, n, VKLLM_ERROR_BAD_MODEL,
                    "key 'phi3.attention.head_count_kv' = %" PRIu32 " does not divide phi3.attention.head_count = %" PRIu32,
                    hp->n_head_kv, hp->n_head);
    T(get_u32(g, "phi3.feed_forward_length", 1, MAX_FF, &hp->n_ff, err, n));
    T(get_u32(g, "phi3.context_length", 1, MAX_CTX, &hp->n_ctx_train, err, n));
    hp->n_rot = hp->head_dim;
    T(opt_u32(g, "phi3.rope.dimension_count", 2, hp->head_dim, &hp->n_rot, err, n));
    if (hp->n_rot % 2)
        return fail(err, n, VKLLM_ERROR_BAD_MODEL,
                    "key 'phi3.rope.dimension_count' = %" PRIu32 ": must be even (RoPE rotates pairs)", hp->n_rot);
    hp->rope_base = 10000.0f;
    T(opt_f32(g, "phi3.rope.freq_base", 1.0, 1e12, 0, &hp->rope_base, err, n));
    T(opt_f32(g, "phi3.attention.layer_norm_rms_epsilon", 0.0, 1.0, 1, &hp->rms_eps, err, n));
    T(opt_u32(g, "phi3.attention.sliding_window", 0, MAX_CTX, &hp->sliding_window, err, n));
    hp->n_ctx_orig = hp->n_ctx_train;
    T(opt_u32(g, "phi3.rope.scaling.original_context_length", 1, MAX_CTX, &hp->n_ctx_orig, err, n));
    hp->rope_attn_factor = 1.0f;
    T(opt_f32(g, "phi3.rope.scaling.attn_factor", 0.0, 100.0, 0, &hp->rope_attn_factor, err, n));
#undef T

    /* The vocabulary size is what the embedding says; the tokenizer list is the fallback (a file
     * without token_embd is refused later by the tensor check anyway). */
    const vkllm_gguf_tensor *te = vkllm_gguf_find_tensor(g, "token_embd.weight");
    uint64_t nv = 0;
    if (te && te->n_dims == 2) nv = te->ne[1];
    else {
        vkllm_gguf_ref r = vkllm_gguf_find(g, "tokenizer.ggml.tokens");
        nv = vkllm_gguf_ref_len(r);
        if (!nv)
            return fail(err, n, VKLLM_ERROR_BAD_MODEL,
                        "no vocabulary size: neither a 2-d token_embd.weight nor a tokenizer.ggml.tokens array");
    }
    if (nv < 1 || nv > MAX_VOCAB)
        return fail(err, n, VKLLM_ERROR_BAD_MODEL, "vocabulary size %" PRIu64 " (rows of token_embd.weight): must be 1..%u",
                    nv, MAX_VOCAB);
    hp->n_vocab = (uint32_t)nv;
    hp->has_rope_factors = vkllm_gguf_find_tensor(g, "rope_factors_long.weight") != NULL ||
                           vkllm_gguf_find_tensor(g, "rope_factors_short.weight") != NULL;
    return VKLLM_OK;
}

/* Matrices may be any type the kernels decode; norms stay f32 as every converter writes them. */
#define MATRIX_TYPES                                                                                            \
    (VKLLM_DTYPE_BIT(VKLLM_DTYPE_F32) | VKLLM_DTYPE_BIT(VKLLM_DTYPE_F16) | VKLLM_DTYPE_BIT(VKLLM_DTYPE_BF16) | \
     VKLLM_DTYPE_BIT(VKLLM_DTYPE_Q8_0) | VKLLM_DTYPE_BIT(VKLLM_DTYPE_Q4_0) | VKLLM_DTYPE_BIT(VKLLM_DTYPE_Q4_K) |  \
     VKLLM_DTYPE_BIT(VKLLM_DTYPE_Q5_K) | VKLLM_DTYPE_BIT(VKLLM_DTYPE_Q6_K))
#define NORM_TYPES VKLLM_DTYPE_BIT(VKLLM_DTYPE_F32)
#define FACTOR_TYPES (VKLLM_DTYPE_BIT(VKLLM_DTYPE_F32) | VKLLM_DTYPE_BIT(VKLLM_DTYPE_F16))

static vkllm_status expect(vkllm_gguf *g, const char *name, uint64_t types, uint64_t rows, uint64_t cols,
                           const vkllm_gguf_tensor **out, char *err, size_t n)
{
    const uint64_t ne[2] = { cols, rows };
    vkllm_status s = vkllm_gguf_expect_tensor(g, name, types, rows ? 2 : 1, ne, out);
    if (s != VKLLM_OK) return fail(err, n, s, "%s", vkllm_gguf_error(g));
    return VKLLM_OK;
}

vkllm_status vkllm_phi3_check_tensors(vkllm_gguf *g, const vkllm_phi3_hparams *hp, vkllm_phi3_tensors *t,
                                      char *err, size_t n)
{
    if (!g || !hp) return fail(err, n, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_phi3_check_tensors: NULL argument");
    vkllm_phi3_tensors tmp;
    memset(&tmp, 0, sizeof tmp);
    const uint64_t E = hp->n_embd, KV = vkllm_phi3_kv_dim(hp), Q = vkllm_phi3_q_dim(hp), F = hp->n_ff;
    vkllm_status s;
#define T(x) do { if ((s = (x)) != VKLLM_OK) goto out; } while (0)
    if (t) {
        tmp.layer = calloc(hp->n_layer, sizeof *tmp.layer);
        if (!tmp.layer) {
            s = fail(err, n, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory for %" PRIu32 " layers", hp->n_layer);
            goto out;
        }
    }
    T(expect(g, "token_embd.weight", MATRIX_TYPES, hp->n_vocab, E, &tmp.token_embd, err, n));
    T(expect(g, "output_norm.weight", NORM_TYPES, 0, E, &tmp.output_norm, err, n));
    /* Phi-3/Phi-4 converters always write output.weight. A file without one (tied embeddings, as
     * some re-packers produce) uses token_embd as the output matrix, which is what llama.cpp does
     * for architectures whose output tensor is optional. */
    if (vkllm_gguf_find_tensor(g, "output.weight")) {
        T(expect(g, "output.weight", MATRIX_TYPES, hp->n_vocab, E, &tmp.output, err, n));
    } else {
        tmp.output = tmp.token_embd;
        tmp.output_tied = 1;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        vkllm_phi3_layer L;
        char name[64];
#define NAME(s) (snprintf(name, sizeof name, "blk.%" PRIu32 ".%s.weight", l, s), name)
        T(expect(g, NAME("attn_norm"), NORM_TYPES, 0, E, &L.attn_norm, err, n));
        T(expect(g, NAME("attn_qkv"), MATRIX_TYPES, Q + 2 * KV, E, &L.attn_qkv, err, n));
        T(expect(g, NAME("attn_output"), MATRIX_TYPES, E, Q, &L.attn_output, err, n));
        T(expect(g, NAME("ffn_norm"), NORM_TYPES, 0, E, &L.ffn_norm, err, n));
        T(expect(g, NAME("ffn_up"), MATRIX_TYPES, 2 * F, E, &L.ffn_up, err, n));
        T(expect(g, NAME("ffn_down"), MATRIX_TYPES, E, F, &L.ffn_down, err, n));
#undef NAME
        if (tmp.layer) tmp.layer[l] = L;
    }
    /* LongRoPE factors: both or neither (llama.cpp picks one of the two by context size). */
    const int has_long = vkllm_gguf_find_tensor(g, "rope_factors_long.weight") != NULL;
    const int has_short = vkllm_gguf_find_tensor(g, "rope_factors_short.weight") != NULL;
    if (has_long != has_short) {
        s = fail(err, n, VKLLM_ERROR_BAD_MODEL, "tensor '%s' is present but '%s' is missing: LongRoPE needs both",
                 has_long ? "rope_factors_long.weight" : "rope_factors_short.weight",
                 has_long ? "rope_factors_short.weight" : "rope_factors_long.weight");
        goto out;
    }
    if (has_long) {
        T(expect(g, "rope_factors_long.weight", FACTOR_TYPES, 0, hp->n_rot / 2, &tmp.rope_long, err, n));
        T(expect(g, "rope_factors_short.weight", FACTOR_TYPES, 0, hp->n_rot / 2, &tmp.rope_short, err, n));
    }
#undef T
    s = VKLLM_OK;
out:
    if (s != VKLLM_OK || !t) free(tmp.layer);
    else *t = tmp;
    return s;
}

void vkllm_phi3_tensors_free(vkllm_phi3_tensors *t)
{
    if (!t) return;
    free(t->layer);
    t->layer = NULL;
}

vkllm_status vkllm_phi3_rope_scaling(vkllm_gguf *g, const vkllm_phi3_hparams *hp, uint32_t n_ctx, float *factors,
                                     int *has_factors, float *attn_factor, char *err, size_t n)
{
    if (!g || !hp || !has_factors || !attn_factor)
        return fail(err, n, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_phi3_rope_scaling: NULL argument");
    *has_factors = 0;
    *attn_factor = hp->rope_attn_factor;
    if (!hp->has_rope_factors) return VKLLM_OK;
    if (!factors) return fail(err, n, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_phi3_rope_scaling: NULL factors");
    const char *name = n_ctx > hp->n_ctx_orig ? "rope_factors_long.weight" : "rope_factors_short.weight";
    const vkllm_gguf_tensor *t;
    vkllm_status s = expect(g, name, FACTOR_TYPES, 0, hp->n_rot / 2, &t, err, n);
    if (s != VKLLM_OK) return s;
    vkllm_dequantize(t->type, t->data, factors, hp->n_rot / 2);
    for (uint32_t i = 0; i < hp->n_rot / 2; i++)
        if (!isfinite(factors[i]) || !(factors[i] > 0))
            return fail(err, n, VKLLM_ERROR_BAD_MODEL, "tensor '%s' element %" PRIu32 " = %g: must be a positive number",
                        name, i, (double)factors[i]);
    *has_factors = 1;
    return VKLLM_OK;
}
