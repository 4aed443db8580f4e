/* moe — the runtime's mixture-of-experts channel mixer (model/blocks/moe.c): per token, the
 * router's sigmoid affinities s = sigmoid(h Wr^T), the top-K experts by s + b (b the routing bias
 * the trainer exported, blocks.<i>.moe.bias) and their normalised weights (kernels/moe_math.h,
 * the trainer's code); only the chosen experts run, each on the rows of the chunk routed to it
 * (a counting sort, as the trainer's); out = sum_k w_k FFN_k(h) in slot order, then + each shared
 * expert's FFN. FFN = SwiGLU (gate_up [2H, C], gate rows first; down [C, H]).
 * Keys: moe.experts, moe.shared, moe.topk, moe.hidden, moe.route_scale. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fastmath.h"
#include "kernels/moe_math.h"
#include "runtime/rt_internal.h"

#define RT_MOE_MAX_EXPERTS 256
#define RT_MOE_MAX_SHARED 16

typedef struct RtMoe {
    size_t C, E, S, K, H;
    float gamma;
    const RtTensor *router;
    const RtTensor **gu, **dn; /* [E + S]: routed, then shared */
    float *bias;               /* [E] */
} RtMoe;

/* scratch: logits [n, E], w [n K], sel / perm / inv [n K] int32, Xs and Ys [n K, C], U [n K, 2H],
 * A [n K, H], shared output [n, C] */
static size_t moe_scratch(const void *inst, size_t P, size_t max_ctx, int threads) {
    const RtMoe *a = inst;
    size_t R = P * a->K;
    return P * a->E + 4 * R + R * (2 * a->C + 3 * a->H) + P * a->C;
}

static size_t moe_max_cols(const void *inst) {
    const RtMoe *a = inst;
    return a->H > a->C ? a->H : a->C;
}

/* one SwiGLU FFN over m rows: out [m, C] = down(silu(gate) * up)(x) */
static void ffn(const RtFwd *f, const RtTensor *gu, const RtTensor *dn, size_t H, float *out, const float *x, size_t m, float *U,
                float *A) {
    rt_linear(f->k, U, x, m, gu, 0, f->lin, f->threads);
    rt_swiglu(A, U, m, H);
    rt_linear(f->k, out, A, m, dn, 0, f->lin, f->threads);
}

static void moe_forward(const void *inst, const RtFwd *f, float *state, float *y, const float *h) {
    const RtMoe *a = inst;
    size_t n = f->n, C = a->C, E = a->E, K = a->K, H = a->H, R = n * K;
    float *logit = f->scratch, *w = logit + n * E;
    int32_t *sel = (int32_t *)(w + R), *perm = sel + R, *inv = perm + R;
    float *Xs = (float *)(inv + R), *Ys = Xs + R * C, *U = Ys + R * C, *A = U + R * 2 * H, *ysh = A + R * H;
    rt_linear(f->k, logit, h, n, a->router, 0, f->lin, f->threads);
    for (size_t i = 0; i < n * E; i++) logit[i] = fast_sigmoidf(logit[i]);
    for (size_t t = 0; t < n; t++) moe_route_token(logit + t * E, a->bias, E, K, a->gamma, sel + t * K, w + t * K);
    size_t offset[RT_MOE_MAX_EXPERTS + 1] = {0}, cursor[RT_MOE_MAX_EXPERTS];
    for (size_t r = 0; r < R; r++) offset[sel[r] + 1]++;
    for (size_t e = 0; e < E; e++) offset[e + 1] += offset[e];
    memcpy(cursor, offset, E * sizeof *cursor);
    for (size_t r = 0; r < R; r++) {
        size_t p = cursor[sel[r]]++;
        perm[p] = (int32_t)r, inv[r] = (int32_t)p;
        memcpy(Xs + p * C, h + (r / K) * C, C * sizeof(float));
    }
    for (size_t e = 0; e < E; e++) {
        size_t r0 = offset[e], m = offset[e + 1] - r0;
        if (m) ffn(f, a->gu[e], a->dn[e], H, Ys + r0 * C, Xs + r0 * C, m, U, A);
    }
    for (size_t t = 0; t < n; t++) { /* slot order, as the trainer */
        float *yt = y + t * C;
        memset(yt, 0, C * sizeof(float));
        for (size_t k = 0; k < K; k++) {
            const float *row = Ys + (size_t)inv[t * K + k] * C;
            for (size_t c = 0; c < C; c++) yt[c] += w[t * K + k] * row[c];
        }
    }
    for (size_t j = 0; j < a->S; j++) {
        ffn(f, a->gu[E + j], a->dn[E + j], H, ysh, h, n, U, A);
        for (size_t i = 0; i < n * C; i++) y[i] += ysh[i];
    }
}

static void moe_unbind(void *inst) {
    RtMoe *a = inst;
    if (!a) return;
    free(a->gu);
    rt_free(a->bias);
    free(a);
}

static int moe_bind(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e) {
    RtMoe *a = calloc(1, sizeof *a);
    if (!a) return rt_err(e, "out of memory");
    *inst = a;
    uint32_t E, S, K, H;
    if (rt_kv_u32(kv, "moe.experts", 1, RT_MOE_MAX_EXPERTS, &E, e) || rt_kv_u32(kv, "moe.shared", 0, RT_MOE_MAX_SHARED, &S, e) ||
        rt_kv_u32(kv, "moe.topk", 1, E, &K, e) || rt_kv_u32(kv, "moe.hidden", 1, 1u << 20, &H, e) ||
        rt_kv_f32(kv, "moe.route_scale", &a->gamma, e))
        return -1;
    if (!(a->gamma > 0)) return rt_err(e, "moe.route_scale must be positive, got %g", (double)a->gamma);
    a->C = d->C, a->E = E, a->S = S, a->K = K, a->H = H;
    a->gu = calloc(2 * (E + S), sizeof *a->gu);
    if (!a->gu) return rt_err(e, "out of memory");
    a->dn = a->gu + E + S;
    char name[TERN_NAME_MAX + 64];
    snprintf(name, sizeof name, "blocks.%zu.moe.router.weight", layer);
    if (rt_want_tensor(m, name, E, a->C, &a->router, used, e)) return -1;
    snprintf(name, sizeof name, "blocks.%zu.moe.bias", layer);
    if (rt_want_vec(m, name, 1, E, &a->bias, used, e)) return -1;
    for (size_t x = 0; x < E + S; x++) {
        int sh = x >= E;
        snprintf(name, sizeof name, "blocks.%zu.moe.%s.%zu.gate_up.weight", layer, sh ? "shared" : "experts", sh ? x - E : x);
        if (rt_want_tensor(m, name, 2 * a->H, a->C, &a->gu[x], used, e)) return -1;
        snprintf(name, sizeof name, "blocks.%zu.moe.%s.%zu.down.weight", layer, sh ? "shared" : "experts", sh ? x - E : x);
        if (rt_want_tensor(m, name, a->C, a->H, &a->dn[x], used, e)) return -1;
    }
    return 0; /* the loader refuses non-finite float tensors (a NaN bias among them) */
}

const RtBlockKind rt_block_moe = {"moe", 1, moe_bind, moe_unbind, NULL, NULL, moe_scratch, moe_max_cols, moe_forward, NULL};
