/* The scorer in model files (weights/weights.h), and captions as the text encoder reads
 * them. */
#include "rerank/rerank_internal.h"

#include "weights/weights.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The config fields and their keys, in one table so store and read cannot drift. */
static const wf_field_t fields[] = {
    {"rerank.image_size", offsetof(rerank_config_t, image_size), 0},
    {"rerank.image_layers", offsetof(rerank_config_t, image_layers), 0},
    {"rerank.image_channels", offsetof(rerank_config_t, image_channels), 0},
    {"rerank.text_len", offsetof(rerank_config_t, text_len), 0},
    {"rerank.text_vocab", offsetof(rerank_config_t, text_vocab), 0},
    {"rerank.pad_id", offsetof(rerank_config_t, pad_id), 0},
    {"rerank.bos_id", offsetof(rerank_config_t, bos_id), 0},
    {"rerank.eos_id", offsetof(rerank_config_t, eos_id), 0},
    {"rerank.text_layers", offsetof(rerank_config_t, text_layers), 0},
    {"rerank.text_heads", offsetof(rerank_config_t, text_heads), 0},
    {"rerank.text_width", offsetof(rerank_config_t, text_width), 0},
    {"rerank.embed_dim", offsetof(rerank_config_t, embed_dim), 0},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

int rerank_config_store(const rerank_config_t *c, wf_config_t *cfg)
{
    return wf_config_store_fields(cfg, c, fields, NFIELDS);
}

int rerank_config_read(rerank_config_t *c, const wf_config_t *cfg, const char *path,
                       char err[RERANK_ERR_SIZE])
{
    *c = rerank_config_default();
    int found = wf_config_read_fields(cfg, c, fields, NFIELDS, path, err);
    if (found <= 0) return found;
    char why[RERANK_ERR_SIZE];
    if (rerank_config_check(c, why)) return rr_fail(err, "%.100s: %.150s", path, why);
    return 1;
}

int rerank_write_tensors(const rerank_t *m, wf_writer_t *w, char err[RERANK_ERR_SIZE])
{
    for (int i = 0; i < m->n_tensors; i++) {
        const rerank_tensor_t *t = &m->tensors[i];
        if (wf_writer_add_tensor(w, t->name, WF_F32, t->ndim, t->shape, t->param, err)) return -1;
    }
    return 0;
}

int rerank_read_tensors(rerank_t *m, wf_reader_t *r, char err[RERANK_ERR_SIZE])
{
    for (int i = 0; i < m->n_tensors; i++) {
        const rerank_tensor_t *t = &m->tensors[i];
        if (wf_reader_load(r, t->name, t->ndim, t->shape, t->param, err)) return -1;
    }
    return 0;
}

int rerank_check_tokenizer(const rerank_config_t *c, const tok_t *tok, const char *path,
                           char err[RERANK_ERR_SIZE])
{
    if (c->text_vocab != tok_vocab_size(tok) || c->pad_id != tok_pad_id(tok) ||
        c->bos_id != tok_bos_id(tok) || c->eos_id != tok_eos_id(tok))
        return rr_fail(err, "%.80s: the scorer's text vocabulary (%d ids, PAD %d, BOS %d, EOS %d) "
                       "is not the tokenizer's (%d ids, PAD %d, BOS %d, EOS %d)", path,
                       c->text_vocab, c->pad_id, c->bos_id, c->eos_id, tok_vocab_size(tok),
                       tok_pad_id(tok), tok_bos_id(tok), tok_eos_id(tok));
    return 0;
}

int rerank_load(rerank_t **out, tok_t **tok, const char *path, int max_batch, int train,
                char err[RERANK_ERR_SIZE])
{
    *out = NULL;
    if (tok) *tok = NULL;
    wf_reader_t *r;
    if (wf_reader_open(&r, path, err)) return -1;
    rerank_config_t c;
    rerank_t *m = NULL;
    tok_t *t = NULL;
    int found = rerank_config_read(&c, wf_reader_config(r), path, err);
    if (found == 0)
        rr_fail(err, "%.200s: holds no scorer (no rerank.* config; `dalle-c rerank train` makes "
                "one)", path);
    if (found <= 0 || rerank_create(&m, &c, max_batch, train, err) ||
        rerank_read_tensors(m, r, err))
        goto fail;
    if (tok) {
        void *blob = NULL;
        size_t size = 0;
        char e[WF_ERR_SIZE];
        if (wf_reader_blob(r, TOK_BLOB_NAME, &blob, &size, e)) {
            rr_fail(err, "%.240s", e);
            goto fail;
        }
        t = tok_create(blob, size, e);
        free(blob);
        if (!t) {
            rr_fail(err, "%.100s: tokenizer: %.140s", path, e);
            goto fail;
        }
        if (rerank_check_tokenizer(&c, t, path, err)) goto fail;
        *tok = t;
    }
    wf_reader_close(r);
    *out = m;
    return 0;
fail:
    tok_free(t);
    rerank_free(m);
    wf_reader_close(r);
    return -1;
}

int rerank_save(const rerank_t *m, const tok_t *tok, const char *path, const wf_config_t *extra,
                int level, wf_writer_t **w_out, char err[RERANK_ERR_SIZE])
{
    if (w_out) *w_out = NULL;
    if (rerank_check_tokenizer(&m->c, tok, path, err)) return -1;
    wf_config_t *cfg = wf_config_create();
    int bad = !cfg || wf_config_set_str(cfg, "model.kind", "dalle-c scorer") ||
              wf_config_set_str(cfg, "model.parts", "tokenizer,rerank") ||
              rerank_config_store(&m->c, cfg);
    for (int i = 0; !bad && extra && i < wf_config_count(extra); i++)
        bad = wf_config_copy_entry(cfg, extra, i);
    if (bad) {
        wf_config_free(cfg);
        return rr_fail(err, "%.200s: cannot build the config (out of memory?)", path);
    }
    wf_writer_t *w;
    int rc = wf_writer_open(&w, path, cfg, level, err);
    wf_config_free(cfg);
    if (rc) return -1;
    size_t n;
    const void *bytes = tok_model_bytes(tok, &n);
    if (wf_writer_add_blob(w, TOK_BLOB_NAME, bytes, n, err) || rerank_write_tensors(m, w, err)) {
        wf_writer_abort(w);
        return -1;
    }
    if (w_out) {
        *w_out = w;
        return 0;
    }
    return wf_writer_close(w, err) ? -1 : 0;
}

int rerank_encode_text(const rerank_config_t *c, tok_t *tok, const char *text, int *ids,
                       char err[RERANK_ERR_SIZE])
{
    if (rerank_check_tokenizer(c, tok, "scorer", err)) return -1;
    const int T = c->text_len;
    int kept = tok_encode_fixed(tok, text, ids + 1, T - 2, err);
    if (kept < 0) return -1;
    ids[0] = c->bos_id;
    ids[1 + kept] = c->eos_id;
    for (int t = 2 + kept; t < T; t++) ids[t] = c->pad_id;
    return kept;
}
