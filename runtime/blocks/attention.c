/* attention — the runtime's causal GQA self-attention with RoPE (model/blocks/attention.c), with
 * a KV cache per layer and session:
 *   q, k, v = h Wq, h Wk, h Wv;  [qk_norm: per-head RMSNorm];  RoPE (half split);  [q_gain];
 *   y = softmax(q k / sqrt(D)) v over positions 0..p;  [subln: rmsnorm];  out = y Wo
 * Keys: attn.heads, attn.kv_heads, attn.rope_base, attn.qk_norm, attn.q_gain, attn.subln.
 * The cache keeps keys in blocks of 16 positions, transposed within a block ([block][kv head]
 * [D][16]), so the 16 scores of a block accumulate in one register while the head dimension
 * streams through memory; values are [position][KV]. Both are position-major, so a cache of
 * cap positions is a prefix of a larger one: it grows (stack.c rt_stack_reserve) by copying
 * two prefixes. With kv_f16 both hold IEEE halves (rounded to nearest even), converted back to
 * floats a block of 16 positions at a time in the attention loop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/format.h"
#include "runtime/rt_internal.h"

typedef struct RtAttn {
    size_t C, H, G, D, KV;
    float rope_base;
    int qk_norm, subln;
    const RtTensor *wq, *wk, *wv, *wo;
    float *q_gain; /* [H] or NULL */
} RtAttn;

/* in place on n tokens of nh heads of D: per-head RMSNorm, RoPE, optional per-head gain */
static void qk_prep(float *x, size_t n, size_t nh, size_t D, float eps, int norm, const float *cosb, const float *sinb,
                    const float *gain) {
    size_t half = D / 2;
    for (size_t i = 0; i < n; i++)
        for (size_t hh = 0; hh < nh; hh++) {
            float *v = x + (i * nh + hh) * D;
            if (norm) rt_rmsnorm(v, v, NULL, 1, D, eps);
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

/* softmax of the scaled scores sc[0..len) in place, as the trainer forms the probabilities */
static void softmax_row(float *sc, size_t len) {
    float mx = max16(sc, len);
    for (size_t j = 0; j < len; j++) sc[j] = exp_neg(sc[j] - mx);
    float inv = 1.0f / sum16(sc, len);
    for (size_t j = 0; j < len; j++) sc[j] *= inv;
}

/* The cache of one layer and session: keys [cap blocks][G][D][16], values [cap][KV], floats or
 * halves. */
typedef struct KvView {
    const float *k, *v;
    const uint16_t *kh, *vh;
    size_t nblk;
} KvView;

/* fp32 cache: one query row against positions 0..len-1 */
static void attend_row_f32(const RtKernels *k, const RtAttn *a, float *o, const float *qi, float *sc, const KvView *c,
                           size_t kvh, size_t len, float scale) {
    size_t D = a->D, G = a->G;
    for (size_t j0 = 0; j0 < len; j0 += 16) {
        float blk[16];
        k->kblock_scores(blk, qi, c->k + ((j0 / 16) * G + kvh) * D * 16, D);
        size_t nj = len - j0 < 16 ? len - j0 : 16;
        for (size_t jj = 0; jj < nj; jj++) sc[j0 + jj] = blk[jj] * scale;
    }
    softmax_row(sc, len);
    k->weighted_rows(o, sc, c->v + kvh * D, len, a->KV, D);
}

/* fp16 cache: the same, each block of 16 keys and of 16 value rows converted to floats in
 * buf ([D][16] keys, then [16][D] values, then D partial outputs) first */
static void attend_row_f16(const RtKernels *k, const RtAttn *a, float *o, const float *qi, float *sc, const KvView *c,
                           size_t kvh, size_t len, float scale, float *buf) {
    size_t D = a->D, G = a->G, KV = a->KV;
    float *kb = buf, *vb = buf + 16 * D, *ob = vb + 16 * D;
    for (size_t j0 = 0; j0 < len; j0 += 16) {
        float blk[16];
        k->f16_to_f32(kb, c->kh + ((j0 / 16) * G + kvh) * D * 16, D * 16);
        k->kblock_scores(blk, qi, kb, D);
        size_t nj = len - j0 < 16 ? len - j0 : 16;
        for (size_t jj = 0; jj < nj; jj++) sc[j0 + jj] = blk[jj] * scale;
    }
    softmax_row(sc, len);
    for (size_t c0 = 0; c0 < D; c0++) o[c0] = 0.0f;
    for (size_t j0 = 0; j0 < len; j0 += 16) {
        size_t nj = len - j0 < 16 ? len - j0 : 16;
        for (size_t jj = 0; jj < nj; jj++) k->f16_to_f32(vb + jj * D, c->vh + (j0 + jj) * KV + kvh * D, D);
        k->weighted_rows(ob, sc + j0, vb, nj, D, D);
        for (size_t c0 = 0; c0 < D; c0++) o[c0] += ob[c0];
    }
}

/* softmax(q k / sqrt(D)) v for n queries at positions p0.. against the cached keys 0..p;
 * scores: [threads, max_ctx], then (fp16 cache) [threads, 33 D] conversion buffers */
static void attend(const RtKernels *k, const RtAttn *a, float *att, const float *q, float *scores, const KvView *c, size_t p0,
                   size_t n, size_t max_ctx, int f16, int threads) {
    size_t H = a->H, D = a->D, rep = a->H / a->G, C = a->C;
    float scale = 1.0f / sqrtf((float)D);
    int nt = threads;
    if ((double)n * (double)H * (double)(p0 + n) * (double)D < 65536.0) nt = 1;
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
    for (size_t task = 0; task < n * H; task++) {
        size_t i = task / H, hh = task % H, kvh = hh / rep, len = p0 + i + 1, tid = (size_t)RT_THREAD_ID();
        const float *qi = q + i * C + hh * D;
        float *sc = scores + tid * max_ctx, *o = att + i * C + hh * D;
        if (f16)
            attend_row_f16(k, a, o, qi, sc, c, kvh, len, scale, scores + (size_t)threads * max_ctx + tid * 33 * D);
        else
            attend_row_f32(k, a, o, qi, sc, c, kvh, len, scale);
    }
}

/* elements (floats or halves) of the keys of a cache of cap positions */
static size_t key_elems(const RtAttn *a, size_t cap) { return (cap + 15) / 16 * a->G * a->D * 16; }

/* key element of position p, kv head hh, channel cc */
static size_t key_index(const RtAttn *a, size_t p, size_t hh, size_t cc) { return ((p / 16 * a->G + hh) * a->D + cc) * 16 + p % 16; }

/* the new keys kk and values vv [n, KV] of positions p0.. into the cache */
static void cache_store(const RtAttn *a, const RtFwd *f, float *state, const float *kk, const float *vv) {
    size_t n = f->n, p0 = f->p0, KV = a->KV, D = a->D, ke = key_elems(a, f->cap);
    if (f->kv_f16) {
        uint16_t *kh = (uint16_t *)(void *)state, *vh = kh + ke;
        for (size_t i = 0; i < n; i++)
            for (size_t hh = 0; hh < a->G; hh++)
                for (size_t cc = 0; cc < D; cc++) kh[key_index(a, p0 + i, hh, cc)] = tern_f32_to_f16(kk[i * KV + hh * D + cc]);
        for (size_t i = 0; i < n * KV; i++) vh[p0 * KV + i] = tern_f32_to_f16(vv[i]);
        return;
    }
    float *kc = state, *vc = state + ke;
    for (size_t i = 0; i < n; i++)
        for (size_t hh = 0; hh < a->G; hh++)
            for (size_t cc = 0; cc < D; cc++) kc[key_index(a, p0 + i, hh, cc)] = kk[i * KV + hh * D + cc];
    memcpy(vc + p0 * KV, vv, n * KV * sizeof(float));
}

/* scratch: q, att [P, C]; k, v [P, KV]; scores [threads, max_ctx]; [threads, 33 D]. state: the
 * cache of f->cap positions (KvView). */
static void attn_forward(const void *inst, const RtFwd *f, float *state, float *y, const float *h) {
    const RtAttn *a = inst;
    const RtKernels *k = f->k;
    size_t n = f->n, C = a->C, KV = a->KV, D = a->D, ke = key_elems(a, f->cap);
    int nt = f->threads;
    float *q = f->scratch, *att = q + n * C, *kk = att + n * C, *vv = kk + n * KV, *scores = vv + n * KV;
    rt_linear(k, q, h, n, a->wq, 0, f->lin, nt);
    rt_linear(k, kk, h, n, a->wk, 0, f->lin, nt);
    rt_linear(k, vv, h, n, a->wv, 0, f->lin, nt);
    qk_prep(q, n, a->H, D, f->eps, a->qk_norm, f->cosb, f->sinb, a->q_gain);
    qk_prep(kk, n, a->G, D, f->eps, a->qk_norm, f->cosb, f->sinb, NULL);
    cache_store(a, f, state, kk, vv);
    KvView c = {0};
    c.nblk = (f->cap + 15) / 16;
    if (f->kv_f16) {
        c.kh = (const uint16_t *)(const void *)state;
        c.vh = c.kh + ke;
    } else {
        c.k = state;
        c.v = state + ke;
    }
    attend(k, a, att, q, scores, &c, f->p0, n, f->max_ctx, f->kv_f16, nt);
    if (a->subln) rt_rmsnorm(att, att, NULL, n, C, f->eps);
    rt_linear(k, y, att, n, a->wo, 0, f->lin, nt);
}

/* keys and values of cap positions: floats, or halves two to a float */
static size_t attn_state(const void *inst, size_t cap, int kv_f16) {
    const RtAttn *a = inst;
    size_t elems = key_elems(a, cap) + cap * a->KV;
    return kv_f16 ? (elems + 1) / 2 : elems;
}

/* the first npos positions: a prefix of the keys (whole blocks) and of the values */
static void attn_move(const void *inst, void *dst, size_t dst_cap, const void *src, size_t src_cap, size_t npos, int kv_f16) {
    const RtAttn *a = inst;
    size_t es = kv_f16 ? 2 : 4, kd = key_elems(a, dst_cap), ks = key_elems(a, src_cap), kn = key_elems(a, npos);
    if (kn > kd) kn = kd;
    memcpy(dst, src, kn * es);
    memcpy((uint8_t *)dst + kd * es, (const uint8_t *)src + ks * es, npos * a->KV * es);
}

static size_t attn_scratch(const void *inst, size_t P, size_t max_ctx, int threads) {
    const RtAttn *a = inst;
    return 2 * P * a->C + 2 * P * a->KV + (size_t)threads * (max_ctx + 33 * a->D);
}

static size_t attn_max_cols(const void *inst) { return ((const RtAttn *)inst)->C; }

static size_t attn_rope(const void *inst, float *base) {
    *base = ((const RtAttn *)inst)->rope_base;
    return ((const RtAttn *)inst)->D;
}

static void attn_unbind(void *inst) {
    RtAttn *a = inst;
    if (!a) return;
    rt_free(a->q_gain);
    free(a);
}

static int attn_keys(RtAttn *a, const RtKvSet *kv, const RtDims *d, RtErr *e) {
    uint32_t H, G;
    int qg;
    if (rt_kv_u32(kv, "attn.heads", 1, 65536, &H, e) || rt_kv_u32(kv, "attn.kv_heads", 1, 65536, &G, e) ||
        rt_kv_f32(kv, "attn.rope_base", &a->rope_base, e) || rt_kv_bool(kv, "attn.qk_norm", &a->qk_norm, e) ||
        rt_kv_bool(kv, "attn.q_gain", &qg, e) || rt_kv_bool(kv, "attn.subln", &a->subln, e))
        return -1;
    if (d->C % H) return rt_err(e, "dim %zu is not a multiple of attn.heads %u", d->C, H);
    if ((d->C / H) % 2) return rt_err(e, "head dim %zu must be even", d->C / H);
    if (H % G) return rt_err(e, "attn.heads %u is not a multiple of attn.kv_heads %u", H, G);
    if (!(a->rope_base > 0)) return rt_err(e, "attn.rope_base must be > 0");
    a->C = d->C, a->H = H, a->G = G, a->D = d->C / H, a->KV = G * a->D;
    return qg; /* 1: the layer has q gains */
}

static int attn_bind(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e) {
    RtAttn *a = calloc(1, sizeof *a);
    if (!a) return rt_err(e, "out of memory");
    *inst = a;
    int qg = attn_keys(a, kv, d, e);
    if (qg < 0) return -1;
    char name[TERN_NAME_MAX + 32];
    const char *nm[4] = {"attn.c_q.weight", "attn.c_k.weight", "attn.c_v.weight", "attn.proj.weight"};
    const RtTensor **dst[4] = {&a->wq, &a->wk, &a->wv, &a->wo};
    size_t rows[4] = {a->C, a->KV, a->KV, a->C};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "blocks.%zu.%s", layer, nm[i]);
        if (rt_want_tensor(m, name, rows[i], a->C, dst[i], used, e)) return -1;
    }
    if (qg) {
        snprintf(name, sizeof name, "blocks.%zu.attn.q_gain", layer);
        if (rt_want_vec(m, name, 1, a->H, &a->q_gain, used, e)) return -1;
    }
    return 0;
}

const RtBlockKind rt_block_attention = {"attention", 0, attn_bind, attn_unbind, attn_rope, attn_state, attn_scratch, attn_max_cols,
                                        attn_forward, attn_move};
