/* The scorer's training loop (rerank.h, rerank_train): batches of (image, caption) pairs
 * from the dataset, the contrastive loss over the global batch, AdamW, held-out retrieval,
 * and checkpoints that resume bit for bit. */
#include "rerank/rerank_internal.h"

#include "weights/weights.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

rerank_train_opts_t rerank_train_opts_default(void)
{
    rerank_train_opts_t o = {
        .steps = 3000, .batch = 128, .opt = rerank_opt_default(), .seed = 1,
        .eval_every = 250, .eval_images = 500, .checkpoint_every = 0,
        .checkpoint_seconds = 300.0,
    };
    return o;
}

typedef struct {
    rerank_train_opts_t o;
    /* data-parallel: rows [rank * bl, (rank + 1) * bl) of each global batch of
     * o.batch = nranks * bl are this rank's; one process is rank 0 of 1 */
    const dvae_comm_t *comm;
    int rank, nranks, bl;
    ds_t *ds;
    tok_t *tok;
    rerank_t *m;
    uint64_t data_key;
    long step;
    char ckpt_path[1024];
    size_t *perm, *idx, *used;
    uint64_t perm_epoch, *epochs; /* epochs [bl]: of each row of the batch */
    float *images;            /* [bl, 3, S, S] */
    int *ids;                 /* [bl, T] */
    float *eval_img, *eval_txt; /* [eval_images, E] */
    const char **eval_caps;
    rerank_train_fn fn;
    void *ctx;
} run_t;

static int emit(run_t *r, rerank_event_t *e)
{
    if (!r->fn || (r->rank != 0 && e->kind != RR_EV_STEP)) return 0;
    return r->fn(e, r->ctx);
}

static int allreduce(const run_t *r, float *v, size_t n, char err[RERANK_ERR_SIZE])
{
    if (r->nranks == 1) return 0;
    if (r->comm->allreduce_sum(v, n, r->comm->ctx))
        return rr_fail(err, "the all-reduce over %d ranks failed", r->nranks);
    return 0;
}

/* The dataset as the run sees it: FNV-1a over every item's path, per split, so a resumed
 * run knows it draws the very same items. */
static uint64_t data_key(const ds_t *ds)
{
    uint64_t h = 1469598103934665603ull;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < ds_count(ds, s); i++) {
            for (const unsigned char *p = (const unsigned char *)ds_name(ds, s, i); *p; p++)
                h = (h ^ *p) * 1099511628211ull;
            h = (h ^ 0xFF) * 1099511628211ull; /* end of a name */
        }
        h = (h ^ 0xFE) * 1099511628211ull; /* end of a split */
    }
    return h;
}

/* ---------------------------------------------------------------- options in files */

static int store_opts(const run_t *r, wf_config_t *c)
{
    const rerank_train_opts_t *o = &r->o;
    char key[32];
    snprintf(key, sizeof key, "%016" PRIx64, r->data_key);
    return wf_config_set_int(c, "train.step", r->step) ||
           wf_config_set_int(c, "train.opt_steps", rerank_opt_steps(r->m)) ||
           wf_config_set_float(c, "train.holdout", ds_holdout(r->ds)) ||
           wf_config_set_str(c, "train.data_key", key) ||
           wf_config_set_int(c, "train.steps", o->steps) ||
           wf_config_set_int(c, "train.batch", o->batch) ||
           wf_config_set_float(c, "train.lr", o->opt.lr) ||
           wf_config_set_float(c, "train.lr_min", o->opt.lr_min) ||
           wf_config_set_int(c, "train.warmup", o->opt.warmup_steps) ||
           wf_config_set_float(c, "train.beta1", o->opt.beta1) ||
           wf_config_set_float(c, "train.beta2", o->opt.beta2) ||
           wf_config_set_float(c, "train.eps", o->opt.eps) ||
           wf_config_set_float(c, "train.weight_decay", o->opt.weight_decay) ||
           wf_config_set_float(c, "train.grad_clip", o->opt.grad_clip) ||
           /* the seed's 64 bits as a signed integer, bit for bit */
           wf_config_set_int(c, "train.seed", (int64_t)o->seed) ||
           wf_config_set_int(c, "train.eval_every", o->eval_every) ||
           wf_config_set_int(c, "train.eval_images", o->eval_images) ||
           wf_config_set_int(c, "train.checkpoint_every", o->checkpoint_every) ||
           wf_config_set_float(c, "train.checkpoint_seconds", o->checkpoint_seconds);
}

/* The options and progress of a checkpoint; -1 when one is missing or out of range. */
static int read_opts(rerank_train_opts_t *o, long *step, long *opt_steps, double *holdout,
                     uint64_t *key, const wf_config_t *c)
{
    int64_t i[9];
    double f[9];
    const char *k;
    if (wf_config_get_int(c, "train.step", &i[0]) || wf_config_get_int(c, "train.opt_steps", &i[1]) ||
        wf_config_get_int(c, "train.steps", &i[2]) || wf_config_get_int(c, "train.batch", &i[3]) ||
        wf_config_get_int(c, "train.warmup", &i[4]) || wf_config_get_int(c, "train.seed", &i[5]) ||
        wf_config_get_int(c, "train.eval_every", &i[6]) ||
        wf_config_get_int(c, "train.eval_images", &i[7]) ||
        wf_config_get_int(c, "train.checkpoint_every", &i[8]) ||
        wf_config_get_float(c, "train.holdout", &f[0]) || wf_config_get_float(c, "train.lr", &f[1]) ||
        wf_config_get_float(c, "train.lr_min", &f[2]) || wf_config_get_float(c, "train.beta1", &f[3]) ||
        wf_config_get_float(c, "train.beta2", &f[4]) || wf_config_get_float(c, "train.eps", &f[5]) ||
        wf_config_get_float(c, "train.weight_decay", &f[6]) ||
        wf_config_get_float(c, "train.grad_clip", &f[7]) ||
        wf_config_get_float(c, "train.checkpoint_seconds", &f[8]) ||
        wf_config_get_str(c, "train.data_key", &k) || sscanf(k, "%16" SCNx64, key) != 1)
        return -1;
    if (i[0] < 0 || i[1] < 0 || i[2] < 1 || i[0] > i[2] || i[3] < 1 || i[3] > 65536 || i[4] < 0 ||
        i[6] < 0 || i[7] < 1 || i[7] > 1000000 || i[8] < 0)
        return -1;
    *step = (long)i[0], *opt_steps = (long)i[1], *holdout = f[0];
    o->steps = (long)i[2], o->batch = (int)i[3], o->opt.warmup_steps = (long)i[4];
    o->seed = (uint64_t)i[5], o->eval_every = (long)i[6], o->eval_images = (int)i[7];
    o->checkpoint_every = (long)i[8];
    o->opt.lr = (float)f[1], o->opt.lr_min = (float)f[2], o->opt.beta1 = (float)f[3];
    o->opt.beta2 = (float)f[4], o->opt.eps = (float)f[5], o->opt.weight_decay = (float)f[6];
    o->opt.grad_clip = (float)f[7], o->checkpoint_seconds = f[8];
    o->opt.total_steps = o->steps;
    return 0;
}

static int moment_name(char *out, size_t n, const char *which, const char *name)
{
    return snprintf(out, n, "opt.%s.%s", which, name) >= (int)n ? -1 : 0;
}

static int save_checkpoint(run_t *r, char err[RERANK_ERR_SIZE])
{
    wf_config_t *extra = wf_config_create();
    if (!extra || store_opts(r, extra)) {
        wf_config_free(extra);
        return rr_fail(err, "%.200s: out of memory", r->ckpt_path);
    }
    wf_writer_t *w;
    int rc = rerank_save(r->m, r->tok, r->ckpt_path, extra, 1, &w, err);
    wf_config_free(extra);
    if (rc) return -1;
    for (int i = 0; i < rerank_tensor_count(r->m); i++) {
        const rerank_tensor_t *t = rerank_tensor_at(r->m, i);
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

int rerank_checkpoint_info(const char *path, rerank_ckpt_info_t *info, char err[RERANK_ERR_SIZE])
{
    wf_reader_t *rd;
    if (wf_reader_open(&rd, path, err)) return -1;
    const wf_config_t *cfg = wf_reader_config(rd);
    rerank_config_t c;
    rerank_train_opts_t o = rerank_train_opts_default();
    long step, opt_steps;
    uint64_t key;
    int rc = -1, found = rerank_config_read(&c, cfg, path, err);
    if (found == 0 || (found > 0 && (read_opts(&o, &step, &opt_steps, &info->holdout, &key, cfg) ||
                                     !wf_reader_find(rd, "opt.m.rerank.logit_scale")))) {
        rr_fail(err, "%.160s: not a scorer training checkpoint (rerank.* config, train.* settings "
                "or optimizer state missing)", path);
        goto done;
    }
    if (found < 0) goto done;
    info->image_size = c.image_size;
    info->batch = o.batch;
    info->step = step;
    info->steps = o.steps;
    rc = 0;
done:
    wf_reader_close(rd);
    return rc;
}

static int load_checkpoint(run_t *r, const char *path, long steps_override, char err[RERANK_ERR_SIZE])
{
    wf_reader_t *rd;
    if (wf_reader_open(&rd, path, err)) return -1;
    long opt_steps;
    double holdout;
    r->o = rerank_train_opts_default();
    if (read_opts(&r->o, &r->step, &opt_steps, &holdout, &r->data_key, wf_reader_config(rd))) {
        rr_fail(err, "%.160s: not a scorer training checkpoint (train.* settings missing or bad)",
                path);
        goto fail;
    }
    if (holdout != ds_holdout(r->ds)) {
        rr_fail(err, "the dataset was opened with held-out fraction %g but the run in the "
                "checkpoint used %g: the training set would differ", ds_holdout(r->ds), holdout);
        goto fail;
    }
    if (steps_override > 0) {
        if (steps_override < r->step) {
            rr_fail(err, "%.120s: --steps %ld is below the checkpoint's step %ld", path,
                    steps_override, r->step);
            goto fail;
        }
        r->o.steps = r->o.opt.total_steps = steps_override;
    }
    if (r->o.batch % r->nranks) {
        rr_fail(err, "the checkpoint's batch (%d) is not a multiple of the number of ranks (%d)",
                r->o.batch, r->nranks);
        goto fail;
    }
    r->bl = r->o.batch / r->nranks;
    if (rerank_load(&r->m, &r->tok, path, r->bl, 1, err)) goto fail;
    for (int i = 0; i < rerank_tensor_count(r->m); i++) {
        const rerank_tensor_t *t = rerank_tensor_at(r->m, i);
        char name[128];
        if (moment_name(name, sizeof name, "m", t->name) ||
            wf_reader_load(rd, name, t->ndim, t->shape, t->adam_m, err) ||
            moment_name(name, sizeof name, "v", t->name) ||
            wf_reader_load(rd, name, t->ndim, t->shape, t->adam_v, err))
            goto fail;
    }
    rerank_set_opt_steps(r->m, opt_steps);
    wf_reader_close(rd);
    return 0;
fail:
    wf_reader_close(rd);
    return -1;
}

/* ---------------------------------------------------------------- batches */

/* This rank's rows of the global batch of step: the training items in a per-epoch
 * permutation walked in order across steps (a function of seed and step only), each
 * with its caption for that epoch. */
static int fill_batch(run_t *r, long step, char err[RERANK_ERR_SIZE])
{
    const size_t n = ds_count(r->ds, DS_TRAIN), B = (size_t)r->o.batch, first = (size_t)r->rank * r->bl;
    uint64_t *epochs = r->epochs;
    for (int j = 0; j < r->bl; j++) {
        uint64_t g = (uint64_t)step * B + first + (size_t)j, epoch = g / n;
        if (epoch != r->perm_epoch) {
            ds_epoch_order(r->ds, DS_TRAIN, r->o.seed, epoch, r->perm);
            r->perm_epoch = epoch;
        }
        r->idx[j] = r->perm[g % n];
        epochs[j] = epoch;
    }
    if (ds_batch_fill(r->ds, DS_TRAIN, r->idx, r->bl, r->images, DS_NCHW, r->used, 0, err))
        return -1;
    const int T = rerank_config(r->m)->text_len;
    for (int j = 0; j < r->bl; j++) {
        /* the caption of the image actually loaded (a bad one is replaced by the next) */
        const char *cap = ds_caption(r->ds, DS_TRAIN, r->used[j], r->o.seed, epochs[j]);
        if (rerank_encode_text(rerank_config(r->m), r->tok, cap, r->ids + (size_t)j * T, err) < 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- evaluation */

static int eval_split(const run_t *r)
{
    return ds_count(r->ds, DS_HELDOUT) > 0 ? DS_HELDOUT : DS_TRAIN;
}

/* Text -> image retrieval among the first eval_images items of the held-out split, each
 * image with its first caption line. */
static int evaluate(run_t *r, rerank_event_t *e, char err[RERANK_ERR_SIZE])
{
    const int split = eval_split(r), B = r->bl, T = rerank_config(r->m)->text_len;
    const int E = rerank_config(r->m)->embed_dim;
    const size_t count = ds_count(r->ds, split);
    const int n = (size_t)r->o.eval_images < count ? r->o.eval_images : (int)count;
    for (int i0 = 0; i0 < n; i0 += B) {
        const int nb = i0 + B <= n ? B : n - i0;
        for (int j = 0; j < nb; j++) r->idx[j] = (size_t)(i0 + j);
        if (ds_batch_fill(r->ds, split, r->idx, nb, r->images, DS_NCHW, r->used, 0, err)) return -1;
        for (int j = 0; j < nb; j++) {
            r->eval_caps[i0 + j] = ds_caption_line(r->ds, split, r->used[j], 0);
            if (rerank_encode_text(rerank_config(r->m), r->tok, r->eval_caps[i0 + j],
                                   r->ids + (size_t)j * T, err) < 0)
                return -1;
        }
        if (rerank_encode(r->m, r->images, r->ids, nb)) return rr_fail(err, "%s", rerank_errmsg(r->m));
        memcpy(r->eval_img + (size_t)i0 * E, rerank_image_emb(r->m), (size_t)nb * E * sizeof(float));
        memcpy(r->eval_txt + (size_t)i0 * E, rerank_text_emb(r->m), (size_t)nb * E * sizeof(float));
    }
    rerank_retrieval(r->eval_txt, r->eval_img, n, E, r->eval_caps, &e->eval);
    e->eval_heldout = split == DS_HELDOUT;
    return 0;
}

/* The share of this step's images whose own caption scored highest. */
static float batch_accuracy(const rerank_t *m, int n)
{
    const float *lg = rerank_logits(m);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        const float *row = lg + (size_t)i * n;
        int best = 0;
        for (int j = 1; j < n; j++) best = row[j] > row[best] ? j : best;
        ok += best == i;
    }
    return n ? (float)ok / (float)n : 0.0f;
}

/* ---------------------------------------------------------------- setup */

static void free_run(run_t *r)
{
    rerank_free(r->m);
    tok_free(r->tok);
    free(r->perm), free(r->idx), free(r->used), free(r->epochs), free(r->images), free(r->ids);
    free(r->eval_img), free(r->eval_txt), free(r->eval_caps);
}

static int fresh_model(run_t *r, const rerank_config_t *cfg, const rerank_train_opts_t *o,
                       tok_t *tok, char err[RERANK_ERR_SIZE])
{
    r->o = *o;
    r->o.opt.total_steps = r->o.steps;
    if (r->o.steps < 1 || r->o.batch < 1 || r->o.eval_images < 1)
        return rr_fail(err, "steps, batch and eval images must be positive");
    if (r->o.batch % r->nranks)
        return rr_fail(err, "the batch (%d) must be a multiple of the number of ranks (%d): each "
                       "rank takes an equal share", r->o.batch, r->nranks);
    r->bl = r->o.batch / r->nranks;
    if (!tok) return rr_fail(err, "no tokenizer given");
    if (tok_pad_id(tok) < 0 || tok_bos_id(tok) < 0 || tok_eos_id(tok) < 0)
        return rr_fail(err, "the tokenizer has no <pad>, <s> (BOS) or </s> (EOS) piece");
    /* the run owns its tokenizer, as a resumed one does: a copy of the caller's */
    size_t nb;
    const void *bytes = tok_model_bytes(tok, &nb);
    if (!(r->tok = tok_create(bytes, nb, err))) return -1;
    rerank_config_t c = *cfg;
    c.text_vocab = tok_vocab_size(tok);
    c.pad_id = tok_pad_id(tok);
    c.bos_id = tok_bos_id(tok);
    c.eos_id = tok_eos_id(tok);
    if (rerank_create(&r->m, &c, r->bl, 1, err)) return -1;
    rerank_init_params(r->m, r->o.seed);
    r->data_key = data_key(r->ds);
    return 0;
}

static int setup(run_t *r, const rerank_config_t *cfg, const rerank_train_opts_t *o, tok_t *tok,
                 const char *out, const char *resume, long steps_override, char err[RERANK_ERR_SIZE])
{
    if (snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s.ckpt", out) >= (int)sizeof r->ckpt_path)
        return rr_fail(err, "output path too long");
    if (resume ? load_checkpoint(r, resume, steps_override, err) : fresh_model(r, cfg, o, tok, err))
        return -1;
    const rerank_config_t *c = rerank_config(r->m);
    if (ds_image_size(r->ds) != c->image_size)
        return rr_fail(err, "the dataset was opened at %dx%d but the scorer takes %dx%d",
                       ds_image_size(r->ds), ds_image_size(r->ds), c->image_size, c->image_size);
    if (resume && data_key(r->ds) != r->data_key)
        return rr_fail(err, "the dataset's images changed since the checkpoint was written: the "
                       "run cannot continue bit for bit");
    const size_t n = ds_count(r->ds, DS_TRAIN);
    if (n == 0)
        return rr_fail(err, "%.200s: no training images with captions (all held out?)", ds_root(r->ds));
    const size_t bl = (size_t)r->bl, per = (size_t)3 * c->image_size * c->image_size;
    const size_t ne = (size_t)r->o.eval_images, E = (size_t)c->embed_dim;
    r->perm = malloc(n * sizeof(size_t));
    r->idx = malloc(bl * sizeof(size_t));
    r->used = malloc(bl * sizeof(size_t));
    r->epochs = malloc(bl * sizeof(uint64_t));
    r->images = malloc(bl * per * sizeof(float));
    r->ids = malloc(bl * c->text_len * sizeof(int));
    r->perm_epoch = UINT64_MAX;
    if (r->rank == 0) {
        r->eval_img = malloc(ne * E * sizeof(float));
        r->eval_txt = malloc(ne * E * sizeof(float));
        r->eval_caps = malloc(ne * sizeof *r->eval_caps);
    }
    if (!r->perm || !r->idx || !r->used || !r->epochs || !r->images || !r->ids ||
        (r->rank == 0 && (!r->eval_img || !r->eval_txt || !r->eval_caps)))
        return rr_fail(err, "out of memory for batch %d", r->o.batch);
    return 0;
}

/* ---------------------------------------------------------------- the loop */

int rerank_train(const rerank_config_t *cfg, const rerank_train_opts_t *o, tok_t *tok, ds_t *ds,
                 const char *out, const char *resume_path, long steps_override,
                 const dvae_comm_t *comm, rerank_train_fn on_event, void *ctx,
                 char err[RERANK_ERR_SIZE])
{
    run_t r;
    memset(&r, 0, sizeof r);
    r.ds = ds, r.fn = on_event, r.ctx = ctx;
    r.comm = comm && comm->size > 1 ? comm : NULL;
    r.rank = r.comm ? comm->rank : 0;
    r.nranks = r.comm ? comm->size : 1;
    if (setup(&r, cfg, o, tok, out, resume_path, steps_override, err)) goto fail;

    const int root = r.rank == 0;
    size_t ng;
    float *grads = rerank_grad_block(r.m, &ng);
    rerank_event_t ev = {.kind = RR_EV_START, .step = r.step, .steps = r.o.steps};
    int wish = emit(&r, &ev), stop = r.nranks == 1 ? wish : 0;
    double last_ckpt = nn_now_seconds();
    while (r.step < r.o.steps && !stop) {
        double t0 = nn_now_seconds();
        if (fill_batch(&r, r.step, err)) goto fail;
        float loss = rerank_forward(r.m, r.images, r.ids, r.bl, r.comm);
        rerank_zero_grad(r.m);
        /* every rank computed the same loss over the gathered batch: they agree here */
        if (!isfinite(loss)) {
            rr_fail(err, "the loss became %s at step %ld%s%.80s; stopped (the last checkpoint, "
                    "%.80s, is kept)", isnan(loss) ? "NaN" : "infinite", r.step + 1,
                    rerank_errmsg(r.m)[0] ? ": " : "", rerank_errmsg(r.m), r.ckpt_path);
            goto fail;
        }
        rerank_backward_loss(r.m);
        /* each rank's gradient is its rows' share of the one global loss: sum them */
        if (allreduce(&r, grads, ng, err)) goto fail;
        const float lr = rerank_lr_at(&r.o.opt, r.step);
        const float gnorm = rerank_adamw_step(r.m, &r.o.opt, lr);
        if (!isfinite(gnorm)) {
            rr_fail(err, "the gradient norm became %s at step %ld; stopped (the last checkpoint, "
                    "%.100s, is kept)", isnan(gnorm) ? "NaN" : "infinite", r.step + 1, r.ckpt_path);
            goto fail;
        }
        r.step++;
        memset(&ev, 0, sizeof ev);
        ev.kind = RR_EV_STEP;
        ev.step = r.step, ev.steps = r.o.steps;
        ev.loss = loss, ev.lr = lr, ev.grad_norm = gnorm;
        ev.logit_scale = expf(rerank_log_scale(r.m));
        ev.batch_acc = batch_accuracy(r.m, r.o.batch);
        ev.step_seconds = nn_now_seconds() - t0;
        ev.pairs_per_second = ev.step_seconds > 0 ? r.o.batch / ev.step_seconds : 0;
        wish |= emit(&r, &ev);

        const int last = r.step == r.o.steps;
        if (root && ((r.o.eval_every > 0 && r.step % r.o.eval_every == 0) || last)) {
            memset(&ev, 0, sizeof ev);
            ev.kind = RR_EV_EVAL;
            ev.step = r.step, ev.steps = r.o.steps;
            if (evaluate(&r, &ev, err)) goto fail;
            wish |= emit(&r, &ev);
        }
        float f = wish ? 1.0f : 0.0f; /* stop when any rank asks */
        if (allreduce(&r, &f, 1, err)) goto fail;
        stop = f > 0;
        int due = r.o.checkpoint_every > 0 ? r.step % r.o.checkpoint_every == 0
                                           : nn_now_seconds() - last_ckpt >= r.o.checkpoint_seconds;
        if (root && (due || last || stop)) {
            if (save_checkpoint(&r, err)) {
                size_t len = strlen(err);
                snprintf(err + len, RERANK_ERR_SIZE - len, "; the previous checkpoint is kept");
                goto fail;
            }
            last_ckpt = nn_now_seconds();
            memset(&ev, 0, sizeof ev);
            ev.kind = RR_EV_CHECKPOINT;
            ev.step = r.step, ev.steps = r.o.steps, ev.path = r.ckpt_path;
            wish |= emit(&r, &ev);
            if (r.nranks == 1) stop = wish;
        }
    }
    if (r.step == r.o.steps && root) {
        if (rerank_save(r.m, r.tok, out, NULL, 0, NULL, err)) goto fail;
        memset(&ev, 0, sizeof ev);
        ev.kind = RR_EV_DONE;
        ev.step = r.step, ev.steps = r.o.steps, ev.path = out;
        emit(&r, &ev);
    }
    free_run(&r);
    return 0;
fail:
    free_run(&r);
    return -1;
}
