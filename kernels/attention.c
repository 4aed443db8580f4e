#include "kernels/attention.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fastmath.h"
#include "kernels/gemm.h"
#include "kernels/meminfo.h"
#include "kernels/util.h"

int rope_table_init(RopeTable *rt, size_t T, size_t D, float base) {
    memset(rt, 0, sizeof *rt);
    if (D % 2 || T == 0) return -1;
    size_t half = D / 2;
    if (T * D * sizeof(float) > mem_available().bytes) return -1; /* T and D come from configs */
    rt->T = T;
    rt->D = D;
    rt->base = base;
    rt->cos = xmalloc(T * half * sizeof(float));
    rt->sin = xmalloc(T * half * sizeof(float));
    for (size_t i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(base, (float)(2 * i) / (float)D);
        for (size_t t = 0; t < T; t++) {
            float f = (float)t * inv_freq;
            rt->cos[t * half + i] = (float)cos((double)f);
            rt->sin[t * half + i] = (float)sin((double)f);
        }
    }
    return 0;
}

void rope_table_free(RopeTable *rt) {
    xfree(rt->cos);
    xfree(rt->sin);
    memset(rt, 0, sizeof *rt);
}

void rope_forward(float *restrict out, const float *restrict in, const RopeTable *rt, size_t B,
                  size_t T, size_t nh) {
    size_t D = rt->D, half = D / 2;
#pragma omp parallel for collapse(2) schedule(static) if (B * T * nh * D >= 65536)
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            const float *c = rt->cos + t * half, *s = rt->sin + t * half;
            for (size_t h = 0; h < nh; h++) {
                size_t off = ((b * T + t) * nh + h) * D;
                const float *x = in + off;
                float *y = out + off;
#pragma omp simd
                for (size_t i = 0; i < half; i++) {
                    float x1 = x[i], x2 = x[i + half];
                    y[i] = x1 * c[i] + x2 * s[i];
                    y[i + half] = -x1 * s[i] + x2 * c[i];
                }
            }
        }
}

void rope_backward(float *restrict din, const float *restrict dout, const RopeTable *rt, size_t B,
                   size_t T, size_t nh) {
    size_t D = rt->D, half = D / 2;
#pragma omp parallel for collapse(2) schedule(static) if (B * T * nh * D >= 65536)
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            const float *c = rt->cos + t * half, *s = rt->sin + t * half;
            for (size_t h = 0; h < nh; h++) {
                size_t off = ((b * T + t) * nh + h) * D;
                const float *d = dout + off;
                float *g = din + off;
#pragma omp simd
                for (size_t i = 0; i < half; i++) {
                    float d1 = d[i], d2 = d[i + half];
                    g[i] += d1 * c[i] - d2 * s[i];
                    g[i + half] += d1 * s[i] + d2 * c[i];
                }
            }
        }
}

/* Per thread: S/P block [ATTN_BLOCK, T] and dP block [ATTN_BLOCK, T]. */
size_t attention_scratch_floats(size_t T) {
    return (size_t)omp_get_max_threads() * 2 * ATTN_BLOCK * T;
}

/* Turns the score block S[rows, ncols] (row r is absolute position i0 + r) into P in place,
 * with the causal mask; writes lse per row. */
static void block_softmax(float *restrict S, float *restrict lse, size_t rows, size_t ncols,
                          size_t i0) {
    for (size_t r = 0; r < rows; r++) {
        float *s = S + r * ncols;
        size_t nvalid = i0 + r + 1;
        float m = -INFINITY;
#pragma omp simd reduction(max : m)
        for (size_t c = 0; c < nvalid; c++) m = s[c] > m ? s[c] : m;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (size_t c = 0; c < nvalid; c++) {
            float e = fast_expf(s[c] - m);
            s[c] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (size_t c = 0; c < nvalid; c++) s[c] *= inv;
        for (size_t c = nvalid; c < ncols; c++) s[c] = 0.0f;
        lse[r] = m + logf(sum);
    }
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       size_t B, size_t T, size_t H, size_t G, size_t D, float scale,
                       float *scratch) {
    size_t nblk = (T + ATTN_BLOCK - 1) / ATTN_BLOCK;
    size_t rep = H / G;
    size_t ntask = B * H * nblk;
    size_t qs = H * D, ks = G * D; /* row strides */
    /* Later row blocks cost more (longer prefix); dynamic keeps threads busy. Each task writes
     * disjoint rows of out/lse, so the result does not depend on the schedule. */
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t task = 0; task < ntask; task++) {
        size_t blk = nblk - 1 - task % nblk; /* longest first */
        size_t bh = task / nblk, b = bh / H, h = bh % H, g = h / rep;
        float *S = scratch + (size_t)omp_get_thread_num() * 2 * ATTN_BLOCK * T;
        size_t i0 = blk * ATTN_BLOCK, rows = TERN_MIN(ATTN_BLOCK, T - i0), ncols = i0 + rows;
        const float *Q = q + (b * T + i0) * qs + h * D;
        const float *K = k + b * T * ks + g * D;
        const float *Vv = v + b * T * ks + g * D;
        sgemm(0, 1, rows, ncols, D, scale, Q, qs, K, ks, 0.0f, S, ncols);
        block_softmax(S, lse + (b * H + h) * T + i0, rows, ncols, i0);
        sgemm(0, 0, rows, D, ncols, 1.0f, S, ncols, Vv, ks, 0.0f, out + (b * T + i0) * qs + h * D,
              qs);
    }
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *out, const float *lse,
                        size_t B, size_t T, size_t H, size_t G, size_t D, float scale,
                        float *scratch) {
    size_t nblk = (T + ATTN_BLOCK - 1) / ATTN_BLOCK;
    size_t rep = H / G;
    size_t qs = H * D, ks = G * D;
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t bg = 0; bg < B * G; bg++) {
        size_t b = bg / G, g = bg % G;
        float *P = scratch + (size_t)omp_get_thread_num() * 2 * ATTN_BLOCK * T;
        float *dP = P + ATTN_BLOCK * T;
        const float *K = k + b * T * ks + g * D;
        const float *Vv = v + b * T * ks + g * D;
        float *dK = dk + b * T * ks + g * D;
        float *dV = dv + b * T * ks + g * D;
        for (size_t h = g * rep; h < (g + 1) * rep; h++) {
            const float *L = lse + (b * H + h) * T;
            for (size_t blk = 0; blk < nblk; blk++) {
                size_t i0 = blk * ATTN_BLOCK, rows = TERN_MIN(ATTN_BLOCK, T - i0), ncols = i0 + rows;
                const float *Q = q + (b * T + i0) * qs + h * D;
                const float *dO = dout + (b * T + i0) * qs + h * D;
                const float *O = out + (b * T + i0) * qs + h * D;
                float *dQ = dq + (b * T + i0) * qs + h * D;
                /* recompute P */
                sgemm(0, 1, rows, ncols, D, scale, Q, qs, K, ks, 0.0f, P, ncols);
                for (size_t r = 0; r < rows; r++) {
                    float *p = P + r * ncols;
                    size_t nvalid = i0 + r + 1;
                    float l = L[i0 + r];
#pragma omp simd
                    for (size_t c = 0; c < nvalid; c++) p[c] = fast_expf(p[c] - l);
                    for (size_t c = nvalid; c < ncols; c++) p[c] = 0.0f;
                }
                /* dV += P^T dO */
                sgemm(1, 0, ncols, D, rows, 1.0f, P, ncols, dO, qs, 1.0f, dV, ks);
                /* dP = dO V^T */
                sgemm(0, 1, rows, ncols, D, 1.0f, dO, qs, Vv, ks, 0.0f, dP, ncols);
                for (size_t r = 0; r < rows; r++) {
                    const float *o = O + r * qs, *d = dO + r * qs;
                    float Dr = 0.0f;
#pragma omp simd reduction(+ : Dr)
                    for (size_t j = 0; j < D; j++) Dr += o[j] * d[j];
                    float *p = P + r * ncols, *dp = dP + r * ncols;
                    size_t nvalid = i0 + r + 1;
#pragma omp simd
                    for (size_t c = 0; c < nvalid; c++) p[c] = p[c] * (dp[c] - Dr);
                }
                /* P now holds dS (zero in the masked part) */
                sgemm(0, 0, rows, D, ncols, scale, P, ncols, K, ks, 1.0f, dQ, qs);
                sgemm(1, 0, ncols, D, rows, scale, P, ncols, Q, qs, 1.0f, dK, ks);
            }
        }
    }
}

void attention_forward_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                           size_t B, size_t T, size_t H, size_t G, size_t D, float scale) {
    size_t rep = H / G;
    double *p = malloc(T * sizeof(double));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            size_t g = h / rep;
            for (size_t t = 0; t < T; t++) {
                const float *qt = q + ((b * T + t) * H + h) * D;
                double m = -INFINITY, sum = 0;
                for (size_t s = 0; s <= t; s++) {
                    const float *ks = k + ((b * T + s) * G + g) * D;
                    double dot = 0;
                    for (size_t j = 0; j < D; j++) dot += (double)qt[j] * ks[j];
                    p[s] = dot * scale;
                    m = fmax(m, p[s]);
                }
                for (size_t s = 0; s <= t; s++) sum += (p[s] = exp(p[s] - m));
                lse[(b * H + h) * T + t] = (float)(m + log(sum));
                float *o = out + ((b * T + t) * H + h) * D;
                for (size_t j = 0; j < D; j++) {
                    double acc = 0;
                    for (size_t s = 0; s <= t; s++) acc += p[s] / sum * v[((b * T + s) * G + g) * D + j];
                    o[j] = (float)acc;
                }
            }
        }
    free(p);
}

void attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, size_t B, size_t T, size_t H,
                            size_t G, size_t D, float scale) {
    size_t rep = H / G;
    double *p = malloc(T * sizeof(double)), *dp = malloc(T * sizeof(double));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            size_t g = h / rep;
            for (size_t t = 0; t < T; t++) {
                const float *qt = q + ((b * T + t) * H + h) * D;
                const float *dot_ = dout + ((b * T + t) * H + h) * D;
                double m = -INFINITY, sum = 0;
                for (size_t s = 0; s <= t; s++) {
                    double dot = 0;
                    for (size_t j = 0; j < D; j++) dot += (double)qt[j] * k[((b * T + s) * G + g) * D + j];
                    p[s] = dot * scale;
                    m = fmax(m, p[s]);
                }
                for (size_t s = 0; s <= t; s++) sum += (p[s] = exp(p[s] - m));
                double Dr = 0;
                for (size_t s = 0; s <= t; s++) {
                    p[s] /= sum;
                    double acc = 0;
                    for (size_t j = 0; j < D; j++) acc += (double)dot_[j] * v[((b * T + s) * G + g) * D + j];
                    dp[s] = acc;
                    Dr += p[s] * acc;
                }
                for (size_t s = 0; s <= t; s++) {
                    double ds = p[s] * (dp[s] - Dr) * scale;
                    for (size_t j = 0; j < D; j++) {
                        dq[((b * T + t) * H + h) * D + j] += (float)(ds * k[((b * T + s) * G + g) * D + j]);
                        dk[((b * T + s) * G + g) * D + j] += (float)(ds * qt[j]);
                        dv[((b * T + s) * G + g) * D + j] += (float)(p[s] * dot_[j]);
                    }
                }
            }
        }
    free(p);
    free(dp);
}
