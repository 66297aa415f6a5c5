/* Mutation fuzzing of the model-file reader: mutated copies of a small valid model
 * (bit flips, byte and word overwrites with boundary values, truncation, insertion,
 * deletion, duplication, aimed at the header, directory or anywhere) go through
 * everything a loader does. Most have their CRC-32s recomputed afterwards so the damage
 * reaches the parsers and zstd behind them. Nothing may crash, hang or trip a
 * sanitizer; a refused file must give one line starting with its path.
 *
 *     test_weights_fuzz [ITERATIONS [SEED]]    (default 5000; DALLEC_FUZZ_ITERS too)
 */
#include "tests/testutil.h"
#include "tests/weights_testlib.h"

#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const uint64_t interesting[] = {0, 1, 2, 4, 7, 8, 9, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000,
                                       0xFFFF, 0x7FFFFFFF, 0x80000000u, 0xFFFFFFFFu,
                                       0x7FFFFFFFFFFFFFFFull, 0x8000000000000000ull, UINT64_MAX};

/* One random mutation of m[*n] (capacity cap). */
static void mutate(nn_rng_t *g, unsigned char *m, size_t *n, size_t cap, const unsigned char *orig,
                   size_t on)
{
    size_t len = *n;
    if (len == 0) return;
    uint64_t doff = on >= WF_HEADER_SIZE ? wf_rd64(orig + WF_H_DIR_OFF) : 0;
    int kind = (int)nn_rng_below(g, 10);
    size_t at;
    switch (nn_rng_below(g, 4)) { /* where: header, directory, first frames, anywhere */
    case 0: at = nn_rng_below(g, WF_HEADER_SIZE); break;
    case 1: at = doff < len ? doff + nn_rng_below(g, (uint32_t)(len - doff)) : 0; break;
    case 2: at = nn_rng_below(g, 256 < len ? 256 : (uint32_t)len) + (len > 600 ? 300 : 0); break;
    default: at = nn_rng_below(g, (uint32_t)len);
    }
    if (at >= len) at = len - 1;
    switch (kind) {
    case 0: case 1: m[at] ^= (unsigned char)(1u << nn_rng_below(g, 8)); break;
    case 2: m[at] = (unsigned char)nn_rng_u64(g); break;
    case 3: m[at] = (unsigned char)interesting[nn_rng_below(g, 10)]; break;
    case 4: case 5: { /* a 2/4/8-byte little-endian word */
        uint64_t v = interesting[nn_rng_below(g, sizeof interesting / 8)];
        if (nn_rng_below(g, 3) == 0) v = len + nn_rng_below(g, 64) - 32;
        size_t w = (size_t)1 << (1 + nn_rng_below(g, 3));
        for (size_t i = 0; i < w && at + i < len; i++) m[at + i] = (unsigned char)(v >> (8 * i));
        break;
    }
    case 6: *n = at; break; /* truncate */
    case 7: { /* insert */
        size_t k = 1 + nn_rng_below(g, 16);
        if (len + k > cap) break;
        memmove(m + at + k, m + at, len - at);
        for (size_t i = 0; i < k; i++) m[at + i] = (unsigned char)nn_rng_u64(g);
        *n = len + k;
        break;
    }
    case 8: { /* delete */
        size_t k = 1 + nn_rng_below(g, 16);
        if (at + k > len) k = len - at;
        memmove(m + at, m + at + k, len - at - k);
        *n = len - k;
        break;
    }
    default: { /* copy a chunk from elsewhere over this spot */
        size_t k = 1 + nn_rng_below(g, 32), from = nn_rng_below(g, (uint32_t)len);
        if (from + k > len) k = len - from;
        if (at + k > len) k = len - at;
        memmove(m + at, m + from, k);
    }
    }
}

int main(int argc, char **argv)
{
    long iters = 5000;
    uint64_t seed = 1;
    if (getenv("DALLEC_FUZZ_ITERS")) iters = atol(getenv("DALLEC_FUZZ_ITERS"));
    if (argc > 1) iters = atol(argv[1]);
    if (argc > 2) seed = (uint64_t)atoll(argv[2]);
    alarm((unsigned)(600 + iters / 10)); /* a hang ends the test */
    char path[512], err[WF_ERR_SIZE];
    snprintf(path, sizeof path, "%s/fuzz-base.dalle", test_tmpdir());
    if (!check(wt_write_model(path, 9, 1, err) == WF_OK, "base model: %s", err)) return test_summary("test_weights_fuzz");
    size_t on = 0;
    unsigned char *orig = wt_read_file(path, &on);
    size_t cap = on + 4096;
    unsigned char *m = malloc(cap);
    snprintf(path, sizeof path, "%s/fuzz.dalle", test_tmpdir());
    nn_rng_t g;
    nn_rng_seed(&g, seed);
    long accepted = 0, bad_message = 0, by_status[16] = {0};
    double t0 = now(), worst = 0;
    for (long it = 0; it < iters; it++) {
        size_t n = on;
        memcpy(m, orig, on);
        int k = 1 + (int)nn_rng_below(&g, 4);
        for (int j = 0; j < k; j++) mutate(&g, m, &n, cap, orig, on);
        if (nn_rng_below(&g, 10) < 7) wt_fix_crcs(m, n);
        if (wt_write_file(path, m, n) != 0) {
            check(0, "cannot write %s", path);
            break;
        }
        double t = now();
        err[0] = 0;
        int st = wt_read_all(path, err);
        t = now() - t;
        if (t > worst) worst = t;
        by_status[st & 15]++;
        if (st == WF_OK) {
            accepted++;
        } else if (strncmp(err, path, strlen(path)) != 0 || strchr(err, '\n')) {
            if (!bad_message++) printf("  iteration %ld: bad message \"%s\"\n", it, err);
        }
    }
    double total = now() - t0;
    printf("  %ld mutated files in %.1f s (slowest %.1f ms): %ld read without error (harmless or "
           "undone mutations), refused: %ld truncated, %ld corrupt, %ld foreign, %ld version, %ld other\n",
           iters, total, worst * 1e3, accepted, by_status[WF_ETRUNC], by_status[WF_ECORRUPT],
           by_status[WF_EFOREIGN], by_status[WF_EVERSION],
           iters - accepted - by_status[WF_ETRUNC] - by_status[WF_ECORRUPT] - by_status[WF_EFOREIGN] -
               by_status[WF_EVERSION]);
    check(bad_message == 0, "%ld refusals without a one-line \"PATH: problem\" message", bad_message);
    check(worst < 5.0, "no single file took over 5 s (slowest %.1f s)", worst);
    unlink(path);
    snprintf(path, sizeof path, "%s/fuzz-base.dalle", test_tmpdir());
    unlink(path);
    free(orig);
    free(m);
    return test_summary("test_weights_fuzz");
}
