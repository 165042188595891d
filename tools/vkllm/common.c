/* Shared by the vkllm subcommands: argument parsing helpers, the built-in tiny model, opening the
 * device and loading a model with a progress bar. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "vkllm/mkmodel.h"

volatile sig_atomic_t cli_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

/* The runtime reads tensor data with pread and checks the file after loading, but the tokenizer and
 * `info` still read metadata through the mapping: if the file is truncated under a running process,
 * touching a vanished page raises SIGBUS. A tool (not the library) may decide that this ends the
 * process, so it does, with one line instead of a core dump. */
static void on_sigbus(int sig)
{
    static const char msg[] = "\nvkllm: the model file was truncated while in use (SIGBUS reading its mapping); stopping\n";
    (void)sig;
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

void cli_catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, NULL);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cli_u32(const char *cmd, const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "vkllm %s: %s needs an integer in [%u, %u], got '%s'\n", cmd, flag, lo, hi, s);
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

int cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (!*s || *end || errno || s[0] == '-') {
        fprintf(stderr, "vkllm %s: %s needs a non-negative integer, got '%s'\n", cmd, flag, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_float(const char *cmd, const char *flag, const char *s, float lo, float hi, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "vkllm %s: %s needs a number in [%g, %g], got '%s'\n", cmd, flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_tokens(const char *cmd, const char *s, int32_t **out, uint32_t *n)
{
    uint32_t cap = 16, k = 0;
    int32_t *t = malloc(cap * sizeof *t);
    const char *p = s;
    while (t && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "vkllm %s: --tokens needs comma-separated non-negative token ids, got '%s'\n", cmd, s);
            free(t);
            return 0;
        }
        if (k == cap) {
            int32_t *nt = realloc(t, (cap *= 2) * sizeof *t);
            if (!nt) break;
            t = nt;
        }
        t[k++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!t || k == 0) {
        fprintf(stderr, "vkllm %s: --tokens needs at least one token id\n", cmd);
        free(t);
        return 0;
    }
    *out = t;
    *n = k;
    return 1;
}

/* $XDG_CACHE_HOME/vkllm/<name>, creating the directory. */
static int cache_path(char *buf, size_t n, const char *name)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[PATH_MAX];
    if (xdg && *xdg == '/') snprintf(dir, sizeof dir, "%s/vkllm", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache/vkllm", home);
    else snprintf(dir, sizeof dir, "/tmp/vkllm-%ld", (long)getuid());
    char part[PATH_MAX];
    snprintf(part, sizeof part, "%s", dir);
    for (char *q = part + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            mkdir(part, 0755);
            *q = '/';
        }
    if (mkdir(dir, 0755) && errno != EEXIST) return 0;
    return snprintf(buf, n, "%s/%s", dir, name) < (int)n;
}

const char *cli_builtin_model(char *buf, size_t n)
{
    if (!cache_path(buf, n, "tiny-q4_k_m-v1.gguf")) {
        fprintf(stderr, "vkllm: cannot create a cache directory for the built-in model (set XDG_CACHE_HOME)\n");
        return NULL;
    }
    if (access(buf, R_OK) == 0) return buf;
    fprintf(stderr, "vkllm: writing the built-in tiny model (random weights, deterministic) to %s\n", buf);
    vkllm_mkmodel_config cfg;
    vkllm_mkmodel_preset("tiny", &cfg);
    cfg.ftype = VKLLM_MKMODEL_Q4_K_M;
    cfg.seed = 1;
    char tmp[PATH_MAX + 32], err[512];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", buf, (long)getpid());
    uint64_t size;
    if (vkllm_mkmodel_write(&cfg, tmp, &size, err, sizeof err) || rename(tmp, buf)) {
        fprintf(stderr, "vkllm: cannot write the built-in model: %s\n", err[0] ? err : strerror(errno));
        remove(tmp);
        return NULL;
    }
    return buf;
}

vkllm_device *cli_open_device(const char *cmd, const char *select)
{
    vkllm_device_options o = vkllm_device_options_default();
    o.select = select;
    vkllm_device *dev;
    char err[1024];
    if (vkllm_device_create(&o, &dev, err, sizeof err)) {
        fprintf(stderr, "vkllm %s: %s\n", cmd, err);
        return NULL;
    }
    return dev;
}

static void progress(void *user, uint64_t done, uint64_t total)
{
    (void)user;
    if (!isatty(STDERR_FILENO) || !total) return;
    int w = 40, k = (int)(w * (double)done / (double)total);
    fprintf(stderr, "\rloading [%.*s%*s] %5.1f%% %.2f/%.2f GiB", k, "########################################", w - k, "",
            100.0 * done / total, done / 1073741824.0, total / 1073741824.0);
    if (done >= total) fputc('\n', stderr);
}

vkllm_model *cli_load_model(const char *cmd, vkllm_device *dev, const char *path, uint32_t n_ctx)
{
    /* Ctrl-C during the upload cancels it (the runtime polls the flag between chunks) */
    _Static_assert(sizeof(sig_atomic_t) == sizeof(int), "the cancel flag is read as an int");
    cli_catch_sigint();
    vkllm_load_options lo = { .progress = progress, .cancel = (const volatile int *)&cli_interrupted, .n_ctx = n_ctx };
    vkllm_model *m;
    double t0 = cli_now();
    vkllm_status s = vkllm_model_load(dev, path, &lo, &m);
    if (s == VKLLM_ERROR_CANCELLED) {
        fprintf(stderr, "\nvkllm %s: interrupted while loading %s; everything loaded so far was freed\n", cmd, path);
        return NULL;
    }
    if (s) {
        fprintf(stderr, "vkllm %s: %s\n", cmd, vkllm_device_error(dev));
        return NULL;
    }
    uint64_t fb, db;
    vkllm_model_sizes(m, &fb, &db);
    fprintf(stderr, "vkllm: loaded %s (%.2f GiB of weights) in %.2f s on %s\n", path, db / 1073741824.0, cli_now() - t0,
            vkllm_device_features(dev)->name);
    return m;
}

void cli_memory_report(FILE *f, vkllm_model *m, vkllm_session *s)
{
    uint64_t fb = 0, db = 0, kv = 0, scratch = 0;
    vkllm_model_sizes(m, &fb, &db);
    if (s) vkllm_session_sizes(s, &kv, &scratch);
    long anon = -1, file = -1;
    FILE *st = fopen("/proc/self/status", "r");
    if (st) {
        char line[256];
        while (fgets(line, sizeof line, st)) {
            if (!strncmp(line, "RssAnon:", 8)) anon = strtol(line + 8, NULL, 10);
            if (!strncmp(line, "RssFile:", 8)) file = strtol(line + 8, NULL, 10);
        }
        fclose(st);
    }
    fprintf(f,
            "device memory: weights %.3f GiB (file tensors %.3f GiB, +%.2f%%), KV cache %.3f GiB, scratch %.1f MiB\n"
            "host memory: %.1f MiB anonymous (RssAnon), %.1f MiB of file pages mapped (RssFile)\n",
            db / 1073741824.0, fb / 1073741824.0, fb ? 100.0 * ((double)db - (double)fb) / (double)fb : 0.0,
            kv / 1073741824.0, scratch / 1048576.0, anon / 1024.0, file / 1024.0);
}

int cli_act_q8(const char *cmd, const char *s, int *out)
{
    if (!strcmp(s, "auto")) *out = 0;
    else if (!strcmp(s, "on")) *out = 1;
    else if (!strcmp(s, "off")) *out = -1;
    else {
        fprintf(stderr, "vkllm %s: --act-q8 needs auto, on or off, not '%s'\n", cmd, s);
        return 0;
    }
    return 1;
}
