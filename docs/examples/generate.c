/* generate: the shortest complete vkllm program. Opens the Vulkan device, loads a model, feeds a
 * prompt and streams 16 tokens (greedy: the argmax is taken on the GPU, 4 bytes come back per
 * token), then frees everything. Every call's status is checked.
 *
 *   cc generate.c $(pkg-config --cflags --libs vkllm) -o generate
 *   ./generate [MODEL.gguf [PROMPT]]
 *
 * Without a model it writes vkllm's built-in tiny model (random weights: nonsense text) to
 * $TMPDIR. docs/API.md explains each step; tests/install builds and runs this file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vkllm/vkllm.h>

#define N_TOKENS 16

/* Prints what failed and why; returns 1 if st is an error. */
static int failed(vkllm_status st, const char *what, const char *message)
{
    if (st == VKLLM_OK) return 0;
    fprintf(stderr, "generate: %s failed: %s (%s)\n", what, message, vkllm_strerror(st));
    return 1;
}

int main(int argc, char **argv)
{
    const char *prompt = argc > 2 ? argv[2] : "The quick brown fox";
    char path[1024], err[1024];
    if (argc > 1) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/vkllm-example-tiny.gguf", tmp && *tmp ? tmp : "/tmp");
        if (failed(vkllm_write_tiny_model(path, err, sizeof err), "writing the tiny model", err)) return 1;
    }

    vkllm_device *dev = NULL;
    vkllm_model *model = NULL;
    vkllm_tokenizer *tok = NULL;
    vkllm_session *sess = NULL;
    vkllm_detok *detok = NULL;
    vkllm_tokens prompt_ids = { 0 };
    int rc = 1;

    /* NULL options: the device from $VKLLM_DEVICE, else the first discrete GPU, else any. */
    if (failed(vkllm_device_create(NULL, &dev, err, sizeof err), "opening the device", err)) goto out;
    fprintf(stderr, "device: %s (vkllm %s)\n", vkllm_device_features(dev)->name, vkllm_version_string());

    vkllm_load_options lo = { .n_ctx = 512 }; /* memory check for the context we will use */
    if (failed(vkllm_model_load(dev, path, &lo, &model), "loading the model", vkllm_device_error(dev))) goto out;
    if (failed(vkllm_model_tokenizer(model, &tok), "reading the tokenizer", vkllm_model_error(model))) goto out;

    vkllm_session_options so = { .n_ctx = 512 };
    if (failed(vkllm_session_create(model, &so, &sess), "creating a session", vkllm_model_error(model))) goto out;

    /* The prompt's tokens, with BOS when the model asks for it. */
    if (failed(vkllm_tokenizer_encode(tok, prompt, strlen(prompt), VKLLM_TOKENIZE_ADD_SPECIAL, &prompt_ids), "tokenizing",
               vkllm_tokenizer_error(tok)))
        goto out;
    if (prompt_ids.n == 0) {
        fprintf(stderr, "generate: the prompt is empty\n");
        goto out;
    }
    /* All but the last prompt token go in as one batch; decoding the last one yields the first new token. */
    if (failed(vkllm_session_prefill(sess, prompt_ids.ids, (uint32_t)(prompt_ids.n - 1), NULL), "prefill",
               vkllm_session_error(sess)))
        goto out;

    if (failed(vkllm_detok_create(tok, VKLLM_DECODE_STRIP_SPACE, &detok), "creating the detokenizer",
               vkllm_tokenizer_error(tok)))
        goto out;
    fputs(prompt, stdout);
    int32_t next = prompt_ids.ids[prompt_ids.n - 1];
    for (int i = 0; i < N_TOKENS; i++) {
        /* sampler NULL: greedy, argmax on the GPU; pass a vkllm_sampler for temperature/top-k/top-p. */
        if (failed(vkllm_session_decode(sess, next, NULL, &next, NULL), "decode", vkllm_session_error(sess))) goto out;
        if (vkllm_tokenizer_is_eog(tok, next)) break;
        const char *text;
        size_t len;
        if (failed(vkllm_detok_push(detok, next, &text, &len), "detokenizing", vkllm_detok_error(detok))) goto out;
        fwrite(text, 1, len, stdout); /* valid UTF-8; a partial character waits for the next token */
        fflush(stdout);
    }
    const char *text;
    size_t len;
    if (failed(vkllm_detok_flush(detok, &text, &len), "detokenizing", vkllm_detok_error(detok))) goto out;
    fwrite(text, 1, len, stdout);
    putchar('\n');
    rc = 0;
out:
    /* Every destroy accepts NULL; sessions and tokenizers before their model, models before the device. */
    vkllm_tokens_free(&prompt_ids);
    vkllm_detok_destroy(detok);
    vkllm_session_destroy(sess);
    vkllm_tokenizer_destroy(tok);
    vkllm_model_destroy(model);
    vkllm_device_destroy(dev);
    return rc;
}
