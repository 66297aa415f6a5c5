/* Micro-benchmark of the heaviest layers at the shapes of DESIGN.md's bench configs:
 * linear forward+backward at gpt-train's shapes, conv2d and conv-transpose2d
 * forward+backward at dvae-train's, each as GFLOP/s beside OpenBLAS sgemm's own on a
 * large square product in the same run; and the packed linear of sampling
 * (nn_linear_packed_forward) at gpt-sample's shapes for 1..16 rows, against sgemm on the
 * same products, interleaved. Use it on a quiet machine.
 *   bench-nn [-t THREADS] [-r REPS] [--only linear|conv|small] */
#include "bench/bench_common.h"
#include "nn/nn.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static float *randbuf(nn_rng_t *r, size_t n)
{
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench-nn: out of memory\n");
        exit(1);
    }
    nn_rng_fill_uniform(r, x, n, -1.0f, 1.0f);
    return x;
}

typedef void (*bench_fn)(void *ctx);

/* median seconds of reps runs after two warm-up runs */
static double time_median(bench_fn f, void *ctx, int reps)
{
    double *t = malloc((size_t)reps * sizeof(double));
    f(ctx);
    f(ctx);
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now();
        f(ctx);
        t[i] = bench_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), bench_cmp);
    double m = t[reps / 2];
    free(t);
    return m;
}

/* ---------------------------------------------------------------- sgemm */
typedef struct { int n; float *a, *b, *c; } sgemm_ctx;
static void run_sgemm(void *p)
{
    sgemm_ctx *s = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->n, s->n, s->n, 1.0f, s->a, s->n,
                s->b, s->n, 0.0f, s->c, s->n);
}

/* ---------------------------------------------------------------- linear */
typedef struct { int N, C, OC; float *in, *w, *b, *out, *dout, *din, *dw, *db; } linear_ctx;
static void run_linear(void *p)
{
    linear_ctx *l = p;
    nn_linear_forward(l->out, l->in, l->w, l->b, l->N, l->C, l->OC);
    nn_linear_backward(l->din, l->dw, l->db, l->dout, l->in, l->w, l->N, l->C, l->OC);
}

/* ---------------------------------------------------------------- conv */
typedef struct {
    nn_conv_dims_t d;
    int transposed, need_din;
    float *in, *w, *b, *out, *dout, *din, *dw, *db, *cols, *dcols;
} conv_ctx;
static void run_conv(void *p)
{
    conv_ctx *c = p;
    if (c->transposed) {
        nn_convt2d_forward(c->out, c->cols, c->in, c->w, c->b, &c->d);
        nn_convt2d_backward(c->need_din ? c->din : NULL, c->dw, c->db, c->cols, c->dout, c->in,
                            c->w, &c->d);
    } else {
        nn_conv2d_forward(c->out, c->cols, c->in, c->w, c->b, &c->d);
        nn_conv2d_backward(c->need_din ? c->din : NULL, c->dw, c->db, c->dcols, c->dout,
                           c->cols, c->in, c->w, &c->d);
    }
}

static double conv_flops(const nn_conv_dims_t *d, int transposed, int need_din)
{
    /* multiply-adds of the forward product, times (fwd + dw [+ din]) */
    double macs;
    if (transposed)
        macs = (double)d->C * d->OC * d->K * d->K * d->B * d->H * d->W;
    else
        macs = (double)d->OC * d->C * d->K * d->K * d->B *
               nn_conv2d_out_size(d->H, d->K, d->stride, d->pad) *
               nn_conv2d_out_size(d->W, d->K, d->stride, d->pad);
    return 2.0 * macs * (need_din ? 3 : 2);
}

/* One pass over sgemm and every layer; the ratios to sgemm's GFLOP/s go to ratio[3]
 * (linear, conv2d, convT2d) so several passes can be compared: the machine is noisy, and
 * a ratio is only meaningful against the sgemm measured beside it. */
static void run_pass(int do_linear, int do_conv, int reps, int print, double ratio[3])
{
    nn_rng_t rng;
    nn_rng_seed(&rng, 1);
    sgemm_ctx sg = {2048, randbuf(&rng, 2048 * 2048), randbuf(&rng, 2048 * 2048),
                    randbuf(&rng, 2048 * 2048)};
    double t_sgemm = time_median(run_sgemm, &sg, reps / 2 > 3 ? reps / 2 : 3);
    double sgemm_gflops = 2.0 * sg.n * sg.n * sg.n / t_sgemm / 1e9;
    if (print) printf("%-34s %9.3f ms %8.1f GFLOP/s\n", "sgemm 2048x2048x2048", 1e3 * t_sgemm,
           sgemm_gflops);

    /* gpt-train: batch 8, sequence 1 + 32 + 256 - 1 = 288, d = 256 */
    const int N = 8 * 288;
    const int lin[][2] = {{256, 768}, {256, 256}, {256, 1024}, {1024, 256}, {256, 2048},
                          {256, 512}};
    const char *lin_name[] = {"qkv", "attn proj", "mlp fc", "mlp proj", "text head",
                              "image head"};
    double lin_t = 0, lin_f = 0;
    for (size_t i = 0; do_linear && i < sizeof lin / sizeof lin[0]; i++) {
        int C = lin[i][0], OC = lin[i][1];
        linear_ctx l = {N, C, OC, randbuf(&rng, (size_t)N * C), randbuf(&rng, (size_t)OC * C),
                        randbuf(&rng, OC), randbuf(&rng, (size_t)N * OC),
                        randbuf(&rng, (size_t)N * OC), randbuf(&rng, (size_t)N * C),
                        randbuf(&rng, (size_t)OC * C), randbuf(&rng, OC)};
        double t = time_median(run_linear, &l, reps);
        double f = 3 * 2.0 * N * C * OC;
        lin_t += t;
        lin_f += f;
        char label[64];
        snprintf(label, sizeof label, "linear %s %dx%d->%d", lin_name[i], N, C, OC);
        if (print) printf("%-34s %9.3f ms %8.1f GFLOP/s\n", label, 1e3 * t, f / t / 1e9);
        free(l.in); free(l.w); free(l.b); free(l.out); free(l.dout); free(l.din); free(l.dw);
        free(l.db);
    }
    if (do_linear)
        if (print) printf("%-34s %9.3f ms %8.1f GFLOP/s = %.0f%% of sgemm\n", "linear fwd+bwd, gpt-train",
               1e3 * lin_t, lin_f / lin_t / 1e9, 100.0 * lin_f / lin_t / 1e9 / sgemm_gflops);

    /* dvae-train: batch 16, S 64, L 3, C 64, R 2, K 512, D 256 */
    struct { const char *name; nn_conv_dims_t d; int transposed, need_din; } convs[] = {
        {"enc conv 3->64 k4s2 64px", {16, 3, 64, 64, 64, 4, 2, 1}, 0, 0},
        {"enc conv 64->64 k4s2 32px", {16, 64, 32, 32, 64, 4, 2, 1}, 0, 1},
        {"enc conv 64->64 k4s2 16px", {16, 64, 16, 16, 64, 4, 2, 1}, 0, 1},
        {"res conv 64->64 k3 8px (x8)", {16, 64, 8, 8, 64, 3, 1, 1}, 0, 1},
        {"res conv 64->64 k1 8px (x4)", {16, 64, 8, 8, 64, 1, 1, 0}, 0, 1},
        {"enc logits 64->512 k1 8px", {16, 64, 8, 8, 512, 1, 1, 0}, 0, 1},
        {"dec in 256->64 k1 8px", {16, 256, 8, 8, 64, 1, 1, 0}, 0, 1},
        {"dec out 64->3 k1 64px", {16, 64, 64, 64, 3, 1, 1, 0}, 0, 1},
        {"dec convT 64->64 8px", {16, 64, 8, 8, 64, 4, 2, 1}, 1, 1},
        {"dec convT 64->64 16px", {16, 64, 16, 16, 64, 4, 2, 1}, 1, 1},
        {"dec convT 64->64 32px", {16, 64, 32, 32, 64, 4, 2, 1}, 1, 1},
    };
    const int repeat[] = {1, 1, 1, 8, 4, 1, 1, 1, 1, 1, 1};
    double conv_t = 0, conv_f = 0, convt_t = 0, convt_f = 0;
    for (size_t i = 0; do_conv && i < sizeof convs / sizeof convs[0]; i++) {
        conv_ctx c = {.d = convs[i].d, .transposed = convs[i].transposed,
                      .need_din = convs[i].need_din};
        nn_conv_dims_t *d = &c.d;
        int OH, OW;
        size_t ncols;
        if (c.transposed) {
            OH = nn_convt2d_out_size(d->H, d->K, d->stride, d->pad);
            OW = nn_convt2d_out_size(d->W, d->K, d->stride, d->pad);
            ncols = nn_convt2d_cols_size(d);
        } else {
            OH = nn_conv2d_out_size(d->H, d->K, d->stride, d->pad);
            OW = nn_conv2d_out_size(d->W, d->K, d->stride, d->pad);
            ncols = nn_conv2d_cols_size(d);
        }
        size_t nin = (size_t)d->C * d->B * d->H * d->W, nout = (size_t)d->OC * d->B * OH * OW;
        size_t nw = (size_t)d->OC * d->C * d->K * d->K;
        c.in = randbuf(&rng, nin); c.din = randbuf(&rng, nin);
        c.out = randbuf(&rng, nout); c.dout = randbuf(&rng, nout);
        c.w = randbuf(&rng, nw); c.dw = randbuf(&rng, nw);
        c.b = randbuf(&rng, d->OC); c.db = randbuf(&rng, d->OC);
        c.cols = randbuf(&rng, ncols); c.dcols = randbuf(&rng, ncols);
        double t = time_median(run_conv, &c, reps);
        double f = conv_flops(d, c.transposed, c.need_din);
        if (c.transposed) { convt_t += t * repeat[i]; convt_f += f * repeat[i]; }
        else { conv_t += t * repeat[i]; conv_f += f * repeat[i]; }
        if (print) printf("%-34s %9.3f ms %8.1f GFLOP/s\n", convs[i].name, 1e3 * t, f / t / 1e9);
        free(c.in); free(c.din); free(c.out); free(c.dout); free(c.w); free(c.dw); free(c.b);
        free(c.db); free(c.cols); free(c.dcols);
    }
    if (do_conv) {
    if (print) printf("%-34s %9.3f ms %8.1f GFLOP/s = %.0f%% of sgemm\n", "conv2d fwd+bwd, dvae-train",
           1e3 * conv_t, conv_f / conv_t / 1e9, 100.0 * conv_f / conv_t / 1e9 / sgemm_gflops);
    if (print) printf("%-34s %9.3f ms %8.1f GFLOP/s = %.0f%% of sgemm\n", "convT2d fwd+bwd, dvae-train",
           1e3 * convt_t, convt_f / convt_t / 1e9,
           100.0 * convt_f / convt_t / 1e9 / sgemm_gflops);
    }
    ratio[0] = lin_t > 0 ? lin_f / lin_t / 1e9 / sgemm_gflops : 0;
    ratio[1] = conv_t > 0 ? conv_f / conv_t / 1e9 / sgemm_gflops : 0;
    ratio[2] = convt_t > 0 ? convt_f / convt_t / 1e9 / sgemm_gflops : 0;
    free(sg.a); free(sg.b); free(sg.c);
}

/* ---------------------------------------------------------------- linear small-M */
/* The linear layers of one gpt-sample step (8 blocks of d = 256: qkv, attn proj, mlp fc,
 * mlp proj; then the image head, K = 512), their weights as the model holds them (25 MB,
 * streamed from memory each step as in sampling). Per row count M the whole set runs
 * three ways, interleaved rep by rep so that a busy machine slows each alike: the packed
 * kernel; sgemm on w [OC, C] (nn_linear_forward); sgemm on a transposed copy [C, OC]
 * (the sampler's previous path). Medians. */
enum { SM_LAYERS = 8, SM_SHAPES = 4 * SM_LAYERS + 1 };
typedef struct {
    int M, C[SM_SHAPES], OC[SM_SHAPES];
    float *w[SM_SHAPES], *wt[SM_SHAPES], *packed[SM_SHAPES], *b[SM_SHAPES];
    float *in, *out;
    nn_simd_t simd;
} small_ctx;

static void run_small_packed(void *p)
{
    small_ctx *s = p;
    for (int i = 0; i < SM_SHAPES; i++)
        nn_linear_packed_forward_simd(s->out, s->in, s->packed[i], s->b[i], s->M, s->C[i],
                                      s->OC[i], s->simd);
}

static void run_small_sgemm(void *p)
{
    small_ctx *s = p;
    for (int i = 0; i < SM_SHAPES; i++)
        nn_linear_forward(s->out, s->in, s->w[i], s->b[i], s->M, s->C[i], s->OC[i]);
}

static void run_small_sgemm_t(void *p)
{
    small_ctx *s = p;
    for (int i = 0; i < SM_SHAPES; i++) {
        for (int n = 0; n < s->M; n++)
            memcpy(s->out + (size_t)n * s->OC[i], s->b[i], (size_t)s->OC[i] * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->M, s->OC[i], s->C[i], 1.0f,
                    s->in, s->C[i], s->wt[i], s->OC[i], 1.0f, s->out, s->OC[i]);
    }
}

static void run_small_m(int reps)
{
    nn_rng_t rng;
    nn_rng_seed(&rng, 3);
    const int d = 256, K = 512, max_m = 16;
    small_ctx s = {.simd = nn_simd_best()};
    double macs = 0;
    for (int i = 0; i < SM_SHAPES; i++) {
        const int shape[4][2] = {{d, 3 * d}, {d, d}, {d, 4 * d}, {4 * d, d}};
        s.C[i] = i < 4 * SM_LAYERS ? shape[i % 4][0] : d;
        s.OC[i] = i < 4 * SM_LAYERS ? shape[i % 4][1] : K;
        const size_t nw = (size_t)s.C[i] * s.OC[i];
        s.w[i] = randbuf(&rng, nw);
        s.wt[i] = randbuf(&rng, nw);
        s.b[i] = randbuf(&rng, s.OC[i]);
        s.packed[i] = randbuf(&rng, nn_linear_packed_size(s.C[i], s.OC[i]));
        nn_linear_pack(s.packed[i], s.w[i], s.C[i], s.OC[i]);
        for (int c = 0; c < s.C[i]; c++)
            for (int o = 0; o < s.OC[i]; o++)
                s.wt[i][(size_t)c * s.OC[i] + o] = s.w[i][(size_t)o * s.C[i] + c];
        macs += (double)nw;
    }
    s.in = randbuf(&rng, (size_t)max_m * 4 * d);
    s.out = randbuf(&rng, (size_t)max_m * 4 * d);
    printf("linear small-M: one gpt-sample step's linears (%d x [qkv, proj, fc, mlp proj] + "
           "head, %.1f MB of weights), %s kernel\n", SM_LAYERS, 4e-6 * macs,
           nn_simd_name(s.simd));
    printf("  %3s %12s %12s %12s %8s\n", "M", "packed", "sgemm w", "sgemm w^T", "speed-up");
    const int ms[] = {1, 2, 4, 8, 16};
    double *t[3];
    for (int k = 0; k < 3; k++) t[k] = malloc((size_t)reps * sizeof(double));
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
        s.M = ms[mi];
        bench_fn f[3] = {run_small_packed, run_small_sgemm, run_small_sgemm_t};
        for (int k = 0; k < 3; k++) f[k](&s);
        for (int r = 0; r < reps; r++)
            for (int k = 0; k < 3; k++) {
                double t0 = bench_now();
                f[k](&s);
                t[k][r] = bench_now() - t0;
            }
        double gf[3];
        for (int k = 0; k < 3; k++) gf[k] = 2.0 * macs * s.M / bench_median(t[k], reps) * 1e-9;
        double best_sgemm = gf[1] > gf[2] ? gf[1] : gf[2];
        printf("  %3d %7.1f GF/s %7.1f GF/s %7.1f GF/s %7.2fx\n", s.M, gf[0], gf[1], gf[2],
               gf[0] / best_sgemm);
    }
    for (int k = 0; k < 3; k++) free(t[k]);
    for (int i = 0; i < SM_SHAPES; i++) {
        free(s.w[i]); free(s.wt[i]); free(s.b[i]); free(s.packed[i]);
    }
    free(s.in); free(s.out);
}

static double bench_median3(double v[3])
{
    double a = v[0], b = v[1], c = v[2];
    if (a > b) { double t = a; a = b; b = t; }
    if (b > c) { double t = b; b = c; c = t; }
    if (a > b) { double t = a; a = b; b = t; }
    return b;
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 20;
    const char *only = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-t") == 0) threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-r") == 0) reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--only") == 0) only = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench-nn [-t THREADS] [-r REPS] [--only linear|conv|small]\n");
            return 2;
        }
    }
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "bench-nn: threads and repetitions must be positive\n");
        return 2;
    }
    const int do_small = !*only || strcmp(only, "small") == 0;
    const int do_linear = !*only || strcmp(only, "linear") == 0;
    const int do_conv = !*only || strcmp(only, "conv") == 0;
    if (!do_small && !do_linear && !do_conv) {
        fprintf(stderr, "bench-nn: --only takes linear, conv or small\n");
        return 2;
    }
    if (!getenv("OPENBLAS_CORETYPE") && nn_blas_better_core())
        fprintf(stderr, "note: OpenBLAS core %s is slow here; set OPENBLAS_CORETYPE=%s\n",
                nn_blas_core(), nn_blas_better_core());
    nn_set_threads(threads);
    printf("bench-nn: OpenBLAS core %s, %d threads, median of %d\n", nn_blas_core(), threads,
           reps);

    if (do_small) run_small_m(reps);
    if (!do_linear && !do_conv) return 0;
    const int passes = 3;
    double r[3][3];
    for (int p = 0; p < passes; p++) {
        if (p) printf("\n");
        printf("pass %d of %d\n", p + 1, passes);
        run_pass(do_linear, do_conv, reps, 1, r[p]);
    }
    const char *what[3] = {"linear fwd+bwd, gpt-train", "conv2d fwd+bwd, dvae-train",
                           "convT2d fwd+bwd, dvae-train"};
    printf("\nmedian over %d passes of the share of sgemm's GFLOP/s measured beside it:\n",
           passes);
    for (int k = 0; k < 3; k++) {
        if ((k == 0 && !do_linear) || (k > 0 && !do_conv)) continue;
        double v[3] = {r[0][k], r[1][k], r[2][k]};
        printf("  %-32s %.0f%%  (passes: %.0f%% %.0f%% %.0f%%)\n", what[k],
               100.0 * bench_median3(v), 100.0 * r[0][k], 100.0 * r[1][k], 100.0 * r[2][k]);
    }
    return 0;
}
