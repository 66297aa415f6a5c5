/* dalle-c tokenizer train | encode | decode: the text side on its own (tokenizer.h). */
#include "pipeline/commands.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *train_usage =
    "usage: dalle-c tokenizer train CAPTIONS.txt -o TOKENIZER_FILE [--vocab N] [options]\n"
    "\n"
    "Trains a SentencePiece tokenizer on a caption file (UTF-8, one caption per line) and\n"
    "writes it as a SentencePiece .model file (spm_encode reads it too). Special ids:\n"
    "<pad> 0, <unk> 1, <s> (BOS) 2, </s> 3. Deterministic: same captions and options,\n"
    "same file.\n"
    "\n"
    "  -o FILE               output file (written atomically)\n"
    "  --vocab N             vocabulary size, at most (default 2048; small caption sets\n"
    "                        give fewer pieces, see --exact-vocab)\n"
    "  --type bpe|unigram    segmentation model (default bpe)\n"
    "  --coverage X          share of characters given pieces of their own (default\n"
    "                        0.9995); the rest are spelled in UTF-8 byte pieces\n"
    "  --normalization RULE  nmt_nfkc_cf (default: NFKC and lowercase), nmt_nfkc (keeps\n"
    "                        case), nfkc, nfkc_cf or identity\n"
    "  --user-symbols A,B    pieces kept whole (comma-separated)\n"
    "  --keep-whitespace     do not collapse runs of spaces\n"
    "  --no-byte-fallback    unseen characters become <unk> instead of byte pieces\n"
    "  --no-split-digits     let digits merge into multi-digit pieces\n"
    "  --exact-vocab         fail unless exactly --vocab pieces can be learned\n"
    "  --seed S              sampling seed for very large caption sets (default 1)\n";

static const char *encode_usage =
    "usage: dalle-c tokenizer encode -m MODEL [options] \"text\"...\n"
    "       dalle-c tokenizer encode -m MODEL [options] --input FILE   (one text a line; - is stdin)\n"
    "\n"
    "Prints each text's ids and pieces. MODEL is a tokenizer file or a dalle-c model file.\n"
    "\n"
    "  --ids                 ids only, one line per text (as spm_encode --output_format=id)\n"
    "  --pieces              pieces only, one line per text (--output_format=piece)\n"
    "  --length T            the transformer's input: T ids, cut or padded with <pad>\n"
    "                        (BOS, which precedes them in the model, is not shown)\n"
    "  --strict-utf8         refuse invalid UTF-8 instead of reading bad bytes as U+FFFD\n";

static const char *decode_usage =
    "usage: dalle-c tokenizer decode -m MODEL ID...\n"
    "\n"
    "Prints the text of the ids (as printed by encode; <pad>, <s>, </s> print nothing).\n";

static const char *tokenizer_usage =
    "usage: dalle-c tokenizer train CAPTIONS.txt -o TOKENIZER_FILE --vocab N\n"
    "       dalle-c tokenizer encode -m MODEL \"text\"\n"
    "       dalle-c tokenizer decode -m MODEL ID...\n"
    "(each with --help for its options)\n";

static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "dalle-c tokenizer: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    if (strlen(src) >= cap) return -1;
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

static void print_warnings(tok_t *tok)
{
    char msg[256];
    while (tok_warning(tok, msg)) fprintf(stderr, "dalle-c tokenizer: warning: %s\n", msg);
}

/* ---------------------------------------------------------------- train */

static int cmd_train(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(train_usage, stdout);
        return 0;
    }
    tok_train_config_t cfg = tok_train_config_default();
    const char *input = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (!v) return usage_error(train_usage, "%s needs a file", a);
            out = v;
            i++;
        } else if (strcmp(a, "--vocab") == 0) {
            if (!v || parse_long(v, 8, 1000000, &n) != 0)
                return usage_error(train_usage, "--vocab needs a size in [8, 1000000], not '%s'",
                                   v ? v : "");
            cfg.vocab_size = (int)n;
            i++;
        } else if (strcmp(a, "--type") == 0) {
            if (!v || (strcmp(v, "unigram") != 0 && strcmp(v, "bpe") != 0))
                return usage_error(train_usage, "--type is unigram or bpe, not '%s'", v ? v : "");
            copy_str(cfg.model_type, sizeof cfg.model_type, v);
            i++;
        } else if (strcmp(a, "--coverage") == 0) {
            char *end;
            double x = v ? strtod(v, &end) : 0;
            if (!v || *end || !(x > 0 && x <= 1))
                return usage_error(train_usage, "--coverage needs a value in (0, 1], not '%s'",
                                   v ? v : "");
            cfg.character_coverage = x;
            i++;
        } else if (strcmp(a, "--normalization") == 0) {
            static const char *rules[] = {"nmt_nfkc", "nmt_nfkc_cf", "nfkc", "nfkc_cf",
                                          "identity"};
            int ok = 0;
            for (size_t k = 0; v && k < sizeof rules / sizeof *rules; k++) ok |= !strcmp(v, rules[k]);
            if (!ok)
                return usage_error(train_usage, "unknown --normalization '%s'", v ? v : "");
            copy_str(cfg.normalization, sizeof cfg.normalization, v);
            i++;
        } else if (strcmp(a, "--user-symbols") == 0) {
            if (!v || copy_str(cfg.user_symbols, sizeof cfg.user_symbols, v) != 0)
                return usage_error(train_usage, "--user-symbols needs a list under 512 bytes%s",
                                   "");
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            if (!v || parse_long(v, 0, 0x7fffffffL, &n) != 0)
                return usage_error(train_usage, "--seed needs a non-negative integer, not '%s'",
                                   v ? v : "");
            cfg.seed = (uint32_t)n;
            i++;
        } else if (strcmp(a, "--keep-whitespace") == 0) {
            cfg.remove_extra_whitespaces = 0;
        } else if (strcmp(a, "--no-byte-fallback") == 0) {
            cfg.byte_fallback = 0;
        } else if (strcmp(a, "--no-split-digits") == 0) {
            cfg.split_digits = 0;
        } else if (strcmp(a, "--exact-vocab") == 0) {
            cfg.hard_vocab_limit = 1;
        } else if (a[0] == '-' && a[1]) {
            return usage_error(train_usage, "unknown option '%s'", a);
        } else if (!input) {
            input = a;
        } else {
            return usage_error(train_usage, "unexpected argument '%s'", a);
        }
    }
    if (!input) return usage_error(train_usage, "no caption file given%s", "");
    if (!out) return usage_error(train_usage, "no output file given (-o)%s", "");

    char err[256];
    char *model = NULL;
    size_t len = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (tok_train_file(input, &cfg, &model, &len, err) != 0) {
        fprintf(stderr, "dalle-c tokenizer train: %s\n", err);
        if (strstr(err, "smaller than required_chars"))
            fprintf(stderr, "dalle-c tokenizer train: (here: raise --vocab or lower --coverage; "
                            "byte fallback alone takes 256 ids)\n");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tok_t *tok = tok_create(model, len, err);
    free(model);
    if (!tok) {
        fprintf(stderr, "dalle-c tokenizer train: the trained model does not load: %s\n", err);
        return 1;
    }
    if (tok_save(tok, out, err) != 0) {
        fprintf(stderr, "dalle-c tokenizer train: %s\n", err);
        tok_free(tok);
        return 1;
    }
    int vocab = tok_vocab_size(tok);
    printf("%s: %s tokenizer, vocabulary %d", out, cfg.model_type, vocab);
    if (vocab < cfg.vocab_size) printf(" (of %d asked: all the captions support)", cfg.vocab_size);
    printf(", pad %d unk %d bos %d eos %d, %zu bytes, trained in %.1fs\n", tok_pad_id(tok),
           tok_unk_id(tok), tok_bos_id(tok), tok_eos_id(tok), len,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    tok_free(tok);
    return 0;
}

/* ---------------------------------------------------------------- encode */

enum { SHOW_BOTH, SHOW_IDS, SHOW_PIECES };

typedef struct {
    tok_t *tok;
    int show;
    int T; /* 0: plain encode */
    int *ids;
    long ids_cap;
    char *pieces;
    size_t pieces_cap;
} encoder_t;

static int grow_ids(encoder_t *e, long n)
{
    if (n <= e->ids_cap) return 0;
    int *p = realloc(e->ids, (size_t)n * sizeof *p);
    if (!p) return -1;
    e->ids = p;
    e->ids_cap = n;
    return 0;
}

/* Prints one text; returns 0 or -1 with err. */
static int encode_one(encoder_t *e, const char *text, char *err)
{
    long n;
    if (e->T > 0) {
        if (grow_ids(e, e->T) != 0) goto oom;
        if (tok_encode_fixed(e->tok, text, e->ids, e->T, err) < 0) return -1;
        n = e->T;
    } else {
        n = tok_encode(e->tok, text, e->ids, e->ids_cap, err);
        if (n < 0) return -1;
        if (n > e->ids_cap) {
            if (grow_ids(e, n) != 0) goto oom;
            n = tok_encode(e->tok, text, e->ids, e->ids_cap, err);
            if (n < 0) return -1;
        }
    }
    if (e->show != SHOW_PIECES) {
        if (e->show == SHOW_BOTH) fputs("ids:", stdout);
        for (long i = 0; i < n; i++) printf(i || e->show == SHOW_BOTH ? " %d" : "%d", e->ids[i]);
        putchar('\n');
    }
    if (e->show == SHOW_IDS) return 0;
    if (e->show == SHOW_BOTH) fputs("pieces:", stdout);
    if (e->T > 0) { /* the fixed ids, padding included: pieces by id */
        for (long i = 0; i < n; i++) printf(i || e->show == SHOW_BOTH ? " %s" : "%s", tok_piece(e->tok, e->ids[i]));
        putchar('\n');
        return 0;
    }
    size_t need = 0;
    long np = tok_encode_pieces(e->tok, text, e->pieces, e->pieces_cap, &need, err);
    if (np < 0) return -1;
    if (need > e->pieces_cap) {
        char *p = realloc(e->pieces, need);
        if (!p) goto oom;
        e->pieces = p;
        e->pieces_cap = need;
        np = tok_encode_pieces(e->tok, text, e->pieces, e->pieces_cap, &need, err);
        if (np < 0) return -1;
    }
    const char *p = e->pieces;
    for (long i = 0; i < np; i++) {
        printf(i || e->show == SHOW_BOTH ? " %s" : "%s", p);
        p += strlen(p) + 1;
    }
    putchar('\n');
    return 0;
oom:
    snprintf(err, 256, "out of memory");
    return -1;
}

static int encode_file(encoder_t *e, const char *path)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "dalle-c tokenizer encode: %s: cannot open (%s)\n", path, strerror(errno));
        return 1;
    }
    char *line = NULL, err[256];
    size_t cap = 0;
    long lineno = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if ((size_t)n != strlen(line)) {
            fprintf(stderr, "dalle-c tokenizer encode: %s:%ld: line holds a NUL byte\n", path,
                    lineno);
            rc = 1;
            break;
        }
        if (encode_one(e, line, err) != 0) {
            fprintf(stderr, "dalle-c tokenizer encode: %s:%ld: %s\n", path, lineno, err);
            rc = 1;
            break;
        }
    }
    if (rc == 0 && ferror(fp)) {
        fprintf(stderr, "dalle-c tokenizer encode: %s: read error\n", path);
        rc = 1;
    }
    free(line);
    if (fp != stdin) fclose(fp);
    return rc;
}

static int cmd_encode(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(encode_usage, stdout);
        return 0;
    }
    const char *model = NULL, *input = NULL;
    encoder_t e = {0};
    e.show = SHOW_BOTH;
    int strict = 0, n_texts = 0;
    char **texts = calloc((size_t)argc, sizeof *texts); /* the non-option arguments */
    if (!texts) {
        fprintf(stderr, "dalle-c tokenizer encode: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--") == 0) {
            while (++i < argc) texts[n_texts++] = argv[i];
        } else if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (!v) rc = usage_error(encode_usage, "%s needs a file", a);
            model = v;
            i++;
        } else if (strcmp(a, "--input") == 0) {
            if (!v) rc = usage_error(encode_usage, "%s needs a file", a);
            input = v;
            i++;
        } else if (strcmp(a, "--length") == 0) {
            if (!v || parse_long(v, 1, 1 << 20, &n) != 0)
                rc = usage_error(encode_usage, "--length needs a positive T, not '%s'", v ? v : "");
            else
                e.T = (int)n;
            i++;
        } else if (strcmp(a, "--ids") == 0) {
            e.show = SHOW_IDS;
        } else if (strcmp(a, "--pieces") == 0) {
            e.show = SHOW_PIECES;
        } else if (strcmp(a, "--strict-utf8") == 0) {
            strict = 1;
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error(encode_usage, "unknown option '%s' (texts starting with - go after --)", a);
        } else {
            texts[n_texts++] = argv[i];
        }
    }
    if (rc == 0 && !model) rc = usage_error(encode_usage, "no model given (-m)%s", "");
    if (rc == 0 && !input && n_texts == 0) rc = usage_error(encode_usage, "no text given%s", "");
    if (rc == 0 && input && n_texts > 0)
        rc = usage_error(encode_usage, "give texts or --input, not both%s", "");
    char err[256];
    if (rc == 0) {
        e.tok = tok_load(model, err);
        if (!e.tok) {
            fprintf(stderr, "dalle-c tokenizer encode: %s\n", err);
            rc = 1;
        }
    }
    if (rc != 0) {
        free(texts);
        return rc;
    }
    tok_set_strict_utf8(e.tok, strict);
    if (input) rc = encode_file(&e, input);
    for (int k = 0; k < n_texts && rc == 0; k++)
        if (encode_one(&e, texts[k], err) != 0) {
            fprintf(stderr, "dalle-c tokenizer encode: text %d: %s\n", k + 1, err);
            rc = 1;
        }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "dalle-c tokenizer encode: writing output: %s\n", strerror(errno));
        rc = 1;
    }
    print_warnings(e.tok);
    free(texts);
    free(e.ids);
    free(e.pieces);
    tok_free(e.tok);
    return rc;
}

/* ---------------------------------------------------------------- decode */

static int cmd_decode(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(decode_usage, stdout);
        return 0;
    }
    const char *model = NULL;
    int *ids = calloc((size_t)argc, sizeof *ids);
    if (!ids) {
        fprintf(stderr, "dalle-c tokenizer decode: out of memory\n");
        return 1;
    }
    long n = 0;
    for (int i = 1; i < argc; i++) {
        long v;
        if (strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) {
            if (i + 1 >= argc) {
                free(ids);
                return usage_error(decode_usage, "%s needs a file", argv[i]);
            }
            model = argv[++i];
        } else if (parse_long(argv[i], 0, 0x7fffffffL, &v) == 0) {
            ids[n++] = (int)v;
        } else {
            free(ids);
            return usage_error(decode_usage, "'%s' is not an id", argv[i]);
        }
    }
    if (!model) {
        free(ids);
        return usage_error(decode_usage, "no model given (-m)%s", "");
    }
    char err[256];
    tok_t *tok = tok_load(model, err);
    if (!tok) {
        free(ids);
        fprintf(stderr, "dalle-c tokenizer decode: %s\n", err);
        return 1;
    }
    int rc = 0;
    long len = tok_decode(tok, ids, n, NULL, 0, err);
    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (len < 0 || !text || tok_decode(tok, ids, n, text, (size_t)len + 1, err) < 0) {
        fprintf(stderr, "dalle-c tokenizer decode: %s\n", len >= 0 && !text ? "out of memory" : err);
        rc = 1;
    } else {
        printf("%s\n", text);
    }
    free(text);
    free(ids);
    tok_free(tok);
    return rc;
}

int cmd_tokenizer(int argc, char **argv)
{
    if (argc < 2) {
        fputs(tokenizer_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "train") == 0) return cmd_train(argc - 1, argv + 1);
    if (strcmp(sub, "encode") == 0) return cmd_encode(argc - 1, argv + 1);
    if (strcmp(sub, "decode") == 0) return cmd_decode(argc - 1, argv + 1);
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        fputs(tokenizer_usage, stdout);
        return 0;
    }
    return usage_error(tokenizer_usage, "unknown subcommand '%s'", sub);
}
