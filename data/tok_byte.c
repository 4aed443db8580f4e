/* tok_byte.c — the byte-level tokenizer: ids 0..255 are the bytes of the text, then three
 * control ids: 256 = <s> (BOS), 257 = </s> (EOS), 258 = <pad>. No unknown id: every text
 * round-trips exactly. Piece texts follow SentencePiece's byte pieces ("<0x41>"). */
#include <stdio.h>
#include <string.h>

#include "data/tokenizer_impl.h"

enum { BYTE_BOS = 256, BYTE_EOS = 257, BYTE_PAD = 258, BYTE_VOCAB = 259 };

static int byte_encode(const Tokenizer *t, TokScratch *s, const char *text, size_t len, unsigned flags,
                       TokenBuf *buf, Err *err) {
    (void)t, (void)s; /* every byte is its own id: no table, no scratch */
    if (!(flags & TOK_ENCODE_ALLOW_INVALID_UTF8)) {
        size_t bad = utf8_first_invalid(text, len);
        if (bad < len) return err_set(err, "invalid UTF-8 at byte %zu (0x%02X)", bad, (unsigned)(uint8_t)text[bad]);
    }
    tokenbuf_reserve(buf, len);
    for (size_t i = 0; i < len; i++) buf->ids[buf->n + i] = (uint8_t)text[i];
    buf->n += len;
    return 0;
}

static int byte_decode(const Tokenizer *t, const int32_t *ids, size_t n, TokStr *out, Err *err) {
    (void)t;
    tokstr_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= BYTE_VOCAB)
            return err_set(err, "id %d at position %zu is out of range [0, %d)", id, i, BYTE_VOCAB);
        if (id < 256) out->p[out->n++] = (char)id;
    }
    out->p[out->n] = 0;
    return 0;
}

static const TokOps kByteOps = {
    .name = "byte",
    .encode = byte_encode,
    .decode = byte_decode,
};

Tokenizer *tokenizer_byte_new(void) {
    Tokenizer *t = tok_alloc(TOK_BYTE, &kByteOps, BYTE_VOCAB);
    TokStr texts = {0}, bytes = {0};
    for (int b = 0; b < 256; b++) {
        char name[8], byte = (char)b;
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok_set_piece(t, &texts, &bytes, (size_t)b, PIECE_BYTE, name, 6, &byte, 1);
    }
    tok_set_piece(t, &texts, &bytes, BYTE_BOS, PIECE_CONTROL, "<s>", 3, "", 0);
    tok_set_piece(t, &texts, &bytes, BYTE_EOS, PIECE_CONTROL, "</s>", 4, "", 0);
    tok_set_piece(t, &texts, &bytes, BYTE_PAD, PIECE_CONTROL, "<pad>", 5, "", 0);
    tok_finish_pieces(t, &texts, &bytes);
    t->bos = BYTE_BOS;
    t->eos = BYTE_EOS;
    t->pad = BYTE_PAD;
    t->path = xstrdup("byte");
    return t;
}
