/* delta.h — the gated delta rule (Gated DeltaNet's token mixer, Yang et al. 2024, arXiv
 * 2412.06464) over whole sequences, forward and backward, in two forms:
 *
 *   recurrent  the per-token recurrence (kernels/gdn_math.h gdn_step), the reference: forward
 *              keeps nothing; backward recomputes every state S_t of its (batch, head) into
 *              scratch and walks t = T-1 .. 0 (../shared/notes/backbones.md §2.3).
 *   chunked    the chunkwise-parallel WY / UT form (fla-org/flash-linear-attention,
 *              fla/ops/gated_delta_rule/chunk.py; backbones.md §2.4): inside a chunk of L tokens
 *              everything is a matrix product, only the chunk-start state is carried.
 *
 * Shapes (row-major; the layer's natural layout, no transposes):
 *   q, k   [B, T, H, dk]   q already L2-normalised and scaled by dk^-1/2, k L2-normalised
 *   v, o   [B, T, H, dv]
 *   g, beta [B, T, H]      g = log alpha <= 0 (the log-space decay), beta in [0, 1]
 * The state starts at zero in every window. With gamma_i = g_0 + .. + g_i inside a chunk (the
 * chunk-local cumulative log-decay, so every exponent formed is a difference gamma_i - gamma_j,
 * i >= j, and <= 0):
 *   A_ij = beta_i (k_i . k_j) e^{gamma_i - gamma_j}  (i > j)       strictly lower
 *   (I + A) U = diag(beta) V - diag(beta e^gamma) K S0             (the UT transform: U = T X,
 *                                                                  T = (I + A)^-1, by forward
 *                                                                  substitution; U_i = u_i,
 *                                                                  the true per-token errors)
 *   O = diag(e^gamma) Q S0 + ((Q K^T) (.) Gamma) U,   Gamma_ij = e^{gamma_i - gamma_j} (i >= j)
 *   S_end = e^{gamma_L} S0 + sum_j e^{gamma_L - gamma_j} k_j u_j^T
 * (the WY representation W = T diag(beta e^gamma) K, U0 = T diag(beta) V of fla, applied to S0
 * at once: on the CPU the (batch, head) pairs are the parallel axis and the chunks run in order,
 * so S0 is known when the chunk starts).
 *
 * Memory (chunked): the forward saves the chunk-start states, B H ceil(T/L) dk dv floats, i.e.
 * 4 dk dv / L bytes per token and head (256 B at dk = dv = L = 64), and recomputes the rest of a
 * chunk (gamma, A, U, the masks) in backward from its start state. The recurrent form saves
 * nothing and needs T dk dv floats of scratch per thread in backward.
 *
 * Backward ACCUMULATES into dq, dk, dv, dg, dbeta. Work is parallel over (batch, head) pairs,
 * each one thread's from start to end, so results are bit-identical for any thread count. */
#ifndef TERN_DELTA_H
#define TERN_DELTA_H

#include <stddef.h>

typedef struct GdnShape {
    size_t B, T, H, dk, dv;
} GdnShape;

typedef enum GdnKernel { GDN_CHUNKED = 0, GDN_RECURRENT = 1 } GdnKernel;

/* "chunked" | "recurrent"; -1 if unknown */
int gdn_kernel_from_name(const char *s);
const char *gdn_kernel_name(GdnKernel k);

/* Floats of saved state the forward keeps for backward (0 for the recurrent form). */
size_t gdn_saved_floats(GdnKernel kind, const GdnShape *s, size_t chunk);
/* Floats of scratch forward or backward needs (for every thread OpenMP may use). */
size_t gdn_work_floats(GdnKernel kind, const GdnShape *s, size_t chunk);

/* o = gated delta rule(q, k, v, g, beta); saved: gdn_saved_floats (the chunk-start states). */
void gdn_forward(GdnKernel kind, float *o, float *saved, const float *q, const float *k, const float *v,
                 const float *g, const float *beta, const GdnShape *s, size_t chunk, float *work);
/* dq, dk, dv, dg, dbeta += the gradients for dout; inputs and saved as the forward's. */
void gdn_backward(GdnKernel kind, float *dq, float *dk, float *dv, float *dg, float *dbeta, const float *dout,
                  const float *saved, const float *q, const float *k, const float *v, const float *g, const float *beta,
                  const GdnShape *s, size_t chunk, float *work);

#endif
