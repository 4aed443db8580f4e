/* softmax.h — row softmax and the fused (softcapped) cross-entropy.
 *
 * softmax: in/out [N, C]; backward din += y * (dy - sum(dy * y)).
 *
 * cross-entropy over logits [N, V] with integer targets [N]:
 *   z' = cap * tanh(z / cap) when cap > 0 (the parameter-golf logit softcap), else z' = z;
 *   loss_r = logsumexp(z'_r) - z'_r[target_r]; rows whose target == ignore_index get loss 0.
 * xent_forward writes per-row losses and the row log-sum-exp (saved for backward).
 * xent_backward: dz_r += dloss_r * (softmax(z'_r) - onehot(target_r)) * dz'/dz,
 *   dz'/dz = 1 - tanh^2(z/cap). Rows are independent (OpenMP over rows). */
#ifndef TERN_SOFTMAX_H
#define TERN_SOFTMAX_H

#include <stddef.h>
#include <stdint.h>

void softmax_forward(float *out, const float *in, size_t N, size_t C);
void softmax_backward(float *din, const float *dout, const float *out, size_t N, size_t C);
void softmax_forward_ref(float *out, const float *in, size_t N, size_t C);
void softmax_backward_ref(float *din, const float *dout, const float *out, size_t N, size_t C);

void xent_forward(float *losses, float *lse, const float *logits, const int32_t *targets, size_t N,
                  size_t V, float softcap, int32_t ignore_index);
void xent_backward(float *dlogits, const float *dlosses, const float *logits, const float *lse,
                   const int32_t *targets, size_t N, size_t V, float softcap,
                   int32_t ignore_index);
void xent_forward_ref(float *losses, float *lse, const float *logits, const int32_t *targets,
                      size_t N, size_t V, float softcap, int32_t ignore_index);
void xent_backward_ref(float *dlogits, const float *dlosses, const float *logits,
                       const float *lse, const int32_t *targets, size_t N, size_t V,
                       float softcap, int32_t ignore_index);

/* log-sum-exp of one row of (capped) logits, in double; used by eval and teacher files. */
double logsumexp_row(const float *z, size_t V);

#endif
