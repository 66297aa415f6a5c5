/* Causal multi-head self-attention over qkv [B, T, 3C] (llm.c's layout), one (batch,
 * head) pair per task, each pair's products through single-threaded sgemm calls
 * (OpenBLAS runs one thread when called inside an OpenMP parallel region). */
#include "nn/nn.h"
#include "nn/nn_math.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void nn_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                          int NH)
{
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(dynamic) if ((size_t)B * NH * T * T >= NN_PARALLEL_MIN)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        float *a = att + (size_t)bh * T * T;
        /* scores for every (t, j); only j <= t are used */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3,
                    0.0f, a, T);
        for (int t = 0; t < T; t++) {
            float *row = a + (size_t)t * T, mx = -INFINITY, sum = 0.0f;
            for (int j = 0; j <= t; j++) mx = row[j] > mx ? row[j] : mx;
            for (int j = 0; j <= t; j++) {
                row[j] = nn_expf(row[j] - mx);
                sum += row[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j <= t; j++) row[j] *= inv;
            memset(row + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, v, C3,
                    0.0f, out + (size_t)b * T * C + h * hs, C);
    }
}

void nn_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                           const float *att, int B, int T, int C, int NH)
{
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(dynamic) if ((size_t)B * NH * T * T >= NN_PARALLEL_MIN)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const size_t off = (size_t)b * T * C3 + h * hs;
        const float *q = qkv + off, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
        const float *p = att + (size_t)bh * T * T, *dy = dout + (size_t)b * T * C + h * hs;
        float *dp = datt + (size_t)bh * T * T;
        /* dV += P^T dY;  dP = dY V^T */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, dy, C, 1.0f,
                    dv, C3);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dy, C, v, C3,
                    0.0f, dp, T);
        /* through the softmax (and the 1/sqrt(hs) scale): dS = scale * P (dP - rowdot) */
        for (int t = 0; t < T; t++) {
            const float *prow = p + (size_t)t * T;
            float *drow = dp + (size_t)t * T, dot = 0.0f;
            for (int j = 0; j <= t; j++) dot += prow[j] * drow[j];
            for (int j = 0; j <= t; j++) drow[j] = scale * prow[j] * (drow[j] - dot);
            memset(drow + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
        }
        /* dQ += dS K;  dK += dS^T Q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T, k, C3,
                    1.0f, dq, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dp, T, q, C3, 1.0f,
                    dk, C3);
    }
}
