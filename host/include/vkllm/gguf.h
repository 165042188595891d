/* GGUF (v2, v3) reader and streaming writer.
 *
 * The reader maps the file and treats it as hostile: every count, length, dimension and offset is
 * checked against the file size and for overflow before use, and a refusal returns
 * VKLLM_ERROR_BAD_FILE with a message naming the field and its byte offset. Nothing points outside
 * the mapping; strings are copied out NUL-terminated. Tensor data stays in the mapping.
 *
 * The writer streams: declare metadata and tensor infos, write the header, then feed tensor data in
 * declaration order in pieces of any size; padding is inserted between tensors. Output is GGUF v3. */
#ifndef VKLLM_GGUF_H
#define VKLLM_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/quant.h"
#include "vkllm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types; the numbers are GGUF's. */
typedef enum vkllm_gguf_type {
    VKLLM_GGUF_UINT8 = 0,
    VKLLM_GGUF_INT8 = 1,
    VKLLM_GGUF_UINT16 = 2,
    VKLLM_GGUF_INT16 = 3,
    VKLLM_GGUF_UINT32 = 4,
    VKLLM_GGUF_INT32 = 5,
    VKLLM_GGUF_FLOAT32 = 6,
    VKLLM_GGUF_BOOL = 7,
    VKLLM_GGUF_STRING = 8,
    VKLLM_GGUF_ARRAY = 9,
    VKLLM_GGUF_UINT64 = 10,
    VKLLM_GGUF_INT64 = 11,
    VKLLM_GGUF_FLOAT64 = 12,
    VKLLM_GGUF_NONE = -1 /* "no such value" in a vkllm_gguf_ref */
} vkllm_gguf_type;

#define VKLLM_GGUF_DEFAULT_ALIGNMENT 32u
#define VKLLM_GGUF_MAX_DIMS 4

/* "u8", "i32", "f32", "string", "array", ...; "unknown" otherwise. */
const char *vkllm_gguf_type_name(vkllm_gguf_type t);

/* ------------------------------------------------------------------------------------------------
 * Reader */

typedef struct vkllm_gguf vkllm_gguf;

/* One tensor of an open file. Valid while the file is open. */
typedef struct vkllm_gguf_tensor {
    const char *name;     /* NUL-terminated copy */
    vkllm_dtype type;
    uint32_t n_dims;      /* 1..4 */
    uint64_t ne[VKLLM_GGUF_MAX_DIMS]; /* ne[0] = innermost (row length), as in ggml; unused = 1 */
    uint64_t n_elems;
    uint64_t bytes;       /* size of the data */
    uint64_t offset;      /* absolute byte offset of the data in the file */
    const void *data;     /* into the mapping; aligned to the file's alignment relative to its start */
} vkllm_gguf_tensor;

/* Opens and validates path (mmap, read-only). On failure *out is NULL and err (may be NULL) gets a
 * message. Close with vkllm_gguf_close. */
vkllm_status vkllm_gguf_open(const char *path, vkllm_gguf **out, char *err, size_t err_size);
/* Same over a caller-owned buffer, which must outlive the object (not copied). */
vkllm_status vkllm_gguf_open_memory(const void *data, size_t size, vkllm_gguf **out, char *err,
                                    size_t err_size);
/* Unmaps and frees; NULL is fine. */
void vkllm_gguf_close(vkllm_gguf *g);
/* Copies bytes [offset, offset + n) of tensor t's data into dst. For a file GGUF this reads the file
 * (pread), not the mapping: a file truncated since open gives VKLLM_ERROR_IO and a message instead of
 * SIGBUS. For a memory GGUF it copies from the buffer. VKLLM_ERROR_OUT_OF_RANGE outside the tensor. */
vkllm_status vkllm_gguf_read_tensor(const vkllm_gguf *g, const vkllm_gguf_tensor *t, uint64_t offset, void *dst,
                                    uint64_t n, char *err, size_t err_size);
/* VKLLM_OK if the opened file still has the size, modification and change time it had at open (fstat
 * on the descriptor held since then, so a file replaced by rename does not count: the mapping still
 * holds the old one); VKLLM_ERROR_BAD_FILE with a message if it was written or truncated in place,
 * meaning what was read from it is not trusted. Always VKLLM_OK for a memory GGUF. */
vkllm_status vkllm_gguf_check_unchanged(const vkllm_gguf *g, char *err, size_t err_size);
/* The message of the last failed call on g ("" if none). Owned by g. */
const char *vkllm_gguf_error(const vkllm_gguf *g);

uint32_t vkllm_gguf_version(const vkllm_gguf *g);
uint32_t vkllm_gguf_alignment(const vkllm_gguf *g);
uint64_t vkllm_gguf_data_offset(const vkllm_gguf *g); /* absolute start of the data section */
uint64_t vkllm_gguf_file_size(const vkllm_gguf *g);

/* A reference to one metadata value: a key's value or an element of an array value. Plain data,
 * valid while g is open; type is VKLLM_GGUF_NONE when the lookup found nothing. */
typedef struct vkllm_gguf_ref {
    vkllm_gguf_type type;
    const void *node_;  /* private */
    uint64_t index_;    /* private */
} vkllm_gguf_ref;

uint64_t vkllm_gguf_n_keys(const vkllm_gguf *g);
/* Key i (file order), NUL-terminated; NULL if i is out of range. */
const char *vkllm_gguf_key(const vkllm_gguf *g, uint64_t i);
vkllm_gguf_ref vkllm_gguf_key_ref(const vkllm_gguf *g, uint64_t i);
/* The value of key, or a ref of type VKLLM_GGUF_NONE. O(log n_keys). */
vkllm_gguf_ref vkllm_gguf_find(const vkllm_gguf *g, const char *key);

/* Typed reads of a ref. Integers convert between widths and signedness when the value fits;
 * f32/f64 accept either float type. A type mismatch or a value that does not fit fails with
 * VKLLM_ERROR_BAD_MODEL and a message on g. */
vkllm_status vkllm_gguf_ref_u32(vkllm_gguf *g, vkllm_gguf_ref r, uint32_t *out);
vkllm_status vkllm_gguf_ref_i32(vkllm_gguf *g, vkllm_gguf_ref r, int32_t *out);
vkllm_status vkllm_gguf_ref_u64(vkllm_gguf *g, vkllm_gguf_ref r, uint64_t *out);
vkllm_status vkllm_gguf_ref_i64(vkllm_gguf *g, vkllm_gguf_ref r, int64_t *out);
vkllm_status vkllm_gguf_ref_f32(vkllm_gguf *g, vkllm_gguf_ref r, float *out);
vkllm_status vkllm_gguf_ref_f64(vkllm_gguf *g, vkllm_gguf_ref r, double *out);
vkllm_status vkllm_gguf_ref_bool(vkllm_gguf *g, vkllm_gguf_ref r, int *out);
/* *out is NUL-terminated and owned by g; *len (may be NULL) counts bytes without the NUL (a GGUF
 * string may hold NUL bytes). */
vkllm_status vkllm_gguf_ref_string(vkllm_gguf *g, vkllm_gguf_ref r, const char **out, uint64_t *len);
/* Arrays: element type and length (0 / NONE for a non-array), and element i (NONE if out of range). */
uint64_t vkllm_gguf_ref_len(vkllm_gguf_ref r);
vkllm_gguf_type vkllm_gguf_ref_elem_type(vkllm_gguf_ref r);
vkllm_gguf_ref vkllm_gguf_ref_at(vkllm_gguf_ref r, uint64_t i);
/* Raw little-endian elements of an array of a fixed-size type (not string/array), unaligned. */
const void *vkllm_gguf_ref_data(vkllm_gguf_ref r);

/* Getters by key: as the ref reads, with the key named in the message. A missing key fails with
 * VKLLM_ERROR_BAD_MODEL ("key '...' is missing"); test presence with vkllm_gguf_find first when a
 * key is optional. */
vkllm_status vkllm_gguf_get_u32(vkllm_gguf *g, const char *key, uint32_t *out);
vkllm_status vkllm_gguf_get_i32(vkllm_gguf *g, const char *key, int32_t *out);
vkllm_status vkllm_gguf_get_u64(vkllm_gguf *g, const char *key, uint64_t *out);
vkllm_status vkllm_gguf_get_f32(vkllm_gguf *g, const char *key, float *out);
vkllm_status vkllm_gguf_get_bool(vkllm_gguf *g, const char *key, int *out);
vkllm_status vkllm_gguf_get_string(vkllm_gguf *g, const char *key, const char **out, uint64_t *len);
/* An array key: *elem_type and *n; elem_type NONE-checked: pass want = VKLLM_GGUF_NONE for any. */
vkllm_status vkllm_gguf_get_array(vkllm_gguf *g, const char *key, vkllm_gguf_type want,
                                  vkllm_gguf_ref *out, uint64_t *n);

/* Tensors, in file order. */
uint64_t vkllm_gguf_n_tensors(const vkllm_gguf *g);
const vkllm_gguf_tensor *vkllm_gguf_tensor_at(const vkllm_gguf *g, uint64_t i); /* NULL if out of range */
const vkllm_gguf_tensor *vkllm_gguf_find_tensor(const vkllm_gguf *g, const char *name); /* O(log n) */

/* Bit of a dtype in a type mask for vkllm_gguf_expect_tensor. */
#define VKLLM_DTYPE_BIT(t) (1ull << (unsigned)(t))
#define VKLLM_DTYPE_ANY 0ull
/* Checks that tensor name exists, has a type in type_mask (VKLLM_DTYPE_ANY = any), n_dims dims and
 * shape ne[0..n_dims-1] (an expected 0 matches any extent). On mismatch returns
 * VKLLM_ERROR_BAD_MODEL with a message naming the tensor, the expected and the found shape/type. */
vkllm_status vkllm_gguf_expect_tensor(vkllm_gguf *g, const char *name, uint64_t type_mask,
                                      uint32_t n_dims, const uint64_t *ne,
                                      const vkllm_gguf_tensor **out);

/* ------------------------------------------------------------------------------------------------
 * Writer */

typedef struct vkllm_gguf_writer vkllm_gguf_writer;

/* A writer for path (the file is created when the header is written). On failure err gets a
 * message. Destroy with vkllm_gguf_writer_destroy, which removes an unfinished file. */
vkllm_status vkllm_gguf_writer_create(const char *path, vkllm_gguf_writer **out, char *err,
                                      size_t err_size);
void vkllm_gguf_writer_destroy(vkllm_gguf_writer *w);
const char *vkllm_gguf_writer_error(const vkllm_gguf_writer *w);

/* Sets the data alignment (a power of two) and writes it as general.alignment (u32). */
vkllm_status vkllm_gguf_writer_set_alignment(vkllm_gguf_writer *w, uint32_t alignment);

/* Metadata. With a key: adds a top-level key/value (duplicate keys fail). With key == NULL: appends
 * one element to the innermost open array, whose element type must match. */
vkllm_status vkllm_gguf_writer_add_u8(vkllm_gguf_writer *w, const char *key, uint8_t v);
vkllm_status vkllm_gguf_writer_add_i8(vkllm_gguf_writer *w, const char *key, int8_t v);
vkllm_status vkllm_gguf_writer_add_u16(vkllm_gguf_writer *w, const char *key, uint16_t v);
vkllm_status vkllm_gguf_writer_add_i16(vkllm_gguf_writer *w, const char *key, int16_t v);
vkllm_status vkllm_gguf_writer_add_u32(vkllm_gguf_writer *w, const char *key, uint32_t v);
vkllm_status vkllm_gguf_writer_add_i32(vkllm_gguf_writer *w, const char *key, int32_t v);
vkllm_status vkllm_gguf_writer_add_u64(vkllm_gguf_writer *w, const char *key, uint64_t v);
vkllm_status vkllm_gguf_writer_add_i64(vkllm_gguf_writer *w, const char *key, int64_t v);
vkllm_status vkllm_gguf_writer_add_f32(vkllm_gguf_writer *w, const char *key, float v);
vkllm_status vkllm_gguf_writer_add_f64(vkllm_gguf_writer *w, const char *key, double v);
vkllm_status vkllm_gguf_writer_add_bool(vkllm_gguf_writer *w, const char *key, int v);
vkllm_status vkllm_gguf_writer_add_string(vkllm_gguf_writer *w, const char *key, const char *s);
vkllm_status vkllm_gguf_writer_add_string_n(vkllm_gguf_writer *w, const char *key, const char *s,
                                            uint64_t len);
/* An array of n fixed-size elements (not string/array) from data (host byte order = little endian). */
vkllm_status vkllm_gguf_writer_add_array(vkllm_gguf_writer *w, const char *key, vkllm_gguf_type elem,
                                         const void *data, uint64_t n);
vkllm_status vkllm_gguf_writer_add_string_array(vkllm_gguf_writer *w, const char *key,
                                                const char *const *s, uint64_t n);
/* Open an array (key, or key == NULL for an array nested in the open array), fill it with add_*
 * calls with key == NULL, close it with end_array; the element count is patched in. */
vkllm_status vkllm_gguf_writer_begin_array(vkllm_gguf_writer *w, const char *key, vkllm_gguf_type elem);
vkllm_status vkllm_gguf_writer_end_array(vkllm_gguf_writer *w);

/* Declares a tensor (data follow in declaration order). ne[0] is the row length. */
vkllm_status vkllm_gguf_writer_add_tensor(vkllm_gguf_writer *w, const char *name, vkllm_dtype type,
                                          uint32_t n_dims, const uint64_t *ne);
/* Total bytes the file will have once finished (valid after the last add_tensor). */
uint64_t vkllm_gguf_writer_file_size(const vkllm_gguf_writer *w);
/* Creates the file and writes header, metadata and tensor infos. No more keys or tensors after. */
vkllm_status vkllm_gguf_writer_write_header(vkllm_gguf_writer *w);
/* Appends n bytes to the current tensor (declaration order); when its declared size is reached the
 * writer pads and moves to the next. A piece may not run past the current tensor's declared size:
 * that fails naming the tensor, so each tensor's bytes are checked to equal what was declared. */
vkllm_status vkllm_gguf_writer_write_data(vkllm_gguf_writer *w, const void *data, size_t n);
/* Checks every tensor got exactly its bytes, flushes and closes the file. */
vkllm_status vkllm_gguf_writer_finish(vkllm_gguf_writer *w);

#ifdef __cplusplus
}
#endif
#endif
