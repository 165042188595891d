/* Random-weight Phi-3/Phi-4 models (architecture "phi3") written as GGUF, with the keys, tensor names
 * and shapes that llama.cpp's converter writes, and a real (small) byte-level BPE vocabulary, so the
 * files load in other GGUF runtimes too. Used by tools/mkmodel, by tests, and by the runtime for its
 * built-in tiny model.
 *
 * Output is a pure function of the configuration (threads and progress excepted): the same seed and
 * shape give byte-identical files with any thread count. */
#ifndef VKLLM_MKMODEL_H
#define VKLLM_MKMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/quant.h"
#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whole-file types, named as llama.cpp names them; the numbers are general.file_type's. */
typedef enum vkllm_mkmodel_ftype {
    VKLLM_MKMODEL_F32 = 0,
    VKLLM_MKMODEL_F16 = 1,
    VKLLM_MKMODEL_Q4_0 = 2,
    VKLLM_MKMODEL_Q8_0 = 7,
    VKLLM_MKMODEL_Q4_K_M = 15
} vkllm_mkmodel_ftype;

typedef struct vkllm_mkmodel_config {
    const char *name;        /* general.name */
    uint32_t n_layer;        /* phi3.block_count */
    uint32_t n_embd;         /* phi3.embedding_length */
    uint32_t n_head;         /* phi3.attention.head_count; head_dim = n_embd / n_head */
    uint32_t n_head_kv;      /* phi3.attention.head_count_kv */
    uint32_t n_ff;           /* phi3.feed_forward_length */
    uint32_t n_vocab;        /* >= vkllm_mkmodel_base_vocab(n_merges); padded with <|dummy_N|> */
    uint32_t n_ctx;          /* phi3.context_length */
    uint32_t sliding_window; /* phi3.attention.sliding_window; 0 = none, as Phi-4 files say */
    float rope_base;         /* phi3.rope.freq_base */
    float eps;               /* phi3.attention.layer_norm_rms_epsilon */
    uint32_t n_merges;       /* BPE merges to learn from the built-in text (<= max) */
    vkllm_mkmodel_ftype ftype;
    uint64_t seed;
    unsigned threads;        /* 0 = all online CPUs */
    int exact_quant;         /* 1: draw floats and quantize with vkllm_quantize (slow, reference
                              * quality); 0: draw valid quantized blocks directly (fast) */
    /* Called from the writing thread after each chunk; may be NULL. */
    void (*progress)(void *user, uint64_t done_bytes, uint64_t total_bytes);
    void *progress_user;
} vkllm_mkmodel_config;

/* Fills cfg with preset "tiny", "phi3-mini" or "phi4" (q4_k_m, seed 1, all threads).
 * VKLLM_ERROR_CONFIG for an unknown name. */
vkllm_status vkllm_mkmodel_preset(const char *preset, vkllm_mkmodel_config *cfg);
/* "f32", "f16", "q8_0", "q4_0", "q4_k_m" -> ftype; VKLLM_ERROR_CONFIG otherwise. */
vkllm_status vkllm_mkmodel_parse_ftype(const char *s, vkllm_mkmodel_ftype *out);
const char *vkllm_mkmodel_ftype_name(vkllm_mkmodel_ftype t);

/* Most merges the built-in text yields, and the tokens of the vocabulary before padding:
 * 256 byte tokens + n_merges merges + 8 special tokens. */
uint32_t vkllm_mkmodel_max_merges(void);
uint32_t vkllm_mkmodel_base_vocab(uint32_t n_merges);

/* The type the file gives tensor name (e.g. "blk.3.ffn_down.weight") under cfg, after the fallback
 * for rows that are not a whole number of blocks. VKLLM_ERROR_CONFIG for an unknown name. */
vkllm_status vkllm_mkmodel_tensor_type(const vkllm_mkmodel_config *cfg, const char *name,
                                       vkllm_dtype *out);

/* Checks cfg (VKLLM_ERROR_CONFIG with a message in err naming the field) and, when path is not NULL,
 * writes the model there. *file_size (may be NULL) gets the file's size. */
vkllm_status vkllm_mkmodel_write(const vkllm_mkmodel_config *cfg, const char *path,
                                 uint64_t *file_size, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif
#endif
