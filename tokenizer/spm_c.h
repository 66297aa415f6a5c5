/* spm_c: a C interface to libsentencepiece (Debian's 0.1.97), the only C++ in dalle-c.
 *
 * Internal to tokenizer/: the rest of the project uses tokenizer/tokenizer.h. The shim
 * (spm_c.cc) catches every C++ exception and turns it, like every non-OK
 * sentencepiece::util::Status, into a -1 return with a message in err[256].
 *
 * What it cannot catch: libsentencepiece's own CHECK()/LOG(FATAL) macros abort the
 * process. In 0.1.97 these guard internal invariants only (not input), and every input
 * this shim passes on is checked first (ids in range, sizes, option values).
 *
 * Thread safety: a loaded spmc_t is immutable; encode and decode may be called on one
 * spmc_t from many threads at once (SentencePieceProcessor's Encode/Decode are const and
 * keep no per-call state in the object; google/sentencepiece issues 207 and 657).
 * Training sets libsentencepiece's global log level and random seed, so run one
 * training at a time.
 */
#ifndef DALLEC_SPM_C_H
#define DALLEC_SPM_C_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spmc spmc_t;

/* Loads a model from the bytes of a SentencePiece .model file (a serialized ModelProto).
 * The bytes are copied; the caller may free them. NULL with err on failure. */
spmc_t *spmc_load(const void *bytes, size_t n, char err[256]);
void spmc_free(spmc_t *sp);

/* Number of pieces, i.e. the text vocabulary size (ids are 0..size-1). */
int spmc_vocab_size(const spmc_t *sp);

/* The reserved ids, -1 where the model defines none. */
typedef struct {
    int unk, bos, eos, pad;
} spmc_special_t;
void spmc_special_ids(const spmc_t *sp, spmc_special_t *out);

/* The piece string of id ("▁red", "<0xF0>", "<pad>"), owned by sp; NULL when id is out
 * of range. */
const char *spmc_id_to_piece(const spmc_t *sp, int id);

/* Encodes len bytes of text (no NUL needed) to ids, as spm_encode --output_format=id
 * does: no BOS or EOS added. Writes min(count, cap) ids and returns count, so a caller
 * may ask with cap 0 for the size; -1 with err on failure. */
long spmc_encode_ids(const spmc_t *sp, const char *text, size_t len, int *ids, size_t cap,
                     char err[256]);

/* Encodes to pieces, as spm_encode --output_format=piece. The pieces are written one
 * after another, each NUL-terminated, into buf (cap bytes); *need receives the bytes
 * all of them take. Returns the piece count; when *need > cap nothing useful is in buf
 * (call again with a buffer of *need bytes). -1 with err on failure. */
long spmc_encode_pieces(const spmc_t *sp, const char *text, size_t len, char *buf, size_t cap,
                        size_t *need, char err[256]);

/* Decodes n ids to text (control pieces such as <pad>, <s> decode to nothing, byte pieces
 * are reassembled). Writes at most cap-1 bytes and a NUL when cap > 0, returns the full
 * length (excluding the NUL) as snprintf does; -1 with err on failure (an id out of
 * range). */
long spmc_decode(const spmc_t *sp, const int *ids, size_t n, char *out, size_t cap,
                 char err[256]);

/* Training options: the fields are passed to SentencePieceTrainer as its flags of the
 * same names (see spm_train --help). No defaults here: tokenizer.h owns them. */
typedef struct {
    const char *model_type;          /* "unigram" or "bpe" */
    int vocab_size;
    double character_coverage;       /* (0, 1] */
    const char *normalization;       /* normalization_rule_name: nmt_nfkc, nfkc, identity... */
    int add_dummy_prefix;            /* 0/1 */
    int remove_extra_whitespaces;    /* 0/1 */
    int byte_fallback;               /* 0/1 */
    int split_digits;                /* 0/1 */
    const char *user_symbols;        /* comma-separated user_defined_symbols, or NULL */
    int hard_vocab_limit;            /* 0: vocab_size is an upper bound */
    int num_threads;                 /* work partitions of the unigram E-step */
    long max_sentences;              /* input_sentence_size: sample at most this many (0: all) */
    int max_sentence_length;         /* bytes; longer lines are skipped by the trainer */
    unsigned seed;                   /* the sampling seed (SetRandomGeneratorSeed) */
    int unk_id, bos_id, eos_id, pad_id;
} spmc_train_opts_t;

/* Trains from a text file, one sentence per line (a trailing CR is dropped, so CRLF files
 * work). On success *model is a malloc'd serialized model (the bytes of a .model file,
 * free() it) of *model_len bytes, and 0 is returned; -1 with err otherwise. Quiet: the
 * trainer's log output is switched off (minloglevel). */
int spmc_train_file(const char *path, const spmc_train_opts_t *opts, char **model,
                    size_t *model_len, char err[256]);

/* The same from n NUL-terminated sentences in memory. */
int spmc_train_lines(const char *const *lines, size_t n, const spmc_train_opts_t *opts,
                     char **model, size_t *model_len, char err[256]);

#ifdef __cplusplus
}
#endif

#endif
