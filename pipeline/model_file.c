/* The complete model file: config of every part, the tokenizer blob, dVAE and GPT
 * tensors (pipeline/model_file.h, docs/MODEL.md). */
#include "pipeline/model_file.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---------------------------------------------------------------- sampling defaults */

typedef struct {
    const char *name;       /* after "sample." */
    double lo, hi;
    int open_lo;            /* lo itself is out (top_p) */
    int whole;              /* an integer key (top_k) */
    size_t offset;          /* of the field in mf_sample_t */
    const char *range;      /* as messages print it */
} sample_key_t;

static const sample_key_t sample_keys[] = {
    {"temperature", 0, 100, 0, 0, offsetof(mf_sample_t, params.temperature), "[0, 100]"},
    {"top_k", 0, 1 << 24, 0, 1, offsetof(mf_sample_t, params.top_k), "0..16777216"},
    {"top_p", 0, 1, 1, 0, offsetof(mf_sample_t, params.top_p), "(0, 1]"},
    {"guidance", 0, 100, 0, 0, offsetof(mf_sample_t, params.guidance), "[0, 100]"},
    {"candidate_temperature", 0, 100, 0, 0, offsetof(mf_sample_t, candidate_temperature),
     "[0, 100]"},
};
#define N_SAMPLE_KEYS (sizeof sample_keys / sizeof *sample_keys)

/* As the command line checks an option: the number in range, and for an open lower
 * bound its float too (1e-50 is above 0 but rounds to 0). */
static int sample_in_range(const sample_key_t *k, double v)
{
    return v <= k->hi && (k->open_lo ? v > k->lo && (float)v > (float)k->lo : v >= k->lo);
}

static void sample_store(const sample_key_t *k, mf_sample_t *s, double v)
{
    char *field = (char *)s + k->offset;
    if (k->whole) *(int *)field = (int)v;
    else *(float *)field = (float)v;
}

int mf_sample_read(const wf_config_t *cfg, mf_sample_t *s, const char *path, char err[256])
{
    for (size_t i = 0; i < N_SAMPLE_KEYS; i++) {
        const sample_key_t *k = &sample_keys[i];
        char key[64];
        snprintf(key, sizeof key, MF_SAMPLE_PREFIX "%s", k->name);
        double v;
        int64_t whole = 0;
        int st = k->whole ? wf_config_get_int(cfg, key, &whole) : wf_config_get_float(cfg, key, &v);
        if (st == WF_ENOTFOUND) continue;
        if (st) {
            snprintf(err, 256, "%.150s: config \"%s\" is not %s", path, key,
                     k->whole ? "a whole number" : "a number");
            return -1;
        }
        if (k->whole) v = (double)whole;
        if (!sample_in_range(k, v)) {
            snprintf(err, 256, "%.150s: config \"%s\" = %g is not in %s", path, key, v, k->range);
            return -1;
        }
        sample_store(k, s, v);
    }
    return 0;
}

int mf_sample_set(wf_config_t *cfg, const char *assignment, char err[256])
{
    const char *eq = strchr(assignment, '=');
    const size_t len = eq ? (size_t)(eq - assignment) : strlen(assignment);
    const sample_key_t *k = NULL;
    for (size_t i = 0; i < N_SAMPLE_KEYS && !k; i++)
        if (strlen(sample_keys[i].name) == len && strncmp(assignment, sample_keys[i].name, len) == 0)
            k = &sample_keys[i];
    if (!k) {
        snprintf(err, 256, "unknown sampling setting '%.*s' (" MF_SAMPLE_NAMES ")",
                 (int)(len < 40 ? len : 40), assignment);
        return -1;
    }
    if (!eq) {
        snprintf(err, 256, "'%s' needs a value (%s=VALUE)", k->name, k->name);
        return -1;
    }
    const char *text = eq + 1;
    char *end;
    errno = 0;
    double v = k->whole ? (double)strtoll(text, &end, 10) : strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || !sample_in_range(k, v)) {
        snprintf(err, 256, "%s wants %s in %s, got '%.40s'", k->name,
                 k->whole ? "a whole number" : "a number", k->range, text);
        return -1;
    }
    char key[64];
    snprintf(key, sizeof key, MF_SAMPLE_PREFIX "%s", k->name);
    if (k->whole ? wf_config_set_int(cfg, key, (int64_t)v) : wf_config_set_float(cfg, key, v)) {
        snprintf(err, 256, "out of memory");
        return -1;
    }
    return 0;
}
