/* The processes of a data-parallel run (docs/DISTRIBUTED.md). Built with MPI
 * (DALLEC_HAVE_MPI), a program started by mpirun initialises MPI_COMM_WORLD here; started
 * any other way, or built without MPI, it is one process and none of this touches MPI.
 * MPI is per process, so this state is too: main() sets it up and tears it down, the
 * training commands read it. */
#ifndef DALLEC_DIST_H
#define DALLEC_DIST_H

#include "dvae/dvae.h"

/* MPI_Init when launched by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE or
 * PMIX_RANK in the environment). Built without MPI, a launch with more than one rank is
 * refused. 0, or -1 after printing why. */
int dist_init(int *argc, char ***argv);
/* Ends MPI with the command's exit status: MPI_Finalize when every rank got here together
 * (status 0, or 130 for a stop they agreed on), else MPI_Abort, so that a rank failing
 * alone does not leave the others waiting in a collective. Returns status. */
int dist_finish(int status);
/* The communicator for the training loops; NULL for one process. */
const dvae_comm_t *dist_comm(void);
/* This process's rank (0 for one process), and how many there are. */
int dist_rank(void);
int dist_size(void);

#endif
