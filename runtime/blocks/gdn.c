/* gdn — the runtime's Gated DeltaNet token mixer (model/blocks/gdn.c; Yang et al. 2024, arXiv
 * 2412.06464, the layer of fla-org/flash-linear-attention), in its recurrent form: per head a
 * constant-size state S (dk x dv) carried in the session, plus the last K - 1 inputs of the three
 * short convolutions:
 *   q, k, v = silu(conv(h Wq)), silu(conv(h Wk)), silu(conv(h Wv));  q, k L2-normed per head
 *   g = -exp(A_log) softplus(h Wa + dt_bias);  beta = sigmoid(h Wb)
 *   per token: S = e^g S + k (beta (v - e^g S^T k))^T;  o = S^T q        (kernels/gdn_math.h)
 *   y = (rmsnorm(o) * o_norm * silu(h Wg)) Wo
 * Prefill of a chunk of n tokens: the seven projections batched over the chunk (rt_linear's packed
 * kernels), then the recurrence token by token, the heads in parallel. Decode is the same with
 * n = 1, so the state after N tokens is the same however they were fed. The trainer runs the
 * chunkwise form of the same map (kernels/delta.c): the two agree to float rounding, and the
 * scalar math (convolution order, L2 norm, decay, step) is the shared header's. A forward at
 * position 0 starts afresh. Keys: gdn.heads, gdn.head_dim, gdn.value_dim, gdn.conv. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gdn_math.h"
#include "runtime/rt_internal.h"

typedef struct RtGdn {
    size_t C, H, dk, dv, K, KD, VD;
    const RtTensor *wq, *wk, *wv, *wa, *wb, *wg, *wo;
    float *rate, *dt_bias, *onorm; /* rate = exp(A_log) [H], dt_bias [H], o_norm [dv] */
    float *conv[3];                /* q, k, v convolution weights [D, K] (NULL without) */
} RtGdn;

static size_t hist_rows(const RtGdn *a) { return a->K ? a->K - 1 : 0; }

/* silu(conv(x)) of the n chunk rows of ext [hist + n, D] (the previous K - 1 inputs first), in
 * place into out [n, D]; taps before position 0 are skipped, as the trainer's (ops_gdn.c). */
static void conv_silu(float *out, const float *ext, const float *w, size_t n, size_t D, size_t K, size_t p0) {
    size_t hr = K - 1;
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * D;
        for (size_t d = 0; d < D; d++) o[d] = 0.0f;
        for (size_t j = 0; j < K; j++) {
            if (p0 + i + j < hr) continue;
            const float *xs = ext + (i + j) * D;
            for (size_t d = 0; d < D; d++) o[d] += w[d * K + j] * xs[d];
        }
        for (size_t d = 0; d < D; d++) o[d] = gdn_silu(trn_nan0(o[d], 1));
    }
}

/* q, k, v of n tokens [n, D] each from the projections in ext (after the history rows); the
 * history in the state is read first and the newest K - 1 rows written back */
static void qkv_inputs(const RtGdn *a, float *qkv[3], float *ext[3], float *hist, size_t n, size_t p0) {
    size_t D[3] = {a->KD, a->KD, a->VD}, hr = hist_rows(a);
    for (int r = 0; r < 3; r++) {
        if (!a->K) {
            for (size_t i = 0; i < n * D[r]; i++) qkv[r][i] = gdn_silu(trn_nan0(ext[r][i], 1));
            continue;
        }
        memcpy(ext[r], hist, hr * D[r] * sizeof(float));
        conv_silu(qkv[r], ext[r], a->conv[r], n, D[r], a->K, p0);
        memcpy(hist, ext[r] + n * D[r], hr * D[r] * sizeof(float));
        hist += hr * D[r];
    }
}

/* the recurrence of n tokens, head by head (in parallel): o [n, H dv]; ab = [a rows | b rows] */
static void recurrence(const RtGdn *a, float *S, float *o, const float *q, const float *k, const float *v, const float *ab,
                       float *u, size_t n, int threads) {
    size_t H = a->H, dk = a->dk, dv = a->dv;
    int nt = threads > 1 && H > 1 ? threads : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (size_t h = 0; h < H; h++)
        for (size_t i = 0; i < n; i++) {
            float g = trn_nan0(gdn_decay(trn_nan0(ab[i * H + h], 1), a->rate[h], a->dt_bias[h]), 1);
            float beta = fast_sigmoidf(trn_nan0(ab[(n + i) * H + h], 1));
            gdn_step(S + h * dk * dv, o + (i * H + h) * dv, q + (i * H + h) * dk, k + (i * H + h) * dk, v + (i * H + h) * dv, g,
                     beta, dk, dv, u + h * dv);
        }
}

/* scratch: ext q, k, v [hist + P, D] (projections), q, k, v [P, D], a [P, H], b [P, H], gate [P, VD], o [P, VD],
 * u [H dv]. state: S [H, dk, dv], then the convolution history [hist, KD | KD | VD]. */
static void gdn_forward(const void *inst, const RtFwd *fw, float *state, float *y, const float *h) {
    const RtGdn *a = inst;
    size_t n = fw->n, H = a->H, hr = hist_rows(a), D[3] = {a->KD, a->KD, a->VD};
    size_t P = n; /* this call's rows; the scratch was sized for the chunk */
    int nt = fw->threads;
    float *p = fw->scratch, *ext[3], *qkv[3];
    for (int r = 0; r < 3; r++) ext[r] = p, p += (hr + P) * D[r];
    for (int r = 0; r < 3; r++) qkv[r] = p, p += P * D[r];
    float *ab = p, *gate = ab + P * 2 * H, *o = gate + P * a->VD, *u = o + P * a->VD;
    float *S = state, *hist = state + H * a->dk * a->dv;
    if (fw->p0 == 0) memset(state, 0, (H * a->dk * a->dv + hr * (2 * a->KD + a->VD)) * sizeof(float));
    const RtTensor *w3[3] = {a->wq, a->wk, a->wv};
    for (int r = 0; r < 3; r++) rt_linear(fw->k, ext[r] + hr * D[r], h, n, w3[r], 0, fw->lin, nt);
    rt_linear(fw->k, ab, h, n, a->wa, 0, fw->lin, nt);
    rt_linear(fw->k, ab + n * H, h, n, a->wb, 0, fw->lin, nt);
    rt_linear(fw->k, gate, h, n, a->wg, 0, fw->lin, nt);
    qkv_inputs(a, qkv, ext, hist, n, fw->p0);
    for (size_t i = 0; i < n * H; i++) {
        gdn_l2norm_row(qkv[0] + i * a->dk, qkv[0] + i * a->dk, a->dk, 1.0f / sqrtf((float)a->dk));
        gdn_l2norm_row(qkv[1] + i * a->dk, qkv[1] + i * a->dk, a->dk, 1.0f);
    }
    recurrence(a, S, o, qkv[0], qkv[1], qkv[2], ab, u, n, nt);
    rt_rmsnorm(o, o, a->onorm, n * H, a->dv, fw->eps);
    for (size_t i = 0; i < n * a->VD; i++) o[i] *= gdn_silu(trn_nan0(gate[i], 1));
    rt_linear(fw->k, y, o, n, a->wo, 0, fw->lin, nt);
}

static size_t gdn_state(const void *inst, size_t cap, int kv_f16) {
    const RtGdn *a = inst;
    return a->H * a->dk * a->dv + hist_rows(a) * (2 * a->KD + a->VD);
}

static size_t gdn_scratch(const void *inst, size_t P, size_t max_ctx, int threads) {
    const RtGdn *a = inst;
    size_t w = 2 * a->KD + a->VD;
    return (hist_rows(a) + P) * w + P * w + P * 2 * a->H + 2 * P * a->VD + a->H * a->dv;
}

static size_t gdn_max_cols(const void *inst) {
    const RtGdn *a = inst;
    return a->VD > a->C ? a->VD : a->C;
}

static void gdn_unbind(void *inst) {
    RtGdn *a = inst;
    if (!a) return;
    float *v[6] = {a->rate, a->dt_bias, a->onorm, a->conv[0], a->conv[1], a->conv[2]};
    for (int i = 0; i < 6; i++) rt_free(v[i]);
    free(a);
}

static int gdn_bind(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e) {
    RtGdn *a = calloc(1, sizeof *a);
    if (!a) return rt_err(e, "out of memory");
    *inst = a;
    uint32_t H, dk, dv, K;
    if (rt_kv_u32(kv, "gdn.heads", 1, 4096, &H, e) || rt_kv_u32(kv, "gdn.head_dim", 1, 4096, &dk, e) ||
        rt_kv_u32(kv, "gdn.value_dim", 1, 65536, &dv, e) || rt_kv_u32(kv, "gdn.conv", 0, 16, &K, e))
        return -1;
    a->C = d->C, a->H = H, a->dk = dk, a->dv = dv, a->K = K, a->KD = (size_t)H * dk, a->VD = (size_t)H * dv;
    if (a->KD > 65536 || a->VD > 65536) return rt_err(e, "gdn.heads x gdn.head_dim / gdn.value_dim above 65536");
    char name[TERN_NAME_MAX + 48];
#define T(dst, nm, rr, cc) (snprintf(name, sizeof name, "blocks.%zu.gdn.%s", layer, nm), rt_want_tensor(m, name, rr, cc, &(dst), used, e))
#define V(dst, nm, rr, cc) (snprintf(name, sizeof name, "blocks.%zu.gdn.%s", layer, nm), rt_want_vec(m, name, rr, cc, &(dst), used, e))
    int rc = T(a->wq, "q_proj.weight", a->KD, a->C) || T(a->wk, "k_proj.weight", a->KD, a->C) ||
             T(a->wv, "v_proj.weight", a->VD, a->C) || T(a->wa, "a_proj.weight", H, a->C) || T(a->wb, "b_proj.weight", H, a->C) ||
             V(a->rate, "A_log", 1, H) || V(a->dt_bias, "dt_bias", 1, H) || T(a->wg, "g_proj.weight", a->VD, a->C) ||
             V(a->onorm, "o_norm.weight", 1, dv) || T(a->wo, "o_proj.weight", a->C, a->VD);
    if (!rc && K)
        rc = V(a->conv[0], "q_conv1d.weight", a->KD, K) || V(a->conv[1], "k_conv1d.weight", a->KD, K) ||
             V(a->conv[2], "v_conv1d.weight", a->VD, K);
#undef T
#undef V
    if (rc) return -1;
    for (size_t h = 0; h < H; h++) a->rate[h] = gdn_decay_rate(trn_nan0(a->rate[h], 1));
    return 0;
}

const RtBlockKind rt_block_gdn = {"gdn", 0, gdn_bind, gdn_unbind, NULL, gdn_state, gdn_scratch, gdn_max_cols, gdn_forward, NULL};
