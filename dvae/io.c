/* Saving and loading the dVAE through the model file (weights/weights.h). */
#include "dvae/dvae.h"

#include "weights/weights.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The config fields and their keys, in one table so store and read cannot drift. */
#define INT_FIELD(k, f) {k, offsetof(dvae_config_t, f), 0}
#define FLOAT_FIELD(k, f) {k, offsetof(dvae_config_t, f), 1}
static const wf_field_t fields[] = {
    INT_FIELD("dvae.image_size", image_size),
    INT_FIELD("dvae.layers", layers),
    INT_FIELD("dvae.channels", channels),
    INT_FIELD("dvae.res_blocks", res_blocks),
    INT_FIELD("dvae.codebook_size", codebook_size),
    INT_FIELD("dvae.code_dim", code_dim),
    INT_FIELD("dvae.straight_through", straight_through),
    FLOAT_FIELD("dvae.tau_start", tau_start),
    FLOAT_FIELD("dvae.tau_min", tau_min),
    FLOAT_FIELD("dvae.tau_decay", tau_decay),
    FLOAT_FIELD("dvae.kl_weight", kl_weight),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

int dvae_config_store(const dvae_config_t *c, wf_config_t *cfg)
{
    return wf_config_store_fields(cfg, c, fields, NFIELDS);
}

int dvae_config_read(dvae_config_t *c, const wf_config_t *cfg, const char *path, char err[256])
{
    *c = dvae_config_default();
    int found = wf_config_read_fields(cfg, c, fields, NFIELDS, path, err);
    if (found < 0) return -1;
    if (!found) {
        snprintf(err, 256, "%s: holds no dVAE (no dvae.* config)", path);
        return -1;
    }
    char why[256];
    if (dvae_config_check(c, why)) {
        snprintf(err, 256, "%s: %.160s", path, why);
        return -1;
    }
    return 0;
}

int dvae_write_tensors(const dvae_t *m, wf_writer_t *w, char err[256])
{
    for (int i = 0; i < dvae_tensor_count(m); i++) {
        dvae_tensor_t t = dvae_tensor(m, i);
        int64_t shape[4];
        for (int d = 0; d < t.ndim; d++) shape[d] = t.shape[d];
        if (wf_writer_add_tensor(w, t.name, WF_F32, t.ndim, shape, t.data, err)) return -1;
    }
    return 0;
}

int dvae_read_tensors(dvae_t *m, wf_reader_t *r, char err[256])
{
    for (int i = 0; i < dvae_tensor_count(m); i++) {
        dvae_tensor_t t = dvae_tensor(m, i);
        int64_t shape[4];
        for (int d = 0; d < t.ndim; d++) shape[d] = t.shape[d];
        if (wf_reader_load(r, t.name, t.ndim, shape, t.data, err)) return -1;
    }
    return 0;
}

int dvae_save(const dvae_t *m, const char *path, char err[256])
{
    wf_config_t *cfg = wf_config_create();
    if (!cfg || dvae_config_store(dvae_config(m), cfg)) {
        wf_config_free(cfg);
        snprintf(err, 256, "%s: out of memory", path);
        return -1;
    }
    wf_writer_t *w;
    int rc = wf_writer_open(&w, path, cfg, 0, err);
    wf_config_free(cfg);
    if (rc) return -1;
    if (dvae_write_tensors(m, w, err)) {
        wf_writer_abort(w);
        return -1;
    }
    return wf_writer_close(w, err) ? -1 : 0;
}

int dvae_load(dvae_t **out, const char *path, int max_batch, char err[256])
{
    *out = 0;
    wf_reader_t *r;
    if (wf_reader_open(&r, path, err)) return -1;
    dvae_config_t c;
    dvae_t *m = 0;
    if (dvae_config_read(&c, wf_reader_config(r), path, err) ||
        dvae_create(&m, &c, max_batch, err) || dvae_read_tensors(m, r, err)) {
        dvae_free(m);
        wf_reader_close(r);
        return -1;
    }
    wf_reader_close(r);
    *out = m;
    return 0;
}
