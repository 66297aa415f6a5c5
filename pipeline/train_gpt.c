/* The transformer training loop (pipeline/train_gpt.h): token cache, tokenizer, batches
 * of (caption ids, image tokens), AdamW steps, held-out evaluation, sample grids and
 * atomic checkpoints that resume bit for bit. */
#include "pipeline/train_gpt.h"

#include "dvae/dvae.h"
#include "nn/nn.h"
#include "pipeline/model_file.h"
#include "pipeline/token_cache.h"
#include "tokenizer/tokenizer.h"
#include "weights/weights.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* dVAE batch for encoding the cache and decoding samples */
#define TG_DVAE_BATCH 32

tg_opts_t tg_opts_default(void)
{
    tg_opts_t o = {
        .text_len = 32, .n_layer = 4, .n_head = 4, .n_embd = 128,
        .loss_w_text = 1.0f, .loss_w_image = 7.0f, .p_null = 0.1f, .vocab = 1024,
        .steps = 2000, .batch = 16, .opt = gpt_opt_default(), .seed = 1,
        .eval_every = 200, .eval_images = 256, .samples_every = 500, .samples_n = 8,
        .checkpoint_every = 0, .checkpoint_seconds = 300.0,
    };
    o.opt.lr = 1e-3f;
    o.opt.lr_min = 1e-4f;
    return o;
}

enum { STREAM_ORDER = 1, STREAM_DROPOUT = 2 };

/* ---------------------------------------------------------------- the run */

typedef struct {
    tg_opts_t o;
    /* data-parallel: rows [rank * bl, (rank + 1) * bl) of each global batch of
     * o.batch = nranks * bl are this rank's; one process is rank 0 of 1 */
    const dvae_comm_t *comm;
    int rank, nranks, bl;
    const tg_paths_t *p;
    ds_t *ds;
    dvae_t *dv;
    tok_t *tok;
    gpt_t *gpt;
    gpt_config_t gc;
    tcache_t cache;
    uint64_t data_key;
    long step;
    char ckpt_path[1024], samples_path[1024], cache_path[1024];
    size_t *valid[2], nvalid[2]; /* items with tokens, per split */
    size_t *perm;
    uint64_t perm_epoch;
    int *text, *image;
    gpt_sampler_t *sampler;
    tg_event_fn fn;
    void *ctx;
} run_t;

/* Rank 0 gets every event, the other ranks the step events only (for their stop flag). */
static int emit(run_t *r, tg_event_t *e)
{
    if (!r->fn || (r->rank != 0 && e->kind != TG_EV_STEP)) return 0;
    return r->fn(e, r->ctx);
}

/* Sums v [n] over the ranks in place; one process: nothing to do. */
static int allreduce(const run_t *r, float *v, size_t n, char err[256])
{
    if (r->nranks == 1) return 0;
    if (r->comm->allreduce_sum(v, n, r->comm->ctx)) {
        snprintf(err, 256, "the all-reduce over %d ranks failed", r->nranks);
        return -1;
    }
    return 0;
}

/* The ranks' gradients averaged into the global batch's, with one all-reduce over the
 * whole block (a non-finite gradient anywhere then reaches every rank's norm); the loss
 * and its parts (ce [2]: text, image) the global batch's, on every rank.
 *
 * The image loss is a mean over B*G*G targets: over equal shards the mean of the ranks'
 * gradients is the global one. The text loss is a mean over the batch's n non-PAD
 * targets, and a shard holds n_r of them: its text gradient must count n_r / n of the
 * whole, not 1/N. So this rank scales its text part by N n_r / n (gpt_backward_scaled)
 * and the average over ranks is exactly the single process's gradient. */
static int shard_backward(run_t *r, float local_loss, float ce[2], float *loss, char err[256])
{
    const int T = r->gc.text_len;
    const size_t first = (size_t)r->rank * r->bl * T, end = first + (size_t)r->bl * T;
    long n = 0, nr = 0;
    for (size_t k = 0; k < (size_t)r->o.batch * T; k++) {
        int t = r->text[k] != r->gc.pad_id;
        n += t;
        nr += t && k >= first && k < end;
    }
    /* this rank's text CE is a mean over its nr targets; the batch's is over all n */
    const float text_scale = n > 0 ? (float)r->nranks * (float)nr / (float)n : 1.0f;
    float ct = 0, ci = 0;
    if (isfinite(local_loss)) {
        gpt_loss_parts(r->gpt, &ct, &ci);
        gpt_backward_scaled(r->gpt, text_scale, 1.0f);
    }
    size_t ng;
    float *g = gpt_grad_block(r->gpt, &ng);
    const float scale = 1.0f / (float)r->nranks;
    for (size_t k = 0; k < ng; k++) g[k] *= scale;
    if (allreduce(r, g, ng, err)) return -1;
    /* a NaN local loss makes the sums NaN on every rank */
    float l[2] = {n > 0 ? ct * (float)nr / (float)n : 0, ci / (float)r->nranks};
    if (!isfinite(local_loss)) l[0] = l[1] = NAN;
    if (allreduce(r, l, 2, err)) return -1;
    ce[0] = l[0], ce[1] = l[1];
    const float wt = r->gc.loss_w_text, wi = r->gc.loss_w_image;
    *loss = (wt * ce[0] + wi * ce[1]) / (wt + wi);
    return 0;
}

/* The batch is a multiple of the ranks, each taking an equal share. */
static int split_batch(run_t *r, char err[256])
{
    if (r->o.batch < 1 || r->o.batch % r->nranks) {
        snprintf(err, 256, "the batch (%d) must be a positive multiple of the number of ranks "
                 "(%d): each rank takes an equal share", r->o.batch, r->nranks);
        return -1;
    }
    r->bl = r->o.batch / r->nranks;
    return 0;
}

static void info(run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info(run_t *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg_event_t e = {.kind = TG_EV_INFO, .msg = msg};
    emit(r, &e);
}

static void warnings(run_t *r)
{
    char msg[256];
    while (tok_warning(r->tok, msg)) {
        tg_event_t e = {.kind = TG_EV_WARNING, .msg = msg};
        emit(r, &e);
    }
}

/* ---------------------------------------------------------------- options in files */

typedef struct {
    const char *key;
    size_t off;
    char type; /* 'i' int, 'l' long, 'f' float, 'd' double, 'u' u64 */
} opt_field_t;

#define F(k, field, t) {"train." k, offsetof(tg_opts_t, field), t}
static const opt_field_t opt_fields[] = {
    F("steps", steps, 'l'), F("batch", batch, 'i'), F("lr", opt.lr, 'f'),
    F("lr_min", opt.lr_min, 'f'), F("warmup", opt.warmup_steps, 'l'),
    F("beta1", opt.beta1, 'f'), F("beta2", opt.beta2, 'f'), F("eps", opt.eps, 'f'),
    F("weight_decay", opt.weight_decay, 'f'), F("grad_clip", opt.grad_clip, 'f'),
    F("seed", seed, 'u'), F("vocab", vocab, 'i'), F("eval_every", eval_every, 'l'),
    F("eval_images", eval_images, 'i'), F("samples_every", samples_every, 'l'),
    F("samples_n", samples_n, 'i'), F("checkpoint_every", checkpoint_every, 'l'),
    F("checkpoint_seconds", checkpoint_seconds, 'd'),
};
#undef F
#define N_OPT_FIELDS (sizeof opt_fields / sizeof opt_fields[0])

static int store_opts(const run_t *r, wf_config_t *c)
{
    char key[32];
    snprintf(key, sizeof key, "%016" PRIx64, r->data_key);
    if (wf_config_set_int(c, "train.step", r->step) ||
        wf_config_set_int(c, "train.opt_steps", gpt_opt_steps(r->gpt)) ||
        wf_config_set_float(c, "train.holdout", ds_holdout(r->ds)) ||
        wf_config_set_str(c, "train.data_key", key))
        return -1;
    for (size_t i = 0; i < N_OPT_FIELDS; i++) {
        const char *p = (const char *)&r->o + opt_fields[i].off;
        int rc;
        switch (opt_fields[i].type) {
        case 'i': rc = wf_config_set_int(c, opt_fields[i].key, *(const int *)p); break;
        case 'l': rc = wf_config_set_int(c, opt_fields[i].key, *(const long *)p); break;
        /* the seed's 64 bits as a signed integer, bit for bit */
        case 'u': rc = wf_config_set_int(c, opt_fields[i].key, (int64_t) * (const uint64_t *)p); break;
        case 'f': rc = wf_config_set_float(c, opt_fields[i].key, *(const float *)p); break;
        default: rc = wf_config_set_float(c, opt_fields[i].key, *(const double *)p); break;
        }
        if (rc) return -1;
    }
    return 0;
}

/* The train.* options of a checkpoint; -1 when one is missing or out of range. */
static int read_opts(tg_opts_t *o, const wf_config_t *c)
{
    for (size_t i = 0; i < N_OPT_FIELDS; i++) {
        char *p = (char *)o + opt_fields[i].off;
        int64_t iv;
        double dv;
        switch (opt_fields[i].type) {
        case 'i': case 'l': case 'u':
            if (wf_config_get_int(c, opt_fields[i].key, &iv)) return -1;
            if (opt_fields[i].type == 'i') {
                if (iv < 0 || iv > 1000000000) return -1;
                *(int *)p = (int)iv;
            } else if (opt_fields[i].type == 'l') {
                if (iv < 0) return -1;
                *(long *)p = (long)iv;
            } else {
                *(uint64_t *)p = (uint64_t)iv;
            }
            break;
        default:
            if (wf_config_get_float(c, opt_fields[i].key, &dv)) return -1;
            if (opt_fields[i].type == 'f') *(float *)p = (float)dv;
            else *(double *)p = dv;
        }
    }
    if (o->steps < 1 || o->batch < 1 || o->batch > 65536) return -1;
    o->opt.total_steps = o->steps;
    return 0;
}

static int moment_name(char *out, size_t n, const char *which, const char *name)
{
    return snprintf(out, n, "opt.%s.%s", which, name) >= (int)n ? -1 : 0;
}

static int save_checkpoint(run_t *r, char err[256])
{
    wf_config_t *extra = wf_config_create();
    if (!extra || store_opts(r, extra)) {
        wf_config_free(extra);
        snprintf(err, 256, "%.200s: out of memory", r->ckpt_path);
        return -1;
    }
    wf_writer_t *w;
    int rc = mf_writer_open(&w, r->ckpt_path, r->dv, r->tok, r->gpt, extra, 1, err);
    wf_config_free(extra);
    if (rc) return -1;
    for (int i = 0; i < gpt_tensor_count(r->gpt); i++) {
        const gpt_tensor_t *t = gpt_tensor_at(r->gpt, i);
        char name[128];
        if (moment_name(name, sizeof name, "m", t->name) ||
            wf_writer_add_tensor(w, name, WF_F32, t->ndim, t->shape, t->adam_m, err) ||
            moment_name(name, sizeof name, "v", t->name) ||
            wf_writer_add_tensor(w, name, WF_F32, t->ndim, t->shape, t->adam_v, err)) {
            wf_writer_abort(w);
            return -1;
        }
    }
    return wf_writer_close(w, err) ? -1 : 0;
}

int tg_checkpoint_info(const char *path, tg_info_t *info, char err[256])
{
    wf_reader_t *rd;
    if (wf_reader_open(&rd, path, err)) return -1;
    const wf_config_t *cfg = wf_reader_config(rd);
    dvae_config_t dc;
    tg_opts_t o = tg_opts_default();
    int64_t step;
    int rc = -1;
    if (read_opts(&o, cfg) || wf_config_get_int(cfg, "train.step", &step) ||
        wf_config_get_float(cfg, "train.holdout", &info->holdout) ||
        !wf_reader_find(rd, "opt.m.gpt.wte_text")) {
        snprintf(err, 256, "%.160s: not a transformer training checkpoint (train.* settings or "
                 "optimizer state missing)", path);
        goto done;
    }
    if (dvae_config_read(&dc, cfg, path, err)) goto done;
    info->image_size = dc.image_size;
    info->batch = o.batch;
    info->step = (long)step;
    info->steps = o.steps;
    rc = 0;
done:
    wf_reader_close(rd);
    return rc;
}

int tg_dvae_info(const char *path, tg_info_t *info, char err[256])
{
    dvae_t *dv;
    if (dvae_load(&dv, path, 1, err)) return -1;
    memset(info, 0, sizeof *info);
    info->image_size = dvae_config(dv)->image_size;
    dvae_free(dv);
    return 0;
}

int tg_model_info(const char *path, tg_info_t *info, char err[256])
{
    dvae_t *dv;
    tok_t *tok;
    gpt_t *gpt;
    if (mf_load(path, &dv, 1, &tok, &gpt, 0, err)) return -1;
    memset(info, 0, sizeof *info);
    info->image_size = dvae_config(dv)->image_size;
    dvae_free(dv);
    tok_free(tok);
    gpt_free(gpt);
    return 0;
}

static int load_checkpoint(run_t *r, const char *path, char err[256])
{
    if (mf_load(path, &r->dv, TG_DVAE_BATCH, &r->tok, NULL, 0, err)) return -1;
    wf_reader_t *rd;
    if (wf_reader_open(&rd, path, err)) return -1;
    const wf_config_t *cfg = wf_reader_config(rd);
    int64_t step, opt_steps;
    const char *key;
    r->o = tg_opts_default();
    if (read_opts(&r->o, cfg) || wf_config_get_int(cfg, "train.step", &step) ||
        wf_config_get_int(cfg, "train.opt_steps", &opt_steps) ||
        wf_config_get_str(cfg, "train.data_key", &key) || step < 0 || step > r->o.steps ||
        sscanf(key, "%16" SCNx64, &r->data_key) != 1) {
        snprintf(err, 256, "%.160s: not a transformer training checkpoint (train.* settings "
                 "missing or bad)", path);
        goto fail;
    }
    r->step = (long)step;
    if (r->p->steps_override > 0) {
        if (r->p->steps_override < r->step) {
            snprintf(err, 256, "%.120s: --steps %ld is below the checkpoint's step %ld", path,
                     r->p->steps_override, r->step);
            goto fail;
        }
        r->o.steps = r->o.opt.total_steps = r->p->steps_override;
    }
    if (split_batch(r, err) || gpt_config_read(&r->gc, cfg, path, err) ||
        gpt_create(&r->gpt, &r->gc, r->bl, err) ||
        gpt_read_tensors(r->gpt, rd, err) || mf_check_parts(path, r->dv, r->tok, r->gpt, err))
        goto fail;
    for (int i = 0; i < gpt_tensor_count(r->gpt); i++) {
        const gpt_tensor_t *t = gpt_tensor_at(r->gpt, i);
        char name[128];
        if (moment_name(name, sizeof name, "m", t->name) ||
            wf_reader_load(rd, name, t->ndim, t->shape, t->adam_m, err) ||
            moment_name(name, sizeof name, "v", t->name) ||
            wf_reader_load(rd, name, t->ndim, t->shape, t->adam_v, err))
            goto fail;
    }
    gpt_set_opt_steps(r->gpt, (long)opt_steps);
    wf_reader_close(rd);
    return 0;
fail:
    wf_reader_close(rd);
    return -1;
}

/* ---------------------------------------------------------------- setup */

tok_t *tg_train_tokenizer(const ds_t *ds, int vocab, uint64_t seed, size_t *n_lines,
                          char err[256])
{
    size_t n = 0, cap = 0;
    const char **lines = NULL;
    for (size_t i = 0; i < ds_count(ds, DS_TRAIN); i++)
        for (int k = 0; k < ds_caption_count(ds, DS_TRAIN, i); k++) {
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                const char **nl = realloc(lines, cap * sizeof *lines);
                if (!nl) {
                    free(lines);
                    snprintf(err, 256, "tokenizer: out of memory");
                    return NULL;
                }
                lines = nl;
            }
            lines[n++] = ds_caption_line(ds, DS_TRAIN, i, k);
        }
    tok_train_config_t tc = tok_train_config_default();
    tc.vocab_size = vocab;
    tc.hard_vocab_limit = 0;
    tc.seed = (uint32_t)seed;
    char *bytes = NULL;
    size_t len = 0;
    char e[256];
    int rc = tok_train_captions(lines, n, &tc, &bytes, &len, e);
    free(lines);
    if (rc) {
        snprintf(err, 256, "training the tokenizer on %zu captions: %.200s", n, e);
        return NULL;
    }
    tok_t *tok = tok_create(bytes, len, err);
    free(bytes);
    if (n_lines) *n_lines = n;
    return tok;
}

static int train_tokenizer(run_t *r, char err[256])
{
    size_t n;
    if (!(r->tok = tg_train_tokenizer(r->ds, r->o.vocab, r->o.seed, &n, err))) return -1;
    info(r, "trained a tokenizer on %zu caption lines: %d ids", n, tok_vocab_size(r->tok));
    return 0;
}

static int fresh_model(run_t *r, const tg_opts_t *o, char err[256])
{
    r->o = *o;
    r->o.opt.total_steps = r->o.steps;
    if (r->o.steps < 1 || r->o.batch < 1) {
        snprintf(err, 256, "steps and batch must be positive");
        return -1;
    }
    if (split_batch(r, err)) return -1;
    if (r->p->init) {
        if (mf_load(r->p->init, &r->dv, TG_DVAE_BATCH, &r->tok, &r->gpt, r->bl, err)) return -1;
        r->gc = *gpt_config(r->gpt);
        return 0;
    }
    if (!r->p->dvae) {
        snprintf(err, 256, "no dVAE given");
        return -1;
    }
    if (dvae_load(&r->dv, r->p->dvae, TG_DVAE_BATCH, err)) return -1;
    if (r->p->tokenizer) {
        if (!(r->tok = tok_load(r->p->tokenizer, err))) return -1;
    } else if (train_tokenizer(r, err)) {
        return -1;
    }
    if (tok_pad_id(r->tok) < 0 || tok_bos_id(r->tok) < 0) {
        snprintf(err, 256, "%.200s: the tokenizer has no <pad> or no <s> (BOS) piece",
                 r->p->tokenizer ? r->p->tokenizer : "tokenizer");
        return -1;
    }
    const dvae_config_t *dc = dvae_config(r->dv);
    gpt_config_t c = gpt_config_default();
    c.text_len = o->text_len;
    c.text_vocab = tok_vocab_size(r->tok);
    c.pad_id = tok_pad_id(r->tok);
    c.bos_id = tok_bos_id(r->tok);
    c.grid = dvae_grid_size(dc);
    c.image_vocab = dc->codebook_size;
    c.n_layer = o->n_layer, c.n_head = o->n_head, c.n_embd = o->n_embd;
    c.loss_w_text = o->loss_w_text, c.loss_w_image = o->loss_w_image, c.p_null = o->p_null;
    r->gc = c;
    if (gpt_create(&r->gpt, &c, r->bl, err)) return -1;
    gpt_init_params(r->gpt, r->o.seed);
    return 0;
}

static void cache_progress(void *ctx, long done, long total)
{
    run_t *r = ctx;
    tg_event_t e = {.kind = TG_EV_CACHE_PROGRESS, .done = done, .total = total};
    emit(r, &e);
}

/* ---------------------------------------------------------------- batches */

/* The training items of the batch for step: a permutation of the valid training items
 * per epoch, walked in order across steps, so it depends only on (seed, step). Every rank
 * makes the whole global batch (ids only: cheap), so caption dropout draws the single
 * process's numbers, and trains on its rows of it. */
static int fill_batch(run_t *r, long step, char err[256])
{
    const size_t n = r->nvalid[DS_TRAIN], B = (size_t)r->o.batch, T = (size_t)r->gc.text_len;
    const size_t G2 = (size_t)r->cache.grid2;
    for (size_t j = 0; j < B; j++) {
        uint64_t g = (uint64_t)step * B + j, epoch = g / n;
        if (epoch != r->perm_epoch) {
            nn_rng_t rng;
            nn_rng_seed(&rng, nn_seed_mix(r->o.seed, epoch, STREAM_ORDER));
            for (size_t i = 0; i < n; i++) r->perm[i] = r->valid[DS_TRAIN][i];
            for (size_t i = n - 1; i > 0; i--) {
                size_t k = nn_rng_below(&rng, (uint32_t)(i + 1));
                size_t t = r->perm[i];
                r->perm[i] = r->perm[k], r->perm[k] = t;
            }
            r->perm_epoch = epoch;
        }
        size_t item = r->perm[g % n];
        const char *cap = ds_caption(r->ds, DS_TRAIN, item, r->o.seed, epoch);
        if (tok_encode_fixed(r->tok, cap, r->text + j * T, (int)T, err) < 0) return -1;
        memcpy(r->image + j * G2, r->cache.tokens[DS_TRAIN] + item * G2, G2 * sizeof(int));
    }
    return 0;
}

/* ---------------------------------------------------------------- evaluation, samples */

static int eval_split(const run_t *r)
{
    return r->nvalid[DS_HELDOUT] > 0 ? DS_HELDOUT : DS_TRAIN;
}

static int evaluate(run_t *r, tg_event_t *e, char err[256])
{
    const int split = eval_split(r), B = r->bl, T = r->gc.text_len;
    const size_t G2 = (size_t)r->cache.grid2;
    int n = (size_t)r->o.eval_images < r->nvalid[split] ? r->o.eval_images : (int)r->nvalid[split];
    double ce_i = 0, ce_t = 0, n_text = 0;
    for (int i0 = 0; i0 < n; i0 += B) {
        int nb = i0 + B <= n ? B : n - i0;
        long text_targets = 0;
        for (int j = 0; j < nb; j++) {
            size_t item = r->valid[split][i0 + j];
            const char *cap = ds_caption(r->ds, split, item, r->o.seed, 0);
            if (tok_encode_fixed(r->tok, cap, r->text + (size_t)j * T, T, err) < 0) return -1;
            for (int k = 0; k < T; k++) text_targets += r->text[(size_t)j * T + k] != r->gc.pad_id;
            memcpy(r->image + j * G2, r->cache.tokens[split] + item * G2, G2 * sizeof(int));
        }
        float loss = gpt_forward(r->gpt, r->text, r->image, nb);
        if (!isfinite(loss)) {
            snprintf(err, 256, "evaluation: the loss is %s%s%.160s", isnan(loss) ? "NaN" : "infinite",
                     gpt_errmsg(r->gpt)[0] ? ": " : "", gpt_errmsg(r->gpt));
            return -1;
        }
        float ct, ci;
        gpt_loss_parts(r->gpt, &ct, &ci);
        ce_i += (double)ci * nb;
        ce_t += (double)ct * (double)text_targets;
        n_text += (double)text_targets;
    }
    e->eval_items = n;
    e->eval_heldout = split == DS_HELDOUT;
    e->eval_ce_image = n ? ce_i / n : 0;
    e->eval_ce_text = n_text > 0 ? ce_t / n_text : 0;
    e->eval_bits_per_token = e->eval_ce_image / log(2.0);
    e->eval_loss = (r->gc.loss_w_text * e->eval_ce_text + r->gc.loss_w_image * e->eval_ce_image) /
                   (r->gc.loss_w_text + r->gc.loss_w_image);
    return 0;
}

/* samples_n images for the first held-out captions (the first line of each), decoded by the dVAE
 * into one PNG grid with the captions in text chunks. */
static int write_samples(run_t *r, char err[256])
{
    const int split = eval_split(r), T = r->gc.text_len, S = dvae_config(r->dv)->image_size;
    const size_t G2 = (size_t)r->cache.grid2, per = (size_t)3 * S * S;
    int n = r->o.samples_n;
    if ((size_t)n > r->nvalid[split]) n = (int)r->nvalid[split];
    if (n > TG_DVAE_BATCH) n = TG_DVAE_BATCH;
    if (n < 1) return 0;
    char e[GPT_ERR_SIZE];
    if (!r->sampler && gpt_sampler_create(&r->sampler, r->gpt, n, e)) {
        snprintf(err, 256, "samples: %.240s", e);
        return -1;
    }
    int *text = malloc((size_t)n * T * sizeof(int)), *tokens = malloc((size_t)n * G2 * sizeof(int));
    float *pix = malloc((size_t)n * per * sizeof(float));
    img_t *tiles = calloc((size_t)n, sizeof *tiles);
    img_text_t *chunks = calloc((size_t)n + 1, sizeof *chunks);
    char (*keys)[24] = calloc((size_t)n, sizeof *keys);
    char stepbuf[32];
    img_t grid = {0};
    int rc = -1;
    if (!text || !tokens || !pix || !tiles || !chunks || !keys) {
        snprintf(err, 256, "samples: out of memory");
        goto done;
    }
    for (int j = 0; j < n; j++) {
        size_t item = r->valid[split][j];
        const char *cap = ds_caption_line(r->ds, split, item, 0);
        if (tok_encode_fixed(r->tok, cap, text + (size_t)j * T, T, err) < 0) goto done;
        snprintf(keys[j], sizeof keys[j], "caption %d", j + 1);
        chunks[j] = (img_text_t){keys[j], cap};
    }
    snprintf(stepbuf, sizeof stepbuf, "%ld", r->step);
    chunks[n] = (img_text_t){"step", stepbuf};
    gpt_sample_opts_t so = gpt_sample_opts_default();
    so.seed = r->o.seed;
    if (gpt_sample(r->sampler, text, n, &so, tokens, e) != 0) {
        snprintf(err, 256, "samples: %.240s", e);
        goto done;
    }
    dvae_decode(r->dv, tokens, n, pix);
    for (int j = 0; j < n; j++) {
        if (img_init(&tiles[j], S, S, err)) goto done;
        img_from_planar(&tiles[j], pix + (size_t)j * per, (size_t)S * S);
    }
    if (img_grid(&grid, tiles, n, 0, 2, err) ||
        img_save_png(&grid, r->samples_path, chunks, n + 1, err))
        goto done;
    rc = 0;
done:
    img_deinit(&grid);
    if (tiles)
        for (int j = 0; j < n; j++) img_deinit(&tiles[j]);
    free(text), free(tokens), free(pix), free(tiles), free(chunks), free(keys);
    return rc;
}

/* ---------------------------------------------------------------- the loop */

static void free_run(run_t *r)
{
    gpt_sampler_free(r->sampler);
    gpt_free(r->gpt);
    dvae_free(r->dv);
    tok_free(r->tok);
    tcache_free(&r->cache);
    free(r->valid[0]), free(r->valid[1]), free(r->perm), free(r->text), free(r->image);
}

static int setup(run_t *r, const tg_opts_t *o, char err[256])
{
    const tg_paths_t *p = r->p;
    if (snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s.ckpt", p->out) >= (int)sizeof r->ckpt_path ||
        snprintf(r->samples_path, sizeof r->samples_path, "%s.samples.png", p->out) >=
            (int)sizeof r->samples_path ||
        snprintf(r->cache_path, sizeof r->cache_path, "%s", p->cache ? p->cache : p->out) >=
            (int)sizeof r->cache_path - 8) {
        snprintf(err, 256, "output path too long");
        return -1;
    }
    if (!p->cache) strcat(r->cache_path, ".tokens");
    if (p->resume) {
        if (load_checkpoint(r, p->resume, err)) return -1;
        tg_info_t ci;
        if (tg_checkpoint_info(p->resume, &ci, err)) return -1;
        if (ci.holdout != ds_holdout(r->ds)) {
            snprintf(err, 256, "the dataset was opened with held-out fraction %g but the run in "
                     "the checkpoint used %g: the training set would differ",
                     ds_holdout(r->ds), ci.holdout);
            return -1;
        }
    } else if (fresh_model(r, o, err)) {
        return -1;
    }
    if (ds_image_size(r->ds) != dvae_config(r->dv)->image_size) {
        snprintf(err, 256, "the dataset was opened at %dx%d but the dVAE takes %dx%d",
                 ds_image_size(r->ds), ds_image_size(r->ds), dvae_config(r->dv)->image_size,
                 dvae_config(r->dv)->image_size);
        return -1;
    }
    /* rank 0 encodes (or checks) the cache first, the others then reuse it */
    float failed = 0;
    if (r->rank == 0 &&
        tcache_open(&r->cache, r->cache_path, r->dv, TG_DVAE_BATCH, r->ds, cache_progress, r, err))
        failed = 1;
    if (allreduce(r, &failed, 1, err)) return -1;
    if (failed) {
        if (r->rank != 0) snprintf(err, 256, "rank 0 could not open the token cache %.180s", r->cache_path);
        return -1;
    }
    if (r->rank != 0 &&
        tcache_open(&r->cache, r->cache_path, r->dv, TG_DVAE_BATCH, r->ds, NULL, NULL, err))
        return -1;
    if (r->cache.rebuilt)
        info(r, "encoded %zu images into the token cache %s (%s)",
             r->cache.n[0] + r->cache.n[1], r->cache_path, r->cache.why);
    else
        info(r, "token cache %s: %zu images, reused", r->cache_path, r->cache.n[0] + r->cache.n[1]);
    if (r->cache.bad) info(r, "%zu images could not be decoded and are left out", r->cache.bad);
    if (p->resume && r->cache.key != r->data_key) {
        snprintf(err, 256, "the dVAE or the dataset changed since the checkpoint was written "
                 "(token cache key %016" PRIx64 ", the run's %016" PRIx64 "): it cannot continue "
                 "bit for bit", r->cache.key, r->data_key);
        return -1;
    }
    r->data_key = r->cache.key;
    for (int s = 0; s < 2; s++) {
        r->valid[s] = malloc((r->cache.n[s] + 1) * sizeof(size_t));
        if (!r->valid[s]) goto oom;
        for (size_t i = 0; i < r->cache.n[s]; i++)
            if (tcache_ok(&r->cache, s, i)) r->valid[s][r->nvalid[s]++] = i;
    }
    if (r->nvalid[DS_TRAIN] == 0) {
        snprintf(err, 256, "%.200s: no training images with captions (all held out?)", ds_root(r->ds));
        return -1;
    }
    if (r->nvalid[DS_TRAIN] > UINT32_MAX) {
        snprintf(err, 256, "too many training images");
        return -1;
    }
    const size_t B = (size_t)r->o.batch;
    r->perm = malloc(r->nvalid[DS_TRAIN] * sizeof(size_t));
    r->text = malloc(B * r->gc.text_len * sizeof(int));
    r->image = malloc(B * r->cache.grid2 * sizeof(int));
    r->perm_epoch = UINT64_MAX;
    if (!r->perm || !r->text || !r->image) goto oom;
    return 0;
oom:
    snprintf(err, 256, "out of memory for batch %d", r->o.batch);
    return -1;
}

int tg_train(const tg_opts_t *o, const tg_paths_t *p, ds_t *ds, tg_event_fn on_event, void *ctx,
             char err[256])
{
    return tg_train_dist(o, p, ds, NULL, on_event, ctx, err);
}

int tg_train_dist(const tg_opts_t *o, const tg_paths_t *p, ds_t *ds, const dvae_comm_t *comm,
                  tg_event_fn on_event, void *ctx, char err[256])
{
    run_t r;
    memset(&r, 0, sizeof r);
    r.p = p, r.ds = ds, r.fn = on_event, r.ctx = ctx;
    r.comm = comm && comm->size > 1 ? comm : NULL;
    r.rank = r.comm ? comm->rank : 0;
    r.nranks = r.comm ? comm->size : 1;
    if (setup(&r, o, err)) goto fail;

    const int B = r.o.batch, bl = r.bl, root = r.rank == 0;
    const size_t first = (size_t)r.rank * bl;
    const double seq_tokens = (double)B * gpt_seq_len(&r.gc);
    tg_event_t ev = {.kind = TG_EV_START, .step = r.step, .steps = r.o.steps};
    int wish = emit(&r, &ev), stop = 0; /* wish: this rank's; stop: all ranks' agreement */
    if (r.nranks == 1) stop = wish;
    double last_ckpt = nn_now_seconds();
    while (r.step < r.o.steps && !stop) {
        double t0 = nn_now_seconds();
        if (fill_batch(&r, r.step, err)) goto fail;
        nn_rng_t rng;
        nn_rng_seed(&rng, nn_seed_mix(r.o.seed, (uint64_t)r.step, STREAM_DROPOUT));
        int dropped = gpt_drop_captions(&r.gc, r.text, B, &rng);
        float loss = gpt_forward(r.gpt, r.text + first * r.gc.text_len,
                                 r.image + first * r.cache.grid2, bl);
        float ce[2] = {0, 0};
        gpt_zero_grad(r.gpt);
        if (r.nranks == 1) {
            if (isfinite(loss)) gpt_backward(r.gpt);
        } else if (shard_backward(&r, loss, ce, &loss, err)) {
            goto fail;
        }
        if (!isfinite(loss)) {
            snprintf(err, 256, "the loss became %s at step %ld%s%.60s; stopped (the last "
                     "checkpoint, %.80s, is kept)", isnan(loss) ? "NaN" : "infinite",
                     r.step + 1, gpt_errmsg(r.gpt)[0] ? ": " : "", gpt_errmsg(r.gpt), r.ckpt_path);
            goto fail;
        }
        float lr = gpt_lr_at(&r.o.opt, r.step);
        float gnorm = gpt_adamw_step(r.gpt, &r.o.opt, lr);
        if (!isfinite(gnorm)) {
            snprintf(err, 256, "the gradient norm became %s at step %ld; stopped (the last "
                     "checkpoint, %.100s, is kept)", isnan(gnorm) ? "NaN" : "infinite",
                     r.step + 1, r.ckpt_path);
            goto fail;
        }
        r.step++;
        memset(&ev, 0, sizeof ev);
        ev.kind = TG_EV_STEP;
        ev.step = r.step, ev.steps = r.o.steps;
        ev.loss = loss, ev.lr = lr, ev.grad_norm = gnorm, ev.dropped = dropped;
        if (r.nranks == 1) gpt_loss_parts(r.gpt, &ce[0], &ce[1]);
        ev.ce_text = ce[0], ev.ce_image = ce[1];
        ev.step_seconds = nn_now_seconds() - t0;
        ev.tokens_per_second = ev.step_seconds > 0 ? seq_tokens / ev.step_seconds : 0;
        wish |= emit(&r, &ev);
        if (root) warnings(&r);

        /* evaluation, samples and checkpoints are rank 0's; the others go on to the next
         * step's all-reduce and wait there */
        const int last = r.step == r.o.steps;
        if (root && ((r.o.eval_every > 0 && r.step % r.o.eval_every == 0) || last)) {
            memset(&ev, 0, sizeof ev);
            ev.kind = TG_EV_EVAL;
            ev.step = r.step, ev.steps = r.o.steps;
            if (evaluate(&r, &ev, err)) goto fail;
            wish |= emit(&r, &ev);
        }
        if (root && r.o.samples_every > 0 && (r.step % r.o.samples_every == 0 || last)) {
            if (write_samples(&r, err)) goto fail;
            memset(&ev, 0, sizeof ev);
            ev.kind = TG_EV_SAMPLES;
            ev.step = r.step, ev.steps = r.o.steps, ev.path = r.samples_path;
            wish |= emit(&r, &ev);
        }
        float f = wish ? 1.0f : 0.0f; /* stop when any rank asks */
        if (allreduce(&r, &f, 1, err)) goto fail;
        stop = f > 0;
        int due = r.o.checkpoint_every > 0 ? r.step % r.o.checkpoint_every == 0
                                           : nn_now_seconds() - last_ckpt >= r.o.checkpoint_seconds;
        if (root && (due || last || stop)) {
            if (save_checkpoint(&r, err)) {
                size_t n = strlen(err);
                snprintf(err + n, 256 - n, "; the previous checkpoint is kept");
                goto fail;
            }
            last_ckpt = nn_now_seconds();
            memset(&ev, 0, sizeof ev);
            ev.kind = TG_EV_CHECKPOINT;
            ev.step = r.step, ev.steps = r.o.steps, ev.path = r.ckpt_path;
            /* a stop asked for here: at once in one process; several agree on it after
             * the next step */
            wish |= emit(&r, &ev);
            if (r.nranks == 1) stop = wish;
        }
    }
    if (r.step == r.o.steps && root) {
        if (mf_save(p->out, r.dv, r.tok, r.gpt, err)) goto fail;
        memset(&ev, 0, sizeof ev);
        ev.kind = TG_EV_DONE;
        ev.step = r.step, ev.steps = r.o.steps, ev.path = p->out;
        emit(&r, &ev);
    }
    free_run(&r);
    return 0;
fail:
    free_run(&r);
    return -1;
}
