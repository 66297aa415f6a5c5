/* The binary's basics: exit codes of --help / --version / bad usage, the OpenBLAS core
 * it ends up with, and the progress display's plain-log mode. */
#include "nn/nn.h"
#include "pipeline/progress.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

/* Runs a command line with stderr joined to stdout, keeping up to n-1 bytes of it. */
static int run(const char *cmdline, char *out, size_t n)
{
    char full[1024], *text;
    snprintf(full, sizeof full, "%s 2>&1", cmdline);
    int st = test_run(full, &text);
    snprintf(out, n, "%s", text ? text : "");
    free(text);
    return st;
}

static void test_exit_codes(const char *bin)
{
    char cmd[600], out[4096];
    printf("exit codes\n");
    snprintf(cmd, sizeof cmd, "%s --help", bin);
    check(run(cmd, out, sizeof out) == 0 && strstr(out, "usage:"), "--help: exit 0 with usage");
    snprintf(cmd, sizeof cmd, "%s", bin);
    check(run(cmd, out, sizeof out) == 2, "no arguments: exit 2");
    snprintf(cmd, sizeof cmd, "%s --no-such-flag", bin);
    check(run(cmd, out, sizeof out) == 2 && strstr(out, "--no-such-flag"),
          "unknown flag: exit 2 naming it");
}

/* The core name in "BLAS: OpenBLAS, core NAME, N threads" */
static int version_core(const char *cmdline, char *core, size_t n)
{
    char out[4096];
    if (run(cmdline, out, sizeof out) != 0) return 0;
    const char *p = strstr(out, "core ");
    if (!p) return 0;
    p += 5;
    size_t k = strcspn(p, ", \n");
    if (k >= n) return 0;
    memcpy(core, p, k);
    core[k] = 0;
    return 1;
}

static int is_fast_core(const char *core)
{
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids", 0};
    static const char *const avx2[] = {"haswell", "zen", "skylakex", "cooperlake",
                                       "sapphirerapids", 0};
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const char *const *list = has512 ? avx512 : has2 ? avx2 : 0;
    if (!list) return 1; /* nothing faster to ask for */
    for (; *list; list++)
        if (strcasecmp(core, *list) == 0) return 1;
    return 0;
}

static void test_blas_core(const char *bin)
{
    char cmd[600], core[64];
    printf("BLAS core\n");
    printf("  OpenBLAS's own pick in this process: %s (%s)\n", nn_blas_core(),
           nn_blas_better_core() ? "slow here: dalle-c re-executes" : "fast");
    snprintf(cmd, sizeof cmd, "env -u OPENBLAS_CORETYPE -u DALLEC_NO_REEXEC %s --version", bin);
    if (check(version_core(cmd, core, sizeof core), "--version prints the core")) {
        printf("  dalle-c --version reports core %s\n", core);
        check(is_fast_core(core), "dalle-c runs core %s, slower than this CPU allows", core);
    }
    /* The re-exec itself, made to happen by pretending the core is slow. */
    const char *want = nn_blas_preferred_core();
    if (want) {
        snprintf(cmd, sizeof cmd,
                 "env -u OPENBLAS_CORETYPE DALLEC_TEST_SLOW_BLAS=1 %s --version", bin);
        if (check(version_core(cmd, core, sizeof core), "--version after a re-exec"))
            check(strcasecmp(core, want) == 0, "re-exec asked for %s and got core %s", want,
                  core);
    }
    /* A core the user sets is kept, even a slow one. */
    snprintf(cmd, sizeof cmd, "env OPENBLAS_CORETYPE=Prescott %s --version", bin);
    if (check(version_core(cmd, core, sizeof core), "--version with OPENBLAS_CORETYPE"))
        check(strcasecmp(core, "Prescott") == 0, "OPENBLAS_CORETYPE=Prescott gave core %s",
              core);
}

/* OMP_WAIT_POLICY=PASSIVE by default (pipeline/main.c says why), the user's own kept */
static void test_wait_policy(const char *bin)
{
    char cmd[600], out[4096];
    printf("OpenMP wait policy\n");
    snprintf(cmd, sizeof cmd, "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u DALLEC_NO_REEXEC %s --version", bin);
    check(run(cmd, out, sizeof out) == 0 && strstr(out, "wait policy PASSIVE"),
          "the default is PASSIVE: got\n%s", out);
    snprintf(cmd, sizeof cmd, "env OMP_WAIT_POLICY=ACTIVE %s --version", bin);
    check(run(cmd, out, sizeof out) == 0 && strstr(out, "wait policy ACTIVE"),
          "a policy the user set is kept: got\n%s", out);
}

/* What the display wrote to f (NUL-terminated in buf); closes and removes the file. */
static void read_back(FILE *f, const char *path, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    remove(path);
}

static void test_progress_log(void)
{
    printf("progress display, not a terminal\n");
    char path[512];
    snprintf(path, sizeof path, "%s/progress.log", test_tmpdir());
    FILE *f = fopen(path, "w+");
    if (!check(f != NULL, "open %s", path)) return;
    progress_t p;
    progress_start(&p, f, "train", 10);
    check(!p.tty, "a file is not a terminal");
    p.log_every = 0; /* a line per update */
    for (long i = 1; i <= 10; i++) progress_update(&p, i, "loss 1.0");
    progress_finish(&p, "done");
    char buf[4096];
    read_back(f, path, buf, sizeof buf);
    check(strstr(buf, "train 5/10 (50%)") != NULL, "a line for step 5 of 10: got\n%s", buf);
    check(strstr(buf, "train 10/10 (100%)") && strstr(buf, "took") && strstr(buf, "done"),
          "a final line with the time taken: got\n%s", buf);
    check(strchr(buf, '\r') == NULL && strchr(buf, '\033') == NULL,
          "no terminal control characters in a log");

    /* A resumed job: the 1000 units done before this run are not in the rate. The start
     * time is moved back 1000 s, so a stall of the test (under 10 s) does not change the
     * figures checked: 500 units in 1000 s, 500 to go. */
    f = fopen(path, "w+");
    if (!check(f != NULL, "open %s", path)) return;
    progress_start_at(&p, f, "train", 2000, 1000);
    p.log_every = 0;
    p.t_start -= 1000.0;
    progress_update(&p, 1500, NULL);
    read_back(f, path, buf, sizeof buf);
    check(strstr(buf, "train 1500/2000 (75%) 0.50/s eta 16:4") != NULL,
          "resumed at 1000: 500 units in 1000 s is 0.50/s, about 16:40 to go: got\n%s", buf);

    char d[32];
    progress_format_duration(d, sizeof d, 3725);
    check(strcmp(d, "1:02:05") == 0, "3725 s is 1:02:05, got %s", d);
    progress_format_duration(d, sizeof d, 83);
    check(strcmp(d, "1:23") == 0, "83 s is 1:23, got %s", d);
}

int main(void)
{
    const char *bin = getenv("DALLEC_BIN");
    if (!bin) {
        printf("DALLEC_BIN is not set (run through ctest)\n");
        return 1;
    }
    test_exit_codes(bin);
    test_blas_core(bin);
    test_wait_policy(bin);
    test_progress_log();
    return test_summary("test_cli_basics");
}
