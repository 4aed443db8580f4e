/* The TRN layer: parameters, PR #669's initialisation, forward on the tape. */
#include "model/trn.h"

#include <math.h>
#include <stdio.h>

#include "kernels/util.h"
#include "model/qat.h"

static Tensor *add(ParamStore *ps, const char *prefix, const char *name, int ndim, size_t a, size_t b) {
    char full[256];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    size_t shape[2] = {a, b};
    return params_add(ps, full, ndim, shape);
}

void trn_layer_add_params(TrnLayer *L, ParamStore *ps, const char *prefix, size_t dim, size_t K) {
    L->dim = dim;
    L->K = K;
    L->proj_w = add(ps, prefix, "proj.proj.weight", 2, 6 * K, dim);
    L->proj_b = add(ps, prefix, "proj.proj.bias", 1, 6 * K, 0);
    L->omega_base = add(ps, prefix, "proj.omega_base", 1, K, 0);
    L->w_res = add(ps, prefix, "W_res.weight", 2, dim, 4 * K - 2);
    L->w_phase = add(ps, prefix, "W_phase.weight", 2, K, dim);
    L->b_phase = add(ps, prefix, "W_phase.bias", 1, K, 0);
    L->lambda = add(ps, prefix, "lambda_pcg", 1, 1, 0);
    L->res_scale = add(ps, prefix, "res_scale", 1, 1, 0);
}

static double logit(double p) {
    p = p < 0.01 ? 0.01 : (p > 0.99 ? 0.99 : p); /* the PR clamps its centres the same way */
    return log(p / (1.0 - p));
}

void trn_layer_init(TrnLayer *L, Rng *rng, const TrnLayerInit *in) {
    size_t K = L->K, d = L->dim;
    double pstd = in->proj_std > 0 ? in->proj_std : 1.0 / sqrt((double)d);
    rng_fill_normal(rng, L->proj_w->data, L->proj_w->numel, 0.0f, (float)pstd);
    float *b = L->proj_b->data;
    for (size_t i = 0; i < 6 * K; i++) b[i] = 0.0f;
    /* decay groups (PR #669): a quarter fast (alpha 0.30), a half medium (0.65), the rest slow
     * (0.97) -- memories of about 1.4, 2.9 and 33 steps, 1 / (1 - alpha). "The rest" is
     * K - K/4 - K/2 as in the PR; the "last K/4" is the same whenever 4 divides K. */
    size_t n1 = K / 4, n2 = K / 2;
    for (size_t k = 0; k < K; k++) b[3 * K + k] = (float)logit(k < n1 ? 0.30 : (k < n1 + n2 ? 0.65 : 0.97));
    for (size_t k = 0; k < K; k++) b[4 * K + k] = (float)logit(in->gate_bias);
    for (size_t k = 0; k < K; k++) b[5 * K + k] = (float)in->erase_bias;
    /* omega_base log-spaced from one cycle per window (2 pi / L) to just below Nyquist */
    double lo = log(2.0 * M_PI / (double)(in->omega_len ? in->omega_len : 1));
    double hi = log(M_PI * (1.0 - 1.0 / (double)(K > 2 ? K : 2)));
    for (size_t k = 0; k < K; k++) {
        double f = K > 1 ? (double)k / (double)(K - 1) : 0.0;
        L->omega_base->data[k] = (float)exp(lo + (hi - lo) * f);
    }
    rng_fill_normal(rng, L->w_res->data, L->w_res->numel, 0.0f, (float)in->w_res_std);
    rng_fill_normal(rng, L->w_phase->data, L->w_phase->numel, 0.0f, (float)in->w_phase_std);
    for (size_t k = 0; k < K; k++) L->b_phase->data[k] = 0.0f;
    L->lambda->data[0] = (float)in->lambda;
    L->res_scale->data[0] = (float)in->res_scale;
}

Tensor *trn_layer_forward(Model *m, const TrnLayer *L, Tape *tp, Tensor *h, const TrnCoreCfg *cfg, float warm) {
    TERN_CHECK(h->ndim == 3 && h->shape[2] == L->dim, "trn layer: input must be [B, T, %zu]", L->dim);
    Tensor *p = model_linear(m, tp, h, L->proj_w, L->proj_b);
    Tensor *psi = model_linear(m, tp, h, L->w_phase, L->b_phase);
    Tensor *f = op_trn_core(tp, p, L->omega_base, psi, L->lambda, cfg);
    return op_scale_by(tp, model_linear(m, tp, f, L->w_res, NULL), L->res_scale, warm);
}

float trn_warmup_factor(uint64_t forwards, size_t warmup) {
    if (warmup == 0) return 1.0f;
    double s = (double)forwards / (double)warmup;
    if (s > 1) s = 1;
    return (float)(s * s * (3.0 - 2.0 * s));
}
