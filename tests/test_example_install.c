/* libdallec as a user gets it: `cmake --install` of this build into a scratch prefix
 * (the binary, libdallec.so and .a, dalle.h, dallec.pc and, when weights/default.dalle
 * exists, the default model, each where it belongs), then examples/Makefile builds
 * examples/generate.c against the installed library through pkg-config, linked shared
 * and static, with -Werror. Both programs draw two images on a tiny model
 * (tests/generate_testlib.h) and must write valid PNGs whose pixels the installed
 * `dalle-c --from` reproduces. Last, the installed dalle-c finds a model put at
 * PREFIX/share/dalle-c/default.dalle with no -m and no $DALLEC_MODEL.
 * Needs the environment CMakeLists.txt gives this test (DALLEC_BUILD_DIR, ...). */
#include "data/data.h"
#include "tests/generate_testlib.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NAME "test_example_install"

static char tmp[512], prefix[600], libdir[700], model[600];
static const char *src;

static const char *env(const char *name)
{
    const char *v = getenv(name);
    if (!v) {
        printf(NAME ": skipped: $%s is not set (run through ctest)\n", name);
        exit(TEST_SKIPPED);
    }
    return v;
}

/* The exit status of a shell command line formatted from fmt; what it printed (stdout
 * and stderr) goes to *out when out is not NULL, else to our stdout when it failed. */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd - 8, fmt, ap);
    va_end(ap);
    strcat(cmd, " 2>&1");
    char *text = NULL;
    int st = test_run(cmd, &text);
    if (st != 0 && !out) printf("  $ %s\n%s", cmd, text ? text : "");
    if (out) *out = text;
    else free(text);
    return st;
}

static int is_file(const char *dir, const char *name)
{
    char path[1400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return check(stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0,
                 "installed %s", path);
}

static void test_installed_files(void)
{
    const char *build = env("DALLEC_BUILD_DIR"), *cmake = env("DALLEC_CMAKE");
    if (!check(sh(NULL, "'%s' --install '%s' --prefix '%s'", cmake, build, prefix) == 0,
               "cmake --install into %s", prefix))
        exit(test_summary(NAME));
    char bin[700], inc[700], data[700], pc[800], path[1400], want[1400];
    snprintf(bin, sizeof bin, "%s/bin", prefix);
    snprintf(inc, sizeof inc, "%s/include", prefix);
    snprintf(data, sizeof data, "%s/share/dalle-c", prefix);
    snprintf(pc, sizeof pc, "%s/pkgconfig", libdir);
    is_file(bin, "dalle-c");
    is_file(libdir, "libdallec.so.0");
    is_file(libdir, "libdallec.a");
    is_file(pc, "dallec.pc");
    if (is_file(inc, "dalle.h")) {
        snprintf(path, sizeof path, "%s/dalle.h", inc);
        snprintf(want, sizeof want, "%s/pipeline/dalle.h", src);
        check(gt_same_file(path, want), "installed dalle.h is pipeline/dalle.h");
    }
    /* the default model is optional: installed exactly when the tree has one */
    snprintf(want, sizeof want, "%s/weights/default.dalle", src);
    snprintf(path, sizeof path, "%s/default.dalle", data);
    struct stat st;
    if (stat(want, &st) == 0) check(gt_same_file(path, want), "installed %s", path);
    else check(stat(path, &st) != 0, "%s installed, but the tree has no default model", path);
    printf("  installed: bin/dalle-c, %s/libdallec.{so,a}, include/dalle.h, "
           "%s/pkgconfig/dallec.pc%s\n", env("DALLEC_INSTALL_LIBDIR"),
           env("DALLEC_INSTALL_LIBDIR"), stat(want, &st) == 0 ? ", share/dalle-c/default.dalle" : "");
}

/* examples/Makefile's two programs, built in tmp/ex against the installed library */
static void test_build_examples(void)
{
    const char *cc = env("DALLEC_CC"), *pkg = env("DALLEC_PKG_CONFIG");
    const char *san = env("DALLEC_EXAMPLE_FLAGS");
    char *out = NULL;
    int st = sh(&out, "PKG_CONFIG_PATH='%s/pkgconfig' '%s' --variable=prefix dallec", libdir, pkg);
    check(st == 0 && strncmp(out, prefix, strlen(prefix)) == 0 && out[strlen(prefix)] == '\n',
          "dallec.pc names the prefix it was installed under (%s), not %s", prefix, out);
    free(out);
    if (!check(sh(NULL, "mkdir -p '%s/ex' && cd '%s/ex' && PKG_CONFIG_PATH='%s/pkgconfig' "
                        "make -f '%s/examples/Makefile' PKG_CONFIG='%s' CC='%s' "
                        "CFLAGS='-std=c11 -O1 -Wall -Wextra -pedantic -Werror %s' LDFLAGS='%s' "
                        "all static",
                  tmp, tmp, libdir, src, pkg, cc, san, san) == 0,
               "examples/Makefile builds generate and generate-static against %s", prefix))
        exit(test_summary(NAME));
    /* the shared one loads the installed libdallec.so.0 through its run path; the static
     * one carries the library */
    st = sh(&out, "readelf -d '%s/ex/generate'", tmp);
    check(st == 0 && strstr(out, "[libdallec.so.0]") && strstr(out, libdir),
          "generate needs libdallec.so.0 from %s:\n%s", libdir, out);
    free(out);
    st = sh(&out, "readelf -d '%s/ex/generate-static'", tmp);
    check(st == 0 && !strstr(out, "libdallec"),
          "generate-static needs no libdallec.so:\n%s", out);
    free(out);
    printf("  examples/Makefile: generate (shared) and generate-static built\n");
}

/* image k of OUT-k.png: S x S RGB with the prompt and model in its text chunks */
static void check_png(const char *path, const char *prompt, int k)
{
    img_t img = {0};
    char err[256], want[16];
    if (!check(img_load(&img, path, err) == 0, "%s: %s", path, err)) return;
    check(img.w == GT_S && img.h == GT_S, "%s is %dx%d, want %dx%d", path, img.w, img.h, GT_S, GT_S);
    img_deinit(&img);
    img_text_t *text = NULL;
    int n = 0;
    snprintf(want, sizeof want, "%d", k);
    if (check(img_load_text(path, &text, &n, err) == 0, "%s: %s", path, err)) {
        const char *p = img_text_get(text, n, "dalle-c:prompt");
        const char *m = img_text_get(text, n, "dalle-c:model");
        const char *i = img_text_get(text, n, "dalle-c:image");
        check(p && strcmp(p, prompt) == 0 && m && strcmp(m, "model.dalle") == 0 && i &&
                  strcmp(i, want) == 0,
              "%s: text chunks prompt \"%s\" model \"%s\" image \"%s\"", path, p ? p : "",
              m ? m : "", i ? i : "");
    }
    free(text);
}

static int same_pixels(const char *a, const char *b)
{
    img_t x = {0}, y = {0};
    char err[256];
    int same = img_load(&x, a, err) == 0 && img_load(&y, b, err) == 0 && x.w == y.w &&
               x.h == y.h && memcmp(x.rgb, y.rgb, (size_t)x.w * x.h * 3) == 0;
    img_deinit(&x);
    img_deinit(&y);
    return same;
}

static void test_run_example(const char *program)
{
    const char *prompt = "a red circle at the top left";
    char *out = NULL, a[700], b[700];
    int st = sh(&out, "cd '%s' && ./ex/%s '%s' '%s' 2 %s", tmp, program, model, prompt, program);
    check(st == 0 && strstr(out, "seed ") && strstr(out, "row 4/4 of 2 image(s)"),
          "%s ran (status %d), printing its seed and rows:\n%s", program, st, out ? out : "");
    free(out);
    for (int k = 1; k <= 2; k++) {
        snprintf(a, sizeof a, "%s/%s-%d.png", tmp, program, k);
        check_png(a, prompt, k);
    }
    /* the installed command line draws the same pixels from the settings in the PNG */
    snprintf(a, sizeof a, "%s/%s-2.png", tmp, program);
    snprintf(b, sizeof b, "%s/%s-from.png", tmp, program);
    check(sh(NULL, "'%s/bin/dalle-c' --from '%s' -m '%s' -o '%s' -q", prefix, a, model, b) == 0 &&
              same_pixels(a, b),
          "dalle-c --from %s gives the same pixels", a);
    printf("  %s: two %dx%d PNGs, image 2 redrawn by the installed dalle-c --from\n", program,
           GT_S, GT_S);
    /* bad input: a clear message and a non-zero exit */
    st = sh(&out, "cd '%s' && ./ex/%s '%s/no-such.dalle' '%s'", tmp, program, tmp, prompt);
    check(st == 1 && strstr(out, "no-such.dalle"), "%s on a missing model: status %d, %s",
          program, st, out ? out : "");
    free(out);
}

/* The installed binary looks for PREFIX/share/dalle-c/default.dalle when given no model. */
static void test_default_model(void)
{
    char data[700], dflt[800], a[700], b[700];
    char *out = NULL;
    snprintf(data, sizeof data, "%s/share/dalle-c", prefix);
    snprintf(dflt, sizeof dflt, "%s/default.dalle", data);
    snprintf(a, sizeof a, "%s/default.png", tmp);
    snprintf(b, sizeof b, "%s/given.png", tmp);
    remove(dflt); /* the test's own prefix: the real default model, if any, was compared */
    int st = sh(&out, "env -u DALLEC_MODEL '%s/bin/dalle-c' 'a blue square' -o '%s' -q", prefix, a);
    check(st == 1 && strstr(out, "share/dalle-c/default.dalle"),
          "no default model installed: status %d, message names share/dalle-c/default.dalle: %s",
          st, out ? out : "");
    free(out);
    if (!check(sh(NULL, "mkdir -p '%s' && cp '%s' '%s'", data, model, dflt) == 0,
               "copy the model to %s", dflt))
        return;
    st = sh(NULL, "env -u DALLEC_MODEL '%s/bin/dalle-c' 'a blue square' --seed 9 -o '%s' -q",
            prefix, a);
    check(st == 0 && sh(NULL, "'%s/bin/dalle-c' 'a blue square' --seed 9 -m '%s' -o '%s' -q",
                        prefix, model, b) == 0 &&
              same_pixels(a, b),
          "the installed dalle-c uses %s when given no model (status %d)", dflt, st);
    img_text_t *text = NULL;
    int n = 0;
    char err[256];
    const char *m = img_load_text(a, &text, &n, err) ? NULL : img_text_get(text, n, "dalle-c:model");
    check(m && strcmp(m, "default.dalle") == 0, "its PNG names model \"%s\"", m ? m : "(none)");
    free(text);
    printf("  the installed dalle-c finds share/dalle-c/default.dalle\n");
}

int main(void)
{
    src = env("DALLEC_SOURCE_DIR");
    snprintf(tmp, sizeof tmp, "%s", test_tmpdir());
    snprintf(prefix, sizeof prefix, "%s/prefix", tmp);
    snprintf(libdir, sizeof libdir, "%s/%s", prefix, env("DALLEC_INSTALL_LIBDIR"));
    snprintf(model, sizeof model, "%s/model.dalle", tmp);
    char *out = NULL;
    if (sh(&out, "make --version") != 0) {
        printf(NAME ": skipped: no make to run examples/Makefile\n");
        free(out);
        return TEST_SKIPPED;
    }
    free(out);
    test_installed_files();
    test_build_examples();
    if (gt_write_model(model, 3)) return test_summary(NAME);
    test_run_example("generate");
    test_run_example("generate-static");
    test_default_model();
    return test_summary(NAME);
}
