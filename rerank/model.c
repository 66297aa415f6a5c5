/* The scorer's config, its flat blocks carved by the tensor table, and init. */
#include "rerank/rerank_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rerank_config_t rerank_config_default(void)
{
    rerank_config_t c = {
        .image_size = 64, .image_layers = 4, .image_channels = 32,
        .text_len = 32, .text_vocab = 1024, .pad_id = 0, .bos_id = 2, .eos_id = 3,
        .text_layers = 2, .text_heads = 4, .text_width = 128, .embed_dim = 128,
    };
    return c;
}

int rerank_config_check(const rerank_config_t *c, char err[RERANK_ERR_SIZE])
{
    /* the bounds keep every size_t product far below 2^40 and every int index in range */
    struct { const char *name; int v, lo, hi; } f[] = {
        {"image_size", c->image_size, 8, 1024},
        {"image_layers", c->image_layers, 1, RERANK_MAX_IMAGE_LAYERS},
        {"image_channels", c->image_channels, 1, 4096},
        {"text_len", c->text_len, 3, 1024},
        {"text_vocab", c->text_vocab, 3, 1 << 20},
        {"text_layers", c->text_layers, 1, RERANK_MAX_TEXT_LAYERS},
        {"text_heads", c->text_heads, 1, 256},
        {"text_width", c->text_width, 1, 8192},
        {"embed_dim", c->embed_dim, 1, 8192},
        {"pad_id", c->pad_id, 0, c->text_vocab - 1},
        {"bos_id", c->bos_id, 0, c->text_vocab - 1},
        {"eos_id", c->eos_id, 0, c->text_vocab - 1},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return rr_fail(err, "rerank config: %s = %d is out of range [%d, %d]", f[i].name,
                           f[i].v, f[i].lo, f[i].hi);
    if (c->image_size % (1 << c->image_layers))
        return rr_fail(err, "rerank config: image_size = %d is not divisible by 2^image_layers "
                       "= %d", c->image_size, 1 << c->image_layers);
    if ((long)c->image_channels << (c->image_layers - 1) > 8192)
        return rr_fail(err, "rerank config: the last stage would have %ld channels (at most "
                       "8192)", (long)c->image_channels << (c->image_layers - 1));
    if (rr_flat_size(c) > ((size_t)1 << 20))
        return rr_fail(err, "rerank config: the last map has %zu features (at most 2^20): add "
                       "image layers", rr_flat_size(c));
    if (c->text_width % c->text_heads)
        return rr_fail(err, "rerank config: text_width = %d is not a multiple of text_heads = "
                       "%d", c->text_width, c->text_heads);
    if (c->pad_id == c->bos_id || c->pad_id == c->eos_id || c->bos_id == c->eos_id)
        return rr_fail(err, "rerank config: pad_id %d, bos_id %d and eos_id %d must differ",
                       c->pad_id, c->bos_id, c->eos_id);
    /* a scorer is small by design; this also bounds what a damaged file can make us allocate */
    if (rerank_num_params(c) > RERANK_MAX_PARAMS)
        return rr_fail(err, "rerank config: %zu parameters, more than %d", rerank_num_params(c),
                       RERANK_MAX_PARAMS);
    return 0;
}

int rr_stage_channels(const rerank_config_t *c, int i)
{
    return i < 0 ? 3 : c->image_channels << i;
}

int rr_final_side(const rerank_config_t *c)
{
    return c->image_size >> c->image_layers;
}

size_t rr_flat_size(const rerank_config_t *c)
{
    size_t side = (size_t)rr_final_side(c);
    return (size_t)rr_stage_channels(c, c->image_layers - 1) * side * side;
}

double rerank_pair_macs(const rerank_config_t *c)
{
    double macs = 0;
    for (int i = 0, s = c->image_size / 2; i < c->image_layers; i++, s /= 2)
        macs += (double)s * s * rr_stage_channels(c, i) * rr_stage_channels(c, i - 1) * 16;
    const double d = c->text_width, T = c->text_len;
    macs += (double)rr_flat_size(c) * c->embed_dim + d * c->embed_dim;
    macs += c->text_layers * (T * 12.0 * d * d + 2.0 * T * T * d);
    return macs;
}

/* ---------------------------------------------------------------- the tensor table */

/* Walks the table in block order: with tab set it fills entries, with base set it returns
 * each tensor's address in that block (else NULL); counting pass: both NULL. */
typedef struct {
    rerank_tensor_t *tab;
    float *base;
    int n;
    size_t off;
} carver_t;

static float *carve(carver_t *cv, int decay, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static float *carve(carver_t *cv, int decay, int ndim, const int64_t *shape, const char *fmt, ...)
{
    size_t numel = 1;
    for (int k = 0; k < ndim; k++) numel *= (size_t)shape[k];
    if (cv->tab) {
        rerank_tensor_t *t = &cv->tab[cv->n];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->name, sizeof t->name, fmt, ap);
        va_end(ap);
        t->ndim = ndim;
        for (int k = 0; k < 4; k++) t->shape[k] = k < ndim ? shape[k] : 1;
        t->numel = numel;
        t->offset = cv->off;
        t->decay = decay;
    }
    float *p = cv->base ? cv->base + cv->off : NULL;
    cv->n++;
    cv->off += numel;
    return p;
}

#define VEC(a) ((int64_t[]){a})
#define MAT(a, b) ((int64_t[]){a, b})

static void layout(const rerank_config_t *c, carver_t *cv, rr_weights_t *w)
{
    rr_weights_t dummy;
    if (!w) w = &dummy;
    const int64_t d = c->text_width, E = c->embed_dim;
    for (int i = 0; i < c->image_layers; i++) {
        const int64_t oc = rr_stage_channels(c, i), ic = rr_stage_channels(c, i - 1);
        w->conv_w[i] = carve(cv, 1, 4, (int64_t[]){oc, ic, 4, 4}, "rerank.img.conv%d.w", i);
        w->conv_b[i] = carve(cv, 0, 1, VEC(oc), "rerank.img.conv%d.b", i);
    }
    w->img_proj_w = carve(cv, 1, 2, MAT(E, (int64_t)rr_flat_size(c)), "rerank.img.proj.w");
    w->wte = carve(cv, 0, 2, MAT(c->text_vocab, d), "rerank.txt.wte");
    w->wpe = carve(cv, 0, 2, MAT(c->text_len, d), "rerank.txt.wpe");
    for (int l = 0; l < c->text_layers; l++) {
        nn_block_t *b = &w->h[l];
        b->ln1_w = carve(cv, 0, 1, VEC(d), "rerank.txt.h%d.ln1.w", l);
        b->ln1_b = carve(cv, 0, 1, VEC(d), "rerank.txt.h%d.ln1.b", l);
        b->qkv_w = carve(cv, 1, 2, MAT(3 * d, d), "rerank.txt.h%d.attn.qkv.w", l);
        b->qkv_b = carve(cv, 0, 1, VEC(3 * d), "rerank.txt.h%d.attn.qkv.b", l);
        b->attn_proj_w = carve(cv, 1, 2, MAT(d, d), "rerank.txt.h%d.attn.proj.w", l);
        b->attn_proj_b = carve(cv, 0, 1, VEC(d), "rerank.txt.h%d.attn.proj.b", l);
        b->ln2_w = carve(cv, 0, 1, VEC(d), "rerank.txt.h%d.ln2.w", l);
        b->ln2_b = carve(cv, 0, 1, VEC(d), "rerank.txt.h%d.ln2.b", l);
        b->fc_w = carve(cv, 1, 2, MAT(4 * d, d), "rerank.txt.h%d.mlp.fc.w", l);
        b->fc_b = carve(cv, 0, 1, VEC(4 * d), "rerank.txt.h%d.mlp.fc.b", l);
        b->mlp_proj_w = carve(cv, 1, 2, MAT(d, 4 * d), "rerank.txt.h%d.mlp.proj.w", l);
        b->mlp_proj_b = carve(cv, 0, 1, VEC(d), "rerank.txt.h%d.mlp.proj.b", l);
    }
    w->lnf_w = carve(cv, 0, 1, VEC(d), "rerank.txt.ln_f.w");
    w->lnf_b = carve(cv, 0, 1, VEC(d), "rerank.txt.ln_f.b");
    w->txt_proj_w = carve(cv, 1, 2, MAT(E, d), "rerank.txt.proj.w");
    w->logit_scale = carve(cv, 0, 1, VEC(1), "rerank.logit_scale");
}

size_t rerank_num_params(const rerank_config_t *c)
{
    carver_t cv = {0};
    layout(c, &cv, NULL);
    return cv.off;
}

/* ---------------------------------------------------------------- activations */

/* Carves (or, with base NULL, sizes) the activation block for B pairs. */
static size_t carve_acts(const rerank_t *m, int B, float *base, rr_acts_t *a)
{
    const rerank_config_t *c = &m->c;
    const size_t d = (size_t)c->text_width, T = (size_t)c->text_len, N = (size_t)B * T;
    const size_t E = (size_t)c->embed_dim, S = (size_t)c->image_size, F = rr_flat_size(c);
    const size_t att = (size_t)B * c->text_heads * T * T;
    size_t off = 0, cols = 0;
#define TAKE(ptr, n) do { (ptr) = base ? base + off : NULL; off += (n); } while (0)
    TAKE(a->x, 3 * (size_t)B * S * S);
    for (int i = 0; i < c->image_layers; i++) {
        size_t s = S >> (i + 1);
        TAKE(a->stage[i], (size_t)rr_stage_channels(c, i) * B * s * s);
        nn_conv_dims_t dm = {B, rr_stage_channels(c, i - 1), (int)(S >> i), (int)(S >> i),
                             rr_stage_channels(c, i), 4, 2, 1};
        size_t k = nn_conv2d_cols_size(&dm);
        cols = k > cols ? k : cols;
    }
    TAKE(a->flat, (size_t)B * F);
    TAKE(a->img_raw, B * E); TAKE(a->img_norm, B); TAKE(a->img_emb, B * E);
    TAKE(a->cols, cols);
    TAKE(a->encoded, N * d);
    for (int l = 0; l < c->text_layers; l++) {
        nn_block_acts_t *h = &a->h[l];
        TAKE(h->ln1, N * d); TAKE(h->ln1_mean, N); TAKE(h->ln1_rstd, N);
        TAKE(h->qkv, N * 3 * d); TAKE(h->atty, N * d); TAKE(h->att, att);
        TAKE(h->res2, N * d);
        TAKE(h->ln2, N * d); TAKE(h->ln2_mean, N); TAKE(h->ln2_rstd, N);
        TAKE(h->fch, N * 4 * d); TAKE(h->fch_gelu, N * 4 * d); TAKE(h->res3, N * d);
    }
    TAKE(a->pooled, B * d); TAKE(a->lnf, B * d); TAKE(a->lnf_mean, B); TAKE(a->lnf_rstd, B);
    TAKE(a->txt_raw, B * E); TAKE(a->txt_norm, B); TAKE(a->txt_emb, B * E);
    TAKE(a->tmp, N * d);
    if (m->train) {
        for (int i = 0; i < c->image_layers; i++) {
            size_t s = S >> (i + 1);
            TAKE(a->dstage[i], (size_t)rr_stage_channels(c, i) * B * s * s);
        }
        TAKE(a->dflat, (size_t)B * F); TAKE(a->dimg_raw, B * E); TAKE(a->dtxt_raw, B * E);
        TAKE(a->dcols, cols);
        TAKE(a->dx, N * d); TAKE(a->ds.dln, N * d); TAKE(a->ds.datty, N * d);
        TAKE(a->ds.dqkv, N * 3 * d); TAKE(a->ds.datt, att); TAKE(a->ds.dfch, N * 4 * d);
        TAKE(a->ds.dgelu, N * 4 * d); TAKE(a->dpooled, B * d);
    }
#undef TAKE
    return off;
}

/* ---------------------------------------------------------------- create / free */

static float *alloc_floats(size_t n)
{
    return calloc(n ? n : 1, sizeof(float));
}

int rerank_create(rerank_t **out, const rerank_config_t *c, int max_batch, int train,
                  char err[RERANK_ERR_SIZE])
{
    *out = NULL;
    if (rerank_config_check(c, err)) return -1;
    if (max_batch < 1 || max_batch > 65536)
        return rr_fail(err, "rerank: max_batch = %d is out of range [1, 65536]", max_batch);
    rerank_t *m = calloc(1, sizeof *m);
    if (!m) return rr_fail(err, "rerank: out of memory");
    m->c = *c;
    m->max_batch = max_batch;
    m->train = train != 0;
    carver_t cv = {0};
    layout(c, &cv, NULL);
    m->n_tensors = cv.n;
    m->n_params = cv.off;
    m->tensors = calloc((size_t)cv.n, sizeof *m->tensors);
    m->params = alloc_floats(m->n_params);
    m->ids = calloc((size_t)max_batch * c->text_len, sizeof(int));
    m->pool = calloc((size_t)max_batch, sizeof(int));
    if (!m->tensors || !m->params || !m->ids || !m->pool) goto oom;
    cv = (carver_t){.tab = m->tensors, .base = m->params};
    layout(c, &cv, &m->w);
    if (m->train) {
        m->grads = alloc_floats(m->n_params);
        m->adam_m = alloc_floats(m->n_params);
        m->adam_v = alloc_floats(m->n_params);
        if (!m->grads || !m->adam_m || !m->adam_v) goto oom;
        cv = (carver_t){.base = m->grads};
        layout(c, &cv, &m->g);
    }
    size_t n_act = carve_acts(m, max_batch, NULL, &m->a);
    m->act_block = alloc_floats(n_act);
    if (!m->act_block) {
        rerank_free(m);
        return rr_fail(err, "rerank: out of memory for activations (%zu MB for batch %d)",
                       n_act * sizeof(float) >> 20, max_batch);
    }
    carve_acts(m, max_batch, m->act_block, &m->a);
    for (int i = 0; i < m->n_tensors; i++) {
        rerank_tensor_t *t = &m->tensors[i];
        t->param = m->params + t->offset;
        t->grad = m->grads ? m->grads + t->offset : NULL;
        t->adam_m = m->adam_m ? m->adam_m + t->offset : NULL;
        t->adam_v = m->adam_v ? m->adam_v + t->offset : NULL;
    }
    *out = m;
    return 0;
oom:
    rerank_free(m);
    return rr_fail(err, "rerank: out of memory");
}

void rerank_free(rerank_t *m)
{
    if (!m) return;
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->act_block);
    free(m->ids);
    free(m->pool);
    free(m->g_img); /* one block holds every loss buffer */
    free(m);
}

const rerank_config_t *rerank_config(const rerank_t *m) { return &m->c; }
int rerank_max_batch(const rerank_t *m) { return m->max_batch; }
int rerank_tensor_count(const rerank_t *m) { return m->n_tensors; }
const char *rerank_errmsg(const rerank_t *m) { return m->err; }
float rerank_log_scale(const rerank_t *m) { return m->w.logit_scale[0]; }
long rerank_opt_steps(const rerank_t *m) { return m->opt_t; }
void rerank_set_opt_steps(rerank_t *m, long t) { m->opt_t = t; }

const rerank_tensor_t *rerank_tensor_at(const rerank_t *m, int i)
{
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}

const rerank_tensor_t *rerank_tensor_find(const rerank_t *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

float *rerank_param_block(rerank_t *m, size_t *n) { if (n) *n = m->n_params; return m->params; }
float *rerank_grad_block(rerank_t *m, size_t *n) { if (n) *n = m->n_params; return m->grads; }

/* ---------------------------------------------------------------- init */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void rerank_init_params(rerank_t *m, uint64_t seed)
{
    nn_rng_t rng;
    nn_rng_seed(&rng, seed);
    const float resid = 0.02f / sqrtf(2.0f * (float)m->c.text_layers);
    for (int i = 0; i < m->n_tensors; i++) {
        rerank_tensor_t *t = &m->tensors[i];
        const char *n = t->name;
        if (strncmp(n, "rerank.img.conv", 15) == 0) {
            /* a conv weight and the bias after it share fan_in = in channels x 16 */
            const rerank_tensor_t *w = t->ndim == 4 ? t : t - 1;
            float bound = 1.0f / sqrtf((float)(w->shape[1] * w->shape[2] * w->shape[3]));
            nn_rng_fill_uniform(&rng, t->param, t->numel, -bound, bound);
        } else if (ends_with(n, "logit_scale")) {
            t->param[0] = logf(1.0f / 0.07f);
        } else if (strcmp(n, "rerank.img.proj.w") == 0 || strcmp(n, "rerank.txt.proj.w") == 0) {
            nn_rng_fill_normal(&rng, t->param, t->numel, 0.0f, 1.0f / sqrtf((float)t->shape[1]));
        } else if (strcmp(n, "rerank.txt.wpe") == 0) {
            nn_rng_fill_normal(&rng, t->param, t->numel, 0.0f, 0.01f);
        } else if (t->ndim == 2) {
            nn_rng_fill_normal(&rng, t->param, t->numel, 0.0f,
                               ends_with(n, "proj.w") ? resid : 0.02f);
        } else if (strstr(n, ".ln") && ends_with(n, ".w")) {
            for (size_t k = 0; k < t->numel; k++) t->param[k] = 1.0f;
        } else {
            memset(t->param, 0, t->numel * sizeof(float));
        }
    }
    if (m->adam_m) {
        memset(m->adam_m, 0, m->n_params * sizeof(float));
        memset(m->adam_v, 0, m->n_params * sizeof(float));
    }
    m->opt_t = 0;
}
