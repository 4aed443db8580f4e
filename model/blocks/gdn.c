/* gdn — the Gated DeltaNet token mixer (Yang, Kautz, Hatamizadeh 2024, "Gated Delta Networks:
 * Improving Mamba2 with Delta Rule", arXiv 2412.06464), the layer as fla-org/flash-linear-attention
 * builds it (fla/layers/gated_deltanet.py, GatedDeltaNet):
 *   q, k, v = silu(conv_K(h Wq)), silu(conv_K(h Wk)), silu(conv_K(h Wv))  (short causal depthwise
 *             convolutions; gdn_conv = 0: silu(h W) alone)
 *   q <- q / |q| * dk^-1/2,  k <- k / |k|  per head (L2, eps 1e-6)
 *   g = -exp(A_log) softplus(h Wa + dt_bias)   (log-space decay, alpha = e^g)
 *   beta = sigmoid(h Wb)
 *   o = gated delta rule(q, k, v, g, beta)     (op_gated_delta: chunkwise WY / UT or recurrent)
 *   y = (rmsnorm(o) * o_norm.weight * silu(h Wg)) Wo   per head (fla's FusedRMSNormGated)
 * H heads of key (state) dim dk and value dim dv = expand_v dk; the state is dk x dv per head.
 * Keys: gdn_heads (0 = dim / gdn_head_dim), gdn_head_dim (64), gdn_expand_v (1), gdn_conv (4),
 * gdn_chunk (64), gdn_kernel (chunked | recurrent); the output norm's eps is the stack's norm_eps.
 * Tensors (fla's names, under blocks.<i>.gdn.): q_proj / k_proj / v_proj / a_proj / b_proj
 * .weight, A_log, dt_bias, q_conv1d / k_conv1d / v_conv1d .weight ([D, K], torch's [D, 1, K]),
 * g_proj.weight, o_norm.weight [dv], o_proj.weight. Init as fla's layer: torch.nn.Linear's
 * U(+-in^-1/2) (o_proj zero with zero_init_proj), Conv1d's U(+-K^-1/2), A ~ U(0, 16),
 * dt = exp(U(ln 1e-3, ln 0.1)) floored at 1e-4 with dt_bias = softplus^-1(dt), o_norm 1.
 * The span-knot layer of the chimera preset (letter S) is this kind too (docs/ARCHITECTURE.md). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/block.h"
#include "model/qat.h"

typedef struct GdnCfg {
    size_t gdn_heads, gdn_head_dim, gdn_conv, gdn_chunk;
    double gdn_expand_v;
    char gdn_kernel[CFG_STR_MAX];
    size_t heads, dk, dv; /* derived */
    GdnKernel kernel;
} GdnCfg;

#define R(type, m, lo, hi, h) CFG_R(type, GdnCfg, m, lo, hi, h)
static const CfgField kGdnFields[] = {
    R(CFG_SIZE, gdn_heads, 0, MODEL_MAX_HEADS, "Gated DeltaNet heads (0 = dim / gdn_head_dim)"),
    R(CFG_SIZE, gdn_head_dim, 1, 4096, "Gated DeltaNet key (state) dim per head"),
    R(CFG_FLOAT, gdn_expand_v, 0.0625, 16, "Gated DeltaNet value dim per head = gdn_expand_v * gdn_head_dim"),
    R(CFG_SIZE, gdn_conv, 0, 16, "Gated DeltaNet short causal convolution on q, k, v: kernel size (0 = none)"),
    R(CFG_SIZE, gdn_chunk, 1, 4096, "Gated DeltaNet tokens per chunk of the chunkwise form"),
    CFG_F(CFG_STRING, GdnCfg, gdn_kernel, "Gated DeltaNet training kernel: chunked | recurrent (the reference)"),
};
#undef R

typedef struct GdnInst {
    Tensor *wq, *wk, *wv, *wa, *wb, *a_log, *dt_bias, *cq, *ck, *cv, *wg, *onorm, *wo;
} GdnInst;

static void gdn_defaults(void *cfg) {
    GdnCfg *c = cfg;
    memset(c, 0, sizeof *c);
    c->gdn_head_dim = 64;
    c->gdn_expand_v = 1.0;
    c->gdn_conv = 4;
    c->gdn_chunk = 64;
    strcpy(c->gdn_kernel, "chunked");
}

static int gdn_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    GdnCfg *c = cfg;
    int kind = gdn_kernel_from_name(c->gdn_kernel);
    if (kind < 0) return err_set(err, "config: model.gdn_kernel must be chunked or recurrent, got \"%s\"", c->gdn_kernel);
    c->kernel = (GdnKernel)kind;
    c->dk = c->gdn_head_dim;
    c->heads = c->gdn_heads ? c->gdn_heads : sc->dim / c->dk;
    double dv = c->gdn_expand_v * (double)c->dk;
    c->dv = (size_t)(dv + 0.5);
    if (fabs(dv - (double)c->dv) > 1e-6 || c->dv == 0)
        return err_set(err, "config: model.gdn_expand_v (%g) times model.gdn_head_dim (%zu) must be a positive whole number",
                       c->gdn_expand_v, c->dk);
    if (used && c->heads == 0)
        return err_set(err, "config: model.gdn_heads is 0 and model.dim (%zu) is below model.gdn_head_dim (%zu)", sc->dim, c->dk);
    return 0;
}

static void gdn_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    GdnInst *a = inst;
    const GdnCfg *c = cfg;
    char p[96];
    snprintf(p, sizeof p, "%sgdn.", prefix);
    size_t C = sc->dim, H = c->heads, KD = H * c->dk, VD = H * c->dv, K = c->gdn_conv;
    a->wq = block_param(ps, p, "q_proj.weight", 2, KD, C);
    a->wk = block_param(ps, p, "k_proj.weight", 2, KD, C);
    a->wv = block_param(ps, p, "v_proj.weight", 2, VD, C);
    a->wa = block_param(ps, p, "a_proj.weight", 2, H, C);
    a->wb = block_param(ps, p, "b_proj.weight", 2, H, C);
    a->a_log = block_param(ps, p, "A_log", 1, H, 0);
    a->dt_bias = block_param(ps, p, "dt_bias", 1, H, 0);
    if (K) {
        a->cq = block_param(ps, p, "q_conv1d.weight", 2, KD, K);
        a->ck = block_param(ps, p, "k_conv1d.weight", 2, KD, K);
        a->cv = block_param(ps, p, "v_conv1d.weight", 2, VD, K);
    }
    a->wg = block_param(ps, p, "g_proj.weight", 2, VD, C);
    a->onorm = block_param(ps, p, "o_norm.weight", 1, c->dv, 0);
    a->wo = block_param(ps, p, "o_proj.weight", 2, C, VD);
}

/* fla's GatedDeltaNet.__init__: A ~ U(0, 16), A_log = ln A; dt = exp(U(ln 1e-3, ln 1e-1)) >= 1e-4,
 * dt_bias = dt + ln(-expm1(-dt)) (softplus^-1, so softplus(dt_bias) = dt at a = 0) */
static void init_decay(GdnInst *a, Rng *rng) {
    size_t H = a->a_log->numel;
    for (size_t h = 0; h < H; h++) {
        double A = 16.0 * rng_uniform(rng);
        a->a_log->data[h] = (float)log(A > 1e-4 ? A : 1e-4); /* U(0, 16) may draw 0: ln 0 = -inf */
    }
    for (size_t h = 0; h < H; h++) {
        double dt = exp(rng_uniform(rng) * (log(0.1) - log(1e-3)) + log(1e-3));
        dt = dt > 1e-4 ? dt : 1e-4;
        a->dt_bias->data[h] = (float)(dt + log(-expm1(-dt)));
    }
}

static void gdn_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    GdnInst *a = inst;
    Tensor *lin[5] = {a->wq, a->wk, a->wv, a->wa, a->wb};
    for (int i = 0; i < 5; i++) block_init_linear(lin[i], rng);
    init_decay(a, rng);
    Tensor *conv[3] = {a->cq, a->ck, a->cv};
    for (int i = 0; i < 3 && conv[i]; i++) block_init_linear(conv[i], rng); /* Conv1d: fan_in = K */
    block_init_linear(a->wg, rng);
    block_fill(a->onorm, 1.0f);
    if (sc->zero_init_proj) block_fill(a->wo, 0.0f);
    else block_init_linear(a->wo, rng);
}

/* silu(conv(x)) or silu(x) without a convolution; the conv weight follows the QAT plan too */
static Tensor *conv_silu(const BlockCtx *c, Tensor *x, Tensor *w, size_t K) {
    return K ? op_short_conv(c->tp, x, model_weight(c->m, c->tp, w), K) : op_silu(c->tp, x);
}

static Tensor *gdn_kind_forward(const void *inst, const void *cfg, const BlockCtx *c, Tensor *h) {
    const GdnInst *a = inst;
    const GdnCfg *gc = cfg;
    Tape *tp = c->tp;
    Model *m = c->m;
    size_t B = c->B, T = c->T, H = gc->heads, dk = gc->dk, dv = gc->dv, K = gc->gdn_conv;
    Tensor *q = conv_silu(c, model_linear(m, tp, h, a->wq, NULL), a->cq, K);
    Tensor *k = conv_silu(c, model_linear(m, tp, h, a->wk, NULL), a->ck, K);
    Tensor *v = conv_silu(c, model_linear(m, tp, h, a->wv, NULL), a->cv, K);
    q = op_reshape(tp, op_l2norm_heads(tp, q, dk, 1.0f / sqrtf((float)dk)), 4, (size_t[]){B, T, H, dk});
    k = op_reshape(tp, op_l2norm_heads(tp, k, dk, 1.0f), 4, (size_t[]){B, T, H, dk});
    v = op_reshape(tp, v, 4, (size_t[]){B, T, H, dv});
    Tensor *g = op_gdn_decay(tp, model_linear(m, tp, h, a->wa, NULL), a->a_log, a->dt_bias);
    Tensor *beta = op_sigmoid(tp, model_linear(m, tp, h, a->wb, NULL));
    Tensor *o = op_gated_delta(tp, q, k, v, g, beta, gc->kernel, gc->gdn_chunk);
    /* the gated output norm, per head: rmsnorm over dv with the shared gain, times silu(gate) */
    o = op_rmsnorm(tp, o, a->onorm, (float)c->sc->norm_eps);
    Tensor *gate = op_silu(tp, op_reshape(tp, model_linear(m, tp, h, a->wg, NULL), 4, (size_t[]){B, T, H, dv}));
    o = op_reshape(tp, op_mul(tp, o, gate), 3, (size_t[]){B, T, H * dv});
    return model_linear(m, tp, o, a->wo, NULL);
}

static int gdn_export_keys(const void *cfg, const StackConfig *sc, KvList *kv, Err *err) {
    const GdnCfg *c = cfg;
    kv_add_u32(kv, "gdn.heads", c->heads);
    kv_add_u32(kv, "gdn.head_dim", c->dk);
    kv_add_u32(kv, "gdn.value_dim", c->dv);
    kv_add_u32(kv, "gdn.conv", c->gdn_conv);
    return 0;
}

/* the state S (dk x dv per head) and the last K - 1 inputs of the three convolutions */
static size_t gdn_state(const void *cfg, const StackConfig *sc, size_t ctx) {
    const GdnCfg *c = cfg;
    size_t hist = c->gdn_conv ? c->gdn_conv - 1 : 0;
    return c->heads * c->dk * c->dv + hist * c->heads * (2 * c->dk + c->dv);
}

const BlockKind kBlockGdn = {
    .name = "gdn",
    .role = BLOCK_MIXER,
    .fields = kGdnFields,
    .nfields = sizeof kGdnFields / sizeof kGdnFields[0],
    .cfg_bytes = sizeof(GdnCfg),
    .defaults = gdn_defaults,
    .resolve = gdn_resolve,
    .inst_bytes = sizeof(GdnInst),
    .add_params = gdn_add_params,
    .init = gdn_init,
    .forward = gdn_kind_forward,
    .group_rules = "{\"match\":\"*conv1d.weight\",\"group\":\"scalar\"}",
    .export_keys = gdn_export_keys,
    .decode_state_floats = gdn_state,
};
