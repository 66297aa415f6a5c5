/* dalle-c serve --api-key: /v1/ wants "Authorization: Bearer KEY" (401 with
 * WWW-Authenticate otherwise: no header, another scheme, a key that differs in one
 * character or in length), the page stays public, $DALLEC_API_KEY is used when there is
 * no --api-key, and a key that cannot go into a header is a usage error. */
#include "tests/serve_testlib.h"

#if !defined(DALLEC_TEST_CURL)
int main(void)
{
    printf("test_serve_auth: skipped (dalle-c was built without the server, or libcurl is "
           "missing)\n");
    return TEST_SKIPPED;
}
#else

static const char body[] = "{\"prompt\": \"a red circle\", \"seed\": 3}";

static long status_of(const st_server_t *s, const char *method, const char *path,
                      const char *header)
{
    st_reply_t r = {0};
    const char *b = strcmp(method, "POST") == 0 ? body : NULL;
    st_request(s, method, path, b, b ? strlen(b) : 0, header, 0, &r);
    if (r.status == 401)
        check(strstr(r.body, "invalid_api_key") != NULL, "401 body: %.200s", r.body);
    st_reply_free(&r);
    return r.status;
}

static void test_key(const st_server_t *s, const char *key)
{
    char good[128], lower[128];
    snprintf(good, sizeof good, "Authorization: Bearer %s", key);
    snprintf(lower, sizeof lower, "Authorization: bearer %s", key);
    static const char *const wrong[] = {
        NULL,                                      /* no header */
        "Authorization: Bearer",                   /* no key */
        "Authorization: Basic czNjcmV0LUtFWQ==",  /* another scheme */
        "Authorization: Bearer s3cret-KEZ",        /* one character off */
        "Authorization: Bearer s3cret-KE",         /* shorter */
        "Authorization: Bearer s3cret-KEY-and-more", /* longer */
    };
    const char *paths[][2] = {{"GET", "/v1/models"}, {"POST", "/v1/images/generations"}};
    for (int p = 0; p < 2; p++) {
        for (size_t w = 0; w < sizeof wrong / sizeof *wrong; w++) {
            if (strcmp(key, "s3cret-KEY") != 0 && w >= 3) break; /* the near misses are of it */
            long st = status_of(s, paths[p][0], paths[p][1], wrong[w]);
            check(st == 401, "%s %s with '%s': %ld, want 401", paths[p][0], paths[p][1],
                  wrong[w] ? wrong[w] : "(none)", st);
        }
        long st = status_of(s, paths[p][0], paths[p][1], good);
        check(st == 200, "%s %s with the key: %ld", paths[p][0], paths[p][1], st);
        st = status_of(s, paths[p][0], paths[p][1], lower);
        check(st == 200, "%s %s with 'bearer' in lower case: %ld", paths[p][0], paths[p][1], st);
    }
    long st = status_of(s, "GET", "/", NULL);
    check(st == 200, "the page without a key: %ld", st);
}

int main(void)
{
    char cmd[1400];
    st_files_t f;
    if (st_setup(&f)) return test_summary("test_serve_auth");
    st_server_t s;
    static const char *const args[] = {"--api-key", "s3cret-KEY", NULL};
    if (st_start(&s, f.model, args, NULL) == 0) {
        test_key(&s, "s3cret-KEY");
        check(st_stop(&s, SIGTERM) == 0, "exit status 0");
        printf("  --api-key: 401 without it, with another scheme, near misses; 200 with it\n");
    }
    if (st_start(&s, f.model, NULL, "DALLEC_API_KEY=from-the-environment") == 0) {
        test_key(&s, "from-the-environment");
        check(st_stop(&s, SIGTERM) == 0, "exit status 0");
        printf("  $DALLEC_API_KEY: the same\n");
    }
    snprintf(cmd, sizeof cmd, "\"%s\" serve -m \"%s\" --api-key 'has space' 2>&1",
             getenv("DALLEC_BIN"), f.model);
    char *out = NULL;
    int rc = test_run(cmd, &out);
    check(rc == 2 && strstr(out, "--api-key"), "a key with a space: exit %d: %s", rc, out);
    free(out);
    curl_global_cleanup();
    return test_summary("test_serve_auth");
}

#endif
