/* trn — the TRN oscillator layer (model/trn.h: parameters, PR #669's initialisation, forward on
 * the tape) and its block kind (token mixer): keys oscillators, scan, amp_max, the init knobs and
 * res_warmup; tensors resonance.proj.proj.weight / .bias, resonance.proj.omega_base,
 * resonance.W_res.weight, resonance.W_phase.weight / .bias, resonance.lambda_pcg,
 * resonance.res_scale. The token shift before it and the SwiGLU after it are the layer
 * scaffold's and the swiglu kind's (model/stack.c, model/blocks/swiglu.c). */
#include "model/trn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/util.h"
#include "model/block.h"
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

/* ---------------------------------------------------------------- the block kind */
typedef struct TrnCfg {
    size_t oscillators;
    char scan[CFG_STR_MAX];
    double amp_max, res_scale_init, pcg_lambda_init, gate_bias_init, erase_bias_init;
    double proj_init_std, w_res_init_std, w_phase_init_std;
    size_t omega_init_len, res_warmup;
    ScanKind scan_kind; /* derived */
} TrnCfg;

#define F(type, m, h) CFG_F(type, TrnCfg, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, TrnCfg, m, lo, hi, h)
static const CfgField kTrnFields[] = {
    R(CFG_SIZE, oscillators, 1, MODEL_MAX_DIM, "TRN oscillators per layer (K)"),
    F(CFG_STRING, scan, "TRN recurrence kernel: sequential | kogge_stone | chunked | auto"),
    R(CFG_FLOAT, amp_max, 1e-30, 1e30, "TRN amplitude clamp: A = min(softplus(a), amp_max)"),
    R(CFG_FLOAT, res_scale_init, -1e3, 1e3, "TRN res_scale init"),
    R(CFG_FLOAT, pcg_lambda_init, -1e3, 1e3, "TRN phase-gate lambda init"),
    R(CFG_FLOAT, gate_bias_init, 0, 1, "TRN output gate: bias = logit(gate_bias_init)"),
    R(CFG_FLOAT, erase_bias_init, -1e3, 1e3, "TRN erase strength bias init"),
    R(CFG_FLOAT, proj_init_std, 0, 1e3, "TRN oscillator projection init std (0 = dim^-1/2)"),
    R(CFG_FLOAT, w_res_init_std, 0, 1e3, "TRN W_res init std"),
    R(CFG_FLOAT, w_phase_init_std, 0, 1e3, "TRN W_phase init std"),
    R(CFG_SIZE, omega_init_len, 0, MODEL_MAX_SEQ, "L of the omega_base init 2 pi / L .. pi (0 = seq_len)"),
    R(CFG_SIZE, res_warmup, 0, 1e15, "training forwards of the TRN readout smoothstep warm-up (0 = off)"),
};
#undef R
#undef F

static void trn_defaults(void *cfg) {
    TrnCfg *c = cfg;
    memset(c, 0, sizeof *c);
    c->oscillators = 256;
    strcpy(c->scan, "auto");
    c->amp_max = 3.0;
    c->res_scale_init = 0.05;
    c->pcg_lambda_init = 0.5;
    c->gate_bias_init = 0.65;
    c->erase_bias_init = -2.0;
    c->w_res_init_std = 2e-3;
    c->w_phase_init_std = 1e-3;
    c->res_warmup = 2000;
}

static int trn_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    TrnCfg *c = cfg;
    if (!c->omega_init_len) c->omega_init_len = sc->seq_len;
    if (c->oscillators == 0) return err_set(err, "config: model.oscillators must be positive");
    int kind = scan_kind_from_name(c->scan);
    if (kind < 0) return err_set(err, "config: model.scan must be sequential, kogge_stone, chunked or auto, got \"%s\"", c->scan);
    c->scan_kind = (ScanKind)kind;
    if (!(c->amp_max > 0)) return err_set(err, "config: model.amp_max must be positive");
    if (!(c->gate_bias_init > 0 && c->gate_bias_init < 1)) return err_set(err, "config: model.gate_bias_init must be in (0, 1)");
    return 0;
}

static void trn_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    char p[96];
    snprintf(p, sizeof p, "%sresonance", prefix);
    trn_layer_add_params(inst, ps, p, sc->dim, ((const TrnCfg *)cfg)->oscillators);
}

static void trn_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    const TrnCfg *c = cfg;
    TrnLayerInit ti = {.proj_std = c->proj_init_std,
                       .w_res_std = c->w_res_init_std,
                       .w_phase_std = c->w_phase_init_std,
                       .res_scale = c->res_scale_init,
                       .lambda = c->pcg_lambda_init,
                       .gate_bias = c->gate_bias_init,
                       .erase_bias = c->erase_bias_init,
                       .omega_len = c->omega_init_len};
    trn_layer_init(inst, rng, &ti);
}

static Tensor *trn_forward(const void *inst, const void *cfg, const BlockCtx *c, Tensor *h) {
    const TrnCfg *tc = cfg;
    TrnCoreCfg cc = {.scan = tc->scan_kind, .amp_max = (float)tc->amp_max};
    float warm = c->training ? trn_warmup_factor(c->m->train_forwards, tc->res_warmup) : 1.0f;
    return trn_layer_forward(c->m, inst, c->tp, h, &cc, warm);
}

static int trn_export_keys(const void *cfg, const StackConfig *sc, KvList *kv, Err *err) {
    const TrnCfg *c = cfg;
    kv_add_u32(kv, "trn.oscillators", c->oscillators);
    kv_add_f32(kv, "trn.amp_max", c->amp_max);
    return 0;
}

/* the K complex oscillators r (re, im) */
static size_t trn_state(const void *cfg, const StackConfig *sc, size_t ctx) { return 2 * ((const TrnCfg *)cfg)->oscillators; }

const BlockKind kBlockTrn = {
    .name = "trn",
    .role = BLOCK_MIXER,
    .fields = kTrnFields,
    .nfields = sizeof kTrnFields / sizeof kTrnFields[0],
    .cfg_bytes = sizeof(TrnCfg),
    .defaults = trn_defaults,
    .resolve = trn_resolve,
    .inst_bytes = sizeof(TrnLayer),
    .add_params = trn_add_params,
    .init = trn_init,
    .forward = trn_forward,
    .export_keys = trn_export_keys,
    .export_byte_codes = 1,
    .decode_state_floats = trn_state,
};
