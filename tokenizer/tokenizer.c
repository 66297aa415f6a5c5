/* tokenizer: see tokenizer.h. The SentencePiece work is in spm_c.cc; this file adds the
 * dalle-c conventions (special ids, fixed length T, UTF-8 policy, once-per-run warnings,
 * model files). */
#include "tokenizer/tokenizer.h"
#include "tokenizer/spm_c.h"
#include "tokenizer/spm_check.h"
#include "weights/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* SentencePiece's own default; the trainer skips longer lines. */
#define TOK_MAX_SENTENCE_BYTES 4192
#define TOK_EXAMPLE_BYTES 60

struct tok {
    spmc_t *sp;
    void *bytes; /* the .model bytes, for embedding and saving */
    size_t n_bytes;
    spmc_special_t special;
    int strict_utf8;

    atomic_long n_encoded, n_truncated, n_invalid;
    atomic_int warned_truncated, warned_invalid;
    /* The first truncated caption: claimed by one thread (0 -> 1), written, published
     * (-> 2); readers look only at state 2. */
    atomic_int first_state;
    char first_text[TOK_EXAMPLE_BYTES + 4];
    long first_count;
    int first_T;
    int first_cut; /* first_text is a prefix */
};

static void set_err(char *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, 256, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- training */

tok_train_config_t tok_train_config_default(void)
{
    tok_train_config_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "bpe");
    c.vocab_size = 2048;
    c.character_coverage = 0.9995;
    snprintf(c.normalization, sizeof c.normalization, "nmt_nfkc_cf");
    c.remove_extra_whitespaces = 1;
    c.add_dummy_prefix = 1;
    c.byte_fallback = 1;
    c.split_digits = 1;
    c.user_symbols[0] = 0;
    c.hard_vocab_limit = 0;
    c.threads = 2;
    c.max_sentences = 2000000;
    c.seed = 1;
    return c;
}

static spmc_train_opts_t to_spmc(const tok_train_config_t *c)
{
    spmc_train_opts_t o;
    memset(&o, 0, sizeof o);
    o.model_type = c->model_type;
    o.vocab_size = c->vocab_size;
    o.character_coverage = c->character_coverage;
    o.normalization = c->normalization;
    o.add_dummy_prefix = c->add_dummy_prefix;
    o.remove_extra_whitespaces = c->remove_extra_whitespaces;
    o.byte_fallback = c->byte_fallback;
    o.split_digits = c->split_digits;
    o.user_symbols = c->user_symbols;
    o.hard_vocab_limit = c->hard_vocab_limit;
    o.num_threads = c->threads;
    o.max_sentences = c->max_sentences;
    o.max_sentence_length = TOK_MAX_SENTENCE_BYTES;
    o.seed = c->seed;
    o.pad_id = 0;
    o.unk_id = 1;
    o.bos_id = 2;
    o.eos_id = 3;
    return o;
}

/* The config strings must be terminated: they are fixed arrays a caller may fill. */
static int check_config(const tok_train_config_t *c, char *err)
{
    if (!memchr(c->model_type, 0, sizeof c->model_type) ||
        !memchr(c->normalization, 0, sizeof c->normalization) ||
        !memchr(c->user_symbols, 0, sizeof c->user_symbols)) {
        set_err(err, "tokenizer config: a string field is not NUL-terminated");
        return -1;
    }
    return 0;
}

int tok_train_file(const char *path, const tok_train_config_t *cfg, char **model,
                   size_t *model_len, char err[256])
{
    if (check_config(cfg, err) != 0) return -1;
    spmc_train_opts_t o = to_spmc(cfg);
    return spmc_train_file(path, &o, model, model_len, err);
}

int tok_train_captions(const char *const *captions, size_t n, const tok_train_config_t *cfg,
                       char **model, size_t *model_len, char err[256])
{
    if (check_config(cfg, err) != 0) return -1;
    spmc_train_opts_t o = to_spmc(cfg);
    return spmc_train_lines(captions, n, &o, model, model_len, err);
}

/* ---------------------------------------------------------------- loading */

tok_t *tok_create(const void *bytes, size_t n, char err[256])
{
    tok_t *t = calloc(1, sizeof *t);
    if (!t) {
        set_err(err, "tokenizer: out of memory");
        return NULL;
    }
    /* libsentencepiece trusts parts of what it loads: refuse what it cannot take */
    t->sp = spm_check_model(bytes, n, err) == 0 ? spmc_load(bytes, n, err) : NULL;
    if (!t->sp) {
        free(t);
        return NULL;
    }
    t->bytes = malloc(n);
    if (!t->bytes) {
        spmc_free(t->sp);
        free(t);
        set_err(err, "tokenizer: out of memory");
        return NULL;
    }
    memcpy(t->bytes, bytes, n);
    t->n_bytes = n;
    spmc_special_ids(t->sp, &t->special);
    atomic_init(&t->n_encoded, 0);
    atomic_init(&t->n_truncated, 0);
    atomic_init(&t->n_invalid, 0);
    atomic_init(&t->warned_truncated, 0);
    atomic_init(&t->warned_invalid, 0);
    atomic_init(&t->first_state, 0);
    return t;
}

static int read_file(const char *path, char **data, size_t *size, char *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        set_err(err, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap) break;
        if (cap >= ((size_t)1 << 31)) {
            free(buf);
            fclose(fp);
            set_err(err, "%s: too large for a tokenizer model", path);
            return -1;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (!buf) {
        fclose(fp);
        set_err(err, "%s: out of memory", path);
        return -1;
    }
    if (ferror(fp)) {
        free(buf);
        fclose(fp);
        set_err(err, "%s: read error", path);
        return -1;
    }
    fclose(fp);
    *data = buf;
    *size = n;
    return 0;
}

/* A model file (weights.h) carries the tokenizer as a blob; wf_reader_open tells it
 * apart by its magic (WF_EFOREIGN otherwise), and anything foreign is tried as a raw
 * SentencePiece .model. */
tok_t *tok_load(const char *path, char err[256])
{
    char wf_err[WF_ERR_SIZE] = "";
    wf_reader_t *r = NULL;
    int st = wf_reader_open(&r, path, wf_err);
    if (st == WF_OK) {
        void *blob = NULL;
        size_t size = 0;
        st = wf_reader_blob(r, TOK_BLOB_NAME, &blob, &size, wf_err);
        wf_reader_close(r);
        if (st == WF_ENOTFOUND) {
            set_err(err, "%s: model file has no tokenizer (blob \"%s\")", path, TOK_BLOB_NAME);
            return NULL;
        }
        if (st != WF_OK) {
            set_err(err, "%s", wf_err);
            return NULL;
        }
        char sp_err[256];
        tok_t *t = tok_create(blob, size, sp_err);
        free(blob);
        if (!t) set_err(err, "%s: blob \"%s\": %s", path, TOK_BLOB_NAME, sp_err);
        return t;
    }
    if (st != WF_EFOREIGN) { /* a damaged model file: its own message says what is wrong */
        set_err(err, "%s", wf_err);
        return NULL;
    }
    char *data = NULL;
    size_t size = 0;
    if (read_file(path, &data, &size, err) != 0) return NULL;
    char sp_err[256];
    tok_t *t = tok_create(data, size, sp_err);
    free(data);
    if (!t && strncmp(sp_err, "not a SentencePiece model", 25) == 0)
        set_err(err, "%s: neither a dalle-c model file nor a SentencePiece .model%s", path,
                sp_err + 25);
    else if (!t)
        set_err(err, "%s: %s", path, sp_err);
    return t;
}

void tok_free(tok_t *t)
{
    if (!t) return;
    spmc_free(t->sp);
    free(t->bytes);
    free(t);
}

const void *tok_model_bytes(const tok_t *t, size_t *n)
{
    *n = t->n_bytes;
    return t->bytes;
}

int tok_save(const tok_t *t, const char *path, char err[256])
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        set_err(err, "%s: path too long", path);
        return -1;
    }
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        set_err(err, "%s: cannot create (%s)", tmp, strerror(errno));
        return -1;
    }
    int ok = fwrite(t->bytes, 1, t->n_bytes, fp) == t->n_bytes;
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int saved = errno;
    if (fclose(fp) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok) saved = errno;
        remove(tmp);
        set_err(err, "%s: cannot write (%s)", path, strerror(saved));
        return -1;
    }
    /* Make the rename itself durable. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

int tok_vocab_size(const tok_t *t) { return spmc_vocab_size(t->sp); }
int tok_pad_id(const tok_t *t) { return t->special.pad; }
int tok_bos_id(const tok_t *t) { return t->special.bos; }
int tok_eos_id(const tok_t *t) { return t->special.eos; }
int tok_unk_id(const tok_t *t) { return t->special.unk; }
const char *tok_piece(const tok_t *t, int id) { return spmc_id_to_piece(t->sp, id); }
void tok_set_strict_utf8(tok_t *t, int strict) { t->strict_utf8 = strict != 0; }

/* ---------------------------------------------------------------- encoding */

/* Offset of the first byte that does not belong to a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or -1. */
static long utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return (long)i;
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) return (long)i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return (long)i;
        i += len;
    }
    return -1;
}

/* Counts the text and applies the UTF-8 policy: 0 to go on, -1 when refused. */
static int admit(tok_t *t, const char *text, size_t n, char *err)
{
    atomic_fetch_add_explicit(&t->n_encoded, 1, memory_order_relaxed);
    long bad = utf8_invalid_at((const unsigned char *)text, n);
    if (bad < 0) return 0;
    atomic_fetch_add_explicit(&t->n_invalid, 1, memory_order_relaxed);
    if (!t->strict_utf8) return 0;
    set_err(err, "text is not valid UTF-8 (byte 0x%02X at offset %ld)",
            (unsigned)(unsigned char)text[bad], bad);
    return -1;
}

long tok_encode(tok_t *t, const char *text, int *ids, long cap, char err[256])
{
    if (!text) text = "";
    size_t n = strlen(text);
    if (admit(t, text, n, err) != 0) return -1;
    return spmc_encode_ids(t->sp, text, n, ids, cap > 0 ? (size_t)cap : 0, err);
}

long tok_encode_pieces(tok_t *t, const char *text, char *buf, size_t cap, size_t *need,
                       char err[256])
{
    if (!text) text = "";
    size_t n = strlen(text);
    if (admit(t, text, n, err) != 0) return -1;
    return spmc_encode_pieces(t->sp, text, n, buf, cap, need, err);
}

/* Keeps the first n bytes of s, cut back to a UTF-8 character boundary; 1 if cut. */
static int copy_prefix(char *dst, const char *s, size_t n)
{
    size_t len = strlen(s);
    int cut = len > n;
    if (cut) {
        len = n;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) len--;
    }
    memcpy(dst, s, len);
    dst[len] = 0;
    return cut;
}

static void note_truncation(tok_t *t, const char *text, long count, int T)
{
    int expect = 0;
    if (atomic_compare_exchange_strong(&t->first_state, &expect, 1)) {
        t->first_cut = copy_prefix(t->first_text, text, TOK_EXAMPLE_BYTES);
        t->first_count = count;
        t->first_T = T;
        atomic_store_explicit(&t->first_state, 2, memory_order_release);
    }
    atomic_fetch_add_explicit(&t->n_truncated, 1, memory_order_relaxed);
}

int tok_encode_fixed(tok_t *t, const char *text, int *ids, int T, char err[256])
{
    if (T < 1) {
        set_err(err, "text length T = %d must be at least 1", T);
        return -1;
    }
    if (t->special.pad < 0 || t->special.bos < 0) {
        set_err(err, "tokenizer has no %s piece (train one with `dalle-c tokenizer train`)",
                t->special.pad < 0 ? "<pad>" : "<s>");
        return -1;
    }
    long count = tok_encode(t, text, ids, T, err);
    if (count < 0) return -1;
    if (count > T) {
        note_truncation(t, text ? text : "", count, T);
        return T;
    }
    for (long i = count; i < T; i++) ids[i] = t->special.pad;
    return (int)count;
}

long tok_decode(const tok_t *t, const int *ids, long n, char *out, size_t cap, char err[256])
{
    if (n < 0) {
        set_err(err, "decoding: negative id count");
        return -1;
    }
    return spmc_decode(t->sp, ids, (size_t)n, out, cap, err);
}

/* ---------------------------------------------------------------- warnings and counts */

void tok_stats(const tok_t *t, tok_stats_t *s)
{
    s->encoded = atomic_load((atomic_long *)&t->n_encoded);
    s->truncated = atomic_load((atomic_long *)&t->n_truncated);
    s->invalid_utf8 = atomic_load((atomic_long *)&t->n_invalid);
}

int tok_warning(tok_t *t, char msg[256])
{
    long trunc = atomic_load(&t->n_truncated);
    if (trunc > 0 && atomic_load_explicit(&t->first_state, memory_order_acquire) == 2 &&
        atomic_exchange(&t->warned_truncated, 1) == 0) {
        snprintf(msg, 256,
                 "%ld caption%s longer than T = %d tokens %s cut to %d (first: \"%s%s\", "
                 "%ld tokens)",
                 trunc, trunc == 1 ? "" : "s", t->first_T, trunc == 1 ? "was" : "were",
                 t->first_T, t->first_text, t->first_cut ? "..." : "", t->first_count);
        return 1;
    }
    long bad = atomic_load(&t->n_invalid);
    if (bad > 0 && !t->strict_utf8 && atomic_exchange(&t->warned_invalid, 1) == 0) {
        snprintf(msg, 256,
                 "%ld text%s had invalid UTF-8; each bad byte was read as U+FFFD", bad,
                 bad == 1 ? "" : "s");
        return 1;
    }
    return 0;
}
