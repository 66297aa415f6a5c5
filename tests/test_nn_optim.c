/* AdamW and gradient-norm clipping against PyTorch: torch.optim.AdamW over 3 steps
 * (tests/fixtures/nn_adamw.bin; one parameter whose gradient is always 0, so only the
 * decay moves it) and torch.nn.utils.clip_grad_norm_ over two tensors concatenated into
 * one flat buffer, once clipping and once not (nn_clip_grad_norm_*.bin). */
#include "nn/nn.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *zeros(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

static void test_defaults(void)
{
    printf("adamw defaults\n");
    nn_adamw_t o = nn_adamw_default();
    check(o.lr == 1e-3f && o.beta1 == 0.9f && o.beta2 == 0.999f && o.eps == 1e-8f &&
              o.weight_decay == 1e-2f,
          "PyTorch's AdamW defaults (got lr %g betas %g %g eps %g wd %g)", o.lr, o.beta1,
          o.beta2, o.eps, o.weight_decay);
}

static void test_adamw(void)
{
    printf("adamw vs PyTorch (3 steps)\n");
    fx_file_t *f = fx_load("nn_adamw");
    const float *h = fx_f32(f, "hparams");
    nn_adamw_t opt = {.lr = h[0], .beta1 = h[1], .beta2 = h[2], .eps = h[3],
                      .weight_decay = h[4]};
    fx_tensor_t *gt = fx_get(f, "grads");
    int steps = (int)gt->dims[0];
    size_t n = (size_t)gt->dims[1];
    float *p = zeros(n), *m = zeros(n), *v = zeros(n), *delta = zeros(n), *wdelta = zeros(n);
    memcpy(p, fx_f32(f, "p0"), n * sizeof(float));
    for (int s = 0; s < steps; s++) {
        float *prev = s ? fx_f32(f, "params") + (size_t)(s - 1) * n : fx_f32(f, "p0");
        const float *want = fx_f32(f, "params") + (size_t)s * n;
        nn_adamw_step(p, fx_f32(f, "grads") + (size_t)s * n, m, v, n, &opt, s + 1);
        char label[64];
        snprintf(label, sizeof label, "params after step %d", s + 1);
        check_close(label, p, want, n, 1e-6);
        /* The update itself is small next to the parameters: judge it on its own. It is
         * only known to the float32 rounding of p (1 ulp = 1.2e-7 for |p| in [1, 2)),
         * and the smallest update, the decay-only parameter's lr * wd * p = 1e-3 * p,
         * sets check_close's floor: 1 ulp is then up to ~1.3e-4 (observed 8.3e-5). */
        for (size_t i = 0; i < n; i++) {
            delta[i] = p[i] - prev[i];
            wdelta[i] = want[i] - prev[i];
        }
        snprintf(label, sizeof label, "update of step %d", s + 1);
        check_close(label, delta, wdelta, n, 5e-4);
        /* continue from PyTorch's parameters so errors do not compound */
        memcpy(p, want, n * sizeof(float));
    }
    check_close("m (exp_avg)", m, fx_f32(f, "m"), n, 1e-5);
    check_close("v (exp_avg_sq)", v, fx_f32(f, "v"), n, 1e-5);
    free(p); free(m); free(v); free(delta); free(wdelta);
    fx_free(f);
}

static void test_clip(const char *name)
{
    printf("%s vs PyTorch\n", name);
    fx_file_t *f = fx_load(name);
    size_t n = fx_get(f, "grad")->numel;
    float max_norm = fx_f32(f, "max_norm")[0];
    float *g = zeros(n);
    memcpy(g, fx_f32(f, "grad"), n * sizeof(float));
    float norm = nn_clip_grad_norm(g, n, max_norm);
    printf("  norm %g, max_norm %g\n", norm, max_norm);
    check_close("norm", &norm, fx_f32(f, "norm"), 1, 1e-6);
    check_close("clipped grad", g, fx_f32(f, "clipped"), n, 1e-6);
    free(g);
    fx_free(f);
}

int main(void)
{
    test_defaults();
    test_adamw();
    test_clip("nn_clip_grad_norm_clips");
    test_clip("nn_clip_grad_norm_noclip");
    return test_summary("test_nn_optim");
}
