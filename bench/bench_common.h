/* Shared by the bench programs: timing, medians and peak memory, and the one output
 * line bench/run parses:
 *   RESULT <config> <median seconds> <gflop per run or 0> <peak RSS MiB> */
#ifndef DALLEC_BENCH_COMMON_H
#define DALLEC_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(double), bench_cmp);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static inline double bench_peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static inline void bench_result(const char *config, double median_s, double gflop)
{
    printf("RESULT %s %.6f %.4f %.1f\n", config, median_s, gflop, bench_peak_rss_mib());
    fflush(stdout);
}

#endif
