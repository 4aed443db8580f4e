/* RMSNorm (with or without gain) and per-head RMSNorm. */
#include <float.h>

#include "autodiff/ops.h"
#include "kernels/norm.h"

static void rmsnorm_op_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *w = e->nin > 1 ? e->in[1] : NULL;
    size_t C = e->iarg[0], N = x->numel / C;
    int need_x = x->requires_grad, need_w = w && w->requires_grad;
    if (!need_x && !need_w) return;
    /* rmsnorm_backward always writes dx; route it to a scratch buffer when x needs no grad */
    float *dx = need_x ? tensor_grad(tp, x) : arena_calloc(&tp->arena, x->numel, sizeof(float));
    float *scratch = arena_alloc(&tp->arena, rmsnorm_scratch_floats(C) * sizeof(float));
    rmsnorm_backward(dx, need_w ? tensor_grad(tp, w) : NULL, tensor_grad(tp, e->out), x->data,
                     w ? w->data : NULL, e->ctx, N, C, scratch);
}

static Tensor *rmsnorm_groups(Tape *tp, Tensor *x, Tensor *w, size_t C, float eps) {
    TERN_CHECK(C > 0 && x->numel % C == 0, "rmsnorm: %zu elements do not split into rows of %zu", x->numel, C);
    TERN_CHECK(!w || w->numel == C, "rmsnorm: gain has %zu elements, expected %zu", w ? w->numel : 0, C);
    if (eps <= 0) eps = FLT_EPSILON;
    size_t N = x->numel / C;
    Tensor *out = tensor_new(tp, x->ndim, x->shape);
    float *rstd = arena_alloc(&tp->arena, N * sizeof(float));
    rmsnorm_forward(out->data, rstd, x->data, w ? w->data : NULL, N, C, eps);
    Tensor *in[2] = {x, w};
    int nin = w ? 2 : 1;
    if (tape_wants_grad(tp, in, nin)) {
        TapeEntry *e = tape_record(tp, "rmsnorm", rmsnorm_op_backward, out, in, nin);
        e->ctx = rstd;
        e->iarg[0] = C;
    }
    return out;
}

Tensor *op_rmsnorm(Tape *tp, Tensor *x, Tensor *w, float eps) {
    return rmsnorm_groups(tp, x, w, tensor_cols(x), eps);
}

Tensor *op_rmsnorm_heads(Tape *tp, Tensor *x, size_t head_dim, float eps) {
    TERN_CHECK(tensor_cols(x) % head_dim == 0, "rmsnorm_heads: last dim not a multiple of %zu", head_dim);
    return rmsnorm_groups(tp, x, NULL, head_dim, eps);
}
