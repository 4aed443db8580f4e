#include "data/h5io.h"

#include <stdlib.h>
#include <string.h>

void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

hid_t h5_create(const char *path, Err *err) {
    h5_quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) err_set(err, "%s: cannot create HDF5 file", path);
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
    if (f < 0) err_set(err, "%s: cannot open HDF5 file (corrupt?)", path);
    return f;
}

hid_t h5_open_rw(const char *path, Err *err) {
    h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) err_set(err, "%s: cannot open HDF5 file for writing", path);
    return f;
}

void h5_close(hid_t f) {
    if (f >= 0) H5Fclose(f);
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

static int write_generic(hid_t f, const char *name, int ndim, const size_t *shape, hid_t memtype,
                         hid_t filetype, const void *data, size_t chunk_rows, int deflate, Err *err) {
    hsize_t dims[8];
    for (int i = 0; i < ndim; i++) dims[i] = shape[i];
    if (ndim == 0) {
        dims[0] = 1;
        ndim = 1;
    }
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t lcpl = lcpl_intermediate();
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk_rows && dims[0] > 0) {
        hsize_t cd[8];
        for (int i = 0; i < ndim; i++) cd[i] = dims[i];
        cd[0] = chunk_rows < dims[0] ? chunk_rows : dims[0];
        H5Pset_chunk(dcpl, ndim, cd);
        H5Pset_shuffle(dcpl);
        if (deflate > 0) H5Pset_deflate(dcpl, (unsigned)deflate);
    }
    if (h5_exists(f, name)) H5Ldelete(f, name, H5P_DEFAULT);
    hid_t ds = H5Dcreate2(f, name, filetype, space, lcpl, dcpl, H5P_DEFAULT);
    int rc = 0;
    if (ds < 0 || H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = err_set(err, "HDF5: cannot write dataset %s", name);
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
    return rc;
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
int h5_write_f32_chunked(hid_t f, const char *name, int ndim, const size_t *shape, const float *data,
                         size_t chunk_rows, int deflate, Err *err) {
    return write_generic(f, name, ndim, shape, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, data, chunk_rows,
                         deflate, err);
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
    if (ds < 0 || H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = err_set(err, "HDF5: cannot read dataset %s (corrupt file?)", name);
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
    if (a < 0 || H5Awrite(a, type, v) < 0) rc = err_set(err, "HDF5: cannot write attribute %s", key);
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
    int rc = H5Aread(a, H5T_NATIVE_INT64, value) < 0 ? err_set(err, "HDF5: cannot read attribute %s", key) : 0;
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
