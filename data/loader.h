/* loader.h — training windows, validation windows and documents over token shards.
 *
 * Training: every shard is cut into non-overlapping windows of T+1 tokens at stride T (the +1 is
 * the shifted target). The windows of all shards are visited in an order drawn from (seed,
 * epoch) — a keyed pseudo-random permutation, so nothing of size #windows is stored — and the
 * order is redrawn each epoch. Each call takes B windows per rank: with world size W, a step
 * consumes B*W consecutive windows of the order and rank r gets the r-th slice of B, so ranks
 * read disjoint windows and together cover the epoch. The cursor (epoch, position) is all the
 * state: saving and restoring it continues the identical sequence.
 *
 * Validation: the official evaluation's windows — the concatenated stream cut into
 * non-overlapping T-token windows (inputs tokens[iT : iT+T], targets shifted by one); the final
 * partial window is dropped. Documents: spans starting at each BOS. */
#ifndef TERN_LOADER_H
#define TERN_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "data/shard.h"

typedef struct LoaderCursor {
    uint64_t epoch;
    uint64_t pos;   /* next window index in the epoch's order */
    uint64_t seed;
} LoaderCursor;

typedef struct Loader {
    Shard *shards;
    size_t nshards;
    size_t T;
    uint64_t *first_window; /* prefix sums of windows per shard (nshards + 1) */
    uint64_t nwindows;
    int rank, world;
    LoaderCursor cur;
} Loader;

/* pattern: a glob or a comma-separated list of globs. vocab > 0 validates token ids. */
int loader_open(Loader *L, const char *pattern, size_t T, uint64_t seed, int rank, int world,
                size_t vocab, Err *err);
void loader_close(Loader *L);
/* Fills x[B*T] and y[B*T] (int32) with this rank's next B windows and advances the cursor by
 * B*world windows. */
void loader_next(Loader *L, size_t B, int32_t *x, int32_t *y);
/* The same, also reporting each of the B windows' shard index and token offset (either may be
 * NULL), e.g. to fetch aligned teacher logits. */
void loader_next_pos(Loader *L, size_t B, int32_t *x, int32_t *y, size_t *shard_of, size_t *offset_of);
/* The window at global order index `k` of epoch `e` (for tests and inspection). */
void loader_window_at(const Loader *L, uint64_t epoch, uint64_t k, size_t *shard, size_t *offset);

/* Keyed bijection of [0, n): a 4-round Feistel network with cycle walking. */
uint64_t permute_index(uint64_t i, uint64_t n, uint64_t key);

/* A contiguous token stream (one or more shards concatenated) for evaluation. */
typedef struct TokenStream {
    Shard *shards;
    size_t nshards;
    size_t ntokens;
    uint64_t *starts; /* token offset of each shard, nshards + 1 */
} TokenStream;

int stream_open(TokenStream *s, const char *pattern, size_t vocab, Err *err);
void stream_close(TokenStream *s);
uint32_t stream_token(const TokenStream *s, size_t i);
void stream_copy(const TokenStream *s, size_t start, size_t n, int32_t *out);
/* Number of full validation windows of T tokens: (ntokens - 1) / T. */
size_t stream_val_windows(const TokenStream *s, size_t T);
/* Window w: x = tokens[wT, wT+T), y = tokens[wT+1, wT+T+1). */
void stream_val_window(const TokenStream *s, size_t T, size_t w, int32_t *x, int32_t *y);
/* Document start offsets (positions of `bos`), malloc'd; *n documents. The last document ends
 * at ntokens. When the stream does not open with BOS, offset 0 starts a first (fragment)
 * document. */
int stream_documents(const TokenStream *s, int32_t bos, size_t **starts, size_t *n);

#endif
