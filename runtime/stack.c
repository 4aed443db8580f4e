/* stack.c — the runtime's one trunk (model/stack.c's forward at evaluation), around the block
 * kinds of runtime/blocks/:
 *   x = tok_emb[id] (+ scale * proj(bigram_table[hash(id_t, id_{t-1})]))  [emb_norm: rmsnorm];  x0 = x
 *   layer i: [resid_mix: x = m0 x + m1 x0];  h = rmsnorm(x) [* gain]  [shift: h'_t = mu h_t +
 *     (1 - mu) h_{t-1}, mu = sigmoid(token_shift_mu)];  x += [attn_scale *] mixer(h);
 *     h = rmsnorm(x) [* gain];  x += [mlp_scale *] channel(h)
 *   U-Net skips: the first L/2 layers push x, the next ones add skip_weights[j] * pop() first
 *   logits = softcap(head(rmsnorm(x) [* gain]))
 * Prefill runs in chunks of RT_CHUNK tokens through the batched linear kernels. A session keeps,
 * besides each kind's decode state, the previous token (BigramHash) and per shifted layer the
 * previous position's normed residual (token shift); a forward at position 0 starts them afresh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fastmath.h"
#include "kernels/trn_math.h"
#include "runtime/rt_internal.h"

#define RT_CHUNK 64

static const RtBlockKind *const kKinds[] = {&rt_block_attention, &rt_block_mlp, &rt_block_swiglu, &rt_block_trn,
                                            &rt_block_gru,       &rt_block_mlgru, &rt_block_gdn, &rt_block_mlstm, &rt_block_moe};

/* The kinds that may be a first layer reading a stack.embed_dim wide embedding (model/block.h
 * BlockKind.widens): their bind reads RtDims.Cin. */
static int kind_widens(const RtBlockKind *k) { return k == &rt_block_gru || k == &rt_block_mlgru; }
/* The token mixers that never read the position (their state is all they carry). */
static int kind_position_free(const RtBlockKind *k) { return k == &rt_block_gru || k == &rt_block_mlgru; }

const RtBlockKind *rt_block_kind_find(const char *name) {
    for (size_t i = 0; i < sizeof kKinds / sizeof kKinds[0]; i++)
        if (!strcmp(kKinds[i]->name, name)) return kKinds[i];
    return NULL;
}

typedef struct RtLayer {
    const RtBlockKind *mk, *ck;   /* token mixer, channel mixer (NULL: none) */
    void *mi, *ci;
    float *attn_scale, *mlp_scale, *resid_mix, *mu, *mnorm, *cnorm; /* NULL when absent */
} RtLayer;

typedef struct RtStack {
    size_t C, V, L, seq_len, eval_seq_len, nenc, nskip, brows, bdim, rope_D;
    size_t E;   /* embedding width; != C: layer 0's mixer widens it to C (stack.embed_dim) */
    size_t W;   /* max(C, E): the residual buffers' width */
    float eps, softcap, bg_scale, rope_base;
    int emb_norm;
    const RtTensor *tok_emb, *head, *bg_embed, *bg_proj;
    float *skip_w, *norm_w, *inv_freq;
    RtLayer *layers;
} RtStack;

#define RT_KV_FIRST 64 /* positions of a session's first KV cache; it doubles from there */

typedef struct RtStackState {
    size_t P, nstate, cap;        /* state floats for a cache of cap positions */
    float *state;                 /* every layer's decode state and token-shift row */
    float *x, *x0, *h, *y, *hs, *skips, *hlast, *bge, *bgp, *cosb, *sinb, *kscratch;
    void *mem, *lin;
    int32_t prev_tok;
} RtStackState;

/* ---------------------------------------------------------------- binding */

void rt_stack_unbind(TrtModel *m) {
    RtStack *g = m->stack;
    if (!g) return;
    for (size_t i = 0; g->layers && i < g->L; i++) {
        RtLayer *ly = &g->layers[i];
        if (ly->mk && ly->mi) ly->mk->unbind(ly->mi);
        if (ly->ck && ly->ci) ly->ck->unbind(ly->ci);
        float *v[6] = {ly->attn_scale, ly->mlp_scale, ly->resid_mix, ly->mu, ly->mnorm, ly->cnorm};
        for (int k = 0; k < 6; k++) rt_free(v[k]);
    }
    free(g->layers);
    rt_free(g->skip_w);
    rt_free(g->norm_w);
    rt_free(g->inv_freq);
    free(g);
    m->stack = NULL;
}

typedef struct StackFlags {
    int tie, skips, norm_gain, resid_mix, branch_scales;
} StackFlags;

static int stack_keys(TrtModel *m, RtStack *g, const RtKvSet *kv, StackFlags *fl, RtErr *e) {
    const char *arch;
    uint32_t V, C, L, T, Te, br, bd;
    if (rt_kv_str(kv, "stack.arch", &arch, e) || rt_kv_u32(kv, "stack.vocab_size", 2, 1u << 24, &V, e) ||
        rt_kv_u32(kv, "stack.dim", 1, 65536, &C, e) || rt_kv_u32(kv, "stack.layers", 1, TERN_LAYERS_MAX, &L, e) ||
        rt_kv_u32(kv, "stack.seq_len", 1, 1u << 20, &T, e) || rt_kv_u32(kv, "stack.eval_seq_len", 0, T, &Te, e) ||
        rt_kv_f32(kv, "stack.softcap", &g->softcap, e) || rt_kv_f32(kv, "stack.norm_eps", &g->eps, e) ||
        rt_kv_bool(kv, "stack.tie_embeddings", &fl->tie, e) || rt_kv_bool(kv, "stack.skips", &fl->skips, e) ||
        rt_kv_bool(kv, "stack.emb_norm", &g->emb_norm, e) || rt_kv_bool(kv, "stack.norm_gain", &fl->norm_gain, e) ||
        rt_kv_bool(kv, "stack.resid_mix", &fl->resid_mix, e) || rt_kv_bool(kv, "stack.branch_scales", &fl->branch_scales, e) ||
        rt_kv_u32(kv, "stack.bigram_rows", 0, 0x7fffffffu, &br, e) || rt_kv_u32(kv, "stack.bigram_dim", 0, 65536, &bd, e))
        return -1;
    if (g->softcap < 0) return rt_err(e, "stack.softcap must be >= 0");
    if (!(g->eps > 0)) return rt_err(e, "stack.norm_eps must be > 0");
    if (br == 1 || (br ? bd == 0 : bd != 0)) return rt_err(e, "stack.bigram_dim %u does not fit stack.bigram_rows %u", bd, br);
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    g->V = V, g->C = C, g->L = L, g->seq_len = T, g->eval_seq_len = Te ? Te : T, g->brows = br, g->bdim = bd;
    g->E = C;
    if (rt_kv_find(kv, "stack.embed_dim")) { /* absent in artifacts whose embedding is dim wide */
        uint32_t E;
        if (rt_kv_u32(kv, "stack.embed_dim", 1, 65536, &E, e)) return -1;
        g->E = E;
        if (E != C && (fl->tie || fl->resid_mix || br))
            return rt_err(e, "stack.embed_dim %u != stack.dim %u needs an untied head, no resid_mix and no BigramHash", E, C);
    }
    g->W = g->E > C ? g->E : C;
    g->nenc = L / 2;
    g->nskip = fl->skips ? L / 2 : 0;
    return 0;
}

/* A layer's block kinds, as the key/values name them. */
static int layer_kinds(RtLayer *ly, const RtKvSet *kv, size_t i, int *shift, RtErr *e) {
    char key[64];
    const char *names[2];
    for (int r = 0; r < 2; r++) {
        snprintf(key, sizeof key, "layer.%zu.%s", i, r ? "channel" : "mixer");
        if (rt_kv_str(kv, key, &names[r], e)) return -1;
        const RtBlockKind *k = names[r][0] ? rt_block_kind_find(names[r]) : NULL;
        if (names[r][0] && !k) return rt_err(e, "layer %zu: block kind \"%s\" is not supported by this runtime", i, names[r]);
        if (k && k->role != r) return rt_err(e, "layer %zu: block kind %s is not a %s mixer", i, k->name, r ? "channel" : "token");
        if (r) ly->ck = k;
        else ly->mk = k;
    }
    snprintf(key, sizeof key, "layer.%zu.shift", i);
    if (rt_kv_bool(kv, key, shift, e)) return -1;
    if (*shift && !ly->mk) return rt_err(e, "layer %zu: a token shift without a token mixer", i);
    return 0;
}

/* One layer: its kinds' tensors and keys, and the scaffold's vectors. */
static int bind_layer(TrtModel *m, RtStack *g, const StackFlags *fl, const RtKvSet *kv, size_t i, size_t *used, RtErr *e) {
    RtLayer *ly = &g->layers[i];
    int shift;
    if (layer_kinds(ly, kv, i, &shift, e)) return -1;
    int wide = i == 0 && g->E != g->C;
    if (wide && (!ly->mk || !kind_widens(ly->mk) || shift))
        return rt_err(e, "layer 0: stack.embed_dim %zu != stack.dim %zu needs a widening token mixer without token shift", g->E, g->C);
    RtDims d = {g->C, g->V, g->seq_len, g->eps, wide ? g->E : g->C};
    if (ly->mk && ly->mk->bind(m, kv, &d, i, &ly->mi, used, e)) return -1;
    if (ly->ck && ly->ck->bind(m, kv, &d, i, &ly->ci, used, e)) return -1;
    char name[64];
    struct {
        int want;
        const char *nm;
        size_t rows;
        float **dst;
    } vecs[] = {{fl->branch_scales && ly->mk, "attn_scale", 1, &ly->attn_scale},
                {fl->branch_scales && ly->ck, "mlp_scale", 1, &ly->mlp_scale},
                {fl->resid_mix, "resid_mix", 2, &ly->resid_mix},
                {shift, "token_shift_mu", 1, &ly->mu},
                {fl->norm_gain && ly->mk && !wide, "attn_norm.weight", 1, &ly->mnorm},
                {fl->norm_gain && ly->ck, "ffn_norm.weight", 1, &ly->cnorm}};
    for (size_t k = 0; k < sizeof vecs / sizeof vecs[0]; k++) {
        if (!vecs[k].want) continue;
        snprintf(name, sizeof name, "blocks.%zu.%s", i, vecs[k].nm);
        if (rt_want_vec(m, name, vecs[k].rows, g->C, vecs[k].dst, used, e)) return -1;
    }
    /* mu = sigmoid(m), as the trainer's op_sigmoid computes it every forward */
    if (ly->mu)
        for (size_t c = 0; c < g->C; c++) ly->mu[c] = fast_sigmoidf(ly->mu[c]);
    return 0;
}

/* Embedding, BigramHash, skips, final norm, head. */
static int bind_trunk(TrtModel *m, RtStack *g, const StackFlags *fl, size_t *used, RtErr *e) {
    const RtTensor *t;
    if (rt_want_tensor(m, "tok_emb.weight", g->V, g->E, &g->tok_emb, used, e)) return -1;
    g->head = g->tok_emb;
    if (!fl->tie && rt_want_tensor(m, "lm_head.weight", g->V, g->C, &g->head, used, e)) return -1;
    if (g->brows) {
        if (rt_want_tensor(m, "bigram.embed.weight", g->brows, g->bdim, &g->bg_embed, used, e) ||
            rt_want_tensor(m, "bigram.proj.weight", g->C, g->bdim, &g->bg_proj, used, e) ||
            rt_want_tensor(m, "bigram.scale", 1, 1, &t, used, e))
            return -1;
        rt_tensor_row_float(t, 0, &g->bg_scale);
    }
    if (g->nskip && rt_want_vec(m, "skip_weights", g->nskip, g->C, &g->skip_w, used, e)) return -1;
    if (fl->norm_gain && rt_want_vec(m, "norm.weight", 1, g->C, &g->norm_w, used, e)) return -1;
    return 0;
}

/* The RoPE table every attention layer shares (their keys are the model's). */
static int bind_rope(RtStack *g, RtErr *e) {
    for (size_t i = 0; i < g->L; i++) {
        const RtLayer *ly = &g->layers[i];
        float base = 0;
        size_t D = ly->mk && ly->mk->rope ? ly->mk->rope(ly->mi, &base) : 0;
        if (!D) continue;
        if (g->rope_D && (D != g->rope_D || base != g->rope_base)) return rt_err(e, "layers rotate with different RoPE settings");
        g->rope_D = D;
        g->rope_base = base;
    }
    if (!g->rope_D) return 0;
    g->inv_freq = rt_alloc(g->rope_D / 2 * sizeof(float));
    if (!g->inv_freq) return rt_err(e, "out of memory");
    rt_rope_inv_freq(g->inv_freq, g->rope_D, g->rope_base);
    return 0;
}

static void fill_info(TrtModel *m, const RtStack *g, const RtKvSet *kv) {
    const TernKv *h = rt_kv_find(kv, "attn.heads"), *gk = rt_kv_find(kv, "attn.kv_heads");
    const TernKv *mh = rt_kv_find(kv, "mlp.hidden"), *sh = rt_kv_find(kv, "swiglu.hidden");
    rt_info_fill(m, m->arch, g->V, g->L, g->C, h ? h->u : 0, gk ? gk->u : 0, mh ? mh->u : sh ? sh->u : 0, g->seq_len,
                 g->eval_seq_len);
}

static int decode_kv(RtKvSet *kv, const uint8_t *p, size_t len, RtErr *e) {
    memset(kv, 0, sizeof *kv);
    uint32_t n = len >= 4 ? tern_rd_u32(p) : 0;
    if (n > TERN_KV_MAX) return rt_err(e, "hyper-parameters: %u entries (at most %u; corrupt)", n, TERN_KV_MAX);
    kv->kv = rt_alloc((n ? n : 1) * sizeof(TernKv));
    kv->seen = rt_alloc(n ? n : 1);
    if (!kv->kv || !kv->seen) return rt_err(e, "out of memory");
    const char *why = "";
    if (tern_kv_decode(p, len, kv->kv, n, &kv->n, &why)) return rt_err(e, "hyper-parameters: %s (corrupt)", why);
    return 0;
}

int rt_stack_bind(TrtModel *m, const uint8_t *kvp, size_t kv_size, RtErr *e) {
    RtKvSet kv;
    StackFlags fl = {0};
    RtStack *g = calloc(1, sizeof *g);
    m->stack = g;
    int rc = g ? decode_kv(&kv, kvp, kv_size, e) : rt_err(e, "out of memory");
    size_t used = 0;
    if (!rc) rc = stack_keys(m, g, &kv, &fl, e);
    if (!rc && !(g->layers = calloc(g->L, sizeof(RtLayer)))) rc = rt_err(e, "out of memory");
    for (size_t i = 0; i < g->L && !rc; i++) rc = bind_layer(m, g, &fl, &kv, i, &used, e);
    if (!rc) rc = bind_trunk(m, g, &fl, &used, e);
    if (!rc) rc = bind_rope(g, e);
    if (!rc) fill_info(m, g, &kv);
    for (size_t i = 0; i < kv.n && !rc; i++)
        if (!kv.seen[i]) rc = rt_err(e, "unknown hyper-parameter %s (an artifact of a newer tern?)", kv.kv[i].key);
    if (!rc && used != m->ntensors)
        rc = rt_err(e, "the artifact holds %zu tensors, its layers use %zu (unknown tensors)", m->ntensors, used);
    if (g) {
        rt_free(kv.kv);
        rt_free(kv.seen);
    }
    if (rc) rt_stack_unbind(m);
    return rc;
}

/* ---------------------------------------------------------------- sessions */

void rt_stack_session_free(TrtSession *s) {
    RtStackState *st = s->state;
    if (!st) return;
    rt_free(st->state);
    rt_free(st->mem);
    rt_free(st->lin);
    free(st);
    s->state = NULL;
}

/* Each layer's decode state (its kinds' and its token-shift row), laid out one after the other
 * for a cache of cap positions: floats of layer i's mixer state, and of its token-shift row. */
static size_t mixer_floats(const RtLayer *ly, size_t cap, int f16) {
    return ly->mk && ly->mk->state_floats ? (ly->mk->state_floats(ly->mi, cap, f16) + 15) / 16 * 16 : 0;
}
static size_t shift_floats(const RtStack *g, const RtLayer *ly) { return ly->mu ? (g->C + 15) / 16 * 16 : 0; }

static size_t layout_state(const RtStack *g, size_t cap, int f16) {
    size_t off = 0;
    for (size_t i = 0; i < g->L; i++) off += mixer_floats(&g->layers[i], cap, f16) + shift_floats(g, &g->layers[i]);
    return off;
}

/* offset of layer `layer`'s mixer state in a state laid out for cap positions */
static size_t layer_offset(const RtStack *g, size_t layer, size_t cap, int f16) {
    size_t off = 0;
    for (size_t i = 0; i < layer; i++) off += mixer_floats(&g->layers[i], cap, f16) + shift_floats(g, &g->layers[i]);
    return off;
}

const float *rt_stack_mixer_state(const TrtSession *s, size_t layer, size_t *n) {
    const RtStack *g = s->m->stack;
    const RtStackState *st = s->state;
    *n = 0;
    if (layer >= g->L || !g->layers[layer].mk || !g->layers[layer].mk->state_floats) return NULL;
    const RtLayer *ly = &g->layers[layer];
    *n = ly->mk->state_floats(ly->mi, st->cap, s->kv_f16);
    return st->state + layer_offset(g, layer, st->cap, s->kv_f16);
}

size_t rt_stack_state_floats(const TrtSession *s, size_t cap) { return layout_state(s->m->stack, cap, s->kv_f16); }

size_t rt_stack_cache_cap(const TrtSession *s) { return ((const RtStackState *)s->state)->cap; }

size_t rt_stack_cap_for(const TrtSession *s, size_t npos) {
    size_t cap = RT_KV_FIRST;
    while (cap < npos && cap < s->max_ctx) cap *= 2;
    return cap < s->max_ctx ? cap : s->max_ctx;
}

void rt_stack_state_copy(const TrtSession *s, void *dst, size_t dst_cap, const void *src, size_t src_cap, size_t npos) {
    const RtStack *g = s->m->stack;
    uint8_t *d = dst;
    const uint8_t *c = src;
    for (size_t i = 0; i < g->L; i++) {
        const RtLayer *ly = &g->layers[i];
        size_t md = mixer_floats(ly, dst_cap, s->kv_f16), ms = mixer_floats(ly, src_cap, s->kv_f16), sh = shift_floats(g, ly);
        if (md && ly->mk->state_move) ly->mk->state_move(ly->mi, d, dst_cap, c, src_cap, npos, s->kv_f16);
        else if (md) memcpy(d, c, md * sizeof(float)); /* md == ms: the state does not depend on cap */
        d += md * sizeof(float);
        c += ms * sizeof(float);
        memcpy(d, c, sh * sizeof(float));
        d += sh * sizeof(float);
        c += sh * sizeof(float);
    }
}

/* Growth: a new state of the larger capacity, the positions so far copied over, the old freed
 * (a doubling, so a stream of single tokens reallocates log2(max_ctx / RT_KV_FIRST) times). */
int rt_stack_reserve(TrtSession *s, size_t npos, RtErr *e) {
    RtStackState *st = s->state;
    if (npos <= st->cap) return 0;
    size_t cap = rt_stack_cap_for(s, npos), n = layout_state(s->m->stack, cap, s->kv_f16);
    float *ns = rt_alloc((n ? n : 1) * sizeof(float));
    if (!ns) return rt_err(e, "out of memory growing the KV cache to %zu positions (%zu bytes)", cap, n * sizeof(float));
    rt_stack_state_copy(s, ns, cap, st->state, st->cap, s->n_past);
    rt_free(st->state);
    st->state = ns;
    st->nstate = n;
    st->cap = cap;
    return 0;
}

/* Scratch: the widest kind's, and the rt_linear scratch for the widest input. */
static void kind_needs(const RtStack *g, size_t P, size_t T, int nt, size_t *scratch, size_t *cols) {
    *scratch = 0;
    *cols = g->C > g->bdim ? g->C : g->bdim;
    for (size_t i = 0; i < g->L; i++) {
        const RtLayer *ly = &g->layers[i];
        const RtBlockKind *k2[2] = {ly->mk, ly->ck};
        const void *in2[2] = {ly->mi, ly->ci};
        for (int r = 0; r < 2; r++) {
            if (!k2[r]) continue;
            size_t sc = k2[r]->scratch_floats(in2[r], P, T, nt), mc = k2[r]->max_cols(in2[r]);
            *scratch = sc > *scratch ? sc : *scratch;
            *cols = mc > *cols ? mc : *cols;
        }
    }
}

int rt_stack_session_init(TrtSession *s, RtErr *e) {
    const RtStack *g = s->m->stack;
    RtStackState *st = calloc(1, sizeof *st);
    if (!st) return rt_err(e, "out of memory");
    s->state = st;
    size_t P = RT_CHUNK, C = g->C, W = g->W, T = s->max_ctx, nt = (size_t)s->threads, kscr, cmax;
    st->P = P;
    st->cap = rt_stack_cap_for(s, 1);
    size_t nstate = st->nstate = layout_state(g, st->cap, s->kv_f16);
    kind_needs(g, P, T, (int)nt, &kscr, &cmax);
    size_t sizes[] = {P * W, P * W, P * C, P * C, P * C, g->nenc * P * C + 1, C, P * g->bdim + 1, P * C,
                      P * g->rope_D / 2 + 1, P * g->rope_D / 2 + 1, kscr + 1};
    float **dst[] = {&st->x, &st->x0, &st->h, &st->y, &st->hs, &st->skips, &st->hlast, &st->bge, &st->bgp, &st->cosb, &st->sinb,
                     &st->kscratch};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += (sizes[i] + 15) / 16 * 16;
    st->state = rt_alloc((nstate ? nstate : 1) * sizeof(float));
    st->mem = rt_alloc(total * sizeof(float));
    st->lin = rt_alloc(rt_linear_scratch_bytes(P, cmax, (int)nt));
    if (!st->state || !st->mem || !st->lin) {
        rt_stack_session_free(s);
        return rt_err(e, "out of memory for a session (decode state %zu floats)", nstate);
    }
    float *p = st->mem;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = p;
        p += (sizes[i] + 15) / 16 * 16;
    }
    return 0;
}

float *rt_stack_state(TrtSession *s, size_t *nfloats, int32_t **prev_tok) {
    RtStackState *st = s->state;
    *nfloats = st->nstate;
    *prev_tok = &st->prev_tok;
    return st->state;
}

int rt_stack_position_free(const TrtModel *m) {
    const RtStack *g = m->stack;
    for (size_t i = 0; i < g->L; i++)
        if (g->layers[i].mk && !kind_position_free(g->layers[i].mk)) return 0;
    return 1;
}


/* ---------------------------------------------------------------- forward */

/* h'_t = mu h_t + (1 - mu) h_{t-1}, h_{-1} = h_0 (the trainer's op_token_shift); the previous
 * chunk's last row carries across chunks */
static void token_shift(const float *mu, float *out, const float *h, float *hprev, size_t p0, size_t n, size_t C) {
    for (size_t i = 0; i < n; i++) {
        const float *xt = h + i * C, *xp = i ? xt - C : (p0 == 0 ? xt : hprev);
        float *o = out + i * C;
        for (size_t c = 0; c < C; c++) o[c] = mu[c] * xt[c] + (1.0f - mu[c]) * xp[c];
    }
    memcpy(hprev, h + (n - 1) * C, C * sizeof(float));
}

/* x += s * y per channel (s NULL: x += y) */
static void residual_add(float *x, const float *s, const float *y, size_t n, size_t C) {
    if (s)
        for (size_t i = 0; i < n * C; i++) x[i] += s[i % C] * y[i];
    else
        for (size_t i = 0; i < n * C; i++) x[i] += y[i];
}

/* mstate: the layer's mixer state, then its token-shift row */
static void layer_forward(TrtSession *s, const RtLayer *ly, const RtFwd *f, float *mstate) {
    const RtStack *g = s->m->stack;
    RtStackState *st = s->state;
    size_t n = f->n, C = g->C;
    float *x = st->x;
    if (ly->resid_mix) {
        const float *m0 = ly->resid_mix, *m1 = ly->resid_mix + C;
        for (size_t i = 0; i < n * C; i++) x[i] = m0[i % C] * x[i] + m1[i % C] * st->x0[i];
    }
    if (ly->mk && g->E != C && ly == g->layers) {
        /* the widening first layer reads the embedding as it is: x = mixer(x) */
        ly->mk->forward(ly->mi, f, mstate, st->y, x);
        for (size_t i = 0; i < n * C; i++) x[i] = ly->attn_scale ? ly->attn_scale[i % C] * st->y[i] : st->y[i];
    } else if (ly->mk) {
        rt_rmsnorm(st->h, x, ly->mnorm, n, C, g->eps);
        const float *in = st->h;
        if (ly->mu) {
            token_shift(ly->mu, st->hs, st->h, mstate + mixer_floats(ly, f->cap, f->kv_f16), f->p0, n, C);
            in = st->hs;
        }
        ly->mk->forward(ly->mi, f, mstate, st->y, in);
        residual_add(x, ly->attn_scale, st->y, n, C);
    }
    if (ly->ck) {
        rt_rmsnorm(st->h, x, ly->cnorm, n, C, g->eps);
        ly->ck->forward(ly->ci, f, NULL, st->y, st->h);
        residual_add(x, ly->mlp_scale, st->y, n, C);
    }
}

/* x [n, C] = tok_emb rows (+ BigramHash), normed; x0 = x */
static void embed(TrtSession *s, const int32_t *ids, size_t n, size_t p0) {
    const RtStack *g = s->m->stack;
    RtStackState *st = s->state;
    size_t C = g->C, E = g->E;
    for (size_t i = 0; i < n; i++) rt_tensor_row_float(g->tok_emb, (size_t)ids[i], st->x + i * E);
    if (g->bg_embed) {
        /* BigramHash: scale * proj(table[bucket]); proj is a plain linear (float activations) */
        for (size_t i = 0; i < n; i++) {
            int32_t prev = i ? ids[i - 1] : st->prev_tok;
            rt_tensor_row_float(g->bg_embed, trn_bigram_bucket(ids[i], prev, p0 + i == 0, g->brows), st->bge + i * g->bdim);
        }
        rt_linear(&s->m->k, st->bgp, st->bge, n, g->bg_proj, 1, st->lin, s->threads);
        float f = g->bg_scale * 1.0f;
        for (size_t i = 0; i < n * C; i++) st->x[i] = st->x[i] + f * st->bgp[i];
    }
    st->prev_tok = ids[n - 1];
    if (g->emb_norm) rt_rmsnorm(st->x, st->x, NULL, n, E, g->eps);
    memcpy(st->x0, st->x, n * E * sizeof(float));
}

/* the head: all positions for evaluation, else only the last one. The head (tied or not)
 * multiplies float activations by its (fake-quantized) weight in QAT (model/lora.c model_head):
 * its act_bits never apply. */
static void head(TrtSession *s, size_t n, float *logits_all, int want_last) {
    const RtStack *g = s->m->stack;
    RtStackState *st = s->state;
    size_t C = g->C, V = g->V;
    if (logits_all) {
        rt_rmsnorm(st->h, st->x, g->norm_w, n, C, g->eps);
        rt_linear(&s->m->k, logits_all, st->h, n, g->head, 1, st->lin, s->threads);
        for (size_t i = 0; i < n; i++) rt_softcap(logits_all + i * V, V, g->softcap);
        if (want_last) memcpy(s->logits, logits_all + (n - 1) * V, V * sizeof(float));
    } else if (want_last) {
        rt_rmsnorm(st->hlast, st->x + (n - 1) * C, g->norm_w, 1, C, g->eps);
        rt_linear(&s->m->k, s->logits, st->hlast, 1, g->head, 1, st->lin, s->threads);
        rt_softcap(s->logits, V, g->softcap);
    }
}

/* one chunk of n <= P tokens at positions p0.. */
static void forward_chunk(TrtSession *s, const int32_t *ids, size_t n, size_t p0, float *logits_all, int want_last) {
    const RtStack *g = s->m->stack;
    RtStackState *st = s->state;
    size_t C = g->C;
    embed(s, ids, n, p0);
    if (g->rope_D) rt_rope_rows(st->cosb, st->sinb, g->inv_freq, g->rope_D / 2, p0, n);
    RtFwd f = {&s->m->k, p0, n, s->max_ctx, s->threads, g->eps, st->cosb, st->sinb, st->kscratch, st->lin, st->cap, s->kv_f16};
    size_t nstack = 0;
    float *mstate = st->state;
    for (size_t l = 0; l < g->L; l++) {
        if (l >= g->nenc && nstack) {
            const float *w = g->skip_w + (l - g->nenc) * C, *sk = st->skips + (--nstack) * n * C;
            for (size_t i = 0; i < n * C; i++) st->x[i] += w[i % C] * sk[i];
        }
        layer_forward(s, &g->layers[l], &f, mstate);
        mstate += mixer_floats(&g->layers[l], st->cap, s->kv_f16) + shift_floats(g, &g->layers[l]);
        if (l < g->nenc && g->nskip) memcpy(st->skips + (nstack++) * n * C, st->x, n * C * sizeof(float));
    }
    head(s, n, logits_all, want_last);
}

void rt_stack_forward(TrtSession *s, const int32_t *ids, size_t n, float *logits_all) {
    const RtStack *g = s->m->stack;
    RtStackState *st = s->state;
    for (size_t i0 = 0; i0 < n; i0 += st->P) {
        size_t c = n - i0 < st->P ? n - i0 : st->P;
        forward_chunk(s, ids + i0, c, s->n_past + i0, logits_all ? logits_all + i0 * g->V : NULL, i0 + c == n);
    }
}
