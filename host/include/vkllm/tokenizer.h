/* Tokenizer built from a model file's own metadata (tokenizer.ggml.*), and the chat templates of
 * the Phi family.
 *
 * Two kinds, as GGUF names them in tokenizer.ggml.model:
 *   "gpt2"  byte-level BPE (Phi-4: 100352 tokens). Text is cut by the pre-tokenizer's regular
 *           expression (PCRE2, UTF + Unicode properties, JIT where available), each piece's bytes
 *           become byte tokens and merges apply by rank (lowest first, leftmost on ties).
 *   "llama" SentencePiece-style BPE (Phi-3: 32064 tokens). Spaces become U+2581 ("▁"), a space is
 *           prefixed to each run of text at the start or after a special token (when
 *           tokenizer.ggml.add_space_prefix, default true), adjacent pieces merge by highest score,
 *           and characters with no token fall back to <0xXX> byte tokens (else the unknown token).
 * Control and user-defined tokens (<|user|>, <|im_start|>, ...) are matched whole in the text when
 * asked (VKLLM_TOKENIZE_SPECIAL), longest first, and never come out of merges.
 *
 * The metadata is treated as hostile: array types and lengths, token types, ids, merges and scores
 * are checked when the tokenizer is built, and a refusal says which key and element is wrong.
 *
 * Invalid UTF-8: encoding never fails on any bytes. In byte-level BPE each invalid byte is a piece
 * of its own (its byte token), and the valid runs around it are split as usual, so decoding gives
 * back the input bytes exactly. In SentencePiece each invalid byte becomes its <0xXX> token.
 * Raw decoding (vkllm_tokenizer_decode) returns the tokens' bytes as they are, valid or not; the
 * streaming decoder (vkllm_detok) always emits valid UTF-8, replacing each maximal invalid
 * subsequence with U+FFFD (as Python's errors="replace" does) and holding back an incomplete
 * character until the token that completes it arrives.
 *
 * Thread-safety: encoding uses scratch space and a word cache inside the tokenizer: one thread at a
 * time per tokenizer. Lookups and decoding of single pieces only read it. */
#ifndef VKLLM_TOKENIZER_H
#define VKLLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct vkllm_gguf;
typedef struct vkllm_tokenizer vkllm_tokenizer;

typedef enum vkllm_tokenizer_kind {
    VKLLM_TOKENIZER_BPE = 1, /* "gpt2": byte-level BPE */
    VKLLM_TOKENIZER_SPM = 2  /* "llama": SentencePiece-style BPE with scores and byte fallback */
} vkllm_tokenizer_kind;

/* Token types; the numbers are tokenizer.ggml.token_type's (llama.cpp's). */
typedef enum vkllm_token_type {
    VKLLM_TOKEN_UNDEFINED = 0,
    VKLLM_TOKEN_NORMAL = 1,
    VKLLM_TOKEN_UNKNOWN = 2,
    VKLLM_TOKEN_CONTROL = 3,
    VKLLM_TOKEN_USER_DEFINED = 4,
    VKLLM_TOKEN_UNUSED = 5,
    VKLLM_TOKEN_BYTE = 6
} vkllm_token_type;

/* A vocabulary given in memory (tests, tools); the GGUF constructor fills one of these from the
 * file. Everything is copied; the pointers need only live through the call. */
typedef struct vkllm_tokenizer_desc {
    vkllm_tokenizer_kind kind;
    uint32_t n_tokens;
    const char *const *tokens;   /* [n_tokens] token texts (byte-level alphabet for BPE, ▁ for SPM) */
    const uint32_t *token_lens;  /* [n_tokens] byte lengths, or NULL: strlen */
    const int32_t *types;        /* [n_tokens] vkllm_token_type, or NULL: all NORMAL */
    const float *scores;         /* [n_tokens] SPM merge scores (higher merges first), or NULL: 0 */
    uint32_t n_merges;
    const char *const *merges;   /* [n_merges] BPE merges "left right", rank = index */
    const uint32_t *merge_lens;  /* [n_merges] or NULL: strlen */
    int32_t bos, eos, unk, pad;  /* token ids, -1 = none */
    int add_bos, add_eos;        /* VKLLM_TOKENIZE_ADD_SPECIAL adds these */
    int add_space_prefix;        /* SPM only: -1 = default (yes) */
    const char *pre;             /* BPE pre-tokenizer name (tokenizer.ggml.pre); NULL = "default" */
    const char *chat_template;   /* tokenizer.chat_template or NULL */
} vkllm_tokenizer_desc;

/* A desc with every id -1, add_space_prefix -1 and everything else 0. */
vkllm_tokenizer_desc vkllm_tokenizer_desc_default(void);

/* Builds a tokenizer from desc. On failure *out is NULL and err (may be NULL) gets a message naming
 * the bad element. VKLLM_ERROR_BAD_MODEL for inconsistent vocabularies, VKLLM_ERROR_INVALID_ARGUMENT
 * for a NULL desc or pointers, VKLLM_ERROR_OUT_OF_HOST_MEMORY. Destroy with vkllm_tokenizer_destroy. */
vkllm_status vkllm_tokenizer_create(const vkllm_tokenizer_desc *desc, vkllm_tokenizer **out, char *err,
                                    size_t err_size);
/* Builds the tokenizer of an open GGUF file from tokenizer.ggml.{model, tokens, token_type, scores,
 * merges, bos/eos/unknown/padding_token_id, add_bos_token, add_eos_token, add_space_prefix, pre}
 * and tokenizer.chat_template. Missing optional keys take defaults; a key of the wrong type, an
 * array of the wrong length or an id out of range is refused (VKLLM_ERROR_BAD_MODEL). The tokenizer
 * copies what it needs: g may be closed afterwards. */
vkllm_status vkllm_tokenizer_create_gguf(struct vkllm_gguf *g, vkllm_tokenizer **out, char *err,
                                         size_t err_size);
void vkllm_tokenizer_destroy(vkllm_tokenizer *t); /* NULL is fine */
/* The message of the last failed call on t ("" if none). Owned by t. */
const char *vkllm_tokenizer_error(const vkllm_tokenizer *t);

vkllm_tokenizer_kind vkllm_tokenizer_kind_of(const vkllm_tokenizer *t);
uint32_t vkllm_tokenizer_n_vocab(const vkllm_tokenizer *t);
int32_t vkllm_tokenizer_bos(const vkllm_tokenizer *t); /* -1 = none */
int32_t vkllm_tokenizer_eos(const vkllm_tokenizer *t);
/* Whether the model asks for BOS at the start of a text (tokenizer.ggml.add_bos_token; default yes
 * for SentencePiece, no for byte-level BPE) and a BOS id exists. */
int vkllm_tokenizer_adds_bos(const vkllm_tokenizer *t);
/* 1 if generation should stop at id: eos, or a control/user-defined token that ends a turn or a text
 * (<|end|>, <|im_end|>, <|endoftext|>, <|eot_id|>, </s>). 0 for ids out of range. */
int vkllm_tokenizer_is_eog(const vkllm_tokenizer *t, int32_t id);
/* The id of the token whose text is exactly s[0..len), or -1. */
int32_t vkllm_tokenizer_find(const vkllm_tokenizer *t, const char *s, size_t len);
/* The token's text as stored in the vocabulary (NUL-terminated, owned by t; *len may be NULL),
 * and its type. NULL / VKLLM_TOKEN_UNDEFINED for ids out of range. */
const char *vkllm_tokenizer_token_text(const vkllm_tokenizer *t, int32_t id, size_t *len);
vkllm_token_type vkllm_tokenizer_token_type(const vkllm_tokenizer *t, int32_t id);

/* A growable list of token ids; start zeroed, free with vkllm_tokens_free. Encoding appends. */
typedef struct vkllm_tokens {
    int32_t *ids;
    size_t n, cap;
} vkllm_tokens;
void vkllm_tokens_free(vkllm_tokens *v);
/* Appends one id (VKLLM_ERROR_OUT_OF_HOST_MEMORY). */
vkllm_status vkllm_tokens_push(vkllm_tokens *v, int32_t id);

/* Encoding flags. */
#define VKLLM_TOKENIZE_SPECIAL 1u     /* match control/user-defined token texts whole */
#define VKLLM_TOKENIZE_ADD_SPECIAL 2u /* BOS first / EOS last when the model asks for them */

/* Appends the tokens of text[0..len) (any bytes, NUL included) to out. Fails only for out of memory
 * (out keeps what it had) or NULL arguments. */
vkllm_status vkllm_tokenizer_encode(vkllm_tokenizer *t, const char *text, size_t len, unsigned flags,
                                    vkllm_tokens *out);

/* The byte-level BPE pre-tokenizer's pieces of text[0..len) (special tokens not matched): ends[i] is
 * the end offset of piece i; *n gets the count even when it exceeds cap (then
 * VKLLM_ERROR_OUT_OF_RANGE). VKLLM_ERROR_UNSUPPORTED for SentencePiece. For tests and debugging. */
vkllm_status vkllm_tokenizer_split(vkllm_tokenizer *t, const char *text, size_t len, size_t *ends, size_t cap,
                                   size_t *n);

/* Decoding flags. */
#define VKLLM_DECODE_SPECIAL 1u     /* render control, unknown and unused tokens as their text
                                     * (otherwise they produce nothing) */
#define VKLLM_DECODE_STRIP_SPACE 2u /* SPM with a space prefix: drop the space the encoder adds at the
                                     * start of each run of text (the start, and after each control or
                                     * user-defined token), so decode(encode(x)) == x */

/* The bytes token id stands for (the byte-level alphabet mapped back, ▁ as a space, <0xXX> as its
 * byte); flags as above (STRIP_SPACE ignored). *bytes points into t (not NUL-terminated).
 * VKLLM_ERROR_OUT_OF_RANGE (message on t) for an id outside the vocabulary. */
vkllm_status vkllm_tokenizer_piece(vkllm_tokenizer *t, int32_t id, unsigned flags, const char **bytes,
                                   size_t *len);
/* All pieces of ids[0..n) concatenated, raw bytes (may be invalid UTF-8), NUL-terminated, in *out
 * (malloc'd, caller frees); *len without the NUL. VKLLM_ERROR_OUT_OF_RANGE for a bad id. */
vkllm_status vkllm_tokenizer_decode(vkllm_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                                    char **out, size_t *len);

/* Streaming decoder: feed tokens one at a time, get back the text that is complete so far. */
typedef struct vkllm_detok vkllm_detok;
/* flags: VKLLM_DECODE_*; STRIP_SPACE applies from the first piece after create/reset. */
vkllm_status vkllm_detok_create(const vkllm_tokenizer *t, unsigned flags, vkllm_detok **out);
void vkllm_detok_destroy(vkllm_detok *d);
/* Starts a new text (the held-back bytes are dropped). */
void vkllm_detok_reset(vkllm_detok *d, unsigned flags);
/* Feeds one token. *text / *len get the valid UTF-8 completed by it (possibly nothing: a partial
 * character is held back); valid until the next call on d. VKLLM_ERROR_OUT_OF_RANGE for a bad id
 * (nothing is consumed), VKLLM_ERROR_OUT_OF_HOST_MEMORY. */
vkllm_status vkllm_detok_push(vkllm_detok *d, int32_t id, const char **text, size_t *len);
/* Ends the text: held-back bytes come out as U+FFFD (an incomplete character at the end). */
vkllm_status vkllm_detok_flush(vkllm_detok *d, const char **text, size_t *len);
/* The message of the last failed call on d. Owned by d. */
const char *vkllm_detok_error(const vkllm_detok *d);
/* Bytes currently held back (0..3). */
size_t vkllm_detok_pending(const vkllm_detok *d);

/* ------------------------------------------------------------------------------------------------
 * Chat templates */

typedef enum vkllm_chat_format {
    VKLLM_CHAT_NONE = 0, /* no known template: plain completion only */
    VKLLM_CHAT_PHI3 = 1, /* <|system|>\n...<|end|>\n<|user|>\n...<|end|>\n<|assistant|>\n */
    VKLLM_CHAT_PHI4 = 2  /* <|im_start|>system<|im_sep|>...<|im_end|> ... <|im_start|>assistant<|im_sep|> */
} vkllm_chat_format;

/* The format chosen when t was built: tokenizer.chat_template when it is one we know (it uses
 * <|im_start|>/<|im_sep|> or <|user|>/<|end|>), else the vocabulary (which of those tokens exist),
 * and only if every token the format needs is in the vocabulary. */
vkllm_chat_format vkllm_tokenizer_chat_format(const vkllm_tokenizer *t);
const char *vkllm_chat_format_name(vkllm_chat_format f); /* "none", "phi3", "phi4" */

/* Appends one whole message: the role's header, the content (special-token texts in it are NOT
 * matched: user text cannot forge turns), the end of turn. role: "system", "user" or "assistant".
 * VKLLM_ERROR_UNSUPPORTED with format NONE, VKLLM_ERROR_INVALID_ARGUMENT for another role. */
vkllm_status vkllm_chat_append_message(vkllm_tokenizer *t, const char *role, const char *content, size_t len,
                                       vkllm_tokens *out);
/* Appends the start of the assistant's turn (what the model continues from). */
vkllm_status vkllm_chat_append_generation_prompt(vkllm_tokenizer *t, vkllm_tokens *out);
/* Appends the end of an assistant turn whose text is already in the context (the end-of-turn token
 * the model sampled is not: the sampler stops before feeding it). */
vkllm_status vkllm_chat_append_end_of_turn(vkllm_tokenizer *t, vkllm_tokens *out);
/* The whole rendered text of one message as the template writes it (for display and tests);
 * malloc'd, caller frees; NULL for NONE, a bad role or out of memory. */
char *vkllm_chat_render_message(vkllm_chat_format f, const char *role, const char *content);

#ifdef __cplusplus
}
#endif
#endif
