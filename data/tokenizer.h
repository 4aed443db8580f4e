/* tokenizer.h — one interface over every tokenizer tern uses.
 *
 * Kinds: the official SentencePiece BPE models (.model protobuf files, encoded exactly as
 * spm_encode does), a byte-level tokenizer (256 bytes + specials), tern's own trained BPE
 * (its file format is in docs/tokenizer_format.md), and MaxMatch (greedy longest match over a vocab.txt).
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

/* ---------------------------------------------------------------- additions
 * Ids of the built-in kinds (docs/tokenizer_format.md has the details):
 *   byte: ids 0..255 are the bytes themselves; 256 = <s> (BOS), 257 = </s> (EOS), 258 = <pad>.
 *         No unknown id. Vocab size 259. Loaded with the path "byte".
 *   tern BPE: 0..255 bytes, then one id per merge in training order, then <s>, </s>, <pad>.
 *   MaxMatch: the line number (0-based) of each token in vocab.txt; "<unk>"/"[UNK]" lines are the
 *         unknown id (one is appended when the file has none), "<s>", "</s>", "<pad>", "[CLS]",
 *         "[SEP]", "[PAD]", "[MASK]" are control tokens that text never matches. */

/* Per-thread working memory for encoding: growing buffers and a bounded cache of recently
 * encoded words. One TokScratch serves one thread and one Tokenizer (free it before the
 * Tokenizer); tokenizer_encode makes a short-lived one per call, so long-running callers that
 * encode many small texts should keep one per thread and call tokenizer_encode_ex. */
typedef struct TokScratch TokScratch;
TokScratch *tokscratch_new(const Tokenizer *t);
void tokscratch_free(TokScratch *s);

/* tokenizer_encode_ex flags */
enum {
    /* Malformed UTF-8 is not an error: SentencePiece reads each bad byte as U+FFFD, exactly as
     * spm_encode does; byte-level kinds encode the bytes themselves; MaxMatch makes them unknown. */
    TOK_ENCODE_ALLOW_INVALID_UTF8 = 1u
};
/* tokenizer_encode with caller-owned scratch (NULL: a temporary one) and flags. */
int tokenizer_encode_ex(const Tokenizer *t, TokScratch *s, const char *text, size_t len, unsigned flags,
                        TokenBuf *buf, Err *err);

/* Offset of the first malformed UTF-8 byte in text (RFC 3629: no overlongs, surrogates or code
 * points above U+10FFFF), len when it is all well-formed. */
size_t tokenizer_first_invalid_utf8(const char *text, size_t len);

/* How many of ids are the unknown id, and that count over n (0 when n == 0 or there is no
 * unknown id). For MaxMatch this is the share of tokens that matched nothing in the vocab. */
size_t tokenizer_count_unknown(const Tokenizer *t, const int32_t *ids, size_t n);
double tokenizer_unknown_rate(const Tokenizer *t, const int32_t *ids, size_t n);

/* What a tokenizer is, for `tern tokenizer info`. Strings point into the Tokenizer. Fields that
 * do not apply to a kind are 0 / "". */
typedef struct TokInfo {
    const char *kind;           /* "sentencepiece", "byte", "bpe", "maxmatch" */
    const char *path;
    size_t vocab_size;
    int32_t bos, eos, unk, pad;
    const char *model_type;     /* SentencePiece: "unigram", "bpe", "word", "char" */
    const char *normalizer;     /* SentencePiece normalizer name, e.g. "nmt_nfkc" */
    size_t charsmap_bytes;      /* size of the precompiled charsmap */
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    int treat_whitespace_as_suffix, byte_fallback, split_digits;
    size_t num_merges;          /* tern BPE */
    size_t num_byte_pieces, num_control, num_user_defined, num_unused;
} TokInfo;
void tokenizer_get_info(const Tokenizer *t, TokInfo *info);

/* Like tokenizer_load on bytes already in memory; `name` is used in error messages. The bytes
 * are copied. The literal name "byte" with len == 0 gives the byte tokenizer. */
int tokenizer_load_memory(Tokenizer **out, const void *data, size_t len, const char *name, Err *err);

/* The byte-level tokenizer (same as tokenizer_load(.., "byte", ..)). */
Tokenizer *tokenizer_byte_new(void);

/* Trains tern's byte-level BPE on the given texts (UTF-8 is not required: it works on bytes).
 * vocab_size counts the 256 bytes and the 3 specials, so it must be >= 259. Deterministic for a
 * given input, whatever the thread count. */
typedef struct TokBpeTrainOptions {
    size_t vocab_size;
    int threads;                /* 0: OpenMP default */
    /* Called now and then from the calling thread (may be NULL); phase is "count" or "merge". */
    void (*progress)(void *ctx, const char *phase, size_t done, size_t total);
    void *progress_ctx;
} TokBpeTrainOptions;
int tokenizer_train_bpe(Tokenizer **out, const char *const *texts, const size_t *lens, size_t ntexts,
                        const TokBpeTrainOptions *opt, Err *err);
/* Writes a tern BPE tokenizer to path (through a temporary file renamed into place).
 * Other kinds cannot be saved (-1). */
int tokenizer_save(const Tokenizer *t, const char *path, Err *err);

#endif
