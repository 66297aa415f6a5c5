/* The complete model file: config of every part, the tokenizer blob, dVAE and GPT
 * tensors (pipeline/model_file.h, docs/MODEL.md). */
#include "pipeline/model_file.h"

#include <stdio.h>
#include <string.h>

int mf_writer_open(wf_writer_t **out, const char *path, const dvae_t *dv, const tok_t *tok,
                   const gpt_t *gpt, const wf_config_t *extra, int level, char err[256])
{
    *out = NULL;
    wf_config_t *cfg = wf_config_create();
    int bad = !cfg || wf_config_set_str(cfg, "model.kind", MF_KIND) ||
              wf_config_set_str(cfg, "model.parts", MF_PARTS) ||
              dvae_config_store(dvae_config(dv), cfg) || gpt_config_store(gpt_config(gpt), cfg);
    for (int i = 0; !bad && extra && i < wf_config_count(extra); i++)
        bad = wf_config_copy_entry(cfg, extra, i);
    if (bad) {
        wf_config_free(cfg);
        snprintf(err, 256, "%.200s: cannot build the config (out of memory?)", path);
        return -1;
    }
    wf_writer_t *w;
    int rc = wf_writer_open(&w, path, cfg, level, err);
    wf_config_free(cfg);
    if (rc) return -1;
    size_t n;
    const void *bytes = tok_model_bytes(tok, &n);
    if (wf_writer_add_blob(w, TOK_BLOB_NAME, bytes, n, err) || dvae_write_tensors(dv, w, err) ||
        gpt_write_tensors(gpt, w, err)) {
        wf_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

int mf_save(const char *path, const dvae_t *dv, const tok_t *tok, const gpt_t *gpt,
            char err[256])
{
    char e[256];
    if (mf_check_parts(path, dv, tok, gpt, err)) return -1;
    wf_writer_t *w;
    if (mf_writer_open(&w, path, dv, tok, gpt, NULL, 0, err)) return -1;
    if (wf_writer_close(w, e)) {
        snprintf(err, 256, "%s", e);
        return -1;
    }
    return 0;
}

int mf_check_parts(const char *path, const dvae_t *dv, const tok_t *tok, const gpt_t *gpt,
                   char err[256])
{
    if (!gpt) return 0;
    const gpt_config_t *g = gpt_config(gpt);
    if (dv) {
        const dvae_config_t *d = dvae_config(dv);
        if (g->grid != dvae_grid_size(d) || g->image_vocab != d->codebook_size) {
            snprintf(err, 256, "%.160s: the transformer expects %dx%d grids of %d codes but the "
                     "dVAE makes %dx%d grids of %d", path, g->grid, g->grid, g->image_vocab,
                     dvae_grid_size(d), dvae_grid_size(d), d->codebook_size);
            return -1;
        }
    }
    if (tok && (g->text_vocab != tok_vocab_size(tok) || g->pad_id != tok_pad_id(tok) ||
                g->bos_id != tok_bos_id(tok))) {
        snprintf(err, 256, "%.100s: the transformer's text vocabulary (%d ids, PAD %d, BOS %d) is "
                 "not the tokenizer's (%d ids, PAD %d, BOS %d)", path, g->text_vocab, g->pad_id,
                 g->bos_id, tok_vocab_size(tok), tok_pad_id(tok), tok_bos_id(tok));
        return -1;
    }
    return 0;
}

int mf_load(const char *path, dvae_t **dv, int dvae_batch, tok_t **tok, gpt_t **gpt,
            int gpt_batch, char err[256])
{
    dvae_t *d = NULL;
    tok_t *t = NULL;
    gpt_t *g = NULL;
    if (dv && dvae_load(&d, path, dvae_batch, err)) goto fail;
    if (tok && !(t = tok_load(path, err))) goto fail;
    if (gpt && gpt_load(&g, path, gpt_batch, err)) goto fail;
    if (mf_check_parts(path, d, t, g, err)) goto fail;
    if (dv) *dv = d;
    if (tok) *tok = t;
    if (gpt) *gpt = g;
    return 0;
fail:
    dvae_free(d);
    tok_free(t);
    gpt_free(g);
    if (dv) *dv = NULL;
    if (tok) *tok = NULL;
    if (gpt) *gpt = NULL;
    return -1;
}
