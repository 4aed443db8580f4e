#include "model/gpt.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/ops.h"
#include "model/model.h"
#include "model/qat.h"
#include "model/lora.h"
#include "model/blocks.h"

#define F(type, m, h) CFG_F(type, GptConfig, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, GptConfig, m, lo, hi, h)
const CfgField kGptConfigFields[] = {
    F(CFG_STRING, arch, "architecture: gpt"),
    R(CFG_SIZE, vocab_size, 2, MODEL_MAX_VOCAB, "vocabulary size"),
    R(CFG_SIZE, layers, 1, 256, "number of blocks"),
    R(CFG_SIZE, dim, 1, MODEL_MAX_DIM, "model width"),
    R(CFG_SIZE, heads, 1, MODEL_MAX_HEADS, "query heads"),
    R(CFG_SIZE, kv_heads, 1, MODEL_MAX_HEADS, "key/value heads (GQA)"),
    R(CFG_SIZE, mlp_mult, 0, 64, "MLP hidden = mlp_mult * dim (unless mlp_hidden)"),
    R(CFG_SIZE, mlp_hidden, 0, MODEL_MAX_HIDDEN, "explicit MLP hidden size (0 = mlp_mult * dim)"),
    R(CFG_SIZE, seq_len, 1, MODEL_MAX_SEQ, "longest sequence (RoPE table)"),
    F(CFG_STRING, mlp_act, "relu2 | leaky_relu2 | swiglu"),
    R(CFG_FLOAT, softcap, 0, 1e6, "logit softcap (0 = off)"),
    R(CFG_FLOAT, rope_base, 1, 1e12, "RoPE base"),
    R(CFG_FLOAT, embed_init_std, 0, 1e3, "embedding init std"),
    R(CFG_FLOAT, qk_gain_init, 0, 1e3, "initial per-head q gain"),
    R(CFG_FLOAT, norm_eps, 0, 1, "RMSNorm eps (0 = float32 machine eps, as torch)"),
    F(CFG_BOOL, tie_embeddings, "tie input embedding and output head"),
    F(CFG_BOOL, skips, "U-Net skip connections"),
    F(CFG_BOOL, zero_init_proj, "zero-initialise output projections"),
    F(CFG_BOOL, subln, "RMSNorm (no gain) on the inputs of the output projections (BitNet SubLN)"),
    F(CFG_BOOL, emb_norm, "RMSNorm of the token embedding (x0)"),
    F(CFG_BOOL, qk_norm, "RMSNorm of q and k per head"),
};
#undef F
#undef R
const size_t kGptConfigFieldCount = sizeof kGptConfigFields / sizeof kGptConfigFields[0];

void gpt_config_defaults(GptConfig *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->arch, "gpt");
    c->vocab_size = 1024;
    c->layers = 9;
    c->dim = 512;
    c->heads = 8;
    c->kv_heads = 4;
    c->mlp_mult = 2;
    c->seq_len = 1024;
    strcpy(c->mlp_act, "relu2");
    c->softcap = 30.0;
    c->rope_base = 10000.0;
    c->embed_init_std = 0.005;
    c->qk_gain_init = 1.5;
    c->tie_embeddings = 1;
    c->skips = 1;
    c->zero_init_proj = 1;
    c->emb_norm = 1;
    c->qk_norm = 1;
}

typedef struct GptBlock {
    Tensor *c_q, *c_k, *c_v, *proj, *q_gain, *attn_scale, *mlp_scale, *resid_mix, *fc, *mlp_proj;
} GptBlock;

typedef struct Gpt {
    GptConfig c;
    Model *m;
    size_t head_dim, hidden;
    ActKind act;
    int swiglu;
    Tensor *tok_emb, *lm_head, *skip_weights;
    GptBlock *blocks;
    RopeTable rope;
} Gpt;

static const char kGptGroups[] =
    "[{\"match\":\"tok_emb.weight\",\"group\":\"embed\"},"
    "{\"match\":\"lm_head.weight\",\"group\":\"head\"},"
    "{\"match\":\"*resid_mix*\",\"group\":\"scalar\"},"
    "{\"match\":\"blocks.*\",\"ndim\":2,\"group\":\"matrix\"},"
    "{\"match\":\"*\",\"group\":\"scalar\"}]";

/* One block; x and x0 are [B, T, C]. */
static Tensor *gpt_block(Gpt *g, GptBlock *bk, Tape *tp, Tensor *x, Tensor *x0, size_t B, size_t T) {
    AttnBlockW w = {bk->c_q, bk->c_k, bk->c_v, bk->proj, bk->q_gain, bk->attn_scale, bk->mlp_scale, bk->resid_mix, bk->fc, bk->mlp_proj};
    AttnBlockCfg cfg = {.dim = g->c.dim, .heads = g->c.heads, .kv_heads = g->c.kv_heads, .head_dim = g->head_dim,
                        .eps = (float)g->c.norm_eps, .act = g->act, .swiglu = g->swiglu, .subln = g->c.subln, .rope = &g->rope,
                        .no_qk_norm = !g->c.qk_norm};
    return attn_block_forward(g->m, tp, &w, &cfg, x, x0, B, T);
}

/* Final normed hidden states [B*T, C] -> logits [B*T, V] (before the softcap). */
static Tensor *gpt_trunk(Gpt *g, Tape *tp, const int32_t *idx, size_t B, size_t T) {
    size_t C = g->c.dim, L = g->c.layers;
    float eps = (float)g->c.norm_eps;
    /* the tied table is quantized once per forward and used for both lookup and logits */
    Tensor *emb = model_weight(g->m, tp, g->tok_emb);
    Tensor *x = op_embedding(tp, emb, idx, B * T, 3, (size_t[]){B, T, C});
    if (g->c.emb_norm) x = op_rmsnorm(tp, x, NULL, eps);
    Tensor *x0 = x;
    size_t nenc = L / 2, ndec = L - nenc;
    Tensor *skips[256];
    size_t nskip = 0;
    for (size_t i = 0; i < nenc; i++) {
        x = gpt_block(g, &g->blocks[i], tp, x, x0, B, T);
        if (g->c.skips) skips[nskip++] = x;
    }
    for (size_t i = 0; i < ndec; i++) {
        if (nskip) {
            Tensor *w = tensor_view(tp, g->skip_weights, i * C, 1, &C);
            x = op_add_mul(tp, x, w, skips[--nskip]);
        }
        x = gpt_block(g, &g->blocks[nenc + i], tp, x, x0, B, T);
    }
    x = op_rmsnorm(tp, x, NULL, eps);
    x = op_reshape(tp, x, 2, (size_t[]){B * T, C});
    return model_head(g->m, tp, x, g->c.tie_embeddings ? emb : model_weight(g->m, tp, g->lm_head));
}

static Tensor *gpt_loss(Model *m, Tape *tp, const int32_t *x, const int32_t *y, size_t B, size_t T,
                        float *per_token, int training) {
    Gpt *g = m->impl;
    TERN_CHECK(T <= g->c.seq_len, "gpt: sequence length %zu exceeds model.seq_len %zu", T, g->c.seq_len);
    if (training) m->train_forwards++;
    Tensor *logits = gpt_trunk(g, tp, x, B, T);
    if (m->distill) return op_distill(tp, logits, y, (float)g->c.softcap, m->distill, per_token);
    return op_cross_entropy(tp, logits, y, (float)g->c.softcap, -1, per_token);
}

static Tensor *gpt_logits(Model *m, Tape *tp, const int32_t *x, size_t B, size_t T) {
    Gpt *g = m->impl;
    Tensor *z = gpt_trunk(g, tp, x, B, T);
    if (g->c.softcap > 0) {
        float cap = (float)g->c.softcap;
        z = op_scale(tp, op_tanh(tp, op_scale(tp, z, 1.0f / cap)), cap);
    }
    return z;
}

static void gpt_destroy(Model *m) {
    Gpt *g = m->impl;
    if (!g) return;
    rope_table_free(&g->rope);
    xfree(g->blocks);
    xfree(g);
    m->impl = NULL;
}

static const ModelOps kGptOps = {"gpt", gpt_loss, gpt_logits, gpt_destroy};

static int gpt_validate(const GptConfig *c, Err *err) {
    if (c->vocab_size < 2) return err_set(err, "config: model.vocab_size must be >= 2");
    if (c->layers < 1 || c->layers > 256) return err_set(err, "config: model.layers must be in [1, 256]");
    if (c->heads == 0 || c->dim % c->heads) return err_set(err, "config: model.dim (%zu) must be a multiple of model.heads (%zu)", c->dim, c->heads);
    if (c->kv_heads == 0 || c->heads % c->kv_heads) return err_set(err, "config: model.heads (%zu) must be a multiple of model.kv_heads (%zu)", c->heads, c->kv_heads);
    if ((c->dim / c->heads) % 2) return err_set(err, "config: head dim %zu must be even for RoPE", c->dim / c->heads);
    if (c->seq_len == 0) return err_set(err, "config: model.seq_len must be positive");
    if (strcmp(c->mlp_act, "relu2") && strcmp(c->mlp_act, "leaky_relu2") && strcmp(c->mlp_act, "swiglu"))
        return err_set(err, "config: model.mlp_act must be relu2, leaky_relu2 or swiglu, got \"%s\"", c->mlp_act);
    if (c->softcap < 0) return err_set(err, "config: model.softcap must be >= 0");
    if (!c->mlp_hidden && !c->mlp_mult) return err_set(err, "config: model.mlp_mult or model.mlp_hidden must be positive");
    return 0;
}

/* PyTorch's nn.Linear default init: U(-1/sqrt(in), 1/sqrt(in)). */
static void init_linear(Tensor *w, Rng *rng) {
    float bound = 1.0f / sqrtf((float)w->shape[1]);
    rng_fill_uniform(rng, w->data, w->numel, -bound, bound);
}

static void fill(Tensor *t, float v) {
    for (size_t i = 0; i < t->numel; i++) t->data[i] = v;
}

int gpt_create(Model **out, const cJSON *section, uint64_t seed, Err *err) {
    GptConfig c;
    gpt_config_defaults(&c);
    if (cfg_read(section, "model", kGptConfigFields, kGptConfigFieldCount, &c, err)) return -1;
    if (gpt_validate(&c, err)) return -1;
    Model *m = xcalloc(1, sizeof *m);
    Gpt *g = xcalloc(1, sizeof *g);
    m->impl = g;
    m->ops = &kGptOps;
    m->vocab = c.vocab_size;
    m->max_seq_len = c.seq_len;
    m->default_groups = kGptGroups;
    g->c = c;
    g->m = m;
    g->head_dim = c.dim / c.heads;
    g->swiglu = !strcmp(c.mlp_act, "swiglu");
    g->act = !strcmp(c.mlp_act, "leaky_relu2") ? ACT_LEAKY_RELU2 : ACT_RELU2;
    g->hidden = c.mlp_hidden ? c.mlp_hidden : c.mlp_mult * c.dim;
    size_t C = c.dim, kv = c.kv_heads * g->head_dim, Hd = g->hidden;

    ParamStore *ps = &m->ps;
    params_init(ps);
    g->tok_emb = params_add2(ps, "tok_emb.weight", 2, c.vocab_size, C);
    size_t nskip = c.skips ? TERN_MIN(c.layers / 2, c.layers - c.layers / 2) : 0;
    if (nskip) g->skip_weights = params_add2(ps, "skip_weights", 2, nskip, C);
    g->blocks = xcalloc(c.layers, sizeof(GptBlock));
    char name[128];
    for (size_t i = 0; i < c.layers; i++) {
        GptBlock *b = &g->blocks[i];
#define P(field, nm, nd, a, bb)                                  \
    snprintf(name, sizeof name, "blocks.%zu.%s", i, nm);         \
    b->field = params_add2(ps, name, nd, a, bb)
        P(c_q, "attn.c_q.weight", 2, C, C);
        P(c_k, "attn.c_k.weight", 2, kv, C);
        P(c_v, "attn.c_v.weight", 2, kv, C);
        P(proj, "attn.proj.weight", 2, C, C);
        P(q_gain, "attn.q_gain", 1, c.heads, 0);
        P(attn_scale, "attn_scale", 1, C, 0);
        P(mlp_scale, "mlp_scale", 1, C, 0);
        P(resid_mix, "resid_mix", 2, 2, C);
        P(fc, "mlp.fc.weight", 2, g->swiglu ? 2 * Hd : Hd, C);
        P(mlp_proj, "mlp.proj.weight", 2, C, Hd);
#undef P
    }
    if (!c.tie_embeddings) g->lm_head = params_add2(ps, "lm_head.weight", 2, c.vocab_size, C);
    params_finalize(ps);

    Rng rng;
    rng_seed(&rng, seed);
    rng_fill_normal(&rng, g->tok_emb->data, g->tok_emb->numel, 0.0f, (float)c.embed_init_std);
    if (g->skip_weights) fill(g->skip_weights, 1.0f);
    for (size_t i = 0; i < c.layers; i++) {
        GptBlock *b = &g->blocks[i];
        init_linear(b->c_q, &rng);
        init_linear(b->c_k, &rng);
        init_linear(b->c_v, &rng);
        if (c.zero_init_proj) fill(b->proj, 0.0f);
        else init_linear(b->proj, &rng);
        fill(b->q_gain, (float)c.qk_gain_init);
        fill(b->attn_scale, 1.0f);
        fill(b->mlp_scale, 1.0f);
        for (size_t j = 0; j < C; j++) {
            b->resid_mix->data[j] = 1.0f;
            b->resid_mix->data[C + j] = 0.0f;
        }
        init_linear(b->fc, &rng);
        if (c.zero_init_proj) fill(b->mlp_proj, 0.0f);
        else init_linear(b->mlp_proj, &rng);
    }
    if (g->lm_head) {
        if (c.zero_init_proj) fill(g->lm_head, 0.0f);
        else init_linear(g->lm_head, &rng);
    }
    if (rope_table_init(&g->rope, c.seq_len, g->head_dim, (float)c.rope_base)) {
        model_free(m);
        return err_set(err, "config: cannot build the RoPE table");
    }
    m->config = cJSON_CreateObject();
    cfg_write(m->config, kGptConfigFields, kGptConfigFieldCount, &c);
    *out = m;
    return 0;
}
