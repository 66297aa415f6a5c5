/* Tokenizer throughput: trains a BPE tokenizer (vocabulary 2048, the gpt-train config's)
 * on 100,000 generated captions, then encodes all of them to the transformer's fixed
 * length T = 32 with 1 and with 2 threads (OpenMP over captions, one shared tok_t).
 * Reports the median of the runs; the target is under 2 s for 100,000 on 2 cores.
 *   bench-tokenizer [-n CAPTIONS] [-r REPS] [-t THREADS] */
#include "bench/bench_common.h"
#include "nn/nn.h"
#include "tokenizer/tokenizer.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define T_TEXT 32

static const char *sizes[] = {"small", "large", "tiny", "big"};
static const char *colors[] = {"red", "green", "blue", "yellow", "purple", "orange", "black",
                               "white", "pink", "brown", "gray", "cyan"};
static const char *shapes[] = {"circle", "square", "triangle", "star", "heart", "hexagon",
                               "diamond", "cross"};
static const char *places[] = {"at the top left", "at the top right", "at the bottom left",
                               "at the bottom right", "in the center", "on the left", "on the right"};
static const char *relations[] = {"above", "below", "to the left of", "to the right of", "next to"};
static const char *emoji_names[] = {
    "grinning face with big eyes", "smiling face with heart-eyes", "cat face", "red apple",
    "rocket", "snowman without snow", "sun behind small cloud", "pile of poo", "unicorn",
    "flag: japan", "woman technologist: medium skin tone", "hot beverage", "avocado"};
static const char *styles[] = {"openmoji style", "twemoji style", "noto style", "apple style"};
static const char *other[] = {"une chaise en forme d'avocat, café crème", "赤い円と青い四角",
                              "a cat 🐱 and a dog 🐶 on a sofa", "Ein großer grüner Würfel",
                              "一只红色的猫在桌子上", "A Painting of a Fox in the Style of Starry Night"};

static char **make_captions(int n, size_t *total_bytes)
{
    nn_rng_t r;
    nn_rng_seed(&r, 7);
    char **c = malloc((size_t)n * sizeof *c);
    *total_bytes = 0;
    for (int i = 0; i < n && c; i++) {
        char buf[512];
        uint32_t kind = nn_rng_below(&r, 10);
#define PICK(a) a[nn_rng_below(&r, (uint32_t)(sizeof a / sizeof *a))]
        if (kind < 5)
            snprintf(buf, sizeof buf, "a %s %s %s %s on a %s background", PICK(sizes), PICK(colors),
                     PICK(shapes), PICK(places), PICK(colors));
        else if (kind < 7)
            snprintf(buf, sizeof buf, "a %s %s %s a %s %s", PICK(colors), PICK(shapes),
                     PICK(relations), PICK(colors), PICK(shapes));
        else if (kind < 9)
            snprintf(buf, sizeof buf, "%s, %s", PICK(emoji_names), PICK(styles));
        else
            snprintf(buf, sizeof buf, "%s", PICK(other));
#undef PICK
        c[i] = strdup(buf);
        if (!c[i]) return NULL;
        *total_bytes += strlen(buf);
    }
    return c;
}

int main(int argc, char **argv)
{
    int n = 100000, reps = 5, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0) n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-r") == 0) reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-t") == 0) threads = atoi(argv[i + 1]);
    }
    if (n < 1 || reps < 1 || threads < 1) {
        fprintf(stderr, "usage: bench-tokenizer [-n CAPTIONS] [-r REPS] [-t THREADS]\n");
        return 2;
    }
    size_t bytes;
    char **caps = make_captions(n, &bytes);
    int *ids = malloc((size_t)n * T_TEXT * sizeof *ids);
    int *ref = malloc((size_t)n * T_TEXT * sizeof *ref);
    if (!caps || !ids || !ref) {
        fprintf(stderr, "bench-tokenizer: out of memory\n");
        return 1;
    }
    char err[256], *model = NULL;
    size_t model_len = 0;
    tok_train_config_t cfg = tok_train_config_default();
    double t0 = bench_now();
    if (tok_train_captions((const char *const *)caps, (size_t)n, &cfg, &model, &model_len, err) != 0) {
        fprintf(stderr, "bench-tokenizer: %s\n", err);
        return 1;
    }
    double t_train = bench_now() - t0;
    tok_t *tok = tok_create(model, model_len, err);
    if (!tok) {
        fprintf(stderr, "bench-tokenizer: %s\n", err);
        return 1;
    }
    printf("bench-tokenizer: %d captions, %.1f bytes each on average; %s, vocabulary %d\n", n,
           (double)bytes / n, cfg.model_type, tok_vocab_size(tok));
    printf("%-36s %9.3f s\n", "train (BPE, vocab 2048)", t_train);

    long kept = 0;
    for (int i = 0; i < n; i++) kept += tok_encode_fixed(tok, caps[i], ref + (size_t)i * T_TEXT, T_TEXT, err);
    int counts[2] = {1, threads};
    double best2 = 0;
    for (int k = 0; k < 2; k++) {
        int th = counts[k];
        double *t = malloc((size_t)reps * sizeof *t);
        int failures = 0;
        for (int rep = 0; rep < reps; rep++) {
            double s = bench_now();
#pragma omp parallel for num_threads(th) schedule(dynamic, 256) reduction(+ : failures)
            for (int i = 0; i < n; i++) {
                char e[256];
                if (tok_encode_fixed(tok, caps[i], ids + (size_t)i * T_TEXT, T_TEXT, e) < 0) failures++;
            }
            t[rep] = bench_now() - s;
            if (memcmp(ids, ref, (size_t)n * T_TEXT * sizeof *ids) != 0) failures++;
        }
        qsort(t, (size_t)reps, sizeof *t, bench_cmp);
        char label[64];
        snprintf(label, sizeof label, "encode to T=%d, %d thread%s", T_TEXT, th, th > 1 ? "s" : "");
        printf("%-36s %9.3f s  %8.0f captions/s  %.2f us/caption%s\n", label, t[reps / 2],
               n / t[reps / 2], 1e6 * t[reps / 2] / n, failures ? "  MISMATCH" : "");
        if (failures) return 1;
        if (k == 1) best2 = t[reps / 2];
        free(t);
    }
    tok_stats_t st;
    tok_stats(tok, &st);
    printf("%.2f ids per caption on average; %ld of %ld encodes truncated\n", (double)kept / n,
           st.truncated, st.encoded);
    printf("target: %d captions under 2 s on %d threads: %s (%.3f s)\n", n, threads,
           best2 < 2.0 * n / 100000 ? "met" : "MISSED", best2);
    for (int i = 0; i < n; i++) free(caps[i]);
    free(caps);
    free(ids);
    free(ref);
    free(model);
    tok_free(tok);
    return 0;
}
