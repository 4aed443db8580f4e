/* mlstm — xLSTM's mLSTM block (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory", arXiv
 * 2405.04517, §2.3 and Fig. 10; NX-AI/xlstm xlstm/blocks/mlstm/layer.py and cell.py) as a token
 * mixer. A pre-up-projection block: it carries its own up and down projections, so its layer type
 * has no channel mixer (docs/ARCHITECTURE.md says why):
 *   [x_m | z] = proj_up(h)                                    (C -> 2I, I = proj_factor C)
 *   x_c = silu(causal_conv(x_m))                              (depthwise, kernel mlstm_conv)
 *   q = headwise(x_c), k = headwise(x_c), v = headwise(x_m)   (block-diagonal, blocks of qkv_block)
 *   [ig | fg] = gates([q | k | v]) + bias                     (3I -> 2 heads)
 *   c = mlstm(q, k, v, ig, fg)                                (heads of mlstm_head_dim; kernels/mlstm.h)
 *   y = proj_down((norm.weight ⊙ group_norm(c) + skip ⊙ x_c) ⊙ silu(z))
 * Init as xLSTM's: proj_up N(0, sqrt(2 / (5 C))) (small init), q/k/v N(0, sqrt(2 / (5 bs))), the
 * conv as torch's Conv1d, gate weights 0, input gate bias N(0, 0.1), forget gate bias
 * linspace(3, 6) over heads, norm weight and skip 1, proj_down N(0, 2 / (layers sqrt(C))) (Wang
 * init; zero with model.zero_init_proj).
 * Keys: mlstm_head_dim, mlstm_proj_factor, mlstm_conv, mlstm_qkv_block, mlstm_chunk, mlstm_form,
 * mlstm_forget, mlstm_norm_eps, mlstm_igate_bias_std, mlstm_fgate_bias_lo / _hi.
 * Tensors (blocks.<i>.mlstm.): proj_up.weight [2I, C], conv.weight [I, K], conv.bias [I],
 * q.weight / k.weight / v.weight [I, bs], gates.weight [2H, 3I] (input gate rows first),
 * gates.bias [2H], norm.weight [I], skip [I], proj_down.weight [C, I]. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/block.h"
#include "model/qat.h"

typedef struct MlstmKindCfg {
    size_t mlstm_head_dim, mlstm_conv, mlstm_qkv_block, mlstm_chunk;
    double mlstm_proj_factor, mlstm_norm_eps, mlstm_igate_bias_std, mlstm_fgate_bias_lo, mlstm_fgate_bias_hi;
    char mlstm_form[CFG_STR_MAX], mlstm_forget[CFG_STR_MAX];
    /* derived */
    size_t inner, heads;
    MlstmForm form;
    int exp_forget;
} MlstmKindCfg;

#define R(type, m, lo, hi, h) CFG_R(type, MlstmKindCfg, m, lo, hi, h)
static const CfgField kMlstmFields[] = {
    R(CFG_SIZE, mlstm_head_dim, 1, 4096, "mLSTM head dim: each head's memory is head_dim x head_dim"),
    R(CFG_FLOAT, mlstm_proj_factor, 0.01, 64, "mLSTM up-projection: inner = proj_factor * dim, rounded up to whole heads"),
    R(CFG_SIZE, mlstm_conv, 1, 64, "mLSTM causal convolution kernel size"),
    R(CFG_SIZE, mlstm_qkv_block, 1, 64, "mLSTM q/k/v block-diagonal projection block size"),
    R(CFG_SIZE, mlstm_chunk, 1, MODEL_MAX_SEQ, "mLSTM training chunk (chunkwise form; checkpoint segment of the recurrent form)"),
    CFG_F(CFG_STRING, MlstmKindCfg, mlstm_form, "mLSTM training form: chunkwise | parallel | recurrent"),
    CFG_F(CFG_STRING, MlstmKindCfg, mlstm_forget, "mLSTM forget gate: sigmoid | exp"),
    R(CFG_FLOAT, mlstm_norm_eps, 1e-12, 1, "mLSTM per-head layer norm eps"),
    R(CFG_FLOAT, mlstm_igate_bias_std, 0, 1e3, "mLSTM input gate bias init std"),
    R(CFG_FLOAT, mlstm_fgate_bias_lo, -1e3, 1e3, "mLSTM forget gate bias init: linspace(lo, hi) over heads"),
    R(CFG_FLOAT, mlstm_fgate_bias_hi, -1e3, 1e3, "mLSTM forget gate bias init: linspace(lo, hi) over heads"),
};
#undef R

typedef struct MlstmInst {
    Tensor *up, *conv_w, *conv_b, *wq, *wk, *wv, *gates_w, *gates_b, *norm_w, *skip, *down;
} MlstmInst;

static void mlstm_defaults(void *cfg) {
    MlstmKindCfg *c = cfg;
    memset(c, 0, sizeof *c);
    c->mlstm_head_dim = 64;
    c->mlstm_proj_factor = 2.0;
    c->mlstm_conv = 4;
    c->mlstm_qkv_block = 4;
    c->mlstm_chunk = 64;
    strcpy(c->mlstm_form, "chunkwise");
    strcpy(c->mlstm_forget, "sigmoid");
    c->mlstm_norm_eps = 1e-5;
    c->mlstm_igate_bias_std = 0.1;
    c->mlstm_fgate_bias_lo = 3.0;
    c->mlstm_fgate_bias_hi = 6.0;
}

static int mlstm_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    MlstmKindCfg *c = cfg;
    size_t D = c->mlstm_head_dim ? c->mlstm_head_dim : 1;
    c->heads = (size_t)ceil(c->mlstm_proj_factor * (double)sc->dim / (double)D);
    if (c->heads < 1) c->heads = 1;
    c->inner = c->heads * D;
    int form = mlstm_form_from_name(c->mlstm_form);
    if (form < 0) return err_set(err, "config: model.mlstm_form must be chunkwise, parallel or recurrent, got \"%s\"", c->mlstm_form);
    c->form = (MlstmForm)form;
    if (strcmp(c->mlstm_forget, "sigmoid") && strcmp(c->mlstm_forget, "exp"))
        return err_set(err, "config: model.mlstm_forget must be sigmoid or exp, got \"%s\"", c->mlstm_forget);
    c->exp_forget = !strcmp(c->mlstm_forget, "exp");
    if (!used) return 0;
    if (c->inner % c->mlstm_qkv_block)
        return err_set(err, "config: model.mlstm_qkv_block (%zu) must divide the mLSTM inner width %zu (heads x mlstm_head_dim)",
                       c->mlstm_qkv_block, c->inner);
    if (c->inner > MODEL_MAX_HIDDEN) return err_set(err, "config: mLSTM inner width %zu too large (model.mlstm_proj_factor)", c->inner);
    return 0;
}

static void mlstm_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    MlstmInst *a = inst;
    const MlstmKindCfg *c = cfg;
    size_t C = sc->dim, I = c->inner, H = c->heads;
    char p[96];
    snprintf(p, sizeof p, "%smlstm.", prefix);
    a->up = block_param(ps, p, "proj_up.weight", 2, 2 * I, C);
    a->conv_w = block_param(ps, p, "conv.weight", 2, I, c->mlstm_conv);
    a->conv_b = block_param(ps, p, "conv.bias", 1, I, 0);
    a->wq = block_param(ps, p, "q.weight", 2, I, c->mlstm_qkv_block);
    a->wk = block_param(ps, p, "k.weight", 2, I, c->mlstm_qkv_block);
    a->wv = block_param(ps, p, "v.weight", 2, I, c->mlstm_qkv_block);
    a->gates_w = block_param(ps, p, "gates.weight", 2, 2 * H, 3 * I);
    a->gates_b = block_param(ps, p, "gates.bias", 1, 2 * H, 0);
    a->norm_w = block_param(ps, p, "norm.weight", 1, I, 0);
    a->skip = block_param(ps, p, "skip", 1, I, 0);
    a->down = block_param(ps, p, "proj_down.weight", 2, C, I);
}

static void mlstm_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    MlstmInst *a = inst;
    const MlstmKindCfg *c = cfg;
    size_t H = c->heads;
    rng_fill_normal(rng, a->up->data, a->up->numel, 0.0f, sqrtf(2.0f / (5.0f * (float)sc->dim)));
    float cb = 1.0f / sqrtf((float)c->mlstm_conv); /* torch Conv1d: fan_in = kernel size (depthwise) */
    rng_fill_uniform(rng, a->conv_w->data, a->conv_w->numel, -cb, cb);
    rng_fill_uniform(rng, a->conv_b->data, a->conv_b->numel, -cb, cb);
    float qs = sqrtf(2.0f / (5.0f * (float)c->mlstm_qkv_block));
    Tensor *qkv[3] = {a->wq, a->wk, a->wv};
    for (int i = 0; i < 3; i++) rng_fill_normal(rng, qkv[i]->data, qkv[i]->numel, 0.0f, qs);
    block_fill(a->gates_w, 0.0f);
    rng_fill_normal(rng, a->gates_b->data, H, 0.0f, (float)c->mlstm_igate_bias_std);
    for (size_t h = 0; h < H; h++) {
        double f = H > 1 ? (double)h / (double)(H - 1) : 0.0;
        a->gates_b->data[H + h] = (float)(c->mlstm_fgate_bias_lo + f * (c->mlstm_fgate_bias_hi - c->mlstm_fgate_bias_lo));
    }
    block_fill(a->norm_w, 1.0f);
    block_fill(a->skip, 1.0f);
    if (sc->zero_init_proj) block_fill(a->down, 0.0f);
    else rng_fill_normal(rng, a->down->data, a->down->numel, 0.0f, 2.0f / (float)(sc->layers ? sc->layers : 1) / sqrtf((float)sc->dim));
}

static Tensor *mlstm_forward_kind(const void *inst, const void *cfg, const BlockCtx *ctx, Tensor *h) {
    const MlstmInst *a = inst;
    const MlstmKindCfg *c = cfg;
    Model *m = ctx->m;
    Tape *tp = ctx->tp;
    size_t B = ctx->B, T = ctx->T, I = c->inner, H = c->heads, D = c->mlstm_head_dim;
    Tensor *up = model_linear(m, tp, h, a->up, NULL);
    Tensor *xm = op_slice(tp, up, 0, I), *z = op_slice(tp, up, I, I);
    Tensor *xc = op_silu(tp, op_causal_conv(tp, xm, model_weight(m, tp, a->conv_w), a->conv_b));
    Tensor *q = op_headwise(tp, xc, model_weight(m, tp, a->wq));
    Tensor *k = op_headwise(tp, xc, model_weight(m, tp, a->wk));
    Tensor *v = op_headwise(tp, xm, model_weight(m, tp, a->wv));
    Tensor *qkv[3] = {q, k, v};
    Tensor *g = model_linear(m, tp, op_concat(tp, qkv, 3), a->gates_w, a->gates_b);
    size_t s4[4] = {B, T, H, D};
    MlstmCfg mc = {.form = c->form, .chunk = c->mlstm_chunk, .exp_forget = c->exp_forget};
    Tensor *cell = op_mlstm(tp, op_reshape(tp, q, 4, s4), op_reshape(tp, k, 4, s4), op_reshape(tp, v, 4, s4), op_slice(tp, g, 0, H),
                            op_slice(tp, g, H, H), &mc);
    Tensor *hn = op_mul(tp, op_group_norm(tp, op_reshape(tp, cell, 3, (size_t[]){B, T, I}), D, (float)c->mlstm_norm_eps), a->norm_w);
    Tensor *out = op_mul(tp, op_add_mul(tp, hn, a->skip, xc), op_silu(tp, z));
    return model_linear(m, tp, out, a->down, NULL);
}

static int mlstm_export_keys(const void *cfg, const StackConfig *sc, KvList *kv, Err *err) {
    const MlstmKindCfg *c = cfg;
    kv_add_u32(kv, "mlstm.heads", c->heads);
    kv_add_u32(kv, "mlstm.head_dim", c->mlstm_head_dim);
    kv_add_u32(kv, "mlstm.conv", c->mlstm_conv);
    kv_add_u32(kv, "mlstm.qkv_block", c->mlstm_qkv_block);
    kv_add_bool(kv, "mlstm.exp_forget", c->exp_forget);
    kv_add_f32(kv, "mlstm.norm_eps", c->mlstm_norm_eps);
    return 0;
}

/* per head the memory [D][D + 1] (C and n) and m; the last K - 1 rows of x_m for the convolution */
static size_t mlstm_state(const void *cfg, const StackConfig *sc, size_t ctx) {
    const MlstmKindCfg *c = cfg;
    return c->heads * (c->mlstm_head_dim * (c->mlstm_head_dim + 1) + 1) + (c->mlstm_conv - 1) * c->inner;
}

const BlockKind kBlockMlstm = {
    .name = "mlstm",
    .role = BLOCK_MIXER,
    .fields = kMlstmFields,
    .nfields = sizeof kMlstmFields / sizeof kMlstmFields[0],
    .cfg_bytes = sizeof(MlstmKindCfg),
    .defaults = mlstm_defaults,
    .resolve = mlstm_resolve,
    .inst_bytes = sizeof(MlstmInst),
    .add_params = mlstm_add_params,
    .init = mlstm_init,
    .forward = mlstm_forward_kind,
    /* the small structured matrices and the gates train with Adam, not Muon */
    .group_rules = "{\"match\":\"*.mlstm.conv.weight\",\"group\":\"scalar\"},{\"match\":\"*.mlstm.q.weight\",\"group\":\"scalar\"},"
                   "{\"match\":\"*.mlstm.k.weight\",\"group\":\"scalar\"},{\"match\":\"*.mlstm.v.weight\",\"group\":\"scalar\"},"
                   "{\"match\":\"*.mlstm.gates.weight\",\"group\":\"scalar\"}",
    .export_keys = mlstm_export_keys,
    .decode_state_floats = mlstm_state,
};
