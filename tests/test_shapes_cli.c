/* `dalle-c data shapes` and `dalle-c eval shapes` through the binary (DALLEC_BIN):
 * the same seed gives byte-identical folders (with 1 or 2 threads), another seed does
 * not; --holdout keeps combinations out of training and lists test prompts; the
 * evaluator scores the generator's own images >= 98% (and mismatched prompts low);
 * bad images, prompts and usage give the documented counts and exit codes. */
#include "data/data.h"
#include "tests/testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *bin;
static char tmp[512];

/* Runs a command line (printf-style); its stdout+stderr into out (may be NULL).
 * Returns the exit status, or -1. */
static int run(char *out, size_t n, const char *fmt, ...)
{
    char cmd[4096], full[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    char sink[4096];
    size_t got = 0, k;
    if (!out) out = sink, n = sizeof sink;
    while ((k = fread(out + got, 1, n - 1 - got, p)) > 0) {
        got += k;
        if (got == n - 1) { /* keep the tail: summaries come last */
            memmove(out, out + n / 2, got - n / 2);
            got -= n / 2;
        }
    }
    out[got] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double field(const char *out, const char *key)
{
    const char *line = strstr(out, "shapes-eval ");
    if (!line) return -2;
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    return p ? atof(p + strlen(k)) : -2;
}

static void test_determinism(void)
{
    printf("same seed, same bytes\n");
    static char out[1 << 16];
    check(run(out, sizeof out, "OMP_NUM_THREADS=2 %s data shapes %s/a --count 150 --seed 5", bin, tmp) == 0,
          "data shapes a: %s", out);
    check(run(out, sizeof out, "OMP_NUM_THREADS=1 %s data shapes %s/b --count 150 --seed 5", bin, tmp) == 0,
          "data shapes b: %s", out);
    check(run(out, sizeof out, "%s data shapes %s/c --count 150 --seed 6 -t 2", bin, tmp) == 0, "data shapes c");
    check(run(out, sizeof out, "diff -r %s/a %s/b", tmp, tmp) == 0, "seed 5 twice (2 and 1 threads): identical");
    check(run(out, sizeof out, "cmp -s %s/a/000010.png %s/c/000010.png", tmp, tmp) != 0, "seed 6 differs");
    check(run(out, sizeof out, "test $(ls %s/a/*.png | wc -l) = 150 && test $(ls %s/a/*.txt | wc -l) = 150 && "
                               "test $(grep -vc '^#' %s/a/manifest.tsv) = 150", tmp, tmp, tmp) == 0,
          "150 images, 150 caption files, 150 manifest lines");
    check(run(out, sizeof out, "test $(wc -l < %s/a/000000.txt) -ge 5", tmp) == 0, "several phrasings per image");

    img_t img = {0};
    char path[700], err[256];
    snprintf(path, sizeof path, "%s/a/000003.png", tmp);
    check(img_load(&img, path, err) == 0 && img.w == 64 && img.h == 64, "images are 64x64: %s", err);
    img_deinit(&img);
    img_text_t *text;
    int nt;
    if (check(img_load_text(path, &text, &nt, err) == 0, "text chunks: %s", err)) {
        check(img_text_get(text, nt, "caption") && img_text_get(text, nt, "scene"), "caption and scene chunks");
        free(text);
    }
}

static void test_eval(void)
{
    printf("eval shapes on the generator's images\n");
    static char out[1 << 16];
    check(run(out, sizeof out, "%s eval shapes %s/a --all-lines --quiet", bin, tmp) == 0, "eval a: %s", out);
    double attr = field(out, "attributes"), ok = field(out, "prompts_ok");
    printf("  64 px, every phrasing: attributes %.4f, prompts all-correct %.4f\n", attr, ok);
    check(attr >= 0.98 && ok >= 0.98, "self-score >= 98%%");
    check(field(out, "images") == 150 && field(out, "unparsed") == 0, "150 images, all prompts parsed");

    check(run(out, sizeof out, "%s data shapes %s/s32 --count 150 --size 32 --seed 9", bin, tmp) == 0, "32 px set");
    check(run(out, sizeof out, "%s eval shapes %s/s32 --quiet", bin, tmp) == 0, "eval 32");
    attr = field(out, "attributes"), ok = field(out, "prompts_ok");
    printf("  32 px, first phrasing: attributes %.4f, prompts all-correct %.4f\n", attr, ok);
    check(attr >= 0.98 && ok >= 0.98, "self-score at 32 px >= 98%%");

    /* Prompts of other images: the evaluator must not pass them. */
    run(NULL, 0, "mkdir -p %s/mix && cp %s/a/*.png %s/mix/ && for i in $(seq 0 149); do "
                 "j=$(( (i + 37) %% 150 )); cp %s/a/$(printf %%06d $j).txt %s/mix/$(printf %%06d $i).txt; done",
        tmp, tmp, tmp, tmp, tmp);
    check(run(out, sizeof out, "%s eval shapes %s/mix --quiet", bin, tmp) == 0, "eval mismatched");
    attr = field(out, "attributes"), ok = field(out, "prompts_ok");
    printf("  mismatched prompts: attributes %.4f, prompts all-correct %.4f (chance level expected)\n", attr, ok);
    check(attr < 0.6 && ok < 0.15, "mismatched prompts score low");

    /* An unreadable image, a prompt outside the grammar, an image without a prompt. */
    run(NULL, 0, "mkdir -p %s/odd && cp %s/a/000001.png %s/a/000001.txt %s/odd/ && "
                 "cp %s/a/000002.png %s/odd/ && echo 'a cat on a mat' > %s/odd/000002.txt && "
                 "echo junk > %s/odd/bad.png && echo 'a red circle' > %s/odd/bad.txt && cp %s/a/000003.png %s/odd/",
        tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp);
    check(run(out, sizeof out, "%s eval shapes %s/odd", bin, tmp) == 0, "eval odd folder: %s", out);
    check(field(out, "prompts") == 1 && field(out, "unparsed") == 1 && field(out, "unreadable") == 1 &&
              field(out, "uncaptioned") == 1,
          "1 judged, 1 unparsed, 1 unreadable, 1 uncaptioned: %s", strstr(out, "shapes-eval") ? strstr(out, "shapes-eval") : out);
    check(strstr(out, "000001.png\tok\t") != NULL, "per-prompt line for 000001.png");
}

static void test_holdout(void)
{
    printf("holdout\n");
    static char out[1 << 16];
    check(run(out, sizeof out, "%s data shapes %s/h --count 300 --seed 3 --holdout 'green triangle, red star' "
                               "--holdout-prompts 10", bin, tmp) == 0, "data shapes --holdout: %s", out);
    check(run(out, sizeof out, "grep -l -e 'green triangle' -e 'red star' %s/h/0*.txt", tmp) == 1,
          "no training caption names a held-out combination: %s", out);
    check(run(out, sizeof out, "awk -F'\\t' '($5==\"green\"&&$6==\"triangle\")||($5==\"red\"&&$6==\"star\")||"
                               "($13==\"green\"&&$14==\"triangle\")||($13==\"red\"&&$14==\"star\")' %s/h/manifest.tsv | "
                               "grep -c . ", tmp) == 1,
          "no manifest scene holds one: %s", out);
    check(run(out, sizeof out, "test $(grep -c 'green triangle' %s/h/holdout_prompts.txt) = 10 && "
                               "test $(grep -c 'red star' %s/h/holdout_prompts.txt) -ge 10 && "
                               "test $(wc -l < %s/h/holdout_prompts.txt) = 20", tmp, tmp, tmp) == 0,
          "20 test prompts, 10 per item");
    /* The training set still has green shapes and triangles of other colours. */
    check(run(out, sizeof out, "grep -l 'green ' %s/h/0*.txt | head -1 | grep -q . && "
                               "grep -l 'blue triangle' %s/h/0*.txt | head -1 | grep -q .", tmp, tmp) == 0,
          "other green shapes and other triangles still trained on");
    /* A dataset reader sees 300 images, and holdout_prompts.txt is no caption. */
    ds_t *ds;
    char dir[700], err[256];
    snprintf(dir, sizeof dir, "%s/h", tmp);
    ds_config_t cfg = ds_config_default();
    cfg.holdout = 0;
    if (check(ds_open(&ds, dir, &cfg, err) == 0, "ds_open: %s", err)) {
        check(ds_count(ds, DS_TRAIN) == 300, "reader sees 300 images");
        ds_close(ds);
    }
}

static void test_usage(void)
{
    printf("usage and errors\n");
    static char out[1 << 16];
    check(run(out, sizeof out, "%s data shapes --help", bin) == 0 && strstr(out, "usage: dalle-c data shapes"), "shapes --help");
    check(run(out, sizeof out, "%s eval shapes --help", bin) == 0 && strstr(out, "usage: dalle-c eval shapes"), "eval --help");
    check(run(out, sizeof out, "%s data --help", bin) == 0, "data --help");
    check(run(out, sizeof out, "%s data convert --help", bin) == 0, "convert --help");
    check(run(out, sizeof out, "%s data", bin) == 2, "data without subcommand: 2");
    check(run(out, sizeof out, "%s data shapes %s/u", bin, tmp) == 2 && strstr(out, "--count"), "missing --count: 2");
    check(run(out, sizeof out, "%s data shapes %s/u --count 5 --bogus", bin, tmp) == 2 && strstr(out, "--bogus"), "unknown option: 2");
    check(run(out, sizeof out, "%s data shapes %s/u --count x", bin, tmp) == 2, "bad count: 2");
    check(run(out, sizeof out, "%s data shapes %s/u --count 5 --holdout 'green hexagon'", bin, tmp) == 2 &&
              strstr(out, "hexagon"), "bad holdout: 2 naming the word");
    check(run(out, sizeof out, "%s data shapes %s/a --count 5", bin, tmp) == 1 && strstr(out, "not an empty folder"),
          "non-empty OUT_DIR: 1");
    check(run(out, sizeof out, "%s eval shapes", bin) == 2, "eval without dir: 2");
    check(run(out, sizeof out, "%s eval nonsense", bin) == 2, "eval unknown subcommand: 2");
    run(NULL, 0, "mkdir -p %s/empty", tmp);
    check(run(out, sizeof out, "%s eval shapes %s/empty", bin, tmp) == 1 && strstr(out, "no images"), "eval empty dir: 1");

    /* data convert: RGBA on white, resize, a bad source skipped with --keep-going. */
    run(NULL, 0, "printf '%s/a/000000.png\\t%s/conv1.png\\n%s/odd/bad.png\\t%s/conv2.png\\n' > %s/list.tsv",
        tmp, tmp, tmp, tmp, tmp);
    check(run(out, sizeof out, "%s data convert %s/list.tsv --size 32", bin, tmp) == 1, "convert with a bad image: 1");
    check(run(out, sizeof out, "%s data convert %s/list.tsv --size 32 --keep-going", bin, tmp) == 0 &&
              strstr(out, "converted 1 of 2"), "--keep-going: 0, 1 of 2: %s", out);
    img_t img = {0};
    char path[700], err[256];
    snprintf(path, sizeof path, "%s/conv1.png", tmp);
    check(img_load(&img, path, err) == 0 && img.w == 32 && img.h == 32, "converted to 32x32");
    img_deinit(&img);
}

int main(void)
{
    bin = getenv("DALLEC_BIN");
    if (!bin) {
        printf("DALLEC_BIN not set: skipped\n");
        return 0;
    }
    snprintf(tmp, sizeof tmp, "%s/shapes_cli", test_tmpdir());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", tmp, tmp);
    if (system(cmd) != 0) return 1;
    test_determinism();
    test_eval();
    test_holdout();
    test_usage();
    return test_summary("test_shapes_cli");
}
