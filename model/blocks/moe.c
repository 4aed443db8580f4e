/* moe — a mixture-of-experts channel mixer, DeepSeek-V3 style (arXiv 2412.19437; the
 * auxiliary-loss-free balancing of arXiv 2408.15664; ../shared/notes/backbones.md §6):
 *   s = sigmoid(h Wr^T)                          router affinities [N, E] (Wr kept fp32 under QAT)
 *   top-K experts per token by s + b             b: the routing bias, a buffer (no gradient)
 *   w = route_scale * s_sel / sum(s_sel)
 *   out = sum_k w_k FFN_{sel_k}(h) + sum_j FFN_shared_j(h)     FFN: SwiGLU, hidden moe_hidden
 * The routed part is op_moe (sort-based, dropless, deterministic: kernels/moe.h). After every
 * optimizer step the trainer sums each expert's token count over micro-steps and ranks and the
 * bias moves against the load error: b_e += moe_bias_rate sign(mean_e c - c_e).
 * Keys: moe_experts (16), moe_shared (1), moe_topk (2), moe_hidden (0 = the SwiGLU kind's sizing,
 * round_up(2/3 mlp_mult dim, 256)), moe_bias_rate (1e-3), moe_route_scale (1).
 * Tensors under blocks.<i>.moe.: router.weight [E, C], experts.<e>.gate_up.weight [2H, C] (gate
 * rows first) and experts.<e>.down.weight [C, H], shared.<j>.gate_up / down likewise; buffer
 * blocks.<i>.moe.bias [E] (checkpointed, resumed, exported). Init: the router as torch.nn.Linear,
 * the experts as the swiglu kind (N(0, C^-1/2), N(0, H^-1/2)), the bias 0. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/block.h"
#include "model/qat.h"

#define MOE_MAX_SHARED 16

typedef struct MoeCfg {
    size_t moe_experts, moe_shared, moe_topk, moe_hidden;
    double moe_bias_rate, moe_route_scale;
} MoeCfg;

#define R(type, m, lo, hi, h) CFG_R(type, MoeCfg, m, lo, hi, h)
static const CfgField kMoeFields[] = {
    R(CFG_SIZE, moe_experts, 1, MOE_MAX_EXPERTS, "MoE routed experts"),
    R(CFG_SIZE, moe_shared, 0, MOE_MAX_SHARED, "MoE shared experts (always applied)"),
    R(CFG_SIZE, moe_topk, 1, MOE_MAX_EXPERTS, "MoE routed experts per token (<= moe_experts)"),
    R(CFG_SIZE, moe_hidden, 0, MODEL_MAX_HIDDEN, "MoE expert SwiGLU hidden (0 = round_up(2/3 * mlp_mult * dim, 256))"),
    R(CFG_FLOAT, moe_bias_rate, 0, 1, "MoE routing-bias step per optimizer step: b += rate * sign(mean load - load)"),
    R(CFG_FLOAT, moe_route_scale, 1e-6, 1e3, "MoE routed scaling factor on the normalised gate weights"),
};
#undef R

typedef struct MoeInst {
    Tensor *router;
    Tensor **gu, **dn;  /* [E + shared] each: the routed experts, then the shared ones */
    float *bias;        /* [E] the routing bias (buffer), owned */
    float *load;        /* [E] tokens per expert this step: the stack's counters (float sums of whole
                         * numbers: exact up to 2^24 tokens per expert and step) */
} MoeInst;

static void moe_defaults(void *cfg) {
    MoeCfg *c = cfg;
    memset(c, 0, sizeof *c);
    c->moe_experts = 16;
    c->moe_shared = 1;
    c->moe_topk = 2;
    c->moe_bias_rate = 1e-3;
    c->moe_route_scale = 1.0;
}

static int moe_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    MoeCfg *c = cfg;
    if (!c->moe_hidden) c->moe_hidden = ((size_t)(2.0 / 3.0 * (double)(sc->mlp_mult * sc->dim)) + 255) / 256 * 256;
    if (!used) return 0;
    if (c->moe_topk > c->moe_experts)
        return err_set(err, "config: model.moe_topk (%zu) must be at most model.moe_experts (%zu)", c->moe_topk, c->moe_experts);
    if (!c->moe_hidden) return err_set(err, "config: model.moe_hidden or model.mlp_mult must be positive");
    return 0;
}

static void moe_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    MoeInst *a = inst;
    const MoeCfg *c = cfg;
    size_t C = sc->dim, H = c->moe_hidden, n = c->moe_experts + c->moe_shared;
    char p[160];
    snprintf(p, sizeof p, "%smoe.", prefix);
    a->router = block_param(ps, p, "router.weight", 2, c->moe_experts, C);
    a->gu = xcalloc(2 * n, sizeof(Tensor *));
    a->dn = a->gu + n;
    for (size_t e = 0; e < n; e++) {
        char q[200];
        int shared = e >= c->moe_experts;
        snprintf(q, sizeof q, "%s%s.%zu.", p, shared ? "shared" : "experts", shared ? e - c->moe_experts : e);
        a->gu[e] = block_param(ps, q, "gate_up.weight", 2, 2 * H, C);
        a->dn[e] = block_param(ps, q, "down.weight", 2, C, H);
    }
}

static void moe_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    MoeInst *a = inst;
    const MoeCfg *c = cfg;
    block_init_linear(a->router, rng);
    for (size_t e = 0; e < c->moe_experts + c->moe_shared; e++) {
        rng_fill_normal(rng, a->gu[e]->data, a->gu[e]->numel, 0.0f, 1.0f / sqrtf((float)sc->dim));
        rng_fill_normal(rng, a->dn[e]->data, a->dn[e]->numel, 0.0f, 1.0f / sqrtf((float)c->moe_hidden));
    }
}

static size_t moe_step_floats(const void *cfg, const StackConfig *sc) { return ((const MoeCfg *)cfg)->moe_experts; }

static void moe_add_buffers(void *inst, const void *cfg, const StackConfig *sc, BufferStore *bs, const char *prefix, float *step) {
    MoeInst *a = inst;
    size_t E = ((const MoeCfg *)cfg)->moe_experts;
    char name[160];
    snprintf(name, sizeof name, "%smoe.bias", prefix);
    a->bias = xcalloc(E, sizeof(float));
    a->load = step;
    buffers_add(bs, name, BUF_F32, 1, E, 0, a->bias, 1);
}

static double moe_after_step(void *inst, const void *cfg, const StackConfig *sc) {
    MoeInst *a = inst;
    const MoeCfg *c = cfg;
    double balance = moe_bias_update(a->bias, a->load, c->moe_experts, (float)c->moe_bias_rate);
    return balance > 0 ? balance : -1; /* no training forward this step (MeZO): nothing to log */
}

static void moe_free_inst(void *inst) {
    MoeInst *a = inst;
    xfree(a->gu);
    xfree(a->bias);
}

/* -1: float activations; else int8 per block of this many values (0 = per token) */
static long act_block_of(const QuantSpec *q) { return q && q->act_bits == 8 ? (long)q->act_block : -1; }

static Tensor *moe_kind_forward(const void *inst, const void *cfg, const BlockCtx *c, Tensor *h) {
    const MoeInst *a = inst;
    const MoeCfg *mc = cfg;
    Tape *tp = c->tp;
    size_t E = mc->moe_experts, n = E + mc->moe_shared;
    Tensor *s = op_sigmoid(tp, model_linear(c->m, tp, h, a->router, NULL));
    Tensor **w = arena_alloc(&tp->arena, 2 * E * sizeof(Tensor *));
    for (size_t e = 0; e < E; e++) w[e] = model_weight(c->m, tp, a->gu[e]), w[E + e] = model_weight(c->m, tp, a->dn[e]);
    MoeOpCfg oc = {E, mc->moe_topk, mc->moe_hidden, (float)mc->moe_route_scale, a->bias, c->training && !c->recompute ? a->load : NULL, NULL, NULL};
    /* int8 activations (QAT) as model_linear gives them, per expert inside op_moe (its rows are
     * whole tokens, so per-row quantization there is model_linear's per-token) */
    long *q = arena_alloc(&tp->arena, 2 * E * sizeof(long));
    int any = 0;
    for (size_t e = 0; e < E; e++) {
        q[e] = act_block_of(model_quant_spec(c->m, a->gu[e]));
        q[E + e] = act_block_of(model_quant_spec(c->m, a->dn[e]));
        any |= q[e] >= 0 || q[E + e] >= 0;
    }
    if (any) oc.act_in = q, oc.act_hid = q + E;
    Tensor *y = op_moe(tp, h, s, w, w + E, &oc);
    for (size_t e = E; e < n; e++) {
        Tensor *u = op_swiglu(tp, model_linear(c->m, tp, h, a->gu[e], NULL));
        y = op_add(tp, y, model_linear(c->m, tp, u, a->dn[e], NULL));
    }
    return y;
}

static int moe_export_keys(const void *cfg, const StackConfig *sc, KvList *kv, Err *err) {
    const MoeCfg *c = cfg;
    kv_add_u32(kv, "moe.experts", c->moe_experts);
    kv_add_u32(kv, "moe.shared", c->moe_shared);
    kv_add_u32(kv, "moe.topk", c->moe_topk);
    kv_add_u32(kv, "moe.hidden", c->moe_hidden);
    kv_add_f32(kv, "moe.route_scale", c->moe_route_scale);
    return 0;
}

const BlockKind kBlockMoe = {
    .name = "moe",
    .role = BLOCK_CHANNEL,
    .fields = kMoeFields,
    .nfields = sizeof kMoeFields / sizeof kMoeFields[0],
    .cfg_bytes = sizeof(MoeCfg),
    .defaults = moe_defaults,
    .resolve = moe_resolve,
    .inst_bytes = sizeof(MoeInst),
    .add_params = moe_add_params,
    .init = moe_init,
    .forward = moe_kind_forward,
    /* the router is Adam's (as DeepSeek-V3 trains it), not Muon's: its rows are per-expert logits */
    .group_rules = "{\"match\":\"*moe.router.weight\",\"group\":\"scalar\"}",
    .export_keys = moe_export_keys,
    .step_floats = moe_step_floats,
    .add_buffers = moe_add_buffers,
    .after_step = moe_after_step,
    .free_inst = moe_free_inst,
};
