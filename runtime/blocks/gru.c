/* gru — the runtime's GRU token mixer (model/blocks/gru.c), both cells, with constant memory per
 * stream: the state h [H] is the session's decode state (no KV cache). Prefill computes the
 * input projections of a whole chunk with one batched rt_linear per matrix, then steps through
 * the tokens with the products against the state (n = 1); decode is the same with one token.
 * The step math is the trainer's (kernels/gru_math.h), so prefill, decode and the trainer's
 * forward agree; a forward at position 0 starts from h = 0, as every training window does.
 * Keys: gru.variant (torch | engine), gru.state_eps. The input width is the layer's (dim, or
 * stack.embed_dim for a widening first layer).
 * torch:  blocks.<i>.gru.weight_ih [3H, E], weight_hh [3H, H], bias_ih, bias_hh [3H].
 * engine: blocks.<i>.gru.w_z, w_r, w_h [H, E + H], bias [3H]; each matrix is split at bind into
 * its input columns and its state columns (repacked, same codes and scales), because the input
 * part multiplies a whole chunk at once and the state part one token at a time — and because the
 * trainer quantizes x and h as two activations, each with its own int8 scale. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gru_math.h"
#include "runtime/rt_internal.h"

typedef struct RtGru {
    int engine;
    size_t E, H;
    float eps;
    const RtTensor *wih, *whh;       /* torch */
    float *bih, *bhh, *bias;         /* torch biases | engine bias [3H] */
    RtTensor wx[3], wh[3];           /* engine: input and state columns of w_z, w_r, w_h */
    void *split_mem[6];
} RtGru;

/* columns [c0, c0 + n) of src as a tensor of its own: rows repacked (the same codes), scales
 * sliced. A ternary scale group must not straddle c0. */
static int split_cols(const RtTensor *src, size_t c0, size_t n, RtTensor *dst, void **mem, RtErr *e) {
    *dst = *src;
    dst->cols = n;
    dst->row_bytes = tern_row_bytes(src->dtype, n);
    size_t per_row = src->group ? (src->cols + src->group - 1) / src->group : 0, nper = src->group ? (n + src->group - 1) / src->group : 0;
    if (tern_dtype_is_ternary(src->dtype) && src->group && c0 % src->group)
        return rt_err(e, "tensor %s: ternary group %zu does not divide the input width %zu", src->name, src->group, c0);
    size_t sbytes = tern_dtype_is_ternary(src->dtype) && src->group ? src->rows * nper * sizeof(float) : 0;
    uint8_t *p = rt_alloc(src->rows * dst->row_bytes + sbytes + 64);
    int8_t *codes = rt_alloc(src->cols + 1);
    *mem = p;
    if (!p || !codes) {
        rt_free(codes);
        return rt_err(e, "out of memory");
    }
    size_t esize = src->dtype == TERN_DT_F32 ? 4 : 2;
    for (size_t r = 0; r < src->rows; r++) {
        const uint8_t *row = src->data + r * src->row_bytes;
        if (tern_dtype_is_float(src->dtype)) {
            memcpy(p + r * dst->row_bytes, row + c0 * esize, n * esize);
        } else {
            tern_unpack_row(src->dtype, codes, row, src->cols);
            tern_pack_row(src->dtype, p + r * dst->row_bytes, codes + c0, n);
        }
    }
    rt_free(codes);
    dst->data = p;
    if (sbytes) {
        float *sc = (float *)(p + (src->rows * dst->row_bytes + 63) / 64 * 64);
        for (size_t r = 0; r < src->rows; r++) memcpy(sc + r * nper, src->scales + r * per_row + c0 / src->group, nper * sizeof(float));
        dst->scales = sc;
        dst->nscales = src->rows * nper;
    }
    rt_tensor_plan(dst);
    return 0;
}

static void add_bias(float *y, const float *b, size_t n, size_t m) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++) y[i * m + j] += b[j];
}

/* scratch: xp [P, 3H], hp [3H] (torch) | hzr [2H], z, r, q, c, a [H] (engine) */
static void gru_forward(const void *inst, const RtFwd *f, float *state, float *y, const float *x) {
    const RtGru *a = inst;
    size_t n = f->n, H = a->H;
    float *xp = f->scratch, *w = xp + n * 3 * H;
    if (!a->engine) {
        rt_linear(f->k, xp, x, n, a->wih, 0, f->lin, f->threads);
        add_bias(xp, a->bih, n, 3 * H);
    } else {
        float *plane = w; /* [3][n, H], then interleaved into xp rows (z | r | h) */
        for (int g = 0; g < 3; g++) rt_linear(f->k, plane + g * n * H, x, n, &a->wx[g], 0, f->lin, f->threads);
        for (size_t i = 0; i < n; i++)
            for (int g = 0; g < 3; g++) memcpy(xp + i * 3 * H + g * H, plane + g * n * H + i * H, H * sizeof(float));
        add_bias(xp, a->bias, n, 3 * H);
    }
    for (size_t i = 0; i < n; i++) {
        if (f->p0 + i == 0) memset(state, 0, H * sizeof(float));
        const float *xr = xp + i * 3 * H;
        if (!a->engine) {
            rt_linear(f->k, w, state, 1, a->whh, 0, f->lin, f->threads);
            add_bias(w, a->bhh, 1, 3 * H);
            gru_torch_step(state, NULL, NULL, NULL, NULL, xr, w, state, H, 1);
        } else {
            float *hzr = w, *z = w + 2 * H, *r = z + H, *q = r + H, *c = q + H, *av = c + H;
            rt_linear(f->k, hzr, state, 1, &a->wh[0], 0, f->lin, f->threads);
            rt_linear(f->k, hzr + H, state, 1, &a->wh[1], 0, f->lin, f->threads);
            gru_engine_gates(z, r, q, xr, hzr, state, H, 1);
            rt_linear(f->k, av, q, 1, &a->wh[2], 0, f->lin, f->threads);
            gru_engine_state(state, c, xr + 2 * H, av, z, state, H, a->eps, 1);
        }
        memcpy(y + i * H, state, H * sizeof(float));
    }
}

static size_t gru_state(const void *inst, size_t cap, int kv_f16) { return ((const RtGru *)inst)->H; }

static size_t gru_scratch(const void *inst, size_t P, size_t max_ctx, int threads) {
    const RtGru *a = inst;
    return P * 6 * a->H + 8 * a->H;
}

static size_t gru_max_cols(const void *inst) {
    const RtGru *a = inst;
    return a->E > a->H ? a->E : a->H;
}

static void gru_unbind(void *inst) {
    RtGru *a = inst;
    if (!a) return;
    rt_free(a->bih), rt_free(a->bhh), rt_free(a->bias);
    for (int i = 0; i < 6; i++) rt_free(a->split_mem[i]);
    free(a);
}

static int bind_torch(RtGru *a, const TrtModel *m, size_t layer, size_t *used, RtErr *e) {
    char name[TERN_NAME_MAX + 32];
    size_t E = a->E, H = a->H;
#define T(dst, nm, rr, cc) (snprintf(name, sizeof name, "blocks.%zu.gru.%s", layer, nm), rt_want_tensor(m, name, rr, cc, &(dst), used, e))
#define V(dst, nm, cc) (snprintf(name, sizeof name, "blocks.%zu.gru.%s", layer, nm), rt_want_vec(m, name, 1, cc, &(dst), used, e))
    return T(a->wih, "weight_ih", 3 * H, E) || T(a->whh, "weight_hh", 3 * H, H) || V(a->bih, "bias_ih", 3 * H) ||
                   V(a->bhh, "bias_hh", 3 * H)
               ? -1
               : 0;
}

static int bind_engine(RtGru *a, const TrtModel *m, size_t layer, size_t *used, RtErr *e) {
    char name[TERN_NAME_MAX + 32];
    size_t E = a->E, H = a->H;
    const char *nm[3] = {"w_z", "w_r", "w_h"};
    for (int g = 0; g < 3; g++) {
        const RtTensor *w;
        if (T(w, nm[g], H, E + H)) return -1;
        if (g && (w->act_bits != a->wx[0].act_bits || w->act_block != a->wx[0].act_block))
            return rt_err(e, "tensor %s: the GRU's gate matrices must share one activation setting", w->name);
        if (split_cols(w, 0, E, &a->wx[g], &a->split_mem[2 * g], e) || split_cols(w, E, H, &a->wh[g], &a->split_mem[2 * g + 1], e))
            return -1;
    }
    return V(a->bias, "bias", 3 * H) ? -1 : 0;
#undef T
#undef V
}

static int gru_bind(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e) {
    RtGru *a = calloc(1, sizeof *a);
    if (!a) return rt_err(e, "out of memory");
    *inst = a;
    const char *variant;
    if (rt_kv_str(kv, "gru.variant", &variant, e) || rt_kv_f32(kv, "gru.state_eps", &a->eps, e)) return -1;
    if (!strcmp(variant, "engine")) a->engine = 1;
    else if (strcmp(variant, "torch")) return rt_err(e, "gru.variant \"%s\" is not torch or engine", variant);
    if (!(a->eps >= 0)) return rt_err(e, "gru.state_eps must be >= 0");
    a->H = d->C;
    a->E = d->Cin ? d->Cin : d->C;
    return a->engine ? bind_engine(a, m, layer, used, e) : bind_torch(a, m, layer, used, e);
}

const RtBlockKind rt_block_gru = {"gru", 0, gru_bind, gru_unbind, NULL, gru_state, gru_scratch, gru_max_cols, gru_forward, NULL};
