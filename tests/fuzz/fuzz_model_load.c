/* Model files as the commands load them, past the container: dalle_model_load_mem (the
 * tokenizer, transformer and dVAE of a file and their agreement; generation and the
 * server), then one small generation with the loaded weights; and from a file
 * mf_load (training's --resume and the token commands' parts), dvae_load and gpt_load.
 *
 * The input's CRC-32s are recomputed first (tests/weights_testlib.h), so damage to the
 * config text and the directory reaches these loaders rather than stopping at the
 * reader's checks (fuzz_model covers those). Tensor data stays behind zstd's own
 * checksum: values such as NaN and infinity come from the corpus (tiny-nonfinite.dalle).
 * A refusal is one line starting with the file's name; a generation from a model that
 * loads returns tokens inside the codebook. */
#include "pipeline/dalle.h"
#include "pipeline/model_file.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/weights_testlib.h"

#define NAME "fuzz.dalle"

static void generate(const dalle_model_t *m)
{
    dalle_model_info_t info;
    dalle_model_info(m, &info);
    if (info.grid < 1 || info.image_vocab < 2 || info.image_size < 8)
        fuzz_fail("loaded a model of grid %d, codebook %d, size %d", info.grid, info.image_vocab,
                  info.image_size);
    /* keep a run short: a config that grows the work a lot only costs time */
    if ((double)info.n_params * (info.text_len + info.grid * info.grid) > 5e7) return;
    char err[DALLE_ERR_SIZE] = "";
    dalle_ctx_t *c;
    if (dalle_ctx_create(&c, m, err) != DALLE_OK) {
        if (!err[0] || strchr(err, '\n')) fuzz_fail("dalle_ctx_create refusal \"%s\"", err);
        return;
    }
    dalle_params_t p = dalle_params_default();
    p.seed = 1;
    p.threads = 1;
    dalle_result_t r;
    int st = dalle_generate(c, "a small red circle", &p, NULL, NULL, &r, err);
    if (st == DALLE_OK) {
        const int G2 = info.grid * info.grid;
        for (int i = 0; i < G2; i++)
            if (r.tokens[i] < 0 || r.tokens[i] >= info.image_vocab)
                fuzz_fail("generated token %d of a codebook of %d", r.tokens[i], info.image_vocab);
        if (r.images[0].w != info.image_size || !r.images[0].rgb) fuzz_fail("no image");
        dalle_result_free(&r);
    } else if (!err[0] || strchr(err, '\n')) {
        fuzz_fail("dalle_generate refusal \"%s\"", err);
    }
    dalle_ctx_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *f = malloc(size ? size : 1);
    if (!f) return 0;
    memcpy(f, data, size);
    wt_fix_crcs(f, size);

    char err[DALLE_ERR_SIZE] = "";
    dalle_model_t *m;
    if (dalle_model_load_mem(&m, f, size, NAME, err) == DALLE_OK) {
        generate(m);
        dalle_model_free(m);
    } else {
        fuzz_check_message(err, NAME);
    }

    char path[600];
    snprintf(path, sizeof path, "%s/model.dalle", fuzz_tmpdir());
    int written = wt_write_file(path, f, size) == 0;
    free(f);
    if (!written) return 0;
    dvae_t *dv = NULL;
    tok_t *tok = NULL;
    gpt_t *gpt = NULL;
    if (mf_load(path, &dv, 1, &tok, &gpt, 0, err) == 0) dvae_free(dv), tok_free(tok), gpt_free(gpt);
    else fuzz_check_message(err, path);
    if (dvae_load(&dv, path, 1, err) == 0) dvae_free(dv);
    else fuzz_check_message(err, path);
    if (gpt_load(&gpt, path, 0, err) == 0) gpt_free(gpt);
    else fuzz_check_message(err, path);
    return 0;
}
