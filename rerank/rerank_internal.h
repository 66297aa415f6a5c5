/* The scorer's struct, shared by the rerank/ sources (not part of the public surface). */
#ifndef DALLEC_RERANK_INTERNAL_H
#define DALLEC_RERANK_INTERNAL_H

#include "nn/nn.h"
#include "rerank/rerank.h"

#include <stdarg.h>
#include <stdio.h>

#define RERANK_MAX_IMAGE_LAYERS 8
#define RERANK_MAX_TEXT_LAYERS 64
#define RERANK_MAX_PARAMS (1 << 28)

typedef struct {
    float *conv_w[RERANK_MAX_IMAGE_LAYERS], *conv_b[RERANK_MAX_IMAGE_LAYERS];
    float *img_proj_w;
    float *wte, *wpe;
    nn_block_t h[RERANK_MAX_TEXT_LAYERS];
    float *lnf_w, *lnf_b, *txt_proj_w;
    float *logit_scale;
} rr_weights_t;

typedef struct {
    /* image side, CNHW: x [3, B, S, S], stage i's output [C_i, B, s_i, s_i] post-ReLU */
    float *x, *stage[RERANK_MAX_IMAGE_LAYERS];
    float *flat;                          /* [B, F] the last map per image, CHW order */
    float *img_raw, *img_norm, *img_emb;  /* [B, E], [B], [B, E] */
    float *cols, *dcols;
    /* text side */
    float *encoded;                       /* [N, d] */
    nn_block_acts_t h[RERANK_MAX_TEXT_LAYERS]; /* the text blocks, N = B*T rows */
    float *pooled, *lnf, *lnf_mean, *lnf_rstd; /* [B, d], [B, d], [B], [B] */
    float *txt_raw, *txt_norm, *txt_emb;  /* [B, E], [B], [B, E] */
    float *tmp;                           /* [N, d] a branch's output before the residual add */
    /* backward scratch (training models only) */
    float *dstage[RERANK_MAX_IMAGE_LAYERS], *dflat, *dimg_raw, *dtxt_raw;
    float *dx, *dpooled;
    nn_block_scratch_t ds;                /* dln doubles as d(ln_f) */
} rr_acts_t;

struct rerank {
    rerank_config_t c;
    int max_batch, train;
    int n_tensors;
    rerank_tensor_t *tensors;
    size_t n_params;
    float *params, *grads, *adam_m, *adam_v;
    rr_weights_t w, g;                    /* carved from params and grads */
    float *act_block;
    rr_acts_t a;
    int *ids;                             /* the last encode's ids [B, T] */
    int *pool;                            /* [B] the EOS position of each caption */
    int B, has_images, has_text;          /* the last encode */
    /* the loss over the global batch (grown on demand by rerank_forward, outside steps
     * of a fixed batch) */
    int loss_cap, loss_n, first;          /* first: this rank's first row */
    float *g_img, *g_txt, *logits, *p_img, *p_txt, *dlogits, *dg_img, *dg_txt;
    float dlog_scale;
    long opt_t;
    char err[RERANK_ERR_SIZE];
};

/* Side of the last feature map and features per image of the flattened map. */
int rr_final_side(const rerank_config_t *c);
size_t rr_flat_size(const rerank_config_t *c);
int rr_stage_channels(const rerank_config_t *c, int i);

static inline int rr_fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int rr_fail(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, RERANK_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#endif
