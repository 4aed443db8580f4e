/* mlstm.c — the mLSTM cell's chunkwise / parallel kernels and the recurrent reference
 * (kernels/mlstm.h). Notation of one chunk of n tokens (local index i, j), state (S, mp) entering
 * it, S = [C | n] [D][W], W = D + 1, V' = [V | 1]:
 *   b_i = sum_{s<=i} lf_s               (cumulative log forget inside the chunk)
 *   w_j = ig_j - b_j                    (log weight of token j, up to b_i)
 *   M_i = max(mp, max_{j<=i} w_j)       m_i = b_i + M_i (= the recurrent m_t exactly)
 *   Dm_ij = e^{w_j - M_i} (j <= i)      a_i = e^{mp - M_i}      (both <= 1)
 *   O = diag(a) Q S + (s Q K^T ⊙ Dm) V'    (s = 1/sqrt(D); O = [num | nq])
 *   h_i = num_i / den(nq_i, m_i)
 *   S_next = a_{n-1} S + s K^T diag(Dm_{n-1,.}) V',  mp_next = m_{n-1}
 * Backward with the stabilisers held constant (exact: the output does not depend on them), from
 * dO = [dh / den | sign(nq) dden] and the gradient dS of the next state:
 *   G = (dO V'^T) ⊙ Dm,  E = G ⊙ sQK^T        dQ = s G K + diag(a) dO S^T
 *   dK = s G^T Q + s diag(Dm_{n-1}) V' dS^T    dV' = (sQK^T ⊙ Dm)^T dO + s diag(Dm_{n-1}) K dS
 *   d log-weights: E_ij moves b_i (+) and b_j, ig_j (-, +); a_i moves b_i by e_i = Q_i . dQinter_i;
 *   the state's terms move ig_j, b_j by u_j = K_j . dKstate_j and the chunk total g = b_{n-1} by
 *   sum_j u_j + a_{n-1} <dS, S>;  dlf = reverse cumsum of db;  dS_prev = a_{n-1} dS + Q^T diag(a) dO. */
#include "kernels/mlstm.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/fastmath.h"
#include "kernels/gemm_small.h"
#include "kernels/mlstm_math.h"
#include "kernels/util.h"

const char *mlstm_form_name(MlstmForm f) {
    static const char *const n[] = {"chunkwise", "parallel", "recurrent"};
    return (unsigned)f < MLSTM_FORM_COUNT ? n[f] : "?";
}

int mlstm_form_from_name(const char *s) {
    for (int f = 0; f < MLSTM_FORM_COUNT; f++)
        if (!strcmp(s, mlstm_form_name((MlstmForm)f))) return f;
    return -1;
}

static size_t chunk_len(MlstmForm f, const MlstmShape *s) {
    size_t L = f == MLSTM_PARALLEL || s->L > s->T ? s->T : s->L;
    return L ? L : 1;
}

/* per (b, h): NC states + NC stabilisers, then m_t and nq_t of every token */
static size_t per_head_saved(size_t NC, const MlstmShape *s) { return NC * (s->D * (s->D + 1) + 1) + 2 * s->T; }

size_t mlstm_saved_floats(MlstmForm f, const MlstmShape *s) {
    size_t L = chunk_len(f, s), NC = (s->T + L - 1) / L;
    return s->B * s->H * per_head_saved(NC, s);
}

static size_t chunk_work(size_t L, size_t D) {
    size_t W = D + 1;
    return 3 * L * L + 4 * L * W + L * D + D * W + 12 * L;
}
static size_t rec_work(size_t L, size_t D) { return (L + 2) * D * (D + 1) + 2 * (D + 1); }

size_t mlstm_work_floats(MlstmForm f, const MlstmShape *s, int max_threads) {
    size_t L = chunk_len(f, s);
    size_t per = f == MLSTM_RECURRENT ? rec_work(L, s->D) : chunk_work(L, s->D);
    return (size_t)(max_threads > 0 ? max_threads : 1) * per;
}

/* Views of one (b, h): rows of q/k/v/h at stride H D, gates at stride H. */
typedef struct HeadView {
    size_t ld, T, D, L, NC;
    size_t row0, g0;   /* offsets of (b, 0, h) in the row and gate arrays */
    float *Sst, *mpst, *mt, *nqt; /* its saved states, their stabilisers, m_t, nq_t */
} HeadView;

static HeadView head_view(const MlstmShape *s, size_t L, size_t bh, const float *saved) {
    HeadView v;
    size_t b = bh / s->H, h = bh % s->H, W = s->D + 1;
    v.ld = s->H * s->D;
    v.T = s->T;
    v.D = s->D;
    v.L = L;
    v.NC = (s->T + L - 1) / L;
    v.row0 = b * s->T * v.ld + h * s->D;
    v.g0 = b * s->T * s->H + h;
    float *base = (float *)saved + bh * per_head_saved(v.NC, s);
    v.Sst = base;
    v.mpst = base + v.NC * s->D * W;
    v.mt = v.mpst + v.NC;
    v.nqt = v.mt + s->T;
    return v;
}

/* ------------------------------------------------------------------ chunkwise / parallel */
typedef struct ChunkGates {
    float *b, *w, *M, *a; /* [n] each */
} ChunkGates;

static void chunk_gates(ChunkGates *g, const float *ig, const float *fg, size_t H, size_t n, float mp, int expf_gate) {
    float acc = 0.0f, pm = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        acc += mlstm_log_forget(fg[i * H], expf_gate);
        g->b[i] = acc;
        g->w[i] = ig[i * H] - acc;
        pm = g->w[i] > pm ? g->w[i] : pm;
        g->M[i] = mp > pm ? mp : pm;
        g->a[i] = expf(mp - g->M[i]);
    }
}

typedef struct ChunkBufs {
    float *S, *G, *PT, *Vp, *dO, *dVp, *tW, *tD, *dS;
    float *b, *w, *M, *a, *rowE, *colE, *e, *u, *wl, *db;
} ChunkBufs;

static ChunkBufs chunk_bufs(float *p, size_t L, size_t D) {
    size_t W = D + 1;
    ChunkBufs c;
    c.S = p, p += L * L;
    c.G = p, p += L * L;
    c.PT = p, p += L * L;
    c.Vp = p, p += L * W;
    c.dO = p, p += L * W;
    c.dVp = p, p += L * W;
    c.tW = p, p += L * W;
    c.tD = p, p += L * D;
    c.dS = p, p += D * W;
    float **v[] = {&c.b, &c.w, &c.M, &c.a, &c.rowE, &c.colE, &c.e, &c.u, &c.wl, &c.db};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) *v[i] = p, p += L;
    return c;
}

/* V' = [V | 1] of n rows */
static void gather_vp(float *Vp, const float *V, size_t ld, size_t n, size_t D) {
    for (size_t i = 0; i < n; i++) {
        memcpy(Vp + i * (D + 1), V + i * ld, D * sizeof(float));
        Vp[i * (D + 1) + D] = 1.0f;
    }
}

/* P = sQK^T ⊙ Dm in place over the n x n scores (zero above the diagonal) */
static void decay_scores(float *P, const ChunkGates *g, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float *p = P + i * n, Mi = g->M[i];
#pragma omp simd
        for (size_t j = 0; j <= i; j++) p[j] *= fast_expf(g->w[j] - Mi);
        for (size_t j = i + 1; j < n; j++) p[j] = 0.0f;
    }
}

static void chunk_forward_head(float *h, const float *q, const float *k, const float *v, const float *ig, const float *fg,
                               const HeadView *hv, int expf_gate, float *work) {
    size_t D = hv->D, W = D + 1, ld = hv->ld;
    float sc = 1.0f / sqrtf((float)D);
    ChunkBufs c = chunk_bufs(work, hv->L, D);
    ChunkGates g = {c.b, c.w, c.M, c.a};
    float *St = c.dS, *Num = c.tW, mp = MLSTM_M0;
    memset(St, 0, D * W * sizeof(float));
    for (size_t ch = 0; ch < hv->NC; ch++) {
        size_t t0 = ch * hv->L, n = TERN_MIN(hv->L, hv->T - t0), r0 = hv->row0 + t0 * ld;
        memcpy(hv->Sst + ch * D * W, St, D * W * sizeof(float));
        hv->mpst[ch] = mp;
        chunk_gates(&g, ig + hv->g0 + t0 * (ld / D), fg + hv->g0 + t0 * (ld / D), ld / D, n, mp, expf_gate);
        const float *Q = q + r0, *K = k + r0;
        gather_vp(c.Vp, v + r0, ld, n, D);
        gemm_small_tri(0, 1, GEMM_C_LOWER, n, n, D, sc, Q, ld, K, ld, 0.0f, c.S, n);
        decay_scores(c.S, &g, n);
        gemm_small(0, 0, n, W, D, 1.0f, Q, ld, St, W, 0.0f, Num, W);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < W; j++) Num[i * W + j] *= g.a[i];
        gemm_small_tri(0, 0, GEMM_A_LOWER, n, W, n, 1.0f, c.S, n, c.Vp, W, 1.0f, Num, W);
        for (size_t i = 0; i < n; i++) {
            float m = g.b[i] + g.M[i], nq = Num[i * W + D], inv = 1.0f / mlstm_den(nq, m);
            float *hr = h + r0 + i * ld;
            for (size_t j = 0; j < D; j++) hr[j] = Num[i * W + j] * inv;
            hv->mt[t0 + i] = m;
            hv->nqt[t0 + i] = nq;
        }
        if (ch + 1 == hv->NC) break;
        for (size_t j = 0; j < n; j++) {
            float wj = expf(g.w[j] - g.M[n - 1]);
            for (size_t col = 0; col < W; col++) c.Vp[j * W + col] *= wj;
        }
        gemm_small(1, 0, D, W, n, sc, K, ld, c.Vp, W, g.a[n - 1], St, W);
        mp = g.b[n - 1] + g.M[n - 1];
    }
}

/* dO = [dh / den | sign(nq) dden] for the chunk's rows */
static void chunk_dout(float *dO, const float *dh, const float *h, const HeadView *hv, size_t t0, size_t n, size_t r0) {
    size_t D = hv->D, W = D + 1;
    for (size_t i = 0; i < n; i++) {
        const float *dr = dh + r0 + i * hv->ld, *hr = h + r0 + i * hv->ld;
        float m = hv->mt[t0 + i], nq = hv->nqt[t0 + i], den = mlstm_den(nq, m), inv = 1.0f / den, dd = 0.0f;
#pragma omp simd reduction(+ : dd)
        for (size_t j = 0; j < D; j++) {
            dO[i * W + j] = dr[j] * inv;
            dd += dr[j] * hr[j];
        }
        dO[i * W + D] = mlstm_dden_dnq(nq, m) * (-dd * inv);
    }
}

/* G = (dO V'^T) ⊙ Dm, PT = sQK^T ⊙ Dm, E = G ⊙ sQK^T summed by rows and columns */
static void chunk_decay_grads(ChunkBufs *c, const ChunkGates *g, size_t n) {
    float *colE = c->colE;
    for (size_t i = 0; i < n; i++) colE[i] = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float *G = c->G + i * n, *P = c->PT + i * n;
        const float *S = c->S + i * n, *w = g->w;
        float Mi = g->M[i], re = 0.0f;
#pragma omp simd reduction(+ : re)
        for (size_t j = 0; j <= i; j++) {
            float dm = fast_expf(w[j] - Mi), gij = G[j] * dm, e = gij * S[j];
            G[j] = gij;
            P[j] = S[j] * dm;
            re += e;
            colE[j] += e;
        }
        for (size_t j = i + 1; j < n; j++) G[j] = P[j] = 0.0f;
        c->rowE[i] = re;
    }
}

static float dot(const float *a, const float *b, size_t n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* The gate gradients of one chunk from the log-weight sensitivities (see the header comment). */
static void chunk_gate_grads(float *dig, float *dfg, const float *fg, size_t H, const ChunkBufs *c, size_t n, float dg_state,
                             int expf_gate) {
    float dg = dg_state;
    for (size_t j = 0; j < n; j++) {
        c->db[j] = c->rowE[j] - c->colE[j] + c->e[j] - c->u[j];
        dig[j * H] += c->colE[j] + c->u[j];
        dg += c->u[j];
    }
    c->db[n - 1] += dg;
    float acc = 0.0f;
    for (size_t j = n; j-- > 0;) {
        acc += c->db[j];
        dfg[j * H] += acc * mlstm_dlog_forget(fg[j * H], expf_gate);
    }
}

static void chunk_backward_head(float *dq, float *dk, float *dv, float *dig, float *dfg, const float *dh, const float *h,
                                const float *q, const float *k, const float *v, const float *ig, const float *fg,
                                const HeadView *hv, int expf_gate, float *work) {
    size_t D = hv->D, W = D + 1, ld = hv->ld, H = ld / D;
    float sc = 1.0f / sqrtf((float)D);
    ChunkBufs c = chunk_bufs(work, hv->L, D);
    ChunkGates g = {c.b, c.w, c.M, c.a};
    memset(c.dS, 0, D * W * sizeof(float));
    for (size_t ch = hv->NC; ch-- > 0;) {
        size_t t0 = ch * hv->L, n = TERN_MIN(hv->L, hv->T - t0), r0 = hv->row0 + t0 * ld, g0 = hv->g0 + t0 * H;
        const float *St = hv->Sst + ch * D * W, *Q = q + r0, *K = k + r0;
        int last = ch + 1 == hv->NC;
        chunk_gates(&g, ig + g0, fg + g0, H, n, hv->mpst[ch], expf_gate);
        gather_vp(c.Vp, v + r0, ld, n, D);
        chunk_dout(c.dO, dh, h, hv, t0, n, r0);
        gemm_small_tri(0, 1, GEMM_C_LOWER, n, n, D, sc, Q, ld, K, ld, 0.0f, c.S, n); /* upper triangles: */
        gemm_small_tri(0, 1, GEMM_C_LOWER, n, n, W, 1.0f, c.dO, W, c.Vp, W, 0.0f, c.G, n); /* never read */
        chunk_decay_grads(&c, &g, n);
        /* dQ: the inter-chunk part diag(a) dO S^T (and e_i), then s G K */
        gemm_small(0, 1, n, D, W, 1.0f, c.dO, W, St, W, 0.0f, c.tD, D);
        for (size_t i = 0; i < n; i++) {
            float *t = c.tD + i * D, *dqr = dq + r0 + i * ld;
            for (size_t j = 0; j < D; j++) t[j] *= g.a[i];
            c.e[i] = dot(Q + i * ld, t, D);
            for (size_t j = 0; j < D; j++) dqr[j] += t[j];
        }
        gemm_small_tri(0, 0, GEMM_A_LOWER, n, D, n, sc, c.G, n, K, ld, 1.0f, dq + r0, ld);
        gemm_small_tri(1, 0, GEMM_A_UPPER, n, D, n, sc, c.G, n, Q, ld, 1.0f, dk + r0, ld);
        gemm_small_tri(1, 0, GEMM_A_UPPER, n, W, n, 1.0f, c.PT, n, c.dO, W, 0.0f, c.dVp, W);
        float r = 0.0f;
        if (!last) { /* the state this chunk passed on: weights wl_j = Dm_{n-1, j} */
            gemm_small(0, 1, n, D, W, sc, c.Vp, W, c.dS, W, 0.0f, c.tD, D);
            gemm_small(0, 0, n, W, D, sc, K, ld, c.dS, W, 0.0f, c.tW, W);
            for (size_t j = 0; j < n; j++) {
                float wl = expf(g.w[j] - g.M[n - 1]), *t = c.tD + j * D, *dkr = dk + r0 + j * ld;
                c.u[j] = wl * dot(K + j * ld, t, D);
                for (size_t i = 0; i < D; i++) dkr[i] += wl * t[i];
                for (size_t i = 0; i < W; i++) c.dVp[j * W + i] += wl * c.tW[j * W + i];
            }
            r = g.a[n - 1] * dot(c.dS, St, D * W);
        } else {
            memset(c.u, 0, n * sizeof(float));
        }
        for (size_t j = 0; j < n; j++) {
            float *dvr = dv + r0 + j * ld;
            for (size_t i = 0; i < D; i++) dvr[i] += c.dVp[j * W + i];
        }
        chunk_gate_grads(dig + g0, dfg + g0, fg + g0, H, &c, n, r, expf_gate);
        /* dS of the state entering this chunk */
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < W; j++) c.dO[i * W + j] *= g.a[i];
        gemm_small(1, 0, D, W, n, 1.0f, Q, ld, c.dO, W, g.a[n - 1], c.dS, W);
    }
}

/* ------------------------------------------------------------------ recurrent reference */
static void rec_forward_head(float *h, const float *q, const float *k, const float *v, const float *ig, const float *fg,
                             const HeadView *hv, int expf_gate, float *work) {
    size_t D = hv->D, W = D + 1, ld = hv->ld, H = ld / D;
    float *S = work, m = MLSTM_M0;
    memset(S, 0, D * W * sizeof(float));
    for (size_t t = 0; t < hv->T; t++) {
        if (t % hv->L == 0) {
            memcpy(hv->Sst + (t / hv->L) * D * W, S, D * W * sizeof(float));
            hv->mpst[t / hv->L] = m;
        }
        size_t r = hv->row0 + t * ld, gi = hv->g0 + t * H;
        mlstm_step(S, &m, h + r, q + r, k + r, v + r, ig[gi], mlstm_log_forget(fg[gi], expf_gate), D, &hv->nqt[t]);
        hv->mt[t] = m;
    }
}

/* one token backward: dS (the carry, gradient of S_t) -> of S_{t-1}; Sp = S_{t-1}, Sc = S_t */
static void rec_backward_token(float *dq, float *dk, float *dv, float *dig, float *dfg, float *dS, float *dO, const float *dh,
                               const float *hr, const float *qr, const float *kr, const float *vr, float igv, float fgv,
                               const float *Sp, const float *Sc, float m_prev, float m, float nq, size_t D, int expf_gate) {
    size_t W = D + 1;
    float den = mlstm_den(nq, m), dd = 0.0f;
    for (size_t j = 0; j < D; j++) {
        dO[j] = dh[j] / den;
        dd += dh[j] * hr[j];
    }
    dO[D] = mlstm_dden_dnq(nq, m) * (-dd / den);
    float lf = mlstm_log_forget(fgv, expf_gate), fp = expf(lf + m_prev - m), ip = expf(igv - m) / sqrtf((float)D);
    float dgi = 0.0f, dlf = 0.0f;
    for (size_t i = 0; i < D; i++) {
        float *ds = dS + i * W, acc = 0.0f, dkk = 0.0f;
        const float *sc = Sc + i * W, *sp = Sp + i * W;
        for (size_t j = 0; j < W; j++) {
            acc += sc[j] * dO[j];
            ds[j] += qr[i] * dO[j];
            dkk += ds[j] * (j < D ? vr[j] : 1.0f);
            dlf += ds[j] * sp[j];
        }
        dq[i] += acc;
        dk[i] += ip * dkk;
        dgi += ip * kr[i] * dkk;
        for (size_t j = 0; j < D; j++) dv[j] += ip * kr[i] * ds[j];
        for (size_t j = 0; j < W; j++) ds[j] *= fp;
    }
    *dig += dgi;
    *dfg += fp * dlf * mlstm_dlog_forget(fgv, expf_gate);
}

static void rec_backward_head(float *dq, float *dk, float *dv, float *dig, float *dfg, const float *dh, const float *h,
                              const float *q, const float *k, const float *v, const float *ig, const float *fg,
                              const HeadView *hv, int expf_gate, float *work) {
    size_t D = hv->D, W = D + 1, ld = hv->ld, H = ld / D;
    float *dS = work, *dO = dS + D * W, *hs = dO + W, *Sb = hs + W; /* Sb: L + 1 states */
    memset(dS, 0, D * W * sizeof(float));
    for (size_t ch = hv->NC; ch-- > 0;) {
        size_t t0 = ch * hv->L, n = TERN_MIN(hv->L, hv->T - t0);
        memcpy(Sb, hv->Sst + ch * D * W, D * W * sizeof(float));
        float m = hv->mpst[ch];
        for (size_t i = 0; i < n; i++) { /* recompute the segment's states */
            size_t r = hv->row0 + (t0 + i) * ld, gi = hv->g0 + (t0 + i) * H;
            memcpy(Sb + (i + 1) * D * W, Sb + i * D * W, D * W * sizeof(float));
            mlstm_step(Sb + (i + 1) * D * W, &m, hs, q + r, k + r, v + r, ig[gi], mlstm_log_forget(fg[gi], expf_gate), D, NULL);
        }
        for (size_t i = n; i-- > 0;) {
            size_t t = t0 + i, r = hv->row0 + t * ld, gi = hv->g0 + t * H;
            float mprev = t ? hv->mt[t - 1] : MLSTM_M0;
            rec_backward_token(dq + r, dk + r, dv + r, dig + gi, dfg + gi, dS, dO, dh + r, h + r, q + r, k + r, v + r, ig[gi],
                               fg[gi], Sb + i * D * W, Sb + (i + 1) * D * W, mprev, hv->mt[t], hv->nqt[t], D, expf_gate);
        }
    }
}

/* ------------------------------------------------------------------ entry points */
void mlstm_forward(MlstmForm f, float *h, float *saved, const float *q, const float *k, const float *v, const float *ig,
                   const float *fg, const MlstmShape *s, float *work) {
    size_t L = chunk_len(f, s), per = mlstm_work_floats(f, s, 1), nbh = s->B * s->H;
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t bh = 0; bh < nbh; bh++) {
        HeadView hv = head_view(s, L, bh, saved);
        float *w = work + (size_t)omp_get_thread_num() * per;
        if (f == MLSTM_RECURRENT) rec_forward_head(h, q, k, v, ig, fg, &hv, s->exp_forget, w);
        else chunk_forward_head(h, q, k, v, ig, fg, &hv, s->exp_forget, w);
    }
}

void mlstm_backward(MlstmForm f, float *dq, float *dk, float *dv, float *dig, float *dfg, const float *dh, const float *h,
                    const float *saved, const float *q, const float *k, const float *v, const float *ig, const float *fg,
                    const MlstmShape *s, float *work) {
    size_t L = chunk_len(f, s), per = mlstm_work_floats(f, s, 1), nbh = s->B * s->H;
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t bh = 0; bh < nbh; bh++) {
        HeadView hv = head_view(s, L, bh, saved);
        float *w = work + (size_t)omp_get_thread_num() * per;
        if (f == MLSTM_RECURRENT) rec_backward_head(dq, dk, dv, dig, dfg, dh, h, q, k, v, ig, fg, &hv, s->exp_forget, w);
        else chunk_backward_head(dq, dk, dv, dig, dfg, dh, h, q, k, v, ig, fg, &hv, s->exp_forget, w);
    }
}
