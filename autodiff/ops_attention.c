/* Fused causal self-attention: RoPE on q and k, per-head query gain, GQA, softmax, values.
 *
 * Forward: qr = rope(q), kr = rope(k), qe = qr * gain[h], out = attention(qe, kr, v).
 * Backward: (dqe, dkr, dv) from the attention kernel; dgain[h] = sum(dqe * qr) over the head;
 * dq = rope^T(dqe * gain); dk = rope^T(dkr). */
#include <math.h>
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/attention.h"

typedef struct AttnCtx {
    const RopeTable *rope;
    float *qr, *qe, *kr; /* qr: rotated q before the gain; qe: the q the kernel saw */
    float *lse;
    float scale;
} AttnCtx;

static void attention_op_backward(Tape *tp, TapeEntry *e) {
    Tensor *q = e->in[0], *k = e->in[1], *v = e->in[2], *gain = e->nin > 3 ? e->in[3] : NULL;
    AttnCtx *c = e->ctx;
    size_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3], G = k->shape[2];
    size_t nq = q->numel, nk = k->numel;
    float *dqe = arena_calloc(&tp->arena, nq, sizeof(float));
    float *dkr = c->rope ? arena_calloc(&tp->arena, nk, sizeof(float)) : NULL;
    float *dv = v->requires_grad ? tensor_grad(tp, v) : arena_calloc(&tp->arena, nk, sizeof(float));
    float *dk_direct = (!c->rope && k->requires_grad) ? tensor_grad(tp, k) : NULL;
    if (!c->rope && !dk_direct) dkr = arena_calloc(&tp->arena, nk, sizeof(float));
    float *scratch = arena_alloc(&tp->arena, attention_scratch_floats(T) * sizeof(float));
    attention_backward(dqe, c->rope ? dkr : (dk_direct ? dk_direct : dkr), dv, tensor_grad(tp, e->out),
                       c->qe, c->kr, v->data, e->out->data, c->lse, B, T, H, G, D, c->scale, scratch);
    /* gain and the un-gained rotated-q gradient */
    if (gain) {
        const float *g = gain->data;
        if (gain->requires_grad) {
            float *dg = tensor_grad(tp, gain);
            for (size_t h = 0; h < H; h++) {
                double s = 0;
                for (size_t bt = 0; bt < B * T; bt++) {
                    const float *a = dqe + (bt * H + h) * D, *b = c->qr + (bt * H + h) * D;
                    for (size_t j = 0; j < D; j++) s += (double)a[j] * b[j];
                }
                dg[h] += (float)s;
            }
        }
        for (size_t bt = 0; bt < B * T; bt++)
            for (size_t h = 0; h < H; h++) {
                float *a = dqe + (bt * H + h) * D;
                for (size_t j = 0; j < D; j++) a[j] *= g[h];
            }
    }
    if (q->requires_grad) {
        float *dq = tensor_grad(tp, q);
        if (c->rope) rope_backward(dq, dqe, c->rope, B, T, H);
        else
            for (size_t i = 0; i < nq; i++) dq[i] += dqe[i];
    }
    if (k->requires_grad && c->rope) rope_backward(tensor_grad(tp, k), dkr, c->rope, B, T, G);
}

Tensor *op_attention(Tape *tp, Tensor *q, Tensor *k, Tensor *v, Tensor *q_gain,
                     const RopeTable *rope, float scale) {
    TERN_CHECK(q->ndim == 4 && k->ndim == 4 && v->ndim == 4, "attention: q, k, v must be [B,T,heads,D]");
    size_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3], G = k->shape[2];
    TERN_CHECK(k->shape[0] == B && k->shape[1] == T && k->shape[3] == D && tensor_same_shape(k, v),
               "attention: k/v shapes do not match q");
    TERN_CHECK(G > 0 && H % G == 0, "attention: %zu query heads not a multiple of %zu kv heads", H, G);
    TERN_CHECK(!q_gain || q_gain->numel == H, "attention: q_gain must have %zu elements", H);
    TERN_CHECK(!rope || (rope->D == D && rope->T >= T), "attention: RoPE table too small");
    if (scale <= 0) scale = 1.0f / sqrtf((float)D);
    AttnCtx *c = arena_alloc(&tp->arena, sizeof *c);
    c->rope = rope;
    c->scale = scale;
    size_t nq = q->numel, nk = k->numel;
    if (rope) {
        c->qr = arena_alloc(&tp->arena, nq * sizeof(float));
        c->kr = arena_alloc(&tp->arena, nk * sizeof(float));
        rope_forward(c->qr, q->data, rope, B, T, H);
        rope_forward(c->kr, k->data, rope, B, T, G);
    } else {
        c->qr = q->data;
        c->kr = k->data;
    }
    if (q_gain) {
        c->qe = arena_alloc(&tp->arena, nq * sizeof(float));
        const float *g = q_gain->data;
        for (size_t bt = 0; bt < B * T; bt++)
            for (size_t h = 0; h < H; h++) {
                const float *a = c->qr + (bt * H + h) * D;
                float *o = c->qe + (bt * H + h) * D;
                for (size_t j = 0; j < D; j++) o[j] = a[j] * g[h];
            }
    } else {
        c->qe = c->qr;
    }
    c->lse = arena_alloc(&tp->arena, B * H * T * sizeof(float));
    Tensor *out = tensor_new(tp, 4, q->shape);
    float *scratch = arena_alloc(&tp->arena, attention_scratch_floats(T) * sizeof(float));
    attention_forward(out->data, c->lse, c->qe, c->kr, v->data, B, T, H, G, D, scale, scratch);
    Tensor *in[4] = {q, k, v, q_gain};
    int nin = q_gain ? 4 : 3;
    if (tape_wants_grad(tp, in, nin)) {
        TapeEntry *e = tape_record(tp, "attention", attention_op_backward, out, in, nin);
        e->ctx = c;
    }
    return out;
}
