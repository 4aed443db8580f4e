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
/* Why the HDF5 call that just failed failed, in words: the system's reason when a read or write
 * of the file failed ("No space left on device"), "checksum mismatch ..." for damaged data, else
 * HDF5's innermost message. Call it before any other HDF5 call (each one clears the stack). */
const char *h5_error_cause(char *buf, size_t n);

/* Files are written in the 1.8+ format (checksummed metadata). Every dataset written here is
 * chunked with a Fletcher32 checksum per chunk; reads verify it. */
hid_t h5_create(const char *path, Err *err);          /* truncates */
hid_t h5_open_read(const char *path, Err *err);
hid_t h5_open_rw(const char *path, Err *err);
int h5_close(hid_t f);                                /* -1 when HDF5 could not close it cleanly */
/* Closes a file that was written: its last cached data and metadata are flushed here, so a full
 * disk often shows up only now. The id is released either way; on failure err says
 * "write failed: <cause> (flushing the file)". */
int h5_close_written(hid_t f, Err *err);

int h5_exists(hid_t f, const char *name);
int h5_write_f32(hid_t f, const char *name, int ndim, const size_t *shape, const float *data, Err *err);
int h5_write_i32(hid_t f, const char *name, int ndim, const size_t *shape, const int32_t *data, Err *err);
int h5_write_u8(hid_t f, const char *name, size_t n, const uint8_t *data, Err *err);
int h5_write_u64(hid_t f, const char *name, int ndim, const size_t *shape, const uint64_t *data, Err *err);
/* Chunked + shuffle + deflate (level 1..9) float/half/int datasets for large streamed arrays. */
int h5_write_f32_chunked(hid_t f, const char *name, int ndim, const size_t *shape, const float *data,
                         size_t chunk_rows, int deflate, Err *err);
int h5_write_u32_chunked(hid_t f, const char *name, size_t n, const uint32_t *data, size_t chunk_rows, int deflate, Err *err);

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
int h5_read_u64(hid_t f, const char *name, uint64_t *data, size_t n, Err *err);
/* Reads a malloc'd whole float dataset (any numeric type converted) with its shape. */
float *h5_read_f32_alloc(hid_t f, const char *name, int *ndim, size_t *shape, Err *err);

/* The stored element type of a dataset: "float32", "float64", "int32", "uint16", "string", ... */
const char *h5_dtype_name(hid_t f, const char *name, char *buf, size_t n);

/* Reads every dataset of the file whole (so HDF5 checks every chunk's checksum), stopping at the
 * first that fails; an object header that cannot be read counts as damage too. */
typedef struct H5Verify {
    size_t datasets, checksummed; /* datasets read; those of them that carry a checksum */
    char damaged[512];            /* the first dataset that failed ("" = none) */
    char cause[256];              /* why */
} H5Verify;
void h5_verify(hid_t f, H5Verify *v);

/* Attributes on the object `obj` ("/" for the file root). */
int h5_attr_set_str(hid_t f, const char *obj, const char *key, const char *value, Err *err);
int h5_attr_set_i64(hid_t f, const char *obj, const char *key, int64_t value, Err *err);
int h5_attr_set_f64(hid_t f, const char *obj, const char *key, double value, Err *err);
int h5_attr_exists(hid_t f, const char *obj, const char *key);
char *h5_attr_get_str(hid_t f, const char *obj, const char *key, Err *err); /* malloc'd */
int h5_attr_get_i64(hid_t f, const char *obj, const char *key, int64_t *value, Err *err); /* integer types only */
int h5_attr_get_f64(hid_t f, const char *obj, const char *key, double *value, Err *err);

#endif
