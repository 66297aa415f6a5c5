/* torch.optim.AdamW and torch.nn.utils.clip_grad_norm_, operation for operation. */
#include "nn/nn.h"

#include <math.h>

nn_adamw_t nn_adamw_default(void)
{
    nn_adamw_t o = {1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f};
    return o;
}

void nn_adamw_step(float *param, const float *grad, float *m, float *v, size_t n,
                   const nn_adamw_t *opt, long t)
{
    /* PyTorch 1.13's _single_tensor_adamw: p *= 1 - lr*wd; m = b1*m + (1-b1)*g;
     * v = b2*v + (1-b2)*g*g; p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps),
     * the bias corrections in double as Python computes them. */
    const float b1 = opt->beta1, b2 = opt->beta2;
    const double bc1 = 1.0 - pow((double)b1, (double)t);
    const float bc2_sqrt = (float)sqrt(1.0 - pow((double)b2, (double)t));
    const float step = (float)((double)opt->lr / bc1);
    const float decay = (float)(1.0 - (double)opt->lr * opt->weight_decay);
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = param[i] * decay - step * mi / (sqrtf(vi) / bc2_sqrt + opt->eps);
    }
}

float nn_clip_grad_norm(float *grad, size_t n, float max_norm)
{
    double ss = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : ss) if (n >= NN_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) ss += (double)grad[i] * grad[i];
    float norm = (float)sqrt(ss);
    float coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f) {
#pragma omp parallel for schedule(static) if (n >= NN_PARALLEL_MIN)
        for (size_t i = 0; i < n; i++) grad[i] *= coef;
    }
    return norm;
}

float nn_lr_schedule(long t, long warmup, long total, float lr, float lr_min)
{
    if (t < warmup) return lr * (float)(t + 1) / (float)warmup;
    if (total <= warmup) return lr;
    double progress = (double)(t - warmup) / (double)(total - warmup);
    if (progress > 1.0) progress = 1.0;
    return lr_min + (lr - lr_min) * (float)(0.5 * (1.0 + cos(3.14159265358979323846 * progress)));
}
