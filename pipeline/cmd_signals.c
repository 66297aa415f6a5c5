/* The signals that ask a training command to checkpoint and stop (pipeline/commands.h). */
#include "pipeline/commands.h"

#include <string.h>

/* A signal handler can only set a flag: this one is the process's. */
static volatile sig_atomic_t stop_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void stop_signals_install(stop_signals_t *s)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &s->old_int);
    /* mpirun ends the job on Ctrl-C but passes SIGUSR1 on to every rank */
    sigaction(SIGUSR1, &sa, &s->old_usr1);
}

void stop_signals_restore(const stop_signals_t *s)
{
    sigaction(SIGINT, &s->old_int, NULL);
    sigaction(SIGUSR1, &s->old_usr1, NULL);
}

int stop_requested(void)
{
    return stop_flag;
}
