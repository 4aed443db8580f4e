/* trn.c — the runtime's forward pass of the TRN hybrid (model/trn_hybrid.c; the Temporal
 * Resonance Network of openai/parameter-golf PR #669, HybridGPT with TRN blocks), op for op as
 * the trainer computes it at evaluation, with recurrent state and KV caches per session:
 *   x = rmsnorm(tok_emb[id] + scale * proj(bigram_table[hash(id_t, id_{t-1})])); x0 = x
 *   blocks by the layout string ('A': blocks.c's attention block; 'T': the TRN block below),
 *   with the U-Net skips of the GPT; logits = softcap(head(rmsnorm(x))).
 * TRN block (model/trn.h): x = m0 x + m1 x0; h = rmsnorm(x); h'_t = mu h_t + (1 - mu) h_{t-1}
 * (mu = sigmoid(token_shift_mu), h_{-1} = h_0); P = proj(h') + b; psi = W_phase(h') + b_phase;
 * F = trn_core(P, omega_base, psi, lambda); x += attn_scale * (res_scale * W_res F);
 * x += mlp_scale * down(silu(gate) * up), [gate | up] = gate_up(rmsnorm(x)).
 * trn_core is autodiff/ops_trn.c's forward (the exact numerics: the same fast exp / sigmoid /
 * tanh from kernels/fastmath.h, and copies of its softplus, rsqrt and sincos below), run one
 * position after the other with the state carried in the session:
 *   per TRN block, r (K complex oscillators: r_t = alpha r_{t-1} + (1 - alpha) A e^{i theta}),
 *   the previous position's rmsnorm(x) for the token shift; per session, the previous token for
 *   BigramHash. The position t (theta = omega ln(1 + t) + phi) is the session's position: a
 *   forward at position 0 starts every recurrence afresh (eval's windows, trt_session_reset).
 * Prefill runs in chunks of RT_TRN_CHUNK tokens through the batched linear kernels; the
 * recurrence is sequential in t (the trainer's default scan, kernels/scan.c SCAN_SEQUENTIAL:
 * r_0 = u_0, r_t = alpha_t r_{t-1} + u_t, the same float operations). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fastmath.h"
#include "runtime/rt_internal.h"

#define RT_TRN_CHUNK 64
#define TRN_PI 3.14159265358979323846f
#define OMEGA_LO 1e-4f
#define OMEGA_HI (TRN_PI - 1e-4f)

/* ---------------------------------------------------------------- the core's math
 * Copies of autodiff/ops_trn.c's log1p_unit, softplus_fast, rsqrt_fast, sincos_fast and
 * gate_chain (static there; the runtime compiles nothing from autodiff/). They must stay
 * identical: tests/unit/test_runtime_trn.c compares the runtime with the trainer's forward. */
static inline float log1p_unit(float y) {
    float w = y / (2.0f + y), w2 = w * w;
    float p = 1.0f / 13.0f;
    p = p * w2 + 1.0f / 11.0f;
    p = p * w2 + 1.0f / 9.0f;
    p = p * w2 + 1.0f / 7.0f;
    p = p * w2 + 1.0f / 5.0f;
    p = p * w2 + 1.0f / 3.0f;
    return 2.0f * w * (1.0f + w2 * p);
}

static inline float softplus_fast(float x) {
    float ax = x < 0 ? -x : x;
    return (x > 0 ? x : 0.0f) + log1p_unit(fast_expf(-ax));
}

static inline float rsqrt_fast(float x) {
    int32_t i;
    memcpy(&i, &x, sizeof i);
    i = 0x5f375a86 - (i >> 1);
    float y;
    memcpy(&y, &i, sizeof y);
    float hx = 0.5f * x;
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    return y;
}

static inline void sincos_fast(float x, float *sn, float *cs) {
    x = x > 5e4f ? 5e4f : (x < -5e4f ? -5e4f : x);
    float n = (x * 0.636619772367581343f + 12582912.0f) - 12582912.0f;
    float r = x - n * 1.5703125f;
    r = r - n * 4.837512969970703125e-4f;
    r = r - n * 7.54978995489188216e-8f;
    float r2 = r * r;
    float sp = ((-1.9515295891e-4f * r2 + 8.3321608736e-3f) * r2 - 1.6666654611e-1f) * r2 * r + r;
    float cp = ((2.443315711809948e-5f * r2 - 1.388731625493765e-3f) * r2 + 4.166664568298827e-2f) * r2 * r2 -
               0.5f * r2 + 1.0f;
    int q = (int)n;
    float s1 = (q & 1) ? cp : sp, c1 = (q & 1) ? sp : cp;
    *sn = (q & 2) ? -s1 : s1;
    *cs = ((q + 1) & 2) ? -c1 : c1;
}

/* The fast functions convert a float to int on the way (2^n, the quadrant): NaN there is
 * undefined behaviour, and a hostile artifact (huge scales) can make NaN activations. NaN -> 0
 * before them; finite and infinite arguments pass unchanged, so the numerics are the trainer's. */
static inline float nan0(float x) { return x == x ? x : 0.0f; }
static inline float sig(float x) { return fast_sigmoidf(nan0(x)); }

/* demodulate, erase, state norm, phase-coupled gate: the gated rho of one oscillator */
static inline void gate_rho(float rr, float ri, float c, float s, float e_raw, float psi, float lam, float *xr, float *xi) {
    float z_re = rr * c + ri * s, z_im = ri * c - rr * s;
    float beta = sig(e_raw);
    float v_re = (1.0f - beta) * z_re, v_im = z_im;
    float nrm2 = v_re * v_re + v_im * v_im + 1e-8f;
    float inv = nrm2 > 1.0f ? rsqrt_fast(nrm2) : 1.0f;
    float p_re = v_re * inv, p_im = v_im * inv;
    float rn = rsqrt_fast(p_re * p_re + p_im * p_im + 1e-6f);
    float sps, cps;
    sincos_fast(nan0(psi), &sps, &cps);
    float al = (p_re * cps + p_im * sps) * rn;
    float gate = sig(lam * al);
    *xr = gate * p_re;
    *xi = gate * p_im;
}

/* One position of trn_core for K oscillators: P [6K] = (a | o | p | g | q | e), psi [K], the
 * state r (re [K], im [K]) updated in place, features out [4K - 2]; xr, xi, go: K floats of
 * scratch. first: t == 0 (r_0 = u_0, as the scan's first step copies the drive). */
static void trn_core_step(float *out, float *rre, float *rim, const float *P, const float *psi, const float *ob, float lam,
                          float amax, float lt, int first, size_t K, float *xr, float *xi, float *go) {
#pragma omp simd
    for (size_t k = 0; k < K; k++) {
        float sp = softplus_fast(nan0(P[k])), A = sp < amax ? sp : amax;
        float om = TRN_PI * sig(P[K + k]) + ob[k];
        om = om < OMEGA_LO ? OMEGA_LO : (om > OMEGA_HI ? OMEGA_HI : om);
        float phi = TRN_PI * fast_tanhf(nan0(P[2 * K + k]));
        float a = sig(P[3 * K + k]);
        float s, co;
        sincos_fast(nan0(om * lt + phi), &s, &co);
        float drive = (1.0f - a) * A;
        float ur = drive * co, ui = drive * s;
        float nr = first ? ur : a * rre[k] + ur, ni = first ? ui : a * rim[k] + ui;
        rre[k] = nr;
        rim[k] = ni;
        float g = sig(P[4 * K + k]);
        gate_rho(nr, ni, co, s, P[5 * K + k], psi[k], lam, &xr[k], &xi[k]);
        go[k] = g;
        out[k] = g * xr[k];
        out[K + k] = g * xi[k];
    }
    /* neighbour cross products rho_k rho_{k+1}, gated by the mean of the two output gates */
    float *ocr = out + 2 * K, *oci = out + 3 * K - 1;
#pragma omp simd
    for (size_t j = 0; j < K - 1; j++) {
        float gb = 0.5f * (go[j] + go[j + 1]);
        ocr[j] = gb * (xr[j] * xr[j + 1] - xi[j] * xi[j + 1]);
        oci[j] = gb * (xr[j] * xi[j + 1] + xi[j] * xr[j + 1]);
    }
}

/* BigramHash bucket of token cur after prev (autodiff/ops_trn.c bigram_hash_indices, PR #669's
 * BigramHashEmbedding): (36313 cur XOR 27191 prev) mod (rows - 1) in int32 with wrap-around and
 * a floor modulo; rows - 1 at a window's first position. */
static size_t bigram_bucket(int32_t cur, int32_t prev, int first, size_t rows) {
    int32_t mod = (int32_t)(rows - 1);
    if (first || mod <= 0) return mod > 0 ? (size_t)mod : 0;
    uint32_t h = (36313u * (uint32_t)cur) ^ (27191u * (uint32_t)prev);
    int32_t v;
    memcpy(&v, &h, sizeof v);
    int32_t m = v % mod;
    return (size_t)(m < 0 ? m + mod : m);
}

/* ---------------------------------------------------------------- model */
typedef struct TrnBlockW {
    int attn;
    size_t idx;              /* among the blocks of its kind: KV cache or recurrent state */
    RtAttnW a;               /* attention blocks; attn_scale, mlp_scale, resid_mix for both kinds */
    const float *mu;         /* sigmoid(token_shift_mu) [C], NULL without token shift */
    const RtTensor *proj, *w_phase, *w_res, *gate_up, *down;
    const float *proj_b, *omega_base, *b_phase;
    float lambda, res_scale;
} TrnBlockW;

typedef struct RtTrn {
    TernTrnHparams h;
    size_t C, H, G, D, KV, hidden, Hs, K, F, Fp, L, nA, nT, nenc, nskip, V, brows, bdim;
    const RtTensor *tok_emb, *lm_head, *bg_embed, *bg_proj;
    float bg_scale;
    const float *skip_w;
    TrnBlockW *b;
    RtTensor *wres_pad;  /* per TRN block: W_res with rows padded to whole chunks (intN only) */
    uint8_t *pad_mem;
    float *vecs, *inv_freq;
} RtTrn;

typedef struct TrnState {
    size_t P;
    float *kc, *vc;      /* attention blocks' KV caches, as gpt.c's */
    float *r;            /* per TRN block: [2, K] the oscillators' state (re row, im row) */
    float *hprev;        /* per TRN block: [C] the last position's rmsnorm(x), for the token shift */
    int32_t prev_tok;    /* the last token fed, for BigramHash */
    float *x, *x0, *hs, *pr, *psi, *f, *gu, *sw, *skips, *hlast, *bge, *bgp, *xr, *xi, *go;
    RtAttnBuf b;
    void *mem;
} TrnState;

static int check_hparams(const TernTrnHparams *h, const uint8_t *raw, size_t *nA, RtErr *e) {
    for (size_t i = 72; i < 128; i++)
        if (raw[i]) return rt_err(e, "TRN hyper-parameters: reserved byte %zu is not zero (corrupt)", i);
    size_t L = strnlen(h->layout, TERN_TRN_LAYOUT_MAX);
    for (size_t i = 128 + L; i < TERN_TRN_HPARAMS_SIZE; i++)
        if (raw[i]) return rt_err(e, "TRN hyper-parameters: byte %zu after the layout is not zero (corrupt)", i);
    if (h->layers < 1 || h->layers != L) return rt_err(e, "layers %u does not match the layout's %zu letters", h->layers, L);
    *nA = 0;
    for (size_t i = 0; i < L; i++) {
        if (h->layout[i] != 'T' && h->layout[i] != 'A') return rt_err(e, "layout letter %zu is not T or A (corrupt)", i);
        *nA += h->layout[i] == 'A';
    }
    if (h->vocab_size < 2 || h->vocab_size > (1u << 24)) return rt_err(e, "vocab_size %u out of range", h->vocab_size);
    if (h->dim < 1 || h->dim > 65536) return rt_err(e, "dim %u out of range", h->dim);
    if (*nA) {
        if (h->heads < 1 || h->dim % h->heads) return rt_err(e, "dim %u is not a multiple of heads %u", h->dim, h->heads);
        if ((h->dim / h->heads) % 2) return rt_err(e, "head dim %u must be even", h->dim / h->heads);
        if (h->kv_heads < 1 || h->heads % h->kv_heads) return rt_err(e, "heads %u is not a multiple of kv_heads %u", h->heads, h->kv_heads);
        if (h->mlp_hidden < 1 || h->mlp_hidden > (1u << 20)) return rt_err(e, "mlp_hidden %u out of range", h->mlp_hidden);
        if (!isfinite(h->rope_base) || h->rope_base <= 0) return rt_err(e, "rope_base must be finite and > 0");
    }
    if (h->mlp_act > TERN_ACT_LEAKY_RELU2) return rt_err(e, "mlp activation %u is not one of the TRN hybrid's", h->mlp_act);
    if (h->oscillators < 1 || h->oscillators > 65536) return rt_err(e, "oscillators %u out of range", h->oscillators);
    if (h->swiglu_hidden < 1 || h->swiglu_hidden > (1u << 20)) return rt_err(e, "swiglu_hidden %u out of range", h->swiglu_hidden);
    if (h->bigram_rows == 1 || h->bigram_rows > 0x7fffffffu) return rt_err(e, "bigram_rows %u out of range", h->bigram_rows);
    if (h->bigram_rows ? (h->bigram_dim < 1 || h->bigram_dim > 65536) : h->bigram_dim != 0)
        return rt_err(e, "bigram_dim %u does not fit bigram_rows %u", h->bigram_dim, h->bigram_rows);
    if (h->seq_len < 1 || h->seq_len > (1u << 20)) return rt_err(e, "seq_len %u out of range", h->seq_len);
    if (h->eval_seq_len > h->seq_len) return rt_err(e, "eval_seq_len %u exceeds seq_len %u", h->eval_seq_len, h->seq_len);
    if (h->flags & ~(uint32_t)TERN_TRN_KNOWN_FLAGS) return rt_err(e, "unknown TRN hybrid flags 0x%x", h->flags);
    if (!isfinite(h->softcap) || h->softcap < 0) return rt_err(e, "softcap must be finite and >= 0");
    if (!isfinite(h->norm_eps) || h->norm_eps <= 0) return rt_err(e, "norm_eps must be finite and > 0");
    if (!isfinite(h->amp_max) || h->amp_max <= 0) return rt_err(e, "amp_max must be finite and > 0");
    return 0;
}

static void trn_unbind(TrtModel *m) {
    RtTrn *g = m->arch_model;
    if (!g) return;
    free(g->b);
    free(g->wres_pad);
    rt_free(g->pad_mem);
    rt_free(g->vecs);
    rt_free(g->inv_freq);
    free(g);
    m->arch_model = NULL;
}

/* W_res has 4K - 2 columns, not a whole number of 128-column chunks, so an intN W_res would take
 * the element-wise path. Its input is ours (the features), so give it rows padded with code 0
 * to whole chunks (the same scales) and features padded with zeros: the same products. */
static void pad_rows(const RtTensor *src, RtTensor *dst, uint8_t *mem, size_t cols_pad, int8_t *codes) {
    *dst = *src;
    dst->cols = cols_pad;
    dst->row_bytes = tern_row_bytes(src->dtype, cols_pad);
    for (size_t r = 0; r < src->rows; r++) {
        tern_unpack_row(src->dtype, codes, src->data + r * src->row_bytes, src->cols);
        memset(codes + src->cols, 0, cols_pad - src->cols);
        tern_pack_row(src->dtype, mem + r * dst->row_bytes, codes, cols_pad);
    }
    dst->data = mem;
    rt_tensor_plan(dst);
}

static int trn_bind(TrtModel *m, const uint8_t *hp, size_t hp_size, RtErr *e) {
    if (hp_size != TERN_TRN_HPARAMS_SIZE)
        return rt_err(e, "TRN hybrid hyper-parameters are %zu bytes, expected %u", hp_size, TERN_TRN_HPARAMS_SIZE);
    RtTrn *g = calloc(1, sizeof *g);
    if (!g) return rt_err(e, "out of memory");
    m->arch_model = g;
    tern_trn_hparams_decode(hp, &g->h);
    const TernTrnHparams *h = &g->h;
    if (check_hparams(h, hp, &g->nA, e)) {
        trn_unbind(m);
        return -1;
    }
    g->C = h->dim;
    g->H = g->nA ? h->heads : 0;
    g->G = g->nA ? h->kv_heads : 0;
    g->D = g->nA ? g->C / g->H : 0;
    g->KV = g->G * g->D;
    g->hidden = h->mlp_hidden;
    g->Hs = h->swiglu_hidden;
    g->K = h->oscillators;
    g->F = 4 * g->K - 2;
    g->Fp = (g->F + TERN_CHUNK - 1) / TERN_CHUNK * TERN_CHUNK;
    g->L = h->layers;
    g->nT = g->L - g->nA;
    g->nenc = g->L / 2;
    g->nskip = (h->flags & TERN_TRN_SKIPS) ? g->L / 2 : 0;
    g->V = h->vocab_size;
    g->brows = h->bigram_rows;
    g->bdim = h->bigram_dim;
    size_t C = g->C, K = g->K, used = 0;
    int rc = 0;
    char name[TERN_NAME_MAX + 32];
    g->b = calloc(g->L, sizeof(TrnBlockW));
    g->wres_pad = calloc(g->nT ? g->nT : 1, sizeof(RtTensor));
    /* per block: attn_scale, mlp_scale (C each) + resid_mix (2C); attention: q_gain (H); TRN:
     * mu (C) + proj bias (6K) + omega_base (K) + W_phase bias (K) + lambda, res_scale; skips */
    size_t nvec = g->L * 4 * C + g->nA * g->H + g->nT * (C + 8 * K + 2) + g->nskip * C + 1;
    g->vecs = rt_alloc(nvec * sizeof(float));
    g->inv_freq = rt_alloc((g->D / 2 + 1) * sizeof(float));
    if (!g->b || !g->wres_pad || !g->vecs || !g->inv_freq) {
        trn_unbind(m);
        return rt_err(e, "out of memory");
    }
    float *vp = g->vecs;
    const RtTensor *t;
    rc = rt_want_tensor(m, "tok_emb.weight", g->V, C, &g->tok_emb, &used, e);
    if (!rc && !(h->flags & TERN_TRN_TIE_EMBEDDINGS)) rc = rt_want_tensor(m, "lm_head.weight", g->V, C, &g->lm_head, &used, e);
    if (!rc && g->brows) {
        rc = rt_want_tensor(m, "bigram.embed.weight", g->brows, g->bdim, &g->bg_embed, &used, e);
        if (!rc) rc = rt_want_tensor(m, "bigram.proj.weight", C, g->bdim, &g->bg_proj, &used, e);
        if (!rc) rc = rt_want_tensor(m, "bigram.scale", 1, 1, &t, &used, e);
        if (!rc) rt_tensor_row_float(t, 0, &g->bg_scale);
    }
    if (!rc && g->nskip) {
        rc = rt_want_tensor(m, "skip_weights", g->nskip, C, &t, &used, e);
        if (!rc) {
            for (size_t r = 0; r < g->nskip; r++) rt_tensor_row_float(t, r, vp + r * C);
            g->skip_w = vp;
            vp += g->nskip * C;
        }
    }
    size_t na = 0, nt = 0;
    for (size_t i = 0; i < g->L && !rc; i++) {
        TrnBlockW *b = &g->b[i];
        b->attn = h->layout[i] == 'A';
        b->idx = b->attn ? na++ : nt++;
#define W(dst, nm, rr, cc)                                            \
    if (!rc) {                                                        \
        snprintf(name, sizeof name, "blocks.%zu.%s", i, nm);          \
        rc = rt_want_tensor(m, name, rr, cc, &(dst), &used, e);                 \
    }
#define VEC(dst, nm, rr, cc)                                                                     \
    if (!rc) {                                                                                   \
        snprintf(name, sizeof name, "blocks.%zu.%s", i, nm);                                     \
        rc = rt_want_tensor(m, name, rr, cc, &t, &used, e);                                                \
        if (!rc) {                                                                               \
            for (size_t r = 0; r < (size_t)(rr); r++) rt_tensor_row_float(t, r, vp + r * (cc)); \
            (dst) = vp;                                                                          \
            vp += (size_t)(rr) * (cc);                                                           \
        }                                                                                        \
    }
        VEC(b->a.attn_scale, "attn_scale", 1, C);
        VEC(b->a.mlp_scale, "mlp_scale", 1, C);
        VEC(b->a.resid_mix, "resid_mix", 2, C);
        if (b->attn) {
            W(b->a.c_q, "attn.c_q.weight", C, C);
            W(b->a.c_k, "attn.c_k.weight", g->KV, C);
            W(b->a.c_v, "attn.c_v.weight", g->KV, C);
            W(b->a.proj, "attn.proj.weight", C, C);
            W(b->a.fc, "mlp.fc.weight", g->hidden, C);
            W(b->a.mlp_proj, "mlp.proj.weight", C, g->hidden);
            VEC(b->a.q_gain, "attn.q_gain", 1, g->H);
        } else {
            const float *v1 = NULL;
            if (h->flags & TERN_TRN_TOKEN_SHIFT) {
                VEC(b->mu, "token_shift_mu", 1, C);
                /* mu = sigmoid(m), as the trainer's op_sigmoid computes it every forward */
                if (!rc)
                    for (size_t c = 0; c < C; c++) ((float *)b->mu)[c] = fast_sigmoidf(b->mu[c]);
            }
            W(b->proj, "resonance.proj.proj.weight", 6 * K, C);
            VEC(b->proj_b, "resonance.proj.proj.bias", 1, 6 * K);
            VEC(b->omega_base, "resonance.proj.omega_base", 1, K);
            W(b->w_res, "resonance.W_res.weight", C, g->F);
            W(b->w_phase, "resonance.W_phase.weight", K, C);
            VEC(b->b_phase, "resonance.W_phase.bias", 1, K);
            VEC(v1, "resonance.lambda_pcg", 1, 1);
            if (!rc) b->lambda = v1[0];
            VEC(v1, "resonance.res_scale", 1, 1);
            if (!rc) b->res_scale = v1[0];
            W(b->gate_up, "gate_up.weight", 2 * g->Hs, C);
            W(b->down, "down.weight", C, g->Hs);
        }
#undef W
#undef VEC
    }
    if (!rc && used != m->ntensors) rc = rt_err(e, "the artifact holds %zu tensors, the TRN hybrid uses %zu", m->ntensors, used);
    /* W_res copies with whole-chunk rows where the kernels need them */
    size_t pad_bytes = 0;
    for (size_t i = 0; i < g->L && !rc; i++) {
        const RtTensor *w = g->b[i].w_res;
        if (!g->b[i].attn && !w->simd && tern_dtype_is_intn(w->dtype)) pad_bytes += w->rows * tern_row_bytes(w->dtype, g->Fp) + 64;
    }
    if (!rc && pad_bytes) {
        g->pad_mem = rt_alloc(pad_bytes);
        int8_t *codes = rt_alloc(g->Fp);
        if (!g->pad_mem || !codes) rc = rt_err(e, "out of memory");
        uint8_t *pm = g->pad_mem;
        for (size_t i = 0; i < g->L && !rc; i++) {
            TrnBlockW *b = &g->b[i];
            if (b->attn || b->w_res->simd || !tern_dtype_is_intn(b->w_res->dtype)) continue;
            RtTensor *pt = &g->wres_pad[b->idx];
            pad_rows(b->w_res, pt, pm, g->Fp, codes);
            pm += pt->rows * pt->row_bytes + 64;
            b->w_res = pt;
        }
        rt_free(codes);
    }
    if (rc) {
        trn_unbind(m);
        return -1;
    }
    if (g->nA) rt_rope_inv_freq(g->inv_freq, g->D, h->rope_base);
    rt_info_fill(m, "trn_hybrid", g->V, g->L, C, g->H, g->G, g->hidden, h->seq_len, h->eval_seq_len);
    return 0;
}

/* ---------------------------------------------------------------- sessions */
static void trn_session_free(TrtSession *s) {
    TrnState *st = s->state;
    if (!st) return;
    rt_free(st->kc);
    rt_free(st->vc);
    rt_free(st->mem);
    rt_free(st->b.lin);
    free(st);
    s->state = NULL;
}

static int trn_session_init(TrtSession *s, RtErr *e) {
    const RtTrn *g = s->m->arch_model;
    TrnState *st = calloc(1, sizeof *st);
    if (!st) return rt_err(e, "out of memory");
    s->state = st;
    size_t P = RT_TRN_CHUNK, C = g->C, K = g->K, KV = g->KV, T = s->max_ctx, nt = (size_t)s->threads;
    size_t kvn = 0, kn = 0;
    if (!rt_mul_ok(g->nA * T, KV, &kvn) || kvn > ((size_t)1 << 40) || !rt_mul_ok(g->nA * ((T + 15) / 16) * 16, KV, &kn)) {
        trn_session_free(s);
        return rt_err(e, "KV cache too large");
    }
    st->P = P;
    if (kvn) {
        st->kc = rt_alloc(kn * sizeof(float));
        st->vc = rt_alloc(kvn * sizeof(float));
    }
    size_t sizes[] = {P * C, P * C, P * C, P * 6 * K, P * K, P * g->Fp, P * 2 * g->Hs, P * g->Hs, g->nenc * P * C + 1, C,
                      P * g->bdim + 1, P * C, K, K, K, g->nT * 2 * K + 1, g->nT * C + 1,
                      /* the attention block's */
                      P * C, P * C, P * KV + 1, P * KV + 1, P * C, P * C, P * g->hidden + 1, P * g->hidden + 1, P * g->D / 2 + 1,
                      P * g->D / 2 + 1, nt * T};
    float **dst[] = {&st->x, &st->x0, &st->hs, &st->pr, &st->psi, &st->f, &st->gu, &st->sw, &st->skips, &st->hlast,
                     &st->bge, &st->bgp, &st->xr, &st->xi, &st->go, &st->r, &st->hprev,
                     &st->b.h, &st->b.q, &st->b.k, &st->b.v, &st->b.att, &st->b.tmp, &st->b.fc, &st->b.act, &st->b.cosb,
                     &st->b.sinb, &st->b.scores};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += (sizes[i] + 15) / 16 * 16;
    st->mem = rt_alloc(total * sizeof(float));
    size_t cmax = C;
    const size_t cols[] = {g->Fp, g->Hs, g->hidden, g->bdim};
    for (size_t i = 0; i < 4; i++) cmax = cols[i] > cmax ? cols[i] : cmax;
    st->b.lin = rt_alloc(rt_linear_scratch_bytes(P, cmax, (int)nt));
    if ((kvn && (!st->kc || !st->vc)) || !st->mem || !st->b.lin) {
        trn_session_free(s);
        return rt_err(e, "out of memory for a session (KV cache %zu floats)", 2 * kvn);
    }
    float *p = st->mem;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = p;
        p += (sizes[i] + 15) / 16 * 16;
    }
    return 0;
}

static void add_bias(float *y, const float *b, size_t n, size_t m) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++) y[i * m + j] += b[j];
}

/* one TRN block on n tokens at positions p0.. (x in place) */
static void trn_block(TrtSession *s, const TrnBlockW *b, size_t p0, size_t n) {
    const RtTrn *g = s->m->arch_model;
    const RtKernels *k = &s->m->k;
    TrnState *st = s->state;
    size_t C = g->C, K = g->K, Fp = g->Fp, Hs = g->Hs;
    float eps = g->h.norm_eps, *x = st->x, *h = st->b.h, *tmp = st->b.tmp;
    int nt = s->threads;
    const float *m0 = b->a.resid_mix, *m1 = b->a.resid_mix + C;
    for (size_t i = 0; i < n * C; i++) x[i] = m0[i % C] * x[i] + m1[i % C] * st->x0[i];
    rt_rmsnorm(h, x, n, C, eps);
    const float *in = h;
    float *hprev = st->hprev + b->idx * C;
    if (b->mu) {
        /* h'_t = mu h_t + (1 - mu) h_{t-1}, h_{-1} = h_0 (model's op_token_shift) */
        for (size_t i = 0; i < n; i++) {
            const float *xt = h + i * C, *xp = i ? xt - C : (p0 == 0 ? xt : hprev);
            float *o = st->hs + i * C;
            for (size_t c = 0; c < C; c++) o[c] = b->mu[c] * xt[c] + (1.0f - b->mu[c]) * xp[c];
        }
        memcpy(hprev, h + (n - 1) * C, C * sizeof(float));
        in = st->hs;
    }
    rt_linear(k, st->pr, in, n, b->proj, 0, st->b.lin, nt);
    add_bias(st->pr, b->proj_b, n, 6 * K);
    rt_linear(k, st->psi, in, n, b->w_phase, 0, st->b.lin, nt);
    add_bias(st->psi, b->b_phase, n, K);
    float *rre = st->r + b->idx * 2 * K, *rim = rre + K, amax = g->h.amp_max;
    for (size_t i = 0; i < n; i++) {
        size_t t = p0 + i;
        float *f = st->f + i * Fp;
        trn_core_step(f, rre, rim, st->pr + i * 6 * K, st->psi + i * K, b->omega_base, b->lambda, amax, (float)log1p((double)t),
                      t == 0, K, st->xr, st->xi, st->go);
        for (size_t j = g->F; j < Fp; j++) f[j] = 0.0f; /* the padding columns of W_res */
    }
    /* the readout, scaled as op_scale_by(W_res F, res_scale, w = 1) does, then the residual */
    if (Fp == g->F || b->w_res->cols == Fp) {
        rt_linear(k, tmp, st->f, n, b->w_res, 0, st->b.lin, nt);
    } else { /* a float / ternary W_res of 4K - 2 columns: pack the features densely */
        for (size_t i = 1; i < n; i++) memmove(st->f + i * g->F, st->f + i * Fp, g->F * sizeof(float));
        rt_linear(k, tmp, st->f, n, b->w_res, 0, st->b.lin, nt);
    }
    float rs = b->res_scale * 1.0f;
    for (size_t i = 0; i < n * C; i++) x[i] = x[i] + b->a.attn_scale[i % C] * (rs * tmp[i]);
    /* SwiGLU MLP: silu(gate) * up, as kernels/act.c swiglu_forward */
    rt_rmsnorm(h, x, n, C, eps);
    rt_linear(k, st->gu, h, n, b->gate_up, 0, st->b.lin, nt);
    for (size_t i = 0; i < n; i++) {
        const float *gt = st->gu + i * 2 * Hs, *up = gt + Hs;
        float *o = st->sw + i * Hs;
        for (size_t j = 0; j < Hs; j++) o[j] = gt[j] * sig(gt[j]) * up[j];
    }
    rt_linear(k, tmp, st->sw, n, b->down, 0, st->b.lin, nt);
    for (size_t i = 0; i < n * C; i++) x[i] += b->a.mlp_scale[i % C] * tmp[i];
}

/* one chunk of n <= P tokens at positions p0.. */
static void forward_chunk(TrtSession *s, const int32_t *ids, size_t n, size_t p0, float *logits_all, int want_last) {
    const RtTrn *g = s->m->arch_model;
    const RtKernels *k = &s->m->k;
    TrnState *st = s->state;
    size_t C = g->C, T = s->max_ctx, nblk = (T + 15) / 16;
    float eps = g->h.norm_eps;
    int nt = s->threads;
    for (size_t i = 0; i < n; i++) rt_tensor_row_float(g->tok_emb, (size_t)ids[i], st->x + i * C);
    if (g->bg_embed) {
        /* BigramHash: scale * proj(table[bucket]); proj is a plain linear (float activations) */
        for (size_t i = 0; i < n; i++) {
            int32_t prev = i ? ids[i - 1] : st->prev_tok;
            rt_tensor_row_float(g->bg_embed, bigram_bucket(ids[i], prev, p0 + i == 0, g->brows), st->bge + i * g->bdim);
        }
        rt_linear(k, st->bgp, st->bge, n, g->bg_proj, 1, st->b.lin, nt);
        float f = g->bg_scale * 1.0f;
        for (size_t i = 0; i < n * C; i++) st->x[i] = st->x[i] + f * st->bgp[i];
    }
    st->prev_tok = ids[n - 1];
    rt_rmsnorm(st->x, st->x, n, C, eps);
    memcpy(st->x0, st->x, n * C * sizeof(float));
    if (g->nA) rt_rope_rows(st->b.cosb, st->b.sinb, g->inv_freq, g->D / 2, p0, n);
    RtAttnCfg ac = {C, g->H, g->G, g->D, g->KV, g->hidden, g->h.mlp_act, 0, eps, 0};
    size_t nstack = 0;
    for (size_t l = 0; l < g->L; l++) {
        const TrnBlockW *b = &g->b[l];
        if (l >= g->nenc && nstack) {
            const float *w = g->skip_w + (l - g->nenc) * C, *sk = st->skips + (--nstack) * n * C;
            for (size_t i = 0; i < n * C; i++) st->x[i] += w[i % C] * sk[i];
        }
        if (b->attn)
            rt_attn_block(k, &ac, &b->a, &st->b, st->x, st->x0, st->kc + b->idx * g->G * nblk * g->D * 16, st->vc + b->idx * T * g->KV,
                          T, p0, n, nt);
        else
            trn_block(s, b, p0, n);
        if (l < g->nenc && g->nskip) memcpy(st->skips + (nstack++) * n * C, st->x, n * C * sizeof(float));
    }
    /* the head multiplies float activations (model/lora.c model_head): its act_bits never apply */
    const RtTensor *head = g->lm_head ? g->lm_head : g->tok_emb;
    if (logits_all) {
        rt_rmsnorm(st->b.h, st->x, n, C, eps);
        rt_linear(k, logits_all, st->b.h, n, head, 1, st->b.lin, nt);
        for (size_t i = 0; i < n; i++) rt_softcap(logits_all + i * g->V, g->V, g->h.softcap);
        if (want_last) memcpy(s->logits, logits_all + (n - 1) * g->V, g->V * sizeof(float));
    } else if (want_last) {
        rt_rmsnorm(st->hlast, st->x + (n - 1) * C, 1, C, eps);
        rt_linear(k, s->logits, st->hlast, 1, head, 1, st->b.lin, nt);
        rt_softcap(s->logits, g->V, g->h.softcap);
    }
}

static void trn_forward(TrtSession *s, const int32_t *ids, size_t n, float *logits_all) {
    const RtTrn *g = s->m->arch_model;
    TrnState *st = s->state;
    for (size_t i0 = 0; i0 < n; i0 += st->P) {
        size_t c = n - i0 < st->P ? n - i0 : st->P;
        forward_chunk(s, ids + i0, c, s->n_past + i0, logits_all ? logits_all + i0 * g->V : NULL, i0 + c == n);
    }
}

const RtArchOps rt_arch_trn = {TERN_ARCH_TRN_HYBRID, "trn_hybrid", trn_bind, trn_unbind, trn_session_init, trn_session_free,
                               trn_forward};
