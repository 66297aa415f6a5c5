/* dalle-c data shapes | convert: making datasets (data/data.h does the work). */
#include "data/data.h"
#include "pipeline/commands.h"
#include "pipeline/progress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *shapes_usage =
    "usage: dalle-c data shapes OUT_DIR --count N [--seed S] [--size S] [--holdout SPEC]\n"
    "\n"
    "Writes N synthetic captioned scenes: OUT_DIR/NNNNNN.png with NNNNNN.txt (every\n"
    "caption phrasing, one a line; a reader draws one per epoch), OUT_DIR/manifest.tsv\n"
    "(the structured scene of each image) and, with --holdout, OUT_DIR/holdout_prompts.txt.\n"
    "Scenes: one shape (circle, square, triangle, star, heart, cross, ring, diamond) in one\n"
    "of 10 colours, small or large, at one of 9 positions, or two shapes above / below /\n"
    "left of / right of each other; white, gray or beige background. The same options\n"
    "give byte-identical files. OUT_DIR must be new or empty.\n"
    "\n"
    "  --count N             images (required)\n"
    "  --seed S              (default 1)\n"
    "  --size S              image side in pixels (default 64; below 48, objects are drawn\n"
    "                        larger so they stay recognisable at 32)\n"
    "  --holdout SPEC        combinations never shown in training, comma-separated: \"COLOUR\n"
    "                        SHAPE\", \"COLOUR\" or \"SHAPE\" (e.g. \"green triangle,red star\");\n"
    "                        prompts naming them go to OUT_DIR/holdout_prompts.txt, the\n"
    "                        test list for `dalle-c --prompts` and `dalle-c eval shapes`\n"
    "  --holdout-prompts N   test prompts per holdout item (default 20)\n"
    "  -t THREADS            threads (default: OMP_NUM_THREADS or all cores)\n"
    "Exit status: 0 ok, 1 runtime failure, 2 usage error.\n";

static const char *convert_usage =
    "usage: dalle-c data convert LIST --size S [--keep-going]\n"
    "\n"
    "Converts images for a dataset: each line of LIST (- for stdin) is SRC<TAB>DST; SRC\n"
    "(PNG or JPEG, any kind) is composited on white, resized and centre-cropped to S x S\n"
    "and written to DST as an RGB PNG (DST's folder must exist). Used by\n"
    "data/emoji/build.sh.\n"
    "\n"
    "  --size S              output side (default 64)\n"
    "  --keep-going          skip images that fail to decode (they are listed and\n"
    "                        counted) instead of failing\n"
    "  -t THREADS            threads\n"
    "Exit status: 0 ok, 1 runtime failure (or a bad image without --keep-going), 2 usage.\n";

static const char *data_usage =
    "usage: dalle-c data shapes OUT_DIR --count N [--seed S] [--size S] [--holdout SPEC]\n"
    "       dalle-c data convert LIST --size S [--keep-going]\n"
    "(each with --help for its options)\n";

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int usage_error(const char *usage, const char *what, const char *arg)
{
    fprintf(stderr, "dalle-c data: %s%s%s%s\n", what, arg ? " '" : "", arg ? arg : "", arg ? "'" : "");
    fputs(usage, stderr);
    return 2;
}

static void report(void *ctx, long done, long total)
{
    (void)total;
    progress_update(ctx, done, NULL);
}

static int cmd_shapes(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(shapes_usage, stdout);
        return 0;
    }
    shapes_config_t cfg = shapes_config_default();
    const char *out = NULL;
    int have_count = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        int has_val = i + 1 < argc;
        if (strcmp(a, "--count") == 0 || strcmp(a, "-n") == 0) {
            if (!has_val || !parse_long(argv[++i], 1, 100000000, &v))
                return usage_error(shapes_usage, "--count wants a number from 1 to 100000000", has_val ? argv[i] : NULL);
            cfg.count = v, have_count = 1;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            if (!has_val) return usage_error(shapes_usage, "--seed wants a number", NULL);
            errno = 0;
            unsigned long long s = strtoull(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || argv[i][0] == '-')
                return usage_error(shapes_usage, "--seed wants a non-negative number", argv[i]);
            cfg.seed = s;
        } else if (strcmp(a, "--size") == 0) {
            if (!has_val || !parse_long(argv[++i], 16, 4096, &v))
                return usage_error(shapes_usage, "--size wants a number from 16 to 4096", has_val ? argv[i] : NULL);
            cfg.size = (int)v;
        } else if (strcmp(a, "--holdout") == 0) {
            if (!has_val) return usage_error(shapes_usage, "--holdout wants a SPEC", NULL);
            cfg.holdout = argv[++i];
            shapes_holdout_t h;
            char err[256];
            if (shapes_holdout_parse(&h, cfg.holdout, err) != 0) return usage_error(shapes_usage, err, NULL);
        } else if (strcmp(a, "--holdout-prompts") == 0) {
            if (!has_val || !parse_long(argv[++i], 0, 100000, &v))
                return usage_error(shapes_usage, "--holdout-prompts wants a number", has_val ? argv[i] : NULL);
            cfg.holdout_prompts = (int)v;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (!has_val || !parse_long(argv[++i], 1, 1024, &v))
                return usage_error(shapes_usage, "-t wants a thread count", has_val ? argv[i] : NULL);
            nn_set_threads((int)v);
        } else if (a[0] == '-' && a[1]) {
            return usage_error(shapes_usage, "unknown option", a);
        } else if (out) {
            return usage_error(shapes_usage, "one OUT_DIR only, got another:", a);
        } else {
            out = a;
        }
    }
    if (!out) return usage_error(shapes_usage, "missing OUT_DIR", NULL);
    if (!have_count) return usage_error(shapes_usage, "missing --count N", NULL);
    progress_t p;
    progress_start(&p, stderr, "shapes", cfg.count);
    char err[256];
    if (shapes_write_dataset(out, &cfg, report, &p, err) != 0) {
        fprintf(stderr, "\ndalle-c data shapes: %s\n", err);
        return 1;
    }
    progress_finish(&p, NULL);
    printf("wrote %ld images of %dx%d to %s (seed %llu)%s%s\n", cfg.count, cfg.size, cfg.size, out,
           (unsigned long long)cfg.seed, cfg.holdout ? "; held out: " : "", cfg.holdout ? cfg.holdout : "");
    if (cfg.holdout) printf("test prompts: %s/holdout_prompts.txt\n", out);
    return 0;
}

static int cmd_convert(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(convert_usage, stdout);
        return 0;
    }
    const char *list = NULL;
    int size = 64, keep_going = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        int has_val = i + 1 < argc;
        if (strcmp(a, "--size") == 0) {
            if (!has_val || !parse_long(argv[++i], 8, 4096, &v))
                return usage_error(convert_usage, "--size wants a number from 8 to 4096", has_val ? argv[i] : NULL);
            size = (int)v;
        } else if (strcmp(a, "--keep-going") == 0) {
            keep_going = 1;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            if (!has_val || !parse_long(argv[++i], 1, 1024, &v))
                return usage_error(convert_usage, "-t wants a thread count", has_val ? argv[i] : NULL);
            nn_set_threads((int)v);
        } else if (a[0] == '-' && a[1]) {
            return usage_error(convert_usage, "unknown option", a);
        } else if (list) {
            return usage_error(convert_usage, "one LIST only, got another:", a);
        } else {
            list = a;
        }
    }
    if (!list) return usage_error(convert_usage, "missing LIST", NULL);
    FILE *f = strcmp(list, "-") == 0 ? stdin : fopen(list, "r");
    if (!f) {
        fprintf(stderr, "dalle-c data convert: %s: cannot open (%s)\n", list, strerror(errno));
        return 1;
    }
    char **src = NULL, **dst = NULL, line[8192];
    long n = 0, cap = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        char *tab = strchr(line, '\t');
        if (!tab) {
            fprintf(stderr, "dalle-c data convert: %s:%ld: want SRC<TAB>DST\n", list, lineno);
            if (f != stdin) fclose(f);
            return 1;
        }
        *tab = 0;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            char **s2 = realloc(src, (size_t)cap * sizeof *s2), **d2 = s2 ? realloc(dst, (size_t)cap * sizeof *d2) : NULL;
            if (!s2 || !d2) {
                fprintf(stderr, "dalle-c data convert: out of memory\n");
                return 1;
            }
            src = s2, dst = d2;
        }
        src[n] = strdup(line), dst[n] = strdup(tab + 1);
        if (!src[n] || !dst[n]) {
            fprintf(stderr, "dalle-c data convert: out of memory\n");
            return 1;
        }
        n++;
    }
    if (f != stdin) fclose(f);
    progress_t p;
    progress_start(&p, stderr, "convert", n);
    long bad = 0, write_failed = 0;
    for (long start = 0; start < n; start += 256) {
        long end = start + 256 < n ? start + 256 : n;
#pragma omp parallel for schedule(dynamic)
        for (long i = start; i < end; i++) {
            img_t a = {0}, b = {0};
            char err[256];
            int rc = img_load(&a, src[i], err);
            if (rc == 0) rc = img_resize_crop(&b, &a, size, err);
            int decoded = rc == 0;
            if (rc == 0) rc = img_save_png(&b, dst[i], NULL, 0, err);
            img_deinit(&a), img_deinit(&b);
            if (rc) {
#pragma omp critical(convert_report)
                {
                    fprintf(stderr, "%s%s: %s\n", p.tty ? "\n" : "", decoded ? "write failed" : "skipped", err);
                    if (decoded) write_failed++;
                    else bad++;
                }
            }
        }
        progress_update(&p, end, NULL);
    }
    progress_finish(&p, NULL);
    for (long i = 0; i < n; i++) free(src[i]), free(dst[i]);
    free(src), free(dst);
    printf("converted %ld of %ld images to %dx%d; %ld failed to decode, %ld failed to write\n",
           n - bad - write_failed, n, size, size, bad, write_failed);
    return write_failed || (bad && !keep_going) ? 1 : 0;
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(data_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "shapes") == 0) return cmd_shapes(argc - 1, argv + 1);
    if (strcmp(argv[1], "convert") == 0) return cmd_convert(argc - 1, argv + 1);
    fprintf(stderr, "dalle-c data: unknown subcommand '%s'\n", argv[1]);
    fputs(data_usage, stderr);
    return 2;
}
