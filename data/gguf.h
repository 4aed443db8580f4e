/* gguf.h — reading GGUF files (the llama.cpp / ggml model format, versions 1 to 3), to import
 * pretrained models such as karpathy's tinyllamas.
 *
 * Layout (ggml's docs/gguf.md): magic "GGUF", u32 version, tensor count and metadata count
 * (u32 in version 1, u64 later), metadata entries (string key, u32 type, value), tensor infos
 * (string name, u32 n_dims, dims, u32 ggml type, u64 offset), then the tensor data, which starts
 * at the next multiple of general.alignment (32 by default). Strings are a length (u32 in
 * version 1, u64 later) and bytes; arrays are a u32 element type, a count and the elements.
 * dims[0] is the fastest-varying: a PyTorch [out, in] matrix has dims {in, out}.
 * Every offset and length is checked against the file; errors name the file and the fault. */
#ifndef TERN_GGUF_H
#define TERN_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"

enum {
    GGUF_U8 = 0, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY,
    GGUF_U64, GGUF_I64, GGUF_F64
};
enum { GGML_F32 = 0, GGML_F16 = 1 };

typedef struct GgufKv {
    const char *key; /* NUL-terminated copy */
    uint32_t type;
    uint32_t elem_type;    /* arrays */
    uint64_t count;        /* arrays: elements; scalars: 1 */
    const uint8_t *data;   /* the value (arrays: the first element) inside the mapping */
} GgufKv;

typedef struct GgufTensor {
    const char *name;
    uint32_t ndim, type;
    uint64_t dims[4];
    uint64_t numel;
    const uint8_t *data;
} GgufTensor;

typedef struct Gguf {
    char *path;
    uint8_t *map;
    size_t size;
    uint32_t version;
    GgufKv *kv;
    size_t nkv;
    GgufTensor *tensors;
    size_t ntensors;
} Gguf;

int gguf_open(Gguf *g, const char *path, Err *err);
void gguf_close(Gguf *g);

const GgufKv *gguf_find(const Gguf *g, const char *key);
/* Integer / float metadata (any integer or float type converts); the error names the key. */
int gguf_get_u64(const Gguf *g, const char *key, uint64_t *out, Err *err);
int gguf_get_f64(const Gguf *g, const char *key, double *out, Err *err);
/* A string value (copied, malloc'd) */
int gguf_get_str(const Gguf *g, const char *key, char **out, Err *err);
/* All elements of an array of strings: s[i] points into the mapping (not NUL-terminated), len[i]
 * its length; s and len hold kv->count entries. */
int gguf_array_strings(const Gguf *g, const GgufKv *kv, const char **s, size_t *len, Err *err);
/* Element i of a numeric array as double. */
int gguf_array_num(const Gguf *g, const GgufKv *kv, uint64_t i, double *out, Err *err);

const GgufTensor *gguf_tensor(const Gguf *g, const char *name);
/* Copies a tensor (F32, F16; Q8_0, TQ1_0, TQ2_0 dequantized) into out as float32; numel must match. */
int gguf_tensor_f32(const Gguf *g, const GgufTensor *t, float *out, size_t numel, Err *err);

/* The tokenizer a llama-family GGUF carries (tokenizer.ggml.model "llama": tokens, scores,
 * token types, bos / eos / unknown / padding ids) as a serialized SentencePiece ModelProto (BPE,
 * byte fallback, identity normalization, a dummy "\u2581" prefix unless tokenizer.ggml.add_space_prefix
 * is false, whitespace kept as is — how
 * llama.cpp tokenizes such models), so the SentencePiece encoder and the official tools can use
 * it. *out is malloc'd. */
int gguf_sentencepiece_model(const Gguf *g, uint8_t **out, size_t *len, Err *err);

#endif
