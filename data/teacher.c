#include "data/teacher.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/h5io.h"

#define TEACHER_FORMAT "tern-teacher-logits"
#define TEACHER_VERSION 1

/* IEEE half as an HDF5 type: h5py reads it as numpy float16. */
static hid_t f16_type(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

static hid_t make_ds(hid_t f, const char *name, hid_t type, size_t k, int deflate) {
    hsize_t dims[2] = {0, k}, maxd[2] = {H5S_UNLIMITED, k}, chunk[2] = {4096, k};
    int nd = k ? 2 : 1;
    hid_t sp = H5Screate_simple(nd, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, nd, chunk);
    H5Pset_shuffle(dcpl);
    if (deflate) H5Pset_deflate(dcpl, (unsigned)deflate);
    H5Pset_fletcher32(dcpl); /* damaged rows are a read error, not wrong targets */
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return d;
}

int teacher_writer_open(TeacherWriter *w, const char *path, const TeacherMeta *meta, Err *err) {
    memset(w, 0, sizeof *w);
    w->f = w->d_idx = w->d_val = w->d_lse = -1;
    if (meta->k == 0 || meta->k > meta->vocab_size) return err_set(err, "%s: k must be in [1, vocab_size=%zu]", path, meta->vocab_size);
    w->meta = *meta;
    w->path = xstrdup(path);
    size_t n = strlen(path) + 32;
    w->tmp = xmalloc(n);
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    w->f = h5_create(w->tmp, err);
    if (w->f < 0) return -1;
    hid_t vt = meta->fp16 ? f16_type() : H5Tcopy(H5T_IEEE_F32LE);
    w->d_idx = make_ds(w->f, "indices", H5T_STD_I32LE, meta->k, 1);
    w->d_val = make_ds(w->f, "values", vt, meta->k, 1);
    w->d_lse = make_ds(w->f, "lse", H5T_IEEE_F32LE, 0, 1);
    H5Tclose(vt);
    if (w->d_idx < 0 || w->d_val < 0 || w->d_lse < 0) {
        teacher_writer_abort(w);
        return err_set(err, "%s: cannot create datasets", path);
    }
    int rc = h5_attr_set_str(w->f, "/", "format", TEACHER_FORMAT, err) || h5_attr_set_i64(w->f, "/", "version", TEACHER_VERSION, err) ||
             h5_attr_set_i64(w->f, "/", "k", (int64_t)meta->k, err) ||
             h5_attr_set_i64(w->f, "/", "vocab_size", (int64_t)meta->vocab_size, err) ||
             h5_attr_set_f64(w->f, "/", "temperature", meta->temperature, err) ||
             h5_attr_set_str(w->f, "/", "shard", meta->shard, err) ||
             h5_attr_set_i64(w->f, "/", "offset", (int64_t)meta->offset, err) ||
             h5_attr_set_i64(w->f, "/", "seq_len", (int64_t)meta->seq_len, err) ||
             h5_attr_set_str(w->f, "/", "teacher", meta->teacher, err);
    if (rc) {
        teacher_writer_abort(w);
        return err_prefix(err, "%s", path);
    }
    return 0;
}

static int append(hid_t d, hid_t memtype, const void *buf, size_t row0, size_t n, size_t k) {
    hsize_t newdims[2] = {row0 + n, k}, start[2] = {row0, 0}, count[2] = {n, k};
    int nd = k ? 2 : 1;
    if (H5Dset_extent(d, newdims) < 0) return -1;
    hid_t fs = H5Dget_space(d);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(nd, count, NULL);
    herr_t e = H5Dwrite(d, memtype, ms, fs, H5P_DEFAULT, buf);
    hid_t why = e < 0 ? H5Eget_current_stack() : -1; /* the closes below would clear it */
    H5Sclose(ms);
    H5Sclose(fs);
    if (why >= 0) H5Eset_current_stack(why);
    return e < 0 ? -1 : 0;
}

int teacher_writer_append(TeacherWriter *w, const int32_t *idx, const float *val, const float *lse, size_t n, Err *err) {
    if (!n) return 0;
    size_t k = w->meta.k;
    const char *what = append(w->d_idx, H5T_NATIVE_INT32, idx, w->rows, n, k)   ? "indices"
                       : append(w->d_val, H5T_NATIVE_FLOAT, val, w->rows, n, k) ? "values"
                       : append(w->d_lse, H5T_NATIVE_FLOAT, lse, w->rows, n, 0) ? "lse"
                                                                                 : NULL;
    if (what) {
        char cause[256];
        return err_set(err, "%s: write failed: %s (dataset %s)", w->path, h5_error_cause(cause, sizeof cause), what);
    }
    w->rows += n;
    return 0;
}

/* Closes every id (each is released even when its close fails); the first failure, with its
 * cause, goes to err (NULL: ignored, as when aborting). */
static int close_all(TeacherWriter *w, Err *err) {
    hid_t *ids[3] = {&w->d_idx, &w->d_val, &w->d_lse};
    int rc = 0;
    char cause[256];
    for (int i = 0; i < 3; i++) {
        if (*ids[i] >= 0 && H5Dclose(*ids[i]) < 0 && !rc)
            rc = err_set(err, "%s: write failed: %s (closing a dataset)", w->path, h5_error_cause(cause, sizeof cause));
        *ids[i] = -1;
    }
    Err e2 = {0};
    if (w->f >= 0 && h5_close_written(w->f, &e2) && !rc) rc = err_set(err, "%s: %s", w->path, e2.msg);
    w->f = -1;
    return rc;
}

int teacher_writer_close(TeacherWriter *w, Err *err) {
    int rc = close_all(w, err);
    if (!rc && rename(w->tmp, w->path) != 0) rc = err_set(err, "%s: cannot rename into place (%s)", w->path, strerror(errno));
    if (rc) unlink(w->tmp);
    free(w->path);
    xfree(w->tmp);
    w->path = w->tmp = NULL;
    return rc;
}

void teacher_writer_abort(TeacherWriter *w) {
    close_all(w, NULL);
    if (w->tmp) unlink(w->tmp);
    free(w->path);
    xfree(w->tmp);
    w->path = w->tmp = NULL;
}

/* The attributes, each within its range: k in [1, vocab_size], temperature finite and > 0,
 * offset and seq_len sensible. */
static int read_meta(TeacherReader *r, const char *path, Err *err) {
    Err e2 = {0};
    char *fmt = h5_attr_get_str(r->f, "/", "format", &e2);
    int ok = fmt && !strcmp(fmt, TEACHER_FORMAT);
    free(fmt);
    int64_t ver = 0, k = 0, vocab = 0, off = 0, sl = 0;
    if (!ok || h5_attr_get_i64(r->f, "/", "version", &ver, &e2) || ver != TEACHER_VERSION)
        return err_set(err, "%s: not a tern teacher-logit file (version %d)", path, TEACHER_VERSION);
    double temp = 0;
    if (h5_attr_get_i64(r->f, "/", "k", &k, &e2) || h5_attr_get_i64(r->f, "/", "vocab_size", &vocab, &e2) ||
        h5_attr_get_i64(r->f, "/", "offset", &off, &e2) || h5_attr_get_i64(r->f, "/", "seq_len", &sl, &e2) ||
        h5_attr_get_f64(r->f, "/", "temperature", &temp, &e2))
        return err_set(err, "%s: missing attribute (%s)", path, e2.msg);
    if (vocab < 1 || k < 1 || k > vocab)
        return err_set(err, "%s: k %lld / vocab_size %lld out of range (need 1 <= k <= vocab_size)", path, (long long)k, (long long)vocab);
    if (!isfinite(temp) || !(temp > 0)) return err_set(err, "%s: temperature %g (must be finite and > 0)", path, temp);
    if (off < 0 || sl < 1) return err_set(err, "%s: offset %lld / seq_len %lld out of range", path, (long long)off, (long long)sl);
    r->meta.k = (size_t)k;
    r->meta.vocab_size = (size_t)vocab;
    r->meta.offset = (uint64_t)off;
    r->meta.seq_len = (size_t)sl;
    r->meta.temperature = temp;
    char *s = h5_attr_get_str(r->f, "/", "shard", &e2);
    if (s) snprintf(r->meta.shard, sizeof r->meta.shard, "%s", s);
    free(s);
    return 0;
}

/* Every row, once, at open: ids in the vocabulary, logits and log-sum-exps finite, and no top-k
 * logit above its row's log-sum-exp (a probability over 1: a broken lse). A bad row would
 * otherwise make a training step non-finite and silently skipped. The slack covers float16
 * rounding of the stored logits (2^-11 relative). */
static int validate_rows(TeacherReader *r, Err *err) {
    if (r->rows == 0) return 0; /* (k is only known to be <= vocab_size: allocate for stored rows only) */
    size_t k = r->meta.k, block = TERN_MAX((size_t)1, ((size_t)1 << 20) / k); /* ~8 MB of buffers whatever k */
    int32_t *idx = xmalloc(block * k * sizeof(int32_t));
    float *val = xmalloc(block * k * sizeof(float)), *lse = xmalloc(block * sizeof(float));
    int rc = 0;
    for (size_t row0 = 0; row0 < r->rows && !rc; row0 += block) {
        size_t n = TERN_MIN(block, r->rows - row0);
        if (teacher_read(r, row0, n, idx, val, lse, err)) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < n && !rc; i++) {
            float l = lse[i];
            if (!isfinite(l)) rc = err_set(err, "%s: row %zu: log-sum-exp is %g (must be finite)", r->path, row0 + i, l);
            for (size_t j = 0; j < k && !rc; j++) {
                float v = val[i * k + j];
                if (!isfinite(v)) rc = err_set(err, "%s: row %zu: logit %zu is %g (must be finite)", r->path, row0 + i, j, v);
                else if (v > l + 1e-3f * fabsf(l) + 1e-3f)
                    rc = err_set(err, "%s: row %zu: logit %g exceeds the row's log-sum-exp %g", r->path, row0 + i, v, l);
            }
        }
    }
    xfree(idx);
    xfree(val);
    xfree(lse);
    return rc;
}

int teacher_reader_open(TeacherReader *r, const char *path, size_t expected_vocab, Err *err) {
    memset(r, 0, sizeof *r);
    r->f = r->d_idx = r->d_val = r->d_lse = -1;
    r->f = h5_open_read(path, err);
    if (r->f < 0) return -1;
    r->path = xstrdup(path);
    int rc = read_meta(r, path, err);
    size_t k = r->meta.k;
    if (!rc && expected_vocab && r->meta.vocab_size != expected_vocab)
        rc = err_set(err, "%s: teacher vocabulary is %zu, the model's is %zu", path, r->meta.vocab_size, expected_vocab);
    size_t si[4], sv[4], sl[4];
    Err e2 = {0};
    if (!rc && (h5_shape(r->f, "indices", si, &e2) != 2 || h5_shape(r->f, "values", sv, &e2) != 2 || si[1] != k ||
                sv[1] != k || si[0] != sv[0]))
        rc = err_set(err, "%s: /indices and /values must both be [N, %zu]", path, k);
    char ti[32], tv[32], tl[32];
    h5_dtype_name(r->f, "indices", ti, sizeof ti);
    h5_dtype_name(r->f, "values", tv, sizeof tv);
    h5_dtype_name(r->f, "lse", tl, sizeof tl);
    if (!rc && (!strstr(ti, "int") || strncmp(tv, "float", 5) || strncmp(tl, "float", 5)))
        rc = err_set(err, "%s: /indices, /values, /lse are %s, %s, %s (need integers, floats, floats)", path, ti, tv, tl);
    r->rows = rc ? 0 : si[0];
    if (!rc && (h5_shape(r->f, "lse", sl, &e2) != 1 || sl[0] != r->rows)) rc = err_set(err, "%s: /lse must be [%zu]", path, r->rows);
    size_t stored; /* declared rows must be stored ones: validate_rows reads them all */
    if (!rc && (h5_stored_elems(r->f, "indices", sizeof(int32_t), &stored, &e2) || h5_stored_elems(r->f, "values", sizeof(float), &stored, &e2) ||
                h5_stored_elems(r->f, "lse", sizeof(float), &stored, &e2)))
        rc = err_set(err, "%s: %s", path, e2.msg);
    if (!rc) {
        r->d_idx = H5Dopen2(r->f, "indices", H5P_DEFAULT);
        r->d_val = H5Dopen2(r->f, "values", H5P_DEFAULT);
        r->d_lse = H5Dopen2(r->f, "lse", H5P_DEFAULT);
        if (r->d_idx < 0 || r->d_val < 0 || r->d_lse < 0) rc = err_set(err, "%s: cannot open its datasets", path);
    }
    if (!rc) rc = validate_rows(r, err);
    if (rc) teacher_reader_close(r);
    return rc;
}

static int read_rows(hid_t d, hid_t memtype, void *buf, size_t row0, size_t n, size_t k) {
    hsize_t start[2] = {row0, 0}, count[2] = {n, k};
    int nd = k ? 2 : 1;
    hid_t fs = H5Dget_space(d);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(nd, count, NULL);
    herr_t e = H5Dread(d, memtype, ms, fs, H5P_DEFAULT, buf);
    hid_t why = e < 0 ? H5Eget_current_stack() : -1; /* the closes below would clear it */
    H5Sclose(ms);
    H5Sclose(fs);
    if (why >= 0) H5Eset_current_stack(why);
    return e < 0 ? -1 : 0;
}

int teacher_read(TeacherReader *r, size_t row, size_t n, int32_t *idx, float *val, float *lse, Err *err) {
    if (n > r->rows || row > r->rows - n) /* row + n may wrap */
        return err_set(err, "%s: rows [%zu, %zu) beyond the %zu stored", r->path, row, row + n, r->rows);
    size_t k = r->meta.k;
    if ((idx && read_rows(r->d_idx, H5T_NATIVE_INT32, idx, row, n, k)) || (val && read_rows(r->d_val, H5T_NATIVE_FLOAT, val, row, n, k)) ||
        (lse && read_rows(r->d_lse, H5T_NATIVE_FLOAT, lse, row, n, 0)))
    {
        char cause[256];
        return err_set(err, "%s: rows [%zu, %zu): read failed: %s", r->path, row, row + n, h5_error_cause(cause, sizeof cause));
    }
    if (idx)
        for (size_t i = 0; i < n * k; i++)
            if (idx[i] < 0 || (size_t)idx[i] >= r->meta.vocab_size)
                return err_set(err, "%s: row %zu holds id %d outside the vocabulary", r->path, row + i / k, idx[i]);
    return 0;
}

int teacher_read_window(TeacherReader *r, size_t pos, size_t T, int32_t *idx, float *val, float *lse, Err *err) {
    if (pos < r->meta.offset) return err_set(err, "%s: shard position %zu precedes the file's offset %llu", r->path, pos, (unsigned long long)r->meta.offset);
    return teacher_read(r, pos - (size_t)r->meta.offset, T, idx, val, lse, err);
}

void teacher_reader_close(TeacherReader *r) {
    if (r->d_idx >= 0) H5Dclose(r->d_idx);
    if (r->d_val >= 0) H5Dclose(r->d_val);
    if (r->d_lse >= 0) H5Dclose(r->d_lse);
    if (r->f >= 0) H5Fclose(r->f);
    free(r->path);
    memset(r, 0, sizeof *r);
    r->f = r->d_idx = r->d_val = r->d_lse = -1;
}

void teacher_topk_row(const float *z, size_t V, size_t k, int32_t *idx, float *val, float *lse) {
    /* insertion into a sorted top-k list: k is small (tens) */
    size_t cnt = 0;
    double m = -INFINITY;
    for (size_t c = 0; c < V; c++) m = z[c] > m ? z[c] : m;
    double s = 0;
    for (size_t c = 0; c < V; c++) {
        s += exp((double)z[c] - m);
        if (cnt < k || z[c] > val[k - 1]) {
            size_t j = cnt < k ? cnt++ : k - 1;
            while (j > 0 && val[j - 1] < z[c]) {
                val[j] = val[j - 1];
                idx[j] = idx[j - 1];
                j--;
            }
            val[j] = z[c];
            idx[j] = (int32_t)c;
        }
    }
    *lse = (float)(m + log(s));
}
