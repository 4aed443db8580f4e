/* gpt.h — the parameter-golf baseline GPT (openai/parameter-golf train_gpt.py), exactly, with
 * its knobs in config.
 *
 * x = rmsnorm(tok_emb[idx]) (no gain), x0 = x. Block i: x = m0*x + m1*x0 (resid_mix);
 * x += attn_scale * Attn(rmsnorm(x)); x += mlp_scale * MLP(rmsnorm(x)).
 * Attn: c_q, c_k, c_v, proj (no bias); q, k RMS-normed per head; RoPE; q *= q_gain[h]; causal
 * GQA softmax attention. MLP: fc -> relu^2 (or leaky_relu(0.5)^2, or SwiGLU) -> proj.
 * U-Net skips: the first L/2 blocks push their outputs; each later block first adds
 * skip_weights[i] * pop(). Final rmsnorm, tied (or separate) head, softcap*tanh(z/softcap),
 * cross-entropy. Default: vocab 1024, 9 x 512, 8/4 heads -> 17,059,912 parameters. */
#ifndef TERN_GPT_H
#define TERN_GPT_H

#include <stddef.h>

#include "kernels/jsoncfg.h"

typedef struct GptConfig {
    char arch[CFG_STR_MAX];
    size_t vocab_size, layers, dim, heads, kv_heads, mlp_mult, mlp_hidden, seq_len;
    char mlp_act[CFG_STR_MAX]; /* relu2 | leaky_relu2 | swiglu */
    double softcap, rope_base, embed_init_std, qk_gain_init, norm_eps;
    int tie_embeddings, skips, zero_init_proj, subln;
    int emb_norm, qk_norm; /* RMSNorm of the embedding (x0) and of q, k per head; both on in the baseline */
} GptConfig;

void gpt_config_defaults(GptConfig *c);
extern const CfgField kGptConfigFields[];
extern const size_t kGptConfigFieldCount;

#endif
