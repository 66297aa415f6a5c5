/* Causal multi-head self-attention over qkv [B, T, 3C] (llm.c's layout), one (batch,
 * head) pair per task, each pair's products through single-threaded sgemm calls
 * (OpenBLAS runs one thread when called inside an OpenMP parallel region). */
#include "nn/nn.h"
#include "nn/nn_math.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Causal blocks: rows [r0, r1) of a head attend to columns [0, r1) only, so each
 * product runs on those blocks and skips the masked upper triangle (about 40% of the
 * square's work at T = 288) at the price of more, smaller sgemm calls. */
enum { ATT_BLOCK = 64 };

double nn_attention_pairs(int T)
{
    double n = 0;
    for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        const int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T;
        n += (double)(r1 - r0) * r1;
    }
    return n;
}

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
        for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
            const int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, m = r1 - r0;
            float *ab = a + (size_t)r0 * T;
            /* scores of rows [r0, r1) against columns [0, r1); only j <= t are used */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r1, hs, scale,
                        q + (size_t)r0 * C3, C3, k, C3, 0.0f, ab, T);
            for (int t = r0; t < r1; t++) {
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
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hs, r1, 1.0f, ab, T, v,
                        C3, 0.0f, out + ((size_t)b * T + r0) * C + h * hs, C);
        }
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
        for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
            const int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, m = r1 - r0;
            const float *pb = p + (size_t)r0 * T, *dyb = dy + (size_t)r0 * C;
            float *dpb = dp + (size_t)r0 * T;
            /* dV[0, r1) += P_b^T dY_b;  dP_b = dY_b V[0, r1)^T */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hs, m, 1.0f, pb, T, dyb, C,
                        1.0f, dv, C3);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r1, hs, 1.0f, dyb, C, v, C3,
                        0.0f, dpb, T);
            /* through the softmax (and the 1/sqrt(hs) scale): dS = scale * P (dP - rowdot);
             * columns past t inside the block are zeroed for the products below, which
             * read no column at or past r1 */
            for (int t = r0; t < r1; t++) {
                const float *prow = p + (size_t)t * T;
                float *drow = dp + (size_t)t * T, dot = 0.0f;
                for (int j = 0; j <= t; j++) dot += prow[j] * drow[j];
                for (int j = 0; j <= t; j++) drow[j] = scale * prow[j] * (drow[j] - dot);
                memset(drow + t + 1, 0, (size_t)(r1 - t - 1) * sizeof(float));
            }
            /* dQ_b += dS_b K[0, r1);  dK[0, r1) += dS_b^T Q_b */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hs, r1, 1.0f, dpb, T, k,
                        C3, 1.0f, dq + (size_t)r0 * C3, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hs, m, 1.0f, dpb, T,
                        q + (size_t)r0 * C3, C3, 1.0f, dk, C3);
        }
    }
}
