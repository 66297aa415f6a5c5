/* OpenBLAS core choice and the one thread count shared by BLAS and our loops. */
#include "nn/nn.h"

#include <cblas.h>
#include <omp.h>
#include <strings.h>
#include <time.h>

/* Not in Debian's cblas.h for every flavour; exported by libopenblas. */
char *openblas_get_corename(void);
void openblas_set_num_threads(int n);

const char *nn_blas_core(void)
{
    return openblas_get_corename();
}

static int is_one_of(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcasecmp(name, *list) == 0) return 1;
    return 0;
}

static int has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

static int has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

const char *nn_blas_preferred_core(void)
{
    return has_avx512() ? "SkylakeX" : has_avx2() ? "Haswell" : 0;
}

const char *nn_blas_better_core(void)
{
    static const char *const avx512_cores[] = {"skylakex", "cooperlake", "sapphirerapids", 0};
    static const char *const avx2_cores[] = {"haswell", "zen", "skylakex", "cooperlake",
                                             "sapphirerapids", 0};
    const char *core = openblas_get_corename();
    if (!core) return 0;
    if (has_avx512()) return is_one_of(core, avx512_cores) ? 0 : "SkylakeX";
    if (has_avx2()) return is_one_of(core, avx2_cores) ? 0 : "Haswell";
    return 0;
}

void nn_set_threads(int n)
{
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int nn_threads(void)
{
    return omp_get_max_threads();
}

double nn_now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
