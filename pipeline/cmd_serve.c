/* dalle-c serve: the HTTP server of server/ (docs/SERVER.md) on one model, until SIGINT
 * or SIGTERM. Built when CMake found libmicrohttpd and jansson; a dalle-c built without
 * them says so and how to get them. */
#include "pipeline/args.h"
#include "pipeline/commands.h"
#include "pipeline/dalle.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DALLEC_HAVE_SERVE
#include "server/server.h"

#include <pthread.h>
#endif

#define CMD "dalle-c serve"

static const char *const serve_usage =
    "usage: dalle-c serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [--queue N]\n"
    "                     [--api-key KEY] [-t THREADS] [-q]\n"
    "\n"
    "Serves a web page (GET /) that draws images row by row as they are sampled, and an\n"
    "images API in OpenAI's shape: POST /v1/images/generations (\"stream\": true for\n"
    "server-sent events, a partial image per row), GET /v1/models. docs/SERVER.md has\n"
    "curl examples. One image is generated at a time; others wait in a queue.\n"
    "\n"
    "  -m, --model MODEL  model file (default: as dalle-c \"PROMPT\": $DALLEC_MODEL, then\n"
    "                     the installed or source-tree default.dalle)\n"
    "  --host HOST        address to listen on (default 127.0.0.1: this machine only;\n"
    "                     0.0.0.0 is every interface)\n"
    "  --port PORT        (default 8080; 0 picks a free port, printed at start)\n"
    "  --queue N          requests that may wait while one is generated, 1..10000\n"
    "                     (default 8); beyond that the answer is 503 with Retry-After\n"
    "  --api-key KEY      require 'Authorization: Bearer KEY' on /v1/ (default:\n"
    "                     $DALLEC_API_KEY when set, else no key)\n"
    "  -t, --threads N    threads per generation (default: OMP_NUM_THREADS or all cores)\n"
    "  -q, --quiet        no log line per request\n"
    "\n"
    "Ctrl-C or SIGTERM: waiting requests get 503, the running one finishes, exit 0.\n"
    "Exit status: 0 stopped by a signal, 1 runtime failure (model, address), 2 usage.\n";

#ifndef DALLEC_HAVE_SERVE

int cmd_serve(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(serve_usage, stdout);
        return 0;
    }
    fprintf(stderr, CMD ": this dalle-c was built without the server (CMake found no "
                    "libmicrohttpd or jansson, or was given -DDALLEC_SERVE=OFF). Install them "
                    "(scripts/install-deps.sh, or apt-get install libmicrohttpd-dev "
                    "libjansson-dev), then configure and build again\n");
    return 1;
}

#else

typedef struct {
    const char *model, *host, *api_key;
    int port, queue, threads, quiet;
} serve_opts_t;

/* An API key goes into a header: printable ASCII, no spaces. */
static int key_ok(const char *key)
{
    if (!*key) return 0;
    for (const unsigned char *c = (const unsigned char *)key; *c; c++)
        if (*c <= ' ' || *c >= 0x7f) return 0;
    return 1;
}

/* 0, or the exit status (2) after printing why. */
static int parse(serve_opts_t *o, int argc, char **argv)
{
    server_options_t d = server_options_default();
    *o = (serve_opts_t){.host = d.host, .port = d.port, .queue = d.queue};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
            continue;
        }
        static const char *const with_value[] = {"-m", "--model", "--host", "--port", "--queue",
                                                 "--api-key", "-t", "--threads", NULL};
        int known = 0;
        for (int k = 0; with_value[k]; k++) known |= strcmp(a, with_value[k]) == 0;
        if (!known) {
            fprintf(stderr, CMD ": unknown option '%s' (see dalle-c serve --help)\n", a);
            return 2;
        }
        if (!(v = arg_value(CMD, argc, argv, &i))) return 2;
        if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) o->model = v;
        else if (strcmp(a, "--host") == 0) o->host = v;
        else if (strcmp(a, "--api-key") == 0) o->api_key = v;
        else if (strcmp(a, "--port") == 0) {
            if (arg_int(CMD, a, v, 0, 65535, &o->port)) return 2;
        } else if (strcmp(a, "--queue") == 0) {
            if (arg_int(CMD, a, v, 1, 10000, &o->queue)) return 2;
        } else if (arg_int(CMD, a, v, 1, 1024, &o->threads)) {
            return 2;
        }
    }
    if (!o->api_key) {
        const char *env = getenv("DALLEC_API_KEY");
        if (env && *env) o->api_key = env;
    }
    if (o->api_key && !key_ok(o->api_key)) {
        fprintf(stderr, CMD ": --api-key wants printable ASCII without spaces\n");
        return 2;
    }
    if (!*o->host) {
        fprintf(stderr, CMD ": --host wants an address, e.g. 127.0.0.1\n");
        return 2;
    }
    return 0;
}

static int loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

int cmd_serve(int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) {
        fputs(serve_usage, stdout);
        return 0;
    }
    serve_opts_t o;
    int rc = parse(&o, argc, argv);
    if (rc) return rc;
    char model_buf[4200], err[DALLE_ERR_SIZE];
    const char *path = cmd_find_model(o.model, model_buf, sizeof model_buf);
    if (!path) return 1;
    dalle_model_t *model = NULL;
    if (dalle_model_load(&model, path, err)) {
        fprintf(stderr, CMD ": %s\n", err);
        return 1;
    }

    /* The server's threads inherit this mask: the signals reach sigwait below only. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-reply is an error return, not a signal */

    server_options_t so = server_options_default();
    so.host = o.host;
    so.port = o.port;
    so.queue = o.queue;
    so.api_key = o.api_key;
    so.threads = o.threads;
    so.log = o.quiet ? NULL : stderr;
    server_t *srv = NULL;
    if (server_start(&srv, model, &so, err)) {
        fprintf(stderr, CMD ": %s\n", err);
        dalle_model_free(model);
        return 1;
    }
    dalle_model_info_t info;
    dalle_model_info(model, &info);
    int v6 = strchr(o.host, ':') != NULL;
    if (!loopback(o.host))
        fprintf(stderr, CMD ": warning: listening on %s, %s: anyone who can reach it can "
                        "generate%s\n", o.host,
                strcmp(o.host, "0.0.0.0") == 0 || strcmp(o.host, "::") == 0
                    ? "every network interface of this machine"
                    : "an address other machines may reach",
                o.api_key ? "" : " (--api-key requires a key)");
    fprintf(stderr, CMD ": model %s (%dx%d images, %d rows, %s), queue %d, %s\n",
            dalle_model_name(model), info.image_size, info.image_size, info.grid,
            info.has_scorer ? "a scorer: candidates rerank" : "no scorer", o.queue,
            o.api_key ? "API key required" : "no API key");
    printf("listening on http://%s%s%s:%d/\n", v6 ? "[" : "", o.host, v6 ? "]" : "",
           server_port(srv));
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, CMD ": %s: finishing the running job, refusing the waiting ones\n",
            sig == SIGINT ? "interrupted" : "terminated");
    server_stop(srv);
    dalle_model_free(model);
    fprintf(stderr, CMD ": stopped\n");
    return 0;
}

#endif
