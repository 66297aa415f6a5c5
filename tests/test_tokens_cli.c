/* dalle-c tokens encode | decode | stats | atlas through the binary, on a small
 * random-initialised dVAE (S=16, L=2: 4x4 grids, K=16) and a few PNGs made here:
 * encode's format and tokens (against dvae_encode in this process), decode of encode's
 * output (against dvae_decode), decode's refusals (token >= K, negative, wrong size,
 * garbage, several grids, missing file), stats over a folder with a corrupt file (text
 * and --json against the histogram computed here), atlas sizes and tiles, --help and
 * usage errors. Needs DALLEC_BIN. */
#include "data/data.h"
#include "dvae/dvae.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

enum { S = 16, G = 4, K = 16 };

static const char *bin;
static char tmp[512], model[600], dir[600];
static dvae_t *m;

/* Runs a shell command line; its stdout (and stderr when the line says 2>&1) comes back
 * in *out (malloc'd) when out is not NULL. Exit status, or -1. */
static int run(char **out, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return test_run(cmd, out);
}

static void write_file(const char *path, const char *text)
{
    test_write_file(path, text);
}

/* A w x h PNG whose pixels are a function of seed. */
static void write_png(const char *path, int w, int h, unsigned seed)
{
    img_t img;
    char err[256];
    if (!check(img_init(&img, w, h, err) == 0, "img_init: %s", err)) return;
    for (int i = 0; i < w * h * 3; i++) {
        unsigned v = (unsigned)i * 2654435761u ^ seed * 40503u;
        img.rgb[i] = (uint8_t)(seed & 1 ? (v >> 13) : (i * 7 + seed * 31));
    }
    check(img_save_png(&img, path, NULL, 0, err) == 0, "writing %s: %s", path, err);
    img_deinit(&img);
}

/* The tokens dvae_encode gives for an image file, as the command line loads it. */
static int encode_here(const char *path, int *tok)
{
    img_t a = {0}, b = {0};
    char err[256];
    float x[3 * S * S];
    if (img_load(&a, path, err) || img_resize_crop(&b, &a, S, err)) {
        check(0, "%s: %s", path, err);
        img_deinit(&a);
        return -1;
    }
    img_to_planar(&b, x, S * S);
    dvae_encode(m, x, 1, tok);
    img_deinit(&a);
    img_deinit(&b);
    return 0;
}

/* The image dvae_decode gives for tokens. */
static void decode_here(const int *tok, img_t *img)
{
    float x[3 * S * S];
    char err[256];
    dvae_decode(m, tok, 1, x);
    img_init(img, S, S, err);
    img_from_planar(img, x, S * S);
}

/* Largest channel difference between img's tile at (x0, y0) and want. */
static int max_diff(const img_t *img, int x0, int y0, const img_t *want)
{
    int d = 0;
    for (int y = 0; y < want->h; y++)
        for (int x = 0; x < want->w * 3; x++) {
            int a = img->rgb[((y0 + y) * img->w + x0) * 3 + x], b = want->rgb[y * want->w * 3 + x];
            if (abs(a - b) > d) d = abs(a - b);
        }
    return d;
}

static void setup(void)
{
    char err[256];
    snprintf(tmp, sizeof tmp, "%s", test_tmpdir());
    dvae_config_t c = dvae_config_default();
    c.image_size = S, c.layers = 2, c.channels = 8, c.res_blocks = 1, c.codebook_size = K;
    c.code_dim = 8;
    if (dvae_create(&m, &c, 4, err)) {
        check(0, "dvae_create: %s", err);
        exit(test_summary("test_tokens_cli"));
    }
    dvae_init_params(m, 7);
    snprintf(model, sizeof model, "%s/model.dalle", tmp);
    check(dvae_save(m, model, err) == 0, "dvae_save: %s", err);

    char p[700];
    snprintf(dir, sizeof dir, "%s/imgs", tmp);
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/sub", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/a.png", dir), write_png(p, S, S, 2);
    snprintf(p, sizeof p, "%s/b.png", dir), write_png(p, S, S, 3);
    snprintf(p, sizeof p, "%s/c.png", dir), write_png(p, 40, 24, 5); /* resized and cropped */
    snprintf(p, sizeof p, "%s/sub/d.png", dir), write_png(p, S, S, 8);
    snprintf(p, sizeof p, "%s/corrupt.png", dir);
    write_file(p, "\x89PNG\r\n\x1a\n this is not the rest of a PNG");
}

/* ---------------------------------------------------------------- encode */

/* Checks one block of encode's output at *s (header and G rows) against the tokens of
 * path computed here; advances *s past it. */
static void check_block(const char **s, const char *path, int *tok_out)
{
    char want[800];
    snprintf(want, sizeof want, "# dalle-c tokens G=%d K=%d image=%s\n", G, K, path);
    if (!check(strncmp(*s, want, strlen(want)) == 0, "header: want %sgot %.80s", want, *s)) return;
    const char *p = *s + strlen(want);
    int tok[G * G], here[G * G], ok = 1;
    for (int r = 0; r < G && ok; r++) {
        for (int c = 0; c < G && ok; c++) {
            int len;
            ok = sscanf(p, "%d%n", &tok[r * G + c], &len) == 1 && tok[r * G + c] >= 0 &&
                 tok[r * G + c] < K;
            p += len;
            ok = ok && *p == (c + 1 < G ? ' ' : '\n');
            p++;
        }
    }
    if (!check(ok, "%s: %d lines of %d single-space-separated tokens in [0, %d)", path, G, G, K))
        return;
    *s = p;
    if (encode_here(path, here)) return;
    check(memcmp(tok, here, sizeof tok) == 0, "%s: tokens equal dvae_encode's", path);
    if (tok_out) memcpy(tok_out, tok, sizeof tok);
}

static void test_encode(void)
{
    printf("encode\n");
    char *out, a[700], b[700], c[700];
    snprintf(a, sizeof a, "%s/a.png", dir);
    snprintf(b, sizeof b, "%s/b.png", dir);
    snprintf(c, sizeof c, "%s/c.png", dir);
    /* --batch 2: three images go in two batches */
    int rc = run(&out, "DALLEC_NO_REEXEC=1 %s tokens encode -m %s --batch 2 %s %s %s", bin,
                 model, a, b, c);
    check(rc == 0, "encode of three images: exit %d", rc);
    const char *s = out;
    check_block(&s, a, NULL);
    check(*s == '\n', "a blank line between grids"), s++;
    check_block(&s, b, NULL);
    check(*s == '\n', "a blank line between grids"), s++;
    check_block(&s, c, NULL);
    check(*s == 0, "nothing after the last grid: '%.40s'", s);
    printf("  three grids of %dx%d, tokens equal dvae_encode's\n", G, G);
    free(out);

    /* an unreadable image among good ones: reported, skipped, exit 1 */
    rc = run(&out, "%s tokens encode -m %s %s %s/corrupt.png %s 2>&1", bin, model, a, dir, b);
    check(rc == 1 && strstr(out, "corrupt.png") && strstr(out, "image=") &&
              strstr(strstr(out, "image=") + 1, "image="),
          "a corrupt image: exit 1 naming it, the others still encoded (exit %d):\n%s", rc, out);
    free(out);
    rc = run(&out, "%s tokens encode -m %s/no-model.dalle %s 2>&1", bin, tmp, a);
    check(rc == 1 && strstr(out, "no-model.dalle"), "a missing model: exit 1 naming it:\n%s", out);
    free(out);
}

/* ---------------------------------------------------------------- decode */

static void expect_refusal(const char *grid_text, const char *label, const char *want1,
                           const char *want2)
{
    char path[700], *out;
    snprintf(path, sizeof path, "%s/bad.txt", tmp);
    write_file(path, grid_text);
    int rc = run(&out, "%s tokens decode -m %s %s -o %s/bad.png 2>&1", bin, model, path, tmp);
    char *nl = strchr(out, '\n');
    int one_line = nl && nl[1] == 0;
    if (check(rc == 1 && strstr(out, "bad.txt") && strstr(out, want1) &&
                  (!want2 || strstr(out, want2)) && one_line,
              "%s: want exit 1 and one line naming bad.txt with '%s'%s%s; got exit %d:\n%s", label,
              want1, want2 ? " and " : "", want2 ? want2 : "", rc, out))
        printf("  %s: %s", label, out);
    free(out);
    struct stat st;
    snprintf(path, sizeof path, "%s/bad.png", tmp);
    check(stat(path, &st) != 0, "%s: no output file written", label);
}

static void test_decode(void)
{
    printf("decode\n");
    char a[700], b[700], *out;
    snprintf(a, sizeof a, "%s/a.png", dir);
    snprintf(b, sizeof b, "%s/b.png", dir);
    int rc = run(NULL, "DALLEC_NO_REEXEC=1 %s tokens encode -m %s %s > %s/grid.txt", bin, model,
                 a, tmp);
    check(rc == 0, "encode a.png to grid.txt");
    int tok[G * G];
    if (encode_here(a, tok)) return;

    rc = run(&out, "DALLEC_NO_REEXEC=1 %s tokens decode -m %s %s/grid.txt -o %s/dec.png 2>&1",
             bin, model, tmp, tmp);
    check(rc == 0, "decode grid.txt: exit %d\n%s", rc, out);
    free(out);
    img_t got = {0}, want = {0}, piped = {0};
    char path[700], err[256];
    snprintf(path, sizeof path, "%s/dec.png", tmp);
    if (check(img_load(&got, path, err) == 0, "load %s: %s", path, err) &&
        check(got.w == S && got.h == S, "decoded image %dx%d, want %dx%d", got.w, got.h, S, S)) {
        decode_here(tok, &want);
        int d = max_diff(&got, 0, 0, &want);
        check(d <= 1, "decoded PNG equals dvae_decode's image (max difference %d)", d);
        printf("  %dx%d PNG; largest difference from dvae_decode's pixels: %d\n", S, S, d);
    }
    img_text_t *text;
    int n_text;
    if (check(img_load_text(path, &text, &n_text, err) == 0, "%s: %s", path, err)) {
        const char *t = img_text_get(text, n_text, "dalle-c tokens");
        check(t && strncmp(t, "# dalle-c tokens G=4 K=16\n", 26) == 0,
              "the PNG carries its tokens: %s", t ? t : "(none)");
        free(text);
    }

    /* stdin, and CRLF line ends with comments and extra spaces */
    rc = run(NULL, "sed 's/$/\\r/; s/ /   /g; 1a # a comment' %s/grid.txt | %s tokens decode -m %s - -o %s/piped.png",
             tmp, bin, model, tmp);
    snprintf(path, sizeof path, "%s/piped.png", tmp);
    if (check(rc == 0, "decode from stdin (CRLF, comments, runs of spaces): exit %d", rc) &&
        check(img_load(&piped, path, err) == 0, "%s: %s", path, err) && got.rgb)
        check(max_diff(&piped, 0, 0, &got) <= 1, "decode from stdin gives the same image");
    img_deinit(&got);
    img_deinit(&want);
    img_deinit(&piped);

    /* several grids: refused without --index, the second taken with --index 2 */
    run(NULL, "%s tokens encode -m %s %s %s > %s/two.txt", bin, model, a, b, tmp);
    rc = run(&out, "%s tokens decode -m %s %s/two.txt -o %s/two.png 2>&1", bin, model, tmp, tmp);
    check(rc == 1 && strstr(out, "2 grids") && strstr(out, "--index"),
          "two grids without --index: exit 1 saying so (exit %d):\n%s", rc, out);
    printf("  two grids: %s", out);
    free(out);
    rc = run(&out, "%s tokens decode -m %s %s/two.txt --index 2 -o %s/two.png 2>&1", bin, model,
             tmp, tmp);
    check(rc == 0, "--index 2: exit %d\n%s", rc, out);
    free(out);

    /* refusals, each one line naming the file, exit 1 and no output written */
    expect_refusal("# dalle-c tokens G=4 K=16 image=x\n1 2 3 4\n5 6 16 8\n9 10 11 12\n13 14 15 0\n",
                   "token = K", "row 2, column 3 (line 3): token 16", "K=16");
    expect_refusal("1 2 3 4\n5 6 7 8\n9 -1 11 12\n13 14 15 0\n", "negative token",
                   "row 3, column 2", "-1");
    expect_refusal("1 2 3 4\n5 6 7 8\n9 10 11 12\n13 14 15 99999999999999999999\n",
                   "huge token", "row 4, column 4", "out of range");
    expect_refusal("1 2 3\n4 5 6\n7 8 9\n", "3x3 grid", "4x4", NULL);
    expect_refusal("1 2 3 4\n5 6 7 8\n9 10 11 12\n", "3 rows", "3 rows", "4x4");
    expect_refusal("1 2 3 4\n5 6 7 8 9\n9 10 11 12\n13 14 15 0\n", "a long row",
                   "line 2 has 5 tokens", "4x4");
    expect_refusal("1 2 3 4\n5 6 seven 8\n9 10 11 12\n13 14 15 0\n", "a word", "line 2",
                   "'seven' is not a token");
    expect_refusal("1 2 3 4\n5 6 7 8\n9 10 11.5 12\n13 14 15 0\n", "a fraction", "'11.5'", NULL);
    expect_refusal("\x89PNG\r\n\x1a\n\x01\x02garbage", "binary garbage", "not a token", NULL);
    expect_refusal("", "an empty file", "no token grid", NULL);
    expect_refusal("# only a comment\n\n", "only comments", "no token grid", NULL);
    expect_refusal("# dalle-c tokens G=8 K=512 image=x\n1 2 3 4\n5 6 7 8\n9 10 11 12\n13 14 15 0\n",
                   "a header for another model", "G=8 K=512", "K=16");

    rc = run(&out, "%s tokens decode -m %s %s/no-such.txt -o %s/x.png 2>&1", bin, model, tmp, tmp);
    check(rc == 1 && strstr(out, "no-such.txt") && strstr(out, "No such file"),
          "a missing grid file: exit 1 naming it:\n%s", out);
    printf("  missing file: %s", out);
    free(out);
    rc = run(&out, "%s tokens decode -m %s %s/grid.txt -o %s/no-dir/x.png 2>&1", bin, model, tmp,
             tmp);
    check(rc == 1 && strstr(out, "no-dir/x.png"), "an unwritable output: exit 1 naming it:\n%s",
          out);
    free(out);
}

/* ---------------------------------------------------------------- stats */

static double json_number(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(json, k);
    return p ? atof(p + strlen(k)) : NAN;
}

static void test_stats(void)
{
    printf("stats\n");
    static const char *good[] = {"a.png", "b.png", "c.png", "sub/d.png"};
    long long hist[K] = {0};
    for (int i = 0; i < 4; i++) {
        char p[700];
        int tok[G * G];
        snprintf(p, sizeof p, "%s/%s", dir, good[i]);
        if (encode_here(p, tok)) return;
        for (int t = 0; t < G * G; t++) hist[tok[t]]++;
    }
    int used = 0, top = 0;
    double h = 0;
    for (int k = 0; k < K; k++) {
        used += hist[k] > 0;
        if (hist[k] > hist[top]) top = k;
        if (hist[k]) h -= hist[k] / 64.0 * log(hist[k] / 64.0);
    }

    char *out, want[128];
    int rc = run(&out, "DALLEC_NO_REEXEC=1 %s tokens stats -m %s %s 2>/dev/null", bin, model, dir);
    check(rc == 0, "stats: exit %d", rc);
    printf("%s", out);
    snprintf(want, sizeof want, "codes used:  %d of %d", used, K);
    check(strstr(out, "images:      4 read, 1 skipped") && strstr(out, "corrupt.png") &&
              strstr(out, want) && strstr(out, "perplexity:") && strstr(out, "dead codes:") &&
              strstr(out, "top codes:"),
          "stats text: 4 read, 1 skipped naming corrupt.png, '%s'", want);
    free(out);

    rc = run(&out, "DALLEC_NO_REEXEC=1 %s tokens stats -m %s %s --json --top 3 2>/dev/null", bin,
             model, dir);
    check(rc == 0, "stats --json: exit %d", rc);
    check(json_number(out, "images") == 4 && json_number(out, "skipped") == 1 &&
              json_number(out, "tokens") == 64 && json_number(out, "used_codes") == used &&
              json_number(out, "dead_codes") == K - used,
          "json counts: images 4, skipped 1, tokens 64, used %d\n%s", used, out);
    double ppl = json_number(out, "perplexity");
    check(fabs(ppl - exp(h)) < 1e-3, "json perplexity %g, want %g", ppl, exp(h));
    check(strstr(out, "\"corrupt.png\"") != NULL, "json names the skipped file");
    const char *t = strstr(out, "\"top\": [");
    check(t && (int)json_number(t, "code") == top && json_number(t, "count") == hist[top],
          "json's top code is %d (%lld times)", top, hist[top]);
    const char *hp = strstr(out, "\"histogram\": [");
    int hist_ok = hp != NULL;
    if (hp) hp += strlen("\"histogram\": [");
    for (int k = 0; k < K && hist_ok; k++) {
        char *end;
        hist_ok = strtoll(hp, &end, 10) == hist[k];
        hp = end + (*end == ',' ? 2 : 0);
    }
    check(hist_ok, "json histogram equals dvae_encode's counts");
    free(out);

    /* a folder where nothing decodes, and a missing folder: exit 1 naming them */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/allbad", tmp);
    mkdir(bad, 0700);
    char p[800];
    snprintf(p, sizeof p, "%s/x.png", bad);
    write_file(p, "not an image");
    rc = run(&out, "%s tokens stats -m %s %s 2>&1", bin, model, bad);
    check(rc == 1 && strstr(out, "allbad"), "only unreadable images: exit 1 naming the folder:\n%s",
          out);
    free(out);
    rc = run(&out, "%s tokens stats -m %s %s/nowhere 2>&1", bin, model, tmp);
    check(rc == 1 && strstr(out, "nowhere"), "a missing folder: exit 1 naming it:\n%s", out);
    free(out);
}

/* ---------------------------------------------------------------- atlas */

static void test_atlas(void)
{
    printf("atlas\n");
    char *out, path[700], err[256];
    img_t img = {0};
    int rc = run(&out, "%s tokens atlas -m %s -o %s/atlas.png 2>&1", bin, model, tmp);
    check(rc == 0, "atlas: exit %d\n%s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/atlas.png", tmp);
    /* 16 codes in one row (32 columns at most) of 16 px tiles with 2 px padding */
    if (check(img_load(&img, path, err) == 0, "%s: %s", path, err))
        check(img.w == 16 * 18 + 2 && img.h == 18 + 2, "atlas %dx%d, want %dx%d", img.w, img.h,
              16 * 18 + 2, 18 + 2);
    img_deinit(&img);

    /* codes 2-5 in 2 columns: each tile is dvae_decode of a grid filled with its code */
    rc = run(&out, "DALLEC_NO_REEXEC=1 %s tokens atlas -m %s --codes 2-5 --cols 2 -o %s/a2.png 2>&1",
             bin, model, tmp);
    check(rc == 0, "atlas --codes 2-5 --cols 2: exit %d\n%s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/a2.png", tmp);
    if (check(img_load(&img, path, err) == 0, "%s: %s", path, err) &&
        check(img.w == 2 * 18 + 2 && img.h == 2 * 18 + 2, "atlas %dx%d, want 38x38", img.w,
              img.h)) {
        int worst = 0;
        for (int i = 0; i < 4; i++) {
            int tok[G * G];
            img_t want;
            for (int t = 0; t < G * G; t++) tok[t] = 2 + i;
            decode_here(tok, &want);
            int d = max_diff(&img, 2 + (i % 2) * 18, 2 + (i / 2) * 18, &want);
            if (d > worst) worst = d;
            img_deinit(&want);
        }
        check(worst <= 1, "atlas tiles equal dvae_decode of filled grids (max difference %d)",
              worst);
        printf("  codes 2-5: tiles equal dvae_decode's (max difference %d)\n", worst);
    }
    img_deinit(&img);
    img_text_t *text;
    int n_text;
    if (check(img_load_text(path, &text, &n_text, err) == 0, "%s: %s", path, err)) {
        const char *t = img_text_get(text, n_text, "dalle-c codes");
        check(t && strcmp(t, "2 3 4 5") == 0, "text chunk 'dalle-c codes' is '2 3 4 5': %s",
              t ? t : "(none)");
        free(text);
    }

    /* --tile, --pad, and --dir: the most used code first */
    rc = run(&out, "DALLEC_NO_REEXEC=1 %s tokens atlas -m %s --tile 8 --pad 1 --cols 4 --dir %s -o %s/a3.png 2>&1",
             bin, model, dir, tmp);
    check(rc == 0, "atlas --tile 8 --pad 1 --dir: exit %d\n%s", rc, out);
    free(out);
    snprintf(path, sizeof path, "%s/a3.png", tmp);
    if (check(img_load(&img, path, err) == 0, "%s: %s", path, err))
        check(img.w == 4 * 9 + 1 && img.h == 4 * 9 + 1, "atlas %dx%d, want 37x37", img.w, img.h);
    img_deinit(&img);
    if (check(img_load_text(path, &text, &n_text, err) == 0, "%s: %s", path, err)) {
        const char *t = img_text_get(text, n_text, "dalle-c codes");
        long long hist[K] = {0};
        static const char *good[] = {"a.png", "b.png", "c.png", "sub/d.png"};
        for (int i = 0; i < 4; i++) {
            char p[700];
            int tok[G * G];
            snprintf(p, sizeof p, "%s/%s", dir, good[i]);
            encode_here(p, tok);
            for (int k = 0; k < G * G; k++) hist[tok[k]]++;
        }
        /* the order the command should find: by count, ties by code */
        char want[256];
        size_t n = 0;
        int done[K] = {0};
        for (int i = 0; i < K; i++) {
            int best = -1;
            for (int k = 0; k < K; k++)
                if (!done[k] && (best < 0 || hist[k] > hist[best])) best = k;
            done[best] = 1;
            n += (size_t)snprintf(want + n, sizeof want - n, "%s%d", i ? " " : "", best);
        }
        check(t && strcmp(t, want) == 0, "--dir orders by usage: want '%s', got '%s'", want,
              t ? t : "(none)");
        free(text);
    }

    rc = run(&out, "%s tokens atlas -m %s --codes 10-16 -o %s/x.png 2>&1", bin, model, tmp);
    check(rc == 2 && strstr(out, "K=16"), "--codes past K: exit 2 saying K (exit %d):\n%s", rc, out);
    free(out);
    rc = run(&out, "%s tokens atlas -m %s --codes 5-2 -o %s/x.png 2>&1", bin, model, tmp);
    check(rc == 2, "--codes 5-2: exit 2 (exit %d)", rc);
    free(out);
}

/* ---------------------------------------------------------------- usage */

static void test_usage(void)
{
    printf("help and usage errors\n");
    static const char *subs[] = {"", "encode", "decode", "stats", "atlas"};
    char *out;
    for (int i = 0; i < 5; i++) {
        int rc = run(&out, "%s tokens %s --help", bin, subs[i]);
        check(rc == 0 && strstr(out, "usage: dalle-c tokens"), "tokens %s --help: exit %d", subs[i],
              rc);
        free(out);
        if (!i) continue;
        rc = run(&out, "%s tokens %s -m %s --no-such-option x 2>&1", bin, subs[i], model);
        check(rc == 2 && strstr(out, "--no-such-option"),
              "tokens %s --no-such-option: exit 2 naming it (exit %d)", subs[i], rc);
        free(out);
    }
    static const char *bad[] = {
        "tokens",
        "tokens frobnicate",
        "tokens encode -m MODEL",                 /* no image */
        "tokens encode IMG",                      /* no model */
        "tokens encode -m MODEL --batch 0 IMG",
        "tokens decode -m MODEL GRID",            /* no -o */
        "tokens decode -m MODEL GRID GRID -o x.png",
        "tokens decode -m MODEL GRID -o x.png --index 0",
        "tokens stats -m MODEL",                  /* no folder */
        "tokens stats -m MODEL DIR --top -1",
        "tokens atlas -m MODEL",                  /* no -o */
        "tokens atlas -m MODEL -o x.png --cols 0",
        "tokens atlas -m MODEL -o x.png --codes x",
        "tokens atlas -m MODEL -o x.png -m",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char line[1024];
        size_t k = 0;
        for (const char *s = bad[i]; *s && k < 900;) {
            if (strncmp(s, "MODEL", 5) == 0) k += (size_t)snprintf(line + k, 1024 - k, "%s", model), s += 5;
            else if (strncmp(s, "GRID", 4) == 0) k += (size_t)snprintf(line + k, 1024 - k, "%s/grid.txt", tmp), s += 4;
            else if (strncmp(s, "IMG", 3) == 0) k += (size_t)snprintf(line + k, 1024 - k, "%s/a.png", dir), s += 3;
            else if (strncmp(s, "DIR", 3) == 0) k += (size_t)snprintf(line + k, 1024 - k, "%s", dir), s += 3;
            else line[k++] = *s++;
        }
        line[k] = 0;
        int rc = run(&out, "%s %s 2>&1", bin, line);
        check(rc == 2 && out[0], "dalle-c %s: exit 2 with a message (exit %d)", bad[i], rc);
        free(out);
    }
    printf("  --help x5 exit 0; %zu usage errors exit 2\n", sizeof bad / sizeof *bad);
}

int main(void)
{
    bin = getenv("DALLEC_BIN");
    if (!bin) {
        printf("DALLEC_BIN is not set (run through ctest)\n");
        return 1;
    }
    setup();
    test_encode();
    test_decode();
    test_stats();
    test_atlas();
    test_usage();
    dvae_free(m);
    return test_summary("test_tokens_cli");
}
