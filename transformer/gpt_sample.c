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
 * Linear layers read copies of the weights packed for nn_linear_packed_forward
 * (refreshed from the model at the start of every gpt_sample, ~1% of its time), which
 * streams each weight once per step for all rows: with a handful of rows sgemm repacks
 * its weight operand on every call (bench-nn --only small: 2.6-4x faster at 4 rows).
 */
#include "transformer/gpt_internal.h"
#include "nn/nn_math.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gpt_sampler {
    const gpt_t *m;
    int max_images, max_rows;
    float *block;
    float *kcache, *vcache;        /* per (layer, row, head): see key_cache */
    float *x, *ln, *mean, *rstd;   /* [max_rows * L, d], [max_rows * L] */
    float *qkv, *y, *tmp;          /* [.., 3d], [.., d], [.., d] */
    float *fch, *fch_gelu;         /* [.., 4d] */
    float *last, *last_ln;         /* [max_rows, d] */
    float *logits;                 /* [max_rows, K] */
    float *scores;                 /* [max_rows * H, key_slots(L)] */
    int *seq_text;                 /* [max_rows, T] the text each row reads */
    nn_rng_t *rng;                 /* [max_images] */
    gpt_cand_t *cand;              /* [K] */
    gpt_block_t *wp;               /* [n_layer] packed linear weights (the rest NULL) */
    float *head_wp;
    float *wp_block;
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

/* Positions a row's key cache holds: L rounded up to whole tiles of KEY_TILE. */
enum { KEY_TILE = 16 };
static size_t key_slots(int L)
{
    return (size_t)(L + KEY_TILE - 1) / KEY_TILE * KEY_TILE;
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
    const size_t RL = R * L, kcache = (size_t)c->n_layer * R * key_slots(L) * d;
    size_t sizes[] = {kcache, (size_t)c->n_layer * RL * d, RL * d, RL * d, RL, RL, RL * 3 * d,
                      RL * d, RL * d, RL * 4 * d, RL * 4 * d, R * d, R * d,
                      R * c->image_vocab, R * c->n_head * key_slots(L)};
    float **slots[] = {&s->kcache, &s->vcache, &s->x, &s->ln, &s->mean, &s->rstd, &s->qkv,
                       &s->y, &s->tmp, &s->fch, &s->fch_gelu, &s->last, &s->last_ln,
                       &s->logits, &s->scores};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    s->block = malloc(total * sizeof(float));
    s->seq_text = malloc(R * c->text_len * sizeof(int));
    s->rng = malloc((size_t)max_images * sizeof *s->rng);
    s->cand = malloc((size_t)c->image_vocab * sizeof *s->cand);
    s->wp = calloc((size_t)c->n_layer, sizeof *s->wp);
    const int e = c->n_embd;
    const size_t qkv = nn_linear_packed_size(e, 3 * e), proj = nn_linear_packed_size(e, e);
    const size_t fc = nn_linear_packed_size(e, 4 * e), mlp = nn_linear_packed_size(4 * e, e);
    const size_t per_layer = qkv + proj + fc + mlp;
    s->wp_block = malloc((c->n_layer * per_layer + nn_linear_packed_size(e, c->image_vocab)) *
                         sizeof(float));
    if (!s->block || !s->seq_text || !s->rng || !s->cand || !s->wp || !s->wp_block) {
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
        float *base = s->wp_block + l * per_layer;
        s->wp[l].qkv_w = base;
        s->wp[l].attn_proj_w = base + qkv;
        s->wp[l].fc_w = base + qkv + proj;
        s->wp[l].mlp_proj_w = base + qkv + proj + fc;
    }
    s->head_wp = s->wp_block + c->n_layer * per_layer;
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
    free(s->wp);
    free(s->wp_block);
    free(s);
}

/* ---------------------------------------------------------------- one step */

static void refresh_weights(gpt_sampler_t *s)
{
    const gpt_t *m = s->m;
    const int d = m->c.n_embd;
    for (int l = 0; l < m->c.n_layer; l++) {
        const gpt_block_t *w = &m->w.h[l];
        nn_linear_pack(s->wp[l].qkv_w, w->qkv_w, d, 3 * d);
        nn_linear_pack(s->wp[l].attn_proj_w, w->attn_proj_w, d, d);
        nn_linear_pack(s->wp[l].fc_w, w->fc_w, d, 4 * d);
        nn_linear_pack(s->wp[l].mlp_proj_w, w->mlp_proj_w, 4 * d, d);
    }
    nn_linear_pack(s->head_wp, m->w.head_image_w, d, m->c.image_vocab);
}

/* The cache of one (layer, row, head), hs = d / n_head values a position:
 *   keys   [L / KEY_TILE][hs][KEY_TILE]: tiles of KEY_TILE positions, dimension-major;
 *   values [L][hs].
 * A query's scores against keys 0..n-1 are then, tile by tile, hs multiply-adds of
 * KEY_TILE contiguous keys, and its output n multiply-adds of hs contiguous values:
 * loops the compiler vectorises without horizontal sums, over memory read once, in
 * order. (Keys [L, d] as the qkv rows come cost twice the time: short strided reads.) */
static float *key_cache(gpt_sampler_t *s, int l, int r, int h)
{
    const gpt_config_t *c = &s->m->c;
    const size_t hs = (size_t)(c->n_embd / c->n_head);
    return s->kcache +
           (((size_t)l * s->max_rows + r) * c->n_head + h) * key_slots(gpt_seq_len(c)) * hs;
}

static float *value_cache(gpt_sampler_t *s, int l, int r, int h)
{
    const gpt_config_t *c = &s->m->c;
    const size_t hs = (size_t)(c->n_embd / c->n_head);
    return s->vcache + (((size_t)l * s->max_rows + r) * c->n_head + h) * gpt_seq_len(c) * hs;
}

/* Keys and values of positions [p0, p0+S) of R rows (in s->qkv) into layer l's cache.
 * Positions come in order, so a key tile is zeroed when its first position is written:
 * the scores read it whole while the rest is still to come. */
static void cache_kv(gpt_sampler_t *s, int l, int R, int p0, int S)
{
    const int d = s->m->c.n_embd, NH = s->m->c.n_head, hs = d / NH;
    for (int r = 0; r < R; r++)
        for (int h = 0; h < NH; h++) {
            float *kc = key_cache(s, l, r, h), *vc = value_cache(s, l, r, h);
            for (int i = 0; i < S; i++) {
                const int p = p0 + i;
                const float *k = s->qkv + ((size_t)r * S + i) * 3 * d + d + h * hs;
                float *tile = kc + (size_t)(p / KEY_TILE) * hs * KEY_TILE;
                if (p % KEY_TILE == 0) memset(tile, 0, (size_t)hs * KEY_TILE * sizeof(float));
                for (int t = 0; t < hs; t++) tile[t * KEY_TILE + p % KEY_TILE] = k[t];
                memcpy(vc + (size_t)p * hs, k + d, (size_t)hs * sizeof(float));
            }
        }
}

/* GCC's vector types: the loops below as SIMD at whatever width the build targets,
 * without intrinsics. Loads through memcpy: no alignment is assumed. */
typedef float vec8 __attribute__((vector_size(32)));
typedef float vec16 __attribute__((vector_size(64)));

/* sc[j] = scale * q . key j for j < n, whole tiles at a time (sc holds key_slots(n));
 * even and odd dimensions in two chains, which halves the wait on additions. */
static void key_scores(float *sc, const float *q, const float *kc, int n, int hs, float scale)
{
    for (int j0 = 0; j0 < n; j0 += KEY_TILE) {
        const float *tile = kc + (size_t)j0 * hs;
        vec16 a0 = {0}, a1 = {0};
        int t = 0;
        vec16 k[2];
        for (; t + 2 <= hs; t += 2) {
            memcpy(k, tile + t * KEY_TILE, sizeof k);
            a0 += q[t] * k[0];
            a1 += q[t + 1] * k[1];
        }
        if (t < hs) {
            memcpy(k, tile + t * KEY_TILE, sizeof k[0]);
            a0 += q[t] * k[0];
        }
        a0 = (a0 + a1) * scale;
        memcpy(sc + j0, &a0, sizeof a0);
    }
}

/* y [hs] = sum over j < n of p[j] * value j: four chains of 8 columns at a time, then 8,
 * then single columns */
static void weighted_values(float *y, const float *p, const float *vc, int n, int hs)
{
    int t0 = 0;
    for (; t0 + 32 <= hs; t0 += 32) {
        vec8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        vec8 v[4];
        for (int j = 0; j < n; j++) {
            memcpy(v, vc + (size_t)j * hs + t0, sizeof v);
            a0 += p[j] * v[0];
            a1 += p[j] * v[1];
            a2 += p[j] * v[2];
            a3 += p[j] * v[3];
        }
        memcpy(y + t0, &a0, sizeof a0);
        memcpy(y + t0 + 8, &a1, sizeof a1);
        memcpy(y + t0 + 16, &a2, sizeof a2);
        memcpy(y + t0 + 24, &a3, sizeof a3);
    }
    for (; t0 + 8 <= hs; t0 += 8) {
        vec8 a = {0}, v;
        for (int j = 0; j < n; j++) {
            memcpy(&v, vc + (size_t)j * hs + t0, sizeof v);
            a += p[j] * v;
        }
        memcpy(y + t0, &a, sizeof a);
    }
    for (; t0 < hs; t0++) {
        float a = 0.0f;
        for (int j = 0; j < n; j++) a += p[j] * vc[(size_t)j * hs + t0];
        y[t0] = a;
    }
}

/* Attention of the S new positions [p0, p0+S) of R rows against the cache of layer l,
 * which already holds their keys and values. y [R*S, d]. */
static void cached_attention(gpt_sampler_t *s, int l, int R, int p0, int S)
{
    const gpt_config_t *c = &s->m->c;
    const int d = c->n_embd, NH = c->n_head, hs = d / NH;
    const float scale = 1.0f / sqrtf((float)hs);
    const size_t work = (size_t)R * S * (p0 + S) * d; /* multiply-adds, twice over */
#pragma omp parallel for schedule(static) if (work >= NN_PARALLEL_MIN)
    for (int rh = 0; rh < R * NH; rh++) {
        const int r = rh / NH, h = rh % NH;
        const float *kc = key_cache(s, l, r, h), *vc = value_cache(s, l, r, h);
        float *sc = s->scores + (size_t)rh * key_slots(gpt_seq_len(c));
        for (int i = 0; i < S; i++) {
            const int n = p0 + i + 1; /* keys 0 .. p0+i */
            const size_t row = (size_t)r * S + i;
            key_scores(sc, s->qkv + row * 3 * d + h * hs, kc, n, hs, scale);
            float mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j < n; j++) mx = sc[j] > mx ? sc[j] : mx;
            for (int j = 0; j < n; j++) {
                sc[j] = nn_expf(sc[j] - mx);
                sum += sc[j];
            }
            const float inv = 1.0f / sum;
            for (int j = 0; j < n; j++) sc[j] *= inv;
            weighted_values(s->y + row * d + h * hs, sc, vc, n, hs);
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
    const int d = c->n_embd, T = c->text_len, G2 = c->grid * c->grid;
    const int rows = R * S;
    const size_t rowsd = (size_t)rows * d;
    for (int r = 0; r < R; r++)
        gpt_embed_positions(m, s->x + (size_t)r * S * d, s->seq_text + (size_t)r * T,
                            image + (size_t)(r % N) * G2, p0, S);
    for (int l = 0; l < c->n_layer; l++) {
        const gpt_block_t *w = &m->w.h[l], *wp = &s->wp[l];
        nn_layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->ln1_w, w->ln1_b, rows, d);
        nn_linear_packed_forward(s->qkv, s->ln, wp->qkv_w, w->qkv_b, rows, d, 3 * d);
        cache_kv(s, l, R, p0, S);
        cached_attention(s, l, R, p0, S);
        nn_linear_packed_forward(s->tmp, s->y, wp->attn_proj_w, w->attn_proj_b, rows, d, d);
        nn_add(s->x, s->x, s->tmp, rowsd);
        nn_layernorm_forward(s->ln, s->mean, s->rstd, s->x, w->ln2_w, w->ln2_b, rows, d);
        nn_linear_packed_forward(s->fch, s->ln, wp->fc_w, w->fc_b, rows, d, 4 * d);
        nn_gelu_forward(s->fch_gelu, s->fch, rowsd * 4);
        nn_linear_packed_forward(s->tmp, s->fch_gelu, wp->mlp_proj_w, w->mlp_proj_b, rows, 4 * d,
                                 d);
        nn_add(s->x, s->x, s->tmp, rowsd);
    }
    for (int r = 0; r < R; r++)
        memcpy(s->last + (size_t)r * d, s->x + ((size_t)r * S + S - 1) * d,
               (size_t)d * sizeof(float));
    nn_layernorm_forward(s->last_ln, s->mean, s->rstd, s->last, m->w.lnf_w, m->w.lnf_b, R, d);
    nn_linear_packed_forward(s->logits, s->last_ln, s->head_wp, m->w.head_image_b, R, d,
                             c->image_vocab);
}

/* ---------------------------------------------------------------- the sampling rule */

static int cand_desc(const void *pa, const void *pb)
{
    const gpt_cand_t *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Restores the min-heap (by v) of h[0, n) below node i. */
static void sift_down(gpt_cand_t *h, int n, int i)
{
    for (;;) {
        int least = i, l = 2 * i + 1, r = l + 1;
        if (l < n && h[l].v < h[least].v) least = l;
        if (r < n && h[r].v < h[least].v) least = r;
        if (least == i) return;
        gpt_cand_t t = h[i];
        h[i] = h[least];
        h[least] = t;
        i = least;
    }
}

/* Moves the candidates whose value is at least the k-th largest (0 < k < K) to the front
 * of cand and returns their count (k, plus any ties with the k-th): a min-heap of the k
 * largest seen, then the ties. What a full sort's top k with ties kept would hold, in
 * O(K log k) rather than O(K log K). */
static int keep_top_k(gpt_cand_t *cand, int K, int k)
{
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(cand, k, i);
    for (int j = k; j < K; j++)
        if (cand[j].v > cand[0].v) {
            gpt_cand_t t = cand[0];
            cand[0] = cand[j];
            cand[j] = t;
            sift_down(cand, k, 0);
        }
    const float kth = cand[0].v;
    int n = k;
    for (int j = k; j < K; j++)
        if (cand[j].v == kth) {
            gpt_cand_t t = cand[n];
            cand[n++] = cand[j];
            cand[j] = t;
        }
    return n;
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
    /* the kept candidates in descending order (ties by id), the CDF the draw walks */
    int n = o->top_k > 0 && o->top_k < K ? keep_top_k(cand, K, o->top_k) : K;
    qsort(cand, (size_t)n, sizeof *cand, cand_desc);
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
