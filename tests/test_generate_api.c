/* pipeline/dalle.h on a tiny random model (tests/generate_testlib.h): loading from a path
 * and from memory (the same images; the bytes may be freed after loading), the defaults,
 * the same seed giving the same tokens and pixels, the row callback (called G times in
 * order, partial images grey below the finished rows, cancel stopping early), image
 * completion (the top rows are the init image's tokens), one model shared by two threads
 * giving what one thread gives, thread counts not changing results, the PNG writers with
 * the settings chunks, and the errors. */
#include "data/data.h"
#include "dvae/dvae.h"
#include "pipeline/dalle.h"
#include "tests/generate_testlib.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char model_path[600];

static int same_result(const dalle_result_t *a, const dalle_result_t *b)
{
    if (a->n_images != b->n_images || a->seed != b->seed) return 0;
    for (int i = 0; i < a->n_images; i++)
        if (memcmp(a->images[i].rgb, b->images[i].rgb, (size_t)GT_S * GT_S * 3) != 0) return 0;
    return memcmp(a->tokens, b->tokens, (size_t)a->n_images * GT_G * GT_G * sizeof(int)) == 0;
}

static int gen(dalle_ctx_t *c, const char *prompt, int64_t seed, int n, dalle_result_t *r)
{
    char err[DALLE_ERR_SIZE];
    dalle_params_t p = dalle_params_default();
    p.seed = seed;
    p.n_images = n;
    p.threads = 1;
    int st = dalle_generate(c, prompt, &p, NULL, NULL, r, err);
    check(st == DALLE_OK, "generate \"%s\": %s", prompt, err);
    return st;
}

static void test_defaults(void)
{
    dalle_params_t p = dalle_params_default();
    check(p.n_images == 1 && p.seed == -1 && p.temperature == 1.0f && p.top_k == 64 &&
              p.top_p == 1.0f && p.guidance == 3.0f && p.threads == 0 && p.init_image == NULL &&
              p.init_rows == 0 && p.partial_images == 0,
          "dalle_params_default");
    check(dalle_params_check(&p, NULL) == DALLE_OK, "defaults pass the check");
    int64_t a = dalle_random_seed(), b = dalle_random_seed();
    check(a >= 0 && b >= 0 && a != b, "random seeds %lld %lld", (long long)a, (long long)b);
    check(strcmp(dalle_status_name(DALLE_EPROMPT), "bad prompt") == 0, "status name");
    printf("  defaults ok\n");
}

static void test_load(dalle_model_t **out)
{
    char err[DALLE_ERR_SIZE];
    dalle_model_t *m = NULL;
    if (!check(dalle_model_load(&m, model_path, err) == DALLE_OK, "load: %s", err)) exit(test_summary("test_generate_api"));
    dalle_model_info_t info;
    dalle_model_info(m, &info);
    check(info.image_size == GT_S && info.grid == GT_G && info.text_len == GT_T &&
              info.image_vocab == GT_K && info.n_params > 0,
          "info: S %d G %d T %d K %d", info.image_size, info.grid, info.text_len, info.image_vocab);
    check(strcmp(dalle_model_name(m), "model.dalle") == 0, "name %s", dalle_model_name(m));

    /* from memory: the bytes are freed right after loading */
    size_t n = 0;
    unsigned char *bytes = gt_read_file(model_path, &n);
    dalle_model_t *mm = NULL;
    check(bytes && dalle_model_load_mem(&mm, bytes, n, "mem.dalle", err) == DALLE_OK,
          "load_mem: %s", err);
    free(bytes);
    if (mm) {
        check(strcmp(dalle_model_name(mm), "mem.dalle") == 0, "mem name");
        dalle_ctx_t *a = NULL, *b = NULL;
        dalle_result_t ra, rb;
        dalle_ctx_create(&a, m, err);
        dalle_ctx_create(&b, mm, err);
        gen(a, "a red circle", 5, 2, &ra);
        gen(b, "a red circle", 5, 2, &rb);
        check(same_result(&ra, &rb), "memory and path loads give the same images");
        dalle_result_free(&ra);
        dalle_result_free(&rb);
        dalle_ctx_free(a);
        dalle_ctx_free(b);
        dalle_model_free(mm);
    }
    /* damaged bytes in memory: an error, not a crash */
    bytes = gt_read_file(model_path, &n);
    if (bytes) {
        check(dalle_model_load_mem(&mm, bytes, n / 2, NULL, err) == DALLE_EMODEL && mm == NULL,
              "half a model in memory refused");
        printf("  half a model: %s\n", err);
        bytes[n / 2] ^= 0x55;
        int st = dalle_model_load_mem(&mm, bytes, n, NULL, err);
        check(st == DALLE_EMODEL && mm == NULL, "a damaged byte refused (%d)", st);
        printf("  damaged byte: %s\n", err);
        free(bytes);
    }
    printf("  load from path and memory ok\n");
    *out = m;
}

static void test_load_errors(void)
{
    char err[DALLE_ERR_SIZE], path[700];
    dalle_model_t *m = (dalle_model_t *)1;
    snprintf(path, sizeof path, "%s/missing.dalle", test_tmpdir());
    check(dalle_model_load(&m, path, err) == DALLE_EIO && m == NULL, "missing file: %s", err);
    check(strstr(err, "missing.dalle") != NULL, "message names the file: %s", err);
    /* a dVAE-only file cannot generate */
    dvae_config_t dc = dvae_config_default();
    dc.image_size = GT_S;
    dc.layers = 2;
    dc.channels = 8;
    dc.res_blocks = 1;
    dc.codebook_size = GT_K;
    dc.code_dim = 8;
    dvae_t *dv = NULL;
    snprintf(path, sizeof path, "%s/dvae-only.dalle", test_tmpdir());
    if (check(dvae_create(&dv, &dc, 1, err) == 0, "dvae_create")) {
        dvae_init_params(dv, 1);
        check(dvae_save(dv, path, err) == 0, "dvae_save: %s", err);
        dvae_free(dv);
        int st = dalle_model_load(&m, path, err);
        check(st == DALLE_EMODEL && strstr(err, "tokenizer"), "dVAE-only file: %d %s", st, err);
        printf("  dVAE-only: %s\n", err);
    }
}

static void test_determinism(dalle_model_t *m)
{
    char err[DALLE_ERR_SIZE];
    dalle_ctx_t *c = NULL;
    check(dalle_ctx_create(&c, m, err) == 0, "ctx: %s", err);
    dalle_result_t a, b, d, one;
    gen(c, "a blue square", 42, 3, &a);
    gen(c, "a blue square", 42, 3, &b);
    check(same_result(&a, &b), "same seed, same tokens and pixels");
    check(a.seed == 42 && a.params.seed == 42 && a.params.n_images == 3, "settings used");
    gen(c, "a blue square", 43, 3, &d);
    check(!same_result(&a, &d), "another seed, other tokens");
    /* a smaller batch after a larger one in the same context */
    gen(c, "a blue square", 42, 1, &one);
    check(memcmp(one.tokens, a.tokens, GT_G * GT_G * sizeof(int)) == 0,
          "image 0 of a batch = the same seed alone");
    dalle_result_free(&one);
    /* the seed drawn when none is given is reported, and reproduces */
    dalle_params_t p = dalle_params_default();
    p.threads = 1;
    dalle_result_t r1, r2;
    if (check(dalle_generate(c, "a blue square", &p, NULL, NULL, &r1, err) == 0, "%s", err)) {
        gen(c, "a blue square", (int64_t)r1.seed, 1, &r2);
        check(r1.params.seed == (int64_t)r1.seed && same_result(&r1, &r2),
              "the random seed %llu reproduces", (unsigned long long)r1.seed);
        dalle_result_free(&r1);
        dalle_result_free(&r2);
    }
    /* thread count: the same images on 1 and 2 threads */
    p = dalle_params_default();
    p.seed = 42;
    p.n_images = 3;
    p.threads = 2;
    if (check(dalle_generate(c, "a blue square", &p, NULL, NULL, &r1, err) == 0, "%s", err)) {
        check(same_result(&a, &r1), "2 threads give what 1 thread gives");
        dalle_result_free(&r1);
    }
    /* greedy sampling ignores the seed */
    p = dalle_params_default();
    p.temperature = 0;
    p.threads = 1;
    p.seed = 1;
    dalle_generate(c, "a blue square", &p, NULL, NULL, &r1, err);
    p.seed = 2;
    dalle_generate(c, "a blue square", &p, NULL, NULL, &r2, err);
    check(r1.tokens && r2.tokens && memcmp(r1.tokens, r2.tokens, GT_G * GT_G * sizeof(int)) == 0,
          "greedy: seed does not matter");
    dalle_result_free(&r1);
    dalle_result_free(&r2);
    dalle_result_free(&a);
    dalle_result_free(&b);
    dalle_result_free(&d);
    dalle_ctx_free(c);
    printf("  determinism ok\n");
}

typedef struct {
    int calls, cancel_at, rows[64];
    int partial_ok;
} cb_t;

static int on_row(const dalle_row_t *r, void *user)
{
    cb_t *cb = user;
    if (cb->calls < 64) cb->rows[cb->calls] = r->row;
    cb->calls++;
    if (r->images) {
        /* below the finished rows: grey; every token of finished rows in range */
        const int done_px = (r->row + 1) * GT_S / GT_G;
        for (int i = 0; i < r->n_images; i++) {
            const dalle_image_t *im = &r->images[i];
            if (im->w != GT_S || im->h != GT_S) cb->partial_ok = 0;
            for (size_t k = (size_t)done_px * GT_S * 3; k < (size_t)GT_S * GT_S * 3; k++)
                if (im->rgb[k] != 128) cb->partial_ok = 0;
        }
    }
    for (int i = 0; i < r->n_images * (r->row + 1) * r->grid; i++) {
        int img = i / ((r->row + 1) * r->grid), j = i % ((r->row + 1) * r->grid);
        int t = r->tokens[img * r->grid * r->grid + j];
        if (t < 0 || t >= GT_K) cb->partial_ok = 0;
    }
    return cb->cancel_at >= 0 && r->row == cb->cancel_at;
}

static void test_callback(dalle_model_t *m)
{
    char err[DALLE_ERR_SIZE];
    dalle_ctx_t *c = NULL;
    dalle_ctx_create(&c, m, err);
    dalle_params_t p = dalle_params_default();
    p.seed = 9;
    p.n_images = 2;
    p.threads = 1;
    dalle_result_t r, plain;
    cb_t cb = {.cancel_at = -1, .partial_ok = 1};
    check(dalle_generate(c, "a green star", &p, on_row, &cb, &r, err) == 0, "%s", err);
    int order = cb.calls == GT_G;
    for (int i = 0; i < cb.calls && i < GT_G; i++) order &= cb.rows[i] == i;
    check(order, "callback called G = %d times in row order (got %d)", GT_G, cb.calls);
    check(cb.partial_ok, "tokens in range in the callback");
    /* with partial images, and the result unchanged by them */
    p.partial_images = 1;
    cb = (cb_t){.cancel_at = -1, .partial_ok = 1};
    check(dalle_generate(c, "a green star", &p, on_row, &cb, &plain, err) == 0, "%s", err);
    check(cb.calls == GT_G && cb.partial_ok, "partial images grey below the finished rows");
    check(same_result(&r, &plain), "the callback does not change the images");
    dalle_result_free(&plain);
    /* cancel after row 1 */
    cb = (cb_t){.cancel_at = 1, .partial_ok = 1};
    int st = dalle_generate(c, "a green star", &p, on_row, &cb, &plain, err);
    check(st == DALLE_CANCELLED && cb.calls == 2 && plain.images == NULL,
          "cancel at row 1: status %d after %d calls", st, cb.calls);
    /* the context still works after a cancel */
    dalle_result_t again;
    p.partial_images = 0;
    check(dalle_generate(c, "a green star", &p, NULL, NULL, &again, err) == 0, "%s", err);
    check(same_result(&r, &again), "same images after a cancelled run");
    dalle_result_free(&again);
    dalle_result_free(&r);
    dalle_ctx_free(c);
    printf("  callback and cancel ok\n");
}

static void test_init_image(dalle_model_t *m)
{
    char err[DALLE_ERR_SIZE];
    dalle_ctx_t *c = NULL;
    dalle_ctx_create(&c, m, err);
    /* a 24 x 20 picture: resized and cropped to S */
    enum { W = 24, H = 20 };
    uint8_t px[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) px[i] = (uint8_t)(i * 37 + (i / 3) * 11);
    dalle_image_t init = {W, H, px};
    int want[GT_G * GT_G];
    check(dalle_encode_image(c, &init, want, err) == 0, "encode: %s", err);
    dalle_params_t p = dalle_params_default();
    p.seed = 3;
    p.n_images = 2;
    p.threads = 1;
    p.init_image = &init;
    p.init_rows = 2;
    dalle_result_t r;
    cb_t cb = {.cancel_at = -1, .partial_ok = 1};
    if (check(dalle_generate(c, "a red circle", &p, on_row, &cb, &r, err) == 0, "%s", err)) {
        for (int i = 0; i < 2; i++)
            check(memcmp(r.tokens + i * GT_G * GT_G, want, 2 * GT_G * sizeof(int)) == 0,
                  "image %d starts with the init image's 2 rows", i);
        check(cb.calls == GT_G && cb.rows[0] == 0 && cb.rows[1] == 1, "rows with a prefix");
        check(r.params.init_rows == 2 && r.params.init_image == NULL, "init settings reported");
        dalle_result_free(&r);
    }
    p.init_rows = GT_G + 1;
    check(dalle_generate(c, "a red circle", &p, NULL, NULL, &r, err) == DALLE_EINVAL,
          "init_rows > G refused");
    printf("  init_rows > G: %s\n", err);
    dalle_ctx_free(c);
    printf("  image completion ok\n");
}

static void test_prompt_errors(dalle_model_t *m)
{
    char err[DALLE_ERR_SIZE];
    dalle_ctx_t *c = NULL;
    dalle_ctx_create(&c, m, err);
    dalle_params_t p = dalle_params_default();
    p.threads = 1;
    dalle_result_t r;
    const char *bad[] = {"", "   \t ", "a \xff red circle", "\xc0\xaf", "a \xed\xa0\x80 x"};
    for (int i = 0; i < 5; i++) {
        int st = dalle_generate(c, bad[i], &p, NULL, NULL, &r, err);
        check(st == DALLE_EPROMPT && r.images == NULL, "bad prompt %d: status %d", i, st);
        printf("  bad prompt %d: %s\n", i, err);
    }
    check(dalle_prompt_check("a red circle", err) == DALLE_OK, "good prompt passes");
    check(dalle_prompt_check("un cœur rouge ❤", err) == DALLE_OK, "UTF-8 prompt passes");
    /* longer than T: cut, reported, generated */
    const char *long_prompt = "a small red circle at the top left above a large blue square "
                              "on a white background";
    if (check(dalle_generate(c, long_prompt, &p, NULL, NULL, &r, err) == 0, "%s", err)) {
        check(r.prompt_kept == GT_T && r.prompt_tokens > GT_T, "long prompt: %d of %d tokens",
              r.prompt_kept, r.prompt_tokens);
        dalle_result_free(&r);
    }
    if (check(dalle_generate(c, "a red circle", &p, NULL, NULL, &r, err) == 0, "%s", err)) {
        check(r.prompt_kept == r.prompt_tokens && r.prompt_tokens > 0 && r.prompt_tokens <= GT_T,
              "short prompt: %d tokens", r.prompt_tokens);
        dalle_result_free(&r);
    }
    struct {
        const char *what;
        dalle_params_t p;
    } cases[8];
    for (int i = 0; i < 8; i++) cases[i].p = p;
    cases[0].what = "n_images 0", cases[0].p.n_images = 0;
    cases[1].what = "n_images 65", cases[1].p.n_images = DALLE_MAX_IMAGES + 1;
    cases[2].what = "seed -2", cases[2].p.seed = -2;
    cases[3].what = "temperature -1", cases[3].p.temperature = -1;
    cases[4].what = "top_p 0", cases[4].p.top_p = 0;
    cases[5].what = "guidance NaN", cases[5].p.guidance = 0.0f / 0.0f;
    cases[6].what = "top_k -1", cases[6].p.top_k = -1;
    cases[7].what = "init_rows without image", cases[7].p.init_rows = 1;
    for (int i = 0; i < 8; i++) {
        int st = dalle_generate(c, "a red circle", &cases[i].p, NULL, NULL, &r, err);
        check(st == DALLE_EINVAL, "%s: status %d", cases[i].what, st);
        printf("  %s: %s\n", cases[i].what, err);
    }
    dalle_ctx_free(c);
}

/* ---------------------------------------------------------------- PNG files */

static void test_png(dalle_model_t *m)
{
    char err[DALLE_ERR_SIZE], path[700];
    dalle_ctx_t *c = NULL;
    dalle_result_t r;
    dalle_ctx_create(&c, m, err);
    if (gen(c, "a red circle", 77, 2, &r) != DALLE_OK) {
        dalle_ctx_free(c);
        return;
    }
    dalle_settings_text_t s;
    dalle_settings_text(&s, &r, 2, "a red circle", dalle_model_name(m), NULL);
    const char *want[][2] = {{"dalle-c:prompt", "a red circle"}, {"dalle-c:seed", "77"},
                             {"dalle-c:n", "2"}, {"dalle-c:image", "2"},
                             {"dalle-c:top-k", "64"}, {"dalle-c:guidance", "3"},
                             {"dalle-c:model", "model.dalle"}};
    check(s.n_text == 10, "settings: %d chunks, want 10 (no init image)", s.n_text);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *v = NULL;
        for (int k = 0; k < s.n_text; k++)
            if (strcmp(s.text[k].key, want[i][0]) == 0) v = s.text[k].value;
        check(v && strcmp(v, want[i][1]) == 0, "%s = %s, want %s", want[i][0], v ? v : "(none)",
              want[i][1]);
    }

    /* in memory and on disk: the pixels and the chunks come back */
    uint8_t *png = NULL;
    size_t size = 0;
    img_t back = {0};
    check(dalle_image_encode_png(&r.images[1], s.text, s.n_text, &png, &size, err) == DALLE_OK,
          "encode: %s", err);
    check(png && img_load_mem(&back, png, size, "png", err) == 0 && back.w == GT_S &&
              memcmp(back.rgb, r.images[1].rgb, (size_t)GT_S * GT_S * 3) == 0,
          "encoded PNG decodes to the same pixels");
    img_deinit(&back);
    free(png);
    snprintf(path, sizeof path, "%s/settings.png", test_tmpdir());
    img_text_t *text = NULL;
    int n = 0;
    check(dalle_image_save_png(&r.images[1], path, s.text, s.n_text, err) == DALLE_OK,
          "save: %s", err);
    check(img_load_text(path, &text, &n, err) == 0 && n == s.n_text &&
              strcmp(img_text_get(text, n, "dalle-c:seed"), "77") == 0,
          "saved PNG holds the %d chunks", s.n_text);
    free(text);

    /* errors: a status and a message, nothing written */
    dalle_text_t bad_key = {"", "x"}, bad_value = {"note", "\xff\xfe"};
    dalle_image_t no_pixels = {GT_S, GT_S, NULL};
    snprintf(path, sizeof path, "%s/no-such-folder/x.png", test_tmpdir());
    int st = dalle_image_encode_png(&r.images[0], &bad_key, 1, &png, &size, err);
    check(st == DALLE_EINVAL, "empty key: status %d", st);
    st = dalle_image_encode_png(&r.images[0], &bad_value, 1, &png, &size, err);
    check(st == DALLE_EINVAL, "non-UTF-8 value: status %d", st);
    st = dalle_image_encode_png(&no_pixels, NULL, 0, &png, &size, err);
    check(st == DALLE_EINVAL && png == NULL, "no pixels: status %d", st);
    st = dalle_image_save_png(&r.images[0], path, NULL, -1, err);
    check(st == DALLE_EINVAL, "negative chunk count: status %d", st);
    st = dalle_image_save_png(&r.images[0], path, NULL, 0, err);
    check(st == DALLE_EIO, "missing folder: status %d", st);
    check(strstr(err, "no-such-folder") != NULL, "the message names the file: %s", err);
    printf("  PNG writers and settings chunks ok\n");
    dalle_result_free(&r);
    dalle_ctx_free(c);
}

/* ---------------------------------------------------------------- threads */

typedef struct {
    const dalle_model_t *m;
    const char *prompt;
    int64_t seed;
    int threads;           /* params.threads of this worker */
    int rounds;
    dalle_result_t r[4];
    int ok;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    char err[DALLE_ERR_SIZE];
    dalle_ctx_t *c = NULL;
    w->ok = dalle_ctx_create(&c, w->m, err) == 0;
    dalle_params_t p = dalle_params_default();
    p.seed = w->seed;
    p.n_images = 2;
    p.threads = w->threads;
    for (int i = 0; w->ok && i < w->rounds; i++)
        w->ok = dalle_generate(c, w->prompt, &p, NULL, NULL, &w->r[i], err) == 0;
    dalle_ctx_free(c);
    return NULL;
}

static void test_threads(dalle_model_t *m)
{
    char err[DALLE_ERR_SIZE];
    dalle_ctx_t *c = NULL;
    dalle_ctx_create(&c, m, err);
    dalle_result_t want[2];
    gen(c, "a red circle", 100, 2, &want[0]);
    gen(c, "a yellow heart", 200, 2, &want[1]);
    dalle_ctx_free(c);
    /* each thread's OpenMP team: one thread each; one and two at once; both as the
     * environment says (OMP_NUM_THREADS=2 under ctest), the default */
    static const int teams[][2] = {{1, 1}, {1, 2}, {0, 0}};
    for (int cfg = 0; cfg < 3; cfg++) {
        worker_t w[2] = {{m, "a red circle", 100, teams[cfg][0], 4, {{0}}, 0},
                         {m, "a yellow heart", 200, teams[cfg][1], 4, {{0}}, 0}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) check(pthread_create(&t[i], NULL, worker, &w[i]) == 0, "thread");
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < 2; i++) {
            check(w[i].ok, "thread %d generated", i);
            int same = 1;
            for (int k = 0; k < w[i].rounds; k++) {
                same &= w[i].ok && same_result(&w[i].r[k], &want[i]);
                dalle_result_free(&w[i].r[k]);
            }
            check(same, "thread %d (threads = %d): %d rounds equal to one thread alone", i,
                  w[i].threads, w[i].rounds);
        }
        printf("  two threads sharing one model (params.threads %d and %d) ok\n", teams[cfg][0],
               teams[cfg][1]);
    }
    for (int i = 0; i < 2; i++) dalle_result_free(&want[i]);
}

int main(void)
{
    snprintf(model_path, sizeof model_path, "%s/model.dalle", test_tmpdir());
    if (gt_write_model(model_path, 11)) return test_summary("test_generate_api");
    dalle_model_t *m = NULL;
    test_defaults();
    test_load(&m);
    test_load_errors();
    test_determinism(m);
    test_callback(m);
    test_init_image(m);
    test_prompt_errors(m);
    test_png(m);
    test_threads(m);
    dalle_model_free(m);
    return test_summary("test_generate_api");
}
