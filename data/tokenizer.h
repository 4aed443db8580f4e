/* tokenizer.h — one interface over every tokenizer tern uses.
 *
 * Kinds: the official SentencePiece BPE models (.model protobuf files, encoded exactly as
 * spm_encode does), a byte-level tokenizer (256 bytes + specials), tern's own trained BPE
 * (its file format is in docs/FORMAT.md), and MaxMatch (greedy longest match over a vocab.txt).
 * tokenizer_load picks the kind from the file's content.
 *
 * Piece metadata (kind, text bytes) is what bits-per-byte counting needs (data/bpb.h). */
#ifndef TERN_TOKENIZER_H
#define TERN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"

typedef enum TokKind { TOK_SENTENCEPIECE = 1, TOK_BYTE, TOK_BPE, TOK_MAXMATCH } TokKind;

/* SentencePiece piece types (sentencepiece_model.proto ModelProto.SentencePiece.Type) */
typedef enum PieceType {
    PIECE_NORMAL = 1,
    PIECE_UNKNOWN = 2,
    PIECE_CONTROL = 3,
    PIECE_USER_DEFINED = 4,
    PIECE_UNUSED = 5,
    PIECE_BYTE = 6
} PieceType;

typedef struct Tokenizer Tokenizer;

/* Growable id buffer reused across calls (no per-call malloc once it is large enough). */
typedef struct TokenBuf {
    int32_t *ids;
    size_t n, cap;
} TokenBuf;
void tokenbuf_free(TokenBuf *b);

int tokenizer_load(Tokenizer **out, const char *path, Err *err);
void tokenizer_free(Tokenizer *t);
TokKind tokenizer_kind(const Tokenizer *t);
const char *tokenizer_kind_name(const Tokenizer *t);
size_t tokenizer_vocab_size(const Tokenizer *t);

/* Appends the ids of `text` (len bytes, UTF-8) to buf (buf->n grows). Invalid UTF-8 is an error
 * (the message gives the byte offset). Thread-safe: many threads may encode with one Tokenizer. */
int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, TokenBuf *buf, Err *err);
/* Decodes ids into a malloc'd NUL-terminated string (*len without the NUL). */
int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len,
                     Err *err);

/* Special ids, -1 when the tokenizer has none. */
int32_t tokenizer_bos(const Tokenizer *t);
int32_t tokenizer_eos(const Tokenizer *t);
int32_t tokenizer_unk(const Tokenizer *t);
int32_t tokenizer_pad(const Tokenizer *t);

/* Piece `id`: its type and its text as stored (SentencePiece pieces keep the U+2581 "▁" meta
 * space; byte pieces are "<0xNN>"). Returns the text length in bytes, -1 for a bad id. */
PieceType tokenizer_piece_type(const Tokenizer *t, int32_t id);
int tokenizer_piece(const Tokenizer *t, int32_t id, const char **text, size_t *len);
/* The exact UTF-8 bytes `id` decodes to in isolation (byte pieces: 1 byte; meta space -> ' ';
 * control/unknown: 0 bytes). Used for own tokenizers' byte counting. */
size_t tokenizer_piece_bytes(const Tokenizer *t, int32_t id, char *buf, size_t cap);

#endif
