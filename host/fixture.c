/* HDF5 fixture writer and hostile-input reader; see vkllm/fixture.h for the schema.
 * Every H5 call is checked; HDF5's automatic error printing is off, and a failure's message adds the
 * top of HDF5's error stack ("unable to open file", ...) to what we were doing. */
#include "vkllm/fixture.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>


/* Far above any real model; keeps T * width and friends far from overflow. */
#define MAX_DIM (1u << 24)
#define MAX_LAYER 4096u

struct vkllm_fixture {
    hid_t file;
    int writing;
    vkllm_fixture_dims d;
    int32_t *tokens; /* (T) */
    char err[512];
};

static vkllm_status set_err(char *err, size_t n, vkllm_status s, const char *fmt, ...)
{
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return s;
}

static herr_t walk_top(unsigned i, const H5E_error2_t *e, void *data)
{
    if (i == 0 && e->desc) snprintf(data, 160, "%s", e->desc);
    return 0;
}

/* The top description on HDF5's error stack ("" if none), then clears the stack. */
static const char *h5_detail(char *buf)
{
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_top, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

static void quiet_hdf5(void)
{
    /* Process-wide, and what every caller of this library wants: our messages instead of stacks. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* ------------------------------------------------------------------------------------------------
 * Schema */

void vkllm_fixture_dims_from_hparams(vkllm_fixture_dims *d, const vkllm_phi3_hparams *hp, uint32_t n_tok)
{
    memset(d, 0, sizeof *d);
    d->n_layer = hp->n_layer;
    d->n_embd = hp->n_embd;
    d->n_head = hp->n_head;
    d->n_head_kv = hp->n_head_kv;
    d->head_dim = hp->head_dim;
    d->n_ff = hp->n_ff;
    d->n_vocab = hp->n_vocab;
    d->rope_base = hp->rope_base;
    d->rms_eps = hp->rms_eps;
    d->n_tok = n_tok;
}

uint32_t vkllm_fixture_width(const vkllm_fixture_dims *d, int layer, const char *name)
{
    if (!d || !name) return 0;
    if (layer < 0) {
        if (layer != -1) return 0;
        if (!strcmp(name, "output_norm")) return d->n_embd;
        if (!strcmp(name, "logits")) return d->n_vocab;
        return 0;
    }
    if ((uint32_t)layer >= d->n_layer) return 0;
    const uint32_t q = d->n_head * d->head_dim, kv = d->n_head_kv * d->head_dim;
    if (!strcmp(name, "q") || !strcmp(name, "attn")) return q;
    if (!strcmp(name, "k") || !strcmp(name, "v")) return kv;
    if (!strcmp(name, "ffn_act")) return d->n_ff;
    if (!strcmp(name, "attn_norm") || !strcmp(name, "attn_out") || !strcmp(name, "ffn_norm") ||
        !strcmp(name, "ffn_out") || !strcmp(name, "out"))
        return d->n_embd;
    return 0;
}

int vkllm_fixture_path(char *buf, size_t n, int layer, const char *name)
{
    int k = layer < 0 ? snprintf(buf, n, "/%s", name) : snprintf(buf, n, "/layer_%02d/%s", layer, name);
    return k > 0 && (size_t)k < n;
}

/* ------------------------------------------------------------------------------------------------
 * Writer */

static int put_int(hid_t loc, const char *name, int64_t v)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    int ok = sp >= 0 && (a = H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0;
    if (a >= 0 && H5Aclose(a) < 0) ok = 0;
    if (sp >= 0 && H5Sclose(sp) < 0) ok = 0;
    return ok;
}

static int put_double(hid_t loc, const char *name, double v)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    int ok = sp >= 0 && (a = H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(a, H5T_NATIVE_DOUBLE, &v) >= 0;
    if (a >= 0 && H5Aclose(a) < 0) ok = 0;
    if (sp >= 0 && H5Sclose(sp) < 0) ok = 0;
    return ok;
}

static int put_string(hid_t loc, const char *name, const char *s)
{
    hid_t sp = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1), a = -1;
    int ok = sp >= 0 && t >= 0 && H5Tset_size(t, strlen(s)) >= 0 && H5Tset_strpad(t, H5T_STR_NULLPAD) >= 0 &&
             (a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 && H5Awrite(a, t, s) >= 0;
    if (a >= 0 && H5Aclose(a) < 0) ok = 0;
    if (t >= 0 && H5Tclose(t) < 0) ok = 0;
    if (sp >= 0 && H5Sclose(sp) < 0) ok = 0;
    return ok;
}

/* Writes a dataset of rank 1 or 2 at path, creating missing groups. */
static int put_dataset(hid_t file, const char *path, hid_t file_type, hid_t mem_type, int rank, const hsize_t *dims,
                       const void *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), sp = -1, ds = -1;
    int ok = lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
             (sp = H5Screate_simple(rank, dims, NULL)) >= 0 &&
             (ds = H5Dcreate2(file, path, file_type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (ds >= 0 && H5Dclose(ds) < 0) ok = 0;
    if (sp >= 0 && H5Sclose(sp) < 0) ok = 0;
    if (lcpl >= 0 && H5Pclose(lcpl) < 0) ok = 0;
    return ok;
}

/* 0 or a message about the first bad dim. */
static int check_dims(const vkllm_fixture_dims *d, char *err, size_t n)
{
    const struct { const char *name; uint32_t v, max; } f[] = {
        { "n_layer", d->n_layer, MAX_LAYER }, { "n_embd", d->n_embd, MAX_DIM }, { "n_head", d->n_head, MAX_DIM },
        { "n_head_kv", d->n_head_kv, MAX_DIM }, { "head_dim", d->head_dim, MAX_DIM }, { "n_ff", d->n_ff, MAX_DIM },
        { "n_vocab", d->n_vocab, MAX_DIM }, { "tokens", d->n_tok, MAX_DIM },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < 1 || f[i].v > f[i].max) {
            set_err(err, n, VKLLM_ERROR_BAD_FILE, "%s = %" PRIu32 ": must be 1..%" PRIu32, f[i].name, f[i].v, f[i].max);
            return 1;
        }
    if (d->n_head % d->n_head_kv) {
        set_err(err, n, VKLLM_ERROR_BAD_FILE, "n_head_kv = %" PRIu32 " does not divide n_head = %" PRIu32, d->n_head_kv,
                d->n_head);
        return 1;
    }
    if ((uint64_t)d->n_head * d->head_dim > MAX_DIM) {
        set_err(err, n, VKLLM_ERROR_BAD_FILE, "n_head * head_dim = %" PRIu64 ": too large",
                (uint64_t)d->n_head * d->head_dim);
        return 1;
    }
    if (!isfinite(d->rope_base) || !(d->rope_base > 0) || !isfinite(d->rms_eps) || !(d->rms_eps > 0)) {
        set_err(err, n, VKLLM_ERROR_BAD_FILE, "rope_base = %g, rms_eps = %g: both must be positive numbers", d->rope_base,
                d->rms_eps);
        return 1;
    }
    return 0;
}

vkllm_status vkllm_fixture_create(const char *path, const vkllm_fixture_dims *d, const int32_t *tokens,
                                  vkllm_fixture **out, char *err, size_t n)
{
    char h5[160];
    if (out) *out = NULL;
    if (!path || !d || !tokens || !out)
        return set_err(err, n, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_fixture_create: NULL argument");
    if (check_dims(d, err, n)) return VKLLM_ERROR_INVALID_ARGUMENT;
    for (uint32_t t = 0; t < d->n_tok; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= d->n_vocab)
            return set_err(err, n, VKLLM_ERROR_INVALID_ARGUMENT, "token %" PRIu32 " = %" PRId32 ": outside [0, %" PRIu32 ")",
                           t, tokens[t], d->n_vocab);
    quiet_hdf5();
    vkllm_fixture *f = calloc(1, sizeof *f);
    if (!f) return set_err(err, n, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory");
    f->writing = 1;
    f->d = *d;
    f->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f->file < 0) {
        free(f);
        return set_err(err, n, VKLLM_ERROR_IO, "%s: cannot create HDF5 file: %s", path, h5_detail(h5));
    }
    const hsize_t T = d->n_tok;
    int ok = put_string(f->file, "format", VKLLM_FIXTURE_FORMAT) && put_int(f->file, "version", VKLLM_FIXTURE_VERSION) &&
             put_int(f->file, "n_layer", d->n_layer) && put_int(f->file, "n_embd", d->n_embd) &&
             put_int(f->file, "n_head", d->n_head) && put_int(f->file, "n_head_kv", d->n_head_kv) &&
             put_int(f->file, "head_dim", d->head_dim) && put_int(f->file, "n_ff", d->n_ff) &&
             put_int(f->file, "n_vocab", d->n_vocab) && put_double(f->file, "rope_base", d->rope_base) &&
             put_double(f->file, "rms_eps", d->rms_eps) &&
             put_dataset(f->file, "/tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &T, tokens);
    if (!ok) {
        set_err(err, n, VKLLM_ERROR_IO, "%s: writing attributes and /tokens failed: %s", path, h5_detail(h5));
        H5Fclose(f->file);
        free(f);
        return VKLLM_ERROR_IO;
    }
    *out = f;
    return VKLLM_OK;
}

vkllm_status vkllm_fixture_write(vkllm_fixture *f, int layer, const char *name, const float *data, uint32_t n_tok,
                                 uint32_t width)
{
    char path[96], h5[160];
    if (!f || !name || !data) return VKLLM_ERROR_INVALID_ARGUMENT;
    f->err[0] = 0;
    if (!f->writing) return set_err(f->err, sizeof f->err, VKLLM_ERROR_INVALID_ARGUMENT, "fixture opened for reading");
    uint32_t want = vkllm_fixture_width(&f->d, layer, name);
    if (!want || !vkllm_fixture_path(path, sizeof path, layer, name))
        return set_err(f->err, sizeof f->err, VKLLM_ERROR_INVALID_ARGUMENT, "(layer %d, '%.40s') is not a checkpoint", layer,
                       name);
    if (n_tok != f->d.n_tok || width != want)
        return set_err(f->err, sizeof f->err, VKLLM_ERROR_INVALID_ARGUMENT,
                       "%s: got (%" PRIu32 ", %" PRIu32 "), the schema says (%" PRIu32 ", %" PRIu32 ")", path, n_tok, width,
                       f->d.n_tok, want);
    const hsize_t dims[2] = { n_tok, width };
    if (!put_dataset(f->file, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, data))
        return set_err(f->err, sizeof f->err, VKLLM_ERROR_IO, "%s: write failed: %s", path, h5_detail(h5));
    return VKLLM_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Reader */

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "variable-length";
    default: return "other";
    }
}

/* Opens root attribute name holding exactly one element of class cls; -1 with a message otherwise. */
static hid_t open_attr(vkllm_fixture *f, const char *name, H5T_class_t cls, const char *what)
{
    char h5[160];
    htri_t ex = H5Aexists(f->file, name);
    if (ex <= 0) {
        set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "root attribute '%s' is missing (not a vkllm fixture?)", name);
        return -1;
    }
    hid_t a = H5Aopen(f->file, name, H5P_DEFAULT);
    if (a < 0) {
        set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "attribute '%s': cannot open: %s", name, h5_detail(h5));
        return -1;
    }
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int ok = np == 1 && (c == cls || (cls == H5T_FLOAT && c == H5T_INTEGER));
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (!ok) {
        set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "attribute '%s': must be one %s (found %lld of class %s)",
                name, what, (long long)np, class_name(c));
        H5Aclose(a);
        return -1;
    }
    return a;
}

static int get_int(vkllm_fixture *f, const char *name, int64_t *v)
{
    char h5[160];
    hid_t a = open_attr(f, name, H5T_INTEGER, "integer");
    if (a < 0) return 0;
    int ok = H5Aread(a, H5T_NATIVE_INT64, v) >= 0;
    H5Aclose(a);
    if (!ok) set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "attribute '%s': read failed: %s", name, h5_detail(h5));
    return ok;
}

static int get_u32(vkllm_fixture *f, const char *name, uint32_t *v)
{
    int64_t x;
    if (!get_int(f, name, &x)) return 0;
    if (x < 1 || x > (int64_t)MAX_DIM) {
        set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "attribute '%s' = %" PRId64 ": must be 1..%u", name, x, MAX_DIM);
        return 0;
    }
    *v = (uint32_t)x;
    return 1;
}

static int get_double(vkllm_fixture *f, const char *name, double *v)
{
    char h5[160];
    hid_t a = open_attr(f, name, H5T_FLOAT, "number");
    if (a < 0) return 0;
    int ok = H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0;
    H5Aclose(a);
    if (!ok) set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "attribute '%s': read failed: %s", name, h5_detail(h5));
    return ok;
}

/* A string attribute, fixed or variable length (h5py writes Python str as variable length). */
static int get_string(vkllm_fixture *f, const char *name, char *buf, size_t cap)
{
    char h5[160];
    hid_t a = open_attr(f, name, H5T_STRING, "string");
    if (a < 0) return 0;
    hid_t ft = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
    int ok = 0;
    if (ft >= 0 && mt >= 0) {
        htri_t var = H5Tis_variable_str(ft);
        if (var > 0) {
            char *p = NULL;
            if (H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, &p) >= 0) {
                ok = 1;
                snprintf(buf, cap, "%s", p ? p : "");
                H5free_memory(p);
            }
        } else if (var == 0) {
            size_t sz = H5Tget_size(ft);
            if (sz == 0 || sz >= cap) {
                snprintf(buf, cap, "(a %zu-byte string)", sz);
                ok = 1;
            } else if (H5Tset_size(mt, sz) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLPAD) >= 0 &&
                       H5Aread(a, mt, buf) >= 0) { /* NULLPAD: all sz bytes, terminated below */
                buf[sz] = 0;
                ok = 1;
            }
        }
    }
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    if (!ok) set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "attribute '%s': read failed: %s", name, h5_detail(h5));
    return ok;
}

/* Opens dataset path if it exists: 1 = opened (*ds), 0 = absent, -1 = error (message on f).
 * Checks the link chain one component at a time, as H5Lexists requires. */
static int open_dataset(vkllm_fixture *f, const char *path, hid_t *ds)
{
    char h5[160], part[96];
    size_t len = strlen(path);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != 0) continue;
        memcpy(part, path, i);
        part[i] = 0;
        htri_t ex = H5Lexists(f->file, part, H5P_DEFAULT);
        if (ex < 0) {
            set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "%s: lookup failed: %s", part, h5_detail(h5));
            return -1;
        }
        if (ex == 0) return 0;
    }
    *ds = H5Dopen2(f->file, path, H5P_DEFAULT);
    if (*ds < 0) {
        set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "%s: exists but is not a readable dataset: %s", path,
                h5_detail(h5));
        return -1;
    }
    return 1;
}

/* Checks ds has class cls, rank rank and extents dims. */
static int check_dataset(vkllm_fixture *f, const char *path, hid_t ds, H5T_class_t cls, int rank, const hsize_t *dims)
{
    hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t got[2] = { 0, 0 };
    int ok = r >= 1 && r <= 2 && H5Sget_simple_extent_dims(sp, got, NULL) == r && c == cls && r == rank;
    for (int i = 0; ok && i < rank; i++) ok = got[i] == dims[i];
    if (!ok) {
        char want[64], found[64];
        if (rank == 1) snprintf(want, sizeof want, "(%llu)", (unsigned long long)dims[0]);
        else snprintf(want, sizeof want, "(%llu, %llu)", (unsigned long long)dims[0], (unsigned long long)dims[1]);
        if (r == 1) snprintf(found, sizeof found, "(%llu)", (unsigned long long)got[0]);
        else if (r == 2) snprintf(found, sizeof found, "(%llu, %llu)", (unsigned long long)got[0], (unsigned long long)got[1]);
        else snprintf(found, sizeof found, "rank %d", r);
        set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "%s: expected %s %s, found %s of class %s", path,
                cls == H5T_FLOAT ? "float" : "integer", want, found, class_name(c));
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return ok;
}

static int read_header(vkllm_fixture *f, const vkllm_phi3_hparams *hp)
{
    char fmt[64], h5[160];
    int64_t version;
    if (!get_string(f, "format", fmt, sizeof fmt)) return 0;
    if (strcmp(fmt, VKLLM_FIXTURE_FORMAT)) {
        set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "attribute 'format' = '%s': expected '%s'", fmt,
                VKLLM_FIXTURE_FORMAT);
        return 0;
    }
    if (!get_int(f, "version", &version)) return 0;
    if (version != VKLLM_FIXTURE_VERSION) {
        set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "attribute 'version' = %" PRId64 ": this build reads version %d",
                version, VKLLM_FIXTURE_VERSION);
        return 0;
    }
    vkllm_fixture_dims *d = &f->d;
    if (!get_u32(f, "n_layer", &d->n_layer) || !get_u32(f, "n_embd", &d->n_embd) || !get_u32(f, "n_head", &d->n_head) ||
        !get_u32(f, "n_head_kv", &d->n_head_kv) || !get_u32(f, "head_dim", &d->head_dim) ||
        !get_u32(f, "n_ff", &d->n_ff) || !get_u32(f, "n_vocab", &d->n_vocab) ||
        !get_double(f, "rope_base", &d->rope_base) || !get_double(f, "rms_eps", &d->rms_eps))
        return 0;

    /* /tokens fixes T */
    hid_t ds = -1;
    int r = open_dataset(f, "/tokens", &ds);
    if (r == 0) set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "dataset /tokens is missing");
    if (r != 1) return 0;
    hid_t sp = H5Dget_space(ds);
    hsize_t T = 0;
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank == 1) H5Sget_simple_extent_dims(sp, &T, NULL);
    if (sp >= 0) H5Sclose(sp);
    if (T < 1 || T > MAX_DIM) {
        if (rank == 1)
            set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "/tokens: must have 1..%u entries, found %llu", MAX_DIM,
                    (unsigned long long)T);
        else
            set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "/tokens: must be 1-d, found rank %d", rank);
        H5Dclose(ds);
        return 0;
    }
    d->n_tok = (uint32_t)T;
    if (check_dims(d, f->err, sizeof f->err) || !check_dataset(f, "/tokens", ds, H5T_INTEGER, 1, &T)) {
        H5Dclose(ds);
        return 0;
    }
    f->tokens = malloc((size_t)T * sizeof(int32_t));
    int ok = f->tokens && H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, f->tokens) >= 0;
    H5Dclose(ds);
    if (!ok) {
        set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "/tokens: read failed: %s", f->tokens ? h5_detail(h5) : "out of memory");
        return 0;
    }
    for (uint32_t t = 0; t < d->n_tok; t++)
        if (f->tokens[t] < 0 || (uint32_t)f->tokens[t] >= d->n_vocab) {
            set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "/tokens[%" PRIu32 "] = %" PRId32 ": outside [0, n_vocab = %" PRIu32 ")",
                    t, f->tokens[t], d->n_vocab);
            return 0;
        }

    if (hp) {
        vkllm_fixture_dims m;
        vkllm_fixture_dims_from_hparams(&m, hp, d->n_tok);
        const struct { const char *name; uint32_t file, model; } c[] = {
            { "n_layer", d->n_layer, m.n_layer }, { "n_embd", d->n_embd, m.n_embd }, { "n_head", d->n_head, m.n_head },
            { "n_head_kv", d->n_head_kv, m.n_head_kv }, { "head_dim", d->head_dim, m.head_dim },
            { "n_ff", d->n_ff, m.n_ff }, { "n_vocab", d->n_vocab, m.n_vocab },
        };
        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
            if (c[i].file != c[i].model) {
                set_err(f->err, sizeof f->err, VKLLM_ERROR_MISMATCH,
                        "fixture attribute '%s' = %" PRIu32 " but the model has %" PRIu32 ": fixture of another model?",
                        c[i].name, c[i].file, c[i].model);
                return -1;
            }
        /* stored as double by us, possibly as float32 by others: compare at float precision */
        if (fabs(d->rope_base - m.rope_base) > 1e-6 * m.rope_base || fabs(d->rms_eps - m.rms_eps) > 1e-6 * m.rms_eps) {
            set_err(f->err, sizeof f->err, VKLLM_ERROR_MISMATCH,
                    "fixture rope_base = %g, rms_eps = %g but the model has %g, %g: fixture of another model?", d->rope_base,
                    d->rms_eps, m.rope_base, m.rms_eps);
            return -1;
        }
    }
    return 1;
}

vkllm_status vkllm_fixture_open(const char *path, const vkllm_phi3_hparams *hp, vkllm_fixture **out, char *err, size_t n)
{
    char h5[160];
    if (out) *out = NULL;
    if (!path || !out) return set_err(err, n, VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_fixture_open: NULL argument");
    quiet_hdf5();
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return set_err(err, n, is < 0 ? VKLLM_ERROR_IO : VKLLM_ERROR_BAD_FILE, "%s: %s", path,
                       is < 0 ? "cannot open (missing or unreadable)" : "not an HDF5 file");
    vkllm_fixture *f = calloc(1, sizeof *f);
    if (!f) return set_err(err, n, VKLLM_ERROR_OUT_OF_HOST_MEMORY, "out of memory");
    f->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f->file < 0) {
        free(f);
        return set_err(err, n, VKLLM_ERROR_BAD_FILE, "%s: cannot open as HDF5 (truncated or damaged?): %s", path,
                           h5_detail(h5));
    }
    int r = read_header(f, hp);
    if (r != 1) {
        vkllm_status s = r < 0 ? VKLLM_ERROR_MISMATCH : VKLLM_ERROR_BAD_FILE;
        set_err(err, n, s, "%s: %s", path, f->err);
        vkllm_fixture_close(f, NULL, 0);
        return s;
    }
    *out = f;
    return VKLLM_OK;
}

const vkllm_fixture_dims *vkllm_fixture_get_dims(const vkllm_fixture *f) { return f ? &f->d : NULL; }
const int32_t *vkllm_fixture_tokens(const vkllm_fixture *f) { return f ? f->tokens : NULL; }
const char *vkllm_fixture_error(const vkllm_fixture *f) { return f ? f->err : "NULL fixture"; }

vkllm_status vkllm_fixture_read(vkllm_fixture *f, int layer, const char *name, float *out, size_t cap, int *found)
{
    char path[96], h5[160];
    if (found) *found = 0;
    if (!f || !name || !out || !found) return VKLLM_ERROR_INVALID_ARGUMENT;
    f->err[0] = 0;
    if (f->writing) return set_err(f->err, sizeof f->err, VKLLM_ERROR_INVALID_ARGUMENT, "fixture opened for writing");
    uint32_t w = vkllm_fixture_width(&f->d, layer, name);
    if (!w || !vkllm_fixture_path(path, sizeof path, layer, name))
        return set_err(f->err, sizeof f->err, VKLLM_ERROR_INVALID_ARGUMENT, "(layer %d, '%.40s') is not a checkpoint", layer,
                       name);
    const hsize_t dims[2] = { f->d.n_tok, w };
    if (cap < (size_t)dims[0] * dims[1])
        return set_err(f->err, sizeof f->err, VKLLM_ERROR_INVALID_ARGUMENT, "%s: needs %llu floats, the buffer holds %zu",
                       path, (unsigned long long)(dims[0] * dims[1]), cap);
    hid_t ds = -1;
    int r = open_dataset(f, path, &ds);
    if (r == 0) return VKLLM_OK;
    if (r < 0) return VKLLM_ERROR_BAD_FILE;
    if (!check_dataset(f, path, ds, H5T_FLOAT, 2, dims)) {
        H5Dclose(ds);
        return VKLLM_ERROR_BAD_FILE;
    }
    int ok = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    H5Dclose(ds);
    if (!ok) return set_err(f->err, sizeof f->err, VKLLM_ERROR_BAD_FILE, "%s: read failed: %s", path, h5_detail(h5));
    *found = 1;
    return VKLLM_OK;
}

vkllm_status vkllm_fixture_close(vkllm_fixture *f, char *err, size_t n)
{
    char h5[160];
    if (!f) return VKLLM_OK;
    vkllm_status s = VKLLM_OK;
    if (f->file >= 0 && H5Fclose(f->file) < 0)
        s = set_err(err, n, VKLLM_ERROR_IO, "closing the fixture failed: %s", h5_detail(h5));
    free(f->tokens);
    free(f);
    return s;
}
