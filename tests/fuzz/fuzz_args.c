/* Command-line values: the input, split at NUL bytes, as option values for
 * pipeline/args.c (every parser, with several ranges) and for the data options that
 * take text (--holdout SPEC, and a prompt for shapes_parse). An accepted value must be
 * within its range. The parsers' messages go to stderr, muted here. */
#include "data/data.h"
#include "pipeline/args.h"
#include "tests/fuzz/fuzz.h"

#include <fcntl.h>
#include <math.h>
#include <unistd.h>

static void one(const char *s)
{
    static const long ranges[][2] = {{0, 0}, {1, 4096}, {-5, 5}, {1, 1L << 30}, {-2147483647L - 1, 2147483647L}};
    for (int r = 0; r < 5; r++) {
        long lv = 0;
        int iv = 0;
        if (arg_long("fuzz", "--x", s, ranges[r][0], ranges[r][1], &lv) == 0 &&
            (lv < ranges[r][0] || lv > ranges[r][1]))
            fuzz_fail("arg_long accepted %ld outside [%ld, %ld]", lv, ranges[r][0], ranges[r][1]);
        if (arg_int("fuzz", "--x", s, (int)ranges[r][0], (int)ranges[r][1], &iv) == 0 &&
            (iv < ranges[r][0] || iv > ranges[r][1]))
            fuzz_fail("arg_int accepted %d", iv);
    }
    uint64_t u;
    if (arg_u64("fuzz", "--seed", s, &u) == 0 && (s[0] < '0' || s[0] > '9')) fuzz_fail("arg_u64 accepted \"%s\"", s);
    double d;
    float fv;
    if (arg_double("fuzz", "--x", s, -1e300, 1e300, &d) == 0 && !isfinite(d)) fuzz_fail("arg_double: %g", d);
    if (arg_double("fuzz", "--x", s, 0, 1, &d) == 0 && !(d >= 0 && d <= 1)) fuzz_fail("arg_double: %g", d);
    if (arg_float("fuzz", "--x", s, 1e-6, 100, &fv) == 0 && !(fv >= 1e-6f && fv <= 100)) fuzz_fail("arg_float: %g", fv);
    char err[256];
    shapes_holdout_t h;
    if (shapes_holdout_parse(&h, s, err) == 0 && (h.n < 0 || h.n > 64)) fuzz_fail("holdout of %d items", h.n);
    shapes_scene_t sc;
    if (shapes_parse(&sc, s, err) == 0 && (sc.n < 1 || sc.n > 2)) fuzz_fail("scene of %d objects", sc.n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[64];
    int argc = 0;
    for (size_t i = 0; i <= size && argc < 64; i += strlen(buf + i) + 1) argv[argc++] = buf + i;
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2);
    for (int i = 0; i < argc; i++) one(argv[i]);
    for (int i = 0; i < argc; i++) { /* each as an option: its value is the next word */
        int j = i;
        const char *v = arg_value("fuzz", argc, argv, &j);
        if (v && (j != i + 1 || v != argv[i + 1])) fuzz_fail("arg_value skipped wrongly");
        if (!v && j != i) fuzz_fail("arg_value moved without a value");
    }
    fflush(stderr);
    if (saved >= 0) dup2(saved, 2), close(saved);
    if (null >= 0) close(null);
    free(buf);
    return 0;
}
