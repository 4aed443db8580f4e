/* params.h — the parameter store: every trainable tensor is a named slice of ONE contiguous
 * value buffer, and its gradient the same slice of ONE contiguous grad buffer.
 *
 * Two phases: params_add registers names and shapes (data == NULL), params_finalize allocates
 * both flat buffers (zeroed) and points every tensor into them. Optimizers, gradient clipping,
 * all-reduce, EMA, MeZO perturbations and checkpoints all work on values/grads by offset.
 * Iteration order is registration order, which is stable for a given config. */
#ifndef TERN_PARAMS_H
#define TERN_PARAMS_H

#include <stddef.h>

#include "autodiff/tensor.h"
#include "kernels/util.h"

typedef struct ParamStore {
    Tensor **t;          /* registered tensors, in order */
    size_t n, cap;
    float *values, *grads;
    size_t total;        /* floats in each flat buffer */
    int finalized;
} ParamStore;

void params_init(ParamStore *ps);
void params_free(ParamStore *ps);
/* Registers a parameter (name is copied). Fatal on duplicates or after finalize. */
Tensor *params_add(ParamStore *ps, const char *name, int ndim, const size_t *shape);
/* The same for the common shapes: ndim 1 -> [a], ndim 2 -> [a, b]. */
Tensor *params_add2(ParamStore *ps, const char *name, int ndim, size_t a, size_t b);
void params_finalize(ParamStore *ps);  /* exits with one line when the store cannot fit */
/* The same, returning -1 with "the model's N parameters (values + gradients) need X, only Y
 * available" in err instead (model_create's path: the caller cleans up and reports). */
int params_finalize_checked(ParamStore *ps, Err *err);
Tensor *params_find(const ParamStore *ps, const char *name);
long params_index(const ParamStore *ps, const char *name);
static inline size_t params_offset(const ParamStore *ps, const Tensor *t) {
    return (size_t)(t->data - ps->values);
}
void params_zero_grad(ParamStore *ps);
/* Frozen store (LoRA's base): the grad buffer is freed and no tensor requires grad, so ops
 * record no backward into it; zero_grad / grad_norm / grads_finite see no gradients. */
void params_freeze(ParamStore *ps);
double params_grad_norm(const ParamStore *ps); /* global L2 norm of all grads (double sums) */
int params_grads_finite(const ParamStore *ps);
int params_values_finite(const ParamStore *ps);

#endif
