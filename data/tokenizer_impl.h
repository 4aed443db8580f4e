/* tokenizer_impl.h — what the tokenizer kinds share behind data/tokenizer.h (not for callers):
 * the Tokenizer struct and its per-kind operations, the piece table, the per-thread scratch with
 * its word cache, UTF-8 checks, and growable buffers. */
#ifndef TERN_TOKENIZER_IMPL_H
#define TERN_TOKENIZER_IMPL_H

#include <stdint.h>
#include <string.h>

#include "data/tokenizer.h"

/* A growable byte string (decode output, file writers). */
typedef struct TokStr {
    char *p;
    size_t n, cap;
} TokStr;

static inline void tokstr_reserve(TokStr *s, size_t extra) {
    if (s->n + extra + 1 <= s->cap) return;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->n + extra + 1) cap *= 2;
    s->p = xrealloc(s->p, cap);
    s->cap = cap;
}
static inline void tokstr_put(TokStr *s, const void *data, size_t n) {
    tokstr_reserve(s, n);
    if (n) memcpy(s->p + s->n, data, n);
    s->n += n;
    s->p[s->n] = 0;
}

static inline void tokenbuf_reserve(TokenBuf *b, size_t extra) {
    if (b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    b->ids = xrealloc(b->ids, cap * sizeof *b->ids);
    b->cap = cap;
}
static inline void tokenbuf_push(TokenBuf *b, int32_t id) {
    if (b->n == b->cap) tokenbuf_reserve(b, 1);
    b->ids[b->n++] = id;
}

/* Length of the well-formed UTF-8 character at p (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), 0 when the bytes there are malformed. left >= 1. */
static inline size_t utf8_char_len(const uint8_t *p, size_t left) {
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (left >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* Offset of the first malformed byte, or len when text is well-formed UTF-8. */
size_t utf8_first_invalid(const char *text, size_t len);

/* 64-bit hash of a short byte string (word cache, piece maps). Never 0. */
static inline uint64_t tok_hash_bytes(const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    h = (h ^ v) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h | 1;
}

/* Maps byte strings to int32 ids (piece lookups). Open addressing; keys point into memory owned
 * by whoever built the map and outlive it. */
typedef struct StrMapSlot {
    uint64_t hash; /* 0: empty */
    const char *key;
    uint32_t len;
    int32_t value;
} StrMapSlot;
typedef struct StrMap {
    StrMapSlot *slots;
    size_t mask, count;
} StrMap;
void strmap_init(StrMap *m, size_t expected);
void strmap_free(StrMap *m);
/* Returns 0 when inserted, 1 when the key was already there (value left unchanged). */
int strmap_put(StrMap *m, const char *key, size_t len, int32_t value);
static inline int32_t strmap_get_hashed(const StrMap *m, const char *key, size_t len, uint64_t h) {
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const StrMapSlot *s = &m->slots[i];
        if (s->hash == 0) return -1;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s->value;
    }
}
static inline int32_t strmap_get(const StrMap *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    return strmap_get_hashed(m, key, len, tok_hash_bytes(key, len));
}

/* A bounded cache from a word's bytes to its ids. It lives in a TokScratch, so it is only ever
 * touched by one thread. When full it is simply emptied: words repeat with a Zipf distribution,
 * so the frequent ones come straight back. */
typedef struct WordCacheSlot {
    uint64_t hash; /* 0: empty */
    uint32_t key_off, key_len, ids_off, ids_len;
} WordCacheSlot;
typedef struct WordCache {
    WordCacheSlot *slots;
    size_t mask, count;
    char *keys;
    size_t keys_n, keys_cap;
    int32_t *ids;
    size_t ids_n, ids_cap;
} WordCache;

struct TokScratch {
    const Tokenizer *owner;
    char *text;         /* normalized text (SentencePiece) */
    size_t text_cap;
    void *work;         /* per-word symbols (BPE) */
    size_t work_cap;
    void *heap;         /* per-word merge candidates (BPE) */
    size_t heap_cap;
    TokenBuf word;      /* ids of the word being encoded */
    WordCache cache;
    int no_cache;       /* encode without the word cache */
};

/* Grows *p to at least `bytes` (contents kept). */
void *scratch_grow(void **p, size_t *cap, size_t bytes);
/* Cached ids of a word, or NULL. */
const int32_t *wordcache_get(WordCache *c, const char *w, size_t n, uint64_t h, size_t *nids);
void wordcache_put(WordCache *c, const char *w, size_t n, uint64_t h, const int32_t *ids, size_t nids);
/* Words longer than this are rare and not worth a cache slot. */
#define WORDCACHE_MAX_WORD 64

typedef struct TokOps {
    const char *name;
    int (*encode)(const Tokenizer *t, TokScratch *s, const char *text, size_t len, unsigned flags,
                  TokenBuf *buf, Err *err);
    int (*decode)(const Tokenizer *t, const int32_t *ids, size_t n, TokStr *out, Err *err);
    void (*info)(const Tokenizer *t, TokInfo *info);
    int (*save)(const Tokenizer *t, TokStr *out, Err *err);
    void (*free_impl)(void *impl);
} TokOps;

struct Tokenizer {
    TokKind kind;
    const TokOps *ops;
    void *impl;
    char *path;
    size_t vocab_size;
    int32_t bos, eos, unk, pad;
    /* Piece table: the text as stored and the bytes each id decodes to alone, both packed into
     * one blob each with n+1 offsets. */
    uint8_t *piece_type;
    char *piece_text;
    size_t *piece_text_off;
    char *piece_bytes;
    size_t *piece_bytes_off;
};

/* Allocates a Tokenizer with an empty piece table for n pieces (filled by tok_set_piece in id
 * order, then closed by tok_finish_pieces). */
Tokenizer *tok_alloc(TokKind kind, const TokOps *ops, size_t n);
void tok_set_piece(Tokenizer *t, TokStr *text_blob, TokStr *bytes_blob, size_t id, PieceType type,
                   const char *text, size_t text_len, const char *bytes, size_t bytes_len);
void tok_finish_pieces(Tokenizer *t, TokStr *text_blob, TokStr *bytes_blob);

/* Per-kind constructors (data/tok_*.c, data/sentencepiece.c). `name` names the source in errors. */
int tok_sentencepiece_create(Tokenizer **out, const void *data, size_t len, const char *name, Err *err);
int tok_bpe_create(Tokenizer **out, const char *data, size_t len, const char *name, Err *err);
int tok_maxmatch_create(Tokenizer **out, const char *data, size_t len, const char *name, Err *err);
/* MaxMatch's signature: text (UTF-8 without control bytes but tab, CR, LF) with a line that is
 * exactly <unk> or [UNK]. tok_maxmatch_text checks only the first part. */
int tok_maxmatch_text(const char *data, size_t len);
int tok_maxmatch_recognise(const char *data, size_t len);

/* The magic first line of tern BPE files. */
#define TOK_BPE_MAGIC "tern-bpe 1\n"

#endif
