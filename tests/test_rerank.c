/* The contrastive scorer against PyTorch (tests/fixtures_rerank.py): the L2
 * normalisation and contrastive-loss layers; one whole training step of a tiny scorer
 * (S=8, 2 conv stages of 3 and 6 channels, T=6, 2 text layers of width 8, E=5, B=4 with a
 * short, a full and an empty caption): loss, embeddings, logits, every gradient, and the
 * parameters after clipping, AdamW and the logit-scale clamp; finite differences of the
 * loss; a data-parallel step on two simulated ranks equal to one process's; and the
 * table, init, caption layout, retrieval and input-check conventions. */
#include "rerank/rerank.h"
#include "tests/testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As test_gpt.c: the forward and backward go through ~20 float32 layers, so entries a
 * thousand times smaller than their tensor's largest carry relative errors up to ~1e-4;
 * scalars and the optimiser on given gradients are held to 1e-5. */
#define TOL 5e-4
#define TOL_SCALAR 1e-5

static void test_layers(void)
{
    printf("nn_l2norm and nn_contrastive vs PyTorch\n");
    fx_file_t *f = fx_load("nn_l2norm");
    const fx_tensor_t *x = fx_get(f, "x");
    const int N = (int)x->dims[0], C = (int)x->dims[1];
    float *out = malloc(x->numel * sizeof(float)), *dx = calloc(x->numel, sizeof(float));
    float norm[16];
    nn_l2norm_forward(out, norm, x->data, N, C);
    check_close("l2norm out", out, fx_f32(f, "out"), x->numel, 1e-6);
    nn_l2norm_backward(dx, fx_f32(f, "dout"), out, norm, N, C);
    check_close("l2norm dx", dx, fx_f32(f, "dx"), x->numel, 1e-5);
    /* a zero row stays zero and finite (F.normalize's floor), in both passes */
    float z[3] = {0, 0, 0}, zo[3], zn, dz[3] = {0, 0, 0}, g[3] = {1, -2, 3};
    nn_l2norm_forward(zo, &zn, z, 1, 3);
    nn_l2norm_backward(dz, g, zo, &zn, 1, 3);
    check(zo[0] == 0 && zo[2] == 0 && isfinite(dz[0]) && isfinite(dz[2]), "zero row: %g %g", zo[0],
          dz[0]);
    free(out), free(dx);
    fx_free(f);

    f = fx_load("nn_contrastive");
    const fx_tensor_t *img = fx_get(f, "img");
    const int n = (int)img->dims[0], E = (int)img->dims[1];
    const float ls = fx_f32(f, "log_scale")[0], dloss = fx_f32(f, "dloss")[0];
    float *logits = malloc((size_t)n * n * sizeof(float)), *pi = malloc((size_t)n * n * sizeof(float));
    float *pt = malloc((size_t)n * n * sizeof(float)), *dl = malloc((size_t)n * n * sizeof(float));
    float *di = calloc((size_t)n * E, sizeof(float)), *dt = calloc((size_t)n * E, sizeof(float));
    float loss = nn_contrastive_forward(logits, pi, pt, img->data, fx_f32(f, "txt"), ls, n, E);
    float dls = 0;
    check_close("contrastive loss", &loss, fx_f32(f, "loss"), 1, TOL_SCALAR);
    check_close("contrastive logits", logits, fx_f32(f, "logits"), (size_t)n * n, 1e-6);
    nn_contrastive_backward(di, dt, &dls, dl, logits, pi, pt, img->data, fx_f32(f, "txt"), ls,
                            dloss, n, E);
    check_close("contrastive dimg", di, fx_f32(f, "dimg"), (size_t)n * E, 1e-5);
    check_close("contrastive dtxt", dt, fx_f32(f, "dtxt"), (size_t)n * E, 1e-5);
    check_close("contrastive dlog_scale", &dls, fx_f32(f, "dlog_scale"), 1, 1e-5);
    free(logits), free(pi), free(pt), free(dl), free(di), free(dt);
    fx_free(f);
}

/* ---------------------------------------------------------------- the whole step */

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t k = 0; k < n; k++) worst = fmax(worst, fabs((double)a[k] - b[k]));
    return worst;
}

static rerank_t *model_from_fixture(fx_file_t *f, rerank_opt_t *o, int max_batch)
{
    const int *cf = fx_i32(f, "config");
    const float *op = fx_f32(f, "opt");
    rerank_config_t c = {cf[0], cf[1], cf[2], cf[3], cf[4], cf[5], cf[6], cf[7], cf[8], cf[9],
                         cf[10], cf[11]};
    *o = rerank_opt_default();
    o->lr = op[0], o->beta1 = op[1], o->beta2 = op[2], o->eps = op[3];
    o->weight_decay = op[4], o->grad_clip = op[5];
    rerank_t *m;
    char err[RERANK_ERR_SIZE];
    if (rerank_create(&m, &c, max_batch, 1, err)) {
        printf("rerank_create: %s\n", err);
        exit(1);
    }
    for (int i = 0; i < rerank_tensor_count(m); i++) {
        const rerank_tensor_t *t = rerank_tensor_at(m, i);
        fx_tensor_t *x = fx_get(f, t->name);
        int same = x->ndim == t->ndim && x->numel == t->numel;
        for (int k = 0; same && k < t->ndim; k++) same = x->dims[k] == t->shape[k];
        if (!check(same, "%s: shape differs from the fixture's", t->name)) exit(1);
        memcpy(t->param, x->data, t->numel * sizeof(float));
    }
    return m;
}

static void test_step(void)
{
    printf("one training step vs PyTorch\n");
    fx_file_t *f = fx_load("rerank_step");
    rerank_opt_t o;
    rerank_t *m = model_from_fixture(f, &o, 4);
    const rerank_config_t *c = rerank_config(m);
    const int B = 4, E = c->embed_dim;
    printf("  S=%d layers=%d C=%d T=%d V=%d text %dx%d (%d heads) E=%d B=%d: %zu params in %d "
           "tensors\n", c->image_size, c->image_layers, c->image_channels, c->text_len,
           c->text_vocab, c->text_layers, c->text_width, c->text_heads, E, B,
           rerank_num_params(c), rerank_tensor_count(m));
    float loss = rerank_forward(m, fx_f32(f, "images"), fx_i32(f, "ids"), B, NULL);
    check_close("loss", &loss, fx_f32(f, "loss"), 1, TOL_SCALAR);
    check_close("img_emb", rerank_image_emb(m), fx_f32(f, "img_emb"), (size_t)B * E, TOL);
    check_close("txt_emb", rerank_text_emb(m), fx_f32(f, "txt_emb"), (size_t)B * E, TOL);
    check_close("logits", rerank_logits(m), fx_f32(f, "logits"), (size_t)B * B, TOL);

    rerank_zero_grad(m);
    rerank_backward_loss(m);
    char name[128];
    for (int i = 0; i < rerank_tensor_count(m); i++) {
        const rerank_tensor_t *t = rerank_tensor_at(m, i);
        snprintf(name, sizeof name, "grad.%s", t->name);
        check_close(name, t->grad, fx_f32(f, name), t->numel, TOL);
    }

    /* the chain C gradients -> clip -> AdamW -> clamp, to a quarter of lr (a first AdamW
     * step moves by ~lr sign(g): where g is ~0 in exact arithmetic, float noise decides
     * the sign); then the optimiser alone from the fixture's gradients, to TOL_SCALAR */
    float norm = rerank_adamw_step(m, &o, o.lr);
    check_close("grad norm (C gradients)", &norm, fx_f32(f, "grad_norm"), 1, TOL_SCALAR);
    double worst = 0;
    for (int i = 0; i < rerank_tensor_count(m); i++) {
        const rerank_tensor_t *t = rerank_tensor_at(m, i);
        snprintf(name, sizeof name, "after.%s", t->name);
        worst = fmax(worst, max_abs_diff(t->param, fx_f32(f, name), t->numel));
    }
    printf("  params after the step from C gradients: max abs err %.3g = %.3g lr\n", worst,
           worst / o.lr);
    check(worst <= 0.25 * o.lr, "chain step error %g > lr/4", worst);
    rerank_free(m);

    m = model_from_fixture(f, &o, 4);
    for (int i = 0; i < rerank_tensor_count(m); i++) {
        const rerank_tensor_t *t = rerank_tensor_at(m, i);
        snprintf(name, sizeof name, "grad.%s", t->name);
        memcpy(t->grad, fx_f32(f, name), t->numel * sizeof(float));
    }
    norm = rerank_adamw_step(m, &o, o.lr);
    check_close("grad norm", &norm, fx_f32(f, "grad_norm"), 1, TOL_SCALAR);
    for (int i = 0; i < rerank_tensor_count(m); i++) {
        const rerank_tensor_t *t = rerank_tensor_at(m, i);
        snprintf(name, sizeof name, "after.%s", t->name);
        check_close(name, t->param, fx_f32(f, name), t->numel, TOL_SCALAR);
    }
    const float ls = rerank_log_scale(m);
    printf("  logit_scale after the step: %g (clamped into [0, ln 100])\n", ls);
    check(ls == 0.0f || ls == logf(100.0f), "the step's logit_scale %g sits on a bound", ls);
    rerank_free(m);
    fx_free(f);
}

typedef struct {
    rerank_t *m;
    const float *images;
    const int *ids;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    return rerank_forward(c->m, c->images, c->ids, 4, NULL);
}

static void test_fd(void)
{
    printf("finite differences of the loss\n");
    fx_file_t *f = fx_load("rerank_step");
    rerank_opt_t o;
    rerank_t *m = model_from_fixture(f, &o, 4);
    fd_ctx_t ctx = {m, fx_f32(f, "images"), fx_i32(f, "ids")};
    fd_loss(&ctx);
    rerank_zero_grad(m);
    rerank_backward_loss(m);
    static const char *names[] = {"rerank.img.conv0.w", "rerank.img.conv1.b",
                                  "rerank.img.proj.w", "rerank.txt.wte", "rerank.txt.wpe",
                                  "rerank.txt.h0.attn.qkv.w", "rerank.txt.h1.mlp.fc.b",
                                  "rerank.txt.ln_f.w", "rerank.txt.proj.w",
                                  "rerank.logit_scale"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const rerank_tensor_t *t = rerank_tensor_find(m, names[i]);
        if (!check(t != NULL, "no tensor %s", names[i])) continue;
        /* loss ~1.4 in float32 (rounding ~1e-7), h = 1e-2: truncation O(h^2) and rounding
         * 1e-5 against gradients down to 1% of the tensor's largest. The convolutions feed
         * ReLUs whose kinks a step of 1e-2 crosses: h = 1e-3 there */
        float h = strstr(names[i], "conv") ? 1e-3f : 1e-2f;
        check_grad_fd(names[i], fd_loss, &ctx, t->param, t->grad, t->numel, 12, h, 5e-2);
    }
    rerank_free(m);
    fx_free(f);
}

/* ---------------------------------------------------------------- two ranks */

/* A communicator of two threads in one process: allreduce_sum adds both buffers. */
typedef struct {
    pthread_barrier_t barrier;
    float *buf[2];
} pair_t;

typedef struct {
    pair_t *pair;
    int rank;
} rank_ctx_t;

static int pair_allreduce(float *buf, size_t n, void *ctx)
{
    rank_ctx_t *rc = ctx;
    pair_t *p = rc->pair;
    p->buf[rc->rank] = buf;
    pthread_barrier_wait(&p->barrier);
    if (rc->rank == 0)
        for (size_t i = 0; i < n; i++) {
            float s = p->buf[0][i] + p->buf[1][i];
            p->buf[0][i] = p->buf[1][i] = s;
        }
    pthread_barrier_wait(&p->barrier);
    return 0;
}

typedef struct {
    rerank_t *m;
    rerank_opt_t o;
    dvae_comm_t comm;
    const float *images;
    const int *ids;
    float loss;
    float *grad; /* the summed gradient, before clipping */
} rank_job_t;

static void *rank_step(void *p)
{
    rank_job_t *j = p;
    const rerank_config_t *c = rerank_config(j->m);
    const size_t per = (size_t)3 * c->image_size * c->image_size, B = 2;
    const size_t first = (size_t)j->comm.rank * B;
    j->loss = rerank_forward(j->m, j->images + first * per, j->ids + first * c->text_len, (int)B,
                             &j->comm);
    rerank_zero_grad(j->m);
    rerank_backward_loss(j->m);
    size_t n;
    float *g = rerank_grad_block(j->m, &n);
    j->comm.allreduce_sum(g, n, j->comm.ctx);
    j->grad = malloc(n * sizeof(float));
    memcpy(j->grad, g, n * sizeof(float));
    rerank_adamw_step(j->m, &j->o, j->o.lr);
    return NULL;
}

static void test_two_ranks(void)
{
    printf("a step on two ranks (batch 2 + 2) equals one process's (batch 4)\n");
    fx_file_t *f = fx_load("rerank_step");
    rerank_opt_t o;
    rerank_t *one = model_from_fixture(f, &o, 4);
    float loss1 = rerank_forward(one, fx_f32(f, "images"), fx_i32(f, "ids"), 4, NULL);
    rerank_zero_grad(one);
    rerank_backward_loss(one);
    size_t n;
    const float *g_one = rerank_grad_block(one, &n);
    float *g1 = malloc(n * sizeof(float));
    memcpy(g1, g_one, n * sizeof(float));
    rerank_adamw_step(one, &o, o.lr);

    pair_t pair;
    pthread_barrier_init(&pair.barrier, NULL, 2);
    rank_ctx_t rc[2] = {{&pair, 0}, {&pair, 1}};
    rank_job_t jobs[2];
    pthread_t th[2];
    nn_set_threads(1); /* two threads of one process: one OpenMP thread each */
    for (int r = 0; r < 2; r++) {
        jobs[r] = (rank_job_t){model_from_fixture(f, &o, 2), o, {r, 2, pair_allreduce, &rc[r]},
                               fx_f32(f, "images"), fx_i32(f, "ids"), 0, NULL};
        pthread_create(&th[r], NULL, rank_step, &jobs[r]);
    }
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&pair.barrier);
    check(jobs[0].loss == jobs[1].loss, "both ranks computed one loss (%g, %g)", jobs[0].loss,
          jobs[1].loss);
    check_close("2-rank loss", &jobs[0].loss, &loss1, 1, TOL_SCALAR);
    check_close("2-rank summed gradient", jobs[0].grad, g1, n, 1e-4);
    /* a first AdamW step moves each parameter by ~lr sign(g): where g is ~0, the order
     * of the sums decides the sign, so the parameters are held to a quarter of lr */
    double worst = max_abs_diff(rerank_param_block(jobs[0].m, NULL), rerank_param_block(one, NULL), n);
    printf("  2-rank parameters after the step: max abs err %.3g = %.3g lr\n", worst, worst / o.lr);
    check(worst <= 0.25 * o.lr, "2-rank step error %g > lr/4", worst);
    check(memcmp(rerank_param_block(jobs[0].m, NULL), rerank_param_block(jobs[1].m, NULL),
                 n * sizeof(float)) == 0, "both ranks hold the same parameters");
    free(g1), free(jobs[0].grad), free(jobs[1].grad);
    rerank_free(one);
    rerank_free(jobs[0].m);
    rerank_free(jobs[1].m);
    fx_free(f);
}

/* ---------------------------------------------------------------- conventions */

static void test_conventions(void)
{
    printf("table, init, captions, retrieval, input checks\n");
    rerank_config_t c = rerank_config_default();
    rerank_t *m;
    char err[RERANK_ERR_SIZE];
    if (!check(rerank_create(&m, &c, 2, 0, err) == 0, "scoring-only create: %s", err)) return;
    size_t total = 0;
    for (int i = 0; i < rerank_tensor_count(m); i++) {
        const rerank_tensor_t *t = rerank_tensor_at(m, i);
        check(t->offset == total, "%s: offset %zu, want %zu", t->name, t->offset, total);
        check(t->grad == NULL, "%s: scoring-only model has a gradient", t->name);
        total += t->numel;
    }
    check(total == rerank_num_params(&c), "table covers %zu of %zu params", total,
          rerank_num_params(&c));
    printf("  default config: %zu parameters in %d tensors, %.1f M multiply-adds per pair\n",
           total, rerank_tensor_count(m), rerank_pair_macs(&c) / 1e6);
    rerank_init_params(m, 5);
    check(fabsf(rerank_log_scale(m) - logf(1 / 0.07f)) < 1e-6f, "logit_scale starts at ln(1/0.07)");
    check(rerank_tensor_find(m, "rerank.txt.h1.ln2.w")->param[7] == 1.0f, "LN weight 1");
    check(rerank_tensor_find(m, "rerank.img.conv2.w")->decay &&
          rerank_tensor_find(m, "rerank.txt.proj.w")->decay &&
          !rerank_tensor_find(m, "rerank.txt.wte")->decay &&
          !rerank_tensor_find(m, "rerank.img.conv2.b")->decay &&
          !rerank_tensor_find(m, "rerank.logit_scale")->decay, "decay flags");
    const rerank_tensor_t *pw = rerank_tensor_find(m, "rerank.img.proj.w");
    double ss = 0;
    for (size_t i = 0; i < pw->numel; i++) ss += (double)pw->param[i] * pw->param[i];
    printf("  img.proj.w init std %.4f (want %.4f)\n", sqrt(ss / pw->numel), 1 / sqrt((double)pw->shape[1]));
    check(fabs(sqrt(ss / pw->numel) * sqrt((double)pw->shape[1]) - 1) < 0.02, "projection init");

    /* bad inputs are refused, not read out of bounds */
    int ids[2 * 32];
    for (int i = 0; i < 64; i++) ids[i] = c.pad_id;
    ids[0] = ids[32] = c.bos_id;
    ids[1] = ids[33] = c.eos_id;
    check(rerank_encode(m, NULL, ids, 2) == 0, "valid captions: %s", rerank_errmsg(m));
    ids[40] = c.text_vocab;
    check(rerank_encode(m, NULL, ids, 2) != 0 && strstr(rerank_errmsg(m), "not in"),
          "id out of range refused: %s", rerank_errmsg(m));
    ids[40] = c.pad_id;
    ids[32] = 7;
    check(rerank_encode(m, NULL, ids, 2) != 0 && strstr(rerank_errmsg(m), "BOS"),
          "missing BOS refused: %s", rerank_errmsg(m));
    check(rerank_encode(m, NULL, ids, 3) != 0, "batch over max refused");
    rerank_free(m);
    c.text_heads = 3;
    check(rerank_create(&m, &c, 1, 0, err) != 0 && strstr(err, "text_heads"), "bad config: %s", err);
    c = rerank_config_default();
    c.image_size = 40;
    check(rerank_create(&m, &c, 1, 0, err) != 0 && strstr(err, "divisible"), "bad size: %s", err);

    /* the caption layout: BOS, ids, EOS, PAD */
    static const char *caps[] = {"a red circle", "a blue square on a gray background",
                                 "a green star above a yellow heart"};
    tok_train_config_t tc = tok_train_config_default();
    tc.vocab_size = 300;
    char *bytes = NULL;
    size_t nb = 0;
    if (!check(tok_train_captions(caps, 3, &tc, &bytes, &nb, err) == 0, "tokenizer: %s", err)) return;
    tok_t *tok = tok_create(bytes, nb, err);
    free(bytes);
    c = rerank_config_default();
    c.text_len = 6;
    c.text_vocab = tok_vocab_size(tok), c.pad_id = tok_pad_id(tok);
    c.bos_id = tok_bos_id(tok), c.eos_id = tok_eos_id(tok);
    int t6[6];
    int kept = rerank_encode_text(&c, tok, "a red circle", t6, err);
    check(kept > 0 && t6[0] == c.bos_id && t6[kept + 1] == c.eos_id &&
          (kept + 2 == 6 || t6[kept + 2] == c.pad_id), "caption layout (%d ids kept)", kept);
    kept = rerank_encode_text(&c, tok, caps[1], t6, err);
    check(kept == 4 && t6[5] == c.eos_id, "a long caption is cut to T-2 ids and ends in EOS");
    kept = rerank_encode_text(&c, tok, "", t6, err);
    check(kept == 0 && t6[1] == c.eos_id && t6[2] == c.pad_id, "the empty caption is BOS EOS");
    c.eos_id = c.pad_id + 100;
    check(rerank_encode_text(&c, tok, "a", t6, err) < 0 && strstr(err, "EOS"),
          "another tokenizer is refused: %s", err);
    tok_free(tok);

    /* retrieval on embeddings made to order: caption i is nearest image (i+1) % 4 but for
     * caption 0; captions 1 and 2 are the same text, so either image is a match */
    float img[4 * 2] = {1, 0, 0, 1, -1, 0, 0, -1};
    float txt[4 * 2] = {1, 0.1f, -1, 0.1f, 0.1f, 1, 0.2f, -1};
    const char *names[4] = {"a", "b", "b", "d"};
    for (int i = 0; i < 4; i++) {
        float l = sqrtf(txt[2 * i] * txt[2 * i] + txt[2 * i + 1] * txt[2 * i + 1]);
        txt[2 * i] /= l, txt[2 * i + 1] /= l;
    }
    rerank_retrieval_t rr;
    rerank_retrieval(txt, img, 4, 2, names, &rr);
    printf("  retrieval: top-1 %d/4, top-5 %d/4\n", rr.hits1, rr.hits5);
    /* caption 0 -> image 0 (hit); 1 -> image 2, same text as 1 (hit); 2 -> image 1, same
     * text (hit); 3 -> image 3 (hit) */
    check(rr.hits1 == 4 && rr.hits5 == 4, "duplicate captions count as matches");
    rerank_retrieval(txt, img, 4, 2, NULL, &rr);
    check(rr.hits1 == 2 && rr.hits5 == 4, "own image only: top-1 %d (want 2)", rr.hits1);
}

int main(void)
{
    test_layers();
    test_step();
    test_fd();
    test_two_ranks();
    test_conventions();
    return test_summary("test_rerank");
}
