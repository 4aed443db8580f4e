/* shard.h — token shards in the parameter-golf format, and HDF5 token datasets.
 *
 * .bin shard: 256 little-endian int32 header (magic 20240520, version 1, token count, rest 0),
 * then `count` little-endian uint16 tokens; file size must be exactly 1024 + 2*count. Each
 * document starts with BOS. Read through mmap (no copy).
 * .h5 shard: dataset /tokens of uint16 or uint32 (vocabularies over 65,535), loaded into memory.
 * Validation names the file and the fault: bad magic / version, size mismatch, token >= vocab. */
#ifndef TERN_SHARD_H
#define TERN_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"

#define SHARD_MAGIC 20240520
#define SHARD_VERSION 1
#define SHARD_HEADER_BYTES 1024

typedef struct Shard {
    char *path;
    size_t ntokens;
    const uint16_t *t16; /* exactly one of t16 / t32 is set */
    const uint32_t *t32;
    void *map;           /* mmap base (bin) */
    size_t map_len;
    uint32_t *owned;     /* heap tokens (h5) */
    uint32_t max_token;  /* filled by shard_validate */
} Shard;

/* Opens and checks the header / size. vocab > 0 also checks every token < vocab. */
int shard_open(Shard *s, const char *path, size_t vocab, Err *err);
void shard_close(Shard *s);
static inline uint32_t shard_token(const Shard *s, size_t i) { return s->t16 ? s->t16[i] : s->t32[i]; }
int shard_validate(Shard *s, size_t vocab, Err *err);
/* Copies tokens [start, start+n) as int32. */
void shard_copy(const Shard *s, size_t start, size_t n, int32_t *out);

/* Writes a .bin shard atomically (temp file + fsync + rename). Tokens must be < 65,536. */
int shard_write_bin(const char *path, const uint32_t *tokens, size_t n, Err *err);
/* Writes an HDF5 token shard (/tokens as uint32) atomically. */
int shard_write_h5(const char *path, const uint32_t *tokens, size_t n, Err *err);

/* Expands a glob into a sorted list of paths (malloc'd array of malloc'd strings). */
int path_glob(const char *pattern, char ***paths, size_t *n, Err *err);
void path_list_free(char **paths, size_t n);
/* The same for a comma-separated list of globs, concatenated in order; no file is an error. */
int path_glob_list(const char *pattern, char ***paths, size_t *n, Err *err);

#endif
