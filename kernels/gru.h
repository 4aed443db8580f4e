/* gru.h — the recurrent loops of the two GRU cells of block kind `gru` (scalar step math in
 * kernels/gru_math.h), forward and backward through time (BPTT, ../shared/notes/backbones.md
 * §1.1, verified there against finite differences).
 *
 * The input projections of all T steps are one GEMM done by the caller (xp [B, T, 3H], biases
 * included); only the product with the previous state stays inside the time loop. Shapes: B
 * sequences, T steps, H state width, E input width; h [B, T, H] is the output (h_{-1} = 0).
 *
 * torch (nn.GRU): whh [3H, H] (r | z | n rows), bhh [3H]. Saved per token: r, z, n, a (4H).
 * engine (Hybrid-GRU): wz, wr, wh [H, E + H] (row stride E + H; the state part is columns E..),
 *   saved per token: z, r, c, q (4H) and 1/rms (inv [B, T]).
 *
 * Activation quantization (QAT with act_bits 8): the recurrent input of a product (h_{t-1}, and
 * the engine's q) is fake-quantized to int8 per token (kernels/quant.h, block act_block) when
 * GruAct.on; the straight-through estimator passes its gradient unchanged.
 *
 * Backward: dh [B, T, H] = dL/dh_t from above (read only). Writes dxp [B, T, 3H], the gradient
 * of the gates' pre-activations on the input side; torch also writes drec [B, T, 3H], that of
 * its recurrent products ([dar | daz | da]: its candidate's reset multiplies the product), while
 * the engine's gates read [x; h] through one pre-activation, so dxp serves both sides. The
 * caller turns them into weight, bias and input gradients with a few large GEMMs. tbptt > 0
 * cuts the gradient through the state at every multiple of tbptt steps (truncated BPTT), as
 * detaching h_{t-1} there would. */
#ifndef TERN_GRU_H
#define TERN_GRU_H

#include <stddef.h>

typedef struct GruAct {
    int on;           /* int8 fake quantization of the recurrent inputs */
    size_t block;     /* per token (0) or per block of this many values */
} GruAct;

/* Workspace floats of the loops (forward and backward). */
size_t gru_work_floats(size_t B, size_t H);

void gru_torch_forward(float *h, float *save, const float *xp, const float *whh, const float *bhh, size_t B, size_t T,
                       size_t H, const GruAct *act, float *work);
void gru_torch_backward(float *dxp, float *drec, const float *dh, const float *h, const float *save, const float *whh,
                        size_t B, size_t T, size_t H, size_t tbptt, float *work);

void gru_engine_forward(float *h, float *save, float *inv, const float *xp, const float *wz, const float *wr,
                        const float *wh, size_t B, size_t T, size_t E, size_t H, float eps, const GruAct *act_h,
                        const GruAct *act_q, float *work);
void gru_engine_backward(float *dxp, const float *dh, const float *h, const float *save, const float *inv,
                         const float *wz, const float *wr, const float *wh, size_t B, size_t T, size_t E, size_t H,
                         size_t tbptt, float *work);

/* hp [B*T, H]: the recurrent input of every step (h_{t-1}, 0 at t = 0), fake-quantized when act
 * is on — the matrix the recurrent weight gradients multiply. */
void gru_prev_states(float *hp, const float *h, size_t B, size_t T, size_t H, const GruAct *act);

#endif
