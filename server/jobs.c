/* The job queue and the one worker thread. The worker owns the server's dalle_ctx_t and
 * runs one generation at a time; connection threads queue jobs and wait on
 * server.changed for them (server_internal.h). A client that goes away cancels its job:
 * before a queued job starts and after every sampled row the worker looks at the
 * client's socket (a peek that sees its end of stream), and the row callback then
 * returns non-zero. */
#include "server/server_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

job_t *job_create(server_t *s, gen_request_t *req, int fd)
{
    job_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    if (req->stream) {
        size_t frame = (size_t)s->info.image_size * s->info.image_size * 3 *
                       (size_t)req->params.n_images * (size_t)req->params.candidates;
        j->frame_slots = frame * (size_t)s->info.grid <= STREAM_FRAMES_MAX ? s->info.grid : 1;
        j->frames = malloc(frame * (size_t)j->frame_slots);
        if (!j->frames) {
            free(j);
            return NULL;
        }
    }
    j->req = *req;
    memset(req, 0, sizeof *req);
    j->refs = 1;
    j->fd = fd;
    j->created = (int64_t)time(NULL);
    j->state = JOB_QUEUED;
    return j;
}

void job_release_locked(job_t *j)
{
    if (!j || --j->refs > 0) return;
    gen_request_free(&j->req);
    dalle_result_free(&j->result);
    free(j->frames);
    free(j);
}

int job_samples(const job_t *j)
{
    return j->req.params.n_images * j->req.params.candidates;
}

uint8_t *job_frame(const server_t *s, const job_t *j, int rows)
{
    size_t frame = (size_t)s->info.image_size * s->info.image_size * 3 * (size_t)job_samples(j);
    return j->frames + (j->frame_slots > 1 ? (size_t)(rows - 1) : 0) * frame;
}

void job_release(server_t *s, job_t *j)
{
    pthread_mutex_lock(&s->lock);
    job_release_locked(j);
    pthread_mutex_unlock(&s->lock);
}

void job_client_gone(server_t *s, job_t *j)
{
    pthread_mutex_lock(&s->lock);
    j->fd = -1;
    pthread_mutex_unlock(&s->lock);
}

/* True when the client has closed its side (or reset it). With s->lock held, so the
 * connection cannot end (and its socket be closed and reused) while we look. A client
 * that sends more (a pipelined request) is still there. */
static int client_left_locked(const job_t *j)
{
    if (j->fd < 0) return 1;
    char byte;
    ssize_t got = recv(j->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0) return 1;
    return got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* Jobs ahead of each waiting one, after the queue or the running job changed. */
static void renumber_locked(server_t *s)
{
    int ahead = s->running ? 1 : 0;
    for (job_t *j = s->head; j; j = j->next) j->ahead = ahead++;
}

int jobs_submit(server_t *s, job_t *j, api_error_t *e)
{
    pthread_mutex_lock(&s->lock);
    if (s->stopping || s->waiting >= s->opt.queue) {
        int stopping = s->stopping;
        /* a guess at when a place frees up: the jobs ahead at the mean job time */
        double wait = s->mean_seconds * (s->waiting + (s->running ? 1 : 0));
        pthread_mutex_unlock(&s->lock);
        if (stopping) {
            api_fail(e, 503, NULL, "the server is shutting down");
            e->code = "shutting_down";
        } else {
            api_fail(e, 503, NULL, "the queue is full (%d jobs wait); try again later",
                     s->opt.queue);
            e->code = "queue_full";
            e->retry_after = wait < 1 ? 1 : wait > 3600 ? 3600 : (int)ceil(wait);
        }
        return -1;
    }
    j->id = ++s->next_id;
    j->refs++;
    j->next = NULL;
    if (s->tail) s->tail->next = j;
    else s->head = j;
    s->tail = j;
    s->waiting++;
    renumber_locked(s);
    int ahead = j->ahead;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    char best_of[32] = "";
    if (j->req.params.candidates > 1)
        snprintf(best_of, sizeof best_of, ", best of %d", j->req.params.candidates);
    server_log(s, "job %lu: queued, %d ahead (n %d%s, seed %lld%s)", j->id, ahead,
               j->req.params.n_images, best_of, (long long)j->req.params.seed,
               j->req.stream ? ", stream" : "");
    return 0;
}

/* ---------------------------------------------------------------- the worker */

/* Tests and screenshots: while the file named by $DALLEC_SERVE_TEST_HOLD exists, a job
 * waits after each of its rows from row R on (R: the number the file holds, 0 when it
 * holds none), so a test can keep a job running while it fills the queue or hangs up,
 * or catch the page with an image half drawn. */
static int held(const char *path, int rows)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return 0;
    int from = 0;
    if (fscanf(f, "%d", &from) != 1) from = 0;
    fclose(f);
    return rows >= from;
}

typedef struct {
    server_t *s;
    job_t *j;
    int row;
} run_t;

static int on_row(const dalle_row_t *r, void *user)
{
    run_t *run = user;
    server_t *s = run->s;
    job_t *j = run->j;
    pthread_mutex_lock(&s->lock);
    if (j->frames && r->images) {
        uint8_t *frame = job_frame(s, j, r->row + 1);
        size_t px = (size_t)r->images[0].w * r->images[0].h * 3;
        for (int i = 0; i < r->n_images; i++) memcpy(frame + i * px, r->images[i].rgb, px);
    }
    j->rows_done = r->row + 1;
    run->row = r->row + 1;
    pthread_cond_broadcast(&s->changed);
    int left = client_left_locked(j);
    pthread_mutex_unlock(&s->lock);
    while (!left && held(s->hold_path, run->row)) {
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        pthread_mutex_lock(&s->lock);
        left = client_left_locked(j);
        pthread_mutex_unlock(&s->lock);
    }
    return left;
}

static void run_job(server_t *s, job_t *j)
{
    run_t run = {s, j, 0};
    dalle_params_t p = j->req.params;
    p.partial_images = j->req.stream;
    dalle_result_t result;
    char err[DALLE_ERR_SIZE] = "";
    int st = dalle_generate(s->ctx, j->req.prompt, &p, on_row, &run, &result, err);

    pthread_mutex_lock(&s->lock);
    j->status = st;
    snprintf(j->err, sizeof j->err, "%s", err);
    if (st == DALLE_OK) {
        j->result = result;
        /* a running mean that follows the recent jobs */
        s->mean_seconds = 0.8 * s->mean_seconds + 0.2 * result.seconds;
    }
    j->state = JOB_DONE;
    s->running = NULL;
    renumber_locked(s);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);

    if (st == DALLE_OK)
        server_log(s, "job %lu: %d image%s, seed %lld, %.2f s%s", j->id, result.n_images,
                   result.n_images == 1 ? "" : "s", (long long)result.seed, result.seconds,
                   result.prompt_kept < result.prompt_tokens ? " (prompt cut)" : "");
    else if (st == DALLE_CANCELLED)
        server_log(s, "job %lu: cancelled after row %d of %d: the client went away", j->id,
                   run.row, s->info.grid);
    else server_log(s, "job %lu: failed: %s", j->id, err);
}

static void *worker_main(void *arg)
{
    server_t *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->changed, &s->lock);
        job_t *j = s->head;
        if (!j) break; /* stopping, and jobs_stop has refused what waited */
        s->head = j->next;
        if (!s->head) s->tail = NULL;
        s->waiting--;
        j->next = NULL;
        if (client_left_locked(j)) {
            j->status = DALLE_CANCELLED;
            j->state = JOB_DONE;
            renumber_locked(s);
            pthread_cond_broadcast(&s->changed);
            server_log(s, "job %lu: dropped from the queue: the client went away", j->id);
        } else {
            j->state = JOB_RUNNING;
            s->running = j;
            renumber_locked(s);
            pthread_cond_broadcast(&s->changed);
            pthread_mutex_unlock(&s->lock);
            run_job(s, j);
            pthread_mutex_lock(&s->lock);
        }
        job_release_locked(j);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int jobs_start(server_t *s, char err[DALLE_ERR_SIZE])
{
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
        snprintf(err, DALLE_ERR_SIZE, "cannot start the worker thread");
        return -1;
    }
    s->worker_started = 1;
    return 0;
}

void jobs_stop(server_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    job_t *j = s->head;
    s->head = s->tail = NULL;
    s->waiting = 0;
    while (j) {
        job_t *next = j->next;
        j->status = JOB_STOPPED;
        j->state = JOB_DONE;
        job_release_locked(j);
        j = next;
    }
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    if (s->worker_started) pthread_join(s->worker, NULL);
    s->worker_started = 0;
}
