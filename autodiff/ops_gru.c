/* ops_gru.c — tape ops of the two GRU cells (autodiff/ops_gru.h). The forward saves four state-
 * sized planes per token (torch: r, z, n, a; engine: z, r, c, q) plus the engine's 1/rms; the
 * backward runs the reverse time loop (kernels/gru.c) and then forms every weight gradient with
 * one GEMM over all B*T tokens instead of one outer product per step. */
#include "autodiff/ops_gru.h"

#include <string.h>

#include "kernels/gemm.h"
#include "kernels/norm.h"

typedef struct GruCtx {
    size_t B, T, E, H;
    GruOpCfg cfg;
    float *save, *inv;
} GruCtx;

static void bias_grad(Tape *tp, Tensor *b, const float *d, size_t N, size_t ld_cols) {
    if (!b || !b->requires_grad) return;
    float *scratch = arena_alloc(&tp->arena, colsum_scratch_floats(ld_cols) * sizeof(float));
    colsum_accumulate(tensor_grad(tp, b), d, N, ld_cols, scratch);
}

/* ------------------------------------------------------------------ PyTorch cell */

static void torch_backward(Tape *tp, TapeEntry *e) {
    Tensor *xp = e->in[0], *whh = e->in[1], *bhh = e->in[2];
    GruCtx *c = e->ctx;
    size_t B = c->B, T = c->T, H = c->H, N = B * T;
    Arena *ar = &tp->arena;
    float *dxp = arena_alloc(ar, N * 3 * H * sizeof(float)), *drec = arena_alloc(ar, N * 3 * H * sizeof(float));
    float *work = arena_alloc(ar, gru_work_floats(B, H) * sizeof(float));
    gru_torch_backward(dxp, drec, tensor_grad(tp, e->out), e->out->data, c->save, whh->data, B, T, H, c->cfg.tbptt, work);
    if (xp->requires_grad) {
        float *g = tensor_grad(tp, xp);
        for (size_t i = 0; i < N * 3 * H; i++) g[i] += dxp[i];
    }
    if (whh->requires_grad) {
        float *hp = arena_alloc(ar, N * H * sizeof(float));
        gru_prev_states(hp, e->out->data, B, T, H, &c->cfg.act_h);
        sgemm(1, 0, 3 * H, H, N, 1.0f, drec, 3 * H, hp, H, 1.0f, tensor_grad(tp, whh), H);
    }
    bias_grad(tp, bhh, drec, N, 3 * H);
}

Tensor *op_gru_torch_recur(Tape *tp, Tensor *xp, Tensor *whh, Tensor *bhh, const GruOpCfg *cfg) {
    TERN_CHECK(xp->ndim == 3 && xp->shape[2] % 3 == 0, "gru: input projection must be [B, T, 3H]");
    size_t B = xp->shape[0], T = xp->shape[1], H = xp->shape[2] / 3;
    TERN_CHECK(whh->ndim == 2 && whh->shape[0] == 3 * H && whh->shape[1] == H, "gru: weight_hh must be [%zu, %zu]", 3 * H, H);
    TERN_CHECK(bhh->numel == 3 * H, "gru: bias_hh must have %zu values", 3 * H);
    Tensor *h = tensor_new3(tp, B, T, H);
    Tensor *in[3] = {xp, whh, bhh};
    int grad = tape_wants_grad(tp, in, 3);
    float *save = grad ? arena_alloc(&tp->arena, 4 * B * T * H * sizeof(float)) : NULL;
    float *work = arena_alloc(&tp->arena, gru_work_floats(B, H) * sizeof(float));
    gru_torch_forward(h->data, save, xp->data, whh->data, bhh->data, B, T, H, &cfg->act_h, work);
    if (grad) {
        TapeEntry *e = tape_record(tp, "gru_torch", torch_backward, h, in, 3);
        GruCtx *c = arena_alloc(&tp->arena, sizeof *c);
        *c = (GruCtx){B, T, 0, H, *cfg, save, NULL};
        e->ctx = c;
    }
    return h;
}

/* ------------------------------------------------------------------ the engine's cell */

/* xp [N, 3H] = for each gate g (z | r | h): x W_g[:, :E]^T + b_g */
static void engine_input_proj(float *xp, const float *x, const Tensor *const w[3], const float *b, size_t N, size_t E,
                              size_t H) {
    for (size_t r = 0; r < N; r++) memcpy(xp + r * 3 * H, b, 3 * H * sizeof(float));
    for (int g = 0; g < 3; g++) sgemm(0, 1, N, H, E, 1.0f, x, E, w[g]->data, E + H, 1.0f, xp + g * H, 3 * H);
}

static void engine_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *b = e->in[4];
    Tensor *w[3] = {e->in[1], e->in[2], e->in[3]};
    GruCtx *c = e->ctx;
    size_t B = c->B, T = c->T, E = c->E, H = c->H, N = B * T, ld = E + H;
    Arena *ar = &tp->arena;
    float *dxp = arena_alloc(ar, N * 3 * H * sizeof(float));
    float *work = arena_alloc(ar, gru_work_floats(B, H) * sizeof(float));
    gru_engine_backward(dxp, tensor_grad(tp, e->out), e->out->data, c->save, c->inv, w[0]->data, w[1]->data, w[2]->data, B,
                        T, E, H, c->cfg.tbptt, work);
    float *hp = NULL;
    for (int g = 0; g < 3; g++) {
        if (!w[g]->requires_grad) continue;
        float *dw = tensor_grad(tp, w[g]);
        sgemm(1, 0, H, E, N, 1.0f, dxp + g * H, 3 * H, x->data, E, 1.0f, dw, ld); /* input columns */
        const float *rin = c->save + 3 * N * H;                                   /* the candidate reads q */
        if (g < 2) {
            if (!hp) {
                hp = arena_alloc(ar, N * H * sizeof(float));
                gru_prev_states(hp, e->out->data, B, T, H, &c->cfg.act_h);
            }
            rin = hp;
        }
        sgemm(1, 0, H, H, N, 1.0f, dxp + g * H, 3 * H, rin, H, 1.0f, dw + E, ld); /* state columns */
    }
    if (x->requires_grad)
        for (int g = 0; g < 3; g++)
            sgemm(0, 0, N, E, H, 1.0f, dxp + g * H, 3 * H, w[g]->data, ld, 1.0f, tensor_grad(tp, x), E);
    bias_grad(tp, b, dxp, N, 3 * H);
}

Tensor *op_gru_engine(Tape *tp, Tensor *x, Tensor *wz, Tensor *wr, Tensor *wh, Tensor *b, const GruOpCfg *cfg) {
    TERN_CHECK(x->ndim == 3, "gru: input must be [B, T, E]");
    size_t B = x->shape[0], T = x->shape[1], E = x->shape[2], H = b->numel / 3, N = B * T;
    const Tensor *w[3] = {wz, wr, wh};
    for (int g = 0; g < 3; g++)
        TERN_CHECK(w[g]->ndim == 2 && w[g]->shape[0] == H && w[g]->shape[1] == E + H, "gru: gate weights must be [%zu, %zu]", H,
                   E + H);
    TERN_CHECK(b->numel == 3 * H && H > 0, "gru: bias must have 3H values");
    Tensor *h = tensor_new3(tp, B, T, H);
    Tensor *in[5] = {x, wz, wr, wh, b};
    int grad = tape_wants_grad(tp, in, 5);
    float *xp = arena_alloc(&tp->arena, N * 3 * H * sizeof(float));
    float *save = grad ? arena_alloc(&tp->arena, 4 * N * H * sizeof(float)) : NULL;
    float *inv = grad ? arena_alloc(&tp->arena, N * sizeof(float)) : NULL;
    float *work = arena_alloc(&tp->arena, gru_work_floats(B, H) * sizeof(float));
    engine_input_proj(xp, x->data, w, b->data, N, E, H);
    gru_engine_forward(h->data, save, inv, xp, wz->data, wr->data, wh->data, B, T, E, H, cfg->state_eps, &cfg->act_h,
                       &cfg->act_q, work);
    if (grad) {
        TapeEntry *e = tape_record(tp, "gru_engine", engine_backward, h, in, 5);
        GruCtx *c = arena_alloc(&tp->arena, sizeof *c);
        *c = (GruCtx){B, T, E, H, *cfg, save, inv};
        e->ctx = c;
    }
    return h;
}
