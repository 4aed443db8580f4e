/* moe.h — the routed half of a mixture-of-experts channel mixer, sort-based and dropless
 * (DeepSeek-V3, arXiv 2412.19437, with the auxiliary-loss-free balancing of arXiv 2408.15664;
 * ../shared/notes/backbones.md §6).
 *
 * For N tokens h [N, C] with sigmoid affinities s [N, E] and a routing bias b [E]:
 *   sel_n   = the K experts of largest s_{n,e} + b_e (ties: the lower index; in that order)
 *   w_{n,k} = gamma * s_{n,sel_k} / sum_j s_{n,sel_j}          (the bias only picks experts)
 *   y_n     = sum_k w_{n,k} FFN_{sel_k}(h_n),  FFN_e(x) = Wd_e (silu(Wg_e x) * Wu_e x)
 * Each expert's SwiGLU FFN holds gate_up [2H, C] (gate rows first, as op_swiglu) and down [C, H].
 *
 * Dispatch (§6.4): a stable counting sort of the N K (token, slot) pairs by expert gives each
 * expert a contiguous slice of rows [offset_e, offset_e+1); the gathered inputs Xs run through
 * one GEMM per expert; the combine reads the rows back in slot order per token (no atomics).
 * Every sum has a fixed order, so results do not depend on the thread count.
 *
 * Backward (§6.3): dw_{n,k} = <dy_n, Ys_row>; the expert sees w_{n,k} dy_n; the normalised gate
 * gives ds_{n,j} = (gamma / S)(dw_j - sum_k dw_k s_k / S) for the selected j only (zero elsewhere;
 * the selection and the bias have no gradient).
 *
 * The GEMM is a parameter: sgemm (OpenBLAS) in training, sgemm_ref where a test needs the sort-
 * based path and the dense per-token reference (moe_forward_ref) to agree bit for bit. */
#ifndef TERN_MOE_H
#define TERN_MOE_H

#include <stddef.h>
#include <stdint.h>

typedef struct MoeShape {
    size_t N, C, E, K, H; /* tokens, width, routed experts, experts per token, expert hidden */
    /* QAT (NULL: none): per expert, its input (act_in) and hidden (act_hid) activations int8
     * fake-quantized before its gate_up / down product: -1 = float, else per block of that many
     * values (0 = per row), as op_fake_quant_act; the backward passes straight through */
    const long *act_in, *act_hid;
} MoeShape;

typedef void (*MoeGemm)(int ta, int tb, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                        const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* What the forward keeps for the backward (and the caller's load counts). Sizes in moe_saved_*. */
typedef struct MoeSaved {
    int32_t *sel;   /* [N, K] chosen experts, best first */
    float *w;       /* [N, K] gate weights */
    float *ssum;    /* [N] sum of the chosen affinities */
    size_t *offset; /* [E + 1] first sorted row of each expert */
    int32_t *inv;   /* [N K] sorted row of (n, k) */
    int32_t *perm;  /* [N K] (n K + k) of each sorted row */
    float *Xs;      /* [N K, C] gathered inputs */
    float *U;       /* [N K, 2H] gate | up pre-activations */
    float *A;       /* [N K, H] silu(gate) * up */
    float *Ys;      /* [N K, C] expert outputs */
} MoeSaved;

/* Floats / int32 words / size_t words the saved context needs (callers carve MoeSaved from them). */
size_t moe_saved_floats(const MoeShape *s);
size_t moe_saved_ints(const MoeShape *s);
/* Carves a MoeSaved out of f (moe_saved_floats), i (moe_saved_ints) and z (E + 1 size_t). */
void moe_saved_bind(MoeSaved *sv, const MoeShape *s, float *f, int32_t *i, size_t *z);

/* Top-K of s + bias per token (ties to the lower index) and the normalised gate weights. */
void moe_route(const MoeShape *s, const float *scores, const float *bias, float gamma, int32_t *sel, float *w, float *ssum);
/* Stable counting sort of the selections by expert: offset [E + 1], perm and inv [N K]. E <= 256
 * here and in moe_forward / moe_backward (the moe kind's range). */
void moe_plan(const MoeShape *s, const int32_t *sel, size_t *offset, int32_t *perm, int32_t *inv);

/* y [N, C] = the routed experts' weighted sum for h [N, C], scores [N, E]; gu[e] [2H, C] and
 * dn[e] [C, H] are the experts' weights. load (E floats, or NULL) += tokens per expert. */
void moe_forward(const MoeShape *s, float *y, MoeSaved *sv, const float *h, const float *scores, const float *bias, float gamma,
                 const float *const *gu, const float *const *dn, float *load, MoeGemm gemm);
/* Accumulates (+=) dh [N, C], dscores [N, E] (selected entries only), dgu[e], ddn[e] (each may be
 * NULL: not wanted). work: moe_work_floats floats. */
size_t moe_work_floats(const MoeShape *s);
void moe_backward(const MoeShape *s, const float *dy, const MoeSaved *sv, const float *const *gu, const float *const *dn,
                  float gamma, float *dh, float *dscores, float *const *dgu, float *const *ddn, float *work, MoeGemm gemm);

/* The dense per-token reference (a test oracle; E <= 256, C and H <= 4096): each token on its own (selection by a full sort of its E biased
 * scores, its experts one by one as [1, C] products, summed in slot order). With gemm = sgemm_ref
 * it equals moe_forward exactly. sel and w ([N, K], may be NULL) receive its routing. */
void moe_forward_ref(const MoeShape *s, float *y, const float *h, const float *scores, const float *bias, float gamma,
                     const float *const *gu, const float *const *dn, int32_t *sel, float *w, MoeGemm gemm);

/* The aux-loss-free bias update after an optimizer step, from the step's token counts per expert
 * (summed over micro-steps and ranks): b_e += rate sign(mean_e load - load_e). Returns the load
 * balance max_e load / mean_e load (1 = even; 0 when nothing was routed). */
double moe_bias_update(float *bias, const float *load, size_t E, float rate);

#endif
