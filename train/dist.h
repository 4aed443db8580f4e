/* dist.h — data parallelism across processes (MPI), or a world of one.
 *
 * tern uses MPI only when a launcher started it (mpirun / mpiexec / srun set OMPI_COMM_WORLD_SIZE,
 * PMI_SIZE or PMIX_RANK): a plain `tern train` never initialises MPI, and a build without MPI
 * (TERN_MPI=OFF or no Open MPI found) treats any launch as a world of one.
 *
 * The scheme is plain synchronous data parallelism over the flat gradient buffer: every rank
 * holds the whole model and optimizer, reads its own slice of each step's windows (the loader's
 * rank/world slicing), back-propagates its micro-steps, and one all-reduce averages the gradient
 * buffer; every rank then takes the identical optimizer step. Everything a rank decides on its
 * own (wall-clock budget, signals) is agreed through a small all-reduce so all ranks step, stop,
 * validate and checkpoint together. Rank 0 alone writes files and prints.
 *
 * A Dist is per process state owned by the caller (no globals). */
#ifndef TERN_DIST_H
#define TERN_DIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct Dist {
    int rank, world;
    int local_size; /* ranks on this host (from the launcher), 1 when unknown */
    int mpi;        /* 1 when this process initialised MPI */
} Dist;

/* Detects a launcher and initialises MPI when there is one (and tern was built with MPI). Returns
 * 0, or -1 with a message in msg (launched by mpirun but built without MPI, or MPI failed). */
int dist_init(Dist *d, int *argc, char ***argv, char *msg, size_t msg_size);
void dist_finalize(Dist *d);
int dist_built_with_mpi(void);

/* In-place collectives; no-ops in a world of one. */
void dist_allreduce_sum_f32(const Dist *d, float *buf, size_t n);
void dist_allreduce_sum_f64(const Dist *d, double *buf, size_t n);
void dist_allreduce_max_f64(const Dist *d, double *buf, size_t n);
void dist_bcast_f32(const Dist *d, float *buf, size_t n, int root);
/* Collective: 1 when `flag` is non-zero on any rank (flag itself in a world of one). */
int dist_any(const Dist *d, int flag);
/* Minimum and maximum over ranks of one 64-bit value. */
void dist_minmax_u64(const Dist *d, uint64_t v, uint64_t *min, uint64_t *max);

/* An order-independent 64-bit fingerprint of a float buffer (bit patterns), to check that the
 * ranks' parameters are still identical. */
uint64_t dist_fingerprint(const float *buf, size_t n);

#endif
