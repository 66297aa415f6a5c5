/* Embedding lookup. */
#include "nn/nn.h"

#include <string.h>

void nn_embedding_forward(float *out, const int *ids, const float *table, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, table + (size_t)ids[n] * C, (size_t)C * sizeof(float));
}

void nn_embedding_backward(float *dtable, const float *dout, const int *ids, int N, int C)
{
    /* Ids repeat, so rows of dtable would race; blocks of columns are disjoint. */
    enum { BLOCK = 32 };
    int nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PARALLEL_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * BLOCK, c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
        for (int n = 0; n < N; n++) {
            float *d = dtable + (size_t)ids[n] * C;
            const float *g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}
