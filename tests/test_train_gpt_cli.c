/* `dalle-c train` through the command line: a run killed with SIGKILL at a random
 * moment, or interrupted with SIGINT (exit 130), and resumed from its checkpoint ends with exactly the parameters of an
 * uninterrupted run; a second run reuses the token cache; `dalle-c info` shows the
 * model file's parts; --init fine-tunes from a complete model (its weights exactly, then
 * training moves them); bad inputs give one-line errors with the documented exit codes. */
#include "dvae/dvae.h"
#include "tests/testutil.h"
#include "transformer/transformer.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bin;
static char dir[600], dvae_path[600], errfile[600];

static int run_cmd(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs cmd with stderr into errfile; returns the exit status. */
static int run_err(const char *fmt, const char *arg)
{
    char cmd[4096], full[8192];
    snprintf(cmd, sizeof cmd, fmt, arg);
    snprintf(full, sizeof full, "%s 2>%s >/dev/null", cmd, errfile);
    return run_cmd(full);
}

static int read_file(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = 0;
    fclose(f);
    return 0;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
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

#define OPTS "--text-len 12 --layers 2 --heads 2 --embd 32 --vocab 400 --batch 8 --steps 300 " \
             "--lr 0.003 --warmup 5 --checkpoint-every 10 --eval-every 100 --eval-images 8 " \
             "--samples-every 0 --seed 4 --holdout 0.2 -t 1"

static void test_sigkill(void)
{
    printf("SIGKILL and --resume through the command line\n");
    char full[700], part[700], ckpt[720], cache[700], cmd[4096], text[8192];
    snprintf(full, sizeof full, "%s/full.dalle", test_tmpdir());
    snprintf(part, sizeof part, "%s/part.dalle", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", part);
    snprintf(cache, sizeof cache, "%s/shared.tokens", test_tmpdir());
    snprintf(cmd, sizeof cmd, "%s train %s --dvae %s -o %s --token-cache %s " OPTS " 2>%s", bin,
             dir, dvae_path, full, cache, errfile);
    check(run_cmd(cmd) == 0, "uninterrupted: %s", cmd);
    read_file(errfile, text, sizeof text);
    check(strstr(text, "encoded 64 images") != NULL, "the first run encodes the cache");

    pid_t pid = fork();
    if (pid == 0) {
        snprintf(cmd, sizeof cmd, "exec %s train %s --dvae %s -o %s --token-cache %s " OPTS
                 " 2>/dev/null", bin, dir, dvae_path, part, cache);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    struct stat st;
    for (int i = 0; i < 5000 && stat(ckpt, &st) != 0; i++) usleep(2000);
    usleep(30000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
          "the run was killed by SIGKILL before it finished");
    check(stat(part, &st) != 0, "the killed run wrote no final model");
    snprintf(cmd, sizeof cmd, "%s train %s -o %s --token-cache %s --resume %s -t 1 2>%s", bin, dir,
             part, cache, ckpt, errfile);
    check(run_cmd(cmd) == 0, "resume: %s", cmd);
    read_file(errfile, text, sizeof text);
    check(strstr(text, "reused") != NULL && strstr(text, "encoded") == NULL,
          "the resumed run reuses the token cache");
    char *at = strstr(text, "resuming at step ");
    printf("  %s", at ? at : "(no resume line)\n");
    check(same_gpt(full, part), "killed and resumed == uninterrupted, bit for bit");

    /* dalle-c info shows the three parts */
    snprintf(cmd, sizeof cmd, "%s info %s >%s 2>&1", bin, full, errfile);
    check(run_cmd(cmd) == 0, "dalle-c info MODEL");
    read_file(errfile, text, sizeof text);
    check(strstr(text, "  dvae ") && strstr(text, "  gpt ") && strstr(text, "tokenizer.model") &&
              strstr(text, "model.parts = \"dvae,tokenizer,gpt\""),
          "info shows the dvae and gpt parts and the tokenizer blob");
}

static void expect_error(const char *what, int want, const char *needle, const char *fmt,
                         const char *arg)
{
    char text[4096];
    int rc = run_err(fmt, arg);
    read_file(errfile, text, sizeof text);
    int lines = count_lines(text);
    check(rc == want && lines == 1 && strstr(text, needle) != NULL,
          "%s: exit %d (want %d), %d line(s): %s", what, rc, want, lines, text);
    printf("  %s -> %d: %s", what, rc, text);
}

static void test_bad_inputs(void)
{
    printf("bad inputs\n");
    char fmt[4096], other[700], notdvae[700], out[700];
    snprintf(out, sizeof out, "%s/bad.dalle", test_tmpdir());
    snprintf(fmt, sizeof fmt, "%s train %s -o %s", bin, dir, out);
    expect_error("missing --dvae", 2, "--dvae", "%s", fmt);
    snprintf(fmt, sizeof fmt, "%s train %s --dvae %s -o %s --steps 0", bin, dir, dvae_path, out);
    expect_error("--steps 0", 2, "--steps", "%s", fmt);
    snprintf(fmt, sizeof fmt, "%s train %s --dvae %s -o %s --bogus", bin, dir, dvae_path, out);
    expect_error("unknown option", 2, "--bogus", "%s", fmt);

    /* images without captions */
    snprintf(other, sizeof other, "%s/nocaptions", test_tmpdir());
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/000001.png %s/000002.png %s/", other, dir, dir,
             other);
    run_cmd(cmd);
    snprintf(fmt, sizeof fmt, "%s train %s --dvae %s -o %s -t 1", bin, other, dvae_path, out);
    expect_error("dataset without captions", 1, "caption", "%s", fmt);

    /* a dVAE file that is not one */
    snprintf(notdvae, sizeof notdvae, "%s/not.dvae", test_tmpdir());
    FILE *f = fopen(notdvae, "w");
    if (f) fputs("this is not a model\n", f), fclose(f);
    snprintf(fmt, sizeof fmt, "%s train %s --dvae %s -o %s -t 1", bin, dir, notdvae, out);
    expect_error("a text file as --dvae", 1, "not.dvae", "%s", fmt);
    /* a model file without a dVAE: the token cache of the first test */
    snprintf(fmt, sizeof fmt, "%s train %s --dvae %s/shared.tokens -o %s -t 1", bin, dir,
             test_tmpdir(), out);
    expect_error("a model file without a dVAE as --dvae", 1, "shared.tokens", "%s", fmt);
    snprintf(fmt, sizeof fmt, "%s train %s -o %s --resume %s -t 1", bin, dir, out, dvae_path);
    expect_error("--resume with a dVAE file", 1, "checkpoint", "%s", fmt);
    snprintf(fmt, sizeof fmt, "%s train %s/missing --dvae %s -o %s -t 1", bin, dir, dvae_path, out);
    expect_error("a missing dataset folder", 1, "missing", "%s", fmt);
    struct stat st;
    check(stat(out, &st) != 0, "no model was written by any of them");

    snprintf(cmd, sizeof cmd, "%s train --help >/dev/null 2>&1", bin);
    check(run_cmd(cmd) == 0, "--help exits 0");
}

/* SIGINT saves a checkpoint and exits 130 with a message; resuming from it ends with the
 * parameters of the uninterrupted run of test_sigkill (full.dalle, same options). */
static void test_sigint(void)
{
    printf("SIGINT and --resume through the command line\n");
    char full[700], part[700], ckpt[720], cache[700], cmd[4096], text[8192];
    snprintf(full, sizeof full, "%s/full.dalle", test_tmpdir());
    snprintf(part, sizeof part, "%s/int.dalle", test_tmpdir());
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", part);
    snprintf(cache, sizeof cache, "%s/shared.tokens", test_tmpdir());
    pid_t pid = fork();
    if (pid == 0) {
        snprintf(cmd, sizeof cmd, "exec %s train %s --dvae %s -o %s --token-cache %s " OPTS
                 " 2>%s", bin, dir, dvae_path, part, cache, errfile);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    struct stat st;
    for (int i = 0; i < 5000 && stat(ckpt, &st) != 0; i++) usleep(2000);
    usleep(30000);
    kill(pid, SIGINT);
    int status;
    waitpid(pid, &status, 0);
    read_file(errfile, text, sizeof text);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 130, "the interrupted run exits 130");
    check(strstr(text, "interrupted") && strstr(text, "--resume"), "and says how to resume");
    check(stat(part, &st) != 0, "the interrupted run wrote no final model");
    snprintf(cmd, sizeof cmd, "%s train %s -o %s --token-cache %s --resume %s -t 1 2>%s", bin, dir,
             part, cache, ckpt, errfile);
    check(run_cmd(cmd) == 0, "resume: %s", cmd);
    read_file(errfile, text, sizeof text);
    char *at = strstr(text, "resuming at step ");
    printf("  %s", at ? at : "(no resume line)\n");
    check(same_gpt(full, part), "interrupted and resumed == uninterrupted, bit for bit");
}

/* --init starts from full.dalle (test_sigkill's): with lr 0 the result is that model's
 * transformer exactly; with a learning rate it moves and keeps the dVAE and tokenizer. */
static void test_init(void)
{
    printf("--init: fine-tuning a complete model\n");
    char full[700], tuned[700], cmd[4096];
    snprintf(full, sizeof full, "%s/full.dalle", test_tmpdir());
    snprintf(tuned, sizeof tuned, "%s/tuned.dalle", test_tmpdir());
    const char *common = "--batch 8 --checkpoint-every 10 --eval-every 100 --eval-images 8 "
                         "--samples-every 0 --seed 9 --holdout 0.2 -t 1";
    snprintf(cmd, sizeof cmd, "%s train %s --init %s -o %s --steps 3 --lr 0 --lr-min 0 --warmup 0 %s 2>%s",
             bin, dir, full, tuned, common, errfile);
    check(run_cmd(cmd) == 0, "fine-tune with lr 0: %s", cmd);
    check(same_gpt(full, tuned), "lr 0: the transformer is the --init model's, bit for bit");
    snprintf(cmd, sizeof cmd, "%s train %s --init %s -o %s --steps 3 --lr 0.003 --warmup 0 %s 2>%s",
             bin, dir, full, tuned, common, errfile);
    check(run_cmd(cmd) == 0, "fine-tune with lr 0.003: %s", cmd);
    check(!same_gpt(full, tuned), "a learning rate moves the weights");
    dvae_t *a, *b;
    char err[256];
    if (check(dvae_load(&a, full, 1, err) == 0 && dvae_load(&b, tuned, 1, err) == 0,
              "both dVAEs load")) {
        size_t na = dvae_param_count(a), nb = dvae_param_count(b);
        const float *pa = dvae_params(a), *pb = dvae_params(b);
        check(na == nb && memcmp(pa, pb, na * sizeof(float)) == 0,
              "the fine-tuned model carries the --init model's dVAE");
        dvae_free(a);
        dvae_free(b);
    }
    snprintf(cmd, sizeof cmd, "%s tokenizer encode -m %s 'a red square' > %s.a 2>&1 && "
             "%s tokenizer encode -m %s 'a red square' > %s.b 2>&1 && cmp -s %s.a %s.b",
             bin, full, errfile, bin, tuned, errfile, errfile, errfile);
    check(run_cmd(cmd) == 0, "and its tokenizer (same ids for a caption)");

    char fmt[4096];
    snprintf(fmt, sizeof fmt, "%s train %s --init %s -o %s --layers 3 -t 1", bin, dir, full, tuned);
    expect_error("--init with --layers", 2, "--layers", "%s", fmt);
    snprintf(fmt, sizeof fmt, "%s train %s --init %s --dvae %s -o %s -t 1", bin, dir, full,
             dvae_path, tuned);
    expect_error("--init with --dvae", 2, "--dvae", "%s", fmt);
    snprintf(fmt, sizeof fmt, "%s train %s --init %s -o %s -t 1", bin, dir, dvae_path, tuned);
    expect_error("--init with a dVAE-only file", 1, "tiny.dvae", "%s", fmt);
}

int main(void)
{
    bin = getenv("DALLEC_BIN");
    if (!check(bin != NULL, "DALLEC_BIN is set (run through ctest)")) return test_summary("test_train_gpt_cli");
    snprintf(dir, sizeof dir, "%s/shapes", test_tmpdir());
    snprintf(dvae_path, sizeof dvae_path, "%s/tiny.dvae", test_tmpdir());
    snprintf(errfile, sizeof errfile, "%s/stderr.txt", test_tmpdir());
    char cmd[2048], err[256];
    snprintf(cmd, sizeof cmd, "%s data shapes %s --count 64 --size 16 >/dev/null 2>&1", bin, dir);
    if (!check(run_cmd(cmd) == 0, "%s", cmd)) return test_summary("test_train_gpt_cli");
    dvae_config_t c = dvae_config_default();
    c.image_size = 16, c.layers = 2, c.channels = 8, c.res_blocks = 1;
    c.codebook_size = 16, c.code_dim = 8;
    dvae_t *m;
    if (dvae_create(&m, &c, 1, err)) return 1;
    dvae_init_params(m, 7);
    if (dvae_save(m, dvae_path, err)) return 1;
    dvae_free(m);
    test_sigkill();
    test_sigint();
    test_init();
    test_bad_inputs();
    return test_summary("test_train_gpt_cli");
}
