#include "data/h5io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HDF5 1.10 closes every file still open from an atexit handler; a file whose H5Fclose failed
 * (its final flush hit a full disk) is left half torn down, and that handler then crashes
 * (SIGSEGV in H5F__close_cb). tern closes each file itself and reports the failure, so the
 * handler is never needed: this must run before the library's first call, hence a constructor. */
__attribute__((constructor)) static void h5_no_atexit(void) { H5dont_atexit(); }

void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct CauseWalk {
    int sys_errno;    /* errno of a failed system call (the sec2 driver writes "errno = N") */
    int checksum;     /* a Fletcher32 / metadata checksum mismatch */
    char inner[200];  /* the innermost description */
} CauseWalk;

static herr_t cause_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    CauseWalk *w = data;
    const char *d = e->desc ? e->desc : "";
    const char *en = strstr(d, "errno = ");
    if (en && !w->sys_errno) w->sys_errno = atoi(en + 8);
    if (strstr(d, "checksum") || strstr(d, "Fletcher32")) w->checksum = 1;
    if (d[0]) snprintf(w->inner, sizeof w->inner, "%s", d);
    return 0;
}

const char *h5_error_cause(char *buf, size_t n) {
    CauseWalk w = {0, 0, ""};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, cause_cb, &w);
    if (w.sys_errno > 0) snprintf(buf, n, "%s", strerror(w.sys_errno));
    else if (w.checksum) snprintf(buf, n, "checksum mismatch: the stored data is damaged");
    else snprintf(buf, n, "%s", w.inner[0] ? w.inner : "HDF5 error");
    return buf;
}

hid_t h5_create(const char *path, Err *err) {
    h5_quiet();
    /* the 1.8+ file format checksums its metadata (superblock, object headers with their
     * attributes), so a damaged header is an error at open instead of silently wrong values */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18); /* readable by HDF5 1.8 and later */
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        char cause[256];
        err_set(err, "%s: cannot create HDF5 file (%s)", path, h5_error_cause(cause, sizeof cause));
    }
    return f;
}

hid_t h5_open_read(const char *path, Err *err) {
    h5_quiet();
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        err_set(err, "%s: not a readable HDF5 file (missing, truncated or corrupt)", path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        char cause[256];
        err_set(err, "%s: cannot open HDF5 file (%s)", path, h5_error_cause(cause, sizeof cause));
    }
    return f;
}

hid_t h5_open_rw(const char *path, Err *err) {
    h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) err_set(err, "%s: cannot open HDF5 file for writing", path);
    return f;
}

int h5_close(hid_t f) {
    if (f < 0) return 0;
    return H5Fclose(f) < 0 ? -1 : 0;
}

int h5_close_written(hid_t f, Err *err) {
    if (f < 0) return 0;
    if (H5Fclose(f) >= 0) return 0;
    char cause[256];
    return err_set(err, "write failed: %s (flushing the file)", h5_error_cause(cause, sizeof cause));
}

int h5_exists(hid_t f, const char *name) {
    /* H5Lexists needs every intermediate link to exist: walk the path */
    char buf[512];
    size_t n = strlen(name);
    if (n >= sizeof buf) return 0;
    memcpy(buf, name, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (H5Lexists(f, buf, H5P_DEFAULT) <= 0) return 0;
            buf[i] = c;
        }
    }
    return 1;
}

static hid_t lcpl_intermediate(void) {
    hid_t p = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(p, 1);
    return p;
}

/* Chunk rows for a dataset: the caller's, or about 4 M elements per chunk (HDF5 caps a chunk at
 * 4 GB; a chunk is the unit the checksum covers). */
static hsize_t chunk_rows_for(const hsize_t *dims, int ndim, size_t chunk_rows) {
    if (chunk_rows) return chunk_rows < dims[0] ? chunk_rows : dims[0];
    hsize_t row = 1;
    for (int i = 1; i < ndim; i++) row *= dims[i];
    hsize_t rows = ((hsize_t)1 << 22) / (row ? row : 1);
    if (rows < 1) rows = 1;
    return rows < dims[0] ? rows : dims[0];
}

/* Every dataset is chunked with a Fletcher32 checksum per chunk (verified by HDF5 on every read),
 * so silent damage to tensor data is an error instead of wrong numbers. Empty datasets have
 * nothing to checksum and stay contiguous. */
static hid_t checked_dcpl(const hsize_t *dims, int ndim, size_t chunk_rows, int deflate) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t total = 1;
    for (int i = 0; i < ndim; i++) total *= dims[i];
    if (total == 0) return dcpl;
    hsize_t cd[8];
    for (int i = 0; i < ndim; i++) cd[i] = dims[i];
    cd[0] = chunk_rows_for(dims, ndim, chunk_rows);
    H5Pset_chunk(dcpl, ndim, cd);
    if (deflate > 0) {
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, (unsigned)deflate);
    }
    H5Pset_fletcher32(dcpl);
    return dcpl;
}

static int write_generic(hid_t f, const char *name, int ndim, const size_t *shape, hid_t memtype,
                         hid_t filetype, const void *data, size_t chunk_rows, int deflate, Err *err) {
    hsize_t dims[8];
    if (ndim > 8) return err_set(err, "write failed: dataset %s has %d dimensions (at most 8)", name, ndim);
    for (int i = 0; i < ndim; i++) dims[i] = shape[i];
    if (ndim == 0) {
        dims[0] = 1;
        ndim = 1;
    }
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t lcpl = lcpl_intermediate();
    hid_t dcpl = checked_dcpl(dims, ndim, chunk_rows, deflate);
    if (h5_exists(f, name)) H5Ldelete(f, name, H5P_DEFAULT);
    hid_t ds = H5Dcreate2(f, name, filetype, space, lcpl, dcpl, H5P_DEFAULT);
    int ok = ds >= 0 && H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    char cause[256] = "";
    if (!ok) h5_error_cause(cause, sizeof cause); /* before the next call clears the error stack */
    if (ds >= 0 && H5Dclose(ds) < 0 && ok) { /* the dataset's cached data is written here */
        ok = 0;
        h5_error_cause(cause, sizeof cause);
    }
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
    return ok ? 0 : err_set(err, "write failed: %s (dataset %s)", cause, name);
}

int h5_write_f32(hid_t f, const char *name, int ndim, const size_t *shape, const float *data, Err *err) {
    return write_generic(f, name, ndim, shape, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, data, 0, 0, err);
}
int h5_write_i32(hid_t f, const char *name, int ndim, const size_t *shape, const int32_t *data, Err *err) {
    return write_generic(f, name, ndim, shape, H5T_NATIVE_INT32, H5T_STD_I32LE, data, 0, 0, err);
}
int h5_write_u8(hid_t f, const char *name, size_t n, const uint8_t *data, Err *err) {
    return write_generic(f, name, 1, &n, H5T_NATIVE_UINT8, H5T_STD_U8LE, data, 0, 0, err);
}
int h5_write_u64(hid_t f, const char *name, int ndim, const size_t *shape, const uint64_t *data, Err *err) {
    return write_generic(f, name, ndim, shape, H5T_NATIVE_UINT64, H5T_STD_U64LE, data, 0, 0, err);
}
int h5_write_f32_chunked(hid_t f, const char *name, int ndim, const size_t *shape, const float *data,
                         size_t chunk_rows, int deflate, Err *err) {
    return write_generic(f, name, ndim, shape, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, data, chunk_rows,
                         deflate, err);
}

int h5_write_u32_chunked(hid_t f, const char *name, size_t n, const uint32_t *data, size_t chunk_rows, int deflate, Err *err) {
    return write_generic(f, name, 1, &n, H5T_NATIVE_UINT32, H5T_STD_U32LE, data, chunk_rows, deflate, err);
}

int h5_shape(hid_t f, const char *name, size_t *shape, Err *err) {
    if (!h5_exists(f, name)) return err_set(err, "HDF5: no dataset %s", name);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return err_set(err, "HDF5: cannot open dataset %s", name);
    hid_t sp = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[32];
    if (nd < 0 || nd > 4) {
        H5Sclose(sp);
        H5Dclose(ds);
        return err_set(err, "HDF5: dataset %s has %d dims (max 4)", name, nd);
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = 0; i < nd; i++) shape[i] = (size_t)dims[i];
    H5Sclose(sp);
    H5Dclose(ds);
    return nd;
}

/* Elements of a shape; SIZE_MAX when the product overflows (it must never wrap to a small
 * number that happens to match a buffer). */
static size_t shape_elems(int nd, const size_t *shape) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) {
        if (shape[i] && n > (SIZE_MAX - 1) / shape[i]) return SIZE_MAX;
        n *= shape[i];
    }
    return n;
}

/* deflate expands at most 1032-fold (zlib's limit); datasets up to this size are not checked */
#define H5_MAX_EXPANSION 1100
#define H5_UNCHECKED_BYTES ((size_t)1 << 20)

int h5_stored_elems(hid_t f, const char *name, size_t elem_size, size_t *elems, Err *err) {
    size_t shape[4];
    int nd = h5_shape(f, name, shape, err);
    if (nd < 0) return -1;
    size_t n = shape_elems(nd, shape);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    unsigned long long stored = ds >= 0 ? (unsigned long long)H5Dget_storage_size(ds) : 0;
    if (ds >= 0) H5Dclose(ds);
    if (n == SIZE_MAX || n > SIZE_MAX / elem_size ||
        (n * elem_size > H5_UNCHECKED_BYTES && n * elem_size / H5_MAX_EXPANSION > stored))
        return err_set(err, "HDF5: dataset %s declares %s%zu elements but stores %llu bytes (corrupt or sparse)", name,
                       n == SIZE_MAX ? "more than " : "", n, stored);
    *elems = n;
    return 0;
}

static int read_generic(hid_t f, const char *name, hid_t memtype, void *data, size_t n, Err *err) {
    size_t shape[4];
    int nd = h5_shape(f, name, shape, err);
    if (nd < 0) return -1;
    size_t total = shape_elems(nd, shape);
    if (total != n) return err_set(err, "HDF5: dataset %s has %s%zu elements, expected %zu", name, total == SIZE_MAX ? "more than " : "", total, n);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    int rc = 0;
    if (ds < 0 || H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        char cause[256];
        rc = err_set(err, "HDF5: cannot read dataset %s: %s", name, h5_error_cause(cause, sizeof cause));
    }
    if (ds >= 0) H5Dclose(ds);
    return rc;
}

int h5_read_f32(hid_t f, const char *name, float *data, size_t n, Err *err) {
    return read_generic(f, name, H5T_NATIVE_FLOAT, data, n, err);
}
int h5_read_i32(hid_t f, const char *name, int32_t *data, size_t n, Err *err) {
    return read_generic(f, name, H5T_NATIVE_INT32, data, n, err);
}
int h5_read_u8(hid_t f, const char *name, uint8_t *data, size_t n, Err *err) {
    return read_generic(f, name, H5T_NATIVE_UINT8, data, n, err);
}
int h5_read_u64(hid_t f, const char *name, uint64_t *data, size_t n, Err *err) {
    return read_generic(f, name, H5T_NATIVE_UINT64, data, n, err);
}

float *h5_read_f32_alloc(hid_t f, const char *name, int *ndim, size_t *shape, Err *err) {
    int nd = h5_shape(f, name, shape, err);
    size_t n;
    if (nd < 0 || h5_stored_elems(f, name, sizeof(float), &n, err)) return NULL;
    float *d = xmalloc((n ? n : 1) * sizeof(float));
    if (h5_read_f32(f, name, d, n, err)) {
        xfree(d);
        return NULL;
    }
    if (ndim) *ndim = nd;
    return d;
}

static hid_t open_obj(hid_t f, const char *obj) { return H5Oopen(f, obj, H5P_DEFAULT); }

static int attr_write(hid_t f, const char *obj, const char *key, hid_t type, const void *v, Err *err) {
    hid_t o = open_obj(f, obj);
    if (o < 0) return err_set(err, "HDF5: no object %s for attribute %s", obj, key);
    if (H5Aexists(o, key) > 0) H5Adelete(o, key);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, key, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (a < 0 || H5Awrite(a, type, v) < 0) {
        char cause[256];
        rc = err_set(err, "write failed: %s (attribute %s)", h5_error_cause(cause, sizeof cause), key);
    }
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
    return rc;
}

int h5_attr_set_str(hid_t f, const char *obj, const char *key, const char *value, Err *err) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = attr_write(f, obj, key, t, &value, err);
    H5Tclose(t);
    return rc;
}
int h5_attr_set_i64(hid_t f, const char *obj, const char *key, int64_t value, Err *err) {
    return attr_write(f, obj, key, H5T_NATIVE_INT64, &value, err);
}
int h5_attr_set_f64(hid_t f, const char *obj, const char *key, double value, Err *err) {
    return attr_write(f, obj, key, H5T_NATIVE_DOUBLE, &value, err);
}

int h5_attr_exists(hid_t f, const char *obj, const char *key) {
    hid_t o = open_obj(f, obj);
    if (o < 0) return 0;
    int e = H5Aexists(o, key) > 0;
    H5Oclose(o);
    return e;
}

static hid_t attr_open(hid_t f, const char *obj, const char *key, hid_t *o, Err *err) {
    *o = open_obj(f, obj);
    if (*o < 0) {
        err_set(err, "HDF5: no object %s", obj);
        return -1;
    }
    if (H5Aexists(*o, key) <= 0) {
        H5Oclose(*o);
        err_set(err, "HDF5: %s has no attribute %s", obj, key);
        return -1;
    }
    hid_t a = H5Aopen(*o, key, H5P_DEFAULT);
    /* the getters read into one value: an array attribute would overflow it */
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t npoints = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (npoints != 1) {
        if (a >= 0) H5Aclose(a);
        H5Oclose(*o);
        err_set(err, "HDF5: attribute %s of %s must hold one value, not %lld", key, obj, (long long)npoints);
        return -1;
    }
    return a;
}

char *h5_attr_get_str(hid_t f, const char *obj, const char *key, Err *err) {
    hid_t o, a = attr_open(f, obj, key, &o, err);
    if (a < 0) return NULL;
    hid_t ft = H5Aget_type(a);
    char *out = NULL;
    if (H5Tget_class(ft) != H5T_STRING) {
        err_set(err, "HDF5: attribute %s is not a string", key);
    } else if (H5Tis_variable_str(ft) > 0) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5Tget_cset(ft)); /* ASCII <-> UTF-8 is not a conversion HDF5 performs */
        char *v = NULL;
        if (H5Aread(a, t, &v) >= 0 && v) {
            out = xstrdup(v);
            hid_t sp = H5Screate(H5S_SCALAR);
            H5Dvlen_reclaim(t, sp, H5P_DEFAULT, &v);
            H5Sclose(sp);
        } else {
            err_set(err, "HDF5: cannot read attribute %s", key);
        }
        H5Tclose(t);
    } else {
        size_t n = H5Tget_size(ft);
        out = xcalloc(n + 1, 1);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, n);
        H5Tset_cset(t, H5Tget_cset(ft));
        if (H5Aread(a, t, out) < 0) {
            xfree(out);
            out = NULL;
            err_set(err, "HDF5: cannot read attribute %s", key);
        }
        H5Tclose(t);
    }
    H5Tclose(ft);
    H5Aclose(a);
    H5Oclose(o);
    return out;
}

int h5_attr_get_i64(hid_t f, const char *obj, const char *key, int64_t *value, Err *err) {
    hid_t o, a = attr_open(f, obj, key, &o, err);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a);
    int integer = H5Tget_class(t) == H5T_INTEGER; /* HDF5 would truncate 2.5 to 2 without a word */
    H5Tclose(t);
    int rc = !integer                                   ? err_set(err, "HDF5: attribute %s is not an integer", key)
             : H5Aread(a, H5T_NATIVE_INT64, value) < 0 ? err_set(err, "HDF5: cannot read attribute %s", key)
                                                        : 0;
    H5Aclose(a);
    H5Oclose(o);
    return rc;
}

int h5_attr_get_f64(hid_t f, const char *obj, const char *key, double *value, Err *err) {
    hid_t o, a = attr_open(f, obj, key, &o, err);
    if (a < 0) return -1;
    int rc = H5Aread(a, H5T_NATIVE_DOUBLE, value) < 0 ? err_set(err, "HDF5: cannot read attribute %s", key) : 0;
    H5Aclose(a);
    H5Oclose(o);
    return rc;
}

const char *h5_dtype_name(hid_t f, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "?");
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return buf;
    hid_t t = H5Dget_type(ds);
    size_t bits = 8 * H5Tget_size(t);
    switch (H5Tget_class(t)) {
    case H5T_FLOAT: snprintf(buf, n, "float%zu", bits); break;
    case H5T_INTEGER: snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits); break;
    case H5T_STRING: snprintf(buf, n, "string"); break;
    default: snprintf(buf, n, "a non-numeric type"); break;
    }
    H5Tclose(t);
    H5Dclose(ds);
    return buf;
}

/* ---------------------------------------------------------------- verification */

static int dataset_has_fletcher32(hid_t ds) {
    hid_t dcpl = H5Dget_create_plist(ds);
    unsigned flags = 0, cd[8];
    size_t ncd = 8;
    int has = H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &ncd, cd, 0, NULL, NULL) >= 0;
    H5Pclose(dcpl);
    return has;
}

/* Reads the whole dataset in its own (native) type: HDF5 checks each chunk's checksum. */
static int read_whole(hid_t ds, char *cause, size_t n) {
    hid_t ft = H5Dget_type(ds), mt = H5Tget_native_type(ft, H5T_DIR_ASCEND);
    hid_t sp = H5Dget_space(ds);
    hssize_t npoints = H5Sget_simple_extent_npoints(sp);
    size_t esize = H5Tget_size(mt);
    int ok = npoints >= 0 && mt >= 0 && H5Tget_class(ft) != H5T_STRING && H5Tis_variable_str(ft) <= 0;
    if (ok && npoints > 0) {
        void *buf = xmalloc((size_t)npoints * esize);
        ok = H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
        if (!ok) h5_error_cause(cause, n);
        xfree(buf);
    }
    H5Sclose(sp);
    if (mt >= 0) H5Tclose(mt);
    H5Tclose(ft);
    return ok;
}

static herr_t verify_cb(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
    if (info->type != H5O_TYPE_DATASET) return 0;
    H5Verify *v = data;
    hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT);
    if (ds < 0) {
        snprintf(v->damaged, sizeof v->damaged, "%s", name);
        h5_error_cause(v->cause, sizeof v->cause);
        return 1;
    }
    int has = dataset_has_fletcher32(ds);
    int ok = read_whole(ds, v->cause, sizeof v->cause);
    H5Dclose(ds);
    v->datasets++;
    v->checksummed += has;
    if (!ok) {
        snprintf(v->damaged, sizeof v->damaged, "%s", name);
        return 1; /* stop at the first damaged dataset */
    }
    return 0;
}

void h5_verify(hid_t f, H5Verify *v) {
    memset(v, 0, sizeof *v);
    if (H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, verify_cb, v) < 0 && !v->damaged[0]) {
        /* a group or object header that cannot be read is damage too */
        snprintf(v->damaged, sizeof v->damaged, "(the file's object headers)");
        h5_error_cause(v->cause, sizeof v->cause);
    }
}
