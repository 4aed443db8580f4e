/* mlp — the parameter-golf MLP (channel mixer): out = proj(act(fc h)) with act relu(x)^2 (the
 * baseline), leaky_relu(x, 0.5)^2 or SwiGLU (fc then has 2 x hidden rows: gate, then up);
 * [subln: rmsnorm before proj]. Keys: mlp_hidden (0 = mlp_mult * dim), mlp_act.
 * Tensors: mlp.fc.weight [hidden (x2 for SwiGLU), C], mlp.proj.weight [C, hidden]. */
#include <string.h>

#include "model/block.h"
#include "model/qat.h"

typedef struct MlpCfg {
    size_t mlp_hidden;
    char mlp_act[CFG_STR_MAX];
    ActKind act; /* derived */
    int swiglu;
} MlpCfg;

#define F(type, m, h) CFG_F(type, MlpCfg, m, h)
static const CfgField kMlpFields[] = {
    CFG_R(CFG_SIZE, MlpCfg, mlp_hidden, 0, MODEL_MAX_HIDDEN, "MLP hidden size (0 = mlp_mult * dim)"),
    F(CFG_STRING, mlp_act, "MLP activation: relu2 | leaky_relu2 | swiglu"),
};
#undef F

typedef struct MlpInst {
    Tensor *fc, *proj;
} MlpInst;

static void mlp_defaults(void *cfg) {
    MlpCfg *c = cfg;
    memset(c, 0, sizeof *c);
    strcpy(c->mlp_act, "relu2");
}

static int mlp_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    MlpCfg *c = cfg;
    if (!c->mlp_hidden) c->mlp_hidden = sc->mlp_mult * sc->dim;
    c->swiglu = !strcmp(c->mlp_act, "swiglu");
    c->act = !strcmp(c->mlp_act, "leaky_relu2") ? ACT_LEAKY_RELU2 : ACT_RELU2;
    if (strcmp(c->mlp_act, "relu2") && strcmp(c->mlp_act, "leaky_relu2") && !c->swiglu)
        return err_set(err, "config: model.mlp_act must be relu2, leaky_relu2 or swiglu, got \"%s\"", c->mlp_act);
    if (used && !c->mlp_hidden) return err_set(err, "config: model.mlp_hidden or model.mlp_mult must be positive");
    return 0;
}

static void mlp_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    MlpInst *a = inst;
    const MlpCfg *c = cfg;
    a->fc = block_param(ps, prefix, "mlp.fc.weight", 2, c->swiglu ? 2 * c->mlp_hidden : c->mlp_hidden, sc->dim);
    a->proj = block_param(ps, prefix, "mlp.proj.weight", 2, sc->dim, c->mlp_hidden);
}

static void mlp_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    MlpInst *a = inst;
    block_init_linear(a->fc, rng);
    if (sc->zero_init_proj) block_fill(a->proj, 0.0f);
    else block_init_linear(a->proj, rng);
}

static Tensor *mlp_forward(const void *inst, const void *cfg, const BlockCtx *c, Tensor *h) {
    const MlpInst *a = inst;
    const MlpCfg *mc = cfg;
    Tensor *u = model_linear(c->m, c->tp, h, a->fc, NULL);
    u = mc->swiglu ? op_swiglu(c->tp, u) : op_act(c->tp, u, mc->act);
    if (c->sc->subln) u = op_rmsnorm(c->tp, u, NULL, (float)c->sc->norm_eps);
    return model_linear(c->m, c->tp, u, a->proj, NULL);
}

static int mlp_export_keys(const void *cfg, const StackConfig *sc, KvList *kv, Err *err) {
    const MlpCfg *c = cfg;
    kv_add_u32(kv, "mlp.hidden", c->mlp_hidden);
    kv_add_str(kv, "mlp.act", c->mlp_act);
    kv_add_bool(kv, "mlp.subln", sc->subln);
    return 0;
}

const BlockKind kBlockMlp = {
    .name = "mlp",
    .role = BLOCK_CHANNEL,
    .fields = kMlpFields,
    .nfields = sizeof kMlpFields / sizeof kMlpFields[0],
    .cfg_bytes = sizeof(MlpCfg),
    .defaults = mlp_defaults,
    .resolve = mlp_resolve,
    .inst_bytes = sizeof(MlpInst),
    .add_params = mlp_add_params,
    .init = mlp_init,
    .forward = mlp_forward,
    .export_keys = mlp_export_keys,
};
