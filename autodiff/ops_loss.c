/* Softmax and the fused softcapped cross-entropy. */
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/softmax.h"

static void softmax_op_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0];
    if (!x->requires_grad) return;
    softmax_backward(tensor_grad(tp, x), tensor_grad(tp, e->out), e->out->data, tensor_rows(x), tensor_cols(x));
}

Tensor *op_softmax(Tape *tp, Tensor *x) {
    Tensor *out = tensor_new(tp, x->ndim, x->shape);
    softmax_forward(out->data, x->data, tensor_rows(x), tensor_cols(x));
    if (tape_wants_grad(tp, &x, 1)) tape_record(tp, "softmax", softmax_op_backward, out, &x, 1);
    return out;
}

typedef struct XentCtx {
    int32_t *targets;
    float *lse;
    float *dloss;  /* per-row upstream gradient scratch */
    size_t nvalid;
} XentCtx;

static void xent_op_backward(Tape *tp, TapeEntry *e) {
    Tensor *z = e->in[0];
    if (!z->requires_grad) return;
    XentCtx *c = e->ctx;
    size_t N = tensor_rows(z), V = tensor_cols(z);
    float g = tensor_grad(tp, e->out)[0] / (float)(c->nvalid ? c->nvalid : 1);
    for (size_t r = 0; r < N; r++) c->dloss[r] = g;
    xent_backward(tensor_grad(tp, z), c->dloss, z->data, c->lse, c->targets, N, V, e->farg[0],
                  (int32_t)(int64_t)e->iarg[0]);
}

Tensor *op_cross_entropy(Tape *tp, Tensor *logits, const int32_t *targets, float softcap,
                         int32_t ignore_index, float *per_token) {
    size_t N = tensor_rows(logits), V = tensor_cols(logits);
    XentCtx *c = arena_alloc(&tp->arena, sizeof *c);
    c->targets = arena_alloc(&tp->arena, N * sizeof(int32_t));
    memcpy(c->targets, targets, N * sizeof(int32_t));
    c->lse = arena_alloc(&tp->arena, N * sizeof(float));
    c->dloss = arena_alloc(&tp->arena, N * sizeof(float));
    float *losses = c->dloss; /* reuse as the per-row loss buffer in forward */
    size_t nvalid = 0;
    for (size_t r = 0; r < N; r++) {
        if (targets[r] == ignore_index) continue;
        TERN_CHECK(targets[r] >= 0 && (size_t)targets[r] < V, "cross_entropy: target %d outside [0, %zu)", targets[r], V);
        nvalid++;
    }
    c->nvalid = nvalid;
    xent_forward(losses, c->lse, logits->data, c->targets, N, V, softcap, ignore_index);
    double s = 0;
    for (size_t r = 0; r < N; r++) s += losses[r];
    if (per_token) memcpy(per_token, losses, N * sizeof(float));
    Tensor *out = tensor_new1(tp, 1);
    out->data[0] = (float)(s / (double)(nvalid ? nvalid : 1));
    if (tape_wants_grad(tp, &logits, 1)) {
        TapeEntry *e = tape_record(tp, "cross_entropy", xent_op_backward, out, &logits, 1);
        e->ctx = c;
        e->farg[0] = softcap;
        e->iarg[0] = (size_t)(int64_t)ignore_index;
    }
    return out;
}

typedef struct DistillCtx {
    int32_t *targets, *idx;
    float *val, *lse, *zc, *dloss;
    double *stats;
    size_t k;
    float temp, alpha;
} DistillCtx;

static void distill_op_backward(Tape *tp, TapeEntry *e) {
    Tensor *z = e->in[0];
    if (!z->requires_grad) return;
    DistillCtx *c = e->ctx;
    size_t N = tensor_rows(z), V = tensor_cols(z);
    float g = tensor_grad(tp, e->out)[0] / (float)N;
    for (size_t r = 0; r < N; r++) c->dloss[r] = g;
    distill_backward(tensor_grad(tp, z), c->dloss, c->zc, c->stats, c->targets, c->idx, c->val, c->lse, N, V, c->k,
                     e->farg[0], c->temp, c->alpha);
}

Tensor *op_distill(Tape *tp, Tensor *logits, const int32_t *targets, float softcap, const DistillTarget *dt,
                   float *per_token) {
    size_t N = tensor_rows(logits), V = tensor_cols(logits), k = dt->k;
    TERN_CHECK(k >= 1 && k <= DISTILL_MAX_K && k <= V, "distill: top-k %zu outside [1, min(V, %d)]", k, DISTILL_MAX_K);
    DistillCtx *c = arena_alloc(&tp->arena, sizeof *c);
    c->k = k;
    c->temp = dt->temperature;
    c->alpha = dt->alpha;
    c->targets = arena_alloc(&tp->arena, N * sizeof(int32_t));
    c->idx = arena_alloc(&tp->arena, N * k * sizeof(int32_t));
    c->val = arena_alloc(&tp->arena, N * k * sizeof(float));
    c->lse = arena_alloc(&tp->arena, N * sizeof(float));
    c->zc = arena_alloc(&tp->arena, N * V * sizeof(float));
    c->dloss = arena_alloc(&tp->arena, N * sizeof(float));
    c->stats = arena_alloc(&tp->arena, N * DISTILL_ROW_STATS * sizeof(double));
    memcpy(c->targets, targets, N * sizeof(int32_t));
    memcpy(c->idx, dt->idx, N * k * sizeof(int32_t));
    memcpy(c->val, dt->val, N * k * sizeof(float));
    memcpy(c->lse, dt->lse, N * sizeof(float));
    for (size_t r = 0; r < N; r++) {
        TERN_CHECK(targets[r] >= 0 && (size_t)targets[r] < V, "distill: target %d outside [0, %zu)", targets[r], V);
        for (size_t j = 0; j < k; j++)
            TERN_CHECK(c->idx[r * k + j] >= 0 && (size_t)c->idx[r * k + j] < V, "distill: teacher index outside [0, %zu)", V);
    }
    float *losses = c->dloss;
    distill_forward(losses, c->zc, c->stats, logits->data, c->targets, c->idx, c->val, c->lse, N, V, k, softcap, c->temp, c->alpha);
    double s = 0;
    for (size_t r = 0; r < N; r++) s += losses[r];
    if (per_token) memcpy(per_token, losses, N * sizeof(float));
    Tensor *out = tensor_new1(tp, 1);
    out->data[0] = (float)(s / (double)(N ? N : 1));
    if (tape_wants_grad(tp, &logits, 1)) {
        TapeEntry *e = tape_record(tp, "distill", distill_op_backward, out, &logits, 1);
        e->ctx = c;
        e->farg[0] = softcap;
    }
    return out;
}
