#include "data/loader.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/rng.h"

/* ---------------------------------------------------------------- permutation */
uint64_t permute_index(uint64_t i, uint64_t n, uint64_t key) {
    if (n <= 1) return 0;
    /* smallest even bit width covering n, split into two halves */
    int bits = 2;
    while (bits < 64 && ((uint64_t)1 << bits) < n) bits++;
    if (bits & 1) bits++;
    int half = bits / 2;
    uint64_t mask = ((uint64_t)1 << half) - 1;
    uint64_t x = i;
    do {
        uint64_t l = x >> half, r = x & mask;
        for (int round = 0; round < 4; round++) {
            uint64_t f = rng_hash(key + (uint64_t)round, r) & mask;
            uint64_t nl = r, nr = l ^ f;
            l = nl;
            r = nr;
        }
        x = (l << half) | r;
    } while (x >= n); /* cycle walking keeps the map a bijection of [0, n) */
    return x;
}

/* ---------------------------------------------------------------- training loader */
/* On failure *shards is NULL and *nshards 0, so the caller's close function frees nothing twice. */
static int open_all(const char *pattern, size_t vocab, Shard **shards, size_t *nshards, Err *err) {
    char **paths;
    size_t n;
    *shards = NULL;
    *nshards = 0;
    if (path_glob_list(pattern, &paths, &n, err)) return -1;
    *shards = xcalloc(n, sizeof(Shard));
    for (size_t i = 0; i < n; i++) {
        if (shard_open(&(*shards)[i], paths[i], vocab, err)) {
            for (size_t j = 0; j < i; j++) shard_close(&(*shards)[j]);
            xfree(*shards);
            *shards = NULL;
            path_list_free(paths, n);
            return -1;
        }
    }
    path_list_free(paths, n);
    *nshards = n;
    return 0;
}

int loader_open(Loader *L, const char *pattern, size_t T, uint64_t seed, int rank, int world,
                size_t vocab, Err *err) {
    memset(L, 0, sizeof *L);
    if (T == 0) return err_set(err, "loader: sequence length must be positive");
    if (world < 1 || rank < 0 || rank >= world) return err_set(err, "loader: bad rank %d / world %d", rank, world);
    if (open_all(pattern, vocab, &L->shards, &L->nshards, err)) return -1;
    L->T = T;
    L->first_window = xcalloc(L->nshards + 1, sizeof(uint64_t));
    for (size_t i = 0; i < L->nshards; i++) {
        size_t nt = L->shards[i].ntokens;
        L->first_window[i + 1] = L->first_window[i] + (nt > T ? (nt - 1) / T : 0);
    }
    L->nwindows = L->first_window[L->nshards];
    if (L->nwindows == 0) {
        loader_close(L);
        return err_set(err, "%s: fewer than %zu tokens: no training window fits", pattern, T + 1);
    }
    L->rank = rank;
    L->world = world;
    L->cur.seed = seed;
    return 0;
}

void loader_close(Loader *L) {
    for (size_t i = 0; i < L->nshards; i++) shard_close(&L->shards[i]);
    xfree(L->shards);
    xfree(L->first_window);
    memset(L, 0, sizeof *L);
}

void loader_window_at(const Loader *L, uint64_t epoch, uint64_t k, size_t *shard, size_t *offset) {
    uint64_t key = rng_hash(L->cur.seed, epoch);
    uint64_t w = permute_index(k, L->nwindows, key);
    /* binary search the shard holding window w */
    size_t lo = 0, hi = L->nshards;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (L->first_window[mid] <= w) lo = mid;
        else hi = mid;
    }
    *shard = lo;
    *offset = (size_t)(w - L->first_window[lo]) * L->T;
}

void loader_next(Loader *L, size_t B, int32_t *x, int32_t *y) { loader_next_pos(L, B, x, y, NULL, NULL); }

void loader_next_pos(Loader *L, size_t B, int32_t *x, int32_t *y, size_t *shard_of, size_t *offset_of) {
    size_t T = L->T;
    int32_t *buf = NULL;
    int32_t stackbuf[4096 + 1];
    if (T + 1 > 4097) buf = xmalloc((T + 1) * sizeof(int32_t)); /* only for very long windows */
    int32_t *w = buf ? buf : stackbuf;
    uint64_t step = (uint64_t)B * (uint64_t)L->world;
    /* a restored cursor may lie far past this data's windows (a checkpoint of other data, or a
     * corrupt one): carry whole epochs by division, never by a loop of that length */
    L->cur.epoch += L->cur.pos / L->nwindows;
    L->cur.pos %= L->nwindows;
    for (uint64_t j = 0; j < step; j++) {
        uint64_t at = L->cur.pos + j, epoch = L->cur.epoch + at / L->nwindows, pos = at % L->nwindows;
        if (j / B != (uint64_t)L->rank) continue;
        size_t b = (size_t)(j % B), shard, off;
        loader_window_at(L, epoch, pos, &shard, &off);
        if (shard_of) shard_of[b] = shard;
        if (offset_of) offset_of[b] = off;
        shard_copy(&L->shards[shard], off, T + 1, w);
        memcpy(x + b * T, w, T * sizeof(int32_t));
        memcpy(y + b * T, w + 1, T * sizeof(int32_t));
    }
    L->cur.pos += step;
    L->cur.epoch += L->cur.pos / L->nwindows;
    L->cur.pos %= L->nwindows;
    xfree(buf);
}

/* ---------------------------------------------------------------- evaluation stream */
int stream_open(TokenStream *s, const char *pattern, size_t vocab, Err *err) {
    memset(s, 0, sizeof *s);
    if (open_all(pattern, vocab, &s->shards, &s->nshards, err)) return -1;
    s->starts = xcalloc(s->nshards + 1, sizeof(uint64_t));
    for (size_t i = 0; i < s->nshards; i++) s->starts[i + 1] = s->starts[i] + s->shards[i].ntokens;
    s->ntokens = (size_t)s->starts[s->nshards];
    return 0;
}

void stream_close(TokenStream *s) {
    for (size_t i = 0; i < s->nshards; i++) shard_close(&s->shards[i]);
    xfree(s->shards);
    xfree(s->starts);
    memset(s, 0, sizeof *s);
}

static size_t shard_of(const TokenStream *s, size_t i) {
    size_t lo = 0, hi = s->nshards;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (s->starts[mid] <= i) lo = mid;
        else hi = mid;
    }
    return lo;
}

uint32_t stream_token(const TokenStream *s, size_t i) {
    size_t k = shard_of(s, i);
    return shard_token(&s->shards[k], i - (size_t)s->starts[k]);
}

void stream_copy(const TokenStream *s, size_t start, size_t n, int32_t *out) {
    while (n) {
        size_t k = shard_of(s, start), off = start - (size_t)s->starts[k];
        size_t m = TERN_MIN(n, s->shards[k].ntokens - off);
        shard_copy(&s->shards[k], off, m, out);
        out += m;
        start += m;
        n -= m;
    }
}

size_t stream_val_windows(const TokenStream *s, size_t T) { return s->ntokens > 1 ? (s->ntokens - 1) / T : 0; }

void stream_val_window(const TokenStream *s, size_t T, size_t w, int32_t *x, int32_t *y) {
    stream_copy(s, w * T, T, x);
    stream_copy(s, w * T + 1, T, y);
}

int stream_documents(const TokenStream *s, int32_t bos, size_t **starts, size_t *n) {
    size_t cap = 1024, cnt = 0;
    size_t *st = xmalloc(cap * sizeof(size_t));
    /* a stream that does not open with BOS starts with a document fragment: keep it */
    if (s->ntokens && (int32_t)stream_token(s, 0) != bos) st[cnt++] = 0;
    for (size_t k = 0; k < s->nshards; k++) {
        const Shard *sh = &s->shards[k];
        for (size_t i = 0; i < sh->ntokens; i++) {
            if ((int32_t)shard_token(sh, i) != bos) continue;
            if (cnt == cap) st = xrealloc(st, (cap *= 2) * sizeof(size_t));
            st[cnt++] = (size_t)s->starts[k] + i;
        }
    }
    *starts = st;
    *n = cnt;
    return 0;
}
