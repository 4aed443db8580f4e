/* The mLSTM block's ops (Beck et al. 2024, "xLSTM"; the block in model/blocks/mlstm.c): the cell
 * (kernels/mlstm.h: chunkwise, parallel or recurrent form, hand-written backward), the causal
 * depthwise convolution, the block-diagonal ("headwise") projection and the per-head layer norm.
 * Row math shared with the runtime lives in kernels/mlstm_math.h. Every backward accumulates, and
 * every reduction runs in a fixed order owned by one thread, so gradients are bit-identical for
 * any thread count. */
#include <omp.h>
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/mlstm_math.h"
#include "kernels/util.h"

#define PAR_ROWS 64 /* rows below which the row loops stay on one thread */

static float *grad_or_scratch(Tape *tp, Tensor *t) {
    return t->requires_grad ? tensor_grad(tp, t) : arena_calloc(&tp->arena, t->numel, sizeof(float));
}

/* ------------------------------------------------------------------ the cell */
typedef struct MlstmCtx {
    MlstmShape s;
    MlstmForm form;
    float *saved;
} MlstmCtx;

static void mlstm_op_backward(Tape *tp, TapeEntry *e) {
    MlstmCtx *c = e->ctx;
    Tensor *q = e->in[0], *k = e->in[1], *v = e->in[2], *ig = e->in[3], *fg = e->in[4];
    float *work = arena_alloc(&tp->arena, (mlstm_work_floats(c->form, &c->s, omp_get_max_threads()) + 1) * sizeof(float));
    mlstm_backward(c->form, grad_or_scratch(tp, q), grad_or_scratch(tp, k), grad_or_scratch(tp, v), grad_or_scratch(tp, ig),
                   grad_or_scratch(tp, fg), tensor_grad(tp, e->out), e->out->data, c->saved, q->data, k->data, v->data,
                   ig->data, fg->data, &c->s, work);
}

Tensor *op_mlstm(Tape *tp, Tensor *q, Tensor *k, Tensor *v, Tensor *ig, Tensor *fg, const MlstmCfg *cfg) {
    TERN_CHECK(q->ndim == 4 && tensor_same_shape(q, k) && tensor_same_shape(q, v), "mlstm: q, k, v must be [B, T, H, D] alike");
    size_t B = q->shape[0], T = q->shape[1], H = q->shape[2], D = q->shape[3];
    TERN_CHECK(ig->ndim == 3 && ig->shape[0] == B && ig->shape[1] == T && ig->shape[2] == H && tensor_same_shape(ig, fg),
               "mlstm: gates must be [B, T, H] = [%zu, %zu, %zu]", B, T, H);
    TERN_CHECK((unsigned)cfg->form < MLSTM_FORM_COUNT && cfg->chunk > 0, "mlstm: bad form or chunk");
    Arena *ar = &tp->arena;
    MlstmCtx *c = arena_alloc(ar, sizeof *c);
    c->s = (MlstmShape){B, T, H, D, cfg->chunk, cfg->exp_forget};
    c->form = cfg->form;
    c->saved = arena_alloc(ar, (mlstm_saved_floats(c->form, &c->s) + 1) * sizeof(float));
    float *work = arena_alloc(ar, (mlstm_work_floats(c->form, &c->s, omp_get_max_threads()) + 1) * sizeof(float));
    Tensor *h = tensor_new(tp, 4, q->shape);
    mlstm_forward(c->form, h->data, c->saved, q->data, k->data, v->data, ig->data, fg->data, &c->s, work);
    Tensor *in[5] = {q, k, v, ig, fg};
    if (tape_wants_grad(tp, in, 5)) tape_record(tp, "mlstm", mlstm_op_backward, h, in, 5)->ctx = c;
    return h;
}

/* ------------------------------------------------------------------ causal depthwise convolution */
static void conv_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *w = e->in[1], *b = e->in[2];
    size_t B = x->shape[0], T = x->shape[1], I = x->shape[2], K = w->shape[1];
    const float *dy = tensor_grad(tp, e->out), *xv = x->data, *wv = w->data;
    float *dx = x->requires_grad ? tensor_grad(tp, x) : NULL;
    float *dw = w->requires_grad ? tensor_grad(tp, w) : NULL, *db = b->requires_grad ? tensor_grad(tp, b) : NULL;
    /* one thread per block of 16 channels: it owns their dw / db entries and dx columns, and
     * sums over (b, t) in order */
#pragma omp parallel for schedule(static) if (B * T >= PAR_ROWS)
    for (size_t c0 = 0; c0 < I; c0 += 16) {
        size_t nc = TERN_MIN(16, I - c0);
        double sb[16] = {0}, sw[16 * 64] = {0};
        for (size_t bt = 0; bt < B * T; bt++) {
            size_t t = bt % T;
            const float *g = dy + bt * I + c0;
            for (size_t c = 0; c < nc; c++) sb[c] += g[c];
            for (size_t j = 0; j < K; j++) {
                if (t + j + 1 < K) continue;
                size_t src = (bt + j + 1 - K) * I + c0;
                for (size_t c = 0; c < nc; c++) {
                    sw[c * K + j] += (double)g[c] * xv[src + c];
                    if (dx) dx[src + c] += wv[(c0 + c) * K + j] * g[c];
                }
            }
        }
        for (size_t c = 0; c < nc; c++) {
            if (db) db[c0 + c] += (float)sb[c];
            for (size_t j = 0; dw && j < K; j++) dw[(c0 + c) * K + j] += (float)sw[c * K + j];
        }
    }
}

Tensor *op_causal_conv(Tape *tp, Tensor *x, Tensor *w, Tensor *b) {
    TERN_CHECK(x->ndim == 3 && w->ndim == 2 && w->shape[0] == x->shape[2] && b->numel == x->shape[2],
               "causal_conv: x [B, T, I], w [I, K], b [I] expected");
    size_t B = x->shape[0], T = x->shape[1], I = x->shape[2], K = w->shape[1];
    TERN_CHECK(K >= 1 && K <= 64, "causal_conv: kernel %zu not in 1..64", K);
    Tensor *y = tensor_new(tp, 3, x->shape);
#pragma omp parallel for schedule(static) if (B * T >= PAR_ROWS)
    for (size_t bt = 0; bt < B * T; bt++) {
        size_t t = bt % T;
        const float *win[64];
        for (size_t j = 0; j < K; j++) win[j] = t + j + 1 >= K ? x->data + (bt + j + 1 - K) * I : NULL;
        mlstm_conv_row(y->data + bt * I, win, w->data, b->data, I, K);
    }
    Tensor *in[3] = {x, w, b};
    if (tape_wants_grad(tp, in, 3)) tape_record(tp, "causal_conv", conv_backward, y, in, 3);
    return y;
}

/* ------------------------------------------------------------------ block-diagonal projection */
static void headwise_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *W = e->in[1];
    size_t I = W->shape[0], bs = W->shape[1], N = x->numel / I;
    const float *dy = tensor_grad(tp, e->out), *xv = x->data, *wv = W->data;
    if (x->requires_grad) {
        float *dx = tensor_grad(tp, x);
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS)
        for (size_t r = 0; r < N; r++)
            for (size_t g = 0; g < I; g += bs)
                for (size_t o = 0; o < bs; o++)
                    for (size_t i = 0; i < bs; i++) dx[r * I + g + i] += wv[(g + o) * bs + i] * dy[r * I + g + o];
    }
    if (W->requires_grad) {
        float *dW = tensor_grad(tp, W);
        /* one thread per block of 16 output channels (bs | 16 or 16 | bs not needed: each channel's
         * row of dW is its own), rows summed in order */
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS)
        for (size_t c0 = 0; c0 < I; c0 += 16) {
            size_t nc = TERN_MIN(16, I - c0);
            double s[16 * 64] = {0};
            for (size_t r = 0; r < N; r++)
                for (size_t c = 0; c < nc; c++) {
                    size_t row = c0 + c, g = row / bs * bs;
                    for (size_t i = 0; i < bs; i++) s[c * bs + i] += (double)dy[r * I + row] * xv[r * I + g + i];
                }
            for (size_t c = 0; c < nc; c++)
                for (size_t i = 0; i < bs; i++) dW[(c0 + c) * bs + i] += (float)s[c * bs + i];
        }
    }
}

Tensor *op_headwise(Tape *tp, Tensor *x, Tensor *W) {
    TERN_CHECK(W->ndim == 2 && tensor_cols(x) == W->shape[0] && W->shape[1] >= 1 && W->shape[1] <= 64 &&
                   W->shape[0] % W->shape[1] == 0,
               "headwise: x [..., I] and W [I, bs] with bs | I, bs <= 64 expected");
    size_t I = W->shape[0], bs = W->shape[1], N = x->numel / I;
    Tensor *y = tensor_new(tp, x->ndim, x->shape);
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS)
    for (size_t r = 0; r < N; r++) mlstm_headwise_row(y->data + r * I, x->data + r * I, W->data, I, bs);
    Tensor *in[2] = {x, W};
    if (tape_wants_grad(tp, in, 2)) tape_record(tp, "headwise", headwise_backward, y, in, 2);
    return y;
}

/* ------------------------------------------------------------------ per-head layer norm */
static void group_norm_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0];
    if (!x->requires_grad) return;
    size_t D = e->iarg[0], G = x->numel / D;
    const float *dy = tensor_grad(tp, e->out), *y = e->out->data, *rstd = e->ctx;
    float *dx = tensor_grad(tp, x);
    /* dx = rstd (dy - mean(dy) - y mean(dy y)), y the normed output */
#pragma omp parallel for schedule(static) if (G >= PAR_ROWS)
    for (size_t g = 0; g < G; g++) {
        const float *a = dy + g * D, *yy = y + g * D;
        float s1 = 0.0f, s2 = 0.0f;
        for (size_t i = 0; i < D; i++) {
            s1 += a[i];
            s2 += a[i] * yy[i];
        }
        s1 /= (float)D;
        s2 /= (float)D;
        for (size_t i = 0; i < D; i++) dx[g * D + i] += rstd[g] * (a[i] - s1 - yy[i] * s2);
    }
}

Tensor *op_group_norm(Tape *tp, Tensor *x, size_t D, float eps) {
    TERN_CHECK(D > 0 && tensor_cols(x) % D == 0, "group_norm: last dim %zu is not a multiple of %zu", tensor_cols(x), D);
    size_t G = x->numel / D;
    Tensor *y = tensor_new(tp, x->ndim, x->shape);
    float *rstd = arena_alloc(&tp->arena, G * sizeof(float));
#pragma omp parallel for schedule(static) if (G >= PAR_ROWS)
    for (size_t g = 0; g < G; g++) rstd[g] = mlstm_group_norm(y->data + g * D, x->data + g * D, D, eps);
    Tensor *in[1] = {x};
    if (tape_wants_grad(tp, in, 1)) {
        TapeEntry *e = tape_record(tp, "group_norm", group_norm_backward, y, in, 1);
        e->ctx = rstd;
        e->iarg[0] = D;
    }
    return y;
}
