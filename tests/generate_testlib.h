/* Helpers shared by tests/test_generate*.c: a tiny complete model file (tokenizer trained
 * here on a few captions, random dVAE and transformer weights: noise images, fast), laid
 * out as `dalle-c train` writes one. Static functions: each test is one program. */
#ifndef DALLEC_GENERATE_TESTLIB_H
#define DALLEC_GENERATE_TESTLIB_H

#include "dvae/dvae.h"
#include "tests/testutil.h"
#include "tokenizer/tokenizer.h"
#include "transformer/transformer.h"
#include "weights/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* S = 16, L = 2: a 4 x 4 grid of K = 16 codes; T = 16 text tokens. */
enum { GT_S = 16, GT_G = 4, GT_K = 16, GT_T = 16 };

static const char *const gt_captions[] = {
    "a small red circle at the top left on a white background",
    "a large blue square in the center on a gray background",
    "a green triangle above a yellow star on a beige background",
    "a purple heart below an orange cross on a white background",
    "a pink ring left of a cyan diamond on a gray background",
    "a brown star right of a black circle on a beige background",
    "a large red square at the bottom right on a white background",
    "a small green diamond at the top on a gray background",
};

/* Writes the model to path with extra's config keys added (extra may be NULL); 0 or -1
 * (a failure is counted). */
static int gt_write_model_with(const char *path, uint64_t seed, const wf_config_t *extra)
{
    char err[256];
    tok_train_config_t tc = tok_train_config_default();
    tc.vocab_size = 320;
    char *bytes = NULL;
    size_t nbytes = 0;
    if (!check(tok_train_captions(gt_captions, sizeof gt_captions / sizeof *gt_captions, &tc,
                                  &bytes, &nbytes, err) == 0, "tokenizer: %s", err))
        return -1;
    tok_t *tok = tok_create(bytes, nbytes, err);
    free(bytes);
    if (!check(tok != NULL, "tok_create: %s", err)) return -1;

    dvae_config_t dc = dvae_config_default();
    dc.image_size = GT_S;
    dc.layers = 2;
    dc.channels = 8;
    dc.res_blocks = 1;
    dc.codebook_size = GT_K;
    dc.code_dim = 8;
    gpt_config_t gc = gpt_config_default();
    gc.text_len = GT_T;
    gc.text_vocab = tok_vocab_size(tok);
    gc.pad_id = tok_pad_id(tok);
    gc.bos_id = tok_bos_id(tok);
    gc.grid = GT_G;
    gc.image_vocab = GT_K;
    gc.n_layer = 1;
    gc.n_head = 2;
    gc.n_embd = 16;

    dvae_t *dv = NULL;
    gpt_t *gpt = NULL;
    wf_config_t *cfg = wf_config_create();
    wf_writer_t *w = NULL;
    int ok = check(dvae_create(&dv, &dc, 1, err) == 0, "dvae_create: %s", err) &&
             check(gpt_create(&gpt, &gc, 0, err) == 0, "gpt_create: %s", err) &&
             check(cfg != NULL, "wf_config_create");
    if (ok) {
        dvae_init_params(dv, seed);
        gpt_init_params(gpt, seed + 1);
        /* GPT-2's init gives near-uniform logits; scale the image head so samples depend
         * on the prompt and the seed in a visible way */
        const gpt_tensor_t *h = gpt_tensor_find(gpt, "gpt.head_image.w");
        for (size_t i = 0; h && i < h->numel; i++) h->param[i] *= 50.0f;
        size_t ntok = 0;
        const void *tb = tok_model_bytes(tok, &ntok);
        for (int i = 0; ok && extra && i < wf_config_count(extra); i++)
            ok = check(wf_config_copy_entry(cfg, extra, i) == 0, "extra config");
        ok = ok &&
             check(dvae_config_store(&dc, cfg) == 0 && gpt_config_store(&gc, cfg) == 0,
                   "config_store") &&
             check(wf_writer_open(&w, path, cfg, 0, err) == 0, "writer: %s", err) &&
             check(wf_writer_add_blob(w, TOK_BLOB_NAME, tb, ntok, err) == 0, "blob: %s", err) &&
             check(dvae_write_tensors(dv, w, err) == 0, "dvae tensors: %s", err) &&
             check(gpt_write_tensors(gpt, w, err) == 0, "gpt tensors: %s", err);
        if (ok) {
            ok = check(wf_writer_close(w, err) == 0, "close: %s", err);
            w = NULL;
        }
    }
    wf_writer_abort(w);
    wf_config_free(cfg);
    dvae_free(dv);
    gpt_free(gpt);
    tok_free(tok);
    return ok ? 0 : -1;
}

static int gt_write_model(const char *path, uint64_t seed)
{
    return gt_write_model_with(path, seed, NULL);
}

static unsigned char *gt_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* 1 when both files can be read and hold the same bytes (inline: not every test uses it) */
static inline int gt_same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *x = gt_read_file(a, &na), *y = gt_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

#endif
