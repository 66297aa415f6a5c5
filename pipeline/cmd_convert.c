/* dalle-c convert MODEL -o OUT: any model file rewritten with its float tensors stored
 * as f16, bf16 or f32 (weights/FORMAT.md), every config key and blob kept as it is.
 * The loaders widen 16-bit tensors to their f32 parameters (wf_reader_load), so the
 * result generates, scores and serves as the original does, at half the size. */
#include "pipeline/args.h"
#include "pipeline/commands.h"
#include "weights/weights.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const CMD = "dalle-c convert";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: dalle-c convert MODEL -o OUT [--dtype f16|bf16|f32] [--level N]\n"
            "Writes OUT: MODEL (a complete model, a dVAE, a scorer, any dalle-c model file) with\n"
            "every tensor stored as --dtype (f16 by default; rounded to nearest even, as PyTorch's\n"
            ".half() and .bfloat16()), its config keys and blobs (the tokenizer) as they are.\n"
            "  --dtype f16|bf16|f32   f16 keeps 11 significant bits, bf16 8 bits and f32's range\n"
            "  --level N              zstd level 1..22 (%d)\n"
            "Written atomically (a temporary file renamed over OUT), so OUT may be MODEL. A\n"
            "training checkpoint converts only with --dtype f32: --resume needs its f32 state.\n"
            "Exit status: 0 ok, 1 unreadable MODEL or OUT not writable, 2 usage.\n",
            WF_DEFAULT_LEVEL);
}

static int parse_dtype(const char *s, wf_dtype *out)
{
    static const wf_dtype all[] = {WF_F32, WF_F16, WF_BF16};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (strcmp(s, wf_dtype_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -1;
}

/* A training checkpoint keeps its AdamW moments as opt.* tensors (docs/MODEL.md); the
 * name of the first, or NULL for a model. */
static const char *optimizer_state(const wf_reader_t *r)
{
    for (int i = 0; i < wf_reader_count(r); i++) {
        const wf_entry_t *e = wf_reader_entry(r, i);
        if (e->kind == WF_TENSOR && strncmp(e->name, "opt.", 4) == 0) return e->name;
    }
    return NULL;
}

static int copy_blob(wf_reader_t *r, const wf_entry_t *e, wf_writer_t *w, char err[WF_ERR_SIZE])
{
    void *data = NULL;
    size_t n = 0;
    int st = wf_reader_blob(r, e->name, &data, &n, err) || wf_writer_add_blob(w, e->name, data, n, err);
    free(data);
    return st ? -1 : 0;
}

/* Tensor e widened to f32 and added to w as dtype (the writer rounds). */
static int convert_tensor(wf_reader_t *r, const wf_entry_t *e, wf_writer_t *w, wf_dtype dtype,
                          char err[WF_ERR_SIZE])
{
    /* the buffer is sized by the directory before the frame is read: a zstd block of at
     * least 4 bytes holds at most 128 KiB, so a larger claim is a damaged directory */
    if (e->raw_size / 32768 > e->stored_size) {
        snprintf(err, WF_ERR_SIZE, "%.120s: tensor \"%.60s\" is corrupt (more bytes than its frame can hold)",
                 wf_reader_path(r), e->name);
        return -1;
    }
    float *buf = e->numel <= SIZE_MAX / sizeof(float) ? malloc(e->numel ? (size_t)e->numel * sizeof(float) : 1)
                                                      : NULL;
    if (!buf) {
        snprintf(err, WF_ERR_SIZE, "%.160s: out of memory for tensor \"%.60s\"", wf_reader_path(r), e->name);
        return -1;
    }
    int st = wf_reader_load_entry(r, e, buf, err) ||
             wf_writer_add_tensor(w, e->name, dtype, e->ndim, e->shape, buf, err);
    free(buf);
    return st ? -1 : 0;
}

/* OUT from IN, atomically; counts what it wrote. 0, or -1 with err. */
static int convert_file(const char *in, const char *out, wf_dtype dtype, int level, int *tensors,
                        int *blobs, uint64_t *in_size, char err[WF_ERR_SIZE])
{
    wf_reader_t *r = NULL;
    wf_writer_t *w = NULL;
    int ok = 0;
    if (wf_reader_open(&r, in, err)) goto done;
    *in_size = wf_reader_file_size(r);
    const char *opt = optimizer_state(r);
    if (opt && dtype != WF_F32) {
        snprintf(err, WF_ERR_SIZE, "%.80s is a training checkpoint (\"%.40s\"): --resume needs "
                 "its f32 state, so it converts only with --dtype f32", in, opt);
        goto done;
    }
    /* the reader's config holds every key in file order, typed as stored */
    if (wf_writer_open(&w, out, wf_reader_config(r), level, err)) goto done;
    for (int i = 0; i < wf_reader_count(r); i++) {
        const wf_entry_t *e = wf_reader_entry(r, i);
        if (e->kind == WF_BLOB ? copy_blob(r, e, w, err) : convert_tensor(r, e, w, dtype, err)) goto done;
        ++*(e->kind == WF_BLOB ? blobs : tensors);
    }
    ok = wf_writer_close(w, err) == WF_OK;
    w = NULL;
done:
    wf_writer_abort(w);
    wf_reader_close(r);
    return ok ? 0 : -1;
}

int cmd_convert_model(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *in = NULL, *out = NULL;
    wf_dtype dtype = WF_F16;
    int level = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-o") == 0) {
            if (!(out = arg_value(CMD, argc, argv, &i))) return 2;
        } else if (strcmp(argv[i], "--dtype") == 0) {
            if (!(v = arg_value(CMD, argc, argv, &i))) return 2;
            if (parse_dtype(v, &dtype)) {
                fprintf(stderr, "%s: unknown --dtype '%s' (f16, bf16 or f32)\n", CMD, v);
                return 2;
            }
        } else if (strcmp(argv[i], "--level") == 0) {
            if (!(v = arg_value(CMD, argc, argv, &i)) || arg_int(CMD, "--level", v, 1, 22, &level)) return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "%s: unknown option '%s' (dalle-c convert --help)\n", CMD, argv[i]);
            return 2;
        } else if (in) {
            fprintf(stderr, "%s: one MODEL at a time (got '%s' too)\n", CMD, argv[i]);
            return 2;
        } else {
            in = argv[i];
        }
    }
    if (!in || !out) {
        fprintf(stderr, "%s: needs MODEL and -o OUT (dalle-c convert --help)\n", CMD);
        return 2;
    }
    char err[WF_ERR_SIZE];
    int tensors = 0, blobs = 0;
    uint64_t in_size = 0;
    if (convert_file(in, out, dtype, level, &tensors, &blobs, &in_size, err)) {
        fprintf(stderr, "%s: %s\n", CMD, err);
        return 1;
    }
    struct stat st;
    unsigned long long out_size = stat(out, &st) == 0 ? (unsigned long long)st.st_size : 0;
    printf("wrote %s: %d tensors as %s, %d blob%s as is; %llu -> %llu bytes (%.1f%%)\n", out, tensors,
           wf_dtype_name(dtype), blobs, blobs == 1 ? "" : "s", (unsigned long long)in_size, out_size,
           in_size ? 100.0 * (double)out_size / (double)in_size : 0.0);
    return 0;
}
