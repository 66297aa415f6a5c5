/* dalle-c serve's latency over loopback HTTP: from sending a streaming request to the
 * first partial image (a sampled row; issue 14 wants at most 0.5 s on the default model
 * with an empty queue), and to the last finished PNG. The server runs in this process
 * (server/server.h) on a free port, the client is libcurl; requests go one after the
 * other, so the queue is always empty. Medians of REPS after one warm-up request.
 *   bench-serve [MODEL] [-r REPS] [-n IMAGES] [-t THREADS] [--prompt TEXT]
 * MODEL: default $DALLEC_MODEL, else weights/default.dalle. */
#include "bench/bench_common.h"
#include "pipeline/dalle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(DALLEC_BENCH_CURL)
int main(void)
{
    fprintf(stderr, "bench-serve: built without the server or without libcurl "
                    "(scripts/install-deps.sh installs both)\n");
    return 1;
}
#else
#include "server/server.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <unistd.h>

typedef struct {
    double t0, first_row, done;
    char tail[64];     /* the last bytes seen, so an event name split across reads is found */
    int events;
    size_t bytes;
} timing_t;

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    timing_t *t = user;
    size_t bytes = size * n;
    if (t->first_row == 0) {
        /* look in what came now, together with the end of what came before */
        size_t keep = strlen(t->tail), take = bytes < 4096 ? bytes : 4096;
        char *window = malloc(keep + take + 1);
        if (!window) return 0;
        memcpy(window, t->tail, keep);
        memcpy(window + keep, data, take);
        window[keep + take] = 0;
        if (strstr(window, "event: image_generation.partial_image")) t->first_row = bench_now();
        free(window);
        size_t last = bytes < sizeof t->tail - 1 ? bytes : sizeof t->tail - 1;
        memcpy(t->tail, data + bytes - last, last);
        t->tail[last] = 0;
    }
    t->bytes += bytes;
    return bytes;
}

static int request(const char *url, const char *body, timing_t *t)
{
    memset(t, 0, sizeof *t);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    t->t0 = bench_now();
    CURLcode rc = curl_easy_perform(c);
    t->done = bench_now();
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK || status != 200 || t->first_row == 0) {
        fprintf(stderr, "bench-serve: request failed (curl %d, status %ld)\n", (int)rc, status);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* dalle-c runs with OMP_WAIT_POLICY=PASSIVE (pipeline/main.c): spinning OpenMP
     * threads made a request several times slower on a busy machine. Measure that. */
    if (!getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0)
        execv("/proc/self/exe", argv);
    const char *model_path = getenv("DALLEC_MODEL"), *prompt = "a red heart";
    int reps = 10, n = 1, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) n = atoi(argv[++i]);
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--prompt") == 0 && i + 1 < argc) prompt = argv[++i];
        else if (argv[i][0] != '-') model_path = argv[i];
        else {
            fprintf(stderr, "usage: bench-serve [MODEL] [-r REPS] [-n IMAGES] [-t THREADS] "
                            "[--prompt TEXT]\n");
            return 2;
        }
    }
    if (!model_path || !*model_path) model_path = "weights/default.dalle";
    if (reps < 1 || reps > 1000 || n < 1 || n > SERVER_MAX_IMAGES) {
        fprintf(stderr, "bench-serve: -r 1..1000, -n 1..%d\n", SERVER_MAX_IMAGES);
        return 2;
    }
    char err[DALLE_ERR_SIZE];
    dalle_model_t *model = NULL;
    if (dalle_model_load(&model, model_path, err)) {
        fprintf(stderr, "bench-serve: %s\n", err);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    server_options_t opt = server_options_default();
    opt.port = 0;
    opt.threads = threads;
    server_t *srv = NULL;
    if (server_start(&srv, model, &opt, err)) {
        fprintf(stderr, "bench-serve: %s\n", err);
        dalle_model_free(model);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/images/generations", server_port(srv));
    dalle_model_info_t info;
    dalle_model_info(model, &info);

    double *first = malloc(sizeof(double) * (size_t)reps);
    double *done = malloc(sizeof(double) * (size_t)reps);
    int failed = !first || !done;
    timing_t t;
    for (int r = -1; r < reps && !failed; r++) { /* r = -1: warm-up */
        json_t *req = json_pack("{s:s, s:i, s:i, s:b}", "prompt", prompt, "n", n, "seed", r + 2,
                                "stream", 1);
        char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!body || request(url, body, &t)) failed = 1;
        else if (r >= 0) {
            first[r] = t.first_row - t.t0;
            done[r] = t.done - t.t0;
        }
        free(body);
    }
    if (!failed) {
        double f_min = first[0], f_max = first[0];
        for (int r = 1; r < reps; r++) {
            f_min = first[r] < f_min ? first[r] : f_min;
            f_max = first[r] > f_max ? first[r] : f_max;
        }
        double f = bench_median(first, reps), d = bench_median(done, reps);
        printf("model %s: %dx%d images, %d rows, %zu transformer parameters\n",
               dalle_model_name(model), info.image_size, info.image_size, info.grid,
               info.n_params);
        printf("request to first streamed row: median %.3f s (min %.3f, max %.3f) over %d "
               "requests of %d image%s\n", f, f_min, f_max, reps, n, n == 1 ? "" : "s");
        printf("request to last finished PNG:   median %.3f s\n", d);
    }
    free(first);
    free(done);
    curl_global_cleanup();
    server_stop(srv);
    dalle_model_free(model);
    return failed ? 1 : 0;
}

#endif
