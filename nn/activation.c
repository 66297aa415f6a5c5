/* Elementwise layers. */
#include "nn/nn.h"
#include "nn/nn_math.h"

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

/* 0.5 x (1 + tanh u) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): the same
 * function without tanhf's call (which kept the loop scalar) or the cancellation of
 * 1 + tanh u at large negative x. */
void nn_gelu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = x * nn_sigmoidf(2.0f * u);
    }
}

/* d/dx = s + 2 x s (1 - s) u', s = sigmoid(2u) */
void nn_gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float s = nn_sigmoidf(2.0f * u);
        float du = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        din[i] += dout[i] * (s + 2.0f * x * s * (1.0f - s) * du);
    }
}

void nn_add(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
