#include "train/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
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

int checkpoint_save(const char *path, const CheckpointData *cd, Err *err) {
    size_t n = strlen(path) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    hid_t f = h5_create(tmp, err);
    if (f < 0) {
        xfree(tmp);
        return -1;
    }
    int rc = 0;
    char name[512];
    for (size_t i = 0; i < cd->ps->n && !rc; i++) {
        const Tensor *t = cd->ps->t[i];
        snprintf(name, sizeof name, "params/%s", t->name);
        rc = h5_write_f32(f, name, t->ndim, t->shape, t->data, err);
    }
    size_t total = cd->total;
    if (!rc && cd->state_a) rc = h5_write_f32(f, "optim/state_a", 1, &total, cd->state_a, err);
    if (!rc && cd->state_b) rc = h5_write_f32(f, "optim/state_b", 1, &total, cd->state_b, err);
    if (!rc && cd->ema) rc = h5_write_f32(f, "ema/shadow", 1, &total, cd->ema, err);
    for (size_t i = 0; cd->bs && i < cd->bs->n && !rc; i++) {
        const Buffer *b = &cd->bs->b[i];
        snprintf(name, sizeof name, "buffers/%s", b->name);
        rc = b->dtype == BUF_U64 ? h5_write_u64(f, name, b->ndim, b->shape, b->data, err)
                                 : h5_write_f32(f, name, b->ndim, b->shape, b->data, err);
    }
    if (!rc) {
        H5Gclose(H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        const TrainState *s = &cd->st;
        rc = h5_attr_set_i64(f, "state", "step", (int64_t)s->step, err) ||
             h5_attr_set_i64(f, "state", "tokens", (int64_t)s->tokens, err) ||
             h5_attr_set_i64(f, "state", "train_forwards", (int64_t)s->train_forwards, err) ||
             h5_attr_set_i64(f, "state", "loader_epoch", (int64_t)s->loader_epoch, err) ||
             h5_attr_set_i64(f, "state", "loader_pos", (int64_t)s->loader_pos, err) ||
             h5_attr_set_i64(f, "state", "loader_seed", (int64_t)s->loader_seed, err) ||
             h5_attr_set_i64(f, "state", "bad_steps", (int64_t)s->bad_steps, err) ||
             h5_attr_set_i64(f, "state", "qat_active", (int64_t)s->qat_active, err) ||
             h5_attr_set_f64(f, "state", "elapsed_seconds", s->elapsed_seconds, err);
    }
    if (!rc)
        rc = h5_attr_set_str(f, "/", "format", CKPT_FORMAT, err) ||
             h5_attr_set_i64(f, "/", "version", CKPT_VERSION, err) ||
             h5_attr_set_str(f, "/", "config", cd->config_json ? cd->config_json : "{}", err);
    if (H5Fclose(f) < 0 && !rc) rc = err_set(err, "%s: HDF5 close failed", tmp);
    if (!rc && fsync_path(tmp) != 0) rc = err_set(err, "%s: fsync failed (%s)", tmp, strerror(errno));
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

static int read_u64(hid_t f, const char *key, uint64_t *v, Err *err) {
    int64_t x;
    if (h5_attr_get_i64(f, "state", key, &x, err)) return -1;
    *v = (uint64_t)x;
    return 0;
}

int checkpoint_load(const char *path, ParamStore *ps, float *state_a, float *state_b, float *ema,
                    TrainState *st, Err *err) {
    hid_t f = open_checkpoint(path, err);
    if (f < 0) return -1;
    int rc = 0;
    char name[512];
    for (size_t i = 0; i < ps->n && !rc; i++) {
        Tensor *t = ps->t[i];
        snprintf(name, sizeof name, "params/%s", t->name);
        size_t shape[4];
        Err e2 = {0};
        int nd = h5_shape(f, name, shape, &e2);
        if (nd < 0) {
            rc = err_set(err, "%s: parameter %s missing (checkpoint of a different model?)", path, t->name);
            break;
        }
        int same = nd == t->ndim;
        for (int d = 0; same && d < nd; d++) same = shape[d] == t->shape[d];
        if (!same) {
            rc = err_set(err, "%s: parameter %s has a different shape than the model", path, t->name);
            break;
        }
        if (h5_read_f32(f, name, t->data, t->numel, &e2)) rc = err_set(err, "%s: %s", path, e2.msg);
    }
    size_t total = ps->total;
    if (!rc && state_a) {
        Err e2 = {0};
        if (h5_read_f32(f, "optim/state_a", state_a, total, &e2)) rc = err_set(err, "%s: optimizer state: %s", path, e2.msg);
    }
    if (!rc && state_b) {
        Err e2 = {0};
        if (h5_read_f32(f, "optim/state_b", state_b, total, &e2)) rc = err_set(err, "%s: optimizer state: %s", path, e2.msg);
    }
    if (!rc && ema) {
        Err e2 = {0};
        if (h5_read_f32(f, "ema/shadow", ema, total, &e2)) rc = err_set(err, "%s: EMA weights: %s", path, e2.msg);
    }
    if (!rc && st) {
        Err e2 = {0};
        memset(st, 0, sizeof *st);
        if (read_u64(f, "step", &st->step, &e2) || read_u64(f, "tokens", &st->tokens, &e2) ||
            read_u64(f, "train_forwards", &st->train_forwards, &e2) ||
            read_u64(f, "loader_epoch", &st->loader_epoch, &e2) || read_u64(f, "loader_pos", &st->loader_pos, &e2) ||
            read_u64(f, "loader_seed", &st->loader_seed, &e2) || read_u64(f, "bad_steps", &st->bad_steps, &e2) ||
            read_u64(f, "qat_active", &st->qat_active, &e2) ||
            h5_attr_get_f64(f, "state", "elapsed_seconds", &st->elapsed_seconds, &e2))
            rc = err_set(err, "%s: train state: %s", path, e2.msg);
    }
    h5_close(f);
    return rc ? -1 : 0;
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
        }
    }
    h5_close(f);
    return rc ? -1 : 0;
}
