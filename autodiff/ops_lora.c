/* The LoRA-adapted linear as one op (Hu et al. 2021, arXiv 2106.09685):
 *
 *   y = x W^T (+ b) + s (drop(x) A^T) B^T      x [N, in], W [out, in], A [r, in], B [out, r]
 *
 * The composition of ops (model/lora.c lora_linear: dropout, two linears, a scale and an add) is
 * its reference; this form keeps only h = drop(x) A^T [N, r] for the backward instead of three
 * [N, out] intermediates and the dropped copy of x, so a LoRA step holds no more activations than
 * the full model's. The dropout mask is the one op_dropout draws (the same key and element
 * index), regenerated in blocks of rows in the backward instead of stored.
 *
 * Backward, with g = dy and dh = s g B [N, r]:
 *   dB += s g^T h,  dA += dh^T drop(x),  dx += g W + drop'(dh A),  dW += g^T x,  db += colsum g. */
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "kernels/rng.h"

#define LORA_ROWS 64 /* rows of drop(x) materialised at a time */

/* out[i, :] = mask[row0 + i, :] * src[i, :] over `rows` rows of width `in` (inverted dropout) */
static void apply_mask(float *out, const float *src, size_t row0, size_t rows, size_t in, float p, uint64_t key) {
    const float keep = 1.0f / (1.0f - p);
    const uint64_t thresh = (uint64_t)((double)p * 16777216.0);
    for (size_t i = 0; i < rows * in; i++) {
        size_t idx = row0 * in + i;
        out[i] = (rng_hash(key, idx) >> 40) >= thresh ? keep * src[i] : 0.0f;
    }
}

/* h [N, r] = drop(x) A^T */
static void lora_down(float *h, const float *x, const float *A, size_t N, size_t in, size_t r, float p, uint64_t key,
                      float *scratch) {
    if (p == 0.0f) {
        sgemm(0, 1, N, r, in, 1.0f, x, in, A, in, 0.0f, h, r);
        return;
    }
    for (size_t r0 = 0; r0 < N; r0 += LORA_ROWS) {
        size_t n = N - r0 < LORA_ROWS ? N - r0 : LORA_ROWS;
        apply_mask(scratch, x + r0 * in, r0, n, in, p, key);
        sgemm(0, 1, n, r, in, 1.0f, scratch, in, A, in, 0.0f, h + r0 * r, r);
    }
}

/* dA [r, in] += dh^T drop(x); dx [N, in] += drop'(dh A) (each NULL when not wanted) */
static void lora_down_backward(float *dA, float *dx, const float *dh, const float *x, const float *A, size_t N, size_t in,
                               size_t r, float p, uint64_t key, float *scratch) {
    if (p == 0.0f) {
        if (dA) sgemm(1, 0, r, in, N, 1.0f, dh, r, x, in, 1.0f, dA, in);
        if (dx) sgemm(0, 0, N, in, r, 1.0f, dh, r, A, in, 1.0f, dx, in);
        return;
    }
    for (size_t r0 = 0; r0 < N; r0 += LORA_ROWS) {
        size_t n = N - r0 < LORA_ROWS ? N - r0 : LORA_ROWS;
        if (dA) {
            apply_mask(scratch, x + r0 * in, r0, n, in, p, key);
            sgemm(1, 0, r, in, n, 1.0f, dh + r0 * r, r, scratch, in, 1.0f, dA, in);
        }
        if (dx) { /* the mask of an element is linear: d(drop(x))/dx = the same factor */
            sgemm(0, 0, n, in, r, 1.0f, dh + r0 * r, r, A, in, 0.0f, scratch, in);
            apply_mask(scratch, scratch, r0, n, in, p, key);
            float *d = dx + r0 * in;
            for (size_t i = 0; i < n * in; i++) d[i] += scratch[i];
        }
    }
}

static void lora_linear_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *W = e->in[1], *A = e->in[2], *B = e->in[3], *b = e->nin > 4 ? e->in[4] : NULL;
    size_t N = tensor_rows(x), in = tensor_cols(x), out = W->shape[0], r = A->shape[0];
    float s = e->farg[0], p = e->farg[1];
    uint64_t key = (uint64_t)e->iarg[0];
    const float *g = tensor_grad(tp, e->out), *h = e->ctx;
    float *scratch = p > 0.0f ? arena_alloc(&tp->arena, LORA_ROWS * in * sizeof(float)) : NULL;
    float *dh = arena_alloc(&tp->arena, (N * r > 0 ? N * r : 1) * sizeof(float));
    sgemm(0, 0, N, r, out, s, g, out, B->data, r, 0.0f, dh, r);
    if (B->requires_grad) sgemm(1, 0, out, r, N, s, g, out, h, r, 1.0f, tensor_grad(tp, B), r);
    float *dx = x->requires_grad ? tensor_grad(tp, x) : NULL;
    if (dx) sgemm(0, 0, N, in, out, 1.0f, g, out, W->data, in, 1.0f, dx, in);
    lora_down_backward(A->requires_grad ? tensor_grad(tp, A) : NULL, dx, dh, x->data, A->data, N, in, r, p, key, scratch);
    if (W->requires_grad) sgemm(1, 0, out, in, N, 1.0f, g, out, x->data, in, 1.0f, tensor_grad(tp, W), in);
    if (b && b->requires_grad) {
        float *cs = arena_alloc(&tp->arena, colsum_scratch_floats(out) * sizeof(float));
        colsum_accumulate(tensor_grad(tp, b), g, N, out, cs);
    }
}

Tensor *op_lora_linear(Tape *tp, Tensor *x, Tensor *W, Tensor *b, Tensor *A, Tensor *B, float scale, float p, uint64_t key) {
    size_t in = tensor_cols(x), N = tensor_rows(x), out = W->shape[0], r = A->shape[0];
    TERN_CHECK(W->ndim == 2 && W->shape[1] == in, "lora_linear %s: input has %zu features, weight expects %zu",
               W->name ? W->name : "", in, W->ndim == 2 ? W->shape[1] : 0);
    TERN_CHECK(A->ndim == 2 && A->shape[1] == in && B->ndim == 2 && B->shape[0] == out && B->shape[1] == r,
               "lora_linear: adapter shapes do not fit W [%zu, %zu] (A [%zu, .], B [%zu, .])", out, in, r, B->shape[0]);
    TERN_CHECK(!b || b->numel == out, "lora_linear: bias size %zu != %zu", b ? b->numel : 0, out);
    TERN_CHECK(p >= 0.0f && p < 1.0f, "lora_linear: dropout must be in [0, 1), got %g", (double)p);
    size_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    Tensor *y = tensor_new(tp, x->ndim, shape);
    float *h = arena_alloc(&tp->arena, (N * r > 0 ? N * r : 1) * sizeof(float));
    float *scratch = p > 0.0f ? arena_alloc(&tp->arena, LORA_ROWS * in * sizeof(float)) : NULL;
    lora_down(h, x->data, A->data, N, in, r, p, key, scratch);
    if (b)
        for (size_t i = 0; i < N; i++) memcpy(y->data + i * out, b->data, out * sizeof(float));
    sgemm(0, 1, N, out, in, 1.0f, x->data, in, W->data, in, b ? 1.0f : 0.0f, y->data, out);
    sgemm(0, 1, N, out, r, scale, h, r, B->data, r, 1.0f, y->data, out);
    Tensor *ins[5] = {x, W, A, B, b};
    int nin = b ? 5 : 4;
    if (tape_wants_grad(tp, ins, nin)) {
        TapeEntry *e = tape_record(tp, "lora_linear", lora_linear_backward, y, ins, nin);
        e->ctx = h;
        e->farg[0] = scale;
        e->farg[1] = p;
        e->iarg[0] = (size_t)key;
    }
    return y;
}
