/* gru_math.h — the elementwise part of one GRU step, for the two cells of block kind `gru`
 * (../shared/notes/backbones.md §1.1, §1.2), shared by the trainer (kernels/gru.c) and the runtime
 * (runtime/blocks/gru.c) so that both compute the same floats by construction. Header-only, libc
 * only: the runtime compiles it as it compiles kernels/fastmath.h.
 *
 * The matrix products around these steps are the callers' (BLAS in training, the packed ternary
 * kernels at inference); here xp is a token's input projection (bias included), hp / hzr / a
 * are the products with the previous state.
 *
 * PyTorch / cuDNN cell (nn.GRU, "linear_before_reset"), gate order r | z | n:
 *   r = sig(xp_r + hp_r)   z = sig(xp_z + hp_z)   a = hp_n   n = tanh(xp_n + r a)
 *   h = (1 - z) n + z h_prev                      (z = 1 keeps the old state)
 * The Hybrid-GRU engine's cell (sumithkumar07/Hybrid-GRU sovereign_v13_bitnet.cpp), gate order
 * z | r | h, gates reading [x; h_prev] and a Cho-style reset before the product:
 *   z = sig(xp_z + hzr_z)  r = sig(xp_r + hzr_r)  q = r h_prev
 *   c = tanh(xp_h + a),  a = W_h[:, E:] q
 *   u = (1 - z) h_prev + z c                       (z = 1 takes the candidate)
 *   h = u / sqrt(mean(u^2) + eps)                  (RMSNorm without gain; eps 1e-8 in the engine)
 * `safe` (compile-time constant): the runtime maps NaN inputs to 0 before the fast functions (a
 * hostile artifact must not reach their float-to-int conversions); the trainer passes 0. */
#ifndef TERN_GRU_MATH_H
#define TERN_GRU_MATH_H

#include <math.h>
#include <stddef.h>

#include "kernels/fastmath.h"

static inline float gru_nan0(float x, int safe) { return safe && x != x ? 0.0f : x; }
static inline float gru_sig(float x, int safe) { return fast_sigmoidf(gru_nan0(x, safe)); }
static inline float gru_tanh(float x, int safe) { return fast_tanhf(gru_nan0(x, safe)); }

/* PyTorch cell for one row: xp, hp [3H]; writes h [H] and, when r is not NULL, the saved
 * r, z, n, a [H] each (a = hp_n). */
static inline void gru_torch_step(float *h, float *r, float *z, float *n, float *a, const float *xp, const float *hp,
                                  const float *hprev, size_t H, int safe) {
    for (size_t j = 0; j < H; j++) {
        float rj = gru_sig(xp[j] + hp[j], safe), zj = gru_sig(xp[H + j] + hp[H + j], safe), aj = hp[2 * H + j];
        float nj = gru_tanh(xp[2 * H + j] + rj * aj, safe);
        h[j] = (1.0f - zj) * nj + zj * hprev[j];
        if (r) r[j] = rj, z[j] = zj, n[j] = nj, a[j] = aj;
    }
}

/* Engine cell, first half for one row: xp [3H] (z | r | h), hzr [2H] (z | r); writes z, r and
 * q = r h_prev [H]. */
static inline void gru_engine_gates(float *z, float *r, float *q, const float *xp, const float *hzr, const float *hprev,
                                    size_t H, int safe) {
    for (size_t j = 0; j < H; j++) {
        z[j] = gru_sig(xp[j] + hzr[j], safe);
        r[j] = gru_sig(xp[H + j] + hzr[H + j], safe);
        q[j] = r[j] * hprev[j];
    }
}

/* Engine cell, second half: xph = xp's h part [H], a = W_h[:, E:] q [H]; writes the candidate c
 * (may be scratch) and the new state h; returns 1 / rms(u). The square sum runs in double in a
 * fixed order, so trainer and runtime agree bit for bit. */
static inline float gru_engine_state(float *h, float *c, const float *xph, const float *a, const float *z, const float *hprev,
                                     size_t H, float eps, int safe) {
    double ss = 0;
    for (size_t j = 0; j < H; j++) {
        c[j] = gru_tanh(xph[j] + a[j], safe);
        float u = (1.0f - z[j]) * hprev[j] + z[j] * c[j];
        h[j] = u;
        ss += (double)u * (double)u;
    }
    float inv = (float)(1.0 / sqrt(ss / (double)H + (double)eps));
    for (size_t j = 0; j < H; j++) h[j] *= inv;
    return inv;
}

#endif
