/* Writes the seeds of tests/fuzz/corpus/model_load: tiny complete model files (a BPE
 * tokenizer with identity rules, a dVAE S=16 L=2 C=8 K=16, a 1-layer transformer of
 * width 8) with random weights, and one whose weights hold NaN and infinities (a file
 * can carry them: the loaders read values as they are). Run once, by hand, against a
 * build:
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -I. -o /tmp/make_models tests/fuzz/make_models.c \
 *      build/libdallec_core.a $(pkg-config --libs sentencepiece libzstd libpng) -ljpeg \
 *      -L/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -fopenmp -lstdc++ -lm
 *   /tmp/make_models tests/fuzz/corpus/model_load
 */
#include "pipeline/model_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const captions[] = {
    "a small red circle at the top left", "a large blue square in the center",
    "a green triangle above a yellow star", "a purple heart below an orange cross",
};

static int write_model(const char *dir, const char *name, int nonfinite)
{
    char err[256], path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tok_train_config_t tc = tok_train_config_default();
    tc.vocab_size = 300;
    snprintf(tc.normalization, sizeof tc.normalization, "identity");
    char *bytes = NULL;
    size_t n = 0;
    if (tok_train_captions(captions, 4, &tc, &bytes, &n, err)) return fprintf(stderr, "%s\n", err), 1;
    tok_t *tok = tok_create(bytes, n, err);
    free(bytes);
    if (!tok) return fprintf(stderr, "%s\n", err), 1;
    dvae_config_t dc = dvae_config_default();
    dc.image_size = 16, dc.layers = 2, dc.channels = 8, dc.res_blocks = 1;
    dc.codebook_size = 16, dc.code_dim = 8;
    gpt_config_t gc = gpt_config_default();
    gc.text_len = 8, gc.text_vocab = tok_vocab_size(tok);
    gc.pad_id = tok_pad_id(tok), gc.bos_id = tok_bos_id(tok);
    gc.grid = 4, gc.image_vocab = 16, gc.n_layer = 1, gc.n_head = 2, gc.n_embd = 8;
    dvae_t *dv = NULL;
    gpt_t *gpt = NULL;
    if (dvae_create(&dv, &dc, 1, err) || gpt_create(&gpt, &gc, 0, err)) return fprintf(stderr, "%s\n", err), 1;
    dvae_init_params(dv, 1);
    gpt_init_params(gpt, 2);
    if (nonfinite) {
        gpt_tensor_find(gpt, "gpt.head_image.w")->param[3] = NAN;
        gpt_tensor_find(gpt, "gpt.wpe_text")->param[0] = INFINITY;
        gpt_tensor_find(gpt, "gpt.h0.ln1.w")->param[1] = -INFINITY;
        float *p = dvae_params(dv);
        p[0] = NAN, p[dvae_param_count(dv) - 1] = INFINITY;
    }
    int rc = mf_save(path, dv, tok, gpt, err);
    if (rc) fprintf(stderr, "%s\n", err);
    dvae_free(dv);
    gpt_free(gpt);
    tok_free(tok);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) return fprintf(stderr, "usage: make_models DIR\n"), 2;
    return write_model(argv[1], "tiny.dalle", 0) | write_model(argv[1], "tiny-nonfinite.dalle", 1);
}
