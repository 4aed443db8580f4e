/* fuzz_common.h — what the reader harnesses share (tests/fuzz/README.md).
 *
 * Fz consumes the fuzzer's bytes the way LLVM's FuzzedDataProvider does: small structural
 * decisions from the front, bulk values (token ids, tensor contents, text) from the back, so a
 * mutation of one value does not reshuffle every decision after it. An exhausted input reads as
 * zeros. Scratch files live on tmpfs (/dev/shm when present), one name per process and suffix,
 * removed at exit. */
#ifndef TERN_FUZZ_COMMON_H
#define TERN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "data/tokenizer.h"

typedef struct Fz {
    const uint8_t *p;
    size_t n;
} Fz;

uint8_t fz_u8(Fz *f);
uint32_t fz_u32(Fz *f);
uint64_t fz_u64(Fz *f);
/* A value in [lo, hi] (hi >= lo), from as few front bytes as the span needs. */
size_t fz_range(Fz *f, size_t lo, size_t hi);
/* Copies n bytes from the back (zeros once the input runs out). */
void fz_back(Fz *f, void *out, size_t n);
/* Picks one of n entries of a table of sizes: boundary values reach the checks best. */
uint64_t fz_pick_u64(Fz *f, const uint64_t *table, size_t n);
/* The next n bytes (or fewer) as an input of their own: the choices a harness makes after a
 * file is built are taken before building it, so the file cannot use them up. */
Fz fz_take_front(Fz *f, size_t n);
/* The rest of the input, which is then empty. */
const uint8_t *fz_rest(Fz *f, size_t *n);
/* Splits the rest in two at a point read from the front (a 16-bit length of the second part). */
void fz_split(Fz *f, const uint8_t **a, size_t *na, const uint8_t **b, size_t *nb);
/* The whole input as a file and, after the split point, a text (most tokenizer harnesses). */
typedef struct FzParts {
    const uint8_t *file, *text;
    size_t nfile, ntext;
} FzParts;
FzParts fz_file_and_text(const uint8_t *data, size_t size);

/* Sizes at and around the limits readers must check (0, 1, 2^31, 2^32, 2^62, 2^64 - 1, ...). */
extern const uint64_t kFzEdgeSizes[];
extern const size_t kFzEdgeSizeCount;

/* A per-process scratch path ending in suffix (e.g. ".h5"); the file is removed at exit. */
const char *fz_scratch_path(const char *suffix);
/* Writes data to path (truncating); aborts when the scratch file cannot be written. */
void fz_write_file(const char *path, const void *data, size_t n);

/* Aborts (a finding) when HDF5 handles are still open: a reader leaked a file, dataset, group,
 * attribute or datatype id. */
void fz_check_h5_closed(const char *who);

/* Encodes text (with and without TOK_ENCODE_ALLOW_INVALID_UTF8, with a shared scratch and a
 * temporary one: the results must agree), decodes the ids and arbitrary ids from ids_bytes, and
 * reads every piece and the info. lossless: decode(encode(text)) must give text back when text
 * is valid UTF-8 (byte-level kinds). Aborts on any disagreement. */
void fz_exercise_tokenizer(const Tokenizer *t, const uint8_t *text, size_t n, const uint8_t *ids_bytes,
                           size_t nids_bytes, int lossless);

/* Whether a model section is small enough to build in a harness: model_create allocates what
 * the section asks for (a typo'd size aborts in xmalloc), so the harnesses only build models
 * whose integers are at most 32 (4096 for the keys that scale one matrix dimension only: the
 * vocabulary, sequence length and hash rows), whose strings (layouts) are at most 16 long, and
 * which leave out no size whose default is large. */
struct cJSON;
int fz_model_section_small(const struct cJSON *section);
/* Adds small values for the size keys the section leaves out where the architecture's default is
 * large (gpt dim 512, ...), so that fuzzed sections build small models. */
void fz_model_section_shrink(struct cJSON *section);

/* An error from a reader: one non-empty line that names `name` (the file) when not NULL. */
void fz_check_error(const Err *err, const char *name);

/* The abort a harness uses for a broken invariant (libFuzzer records the input). */
#define FZ_ASSERT(cond, ...)                                                                   \
    do {                                                                                       \
        if (!(cond)) fz_fail(__FILE__, __LINE__, __VA_ARGS__);                                 \
    } while (0)
void fz_fail(const char *file, int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));

#endif
