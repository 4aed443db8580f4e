/* mlstm_math.h — the scalar math of the mLSTM block (Beck et al. 2024, "xLSTM", arXiv 2405.04517,
 * §2.3 and appendix; notation in kernels/mlstm.h), shared by the trainer (kernels/mlstm.c,
 * autodiff/ops_mlstm.c) and the runtime (runtime/blocks/mlstm.c), so both compute the same floats
 * by construction. Header-only, libc only: the runtime compiles it as it compiles
 * kernels/fastmath.h.
 *
 * State of one head, stabilised: S [D][D + 1] holds the matrix memory C (columns 0..D-1, indexed
 * [key][value]) and the normaliser n (column D) side by side -- n is the memory of a constant
 * value 1, so one update serves both -- and m, the log-scale the stored numbers are relative to:
 * the true state is e^m S. */
#ifndef TERN_MLSTM_MATH_H
#define TERN_MLSTM_MATH_H

#include <math.h>
#include <stddef.h>

/* ε of the denominator, in the true (unstabilised) units: see mlstm_den. */
#define MLSTM_EPS 1e-6f
/* The stabiliser of the empty state: -inf, so the first token sets m = ig (with m = 0 instead,
 * xLSTM's recurrent kernel, a forget gate with log f >> 0 keeps m growing on the empty state's
 * account while the tokens' weights e^{ig - m} underflow to 0: n = 0 and h = 0 / 0). */
#define MLSTM_M0 (-INFINITY)

/* log f_t from the forget pre-activation: log sigmoid(f) (stable for any f) or f itself for the
 * exponential forget gate. */
static inline float mlstm_log_forget(float f, int exp_gate) {
    if (exp_gate) return f;
    return f < 0 ? f - log1pf(expf(f)) : -log1pf(expf(-f));
}

/* d log f / d f: sigmoid(-f), or 1 for the exponential gate. */
static inline float mlstm_dlog_forget(float f, int exp_gate) {
    if (exp_gate) return 1.0f;
    return f < 0 ? 1.0f / (1.0f + expf(f)) : expf(-f) / (1.0f + expf(-f));
}

/* The denominator of h = num / den for a stabiliser m and nq = n . q (both stabilised):
 *   den = max(|nq|, e^{-m}) + ε e^{-m}  =  e^{-m} (max(|n_true . q|, 1) + ε).
 * ε is added in the true units, so h = C_true q / (max(|n_true . q|, 1) + ε) does not depend on m
 * at all: every form (recurrent, chunkwise, parallel) and every backward that holds m constant is
 * exact. (NX-AI's kernels add ε to the stabilised denominator, which leaves a dependence on m of
 * order ε e^m.) */
static inline float mlstm_den(float nq, float m) {
    float e = expf(-m), a = fabsf(nq);
    return (a > e ? a : e) + MLSTM_EPS * e;
}

/* d den / d nq: sign(nq) where |nq| wins the max, else 0. */
static inline float mlstm_dden_dnq(float nq, float m) {
    float e = expf(-m);
    return fabsf(nq) > e ? (nq > 0 ? 1.0f : -1.0f) : 0.0f;
}

/* One token of one head, the stabilised recurrent step (xLSTM appendix, eqs. of the stabilised
 * mLSTM; backbones.md §3.1):
 *   m' = max(lf + m, ig);  f' = e^{lf + m - m'};  i' = e^{ig - m'}
 *   S  = f' S + i' (k / sqrt(D)) [v | 1]^T
 *   h  = (S^T q)[0..D-1] / den((S^T q)[D], m')
 * S [D][D + 1] and *m updated in place (S starts at 0, m at MLSTM_M0); q, k, v [D]; h [D]; *nq_out (may
 * be NULL) receives n . q. */
static inline void mlstm_step(float *S, float *m, float *h, const float *q, const float *k, const float *v, float ig,
                              float lf, size_t D, float *nq_out) {
    float mo = *m, mn = lf + mo > ig ? lf + mo : ig;
    float fp = expf(lf + mo - mn), ip = expf(ig - mn) / sqrtf((float)D);
    size_t W = D + 1;
    float nq = 0.0f;
    for (size_t j = 0; j < D; j++) h[j] = 0.0f;
    for (size_t i = 0; i < D; i++) {
        float *row = S + i * W, kk = ip * k[i], qi = q[i];
        for (size_t j = 0; j < D; j++) {
            row[j] = fp * row[j] + kk * v[j];
            h[j] += qi * row[j];
        }
        row[D] = fp * row[D] + kk;
        nq += qi * row[D];
    }
    float inv = 1.0f / mlstm_den(nq, mn);
    for (size_t j = 0; j < D; j++) h[j] *= inv;
    *m = mn;
    if (nq_out) *nq_out = nq;
}

/* Causal depthwise convolution of one position (xLSTM's CausalConv1d, kernel K, padded on the
 * left): y[c] = b[c] + sum_j w[c][j] x_{t-K+1+j}[c]; win[j] is the row of x at t - K + 1 + j, or
 * NULL before the sequence starts. */
static inline void mlstm_conv_row(float *y, const float *const *win, const float *w, const float *b, size_t I, size_t K) {
    for (size_t c = 0; c < I; c++) y[c] = b[c];
    for (size_t j = 0; j < K; j++) {
        const float *x = win[j];
        if (!x) continue;
        for (size_t c = 0; c < I; c++) y[c] += w[c * K + j] * x[c];
    }
}

/* Block-diagonal ("headwise") projection of one row (xLSTM's LinearHeadwiseExpand with
 * blocks of bs): y[g bs + o] = sum_i W[g bs + o][i] x[g bs + i]; W is [I][bs]. */
static inline void mlstm_headwise_row(float *y, const float *x, const float *W, size_t I, size_t bs) {
    for (size_t g = 0; g < I; g += bs)
        for (size_t o = 0; o < bs; o++) {
            float s = 0.0f;
            for (size_t i = 0; i < bs; i++) s += W[(g + o) * bs + i] * x[g + i];
            y[g + o] = s;
        }
}

/* Layer norm of each group of D (xLSTM's MultiHeadLayerNorm, group_norm without weight):
 * y = (x - mean) * rstd; returns rstd = 1 / sqrt(var + eps) (biased variance). */
static inline float mlstm_group_norm(float *y, const float *x, size_t D, float eps) {
    float mean = 0.0f, var = 0.0f;
    for (size_t i = 0; i < D; i++) mean += x[i];
    mean /= (float)D;
    for (size_t i = 0; i < D; i++) var += (x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / sqrtf(var / (float)D + eps);
    for (size_t i = 0; i < D; i++) y[i] = (x[i] - mean) * rstd;
    return rstd;
}

#endif
