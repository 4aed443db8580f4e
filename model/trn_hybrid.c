/* The TRN hybrid backbone (openai/parameter-golf PR #669, HybridGPT with MODEL_TYPE=hybrid,
 * ATTN_POSITIONS=2,5,8, USE_TOKEN_SHIFT=1, BIGRAM_VOCAB_SIZE=10240): layout, blocks, init,
 * default optimizer groups. model/trn.h describes the forward. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"
#include "model/trn.h"
#include "model/blocks.h"
#include "model/lora.h"
#include "model/qat.h"

#define F(type, m, h) CFG_F(type, TrnHybridConfig, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, TrnHybridConfig, m, lo, hi, h)
const CfgField kTrnHybridConfigFields[] = {
    F(CFG_STRING, arch, "architecture: trn_hybrid"),
    F(CFG_STRING, layout, "block layout, one letter per block: T = TRN, A = attention (e.g. TTATTATTAT)"),
    R(CFG_SIZE, vocab_size, 2, MODEL_MAX_VOCAB, "vocabulary size"),
    R(CFG_SIZE, dim, 1, MODEL_MAX_DIM, "model width"),
    R(CFG_SIZE, heads, 0, MODEL_MAX_HEADS, "attention blocks: query heads"),
    R(CFG_SIZE, kv_heads, 0, MODEL_MAX_HEADS, "attention blocks: key/value heads (GQA)"),
    R(CFG_SIZE, mlp_mult, 0, 64, "attention MLP hidden = mlp_mult * dim (unless mlp_hidden); SwiGLU sizing"),
    R(CFG_SIZE, mlp_hidden, 0, MODEL_MAX_HIDDEN, "attention blocks: explicit MLP hidden (0 = mlp_mult * dim)"),
    R(CFG_SIZE, swiglu_hidden, 0, MODEL_MAX_HIDDEN, "TRN blocks: SwiGLU hidden (0 = round_up(2/3 * mlp_mult * dim, 256))"),
    R(CFG_SIZE, seq_len, 1, MODEL_MAX_SEQ, "longest sequence (RoPE table; t = position in the window)"),
    F(CFG_STRING, mlp_act, "attention blocks' MLP: leaky_relu2 | relu2"),
    R(CFG_SIZE, oscillators, 1, MODEL_MAX_DIM, "TRN oscillators per layer (K)"),
    F(CFG_STRING, scan, "TRN recurrence kernel: sequential | kogge_stone | chunked | auto"),
    R(CFG_FLOAT, amp_max, 1e-30, 1e30, "TRN amplitude clamp: A = min(softplus(a), amp_max)"),
    R(CFG_FLOAT, res_scale_init, -1e3, 1e3, "TRN res_scale init"),
    R(CFG_FLOAT, pcg_lambda_init, -1e3, 1e3, "TRN phase-gate lambda init"),
    R(CFG_FLOAT, gate_bias_init, 0, 1, "TRN output gate: bias = logit(gate_bias_init)"),
    R(CFG_FLOAT, erase_bias_init, -1e3, 1e3, "TRN erase strength bias init"),
    R(CFG_FLOAT, proj_init_std, 0, 1e3, "TRN oscillator projection init std (0 = dim^-1/2)"),
    R(CFG_FLOAT, w_res_init_std, 0, 1e3, "TRN W_res init std"),
    R(CFG_FLOAT, w_phase_init_std, 0, 1e3, "TRN W_phase init std"),
    R(CFG_SIZE, omega_init_len, 0, MODEL_MAX_SEQ, "L of the omega_base init 2 pi / L .. pi (0 = seq_len)"),
    R(CFG_SIZE, res_warmup, 0, 1e15, "training forwards of the TRN readout smoothstep warm-up (0 = off)"),
    F(CFG_BOOL, token_shift, "TRN blocks: token shift before the TRN layer"),
    R(CFG_SIZE, bigram_rows, 0, 2147483647, "BigramHash buckets (0 = no BigramHash)"),
    R(CFG_SIZE, bigram_dim, 0, MODEL_MAX_DIM, "BigramHash table width"),
    R(CFG_FLOAT, bigram_scale_init, -1e3, 1e3, "BigramHash output scale init"),
    R(CFG_FLOAT, bigram_table_init_std, 0, 1e3, "BigramHash table init std"),
    R(CFG_FLOAT, bigram_proj_init_std, 0, 1e3, "BigramHash projection init std (0 = bigram_dim^-1/2)"),
    R(CFG_FLOAT, softcap, 0, 1e6, "logit softcap (0 = off)"),
    R(CFG_FLOAT, rope_base, 1, 1e12, "RoPE base"),
    R(CFG_FLOAT, embed_init_std, 0, 1e3, "embedding init std"),
    R(CFG_FLOAT, qk_gain_init, 0, 1e3, "initial per-head q gain"),
    R(CFG_FLOAT, norm_eps, 0, 1, "RMSNorm eps (0 = float32 machine eps, as torch)"),
    F(CFG_BOOL, tie_embeddings, "tie input embedding and output head"),
    F(CFG_BOOL, skips, "U-Net skip connections"),
    F(CFG_BOOL, zero_init_proj, "attention blocks: zero-initialise output projections"),
};
#undef F
#undef R
const size_t kTrnHybridConfigFieldCount = sizeof kTrnHybridConfigFields / sizeof kTrnHybridConfigFields[0];

void trn_hybrid_config_defaults(TrnHybridConfig *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->arch, "trn_hybrid");
    strcpy(c->layout, "TTATTATTAT");
    c->vocab_size = 1024;
    c->dim = 512;
    c->heads = 8;
    c->kv_heads = 4;
    c->mlp_mult = 2;
    c->seq_len = 1024;
    strcpy(c->mlp_act, "leaky_relu2");
    c->oscillators = 256;
    strcpy(c->scan, "auto");
    c->amp_max = 3.0;
    c->res_scale_init = 0.05;
    c->pcg_lambda_init = 0.5;
    c->gate_bias_init = 0.65;
    c->erase_bias_init = -2.0;
    c->w_res_init_std = 2e-3;
    c->w_phase_init_std = 1e-3;
    c->res_warmup = 2000;
    c->token_shift = 1;
    c->bigram_rows = 10240;
    c->bigram_dim = 128;
    c->bigram_scale_init = 0.05;
    /* PR #669 zero-initialises both the table and its projection: their gradients are then
     * both exactly zero and the feature never trains (backbones.md §5.5). Both non-zero here:
     * the table at 0.02 and the projection at bigram_dim^-1/2 give the bigram term about 0.05 *
     * 0.02 = 1e-3 per coordinate at init, a fifth of the token embedding's 0.005. */
    c->bigram_table_init_std = 0.02;
    c->softcap = 30.0;
    c->rope_base = 10000.0;
    c->embed_init_std = 0.005;
    c->qk_gain_init = 1.5;
    c->tie_embeddings = 1;
    c->skips = 1;
    c->zero_init_proj = 1;
}

typedef struct HyBlock {
    int attn;
    Tensor *attn_scale, *mlp_scale, *resid_mix;
    Tensor *c_q, *c_k, *c_v, *proj, *q_gain, *fc, *mlp_proj; /* attention block */
    Tensor *mu, *gate_up, *down;                             /* TRN block */
    TrnLayer trn;
} HyBlock;

typedef struct Hybrid {
    TrnHybridConfig c;
    size_t L, head_dim, hidden, swiglu_hidden;
    ActKind act;
    ScanKind scan;
    Tensor *tok_emb, *lm_head, *skip_weights, *bg_embed, *bg_proj, *bg_scale;
    HyBlock *blocks;
    RopeTable rope;
} Hybrid;

/* Muon for every 2-D block matrix (attention, MLP, SwiGLU, TRN proj / W_res / W_phase) and the
 * BigramHash projection; Adam 0.05 for both embedding tables; Adam 0.04 for the rest (vectors,
 * scalars, resid_mix, skip weights) -- PR #669's optimizer split. */
static const char kTrnHybridGroups[] =
    "[{\"match\":\"tok_emb.weight\",\"group\":\"embed\"},"
    "{\"match\":\"bigram.embed.weight\",\"group\":\"embed\"},"
    "{\"match\":\"bigram.proj.weight\",\"group\":\"matrix\"},"
    "{\"match\":\"lm_head.weight\",\"group\":\"head\"},"
    "{\"match\":\"*resid_mix*\",\"group\":\"scalar\"},"
    "{\"match\":\"blocks.*\",\"ndim\":2,\"group\":\"matrix\"},"
    "{\"match\":\"*\",\"group\":\"scalar\"}]";

/* The baseline attention block (model/blocks.c), with this backbone's sizes. */
static Tensor *attn_block(Model *m, Hybrid *g, HyBlock *bk, Tape *tp, Tensor *x, Tensor *x0, size_t B, size_t T) {
    AttnBlockW w = {bk->c_q, bk->c_k, bk->c_v, bk->proj, bk->q_gain, bk->attn_scale, bk->mlp_scale, bk->resid_mix, bk->fc, bk->mlp_proj};
    AttnBlockCfg cfg = {.dim = g->c.dim, .heads = g->c.heads, .kv_heads = g->c.kv_heads, .head_dim = g->head_dim,
                        .eps = (float)g->c.norm_eps, .act = g->act, .rope = &g->rope};
    return attn_block_forward(m, tp, &w, &cfg, x, x0, B, T);
}

static Tensor *trn_block(Model *mm, Hybrid *g, HyBlock *bk, Tape *tp, Tensor *x, Tensor *x0, const TrnCoreCfg *cc,
                         float warm) {
    size_t C = g->c.dim;
    float eps = (float)g->c.norm_eps;
    Tensor *m0 = tensor_view(tp, bk->resid_mix, 0, 1, &C);
    Tensor *m1 = tensor_view(tp, bk->resid_mix, C, 1, &C);
    x = op_mix(tp, x, m0, x0, m1);
    Tensor *h = op_rmsnorm(tp, x, NULL, eps);
    if (bk->mu) h = op_token_shift(tp, h, op_sigmoid(tp, bk->mu));
    x = op_add_mul(tp, x, bk->attn_scale, trn_layer_forward(mm, &bk->trn, tp, h, cc, warm));
    Tensor *m = op_swiglu(tp, model_linear(mm, tp, op_rmsnorm(tp, x, NULL, eps), bk->gate_up, NULL));
    return op_add_mul(tp, x, bk->mlp_scale, model_linear(mm, tp, m, bk->down, NULL));
}

/* Logits [B*T, V] before the softcap. */
static Tensor *hybrid_trunk(Model *m, Tape *tp, const int32_t *idx, size_t B, size_t T, int training) {
    Hybrid *g = m->impl;
    size_t C = g->c.dim, L = g->L;
    TERN_CHECK(T <= g->c.seq_len, "trn_hybrid: sequence length %zu exceeds model.seq_len %zu", T, g->c.seq_len);
    float eps = (float)g->c.norm_eps;
    TrnCoreCfg cc = {.scan = g->scan, .amp_max = (float)g->c.amp_max};
    float warm = training ? trn_warmup_factor(m->train_forwards, g->c.res_warmup) : 1.0f;
    /* quantized once per forward (QAT) and shared by the lookup and the tied head */
    Tensor *emb = model_weight(m, tp, g->tok_emb);
    Tensor *x = op_embedding(tp, emb, idx, B * T, 3, (size_t[]){B, T, C});
    if (g->bg_embed)
        x = op_add(tp, x, op_bigram_hash(tp, model_weight(m, tp, g->bg_embed), model_weight(m, tp, g->bg_proj), g->bg_scale, idx, B, T));
    x = op_rmsnorm(tp, x, NULL, eps);
    Tensor *x0 = x;
    size_t nenc = L / 2, ndec = L - nenc;
    Tensor *skips[256];
    size_t nskip = 0;
    for (size_t i = 0; i < L; i++) {
        if (i >= nenc && nskip) {
            Tensor *w = tensor_view(tp, g->skip_weights, (i - nenc) * C, 1, &C);
            x = op_add_mul(tp, x, w, skips[--nskip]);
        }
        HyBlock *bk = &g->blocks[i];
        x = bk->attn ? attn_block(m, g, bk, tp, x, x0, B, T) : trn_block(m, g, bk, tp, x, x0, &cc, warm);
        if (i < nenc && g->c.skips) skips[nskip++] = x;
    }
    (void)ndec;
    x = op_rmsnorm(tp, x, NULL, eps);
    x = op_reshape(tp, x, 2, (size_t[]){B * T, C});
    return model_head(m, tp, x, g->c.tie_embeddings ? emb : model_weight(m, tp, g->lm_head));
}

static Tensor *hybrid_loss(Model *m, Tape *tp, const int32_t *x, const int32_t *y, size_t B, size_t T,
                           float *per_token, int training) {
    Hybrid *g = m->impl;
    /* Once per training micro-batch, before w is computed (the PR increments each layer's own
     * counter first, then uses it; one model-wide counter is the same as long as every TRN layer
     * runs once per forward, i.e. without the PR's optional depth recurrence). */
    if (training) m->train_forwards++;
    Tensor *logits = hybrid_trunk(m, tp, x, B, T, training);
    if (m->distill) return op_distill(tp, logits, y, (float)g->c.softcap, m->distill, per_token);
    return op_cross_entropy(tp, logits, y, (float)g->c.softcap, -1, per_token);
}

static Tensor *hybrid_logits(Model *m, Tape *tp, const int32_t *x, size_t B, size_t T) {
    Hybrid *g = m->impl;
    Tensor *z = hybrid_trunk(m, tp, x, B, T, 0);
    if (g->c.softcap > 0) {
        float cap = (float)g->c.softcap;
        z = op_scale(tp, op_tanh(tp, op_scale(tp, z, 1.0f / cap)), cap);
    }
    return z;
}

static void hybrid_destroy(Model *m) {
    Hybrid *g = m->impl;
    if (!g) return;
    rope_table_free(&g->rope);
    xfree(g->blocks);
    xfree(g);
    m->impl = NULL;
}

static const ModelOps kHybridOps = {"trn_hybrid", hybrid_loss, hybrid_logits, hybrid_destroy};

static int validate(TrnHybridConfig *c, Err *err) {
    size_t L = strlen(c->layout);
    if (L < 1 || L > 256) return err_set(err, "config: model.layout must have 1..256 letters, got \"%s\"", c->layout);
    int any_attn = 0;
    for (size_t i = 0; i < L; i++) {
        if (c->layout[i] != 'T' && c->layout[i] != 'A')
            return err_set(err, "config: model.layout may only hold T (TRN) and A (attention), got \"%s\"", c->layout);
        any_attn |= c->layout[i] == 'A';
    }
    if (c->vocab_size < 2) return err_set(err, "config: model.vocab_size must be >= 2");
    if (c->dim == 0) return err_set(err, "config: model.dim must be positive");
    if (any_attn) {
        if (c->heads == 0 || c->dim % c->heads)
            return err_set(err, "config: model.dim (%zu) must be a multiple of model.heads (%zu)", c->dim, c->heads);
        if (c->kv_heads == 0 || c->heads % c->kv_heads)
            return err_set(err, "config: model.heads (%zu) must be a multiple of model.kv_heads (%zu)", c->heads, c->kv_heads);
        if ((c->dim / c->heads) % 2) return err_set(err, "config: head dim %zu must be even for RoPE", c->dim / c->heads);
    }
    if (c->seq_len == 0) return err_set(err, "config: model.seq_len must be positive");
    if (strcmp(c->mlp_act, "leaky_relu2") && strcmp(c->mlp_act, "relu2"))
        return err_set(err, "config: model.mlp_act must be leaky_relu2 or relu2, got \"%s\"", c->mlp_act);
    if (c->oscillators == 0) return err_set(err, "config: model.oscillators must be positive");
    if (scan_kind_from_name(c->scan) < 0)
        return err_set(err, "config: model.scan must be sequential, kogge_stone, chunked or auto, got \"%s\"", c->scan);
    if (!(c->amp_max > 0)) return err_set(err, "config: model.amp_max must be positive");
    if (!(c->gate_bias_init > 0 && c->gate_bias_init < 1)) return err_set(err, "config: model.gate_bias_init must be in (0, 1)");
    if (c->softcap < 0) return err_set(err, "config: model.softcap must be >= 0");
    if (c->bigram_rows == 1) return err_set(err, "config: model.bigram_rows must be 0 (off) or >= 2");
    if (c->bigram_rows > 0x7fffffff) return err_set(err, "config: model.bigram_rows too large");
    if (c->bigram_rows && c->bigram_dim == 0) return err_set(err, "config: model.bigram_dim must be positive");
    if (c->mlp_mult == 0 && (c->mlp_hidden == 0 || c->swiglu_hidden == 0))
        return err_set(err, "config: model.mlp_mult must be positive unless mlp_hidden and swiglu_hidden are set");
    return 0;
}

/* torch.nn.Linear's default init U(-1/sqrt(in), 1/sqrt(in)), as the baseline's CastedLinear. */
static void init_uniform(Tensor *w, Rng *rng) {
    float bound = 1.0f / sqrtf((float)w->shape[1]);
    rng_fill_uniform(rng, w->data, w->numel, -bound, bound);
}

static void fill(Tensor *t, float v) {
    for (size_t i = 0; i < t->numel; i++) t->data[i] = v;
}

static Tensor *add_param(ParamStore *ps, int ndim, size_t a, size_t b, const char *fmt, size_t i, const char *nm) {
    char name[160];
    snprintf(name, sizeof name, fmt, i, nm);
    return params_add2(ps, name, ndim, a, b);
}

int trn_hybrid_create(Model **out, const cJSON *section, uint64_t seed, Err *err) {
    TrnHybridConfig c;
    trn_hybrid_config_defaults(&c);
    if (cfg_read(section, "model", kTrnHybridConfigFields, kTrnHybridConfigFieldCount, &c, err)) return -1;
    if (validate(&c, err)) return -1;
    /* resolve the derived sizes, so the saved config states them */
    if (!c.mlp_hidden) c.mlp_hidden = c.mlp_mult * c.dim;
    if (!c.swiglu_hidden) c.swiglu_hidden = ((size_t)(2.0 / 3.0 * (double)(c.mlp_mult * c.dim)) + 255) / 256 * 256;
    if (!c.omega_init_len) c.omega_init_len = c.seq_len;
    if (c.bigram_rows && c.bigram_proj_init_std <= 0) c.bigram_proj_init_std = 1.0 / sqrt((double)c.bigram_dim);

    Model *m = xcalloc(1, sizeof *m);
    Hybrid *g = xcalloc(1, sizeof *g);
    m->impl = g;
    m->ops = &kHybridOps;
    m->vocab = c.vocab_size;
    m->max_seq_len = c.seq_len;
    m->default_groups = kTrnHybridGroups;
    g->c = c;
    g->L = strlen(c.layout);
    g->head_dim = c.heads ? c.dim / c.heads : 0;
    g->hidden = c.mlp_hidden;
    g->swiglu_hidden = c.swiglu_hidden;
    g->act = !strcmp(c.mlp_act, "relu2") ? ACT_RELU2 : ACT_LEAKY_RELU2;
    g->scan = (ScanKind)scan_kind_from_name(c.scan);
    size_t C = c.dim, K = c.oscillators, Hs = g->swiglu_hidden, L = g->L;
    size_t kv = c.kv_heads * g->head_dim;

    ParamStore *ps = &m->ps;
    params_init(ps);
    g->tok_emb = params_add(ps, "tok_emb.weight", 2, (size_t[]){c.vocab_size, C});
    if (c.bigram_rows) {
        g->bg_embed = params_add(ps, "bigram.embed.weight", 2, (size_t[]){c.bigram_rows, c.bigram_dim});
        g->bg_proj = params_add(ps, "bigram.proj.weight", 2, (size_t[]){C, c.bigram_dim});
        g->bg_scale = params_add(ps, "bigram.scale", 1, (size_t[]){1});
    }
    size_t nskip = c.skips ? TERN_MIN(L / 2, L - L / 2) : 0;
    if (nskip) g->skip_weights = params_add(ps, "skip_weights", 2, (size_t[]){nskip, C});
    g->blocks = xcalloc(L, sizeof(HyBlock));
    const char *fmt = "blocks.%zu.%s";
    for (size_t i = 0; i < L; i++) {
        HyBlock *b = &g->blocks[i];
        b->attn = c.layout[i] == 'A';
        b->attn_scale = add_param(ps, 1, C, 0, fmt, i, "attn_scale");
        b->mlp_scale = add_param(ps, 1, C, 0, fmt, i, "mlp_scale");
        b->resid_mix = add_param(ps, 2, 2, C, fmt, i, "resid_mix");
        if (b->attn) {
            b->c_q = add_param(ps, 2, C, C, fmt, i, "attn.c_q.weight");
            b->c_k = add_param(ps, 2, kv, C, fmt, i, "attn.c_k.weight");
            b->c_v = add_param(ps, 2, kv, C, fmt, i, "attn.c_v.weight");
            b->proj = add_param(ps, 2, C, C, fmt, i, "attn.proj.weight");
            b->q_gain = add_param(ps, 1, c.heads, 0, fmt, i, "attn.q_gain");
            b->fc = add_param(ps, 2, g->hidden, C, fmt, i, "mlp.fc.weight");
            b->mlp_proj = add_param(ps, 2, C, g->hidden, fmt, i, "mlp.proj.weight");
        } else {
            if (c.token_shift) b->mu = add_param(ps, 1, C, 0, fmt, i, "token_shift_mu");
            char prefix[64];
            snprintf(prefix, sizeof prefix, "blocks.%zu.resonance", i);
            trn_layer_add_params(&b->trn, ps, prefix, C, K);
            b->gate_up = add_param(ps, 2, 2 * Hs, C, fmt, i, "gate_up.weight");
            b->down = add_param(ps, 2, C, Hs, fmt, i, "down.weight");
        }
    }
    if (!c.tie_embeddings) g->lm_head = params_add(ps, "lm_head.weight", 2, (size_t[]){c.vocab_size, C});
    params_finalize(ps);

    Rng rng;
    rng_seed(&rng, seed);
    rng_fill_normal(&rng, g->tok_emb->data, g->tok_emb->numel, 0.0f, (float)c.embed_init_std);
    if (g->bg_embed) {
        rng_fill_normal(&rng, g->bg_embed->data, g->bg_embed->numel, 0.0f, (float)c.bigram_table_init_std);
        rng_fill_normal(&rng, g->bg_proj->data, g->bg_proj->numel, 0.0f, (float)c.bigram_proj_init_std);
        g->bg_scale->data[0] = (float)c.bigram_scale_init;
    }
    if (g->skip_weights) fill(g->skip_weights, 1.0f);
    TrnLayerInit ti = {.proj_std = c.proj_init_std,
                       .w_res_std = c.w_res_init_std,
                       .w_phase_std = c.w_phase_init_std,
                       .res_scale = c.res_scale_init,
                       .lambda = c.pcg_lambda_init,
                       .gate_bias = c.gate_bias_init,
                       .erase_bias = c.erase_bias_init,
                       .omega_len = c.omega_init_len};
    for (size_t i = 0; i < L; i++) {
        HyBlock *b = &g->blocks[i];
        fill(b->attn_scale, 1.0f);
        fill(b->mlp_scale, 1.0f);
        for (size_t j = 0; j < C; j++) {
            b->resid_mix->data[j] = 1.0f;
            b->resid_mix->data[C + j] = 0.0f;
        }
        if (b->attn) {
            init_uniform(b->c_q, &rng);
            init_uniform(b->c_k, &rng);
            init_uniform(b->c_v, &rng);
            if (c.zero_init_proj) fill(b->proj, 0.0f);
            else init_uniform(b->proj, &rng);
            fill(b->q_gain, (float)c.qk_gain_init);
            init_uniform(b->fc, &rng);
            if (c.zero_init_proj) fill(b->mlp_proj, 0.0f);
            else init_uniform(b->mlp_proj, &rng);
        } else {
            if (b->mu) fill(b->mu, 0.0f);
            trn_layer_init(&b->trn, &rng, &ti);
            /* the PR's TRNBlock: normal(dim^-1/2) and normal(hidden^-1/2), not zero */
            rng_fill_normal(&rng, b->gate_up->data, b->gate_up->numel, 0.0f, 1.0f / sqrtf((float)C));
            rng_fill_normal(&rng, b->down->data, b->down->numel, 0.0f, 1.0f / sqrtf((float)Hs));
        }
    }
    if (g->lm_head) {
        if (c.zero_init_proj) fill(g->lm_head, 0.0f);
        else init_uniform(g->lm_head, &rng);
    }
    if (g->head_dim && rope_table_init(&g->rope, c.seq_len, g->head_dim, (float)c.rope_base)) {
        model_free(m);
        return err_set(err, "config: cannot build the RoPE table");
    }
    m->config = cJSON_CreateObject();
    cfg_write(m->config, kTrnHybridConfigFields, kTrnHybridConfigFieldCount, &c);
    *out = m;
    return 0;
}
