/* dalle-c serve on a tiny model (tests/serve_testlib.h): an OpenAI-shaped request's n
 * PNGs are the command line's files for the same seed and settings, byte for byte and
 * pixel for pixel, settings chunks included; the streaming variant sends partial images
 * with a rising progress figure, then the same PNGs; a request without a seed gets one
 * JavaScript can hold exactly; GET /v1/models, the page and its files; on a model
 * recommending its own sampling settings (convert --sample), /v1/models shows them and
 * requests that leave the settings out get the command line's images for them; SIGTERM
 * stops the server with exit status 0. */
#include "data/data.h"
#include "tests/serve_testlib.h"

#if !defined(DALLEC_TEST_CURL)
int main(void)
{
    printf("test_serve_api: skipped (dalle-c was built without the server, or libcurl is "
           "missing)\n");
    return TEST_SKIPPED;
}
#else

static const char *model; /* the tiny model file */

#define PROMPT "a small red circle at the top left on a white background"
#define N 3

static const char *const request =
    "{\"model\": \"dall-e-2\", \"prompt\": \"" PROMPT "\", \"n\": 3, \"size\": \"16x16\", "
    "\"response_format\": \"b64_json\", \"seed\": 1234, \"temperature\": 0.9, \"top_k\": 8, "
    "\"top_p\": 0.95, \"guidance\": 2, \"user\": \"test\"%s}";

/* The PNG bytes of data[i].b64_json or of a completed event's b64_json. */
static unsigned char *png_of(json_t *item, size_t *n)
{
    const char *b64 = json_string_value(json_object_get(item, "b64_json"));
    if (!check(b64 != NULL, "no b64_json")) return NULL;
    unsigned char *png = st_base64_decode(b64, n);
    check(png != NULL && *n > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0, "not a PNG");
    return png;
}

/* png equals the file the command line wrote for image k (BASE-k.png), bytes and pixels. */
static void same_as_cli(const unsigned char *png, size_t n, const char *base, int k,
                        const char *what)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s-%d.png", test_tmpdir(), base, k);
    size_t cn = 0;
    unsigned char *cli = gt_read_file(path, &cn);
    if (!check(cli != NULL, "no %s", path)) return;
    check(cn == n && memcmp(cli, png, n) == 0, "%s image %d: PNG bytes differ from the "
          "command line's %s (%zu vs %zu bytes)", what, k, path, n, cn);
    img_t a = {0}, b = {0};
    char err[256];
    if (check(img_load_mem(&a, png, n, "reply", err) == 0, "decode: %s", err) &&
        check(img_load(&b, path, err) == 0, "decode: %s", err))
        check(a.w == GT_S && a.h == GT_S && b.w == a.w && b.h == a.h &&
                  memcmp(a.rgb, b.rgb, (size_t)a.w * a.h * 3) == 0,
              "%s image %d: pixels differ from the command line's", what, k);
    img_deinit(&a);
    img_deinit(&b);
    free(cli);
}

static void check_seed_chunk(const unsigned char *png, size_t n, const char *want)
{
    char path[700], err[256];
    snprintf(path, sizeof path, "%s/reply.png", test_tmpdir());
    FILE *f = fopen(path, "wb");
    if (!check(f != NULL, "write %s", path)) return;
    fwrite(png, 1, n, f);
    fclose(f);
    img_text_t *text = NULL;
    int nt = 0;
    if (!check(img_load_text(path, &text, &nt, err) == 0, "chunks: %s", err)) return;
    const char *seed = img_text_get(text, nt, "dalle-c:seed");
    check(seed && strcmp(seed, want) == 0, "dalle-c:seed chunk %s, want %s", seed ? seed : "none",
          want);
    free(text);
}

static void test_generation(const st_server_t *s)
{
    char cmd[2000], body[1000];
    snprintf(cmd, sizeof cmd,
             "\"%s\" \"" PROMPT "\" -m \"%s\" -n 3 --seed 1234 --temperature 0.9 --top-k 8 "
             "--top-p 0.95 --guidance 2 -q -o \"%s/cli.png\" 2>&1",
             getenv("DALLEC_BIN"), model, test_tmpdir());
    char *out = NULL;
    int rc = test_run(cmd, &out);
    check(rc == 0, "the command line failed (%d): %s", rc, out);
    free(out);

    snprintf(body, sizeof body, request, "");
    st_reply_t r = {0};
    st_post(s, body, &r);
    check(r.status == 200, "POST: status %ld: %.300s", r.status, r.body);
    check(strstr(r.content_type, "application/json") != NULL, "content type %s", r.content_type);
    json_t *v = st_json(&r), *data = json_object_get(v, "data");
    check(json_integer_value(json_object_get(v, "created")) > 1700000000, "created");
    check(json_integer_value(json_object_get(v, "seed")) == 1234, "seed");
    check(strcmp(st_str(v, "size"), "16x16") == 0, "size");
    if (check(json_array_size(data) == N, "data holds %zu images", json_array_size(data))) {
        for (int i = 0; i < N; i++) {
            json_t *item = json_array_get(data, (size_t)i);
            check(json_integer_value(json_object_get(item, "seed")) == 1234 &&
                      json_integer_value(json_object_get(item, "index")) == i,
                  "data[%d] seed and index", i);
            size_t n = 0;
            unsigned char *png = png_of(item, &n);
            if (png) same_as_cli(png, n, "cli", i + 1, "POST");
            if (png && i == 0) check_seed_chunk(png, n, "1234");
            free(png);
        }
    }
    json_decref(v);
    st_reply_free(&r);
    printf("  POST /v1/images/generations: %d PNGs equal to the command line's\n", N);

    /* the same as a stream */
    snprintf(body, sizeof body, request, ", \"stream\": true");
    st_post(s, body, &r);
    check(r.status == 200 && strstr(r.content_type, "text/event-stream"),
          "stream: status %ld, type %s", r.status, r.content_type);
    json_t *events = st_events(r.body);
    int partial = 0, completed = 0;
    double last = 0;
    for (size_t e = 0; e < json_array_size(events); e++) {
        json_t *ev = json_array_get(events, e);
        const char *name = json_string_value(json_object_get(ev, "event"));
        double progress = json_number_value(json_object_get(ev, "progress"));
        if (strcmp(name, "image_generation.partial_image") == 0) {
            check(completed == 0, "a partial image after a completed one");
            check(progress > 0 && progress <= 1 && progress >= last, "progress %g after %g",
                  progress, last);
            check(json_integer_value(json_object_get(ev, "grid")) == GT_G, "grid");
            last = progress;
            size_t n = 0;
            free(png_of(ev, &n));
            partial++;
        } else if (strcmp(name, "image_generation.completed") == 0) {
            int i = (int)json_integer_value(json_object_get(ev, "image_index"));
            check(i == completed && progress == 1.0, "completed image %d in order", i);
            size_t n = 0;
            unsigned char *png = png_of(ev, &n);
            if (png) same_as_cli(png, n, "cli", i + 1, "stream");
            free(png);
            completed++;
        } else {
            check(strcmp(name, "queued") == 0, "unexpected event %s", name);
        }
    }
    /* a slot per row for so small a batch: every row of every image comes */
    check(partial == N * GT_G && completed == N, "stream: %d partial (want %d), %d completed "
          "events", partial, N * GT_G, completed);
    printf("  stream: %d partial images, then %d PNGs equal to the command line's\n", partial,
           completed);
    json_decref(events);
    st_reply_free(&r);
}

static void test_random_seed(const st_server_t *s)
{
    st_reply_t r = {0};
    st_post(s, "{\"prompt\": \"a blue square\"}", &r);
    check(r.status == 200, "POST without seed: %ld %.300s", r.status, r.body);
    json_t *v = st_json(&r);
    json_int_t seed = json_integer_value(json_object_get(v, "seed"));
    check(seed >= 0 && seed < ((json_int_t)1 << 53), "a random seed below 2^53: %lld",
          (long long)seed);
    json_t *item = json_array_get(json_object_get(v, "data"), 0);
    size_t n = 0;
    unsigned char *png = item ? png_of(item, &n) : NULL;
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)seed);
    if (png) check_seed_chunk(png, n, want);
    free(png);
    json_decref(v);
    st_reply_free(&r);
    printf("  no seed: drew %s, stored in the PNG\n", want);
}

/* /v1/models' "defaults": the sampling settings of requests that leave them out. */
static void check_defaults(const st_server_t *s, float t, int k, float p, float g)
{
    st_reply_t r = {0};
    st_request(s, "GET", "/v1/models", NULL, 0, NULL, 0, &r);
    json_t *v = st_json(&r);
    json_t *d = json_object_get(json_array_get(json_object_get(v, "data"), 0), "defaults");
    check(r.status == 200 && json_is_object(d) &&
              (float)json_number_value(json_object_get(d, "temperature")) == t &&
              json_is_integer(json_object_get(d, "top_k")) &&
              json_integer_value(json_object_get(d, "top_k")) == k &&
              (float)json_number_value(json_object_get(d, "top_p")) == p &&
              (float)json_number_value(json_object_get(d, "guidance")) == g,
          "GET /v1/models: defaults want %g %d %g %g: %.400s", t, k, p, g, r.body);
    json_decref(v);
    st_reply_free(&r);
}

/* A POST of body (n 2) whose PNGs are the command line's BASE-1.png and BASE-2.png. */
static void post_same_as_cli(const st_server_t *s, const char *body, const char *base)
{
    st_reply_t r = {0};
    st_post(s, body, &r);
    check(r.status == 200, "POST %s: status %ld: %.300s", body, r.status, r.body);
    json_t *v = st_json(&r), *data = json_object_get(v, "data");
    check(json_array_size(data) == 2, "data holds %zu images", json_array_size(data));
    for (size_t i = 0; i < json_array_size(data); i++) {
        size_t n = 0;
        unsigned char *png = png_of(json_array_get(data, i), &n);
        if (png) same_as_cli(png, n, base, (int)i + 1, body);
        free(png);
    }
    json_decref(v);
    st_reply_free(&r);
}

static void test_model_settings(void)
{
    char rec[700], *out = NULL;
    snprintf(rec, sizeof rec, "%s/rec", test_tmpdir());
    mkdir(rec, 0777);
    snprintf(rec, sizeof rec, "%s/rec/model.dalle", test_tmpdir()); /* named as the model */
    int rc = test_runf(&out, "%s convert %s -o %s --sample temperature=0.5,top_k=5,top_p=0.9,"
                       "guidance=1.5", getenv("DALLEC_BIN"), model, rec);
    check(rc == 0, "convert --sample: %d %s", rc, out);
    free(out);
    /* the plain model with the settings as options; then guidance given, the rest not */
    static const char *const runs[][2] = {
        {"rec-cli", "--temperature 0.5 --top-k 5 --top-p 0.9 --guidance 1.5"},
        {"rec-g3-cli", "--temperature 0.5 --top-k 5 --top-p 0.9 --guidance 3"},
    };
    for (int i = 0; i < 2; i++) {
        rc = test_runf(&out, "\"%s\" \"" PROMPT "\" -m \"%s\" -n 2 --seed 77 %s -q -o \"%s/%s.png\"",
                       getenv("DALLEC_BIN"), model, runs[i][1], test_tmpdir(), runs[i][0]);
        check(rc == 0, "the command line failed (%d): %s", rc, out);
        free(out);
    }
    st_server_t s;
    if (st_start(&s, rec, NULL, NULL)) return;
    check_defaults(&s, 0.5f, 5, 0.9f, 1.5f);
    post_same_as_cli(&s, "{\"prompt\": \"" PROMPT "\", \"n\": 2, \"seed\": 77}", "rec-cli");
    post_same_as_cli(&s, "{\"prompt\": \"" PROMPT "\", \"n\": 2, \"seed\": 77, \"guidance\": 3}",
                     "rec-g3-cli");
    check(st_stop(&s, SIGTERM) == 0, "SIGTERM");
    printf("  a model recommending its settings: /v1/models shows them; requests without "
           "them get the command line's PNGs for them\n");
}

static void test_models_and_page(const st_server_t *s)
{
    st_reply_t r = {0};
    st_request(s, "GET", "/v1/models", NULL, 0, NULL, 0, &r);
    json_t *v = st_json(&r);
    json_t *m = json_array_get(json_object_get(v, "data"), 0);
    check(r.status == 200 && strcmp(st_str(v, "object"), "list") == 0 &&
              strcmp(st_str(m, "id"), "model.dalle") == 0 &&
              strcmp(st_str(m, "size"), "16x16") == 0 &&
              json_is_false(json_object_get(m, "scorer")),
          "GET /v1/models: %ld %.300s", r.status, r.body);
    json_decref(v);
    st_reply_free(&r);
    check_defaults(s, 1.0f, 64, 1.0f, 3.0f);
    st_request(s, "GET", "/v1/models/model.dalle", NULL, 0, NULL, 0, &r);
    check(r.status == 200 && strstr(r.body, "\"grid\":4"), "GET /v1/models/model.dalle: %ld",
          r.status);
    st_reply_free(&r);

    static const struct {
        const char *path, *type, *holds;
    } files[] = {
        {"/", "text/html", "<title>dalle-c</title>"},
        {"/app.js", "text/javascript", "v1/images/generations"},
        {"/style.css", "text/css", "image-rendering"},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        st_request(s, "GET", files[i].path, NULL, 0, NULL, 0, &r);
        check(r.status == 200 && strstr(r.content_type, files[i].type) &&
                  strstr(r.body, files[i].holds),
              "GET %s: %ld %s", files[i].path, r.status, r.content_type);
        st_reply_free(&r);
    }
    printf("  GET /v1/models, /v1/models/model.dalle, the page and its files\n");
}

int main(void)
{
    st_files_t f;
    if (st_setup(&f)) return test_summary("test_serve_api");
    model = f.model;
    st_server_t s;
    if (st_start(&s, model, NULL, NULL) == 0) {
        test_models_and_page(&s);
        test_generation(&s);
        test_random_seed(&s);
        int rc = st_stop(&s, SIGTERM);
        check(rc == 0, "SIGTERM: exit status %d", rc);
        check(st_log_has(&s, "dalle-c serve: stopped"), "the log says it stopped");
        printf("  SIGTERM: exit status %d\n", rc);
    }
    test_model_settings();
    curl_global_cleanup();
    return test_summary("test_serve_api");
}

#endif
