/* swiglu — the TRN hybrid's SwiGLU channel mixer (openai/parameter-golf PR #669, TRNBlock's MLP):
 * out = down(silu(gate) * up), [gate | up] = gate_up(h) (one fused matrix, gate rows first).
 * Key: swiglu_hidden (0 = round_up(2/3 * mlp_mult * dim, 256), the PR's sizing).
 * Tensors: gate_up.weight [2 x hidden, C], down.weight [C, hidden]; init N(0, C^-1/2) and
 * N(0, hidden^-1/2) as the PR's (not zero). */
#include <math.h>
#include <string.h>

#include "model/block.h"
#include "model/qat.h"

typedef struct SwigluCfg {
    size_t swiglu_hidden;
} SwigluCfg;

static const CfgField kSwigluFields[] = {
    CFG_R(CFG_SIZE, SwigluCfg, swiglu_hidden, 0, MODEL_MAX_HIDDEN, "SwiGLU hidden (0 = round_up(2/3 * mlp_mult * dim, 256))"),
};

typedef struct SwigluInst {
    Tensor *gate_up, *down;
} SwigluInst;

static void swiglu_kind_defaults(void *cfg) { memset(cfg, 0, sizeof(SwigluCfg)); }

static int swiglu_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    SwigluCfg *c = cfg;
    if (!c->swiglu_hidden) c->swiglu_hidden = ((size_t)(2.0 / 3.0 * (double)(sc->mlp_mult * sc->dim)) + 255) / 256 * 256;
    if (used && (!sc->mlp_mult && !c->swiglu_hidden))
        return err_set(err, "config: model.swiglu_hidden or model.mlp_mult must be positive");
    return 0;
}

static void swiglu_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    SwigluInst *a = inst;
    size_t Hs = ((const SwigluCfg *)cfg)->swiglu_hidden;
    a->gate_up = block_param(ps, prefix, "gate_up.weight", 2, 2 * Hs, sc->dim);
    a->down = block_param(ps, prefix, "down.weight", 2, sc->dim, Hs);
}

static void swiglu_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    SwigluInst *a = inst;
    size_t Hs = ((const SwigluCfg *)cfg)->swiglu_hidden;
    rng_fill_normal(rng, a->gate_up->data, a->gate_up->numel, 0.0f, 1.0f / sqrtf((float)sc->dim));
    rng_fill_normal(rng, a->down->data, a->down->numel, 0.0f, 1.0f / sqrtf((float)Hs));
}

static Tensor *swiglu_kind_forward(const void *inst, const void *cfg, const BlockCtx *c, Tensor *h) {
    const SwigluInst *a = inst;
    Tensor *m = op_swiglu(c->tp, model_linear(c->m, c->tp, h, a->gate_up, NULL));
    return model_linear(c->m, c->tp, m, a->down, NULL);
}

static int swiglu_export_keys(const void *cfg, const StackConfig *sc, KvList *kv, Err *err) {
    kv_add_u32(kv, "swiglu.hidden", ((const SwigluCfg *)cfg)->swiglu_hidden);
    return 0;
}

const BlockKind kBlockSwiglu = {
    .name = "swiglu",
    .role = BLOCK_CHANNEL,
    .fields = kSwigluFields,
    .nfields = 1,
    .cfg_bytes = sizeof(SwigluCfg),
    .defaults = swiglu_kind_defaults,
    .resolve = swiglu_resolve,
    .inst_bytes = sizeof(SwigluInst),
    .add_params = swiglu_add_params,
    .init = swiglu_init,
    .forward = swiglu_kind_forward,
    .export_keys = swiglu_export_keys,
};
