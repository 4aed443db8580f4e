/* norm.h — RMSNorm over the last dimension.
 *
 * Shapes: in/out [N, C] (N rows of C). rstd[N] saves 1/sqrt(mean(x^2) + eps) for backward.
 * y = x * rstd * w (w may be NULL: no gain).
 * Backward: dx += rstd*(w.dy) - x * rstd^3 / C * sum(w.dy.x);  dw += sum_rows dy.x.rstd.
 * The dw reduction is split over threads into `scratch` (nthreads*C floats, see
 * rmsnorm_scratch_floats) and summed in a fixed order, so results are bit-reproducible for a
 * given thread count. */
#ifndef TERN_NORM_H
#define TERN_NORM_H

#include <stddef.h>

void rmsnorm_forward(float *out, float *rstd, const float *in, const float *w, size_t N, size_t C,
                     float eps);
void rmsnorm_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                      const float *rstd, size_t N, size_t C, float *scratch);
size_t rmsnorm_scratch_floats(size_t C);

void rmsnorm_forward_ref(float *out, float *rstd, const float *in, const float *w, size_t N,
                         size_t C, float eps);
void rmsnorm_backward_ref(float *din, float *dw, const float *dout, const float *in,
                          const float *w, const float *rstd, size_t N, size_t C);

/* Column sums of a [N, C] matrix accumulated into out[C] (bias / broadcast gradients), with the
 * same deterministic per-thread split. */
void colsum_accumulate(float *out, const float *x, size_t N, size_t C, float *scratch);
/* out[C] += sum_rows a[r,c] * b[r,c] */
void colsum_product_accumulate(float *out, const float *a, const float *b, size_t N, size_t C,
                               float *scratch);
size_t colsum_scratch_floats(size_t C);

#endif
