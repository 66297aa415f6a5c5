/* The scorer through the command line (docs/RERANK.md): `dalle-c rerank train` on a tiny
 * captioned folder, a run stopped and resumed from its checkpoint ending bit for bit where
 * an uninterrupted one does, `--into` and `rerank add` putting the scorer into a model file
 * that `dalle-c info` shows, generation with --candidates (scores printed and stored, and
 * reproduced by --from; the model's sample.candidate_temperature when no --temperature is
 * given) and without a scorer (a clear refusal), `eval score` and
 * `rerank score`, bad inputs with the documented exit codes, and under mpirun (when built
 * with MPI) a 2-rank step equal to 1 rank's. */
#include "pipeline/dalle.h"
#include "rerank/rerank.h"
#include "tests/generate_testlib.h"
#include "tests/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *bin;
static char data[600], model[600];

/* The scorer parameters of two files, bit for bit. */
static int same_scorer(const char *a, const char *b)
{
    rerank_t *ma = NULL, *mb = NULL;
    char err[256];
    if (rerank_load(&ma, NULL, a, 1, 0, err) || rerank_load(&mb, NULL, b, 1, 0, err)) {
        printf("  %s\n", err);
        rerank_free(ma);
        return 0;
    }
    size_t na, nb;
    const float *pa = rerank_param_block(ma, &na), *pb = rerank_param_block(mb, &nb);
    int same = na == nb && memcmp(pa, pb, na * sizeof(float)) == 0;
    rerank_free(ma);
    rerank_free(mb);
    return same;
}

/* A tiny scorer; warmup beyond every run, so the learning rate of a step does not depend
 * on the run's total and a run of 6 steps resumed to 12 is the run of 12 */
#define OPTS "--size 16 --image-layers 2 --image-channels 4 --text-len 12 --layers 1 " \
             "--heads 2 --width 16 --embed-dim 8 --batch 8 --lr 0.01 --warmup 1000 "  \
             "--eval-every 6 --eval-images 8 --holdout 0.2 --seed 3 -t 1"

static void test_train_resume(void)
{
    printf("rerank train, and a resumed run equal to an uninterrupted one\n");
    char *out = NULL;
    int st = test_runf(&out, "%s rerank train %s -o %s " OPTS " --vocab 300 --steps 12 "
                 "--checkpoint-every 4", bin, data, test_tmp_path("a.dalle"));
    check(st == 0 && strstr(out, "rerank-eval images=") && strstr(out, "top-5"),
          "train: %d %s", st, out);
    free(out);
    FILE *f = fopen(test_tmp_path("a.dalle.ckpt"), "rb");
    check(f != NULL, "a checkpoint beside the scorer");
    if (f) fclose(f);

    st = test_runf(&out, "%s rerank train %s -o %s " OPTS " --vocab 300 --steps 6", bin, data,
             test_tmp_path("b.dalle"));
    check(st == 0, "first half: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s rerank train %s -o %s --resume %s --steps 12 -t 1", bin, data,
             test_tmp_path("b.dalle"), test_tmp_path("b.dalle.ckpt"));
    check(st == 0 && strstr(out, "resuming at step 6"), "resumed: %d %s", st, out);
    free(out);
    check(same_scorer(test_tmp_path("a.dalle"), test_tmp_path("b.dalle")),
          "6 steps + resume to 12 give the parameters of 12 steps, bit for bit");
    printf("  12 steps and 6 + 6 resumed: the same bits\n");

    /* the checkpoint's held-out fraction and the dataset are the run's */
    st = test_runf(&out, "%s rerank train %s -o %s --resume %s --holdout 0.5", bin, data, test_tmp_path("c.dalle"),
             test_tmp_path("b.dalle.ckpt"));
    check(st == 2 && strstr(out, "holdout"), "another --holdout when resuming: %d %s", st, out);
    free(out);
}

/* The temperature recorded in a PNG's text chunks, or -1. */
static double png_temperature(const char *png)
{
    img_text_t *text = NULL;
    int n = 0;
    char err[256];
    if (img_load_text(png, &text, &n, err)) return -1;
    const char *v = img_text_get(text, n, "dalle-c:temperature");
    double t = v ? atof(v) : -1;
    free(text);
    return t;
}

/* sample.candidate_temperature: dalle_model_info and dalle_model_temperature report it,
 * --candidates above 1 draws with it when no --temperature is given (the same PNGs as
 * with it given), one candidate keeps sample.temperature, and --temperature wins. */
static void test_candidate_temperature(void)
{
    char *out = NULL;
    const char *ct = test_tmp_path("ct.dalle");
    int st = test_runf(&out, "%s convert %s -o %s --sample temperature=0.5,candidate_temperature=1.5",
                       bin, test_tmp_path("with.dalle"), ct);
    check(st == 0 && strstr(out, "sample.candidate_temperature = 1.5"), "convert --sample "
          "candidate_temperature: %d %s", st, out);
    free(out);
    char err[DALLE_ERR_SIZE];
    dalle_model_t *m = NULL, *plain = NULL;
    if (check(dalle_model_load(&m, ct, err) == DALLE_OK &&
                  dalle_model_load(&plain, test_tmp_path("with.dalle"), err) == DALLE_OK,
              "load: %s", err)) {
        dalle_model_info_t info, plain_info;
        dalle_model_info(m, &info);
        dalle_model_info(plain, &plain_info);
        check(info.sample.temperature == 0.5f && info.sample.candidate_temperature == 1.5f &&
                  dalle_model_temperature(m, 1) == 0.5f && dalle_model_temperature(m, 2) == 1.5f,
              "info %g/%g, dalle_model_temperature %g/%g", info.sample.temperature,
              info.sample.candidate_temperature, dalle_model_temperature(m, 1),
              dalle_model_temperature(m, 2));
        /* without the key, candidates draw at the model's temperature (a model that sets
         * one: test_sample_defaults) */
        check(plain_info.sample.candidate_temperature == plain_info.sample.temperature &&
                  dalle_model_temperature(plain, 8) == plain_info.sample.temperature,
              "no key: candidate_temperature %g, temperature %g",
              plain_info.sample.candidate_temperature, plain_info.sample.temperature);
    }
    dalle_model_free(m);
    dalle_model_free(plain);

#define GEN "%s 'a red circle' -m %s --seed 5 -t 1 -q -o %s"
    st = test_runf(NULL, GEN " --candidates 3", bin, ct, test_tmp_path("ct-default.png"));
    st |= test_runf(NULL, GEN " --candidates 3 --temperature 1.5", bin, ct, test_tmp_path("ct-given.png"));
    st |= test_runf(NULL, GEN " --candidates 3 --temperature 0.7", bin, ct, test_tmp_path("ct-07.png"));
    st |= test_runf(NULL, GEN, bin, ct, test_tmp_path("ct-one.png"));
#undef GEN
    check(st == 0 && gt_same_file(test_tmp_path("ct-default.png"), test_tmp_path("ct-given.png")),
          "--candidates 3 without --temperature draws as --temperature 1.5 does");
    const double t_default = png_temperature(test_tmp_path("ct-default.png")),
                 t_given = png_temperature(test_tmp_path("ct-07.png")),
                 t_one = png_temperature(test_tmp_path("ct-one.png"));
    check(t_default == 1.5 && t_given == 0.7 && t_one == 0.5,
          "dalle-c:temperature %g with candidates, %g given, %g with one (want 1.5, 0.7, 0.5)",
          t_default, t_given, t_one);
    printf("  sample.candidate_temperature 1.5: --candidates 3 draws at %g, --temperature 0.7 "
           "at %g, one candidate at %g\n", t_default, t_given, t_one);
}

static void test_model_file(void)
{
    printf("the scorer in a model file; --candidates; eval score; rerank score\n");
    char *out = NULL;
    /* trained on the model's tokenizer (and, by default, its image size) and put into it */
    int st = test_runf(&out, "%s rerank train %s -o %s -m %s --into %s " OPTS " --steps 4", bin, data,
                 test_tmp_path("s.dalle"), model, test_tmp_path("with.dalle"));
    check(st == 0 && strstr(out, "with the scorer"), "train --into: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s info %s", bin, test_tmp_path("with.dalle"));
    check(st == 0 && strstr(out, "rerank.embed_dim = 8") && strstr(out, "rerank.txt.proj.w"),
          "dalle-c info shows the scorer: %d", st);
    free(out);
    st = test_runf(&out, "%s rerank add %s %s -o %s", bin, model, test_tmp_path("s.dalle"), test_tmp_path("added.dalle"));
    check(st == 0, "rerank add: %d %s", st, out);
    free(out);
    check(same_scorer(test_tmp_path("added.dalle"), test_tmp_path("with.dalle")), "add and --into give one scorer");
    /* a scorer of another tokenizer cannot go in */
    st = test_runf(&out, "%s rerank add %s %s -o %s", bin, model, test_tmp_path("a.dalle"), test_tmp_path("bad.dalle"));
    check(st == 1 && strstr(out, "another tokenizer"), "another tokenizer refused: %d %s", st, out);
    free(out);

    /* generation: without a scorer --candidates is refused; with one, scores are printed,
     * stored, and --from reproduces the pick */
    st = test_runf(&out, "%s 'a red circle' -m %s --candidates 4 -o %s -q", bin, model, test_tmp_path("no.png"));
    check(st == 1 && strstr(out, "holds no scorer") && strstr(out, "--candidates"),
          "--candidates without a scorer: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s 'a red circle' -m %s --candidates 4 -n 2 -o %s --seed 5 -t 1 -q", bin,
             test_tmp_path("with.dalle"), test_tmp_path("c.png"));
    check(st == 0 && strstr(out, "(score ") && strstr(out, "of 4)"), "--candidates 4: %d %s", st, out);
    free(out);
    img_text_t *text = NULL;
    int n = 0;
    char err[256];
    if (check(img_load_text(test_tmp_path("c-1.png"), &text, &n, err) == 0, "%s", err)) {
        const char *score = img_text_get(text, n, "dalle-c:score");
        const char *cand = img_text_get(text, n, "dalle-c:candidates");
        check(score && fabs(atof(score)) <= 1.0 && cand && strcmp(cand, "4") == 0,
              "score %s and candidates %s in the PNG's text chunks", score ? score : "-",
              cand ? cand : "-");
        free(text);
    }
    st = test_runf(NULL, "%s --from %s -m %s -o %s -t 1 -q", bin, test_tmp_path("c-1.png"), test_tmp_path("with.dalle"),
             test_tmp_path("again.png"));
    check(st == 0 && gt_same_file(test_tmp_path("c-1.png"), test_tmp_path("again.png")),
          "--from a reranked PNG makes it again byte for byte");
    test_candidate_temperature();
    st = test_runf(&out, "%s 'a red circle' -m %s -n 40 --candidates 2 -o %s -q", bin, test_tmp_path("with.dalle"),
             test_tmp_path("many.png"));
    check(st == 2 && strstr(out, "at most 64"), "-n 40 --candidates 2: %d %s", st, out);
    free(out);

    /* eval score on the training folder and on generated images */
    st = test_runf(&out, "%s eval score %s -m %s -q -t 1", bin, data, test_tmp_path("a.dalle"));
    double mean = -9, t1 = -1, t5 = -1;
    const char *line = out ? strstr(out, "score-eval ") : NULL;
    check(st == 0 && line &&
              sscanf(line, "score-eval images=%*d mean_score=%lf top1=%lf top5=%lf", &mean, &t1,
                     &t5) == 3 && fabs(mean) <= 1 && t1 >= 0 && t1 <= t5 && t5 <= 1,
          "eval score: %d %s", st, out);
    printf("  eval score on the training folder: mean %.3f, top-1 %.2f, top-5 %.2f\n", mean, t1, t5);
    free(out);
    st = test_runf(&out, "%s eval score %s -m %s -q", bin, data, model);
    check(st == 1 && strstr(out, "holds no scorer"), "eval score without a scorer: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s rerank score -m %s 'a red circle' %s %s", bin, test_tmp_path("with.dalle"),
             test_tmp_path("c-1.png"), test_tmp_path("c-2.png"));
    check(st == 0 && strstr(out, "c-1.png") && strstr(out, "c-2.png"), "rerank score: %d %s", st, out);
    free(out);
}

static void test_bad_input(void)
{
    printf("bad input: one line and the documented exit status\n");
    char *out = NULL;
    int st = test_runf(&out, "%s rerank train %s", bin, data);
    check(st == 2 && strstr(out, "-o"), "no -o: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s rerank train %s -o %s --into %s", bin, data, test_tmp_path("x.dalle"), test_tmp_path("y.dalle"));
    check(st == 2 && strstr(out, "--into"), "--into without -m: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s rerank train %s -o %s --width 10 --heads 4", bin, data, test_tmp_path("x.dalle"));
    check(st == 2, "width not a multiple of heads: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s rerank train %s/nothing-here -o %s", bin, data, test_tmp_path("x.dalle"));
    check(st == 1, "missing folder: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s rerank train %s -o %s --resume %s", bin, data, test_tmp_path("x.dalle"), model);
    check(st == 1 && strstr(out, "checkpoint"), "resume from a non-checkpoint: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s rerank add %s %s -o %s", bin, model, model, test_tmp_path("x.dalle"));
    check(st == 1 && strstr(out, "holds no scorer"), "add a file without a scorer: %d %s", st, out);
    free(out);
    st = test_runf(&out, "%s rerank frobnicate", bin);
    check(st == 2, "unknown subcommand: %d", st);
    free(out);
}

#ifdef DALLEC_HAVE_MPI
#define MPIRUN "mpirun -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 "
#endif

static void test_mpi(void)
{
#ifdef DALLEC_HAVE_MPI
    if (test_run("command -v mpirun >/dev/null 2>&1", NULL) != 0) {
        printf("mpirun: not on PATH, data-parallel check skipped\n");
        return;
    }
    printf("under mpirun: a step on 2 ranks equals 1 rank's; a 2-rank run resumes bit for bit\n");
    /* as tests/test_mpi_train.c: Open MPI refuses root without these, and in a sanitizer
     * build its allocations that live until exit are suppressed (tests/lsan_mpi.supp) */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    const char *src = getenv("DALLEC_SOURCE_DIR"), *prev = getenv("LSAN_OPTIONS");
    char lsan[2048];
    snprintf(lsan, sizeof lsan, "%s%ssuppressions=%s/tests/lsan_mpi.supp:fast_unwind_on_malloc=0",
             prev ? prev : "", prev && *prev ? ":" : "", src ? src : ".");
    setenv("LSAN_OPTIONS", lsan, 1);
    char *out = NULL;
    int st = test_runf(&out, "%s rerank train %s -o %s " OPTS " --vocab 300 --steps 1", bin, data,
                 test_tmp_path("m1.dalle"));
    check(st == 0, "1 rank: %d %s", st, out);
    free(out);
    st = test_runf(&out, MPIRUN "%s rerank train %s -o %s " OPTS " --vocab 300 --steps 1", bin, data,
             test_tmp_path("m2.dalle"));
    check(st == 0, "2 ranks: %d %s", st, out);
    free(out);
    rerank_t *a = NULL, *b = NULL;
    char err[256];
    if (check(rerank_load(&a, NULL, test_tmp_path("m1.dalle"), 1, 0, err) == 0 &&
                  rerank_load(&b, NULL, test_tmp_path("m2.dalle"), 1, 0, err) == 0, "%s", err)) {
        size_t n;
        const float *pa = rerank_param_block(a, &n), *pb = rerank_param_block(b, NULL);
        double worst = 0;
        for (size_t k = 0; k < n; k++) worst = fmax(worst, fabs((double)pa[k] - pb[k]));
        /* a first AdamW step moves each parameter ~lr sign(g) (lr = 0.01/1000 in warmup):
         * the sums' order decides the sign where g is ~0, so a quarter of lr */
        printf("  1 rank vs 2 ranks after one step: max abs err %.3g (lr 1e-5)\n", worst);
        check(worst <= 2.5e-6, "2-rank step differs by %g", worst);
    }
    rerank_free(a);
    rerank_free(b);
    st = test_runf(&out, MPIRUN "%s rerank train %s -o %s " OPTS " --vocab 300 --steps 4", bin, data,
             test_tmp_path("m4.dalle"));
    check(st == 0, "2 ranks, 4 steps: %d %s", st, out);
    free(out);
    st = test_runf(&out, MPIRUN "%s rerank train %s -o %s " OPTS " --vocab 300 --steps 2", bin, data,
             test_tmp_path("m22.dalle"));
    check(st == 0, "2 ranks, 2 steps: %d %s", st, out);
    free(out);
    st = test_runf(&out, MPIRUN "%s rerank train %s -o %s --resume %s --steps 4 -t 1", bin, data,
             test_tmp_path("m22.dalle"), test_tmp_path("m22.dalle.ckpt"));
    check(st == 0 && same_scorer(test_tmp_path("m4.dalle"), test_tmp_path("m22.dalle")),
          "2 ranks: 2 steps + resume to 4 equal 4 steps, bit for bit: %d %s", st, out);
    free(out);
#else
    printf("built without MPI: data-parallel check skipped\n");
#endif
}

int main(void)
{
    bin = getenv("DALLEC_BIN");
    if (!bin) {
        printf("test_rerank_cli: skipped: DALLEC_BIN is not set (run through ctest)\n");
        return TEST_SKIPPED;
    }
    snprintf(data, sizeof data, "%s/data", test_tmpdir());
    snprintf(model, sizeof model, "%s/model.dalle", test_tmpdir());
    char *out = NULL;
    if (!check(test_runf(&out, "%s data shapes %s --count 40 --size 16 --seed 2", bin, data) == 0,
               "data shapes: %s", out ? out : "")) {
        free(out);
        return test_summary("test_rerank_cli");
    }
    free(out);
    if (gt_write_model(model, 11)) return test_summary("test_rerank_cli");
    test_train_resume();
    test_model_file();
    test_bad_input();
    test_mpi();
    return test_summary("test_rerank_cli");
}
