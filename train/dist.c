#include "train/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TERN_HAVE_MPI
#include <mpi.h>
#endif

static int env_int(const char *name, int fallback) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    char *end;
    long x = strtol(v, &end, 10);
    return (*end || x < 1 || x > INT_MAX) ? fallback : (int)x;
}

static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK") || getenv("MV2_COMM_WORLD_SIZE");
}

int dist_built_with_mpi(void) {
#ifdef TERN_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int dist_init(Dist *d, int *argc, char ***argv, char *msg, size_t msg_size) {
    memset(d, 0, sizeof *d);
    d->world = 1;
    d->local_size = 1;
    if (!launched_by_mpi()) return 0;
#ifdef TERN_HAVE_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(msg, msg_size, "MPI_Init_thread failed");
        return -1;
    }
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    d->local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", env_int("MPI_LOCALNRANKS", env_int("SLURM_NTASKS_PER_NODE", 1)));
    return 0;
#else
    (void)argc;
    (void)argv;
    if (env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 1)) > 1) {
        snprintf(msg, msg_size, "started by an MPI launcher with several ranks, but this tern was built without MPI "
                                "(install libopenmpi-dev and rebuild with -DTERN_MPI=ON)");
        return -1;
    }
    return 0;
#endif
}

void dist_finalize(Dist *d) {
#ifdef TERN_HAVE_MPI
    if (d->mpi) MPI_Finalize();
#endif
    d->mpi = 0;
}

#ifdef TERN_HAVE_MPI
/* MPI counts are int: large buffers go in chunks. */
static const size_t CHUNK = (size_t)1 << 28;
static void allreduce(const Dist *d, void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op) {
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t c = n - off < CHUNK ? n - off : CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)c, type, op, MPI_COMM_WORLD);
    }
    (void)d;
}
#endif

void dist_allreduce_sum_f32(const Dist *d, float *buf, size_t n) {
#ifdef TERN_HAVE_MPI
    if (d->world > 1) allreduce(d, buf, n, sizeof(float), MPI_FLOAT, MPI_SUM);
#else
    (void)d, (void)buf, (void)n;
#endif
}

void dist_allreduce_sum_f64(const Dist *d, double *buf, size_t n) {
#ifdef TERN_HAVE_MPI
    if (d->world > 1) allreduce(d, buf, n, sizeof(double), MPI_DOUBLE, MPI_SUM);
#else
    (void)d, (void)buf, (void)n;
#endif
}

void dist_allreduce_max_f64(const Dist *d, double *buf, size_t n) {
#ifdef TERN_HAVE_MPI
    if (d->world > 1) allreduce(d, buf, n, sizeof(double), MPI_DOUBLE, MPI_MAX);
#else
    (void)d, (void)buf, (void)n;
#endif
}

void dist_bcast_f32(const Dist *d, float *buf, size_t n, int root) {
#ifdef TERN_HAVE_MPI
    if (d->world > 1)
        for (size_t off = 0; off < n; off += CHUNK) {
            size_t c = n - off < CHUNK ? n - off : CHUNK;
            MPI_Bcast(buf + off, (int)c, MPI_FLOAT, root, MPI_COMM_WORLD);
        }
#else
    (void)d, (void)buf, (void)n, (void)root;
#endif
}

void dist_minmax_u64(const Dist *d, uint64_t v, uint64_t *min, uint64_t *max) {
    *min = *max = v;
#ifdef TERN_HAVE_MPI
    if (d->world > 1) {
        MPI_Allreduce(&v, min, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&v, max, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    }
#else
    (void)d;
#endif
}

int dist_any(const Dist *d, int flag) {
    uint64_t lo, hi;
    dist_minmax_u64(d, flag ? 1 : 0, &lo, &hi);
    return hi != 0;
}

uint64_t dist_fingerprint(const float *buf, size_t n) {
    /* sum over i of mix(i, bits_i): order-independent, so it parallelises; a single flipped bit
     * anywhere changes it (mix is a bijection of the bits for a fixed i) */
    uint64_t h = 0;
#pragma omp parallel for reduction(+ : h) schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, buf + i, sizeof w);
        uint64_t x = ((uint64_t)i << 32 | w) * 0x9E3779B97F4A7C15ull;
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ull;
        h += x ^ (x >> 32);
    }
    return h;
}
