/* trn.h — the TRN layer (Temporal Resonance Network, openai/parameter-golf PR #669,
 * TemporalResonanceLayer + OscillatorProjection), implemented with its block kind "trn" in
 * model/blocks/trn.c; the TRN hybrid backbone is the trn_hybrid preset of the stack
 * (model/presets.c).
 *
 * Layer, for h [B, T, d] (the token-shifted, RMS-normed residual):
 *   P = proj(h)            d -> 6K, biased: (a, o, p, g, q, e)
 *   psi = W_phase(h)       d -> K, biased: the phase-coupled gate's query
 *   F = trn_core(P, omega_base, psi, lambda)      (autodiff/ops_trn.c)
 *   y = res_scale * w * W_res F                    W_res: (4K - 2) -> d, no bias
 * w is the readout warm-up s^2 (3 - 2 s), s = min(training forwards / res_warmup, 1), 1 at
 * evaluation.
 *
 * Hybrid (preset "trn_hybrid"): tok_emb + BigramHash -> rmsnorm = x0; blocks by the layout string
 * ("TTATTATTAT": T = TRN block, A = the baseline attention block with a LeakyReLU(0.5)^2 MLP)
 * with the baseline's U-Net skips, resid_mix, attn_scale and mlp_scale; final rmsnorm, tied
 * head, softcap. TRN block:
 *   x = m0 x + m1 x0;  h = shift(rmsnorm(x)), h'_t = mu h_t + (1 - mu) h_{t-1}, mu = sig(m);
 *   x += attn_scale * TRN(h');  x += mlp_scale * down(silu(gate) * up), [gate | up] = gate_up(rmsnorm(x)).
 * Parameter names follow the PR's module tree (blocks.0.resonance.proj.proj.weight, ...), so a
 * checkpoint maps onto its HybridGPT by name (scalars are [1] here, [] there).
 * Where this differs from the PR: everything is fp32 (the PR keeps its TRN linears in bf16);
 * BigramHash's table and projection are not both zero-initialised (the PR's are, which leaves
 * both gradients exactly zero forever, backbones.md §5.5); the readout warm-up counts the
 * model's training forwards (Model.train_forwards) instead of a per-layer buffer. */
#ifndef TERN_TRN_H
#define TERN_TRN_H

#include <stddef.h>
#include <stdint.h>

#include "autodiff/ops.h"
#include "autodiff/params.h"
#include "kernels/jsoncfg.h"
#include "kernels/rng.h"

typedef struct TrnLayer {
    size_t dim, K;
    Tensor *proj_w, *proj_b;      /* [6K, d], [6K] */
    Tensor *omega_base;           /* [K] */
    Tensor *w_res;                /* [d, 4K - 2] */
    Tensor *w_phase, *b_phase;    /* [K, d], [K] */
    Tensor *lambda, *res_scale;   /* [1], [1] */
} TrnLayer;

typedef struct TrnLayerInit {
    double proj_std;        /* 0 = d^-1/2 */
    double w_res_std, w_phase_std;
    double res_scale, lambda;
    double gate_bias;       /* g_out bias = logit(gate_bias) */
    double erase_bias;      /* beta bias */
    size_t omega_len;       /* L of the omega_base init (the training sequence length) */
} TrnLayerInit;

/* Registers prefix.proj.proj.weight ... prefix.res_scale. */
void trn_layer_add_params(TrnLayer *L, ParamStore *ps, const char *prefix, size_t dim, size_t K);
void trn_layer_init(TrnLayer *L, Rng *rng, const TrnLayerInit *init);
/* h [B, T, d] -> [B, T, d]; warm = the readout warm-up factor w (1 at evaluation). */
/* m: the model owning L (its QAT plan and adapters apply to the layer's linears). */
struct Model;
Tensor *trn_layer_forward(struct Model *m, const TrnLayer *L, Tape *tp, Tensor *h, const TrnCoreCfg *cfg, float warm);
/* The readout warm-up w for `forwards` training forwards (smoothstep; 1 when warmup == 0). */
float trn_warmup_factor(uint64_t forwards, size_t warmup);

#endif
