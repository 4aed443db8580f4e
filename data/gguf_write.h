/* gguf_write.h — writing GGUF version 3 files (the format data/gguf.h reads; ggml's docs/gguf.md):
 * magic "GGUF", u32 version 3, u64 tensor count, u64 metadata count, the metadata (u64-length
 * string key, u32 type, value), the tensor infos (name, u32 n_dims, u64 dims with dims[0] the
 * fastest-varying, u32 ggml type, u64 offset from the start of the data section), zero padding
 * to general.alignment, then each tensor's bytes at its offset, each offset a multiple of the
 * alignment. Metadata and tensors are collected in memory, then written in one go to a
 * temporary file that is renamed into place (nothing is left half-written). */
#ifndef TERN_GGUF_WRITE_H
#define TERN_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"

#define GGUF_WRITE_ALIGNMENT 32

typedef struct GgufBuf {
    uint8_t *p;
    size_t n, cap;
} GgufBuf;

typedef struct GgufOutTensor {
    char *name;
    uint32_t ndim, type;
    uint64_t dims[4];
    uint8_t *data; /* owned */
    size_t bytes;
} GgufOutTensor;

typedef struct GgufWriter {
    GgufBuf kv;
    uint64_t nkv;
    GgufOutTensor *t;
    size_t nt, cap;
} GgufWriter;

void gguf_writer_init(GgufWriter *w);
void gguf_writer_free(GgufWriter *w);

void gguf_put_str(GgufWriter *w, const char *key, const char *value);
void gguf_put_u32(GgufWriter *w, const char *key, uint32_t value);
void gguf_put_f32(GgufWriter *w, const char *key, float value);
void gguf_put_bool(GgufWriter *w, const char *key, int value);
/* arrays: strings (s[i] of len[i] bytes), float32, int32 */
void gguf_put_arr_str(GgufWriter *w, const char *key, const char *const *s, const size_t *len, size_t n);
void gguf_put_arr_f32(GgufWriter *w, const char *key, const float *v, size_t n);
void gguf_put_arr_i32(GgufWriter *w, const char *key, const int32_t *v, size_t n);

/* Adds a tensor; data (malloc'd, `bytes` long) is taken over by the writer. */
void gguf_add_tensor(GgufWriter *w, const char *name, uint32_t ndim, const uint64_t *dims, uint32_t type, uint8_t *data,
                     size_t bytes);

/* The whole file in memory (*out malloc'd), or written to path atomically. */
void gguf_writer_bytes(const GgufWriter *w, uint8_t **out, size_t *len);
int gguf_writer_save(const GgufWriter *w, const char *path, Err *err);

#endif
