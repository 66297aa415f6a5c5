/* tokenizer: captions and prompts to text ids, with SentencePiece (through spm_c.h).
 *
 * A tokenizer is the bytes of a SentencePiece .model file. `dalle-c tokenizer train`
 * writes such a file (spm_encode reads it too); a dalle-c model file carries the same
 * bytes as a named blob, so one model file alone can generate. A model writer adds it
 * with wf_writer_add_blob(w, TOK_BLOB_NAME, tok_model_bytes(t, &n), n, err);
 * tok_load() reads either kind of file.
 *
 * Special ids. A tokenizer trained here has
 *     <pad> = 0   fills text positions after the caption
 *     <unk> = 1   never produced while byte fallback is on
 *     <s>   = 2   BOS: the first token of every transformer sequence
 *     </s>  = 3   EOS: reserved, not used by the transformer
 * then user symbols, then 256 byte pieces <0x00>..<0xFF>, then the learned pieces.
 * Code never assumes these numbers: it asks tok_pad_id() / tok_bos_id(). A foreign .model
 * (spm_train's defaults have no <pad>) can be loaded and encodes as spm_encode does, but
 * tok_encode_fixed() refuses it because the transformer needs PAD and BOS.
 *
 * Normalisation is a property of the trained model (SentencePiece stores its normaliser
 * in the .model): training and generation encode identically, and spm_encode agrees.
 * Default "nmt_nfkc_cf": NFKC with SentencePiece's NMT rules, then case folding, as
 * DALL-E lowercased its captions ("A Red Circle" and "a red circle" are one prompt; a
 * decoded text comes back lowercase). "nmt_nfkc" keeps case; "nfkc", "nfkc_cf" and
 * "identity" are the other choices. Whitespace runs collapse and the ends are trimmed
 * (remove_extra_whitespaces), and a dummy space is prefixed (add_dummy_prefix).
 *
 * Default model type BPE, as DALL-E: on caption sets with a small lexicon (the
 * synthetic shapes set has ~25 words) SentencePiece's unigram trainer seeds too few
 * pieces and splits "red" into "▁ re d" (34 ids for a 12-word caption, BPE: 12).
 *
 * Invalid UTF-8. By default every byte that is not part of a well-formed UTF-8 sequence
 * is read as U+FFFD (what SentencePiece's normaliser does, so ids still equal
 * spm_encode's), and the caption is counted for a warning. tok_set_strict_utf8(t, 1)
 * refuses such text instead: encode returns -1 with the offset of the bad byte.
 *
 * Truncation is warned once per run, not per caption: tok_encode_fixed() counts the
 * captions it cuts to T and keeps the first one; tok_warning() hands each kind of
 * warning out once, and the caller (pipeline/) prints it. Library code never prints.
 *
 * Threads: after loading, tok_encode*, tok_decode and the getters may be called on one
 * tok_t from many threads at once (the counters are atomic). Training sets process-wide
 * options of libsentencepiece: one training at a time.
 */
#ifndef DALLEC_TOKENIZER_H
#define DALLEC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* The name of the tokenizer's blob in a dalle-c model file. */
#define TOK_BLOB_NAME "tokenizer.model"

typedef struct tok tok_t;

/* ---------------------------------------------------------------- training */

typedef struct {
    char model_type[16];          /* "bpe" (default) or "unigram" */
    int vocab_size;               /* 2048 */
    double character_coverage;    /* 0.9995: the rarest 0.05% of characters get no piece
                                   * of their own and are spelled with byte pieces */
    char normalization[32];       /* "nmt_nfkc_cf" (default: lowercase), "nmt_nfkc",
                                   * "nfkc", "nfkc_cf" or "identity" */
    int remove_extra_whitespaces; /* 1 */
    int add_dummy_prefix;         /* 1: "red" and " red" share the piece "▁red" */
    int byte_fallback;            /* 1: unseen characters (emoji, CJK) become UTF-8 byte
                                   * pieces, never <unk>, so decode(encode(x)) == x;
                                   * needs vocab_size > 260 + distinct characters kept */
    int split_digits;             /* 1: "128" is "1" "2" "8", digits generalise */
    char user_symbols[512];       /* comma-separated pieces kept whole, e.g. "<sep>"; "" */
    int hard_vocab_limit;         /* 0: vocab_size is a maximum, small caption sets give
                                   * smaller vocabularies instead of failing */
    int threads;                  /* 2: the unigram trainer's work partitions. Part of the
                                   * result (float sums), so fixed, not the machine's;
                                   * BPE (0.1.97) trains on one thread whatever this is */
    long max_sentences;           /* 2000000: a sample (by seed) of bigger caption sets */
    uint32_t seed;                /* 1 */
} tok_train_config_t;

tok_train_config_t tok_train_config_default(void);

/* Trains on a caption file (UTF-8, one caption per line; CRLF is fine; lines over 4192
 * bytes are skipped). Deterministic: the same file and config give the same bytes. On
 * success *model (malloc'd, free() it) holds the bytes of a .model file. */
int tok_train_file(const char *path, const tok_train_config_t *cfg, char **model,
                   size_t *model_len, char err[256]);
/* The same from n captions in memory. */
int tok_train_captions(const char *const *captions, size_t n, const tok_train_config_t *cfg,
                       char **model, size_t *model_len, char err[256]);

/* ---------------------------------------------------------------- loading */

/* From the bytes of a .model file (copied). NULL with err on failure. */
tok_t *tok_create(const void *bytes, size_t n, char err[256]);
/* From a file: a SentencePiece .model, or a dalle-c model file holding a TOK_BLOB_NAME
 * blob (told apart by their first bytes). */
tok_t *tok_load(const char *path, char err[256]);
void tok_free(tok_t *t);
/* The .model bytes, to embed in a model file (owned by t). */
const void *tok_model_bytes(const tok_t *t, size_t *n);
/* Writes the .model bytes to path atomically (temporary name, fsync, rename). */
int tok_save(const tok_t *t, const char *path, char err[256]);

int tok_vocab_size(const tok_t *t);
int tok_pad_id(const tok_t *t); /* -1 when the model has none */
int tok_bos_id(const tok_t *t);
int tok_eos_id(const tok_t *t);
int tok_unk_id(const tok_t *t);
/* The piece of id ("▁red", "<0xF0>"), owned by t; NULL when out of range. */
const char *tok_piece(const tok_t *t, int id);

/* 0 (default): invalid UTF-8 bytes become U+FFFD; 1: text with them is refused. */
void tok_set_strict_utf8(tok_t *t, int strict);

/* ---------------------------------------------------------------- encoding */

/* The ids of text as spm_encode gives them (no BOS, no padding). Writes min(count, cap)
 * ids and returns count; -1 with err on failure. */
long tok_encode(tok_t *t, const char *text, int *ids, long cap, char err[256]);

/* The pieces of text, NUL-separated in buf (see spmc_encode_pieces): returns the piece
 * count, *need the bytes they take (> cap: call again with more). */
long tok_encode_pieces(tok_t *t, const char *text, char *buf, size_t cap, size_t *need,
                       char err[256]);

/* The transformer's text input: exactly T ids, the caption's ids cut to T and padded with
 * PAD. BOS is not included: the transformer's sequence is [BOS, these T ids, image...].
 * Returns the number of caption ids kept (0..T; 0 for an empty caption, which is also
 * the all-PAD "null caption" of classifier-free guidance), or -1 with err (no PAD or BOS
 * in the model, T < 1, refused UTF-8). Cuts are counted for tok_warning(). */
int tok_encode_fixed(tok_t *t, const char *text, int *ids, int T, char err[256]);

/* Text of n ids (PAD, BOS, EOS decode to nothing). snprintf-like: writes at most cap-1
 * bytes and a NUL, returns the full length; -1 with err (an id out of range). */
long tok_decode(const tok_t *t, const int *ids, long n, char *out, size_t cap, char err[256]);

/* ---------------------------------------------------------------- warnings and counts */

typedef struct {
    long encoded;       /* texts encoded by tok_encode / tok_encode_fixed */
    long truncated;     /* captions cut to T by tok_encode_fixed */
    long invalid_utf8;  /* texts with invalid UTF-8 (replaced, or refused when strict) */
} tok_stats_t;

void tok_stats(const tok_t *t, tok_stats_t *s);

/* Fills msg with a warning not handed out before and returns 1, or returns 0. Each kind
 * (truncation, invalid UTF-8) is handed out once per tok_t, so polling this after every
 * batch prints one line per run:
 *     while (tok_warning(tok, msg)) fprintf(stderr, "warning: %s\n", msg);
 * The counts in the message are those so far; tok_stats() has the final ones. */
int tok_warning(tok_t *t, char msg[256]);

#endif
