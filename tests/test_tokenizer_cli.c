/* The tokenizer against Debian's SentencePiece tools and through the command line:
 * `dalle-c tokenizer train` writes a .model; /usr/bin/spm_encode, `dalle-c tokenizer
 * encode` and tok_encode() must give the same ids (and pieces) for every line of a text
 * file with ASCII, accented Latin, CJK, emoji, an empty line, invalid UTF-8 and a 10 kB
 * line. Also: a model from spm_train's defaults (no <pad>), a dalle-c model file on the
 * command line, decode, and exit codes. Needs DALLEC_BIN and the sentencepiece package. */
#include "tests/testutil.h"
#include "tokenizer/tokenizer.h"
#include "weights/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPM_ENCODE "/usr/bin/spm_encode"
#define SPM_TRAIN "/usr/bin/spm_train"

static char tmp[512];

/* Runs cmd through the shell; its stdout is returned in *out (malloc'd). Exit status,
 * or -1 when it could not run. */

static void expect_exit(int want, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int got = test_run(cmd, NULL);
    if (check(got == want, "exit %d, want %d: %s", got, want, cmd))
        printf("  exit %d: %s\n", got, strstr(cmd, "tokenizer"));
}

static void write_captions(const char *path)
{
    static const char *colors[] = {"red", "green", "blue", "yellow", "purple", "orange"};
    static const char *shapes[] = {"circle", "square", "triangle", "star", "heart"};
    static const char *extra[] = {"un café crème à côté d'une pâtisserie", "赤い円と青い四角",
                                  "a smiling face 😀 with hearts 😍", "Naïve Señor über Straße",
                                  "一只红色的猫在桌子上", "OpenMoji style 🐱 cat face"};
    FILE *fp = fopen(path, "wb");
    for (int i = 0; i < 2000; i++) {
        unsigned h = (unsigned)i * 2654435761u;
        if (i % 8 == 7)
            fprintf(fp, "%s\n", extra[(h >> 8) % 6]);
        else
            fprintf(fp, "A %s %s %s on a %s background\n", (h >> 3) & 1 ? "small" : "large",
                    colors[(h >> 5) % 6], shapes[(h >> 9) % 5], colors[(h >> 17) % 6]);
    }
    fclose(fp);
}

/* The probe texts, one a line (no CR, no NUL: spm_encode reads lines the same way). */
static int write_texts(const char *path)
{
    static const char *lines[] = {
        "a small red circle on a blue background",
        "A LARGE Green Star, top-left; 3 of 12 (25%)",
        "un café crème à côté, Ærøskøbing, Łódź, İstanbul, Ελλάδα",
        "cafe\xCC\x81 decomposed, ＡＢＣ full width",
        "赤い円と青い四角 and 一只红色的猫 and 한국어",
        "emoji 😀😍 flags 🇫🇷🇯🇵 family 👨‍👩‍👧 skin 👍🏽 rare 🦩🪐",
        "",
        "   spaces   everywhere   ",
        "invalid \xFF\xFE utf-8 \xC0\xAF and cut \xE6\x97",
        "tabs\tand\tsymbols <s> </s> <pad> <unk> \xE2\x96\x81 \\ \" '",
    };
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    int n = 0;
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++, n++) fprintf(fp, "%s\n", lines[i]);
    for (int k = 0; k < 10240 / 40; k++) fputs("a very long caption 赤い円 😀 on and on ", fp);
    fputc('\n', fp);
    n++;
    fclose(fp);
    return n;
}

/* tok_encode() of every line, printed as spm_encode --output_format=id does. */
static char *library_ids(tok_t *t, const char *path)
{
    FILE *fp = fopen(path, "rb");
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap), *line = NULL, err[256];
    size_t lcap = 0;
    ssize_t len;
    static int ids[1 << 16];
    out[0] = 0;
    while ((len = getline(&line, &lcap, fp)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') line[len - 1] = 0;
        long k = tok_encode(t, line, ids, 1 << 16, err);
        check(k >= 0 && k <= (1 << 16), "tok_encode: %s", err);
        for (long i = 0; i < k; i++) {
            if (cap - n < 32) out = realloc(out, cap *= 2);
            n += (size_t)snprintf(out + n, cap - n, i ? " %d" : "%d", ids[i]);
        }
        if (cap - n < 2) out = realloc(out, cap *= 2);
        out[n++] = '\n';
        out[n] = 0;
    }
    free(line);
    fclose(fp);
    return out;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void first_difference(const char *what, const char *a, const char *b)
{
    int line = 1;
    size_t i = 0;
    while (a[i] && a[i] == b[i]) line += a[i++] == '\n';
    printf("    %s: first difference on line %d: \"%.60s\" vs \"%.60s\"\n", what, line, a + i, b + i);
}

static void compare(const char *what, const char *a, const char *b, int want_lines)
{
    int same = strcmp(a, b) == 0;
    check(same && count_lines(a) == want_lines, "%s differ (%d and %d lines, want %d)", what,
          count_lines(a), count_lines(b), want_lines);
    if (!same) first_difference(what, a, b);
    printf("  %-44s %d lines, %zu bytes %s\n", what, count_lines(a), strlen(a), same ? "ok" : "FAIL");
}

int main(void)
{
    const char *bin = getenv("DALLEC_BIN");
    if (!check(bin != NULL, "DALLEC_BIN is not set (run through ctest)"))
        return test_summary("test_tokenizer_cli");
    if (!check(access(SPM_ENCODE, X_OK) == 0 && access(SPM_TRAIN, X_OK) == 0,
               SPM_ENCODE " or " SPM_TRAIN " is missing: install Debian's sentencepiece "
               "package (scripts/install-deps.sh); this test compares against it"))
        return test_summary("test_tokenizer_cli");
    snprintf(tmp, sizeof tmp, "%s", test_tmpdir());
    char caps[600], texts[600], model[600], cmd[4096], err[256];
    snprintf(caps, sizeof caps, "%s/captions.txt", tmp);
    snprintf(texts, sizeof texts, "%s/texts.txt", tmp);
    snprintf(model, sizeof model, "%s/tok.model", tmp);
    write_captions(caps);
    int n_texts = write_texts(texts);

    printf("dalle-c tokenizer train\n");
    snprintf(cmd, sizeof cmd, "%s tokenizer train %s -o %s --vocab 800", bin, caps, model);
    char *out = NULL;
    check(test_run(cmd, &out) == 0, "%s failed", cmd);
    printf("  %s", out);
    free(out);
    char err_file[600];
    snprintf(err_file, sizeof err_file, "%s/stderr.txt", tmp);

    tok_t *t = tok_load(model, err);
    if (!check(t != NULL, "loading %s: %s", model, err)) return test_summary("test_tokenizer_cli");

    printf("ids and pieces: spm_encode vs dalle-c vs tok_encode\n");
    char *spm_ids = NULL, *cli_ids = NULL, *spm_pieces = NULL, *cli_pieces = NULL;
    snprintf(cmd, sizeof cmd, SPM_ENCODE " --model=%s --output_format=id < %s", model, texts);
    check(test_run(cmd, &spm_ids) == 0, "%s failed", cmd);
    snprintf(cmd, sizeof cmd, "%s tokenizer encode -m %s --ids --input %s 2>%s", bin, model, texts,
             err_file);
    check(test_run(cmd, &cli_ids) == 0, "%s failed", cmd);
    char *lib_ids = library_ids(t, texts);
    compare("spm_encode ids == dalle-c tokenizer encode", spm_ids, cli_ids, n_texts);
    compare("spm_encode ids == tok_encode", spm_ids, lib_ids, n_texts);
    snprintf(cmd, sizeof cmd, SPM_ENCODE " --model=%s --output_format=piece < %s", model, texts);
    check(test_run(cmd, &spm_pieces) == 0, "%s failed", cmd);
    snprintf(cmd, sizeof cmd, "%s tokenizer encode -m %s --pieces --input %s 2>/dev/null", bin, model, texts);
    check(test_run(cmd, &cli_pieces) == 0, "%s failed", cmd);
    compare("spm_encode pieces == dalle-c pieces", spm_pieces, cli_pieces, n_texts);
    snprintf(cmd, sizeof cmd, "cat %s", err_file);
    char *warn = NULL;
    test_run(cmd, &warn);
    check(count_lines(warn) == 1 && strstr(warn, "invalid UTF-8"),
          "want one invalid-UTF-8 warning, stderr was: %s", warn);
    printf("  stderr: %s", warn);
    free(warn);
    free(spm_ids);
    free(cli_ids);
    free(lib_ids);
    free(spm_pieces);
    free(cli_pieces);

    printf("fixed length through the CLI: one warning for several cut captions\n");
    snprintf(cmd, sizeof cmd, "%s tokenizer encode -m %s --ids --length 4 --input %s 2>%s", bin,
             model, texts, err_file);
    check(test_run(cmd, &out) == 0, "%s failed", cmd);
    check(count_lines(out) == n_texts, "--length 4 printed %d lines", count_lines(out));
    int bad_lines = 0, spaces = 0; /* every line: exactly 4 ids */
    for (const char *c = out; *c; c++) {
        if (*c == ' ') spaces++;
        if (*c == '\n') {
            bad_lines += spaces != 3;
            spaces = 0;
        }
    }
    check(bad_lines == 0, "--length 4: %d lines without exactly 4 ids:\n%s", bad_lines, out);
    free(out);
    snprintf(cmd, sizeof cmd, "cat %s", err_file);
    test_run(cmd, &warn);
    check(count_lines(warn) == 2 && strstr(warn, "T = 4") && strstr(warn, "invalid UTF-8"),
          "want one truncation and one UTF-8 warning, stderr was: %s", warn);
    printf("  stderr: %s", warn);
    free(warn);

    printf("decode\n");
    snprintf(cmd, sizeof cmd, "%s tokenizer encode -m %s --ids 'Two Red Hearts 😍 赤い円'", bin, model);
    check(test_run(cmd, &out) == 0, "%s failed", cmd);
    out[strcspn(out, "\n")] = 0;
    char *dec = NULL;
    snprintf(cmd, sizeof cmd, "%s tokenizer decode -m %s %s", bin, model, out);
    check(test_run(cmd, &dec) == 0 && strcmp(dec, "two red hearts 😍 赤い円\n") == 0,
          "decode of [%s] gave \"%s\"", out, dec ? dec : "");
    printf("  %s -> %s", out, dec ? dec : "\n");
    free(out);
    free(dec);

    printf("a model from spm_train's defaults (unk 0, bos 1, eos 2, no pad)\n");
    char foreign[600];
    snprintf(foreign, sizeof foreign, "%s/foreign", tmp);
    snprintf(cmd, sizeof cmd, SPM_TRAIN " --input=%s --model_prefix=%s --vocab_size=300 --hard_vocab_limit=false "
             "--minloglevel=2 >/dev/null 2>&1", caps, foreign);
    check(test_run(cmd, NULL) == 0, "%s failed", cmd);
    strcat(foreign, ".model");
    tok_t *f = tok_load(foreign, err);
    if (check(f != NULL, "loading %s: %s", foreign, err)) {
        check(tok_pad_id(f) == -1 && tok_unk_id(f) == 0 && tok_bos_id(f) == 1,
              "foreign specials pad %d unk %d bos %d", tok_pad_id(f), tok_unk_id(f), tok_bos_id(f));
        char *a = NULL, *b = library_ids(f, texts);
        snprintf(cmd, sizeof cmd, SPM_ENCODE " --model=%s --output_format=id < %s", foreign, texts);
        test_run(cmd, &a);
        compare("foreign model: spm_encode ids == tok_encode", a, b, n_texts);
        free(a);
        free(b);
        int ids[8];
        check(tok_encode_fixed(f, "a red star", ids, 8, err) == -1 && strstr(err, "<pad>"),
              "fixed encode with a model without <pad>: \"%s\"", err);
        printf("  fixed encode refused: %s\n", err);
        tok_free(f);
    }

    printf("a dalle-c model file on the command line\n");
    char mf[600];
    snprintf(mf, sizeof mf, "%s/model.dallec", tmp);
    wf_writer_t *w = NULL;
    size_t nb;
    const void *bytes = tok_model_bytes(t, &nb);
    int st = wf_writer_open(&w, mf, NULL, 0, err);
    if (st == WF_OK) st = wf_writer_add_blob(w, TOK_BLOB_NAME, bytes, nb, err);
    if (st == WF_OK) st = wf_writer_close(w, err);
    else wf_writer_abort(w);
    if (check(st == WF_OK, "writing %s: %s", mf, err)) {
        char *a = NULL, *b = NULL;
        snprintf(cmd, sizeof cmd, "%s tokenizer encode -m %s --ids --input %s 2>/dev/null", bin, model, texts);
        test_run(cmd, &a);
        snprintf(cmd, sizeof cmd, "%s tokenizer encode -m %s --ids --input %s 2>/dev/null", bin, mf, texts);
        check(test_run(cmd, &b) == 0, "%s failed", cmd);
        compare("model file == .model", a, b ? b : "", n_texts);
        free(a);
        free(b);
    }

    printf("exit codes\n");
    const char *q = ">/dev/null 2>&1";
    expect_exit(2, "%s tokenizer %s", bin, q);
    expect_exit(0, "%s tokenizer --help %s", bin, q);
    expect_exit(0, "%s tokenizer train --help %s", bin, q);
    expect_exit(0, "%s tokenizer encode --help %s", bin, q);
    expect_exit(0, "%s tokenizer decode --help %s", bin, q);
    expect_exit(2, "%s tokenizer frobnicate %s", bin, q);
    expect_exit(2, "%s tokenizer train %s %s", bin, caps, q); /* no -o */
    expect_exit(2, "%s tokenizer train %s -o %s/x.model --vocab x %s", bin, caps, tmp, q);
    expect_exit(1, "%s tokenizer train /nonexistent.txt -o %s/x.model %s", bin, tmp, q);
    expect_exit(1, "%s tokenizer train %s -o /nonexistent/dir/x.model %s", bin, caps, q);
    expect_exit(1, "%s tokenizer encode -m /nonexistent.model hi %s", bin, q);
    expect_exit(2, "%s tokenizer encode -m %s %s", bin, model, q); /* no text */
    expect_exit(1, "%s tokenizer encode -m %s hi %s", bin, caps, q); /* not a model */
    expect_exit(2, "%s tokenizer encode -m %s --bogus hi %s", bin, model, q);
    expect_exit(1, "%s tokenizer encode -m %s --strict-utf8 --input %s %s", bin, model, texts, q);
    expect_exit(0, "%s tokenizer encode -m %s -- -dash %s", bin, model, q);
    expect_exit(1, "%s tokenizer decode -m %s 1 2 999999 %s", bin, model, q);
    expect_exit(2, "%s tokenizer decode -m %s 1 x %s", bin, model, q);
    tok_free(t);
    return test_summary("test_tokenizer_cli");
}
