/* glu — Llama-2's feed-forward (Touvron et al. 2023; Shazeer 2020's SwiGLU) with separate gate
 * and up matrices: out = W2 (silu(W1 h) * W3 h). Key: hidden. Tensors: ffn.w1.weight [hidden, C],
 * ffn.w2.weight [C, hidden], ffn.w3.weight [hidden, C] (registered in that order, as llama2.c).
 * No runtime counterpart: imported Llama models export as GPT artifacts (model/llama.c). */
#include <string.h>

#include "model/block.h"
#include "model/qat.h"

typedef struct GluCfg {
    size_t hidden;
} GluCfg;

static const CfgField kGluFields[] = {
    CFG_R(CFG_SIZE, GluCfg, hidden, 0, MODEL_MAX_HIDDEN, "SwiGLU hidden size (Llama feed-forward)"),
};

typedef struct GluInst {
    Tensor *w1, *w2, *w3;
} GluInst;

static void glu_defaults(void *cfg) { memset(cfg, 0, sizeof(GluCfg)); }

static int glu_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    if (used && !((GluCfg *)cfg)->hidden) return err_set(err, "config: model.hidden must be positive");
    return 0;
}

static void glu_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    GluInst *a = inst;
    size_t Hd = ((const GluCfg *)cfg)->hidden, C = sc->dim;
    a->w1 = block_param(ps, prefix, "ffn.w1.weight", 2, Hd, C);
    a->w2 = block_param(ps, prefix, "ffn.w2.weight", 2, C, Hd);
    a->w3 = block_param(ps, prefix, "ffn.w3.weight", 2, Hd, C);
}

static void glu_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    GluInst *a = inst;
    block_init_linear(a->w1, rng);
    block_init_linear(a->w2, rng);
    block_init_linear(a->w3, rng);
}

static Tensor *glu_forward(const void *inst, const void *cfg, const BlockCtx *c, Tensor *h) {
    const GluInst *a = inst;
    Model *m = c->m;
    Tape *tp = c->tp;
    Tensor *u = op_mul(tp, op_act(tp, model_linear(m, tp, h, a->w1, NULL), ACT_SILU), model_linear(m, tp, h, a->w3, NULL));
    return model_linear(m, tp, u, a->w2, NULL);
}

const BlockKind kBlockGlu = {
    .name = "glu",
    .role = BLOCK_CHANNEL,
    .fields = kGluFields,
    .nfields = 1,
    .cfg_bytes = sizeof(GluCfg),
    .defaults = glu_defaults,
    .resolve = glu_resolve,
    .inst_bytes = sizeof(GluInst),
    .add_params = glu_add_params,
    .init = glu_init,
    .forward = glu_forward,
};
