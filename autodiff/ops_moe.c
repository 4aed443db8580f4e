/* ops_moe.c — the routed experts of a mixture-of-experts layer on the tape (kernels/moe.h has the
 * equations): one entry whose inputs are h and the router's sigmoid scores; the experts' weights
 * (2E tensors, more than a TapeEntry holds) ride in the saved context. */
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/gemm.h"

typedef struct MoeCtx {
    MoeShape s;
    MoeSaved sv;
    Tensor **gu, **dn;
    float gamma;
} MoeCtx;

static void moe_op_backward(Tape *tp, TapeEntry *e) {
    MoeCtx *c = e->ctx;
    Tensor *h = e->in[0], *sc = e->in[1];
    size_t E = c->s.E;
    const float **gu = arena_alloc(&tp->arena, 2 * E * sizeof(float *)), **dn = gu + E;
    float **dgu = arena_alloc(&tp->arena, 2 * E * sizeof(float *)), **ddn = dgu + E;
    int any = 0;
    for (size_t x = 0; x < E; x++) {
        gu[x] = c->gu[x]->data, dn[x] = c->dn[x]->data;
        dgu[x] = c->gu[x]->requires_grad ? tensor_grad(tp, c->gu[x]) : NULL;
        ddn[x] = c->dn[x]->requires_grad ? tensor_grad(tp, c->dn[x]) : NULL;
        any |= dgu[x] || ddn[x];
    }
    float *work = arena_alloc(&tp->arena, moe_work_floats(&c->s) * sizeof(float));
    /* weight grads are all wanted or none (the kernel takes one pointer array each) */
    moe_backward(&c->s, tensor_grad(tp, e->out), &c->sv, gu, dn, c->gamma, h->requires_grad ? tensor_grad(tp, h) : NULL,
                 sc->requires_grad ? tensor_grad(tp, sc) : NULL, any ? dgu : NULL, any ? ddn : NULL, work, sgemm);
}

Tensor *op_moe(Tape *tp, Tensor *h, Tensor *scores, Tensor *const *gu, Tensor *const *dn, const MoeOpCfg *cfg) {
    size_t C = tensor_cols(h), N = tensor_rows(h), E = cfg->E, H = cfg->H;
    TERN_CHECK(tensor_cols(scores) == E && tensor_rows(scores) == N, "moe: scores must be [%zu, %zu]", N, E);
    TERN_CHECK(E >= 1 && E <= MOE_MAX_EXPERTS && cfg->K >= 1 && cfg->K <= E, "moe: %zu experts, top-%zu", E, cfg->K);
    for (size_t x = 0; x < E; x++)
        TERN_CHECK(gu[x]->numel == 2 * H * C && dn[x]->numel == C * H, "moe: expert %zu weights must be [%zu, %zu] and [%zu, %zu]", x,
                   2 * H, C, C, H);
    MoeShape s = {N, C, E, cfg->K, H, NULL, NULL};
    if (cfg->act_in) { /* the context outlives cfg: keep copies */
        long *q = arena_alloc(&tp->arena, 2 * E * sizeof(long));
        memcpy(q, cfg->act_in, E * sizeof(long));
        memcpy(q + E, cfg->act_hid, E * sizeof(long));
        s.act_in = q, s.act_hid = q + E;
    }
    MoeCtx *c = arena_alloc(&tp->arena, sizeof *c);
    c->s = s;
    c->gamma = cfg->gamma;
    moe_saved_bind(&c->sv, &s, arena_alloc(&tp->arena, moe_saved_floats(&s) * sizeof(float)),
                   arena_alloc(&tp->arena, moe_saved_ints(&s) * sizeof(int32_t)), arena_alloc(&tp->arena, (E + 1) * sizeof(size_t)));
    const float **gw = arena_alloc(&tp->arena, 2 * E * sizeof(float *)), **dw = gw + E;
    for (size_t x = 0; x < E; x++) gw[x] = gu[x]->data, dw[x] = dn[x]->data;
    Tensor *y = tensor_new(tp, h->ndim, h->shape);
    moe_forward(&s, y->data, &c->sv, h->data, scores->data, cfg->bias, cfg->gamma, gw, dw, cfg->load, sgemm);
    int want = tape_wants_grad(tp, (Tensor *[]){h, scores}, 2);
    for (size_t x = 0; x < E && !want; x++) want = tape_wants_grad(tp, (Tensor *[]){gu[x], dn[x]}, 2);
    if (want) {
        c->gu = arena_alloc(&tp->arena, 2 * E * sizeof(Tensor *));
        c->dn = c->gu + E;
        memcpy(c->gu, gu, E * sizeof(Tensor *));
        memcpy(c->dn, dn, E * sizeof(Tensor *));
        TapeEntry *e = tape_record(tp, "moe", moe_op_backward, y, (Tensor *[]){h, scores}, 2);
        e->ctx = c;
    }
    return y;
}
