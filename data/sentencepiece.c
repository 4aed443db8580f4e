/* sentencepiece.c — SentencePiece .model files: the ModelProto reader, the normalizer (with the
 * precompiled charsmap, a Darts-clone double-array trie), the BPE encoder and the decoder.
 *
 * The behaviour reproduces the official SentencePiece tools (google/sentencepiece, Apache-2.0;
 * src/normalizer.cc, src/bpe_model.cc, src/model_interface.cc, src/sentencepiece_processor.cc,
 * third_party/darts_clone/darts.h), version 0.1.97 as shipped by Debian 12 — that is what the
 * parity test compares against. The code is written from a reading of those sources. */
#include "data/sentencepiece.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/protobuf.h"
#include "data/tokenizer_impl.h"

#define SPACE_SYMBOL "\xE2\x96\x81" /* U+2581, what escaped spaces become */
#define SPACE_SYMBOL_LEN 3
#define REPLACEMENT_CHAR "\xEF\xBF\xBD"
/* SentencePiece keeps at most this many prefix matches per position (kMaxTrieResultsSize);
 * matches past it are ignored, so we ignore them too. */
#define TRIE_MAX_RESULTS 32
#define MAX_PIECE_BYTES 8000

typedef enum { SPLIT_NONE = 0, SPLIT_BEFORE_SPACE, SPLIT_AFTER_SPACE } WordSplit;
enum { COPY_NO = 0, COPY_BYTE = 1, COPY_SPACE = 2 };

/* One normalizer: the model's, or the optional denormalizer used after decoding. */
typedef struct SpNorm {
    SpNormalizerSpec spec;
    int present;
    uint32_t *units; /* Darts-clone double array */
    size_t nunits;
    const char *strings; /* NUL-separated replacement strings the trie values point into */
    size_t strings_len;
    int treat_whitespace_as_suffix;
    int match_user_defined; /* only the model's normalizer keeps user-defined symbols intact */
    /* For each byte: COPY_BYTE when it is ASCII, starts no trie key and no user-defined symbol
     * (copied through as it is: most text), COPY_SPACE for ' ' under the same conditions (it
     * normalizes to itself but takes part in the whitespace rules), else COPY_NO. */
    uint8_t copy_as_is[256];
} SpNorm;

struct SpModel {
    uint8_t *data; /* the serialized model (the charsmaps point into it) */
    size_t len;
    char *piece_blob; /* piece texts, NUL-terminated */
    SpPiece *pieces;
    size_t n;
    SpTrainerSpec trainer;
    SpNorm norm, denorm;
    char *strings[6]; /* owned copies for the spec strings */
    StrMap normal;    /* NORMAL, USER_DEFINED, UNUSED pieces: what BPE may merge into */
    StrMap reserved;  /* CONTROL, UNKNOWN, BYTE pieces */
    int32_t unk_index; /* the UNKNOWN piece */
    int32_t byte_id[256];
    int32_t *user_defined; /* ids sorted by first byte, bucketed by ud_start */
    size_t n_user_defined;
    uint32_t ud_start[257];
    size_t max_piece_len;
    size_t n_unused;
    WordSplit split;
    int32_t bos, eos, unk, pad;
};

/* ---------------------------------------------------------------- parsing */

static char *field_string(const PbField *f) {
    char *s = xmalloc(f->len + 1);
    if (f->len) memcpy(s, f->data, f->len);
    s[f->len] = 0;
    return s;
}

static int expect_wire(const PbField *f, int wire, const char *what, Err *err) {
    if (f->wire == wire) return 0;
    return err_set(err, "%s (field %u) at byte %zu has wire type %d, expected %d", what, f->number, f->offset,
                   f->wire, wire);
}

static int parse_normalizer(SpNormalizerSpec *ns, char **name_slot, const PbField *outer, Err *err) {
    PbReader r;
    PbField f;
    int rc;
    pb_reader_sub(&r, outer);
    while ((rc = pb_next(&r, &f, err)) == 1) {
        switch (f.number) {
        case 1:
            if (expect_wire(&f, PB_LEN, "normalizer name", err)) return -1;
            free(*name_slot);
            *name_slot = field_string(&f);
            ns->name = *name_slot;
            break;
        case 2:
            if (expect_wire(&f, PB_LEN, "precompiled_charsmap", err)) return -1;
            ns->charsmap = f.data;
            ns->charsmap_len = f.len;
            break;
        case 3:
        case 4:
        case 5:
            if (expect_wire(&f, PB_VARINT, "normalizer flag", err)) return -1;
            if (f.number == 3) ns->add_dummy_prefix = pb_as_bool(&f);
            if (f.number == 4) ns->remove_extra_whitespaces = pb_as_bool(&f);
            if (f.number == 5) ns->escape_whitespaces = pb_as_bool(&f);
            break;
        default:
            break; /* fields we do not need (normalization_rule_tsv, extensions) */
        }
    }
    return rc;
}

static int parse_trainer(SpModel *m, const PbField *outer, Err *err) {
    SpTrainerSpec *t = &m->trainer;
    PbReader r;
    PbField f;
    int rc;
    pb_reader_sub(&r, outer);
    while ((rc = pb_next(&r, &f, err)) == 1) {
        int slot = -1;
        const char **target = NULL;
        switch (f.number) {
        case 44: slot = 0; target = &t->unk_surface; break;
        case 45: slot = 1; target = &t->unk_piece; break;
        case 46: slot = 2; target = &t->bos_piece; break;
        case 47: slot = 3; target = &t->eos_piece; break;
        case 48: slot = 4; target = &t->pad_piece; break;
        case 3: case 4: case 24: case 25: case 26: case 35: case 40: case 41: case 42: case 43:
            if (expect_wire(&f, PB_VARINT, "trainer_spec field", err)) return -1;
            break;
        default:
            continue;
        }
        if (target) {
            if (expect_wire(&f, PB_LEN, "trainer_spec string", err)) return -1;
            free(m->strings[slot]);
            m->strings[slot] = field_string(&f);
            *target = m->strings[slot];
            continue;
        }
        switch (f.number) {
        case 3: t->model_type = (SpModelType)pb_as_int32(&f); break;
        case 4: t->vocab_size = pb_as_int32(&f); break;
        case 24: t->treat_whitespace_as_suffix = pb_as_bool(&f); break;
        case 25: t->split_digits = pb_as_bool(&f); break;
        case 26: t->allow_whitespace_only_pieces = pb_as_bool(&f); break;
        case 35: t->byte_fallback = pb_as_bool(&f); break;
        case 40: t->unk_id = pb_as_int32(&f); break;
        case 41: t->bos_id = pb_as_int32(&f); break;
        case 42: t->eos_id = pb_as_int32(&f); break;
        case 43: t->pad_id = pb_as_int32(&f); break;
        }
    }
    return rc;
}

/* One ModelProto.SentencePiece: piece = 1, score = 2, type = 3. */
static int parse_piece(const PbField *outer, const uint8_t **text, size_t *len, float *score, int *type, Err *err) {
    PbReader r;
    PbField f;
    int rc;
    *text = NULL;
    *len = 0;
    *score = 0.0f;
    *type = PIECE_NORMAL;
    pb_reader_sub(&r, outer);
    while ((rc = pb_next(&r, &f, err)) == 1) {
        if (f.number == 1) {
            if (expect_wire(&f, PB_LEN, "piece", err)) return -1;
            *text = f.data;
            *len = f.len;
        } else if (f.number == 2) {
            if (expect_wire(&f, PB_FIXED32, "piece score", err)) return -1;
            *score = pb_as_float(&f);
        } else if (f.number == 3) {
            if (expect_wire(&f, PB_VARINT, "piece type", err)) return -1;
            *type = pb_as_int32(&f);
        }
    }
    return rc;
}

static int byte_piece_value(const char *s, size_t n) {
    /* "<0xNN>" with upper-case hex, exactly as SentencePiece writes them */
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static uint32_t read_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Darts-clone unit fields */
static inline uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
static inline int unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }

static int norm_init(SpNorm *nm, const SpModel *m, Err *err) {
    const SpNormalizerSpec *ns = &nm->spec;
    if (ns->charsmap_len) {
        /* <u32 trie bytes><double array><NUL-terminated replacement strings> */
        if (ns->charsmap_len <= 4) return err_set(err, "precompiled_charsmap is broken (%zu bytes)", ns->charsmap_len);
        uint32_t trie_bytes = read_le32(ns->charsmap);
        if ((size_t)trie_bytes + 4 > ns->charsmap_len || trie_bytes < 4)
            return err_set(err, "precompiled_charsmap: trie of %u bytes does not fit in %zu bytes", trie_bytes,
                           ns->charsmap_len);
        nm->nunits = trie_bytes / 4;
        nm->units = xmalloc(nm->nunits * sizeof *nm->units);
        for (size_t i = 0; i < nm->nunits; i++) nm->units[i] = read_le32(ns->charsmap + 4 + 4 * i);
        nm->strings = (const char *)ns->charsmap + 4 + trie_bytes;
        nm->strings_len = ns->charsmap_len - 4 - trie_bytes;
    }
    for (int c = 0; c < 256; c++) {
        int ok = c < 0x80;
        if (ok && nm->units) {
            size_t node = unit_offset(nm->units[0]) ^ (size_t)c;
            if (node < nm->nunits && unit_label(nm->units[node]) == (uint32_t)c) ok = 0;
        }
        if (ok && nm->match_user_defined && m->ud_start[c + 1] > m->ud_start[c]) ok = 0;
        nm->copy_as_is[c] = (uint8_t)(ok ? (c == ' ' ? COPY_SPACE : COPY_BYTE) : COPY_NO);
    }
    return 0;
}

/* Keys of pieces_ BPE may merge into must not straddle a word boundary for the per-word split
 * (and its cache) to give the same result as segmenting the whole text at once. */
static WordSplit choose_word_split(const SpModel *m) {
    int before_ok = 1, after_ok = 1;
    for (size_t i = 0; i < m->n; i++) {
        const SpPiece *p = &m->pieces[i];
        if (p->type != PIECE_NORMAL && p->type != PIECE_USER_DEFINED && p->type != PIECE_UNUSED) continue;
        for (size_t k = 0; k + SPACE_SYMBOL_LEN <= p->len; k++) {
            if (memcmp(p->text + k, SPACE_SYMBOL, SPACE_SYMBOL_LEN) != 0) continue;
            if (k != 0) before_ok = 0;
            if (k + SPACE_SYMBOL_LEN != p->len) after_ok = 0;
        }
    }
    if (!m->trainer.treat_whitespace_as_suffix && before_ok) return SPLIT_BEFORE_SPACE;
    if (m->trainer.treat_whitespace_as_suffix && after_ok) return SPLIT_AFTER_SPACE;
    return SPLIT_NONE;
}

static int32_t special_id(const SpModel *m, const char *piece, PieceType want) {
    int32_t id = sp_model_piece_to_id(m, piece, strlen(piece));
    return (id >= 0 && m->pieces[id].type == want) ? id : -1;
}

static int build_model(SpModel *m, Err *err) {
    PbReader r;
    PbField f;
    int rc;
    size_t npieces = 0, blob_bytes = 0;

    /* Defaults from sentencepiece_model.proto */
    m->trainer.model_type = SP_UNIGRAM;
    m->trainer.vocab_size = 8000;
    m->trainer.unk_id = 0;
    m->trainer.bos_id = 1;
    m->trainer.eos_id = 2;
    m->trainer.pad_id = -1;
    m->trainer.unk_surface = " \xE2\x81\x87 ";
    m->trainer.unk_piece = "<unk>";
    m->trainer.bos_piece = "<s>";
    m->trainer.eos_piece = "</s>";
    m->trainer.pad_piece = "<pad>";
    SpNormalizerSpec def = {.name = "", .add_dummy_prefix = 1, .remove_extra_whitespaces = 1, .escape_whitespaces = 1};
    m->norm.spec = def;
    m->denorm.spec = def;

    pb_reader_init(&r, m->data, m->len);
    while ((rc = pb_next(&r, &f, err)) == 1) {
        switch (f.number) {
        case 1:
            if (expect_wire(&f, PB_LEN, "pieces", err)) return -1;
            npieces++;
            blob_bytes += f.len + 1;
            break;
        case 2:
            if (expect_wire(&f, PB_LEN, "trainer_spec", err) || parse_trainer(m, &f, err)) return -1;
            break;
        case 3:
            if (expect_wire(&f, PB_LEN, "normalizer_spec", err) || parse_normalizer(&m->norm.spec, &m->strings[5], &f, err))
                return -1;
            m->norm.present = 1;
            break;
        case 5: {
            char *name = NULL;
            if (expect_wire(&f, PB_LEN, "denormalizer_spec", err)) return -1;
            int bad = parse_normalizer(&m->denorm.spec, &name, &f, err);
            free(name); /* the denormalizer's name is never shown */
            m->denorm.spec.name = "";
            if (bad) return -1;
            m->denorm.present = 1;
            break;
        }
        default:
            break; /* self_test_data and unknown fields */
        }
    }
    if (rc < 0) return -1;
    if (npieces == 0) return err_set(err, "no pieces: not a SentencePiece model");
    if (npieces > INT32_MAX / 2) return err_set(err, "too many pieces (%zu)", npieces);

    m->pieces = xcalloc(npieces, sizeof *m->pieces);
    m->piece_blob = xmalloc(blob_bytes);
    strmap_init(&m->normal, npieces);
    strmap_init(&m->reserved, 300);
    m->unk_index = -1;
    for (int b = 0; b < 256; b++) m->byte_id[b] = -1;
    size_t at = 0, ud_count[256] = {0};

    pb_reader_init(&r, m->data, m->len);
    while ((rc = pb_next(&r, &f, err)) == 1) {
        if (f.number != 1) continue;
        const uint8_t *text;
        size_t len;
        float score;
        int type;
        if (parse_piece(&f, &text, &len, &score, &type, err)) return -1;
        size_t id = m->n;
        if (type < PIECE_NORMAL || type > PIECE_BYTE)
            return err_set(err, "piece %zu has unknown type %d", id, type);
        if (len == 0) return err_set(err, "piece %zu is empty", id);
        if (len >= MAX_PIECE_BYTES) return err_set(err, "piece %zu is too long (%zu bytes)", id, len);
        if (memchr(text, 0, len)) return err_set(err, "piece %zu contains a NUL byte", id);
        char *s = m->piece_blob + at;
        memcpy(s, text, len);
        s[len] = 0;
        at += len + 1;
        m->pieces[id] = (SpPiece){.text = s, .len = (uint32_t)len, .score = score, .type = (PieceType)type};
        m->n++;
        int normal = type == PIECE_NORMAL || type == PIECE_USER_DEFINED || type == PIECE_UNUSED;
        if (strmap_put(normal ? &m->normal : &m->reserved, s, len, (int32_t)id))
            return err_set(err, "piece %zu \"%s\" is already defined", id, s);
        if (normal && len > m->max_piece_len) m->max_piece_len = len;
        if (type == PIECE_UNUSED) m->n_unused++;
        if (type == PIECE_USER_DEFINED) ud_count[(uint8_t)s[0]]++;
        if (type == PIECE_UNKNOWN) {
            if (m->unk_index >= 0) return err_set(err, "more than one unknown piece (%d and %zu)", m->unk_index, id);
            m->unk_index = (int32_t)id;
        }
        if (type == PIECE_BYTE) {
            if (!m->trainer.byte_fallback)
                return err_set(err, "byte piece %s (id %zu) found although byte_fallback is false", s, id);
            int b = byte_piece_value(s, len);
            if (b < 0) return err_set(err, "byte piece \"%s\" (id %zu) is invalid", s, id);
            m->byte_id[b] = (int32_t)id;
        }
    }
    if (rc < 0) return -1;
    if (m->unk_index < 0) return err_set(err, "no unknown piece (<unk>) is defined");
    if (m->trainer.byte_fallback)
        for (int b = 0; b < 256; b++)
            if (m->byte_id[b] < 0) return err_set(err, "byte_fallback is set but byte piece <0x%02X> is missing", b);

    /* User-defined symbols, bucketed by first byte for the longest-prefix match. */
    m->ud_start[0] = 0;
    for (int c = 0; c < 256; c++) m->ud_start[c + 1] = m->ud_start[c] + (uint32_t)ud_count[c];
    m->n_user_defined = m->ud_start[256];
    if (m->n_user_defined) {
        uint32_t fill[256];
        memcpy(fill, m->ud_start, sizeof fill);
        m->user_defined = xmalloc(m->n_user_defined * sizeof *m->user_defined);
        for (size_t i = 0; i < m->n; i++)
            if (m->pieces[i].type == PIECE_USER_DEFINED) m->user_defined[fill[(uint8_t)m->pieces[i].text[0]]++] = (int32_t)i;
    }

    m->norm.treat_whitespace_as_suffix = m->trainer.treat_whitespace_as_suffix;
    m->norm.match_user_defined = 1;
    if (norm_init(&m->norm, m, err)) return -1;
    /* SentencePiece only denormalizes when the spec carries a charsmap. */
    m->denorm.present = m->denorm.present && m->denorm.spec.charsmap_len > 0;
    if (m->denorm.present) {
        Err sub;
        if (norm_init(&m->denorm, m, &sub)) return err_set(err, "denormalizer: %s", sub.msg);
    }
    m->split = choose_word_split(m);
    m->unk = special_id(m, m->trainer.unk_piece, PIECE_UNKNOWN);
    m->bos = special_id(m, m->trainer.bos_piece, PIECE_CONTROL);
    m->eos = special_id(m, m->trainer.eos_piece, PIECE_CONTROL);
    m->pad = special_id(m, m->trainer.pad_piece, PIECE_CONTROL);
    return 0;
}

void sp_model_free(SpModel *m) {
    if (!m) return;
    for (size_t i = 0; i < TERN_ARRAY_LEN(m->strings); i++) free(m->strings[i]);
    free(m->norm.units);
    free(m->denorm.units);
    strmap_free(&m->normal);
    strmap_free(&m->reserved);
    free(m->user_defined);
    free(m->pieces);
    free(m->piece_blob);
    free(m->data);
    free(m);
}

int sp_model_parse(SpModel **out, const void *data, size_t len, Err *err) {
    *out = NULL;
    SpModel *m = xcalloc(1, sizeof *m);
    m->data = xmalloc(len ? len : 1);
    if (len) memcpy(m->data, data, len);
    m->len = len;
    if (build_model(m, err)) {
        sp_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

size_t sp_model_num_pieces(const SpModel *m) { return m->n; }
const SpPiece *sp_model_piece(const SpModel *m, int32_t id) {
    return (id >= 0 && (size_t)id < m->n) ? &m->pieces[id] : NULL;
}
const SpTrainerSpec *sp_model_trainer_spec(const SpModel *m) { return &m->trainer; }
const SpNormalizerSpec *sp_model_normalizer_spec(const SpModel *m) { return &m->norm.spec; }
int32_t sp_model_bos(const SpModel *m) { return m->bos; }
int32_t sp_model_eos(const SpModel *m) { return m->eos; }
int32_t sp_model_unk(const SpModel *m) { return m->unk; }
int32_t sp_model_pad(const SpModel *m) { return m->pad; }

int32_t sp_model_piece_to_id(const SpModel *m, const char *piece, size_t len) {
    uint64_t h = tok_hash_bytes(piece, len);
    int32_t id = strmap_get_hashed(&m->reserved, piece, len, h);
    if (id >= 0) return id;
    id = strmap_get_hashed(&m->normal, piece, len, h);
    return id >= 0 ? id : m->unk_index;
}

/* ---------------------------------------------------------------- normalizer */

/* Longest user-defined symbol at p (0: none). */
static size_t match_user_defined(const SpModel *m, const uint8_t *p, size_t left) {
    size_t best = 0;
    for (uint32_t k = m->ud_start[p[0]]; k < m->ud_start[p[0] + 1]; k++) {
        const SpPiece *u = &m->pieces[m->user_defined[k]];
        if (u->len <= left && u->len > best && memcmp(u->text, p, u->len) == 0) best = u->len;
    }
    return best;
}

/* Longest charsmap key at p: its length (0: none) and where its replacement starts. */
static size_t trie_longest_match(const SpNorm *nm, const uint8_t *p, size_t left, uint32_t *value) {
    const uint32_t *u = nm->units;
    size_t n = nm->nunits, node = unit_offset(u[0]), best = 0, found = 0;
    for (size_t i = 0; i < left; i++) {
        node ^= p[i];
        if (node >= n) break;
        uint32_t unit = u[node];
        if (unit_label(unit) != p[i]) break;
        node ^= unit_offset(unit);
        if (unit_has_leaf(unit)) {
            if (found < TRIE_MAX_RESULTS && node < n) {
                best = i + 1;
                *value = u[node] & 0x7FFFFFFFu;
            }
            found++;
        }
    }
    return best;
}

typedef struct Prefix {
    const char *rep; /* what the consumed bytes normalize to */
    size_t rep_len;
    size_t consumed;
} Prefix;

/* SentencePiece's NormalizePrefix: user-defined symbols stay as they are, then the longest
 * charsmap rule, else one UTF-8 character copied (a malformed byte becomes U+FFFD). */
static int normalize_prefix(const SpModel *m, const SpNorm *nm, const uint8_t *p, size_t left, Prefix *out,
                            Err *err) {
    if (nm->match_user_defined && m->n_user_defined) {
        size_t k = match_user_defined(m, p, left);
        if (k) {
            *out = (Prefix){(const char *)p, k, k};
            return 0;
        }
    }
    if (nm->units) {
        uint32_t value = 0;
        size_t k = trie_longest_match(nm, p, left, &value);
        if (k) {
            if (value >= nm->strings_len)
                return err_set(err, "precompiled_charsmap rule points outside its strings (corrupt model)");
            const char *s = nm->strings + value;
            *out = (Prefix){s, strnlen(s, nm->strings_len - value), k};
            return 0;
        }
    }
    size_t k = utf8_char_len(p, left);
    if (k == 0) *out = (Prefix){REPLACEMENT_CHAR, 3, 1};
    else *out = (Prefix){(const char *)p, k, k};
    return 0;
}

typedef struct OutBuf {
    char **p;
    size_t *cap;
    size_t n;
} OutBuf;

static inline void out_reserve(OutBuf *o, size_t extra) {
    if (o->n + extra <= *o->cap) return;
    size_t cap = (o->n + extra) * 2;
    *o->p = xrealloc(*o->p, cap);
    *o->cap = cap;
}

/* SentencePiece's Normalizer::Normalize into o (without the alignment it also tracks). */
static int normalize_into(const SpModel *m, const SpNorm *nm, const char *text, size_t len, OutBuf *o, Err *err) {
    const SpNormalizerSpec *ns = &nm->spec;
    const uint8_t *p = (const uint8_t *)text, *end = p + len;
    const char *ws = ns->escape_whitespaces ? SPACE_SYMBOL : " ";
    size_t ws_len = ns->escape_whitespaces ? SPACE_SYMBOL_LEN : 1;
    Prefix pre;
    o->n = 0;
    if (len == 0) return 0;
    if (ns->remove_extra_whitespaces) {
        while (p < end) {
            if (normalize_prefix(m, nm, p, (size_t)(end - p), &pre, err)) return -1;
            if (!(pre.rep_len == 1 && pre.rep[0] == ' ')) break;
            p += pre.consumed;
        }
    }
    if (p == end) return 0;
    out_reserve(o, (size_t)(end - p) + 16);
    if (!nm->treat_whitespace_as_suffix && ns->add_dummy_prefix) {
        memcpy(*o->p + o->n, ws, ws_len);
        o->n += ws_len;
    }
    int prev_space = ns->remove_extra_whitespaces;
    while (p < end) {
        if (nm->copy_as_is[*p] == COPY_BYTE) {
            const uint8_t *q = p;
            while (q < end && nm->copy_as_is[*q] == COPY_BYTE) q++;
            out_reserve(o, (size_t)(q - p));
            memcpy(*o->p + o->n, p, (size_t)(q - p));
            o->n += (size_t)(q - p);
            p = q;
            prev_space = 0;
            continue;
        }
        if (nm->copy_as_is[*p] == COPY_SPACE) pre = (Prefix){" ", 1, 1};
        else if (normalize_prefix(m, nm, p, (size_t)(end - p), &pre, err)) return -1;
        const char *s = pre.rep;
        size_t sl = pre.rep_len;
        while (prev_space && sl && *s == ' ') s++, sl--;
        if (sl) {
            out_reserve(o, 3 * sl);
            char *w = *o->p + o->n;
            for (size_t i = 0; i < sl; i++) {
                if (s[i] == ' ' && ns->escape_whitespaces) {
                    memcpy(w, SPACE_SYMBOL, SPACE_SYMBOL_LEN);
                    w += SPACE_SYMBOL_LEN;
                } else {
                    *w++ = s[i];
                }
            }
            o->n = (size_t)(w - *o->p);
            prev_space = s[sl - 1] == ' ';
        }
        p += pre.consumed;
        if (!ns->remove_extra_whitespaces) prev_space = 0;
    }
    if (ns->remove_extra_whitespaces)
        while (o->n >= ws_len && memcmp(*o->p + o->n - ws_len, ws, ws_len) == 0) o->n -= ws_len;
    if (nm->treat_whitespace_as_suffix && ns->add_dummy_prefix) {
        out_reserve(o, ws_len);
        memcpy(*o->p + o->n, ws, ws_len);
        o->n += ws_len;
    }
    return 0;
}

static int check_utf8(const char *text, size_t len, unsigned flags, Err *err) {
    if (flags & TOK_ENCODE_ALLOW_INVALID_UTF8) return 0;
    size_t bad = utf8_first_invalid(text, len);
    if (bad < len) return err_set(err, "invalid UTF-8 at byte %zu (0x%02X)", bad, (unsigned)(uint8_t)text[bad]);
    return 0;
}

int sp_normalize(const SpModel *m, const char *text, size_t len, unsigned flags, char **out, size_t *out_len,
                 Err *err) {
    *out = NULL;
    *out_len = 0;
    if (check_utf8(text, len, flags, err)) return -1;
    char *buf = NULL;
    size_t cap = 0;
    OutBuf o = {&buf, &cap, 0};
    out_reserve(&o, 1);
    if (normalize_into(m, &m->norm, text, len, &o, err)) {
        free(buf);
        return -1;
    }
    out_reserve(&o, 1);
    buf[o.n] = 0;
    *out = buf;
    *out_len = o.n;
    return 0;
}

/* ---------------------------------------------------------------- BPE */

typedef struct BpeSymbol {
    int32_t prev, next; /* -1 at the ends */
    uint32_t start, len; /* len 0: merged into its left neighbour */
    int32_t frozen;      /* user-defined symbols never merge */
} BpeSymbol;

typedef struct BpeCandidate {
    float score;
    int32_t left, right;
    uint32_t size; /* merged length when pushed; a mismatch later means the pair went stale */
} BpeCandidate;

/* Highest score first, the leftmost pair among equal scores. */
static inline int candidate_before(const BpeCandidate *a, const BpeCandidate *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(BpeCandidate *h, size_t *n, BpeCandidate c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!candidate_before(&c, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

static BpeCandidate heap_pop(BpeCandidate *h, size_t *n) {
    BpeCandidate top = h[0], last = h[--*n];
    size_t i = 0, count = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= count) break;
        if (c + 1 < count && candidate_before(&h[c + 1], &h[c])) c++;
        if (!candidate_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (count) h[i] = last;
    return top;
}

/* Unused pieces may be merged into but are split back into the two halves they were made of
 * (SentencePiece's rev_merge); the latest record for a piece wins. */
typedef struct RevMerge {
    uint32_t piece_start, piece_len, left_start, left_len, right_start, right_len;
} RevMerge;
typedef struct RevMerges {
    RevMerge *v;
    size_t n, cap;
} RevMerges;

typedef struct WordCtx {
    const SpModel *m;
    const char *w;
    BpeSymbol *sym;
    BpeCandidate *heap;
    size_t nheap;
    RevMerges rev;
} WordCtx;

static void maybe_add_pair(WordCtx *c, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const BpeSymbol *l = &c->sym[left], *r = &c->sym[right];
    if (l->frozen || r->frozen) return;
    size_t len = (size_t)l->len + r->len;
    if (len > c->m->max_piece_len) return;
    const char *piece = c->w + l->start;
    int32_t id = strmap_get(&c->m->normal, piece, len);
    if (id < 0) return;
    const SpPiece *p = &c->m->pieces[id];
    heap_push(c->heap, &c->nheap, (BpeCandidate){p->score, left, right, (uint32_t)len});
    if (p->type == PIECE_UNUSED) {
        if (c->rev.n == c->rev.cap) {
            c->rev.cap = c->rev.cap ? 2 * c->rev.cap : 16;
            c->rev.v = xrealloc(c->rev.v, c->rev.cap * sizeof *c->rev.v);
        }
        c->rev.v[c->rev.n++] = (RevMerge){l->start, (uint32_t)len, l->start, l->len, r->start, r->len};
    }
}

static void emit_piece(const SpModel *m, int32_t id, const char *piece, size_t len, TokenBuf *out) {
    if (id == m->unk_index && m->trainer.byte_fallback) {
        for (size_t i = 0; i < len; i++) tokenbuf_push(out, m->byte_id[(uint8_t)piece[i]]);
    } else {
        tokenbuf_push(out, id);
    }
}

static void resegment(WordCtx *c, uint32_t start, uint32_t len, TokenBuf *out, int depth) {
    const char *piece = c->w + start;
    int32_t id = sp_model_piece_to_id(c->m, piece, len);
    if (id >= 0 && c->m->pieces[id].type == PIECE_UNUSED && depth < 64) {
        for (size_t k = c->rev.n; k-- > 0;) {
            const RevMerge *r = &c->rev.v[k];
            if (r->piece_len == len && memcmp(c->w + r->piece_start, piece, len) == 0) {
                resegment(c, r->left_start, r->left_len, out, depth + 1);
                resegment(c, r->right_start, r->right_len, out, depth + 1);
                return;
            }
        }
    }
    emit_piece(c->m, id, piece, len, out);
}

/* bpe_model.cc's algorithm on one word: start from characters (user-defined symbols whole),
 * repeatedly merge the best adjacent pair whose concatenation is a piece. Appends ids to out. */
static void bpe_segment(const SpModel *m, TokScratch *s, const char *w, size_t n, TokenBuf *out) {
    WordCtx c = {.m = m, .w = w};
    c.sym = scratch_grow(&s->work, &s->work_cap, n * sizeof *c.sym);
    c.heap = scratch_grow(&s->heap, &s->heap_cap, (3 * n + 4) * sizeof *c.heap);
    size_t nsym = 0;
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        int frozen = 0;
        if (m->n_user_defined) {
            k = match_user_defined(m, (const uint8_t *)w + i, n - i);
            frozen = k > 0;
        }
        if (!k) {
            static const uint8_t kCharLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
            k = TERN_MIN((size_t)kCharLen[(uint8_t)w[i] >> 4], n - i);
        }
        c.sym[nsym] = (BpeSymbol){(int32_t)nsym - 1, (int32_t)nsym + 1, (uint32_t)i, (uint32_t)k, frozen};
        nsym++;
        i += k;
    }
    if (nsym == 0) return;
    c.sym[nsym - 1].next = -1;
    for (size_t i = 1; i < nsym; i++) maybe_add_pair(&c, (int32_t)i - 1, (int32_t)i);

    while (c.nheap) {
        BpeCandidate top = heap_pop(c.heap, &c.nheap);
        BpeSymbol *l = &c.sym[top.left], *r = &c.sym[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue;
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) c.sym[r->next].prev = top.left;
        r->len = 0;
        maybe_add_pair(&c, l->prev, top.left);
        maybe_add_pair(&c, top.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = c.sym[i].next) {
        if (m->n_unused) {
            resegment(&c, c.sym[i].start, c.sym[i].len, out, 0);
        } else {
            const char *piece = w + c.sym[i].start;
            emit_piece(m, sp_model_piece_to_id(m, piece, c.sym[i].len), piece, c.sym[i].len, out);
        }
    }
    free(c.rev.v);
}

/* Appends one word's ids; without byte fallback, a run of unknown pieces becomes one <unk>
 * (SentencePiece merges them), also across words. */
static void encode_word(const SpModel *m, TokScratch *s, const char *w, size_t n, TokenBuf *buf, int *prev_unk) {
    const int32_t *ids;
    size_t nids;
    uint64_t h = 0;
    int cacheable = n <= WORDCACHE_MAX_WORD && !s->no_cache;
    ids = cacheable ? wordcache_get(&s->cache, w, n, h = tok_hash_bytes(w, n), &nids) : NULL;
    if (!ids) {
        s->word.n = 0;
        bpe_segment(m, s, w, n, &s->word);
        ids = s->word.ids;
        nids = s->word.n;
        if (cacheable) wordcache_put(&s->cache, w, n, h, ids, nids);
    }
    tokenbuf_reserve(buf, nids);
    if (m->trainer.byte_fallback) {
        if (nids) memcpy(buf->ids + buf->n, ids, nids * sizeof *ids);
        buf->n += nids;
        return;
    }
    for (size_t i = 0; i < nids; i++) {
        int unk = ids[i] == m->unk_index;
        if (!(unk && *prev_unk)) buf->ids[buf->n++] = ids[i];
        *prev_unk = unk;
    }
}

/* split_digits needs nothing here: it only shapes training (no piece holds two digits), and
 * SentencePiece's encoder does not look at it either. */
int sp_encode(const SpModel *m, TokScratch *s, const char *text, size_t len, unsigned flags, TokenBuf *buf,
              Err *err) {
    if (m->trainer.model_type != SP_BPE)
        return err_set(err, "only BPE SentencePiece models can encode (model_type is %d)", (int)m->trainer.model_type);
    if (check_utf8(text, len, flags, err)) return -1;
    if (len > (size_t)INT32_MAX / 8) return err_set(err, "text of %zu bytes is too long to encode at once", len);
    OutBuf o = {&s->text, &s->text_cap, 0};
    if (normalize_into(m, &m->norm, text, len, &o, err)) return -1;
    const char *t = s->text;
    size_t n = o.n;
    int prev_unk = 0;
    if (n == 0) return 0;
    if (m->split == SPLIT_NONE) {
        /* Some piece spans a space symbol: segment the text as one unit, as SentencePiece does. */
        s->word.n = 0;
        bpe_segment(m, s, t, n, &s->word);
        for (size_t i = 0; i < s->word.n; i++) {
            int32_t id = s->word.ids[i];
            int unk = id == m->unk_index && !m->trainer.byte_fallback;
            if (!(unk && prev_unk)) tokenbuf_push(buf, id);
            prev_unk = unk;
        }
        return 0;
    }
    size_t start = 0;
    while (start < n) {
        /* The next U+2581 at or after `from` ends this word (before it, or after it in suffix mode). */
        size_t from = m->split == SPLIT_BEFORE_SPACE ? start + 1 : start, end = n;
        for (size_t i = from; i + SPACE_SYMBOL_LEN <= n; i++) {
            const char *q = memchr(t + i, 0xE2, n - i);
            if (!q) break;
            i = (size_t)(q - t);
            if (i + SPACE_SYMBOL_LEN <= n && (uint8_t)q[1] == 0x96 && (uint8_t)q[2] == 0x81) {
                end = m->split == SPLIT_BEFORE_SPACE ? i : i + SPACE_SYMBOL_LEN;
                break;
            }
        }
        encode_word(m, s, t + start, end - start, buf, &prev_unk);
        start = end;
    }
    return 0;
}

/* ---------------------------------------------------------------- decoding */

/* Bytes from a run of byte pieces, read as UTF-8: each malformed byte becomes U+FFFD. */
static void flush_bytes(TokStr *out, const uint8_t *bytes, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char_len(bytes + i, n - i);
        if (k == 0) {
            tokstr_put(out, REPLACEMENT_CHAR, 3);
            i++;
        } else {
            tokstr_put(out, bytes + i, k);
            i += k;
        }
    }
}

static int decode_into(const SpModel *m, const int32_t *ids, size_t n, TokStr *out, Err *err) {
    TokStr pending = {0}; /* a run of byte pieces, decoded together so characters reassemble */
    const SpNormalizerSpec *ns = &m->norm.spec;
    /* spm_decode drops the space symbol that starts the text when the normalizer could have put
     * it there (dummy prefix: only the first one) or would have removed it (extra whitespace:
     * all of them, for as long as nothing else has been written). */
    int may_strip = ns->add_dummy_prefix || ns->remove_extra_whitespaces;
    int at_start = 1, stripped_dummy = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= m->n) {
            free(pending.p);
            return err_set(err, "id %d at position %zu is out of range [0, %zu)", id, i, m->n);
        }
        const SpPiece *p = &m->pieces[id];
        if (p->type == PIECE_BYTE) {
            uint8_t b = (uint8_t)byte_piece_value(p->text, p->len);
            tokstr_put(&pending, &b, 1);
            continue;
        }
        flush_bytes(out, (const uint8_t *)pending.p, pending.n);
        pending.n = 0;
        if (stripped_dummy || out->n) at_start = 0;
        stripped_dummy = 0;
        if (p->type == PIECE_CONTROL) continue;
        if (p->type == PIECE_UNKNOWN) {
            tokstr_put(out, m->trainer.unk_surface, strlen(m->trainer.unk_surface));
            continue;
        }
        const char *s = p->text;
        size_t len = p->len;
        if (at_start && may_strip && len >= SPACE_SYMBOL_LEN && memcmp(s, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
            s += SPACE_SYMBOL_LEN;
            len -= SPACE_SYMBOL_LEN;
            stripped_dummy = !ns->remove_extra_whitespaces;
        }
        tokstr_reserve(out, len);
        for (size_t k = 0; k < len;) {
            if (k + SPACE_SYMBOL_LEN <= len && memcmp(s + k, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
                out->p[out->n++] = ' ';
                k += SPACE_SYMBOL_LEN;
            } else {
                out->p[out->n++] = s[k++];
            }
        }
        out->p[out->n] = 0;
    }
    flush_bytes(out, (const uint8_t *)pending.p, pending.n);
    free(pending.p);
    return 0;
}

int sp_decode(const SpModel *m, const int32_t *ids, size_t n, char **text, size_t *len, Err *err) {
    TokStr out = {0};
    tokstr_reserve(&out, 16);
    *text = NULL;
    *len = 0;
    if (decode_into(m, ids, n, &out, err)) {
        free(out.p);
        return -1;
    }
    if (m->denorm.present) {
        char *buf = NULL;
        size_t cap = 0;
        OutBuf o = {&buf, &cap, 0};
        if (normalize_into(m, &m->denorm, out.p, out.n, &o, err)) {
            free(buf);
            free(out.p);
            return -1;
        }
        free(out.p);
        out.p = NULL;
        out.n = out.cap = 0;
        tokstr_put(&out, buf ? buf : "", o.n);
        free(buf);
    }
    *text = out.p;
    *len = out.n;
    return 0;
}

/* ---------------------------------------------------------------- Tokenizer kind */

static int sp_tok_encode(const Tokenizer *t, TokScratch *s, const char *text, size_t len, unsigned flags,
                         TokenBuf *buf, Err *err) {
    return sp_encode((const SpModel *)t->impl, s, text, len, flags, buf, err);
}

static int sp_tok_decode(const Tokenizer *t, const int32_t *ids, size_t n, TokStr *out, Err *err) {
    char *text;
    size_t len;
    if (sp_decode((const SpModel *)t->impl, ids, n, &text, &len, err)) return -1;
    tokstr_put(out, text, len);
    free(text);
    return 0;
}

static void sp_tok_info(const Tokenizer *t, TokInfo *info) {
    const SpModel *m = t->impl;
    static const char *const kTypes[] = {"?", "unigram", "bpe", "word", "char"};
    int mt = (int)m->trainer.model_type;
    info->model_type = (mt >= 1 && mt <= 4) ? kTypes[mt] : kTypes[0];
    info->normalizer = m->norm.spec.name ? m->norm.spec.name : "";
    info->charsmap_bytes = m->norm.spec.charsmap_len;
    info->add_dummy_prefix = m->norm.spec.add_dummy_prefix;
    info->remove_extra_whitespaces = m->norm.spec.remove_extra_whitespaces;
    info->escape_whitespaces = m->norm.spec.escape_whitespaces;
    info->treat_whitespace_as_suffix = m->trainer.treat_whitespace_as_suffix;
    info->byte_fallback = m->trainer.byte_fallback;
    info->split_digits = m->trainer.split_digits;
    for (size_t i = 0; i < m->n; i++) {
        PieceType ty = m->pieces[i].type;
        info->num_user_defined += ty == PIECE_USER_DEFINED;
        info->num_unused += ty == PIECE_UNUSED;
    }
}

static void sp_tok_free(void *impl) { sp_model_free((SpModel *)impl); }

static const TokOps kSentencePieceOps = {
    .name = "sentencepiece",
    .encode = sp_tok_encode,
    .decode = sp_tok_decode,
    .info = sp_tok_info,
    .save = NULL,
    .free_impl = sp_tok_free,
};

int tok_sentencepiece_create(Tokenizer **out, const void *data, size_t len, const char *name, Err *err) {
    SpModel *m;
    Err sub;
    err_clear(&sub);
    *out = NULL;
    if (sp_model_parse(&m, data, len, &sub)) return err_set(err, "%s: bad SentencePiece model: %s", name, sub.msg);
    Tokenizer *t = tok_alloc(TOK_SENTENCEPIECE, &kSentencePieceOps, m->n);
    t->impl = m;
    t->bos = m->bos;
    t->eos = m->eos;
    t->unk = m->unk;
    t->pad = m->pad;
    TokStr texts = {0}, bytes = {0};
    char buf[MAX_PIECE_BYTES];
    for (size_t i = 0; i < m->n; i++) {
        const SpPiece *p = &m->pieces[i];
        size_t nb = 0;
        if (p->type == PIECE_BYTE) {
            buf[nb++] = (char)byte_piece_value(p->text, p->len);
        } else if (p->type != PIECE_CONTROL && p->type != PIECE_UNKNOWN) {
            for (size_t k = 0; k < p->len;) {
                if (k + SPACE_SYMBOL_LEN <= p->len && memcmp(p->text + k, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
                    buf[nb++] = ' ';
                    k += SPACE_SYMBOL_LEN;
                } else {
                    buf[nb++] = p->text[k++];
                }
            }
        }
        tok_set_piece(t, &texts, &bytes, i, p->type, p->text, p->len, buf, nb);
    }
    tok_finish_pieces(t, &texts, &bytes);
    *out = t;
    return 0;
}
