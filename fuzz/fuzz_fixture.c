/* libFuzzer target for the HDF5 fixture reader (host/fixture.c), structure-aware.
 *
 * Why not raw bytes: HDF5 1.10's own parser is not memory-safe on corrupted files (byte-flip fuzzing
 * of the raw file found a heap overflow inside H5Aexists; see host/include/vkllm/fixture.h and
 * docs/SECURITY.md). Feeding it raw bytes would make this target report HDF5's bugs, which we can
 * neither fix nor suppress precisely, and would keep CI red. What is ours is everything the reader
 * does with a well-formed HDF5 file written by somebody else: attribute classes, counts and values,
 * dataset ranks, shapes and classes, groups where datasets belong, token ranges, dims that must
 * agree with a model, buffer capacities. So the input is a small program: its bytes choose, for
 * every root attribute and for /tokens and some checkpoints, whether it is absent and otherwise its
 * class (integer, float, fixed or variable string, arrays), value and shape; HDF5 writes that file
 * (into a RAM-backed path) and the reader opens it, with and without a model to match, and reads
 * every checkpoint. Any crash, sanitizer report or leak in our code fails the run. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "vkllm/fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct src {
    const uint8_t *p;
    size_t n;
} src;

static unsigned byte(src *s)
{
    if (!s->n) return 0;
    s->n--;
    return *s->p++;
}

/* Small values mostly (what shapes need), sometimes extreme ones (what limits need). */
static int64_t value(src *s)
{
    unsigned k = byte(s);
    switch (k >> 5) {
    case 0: return 0;
    case 1: return -(int64_t)(k & 31) - 1;
    case 2: return (int64_t)1 << (byte(s) % 63);
    case 3: return INT64_MAX - (k & 7);
    default: return (int64_t)(k & 63) + 1;
    }
}

static void put_attr(hid_t loc, const char *name, src *s)
{
    unsigned kind = byte(s) % 8;
    hsize_t two = 2;
    hid_t sp = kind == 6 ? H5Screate_simple(1, &two, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = -1, t = -1;
    switch (kind) {
    case 0: break; /* absent */
    case 1: case 6: { /* integer (a pair for kind 6) */
        int64_t v[2] = { value(s), value(s) };
        a = H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_INT64, v);
        break;
    }
    case 2: { /* float */
        double v = (double)value(s) / (1 + byte(s));
        a = H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
        break;
    }
    case 3: case 4: { /* fixed-length string: the right one, or bytes from the input */
        char buf[80];
        size_t len = byte(s) % sizeof buf;
        if (kind == 3 && len % 2) len = strlen(strcpy(buf, VKLLM_FIXTURE_FORMAT));
        else
            for (size_t i = 0; i < len; i++) buf[i] = (char)byte(s);
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, len ? len : 1);
        if (!len) buf[0] = 0;
        a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, t, buf);
        break;
    }
    case 5: { /* variable-length string */
        const char *v = byte(s) % 2 ? VKLLM_FIXTURE_FORMAT : "something else";
        t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, t, &v);
        break;
    }
    default: { /* float32 */
        float v = (float)value(s);
        a = H5Acreate2(loc, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_FLOAT, &v);
        break;
    }
    }
    if (a >= 0) H5Aclose(a);
    if (t >= 0) H5Tclose(t);
    H5Sclose(sp);
}

/* A dataset at path (parents created): absent, a group instead, or int/float of rank 1..3 with small
 * extents from the input, filled with input-chosen values. */
static void put_dataset(hid_t file, const char *path, src *s)
{
    unsigned kind = byte(s) % 6;
    if (kind == 0) return;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (kind == 1) {
        hid_t g = H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) H5Gclose(g);
        H5Pclose(lcpl);
        return;
    }
    int rank = 1 + (int)(byte(s) % 3);
    hsize_t dims[3], n = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = byte(s) % 24;
        n *= dims[i];
    }
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    int is_int = kind <= 3;
    hid_t ds = H5Dcreate2(file, path, is_int ? H5T_STD_I32LE : H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0 && n) {
        int32_t *buf = malloc(n * sizeof *buf);
        if (buf) {
            /* wrapping arithmetic: the values only need to cover the range, not to be exact */
            uint32_t fill = (uint32_t)value(s), step = (uint32_t)(byte(s) % 5) - 1u;
            for (hsize_t i = 0; i < n; i++) buf[i] = (int32_t)(fill + step * (uint32_t)i);
            if (!is_int)
                for (hsize_t i = 0; i < n; i++) ((float *)buf)[i] = (float)buf[i];
            H5Dwrite(ds, is_int ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
            free(buf);
        }
    }
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(lcpl);
}

static const char *const attrs[] = { "format", "version", "n_layer", "n_embd", "n_head", "n_head_kv",
                                     "head_dim", "n_ff", "n_vocab", "rope_base", "rms_eps" };
static const char *const names[] = { "attn_norm", "q", "k", "v", "attn", "attn_out", "ffn_norm", "ffn_act",
                                     "ffn_out", "out", "output_norm", "logits", "nonsense" };

static char path[64];
static float out[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src s = { data, size };
    if (!path[0]) {
        /* RAM-backed where there is one: the file is written and read once per input */
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/vkllm-fuzz-fixture-%ld.h5", dir, (long)getpid());
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    }
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return 0;
    /* a well-formed header most of the time (bit 0 of the first byte), so the fuzzer gets past it;
     * even then each attribute may be replaced by a fuzzed one */
    unsigned mode = byte(&s);
    unsigned kv = 1 + byte(&s) % 2, good[11] = { 0, 1, 1 + byte(&s) % 3, 1 + byte(&s) % 8, kv * (1 + byte(&s) % 2), kv,
                                                 1 + byte(&s) % 4, 1 + byte(&s) % 8, 2 + byte(&s) % 30, 0, 0 };
    good[3] = good[4] * good[6]; /* n_embd = n_head * head_dim */
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        if ((mode & 1) && byte(&s) % 4) {
            hid_t sp = H5Screate(H5S_SCALAR), a = -1, t = -1;
            if (i == 0) {
                t = H5Tcopy(H5T_C_S1);
                H5Tset_size(t, sizeof VKLLM_FIXTURE_FORMAT - 1);
                if ((a = H5Acreate2(file, attrs[i], t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0) H5Awrite(a, t, VKLLM_FIXTURE_FORMAT);
            } else if (i >= 9) {
                double v = i == 9 ? 10000.0 : 1e-5;
                if ((a = H5Acreate2(file, attrs[i], H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
                    H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
            } else {
                int64_t v = good[i];
                if ((a = H5Acreate2(file, attrs[i], H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
                    H5Awrite(a, H5T_NATIVE_INT64, &v);
            }
            if (a >= 0) H5Aclose(a);
            if (t >= 0) H5Tclose(t);
            H5Sclose(sp);
            continue;
        }
        put_attr(file, attrs[i], &s);
    }
    put_dataset(file, "/tokens", &s);
    unsigned n_ds = byte(&s) % 8;
    for (unsigned i = 0; i < n_ds; i++) {
        char p[64];
        int layer = (int)(byte(&s) % 4) - 1;
        vkllm_fixture_path(p, sizeof p, layer, names[byte(&s) % (sizeof names / sizeof names[0])]);
        put_dataset(file, p, &s);
    }
    H5Fclose(file);

    vkllm_phi3_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.n_layer = 1 + byte(&s) % 3;
    hp.n_embd = hp.n_head = hp.n_head_kv = 1 + byte(&s) % 4;
    hp.head_dim = 1;
    hp.n_ff = hp.n_vocab = 2;
    char err[512];
    vkllm_fixture *f = NULL;
    vkllm_status st = vkllm_fixture_open(path, byte(&s) % 2 ? &hp : NULL, &f, err, sizeof err);
    if (getenv("VKLLM_FUZZ_VERBOSE")) fprintf(stderr, "open: %d %s\n", (int)st, st ? err : "");
    if (st == VKLLM_OK) {
        const vkllm_fixture_dims *d = vkllm_fixture_get_dims(f);
        const int32_t *tok = vkllm_fixture_tokens(f);
        volatile int32_t sink = tok[0] + tok[d->n_tok - 1];
        (void)sink;
        size_t cap = sizeof out / sizeof out[0] >> (byte(&s) % 16);
        for (int layer = -1; layer < (int)d->n_layer && layer < 3; layer++)
            for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
                int found;
                vkllm_fixture_read(f, layer, names[k], out, cap, &found);
            }
        vkllm_fixture_close(f, err, sizeof err);
    } else if (f) {
        __builtin_trap(); /* on failure *out must be NULL */
    } else if (!err[0]) {
        __builtin_trap(); /* and a message must say why */
    }
    return 0;
}
