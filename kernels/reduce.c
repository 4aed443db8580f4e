#include "kernels/reduce.h"

#include <math.h>

#define MAX_CHUNKS 256
#define MIN_CHUNK 16384

static size_t chunk_size(size_t n) {
    size_t c = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    return c < MIN_CHUNK ? MIN_CHUNK : c;
}

static double reduce_generic(const float *x, const float *y, size_t n, int mode) {
    double part[MAX_CHUNKS];
    size_t cs = chunk_size(n);
    size_t nc = (n + cs - 1) / cs;
#pragma omp parallel for schedule(static) if (nc > 1)
    for (size_t c = 0; c < nc; c++) {
        size_t i0 = c * cs, i1 = i0 + cs < n ? i0 + cs : n;
        double s = 0;
        if (mode == 0)
            for (size_t i = i0; i < i1; i++) s += x[i];
        else if (mode == 1)
            for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
        else
            for (size_t i = i0; i < i1; i++) s += (double)x[i] * y[i];
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < nc; c++) s += part[c];
    return s;
}

double reduce_sum(const float *x, size_t n) { return reduce_generic(x, NULL, n, 0); }
double reduce_sumsq(const float *x, size_t n) { return reduce_generic(x, NULL, n, 1); }
double reduce_dot(const float *x, const float *y, size_t n) { return reduce_generic(x, y, n, 2); }

int reduce_all_finite(const float *x, size_t n) {
    /* sum of squares is non-finite iff some element is non-finite (or it overflows, which for
     * gradients is just as bad) */
    return isfinite(reduce_sumsq(x, n));
}
