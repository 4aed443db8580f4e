/* h5io.h — the few HDF5 calls tern needs (checkpoints, teacher logits, reference dumps),
 * wrapped so callers get Err messages instead of the HDF5 error stack.
 *
 * Names may contain '/': intermediate groups are created on write. All arrays are contiguous
 * row-major; float32 unless the function says otherwise. */
#ifndef TERN_H5IO_H
#define TERN_H5IO_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"

/* Silences HDF5's own error printing (call once in main or before first use). */
void h5_quiet(void);

hid_t h5_create(const char *path, Err *err);          /* truncates */
hid_t h5_open_read(const char *path, Err *err);
hid_t h5_open_rw(const char *path, Err *err);
void h5_close(hid_t f);

int h5_exists(hid_t f, const char *name);
int h5_write_f32(hid_t f, const char *name, int ndim, const size_t *shape, const float *data, Err *err);
int h5_write_i32(hid_t f, const char *name, int ndim, const size_t *shape, const int32_t *data, Err *err);
int h5_write_u8(hid_t f, const char *name, size_t n, const uint8_t *data, Err *err);
/* Chunked + shuffle + deflate (level 1..9) float/half/int datasets for large streamed arrays. */
int h5_write_f32_chunked(hid_t f, const char *name, int ndim, const size_t *shape, const float *data,
                         size_t chunk_rows, int deflate, Err *err);

/* Shape of a dataset: returns ndim (<= 4) or -1. */
int h5_shape(hid_t f, const char *name, size_t *shape, Err *err);
/* Elements of dataset `name` (each elem_size bytes in memory), refused when the shape's product
 * overflows or the file cannot hold them: a small file may declare a huge, never-written
 * chunked dataset that HDF5 would read as fill values. Call before allocating from a shape. */
int h5_stored_elems(hid_t f, const char *name, size_t elem_size, size_t *elems, Err *err);
/* Reads a whole dataset converting to the requested type; `n` is the capacity in elements
 * and must equal the dataset size. */
int h5_read_f32(hid_t f, const char *name, float *data, size_t n, Err *err);
int h5_read_i32(hid_t f, const char *name, int32_t *data, size_t n, Err *err);
int h5_read_u8(hid_t f, const char *name, uint8_t *data, size_t n, Err *err);
/* Reads a malloc'd whole float dataset (any numeric type converted) with its shape. */
float *h5_read_f32_alloc(hid_t f, const char *name, int *ndim, size_t *shape, Err *err);

/* Attributes on the object `obj` ("/" for the file root). */
int h5_attr_set_str(hid_t f, const char *obj, const char *key, const char *value, Err *err);
int h5_attr_set_i64(hid_t f, const char *obj, const char *key, int64_t value, Err *err);
int h5_attr_set_f64(hid_t f, const char *obj, const char *key, double value, Err *err);
int h5_attr_exists(hid_t f, const char *obj, const char *key);
char *h5_attr_get_str(hid_t f, const char *obj, const char *key, Err *err); /* malloc'd */
int h5_attr_get_i64(hid_t f, const char *obj, const char *key, int64_t *value, Err *err);
int h5_attr_get_f64(hid_t f, const char *obj, const char *key, double *value, Err *err);

#endif
