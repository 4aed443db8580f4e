#include "data/bpb.h"

#include <string.h>

int bpb_init(ByteCounter *bc, const Tokenizer *tok, size_t model_vocab, Err *err) {
    memset(bc, 0, sizeof *bc);
    size_t tv = tokenizer_vocab_size(tok);
    size_t n = model_vocab > tv ? model_vocab : tv;
    bc->vocab = n;
    bc->base_bytes = xcalloc(n, sizeof(uint16_t));
    bc->leading_space = xcalloc(n, 1);
    bc->boundary = xmalloc(n);
    memset(bc->boundary, 1, n);
    int sp = tokenizer_kind(tok) == TOK_SENTENCEPIECE;
    for (size_t id = 0; id < tv; id++) {
        PieceType pt = tokenizer_piece_type(tok, (int32_t)id);
        if (pt == PIECE_CONTROL || pt == PIECE_UNKNOWN || pt == PIECE_UNUSED) continue;
        bc->boundary[id] = 0;
        if (pt == PIECE_BYTE) {
            bc->base_bytes[id] = 1;
            continue;
        }
        if (sp) {
            const char *text;
            size_t len;
            if (tokenizer_piece(tok, (int32_t)id, &text, &len) < 0)
                return err_set(err, "bpb: tokenizer has no piece %zu", id);
            /* U+2581 is e2 96 81 in UTF-8 */
            if (len >= 3 && (unsigned char)text[0] == 0xe2 && (unsigned char)text[1] == 0x96 &&
                (unsigned char)text[2] == 0x81) {
                bc->leading_space[id] = 1;
                len -= 3;
            }
            bc->base_bytes[id] = (uint16_t)len;
        } else {
            char buf[256];
            bc->base_bytes[id] = (uint16_t)tokenizer_piece_bytes(tok, (int32_t)id, buf, sizeof buf);
        }
    }
    return 0;
}

void bpb_free(ByteCounter *bc) {
    xfree(bc->base_bytes);
    xfree(bc->leading_space);
    xfree(bc->boundary);
    memset(bc, 0, sizeof *bc);
}

double bpb_count(const ByteCounter *bc, const int32_t *prev, const int32_t *tgt, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += bpb_token_bytes(bc, prev[i], tgt[i]);
    return (double)s;
}
