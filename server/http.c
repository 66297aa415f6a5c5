/* HTTP through libmicrohttpd: a thread per connection, so a connection thread may wait
 * for its job (or for the next rows of a stream) on server.changed. Routing, the API
 * key, the body limit, the responses, and the event stream of "stream": true. */
#include "server/server_internal.h"

#include <microhttpd.h>

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STREAM_BLOCK (32 * 1024)
#define IDLE_TIMEOUT_S 60   /* a connection with nothing to do is closed after this */
#define STOP_GRACE_S 10     /* how long server_stop waits for replies still being sent */

server_options_t server_options_default(void)
{
    return (server_options_t){
        .host = "127.0.0.1", .port = 8080, .queue = 8, .api_key = NULL, .threads = 0,
        .max_body = 64 * 1024, .log = NULL,
    };
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

void server_log(server_t *s, const char *fmt, ...)
{
    if (!s->opt.log) return;
    char when[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(s->opt.log, "%s %s\n", when, line);
    fflush(s->opt.log);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    server_t *s = cls;
    if (!s->opt.log) return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    server_log(s, "libmicrohttpd: %s", line);
}

/* ---------------------------------------------------------------- requests */

typedef struct {
    server_t *s;
    char method[16], path[96];   /* for the log */
    int status;                  /* of the response queued; 0 before */
    double t0;
    job_t *job;                  /* a generation's job: the request's reference */
    char *body;
    size_t len, cap;
    int too_big, no_memory;      /* the body: over max_body; could not be kept */
} request_t;

static enum MHD_Result queue(request_t *rq, struct MHD_Connection *c, int status,
                             struct MHD_Response *r)
{
    if (!r) return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    rq->status = status;
    return ok;
}

/* body (malloc'ed, taken) as JSON */
static struct MHD_Response *json_response(char *body)
{
    if (!body) return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body,
                                                             MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return r;
}

static enum MHD_Result reply_json(request_t *rq, struct MHD_Connection *c, int status, char *body)
{
    return queue(rq, c, status, json_response(body));
}

static enum MHD_Result reply_error(request_t *rq, struct MHD_Connection *c, const api_error_t *e)
{
    static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                              "\"server_error\",\"param\":null,\"code\":null}}";
    char *body = api_error_body(e);
    struct MHD_Response *r = body ? json_response(body)
                                  : MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom,
                                                                    MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    if (e->status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (e->retry_after > 0) {
        char secs[16];
        snprintf(secs, sizeof secs, "%d", e->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    return queue(rq, c, e->status, r);
}

static enum MHD_Result fail(request_t *rq, struct MHD_Connection *c, int status,
                            const char *param, const char *message)
{
    api_error_t e;
    api_fail(&e, status, param, "%s", message);
    return reply_error(rq, c, &e);
}

static enum MHD_Result not_allowed(request_t *rq, struct MHD_Connection *c, const char *allow)
{
    api_error_t e;
    api_fail(&e, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, "%s is not allowed here: use %s", rq->method,
             allow);
    char *body = api_error_body(&e);
    struct MHD_Response *r = json_response(body);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    return queue(rq, c, e.status, r);
}

static enum MHD_Result too_large(request_t *rq, struct MHD_Connection *c)
{
    char msg[96];
    snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", rq->s->opt.max_body);
    return fail(rq, c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, msg);
}

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && strcmp(dot, ".html") == 0) return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0) return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0) return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".svg") == 0) return "image/svg+xml";
    if (dot && strcmp(dot, ".png") == 0) return "image/png";
    return "application/octet-stream";
}

static enum MHD_Result reply_asset(request_t *rq, struct MHD_Connection *c,
                                   const server_asset_t *a)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(a->name));
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    /* the page's own files and the images it makes (data: and blob: URLs), nothing else */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                            "base-uri 'none'; frame-ancestors 'none'");
    return queue(rq, c, MHD_HTTP_OK, r);
}

static const server_asset_t *find_asset(const char *url)
{
    const char *name = strcmp(url, "/") == 0 ? "index.html" : url + 1;
    for (const server_asset_t *a = server_assets; a->name; a++)
        if (strcmp(a->name, name) == 0) return a;
    return NULL;
}

/* "Authorization: Bearer KEY", the key compared in time that depends on its length only */
static int authorized(const server_t *s, struct MHD_Connection *c)
{
    const char *key = s->opt.api_key;
    if (!key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    const char *given = h + 7;
    size_t n = strlen(given), m = strlen(key);
    unsigned char diff = n != m;
    for (size_t i = 0; i < m; i++) diff |= (unsigned char)(key[i] ^ (i < n ? given[i] : 0));
    return diff == 0;
}

static int is_get(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* The first call of a request, its headers read. Queues a response, or returns MHD_YES
 * with nothing queued to receive a generation's body. */
static enum MHD_Result begin(server_t *s, struct MHD_Connection *c, request_t *rq,
                             const char *url)
{
    const char *method = rq->method;
    if (strncmp(url, "/v1/", 4) != 0) {
        const server_asset_t *a = find_asset(url);
        if (!a) return fail(rq, c, MHD_HTTP_NOT_FOUND, NULL, "no such page");
        if (!is_get(method)) return not_allowed(rq, c, "GET, HEAD");
        return reply_asset(rq, c, a);
    }
    int models = strcmp(url, "/v1/models") == 0;
    int model = strncmp(url, "/v1/models/", 11) == 0;
    int generate = strcmp(url, "/v1/images/generations") == 0;
    if (!models && !model && !generate)
        return fail(rq, c, MHD_HTTP_NOT_FOUND, NULL,
                    "no such endpoint (there are GET /v1/models and POST /v1/images/generations)");
    if (!authorized(s, c)) {
        api_error_t e;
        api_fail(&e, MHD_HTTP_UNAUTHORIZED, NULL,
                 "a valid API key is needed: send the header 'Authorization: Bearer KEY'");
        e.code = "invalid_api_key";
        return reply_error(rq, c, &e);
    }
    if (models || model) {
        if (!is_get(method)) return not_allowed(rq, c, "GET, HEAD");
        if (models) return reply_json(rq, c, MHD_HTTP_OK, api_models_body(s));
        if (strcmp(url + 11, dalle_model_name(s->model)) != 0)
            return fail(rq, c, MHD_HTTP_NOT_FOUND, "model", "no such model");
        return reply_json(rq, c, MHD_HTTP_OK, api_model_body(s));
    }
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) return not_allowed(rq, c, "POST");
    const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > s->opt.max_body)
        return too_large(rq, c); /* answered before the body is sent (or read) */
    return MHD_YES;
}

static void take_body(request_t *rq, const char *data, size_t n)
{
    if (rq->no_memory) return;
    if (rq->too_big || rq->len + n > rq->s->opt.max_body) {
        rq->too_big = 1; /* the rest is read and dropped; the reply is 413 */
        return;
    }
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 4096;
        while (cap < rq->len + n + 1) cap *= 2;
        char *bigger = realloc(rq->body, cap);
        if (!bigger) {
            rq->no_memory = 1;
            return;
        }
        rq->body = bigger;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
}

/* ---------------------------------------------------------------- event streams */

typedef struct {
    server_t *s;
    job_t *j;                    /* the stream's reference */
    char *buf;                   /* events not yet handed to libmicrohttpd */
    size_t len, off;
    int rows_sent, ahead_sent, finished;
    uint8_t *snapshot;           /* one slot's partial images, copied out under the lock */
} stream_t;

/* Appends ev (malloc'ed, taken) to st->buf; -1 when ev is NULL or memory runs out. */
static int append_event(stream_t *st, char *ev)
{
    if (!ev) return -1;
    size_t n = strlen(ev);
    char *bigger = realloc(st->buf, st->len + n + 1);
    if (!bigger) {
        free(ev);
        return -1;
    }
    memcpy(bigger + st->len, ev, n + 1);
    st->buf = bigger;
    st->len += n;
    free(ev);
    return 0;
}

/* Waits for news of the job and turns it into events: where it is in the queue, the
 * partial images of each row (job_t.frames), then the finished PNGs or an error. 0, or
 * -1 when out of memory. */
static int stream_next(stream_t *st)
{
    server_t *s = st->s;
    job_t *j = st->j;
    const int n = j->req.params.n_images, samples = job_samples(j);
    const size_t px = (size_t)s->info.image_size * s->info.image_size * 3;
    const int every_row = j->frame_slots > 1;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (j->rows_done > st->rows_sent && (every_row || j->state == JOB_RUNNING)) break;
        if (j->state == JOB_DONE) break;
        if (j->state == JOB_QUEUED && j->ahead != st->ahead_sent) break;
        pthread_cond_wait(&s->changed, &s->lock);
    }
    job_state_t state = j->state;
    int ahead = j->ahead;
    /* the next row with a slot per row (its slot no longer changes), else the latest */
    int rows = every_row ? st->rows_sent + 1 : j->rows_done;
    int send_rows = j->rows_done > st->rows_sent && (every_row || state == JOB_RUNNING);
    if (send_rows) memcpy(st->snapshot, job_frame(s, j, rows), (size_t)samples * px);
    pthread_mutex_unlock(&s->lock);

    if (send_rows) {
        st->rows_sent = rows;
        for (int k = 0; k < samples; k++)
            if (append_event(st, api_event_partial(s, j, k, st->snapshot + k * px, rows)))
                return -1;
        return 0;
    }
    if (state == JOB_QUEUED) {
        st->ahead_sent = ahead;
        return append_event(st, api_event_queued(j, ahead));
    }
    st->finished = 1;
    if (j->status != DALLE_OK) {
        api_error_t e;
        api_job_error(j, &e);
        return append_event(st, api_event_error(&e));
    }
    for (int i = 0; i < n; i++)
        if (append_event(st, api_event_completed(s, j, i))) return -1;
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    stream_t *st = cls;
    while (st->off == st->len) {
        free(st->buf);
        st->buf = NULL;
        st->len = st->off = 0;
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        if (stream_next(st)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->len - st->off < max ? st->len - st->off : max;
    memcpy(out, st->buf + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_t *st = cls;
    job_client_gone(st->s, st->j);
    job_release(st->s, st->j);
    free(st->buf);
    free(st->snapshot);
    free(st);
}

static enum MHD_Result reply_stream(request_t *rq, struct MHD_Connection *c, job_t *j)
{
    server_t *s = rq->s;
    stream_t *st = calloc(1, sizeof *st);
    size_t px = (size_t)s->info.image_size * s->info.image_size * 3;
    if (st) st->snapshot = malloc((size_t)job_samples(j) * px);
    if (!st || !st->snapshot) {
        free(st);
        return fail(rq, c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
    }
    st->s = s;
    st->j = j;
    st->ahead_sent = -1;
    pthread_mutex_lock(&s->lock);
    j->refs++;
    pthread_mutex_unlock(&s->lock);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                               stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* to proxies: do not hold events back */
    return queue(rq, c, MHD_HTTP_OK, r);
}

/* ---------------------------------------------------------------- generations */

static enum MHD_Result generate(server_t *s, struct MHD_Connection *c, request_t *rq)
{
    if (rq->too_big) return too_large(rq, c);
    if (rq->no_memory) return fail(rq, c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
    api_error_t e;
    gen_request_t req;
    if (api_parse_generation(s, rq->body ? rq->body : "", rq->len, &req, &e))
        return reply_error(rq, c, &e);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    job_t *j = job_create(s, &req, info ? info->connect_fd : -1);
    if (!j) {
        gen_request_free(&req);
        return fail(rq, c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
    }
    rq->job = j;
    if (jobs_submit(s, j, &e)) return reply_error(rq, c, &e);
    if (j->req.stream) return reply_stream(rq, c, j);

    pthread_mutex_lock(&s->lock);
    while (j->state != JOB_DONE) pthread_cond_wait(&s->changed, &s->lock);
    pthread_mutex_unlock(&s->lock);
    if (j->status != DALLE_OK) {
        api_job_error(j, &e);
        return reply_error(rq, c, &e);
    }
    char *body = api_images_body(s, j, &e);
    return body ? reply_json(rq, c, MHD_HTTP_OK, body) : reply_error(rq, c, &e);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    server_t *s = cls;
    request_t *rq = *con_cls;
    if (!rq) {
        if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
        *con_cls = rq;
        rq->s = s;
        rq->t0 = now_s();
        snprintf(rq->method, sizeof rq->method, "%s", method);
        snprintf(rq->path, sizeof rq->path, "%s", url);
        pthread_mutex_lock(&s->lock);
        s->in_flight++;
        pthread_mutex_unlock(&s->lock);
        return begin(s, c, rq, url);
    }
    if (*upload_size) {
        take_body(rq, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return generate(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    server_t *s = cls;
    request_t *rq = *con_cls;
    if (!rq) return;
    if (rq->job) {
        job_client_gone(s, rq->job);
        server_log(s, "%s %s %d %.3f s (job %lu)%s", rq->method, rq->path, rq->status,
                   now_s() - rq->t0, rq->job->id,
                   why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : ", connection lost");
        job_release(s, rq->job);
    } else {
        server_log(s, "%s %s %d %.3f s", rq->method, rq->path, rq->status, now_s() - rq->t0);
    }
    free(rq->body);
    free(rq);
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    s->in_flight--;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* ---------------------------------------------------------------- start and stop */

int server_start(server_t **out, dalle_model_t *model, const server_options_t *opt,
                 char err[DALLE_ERR_SIZE])
{
    *out = NULL;
    if (opt->queue < 1 || opt->port < 0 || opt->port > 65535 || !opt->host || !*opt->host) {
        snprintf(err, DALLE_ERR_SIZE, "bad server options (queue %d, port %d)", opt->queue,
                 opt->port);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *addrs = NULL;
    int gai = getaddrinfo(opt->host, NULL, &hints, &addrs);
    if (gai != 0 || !addrs) {
        snprintf(err, DALLE_ERR_SIZE, "--host %s: %s", opt->host,
                 gai ? gai_strerror(gai) : "no address");
        return -1;
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    memcpy(&addr, addrs->ai_addr, addrs->ai_addrlen);
    freeaddrinfo(addrs);
    int v6 = addr.ss_family == AF_INET6;
    if (v6) ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)opt->port);
    else ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)opt->port);

    server_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, DALLE_ERR_SIZE, "out of memory");
        return -1;
    }
    s->opt = *opt;
    s->model = model;
    dalle_model_info(model, &s->info);
    snprintf(s->size, sizeof s->size, "%dx%d", s->info.image_size, s->info.image_size);
    s->mean_seconds = 1.0;
    s->hold_path = getenv("DALLEC_SERVE_TEST_HOLD");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    json_object_seed(0); /* before any thread makes a JSON object */
    if (dalle_ctx_create(&s->ctx, model, err) || jobs_start(s, err)) {
        server_stop(s);
        return -1;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    errno = 0;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)opt->port, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first, so it sees every message */
        MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVER_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        int e = errno;
        snprintf(err, DALLE_ERR_SIZE, "cannot listen on %s port %d%s%s", opt->host, opt->port,
                 e ? ": " : "", e ? strerror(e) : "");
        server_stop(s);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : opt->port;
    *out = s;
    return 0;
}

int server_port(const server_t *s)
{
    return s->port;
}

void server_stop(server_t *s)
{
    if (!s) return;
    jobs_stop(s);
    if (s->daemon) {
        MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
        /* replies being written (a stream's last images) get a few seconds */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += STOP_GRACE_S;
        pthread_mutex_lock(&s->lock);
        while (s->in_flight > 0 &&
               pthread_cond_timedwait(&s->changed, &s->lock, &until) != ETIMEDOUT) {
        }
        pthread_mutex_unlock(&s->lock);
        MHD_stop_daemon(s->daemon);
        if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    }
    dalle_ctx_free(s->ctx);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
