/* The calls vkllm/vkllm.h adds on top of the runtime's own headers: version, per-object errors,
 * the model's tokenizer, the built-in tiny model. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model_internal.h"
#include "vkllm/vkllm.h"

unsigned vkllm_version(void) { return VKLLM_VERSION; }
const char *vkllm_version_string(void) { return VKLLM_VERSION_STRING; }

const char *vkllm_model_error(const vkllm_model *m) { return m ? vkllm_device_error(m->dev) : "no model"; }
vkllm_device *vkllm_model_device(const vkllm_model *m) { return m ? m->dev : NULL; }

vkllm_status vkllm_model_tokenizer(const vkllm_model *m, vkllm_tokenizer **out)
{
    if (out) *out = NULL;
    if (!m || !out) return vkllm_fail(m ? m->dev : NULL, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_model_tokenizer: NULL argument");
    char err[512] = "";
    vkllm_status s = vkllm_tokenizer_create_gguf(m->g, out, err, sizeof err);
    if (s) return vkllm_fail(m->dev, s, "the model's tokenizer: %s", err[0] ? err : vkllm_strerror(s));
    return VKLLM_OK;
}

vkllm_status vkllm_write_tiny_model(const char *path, char *err, size_t err_len)
{
    if (err && err_len) err[0] = '\0';
    if (!path) {
        if (err && err_len) snprintf(err, err_len, "vkllm_write_tiny_model: path is NULL");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    vkllm_mkmodel_config cfg;
    vkllm_status s = vkllm_mkmodel_preset("tiny", &cfg);
    if (s) return s;
    cfg.ftype = VKLLM_MKMODEL_Q4_K_M; /* the same file as `vkllm run` writes for its built-in model */
    cfg.seed = 1;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        if (err && err_len) snprintf(err, err_len, "vkllm_write_tiny_model: path too long");
        return VKLLM_ERROR_INVALID_ARGUMENT;
    }
    char msg[512] = "";
    s = vkllm_mkmodel_write(&cfg, tmp, NULL, msg, sizeof msg);
    if (!s && rename(tmp, path) != 0) {
        snprintf(msg, sizeof msg, "cannot rename the new file to %.300s: %.150s", path, strerror(errno));
        s = VKLLM_ERROR_IO;
    }
    if (s) {
        remove(tmp);
        if (err && err_len) snprintf(err, err_len, "%s", msg[0] ? msg : vkllm_strerror(s));
    }
    return s;
}
