/* tape.h — the record of one step's differentiable ops, and the per-step arena they allocate from.
 *
 * Every op (ops.h) computes its output eagerly and, when gradients are wanted (not in no-grad
 * mode and some input requires grad), appends one TapeEntry: op name, inputs, output, saved
 * context and its backward function. tape_backward seeds d(loss) = 1 and walks the entries in
 * reverse; each backward ACCUMULATES (+=) into its inputs' grads, so a tensor used by several
 * ops receives the sum. Parameter grads live in the ParamStore's flat buffer and therefore also
 * accumulate across micro-steps until the optimizer zeroes them.
 *
 * One Tape per training session (no global state): two sessions in one process do not share
 * anything. tape_reset starts a new step: entries and all arena memory are dropped. */
#ifndef TERN_TAPE_H
#define TERN_TAPE_H

#include <stddef.h>

#include "autodiff/arena.h"
#include "autodiff/tensor.h"

#define TAPE_MAX_IN 6

struct Tape;
struct TapeEntry;
typedef void (*BackwardFn)(struct Tape *tp, struct TapeEntry *e);

typedef struct TapeEntry {
    const char *op;
    BackwardFn backward;
    Tensor *out;
    Tensor *in[TAPE_MAX_IN];
    int nin;
    void *ctx;          /* op-specific saved data, arena-allocated */
    size_t iarg[6];
    float farg[4];
} TapeEntry;

typedef struct Tape {
    Arena arena;
    TapeEntry *entries;
    size_t n, cap;
    int no_grad;        /* > 0: record nothing (nesting counter) */
    size_t entry_reallocs;
} Tape;

void tape_init(Tape *tp, size_t arena_bytes);
void tape_free(Tape *tp);
void tape_reset(Tape *tp);

static inline void tape_no_grad_begin(Tape *tp) { tp->no_grad++; }
static inline void tape_no_grad_end(Tape *tp) { tp->no_grad--; }

/* New arena tensor (data uninitialised). */
Tensor *tensor_new(Tape *tp, int ndim, const size_t *shape);
Tensor *tensor_new1(Tape *tp, size_t a);
Tensor *tensor_new2(Tape *tp, size_t a, size_t b);
Tensor *tensor_new3(Tape *tp, size_t a, size_t b, size_t c);
Tensor *tensor_new4(Tape *tp, size_t a, size_t b, size_t c, size_t d);
Tensor *tensor_zeros(Tape *tp, int ndim, const size_t *shape);
/* View of src's data at element `offset` with a new shape (numel must fit). Shares grads. */
Tensor *tensor_view(Tape *tp, Tensor *src, size_t offset, int ndim, const size_t *shape);
/* The tensor's gradient buffer, allocated (zeroed) on first use. */
float *tensor_grad(Tape *tp, Tensor *t);

/* 1 if an op over these inputs must be recorded. */
int tape_wants_grad(const Tape *tp, Tensor *const *in, int nin);
/* Appends an entry (marks out->requires_grad); only call when tape_wants_grad said yes. */
TapeEntry *tape_record(Tape *tp, const char *op, BackwardFn bw, Tensor *out, Tensor *const *in,
                       int nin);

/* Seeds d(loss)=1 (loss must have one element) and runs all backward functions. */
void tape_backward(Tape *tp, Tensor *loss);
/* Same with an arbitrary seed gradient for `out` (numel floats). */
void tape_backward_seed(Tape *tp, Tensor *out, const float *seed);

#endif
