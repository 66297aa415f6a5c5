/* The two layers of a CLIP-style scorer that the other models do not use: L2
 * normalisation of embeddings and the symmetric contrastive (InfoNCE) loss. */
#include "nn/nn.h"

#include <cblas.h>
#include <math.h>

/* F.normalize's floor on the norm: a zero row stays zero instead of becoming NaN */
#define L2_EPS 1e-12f

void nn_l2norm_forward(float *out, float *norm, const float *in, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = 0.0;
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        float len = (float)sqrt(ss);
        norm[n] = len;
        float inv = 1.0f / (len > L2_EPS ? len : L2_EPS);
        for (int i = 0; i < C; i++) o[i] = x[i] * inv;
    }
}

void nn_l2norm_backward(float *din, const float *dout, const float *out, const float *norm,
                        int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *dy = dout + (size_t)n * C, *y = out + (size_t)n * C;
        float *dx = din + (size_t)n * C;
        if (!(norm[n] > L2_EPS)) { /* below the floor the layer is x / eps: linear */
            for (int i = 0; i < C; i++) dx[i] += dy[i] / L2_EPS;
            continue;
        }
        float dot = 0.0f;
        for (int i = 0; i < C; i++) dot += dy[i] * y[i];
        const float inv = 1.0f / norm[n];
        for (int i = 0; i < C; i++) dx[i] += (dy[i] - y[i] * dot) * inv;
    }
}

/* -log softmax(x)[t] over one row, in double: exact where the probability underflows */
static double row_nll(const float *x, int n, int t)
{
    double mx = -INFINITY, s = 0.0;
    for (int i = 0; i < n; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s) - x[t];
}

float nn_contrastive_forward(float *logits, float *p_img, float *p_txt, const float *img,
                             const float *txt, float log_scale, int n, int E)
{
    const float s = expf(log_scale);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, E, s, img, E, txt, E, 0.0f,
                logits, n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) p_txt[(size_t)j * n + i] = logits[(size_t)i * n + j];
    double loss = 0.0;
    for (int i = 0; i < n; i++)
        loss += row_nll(logits + (size_t)i * n, n, i) + row_nll(p_txt + (size_t)i * n, n, i);
    nn_softmax_forward(p_txt, p_txt, n, n);
    nn_softmax_forward(p_img, logits, n, n);
    return (float)(loss / (2.0 * n));
}

void nn_contrastive_backward(float *dimg, float *dtxt, float *dlog_scale, float *dlogits,
                             const float *logits, const float *p_img, const float *p_txt,
                             const float *img, const float *txt, float log_scale, float dloss,
                             int n, int E)
{
    /* d/dlogits[i][j] of both cross-entropies: (p_img[i][j] - [i=j]) + (p_txt[j][i] - [i=j]),
     * each mean over n rows and the pair averaged */
    const float g = dloss / (2.0f * (float)n), s = expf(log_scale);
    double ds = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float d = p_img[(size_t)i * n + j] + p_txt[(size_t)j * n + i] - (i == j ? 2.0f : 0.0f);
            d *= g;
            dlogits[(size_t)i * n + j] = d;
            ds += (double)d * logits[(size_t)i * n + j]; /* logits = e^log_scale * cos */
        }
    if (dlog_scale) *dlog_scale += (float)ds;
    if (dimg) /* dimg [n, E] += s * dlogits @ txt */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, E, n, s, dlogits, n, txt, E,
                    1.0f, dimg, E);
    if (dtxt) /* dtxt [n, E] += s * dlogits^T @ img */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, E, n, s, dlogits, n, img, E,
                    1.0f, dtxt, E);
}
