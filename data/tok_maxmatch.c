/* tok_maxmatch.c — MaxMatch: greedy longest match over the tokens of a vocab.txt.
 *
 * vocab.txt holds one token per line; a token's id is its line number (0-based). A trailing
 * '\r' is dropped, so Windows line ends work; a token cannot contain a newline, but a line
 * "<0xNN>" stands for the single byte 0xNN (as in SentencePiece), which covers "\n" and bytes
 * that are not UTF-8 on their own. A line "<unk>" or "[UNK]" (required: it is what tells a vocab.txt
 * from any other text) is the unknown token; "<s>", "</s>", "<pad>", "[CLS]", "[SEP]", "[PAD]", "[MASK]" are control
 * tokens that text never matches. Empty lines keep their id but match nothing; a repeated token
 * keeps its first id.
 *
 * Encoding walks the text left to right and takes the longest token that starts there; where
 * no token matches, one character (one byte if it is malformed) becomes the unknown id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_impl.h"

/* A trie whose edges live in one hash table keyed by (node, byte). */
typedef struct Edge {
    uint64_t key; /* node << 8 | byte, +1 so that 0 marks an empty slot */
    int32_t child;
} Edge;

typedef struct MaxMatch {
    Edge *edges;
    size_t mask, nedges;
    int32_t *node_token; /* token id ending at each node, -1 for none */
    size_t nnodes, nodes_cap;
} MaxMatch;

static inline uint64_t edge_key(int32_t node, uint8_t byte) { return ((uint64_t)node << 8 | byte) + 1; }
static inline size_t edge_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & mask;
}

static int32_t edge_find(const MaxMatch *mm, int32_t node, uint8_t byte) {
    uint64_t key = edge_key(node, byte);
    for (size_t i = edge_slot(key, mm->mask);; i = (i + 1) & mm->mask) {
        if (mm->edges[i].key == key) return mm->edges[i].child;
        if (mm->edges[i].key == 0) return -1;
    }
}

static void edge_insert_raw(Edge *edges, size_t mask, Edge e) {
    size_t i = edge_slot(e.key, mask);
    while (edges[i].key) i = (i + 1) & mask;
    edges[i] = e;
}

static int32_t trie_child(MaxMatch *mm, int32_t node, uint8_t byte) {
    int32_t c = edge_find(mm, node, byte);
    if (c >= 0) return c;
    if ((mm->nedges + 1) * 2 > mm->mask + 1) {
        size_t cap = 2 * (mm->mask + 1);
        Edge *edges = xcalloc(cap, sizeof *edges);
        for (size_t i = 0; i <= mm->mask; i++)
            if (mm->edges[i].key) edge_insert_raw(edges, cap - 1, mm->edges[i]);
        free(mm->edges);
        mm->edges = edges;
        mm->mask = cap - 1;
    }
    if (mm->nnodes == mm->nodes_cap) {
        mm->nodes_cap *= 2;
        mm->node_token = xrealloc(mm->node_token, mm->nodes_cap * sizeof *mm->node_token);
    }
    c = (int32_t)mm->nnodes++;
    mm->node_token[c] = -1;
    edge_insert_raw(mm->edges, mm->mask, (Edge){edge_key(node, byte), c});
    mm->nedges++;
    return c;
}

static void maxmatch_free(void *impl) {
    MaxMatch *mm = impl;
    if (!mm) return;
    free(mm->edges);
    free(mm->node_token);
    free(mm);
}

static int maxmatch_encode(const Tokenizer *t, TokScratch *s, const char *text, size_t len, unsigned flags,
                           TokenBuf *buf, Err *err) {
    const MaxMatch *mm = t->impl;
    (void)s; /* greedy matching needs no working memory */
    if (!(flags & TOK_ENCODE_ALLOW_INVALID_UTF8)) {
        size_t bad = utf8_first_invalid(text, len);
        if (bad < len) return err_set(err, "invalid UTF-8 at byte %zu (0x%02X)", bad, (unsigned)(uint8_t)text[bad]);
    }
    const uint8_t *p = (const uint8_t *)text;
    size_t pos = 0;
    while (pos < len) {
        int32_t node = 0, best = -1;
        size_t best_len = 0;
        for (size_t i = pos; i < len; i++) {
            node = edge_find(mm, node, p[i]);
            if (node < 0) break;
            if (mm->node_token[node] >= 0) {
                best = mm->node_token[node];
                best_len = i - pos + 1;
            }
        }
        if (best >= 0) {
            tokenbuf_push(buf, best);
            pos += best_len;
        } else {
            size_t k = utf8_char_len(p + pos, len - pos);
            tokenbuf_push(buf, t->unk);
            pos += k ? k : 1;
        }
    }
    return 0;
}

static int maxmatch_decode(const Tokenizer *t, const int32_t *ids, size_t n, TokStr *out, Err *err) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->vocab_size)
            return err_set(err, "id %d at position %zu is out of range [0, %zu)", id, i, t->vocab_size);
        if (id == t->unk) {
            tokstr_put(out, "\xEF\xBF\xBD", 3); /* U+FFFD: something was here that the vocab lacks */
            continue;
        }
        size_t a = t->piece_bytes_off[id], b = t->piece_bytes_off[id + 1];
        tokstr_put(out, t->piece_bytes + a, b - a);
    }
    return 0;
}

static const TokOps kMaxMatchOps = {
    .name = "maxmatch",
    .encode = maxmatch_encode,
    .decode = maxmatch_decode,
    .free_impl = maxmatch_free,
};

static int is_one_of(const char *s, size_t n, const char *const *names) {
    for (; *names; names++)
        if (strlen(*names) == n && memcmp(*names, s, n) == 0) return 1;
    return 0;
}

static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static const char *const kUnk[] = {"<unk>", "[UNK]", NULL};

/* The id of the first <unk> / [UNK] line, -1 when there is none. */
static int32_t find_unk_line(const char *data, size_t len) {
    for (size_t pos = 0, line = 0; pos < len; line++) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len, n = end - pos;
        if (n && data[pos + n - 1] == '\r') n--;
        if (is_one_of(data + pos, n, kUnk)) return (int32_t)line;
        pos = end + 1;
    }
    return -1;
}

int tok_maxmatch_text(const char *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)data[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return 0;
    }
    return utf8_first_invalid(data, len) == len;
}

int tok_maxmatch_recognise(const char *data, size_t len) { return tok_maxmatch_text(data, len) && find_unk_line(data, len) >= 0; }

int tok_maxmatch_create(Tokenizer **out, const char *data, size_t len, const char *name, Err *err) {
    static const char *const kControl[] = {"<s>", "</s>", "<pad>", "[CLS]", "[SEP]", "[PAD]", "[MASK]", NULL};
    *out = NULL;
    size_t nlines = 0;
    for (size_t i = 0; i < len; i++) nlines += data[i] == '\n';
    if (len && data[len - 1] != '\n') nlines++;
    if (nlines > INT32_MAX / 2) return err_set(err, "%s: too many lines", name);
    int32_t unk = find_unk_line(data, len);
    if (unk < 0) return err_set(err, "%s: a MaxMatch vocab.txt needs an <unk> or [UNK] line", name);
    size_t vocab = nlines;
    Tokenizer *t = tok_alloc(TOK_MAXMATCH, &kMaxMatchOps, vocab);
    MaxMatch *mm = xcalloc(1, sizeof *mm);
    t->impl = mm;
    mm->mask = 1023;
    mm->edges = xcalloc(mm->mask + 1, sizeof *mm->edges);
    mm->nodes_cap = 1024;
    mm->node_token = xmalloc(mm->nodes_cap * sizeof *mm->node_token);
    mm->node_token[0] = -1;
    mm->nnodes = 1;

    TokStr texts = {0}, bytes = {0};
    size_t line = 0;
    for (size_t pos = 0; pos < len; line++) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len, n = end - pos;
        const char *s = data + pos;
        if (n && s[n - 1] == '\r') n--;
        pos = end + 1;
        PieceType type = PIECE_NORMAL;
        char byte;
        const char *match = s;
        size_t match_len = n;
        int b = byte_token(s, n);
        if ((int32_t)line == unk) {
            type = PIECE_UNKNOWN;
        } else if (is_one_of(s, n, kUnk) || is_one_of(s, n, kControl)) {
            type = PIECE_CONTROL;
        } else if (n == 0) {
            type = PIECE_UNUSED;
        } else if (b >= 0) {
            type = PIECE_BYTE;
            byte = (char)b;
            match = &byte;
            match_len = 1;
        }
        int matchable = type == PIECE_NORMAL || type == PIECE_BYTE;
        tok_set_piece(t, &texts, &bytes, line, type, s, n, matchable ? match : "", matchable ? match_len : 0);
        if (!matchable) continue;
        int32_t node = 0;
        for (size_t i = 0; i < match_len; i++) node = trie_child(mm, node, (uint8_t)match[i]);
        if (mm->node_token[node] < 0) mm->node_token[node] = (int32_t)line;
    }
    size_t ntokens = 0;
    for (size_t i = 0; i < line; i++) ntokens += t->piece_type[i] == PIECE_NORMAL || t->piece_type[i] == PIECE_BYTE;
    if (ntokens == 0) {
        tokstr_reserve(&texts, 0);
        tokstr_reserve(&bytes, 0);
        tok_finish_pieces(t, &texts, &bytes);
        tokenizer_free(t);
        return err_set(err, "%s: vocab.txt has no tokens", name);
    }
    tok_finish_pieces(t, &texts, &bytes);
    t->unk = unk;
    for (size_t i = 0; i < vocab; i++) {
        size_t a = t->piece_text_off[i], n = t->piece_text_off[i + 1] - a;
        const char *s = t->piece_text + a;
        if (t->piece_type[i] != PIECE_CONTROL) continue;
        if (t->bos < 0 && (is_one_of(s, n, (const char *const[]){"<s>", "[CLS]", NULL}))) t->bos = (int32_t)i;
        if (t->eos < 0 && (is_one_of(s, n, (const char *const[]){"</s>", "[SEP]", NULL}))) t->eos = (int32_t)i;
        if (t->pad < 0 && (is_one_of(s, n, (const char *const[]){"<pad>", "[PAD]", NULL}))) t->pad = (int32_t)i;
    }
    *out = t;
    return 0;
}
