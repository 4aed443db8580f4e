/* moe.c — sort-based dropless MoE dispatch, forward and backward, and its dense per-token
 * reference (equations in moe.h). */
#include "kernels/moe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/moe_math.h"
#include "kernels/quant.h"

size_t moe_saved_floats(const MoeShape *s) {
    size_t R = s->N * s->K;
    return R + s->N + R * (2 * s->C + 3 * s->H); /* w [R], ssum [N], Xs and Ys [R, C], U [R, 2H], A [R, H] */
}
size_t moe_saved_ints(const MoeShape *s) { return 3 * s->N * s->K; } /* sel, inv, perm */

void moe_saved_bind(MoeSaved *sv, const MoeShape *s, float *f, int32_t *i, size_t *z) {
    size_t R = s->N * s->K;
    sv->w = f, f += R;
    sv->ssum = f, f += s->N;
    sv->Xs = f, f += R * s->C;
    sv->U = f, f += R * 2 * s->H;
    sv->A = f, f += R * s->H;
    sv->Ys = f;
    sv->sel = i, i += R;
    sv->inv = i, i += R;
    sv->perm = i;
    sv->offset = z;
}

/* ------------------------------------------------------------------ routing */

void moe_route(const MoeShape *s, const float *scores, const float *bias, float gamma, int32_t *sel, float *w, float *ssum) {
#pragma omp parallel for schedule(static) if (s->N * s->E >= 16384)
    for (size_t n = 0; n < s->N; n++)
        ssum[n] = moe_route_token(scores + n * s->E, bias, s->E, s->K, gamma, sel + n * s->K, w + n * s->K);
}

void moe_plan(const MoeShape *s, const int32_t *sel, size_t *offset, int32_t *perm, int32_t *inv) {
    size_t E = s->E, R = s->N * s->K;
    memset(offset, 0, (E + 1) * sizeof *offset);
    for (size_t r = 0; r < R; r++) offset[sel[r] + 1]++;
    for (size_t e = 0; e < E; e++) offset[e + 1] += offset[e];
    size_t cursor[256]; /* E <= 256 (MOE_MAX_EXPERTS, the moe kind's range) */
    memcpy(cursor, offset, E * sizeof *cursor);
    for (size_t r = 0; r < R; r++) { /* (n, k) in order: stable within each expert */
        size_t pos = cursor[sel[r]]++;
        perm[pos] = (int32_t)r;
        inv[r] = (int32_t)pos;
    }
}

/* ------------------------------------------------------------------ forward */

/* Ys[rows] = FFN_e(Xs[rows]) for the rows of one expert; U and A kept for the backward */
static void expert_forward(const MoeShape *s, size_t e, size_t r0, size_t m, const float *gu, const float *dn, MoeSaved *sv, MoeGemm gemm) {
    size_t C = s->C, H = s->H;
    float *U = sv->U + r0 * 2 * H, *A = sv->A + r0 * H, *X = sv->Xs + r0 * C;
    if (s->act_in && s->act_in[e] >= 0) fake_quantize_act_int8(X, X, m, C, (size_t)s->act_in[e]);
    gemm(0, 1, m, 2 * H, C, 1.0f, X, C, gu, C, 0.0f, U, 2 * H); /* [m, 2H] = Xs gu^T */
    swiglu_forward(A, U, m, H);
    if (s->act_hid && s->act_hid[e] >= 0) fake_quantize_act_int8(A, A, m, H, (size_t)s->act_hid[e]);
    gemm(0, 1, m, C, H, 1.0f, A, H, dn, H, 0.0f, sv->Ys + r0 * C, C); /* [m, C] = A dn^T */
}

void moe_forward(const MoeShape *s, float *y, MoeSaved *sv, const float *h, const float *scores, const float *bias, float gamma,
                 const float *const *gu, const float *const *dn, float *load, MoeGemm gemm) {
    size_t N = s->N, C = s->C, E = s->E, K = s->K, R = N * K;
    moe_route(s, scores, bias, gamma, sv->sel, sv->w, sv->ssum);
    moe_plan(s, sv->sel, sv->offset, sv->perm, sv->inv);
    if (load)
        for (size_t e = 0; e < E; e++) load[e] += (float)(sv->offset[e + 1] - sv->offset[e]);
#pragma omp parallel for schedule(static) if (R * C >= 16384)
    for (size_t p = 0; p < R; p++) memcpy(sv->Xs + p * C, h + (size_t)(sv->perm[p] / (int32_t)K) * C, C * sizeof(float));
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t e = 0; e < E; e++) {
        size_t m = sv->offset[e + 1] - sv->offset[e];
        if (m) expert_forward(s, e, sv->offset[e], m, gu[e], dn[e], sv, gemm);
    }
#pragma omp parallel for schedule(static) if (N * C >= 16384)
    for (size_t n = 0; n < N; n++) { /* combine in slot order */
        float *yn = y + n * C;
        memset(yn, 0, C * sizeof(float));
        for (size_t k = 0; k < K; k++) {
            const float *row = sv->Ys + (size_t)sv->inv[n * K + k] * C;
            float wk = sv->w[n * K + k];
            for (size_t c = 0; c < C; c++) yn[c] += wk * row[c];
        }
    }
}

/* ------------------------------------------------------------------ backward */

size_t moe_work_floats(const MoeShape *s) {
    size_t R = s->N * s->K;
    return R * (2 * s->C + 3 * s->H) + R; /* dYs, dXs, dA, dU [R, 2H], dw */
}

/* one expert: dXs rows and its weight grads from dYs rows */
static void expert_backward(const MoeShape *s, size_t r0, size_t m, const MoeSaved *sv, const float *gu, const float *dn,
                            const float *dYs, float *dXs, float *dA, float *dU, float *dgu, float *ddn, MoeGemm gemm) {
    size_t C = s->C, H = s->H;
    const float *Xs = sv->Xs + r0 * C, *U = sv->U + r0 * 2 * H, *A = sv->A + r0 * H;
    gemm(0, 0, m, H, C, 1.0f, dYs, C, dn, H, 0.0f, dA, H); /* dA [m, H] = dYs dn */
    if (ddn) gemm(1, 0, C, H, m, 1.0f, dYs, C, A, H, 1.0f, ddn, H); /* ddn [C, H] += dYs^T A */
    memset(dU, 0, m * 2 * H * sizeof(float));
    swiglu_backward(dU, dA, U, m, H);
    if (dgu) gemm(1, 0, 2 * H, C, m, 1.0f, dU, 2 * H, Xs, C, 1.0f, dgu, C); /* dgu [2H, C] += dU^T Xs */
    gemm(0, 0, m, C, 2 * H, 1.0f, dU, 2 * H, gu, C, 0.0f, dXs, C);           /* dXs [m, C] = dU gu */
}

/* dscores of token n from its slot gradients dw (normalised sigmoid gate, moe.h) */
static void gate_backward(const MoeShape *s, size_t n, const MoeSaved *sv, const float *dw, float gamma, float *dscores) {
    size_t K = s->K;
    if (K == 1) return; /* w = gamma whatever s: no gradient (the formula below leaves rounding) */
    float S = sv->ssum[n], dot = 0.0f;
    for (size_t k = 0; k < K; k++) dot += dw[k] * sv->w[n * K + k];
    for (size_t k = 0; k < K; k++) dscores[n * s->E + sv->sel[n * K + k]] += gamma / S * (dw[k] - dot / gamma);
}

void moe_backward(const MoeShape *s, const float *dy, const MoeSaved *sv, const float *const *gu, const float *const *dn,
                  float gamma, float *dh, float *dscores, float *const *dgu, float *const *ddn, float *work, MoeGemm gemm) {
    size_t N = s->N, C = s->C, E = s->E, K = s->K, H = s->H, R = N * K;
    float *dYs = work, *dXs = dYs + R * C, *dA = dXs + R * C, *dU = dA + R * H, *dw = dU + R * 2 * H;
#pragma omp parallel for schedule(static) if (R * C >= 16384)
    for (size_t n = 0; n < N; n++) {
        const float *d = dy + n * C;
        for (size_t k = 0; k < K; k++) {
            size_t p = (size_t)sv->inv[n * K + k];
            const float *row = sv->Ys + p * C;
            float wk = sv->w[n * K + k], acc = 0.0f;
            float *g = dYs + p * C;
            for (size_t c = 0; c < C; c++) acc += d[c] * row[c], g[c] = wk * d[c];
            dw[n * K + k] = acc;
        }
        if (dscores) gate_backward(s, n, sv, dw + n * K, gamma, dscores);
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t e = 0; e < E; e++) {
        size_t r0 = sv->offset[e], m = sv->offset[e + 1] - r0;
        if (m)
            expert_backward(s, r0, m, sv, gu[e], dn[e], dYs + r0 * C, dXs + r0 * C, dA + r0 * H, dU + r0 * 2 * H,
                            dgu ? dgu[e] : NULL, ddn ? ddn[e] : NULL, gemm);
    }
    if (!dh) return;
#pragma omp parallel for schedule(static) if (N * C >= 16384)
    for (size_t n = 0; n < N; n++)
        for (size_t k = 0; k < K; k++) {
            const float *row = dXs + (size_t)sv->inv[n * K + k] * C;
            for (size_t c = 0; c < C; c++) dh[n * C + c] += row[c];
        }
}

/* ------------------------------------------------------------------ dense per-token reference */

/* order[E] = experts by biased score, best first (insertion sort; ties keep the lower index) */
static void sort_experts(const float *v, size_t E, int32_t *order) {
    for (size_t e = 0; e < E; e++) {
        size_t j = e;
        while (j > 0 && v[order[j - 1]] < v[e]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (int32_t)e;
    }
}

void moe_forward_ref(const MoeShape *s, float *y, const float *h, const float *scores, const float *bias, float gamma,
                     const float *const *gu, const float *const *dn, int32_t *sel, float *w, MoeGemm gemm) {
    size_t C = s->C, E = s->E, K = s->K, H = s->H;
    if (E > 256 || C > 4096 || H > 4096) { /* a test reference: its rows live on the stack */
        fprintf(stderr, "moe_forward_ref: E %zu, C %zu, H %zu above 256 / 4096 / 4096\n", E, C, H);
        abort();
    }
    float v[256], x[4096], u[2 * 4096], a[4096], out[4096];
    int32_t order[256];
    for (size_t n = 0; n < s->N; n++) {
        const float *sc = scores + n * E;
        for (size_t e = 0; e < E; e++) v[e] = sc[e] + (bias ? bias[e] : 0.0f);
        sort_experts(v, E, order);
        float S = 0.0f;
        for (size_t k = 0; k < K; k++) S += sc[order[k]];
        float *yn = y + n * C;
        memset(yn, 0, C * sizeof(float));
        for (size_t k = 0; k < K; k++) {
            int32_t e = order[k];
            float wk = gamma * sc[e] / S;
            if (sel) sel[n * K + k] = e;
            if (w) w[n * K + k] = wk;
            memcpy(x, h + n * C, C * sizeof(float));
            if (s->act_in && s->act_in[e] >= 0) fake_quantize_act_int8(x, x, 1, C, (size_t)s->act_in[e]);
            gemm(0, 1, 1, 2 * H, C, 1.0f, x, C, gu[e], C, 0.0f, u, 2 * H);
            swiglu_forward(a, u, 1, H);
            if (s->act_hid && s->act_hid[e] >= 0) fake_quantize_act_int8(a, a, 1, H, (size_t)s->act_hid[e]);
            gemm(0, 1, 1, C, H, 1.0f, a, H, dn[e], H, 0.0f, out, C);
            for (size_t c = 0; c < C; c++) yn[c] += wk * out[c];
        }
    }
}

/* ------------------------------------------------------------------ bias update */

double moe_bias_update(float *bias, const float *load, size_t E, float rate) {
    double total = 0, mx = 0;
    for (size_t e = 0; e < E; e++) {
        total += load[e];
        mx = load[e] > mx ? load[e] : mx;
    }
    double mean = total / (double)E;
    for (size_t e = 0; e < E; e++) {
        double d = mean - (double)load[e];
        bias[e] += d > 0 ? rate : d < 0 ? -rate : 0.0f;
    }
    return total > 0 ? mx / mean : 0.0;
}
