#include "pipeline/progress.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void progress_format_duration(char *buf, size_t n, double s)
{
    if (s < 0) s = 0;
    if (s < 60) {
        snprintf(buf, n, "%.1fs", s);
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void progress_start(progress_t *p, FILE *out, const char *label, long total)
{
    progress_start_at(p, out, label, total, 0);
}

void progress_start_at(progress_t *p, FILE *out, const char *label, long total, long done)
{
    memset(p, 0, sizeof *p);
    p->done = p->done_at_start = done > 0 ? done : 0;
    p->out = out;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total > 0 ? total : 0;
    p->tty = isatty(fileno(out));
    p->t_start = p->t_last = now_s();
    p->log_every = 5.0;
}

static void draw(progress_t *p, const char *status, int final)
{
    double elapsed = now_s() - p->t_start;
    double rate = elapsed > 0 ? (double)(p->done - p->done_at_start) / elapsed : 0;
    char eta[32] = "", took[32];
    progress_format_duration(took, sizeof took, elapsed);
    if (p->total && rate > 0 && !final)
        progress_format_duration(eta, sizeof eta, (double)(p->total - p->done) / rate);
    const char *st = status ? status : "";
    if (p->tty) {
        char bar[32] = "";
        int pct = 0;
        if (p->total) {
            int width = 24, fill = (int)((double)width * (double)p->done / (double)p->total);
            if (fill > width) fill = width;
            for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
            bar[width] = 0;
            pct = (int)(100.0 * (double)p->done / (double)p->total);
        }
        if (p->total)
            fprintf(p->out, "\r\033[K%s [%s] %3d%% %ld/%ld %.2f/s %s%s %s", p->label, bar, pct,
                    p->done, p->total, rate, final ? "in " : "ETA ", final ? took : eta, st);
        else
            fprintf(p->out, "\r\033[K%s %ld %.2f/s %s %s", p->label, p->done, rate, took, st);
        if (final) fputc('\n', p->out);
    } else {
        if (p->total)
            fprintf(p->out, "%s %ld/%ld (%d%%) %.2f/s %s %s %s\n", p->label, p->done, p->total,
                    (int)(100.0 * (double)p->done / (double)p->total), rate,
                    final ? "took" : "eta", final ? took : eta, st);
        else
            fprintf(p->out, "%s %ld %.2f/s %s %s\n", p->label, p->done, rate, took, st);
    }
    fflush(p->out);
}

void progress_update(progress_t *p, long done, const char *status)
{
    p->done = done;
    double t = now_s();
    double every = p->tty ? 0.1 : p->log_every;
    if (t - p->t_last < every && !(p->total && done >= p->total)) return;
    p->t_last = t;
    draw(p, status, 0);
}

void progress_finish(progress_t *p, const char *status)
{
    draw(p, status, 1);
}

void progress_log(progress_t *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (p->tty) fputs("\r\033[K", p->out);
    vfprintf(p->out, fmt, ap);
    fputc('\n', p->out);
    va_end(ap);
    fflush(p->out);
    if (p->tty) p->t_last = 0; /* redraw the bar at the next update */
}
