/* dalle-c serve under load on loopback: 200 requests from 8 concurrent clients (plain,
 * n = 2, and streams) against --queue 4. Every request is answered 200 (with its images)
 * or 503 (queue full, with Retry-After), nothing else; the server does not crash and its
 * memory stays bounded (resident set after the load within 64 MiB of before it, peak
 * under 512 MiB; only reported under AddressSanitizer, whose quarantine holds freed
 * memory on purpose). Figures are printed, not asserted. */
#include "tests/serve_testlib.h"

#if !defined(DALLEC_TEST_CURL)
int main(void)
{
    printf("test_serve_load: skipped (dalle-c was built without the server, or libcurl is "
           "missing)\n");
    return TEST_SKIPPED;
}
#else

#if defined(__SANITIZE_ADDRESS__)
#define MEMORY_ASSERTED 0
#else
#define MEMORY_ASSERTED 1
#endif

enum { CLIENTS = 8, PER_CLIENT = 25 };

typedef struct {
    const st_server_t *s;
    int id;
    int ok, busy, other;
    pthread_t thread;
} client_t;

/* A 200 holds what was asked for: n PNGs, or a stream ending in n completed images. */
static int complete(const st_reply_t *r, int n, int stream)
{
    if (stream) {
        int done = 0;
        for (const char *p = r->body; (p = strstr(p, "event: image_generation.completed")); p++)
            done++;
        return done == n;
    }
    json_error_t e;
    json_t *v = json_loadb(r->body, r->len, 0, &e);
    json_t *data = json_object_get(v, "data");
    int good = (int)json_array_size(data) == n;
    for (int i = 0; good && i < n; i++)
        good = strncmp(st_str(json_array_get(data, (size_t)i), "b64_json"), "iVBORw0KGgo", 11) == 0;
    json_decref(v);
    return good;
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    for (int i = 0; i < PER_CLIENT; i++) {
        int kind = (c->id + i) % 5, n = kind == 1 ? 2 : 1, stream = kind == 0;
        char body[256];
        snprintf(body, sizeof body, "{\"prompt\": \"a red circle\", \"n\": %d, \"seed\": %d%s}", n,
                 c->id * 1000 + i, stream ? ", \"stream\": true" : "");
        st_reply_t r = {0};
        st_post(c->s, body, &r);
        if (r.status == 200 && complete(&r, n, stream)) c->ok++;
        else if (r.status == 503 && atoi(r.retry_after) >= 1 && strstr(r.body, "queue_full"))
            c->busy++;
        else {
            c->other++;
            check(0, "client %d request %d: status %ld (curl %d): %.200s", c->id, i, r.status,
                  (int)r.curl, r.body);
        }
        st_reply_free(&r);
    }
    return NULL;
}

int main(void)
{
    st_files_t f;
    if (st_setup(&f)) return test_summary("test_serve_load");
    st_server_t s;
    static const char *const args[] = {"--queue", "4", "-q", NULL};
    if (st_start(&s, f.model, args, NULL) == 0) {
        st_reply_t warm = {0};
        st_post(&s, "{\"prompt\": \"a red circle\", \"n\": 2, \"stream\": true}", &warm);
        check(warm.status == 200, "warm-up: %ld", warm.status);
        st_reply_free(&warm);
        long before = st_memory_kb(&s, "VmRSS:");

        client_t clients[CLIENTS];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < CLIENTS; i++) {
            clients[i] = (client_t){.s = &s, .id = i};
            if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i]) != 0) exit(1);
        }
        int ok = 0, busy = 0, other = 0;
        for (int i = 0; i < CLIENTS; i++) {
            pthread_join(clients[i].thread, NULL);
            ok += clients[i].ok;
            busy += clients[i].busy;
            other += clients[i].other;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        long after = st_memory_kb(&s, "VmRSS:"), peak = st_memory_kb(&s, "VmHWM:");
        printf("  %d requests from %d clients in %.2f s: %d answered 200, %d answered 503, "
               "%d otherwise\n", CLIENTS * PER_CLIENT, CLIENTS, secs, ok, busy, other);
        printf("  server memory: resident %ld kB before, %ld kB after, peak %ld kB%s\n", before,
               after, peak, MEMORY_ASSERTED ? "" : " (AddressSanitizer: not asserted)");
        check(ok + busy == CLIENTS * PER_CLIENT && other == 0, "every request got 200 or 503");
        check(ok > 0, "some requests were served");
        check(before > 0 && after > 0 && peak > 0, "memory figures read from /proc");
        if (MEMORY_ASSERTED) {
            check(after - before <= 64 * 1024, "resident set grew by %ld kB", after - before);
            check(peak <= 512 * 1024, "peak resident set %ld kB", peak);
        }
        int rc = st_stop(&s, SIGTERM);
        check(rc == 0, "the server survived the load and stopped cleanly (exit %d)", rc);
    }
    curl_global_cleanup();
    return test_summary("test_serve_load");
}

#endif
