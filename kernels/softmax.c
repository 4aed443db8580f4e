#include "kernels/softmax.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fastmath.h"

#define PAR_ROWS_MIN 16

void softmax_forward(float *restrict out, const float *restrict in, size_t N, size_t C) {
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS_MIN && N * C >= 32768)
    for (size_t r = 0; r < N; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        float m = -INFINITY;
#pragma omp simd reduction(max : m)
        for (size_t c = 0; c < C; c++) m = x[c] > m ? x[c] : m;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t c = 0; c < C; c++) {
            y[c] = fast_expf(x[c] - m);
            s += y[c];
        }
        float inv = 1.0f / s;
#pragma omp simd
        for (size_t c = 0; c < C; c++) y[c] *= inv;
    }
}

void softmax_backward(float *restrict din, const float *restrict dout, const float *restrict out,
                      size_t N, size_t C) {
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS_MIN && N * C >= 32768)
    for (size_t r = 0; r < N; r++) {
        const float *y = out + r * C, *dy = dout + r * C;
        float *dx = din + r * C;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (size_t c = 0; c < C; c++) dot += dy[c] * y[c];
#pragma omp simd
        for (size_t c = 0; c < C; c++) dx[c] += y[c] * (dy[c] - dot);
    }
}

void softmax_forward_ref(float *out, const float *in, size_t N, size_t C) {
    for (size_t r = 0; r < N; r++) {
        double m = -INFINITY, s = 0;
        for (size_t c = 0; c < C; c++) m = fmax(m, in[r * C + c]);
        for (size_t c = 0; c < C; c++) s += exp(in[r * C + c] - m);
        for (size_t c = 0; c < C; c++) out[r * C + c] = (float)(exp(in[r * C + c] - m) / s);
    }
}

void softmax_backward_ref(float *din, const float *dout, const float *out, size_t N, size_t C) {
    for (size_t r = 0; r < N; r++) {
        double dot = 0;
        for (size_t c = 0; c < C; c++) dot += (double)dout[r * C + c] * out[r * C + c];
        for (size_t c = 0; c < C; c++)
            din[r * C + c] += (float)(out[r * C + c] * (dout[r * C + c] - dot));
    }
}

double logsumexp_row(const float *z, size_t V) {
    double m = -INFINITY, s = 0;
    for (size_t c = 0; c < V; c++) m = z[c] > m ? z[c] : m;
    for (size_t c = 0; c < V; c++) s += exp((double)z[c] - m);
    return m + log(s);
}

/* Row loop body shared by forward: caps into `buf` when needed. */
void xent_forward(float *restrict losses, float *restrict lse, const float *restrict logits,
                  const int32_t *restrict targets, size_t N, size_t V, float softcap,
                  int32_t ignore_index) {
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *z = logits + r * V;
        float m = -INFINITY;
        float s = 0.0f;
        if (softcap > 0) {
            float inv = 1.0f / softcap;
            /* capped values are bounded by cap, so shifting by cap is safe and saves a pass */
            m = softcap;
#pragma omp simd reduction(+ : s)
            for (size_t c = 0; c < V; c++) s += fast_expf(softcap * fast_tanhf(z[c] * inv) - m);
        } else {
#pragma omp simd reduction(max : m)
            for (size_t c = 0; c < V; c++) m = z[c] > m ? z[c] : m;
#pragma omp simd reduction(+ : s)
            for (size_t c = 0; c < V; c++) s += fast_expf(z[c] - m);
        }
        float l = m + logf(s);
        lse[r] = l;
        int32_t t = targets[r];
        if (t == ignore_index || t < 0 || (size_t)t >= V) {
            losses[r] = 0.0f;
        } else {
            float zt = softcap > 0 ? softcap * fast_tanhf(z[t] / softcap) : z[t];
            losses[r] = l - zt;
        }
    }
}

void xent_backward(float *restrict dlogits, const float *restrict dlosses,
                   const float *restrict logits, const float *restrict lse,
                   const int32_t *restrict targets, size_t N, size_t V, float softcap,
                   int32_t ignore_index) {
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS_MIN)
    for (size_t r = 0; r < N; r++) {
        int32_t t = targets[r];
        if (t == ignore_index || t < 0 || (size_t)t >= V) continue;
        float g = dlosses[r];
        if (g == 0.0f) continue;
        const float *z = logits + r * V;
        float *dz = dlogits + r * V;
        float l = lse[r];
        if (softcap > 0) {
            float inv = 1.0f / softcap;
#pragma omp simd
            for (size_t c = 0; c < V; c++) {
                float th = fast_tanhf(z[c] * inv);
                float p = fast_expf(softcap * th - l);
                dz[c] += g * p * (1.0f - th * th);
            }
            float th = fast_tanhf(z[t] * inv);
            dz[t] -= g * (1.0f - th * th);
        } else {
#pragma omp simd
            for (size_t c = 0; c < V; c++) dz[c] += g * fast_expf(z[c] - l);
            dz[t] -= g;
        }
    }
}

static double cap_ref(double z, float cap) { return cap > 0 ? cap * tanh(z / cap) : z; }

void xent_forward_ref(float *losses, float *lse, const float *logits, const int32_t *targets,
                      size_t N, size_t V, float softcap, int32_t ignore_index) {
    for (size_t r = 0; r < N; r++) {
        double m = -INFINITY, s = 0;
        for (size_t c = 0; c < V; c++) m = fmax(m, cap_ref(logits[r * V + c], softcap));
        for (size_t c = 0; c < V; c++) s += exp(cap_ref(logits[r * V + c], softcap) - m);
        double l = m + log(s);
        lse[r] = (float)l;
        int32_t t = targets[r];
        losses[r] = (t == ignore_index || t < 0 || (size_t)t >= V)
                        ? 0.0f
                        : (float)(l - cap_ref(logits[r * V + t], softcap));
    }
}

void xent_backward_ref(float *dlogits, const float *dlosses, const float *logits,
                       const float *lse, const int32_t *targets, size_t N, size_t V,
                       float softcap, int32_t ignore_index) {
    for (size_t r = 0; r < N; r++) {
        int32_t t = targets[r];
        if (t == ignore_index || t < 0 || (size_t)t >= V) continue;
        for (size_t c = 0; c < V; c++) {
            double z = logits[r * V + c];
            double d = softcap > 0 ? 1 - tanh(z / softcap) * tanh(z / softcap) : 1;
            double p = exp(cap_ref(z, softcap) - lse[r]);
            dlogits[r * V + c] += (float)(dlosses[r] * (p - (c == (size_t)t)) * d);
        }
    }
}

/* ---------------------------------------------------------------- distillation */
/* The per-row quantities both directions need: student log-sum-exps at 1 and T, teacher tail
 * mass m and student tail mass Q. */
typedef struct DistRow {
    double lse1, lseT, m, Q;
} DistRow;
_Static_assert(sizeof(DistRow) == DISTILL_ROW_STATS * sizeof(double), "DistRow is the stats record");

static DistRow distill_row(const float *zc, const int32_t *idx, const float *val, float lse, size_t V, size_t k,
                           float temp) {
    DistRow d;
    double mx = -INFINITY;
    for (size_t i = 0; i < V; i++) mx = zc[i] > mx ? zc[i] : mx;
    double s1 = 0, sT = 0;
    for (size_t i = 0; i < V; i++) {
        s1 += exp((double)zc[i] - mx);
        sT += exp(((double)zc[i] - mx) / temp);
    }
    d.lse1 = mx + log(s1);
    d.lseT = mx / temp + log(sT);
    double ps = 0, qs = 0;
    for (size_t j = 0; j < k; j++) {
        ps += exp((double)val[j] - lse);
        qs += exp((double)zc[idx[j]] / temp - d.lseT);
    }
    d.m = (k < V && 1.0 - ps > 0) ? 1.0 - ps : 0.0; /* k = V: no tail (its mass is rounding noise) */
    d.Q = 1.0 - qs > 1e-30 ? 1.0 - qs : 1e-30;
    return d;
}

void distill_forward(float *losses, float *zc, double *stats, const float *logits, const int32_t *targets,
                     const int32_t *tidx, const float *tval, const float *tlse, size_t N, size_t V, size_t k, float softcap,
                     float temp, float alpha) {
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *z = logits + r * V;
        float *c = zc + r * V;
        for (size_t i = 0; i < V; i++) c[i] = softcap > 0 ? softcap * tanhf(z[i] / softcap) : z[i];
        const int32_t *idx = tidx + r * k;
        const float *val = tval + r * k;
        DistRow d = distill_row(c, idx, val, tlse[r], V, k, temp);
        memcpy(stats + r * DISTILL_ROW_STATS, &d, sizeof d);
        double soft = 0;
        for (size_t j = 0; j < k; j++) {
            double lp = (double)val[j] - tlse[r];
            soft += exp(lp) * (lp - ((double)c[idx[j]] / temp - d.lseT));
        }
        if (d.m > 0) soft += d.m * (log(d.m) - log(d.Q));
        double ce = d.lse1 - c[targets[r]];
        losses[r] = (float)((double)alpha * temp * temp * soft + (1.0 - alpha) * ce);
    }
}

typedef struct IdxP {
    int32_t i;
    float lp; /* teacher log-prob */
} IdxP;

static int idxp_cmp(const void *a, const void *b) {
    int32_t x = ((const IdxP *)a)->i, y = ((const IdxP *)b)->i;
    return (x > y) - (x < y);
}

void distill_backward(float *dlogits, const float *dlosses, const float *zc, const double *stats, const int32_t *targets,
                      const int32_t *tidx, const float *tval, const float *tlse, size_t N, size_t V, size_t k, float softcap,
                      float temp, float alpha) {
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *c = zc + r * V;
        const int32_t *idx = tidx + r * k;
        const float *val = tval + r * k;
        float *dz = dlogits + r * V;
        DistRow d; /* forward's row statistics */
        memcpy(&d, stats + r * DISTILL_ROW_STATS, sizeof d);
        /* walk the vocabulary with the top-k set sorted by id, so each class takes its own
         * formula (no large terms that cancel when the student's tail Q is tiny) */
        IdxP s[DISTILL_MAX_K];
        for (size_t j = 0; j < k; j++) s[j] = (IdxP){idx[j], val[j] - tlse[r]};
        qsort(s, k, sizeof *s, idxp_cmp);
        double g = dlosses[r], aT = (double)alpha * temp, tail = d.m / d.Q;
        size_t y = (size_t)targets[r], j = 0;
        for (size_t i = 0; i < V; i++) {
            double q = exp((double)c[i] / temp - d.lseT), q1 = exp((double)c[i] - d.lse1);
            double soft;
            if (j < k && (size_t)s[j].i == i) soft = q - exp((double)s[j++].lp); /* in S: q - p */
            else soft = d.m > 0 ? q - tail * q : q;                            /* tail: q - m q / Q */
            double gi = aT * soft + (1.0 - alpha) * (q1 - (i == y ? 1.0 : 0.0));
            if (softcap > 0) gi *= 1.0 - ((double)c[i] / softcap) * ((double)c[i] / softcap);
            dz[i] += (float)(g * gi);
        }
    }
}
