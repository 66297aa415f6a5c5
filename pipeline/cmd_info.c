/* dalle-c info MODEL: what a model file holds (configs, parameter counts per part, the
 * tensor table, sizes) after checking every checksum in it. */
#include "pipeline/commands.h"
#include "weights/weights.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dalle-c info MODEL [--no-verify]\n"
            "Prints a model file's configs, parameter counts per part (dvae, gpt, rerank, ...),\n"
            "tensor table, blobs, file size and compression ratio. Every tensor is decompressed\n"
            "and its checksums checked first unless --no-verify is given.\n"
            "Exit status: 0 ok, 1 damaged or unreadable file, 2 usage error.\n");
}

/* "12,345,678" */
static const char *commas(char *buf, unsigned long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", v), k = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[k++] = ',';
        buf[k++] = tmp[i];
    }
    buf[k] = 0;
    return buf;
}

static void shape_text(char *buf, size_t n, const wf_entry_t *e)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < e->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)e->shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static size_t part_len(const char *name)
{
    const char *dot = strchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

int cmd_info(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *path = NULL;
    int verify = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-verify") == 0) {
            verify = 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "dalle-c info: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "dalle-c info: one MODEL at a time\n");
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char err[WF_ERR_SIZE];
    wf_reader_t *r;
    if (wf_reader_open(&r, path, err) != WF_OK || (verify && wf_reader_verify(r, err) != WF_OK)) {
        fprintf(stderr, "%s\n", err);
        if (r) wf_reader_close(r);
        return 1;
    }
    char a[32], b[32];
    int major, minor, n = wf_reader_count(r);
    wf_reader_version(r, &major, &minor);
    printf("%s: dalle-c model file, format %d.%d, %s bytes%s\n", path, major, minor,
           commas(a, wf_reader_file_size(r)), verify ? ", all checksums ok" : " (not verified)");

    const wf_config_t *cfg = wf_reader_config(r);
    printf("\nconfig (%d values):\n", wf_config_count(cfg));
    for (int i = 0; i < wf_config_count(cfg); i++)
        printf("  %s = %s\n", wf_config_key(cfg, i), wf_config_text(cfg, i));

    /* parameter counts per part, in order of first appearance */
    printf("\nparameters:\n");
    unsigned long long total = 0, raw = 0, stored = 0;
    int ntensors = 0, nblobs = 0;
    for (int i = 0; i < n; i++) {
        const wf_entry_t *e = wf_reader_entry(r, i);
        raw += e->raw_size;
        stored += e->stored_size;
        if (e->kind != WF_TENSOR) {
            nblobs++;
            continue;
        }
        ntensors++;
        total += e->numel;
        size_t pl = part_len(e->name);
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) {
            const wf_entry_t *f = wf_reader_entry(r, j);
            seen = f->kind == WF_TENSOR && part_len(f->name) == pl && memcmp(f->name, e->name, pl) == 0;
        }
        if (seen) continue;
        unsigned long long count = 0;
        int tensors = 0;
        for (int j = i; j < n; j++) {
            const wf_entry_t *f = wf_reader_entry(r, j);
            if (f->kind == WF_TENSOR && part_len(f->name) == pl && memcmp(f->name, e->name, pl) == 0) {
                count += f->numel;
                tensors++;
            }
        }
        printf("  %-12.*s %15s  (%d tensors)\n", (int)pl, e->name, commas(a, count), tensors);
    }
    printf("  %-12s %15s  (%d tensors)\n", "total", commas(a, total), ntensors);

    printf("\ntensors:\n  %-40s %-5s %-22s %14s %14s %7s\n", "name", "dtype", "shape", "bytes", "stored",
           "ratio");
    for (int i = 0; i < n; i++) {
        const wf_entry_t *e = wf_reader_entry(r, i);
        if (e->kind != WF_TENSOR) continue;
        char shape[160];
        shape_text(shape, sizeof shape, e);
        printf("  %-40s %-5s %-22s %14s %14s %7.3f\n", e->name, wf_dtype_name(e->dtype), shape,
               commas(a, e->raw_size), commas(b, e->stored_size),
               e->stored_size ? (double)e->raw_size / (double)e->stored_size : 0.0);
    }
    if (nblobs) {
        printf("\nblobs:\n");
        for (int i = 0; i < n; i++) {
            const wf_entry_t *e = wf_reader_entry(r, i);
            if (e->kind == WF_BLOB)
                printf("  %-40s %14s bytes, %s stored\n", e->name, commas(a, e->raw_size),
                       commas(b, e->stored_size));
        }
    }
    printf("\ndata: %s bytes, %s stored (compression ratio %.3f); file %s bytes\n", commas(a, raw),
           commas(b, stored), stored ? (double)raw / (double)stored : 0.0,
           commas((char[32]){0}, wf_reader_file_size(r)));
    wf_reader_close(r);
    return 0;
}
