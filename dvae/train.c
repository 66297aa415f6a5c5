/* The dVAE training loop: data prefetch, Gumbel noise, AdamW with warmup and cosine
 * decay, held-out evaluation, previews and atomic checkpoints. */
#include "dvae/dvae.h"

#include "data/data.h"
#include "nn/nn.h"
#include "weights/weights.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dvae_train_opts_t dvae_train_opts_default(void)
{
    dvae_train_opts_t o = {
        .steps = 5000, .batch = 16, .lr = 1e-3f, .lr_min = 1e-4f, .warmup = 100,
        .weight_decay = 0.0f, .grad_clip = 1.0f, .seed = 1,
        .eval_every = 500, .eval_images = 256, .samples_every = 500,
        .checkpoint_every = 0, .checkpoint_seconds = 300.0,
    };
    return o;
}


/* ---------------------------------------------------------------- the run's state */

typedef struct run {
    dvae_t *m;
    ds_t *ds;
    dvae_config_t cfg;
    dvae_train_opts_t o;
    /* data-parallel: this rank's rows [rank * bl, (rank + 1) * bl) of each global batch
     * of o.batch = nranks * bl; one process is rank 0 of 1 */
    const dvae_comm_t *comm;
    int rank, nranks, bl;
    const char *out_path;
    char ckpt_path[1024], preview_path[1024];
    long step;
    float *adam_m, *adam_v;
    float *noise;
    /* double-buffered batches: the prefetch thread fills one while the step uses the
     * other */
    float *batch[2];
    size_t *idx[2];
    size_t *perm;
    uint64_t perm_epoch;
    pthread_t loader;
    struct load_job { struct run *r; int buf; } job;
    int loader_running, loader_rc;
    char loader_err[256];
    int loader_buf;
} run_t;

/* The training items of the batch for `step`: a fixed permutation per epoch, walked in
 * order across steps, so the order depends only on (seed, step). This rank's rows of it. */
static void batch_indices(run_t *r, long step, size_t *idx)
{
    const size_t n = ds_count(r->ds, DS_TRAIN), B = (size_t)r->o.batch;
    const size_t first = (size_t)r->rank * (size_t)r->bl;
    for (size_t j = 0; j < (size_t)r->bl; j++) {
        uint64_t g = (uint64_t)step * B + first + j, epoch = g / n;
        if (epoch != r->perm_epoch) {
            ds_epoch_order(r->ds, DS_TRAIN, r->o.seed, epoch, r->perm);
            r->perm_epoch = epoch;
        }
        idx[j] = r->perm[g % n];
    }
}

static void *load_batch(void *p)
{
    run_t *r = ((struct load_job *)p)->r;
    int b = ((struct load_job *)p)->buf;
    /* one decoding thread: the training step has the cores */
    r->loader_rc = ds_batch_fill(r->ds, DS_TRAIN, r->idx[b], r->bl, r->batch[b], DS_NCHW,
                                 NULL, 1, r->loader_err);
    return NULL;
}

static int start_load(run_t *r, long step, int buf)
{
    batch_indices(r, step, r->idx[buf]);
    r->job.r = r;
    r->job.buf = buf;
    r->loader_buf = buf;
    if (pthread_create(&r->loader, NULL, load_batch, &r->job) != 0) {
        load_batch(&r->job); /* no thread: load in place */
        r->loader_running = 0;
        return 0;
    }
    r->loader_running = 1;
    return 0;
}

static int finish_load(run_t *r, char err[256])
{
    if (r->loader_running) pthread_join(r->loader, NULL);
    r->loader_running = 0;
    if (r->loader_rc) {
        snprintf(err, 256, "%s", r->loader_err);
        return -1;
    }
    return 0;
}

/* Gumbel noise for a step's global batch (n values), in chunks with their own streams so
 * the result does not depend on the number of threads; only the chunks that overlap this
 * rank's values [from, to) are drawn, so the ranks together see the single process's. */
static void fill_noise(run_t *r, long step, size_t n, size_t from, size_t to)
{
    enum { CHUNKS = 64 };
    size_t per = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static) if (to - from >= NN_PARALLEL_MIN)
    for (int c = 0; c < CHUNKS; c++) {
        size_t lo = (size_t)c * per, hi = lo + per < n ? lo + per : n;
        if (lo >= hi || hi <= from || lo >= to) continue;
        nn_rng_t rng;
        nn_rng_seed(&rng, nn_seed_mix(r->o.seed, (uint64_t)step, (uint64_t)c + 1));
        nn_rng_fill_gumbel(&rng, r->noise + lo, hi - lo);
    }
}

/* ---------------------------------------------------------------- checkpoints */

static int put_int(wf_config_t *c, const char *k, int64_t v) { return wf_config_set_int(c, k, v); }
static int put_float(wf_config_t *c, const char *k, double v) { return wf_config_set_float(c, k, v); }

static int store_opts(const dvae_train_opts_t *o, long step, double holdout, wf_config_t *c)
{
    return put_int(c, "train.step", step) || put_float(c, "train.holdout", holdout) || put_int(c, "train.steps", o->steps) ||
           put_int(c, "train.batch", o->batch) || put_float(c, "train.lr", o->lr) ||
           put_float(c, "train.lr_min", o->lr_min) || put_int(c, "train.warmup", o->warmup) ||
           put_float(c, "train.weight_decay", o->weight_decay) ||
           put_float(c, "train.grad_clip", o->grad_clip) ||
           /* the seed's 64 bits as a signed integer, bit for bit */
           put_int(c, "train.seed", (int64_t)o->seed) ||
           put_int(c, "train.eval_every", o->eval_every) ||
           put_int(c, "train.eval_images", o->eval_images) ||
           put_int(c, "train.samples_every", o->samples_every) ||
           put_int(c, "train.checkpoint_every", o->checkpoint_every) ||
           put_float(c, "train.checkpoint_seconds", o->checkpoint_seconds);
}

static int get_i(const wf_config_t *c, const char *k, int64_t *v) { return wf_config_get_int(c, k, v); }

static int read_opts(dvae_train_opts_t *o, long *step, const wf_config_t *c)
{
    int64_t i[9];
    double f[6];
    if (get_i(c, "train.step", &i[0]) || get_i(c, "train.steps", &i[1]) ||
        get_i(c, "train.batch", &i[2]) || get_i(c, "train.warmup", &i[3]) ||
        get_i(c, "train.seed", &i[4]) || get_i(c, "train.eval_every", &i[5]) ||
        get_i(c, "train.eval_images", &i[6]) || get_i(c, "train.samples_every", &i[7]) ||
        get_i(c, "train.checkpoint_every", &i[8]) ||
        wf_config_get_float(c, "train.lr", &f[0]) || wf_config_get_float(c, "train.lr_min", &f[1]) ||
        wf_config_get_float(c, "train.weight_decay", &f[2]) ||
        wf_config_get_float(c, "train.grad_clip", &f[3]) ||
        wf_config_get_float(c, "train.checkpoint_seconds", &f[4]))
        return -1;
    if (i[0] < 0 || i[1] < 1 || i[2] < 1 || i[2] > 4096 || i[0] > i[1]) return -1;
    *step = (long)i[0];
    o->steps = (long)i[1], o->batch = (int)i[2], o->warmup = (long)i[3];
    o->seed = (uint64_t)i[4], o->eval_every = (long)i[5], o->eval_images = (int)i[6];
    o->samples_every = (long)i[7], o->checkpoint_every = (long)i[8];
    o->lr = (float)f[0], o->lr_min = (float)f[1], o->weight_decay = (float)f[2];
    o->grad_clip = (float)f[3], o->checkpoint_seconds = f[4];
    return 0;
}

/* The AdamW moments are stored as tensors "opt.m.NAME" and "opt.v.NAME" beside the
 * parameters: moment i is the first moment of parameter tensor i/2 when i is even, the
 * second when odd. */
typedef struct {
    char name[128];
    int ndim;
    int64_t shape[4];
    float *data;
} moment_t;

static int moment_at(run_t *r, int i, moment_t *mt)
{
    dvae_tensor_t t = dvae_tensor(r->m, i / 2);
    size_t off = (size_t)(t.data - dvae_params(r->m));
    mt->ndim = t.ndim;
    for (int d = 0; d < t.ndim; d++) mt->shape[d] = t.shape[d];
    mt->data = (i % 2 ? r->adam_v : r->adam_m) + off;
    int n = snprintf(mt->name, sizeof mt->name, "opt.%s.%s", i % 2 ? "v" : "m", t.name);
    return n >= (int)sizeof mt->name ? -1 : 0;
}

static int save_checkpoint(run_t *r, char err[256])
{
    wf_config_t *cfg = wf_config_create();
    if (!cfg || dvae_config_store(&r->cfg, cfg) ||
        store_opts(&r->o, r->step, ds_holdout(r->ds), cfg)) {
        wf_config_free(cfg);
        snprintf(err, 256, "%.200s: out of memory", r->ckpt_path);
        return -1;
    }
    wf_writer_t *w;
    int rc = wf_writer_open(&w, r->ckpt_path, cfg, 1, err);
    wf_config_free(cfg);
    if (rc) return -1;
    if (dvae_write_tensors(r->m, w, err)) goto fail;
    for (int i = 0; i < 2 * dvae_tensor_count(r->m); i++) {
        moment_t mt;
        if (moment_at(r, i, &mt) ||
            wf_writer_add_tensor(w, mt.name, WF_F32, mt.ndim, mt.shape, mt.data, err))
            goto fail;
    }
    return wf_writer_close(w, err) ? -1 : 0;
fail:
    wf_writer_abort(w);
    return -1;
}

static int load_checkpoint(run_t *r, const char *path, long steps_override, int max_batch,
                           char err[256])
{
    wf_reader_t *rd;
    if (wf_reader_open(&rd, path, err)) return -1;
    const wf_config_t *cfg = wf_reader_config(rd);
    if (dvae_config_read(&r->cfg, cfg, path, err)) goto fail;
    if (read_opts(&r->o, &r->step, cfg)) {
        snprintf(err, 256, "%s: not a dVAE training checkpoint (train.* settings missing or bad)", path);
        goto fail;
    }
    if (steps_override > 0) {
        if (steps_override < r->step) {
            snprintf(err, 256, "%s: --steps %ld is below the checkpoint's step %ld", path,
                     steps_override, r->step);
            goto fail;
        }
        r->o.steps = steps_override;
    }
    if (dvae_create(&r->m, &r->cfg, max_batch, err) || dvae_read_tensors(r->m, rd, err)) goto fail;
    size_t np = dvae_param_count(r->m);
    r->adam_m = malloc(np * sizeof(float));
    r->adam_v = malloc(np * sizeof(float));
    if (!r->adam_m || !r->adam_v) {
        snprintf(err, 256, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < 2 * dvae_tensor_count(r->m); i++) {
        moment_t mt;
        if (moment_at(r, i, &mt) ||
            wf_reader_load(rd, mt.name, mt.ndim, mt.shape, mt.data, err))
            goto fail;
    }
    wf_reader_close(rd);
    return 0;
fail:
    wf_reader_close(rd);
    return -1;
}

int dvae_checkpoint_info(const char *path, dvae_checkpoint_info_t *info, char err[256])
{
    wf_reader_t *rd;
    if (wf_reader_open(&rd, path, err)) return -1;
    const wf_config_t *cfg = wf_reader_config(rd);
    dvae_config_t c;
    dvae_train_opts_t o;
    int rc = -1;
    if (dvae_config_read(&c, cfg, path, err)) goto done;
    if (read_opts(&o, &info->step, cfg) ||
        wf_config_get_float(cfg, "train.holdout", &info->holdout)) {
        snprintf(err, 256, "%.160s: not a dVAE training checkpoint (train.* settings missing or bad)", path);
        goto done;
    }
    info->image_size = c.image_size;
    info->batch = o.batch;
    info->steps = o.steps;
    rc = 0;
done:
    wf_reader_close(rd);
    return rc;
}

/* ---------------------------------------------------------------- evaluation, preview */

/* Held-out images through argmax tokens and back: what generation will see. */
static int evaluate(run_t *r, dvae_train_event_t *ev, char err[256])
{
    const int split = ds_count(r->ds, DS_HELDOUT) > 0 ? DS_HELDOUT : DS_TRAIN;
    const size_t avail = ds_count(r->ds, split);
    const int n = (size_t)r->o.eval_images < avail ? r->o.eval_images : (int)avail;
    ev->eval_heldout = split == DS_HELDOUT;
    if (n <= 0) {
        snprintf(err, 256, "evaluation: no images to evaluate");
        return -1;
    }
    const int B = r->bl, S = r->cfg.image_size, G = dvae_grid_size(&r->cfg);
    const int K = r->cfg.codebook_size;
    const size_t per = (size_t)3 * S * S;
    float *x = r->batch[r->loader_buf ^ 1], *xhat = malloc((size_t)B * per * sizeof(float));
    int *tokens = malloc((size_t)B * G * G * sizeof(int));
    long *hist = calloc((size_t)K, sizeof(long));
    size_t *idx = malloc((size_t)B * sizeof(size_t));
    if (!xhat || !tokens || !hist || !idx) {
        free(xhat), free(tokens), free(hist), free(idx);
        snprintf(err, 256, "evaluation: out of memory");
        return -1;
    }
    double se = 0;
    long cells = 0;
    int rc = 0;
    for (int i0 = 0; i0 < n && !rc; i0 += B) {
        int nb = i0 + B <= n ? B : n - i0;
        for (int j = 0; j < nb; j++) idx[j] = (size_t)(i0 + j);
        if (ds_batch_fill(r->ds, split, idx, nb, x, DS_NCHW, NULL, 0, err)) {
            rc = -1;
            break;
        }
        dvae_encode(r->m, x, nb, tokens);
        dvae_decode(r->m, tokens, nb, xhat);
        for (size_t k = 0; k < (size_t)nb * per; k++) {
            double e = (double)xhat[k] - x[k];
            se += e * e;
        }
        for (int k = 0; k < nb * G * G; k++) hist[tokens[k]]++;
        cells += (long)nb * G * G;
    }
    if (!rc) {
        ev->eval_images = n;
        ev->eval_mse = se / ((double)n * per);
        /* pixels in [-1, 1]: the [0, 1] MSE is a quarter of it */
        ev->eval_psnr = 10.0 * log10(1.0 / fmax(ev->eval_mse / 4.0, 1e-12));
        double ent = 0;
        int used = 0;
        for (int k = 0; k < K; k++)
            if (hist[k]) {
                double p = (double)hist[k] / (double)cells;
                ent -= p * log(p);
                used++;
            }
        ev->eval_used_codes = used;
        ev->eval_perplexity = exp(ent);
    }
    free(xhat), free(tokens), free(hist), free(idx);
    return rc;
}

/* Up to 8 held-out originals in the top row, their reconstructions below. */
static int write_preview(run_t *r, char err[256])
{
    const int split = ds_count(r->ds, DS_HELDOUT) > 0 ? DS_HELDOUT : DS_TRAIN;
    int n = (int)ds_count(r->ds, split);
    if (n > 8) n = 8;
    if (n > r->o.batch) n = r->o.batch;
    const int S = r->cfg.image_size, G = dvae_grid_size(&r->cfg);
    const size_t per = (size_t)3 * S * S;
    float *x = malloc((size_t)n * per * sizeof(float)), *xhat = malloc((size_t)n * per * sizeof(float));
    int *tokens = malloc((size_t)n * G * G * sizeof(int));
    img_t *tiles = calloc((size_t)2 * n, sizeof(img_t));
    size_t idx[8];
    int rc = -1;
    if (!x || !xhat || !tokens || !tiles) {
        snprintf(err, 256, "preview: out of memory");
        goto done;
    }
    for (int j = 0; j < n; j++) idx[j] = (size_t)j;
    if (ds_batch_fill(r->ds, split, idx, n, x, DS_NCHW, NULL, 0, err)) goto done;
    /* in pieces of the model's batch, which is the global one's share per rank */
    for (int j0 = 0; j0 < n; j0 += r->bl) {
        int nb = n - j0 < r->bl ? n - j0 : r->bl;
        dvae_encode(r->m, x + (size_t)j0 * per, nb, tokens + (size_t)j0 * G * G);
        dvae_decode(r->m, tokens + (size_t)j0 * G * G, nb, xhat + (size_t)j0 * per);
    }
    for (int j = 0; j < 2 * n; j++) {
        if (img_init(&tiles[j], S, S, err)) goto done;
        img_from_planar(&tiles[j], (j < n ? x : xhat) + (size_t)(j % n) * per, (size_t)S * S);
    }
    img_t grid = {0};
    if (img_grid(&grid, tiles, 2 * n, n, 2, err)) goto done;
    rc = img_save_png(&grid, r->preview_path, NULL, 0, err) ? -1 : 0;
    img_deinit(&grid);
done:
    if (tiles)
        for (int j = 0; j < 2 * n; j++) img_deinit(&tiles[j]);
    free(tiles), free(x), free(xhat), free(tokens);
    return rc;
}

/* ---------------------------------------------------------------- the loop */

static void free_run(run_t *r)
{
    if (r->loader_running) pthread_join(r->loader, NULL);
    dvae_free(r->m);
    free(r->adam_m), free(r->adam_v), free(r->noise), free(r->perm);
    for (int b = 0; b < 2; b++) free(r->batch[b]), free(r->idx[b]);
}

/* Rank 0 gets every event, the other ranks the step events only (for their stop flag). */
static int emit(const run_t *r, dvae_train_fn fn, void *ctx, dvae_train_event_t *ev)
{
    if (!fn || (r->rank != 0 && ev->kind != DVAE_EV_STEP)) return 0;
    return fn(ev, ctx);
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

/* Every rank's own stop wish, combined: stop when any rank asks. */
static int agree_stop(const run_t *r, int stop, char err[256])
{
    float f = stop ? 1.0f : 0.0f;
    if (allreduce(r, &f, 1, err)) return -1;
    return f > 0;
}

int dvae_train(const dvae_config_t *cfg, const dvae_train_opts_t *opts, ds_t *ds,
               const char *out_path, const char *resume_path, long steps_override,
               dvae_train_fn on_event, void *ctx, char err[256])
{
    return dvae_train_dist(cfg, opts, ds, out_path, resume_path, steps_override, NULL,
                           on_event, ctx, err);
}

int dvae_train_dist(const dvae_config_t *cfg, const dvae_train_opts_t *opts, ds_t *ds,
                    const char *out_path, const char *resume_path, long steps_override,
                    const dvae_comm_t *comm, dvae_train_fn on_event, void *ctx, char err[256])
{
    run_t r;
    memset(&r, 0, sizeof r);
    r.ds = ds;
    r.out_path = out_path;
    r.perm_epoch = UINT64_MAX;
    r.comm = comm && comm->size > 1 ? comm : NULL;
    r.rank = r.comm ? comm->rank : 0;
    r.nranks = r.comm ? comm->size : 1;
    if (snprintf(r.ckpt_path, sizeof r.ckpt_path, "%s.ckpt", out_path) >= (int)sizeof r.ckpt_path ||
        snprintf(r.preview_path, sizeof r.preview_path, "%s.preview.png", out_path) >=
            (int)sizeof r.preview_path) {
        snprintf(err, 256, "output path too long");
        return -1;
    }
    int B;
    if (resume_path) {
        dvae_checkpoint_info_t info;
        if (dvae_checkpoint_info(resume_path, &info, err)) goto fail;
        B = info.batch;
    } else {
        B = opts->batch;
    }
    if (B < 1 || B % r.nranks) {
        snprintf(err, 256, "the batch (%d) must be a positive multiple of the number of "
                 "ranks (%d): each rank takes an equal share", B, r.nranks);
        return -1;
    }
    r.bl = B / r.nranks;
    if (resume_path) {
        if (load_checkpoint(&r, resume_path, steps_override, r.bl, err)) goto fail;
    } else {
        r.cfg = *cfg;
        r.o = *opts;
        if (steps_override > 0) r.o.steps = steps_override;
        if (r.o.steps < 1) {
            snprintf(err, 256, "steps and batch must be positive");
            goto fail;
        }
        if (dvae_create(&r.m, &r.cfg, r.bl, err)) goto fail;
        dvae_init_params(r.m, r.o.seed);
        size_t np = dvae_param_count(r.m);
        r.adam_m = calloc(np, sizeof(float));
        r.adam_v = calloc(np, sizeof(float));
    }
    if (ds_image_size(ds) != r.cfg.image_size) {
        snprintf(err, 256, "the dataset was opened at %dx%d but the model is %dx%d",
                 ds_image_size(ds), ds_image_size(ds), r.cfg.image_size, r.cfg.image_size);
        goto fail;
    }
    if (resume_path) {
        dvae_checkpoint_info_t info;
        if (dvae_checkpoint_info(resume_path, &info, err)) goto fail;
        if (info.holdout != ds_holdout(ds)) {
            snprintf(err, 256, "the dataset was opened with held-out fraction %g but the run in "
                     "the checkpoint used %g: the training set would differ",
                     ds_holdout(ds), info.holdout);
            goto fail;
        }
    }
    if (ds_count(ds, DS_TRAIN) == 0) {
        snprintf(err, 256, "no training images (all held out?)");
        goto fail;
    }
    const int S = r.cfg.image_size, G = dvae_grid_size(&r.cfg), K = r.cfg.codebook_size;
    const int bl = r.bl;
    const size_t ncell = (size_t)B * G * G, np = dvae_param_count(r.m);
    /* this rank's cells of the global batch's noise */
    const size_t noise_from = (size_t)r.rank * bl * G * G * K, noise_n = (size_t)bl * G * G * K;
    r.noise = malloc(ncell * K * sizeof(float));
    r.perm = malloc(ds_count(ds, DS_TRAIN) * sizeof(size_t));
    for (int b = 0; b < 2; b++) {
        r.batch[b] = malloc((size_t)bl * 3 * S * S * sizeof(float));
        r.idx[b] = malloc((size_t)bl * sizeof(size_t));
    }
    if (!r.adam_m || !r.adam_v || !r.noise || !r.perm || !r.batch[0] || !r.batch[1] ||
        !r.idx[0] || !r.idx[1]) {
        snprintf(err, 256, "out of memory for batch %d", B);
        goto fail;
    }

    nn_adamw_t adam = nn_adamw_default();
    adam.weight_decay = r.o.weight_decay;
    dvae_train_event_t ev;
    double last_ckpt = nn_now_seconds();
    int stop = 0, wish = 0, cur = 0; /* wish: this rank's; stop: all ranks' agreement */
    start_load(&r, r.step, cur);
    while (r.step < r.o.steps && !stop) {
        double t0 = nn_now_seconds();
        if (finish_load(&r, err)) goto fail;
        double t1 = nn_now_seconds();
        const float *x = r.batch[cur];
        if (r.step + 1 < r.o.steps) start_load(&r, r.step + 1, cur ^ 1);

        memset(&ev, 0, sizeof ev);
        ev.kind = DVAE_EV_STEP;
        ev.tau = dvae_tau(&r.cfg, r.step);
        ev.lr = nn_lr_schedule(r.step, r.o.warmup, r.o.steps, r.o.lr, r.o.lr_min);
        fill_noise(&r, r.step, ncell * K, noise_from, noise_from + noise_n);
        float loss = dvae_forward(r.m, x, bl, r.noise + noise_from, ev.tau, &ev.stats);
        dvae_zero_grad(r.m);
        if (isfinite(loss)) dvae_backward(r.m);
        /* The loss is a mean over the batch and the shards are equal: the mean of the
         * ranks' gradients is the global batch's. One all-reduce over the whole block;
         * a non-finite gradient anywhere then reaches every rank's norm below. */
        if (r.nranks > 1) {
            float *g = dvae_grads(r.m);
            if (allreduce(&r, g, np, err)) goto fail;
            const float inv = 1.0f / (float)r.nranks;
            for (size_t k = 0; k < np; k++) g[k] *= inv;
            float l[3] = {ev.stats.loss * inv, ev.stats.mse * inv, ev.stats.kl * inv};
            if (allreduce(&r, l, 3, err)) goto fail;
            loss = ev.stats.loss = l[0], ev.stats.mse = l[1], ev.stats.kl = l[2];
        }
        if (!isfinite(loss)) {
            snprintf(err, 256, "the loss became %s at step %ld; stopped (the last checkpoint, %.100s, is kept)",
                     isnan(loss) ? "NaN" : "infinite", r.step + 1, r.ckpt_path);
            goto fail;
        }
        float gnorm = nn_clip_grad_norm(dvae_grads(r.m), np,
                                        r.o.grad_clip > 0 ? r.o.grad_clip : INFINITY);
        if (!isfinite(gnorm)) {
            snprintf(err, 256, "the gradients became %s at step %ld; stopped before the update "
                     "(the last checkpoint, %.100s, is kept)",
                     isnan(gnorm) ? "NaN" : "infinite", r.step + 1, r.ckpt_path);
            goto fail;
        }
        adam.lr = ev.lr;
        nn_adamw_step(dvae_params(r.m), dvae_grads(r.m), r.adam_m, r.adam_v, np, &adam,
                      r.step + 1);
        r.step++;
        cur ^= 1;
        ev.step = r.step;
        ev.steps = r.o.steps;
        ev.wait_seconds = t1 - t0;
        ev.step_seconds = nn_now_seconds() - t1;
        wish |= emit(&r, on_event, ctx, &ev);

        /* evaluation, previews and checkpoints are rank 0's; the others go on to the next
         * step's all-reduce and wait there */
        const int last = r.step == r.o.steps, root = r.rank == 0;
        if (root && ((r.o.eval_every > 0 && r.step % r.o.eval_every == 0) || last)) {
            /* the next batch is then ready, and evaluation can use the idle buffer */
            if (finish_load(&r, err)) goto fail;
            memset(&ev, 0, sizeof ev);
            ev.kind = DVAE_EV_EVAL;
            ev.step = r.step, ev.steps = r.o.steps;
            if (evaluate(&r, &ev, err)) goto fail;
            wish |= emit(&r, on_event, ctx, &ev);
        }
        if (root && ((r.o.samples_every > 0 && r.step % r.o.samples_every == 0) || last)) {
            if (write_preview(&r, err)) goto fail;
            memset(&ev, 0, sizeof ev);
            ev.kind = DVAE_EV_PREVIEW;
            ev.step = r.step, ev.steps = r.o.steps, ev.path = r.preview_path;
            wish |= emit(&r, on_event, ctx, &ev);
        }
        if ((stop = agree_stop(&r, wish, err)) < 0) goto fail;
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
            ev.kind = DVAE_EV_CHECKPOINT;
            ev.step = r.step, ev.steps = r.o.steps, ev.path = r.ckpt_path;
            /* a stop asked for here: at once in one process; several agree on it after
             * the next step */
            wish |= emit(&r, on_event, ctx, &ev);
            if (r.nranks == 1) stop = wish;
        }
    }
    if (finish_load(&r, err)) goto fail;
    if (r.step == r.o.steps && r.rank == 0) {
        if (dvae_save(r.m, out_path, err)) goto fail;
        memset(&ev, 0, sizeof ev);
        ev.kind = DVAE_EV_DONE;
        ev.step = r.step, ev.steps = r.o.steps, ev.path = out_path;
        emit(&r, on_event, ctx, &ev);
    }
    free_run(&r);
    return 0;
fail:
    free_run(&r);
    return -1;
}
