/* sentencepiece.h — SentencePiece .model files: loading, normalization, BPE encoding and
 * decoding that reproduce the official tools (spm_encode / spm_decode 0.1.97) id for id.
 *
 * The algorithms follow the public google/sentencepiece sources (src/normalizer.cc,
 * src/bpe_model.cc, src/model_interface.cc, src/sentencepiece_processor.cc and the Darts-clone
 * double-array trie they use); the code here is our own. Most callers want data/tokenizer.h;
 * this header is for what is specific to SentencePiece (specs, normalization on its own). */
#ifndef TERN_SENTENCEPIECE_H
#define TERN_SENTENCEPIECE_H

#include <stddef.h>
#include <stdint.h>

#include "data/tokenizer.h"
#include "kernels/util.h"

typedef enum SpModelType { SP_UNIGRAM = 1, SP_BPE = 2, SP_WORD = 3, SP_CHAR = 4 } SpModelType;

/* The TrainerSpec fields that change how text is encoded or decoded. */
typedef struct SpTrainerSpec {
    SpModelType model_type;
    int32_t vocab_size;
    int byte_fallback, split_digits, treat_whitespace_as_suffix, allow_whitespace_only_pieces;
    int32_t unk_id, bos_id, eos_id, pad_id;  /* as written in the spec (ids really used: below) */
    const char *unk_piece, *bos_piece, *eos_piece, *pad_piece, *unk_surface;
} SpTrainerSpec;

typedef struct SpNormalizerSpec {
    const char *name;
    const uint8_t *charsmap; /* precompiled charsmap: u32 trie size, Darts trie, strings */
    size_t charsmap_len;
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
} SpNormalizerSpec;

typedef struct SpPiece {
    const char *text;
    uint32_t len;
    float score;
    PieceType type;
} SpPiece;

typedef struct SpModel SpModel;

/* Parses a serialized ModelProto (the bytes are copied) and checks it the way SentencePiece
 * does (one <unk>, 256 byte pieces when byte_fallback, no duplicate or empty pieces, a
 * well-formed charsmap). Errors say what is wrong and, for wire-format damage, at which byte. */
int sp_model_parse(SpModel **out, const void *data, size_t len, Err *err);
void sp_model_free(SpModel *m);

size_t sp_model_num_pieces(const SpModel *m);
const SpPiece *sp_model_piece(const SpModel *m, int32_t id);
const SpTrainerSpec *sp_model_trainer_spec(const SpModel *m);
const SpNormalizerSpec *sp_model_normalizer_spec(const SpModel *m);
/* SentencePiece's PieceToId: control/unknown/byte pieces first, then the others; the unknown
 * id when the piece is not in the vocab. */
int32_t sp_model_piece_to_id(const SpModel *m, const char *piece, size_t len);
/* The special ids as SentencePieceProcessor reports them (-1 when absent). */
int32_t sp_model_bos(const SpModel *m);
int32_t sp_model_eos(const SpModel *m);
int32_t sp_model_unk(const SpModel *m);
int32_t sp_model_pad(const SpModel *m);

/* The normalized text spm_normalize would print (U+2581 for spaces when escaping).
 * Returns a malloc'd NUL-terminated string. flags: TOK_ENCODE_ALLOW_INVALID_UTF8. */
int sp_normalize(const SpModel *m, const char *text, size_t len, unsigned flags, char **out, size_t *out_len,
                 Err *err);

/* Encoding (BPE models only) and decoding, as spm_encode --output_format=id and
 * spm_decode --input_format=id do for one line. s may be NULL. */
int sp_encode(const SpModel *m, TokScratch *s, const char *text, size_t len, unsigned flags, TokenBuf *buf,
              Err *err);
int sp_decode(const SpModel *m, const int32_t *ids, size_t n, char **text, size_t *len, Err *err);

#endif
