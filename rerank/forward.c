/* The scorer's forward and backward passes: the image encoder (conv stages, flatten,
 * projection), the text encoder (pre-LN blocks pooled at EOS, projection), L2
 * normalisation, the contrastive loss over the global batch, and AdamW. */
#include "rerank/rerank_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float));
}

static nn_conv_dims_t stage_dims(const rerank_t *m, int i, int B)
{
    const int s = m->c.image_size >> i;
    nn_conv_dims_t d = {B, rr_stage_channels(&m->c, i - 1), s, s, rr_stage_channels(&m->c, i),
                        4, 2, 1};
    return d;
}

static size_t stage_numel(const rerank_t *m, int i, int B)
{
    const size_t s = (size_t)(m->c.image_size >> (i + 1));
    return (size_t)rr_stage_channels(&m->c, i) * B * s * s;
}

/* d = d where out > 0, else 0: a ReLU's backward in place */
static void relu_mask(float *d, const float *out, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        if (out[i] <= 0.0f) d[i] = 0.0f;
}

/* ---------------------------------------------------------------- image encoder */

static void image_forward(rerank_t *m, const float *images, int B)
{
    const rerank_config_t *c = &m->c;
    rr_acts_t *a = &m->a;
    const int L = c->image_layers, side = rr_final_side(c), E = c->embed_dim;
    const int F = (int)rr_flat_size(c), S = c->image_size;
    nn_nchw_to_cnhw(a->x, images, B, 3, S * S);
    const float *in = a->x;
    for (int i = 0; i < L; i++) {
        nn_conv_dims_t d = stage_dims(m, i, B);
        nn_conv2d_forward(a->stage[i], a->cols, in, m->w.conv_w[i], m->w.conv_b[i], &d);
        nn_relu_forward(a->stage[i], a->stage[i], stage_numel(m, i, B));
        in = a->stage[i];
    }
    nn_cnhw_to_nchw(a->flat, in, B, rr_stage_channels(c, L - 1), side * side);
    nn_linear_forward(a->img_raw, a->flat, m->w.img_proj_w, NULL, B, F, E);
    nn_l2norm_forward(a->img_emb, a->img_norm, a->img_raw, B, E);
}

static void image_backward(rerank_t *m, const float *dimg)
{
    const rerank_config_t *c = &m->c;
    rr_acts_t *a = &m->a;
    const int B = m->B, L = c->image_layers, side = rr_final_side(c), E = c->embed_dim;
    const int F = (int)rr_flat_size(c);
    zero(a->dimg_raw, (size_t)B * E);
    nn_l2norm_backward(a->dimg_raw, dimg, a->img_emb, a->img_norm, B, E);
    zero(a->dflat, (size_t)B * F);
    nn_linear_backward(a->dflat, m->g.img_proj_w, NULL, a->dimg_raw, a->flat, m->w.img_proj_w,
                       B, F, E);
    nn_nchw_to_cnhw(a->dstage[L - 1], a->dflat, B, rr_stage_channels(c, L - 1), side * side);
    for (int i = L - 1; i >= 0; i--) {
        nn_conv_dims_t d = stage_dims(m, i, B);
        relu_mask(a->dstage[i], a->stage[i], stage_numel(m, i, B));
        float *din = i > 0 ? a->dstage[i - 1] : NULL;
        if (din) zero(din, stage_numel(m, i - 1, B));
        nn_conv2d_backward(din, m->g.conv_w[i], m->g.conv_b[i], a->dcols, a->dstage[i], a->cols,
                           i > 0 ? a->stage[i - 1] : a->x, m->w.conv_w[i], &d);
    }
}

/* ---------------------------------------------------------------- text encoder */

/* Checks ids [B, T] and finds each caption's EOS position (its last non-PAD id). */
static int text_check(rerank_t *m, const int *ids, int B)
{
    const rerank_config_t *c = &m->c;
    const int T = c->text_len;
    for (int b = 0; b < B; b++) {
        const int *row = ids + (size_t)b * T;
        if (row[0] != c->bos_id) {
            snprintf(m->err, sizeof m->err, "rerank: caption %d does not start with BOS (%d)",
                     b, c->bos_id);
            return -1;
        }
        m->pool[b] = 0;
        for (int t = 0; t < T; t++) {
            if (row[t] < 0 || row[t] >= c->text_vocab) {
                snprintf(m->err, sizeof m->err, "rerank: text id %d at [%d, %d] is not in "
                         "[0, %d)", row[t], b, t, c->text_vocab);
                return -1;
            }
            if (row[t] != c->pad_id) m->pool[b] = t;
        }
    }
    return 0;
}

static void text_forward(rerank_t *m, const int *ids, int B)
{
    const rerank_config_t *c = &m->c;
    rr_acts_t *a = &m->a;
    const int T = c->text_len, d = c->text_width, E = c->embed_dim, N = B * T;
#pragma omp parallel for schedule(static) if ((size_t)N * d >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *tok = m->w.wte + (size_t)ids[n] * d, *pos = m->w.wpe + (size_t)(n % T) * d;
        float *o = a->encoded + (size_t)n * d;
        for (int k = 0; k < d; k++) o[k] = tok[k] + pos[k];
    }
    const float *x = a->encoded;
    for (int l = 0; l < c->text_layers; l++) {
        nn_block_forward(&a->h[l], a->tmp, x, &m->w.h[l], B, T, d, c->text_heads);
        x = a->h[l].res3;
    }
    for (int b = 0; b < B; b++)
        memcpy(a->pooled + (size_t)b * d, x + ((size_t)b * T + m->pool[b]) * d, d * sizeof(float));
    nn_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->pooled, m->w.lnf_w, m->w.lnf_b, B, d);
    nn_linear_forward(a->txt_raw, a->lnf, m->w.txt_proj_w, NULL, B, d, E);
    nn_l2norm_forward(a->txt_emb, a->txt_norm, a->txt_raw, B, E);
}

static void text_backward(rerank_t *m, const float *dtxt)
{
    const rerank_config_t *c = &m->c;
    rr_acts_t *a = &m->a;
    const int B = m->B, T = c->text_len, d = c->text_width, E = c->embed_dim, N = B * T;
    const size_t Nd = (size_t)N * d;
    zero(a->dtxt_raw, (size_t)B * E);
    nn_l2norm_backward(a->dtxt_raw, dtxt, a->txt_emb, a->txt_norm, B, E);
    float *dlnf = a->ds.dln;
    zero(dlnf, (size_t)B * d);
    nn_linear_backward(dlnf, m->g.txt_proj_w, NULL, a->dtxt_raw, a->lnf, m->w.txt_proj_w, B, d, E);
    zero(a->dpooled, (size_t)B * d);
    nn_layernorm_backward(a->dpooled, m->g.lnf_w, m->g.lnf_b, dlnf, a->pooled, m->w.lnf_w,
                          a->lnf_mean, a->lnf_rstd, B, d);
    /* only the EOS rows reach the embedding; every other row starts at zero */
    zero(a->dx, Nd);
    for (int b = 0; b < B; b++)
        memcpy(a->dx + ((size_t)b * T + m->pool[b]) * d, a->dpooled + (size_t)b * d,
               d * sizeof(float));
    for (int l = c->text_layers - 1; l >= 0; l--)
        nn_block_backward(a->dx, &m->g.h[l], &a->h[l], l ? a->h[l - 1].res3 : a->encoded,
                          &m->w.h[l], &a->ds, B, T, d, c->text_heads);
    for (int n = 0; n < N; n++) {
        const float *gx = a->dx + (size_t)n * d;
        float *tok = m->g.wte + (size_t)m->ids[n] * d, *pos = m->g.wpe + (size_t)(n % T) * d;
        for (int k = 0; k < d; k++) {
            tok[k] += gx[k];
            pos[k] += gx[k];
        }
    }
}

/* ---------------------------------------------------------------- both sides */

int rerank_encode(rerank_t *m, const float *images, const int *ids, int B)
{
    m->err[0] = 0;
    if (B < 1 || B > m->max_batch) {
        snprintf(m->err, sizeof m->err, "rerank: batch %d is not in [1, %d]", B, m->max_batch);
        return -1;
    }
    if (ids && text_check(m, ids, B)) return -1;
    m->B = B;
    m->has_images = images != NULL;
    m->has_text = ids != NULL;
    if (images) image_forward(m, images, B);
    if (ids) {
        memcpy(m->ids, ids, (size_t)B * m->c.text_len * sizeof(int));
        text_forward(m, ids, B);
    }
    return 0;
}

const float *rerank_image_emb(const rerank_t *m) { return m->a.img_emb; }
const float *rerank_text_emb(const rerank_t *m) { return m->a.txt_emb; }

void rerank_zero_grad(rerank_t *m)
{
    if (m->grads) zero(m->grads, m->n_params);
}

void rerank_backward(rerank_t *m, const float *dimg, const float *dtxt, float dlog_scale)
{
    if (!m->train || m->B < 1) return;
    if (dimg && m->has_images) image_backward(m, dimg);
    if (dtxt && m->has_text) text_backward(m, dtxt);
    m->g.logit_scale[0] += dlog_scale;
}

/* ---------------------------------------------------------------- the loss */

/* The gathered embeddings, the n x n logits and their softmaxes, as one block. */
static int reserve_loss(rerank_t *m, int n)
{
    if (n <= m->loss_cap) return 0;
    const size_t nE = (size_t)n * m->c.embed_dim, nn = (size_t)n * n;
    float *block = malloc((4 * nE + 4 * nn) * sizeof(float));
    if (!block) return -1;
    free(m->g_img);
    m->g_img = block;
    m->g_txt = block + nE; /* right after g_img: one all-reduce gathers both */
    m->dg_img = block + 2 * nE;
    m->dg_txt = block + 3 * nE;
    m->logits = block + 4 * nE;
    m->p_img = m->logits + nn;
    m->p_txt = m->p_img + nn;
    m->dlogits = m->p_txt + nn;
    m->loss_cap = n;
    return 0;
}

float rerank_forward(rerank_t *m, const float *images, const int *ids, int B,
                     const dvae_comm_t *comm)
{
    m->loss_n = 0;
    if (!images || !ids) {
        snprintf(m->err, sizeof m->err, "rerank: a training forward needs images and captions");
        return NAN;
    }
    if (rerank_encode(m, images, ids, B)) return NAN;
    const int ranks = comm && comm->size > 1 ? comm->size : 1, E = m->c.embed_dim;
    const int n = B * ranks, first = ranks > 1 ? comm->rank * B : 0;
    if (reserve_loss(m, n)) {
        snprintf(m->err, sizeof m->err, "rerank: out of memory for a batch of %d pairs", n);
        return NAN;
    }
    /* all-gather as a sum: every rank writes its rows into zeros, and x + 0 is exact */
    const size_t nE = (size_t)n * E, mine = (size_t)B * E;
    zero(m->g_img, 2 * nE);
    memcpy(m->g_img + (size_t)first * E, m->a.img_emb, mine * sizeof(float));
    memcpy(m->g_txt + (size_t)first * E, m->a.txt_emb, mine * sizeof(float));
    if (ranks > 1 && comm->allreduce_sum(m->g_img, 2 * nE, comm->ctx)) {
        snprintf(m->err, sizeof m->err, "rerank: gathering the embeddings of %d ranks failed",
                 ranks);
        return NAN;
    }
    m->loss_n = n;
    m->first = first;
    return nn_contrastive_forward(m->logits, m->p_img, m->p_txt, m->g_img, m->g_txt,
                                  m->w.logit_scale[0], n, E);
}

void rerank_backward_loss(rerank_t *m)
{
    const int n = m->loss_n, E = m->c.embed_dim;
    if (!m->train || n < 1) return;
    zero(m->dg_img, 2 * (size_t)n * E);
    float dls = 0.0f;
    nn_contrastive_backward(m->dg_img, m->dg_txt, &dls, m->dlogits, m->logits, m->p_img, m->p_txt,
                            m->g_img, m->g_txt, m->w.logit_scale[0], 1.0f, n, E);
    /* every rank computed the same dls; one of them adds it so the sum counts it once */
    rerank_backward(m, m->dg_img + (size_t)m->first * E, m->dg_txt + (size_t)m->first * E,
                    m->first == 0 ? dls : 0.0f);
}

const float *rerank_logits(const rerank_t *m) { return m->logits; }

/* ---------------------------------------------------------------- optimiser */

rerank_opt_t rerank_opt_default(void)
{
    rerank_opt_t o = {
        .lr = 1e-3f, .lr_min = 1e-5f, .warmup_steps = 200, .total_steps = 3000,
        .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .weight_decay = 0.1f, .grad_clip = 1.0f,
    };
    return o;
}

float rerank_lr_at(const rerank_opt_t *o, long step)
{
    return nn_lr_schedule(step, o->warmup_steps, o->total_steps, o->lr, o->lr_min);
}

float rerank_adamw_step(rerank_t *m, const rerank_opt_t *o, float lr)
{
    if (!m->train) return 0.0f;
    float norm = nn_clip_grad_norm(m->grads, m->n_params,
                                   o->grad_clip > 0 ? o->grad_clip : INFINITY);
    m->opt_t++;
    nn_adamw_t decay = {lr, o->beta1, o->beta2, o->eps, o->weight_decay};
    nn_adamw_t no_decay = decay;
    no_decay.weight_decay = 0.0f;
    for (int i = 0; i < m->n_tensors; i++) {
        rerank_tensor_t *t = &m->tensors[i];
        nn_adamw_step(t->param, t->grad, t->adam_m, t->adam_v, t->numel,
                      t->decay ? &decay : &no_decay, m->opt_t);
    }
    /* CLIP: logit_scale.clamp_(0, ln 100), so the logits are at most 100 x cosine */
    float *ls = m->w.logit_scale;
    const float max_ls = logf(100.0f);
    *ls = *ls < 0.0f ? 0.0f : *ls > max_ls ? max_ls : *ls;
    return norm;
}
