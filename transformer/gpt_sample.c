/* Sampling with a KV cache.
 *
 * The R = N (or 2N with guidance: rows N..2N-1 are the null-caption twins of rows
 * 0..N-1) sequences advance in lockstep, so every step handles the same positions of
 * every row. A step runs positions [p0, p0+S) of all rows through the blocks: keys and
 * values of those positions go into the cache, and each position attends to the cache
 * up to itself, so nothing of earlier positions is recomputed. The first step (S = 1+T
 * plus any forced prefix tokens) is the prompt; after it, S = 1 per image token. Only
 * the last position of a step goes through the final LN and the image head.
 *
 * Linear layers read transposed copies of the weights ([in, out], refreshed from the
 * model at the start of every gpt_sample, ~1% of its time): with a handful of rows,
 * OpenBLAS repacks an [out, in] operand on every call, which took half the time (bench
 * config, 4 images: ~2x faster per linear with the [in, out] copy).
 */
#include "transformer/gpt_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gpt_sampler {
    const gpt_t *m;
    int max_images, max_rows;
    float *block;
    float *kcache, *vcache;        /* [n_layer, max_rows, L, d] */
    float *x, *ln, *mean, *rstd;   /* [max_rows * L, d], [max_rows * L] */
    float *qkv, *y, *tmp;          /* [.., 3d], [.., d], [.., d] */
    float *fch, *fch_gelu;         /* [.., 4d] */
    float *last, *last_ln;         /* [max_rows, d] */
    float *logits;                 /* [max_rows, K] */
    float *scores;                 /* [max_rows * H, L] */
    int *seq_text;                 /* [max_rows, T] the text each row reads */
    nn_rng_t *rng;                 /* [max_images] */
    gpt_cand_t *cand;              /* [K] */
    gpt_block_t *wt;               /* [n_layer] transposed linear weights (the rest NULL) */
    float *head_wt;                /* [d, K] */
    float *wt_block;
};

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

gpt_sample_opts_t gpt_sample_opts_default(void)
{
    gpt_sample_opts_t o = {
        .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .guidance = 3.0f, .seed = 0,
        .prefix_rows = 0, .prefix = NULL, .on_row = NULL, .user = NULL,
    };
    return o;
}

int gpt_sampler_create(gpt_sampler_t **out, const gpt_t *m, int max_images,
                       char err[GPT_ERR_SIZE])
{
    *out = NULL;
    const gpt_config_t *c = &m->c;
    if (max_images < 1 || max_images > 4096)
        return fail(err, "gpt sampler: max_images = %d is out of range [1, 4096]", max_images);
    gpt_sampler_t *s = calloc(1, sizeof *s);
    if (!s) return fail(err, "gpt sampler: out of memory");
    s->m = m;
    s->max_images = max_images;
    s->max_rows = 2 * max_images;
    const size_t R = (size_t)s->max_rows, L = (size_t)gpt_seq_len(c), d = (size_t)c->n_embd;
    const size_t RL = R * L, cache = (size_t)c->n_layer * RL * d;
    size_t sizes[] = {cache, cache, RL * d, RL * d, RL, RL, RL * 3 * d, RL * d, RL * d,
                      RL * 4 * d, RL * 4 * d, R * d, R * d, R * c->image_vocab,
                      R * c->n_head * L};
    float **slots[] = {&s->kcache, &s->vcache, &s->x, &s->ln, &s->mean, &s->rstd, &s->qkv,
                       &s->y, &s->tmp, &s->fch, &s->fch_gelu, &s->last, &s->last_ln,
                       &s->logits, &s->scores};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    s->block = malloc(total * sizeof(float));
    s->seq_text = malloc(R * c->text_len * sizeof(int));
    s->rng = malloc((size_t)max_images * sizeof *s->rng);
    s->cand = malloc((size_t)c->image_vocab * sizeof *s->cand);
    s->wt = calloc((size_t)c->n_layer, sizeof *s->wt);
    const size_t per_layer = 12 * d * d;
    s->wt_block = malloc((c->n_layer * per_layer + d * c->image_vocab) * sizeof(float));
    if (!s->block || !s->seq_text || !s->rng || !s->cand || !s->wt || !s->wt_block) {
        gpt_sampler_free(s);
        return fail(err, "gpt sampler: out of memory (%zu MB for %d images)",
                    total * sizeof(float) >> 20, max_images);
    }
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *slots[i] = s->block + off;
        off += sizes[i];
    }
    for (int l = 0; l < c->n_layer; l++) {
        float *base = s->wt_block + l * per_layer;
        s->wt[l].qkv_w = base;
        s->wt[l].attn_proj_w = base + 3 * d * d;
        s->wt[l].fc_w = base + 4 * d * d;
        s->wt[l].mlp_proj_w = base + 8 * d * d;
    }
    s->head_wt = s->wt_block + c->n_layer * per_layer;
    *out = s;
    return 0;
}

void gpt_sampler_free(gpt_sampler_t *s)
{
    if (!s) return;
    free(s->block);
    free(s->seq_text);
    free(s->rng);
    free(s->cand);
    free(s->wt);
    free(s->wt_block);
    free(s);
}

/* ---------------------------------------------------------------- one step */

/* wt [C, OC] = w [OC, C]^T, in cache-sized tiles */
static void transpose(float *wt, const float *w, int OC, int C)
{
    enum { TILE = 32 };
#pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < OC; o0 += TILE)
        for (int c0 = 0; c0 < C; c0 += TILE)
            for (int o = o0; o < o0 + TILE && o < OC; o++)
                for (int c = c0; c < c0 + TILE && c < C; c++)
                    wt[(size_t)c * OC + o] = w[(size_t)o * C + c];
}

static void refresh_weights(gpt_sampler_t *s)
{
    const gpt_t *m = s->m;
    const int d = m->c.n_embd;
    for (int l = 0; l < m->c.n_layer; l++) {
        const gpt_block_t *w = &m->w.h[l];
        transpose(s->wt[l].qkv_w, w->qkv_w, 3 * d, d);
        transpose(s->wt[l].attn_proj_w, w->attn_proj_w, d, d);
        transpose(s->wt[l].fc_w, w->fc_w, 4 * d, d);
        transpose(s->wt[l].mlp_proj_w, w->mlp_proj_w, d, 4 * d);
    }
    transpose(s->head_wt, m->w.head_image_w, m->c.image_vocab, d);
}

/* out [N, OC] = in [N, C] @ wt [C, OC] + b: nn_linear_forward with the weight transposed */
static void linear_t(float *out, const float *in, const float *wt, const float *b, int N, int C,
                     int OC)
{
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, C, 1.0f, in, C, wt, OC, 1.0f,
                out, OC);
}

/* Attention of the S new positions [p0, p0+S) of R rows against the cache of layer l,
 * which already holds their keys and values. y [R*S, d]. */
static void cached_attention(gpt_sampler_t *s, int l, int R, int p0, int S)
{
    const gpt_config_t *c = &s->m->c;
    const int d = c->n_embd, NH = c->n_head, hs = d / NH, L = gpt_seq_len(c);
    const float scale = 1.0f / sqrtf((float)hs);
    const size_t layer = (size_t)l * s->max_rows * L * d;
#pragma omp parallel for schedule(dynamic)
    for (int rh = 0; rh < R * NH; rh++) {
        const int r = rh / NH, h = rh % NH;
        const float *kc = s->kcache + layer + (size_t)r * L * d + h * hs;
        const float *vc = s->vcache + layer + (size_t)r * L * d + h * hs;
        float *sc = s->scores + (size_t)rh * L;
        for (int i = 0; i < S; i++) {
            const int n = p0 + i + 1; /* keys 0 .. p0+i */
            const float *q = s->qkv + ((size_t)r * S + i) * 3 * d + h * hs;
            cblas_sgemv(CblasRowMajor, CblasNoTrans, n, hs, scale, kc, d, q, 1, 0.0f, sc, 1);
            float mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j < n; j++) mx = fmaxf(mx, sc[j]);
            for (int j = 0; j < n; j++) {
                sc[j] = expf(sc[j] - mx);
                sum += sc[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < n; j++) sc[j] *= inv;
            cblas_sgemv(CblasRowMajor, CblasTrans, n, hs, 1.0f, vc, d, sc, 1, 0.0f,
                        s->y + ((size_t)r * S + i) * d + h * hs, 1);
        }
    }
}

/* Runs positions [p0, p0+S) of rows 0..R-1 (texts in s->seq_text, image tokens of row r
 * from image[(r % N) * G*G ..]); leaves the image logits of position p0+S-1 in
 * s->logits [R, K]. */
static void step(gpt_sampler_t *s, int R, int N, const int *image, int p0, int S)
{
    const gpt_t *m = s->m;
    const gpt_config_t *c = &m->c;
    const int d = c->n_embd, T = c->text_len, G2 = c->grid * c->grid, L = gpt_seq_len(c);
    const int rows = R * S;
    const size_t rowsd = (size_t)rows * d;
    for (int r = 0; r < R; r++)
        gpt_embed_positions(m, s->x + (size_t)r * S * d, s->seq_text + (size_t)r * T,
                            image + (size_t)(r % N) * G2, p0, S);
    for (int l = 0; l < c->n_layer; l++) {
        const gpt_block_t *w = &m->w.h[l], *wt = &s->wt[l];
        const size_t layer = (size_t)l * s->max_rows * L * d;
        nn_layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->ln1_w, w->ln1_b, rows, d);
        linear_t(s->qkv, s->ln, wt->qkv_w, w->qkv_b, rows, d, 3 * d);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < S; i++) {
                const float *k = s->qkv + ((size_t)r * S + i) * 3 * d + d;
                size_t at = layer + ((size_t)r * L + p0 + i) * d;
                memcpy(s->kcache + at, k, (size_t)d * sizeof(float));
                memcpy(s->vcache + at, k + d, (size_t)d * sizeof(float));
            }
        cached_attention(s, l, R, p0, S);
        linear_t(s->tmp, s->y, wt->attn_proj_w, w->attn_proj_b, rows, d, d);
        nn_add(s->x, s->x, s->tmp, rowsd);
        nn_layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->ln2_w, w->ln2_b, rows, d);
        linear_t(s->fch, s->ln, wt->fc_w, w->fc_b, rows, d, 4 * d);
        nn_gelu_forward(s->fch_gelu, s->fch, rowsd * 4);
        linear_t(s->tmp, s->fch_gelu, wt->mlp_proj_w, w->mlp_proj_b, rows, 4 * d, d);
        nn_add(s->x, s->x, s->tmp, rowsd);
    }
    for (int r = 0; r < R; r++)
        memcpy(s->last + (size_t)r * d, s->x + ((size_t)r * S + S - 1) * d,
               (size_t)d * sizeof(float));
    nn_layernorm_forward(s->last_ln, s->mean, s->rstd, s->last, m->w.lnf_w, m->w.lnf_b, R, d);
    linear_t(s->logits, s->last_ln, s->head_wt, m->w.head_image_b, R, d, c->image_vocab);
}

/* ---------------------------------------------------------------- the sampling rule */

static int cand_desc(const void *pa, const void *pb)
{
    const gpt_cand_t *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

int gpt_pick_token(const float *cond, const float *uncond, int K, const gpt_sample_opts_t *o,
                   nn_rng_t *rng, gpt_cand_t *cand)
{
    const float gs = o->guidance;
    for (int j = 0; j < K; j++)
        cand[j] = (gpt_cand_t){uncond ? uncond[j] + gs * (cond[j] - uncond[j]) : cond[j], j};
    if (!(o->temperature > 0)) {
        int best = 0;
        for (int j = 1; j < K; j++)
            if (cand[j].v > cand[best].v) best = j;
        return best;
    }
    const float inv_t = 1.0f / o->temperature;
    for (int j = 0; j < K; j++) cand[j].v *= inv_t;
    qsort(cand, (size_t)K, sizeof *cand, cand_desc);
    int n = K;
    if (o->top_k > 0 && o->top_k < K) {
        n = o->top_k;
        while (n < K && cand[n].v == cand[o->top_k - 1].v) n++;
    }
    /* softmax over the kept candidates, in place: v becomes exp(v - max) */
    const float mx = cand[0].v;
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        cand[j].v = expf(cand[j].v - mx);
        sum += cand[j].v;
    }
    if (o->top_p < 1.0f) {
        double cum = 0.0, limit = (double)o->top_p * sum;
        int keep = 0;
        while (keep < n && (keep == 0 || cum < limit)) cum += cand[keep++].v;
        n = keep;
        sum = cum;
    }
    double u = (double)nn_rng_uniform(rng) * sum, acc = 0.0;
    for (int j = 0; j < n; j++) {
        acc += cand[j].v;
        if (u < acc) return cand[j].id;
    }
    return cand[n - 1].id;
}

/* ---------------------------------------------------------------- gpt_sample */

static int check_opts(const gpt_sampler_t *s, const int *text, int N,
                      const gpt_sample_opts_t *o, char *err)
{
    const gpt_config_t *c = &s->m->c;
    const int T = c->text_len, G = c->grid;
    if (N < 1 || N > s->max_images)
        return fail(err, "gpt sample: %d images is not in [1, %d]", N, s->max_images);
    for (size_t i = 0; i < (size_t)N * T; i++)
        if (text[i] < 0 || text[i] >= c->text_vocab)
            return fail(err, "gpt sample: text id %d at [%zu] is not in [0, %d)", text[i], i,
                        c->text_vocab);
    if (!isfinite(o->temperature) || !isfinite(o->guidance))
        return fail(err, "gpt sample: temperature and guidance must be finite");
    if (o->top_k < 0) return fail(err, "gpt sample: top_k = %d is negative", o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1))
        return fail(err, "gpt sample: top_p = %g is not in (0, 1]", o->top_p);
    if (o->prefix_rows < 0 || o->prefix_rows > G)
        return fail(err, "gpt sample: prefix_rows = %d is not in [0, %d]", o->prefix_rows, G);
    if (o->prefix_rows > 0) {
        if (!o->prefix) return fail(err, "gpt sample: prefix_rows = %d without a prefix",
                                    o->prefix_rows);
        for (size_t i = 0; i < (size_t)N * o->prefix_rows * G; i++)
            if (o->prefix[i] < 0 || o->prefix[i] >= c->image_vocab)
                return fail(err, "gpt sample: prefix token %d at [%zu] is not in [0, %d)",
                            o->prefix[i], i, c->image_vocab);
    }
    return 0;
}

int gpt_sample(gpt_sampler_t *s, const int *text, int N, const gpt_sample_opts_t *o, int *out,
               char err[GPT_ERR_SIZE])
{
    const gpt_config_t *c = &s->m->c;
    const int T = c->text_len, G = c->grid, G2 = G * G, K = c->image_vocab;
    if (check_opts(s, text, N, o, err)) return -1;
    const int guided = o->guidance != 1.0f, R = guided ? 2 * N : N;
    const int P = o->prefix_rows * G;

    memcpy(s->seq_text, text, (size_t)N * T * sizeof(int));
    for (size_t i = (size_t)N * T; i < (size_t)R * T; i++) s->seq_text[i] = c->pad_id;
    for (int n = 0; n < N; n++) {
        nn_rng_seed(&s->rng[n], o->seed + (uint64_t)n);
        if (P) memcpy(out + (size_t)n * G2, o->prefix + (size_t)n * P, (size_t)P * sizeof(int));
    }
    for (int row = 0; row < o->prefix_rows; row++)
        if (o->on_row && o->on_row(o->user, row, out, N)) return GPT_CANCELLED;
    if (P == G2) return 0;
    refresh_weights(s);

    /* the prompt and the forced tokens in one step: logits for image token P */
    step(s, R, N, out, 0, 1 + T + P);
    for (int i = P; i < G2; i++) {
        for (int n = 0; n < N; n++)
            out[(size_t)n * G2 + i] =
                gpt_pick_token(s->logits + (size_t)n * K,
                               guided ? s->logits + (size_t)(N + n) * K : NULL, K, o,
                               &s->rng[n], s->cand);
        if ((i + 1) % G == 0 && o->on_row && o->on_row(o->user, i / G, out, N))
            return GPT_CANCELLED;
        if (i + 1 < G2) step(s, R, N, out, 1 + T + i, 1);
    }
    return 0;
}
