/* Transformer training end to end through the library (pipeline/train_gpt.h) on a tiny
 * shapes set and an untrained tiny dVAE: the loss falls; the final file holds all three
 * parts (dvae_load, gpt_load, tok_load and mf_load read it); the token cache is reused
 * by a second run and rebuilt when the dVAE or the dataset changes; a run stopped by its
 * callback (as Ctrl-C does) and resumed ends with exactly the parameters of an
 * uninterrupted run; a NaN stops the run and keeps the checkpoint. */
#include "data/data.h"
#include "dvae/dvae.h"
#include "nn/nn.h"
#include "pipeline/model_file.h"
#include "pipeline/token_cache.h"
#include "pipeline/train_gpt.h"
#include "tests/testutil.h"
#include "tokenizer/tokenizer.h"
#include "transformer/transformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[600], dvae_path[600];

static void make_inputs(void)
{
    char err[256];
    snprintf(data_dir, sizeof data_dir, "%s/shapes", test_tmpdir());
    snprintf(dvae_path, sizeof dvae_path, "%s/tiny.dvae", test_tmpdir());
    shapes_config_t sc = shapes_config_default();
    sc.count = 64, sc.size = 16;
    if (shapes_write_dataset(data_dir, &sc, NULL, NULL, err)) {
        printf("shapes: %s\n", err);
        exit(1);
    }
    dvae_config_t c = dvae_config_default();
    c.image_size = 16, c.layers = 2, c.channels = 8, c.res_blocks = 1;
    c.codebook_size = 16, c.code_dim = 8;
    dvae_t *m;
    if (dvae_create(&m, &c, 1, err)) exit(1);
    dvae_init_params(m, 7);
    if (dvae_save(m, dvae_path, err)) {
        printf("dvae_save: %s\n", err);
        exit(1);
    }
    dvae_free(m);
}

static tg_opts_t tiny_opts(long steps)
{
    tg_opts_t o = tg_opts_default();
    o.text_len = 12, o.n_layer = 2, o.n_head = 2, o.n_embd = 32, o.vocab = 400;
    o.steps = steps, o.batch = 8, o.seed = 3;
    o.opt.lr = 3e-3f, o.opt.lr_min = 3e-4f, o.opt.warmup_steps = 5;
    o.eval_every = 10, o.eval_images = 16, o.samples_every = 25, o.samples_n = 4;
    o.checkpoint_every = 4;
    return o;
}

static ds_t *open_ds(double holdout)
{
    ds_config_t dc = ds_config_default();
    dc.size = 16, dc.holdout = holdout, dc.require_captions = 1;
    ds_t *ds;
    char err[256];
    if (ds_open(&ds, data_dir, &dc, err)) {
        printf("ds_open: %s\n", err);
        exit(1);
    }
    return ds;
}

typedef struct {
    long stop_at;
    double first, last; /* mean loss of the first and last 8 steps */
    long encoded;       /* cache progress events: images encoded */
    int evals, samples, heldout, truncation_warned;
    double bits;
} watch_t;

static int watch(const tg_event_t *e, void *ctx)
{
    watch_t *w = ctx;
    switch (e->kind) {
    case TG_EV_STEP:
        if (e->step <= 8) w->first += e->loss / 8;
        if (e->step > e->steps - 8) w->last += e->loss / 8;
        break;
    case TG_EV_CACHE_PROGRESS: w->encoded = e->done; break;
    case TG_EV_EVAL: w->evals++, w->bits = e->eval_bits_per_token, w->heldout = e->eval_heldout; break;
    case TG_EV_SAMPLES: w->samples++; break;
    case TG_EV_WARNING: w->truncation_warned += strstr(e->msg, "trunc") != NULL || strstr(e->msg, "cut") != NULL; break;
    }
    return w->stop_at > 0 && e->kind == TG_EV_STEP && e->step >= w->stop_at;
}

static int same_gpt(const char *a, const char *b)
{
    gpt_t *ma, *mb;
    char err[256];
    if (gpt_load(&ma, a, 0, err) || gpt_load(&mb, b, 0, err)) {
        printf("  %s\n", err);
        return 0;
    }
    size_t na, nb;
    float *pa = gpt_param_block(ma, &na), *pb = gpt_param_block(mb, &nb);
    int same = na == nb && memcmp(pa, pb, na * sizeof(float)) == 0;
    gpt_free(ma);
    gpt_free(mb);
    return same;
}

static long mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st)) return -1;
    return (long)st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec;
}

static void test_train_and_load(void)
{
    printf("training, the model file, the token cache\n");
    char err[256], out[700], cache[720], samples[720];
    snprintf(out, sizeof out, "%s/full.dalle", test_tmpdir());
    snprintf(cache, sizeof cache, "%s.tokens", out);
    snprintf(samples, sizeof samples, "%s.samples.png", out);
    ds_t *ds = open_ds(0.2);
    tg_opts_t o = tiny_opts(100);
    tg_paths_t p = {.dvae = dvae_path, .out = out};
    watch_t w = {0};
    int rc = tg_train(&o, &p, ds, watch, &w, err);
    check(rc == 0, "a fresh run: %s", rc ? err : "ok");
    printf("  mean loss of the first 8 steps %.4f, of the last 8 %.4f; held-out %.3f bits/token\n",
           w.first, w.last, w.bits);
    check(w.last < 0.7 * w.first, "the loss falls by 30%% in 100 steps");
    check(w.encoded == 64, "the first run encodes all 64 images into the cache (%ld)", w.encoded);
    check(w.evals == 10 && w.heldout, "10 held-out evaluations (%d, held-out %d)", w.evals, w.heldout);
    check(w.samples == 4, "sample grids at 25, 50, 75, 100 (%d)", w.samples);

    /* the final file: each part loads alone, and all three together */
    dvae_t *dv = NULL;
    gpt_t *g = NULL;
    tok_t *t = NULL;
    int rd = dvae_load(&dv, out, 1, err);
    check(rd == 0, "dvae_load(MODEL): %s", rd ? err : "ok");
    int rg = gpt_load(&g, out, 0, err);
    check(rg == 0, "gpt_load(MODEL): %s", rg ? err : "ok");
    t = tok_load(out, err);
    check(t != NULL, "tok_load(MODEL): %s", t ? "ok" : err);
    if (dv && g && t) {
        const gpt_config_t *c = gpt_config(g);
        check(c->grid == 4 && c->image_vocab == 16 && c->text_len == 12 && c->n_embd == 32,
              "the transformer's config is the run's");
        check(c->text_vocab == tok_vocab_size(t) && c->pad_id == tok_pad_id(t) &&
                  c->bos_id == tok_bos_id(t), "the transformer's text vocabulary is the tokenizer's");
        /* sampling from the loaded file and decoding gives pixels */
        gpt_sampler_t *s;
        int text[12], tokens[16];
        float pix[3 * 16 * 16];
        gpt_sample_opts_t so = gpt_sample_opts_default();
        if (check(gpt_sampler_create(&s, g, 1, err) == 0, "sampler: %s", err) &&
            check(tok_encode_fixed(t, "a small red circle at the top left", text, 12, err) > 0,
                  "encode a prompt")) {
            check(gpt_sample(s, text, 1, &so, tokens, err) == 0, "sample: %s", err);
            dvae_decode(dv, tokens, 1, pix);
            int finite = 1;
            for (int i = 0; i < 3 * 16 * 16; i++) finite &= isfinite(pix[i]);
            check(finite, "a sampled grid decodes to finite pixels");
            gpt_sampler_free(s);
        }
    }
    dvae_free(dv), gpt_free(g), tok_free(t);
    rc = mf_load(out, &dv, 2, &t, &g, 0, err);
    check(rc == 0, "mf_load(MODEL): %s", rc ? err : "ok");
    dvae_free(dv), gpt_free(g), tok_free(t);
    check(mf_load(dvae_path, NULL, 0, NULL, &g, 0, err) != 0 && strstr(err, "no transformer"),
          "a dVAE-only file has no transformer: %s", err);
    img_t im = {0};
    check(img_load(&im, samples, err) == 0 && im.w > 16, "the sample grid is a PNG (%dx%d)", im.w, im.h);
    img_deinit(&im);

    /* a second run reuses the cache: no image is encoded, the file is not rewritten */
    long before = mtime_ns(cache);
    char out2[700];
    snprintf(out2, sizeof out2, "%s/second.dalle", test_tmpdir());
    tg_paths_t p2 = {.dvae = dvae_path, .out = out2, .cache = cache};
    watch_t w2 = {0};
    o.steps = 3;
    rc = tg_train(&o, &p2, ds, watch, &w2, err);
    check(rc == 0 && w2.encoded == 0 && mtime_ns(cache) == before,
          "a second run reuses the cache: no image encoded (%ld), the file untouched", w2.encoded);
    ds_close(ds);

    /* the split does not matter to the cache, the dVAE and the images do */
    ds = open_ds(0.5);
    w2 = (watch_t){0};
    rc = tg_train(&o, &p2, ds, watch, &w2, err);
    check(rc == 0 && w2.encoded == 0, "another held-out fraction reuses the cache (%ld encoded)",
          w2.encoded);
    tcache_t tc;
    dvae_t *other;
    dvae_load(&other, dvae_path, 4, err);
    dvae_init_params(other, 8);
    uint64_t k1, k2;
    tcache_key(other, ds, &k1, err);
    check(tcache_open(&tc, cache, other, 4, ds, NULL, NULL, err) == 0 && tc.rebuilt,
          "another dVAE rebuilds the cache (%s)", tc.why);
    tcache_free(&tc);
    dvae_free(other);
    ds_close(ds);
    char extra[720];
    snprintf(extra, sizeof extra, "%s/000000.png", data_dir);
    ds = open_ds(0.5);
    dvae_load(&other, dvae_path, 4, err);
    tcache_key(other, ds, &k1, err);
    /* a rewritten image: same name, new modification time */
    img_t copy = {0};
    img_load(&copy, extra, err);
    usleep(10000);
    img_save_png(&copy, extra, NULL, 0, err);
    img_deinit(&copy);
    tcache_key(other, ds, &k2, err);
    check(k1 != k2, "a rewritten image changes the cache key");
    dvae_free(other);
    ds_close(ds);
}

static void test_resume(void)
{
    printf("stopped and resumed == uninterrupted\n");
    char err[256], full[700], part[700], ckpt[720], cache[720];
    snprintf(full, sizeof full, "%s/r-full.dalle", test_tmpdir());
    snprintf(part, sizeof part, "%s/r-part.dalle", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", part);
    snprintf(cache, sizeof cache, "%s/r.tokens", test_tmpdir());
    ds_t *ds = open_ds(0.2);
    tg_opts_t o = tiny_opts(30);
    o.p_null = 0.3f; /* make sure dropout draws matter */
    tg_paths_t pf = {.dvae = dvae_path, .out = full, .cache = cache};
    int rc = tg_train(&o, &pf, ds, NULL, NULL, err);
    check(rc == 0, "uninterrupted: %s", rc ? err : "ok");

    tg_paths_t pp = {.dvae = dvae_path, .out = part, .cache = cache};
    watch_t stop = {.stop_at = 13};
    rc = tg_train(&o, &pp, ds, watch, &stop, err);
    struct stat st;
    check(rc == 0 && stat(part, &st) != 0 && stat(ckpt, &st) == 0,
          "a stopped run leaves a checkpoint and no model");
    tg_info_t info;
    check(tg_checkpoint_info(ckpt, &info, err) == 0 && info.step == 13 && info.steps == 30 &&
              info.batch == 8 && info.image_size == 16 && info.holdout == 0.2,
          "checkpoint info: step %ld of %ld, batch %d, S %d", info.step, info.steps, info.batch,
          info.image_size);
    /* the checkpoint is itself a usable model file */
    dvae_t *dv;
    tok_t *t;
    gpt_t *g;
    check(mf_load(ckpt, &dv, 1, &t, &g, 0, err) == 0, "mf_load(CHECKPOINT): %s", err);
    if (dv) dvae_free(dv), tok_free(t), gpt_free(g);

    ds_t *other = open_ds(0.5);
    tg_paths_t pr = {.out = part, .cache = cache, .resume = ckpt};
    rc = tg_train(&o, &pr, other, NULL, NULL, err);
    check(rc != 0 && strstr(err, "held-out"), "resuming over another split is refused: %s", err);
    ds_close(other);
    /* steps 13 .. 20, stopped again (mid-way between checkpoints), then to the end */
    watch_t stop2 = {.stop_at = 19};
    rc = tg_train(&o, &pr, ds, watch, &stop2, err);
    check(rc == 0 && stat(part, &st) != 0, "resumed and stopped again at 19: %s", rc ? err : "ok");
    rc = tg_train(&o, &pr, ds, NULL, NULL, err);
    check(rc == 0, "resumed to the end: %s", rc ? err : "ok");
    check(same_gpt(full, part), "stopped at 13 and 19, resumed == uninterrupted, bit for bit");

    /* --steps extends a finished run */
    pr.steps_override = 34;
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", part);
    rc = tg_train(&o, &pr, ds, NULL, NULL, err);
    check(rc == 0 && tg_checkpoint_info(ckpt, &info, err) == 0 && info.step == 34,
          "resuming with a larger --steps continues to it (%ld)", info.step);
    ds_close(ds);
}

static void test_nan(void)
{
    printf("a NaN stops the run and keeps the checkpoint\n");
    char err[256], out[700], ckpt[720];
    snprintf(out, sizeof out, "%s/nan.dalle", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    ds_t *ds = open_ds(0.2);
    tg_opts_t o = tiny_opts(40);
    o.opt.lr = 1e30f, o.opt.grad_clip = 0, o.opt.warmup_steps = 0, o.opt.weight_decay = 0;
    o.samples_every = 0;
    tg_paths_t p = {.dvae = dvae_path, .out = out};
    int rc = tg_train(&o, &p, ds, NULL, NULL, err);
    check(rc != 0 && (strstr(err, "NaN") || strstr(err, "infinite")),
          "the run fails naming the bad value: %s", err);
    struct stat st;
    check(stat(out, &st) != 0, "no final model is written");
    gpt_t *g;
    if (stat(ckpt, &st) == 0 && check(gpt_load(&g, ckpt, 0, err) == 0, "the checkpoint loads: %s", err)) {
        size_t n;
        const float *pb = gpt_param_block(g, &n);
        int finite = 1;
        for (size_t i = 0; i < n; i++) finite &= isfinite(pb[i]);
        check(finite, "the kept checkpoint is all finite");
        gpt_free(g);
    }
    ds_close(ds);
}

static void test_truncation(void)
{
    printf("captions longer than T are warned once\n");
    char err[256], out[700];
    snprintf(out, sizeof out, "%s/trunc.dalle", test_tmpdir());
    ds_t *ds = open_ds(0.2);
    tg_opts_t o = tiny_opts(6);
    o.text_len = 3;
    o.samples_every = 0;
    tg_paths_t p = {.dvae = dvae_path, .out = out};
    watch_t w = {0};
    int rc = tg_train(&o, &p, ds, watch, &w, err);
    check(rc == 0 && w.truncation_warned == 1, "one truncation warning (%d)", w.truncation_warned);
    ds_close(ds);
}

/* An undecodable image gets a row of -1 in the cache (written and read back) and is
 * left out of training. */
static void test_bad_image(void)
{
    printf("an undecodable image is marked in the cache\n");
    char err[256], dir[700], cmd[4096], cache[720], bad[720];
    snprintf(dir, sizeof dir, "%s/withbad", test_tmpdir());
    snprintf(cache, sizeof cache, "%s/withbad.tokens", test_tmpdir());
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/00000[0-7].* %s/ && head -c 100 %s/000008.png "
             "> %s/000003.png", dir, data_dir, dir, data_dir, dir);
    if (!check(system(cmd) == 0, "%s", cmd)) return;
    snprintf(bad, sizeof bad, "000003.png");
    ds_config_t dc = ds_config_default();
    dc.size = 16, dc.holdout = 0, dc.require_captions = 1;
    ds_t *ds;
    dvae_t *dv;
    if (ds_open(&ds, dir, &dc, err) || dvae_load(&dv, dvae_path, 4, err)) {
        check(0, "open: %s", err);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        tcache_t tc;
        int rc = tcache_open(&tc, cache, dv, 4, ds, NULL, NULL, err);
        int ok = rc == 0 && tc.bad == 1 && tc.rebuilt == !pass;
        for (size_t i = 0; ok && i < tc.n[DS_TRAIN]; i++)
            ok = tcache_ok(&tc, DS_TRAIN, i) == (strcmp(ds_name(ds, DS_TRAIN, i), bad) != 0);
        check(ok, "%s: one bad row, for %s (rc %d, bad %zu)", pass ? "read back" : "built", bad,
              rc, rc ? 0 : tc.bad);
        if (rc == 0) tcache_free(&tc);
    }
    char out[720];
    snprintf(out, sizeof out, "%s/withbad.dalle", test_tmpdir());
    tg_opts_t o = tiny_opts(4);
    o.samples_every = 0;
    tg_paths_t p = {.dvae = dvae_path, .out = out, .cache = cache};
    int rc = tg_train(&o, &p, ds, NULL, NULL, err);
    check(rc == 0, "training skips it: %s", rc ? err : "ok");
    dvae_free(dv);
    ds_close(ds);
}

int main(void)
{
    nn_set_threads(1); /* tiny tensors: one thread is fastest */
    make_inputs();
    test_train_and_load();
    test_resume();
    test_nan();
    test_truncation();
    test_bad_image();
    return test_summary("test_train_gpt");
}
