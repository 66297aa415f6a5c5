/* server.h: `dalle-c serve`, an HTTP server over dalle.h (docs/SERVER.md).
 *
 *   GET  /                         the page (server/page/, embedded at build time)
 *   GET  /v1/models                the model, in OpenAI's list shape
 *   POST /v1/images/generations    OpenAI's images request and response; "stream": true
 *                                  sends server-sent events, a partial image per sampled row
 *
 * Threads: libmicrohttpd runs a thread per connection (bounded by
 * SERVER_MAX_CONNECTIONS); one worker thread owns the only dalle_ctx_t and runs the jobs
 * one at a time from a bounded queue. A connection thread waits for its job (or for
 * the next rows of it) on a condition variable. The server lives in the dalle-c binary
 * only: libdallec never links libmicrohttpd or jansson.
 *
 * Signals are the caller's: block SIGINT and SIGTERM before server_start (its threads
 * inherit the mask), wait for them (sigwait), then call server_stop. */
#ifndef DALLEC_SERVER_H
#define DALLEC_SERVER_H

#include "pipeline/dalle.h"

#include <stddef.h>
#include <stdio.h>

#define SERVER_MAX_CONNECTIONS 64
#define SERVER_MAX_IMAGES 10 /* n per request, as OpenAI's images API */

typedef struct {
    const char *host;      /* address to bind: "127.0.0.1" (default), "::1", "0.0.0.0", a name */
    int port;              /* 8080; 0: any free port (server_port tells which) */
    int queue;             /* jobs that may wait while one runs; a full queue answers 503 (8) */
    const char *api_key;   /* NULL: none; else requests to /v1/ need "Authorization: Bearer KEY" */
    int threads;           /* per generation, as dalle_params_t.threads (0: as is) */
    size_t max_body;       /* request bodies over this many bytes get 413 (64 KiB) */
    FILE *log;             /* a line per request and per job; NULL: silent (stderr) */
} server_options_t;

server_options_t server_options_default(void);

typedef struct server server_t;

/* Starts serving model (which must outlive the server) with a context of its own. 0, or
 * -1 with one line in err (the address cannot be bound, out of memory, ...). */
int server_start(server_t **out, dalle_model_t *model, const server_options_t *opt,
                 char err[DALLE_ERR_SIZE]);
/* The port bound (useful with port 0). */
int server_port(const server_t *s);
/* Stops taking requests, answers queued jobs 503, lets the running job finish and its
 * client be answered (waiting for responses in flight a few seconds at most), then
 * frees everything. */
void server_stop(server_t *s);

#endif
