/* What reranking costs at generation time (docs/RERANK.md):
 *   bench-rerank MODEL [-c CANDIDATES] [-t THREADS] [-r REPS]
 * times dalle_generate of one image with CANDIDATES samples (sampling, decoding and
 * scoring them all) and, apart, the scorer alone on CANDIDATES images of its size with
 * the prompt; prints the medians and the share scoring adds to generating the samples.
 *   bench-rerank --scorer FILE [-c N] [-t THREADS] [-r REPS]
 * times the scorer of FILE (a scorer file or a model holding one) alone on N images. */
#include "bench/bench_common.h"
#include "nn/nn.h"
#include "pipeline/dalle.h"
#include "rerank/rerank.h"

#include <string.h>

#define PROMPT "a red star above a blue heart on a gray background"

/* Median seconds of rerank_score on n random images, or -1 after printing why. */
static double time_scoring(const char *path, int n, int reps)
{
    rerank_t *m;
    tok_t *tok;
    char err[256];
    if (rerank_load(&m, &tok, path, n < 16 ? n : 16, 0, err)) {
        fprintf(stderr, "bench-rerank: %s\n", err);
        return -1;
    }
    const int S = rerank_config(m)->image_size;
    float *pix = malloc((size_t)n * 3 * S * S * sizeof(float)), *scores = malloc((size_t)n * sizeof(float));
    double t[1000];
    nn_rng_t rng;
    nn_rng_seed(&rng, 1);
    nn_rng_fill_uniform(&rng, pix, (size_t)n * 3 * S * S, -1.0f, 1.0f);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = bench_now();
        if (rerank_score(m, tok, PROMPT, pix, n, scores, err)) {
            fprintf(stderr, "bench-rerank: %s\n", err);
            reps = -1;
            break;
        }
        if (r >= 0) t[r] = bench_now() - t0;
    }
    double med = reps > 0 ? bench_median(t, reps) : -1;
    if (reps > 0)
        printf("scoring %d images of %dx%d: %.1f ms (median of %d; %.1f M multiply-adds per pair)\n",
               n, S, S, 1e3 * med, reps, rerank_pair_macs(rerank_config(m)) / 1e6);
    free(pix), free(scores);
    rerank_free(m);
    tok_free(tok);
    return med;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *scorer = NULL;
    int candidates = 8, threads = 2, reps = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--scorer") == 0) scorer = v, i++;
        else if (strcmp(a, "-c") == 0) candidates = atoi(v), i++;
        else if (strcmp(a, "-t") == 0) threads = atoi(v), i++;
        else if (strcmp(a, "-r") == 0) reps = atoi(v), i++;
        else model = a;
    }
    if ((!model && !scorer) || candidates < 1 || candidates > DALLE_MAX_IMAGES || threads < 1 ||
        reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: bench-rerank MODEL|--scorer FILE [-c CANDIDATES] [-t THREADS] "
                        "[-r REPS]\n");
        return 2;
    }
    nn_set_threads(threads);
    if (scorer) return time_scoring(scorer, candidates, reps) < 0;

    dalle_model_t *m;
    dalle_ctx_t *ctx;
    char err[DALLE_ERR_SIZE];
    if (dalle_model_load(&m, model, err) || dalle_ctx_create(&ctx, m, err)) {
        fprintf(stderr, "bench-rerank: %s\n", err);
        return 1;
    }
    dalle_params_t p = dalle_params_default();
    p.seed = 1;
    p.candidates = candidates;
    double t[1000];
    for (int r = -1; r < reps; r++) {
        dalle_result_t res;
        if (dalle_generate(ctx, PROMPT, &p, NULL, NULL, &res, err)) {
            fprintf(stderr, "bench-rerank: %s\n", err);
            return 1;
        }
        if (r >= 0) t[r] = res.seconds;
        dalle_result_free(&res);
    }
    const double total = bench_median(t, reps);
    printf("generating 1 image from %d candidates (sampling, decoding, scoring): %.1f ms "
           "(median of %d, %d threads)\n", candidates, 1e3 * total, reps, threads);
    dalle_ctx_free(ctx);
    dalle_model_free(m);
    const double score = time_scoring(model, candidates, reps);
    if (score < 0) return 1;
    printf("scoring adds %.1f%% to generating the %d samples\n", 100.0 * score / (total - score),
           candidates);
    return 0;
}
