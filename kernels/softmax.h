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

/* Distillation from a teacher's top-k (Hinton et al., arXiv 1503.02531; top-k storage with the
 * remaining mass as one "tail" class, its size known from the teacher's full log-sum-exp).
 * Row r: z' = softcapped logits (written to zc [N, V], reused by backward); q = softmax(z'/T);
 * teacher log-probs on its top-k set S: lp_j = tval_j - tlse_r (tval already divided by T);
 * p_j = exp(lp_j); tail mass m = max(0, 1 - sum_S p_j); student tail Q = 1 - sum_S q_j.
 *   soft_r = sum_S p_j (lp_j - log q_j) + m (log m - log Q)     (KL over S + the tail class)
 *   loss_r = alpha T^2 soft_r + (1 - alpha) (logsumexp(z') - z'_y)
 * Gradient: dz'_i = alpha T (q_i - phat_i) + (1 - alpha) (softmax(z')_i - [i = y]), where phat
 * is p on S and m q_i / Q off S (the teacher's tail spread like the student's), times the
 * softcap's 1 - (z'/cap)^2. Sums in double; rows in parallel. */
#define DISTILL_MAX_K 4096 /* largest teacher top-k */
/* stats [N * DISTILL_ROW_STATS] (doubles): per row the student's log-sum-exps at 1 and T and
 * the teacher's and the student's tail masses, written by forward and read by backward. */
#define DISTILL_ROW_STATS 4
void distill_forward(float *losses, float *zc, double *stats, const float *logits, const int32_t *targets,
                     const int32_t *tidx, const float *tval, const float *tlse, size_t N, size_t V, size_t k, float softcap,
                     float temp, float alpha);
void distill_backward(float *dlogits, const float *dlosses, const float *zc, const double *stats, const int32_t *targets,
                      const int32_t *tidx, const float *tval, const float *tlse, size_t N, size_t V, size_t k, float softcap,
                      float temp, float alpha);

/* log-sum-exp of one row of (capped) logits, in double; used by eval and teacher files. */
double logsumexp_row(const float *z, size_t V);

#endif
