/* gdn_math.h — the scalar math of the Gated DeltaNet layer (Yang, Kautz, Hatamizadeh 2024,
 * "Gated Delta Networks: Improving Mamba2 with Delta Rule", arXiv 2412.06464; the layer as
 * fla-org/flash-linear-attention fla/layers/gated_deltanet.py builds it), shared by the trainer
 * (autodiff/ops_gdn.c, kernels/delta.c) and the runtime (runtime/blocks/gdn.c), so both compute
 * the same floats by construction. Header-only, libc only: the runtime compiles it.
 *
 * Per head, with the state S [dk][dv] (fla's layout; the paper's S is its transpose):
 *   alpha_t = exp(g_t),  g_t = -exp(A_log) softplus(a_t + dt_bias)   (Mamba-2's log-space decay)
 *   beta_t  = sigmoid(b_t)
 *   u_t = beta_t (v_t - alpha_t S_{t-1}^T k_t)                          (the delta-rule error)
 *   S_t = alpha_t S_{t-1} + k_t u_t^T      = S_{t-1} alpha_t (I - beta_t k k^T) + beta_t k v^T
 *   o_t = S_t^T q_t
 * with q and k L2-normalised per head (q also scaled by dk^-1/2) after a short causal
 * convolution + SiLU. */
#ifndef TERN_GDN_MATH_H
#define TERN_GDN_MATH_H

#include <math.h>
#include <stddef.h>

#include "kernels/fastmath.h"
#include "kernels/trn_math.h"

/* fla's l2norm: x / sqrt(sum x^2 + 1e-6) */
#define GDN_L2_EPS 1e-6f

static inline float gdn_silu(float x) { return x * fast_sigmoidf(x); }

/* g = -A softplus(a + dt_bias), A = exp(A_log) > 0 (computed once per head: gdn_decay_rate). */
static inline float gdn_decay_rate(float a_log) { return fast_expf(a_log); }
static inline float gdn_decay(float a, float A, float dt_bias) { return -A * trn_softplus(a + dt_bias); }

/* y = scale * x / sqrt(sum x^2 + eps) over n values; returns 1 / sqrt(sum x^2 + eps). The sum
 * runs in index order on both sides (no reassociation: no -ffast-math anywhere). */
static inline float gdn_l2norm_row(float *y, const float *x, size_t n, float scale) {
    float ss = 0.0f;
    for (size_t i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss + GDN_L2_EPS);
    for (size_t i = 0; i < n; i++) y[i] = scale * (x[i] * r);
    return r;
}

/* One step of the gated delta rule for one head: S [dk][dv] updated in place, o [dv] = S_t^T q.
 * g is the log-decay (alpha = exp(g)), u a dv-float scratch. Two passes over S: the prediction
 * S^T k, then the update fused with the readout. */
static inline void gdn_step(float *restrict S, float *restrict o, const float *restrict q, const float *restrict k,
                            const float *restrict v, float g, float beta, size_t dk, size_t dv, float *restrict u) {
    float alpha = fast_expf(g);
    for (size_t j = 0; j < dv; j++) u[j] = 0.0f;
    for (size_t i = 0; i < dk; i++) {
        const float *Si = S + i * dv;
        float ki = k[i];
        for (size_t j = 0; j < dv; j++) u[j] += Si[j] * ki;
    }
    for (size_t j = 0; j < dv; j++) {
        u[j] = beta * (v[j] - alpha * u[j]);
        o[j] = 0.0f;
    }
    for (size_t i = 0; i < dk; i++) {
        float *Si = S + i * dv;
        float ki = k[i], qi = q[i];
        for (size_t j = 0; j < dv; j++) {
            float s = alpha * Si[j] + ki * u[j];
            Si[j] = s;
            o[j] += qi * s;
        }
    }
}

#endif
