/* ops_gru.h — the GRU recurrences as tape ops, trained by backpropagation through time (time
 * loops in kernels/gru.c, step math in kernels/gru_math.h, ../shared/notes/backbones.md §1).
 *
 * op_gru_torch_recur: PyTorch nn.GRU after its input projection. xp [B, T, 3H] = x W_ih^T + b_ih
 * (an op_linear of the caller, gate order r | z | n), whh [3H, H], bhh [3H] -> h [B, T, H].
 * op_gru_engine: the Hybrid-GRU engine's cell, input projection included: x [B, T, E],
 * wz, wr, wh [H, E + H] (each gate reads [x; h_{t-1}], the candidate [x; r h_{t-1}]), b [3H]
 * (z | r | h) -> h [B, T, H], every state RMS-normalised without gain.
 * Both start from h_{-1} = 0 in every window. Weights are quantized by the caller once per
 * forward (model_weight) and reused by all T steps; the straight-through gradient then sums
 * the per-step outer products, as BitNet's recipe asks. */
#ifndef TERN_OPS_GRU_H
#define TERN_OPS_GRU_H

#include "autodiff/tape.h"
#include "kernels/gru.h"

typedef struct GruOpCfg {
    size_t tbptt;     /* 0: full BPTT; N: the state's gradient is cut every N steps */
    float state_eps;  /* engine: eps of the state's RMSNorm */
    GruAct act_h;     /* int8 fake quantization of h_{t-1} before its product (QAT act_bits 8) */
    GruAct act_q;     /* engine: the same for r h_{t-1} before W_h */
} GruOpCfg;

Tensor *op_gru_torch_recur(Tape *tp, Tensor *xp, Tensor *whh, Tensor *bhh, const GruOpCfg *cfg);
Tensor *op_gru_engine(Tape *tp, Tensor *x, Tensor *wz, Tensor *wr, Tensor *wh, Tensor *b, const GruOpCfg *cfg);

#endif
