/* resume.h — a checkpoint's train state (/state) checked against the run that continues it,
 * before any of it is used: a value out of range is one error naming the file and the field
 * (a loader position past the shards' windows used to send the loader round a 2^63-step loop).
 * The step itself, dtypes and checksums are checked where the checkpoint is read. */
#ifndef TERN_RESUME_H
#define TERN_RESUME_H

#include "data/loader.h"
#include "train/checkpoint.h"

int resume_check_state(const TrainState *st, const Loader *L, const char *path, Err *err);

#endif
