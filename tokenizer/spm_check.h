/* Internal to tokenizer/: checks the bytes of a SentencePiece .model before
 * libsentencepiece sees them (tok_create calls it).
 *
 * Why: libsentencepiece (Debian's 0.1.97) trusts parts of a model it loads, so a crafted
 * or damaged .model, inside a dalle-c model file or given with --tokenizer, crashes the
 * process instead of being refused (google/sentencepiece issues 1263, 1267, 1269, 1272;
 * each reproduced here, files in tests/fuzz/corpus/tokenizer/):
 *   - the normaliser's precompiled_charsmap is a Darts double-array trie walked without
 *     bounds checks: a node offset outside the array, a leaf value past the replacement
 *     strings, or more than 32 rules sharing a prefix (a fixed stack array) read out of
 *     bounds on the first encode;
 *   - more than 64 user-defined symbols that are prefixes of one another over-read
 *     another fixed stack array;
 *   - building the unigram model's trie recurses once per byte of a piece: a piece of
 *     ~200 KB overflows the stack at load.
 * The check walks the protobuf wire format (ModelProto: pieces = 1, normalizer_spec = 3,
 * denormalizer_spec = 5; in a NormalizerSpec precompiled_charsmap = 2) and refuses a
 * model that would reach one of these. Every model SentencePiece's trainer writes passes;
 * everything else about the model is still checked by libsentencepiece itself. */
#ifndef DALLEC_SPM_CHECK_H
#define DALLEC_SPM_CHECK_H

#include <stddef.h>

/* Longest piece accepted, in bytes: SentencePiece's trainer keeps pieces to 512
 * characters (max_sentencepiece_length), 2048 bytes of UTF-8 at most. */
#define SPM_MAX_PIECE_BYTES 2048
/* Normalizer rules sharing one prefix (kMaxTrieResultsSize in normalizer.h) and nested
 * user-defined symbols (kResultSize in PrefixMatcher) libsentencepiece can take. */
#define SPM_MAX_CHARSMAP_MATCHES 32
#define SPM_MAX_NESTED_SYMBOLS 64

/* 0 when bytes may be handed to libsentencepiece; -1 with err ("not a SentencePiece
 * model: ..." when the bytes are not a protobuf message at all). */
int spm_check_model(const void *bytes, size_t n, char err[256]);

#endif
