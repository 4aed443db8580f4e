#include "train/resume.h"

#include <math.h>

/* The relations every state a trainer writes satisfies: each step takes at least one token
 * (train.batch_tokens >= 1) and each training forward of a rank scores at least one of them; an
 * epoch is at least one window, so at least one token. The loader seed is any 64-bit key. */
int resume_check_state(const TrainState *st, const Loader *L, const char *path, Err *err) {
    const uint64_t max = (uint64_t)INT64_MAX; /* HDF5 stores them as int64: larger is a negative number */
    const struct {
        const char *key;
        uint64_t v, hi;
    } bound[] = {
        {"tokens", st->tokens, max},
        {"step", st->step, st->tokens},
        {"train_forwards", st->train_forwards, st->tokens},
        {"loader_epoch", st->loader_epoch, st->tokens},
        {"bad_steps", st->bad_steps, st->step},
        {"qat_active", st->qat_active, 1},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(bound); i++)
        if (bound[i].v > bound[i].hi)
            return err_set(err, "%s: /state %s = %llu is out of range (at most %llu here: a damaged checkpoint)", path, bound[i].key,
                           (unsigned long long)bound[i].v, (unsigned long long)bound[i].hi);
    if (st->loader_pos >= L->nwindows)
        return err_set(err, "%s: /state loader_pos = %llu is past the %llu training windows of data.train (a checkpoint of other "
                            "shards or another seq_len, or damaged)", path, (unsigned long long)st->loader_pos,
                       (unsigned long long)L->nwindows);
    if (!isfinite(st->elapsed_seconds) || st->elapsed_seconds < 0)
        return err_set(err, "%s: /state elapsed_seconds = %g is not a finite non-negative time", path, st->elapsed_seconds);
    return 0;
}
