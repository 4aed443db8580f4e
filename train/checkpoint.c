#include "train/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/h5io.h"

#define CKPT_FORMAT "tern-checkpoint"
#define CKPT_VERSION 1

static int fsync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_state(hid_t f, const TrainState *s, Err *err) {
    hid_t g = H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        char cause[256];
        return err_set(err, "write failed: %s (group state)", h5_error_cause(cause, sizeof cause));
    }
    H5Gclose(g);
    return h5_attr_set_i64(f, "state", "step", (int64_t)s->step, err) ||
           h5_attr_set_i64(f, "state", "tokens", (int64_t)s->tokens, err) ||
           h5_attr_set_i64(f, "state", "train_forwards", (int64_t)s->train_forwards, err) ||
           h5_attr_set_i64(f, "state", "loader_epoch", (int64_t)s->loader_epoch, err) ||
           h5_attr_set_i64(f, "state", "loader_pos", (int64_t)s->loader_pos, err) ||
           h5_attr_set_i64(f, "state", "loader_seed", (int64_t)s->loader_seed, err) ||
           h5_attr_set_i64(f, "state", "bad_steps", (int64_t)s->bad_steps, err) ||
           h5_attr_set_i64(f, "state", "qat_active", (int64_t)s->qat_active, err) ||
           h5_attr_set_f64(f, "state", "elapsed_seconds", s->elapsed_seconds, err);
}

static int write_contents(hid_t f, const CheckpointData *cd, Err *err) {
    char name[512];
    for (size_t i = 0; i < cd->ps->n; i++) {
        const Tensor *t = cd->ps->t[i];
        snprintf(name, sizeof name, "params/%s", t->name);
        if (h5_write_f32(f, name, t->ndim, t->shape, t->data, err)) return -1;
    }
    size_t total = cd->total;
    if (cd->state_a && h5_write_f32(f, "optim/state_a", 1, &total, cd->state_a, err)) return -1;
    if (cd->state_b && h5_write_f32(f, "optim/state_b", 1, &total, cd->state_b, err)) return -1;
    if (cd->ema && h5_write_f32(f, "ema/shadow", 1, &total, cd->ema, err)) return -1;
    for (size_t i = 0; cd->bs && i < cd->bs->n; i++) {
        const Buffer *b = &cd->bs->b[i];
        snprintf(name, sizeof name, "buffers/%s", b->name);
        if (b->dtype == BUF_U64 ? h5_write_u64(f, name, b->ndim, b->shape, b->data, err)
                                : h5_write_f32(f, name, b->ndim, b->shape, b->data, err))
            return -1;
    }
    if (write_state(f, &cd->st, err)) return -1;
    return h5_attr_set_str(f, "/", "format", CKPT_FORMAT, err) || h5_attr_set_i64(f, "/", "version", CKPT_VERSION, err) ||
           h5_attr_set_str(f, "/", "config", cd->config_json ? cd->config_json : "{}", err);
}

int checkpoint_save(const char *path, const CheckpointData *cd, Err *err) {
    size_t n = strlen(path) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    hid_t f = h5_create(tmp, err);
    if (f < 0) {
        xfree(tmp);
        return -1;
    }
    int rc = write_contents(f, cd, err);
    /* the file is closed (its ids released) whatever happened; a failed write names the
     * checkpoint and the cause ("No space left on device"), and the temporary file goes */
    if (rc) h5_close(f);
    else rc = h5_close_written(f, err);
    if (rc) err_prefix(err, "%s", path);
    if (!rc && fsync_path(tmp) != 0) rc = err_set(err, "%s: write failed: fsync: %s", path, strerror(errno));
    if (!rc && rename(tmp, path) != 0) rc = err_set(err, "%s: rename failed (%s)", path, strerror(errno));
    if (rc) unlink(tmp);
    xfree(tmp);
    return rc ? -1 : 0;
}

static hid_t open_checkpoint(const char *path, Err *err) {
    hid_t f = h5_open_read(path, err);
    if (f < 0) return -1;
    Err e2 = {0};
    char *fmt = h5_attr_get_str(f, "/", "format", &e2);
    int64_t ver = 0;
    int ok = fmt && !strcmp(fmt, CKPT_FORMAT) && h5_attr_get_i64(f, "/", "version", &ver, &e2) == 0;
    free(fmt);
    if (!ok) {
        h5_close(f);
        err_set(err, "%s: not a tern checkpoint (no format attribute)", path);
        return -1;
    }
    if (ver != CKPT_VERSION) {
        h5_close(f);
        err_set(err, "%s: checkpoint version %lld, this tern reads version %d", path, (long long)ver, CKPT_VERSION);
        return -1;
    }
    return f;
}

char *checkpoint_read_config(const char *path, Err *err) {
    hid_t f = open_checkpoint(path, err);
    if (f < 0) return NULL;
    char *cfg = h5_attr_get_str(f, "/", "config", err);
    h5_close(f);
    if (!cfg) err_set(err, "%s: checkpoint has no config", path);
    return cfg;
}

/* A counter of /state: stored as an integer, never negative. */
static int read_u64(hid_t f, const char *key, uint64_t *v, Err *err) {
    int64_t x;
    if (h5_attr_get_i64(f, "state", key, &x, err)) return -1;
    if (x < 0) return err_set(err, "/state %s is %lld (must be >= 0)", key, (long long)x);
    *v = (uint64_t)x;
    return 0;
}

static int read_state(hid_t f, TrainState *st, Err *err) {
    memset(st, 0, sizeof *st);
    int64_t seed; /* a key: any 64-bit pattern, stored as int64 */
    if (read_u64(f, "step", &st->step, err) || read_u64(f, "tokens", &st->tokens, err) ||
        read_u64(f, "train_forwards", &st->train_forwards, err) || read_u64(f, "loader_epoch", &st->loader_epoch, err) ||
        read_u64(f, "loader_pos", &st->loader_pos, err) || h5_attr_get_i64(f, "state", "loader_seed", &seed, err) ||
        read_u64(f, "bad_steps", &st->bad_steps, err) || read_u64(f, "qat_active", &st->qat_active, err) ||
        h5_attr_get_f64(f, "state", "elapsed_seconds", &st->elapsed_seconds, err))
        return -1;
    st->loader_seed = (uint64_t)seed;
    if (st->qat_active > 1) return err_set(err, "/state qat_active is %llu (must be 0 or 1)", (unsigned long long)st->qat_active);
    if (!isfinite(st->elapsed_seconds) || st->elapsed_seconds < 0)
        return err_set(err, "/state elapsed_seconds is %g (must be finite and >= 0)", st->elapsed_seconds);
    return 0;
}

/* Reads a float32 dataset of exactly n values, all finite. Another stored type is refused rather
 * than converted: HDF5 would silently round float64 or truncate integers. */
static int read_floats(hid_t f, const char *name, float *out, size_t n, Err *err) {
    char type[32];
    if (h5_exists(f, name) && strcmp(h5_dtype_name(f, name, type, sizeof type), "float32"))
        return err_set(err, "%s is stored as %s (a checkpoint holds float32)", name, type);
    if (h5_read_f32(f, name, out, n, err)) return -1;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i])) return err_set(err, "%s holds a non-finite value (%g) at index %zu", name, out[i], i);
    return 0;
}

static int load_params(hid_t f, ParamStore *ps, Err *err) {
    char name[512];
    for (size_t i = 0; i < ps->n; i++) {
        Tensor *t = ps->t[i];
        snprintf(name, sizeof name, "params/%s", t->name);
        size_t shape[4];
        Err e2 = {0};
        int nd = h5_shape(f, name, shape, &e2);
        if (nd < 0) return err_set(err, "parameter %s missing (checkpoint of a different model?)", t->name);
        int same = nd == t->ndim;
        for (int d = 0; same && d < nd; d++) same = shape[d] == t->shape[d];
        if (!same) return err_set(err, "parameter %s has a different shape than the model", t->name);
        if (read_floats(f, name, t->data, t->numel, err)) return -1;
    }
    return 0;
}

int checkpoint_load(const char *path, ParamStore *ps, float *state_a, float *state_b, float *ema,
                    TrainState *st, Err *err) {
    hid_t f = open_checkpoint(path, err);
    if (f < 0) return -1;
    size_t total = ps->total;
    int rc = load_params(f, ps, err);
    if (!rc && state_a && read_floats(f, "optim/state_a", state_a, total, err)) rc = err_prefix(err, "optimizer state");
    if (!rc && state_b && read_floats(f, "optim/state_b", state_b, total, err)) rc = err_prefix(err, "optimizer state");
    if (!rc && ema && read_floats(f, "ema/shadow", ema, total, err)) rc = err_prefix(err, "EMA weights");
    if (!rc && st && read_state(f, st, err)) rc = err_prefix(err, "train state");
    h5_close(f);
    if (rc) err_prefix(err, "%s", path);
    return rc ? -1 : 0;
}

int checkpoint_read_ema(const char *path, float *ema, size_t n, int *found, Err *err) {
    hid_t f = open_checkpoint(path, err);
    if (f < 0) return -1;
    *found = h5_exists(f, "ema/shadow");
    int rc = *found ? read_floats(f, "ema/shadow", ema, n, err) : 0;
    h5_close(f);
    if (rc) err_prefix(err, "%s: EMA weights", path);
    return rc;
}

int checkpoint_load_buffers(const char *path, BufferStore *bs, int *found, Err *err) {
    *found = 0;
    hid_t f = open_checkpoint(path, err);
    if (f < 0) return -1;
    int rc = 0;
    if (h5_exists(f, "buffers")) {
        *found = 1;
        char name[512];
        for (size_t i = 0; i < bs->n && !rc; i++) {
            Buffer *b = &bs->b[i];
            snprintf(name, sizeof name, "buffers/%s", b->name);
            size_t shape[4];
            Err e2 = {0};
            int nd = h5_shape(f, name, shape, &e2);
            if (nd != b->ndim || shape[0] != b->shape[0] || (nd == 2 && shape[1] != b->shape[1])) {
                rc = err_set(err, "%s: buffer %s missing or of another shape (checkpoint of a different model?)", path, b->name);
                break;
            }
            if (b->dtype == BUF_U64 ? h5_read_u64(f, name, b->data, b->numel, &e2) : h5_read_f32(f, name, b->data, b->numel, &e2))
                rc = err_set(err, "%s: %s", path, e2.msg);
            for (size_t j = 0; !rc && b->dtype == BUF_F32 && j < b->numel; j++) /* MoE routing biases: a NaN routes nowhere */
                if (!isfinite(((const float *)b->data)[j]))
                    rc = err_set(err, "%s: buffer %s holds a non-finite value at %zu (corrupt checkpoint)", path, b->name, j);
        }
    }
    h5_close(f);
    return rc ? -1 : 0;
}
