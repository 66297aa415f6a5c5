/* SentencePiece model bytes from the outside: a tokenizer given with --tokenizer, or the
 * tokenizer blob of a model file. The input goes to tok_create, and to tok_load as a
 * file (and, for one input length in eight, as the blob of a dalle-c model file); the
 * three must agree. A refusal is one line (tok_load's starts with the path). A model
 * that loads must name a piece for every id, encode a few texts (plain, NFKC-sensitive,
 * emoji, invalid UTF-8, the input's own bytes) to ids inside its vocabulary, fill fixed
 * length T with PAD, and decode every id.
 *
 * libsentencepiece is Debian's shared library, so libFuzzer sees no coverage inside it
 * (and ASan only the crashes there): the coverage that guides this target is
 * tokenizer/spm_check.c's walk of the protobuf and of the normaliser's trie. */
#include "tests/fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "weights/weights.h"

#define MAX_DECODE 4096 /* ids decoded in one call */

static const char *const texts[] = {
    "a small red circle at the top left",
    "  A  Red\tCircle  ",
    "\xef\xbd\x86\xef\xbd\x95\xef\xbd\x8c\xef\xbd\x8c \xef\xac\x81 \xe2\x91\xa0 \xe3\x80\x80x", /* ｆｕｌｌ ﬁ ① U+3000 */
    "\xf0\x9f\xa5\x91 avocado armchair \xf0\x9f\xaa\x91",
    "caf\xc3\xa9 na\xc3\xafve 128px",
    "bad \xff\xfe utf-8 \xc3",
    "<s></s><pad><unk>",
    "",
};

/* The model t (loaded from the input) on one text. */
static void exercise_text(tok_t *t, const char *text, int vocab)
{
    char err[256] = "";
    int ids[64];
    long n = tok_encode(t, text, ids, 64, err);
    if (n < 0) {
        if (!err[0] || strchr(err, '\n')) fuzz_fail("tok_encode refusal \"%s\" is not one line", err);
        return;
    }
    long k = n < 64 ? n : 64;
    for (long i = 0; i < k; i++)
        if (ids[i] < 0 || ids[i] >= vocab) fuzz_fail("tok_encode gave id %d of %d", ids[i], vocab);
    char out[1024];
    if (tok_decode(t, ids, k, out, sizeof out, err) < 0) fuzz_fail("decoding encoded ids: %s", err);
    char pieces[2048];
    size_t need = 0;
    if (tok_encode_pieces(t, text, pieces, sizeof pieces, &need, err) != n)
        fuzz_fail("pieces and ids of one text differ in count");
    if (tok_pad_id(t) >= 0 && tok_bos_id(t) >= 0) {
        enum { T = 8 };
        int fixed[T];
        int kept = tok_encode_fixed(t, text, fixed, T, err);
        if (kept < 0 || kept > T) fuzz_fail("tok_encode_fixed kept %d of T = %d (%s)", kept, T, err);
        for (int i = 0; i < T; i++)
            if (fixed[i] < 0 || fixed[i] >= vocab || (i >= kept && fixed[i] != tok_pad_id(t)))
                fuzz_fail("tok_encode_fixed: position %d holds %d", i, fixed[i]);
    }
}

static void exercise(tok_t *t, const uint8_t *data, size_t size)
{
    int vocab = tok_vocab_size(t);
    if (vocab < 1) fuzz_fail("a loaded tokenizer has %d pieces", vocab);
    for (int id = 0; id < vocab; id++)
        if (!tok_piece(t, id)) fuzz_fail("id %d of %d has no piece", id, vocab);
    if (tok_piece(t, vocab) || tok_piece(t, -1)) fuzz_fail("a piece for an id out of range");
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) exercise_text(t, texts[i], vocab);
    char own[257];
    size_t n = size < 256 ? size : 256;
    memcpy(own, data, n);
    own[n] = 0;
    exercise_text(t, own, vocab);
    tok_set_strict_utf8(t, 1);
    exercise_text(t, texts[5], vocab);
    int m = vocab < MAX_DECODE ? vocab : MAX_DECODE;
    int *all = malloc((size_t)m * sizeof *all);
    char err[256], out[512], msg[256];
    if (!all) return;
    for (int i = 0; i < m; i++) all[i] = i;
    if (tok_decode(t, all, m, out, sizeof out, err) < 0) fuzz_fail("decoding every id: %s", err);
    all[0] = vocab;
    if (tok_decode(t, all, 1, out, sizeof out, err) >= 0) fuzz_fail("decoded id %d of %d", vocab, vocab);
    free(all);
    while (tok_warning(t, msg)) (void)strlen(msg);
}

/* tok_load on path: must agree with tok_create (loaded) on the same bytes. */
static void load_file(const char *path, int loaded, int as_model)
{
    char err[256] = "";
    tok_t *t = tok_load(path, err);
    if (!t) fuzz_check_message(err, path);
    if ((t != NULL) != loaded)
        fuzz_fail("tok_load of %s %s what tok_create %s (%s)", as_model ? "a model file" : "a file",
                  t ? "took" : "refused", loaded ? "took" : "refused", err);
    tok_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    tok_t *t = tok_create(data, size, err);
    if (t) exercise(t, data, size);
    else if (!err[0] || strchr(err, '\n')) fuzz_fail("tok_create refusal \"%s\" is not one line", err);
    int loaded = t != NULL;
    tok_free(t);

    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.model", fuzz_tmpdir());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t wrote = fwrite(data, 1, size, f);
    if (fclose(f) || wrote != size) return 0;
    /* a raw file that starts like a model file is read as one */
    if (!(size >= 4 && memcmp(data, "\x89" "DLC", 4) == 0)) load_file(path, loaded, 0);

    if (size % 8 == 0) {
        snprintf(path, sizeof path, "%s/tokenizer.dalle", fuzz_tmpdir());
        wf_writer_t *w;
        char werr[WF_ERR_SIZE];
        if (wf_writer_open(&w, path, NULL, 1, werr) != WF_OK) fuzz_fail("setup: %s", werr);
        int added = wf_writer_add_blob(w, TOK_BLOB_NAME, data, size, werr);
        if (wf_writer_close(w, werr) != WF_OK || added != WF_OK) return 0; /* e.g. empty */
        load_file(path, loaded, 1);
    }
    return 0;
}
