/* checkpoint.h — HDF5 checkpoints (readable with h5py).
 *
 *   /params/<name>     every parameter, float32, its shape
 *   /optim/state_a     optimizer state (Adam m / momentum), flat, parameter offsets
 *   /optim/state_b     optimizer state (Adam v), flat
 *   /ema/shadow        EMA weights when enabled
 *   /buffers/<name>    the model's buffers (autodiff/buffers.h: state not trained by gradient,
 *                      e.g. train_forwards, the TRN readout warm-up's counter), float32 / uint64
 *   /state             attributes: step, tokens, train_forwards, loader_epoch, loader_pos,
 *                      loader_seed, bad_steps, qat_active, elapsed_seconds
 *   root attributes    format = "tern-checkpoint", version = 1, config = resolved JSON
 * Every dataset carries a Fletcher32 checksum per chunk (HDF5 verifies it on read; `tern info
 * --verify` reads them all); checkpoints written before checksums load as before.
 * Written to a temporary file, fsync'd and renamed into place: a crash or a full disk never
 * leaves a partial file under the final name, and the file it replaces stays as it was. */
#ifndef TERN_CHECKPOINT_H
#define TERN_CHECKPOINT_H

#include <stdint.h>

#include "autodiff/buffers.h"
#include "autodiff/params.h"
#include "kernels/util.h"

typedef struct TrainState {
    uint64_t step, tokens, train_forwards;
    uint64_t loader_epoch, loader_pos, loader_seed;
    uint64_t bad_steps;
    uint64_t qat_active;
    double elapsed_seconds;
} TrainState;

typedef struct CheckpointData {
    const ParamStore *ps;
    const float *state_a, *state_b; /* may be NULL (not saved) */
    const float *ema;               /* may be NULL */
    const BufferStore *bs;          /* may be NULL (no buffers saved) */
    size_t total;                   /* floats in each flat buffer */
    TrainState st;
    const char *config_json;
} CheckpointData;

int checkpoint_save(const char *path, const CheckpointData *cd, Err *err);

/* Restores the model's buffers from /buffers/<name> (each must be there, with its shape).
 * *found = 0 for a checkpoint written before buffers existed (nothing is changed: the caller
 * falls back to /state, e.g. train_forwards). */
int checkpoint_load_buffers(const char *path, BufferStore *bs, int *found, Err *err);

/* Reads the config JSON text (malloc'd) of a checkpoint. */
char *checkpoint_read_config(const char *path, Err *err);
/* Loads parameters (names and shapes must match ps) and, when the pointers are non-NULL, the
 * optimizer state, EMA and train state. A missing /optim is an error only when asked for.
 * Refused, naming the file and the field: tensors stored in another type than float32 or
 * holding NaN / Inf, a checksum mismatch (damaged data), negative counters in /state,
 * qat_active other than 0 / 1, a negative or non-finite elapsed_seconds. */
int checkpoint_load(const char *path, ParamStore *ps, float *state_a, float *state_b, float *ema,
                    TrainState *st, Err *err);
/* The EMA weights (n floats) when the checkpoint has them (*found = 1), with the same checks. */
int checkpoint_read_ema(const char *path, float *ema, size_t n, int *found, Err *err);

#endif
