/* run_dir.h — the run folder (out_dir/name): where it is, who may write it, what it keeps.
 *
 *  - names: `name` is one path component and out_dir is not empty, so a run never writes
 *    outside out_dir (`name=..` or `out_dir=""` would);
 *  - `--resume DIR` continues DIR itself, wherever the run was moved or copied to: the stored
 *    out_dir/name are replaced by DIR's;
 *  - one writer per folder: an exclusive flock(2) on DIR/lock, held while the process lives
 *    (the kernel drops it when the process dies, however it dies); a second `tern train` on the
 *    folder refuses, naming the holder's pid. Under MPI, rank 0 (the only writer) holds it;
 *  - temporaries of writers that were killed (NAME.tmp.PID of a pid no longer alive) are removed
 *    when a run takes the folder;
 *  - retention: the newest train.keep_ckpts ckpt/step_N.h5 are kept (latest.h5 always);
 *  - metrics.jsonl is cut back to the resumed checkpoint, so no step is logged twice. */
#ifndef TERN_RUN_DIR_H
#define TERN_RUN_DIR_H

#include <stdint.h>
#include <stdio.h>

#include "kernels/util.h"
#include "train/runconfig.h"

/* "config: name ..." / "config: out_dir ..." errors for names that would leave out_dir. */
int run_name_check(const char *out_dir, const char *name, Err *err);
/* out_dir/name of rc. */
void run_dir_of(const RunConfig *rc, char *buf, size_t size);
/* --resume DIR: rc's out_dir and name become DIR's parent and last component (a path ending in
 * "." or ".." is resolved first). */
int run_dir_adopt(RunConfig *rc, const char *dir, Err *err);

typedef struct RunLock {
    int fd;            /* the locked DIR/lock, -1 when not held */
    size_t n_cleaned;  /* stale temporaries removed when the lock was taken */
    int made_dir;      /* run_dir_lock created the folder (a refused start removes it again) */
} RunLock;

/* Creates run_dir when missing and takes its lock (without waiting). refuse_existing: a new run
 * without --overwrite, which must not reuse a folder holding ckpt/latest.h5. Changes nothing in
 * an existing folder (but creates an empty lock file where there was none). */
int run_dir_lock(RunLock *lk, const char *run_dir, int refuse_existing, Err *err);
/* Once the run is accepted: writes this pid into the lock file (for readers on other hosts, which
 * cannot see the holder in /proc/locks) and removes stale temporaries. */
int run_dir_claim(RunLock *lk, const char *run_dir, Err *err);
void run_dir_unlock(RunLock *lk);
/* A start that failed before the run began: unlocks and, when this process created the folder,
 * removes its lock file and the folder again if nothing else was written into it (a refused
 * start leaves nothing on disk). */
void run_dir_abandon(RunLock *lk, const char *run_dir);

/* Removes run_dir/NAME.tmp.* and run_dir/ckpt/NAME.tmp.* left by writers that died: a numeric
 * suffix is a pid (removed when no such process lives); config.json / summary.json temporaries
 * (mkstemp suffixes) are written only by the lock holder, so the caller must hold the lock.
 * Returns the number removed. */
size_t run_dir_clean_temporaries(const char *run_dir);

/* Keeps the `keep` newest ckpt/step_N.h5 (and step `current`, whatever its rank) and removes the
 * older ones; keep == 0 keeps every one. latest.h5 is a link of its own and never touched.
 * Best effort (a file that cannot be removed stays). Returns the number removed. */
size_t run_dir_prune_checkpoints(const char *run_dir, size_t keep, uint64_t current);

/* The "event" of the metrics line {"step": N, "event": "checkpoint"} the trainer writes once
 * checkpoint N is safely in place; resume cuts the metrics back to it. */
#define RUN_METRICS_CHECKPOINT_EVENT "checkpoint"
/* Opens run_dir's metrics.jsonl: truncated for a fresh run; for a run resumed from checkpoint
 * `step`, cut after that checkpoint's line (without one — runs from before it was written —
 * before the first line of a later step) and appended to. */
FILE *run_metrics_open(const char *path, int resume, uint64_t step, Err *err);

#endif
