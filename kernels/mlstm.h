/* mlstm.h — the mLSTM cell (Beck et al. 2024, "xLSTM", arXiv 2405.04517): matrix memory with an
 * exponential input gate, a sigmoid or exponential forget gate, a normaliser and the max
 * stabiliser, forward and backward in three forms that compute the same function.
 *
 * Per batch b, head h, position t (q, k, v [D] rows; ig, fg scalar pre-activations):
 *   lf_t = log sigmoid(fg_t)  (or fg_t: exponential forget gate)
 *   C_t  = f_t C_{t-1} + i_t (k_t / sqrt(D)) v_t^T      n_t = f_t n_{t-1} + i_t k_t / sqrt(D)
 *   h_t  = C_t^T q_t / (max(|n_t . q_t|, 1) + ε)         f_t = e^{lf_t}, i_t = e^{ig_t}
 * computed stabilised (kernels/mlstm_math.h): everything relative to m_t = max(lf_t + m_{t-1},
 * ig_t), m_{-1} = -inf (the empty state weighs nothing, so m_t is the largest log weight of a
 * token, xLSTM's parallel-form stabiliser), and no exponent is ever positive. The output does not
 * depend on m (ε is in
 * the true units), which makes every form below the same function and lets the backward hold m
 * constant exactly.
 *
 * Forms (all deterministic: one thread owns one (b, h) and walks it in a fixed order; results are
 * bit-identical for any thread count; parallel over B x H with OpenMP, gemm_small (one thread)
 * inside):
 *   chunkwise  chunks of L: inside a chunk the parallel (attention-like) form, between chunks the
 *              recurrence of the state (C | n, m) -- backbones.md §3.3 with the normaliser carried
 *              as the extra value column 1. Per chunk 4 GEMMs forward, 9 backward.
 *   parallel   the O(T^2) form for short sequences: the chunkwise kernel with one chunk, L = T.
 *   recurrent  the per-token stabilised step (mlstm_step) -- the reference the others are
 *              checked against, and the runtime's decode; backward walks the tokens in reverse
 *              from states recomputed per segment of L tokens.
 * Layouts: q, k, v, h [B, T, H, D]; ig, fg [B, T, H]. k is scaled by 1/sqrt(D) inside.
 *
 * Saved for the backward (`saved`, mlstm_saved_floats): for every chunk (segment) the state it
 * starts from, D (D + 1) floats + its m, and per token m_t and n_t . q_t (2 floats); chunkwise
 * therefore keeps D (D + 1) / L + 2 floats per token and head (67 at D = L = 64: 268 bytes);
 * the rest (Q K^T, decay matrices, den) is recomputed. */
#ifndef TERN_MLSTM_H
#define TERN_MLSTM_H

#include <stddef.h>

typedef enum MlstmForm { MLSTM_CHUNKWISE = 0, MLSTM_PARALLEL = 1, MLSTM_RECURRENT = 2, MLSTM_FORM_COUNT } MlstmForm;

typedef struct MlstmShape {
    size_t B, T, H, D;
    size_t L;        /* chunk (chunkwise) / checkpoint segment (recurrent); T for the parallel form */
    int exp_forget;  /* exponential forget gate (else sigmoid) */
} MlstmShape;

const char *mlstm_form_name(MlstmForm f);
int mlstm_form_from_name(const char *s); /* -1 unknown */

/* Floats of `saved` and of the workspace (for max_threads threads) a form needs. */
size_t mlstm_saved_floats(MlstmForm f, const MlstmShape *s);
size_t mlstm_work_floats(MlstmForm f, const MlstmShape *s, int max_threads);

/* h = mlstm(q, k, v, ig, fg); saved receives what the backward needs. */
void mlstm_forward(MlstmForm f, float *h, float *saved, const float *q, const float *k, const float *v, const float *ig,
                   const float *fg, const MlstmShape *s, float *work);
/* dq, dk, dv, dig, dfg += the gradients from dh; h and saved are the forward's. */
void mlstm_backward(MlstmForm f, float *dq, float *dk, float *dv, float *dig, float *dfg, const float *dh, const float *h,
                    const float *saved, const float *q, const float *k, const float *v, const float *ig, const float *fg,
                    const MlstmShape *s, float *work);

#endif
