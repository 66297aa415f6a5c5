/* dalle-c serve and bad requests (docs/SERVER.md, "Statuses"): a table of malformed
 * bodies, fields of the wrong type and out-of-range values (candidates among them, and
 * candidates on this model without a scorer), each answered 400 with OpenAI's error
 * object naming the field; bodies over the limit 413 (declared, and sent
 * chunked); wrong methods 405 and unknown paths 404; a full queue 503 with Retry-After
 * (a job held running through $DALLEC_SERVE_TEST_HOLD fills it deterministically); and
 * the server still answering well after all of it. */
#include "tests/serve_testlib.h"

#if !defined(DALLEC_TEST_CURL)
int main(void)
{
    printf("test_serve_errors: skipped (dalle-c was built without the server, or libcurl is "
           "missing)\n");
    return TEST_SKIPPED;
}
#else

typedef struct {
    const char *what, *method, *path, *body;
    int status;
    const char *param;  /* error.param wanted; "" for none */
} bad_request_t;

#define GEN "/v1/images/generations"

static const bad_request_t table[] = {
    {"malformed JSON", "POST", GEN, "{\"prompt\": \"a red circle\",", 400, ""},
    {"empty body", "POST", GEN, "", 400, ""},
    {"not an object", "POST", GEN, "[\"a red circle\"]", 400, ""},
    {"duplicate field", "POST", GEN, "{\"prompt\": \"a\", \"prompt\": \"b\"}", 400, ""},
    {"NUL in a string", "POST", GEN, "{\"prompt\": \"a\\u0000b\"}", 400, ""},
    {"not UTF-8", "POST", GEN, "{\"prompt\": \"a \xff red circle\"}", 400, ""},
    {"no prompt", "POST", GEN, "{\"n\": 1}", 400, "prompt"},
    {"prompt a number", "POST", GEN, "{\"prompt\": 42}", 400, "prompt"},
    {"prompt null", "POST", GEN, "{\"prompt\": null}", 400, "prompt"},
    {"prompt only spaces", "POST", GEN, "{\"prompt\": \"   \"}", 400, "prompt"},
    {"n zero", "POST", GEN, "{\"prompt\": \"a\", \"n\": 0}", 400, "n"},
    {"n too many", "POST", GEN, "{\"prompt\": \"a\", \"n\": 11}", 400, "n"},
    {"n a fraction", "POST", GEN, "{\"prompt\": \"a\", \"n\": 1.5}", 400, "n"},
    {"n a string", "POST", GEN, "{\"prompt\": \"a\", \"n\": \"2\"}", 400, "n"},
    {"size not the model's", "POST", GEN, "{\"prompt\": \"a\", \"size\": \"1024x1024\"}", 400, "size"},
    {"response_format url", "POST", GEN, "{\"prompt\": \"a\", \"response_format\": \"url\"}", 400, "response_format"},
    {"temperature negative", "POST", GEN, "{\"prompt\": \"a\", \"temperature\": -1}", 400, "temperature"},
    {"temperature a word", "POST", GEN, "{\"prompt\": \"a\", \"temperature\": \"hot\"}", 400, "temperature"},
    {"top_p zero", "POST", GEN, "{\"prompt\": \"a\", \"top_p\": 0}", 400, "top_p"},
    {"top_p zero as a float", "POST", GEN, "{\"prompt\": \"a\", \"top_p\": 1e-60}", 400, "top_p"},
    {"top_p above 1", "POST", GEN, "{\"prompt\": \"a\", \"top_p\": 1.5}", 400, "top_p"},
    {"top_k negative", "POST", GEN, "{\"prompt\": \"a\", \"top_k\": -1}", 400, "top_k"},
    {"guidance too big", "POST", GEN, "{\"prompt\": \"a\", \"guidance\": 101}", 400, "guidance"},
    {"seed negative", "POST", GEN, "{\"prompt\": \"a\", \"seed\": -5}", 400, "seed"},
    {"seed a word", "POST", GEN, "{\"prompt\": \"a\", \"seed\": \"abc\"}", 400, "seed"},
    {"candidates a word", "POST", GEN, "{\"prompt\": \"a\", \"candidates\": \"2\"}", 400, "candidates"},
    {"candidates a fraction", "POST", GEN, "{\"prompt\": \"a\", \"candidates\": 2.5}", 400, "candidates"},
    {"candidates zero", "POST", GEN, "{\"prompt\": \"a\", \"candidates\": 0}", 400, "candidates"},
    {"candidates too many", "POST", GEN, "{\"prompt\": \"a\", \"candidates\": 65}", 400, "candidates"},
    {"n x candidates > 64", "POST", GEN, "{\"candidates\": 7, \"prompt\": \"a\", \"n\": 10}", 400, "candidates"},
    {"candidates, no scorer", "POST", GEN, "{\"prompt\": \"a\", \"candidates\": 2}", 400, "candidates"},
    {"stream a word", "POST", GEN, "{\"prompt\": \"a\", \"stream\": \"yes\"}", 400, "stream"},
    {"model a number", "POST", GEN, "{\"prompt\": \"a\", \"model\": 5}", 400, "model"},
    {"unknown field", "POST", GEN, "{\"prompt\": \"a\", \"temprature\": 1}", 400, "temprature"},
    {"GET generations", "GET", GEN, NULL, 405, ""},
    {"DELETE models", "DELETE", "/v1/models", NULL, 405, ""},
    {"POST the page", "POST", "/", "{}", 405, ""},
    {"no such page", "GET", "/nope", NULL, 404, ""},
    {"no such endpoint", "GET", "/v1/images/edits", NULL, 404, ""},
    {"no such model", "GET", "/v1/models/other.dalle", NULL, 404, "model"},
};

/* rows whose message must also say something */
static const struct {
    const char *what, *says;
} messages[] = {
    {"n x candidates > 64", "70 samples"},
    {"candidates, no scorer", "no scorer"},
    {"candidates, no scorer", "dalle-c rerank add"},
};

static void test_table(const st_server_t *s)
{
    int n = (int)(sizeof table / sizeof *table), ok = 0;
    for (int i = 0; i < n; i++) {
        const bad_request_t *t = &table[i];
        st_reply_t r = {0};
        st_request(s, t->method, t->path, t->body, t->body ? strlen(t->body) : 0, NULL, 0, &r);
        char param[64], type[64];
        st_error_fields(&r, param, type, sizeof param);
        int good = check(r.status == t->status, "%s: status %ld, want %d: %.200s", t->what,
                         r.status, t->status, r.body) &&
                   check(strcmp(param, t->param) == 0, "%s: error.param '%s', want '%s'",
                         t->what, param, t->param) &&
                   check(strcmp(type, "invalid_request_error") == 0, "%s: error.type '%s'",
                         t->what, type) &&
                   check(strstr(r.content_type, "application/json") != NULL, "%s: type %s",
                         t->what, r.content_type);
        ok += good;
        printf("  %-22s %s %-24s -> %ld %s%s\n", t->what, t->method, t->path, r.status,
               param[0] ? "param " : "", param);
        for (size_t m = 0; m < sizeof messages / sizeof *messages; m++)
            if (strcmp(t->what, messages[m].what) == 0)
                check(strstr(r.body, messages[m].says) != NULL, "%s: the message does not say "
                      "'%s': %.300s", t->what, messages[m].says, r.body);
        if (t->status == 400 && strcmp(t->param, "size") == 0)
            check(strstr(r.body, "16x16") != NULL, "the size error names the model's size");
        st_reply_free(&r);
    }
    printf("  %d of %d bad requests answered as documented\n", ok, n);
}

static void test_too_big(const st_server_t *s)
{
    size_t n = 100 * 1024;
    char *body = malloc(n + 64);
    if (!body) exit(1);
    int k = snprintf(body, n + 64, "{\"prompt\": \"");
    memset(body + k, 'a', n - (size_t)k);
    strcpy(body + n, "\"}");
    st_reply_t r = {0};
    st_request(s, "POST", GEN, body, strlen(body), NULL, 0, &r);
    check(r.status == 413, "100 KiB body: status %ld, want 413", r.status);
    st_reply_free(&r);
    /* without a Content-Length: read, dropped, then refused */
    st_request(s, "POST", GEN, body, strlen(body),
               "Transfer-Encoding: chunked", 0, &r);
    check(r.status == 413, "100 KiB chunked body: status %ld, want 413", r.status);
    st_reply_free(&r);
    free(body);
    printf("  100 KiB bodies, declared and chunked: 413\n");
}

/* --queue 1: one job held running, one waiting, the next refused. */
static void test_queue_full(const st_server_t *s, const char *hold)
{
    static const char stream[] = "{\"prompt\": \"a red circle\", \"seed\": 1, \"stream\": true}";
    static const char plain[] = "{\"prompt\": \"a red circle\", \"seed\": 2}";
    st_hold(hold, 1);
    volatile int running = 0;
    st_async_t a = {0}, b = {0};
    a.r.got_data = &running;
    st_async_start(&a, s, stream);
    st_wait_flag(&running, "the first job streamed a row");
    st_async_start(&b, s, plain);
    st_wait_log(s, "job 2: queued, 1 ahead");
    st_reply_t c = {0};
    st_post(s, plain, &c);
    char param[64], type[64];
    st_error_fields(&c, param, type, sizeof param);
    check(c.status == 503 && atoi(c.retry_after) >= 1 && strcmp(type, "server_error") == 0 &&
              strstr(c.body, "queue_full"),
          "a full queue: status %ld, Retry-After '%s', %.200s", c.status, c.retry_after, c.body);
    printf("  queue full: %ld with Retry-After %s\n", c.status, c.retry_after);
    st_reply_free(&c);
    remove(hold);
    st_async_join(&a);
    st_async_join(&b);
    check(a.r.status == 200 && strstr(a.r.body, "image_generation.completed"),
          "the held job finished: %ld", a.r.status);
    check(b.r.status == 200 && strstr(b.r.body, "b64_json"), "the queued job finished: %ld",
          b.r.status);
    st_reply_free(&a.r);
    st_reply_free(&b.r);
}

int main(void)
{
    st_files_t f;
    if (st_setup(&f)) return test_summary("test_serve_errors");
    st_server_t s;
    static const char *const args[] = {"--queue", "1", NULL};
    if (st_start(&s, f.model, args, f.env) == 0) {
        test_table(&s);
        test_too_big(&s);
        test_queue_full(&s, f.hold);
        st_reply_t r = {0};
        st_post(&s, "{\"prompt\": \"a red circle\", \"n\": 2}", &r);
        check(r.status == 200, "after all that, a good request: %ld", r.status);
        st_reply_free(&r);
        check(st_stop(&s, SIGTERM) == 0, "SIGTERM: exit status 0");
    }
    curl_global_cleanup();
    return test_summary("test_serve_errors");
}

#endif
