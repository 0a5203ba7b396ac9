// MPI for Swift (the MPI trait: `swift build --traits MPI`). MPICH's handles
// (MPI_COMM_WORLD, MPI_FLOAT, ...) are cast macros that Swift cannot import, so the few
// calls the engine makes are wrapped here. Every call uses MPI_COMM_WORLD.
#ifndef CMPI_SHIM_H
#define CMPI_SHIM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/// MPI_Init_thread asking for MPI_THREAD_SERIALIZED (one thread at a time calls MPI; the
/// compute pool's workers never do). Returns the level provided, or -1 on failure.
static inline int cmpi_init(void) {
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) return -1;
    return provided;
}

static inline int cmpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }

static inline int cmpi_rank(void) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

static inline int cmpi_size(void) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

/// Every rank's `count` floats, in rank order, into `gathered` [size * count].
static inline int cmpi_allgather_floats(const float *values, int count, float *gathered) {
    return MPI_Allgather(values, count, MPI_FLOAT, gathered, count, MPI_FLOAT, MPI_COMM_WORLD);
}

/// Every rank's `counts[rank]` floats, in rank order, into `gathered` at `offsets[rank]`.
static inline int cmpi_allgatherv_floats(const float *values, int count, float *gathered,
                                         const int *counts, const int *offsets) {
    return MPI_Allgatherv(values, count, MPI_FLOAT, gathered, counts, offsets, MPI_FLOAT, MPI_COMM_WORLD);
}

/// MPI_Bcast that waits without holding a core: MPI's blocking calls poll, and a rank
/// waiting for the next step of an idle server would keep a core busy. It polls for the
/// first 200 microseconds (a decode step's token arrives within that), then sleeps 50
/// microseconds between polls.
static inline int cmpi_broadcast_int64(int64_t *values, int count, int root) {
    MPI_Request request;
    int rc = MPI_Ibcast(values, count, MPI_INT64_T, root, MPI_COMM_WORLD, &request);
    if (rc != MPI_SUCCESS) return rc;
    struct timespec start, now, pause = {0, 50000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int done = 0;
        rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || done) return rc;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited = (now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec);
        if (waited > 200000L) nanosleep(&pause, NULL);
    }
}

static inline int cmpi_finalize(void) { return MPI_Finalize(); }

static inline void cmpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

#endif
