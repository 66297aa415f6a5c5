/* dalle-c dvae train IMAGE_DIR -o FILE [...]: trains the discrete VAE alone. */
#include "data/data.h"
#include "dvae/dvae.h"
#include "nn/nn.h"
#include "pipeline/args.h"
#include "pipeline/commands.h"
#include "pipeline/dist.h"
#include "pipeline/progress.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const CMD = "dalle-c dvae train";

static void usage(FILE *out)
{
    dvae_config_t c = dvae_config_default();
    dvae_train_opts_t o = dvae_train_opts_default();
    fprintf(out,
            "usage: dalle-c dvae train IMAGE_DIR -o FILE [options]\n"
            "\n"
            "Trains the discrete VAE on the PNG and JPEG images under IMAGE_DIR (searched\n"
            "recursively; unreadable files are skipped and counted). Writes FILE (the model),\n"
            "FILE.ckpt (a checkpoint, replaced atomically) and FILE.preview.png (held-out\n"
            "originals above their reconstructions).\n"
            "\n"
            "model:\n"
            "  --size S             image size: 32, 64, 128 or 256 (default %d)\n"
            "  --layers L           stride-2 stages; token grid is S/2^L (default %d)\n"
            "  --channels C         (default %d)\n"
            "  --res-blocks R       (default %d)\n"
            "  --codebook K         codebook entries (default %d)\n"
            "  --code-dim D         (default %d)\n"
            "  --hard               straight-through Gumbel-softmax (default soft)\n"
            "  --kl-weight B        weight of the KL-to-uniform term (default %g)\n"
            "  --tau-start T, --tau-min T, --tau-decay R\n"
            "                       tau = max(tau_min, tau_start exp(-R step)) (%g, %g, %g)\n"
            "training:\n"
            "  --steps N | --epochs E   length (default %ld steps)\n"
            "  --batch B            (default %d)\n"
            "  --lr X, --lr-min X   peak and final learning rate, cosine decay (%g, %g)\n"
            "  --warmup N           warmup steps (default %ld)\n"
            "  --weight-decay X     AdamW weight decay (default %g)\n"
            "  --clip X             gradient-norm clip, 0 for none (default %g)\n"
            "  --seed S             (default %llu)\n"
            "  --holdout F          fraction of images held out for evaluation (default 0.05)\n"
            "  --eval-every N       held-out PSNR every N steps (default %ld)\n"
            "  --eval-images N      held-out images per evaluation (default %d)\n"
            "  --samples-every N    write the preview every N steps, 0 for none (default %ld)\n"
            "  --checkpoint-every N checkpoint every N steps (default: every 5 minutes)\n"
            "  --resume CKPT        continue the run saved in CKPT (FILE.ckpt); config and\n"
            "                       options come from it, --steps may extend it\n"
            "  -t THREADS           (default: OMP_NUM_THREADS or all cores)\n"
            "\n"
            "Ctrl-C saves a checkpoint and stops (exit 130); resume with --resume FILE.ckpt.\n"
            "Under mpirun -np N: data-parallel, --batch is the global batch (a multiple of N),\n"
            "-t is threads per rank; stop with kill -USR1 MPIRUN_PID (docs/DISTRIBUTED.md).\n",
            c.image_size, c.layers, c.channels, c.res_blocks, c.codebook_size, c.code_dim,
            c.kl_weight, c.tau_start, c.tau_min, c.tau_decay, o.steps, o.batch, o.lr, o.lr_min,
            o.warmup, o.weight_decay, o.grad_clip, (unsigned long long)o.seed, o.eval_every,
            o.eval_images, o.samples_every);
}

typedef struct {
    int quiet; /* ranks other than 0 of a data-parallel run: nothing to show */
    progress_t bar;
    double compute_s, wait_s;
    long timed_steps;
    int done;
} ui_t;

static int on_event(const dvae_train_event_t *e, void *ctx)
{
    ui_t *ui = ctx;
    char status[192];
    if (ui->quiet) return stop_requested();
    switch (e->kind) {
    case DVAE_EV_STEP:
        ui->compute_s += e->step_seconds;
        ui->wait_s += e->wait_seconds;
        ui->timed_steps++;
        snprintf(status, sizeof status,
                 "loss %.5f mse %.5f psnr %.2f tau %.3f lr %.2e ppl %.1f used %d",
                 e->stats.loss, e->stats.mse,
                 10.0 * log10(1.0 / fmax(e->stats.mse / 4.0, 1e-12)), e->tau, e->lr,
                 e->stats.perplexity, e->stats.used_codes);
        progress_update(&ui->bar, e->step, status);
        break;
    case DVAE_EV_EVAL:
        progress_log(&ui->bar,
                     "step %ld: %s PSNR %.2f dB (mse %.5f) over %d images, %d codes "
                     "used, perplexity %.1f",
                     e->step, e->eval_heldout ? "held-out" : "training (none held out)",
                     e->eval_psnr, e->eval_mse, e->eval_images, e->eval_used_codes,
                     e->eval_perplexity);
        break;
    case DVAE_EV_PREVIEW:
        break;
    case DVAE_EV_CHECKPOINT:
        if (stop_requested()) progress_log(&ui->bar, "checkpoint saved to %s", e->path);
        break;
    case DVAE_EV_DONE:
        ui->done = 1;
        progress_finish(&ui->bar, "");
        break;
    }
    return stop_requested();
}

int cmd_dvae(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "train") != 0) {
        if (cmd_wants_help(argc, argv)) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "usage: dalle-c dvae train IMAGE_DIR -o FILE [options] (see --help)\n");
        return 2;
    }
    if (cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    dvae_config_t cfg = dvae_config_default();
    dvae_train_opts_t o = dvae_train_opts_default();
    const char *dir = NULL, *out = NULL, *resume = NULL, *v;
    long steps = 0;
    double epochs = 0, holdout = 0.05;
    int threads = 0, holdout_set = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
#define VALUE() if (!(v = arg_value(CMD, argc, argv, &i))) return 2
        if (strcmp(a, "-o") == 0) { VALUE(); out = v; }
        else if (strcmp(a, "--resume") == 0) { VALUE(); resume = v; }
        else if (strcmp(a, "--size") == 0) { VALUE(); if (arg_int(CMD, a, v, 8, 1024, &cfg.image_size)) return 2; }
        else if (strcmp(a, "--layers") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 6, &cfg.layers)) return 2; }
        else if (strcmp(a, "--channels") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 4096, &cfg.channels)) return 2; }
        else if (strcmp(a, "--res-blocks") == 0) { VALUE(); if (arg_int(CMD, a, v, 0, 64, &cfg.res_blocks)) return 2; }
        else if (strcmp(a, "--codebook") == 0) { VALUE(); if (arg_int(CMD, a, v, 2, 65536, &cfg.codebook_size)) return 2; }
        else if (strcmp(a, "--code-dim") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 4096, &cfg.code_dim)) return 2; }
        else if (strcmp(a, "--hard") == 0) cfg.straight_through = 1;
        else if (strcmp(a, "--kl-weight") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 1e3, &cfg.kl_weight)) return 2; }
        else if (strcmp(a, "--tau-start") == 0) { VALUE(); if (arg_float(CMD, a, v, 1e-4, 1e3, &cfg.tau_start)) return 2; }
        else if (strcmp(a, "--tau-min") == 0) { VALUE(); if (arg_float(CMD, a, v, 1e-4, 1e3, &cfg.tau_min)) return 2; }
        else if (strcmp(a, "--tau-decay") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 1, &cfg.tau_decay)) return 2; }
        else if (strcmp(a, "--steps") == 0) { VALUE(); if (arg_long(CMD, a, v, 1, 1000000000L, &steps)) return 2; }
        else if (strcmp(a, "--epochs") == 0) { VALUE(); if (arg_double(CMD, a, v, 1e-6, 1e6, &epochs)) return 2; }
        else if (strcmp(a, "--batch") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 4096, &o.batch)) return 2; }
        else if (strcmp(a, "--lr") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 10, &o.lr)) return 2; }
        else if (strcmp(a, "--lr-min") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 10, &o.lr_min)) return 2; }
        else if (strcmp(a, "--warmup") == 0) { VALUE(); if (arg_long(CMD, a, v, 0, 1000000000L, &o.warmup)) return 2; }
        else if (strcmp(a, "--weight-decay") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 10, &o.weight_decay)) return 2; }
        else if (strcmp(a, "--clip") == 0) { VALUE(); if (arg_float(CMD, a, v, 0, 1e6, &o.grad_clip)) return 2; }
        else if (strcmp(a, "--seed") == 0) { VALUE(); if (arg_u64(CMD, a, v, &o.seed)) return 2; }
        else if (strcmp(a, "--holdout") == 0) { VALUE(); if (arg_double(CMD, a, v, 0, 0.9, &holdout)) return 2; holdout_set = 1; }
        else if (strcmp(a, "--eval-every") == 0) { VALUE(); if (arg_long(CMD, a, v, 0, 1000000000L, &o.eval_every)) return 2; }
        else if (strcmp(a, "--eval-images") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 1000000, &o.eval_images)) return 2; }
        else if (strcmp(a, "--samples-every") == 0) { VALUE(); if (arg_long(CMD, a, v, 0, 1000000000L, &o.samples_every)) return 2; }
        else if (strcmp(a, "--checkpoint-every") == 0) { VALUE(); if (arg_long(CMD, a, v, 1, 1000000000L, &o.checkpoint_every)) return 2; }
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) { VALUE(); if (arg_int(CMD, a, v, 1, 1024, &threads)) return 2; }
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", CMD, a);
            return 2;
        } else if (!dir) dir = a;
        else {
            fprintf(stderr, "%s: one image folder only (got '%s' and '%s')\n", CMD, dir, a);
            return 2;
        }
#undef VALUE
    }
    if (!dir || !out) {
        fprintf(stderr, "%s: needs IMAGE_DIR and -o FILE (see --help)\n", CMD);
        return 2;
    }
    if (steps && epochs) {
        fprintf(stderr, "%s: give --steps or --epochs, not both\n", CMD);
        return 2;
    }
    char err[256];
    if (!resume && dvae_config_check(&cfg, err)) {
        fprintf(stderr, "%s: %s\n", CMD, err);
        return 2;
    }
    if (threads) nn_set_threads(threads);

    /* with --resume the image size, split and batch come from the checkpoint */
    int size = cfg.image_size;
    long resumed_step = 0, resumed_steps = 0; /* where the checkpoint's run stands */
    if (resume) {
        dvae_checkpoint_info_t info;
        if (dvae_checkpoint_info(resume, &info, err)) {
            fprintf(stderr, "%s: %s\n", CMD, err);
            return 1;
        }
        if (holdout_set && holdout != info.holdout) {
            fprintf(stderr, "%s: --holdout %g differs from the checkpoint's %g (the training "
                    "set would change); leave it out when resuming\n", CMD, holdout, info.holdout);
            return 2;
        }
        size = info.image_size;
        holdout = info.holdout;
        o.batch = info.batch;
        resumed_step = info.step;
        resumed_steps = info.steps;
    }
    ds_config_t dc = ds_config_default();
    dc.size = size;
    dc.holdout = holdout;
    ds_t *ds;
    if (ds_open(&ds, dir, &dc, err)) {
        fprintf(stderr, "%s: %s\n", CMD, err);
        return 1;
    }
    size_t ntrain = ds_count(ds, DS_TRAIN), nheld = ds_count(ds, DS_HELDOUT);
    if (epochs > 0) steps = (long)ceil(epochs * (double)ntrain / (double)o.batch);
    if (steps > 0 && !resume) o.steps = steps;
    const int root = dist_rank() == 0;
    if (root && dist_size() > 1)
        fprintf(stderr, "%s: %zu training and %zu held-out images from %s, %dx%d, global batch "
                "%d over %d ranks, %d threads each\n", CMD, ntrain, nheld, dir, size, size,
                o.batch, dist_size(), nn_threads());
    else if (root)
        fprintf(stderr, "%s: %zu training and %zu held-out images from %s, %dx%d, batch %d, %d threads\n",
                CMD, ntrain, nheld, dir, size, size, o.batch, nn_threads());

    ui_t ui;
    memset(&ui, 0, sizeof ui);
    ui.quiet = !root;
    if (root && resume)
        progress_start_at(&ui.bar, stderr, "dvae", steps > 0 ? steps : resumed_steps, resumed_step);
    else if (root)
        progress_start(&ui.bar, stderr, "dvae", o.steps);
    stop_signals_t signals;
    stop_signals_install(&signals);
    int rc = dvae_train_dist(&cfg, &o, ds, out, resume, resume ? steps : 0, dist_comm(),
                             on_event, &ui, err);
    stop_signals_restore(&signals);

    size_t bad = root ? ds_bad_count(ds) : 0;
    if (bad) {
        fprintf(stderr, "%s: skipped %zu unreadable image%s", CMD, bad, bad == 1 ? "" : "s");
        char name[512], why[256];
        for (size_t k = 0; k < bad && k < 3; k++)
            if (ds_bad(ds, k, name, why) == 0) fprintf(stderr, "%s %s", k ? ";" : ":", why);
        fprintf(stderr, "%s\n", bad > 3 ? "; ..." : "");
    }
    ds_close(ds);
    if (rc) {
        fprintf(stderr, "%s: %s\n", CMD, err);
        return 1;
    }
    if (!root) return stop_requested() ? 130 : 0;
    if (ui.timed_steps)
        fprintf(stderr, "%s: %.1f ms per step computing, %.2f ms per step waiting for data\n",
                CMD, 1e3 * ui.compute_s / ui.timed_steps, 1e3 * ui.wait_s / ui.timed_steps);
    if (!ui.done) { /* stopped: by this process's signal or, under mpirun, another rank's */
        fprintf(stderr, "%s: interrupted; resume with --resume %s.ckpt\n", CMD, out);
        return 130;
    }
    fprintf(stderr, "%s: wrote %s\n", CMD, out);
    return 0;
}
