/* Training safety through the command line (docs/RELIABILITY.md):
 * - a full disk (RLIMIT_FSIZE in the child) while `dalle-c dvae train` saves a checkpoint:
 *   the run fails with exit 1 naming the checkpoint, the previous checkpoint is unchanged
 *   and still loads, and no temporary file is left;
 * - SIGINT during `dalle-c dvae train`: a checkpoint is saved, exit 130 with a message,
 *   and resuming from it ends with exactly the parameters of an uninterrupted run.
 * NaN/infinite losses and SIGKILL are tested in test_dvae_train.c, test_train_gpt.c and
 * test_train_gpt_cli.c. */
#include "data/data.h"
#include "dvae/dvae.h"
#include "nn/nn.h"
#include "tests/testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define OPTS "--size", "16", "--layers", "2", "--channels", "8", "--res-blocks", "1", \
             "--codebook", "16", "--code-dim", "8", "--batch", "4", "--eval-every", "100000", \
             "--eval-images", "8", "--samples-every", "0", "--seed", "3", "-t", "1"

static void make_images(const char *dir, int n, int S)
{
    mkdir(dir, 0700);
    nn_rng_t rng;
    nn_rng_seed(&rng, 7);
    char err[256], path[700];
    for (int i = 0; i < n; i++) {
        img_t im;
        if (img_init(&im, S, S, err)) exit(1);
        for (int k = 0; k < S * S * 3; k++) im.rgb[k] = (uint8_t)nn_rng_below(&rng, 256);
        snprintf(path, sizeof path, "%s/img%03d.png", dir, i);
        if (img_save_png(&im, path, NULL, 0, err)) exit(1);
        img_deinit(&im);
    }
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    return b;
}

/* Starts `dalle-c dvae train DIR -o OUT OPTS --steps STEPS [--checkpoint-every C]
 * [--resume OUT.ckpt]` with stderr to LOG; fsize > 0 limits the child's file size. */
static pid_t start(const char *dir, const char *out, const char *steps, const char *every,
                   int resume, long fsize, const char *log)
{
    const char *bin = getenv("DALLEC_BIN");
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    pid_t pid = fork();
    if (pid != 0) return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) dup2(fd, 2), close(fd);
    if (fsize > 0) {
        signal(SIGXFSZ, SIG_IGN); /* inherited through exec: writes fail with EFBIG */
        struct rlimit rl = {(rlim_t)fsize, (rlim_t)fsize};
        setrlimit(RLIMIT_FSIZE, &rl);
    }
    if (resume)
        execl(bin, bin, "dvae", "train", dir, "-o", out, "--resume", ckpt, "--steps", steps,
              "--checkpoint-every", every, "-t", "1", (char *)NULL);
    else
        execl(bin, bin, "dvae", "train", dir, "-o", out, OPTS, "--steps", steps,
              "--checkpoint-every", every, (char *)NULL);
    _exit(127);
}

static int wait_status(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static char *slurp(const char *path)
{
    size_t n = 0;
    unsigned char *b = read_file(path, &n);
    char *s = malloc(n + 1);
    if (b) memcpy(s, b, n);
    s[b ? n : 0] = 0;
    free(b);
    return s;
}

static int same_params(const char *a, const char *b)
{
    char err[256];
    dvae_t *ma, *mb;
    if (dvae_load(&ma, a, 1, err)) return check(0, "%s", err);
    if (dvae_load(&mb, b, 1, err)) {
        dvae_free(ma);
        return check(0, "%s", err);
    }
    int same = dvae_param_count(ma) == dvae_param_count(mb) &&
               memcmp(dvae_params(ma), dvae_params(mb), dvae_param_count(ma) * sizeof(float)) == 0;
    dvae_free(ma);
    dvae_free(mb);
    return same;
}

static void test_full_disk(const char *dir)
{
    printf("full disk while `dalle-c dvae train` saves a checkpoint\n");
    char out[600], ckpt[700], log[700], cmd[1500];
    snprintf(out, sizeof out, "%s/disk.dvae", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", out);
    snprintf(log, sizeof log, "%s/disk.log", test_tmpdir());
    check(wait_status(start(dir, out, "8", "4", 0, 0, log)) == 0, "a first run of 8 steps writes %s", ckpt);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = read_file(ckpt, &n0);
    if (!check(before && n0 > 0, "the checkpoint exists")) return;
    unlink(out);
    /* resumed to 16 steps with files limited to half a checkpoint: its next save fails */
    int st = wait_status(start(dir, out, "16", "4", 1, (long)n0 / 2, log));
    char *msg = slurp(log);
    const char *last = msg + strlen(msg);
    while (last > msg && last[-1] == '\n') last--;
    while (last > msg && last[-1] != '\n') last--;
    printf("  exit %d: %s", st, last);
    check(st == 1, "the run exits 1 (got %d)", st);
    check(strstr(msg, ".ckpt") != NULL && strstr(msg, "previous checkpoint is kept") != NULL,
          "its message names the checkpoint and says the previous one is kept: %s", msg);
    unsigned char *after = read_file(ckpt, &n1);
    check(after && n0 == n1 && memcmp(before, after, n0) == 0, "the previous checkpoint is unchanged");
    dvae_checkpoint_info_t info;
    char err[256];
    check(dvae_checkpoint_info(ckpt, &info, err) == 0 && info.step == 8,
          "it still loads, at step 8: %s", dvae_checkpoint_info(ckpt, &info, err) ? err : "ok");
    struct stat sb;
    check(stat(out, &sb) != 0, "no final model");
    snprintf(cmd, sizeof cmd, "ls %s | grep -q 'tmp'", test_tmpdir());
    check(system(cmd) != 0, "no temporary file left behind");
    free(msg);
    free(before);
    free(after);
}

static void test_sigint(const char *dir)
{
    printf("SIGINT during `dalle-c dvae train`, then --resume\n");
    char full[600], part[600], ckpt[700], log[700];
    snprintf(full, sizeof full, "%s/int-full.dvae", test_tmpdir());
    snprintf(part, sizeof part, "%s/int-part.dvae", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", part);
    snprintf(log, sizeof log, "%s/int.log", test_tmpdir());
    const char *steps = "2000";
    check(wait_status(start(dir, full, steps, "10", 0, 0, log)) == 0, "uninterrupted run");
    pid_t pid = start(dir, part, steps, "10", 0, 0, log);
    struct stat sb;
    /* the handler is installed once a checkpoint exists */
    for (int i = 0; i < 5000 && stat(ckpt, &sb) != 0; i++) usleep(2000);
    usleep(20000);
    kill(pid, SIGINT);
    int st = wait_status(pid);
    char *msg = slurp(log);
    check(st == 130, "exit 130 (got %d)", st);
    check(strstr(msg, "interrupted") && strstr(msg, "--resume"), "says so: %s", msg);
    dvae_checkpoint_info_t info;
    char err[256];
    if (check(dvae_checkpoint_info(ckpt, &info, err) == 0, "the checkpoint loads: %s", err))
        printf("  interrupted at step %ld of %ld\n", info.step, info.steps);
    check(stat(part, &sb) != 0, "no final model yet");
    check(wait_status(start(dir, part, steps, "10", 1, 0, log)) == 0, "resumed run");
    check(same_params(full, part), "interrupted and resumed == uninterrupted, bit for bit");
    free(msg);
}

int main(void)
{
    if (!check(getenv("DALLEC_BIN") != NULL, "DALLEC_BIN is set (run through ctest)"))
        return test_summary("test_train_safety");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/images", test_tmpdir());
    make_images(dir, 24, 16);
    test_full_disk(dir);
    test_sigint(dir);
    return test_summary("test_train_safety");
}
