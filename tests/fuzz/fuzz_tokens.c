#include "tests/fuzz/fuzz_tokens.h"

#include <stdlib.h>
#include <string.h>

static void check_shard(const Shard *s, size_t vocab) {
    uint32_t mx = 0;
    int32_t buf[256];
    for (size_t i = 0; i < s->ntokens; i += 256) {
        size_t n = TERN_MIN(256, s->ntokens - i);
        shard_copy(s, i, n, buf);
        for (size_t j = 0; j < n; j++) mx = TERN_MAX(mx, (uint32_t)buf[j]);
    }
    FZ_ASSERT(mx == s->max_token || s->ntokens == 0, "max token %u, shard_validate said %u", mx, s->max_token);
    FZ_ASSERT(!vocab || !s->ntokens || mx < vocab, "token %u passed the vocab %zu check", mx, vocab);
}

void fz_exercise_loader_cursor(Loader *L, uint64_t epoch, uint64_t pos, size_t B, int steps, size_t vocab) {
    size_t T = L->T, n = B * T;
    int32_t *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    size_t *sh = malloc(B * sizeof *sh), *off = malloc(B * sizeof *off);
    L->cur.epoch = epoch;
    L->cur.pos = pos;
    for (int k = 0; k < steps; k++) {
        memset(sh, 0xff, B * sizeof *sh);
        loader_next_pos(L, B, x, y, sh, off);
        FZ_ASSERT(L->cur.pos < L->nwindows, "cursor %llu past the %llu windows", (unsigned long long)L->cur.pos,
                  (unsigned long long)L->nwindows);
        for (size_t b = 0; b < B; b++) {
            FZ_ASSERT(sh[b] < L->nshards && off[b] + T + 1 <= L->shards[sh[b]].ntokens, "window %zu outside its shard", b);
            for (size_t i = 0; i + 1 < T; i++) FZ_ASSERT(x[b * T + i + 1] == y[b * T + i], "targets are not the shifted inputs");
        }
        for (size_t i = 0; i < n && vocab; i++)
            FZ_ASSERT((size_t)x[i] < vocab && (size_t)y[i] < vocab, "a loaded token is outside the vocab");
    }
    free(x);
    free(y);
    free(sh);
    free(off);
}

static void exercise_loader(const char *path, size_t vocab, Fz *f) {
    Loader L;
    Err err;
    size_t T = fz_range(f, 1, 64);
    int world = (int)fz_range(f, 1, 3), rank = (int)fz_range(f, 0, (size_t)world - 1);
    if (loader_open(&L, path, T, fz_u64(f), rank, world, vocab, &err)) {
        fz_check_error(&err, path);
        return;
    }
    uint64_t pos = fz_range(f, 0, 1) ? fz_pick_u64(f, kFzEdgeSizes, kFzEdgeSizeCount) : fz_range(f, 0, 300);
    fz_exercise_loader_cursor(&L, fz_u64(f), pos, fz_range(f, 1, 4), (int)fz_range(f, 1, 3), vocab);
    loader_close(&L);
}

static void exercise_stream(const char *path, size_t vocab, Fz *f) {
    TokenStream s;
    Err err;
    if (stream_open(&s, path, vocab, &err)) {
        fz_check_error(&err, path);
        return;
    }
    size_t T = fz_range(f, 1, 64), nw = stream_val_windows(&s, T);
    int32_t x[64], y[64];
    if (nw) stream_val_window(&s, T, nw - 1, x, y);
    size_t *starts = NULL, nd = 0;
    stream_documents(&s, (int32_t)fz_range(f, 0, 3), &starts, &nd);
    for (size_t i = 0; i < nd; i++) FZ_ASSERT(starts[i] < s.ntokens, "a document starts past the stream");
    free(starts);
    stream_close(&s);
}

void fz_exercise_token_file(const char *path, Fz *f) {
    static const size_t kVocab[] = {0, 1, 2, 256, 1024, 65535, 65536, 1u << 20};
    size_t vocab = kVocab[fz_range(f, 0, TERN_ARRAY_LEN(kVocab) - 1)];
    Shard s;
    Err err;
    if (shard_open(&s, path, vocab, &err)) {
        fz_check_error(&err, path);
        return;
    }
    check_shard(&s, vocab);
    shard_close(&s);
    exercise_loader(path, vocab, f);
    exercise_stream(path, vocab, f);
}
