/* dalle-c convert MODEL -o OUT: any model file rewritten with its float tensors stored
 * as f16, bf16 or f32 (weights/FORMAT.md), every config key and blob kept as it is.
 * The loaders widen 16-bit tensors to their f32 parameters (wf_reader_load), so the
 * result generates, scores and serves as the original does, at half the size.
 * --sample sets or removes the sampling settings the model recommends (sample.* keys,
 * pipeline/model_file.h), its tensors then kept as stored unless --dtype says otherwise. */
#include "pipeline/args.h"
#include "pipeline/commands.h"
#include "pipeline/model_file.h"
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
            "usage: dalle-c convert MODEL -o OUT [--dtype f16|bf16|f32|keep] [--level N]\n"
            "                         [--sample KEY=VALUE[,KEY=VALUE...]|none]\n"
            "Writes OUT: MODEL (a complete model, a dVAE, a scorer, any dalle-c model file) with\n"
            "every tensor stored as --dtype (f16 by default; rounded to nearest even, as PyTorch's\n"
            ".half() and .bfloat16()), its config keys and blobs (the tokenizer) as they are.\n"
            "  --dtype f16|bf16|f32   f16 keeps 11 significant bits, bf16 8 bits and f32's range;\n"
            "          keep           every tensor as it is stored, bit for bit\n"
            "  --level N              zstd level 1..22 (%d)\n"
            "  --sample KEY=VALUE,... the sampling settings the model recommends, used by\n"
            "                         generation and serve for options not given: KEY is\n"
            "                         temperature (0..100), top_k (0..16777216), top_p ((0, 1]),\n"
            "                         guidance (0..100) or candidate_temperature (0..100: the\n"
            "                         temperature when --candidates is above 1); repeatable.\n"
            "                         --sample none removes MODEL's (then the built-in defaults\n"
            "                         apply). With --sample and no --dtype, tensors are kept as\n"
            "                         stored\n"
            "Written atomically (a temporary file renamed over OUT), so OUT may be MODEL. A\n"
            "training checkpoint converts only with --dtype f32 (or keep): --resume needs its\n"
            "f32 state.\n"
            "Exit status: 0 ok, 1 unreadable MODEL or OUT not writable, 2 usage.\n",
            WF_DEFAULT_LEVEL);
}

/* 0 with *out set, 1 for "keep" (tensors copied as stored), -1 when unknown. */
static int parse_dtype(const char *s, wf_dtype *out)
{
    if (strcmp(s, "keep") == 0) return 1;
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

/* Tensor e widened to f32 and added to w as dtype (the writer rounds); with keep, its
 * stored bits added as they are. */
static int convert_tensor(wf_reader_t *r, const wf_entry_t *e, wf_writer_t *w, wf_dtype dtype,
                          int keep, char err[WF_ERR_SIZE])
{
    /* the reader refused at open a directory size its frame cannot hold */
    const size_t elem = keep ? wf_dtype_size(e->dtype) : sizeof(float);
    void *buf = e->numel <= SIZE_MAX / elem ? malloc(e->numel ? (size_t)e->numel * elem : 1) : NULL;
    if (!buf) {
        snprintf(err, WF_ERR_SIZE, "%.160s: out of memory for tensor \"%.60s\"", wf_reader_path(r), e->name);
        return -1;
    }
    int st = keep ? wf_reader_load_raw(r, e, buf, err) ||
                        wf_writer_add_raw(w, e->name, e->dtype, e->ndim, e->shape, buf, err)
                  : wf_reader_load_entry(r, e, buf, err) ||
                        wf_writer_add_tensor(w, e->name, dtype, e->ndim, e->shape, buf, err);
    free(buf);
    return st ? -1 : 0;
}

typedef struct {
    wf_dtype dtype;
    int keep;            /* tensors as stored (--dtype keep) */
    int dtype_given;
    int level;
    wf_config_t *sample; /* sample.* keys --sample sets */
    int drop_sample;     /* --sample none: MODEL's sample.* keys left out */
} convert_opts_t;

static int is_sample_key(const char *key)
{
    return strncmp(key, MF_SAMPLE_PREFIX, strlen(MF_SAMPLE_PREFIX)) == 0;
}

/* OUT's config: MODEL's keys in file order, typed as stored, less its sample.* keys after
 * --sample none, with the keys --sample sets (an existing one keeps its place). NULL
 * when out of memory. */
static wf_config_t *output_config(const wf_config_t *in, const convert_opts_t *o)
{
    wf_config_t *c = wf_config_create();
    int bad = !c;
    for (int i = 0; !bad && i < wf_config_count(in); i++)
        if (!o->drop_sample || !is_sample_key(wf_config_key(in, i)))
            bad = wf_config_copy_entry(c, in, i);
    for (int i = 0; !bad && i < wf_config_count(o->sample); i++) bad = wf_config_copy_entry(c, o->sample, i);
    if (bad) {
        wf_config_free(c);
        return NULL;
    }
    return c;
}

/* OUT from IN, atomically; counts what it wrote and hands back OUT's config (*written,
 * the caller's to free). 0, or -1 with err. */
static int convert_file(const char *in, const char *out, const convert_opts_t *o, int *tensors,
                        int *blobs, uint64_t *in_size, wf_config_t **written,
                        char err[WF_ERR_SIZE])
{
    wf_reader_t *r = NULL;
    wf_writer_t *w = NULL;
    wf_config_t *cfg = NULL;
    int ok = 0;
    *written = NULL;
    if (wf_reader_open(&r, in, err)) goto done;
    *in_size = wf_reader_file_size(r);
    const char *opt = optimizer_state(r);
    if (opt && !o->keep && o->dtype != WF_F32) {
        snprintf(err, WF_ERR_SIZE, "%.80s is a training checkpoint (\"%.40s\"): --resume needs "
                 "its f32 state, so it converts only with --dtype f32", in, opt);
        goto done;
    }
    if (!(cfg = output_config(wf_reader_config(r), o))) {
        snprintf(err, WF_ERR_SIZE, "%.160s: out of memory for the config", in);
        goto done;
    }
    if (wf_writer_open(&w, out, cfg, o->level, err)) goto done;
    for (int i = 0; i < wf_reader_count(r); i++) {
        const wf_entry_t *e = wf_reader_entry(r, i);
        if (e->kind == WF_BLOB ? copy_blob(r, e, w, err) : convert_tensor(r, e, w, o->dtype, o->keep, err))
            goto done;
        ++*(e->kind == WF_BLOB ? blobs : tensors);
    }
    ok = wf_writer_close(w, err) == WF_OK;
    w = NULL;
    if (ok) {
        *written = cfg;
        cfg = NULL;
    }
done:
    wf_writer_abort(w);
    wf_config_free(cfg);
    wf_reader_close(r);
    return ok ? 0 : -1;
}

/* --sample's value: "none", or KEY=VALUE items separated by commas, into o. 0, or 2 (a
 * usage error) after printing why. */
static int parse_sample(const char *spec, convert_opts_t *o)
{
    char items[512], err[256];
    if (snprintf(items, sizeof items, "%s", spec) >= (int)sizeof items) {
        fprintf(stderr, "%s: --sample '%.40s...' is too long\n", CMD, spec);
        return 2;
    }
    char *save = NULL;
    int n = 0;
    for (char *item = strtok_r(items, ",", &save); item; item = strtok_r(NULL, ",", &save), n++) {
        if (strcmp(item, "none") == 0) o->drop_sample = 1;
        else if (mf_sample_set(o->sample, item, err)) {
            fprintf(stderr, "%s: --sample: %s\n", CMD, err);
            return 2;
        }
    }
    if (n == 0) {
        fprintf(stderr, "%s: --sample wants KEY=VALUE (" MF_SAMPLE_NAMES ") or none\n", CMD);
        return 2;
    }
    return 0;
}

/* "sample.temperature = 0.5, sample.guidance = 1.5" of the config written, or that it
 * has none. */
static void print_sample_keys(const wf_config_t *c)
{
    int n = 0;
    printf("sampling settings:");
    for (int i = 0; i < wf_config_count(c); i++)
        if (is_sample_key(wf_config_key(c, i)))
            printf("%s %s = %s", n++ ? "," : "", wf_config_key(c, i), wf_config_text(c, i));
    printf("%s\n", n ? "" : " none (generation uses the built-in defaults)");
}

int cmd_convert_model(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *in = NULL, *out = NULL;
    convert_opts_t o = {.dtype = WF_F16, .sample = wf_config_create()};
    int rc = 0, sample_given = 0;
    if (!o.sample) {
        fprintf(stderr, "%s: out of memory\n", CMD);
        return 1;
    }
    for (int i = 1; i < argc && !rc; i++) {
        const char *v;
        if (strcmp(argv[i], "-o") == 0) {
            if (!(out = arg_value(CMD, argc, argv, &i))) rc = 2;
        } else if (strcmp(argv[i], "--dtype") == 0) {
            if (!(v = arg_value(CMD, argc, argv, &i))) {
                rc = 2;
            } else if ((o.keep = parse_dtype(v, &o.dtype)) < 0) {
                fprintf(stderr, "%s: unknown --dtype '%s' (f16, bf16, f32 or keep)\n", CMD, v);
                rc = 2;
            }
            o.dtype_given = 1;
        } else if (strcmp(argv[i], "--level") == 0) {
            if (!(v = arg_value(CMD, argc, argv, &i)) || arg_int(CMD, "--level", v, 1, 22, &o.level)) rc = 2;
        } else if (strcmp(argv[i], "--sample") == 0) {
            rc = (v = arg_value(CMD, argc, argv, &i)) ? parse_sample(v, &o) : 2;
            sample_given = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "%s: unknown option '%s' (dalle-c convert --help)\n", CMD, argv[i]);
            rc = 2;
        } else if (in) {
            fprintf(stderr, "%s: one MODEL at a time (got '%s' too)\n", CMD, argv[i]);
            rc = 2;
        } else {
            in = argv[i];
        }
    }
    if (!rc && (!in || !out)) {
        fprintf(stderr, "%s: needs MODEL and -o OUT (dalle-c convert --help)\n", CMD);
        rc = 2;
    }
    /* asked to change the sampling settings only: the weights stay as they are */
    if (sample_given && !o.dtype_given) o.keep = 1;
    char err[WF_ERR_SIZE];
    int tensors = 0, blobs = 0;
    uint64_t in_size = 0;
    wf_config_t *written = NULL;
    if (!rc && convert_file(in, out, &o, &tensors, &blobs, &in_size, &written, err)) {
        fprintf(stderr, "%s: %s\n", CMD, err);
        rc = 1;
    }
    wf_config_free(o.sample);
    if (rc) return rc;
    struct stat st;
    unsigned long long out_size = stat(out, &st) == 0 ? (unsigned long long)st.st_size : 0;
    printf("wrote %s: %d tensors %s%s, %d blob%s as is; %llu -> %llu bytes (%.1f%%)\n", out, tensors,
           o.keep ? "as stored" : "as ", o.keep ? "" : wf_dtype_name(o.dtype), blobs, blobs == 1 ? "" : "s",
           (unsigned long long)in_size, out_size, in_size ? 100.0 * (double)out_size / (double)in_size : 0.0);
    if (sample_given) print_sample_keys(written);
    wf_config_free(written);
    return 0;
}
