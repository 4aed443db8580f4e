/* Gated DeltaNet (Yang et al. 2024, arXiv 2412.06464; the layer of fla-org/flash-linear-attention
 * fla/layers/gated_deltanet.py): the gated delta rule op over kernels/delta.h's two forms, and
 * the three small ops of the layer around it -- the short causal convolution + SiLU, the per-head
 * L2 norm, and the log-space decay. Scalar math shared with the runtime: kernels/gdn_math.h.
 * Every backward accumulates; every reduction runs in a fixed order (bit-identical results for
 * any thread count). */
#include <math.h>
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/delta.h"
#include "kernels/gdn_math.h"

#define PAR_MIN 16384 /* elements below which the loops stay on one thread */
#define CONV_CB 16    /* channels per task of the convolution's weight gradient */

/* The gradient buffer of t, or zeroed scratch when t needs none (kernels write all outputs). */
static float *grad_or_scratch(Tape *tp, Tensor *t) {
    return t->requires_grad ? tensor_grad(tp, t) : arena_calloc(&tp->arena, t->numel, sizeof(float));
}

/* ------------------------------------------------------------------ gated delta rule */
typedef struct GdnCtx {
    GdnShape s;
    GdnKernel kind;
    size_t chunk;
    float *saved;
} GdnCtx;

static void gated_delta_backward(Tape *tp, TapeEntry *e) {
    GdnCtx *c = e->ctx;
    Tensor *q = e->in[0], *k = e->in[1], *v = e->in[2], *g = e->in[3], *beta = e->in[4];
    float *work = arena_alloc(&tp->arena, (gdn_work_floats(c->kind, &c->s, c->chunk) + 1) * sizeof(float));
    gdn_backward(c->kind, grad_or_scratch(tp, q), grad_or_scratch(tp, k), grad_or_scratch(tp, v), grad_or_scratch(tp, g),
                 grad_or_scratch(tp, beta), tensor_grad(tp, e->out), c->saved, q->data, k->data, v->data, g->data,
                 beta->data, &c->s, c->chunk, work);
}

Tensor *op_gated_delta(Tape *tp, Tensor *q, Tensor *k, Tensor *v, Tensor *g, Tensor *beta, GdnKernel kind, size_t chunk) {
    TERN_CHECK(q->ndim == 4 && tensor_same_shape(q, k), "gated_delta: q and k must be [B, T, H, dk]");
    size_t B = q->shape[0], T = q->shape[1], H = q->shape[2];
    TERN_CHECK(v->ndim == 4 && v->shape[0] == B && v->shape[1] == T && v->shape[2] == H, "gated_delta: v must be [B, T, H, dv]");
    TERN_CHECK(g->numel == B * T * H && beta->numel == B * T * H, "gated_delta: g and beta must be [B, T, H]");
    TERN_CHECK(chunk >= 1 && (kind == GDN_CHUNKED || kind == GDN_RECURRENT), "gated_delta: bad kernel or chunk");
    GdnCtx *c = arena_alloc(&tp->arena, sizeof *c);
    c->s = (GdnShape){B, T, H, q->shape[3], v->shape[3]};
    c->kind = kind;
    c->chunk = chunk;
    c->saved = arena_alloc(&tp->arena, (gdn_saved_floats(kind, &c->s, chunk) + 1) * sizeof(float));
    float *work = arena_alloc(&tp->arena, (gdn_work_floats(kind, &c->s, chunk) + 1) * sizeof(float));
    Tensor *o = tensor_new(tp, 4, v->shape);
    gdn_forward(kind, o->data, c->saved, q->data, k->data, v->data, g->data, beta->data, &c->s, chunk, work);
    Tensor *in[5] = {q, k, v, g, beta};
    if (tape_wants_grad(tp, in, 5)) tape_record(tp, "gated_delta", gated_delta_backward, o, in, 5)->ctx = c;
    return o;
}

/* ------------------------------------------------------------------ short causal convolution */
/* c[b, t, d] = sum_{j < K} w[d, j] x[b, t - (K - 1) + j, d] (zero before t = 0): torch's
 * conv1d(groups = D, padding = K - 1) cut to T, as fla's ShortConvolution; y = silu(c). w is
 * stored [D, K] (torch's [D, 1, K]); wt is its transpose [K, D] so the loops run along d. */
static void conv_transpose_w(float *wt, const float *w, size_t D, size_t K) {
    for (size_t d = 0; d < D; d++)
        for (size_t j = 0; j < K; j++) wt[j * D + d] = w[d * K + j];
}

/* pre-activation row (b, t) into c[D] */
static void conv_row(float *c, const float *x, const float *wt, size_t t, size_t D, size_t K) {
    for (size_t d = 0; d < D; d++) c[d] = 0.0f;
    for (size_t j = 0; j < K; j++) {
        if (t + j < K - 1) continue; /* tap before the window */
        const float *xs = x - (K - 1 - j) * D, *wj = wt + j * D;
        for (size_t d = 0; d < D; d++) c[d] += wj[d] * xs[d];
    }
}

static void short_conv_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *w = e->in[1];
    size_t B = e->iarg[0], T = e->iarg[1], D = e->iarg[2], K = e->iarg[3], N = B * T;
    const float *dy = tensor_grad(tp, e->out), *X = x->data;
    float *wt = arena_alloc(&tp->arena, K * D * sizeof(float));
    float *dc = arena_alloc(&tp->arena, N * D * sizeof(float));
    conv_transpose_w(wt, w->data, D, K);
#pragma omp parallel for schedule(static) if (N * D >= PAR_MIN)
    for (size_t r = 0; r < N; r++) {
        float *cr = dc + r * D;
        conv_row(cr, X + r * D, wt, r % T, D, K);
        for (size_t d = 0; d < D; d++) {
            float s = fast_sigmoidf(cr[d]);
            cr[d] = dy[r * D + d] * s * (1.0f + cr[d] * (1.0f - s));
        }
    }
    if (x->requires_grad) {
        float *dx = tensor_grad(tp, x);
#pragma omp parallel for schedule(static) if (N * D >= PAR_MIN)
        for (size_t r = 0; r < N; r++) {
            size_t t = r % T;
            for (size_t j = 0; j < K; j++) {
                size_t lag = K - 1 - j; /* output t + lag reads this row through tap j */
                if (t + lag >= T) continue;
                const float *dcs = dc + (r + lag) * D, *wj = wt + j * D;
                for (size_t d = 0; d < D; d++) dx[r * D + d] += wj[d] * dcs[d];
            }
        }
    }
    if (w->requires_grad) {
        float *dw = tensor_grad(tp, w);
        size_t nblk = (D + CONV_CB - 1) / CONV_CB;
#pragma omp parallel for schedule(static) if (N * D >= PAR_MIN)
        for (size_t blk = 0; blk < nblk; blk++) {
            size_t d0 = blk * CONV_CB, d1 = d0 + CONV_CB < D ? d0 + CONV_CB : D;
            double acc[16][CONV_CB];
            memset(acc, 0, sizeof acc);
            for (size_t r = 0; r < N; r++) {
                size_t t = r % T;
                for (size_t j = 0; j < K; j++) {
                    if (t + j < K - 1) continue;
                    const float *xs = X + (r - (K - 1 - j)) * D, *dcr = dc + r * D;
                    for (size_t d = d0; d < d1; d++) acc[j][d - d0] += (double)dcr[d] * xs[d];
                }
            }
            for (size_t d = d0; d < d1; d++)
                for (size_t j = 0; j < K; j++) dw[d * K + j] += (float)acc[j][d - d0];
        }
    }
}

Tensor *op_short_conv(Tape *tp, Tensor *x, Tensor *w, size_t K) {
    TERN_CHECK(x->ndim == 3, "short_conv: x must be [B, T, D]");
    size_t B = x->shape[0], T = x->shape[1], D = x->shape[2], N = B * T;
    TERN_CHECK(K >= 1 && K <= 16 && w->numel == D * K, "short_conv: w must hold [%zu, %zu] (kernel at most 16)", D, K);
    Tensor *y = tensor_new(tp, 3, x->shape);
    float *wt = arena_alloc(&tp->arena, K * D * sizeof(float));
    conv_transpose_w(wt, w->data, D, K);
    const float *X = x->data;
#pragma omp parallel for schedule(static) if (N * D >= PAR_MIN)
    for (size_t r = 0; r < N; r++) {
        float *yr = y->data + r * D;
        conv_row(yr, X + r * D, wt, r % T, D, K);
        for (size_t d = 0; d < D; d++) yr[d] = gdn_silu(yr[d]);
    }
    Tensor *in[2] = {x, w};
    if (tape_wants_grad(tp, in, 2)) {
        TapeEntry *e = tape_record(tp, "short_conv", short_conv_backward, y, in, 2);
        e->iarg[0] = B, e->iarg[1] = T, e->iarg[2] = D, e->iarg[3] = K;
    }
    return y;
}

/* ------------------------------------------------------------------ per-head L2 norm */
/* y = scale x / sqrt(|x|^2 + 1e-6) per group of n; dx = scale r (dy - y_hat (y_hat . dy)),
 * y_hat = x r (fla's l2norm_bwd, times the scale). */
static void l2norm_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0];
    if (!x->requires_grad) return;
    size_t n = e->iarg[0], rows = x->numel / n;
    float scale = e->farg[0];
    const float *r = e->ctx, *dy = tensor_grad(tp, e->out), *X = x->data;
    float *dx = tensor_grad(tp, x);
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (size_t i = 0; i < rows; i++) {
        const float *xi = X + i * n, *gi = dy + i * n;
        float dot = 0.0f, ri = r[i], f = ri * ri;
        for (size_t m = 0; m < n; m++) dot += xi[m] * gi[m];
        for (size_t m = 0; m < n; m++) dx[i * n + m] += scale * ri * (gi[m] - xi[m] * f * dot);
    }
}

Tensor *op_l2norm_heads(Tape *tp, Tensor *x, size_t n, float scale) {
    TERN_CHECK(n > 0 && tensor_cols(x) % n == 0, "l2norm_heads: last dim not a multiple of %zu", n);
    size_t rows = x->numel / n;
    Tensor *y = tensor_new(tp, x->ndim, x->shape);
    float *r = arena_alloc(&tp->arena, rows * sizeof(float));
#pragma omp parallel for schedule(static) if (x->numel >= PAR_MIN)
    for (size_t i = 0; i < rows; i++) r[i] = gdn_l2norm_row(y->data + i * n, x->data + i * n, n, scale);
    Tensor *in[1] = {x};
    if (tape_wants_grad(tp, in, 1)) {
        TapeEntry *e = tape_record(tp, "l2norm_heads", l2norm_backward, y, in, 1);
        e->ctx = r;
        e->iarg[0] = n;
        e->farg[0] = scale;
    }
    return y;
}

/* ------------------------------------------------------------------ log-space decay */
/* g = -exp(A_log) softplus(a + dt_bias) per head (Mamba-2's parametrisation, fla's
 * gdn_gate): d a = dg (-A) sigmoid(a + dt_bias); d A_log = sum dg g; d dt_bias = sum d a. */
static void gdn_decay_backward(Tape *tp, TapeEntry *e) {
    Tensor *a = e->in[0], *al = e->in[1], *dt = e->in[2];
    size_t H = al->numel, N = a->numel / H;
    const float *dg = tensor_grad(tp, e->out), *g = e->out->data;
    float *da = a->requires_grad ? tensor_grad(tp, a) : NULL;
    for (size_t h = 0; h < H; h++) {
        float A = gdn_decay_rate(al->data[h]), b = dt->data[h];
        double sa = 0, sd = 0;
        for (size_t r = 0; r < N; r++) {
            size_t i = r * H + h;
            float d = dg[i] * -A * fast_sigmoidf(a->data[i] + b);
            if (da) da[i] += d;
            sa += (double)dg[i] * g[i];
            sd += d;
        }
        if (al->requires_grad) tensor_grad(tp, al)[h] += (float)sa;
        if (dt->requires_grad) tensor_grad(tp, dt)[h] += (float)sd;
    }
}

Tensor *op_gdn_decay(Tape *tp, Tensor *a, Tensor *A_log, Tensor *dt_bias) {
    size_t H = A_log->numel;
    TERN_CHECK(H > 0 && dt_bias->numel == H && tensor_cols(a) == H, "gdn_decay: a [..., H], A_log [H], dt_bias [H]");
    Tensor *g = tensor_new(tp, a->ndim, a->shape);
    size_t N = a->numel / H;
    for (size_t h = 0; h < H; h++) {
        float A = gdn_decay_rate(A_log->data[h]), b = dt_bias->data[h];
        for (size_t r = 0; r < N; r++) g->data[r * H + h] = gdn_decay(a->data[r * H + h], A, b);
    }
    Tensor *in[3] = {a, A_log, dt_bias};
    if (tape_wants_grad(tp, in, 3)) tape_record(tp, "gdn_decay", gdn_decay_backward, g, in, 3);
    return g;
}
