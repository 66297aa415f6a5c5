/* Fully connected layer, nn.Linear's layout: w [OC, C]. */
#include "nn/nn.h"

#include <cblas.h>
#include <string.h>

void nn_linear_forward(float *out, const float *in, const float *w, const float *b,
                       int N, int C, int OC)
{
    /* Preloading the bias and accumulating (beta = 1) costs the same one pass over
     * out as a separate bias loop, and keeps the sgemm the only heavy call. */
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= NN_PARALLEL_MIN)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, in, C, w, C, beta,
                out, OC);
}

/* db[oc] += sum_n dout[n, oc]: blocks of columns in parallel, rows streamed in order. */
static void sum_rows_into(float *db, const float *dout, int N, int OC)
{
    enum { BLOCK = 64 };
    int nblocks = (OC + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= NN_PARALLEL_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int o0 = blk * BLOCK, o1 = o0 + BLOCK < OC ? o0 + BLOCK : OC;
        double acc[BLOCK] = {0}; /* N terms each */
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OC;
            for (int o = o0; o < o1; o++) acc[o - o0] += row[o];
        }
        for (int o = o0; o < o1; o++) db[o] += (float)acc[o - o0];
    }
}

void nn_linear_backward(float *din, float *dw, float *db, const float *dout,
                        const float *in, const float *w, int N, int C, int OC)
{
    if (din)  /* din [N, C] += dout [N, OC] @ w [OC, C] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C,
                    1.0f, din, C);
    if (dw)   /* dw [OC, C] += dout^T [OC, N] @ in [N, C] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, in, C,
                    1.0f, dw, C);
    if (db) sum_rows_into(db, dout, N, OC);
}
