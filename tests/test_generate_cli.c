/* dalle-c "PROMPT" | --prompts | --from through the binary, on a tiny random model
 * (tests/generate_testlib.h): the same seed gives the same PNG bytes; the settings in the
 * text chunks; --from regenerates byte-identical PNGs (single image, one image of a
 * batch, the grid, with an init image); -n 4 writes 4 images and a grid; the default
 * output name; $DALLEC_MODEL; --prompts' folder layout and seeds; the seed always
 * printed; and every error with its exit code. Needs DALLEC_BIN. */
#include "data/data.h"
#include "tests/generate_testlib.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *bin;
static char tmp[512], model[600];

/* Runs a shell command line with stdout and stderr in *out (malloc'd) when out is not
 * NULL. Exit status, or -1. */
static int run(char **out, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!check(f != NULL, "cannot write %s", path)) return;
    fputs(text, f);
    fclose(f);
}

static const char *chunk_of(const char *png, const char *key, char *buf, size_t n)
{
    img_text_t *t = NULL;
    int nt = 0;
    char err[256];
    buf[0] = 0;
    if (img_load_text(png, &t, &nt, err)) return NULL;
    const char *v = img_text_get(t, nt, key);
    if (v) snprintf(buf, n, "%s", v);
    free(t);
    return v ? buf : NULL;
}

/* An exit status and a message fragment of one failing run. */
static void expect(int want, const char *fragment, const char *what, const char *args)
{
    char *out = NULL;
    int st = run(&out, "%s %s 2>&1", bin, args);
    /* a failure is one line; a success may print more but the fragment only once */
    int lines = 0;
    if (want != 0)
        for (const char *p = out; p && *p; p++) lines += *p == '\n';
    else
        for (const char *p = out; p && (p = strstr(p, fragment)); p++) lines++;
    check(st == want && (!fragment || strstr(out, fragment)) && lines == 1,
          "%s: exit %d (want %d), %d lines: %s", what, st, want, lines, out ? out : "");
    printf("  %-34s exit %d: %s", what, st, out && *out ? out : "\n");
    free(out);
}

static void test_same_seed_and_chunks(void)
{
    char *out = NULL, a[700], b[700], c[700], v[512];
    snprintf(a, sizeof a, "%s/a.png", tmp);
    snprintf(b, sizeof b, "%s/b.png", tmp);
    snprintf(c, sizeof c, "%s/c.png", tmp);
    int st = run(&out, "%s 'a red circle' -m %s -o %s --seed 7 --temperature 0.9 --top-k 5 "
                       "--top-p 0.95 --guidance 2.5 -t 1 2>&1", bin, model, a);
    check(st == 0 && strstr(out, "seed 7") && strstr(out, "wrote"), "generate: %d %s", st, out);
    free(out);
    check(run(NULL, "%s 'a red circle' -m %s -o %s --seed 7 --temperature 0.9 --top-k 5 "
                    "--top-p 0.95 --guidance 2.5 -t 1 -q", bin, model, b) == 0, "again");
    check(gt_same_file(a, b), "same seed and settings: byte-identical PNGs");
    img_t img = {0};
    char err[256];
    check(img_load(&img, a, err) == 0 && img.w == GT_S && img.h == GT_S, "a %dx%d PNG", img.w, img.h);
    img_deinit(&img);
    const char *keys[][2] = {{"dalle-c:prompt", "a red circle"}, {"dalle-c:seed", "7"},
                             {"dalle-c:n", "1"}, {"dalle-c:image", "1"},
                             {"dalle-c:temperature", "0.9"}, {"dalle-c:top-k", "5"},
                             {"dalle-c:top-p", "0.95"}, {"dalle-c:guidance", "2.5"},
                             {"dalle-c:model", "model.dalle"}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        check(chunk_of(a, keys[i][0], v, sizeof v) && strcmp(v, keys[i][1]) == 0,
              "chunk %s = '%s' (want '%s')", keys[i][0], v, keys[i][1]);
    /* --from: byte-identical; a flag given overrides */
    check(run(NULL, "%s --from %s -m %s -o %s -t 1 -q", bin, a, model, c) == 0, "--from");
    check(gt_same_file(a, c), "--from a.png: byte-identical PNG");
    check(run(NULL, "%s --from %s -m %s -o %s --seed 8 -t 1 -q", bin, a, model, c) == 0,
          "--from --seed 8");
    check(!gt_same_file(a, c) && chunk_of(c, "dalle-c:seed", v, sizeof v) && strcmp(v, "8") == 0 &&
              chunk_of(c, "dalle-c:top-k", v, sizeof v) && strcmp(v, "5") == 0,
          "--from with --seed 8: another image, the other settings kept");
    /* another thread count: the same bytes */
    check(run(NULL, "%s 'a red circle' -m %s -o %s --seed 7 --temperature 0.9 --top-k 5 "
                    "--top-p 0.95 --guidance 2.5 -t 2 -q", bin, model, c) == 0, "-t 2");
    check(gt_same_file(a, c), "-t 2 gives the bytes of -t 1");
    printf("  same seed, chunks, --from ok\n");
}

static void test_random_seed(void)
{
    char *out = NULL, a[700], b[700], v[64];
    snprintf(a, sizeof a, "%s/r.png", tmp);
    snprintf(b, sizeof b, "%s/r2.png", tmp);
    int st = run(&out, "%s 'a blue square' -m %s -o %s -t 1 -q", bin, model, a);
    unsigned long long seed = 0;
    const char *s = out ? strstr(out, "seed ") : NULL;
    check(st == 0 && s && sscanf(s, "seed %llu", &seed) == 1, "random seed printed: %s", out);
    char want[32];
    snprintf(want, sizeof want, "%llu", seed);
    check(chunk_of(a, "dalle-c:seed", v, sizeof v) && strcmp(v, want) == 0,
          "the printed seed %s is stored (%s)", want, v);
    free(out);
    check(run(NULL, "%s --from %s -m %s -o %s -t 1 -q", bin, a, model, b) == 0 && gt_same_file(a, b),
          "a random-seed image reproduces from itself");
    printf("  random seed %llu printed, stored, reproduced\n", seed);
}

static void test_batch(void)
{
    char *out = NULL, p[700], q[700], v[64];
    snprintf(p, sizeof p, "%s/g.png", tmp);
    int st = run(&out, "%s 'a green star' -m %s -n 4 -o %s --seed 3 -t 1 -q 2>&1", bin, model, p);
    check(st == 0, "-n 4: %d %s", st, out);
    free(out);
    for (int k = 1; k <= 4; k++) {
        snprintf(q, sizeof q, "%s/g-%d.png", tmp, k);
        char want[8];
        snprintf(want, sizeof want, "%d", k);
        check(exists(q) && chunk_of(q, "dalle-c:image", v, sizeof v) && strcmp(v, want) == 0,
              "%s with dalle-c:image %d", q, k);
    }
    img_t grid = {0};
    char err[256];
    check(img_load(&grid, p, err) == 0 && grid.w == 2 * GT_S + 3 * 2 && grid.h == grid.w,
          "grid %dx%d", grid.w, grid.h);
    img_deinit(&grid);
    check(chunk_of(p, "dalle-c:image", v, sizeof v) && strcmp(v, "grid") == 0, "grid chunk");
    snprintf(q, sizeof q, "%s/g-3.png", tmp);
    char r[700];
    snprintf(r, sizeof r, "%s/g3-again.png", tmp);
    check(run(NULL, "%s --from %s -m %s -o %s -t 1 -q", bin, q, model, r) == 0 && gt_same_file(q, r),
          "--from g-3.png: byte-identical");
    snprintf(r, sizeof r, "%s/grid-again.png", tmp);
    check(run(NULL, "%s --from %s -m %s -o %s -t 1 -q", bin, p, model, r) == 0 && gt_same_file(p, r),
          "--from the grid: byte-identical grid");
    /* the tiles differ from each other */
    snprintf(q, sizeof q, "%s/g-1.png", tmp);
    snprintf(r, sizeof r, "%s/g-2.png", tmp);
    check(!gt_same_file(q, r), "images of a batch differ");
    printf("  -n 4: 4 images and a grid, each reproducible\n");
}

static void test_default_name_and_env(void)
{
    char *out = NULL, p[700];
    int st = run(&out, "cd %s && DALLEC_MODEL=%s %s '  A Red   Circle, top-left!  ' --seed 1 -t 1 -q 2>&1",
                 tmp, model, bin);
    snprintf(p, sizeof p, "%s/a-red-circle-top-left.png", tmp);
    check(st == 0 && exists(p), "default name a-red-circle-top-left.png via $DALLEC_MODEL: %d %s",
          st, out);
    free(out);
    st = run(&out, "cd %s && %s 'ünïcode ☃' -m %s --seed 1 -n 2 -t 1 -q 2>&1", tmp, bin, model);
    snprintf(p, sizeof p, "%s/n-code.png", tmp);
    check(st == 0 && exists(p), "non-ASCII prompt name: %d %s", st, out);
    snprintf(p, sizeof p, "%s/n-code-2.png", tmp);
    check(exists(p), "n-code-2.png");
    free(out);
    printf("  default output names and $DALLEC_MODEL ok\n");
}

static void test_prompts(void)
{
    char list[700], dir[700], p[1400], v[512], *out = NULL;
    snprintf(list, sizeof list, "%s/prompts.txt", tmp);
    snprintf(dir, sizeof dir, "%s/batch", tmp);
    write_file(list, "a red circle\r\n\n   \na blue square\na yellow heart\n");
    int st = run(&out, "%s --prompts %s -o %s -m %s -n 2 --seed 100 -t 1 -q 2>&1", bin, list,
                 dir, model);
    check(st == 0, "--prompts: %d %s", st, out);
    free(out);
    const char *want[] = {"a red circle", "a red circle", "a blue square", "a blue square",
                          "a yellow heart", "a yellow heart"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%04d.txt", dir, i);
        size_t n = 0;
        char *t = (char *)gt_read_file(p, &n);
        char line[128];
        snprintf(line, sizeof line, "%s\n", want[i]);
        check(t && n == strlen(line) && memcmp(t, line, n) == 0, "%s holds '%s'", p, want[i]);
        free(t);
        snprintf(p, sizeof p, "%s/%04d.png", dir, i);
        char seed[32];
        snprintf(seed, sizeof seed, "%d", 100 + (i / 2) * 2);
        check(chunk_of(p, "dalle-c:seed", v, sizeof v) && strcmp(v, seed) == 0,
              "%s: batch seed %s (got %s)", p, seed, v);
    }
    snprintf(p, sizeof p, "%s/0006.png", dir);
    check(!exists(p), "no seventh image");
    /* image 3 (prompt 2, second image) reproduces */
    char one[1400], again[700];
    snprintf(one, sizeof one, "%s/0003.png", dir);
    snprintf(again, sizeof again, "%s/0003-again.png", tmp);
    check(run(NULL, "%s --from %s -m %s -o %s -t 1 -q", bin, one, model, again) == 0 &&
              gt_same_file(one, again),
          "--from a --prompts image: byte-identical");
    printf("  --prompts folder layout, seeds and reproduction ok\n");
}

static void test_init_image(void)
{
    char init[700], a[700], b[700], *out = NULL;
    snprintf(init, sizeof init, "%s/init.png", tmp);
    snprintf(a, sizeof a, "%s/init-out.png", tmp);
    snprintf(b, sizeof b, "%s/init-again.png", tmp);
    img_t img = {0};
    char err[256];
    if (check(img_init(&img, 20, 24, err) == 0, "img_init")) {
        for (int i = 0; i < 20 * 24 * 3; i++) img.rgb[i] = (uint8_t)(i * 13);
        check(img_save_png(&img, init, NULL, 0, err) == 0, "init png: %s", err);
        img_deinit(&img);
    }
    int st = run(&out, "%s 'a red circle' -m %s --init-image %s --init-rows 2 -o %s --seed 4 "
                       "-t 1 -q 2>&1", bin, model, init, a);
    check(st == 0, "--init-image: %d %s", st, out);
    free(out);
    char v[700];
    check(chunk_of(a, "dalle-c:init-rows", v, sizeof v) && strcmp(v, "2") == 0 &&
              chunk_of(a, "dalle-c:init-image", v, sizeof v) && strcmp(v, init) == 0,
          "init chunks");
    check(run(NULL, "%s --from %s -m %s -o %s -t 1 -q", bin, a, model, b) == 0 && gt_same_file(a, b),
          "--from an image-completion PNG: byte-identical");
    printf("  --init-image ok\n");
}

static void test_errors(void)
{
    char args[4096], dvae_only[700], bindir[700], *out = NULL;
    /* the model: not found (a copy of the binary where no default model is) */
    snprintf(bindir, sizeof bindir, "%s/bin", tmp);
    mkdir(bindir, 0755);
    check(run(NULL, "cp %s %s/dalle-c", bin, bindir) == 0, "copy the binary");
    int st = run(&out, "env -u DALLEC_MODEL %s/dalle-c 'a red circle' 2>&1", bindir);
    check(st == 1 && strstr(out, "no model found") && strstr(out, "share/dalle-c/default.dalle") &&
              strstr(out, "weights/default.dalle") && strstr(out, "dalle-c train") &&
              strstr(out, "-m MODEL"),
          "missing model: %d %s", st, out);
    printf("  %-34s exit %d: %s", "no model anywhere", st, out);
    free(out);
    snprintf(args, sizeof args, "'a red circle' -m %s/none.dalle", tmp);
    expect(1, "none.dalle", "-m a missing file", args);
    snprintf(dvae_only, sizeof dvae_only, "%s/prompts.txt", tmp);
    snprintf(args, sizeof args, "'a red circle' -m %s", dvae_only);
    expect(1, "prompts.txt", "-m a text file", args);

    /* prompts */
    snprintf(args, sizeof args, "'' -m %s", model);
    expect(2, "empty", "empty prompt", args);
    snprintf(args, sizeof args, "'   ' -m %s", model);
    expect(2, "empty", "blank prompt", args);
    snprintf(args, sizeof args, "\"$(printf 'a \\377 red')\" -m %s", model);
    expect(2, "UTF-8", "non-UTF-8 prompt", args);
    snprintf(args, sizeof args, "'a small red circle at the top left above a large blue square "
                                "on a white background next to a green star' -m %s -o %s/long.png "
                                "-t 1 -q", model, tmp);
    expect(0, "warning: the prompt is", "prompt longer than T", args);
    snprintf(args, sizeof args, "-m %s", model);
    expect(2, "no prompt", "no prompt at all", args);
    snprintf(args, sizeof args, "'a red circle' 'a blue one' -m %s", model);
    expect(2, "one prompt", "two prompts", args);

    /* options */
    const char *usage[][2] = {
        {"--bogus 1", "unknown option"}, {"-x", "unknown option"}, {"-n", "needs a value"},
        {"-n 0", "-n"}, {"-n 65", "-n"}, {"-n two", "-n"}, {"--seed -1", "--seed"},
        {"--seed 9223372036854775808", "--seed"}, {"--temperature -1", "--temperature"},
        {"--temperature nan", "--temperature"}, {"--top-k -1", "--top-k"},
        {"--top-p 0", "--top-p"}, {"--top-p 1.5", "--top-p"}, {"--guidance 101", "--guidance"},
        {"-t 0", "-t"}, {"--init-rows 2", "--init-image"}, {"--init-rows 0 --init-image x.png", "--init-rows"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof *usage; i++) {
        snprintf(args, sizeof args, "'a red circle' -m %s %s", model, usage[i][0]);
        expect(2, usage[i][1], usage[i][0], args);
    }
    /* outputs */
    snprintf(args, sizeof args, "'a red circle' -m %s -o %s/no-such-dir/x.png", model, tmp);
    expect(1, "no-such-dir", "-o in a missing folder", args);
    snprintf(args, sizeof args, "'a red circle' -m %s -o %s", model, tmp);
    expect(1, "folder", "-o a folder", args);
    snprintf(args, sizeof args, "'a red circle' -m %s -o %s/prompts.txt/x.png", model, tmp);
    expect(1, "prompts.txt", "-o under a file", args);
    /* init image */
    snprintf(args, sizeof args, "'a red circle' -m %s --init-image %s/none.png -o %s/i.png", model,
             tmp, tmp);
    expect(1, "none.png", "--init-image missing", args);
    snprintf(args, sizeof args, "'a red circle' -m %s --init-image %s/prompts.txt -o %s/i.png",
             model, tmp, tmp);
    expect(1, "prompts.txt", "--init-image not an image", args);
    snprintf(args, sizeof args, "'a red circle' -m %s --init-image %s/init.png --init-rows 5 "
                                "-o %s/i.png", model, tmp, tmp);
    expect(2, "from 1 to 4", "--init-rows > grid", args);
    /* --prompts and --from */
    snprintf(args, sizeof args, "--prompts %s/prompts.txt -m %s", tmp, model);
    expect(2, "-o OUT_DIR", "--prompts without -o", args);
    snprintf(args, sizeof args, "'a red circle' --prompts %s/prompts.txt -o %s/d -m %s", tmp, tmp, model);
    expect(2, "--prompts", "--prompts with a prompt", args);
    snprintf(args, sizeof args, "--prompts %s/none.txt -o %s/d -m %s", tmp, tmp, model);
    expect(1, "none.txt", "--prompts missing file", args);
    char bad[700];
    snprintf(bad, sizeof bad, "%s/bad-prompts.txt", tmp);
    write_file(bad, "a red circle\na \377 circle\n");
    snprintf(args, sizeof args, "--prompts %s -o %s/d -m %s", bad, tmp, model);
    expect(1, "bad-prompts.txt:2", "--prompts non-UTF-8 line", args);
    snprintf(args, sizeof args, "--from %s/none.png -m %s", tmp, model);
    expect(1, "none.png", "--from missing", args);
    snprintf(args, sizeof args, "--from %s/init.png -m %s", tmp, model);
    expect(1, "no dalle-c settings", "--from a foreign PNG", args);

    st = run(&out, "%s 'a red circle' --help", bin);
    check(st == 0 && strstr(out, "--init-rows") && strstr(out, "--from"), "--help: %d", st);
    free(out);
}

static void time_one(void)
{
    char p[700];
    snprintf(p, sizeof p, "%s/timed.png", tmp);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = run(NULL, "%s 'a red circle' -m %s -o %s --seed 1 -t 1 -q", bin, model, p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    check(st == 0, "timed run");
    printf("  one tiny-model generation, process start to PNG: %.0f ms\n",
           1e3 * (double)(t1.tv_sec - t0.tv_sec) + 1e-6 * (double)(t1.tv_nsec - t0.tv_nsec));
}

int main(void)
{
    bin = getenv("DALLEC_BIN");
    if (!bin) {
        fprintf(stderr, "test_generate_cli: DALLEC_BIN is not set (run through ctest)\n");
        return 1;
    }
    snprintf(tmp, sizeof tmp, "%s", test_tmpdir());
    snprintf(model, sizeof model, "%s/model.dalle", tmp);
    if (gt_write_model(model, 11)) return test_summary("test_generate_cli");
    test_same_seed_and_chunks();
    test_random_seed();
    test_batch();
    test_default_name_and_env();
    test_prompts();
    test_init_image();
    test_errors();
    time_one();
    return test_summary("test_generate_cli");
}
