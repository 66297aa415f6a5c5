/* The whole dVAE training step against PyTorch (tests/fixtures_dvae.py): loss, encoder
 * logits, reconstruction and every parameter gradient with the Gumbel noise fixed, soft
 * and straight-through; inference encode/decode. (Finite differences of the whole float32
 * loss are too coarse for the small gradients here; the layers have their own.) */
#include "dvae/dvae.h"
#include "nn/nn.h"
#include "tests/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static dvae_t *model_from_fixture(fx_file_t *f, int *B, float *tau)
{
    int *cfgv = fx_i32(f, "config");
    float *tb = fx_f32(f, "tau_beta");
    dvae_config_t c = dvae_config_default();
    c.image_size = cfgv[0], c.layers = cfgv[1], c.channels = cfgv[2], c.res_blocks = cfgv[3];
    c.codebook_size = cfgv[4], c.code_dim = cfgv[5], c.straight_through = cfgv[7];
    c.kl_weight = tb[1];
    *B = cfgv[6];
    *tau = tb[0];
    char err[256];
    dvae_t *m;
    if (dvae_create(&m, &c, *B, err)) {
        printf("%s\n", err);
        exit(1);
    }
    for (int i = 0; i < dvae_tensor_count(m); i++) {
        dvae_tensor_t t = dvae_tensor(m, i);
        fx_tensor_t *ft = fx_get(f, t.name);
        if (!check(ft->numel == t.numel, "%s: %zu values in the fixture, %zu in the model",
                   t.name, ft->numel, t.numel))
            exit(1);
        memcpy(t.data, ft->data, t.numel * sizeof(float));
    }
    return m;
}

/* Tolerances: the reference is float64; our float32 sums over up to C*K*K = 64 terms in
 * a layer, through 12 layers, give ~1e-6 of a tensor's scale. check_close judges
 * entries near zero against 1e-3 of the scale, so 1e-4 here (1e-5 where it holds). */
static void test_step(const char *name)
{
    printf("%s\n", name);
    fx_file_t *f = fx_load(name);
    int B;
    float tau;
    dvae_t *m = model_from_fixture(f, &B, &tau);
    const dvae_config_t *c = dvae_config(m);
    const int S = c->image_size, G = dvae_grid_size(c), K = c->codebook_size;
    const size_t nimg = (size_t)B * 3 * S * S;

    dvae_stats_t st;
    float loss = dvae_forward(m, fx_f32(f, "x"), B, fx_f32(f, "noise"), tau, &st);
    check_close("loss", &loss, fx_f32(f, "loss"), 1, 1e-5);
    check_close("mse", &st.mse, fx_f32(f, "mse"), 1, 1e-5);
    check_close("kl", &st.kl, fx_f32(f, "kl"), 1, 1e-5);
    check_close("logits", dvae_logits(m), fx_f32(f, "logits"), (size_t)B * G * G * K, 1e-4);
    float *xhat = malloc(nimg * sizeof(float));
    dvae_get_reconstruction(m, xhat);
    check_close("reconstruction", xhat, fx_f32(f, "xhat"), nimg, 1e-4);
    check(st.used_codes >= 1 && st.used_codes <= K && st.perplexity >= 1.0f &&
              st.perplexity <= (float)K + 1e-3f,
          "code statistics in range: used %d, perplexity %g", st.used_codes, st.perplexity);

    dvae_zero_grad(m);
    dvae_backward(m);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < dvae_tensor_count(m); i++) {
        dvae_tensor_t t = dvae_tensor(m, i);
        char gname[96];
        snprintf(gname, sizeof gname, "grad.%s", t.name);
        const float *want = fx_f32(f, gname);
        double scale = 0, err = 0;
        for (size_t k = 0; k < t.numel; k++) scale = scale > fabsf(want[k]) ? scale : fabsf(want[k]);
        for (size_t k = 0; k < t.numel; k++) {
            double e = fabs((double)t.grad[k] - want[k]) / (scale > 0 ? scale : 1);
            if (e > err) err = e;
        }
        if (err > worst) worst = err, worst_name = t.name;
        /* The first layers' gradients sum over every layer above and every pixel with
         * much cancellation, so entries near zero carry ~1e-4 of check_close's floor
         * (1e-3 of the tensor's scale): 1e-3 per entry, and 1e-5 of the scale for the
         * worst entry of any tensor, checked below. */
        check_close(gname, t.grad, want, t.numel, 1e-3);
    }
    printf("  worst gradient error relative to its tensor's scale: %.3g (%s)\n", worst,
           worst_name);
    check(worst < 1e-5, "every gradient within 1e-5 of its tensor's scale (worst %.3g)", worst);

    /* inference: argmax tokens, and decoding them */
    int *tokens = malloc((size_t)B * G * G * sizeof(int));
    dvae_encode(m, fx_f32(f, "x"), B, tokens);
    const int *want_tokens = fx_i32(f, "tokens");
    int same = 1;
    for (int i = 0; i < B * G * G; i++) same &= tokens[i] == want_tokens[i];
    check(same, "encode: argmax tokens equal PyTorch's");
    dvae_decode(m, want_tokens, B, xhat);
    check_close("decoded", xhat, fx_f32(f, "decoded"), nimg, 1e-4);
    free(tokens);
    free(xhat);
    dvae_free(m);
    fx_free(f);
}

static void test_bad_config(void)
{
    printf("config checks\n");
    dvae_config_t c = dvae_config_default();
    char err[256];
    dvae_t *m;
    c.image_size = 60; /* not divisible by 2^3 */
    check(dvae_create(&m, &c, 2, err) != 0 && m == NULL && strstr(err, "divisible"),
          "S=60 with L=3 is refused: %s", err);
    c = dvae_config_default();
    check(dvae_create(&m, &c, 0, err) != 0, "batch 0 is refused");
    c.codebook_size = 1;
    check(dvae_create(&m, &c, 2, err) != 0, "K=1 is refused");
    c = dvae_config_default();
    c.image_size = 64, c.layers = 6, c.res_blocks = 41; /* 4*6 + 12*41 + 7 = 523 tensors */
    check(dvae_create(&m, &c, 1, err) != 0 && strstr(err, "too many layers"),
          "a config with more tensors than the table holds is refused: %s", err);
    c = dvae_config_default();
    check(dvae_tau(&c, 0) == c.tau_start && dvae_tau(&c, 100000000) == c.tau_min,
          "tau anneals from tau_start to tau_min");
}

int main(void)
{
    test_step("dvae_step_soft");
    test_step("dvae_step_hard");
    test_bad_config();
    return test_summary("test_dvae");
}
