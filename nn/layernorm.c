/* LayerNorm over the last dimension (eps 1e-5, biased variance, as PyTorch). */
#include "nn/nn.h"

#include <math.h>

#define LN_EPS 1e-5f

void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                          const float *w, const float *b, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) m += x[i];
        m /= (float)C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        v /= (float)C;
        float s = 1.0f / sqrtf(v + LN_EPS);
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

void nn_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                           const float *in, const float *w, const float *mean,
                           const float *rstd, int N, int C)
{
    /* din = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w */
    if (din) {
#pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PARALLEL_MIN)
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C, *dy = dout + (size_t)n * C;
            float *dx = din + (size_t)n * C;
            float m = mean[n], s = rstd[n], g_mean = 0.0f, gx_mean = 0.0f;
            for (int i = 0; i < C; i++) {
                float g = dy[i] * w[i];
                g_mean += g;
                gx_mean += g * (x[i] - m) * s;
            }
            g_mean /= (float)C;
            gx_mean /= (float)C;
            for (int i = 0; i < C; i++)
                dx[i] += s * (dy[i] * w[i] - g_mean - (x[i] - m) * s * gx_mean);
        }
    }
    /* dw, db: sums over rows; blocks of columns in parallel so no two threads share one. */
    if (!dw && !db) return;
    enum { BLOCK = 64 };
    int nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PARALLEL_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * BLOCK, c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
        double aw[BLOCK] = {0}, ab[BLOCK] = {0}; /* N terms each */
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C, *dy = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int i = c0; i < c1; i++) {
                aw[i - c0] += dy[i] * (x[i] - m) * s;
                ab[i - c0] += dy[i];
            }
        }
        for (int i = c0; i < c1; i++) {
            if (dw) dw[i] += (float)aw[i - c0];
            if (db) db[i] += (float)ab[i - c0];
        }
    }
}
