/* DESIGN.md's transformer bench configs:
 *   gpt-train   one training step (forward + backward + clip + AdamW), batch 8, T=32,
 *               G=16, d=256, 8 layers, 8 heads, text vocab 2048, K=512; as seconds and
 *               matmul GFLOP/s beside OpenBLAS sgemm's on a 2048^3 product in the same run
 *   gpt-sample  4 images of 256 tokens, KV cache, top-k 64 (guidance 1 and 3)
 * Medians of reps runs after warm-up. Use it on a quiet machine.
 *   bench-gpt [gpt-train|gpt-sample] [-t THREADS] [-r REPS]
 * With a config name it runs only that one (gpt-sample with guidance 1, as DESIGN.md's
 * config) and ends with bench/run's RESULT line (bench/bench_common.h). */
#include "bench/bench_common.h"
#include "transformer/transformer.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void (*bench_fn)(void *ctx);

static double time_median(bench_fn f, void *ctx, int warmup, int reps)
{
    double *t = malloc((size_t)reps * sizeof(double));
    if (!t) exit(1);
    for (int i = 0; i < warmup; i++) f(ctx);
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        f(ctx);
        t[i] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double m = t[reps / 2];
    free(t);
    return m;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench-gpt: out of memory\n");
        exit(1);
    }
    return p;
}

typedef struct { int n; float *a, *b, *c; } sgemm_ctx;
static void run_sgemm(void *p)
{
    sgemm_ctx *s = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->n, s->n, s->n, 1.0f, s->a, s->n,
                s->b, s->n, 0.0f, s->c, s->n);
}

typedef struct { gpt_t *m; gpt_opt_t opt; const int *text, *image; int B; float loss; } train_ctx;
static void run_train(void *p)
{
    train_ctx *t = p;
    t->loss = gpt_forward(t->m, t->text, t->image, t->B);
    gpt_zero_grad(t->m);
    gpt_backward(t->m);
    gpt_adamw_step(t->m, &t->opt, 1e-4f);
}

typedef struct { gpt_sampler_t *s; const int *text; int N; gpt_sample_opts_t o; int *out; } sample_ctx;
static void run_sample(void *p)
{
    sample_ctx *c = p;
    char err[GPT_ERR_SIZE];
    if (gpt_sample(c->s, c->text, c->N, &c->o, c->out, err)) {
        fprintf(stderr, "bench-gpt: %s\n", err);
        exit(1);
    }
    c->o.seed++;
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 5, first = 1;
    const char *only = NULL;
    if (argc > 1 && argv[1][0] != '-') {
        only = argv[1];
        first = 2;
        if (strcmp(only, "gpt-train") != 0 && strcmp(only, "gpt-sample") != 0) {
            fprintf(stderr, "usage: bench-gpt [gpt-train|gpt-sample] [-t THREADS] [-r REPS]\n");
            return 2;
        }
    }
    const int do_train = !only || strcmp(only, "gpt-train") == 0;
    const int do_sample = !only || strcmp(only, "gpt-sample") == 0;
    for (int i = first; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-t") == 0) threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-r") == 0) reps = atoi(argv[i + 1]);
    }
    if (reps < 1) reps = 1;
    if (!getenv("OPENBLAS_CORETYPE") && nn_blas_better_core())
        fprintf(stderr, "note: OpenBLAS core %s is slow here; set OPENBLAS_CORETYPE=%s\n",
                nn_blas_core(), nn_blas_better_core());
    nn_set_threads(threads);
    printf("bench-gpt: %d threads, OpenBLAS core %s, median of %d\n", threads, nn_blas_core(),
           reps);

    nn_rng_t rng;
    nn_rng_seed(&rng, 1);
    sgemm_ctx sg = {2048, NULL, NULL, NULL};
    size_t nn2 = (size_t)sg.n * sg.n;
    sg.a = xmalloc(nn2 * sizeof(float));
    sg.b = xmalloc(nn2 * sizeof(float));
    sg.c = xmalloc(nn2 * sizeof(float));
    nn_rng_fill_uniform(&rng, sg.a, nn2, -1, 1);
    nn_rng_fill_uniform(&rng, sg.b, nn2, -1, 1);
    double t_sg = only ? 1.0 : time_median(run_sgemm, &sg, 1, reps);
    double sg_gflops = 2.0 * sg.n * sg.n * (double)sg.n / t_sg * 1e-9;
    if (!only) printf("sgemm 2048^3          %8.3f s   %7.1f GFLOP/s\n", t_sg, sg_gflops);
    free(sg.a); free(sg.b); free(sg.c);

    /* gpt-train */
    gpt_config_t c = gpt_config_default();
    const int B = 8, T = c.text_len, G2 = c.grid * c.grid;
    gpt_t *m;
    char err[GPT_ERR_SIZE];
    if (gpt_create(&m, &c, B, err)) {
        fprintf(stderr, "bench-gpt: %s\n", err);
        return 1;
    }
    gpt_init_params(m, 1);
    int *text = xmalloc((size_t)B * T * sizeof(int)), *image = xmalloc((size_t)B * G2 * sizeof(int));
    for (int i = 0; i < B * T; i++) text[i] = 3 + (int)nn_rng_below(&rng, c.text_vocab - 3);
    for (int i = 0; i < B * G2; i++) image[i] = (int)nn_rng_below(&rng, c.image_vocab);
    train_ctx tr = {m, gpt_opt_default(), text, image, B, 0};
    double fl = gpt_train_flops(&c, B);
    if (do_train) {
    double t_tr = time_median(run_train, &tr, 2, reps);
    if (only) bench_result("gpt-train", t_tr, fl * 1e-9);
    printf("gpt-train  B=%d T=%d G=%d d=%d L=%d H=%d V=%d K=%d (%.2fM params)\n", B, T, c.grid,
           c.n_embd, c.n_layer, c.n_head, c.text_vocab, c.image_vocab,
           gpt_num_params(&c) / 1e6);
    if (!only)
        printf("  step                %8.3f s   %7.1f GFLOP/s (%.1f GFLOP of matmul, %.0f%% of "
               "sgemm)  loss %.3f\n", t_tr, fl / t_tr * 1e-9, fl * 1e-9,
               100.0 * fl / t_tr * 1e-9 / sg_gflops, tr.loss);
    }

    /* gpt-sample: the same model, 4 images, top-k 64 */
    gpt_sampler_t *s;
    const int N = 4;
    if (gpt_sampler_create(&s, m, N, err)) {
        fprintf(stderr, "bench-gpt: %s\n", err);
        return 1;
    }
    int *out = xmalloc((size_t)N * G2 * sizeof(int));
    sample_ctx sc = {s, text, N, gpt_sample_opts_default(), out};
    sc.o.top_k = 64;
    for (int gi = 0; do_sample && gi < (only ? 1 : 2); gi++) {
        sc.o.guidance = gi ? 3.0f : 1.0f;
        double t_s = time_median(run_sample, &sc, 1, reps);
        if (only) bench_result("gpt-sample", t_s, 0);
        printf("gpt-sample N=%d, %d tokens each, top-k 64, guidance %.0f (%d sequences)\n"
               "  batch               %8.3f s   %7.1f tokens/s per image\n", N, G2,
               sc.o.guidance, gi ? 2 * N : N, t_s, G2 / t_s);
    }
    gpt_sampler_free(s);
    free(out);
    free(text);
    free(image);
    gpt_free(m);
    return 0;
}
