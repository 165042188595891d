/* vkllm validate: run a model on a fixture's tokens, as one prefill and one token at a time, and
 * compare every checkpoint with the fixture (written by tools/mkfixtures from the CPU reference, or
 * by any tool that follows the schema in docs/FIXTURES.md).
 *
 * Bounds (NMSE): 2e-6 on float32 paths (the only differences are the fp16 KV cache, ~1e-7, and
 * summation order); where the prefill GEMM runs on cooperative matrices (fp16 inputs) 5e-4 per
 * checkpoint and 2e-3 on the logits; the same where the one-token steps take 8-bit activations
 * (--act-q8, by default where the device accelerates the integer dot product, as `vkllm run`): a
 * fixture of the float reference then differs by the rounding of each mat-vec input to 8 bits per
 * 32 elements, NMSE ~3e-5 per product (amax / 127 steps, tests/gpu/test_matvec_q8.c), 2.7e-5 at a
 * tiny model's last layer and 4.9e-5 on its logits on the H100. --act-q8 off checks the float
 * path to 2e-6. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vkllm/fixture.h"

typedef struct vctx {
    vkllm_fixture *fx;
    const char *mode;
    double bound, logits_bound;
    int failed, compared, missing;
    float *buf;
    size_t cap;
} vctx;

static void compare(void *user, int layer, const char *name, const float *data, uint32_t rows, uint32_t width)
{
    vctx *c = user;
    size_t n = (size_t)rows * width;
    if (n > c->cap) {
        float *nb = realloc(c->buf, n * sizeof *nb);
        if (!nb) {
            printf("| %s | %d | %s | - | - | - | FAIL (out of memory) |\n", c->mode, layer, name);
            c->failed++;
            return;
        }
        c->buf = nb;
        c->cap = n;
    }
    int found = 0;
    if (vkllm_fixture_read(c->fx, layer, name, c->buf, c->cap, &found)) {
        printf("| %s | %d | %s | - | - | - | FAIL (%s) |\n", c->mode, layer, name, vkllm_fixture_error(c->fx));
        c->failed++;
        return;
    }
    if (!found) {
        if (c->missing++ < 100) fprintf(stderr, "vkllm validate: notice: the fixture has no %s checkpoint for layer %d: skipped\n", name, layer);
        return;
    }
    double num = 0, den = 0, maxe = 0;
    int nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(data[i])) nonfinite = 1;
        double d = (double)data[i] - c->buf[i];
        num += d * d;
        den += (double)c->buf[i] * c->buf[i];
        if (fabs(d) > maxe) maxe = fabs(d);
    }
    double nmse = nonfinite ? INFINITY : den > 0 ? num / den : num;
    double bound = !strcmp(name, "logits") ? c->logits_bound : c->bound;
    int pass = nmse <= bound;
    c->compared++;
    if (!pass) c->failed++;
    char lay[16];
    snprintf(lay, sizeof lay, layer < 0 ? "-" : "%02d", layer);
    printf("| %s | %s | %s | %.3e | %.3e | %.0e | %s |\n", c->mode, lay, name, nmse, maxe, bound, pass ? "pass" : "FAIL");
}

int cmd_validate(int argc, char **argv)
{
    const char *cmd = "validate", *model = NULL, *fixture = NULL, *device = NULL;
    int act_q8 = 0;
    for (int i = 1; i < argc; i += 2) { /* option, value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: vkllm validate -m model.gguf --fixture ref.h5 [--device D] [--act-q8 auto|on|off]\n"
                   "Runs the model on the fixture's tokens as one prefill and one token at a time and prints one row\n"
                   "per layer and checkpoint (NMSE, max abs error, bound, pass/fail). Exit code 1 on any failure.\n"
                   "--act-q8: the one-token steps with 8-bit activations (auto: where the device accelerates the\n"
                   "integer dot product, as vkllm run; their bound is then 5e-4, 2e-3 on the logits); off: float32.\n");
            return 0;
        }
        if (!v) {
            fprintf(stderr, "vkllm validate: unknown option or missing value: '%s' (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--fixture")) fixture = v;
        else if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--act-q8")) {
            if (!cli_act_q8(cmd, v, &act_q8)) return 2;
        } else {
            fprintf(stderr, "vkllm validate: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!model || !fixture) {
        fprintf(stderr, "vkllm validate: needs -m model.gguf and --fixture ref.h5\n");
        return 2;
    }
    int rc = 1;
    vkllm_device *dev = cli_open_device(cmd, device);
    if (!dev) return 1;
    vkllm_model *m = cli_load_model(cmd, dev, model, 0);
    vkllm_session *s = NULL;
    vctx c = { 0 };
    if (!m) goto done;
    const vkllm_phi3_hparams *hp = vkllm_model_hparams(m);
    char err[1024];
    if (vkllm_fixture_open(fixture, hp, &c.fx, err, sizeof err)) {
        fprintf(stderr, "vkllm validate: %s\n", err);
        goto done;
    }
    const vkllm_fixture_dims *d = vkllm_fixture_get_dims(c.fx);
    const int32_t *tokens = vkllm_fixture_tokens(c.fx);
    uint32_t T = d->n_tok;
    if (T == 0 || T > hp->n_ctx_train || T > 4096) {
        fprintf(stderr, "vkllm validate: the fixture has %u tokens; 1..%u are supported\n", T,
                hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
        goto done;
    }
    uint32_t n_ctx = T < 256 ? 256 : T;
    if (n_ctx > hp->n_ctx_train) n_ctx = hp->n_ctx_train;
    vkllm_session_options so = { .n_ctx = n_ctx, .max_batch = T, .act_q8 = act_q8 };
    if (vkllm_session_create(m, &so, &s)) {
        fprintf(stderr, "vkllm validate: %s\n", vkllm_device_error(dev));
        goto done;
    }
    printf("%u tokens, %u layers, device %s; one-token steps: %s\n\n| mode | layer | checkpoint | NMSE | max abs err | bound | result |\n"
           "|---|---|---|---:|---:|---:|---|\n",
           T, hp->n_layer, vkllm_device_features(dev)->name,
           vkllm_session_act_q8(s) ? "8-bit activations (--act-q8 off for float32)" : "float32 activations");
    for (int as_prefill = 1; as_prefill >= 0; as_prefill--) {
        /* fp16 GEMM inputs (prefill on cooperative matrices) or 8-bit mat-vec inputs (one-token steps) */
        int cm = as_prefill ? T > 8 && vkllm_device_features(dev)->coopmat : vkllm_session_act_q8(s) != 0;
        c.mode = as_prefill ? "prefill" : "token-by-token";
        c.bound = cm ? 5e-4 : 2e-6;
        c.logits_bound = cm ? 2e-3 : 2e-6;
        if (vkllm_session_capture(s, tokens, T, as_prefill, compare, &c)) {
            fprintf(stderr, "vkllm validate: %s\n", vkllm_device_error(dev));
            c.failed++;
            break;
        }
    }
    printf("\n%d compared, %d failed, %d missing from the fixture\n", c.compared, c.failed, c.missing);
    rc = c.failed ? 1 : 0;
done:
    if (c.fx) vkllm_fixture_close(c.fx, NULL, 0);
    free(c.buf);
    vkllm_session_destroy(s);
    vkllm_model_destroy(m);
    vkllm_device_destroy(dev);
    return rc;
}
