/* dalle-c train DATASET_DIR --dvae DVAE_FILE -o MODEL [...]: trains the transformer
 * (pipeline/train_gpt.h does the work) and writes the complete model file. */
#include "data/data.h"
#include "nn/nn.h"
#include "pipeline/args.h"
#include "pipeline/commands.h"
#include "pipeline/dist.h"
#include "pipeline/progress.h"
#include "pipeline/train_gpt.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const CMD = "dalle-c train";

static void usage(FILE *out)
{
    tg_opts_t o = tg_opts_default();
    fprintf(out,
            "usage: dalle-c train DATASET_DIR --dvae DVAE_FILE -o MODEL [options]\n"
            "       dalle-c train DATASET_DIR --init MODEL_FILE -o MODEL [options]\n"
            "       dalle-c train DATASET_DIR -o MODEL --resume MODEL.ckpt [--steps N]\n"
            "\n"
            "Trains the transformer on the captioned images under DATASET_DIR (NAME.txt beside\n"
            "NAME.png, one caption a line; images without one are left out). The dVAE encodes\n"
            "every image once into a token cache (MODEL.tokens) that later runs reuse; without\n"
            "--tokenizer a tokenizer is trained on the captions. Writes MODEL (dVAE, tokenizer\n"
            "and transformer in one file: all that generation needs), MODEL.ckpt (checkpoint,\n"
            "replaced atomically) and MODEL.samples.png (samples for held-out captions).\n"
            "\n"
            "inputs:\n"
            "  --dvae FILE          the trained dVAE (dalle-c dvae train); required unless resuming\n"
            "                       or fine-tuning\n"
            "  --init FILE          fine-tune: start from a complete model (weights/default.dalle,\n"
            "                       or any dalle-c train output) with its dVAE, tokenizer and\n"
            "                       transformer; a new optimizer and schedule (the model options\n"
            "                       below come from it)\n"
            "  --tokenizer FILE     a tokenizer .model or a model file holding one\n"
            "  --vocab N            vocabulary of a tokenizer trained here, at most (default %d)\n"
            "  --token-cache FILE   where the token cache lives (default MODEL.tokens)\n"
            "  --holdout F          fraction of images held out for evaluation (default 0.05)\n"
            "model:\n"
            "  --text-len T         caption length in ids; longer ones are cut (default %d)\n"
            "  --layers N           (default %d)\n"
            "  --heads H            (default %d)\n"
            "  --embd D             width, a multiple of heads (default %d)\n"
            "  --text-weight W, --image-weight W   loss weights (default %g, %g)\n"
            "  --p-null P           caption dropout, for guidance (default %g)\n"
            "training:\n"
            "  --steps N | --epochs E   length (default %ld steps)\n"
            "  --batch B            (default %d)\n"
            "  --lr X, --lr-min X   peak and final learning rate, cosine decay (%g, %g)\n"
            "  --warmup N           warmup steps (default %ld)\n"
            "  --weight-decay X     AdamW weight decay on weights (default %g)\n"
            "  --clip X             gradient-norm clip, 0 for none (default %g)\n"
            "  --seed S             (default %llu)\n"
            "  --eval-every N       held-out losses every N steps (default %ld)\n"
            "  --eval-images N      held-out items per evaluation (default %d)\n"
            "  --samples-every N    write MODEL.samples.png every N steps, 0 for none (default %ld)\n"
            "  --samples N          images in the sample grid (default %d)\n"
            "  --checkpoint-every N checkpoint every N steps (default: every 5 minutes)\n"
            "  --resume CKPT        continue the run saved in CKPT (MODEL.ckpt): dVAE, tokenizer,\n"
            "                       config and options come from it; --steps may extend it\n"
            "  -t THREADS           (default: OMP_NUM_THREADS or all cores)\n"
            "\n"
            "The held-out image loss is reported in bits per image token (CE / ln 2).\n"
            "Ctrl-C saves a checkpoint and stops (exit 130); resume with --resume MODEL.ckpt.\n"
            "Under mpirun -np N: data-parallel, --batch is the global batch (a multiple of N),\n"
            "-t is threads per rank; stop with kill -USR1 MPIRUN_PID (docs/DISTRIBUTED.md).\n"
            "Exit status: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted.\n",
            o.vocab, o.text_len, o.n_layer, o.n_head, o.n_embd, o.loss_w_text, o.loss_w_image,
            o.p_null, o.steps, o.batch, o.opt.lr, o.opt.lr_min, o.opt.warmup_steps,
            o.opt.weight_decay, o.opt.grad_clip, (unsigned long long)o.seed, o.eval_every,
            o.eval_images, o.samples_every, o.samples_n);
}

typedef struct {
    int quiet; /* ranks other than 0 of a data-parallel run: nothing to show */
    progress_t bar, cache_bar;
    int cache_started, started, done;
    double compute_s;
    long timed_steps;
} ui_t;

static int on_event(const tg_event_t *e, void *ctx)
{
    ui_t *ui = ctx;
    char status[192];
    if (ui->quiet) return stop_requested();
    switch (e->kind) {
    case TG_EV_INFO:
        if (ui->started) progress_log(&ui->bar, "%s", e->msg);
        else fprintf(stderr, "%s: %s\n", CMD, e->msg);
        break;
    case TG_EV_WARNING:
        if (ui->started) progress_log(&ui->bar, "warning: %s", e->msg);
        else fprintf(stderr, "%s: warning: %s\n", CMD, e->msg);
        break;
    case TG_EV_CACHE_PROGRESS:
        if (!ui->cache_started) {
            progress_start(&ui->cache_bar, stderr, "encode", e->total);
            ui->cache_started = 1;
        }
        if (e->done < e->total) progress_update(&ui->cache_bar, e->done, NULL);
        else {
            ui->cache_bar.done = e->done;
            progress_finish(&ui->cache_bar, "");
            ui->cache_started = 0;
        }
        break;
    case TG_EV_START:
        progress_start_at(&ui->bar, stderr, "train", e->steps, e->step);
        ui->started = 1;
        if (e->step) progress_log(&ui->bar, "resuming at step %ld of %ld", e->step, e->steps);
        break;
    case TG_EV_STEP:
        ui->compute_s += e->step_seconds;
        ui->timed_steps++;
        snprintf(status, sizeof status, "loss %.4f (text %.3f image %.3f) lr %.2e |g| %.2f %.0f tok/s",
                 e->loss, e->ce_text, e->ce_image, e->lr, e->grad_norm, e->tokens_per_second);
        progress_update(&ui->bar, e->step, status);
        break;
    case TG_EV_EVAL:
        progress_log(&ui->bar,
                     "step %ld: %s loss %.4f: image %.4f bits/token (CE %.4f), text CE %.4f, "
                     "over %d items", e->step, e->eval_heldout ? "held-out" : "training (none held out)",
                     e->eval_loss, e->eval_bits_per_token, e->eval_ce_image, e->eval_ce_text,
                     e->eval_items);
        break;
    case TG_EV_SAMPLES:
        break;
    case TG_EV_CHECKPOINT:
        if (stop_requested()) progress_log(&ui->bar, "checkpoint saved to %s", e->path);
        break;
    case TG_EV_DONE:
        ui->done = 1;
        progress_finish(&ui->bar, "");
        break;
    }
    return stop_requested();
}

int cmd_gpt_train(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    tg_opts_t o = tg_opts_default();
    tg_paths_t p = {0};
    const char *dir = NULL, *v;
    long steps = 0;
    double epochs = 0, holdout = 0.05;
    int threads = 0, holdout_set = 0;
    const char *model_opt = NULL; /* the last option that shapes a new transformer */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define VALUE() if (!(v = arg_value(CMD, argc, argv, &i))) return 2
        if (strcmp(a, "-o") == 0) { VALUE(); p.out = v; }
        else if (strcmp(a, "--dvae") == 0) { VALUE(); p.dvae = v; }
        else if (strcmp(a, "--tokenizer") == 0) { VALUE(); p.tokenizer = v; }
        else if (strcmp(a, "--token-cache") == 0) { VALUE(); p.cache = v; }
        else if (strcmp(a, "--resume") == 0) { VALUE(); p.resume = v; }
        else if (strcmp(a, "--init") == 0) { VALUE(); p.init = v; }
        else if (strcmp(a, "--vocab") == 0) { VALUE(); model_opt = a; if (arg_int(CMD, a, v, 300, 1 << 20, &o.vocab)) return 2; }
        else if (strcmp(a, "--text-len") == 0) { VALUE(); model_opt = a; if (arg_int(CMD, a, v, 1, 4096, &o.text_len)) return 2; }
        else if (strcmp(a, "--layers") == 0) { VALUE(); model_opt = a; if (arg_int(CMD, a, v, 1, 1024, &o.n_layer)) return 2; }
        else if (strcmp(a, "--heads") == 0) { VALUE(); model_opt = a; if (arg_int(CMD, a, v, 1, 1024, &o.n_head)) return 2; }
        else if (strcmp(a, "--embd") == 0) { VALUE(); model_opt = a; if (arg_int(CMD, a, v, 1, 65536, &o.n_embd)) return 2; }
        else if (strcmp(a, "--text-weight") == 0) { VALUE(); model_opt = a; if (arg_float(CMD, a, v, 0, 1e6, &o.loss_w_text)) return 2; }
        else if (strcmp(a, "--image-weight") == 0) { VALUE(); model_opt = a; if (arg_float(CMD, a, v, 0, 1e6, &o.loss_w_image)) return 2; }
        else if (strcmp(a, "--p-null") == 0) { VALUE(); model_opt = a; if (arg_float(CMD, a, v, 0, 1, &o.p_null)) return 2; }
        else if (strcmp(a, "--steps") == 0) { VALUE(); if (arg_long(CMD, a, v, 1, 1000000000L, &steps)) return 2; }
        else if (strcmp(a, "--epochs") == 0) { VALUE(); if (arg_double(CMD, a, v, 1e-6, 1e6, &epochs)) return 2; }
        else if (strcmp(a, "--batch") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 4096, &o.batch)) return 2; }
        else if (strcmp(a, "--lr") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 10, &o.opt.lr)) return 2; }
        else if (strcmp(a, "--lr-min") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 10, &o.opt.lr_min)) return 2; }
        else if (strcmp(a, "--warmup") == 0) { VALUE(); if (arg_long(CMD, a, v, 0, 1000000000L, &o.opt.warmup_steps)) return 2; }
        else if (strcmp(a, "--weight-decay") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 10, &o.opt.weight_decay)) return 2; }
        else if (strcmp(a, "--clip") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 1e6, &o.opt.grad_clip)) return 2; }
        else if (strcmp(a, "--seed") == 0) { VALUE(); if (arg_u64(CMD, a, v, &o.seed)) return 2; }
        else if (strcmp(a, "--holdout") == 0) { VALUE(); if (arg_double(CMD, a, v, 0, 0.9, &holdout)) return 2; holdout_set = 1; }
        else if (strcmp(a, "--eval-every") == 0) { VALUE(); if (arg_long(CMD, a, v, 0, 1000000000L, &o.eval_every)) return 2; }
        else if (strcmp(a, "--eval-images") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 1000000, &o.eval_images)) return 2; }
        else if (strcmp(a, "--samples-every") == 0) { VALUE(); if (arg_long(CMD, a, v, 0, 1000000000L, &o.samples_every)) return 2; }
        else if (strcmp(a, "--samples") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 32, &o.samples_n)) return 2; }
        else if (strcmp(a, "--checkpoint-every") == 0) { VALUE(); if (arg_long(CMD, a, v, 1, 1000000000L, &o.checkpoint_every)) return 2; }
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 1024, &threads)) return 2; }
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", CMD, a);
            return 2;
        } else if (!dir) dir = a;
        else {
            fprintf(stderr, "%s: one dataset folder only (got '%s' and '%s')\n", CMD, dir, a);
            return 2;
        }
#undef VALUE
    }
    if (!dir || !p.out) {
        fprintf(stderr, "%s: needs DATASET_DIR and -o MODEL (see --help)\n", CMD);
        return 2;
    }
    if (!p.dvae && !p.resume && !p.init) {
        fprintf(stderr, "%s: needs --dvae DVAE_FILE (a model from dalle-c dvae train), or "
                "--init MODEL_FILE to fine-tune\n", CMD);
        return 2;
    }
    if (p.init && (p.dvae || p.tokenizer || p.resume || model_opt)) {
        fprintf(stderr, "%s: --init takes the dVAE, the tokenizer and the transformer's shape "
                "from its model; leave out %s\n", CMD,
                p.dvae ? "--dvae" : p.tokenizer ? "--tokenizer" : p.resume ? "--resume" : model_opt);
        return 2;
    }
    if (p.resume && (p.dvae || p.tokenizer)) {
        fprintf(stderr, "%s: --resume takes the dVAE and the tokenizer from the checkpoint; "
                "leave out --dvae and --tokenizer\n", CMD);
        return 2;
    }
    if (steps && epochs) {
        fprintf(stderr, "%s: give --steps or --epochs, not both\n", CMD);
        return 2;
    }
    if (o.n_embd % o.n_head) {
        fprintf(stderr, "%s: --embd %d is not a multiple of --heads %d\n", CMD, o.n_embd, o.n_head);
        return 2;
    }
    if (threads) nn_set_threads(threads);

    char err[256];
    tg_info_t info;
    if (p.resume) {
        if (tg_checkpoint_info(p.resume, &info, err)) {
            fprintf(stderr, "%s: %s\n", CMD, err);
            return 1;
        }
        if (holdout_set && holdout != info.holdout) {
            fprintf(stderr, "%s: --holdout %g differs from the checkpoint's %g (the training "
                    "set would change); leave it out when resuming\n", CMD, holdout, info.holdout);
            return 2;
        }
        holdout = info.holdout;
        o.batch = info.batch;
    } else if (p.init ? tg_model_info(p.init, &info, err) : tg_dvae_info(p.dvae, &info, err)) {
        fprintf(stderr, "%s: %s\n", CMD, err);
        return 1;
    }
    ds_config_t dc = ds_config_default();
    dc.size = info.image_size;
    dc.holdout = holdout;
    dc.require_captions = 1;
    ds_t *ds;
    if (ds_open(&ds, dir, &dc, err)) {
        fprintf(stderr, "%s: %s\n", CMD, err);
        return 1;
    }
    size_t ntrain = ds_count(ds, DS_TRAIN), nheld = ds_count(ds, DS_HELDOUT);
    if (epochs > 0) steps = (long)ceil(epochs * (double)ntrain / (double)o.batch);
    if (steps > 0 && !p.resume) o.steps = steps;
    if (p.resume) p.steps_override = steps;
    const int root = dist_rank() == 0;
    if (root) {
        fprintf(stderr, "%s: %zu training and %zu held-out captioned images from %s", CMD, ntrain,
                nheld, dir);
        if (ds_uncaptioned(ds)) fprintf(stderr, " (%zu without captions left out)", ds_uncaptioned(ds));
        if (dist_size() > 1)
            fprintf(stderr, ", %dx%d, global batch %d over %d ranks, %d threads each\n", dc.size,
                    dc.size, o.batch, dist_size(), nn_threads());
        else
            fprintf(stderr, ", %dx%d, batch %d, %d threads\n", dc.size, dc.size, o.batch, nn_threads());
    }

    ui_t ui;
    memset(&ui, 0, sizeof ui);
    ui.quiet = !root;
    stop_signals_t signals;
    stop_signals_install(&signals);
    int rc = tg_train_dist(&o, &p, ds, dist_comm(), on_event, &ui, err);
    stop_signals_restore(&signals);
    if (ui.cache_started) progress_finish(&ui.cache_bar, "");
    ds_close(ds);
    if (rc) {
        if (ui.started && !ui.done) progress_finish(&ui.bar, "");
        fprintf(stderr, "%s: %s\n", CMD, err);
        return 1;
    }
    if (!root) return stop_requested() ? 130 : 0;
    if (ui.timed_steps)
        fprintf(stderr, "%s: %.1f ms per step\n", CMD, 1e3 * ui.compute_s / ui.timed_steps);
    if (!ui.done) { /* stopped: by this process's signal or, under mpirun, another rank's */
        fprintf(stderr, "%s: interrupted; resume with --resume %s.ckpt\n", CMD, p.out);
        return 130;
    }
    fprintf(stderr, "%s: wrote %s\n", CMD, p.out);
    return 0;
}
