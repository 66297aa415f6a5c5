/* Prompts: arbitrary bytes as prompt text through what dalle_generate does before it
 * samples: dalle_prompt_check, then (as a model's tokenizer is loaded, strict UTF-8)
 * tok_encode for the full count and tok_encode_fixed for the T ids the transformer
 * reads, with two tokenizers trained at start-up (the default BPE with nmt_nfkc_cf, and
 * a unigram one with identity rules and user symbols). Captions take the lenient path
 * (invalid bytes read as U+FFFD), so each text goes through that too.
 *
 * The input is split at NUL bytes into several prompts (a C string cannot hold one).
 * An input whose length is 1 modulo 64 also gives a huge prompt: its first part
 * repeated to 128 KiB (a --prompts line or a server request has no length limit), which
 * takes dalle_generate's path only (the check, the full count, the T ids: encoding is
 * linear but slow, ~3 us a byte).
 *
 * Promises: a refusal is one line; the prompt check and the strict tokenizer agree on
 * what is valid UTF-8 (two validators, pipeline/dalle.c and tokenizer/tokenizer.c); an
 * accepted prompt encodes, to ids inside the vocabulary, with PAD after the kept ones. */
#include "pipeline/dalle.h"
#include "tests/fuzz/fuzz.h"
#include "tokenizer/tokenizer.h"

#define HUGE_PROMPT (128u << 10)
enum { T = 16 };

static const char *const captions[] = {
    "a small red circle at the top left on a white background",
    "a large blue square in the center on a gray background",
    "a green triangle above a yellow star on a beige background",
    "a purple heart below an orange cross on a white background",
    "an armchair shaped like an avocado, openmoji style",
    "caf\xc3\xa9 \xf0\x9f\xa5\x91 emoji, twitter style <sep> 128px",
};

static tok_t *toks[2];

static tok_t *train(int which)
{
    tok_train_config_t c = tok_train_config_default();
    c.vocab_size = 320;
    if (which == 1) {
        snprintf(c.model_type, sizeof c.model_type, "unigram");
        snprintf(c.normalization, sizeof c.normalization, "identity");
        snprintf(c.user_symbols, sizeof c.user_symbols, "<sep>,zz,zzz");
        c.remove_extra_whitespaces = 0;
    }
    char *bytes = NULL, err[256];
    size_t n = 0;
    if (tok_train_captions(captions, sizeof captions / sizeof *captions, &c, &bytes, &n, err))
        fuzz_fail("setup: training tokenizer %d: %s", which, err);
    tok_t *t = tok_create(bytes, n, err);
    free(bytes);
    if (!t) fuzz_fail("setup: loading tokenizer %d: %s", which, err);
    return t;
}

static void one_line(const char *err, const char *what)
{
    if (!err[0] || strchr(err, '\n')) fuzz_fail("%s refusal \"%s\" is not one line", what, err);
}

static void check_ids(const int *ids, long n, int vocab, const char *what)
{
    for (long i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab) fuzz_fail("%s gave id %d of %d", what, ids[i], vocab);
}

static void one(const char *prompt, int huge)
{
    char err[DALLE_ERR_SIZE] = "";
    int st = dalle_prompt_check(prompt, err);
    if (st != DALLE_OK && st != DALLE_EPROMPT) fuzz_fail("dalle_prompt_check returned %d", st);
    if (st) one_line(err, "dalle_prompt_check");
    int bad_utf8 = st == DALLE_EPROMPT && strstr(err, "UTF-8") != NULL;
    for (int k = 0; k < (huge ? 1 : 2); k++) {
        tok_t *t = toks[k];
        int vocab = tok_vocab_size(t), ids[T], fixed[T];
        char e[256] = "";
        tok_set_strict_utf8(t, 1);
        long full = tok_encode(t, prompt, ids, T, e);
        if (full < 0) one_line(e, "strict tok_encode");
        if ((full < 0) != bad_utf8)
            fuzz_fail("prompt check says %s, strict tokenizer %d says %s",
                      bad_utf8 ? err : "valid UTF-8", k, full < 0 ? e : "valid");
        if (full >= 0) {
            check_ids(ids, full < T ? full : T, vocab, "tok_encode");
            int kept = tok_encode_fixed(t, prompt, fixed, T, e);
            if (kept != (full < T ? full : T)) fuzz_fail("kept %d of %ld ids (T = %d)", kept, full, T);
            check_ids(fixed, T, vocab, "tok_encode_fixed");
            for (int i = kept; i < T; i++)
                if (fixed[i] != tok_pad_id(t)) fuzz_fail("position %d after the prompt is not PAD", i);
        }
        if (huge) continue;
        tok_set_strict_utf8(t, 0); /* captions: invalid bytes read as U+FFFD */
        long lenient = tok_encode(t, prompt, ids, T, e);
        if (lenient < 0) fuzz_fail("lenient tok_encode refused: %s", e);
        if (full >= 0 && lenient != full) fuzz_fail("strict and lenient counts differ on valid text");
        check_ids(ids, lenient < T ? lenient : T, vocab, "lenient tok_encode");
        char out[512];
        if (tok_decode(t, ids, lenient < T ? lenient : T, out, sizeof out, e) < 0)
            fuzz_fail("decoding encoded ids: %s", e);
        char msg[256];
        while (tok_warning(t, msg)) (void)strlen(msg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!toks[0]) toks[0] = train(0), toks[1] = train(1);
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    for (size_t i = 0; i <= size; i += strlen(buf + i) + 1) one(buf + i, 0);
    size_t first = strlen(buf);
    if (size % 64 == 1 && first > 0) {
        char *huge = malloc(HUGE_PROMPT + 1);
        if (huge) {
            for (size_t i = 0; i < HUGE_PROMPT; i++) huge[i] = buf[i % first];
            huge[HUGE_PROMPT] = 0;
            one(huge, 1);
            free(huge);
        }
    }
    free(buf);
    return 0;
}
