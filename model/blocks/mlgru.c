/* mlgru — the MatMul-free LM's GRU-like token mixer (HGRN-Bit's MLGRU, Zhu et al. 2024,
 * ridgerchu/matmulfreellm mmfreelm/layers/hgrn_bit.py; ../shared/notes/backbones.md §1.2): its
 * gates read only the input, so the recurrence is diagonal and linear and trains at full
 * sequence parallelism (the scan of kernels/scan.h) — the fast GRU for pretraining.
 *   f = sig(W_f x)      i = silu(W_i x) (1 - f)      h_t = f_t h_{t-1} + i_t   (h_{-1} = 0)
 *   y = W_o( rmsnorm(W_g x) * g_norm * silu(h) )
 * (HGRN-Bit's FusedRMSNormSwishGate on the gate branch; 1 - f is computed as sig(-W_f x)).
 * Every projection is a model_linear, so ternary QAT (BitLinear) applies to all four; the stack's
 * pre-norm is BitLinear's RMSNorm. The input width is dim, or model.embed_dim for a first layer
 * under a narrower embedding. HGRN-Bit's per-layer forget-gate lower bound and short convolution
 * (both optional there) are not included.
 * Keys: mlgru_xavier_gain (HGRN-Bit: xavier_uniform with gain 2^-2.5), mlgru_scan (the scan
 * kernel). Tensors mlgru.i_proj.weight, f_proj, g_proj [C, E], mlgru.g_norm.weight [C],
 * mlgru.o_proj.weight [C, C]. */
#include <math.h>
#include <string.h>

#include "autodiff/ops.h"
#include "model/block.h"
#include "model/qat.h"

typedef struct MlgruCfg {
    double mlgru_xavier_gain;
    char mlgru_scan[CFG_STR_MAX];
    ScanKind scan; /* derived */
} MlgruCfg;

static const CfgField kMlgruFields[] = {
    CFG_R(CFG_FLOAT, MlgruCfg, mlgru_xavier_gain, 0, 100, "MLGRU init: Xavier-uniform gain of its projections (HGRN-Bit: 2^-2.5)"),
    CFG_F(CFG_STRING, MlgruCfg, mlgru_scan, "MLGRU recurrence kernel: sequential | kogge_stone | chunked | auto"),
};

typedef struct MlgruInst {
    Tensor *wi, *wf, *wg, *gnorm, *wo;
} MlgruInst;

static void mlgru_defaults(void *cfg) {
    MlgruCfg *c = cfg;
    memset(c, 0, sizeof *c);
    c->mlgru_xavier_gain = 0.17677669529663687; /* 2^-2.5 */
    strcpy(c->mlgru_scan, "auto");
}

static int mlgru_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    MlgruCfg *c = cfg;
    int k = scan_kind_from_name(c->mlgru_scan);
    if (k < 0) return err_set(err, "config: model.mlgru_scan must be sequential, kogge_stone, chunked or auto, got \"%s\"", c->mlgru_scan);
    c->scan = (ScanKind)k;
    return 0;
}

static void mlgru_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    MlgruInst *a = inst;
    size_t E = sc->in_dim ? sc->in_dim : sc->dim, C = sc->dim;
    a->wi = block_param(ps, prefix, "mlgru.i_proj.weight", 2, C, E);
    a->wf = block_param(ps, prefix, "mlgru.f_proj.weight", 2, C, E);
    a->wg = block_param(ps, prefix, "mlgru.g_proj.weight", 2, C, E);
    a->gnorm = block_param(ps, prefix, "mlgru.g_norm.weight", 1, C, 0);
    a->wo = block_param(ps, prefix, "mlgru.o_proj.weight", 2, C, C);
}

static void xavier(Tensor *w, double gain, Rng *rng) {
    float bound = (float)(gain * sqrt(6.0 / (double)(w->shape[0] + w->shape[1])));
    rng_fill_uniform(rng, w->data, w->numel, -bound, bound);
}

static void mlgru_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    MlgruInst *a = inst;
    double g = ((const MlgruCfg *)cfg)->mlgru_xavier_gain;
    xavier(a->wi, g, rng);
    xavier(a->wf, g, rng);
    xavier(a->wg, g, rng);
    block_fill(a->gnorm, 1.0f);
    if (sc->zero_init_proj) block_fill(a->wo, 0.0f);
    else xavier(a->wo, g, rng);
}

static Tensor *mlgru_forward(const void *inst, const void *cfg, const BlockCtx *c, Tensor *x) {
    const MlgruInst *a = inst;
    Model *m = c->m;
    Tape *tp = c->tp;
    Tensor *fpre = model_linear(m, tp, x, a->wf, NULL);
    Tensor *f = op_sigmoid(tp, fpre);
    Tensor *i = op_mul(tp, op_silu(tp, model_linear(m, tp, x, a->wi, NULL)), op_sigmoid(tp, op_scale(tp, fpre, -1.0f)));
    Tensor *h = op_linear_scan(tp, f, i, ((const MlgruCfg *)cfg)->scan);
    Tensor *g = op_rmsnorm(tp, model_linear(m, tp, x, a->wg, NULL), a->gnorm, (float)c->sc->norm_eps);
    return model_linear(m, tp, op_mul(tp, g, op_silu(tp, h)), a->wo, NULL);
}

/* no keys of its own: its shape is the stack's (and the first layer's input width) */
static int mlgru_export_keys(const void *cfg, const StackConfig *sc, KvList *kv, Err *err) { return 0; }

/* the state h */
static size_t mlgru_state(const void *cfg, const StackConfig *sc, size_t ctx) { return sc->dim; }

const BlockKind kBlockMlgru = {
    .name = "mlgru",
    .role = BLOCK_MIXER,
    .fields = kMlgruFields,
    .nfields = sizeof kMlgruFields / sizeof kMlgruFields[0],
    .cfg_bytes = sizeof(MlgruCfg),
    .defaults = mlgru_defaults,
    .resolve = mlgru_resolve,
    .inst_bytes = sizeof(MlgruInst),
    .add_params = mlgru_add_params,
    .init = mlgru_init,
    .forward = mlgru_forward,
    .export_keys = mlgru_export_keys,
    .decode_state_floats = mlgru_state,
    .widens = 1,
};
