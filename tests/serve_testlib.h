/* Helpers shared by tests/test_serve_*.c: `dalle-c serve` started as a child process on
 * a free port (--port 0; the port is read from its log) with a tiny model
 * (tests/generate_testlib.h), HTTP through libcurl, replies parsed with jansson, base64,
 * server-sent events, and the server's memory from /proc. The tests need the server
 * and libcurl (CMakeLists.txt defines DALLEC_TEST_CURL); without them they skip.
 * Waits are bounded by generous limits that only keep a broken server from hanging
 * the suite; nothing asserts on time. Static functions: each test is one program. */
#ifndef DALLEC_SERVE_TESTLIB_H
#define DALLEC_SERVE_TESTLIB_H

#include "tests/generate_testlib.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ST_HANG_LIMIT_S 120 /* a server that takes longer than this is broken */

typedef struct {
    pid_t pid;
    int port;
    char log[640];
    char base[64];   /* http://127.0.0.1:PORT */
} st_server_t;

static inline void st_sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
}

/* The whole log, malloc'ed ("" when unreadable). */
static inline char *st_log_text(const st_server_t *s)
{
    size_t n = 0;
    unsigned char *text = gt_read_file(s->log, &n);
    char *out = malloc(n + 1);
    if (!out) exit(1);
    if (text) memcpy(out, text, n);
    out[text ? n : 0] = 0;
    free(text);
    return out;
}

static inline int st_log_has(const st_server_t *s, const char *needle)
{
    char *text = st_log_text(s);
    int has = strstr(text, needle) != NULL;
    free(text);
    return has;
}

/* Waits until the log holds needle; 0, or -1 (counted as a failure) after the limit. */
static inline int st_wait_log(const st_server_t *s, const char *needle)
{
    for (int waited = 0; waited < ST_HANG_LIMIT_S * 1000; waited += 20) {
        if (st_log_has(s, needle)) return 0;
        st_sleep_ms(20);
    }
    check(0, "the server's log never said '%s'", needle);
    return -1;
}

/* What every server test starts from: the tiny model, and the hold file's path with the
 * environment entry that names it to the server. */
typedef struct {
    char model[600], hold[600], env[700];
} st_files_t;

/* Writes the model into the test's scratch folder and initialises libcurl. 0, or -1
 * (counted as a failure). */
static inline int st_setup(st_files_t *f)
{
    snprintf(f->model, sizeof f->model, "%s/model.dalle", test_tmpdir());
    snprintf(f->hold, sizeof f->hold, "%s/hold", test_tmpdir());
    snprintf(f->env, sizeof f->env, "DALLEC_SERVE_TEST_HOLD=%s", f->hold);
    if (gt_write_model(f->model, 7)) return -1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

/* Starts $DALLEC_BIN serve -m model --port 0 [extra ...] with env (NAME=VALUE or NULL)
 * added to its environment. 0, or -1 after counting a failure. */
static inline int st_start(st_server_t *s, const char *model, const char *const *extra,
                           const char *env)
{
    static int count;
    memset(s, 0, sizeof *s);
    snprintf(s->log, sizeof s->log, "%s/serve-%d.log", test_tmpdir(), ++count);
    const char *bin = getenv("DALLEC_BIN");
    if (!check(bin != NULL, "DALLEC_BIN is not set")) return -1;
    const char *argv[32] = {bin, "serve", "-m", model, "--port", "0"};
    int argc = 6;
    for (int i = 0; extra && extra[i] && argc < 31; i++) argv[argc++] = extra[i];
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        if (env) putenv((char *)env);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    if (!check(pid > 0, "fork: %s", strerror(errno))) return -1;
    s->pid = pid;
    for (int waited = 0; waited < ST_HANG_LIMIT_S * 1000; waited += 20) {
        char *text = st_log_text(s);
        const char *at = strstr(text, "listening on http://127.0.0.1:");
        if (at) s->port = atoi(at + strlen("listening on http://127.0.0.1:"));
        free(text);
        if (s->port > 0) {
            snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char *log = st_log_text(s);
            check(0, "the server exited at start:\n%s", log);
            free(log);
            s->pid = 0;
            return -1;
        }
        st_sleep_ms(20);
    }
    check(0, "the server did not say where it listens");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    s->pid = 0;
    return -1;
}

/* Sends sig and waits for the server to exit: its exit status, or -1 when it died by a
 * signal (or did not exit within the limit, then it is killed). */
static inline int st_stop(st_server_t *s, int sig)
{
    if (s->pid <= 0) return -1;
    kill(s->pid, sig);
    int st = 0;
    for (int waited = 0; waited < ST_HANG_LIMIT_S * 1000; waited += 20) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        st_sleep_ms(20);
    }
    check(0, "the server did not stop within %d s", ST_HANG_LIMIT_S);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

/* kB of a /proc/PID/status line: "VmRSS:" now, "VmHWM:" the peak. -1 if unreadable. */
static inline long st_memory_kb(const st_server_t *s, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0) kb = atol(line + strlen(field));
    fclose(f);
    return kb;
}

/* ---------------------------------------------------------------- HTTP */

typedef struct {
    long status;              /* 0: no reply (the transfer failed) */
    char *body;               /* NUL-terminated */
    size_t len;
    char retry_after[32];     /* the Retry-After header, "" when none */
    char content_type[96];
    CURLcode curl;
    /* streams: abort (hang up) once the body holds this text */
    const char *hang_up_after;
    /* and/or when this flag turns non-zero (checked as data comes and periodically) */
    volatile int *hang_up_flag;
    volatile int *got_data;   /* set non-zero once the first bytes came */
} st_reply_t;

static inline size_t st_on_body(char *data, size_t size, size_t n, void *user)
{
    st_reply_t *r = user;
    size_t bytes = size * n;
    char *bigger = realloc(r->body, r->len + bytes + 1);
    if (!bigger) return 0;
    r->body = bigger;
    memcpy(r->body + r->len, data, bytes);
    r->len += bytes;
    r->body[r->len] = 0;
    if (r->got_data) *r->got_data = 1;
    if (r->hang_up_after && strstr(r->body, r->hang_up_after)) return 0;
    if (r->hang_up_flag && *r->hang_up_flag) return 0;
    return bytes;
}

static inline size_t st_on_header(char *line, size_t size, size_t n, void *user)
{
    st_reply_t *r = user;
    size_t bytes = size * n;
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)(bytes < 255 ? bytes : 255), line);
    text[strcspn(text, "\r\n")] = 0;
    if (strncasecmp(text, "Retry-After:", 12) == 0)
        snprintf(r->retry_after, sizeof r->retry_after, "%s", text + 12 + strspn(text + 12, " "));
    if (strncasecmp(text, "Content-Type:", 13) == 0)
        snprintf(r->content_type, sizeof r->content_type, "%s", text + 13 + strspn(text + 13, " "));
    return bytes;
}

static inline int st_on_progress(void *user, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    st_reply_t *r = user;
    return r->hang_up_flag && *r->hang_up_flag;
}

/* One request. body may be NULL (none); header is one more header line ("Name: value")
 * or NULL; timeout_ms 0 means the hang limit. r->status is 0 when no reply came. */
static inline void st_request(const st_server_t *s, const char *method, const char *path,
                              const char *body, size_t body_len, const char *header,
                              long timeout_ms, st_reply_t *r)
{
    r->status = 0;
    r->body = NULL;
    r->len = 0;
    r->retry_after[0] = r->content_type[0] = 0;
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    CURL *c = curl_easy_init();
    if (!c) exit(1);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    if (header) headers = curl_slist_append(headers, header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, st_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, st_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, st_on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : ST_HANG_LIMIT_S * 1000L);
    r->curl = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    r->status = status;
    if (!r->body) r->body = calloc(1, 1);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
}

static inline void st_post(const st_server_t *s, const char *json, st_reply_t *r)
{
    st_request(s, "POST", "/v1/images/generations", json, strlen(json), NULL, 0, r);
}

static inline void st_reply_free(st_reply_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* A POST in a thread of its own, for requests that wait while the test goes on. */
typedef struct {
    const st_server_t *s;
    const char *body;
    st_reply_t r;
    pthread_t thread;
} st_async_t;

static inline void *st_async_main(void *arg)
{
    st_async_t *a = arg;
    st_post(a->s, a->body, &a->r);
    return NULL;
}

/* r's hang-up fields may be set in *a before the call. */
static inline void st_async_start(st_async_t *a, const st_server_t *s, const char *body)
{
    a->s = s;
    a->body = body;
    if (pthread_create(&a->thread, NULL, st_async_main, a) != 0) exit(1);
}

static inline void st_async_join(st_async_t *a)
{
    pthread_join(a->thread, NULL);
}

/* Waits for *flag to turn non-zero; 0, or -1 (a failure) after the limit. */
static inline int st_wait_flag(volatile int *flag, const char *what)
{
    for (int waited = 0; waited < ST_HANG_LIMIT_S * 1000; waited += 10) {
        if (*flag) return 0;
        st_sleep_ms(10);
    }
    check(0, "never: %s", what);
    return -1;
}

/* The server's jobs wait after each row from row `from` on while this file exists
 * ($DALLEC_SERVE_TEST_HOLD, server/jobs.c). */
static inline void st_hold(const char *path, int from)
{
    char text[16];
    snprintf(text, sizeof text, "%d\n", from);
    test_write_file(path, text);
}

/* The reply's JSON (NULL, counted as a failure, when it is not JSON). */
static inline json_t *st_json(const st_reply_t *r)
{
    json_error_t e;
    json_t *v = json_loadb(r->body, r->len, 0, &e);
    check(v != NULL, "reply is not JSON (%s): %.200s", e.text, r->body);
    return v;
}

/* obj[key] as a string, "" when absent or not a string */
static inline const char *st_str(const json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? v : "";
}

/* error.param and error.type of an error reply, "" when absent */
static inline void st_error_fields(const st_reply_t *r, char *param, char *type, size_t n)
{
    param[0] = type[0] = 0;
    json_error_t e;
    json_t *v = json_loadb(r->body, r->len, 0, &e);
    json_t *err = json_object_get(v, "error");
    const char *p = json_string_value(json_object_get(err, "param"));
    const char *t = json_string_value(json_object_get(err, "type"));
    snprintf(param, n, "%s", p ? p : "");
    snprintf(type, n, "%s", t ? t : "");
    json_decref(v);
}

/* ---------------------------------------------------------------- payloads */

static inline unsigned char *st_base64_decode(const char *text, size_t *n)
{
    size_t len = strlen(text);
    unsigned char *out = malloc(len / 4 * 3 + 3);
    if (!out) return NULL;
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < len && text[i] != '='; i++) {
        const char c = text[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
              : c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (unsigned char)(acc >> bits);
        }
    }
    *n = k;
    return out;
}

/* The events of a stream's body, in order: names[i] and their parsed data (a JSON array
 * of objects with "event" added), the caller decrefs. */
static inline json_t *st_events(const char *body)
{
    json_t *list = json_array();
    const char *p = body;
    for (;;) {
        const char *end = strstr(p, "\n\n");
        if (!end) break;
        char name[96] = "message";
        const char *ev = strstr(p, "event: ");
        if (ev && ev < end) sscanf(ev + 7, "%95[^\n]", name);
        const char *data = strstr(p, "data: ");
        if (data && data < end) {
            json_error_t e;
            json_t *v = json_loadb(data + 6, (size_t)(end - data - 6), 0, &e);
            if (check(v != NULL, "event %s: data is not JSON (%s)", name, e.text)) {
                json_object_set_new(v, "event", json_string(name));
                json_array_append_new(list, v);
            }
        }
        p = end + 2;
    }
    return list;
}

#endif
