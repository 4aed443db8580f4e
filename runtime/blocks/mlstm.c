/* mlstm — the runtime's mLSTM block (model/blocks/mlstm.c; Beck et al. 2024, "xLSTM"), run with
 * the stabilised recurrent step (kernels/mlstm_math.h mlstm_step), the trainer's reference form:
 * a constant state per session, for prefill and decode alike. A chunk of n tokens goes through
 * each projection as one batched product (rt_linear: packed ternary / intN kernels), then the
 * convolution, the gates' recurrence and the norm token after token:
 *   [x_m | z] = proj_up(h);  x_c = silu(conv(x_m));  q, k = headwise(x_c);  v = headwise(x_m)
 *   [ig | fg] = gates([q | k | v]) + b;  c = mlstm_step per head;
 *   y = proj_down((norm.weight ⊙ group_norm(c) + skip ⊙ x_c) ⊙ silu(z))
 * State per session: per head the memory S [D][D + 1] (C | n) and m, then the last K - 1 rows of
 * x_m (the convolution's window); a forward at position 0 clears it. Keys: mlstm.heads,
 * mlstm.head_dim, mlstm.conv, mlstm.qkv_block, mlstm.exp_forget, mlstm.norm_eps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fastmath.h"
#include "kernels/mlstm_math.h"
#include "runtime/rt_internal.h"

typedef struct RtMlstm {
    size_t C, H, D, I, K, bs;
    int exp_forget;
    float eps;
    const RtTensor *up, *gates, *down;
    float *conv_w, *conv_b, *wq, *wk, *wv, *gates_b, *norm_w, *skip;
} RtMlstm;

static size_t head_floats(const RtMlstm *a) { return a->D * (a->D + 1) + 1; }

/* x * sigmoid(x) as the trainer's op_silu (kernels/act.c); NaN -> 0 before the fast sigmoid */
static inline float silu(float x) { return x * fast_sigmoidf(x == x ? x : 0.0f); }

/* x_c rows of the chunk from the convolution window [K - 1 history rows | n rows of x_m] */
static void conv_rows(const RtMlstm *a, float *xc, const float *win, size_t p0, size_t n) {
    const float *rows[64];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < a->K; j++) rows[j] = p0 + i + j + 1 >= a->K ? win + (i + j) * a->I : NULL;
        float *y = xc + i * a->I;
        mlstm_conv_row(y, rows, a->conv_w, a->conv_b, a->I, a->K);
        for (size_t c = 0; c < a->I; c++) y[c] = silu(y[c]);
    }
}

/* One token's cell, norm, skip and output gate: out [I] from the rows of this token. */
static void cell_token(const RtMlstm *a, float *state, float *out, const float *q, const float *k, const float *v,
                       const float *g, const float *xc, const float *z) {
    size_t D = a->D, H = a->H;
    for (size_t h = 0; h < H; h++) {
        float *S = state + h * head_floats(a), *m = S + D * (D + 1), *o = out + h * D;
        mlstm_step(S, m, o, q + h * D, k + h * D, v + h * D, g[h], mlstm_log_forget(g[H + h], a->exp_forget), D, NULL);
        mlstm_group_norm(o, o, D, a->eps);
    }
    for (size_t c = 0; c < a->I; c++) out[c] = (out[c] * a->norm_w[c] + a->skip[c] * xc[c]) * silu(z[c]);
}

/* scratch: up [P, 2I], win [K - 1 + P, I], xc, q, k, v, out [P, I] each, g [P, 2H], cat [P, 3I] */
static void mlstm_forward(const void *inst, const RtFwd *f, float *state, float *y, const float *h) {
    const RtMlstm *a = inst;
    size_t n = f->n, I = a->I, K = a->K, H = a->H, hist = (K - 1) * I;
    float *histrows = state + H * head_floats(a);
    if (f->p0 == 0) {
        memset(state, 0, (H * head_floats(a) + hist) * sizeof(float));
        for (size_t hh = 0; hh < H; hh++) state[hh * head_floats(a) + a->D * (a->D + 1)] = MLSTM_M0;
    }
    float *up = f->scratch, *win = up + n * 2 * I, *xc = win + (K - 1 + n) * I, *q = xc + n * I, *k = q + n * I, *v = k + n * I;
    float *out = v + n * I, *g = out + n * I;
    rt_linear(f->k, up, h, n, a->up, 0, f->lin, f->threads);
    memcpy(win, histrows, hist * sizeof(float));
    for (size_t i = 0; i < n; i++) memcpy(win + (K - 1 + i) * I, up + i * 2 * I, I * sizeof(float));
    conv_rows(a, xc, win, f->p0, n);
    memcpy(histrows, win + n * I, hist * sizeof(float)); /* the window's last K - 1 rows */
    for (size_t i = 0; i < n; i++) {
        mlstm_headwise_row(q + i * I, xc + i * I, a->wq, I, a->bs);
        mlstm_headwise_row(k + i * I, xc + i * I, a->wk, I, a->bs);
        mlstm_headwise_row(v + i * I, up + i * 2 * I, a->wv, I, a->bs);
    }
    float *cat = g + n * 2 * H; /* [q | k | v] rows, the gates' input */
    for (size_t i = 0; i < n; i++) {
        memcpy(cat + i * 3 * I, q + i * I, I * sizeof(float));
        memcpy(cat + i * 3 * I + I, k + i * I, I * sizeof(float));
        memcpy(cat + i * 3 * I + 2 * I, v + i * I, I * sizeof(float));
    }
    rt_linear(f->k, g, cat, n, a->gates, 0, f->lin, f->threads);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < 2 * H; j++) g[i * 2 * H + j] += a->gates_b[j];
    for (size_t i = 0; i < n; i++)
        cell_token(a, state, out + i * I, q + i * I, k + i * I, v + i * I, g + i * 2 * H, xc + i * I, up + i * 2 * I + I);
    rt_linear(f->k, y, out, n, a->down, 0, f->lin, f->threads);
}

static size_t mlstm_state(const void *inst, size_t cap, int kv_f16) {
    const RtMlstm *a = inst;
    return a->H * head_floats(a) + (a->K - 1) * a->I;
}

static size_t mlstm_scratch(const void *inst, size_t P, size_t max_ctx, int threads) {
    const RtMlstm *a = inst;
    return P * 2 * a->I + (a->K - 1 + P) * a->I + 5 * P * a->I + P * 2 * a->H + P * 3 * a->I;
}

static size_t mlstm_max_cols(const void *inst) {
    const RtMlstm *a = inst;
    return 3 * a->I > a->C ? 3 * a->I : a->C;
}

static void mlstm_unbind(void *inst) {
    RtMlstm *a = inst;
    if (!a) return;
    float *v[] = {a->conv_w, a->conv_b, a->wq, a->wk, a->wv, a->gates_b, a->norm_w, a->skip};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) rt_free(v[i]);
    free(a);
}

static int mlstm_bind(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e) {
    RtMlstm *a = calloc(1, sizeof *a);
    if (!a) return rt_err(e, "out of memory");
    *inst = a;
    uint32_t H, D, K, bs;
    if (rt_kv_u32(kv, "mlstm.heads", 1, 65536, &H, e) || rt_kv_u32(kv, "mlstm.head_dim", 1, 4096, &D, e) ||
        rt_kv_u32(kv, "mlstm.conv", 1, 64, &K, e) || rt_kv_u32(kv, "mlstm.qkv_block", 1, 64, &bs, e) ||
        rt_kv_bool(kv, "mlstm.exp_forget", &a->exp_forget, e) || rt_kv_f32(kv, "mlstm.norm_eps", &a->eps, e))
        return -1;
    if (!(a->eps > 0)) return rt_err(e, "mlstm.norm_eps must be > 0");
    if ((size_t)H * D > (1u << 20)) return rt_err(e, "mlstm.heads x mlstm.head_dim too large");
    a->C = d->C, a->H = H, a->D = D, a->I = (size_t)H * D, a->K = K, a->bs = bs;
    if (a->I % bs) return rt_err(e, "mlstm.qkv_block %u does not divide the inner width %zu", bs, a->I);
    size_t I = a->I;
    char name[TERN_NAME_MAX + 48];
#define T(dst, nm, rr, cc) (snprintf(name, sizeof name, "blocks.%zu.mlstm.%s", layer, nm), rt_want_tensor(m, name, rr, cc, &(dst), used, e))
#define V(dst, nm, rr, cc) (snprintf(name, sizeof name, "blocks.%zu.mlstm.%s", layer, nm), rt_want_vec(m, name, rr, cc, &(dst), used, e))
    int rc = T(a->up, "proj_up.weight", 2 * I, a->C) || V(a->conv_w, "conv.weight", I, K) || V(a->conv_b, "conv.bias", 1, I) ||
             V(a->wq, "q.weight", I, bs) || V(a->wk, "k.weight", I, bs) || V(a->wv, "v.weight", I, bs) ||
             T(a->gates, "gates.weight", 2 * (size_t)H, 3 * I) || V(a->gates_b, "gates.bias", 1, 2 * (size_t)H) ||
             V(a->norm_w, "norm.weight", 1, I) || V(a->skip, "skip", 1, I) || T(a->down, "proj_down.weight", a->C, I);
#undef T
#undef V
    return rc ? -1 : 0;
}

const RtBlockKind rt_block_mlstm = {"mlstm", 0, mlstm_bind, mlstm_unbind, NULL, mlstm_state, mlstm_scratch, mlstm_max_cols, mlstm_forward, NULL};
