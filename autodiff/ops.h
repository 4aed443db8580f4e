/* ops.h — differentiable ops. Each computes its output now and, when gradients are wanted,
 * records itself on the tape with a backward that ACCUMULATES into its inputs' grads.
 *
 * Broadcasting (add, sub, mul, add_mul, mix): the second operand either has the same number of
 * elements as the first, or its shape equals the trailing dimensions of the first (a bias /
 * per-channel vector), or it has one element. Its gradient is summed over the broadcast rows.
 * Shape errors are programming errors: they abort with a message (TERN_CHECK). */
#ifndef TERN_OPS_H
#define TERN_OPS_H

#include <stdint.h>

#include "autodiff/tape.h"
#include "kernels/act.h"
#include "kernels/attention.h"

/* ---- elementwise and broadcast (ops_basic.c) */
Tensor *op_add(Tape *tp, Tensor *a, Tensor *b);
Tensor *op_sub(Tape *tp, Tensor *a, Tensor *b);
Tensor *op_mul(Tape *tp, Tensor *a, Tensor *b);
Tensor *op_scale(Tape *tp, Tensor *a, float s);
/* Inverted dropout with rate p in [0, 1): each element kept (scaled by 1 / (1 - p)) or zeroed,
 * drawn from (key, index); p = 0 returns a itself. */
Tensor *op_dropout(Tape *tp, Tensor *a, float p, uint64_t key);
/* The LoRA-adapted linear in one op (autodiff/ops_lora.c): x W^T (+ b) + scale (drop(x) A^T) B^T,
 * A [r, in], B [out, r], dropout p with op_dropout's mask for `key`; saves only [N, r]. */
Tensor *op_lora_linear(Tape *tp, Tensor *x, Tensor *W, Tensor *b, Tensor *A, Tensor *B, float scale, float p, uint64_t key);
/* x + s * y (s broadcast over x's trailing dims): the scaled residual update */
Tensor *op_add_mul(Tape *tp, Tensor *x, Tensor *s, Tensor *y);
/* m0 * x + m1 * x0 (m0, m1 broadcast): the parameter-golf residual mix */
Tensor *op_mix(Tape *tp, Tensor *x, Tensor *m0, Tensor *x0, Tensor *m1);
Tensor *op_sum(Tape *tp, Tensor *x);   /* -> [1] */
Tensor *op_mean(Tape *tp, Tensor *x);  /* -> [1] */
/* Reshape: same data, new shape (a view; no tape entry, grads shared). */
Tensor *op_reshape(Tape *tp, Tensor *x, int ndim, const size_t *shape);
/* Concatenate along the last dimension (all leading dims equal). */
Tensor *op_concat(Tape *tp, Tensor **xs, int n);
/* x[..., start:start+len] */
Tensor *op_slice(Tape *tp, Tensor *x, size_t start, size_t len);
/* Token shift over [B, T, C]: y_t = mu * x_t + (1 - mu) * x_{t-1}, with x_{-1} = x_0 (so
 * y_0 = x_0); mu is [C] (use op_act(SIGMOID) on a free parameter for a constrained mu). */
Tensor *op_token_shift(Tape *tp, Tensor *x, Tensor *mu);
/* Rows of table [V, C] gathered by idx[N] -> [N, C] (out_ndim/out_shape give the final shape;
 * pass 0/NULL for [N, C]). Backward scatter-adds. Indices must be in [0, V). */
Tensor *op_embedding(Tape *tp, Tensor *table, const int32_t *idx, size_t N, int out_ndim,
                     const size_t *out_shape);

/* ---- matmul (ops_matmul.c) */
/* C = op(A) op(B), A and B 2-D, op = transpose when the flag is set. */
Tensor *op_matmul(Tape *tp, Tensor *A, Tensor *B, int ta, int tb);
/* y[..., out] = x[..., in] W^T + b;  W is [out, in]; b is [out] or NULL. */
Tensor *op_linear(Tape *tp, Tensor *x, Tensor *W, Tensor *b);

/* ---- activations (ops_act.c) */
Tensor *op_act(Tape *tp, Tensor *x, ActKind kind);
static inline Tensor *op_relu(Tape *tp, Tensor *x) { return op_act(tp, x, ACT_RELU); }
static inline Tensor *op_relu2(Tape *tp, Tensor *x) { return op_act(tp, x, ACT_RELU2); }
static inline Tensor *op_leaky_relu2(Tape *tp, Tensor *x) { return op_act(tp, x, ACT_LEAKY_RELU2); }
static inline Tensor *op_silu(Tape *tp, Tensor *x) { return op_act(tp, x, ACT_SILU); }
static inline Tensor *op_sigmoid(Tape *tp, Tensor *x) { return op_act(tp, x, ACT_SIGMOID); }
static inline Tensor *op_tanh(Tape *tp, Tensor *x) { return op_act(tp, x, ACT_TANH); }
static inline Tensor *op_softplus(Tape *tp, Tensor *x) { return op_act(tp, x, ACT_SOFTPLUS); }
static inline Tensor *op_exp(Tape *tp, Tensor *x) { return op_act(tp, x, ACT_EXP); }
/* x [..., 2H] = [gate | up] -> silu(gate) * up [..., H] */
Tensor *op_swiglu(Tape *tp, Tensor *x);

/* ---- normalisation (ops_norm.c) */
/* RMSNorm over the last dim; w [C] or NULL (no gain). eps <= 0 means FLT_EPSILON, which is
 * what torch.nn.functional.rms_norm uses for float32 when eps is None. */
Tensor *op_rmsnorm(Tape *tp, Tensor *x, Tensor *w, float eps);
/* RMSNorm of each head: the last dim is split into groups of head_dim. */
Tensor *op_rmsnorm_heads(Tape *tp, Tensor *x, size_t head_dim, float eps);

/* ---- softmax and loss (ops_loss.c) */
Tensor *op_softmax(Tape *tp, Tensor *x);
/* Mean cross-entropy over rows of logits [N, V] (any leading dims) whose target is not
 * ignore_index; softcap > 0 applies cap*tanh(z/cap) first. per_token (N floats, may be NULL)
 * receives each row's loss (0 for ignored rows). Returns [1]. Targets out of [0, V) other than
 * ignore_index are a programming error here: callers validate data first. */
Tensor *op_cross_entropy(Tape *tp, Tensor *logits, const int32_t *targets, float softcap,
                         int32_t ignore_index, float *per_token);

/* Distillation loss against a teacher's top-k (see kernels/softmax.h distill_forward): per row,
 * alpha T^2 KL(teacher || student) over the top-k classes plus the tail class, plus (1 - alpha)
 * cross-entropy with the target. The teacher arrays ([N, k] idx / val, [N] lse) are copied. */
typedef struct DistillTarget {
    const int32_t *idx;
    const float *val, *lse;
    size_t k;
    float temperature, alpha;
} DistillTarget;
Tensor *op_distill(Tape *tp, Tensor *logits, const int32_t *targets, float softcap, const DistillTarget *dt,
                   float *per_token);

/* ---- attention (ops_attention.c) */
/* q [B, T, H, D], k and v [B, T, G, D]; rope (or NULL) applied to q and k; q_gain [H] (or
 * NULL) multiplies each query head after RoPE; causal softmax(q k^T * scale) v -> [B, T, H, D].
 * scale <= 0 means 1/sqrt(D). */
Tensor *op_attention(Tape *tp, Tensor *q, Tensor *k, Tensor *v, Tensor *q_gain,
                     const RopeTable *rope, float scale);


/* ---- TRN: linear scan, fused oscillator core, BigramHash (ops_trn.c) ----------------------
 * Added for the TRN hybrid (model/trn.h); see autodiff/ops_trn.c for the equations. */
#include "kernels/scan.h"

/* h_t = a_t * h_{t-1} + x_t over t, h_{-1} = 0; a [B, T, C], x [B, T, C] or [B, T, R, C] (R
 * right-hand sides sharing a). kind picks the kernel (kernels/scan.h). */
Tensor *op_linear_scan(Tape *tp, Tensor *a, Tensor *x, ScanKind kind);

typedef struct TrnCoreCfg {
    ScanKind scan;
    float amp_max;   /* amplitude clamp: A = min(softplus(a), amp_max) (3 in PR #669) */
} TrnCoreCfg;
/* The TRN layer between its two input projections and its readout matrix, fused:
 * proj [B, T, 6K] = the biased d -> 6K projection (a | o | p | g | q | e), omega_base [K],
 * psi [B, T, K] = the phase-gate projection, lambda [1] -> features [B, T, 4K - 2], ready for
 * W_res. t is the position inside each window of T. */
Tensor *op_trn_core(Tape *tp, Tensor *proj, Tensor *omega_base, Tensor *psi, Tensor *lambda,
                    const TrnCoreCfg *cfg);
/* x * s * k with s a one-element tensor (a learned scalar) and k a constant; d(s) is summed in
 * double, in a fixed order. */
Tensor *op_scale_by(Tape *tp, Tensor *x, Tensor *s, float k);

/* BigramHash bucket of every position of tok [B, T] for a table of `rows` rows. */
void bigram_hash_indices(int32_t *idx, const int32_t *tok, size_t B, size_t T, size_t rows);
/* scale * proj(table[bigram_hash(tok)]): table [rows, db], proj [d, db], scale [1] -> [B, T, d]
 * (embedding + linear + mul on the tape). */
Tensor *op_bigram_hash(Tape *tp, Tensor *table, Tensor *proj, Tensor *scale, const int32_t *tok,
                       size_t B, size_t T);

/* ---- Gated DeltaNet: the gated delta rule and the ops of its layer (ops_gdn.c) -------------
 * Added for the gdn block kind (model/blocks/gdn.c); equations in kernels/delta.h and
 * kernels/gdn_math.h. */
#include "kernels/delta.h"

/* o [B, T, H, dv] = the gated delta rule over q, k [B, T, H, dk] (normalised), v [B, T, H, dv],
 * the log-decay g <= 0 and the write strength beta, both [B, T, H]; the state starts at zero.
 * kind: GDN_CHUNKED (chunks of `chunk` tokens, the WY / UT form) or GDN_RECURRENT (the
 * per-token reference). */
Tensor *op_gated_delta(Tape *tp, Tensor *q, Tensor *k, Tensor *v, Tensor *g, Tensor *beta, GdnKernel kind, size_t chunk);
/* silu(causal depthwise conv1d(x)) over [B, T, D] with kernel K: w holds [D, K] (torch's
 * [D, 1, K]); position t reads x[t - K + 1 .. t], zeros before the window. */
Tensor *op_short_conv(Tape *tp, Tensor *x, Tensor *w, size_t K);
/* scale * x / sqrt(|x|^2 + 1e-6) over each group of n of the last dim (fla's l2norm). */
Tensor *op_l2norm_heads(Tape *tp, Tensor *x, size_t n, float scale);
/* g = -exp(A_log) * softplus(a + dt_bias): a [..., H], A_log and dt_bias [H]. */
Tensor *op_gdn_decay(Tape *tp, Tensor *a, Tensor *A_log, Tensor *dt_bias);

/* ---- mLSTM block (ops_mlstm.c) -----------------------------------------------------------
 * Added for the mlstm block kind (model/blocks/mlstm.c); equations in kernels/mlstm.h. */
#include "kernels/mlstm.h"

typedef struct MlstmCfg {
    MlstmForm form;  /* chunkwise | parallel | recurrent */
    size_t chunk;    /* chunk length (chunkwise) / checkpoint segment (recurrent) */
    int exp_forget;  /* exponential forget gate (else sigmoid) */
} MlstmCfg;
/* The mLSTM cell: q, k, v [B, T, H, D], input / forget gate pre-activations ig, fg [B, T, H]
 * -> h [B, T, H, D] (k scaled by 1/sqrt(D) inside). */
Tensor *op_mlstm(Tape *tp, Tensor *q, Tensor *k, Tensor *v, Tensor *ig, Tensor *fg, const MlstmCfg *cfg);
/* Causal depthwise convolution: x [B, T, I], w [I, K], b [I]; y_t = b + sum_j w[., j] x_{t-K+1+j}
 * (zero before the sequence). */
Tensor *op_causal_conv(Tape *tp, Tensor *x, Tensor *w, Tensor *b);
/* Block-diagonal projection: x [..., I], W [I, bs]; y[g + o] = sum_i W[g + o][i] x[g + i] over
 * blocks g of bs channels (xLSTM's LinearHeadwiseExpand). */
Tensor *op_headwise(Tape *tp, Tensor *x, Tensor *W);
/* Layer norm (no weight, no bias) of each group of D channels of the last dim. */
Tensor *op_group_norm(Tape *tp, Tensor *x, size_t D, float eps);

/* ---- mixture of experts (ops_moe.c) -------------------------------------------------------
 * Added for the moe block kind (model/blocks/moe.c); equations in kernels/moe.h. */
#include "kernels/moe.h"

#define MOE_MAX_EXPERTS 256
typedef struct MoeOpCfg {
    size_t E, K, H;     /* routed experts, experts per token, expert hidden */
    float gamma;        /* routed scaling factor */
    const float *bias;  /* [E] routing bias (picks experts only; no gradient), or NULL */
    float *load;        /* [E] += tokens routed to each expert, or NULL */
    const long *act_in, *act_hid; /* QAT: per expert int8 activations (MoeShape), or NULL */
} MoeOpCfg;
/* y [.., C] = sum over each token's top-K experts (by scores + bias) of the normalised gate
 * weight times the expert's SwiGLU FFN: h [.., C], scores [.., E] (the router's sigmoid
 * affinities), gu[e] [2H, C] (gate rows first), dn[e] [C, H]. Sort-based, dropless, deterministic. */
Tensor *op_moe(Tape *tp, Tensor *h, Tensor *scores, Tensor *const *gu, Tensor *const *dn, const MoeOpCfg *cfg);

#endif
