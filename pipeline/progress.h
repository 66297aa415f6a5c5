/* A progress display for long jobs: a redrawn bar with rate and ETA on a terminal,
 * plain log lines (at most one every few seconds) otherwise. Internal to pipeline/:
 * library code reports progress through callbacks and the command line draws it. */
#ifndef DALLEC_PROGRESS_H
#define DALLEC_PROGRESS_H

#include <stdio.h>

typedef struct {
    FILE *out;
    char label[48];
    long total;      /* 0: unknown, no bar or ETA */
    long done;
    long done_at_start; /* units done before this run (a resumed training): not in the rate */
    int tty;
    double t_start, t_last;
    double log_every; /* seconds between log lines when not a terminal */
} progress_t;

/* Starts a display on out (stderr normally); tty is detected from out. */
void progress_start(progress_t *p, FILE *out, const char *label, long total);
/* The same for a job resumed with done units behind it: rate and ETA count from there. */
void progress_start_at(progress_t *p, FILE *out, const char *label, long total, long done);
/* Reports done units and an optional short status text (e.g. "loss 0.123"). */
void progress_update(progress_t *p, long done, const char *status);
/* Final line with the total time. */
void progress_finish(progress_t *p, const char *status);
/* A log line (printf-style, newline added) that does not garble a bar on a terminal. */
void progress_log(progress_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "1:02:03", "2:03" or "4.5s" */
void progress_format_duration(char *buf, size_t n, double seconds);

#endif
