/* mlgru — the runtime's MLGRU token mixer (model/blocks/mlgru.c, HGRN-Bit's cell): the four
 * projections of a chunk are batched rt_linear calls; only the diagonal recurrence
 * h_t = f_t h_{t-1} + i_t walks the tokens, with the state h [C] kept per session (a forward at
 * position 0 starts from 0). The recurrence is the trainer's sequential scan (kernels/scan.c:
 * h = a h + x, in that order), the gates the trainer's fast sigmoid / silu.
 *   f = sig(W_f x)  i = silu(W_i x) sig(-W_f x)  y = W_o( rmsnorm(W_g x) * g_norm * silu(h) )
 * No keys of its own. Tensors blocks.<i>.mlgru.{i,f,g}_proj.weight [C, E], g_norm.weight [C],
 * o_proj.weight [C, C]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fastmath.h"
#include "runtime/rt_internal.h"

typedef struct RtMlgru {
    size_t E, C;
    const RtTensor *wi, *wf, *wg, *wo;
    float *gnorm;
} RtMlgru;

static inline float nan0(float x) { return x != x ? 0.0f : x; } /* see kernels/trn_math.h */

/* scratch: fi [P, C], ii [P, C], g [P, C] */
static void mlgru_forward(const void *inst, const RtFwd *f, float *h, float *y, const float *x) {
    const RtMlgru *a = inst;
    size_t n = f->n, C = a->C;
    float *fp = f->scratch, *ip = fp + n * C, *g = ip + n * C;
    rt_linear(f->k, fp, x, n, a->wf, 0, f->lin, f->threads);
    rt_linear(f->k, ip, x, n, a->wi, 0, f->lin, f->threads);
    rt_linear(f->k, g, x, n, a->wg, 0, f->lin, f->threads);
    rt_rmsnorm(g, g, a->gnorm, n, C, f->eps);
    for (size_t t = 0; t < n; t++) {
        if (f->p0 + t == 0) memset(h, 0, C * sizeof(float));
        float *gt = g + t * C;
        const float *ft = fp + t * C, *it = ip + t * C;
        for (size_t c = 0; c < C; c++) {
            float fa = nan0(ft[c]), ia = nan0(it[c]);
            float fg = fast_sigmoidf(fa), in = ia * fast_sigmoidf(ia) * fast_sigmoidf(-fa);
            h[c] = fg * h[c] + in;
            float hv = nan0(h[c]);
            gt[c] = gt[c] * (hv * fast_sigmoidf(hv));
        }
    }
    rt_linear(f->k, y, g, n, a->wo, 0, f->lin, f->threads);
}

static size_t mlgru_state(const void *inst, size_t cap, int kv_f16) { return ((const RtMlgru *)inst)->C; }

static size_t mlgru_scratch(const void *inst, size_t P, size_t max_ctx, int threads) { return 3 * P * ((const RtMlgru *)inst)->C; }

static size_t mlgru_max_cols(const void *inst) {
    const RtMlgru *a = inst;
    return a->E > a->C ? a->E : a->C;
}

static void mlgru_unbind(void *inst) {
    RtMlgru *a = inst;
    if (!a) return;
    rt_free(a->gnorm);
    free(a);
}

static int mlgru_bind(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e) {
    RtMlgru *a = calloc(1, sizeof *a);
    if (!a) return rt_err(e, "out of memory");
    *inst = a;
    a->C = d->C;
    a->E = d->Cin ? d->Cin : d->C;
    char name[TERN_NAME_MAX + 40];
#define T(dst, nm, rr, cc) (snprintf(name, sizeof name, "blocks.%zu.mlgru.%s", layer, nm), rt_want_tensor(m, name, rr, cc, &(dst), used, e))
    int rc = T(a->wi, "i_proj.weight", a->C, a->E) || T(a->wf, "f_proj.weight", a->C, a->E) || T(a->wg, "g_proj.weight", a->C, a->E) ||
             (snprintf(name, sizeof name, "blocks.%zu.mlgru.g_norm.weight", layer), rt_want_vec(m, name, 1, a->C, &a->gnorm, used, e)) ||
             T(a->wo, "o_proj.weight", a->C, a->C);
#undef T
    return rc ? -1 : 0;
}

const RtBlockKind rt_block_mlgru = {"mlgru", 0, mlgru_bind, mlgru_unbind, NULL, mlgru_state, mlgru_scratch, mlgru_max_cols, mlgru_forward, NULL};
