/* What the files of server/ share; server/server.h is the folder's surface.
 *   http.c         libmicrohttpd: routing, the key, body limits, responses, event streams
 *   jobs.c         the bounded queue and the one worker thread that runs dalle_generate
 *   api.c          JSON (jansson): requests checked field by field, response bodies,
 *                  the events of a stream, error bodies
 *   server_page.c  generated at build time from server/page/ (server/embed.cmake)
 *
 * Locking: one mutex (server.lock) guards the queue and every job's changing fields; one
 * condition variable (server.changed) is broadcast on any change of them. */
#ifndef DALLEC_SERVER_INTERNAL_H
#define DALLEC_SERVER_INTERNAL_H

#include "server/server.h"

#include <pthread.h>
#include <stdint.h>

/* ---------------------------------------------------------------- the page */

typedef struct {
    const char *name;          /* file name in server/page/, e.g. "index.html" */
    const unsigned char *data;
    size_t size;
} server_asset_t;

extern const server_asset_t server_assets[]; /* ends with a NULL name */

/* ---------------------------------------------------------------- API errors */

/* An HTTP status with OpenAI's error object {error: {message, type, param, code}}. */
typedef struct {
    int status;                /* 400, 401, 404, 405, 413, 500, 503 */
    const char *type;          /* "invalid_request_error" or "server_error" */
    const char *code;          /* NULL, or e.g. "invalid_api_key", "queue_full" */
    char param[32];            /* the request field at fault; "" for none */
    char message[320];
    int retry_after;           /* seconds, for 503; 0: no Retry-After header */
} api_error_t;

/* Fills e; returns -1 (for `return api_fail(...)`). param may be NULL. */
int api_fail(api_error_t *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The JSON body of e, malloc'ed; NULL when out of memory. */
char *api_error_body(const api_error_t *e);

/* ---------------------------------------------------------------- requests and jobs */

/* A checked POST /v1/images/generations. */
typedef struct {
    char *prompt;              /* owned, valid UTF-8 */
    dalle_params_t params;     /* seed resolved (a random one when none was given) */
    int stream;
} gen_request_t;

void gen_request_free(gen_request_t *r);

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE } job_state_t;

/* status of a job refused because the server is stopping (besides dalle_status) */
#define JOB_STOPPED 100

/* the most a stream keeps of its partial images (job_t.frames) */
#define STREAM_FRAMES_MAX (32u << 20)

typedef struct job {
    struct job *next;          /* in the queue */
    int refs;                  /* holders: the request, the queue and worker, a stream */
    unsigned long id;
    gen_request_t req;
    int64_t created;           /* unix time the request came */
    int fd;                    /* the client's socket while its connection lives, else -1 */
    job_state_t state;
    int ahead;                 /* while queued: jobs that run before this one */
    /* streams: the partial images after each row, in frames[slot][samples][S*S*3] (every
     * candidate of every image: job_samples). With a slot per row (frame_slots == G)
     * every row is sent, even to a client that reads slower than rows come; a batch too
     * big for that (STREAM_FRAMES_MAX) keeps one slot, the latest, and a slow client
     * skips rows. The worker writes a row's slot before publishing rows_done and never
     * again. */
    int rows_done;
    int frame_slots;
    uint8_t *frames;
    /* once JOB_DONE (then read without the lock: nothing changes any more) */
    int status;                /* a dalle_status, or JOB_STOPPED */
    char err[DALLE_ERR_SIZE];
    dalle_result_t result;
} job_t;

struct server {
    server_options_t opt;
    dalle_model_t *model;
    dalle_model_info_t info;
    char size[32];             /* "SxS" */
    dalle_ctx_t *ctx;          /* the worker's */
    struct MHD_Daemon *daemon;
    int port;

    pthread_mutex_t lock;
    pthread_cond_t changed;
    job_t *head, *tail;        /* waiting jobs, in order */
    int waiting;
    job_t *running;
    int stopping;
    int worker_started;
    pthread_t worker;
    unsigned long next_id;
    double mean_seconds;       /* of finished jobs: Retry-After's estimate */
    int in_flight;             /* requests begun and not yet completed */
    const char *hold_path;     /* tests: $DALLEC_SERVE_TEST_HOLD (jobs.c) */
};

/* A request log line (when opt.log is set). */
void server_log(server_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* jobs.c */
int jobs_start(server_t *s, char err[DALLE_ERR_SIZE]);
/* Refuses what waits (JOB_STOPPED), lets the running job finish, joins the worker. */
void jobs_stop(server_t *s);
/* A new job holding req (moved in: *req is zeroed) for the client on socket fd; one
 * reference, the caller's. NULL when out of memory. */
job_t *job_create(server_t *s, gen_request_t *req, int fd);
/* Queues j (taking a reference for the worker), or -1 with a 503 in e when the queue is
 * full or the server is stopping. */
int jobs_submit(server_t *s, job_t *j, api_error_t *e);
/* Drops a reference; the last frees the job. job_release_locked with s->lock held. */
void job_release(server_t *s, job_t *j);
void job_release_locked(job_t *j);
/* The client's connection is over: its socket is no longer ours to look at. */
void job_client_gone(server_t *s, job_t *j);
/* Samples j draws: n_images x candidates (reranking keeps n_images of them). */
int job_samples(const job_t *j);
/* The partial images after row `rows` (1..G) in j's frames: [job_samples][S*S*3]. */
uint8_t *job_frame(const server_t *s, const job_t *j, int rows);

/* api.c */
/* Checks a request body field by field; 0, or -1 with a 400 naming the field in e. */
int api_parse_generation(const server_t *s, const char *body, size_t len, gen_request_t *out,
                         api_error_t *e);
char *api_models_body(const server_t *s);      /* GET /v1/models */
char *api_model_body(const server_t *s);       /* GET /v1/models/{id} */
/* The reply to a finished non-streaming job: {created, data: [{b64_json, seed, ...}]}.
 * NULL with e set (500) when a PNG cannot be made. */
char *api_images_body(const server_t *s, const job_t *j, api_error_t *e);
/* Server-sent events, "event: NAME\ndata: JSON\n\n", malloc'ed (NULL: out of memory). */
char *api_event_queued(const job_t *j, int ahead);
/* sample k of j's partial images, rgb (after rows of G rows): candidate k / n of image
 * k % n, as dalle_generate numbers them */
char *api_event_partial(const server_t *s, const job_t *j, int k, const uint8_t *rgb, int rows);
char *api_event_completed(const server_t *s, const job_t *j, int i);
char *api_event_error(const api_error_t *e);
/* A failed or refused job as an API error. */
void api_job_error(const job_t *j, api_error_t *e);

#endif
