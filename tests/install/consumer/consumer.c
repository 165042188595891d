/* A program built against an installed vkllm only (tests/install/run.sh): the header and the
 * library agree on the version, the API's handles work end to end on the device, and a status has
 * a name. Exit 0 on success; one line on stderr saying what failed otherwise. */
#include <stdio.h>
#include <string.h>

#include <vkllm/vkllm.h>

int main(int argc, char **argv)
{
    if (vkllm_version() != VKLLM_VERSION || strcmp(vkllm_version_string(), VKLLM_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header says %s, library says %s\n", VKLLM_VERSION_STRING, vkllm_version_string());
        return 1;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: consumer MODEL.gguf\n");
        return 2;
    }
    if (strcmp(vkllm_strerror(VKLLM_ERROR_CANCELLED), vkllm_strerror(VKLLM_OK)) == 0) {
        fprintf(stderr, "consumer: vkllm_strerror gives the same text for two codes\n");
        return 1;
    }
    char err[1024];
    vkllm_device *dev = NULL;
    vkllm_model *m = NULL;
    vkllm_session *s = NULL;
    int rc = 1;
    vkllm_status st = vkllm_device_create(NULL, &dev, err, sizeof err);
    if (st) {
        fprintf(stderr, "consumer: device: %s\n", err);
        return 1;
    }
    vkllm_load_options lo = { .n_ctx = 64 };
    if ((st = vkllm_model_load(dev, argv[1], &lo, &m))) {
        fprintf(stderr, "consumer: load: %s\n", vkllm_device_error(dev));
        goto out;
    }
    vkllm_session_options so = { .n_ctx = 64 };
    if ((st = vkllm_session_create(m, &so, &s))) {
        fprintf(stderr, "consumer: session: %s\n", vkllm_model_error(m));
        goto out;
    }
    int32_t prompt[3] = { 3, 4, 5 }, next = 0;
    if ((st = vkllm_session_prefill(s, prompt, 3, NULL)) || (st = vkllm_session_decode(s, 6, NULL, &next, NULL))) {
        fprintf(stderr, "consumer: generate: %s\n", vkllm_session_error(s));
        goto out;
    }
    if (next < 0 || (uint32_t)next >= vkllm_model_hparams(m)->n_vocab) {
        fprintf(stderr, "consumer: token %d outside the vocabulary\n", (int)next);
        goto out;
    }
    if (vkllm_device_validation_errors(dev)) {
        fprintf(stderr, "consumer: %llu validation errors\n", (unsigned long long)vkllm_device_validation_errors(dev));
        goto out;
    }
    printf("consumer: vkllm %s on %s: next token %d\n", vkllm_version_string(), vkllm_device_features(dev)->name, (int)next);
    rc = 0;
out:
    vkllm_session_destroy(s);
    vkllm_model_destroy(m);
    vkllm_device_destroy(dev);
    return rc;
}
