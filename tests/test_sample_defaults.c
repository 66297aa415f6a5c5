/* Sampling settings a model file recommends (sample.* config keys, docs/MODEL.md) on the
 * tiny model (tests/generate_testlib.h): dalle-c convert --sample writes them (and refuses
 * bad keys and values, exit 2), --sample none removes them; dalle_model_info and
 * dalle_model_params report them; generation without options (one prompt, -n, --prompts,
 * --init-image) gives, byte for byte, what the original model gives with them as options;
 * options given win; --from takes every setting from the PNG, never the model's; a model
 * with an out-of-range or wrongly typed value refuses to load with one line. The model
 * with and without the keys are both "model.dalle" (in two folders), so the dalle-c:model
 * chunk cannot tell their PNGs apart. Needs DALLEC_BIN. */
#include "data/data.h"
#include "pipeline/dalle.h"
#include "tests/generate_testlib.h"
#include "weights/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROMPT "a green triangle above a yellow star on a beige background"
/* what the model with the keys recommends, as command line options */
#define REC_OPTS "--temperature 0.5 --top-k 5 --top-p 0.9 --guidance 1.5"
#define REC_SAMPLE "--sample temperature=0.5,top_k=5 --sample top_p=0.9,guidance=1.5"

static const char *bin;
static char orig[700], rec[700]; /* the tiny model; the same with sample.* keys */

/* test_tmpdir()/dir/name, the folder made; one of 8 rotating buffers (test_tmp_path) */
static const char *in_dir(const char *dir, const char *name)
{
    mkdir(test_tmp_path(dir), 0777);
    char rel[256];
    snprintf(rel, sizeof rel, "%s/%s", dir, name);
    return test_tmp_path(rel);
}

/* dalle-c ARGS, expected to succeed; its output (stdout and stderr) into *out if not NULL */
static int dallec(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int dallec(char **out, const char *fmt, ...)
{
    char args[4096], *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int st = test_runf(&text, "%s %s", bin, args);
    check(st == 0, "dalle-c %s: exit %d: %s", args, st, text ? text : "");
    if (out) *out = text;
    else free(text);
    return st;
}

/* Exit status want and one line holding fragment, from dalle-c ARGS run under wrapper
 * ("" or e.g. "timeout 60"). */
static void expect_one_line(int want, const char *fragment, const char *wrapper, const char *args)
{
    char *out = NULL;
    int st = test_runf(&out, "%s %s %s", wrapper, bin, args);
    const char *nl = out ? strchr(out, '\n') : NULL;
    check(st == want && nl && nl[1] == 0 && strstr(out, fragment),
          "dalle-c %s: exit %d (want %d), want one line with '%s': %s", args, st, want, fragment,
          out ? out : "");
    printf("  exit %d: %s", st, out ? out : "\n");
    free(out);
}

static void same_file(const char *a, const char *b, const char *what)
{
    check(gt_same_file(a, b), "%s: %s and %s differ", what, a, b);
}

/* ---------------------------------------------------------------- writing the keys */

static void check_model_settings(const char *path, float t, int k, float p, float g)
{
    char err[DALLE_ERR_SIZE];
    dalle_model_t *m = NULL;
    if (!check(dalle_model_load(&m, path, err) == DALLE_OK, "load %s: %s", path, err)) return;
    dalle_model_info_t info;
    dalle_model_info(m, &info);
    const dalle_params_t mp = dalle_model_params(m), d = dalle_params_default();
    check(info.sample.temperature == t && info.sample.top_k == k && info.sample.top_p == p &&
              info.sample.guidance == g,
          "%s: info.sample %g %d %g %g, want %g %d %g %g", path, info.sample.temperature,
          info.sample.top_k, info.sample.top_p, info.sample.guidance, t, k, p, g);
    /* without sample.candidate_temperature, candidates draw at the model's temperature */
    check(info.sample.candidate_temperature == t && dalle_model_temperature(m, 8) == t &&
              dalle_model_temperature(m, 1) == t,
          "%s: candidate temperature %g, dalle_model_temperature %g, want %g", path,
          info.sample.candidate_temperature, dalle_model_temperature(m, 8), t);
    check(mp.temperature == t && mp.top_k == k && mp.top_p == p && mp.guidance == g,
          "%s: dalle_model_params %g %d %g %g", path, mp.temperature, mp.top_k, mp.top_p,
          mp.guidance);
    check(mp.n_images == d.n_images && mp.seed == d.seed && mp.threads == d.threads &&
              mp.candidates == d.candidates && mp.init_rows == d.init_rows &&
              !mp.init_image && !mp.partial_images,
          "%s: dalle_model_params changed more than the sampling settings", path);
    dalle_model_free(m);
}

static void test_convert(void)
{
    printf("convert --sample\n");
    char *out = NULL;
    check_model_settings(orig, 1.0f, 64, 1.0f, 3.0f);
    if (dallec(&out, "convert %s -o %s " REC_SAMPLE, orig, rec) == 0)
        check(strstr(out, "as stored") && strstr(out, "sample.top_p = 0.9"),
              "convert --sample: %s", out);
    free(out);
    check_model_settings(rec, 0.5f, 5, 0.9f, 1.5f);
    if (dallec(&out, "info %s", rec) == 0)
        check(strstr(out, "sample.temperature = 0.5") && strstr(out, "sample.top_k = 5") &&
                  strstr(out, "sample.top_p = 0.9") && strstr(out, "sample.guidance = 1.5"),
              "info does not show the sample.* keys: %s", out);
    free(out);

    /* one key changed, the others kept; then all removed */
    const char *g2 = test_tmp_path("guidance2.dalle"), *none = in_dir("none", "model.dalle");
    dallec(NULL, "convert %s -o %s --sample guidance=2", rec, g2);
    check_model_settings(g2, 0.5f, 5, 0.9f, 2.0f);
    if (dallec(&out, "convert %s -o %s --sample none", rec, none) == 0)
        check(strstr(out, "sampling settings: none") != NULL, "--sample none: %s", out);
    free(out);
    check_model_settings(none, 1.0f, 64, 1.0f, 3.0f);
    if (dallec(&out, "info %s", none) == 0)
        check(!strstr(out, "sample."), "--sample none left keys: %s", out);
    free(out);

    const char *bad = test_tmp_path("bad-out.dalle");
    static const struct {
        const char *sample, *fragment;
    } refused[] = {
        {"temperature=101", "temperature wants"}, {"temperature=-0.5", "temperature wants"},
        {"top_k=2.5", "top_k wants a whole number"}, {"top_k=16777217", "top_k wants"},
        {"top_p=0", "top_p wants"}, {"top_p=1.5", "top_p wants"},
        {"guidance=lots", "guidance wants"}, {"guidance=nan", "guidance wants"},
        {"temp=1", "unknown sampling setting 'temp'"}, {"seed=3", "unknown sampling setting"},
        {"temperature", "needs a value"}, {",", "KEY=VALUE"},
        {"candidate_temperature=-1", "candidate_temperature wants"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        char args[1600];
        snprintf(args, sizeof args, "convert %s -o %s --sample '%s'", orig, bad, refused[i].sample);
        expect_one_line(2, refused[i].fragment, "", args);
    }
    char args[1600];
    snprintf(args, sizeof args, "convert %s -o %s --sample", orig, bad);
    expect_one_line(2, "needs a value", "", args);
    FILE *f = fopen(bad, "rb");
    check(f == NULL, "a refused --sample wrote %s", bad);
    if (f) fclose(f);
}

/* ---------------------------------------------------------------- generating */

static void test_generate(void)
{
    printf("generation takes the model's settings\n");
    /* -n 2: each image and the grid */
    dallec(NULL, "'" PROMPT "' -m %s --seed 5 -n 2 -q -t 1 -o %s", rec, in_dir("a", "x.png"));
    dallec(NULL, "'" PROMPT "' -m %s --seed 5 -n 2 -q -t 1 " REC_OPTS " -o %s", orig, in_dir("b", "x.png"));
    dallec(NULL, "'" PROMPT "' -m %s --seed 5 -n 2 -q -t 1 -o %s", orig, in_dir("c", "x.png"));
    static const char *const files[] = {"x-1.png", "x-2.png", "x.png"};
    for (int i = 0; i < 3; i++)
        same_file(in_dir("a", files[i]), in_dir("b", files[i]), "no options on the model with keys");
    /* else the test could not tell the settings apart */
    check(!gt_same_file(in_dir("a", "x-1.png"), in_dir("c", "x-1.png")),
          "the recommended settings draw the same image as the built-in ones");

    img_text_t *t = NULL;
    int nt = 0;
    char err[256];
    if (check(img_load_text(in_dir("a", "x-1.png"), &t, &nt, err) == 0, "chunks: %s", err)) {
        static const char *const want[][2] = {{"dalle-c:temperature", "0.5"}, {"dalle-c:top-k", "5"},
                                              {"dalle-c:top-p", "0.9"}, {"dalle-c:guidance", "1.5"}};
        for (int i = 0; i < 4; i++) {
            const char *v = img_text_get(t, nt, want[i][0]);
            check(v && strcmp(v, want[i][1]) == 0, "%s = %s, want %s", want[i][0], v ? v : "(none)",
                  want[i][1]);
        }
    }
    free(t);

    printf("options given win\n");
    dallec(NULL, "'" PROMPT "' -m %s --seed 5 -n 2 -q -t 1 --temperature 1 --top-k 64 --top-p 1 "
           "--guidance 3 -o %s", rec, in_dir("d", "x.png"));
    for (int i = 0; i < 3; i++)
        same_file(in_dir("c", files[i]), in_dir("d", files[i]), "every option given");
    dallec(NULL, "'" PROMPT "' -m %s --seed 6 -q -t 1 --top-k 9 -o %s", rec, in_dir("e", "y.png"));
    dallec(NULL, "'" PROMPT "' -m %s --seed 6 -q -t 1 " REC_OPTS " --top-k 9 -o %s", orig,
           in_dir("f", "y.png"));
    same_file(in_dir("e", "y.png"), in_dir("f", "y.png"), "--top-k given, the rest the model's");

    printf("--from takes the PNG's settings, not the model's\n");
    dallec(NULL, "--from %s -m %s -q -t 1 -o %s", in_dir("c", "x-2.png"), rec, in_dir("g", "x-2.png"));
    same_file(in_dir("c", "x-2.png"), in_dir("g", "x-2.png"), "--from a built-in-settings PNG on the model with keys");
    dallec(NULL, "--from %s -m %s -q -t 1 -o %s", in_dir("a", "x-1.png"), orig, in_dir("h", "x-1.png"));
    same_file(in_dir("a", "x-1.png"), in_dir("h", "x-1.png"), "--from a recommended-settings PNG on the plain model");
    dallec(NULL, "--from %s -m %s -q -t 1 -o %s", in_dir("a", "x-1.png"), rec, in_dir("h", "again.png"));
    same_file(in_dir("a", "x-1.png"), in_dir("h", "again.png"), "--from on the model with keys");

    printf("--prompts and --init-image\n");
    const char *list = test_tmp_path("prompts.txt");
    test_write_file(list, PROMPT "\na small red circle at the top left on a white background\n");
    dallec(NULL, "--prompts %s -m %s --seed 3 -q -t 1 -o %s", list, rec, test_tmp_path("pa"));
    dallec(NULL, "--prompts %s -m %s --seed 3 -q -t 1 " REC_OPTS " -o %s", list, orig, test_tmp_path("pb"));
    same_file(in_dir("pa", "0000.png"), in_dir("pb", "0000.png"), "--prompts, prompt 1");
    same_file(in_dir("pa", "0001.png"), in_dir("pb", "0001.png"), "--prompts, prompt 2");
    const char *init = in_dir("c", "x-1.png");
    dallec(NULL, "'" PROMPT "' -m %s --seed 4 -q -t 1 --init-image %s --init-rows 2 -o %s", rec, init,
           in_dir("i", "z.png"));
    dallec(NULL, "'" PROMPT "' -m %s --seed 4 -q -t 1 " REC_OPTS " --init-image %s --init-rows 2 -o %s",
           orig, init, in_dir("j", "z.png"));
    same_file(in_dir("i", "z.png"), in_dir("j", "z.png"), "--init-image");
}

/* ---------------------------------------------------------------- bad values */

static void test_bad_values(void)
{
    printf("a model with a bad sample.* value refuses to load\n");
    static const struct {
        const char *key, *fragment;
        int type; /* 0 int, 1 float, 2 string */
        double value;
    } bad[] = {
        {"sample.temperature", "= 200 is not in [0, 100]", 1, 200},
        {"sample.top_p", "= 0 is not in (0, 1]", 1, 0},
        {"sample.top_k", "= -1 is not in 0..16777216", 0, -1},
        {"sample.top_k", "\"sample.top_k\" is not a whole number", 1, 2.5},
        {"sample.guidance", "\"sample.guidance\" is not a number", 2, 0},
        {"sample.candidate_temperature", "= 100.5 is not in [0, 100]", 1, 100.5},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char name[32], err[DALLE_ERR_SIZE], args[1600];
        snprintf(name, sizeof name, "bad-%zu.dalle", i);
        const char *path = test_tmp_path(name);
        wf_config_t *c = wf_config_create();
        int set = !c ? -1
                : bad[i].type == 0 ? wf_config_set_int(c, bad[i].key, (int64_t)bad[i].value)
                : bad[i].type == 1 ? wf_config_set_float(c, bad[i].key, bad[i].value)
                                   : wf_config_set_str(c, bad[i].key, "high");
        if (check(set == 0, "config") && gt_write_model_with(path, 7, c) == 0) {
            dalle_model_t *m = NULL;
            int st = dalle_model_load(&m, path, err);
            check(st == DALLE_EMODEL && m == NULL && strstr(err, bad[i].fragment),
                  "dalle_model_load: %d %s", st, err);
            dalle_model_free(m);
            snprintf(args, sizeof args, "'" PROMPT "' -m %s -q -o %s", path, test_tmp_path("never.png"));
            expect_one_line(1, bad[i].fragment, "", args);
#ifdef DALLEC_HAVE_SERVE
            /* a server that loaded it would listen until stopped */
            snprintf(args, sizeof args, "serve -m %s --port 0 -q", path);
            expect_one_line(1, bad[i].fragment, "timeout 60", args);
#endif
        }
        wf_config_free(c);
    }
}

int main(void)
{
    bin = getenv("DALLEC_BIN");
    if (!bin) {
        fprintf(stderr, "test_sample_defaults: DALLEC_BIN is not set (run through ctest)\n");
        return 1;
    }
    snprintf(orig, sizeof orig, "%s", in_dir("orig", "model.dalle"));
    snprintf(rec, sizeof rec, "%s", in_dir("rec", "model.dalle"));
    if (gt_write_model(orig, 7) == 0) {
        test_convert();
        test_generate();
        test_bad_values();
    }
    return test_summary("test_sample_defaults");
}
