/* dalle-c serve with reranking (docs/SERVER.md, docs/RERANK.md) on a tiny model with a
 * scorer (`rerank train --into`, as tests/test_rerank_cli.c makes one): a request with
 * "candidates" gives the PNGs the command line's --candidates writes for the same seed
 * and settings, byte for byte, and each item's "score" and "candidate" are the ones the
 * command line prints and the PNG's text chunks hold; the stream draws every candidate
 * (a "candidate" field on its partial images) and ends with the same PNGs and scores; a
 * plain request on such a model is scored too; a request with candidates and no
 * temperature takes the model's candidate_temperature; GET /v1/models says the model has a
 * scorer and shows that temperature in defaults_with_candidates. The refusals (no
 * scorer, bad values) are in tests/test_serve_errors.c. */
#include "data/data.h"
#include "tests/serve_testlib.h"

#if !defined(DALLEC_TEST_CURL)
int main(void)
{
    printf("test_serve_rerank: skipped (dalle-c was built without the server, or libcurl is "
           "missing)\n");
    return TEST_SKIPPED;
}
#else

#define PROMPT "a green triangle above a yellow star on a beige background"
#define N 2
#define M 3
/* with seed 1 the scorer keeps the last candidate of both images (by margins of 4.2e-3
 * and 2.6e-3), so a server that ignored the ranking could not pass */
#define SETTINGS_CLI "--seed 1 --temperature 0.9 --top-k 8 --top-p 0.95 --guidance 2"
#define SETTINGS_JSON "\"seed\": 1, \"temperature\": 0.9, \"top_k\": 8, \"top_p\": 0.95, " \
                      "\"guidance\": 2"

static const char *dir;       /* the test's scratch folder: every file below is in it */
static char scored_model[700];

/* What the command line printed for one image: "wrote PATH (score S, candidate C of M)",
 * or "(score S)" with one candidate. */
typedef struct {
    char score[32];
    int candidate; /* 0-based; -1 when the line has none */
} cli_pick_t;

/* A model with a scorer: the tiny model plus a scorer trained for two steps on a few
 * shapes with the model's tokenizer. 0, or -1 (counted). */
static int make_scored_model(const char *model)
{
    const char *bin = getenv("DALLEC_BIN");
    char cmd[4000], *out = NULL;
    snprintf(cmd, sizeof cmd, "\"%s\" data shapes \"%s/shapes\" --count 16 --size 16 --seed 2 "
             "2>&1", bin, dir);
    int rc = test_run(cmd, &out);
    check(rc == 0, "data shapes: %d %s", rc, out);
    free(out);
    if (rc) return -1;
    snprintf(scored_model, sizeof scored_model, "%s/scored.dalle", dir);
    snprintf(cmd, sizeof cmd,
             "\"%s\" rerank train \"%s/shapes\" -o \"%s/scorer.dalle\" -m \"%s\" --into \"%s\" "
             "--image-layers 2 --image-channels 4 --text-len 12 --layers 1 --heads 2 --width 16 "
             "--embed-dim 8 --batch 8 --steps 2 --eval-images 8 --holdout 0.2 --seed 3 -t 1 2>&1",
             bin, dir, dir, model, scored_model);
    rc = test_run(cmd, &out);
    check(rc == 0, "rerank train --into: %d %s", rc, out);
    free(out);
    if (rc) return -1;
    /* the temperature SETTINGS give, as the model's for reranked requests only */
    snprintf(cmd, sizeof cmd, "\"%s\" convert \"%s\" -o \"%s\" --sample "
             "candidate_temperature=0.9 2>&1", bin, scored_model, scored_model);
    rc = test_run(cmd, &out);
    check(rc == 0, "convert --sample candidate_temperature=0.9: %d %s", rc, out);
    free(out);
    return rc ? -1 : 0;
}

/* Runs the command line with extra options, writing OUT.png (-o) in dir; picks[k] gets
 * what it printed for OUT-(k+1).png (or OUT.png for one image). 0, or -1 (counted). */
static int run_cli(const char *extra, const char *out_name, int n, cli_pick_t *picks)
{
    char cmd[4000], *out = NULL;
    snprintf(cmd, sizeof cmd, "\"%s\" \"" PROMPT "\" -m \"%s\" -n %d " SETTINGS_CLI " %s -q "
             "-o \"%s/%s.png\" 2>&1", getenv("DALLEC_BIN"), scored_model, n, extra, dir,
             out_name);
    int rc = test_run(cmd, &out);
    int ok = check(rc == 0, "the command line failed (%d): %s", rc, out);
    for (int k = 0; ok && k < n; k++) {
        char file[200];
        if (n > 1) snprintf(file, sizeof file, "%s-%d.png (score ", out_name, k + 1);
        else snprintf(file, sizeof file, "%s.png (score ", out_name);
        const char *at = strstr(out, file);
        int of = 0;
        picks[k].candidate = -1;
        /* "(score S)" alone when one candidate was drawn */
        int fields = at ? sscanf(at + strlen(file), "%31[^,)], candidate %d of %d",
                                 picks[k].score, &picks[k].candidate, &of) : 0;
        ok = check(fields == 3 || (fields == 1 && !strstr(extra, "--candidates")),
                   "no score for %s in: %s", file, out);
        if (fields == 3) picks[k].candidate--;
    }
    free(out);
    return ok ? 0 : -1;
}

/* The PNG bytes of a data item's or a completed event's b64_json. */
static unsigned char *png_of(const json_t *item, size_t *n)
{
    const char *b64 = json_string_value(json_object_get(item, "b64_json"));
    if (!check(b64 != NULL, "no b64_json")) return NULL;
    unsigned char *png = st_base64_decode(b64, n);
    check(png != NULL && *n > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0, "not a PNG");
    return png;
}

/* One image of a reply against the command line's: the PNG byte for byte; "score" (a
 * number) printed to 4 places as the command line prints it and as the PNG's
 * dalle-c:score chunk holds it; "candidate" as the command line's when reranked, absent
 * otherwise. */
static void same_as_cli(const json_t *item, const char *cli_name, const cli_pick_t *pick,
                        int candidates, const char *what)
{
    char cli_png[700];
    snprintf(cli_png, sizeof cli_png, "%s/%s", dir, cli_name);
    size_t n = 0, cn = 0;
    unsigned char *png = png_of(item, &n), *cli = gt_read_file(cli_png, &cn);
    if (!png || !check(cli != NULL, "no %s", cli_png)) {
        free(png);
        return;
    }
    check(cn == n && memcmp(cli, png, n) == 0, "%s: PNG bytes differ from the command line's %s "
          "(%zu vs %zu bytes)", what, cli_png, n, cn);
    free(cli);

    const json_t *score = json_object_get(item, "score");
    char text[32] = "none";
    if (check(json_is_number(score), "%s: no score", what))
        snprintf(text, sizeof text, "%.4f", json_number_value(score));
    check(strcmp(text, pick->score) == 0, "%s: score %s, the command line printed %s", what, text,
          pick->score);
    char path[700], err[256];
    snprintf(path, sizeof path, "%s/reply.png", dir);
    FILE *f = fopen(path, "wb");
    if (check(f != NULL, "write %s", path)) {
        fwrite(png, 1, n, f);
        fclose(f);
        img_text_t *chunks = NULL;
        int nt = 0;
        if (check(img_load_text(path, &chunks, &nt, err) == 0, "chunks: %s", err)) {
            const char *chunk = img_text_get(chunks, nt, "dalle-c:score");
            check(chunk && strcmp(chunk, text) == 0, "%s: dalle-c:score chunk %s, reply %s", what,
                  chunk ? chunk : "none", text);
            free(chunks);
        }
    }
    free(png);

    const json_t *cand = json_object_get(item, "candidate");
    if (candidates > 1)
        check(json_is_integer(cand) && json_integer_value(cand) == pick->candidate,
              "%s: candidate %lld, the command line kept %d", what,
              (long long)json_integer_value(cand), pick->candidate);
    else
        check(cand == NULL, "%s: a candidate field without candidates", what);
}

/* POST body (n 2, candidates 3): each of its N images as the command line's cli-I.png. */
static void post_same_as_cli(const st_server_t *s, const char *body, const cli_pick_t *picks,
                             const char *what)
{
    st_reply_t r = {0};
    st_post(s, body, &r);
    check(r.status == 200, "%s: status %ld: %.300s", what, r.status, r.body);
    json_t *v = st_json(&r), *data = json_object_get(v, "data");
    if (check(json_array_size(data) == N, "%s: data holds %zu images", what,
              json_array_size(data)))
        for (int i = 0; i < N; i++) {
            char image[96];
            snprintf(image, sizeof image, "%s, image %d", what, i);
            same_as_cli(json_array_get(data, (size_t)i), i ? "cli-2.png" : "cli-1.png",
                        &picks[i], M, image);
        }
    json_decref(v);
    st_reply_free(&r);
}

static void test_candidates(const st_server_t *s)
{
    cli_pick_t picks[N];
    if (run_cli("--candidates 3", "cli", N, picks)) return;
    int moved = 0;
    for (int k = 0; k < N; k++) moved += picks[k].candidate > 0;
    check(moved > 0, "the command line kept the first candidate of every image: pick a seed "
          "where the ranking shows");

    post_same_as_cli(s, "{\"prompt\": \"" PROMPT "\", \"n\": 2, \"candidates\": 3, "
                     SETTINGS_JSON "}", picks, "POST");
    printf("  POST, n 2, candidates 3: PNGs, scores (%s, %s) and candidates (%d, %d) as the "
           "command line's (%d kept another than the first)\n", picks[0].score, picks[1].score,
           picks[0].candidate, picks[1].candidate, moved);

    /* the same as a stream: every candidate drawn, then the kept ones */
    static const char stream[] = "{\"prompt\": \"" PROMPT "\", \"n\": 2, \"candidates\": 3, "
                                 "\"stream\": true, " SETTINGS_JSON "}";
    st_reply_t r = {0};
    st_post(s, stream, &r);
    check(r.status == 200, "stream with candidates: status %ld", r.status);
    json_t *events = st_events(r.body);
    int partial[N][M] = {{0}}, completed = 0, stray = 0;
    for (size_t e = 0; e < json_array_size(events); e++) {
        json_t *ev = json_array_get(events, e);
        const char *name = json_string_value(json_object_get(ev, "event"));
        int i = (int)json_integer_value(json_object_get(ev, "image_index"));
        if (strcmp(name, "image_generation.partial_image") == 0) {
            int c = (int)json_integer_value(json_object_get(ev, "candidate"));
            if (i >= 0 && i < N && c >= 0 && c < M) partial[i][c]++;
            else stray++;
        } else if (strcmp(name, "image_generation.completed") == 0) {
            char what[64];
            snprintf(what, sizeof what, "stream image %d", i);
            if (check(i == completed, "completed image %d in order", i))
                same_as_cli(ev, i ? "cli-2.png" : "cli-1.png", &picks[i], M, what);
            completed++;
        }
    }
    int rows_each = 1;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < M; c++) rows_each &= partial[i][c] == GT_G;
    check(rows_each && stray == 0 && completed == N, "stream: every row of every candidate "
          "(%d rows of image 0 candidate 0, %d stray), %d completed", partial[0][0], stray,
          completed);
    printf("  stream: %d rows of each of %d x %d candidates, then the same %d PNGs and scores\n",
           partial[0][0], N, M, completed);
    json_decref(events);
    st_reply_free(&r);

    /* no temperature: the model's candidate_temperature (0.9) with candidates, so the
     * command line's images again; its plain temperature (1) would draw others. null is
     * not given. */
    static const char *const no_temp[] = {
        "{\"prompt\": \"" PROMPT "\", \"n\": 2, \"candidates\": 3, \"seed\": 1, \"top_k\": 8, "
        "\"top_p\": 0.95, \"guidance\": 2}",
        "{\"prompt\": \"" PROMPT "\", \"n\": 2, \"candidates\": 3, \"seed\": 1, \"top_k\": 8, "
        "\"top_p\": 0.95, \"guidance\": 2, \"temperature\": null}",
    };
    for (int b = 0; b < 2; b++)
        post_same_as_cli(s, no_temp[b], picks, b ? "temperature null" : "no temperature given");
    printf("  POST with candidates and no temperature (or null): the model's "
           "candidate_temperature, the same PNGs\n");
}

/* candidates 1 on a model with a scorer: the image is scored all the same. */
static void test_plain_scored(const st_server_t *s)
{
    cli_pick_t pick;
    if (run_cli("", "one", 1, &pick)) return;
    st_reply_t r = {0};
    st_post(s, "{\"prompt\": \"" PROMPT "\", " SETTINGS_JSON "}", &r);
    check(r.status == 200, "POST without candidates: status %ld: %.300s", r.status, r.body);
    json_t *v = st_json(&r), *item = json_array_get(json_object_get(v, "data"), 0);
    if (check(item != NULL, "no image")) same_as_cli(item, "one.png", &pick, 1, "plain");
    json_decref(v);
    st_reply_free(&r);
    printf("  POST without candidates: scored %s, no candidate field, as the command line\n",
           pick.score);
}

static void test_model_info(const st_server_t *s)
{
    st_reply_t r = {0};
    st_request(s, "GET", "/v1/models/scored.dalle", NULL, 0, NULL, 0, &r);
    json_t *v = st_json(&r);
    check(r.status == 200 && json_is_true(json_object_get(v, "scorer")),
          "GET /v1/models/scored.dalle says it has a scorer: %ld %.300s", r.status, r.body);
    const json_t *d = json_object_get(v, "defaults"),
                 *dc = json_object_get(v, "defaults_with_candidates");
    const double t = json_number_value(json_object_get(d, "temperature")),
                 ct = json_number_value(json_object_get(dc, "temperature"));
    check(t == 1.0 && ct == (double)0.9f &&
              json_equal(json_object_get(d, "top_k"), json_object_get(dc, "top_k")) &&
              json_equal(json_object_get(d, "guidance"), json_object_get(dc, "guidance")),
          "defaults temperature %g, defaults_with_candidates %.9g (want 1 and 0.9, the rest the "
          "same): %.300s", t, ct, r.body);
    json_decref(v);
    st_reply_free(&r);
    printf("  GET /v1/models/scored.dalle: \"scorer\": true, temperature %.2f, with candidates "
           "%.2f\n", t, ct);
}

int main(void)
{
    st_files_t f;
    if (st_setup(&f)) return test_summary("test_serve_rerank");
    dir = test_tmpdir();
    st_server_t s;
    if (make_scored_model(f.model) == 0 && st_start(&s, scored_model, NULL, NULL) == 0) {
        test_candidates(&s);
        test_plain_scored(&s);
        test_model_info(&s);
        check(st_stop(&s, SIGTERM) == 0, "SIGTERM: exit status 0");
    }
    curl_global_cleanup();
    return test_summary("test_serve_rerank");
}

#endif
