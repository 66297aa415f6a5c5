/* One training step: forward with the loss, backward (the same layer list reversed),
 * AdamW with clipping and the learning-rate schedule. */
#include "transformer/gpt_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int gpt_drop_captions(const gpt_config_t *c, int *text, int B, nn_rng_t *rng)
{
    int dropped = 0;
    for (int b = 0; b < B; b++) {
        if (nn_rng_uniform(rng) >= c->p_null) continue;
        for (int t = 0; t < c->text_len; t++) text[(size_t)b * c->text_len + t] = c->pad_id;
        dropped++;
    }
    return dropped;
}

static int ids_in_range(gpt_t *m, const char *what, const int *ids, size_t n, int V)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            snprintf(m->err, sizeof m->err, "gpt: %s id %d at [%zu] is not in [0, %d)", what,
                     ids[i], i, V);
            return 0;
        }
    return 1;
}

const char *gpt_errmsg(const gpt_t *m) { return m->err; }

void gpt_loss_parts(const gpt_t *m, float *ce_text, float *ce_image)
{
    if (ce_text) *ce_text = m->ce_text;
    if (ce_image) *ce_image = m->ce_image;
}

const float *gpt_logits_text(const gpt_t *m) { return m->a.logits_text; }
const float *gpt_logits_image(const gpt_t *m) { return m->a.logits_image; }

/* ---------------------------------------------------------------- forward */

float gpt_forward(gpt_t *m, const int *text, const int *image, int B)
{
    const gpt_config_t *c = &m->c;
    const int T = c->text_len, G2 = c->grid * c->grid, L = T + G2, d = c->n_embd;
    const int NH = c->n_head, V = c->text_vocab, K = c->image_vocab, N = B * L;
    if (B < 1 || B > m->max_batch) {
        snprintf(m->err, sizeof m->err, "gpt: batch %d is not in [1, %d]", B, m->max_batch);
        return NAN;
    }
    if (!ids_in_range(m, "text", text, (size_t)B * T, V) ||
        !ids_in_range(m, "image", image, (size_t)B * G2, K))
        return NAN;
    m->B = B;
    memcpy(m->in_text, text, (size_t)B * T * sizeof(int));
    memcpy(m->in_image, image, (size_t)B * G2 * sizeof(int));
    gpt_acts_t *a = &m->a;

#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        gpt_embed_positions(m, a->encoded + (size_t)b * L * d, text + (size_t)b * T,
                            image + (size_t)b * G2, 0, L);
    const float *x = a->encoded;
    for (int l = 0; l < c->n_layer; l++) {
        nn_block_forward(&a->h[l], a->tmp, x, &m->w.h[l], B, L, d, NH);
        x = a->h[l].res3;
    }
    nn_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, m->w.lnf_w, m->w.lnf_b, N, d);
    /* positions 0..T-1 of each sequence read the text head, T..L-1 the image head */
    for (int b = 0; b < B; b++) {
        const float *row = a->lnf + (size_t)b * L * d;
        nn_linear_forward(a->logits_text + (size_t)b * T * V, row, m->w.head_text_w,
                          m->w.head_text_b, T, d, V);
        nn_linear_forward(a->logits_image + (size_t)b * G2 * K, row + (size_t)T * d,
                          m->w.head_image_w, m->w.head_image_b, G2, d, K);
    }
    m->ce_text = nn_cross_entropy_forward(a->probs_text, a->logits_text, text, NULL, c->pad_id,
                                          B * T, V);
    m->ce_image = nn_cross_entropy_forward(a->probs_image, a->logits_image, image, NULL, -1,
                                           B * G2, K);
    m->loss = (c->loss_w_text * m->ce_text + c->loss_w_image * m->ce_image) /
              (c->loss_w_text + c->loss_w_image);
    return m->loss;
}

/* ---------------------------------------------------------------- backward */

void gpt_zero_grad(gpt_t *m)
{
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

static void zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float));
}

static void embed_backward(gpt_t *m, const float *dx)
{
    const gpt_config_t *c = &m->c;
    const int T = c->text_len, G = c->grid, G2 = G * G, L = T + G2, d = c->n_embd;
    for (int b = 0; b < m->B; b++) {
        const int *text = m->in_text + (size_t)b * T, *image = m->in_image + (size_t)b * G2;
        for (int p = 0; p < L; p++) {
            const float *g = dx + ((size_t)b * L + p) * d;
            float *tok, *pos1, *pos2 = NULL;
            if (p <= T) {
                tok = m->g.wte_text + (size_t)(p == 0 ? c->bos_id : text[p - 1]) * d;
                pos1 = m->g.wpe_text + (size_t)p * d;
            } else {
                int i = p - T - 1;
                tok = m->g.wte_image + (size_t)image[i] * d;
                pos1 = m->g.wpe_row + (size_t)(i / G) * d;
                pos2 = m->g.wpe_col + (size_t)(i % G) * d;
            }
            for (int k = 0; k < d; k++) {
                tok[k] += g[k];
                pos1[k] += g[k];
            }
            if (pos2)
                for (int k = 0; k < d; k++) pos2[k] += g[k];
        }
    }
}

void gpt_backward(gpt_t *m)
{
    gpt_backward_scaled(m, 1.0f, 1.0f);
}

void gpt_backward_scaled(gpt_t *m, float text_scale, float image_scale)
{
    const gpt_config_t *c = &m->c;
    const int B = m->B, T = c->text_len, G2 = c->grid * c->grid, L = T + G2, d = c->n_embd;
    const int NH = c->n_head, V = c->text_vocab, K = c->image_vocab, N = B * L;
    const size_t Nd = (size_t)N * d;
    gpt_acts_t *a = &m->a;
    if (B < 1) return;
    const float wsum = c->loss_w_text + c->loss_w_image;

    zero(a->dlogits_text, (size_t)B * T * V);
    zero(a->dlogits_image, (size_t)B * G2 * K);
    nn_cross_entropy_backward(a->dlogits_text, a->probs_text, m->in_text, NULL, c->pad_id,
                              text_scale * c->loss_w_text / wsum, B * T, V);
    nn_cross_entropy_backward(a->dlogits_image, a->probs_image, m->in_image, NULL, -1,
                              image_scale * c->loss_w_image / wsum, B * G2, K);
    zero(a->dln, Nd);  /* d(lnf) */
    for (int b = 0; b < B; b++) {
        const float *row = a->lnf + (size_t)b * L * d;
        float *drow = a->dln + (size_t)b * L * d;
        nn_linear_backward(drow, m->g.head_text_w, m->g.head_text_b,
                           a->dlogits_text + (size_t)b * T * V, row, m->w.head_text_w, T, d, V);
        nn_linear_backward(drow + (size_t)T * d, m->g.head_image_w, m->g.head_image_b,
                           a->dlogits_image + (size_t)b * G2 * K, row + (size_t)T * d,
                           m->w.head_image_w, G2, d, K);
    }
    zero(a->dx, Nd);
    const float *x_last = a->h[c->n_layer - 1].res3;
    nn_layernorm_backward(a->dx, m->g.lnf_w, m->g.lnf_b, a->dln, x_last, m->w.lnf_w,
                          a->lnf_mean, a->lnf_rstd, N, d);

    /* a->dx holds d(loss)/d(the block's output); each residual add passes it through
     * unchanged, so the branches accumulate into it in place. */
    const nn_block_scratch_t s = {a->dln, a->datty, a->dqkv, a->datt, a->dfch, a->dgelu};
    for (int l = c->n_layer - 1; l >= 0; l--)
        nn_block_backward(a->dx, &m->g.h[l], &a->h[l], l ? a->h[l - 1].res3 : a->encoded,
                          &m->w.h[l], &s, B, L, d, NH);
    embed_backward(m, a->dx);
}

/* ---------------------------------------------------------------- optimiser */

gpt_opt_t gpt_opt_default(void)
{
    gpt_opt_t o = {
        .lr = 3e-4f, .lr_min = 3e-5f, .warmup_steps = 100, .total_steps = 10000,
        .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .grad_clip = 1.0f,
    };
    return o;
}

float gpt_lr_at(const gpt_opt_t *o, long step)
{
    if (step < o->warmup_steps) return o->lr * (float)(step + 1) / (float)o->warmup_steps;
    long span = o->total_steps - o->warmup_steps;
    if (span <= 0 || step >= o->total_steps) return o->lr_min;
    double progress = (double)(step - o->warmup_steps) / (double)span;
    return (float)(o->lr_min + 0.5 * (o->lr - o->lr_min) * (1.0 + cos(M_PI * progress)));
}

float gpt_adamw_step(gpt_t *m, const gpt_opt_t *o, float lr)
{
    if (!m->grads) return 0.0f;
    float norm = nn_clip_grad_norm(m->grads, m->n_params,
                                   o->grad_clip > 0 ? o->grad_clip : INFINITY);
    m->opt_t++;
    nn_adamw_t decay = {lr, o->beta1, o->beta2, o->eps, o->weight_decay};
    nn_adamw_t no_decay = decay;
    no_decay.weight_decay = 0.0f;
    for (int i = 0; i < m->n_tensors; i++) {
        gpt_tensor_t *t = &m->tensors[i];
        nn_adamw_step(t->param, t->grad, t->adam_m, t->adam_v, t->numel,
                      t->decay ? &decay : &no_decay, m->opt_t);
    }
    return norm;
}

long gpt_opt_steps(const gpt_t *m) { return m->opt_t; }
void gpt_set_opt_steps(gpt_t *m, long t) { m->opt_t = t; }

double gpt_train_flops(const gpt_config_t *c, int B)
{
    const double d = c->n_embd, L = gpt_seq_len(c), N = (double)B * L;
    const double G2 = (double)c->grid * c->grid;
    /* forward multiply-adds: qkv, proj, fc, mlp proj (12 d^2 per row), attention's two
     * products over the causal blocks of the L x L square that the sgemms compute, the
     * heads; the backward does twice the forward's products */
    double macs = c->n_layer * (N * 12.0 * d * d + 2.0 * B * nn_attention_pairs((int)L) * d) +
                  B * ((double)c->text_len * c->text_vocab + G2 * c->image_vocab) * d;
    return 3.0 * 2.0 * macs;
}
