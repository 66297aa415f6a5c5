/* The transformer's config, its flat blocks carved by the tensor table, and init. */
#include "transformer/gpt_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, GPT_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return -1;
}

gpt_config_t gpt_config_default(void)
{
    gpt_config_t c = {
        .text_len = 32, .text_vocab = 2048, .pad_id = 0, .bos_id = 2,
        .grid = 16, .image_vocab = 512,
        .n_layer = 8, .n_head = 8, .n_embd = 256,
        .loss_w_text = 1.0f, .loss_w_image = 7.0f, .p_null = 0.1f,
    };
    return c;
}

int gpt_config_check(const gpt_config_t *c, char err[GPT_ERR_SIZE])
{
    /* the bounds keep every size_t product below ~2^40 and every int index in range */
    struct { const char *name; int v, lo, hi; } f[] = {
        {"text_len", c->text_len, 1, 4096},     {"text_vocab", c->text_vocab, 2, 1 << 20},
        {"grid", c->grid, 1, 128},              {"image_vocab", c->image_vocab, 2, 1 << 20},
        {"n_layer", c->n_layer, 1, 1024},       {"n_head", c->n_head, 1, 1024},
        {"n_embd", c->n_embd, 1, 1 << 16},
        {"pad_id", c->pad_id, 0, c->text_vocab - 1}, {"bos_id", c->bos_id, 0, c->text_vocab - 1},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return fail(err, "gpt config: %s = %d is out of range [%d, %d]", f[i].name, f[i].v,
                        f[i].lo, f[i].hi);
    if (c->n_embd % c->n_head)
        return fail(err, "gpt config: n_embd = %d is not a multiple of n_head = %d", c->n_embd,
                    c->n_head);
    if (c->pad_id == c->bos_id)
        return fail(err, "gpt config: pad_id and bos_id are both %d", c->pad_id);
    if (!(c->loss_w_text >= 0) || !(c->loss_w_image >= 0) ||
        !(c->loss_w_text + c->loss_w_image > 0) || !isfinite(c->loss_w_text + c->loss_w_image))
        return fail(err, "gpt config: loss weights %g, %g must be >= 0 with a positive sum",
                    c->loss_w_text, c->loss_w_image);
    if (!(c->p_null >= 0 && c->p_null <= 1))
        return fail(err, "gpt config: p_null = %g is not in [0, 1]", c->p_null);
    return 0;
}

int gpt_seq_len(const gpt_config_t *c)
{
    return c->text_len + c->grid * c->grid;
}

/* ---------------------------------------------------------------- the tensor table */

/* Walks the table in block order. With tab set it fills entries; with base set it
 * returns each tensor's address in that block (else NULL). Counting pass: both NULL. */
typedef struct {
    gpt_tensor_t *tab;
    float *base;
    int n;
    size_t off;
} carver_t;

static float *carve(carver_t *cv, int decay, int64_t d0, int64_t d1, const char *fmt, ...)
{
    size_t numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    if (cv->tab) {
        gpt_tensor_t *t = &cv->tab[cv->n];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->name, sizeof t->name, fmt, ap);
        va_end(ap);
        t->ndim = d1 ? 2 : 1;
        t->shape[0] = d0;
        t->shape[1] = d1;
        t->numel = numel;
        t->offset = cv->off;
        t->decay = decay;
    }
    float *p = cv->base ? cv->base + cv->off : NULL;
    cv->n++;
    cv->off += numel;
    return p;
}

static void layout(const gpt_config_t *c, carver_t *cv, gpt_weights_t *w)
{
    const int64_t d = c->n_embd, G = c->grid;
    gpt_weights_t dummy = {0};
    if (!w) w = &dummy;
    w->wte_text = carve(cv, 0, c->text_vocab, d, "gpt.wte_text");
    w->wte_image = carve(cv, 0, c->image_vocab, d, "gpt.wte_image");
    w->wpe_text = carve(cv, 0, c->text_len + 1, d, "gpt.wpe_text");
    w->wpe_row = carve(cv, 0, G, d, "gpt.wpe_row");
    w->wpe_col = carve(cv, 0, G, d, "gpt.wpe_col");
    for (int l = 0; l < c->n_layer; l++) {
        gpt_block_t b;
        b.ln1_w = carve(cv, 0, d, 0, "gpt.h%d.ln1.w", l);
        b.ln1_b = carve(cv, 0, d, 0, "gpt.h%d.ln1.b", l);
        b.qkv_w = carve(cv, 1, 3 * d, d, "gpt.h%d.attn.qkv.w", l);
        b.qkv_b = carve(cv, 0, 3 * d, 0, "gpt.h%d.attn.qkv.b", l);
        b.attn_proj_w = carve(cv, 1, d, d, "gpt.h%d.attn.proj.w", l);
        b.attn_proj_b = carve(cv, 0, d, 0, "gpt.h%d.attn.proj.b", l);
        b.ln2_w = carve(cv, 0, d, 0, "gpt.h%d.ln2.w", l);
        b.ln2_b = carve(cv, 0, d, 0, "gpt.h%d.ln2.b", l);
        b.fc_w = carve(cv, 1, 4 * d, d, "gpt.h%d.mlp.fc.w", l);
        b.fc_b = carve(cv, 0, 4 * d, 0, "gpt.h%d.mlp.fc.b", l);
        b.mlp_proj_w = carve(cv, 1, d, 4 * d, "gpt.h%d.mlp.proj.w", l);
        b.mlp_proj_b = carve(cv, 0, d, 0, "gpt.h%d.mlp.proj.b", l);
        if (w->h) w->h[l] = b;
    }
    w->lnf_w = carve(cv, 0, d, 0, "gpt.ln_f.w");
    w->lnf_b = carve(cv, 0, d, 0, "gpt.ln_f.b");
    w->head_text_w = carve(cv, 1, c->text_vocab, d, "gpt.head_text.w");
    w->head_text_b = carve(cv, 0, c->text_vocab, 0, "gpt.head_text.b");
    w->head_image_w = carve(cv, 1, c->image_vocab, d, "gpt.head_image.w");
    w->head_image_b = carve(cv, 0, c->image_vocab, 0, "gpt.head_image.b");
}

size_t gpt_num_params(const gpt_config_t *c)
{
    carver_t cv = {0};
    layout(c, &cv, NULL);
    return cv.off;
}

/* ---------------------------------------------------------------- activations */

/* Carves (or, with base NULL, sizes) the activation block for B sequences. */
static size_t carve_acts(const gpt_config_t *c, int B, float *base, gpt_acts_t *a)
{
    const size_t d = (size_t)c->n_embd, L = (size_t)gpt_seq_len(c), N = (size_t)B * L;
    const size_t T = (size_t)c->text_len, G2 = (size_t)c->grid * c->grid;
    const size_t att = (size_t)B * c->n_head * L * L;
    size_t off = 0;
#define TAKE(ptr, n) do { (ptr) = base ? base + off : NULL; off += (n); } while (0)
    TAKE(a->encoded, N * d);
    for (int l = 0; l < c->n_layer; l++) {
        gpt_block_acts_t *h = &a->h[l];
        TAKE(h->ln1, N * d); TAKE(h->ln1_mean, N); TAKE(h->ln1_rstd, N);
        TAKE(h->qkv, N * 3 * d); TAKE(h->atty, N * d); TAKE(h->att, att);
        TAKE(h->res2, N * d);
        TAKE(h->ln2, N * d); TAKE(h->ln2_mean, N); TAKE(h->ln2_rstd, N);
        TAKE(h->fch, N * 4 * d); TAKE(h->fch_gelu, N * 4 * d); TAKE(h->res3, N * d);
    }
    TAKE(a->lnf, N * d); TAKE(a->lnf_mean, N); TAKE(a->lnf_rstd, N);
    TAKE(a->logits_text, B * T * c->text_vocab); TAKE(a->probs_text, B * T * c->text_vocab);
    TAKE(a->logits_image, B * G2 * c->image_vocab);
    TAKE(a->probs_image, B * G2 * c->image_vocab);
    TAKE(a->tmp, N * d);
    TAKE(a->dx, N * d); TAKE(a->dln, N * d); TAKE(a->datty, N * d); TAKE(a->dqkv, N * 3 * d);
    TAKE(a->datt, att); TAKE(a->dfch, N * 4 * d); TAKE(a->dgelu, N * 4 * d);
    TAKE(a->dlogits_text, B * T * c->text_vocab);
    TAKE(a->dlogits_image, B * G2 * c->image_vocab);
#undef TAKE
    return off;
}

/* ---------------------------------------------------------------- create / free */

static float *alloc_floats(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}

int gpt_create(gpt_t **out, const gpt_config_t *c, int max_batch, char err[GPT_ERR_SIZE])
{
    *out = NULL;
    if (gpt_config_check(c, err)) return -1;
    if (max_batch < 0 || max_batch > 65536)
        return fail(err, "gpt: max_batch = %d is out of range", max_batch);
    gpt_t *m = calloc(1, sizeof *m);
    if (!m) return fail(err, "gpt: out of memory");
    m->c = *c;
    m->max_batch = max_batch;
    carver_t cv = {0};
    layout(c, &cv, NULL);
    m->n_tensors = cv.n;
    m->n_params = cv.off;
    m->tensors = calloc((size_t)cv.n, sizeof *m->tensors);
    m->w.h = calloc((size_t)c->n_layer, sizeof *m->w.h);
    m->g.h = calloc((size_t)c->n_layer, sizeof *m->g.h);
    m->params = alloc_floats(m->n_params);
    if (!m->tensors || !m->w.h || !m->g.h || !m->params) goto oom;
    cv = (carver_t){.tab = m->tensors, .base = m->params};
    layout(c, &cv, &m->w);
    if (max_batch > 0) {
        m->grads = alloc_floats(m->n_params);
        m->adam_m = alloc_floats(m->n_params);
        m->adam_v = alloc_floats(m->n_params);
        m->a.h = calloc((size_t)c->n_layer, sizeof *m->a.h);
        size_t G2 = (size_t)c->grid * c->grid;
        m->in_text = calloc((size_t)max_batch * c->text_len, sizeof(int));
        m->in_image = calloc((size_t)max_batch * G2, sizeof(int));
        if (!m->grads || !m->adam_m || !m->adam_v || !m->a.h || !m->in_text || !m->in_image)
            goto oom;
        cv = (carver_t){.base = m->grads};
        layout(c, &cv, &m->g);
        size_t n_act = carve_acts(c, max_batch, NULL, &m->a);
        m->act_block = alloc_floats(n_act);
        if (!m->act_block) {
            gpt_free(m);
            return fail(err, "gpt: out of memory for activations (%zu MB for batch %d)",
                        n_act * sizeof(float) >> 20, max_batch);
        }
        carve_acts(c, max_batch, m->act_block, &m->a);
    }
    for (int i = 0; i < m->n_tensors; i++) {
        gpt_tensor_t *t = &m->tensors[i];
        t->param = m->params + t->offset;
        t->grad = m->grads ? m->grads + t->offset : NULL;
        t->adam_m = m->adam_m ? m->adam_m + t->offset : NULL;
        t->adam_v = m->adam_v ? m->adam_v + t->offset : NULL;
    }
    *out = m;
    return 0;
oom:
    gpt_free(m);
    return fail(err, "gpt: out of memory");
}

void gpt_free(gpt_t *m)
{
    if (!m) return;
    free(m->tensors);
    free(m->w.h);
    free(m->g.h);
    free(m->a.h);
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->act_block);
    free(m->in_text);
    free(m->in_image);
    free(m);
}

const gpt_config_t *gpt_config(const gpt_t *m) { return &m->c; }
int gpt_max_batch(const gpt_t *m) { return m->max_batch; }
int gpt_tensor_count(const gpt_t *m) { return m->n_tensors; }

const gpt_tensor_t *gpt_tensor_at(const gpt_t *m, int i)
{
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}

const gpt_tensor_t *gpt_tensor_find(const gpt_t *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

float *gpt_param_block(gpt_t *m, size_t *n) { if (n) *n = m->n_params; return m->params; }
float *gpt_grad_block(gpt_t *m, size_t *n) { if (n) *n = m->n_params; return m->grads; }
float *gpt_adam_m_block(gpt_t *m, size_t *n) { if (n) *n = m->n_params; return m->adam_m; }
float *gpt_adam_v_block(gpt_t *m, size_t *n) { if (n) *n = m->n_params; return m->adam_v; }

/* ---------------------------------------------------------------- init */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void gpt_init_params(gpt_t *m, uint64_t seed)
{
    nn_rng_t rng;
    nn_rng_seed(&rng, seed);
    const float std = 0.02f, std_resid = 0.02f / sqrtf(2.0f * (float)m->c.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        gpt_tensor_t *t = &m->tensors[i];
        if (t->ndim == 2)  /* linear weights and embedding tables */
            nn_rng_fill_normal(&rng, t->param, t->numel, 0.0f,
                               ends_with(t->name, "proj.w") ? std_resid : std);
        else if (strstr(t->name, ".ln") && ends_with(t->name, ".w"))
            for (size_t k = 0; k < t->numel; k++) t->param[k] = 1.0f;
        else
            memset(t->param, 0, t->numel * sizeof(float));
    }
    if (m->adam_m) {
        memset(m->adam_m, 0, m->n_params * sizeof(float));
        memset(m->adam_v, 0, m->n_params * sizeof(float));
    }
    m->opt_t = 0;
}

/* ---------------------------------------------------------------- embeddings */

void gpt_embed_positions(const gpt_t *m, float *x, const int *text, const int *image,
                         int p0, int S)
{
    const gpt_config_t *c = &m->c;
    const int d = c->n_embd, T = c->text_len, G = c->grid;
    for (int s = 0; s < S; s++) {
        const int p = p0 + s;
        float *o = x + (size_t)s * d;
        const float *tok, *pos1, *pos2 = NULL;
        if (p <= T) {
            int id = p == 0 ? c->bos_id : text ? text[p - 1] : c->pad_id;
            tok = m->w.wte_text + (size_t)id * d;
            pos1 = m->w.wpe_text + (size_t)p * d;
        } else {
            int i = p - T - 1;
            tok = m->w.wte_image + (size_t)image[i] * d;
            pos1 = m->w.wpe_row + (size_t)(i / G) * d;
            pos2 = m->w.wpe_col + (size_t)(i % G) * d;
        }
        if (pos2)
            for (int k = 0; k < d; k++) o[k] = tok[k] + pos1[k] + pos2[k];
        else
            for (int k = 0; k < d; k++) o[k] = tok[k] + pos1[k];
    }
}
