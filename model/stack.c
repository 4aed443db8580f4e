/* stack.c — the trunk (model/stack.h): reads the model section into the stack's shared keys and
 * each block kind's own, builds the layers of the layout, registers and initialises parameters
 * in the preset's order, and runs the forward on the tape. */
#include "model/stack.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/lora.h"
#include "model/qat.h"

#define STACK_MAX_LAYERS 256
#define STACK_MAX_KINDS 16

#define F(type, m, h) CFG_F(type, StackConfig, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, StackConfig, m, lo, hi, h)
const CfgField kStackFields[] = {
    F(CFG_STRING, arch, "backbone preset: gpt | trn_hybrid | llama | chimera"),
    F(CFG_STRING, layout, "one letter per layer, from the preset's layer types (empty: the preset's letter x layers)"),
    R(CFG_SIZE, vocab_size, 2, MODEL_MAX_VOCAB, "vocabulary size"),
    R(CFG_SIZE, layers, 0, STACK_MAX_LAYERS, "number of layers (0 = the layout's length)"),
    R(CFG_SIZE, dim, 1, MODEL_MAX_DIM, "model width"),
    R(CFG_SIZE, heads, 0, MODEL_MAX_HEADS, "query heads (attention layers need >= 1)"),
    R(CFG_SIZE, kv_heads, 0, MODEL_MAX_HEADS, "key/value heads (GQA)"),
    R(CFG_SIZE, mlp_mult, 0, 64, "channel mixers' hidden = mlp_mult * dim unless their own size is set"),
    R(CFG_SIZE, seq_len, 1, MODEL_MAX_SEQ, "longest sequence (RoPE table; t = position in the window)"),
    R(CFG_FLOAT, softcap, 0, 1e6, "logit softcap cap * tanh(z / cap) (0 = off)"),
    R(CFG_FLOAT, rope_base, 1, 1e12, "RoPE base"),
    R(CFG_FLOAT, embed_init_std, 0, 1e3, "embedding init std"),
    R(CFG_FLOAT, qk_gain_init, 0, 1e3, "initial per-head q gain"),
    R(CFG_FLOAT, norm_eps, 0, 1, "RMSNorm eps (0 = float32 machine eps, as torch)"),
    R(CFG_FLOAT, init_std, 0, 1e3, "> 0: every matrix N(0, init_std), every vector 1 (Llama-2 style); 0: each kind's init"),
    F(CFG_BOOL, tie_embeddings, "tie input embedding and output head"),
    F(CFG_BOOL, skips, "U-Net skip connections"),
    F(CFG_BOOL, zero_init_proj, "zero-initialise output projections (and an untied head)"),
    F(CFG_BOOL, subln, "RMSNorm (no gain) on the inputs of the output projections (BitNet SubLN)"),
    F(CFG_BOOL, emb_norm, "RMSNorm of the token embedding (x0)"),
    F(CFG_BOOL, qk_norm, "RMSNorm of q and k per head"),
    F(CFG_BOOL, q_gain, "learned per-head gain on q after RoPE"),
    F(CFG_BOOL, resid_mix, "x = m0 x + m1 x0 before every layer (learned m0, m1)"),
    F(CFG_BOOL, branch_scales, "learned per-channel scales on the mixer and channel outputs"),
    F(CFG_BOOL, norm_gain, "learned gains on the pre-norms and the final norm"),
    F(CFG_BOOL, token_shift, "token shift before the mixers of the layer types that use it (TRN)"),
    R(CFG_SIZE, bigram_rows, 0, 2147483647, "BigramHash buckets (0 = no BigramHash)"),
    R(CFG_SIZE, bigram_dim, 0, MODEL_MAX_DIM, "BigramHash table width"),
    R(CFG_FLOAT, bigram_scale_init, -1e3, 1e3, "BigramHash output scale init"),
    R(CFG_FLOAT, bigram_table_init_std, 0, 1e3, "BigramHash table init std"),
    R(CFG_FLOAT, bigram_proj_init_std, 0, 1e3, "BigramHash projection init std (0 = bigram_dim^-1/2)"),
    R(CFG_SIZE, embed_dim, 0, MODEL_MAX_DIM, "token embedding width (0 = dim; else the first layer's mixer maps it to dim)"),
};
#undef R
#undef F
const size_t kStackFieldCount = sizeof kStackFields / sizeof kStackFields[0];

static void stack_defaults(StackConfig *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->arch, "gpt");
    c->vocab_size = 1024;
    c->dim = 512;
    c->heads = 8;
    c->kv_heads = 4;
    c->mlp_mult = 2;
    c->seq_len = 1024;
    c->softcap = 30.0;
    c->rope_base = 10000.0;
    c->embed_init_std = 0.005;
    c->qk_gain_init = 1.5;
    c->tie_embeddings = c->skips = c->zero_init_proj = c->emb_norm = c->qk_norm = c->q_gain = 1;
    c->resid_mix = c->branch_scales = 1;
    c->bigram_dim = 128;
    c->bigram_scale_init = 0.05;
    /* PR #669 zero-initialises both the BigramHash table and its projection: their gradients are
     * then both exactly zero and the feature never trains (backbones.md §5.5). Both non-zero here:
     * the table at 0.02 and the projection at bigram_dim^-1/2 give the bigram term about 0.05 *
     * 0.02 = 1e-3 per coordinate at init, a fifth of the token embedding's 0.005. */
    c->bigram_table_init_std = 0.02;
}

/* A kind the preset can place, with its config. */
typedef struct KindUse {
    const BlockKind *kind;
    void *cfg;
    int used;
} KindUse;

typedef struct Layer {
    const LayerType *type;
    void *mixer, *channel; /* kind instances */
    const void *mixer_cfg, *channel_cfg;
    Tensor *attn_scale, *mlp_scale, *resid_mix, *mu, *mixer_norm, *channel_norm;
} Layer;

typedef struct Stack {
    StackConfig sc;
    const Preset *preset;
    KindUse kinds[STACK_MAX_KINDS];
    size_t nkinds, L;
    Layer *layers;
    Tensor *tok_emb, *bg_embed, *bg_proj, *bg_scale, *skip_weights, *norm_w, *head;
    RopeTable rope;
    int have_rope;
    int widen;        /* layer 0 maps the embedding (embed_dim) to dim */
    StackConfig sc0;  /* sc with in_dim = embed_dim: what layer 0's mixer sees when widen */
    float *step;      /* the kinds' per-step counters, every layer's (BlockKind.step_floats) */
    size_t nstep;
    Tape ckpt;        /* checkpointed layers run here, one at a time (model_forward) */
    int have_ckpt;
} Stack;

static KindUse *kind_use(Stack *s, const BlockKind *k) {
    for (size_t i = 0; i < s->nkinds; i++)
        if (s->kinds[i].kind == k) return &s->kinds[i];
    return NULL;
}

/* ---------------------------------------------------------------- config */

/* The table that owns `key`: -1 the stack's, k >= 0 kinds[k], -2 none. */
static int key_owner(const Stack *s, const char *key) {
    for (size_t i = 0; i < kStackFieldCount; i++)
        if (!strcmp(kStackFields[i].key, key)) return -1;
    for (size_t k = 0; k < s->nkinds; k++)
        for (size_t i = 0; i < s->kinds[k].kind->nfields; i++)
            if (!strcmp(s->kinds[k].kind->fields[i].key, key)) return (int)k;
    return -2;
}

static int unknown_key(const Stack *s, const char *key, Err *err) {
    char known[1024];
    size_t o = 0;
    for (size_t i = 0; i < kStackFieldCount && o + 40 < sizeof known; i++)
        o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", i ? ", " : "", kStackFields[i].key);
    for (size_t k = 0; k < s->nkinds; k++)
        for (size_t i = 0; i < s->kinds[k].kind->nfields && o + 40 < sizeof known; i++)
            o += (size_t)snprintf(known + o, sizeof known - o, ", %s", s->kinds[k].kind->fields[i].key);
    return err_set(err, "config: unknown key model.%s for arch %s (known: %s)", key, s->sc.arch, known);
}

/* The preset's defaults with the user's keys over them, each key routed to the table that owns
 * it and read there (cfg_read checks types and ranges). */
static int read_sections(Stack *s, const cJSON *section, Err *err) {
    for (const cJSON *it = section->child; it; it = it->next) {
        if (key_owner(s, it->string) == -2) return unknown_key(s, it->string, err);
        for (const cJSON *prev = section->child; prev != it; prev = prev->next)
            if (!strcmp(prev->string, it->string)) return err_set(err, "config: duplicate key model.%s", it->string);
    }
    cJSON *merged = cJSON_Parse(s->preset->defaults);
    for (const cJSON *it = section->child; it; it = it->next) {
        if (cJSON_GetObjectItemCaseSensitive(merged, it->string))
            cJSON_ReplaceItemInObjectCaseSensitive(merged, it->string, cJSON_Duplicate(it, 1));
        else
            cJSON_AddItemToObject(merged, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON *parts[STACK_MAX_KINDS + 1];
    for (size_t k = 0; k <= s->nkinds; k++) parts[k] = cJSON_CreateObject();
    for (const cJSON *it = merged->child; it; it = it->next)
        cJSON_AddItemToObject(parts[key_owner(s, it->string) + 1], it->string, cJSON_Duplicate(it, 1));
    int rc = cfg_read(parts[0], "model", kStackFields, kStackFieldCount, &s->sc, err);
    for (size_t k = 0; k < s->nkinds && !rc; k++)
        rc = cfg_read(parts[k + 1], "model", s->kinds[k].kind->fields, s->kinds[k].kind->nfields, s->kinds[k].cfg, err);
    for (size_t k = 0; k <= s->nkinds; k++) cJSON_Delete(parts[k]);
    cJSON_Delete(merged);
    return rc;
}

static const LayerType *letter_type(const Preset *p, char c) {
    for (size_t i = 0; i < p->ntypes; i++)
        if (p->types[i].letter == c) return &p->types[i];
    return NULL;
}

static int bad_layout(const Stack *s, Err *err) {
    char what[256];
    size_t o = 0;
    for (size_t i = 0; i < s->preset->ntypes && o < sizeof what; i++)
        o += (size_t)snprintf(what + o, sizeof what - o, "%s%c (%s)", i ? ", " : "", s->preset->types[i].letter,
                              s->preset->types[i].what);
    return err_set(err, "config: model.layout of %s may only hold %s, got \"%s\"", s->sc.arch, what, s->sc.layout);
}

/* Layout and layers agree; every letter is one of the preset's. */
static int resolve_layout(Stack *s, Err *err) {
    StackConfig *c = &s->sc;
    size_t n = strlen(c->layout);
    if (!n) {
        if (c->layers < 1 || c->layers > STACK_MAX_LAYERS)
            return err_set(err, "config: model.layers must be in [1, %d]", STACK_MAX_LAYERS);
        for (size_t i = 0; i < c->layers; i++) c->layout[i] = s->preset->default_letter;
        c->layout[c->layers] = 0;
        n = c->layers;
    }
    if (n > STACK_MAX_LAYERS) return err_set(err, "config: model.layout must have 1..%d letters, got %zu", STACK_MAX_LAYERS, n);
    if (c->layers && c->layers != n)
        return err_set(err, "config: model.layers (%zu) does not match model.layout \"%s\" (%zu letters)", c->layers, c->layout, n);
    c->layers = n;
    for (size_t i = 0; i < n; i++) {
        const LayerType *t = letter_type(s->preset, c->layout[i]);
        if (!t) return bad_layout(s, err);
        KindUse *u;
        if (t->mixer && (u = kind_use(s, t->mixer))) u->used = 1;
        if (t->channel && (u = kind_use(s, t->channel))) u->used = 1;
    }
    return 0;
}

/* model.embed_dim != dim: the embedding is that wide and the first layer's token mixer (a kind
 * that widens) maps it to dim with nothing around it; what would need x0 or the embedding at
 * width dim is refused. */
static int resolve_embed_dim(Stack *s, Err *err) {
    StackConfig *c = &s->sc;
    c->in_dim = c->dim;
    if (!c->embed_dim) c->embed_dim = c->dim;
    if (c->embed_dim == c->dim) return 0;
    const LayerType *t = letter_type(s->preset, c->layout[0]);
    const char *why = !t->mixer || !t->mixer->widens ? "the first layer's token mixer must be one that widens (gru, mlgru)"
                      : c->tie_embeddings ? "model.tie_embeddings must be false"
                      : c->resid_mix      ? "model.resid_mix must be false"
                      : c->bigram_rows    ? "model.bigram_rows must be 0"
                      : c->token_shift && t->shift ? "model.token_shift must be false"
                                                   : NULL;
    if (why) return err_set(err, "config: model.embed_dim %zu differs from model.dim %zu, so %s", c->embed_dim, c->dim, why);
    return 0;
}

static int resolve_config(Stack *s, Err *err) {
    StackConfig *c = &s->sc;
    if (resolve_layout(s, err)) return -1;
    if (c->vocab_size < 2) return err_set(err, "config: model.vocab_size must be >= 2");
    if (c->dim == 0) return err_set(err, "config: model.dim must be positive");
    if (c->seq_len == 0) return err_set(err, "config: model.seq_len must be positive");
    if (c->softcap < 0) return err_set(err, "config: model.softcap must be >= 0");
    if (c->bigram_rows == 1) return err_set(err, "config: model.bigram_rows must be 0 (off) or >= 2");
    if (c->bigram_rows > 0x7fffffff) return err_set(err, "config: model.bigram_rows too large");
    if (c->bigram_rows && c->bigram_dim == 0) return err_set(err, "config: model.bigram_dim must be positive");
    if (c->bigram_rows && c->bigram_proj_init_std <= 0) c->bigram_proj_init_std = 1.0 / sqrt((double)c->bigram_dim);
    if (resolve_embed_dim(s, err)) return -1;
    for (size_t k = 0; k < s->nkinds; k++)
        if (s->kinds[k].kind->resolve(s->kinds[k].cfg, c, s->kinds[k].used, err)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- parameters */

static Tensor *layer_param(ParamStore *ps, size_t i, const char *name, int ndim, size_t a, size_t b) {
    char full[128];
    snprintf(full, sizeof full, "blocks.%zu.%s", i, name);
    return params_add2(ps, full, ndim, a, b);
}

static void add_scales(Stack *s, Layer *ly, size_t i, ParamStore *ps) {
    size_t C = s->sc.dim;
    if (s->sc.branch_scales && ly->type->mixer) ly->attn_scale = layer_param(ps, i, "attn_scale", 1, C, 0);
    if (s->sc.branch_scales && ly->type->channel) ly->mlp_scale = layer_param(ps, i, "mlp_scale", 1, C, 0);
    if (s->sc.resid_mix) ly->resid_mix = layer_param(ps, i, "resid_mix", 2, 2, C);
}

static void add_layer_params(Stack *s, Layer *ly, size_t i, ParamStore *ps) {
    const StackConfig *c = &s->sc;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "blocks.%zu.", i);
    if (!s->preset->scales_after_mixer) add_scales(s, ly, i, ps);
    if (c->token_shift && ly->type->shift) ly->mu = layer_param(ps, i, "token_shift_mu", 1, c->dim, 0);
    if (ly->type->mixer) {
        int wide = s->widen && i == 0;
        if (c->norm_gain && !wide) ly->mixer_norm = layer_param(ps, i, "attn_norm.weight", 1, c->dim, 0);
        ly->type->mixer->add_params(ly->mixer, ly->mixer_cfg, wide ? &s->sc0 : c, ps, prefix);
    }
    if (s->preset->scales_after_mixer) add_scales(s, ly, i, ps);
    if (ly->type->channel) {
        if (c->norm_gain) ly->channel_norm = layer_param(ps, i, "ffn_norm.weight", 1, c->dim, 0);
        ly->type->channel->add_params(ly->channel, ly->channel_cfg, c, ps, prefix);
    }
}

static int add_params(Stack *s, ParamStore *ps, Err *err) {
    const StackConfig *c = &s->sc;
    size_t C = c->dim, L = s->L;
    params_init(ps);
    s->tok_emb = params_add2(ps, "tok_emb.weight", 2, c->vocab_size, c->embed_dim);
    if (c->bigram_rows) {
        s->bg_embed = params_add2(ps, "bigram.embed.weight", 2, c->bigram_rows, c->bigram_dim);
        s->bg_proj = params_add2(ps, "bigram.proj.weight", 2, C, c->bigram_dim);
        s->bg_scale = params_add2(ps, "bigram.scale", 1, 1, 0);
    }
    size_t nskip = c->skips ? TERN_MIN(L / 2, L - L / 2) : 0;
    if (nskip) s->skip_weights = params_add2(ps, "skip_weights", 2, nskip, C);
    for (size_t i = 0; i < L; i++) add_layer_params(s, &s->layers[i], i, ps);
    if (c->norm_gain) s->norm_w = params_add2(ps, "norm.weight", 1, C, 0);
    if (!c->tie_embeddings)
        s->head = params_add2(ps, s->preset->names == NAMES_LLAMA ? "output.weight" : "lm_head.weight", 2, c->vocab_size, C);
    return params_finalize_checked(ps, err);
}

static void init_layer(const Stack *s, Layer *ly, Rng *rng) {
    size_t C = s->sc.dim;
    if (ly->attn_scale) block_fill(ly->attn_scale, 1.0f);
    if (ly->mlp_scale) block_fill(ly->mlp_scale, 1.0f);
    if (ly->resid_mix)
        for (size_t j = 0; j < C; j++) {
            ly->resid_mix->data[j] = 1.0f;
            ly->resid_mix->data[C + j] = 0.0f;
        }
    if (ly->mu) block_fill(ly->mu, 0.0f);
    if (ly->mixer_norm) block_fill(ly->mixer_norm, 1.0f);
    if (ly->channel_norm) block_fill(ly->channel_norm, 1.0f);
    if (ly->type->mixer) ly->type->mixer->init(ly->mixer, ly->mixer_cfg, ly == s->layers && s->widen ? &s->sc0 : &s->sc, rng);
    if (ly->type->channel) ly->type->channel->init(ly->channel, ly->channel_cfg, &s->sc, rng);
}

/* Each part's own initialisation, in parameter order (the random stream is consumed in that
 * order, so a config and a seed give the same weights every time); or, with init_std > 0, the
 * Llama-2 recipe for everything. */
static void init_params(Stack *s, ParamStore *ps, uint64_t seed) {
    const StackConfig *c = &s->sc;
    Rng rng;
    rng_seed(&rng, seed);
    if (c->init_std > 0) {
        for (size_t p = 0; p < ps->n; p++) {
            Tensor *t = ps->t[p];
            if (t->ndim == 1) block_fill(t, 1.0f);
            else rng_fill_normal(&rng, t->data, t->numel, 0.0f, (float)c->init_std);
        }
        return;
    }
    rng_fill_normal(&rng, s->tok_emb->data, s->tok_emb->numel, 0.0f, (float)c->embed_init_std);
    if (s->bg_embed) {
        rng_fill_normal(&rng, s->bg_embed->data, s->bg_embed->numel, 0.0f, (float)c->bigram_table_init_std);
        rng_fill_normal(&rng, s->bg_proj->data, s->bg_proj->numel, 0.0f, (float)c->bigram_proj_init_std);
        s->bg_scale->data[0] = (float)c->bigram_scale_init;
    }
    if (s->skip_weights) block_fill(s->skip_weights, 1.0f);
    for (size_t i = 0; i < s->L; i++) init_layer(s, &s->layers[i], &rng);
    if (s->norm_w) block_fill(s->norm_w, 1.0f);
    if (s->head) {
        if (c->zero_init_proj) block_fill(s->head, 0.0f);
        else block_init_linear(s->head, &rng);
    }
}

/* Default optimizer groups: both embedding tables Adam "embed", the untied head "head" (Llama's
 * output "embed", as llama2.c trains it), the BigramHash projection and every 2-D block matrix
 * Muon "matrix", the rest (vectors, scalars, resid_mix, skip weights) "scalar". */
static char *group_rules(const Stack *s) {
    char buf[4096];
    size_t o = (size_t)snprintf(buf, sizeof buf, "[{\"match\":\"tok_emb.weight\",\"group\":\"embed\"},");
    if (s->sc.bigram_rows)
        o += (size_t)snprintf(buf + o, sizeof buf - o,
                              "{\"match\":\"bigram.embed.weight\",\"group\":\"embed\"},"
                              "{\"match\":\"bigram.proj.weight\",\"group\":\"matrix\"},");
    o += (size_t)snprintf(buf + o, sizeof buf - o, "%s",
                          s->preset->names == NAMES_LLAMA ? "{\"match\":\"output.weight\",\"group\":\"embed\"},"
                                                          : "{\"match\":\"lm_head.weight\",\"group\":\"head\"},");
    for (size_t k = 0; k < s->nkinds && o < sizeof buf; k++)
        if (s->kinds[k].kind->group_rules) o += (size_t)snprintf(buf + o, sizeof buf - o, "%s,", s->kinds[k].kind->group_rules);
    snprintf(buf + o, sizeof buf - o,
             "{\"match\":\"*resid_mix*\",\"group\":\"scalar\"},"
             "{\"match\":\"blocks.*\",\"ndim\":2,\"group\":\"matrix\"},"
             "{\"match\":\"*\",\"group\":\"scalar\"}]");
    return xstrdup(buf);
}

/* ---------------------------------------------------------------- building */

static void stack_free(Stack *s) {
    if (!s) return;
    for (size_t k = 0; k < s->nkinds; k++) xfree(s->kinds[k].cfg);
    for (size_t i = 0; s->layers && i < s->L; i++) {
        const Layer *ly = &s->layers[i];
        if (ly->mixer && ly->type->mixer->free_inst) ly->type->mixer->free_inst(ly->mixer);
        if (ly->channel && ly->type->channel->free_inst) ly->type->channel->free_inst(ly->channel);
        xfree(ly->mixer);
        xfree(ly->channel);
    }
    xfree(s->step);
    xfree(s->layers);
    if (s->have_ckpt) tape_free(&s->ckpt);
    if (s->have_rope) rope_table_free(&s->rope);
    xfree(s);
}

static int make_layers(Stack *s, Err *err) {
    s->L = s->sc.layers;
    s->layers = xcalloc(s->L, sizeof(Layer));
    int rope = 0;
    for (size_t i = 0; i < s->L; i++) {
        Layer *ly = &s->layers[i];
        ly->type = letter_type(s->preset, s->sc.layout[i]);
        if (ly->type->mixer) {
            ly->mixer = xcalloc(1, ly->type->mixer->inst_bytes);
            ly->mixer_cfg = kind_use(s, ly->type->mixer)->cfg;
            rope |= ly->type->mixer->needs_rope;
        }
        if (ly->type->channel) {
            ly->channel = xcalloc(1, ly->type->channel->inst_bytes);
            ly->channel_cfg = kind_use(s, ly->type->channel)->cfg;
        }
    }
    s->widen = s->sc.embed_dim != s->sc.dim;
    s->sc0 = s->sc;
    s->sc0.in_dim = s->sc.embed_dim;
    if (rope && s->sc.heads) {
        if (rope_table_init(&s->rope, s->sc.seq_len, s->sc.dim / s->sc.heads, (float)s->sc.rope_base))
            return err_set(err, "config: cannot build the RoPE table");
        s->have_rope = 1;
    }
    return 0;
}

static int stack_build(Stack **out, const cJSON *section, Err *err) {
    *out = NULL;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(section, "arch");
    if (arch && !cJSON_IsString(arch)) return err_set(err, "config: model.arch must be a string");
    const char *name = arch ? arch->valuestring : "gpt";
    const Preset *p = preset_find(name);
    if (!p) {
        char known[256] = "";
        for (size_t i = 0; i < preset_count(); i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", preset_at(i)->name);
        return err_set(err, "config: unknown model.arch \"%s\" (known: %s)", name, known);
    }
    Stack *s = xcalloc(1, sizeof *s);
    s->preset = p;
    stack_defaults(&s->sc);
    s->sc.names = p->names;
    const BlockKind *kinds[STACK_MAX_KINDS];
    s->nkinds = preset_kinds(p, kinds, STACK_MAX_KINDS);
    for (size_t k = 0; k < s->nkinds; k++) {
        s->kinds[k].kind = kinds[k];
        s->kinds[k].cfg = xcalloc(1, kinds[k]->cfg_bytes ? kinds[k]->cfg_bytes : 1);
        kinds[k]->defaults(s->kinds[k].cfg);
    }
    if (read_sections(s, section, err) || resolve_config(s, err) || make_layers(s, err)) {
        stack_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* The kinds' buffers (after train_forwards, in layer order) and their slices of the counters. */
static void add_buffers(Stack *s, BufferStore *bs) {
    for (int pass = 0; pass < 2; pass++) { /* sizes, then the array and the registrations */
        size_t o = 0;
        for (size_t i = 0; i < s->L; i++) {
            Layer *ly = &s->layers[i];
            char prefix[64];
            snprintf(prefix, sizeof prefix, "blocks.%zu.", i);
            const BlockKind *k2[2] = {ly->type->mixer, ly->type->channel};
            void *inst[2] = {ly->mixer, ly->channel};
            const void *cfg[2] = {ly->mixer_cfg, ly->channel_cfg};
            for (int j = 0; j < 2; j++) {
                if (!k2[j] || !k2[j]->add_buffers) continue;
                size_t n = k2[j]->step_floats ? k2[j]->step_floats(cfg[j], &s->sc) : 0;
                if (pass) k2[j]->add_buffers(inst[j], cfg[j], &s->sc, bs, prefix, n ? s->step + o : NULL);
                o += n;
            }
        }
        if (!pass) {
            s->nstep = o;
            s->step = o ? xcalloc(o, sizeof(float)) : NULL;
        }
    }
}

float *model_step_counts(Model *m, size_t *n) {
    *n = m->stack->nstep;
    return m->stack->step;
}

double model_after_step(Model *m) {
    const Stack *s = m->stack;
    double worst = -1;
    for (size_t i = 0; i < s->L; i++) {
        const Layer *ly = &s->layers[i];
        double f = -1;
        if (ly->type->mixer && ly->type->mixer->after_step) f = ly->type->mixer->after_step(ly->mixer, ly->mixer_cfg, &s->sc);
        worst = f > worst ? f : worst;
        if (ly->type->channel && ly->type->channel->after_step)
            f = ly->type->channel->after_step(ly->channel, ly->channel_cfg, &s->sc);
        worst = f > worst ? f : worst;
    }
    return worst;
}

static cJSON *resolved_config(const Stack *s) {
    cJSON *o = cJSON_CreateObject();
    cfg_write(o, kStackFields, kStackFieldCount, &s->sc);
    for (size_t k = 0; k < s->nkinds; k++) cfg_write(o, s->kinds[k].kind->fields, s->kinds[k].kind->nfields, s->kinds[k].cfg);
    return o;
}

int model_create(Model **out, const cJSON *section, uint64_t seed, Err *err) {
    *out = NULL;
    if (!section || !cJSON_IsObject(section)) return err_set(err, "config: model section missing");
    Stack *s = NULL;
    if (stack_build(&s, section, err)) return -1;
    Model *m = xcalloc(1, sizeof *m);
    m->stack = s;
    m->arch = s->preset->name;
    m->vocab = s->sc.vocab_size;
    m->max_seq_len = s->sc.seq_len;
    m->softcap = (float)s->sc.softcap;
    buffers_init(&m->bs);
    if (add_params(s, &m->ps, err)) {
        model_free(m);
        return -1;
    }
    buffers_add(&m->bs, "train_forwards", BUF_U64, 1, 1, 0, &m->train_forwards, 0);
    add_buffers(s, &m->bs);
    init_params(s, &m->ps, seed);
    m->default_groups = group_rules(s);
    m->config = resolved_config(s);
    *out = m;
    return 0;
}

/* ---------------------------------------------------------------- forward */

/* Forward-only work keeps nothing for a backward, so each sub-layer's scratch (norm outputs,
 * projections, fake-quantized weights, ...) is dropped as soon as the residual stream holds its
 * result: `stream` is a [B, T, C] buffer below the mark, the sub-layer's result is copied into it
 * and the arena is released back to the mark. Peak memory is then one sub-layer's scratch plus
 * the kept tensors (x0, the stream, U-Net skips), instead of every layer's activations. */
typedef struct Settle {
    Tape *tp;
    Tensor *stream; /* NULL: gradients are being recorded, keep everything */
    ArenaMark mark;
} Settle;

static void settle_begin(Settle *st) {
    if (st->stream) st->mark = arena_mark(&st->tp->arena);
}

static Tensor *settle_end(Settle *st, Tensor *x) {
    if (!st->stream) return x;
    if (x != st->stream) memcpy(st->stream->data, x->data, x->numel * sizeof(float));
    arena_release(&st->tp->arena, st->mark);
    return st->stream;
}

static Tensor *mixer_forward(const Stack *s, const Layer *ly, const BlockCtx *ctx, Tensor *x, Tensor *x0) {
    Tape *tp = ctx->tp;
    size_t C = s->sc.dim;
    if (ly->resid_mix) {
        Tensor *m0 = tensor_view(tp, ly->resid_mix, 0, 1, &C);
        Tensor *m1 = tensor_view(tp, ly->resid_mix, C, 1, &C);
        x = op_mix(tp, x, m0, x0, m1);
    }
    if (ly->type->mixer && s->widen && ly == s->layers) {
        /* the widening first layer reads the embedding as it is: x = mixer(x) */
        BlockCtx c0 = *ctx;
        c0.sc = &s->sc0;
        Tensor *y = ly->type->mixer->forward(ly->mixer, ly->mixer_cfg, &c0, x);
        x = ly->attn_scale ? op_mul(tp, y, ly->attn_scale) : y;
    } else if (ly->type->mixer) {
        Tensor *h = op_rmsnorm(tp, x, ly->mixer_norm, (float)s->sc.norm_eps);
        if (ly->mu) h = op_token_shift(tp, h, op_sigmoid(tp, ly->mu));
        Tensor *y = ly->type->mixer->forward(ly->mixer, ly->mixer_cfg, ctx, h);
        x = ly->attn_scale ? op_add_mul(tp, x, ly->attn_scale, y) : op_add(tp, x, y);
    }
    return x;
}

static Tensor *channel_forward(const Stack *s, const Layer *ly, const BlockCtx *ctx, Tensor *x) {
    Tape *tp = ctx->tp;
    Tensor *h = op_rmsnorm(tp, x, ly->channel_norm, (float)s->sc.norm_eps);
    Tensor *u = ly->type->channel->forward(ly->channel, ly->channel_cfg, ctx, h);
    return ly->mlp_scale ? op_add_mul(tp, x, ly->mlp_scale, u) : op_add(tp, x, u);
}

/* A copy of x that outlives the next release (allocated outside any settle region). */
static Tensor *keep_copy(Tape *tp, const Tensor *x) {
    Tensor *k = tensor_new(tp, x->ndim, x->shape);
    memcpy(k->data, x->data, x->numel * sizeof(float));
    return k;
}

/* x: the layer's input, already computed inside the open settle region (skip add) or kept. */
static Tensor *layer_forward(const Stack *s, const Layer *ly, const BlockCtx *ctx, Tensor *x, Tensor *x0,
                             Settle *st) {
    x = settle_end(st, mixer_forward(s, ly, ctx, x, x0));
    if (ly->type->channel) {
        settle_begin(st);
        x = settle_end(st, channel_forward(s, ly, ctx, x));
    }
    return x;
}

/* ---------------------------------------------------------------- activation checkpointing */

/* A checkpointed layer keeps on the outer tape only its output y and ONE entry whose inputs are
 * the layer's input x (and x0 when the layer reads it). The layer runs on the stack's own tape
 * `ckpt`, with recording on exactly as without checkpointing (so y is bit for bit the same),
 * and that tape is reset as soon as y is copied out. In backward the layer is run again there,
 * seeded with y's gradient and differentiated; parameter gradients go straight to the
 * ParamStore as always. Input gradients: each leaf's grad starts as a copy of the outer input's
 * grad so far and is copied back after, so every += happens in the order the uncheckpointed
 * tape does it (a fresh zero leaf added at the end would round differently). */
typedef struct CkptCtx {
    Model *m;
    size_t layer, B, T;
    int training;
    Tensor *x, *x0; /* x0: NULL when the layer does not read it, or it is x itself */
} CkptCtx;

static Tensor *leaf_copy(Tape *tp, Tensor *src) {
    Tensor *l = tensor_new(tp, src->ndim, src->shape);
    memcpy(l->data, src->data, src->numel * sizeof(float));
    l->requires_grad = src->requires_grad;
    return l;
}

/* Runs the layer on the checkpoint tape from copies of its inputs. */
static Tensor *ckpt_run(const CkptCtx *k, int recompute, Tensor **lx, Tensor **lx0) {
    Stack *s = k->m->stack;
    Tape *tp = &s->ckpt;
    tape_reset(tp);
    *lx = leaf_copy(tp, k->x);
    *lx0 = k->x0 ? leaf_copy(tp, k->x0) : NULL;
    BlockCtx ctx = {k->m, tp, k->B, k->T, k->training, &s->sc, s->have_rope ? &s->rope : NULL, recompute};
    Settle st = {tp, NULL, {0}};
    const Layer *ly = &s->layers[k->layer];
    return layer_forward(s, ly, &ctx, *lx, ly->resid_mix ? (*lx0 ? *lx0 : *lx) : NULL, &st);
}

static void grad_into(Tape *tp, Tensor *leaf, Tape *outer, Tensor *src) {
    if (!src->requires_grad) return;
    memcpy(tensor_grad(tp, leaf), tensor_grad(outer, src), src->numel * sizeof(float));
}

static void grad_back(Tape *outer, Tensor *dst, Tape *tp, Tensor *leaf) {
    if (!dst->requires_grad) return;
    memcpy(tensor_grad(outer, dst), tensor_grad(tp, leaf), dst->numel * sizeof(float));
}

static void ckpt_backward(Tape *outer, TapeEntry *e) {
    const CkptCtx *k = e->ctx;
    Tape *tp = &k->m->stack->ckpt;
    Tensor *lx, *lx0;
    Tensor *y = ckpt_run(k, 1, &lx, &lx0);
    grad_into(tp, lx, outer, k->x);
    if (lx0) grad_into(tp, lx0, outer, k->x0);
    tape_backward_seed(tp, y, tensor_grad(outer, e->out));
    grad_back(outer, k->x, tp, lx);
    if (lx0) grad_back(outer, k->x0, tp, lx0);
    tape_reset(tp);
}

/* Layer i checkpointed: y (on the outer tape) and its one entry. */
static Tensor *ckpt_layer(Model *m, Tape *outer, size_t i, const BlockCtx *c, Tensor *x, Tensor *x0) {
    Stack *s = m->stack;
    if (!s->have_ckpt) {
        tape_init(&s->ckpt, 0);
        s->have_ckpt = 1;
    }
    CkptCtx *k = arena_alloc(&outer->arena, sizeof *k);
    *k = (CkptCtx){m, i, c->B, c->T, c->training, x, s->layers[i].resid_mix && x0 != x ? x0 : NULL};
    Tensor *lx, *lx0;
    Tensor *y = ckpt_run(k, 0, &lx, &lx0);
    Tensor *out = keep_copy(outer, y);
    int wants = y->requires_grad;
    tape_reset(&s->ckpt);
    if (wants) {
        Tensor *in[2] = {x, k->x0};
        TapeEntry *e = tape_record(outer, "checkpoint", ckpt_backward, out, in, k->x0 ? 2 : 1);
        e->ctx = k;
    }
    return out;
}

size_t model_ckpt_high_water(const Model *m) { return m->stack->have_ckpt ? m->stack->ckpt.arena.high_water : 0; }

void model_ckpt_reset(Model *m) {
    if (!m->stack->have_ckpt) return;
    tape_free(&m->stack->ckpt);
    m->stack->have_ckpt = 0;
}

Tensor *model_forward(Model *m, Tape *tp, const int32_t *idx, size_t B, size_t T, int training) {
    const Stack *s = m->stack;
    const StackConfig *c = &s->sc;
    size_t C = c->dim, L = s->L;
    TERN_CHECK(T <= c->seq_len, "%s: sequence length %zu exceeds model.seq_len %zu", m->arch, T, c->seq_len);
    if (training) m->train_forwards++;
    if (m->lora) { /* adapter dropout: training forwards only, a fresh mask per forward */
        m->lora->training = training;
        m->lora->forward_id = m->train_forwards;
    }
    float eps = (float)c->norm_eps;
    BlockCtx ctx = {m, tp, B, T, training, c, s->have_rope ? &s->rope : NULL, 0};
    /* the tied table is quantized once per forward (QAT) and used for both lookup and logits */
    Tensor *emb = model_weight(m, tp, s->tok_emb);
    Tensor *x = op_embedding(tp, emb, idx, B * T, 3, (size_t[]){B, T, c->embed_dim});
    if (s->bg_embed)
        x = op_add(tp, x, op_bigram_hash(tp, model_weight(m, tp, s->bg_embed), model_weight(m, tp, s->bg_proj), s->bg_scale, idx, B, T));
    if (c->emb_norm) x = op_rmsnorm(tp, x, NULL, eps);
    Tensor *x0 = x;
    size_t nenc = L / 2, nskip = 0;
    Tensor *skips[STACK_MAX_LAYERS];
    Settle st = {tp, tp->no_grad > 0 ? tensor_new3(tp, B, T, C) : NULL, {0}};
    int ckpt = m->checkpoint_blocks && training && tp->no_grad == 0;
    for (size_t i = 0; i < L; i++) {
        settle_begin(&st);
        if (i >= nenc && nskip) {
            Tensor *w = tensor_view(tp, s->skip_weights, (i - nenc) * C, 1, &C);
            x = op_add_mul(tp, x, w, skips[--nskip]);
        }
        x = ckpt ? ckpt_layer(m, tp, i, &ctx, x, x0) : layer_forward(s, &s->layers[i], &ctx, x, x0, &st);
        if (i < nenc && c->skips) skips[nskip++] = st.stream ? keep_copy(tp, x) : x;
    }
    x = op_rmsnorm(tp, x, s->norm_w, eps);
    x = op_reshape(tp, x, 2, (size_t[]){B * T, C});
    return model_head(m, tp, x, s->head ? model_weight(m, tp, s->head) : emb);
}

Tensor *model_logits(Model *m, Tape *tp, const int32_t *x, size_t B, size_t T) {
    Tensor *z = model_forward(m, tp, x, B, T, 0);
    if (m->softcap > 0) z = op_scale(tp, op_tanh(tp, op_scale(tp, z, 1.0f / m->softcap)), m->softcap);
    return z;
}

Tensor *model_loss(Model *m, Tape *tp, const int32_t *x, const int32_t *y, size_t B, size_t T, float *per_token,
                   int training) {
    return op_cross_entropy(tp, model_forward(m, tp, x, B, T, training), y, m->softcap, -1, per_token);
}

/* ---------------------------------------------------------------- export, memory */

int model_export_kv(const Model *m, KvList *kv, Err *err) {
    const Stack *s = m->stack;
    const StackConfig *c = &s->sc;
    kv_add_str(kv, "stack.arch", c->arch);
    kv_add_u32(kv, "stack.vocab_size", c->vocab_size);
    kv_add_u32(kv, "stack.dim", c->dim);
    kv_add_u32(kv, "stack.layers", s->L);
    kv_add_u32(kv, "stack.seq_len", c->seq_len);
    kv_add_f32(kv, "stack.softcap", c->softcap);
    /* the trainer's RMSNorm replaces eps <= 0 by FLT_EPSILON (as torch's RMSNorm with eps=None) */
    kv_add_f32(kv, "stack.norm_eps", c->norm_eps > 0 ? c->norm_eps : 1.1920928955078125e-07);
    kv_add_bool(kv, "stack.tie_embeddings", c->tie_embeddings);
    kv_add_bool(kv, "stack.skips", c->skips);
    kv_add_bool(kv, "stack.emb_norm", c->emb_norm);
    kv_add_bool(kv, "stack.norm_gain", c->norm_gain);
    kv_add_bool(kv, "stack.resid_mix", c->resid_mix);
    kv_add_bool(kv, "stack.branch_scales", c->branch_scales);
    kv_add_u32(kv, "stack.bigram_rows", c->bigram_rows);
    kv_add_u32(kv, "stack.bigram_dim", c->bigram_rows ? c->bigram_dim : 0);
    if (s->widen) kv_add_u32(kv, "stack.embed_dim", c->embed_dim); /* absent: dim (older artifacts) */
    if (s->preset->names != NAMES_PGOLF) return err_set(err, "export: the %s preset's tensor names have no runtime layout", m->arch);
    char key[64];
    for (size_t i = 0; i < s->L; i++) {
        const LayerType *t = s->layers[i].type;
        snprintf(key, sizeof key, "layer.%zu.mixer", i);
        kv_add_str(kv, key, t->mixer ? t->mixer->name : "");
        snprintf(key, sizeof key, "layer.%zu.channel", i);
        kv_add_str(kv, key, t->channel ? t->channel->name : "");
        snprintf(key, sizeof key, "layer.%zu.shift", i);
        kv_add_bool(kv, key, s->layers[i].mu != NULL);
    }
    for (size_t k = 0; k < s->nkinds; k++) {
        const KindUse *u = &s->kinds[k];
        if (!u->used) continue;
        if (!u->kind->export_keys)
            return err_set(err, "export: block kind %s has no runtime counterpart (the artifact format cannot hold it)", u->kind->name);
        if (u->kind->export_keys(u->cfg, c, kv, err)) return -1;
    }
    return 0;
}

int model_prefers_byte_codes(const Model *m) {
    const Stack *s = m->stack;
    for (size_t k = 0; k < s->nkinds; k++)
        if (s->kinds[k].used && s->kinds[k].kind->export_byte_codes) return 1;
    return 0;
}

size_t model_decode_state_floats(const Model *m, size_t ctx) {
    const Stack *s = m->stack;
    size_t n = 0;
    for (size_t i = 0; i < s->L; i++) {
        const Layer *ly = &s->layers[i];
        if (ly->type->mixer && ly->type->mixer->decode_state_floats)
            n += ly->type->mixer->decode_state_floats(ly->mixer_cfg, &s->sc, ctx);
        if (ly->mu) n += s->sc.dim; /* the previous position's normed residual */
    }
    return n;
}

void model_free(Model *m) {
    if (!m) return;
    stack_free(m->stack);
    if (m->qplan) {
        quant_plan_free(m->qplan);
        xfree(m->qplan);
    }
    lora_detach(m);
    params_free(&m->ps);
    buffers_free(&m->bs);
    cJSON_Delete(m->config);
    xfree(m->default_groups);
    xfree(m);
}

size_t model_num_params(const Model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->ps.n; i++) n += m->ps.t[i]->numel;
    return n;
}
