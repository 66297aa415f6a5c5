/* GPT-2's pre-LN transformer block, forward and backward, as a list of nn layers: shared by
 * the transformer and the scorer's text encoder. */
#include "nn/nn.h"

#include <string.h>

static void zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float));
}

void nn_block_forward(nn_block_acts_t *h, float *tmp, const float *x, const nn_block_t *w, int B,
                      int T, int C, int NH)
{
    const int N = B * T;
    nn_layernorm_forward(h->ln1, h->ln1_mean, h->ln1_rstd, x, w->ln1_w, w->ln1_b, N, C);
    nn_linear_forward(h->qkv, h->ln1, w->qkv_w, w->qkv_b, N, C, 3 * C);
    nn_attention_forward(h->atty, h->att, h->qkv, B, T, C, NH);
    nn_linear_forward(tmp, h->atty, w->attn_proj_w, w->attn_proj_b, N, C, C);
    nn_add(h->res2, x, tmp, (size_t)N * C);
    nn_layernorm_forward(h->ln2, h->ln2_mean, h->ln2_rstd, h->res2, w->ln2_w, w->ln2_b, N, C);
    nn_linear_forward(h->fch, h->ln2, w->fc_w, w->fc_b, N, C, 4 * C);
    nn_gelu_forward(h->fch_gelu, h->fch, (size_t)N * 4 * C);
    nn_linear_forward(tmp, h->fch_gelu, w->mlp_proj_w, w->mlp_proj_b, N, 4 * C, C);
    nn_add(h->res3, h->res2, tmp, (size_t)N * C);
}

void nn_block_backward(float *dx, const nn_block_t *g, const nn_block_acts_t *h, const float *x,
                       const nn_block_t *w, const nn_block_scratch_t *s, int B, int T, int C,
                       int NH)
{
    const int N = B * T;
    const size_t NC = (size_t)N * C;
    /* the MLP branch; the residual passes dx through and the branch adds to it */
    zero(s->dgelu, NC * 4);
    nn_linear_backward(s->dgelu, g->mlp_proj_w, g->mlp_proj_b, dx, h->fch_gelu, w->mlp_proj_w, N,
                       4 * C, C);
    zero(s->dfch, NC * 4);
    nn_gelu_backward(s->dfch, s->dgelu, h->fch, NC * 4);
    zero(s->dln, NC);
    nn_linear_backward(s->dln, g->fc_w, g->fc_b, s->dfch, h->ln2, w->fc_w, N, C, 4 * C);
    nn_layernorm_backward(dx, g->ln2_w, g->ln2_b, s->dln, h->res2, w->ln2_w, h->ln2_mean,
                          h->ln2_rstd, N, C);
    /* the attention branch */
    zero(s->datty, NC);
    nn_linear_backward(s->datty, g->attn_proj_w, g->attn_proj_b, dx, h->atty, w->attn_proj_w, N,
                       C, C);
    zero(s->dqkv, NC * 3);
    nn_attention_backward(s->dqkv, s->datt, s->datty, h->qkv, h->att, B, T, C, NH);
    zero(s->dln, NC);
    nn_linear_backward(s->dln, g->qkv_w, g->qkv_b, s->dqkv, h->ln1, w->qkv_w, N, C, 3 * C);
    nn_layernorm_backward(dx, g->ln1_w, g->ln1_b, s->dln, x, w->ln1_w, h->ln1_mean, h->ln1_rstd, N,
                          C);
}
