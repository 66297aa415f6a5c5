/* Runs a libFuzzer target without libFuzzer (any compiler; ASan/UBSan when the build has
 * them): every file of the corpus once, then deterministic mutations of them made with
 * nn_rng (bit flips, boundary values, insertions, deletions, truncation, chunk copies,
 * splices of two corpus files), until the mutation count or the time budget runs out.
 * The same seed replays the same inputs; a crashing input is saved before the target
 * runs it, so it is left behind as CRASH_FILE when the process dies.
 *
 *   fuzz_NAME_run [-n MUTATIONS] [-t SECONDS] [-s SEED] [-o CRASH_FILE] CORPUS_DIR|FILE...
 *   fuzz_NAME_run FILE          (one file, e.g. a crash from libFuzzer, replayed)
 *
 * Defaults: -n 1000 -t 0 (no time limit) -s 1 -o $TMPDIR/PROGRAM-crash.bin (TMPDIR: /tmp).
 * The crash file is removed after a run without a crash. */
#include "nn/nn.h"
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#define FUZZ_MAX_INPUT (1 << 20)

typedef struct {
    unsigned char *data;
    size_t size;
} input_t;

static input_t *inputs;
static size_t n_inputs, cap_inputs;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "driver: cannot open %s\n", path);
        exit(2);
    }
    unsigned char *buf = malloc(FUZZ_MAX_INPUT);
    size_t n = buf ? fread(buf, 1, FUZZ_MAX_INPUT, f) : 0;
    fclose(f);
    if (!buf) exit(2);
    if (n_inputs == cap_inputs) {
        cap_inputs = cap_inputs ? 2 * cap_inputs : 64;
        inputs = realloc(inputs, cap_inputs * sizeof *inputs);
        if (!inputs) exit(2);
    }
    inputs[n_inputs++] = (input_t){buf, n};
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's regular files in name order (so runs are reproducible), or one file. */
static void add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) exit(2);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        if (!names || !(names[n++] = strdup(e->d_name))) exit(2);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) add_file(p);
        free(names[i]);
    }
    free(names);
}

static const uint64_t interesting[] = {0, 1, 2, 7, 8, 9, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000,
                                       0xFFFF, 0x7FFFFFFF, 0x80000000u, 0xFFFFFFFFu,
                                       0x7FFFFFFFFFFFFFFFull, 0x8000000000000000ull, UINT64_MAX};
static const char *const words[] = {" ", "\n", "\r\n", "\t", "#", "-", "+", "0", "9", "-1",
                                    "=", ".", "e", "\x00", "\xff", "\xc3\xa9", "nan", "inf",
                                    "99999999999999999999", "1e308", "0x10"};

/* One mutation of m[*n] (capacity FUZZ_MAX_INPUT). */
static void mutate(nn_rng_t *g, unsigned char *m, size_t *n)
{
    size_t len = *n;
    size_t at = len ? nn_rng_below(g, (uint32_t)len) : 0;
    switch (nn_rng_below(g, 11)) {
    case 0: case 1:
        if (len) m[at] ^= (unsigned char)(1u << nn_rng_below(g, 8));
        break;
    case 2:
        if (len) m[at] = (unsigned char)nn_rng_u64(g);
        break;
    case 3: { /* a little-endian or big-endian word of a boundary value */
        uint64_t v = interesting[nn_rng_below(g, sizeof interesting / sizeof *interesting)];
        size_t w = (size_t)1 << nn_rng_below(g, 4);
        int be = (int)nn_rng_below(g, 2);
        for (size_t i = 0; i < w && at + i < len; i++)
            m[at + i] = (unsigned char)(v >> (8 * (be ? w - 1 - i : i)));
        break;
    }
    case 4: *n = at; break; /* truncate */
    case 5: case 6: { /* insert a word text parsers care about, or random bytes */
        const char *w = words[nn_rng_below(g, sizeof words / sizeof *words)];
        int word = (int)nn_rng_below(g, 2);
        size_t k = word ? (w[0] ? strlen(w) : 1) : 1 + nn_rng_below(g, 16);
        if (len + k > FUZZ_MAX_INPUT) break;
        memmove(m + at + k, m + at, len - at);
        for (size_t i = 0; i < k; i++)
            m[at + i] = word ? (unsigned char)w[i] : (unsigned char)nn_rng_u64(g);
        *n = len + k;
        break;
    }
    case 7: { /* delete */
        size_t k = 1 + nn_rng_below(g, 16);
        if (at + k > len) k = len - at;
        memmove(m + at, m + at + k, len - at - k);
        *n = len - k;
        break;
    }
    case 8: { /* copy a chunk of itself over this spot */
        if (!len) break;
        size_t k = 1 + nn_rng_below(g, 64), from = nn_rng_below(g, (uint32_t)len);
        if (from + k > len) k = len - from;
        if (at + k > len) k = len - at;
        memmove(m + at, m + from, k);
        break;
    }
    case 9: { /* duplicate a chunk (repeats rows, chunks, lines) */
        size_t k = 1 + nn_rng_below(g, 256);
        if (at + k > len) k = len - at;
        if (len + k > FUZZ_MAX_INPUT) break;
        memmove(m + at + k, m + at, len - at);
        *n = len + k;
        break;
    }
    default: { /* splice: the tail of another corpus file from here on */
        const input_t *o = &inputs[nn_rng_below(g, (uint32_t)n_inputs)];
        size_t from = o->size ? nn_rng_below(g, (uint32_t)o->size) : 0;
        size_t k = o->size - from;
        if (at + k > FUZZ_MAX_INPUT) k = FUZZ_MAX_INPUT - at;
        memcpy(m + at, o->data + from, k);
        *n = at + k;
    }
    }
}

static const char *crash_path;

/* Runs the target on an exact-size heap copy (so ASan sees a read past the end),
 * saving the input first when a crash file is wanted. */
static void run_one(const unsigned char *data, size_t size)
{
    if (crash_path) {
        FILE *f = fopen(crash_path, "wb");
        if (f) fwrite(data, 1, size, f), fclose(f);
    }
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) exit(2);
    memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
}

int main(int argc, char **argv)
{
    long mutations = 1000;
    double seconds = 0;
    uint64_t seed = 1;
    char crash_buf[1024];
    const char *t = getenv("TMPDIR");
    const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    snprintf(crash_buf, sizeof crash_buf, "%s/%s-crash.bin", t && *t ? t : "/tmp", base);
    crash_path = crash_buf;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0) mutations = atol(argv[i + 1]);
        else if (strcmp(argv[i], "-t") == 0) seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "-s") == 0) seed = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "-o") == 0) crash_path = argv[i + 1];
        else break;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: %s [-n MUTATIONS] [-t SECONDS] [-s SEED] [-o CRASH_FILE] "
                        "CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (; i < argc; i++) add_path(argv[i]);
    if (n_inputs == 0) {
        fprintf(stderr, "driver: empty corpus\n");
        return 2;
    }
    double t0 = now();
    for (size_t k = 0; k < n_inputs; k++) run_one(inputs[k].data, inputs[k].size);
    unsigned char *m = malloc(FUZZ_MAX_INPUT);
    if (!m) return 2;
    nn_rng_t g;
    nn_rng_seed(&g, seed);
    long done = 0;
    double slowest = 0;
    for (; done < mutations; done++) {
        if (seconds > 0 && now() - t0 > seconds) break;
        const input_t *in = &inputs[nn_rng_below(&g, (uint32_t)n_inputs)];
        size_t n = in->size;
        memcpy(m, in->data, n);
        int k = 1 + (int)nn_rng_below(&g, 5);
        for (int j = 0; j < k; j++) mutate(&g, m, &n);
        double t1 = now();
        run_one(m, n);
        if (now() - t1 > slowest) slowest = now() - t1;
    }
    double total = now() - t0;
    printf("%s: %zu corpus files and %ld mutations (seed %llu) in %.1f s, %.0f execs/s, "
           "slowest %.1f ms: no crash\n",
           argv[0], n_inputs, done, (unsigned long long)seed, total,
           (double)(n_inputs + (size_t)done) / (total > 0 ? total : 1e-9), slowest * 1e3);
    if (crash_path) remove(crash_path);
    free(m);
    for (size_t k = 0; k < n_inputs; k++) free(inputs[k].data);
    free(inputs);
    return 0;
}
