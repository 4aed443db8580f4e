/* eval.h — validation loss and bits per byte.
 *
 * Standard: the official rule — non-overlapping T-token windows of the validation stream, every
 * target scored with its window as context. Sliding (stride S): windows of T tokens start every
 * S tokens and each scores only its last S targets (all targets for the first window), so every
 * target after the first window sees T - S or more tokens of context.
 * Sums (CE nats, tokens, bytes) are accumulated in double; bpb = sum CE / (ln2 * sum bytes). */
#ifndef TERN_EVAL_H
#define TERN_EVAL_H

#include <stddef.h>

#include "autodiff/tape.h"
#include "data/bpb.h"
#include "data/loader.h"
#include "model/model.h"

typedef struct EvalResult {
    double loss_sum, tokens, bytes;
    double val_loss, val_bpb; /* val_bpb < 0 when no byte counter */
    size_t windows;
    double seconds;
} EvalResult;

/* max_tokens caps the targets scored (0 = all). B = windows per forward. */
int eval_standard(Model *m, Tape *tp, const TokenStream *s, size_t T, size_t B, const ByteCounter *bc,
                  size_t max_tokens, EvalResult *r);
int eval_sliding(Model *m, Tape *tp, const TokenStream *s, size_t T, size_t stride, size_t B,
                 const ByteCounter *bc, size_t max_tokens, EvalResult *r);

#endif
