/* Pointwise activations and SwiGLU. */
#include <string.h>

#include "autodiff/ops.h"

static void act_op_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0];
    if (!x->requires_grad) return;
    act_backward((ActKind)e->iarg[0], tensor_grad(tp, x), tensor_grad(tp, e->out), x->data,
                 e->out->data, x->numel);
}

Tensor *op_act(Tape *tp, Tensor *x, ActKind kind) {
    Tensor *out = tensor_new(tp, x->ndim, x->shape);
    act_forward(kind, out->data, x->data, x->numel);
    if (tape_wants_grad(tp, &x, 1)) {
        TapeEntry *e = tape_record(tp, act_name(kind), act_op_backward, out, &x, 1);
        e->iarg[0] = (size_t)kind;
    }
    return out;
}

static void swiglu_op_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0];
    if (!x->requires_grad) return;
    size_t H = tensor_cols(e->out), N = tensor_rows(e->out);
    swiglu_backward(tensor_grad(tp, x), tensor_grad(tp, e->out), x->data, N, H);
}

Tensor *op_swiglu(Tape *tp, Tensor *x) {
    size_t C = tensor_cols(x);
    TERN_CHECK(C % 2 == 0, "swiglu: last dim %zu is odd", C);
    size_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = C / 2;
    Tensor *out = tensor_new(tp, x->ndim, shape);
    swiglu_forward(out->data, x->data, tensor_rows(x), C / 2);
    if (tape_wants_grad(tp, &x, 1)) tape_record(tp, "swiglu", swiglu_op_backward, out, &x, 1);
    return out;
}
