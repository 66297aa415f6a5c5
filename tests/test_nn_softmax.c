/* The softmax family against PyTorch: row softmax (nn_softmax.bin, one row offset by
 * +90 to need the max subtraction), cross-entropy with class weights and ignore_index
 * (nn_cross_entropy_weighted.bin) and without (nn_cross_entropy_plain.bin), and the
 * Gumbel-softmax soft, straight-through hard and noiseless (nn_gumbel_softmax.bin);
 * accumulation and finite differences. */
#include "nn/nn.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Softmax and cross-entropy hold 1e-5 (observed worst 4.4e-7). */
#define TOL 1e-5
/* The Gumbel-softmax backward computes (y * (dout - sum(dout * y))) / tau: rounding of
 * ~1e-7 of the row's scale, which check_close's floor (1e-3 * max) shows as up to ~1e-4
 * on entries that cancel to near zero (observed worst 1.75e-5, dlogits without noise:
 * 8.68109928e-04 vs 8.68094736e-04, 1.5e-8 absolute against a max of ~0.9). */
#define GUMBEL_TOL 1e-4

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

static void twice(float *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = 2 * x[i];
}

/* ---------------------------------------------------------------- softmax */

typedef struct {
    float *x, *out, *r;
    int N, C;
} sm_ctx_t;

static double sm_loss(void *p)
{
    sm_ctx_t *c = p;
    nn_softmax_forward(c->out, c->x, c->N, c->C);
    double s = 0;
    for (int i = 0; i < c->N * c->C; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void test_softmax(void)
{
    printf("softmax vs PyTorch\n");
    fx_file_t *f = fx_load("nn_softmax");
    fx_tensor_t *xt = fx_get(f, "x");
    int N = (int)xt->dims[0], C = (int)xt->dims[1];
    size_t n = (size_t)N * C;
    float *out = zeros(n), *dx = zeros(n), *want2 = zeros(n);
    nn_softmax_forward(out, fx_f32(f, "x"), N, C);
    check_close("out", out, fx_f32(f, "out"), n, TOL);
    nn_softmax_backward(dx, fx_f32(f, "dout"), out, N, C);
    check_close("dx", dx, fx_f32(f, "dx"), n, TOL);
    nn_softmax_backward(dx, fx_f32(f, "dout"), out, N, C);
    twice(want2, fx_f32(f, "dx"), n);
    check_close("dx accumulated twice", dx, want2, n, TOL);
    free(out); free(dx); free(want2);
    fx_free(f);

    printf("softmax finite differences\n");
    nn_rng_t rng;
    nn_rng_seed(&rng, 606);
    sm_ctx_t c = {zeros(24), zeros(24), zeros(24), 3, 8};
    nn_rng_fill_normal(&rng, c.x, 24, 0, 2);
    nn_rng_fill_uniform(&rng, c.r, 24, -1, 1);
    float *g = zeros(24);
    sm_loss(&c);
    nn_softmax_backward(g, c.r, c.out, c.N, c.C);
    /* float32 forward, h = 1e-2: O(h^2) truncation plus rounding ~1e-7/h. */
    check_grad_fd("dx", sm_loss, &c, c.x, g, 24, 24, 1e-2f, 1e-2);
    free(c.x); free(c.out); free(c.r); free(g);
}

/* ---------------------------------------------------------------- cross-entropy */

static void test_cross_entropy(const char *name, int weighted)
{
    printf("%s vs PyTorch\n", name);
    fx_file_t *f = fx_load(name);
    fx_tensor_t *lt = fx_get(f, "logits");
    int N = (int)lt->dims[0], C = (int)lt->dims[1];
    size_t n = (size_t)N * C;
    const int *target = fx_i32(f, "target");
    const float *weight = weighted ? fx_f32(f, "weight") : NULL;
    int ignore = fx_i32(f, "ignore_index")[0];
    float dloss = fx_f32(f, "dloss")[0];
    float *probs = zeros(n), *dl = zeros(n), *want2 = zeros(n);
    float loss = nn_cross_entropy_forward(probs, fx_f32(f, "logits"), target, weight, ignore,
                                          N, C);
    check_close("loss", &loss, fx_f32(f, "loss"), 1, TOL);
    check_close("probs", probs, fx_f32(f, "probs"), n, TOL);
    nn_cross_entropy_backward(dl, probs, target, weight, ignore, dloss, N, C);
    check_close("dlogits", dl, fx_f32(f, "dlogits"), n, TOL);
    nn_cross_entropy_backward(dl, probs, target, weight, ignore, dloss, N, C);
    twice(want2, fx_f32(f, "dlogits"), n);
    check_close("dlogits accumulated twice", dl, want2, n, TOL);
    free(probs); free(dl); free(want2);
    fx_free(f);
}

static void test_cross_entropy_all_ignored(void)
{
    printf("cross-entropy with every row ignored\n");
    float logits[6] = {1, 2, 3, -1, 0, 1}, probs[6], dl[6] = {0};
    int target[2] = {-100, -100};
    float loss = nn_cross_entropy_forward(probs, logits, target, NULL, -100, 2, 3);
    check(loss == 0, "loss is 0 (got %g)", loss);
    nn_cross_entropy_backward(dl, probs, target, NULL, -100, 1.0f, 2, 3);
    int zero = 1;
    for (int i = 0; i < 6; i++) zero &= dl[i] == 0;
    check(zero, "no gradient reaches dlogits");
}

typedef struct {
    float *logits, *probs, *weight;
    int *target;
    int ignore, N, C;
} ce_ctx_t;

static double ce_loss(void *p)
{
    ce_ctx_t *c = p;
    return nn_cross_entropy_forward(c->probs, c->logits, c->target, c->weight, c->ignore,
                                    c->N, c->C);
}

static void test_cross_entropy_fd(void)
{
    printf("cross-entropy finite differences (weighted, one row ignored)\n");
    int N = 4, C = 6;
    nn_rng_t rng;
    nn_rng_seed(&rng, 707);
    int target[4] = {2, -1, 5, 0};
    float weight[6] = {0.5f, 1.0f, 2.0f, 0.7f, 1.2f, 0.3f};
    ce_ctx_t c = {zeros(24), zeros(24), weight, target, -1, N, C};
    nn_rng_fill_normal(&rng, c.logits, 24, 0, 2);
    float *g = zeros(24);
    ce_loss(&c);
    nn_cross_entropy_backward(g, c.probs, target, weight, -1, 1.0f, N, C);
    /* float32 forward, h = 1e-2: O(h^2) truncation plus rounding ~1e-7/h. */
    check_grad_fd("dlogits", ce_loss, &c, c.logits, g, 24, 24, 1e-2f, 1e-2);
    free(c.logits); free(c.probs); free(g);
}

/* ---------------------------------------------------------------- Gumbel-softmax */

static void test_gumbel(void)
{
    printf("gumbel-softmax vs PyTorch\n");
    fx_file_t *f = fx_load("nn_gumbel_softmax");
    fx_tensor_t *lt = fx_get(f, "logits");
    int N = (int)lt->dims[0], K = (int)lt->dims[1];
    size_t n = (size_t)N * K;
    float tau = fx_f32(f, "tau")[0];
    const float *logits = fx_f32(f, "logits"), *g = fx_f32(f, "g"), *dout = fx_f32(f, "dout");
    float *out = zeros(n), *ys = zeros(n), *dl = zeros(n), *want2 = zeros(n);
    static const char *modes[3] = {"soft", "hard", "nonoise"};
    for (int m = 0; m < 3; m++) {
        char name[64], label[64];
        int hard = m == 1;
        nn_gumbel_softmax_forward(out, ys, logits, m == 2 ? NULL : g, tau, hard, N, K);
        snprintf(name, sizeof name, "out_%s", modes[m]);
        snprintf(label, sizeof label, "%s out", modes[m]);
        check_close(label, out, fx_f32(f, name), n, GUMBEL_TOL);
        snprintf(name, sizeof name, "y_soft_%s", modes[m]);
        snprintf(label, sizeof label, "%s y_soft", modes[m]);
        check_close(label, ys, fx_f32(f, name), n, GUMBEL_TOL);
        memset(dl, 0, n * sizeof(float));
        nn_gumbel_softmax_backward(dl, dout, ys, tau, N, K);
        snprintf(name, sizeof name, "dlogits_%s", modes[m]);
        snprintf(label, sizeof label, "%s dlogits", modes[m]);
        check_close(label, dl, fx_f32(f, name), n, GUMBEL_TOL);
        nn_gumbel_softmax_backward(dl, dout, ys, tau, N, K);
        twice(want2, fx_f32(f, name), n);
        snprintf(label, sizeof label, "%s dlogits accumulated twice", modes[m]);
        check_close(label, dl, want2, n, GUMBEL_TOL);
    }
    /* hard = 0 with out == y_soft, as the header allows */
    nn_gumbel_softmax_forward(ys, ys, logits, g, tau, 0, N, K);
    check_close("soft out aliasing y_soft", ys, fx_f32(f, "out_soft"), n, GUMBEL_TOL);
    free(out); free(ys); free(dl); free(want2);
    fx_free(f);
}

typedef struct {
    float *logits, *noise, *out, *ys, *r, tau;
    int N, K;
} gs_ctx_t;

static double gs_loss(void *p)
{
    gs_ctx_t *c = p;
    nn_gumbel_softmax_forward(c->out, c->ys, c->logits, c->noise, c->tau, 0, c->N, c->K);
    double s = 0;
    for (int i = 0; i < c->N * c->K; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void test_gumbel_fd(void)
{
    printf("gumbel-softmax finite differences (soft, tau 0.8, noise from nn_rng)\n");
    int N = 3, K = 7;
    size_t n = (size_t)N * K;
    nn_rng_t rng;
    nn_rng_seed(&rng, 808);
    gs_ctx_t c = {zeros(n), zeros(n), zeros(n), zeros(n), zeros(n), 0.8f, N, K};
    nn_rng_fill_normal(&rng, c.logits, n, 0, 1);
    nn_rng_fill_gumbel(&rng, c.noise, n);
    nn_rng_fill_uniform(&rng, c.r, n, -1, 1);
    float *g = zeros(n);
    gs_loss(&c);
    nn_gumbel_softmax_backward(g, c.r, c.ys, c.tau, N, K);
    /* float32 forward, h = 1e-2: O(h^2) truncation plus rounding ~1e-7/h. */
    check_grad_fd("dlogits", gs_loss, &c, c.logits, g, n, (int)n, 1e-2f, 1e-2);
    free(c.logits); free(c.noise); free(c.out); free(c.ys); free(c.r); free(g);
}

int main(void)
{
    test_softmax();
    test_cross_entropy("nn_cross_entropy_weighted", 1);
    test_cross_entropy("nn_cross_entropy_plain", 0);
    test_cross_entropy_all_ignored();
    test_cross_entropy_fd();
    test_gumbel();
    test_gumbel_fd();
    return test_summary("test_nn_softmax");
}
