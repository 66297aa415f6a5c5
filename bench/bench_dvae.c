/* dVAE bench configs of DESIGN.md (batch 16, S 64, L 3, C 64, R 2, K 512, D 256, soft
 * Gumbel), timed the way bench/run compares them with PyTorch:
 *   bench-dvae dvae-train|dvae-decode [-t THREADS] [-r REPS] [-w WARMUP] */
#include "bench/bench_common.h"
#include "dvae/dvae.h"
#include "nn/nn.h"

#include <string.h>

/* multiply-adds of one forward, from the layer shapes */
static double forward_gflop(const dvae_config_t *c, int B, int decoder_only)
{
    const double S = c->image_size, C = c->channels, K = c->codebook_size, D = c->code_dim;
    const double G = dvae_grid_size(c), cells = B * G * G;
    double macs = 0;
    double s = S;
    for (int i = 0; i < c->layers; i++, s /= 2) {
        double cin = i == 0 ? 3 : C;
        if (!decoder_only) macs += cin * C * 16 * B * (s / 2) * (s / 2);
        macs += C * C * 16 * B * (s / 2) * (s / 2); /* the matching up-convolution */
    }
    double res = c->res_blocks * (2 * C * C * 9 + C * C) * cells;
    macs += res * (decoder_only ? 1 : 2);
    if (!decoder_only) macs += C * K * cells + K * D * cells; /* logits, codebook */
    macs += D * C * cells + C * 3 * B * S * S;                /* dec in, out */
    return 2.0 * macs / 1e9;
}

int main(int argc, char **argv)
{
    const char *config = argc > 1 ? argv[1] : "";
    int threads = 2, reps = 10, warmup = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-t") == 0) threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-r") == 0) reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-w") == 0) warmup = atoi(argv[i + 1]);
    }
    int train = strcmp(config, "dvae-train") == 0, decode = strcmp(config, "dvae-decode") == 0;
    if ((!train && !decode) || threads < 1 || reps < 1 || reps > 1000 || warmup < 0) {
        fprintf(stderr, "usage: bench-dvae dvae-train|dvae-decode [-t THREADS] [-r REPS] [-w WARMUP]\n");
        return 2;
    }
    nn_set_threads(threads);
    const int B = 16;
    dvae_config_t c = dvae_config_default();
    char err[256];
    dvae_t *m;
    if (dvae_create(&m, &c, B, err)) {
        fprintf(stderr, "bench-dvae: %s\n", err);
        return 1;
    }
    dvae_init_params(m, 1);
    const int S = c.image_size, G = dvae_grid_size(&c), K = c.codebook_size;
    const size_t nimg = (size_t)B * 3 * S * S, ncell = (size_t)B * G * G;
    float *x = malloc(nimg * sizeof(float)), *noise = malloc(ncell * K * sizeof(float));
    int *tokens = malloc(ncell * sizeof(int));
    size_t np = dvae_param_count(m);
    float *am = calloc(np, sizeof(float)), *av = calloc(np, sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    if (!x || !noise || !tokens || !am || !av || !t) {
        fprintf(stderr, "bench-dvae: out of memory\n");
        return 1;
    }
    nn_rng_t rng;
    nn_rng_seed(&rng, 2);
    nn_rng_fill_uniform(&rng, x, nimg, -1.0f, 1.0f);
    for (size_t i = 0; i < ncell; i++) tokens[i] = (int)nn_rng_below(&rng, (uint32_t)K);
    nn_adamw_t opt = nn_adamw_default();
    long step = 0;
    for (int i = -warmup; i < reps; i++) {
        double t0 = bench_now();
        if (train) {
            /* what a training step does: noise, forward, backward, AdamW */
            nn_rng_fill_gumbel(&rng, noise, ncell * K);
            dvae_forward(m, x, B, noise, dvae_tau(&c, step), NULL);
            dvae_zero_grad(m);
            dvae_backward(m);
            nn_adamw_step(dvae_params(m), dvae_grads(m), am, av, np, &opt, ++step);
        } else {
            dvae_decode(m, tokens, B, x);
        }
        if (i >= 0) t[i] = bench_now() - t0;
    }
    double gflop = train ? 3 * forward_gflop(&c, B, 0) : forward_gflop(&c, B, 1);
    bench_result(config, bench_median(t, reps), gflop);
    free(x); free(noise); free(tokens); free(am); free(av); free(t);
    dvae_free(m);
    return 0;
}
