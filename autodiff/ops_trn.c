/* TRN ("Temporal Resonance Network", openai/parameter-golf PR #669, TemporalResonanceLayer):
 * the fused oscillator core with a hand-written backward, the linear-scan op, and the
 * BigramHash embedding. Notation and derivations: /work/shared/notes/backbones.md §5 and §8.
 *
 * Core, per batch b, position t (0-based inside the window) and oscillator k, from the
 * projection row P = [a | o | p | g | q | e] (each K wide):
 *   A = min(softplus(a), amp_max)           omega = clamp(pi sig(o) + omega_base, 1e-4, pi - 1e-4)
 *   phi = pi tanh(p)    alpha = sig(g)      g_out = sig(q)      beta = sig(e)
 *   theta = omega ln(1 + t) + phi
 *   r_t = alpha r_{t-1} + (1 - alpha) A e^{i theta}            (the scan, kernels/scan.h, R = 2)
 * The PR then erases along the current phase, normalises the state and demodulates:
 *   r <- r - beta Re(r e^{-i theta}) e^{i theta};  r <- r / max(|r|, 1);  rho = r e^{-i theta}.
 * We demodulate first: with z = r e^{-i theta} the erase only scales z's real part, and |r| is
 * invariant under the rotation, so the same three steps are
 *   v = ((1 - beta) z_re, z_im),  n = sqrt(|v|^2 + 1e-8),  rho = v / max(n, 1)
 * (identical in exact arithmetic, fewer operations, and a much shorter backward).
 * Phase-coupled gate (PCG): rho_hat = rho / sqrt(|rho|^2 + 1e-6),
 *   gate = sig(lambda (cos psi rho_hat_re + sin psi rho_hat_im)),  rho <- gate rho.
 * Cross products of neighbours (SCPM): c_k = rho_k rho_{k+1}, k < K - 1.
 * Output row (4K - 2): [g_out rho_re, g_out rho_im, gbar c_re, gbar c_im], gbar_k the mean of
 * g_out at k and k+1. The layer (model/trn.c) applies W_res and then res_scale * warm
 * (op_scale_by), in the PR's order.
 *
 * Backward complex convention (backbones.md): for w = a z, dz = conj(a) dw. */
#include <math.h>
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/reduce.h"
#include "kernels/trn_math.h"
#include "kernels/util.h"

#define PAR_MIN 16384 /* rows*K below which the loops stay on one thread */
#define ROW_BLOCK 16  /* rows per deterministic partial-sum block (fixed: thread-count independent) */
#define OMEGA_LO TRN_OMEGA_LO
#define OMEGA_HI TRN_OMEGA_HI

/* ------------------------------------------------------------------ linear scan op */
static void linear_scan_backward(Tape *tp, TapeEntry *e) {
    Tensor *a = e->in[0], *x = e->in[1];
    size_t B = e->iarg[0], T = e->iarg[1], R = e->iarg[2], C = e->iarg[3];
    ScanKind kind = (ScanKind)e->iarg[4];
    float *da = a->requires_grad ? tensor_grad(tp, a) : arena_calloc(&tp->arena, a->numel, sizeof(float));
    float *dx = x->requires_grad ? tensor_grad(tp, x) : arena_calloc(&tp->arena, x->numel, sizeof(float));
    float *work = arena_alloc(&tp->arena, (scan_workspace_floats(kind, B, T, R, C) + 1) * sizeof(float));
    scan_backward(kind, da, dx, tensor_grad(tp, e->out), a->data, e->out->data, B, T, R, C, work);
}

Tensor *op_linear_scan(Tape *tp, Tensor *a, Tensor *x, ScanKind kind) {
    TERN_CHECK(a->ndim == 3, "linear_scan: a must be [B, T, C]");
    size_t B = a->shape[0], T = a->shape[1], C = a->shape[2], R = 1;
    if (x->ndim == 4) {
        TERN_CHECK(x->shape[0] == B && x->shape[1] == T && x->shape[3] == C, "linear_scan: x must be [B, T, R, C]");
        R = x->shape[2];
    } else {
        TERN_CHECK(tensor_same_shape(a, x), "linear_scan: x must be [B, T, C] or [B, T, R, C]");
    }
    TERN_CHECK((unsigned)kind < SCAN_COUNT, "linear_scan: bad scan kind %d", (int)kind);
    Tensor *h = tensor_new(tp, x->ndim, x->shape);
    float *work = arena_alloc(&tp->arena, (scan_workspace_floats(kind, B, T, R, C) + 1) * sizeof(float));
    scan_forward(kind, h->data, a->data, x->data, B, T, R, C, work);
    Tensor *in[2] = {a, x};
    if (tape_wants_grad(tp, in, 2)) {
        TapeEntry *e = tape_record(tp, "linear_scan", linear_scan_backward, h, in, 2);
        e->iarg[0] = B;
        e->iarg[1] = T;
        e->iarg[2] = R;
        e->iarg[3] = C;
        e->iarg[4] = (size_t)kind;
    }
    return h;
}

/* ------------------------------------------------------------------ TRN core */
typedef struct TrnCtx {
    size_t B, T, K;
    TrnCoreCfg cfg;
    float *lt;                    /* [T] ln(1 + t) */
    float *alpha, *cs, *sn, *gout; /* [B, T, K] */
    float *r;                     /* [B, T, 2, K] scan output (re row, im row) */
    float *rho;                   /* [B, T, 2, K] gated rho (before g_out) */
} TrnCtx;

typedef TrnGate GateChain;
static inline GateChain gate_chain(float rr, float ri, float c, float s, float e_raw, float psi, float lam) {
    return trn_gate_chain(rr, ri, c, s, e_raw, psi, lam, 0);
}

static void trn_core_backward(Tape *tp, TapeEntry *e) {
    Tensor *proj = e->in[0], *ob = e->in[1], *psi = e->in[2], *lam_t = e->in[3];
    TrnCtx *c = e->ctx;
    size_t B = c->B, T = c->T, K = c->K, N = B * T, F = 4 * K - 2, nblk = (N + ROW_BLOCK - 1) / ROW_BLOCK;
    const float *P = proj->data, *PS = psi->data, *dOut = tensor_grad(tp, e->out);
    const float lam = lam_t->data[0], amax = c->cfg.amp_max;
    Arena *ar = &tp->arena;
    float *dP = proj->requires_grad ? tensor_grad(tp, proj) : arena_calloc(ar, proj->numel, sizeof(float));
    float *dpsi = psi->requires_grad ? tensor_grad(tp, psi) : arena_calloc(ar, psi->numel, sizeof(float));
    float *drho = arena_alloc(ar, N * 2 * K * sizeof(float));   /* d(gated rho) */
    float *dgo = arena_alloc(ar, N * K * sizeof(float));        /* d(g_out) */
    float *dr = arena_alloc(ar, N * 2 * K * sizeof(float));     /* d(scan output) */
    float *dth = arena_alloc(ar, N * K * sizeof(float));        /* d(theta) from demodulation */
    float *du = arena_calloc(ar, N * 2 * K, sizeof(float));     /* d(drive) = lam of the scan */
    float *dal = arena_calloc(ar, N * K, sizeof(float));        /* d(alpha) from the scan */
    double *part_lam = arena_calloc(ar, nblk, sizeof(double));
    float *part_ob = arena_calloc(ar, nblk * K, sizeof(float));

    /* 1. features -> gated rho, g_out -> gate chain -> d(scan output), d(theta) */
#pragma omp parallel for schedule(static) if (N * K >= PAR_MIN)
    for (size_t blk = 0; blk < nblk; blk++) {
        size_t r0 = blk * ROW_BLOCK, r1 = r0 + ROW_BLOCK < N ? r0 + ROW_BLOCK : N;
        double acc_lam = 0;
        for (size_t row = r0; row < r1; row++) {
            const float *dO = dOut + row * F, *Pr = P + row * 6 * K, *psr = PS + row * K;
            const float *go = c->gout + row * K, *rr = c->r + row * 2 * K, *ri = rr + K;
            const float *xr = c->rho + row * 2 * K, *xi = xr + K;
            const float *cs = c->cs + row * K, *sn = c->sn + row * K;
            float *dxr = drho + row * 2 * K, *dxi = dxr + K, *dg = dgo + row * K;
            float *drr = dr + row * 2 * K, *dri = drr + K, *dt = dth + row * K;
            float *dPr = dP + row * 6 * K, *dps = dpsi + row * K;
#pragma omp simd
            for (size_t k = 0; k < K; k++) {
                float fr = dO[k], fi = dO[K + k];
                dxr[k] = go[k] * fr;
                dxi[k] = go[k] * fi;
                dg[k] = fr * xr[k] + fi * xi[k];
            }
            /* cross products: contributions to oscillator j, then to j + 1 (two loops so each
             * vectorises without a write conflict) */
            const float *dcr = dO + 2 * K, *dci = dO + 3 * K - 1;
#pragma omp simd
            for (size_t j = 0; j < K - 1; j++) {
                float gb = 0.5f * (go[j] + go[j + 1]);
                float cr = xr[j] * xr[j + 1] - xi[j] * xi[j + 1], ci = xr[j] * xi[j + 1] + xi[j] * xr[j + 1];
                float ur = dcr[j], ui = dci[j];
                float d_re = gb * ur, d_im = gb * ui;
                dg[j] += 0.5f * (ur * cr + ui * ci);
                dxr[j] += xr[j + 1] * d_re + xi[j + 1] * d_im;
                dxi[j] += xr[j + 1] * d_im - xi[j + 1] * d_re;
            }
#pragma omp simd
            for (size_t j = 0; j < K - 1; j++) {
                float gb = 0.5f * (go[j] + go[j + 1]);
                float cr = xr[j] * xr[j + 1] - xi[j] * xi[j + 1], ci = xr[j] * xi[j + 1] + xi[j] * xr[j + 1];
                float ur = dcr[j], ui = dci[j];
                float d_re = gb * ur, d_im = gb * ui;
                dg[j + 1] += 0.5f * (ur * cr + ui * ci);
                dxr[j + 1] += xr[j] * d_re + xi[j] * d_im;
                dxi[j + 1] += xr[j] * d_im - xi[j] * d_re;
            }
            double lam_row = 0;
#pragma omp simd reduction(+ : lam_row)
            for (size_t k = 0; k < K; k++) {
                GateChain gc = gate_chain(rr[k], ri[k], cs[k], sn[k], Pr[5 * K + k], psr[k], lam);
                float p_re = gc.p_re, p_im = gc.p_im, gate = gc.gate, rn = gc.rn, beta = gc.beta;
                float dgate = dxr[k] * p_re + dxi[k] * p_im;
                float dpre = dgate * gate * (1.0f - gate);
                lam_row += (double)dpre * gc.al;
                float dalign = dpre * lam;
                float h_re = p_re * rn, h_im = p_im * rn; /* rho_hat */
                dps[k] += dalign * (h_im * gc.cps - h_re * gc.sps);
                float dh_re = dalign * gc.cps, dh_im = dalign * gc.sps;
                float dot = h_re * dh_re + h_im * dh_im;
                float dp_re = gate * dxr[k] + (dh_re - h_re * dot) * rn;
                float dp_im = gate * dxi[k] + (dh_im - h_im * dot) * rn;
                /* through rho = v / max(n, 1): the normalisation only acts when n > 1 */
                float pd = p_re * dp_re + p_im * dp_im;
                float dv_re = gc.nrm2 > 1.0f ? (dp_re - p_re * pd) * gc.inv : dp_re;
                float dv_im = gc.nrm2 > 1.0f ? (dp_im - p_im * pd) * gc.inv : dp_im;
                float dz_re = (1.0f - beta) * dv_re, dz_im = dv_im;
                dPr[5 * K + k] += -gc.z_re * dv_re * beta * (1.0f - beta);
                dPr[4 * K + k] += dg[k] * go[k] * (1.0f - go[k]);
                drr[k] = cs[k] * dz_re - sn[k] * dz_im;
                dri[k] = sn[k] * dz_re + cs[k] * dz_im;
                dt[k] = gc.z_im * dz_re - gc.z_re * dz_im;
            }
            acc_lam += lam_row;
        }
        part_lam[blk] = acc_lam;
    }

    /* 2. through the recurrence */
    float *work = arena_alloc(ar, (scan_workspace_floats(c->cfg.scan, B, T, 2, K) + 1) * sizeof(float));
    scan_backward(c->cfg.scan, dal, du, dr, c->alpha, c->r, B, T, 2, K, work);

    /* 3. drive and phase -> projection pre-activations, omega_base */
    const float *obv = ob->data;
#pragma omp parallel for schedule(static) if (N * K >= PAR_MIN)
    for (size_t blk = 0; blk < nblk; blk++) {
        size_t r0 = blk * ROW_BLOCK, r1 = r0 + ROW_BLOCK < N ? r0 + ROW_BLOCK : N;
        float *pob = part_ob + blk * K;
        for (size_t row = r0; row < r1; row++) {
            float lt = c->lt[row % T];
            const float *Pr = P + row * 6 * K, *al = c->alpha + row * K, *cs = c->cs + row * K, *sn = c->sn + row * K;
            const float *lr = du + row * 2 * K, *li = lr + K, *da = dal + row * K, *dt = dth + row * K;
            float *dPr = dP + row * 6 * K;
#pragma omp simd
            for (size_t k = 0; k < K; k++) {
                float xa = Pr[k], xo = Pr[K + k], xp = Pr[2 * K + k];
                float sp = trn_softplus(xa), A = sp < amax ? sp : amax;
                float so = fast_sigmoidf(xo), om = TRN_PI * so + obv[k];
                float th = fast_tanhf(xp), a = al[k];
                float pr = lr[k] * cs[k] + li[k] * sn[k];
                float dA = (1.0f - a) * pr;
                float dalpha = da[k] - A * pr;
                float dtheta = dt[k] + (1.0f - a) * A * (li[k] * cs[k] - lr[k] * sn[k]);
                /* torch's clamp passes the gradient on the closed interval */
                float dom = (om >= OMEGA_LO && om <= OMEGA_HI) ? dtheta * lt : 0.0f;
                dPr[k] += sp <= amax ? dA * fast_sigmoidf(xa) : 0.0f;
                dPr[K + k] += dom * TRN_PI * so * (1.0f - so);
                dPr[2 * K + k] += dtheta * TRN_PI * (1.0f - th * th);
                dPr[3 * K + k] += dalpha * a * (1.0f - a);
                pob[k] += dom;
            }
        }
    }

    /* deterministic reductions: blocks in index order */
    if (ob->requires_grad) {
        float *g = tensor_grad(tp, ob);
        for (size_t k = 0; k < K; k++) {
            double s = 0;
            for (size_t blk = 0; blk < nblk; blk++) s += part_ob[blk * K + k];
            g[k] += (float)s;
        }
    }
    if (lam_t->requires_grad) {
        double s = 0;
        for (size_t blk = 0; blk < nblk; blk++) s += part_lam[blk];
        tensor_grad(tp, lam_t)[0] += (float)s;
    }
}

Tensor *op_trn_core(Tape *tp, Tensor *proj, Tensor *omega_base, Tensor *psi, Tensor *lambda,
                    const TrnCoreCfg *cfg) {
    TERN_CHECK(proj->ndim == 3 && proj->shape[2] % 6 == 0, "trn_core: proj must be [B, T, 6K]");
    size_t B = proj->shape[0], T = proj->shape[1], K = proj->shape[2] / 6, N = B * T, F = 4 * K - 2;
    TERN_CHECK(K >= 1, "trn_core: need at least one oscillator");
    TERN_CHECK(omega_base->numel == K, "trn_core: omega_base must have %zu elements", K);
    TERN_CHECK(psi->ndim == 3 && psi->shape[0] == B && psi->shape[1] == T && psi->shape[2] == K,
               "trn_core: psi must be [B, T, K]");
    TERN_CHECK(lambda->numel == 1, "trn_core: lambda is a scalar");
    TERN_CHECK((unsigned)cfg->scan < SCAN_COUNT, "trn_core: bad scan kind");
    Arena *ar = &tp->arena;
    TrnCtx *c = arena_alloc(ar, sizeof *c);
    c->B = B;
    c->T = T;
    c->K = K;
    c->cfg = *cfg;
    c->lt = arena_alloc(ar, T * sizeof(float));
    for (size_t t = 0; t < T; t++) c->lt[t] = (float)log1p((double)t);
    c->alpha = arena_alloc(ar, N * K * sizeof(float));
    c->cs = arena_alloc(ar, N * K * sizeof(float));
    c->sn = arena_alloc(ar, N * K * sizeof(float));
    c->gout = arena_alloc(ar, N * K * sizeof(float));
    c->r = arena_alloc(ar, N * 2 * K * sizeof(float));
    c->rho = arena_alloc(ar, N * 2 * K * sizeof(float));
    float *u = arena_alloc(ar, N * 2 * K * sizeof(float));
    const float *P = proj->data, *obv = omega_base->data, *PS = psi->data;
    const float amax = cfg->amp_max, lam = lambda->data[0];

    /* 1. oscillator parameters and the drive */
#pragma omp parallel for schedule(static) if (N * K >= PAR_MIN)
    for (size_t row = 0; row < N; row++) {
        float lt = c->lt[row % T];
        const float *Pr = P + row * 6 * K;
        float *al = c->alpha + row * K, *cs = c->cs + row * K, *sn = c->sn + row * K;
        float *ur = u + row * 2 * K, *ui = ur + K;
#pragma omp simd
        for (size_t k = 0; k < K; k++) {
            TrnOsc o = trn_oscillator(Pr[k], Pr[K + k], Pr[2 * K + k], Pr[3 * K + k], obv[k], lt, amax, 0);
            al[k] = o.alpha;
            cs[k] = o.cs;
            sn[k] = o.sn;
            ur[k] = o.u_re;
            ui[k] = o.u_im;
        }
    }

    /* 2. the recurrence, real and imaginary parts sharing alpha */
    float *work = arena_alloc(ar, (scan_workspace_floats(cfg->scan, B, T, 2, K) + 1) * sizeof(float));
    scan_forward(cfg->scan, c->r, c->alpha, u, B, T, 2, K, work);

    /* 3. erase, state norm, demodulation, phase gate, cross products, readout features */
    Tensor *out = tensor_new3(tp, B, T, F);
#pragma omp parallel for schedule(static) if (N * K >= PAR_MIN)
    for (size_t row = 0; row < N; row++) {
        const float *Pr = P + row * 6 * K, *psr = PS + row * K;
        const float *rr = c->r + row * 2 * K, *ri = rr + K, *cs = c->cs + row * K, *sn = c->sn + row * K;
        float *xr = c->rho + row * 2 * K, *xi = xr + K, *go = c->gout + row * K, *o = out->data + row * F;
        trn_readout(o, xr, xi, go, rr, ri, cs, sn, Pr, psr, lam, K, 0);
    }

    Tensor *in[4] = {proj, omega_base, psi, lambda};
    if (tape_wants_grad(tp, in, 4)) {
        TapeEntry *e = tape_record(tp, "trn_core", trn_core_backward, out, in, 4);
        e->ctx = c;
    }
    return out;
}

/* ------------------------------------------------------------------ scale by a scalar parameter */
static void scale_by_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *s = e->in[1];
    const float *g = tensor_grad(tp, e->out);
    float k = e->farg[0], f = s->data[0] * k;
    size_t n = x->numel;
    if (x->requires_grad) {
        float *gx = tensor_grad(tp, x);
#pragma omp parallel for simd schedule(static) if (n >= 4 * PAR_MIN)
        for (size_t i = 0; i < n; i++) gx[i] += f * g[i];
    }
    /* a sum over every element: double chunks in a fixed order (kernels/reduce.h) */
    if (s->requires_grad) tensor_grad(tp, s)[0] += (float)(k * reduce_dot(g, x->data, n));
}

Tensor *op_scale_by(Tape *tp, Tensor *x, Tensor *s, float k) {
    TERN_CHECK(s->numel == 1, "scale_by: s must have one element");
    Tensor *out = tensor_new(tp, x->ndim, x->shape);
    float f = s->data[0] * k;
    size_t n = x->numel;
    const float *xv = x->data;
    float *o = out->data;
#pragma omp parallel for simd schedule(static) if (n >= 4 * PAR_MIN)
    for (size_t i = 0; i < n; i++) o[i] = f * xv[i];
    Tensor *in[2] = {x, s};
    if (tape_wants_grad(tp, in, 2)) {
        TapeEntry *e = tape_record(tp, "scale_by", scale_by_backward, out, in, 2);
        e->farg[0] = k;
    }
    return out;
}

/* ------------------------------------------------------------------ BigramHash
 * kernels/trn_math.h trn_bigram_bucket: the parameter-golf BigramHashEmbedding's buckets. */
void bigram_hash_indices(int32_t *idx, const int32_t *tok, size_t B, size_t T, size_t rows) {
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            size_t i = b * T + t;
            idx[i] = (int32_t)trn_bigram_bucket(tok[i], t ? tok[i - 1] : 0, t == 0, rows);
        }
}

Tensor *op_bigram_hash(Tape *tp, Tensor *table, Tensor *proj, Tensor *scale, const int32_t *tok, size_t B,
                       size_t T) {
    TERN_CHECK(table->ndim == 2 && proj->ndim == 2 && proj->shape[1] == table->shape[1],
               "bigram_hash: table [rows, db] and proj [d, db] expected");
    TERN_CHECK(scale->numel == 1, "bigram_hash: scale must be a scalar");
    size_t rows = table->shape[0], db = table->shape[1];
    int32_t *idx = arena_alloc(&tp->arena, B * T * sizeof(int32_t));
    bigram_hash_indices(idx, tok, B, T, rows);
    Tensor *e = op_embedding(tp, table, idx, B * T, 3, (size_t[]){B, T, db});
    return op_scale_by(tp, op_linear(tp, e, proj, NULL), scale, 1.0f);
}
