/* LayerNorm against PyTorch (tests/fixtures/nn_layernorm.bin: N=4 C=8, eps 1e-5,
 * weight and bias), accumulation, and finite differences of x, w, b. */
#include "nn/nn.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* float32 mean/variance over C and a product with rstd: rounding is ~1e-7 of the row
 * scale, which check_close's floor (1e-3 * max) shows as up to ~1e-4 on entries near 0. */
#define TOL 1e-5

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

static void test_fixture(void)
{
    printf("layernorm vs PyTorch\n");
    fx_file_t *f = fx_load("nn_layernorm");
    fx_tensor_t *xt = fx_get(f, "x");
    int N = (int)xt->dims[0], C = (int)xt->dims[1];
    size_t n = (size_t)N * C;
    float *x = fx_f32(f, "x"), *w = fx_f32(f, "w"), *b = fx_f32(f, "b");
    float *dout = fx_f32(f, "dout");
    float *out = zeros(n), *mean = zeros(N), *rstd = zeros(N);
    float *dx = zeros(n), *dw = zeros(C), *db = zeros(C), *want2 = zeros(n);
    nn_layernorm_forward(out, mean, rstd, x, w, b, N, C);
    check_close("out", out, fx_f32(f, "out"), n, TOL);
    check_close("mean", mean, fx_f32(f, "mean"), N, TOL);
    check_close("rstd", rstd, fx_f32(f, "rstd"), N, TOL);
    nn_layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, C);
    check_close("dx", dx, fx_f32(f, "dx"), n, TOL);
    check_close("dw", dw, fx_f32(f, "dw"), C, TOL);
    check_close("db", db, fx_f32(f, "db"), C, TOL);
    nn_layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, C);
    for (size_t i = 0; i < n; i++) want2[i] = 2 * fx_f32(f, "dx")[i];
    check_close("dx accumulated twice", dx, want2, n, TOL);
    for (int i = 0; i < C; i++) want2[i] = 2 * fx_f32(f, "dw")[i];
    check_close("dw accumulated twice", dw, want2, C, TOL);
    for (int i = 0; i < C; i++) want2[i] = 2 * fx_f32(f, "db")[i];
    check_close("db accumulated twice", db, want2, C, TOL);
    free(out); free(mean); free(rstd); free(dx); free(dw); free(db); free(want2);
    fx_free(f);
}

typedef struct {
    float *x, *w, *b, *out, *mean, *rstd, *r;
    int N, C;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    nn_layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C);
    double s = 0;
    for (int i = 0; i < c->N * c->C; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void test_fd(void)
{
    printf("layernorm finite differences (N=3 C=10)\n");
    int N = 3, C = 10;
    size_t n = (size_t)N * C;
    nn_rng_t rng;
    nn_rng_seed(&rng, 505);
    fd_ctx_t c = {zeros(n), zeros(C), zeros(C), zeros(n), zeros(N), zeros(N), zeros(n), N, C};
    nn_rng_fill_normal(&rng, c.x, n, 0.5f, 2);
    nn_rng_fill_uniform(&rng, c.w, C, 0.5f, 1.5f);
    nn_rng_fill_uniform(&rng, c.b, C, -1, 1);
    nn_rng_fill_uniform(&rng, c.r, n, -1, 1);
    float *dx = zeros(n), *dw = zeros(C), *db = zeros(C);
    fd_loss(&c);
    nn_layernorm_backward(dx, dw, db, c.r, c.x, c.w, c.mean, c.rstd, N, C);
    /* float32 forward, h = 1e-2 on inputs of scale 2: O(h^2) truncation plus ~1e-7/h
     * rounding; 1e-2 is the usual bound. */
    check_grad_fd("dx", fd_loss, &c, c.x, dx, n, 60, 1e-2f, 1e-2);
    check_grad_fd("dw", fd_loss, &c, c.w, dw, C, 60, 1e-2f, 1e-2);
    check_grad_fd("db", fd_loss, &c, c.b, db, C, 60, 1e-2f, 1e-2);
    free(c.x); free(c.w); free(c.b); free(c.out); free(c.mean); free(c.rstd); free(c.r);
    free(dx); free(dw); free(db);
}

/* Wider than the layer's 64-column dw/db blocks (C = 150: 3 blocks, the last partial),
 * against loops in double (PyTorch's formulas: biased variance, eps 1e-5). float32
 * row statistics over 150 values and dw sums over rows: near-zero entries against
 * check_close's floor show ~1e-5..1e-4 (observed 5e-5 on dw): 5e-4. */
static void test_wide(void)
{
    int N = 9, C = 150;
    size_t n = (size_t)N * C;
    printf("layernorm vs double loops (N=%d C=%d)\n", N, C);
    nn_rng_t rng;
    nn_rng_seed(&rng, 515);
    float *x = zeros(n), *w = zeros(C), *b = zeros(C), *dout = zeros(n), *out = zeros(n);
    float *mean = zeros(N), *rstd = zeros(N), *dx = zeros(n), *dw = zeros(C), *db = zeros(C);
    float *wout = zeros(n), *wdx = zeros(n), *wdw = zeros(C), *wdb = zeros(C);
    nn_rng_fill_normal(&rng, x, n, 1, 3);
    nn_rng_fill_normal(&rng, w, C, 1, 0.3f);
    nn_rng_fill_normal(&rng, b, C, 0, 0.3f);
    nn_rng_fill_normal(&rng, dout, n, 0, 1);
    double *dwd = calloc(C, sizeof(double)), *dbd = calloc(C, sizeof(double));
    if (!dwd || !dbd) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (int r = 0; r < N; r++) {
        const float *xr = x + (size_t)r * C, *gr = dout + (size_t)r * C;
        double m = 0, v = 0, gm = 0, gxm = 0;
        for (int i = 0; i < C; i++) m += xr[i];
        m /= C;
        for (int i = 0; i < C; i++) v += (xr[i] - m) * (xr[i] - m);
        v /= C;
        double s = 1 / sqrt(v + 1e-5);
        for (int i = 0; i < C; i++) {
            double xh = (xr[i] - m) * s, g = (double)gr[i] * w[i];
            wout[(size_t)r * C + i] = (float)(xh * w[i] + b[i]);
            gm += g;
            gxm += g * xh;
            dwd[i] += gr[i] * xh;
            dbd[i] += gr[i];
        }
        gm /= C;
        gxm /= C;
        for (int i = 0; i < C; i++) {
            double xh = (xr[i] - m) * s;
            wdx[(size_t)r * C + i] = (float)(s * ((double)gr[i] * w[i] - gm - xh * gxm));
        }
    }
    for (int i = 0; i < C; i++) { wdw[i] = (float)dwd[i]; wdb[i] = (float)dbd[i]; }
    nn_layernorm_forward(out, mean, rstd, x, w, b, N, C);
    check_close("out", out, wout, n, 5e-4);
    nn_layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, C);
    check_close("dx", dx, wdx, n, 5e-4);
    check_close("dw", dw, wdw, C, 5e-4);
    check_close("db", db, wdb, C, 5e-4);
    free(x); free(w); free(b); free(dout); free(out); free(mean); free(rstd); free(dx);
    free(dw); free(db); free(wout); free(wdx); free(wdw); free(wdb); free(dwd); free(dbd);
}

int main(void)
{
    test_fixture();
    test_fd();
    test_wide();
    return test_summary("test_nn_layernorm");
}
