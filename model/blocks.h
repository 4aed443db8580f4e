/* blocks.h — the parameter-golf attention block, shared by the GPT and the TRN hybrid:
 *   x = m0 x + m1 x0 (resid_mix rows); h = rmsnorm(x);
 *   q, k, v = c_q h, c_k h, c_v h; q, k RMS-normed per head; RoPE; q *= q_gain[h]; causal GQA;
 *   x += attn_scale * proj(y)        (SubLN: rmsnorm(y) first)
 *   x += mlp_scale * mlp_proj(act(fc(rmsnorm(x))))   (act: relu2 | leaky_relu2 | SwiGLU)
 * Every linear goes through model_linear, so QAT and LoRA adapters apply uniformly. */
#ifndef TERN_BLOCKS_H
#define TERN_BLOCKS_H

#include "autodiff/ops.h"
#include "model/model.h"

typedef struct AttnBlockW {
    Tensor *c_q, *c_k, *c_v, *proj, *q_gain, *attn_scale, *mlp_scale, *resid_mix, *fc, *mlp_proj;
} AttnBlockW;

typedef struct AttnBlockCfg {
    size_t dim, heads, kv_heads, head_dim;
    float eps;
    ActKind act;
    int swiglu, subln;
    const RopeTable *rope;
    int no_qk_norm; /* skip the per-head RMSNorm of q and k (imported Llama blocks) */
} AttnBlockCfg;

Tensor *attn_block_forward(Model *m, Tape *tp, const AttnBlockW *w, const AttnBlockCfg *c, Tensor *x, Tensor *x0,
                           size_t B, size_t T);

#endif
