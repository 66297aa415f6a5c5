/* Conv2d and ConvTranspose2d as im2col + one sgemm over the whole batch.
 *
 * Activations are [C, B, H, W] (see nn.h), so the batch is one matrix [C, B*H*W]:
 *   conv:  out [OC, B*OH*OW] = w [OC, C*K*K] @ cols [C*K*K, B*OH*OW]
 *   convT: cols [OC*K*K, B*H*W] = w^T [OC*K*K, C] @ in [C, B*H*W], then col2im
 * cols rows are (channel, kh, kw), columns (batch, oh, ow), as PyTorch's unfold. */
#include "nn/nn.h"

#include <cblas.h>
#include <string.h>

int nn_conv2d_out_size(int in, int K, int stride, int pad)
{
    return (in + 2 * pad - K) / stride + 1;
}

int nn_convt2d_out_size(int in, int K, int stride, int pad)
{
    return (in - 1) * stride - 2 * pad + K;
}

/* The im2col geometry: images [C, B, H, W] seen through K×K windows at stride s and
 * padding p give OH×OW positions. A call works on the nb images from b0 of a batch of
 * B: the batch is processed in chunks small enough that a chunk's columns stay in
 * cache between the im2col and the sgemm that reads them. */
typedef struct {
    int C, B, H, W, K, s, p, OH, OW;
} window_t;

/* The output columns ow whose input column ow*s - p + kw lies inside [0, W). */
static void valid_range(int *lo, int *hi, int out, int in, int s, int p, int k)
{
    int a = p - k > 0 ? (p - k + s - 1) / s : 0;  /* first ow with ow*s - p + k >= 0 */
    int b = (in - 1 + p - k) >= 0 ? (in - 1 + p - k) / s + 1 : 0; /* ow*s - p + k < in */
    *lo = a;
    *hi = b < out ? b : out;
    if (*hi < *lo) *hi = *lo;
}

/* cols [C*K*K, nb*OH*OW] <- images b0..b0+nb of img [C, B, H, W] */
static void im2col(float *cols, const float *img, const window_t *g, int b0, int nb)
{
    const int KK = g->K * g->K, P = g->OH * g->OW;
    const size_t ncols = (size_t)nb * P;
#pragma omp parallel for schedule(static) if ((size_t)g->C * KK * ncols >= NN_PARALLEL_MIN)
    for (int r = 0; r < g->C * KK; r++) {
        const int c = r / KK, kh = r % KK / g->K, kw = r % g->K, s = g->s;
        int lo, hi;
        valid_range(&lo, &hi, g->OW, g->W, s, g->p, kw);
        float *dst = cols + (size_t)r * ncols;
        for (int b = 0; b < nb; b++) {
            const float *src = img + ((size_t)c * g->B + b0 + b) * g->H * g->W;
            for (int oh = 0; oh < g->OH; oh++) {
                const int ih = oh * s - g->p + kh;
                float *d = dst + (size_t)b * P + (size_t)oh * g->OW;
                if (ih < 0 || ih >= g->H) {
                    memset(d, 0, (size_t)g->OW * sizeof(float));
                    continue;
                }
                /* input column of output column ow: ow*s + off, inside the row for
                 * ow in [lo, hi) */
                const float *row = src + (size_t)ih * g->W;
                const int off = kw - g->p;
                for (int ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                if (s == 1 && hi > lo)
                    memcpy(d + lo, row + lo + off, (size_t)(hi - lo) * sizeof(float));
                else
                    for (int ow = lo; ow < hi; ow++) d[ow] = row[ow * s + off];
                for (int ow = hi; ow < g->OW; ow++) d[ow] = 0.0f;
            }
        }
    }
}

/* images b0..b0+nb of img [C, B, H, W] += col2im(cols): the adjoint of im2col.
 * Parallel over channels, so each thread owns the rows of cols and the planes of img
 * it touches. */
static void col2im(float *img, const float *cols, const window_t *g, int b0, int nb)
{
    const int KK = g->K * g->K, P = g->OH * g->OW;
    const size_t ncols = (size_t)nb * P;
#pragma omp parallel for schedule(static) if ((size_t)g->C * KK * ncols >= NN_PARALLEL_MIN)
    for (int c = 0; c < g->C; c++) {
        for (int k = 0; k < KK; k++) {
            const int kh = k / g->K, kw = k % g->K, s = g->s;
            int lo, hi;
            valid_range(&lo, &hi, g->OW, g->W, s, g->p, kw);
            const float *src = cols + ((size_t)c * KK + k) * ncols;
            for (int b = 0; b < nb; b++) {
                float *dst = img + ((size_t)c * g->B + b0 + b) * g->H * g->W;
                for (int oh = 0; oh < g->OH; oh++) {
                    const int ih = oh * s - g->p + kh;
                    if (ih < 0 || ih >= g->H) continue;
                    const float *sp = src + (size_t)b * P + (size_t)oh * g->OW;
                    float *row = dst + (size_t)ih * g->W;
                    const int off = kw - g->p;
                    for (int ow = lo; ow < hi; ow++) row[ow * s + off] += sp[ow];
                }
            }
        }
    }
}

/* Images per chunk: as many as keep a chunk's columns near 2 MB (the L2 of one core
 * and a small part of L3), at least one. Measured with bench-nn: at the dvae-train
 * shapes whole-batch columns (up to 67 MB) made the products memory-bound. */
static int chunk_images(size_t cols_per_image, int B)
{
    const size_t target = (size_t)1 << 19; /* floats */
    size_t n = target / (cols_per_image ? cols_per_image : 1);
    if (n < 1) n = 1;
    return n > (size_t)B ? B : (int)n;
}

/* out [rows, n] (row stride ld) = bias[row] broadcast, or nothing when b is NULL.
 * Returns the beta the following sgemm should use. */
static float preload_bias(float *out, const float *b, int rows, size_t n, size_t ld)
{
    if (!b) return 0.0f;
#pragma omp parallel for schedule(static) if ((size_t)rows * n >= NN_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        float *o = out + (size_t)r * ld;
        for (size_t i = 0; i < n; i++) o[i] = b[r];
    }
    return 1.0f;
}

/* db[r] += sum of row r of x [rows, n] */
static void add_row_sums(float *db, const float *x, int rows, size_t n)
{
#pragma omp parallel for schedule(static) if ((size_t)rows * n >= NN_PARALLEL_MIN)
    for (int r = 0; r < rows; r++) {
        const float *row = x + (size_t)r * n;
        double acc = 0.0; /* B*H*W terms: tens of thousands */
        for (size_t i = 0; i < n; i++) acc += row[i];
        db[r] += (float)acc;
    }
}

static int is_pointwise(const nn_conv_dims_t *d)
{
    return d->K == 1 && d->stride == 1 && d->pad == 0;
}

/* A 1x1 convolution's products run over columns [j0, j0 + POINTWISE_COLUMNS) at a time.
 * Its matrices are [channels, B*H*W] with rows B*H*W floats apart, often a power of two
 * (256 KB at dvae-train's 64x64 output): on one product OpenBLAS's packing then hits the
 * same cache sets row after row, and the weight gradient of the 64 -> 3 output layer took
 * 15 ms instead of 0.75 ms (measured: chunks of 4096 columns fix it, 8192 do not). */
enum { POINTWISE_COLUMNS = 4096 };

static window_t conv_window(const nn_conv_dims_t *d)
{
    window_t g = {d->C, d->B, d->H, d->W, d->K, d->stride, d->pad, 0, 0};
    g.OH = nn_conv2d_out_size(d->H, d->K, d->stride, d->pad);
    g.OW = nn_conv2d_out_size(d->W, d->K, d->stride, d->pad);
    return g;
}

static int conv_chunk(const nn_conv_dims_t *d, const window_t *g)
{
    return chunk_images((size_t)d->C * d->K * d->K * g->OH * g->OW, d->B);
}

size_t nn_conv2d_cols_size(const nn_conv_dims_t *d)
{
    window_t g = conv_window(d);
    return (size_t)d->C * d->K * d->K * conv_chunk(d, &g) * g.OH * g.OW;
}

void nn_conv2d_forward(float *out, float *cols, const float *in, const float *w,
                       const float *b, const nn_conv_dims_t *d)
{
    window_t g = conv_window(d);
    const int CKK = d->C * d->K * d->K, P = g.OH * g.OW;
    const size_t n = (size_t)d->B * P;
    float beta = preload_bias(out, b, d->OC, n, n);
    if (is_pointwise(d)) {  /* out [OC, n] = w [OC, C] @ in [C, n] */
        for (size_t j0 = 0; j0 < n; j0 += POINTWISE_COLUMNS) {
            const int m = n - j0 < POINTWISE_COLUMNS ? (int)(n - j0) : POINTWISE_COLUMNS;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->OC, m, CKK, 1.0f, w, CKK,
                        in + j0, (int)n, beta, out + j0, (int)n);
        }
        return;
    }
    const int chunk = conv_chunk(d, &g);
    for (int b0 = 0; b0 < d->B; b0 += chunk) {
        const int nb = b0 + chunk <= d->B ? chunk : d->B - b0;
        im2col(cols, in, &g, b0, nb);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->OC, nb * P, CKK, 1.0f, w,
                    CKK, cols, nb * P, beta, out + (size_t)b0 * P, (int)n);
    }
}

void nn_conv2d_backward(float *din, float *dw, float *db, float *dcols, const float *dout,
                        float *cols, const float *in, const float *w,
                        const nn_conv_dims_t *d)
{
    window_t g = conv_window(d);
    const int CKK = d->C * d->K * d->K, P = g.OH * g.OW;
    const size_t n = (size_t)d->B * P;
    if (db) add_row_sums(db, dout, d->OC, n);
    if (is_pointwise(d)) {
        for (size_t j0 = 0; j0 < n; j0 += POINTWISE_COLUMNS) {
            const int m = n - j0 < POINTWISE_COLUMNS ? (int)(n - j0) : POINTWISE_COLUMNS;
            if (dw)   /* dw [OC, C] += dout [OC, n] @ in^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->OC, CKK, m, 1.0f,
                            dout + j0, (int)n, in + j0, (int)n, 1.0f, dw, CKK);
            if (din)  /* din [C, n] += w^T @ dout */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, m, d->OC, 1.0f, w,
                            CKK, dout + j0, (int)n, 1.0f, din + j0, (int)n);
        }
        return;
    }
    const int chunk = conv_chunk(d, &g);
    for (int b0 = 0; b0 < d->B; b0 += chunk) {
        const int nb = b0 + chunk <= d->B ? chunk : d->B - b0;
        const float *dout_b = dout + (size_t)b0 * P;
        if (dw) {  /* dw [OC, CKK] += dout [OC, nb*P] @ cols^T */
            im2col(cols, in, &g, b0, nb);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->OC, CKK, nb * P, 1.0f,
                        dout_b, (int)n, cols, nb * P, 1.0f, dw, CKK);
        }
        if (din) {  /* dcols = w^T @ dout, then scattered back onto din */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CKK, nb * P, d->OC, 1.0f, w,
                        CKK, dout_b, (int)n, 0.0f, dcols, nb * P);
            col2im(din, dcols, &g, b0, nb);
        }
    }
}

/* A transposed convolution from in (H×W) to out (OH×OW) is the adjoint of an ordinary
 * convolution from out to in, so its windows are those of that convolution over the
 * output image. */
static window_t convt_window(const nn_conv_dims_t *d)
{
    window_t g = {d->OC, d->B, 0, 0, d->K, d->stride, d->pad, d->H, d->W};
    g.H = nn_convt2d_out_size(d->H, d->K, d->stride, d->pad);
    g.W = nn_convt2d_out_size(d->W, d->K, d->stride, d->pad);
    return g;
}

static int convt_chunk(const nn_conv_dims_t *d)
{
    return chunk_images((size_t)d->OC * d->K * d->K * d->H * d->W, d->B);
}

size_t nn_convt2d_cols_size(const nn_conv_dims_t *d)
{
    return (size_t)d->OC * d->K * d->K * convt_chunk(d) * d->H * d->W;
}

void nn_convt2d_forward(float *out, float *cols, const float *in, const float *w,
                        const float *b, const nn_conv_dims_t *d)
{
    window_t g = convt_window(d);
    const int OCKK = d->OC * d->K * d->K, P = d->H * d->W;
    const size_t n = (size_t)d->B * P, nout = (size_t)d->B * g.H * g.W;
    if (b)
        preload_bias(out, b, d->OC, nout, nout);
    else
        memset(out, 0, (size_t)d->OC * nout * sizeof(float));
    const int chunk = convt_chunk(d);
    for (int b0 = 0; b0 < d->B; b0 += chunk) {
        const int nb = b0 + chunk <= d->B ? chunk : d->B - b0;
        /* cols [OCKK, nb*P] = w^T [OCKK, C] @ in [C, nb*P] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OCKK, nb * P, d->C, 1.0f, w, OCKK,
                    in + (size_t)b0 * P, (int)n, 0.0f, cols, nb * P);
        col2im(out, cols, &g, b0, nb);
    }
}

void nn_convt2d_backward(float *din, float *dw, float *db, float *cols, const float *dout,
                         const float *in, const float *w, const nn_conv_dims_t *d)
{
    window_t g = convt_window(d);
    const int OCKK = d->OC * d->K * d->K, P = d->H * d->W;
    const size_t n = (size_t)d->B * P;
    if (db) add_row_sums(db, dout, d->OC, (size_t)d->B * g.H * g.W);
    if (!din && !dw) return;
    const int chunk = convt_chunk(d);
    for (int b0 = 0; b0 < d->B; b0 += chunk) {
        const int nb = b0 + chunk <= d->B ? chunk : d->B - b0;
        im2col(cols, dout, &g, b0, nb);
        if (din)  /* din [C, nb*P] += w [C, OCKK] @ cols [OCKK, nb*P] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->C, nb * P, OCKK, 1.0f, w,
                        OCKK, cols, nb * P, 1.0f, din + (size_t)b0 * P, (int)n);
        if (dw)   /* dw [C, OCKK] += in [C, nb*P] @ cols^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->C, OCKK, nb * P, 1.0f,
                        in + (size_t)b0 * P, (int)n, cols, nb * P, 1.0f, dw, OCKK);
    }
}

void nn_nchw_to_cnhw(float *out, const float *in, int B, int C, int HW)
{
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * HW >= NN_PARALLEL_MIN)
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++)
            memcpy(out + ((size_t)c * B + b) * HW, in + ((size_t)b * C + c) * HW,
                   (size_t)HW * sizeof(float));
}

void nn_cnhw_to_nchw(float *out, const float *in, int B, int C, int HW)
{
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * HW >= NN_PARALLEL_MIN)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            memcpy(out + ((size_t)b * C + c) * HW, in + ((size_t)c * B + b) * HW,
                   (size_t)HW * sizeof(float));
}
