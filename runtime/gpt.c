/* gpt.c — the runtime's forward pass of model/gpt.c (the parameter-golf baseline GPT), op for
 * op as the trainer computes it, with a KV cache:
 *   x = rmsnorm(tok_emb[id]); x0 = x
 *   block: x = m0 x + m1 x0; h = rmsnorm(x); q, k, v = h Wq, h Wk, h Wv; q, k RMS-normed per
 *     head, rotated (RoPE, half split), q *= q_gain[head]; causal GQA softmax(q k / sqrt(D)) v;
 *     [subln: rmsnorm]; x += attn_scale * proj(.); h = rmsnorm(x); m = act(fc h) (relu^2,
 *     leaky_relu(0.5)^2 or SwiGLU); [subln: rmsnorm]; x += mlp_scale * proj(m)
 *   U-Net skips: the first L/2 blocks push x, the next blocks add skip_weights[i] * pop() first.
 *   logits = head(rmsnorm(x)), then softcap * tanh(z / softcap).
 * Prefill runs in chunks of RT_GPT_CHUNK tokens through the batched linear kernels. Another
 * architecture (TRN hybrid) would get its own file with its own RtArchOps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_internal.h"

#define RT_GPT_CHUNK 64

typedef struct GptBlockW {
    const RtTensor *c_q, *c_k, *c_v, *proj, *fc, *mlp_proj;
    const float *q_gain, *attn_scale, *mlp_scale, *resid_mix;
} GptBlockW;

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
    float *x, *x0, *h, *q, *k, *v, *att, *tmp, *fc, *act, *skips, *cosb, *sinb, *scores, *hlast;
    void *lin;
    void *mem;
} GptState;

static const RtTensor *find(const TrtModel *m, const char *name) {
    for (size_t i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

static int want(const TrtModel *m, const char *name, size_t rows, size_t cols, const RtTensor **out, size_t *used, RtErr *e) {
    const RtTensor *t = find(m, name);
    if (!t) return rt_err(e, "tensor %s is missing", name);
    if (t->rows != rows || t->cols != cols)
        return rt_err(e, "tensor %s is %zu x %zu, the hyper-parameters need %zu x %zu", name, t->rows, t->cols, rows, cols);
    *out = t;
    (*used)++;
    return 0;
}

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
    rc = want(m, "tok_emb.weight", g->V, C, &g->tok_emb, &used, e);
    if (!rc && !(h->flags & TERN_GPT_TIE_EMBEDDINGS)) rc = want(m, "lm_head.weight", g->V, C, &g->lm_head, &used, e);
    if (!rc && g->nskip) {
        rc = want(m, "skip_weights", g->nskip, C, &t, &used, e);
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
        rc = want(m, name, rr, cc, &b->field, &used, e);           \
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
        rc = want(m, name, rr, cc, &t, &used, e);                               \
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
    /* RoPE frequencies exactly as kernels/attention.c rope_table_init computes them */
    for (size_t i = 0; i < g->D / 2; i++) g->inv_freq[i] = 1.0f / powf(h->rope_base, (float)(2 * i) / (float)g->D);
    TrtModelInfo *in = &m->info;
    in->arch = "gpt";
    in->vocab_size = g->V;
    in->layers = g->L;
    in->dim = C;
    in->heads = g->H;
    in->kv_heads = g->G;
    in->mlp_hidden = g->hidden;
    in->seq_len = h->seq_len;
    in->eval_seq_len = h->eval_seq_len ? h->eval_seq_len : h->seq_len;
    size_t params = 0;
    for (size_t i = 0; i < m->ntensors; i++) params += m->tensors[i].rows * m->tensors[i].cols;
    in->params = params;
    return 0;
}

/* ---------------------------------------------------------------- sessions */
static void gpt_session_free(TrtSession *s) {
    GptState *st = s->state;
    if (!st) return;
    rt_free(st->kc);
    rt_free(st->vc);
    rt_free(st->mem);
    rt_free(st->lin);
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
    st->lin = rt_alloc(rt_linear_scratch_bytes(P, cmax, (int)nt));
    if (!st->kc || !st->vc || !st->mem || !st->lin) {
        gpt_session_free(s);
        return rt_err(e, "out of memory for a session (KV cache %zu floats)", 2 * kvn);
    }
    float *p = st->mem;
    float **dst[] = {&st->x, &st->x0, &st->h, &st->q, &st->k, &st->v, &st->att, &st->tmp, &st->fc, &st->act,
                     &st->skips, &st->cosb, &st->sinb, &st->scores, &st->hlast};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = p;
        p += (sizes[i] + 15) / 16 * 16;
    }
    return 0;
}

static void rmsnorm(float *out, const float *in, size_t N, size_t C, float eps) {
    for (size_t r = 0; r < N; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        float ss = 0.0f;
        for (size_t c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        for (size_t c = 0; c < C; c++) y[c] = x[c] * s;
    }
}

/* in place on n tokens of nh heads of D: per-head RMSNorm, RoPE, optional per-head gain */
static void qk_prep(float *x, size_t n, size_t nh, size_t D, float eps, const float *cosb, const float *sinb, const float *gain) {
    size_t half = D / 2;
    for (size_t i = 0; i < n; i++)
        for (size_t hh = 0; hh < nh; hh++) {
            float *v = x + (i * nh + hh) * D;
            rmsnorm(v, v, 1, D, eps);
            const float *c = cosb + i * half, *s = sinb + i * half;
            for (size_t j = 0; j < half; j++) {
                float x1 = v[j], x2 = v[j + half];
                v[j] = x1 * c[j] + x2 * s[j];
                v[j + half] = -x1 * s[j] + x2 * c[j];
            }
            if (gain)
                for (size_t j = 0; j < D; j++) v[j] *= gain[hh];
        }
}

/* e^x for x <= 0 (softmax arguments), branch-free so the loop vectorizes: x log2(e) = n + f
 * with |f| <= 1/2, 2^f by its Taylor series to degree 7 (error < 1e-8 relative), times 2^n
 * built in the exponent bits; below -87 the result is 0. */
static inline float exp_neg(float x) {
    float t = x * 1.44269504088896341f;
    t = t > -126.0f ? (t < 127.0f ? t : 127.0f) : -126.0f; /* also maps NaN into range: no UB below */
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest integer */
    float f = (t - n) * 0.693147180559945f;
    float p = 1.0f / 5040.0f;
    p = p * f + 1.0f / 720.0f;
    p = p * f + 1.0f / 120.0f;
    p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : p * scale;
}

/* sum and max of n floats with 16 independent partials (a single float accumulator is a
 * latency chain the compiler may not reorder) */
static inline float sum16(const float *x, size_t n) {
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[i + j];
    for (; i < n; i++) acc[i % 16] += x[i];
    float s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

static inline float max16(const float *x, size_t n) {
    float acc[16];
    for (int j = 0; j < 16; j++) acc[j] = -INFINITY;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    for (; i < n; i++) acc[i % 16] = x[i] > acc[i % 16] ? x[i] : acc[i % 16];
    float m = -INFINITY;
    for (int j = 0; j < 16; j++) m = acc[j] > m ? acc[j] : m;
    return m;
}

static void attention(const RtKernels *k, const RtGpt *g, GptState *st, size_t layer, size_t p0, size_t n, size_t max_ctx,
                      int threads) {
    size_t H = g->H, D = g->D, KV = g->KV, rep = g->H / g->G, C = g->C;
    float scale = 1.0f / sqrtf((float)D);
    size_t nblk = (max_ctx + 15) / 16;
    const float *kc = st->kc + layer * g->G * nblk * D * 16, *vc = st->vc + layer * max_ctx * KV;
    int nt = threads;
    if ((double)n * (double)H * (double)(p0 + n) * (double)D < 65536.0) nt = 1;
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
    for (size_t task = 0; task < n * H; task++) {
        size_t i = task / H, hh = task % H, kvh = hh / rep, p = p0 + i, len = p + 1;
        const float *q = st->q + i * C + hh * D;
        float *sc = st->scores + (size_t)RT_THREAD_ID() * max_ctx;
        /* keys are cached in blocks of 16 positions, transposed within a block
         * ([head][block][dim][16]): the 16 scores of a block stay in registers while the head
         * dimension streams through one contiguous 4 KB run (no 4 KB-strided loads) */
        const float *kt = kc + kvh * nblk * D * 16;
        for (size_t j0 = 0; j0 < len; j0 += 16) {
            float blk[16];
            k->kblock_scores(blk, q, kt + (j0 / 16) * D * 16, D);
            size_t nj = len - j0 < 16 ? len - j0 : 16;
            for (size_t jj = 0; jj < nj; jj++) sc[j0 + jj] = blk[jj] * scale;
        }
        float mx = max16(sc, len);
        for (size_t j = 0; j < len; j++) sc[j] = exp_neg(sc[j] - mx);
        float inv = 1.0f / sum16(sc, len);
        for (size_t j = 0; j < len; j++) sc[j] *= inv; /* the probabilities, as the trainer forms them */
        k->weighted_rows(st->att + i * C + hh * D, sc, vc + kvh * D, len, KV, D);
    }
}

static void softcap_logits(float *z, size_t V, float cap) {
    if (cap <= 0) return;
    float inv = 1.0f / cap;
    for (size_t i = 0; i < V; i++) z[i] = cap * tanhf(z[i] * inv);
}

/* one chunk of n <= P tokens at positions p0.. */
static void forward_chunk(TrtSession *s, const int32_t *ids, size_t n, size_t p0, float *logits_all, int want_last) {
    const RtGpt *g = s->m->arch_model;
    const RtKernels *k = &s->m->k;
    GptState *st = s->state;
    size_t C = g->C, KV = g->KV, Hd = g->hidden, half = g->D / 2, T = s->max_ctx;
    float eps = g->h.norm_eps;
    int nt = s->threads;
    for (size_t i = 0; i < n; i++) rt_tensor_row_float(g->tok_emb, (size_t)ids[i], st->x + i * C);
    rmsnorm(st->x, st->x, n, C, eps);
    memcpy(st->x0, st->x, n * C * sizeof(float));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < half; j++) {
            /* as kernels/attention.c: the angle in float, cos/sin in double, stored as float */
            float f = (float)(p0 + i) * g->inv_freq[j];
            st->cosb[i * half + j] = (float)cos((double)f);
            st->sinb[i * half + j] = (float)sin((double)f);
        }
    size_t nstack = 0;
    for (size_t l = 0; l < g->L; l++) {
        const GptBlockW *b = &g->b[l];
        if (l >= g->nenc && nstack) {
            const float *w = g->skip_w + (l - g->nenc) * C, *sk = st->skips + (--nstack) * n * C;
            for (size_t i = 0; i < n * C; i++) st->x[i] += w[i % C] * sk[i];
        }
        const float *m0 = b->resid_mix, *m1 = b->resid_mix + C;
        for (size_t i = 0; i < n * C; i++) st->x[i] = m0[i % C] * st->x[i] + m1[i % C] * st->x0[i];
        rmsnorm(st->h, st->x, n, C, eps);
        rt_linear(k, st->q, st->h, n, b->c_q, 0, st->lin, nt);
        rt_linear(k, st->k, st->h, n, b->c_k, 0, st->lin, nt);
        rt_linear(k, st->v, st->h, n, b->c_v, 0, st->lin, nt);
        qk_prep(st->q, n, g->H, g->D, eps, st->cosb, st->sinb, b->q_gain);
        qk_prep(st->k, n, g->G, g->D, eps, st->cosb, st->sinb, NULL);
        size_t nblk = (T + 15) / 16, D = g->D;
        float *kc = st->kc + l * g->G * nblk * D * 16, *vc = st->vc + l * T * KV;
        for (size_t i = 0; i < n; i++) {
            size_t p = p0 + i;
            for (size_t hh = 0; hh < g->G; hh++)
                for (size_t c = 0; c < D; c++) kc[((hh * nblk + p / 16) * D + c) * 16 + p % 16] = st->k[i * KV + hh * D + c];
        }
        memcpy(vc + p0 * KV, st->v, n * KV * sizeof(float));
        attention(k, g, st, l, p0, n, T, nt);
        if (g->h.flags & TERN_GPT_SUBLN) rmsnorm(st->att, st->att, n, C, eps);
        rt_linear(k, st->tmp, st->att, n, b->proj, 0, st->lin, nt);
        for (size_t i = 0; i < n * C; i++) st->x[i] += b->attn_scale[i % C] * st->tmp[i];
        rmsnorm(st->h, st->x, n, C, eps);
        rt_linear(k, st->fc, st->h, n, b->fc, 0, st->lin, nt);
        if (g->h.mlp_act == TERN_ACT_SWIGLU) {
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < Hd; j++) {
                    float gt = st->fc[i * 2 * Hd + j], up = st->fc[i * 2 * Hd + Hd + j];
                    st->act[i * Hd + j] = gt / (1.0f + expf(-gt)) * up;
                }
        } else {
            float neg = g->h.mlp_act == TERN_ACT_LEAKY_RELU2 ? 0.5f : 0.0f;
            for (size_t i = 0; i < n * Hd; i++) {
                float v = st->fc[i], r = v > 0 ? v : neg * v;
                st->act[i] = r * r;
            }
        }
        if (g->h.flags & TERN_GPT_SUBLN) rmsnorm(st->act, st->act, n, Hd, eps);
        rt_linear(k, st->tmp, st->act, n, b->mlp_proj, 0, st->lin, nt);
        for (size_t i = 0; i < n * C; i++) st->x[i] += b->mlp_scale[i % C] * st->tmp[i];
        if (l < g->nenc && g->nskip) memcpy(st->skips + (nstack++) * n * C, st->x, n * C * sizeof(float));
    }
    /* the head: all positions for evaluation, else only the last one */
    const RtTensor *head = g->lm_head ? g->lm_head : g->tok_emb;
    /* the head (tied or not) multiplies float activations by its (fake-quantized) weight in
     * QAT (model/lora.c model_head): its act_bits never apply */
    const int float_head = 1;
    if (logits_all) {
        rmsnorm(st->h, st->x, n, C, eps);
        rt_linear(k, logits_all, st->h, n, head, float_head, st->lin, nt);
        for (size_t i = 0; i < n; i++) softcap_logits(logits_all + i * g->V, g->V, g->h.softcap);
        if (want_last) memcpy(s->logits, logits_all + (n - 1) * g->V, g->V * sizeof(float));
    } else if (want_last) {
        rmsnorm(st->hlast, st->x + (n - 1) * C, 1, C, eps);
        rt_linear(k, s->logits, st->hlast, 1, head, float_head, st->lin, nt);
        softcap_logits(s->logits, g->V, g->h.softcap);
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
