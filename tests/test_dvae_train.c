/* dVAE training end to end on a tiny config and a folder of generated images: the loss
 * falls; a run stopped by its callback (as Ctrl-C does) and resumed from its checkpoint
 * ends with exactly the parameters of an uninterrupted run; the same through the
 * command line with a SIGKILL at a random moment; a NaN stops the run and keeps the
 * checkpoint. */
#include "data/data.h"
#include "dvae/dvae.h"
#include "nn/nn.h"
#include "tests/testutil.h"
#include "weights/weights.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* n images of S x S: a coloured square on a coloured background, a new file each. */
static void make_images(const char *dir, int n, int S)
{
    mkdir(dir, 0700);
    nn_rng_t rng;
    nn_rng_seed(&rng, 99);
    char err[256], path[700];
    for (int i = 0; i < n; i++) {
        img_t im;
        if (img_init(&im, S, S, err)) exit(1);
        uint8_t bg[3], fg[3];
        for (int c = 0; c < 3; c++) bg[c] = (uint8_t)nn_rng_below(&rng, 256);
        for (int c = 0; c < 3; c++) fg[c] = (uint8_t)nn_rng_below(&rng, 256);
        int x0 = (int)nn_rng_below(&rng, (uint32_t)S / 2), y0 = (int)nn_rng_below(&rng, (uint32_t)S / 2);
        int w = 2 + (int)nn_rng_below(&rng, (uint32_t)S / 2);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int in = x >= x0 && x < x0 + w && y >= y0 && y < y0 + w;
                for (int c = 0; c < 3; c++) im.rgb[(y * S + x) * 3 + c] = in ? fg[c] : bg[c];
            }
        snprintf(path, sizeof path, "%s/img%03d.png", dir, i);
        if (img_save_png(&im, path, NULL, 0, err)) {
            printf("%s\n", err);
            exit(1);
        }
        img_deinit(&im);
    }
}

static dvae_config_t tiny_config(void)
{
    dvae_config_t c = dvae_config_default();
    c.image_size = 16, c.layers = 2, c.channels = 8, c.res_blocks = 1;
    c.codebook_size = 16, c.code_dim = 8, c.tau_decay = 1e-2f;
    return c;
}

static dvae_train_opts_t tiny_opts(long steps)
{
    dvae_train_opts_t o = dvae_train_opts_default();
    o.steps = steps, o.batch = 4, o.warmup = 2, o.seed = 5;
    o.eval_every = 5, o.eval_images = 8, o.samples_every = 0, o.checkpoint_every = 4;
    o.lr = 3e-3f;
    return o;
}

typedef struct {
    long stop_at;
    double first_loss, last_loss; /* means over the first and the last 8 steps */
    long steps;
    double last_psnr;
} watch_t;

static int watch(const dvae_train_event_t *e, void *ctx)
{
    watch_t *w = ctx;
    if (e->kind == DVAE_EV_STEP) {
        if (e->step <= 8) w->first_loss += e->stats.loss / 8;
        if (e->step > e->steps - 8) w->last_loss += e->stats.loss / 8;
    }
    if (e->kind == DVAE_EV_EVAL) w->last_psnr = e->eval_psnr;
    return w->stop_at > 0 && e->kind == DVAE_EV_STEP && e->step >= w->stop_at;
}

/* Every tensor of two model files equal bit for bit. */
static int same_params(const char *a, const char *b)
{
    dvae_t *ma, *mb;
    char err[256];
    if (dvae_load(&ma, a, 1, err) || dvae_load(&mb, b, 1, err)) {
        printf("  %s\n", err);
        return 0;
    }
    int same = dvae_param_count(ma) == dvae_param_count(mb) &&
               memcmp(dvae_params(ma), dvae_params(mb), dvae_param_count(ma) * sizeof(float)) == 0;
    dvae_free(ma);
    dvae_free(mb);
    return same;
}

static void test_library(const char *dir)
{
    printf("training and resuming through the library\n");
    char err[256], full[600], part[600], ckpt[620];
    snprintf(full, sizeof full, "%s/full.dvae", test_tmpdir());
    snprintf(part, sizeof part, "%s/part.dvae", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", part);
    ds_config_t dc = ds_config_default();
    dc.size = 16;
    dc.holdout = 0.2;
    ds_t *ds;
    if (!check(ds_open(&ds, dir, &dc, err) == 0, "open %s: %s", dir, err)) return;
    dvae_config_t c = tiny_config();
    dvae_train_opts_t o = tiny_opts(150);

    watch_t w = {0};
    int rc = dvae_train(&c, &o, ds, full, NULL, 0, watch, &w, err);
    check(rc == 0, "uninterrupted run: %s", rc ? err : "");
    printf("  mean loss of the first 8 steps %.4f, of the last 8 %.4f; held-out PSNR %.2f dB\n",
           w.first_loss, w.last_loss, w.last_psnr);
    check(w.last_loss < 0.8 * w.first_loss, "the loss falls by 20%% in 150 steps");

    watch_t stop = {.stop_at = 13};
    rc = dvae_train(&c, &o, ds, part, NULL, 0, watch, &stop, err);
    check(rc == 0, "stopped run: %s", rc ? err : "");
    struct stat st;
    check(stat(part, &st) != 0, "a stopped run writes no final model");
    check(stat(ckpt, &st) == 0, "a stopped run leaves its checkpoint");
    ds_config_t other = dc;
    other.holdout = 0.5;
    ds_t *ds2;
    if (ds_open(&ds2, dir, &other, err) == 0) {
        rc = dvae_train(&c, &o, ds2, part, ckpt, 0, NULL, NULL, err);
        check(rc != 0 && strstr(err, "held-out"),
              "resuming over a different train/held-out split is refused: %s", err);
        ds_close(ds2);
    }
    rc = dvae_train(&c, &o, ds, part, ckpt, 0, NULL, NULL, err);
    check(rc == 0, "resumed run: %s", rc ? err : "");
    check(same_params(full, part), "stopped at step 13 and resumed == uninterrupted, bit for bit");
    ds_close(ds);
}

static int run_cmd(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_sigkill(const char *dir)
{
    printf("SIGKILL and --resume through the command line\n");
    const char *bin = getenv("DALLEC_BIN");
    if (!check(bin != NULL, "DALLEC_BIN is set (run through ctest)")) return;
    char full[600], part[600], ckpt[620], cmd[2048];
    snprintf(full, sizeof full, "%s/cli-full.dvae", test_tmpdir());
    snprintf(part, sizeof part, "%s/cli-part.dvae", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", part);
    const char *opts = "--size 16 --layers 2 --channels 8 --res-blocks 1 --codebook 16 "
                       "--code-dim 8 --batch 4 --steps 400 --checkpoint-every 10 "
                       "--eval-every 100 --eval-images 8 --samples-every 0 --seed 3 -t 1";
    snprintf(cmd, sizeof cmd, "%s dvae train %s -o %s %s 2>/dev/null", bin, dir, full, opts);
    check(run_cmd(cmd) == 0, "uninterrupted: %s", cmd);

    pid_t pid = fork();
    if (pid == 0) {
        char out[700];
        snprintf(out, sizeof out, "%s", part);
        execl(bin, bin, "dvae", "train", dir, "-o", out, "--size", "16", "--layers", "2",
              "--channels", "8", "--res-blocks", "1", "--codebook", "16", "--code-dim", "8",
              "--batch", "4", "--steps", "400", "--checkpoint-every", "10", "--eval-every",
              "100", "--eval-images", "8", "--samples-every", "0", "--seed", "3", "-t", "1",
              (char *)NULL);
        _exit(127);
    }
    /* kill it a while after its first checkpoint appears, mid-run */
    struct stat st;
    for (int i = 0; i < 2000 && stat(ckpt, &st) != 0; i++) usleep(2000);
    usleep(20000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    check(killed, "the run was killed by SIGKILL before it finished");
    check(stat(part, &st) != 0, "the killed run wrote no final model");
    snprintf(cmd, sizeof cmd, "%s dvae train %s -o %s --resume %s -t 1 2>/dev/null", bin, dir,
             part, ckpt);
    check(run_cmd(cmd) == 0, "resume: %s", cmd);
    check(same_params(full, part), "killed and resumed == uninterrupted, bit for bit");
}

static void test_nan(const char *dir)
{
    printf("a NaN loss stops the run and keeps the checkpoint\n");
    char err[256], out[600], ckpt[620];
    snprintf(out, sizeof out, "%s/nan.dvae", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    ds_config_t dc = ds_config_default();
    dc.size = 16;
    ds_t *ds;
    if (ds_open(&ds, dir, &dc, err)) return;
    dvae_config_t c = tiny_config();
    dvae_train_opts_t o = tiny_opts(40);
    o.lr = 1e30f; /* the parameters blow up within a few steps */
    o.grad_clip = 0;
    o.warmup = 0;
    int rc = dvae_train(&c, &o, ds, out, NULL, 0, NULL, NULL, err);
    check(rc != 0 && (strstr(err, "NaN") || strstr(err, "infinite")),
          "the run fails naming the bad loss: %s", err);
    struct stat st;
    check(stat(out, &st) != 0, "no final model is written");
    if (stat(ckpt, &st) == 0) {
        dvae_t *m;
        if (check(dvae_load(&m, ckpt, 1, err) == 0, "the last checkpoint still loads: %s", err)) {
            int finite = 1;
            for (size_t i = 0; i < dvae_param_count(m); i++) finite &= isfinite(dvae_params(m)[i]);
            check(finite, "the kept checkpoint's parameters are all finite");
            dvae_free(m);
        }
    }
    ds_close(ds);
}

int main(void)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/images", test_tmpdir());
    make_images(dir, 30, 16);
    nn_set_threads(1); /* tiny tensors: one thread is fastest */
    test_library(dir);
    test_sigkill(dir);
    test_nan(dir);
    return test_summary("test_dvae_train");
}
