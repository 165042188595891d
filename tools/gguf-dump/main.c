/* gguf-dump: print a GGUF file's metadata and tensor table, after the reader's full validation. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkllm/gguf.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: gguf-dump [options] FILE.gguf\n"
        "\n"
        "Validates FILE as the vkllm runtime does (every count, size and offset checked) and prints its\n"
        "header, metadata (arrays abbreviated to their first elements and their length) and tensor table\n"
        "(name, type, shape with ne[0] = row length first, bytes, absolute file offset). Exits 1 with the\n"
        "reader's message if the file is malformed.\n"
        "\n"
        "options:\n"
        "  --full          print arrays and strings whole\n"
        "  --elems N       array elements to show (default 8)\n"
        "  --no-meta       skip the metadata\n"
        "  --no-tensors    skip the tensor table\n"
        "  -h, --help\n");
}

static uint64_t max_elems = 8, max_str = 120;

static void print_string(const char *s, uint64_t len)
{
    putchar('"');
    uint64_t n = len < max_str ? len : max_str;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
    if (n < len) printf("... (%" PRIu64 " bytes)", len);
}

static void print_value(vkllm_gguf *g, vkllm_gguf_ref r)
{
    uint64_t u;
    int64_t i;
    double f;
    int b;
    const char *s;
    switch (r.type) {
    case VKLLM_GGUF_UINT8: case VKLLM_GGUF_UINT16: case VKLLM_GGUF_UINT32: case VKLLM_GGUF_UINT64:
        if (vkllm_gguf_ref_u64(g, r, &u) == VKLLM_OK) printf("%" PRIu64, u);
        break;
    case VKLLM_GGUF_INT8: case VKLLM_GGUF_INT16: case VKLLM_GGUF_INT32: case VKLLM_GGUF_INT64:
        if (vkllm_gguf_ref_i64(g, r, &i) == VKLLM_OK) printf("%" PRId64, i);
        break;
    case VKLLM_GGUF_FLOAT32: case VKLLM_GGUF_FLOAT64:
        if (vkllm_gguf_ref_f64(g, r, &f) == VKLLM_OK) printf("%.9g", f);
        break;
    case VKLLM_GGUF_BOOL:
        if (vkllm_gguf_ref_bool(g, r, &b) == VKLLM_OK) fputs(b ? "true" : "false", stdout);
        break;
    case VKLLM_GGUF_STRING:
        if (vkllm_gguf_ref_string(g, r, &s, &u) == VKLLM_OK) print_string(s, u);
        break;
    case VKLLM_GGUF_ARRAY: {
        uint64_t n = vkllm_gguf_ref_len(r);
        printf("[%s x %" PRIu64 "] [", vkllm_gguf_type_name(vkllm_gguf_ref_elem_type(r)), n);
        uint64_t show = n < max_elems ? n : max_elems;
        for (uint64_t k = 0; k < show; k++) {
            if (k) fputs(", ", stdout);
            print_value(g, vkllm_gguf_ref_at(r, k));
        }
        if (show < n) printf(", ... %" PRIu64 " more", n - show);
        putchar(']');
        break;
    }
    default:
        fputs("?", stdout);
    }
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int meta = 1, tensors = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--full")) {
            max_elems = UINT64_MAX;
            max_str = UINT64_MAX;
        } else if (!strcmp(argv[i], "--elems")) {
            char *end;
            if (i + 1 >= argc || (max_elems = strtoull(argv[i + 1], &end, 10), *end) || argv[i + 1][0] == '-') {
                fprintf(stderr, "gguf-dump: --elems needs a whole number\n");
                return 2;
            }
            i++;
        } else if (!strcmp(argv[i], "--no-meta")) {
            meta = 0;
        } else if (!strcmp(argv[i], "--no-tensors")) {
            tensors = 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "gguf-dump: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "gguf-dump: one file at a time ('%s' and '%s')\n", path, argv[i]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    vkllm_gguf *g;
    vkllm_status s = vkllm_gguf_open(path, &g, err, sizeof err);
    if (s != VKLLM_OK) {
        fprintf(stderr, "gguf-dump: %s (%s)\n", err, vkllm_strerror(s));
        return 1;
    }
    printf("%s: GGUF v%" PRIu32 ", %" PRIu64 " bytes, %" PRIu64 " keys, %" PRIu64 " tensors, alignment %" PRIu32
           ", data at byte %" PRIu64 "\n", path, vkllm_gguf_version(g), vkllm_gguf_file_size(g),
           vkllm_gguf_n_keys(g), vkllm_gguf_n_tensors(g), vkllm_gguf_alignment(g), vkllm_gguf_data_offset(g));
    if (meta) {
        printf("\nmetadata:\n");
        for (uint64_t i = 0; i < vkllm_gguf_n_keys(g); i++) {
            vkllm_gguf_ref r = vkllm_gguf_key_ref(g, i);
            printf("  %-45s %-6s = ", vkllm_gguf_key(g, i), vkllm_gguf_type_name(r.type));
            print_value(g, r);
            putchar('\n');
        }
    }
    if (tensors) {
        printf("\ntensors:\n  %5s  %-40s %-5s %-28s %14s %14s\n", "#", "name", "type", "shape", "bytes", "offset");
        uint64_t total = 0;
        for (uint64_t i = 0; i < vkllm_gguf_n_tensors(g); i++) {
            const vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
            char shape[128];
            size_t k = (size_t)snprintf(shape, sizeof shape, "[");
            for (uint32_t d = 0; d < t->n_dims && k < sizeof shape; d++)
                k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
            if (k < sizeof shape) snprintf(shape + k, sizeof shape - k, "]");
            printf("  %5" PRIu64 "  %-40s %-5s %-28s %14" PRIu64 " %14" PRIu64 "\n", i, t->name,
                   vkllm_dtype_name(t->type), shape, t->bytes, t->offset);
            total += t->n_elems;
        }
        printf("  %" PRIu64 " tensors, %" PRIu64 " elements\n", vkllm_gguf_n_tensors(g), total);
    }
    vkllm_gguf_close(g);
    return 0;
}
