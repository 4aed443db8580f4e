/* presets.c — the backbones as layouts of block kinds. A preset is default values for keys plus
 * the letters of its layout; everything else is the stack (model/stack.c) and the kinds
 * (model/blocks/). New backbones (hgru, chimera) are new entries here. */
#include <string.h>

#include "model/stack.h"

/* The parameter-golf baseline GPT (openai/parameter-golf train_gpt.py): 9 x 512, relu^2 MLP,
 * 17,059,912 parameters by default. */
static const LayerType kGptTypes[] = {{'A', &kBlockAttention, &kBlockMlp, 0, "attention + MLP"}};

/* The TRN hybrid (openai/parameter-golf PR #669, HybridGPT, MODEL_TYPE=hybrid, ATTN_POSITIONS=
 * 2,5,8, USE_TOKEN_SHIFT=1, BIGRAM_VOCAB_SIZE=10240): 25,789,479 parameters by default. */
static const LayerType kTrnTypes[] = {{'A', &kBlockAttention, &kBlockMlp, 0, "attention + MLP"},
                                      {'T', &kBlockTrn, &kBlockSwiglu, 1, "TRN + SwiGLU"}};

/* Llama-2 (Touvron et al. 2023) as llama2.c runs it; the defaults are karpathy's tinyllamas
 * stories260K (the shared teacher). Meta's adjacent-pair RoPE is mapped onto tern's half split by
 * `tern import` (model/llama.c). */
static const LayerType kLlamaTypes[] = {{'A', &kBlockAttention, &kBlockGlu, 0, "attention + SwiGLU feed-forward"}};

/* Hybrid-GRU (issue #12): embedding -> N GRU layers (pre-RMSNorm, residual, an optional MLP) ->
 * head. G / g: the full-matrix GRU (model/blocks/gru.c) with / without an MLP after it; M / m:
 * the MatMul-free LM's parallel MLGRU (model/blocks/mlgru.c) likewise. The parameter-golf
 * scaffold extras (resid_mix, branch scales, U-Net skips) are off by default. */
static const LayerType kHgruTypes[] = {{'G', &kBlockGru, &kBlockMlp, 0, "GRU + MLP"},
                                       {'g', &kBlockGru, NULL, 0, "GRU"},
                                       {'M', &kBlockMlgru, &kBlockMlp, 0, "MLGRU + MLP"},
                                       {'m', &kBlockMlgru, NULL, 0, "MLGRU"}};
#define HGRU_SCAFFOLD "\"heads\":0,\"kv_heads\":0,\"resid_mix\":false,\"branch_scales\":false,\"skips\":false,\"q_gain\":false,\"qk_norm\":false"

/* The Hybrid-GRU engine's exact single-cell shape (sumithkumar07/Hybrid-GRU): vocab 50,261
 * (GPT-2's 50,257 pieces + 4 specials), a 256-wide embedding read by one engine-variant GRU of
 * state 1024, an untied head on the state; no norms or residual around the cell: 68,269,312
 * parameters. The engine's head bias is not part of tern's stack. */
static const LayerType kHgruEngineTypes[] = {{'g', &kBlockGru, NULL, 0, "GRU"}};
/* Chimera, part 1 (issue 13; the seed "chimera-5.1" is GD XM GD TM GD XM GD SK repeated): G = Gated
 * DeltaNet + SwiGLU (fla's GatedDeltaNet model pairs the layer with a SwiGLU MLP; part 2 replaces
 * it by MoE of SwiGLU experts), S = the span knot, built as a Gated DeltaNet layer (its first
 * relaxation phase is a gated delta update; docs/ARCHITECTURE.md), X = xLSTM's mLSTM block, which
 * carries its own up/down projection and so no channel mixer. Until Titans (TM, part 2) lands, the
 * default layout puts a G where the seed has TM. E = Gated DeltaNet + MoE (part 2: routed and shared
 * SwiGLU experts, model/blocks/moe.c). One layer type per line. */
static const LayerType kChimeraTypes[] = {
    {'G', &kBlockGdn, &kBlockSwiglu, 0, "Gated DeltaNet + SwiGLU"},
    {'S', &kBlockGdn, &kBlockSwiglu, 0, "span knot (built as Gated DeltaNet) + SwiGLU"},
    {'X', &kBlockMlstm, NULL, 0, "mLSTM (xLSTM block, own up/down projection)"},
    {'E', &kBlockGdn, &kBlockMoe, 0, "Gated DeltaNet + MoE of SwiGLU experts"},
};

static const Preset kPresets[] = {
    {"gpt", "{\"layers\":9}", kGptTypes, 1, 'A', NAMES_PGOLF, 1},
    {"trn_hybrid",
     "{\"layout\":\"TTATTATTAT\",\"mlp_act\":\"leaky_relu2\",\"token_shift\":true,\"bigram_rows\":10240}",
     kTrnTypes, 2, 'A', NAMES_PGOLF, 0},
    {"llama",
     "{\"vocab_size\":512,\"layers\":5,\"dim\":64,\"heads\":8,\"kv_heads\":4,\"hidden\":172,\"seq_len\":512,"
     "\"norm_eps\":1e-5,\"init_std\":0.02,\"softcap\":0,\"skips\":false,\"emb_norm\":false,\"qk_norm\":false,"
     "\"q_gain\":false,\"resid_mix\":false,\"branch_scales\":false,\"norm_gain\":true}",
     kLlamaTypes, 1, 'A', NAMES_LLAMA, 0},
    {"hgru", "{\"layers\":4,\"dim\":512,\"norm_gain\":true,\"emb_norm\":false," HGRU_SCAFFOLD "}", kHgruTypes, 4, 'G', NAMES_PGOLF, 0},
    {"hgru_engine",
     "{\"vocab_size\":50261,\"layers\":1,\"embed_dim\":256,\"dim\":1024,\"gru_variant\":\"engine\",\"tie_embeddings\":false,"
     "\"norm_gain\":false,\"emb_norm\":false,\"softcap\":0," HGRU_SCAFFOLD "}",
     kHgruEngineTypes, 1, 'g', NAMES_PGOLF, 0},
    {"chimera", "{\"layout\":\"GXGGGXGS\"}", kChimeraTypes, sizeof kChimeraTypes / sizeof kChimeraTypes[0], 'G', NAMES_PGOLF, 0},
};

size_t preset_count(void) { return sizeof kPresets / sizeof kPresets[0]; }
const Preset *preset_at(size_t i) { return i < preset_count() ? &kPresets[i] : NULL; }

const Preset *preset_find(const char *name) {
    for (size_t i = 0; i < preset_count(); i++)
        if (!strcmp(kPresets[i].name, name)) return &kPresets[i];
    return NULL;
}

size_t preset_kinds(const Preset *p, const BlockKind **out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < p->ntypes; i++) {
        const BlockKind *k2[2] = {p->types[i].mixer, p->types[i].channel};
        for (int j = 0; j < 2; j++) {
            int seen = !k2[j];
            for (size_t q = 0; q < n && !seen; q++) seen = out[q] == k2[j];
            if (!seen && n < max) out[n++] = k2[j];
        }
    }
    return n;
}
