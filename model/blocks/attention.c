/* attention — causal grouped-query self-attention with RoPE (token mixer), as the
 * parameter-golf baseline (openai/parameter-golf train_gpt.py, CausalSelfAttention) and Llama-2:
 *   q, k, v = h Wq, h Wk, h Wv;  [qk_norm: q, k RMS-normed per head];  RoPE (half split);
 *   [q_gain: q *= q_gain[head]];  y = softmax(q k^T / sqrt(D)) v (causal, head h reads kv head
 *   h / (H / G));  [subln: y = rmsnorm(y) (BitNet SubLN)];  out = y Wo.
 * Keys (shared table): heads, kv_heads, rope_base, qk_norm, q_gain, qk_gain_init, subln,
 * zero_init_proj. Tensors: attn.c_q / c_k / c_v / proj .weight and attn.q_gain (parameter-golf
 * names) or attn.wq / wk / wv / wo .weight (Llama names). */
#include <string.h>

#include "model/block.h"
#include "model/qat.h"

typedef struct AttnCfg {
    size_t head_dim, kv_dim; /* derived */
} AttnCfg;

typedef struct AttnInst {
    Tensor *wq, *wk, *wv, *wo, *q_gain;
} AttnInst;

static void attn_defaults(void *cfg) { memset(cfg, 0, sizeof(AttnCfg)); }

static int attn_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    AttnCfg *c = cfg;
    c->head_dim = sc->heads ? sc->dim / sc->heads : 0;
    c->kv_dim = sc->kv_heads * c->head_dim;
    if (!used) return 0;
    if (sc->heads == 0 || sc->dim % sc->heads)
        return err_set(err, "config: model.dim (%zu) must be a multiple of model.heads (%zu)", sc->dim, sc->heads);
    if (sc->kv_heads == 0 || sc->heads % sc->kv_heads)
        return err_set(err, "config: model.heads (%zu) must be a multiple of model.kv_heads (%zu)", sc->heads, sc->kv_heads);
    if (c->head_dim % 2) return err_set(err, "config: head dim %zu must be even for RoPE", c->head_dim);
    return 0;
}

static const char *const kNames[2][5] = {{"attn.c_q.weight", "attn.c_k.weight", "attn.c_v.weight", "attn.proj.weight", "attn.q_gain"},
                                         {"attn.wq.weight", "attn.wk.weight", "attn.wv.weight", "attn.wo.weight", "attn.q_gain"}};

static void attn_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    AttnInst *a = inst;
    const AttnCfg *c = cfg;
    const char *const *nm = kNames[sc->names];
    size_t C = sc->dim;
    a->wq = block_param(ps, prefix, nm[0], 2, C, C);
    a->wk = block_param(ps, prefix, nm[1], 2, c->kv_dim, C);
    a->wv = block_param(ps, prefix, nm[2], 2, c->kv_dim, C);
    a->wo = block_param(ps, prefix, nm[3], 2, C, C);
    a->q_gain = sc->q_gain ? block_param(ps, prefix, nm[4], 1, sc->heads, 0) : NULL;
}

static void attn_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    AttnInst *a = inst;
    block_init_linear(a->wq, rng);
    block_init_linear(a->wk, rng);
    block_init_linear(a->wv, rng);
    if (sc->zero_init_proj) block_fill(a->wo, 0.0f);
    else block_init_linear(a->wo, rng);
    if (a->q_gain) block_fill(a->q_gain, (float)sc->qk_gain_init);
}

static Tensor *attn_forward(const void *inst, const void *cfg, const BlockCtx *c, Tensor *h) {
    const AttnInst *a = inst;
    const StackConfig *sc = c->sc;
    Tape *tp = c->tp;
    size_t B = c->B, T = c->T, C = sc->dim, H = sc->heads, G = sc->kv_heads, D = ((const AttnCfg *)cfg)->head_dim;
    float eps = (float)sc->norm_eps;
    Tensor *q = op_reshape(tp, model_linear(c->m, tp, h, a->wq, NULL), 4, (size_t[]){B, T, H, D});
    Tensor *k = op_reshape(tp, model_linear(c->m, tp, h, a->wk, NULL), 4, (size_t[]){B, T, G, D});
    Tensor *v = op_reshape(tp, model_linear(c->m, tp, h, a->wv, NULL), 4, (size_t[]){B, T, G, D});
    if (sc->qk_norm) {
        q = op_rmsnorm_heads(tp, q, D, eps);
        k = op_rmsnorm_heads(tp, k, D, eps);
    }
    Tensor *y = op_attention(tp, q, k, v, a->q_gain, c->rope, 0.0f);
    y = op_reshape(tp, y, 3, (size_t[]){B, T, C});
    if (sc->subln) y = op_rmsnorm(tp, y, NULL, eps);
    return model_linear(c->m, tp, y, a->wo, NULL);
}

static int attn_export_keys(const void *cfg, const StackConfig *sc, KvList *kv, Err *err) {
    if (sc->names != NAMES_PGOLF) return err_set(err, "export: attention with Llama tensor names has no runtime layout");
    kv_add_u32(kv, "attn.heads", sc->heads);
    kv_add_u32(kv, "attn.kv_heads", sc->kv_heads);
    kv_add_f32(kv, "attn.rope_base", sc->rope_base);
    kv_add_bool(kv, "attn.qk_norm", sc->qk_norm);
    kv_add_bool(kv, "attn.q_gain", sc->q_gain);
    kv_add_bool(kv, "attn.subln", sc->subln);
    return 0;
}

/* the KV cache: keys and values of every position */
static size_t attn_state(const void *cfg, const StackConfig *sc, size_t ctx) { return 2 * ctx * ((const AttnCfg *)cfg)->kv_dim; }

const BlockKind kBlockAttention = {
    .name = "attention",
    .role = BLOCK_MIXER,
    .cfg_bytes = sizeof(AttnCfg),
    .defaults = attn_defaults,
    .resolve = attn_resolve,
    .needs_rope = 1,
    .inst_bytes = sizeof(AttnInst),
    .add_params = attn_add_params,
    .init = attn_init,
    .forward = attn_forward,
    .export_keys = attn_export_keys,
    .decode_state_floats = attn_state,
};
