/* gpt.c — the runtime's forward pass of model/gpt.c (the parameter-golf baseline GPT), op for
 * op as the trainer computes it, with a KV cache:
 *   x = rmsnorm(tok_emb[id]); x0 = x
 *   block: x = m0 x + m1 x0; h = rmsnorm(x); q, k, v = h Wq, h Wk, h Wv; q, k RMS-normed per
 *     head, rotated (RoPE, half split), q *= q_gain[head]; causal GQA softmax(q k / sqrt(D)) v;
 *     [subln: rmsnorm]; x += attn_scale * proj(.); h = rmsnorm(x); m = act(fc h) (relu^2,
 *     leaky_relu(0.5)^2 or SwiGLU); [subln: rmsnorm]; x += mlp_scale * proj(m)
 *   U-Net skips: the first L/2 blocks push x, the next blocks add skip_weights[i] * pop() first.
 *   logits = head(rmsnorm(x)), then softcap * tanh(z / softcap).
 * Prefill runs in chunks of RT_GPT_CHUNK tokens through the batched linear kernels. The block
 * itself is blocks.c's rt_attn_block, shared with the TRN hybrid (trn.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_internal.h"

#define RT_GPT_CHUNK 64

typedef RtAttnW GptBlockW;

typedef struct RtGpt {
    TernGptHparams h;
    size_t C, H, G, D, KV, hidden, fc_rows, L, nenc, nskip, V;
    const RtTensor *tok_emb, *lm_head;
    const float *skip_w;
    GptBlockW *b;
    float *vecs;     /* float copies of the small per-channel tensors */
    float *inv_freq; /* RoPE, D/2 */
} RtGpt;

typedef struct GptState {
    size_t P;
    float *kc, *vc; /* keys [L][kv head][block of 16 positions][head dim][16], values [L][max_ctx][KV] */
    float *x, *x0, *skips, *hlast;
    RtAttnBuf b;
    void *mem;
} GptState;

static int check_hparams(const TernGptHparams *h, RtErr *e) {
    if (h->vocab_size < 2 || h->vocab_size > (1u << 24)) return rt_err(e, "vocab_size %u out of range", h->vocab_size);
    if (h->layers < 1 || h->layers > 256) return rt_err(e, "layers %u out of range [1, 256]", h->layers);
    if (h->dim < 1 || h->dim > 65536) return rt_err(e, "dim %u out of range", h->dim);
    if (h->heads < 1 || h->dim % h->heads) return rt_err(e, "dim %u is not a multiple of heads %u", h->dim, h->heads);
    if ((h->dim / h->heads) % 2) return rt_err(e, "head dim %u must be even", h->dim / h->heads);
    if (h->kv_heads < 1 || h->heads % h->kv_heads) return rt_err(e, "heads %u is not a multiple of kv_heads %u", h->heads, h->kv_heads);
    if (h->mlp_hidden < 1 || h->mlp_hidden > (1u << 20)) return rt_err(e, "mlp_hidden %u out of range", h->mlp_hidden);
    if (h->seq_len < 1 || h->seq_len > (1u << 20)) return rt_err(e, "seq_len %u out of range", h->seq_len);
    if (h->eval_seq_len > h->seq_len) return rt_err(e, "eval_seq_len %u exceeds seq_len %u", h->eval_seq_len, h->seq_len);
    if (h->mlp_act > TERN_ACT_SWIGLU) return rt_err(e, "unknown mlp activation %u", h->mlp_act);
    if (h->flags & ~(uint32_t)TERN_GPT_KNOWN_FLAGS) return rt_err(e, "unknown GPT flags 0x%x", h->flags);
    if (!isfinite(h->softcap) || h->softcap < 0) return rt_err(e, "softcap must be finite and >= 0");
    if (!isfinite(h->rope_base) || h->rope_base <= 0) return rt_err(e, "rope_base must be finite and > 0");
    if (!isfinite(h->norm_eps) || h->norm_eps <= 0) return rt_err(e, "norm_eps must be finite and > 0");
    return 0;
}

static void gpt_unbind(TrtModel *m) {
    RtGpt *g = m->arch_model;
    if (!g) return;
    free(g->b);
    rt_free(g->vecs);
    rt_free(g->inv_freq);
    free(g);
    m->arch_model = NULL;
}

static int gpt_bind(TrtModel *m, const uint8_t *hp, size_t hp_size, RtErr *e) {
    if (hp_size != TERN_GPT_HPARAMS_SIZE) return rt_err(e, "GPT hyper-parameters are %zu bytes, expected %u", hp_size, TERN_GPT_HPARAMS_SIZE);
    RtGpt *g = calloc(1, sizeof *g);
    if (!g) return rt_err(e, "out of memory");
    m->arch_model = g;
    tern_gpt_hparams_decode(hp, &g->h);
    for (size_t i = 52; i < TERN_GPT_HPARAMS_SIZE; i++)
        if (hp[i]) {
            gpt_unbind(m);
            return rt_err(e, "GPT hyper-parameters: reserved byte %zu is not zero (corrupt)", i);
        }
    const TernGptHparams *h = &g->h;
    if (check_hparams(h, e)) {
        gpt_unbind(m);
        return -1;
    }
    g->C = h->dim;
    g->H = h->heads;
    g->G = h->kv_heads;
    g->D = g->C / g->H;
    g->KV = g->G * g->D;
    g->hidden = h->mlp_hidden;
    g->fc_rows = h->mlp_act == TERN_ACT_SWIGLU ? 2 * g->hidden : g->hidden;
    g->L = h->layers;
    g->nenc = g->L / 2;
    g->nskip = (h->flags & TERN_GPT_SKIPS) ? g->L / 2 : 0;
    g->V = h->vocab_size;
    size_t C = g->C, used = 0;
    int rc = 0;
    char name[TERN_NAME_MAX + 16];
    g->b = calloc(g->L, sizeof(GptBlockW));
    /* per block: q_gain (H) + attn_scale, mlp_scale (C each) + resid_mix (2C); skips nskip C */
    size_t nvec = g->L * (g->H + 4 * C) + g->nskip * C;
    g->vecs = rt_alloc(nvec * sizeof(float));
    g->inv_freq = rt_alloc(g->D / 2 * sizeof(float));
    if (!g->b || !g->vecs || !g->inv_freq) {
        gpt_unbind(m);
        return rt_err(e, "out of memory");
    }
    float *vp = g->vecs;
    const RtTensor *t;
    rc = rt_want_tensor(m, "tok_emb.weight", g->V, C, &g->tok_emb, &used, e);
    if (!rc && !(h->flags & TERN_GPT_TIE_EMBEDDINGS)) rc = rt_want_tensor(m, "lm_head.weight", g->V, C, &g->lm_head, &used, e);
    if (!rc && g->nskip) {
        rc = rt_want_tensor(m, "skip_weights", g->nskip, C, &t, &used, e);
        if (!rc) {
            for (size_t r = 0; r < g->nskip; r++) rt_tensor_row_float(t, r, vp + r * C);
            g->skip_w = vp;
            vp += g->nskip * C;
        }
    }
    for (size_t i = 0; i < g->L && !rc; i++) {
        GptBlockW *b = &g->b[i];
#define W(field, nm, rr, cc)                                          \
    if (!rc) {                                                        \
        snprintf(name, sizeof name, "blocks.%zu.%s", i, nm);          \
        rc = rt_want_tensor(m, name, rr, cc, &b->field, &used, e);           \
    }
        W(c_q, "attn.c_q.weight", C, C);
        W(c_k, "attn.c_k.weight", g->KV, C);
        W(c_v, "attn.c_v.weight", g->KV, C);
        W(proj, "attn.proj.weight", C, C);
        W(fc, "mlp.fc.weight", g->fc_rows, C);
        W(mlp_proj, "mlp.proj.weight", C, g->hidden);
#undef W
#define VEC(field, nm, rr, cc)                                                     \
    if (!rc) {                                                                     \
        snprintf(name, sizeof name, "blocks.%zu.%s", i, nm);                       \
        rc = rt_want_tensor(m, name, rr, cc, &t, &used, e);                               \
        if (!rc) {                                                                 \
            for (size_t r = 0; r < (size_t)(rr); r++) rt_tensor_row_float(t, r, vp + r * (cc)); \
            b->field = vp;                                                         \
            vp += (size_t)(rr) * (cc);                                             \
        }                                                                          \
    }
        VEC(q_gain, "attn.q_gain", 1, g->H);
        VEC(attn_scale, "attn_scale", 1, C);
        VEC(mlp_scale, "mlp_scale", 1, C);
        VEC(resid_mix, "resid_mix", 2, C);
#undef VEC
    }
    if (!rc && used != m->ntensors) rc = rt_err(e, "the artifact holds %zu tensors, the GPT uses %zu", m->ntensors, used);
    if (rc) {
        gpt_unbind(m);
        return -1;
    }
    rt_rope_inv_freq(g->inv_freq, g->D, h->rope_base);
    rt_info_fill(m, "gpt", g->V, g->L, C, g->H, g->G, g->hidden, h->seq_len, h->eval_seq_len);
    return 0;
}

/* ---------------------------------------------------------------- sessions */
static void gpt_session_free(TrtSession *s) {
    GptState *st = s->state;
    if (!st) return;
    rt_free(st->kc);
    rt_free(st->vc);
    rt_free(st->mem);
    rt_free(st->b.lin);
    free(st);
    s->state = NULL;
}

static int gpt_session_init(TrtSession *s, RtErr *e) {
    const RtGpt *g = s->m->arch_model;
    GptState *st = calloc(1, sizeof *st);
    if (!st) return rt_err(e, "out of memory");
    s->state = st;
    size_t P = RT_GPT_CHUNK, C = g->C, KV = g->KV, T = s->max_ctx, nt = (size_t)s->threads;
    size_t kvn, kn;
    if (!rt_mul_ok(g->L * T, KV, &kvn) || kvn > ((size_t)1 << 40) || !rt_mul_ok(g->L * ((T + 15) / 16) * 16, KV, &kn)) {
        gpt_session_free(s);
        return rt_err(e, "KV cache too large");
    }
    st->P = P;
    st->kc = rt_alloc(kn * sizeof(float)); /* keys: whole blocks of 16 positions */
    st->vc = rt_alloc(kvn * sizeof(float));
    size_t sizes[] = {P * C, P * C, P * C, P * C, P * KV, P * KV, P * C, P * C, P * g->fc_rows, P * g->hidden,
                      g->nenc * P * C, P * g->D / 2, P * g->D / 2, nt * T, C};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += (sizes[i] + 15) / 16 * 16;
    st->mem = rt_alloc(total * sizeof(float));
    size_t cmax = C > g->hidden ? C : g->hidden;
    st->b.lin = rt_alloc(rt_linear_scratch_bytes(P, cmax, (int)nt));
    if (!st->kc || !st->vc || !st->mem || !st->b.lin) {
        gpt_session_free(s);
        return rt_err(e, "out of memory for a session (KV cache %zu floats)", 2 * kvn);
    }
    float *p = st->mem;
    float **dst[] = {&st->x, &st->x0, &st->b.h, &st->b.q, &st->b.k, &st->b.v, &st->b.att, &st->b.tmp, &st->b.fc, &st->b.act,
                     &st->skips, &st->b.cosb, &st->b.sinb, &st->b.scores, &st->hlast};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = p;
        p += (sizes[i] + 15) / 16 * 16;
    }
    return 0;
}

/* one chunk of n <= P tokens at positions p0.. */
static void forward_chunk(TrtSession *s, const int32_t *ids, size_t n, size_t p0, float *logits_all, int want_last) {
    const RtGpt *g = s->m->arch_model;
    const RtKernels *k = &s->m->k;
    GptState *st = s->state;
    size_t C = g->C, KV = g->KV, T = s->max_ctx, nblk = (T + 15) / 16;
    float eps = g->h.norm_eps;
    int nt = s->threads;
    RtAttnCfg ac = {C, g->H, g->G, g->D, KV, g->hidden, g->h.mlp_act, (g->h.flags & TERN_GPT_SUBLN) != 0, eps,
                    (g->h.flags & TERN_GPT_NO_QK_NORM) != 0};
    for (size_t i = 0; i < n; i++) rt_tensor_row_float(g->tok_emb, (size_t)ids[i], st->x + i * C);
    if (!(g->h.flags & TERN_GPT_NO_EMB_NORM)) rt_rmsnorm(st->x, st->x, n, C, eps);
    memcpy(st->x0, st->x, n * C * sizeof(float));
    rt_rope_rows(st->b.cosb, st->b.sinb, g->inv_freq, g->D / 2, p0, n);
    size_t nstack = 0;
    for (size_t l = 0; l < g->L; l++) {
        if (l >= g->nenc && nstack) {
            const float *w = g->skip_w + (l - g->nenc) * C, *sk = st->skips + (--nstack) * n * C;
            for (size_t i = 0; i < n * C; i++) st->x[i] += w[i % C] * sk[i];
        }
        rt_attn_block(k, &ac, &g->b[l], &st->b, st->x, st->x0, st->kc + l * g->G * nblk * g->D * 16, st->vc + l * T * KV, T, p0, n,
                      nt);
        if (l < g->nenc && g->nskip) memcpy(st->skips + (nstack++) * n * C, st->x, n * C * sizeof(float));
    }
    /* the head: all positions for evaluation, else only the last one */
    const RtTensor *head = g->lm_head ? g->lm_head : g->tok_emb;
    /* the head (tied or not) multiplies float activations by its (fake-quantized) weight in
     * QAT (model/lora.c model_head): its act_bits never apply */
    const int float_head = 1;
    if (logits_all) {
        rt_rmsnorm(st->b.h, st->x, n, C, eps);
        rt_linear(k, logits_all, st->b.h, n, head, float_head, st->b.lin, nt);
        for (size_t i = 0; i < n; i++) rt_softcap(logits_all + i * g->V, g->V, g->h.softcap);
        if (want_last) memcpy(s->logits, logits_all + (n - 1) * g->V, g->V * sizeof(float));
    } else if (want_last) {
        rt_rmsnorm(st->hlast, st->x + (n - 1) * C, 1, C, eps);
        rt_linear(k, s->logits, st->hlast, 1, head, float_head, st->b.lin, nt);
        rt_softcap(s->logits, g->V, g->h.softcap);
    }
}

static void gpt_forward(TrtSession *s, const int32_t *ids, size_t n, float *logits_all) {
    const RtGpt *g = s->m->arch_model;
    GptState *st = s->state;
    for (size_t i0 = 0; i0 < n; i0 += st->P) {
        size_t c = n - i0 < st->P ? n - i0 : st->P;
        forward_chunk(s, ids + i0, c, s->n_past + i0, logits_all ? logits_all + i0 * g->V : NULL, i0 + c == n);
    }
}

const RtArchOps rt_arch_gpt = {TERN_ARCH_GPT, "gpt", gpt_bind, gpt_unbind, gpt_session_init, gpt_session_free, gpt_forward};
