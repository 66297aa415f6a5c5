/* dalle.h: prompt -> text ids (tokenizer) -> image tokens (transformer, KV-cache sampler)
 * -> pixels (dVAE decoder). A model holds the three parts read-only; a context holds what
 * one generation writes: a sampler (KV cache) over the model's transformer and its own
 * dVAE (the decoder keeps activations in the model struct, so each context has a copy,
 * parameters included: the dVAE is small next to the transformer). */
#include "pipeline/dalle.h"

#include "data/data.h"
#include "pipeline/model_file.h"
#include "dvae/dvae.h"
#include "nn/nn.h"
#include "rerank/rerank.h"
#include "tokenizer/tokenizer.h"
#include "transformer/transformer.h"
#include "weights/weights.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct dalle_model {
    char *name;
    tok_t *tok;
    gpt_t *gpt;
    dvae_t *dvae;      /* parameters only (batch 1); contexts copy them */
    rerank_t *scorer;  /* NULL: none in the file; else parameters only, copied as the dVAE */
    mf_sample_t recommended;  /* defaults with the file's sample.* keys */
    int S, G, T;
};

struct dalle_ctx {
    const dalle_model_t *m;
    gpt_sampler_t *sampler;
    dvae_t *dvae;
    int cap;           /* images the sampler and the dVAE are sized for */
    int *tokens;       /* [cap, G*G] */
    int *prefix;       /* [cap, G*G] */
    int *partial;      /* [cap, G*G] tokens of a partial decode */
    float *pixels;     /* [cap, 3, S, S] */
    dalle_image_t *partial_images;
    uint8_t *partial_rgb;
    /* reranking: the scorer's working copy, every sample's pixels and its input */
    rerank_t *scorer;
    dalle_image_t *samples;  /* [cap] */
    uint8_t *samples_rgb;    /* [cap, S, S, 3] */
    float *scorer_in;        /* [cap, 3, Sr, Sr] */
    float *scores;           /* [cap] */
};

static int fail(char *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, DALLE_ERR_SIZE, fmt, ap);
        va_end(ap);
    }
    return status;
}

const char *dalle_status_name(int status)
{
    switch (status) {
    case DALLE_OK: return "ok";
    case DALLE_CANCELLED: return "cancelled";
    case DALLE_EINVAL: return "invalid argument";
    case DALLE_EPROMPT: return "bad prompt";
    case DALLE_EIO: return "i/o error";
    case DALLE_EMODEL: return "bad model";
    case DALLE_EIMAGE: return "bad image";
    case DALLE_ENOMEM: return "out of memory";
    }
    return "unknown";
}

const char *dalle_version(void) { return DALLEC_VERSION; }

/* ---------------------------------------------------------------- models */

static int wf_to_dalle(int st)
{
    return st == WF_EIO ? DALLE_EIO : st == WF_ENOMEM ? DALLE_ENOMEM : DALLE_EMODEL;
}

/* The three parts from an open reader, checked against each other. */
static int load_parts(dalle_model_t *m, wf_reader_t *r, const char *path, char *err)
{
    char e[256];
    void *blob = NULL;
    size_t size = 0;
    int st = wf_reader_blob(r, TOK_BLOB_NAME, &blob, &size, e);
    if (st == WF_ENOTFOUND)
        return fail(err, DALLE_EMODEL, "%s: holds no tokenizer (blob \"%s\"); a dVAE-only file "
                    "cannot generate", path, TOK_BLOB_NAME);
    if (st) return fail(err, wf_to_dalle(st), "%s", e);
    m->tok = tok_create(blob, size, e);
    free(blob);
    if (!m->tok) return fail(err, DALLE_EMODEL, "%s: tokenizer: %s", path, e);
    tok_set_strict_utf8(m->tok, 1);

    gpt_config_t gc;
    if (gpt_config_read(&gc, wf_reader_config(r), path, e) || gpt_create(&m->gpt, &gc, 0, e) ||
        gpt_read_tensors(m->gpt, r, e))
        return fail(err, DALLE_EMODEL, "%s", e);
    dvae_config_t dc;
    if (dvae_config_read(&dc, wf_reader_config(r), path, e) || dvae_create(&m->dvae, &dc, 1, e) ||
        dvae_read_tensors(m->dvae, r, e))
        return fail(err, DALLE_EMODEL, "%s", e);

    const int G = dvae_grid_size(&dc);
    if (gc.grid != G || gc.image_vocab != dc.codebook_size)
        return fail(err, DALLE_EMODEL, "%s: the transformer (grid %d, image vocabulary %d) does not "
                    "fit the dVAE (grid %d, codebook %d)", path, gc.grid, gc.image_vocab, G,
                    dc.codebook_size);
    if (gc.text_vocab != tok_vocab_size(m->tok) || gc.pad_id != tok_pad_id(m->tok) ||
        gc.bos_id != tok_bos_id(m->tok))
        return fail(err, DALLE_EMODEL, "%s: the transformer (text vocabulary %d, PAD %d, BOS %d) "
                    "does not fit the tokenizer (%d, %d, %d)", path, gc.text_vocab, gc.pad_id,
                    gc.bos_id, tok_vocab_size(m->tok), tok_pad_id(m->tok), tok_bos_id(m->tok));
    rerank_config_t rc;
    int found = rerank_config_read(&rc, wf_reader_config(r), path, e);
    if (found < 0 || (found && (rerank_create(&m->scorer, &rc, 1, 0, e) ||
                                rerank_read_tensors(m->scorer, r, e) ||
                                rerank_check_tokenizer(&rc, m->tok, path, e))))
        return fail(err, DALLE_EMODEL, "%s (the scorer)", e);
    m->recommended = (mf_sample_t){.params = dalle_params_default(), .candidate_temperature = -1};
    if (mf_sample_read(wf_reader_config(r), &m->recommended, path, e))
        return fail(err, DALLE_EMODEL, "%s", e);
    m->S = dc.image_size;
    m->G = G;
    m->T = gc.text_len;
    return DALLE_OK;
}

static int load_from(dalle_model_t **out, wf_reader_t *r, int st, const char *name,
                     const char *werr, char *err)
{
    *out = NULL;
    if (st) return fail(err, wf_to_dalle(st), "%s", werr);
    dalle_model_t *m = calloc(1, sizeof *m);
    const char *slash = strrchr(name, '/');
    if (!m || !(m->name = strdup(slash ? slash + 1 : name))) {
        free(m);
        wf_reader_close(r);
        return fail(err, DALLE_ENOMEM, "%s: out of memory", name);
    }
    st = load_parts(m, r, name, err);
    wf_reader_close(r);
    if (st) {
        dalle_model_free(m);
        return st;
    }
    *out = m;
    return DALLE_OK;
}

int dalle_model_load(dalle_model_t **out, const char *path, char err[DALLE_ERR_SIZE])
{
    *out = NULL;
    if (!path || !*path) return fail(err, DALLE_EINVAL, "no model file name given");
    char werr[WF_ERR_SIZE];
    wf_reader_t *r = NULL;
    int st = wf_reader_open(&r, path, werr);
    return load_from(out, r, st, path, werr, err);
}

int dalle_model_load_mem(dalle_model_t **out, const void *data, size_t size, const char *name,
                         char err[DALLE_ERR_SIZE])
{
    *out = NULL;
    if (!name) name = "(memory)";
    char werr[WF_ERR_SIZE];
    wf_reader_t *r = NULL;
    int st = wf_reader_open_mem(&r, data, size, name, werr);
    return load_from(out, r, st, name, werr, err);
}

void dalle_model_free(dalle_model_t *m)
{
    if (!m) return;
    tok_free(m->tok);
    gpt_free(m->gpt);
    dvae_free(m->dvae);
    rerank_free(m->scorer);
    free(m->name);
    free(m);
}

void dalle_model_info(const dalle_model_t *m, dalle_model_info_t *info)
{
    const gpt_config_t *gc = gpt_config(m->gpt);
    const dalle_params_t *rec = &m->recommended.params;
    *info = (dalle_model_info_t){
        .image_size = m->S, .grid = m->G, .text_len = m->T, .text_vocab = gc->text_vocab,
        .image_vocab = gc->image_vocab, .n_layer = gc->n_layer, .n_head = gc->n_head,
        .n_embd = gc->n_embd, .n_params = gpt_num_params(gc), .has_scorer = m->scorer != NULL,
        .sample = {rec->temperature, rec->top_k, rec->top_p, rec->guidance,
                   dalle_model_temperature(m, 2 /* any count above 1 */)},
    };
}

dalle_params_t dalle_model_params(const dalle_model_t *m)
{
    return m ? m->recommended.params : dalle_params_default();
}

float dalle_model_temperature(const dalle_model_t *m, int candidates)
{
    if (!m) return dalle_params_default().temperature;
    if (candidates > 1 && m->recommended.candidate_temperature >= 0)
        return m->recommended.candidate_temperature;
    return m->recommended.params.temperature;
}

const char *dalle_model_name(const dalle_model_t *m) { return m->name; }

/* ---------------------------------------------------------------- parameters */

dalle_params_t dalle_params_default(void)
{
    dalle_params_t p = {
        .n_images = 1, .seed = -1, .temperature = 1.0f, .top_k = 64, .top_p = 1.0f,
        .guidance = 3.0f, .threads = 0, .init_image = NULL, .init_rows = 0, .partial_images = 0,
        .candidates = 1,
    };
    return p;
}

int dalle_params_check(const dalle_params_t *p, char err[DALLE_ERR_SIZE])
{
    if (!p) return fail(err, DALLE_EINVAL, "no parameters given");
    if (p->n_images < 1 || p->n_images > DALLE_MAX_IMAGES)
        return fail(err, DALLE_EINVAL, "n_images = %d is not in [1, %d]", p->n_images,
                    DALLE_MAX_IMAGES);
    if (p->seed < -1) return fail(err, DALLE_EINVAL, "seed = %lld is negative (-1: random)",
                                  (long long)p->seed);
    if (!(p->temperature >= 0 && p->temperature <= 100))
        return fail(err, DALLE_EINVAL, "temperature = %g is not in [0, 100]", p->temperature);
    if (p->top_k < 0) return fail(err, DALLE_EINVAL, "top_k = %d is negative", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return fail(err, DALLE_EINVAL, "top_p = %g is not in (0, 1]", p->top_p);
    if (!(p->guidance >= 0 && p->guidance <= 100))
        return fail(err, DALLE_EINVAL, "guidance = %g is not in [0, 100]", p->guidance);
    if (p->threads < 0 || p->threads > 1024)
        return fail(err, DALLE_EINVAL, "threads = %d is not in [0, 1024]", p->threads);
    if (p->init_rows < 0) return fail(err, DALLE_EINVAL, "init_rows = %d is negative", p->init_rows);
    if (p->init_rows > 0 && !p->init_image)
        return fail(err, DALLE_EINVAL, "init_rows = %d without an init image", p->init_rows);
    if (p->init_image && (p->init_image->w < 1 || p->init_image->h < 1 || !p->init_image->rgb))
        return fail(err, DALLE_EINVAL, "the init image is empty");
    if (p->candidates < 1 || p->candidates > DALLE_MAX_IMAGES)
        return fail(err, DALLE_EINVAL, "candidates = %d is not in [1, %d]", p->candidates,
                    DALLE_MAX_IMAGES);
    if (p->n_images * p->candidates > DALLE_MAX_IMAGES)
        return fail(err, DALLE_EINVAL, "n_images x candidates = %d x %d is over %d samples",
                    p->n_images, p->candidates, DALLE_MAX_IMAGES);
    return DALLE_OK;
}

int64_t dalle_random_seed(void)
{
    uint64_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    int ok = fd >= 0 && read(fd, &s, sizeof s) == (ssize_t)sizeof s;
    if (fd >= 0) close(fd);
    if (!ok) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        nn_rng_t r;
        nn_rng_seed(&r, ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                            ((uint64_t)getpid() << 32));
        s = nn_rng_u64(&r);
    }
    return (int64_t)(s >> 1);
}

/* ---------------------------------------------------------------- contexts */

int dalle_ctx_create(dalle_ctx_t **out, const dalle_model_t *m, char err[DALLE_ERR_SIZE])
{
    *out = NULL;
    if (!m) return fail(err, DALLE_EINVAL, "no model given");
    dalle_ctx_t *c = calloc(1, sizeof *c);
    if (!c) return fail(err, DALLE_ENOMEM, "out of memory");
    c->m = m;
    *out = c;
    return DALLE_OK;
}

static void ctx_release(dalle_ctx_t *c)
{
    gpt_sampler_free(c->sampler);
    dvae_free(c->dvae);
    free(c->tokens);
    free(c->prefix);
    free(c->partial);
    free(c->pixels);
    free(c->partial_images);
    free(c->partial_rgb);
    rerank_free(c->scorer);
    free(c->samples);
    free(c->samples_rgb);
    free(c->scorer_in);
    free(c->scores);
    c->scorer = NULL;
    c->samples = NULL;
    c->samples_rgb = NULL;
    c->scorer_in = c->scores = NULL;
    c->sampler = NULL;
    c->dvae = NULL;
    c->tokens = c->prefix = c->partial = NULL;
    c->pixels = NULL;
    c->partial_images = NULL;
    c->partial_rgb = NULL;
    c->cap = 0;
}

void dalle_ctx_free(dalle_ctx_t *c)
{
    if (!c) return;
    ctx_release(c);
    free(c);
}

/* Sizes the context for n images (kept when already big enough). */
static int ctx_reserve(dalle_ctx_t *c, int n, char *err)
{
    if (n <= c->cap) return DALLE_OK;
    ctx_release(c);
    const dalle_model_t *m = c->m;
    const size_t G2 = (size_t)m->G * m->G, px = (size_t)m->S * m->S;
    char e[256];
    if (gpt_sampler_create(&c->sampler, m->gpt, n, e)) {
        ctx_release(c);
        return fail(err, DALLE_ENOMEM, "%s", e);
    }
    if (dvae_create(&c->dvae, dvae_config(m->dvae), n, e)) {
        ctx_release(c);
        return fail(err, DALLE_ENOMEM, "%s", e);
    }
    memcpy(dvae_params(c->dvae), dvae_params(m->dvae), dvae_param_count(m->dvae) * sizeof(float));
    c->tokens = malloc(n * G2 * sizeof(int));
    c->prefix = malloc(n * G2 * sizeof(int));
    c->partial = malloc(n * G2 * sizeof(int));
    c->pixels = malloc(n * 3 * px * sizeof(float));
    c->partial_images = calloc((size_t)n, sizeof *c->partial_images);
    c->partial_rgb = malloc(n * 3 * px);
    c->samples = calloc((size_t)n, sizeof *c->samples);
    c->samples_rgb = malloc(n * 3 * px);
    if (!c->tokens || !c->prefix || !c->partial || !c->pixels || !c->partial_images ||
        !c->partial_rgb || !c->samples || !c->samples_rgb) {
        ctx_release(c);
        return fail(err, DALLE_ENOMEM, "out of memory for %d images", n);
    }
    for (int i = 0; i < n; i++) c->samples[i] = (dalle_image_t){m->S, m->S, c->samples_rgb + i * 3 * px};
    if (m->scorer) {
        const rerank_config_t *rc = rerank_config(m->scorer);
        const size_t rpx = (size_t)rc->image_size * rc->image_size;
        if (rerank_create(&c->scorer, rc, n < 16 ? n : 16, 0, e)) {
            ctx_release(c);
            return fail(err, DALLE_ENOMEM, "%s", e);
        }
        size_t np;
        const float *params = rerank_param_block(m->scorer, &np);
        memcpy(rerank_param_block(c->scorer, NULL), params, np * sizeof(float));
        c->scorer_in = malloc(n * 3 * rpx * sizeof(float));
        c->scores = malloc((size_t)n * sizeof(float));
        if (!c->scorer_in || !c->scores) {
            ctx_release(c);
            return fail(err, DALLE_ENOMEM, "out of memory for scoring %d images", n);
        }
    }
    c->cap = n;
    return DALLE_OK;
}

/* Decodes tokens [n, G*G] into c->pixels, then into images[i].rgb (already S x S). */
static void decode_into(dalle_ctx_t *c, const int *tokens, int n, dalle_image_t *images)
{
    const int S = c->m->S;
    const size_t px = (size_t)S * S;
    dvae_decode(c->dvae, tokens, n, c->pixels);
    for (int i = 0; i < n; i++) {
        img_t img = {S, S, images[i].rgb};
        img_from_planar(&img, c->pixels + (size_t)i * 3 * px, px);
    }
}

int dalle_encode_image(dalle_ctx_t *c, const dalle_image_t *in, int *tokens,
                       char err[DALLE_ERR_SIZE])
{
    if (!c || !in || !tokens) return fail(err, DALLE_EINVAL, "no context, image or output given");
    if (in->w < 1 || in->h < 1 || !in->rgb) return fail(err, DALLE_EIMAGE, "the image is empty");
    int st = ctx_reserve(c, 1, err);
    if (st) return st;
    const int S = c->m->S;
    img_t src = {in->w, in->h, in->rgb}, dst = {0};
    char e[256];
    if (img_resize_crop(&dst, &src, S, e)) return fail(err, DALLE_EIMAGE, "%s", e);
    /* the encoder reads NCHW [1, 3, S, S]: plane stride S*S; c->pixels holds it */
    img_to_planar(&dst, c->pixels, (size_t)S * S);
    img_deinit(&dst);
    dvae_encode(c->dvae, c->pixels, 1, tokens);
    return DALLE_OK;
}

/* ---------------------------------------------------------------- generation */

/* Byte offset of the first invalid UTF-8 sequence (overlong forms, surrogates and code
 * points over U+10FFFF included), or -1 when s is valid. */
static long utf8_invalid_at(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    for (long i = 0; p[i];) {
        unsigned b = p[i];
        int n;
        uint32_t cp;
        if (b < 0x80) { i++; continue; }
        if (b >= 0xC2 && b <= 0xDF) { n = 1; cp = b & 0x1F; }
        else if (b >= 0xE0 && b <= 0xEF) { n = 2; cp = b & 0x0F; }
        else if (b >= 0xF0 && b <= 0xF4) { n = 3; cp = b & 0x07; }
        else return i;
        for (int k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += n + 1;
    }
    return -1;
}

int dalle_prompt_check(const char *prompt, char err[DALLE_ERR_SIZE])
{
    if (!prompt) return fail(err, DALLE_EPROMPT, "no prompt given");
    long bad = utf8_invalid_at(prompt);
    if (bad >= 0)
        return fail(err, DALLE_EPROMPT, "the prompt is not valid UTF-8 (byte %ld)", bad + 1);
    const char *q = prompt;
    while (*q == ' ' || (*q >= '\t' && *q <= '\r')) q++;
    if (!*q) return fail(err, DALLE_EPROMPT, "the prompt is empty");
    return DALLE_OK;
}

typedef struct {
    dalle_ctx_t *c;
    dalle_row_fn fn;
    void *user;
    int partial;
} row_relay_t;

/* gpt_row_fn -> dalle_row_fn, with the partial decode when asked for. */
static int relay_row(void *user, int row, const int *tokens, int n)
{
    row_relay_t *r = user;
    dalle_ctx_t *c = r->c;
    const int G = c->m->G, S = c->m->S;
    const size_t G2 = (size_t)G * G;
    dalle_row_t info = {.row = row, .grid = G, .n_images = n, .tokens = tokens};
    if (r->partial) {
        for (int i = 0; i < n; i++) {
            int *t = c->partial + i * G2;
            memcpy(t, tokens + i * G2, (size_t)(row + 1) * G * sizeof(int));
            for (int y = row + 1; y < G; y++) memcpy(t + y * G, t + row * G, G * sizeof(int));
            c->partial_images[i] = (dalle_image_t){S, S, c->partial_rgb + i * 3 * (size_t)S * S};
        }
        decode_into(c, c->partial, n, c->partial_images);
        const int done_px = (row + 1) * S / G;
        for (int i = 0; i < n; i++)
            memset(c->partial_images[i].rgb + (size_t)done_px * S * 3, 128,
                   (size_t)(S - done_px) * S * 3);
        info.images = c->partial_images;
    }
    return r->fn(&info, r->user) != 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dalle_result_free(dalle_result_t *r)
{
    if (!r) return;
    if (r->images)
        for (int i = 0; i < r->n_images; i++) free(r->images[i].rgb);
    free(r->images);
    free(r->tokens);
    free(r->scores);
    free(r->candidate);
    memset(r, 0, sizeof *r);
}

/* The scorer's score of each of the n samples in c->samples against prompt, into
 * c->scores: pixels as a PNG would hold them, resized to the scorer's size. */
static int score_samples(dalle_ctx_t *c, const char *prompt, int n, char *err)
{
    const int Sr = rerank_config(c->scorer)->image_size, S = c->m->S;
    const size_t rpx = (size_t)Sr * Sr;
    char e[256];
    for (int i = 0; i < n; i++) {
        img_t src = {S, S, c->samples[i].rgb}, dst = {0};
        float *in = c->scorer_in + (size_t)i * 3 * rpx;
        if (Sr == S) {
            img_to_planar(&src, in, rpx);
            continue;
        }
        if (img_resize_crop(&dst, &src, Sr, e)) return fail(err, DALLE_ENOMEM, "scoring: %s", e);
        img_to_planar(&dst, in, rpx);
        img_deinit(&dst);
    }
    if (rerank_score(c->scorer, c->m->tok, prompt, c->scorer_in, n, c->scores, e))
        return fail(err, DALLE_EINVAL, "scoring: %s", e);
    return DALLE_OK;
}

int dalle_generate(dalle_ctx_t *c, const char *prompt, const dalle_params_t *params,
                   dalle_row_fn on_row, void *user, dalle_result_t *out,
                   char err[DALLE_ERR_SIZE])
{
    if (out) memset(out, 0, sizeof *out);
    if (!c || !prompt || !out) return fail(err, DALLE_EINVAL, "no context, prompt or result given");
    int st = dalle_params_check(params, err);
    if (st) return st;
    const dalle_model_t *m = c->m;
    const int G = m->G, S = m->S, T = m->T, N = params->n_images, M = params->candidates;
    const int total = N * M; /* sample j*N + i is candidate j of image i */
    const size_t G2 = (size_t)G * G;
    if (params->init_rows > G)
        return fail(err, DALLE_EINVAL, "init_rows = %d is not in [0, %d] (the model's grid)",
                    params->init_rows, G);
    if (M > 1 && !m->scorer)
        return fail(err, DALLE_EMODEL, "%s holds no scorer: candidates = %d cannot be ranked "
                    "(docs/RERANK.md: dalle-c rerank train, then dalle-c rerank add)", m->name, M);

    if ((st = dalle_prompt_check(prompt, err))) return st;

    double t0 = now_seconds();
    if (params->threads > 0) nn_set_threads(params->threads);
    if ((st = ctx_reserve(c, total, err))) return st;

    /* text: T ids, the same for every sample; the full count tells whether it was cut */
    char e[256];
    int *text = malloc((size_t)total * T * sizeof(int));
    if (!text) return fail(err, DALLE_ENOMEM, "out of memory");
    long full = tok_encode(m->tok, prompt, NULL, 0, e);
    int kept = full < 0 ? -1 : tok_encode_fixed(m->tok, prompt, text, T, e);
    if (kept < 0) {
        free(text);
        return fail(err, DALLE_EPROMPT, "prompt: %s", e);
    }
    if (full == 0) {
        free(text);
        return fail(err, DALLE_EPROMPT, "the prompt is empty once normalised");
    }
    for (int i = 1; i < total; i++) memcpy(text + (size_t)i * T, text, (size_t)T * sizeof(int));

    gpt_sample_opts_t o = gpt_sample_opts_default();
    uint64_t seed = params->seed >= 0 ? (uint64_t)params->seed : (uint64_t)dalle_random_seed();
    o.temperature = params->temperature;
    o.top_k = params->top_k;
    o.top_p = params->top_p;
    o.guidance = params->guidance;
    o.seed = seed;
    if (params->init_image && params->init_rows > 0) {
        if ((st = dalle_encode_image(c, params->init_image, c->prefix, err))) {
            free(text);
            return st;
        }
        const size_t P = (size_t)params->init_rows * G;
        for (int i = 1; i < total; i++) memcpy(c->prefix + i * P, c->prefix, P * sizeof(int));
        o.prefix_rows = params->init_rows;
        o.prefix = c->prefix;
    }
    row_relay_t relay = {c, on_row, user, params->partial_images};
    if (on_row) {
        o.on_row = relay_row;
        o.user = &relay;
    }
    int gs = gpt_sample(c->sampler, text, total, &o, c->tokens, e);
    free(text);
    if (gs == GPT_CANCELLED) return fail(err, DALLE_CANCELLED, "cancelled");
    if (gs) return fail(err, DALLE_EINVAL, "%s", e);
    decode_into(c, c->tokens, total, c->samples);
    if (m->scorer && (st = score_samples(c, prompt, total, err))) return st;

    dalle_result_t r = {.n_images = N, .params = *params, .seed = seed,
                        .prompt_tokens = (int)full, .prompt_kept = kept};
    r.params.seed = (int64_t)seed;
    r.params.init_image = NULL;
    r.images = calloc((size_t)N, sizeof *r.images);
    r.tokens = malloc((size_t)N * G2 * sizeof(int));
    int ok = r.images && r.tokens;
    if (ok && m->scorer) {
        r.scores = malloc((size_t)N * sizeof(float));
        r.candidate = malloc((size_t)N * sizeof(int));
        ok = r.scores && r.candidate;
    }
    for (int i = 0; ok && i < N; i++) {
        r.images[i] = (dalle_image_t){S, S, malloc((size_t)S * S * 3)};
        ok = r.images[i].rgb != NULL;
    }
    if (!ok) {
        dalle_result_free(&r);
        return fail(err, DALLE_ENOMEM, "out of memory for %d images", N);
    }
    for (int i = 0; i < N; i++) {
        int best = 0; /* the first of equal scores */
        for (int j = 1; m->scorer && j < M; j++)
            if (c->scores[j * N + i] > c->scores[best * N + i]) best = j;
        const int k = best * N + i;
        memcpy(r.tokens + i * G2, c->tokens + k * G2, G2 * sizeof(int));
        memcpy(r.images[i].rgb, c->samples[k].rgb, (size_t)S * S * 3);
        if (m->scorer) {
            r.scores[i] = c->scores[k];
            r.candidate[i] = best;
        }
    }
    r.seconds = now_seconds() - t0;
    *out = r;
    return DALLE_OK;
}
