/* trn_math.h — the scalar math of the TRN oscillator core (openai/parameter-golf PR #669,
 * TemporalResonanceLayer; notation in autodiff/ops_trn.c and ../shared/notes/backbones.md §5),
 * shared by the trainer's op (autodiff/ops_trn.c) and the runtime's block (runtime/blocks/trn.c),
 * so both compute the same floats by construction. Header-only, libc only: the runtime compiles
 * it as it compiles kernels/fastmath.h.
 *
 * `safe` (a compile-time constant at every call, folded after inlining): the runtime maps NaN
 * arguments to 0 before the fast functions, which convert a float to an int on the way (2^n, the
 * quadrant) where NaN is undefined behaviour and a hostile artifact could make NaN activations.
 * Finite and infinite arguments pass unchanged, so the numerics are the trainer's. The trainer
 * passes safe = 0: a NaN must reach its loss and be seen as a bad step. */
#ifndef TERN_TRN_MATH_H
#define TERN_TRN_MATH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/fastmath.h"

#define TRN_PI 3.14159265358979323846f
#define TRN_OMEGA_LO 1e-4f
#define TRN_OMEGA_HI (TRN_PI - 1e-4f)

static inline float trn_nan0(float x, int safe) { return safe && x != x ? 0.0f : x; }
static inline float trn_sig(float x, int safe) { return fast_sigmoidf(trn_nan0(x, safe)); }

/* log(1 + y) for y in [0, 1] as 2 atanh(w), w = y / (2 + y) <= 1/3, series to w^13 (truncation
 * below 1.4e-8 relative); no 1 + y rounding, so tiny y keep their digits. */
static inline float trn_log1p_unit(float y) {
    float w = y / (2.0f + y), w2 = w * w;
    float p = 1.0f / 13.0f;
    p = p * w2 + 1.0f / 11.0f;
    p = p * w2 + 1.0f / 9.0f;
    p = p * w2 + 1.0f / 7.0f;
    p = p * w2 + 1.0f / 5.0f;
    p = p * w2 + 1.0f / 3.0f;
    return 2.0f * w * (1.0f + w2 * p);
}

/* softplus(x) = max(x, 0) + log1p(e^{-|x|}): stable for any x; for x > 20 it rounds to x, as
 * torch's threshold does. */
static inline float trn_softplus(float x) {
    float ax = x < 0 ? -x : x;
    return (x > 0 ? x : 0.0f) + trn_log1p_unit(fast_expf(-ax));
}

/* 1/sqrt(x) for x > 0: the 0x5f375a86 bit-level seed (Lomont 2003) and three Newton steps
 * (relative error ~2e-7). libm's sqrtf would keep these loops scalar: it may set errno. */
static inline float trn_rsqrt(float x) {
    int32_t i;
    memcpy(&i, &x, sizeof i);
    i = 0x5f375a86 - (i >> 1);
    float y;
    memcpy(&y, &i, sizeof y);
    float hx = 0.5f * x;
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    return y;
}

/* sin and cos together: x = n pi/2 + r with a three-part Cody-Waite split of pi/2 (exact n*C1
 * for |n| < 2^15, i.e. |x| < ~5e4), Cephes' minimax polynomials on |r| <= pi/4, quadrant
 * selection by n mod 4. Absolute error ~1e-7 for |x| < 5e4. Arguments are clamped to +-5e4 so a
 * runaway phase gives a bounded (meaningless) angle rather than a NaN: in float such a phase has
 * no digits below 0.004 rad anyway. TRN's angles stay below ~30 (theta) and O(10) (psi). */
static inline void trn_sincos(float x, float *sn, float *cs) {
    x = x > 5e4f ? 5e4f : (x < -5e4f ? -5e4f : x);
    float n = (x * 0.636619772367581343f + 12582912.0f) - 12582912.0f;
    float r = x - n * 1.5703125f;
    r = r - n * 4.837512969970703125e-4f;
    r = r - n * 7.54978995489188216e-8f;
    float r2 = r * r;
    float sp = ((-1.9515295891e-4f * r2 + 8.3321608736e-3f) * r2 - 1.6666654611e-1f) * r2 * r + r;
    float cp = ((2.443315711809948e-5f * r2 - 1.388731625493765e-3f) * r2 + 4.166664568298827e-2f) * r2 * r2 -
               0.5f * r2 + 1.0f;
    int q = (int)n;
    float s1 = (q & 1) ? cp : sp, c1 = (q & 1) ? sp : cp;
    *sn = (q & 2) ? -s1 : s1;
    *cs = ((q + 1) & 2) ? -c1 : c1;
}

/* One oscillator at one position from its projection pre-activations (a, o, p, g) and
 * lt = ln(1 + t):  A = min(softplus(a), amp_max), omega = clamp(pi sig(o) + omega_base),
 * phi = pi tanh(p), alpha = sig(g), theta = omega lt + phi; the drive (1 - alpha) A e^{i theta}
 * enters the recurrence r_t = alpha r_{t-1} + drive. */
typedef struct TrnOsc {
    float alpha, sn, cs;   /* alpha, sin theta, cos theta */
    float u_re, u_im;      /* the drive */
} TrnOsc;

static inline TrnOsc trn_oscillator(float pa, float po, float pp, float pg, float omega_base, float lt, float amax, int safe) {
    TrnOsc o;
    float sp = trn_softplus(trn_nan0(pa, safe)), A = sp < amax ? sp : amax;
    float om = TRN_PI * trn_sig(po, safe) + omega_base;
    om = om < TRN_OMEGA_LO ? TRN_OMEGA_LO : (om > TRN_OMEGA_HI ? TRN_OMEGA_HI : om);
    float phi = TRN_PI * fast_tanhf(trn_nan0(pp, safe));
    o.alpha = trn_sig(pg, safe);
    trn_sincos(trn_nan0(om * lt + phi, safe), &o.sn, &o.cs);
    float drive = (1.0f - o.alpha) * A;
    o.u_re = drive * o.cs;
    o.u_im = drive * o.sn;
    return o;
}

/* Everything between the scan output r and the gated rho for one (t, k): demodulate by the
 * current phase, erase (beta), state norm, phase-coupled gate. Recomputed identically by the
 * trainer's forward and backward and by the runtime (the struct lives in registers). */
typedef struct TrnGate {
    float z_re, z_im;      /* demodulated scan state r e^{-i theta} */
    float beta;            /* erase strength */
    float nrm2, inv;       /* |v|^2 + 1e-8 and 1 / max(|v|, 1) */
    float p_re, p_im;      /* rho after erase and state norm */
    float rn;              /* 1 / sqrt(|rho|^2 + 1e-6) */
    float sps, cps;        /* sin psi, cos psi */
    float al, gate;        /* phase alignment, gate = sig(lambda al) */
} TrnGate;

static inline TrnGate trn_gate_chain(float rr, float ri, float c, float s, float e_raw, float psi, float lam, int safe) {
    TrnGate g;
    g.z_re = rr * c + ri * s;
    g.z_im = ri * c - rr * s;
    g.beta = trn_sig(e_raw, safe);
    float v_re = (1.0f - g.beta) * g.z_re, v_im = g.z_im;
    g.nrm2 = v_re * v_re + v_im * v_im + 1e-8f; /* n > 1 <=> n^2 > 1 */
    g.inv = g.nrm2 > 1.0f ? trn_rsqrt(g.nrm2) : 1.0f;
    g.p_re = v_re * g.inv;
    g.p_im = v_im * g.inv;
    g.rn = trn_rsqrt(g.p_re * g.p_re + g.p_im * g.p_im + 1e-6f);
    trn_sincos(trn_nan0(psi, safe), &g.sps, &g.cps);
    g.al = (g.p_re * g.cps + g.p_im * g.sps) * g.rn;
    g.gate = trn_sig(lam * g.al, safe);
    return g;
}

/* The features of one position from the scan state r (rr, ri [K]) and the phase (cs, sn [K]):
 * per oscillator the gated rho (xr, xi) and the output gate go = sig(q); out [4K - 2] =
 * [go rho_re, go rho_im, gbar c_re, gbar c_im] with c_k = rho_k rho_{k+1} and gbar_k the mean of
 * go at k and k + 1. P is the projection row [6K] (q at 4K, e at 5K), psi [K]. */
static inline void trn_readout(float *out, float *xr, float *xi, float *go, const float *rr, const float *ri, const float *cs,
                               const float *sn, const float *P, const float *psi, float lam, size_t K, int safe) {
#pragma omp simd
    for (size_t k = 0; k < K; k++) {
        TrnGate gc = trn_gate_chain(rr[k], ri[k], cs[k], sn[k], P[5 * K + k], psi[k], lam, safe);
        float g = trn_sig(P[4 * K + k], safe);
        xr[k] = gc.gate * gc.p_re;
        xi[k] = gc.gate * gc.p_im;
        go[k] = g;
        out[k] = g * xr[k];
        out[K + k] = g * xi[k];
    }
    float *ocr = out + 2 * K, *oci = out + 3 * K - 1;
#pragma omp simd
    for (size_t j = 0; j < K - 1; j++) {
        float gb = 0.5f * (go[j] + go[j + 1]);
        ocr[j] = gb * (xr[j] * xr[j + 1] - xi[j] * xi[j + 1]);
        oci[j] = gb * (xr[j] * xi[j + 1] + xi[j] * xr[j + 1]);
    }
}

/* parameter-golf BigramHashEmbedding (PR #669 and the 2026-03-20 record): the bucket of token cur
 * after prev is (36313 cur XOR 27191 prev) mod (rows - 1), and rows - 1 at a window's first
 * position. torch evaluates it in int32 with wrap-around and a floor modulo; unsigned 32-bit
 * products reproduce the wrap without signed-overflow UB. */
static inline size_t trn_bigram_bucket(int32_t cur, int32_t prev, int first, size_t rows) {
    int32_t mod = (int32_t)(rows - 1);
    if (first || mod <= 0) return mod > 0 ? (size_t)mod : 0;
    uint32_t h = (36313u * (uint32_t)cur) ^ (27191u * (uint32_t)prev);
    int32_t v;
    memcpy(&v, &h, sizeof v);
    int32_t m = v % mod;
    return (size_t)(m < 0 ? m + mod : m);
}

#endif
