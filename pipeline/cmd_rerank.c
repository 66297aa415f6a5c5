/* dalle-c rerank train | add | score: the contrastive scorer (rerank/rerank.h,
 * docs/RERANK.md) trained on a captioned folder, put into a model file, and asked how
 * well images fit a text. */
#include "data/data.h"
#include "nn/nn.h"
#include "pipeline/args.h"
#include "pipeline/commands.h"
#include "pipeline/dist.h"
#include "pipeline/progress.h"
#include "pipeline/train_gpt.h"
#include "rerank/rerank.h"
#include "weights/weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const CMD = "dalle-c rerank train";

static const char *const rerank_usage =
    "usage: dalle-c rerank train DATASET_DIR -o SCORER [options]   train a scorer\n"
    "       dalle-c rerank add MODEL SCORER -o OUT                 put it into a model file\n"
    "       dalle-c rerank score -m FILE \"TEXT\" IMAGE...           score images against a text\n"
    "(COMMAND --help for its options; docs/RERANK.md)\n";

/* ---------------------------------------------------------------- add */

static size_t part_len(const char *name)
{
    const char *dot = strchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

static int is_rerank(const char *name)
{
    return part_len(name) == 6 && strncmp(name, "rerank", 6) == 0;
}

/* Entry e of r, decompressed as stored, into w under the same name. */
static int copy_entry(wf_reader_t *r, const wf_entry_t *e, wf_writer_t *w, char err[256])
{
    void *buf = malloc(e->raw_size ? e->raw_size : 1);
    if (!buf) {
        snprintf(err, 256, "%.200s: out of memory for %s", wf_reader_path(r), e->name);
        return -1;
    }
    int rc = wf_reader_load_raw(r, e, buf, err) ||
             (e->kind == WF_BLOB ? wf_writer_add_blob(w, e->name, buf, e->raw_size, err)
                                 : wf_writer_add_raw(w, e->name, e->dtype, e->ndim, e->shape, buf, err));
    free(buf);
    return rc ? -1 : 0;
}

/* The same tokenizer blob in both files (the scorer reads the model's ids). */
static int same_tokenizer(wf_reader_t *a, wf_reader_t *b, char err[256])
{
    void *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    if (wf_reader_blob(a, TOK_BLOB_NAME, &x, &nx, err) || wf_reader_blob(b, TOK_BLOB_NAME, &y, &ny, err)) {
        free(x);
        return -1;
    }
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x), free(y);
    if (!same)
        snprintf(err, 256, "%.60s was trained with another tokenizer than %.60s's: train the "
                 "scorer with -m MODEL (or --tokenizer MODEL) so they share one",
                 wf_reader_path(b), wf_reader_path(a));
    return same ? 0 : -1;
}

/* OUT = everything of MODEL but a scorer it may hold, plus SCORER's scorer part, written
 * atomically (OUT may be MODEL). 0, or -1 with err. */
static int add_scorer(const char *model, const char *scorer, const char *out, char err[256])
{
    wf_reader_t *rm = NULL, *rs = NULL;
    wf_writer_t *w = NULL;
    wf_config_t *cfg = wf_config_create();
    rerank_config_t rc;
    int ok = 0;
    if (!cfg) {
        snprintf(err, 256, "out of memory");
        goto done;
    }
    if (wf_reader_open(&rm, model, err) || wf_reader_open(&rs, scorer, err)) goto done;
    int found = rerank_config_read(&rc, wf_reader_config(rs), scorer, err);
    if (found == 0) snprintf(err, 256, "%.200s: holds no scorer (no rerank.* config)", scorer);
    if (found <= 0 || same_tokenizer(rm, rs, err)) goto done;
    const wf_config_t *mc = wf_reader_config(rm), *sc = wf_reader_config(rs);
    const char *parts = NULL;
    int bad = 0;
    for (int i = 0; !bad && i < wf_config_count(mc); i++)
        if (!is_rerank(wf_config_key(mc, i))) bad = wf_config_copy_entry(cfg, mc, i);
    for (int i = 0; !bad && i < wf_config_count(sc); i++)
        if (is_rerank(wf_config_key(sc, i))) bad = wf_config_copy_entry(cfg, sc, i);
    if (!bad && wf_config_get_str(cfg, "model.parts", &parts) == WF_OK && !strstr(parts, "rerank")) {
        char list[512];
        snprintf(list, sizeof list, "%s,rerank", parts);
        bad = wf_config_set_str(cfg, "model.parts", list);
    }
    if (bad) {
        snprintf(err, 256, "%.200s: cannot build the config", out);
        goto done;
    }
    if (wf_writer_open(&w, out, cfg, 0, err)) goto done;
    for (int i = 0; i < wf_reader_count(rm); i++) {
        const wf_entry_t *e = wf_reader_entry(rm, i);
        if (!is_rerank(e->name) && copy_entry(rm, e, w, err)) goto done;
    }
    for (int i = 0; i < wf_reader_count(rs); i++) {
        const wf_entry_t *e = wf_reader_entry(rs, i);
        if (e->kind == WF_TENSOR && is_rerank(e->name) && copy_entry(rs, e, w, err)) goto done;
    }
    ok = wf_writer_close(w, err) == WF_OK;
    w = NULL;
done:
    wf_writer_abort(w);
    wf_reader_close(rm);
    wf_reader_close(rs);
    wf_config_free(cfg);
    return ok ? 0 : -1;
}

static int rerank_add(int argc, char **argv)
{
    static const char *usage =
        "usage: dalle-c rerank add MODEL SCORER -o OUT\n"
        "Writes OUT: everything MODEL holds (replacing any scorer in it) plus SCORER's scorer\n"
        "part (rerank.* config and tensors), atomically; OUT may be MODEL itself. The scorer\n"
        "must have been trained with MODEL's tokenizer (dalle-c rerank train -m MODEL).\n"
        "Exit status: 0 ok, 1 a file is unreadable or the tokenizers differ, 2 usage.\n";
    if (cmd_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *files[2] = {NULL, NULL}, *out = NULL;
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0) {
            if (!(out = arg_value("dalle-c rerank add", argc, argv, &i))) return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "dalle-c rerank add: unknown option '%s'\n%s", argv[i], usage);
            return 2;
        } else if (nf < 2) {
            files[nf++] = argv[i];
        } else {
            fprintf(stderr, "dalle-c rerank add: one MODEL and one SCORER (got '%s' too)\n", argv[i]);
            return 2;
        }
    }
    if (nf < 2 || !out) {
        fprintf(stderr, "dalle-c rerank add: needs MODEL, SCORER and -o OUT\n%s", usage);
        return 2;
    }
    char err[256];
    if (add_scorer(files[0], files[1], out, err)) {
        fprintf(stderr, "dalle-c rerank add: %s\n", err);
        return 1;
    }
    printf("wrote %s (%s with the scorer of %s)\n", out, files[0], files[1]);
    return 0;
}

/* ---------------------------------------------------------------- score */

static int rerank_score_cmd(int argc, char **argv)
{
    static const char *usage =
        "usage: dalle-c rerank score -m FILE \"TEXT\" IMAGE...\n"
        "Prints each image's score against TEXT (the cosine similarity of the scorer's\n"
        "embeddings, -1..1: higher fits better) with the image's name, best first. FILE is\n"
        "a scorer file or a model file holding one.\n"
        "Exit status: 0 ok, 1 a file is unreadable, 2 usage.\n";
    if (cmd_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *model = NULL, *text = NULL;
    const char **images = calloc((size_t)argc, sizeof *images);
    int n = 0, rc = 1;
    if (!images) return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) {
            if (!(model = arg_value("dalle-c rerank score", argc, argv, &i))) goto usage;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "dalle-c rerank score: unknown option '%s'\n", argv[i]);
            goto usage;
        } else if (!text) {
            text = argv[i];
        } else {
            images[n++] = argv[i];
        }
    }
    if (!model || !text || n == 0) {
        fprintf(stderr, "dalle-c rerank score: needs -m FILE, a TEXT and at least one IMAGE\n");
        goto usage;
    }
    char err[256];
    rerank_t *m = NULL;
    tok_t *tok = NULL;
    float *pix = NULL, *scores = NULL;
    if (rerank_load(&m, &tok, model, 16, 0, err)) {
        fprintf(stderr, "dalle-c rerank score: %s\n", err);
        goto done;
    }
    const int S = rerank_config(m)->image_size;
    const size_t per = (size_t)3 * S * S;
    pix = malloc((size_t)n * per * sizeof(float));
    scores = malloc((size_t)n * sizeof(float));
    if (!pix || !scores) goto done;
    for (int i = 0; i < n; i++) {
        img_t src = {0}, dst = {0};
        if (img_load(&src, images[i], err) || img_resize_crop(&dst, &src, S, err)) {
            fprintf(stderr, "dalle-c rerank score: %s\n", err);
            img_deinit(&src);
            goto done;
        }
        img_to_planar(&dst, pix + (size_t)i * per, (size_t)S * S);
        img_deinit(&src), img_deinit(&dst);
    }
    if (rerank_score(m, tok, text, pix, n, scores, err)) {
        fprintf(stderr, "dalle-c rerank score: %s\n", err);
        goto done;
    }
    for (int k = 0; k < n; k++) { /* best first: n is a command line's worth */
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!isnan(scores[i]) && (best < 0 || scores[i] > scores[best])) best = i;
        printf("%.4f\t%s\n", scores[best], images[best]);
        scores[best] = NAN;
    }
    rc = 0;
done:
    free(pix), free(scores);
    rerank_free(m);
    tok_free(tok);
    free(images);
    return rc;
usage:
    fputs(usage, stderr);
    free(images);
    return 2;
}

/* ---------------------------------------------------------------- train */

static void train_usage(FILE *out)
{
    rerank_config_t c = rerank_config_default();
    rerank_train_opts_t o = rerank_train_opts_default();
    fprintf(out,
            "usage: dalle-c rerank train DATASET_DIR -o SCORER [options]\n"
            "       dalle-c rerank train DATASET_DIR -o SCORER --resume SCORER.ckpt [--steps N]\n"
            "\n"
            "Trains the contrastive text-image scorer (docs/RERANK.md) on the captioned images\n"
            "under DATASET_DIR (NAME.txt beside NAME.png, one caption a line). Writes SCORER (the\n"
            "scorer and its tokenizer) and SCORER.ckpt (checkpoint, replaced atomically).\n"
            "Held-out text->image retrieval (top-1, top-5 among the held-out images, each with\n"
            "its first caption line) is reported every --eval-every steps.\n"
            "\n"
            "inputs:\n"
            "  -m MODEL             take the tokenizer (and by default the image size) of this\n"
            "                       model file, so the scorer can go into it (see --into)\n"
            "  --tokenizer FILE     a tokenizer .model or any model file holding one\n"
            "                       (neither: a tokenizer is trained on the captions)\n"
            "  --vocab N            vocabulary of a tokenizer trained here, at most (default 1024)\n"
            "  --into OUT           with -m MODEL: also write OUT, MODEL with this scorer in it\n"
            "  --holdout F          fraction of images held out for evaluation (default 0.05)\n"
            "model:\n"
            "  --size S             image size (default: the model's with -m, else %d)\n"
            "  --image-layers L     stride-2 conv stages (default: down to a 4x4 map, %d at %d)\n"
            "  --image-channels C   first stage's channels, doubled per stage (default %d)\n"
            "  --text-len T         caption positions incl. BOS and EOS (default %d)\n"
            "  --layers N, --heads H, --width D   text encoder (default %d, %d, %d)\n"
            "  --embed-dim E        shared embedding width (default %d)\n"
            "training:\n"
            "  --steps N | --epochs E   length (default %ld steps)\n"
            "  --batch B            pairs per step: each is the others' negatives (default %d)\n"
            "  --lr X, --lr-min X   peak and final learning rate, cosine decay (%g, %g)\n"
            "  --warmup N           warmup steps (default %ld)\n"
            "  --weight-decay X     (default %g)   --clip X  gradient-norm clip, 0: none (%g)\n"
            "  --seed S             (default %llu)\n"
            "  --eval-every N       held-out retrieval every N steps (default %ld)\n"
            "  --eval-images N      held-out images it ranks among, at most (default %d)\n"
            "  --checkpoint-every N checkpoint every N steps (default: every 5 minutes)\n"
            "  --resume CKPT        continue the run in CKPT; --steps may extend it\n"
            "  -t THREADS           (default: OMP_NUM_THREADS or all cores)\n"
            "\n"
            "Ctrl-C saves a checkpoint and stops (exit 130). Under mpirun -np N: data-parallel,\n"
            "--batch is the global batch (a multiple of N); the loss uses every rank's pairs.\n"
            "Exit status: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted.\n",
            c.image_size, c.image_layers, c.image_size, c.image_channels, c.text_len,
            c.text_layers, c.text_heads, c.text_width, c.embed_dim, o.steps, o.batch, o.opt.lr,
            o.opt.lr_min, o.opt.warmup_steps, o.opt.weight_decay, o.opt.grad_clip,
            (unsigned long long)o.seed, o.eval_every, o.eval_images);
}

typedef struct {
    int quiet;
    progress_t bar;
    int started, done;
    double compute_s;
    long timed_steps;
    rerank_retrieval_t last_eval;
    int have_eval;
} ui_t;

static int on_event(const rerank_event_t *e, void *ctx)
{
    ui_t *ui = ctx;
    char status[192];
    if (ui->quiet) return stop_requested();
    switch (e->kind) {
    case RR_EV_START:
        progress_start_at(&ui->bar, stderr, "rerank", e->steps, e->step);
        ui->started = 1;
        if (e->step) progress_log(&ui->bar, "resuming at step %ld of %ld", e->step, e->steps);
        break;
    case RR_EV_STEP:
        ui->compute_s += e->step_seconds;
        ui->timed_steps++;
        snprintf(status, sizeof status, "loss %.4f acc %.2f scale %.1f lr %.2e |g| %.2f %.0f pairs/s",
                 e->loss, e->batch_acc, e->logit_scale, e->lr, e->grad_norm, e->pairs_per_second);
        progress_update(&ui->bar, e->step, status);
        break;
    case RR_EV_EVAL:
        ui->last_eval = e->eval;
        ui->have_eval = 1;
        progress_log(&ui->bar, "step %ld: %s text->image retrieval among %d images: top-1 %.1f%%, "
                     "top-5 %.1f%%; mean pair score %.3f", e->step,
                     e->eval_heldout ? "held-out" : "training (none held out)", e->eval.n,
                     100.0 * e->eval.hits1 / (e->eval.n ? e->eval.n : 1),
                     100.0 * e->eval.hits5 / (e->eval.n ? e->eval.n : 1), e->eval.mean_pair_score);
        break;
    case RR_EV_CHECKPOINT:
        if (stop_requested()) progress_log(&ui->bar, "checkpoint saved to %s", e->path);
        break;
    case RR_EV_DONE:
        ui->done = 1;
        progress_finish(&ui->bar, "");
        break;
    }
    return stop_requested();
}

/* The image size of a model file's dVAE (0 when it has none). */
static int model_image_size(const char *path)
{
    wf_reader_t *r;
    char err[256];
    if (wf_reader_open(&r, path, err)) return 0;
    int64_t s = 0;
    if (wf_config_get_int(wf_reader_config(r), "dvae.image_size", &s)) s = 0;
    wf_reader_close(r);
    return (int)s;
}

static void verify_progress(void *ctx, long done, long total)
{
    progress_t *p = ctx;
    if (p) progress_update(p, done, NULL);
    (void)total;
}

static int rerank_train_cmd(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        train_usage(stdout);
        return 0;
    }
    rerank_config_t c = rerank_config_default();
    rerank_train_opts_t o = rerank_train_opts_default();
    const char *dir = NULL, *out = NULL, *model = NULL, *tokenizer = NULL, *into = NULL;
    const char *resume = NULL, *v;
    long steps = 0;
    double epochs = 0, holdout = 0.05;
    int threads = 0, vocab = 1024, size = 0, layers = 0, holdout_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define VALUE() if (!(v = arg_value(CMD, argc, argv, &i))) return 2
#define INT(lo, hi, dst) do { VALUE(); if (arg_int(CMD, a, v, lo, hi, dst)) return 2; } while (0)
#define LONG(lo, dst) do { VALUE(); if (arg_long(CMD, a, v, lo, 1000000000L, dst)) return 2; } while (0)
#define FLOAT(lo, hi, dst) do { VALUE(); if (arg_float(CMD, a, v, lo, hi, dst)) return 2; } while (0)
        if (strcmp(a, "-o") == 0) { VALUE(); out = v; }
        else if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) { VALUE(); model = v; }
        else if (strcmp(a, "--tokenizer") == 0) { VALUE(); tokenizer = v; }
        else if (strcmp(a, "--into") == 0) { VALUE(); into = v; }
        else if (strcmp(a, "--resume") == 0) { VALUE(); resume = v; }
        else if (strcmp(a, "--vocab") == 0) INT(300, 1 << 20, &vocab);
        else if (strcmp(a, "--size") == 0) INT(8, 1024, &size);
        else if (strcmp(a, "--image-layers") == 0) INT(1, 8, &layers);
        else if (strcmp(a, "--image-channels") == 0) INT(1, 4096, &c.image_channels);
        else if (strcmp(a, "--text-len") == 0) INT(3, 1024, &c.text_len);
        else if (strcmp(a, "--layers") == 0) INT(1, 64, &c.text_layers);
        else if (strcmp(a, "--heads") == 0) INT(1, 256, &c.text_heads);
        else if (strcmp(a, "--width") == 0) INT(1, 8192, &c.text_width);
        else if (strcmp(a, "--embed-dim") == 0) INT(1, 8192, &c.embed_dim);
        else if (strcmp(a, "--steps") == 0) LONG(1, &steps);
        else if (strcmp(a, "--epochs") == 0) { VALUE(); if (arg_double(CMD, a, v, 1e-6, 1e6, &epochs)) return 2; }
        else if (strcmp(a, "--batch") == 0) INT(2, 65536, &o.batch);
        else if (strcmp(a, "--lr") == 0) FLOAT(0, 10, &o.opt.lr);
        else if (strcmp(a, "--lr-min") == 0) FLOAT(0, 10, &o.opt.lr_min);
        else if (strcmp(a, "--warmup") == 0) LONG(0, &o.opt.warmup_steps);
        else if (strcmp(a, "--weight-decay") == 0) FLOAT(0, 10, &o.opt.weight_decay);
        else if (strcmp(a, "--clip") == 0) FLOAT(0, 1e6, &o.opt.grad_clip);
        else if (strcmp(a, "--seed") == 0) { VALUE(); if (arg_u64(CMD, a, v, &o.seed)) return 2; }
        else if (strcmp(a, "--holdout") == 0) { VALUE(); if (arg_double(CMD, a, v, 0, 0.9, &holdout)) return 2; holdout_set = 1; }
        else if (strcmp(a, "--eval-every") == 0) LONG(0, &o.eval_every);
        else if (strcmp(a, "--eval-images") == 0) INT(2, 1000000, &o.eval_images);
        else if (strcmp(a, "--checkpoint-every") == 0) LONG(1, &o.checkpoint_every);
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) INT(1, 1024, &threads);
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", CMD, a);
            return 2;
        } else if (!dir) dir = a;
        else {
            fprintf(stderr, "%s: one dataset folder only (got '%s' and '%s')\n", CMD, dir, a);
            return 2;
        }
#undef VALUE
#undef INT
#undef LONG
#undef FLOAT
    }
    if (!dir || !out) {
        fprintf(stderr, "%s: needs DATASET_DIR and -o SCORER (see --help)\n", CMD);
        return 2;
    }
    if (model && tokenizer) {
        fprintf(stderr, "%s: give -m MODEL or --tokenizer FILE, not both\n", CMD);
        return 2;
    }
    if (into && !model) {
        fprintf(stderr, "%s: --into OUT needs -m MODEL (the model the scorer goes into)\n", CMD);
        return 2;
    }
    if (resume && tokenizer) {
        fprintf(stderr, "%s: --resume takes the tokenizer from the checkpoint; leave out "
                "--tokenizer\n", CMD);
        return 2;
    }
    if (steps && epochs) {
        fprintf(stderr, "%s: give --steps or --epochs, not both\n", CMD);
        return 2;
    }
    if (c.text_width % c.text_heads) {
        fprintf(stderr, "%s: --width %d is not a multiple of --heads %d\n", CMD, c.text_width,
                c.text_heads);
        return 2;
    }
    if (threads) nn_set_threads(threads);

    char err[256];
    rerank_ckpt_info_t info = {0};
    if (resume) {
        if (rerank_checkpoint_info(resume, &info, err)) {
            fprintf(stderr, "%s: %s\n", CMD, err);
            return 1;
        }
        if (holdout_set && holdout != info.holdout) {
            fprintf(stderr, "%s: --holdout %g differs from the checkpoint's %g (the training set "
                    "would change); leave it out when resuming\n", CMD, holdout, info.holdout);
            return 2;
        }
        holdout = info.holdout;
        o.batch = info.batch;
        c.image_size = info.image_size;
    } else {
        c.image_size = size ? size : model && model_image_size(model) ? model_image_size(model) : 64;
        /* down to a 4x4 map (at least one stage) unless told */
        c.image_layers = layers;
        for (int s = c.image_size; !layers && s > 4 && s % 2 == 0; s /= 2) c.image_layers++;
        if (!c.image_layers) c.image_layers = 1;
        if (rerank_config_check(&c, err)) {
            fprintf(stderr, "%s: %s\n", CMD, err);
            return 2;
        }
    }
    if (o.batch % dist_size()) {
        fprintf(stderr, "%s: --batch %d is not a multiple of the %d ranks\n", CMD, o.batch, dist_size());
        return 2;
    }

    const int root = dist_rank() == 0;
    ds_config_t dc = ds_config_default();
    dc.size = c.image_size;
    dc.holdout = holdout;
    dc.require_captions = 1;
    ds_t *ds;
    if (ds_open(&ds, dir, &dc, err)) {
        fprintf(stderr, "%s: %s\n", CMD, err);
        return 1;
    }
    /* unreadable images are found before the first step, so no batch pairs an image with
     * another's caption */
    progress_t vbar;
    if (root) progress_start(&vbar, stderr, "check", (long)(ds_count(ds, DS_TRAIN) + ds_count(ds, DS_HELDOUT)));
    size_t bad = ds_verify(ds, verify_progress, root ? &vbar : NULL);
    if (root) progress_finish(&vbar, "");
    if (root && bad) {
        char name[512], why[256];
        ds_bad(ds, 0, name, why);
        fprintf(stderr, "%s: %zu images could not be read and are left out (first: %s)\n", CMD,
                bad, why);
    }
    size_t ntrain = ds_count(ds, DS_TRAIN), nheld = ds_count(ds, DS_HELDOUT);
    if (epochs > 0) steps = (long)ceil(epochs * (double)ntrain / (double)o.batch);
    if (steps > 0 && !resume) o.steps = steps;

    tok_t *tok = NULL;
    if (!resume) {
        const char *from = model ? model : tokenizer;
        if (from) tok = tok_load(from, err);
        else if ((tok = tg_train_tokenizer(ds, vocab, o.seed, NULL, err)) && root)
            fprintf(stderr, "%s: trained a tokenizer on the captions: %d ids\n", CMD, tok_vocab_size(tok));
        if (!tok) {
            fprintf(stderr, "%s: %s\n", CMD, err);
            ds_close(ds);
            return 1;
        }
    }
    if (root) {
        fprintf(stderr, "%s: %zu training and %zu held-out captioned images from %s", CMD, ntrain,
                nheld, dir);
        if (ds_uncaptioned(ds)) fprintf(stderr, " (%zu without captions left out)", ds_uncaptioned(ds));
        fprintf(stderr, ", %dx%d, batch %d", c.image_size, c.image_size, o.batch);
        if (dist_size() > 1) fprintf(stderr, " over %d ranks, %d threads each\n", dist_size(), nn_threads());
        else fprintf(stderr, ", %d threads\n", nn_threads());
        if (!resume) {
            rerank_config_t shown = c;
            shown.text_vocab = tok_vocab_size(tok);
            fprintf(stderr, "%s: %zu parameters, %.1f M multiply-adds per pair\n", CMD,
                    rerank_num_params(&shown), rerank_pair_macs(&shown) / 1e6);
        }
    }

    ui_t ui;
    memset(&ui, 0, sizeof ui);
    ui.quiet = !root;
    stop_signals_t signals;
    stop_signals_install(&signals);
    int rc = rerank_train(&c, &o, tok, ds, out, resume, resume ? steps : 0, dist_comm(), on_event,
                          &ui, err);
    stop_signals_restore(&signals);
    tok_free(tok);
    ds_close(ds);
    if (rc) {
        if (ui.started && !ui.done) progress_finish(&ui.bar, "");
        fprintf(stderr, "%s: %s\n", CMD, err);
        return 1;
    }
    if (!root) return stop_requested() ? 130 : 0;
    if (ui.timed_steps)
        fprintf(stderr, "%s: %.1f ms per step\n", CMD, 1e3 * ui.compute_s / ui.timed_steps);
    if (!ui.done) {
        fprintf(stderr, "%s: interrupted; resume with --resume %s.ckpt\n", CMD, out);
        return 130;
    }
    if (ui.have_eval)
        printf("rerank-eval images=%d top1=%.4f top5=%.4f mean_pair_score=%.4f\n", ui.last_eval.n,
               (double)ui.last_eval.hits1 / ui.last_eval.n, (double)ui.last_eval.hits5 / ui.last_eval.n,
               ui.last_eval.mean_pair_score);
    fprintf(stderr, "%s: wrote %s\n", CMD, out);
    if (into) {
        if (add_scorer(model, out, into, err)) {
            fprintf(stderr, "%s: --into: %s\n", CMD, err);
            return 1;
        }
        fprintf(stderr, "%s: wrote %s (%s with the scorer)\n", CMD, into, model);
    }
    return 0;
}

int cmd_rerank(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(rerank_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "train") == 0) return rerank_train_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "add") == 0) return rerank_add(argc - 1, argv + 1);
    if (strcmp(argv[1], "score") == 0) return rerank_score_cmd(argc - 1, argv + 1);
    fprintf(stderr, "dalle-c rerank: unknown subcommand '%s'\n%s", argv[1], rerank_usage);
    return 2;
}
