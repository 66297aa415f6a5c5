/* Softmax, cross-entropy and the Gumbel-softmax quantiser: all row-wise over the last
 * dimension. */
#include "nn/nn.h"
#include "nn/nn_math.h"

#include <math.h>
#include <string.h>

/* out = softmax(scale * x) over one row of n */
static void softmax_row(float *out, const float *x, int n, float scale)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] * scale > mx ? x[i] * scale : mx;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        out[i] = nn_expf(x[i] * scale - mx);
        sum += out[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) out[i] *= inv;
}

/* din += y * (dy - sum(dy * y)) * scale over one row */
static void softmax_row_backward(float *din, const float *dy, const float *y, int n,
                                 float scale)
{
    float dot = 0.0f;
    for (int i = 0; i < n; i++) dot += dy[i] * y[i];
    for (int i = 0; i < n; i++) din[i] += scale * y[i] * (dy[i] - dot);
}

void nn_softmax_forward(float *out, const float *in, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) softmax_row(out + (size_t)n * C, in + (size_t)n * C, C, 1.0f);
}

void nn_softmax_backward(float *din, const float *dout, const float *out, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++)
        softmax_row_backward(din + (size_t)n * C, dout + (size_t)n * C, out + (size_t)n * C, C,
                             1.0f);
}

float nn_cross_entropy_forward(float *probs, const float *logits, const int *target,
                               const float *weight, int ignore_index, int N, int C)
{
    double loss = 0.0, wsum = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : loss, wsum) if ((size_t)N * C >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * C;
        softmax_row(probs + (size_t)n * C, x, C, 1.0f);
        int t = target[n];
        if (t == ignore_index) continue;
        /* -log p_t from the log-sum-exp in double: exact where p_t underflows */
        double mx = -INFINITY, s = 0.0;
        for (int i = 0; i < C; i++) mx = fmax(mx, x[i]);
        for (int i = 0; i < C; i++) s += exp((double)x[i] - mx);
        double w = weight ? weight[t] : 1.0;
        loss += w * (mx + log(s) - x[t]);
        wsum += w;
    }
    return wsum > 0 ? (float)(loss / wsum) : 0.0f;
}

void nn_cross_entropy_backward(float *dlogits, const float *probs, const int *target,
                               const float *weight, int ignore_index, float dloss,
                               int N, int C)
{
    double wsum = 0.0;
    for (int n = 0; n < N; n++)
        if (target[n] != ignore_index) wsum += weight ? weight[target[n]] : 1.0;
    if (wsum <= 0) return;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        int t = target[n];
        if (t == ignore_index) continue;
        float g = (float)((weight ? weight[t] : 1.0) / wsum) * dloss;
        const float *p = probs + (size_t)n * C;
        float *d = dlogits + (size_t)n * C;
        for (int i = 0; i < C; i++) d[i] += g * p[i];
        d[t] -= g;
    }
}

void nn_gumbel_softmax_forward(float *out, float *y_soft, const float *logits,
                               const float *noise, float tau, int hard, int N, int K)
{
    const float inv_tau = 1.0f / tau;
#pragma omp parallel for schedule(static) if ((size_t)N * K >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * K;
        float *y = y_soft + (size_t)n * K;
        if (noise) {
            const float *g = noise + (size_t)n * K;
            for (int k = 0; k < K; k++) y[k] = x[k] + g[k];
            softmax_row(y, y, K, inv_tau);
        } else {
            softmax_row(y, x, K, inv_tau);
        }
        float *o = out + (size_t)n * K;
        if (hard) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (y[k] > y[best]) best = k;
            memset(o, 0, (size_t)K * sizeof(float));
            o[best] = 1.0f;
        } else if (o != y) {
            memcpy(o, y, (size_t)K * sizeof(float));
        }
    }
}

void nn_gumbel_softmax_backward(float *dlogits, const float *dout, const float *y_soft,
                                float tau, int N, int K)
{
    /* The straight-through estimator passes dout to y_soft unchanged, so the soft and
     * hard variants share this backward. */
#pragma omp parallel for schedule(static) if ((size_t)N * K >= NN_PARALLEL_MIN)
    for (int n = 0; n < N; n++)
        softmax_row_backward(dlogits + (size_t)n * K, dout + (size_t)n * K,
                             y_soft + (size_t)n * K, K, 1.0f / tau);
}
