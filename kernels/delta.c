/* delta.c — the gated delta rule over sequences: the per-token recurrence (the reference) and
 * the chunkwise WY / UT form, forward and backward. Equations and memory: delta.h. */
#include "kernels/delta.h"

#include <string.h>

#include "kernels/gdn_math.h"
#include "kernels/gemm_small.h"

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() omp_get_thread_num()
#define MAX_THREADS() omp_get_max_threads()
#else
#define THREAD_ID() 0
#define MAX_THREADS() 1
#endif

static size_t pad16(size_t n) { return (n + 15) / 16 * 16; }

int gdn_kernel_from_name(const char *s) {
    if (!strcmp(s, "chunked")) return GDN_CHUNKED;
    if (!strcmp(s, "recurrent")) return GDN_RECURRENT;
    return -1;
}

const char *gdn_kernel_name(GdnKernel k) { return k == GDN_RECURRENT ? "recurrent" : "chunked"; }

static size_t nchunks(const GdnShape *s, size_t L) { return (s->T + L - 1) / L; }

/* Where (batch b, head h) starts in each array, and the row strides. */
typedef struct Lane {
    size_t q, v, g;    /* offsets of token 0 in q/k, v/o, g/beta */
    size_t sq, sv, sg; /* strides between tokens */
} Lane;

static Lane lane(const GdnShape *s, size_t task) {
    size_t b = task / s->H, h = task % s->H, row = b * s->T * s->H + h;
    Lane l = {row * s->dk, row * s->dv, row, s->H * s->dk, s->H * s->dv, s->H};
    return l;
}

/* ------------------------------------------------------------------ recurrent reference */

static size_t rec_task_floats(const GdnShape *s) { return pad16(s->T * s->dk * s->dv) + 2 * pad16(s->dk * s->dv) + 4 * pad16(s->dv); }

static void rec_forward_task(float *o, const float *q, const float *k, const float *v, const float *g, const float *beta,
                             const GdnShape *s, Lane l, float *w) {
    size_t dk = s->dk, dv = s->dv;
    float *S = w, *u = w + pad16(dk * dv);
    memset(S, 0, dk * dv * sizeof(float));
    for (size_t t = 0; t < s->T; t++)
        gdn_step(S, o + l.v + t * l.sv, q + l.q + t * l.sq, k + l.q + t * l.sq, v + l.v + t * l.sv, g[l.g + t * l.sg],
                 beta[l.g + t * l.sg], dk, dv, u);
}

/* One reverse step t (backbones.md §2.3, unscaled error e = v - alpha Sp^T k):
 *   dq += S_t do;  dS += q do^T;  dSk = dS^T k;  dbeta += e . dSk;  dv += beta dSk;
 *   dk += beta dS e - alpha Sp (beta dSk);  dS_hat = dS - k (beta dSk)^T;
 *   dg += alpha <dS_hat, Sp>;  dS <- alpha dS_hat */
static void rec_backward_step(float *dq, float *dkt, float *dvt, float *dg, float *db, const float *dO, const float *St,
                              const float *Sp, const float *q, const float *k, const float *v, float gt, float bt, float *dS,
                              float *err, float *dSk, size_t dk, size_t dv) {
    float a = fast_expf(gt);
    for (size_t j = 0; j < dv; j++) err[j] = dSk[j] = 0.0f;
    for (size_t i = 0; i < dk; i++) {
        const float *sp = Sp + i * dv, *st = St + i * dv;
        float *ds = dS + i * dv;
        float acc = 0.0f, ki = k[i], qi = q[i];
        for (size_t j = 0; j < dv; j++) {
            acc += st[j] * dO[j];
            err[j] += sp[j] * ki;
            ds[j] += qi * dO[j];
            dSk[j] += ds[j] * ki;
        }
        dq[i] += acc;
    }
    float dbeta = 0.0f;
    for (size_t j = 0; j < dv; j++) {
        err[j] = v[j] - a * err[j];
        dbeta += err[j] * dSk[j];
        dSk[j] *= bt; /* now beta dS^T k */
        dvt[j] += dSk[j];
    }
    *db += dbeta;
    float dgt = 0.0f;
    for (size_t i = 0; i < dk; i++) {
        const float *sp = Sp + i * dv;
        float *ds = dS + i * dv;
        float x1 = 0.0f, x2 = 0.0f, ki = k[i], gsum = 0.0f;
        for (size_t j = 0; j < dv; j++) {
            x1 += ds[j] * err[j];
            x2 += sp[j] * dSk[j];
            float dh = ds[j] - ki * dSk[j];
            gsum += dh * sp[j];
            ds[j] = a * dh;
        }
        dkt[i] += bt * x1 - a * x2;
        dgt += gsum;
    }
    *dg += a * dgt;
}

static void rec_backward_task(float *dq, float *dk, float *dv, float *dg, float *db, const float *dout, const float *q,
                              const float *k, const float *v, const float *g, const float *beta, const GdnShape *s, Lane l,
                              float *w) {
    size_t DK = s->dk, DV = s->dv, T = s->T, n = DK * DV;
    float *states = w, *zero = w + pad16(T * n), *dS = zero + pad16(n), *u = dS + pad16(n);
    float *err = u + pad16(DV), *dSk = err + pad16(DV), *o = dSk + pad16(DV);
    memset(zero, 0, n * sizeof(float));
    memset(dS, 0, n * sizeof(float));
    for (size_t t = 0; t < T; t++) {
        float *St = states + t * n;
        memcpy(St, t ? St - n : zero, n * sizeof(float));
        gdn_step(St, o, q + l.q + t * l.sq, k + l.q + t * l.sq, v + l.v + t * l.sv, g[l.g + t * l.sg], beta[l.g + t * l.sg],
                 DK, DV, u);
    }
    for (size_t t = T; t-- > 0;) {
        size_t iq = l.q + t * l.sq, iv = l.v + t * l.sv, ig = l.g + t * l.sg;
        rec_backward_step(dq + iq, dk + iq, dv + iv, dg + ig, db + ig, dout + iv, states + t * n, t ? states + (t - 1) * n : zero,
                          q + iq, k + iq, v + iv, g[ig], beta[ig], dS, err, dSk, DK, DV);
    }
}

/* ------------------------------------------------------------------ chunked WY / UT form */

/* One chunk's scratch (per task). */
typedef struct ChunkBuf {
    float *gam, *e, *dgam;      /* [L] cumulative log-decay, e^gamma, its gradient */
    float *qk;                  /* [2L, dk] the chunk's q rows, then its k rows, contiguous */
    float *ks, *u;              /* [L, dv] K S0, the errors U (X before the solve) */
    float *E, *PF, *A;          /* [L, L] e^{gamma_i - gamma_j} (i >= j); [2L, L] P = (Q K^T) (.) E (i >= j)
                                 * over F = (K K^T) (.) E (i > j); A = beta_i F_ij */
    float *kd;                  /* [L, dk] e^{gamma_L - gamma_j} k_j */
    float *S, *dS;              /* [dk, dv] running state (forward) / its gradient (backward) */
    float *dSn, *du, *dP, *tmp, *dks, *doe, *dM; /* backward */
} ChunkBuf;

static size_t chunk_task_floats(const GdnShape *s, size_t L) {
    size_t dk = s->dk, dv = s->dv;
    return 3 * pad16(L) + pad16(2 * L * dk) + 5 * pad16(L * dv) + 4 * pad16(L * L) + pad16(2 * L * L) + 2 * pad16(L * dk) +
           3 * pad16(dk * dv);
}

static ChunkBuf chunk_buf(float *w, const GdnShape *s, size_t L) {
    size_t dk = s->dk, dv = s->dv;
    ChunkBuf c;
    float *p = w;
#define TAKE(dst, n) (dst = p, p += pad16(n))
    TAKE(c.gam, L), TAKE(c.e, L), TAKE(c.dgam, L), TAKE(c.qk, 2 * L * dk);
    TAKE(c.ks, L * dv), TAKE(c.u, L * dv), TAKE(c.du, L * dv), TAKE(c.dks, L * dv), TAKE(c.doe, L * dv);
    TAKE(c.E, L * L), TAKE(c.PF, 2 * L * L), TAKE(c.A, L * L), TAKE(c.dP, L * L), TAKE(c.dM, L * L);
    TAKE(c.kd, L * dk), TAKE(c.tmp, L * dk);
    TAKE(c.S, dk * dv), TAKE(c.dS, dk * dv), TAKE(c.dSn, dk * dv);
#undef TAKE
    return c;
}

/* The two triangular solves of the UT transform, in place on X [L, n] (rows of n) with A [L, L]
 * strictly lower: (I + A) U = X (U_i = X_i - sum_{j<i} A_ij U_j) and its transpose (I + A)^T Y = X
 * (Y_i = X_i - sum_{j>i} A_ji Y_j). Four rows at a time against the finished rows, sixteen columns
 * kept in registers (a row-at-a-time axpy reloads and stores its row for every j), then the
 * 4 x 4 triangle inside the block. */
#define SB 4  /* rows per block */
#define SW 16 /* columns per strip */
typedef float v16f __attribute__((vector_size(SW * sizeof(float)))); /* GCC vector extension: any ISA */

/* through a pointer, not a return value: a 64-byte vector return changes the ABI without AVX-512 */
static inline void load16(v16f *v, const float *p) { memcpy(v, p, sizeof *v); }

/* coefficient of finished row j in row i0 + a: A_{i0+a, j} (forward) or A_{j, i0+a} (transposed) */
static inline float solve_coef(const float *A, size_t L, size_t row, size_t j, int t) { return t ? A[j * L + row] : A[row * L + j]; }

/* rows i0 .. i0 + r - 1, columns m0 .. m0 + w - 1 of the solve (w = SW: in vector registers) */
static void solve_strip(float *X, const float *A, size_t L, size_t n, size_t i0, size_t r, size_t m0, size_t w, int t) {
    size_t j0 = t ? i0 + r : 0, j1 = t ? L : i0;
    if (w == SW) {
        v16f acc[SB];
        for (size_t a = 0; a < SB; a++) {
            acc[a] = (v16f){0};
            if (a < r) load16(&acc[a], X + (i0 + a) * n + m0);
        }
        for (size_t j = j0; j < j1; j++) {
            v16f xj;
            load16(&xj, X + j * n + m0);
            for (size_t a = 0; a < SB; a++) acc[a] -= (a < r ? solve_coef(A, L, i0 + a, j, t) : 0.0f) * xj;
        }
        for (size_t k = 1; k < r; k++) { /* the block's own triangle: forward rows down, transposed rows up */
            size_t a = t ? r - 1 - k : k;
            for (size_t q = 0; q < k; q++) {
                size_t b = t ? r - 1 - q : q;
                acc[a] -= solve_coef(A, L, i0 + a, i0 + b, t) * acc[b];
            }
        }
        for (size_t a = 0; a < r; a++) memcpy(X + (i0 + a) * n + m0, &acc[a], sizeof acc[a]);
        return;
    }
    for (size_t k = 0; k < r; k++) { /* a narrow strip: row by row */
        size_t a = t ? r - 1 - k : k;
        float *xa = X + (i0 + a) * n + m0;
        size_t lo = t ? i0 + a + 1 : 0, hi = t ? L : i0 + a;
        for (size_t j = lo; j < hi; j++) {
            float c = solve_coef(A, L, i0 + a, j, t);
            for (size_t m = 0; m < w; m++) xa[m] -= c * X[j * n + m0 + m];
        }
    }
}

static void solve_unit_lower(float *X, const float *A, size_t L, size_t n, int transposed) {
    size_t nb = (L + SB - 1) / SB;
    for (size_t k = 0; k < nb; k++) {
        size_t i0 = (transposed ? nb - 1 - k : k) * SB, r = L - i0 < SB ? L - i0 : SB;
        for (size_t m0 = 0; m0 < n; m0 += SW) solve_strip(X, A, L, n, i0, r, m0, n - m0 < SW ? n - m0 : SW, transposed);
    }
}

/* The chunk's intermediates from its start state S0 (NULL: zero): contiguous q and k rows, gamma,
 * e, K S0, the masks, P and F in one product ([Q; K] K^T), A, and U by the solve. */
static void chunk_prepare(ChunkBuf *c, const float *Q, const float *K, const float *V, const float *g, const float *beta,
                          const float *S0, size_t L, const GdnShape *s, Lane l) {
    size_t dk = s->dk, dv = s->dv;
    float *Qc = c->qk, *Kc = c->qk + L * dk, *P = c->PF, *F = c->PF + L * L;
    for (size_t i = 0; i < L; i++) {
        memcpy(Qc + i * dk, Q + i * l.sq, dk * sizeof(float));
        memcpy(Kc + i * dk, K + i * l.sq, dk * sizeof(float));
    }
    float acc = 0.0f;
    for (size_t i = 0; i < L; i++) {
        acc += g[i * l.sg];
        c->gam[i] = acc;
        c->e[i] = fast_expf(acc);
    }
    if (S0) gemm_small(0, 0, L, dv, dk, 1.0f, Kc, dk, S0, dv, 0.0f, c->ks, dv);
    else memset(c->ks, 0, L * dv * sizeof(float));
    for (size_t i = 0; i < L; i++) {
        float b = beta[i * l.sg], ei = c->e[i];
        const float *vi = V + i * l.sv, *ksi = c->ks + i * dv;
        float *ui = c->u + i * dv;
        for (size_t j = 0; j < dv; j++) ui[j] = b * (vi[j] - ei * ksi[j]);
    }
    gemm_small_tri(0, 1, GEMM_C_LOWER, L, L, dk, 1.0f, Qc, dk, Kc, dk, 0.0f, P, L); /* the upper triangles are */
    gemm_small_tri(0, 1, GEMM_C_LOWER, L, L, dk, 1.0f, Kc, dk, Kc, dk, 0.0f, F, L); /* zeroed or never read */
    for (size_t i = 0; i < L; i++) {
        float *Ei = c->E + i * L, *Fi = F + i * L, *Pi = P + i * L, *Ai = c->A + i * L, gi = c->gam[i], b = beta[i * l.sg];
        for (size_t j = 0; j <= i; j++) Ei[j] = fast_expf(gi - c->gam[j]);
        for (size_t j = 0; j < i; j++) {
            Fi[j] *= Ei[j];
            Ai[j] = b * Fi[j];
        }
        for (size_t j = 0; j <= i; j++) Pi[j] *= Ei[j];
        for (size_t j = i + 1; j < L; j++) Pi[j] = 0.0f;
    }
    solve_unit_lower(c->u, c->A, L, dv, 0);
    /* kd_j = e^{gamma_L - gamma_j} k_j (the decay from token j to the chunk's end) */
    float gl = c->gam[L - 1];
    for (size_t j = 0; j < L; j++) {
        float w = fast_expf(gl - c->gam[j]);
        const float *kj = Kc + j * dk;
        float *dj = c->kd + j * dk;
        for (size_t m = 0; m < dk; m++) dj[m] = w * kj[m];
    }
}

static void chunk_forward_task(float *o, float *saved, const float *q, const float *k, const float *v, const float *g,
                               const float *beta, const GdnShape *s, Lane l, size_t L, float *w) {
    size_t dk = s->dk, dv = s->dv, n = dk * dv, nc = nchunks(s, L);
    ChunkBuf c = chunk_buf(w, s, L);
    memset(c.S, 0, n * sizeof(float));
    for (size_t ch = 0; ch < nc; ch++) {
        size_t t0 = ch * L, Lc = t0 + L <= s->T ? L : s->T - t0;
        const float *G = g + l.g + t0 * l.sg, *Bt = beta + l.g + t0 * l.sg;
        float *O = o + l.v + t0 * l.sv;
        memcpy(saved + ch * n, c.S, n * sizeof(float));
        const float *S0 = ch ? c.S : NULL;
        chunk_prepare(&c, q + l.q + t0 * l.sq, k + l.q + t0 * l.sq, v + l.v + t0 * l.sv, G, Bt, S0, Lc, s, l);
        /* O = diag(e) Q S0 + P U */
        if (S0) {
            gemm_small(0, 0, Lc, dv, dk, 1.0f, c.qk, dk, S0, dv, 0.0f, O, l.sv);
            for (size_t i = 0; i < Lc; i++)
                for (size_t j = 0; j < dv; j++) O[i * l.sv + j] *= c.e[i];
        }
        gemm_small_tri(0, 0, GEMM_A_LOWER, Lc, dv, Lc, 1.0f, c.PF, Lc, c.u, dv, S0 ? 1.0f : 0.0f, O, l.sv);
        /* S_end = e^{gamma_L} S0 + Kd^T U */
        if (ch + 1 == nc) break;
        float eL = c.e[Lc - 1];
        for (size_t i = 0; i < n; i++) c.S[i] *= eL;
        gemm_small(1, 0, dk, dv, Lc, 1.0f, c.kd, dk, c.u, dv, 1.0f, c.S, dv);
    }
}

/* Gradients through O = diag(e) Q S0 + P U and the readout of S_end (dS); leaves dU in c->du. */
static void chunk_bwd_output(ChunkBuf *c, float *dQ, float *dK, const float *dO, const float *S0, size_t L, const GdnShape *s,
                             Lane l) {
    size_t dk = s->dk, dv = s->dv, sq = l.sq;
    const float *Q = c->qk, *K = c->qk + L * dk;
    /* dU = P^T dO + Kd dS;  dP = dO U^T */
    gemm_small_tri(1, 0, GEMM_A_UPPER, L, dv, L, 1.0f, c->PF, L, dO, l.sv, 0.0f, c->du, dv);
    gemm_small(0, 0, L, dv, dk, 1.0f, c->kd, dk, c->dS, dv, 1.0f, c->du, dv);
    gemm_small_tri(0, 1, GEMM_C_LOWER, L, L, dv, 1.0f, dO, l.sv, c->u, dv, 0.0f, c->dP, L);
    /* through P = (Q K^T) (.) E: dgamma from E, then dP <- dP (.) E */
    for (size_t i = 0; i < L; i++) {
        float *dPi = c->dP + i * L;
        const float *Pi = c->PF + i * L, *Ei = c->E + i * L;
        float row = 0.0f;
        for (size_t j = 0; j <= i; j++) {
            float z = dPi[j] * Pi[j];
            row += z;
            c->dgam[j] -= z;
            dPi[j] *= Ei[j];
        }
        c->dgam[i] += row;
        for (size_t j = i + 1; j < L; j++) dPi[j] = 0.0f;
    }
    gemm_small_tri(0, 0, GEMM_A_LOWER, L, dk, L, 1.0f, c->dP, L, K, dk, 1.0f, dQ, sq);
    gemm_small_tri(1, 0, GEMM_A_UPPER, L, dk, L, 1.0f, c->dP, L, Q, dk, 1.0f, dK, sq);
    if (S0) { /* diag(e) Q S0: dQ += e dO S0^T, dgamma_i += e_i q_i . (S0 do_i) */
        gemm_small(0, 1, L, dk, dv, 1.0f, dO, l.sv, S0, dv, 0.0f, c->tmp, dk);
        for (size_t i = 0; i < L; i++) {
            const float *restrict ti = c->tmp + i * dk, *restrict qi = Q + i * dk;
            float *restrict dqi = dQ + i * sq, ei = c->e[i], dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (size_t m = 0; m < dk; m++) dot += qi[m] * ti[m];
#pragma omp simd
            for (size_t m = 0; m < dk; m++) dqi[m] += ei * ti[m];
            c->dgam[i] += ei * dot;
        }
    }
    /* S_end = e^{gamma_L} S0 + Kd^T U: dKd = U dS^T -> dK, dgamma; d e^{gamma_L} = <S0, dS> */
    gemm_small(0, 1, L, dk, dv, 1.0f, c->u, dv, c->dS, dv, 0.0f, c->tmp, dk);
    float gl = c->gam[L - 1], dgl = 0.0f;
    for (size_t j = 0; j < L; j++) {
        const float *restrict tj = c->tmp + j * dk, *restrict kj = K + j * dk;
        float *restrict dkj = dK + j * sq, w = fast_expf(gl - c->gam[j]), dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (size_t m = 0; m < dk; m++) dot += kj[m] * tj[m];
#pragma omp simd
        for (size_t m = 0; m < dk; m++) dkj[m] += w * tj[m];
        dgl += w * dot;
        c->dgam[j] -= w * dot;
    }
    if (S0) {
        float dot = 0.0f;
        const float *restrict dS = c->dS;
#pragma omp simd reduction(+ : dot)
        for (size_t i = 0; i < dk * dv; i++) dot += S0[i] * dS[i];
        dgl += c->e[L - 1] * dot;
    }
    c->dgam[L - 1] += dgl;
}

/* Gradients through (I + A) U = X, X = diag(beta) V - diag(beta e) K S0, A_ij = beta_i F_ij;
 * dU in c->du on entry (solved in place into dX). Writes dS0 into c->dSn when S0. */
static void chunk_bwd_solve(ChunkBuf *c, float *dK, float *dV, float *dbeta, const float *dO, const float *V,
                            const float *beta, const float *S0, size_t L, const GdnShape *s, Lane l) {
    size_t dk = s->dk, dv = s->dv, sq = l.sq;
    const float *Q = c->qk, *K = c->qk + L * dk, *F = c->PF + L * L;
    /* (I + A)^T dX = dU */
    solve_unit_lower(c->du, c->A, L, dv, 1);
    /* dA = -dX U^T (strictly lower part used) */
    gemm_small_tri(0, 1, GEMM_C_LOWER, L, L, dv, -1.0f, c->du, dv, c->u, dv, 0.0f, c->dM, L);
    for (size_t i = 0; i < L; i++) {
        float b = beta[i * l.sg], ei = c->e[i], dbi = 0.0f, dgi = 0.0f;
        const float *restrict xi = c->du + i * dv, *restrict vi = V + i * l.sv, *restrict ksi = c->ks + i * dv;
        float *restrict dvi = dV + i * l.sv, *restrict dki = c->dks + i * dv, *restrict doi = c->doe + i * dv;
        const float *restrict oi = dO + i * l.sv;
#pragma omp simd reduction(+ : dbi, dgi)
        for (size_t m = 0; m < dv; m++) {
            dbi += xi[m] * (vi[m] - ei * ksi[m]);
            dgi += ksi[m] * xi[m];
        }
#pragma omp simd
        for (size_t m = 0; m < dv; m++) {
            dvi[m] += b * xi[m];
            dki[m] = -b * ei * xi[m];
            doi[m] = ei * oi[m];
        }
        /* through A: dbeta_i += dA_ij F_ij, dgamma_i += dA_ij A_ij, dgamma_j -= dA_ij A_ij */
        float *dAi = c->dM + i * L;
        const float *Fi = F + i * L, *Ei = c->E + i * L;
        float row = 0.0f, rowb = 0.0f;
        for (size_t j = 0; j < i; j++) {
            float y = dAi[j] * Fi[j];
            rowb += y;
            row += b * y;
            c->dgam[j] -= b * y;
            dAi[j] *= b * Ei[j]; /* now dM_ij = dA_ij beta_i E_ij */
        }
        dbeta[i * l.sg] += dbi + rowb;
        c->dgam[i] += row - b * ei * dgi;
    }
    /* dK += (dM + dM^T) K: symmetrise in place (zero diagonal) */
    for (size_t i = 0; i < L; i++) {
        c->dM[i * L + i] = 0.0f;
        for (size_t j = 0; j < i; j++) c->dM[j * L + i] = c->dM[i * L + j];
    }
    gemm_small(0, 0, L, dk, L, 1.0f, c->dM, L, K, dk, 1.0f, dK, sq);
    if (!S0) return;
    /* through K S0: dK += dKS S0^T; dS0 = e^{gamma_L} dS + Q^T diag(e) dO + K^T dKS */
    gemm_small(0, 1, L, dk, dv, 1.0f, c->dks, dv, S0, dv, 1.0f, dK, sq);
    float eL = c->e[L - 1];
    for (size_t i = 0; i < dk * dv; i++) c->dSn[i] = eL * c->dS[i];
    gemm_small(1, 0, dk, dv, L, 1.0f, Q, dk, c->doe, dv, 1.0f, c->dSn, dv);
    gemm_small(1, 0, dk, dv, L, 1.0f, K, dk, c->dks, dv, 1.0f, c->dSn, dv);
}

static void chunk_backward_task(float *dq, float *dk, float *dv, float *dg, float *db, const float *dout, const float *saved,
                                const float *q, const float *k, const float *v, const float *g, const float *beta,
                                const GdnShape *s, Lane l, size_t L, float *w) {
    size_t n = s->dk * s->dv, nc = nchunks(s, L);
    ChunkBuf c = chunk_buf(w, s, L);
    memset(c.dS, 0, n * sizeof(float));
    for (size_t ch = nc; ch-- > 0;) {
        size_t t0 = ch * L, Lc = t0 + L <= s->T ? L : s->T - t0, iq = l.q + t0 * l.sq, iv = l.v + t0 * l.sv, ig = l.g + t0 * l.sg;
        const float *S0 = ch ? saved + ch * n : NULL;
        chunk_prepare(&c, q + iq, k + iq, v + iv, g + ig, beta + ig, S0, Lc, s, l);
        memset(c.dgam, 0, Lc * sizeof(float));
        chunk_bwd_output(&c, dq + iq, dk + iq, dout + iv, S0, Lc, s, l);
        chunk_bwd_solve(&c, dk + iq, dv + iv, db + ig, dout + iv, v + iv, beta + ig, S0, Lc, s, l);
        /* gamma = cumsum(g): dg_j = sum_{i >= j} dgamma_i */
        float acc = 0.0f;
        for (size_t i = Lc; i-- > 0;) {
            acc += c.dgam[i];
            dg[ig + i * l.sg] += acc;
        }
        float *t = c.dS;
        c.dS = c.dSn;
        c.dSn = t;
    }
}

/* ------------------------------------------------------------------ dispatch */

static size_t eff_chunk(const GdnShape *s, size_t chunk) { return chunk < s->T ? chunk : s->T; }

size_t gdn_saved_floats(GdnKernel kind, const GdnShape *s, size_t chunk) {
    if (kind != GDN_CHUNKED) return 0;
    return s->B * s->H * nchunks(s, eff_chunk(s, chunk)) * s->dk * s->dv;
}

static size_t task_floats(GdnKernel kind, const GdnShape *s, size_t chunk) {
    return kind == GDN_CHUNKED ? chunk_task_floats(s, eff_chunk(s, chunk)) : rec_task_floats(s);
}

size_t gdn_work_floats(GdnKernel kind, const GdnShape *s, size_t chunk) { return task_floats(kind, s, chunk) * (size_t)MAX_THREADS(); }

void gdn_forward(GdnKernel kind, float *o, float *saved, const float *q, const float *k, const float *v, const float *g,
                 const float *beta, const GdnShape *s, size_t chunk, float *work) {
    size_t ntask = s->B * s->H, per = task_floats(kind, s, chunk), L = eff_chunk(s, chunk);
    size_t per_saved = kind == GDN_CHUNKED ? nchunks(s, L) * s->dk * s->dv : 0;
#pragma omp parallel for schedule(dynamic, 1) if (ntask > 1)
    for (size_t task = 0; task < ntask; task++) {
        float *w = work + (size_t)THREAD_ID() * per;
        if (kind == GDN_CHUNKED) chunk_forward_task(o, saved + task * per_saved, q, k, v, g, beta, s, lane(s, task), L, w);
        else rec_forward_task(o, q, k, v, g, beta, s, lane(s, task), w);
    }
}

void gdn_backward(GdnKernel kind, float *dq, float *dk, float *dv, float *dg, float *dbeta, const float *dout, const float *saved,
                  const float *q, const float *k, const float *v, const float *g, const float *beta, const GdnShape *s,
                  size_t chunk, float *work) {
    size_t ntask = s->B * s->H, per = task_floats(kind, s, chunk), L = eff_chunk(s, chunk);
    size_t per_saved = kind == GDN_CHUNKED ? nchunks(s, L) * s->dk * s->dv : 0;
#pragma omp parallel for schedule(dynamic, 1) if (ntask > 1)
    for (size_t task = 0; task < ntask; task++) {
        float *w = work + (size_t)THREAD_ID() * per;
        if (kind == GDN_CHUNKED)
            chunk_backward_task(dq, dk, dv, dg, dbeta, dout, saved + task * per_saved, q, k, v, g, beta, s, lane(s, task), L, w);
        else rec_backward_task(dq, dk, dv, dg, dbeta, dout, q, k, v, g, beta, s, lane(s, task), w);
    }
}
