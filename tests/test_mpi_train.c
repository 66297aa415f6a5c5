/* Data-parallel training under mpirun (docs/DISTRIBUTED.md): one step with global batch B
 * on 1 rank and on 2 ranks (B/2 each) gives the same parameters and AdamW moments within
 * float tolerance, for the dVAE and for the transformer; and a 2-rank run resumed from a
 * checkpoint written by a 2-rank run ends bit for bit where an uninterrupted 2-rank run
 * does. Without MPI in the build, or without mpirun on PATH, it prints
 * "test_mpi_train: skipped: ..." and exits with TEST_SKIPPED, which ctest shows as
 * "Skipped". */
#include "tests/testutil.h"
#include "weights/weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The moments after one step are (1-beta1) g and (1-beta2) g^2: they compare the averaged
 * gradients themselves. The ranks sum in another order than one process (each rank's
 * batch in its GEMMs, then the all-reduce), so equal within float rounding, not bit for
 * bit; the tolerance is check_close's relative error (scale floor 1e-3 of the tensor's
 * largest value). */
#define TOL 1e-3

static const char *bin;
static char dir[600];

/* Runs one line with Open MPI's root permission set (we run as root in CI). */
static int sh(const char *cmd)
{
    int rc = test_run(cmd, NULL);
    if (rc != 0) printf("  command failed (%d): %s\n", rc, cmd);
    return rc;
}

#define MPIRUN "mpirun -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 "

/* For parameter NAME, a mask of the elements whose gradient is more than rounding noise
 * (|opt.m.NAME| > 1e-6 of the tensor's largest), or NULL when the file has no moments for
 * it. Where a gradient is zero in exact arithmetic (the attention's key bias: softmax
 * ignores a constant added to every score) both runs hold only rounding noise, and
 * AdamW's first step, lr * m / sqrt(v), turns noise of either sign into +-lr. */
static float *noise_mask(wf_reader_t *r, const char *name, size_t n)
{
    char mname[160];
    char err[WF_ERR_SIZE];
    snprintf(mname, sizeof mname, "opt.m.%s", name);
    const wf_entry_t *e = wf_reader_find(r, mname);
    if (!e || e->numel != n) return NULL;
    float *m = malloc(n * sizeof(float));
    if (!m || wf_reader_load_entry(r, e, m, err)) {
        free(m);
        return NULL;
    }
    float mx = 0;
    for (size_t k = 0; k < n; k++) mx = fmaxf(mx, fabsf(m[k]));
    for (size_t k = 0; k < n; k++) m[k] = fabsf(m[k]) > 1e-6f * mx ? 1.0f : 0.0f;
    return m;
}

/* Every f32 tensor of a against b by name; same_bits: memcmp instead of tolerance.
 * only_prefix: compare the tensors whose names start with it (NULL: all). */
static void compare_files(const char *label, const char *a, const char *b, int same_bits,
                          const char *only_prefix)
{
    wf_reader_t *ra, *rb;
    char err[WF_ERR_SIZE];
    if (!check(wf_reader_open(&ra, a, err) == 0, "%s: %s", label, err)) return;
    if (!check(wf_reader_open(&rb, b, err) == 0, "%s: %s", label, err)) {
        wf_reader_close(ra);
        return;
    }
    int tensors = 0, differ = 0;
    long masked = 0;
    double worst = 0;
    for (int i = 0; i < wf_reader_count(ra); i++) {
        const wf_entry_t *ea = wf_reader_entry(ra, i);
        if (ea->kind != WF_TENSOR || ea->dtype != WF_F32) continue;
        if (only_prefix && strncmp(ea->name, only_prefix, strlen(only_prefix)) != 0) continue;
        const wf_entry_t *eb = wf_reader_find(rb, ea->name);
        if (!check(eb && eb->numel == ea->numel, "%s: tensor %s missing or resized in %s", label,
                   ea->name, b))
            continue;
        float *x = malloc(ea->numel * sizeof(float)), *y = malloc(ea->numel * sizeof(float));
        if (x && y && wf_reader_load_entry(ra, ea, x, err) == 0 &&
            wf_reader_load_entry(rb, eb, y, err) == 0) {
            tensors++;
            if (same_bits) {
                differ += memcmp(x, y, ea->numel * sizeof(float)) != 0;
            } else {
                /* as check_close, quietly, to print one line per file */
                float *m = noise_mask(rb, ea->name, ea->numel);
                double mx = 0, rel = 0;
                for (size_t k = 0; k < ea->numel; k++) mx = fmax(mx, fabs(y[k]));
                double floor = fmax(1e-3 * mx, 1e-30);
                for (size_t k = 0; k < ea->numel; k++) {
                    if (m && m[k] == 0) {
                        masked++;
                        continue;
                    }
                    rel = fmax(rel, fabs((double)x[k] - y[k]) / fmax(fabs(y[k]), floor));
                }
                free(m);
                if (rel > worst) worst = rel;
                if (rel > TOL) {
                    printf("  %s: %s max rel err %.3g > %g\n", label, ea->name, rel, TOL);
                    differ++;
                }
            }
        } else {
            check(0, "%s: %s", label, err);
        }
        free(x), free(y);
    }
    if (same_bits)
        check(tensors > 0 && differ == 0, "%s: %d of %d tensors differ bit for bit", label,
              differ, tensors);
    else
        check(tensors > 0 && differ == 0, "%s: %d of %d tensors beyond tolerance", label, differ,
              tensors);
    printf("  %s: %d tensors, %s (worst rel err %.3g, tol %g; %ld parameters with a "
           "rounding-noise gradient left out)\n", label, tensors, differ ? "FAIL" : "ok",
           same_bits ? 0.0 : worst, same_bits ? 0.0 : TOL, masked);
    wf_reader_close(ra);
    wf_reader_close(rb);
}

#define DVAE_OPTS "--size 16 --layers 2 --channels 8 --res-blocks 1 --codebook 16 " \
                  "--code-dim 8 --batch 8 --eval-every 0 --eval-images 4 --samples-every 0 " \
                  "--lr 0.01 --lr-min 0.01 --warmup 0 --seed 3 -t 1"

static void test_dvae(void)
{
    printf("dVAE: one step, global batch 8, on 1 rank and on 2 ranks\n");
    char cmd[4096];
    const char *t = test_tmpdir();
    snprintf(cmd, sizeof cmd, "%s dvae train %s -o %s/d1.dvae " DVAE_OPTS " --steps 1 >/dev/null 2>&1",
             bin, dir, t);
    if (sh(cmd)) return check(0, "1-rank dVAE run"), (void)0;
    snprintf(cmd, sizeof cmd, MPIRUN "%s dvae train %s -o %s/d2.dvae " DVAE_OPTS
             " --steps 1 >/dev/null 2>&1", bin, dir, t);
    if (sh(cmd)) return check(0, "2-rank dVAE run"), (void)0;
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/d2.dvae.ckpt", t);
    snprintf(b, sizeof b, "%s/d1.dvae.ckpt", t);
    compare_files("dVAE parameters and moments, 2 ranks vs 1", a, b, 0, NULL);
}

/* The learning rate is constant (--lr-min = --lr): a run of 2 steps extended to 3 then
 * follows the schedule of a run of 3. */
static void test_dvae_resume(void)
{
    printf("dVAE: 2 ranks, 3 steps, against 2 ranks resumed after 2 from their checkpoint\n");
    char cmd[4096];
    const char *t = test_tmpdir();
    snprintf(cmd, sizeof cmd, MPIRUN "%s dvae train %s -o %s/full.dvae " DVAE_OPTS
             " --steps 3 >/dev/null 2>&1", bin, dir, t);
    if (sh(cmd)) return check(0, "2-rank dVAE 3 steps"), (void)0;
    snprintf(cmd, sizeof cmd, MPIRUN "%s dvae train %s -o %s/part.dvae " DVAE_OPTS
             " --steps 2 >/dev/null 2>&1", bin, dir, t);
    if (sh(cmd)) return check(0, "2-rank dVAE 2 steps"), (void)0;
    snprintf(cmd, sizeof cmd, MPIRUN "%s dvae train %s -o %s/part.dvae --resume %s/part.dvae.ckpt "
             "--steps 3 -t 1 >/dev/null 2>&1", bin, dir, t, t);
    if (sh(cmd)) return check(0, "2-rank dVAE resume"), (void)0;
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/part.dvae.ckpt", t);
    snprintf(b, sizeof b, "%s/full.dvae.ckpt", t);
    compare_files("dVAE resumed vs uninterrupted, 2 ranks", a, b, 1, NULL);
}

#define GPT_OPTS "--text-len 12 --layers 1 --heads 2 --embd 16 --vocab 400 --batch 8 " \
                 "--eval-every 0 --eval-images 4 --samples-every 0 --holdout 0.2 --seed 4 " \
                 "--lr 0.003 --lr-min 0.003 --warmup 0 -t 1"

static void test_gpt(void)
{
    char cmd[4096];
    const char *t = test_tmpdir();
    /* a dVAE to train on: the 1-rank one from test_dvae, extended a little */
    snprintf(cmd, sizeof cmd, "%s dvae train %s -o %s/g.dvae " DVAE_OPTS " --steps 3 >/dev/null 2>&1",
             bin, dir, t);
    if (sh(cmd)) return check(0, "dVAE for the transformer"), (void)0;
    /* the text loss alone is weighted by each shard's share of the non-PAD targets
     * (train_gpt.c, shard_backward): with and without it */
    const char *variants[2][2] = {{"--text-weight 0 --p-null 0", "image loss only"},
                                  {"", "default loss weights, caption dropout"}};
    for (int v = 0; v < 2; v++) {
        printf("transformer: one step, global batch 8, on 1 rank and on 2 ranks (%s)\n",
               variants[v][1]);
        snprintf(cmd, sizeof cmd, "%s train %s --dvae %s/g.dvae -o %s/t1_%d.dalle --token-cache "
                 "%s/t.tokens " GPT_OPTS " %s --steps 1 >/dev/null 2>&1", bin, dir, t, t, v, t,
                 variants[v][0]);
        if (sh(cmd)) return check(0, "1-rank transformer run"), (void)0;
        snprintf(cmd, sizeof cmd, MPIRUN "%s train %s --dvae %s/g.dvae -o %s/t2_%d.dalle "
                 "--token-cache %s/t2_%d.tokens " GPT_OPTS " %s --steps 1 >/dev/null 2>&1", bin,
                 dir, t, t, v, t, v, variants[v][0]);
        if (sh(cmd)) return check(0, "2-rank transformer run"), (void)0;
        char a[700], b[700], label[128];
        snprintf(a, sizeof a, "%s/t2_%d.dalle.ckpt", t, v);
        snprintf(b, sizeof b, "%s/t1_%d.dalle.ckpt", t, v);
        snprintf(label, sizeof label, "transformer parameters and moments (%s), 2 ranks vs 1",
                 variants[v][1]);
        compare_files(label, a, b, 0, NULL);
    }
    printf("transformer: 2 ranks, 3 steps, against 2 ranks resumed after 2\n");
    snprintf(cmd, sizeof cmd, MPIRUN "%s train %s --dvae %s/g.dvae -o %s/tf.dalle --token-cache "
             "%s/t.tokens " GPT_OPTS " --steps 3 >/dev/null 2>&1", bin, dir, t, t, t);
    if (sh(cmd)) return check(0, "2-rank transformer 3 steps"), (void)0;
    snprintf(cmd, sizeof cmd, MPIRUN "%s train %s --dvae %s/g.dvae -o %s/tp.dalle --token-cache "
             "%s/t.tokens " GPT_OPTS " --steps 2 >/dev/null 2>&1", bin, dir, t, t, t);
    if (sh(cmd)) return check(0, "2-rank transformer 2 steps"), (void)0;
    snprintf(cmd, sizeof cmd, MPIRUN "%s train %s -o %s/tp.dalle --token-cache %s/t.tokens "
             "--resume %s/tp.dalle.ckpt --steps 3 -t 1 >/dev/null 2>&1", bin, dir, t, t, t);
    if (sh(cmd)) return check(0, "2-rank transformer resume"), (void)0;
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/tp.dalle.ckpt", t);
    snprintf(b, sizeof b, "%s/tf.dalle.ckpt", t);
    compare_files("transformer resumed vs uninterrupted, 2 ranks", a, b, 1, NULL);
}

int main(void)
{
#ifndef DALLEC_HAVE_MPI
    printf("test_mpi_train: skipped: built without MPI (DALLEC_HAVE_MPI is not defined)\n");
    return TEST_SKIPPED;
#endif
    if (test_run("command -v mpirun >/dev/null 2>&1", NULL) != 0) {
        printf("test_mpi_train: skipped: no mpirun on PATH\n");
        return TEST_SKIPPED;
    }
    bin = getenv("DALLEC_BIN");
    if (!check(bin != NULL, "DALLEC_BIN is set (run through ctest)")) return test_summary("test_mpi_train");
    /* Open MPI refuses to run as root without these */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    /* A sanitizer build: Open MPI's own allocations live until exit and LSan would report
     * them from every rank; tests/lsan_mpi.supp suppresses stacks inside the MPI libraries
     * only (harmless in a build without sanitizers). */
    const char *src = getenv("DALLEC_SOURCE_DIR");
    const char *prev = getenv("LSAN_OPTIONS");
    char lsan[2048];
    snprintf(lsan, sizeof lsan, "%s%ssuppressions=%s/tests/lsan_mpi.supp:fast_unwind_on_malloc=0",
             prev ? prev : "", prev && *prev ? ":" : "", src ? src : ".");
    setenv("LSAN_OPTIONS", lsan, 1);
    snprintf(dir, sizeof dir, "%s/shapes", test_tmpdir());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s data shapes %s --count 64 --size 16 >/dev/null 2>&1", bin, dir);
    if (!check(test_run(cmd, NULL) == 0, "dalle-c data shapes")) return test_summary("test_mpi_train");
    test_dvae();
    test_dvae_resume();
    test_gpt();
    return test_summary("test_mpi_train");
}
