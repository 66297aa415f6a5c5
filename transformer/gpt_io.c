/* The transformer in the model file (weights/weights.h): config keys and tensors. */
#include "transformer/gpt_internal.h"

#include "weights/weights.h"

#include <stddef.h>
#include <stdio.h>

/* The config fields and their keys, in one table so store and read cannot drift. */

static const wf_field_t fields[] = {
    {"gpt.text_len", offsetof(gpt_config_t, text_len), 0},
    {"gpt.text_vocab", offsetof(gpt_config_t, text_vocab), 0},
    {"gpt.pad_id", offsetof(gpt_config_t, pad_id), 0},
    {"gpt.bos_id", offsetof(gpt_config_t, bos_id), 0},
    {"gpt.grid", offsetof(gpt_config_t, grid), 0},
    {"gpt.image_vocab", offsetof(gpt_config_t, image_vocab), 0},
    {"gpt.n_layer", offsetof(gpt_config_t, n_layer), 0},
    {"gpt.n_head", offsetof(gpt_config_t, n_head), 0},
    {"gpt.n_embd", offsetof(gpt_config_t, n_embd), 0},
    {"gpt.loss_w_text", offsetof(gpt_config_t, loss_w_text), 1},
    {"gpt.loss_w_image", offsetof(gpt_config_t, loss_w_image), 1},
    {"gpt.p_null", offsetof(gpt_config_t, p_null), 1},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

int gpt_config_store(const gpt_config_t *c, wf_config_t *cfg)
{
    return wf_config_store_fields(cfg, c, fields, NFIELDS);
}

int gpt_config_read(gpt_config_t *c, const wf_config_t *cfg, const char *path,
                    char err[GPT_ERR_SIZE])
{
    *c = gpt_config_default();
    int found = wf_config_read_fields(cfg, c, fields, NFIELDS, path, err);
    if (found < 0) return -1;
    if (!found) {
        snprintf(err, GPT_ERR_SIZE, "%s: holds no transformer (no gpt.* config)", path);
        return -1;
    }
    char why[GPT_ERR_SIZE];
    if (gpt_config_check(c, why)) {
        snprintf(err, GPT_ERR_SIZE, "%s: %.160s", path, why);
        return -1;
    }
    return 0;
}

int gpt_write_tensors(const gpt_t *m, wf_writer_t *w, char err[GPT_ERR_SIZE])
{
    for (int i = 0; i < m->n_tensors; i++) {
        const gpt_tensor_t *t = &m->tensors[i];
        if (wf_writer_add_tensor(w, t->name, WF_F32, t->ndim, t->shape, t->param, err))
            return -1;
    }
    return 0;
}

int gpt_read_tensors(gpt_t *m, wf_reader_t *r, char err[GPT_ERR_SIZE])
{
    for (int i = 0; i < m->n_tensors; i++) {
        const gpt_tensor_t *t = &m->tensors[i];
        if (wf_reader_load(r, t->name, t->ndim, t->shape, t->param, err)) return -1;
    }
    return 0;
}

int gpt_load(gpt_t **out, const char *path, int max_batch, char err[GPT_ERR_SIZE])
{
    *out = NULL;
    wf_reader_t *r;
    if (wf_reader_open(&r, path, err)) return -1;
    gpt_config_t c;
    gpt_t *m = NULL;
    if (gpt_config_read(&c, wf_reader_config(r), path, err) ||
        gpt_create(&m, &c, max_batch, err) || gpt_read_tensors(m, r, err)) {
        gpt_free(m);
        wf_reader_close(r);
        return -1;
    }
    wf_reader_close(r);
    *out = m;
    return 0;
}
