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
#include "train/dist.h"

typedef struct EvalResult {
    double loss_sum, tokens, bytes;
    double val_loss, val_bpb; /* val_bpb < 0 when no byte counter */
    size_t windows;
    double seconds;
} EvalResult;

/* max_tokens caps the targets scored (0 = all). B = windows per forward. dist (NULL = one
 * process): each rank scores every world-th batch of windows and the sums are all-reduced, so
 * every rank returns the whole result. */
int eval_standard(Model *m, Tape *tp, const TokenStream *s, size_t T, size_t B, const ByteCounter *bc,
                  size_t max_tokens, const Dist *dist, EvalResult *r);
int eval_sliding(Model *m, Tape *tp, const TokenStream *s, size_t T, size_t stride, size_t B,
                 const ByteCounter *bc, size_t max_tokens, EvalResult *r);

/* Score-first LoRA test-time training (parameter-golf LoRA_TTT record): per document (split at
 * BOS; each document also predicts the next document's BOS), fresh rank-r adapters on the
 * weights matching `targets` (default: Q and V of every attention block) and on the output head;
 * the document's targets are taken in chunks; each chunk is scored with the current adapters
 * (context: the last `context` document tokens ending at the chunk) BEFORE one Adam step on
 * that chunk's mean loss; adapters and optimizer state are reset per document. */
typedef struct TttOptions {
    size_t rank, chunk, context;
    double lr, beta1, beta2, eps;
    uint64_t seed;
    int head;
    const char *const *targets;
    size_t ntargets;
} TttOptions;
void ttt_defaults(TttOptions *o);
int eval_ttt(Model *m, Tape *tp, const TokenStream *s, int32_t bos, const ByteCounter *bc, const TttOptions *o,
             size_t max_tokens, EvalResult *r, Err *err);

#endif
