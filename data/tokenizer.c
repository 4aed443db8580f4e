/* tokenizer.c — the tokenizer interface (data/tokenizer.h): picking a kind from a file's content,
 * the piece table, per-thread scratch with its word cache, and the small containers the kinds
 * share (data/tokenizer_impl.h). The kinds themselves live in data/sentencepiece.c (after the
 * SentencePiece project's algorithms), data/tok_byte.c, data/tok_bpe.c and data/tok_maxmatch.c. */
#include "data/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/sentencepiece.h"
#include "data/tokenizer_impl.h"

/* ---------------------------------------------------------------- small shared pieces */

size_t utf8_first_invalid(const char *text, size_t len) {
    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        /* ASCII runs, 8 bytes at a time */
        while (i + 8 <= len) {
            uint64_t v;
            memcpy(&v, p + i, 8);
            if (v & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= len) break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_char_len(p + i, len - i);
        if (k == 0) return i;
        i += k;
    }
    return len;
}

size_t tokenizer_first_invalid_utf8(const char *text, size_t len) { return utf8_first_invalid(text, len); }

void strmap_init(StrMap *m, size_t expected) {
    size_t cap = 16;
    while (cap < 2 * expected + 2) cap *= 2;
    m->slots = xcalloc(cap, sizeof *m->slots);
    m->mask = cap - 1;
    m->count = 0;
}

void strmap_free(StrMap *m) {
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

static void strmap_insert_slot(StrMapSlot *slots, size_t mask, StrMapSlot s) {
    size_t i = s.hash & mask;
    while (slots[i].hash) i = (i + 1) & mask;
    slots[i] = s;
}

int strmap_put(StrMap *m, const char *key, size_t len, int32_t value) {
    uint64_t h = tok_hash_bytes(key, len);
    if (strmap_get_hashed(m, key, len, h) >= 0) return 1;
    if ((m->count + 1) * 2 > m->mask + 1) {
        size_t cap = 2 * (m->mask + 1);
        StrMapSlot *slots = xcalloc(cap, sizeof *slots);
        for (size_t i = 0; i <= m->mask; i++)
            if (m->slots[i].hash) strmap_insert_slot(slots, cap - 1, m->slots[i]);
        free(m->slots);
        m->slots = slots;
        m->mask = cap - 1;
    }
    strmap_insert_slot(m->slots, m->mask, (StrMapSlot){h, key, (uint32_t)len, value});
    m->count++;
    return 0;
}

void *scratch_grow(void **p, size_t *cap, size_t bytes) {
    if (bytes > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < bytes) c *= 2;
        *p = xrealloc(*p, c);
        *cap = c;
    }
    return *p;
}

/* ---------------------------------------------------------------- word cache */

#define WORDCACHE_FIRST_SLOTS 1024u
#define WORDCACHE_MAX_SLOTS (1u << 17)
#define WORDCACHE_MAX_KEY_BYTES (8u << 20)
#define WORDCACHE_MAX_IDS (4u << 20)

static void wordcache_clear(WordCache *c) {
    if (c->slots) memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
    c->count = c->keys_n = c->ids_n = 0;
}

static void wordcache_free(WordCache *c) {
    free(c->slots);
    free(c->keys);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

const int32_t *wordcache_get(WordCache *c, const char *w, size_t n, uint64_t h, size_t *nids) {
    if (!c->slots) return NULL;
    for (size_t i = h & c->mask;; i = (i + 1) & c->mask) {
        const WordCacheSlot *s = &c->slots[i];
        if (s->hash == 0) return NULL;
        if (s->hash == h && s->key_len == n && memcmp(c->keys + s->key_off, w, n) == 0) {
            *nids = s->ids_len;
            return c->ids + s->ids_off;
        }
    }
}

static void wordcache_insert_slot(WordCacheSlot *slots, size_t mask, WordCacheSlot s) {
    size_t i = s.hash & mask;
    while (slots[i].hash) i = (i + 1) & mask;
    slots[i] = s;
}

void wordcache_put(WordCache *c, const char *w, size_t n, uint64_t h, const int32_t *ids, size_t nids) {
    if (n > WORDCACHE_MAX_WORD || nids > WORDCACHE_MAX_WORD * 4) return;
    if (!c->slots) {
        c->slots = xcalloc(WORDCACHE_FIRST_SLOTS, sizeof *c->slots);
        c->mask = WORDCACHE_FIRST_SLOTS - 1;
    }
    if ((c->count + 1) * 4 > (c->mask + 1) * 3) {
        if (c->mask + 1 < WORDCACHE_MAX_SLOTS) {
            size_t cap = 2 * (c->mask + 1);
            WordCacheSlot *slots = xcalloc(cap, sizeof *slots);
            for (size_t i = 0; i <= c->mask; i++)
                if (c->slots[i].hash) wordcache_insert_slot(slots, cap - 1, c->slots[i]);
            free(c->slots);
            c->slots = slots;
            c->mask = cap - 1;
        } else {
            wordcache_clear(c);
        }
    }
    if (c->keys_n + n > WORDCACHE_MAX_KEY_BYTES || c->ids_n + nids > WORDCACHE_MAX_IDS) wordcache_clear(c);
    if (c->keys_n + n > c->keys_cap) {
        size_t cap = c->keys_cap ? c->keys_cap : 16384;
        while (cap < c->keys_n + n) cap *= 2;
        c->keys = xrealloc(c->keys, cap);
        c->keys_cap = cap;
    }
    if (c->ids_n + nids > c->ids_cap) {
        size_t cap = c->ids_cap ? c->ids_cap : 8192;
        while (cap < c->ids_n + nids) cap *= 2;
        c->ids = xrealloc(c->ids, cap * sizeof *c->ids);
        c->ids_cap = cap;
    }
    memcpy(c->keys + c->keys_n, w, n);
    if (nids) memcpy(c->ids + c->ids_n, ids, nids * sizeof *ids);
    wordcache_insert_slot(c->slots, c->mask,
                          (WordCacheSlot){h, (uint32_t)c->keys_n, (uint32_t)n, (uint32_t)c->ids_n, (uint32_t)nids});
    c->keys_n += n;
    c->ids_n += nids;
    c->count++;
}

TokScratch *tokscratch_new(const Tokenizer *t) {
    TokScratch *s = xcalloc(1, sizeof *s);
    s->owner = t;
    return s;
}

void tokscratch_free(TokScratch *s) {
    if (!s) return;
    free(s->text);
    free(s->work);
    free(s->heap);
    free(s->word.ids);
    wordcache_free(&s->cache);
    free(s);
}

/* ---------------------------------------------------------------- piece table */

Tokenizer *tok_alloc(TokKind kind, const TokOps *ops, size_t n) {
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->kind = kind;
    t->ops = ops;
    t->vocab_size = n;
    t->bos = t->eos = t->unk = t->pad = -1;
    t->piece_type = xcalloc(n ? n : 1, 1);
    t->piece_text_off = xcalloc(n + 1, sizeof *t->piece_text_off);
    t->piece_bytes_off = xcalloc(n + 1, sizeof *t->piece_bytes_off);
    return t;
}

void tok_set_piece(Tokenizer *t, TokStr *text_blob, TokStr *bytes_blob, size_t id, PieceType type,
                   const char *text, size_t text_len, const char *bytes, size_t bytes_len) {
    t->piece_type[id] = (uint8_t)type;
    t->piece_text_off[id] = text_blob->n;
    tokstr_put(text_blob, text, text_len);
    t->piece_bytes_off[id] = bytes_blob->n;
    tokstr_put(bytes_blob, bytes, bytes_len);
}

void tok_finish_pieces(Tokenizer *t, TokStr *text_blob, TokStr *bytes_blob) {
    tokstr_reserve(text_blob, 0);
    tokstr_reserve(bytes_blob, 0);
    t->piece_text_off[t->vocab_size] = text_blob->n;
    t->piece_bytes_off[t->vocab_size] = bytes_blob->n;
    t->piece_text = text_blob->p;
    t->piece_bytes = bytes_blob->p;
}

/* ---------------------------------------------------------------- loading */

static int read_whole_file(const char *path, char **data, size_t *len, Err *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    TokStr s = {0};
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) tokstr_put(&s, buf, got);
    int bad = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (bad) {
        free(s.p);
        return err_set(err, "%s: read error (%s)", path, strerror(bad));
    }
    tokstr_reserve(&s, 0);
    *data = s.p;
    *len = s.n;
    return 0;
}

/* ---------------------------------------------------------------- recognising a format
 * Each format has a positive signature in its content; a file that shows none is an error that
 * names the formats known, never a guess (any text would otherwise load as a MaxMatch vocab and
 * give a plausible but wrong bits-per-byte). */

static int is_tern_bpe(const char *d, size_t len) {
    size_t m = strlen("tern-bpe ");
    return len >= m && memcmp(d, "tern-bpe ", m) == 0; /* the parser checks the version */
}

/* A serialized ModelProto: starts with the key of one of its fields 1..5 (length-delimited) and
 * parses as one. */
static int is_model_proto(const void *data, size_t len, Err *why) {
    const uint8_t *p = data;
    SpModel *probe;
    if (len > 0 && (p[0] == 0x0A || p[0] == 0x12 || p[0] == 0x1A || p[0] == 0x22 || p[0] == 0x2A))
        return 1; /* the parser names the damaged field */
    if (sp_model_parse(&probe, data, len, why) != 0) return 0;
    sp_model_free(probe);
    return 1;
}

#define TOK_FORMATS_KNOWN                                                                             \
    "known: a SentencePiece .model, a tern BPE file (first line \"tern-bpe 1\"), a MaxMatch vocab.txt " \
    "(UTF-8, one token per line, one line <unk> or [UNK]), or the name \"byte\""

static int unrecognised(const char *name, const char *d, size_t len, const Err *proto_why, Err *err) {
    if (tok_maxmatch_text(d, len))
        return err_set(err, "%s: not a tokenizer file: text, but no \"tern-bpe 1\" first line and no <unk> / [UNK] line (" TOK_FORMATS_KNOWN ")",
                       name);
    return err_set(err, "%s: not a tokenizer file: not a SentencePiece model (%s) and not text (" TOK_FORMATS_KNOWN ")", name,
                   proto_why->msg[0] ? proto_why->msg : "no ModelProto field at byte 0");
}

int tokenizer_load_memory(Tokenizer **out, const void *data, size_t len, const char *name, Err *err) {
    *out = NULL;
    const char *d = (const char *)data;
    if (len == 0) {
        if (!strcmp(name, "byte")) {
            *out = tokenizer_byte_new();
            return 0;
        }
        return err_set(err, "%s: empty file (" TOK_FORMATS_KNOWN ")", name);
    }
    Err why;
    err_clear(&why);
    int rc;
    if (is_tern_bpe(d, len)) rc = tok_bpe_create(out, d, len, name, err);
    else if (tok_maxmatch_recognise(d, len)) rc = tok_maxmatch_create(out, d, len, name, err);
    else if (!tok_maxmatch_text(d, len) && is_model_proto(data, len, &why)) rc = tok_sentencepiece_create(out, data, len, name, err);
    else return unrecognised(name, d, len, &why, err);
    if (rc) return -1;
    free((*out)->path);
    (*out)->path = xstrdup(name);
    return 0;
}

int tokenizer_load(Tokenizer **out, const char *path, Err *err) {
    *out = NULL;
    if (!strcmp(path, "byte")) {
        *out = tokenizer_byte_new();
        return 0;
    }
    char *data;
    size_t len;
    if (read_whole_file(path, &data, &len, err)) return -1;
    int rc = tokenizer_load_memory(out, data, len, path, err);
    free(data);
    return rc;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    if (t->ops->free_impl && t->impl) t->ops->free_impl(t->impl);
    free(t->path);
    free(t->piece_type);
    free(t->piece_text);
    free(t->piece_text_off);
    free(t->piece_bytes);
    free(t->piece_bytes_off);
    free(t);
}

void tokenbuf_free(TokenBuf *b) {
    free(b->ids);
    b->ids = NULL;
    b->n = b->cap = 0;
}

/* ---------------------------------------------------------------- the interface */

TokKind tokenizer_kind(const Tokenizer *t) { return t->kind; }
const char *tokenizer_kind_name(const Tokenizer *t) { return t->ops->name; }
size_t tokenizer_vocab_size(const Tokenizer *t) { return t->vocab_size; }
int32_t tokenizer_bos(const Tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const Tokenizer *t) { return t->eos; }
int32_t tokenizer_unk(const Tokenizer *t) { return t->unk; }
int32_t tokenizer_pad(const Tokenizer *t) { return t->pad; }

int tokenizer_encode_ex(const Tokenizer *t, TokScratch *s, const char *text, size_t len, unsigned flags,
                        TokenBuf *buf, Err *err) {
    if (s && s->owner != t) return err_set(err, "tokenizer_encode_ex: scratch belongs to another tokenizer");
    TokScratch *own = s ? NULL : tokscratch_new(t);
    /* A cache made for one short text costs more to build than it saves. */
    if (own) own->no_cache = len < 4096;
    size_t n0 = buf->n;
    int rc = t->ops->encode(t, s ? s : own, text ? text : "", text ? len : 0, flags, buf, err);
    if (rc) buf->n = n0; /* no half-encoded text left behind */
    tokscratch_free(own);
    return rc;
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, TokenBuf *buf, Err *err) {
    return tokenizer_encode_ex(t, NULL, text, len, 0, buf, err);
}

int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len, Err *err) {
    TokStr out = {0};
    tokstr_reserve(&out, 0);
    out.p[0] = 0; /* decoders that append nothing (no ids) leave it a valid empty string */
    *text = NULL;
    if (len) *len = 0;
    if (t->ops->decode(t, ids, n, &out, err)) {
        free(out.p);
        return -1;
    }
    *text = out.p;
    if (len) *len = out.n;
    return 0;
}

PieceType tokenizer_piece_type(const Tokenizer *t, int32_t id) {
    if (id < 0 || (size_t)id >= t->vocab_size) return (PieceType)0;
    return (PieceType)t->piece_type[id];
}

int tokenizer_piece(const Tokenizer *t, int32_t id, const char **text, size_t *len) {
    if (id < 0 || (size_t)id >= t->vocab_size) return -1;
    size_t a = t->piece_text_off[id], b = t->piece_text_off[id + 1];
    if (text) *text = t->piece_text + a;
    if (len) *len = b - a;
    return (int)(b - a);
}

size_t tokenizer_piece_bytes(const Tokenizer *t, int32_t id, char *buf, size_t cap) {
    if (id < 0 || (size_t)id >= t->vocab_size) return 0;
    size_t a = t->piece_bytes_off[id], b = t->piece_bytes_off[id + 1];
    if (buf && cap) memcpy(buf, t->piece_bytes + a, TERN_MIN(cap, b - a));
    return b - a;
}

size_t tokenizer_count_unknown(const Tokenizer *t, const int32_t *ids, size_t n) {
    if (t->unk < 0) return 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ids[i] == t->unk;
    return k;
}

double tokenizer_unknown_rate(const Tokenizer *t, const int32_t *ids, size_t n) {
    return n ? (double)tokenizer_count_unknown(t, ids, n) / (double)n : 0.0;
}

void tokenizer_get_info(const Tokenizer *t, TokInfo *info) {
    memset(info, 0, sizeof *info);
    info->kind = t->ops->name;
    info->path = t->path ? t->path : "";
    info->vocab_size = t->vocab_size;
    info->bos = t->bos;
    info->eos = t->eos;
    info->unk = t->unk;
    info->pad = t->pad;
    info->model_type = "";
    info->normalizer = "";
    for (size_t i = 0; i < t->vocab_size; i++) {
        info->num_byte_pieces += t->piece_type[i] == PIECE_BYTE;
        info->num_control += t->piece_type[i] == PIECE_CONTROL;
    }
    if (t->ops->info) t->ops->info(t, info);
}

int tokenizer_save(const Tokenizer *t, const char *path, Err *err) {
    if (!t->ops->save) return err_set(err, "%s: a %s tokenizer cannot be saved", path, t->ops->name);
    TokStr out = {0};
    if (t->ops->save(t, &out, err)) {
        free(out.p);
        return -1;
    }
    int rc = write_file_atomic(path, out.p, out.n, err);
    free(out.p);
    return rc;
}
