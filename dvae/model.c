/* The dVAE: parameters, forward, backward, encode and decode. See dvae.h for the
 * architecture; activations are CNHW throughout (nn/nn.h). */
#include "dvae/dvae.h"

#include "nn/nn.h"
#include "nn/nn_math.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- config */

dvae_config_t dvae_config_default(void)
{
    dvae_config_t c = {
        .image_size = 64, .layers = 3, .channels = 64, .res_blocks = 2,
        .codebook_size = 512, .code_dim = 256, .straight_through = 0,
        .tau_start = 1.0f, .tau_min = 0.0625f, .tau_decay = 1e-4f, .kl_weight = 1e-3f,
    };
    return c;
}

int dvae_config_check(const dvae_config_t *c, char err[256])
{
    const char *bad = 0;
    if (c->image_size < 8 || c->image_size > 1024) bad = "image size must be in [8, 1024]";
    else if (c->layers < 1 || c->layers > 6) bad = "layers must be in [1, 6]";
    else if (c->image_size % (1 << c->layers) != 0) bad = "image size must be divisible by 2^layers";
    else if (c->channels < 1 || c->channels > 4096) bad = "channels must be in [1, 4096]";
    else if (c->res_blocks < 0 || c->res_blocks > 64) bad = "res blocks must be in [0, 64]";
    else if (c->codebook_size < 2 || c->codebook_size > 65536) bad = "codebook size must be in [2, 65536]";
    else if (c->code_dim < 1 || c->code_dim > 4096) bad = "code dim must be in [1, 4096]";
    else if (!(c->tau_start > 0) || !(c->tau_min > 0)) bad = "temperatures must be positive";
    else if (!(c->tau_decay >= 0) || !(c->kl_weight >= 0)) bad = "tau decay and KL weight must be >= 0";
    else if (4 * c->layers + 12 * c->res_blocks + 7 > 512)
        bad = "too many layers: 4*layers + 12*res_blocks + 7 must be at most 512 tensors";
    if (bad) snprintf(err, 256, "dvae config: %s", bad);
    return bad ? -1 : 0;
}

int dvae_grid_size(const dvae_config_t *c)
{
    return c->image_size >> c->layers;
}

float dvae_tau(const dvae_config_t *c, long step)
{
    float t = c->tau_start * expf(-c->tau_decay * (float)step);
    return t > c->tau_min ? t : c->tau_min;
}

/* ---------------------------------------------------------------- the model struct */

typedef struct {
    float *w, *b;
    nn_conv_dims_t d; /* B = max_batch; each call sets the batch it runs */
    int transposed;
} conv_t;

/* x + c3(relu(c2(relu(c1(x))))): h1, h2 post-ReLU, out the block's output */
typedef struct {
    conv_t c1, c2, c3;
    float *h1, *h2, *out;
    float *dh1, *dh2, *dout;
} res_t;

#define MAX_TENSORS 512

struct dvae {
    dvae_config_t c;
    int G, max_batch, B;
    /* parameters */
    int ntensors;
    dvae_tensor_t t[MAX_TENSORS];
    char names[MAX_TENSORS][64];
    size_t nparams;
    float *params, *grads;
    conv_t *enc, *up, dec_in, out;
    res_t *enc_res, *dec_res;
    float *logit_w, *logit_b; /* [K, C], [K] */
    float *codebook;          /* [K, D] */
    /* activations (sized for max_batch) and their gradients */
    float *acts, *dacts;
    float *x;                       /* [3, B, S, S] */
    float **enc_act, **denc_act;    /* L x [C, B, S/2^(i+1), ...], post-ReLU */
    float *logits, *q, *y_soft, *y; /* [N, K], N = B*G*G */
    float *dlogits, *dy;
    float *zT, *dzT;                /* [D, N] */
    float *dec_h, *ddec_h;          /* [C, N], output of dec_in */
    float **up_act, **dup_act;      /* L, post-ReLU */
    float *xhat, *dxhat;            /* [3, B, S, S] */
    float *cols, *dcols;
    float *lse, *row_kl;            /* [N]: log-sum-exp of each cell's logits, its KL */
    double *code_mean;              /* [K] scratch for statistics */
    int *code_seen;                 /* [K] */
    /* the last forward */
    float tau;
    float loss;
};

static float *grad_of(dvae_t *m, const float *p)
{
    return m->grads + (p - m->params);
}

/* ---------------------------------------------------------------- building */

typedef struct {
    dvae_t *m;
    size_t offset;
    float **slots[MAX_TENSORS]; /* where to store each tensor's pointer */
} builder_t;

static void add_tensor(builder_t *bld, float **slot, const char *name, int d0, int d1, int d2,
                       int d3)
{
    dvae_t *m = bld->m;
    int i = m->ntensors++;
    dvae_tensor_t *t = &m->t[i];
    snprintf(m->names[i], sizeof m->names[i], "%s", name);
    t->name = m->names[i];
    t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2, t->shape[3] = d3;
    t->ndim = d3 > 1 ? 4 : d2 > 1 ? 3 : d1 > 1 ? 2 : 1;
    if (d0 > 0 && d1 == 1 && d2 == 1 && d3 == 1) t->ndim = 1;
    t->numel = (size_t)d0 * d1 * d2 * d3;
    t->data = (float *)(uintptr_t)bld->offset; /* an offset until the block exists */
    bld->slots[i] = slot;
    bld->offset += t->numel;
}

static void add_conv(builder_t *bld, conv_t *cv, const char *name, int B, int C, int H, int W,
                     int OC, int K, int stride, int pad, int transposed)
{
    char n[64];
    cv->d = (nn_conv_dims_t){B, C, H, W, OC, K, stride, pad};
    cv->transposed = transposed;
    snprintf(n, sizeof n, "%s.w", name);
    if (transposed)
        add_tensor(bld, &cv->w, n, C, OC, K, K);
    else
        add_tensor(bld, &cv->w, n, OC, C, K, K);
    /* a 4-d conv weight stays 4-d even where K = 1, as PyTorch's */
    bld->m->t[bld->m->ntensors - 1].ndim = 4;
    snprintf(n, sizeof n, "%s.b", name);
    add_tensor(bld, &cv->b, n, OC, 1, 1, 1);
}

static void add_res(builder_t *bld, res_t *r, const char *name, int B, int C, int G)
{
    char n[48];
    snprintf(n, sizeof n, "%s.conv1", name);
    add_conv(bld, &r->c1, n, B, C, G, G, C, 3, 1, 1, 0);
    snprintf(n, sizeof n, "%s.conv2", name);
    add_conv(bld, &r->c2, n, B, C, G, G, C, 3, 1, 1, 0);
    snprintf(n, sizeof n, "%s.conv3", name);
    add_conv(bld, &r->c3, n, B, C, G, G, C, 1, 1, 0, 0);
}

static size_t conv_cols(const conv_t *cv)
{
    return cv->transposed ? nn_convt2d_cols_size(&cv->d) : nn_conv2d_cols_size(&cv->d);
}

int dvae_create(dvae_t **out, const dvae_config_t *c, int max_batch, char err[256])
{
    *out = 0;
    if (dvae_config_check(c, err)) return -1;
    if (max_batch < 1 || max_batch > 4096) {
        snprintf(err, 256, "dvae: batch %d out of range [1, 4096]", max_batch);
        return -1;
    }
    dvae_t *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->c = *c;
    m->G = dvae_grid_size(c);
    m->max_batch = max_batch;
    const int B = max_batch, S = c->image_size, L = c->layers, C = c->channels;
    const int R = c->res_blocks, K = c->codebook_size, D = c->code_dim, G = m->G;
    /* conv weights and biases: 2 per encoder and decoder stage, 6 per residual block in
     * each half, and the logits, codebook, dec.in and dec.out (dvae_config_check) */
    if (4 * L + 12 * R + 7 > MAX_TENSORS) {
        snprintf(err, 256, "dvae: too many layers");
        free(m);
        return -1;
    }
    m->enc = calloc((size_t)L, sizeof *m->enc);
    m->up = calloc((size_t)L, sizeof *m->up);
    m->enc_res = calloc((size_t)R + 1, sizeof *m->enc_res);
    m->dec_res = calloc((size_t)R + 1, sizeof *m->dec_res);
    m->enc_act = calloc((size_t)L, sizeof(float *));
    m->denc_act = calloc((size_t)L, sizeof(float *));
    m->up_act = calloc((size_t)L, sizeof(float *));
    m->dup_act = calloc((size_t)L, sizeof(float *));
    m->code_mean = calloc((size_t)K, sizeof(double));
    m->code_seen = calloc((size_t)K, sizeof(int));
    m->lse = malloc((size_t)max_batch * m->G * m->G * sizeof(float));
    m->row_kl = malloc((size_t)max_batch * m->G * m->G * sizeof(float));
    if (!m->enc || !m->up || !m->enc_res || !m->dec_res || !m->enc_act || !m->denc_act ||
        !m->up_act || !m->dup_act || !m->code_mean || !m->code_seen || !m->lse || !m->row_kl)
        goto oom;

    /* parameters, in the order of the tensor table */
    builder_t bld;
    memset(&bld, 0, sizeof bld);
    bld.m = m;
    char n[40];
    for (int i = 0, s = S; i < L; i++, s /= 2) {
        snprintf(n, sizeof n, "dvae.enc.conv%d", i);
        add_conv(&bld, &m->enc[i], n, B, i == 0 ? 3 : C, s, s, C, 4, 2, 1, 0);
    }
    for (int j = 0; j < R; j++) {
        snprintf(n, sizeof n, "dvae.enc.res%d", j);
        add_res(&bld, &m->enc_res[j], n, B, C, G);
    }
    add_tensor(&bld, &m->logit_w, "dvae.enc.logits.w", K, C, 1, 1);
    m->t[m->ntensors - 1].ndim = 4;
    add_tensor(&bld, &m->logit_b, "dvae.enc.logits.b", K, 1, 1, 1);
    add_tensor(&bld, &m->codebook, "dvae.codebook", K, D, 1, 1);
    add_conv(&bld, &m->dec_in, "dvae.dec.in", B, D, G, G, C, 1, 1, 0, 0);
    for (int j = 0; j < R; j++) {
        snprintf(n, sizeof n, "dvae.dec.res%d", j);
        add_res(&bld, &m->dec_res[j], n, B, C, G);
    }
    for (int i = 0, s = G; i < L; i++, s *= 2) {
        snprintf(n, sizeof n, "dvae.dec.up%d", i);
        add_conv(&bld, &m->up[i], n, B, C, s, s, C, 4, 2, 1, 1);
    }
    add_conv(&bld, &m->out, "dvae.dec.out", B, C, S, S, 3, 1, 1, 0, 0);

    m->nparams = bld.offset;
    m->params = calloc(m->nparams, sizeof(float));
    m->grads = calloc(m->nparams, sizeof(float));
    if (!m->params || !m->grads) goto oom;
    for (int i = 0; i < m->ntensors; i++) {
        size_t off = (size_t)(uintptr_t)m->t[i].data;
        m->t[i].data = m->params + off;
        m->t[i].grad = m->grads + off;
        *bld.slots[i] = m->t[i].data;
    }

    /* activations: one block carved in order, and its mirror for gradients */
    const size_t N = (size_t)B * G * G, img = (size_t)3 * B * S * S;
    size_t sizes[64 + 6 * 64], total = 0;
    int ns = 0;
    sizes[ns++] = img; /* x */
    for (int i = 0, s = S / 2; i < L; i++, s /= 2) sizes[ns++] = (size_t)C * B * s * s;
    for (int j = 0; j < R; j++)
        for (int k = 0; k < 3; k++) sizes[ns++] = (size_t)C * N;
    for (int k = 0; k < 4; k++) sizes[ns++] = N * K; /* logits, q, y_soft, y */
    sizes[ns++] = (size_t)D * N;                     /* zT */
    sizes[ns++] = (size_t)C * N;                     /* dec_h */
    for (int j = 0; j < R; j++)
        for (int k = 0; k < 3; k++) sizes[ns++] = (size_t)C * N;
    for (int i = 0, s = 2 * G; i < L; i++, s *= 2) sizes[ns++] = (size_t)C * B * s * s;
    sizes[ns++] = img; /* xhat */
    for (int i = 0; i < ns; i++) total += sizes[i];
    m->acts = malloc(total * sizeof(float));
    m->dacts = malloc(total * sizeof(float));
    size_t cols = 0;
    for (int i = 0; i < L; i++) {
        size_t a = conv_cols(&m->enc[i]), b = conv_cols(&m->up[i]);
        cols = a > cols ? a : cols;
        cols = b > cols ? b : cols;
    }
    if (R > 0) {
        size_t a = conv_cols(&m->enc_res[0].c1);
        cols = a > cols ? a : cols;
    }
    m->cols = malloc((cols ? cols : 1) * sizeof(float));
    m->dcols = malloc((cols ? cols : 1) * sizeof(float));
    if (!m->acts || !m->dacts || !m->cols || !m->dcols) goto oom;
    float *a = m->acts, *da = m->dacts;
    int k = 0;
#define CARVE(p, dp)          \
    do {                      \
        (p) = a, (dp) = da;   \
        a += sizes[k];        \
        da += sizes[k++];     \
    } while (0)
    float *unused;
    CARVE(m->x, unused);
    for (int i = 0; i < L; i++) CARVE(m->enc_act[i], m->denc_act[i]);
    for (int j = 0; j < R; j++) {
        CARVE(m->enc_res[j].h1, m->enc_res[j].dh1);
        CARVE(m->enc_res[j].h2, m->enc_res[j].dh2);
        CARVE(m->enc_res[j].out, m->enc_res[j].dout);
    }
    CARVE(m->logits, m->dlogits);
    CARVE(m->q, unused);
    CARVE(m->y_soft, unused);
    CARVE(m->y, m->dy);
    CARVE(m->zT, m->dzT);
    CARVE(m->dec_h, m->ddec_h);
    for (int j = 0; j < R; j++) {
        CARVE(m->dec_res[j].h1, m->dec_res[j].dh1);
        CARVE(m->dec_res[j].h2, m->dec_res[j].dh2);
        CARVE(m->dec_res[j].out, m->dec_res[j].dout);
    }
    for (int i = 0; i < L; i++) CARVE(m->up_act[i], m->dup_act[i]);
    CARVE(m->xhat, m->dxhat);
#undef CARVE
    (void)unused;
    *out = m;
    return 0;
oom:
    snprintf(err, 256, "dvae: out of memory for batch %d", max_batch);
    dvae_free(m);
    return -1;
}

void dvae_free(dvae_t *m)
{
    if (!m) return;
    free(m->enc); free(m->up); free(m->enc_res); free(m->dec_res);
    free(m->enc_act); free(m->denc_act); free(m->up_act); free(m->dup_act);
    free(m->code_mean); free(m->code_seen); free(m->lse); free(m->row_kl);
    free(m->params); free(m->grads); free(m->acts); free(m->dacts);
    free(m->cols); free(m->dcols);
    free(m);
}

const dvae_config_t *dvae_config(const dvae_t *m) { return &m->c; }
int dvae_tensor_count(const dvae_t *m) { return m->ntensors; }
dvae_tensor_t dvae_tensor(const dvae_t *m, int i) { return m->t[i]; }
size_t dvae_param_count(const dvae_t *m) { return m->nparams; }
float *dvae_params(dvae_t *m) { return m->params; }
float *dvae_grads(dvae_t *m) { return m->grads; }
const float *dvae_logits(const dvae_t *m) { return m->logits; }

void dvae_init_params(dvae_t *m, uint64_t seed)
{
    nn_rng_t rng;
    nn_rng_seed(&rng, seed);
    for (int i = 0; i < m->ntensors; i++) {
        dvae_tensor_t *t = &m->t[i];
        if (t->data == m->codebook) {
            nn_rng_fill_normal(&rng, t->data, t->numel, 0.0f, 1.0f);
            continue;
        }
        /* a weight and the bias after it share fan_in: dim 1 x kernel area */
        const dvae_tensor_t *w = (t->ndim == 1 && i > 0) ? &m->t[i - 1] : t;
        int fan_in = w->shape[1] * w->shape[2] * w->shape[3];
        float bound = 1.0f / sqrtf((float)fan_in);
        nn_rng_fill_uniform(&rng, t->data, t->numel, -bound, bound);
    }
}

/* ---------------------------------------------------------------- layer helpers */

static void conv_forward(dvae_t *m, conv_t *cv, float *out, const float *in)
{
    nn_conv_dims_t d = cv->d;
    d.B = m->B;
    if (cv->transposed)
        nn_convt2d_forward(out, m->cols, in, cv->w, cv->b, &d);
    else
        nn_conv2d_forward(out, m->cols, in, cv->w, cv->b, &d);
}

static void conv_backward(dvae_t *m, conv_t *cv, float *din, const float *dout, const float *in)
{
    nn_conv_dims_t d = cv->d;
    d.B = m->B;
    if (cv->transposed)
        nn_convt2d_backward(din, grad_of(m, cv->w), grad_of(m, cv->b), m->cols, dout, in, cv->w,
                            &d);
    else
        nn_conv2d_backward(din, grad_of(m, cv->w), grad_of(m, cv->b), m->dcols, dout, m->cols,
                           in, cv->w, &d);
}

static size_t conv_out_numel(const dvae_t *m, const conv_t *cv)
{
    const nn_conv_dims_t *d = &cv->d;
    int oh = cv->transposed ? nn_convt2d_out_size(d->H, d->K, d->stride, d->pad)
                            : nn_conv2d_out_size(d->H, d->K, d->stride, d->pad);
    return (size_t)d->OC * m->B * oh * oh;
}

static size_t conv_in_numel(const dvae_t *m, const conv_t *cv)
{
    return (size_t)cv->d.C * m->B * cv->d.H * cv->d.W;
}

static void relu_inplace(float *x, size_t n)
{
    nn_relu_forward(x, x, n);
}

/* d = d where out > 0, else 0: the ReLU's backward done in place */
static void relu_mask(float *d, const float *out, size_t n)
{
#pragma omp parallel for schedule(static) if ((size_t)n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        if (out[i] <= 0.0f) d[i] = 0.0f;
}

static void zero(float *x, size_t n)
{
    memset(x, 0, n * sizeof(float));
}

static const float *res_forward(dvae_t *m, res_t *r, const float *x)
{
    size_t n = conv_out_numel(m, &r->c1);
    conv_forward(m, &r->c1, r->h1, x);
    relu_inplace(r->h1, n);
    conv_forward(m, &r->c2, r->h2, r->h1);
    relu_inplace(r->h2, n);
    conv_forward(m, &r->c3, r->out, r->h2);
    nn_add(r->out, r->out, x, n);
    return r->out;
}

/* dx += d(out)/dx given r->dout */
static void res_backward(dvae_t *m, res_t *r, float *dx, const float *x)
{
    size_t n = conv_out_numel(m, &r->c1);
    zero(r->dh2, n);
    conv_backward(m, &r->c3, r->dh2, r->dout, r->h2);
    relu_mask(r->dh2, r->h2, n);
    zero(r->dh1, n);
    conv_backward(m, &r->c2, r->dh1, r->dh2, r->h1);
    relu_mask(r->dh1, r->h1, n);
    nn_add(dx, dx, r->dout, n);
    conv_backward(m, &r->c1, dx, r->dh1, x);
}

/* ---------------------------------------------------------------- encoder, decoder */

/* Encoder to logits [N, K]. Returns the encoder's last feature map [C, N]. */
static const float *encode_logits(dvae_t *m, const float *x, int B)
{
    const dvae_config_t *c = &m->c;
    m->B = B;
    nn_nchw_to_cnhw(m->x, x, B, 3, c->image_size * c->image_size);
    const float *h = m->x;
    for (int i = 0; i < c->layers; i++) {
        conv_forward(m, &m->enc[i], m->enc_act[i], h);
        relu_inplace(m->enc_act[i], conv_out_numel(m, &m->enc[i]));
        h = m->enc_act[i];
    }
    for (int j = 0; j < c->res_blocks; j++) h = res_forward(m, &m->enc_res[j], h);
    /* logits [N, K] = h^T [N, C] @ w^T [C, K] + b: a 1x1 convolution whose output is
     * laid out one row per cell, as the quantiser wants it */
    const int N = B * m->G * m->G, K = c->codebook_size, C = c->channels;
#pragma omp parallel for schedule(static) if ((size_t)N * K >= NN_PARALLEL_MIN)
    for (int r = 0; r < N; r++) memcpy(m->logits + (size_t)r * K, m->logit_b, (size_t)K * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, N, K, C, 1.0f, h, N, m->logit_w, C, 1.0f,
                m->logits, K);
    return h;
}

/* Decoder from m->zT [D, N] to m->xhat [3, B, S, S]. */
static void decode_from_codes(dvae_t *m)
{
    const dvae_config_t *c = &m->c;
    conv_forward(m, &m->dec_in, m->dec_h, m->zT);
    const float *h = m->dec_h;
    for (int j = 0; j < c->res_blocks; j++) h = res_forward(m, &m->dec_res[j], h);
    for (int i = 0; i < c->layers; i++) {
        conv_forward(m, &m->up[i], m->up_act[i], h);
        relu_inplace(m->up_act[i], conv_out_numel(m, &m->up[i]));
        h = m->up_act[i];
    }
    conv_forward(m, &m->out, m->xhat, h);
}

/* ---------------------------------------------------------------- training */

/* KL(q || uniform) averaged over cells, q = softmax(logits) stored in m->q;
 * also fills the code statistics. log q = logits - lse, so the KL and its gradient need
 * one log per cell, not one per code. */
static float kl_and_stats(dvae_t *m, int N, dvae_stats_t *st)
{
    const int K = m->c.codebook_size;
    const float logK = logf((float)K);
    double kl = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : kl) if ((size_t)N * K >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *l = m->logits + (size_t)n * K;
        float *q = m->q + (size_t)n * K, mx = l[0], sum = 0.0f;
        for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
        for (int k = 0; k < K; k++) {
            q[k] = nn_expf(l[k] - mx);
            sum += q[k];
        }
        const float inv = 1.0f / sum, lse = mx + logf(sum);
        double row = 0.0;
        for (int k = 0; k < K; k++) {
            q[k] *= inv;
            row += (double)q[k] * (double)(l[k] - lse + logK);
        }
        m->lse[n] = lse;
        m->row_kl[n] = (float)row;
        kl += row;
    }
    if (st) {
        memset(m->code_mean, 0, (size_t)K * sizeof(double));
        memset(m->code_seen, 0, (size_t)K * sizeof(int));
        for (int n = 0; n < N; n++) {
            const float *q = m->q + (size_t)n * K;
            int best = 0;
            for (int k = 0; k < K; k++) {
                m->code_mean[k] += q[k];
                if (q[k] > q[best]) best = k;
            }
            m->code_seen[best] = 1;
        }
        double ent = 0.0;
        int used = 0;
        for (int k = 0; k < K; k++) {
            double p = m->code_mean[k] / N;
            if (p > 0) ent -= p * log(p);
            used += m->code_seen[k];
        }
        st->perplexity = (float)exp(ent);
        st->used_codes = used;
    }
    return (float)(kl / N);
}

float dvae_forward(dvae_t *m, const float *x, int B, const float *noise, float tau,
                   dvae_stats_t *stats)
{
    const dvae_config_t *c = &m->c;
    const int N = B * m->G * m->G, K = c->codebook_size, D = c->code_dim;
    encode_logits(m, x, B);
    float kl = kl_and_stats(m, N, stats);
    m->tau = tau;
    nn_gumbel_softmax_forward(m->y, m->y_soft, m->logits, noise, tau, c->straight_through, N, K);
    /* zT [D, N] = E^T [D, K] @ y^T [K, N] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, D, N, K, 1.0f, m->codebook, D, m->y, K,
                0.0f, m->zT, N);
    decode_from_codes(m);
    const size_t n = (size_t)3 * B * c->image_size * c->image_size;
    double se = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : se) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        double e = (double)m->xhat[i] - m->x[i];
        se += e * e;
    }
    float mse = (float)(se / (double)n);
    m->loss = mse + c->kl_weight * kl;
    if (stats) {
        stats->loss = m->loss;
        stats->mse = mse;
        stats->kl = kl;
    }
    return m->loss;
}

void dvae_zero_grad(dvae_t *m)
{
    memset(m->grads, 0, m->nparams * sizeof(float));
}

void dvae_backward(dvae_t *m)
{
    const dvae_config_t *c = &m->c;
    const int B = m->B, L = c->layers, R = c->res_blocks, K = c->codebook_size;
    const int D = c->code_dim, C = c->channels, N = B * m->G * m->G;
    const size_t nimg = (size_t)3 * B * c->image_size * c->image_size;

    /* mse */
    const float scale = 2.0f / (float)nimg;
#pragma omp parallel for schedule(static) if (nimg >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < nimg; i++) m->dxhat[i] = scale * (m->xhat[i] - m->x[i]);

    /* decoder, last layer first */
    const float *up_in0 = R > 0 ? m->dec_res[R - 1].out : m->dec_h;
    float *dup_in0 = R > 0 ? m->dec_res[R - 1].dout : m->ddec_h;
    zero(m->dup_act[L - 1], conv_out_numel(m, &m->up[L - 1]));
    conv_backward(m, &m->out, m->dup_act[L - 1], m->dxhat, m->up_act[L - 1]);
    for (int i = L - 1; i >= 0; i--) {
        relu_mask(m->dup_act[i], m->up_act[i], conv_out_numel(m, &m->up[i]));
        const float *in = i > 0 ? m->up_act[i - 1] : up_in0;
        float *din = i > 0 ? m->dup_act[i - 1] : dup_in0;
        zero(din, conv_in_numel(m, &m->up[i]));
        conv_backward(m, &m->up[i], din, m->dup_act[i], in);
    }
    for (int j = R - 1; j >= 0; j--) {
        const float *in = j > 0 ? m->dec_res[j - 1].out : m->dec_h;
        float *din = j > 0 ? m->dec_res[j - 1].dout : m->ddec_h;
        zero(din, (size_t)C * N);
        res_backward(m, &m->dec_res[j], din, in);
    }
    zero(m->dzT, (size_t)D * N);
    conv_backward(m, &m->dec_in, m->dzT, m->ddec_h, m->zT);

    /* codebook: zT = E^T y^T, so dE += y^T dzT^T and dy = dzT^T E^T */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, K, D, N, 1.0f, m->y, K, m->dzT, N, 1.0f,
                grad_of(m, m->codebook), D);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, N, K, D, 1.0f, m->dzT, N, m->codebook, D,
                0.0f, m->dy, K);

    /* quantiser and KL: d KL / d logits = (1/N) q (log(K q) - sum_j q_j log(K q_j)) */
    zero(m->dlogits, (size_t)N * K);
    nn_gumbel_softmax_backward(m->dlogits, m->dy, m->y_soft, m->tau, N, K);
    if (c->kl_weight > 0) {
        const float w = c->kl_weight / (float)N, logK = logf((float)K);
#pragma omp parallel for schedule(static) if ((size_t)N * K >= NN_PARALLEL_MIN)
        for (int n = 0; n < N; n++) {
            const float *q = m->q + (size_t)n * K, *l = m->logits + (size_t)n * K;
            const float shift = logK - m->lse[n] - m->row_kl[n];
            float *d = m->dlogits + (size_t)n * K;
            for (int k = 0; k < K; k++) d[k] += w * q[k] * (l[k] + shift);
        }
    }

    /* logits = h^T w^T + b */
    const float *h = R > 0 ? m->enc_res[R - 1].out : m->enc_act[L - 1];
    float *dh = R > 0 ? m->enc_res[R - 1].dout : m->denc_act[L - 1];
    float *dlw = grad_of(m, m->logit_w), *dlb = grad_of(m, m->logit_b);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, K, C, N, 1.0f, m->dlogits, K, h, N, 1.0f,
                dlw, C);
    zero(dh, (size_t)C * N);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, C, N, K, 1.0f, m->logit_w, C, m->dlogits,
                K, 1.0f, dh, N);
    for (int n = 0; n < N; n++) {
        const float *d = m->dlogits + (size_t)n * K;
        for (int k = 0; k < K; k++) dlb[k] += d[k];
    }

    /* encoder */
    for (int j = R - 1; j >= 0; j--) {
        const float *in = j > 0 ? m->enc_res[j - 1].out : m->enc_act[L - 1];
        float *din = j > 0 ? m->enc_res[j - 1].dout : m->denc_act[L - 1];
        zero(din, (size_t)C * N);
        res_backward(m, &m->enc_res[j], din, in);
    }
    for (int i = L - 1; i >= 0; i--) {
        relu_mask(m->denc_act[i], m->enc_act[i], conv_out_numel(m, &m->enc[i]));
        float *din = 0;
        if (i > 0) {
            din = m->denc_act[i - 1];
            zero(din, conv_in_numel(m, &m->enc[i]));
        }
        conv_backward(m, &m->enc[i], din, m->denc_act[i], i > 0 ? m->enc_act[i - 1] : m->x);
    }
}

void dvae_get_reconstruction(const dvae_t *m, float *out)
{
    const int S = m->c.image_size;
    nn_cnhw_to_nchw(out, m->xhat, m->B, 3, S * S);
}

/* ---------------------------------------------------------------- inference */

void dvae_encode(dvae_t *m, const float *x, int B, int *tokens)
{
    const int K = m->c.codebook_size, N = B * m->G * m->G;
    encode_logits(m, x, B);
#pragma omp parallel for schedule(static) if ((size_t)N * K >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *l = m->logits + (size_t)n * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (l[k] > l[best]) best = k;
        tokens[n] = best;
    }
}

void dvae_decode(dvae_t *m, const int *tokens, int B, float *images)
{
    const int D = m->c.code_dim, N = B * m->G * m->G, S = m->c.image_size;
    m->B = B;
    /* one-hot rows of the codebook: zT[:, n] = E[token n] */
#pragma omp parallel for schedule(static) if ((size_t)D * N >= NN_PARALLEL_MIN)
    for (int d = 0; d < D; d++)
        for (int n = 0; n < N; n++) m->zT[(size_t)d * N + n] = m->codebook[(size_t)tokens[n] * D + d];
    decode_from_codes(m);
    nn_cnhw_to_nchw(images, m->xhat, B, 3, S * S);
}
