#include "kernels/norm.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define PAR_ROWS_MIN 64

void rmsnorm_forward(float *restrict out, float *restrict rstd, const float *restrict in,
                     const float *restrict w, size_t N, size_t C, float eps) {
#pragma omp parallel for schedule(static) if (N >= PAR_ROWS_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (size_t c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        rstd[r] = s;
        if (w) {
#pragma omp simd
            for (size_t c = 0; c < C; c++) y[c] = x[c] * s * w[c];
        } else {
#pragma omp simd
            for (size_t c = 0; c < C; c++) y[c] = x[c] * s;
        }
    }
}

size_t rmsnorm_scratch_floats(size_t C) { return (size_t)omp_get_max_threads() * C; }
size_t colsum_scratch_floats(size_t C) { return (size_t)omp_get_max_threads() * C; }

/* Sums the per-thread partials [nt, C] into out in thread order. */
static void reduce_partials(float *restrict out, const float *restrict part, int nt, size_t C) {
    for (int t = 0; t < nt; t++) {
        const float *p = part + (size_t)t * C;
#pragma omp simd
        for (size_t c = 0; c < C; c++) out[c] += p[c];
    }
}

void rmsnorm_backward(float *restrict din, float *restrict dw, const float *restrict dout,
                      const float *restrict in, const float *restrict w, const float *restrict rstd,
                      size_t N, size_t C, float *restrict scratch) {
    int nt_max = omp_get_max_threads();
    int nt_used = 1;
    if (dw) memset(scratch, 0, (size_t)nt_max * C * sizeof(float));
#pragma omp parallel if (N >= PAR_ROWS_MIN)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
        nt_used = nt;
        float *part = dw ? scratch + (size_t)tid * C : NULL;
        size_t r0 = N * (size_t)tid / (size_t)nt, r1 = N * (size_t)(tid + 1) / (size_t)nt;
        for (size_t r = r0; r < r1; r++) {
            const float *x = in + r * C, *dy = dout + r * C;
            float *dx = din + r * C;
            float s = rstd[r];
            float dot = 0.0f;
            if (w) {
#pragma omp simd reduction(+ : dot)
                for (size_t c = 0; c < C; c++) dot += w[c] * dy[c] * x[c];
            } else {
#pragma omp simd reduction(+ : dot)
                for (size_t c = 0; c < C; c++) dot += dy[c] * x[c];
            }
            float k = dot * s * s * s / (float)C;
            if (w) {
#pragma omp simd
                for (size_t c = 0; c < C; c++) dx[c] += s * w[c] * dy[c] - k * x[c];
            } else {
#pragma omp simd
                for (size_t c = 0; c < C; c++) dx[c] += s * dy[c] - k * x[c];
            }
            if (part) {
#pragma omp simd
                for (size_t c = 0; c < C; c++) part[c] += dy[c] * x[c] * s;
            }
        }
    }
    if (dw) reduce_partials(dw, scratch, nt_used, C);
}

void rmsnorm_forward_ref(float *out, float *rstd, const float *in, const float *w, size_t N,
                         size_t C, float eps) {
    for (size_t r = 0; r < N; r++) {
        double ss = 0;
        for (size_t c = 0; c < C; c++) ss += (double)in[r * C + c] * in[r * C + c];
        double s = 1.0 / sqrt(ss / (double)C + eps);
        rstd[r] = (float)s;
        for (size_t c = 0; c < C; c++) out[r * C + c] = (float)(in[r * C + c] * s * (w ? w[c] : 1.0));
    }
}

void rmsnorm_backward_ref(float *din, float *dw, const float *dout, const float *in,
                          const float *w, const float *rstd, size_t N, size_t C) {
    for (size_t r = 0; r < N; r++) {
        double s = rstd[r], dot = 0;
        for (size_t c = 0; c < C; c++) dot += (w ? w[c] : 1.0) * dout[r * C + c] * in[r * C + c];
        for (size_t c = 0; c < C; c++) {
            double g = (w ? w[c] : 1.0) * dout[r * C + c];
            din[r * C + c] += (float)(s * g - dot * s * s * s / (double)C * in[r * C + c]);
            if (dw) dw[c] += (float)(dout[r * C + c] * in[r * C + c] * s);
        }
    }
}

void colsum_accumulate(float *restrict out, const float *restrict x, size_t N, size_t C,
                       float *restrict scratch) {
    colsum_product_accumulate(out, x, NULL, N, C, scratch);
}

void colsum_product_accumulate(float *restrict out, const float *restrict a,
                               const float *restrict b, size_t N, size_t C,
                               float *restrict scratch) {
    int nt_max = omp_get_max_threads();
    int nt_used = 1;
    memset(scratch, 0, (size_t)nt_max * C * sizeof(float));
#pragma omp parallel if (N * C >= 65536)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp single
        nt_used = nt;
        float *part = scratch + (size_t)tid * C;
        size_t r0 = N * (size_t)tid / (size_t)nt, r1 = N * (size_t)(tid + 1) / (size_t)nt;
        for (size_t r = r0; r < r1; r++) {
            const float *ar = a + r * C;
            if (b) {
                const float *br = b + r * C;
#pragma omp simd
                for (size_t c = 0; c < C; c++) part[c] += ar[c] * br[c];
            } else {
#pragma omp simd
                for (size_t c = 0; c < C; c++) part[c] += ar[c];
            }
        }
    }
    reduce_partials(out, scratch, nt_used, C);
}
