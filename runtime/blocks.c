/* blocks.c — what the runtime's architectures share, as model/blocks.c does for the trainer:
 * RMSNorm, RoPE angles, the softcap and the parameter-golf attention block with its KV cache
 *   x = m0 x + m1 x0; h = rmsnorm(x); q, k, v = h Wq, h Wk, h Wv; q, k RMS-normed per head,
 *   rotated (RoPE, half split), q *= q_gain[head]; causal GQA softmax(q k / sqrt(D)) v;
 *   [subln: rmsnorm]; x += attn_scale * proj(.); h = rmsnorm(x); m = act(fc h) (relu^2,
 *   leaky_relu(0.5)^2 or SwiGLU); [subln: rmsnorm]; x += mlp_scale * proj(m)
 * op for op as model/blocks.c attn_block_forward computes it. gpt.c stacks these blocks; trn.c
 * interleaves them with TRN blocks. */
#include <math.h>
#include <string.h>

#include "runtime/rt_internal.h"

void rt_rmsnorm(float *out, const float *in, size_t N, size_t C, float eps) {
    for (size_t r = 0; r < N; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        float ss = 0.0f;
        for (size_t c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        for (size_t c = 0; c < C; c++) y[c] = x[c] * s;
    }
}

void rt_rope_inv_freq(float *inv_freq, size_t D, float base) {
    /* exactly as kernels/attention.c rope_table_init computes them */
    for (size_t i = 0; i < D / 2; i++) inv_freq[i] = 1.0f / powf(base, (float)(2 * i) / (float)D);
}

void rt_rope_rows(float *cosb, float *sinb, const float *inv_freq, size_t half, size_t p0, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < half; j++) {
            /* as kernels/attention.c: the angle in float, cos/sin in double, stored as float */
            float f = (float)(p0 + i) * inv_freq[j];
            cosb[i * half + j] = (float)cos((double)f);
            sinb[i * half + j] = (float)sin((double)f);
        }
}

void rt_softcap(float *z, size_t V, float cap) {
    if (cap <= 0) return;
    float inv = 1.0f / cap;
    for (size_t i = 0; i < V; i++) z[i] = cap * tanhf(z[i] * inv);
}

/* in place on n tokens of nh heads of D: per-head RMSNorm, RoPE, optional per-head gain */
static void qk_prep(float *x, size_t n, size_t nh, size_t D, float eps, int norm, const float *cosb, const float *sinb,
                    const float *gain) {
    size_t half = D / 2;
    for (size_t i = 0; i < n; i++)
        for (size_t hh = 0; hh < nh; hh++) {
            float *v = x + (i * nh + hh) * D;
            if (norm) rt_rmsnorm(v, v, 1, D, eps);
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

static void attention(const RtKernels *k, const RtAttnCfg *c, const RtAttnBuf *b, const float *kc, const float *vc, size_t p0,
                      size_t n, size_t max_ctx, int threads) {
    size_t H = c->H, D = c->D, KV = c->KV, rep = c->H / c->G, C = c->C;
    float scale = 1.0f / sqrtf((float)D);
    size_t nblk = (max_ctx + 15) / 16;
    int nt = threads;
    if ((double)n * (double)H * (double)(p0 + n) * (double)D < 65536.0) nt = 1;
    (void)nt;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)
    for (size_t task = 0; task < n * H; task++) {
        size_t i = task / H, hh = task % H, kvh = hh / rep, p = p0 + i, len = p + 1;
        const float *q = b->q + i * C + hh * D;
        float *sc = b->scores + (size_t)RT_THREAD_ID() * max_ctx;
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
        k->weighted_rows(b->att + i * C + hh * D, sc, vc + kvh * D, len, KV, D);
    }
}

void rt_attn_block(const RtKernels *k, const RtAttnCfg *c, const RtAttnW *w, const RtAttnBuf *b, float *x, const float *x0,
                   float *kc, float *vc, size_t max_ctx, size_t p0, size_t n, int nt) {
    size_t C = c->C, KV = c->KV, Hd = c->hidden, D = c->D, T = max_ctx;
    float eps = c->eps;
    const float *m0 = w->resid_mix, *m1 = w->resid_mix + C;
    for (size_t i = 0; i < n * C; i++) x[i] = m0[i % C] * x[i] + m1[i % C] * x0[i];
    rt_rmsnorm(b->h, x, n, C, eps);
    rt_linear(k, b->q, b->h, n, w->c_q, 0, b->lin, nt);
    rt_linear(k, b->k, b->h, n, w->c_k, 0, b->lin, nt);
    rt_linear(k, b->v, b->h, n, w->c_v, 0, b->lin, nt);
    qk_prep(b->q, n, c->H, D, eps, !c->no_qk_norm, b->cosb, b->sinb, w->q_gain);
    qk_prep(b->k, n, c->G, D, eps, !c->no_qk_norm, b->cosb, b->sinb, NULL);
    size_t nblk = (T + 15) / 16;
    for (size_t i = 0; i < n; i++) {
        size_t p = p0 + i;
        for (size_t hh = 0; hh < c->G; hh++)
            for (size_t cc = 0; cc < D; cc++) kc[((hh * nblk + p / 16) * D + cc) * 16 + p % 16] = b->k[i * KV + hh * D + cc];
    }
    memcpy(vc + p0 * KV, b->v, n * KV * sizeof(float));
    attention(k, c, b, kc, vc, p0, n, T, nt);
    if (c->subln) rt_rmsnorm(b->att, b->att, n, C, eps);
    rt_linear(k, b->tmp, b->att, n, w->proj, 0, b->lin, nt);
    for (size_t i = 0; i < n * C; i++) x[i] += w->attn_scale[i % C] * b->tmp[i];
    rt_rmsnorm(b->h, x, n, C, eps);
    rt_linear(k, b->fc, b->h, n, w->fc, 0, b->lin, nt);
    if (c->mlp_act == TERN_ACT_SWIGLU) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < Hd; j++) {
                float gt = b->fc[i * 2 * Hd + j], up = b->fc[i * 2 * Hd + Hd + j];
                b->act[i * Hd + j] = gt / (1.0f + expf(-gt)) * up;
            }
    } else {
        float neg = c->mlp_act == TERN_ACT_LEAKY_RELU2 ? 0.5f : 0.0f;
        for (size_t i = 0; i < n * Hd; i++) {
            float v = b->fc[i], r = v > 0 ? v : neg * v;
            b->act[i] = r * r;
        }
    }
    if (c->subln) rt_rmsnorm(b->act, b->act, n, Hd, eps);
    rt_linear(k, b->tmp, b->act, n, w->mlp_proj, 0, b->lin, nt);
    for (size_t i = 0; i < n * C; i++) x[i] += w->mlp_scale[i % C] * b->tmp[i];
}
