/* tok_bpe.c — tern's own byte-level BPE: trainer, file reader/writer, encoder and decoder.
 *
 * Ids: 0..255 are bytes, 256 + i is merge i (in training order), then <s>, </s>, <pad>. Text is
 * first cut into chunks (the "words-v1" pre-tokenizer below) and merges never cross a chunk, so
 * a chunk's ids depend on the chunk alone and can be cached. Encoding applies merges by rank,
 * lowest first and leftmost among equals, with a priority queue in the manner of SentencePiece's
 * bpe_model.cc; that reproduces the training-time order exactly. Training counts chunks (OpenMP
 * over text segments), then repeatedly merges the most frequent adjacent pair (ties: smallest
 * (left, right) ids), updating pair counts incrementally. The file format is in
 * docs/tokenizer_format.md. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_impl.h"

#define BPE_NUM_SPECIALS 3
static const char *const kSpecialNames[BPE_NUM_SPECIALS] = {"<s>", "</s>", "<pad>"};

/* ---------------------------------------------------------------- pre-tokenizer "words-v1" */

enum { CL_LETTER, CL_DIGIT, CL_SPACE, CL_NEWLINE, CL_WS, CL_PUNCT };

static uint8_t byte_class(uint8_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return CL_LETTER;
    if (c >= '0' && c <= '9') return CL_DIGIT;
    if (c == ' ') return CL_SPACE;
    if (c == '\n' || c == '\r') return CL_NEWLINE;
    if (c == '\t' || c == '\v' || c == '\f') return CL_WS;
    return CL_PUNCT;
}

/* End of the chunk that starts at pos. A chunk is: an optional single space followed by a run
 * of letters (bytes >= 0x80 count as letters, so UTF-8 characters stay whole), one digit, or a
 * run of punctuation; a run of newlines; or a run of other whitespace, which leaves its last
 * space to the word that follows it. */
static size_t next_chunk_end(const uint8_t *p, size_t len, size_t pos) {
    uint8_t c = byte_class(p[pos]);
    size_t i = pos;
    if (c == CL_SPACE && pos + 1 < len) {
        uint8_t d = byte_class(p[pos + 1]);
        if (d == CL_LETTER || d == CL_DIGIT || d == CL_PUNCT) {
            i = pos + 1;
            c = d;
        }
    }
    switch (c) {
    case CL_DIGIT:
        return i + 1;
    case CL_LETTER:
    case CL_PUNCT:
    case CL_NEWLINE:
        while (i < len && byte_class(p[i]) == c) i++;
        return i;
    default: /* CL_SPACE, CL_WS */
        while (i < len && (byte_class(p[i]) == CL_SPACE || byte_class(p[i]) == CL_WS)) i++;
        if (i < len && i - pos >= 2 && p[i - 1] == ' ') {
            uint8_t d = byte_class(p[i]);
            if (d == CL_LETTER || d == CL_DIGIT || d == CL_PUNCT) i--;
        }
        return i;
    }
}

/* ---------------------------------------------------------------- pair -> value map */

typedef struct PairSlot {
    uint64_t key; /* pair_key(); 0 marks an empty slot */
    int64_t value;
} PairSlot;
typedef struct PairMap {
    PairSlot *slots;
    size_t mask, count;
} PairMap;

static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }
static inline int32_t key_left(uint64_t k) { return (int32_t)((k - 1) >> 32); }
static inline int32_t key_right(uint64_t k) { return (int32_t)(uint32_t)(k - 1); }
static inline size_t pair_slot(uint64_t key, size_t mask) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ (h >> 29)) & mask;
}

static void pairmap_init(PairMap *m, size_t expected) {
    size_t cap = 64;
    while (cap < 2 * expected) cap *= 2;
    m->slots = xcalloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    m->count = 0;
}

static inline PairSlot *pairmap_find(const PairMap *m, uint64_t key) {
    for (size_t i = pair_slot(key, m->mask);; i = (i + 1) & m->mask) {
        if (m->slots[i].key == key) return &m->slots[i];
        if (m->slots[i].key == 0) return NULL;
    }
}

/* The slot for key, inserted with value 0 when new. */
static PairSlot *pairmap_upsert(PairMap *m, uint64_t key) {
    PairSlot *s = pairmap_find(m, key);
    if (s) return s;
    if ((m->count + 1) * 2 > m->mask + 1) {
        size_t cap = 2 * (m->mask + 1);
        PairSlot *slots = xcalloc(cap, sizeof *slots);
        for (size_t i = 0; i <= m->mask; i++) {
            if (!m->slots[i].key) continue;
            size_t j = pair_slot(m->slots[i].key, cap - 1);
            while (slots[j].key) j = (j + 1) & (cap - 1);
            slots[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = slots;
        m->mask = cap - 1;
    }
    size_t i = pair_slot(key, m->mask);
    while (m->slots[i].key) i = (i + 1) & m->mask;
    m->slots[i].key = key;
    m->slots[i].value = 0;
    m->count++;
    return &m->slots[i];
}

/* ---------------------------------------------------------------- the model */

typedef struct BpeModel {
    size_t nmerges;
    int32_t *merges; /* 2 per merge: left id, right id */
    PairMap rank;    /* pair -> merge index */
} BpeModel;

static void bpe_model_free(void *impl) {
    BpeModel *b = impl;
    if (!b) return;
    free(b->merges);
    free(b->rank.slots);
    free(b);
}

typedef struct BpeSym {
    int32_t id, prev, next;
} BpeSym;

typedef struct BpeCand {
    int32_t rank, left, right;
} BpeCand;

static inline int cand_before(const BpeCand *a, const BpeCand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void cand_push(BpeCand *h, size_t *n, BpeCand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(&c, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

static BpeCand cand_pop(BpeCand *h, size_t *n) {
    BpeCand top = h[0], last = h[--*n];
    size_t i = 0, count = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= count) break;
        if (c + 1 < count && cand_before(&h[c + 1], &h[c])) c++;
        if (!cand_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (count) h[i] = last;
    return top;
}

static void maybe_push(const BpeModel *b, BpeSym *sym, BpeCand *heap, size_t *nheap, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const PairSlot *s = pairmap_find(&b->rank, pair_key(sym[left].id, sym[right].id));
    if (s) cand_push(heap, nheap, (BpeCand){(int32_t)s->value, left, right});
}

/* Merges by rank within one chunk; appends its ids to out. */
static void bpe_encode_chunk(const BpeModel *b, TokScratch *s, const uint8_t *w, size_t n, TokenBuf *out) {
    BpeSym *sym = scratch_grow(&s->work, &s->work_cap, n * sizeof *sym);
    BpeCand *heap = scratch_grow(&s->heap, &s->heap_cap, (3 * n + 4) * sizeof *heap);
    size_t nheap = 0;
    for (size_t i = 0; i < n; i++) sym[i] = (BpeSym){w[i], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    for (size_t i = 1; i < n; i++) maybe_push(b, sym, heap, &nheap, (int32_t)i - 1, (int32_t)i);
    while (nheap) {
        BpeCand c = cand_pop(heap, &nheap);
        BpeSym *l = &sym[c.left], *r = &sym[c.right];
        /* stale when either side has merged since (ids changed or right was absorbed) */
        if (l->id < 0 || r->id < 0 || l->next != c.right || l->id != b->merges[2 * c.rank] ||
            r->id != b->merges[2 * c.rank + 1])
            continue;
        l->id = 256 + c.rank;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = c.left;
        r->id = -1;
        maybe_push(b, sym, heap, &nheap, l->prev, c.left);
        maybe_push(b, sym, heap, &nheap, c.left, l->next);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = sym[i].next) tokenbuf_push(out, sym[i].id);
}

static int bpe_encode(const Tokenizer *t, TokScratch *s, const char *text, size_t len, unsigned flags,
                      TokenBuf *buf, Err *err) {
    const BpeModel *b = t->impl;
    if (len > (size_t)INT32_MAX / 8) return err_set(err, "text of %zu bytes is too long to encode at once", len);
    if (!(flags & TOK_ENCODE_ALLOW_INVALID_UTF8)) {
        size_t bad = utf8_first_invalid(text, len);
        if (bad < len) return err_set(err, "invalid UTF-8 at byte %zu (0x%02X)", bad, (unsigned)(uint8_t)text[bad]);
    }
    const uint8_t *p = (const uint8_t *)text;
    for (size_t pos = 0; pos < len;) {
        size_t end = next_chunk_end(p, len, pos), n = end - pos;
        const char *w = text + pos;
        pos = end;
        if (n == 1) {
            tokenbuf_push(buf, p[end - 1]);
            continue;
        }
        size_t nids;
        const int32_t *ids = NULL;
        uint64_t h = 0;
        int cacheable = n <= WORDCACHE_MAX_WORD && !s->no_cache;
        if (cacheable) ids = wordcache_get(&s->cache, w, n, h = tok_hash_bytes(w, n), &nids);
        if (!ids) {
            s->word.n = 0;
            bpe_encode_chunk(b, s, (const uint8_t *)w, n, &s->word);
            ids = s->word.ids;
            nids = s->word.n;
            if (cacheable) wordcache_put(&s->cache, w, n, h, ids, nids);
        }
        tokenbuf_reserve(buf, nids);
        if (nids) memcpy(buf->ids + buf->n, ids, nids * sizeof *ids);
        buf->n += nids;
    }
    return 0;
}

static int bpe_decode(const Tokenizer *t, const int32_t *ids, size_t n, TokStr *out, Err *err) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->vocab_size)
            return err_set(err, "id %d at position %zu is out of range [0, %zu)", id, i, t->vocab_size);
        size_t a = t->piece_bytes_off[id], e = t->piece_bytes_off[id + 1];
        tokstr_put(out, t->piece_bytes + a, e - a);
    }
    return 0;
}

static void bpe_info(const Tokenizer *t, TokInfo *info) {
    const BpeModel *b = t->impl;
    info->num_merges = b->nmerges;
    info->normalizer = "none (bytes as they are; words-v1 pre-tokenizer)";
}

static int bpe_save(const Tokenizer *t, TokStr *out, Err *err) {
    const BpeModel *b = t->impl;
    char line[96];
    int n = snprintf(line, sizeof line, "%svocab_size %zu\npretokenizer words-v1\nmerges %zu\n", TOK_BPE_MAGIC,
                     t->vocab_size, b->nmerges);
    tokstr_put(out, line, (size_t)n);
    for (size_t i = 0; i < b->nmerges; i++) {
        n = snprintf(line, sizeof line, "%d %d\n", b->merges[2 * i], b->merges[2 * i + 1]);
        tokstr_put(out, line, (size_t)n);
    }
    n = snprintf(line, sizeof line, "specials %d\n", BPE_NUM_SPECIALS);
    tokstr_put(out, line, (size_t)n);
    for (int k = 0; k < BPE_NUM_SPECIALS; k++) {
        n = snprintf(line, sizeof line, "%s %zu\n", kSpecialNames[k], 256 + b->nmerges + (size_t)k);
        tokstr_put(out, line, (size_t)n);
    }
    (void)err;
    return 0;
}

static const TokOps kBpeOps = {
    .name = "bpe",
    .encode = bpe_encode,
    .decode = bpe_decode,
    .info = bpe_info,
    .save = bpe_save,
    .free_impl = bpe_model_free,
};

/* Builds the Tokenizer around merges (taken over). */
static Tokenizer *bpe_tokenizer_from_merges(int32_t *merges, size_t nmerges) {
    BpeModel *b = xcalloc(1, sizeof *b);
    b->merges = merges;
    b->nmerges = nmerges;
    pairmap_init(&b->rank, nmerges);
    for (size_t i = 0; i < nmerges; i++) pairmap_upsert(&b->rank, pair_key(merges[2 * i], merges[2 * i + 1]))->value = (int64_t)i;
    size_t vocab = 256 + nmerges + BPE_NUM_SPECIALS;
    Tokenizer *t = tok_alloc(TOK_BPE, &kBpeOps, vocab);
    t->impl = b;
    TokStr texts = {0}, bytes = {0};
    for (int c = 0; c < 256; c++) {
        char name[8], byte = (char)c;
        snprintf(name, sizeof name, "<0x%02X>", c);
        tok_set_piece(t, &texts, &bytes, (size_t)c, PIECE_BYTE, name, 6, &byte, 1);
    }
    size_t *blen = xmalloc((256 + nmerges) * sizeof *blen); /* bytes per id, while the table grows */
    for (int c = 0; c < 256; c++) blen[c] = 1;
    for (size_t i = 0; i < nmerges; i++) {
        /* a merged token's bytes are its two halves' bytes, already in the table */
        int32_t l = merges[2 * i], r = merges[2 * i + 1];
        size_t ll = blen[l], rl = blen[r];
        char *tmp = xmalloc(ll + rl + 1);
        memcpy(tmp, bytes.p + t->piece_bytes_off[l], ll);
        memcpy(tmp + ll, bytes.p + t->piece_bytes_off[r], rl);
        blen[256 + i] = ll + rl;
        tok_set_piece(t, &texts, &bytes, 256 + i, PIECE_NORMAL, tmp, ll + rl, tmp, ll + rl);
        free(tmp);
    }
    free(blen);
    for (int k = 0; k < BPE_NUM_SPECIALS; k++)
        tok_set_piece(t, &texts, &bytes, 256 + nmerges + (size_t)k, PIECE_CONTROL, kSpecialNames[k],
                      strlen(kSpecialNames[k]), "", 0);
    tok_finish_pieces(t, &texts, &bytes);
    t->bos = (int32_t)(256 + nmerges);
    t->eos = t->bos + 1;
    t->pad = t->bos + 2;
    return t;
}

/* ---------------------------------------------------------------- reading the file */

/* Next line of the file without its '\n'; NULL at the end. */
static const char *next_line(const char *data, size_t len, size_t *pos, size_t *n) {
    if (*pos >= len) return NULL;
    const char *s = data + *pos, *nl = memchr(s, '\n', len - *pos);
    *n = nl ? (size_t)(nl - s) : len - *pos;
    *pos += *n + 1;
    return s;
}

int tok_bpe_create(Tokenizer **out, const char *data, size_t len, const char *name, Err *err) {
    *out = NULL;
    size_t pos = 0, n, lineno = 0;
    const char *s;
    char buf[128];
    unsigned long long vocab = 0, nmerges = 0, nspecials = 0;
#define BPE_LINE()                                                                                      \
    do {                                                                                                \
        s = next_line(data, len, &pos, &n);                                                             \
        lineno++;                                                                                       \
        if (!s) return err_set(err, "%s: line %zu: unexpected end of file", name, lineno);               \
        if (n >= sizeof buf) return err_set(err, "%s: line %zu: line too long", name, lineno);           \
        memcpy(buf, s, n);                                                                              \
        buf[n] = 0;                                                                                     \
    } while (0)
    BPE_LINE();
    if (strcmp(buf, "tern-bpe 1") != 0) return err_set(err, "%s: line 1: unsupported version \"%s\"", name, buf);
    BPE_LINE();
    if (sscanf(buf, "vocab_size %llu", &vocab) != 1) return err_set(err, "%s: line %zu: expected \"vocab_size N\"", name, lineno);
    BPE_LINE();
    if (strcmp(buf, "pretokenizer words-v1") != 0)
        return err_set(err, "%s: line %zu: unknown pre-tokenizer \"%s\"", name, lineno, buf);
    BPE_LINE();
    if (sscanf(buf, "merges %llu", &nmerges) != 1 || nmerges > (1u << 24))
        return err_set(err, "%s: line %zu: expected \"merges M\"", name, lineno);
    int32_t *merges = xmalloc((nmerges ? nmerges : 1) * 2 * sizeof *merges);
    for (size_t i = 0; i < nmerges; i++) {
        long long a, b;
        char extra;
        s = next_line(data, len, &pos, &n);
        lineno++;
        if (!s || n >= sizeof buf) {
            free(merges);
            return err_set(err, "%s: line %zu: %s", name, lineno, s ? "line too long" : "unexpected end of file");
        }
        memcpy(buf, s, n);
        buf[n] = 0;
        long long limit = 256 + (long long)i;
        if (sscanf(buf, "%lld %lld %c", &a, &b, &extra) != 2 || a < 0 || b < 0 || a >= limit || b >= limit) {
            free(merges);
            return err_set(err, "%s: line %zu: merge %zu must be two ids below %lld, got \"%s\"", name, lineno, i, limit, buf);
        }
        merges[2 * i] = (int32_t)a;
        merges[2 * i + 1] = (int32_t)b;
    }
    s = next_line(data, len, &pos, &n);
    lineno++;
    if (!s || n >= sizeof buf || (memcpy(buf, s, n), buf[n] = 0, sscanf(buf, "specials %llu", &nspecials) != 1) ||
        nspecials != BPE_NUM_SPECIALS) {
        free(merges);
        return err_set(err, "%s: line %zu: expected \"specials %d\"", name, lineno, BPE_NUM_SPECIALS);
    }
    for (int k = 0; k < BPE_NUM_SPECIALS; k++) {
        char want[64];
        s = next_line(data, len, &pos, &n);
        lineno++;
        snprintf(want, sizeof want, "%s %llu", kSpecialNames[k], 256 + nmerges + (unsigned long long)k);
        if (!s || n != strlen(want) || memcmp(s, want, n) != 0) {
            free(merges);
            return err_set(err, "%s: line %zu: expected \"%s\"", name, lineno, want);
        }
    }
    while ((s = next_line(data, len, &pos, &n)) != NULL) {
        lineno++;
        if (n) {
            free(merges);
            return err_set(err, "%s: line %zu: unexpected content after the specials", name, lineno);
        }
    }
    if (vocab != 256 + nmerges + BPE_NUM_SPECIALS) {
        free(merges);
        return err_set(err, "%s: vocab_size %llu does not match 256 + %llu merges + %d specials", name, vocab, nmerges,
                       BPE_NUM_SPECIALS);
    }
    /* A pair merged twice would make the second merge unreachable: reject it. */
    PairMap seen;
    pairmap_init(&seen, nmerges);
    for (size_t i = 0; i < nmerges; i++) {
        PairSlot *p = pairmap_upsert(&seen, pair_key(merges[2 * i], merges[2 * i + 1]));
        if (p->value) {
            err_set(err, "%s: merge %zu (%d %d) repeats an earlier merge", name, i, merges[2 * i], merges[2 * i + 1]);
            free(seen.slots);
            free(merges);
            return -1;
        }
        p->value = 1;
    }
    free(seen.slots);
#undef BPE_LINE
    *out = bpe_tokenizer_from_merges(merges, nmerges);
    return 0;
}

/* ---------------------------------------------------------------- training */

/* Distinct chunks and how often each occurs. Keys point into the training texts. */
typedef struct ChunkSlot {
    const uint8_t *key;
    uint32_t len;
    uint64_t hash;
    uint64_t count;
} ChunkSlot;
typedef struct ChunkMap {
    ChunkSlot *slots;
    size_t mask, count;
} ChunkMap;

static void chunkmap_add(ChunkMap *m, const uint8_t *key, size_t len, uint64_t hash, uint64_t count) {
    if ((m->count + 1) * 2 > m->mask + 1) {
        size_t cap = m->slots ? 2 * (m->mask + 1) : 4096;
        ChunkSlot *slots = xcalloc(cap, sizeof *slots);
        for (size_t i = 0; m->slots && i <= m->mask; i++) {
            if (!m->slots[i].hash) continue;
            size_t j = m->slots[i].hash & (cap - 1);
            while (slots[j].hash) j = (j + 1) & (cap - 1);
            slots[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = slots;
        m->mask = cap - 1;
    }
    size_t i = hash & m->mask;
    for (;; i = (i + 1) & m->mask) {
        ChunkSlot *s = &m->slots[i];
        if (!s->hash) break;
        if (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0) {
            s->count += count;
            return;
        }
    }
    m->slots[i] = (ChunkSlot){key, (uint32_t)len, hash, count};
    m->count++;
}

typedef struct Segment {
    const uint8_t *p;
    size_t len;
} Segment;

/* Cuts texts into pieces of about `target` bytes at places where chunking would restart anyway
 * (right after a newline run), so every thread count sees the same chunks. */
static Segment *make_segments(const char *const *texts, const size_t *lens, size_t ntexts, size_t target, size_t *nseg) {
    size_t cap = 64, n = 0;
    Segment *seg = xmalloc(cap * sizeof *seg);
    for (size_t t = 0; t < ntexts; t++) {
        const uint8_t *p = (const uint8_t *)texts[t];
        size_t len = lens[t], start = 0;
        while (start < len) {
            size_t cut = start + target;
            if (cut >= len) {
                cut = len;
            } else {
                while (cut < len && !(p[cut - 1] == '\n' && p[cut] != '\n' && p[cut] != '\r')) cut++;
            }
            if (n == cap) seg = xrealloc(seg, (cap *= 2) * sizeof *seg);
            seg[n++] = (Segment){p + start, cut - start};
            start = cut;
        }
    }
    *nseg = n;
    return seg;
}

/* Pair counts as a dense list plus an index, so finding the best pair is a linear scan. */
typedef struct PairCounts {
    uint64_t *key;
    int64_t *count;
    size_t n, cap;
    PairMap index; /* key -> position in the list */
} PairCounts;

static void paircounts_add(PairCounts *pc, uint64_t key, int64_t delta) {
    PairSlot *s = pairmap_upsert(&pc->index, key);
    if (s->value == 0) {
        if (pc->n == pc->cap) {
            pc->cap = pc->cap ? 2 * pc->cap : 4096;
            pc->key = xrealloc(pc->key, pc->cap * sizeof *pc->key);
            pc->count = xrealloc(pc->count, pc->cap * sizeof *pc->count);
        }
        pc->key[pc->n] = key;
        pc->count[pc->n] = 0;
        s->value = (int64_t)++pc->n; /* 1-based, so 0 still means new */
    }
    pc->count[s->value - 1] += delta;
}

typedef struct Delta {
    uint64_t key;
    int64_t delta;
} Delta;
typedef struct DeltaList {
    Delta *v;
    size_t n, cap;
} DeltaList;

static inline void delta_add(DeltaList *d, int32_t a, int32_t b, int64_t delta) {
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 1024;
        d->v = xrealloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n++] = (Delta){pair_key(a, b), delta};
}

int tokenizer_train_bpe(Tokenizer **out, const char *const *texts, const size_t *lens, size_t ntexts,
                        const TokBpeTrainOptions *opt, Err *err) {
    *out = NULL;
    if (opt->vocab_size < 256 + BPE_NUM_SPECIALS)
        return err_set(err, "vocab size %zu is too small: it must hold 256 bytes and %d specials", opt->vocab_size,
                       BPE_NUM_SPECIALS);
    if (opt->vocab_size > (1u << 24)) return err_set(err, "vocab size %zu is too large", opt->vocab_size);
    size_t want_merges = opt->vocab_size - 256 - BPE_NUM_SPECIALS;
    int nthreads = opt->threads > 0 ? opt->threads : omp_get_max_threads();
    size_t total = 0;
    for (size_t i = 0; i < ntexts; i++) total += lens[i];

    /* 1. Count distinct chunks, one map per thread, then fold them together. */
    size_t nseg;
    Segment *seg = make_segments(texts, lens, ntexts, 1u << 20, &nseg);
    ChunkMap *maps = xcalloc((size_t)nthreads, sizeof *maps);
#pragma omp parallel num_threads(nthreads)
    {
        ChunkMap *m = &maps[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
        for (size_t i = 0; i < nseg; i++) {
            const uint8_t *p = seg[i].p;
            size_t len = seg[i].len;
            for (size_t pos = 0; pos < len;) {
                size_t end = next_chunk_end(p, len, pos);
                chunkmap_add(m, p + pos, end - pos, tok_hash_bytes(p + pos, end - pos), 1);
                pos = end;
            }
        }
    }
    free(seg);
    ChunkMap all = {0};
    for (int t = 0; t < nthreads; t++) {
        for (size_t i = 0; maps[t].slots && i <= maps[t].mask; i++) {
            const ChunkSlot *s = &maps[t].slots[i];
            if (s->hash) chunkmap_add(&all, s->key, s->len, s->hash, s->count);
        }
        free(maps[t].slots);
    }
    free(maps);
    if (opt->progress) opt->progress(opt->progress_ctx, "count", total, total);

    /* 2. Words as id sequences (only chunks of 2+ bytes can merge). */
    size_t nwords = 0, nsym = 0;
    for (size_t i = 0; all.slots && i <= all.mask; i++)
        if (all.slots[i].hash && all.slots[i].len >= 2) nwords++, nsym += all.slots[i].len;
    int32_t *sym = xmalloc((nsym ? nsym : 1) * sizeof *sym);
    size_t *woff = xmalloc((nwords + 1) * sizeof *woff);
    uint32_t *wlen = xmalloc((nwords ? nwords : 1) * sizeof *wlen);
    int64_t *wcount = xmalloc((nwords ? nwords : 1) * sizeof *wcount);
    size_t w = 0, at = 0;
    for (size_t i = 0; all.slots && i <= all.mask; i++) {
        const ChunkSlot *s = &all.slots[i];
        if (!s->hash || s->len < 2) continue;
        woff[w] = at;
        wlen[w] = s->len;
        wcount[w] = (int64_t)s->count;
        for (size_t k = 0; k < s->len; k++) sym[at++] = s->key[k];
        w++;
    }
    woff[nwords] = at;
    free(all.slots);

    PairCounts pc = {0};
    pairmap_init(&pc.index, 1u << 16);
    for (size_t i = 0; i < nwords; i++)
        for (size_t k = 0; k + 1 < wlen[i]; k++) paircounts_add(&pc, pair_key(sym[woff[i] + k], sym[woff[i] + k + 1]), wcount[i]);

    /* 3. Merge the best pair until the vocab is full or nothing pairs up any more. */
    int32_t *merges = xmalloc((want_merges ? want_merges : 1) * 2 * sizeof *merges);
    size_t nmerges = 0;
    DeltaList *deltas = xcalloc((size_t)nthreads, sizeof *deltas);
    size_t report_every = want_merges / 200 + 1;
    /* One merge touches little memory; below a few million symbols the fork/join per merge costs
     * more than it saves (and stalls badly when the machine is oversubscribed). */
    int merge_threads = nsym >= (1u << 22) ? nthreads : 1;
    while (nmerges < want_merges) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < pc.n; i++) {
            if (pc.count[i] <= 0) continue;
            if (best == SIZE_MAX || pc.count[i] > pc.count[best] || (pc.count[i] == pc.count[best] && pc.key[i] < pc.key[best]))
                best = i;
        }
        if (best == SIZE_MAX) break;
        int32_t a = key_left(pc.key[best]), b = key_right(pc.key[best]), z = (int32_t)(256 + nmerges);
        merges[2 * nmerges] = a;
        merges[2 * nmerges + 1] = b;
        nmerges++;
#pragma omp parallel num_threads(merge_threads) if (merge_threads > 1)
        {
            DeltaList *d = &deltas[omp_get_thread_num()];
            d->n = 0;
#pragma omp for schedule(static)
            for (size_t i = 0; i < nwords; i++) {
                int32_t *s = sym + woff[i];
                size_t len = wlen[i], j = 0;
                size_t k = 0;
                while (k + 1 < len && !(s[k] == a && s[k + 1] == b)) k++;
                if (k + 1 >= len) continue;
                int64_t c = wcount[i];
                j = k;
                for (size_t r = k; r < len;) {
                    if (r + 1 < len && s[r] == a && s[r + 1] == b) {
                        if (j > 0) {
                            delta_add(d, s[j - 1], a, -c);
                            delta_add(d, s[j - 1], z, c);
                        }
                        if (r + 2 < len) {
                            delta_add(d, b, s[r + 2], -c);
                            delta_add(d, z, s[r + 2], c);
                        }
                        delta_add(d, a, b, -c);
                        s[j++] = z;
                        r += 2;
                    } else {
                        s[j++] = s[r++];
                    }
                }
                wlen[i] = (uint32_t)j;
            }
        }
        for (int t = 0; t < merge_threads; t++)
            for (size_t i = 0; i < deltas[t].n; i++) paircounts_add(&pc, deltas[t].v[i].key, deltas[t].v[i].delta);
        if (opt->progress && nmerges % report_every == 0 && nmerges < want_merges)
            opt->progress(opt->progress_ctx, "merge", nmerges, want_merges);
    }
    if (opt->progress) opt->progress(opt->progress_ctx, "merge", nmerges, nmerges);
    for (int t = 0; t < nthreads; t++) free(deltas[t].v);
    free(deltas);
    free(pc.key);
    free(pc.count);
    free(pc.index.slots);
    free(sym);
    free(woff);
    free(wlen);
    free(wcount);
    *out = bpe_tokenizer_from_merges(merges, nmerges);
    (*out)->path = xstrdup("(trained)");
    return 0;
}
