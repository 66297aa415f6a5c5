/* nn_conv2d and nn_convt2d against PyTorch (tests/fixtures/nn_conv2d_*.bin,
 * nn_convt2d_*.bin; NCHW there, CNHW here), backward accumulation, batch elements that
 * must not mix, the NCHW <-> CNHW conversions, and finite-difference checks.
 *
 * Scratch buffers are filled with NaN before each call that is allowed to treat them as
 * scratch, so a layer that reads scratch it did not write fails loudly. */
#include "nn/nn.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Versus PyTorch (float64 references): each output is a float32 dot product of C*K*K
 * terms and each dw/db entry a sum over B*OH*OW positions, so rounding is a fraction of
 * an ulp of the partial sums (~1e-7 of the tensor's scale). check_close judges entries
 * that cancel to near zero against a floor of 1e-3 * max|want|, where that becomes
 * ~1e-4 per ulp; observed worst 1.4e-5. 1e-4 keeps the check meaningful (an indexing bug
 * gives errors of order 1) without depending on the BLAS kernel's summation order. */
#define TOL 1e-4

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

static void fill_nan(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

static void scaled(float *out, const float *x, float s, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] = s * x[i];
}

/* One convolution, plain or transposed, with its sizes and scratch. */
typedef struct {
    int transpose;
    nn_conv_dims_t d;
    int OH, OW;
    size_t n_in, n_out, n_w, n_cols;
    float *cols, *dcols;
} conv_t;

static void conv_init(conv_t *c, int transpose, const nn_conv_dims_t *d)
{
    c->transpose = transpose;
    c->d = *d;
    if (transpose) {
        c->OH = nn_convt2d_out_size(d->H, d->K, d->stride, d->pad);
        c->OW = nn_convt2d_out_size(d->W, d->K, d->stride, d->pad);
        c->n_cols = nn_convt2d_cols_size(d);
    } else {
        c->OH = nn_conv2d_out_size(d->H, d->K, d->stride, d->pad);
        c->OW = nn_conv2d_out_size(d->W, d->K, d->stride, d->pad);
        c->n_cols = nn_conv2d_cols_size(d);
    }
    c->n_in = (size_t)d->C * d->B * d->H * d->W;
    c->n_out = (size_t)d->OC * d->B * c->OH * c->OW;
    c->n_w = (size_t)d->OC * d->C * d->K * d->K;
    c->cols = zeros(c->n_cols);
    c->dcols = zeros(c->n_cols);
}

static void conv_deinit(conv_t *c)
{
    free(c->cols);
    free(c->dcols);
}

static void conv_forward(conv_t *c, float *out, const float *in, const float *w,
                         const float *b)
{
    fill_nan(c->cols, c->n_cols);
    if (c->transpose) nn_convt2d_forward(out, c->cols, in, w, b, &c->d);
    else nn_conv2d_forward(out, c->cols, in, w, b, &c->d);
}

/* nn.h: nothing in cols needs to survive between the forward and the backward. */
static void conv_backward(conv_t *c, float *din, float *dw, float *db, const float *dout,
                          const float *in, const float *w)
{
    fill_nan(c->cols, c->n_cols);
    fill_nan(c->dcols, c->n_cols);
    if (c->transpose) nn_convt2d_backward(din, dw, db, c->cols, dout, in, w, &c->d);
    else nn_conv2d_backward(din, dw, db, din ? c->dcols : NULL, dout, c->cols, in, w, &c->d);
}

/* nn.h: a 1x1 stride-1 unpadded convolution needs no scratch at all. */
static void test_pointwise_null_scratch(void)
{
    printf("conv2d 1x1 with cols = dcols = NULL vs PyTorch\n");
    fx_file_t *f = fx_load("nn_conv2d_k1s1p0");
    const int *v = fx_i32(f, "dims");
    nn_conv_dims_t d = {.B = v[0], .C = v[1], .H = v[2], .W = v[3], .OC = v[4], .K = v[5],
                        .stride = v[6], .pad = v[7]};
    size_t HW = (size_t)d.H * d.W, n_in = (size_t)d.C * d.B * HW, n_out = (size_t)d.OC * d.B * HW;
    float *in = zeros(n_in), *out = zeros(n_out), *dout = zeros(n_out), *din = zeros(n_in);
    float *dw = zeros((size_t)d.OC * d.C), *db = zeros(d.OC), *nchw = zeros(n_in + n_out);
    nn_nchw_to_cnhw(in, fx_f32(f, "x"), d.B, d.C, (int)HW);
    nn_nchw_to_cnhw(dout, fx_f32(f, "dout"), d.B, d.OC, (int)HW);
    nn_conv2d_forward(out, NULL, in, fx_f32(f, "w"), fx_f32(f, "b"), &d);
    nn_cnhw_to_nchw(nchw, out, d.B, d.OC, (int)HW);
    check_close("out", nchw, fx_f32(f, "out"), n_out, TOL);
    nn_conv2d_backward(din, dw, db, NULL, dout, NULL, in, fx_f32(f, "w"), &d);
    nn_cnhw_to_nchw(nchw, din, d.B, d.C, (int)HW);
    check_close("dx", nchw, fx_f32(f, "dx"), n_in, TOL);
    check_close("dw", dw, fx_f32(f, "dw"), (size_t)d.OC * d.C, TOL);
    check_close("db", db, fx_f32(f, "db"), d.OC, TOL);
    free(in); free(out); free(dout); free(din); free(dw); free(db); free(nchw);
    fx_free(f);
}

static void test_fixture(const char *name, int transpose)
{
    printf("%s vs PyTorch\n", name);
    fx_file_t *f = fx_load(name);
    const int *v = fx_i32(f, "dims");
    nn_conv_dims_t d = {.B = v[0], .C = v[1], .H = v[2], .W = v[3], .OC = v[4], .K = v[5],
                        .stride = v[6], .pad = v[7]};
    printf("  B=%d C=%d H=%d W=%d OC=%d K=%d stride=%d pad=%d\n", d.B, d.C, d.H, d.W, d.OC,
           d.K, d.stride, d.pad);
    conv_t c;
    conv_init(&c, transpose, &d);
    fx_tensor_t *ot = fx_get(f, "out");
    check(ot->dims[2] == c.OH && ot->dims[3] == c.OW, "output size %dx%d, PyTorch %dx%d",
          c.OH, c.OW, (int)ot->dims[2], (int)ot->dims[3]);
    int HW = d.H * d.W, OHW = c.OH * c.OW;

    float *in = zeros(c.n_in), *out = zeros(c.n_out), *dout = zeros(c.n_out);
    float *din = zeros(c.n_in), *dw = zeros(c.n_w), *db = zeros(d.OC);
    float *nchw = zeros(c.n_in > c.n_out ? c.n_in : c.n_out), *want2 = zeros(c.n_w);
    const float *w = fx_f32(f, "w"), *b = fx_f32(f, "b");
    nn_nchw_to_cnhw(in, fx_f32(f, "x"), d.B, d.C, HW);
    nn_nchw_to_cnhw(dout, fx_f32(f, "dout"), d.B, d.OC, OHW);

    conv_forward(&c, out, in, w, b);
    nn_cnhw_to_nchw(nchw, out, d.B, d.OC, OHW);
    check_close("out", nchw, fx_f32(f, "out"), c.n_out, TOL);
    conv_backward(&c, din, dw, db, dout, in, w);
    nn_cnhw_to_nchw(nchw, din, d.B, d.C, HW);
    check_close("dx", nchw, fx_f32(f, "dx"), c.n_in, TOL);
    check_close("dw", dw, fx_f32(f, "dw"), c.n_w, TOL);
    check_close("db", db, fx_f32(f, "db"), d.OC, TOL);

    /* Backward accumulates: a second call (after a fresh forward) doubles everything. */
    conv_forward(&c, out, in, w, b);
    conv_backward(&c, din, dw, db, dout, in, w);
    nn_cnhw_to_nchw(nchw, din, d.B, d.C, HW);
    scaled(nchw, nchw, 0.5f, c.n_in);
    check_close("dx accumulated twice / 2", nchw, fx_f32(f, "dx"), c.n_in, TOL);
    scaled(want2, fx_f32(f, "dw"), 2, c.n_w);
    check_close("dw accumulated twice", dw, want2, c.n_w, TOL);
    scaled(want2, fx_f32(f, "db"), 2, d.OC);
    check_close("db accumulated twice", db, want2, d.OC, TOL);

    /* NULL bias and NULL gradients. */
    conv_forward(&c, out, in, w, NULL);
    nn_cnhw_to_nchw(nchw, out, d.B, d.OC, OHW);
    check_close("out without bias", nchw, fx_f32(f, "out_nobias"), c.n_out, TOL);
    memset(dw, 0, c.n_w * sizeof(float));
    conv_forward(&c, out, in, w, b);
    conv_backward(&c, NULL, dw, NULL, dout, in, w);
    check_close("dw with din, db NULL", dw, fx_f32(f, "dw"), c.n_w, TOL);
    memset(din, 0, c.n_in * sizeof(float));
    conv_forward(&c, out, in, w, b);
    conv_backward(&c, din, NULL, NULL, dout, in, w);
    nn_cnhw_to_nchw(nchw, din, d.B, d.C, HW);
    check_close("dx with dw, db NULL", nchw, fx_f32(f, "dx"), c.n_in, TOL);

    free(in); free(out); free(dout); free(din); free(dw); free(db); free(nchw);
    free(want2);
    conv_deinit(&c);
    fx_free(f);
}

/* The whole batch is one matrix [C, B*H*W]: each batch element must still come out as
 * if convolved alone (no bleeding across the B boundary in im2col/col2im). */
static void test_batch_independent(int transpose, nn_conv_dims_t d)
{
    printf("%s: B=%d equals %d separate B=1 runs (C=%d H=%d W=%d OC=%d K=%d s=%d p=%d)\n",
           transpose ? "convt2d" : "conv2d", d.B, d.B, d.C, d.H, d.W, d.OC, d.K, d.stride,
           d.pad);
    nn_rng_t rng;
    nn_rng_seed(&rng, 202 + (uint64_t)transpose);
    conv_t c, c1;
    conv_init(&c, transpose, &d);
    nn_conv_dims_t d1 = d;
    d1.B = 1;
    conv_init(&c1, transpose, &d1);
    int HW = d.H * d.W, OHW = c.OH * c.OW;
    float *in = zeros(c.n_in), *w = zeros(c.n_w), *b = zeros(d.OC);
    float *out = zeros(c.n_out), *dout = zeros(c.n_out), *din = zeros(c.n_in);
    float *in1 = zeros(c1.n_in), *out1 = zeros(c1.n_out), *dout1 = zeros(c1.n_out);
    float *din1 = zeros(c1.n_in), *dw = zeros(c.n_w), *dwsum = zeros(c.n_w);
    float *got = zeros(c1.n_in > c1.n_out ? c1.n_in : c1.n_out);
    nn_rng_fill_normal(&rng, in, c.n_in, 0, 1);
    nn_rng_fill_normal(&rng, w, c.n_w, 0, 0.3f);
    nn_rng_fill_normal(&rng, b, d.OC, 0, 1);
    nn_rng_fill_normal(&rng, dout, c.n_out, 0, 1);
    conv_forward(&c, out, in, w, b);
    conv_backward(&c, din, dw, NULL, dout, in, w);
    for (int n = 0; n < d.B; n++) {
        /* batch element n of a CNHW tensor: HW-long runs at channel stride B*HW */
        for (int ch = 0; ch < d.C; ch++)
            memcpy(in1 + (size_t)ch * HW, in + ((size_t)ch * d.B + n) * HW, HW * sizeof(float));
        for (int ch = 0; ch < d.OC; ch++)
            memcpy(dout1 + (size_t)ch * OHW, dout + ((size_t)ch * d.B + n) * OHW,
                   OHW * sizeof(float));
        memset(din1, 0, c1.n_in * sizeof(float));
        conv_forward(&c1, out1, in1, w, b);
        conv_backward(&c1, din1, dwsum, NULL, dout1, in1, w);
        char label[64];
        for (int ch = 0; ch < d.OC; ch++)
            memcpy(got + (size_t)ch * OHW, out + ((size_t)ch * d.B + n) * OHW,
                   OHW * sizeof(float));
        snprintf(label, sizeof label, "out[b=%d]", n);
        check_close(label, got, out1, c1.n_out, 1e-5);
        for (int ch = 0; ch < d.C; ch++)
            memcpy(got + (size_t)ch * HW, din + ((size_t)ch * d.B + n) * HW, HW * sizeof(float));
        snprintf(label, sizeof label, "dx[b=%d]", n);
        check_close(label, got, din1, c1.n_in, 1e-5);
    }
    check_close("dw = sum of per-element dw", dw, dwsum, c.n_w, TOL);
    free(in); free(w); free(b); free(out); free(dout); free(din); free(in1); free(out1);
    free(dout1); free(din1); free(dw); free(dwsum); free(got);
    conv_deinit(&c);
    conv_deinit(&c1);
}

/* Direct loops in double over CNHW tensors: conv2d (w [OC, C, K, K]) or, with
 * transpose, its adjoint convt2d (w [C, OC, K, K]); out is overwritten, the gradients
 * are overwritten too. (ih, iw) is the input pixel and (oh, ow) the output pixel that
 * the kernel tap (kh, kw) connects: for conv ih = oh*s - p + kh, for convt the same
 * relation read the other way (oh = ih*s - p + kh). */
static void naive(int transpose, const nn_conv_dims_t *d, int OH, int OW, const float *in,
                  const float *w, const float *b, const float *dout, double *out,
                  double *din, double *dw, double *db)
{
    int B = d->B, C = d->C, H = d->H, W = d->W, OC = d->OC, K = d->K;
    size_t n_in = (size_t)C * B * H * W;
    size_t n_w = (size_t)OC * C * K * K;
    for (size_t i = 0; i < n_in; i++) din[i] = 0;
    for (size_t i = 0; i < n_w; i++) dw[i] = 0;
    for (int o = 0; o < OC; o++) {
        db[o] = 0;
        for (size_t i = 0; i < (size_t)B * OH * OW; i++) {
            out[(size_t)o * B * OH * OW + i] = b[o];
            db[o] += dout[(size_t)o * B * OH * OW + i];
        }
    }
    /* small (big-tile) pixels: p = (lo, hi) is (input, output) for conv and
     * (output, input) for convt, so one loop nest serves both */
    int LH = transpose ? OH : H, LW = transpose ? OW : W;
    int SH = transpose ? H : OH, SW = transpose ? W : OW;
    for (int bb = 0; bb < B; bb++)
        for (int sh = 0; sh < SH; sh++)
            for (int sw = 0; sw < SW; sw++)
                for (int kh = 0; kh < K; kh++)
                    for (int kw = 0; kw < K; kw++) {
                        int lh = sh * d->stride - d->pad + kh, lw = sw * d->stride - d->pad + kw;
                        if (lh < 0 || lh >= LH || lw < 0 || lw >= LW) continue;
                        int ih = transpose ? sh : lh, iw = transpose ? sw : lw;
                        int oh = transpose ? lh : sh, ow = transpose ? lw : sw;
                        for (int o = 0; o < OC; o++)
                            for (int c = 0; c < C; c++) {
                                size_t wi = transpose ? (((size_t)c * OC + o) * K + kh) * K + kw
                                                      : (((size_t)o * C + c) * K + kh) * K + kw;
                                size_t ii = (((size_t)c * B + bb) * H + ih) * W + iw;
                                size_t oi = (((size_t)o * B + bb) * OH + oh) * OW + ow;
                                out[oi] += (double)w[wi] * in[ii];
                                din[ii] += (double)w[wi] * dout[oi];
                                dw[wi] += (double)in[ii] * dout[oi];
                            }
                    }
}

static void to_float(float *dst, const double *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

/* Shapes big enough that the layer splits the batch into im2col chunks (it sizes
 * chunks to keep the columns in cache), against direct loops in double. With 10^4-10^5
 * outputs some land very near zero, where check_close's floor (1e-3 * max) turns the
 * float32 rounding of a 36-64 term dot product into ~1e-4 (observed 8.7e-5), and db/dw
 * are float32 sums over up to 76,000 positions (observed 3.9e-5): hence 5e-4. */
#define NAIVE_TOL 5e-4
static void test_naive(int transpose, nn_conv_dims_t d)
{
    conv_t c;
    conv_init(&c, transpose, &d);
    size_t per_image = (size_t)(transpose ? d.OC : d.C) * d.K * d.K *
                       (transpose ? d.H * d.W : c.OH * c.OW);
    printf("%s vs direct loops (B=%d C=%d H=%d W=%d OC=%d K=%d s=%d p=%d; cols hold %zu of "
           "%d images)\n", transpose ? "convt2d" : "conv2d", d.B, d.C, d.H, d.W, d.OC, d.K,
           d.stride, d.pad, c.n_cols / per_image, d.B);
    nn_rng_t rng;
    nn_rng_seed(&rng, 505 + (uint64_t)transpose);
    float *in = zeros(c.n_in), *w = zeros(c.n_w), *b = zeros(d.OC), *dout = zeros(c.n_out);
    float *out = zeros(c.n_out), *din = zeros(c.n_in), *dw = zeros(c.n_w), *db = zeros(d.OC);
    double *rout = malloc(c.n_out * sizeof(double)), *rdin = malloc(c.n_in * sizeof(double));
    double *rdw = malloc(c.n_w * sizeof(double)), *rdb = malloc(d.OC * sizeof(double));
    float *want = zeros(c.n_in > c.n_out ? c.n_in : c.n_out);
    if (!rout || !rdin || !rdw || !rdb) { fprintf(stderr, "out of memory\n"); exit(1); }
    nn_rng_fill_normal(&rng, in, c.n_in, 0, 1);
    nn_rng_fill_normal(&rng, w, c.n_w, 0, 0.3f);
    nn_rng_fill_normal(&rng, b, d.OC, 0, 1);
    nn_rng_fill_normal(&rng, dout, c.n_out, 0, 1);
    naive(transpose, &d, c.OH, c.OW, in, w, b, dout, rout, rdin, rdw, rdb);
    conv_forward(&c, out, in, w, b);
    conv_backward(&c, din, dw, db, dout, in, w);
    to_float(want, rout, c.n_out);
    check_close("out", out, want, c.n_out, NAIVE_TOL);
    to_float(want, rdin, c.n_in);
    check_close("dx", din, want, c.n_in, NAIVE_TOL);
    to_float(want, rdw, c.n_w);
    check_close("dw", dw, want, c.n_w, NAIVE_TOL);
    to_float(want, rdb, d.OC);
    check_close("db", db, want, d.OC, NAIVE_TOL);
    free(in); free(w); free(b); free(dout); free(out); free(din); free(dw); free(db);
    free(rout); free(rdin); free(rdw); free(rdb); free(want);
    conv_deinit(&c);
}

/* loss = sum(out * r) in double; r fixed random, so d loss / d out = r. */
typedef struct {
    conv_t c;
    float *in, *w, *b, *out, *r;
} fd_ctx_t;

static double fd_loss(void *p)
{
    fd_ctx_t *x = p;
    conv_forward(&x->c, x->out, x->in, x->w, x->b);
    double s = 0;
    for (size_t i = 0; i < x->c.n_out; i++) s += (double)x->out[i] * x->r[i];
    return s;
}

static void test_fd(int transpose, nn_conv_dims_t d)
{
    printf("%s finite differences (B=%d C=%d H=%d W=%d OC=%d K=%d s=%d p=%d)\n",
           transpose ? "convt2d" : "conv2d", d.B, d.C, d.H, d.W, d.OC, d.K, d.stride, d.pad);
    nn_rng_t rng;
    nn_rng_seed(&rng, 303 + (uint64_t)transpose * 7 + (uint64_t)d.K);
    fd_ctx_t x;
    conv_init(&x.c, transpose, &d);
    x.in = zeros(x.c.n_in); x.w = zeros(x.c.n_w); x.b = zeros(d.OC);
    x.out = zeros(x.c.n_out); x.r = zeros(x.c.n_out);
    nn_rng_fill_uniform(&rng, x.in, x.c.n_in, -1, 1);
    nn_rng_fill_uniform(&rng, x.w, x.c.n_w, -0.5f, 0.5f);
    nn_rng_fill_uniform(&rng, x.b, d.OC, -1, 1);
    nn_rng_fill_uniform(&rng, x.r, x.c.n_out, -1, 1);
    float *din = zeros(x.c.n_in), *dw = zeros(x.c.n_w), *db = zeros(d.OC);
    fd_loss(&x);
    conv_backward(&x.c, din, dw, db, x.r, x.in, x.w);
    /* The loss is linear in each coordinate, so central differences are exact up to the
     * float32 rounding of a sum of ~100 terms (~1e-6 absolute) over 2h = 2e-2. */
    check_grad_fd("dx", fd_loss, &x, x.in, din, x.c.n_in, 40, 1e-2f, 1e-3);
    check_grad_fd("dw", fd_loss, &x, x.w, dw, x.c.n_w, 40, 1e-2f, 1e-3);
    check_grad_fd("db", fd_loss, &x, x.b, db, d.OC, 40, 1e-2f, 1e-3);
    free(x.in); free(x.w); free(x.b); free(x.out); free(x.r); free(din); free(dw); free(db);
    conv_deinit(&x.c);
}

static void test_layout(void)
{
    printf("nchw <-> cnhw\n");
    int B = 3, C = 4, HW = 5;
    size_t n = (size_t)B * C * HW;
    float *a = zeros(n), *t = zeros(n), *back = zeros(n);
    for (size_t i = 0; i < n; i++) a[i] = (float)i;
    nn_nchw_to_cnhw(t, a, B, C, HW);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < HW; i++)
                if (t[((size_t)c * B + b) * HW + i] != a[((size_t)b * C + c) * HW + i]) bad++;
    check(bad == 0, "nchw_to_cnhw puts [b][c][i] at [c][b][i] (%d wrong)", bad);
    nn_cnhw_to_nchw(back, t, B, C, HW);
    check(memcmp(back, a, n * sizeof(float)) == 0, "cnhw_to_nchw(nchw_to_cnhw(x)) == x");
    nn_cnhw_to_nchw(t, a, B, C, HW);
    nn_nchw_to_cnhw(back, t, B, C, HW);
    check(memcmp(back, a, n * sizeof(float)) == 0, "nchw_to_cnhw(cnhw_to_nchw(x)) == x");
    free(a); free(t); free(back);
}

static void test_out_sizes(void)
{
    printf("output sizes\n");
    check(nn_conv2d_out_size(8, 4, 2, 1) == 4, "conv2d 8 k4 s2 p1 -> 4");
    check(nn_conv2d_out_size(7, 3, 2, 1) == 4, "conv2d 7 k3 s2 p1 -> 4");
    check(nn_conv2d_out_size(5, 3, 1, 1) == 5, "conv2d 5 k3 s1 p1 -> 5");
    check(nn_conv2d_out_size(5, 1, 1, 0) == 5, "conv2d 5 k1 s1 p0 -> 5");
    check(nn_convt2d_out_size(4, 4, 2, 1) == 8, "convt2d 4 k4 s2 p1 -> 8");
    check(nn_convt2d_out_size(3, 4, 2, 1) == 6, "convt2d 3 k4 s2 p1 -> 6");
}

int main(void)
{
    test_layout();
    test_out_sizes();
    test_fixture("nn_conv2d_k1s1p0", 0);
    test_fixture("nn_conv2d_k3s1p1", 0);
    test_fixture("nn_conv2d_k4s2p1", 0);
    test_fixture("nn_conv2d_k3s2p1_odd", 0);
    test_fixture("nn_convt2d_k4s2p1", 1);
    test_pointwise_null_scratch();
    /* dims: B, C, H, W, OC, K, stride, pad */
    test_batch_independent(0, (nn_conv_dims_t){3, 2, 5, 6, 3, 3, 1, 1});
    test_batch_independent(0, (nn_conv_dims_t){2, 3, 6, 6, 2, 4, 2, 1});
    test_batch_independent(0, (nn_conv_dims_t){2, 3, 4, 5, 2, 1, 1, 0});
    test_batch_independent(1, (nn_conv_dims_t){3, 2, 3, 4, 3, 4, 2, 1});
    /* chunked im2col: 2 + 1 images, and one image per chunk (at the lead's 2^19-float
     * chunk target; the test is valid whatever the chunking) */
    test_naive(0, (nn_conv_dims_t){3, 4, 128, 128, 3, 4, 2, 1});
    test_naive(0, (nn_conv_dims_t){2, 2, 200, 190, 2, 3, 1, 1});
    test_naive(0, (nn_conv_dims_t){3, 5, 20, 30, 4, 3, 2, 1});
    test_naive(1, (nn_conv_dims_t){3, 3, 80, 80, 2, 4, 2, 1});
    test_naive(1, (nn_conv_dims_t){2, 2, 96, 90, 2, 4, 2, 1});
    test_fd(0, (nn_conv_dims_t){2, 2, 5, 4, 3, 3, 1, 1});
    test_fd(0, (nn_conv_dims_t){2, 2, 6, 6, 2, 4, 2, 1});
    test_fd(0, (nn_conv_dims_t){2, 3, 3, 4, 2, 1, 1, 0});
    test_fd(0, (nn_conv_dims_t){1, 2, 7, 5, 2, 3, 2, 1});
    test_fd(1, (nn_conv_dims_t){2, 2, 3, 4, 3, 4, 2, 1});
    return test_summary("test_nn_conv");
}
