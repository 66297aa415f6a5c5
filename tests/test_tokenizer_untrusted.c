/* Tokenizer models from the outside (tokenizer/spm_check.h): SentencePiece .model bytes
 * that crash libsentencepiece 0.1.97 are refused with a message, and everything its
 * trainer writes still loads.
 *
 * The crafted files are tests/fuzz/corpus/tokenizer/crash-*.model (each made the
 * library, through spm_encode, die with SIGSEGV before the check) and oob-*.model (read
 * past the end of the rules: spm_encode printed heap bytes as byte pieces); the limits are
 * tested at their edges by appending protobuf fields to a small model (a repeated field
 * appended adds an element, a message field appended is merged into the earlier one and
 * its last precompiled_charsmap wins), and at the edge the library must run under
 * ASan without a report. */
#include "tests/testutil.h"
#include "tokenizer/spm_check.h"
#include "tokenizer/tokenizer.h"
#include "weights/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORPUS "tests/fuzz/corpus/tokenizer/"

typedef struct {
    unsigned char *b;
    size_t n, cap;
} buf_t;

static void put(buf_t *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = 2 * (o->n + n);
        o->b = realloc(o->b, o->cap);
        if (!o->b) exit(1);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_varint(buf_t *o, uint64_t v)
{
    unsigned char c[10];
    int k = 0;
    while (v > 0x7F) c[k++] = (unsigned char)(v | 0x80), v >>= 7;
    c[k++] = (unsigned char)v;
    put(o, c, (size_t)k);
}

/* A length-delimited field. */
static void put_bytes(buf_t *o, int field, const void *p, size_t n)
{
    put_varint(o, (uint64_t)field << 3 | 2);
    put_varint(o, n);
    put(o, p, n);
}

static buf_t read_file(const char *path)
{
    buf_t o = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s (run from the source folder)\n", path);
        exit(1);
    }
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) put(&o, chunk, k);
    fclose(f);
    return o;
}

/* base + one more piece (ModelProto.pieces = 1: piece = 1, score = 2, type = 3). */
static buf_t with_piece(const buf_t *base, const char *piece, size_t len, int type)
{
    buf_t p = {0}, o = {0};
    put_bytes(&p, 1, piece, len);
    put(&p, "\x15\x00\x00\x80\xbf", 5); /* score -1.0f */
    put_varint(&p, 3 << 3);
    put_varint(&p, (uint64_t)type);
    put(&o, base->b, base->n);
    put_bytes(&o, 1, p.b, p.n);
    free(p.b);
    return o;
}

/* base + a normalizer_spec (field 3) whose precompiled_charsmap is a chain of `rules`
 * rules "a", "aa", ... each replaced by "z", laid out as darts-clone does: unused units
 * have the top bit set (never a label). */
static buf_t with_rule_chain(const buf_t *base, int rules)
{
    enum { N = 512 };
    uint32_t u[N];
    for (int i = 0; i < N; i++) u[i] = 1u << 31;
    u[0] = 256u << 10; /* the root's children sit at 256 ^ byte */
    for (int k = 0; k < rules; k++) {
        uint32_t p = 256 + 2 * (uint32_t)k, q = p ^ 'a', child = 256 + 2 * (uint32_t)(k + 1);
        u[q] = 'a' | 1u << 8 | (q ^ child) << 10; /* label 'a', has a leaf */
        u[child] = 1u << 31 | 0;                    /* the leaf: replacement at offset 0 */
    }
    buf_t cm = {0}, spec = {0}, o = {0};
    uint32_t trie_bytes = sizeof u;
    unsigned char le[4];
    for (int i = 0; i < 4; i++) le[i] = (unsigned char)(trie_bytes >> (8 * i));
    put(&cm, le, 4);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 4; j++) le[j] = (unsigned char)(u[i] >> (8 * j));
        put(&cm, le, 4);
    }
    put(&cm, "z", 2); /* "z" and its NUL */
    put_bytes(&spec, 2, cm.b, cm.n);
    put(&o, base->b, base->n);
    put_bytes(&o, 3, spec.b, spec.n);
    free(cm.b), free(spec.b);
    return o;
}

/* Loads bytes; when it loads, encodes text. Returns 1 when it loaded. */
static int loads(const buf_t *m, const char *text, char *err)
{
    tok_t *t = tok_create(m->b, m->n, err);
    if (!t) return 0;
    int ids[512];
    char e[256];
    long n = tok_encode(t, text, ids, 512, e);
    check(n > 0, "a model at the limit encodes \"%.20s...\" (%ld ids: %s)", text, n, n < 0 ? e : "");
    tok_free(t);
    return 1;
}

static void test_crash_files(void)
{
    static const char *const files[] = {
        "crash-charsmap-root.model", "crash-charsmap-value.model",
        "crash-charsmap-40-rules.model", "crash-user-symbols-70-nested.model",
        "oob-charsmap-trie-length.model", /* no crash: heap bytes come out as ids */
    };
    char path[512], err[256], werr[WF_ERR_SIZE];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, CORPUS "%s", files[i]);
        buf_t m = read_file(path);
        err[0] = 0;
        tok_t *t = tok_create(m.b, m.n, err);
        check(!t && strncmp(err, "SentencePiece model refused: ", 29) == 0 && !strchr(err, '\n'),
              "%s refused: %s", files[i], err);
        tok_free(t);
        t = tok_load(path, err);
        check(!t && strncmp(err, path, strlen(path)) == 0, "tok_load refuses it: %s", err);
        tok_free(t);
        /* the same bytes as the tokenizer of a model file */
        snprintf(path, sizeof path, "%s/crash.dalle", test_tmpdir());
        wf_writer_t *w;
        int ok = wf_writer_open(&w, path, NULL, 0, werr) == WF_OK &&
                 wf_writer_add_blob(w, TOK_BLOB_NAME, m.b, m.n, werr) == WF_OK &&
                 wf_writer_close(w, werr) == WF_OK;
        check(ok, "model file with it written: %s", werr);
        t = tok_load(path, err);
        check(!t && strstr(err, "SentencePiece model refused"), "inside a model file: %s", err);
        tok_free(t);
        free(m.b);
    }
}

static void test_limits(void)
{
    char err[256] = "";
    buf_t base = read_file(CORPUS "unigram-user-symbols.model");
    /* pieces: a long one recursed the unigram trie build off the stack (~200 KB) */
    char *long_piece = malloc(256 << 10);
    memset(long_piece, 'q', 256 << 10);
    buf_t m = with_piece(&base, long_piece, 256 << 10, 1);
    check(!loads(&m, "", err) && strstr(err, "is 262144 bytes long (at most 2048)"),
          "a 256 KiB piece is refused: %s", err);
    free(m.b);
    char *text = malloc(SPM_MAX_PIECE_BYTES + 1);
    memcpy(text, long_piece, SPM_MAX_PIECE_BYTES);
    text[SPM_MAX_PIECE_BYTES] = 0;
    m = with_piece(&base, long_piece, SPM_MAX_PIECE_BYTES, 1);
    check(loads(&m, text, err), "a %d-byte piece loads: %s", SPM_MAX_PIECE_BYTES, err);
    free(m.b);
    free(text);
    m = with_piece(&base, long_piece, SPM_MAX_PIECE_BYTES + 1, 1);
    check(!loads(&m, "", err), "a %d-byte piece is refused: %s", SPM_MAX_PIECE_BYTES + 1, err);
    free(m.b);
    free(long_piece);

    /* user-defined symbols k, kk, kkk...: PrefixMatcher keeps 64 matches */
    char k[80];
    memset(k, 'k', sizeof k);
    for (int count = SPM_MAX_NESTED_SYMBOLS; count <= SPM_MAX_NESTED_SYMBOLS + 1; count++) {
        buf_t cur = {0};
        put(&cur, base.b, base.n);
        for (int i = 1; i <= count; i++) {
            buf_t next = with_piece(&cur, k, (size_t)i, 4 /* USER_DEFINED */);
            free(cur.b);
            cur = next;
        }
        k[79] = 0;
        int ok = loads(&cur, k, err);
        check(ok == (count <= SPM_MAX_NESTED_SYMBOLS), "%d nested user symbols %s: %s", count,
              ok ? "load" : "are refused", err);
        free(cur.b);
    }

    /* normaliser rules sharing a prefix: normalizer.cc keeps 32 matches on its stack */
    char a[64];
    memset(a, 'a', sizeof a - 1);
    a[63] = 0;
    for (int rules = SPM_MAX_CHARSMAP_MATCHES; rules <= SPM_MAX_CHARSMAP_MATCHES + 1; rules++) {
        m = with_rule_chain(&base, rules);
        int ok = loads(&m, a, err);
        check(ok == (rules <= SPM_MAX_CHARSMAP_MATCHES), "%d rules on one prefix %s: %s", rules,
              ok ? "load" : "are refused", err);
        free(m.b);
    }
    free(base.b);
}

/* Every kind of model the trainer writes passes the check (the built-in normalisers'
 * tries are DAGs with shared suffixes: the check must take them). */
static void test_trained_models_pass(void)
{
    static const char *const captions[] = {
        "a small red circle at the top left", "A LARGE BLUE SQUARE", "\xef\xbd\x86\xef\xbd\x95ll \xef\xac\x81 \xe2\x91\xa0",
        "caf\xc3\xa9 na\xc3\xafve \xf0\x9f\xa5\x91",
    };
    static const char *const rules[] = {"nmt_nfkc_cf", "nmt_nfkc", "nfkc", "nfkc_cf", "identity"};
    static const char *const types[] = {"bpe", "unigram"};
    for (int r = 0; r < 5; r++)
        for (int ty = 0; ty < 2; ty++) {
            tok_train_config_t c = tok_train_config_default();
            c.vocab_size = 320;
            snprintf(c.normalization, sizeof c.normalization, "%s", rules[r]);
            snprintf(c.model_type, sizeof c.model_type, "%s", types[ty]);
            snprintf(c.user_symbols, sizeof c.user_symbols, "<sep>,<s2>");
            char *bytes = NULL, err[256] = "";
            size_t n = 0;
            if (!check(tok_train_captions(captions, 4, &c, &bytes, &n, err) == 0, "train %s %s: %s",
                       types[ty], rules[r], err))
                continue;
            check(spm_check_model(bytes, n, err) == 0, "%s model with %s rules passes: %s",
                  types[ty], rules[r], err);
            free(bytes);
        }
    /* spm_train with custom rules (--normalization_rule_tsv) and its defaults */
    buf_t m = read_file(CORPUS "bpe-custom-rules.model");
    char err[256] = "";
    check(loads(&m, "\xef\xbc\xa1" "B \xef\xac\x81", err), "spm_train's custom-rules model loads: %s", err);
    free(m.b);
}

/* libsentencepiece's messages quote pieces ("X is already defined."): one line still */
static void test_one_line_messages(void)
{
    buf_t base = read_file(CORPUS "bpe-identity.model");
    buf_t once = with_piece(&base, "z\nz", 3, 1), twice = with_piece(&once, "z\nz", 3, 1);
    char err[256] = "";
    tok_t *t = tok_create(twice.b, twice.n, err);
    check(!t && strstr(err, "already defined") && !strchr(err, '\n'),
          "a duplicate piece holding a newline is refused in one line: %s", err);
    tok_free(t);
    free(base.b), free(once.b), free(twice.b);
}

int main(void)
{
    test_crash_files();
    test_one_line_messages();
    test_limits();
    test_trained_models_pass();
    return test_summary("test_tokenizer_untrusted");
}
