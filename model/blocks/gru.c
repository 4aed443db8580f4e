/* gru — a full-matrix GRU token mixer with full hidden-state recurrence, trained by
 * backpropagation through time (autodiff/ops_gru.h; ../shared/notes/backbones.md §1.1–1.2).
 * The state width is the model's dim; the input width is dim, or model.embed_dim when the GRU
 * is the first layer of a stack whose embedding is narrower (the Hybrid-GRU engine: embed 256,
 * state 1024). Two exact cells (gru_variant):
 *   torch   PyTorch / cuDNN nn.GRU: y = GRU(h), reset after the recurrent product (one GEMM per
 *           step). Tensors gru.weight_ih [3H, E], gru.weight_hh [3H, H], gru.bias_ih, gru.bias_hh
 *           [3H], gate order r | z | n — a checkpoint's tensors are nn.GRU's weight_ih_l0 ... as
 *           they are.
 *   engine  the Hybrid-GRU engine's cell (sumithkumar07/Hybrid-GRU): gates read [x; h], Cho-style
 *           reset before the product, z = 1 takes the candidate, RMSNorm without gain on the new
 *           state. Tensors gru.w_z, gru.w_r, gru.w_h [H, E + H] (one per gate, so a per-tensor
 *           ternary scale is the engine's per-gate scale), gru.bias [3H] (z | r | h).
 * Keys (gru_*): variant, tbptt (truncated BPTT length, 0 = full), state_eps, keep_bias (init:
 * pushes the update gate towards keeping the state: the engine's z bias starts at -keep_bias,
 * torch's b_hz at +keep_bias), xavier_gain ("dynamic Xavier scaling": the input matrices are
 * xavier-uniform with this gain from each layer's own fan-in and fan-out; 0 = nn.GRU's
 * U(±1/sqrt(H)) for every weight), orthogonal (state matrices: orthogonal, as
 * torch.nn.init.orthogonal_, per gate).
 * QAT: the weights are quantized once per forward (model_weight) and reused by all steps; with
 * act_bits 8 the input and each step's recurrent input are int8 fake-quantized per token (the
 * engine's [x; h] halves separately, each with its own scale), as the runtime's integer kernels
 * see them. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/ops_gru.h"
#include "kernels/gemm.h"
#include "model/block.h"
#include "model/qat.h"

typedef enum GruVariant { GRU_TORCH = 0, GRU_ENGINE = 1 } GruVariant;

typedef struct GruKindCfg {
    char gru_variant[CFG_STR_MAX];
    size_t gru_tbptt;
    double gru_state_eps, gru_keep_bias, gru_xavier_gain;
    int gru_orthogonal;
    GruVariant variant; /* derived */
} GruKindCfg;

#define F(type, m, h) CFG_F(type, GruKindCfg, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, GruKindCfg, m, lo, hi, h)
static const CfgField kGruFields[] = {
    F(CFG_STRING, gru_variant, "GRU cell: torch (nn.GRU) | engine (Hybrid-GRU: [x; h] gates, reset before the product, RMSNorm state)"),
    R(CFG_SIZE, gru_tbptt, 0, MODEL_MAX_SEQ, "GRU truncated BPTT: cut the state's gradient every N steps (0 = full BPTT)"),
    R(CFG_FLOAT, gru_state_eps, 0, 1, "GRU engine cell: eps of the state's RMSNorm"),
    R(CFG_FLOAT, gru_keep_bias, 0, 100, "GRU init: update-gate bias towards keeping the state"),
    R(CFG_FLOAT, gru_xavier_gain, 0, 100, "GRU init: Xavier gain of the input matrices (0 = nn.GRU's U(+-1/sqrt(H)))"),
    F(CFG_BOOL, gru_orthogonal, "GRU init: orthogonal state matrices (per gate)"),
};
#undef R
#undef F

typedef struct GruInst {
    size_t E, H;
    Tensor *w[3], *b[2]; /* torch: weight_ih, weight_hh | bias_ih, bias_hh; engine: w_z, w_r, w_h | bias */
} GruInst;

static void gru_defaults(void *cfg) {
    GruKindCfg *c = cfg;
    memset(c, 0, sizeof *c);
    strcpy(c->gru_variant, "torch");
    c->gru_state_eps = 1e-8;
    c->gru_xavier_gain = 1.0;
    c->gru_orthogonal = 1;
}

static int gru_resolve(void *cfg, const StackConfig *sc, int used, Err *err) {
    GruKindCfg *c = cfg;
    if (!strcmp(c->gru_variant, "torch")) c->variant = GRU_TORCH;
    else if (!strcmp(c->gru_variant, "engine")) c->variant = GRU_ENGINE;
    else return err_set(err, "config: model.gru_variant must be torch or engine, got \"%s\"", c->gru_variant);
    return 0;
}

static size_t in_width(const StackConfig *sc) { return sc->in_dim ? sc->in_dim : sc->dim; }

static void gru_add_params(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix) {
    GruInst *a = inst;
    size_t E = in_width(sc), H = sc->dim;
    a->E = E, a->H = H;
    if (((const GruKindCfg *)cfg)->variant == GRU_TORCH) {
        a->w[0] = block_param(ps, prefix, "gru.weight_ih", 2, 3 * H, E);
        a->w[1] = block_param(ps, prefix, "gru.weight_hh", 2, 3 * H, H);
        a->b[0] = block_param(ps, prefix, "gru.bias_ih", 1, 3 * H, 0);
        a->b[1] = block_param(ps, prefix, "gru.bias_hh", 1, 3 * H, 0);
    } else {
        const char *names[3] = {"gru.w_z", "gru.w_r", "gru.w_h"};
        for (int g = 0; g < 3; g++) a->w[g] = block_param(ps, prefix, names[g], 2, H, E + H);
        a->b[0] = block_param(ps, prefix, "gru.bias", 1, 3 * H, 0);
    }
}

/* q [k, n] (k <= n): its rows made orthonormal in order, as Gram-Schmidt would (the Q of QR with
 * diag(R) > 0: torch.nn.init.orthogonal_'s sign fix). Blocks of 64 rows are first projected off
 * the rows before them twice with GEMMs (block classical Gram-Schmidt with re-orthogonalisation,
 * BCGS2: BLAS-3, so a 1024 x 1024 matrix takes a fraction of a second), then orthonormalised
 * among themselves (CGS2 row by row). */
static void orthonormalize_rows(float *q, size_t k, size_t n) {
    enum { NB = 64 };
    float *c = xmalloc(NB * (k ? k : 1) * sizeof(float));
    for (size_t j0 = 0; j0 < k; j0 += NB) {
        size_t nb = k - j0 < NB ? k - j0 : NB;
        float *vb = q + j0 * n;
        for (int pass = 0; pass < 2 && j0; pass++) {
            sgemm(0, 1, nb, j0, n, 1.0f, vb, n, q, n, 0.0f, c, j0);   /* C = V Q_<^T */
            sgemm(0, 0, nb, n, j0, -1.0f, c, j0, q, n, 1.0f, vb, n);  /* V -= C Q_< */
        }
        for (size_t j = 0; j < nb; j++) {
            float *v = vb + j * n;
            for (int pass = 0; pass < 2 && j; pass++) {
                sgemv(0, j, n, 1.0f, vb, n, v, 0.0f, c);
                sgemv(1, j, n, -1.0f, vb, n, c, 1.0f, v);
            }
            double nn = 0;
            for (size_t i = 0; i < n; i++) nn += (double)v[i] * v[i];
            float sc = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
            for (size_t i = 0; i < n; i++) v[i] *= sc;
        }
    }
    xfree(c);
}

/* An orthogonal rows x cols block at w (row stride ld), as torch.nn.init.orthogonal_: Gaussian
 * vectors along the longer side, orthonormalised. */
static void init_orthogonal(float *w, size_t rows, size_t cols, size_t ld, Rng *rng) {
    int tr = rows < cols; /* orthonormal rows instead of columns */
    size_t n = tr ? cols : rows, k = tr ? rows : cols;
    float *q = xmalloc(n * k * sizeof(float)); /* k vectors of length n */
    rng_fill_normal(rng, q, n * k, 0.0f, 1.0f);
    orthonormalize_rows(q, k, n);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) w[r * ld + c] = tr ? q[r * n + c] : q[c * n + r];
    xfree(q);
}

/* A rows x cols block (row stride ld) of fan-in `cols`: orthogonal when asked, else
 * xavier-uniform with `gain` (bound gain sqrt(6 / (fan_in + fan_out))), or with gain 0 nn.GRU's
 * U(+-1/sqrt(H)). */
static void init_block(float *w, size_t rows, size_t cols, size_t ld, int orthogonal, double gain, size_t H, Rng *rng) {
    if (orthogonal) {
        init_orthogonal(w, rows, cols, ld, rng);
        return;
    }
    float bound = gain > 0 ? (float)(gain * sqrt(6.0 / (double)(rows + cols))) : 1.0f / sqrtf((float)H);
    for (size_t r = 0; r < rows; r++) rng_fill_uniform(rng, w + r * ld, cols, -bound, bound);
}

static void init_bias(Tensor *b, const GruKindCfg *c, size_t H, Rng *rng) {
    float bound = 1.0f / sqrtf((float)H);
    if (c->gru_xavier_gain > 0) block_fill(b, 0.0f);
    else rng_fill_uniform(rng, b->data, b->numel, -bound, bound);
}

static void gru_init(void *inst, const void *cfg, const StackConfig *sc, Rng *rng) {
    GruInst *a = inst;
    const GruKindCfg *c = cfg;
    size_t E = a->E, H = a->H;
    double gain = c->gru_xavier_gain;
    if (c->variant == GRU_TORCH) {
        for (int g = 0; g < 3; g++) init_block(a->w[0]->data + g * H * E, H, E, E, 0, gain, H, rng);
        for (int g = 0; g < 3; g++) init_block(a->w[1]->data + g * H * H, H, H, H, c->gru_orthogonal, gain, H, rng);
        init_bias(a->b[0], c, H, rng);
        init_bias(a->b[1], c, H, rng);
        for (size_t j = 0; j < H; j++) a->b[1]->data[H + j] += (float)c->gru_keep_bias; /* b_hz: z = 1 keeps */
    } else {
        for (int g = 0; g < 3; g++) {
            init_block(a->w[g]->data, H, E, E + H, 0, gain, H, rng);
            init_block(a->w[g]->data + E, H, H, E + H, c->gru_orthogonal, gain, H, rng);
        }
        init_bias(a->b[0], c, H, rng);
        for (size_t j = 0; j < H; j++) a->b[0]->data[j] -= (float)c->gru_keep_bias; /* b_z: z = 0 keeps */
    }
}

static GruAct act_of(const Model *m, const Tensor *W) {
    const QuantSpec *s = model_quant_spec(m, W);
    return (GruAct){s && s->act_bits == 8, s ? s->act_block : 0};
}

static Tensor *gru_forward(const void *inst, const void *cfg, const BlockCtx *ctx, Tensor *h) {
    const GruInst *a = inst;
    const GruKindCfg *c = cfg;
    Model *m = ctx->m;
    Tape *tp = ctx->tp;
    TERN_CHECK(h->ndim == 3 && h->shape[2] == a->E, "gru: input must be [B, T, %zu]", a->E);
    GruOpCfg oc = {.tbptt = c->gru_tbptt, .state_eps = (float)c->gru_state_eps};
    if (c->variant == GRU_TORCH) {
        oc.act_h = act_of(m, a->w[1]);
        Tensor *xp = model_linear(m, tp, h, a->w[0], a->b[0]);
        return op_gru_torch_recur(tp, xp, model_weight(m, tp, a->w[1]), a->b[1], &oc);
    }
    GruAct ax = act_of(m, a->w[0]);
    oc.act_h = ax;
    oc.act_q = act_of(m, a->w[2]);
    if (ax.on) h = op_fake_quant_act(tp, h, ax.block);
    return op_gru_engine(tp, h, model_weight(m, tp, a->w[0]), model_weight(m, tp, a->w[1]), model_weight(m, tp, a->w[2]),
                         a->b[0], &oc);
}

static int gru_export_keys(const void *cfg, const StackConfig *sc, KvList *kv, Err *err) {
    const GruKindCfg *c = cfg;
    kv_add_str(kv, "gru.variant", c->gru_variant);
    kv_add_f32(kv, "gru.state_eps", c->gru_state_eps);
    return 0;
}

/* the state h */
static size_t gru_state(const void *cfg, const StackConfig *sc, size_t ctx) { return sc->dim; }

const BlockKind kBlockGru = {
    .name = "gru",
    .role = BLOCK_MIXER,
    .fields = kGruFields,
    .nfields = sizeof kGruFields / sizeof kGruFields[0],
    .cfg_bytes = sizeof(GruKindCfg),
    .defaults = gru_defaults,
    .resolve = gru_resolve,
    .inst_bytes = sizeof(GruInst),
    .add_params = gru_add_params,
    .init = gru_init,
    .forward = gru_forward,
    .export_keys = gru_export_keys,
    .decode_state_floats = gru_state,
    .widens = 1,
};
