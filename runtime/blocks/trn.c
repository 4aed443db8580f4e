/* trn — the runtime's TRN oscillator layer (model/blocks/trn.c; openai/parameter-golf PR #669's
 * TemporalResonanceLayer), run one position after the other with the oscillators' state carried
 * in the session:
 *   P = proj(h) + b;  psi = W_phase(h) + b_phase;  F = trn_core(P, omega_base, psi, lambda);
 *   y = res_scale * W_res F
 * trn_core is the trainer's forward (autodiff/ops_trn.c) with the same scalar math
 * (kernels/trn_math.h); the recurrence is the trainer's sequential scan (kernels/scan.c
 * SCAN_SEQUENTIAL: r_0 = u_0, r_t = alpha_t r_{t-1} + u_t), so decode and prefill give the
 * trainer's logits. The position t (theta = omega ln(1 + t) + phi) is the session's: a forward
 * at position 0 starts the recurrence afresh. Keys: trn.oscillators, trn.amp_max.
 * W_res has 4K - 2 columns, not whole 128-column chunks: stored as intN it gets rows padded with
 * code 0 at bind (same scales), and the features are padded with zeros: the same products
 * through the SIMD kernels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/trn_math.h"
#include "runtime/rt_internal.h"

typedef struct RtTrn {
    size_t C, K, F, Fp; /* F = 4K - 2 features, Fp padded to whole chunks */
    float amp_max, lambda, res_scale;
    const RtTensor *proj, *w_phase, *w_res;
    float *proj_b, *omega_base, *b_phase;
    RtTensor wres_pad;  /* W_res with padded rows (intN only) */
    uint8_t *pad_mem;
} RtTrn;

/* One position for K oscillators: P [6K] = (a | o | p | g | q | e), psi [K], the state r (re [K],
 * im [K]) updated in place, features out [4K - 2]; w: 5K floats of scratch. first: t == 0
 * (r_0 = u_0, as the scan's first step copies the drive). */
static void trn_core_step(float *out, float *rre, float *rim, const float *P, const float *psi, const float *ob, float lam,
                          float amax, float lt, int first, size_t K, float *w) {
    float *cs = w, *sn = w + K;
#pragma omp simd
    for (size_t k = 0; k < K; k++) {
        TrnOsc o = trn_oscillator(P[k], P[K + k], P[2 * K + k], P[3 * K + k], ob[k], lt, amax, 1);
        rre[k] = first ? o.u_re : o.alpha * rre[k] + o.u_re;
        rim[k] = first ? o.u_im : o.alpha * rim[k] + o.u_im;
        cs[k] = o.cs;
        sn[k] = o.sn;
    }
    trn_readout(out, w + 2 * K, w + 3 * K, w + 4 * K, rre, rim, cs, sn, P, psi, lam, K, 1);
}

static void add_bias(float *y, const float *b, size_t n, size_t m) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++) y[i * m + j] += b[j];
}

/* scratch: pr [P, 6K], psi [P, K], f [P, Fp], w [5K]. state: r [2, K] (re row, im row). */
static void trn_forward(const void *inst, const RtFwd *fw, float *state, float *y, const float *h) {
    const RtTrn *a = inst;
    size_t n = fw->n, K = a->K, Fp = a->Fp, C = a->C;
    int nt = fw->threads;
    float *pr = fw->scratch, *psi = pr + n * 6 * K, *feat = psi + n * K, *w = feat + n * Fp;
    rt_linear(fw->k, pr, h, n, a->proj, 0, fw->lin, nt);
    add_bias(pr, a->proj_b, n, 6 * K);
    rt_linear(fw->k, psi, h, n, a->w_phase, 0, fw->lin, nt);
    add_bias(psi, a->b_phase, n, K);
    float *rre = state, *rim = state + K;
    for (size_t i = 0; i < n; i++) {
        size_t t = fw->p0 + i;
        float *f = feat + i * Fp;
        trn_core_step(f, rre, rim, pr + i * 6 * K, psi + i * K, a->omega_base, a->lambda, a->amp_max, (float)log1p((double)t),
                      t == 0, K, w);
        for (size_t j = a->F; j < Fp; j++) f[j] = 0.0f; /* the padding columns of W_res */
    }
    if (Fp != a->F && a->w_res->cols != Fp) /* a float / ternary W_res of 4K - 2 columns: dense features */
        for (size_t i = 1; i < n; i++) memmove(feat + i * a->F, feat + i * Fp, a->F * sizeof(float));
    rt_linear(fw->k, y, feat, n, a->w_res, 0, fw->lin, nt);
    /* the readout scaled as the trainer's op_scale_by(W_res F, res_scale, w = 1) */
    float rs = a->res_scale * 1.0f;
    for (size_t i = 0; i < n * C; i++) y[i] = rs * y[i];
}

static size_t trn_state(const void *inst, size_t cap, int kv_f16) { return 2 * ((const RtTrn *)inst)->K; }

static size_t trn_scratch(const void *inst, size_t P, size_t max_ctx, int threads) {
    const RtTrn *a = inst;
    return P * (7 * a->K + a->Fp) + 5 * a->K;
}

static size_t trn_max_cols(const void *inst) {
    const RtTrn *a = inst;
    return a->Fp > a->C ? a->Fp : a->C;
}

static void trn_unbind(void *inst) {
    RtTrn *a = inst;
    if (!a) return;
    rt_free(a->proj_b);
    rt_free(a->omega_base);
    rt_free(a->b_phase);
    rt_free(a->pad_mem);
    free(a);
}

/* W_res rows padded with code 0 to Fp columns where an intN W_res would miss the SIMD kernels */
static int pad_w_res(RtTrn *a, RtErr *e) {
    const RtTensor *src = a->w_res;
    if (src->simd || !tern_dtype_is_intn(src->dtype)) return 0;
    RtTensor *dst = &a->wres_pad;
    *dst = *src;
    dst->cols = a->Fp;
    dst->row_bytes = tern_row_bytes(src->dtype, a->Fp);
    a->pad_mem = rt_alloc(src->rows * dst->row_bytes + 64);
    int8_t *codes = rt_alloc(a->Fp);
    if (!a->pad_mem || !codes) {
        rt_free(codes);
        return rt_err(e, "out of memory");
    }
    for (size_t r = 0; r < src->rows; r++) {
        tern_unpack_row(src->dtype, codes, src->data + r * src->row_bytes, src->cols);
        memset(codes + src->cols, 0, a->Fp - src->cols);
        tern_pack_row(src->dtype, a->pad_mem + r * dst->row_bytes, codes, a->Fp);
    }
    rt_free(codes);
    dst->data = a->pad_mem;
    rt_tensor_plan(dst);
    a->w_res = dst;
    return 0;
}

static int trn_bind(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e) {
    RtTrn *a = calloc(1, sizeof *a);
    if (!a) return rt_err(e, "out of memory");
    *inst = a;
    uint32_t K;
    if (rt_kv_u32(kv, "trn.oscillators", 1, 65536, &K, e) || rt_kv_f32(kv, "trn.amp_max", &a->amp_max, e)) return -1;
    if (!(a->amp_max > 0)) return rt_err(e, "trn.amp_max must be > 0");
    a->C = d->C, a->K = K, a->F = 4 * a->K - 2, a->Fp = (a->F + TERN_CHUNK - 1) / TERN_CHUNK * TERN_CHUNK;
    char name[TERN_NAME_MAX + 48];
    float *v1 = NULL;
#define T(dst, nm, rr, cc) (snprintf(name, sizeof name, "blocks.%zu.resonance.%s", layer, nm), rt_want_tensor(m, name, rr, cc, &(dst), used, e))
#define V(dst, nm, cc) (snprintf(name, sizeof name, "blocks.%zu.resonance.%s", layer, nm), rt_want_vec(m, name, 1, cc, &(dst), used, e))
    int rc = T(a->proj, "proj.proj.weight", 6 * K, a->C) || V(a->proj_b, "proj.proj.bias", 6 * K) ||
             V(a->omega_base, "proj.omega_base", K) || T(a->w_res, "W_res.weight", a->C, a->F) ||
             T(a->w_phase, "W_phase.weight", K, a->C) || V(a->b_phase, "W_phase.bias", K);
    if (!rc && !(rc = V(v1, "lambda_pcg", 1))) a->lambda = v1[0];
    rt_free(v1);
    v1 = NULL;
    if (!rc && !(rc = V(v1, "res_scale", 1))) a->res_scale = v1[0];
    rt_free(v1);
#undef T
#undef V
    return rc ? -1 : pad_w_res(a, e);
}

const RtBlockKind rt_block_trn = {"trn", 0, trn_bind, trn_unbind, NULL, trn_state, trn_scratch, trn_max_cols, trn_forward, NULL};
