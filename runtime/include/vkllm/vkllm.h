/* vkllm: the one header an embedder includes (link with -lvkllm, or vkllm::vkllm in CMake).
 *
 * It pulls in the handles and calls of a whole program (docs/API.md walks through them, and
 * docs/examples/generate.c is the shortest complete one):
 *
 *   vkllm/status.h     vkllm_status (0 = VKLLM_OK), vkllm_strerror()
 *   vkllm/device.h     vkllm_device: open, feature record (vkllm_device_features), last error
 *   vkllm/model.h      vkllm_model (load with progress callback and cancel flag) and vkllm_session
 *                      (own KV cache): prefill, decode (argmax/top-k on the GPU, or logits back),
 *                      reset/rewind, per-dispatch GPU timings (vkllm_session_set_profiling,
 *                      vkllm_session_timings)
 *   vkllm/sampler.h    vkllm_sampler: temperature, top-k/p, min-p, repetition penalty, seeded
 *   vkllm/tokenizer.h  vkllm_tokenizer: encode/decode from the model file's own vocabulary,
 *                      streaming UTF-8 detokenizer, Phi-3/Phi-4 chat templates
 *   vkllm/mkmodel.h    random-weight test models (the built-in tiny model of the examples)
 *   vkllm/chain.h, pool.h, pipeline.h, phi3.h, gguf.h, quant.h: lower layers the above expose types
 *                      of (vkllm_timing, GGUF access); usable, but an embedder rarely needs them.
 *
 * Errors: every call that can fail returns a vkllm_status and leaves a message (what failed, with
 * which value, what to do). vkllm_device_error(), vkllm_model_error() and vkllm_session_error()
 * return the message of the calling thread's last failed call on that device or any object of it
 * (like errno: read it right after the failing call, on the same thread). Creation calls with no
 * object yet take a caller buffer (vkllm_device_create) or report on the device (vkllm_model_load).
 *
 * Thread-safety (the whole contract; each call's comment repeats only exceptions):
 *   - vkllm_strerror, vkllm_version*, vkllm_device_features (the record is immutable apart from the
 *     budget fields that vkllm_device_refresh_budget rewrites): any thread, any time.
 *   - A device may be shared by threads: sessions of one device run concurrently; submissions to its
 *     one queue, its transfer path, its memory pool and its pipeline cache are serialized inside.
 *   - A model is read-only once loaded: any number of sessions, in any threads, may share it.
 *     Destroy it only after all of its sessions, and the device only after all of its models.
 *   - A session, a sampler, a tokenizer and a detokenizer belong to one thread at a time (no
 *     locks inside). Give each thread its own (vkllm_model_tokenizer makes one per call).
 *   - Creating and destroying sessions and loading models may happen while other threads run
 *     sessions of the same device.
 *
 * Ownership: X_create / X_load hand out objects that X_destroy frees; every destroy accepts NULL.
 * Strings returned as `const char *` are owned by the object that returned them.
 *
 * Versions: VKLLM_VERSION_* (compile time, vkllm/version.h) and vkllm_version() (the library
 * actually loaded) — compare them to detect a header/library mismatch. */
#ifndef VKLLM_VKLLM_H
#define VKLLM_VKLLM_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm/version.h"
#include "vkllm/status.h"
#include "vkllm/device.h"
#include "vkllm/model.h"
#include "vkllm/sampler.h"
#include "vkllm/tokenizer.h"
#include "vkllm/mkmodel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version as VKLLM_VERSION encodes it (major * 10000 + minor * 100 + patch), and as
 * "major.minor.patch" (static string). Never fail. */
VKLLM_API unsigned vkllm_version(void);
VKLLM_API const char *vkllm_version_string(void);

/* The message of the calling thread's last failed call on m's device or any of its objects ("" if
 * none); owned by the library, valid until this thread's next failing call. NULL m: "no model". */
VKLLM_API const char *vkllm_model_error(const vkllm_model *m);
/* The same for a session (with one session per thread: that session's last error). NULL s: "no session". */
VKLLM_API const char *vkllm_session_error(const vkllm_session *s);

/* Turns per-dispatch GPU timestamps on (1, or a VKLLM_STAMPS_* mode of vkllm/chain.h such as the
 * sampled one: each step stamps one layer group in k, for under 1% of a decode step) or off (0)
 * for the session's next steps (the session option `timestamps` sets it at creation). The recorded chains are recorded again (a few ms; the KV
 * cache and position are kept). With it on, vkllm_session_timings() gives after each prefill or
 * decode one vkllm_timing per dispatch (name like "L3.ffn_down", start and duration in ns, bytes
 * and FLOPs the kernel must move and do) and vkllm_session_last_gpu_ns() the step's GPU time;
 * each step costs a little more. VKLLM_ERROR_UNSUPPORTED when the queue has no timestamps,
 * VKLLM_ERROR_INVALID_ARGUMENT for NULL s; on failure the session is as it was. */
VKLLM_API vkllm_status vkllm_session_set_profiling(vkllm_session *s, int on);

/* The device a model was loaded on (NULL for NULL m). */
VKLLM_API vkllm_device *vkllm_model_device(const vkllm_model *m);

/* Builds a new tokenizer from the model file's metadata (tokenizer.ggml.*, chat template); the
 * caller owns it (vkllm_tokenizer_destroy) and may destroy it before or after the model. Each
 * call makes an independent tokenizer, so each thread can have its own. On failure *out is NULL:
 * VKLLM_ERROR_BAD_MODEL (the file has no usable vocabulary: message on the model),
 * VKLLM_ERROR_OUT_OF_HOST_MEMORY, VKLLM_ERROR_INVALID_ARGUMENT for NULL arguments. */
VKLLM_API vkllm_status vkllm_model_tokenizer(const vkllm_model *m, vkllm_tokenizer **out);

/* Writes vkllm's built-in tiny model (Phi-4 shape scaled down: 2 layers, 256 wide, byte-level BPE
 * vocabulary, Q4_K_M, random weights from seed 1: the same bytes every time) to path,
 * replacing it atomically (written to path.tmp.PID, then renamed). For examples and tests; its
 * output is nonsense. VKLLM_ERROR_IO with a message in err (err_len bytes, may be 0)
 * when the file cannot be written. */
VKLLM_API vkllm_status vkllm_write_tiny_model(const char *path, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
