/* matmul and linear through sgemm, every transpose combination.
 *
 * With Ã = op(A) [M,K], B̃ = op(B) [K,N], C = Ã B̃:
 *   dÃ = dC B̃^T,  dB̃ = Ã^T dC,  and dA / dB are these or their transposes. */
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"

static void matmul_backward(Tape *tp, TapeEntry *e) {
    Tensor *A = e->in[0], *B = e->in[1];
    int ta = (int)e->iarg[0], tb = (int)e->iarg[1];
    size_t M = e->iarg[2], N = e->iarg[3], K = e->iarg[4];
    size_t lda = ta ? M : K, ldb = tb ? K : N;
    const float *dC = tensor_grad(tp, e->out);
    if (A->requires_grad) {
        float *dA = tensor_grad(tp, A);
        if (!ta) sgemm(0, !tb, M, K, N, 1.0f, dC, N, B->data, ldb, 1.0f, dA, K);   /* dC B̃^T */
        else sgemm(tb, 1, K, M, N, 1.0f, B->data, ldb, dC, N, 1.0f, dA, M);       /* B̃ dC^T */
    }
    if (B->requires_grad) {
        float *dB = tensor_grad(tp, B);
        if (!tb) sgemm(!ta, 0, K, N, M, 1.0f, A->data, lda, dC, N, 1.0f, dB, N);   /* Ã^T dC */
        else sgemm(1, ta, N, K, M, 1.0f, dC, N, A->data, lda, 1.0f, dB, K);       /* dC^T Ã */
    }
}

Tensor *op_matmul(Tape *tp, Tensor *A, Tensor *B, int ta, int tb) {
    TERN_CHECK(A->ndim == 2 && B->ndim == 2, "matmul: operands must be 2-D");
    size_t M = ta ? A->shape[1] : A->shape[0], K = ta ? A->shape[0] : A->shape[1];
    size_t Kb = tb ? B->shape[1] : B->shape[0], N = tb ? B->shape[0] : B->shape[1];
    TERN_CHECK(K == Kb, "matmul: inner dimensions differ (%zu vs %zu)", K, Kb);
    Tensor *C = tensor_new2(tp, M, N);
    sgemm(ta, tb, M, N, K, 1.0f, A->data, ta ? M : K, B->data, tb ? K : N, 0.0f, C->data, N);
    Tensor *in[2] = {A, B};
    if (tape_wants_grad(tp, in, 2)) {
        TapeEntry *e = tape_record(tp, "matmul", matmul_backward, C, in, 2);
        e->iarg[0] = (size_t)ta;
        e->iarg[1] = (size_t)tb;
        e->iarg[2] = M;
        e->iarg[3] = N;
        e->iarg[4] = K;
    }
    return C;
}

static void linear_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *W = e->in[1], *b = e->nin > 2 ? e->in[2] : NULL;
    size_t N = tensor_rows(x), in = tensor_cols(x), outf = W->shape[0];
    const float *dy = tensor_grad(tp, e->out);
    if (x->requires_grad) sgemm(0, 0, N, in, outf, 1.0f, dy, outf, W->data, in, 1.0f, tensor_grad(tp, x), in);
    if (W->requires_grad) sgemm(1, 0, outf, in, N, 1.0f, dy, outf, x->data, in, 1.0f, tensor_grad(tp, W), in);
    if (b && b->requires_grad) {
        float *scratch = arena_alloc(&tp->arena, colsum_scratch_floats(outf) * sizeof(float));
        colsum_accumulate(tensor_grad(tp, b), dy, N, outf, scratch);
    }
}

Tensor *op_linear(Tape *tp, Tensor *x, Tensor *W, Tensor *b) {
    TERN_CHECK(W->ndim == 2, "linear: weight must be 2-D");
    size_t in = tensor_cols(x), N = tensor_rows(x), outf = W->shape[0];
    TERN_CHECK(W->shape[1] == in, "linear %s: input has %zu features, weight expects %zu",
               W->name ? W->name : "", in, W->shape[1]);
    TERN_CHECK(!b || b->numel == outf, "linear: bias size %zu != %zu", b ? b->numel : 0, outf);
    size_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = outf;
    Tensor *y = tensor_new(tp, x->ndim, shape);
    if (b) {
        for (size_t r = 0; r < N; r++) memcpy(y->data + r * outf, b->data, outf * sizeof(float));
    }
    sgemm(0, 1, N, outf, in, 1.0f, x->data, in, W->data, in, b ? 1.0f : 0.0f, y->data, outf);
    Tensor *ins[3] = {x, W, b};
    int nin = b ? 3 : 2;
    if (tape_wants_grad(tp, ins, nin)) tape_record(tp, "linear", linear_backward, y, ins, nin);
    return y;
}
