/* bpb.h — bits per byte, counted exactly as the parameter-golf evaluation counts them.
 *
 * For SentencePiece models, per target token y with previous token x (train_gpt.py,
 * build_sentencepiece_luts / eval_val):
 *   control, unknown and unused pieces: 0 bytes, and they are boundaries;
 *   byte pieces <0xNN>: 1 byte;
 *   normal pieces: UTF-8 length of the piece without one leading U+2581, plus 1 when the piece
 *   had that leading U+2581 and x is not a boundary.
 * Ids beyond the tokenizer's vocabulary count 0 and are boundaries (as the official table).
 * For tern's own tokenizers: the exact UTF-8 length the token decodes to.
 * bpb = sum CE_nats / (ln 2 * sum bytes); all sums in double. One implementation, used by the
 * trainer's eval, `tern eval` and the runtime's eval. */
#ifndef TERN_BPB_H
#define TERN_BPB_H

#include <stddef.h>
#include <stdint.h>

#include "data/tokenizer.h"

typedef struct ByteCounter {
    size_t vocab;
    uint16_t *base_bytes;
    uint8_t *leading_space;
    uint8_t *boundary;
} ByteCounter;

int bpb_init(ByteCounter *bc, const Tokenizer *tok, size_t model_vocab, Err *err);
void bpb_free(ByteCounter *bc);

static inline uint32_t bpb_token_bytes(const ByteCounter *bc, int32_t prev, int32_t tgt) {
    if (tgt < 0 || (size_t)tgt >= bc->vocab) return 0;
    uint32_t b = bc->base_bytes[tgt];
    if (bc->leading_space[tgt] && !(prev < 0 || (size_t)prev >= bc->vocab || bc->boundary[prev])) b += 1;
    return b;
}

/* Sum of byte counts for n (prev, target) pairs. */
double bpb_count(const ByteCounter *bc, const int32_t *prev, const int32_t *tgt, size_t n);

static inline double bpb_value(double ce_nats_sum, double bytes_sum) {
    return bytes_sum > 0 ? ce_nats_sum / (0.69314718055994530942 * bytes_sum) : 0.0;
}

#endif
