/* Convolutions whose batch is split into several im2col chunks (nn/conv.c keeps a
 * chunk's columns near 2 MB), checked against direct loops in double. The fixture
 * tests use shapes too small to split. */
#include "nn/nn.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The float results sum up to B*OH*OW = 6912 products (dw) against a double reference:
 * errors reach ~1e-6 of the tensor's largest value, and check_close judges entries near
 * zero against 1e-3 of that value, so 2e-3 here. An indexing error is off by O(1). */
#define TOL 2e-3

static float *rand_buf(nn_rng_t *r, size_t n)
{
    float *x = malloc(n * sizeof(float));
    if (!x) exit(1);
    nn_rng_fill_uniform(r, x, n, -1.0f, 1.0f);
    return x;
}

static float *zeros(size_t n)
{
    float *x = calloc(n, sizeof(float));
    if (!x) exit(1);
    return x;
}

/* Direct conv2d (transposed = 0) or conv-transpose2d (transposed = 1) in CNHW, with
 * its backward for a given dout: the definition, one multiply-add at a time. */
static void reference(const nn_conv_dims_t *d, int transposed, const float *in, const float *w,
                      const float *b, const float *dout, double *out, double *din, double *dw,
                      double *db, int OH, int OW)
{
    const int K = d->K;
    for (int oc = 0; oc < d->OC; oc++)
        for (int bi = 0; bi < d->B; bi++)
            for (int p = 0; p < OH * OW; p++) {
                size_t o = ((size_t)oc * d->B + bi) * OH * OW + p;
                out[o] += b[oc];
                db[oc] += dout[o];
            }
    for (int c = 0; c < d->C; c++)
        for (int oc = 0; oc < d->OC; oc++)
            for (int kh = 0; kh < K; kh++)
                for (int kw = 0; kw < K; kw++) {
                    size_t wi = transposed ? (((size_t)c * d->OC + oc) * K + kh) * K + kw
                                           : (((size_t)oc * d->C + c) * K + kh) * K + kw;
                    for (int bi = 0; bi < d->B; bi++)
                        for (int i = 0; i < (transposed ? d->H : OH); i++)
                            for (int j = 0; j < (transposed ? d->W : OW); j++) {
                                /* conv: output (i, j) reads input (ih, iw);
                                 * convT: input (i, j) writes output (ih, iw) */
                                int ih = i * d->stride - d->pad + kh;
                                int iw = j * d->stride - d->pad + kw;
                                int bound_h = transposed ? OH : d->H;
                                int bound_w = transposed ? OW : d->W;
                                if (ih < 0 || iw < 0 || ih >= bound_h || iw >= bound_w) continue;
                                size_t xi, yi;
                                if (transposed) {
                                    xi = (((size_t)c * d->B + bi) * d->H + i) * d->W + j;
                                    yi = (((size_t)oc * d->B + bi) * OH + ih) * OW + iw;
                                } else {
                                    xi = (((size_t)c * d->B + bi) * d->H + ih) * d->W + iw;
                                    yi = (((size_t)oc * d->B + bi) * OH + i) * OW + j;
                                }
                                out[yi] += (double)w[wi] * in[xi];
                                din[xi] += (double)w[wi] * dout[yi];
                                dw[wi] += (double)in[xi] * dout[yi];
                            }
                }
}

static void run(const char *label, nn_conv_dims_t d, int transposed)
{
    nn_rng_t rng;
    nn_rng_seed(&rng, 7);
    int OH = transposed ? nn_convt2d_out_size(d.H, d.K, d.stride, d.pad)
                        : nn_conv2d_out_size(d.H, d.K, d.stride, d.pad);
    int OW = transposed ? nn_convt2d_out_size(d.W, d.K, d.stride, d.pad)
                        : nn_conv2d_out_size(d.W, d.K, d.stride, d.pad);
    size_t nin = (size_t)d.C * d.B * d.H * d.W, nout = (size_t)d.OC * d.B * OH * OW;
    size_t nw = (size_t)d.C * d.OC * d.K * d.K;
    size_t ncols = transposed ? nn_convt2d_cols_size(&d) : nn_conv2d_cols_size(&d);
    size_t per_image = (transposed ? (size_t)d.OC * d.H * d.W : (size_t)d.C * OH * OW) * d.K * d.K;
    printf("%s: B=%d C=%d %dx%d -> OC=%d %dx%d, %zu images per chunk\n", label, d.B, d.C, d.H,
           d.W, d.OC, OH, OW, ncols / per_image);
    check(ncols / per_image < (size_t)d.B, "%s: the batch should be split into chunks", label);

    float *in = rand_buf(&rng, nin), *w = rand_buf(&rng, nw), *b = rand_buf(&rng, d.OC);
    float *dout = rand_buf(&rng, nout), *out = zeros(nout), *din = zeros(nin), *dw = zeros(nw);
    float *db = zeros(d.OC), *cols = zeros(ncols), *dcols = zeros(ncols);
    double *rout = calloc(nout, sizeof(double)), *rdin = calloc(nin, sizeof(double));
    double *rdw = calloc(nw, sizeof(double)), *rdb = calloc(d.OC, sizeof(double));
    reference(&d, transposed, in, w, b, dout, rout, rdin, rdw, rdb, OH, OW);
    if (transposed) {
        nn_convt2d_forward(out, cols, in, w, b, &d);
        nn_convt2d_backward(din, dw, db, cols, dout, in, w, &d);
    } else {
        nn_conv2d_forward(out, cols, in, w, b, &d);
        nn_conv2d_backward(din, dw, db, dcols, dout, cols, in, w, &d);
    }
    float *f = malloc((nout > nin ? (nout > nw ? nout : nw) : (nin > nw ? nin : nw)) * sizeof(float));
    for (size_t i = 0; i < nout; i++) f[i] = (float)rout[i];
    check_close("out", out, f, nout, TOL);
    for (size_t i = 0; i < nin; i++) f[i] = (float)rdin[i];
    check_close("din", din, f, nin, TOL);
    for (size_t i = 0; i < nw; i++) f[i] = (float)rdw[i];
    check_close("dw", dw, f, nw, TOL);
    for (int i = 0; i < d.OC; i++) f[i] = (float)rdb[i];
    check_close("db", db, f, (size_t)d.OC, TOL);
    free(f); free(in); free(w); free(b); free(dout); free(out); free(din); free(dw); free(db);
    free(cols); free(dcols); free(rout); free(rdin); free(rdw); free(rdb);
}

int main(void)
{
    nn_conv_dims_t conv = {3, 32, 96, 96, 8, 4, 2, 1};
    run("conv2d k4 s2 p1, chunked", conv, 0);
    nn_conv_dims_t conv3 = {3, 24, 50, 50, 6, 3, 1, 1};
    run("conv2d k3 s1 p1, chunked", conv3, 0);
    nn_conv_dims_t convt = {3, 6, 33, 33, 32, 4, 2, 1};
    run("convT2d k4 s2 p1, chunked", convt, 1);
    return test_summary("test_nn_conv_chunked");
}
