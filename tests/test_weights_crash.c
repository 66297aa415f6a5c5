/* A save killed with SIGKILL part-way leaves the previous model file intact: a child
 * saves a ~5 MB model over and over, the parent kills it -9 while a temporary file is
 * being written, then checks that PATH still reads and is byte-for-byte either the
 * first version or a complete later one, and that saving again works despite the
 * leftover temporary files. */
#include "tests/testutil.h"
#include "tests/weights_testlib.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIG_SCALE 400 /* ~5 MB of tensors */

/* Number of files in dir whose names start with prefix; *bytes gets the largest size. */
static int temp_files(const char *dir, const char *prefix, long *bytes)
{
    DIR *d = opendir(dir);
    int count = 0;
    *bytes = 0;
    if (!d) return 0;
    char full[1024];
    for (struct dirent *de; (de = readdir(d));) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0) continue;
        count++;
        struct stat sb;
        snprintf(full, sizeof full, "%s/%s", dir, de->d_name);
        if (stat(full, &sb) == 0 && sb.st_size > *bytes) *bytes = (long)sb.st_size;
    }
    closedir(d);
    return count;
}

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - 1000 * (time_t)(ms / 1000)) * 1e6)};
    nanosleep(&ts, NULL);
}

int main(void)
{
    const char *dir = test_tmpdir();
    char path[512], pathb[512], err[WF_ERR_SIZE];
    snprintf(path, sizeof path, "%s/ckpt.dalle", dir);
    snprintf(pathb, sizeof pathb, "%s/ckpt-b.dalle", dir);
    if (!check(wt_write_model(path, 1, 1, err) == WF_OK, "first save: %s", err) ||
        !check(wt_write_model(pathb, 2, BIG_SCALE, err) == WF_OK, "reference save: %s", err))
        return test_summary("test_weights_crash");
    size_t na, nb;
    unsigned char *a = wt_read_file(path, &na), *b = wt_read_file(pathb, &nb);
    printf("  version A %zu bytes, version B %zu bytes\n", na, nb);
    int mid_save = 0, rounds = 6;
    for (int round = 0; round < rounds; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            char e[WF_ERR_SIZE];
            for (;;)
                if (wt_write_model(path, 2, BIG_SCALE, e) != WF_OK) _exit(3);
        }
        /* kill while a temporary file is growing: round 0 during the very first save, the
         * others after a varying delay */
        long bytes = 0;
        char mine[64];
        snprintf(mine, sizeof mine, "ckpt.dalle.tmp.%ld.", (long)pid);
        double waited = 0, delay = round == 0 ? 0 : 20.0 * round;
        while (waited < 10000) {
            if (waited >= delay && temp_files(dir, mine, &bytes) && bytes > 4096) break;
            sleep_ms(0.2);
            waited += 0.2;
        }
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (killed && bytes > 4096) mid_save++;
        size_t n;
        unsigned char *now = wt_read_file(path, &n);
        int is_a = now && n == na && memcmp(now, a, na) == 0;
        int is_b = now && n == nb && memcmp(now, b, nb) == 0;
        check(killed, "round %d: child was killed by SIGKILL", round);
        check(is_a || is_b, "round %d: file is intact (equal to a complete version)", round);
        if (round == 0) check(is_a, "round 0: killed during the first save, the file is still version A");
        check(wt_read_all(path, err) == WF_OK, "round %d: file reads: %s", round, err);
        printf("  round %d: killed after %.0f ms with a %ld-byte temporary file; file is version %s\n",
               round, waited, bytes, is_a ? "A" : is_b ? "B" : "?");
        free(now);
    }
    check(mid_save >= rounds - 1, "kills landed mid-save in %d of %d rounds", mid_save, rounds);
    long bytes;
    int left = temp_files(dir, "ckpt.dalle.tmp.", &bytes);
    printf("  %d leftover temporary file(s) from the killed saves\n", left);
    check(left == mid_save, "one leftover temporary per interrupted save (%d, %d)", left, mid_save);
    check(wt_write_model(path, 1, 1, err) == WF_OK, "saving again beside leftover temporaries: %s", err);
    size_t n;
    unsigned char *now = wt_read_file(path, &n);
    check(now && n == na && memcmp(now, a, na) == 0, "the new save is complete");
    check(temp_files(dir, "ckpt.dalle.tmp.", &bytes) == left, "a successful save leaves no new temporary");
    free(now);
    free(a);
    free(b);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/ckpt.dalle '%s'/ckpt-b.dalle '%s'/ckpt.dalle.tmp.*", dir, dir, dir);
    check(system(cmd) == 0, "cleanup");
    return test_summary("test_weights_crash");
}
