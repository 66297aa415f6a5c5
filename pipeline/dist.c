/* pipeline/dist.h over MPI_COMM_WORLD; without MPI, one process. */
#include "pipeline/dist.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef DALLEC_HAVE_MPI
#include <mpi.h>

static dvae_comm_t world;
static int started;

/* In place, in pieces that fit MPI's int counts. */
static int allreduce_sum(float *buf, size_t n, void *ctx)
{
    (void)ctx;
    const size_t max = (size_t)1 << 30;
    for (size_t at = 0; at < n; at += max) {
        int k = (int)(n - at < max ? n - at : max);
        if (MPI_Allreduce(MPI_IN_PLACE, buf + at, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
            return -1;
    }
    return 0;
}

int dist_init(int *argc, char ***argv)
{
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK"))
        return 0;
    /* our threads (OpenMP, the prefetch thread) never call MPI: the main thread does */
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "dalle-c: MPI_Init failed\n");
        return -1;
    }
    started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    world.allreduce_sum = allreduce_sum;
    return 0;
}

int dist_finish(int status)
{
    if (!started) return status;
    if (world.size > 1 && status != 0 && status != 130) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize();
    return status;
}

const dvae_comm_t *dist_comm(void) { return started && world.size > 1 ? &world : NULL; }
int dist_rank(void) { return started ? world.rank : 0; }
int dist_size(void) { return started ? world.size : 1; }

#else

/* Started by mpirun with several ranks, a build without MPI would run N independent
 * trainings writing the same files: refuse instead. */
int dist_init(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (n && atoi(n) > 1) {
        fprintf(stderr, "dalle-c: started by an MPI launcher with %s ranks, but this build has "
                "no MPI (rebuild with Open MPI installed and DALLEC_MPI=ON; "
                "docs/DISTRIBUTED.md)\n", n);
        return -1;
    }
    return 0;
}
int dist_finish(int status) { return status; }
const dvae_comm_t *dist_comm(void) { return NULL; }
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }

#endif
