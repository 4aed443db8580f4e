/* Llama-2 (Touvron et al., arXiv 2307.09288), as karpathy's llama2.c / llama.cpp run it: token
 * embedding; per block x += Wo attn(rmsnorm(x) g_attn) with RoPE and grouped-query heads, then
 * x += W2 (silu(W1 h) * W3 h), h = rmsnorm(x) g_ffn; final rmsnorm with gain; logits = x Wout^T
 * (Wout tied to the embedding or its own). No biases, no softcap.
 *
 * RoPE: Meta's layout rotates adjacent pairs (x_2i, x_2i+1) by +t theta_i; tern's attention op
 * rotates (x_i, x_i+D/2) by -t theta_i. The two agree once the rows of Wq and Wk are permuted
 * within each head (even rows first, then the odd rows negated): `tern import` does that (see
 * train/cmd_import.c), and since q and k are transformed alike the scores are unchanged.
 * Checkpoints therefore hold the transformed matrices. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/ops.h"
#include "model/model.h"
#include "model/lora.h"
#include "model/qat.h"

typedef struct LlamaConfig {
    char arch[CFG_STR_MAX];
    size_t vocab_size, layers, dim, heads, kv_heads, hidden, seq_len;
    double norm_eps, rope_base, init_std;
    int tie_embeddings;
} LlamaConfig;

#define F(type, m, h) CFG_F(type, LlamaConfig, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, LlamaConfig, m, lo, hi, h)
static const CfgField kLlamaFields[] = {
    F(CFG_STRING, arch, "architecture: llama"),
    R(CFG_SIZE, vocab_size, 2, MODEL_MAX_VOCAB, "vocabulary size"),
    R(CFG_SIZE, layers, 1, 1024, "number of blocks"),
    R(CFG_SIZE, dim, 1, MODEL_MAX_DIM, "model width"),
    R(CFG_SIZE, heads, 1, MODEL_MAX_HEADS, "query heads"),
    R(CFG_SIZE, kv_heads, 1, MODEL_MAX_HEADS, "key/value heads (GQA)"),
    R(CFG_SIZE, hidden, 1, MODEL_MAX_HIDDEN, "SwiGLU hidden size"),
    R(CFG_SIZE, seq_len, 1, MODEL_MAX_SEQ, "longest sequence (RoPE table)"),
    R(CFG_FLOAT, norm_eps, 1e-30, 1, "RMSNorm eps"),
    R(CFG_FLOAT, rope_base, 1, 1e12, "RoPE base"),
    R(CFG_FLOAT, init_std, 0, 1e3, "init std of every matrix (fresh models)"),
    F(CFG_BOOL, tie_embeddings, "output head tied to the embedding"),
};
#undef F
#undef R

typedef struct LlamaBlock {
    Tensor *attn_norm, *wq, *wk, *wv, *wo, *ffn_norm, *w1, *w2, *w3;
} LlamaBlock;

typedef struct Llama {
    LlamaConfig c;
    Model *m;
    size_t head_dim;
    Tensor *tok_emb, *norm, *out;
    LlamaBlock *blocks;
    RopeTable rope;
} Llama;

static const char kLlamaGroups[] =
    "[{\"match\":\"tok_emb.weight\",\"group\":\"embed\"},"
    "{\"match\":\"output.weight\",\"group\":\"embed\"},"
    "{\"match\":\"blocks.*\",\"ndim\":2,\"group\":\"matrix\"},"
    "{\"match\":\"*\",\"group\":\"scalar\"}]";

/* [B*T, V] logits */
static Tensor *llama_forward(Llama *g, Tape *tp, const int32_t *idx, size_t B, size_t T) {
    Model *m = g->m;
    size_t C = g->c.dim, H = g->c.heads, G = g->c.kv_heads, D = g->head_dim;
    float eps = (float)g->c.norm_eps;
    TERN_CHECK(T <= g->c.seq_len, "llama: sequence length %zu exceeds model.seq_len %zu", T, g->c.seq_len);
    Tensor *emb = model_weight(m, tp, g->tok_emb);
    Tensor *x = op_embedding(tp, emb, idx, B * T, 3, (size_t[]){B, T, C});
    for (size_t i = 0; i < g->c.layers; i++) {
        LlamaBlock *b = &g->blocks[i];
        Tensor *h = op_rmsnorm(tp, x, b->attn_norm, eps);
        Tensor *q = op_reshape(tp, model_linear(m, tp, h, b->wq, NULL), 4, (size_t[]){B, T, H, D});
        Tensor *k = op_reshape(tp, model_linear(m, tp, h, b->wk, NULL), 4, (size_t[]){B, T, G, D});
        Tensor *v = op_reshape(tp, model_linear(m, tp, h, b->wv, NULL), 4, (size_t[]){B, T, G, D});
        Tensor *y = op_reshape(tp, op_attention(tp, q, k, v, NULL, &g->rope, 0.0f), 3, (size_t[]){B, T, C});
        x = op_add(tp, x, model_linear(m, tp, y, b->wo, NULL));
        h = op_rmsnorm(tp, x, b->ffn_norm, eps);
        Tensor *u = op_mul(tp, op_act(tp, model_linear(m, tp, h, b->w1, NULL), ACT_SILU), model_linear(m, tp, h, b->w3, NULL));
        x = op_add(tp, x, model_linear(m, tp, u, b->w2, NULL));
    }
    x = op_rmsnorm(tp, x, g->norm, eps);
    x = op_reshape(tp, x, 2, (size_t[]){B * T, C});
    return model_head(m, tp, x, g->c.tie_embeddings ? emb : model_weight(m, tp, g->out));
}

static Tensor *llama_loss(Model *m, Tape *tp, const int32_t *x, const int32_t *y, size_t B, size_t T, float *per_token,
                          int training) {
    if (training) m->train_forwards++;
    Tensor *logits = llama_forward(m->impl, tp, x, B, T);
    if (m->distill) return op_distill(tp, logits, y, 0.0f, m->distill, per_token);
    return op_cross_entropy(tp, logits, y, 0.0f, -1, per_token);
}

static Tensor *llama_logits(Model *m, Tape *tp, const int32_t *x, size_t B, size_t T) { return llama_forward(m->impl, tp, x, B, T); }

static void llama_destroy(Model *m) {
    Llama *g = m->impl;
    if (!g) return;
    rope_table_free(&g->rope);
    xfree(g->blocks);
    xfree(g);
    m->impl = NULL;
}

static const ModelOps kLlamaOps = {"llama", llama_loss, llama_logits, llama_destroy};

int llama_create(Model **out, const cJSON *section, uint64_t seed, Err *err) {
    LlamaConfig c;
    memset(&c, 0, sizeof c);
    strcpy(c.arch, "llama");
    c.vocab_size = 512, c.layers = 5, c.dim = 64, c.heads = 8, c.kv_heads = 4, c.hidden = 172, c.seq_len = 512;
    c.norm_eps = 1e-5, c.rope_base = 10000.0, c.init_std = 0.02, c.tie_embeddings = 1;
    if (cfg_read(section, "model", kLlamaFields, sizeof kLlamaFields / sizeof kLlamaFields[0], &c, err)) return -1;
    if (c.vocab_size < 2 || c.layers < 1 || c.dim == 0 || c.hidden == 0 || c.seq_len == 0)
        return err_set(err, "config: model.vocab_size, layers, dim, hidden and seq_len must be positive");
    if (c.heads == 0 || c.dim % c.heads || (c.dim / c.heads) % 2)
        return err_set(err, "config: model.dim (%zu) must be a multiple of model.heads (%zu) with an even head dim", c.dim, c.heads);
    if (c.kv_heads == 0 || c.heads % c.kv_heads)
        return err_set(err, "config: model.heads (%zu) must be a multiple of model.kv_heads (%zu)", c.heads, c.kv_heads);
    if (!(c.norm_eps > 0)) return err_set(err, "config: model.norm_eps must be > 0");
    Model *m = xcalloc(1, sizeof *m);
    Llama *g = xcalloc(1, sizeof *g);
    m->impl = g;
    m->ops = &kLlamaOps;
    m->vocab = c.vocab_size;
    m->max_seq_len = c.seq_len;
    m->default_groups = kLlamaGroups;
    g->c = c;
    g->m = m;
    g->head_dim = c.dim / c.heads;
    size_t C = c.dim, kv = c.kv_heads * g->head_dim;
    ParamStore *ps = &m->ps;
    params_init(ps);
    g->tok_emb = params_add2(ps, "tok_emb.weight", 2, c.vocab_size, C);
    g->blocks = xcalloc(c.layers, sizeof(LlamaBlock));
    char name[128];
    for (size_t i = 0; i < c.layers; i++) {
        LlamaBlock *b = &g->blocks[i];
#define P(field, nm, nd, a, bb)                          \
    snprintf(name, sizeof name, "blocks.%zu.%s", i, nm); \
    b->field = params_add2(ps, name, nd, a, bb)
        P(attn_norm, "attn_norm.weight", 1, C, 0);
        P(wq, "attn.wq.weight", 2, C, C);
        P(wk, "attn.wk.weight", 2, kv, C);
        P(wv, "attn.wv.weight", 2, kv, C);
        P(wo, "attn.wo.weight", 2, C, C);
        P(ffn_norm, "ffn_norm.weight", 1, C, 0);
        P(w1, "ffn.w1.weight", 2, c.hidden, C);
        P(w2, "ffn.w2.weight", 2, C, c.hidden);
        P(w3, "ffn.w3.weight", 2, c.hidden, C);
#undef P
    }
    g->norm = params_add2(ps, "norm.weight", 1, C, 0);
    if (!c.tie_embeddings) g->out = params_add2(ps, "output.weight", 2, c.vocab_size, C);
    params_finalize(ps);
    Rng rng;
    rng_seed(&rng, seed);
    for (size_t p = 0; p < ps->n; p++) {
        Tensor *t = ps->t[p];
        if (t->ndim == 1) {
            for (size_t j = 0; j < t->numel; j++) t->data[j] = 1.0f; /* norm gains */
        } else {
            rng_fill_normal(&rng, t->data, t->numel, 0.0f, (float)c.init_std);
        }
    }
    if (rope_table_init(&g->rope, c.seq_len, g->head_dim, (float)c.rope_base)) {
        model_free(m);
        return err_set(err, "config: cannot build the RoPE table");
    }
    m->config = cJSON_CreateObject();
    cfg_write(m->config, kLlamaFields, sizeof kLlamaFields / sizeof kLlamaFields[0], &c);
    *out = m;
    return 0;
}

/* The same function as a GPT of model/gpt.c, for the artifact format and the runtime: no
 * embedding or q/k norm, identity residual mixing, q gains and scales 1, no skips, no softcap,
 * SwiGLU with fc = [W1; W3]; the RMSNorm gains are folded into the weights that read the normed
 * activations (rmsnorm(x) * g then W  ==  rmsnorm(x) then W diag(g)), so the head becomes
 * Wout diag(g_final) and is stored untied. Exact in real arithmetic; in float32 the products
 * differ by rounding only. */
int llama_to_gpt(const Model *lm, Model **out, Err *err) {
    const Llama *g = lm->impl;
    const LlamaConfig *c = &g->c;
    *out = NULL;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "arch", "gpt");
    cJSON_AddNumberToObject(s, "vocab_size", (double)c->vocab_size);
    cJSON_AddNumberToObject(s, "layers", (double)c->layers);
    cJSON_AddNumberToObject(s, "dim", (double)c->dim);
    cJSON_AddNumberToObject(s, "heads", (double)c->heads);
    cJSON_AddNumberToObject(s, "kv_heads", (double)c->kv_heads);
    cJSON_AddNumberToObject(s, "mlp_hidden", (double)c->hidden);
    cJSON_AddNumberToObject(s, "seq_len", (double)c->seq_len);
    cJSON_AddStringToObject(s, "mlp_act", "swiglu");
    cJSON_AddNumberToObject(s, "softcap", 0);
    cJSON_AddNumberToObject(s, "rope_base", c->rope_base);
    cJSON_AddNumberToObject(s, "norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(s, "qk_gain_init", 1);
    cJSON_AddBoolToObject(s, "tie_embeddings", 0);
    cJSON_AddBoolToObject(s, "skips", 0);
    cJSON_AddBoolToObject(s, "emb_norm", 0);
    cJSON_AddBoolToObject(s, "qk_norm", 0);
    Model *m = NULL;
    int rc = model_create(&m, s, 0, err);
    cJSON_Delete(s);
    if (rc) return -1;
    size_t C = c->dim, Hd = c->hidden;
    /* dst[r, :] = src[r, :] * gain (gain may be NULL) */
    #define COPY_SCALED(dst, src, rows, gain)                                        \
        for (size_t r_ = 0; r_ < (rows); r_++)                                      \
            for (size_t c_ = 0; c_ < C; c_++)                                        \
                (dst)[r_ * C + c_] = (src)[r_ * C + c_] * ((gain) ? (gain)[c_] : 1.0f)
    char name[128];
    Tensor *t;
    memcpy(params_find(&m->ps, "tok_emb.weight")->data, g->tok_emb->data, g->tok_emb->numel * sizeof(float));
    const Tensor *head = c->tie_embeddings ? g->tok_emb : g->out;
    t = params_find(&m->ps, "lm_head.weight");
    COPY_SCALED(t->data, head->data, c->vocab_size, g->norm->data);
    for (size_t i = 0; i < c->layers; i++) {
        const LlamaBlock *b = &g->blocks[i];
        const float *ga = b->attn_norm->data, *gf = b->ffn_norm->data;
#define DST(nm) (snprintf(name, sizeof name, "blocks.%zu.%s", i, nm), params_find(&m->ps, name))
        t = DST("attn.c_q.weight");
        COPY_SCALED(t->data, b->wq->data, b->wq->shape[0], ga);
        t = DST("attn.c_k.weight");
        COPY_SCALED(t->data, b->wk->data, b->wk->shape[0], ga);
        t = DST("attn.c_v.weight");
        COPY_SCALED(t->data, b->wv->data, b->wv->shape[0], ga);
        memcpy(DST("attn.proj.weight")->data, b->wo->data, b->wo->numel * sizeof(float));
        t = DST("mlp.fc.weight");
        COPY_SCALED(t->data, b->w1->data, Hd, gf);
        COPY_SCALED(t->data + Hd * C, b->w3->data, Hd, gf);
        memcpy(DST("mlp.proj.weight")->data, b->w2->data, b->w2->numel * sizeof(float));
        Tensor *v;
        v = DST("attn.q_gain");
        for (size_t j = 0; j < v->numel; j++) v->data[j] = 1.0f;
        v = DST("attn_scale");
        for (size_t j = 0; j < v->numel; j++) v->data[j] = 1.0f;
        v = DST("mlp_scale");
        for (size_t j = 0; j < v->numel; j++) v->data[j] = 1.0f;
        v = DST("resid_mix");
        for (size_t j = 0; j < C; j++) v->data[j] = 1.0f, v->data[C + j] = 0.0f;
#undef DST
    }
#undef COPY_SCALED
    *out = m;
    return 0;
}
