/* reduce.h — deterministic parallel reductions.
 *
 * An OpenMP `reduction(+:)` clause combines thread partials in an unspecified order, which makes
 * float results differ from run to run. These split the array into fixed chunks (independent of
 * the thread count), sum each chunk in double, and combine the chunk sums in index order: the
 * result is bit-identical for any number of threads. */
#ifndef TERN_REDUCE_H
#define TERN_REDUCE_H

#include <stddef.h>

double reduce_sum(const float *x, size_t n);
double reduce_sumsq(const float *x, size_t n);
double reduce_dot(const float *x, const float *y, size_t n);
int reduce_all_finite(const float *x, size_t n);

#endif
