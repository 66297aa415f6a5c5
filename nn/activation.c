/* Elementwise layers. */
#include "nn/nn.h"

#include <math.h>

void nn_relu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void nn_relu_backward(float *din, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        if (out[i] > 0.0f) din[i] += dout[i];
}

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

void nn_gelu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

void nn_gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float t = tanhf(u);
        float sech2 = 1.0f - t * t;
        float du = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        din[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * x * sech2 * du);
    }
}

void nn_add(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
