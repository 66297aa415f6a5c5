/* nn_linear against PyTorch (tests/fixtures/nn_linear.bin, F.linear N=5 C=7 OC=3),
 * backward accumulation, NULL bias/gradients, and a finite-difference check; the packed
 * small-row product of inference against loops in double, across its code paths. */
#include "nn/nn.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

static void scaled(float *out, const float *x, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = s * x[i];
}

/* loss = sum(out * r) in double, r fixed random: its gradient wrt out is r. */
typedef struct {
    float *x, *w, *b, *out, *r;
    int N, C, OC;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *c = p;
    nn_linear_forward(c->out, c->x, c->w, c->b, c->N, c->C, c->OC);
    double s = 0;
    for (int i = 0; i < c->N * c->OC; i++) s += (double)c->out[i] * c->r[i];
    return s;
}

static void test_fixture(void)
{
    printf("linear vs PyTorch (N=5 C=7 OC=3, bias)\n");
    fx_file_t *f = fx_load("nn_linear");
    fx_tensor_t *xt = fx_get(f, "x"), *wt = fx_get(f, "w");
    int N = (int)xt->dims[0], C = (int)xt->dims[1], OC = (int)wt->dims[0];
    float *x = fx_f32(f, "x"), *w = fx_f32(f, "w"), *b = fx_f32(f, "b");
    float *dout = fx_f32(f, "dout");
    float *out = zeros((size_t)N * OC), *dx = zeros((size_t)N * C);
    float *dw = zeros((size_t)OC * C), *db = zeros(OC);
    float *want2 = zeros((size_t)N * C > (size_t)OC * C ? (size_t)N * C : (size_t)OC * C);

    nn_linear_forward(out, x, w, b, N, C, OC);
    check_close("out", out, fx_f32(f, "out"), (size_t)N * OC, 1e-5);
    nn_linear_backward(dx, dw, db, dout, x, w, N, C, OC);
    check_close("dx", dx, fx_f32(f, "dx"), (size_t)N * C, 1e-5);
    check_close("dw", dw, fx_f32(f, "dw"), (size_t)OC * C, 1e-5);
    check_close("db", db, fx_f32(f, "db"), OC, 1e-5);

    /* Backward accumulates: a second call doubles every gradient. */
    nn_linear_backward(dx, dw, db, dout, x, w, N, C, OC);
    scaled(want2, fx_f32(f, "dx"), 2, (size_t)N * C);
    check_close("dx accumulated twice", dx, want2, (size_t)N * C, 1e-5);
    scaled(want2, fx_f32(f, "dw"), 2, (size_t)OC * C);
    check_close("dw accumulated twice", dw, want2, (size_t)OC * C, 1e-5);
    scaled(want2, fx_f32(f, "db"), 2, OC);
    check_close("db accumulated twice", db, want2, OC, 1e-5);

    /* b = NULL: out - b; and NULL gradients are skipped while the others still come. */
    nn_linear_forward(out, x, w, NULL, N, C, OC);
    check_close("out without bias", out, fx_f32(f, "out_nobias"), (size_t)N * OC, 1e-5);
    memset(dw, 0, (size_t)OC * C * sizeof(float));
    nn_linear_backward(NULL, dw, NULL, dout, x, w, N, C, OC);
    check_close("dw with din, db NULL", dw, fx_f32(f, "dw"), (size_t)OC * C, 1e-5);
    memset(dx, 0, (size_t)N * C * sizeof(float));
    nn_linear_backward(dx, NULL, NULL, dout, x, w, N, C, OC);
    check_close("dx with dw, db NULL", dx, fx_f32(f, "dx"), (size_t)N * C, 1e-5);

    free(out); free(dx); free(dw); free(db); free(want2);
    fx_free(f);
}

static void test_fd(void)
{
    printf("linear finite differences (N=4 C=6 OC=5)\n");
    int N = 4, C = 6, OC = 5;
    nn_rng_t rng;
    nn_rng_seed(&rng, 101);
    fd_ctx_t c = {zeros((size_t)N * C), zeros((size_t)OC * C), zeros(OC),
                  zeros((size_t)N * OC), zeros((size_t)N * OC), N, C, OC};
    nn_rng_fill_uniform(&rng, c.x, (size_t)N * C, -1, 1);
    nn_rng_fill_uniform(&rng, c.w, (size_t)OC * C, -1, 1);
    nn_rng_fill_uniform(&rng, c.b, OC, -1, 1);
    nn_rng_fill_uniform(&rng, c.r, (size_t)N * OC, -1, 1);
    float *dx = zeros((size_t)N * C), *dw = zeros((size_t)OC * C), *db = zeros(OC);
    fd_loss(&c);
    nn_linear_backward(dx, dw, db, c.r, c.x, c.w, N, C, OC);
    /* float32 forward, h = 1e-2: the loss is linear in each input, so the difference
     * quotient only carries float32 rounding of the loss (~1e-7/1e-2); 1e-3 is ample. */
    check_grad_fd("dx", fd_loss, &c, c.x, dx, (size_t)N * C, 64, 1e-2f, 1e-3);
    check_grad_fd("dw", fd_loss, &c, c.w, dw, (size_t)OC * C, 64, 1e-2f, 1e-3);
    check_grad_fd("db", fd_loss, &c, c.b, db, OC, 64, 1e-2f, 1e-3);
    free(c.x); free(c.w); free(c.b); free(c.out); free(c.r);
    free(dx); free(dw); free(db);
}

/* Wider than one of the layer's 64-column bias-gradient blocks (OC = 150: 3 blocks, the
 * last partial), against loops in double. float32 sums of up to 150 products: among
 * thousands of random outputs some cancel to near zero, where check_close's floor
 * (1e-3 * max) shows their rounding as up to ~1e-4 (observed 7.2e-5 on dx): 5e-4. */
static void test_wide(void)
{
    int N = 33, C = 40, OC = 150;
    printf("linear vs double loops (N=%d C=%d OC=%d)\n", N, C, OC);
    nn_rng_t rng;
    nn_rng_seed(&rng, 111);
    float *x = zeros((size_t)N * C), *w = zeros((size_t)OC * C), *b = zeros(OC);
    float *dout = zeros((size_t)N * OC), *out = zeros((size_t)N * OC);
    float *dx = zeros((size_t)N * C), *dw = zeros((size_t)OC * C), *db = zeros(OC);
    float *wout = zeros((size_t)N * OC), *wdx = zeros((size_t)N * C);
    float *wdw = zeros((size_t)OC * C), *wdb = zeros(OC);
    nn_rng_fill_normal(&rng, x, (size_t)N * C, 0, 1);
    nn_rng_fill_normal(&rng, w, (size_t)OC * C, 0, 0.2f);
    nn_rng_fill_normal(&rng, b, OC, 0, 1);
    nn_rng_fill_normal(&rng, dout, (size_t)N * OC, 0, 1);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b[o];
            for (int c = 0; c < C; c++) s += (double)x[n * C + c] * w[o * C + c];
            wout[n * OC + o] = (float)s;
        }
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)dout[n * OC + o] * w[o * C + c];
            wdx[n * C + c] = (float)s;
        }
    for (int o = 0; o < OC; o++) {
        double sb = 0;
        for (int n = 0; n < N; n++) sb += dout[n * OC + o];
        wdb[o] = (float)sb;
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)dout[n * OC + o] * x[n * C + c];
            wdw[o * C + c] = (float)s;
        }
    }
    nn_linear_forward(out, x, w, b, N, C, OC);
    check_close("out", out, wout, (size_t)N * OC, 5e-4);
    nn_linear_backward(dx, dw, db, dout, x, w, N, C, OC);
    check_close("dx", dx, wdx, (size_t)N * C, 5e-4);
    check_close("dw", dw, wdw, (size_t)OC * C, 5e-4);
    check_close("db", db, wdb, OC, 5e-4);
    free(x); free(w); free(b); free(dout); free(out); free(dx); free(dw); free(db);
    free(wout); free(wdx); free(wdw); free(wdb);
}

/* out [N, OC] = in @ w^T + b in double */
static void linear_double(float *out, const float *in, const float *w, const float *b, int N,
                          int C, int OC)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++) s += (double)in[(size_t)n * C + c] * w[(size_t)o * C + c];
            out[(size_t)n * OC + o] = (float)s;
        }
}

/* nn_linear_packed_forward at row counts around its tiles (1..4, 8 and the rows beyond),
 * beyond a 64-row block, widths that leave a partial panel, with and without bias; every
 * code path this CPU runs against double loops; the SIMD paths bit for bit against each
 * other, against one row at a time and against one thread. Sums of up to 300 products in
 * float32 (one chain): 5e-4 on check_close's scale-relative error, as test_wide. */
static void test_packed(void)
{
    const int shapes[][3] = {{1, 7, 3},    {2, 40, 150}, {3, 64, 64},   {4, 33, 17},
                             {5, 256, 96}, {8, 20, 65},  {9, 300, 130}, {16, 256, 200},
                             {17, 48, 64}, {70, 35, 129}};
    const nn_simd_t best = nn_simd_best();
    printf("packed linear vs double loops (widest path here: %s)\n", nn_simd_name(best));
    nn_rng_t rng;
    nn_rng_seed(&rng, 222);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int N = shapes[k][0], C = shapes[k][1], OC = shapes[k][2];
        float *x = zeros((size_t)N * C), *w = zeros((size_t)OC * C), *b = zeros(OC);
        float *packed = zeros(nn_linear_packed_size(C, OC)), *want = zeros((size_t)N * OC);
        float *got[3] = {zeros((size_t)N * OC), zeros((size_t)N * OC), zeros((size_t)N * OC)};
        float *row = zeros(OC), *one_thread = zeros((size_t)N * OC);
        nn_rng_fill_normal(&rng, x, (size_t)N * C, 0, 1);
        nn_rng_fill_normal(&rng, w, (size_t)OC * C, 0, 0.2f);
        nn_rng_fill_normal(&rng, b, OC, 0, 1);
        nn_linear_pack(packed, w, C, OC);
        const float *bias = k % 3 == 2 ? NULL : b;
        linear_double(want, x, w, bias, N, C, OC);
        char label[96];
        for (nn_simd_t p = NN_SIMD_SCALAR; p <= best; p++) {
            nn_linear_packed_forward_simd(got[p], x, packed, bias, N, C, OC, p);
            snprintf(label, sizeof label, "N=%d C=%d OC=%d%s %s", N, C, OC,
                     bias ? "" : " no bias", nn_simd_name(p));
            check_close(label, got[p], want, (size_t)N * OC, 5e-4);
        }
        if (best >= NN_SIMD_AVX2) {
            nn_simd_t p = best;
            if (best == NN_SIMD_AVX512)
                check(memcmp(got[NN_SIMD_AVX2], got[NN_SIMD_AVX512],
                             (size_t)N * OC * sizeof(float)) == 0,
                      "N=%d C=%d OC=%d: avx2 and avx512 differ", N, C, OC);
            int rows_same = 1;
            for (int n = 0; n < N; n++) {
                nn_linear_packed_forward_simd(row, x + (size_t)n * C, packed, bias, 1, C, OC, p);
                rows_same &= memcmp(row, got[p] + (size_t)n * OC, (size_t)OC * sizeof(float)) == 0;
            }
            check(rows_same, "N=%d C=%d OC=%d: a row alone differs from it among %d", N, C, OC, N);
            int threads = nn_threads();
            nn_set_threads(1);
            nn_linear_packed_forward(one_thread, x, packed, bias, N, C, OC);
            nn_set_threads(threads);
            check(memcmp(one_thread, got[p], (size_t)N * OC * sizeof(float)) == 0,
                  "N=%d C=%d OC=%d: 1 thread and %d differ", N, C, OC, threads);
        }
        free(x); free(w); free(b); free(packed); free(want); free(row); free(one_thread);
        for (int p = 0; p < 3; p++) free(got[p]);
    }
}

int main(void)
{
    test_fixture();
    test_fd();
    test_wide();
    test_packed();
    return test_summary("test_nn_linear");
}
