/* dalle-c convert (docs/CLI.md): a tiny complete model with a scorer converted to f16 and
 * bf16 loads through every part's loader (dVAE, transformer, scorer) with parameters equal
 * to the f32 ones rounded to the dtype, keeps its config and tokenizer blob, generates,
 * reranks and prints; f32 reproduces the file byte for byte; a lone dVAE converts; a
 * training checkpoint converts only to f32; bad input exits 1 or 2 with one line and
 * leaves nothing behind; -o MODEL replaces the file atomically. */
#include "dvae/dvae.h"
#include "rerank/rerank.h"
#include "tests/generate_testlib.h"
#include "tests/testutil.h"
#include "tests/weights_testlib.h"
#include "transformer/transformer.h"
#include "weights/weights.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *bin;
static char model[600]; /* the tiny model with a scorer, all f32 */

static int exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Leftover PATH.tmp.* files of an aborted or finished write in the scratch directory. */
static int temp_files_left(void)
{
    DIR *d = opendir(test_tmpdir());
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static float rounded(float x, wf_dtype dtype)
{
    return dtype == WF_F16 ? wf_f16_to_f32(wf_f32_to_f16(x))
         : dtype == WF_BF16 ? wf_bf16_to_f32(wf_f32_to_bf16(x)) : x;
}

/* got[i] is want[i] rounded to dtype, bit for bit; *changed counts values the rounding
 * moved (so a file left in f32 cannot pass). */
static int equal_rounded(const char *label, const float *got, size_t ng, const float *want,
                         size_t nw, wf_dtype dtype, size_t *changed)
{
    size_t bad = 0, moved = 0;
    for (size_t i = 0; ng == nw && i < nw; i++) {
        float r = rounded(want[i], dtype);
        bad += memcmp(&got[i], &r, sizeof r) != 0;
        moved += r != want[i];
    }
    printf("  %s: %zu values, %zu moved by rounding to %s, %zu wrong\n", label, nw, moved,
           wf_dtype_name(dtype), bad);
    *changed += moved;
    return check(ng == nw && bad == 0, "%s: %zu of %zu values are not the rounded f32 ones (count %zu vs %zu)",
                 label, bad, nw, ng, nw);
}

/* Every part of `converted` loads through its own loader with the parameters of `orig`
 * rounded to dtype. */
static void check_parameters(const char *orig, const char *converted, wf_dtype dtype)
{
    char err[256];
    size_t changed = 0, na, nb;
    dvae_t *da = NULL, *db = NULL;
    if (check(dvae_load(&da, orig, 1, err) == 0 && dvae_load(&db, converted, 1, err) == 0,
              "dvae_load: %s", err))
        equal_rounded("dvae", dvae_params(db), dvae_param_count(db), dvae_params(da),
                      dvae_param_count(da), dtype, &changed);
    dvae_free(da);
    dvae_free(db);

    gpt_t *ga = NULL, *gb = NULL;
    if (check(gpt_load(&ga, orig, 0, err) == 0 && gpt_load(&gb, converted, 0, err) == 0,
              "gpt_load: %s", err)) {
        const float *pb = gpt_param_block(gb, &nb), *pa = gpt_param_block(ga, &na);
        equal_rounded("gpt", pb, nb, pa, na, dtype, &changed);
    }
    gpt_free(ga);
    gpt_free(gb);

    rerank_t *ra = NULL, *rb = NULL;
    if (check(rerank_load(&ra, NULL, orig, 1, 0, err) == 0 &&
              rerank_load(&rb, NULL, converted, 1, 0, err) == 0, "rerank_load: %s", err)) {
        const float *pb = rerank_param_block(rb, &nb), *pa = rerank_param_block(ra, &na);
        equal_rounded("rerank", pb, nb, pa, na, dtype, &changed);
    }
    rerank_free(ra);
    rerank_free(rb);
    if (dtype != WF_F32) check(changed > 0, "no parameter changed when rounded to %s", wf_dtype_name(dtype));
}

/* Same config (keys, types, values, order), same entries (order, kind, shape), tensors
 * stored as dtype, blobs byte for byte. */
static void check_layout(const char *orig, const char *converted, wf_dtype dtype)
{
    char err[WF_ERR_SIZE];
    wf_reader_t *a = NULL, *b = NULL;
    if (!check(wf_reader_open(&a, orig, err) == 0 && wf_reader_open(&b, converted, err) == 0 &&
               wf_reader_verify(b, err) == 0, "open: %s", err)) {
        wf_reader_close(a);
        wf_reader_close(b);
        return;
    }
    const wf_config_t *ca = wf_reader_config(a), *cb = wf_reader_config(b);
    int same = wf_config_count(ca) == wf_config_count(cb);
    for (int i = 0; same && i < wf_config_count(ca); i++)
        same = strcmp(wf_config_key(ca, i), wf_config_key(cb, i)) == 0 &&
               wf_config_type(ca, i) == wf_config_type(cb, i) &&
               strcmp(wf_config_text(ca, i), wf_config_text(cb, i)) == 0;
    check(same, "the config changed");
    int entries = wf_reader_count(a) == wf_reader_count(b), blobs = 0;
    for (int i = 0; entries && i < wf_reader_count(a); i++) {
        const wf_entry_t *x = wf_reader_entry(a, i), *y = wf_reader_entry(b, i);
        entries = strcmp(x->name, y->name) == 0 && x->kind == y->kind && x->ndim == y->ndim &&
                  memcmp(x->shape, y->shape, sizeof x->shape) == 0 &&
                  (y->kind == WF_BLOB || y->dtype == dtype);
        if (entries && x->kind == WF_BLOB) {
            void *bx = NULL, *by = NULL;
            size_t nx = 0, ny = 0;
            entries = wf_reader_blob(a, x->name, &bx, &nx, err) == 0 &&
                      wf_reader_blob(b, y->name, &by, &ny, err) == 0 && nx == ny && memcmp(bx, by, nx) == 0;
            free(bx);
            free(by);
            blobs++;
        }
        if (!entries) printf("  entry %d (\"%s\") differs\n", i, x->name);
    }
    check(entries, "the entries differ");
    check(wf_reader_find(b, TOK_BLOB_NAME) && blobs >= 1, "no tokenizer blob");
    printf("  %d config keys and %d entries (%d blob) as in the f32 file, tensors %s\n",
           wf_config_count(cb), wf_reader_count(b), blobs, wf_dtype_name(dtype));
    wf_reader_close(a);
    wf_reader_close(b);
}

/* The tiny generator plus a scorer sharing its tokenizer, as `rerank add` writes it. */
static int write_model_with_scorer(void)
{
    char err[256];
    const char *plain = test_tmp_path("plain.dalle"), *scorer = test_tmp_path("scorer.dalle");
    if (gt_write_model(plain, 11)) return -1;
    tok_t *tok = tok_load(plain, err);
    if (!check(tok != NULL, "tok_load: %s", err)) return -1;
    rerank_config_t c = rerank_config_default();
    c.image_size = 16;
    c.image_layers = 2;
    c.image_channels = 4;
    c.text_len = 12;
    c.text_vocab = tok_vocab_size(tok);
    c.pad_id = tok_pad_id(tok);
    c.bos_id = tok_bos_id(tok);
    c.eos_id = tok_eos_id(tok);
    c.text_layers = 1;
    c.text_heads = 2;
    c.text_width = 16;
    c.embed_dim = 8;
    rerank_t *m = NULL;
    int ok = check(rerank_create(&m, &c, 1, 0, err) == 0, "rerank_create: %s", err);
    if (ok) {
        rerank_init_params(m, 5);
        ok = check(rerank_save(m, tok, scorer, NULL, 0, NULL, err) == 0, "rerank_save: %s", err);
    }
    rerank_free(m);
    tok_free(tok);
    char *out = NULL;
    ok = ok && check(test_runf(&out, "%s rerank add %s %s -o %s", bin, plain, scorer, model) == 0,
                     "rerank add: %s", out ? out : "");
    free(out);
    return ok ? 0 : -1;
}

static void test_dtype(const char *dtype_arg, wf_dtype dtype)
{
    printf("convert %s\n", dtype_arg ? dtype_arg : "(default dtype)");
    char name[64], png[64], *out = NULL;
    snprintf(name, sizeof name, "model-%s.dalle", wf_dtype_name(dtype));
    snprintf(png, sizeof png, "gen-%s.png", wf_dtype_name(dtype));
    const char *conv = test_tmp_path(name);
    int st = test_runf(&out, "%s convert %s -o %s %s %s", bin, model, conv, dtype_arg ? "--dtype" : "",
                 dtype_arg ? dtype_arg : "");
    check(st == 0 && strstr(out, "wrote"), "convert: %d %s", st, out);
    free(out);
    check_layout(model, conv, dtype);
    check_parameters(model, conv, dtype);

    st = test_runf(&out, "%s 'a red circle' -m %s -o %s --seed 3 --candidates 2 -t 1 -q", bin, conv, test_tmp_path(png));
    check(st == 0 && exists(test_tmp_path(png)) && strstr(out, "score"), "generate from %s: %d %s", name, st, out);
    free(out);
    st = test_runf(&out, "%s rerank score -m %s 'a red circle' %s", bin, conv, test_tmp_path(png));
    check(st == 0, "rerank score: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s info %s", bin, conv);
    char want[32];
    snprintf(want, sizeof want, " %s ", wf_dtype_name(dtype));
    check(st == 0 && strstr(out, want) && strstr(out, "all checksums ok"), "info: %d %s", st, out);
    free(out);
}

/* f32 -> f32 writes the same bytes; f16 -> f32 widens exactly. */
static void test_f32(void)
{
    printf("convert --dtype f32\n");
    char *out = NULL;
    int st = test_runf(&out, "%s convert %s -o %s --dtype f32", bin, model, test_tmp_path("same.dalle"));
    check(st == 0 && gt_same_file(model, test_tmp_path("same.dalle")), "f32 of an f32 file is not the same file: %s", out);
    free(out);
    st = test_runf(&out, "%s convert %s -o %s --dtype f32 --level 19", bin, test_tmp_path("model-f16.dalle"),
             test_tmp_path("widened.dalle"));
    check(st == 0, "f16 -> f32: %d %s", st, out);
    free(out);
    check_layout(test_tmp_path("model-f16.dalle"), test_tmp_path("widened.dalle"), WF_F32);
    check_parameters(test_tmp_path("model-f16.dalle"), test_tmp_path("widened.dalle"), WF_F32);
}

static void test_lone_dvae(void)
{
    printf("a lone dVAE to bf16\n");
    char err[256], *out = NULL;
    dvae_config_t c = dvae_config_default();
    c.image_size = 16;
    c.layers = 2;
    c.channels = 8;
    c.res_blocks = 1;
    c.codebook_size = 16;
    c.code_dim = 8;
    dvae_t *a = NULL, *b = NULL;
    if (!check(dvae_create(&a, &c, 1, err) == 0, "dvae_create: %s", err)) return;
    dvae_init_params(a, 9);
    check(dvae_save(a, test_tmp_path("lone.dalle"), err) == 0, "dvae_save: %s", err);
    int st = test_runf(&out, "%s convert %s -o %s --dtype bf16", bin, test_tmp_path("lone.dalle"), test_tmp_path("lone-bf16.dalle"));
    check(st == 0, "convert: %d %s", st, out);
    free(out);
    size_t changed = 0;
    if (check(dvae_load(&b, test_tmp_path("lone-bf16.dalle"), 1, err) == 0, "dvae_load: %s", err))
        equal_rounded("dvae", dvae_params(b), dvae_param_count(b), dvae_params(a), dvae_param_count(a),
                      WF_BF16, &changed);
    check(changed > 0, "nothing rounded");
    dvae_free(a);
    dvae_free(b);
}

/* A checkpoint's weights and moments stay f32: --resume continues bit for bit. */
static void test_checkpoint(void)
{
    printf("a training checkpoint\n");
    char err[WF_ERR_SIZE], *out = NULL;
    const char *ckpt = test_tmp_path("run.dalle.ckpt");
    wf_config_t *cfg = wf_config_create();
    wf_writer_t *w = NULL;
    const float x[3] = {0.1f, 0.2f, 0.3f};
    const int64_t shape[1] = {3};
    int ok = cfg && wf_config_set_int(cfg, "train.step", 4) == 0 &&
             wf_writer_open(&w, ckpt, cfg, 0, err) == 0 &&
             wf_writer_add_tensor(w, "gpt.w", WF_F32, 1, shape, x, err) == 0 &&
             wf_writer_add_tensor(w, "opt.m.gpt.w", WF_F32, 1, shape, x, err) == 0;
    if (ok) ok = wf_writer_close(w, err) == 0;
    else wf_writer_abort(w);
    wf_config_free(cfg);
    if (!check(ok, "writing the checkpoint: %s", err)) return;

    int st = test_runf(&out, "%s convert %s -o %s", bin, ckpt, test_tmp_path("ckpt-f16.dalle"));
    check(st == 1 && strstr(out, "checkpoint") && strstr(out, "--dtype f32") && !exists(test_tmp_path("ckpt-f16.dalle")),
          "f16 checkpoint: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s convert %s -o %s --dtype f32", bin, ckpt, test_tmp_path("ckpt-f32.dalle"));
    check(st == 0 && gt_same_file(ckpt, test_tmp_path("ckpt-f32.dalle")), "f32 checkpoint: %d %s", st, out);
    free(out);
}

/* Exit status st, one line naming what is wrong (want), and no output file. */
static void expect_error(const char *label, int want_status, const char *want, const char *cmd_fmt,
                         const char *a, const char *b)
{
    char *out = NULL;
    int st = test_runf(&out, cmd_fmt, bin, a, b);
    const char *nl = out ? strchr(out, '\n') : NULL;
    int one_line = nl && nl[1] == 0;
    check(st == want_status && one_line && strstr(out, want), "%s: exit %d (want %d), output: %s", label, st,
          want_status, out ? out : "");
    printf("  %s: exit %d: %s", label, st, out ? out : "\n");
    free(out);
}

/* A tensor whose directory entry claims 2^40 floats (CRCs fixed, so only the claim is
 * wrong): refused before anything is allocated for it. */
static void write_huge_claim(const char *path)
{
    char err[WF_ERR_SIZE];
    wf_writer_t *w = NULL;
    const float x[4] = {1, 2, 3, 4};
    const int64_t shape[1] = {4};
    int ok = wf_writer_open(&w, path, NULL, 0, err) == 0 &&
             wf_writer_add_tensor(w, "gpt.w", WF_F32, 1, shape, x, err) == 0;
    if (ok) ok = wf_writer_close(w, err) == 0;
    else wf_writer_abort(w);
    size_t n = 0;
    unsigned char *f = ok ? wt_read_file(path, &n) : NULL;
    if (!check(f != NULL, "writing %s: %s", path, err)) return;
    unsigned char *entry = f + wf_rd64(f + WF_H_DIR_OFF) + 4;
    wf_wr64(entry + 32, (uint64_t)4 << 40); /* raw_size */
    wf_wr64(entry + 40, (uint64_t)1 << 40); /* shape[0] */
    wt_fix_crcs(f, n);
    check(wt_write_file(path, f, n) == 0, "rewriting %s", path);
    free(f);
}

static void test_bad_input(void)
{
    printf("bad input\n");
    char out[700]; /* test_tmp_path()'s buffers rotate */
    snprintf(out, sizeof out, "%s", test_tmp_path("bad-out.dalle"));
    test_write_file(test_tmp_path("text.dalle"), "this is not a model file\n");
    write_huge_claim(test_tmp_path("huge.dalle"));
    expect_error("missing file", 1, "nope.dalle", "%s convert %s -o %s", test_tmp_path("nope.dalle"), out);
    expect_error("not a model file", 1, "not a dalle-c model", "%s convert %s -o %s", test_tmp_path("text.dalle"), out);
    expect_error("unknown dtype", 2, "f8", "%s convert %s -o %s --dtype f8", model, out);
    expect_error("missing folder", 1, "no/such/dir", "%s convert %s -o %s", model, test_tmp_path("no/such/dir/x.dalle"));
    expect_error("no -o", 2, "-o", "%s convert %s %s", model, "");
    expect_error("two models", 2, "one MODEL", "%s convert %s %s", model, model);
    expect_error("unknown option", 2, "--fast", "%s convert %s -o %s --fast", model, out);
    expect_error("level 0", 2, "--level", "%s convert %s -o %s --level 0", model, out);
    expect_error("level 23", 2, "--level", "%s convert %s -o %s --level 23", model, out);

    /* the last tensor's frame damaged: found while converting, after the writer started */
    size_t n = 0;
    unsigned char *bytes = gt_read_file(model, &n);
    wf_reader_t *r = NULL;
    char err[WF_ERR_SIZE];
    if (check(bytes != NULL && wf_reader_open(&r, model, err) == 0, "read %s", model)) {
        const wf_entry_t *last = wf_reader_entry(r, wf_reader_count(r) - 1);
        bytes[last->offset + last->stored_size / 2] ^= 0x40;
        wf_reader_close(r);
        FILE *f = fopen(test_tmp_path("damaged.dalle"), "wb");
        check(f && fwrite(bytes, 1, n, f) == n && fclose(f) == 0, "write damaged copy");
        expect_error("damaged tensor", 1, "corrupt", "%s convert %s -o %s", test_tmp_path("damaged.dalle"), out);
    }
    free(bytes);
    expect_error("huge tensor", 1, "corrupt", "%s convert %s -o %s", test_tmp_path("huge.dalle"), out);
    check(!exists(out), "a failed conversion left %s", out);
    check(temp_files_left() == 0, "a failed conversion left a temporary file");
}

/* -o MODEL: the reader keeps the old file open while the new one is renamed over it. */
static void test_in_place(void)
{
    printf("-o the input itself\n");
    const char *copy = test_tmp_path("inplace.dalle");
    size_t n = 0;
    unsigned char *bytes = gt_read_file(model, &n);
    FILE *f = fopen(copy, "wb");
    check(bytes && f && fwrite(bytes, 1, n, f) == n, "copy the model");
    if (f) fclose(f);
    free(bytes);
    char *out = NULL;
    int st = test_runf(&out, "%s convert %s -o %s", bin, copy, copy);
    check(st == 0, "in place: %d %s", st, out);
    free(out);
    check_layout(model, copy, WF_F16);
    check_parameters(model, copy, WF_F16);
    check(temp_files_left() == 0, "a temporary file is left");
}

int main(void)
{
    bin = getenv("DALLEC_BIN");
    if (!bin) {
        fprintf(stderr, "test_convert_cli: DALLEC_BIN is not set (run through ctest)\n");
        return 1;
    }
    snprintf(model, sizeof model, "%s/model.dalle", test_tmpdir());
    if (write_model_with_scorer()) return test_summary("test_convert_cli");
    test_dtype(NULL, WF_F16);
    test_dtype("bf16", WF_BF16);
    test_f32();
    test_lone_dvae();
    test_checkpoint();
    test_bad_input();
    test_in_place();
    return test_summary("test_convert_cli");
}
