/* The model struct shared by the transformer/ sources (not part of the public surface). */
#ifndef DALLEC_GPT_INTERNAL_H
#define DALLEC_GPT_INTERNAL_H

#include "transformer/transformer.h"

/* One block's tensors (nn's pre-LN block); the same struct names parameters and
 * gradients. */
typedef nn_block_t gpt_block_t;

typedef struct {
    float *wte_text, *wte_image, *wpe_text, *wpe_row, *wpe_col;
    gpt_block_t *h; /* [n_layer] */
    float *lnf_w, *lnf_b, *head_text_w, *head_text_b, *head_image_w, *head_image_b;
} gpt_weights_t;

/* One block's saved activations, N = B*L rows. */
typedef nn_block_acts_t gpt_block_acts_t;

typedef struct {
    float *encoded;                   /* [N, d] embeddings: block 0's input */
    gpt_block_acts_t *h;              /* [n_layer] */
    float *lnf, *lnf_mean, *lnf_rstd; /* [N, d], [N], [N] */
    float *logits_text, *probs_text;  /* [B, T, V_text] */
    float *logits_image, *probs_image;/* [B, G*G, K] */
    float *tmp;                       /* [N, d] a branch's output before the residual add */
    /* backward scratch, reused by every block */
    float *dx, *dln, *datty, *dqkv, *datt, *dfch, *dgelu;
    float *dlogits_text, *dlogits_image;
} gpt_acts_t;

struct gpt {
    gpt_config_t c;
    int max_batch;
    int n_tensors;
    gpt_tensor_t *tensors;
    size_t n_params;
    float *params, *grads, *adam_m, *adam_v;
    gpt_weights_t w, g;               /* carved from params and grads */
    float *act_block;
    gpt_acts_t a;
    int *in_text, *in_image;          /* the last forward's ids [B, T], [B, G*G] */
    int B;                            /* the last forward's batch, 0 before any */
    float loss, ce_text, ce_image;
    long opt_t;
    char err[GPT_ERR_SIZE];
};

/* Adds the embeddings of the tokens at positions [p0, p0+S) of one sequence to x [S, d]
 * (overwrites): tok(p) as the sequence table of transformer.h; text [T] (NULL: a null
 * caption), image ids by index. Shared by the training forward and the sampler. */
void gpt_embed_positions(const gpt_t *m, float *x, const int *text, const int *image,
                         int p0, int S);

#endif
