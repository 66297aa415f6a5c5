/* Captions as the tokenizer trainer reads them: `dalle-c tokenizer train CAPTIONS.txt`
 * (a file) and `dalle-c train`, which trains one on a dataset's caption lines (in
 * memory). The input's first two bytes pick the options (vocabulary 260..770, BPE or
 * unigram, one of the five normalisation rules, byte fallback, split digits, kept
 * whitespace), the rest is the caption text: lines of it for tok_train_captions, or
 * the bytes as a file for tok_train_file (by the input's parity).
 *
 * Promises: a refusal is one line; a trained model loads (tokenizer/spm_check.c takes
 * everything the trainer writes), has at most the vocabulary asked for, PAD 0 and BOS 2,
 * and encodes every caption to ids inside it. libsentencepiece is not instrumented: the
 * campaign is blind inside the trainer and finds only what crashes or exits it. */
#include "tests/fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

#define MAX_LINES 256

static void one_line(const char *err, const char *what)
{
    if (!err[0] || strchr(err, '\n')) fuzz_fail("%s refusal \"%s\" is not one line", what, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const rules[] = {"nmt_nfkc_cf", "nmt_nfkc", "nfkc", "nfkc_cf", "identity"};
    if (size < 2 || size > 16384) return 0;
    tok_train_config_t c = tok_train_config_default();
    c.vocab_size = 260 + 2 * data[0];
    snprintf(c.model_type, sizeof c.model_type, "%s", data[1] & 1 ? "unigram" : "bpe");
    snprintf(c.normalization, sizeof c.normalization, "%s", rules[(data[1] >> 1) % 5]);
    c.byte_fallback = !(data[1] & 0x10);
    c.split_digits = !(data[1] & 0x20);
    c.remove_extra_whitespaces = !(data[1] & 0x40);
    c.add_dummy_prefix = !(data[1] & 0x80);
    const char *text = (const char *)data + 2;
    size_t n = size - 2;

    /* the captions: lines (CR LF or LF), NUL-terminated copies; a NUL ends a line's text */
    char *buf = malloc(n + 1);
    const char *lines[MAX_LINES];
    size_t count = 0;
    if (!buf) return 0;
    memcpy(buf, text, n);
    buf[n] = 0;
    for (char *p = buf; count < MAX_LINES && p <= buf + n;) {
        char *nl = memchr(p, '\n', (size_t)(buf + n - p));
        if (nl) *nl = 0;
        size_t len = strlen(p);
        if (len && p[len - 1] == '\r') p[len - 1] = 0;
        lines[count++] = p;
        if (!nl) break;
        p = nl + 1;
    }

    char *model = NULL, err[256] = "";
    size_t model_len = 0;
    int rc;
    if (size % 2) {
        rc = tok_train_captions(lines, count, &c, &model, &model_len, err);
    } else {
        char path[600];
        snprintf(path, sizeof path, "%s/captions.txt", fuzz_tmpdir());
        FILE *f = fopen(path, "wb");
        if (!f) {
            free(buf);
            return 0;
        }
        fwrite(text, 1, n, f);
        fclose(f);
        rc = tok_train_file(path, &c, &model, &model_len, err);
    }
    if (rc) {
        one_line(err, "training");
        free(buf);
        return 0;
    }
    tok_t *t = tok_create(model, model_len, err);
    if (!t) fuzz_fail("a model the trainer wrote does not load: %s", err);
    free(model);
    int vocab = tok_vocab_size(t);
    if (vocab > c.vocab_size || tok_pad_id(t) != 0 || tok_bos_id(t) != 2)
        fuzz_fail("trained vocabulary %d of %d asked, PAD %d, BOS %d", vocab, c.vocab_size,
                  tok_pad_id(t), tok_bos_id(t));
    for (size_t i = 0; i < count; i++) {
        int ids[64];
        long k = tok_encode(t, lines[i], ids, 64, err);
        if (k < 0) fuzz_fail("encoding a training caption: %s", err);
        for (long j = 0; j < (k < 64 ? k : 64); j++)
            if (ids[j] < 0 || ids[j] >= vocab) fuzz_fail("id %d of %d", ids[j], vocab);
    }
    tok_free(t);
    free(buf);
    return 0;
}
