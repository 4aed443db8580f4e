/* rt_compare.h — what the export -> runtime tests compare: the largest difference of two arrays
 * (NaN counts as the worst) and the mean next-token cross-entropy of a window's logits. */
#ifndef TERN_TEST_RT_COMPARE_H
#define TERN_TEST_RT_COMPARE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* cross-entropy of the next token at every position, averaged: what evaluation measures */
static inline double mean_ce(const float *z, const int32_t *ids, size_t T, size_t V) {
    double s = 0;
    for (size_t i = 0; i + 1 < T; i++) {
        const float *l = z + i * V;
        double mx = -1e30, sum = 0;
        for (size_t v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        for (size_t v = 0; v < V; v++) sum += exp(l[v] - mx);
        s += mx + log(sum) - l[ids[i + 1]];
    }
    return s / (double)(T - 1);
}

static inline double max_diff(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= w)) w = d; /* NaN counts as the worst */
    }
    return w;
}

#endif
