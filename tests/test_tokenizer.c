/* Tokenizer tests through tokenizer.h: training (deterministic, file == memory), special
 * ids, round trips on ASCII / accented Latin / CJK / emoji, the empty caption, a 10 kB
 * caption (truncated, warned once), invalid UTF-8 (replaced, or refused when strict),
 * fixed-length padding, parallel encoding, bad inputs, and the model-file blob. */
#include "tests/testutil.h"
#include "tokenizer/tokenizer.h"
#include "weights/weights.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_CAPTIONS 3000

static const char *colors[] = {"red", "green", "blue", "yellow", "purple", "orange", "black", "white"};
static const char *shapes[] = {"circle", "square", "triangle", "star", "heart", "hexagon"};
static const char *places[] = {"top left", "top right", "bottom left", "bottom right", "center"};
/* Some captions in other scripts, so the vocabulary has pieces for a few of them. */
static const char *extra[] = {"un café crème à côté d'une pâtisserie", "赤い円と青い四角",
                              "a smiling face 😀 with hearts 😍", "naïve señor über straße",
                              "一只红色的猫在桌子上", "openmoji style 🐱 cat face"};

static char **make_captions(int n)
{
    char **c = malloc((size_t)n * sizeof *c);
    for (int i = 0; i < n; i++) {
        c[i] = malloc(256);
        unsigned h = (unsigned)i * 2654435761u;
        if (i % 10 == 9)
            snprintf(c[i], 256, "%s", extra[(h >> 8) % 6]);
        else
            snprintf(c[i], 256, "a %s %s %s at the %s on a %s background",
                     (h >> 3) & 1 ? "small" : "large", colors[(h >> 5) % 8], shapes[(h >> 9) % 6],
                     places[(h >> 13) % 5], colors[(h >> 17) % 8]);
    }
    return c;
}

static void free_captions(char **c, int n)
{
    for (int i = 0; i < n; i++) free(c[i]);
    free(c);
}

static int round_trip(tok_t *t, const char *text, const char *want)
{
    char err[256];
    int ids[4096];
    long n = tok_encode(t, text, ids, 4096, err);
    if (!check(n >= 0 && n <= 4096, "encode \"%s\": %s", text, n < 0 ? err : "too long")) return 0;
    int unk = 0;
    for (long i = 0; i < n; i++) unk |= ids[i] == tok_unk_id(t);
    check(!unk, "\"%s\" encodes with <unk>", text);
    char out[8192];
    long len = tok_decode(t, ids, n, out, sizeof out, err);
    int ok = check(len >= 0 && strcmp(out, want) == 0, "round trip \"%s\" -> \"%s\" (want \"%s\")",
                   text, len >= 0 ? out : err, want);
    printf("  round trip %-44s %3ld ids %s\n", text, n, ok ? "ok" : "FAIL");
    return ok;
}

static void test_training(char **caps, char **model, size_t *len)
{
    char err[256];
    tok_train_config_t cfg = tok_train_config_default();
    cfg.vocab_size = 1000;
    snprintf(cfg.user_symbols, sizeof cfg.user_symbols, "<sep>");
    check(tok_train_captions((const char *const *)caps, N_CAPTIONS, &cfg, model, len, err) == 0,
          "training: %s", err);
    char *again = NULL;
    size_t again_len = 0;
    check(tok_train_captions((const char *const *)caps, N_CAPTIONS, &cfg, &again, &again_len, err) == 0,
          "training again: %s", err);
    check(again && again_len == *len && memcmp(again, *model, *len) == 0,
          "training twice gives different models (%zu vs %zu bytes)", *len, again_len);
    free(again);

    /* the same captions from a file (CRLF line ends) give the same model */
    char path[512];
    snprintf(path, sizeof path, "%s/captions.txt", test_tmpdir());
    FILE *fp = fopen(path, "wb");
    for (int i = 0; i < N_CAPTIONS; i++) fprintf(fp, "%s\r\n", caps[i]);
    fclose(fp);
    char *from_file = NULL;
    size_t file_len = 0;
    check(tok_train_file(path, &cfg, &from_file, &file_len, err) == 0, "training from file: %s", err);
    check(from_file && file_len == *len && memcmp(from_file, *model, *len) == 0,
          "training from a CRLF file differs from training from memory");
    free(from_file);
    printf("  trained bpe: %zu bytes, deterministic, file == memory\n", *len);

    /* unigram, and a model that keeps case (nmt_nfkc) */
    tok_train_config_t uni = cfg;
    snprintf(uni.model_type, sizeof uni.model_type, "unigram");
    snprintf(uni.normalization, sizeof uni.normalization, "nmt_nfkc");
    char *m = NULL;
    size_t ml = 0;
    check(tok_train_captions((const char *const *)caps, N_CAPTIONS, &uni, &m, &ml, err) == 0,
          "training unigram: %s", err);
    tok_t *t = m ? tok_create(m, ml, err) : NULL;
    if (check(t != NULL, "loading unigram: %s", err)) {
        round_trip(t, "A Small Red Circle, ÉTÉ 😀", "A Small Red Circle, ÉTÉ 😀");
        check(tok_vocab_size(t) <= 1000, "unigram vocab %d > 1000", tok_vocab_size(t));
    }
    tok_free(t);
    free(m);

    /* errors come back as messages, not crashes */
    cfg.vocab_size = 100;
    m = NULL;
    int rc = tok_train_captions((const char *const *)caps, N_CAPTIONS, &cfg, &m, &ml, err);
    check(rc != 0 && m == NULL && strstr(err, "ocabulary"), "vocab 100 should fail, got \"%s\"", err);
    printf("  vocab too small: %s\n", err);
    cfg = tok_train_config_default();
    rc = tok_train_file("/nonexistent/captions.txt", &cfg, &m, &ml, err);
    check(rc != 0 && strstr(err, "/nonexistent/captions.txt"), "missing file: \"%s\"", err);
    snprintf(cfg.model_type, sizeof cfg.model_type, "word");
    rc = tok_train_captions((const char *const *)caps, 10, &cfg, &m, &ml, err);
    check(rc != 0 && strstr(err, "word"), "model type word should be refused: \"%s\"", err);
    cfg = tok_train_config_default();
    snprintf(cfg.normalization, sizeof cfg.normalization, "no_such_rule");
    rc = tok_train_captions((const char *const *)caps, N_CAPTIONS, &cfg, &m, &ml, err);
    check(rc != 0, "unknown normalization rule should fail");
    printf("  unknown normalization: %s\n", err);

    /* libsentencepiece's unigram trainer ends the process on captions with nothing to
     * learn (a failed CHECK, then exit): it runs in a child, so this is an error here */
    const char *blank[] = {"   ", " ", "\t  "};
    cfg = tok_train_config_default();
    snprintf(cfg.model_type, sizeof cfg.model_type, "unigram");
    m = NULL;
    rc = tok_train_captions(blank, 3, &cfg, &m, &ml, err);
    check(rc != 0 && m == NULL && strstr(err, "trainer stopped"),
          "whitespace-only captions (unigram) should fail with a message, got %d \"%s\"", rc, err);
    printf("  whitespace only: %s\n", err);
    /* and the process goes on training */
    cfg = tok_train_config_default();
    rc = tok_train_captions((const char *const *)caps, N_CAPTIONS, &cfg, &m, &ml, err);
    check(rc == 0 && m != NULL, "training after the trainer stopped in a child: %s", err);
    free(m);
}

static void test_specials(tok_t *t)
{
    check(tok_pad_id(t) == 0 && tok_unk_id(t) == 1 && tok_bos_id(t) == 2 && tok_eos_id(t) == 3,
          "special ids pad %d unk %d bos %d eos %d, want 0 1 2 3", tok_pad_id(t), tok_unk_id(t),
          tok_bos_id(t), tok_eos_id(t));
    check(strcmp(tok_piece(t, 0), "<pad>") == 0 && strcmp(tok_piece(t, 2), "<s>") == 0,
          "pieces 0 and 2 are %s %s", tok_piece(t, 0), tok_piece(t, 2));
    check(tok_piece(t, -1) == NULL && tok_piece(t, tok_vocab_size(t)) == NULL,
          "tok_piece out of range is not NULL");
    char err[256];
    int ids[8];
    long n = tok_encode(t, "<sep>", ids, 8, err);
    /* "▁" (the dummy prefix) then the symbol, whole */
    check(n == 2 && ids[1] == 4 && strcmp(tok_piece(t, 4), "<sep>") == 0,
          "user symbol <sep> is %ld ids (last %d), want \"▁\" and id 4", n, n > 0 ? ids[n - 1] : -1);
    printf("  vocab %d, pad 0 unk 1 bos 2 eos 3, <sep> 4\n", tok_vocab_size(t));
}

static void test_round_trips(tok_t *t)
{
    /* exact for text the normaliser leaves alone (NFKC, lowercase, single spaces) */
    round_trip(t, "a small red circle at the top left on a blue background",
               "a small red circle at the top left on a blue background");
    round_trip(t, "a quick brown fox, 42 times! (really?) #1 @home", "a quick brown fox, 42 times! (really?) #1 @home");
    round_trip(t, "un café crème à côté", "un café crème à côté");
    round_trip(t, "ærøskøbing, łódź, ελλάδα, straße", "ærøskøbing, łódź, ελλάδα, straße");
    round_trip(t, "赤い円と青い四角", "赤い円と青い四角");
    round_trip(t, "一只红色的猫 and 한국어 텍스트", "一只红色的猫 and 한국어 텍스트");
    round_trip(t, "a smiling face 😀 with hearts 😍", "a smiling face 😀 with hearts 😍");
    round_trip(t, "flags 🇫🇷🇯🇵, family 👨‍👩‍👧, skin 👍🏽, rare 🦩🪐",
               "flags 🇫🇷🇯🇵, family 👨‍👩‍👧, skin 👍🏽, rare 🦩🪐");
    /* the normaliser (nmt_nfkc_cf): case folds, whitespace runs collapse, decomposed
     * accents compose, full-width forms fold */
    round_trip(t, "A Small RED Circle, CAFÉ", "a small red circle, café");
    round_trip(t, "  two   spaces  ", "two spaces");
    round_trip(t, "cafe\xCC\x81", "café");
    round_trip(t, "ＡＢＣ１２３", "abc123");
}

static void test_empty(tok_t *t)
{
    char err[256];
    int ids[16];
    check(tok_encode(t, "", ids, 16, err) == 0, "empty caption gives ids");
    check(tok_encode(t, NULL, ids, 16, err) == 0, "NULL caption gives ids");
    for (int i = 0; i < 16; i++) ids[i] = -7;
    int k = tok_encode_fixed(t, "", ids, 16, err);
    int all_pad = 1;
    for (int i = 0; i < 16; i++) all_pad &= ids[i] == tok_pad_id(t);
    check(k == 0 && all_pad, "empty caption: fixed encode returned %d, all PAD %d", k, all_pad);
    char out[8] = "x";
    check(tok_decode(t, ids, 0, out, sizeof out, err) == 0 && out[0] == 0, "decode of no ids");
    check(tok_decode(t, ids, 16, out, sizeof out, err) == 0 && out[0] == 0,
          "PAD decodes to text \"%s\"", out);
    printf("  empty caption: 0 ids, 16 x PAD, decodes to \"\"\n");
}

static void test_fixed(tok_t *t)
{
    char err[256];
    const char *text = "a large blue star at the center on a white background";
    int plain[64], fixed[64];
    long n = tok_encode(t, text, plain, 64, err);
    int k = tok_encode_fixed(t, text, fixed, 40, err);
    int same = k == n;
    for (long i = 0; same && i < n; i++) same = fixed[i] == plain[i];
    for (int i = (int)n; same && i < 40; i++) same = fixed[i] == tok_pad_id(t);
    check(n > 0 && n < 40 && same, "fixed encode is not ids + PAD (n %ld, k %d)", n, k);
    check(tok_encode_fixed(t, text, fixed, 0, err) == -1, "T = 0 accepted");
    /* exactly T ids is not a truncation */
    tok_stats_t st;
    tok_stats(t, &st);
    long before = st.truncated;
    check(tok_encode_fixed(t, text, fixed, (int)n, err) == (int)n, "T == length");
    tok_stats(t, &st);
    check(st.truncated == before, "a caption of exactly T ids counted as truncated");
    printf("  fixed length: %ld ids + %ld PAD\n", n, 40 - n);
}

static void test_long(tok_t *t)
{
    char err[256], msg[256];
    size_t n = 10 * 1024;
    char *big = malloc(n + 1);
    const char *words = "a very long caption about a small red circle and 赤い円 😀 ";
    size_t wl = strlen(words), i = 0;
    while (i + wl <= n) {
        memcpy(big + i, words, wl);
        i += wl;
    }
    big[i] = 0;
    check(tok_warning(t, msg) == 0, "a warning before any truncation: %s", msg);
    int ids[32];
    for (int rep = 0; rep < 3; rep++) {
        int k = tok_encode_fixed(t, big, ids, 32, err);
        check(k == 32, "10 kB caption kept %d of T = 32 ids (%s)", k, k < 0 ? err : "");
    }
    int full[32];
    long total = tok_encode(t, big, full, 32, err);
    check(total > 32 && memcmp(full, ids, sizeof ids) == 0, "truncation is not a prefix");
    int warnings = 0;
    while (tok_warning(t, msg)) {
        warnings++;
        printf("  warning: %s\n", msg);
        check(strstr(msg, "T = 32") && strstr(msg, "3 captions"), "warning text: %s", msg);
    }
    check(warnings == 1, "%d warnings for 3 truncations, want 1", warnings);
    tok_encode_fixed(t, big, ids, 32, err);
    check(tok_warning(t, msg) == 0, "warned again after a 4th truncation");
    tok_stats_t st;
    tok_stats(t, &st);
    check(st.truncated == 4, "truncated count %ld, want 4", st.truncated);
    printf("  10 kB caption: %zu bytes, %ld ids, cut to 32; 4 cuts, 1 warning\n", i, total);
    free(big);
}

static void test_invalid_utf8(tok_t *t)
{
    char err[256], msg[256], out[256];
    int ids[64];
    const char *bad[] = {"bad \xFF byte", "overlong \xC0\xAF slash", "surrogate \xED\xA0\x80 x",
                         "cut \xE6\x97", "\x80 lone continuation"};
    const char *want[] = {"bad \xEF\xBF\xBD byte", "overlong \xEF\xBF\xBD\xEF\xBF\xBD slash",
                          NULL, "cut \xEF\xBF\xBD\xEF\xBF\xBD",
                          "\xEF\xBF\xBD lone continuation"};
    tok_stats_t st0, st1;
    tok_stats(t, &st0);
    for (int i = 0; i < 5; i++) {
        long n = tok_encode(t, bad[i], ids, 64, err);
        if (!check(n >= 0, "replace mode refused \"%s\": %s", bad[i], err)) continue;
        tok_decode(t, ids, n, out, sizeof out, err);
        check(strstr(out, "\xEF\xBF\xBD") != NULL, "no U+FFFD in \"%s\"", out);
        if (want[i])
            check(strcmp(out, want[i]) == 0, "invalid UTF-8 decodes to \"%s\", want \"%s\"", out,
                  want[i]);
    }
    tok_stats(t, &st1);
    check(st1.invalid_utf8 - st0.invalid_utf8 == 5, "invalid count %ld, want 5",
          st1.invalid_utf8 - st0.invalid_utf8);
    int warnings = 0;
    while (tok_warning(t, msg)) {
        warnings++;
        printf("  warning: %s\n", msg);
    }
    check(warnings == 1, "%d invalid-UTF-8 warnings, want 1", warnings);

    tok_set_strict_utf8(t, 1);
    long n = tok_encode(t, bad[0], ids, 64, err);
    check(n == -1 && strstr(err, "0xFF") && strstr(err, "offset 4"), "strict: %ld \"%s\"", n, err);
    printf("  strict: %s\n", err);
    check(tok_encode_fixed(t, bad[3], ids, 8, err) == -1, "strict fixed encode accepted bad UTF-8");
    check(tok_encode(t, "valid ✓ 😀", ids, 64, err) > 0, "strict refused valid UTF-8: %s", err);
    tok_set_strict_utf8(t, 0);
}

static void test_parallel(tok_t *t, char **caps)
{
    enum { T = 24 };
    char err[256];
    int *serial = malloc(sizeof(int) * N_CAPTIONS * T), *par = malloc(sizeof(int) * N_CAPTIONS * T);
    for (int i = 0; i < N_CAPTIONS; i++) tok_encode_fixed(t, caps[i], serial + i * T, T, err);
    int failures = 0;
    for (int rep = 0; rep < 3; rep++) {
#pragma omp parallel for num_threads(2) schedule(dynamic, 16) reduction(+ : failures)
        for (int i = 0; i < N_CAPTIONS; i++) {
            char e[256];
            if (tok_encode_fixed(t, caps[i], par + i * T, T, e) < 0) failures++;
        }
        failures += memcmp(serial, par, sizeof(int) * N_CAPTIONS * T) != 0;
    }
    check(failures == 0, "parallel encoding differs from serial (%d)", failures);
    printf("  %d captions x 3 on 2 threads == serial\n", N_CAPTIONS);
    free(serial);
    free(par);
}

static void test_bad_inputs(tok_t *t)
{
    char err[256];
    tok_t *x = tok_create("not a model at all", 18, err);
    check(x == NULL, "garbage loaded as a model");
    printf("  garbage: %s\n", err);
    check(tok_create(NULL, 0, err) == NULL, "empty model loaded");
    x = tok_load("/nonexistent/tok.model", err);
    check(x == NULL && strstr(err, "/nonexistent/tok.model"), "missing file: %s", err);

    size_t n;
    const char *bytes = tok_model_bytes(t, &n);
    for (size_t cut = 1; cut < n; cut += n / 7) { /* truncated models: refused, no crash */
        tok_t *y = tok_create(bytes, cut, err);
        check(y == NULL, "a model cut to %zu of %zu bytes loaded", cut, n);
        tok_free(y);
    }
    int ids[2] = {5, tok_vocab_size(t)};
    char out[64];
    check(tok_decode(t, ids, 2, out, sizeof out, err) == -1 && strstr(err, "outside"),
          "decoding an id out of range: %s", err);
    ids[1] = -1;
    check(tok_decode(t, ids, 2, out, sizeof out, err) == -1, "decoding id -1");
}

static void test_save_and_model_file(tok_t *t)
{
    char err[256], path[512];
    snprintf(path, sizeof path, "%s/t.model", test_tmpdir());
    check(tok_save(t, path, err) == 0, "save: %s", err);
    tok_t *u = tok_load(path, err);
    int a[64], b[64];
    const char *text = "a purple heart 💜 at the bottom right";
    if (check(u != NULL, "reload: %s", err)) {
        long na = tok_encode(t, text, a, 64, err), nb = tok_encode(u, text, b, 64, err);
        check(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0, "reloaded model encodes differently");
    }
    tok_free(u);

    /* A dalle-c model file carrying the tokenizer as a blob loads the same way. */
    snprintf(path, sizeof path, "%s/m.dallec", test_tmpdir());
    wf_writer_t *w = NULL;
    size_t n;
    const void *bytes = tok_model_bytes(t, &n);
    int st = wf_writer_open(&w, path, NULL, 0, err);
    if (st == WF_OK) st = wf_writer_add_blob(w, TOK_BLOB_NAME, bytes, n, err);
    if (st == WF_OK) st = wf_writer_close(w, err);
    else wf_writer_abort(w);
    if (!check(st == WF_OK, "writing a model file: %s", err)) return;
    u = tok_load(path, err);
    if (check(u != NULL, "loading the tokenizer from a model file: %s", err)) {
        long nb = tok_encode(u, text, b, 64, err), na = tok_encode(t, text, a, 64, err);
        check(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0,
              "model-file tokenizer encodes differently");
        printf("  model file with blob \"%s\" (%zu bytes): loads, same ids\n", TOK_BLOB_NAME, n);
    }
    tok_free(u);

    /* a model file without the blob, and a damaged one */
    snprintf(path, sizeof path, "%s/empty.dallec", test_tmpdir());
    if (wf_writer_open(&w, path, NULL, 0, err) == WF_OK && wf_writer_close(w, err) == WF_OK) {
        u = tok_load(path, err);
        check(u == NULL && strstr(err, TOK_BLOB_NAME), "model file without tokenizer: %s", err);
        printf("  no blob: %s\n", err);
        tok_free(u);
    }
    snprintf(path, sizeof path, "%s/m.dallec", test_tmpdir());
    FILE *fp = fopen(path, "r+b");
    if (fp) {
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        fclose(fp);
        if (truncate(path, size / 2) == 0) {
            u = tok_load(path, err);
            check(u == NULL, "a truncated model file loaded");
            printf("  truncated model file: %s\n", err);
            tok_free(u);
        }
    }
}

int main(void)
{
    char **caps = make_captions(N_CAPTIONS);
    char *model = NULL, err[256];
    size_t len = 0;
    printf("training\n");
    test_training(caps, &model, &len);
    tok_t *t = model ? tok_create(model, len, err) : NULL;
    if (!check(t != NULL, "loading the trained model: %s", model ? err : "no model")) {
        free_captions(caps, N_CAPTIONS);
        return test_summary("test_tokenizer");
    }
    printf("special ids\n");
    test_specials(t);
    printf("round trips\n");
    test_round_trips(t);
    printf("empty, fixed length, long, invalid UTF-8\n");
    test_empty(t);
    test_fixed(t);
    test_long(t);
    test_invalid_utf8(t);
    printf("threads\n");
    test_parallel(t, caps);
    printf("bad inputs\n");
    test_bad_inputs(t);
    printf("files\n");
    test_save_and_model_file(t);
    tok_free(t);
    free(model);
    free_captions(caps, N_CAPTIONS);
    return test_summary("test_tokenizer");
}
