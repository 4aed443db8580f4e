/* Hybrid-GRU (issue #12): the GRU cells and the MLGRU, by finite differences and known answers.
 *   - op_gru_torch_recur and op_gru_engine: every input's gradient against central differences
 *     (odd sizes, T = 1, the engine with its x and h widths different);
 *   - truncated BPTT: with tbptt = k the gradient reaching step t comes only from outputs of
 *     t's window [k floor(t / k), k floor(t / k) + k), where it equals full BPTT's;
 *   - whole hgru models (GRU torch / engine, MLGRU, with and without MLPs, a widening first
 *     layer under a narrower embedding): every parameter's gradient;
 *   - ternary QAT with the straight-through estimator: the QAT model's loss and gradients equal
 *     those of the float model holding the quantized weights (so the finite-difference check of
 *     the latter covers the former), for BitNet's absmean and the engine's mean-centred
 *     quantizer, whose codes are checked against a hand-worked example;
 *   - init: the state matrices are orthogonal, the keep bias lands on the update gate;
 *   - presets: hgru_engine has the engine's 68,269,312 parameters; bad embed_dim uses refused. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "autodiff/gradcheck.h"
#include "autodiff/ops_gru.h"
#include "check.h"
#include "kernels/blas_core.h"
#include "kernels/util.h"
#include "model/qat.h"
#include "model/stack.h"

static Rng rng;

static Tensor *rand_tensor(int nd, const size_t *shape, float lo, float hi, const char *name) {
    Tensor *t = tensor_create(nd, shape, 1, name);
    rng_fill_uniform(&rng, t->data, t->numel, lo, hi);
    return t;
}

/* ------------------------------------------------------------------ the ops */
typedef struct OpCase {
    GruOpCfg cfg;
    int engine;
} OpCase;

static Tensor *op_fn(Tape *tp, Tensor **in, void *user) {
    const OpCase *c = user;
    if (c->engine) return op_gru_engine(tp, in[0], in[1], in[2], in[3], in[4], &c->cfg);
    return op_gru_torch_recur(tp, in[0], in[1], in[2], &c->cfg);
}

static int make_inputs(Tensor **in, int engine, size_t B, size_t T, size_t E, size_t H) {
    if (engine) {
        in[0] = rand_tensor(3, (size_t[]){B, T, E}, -1.5f, 1.5f, "x");
        const char *nm[3] = {"w_z", "w_r", "w_h"};
        for (int g = 0; g < 3; g++) in[1 + g] = rand_tensor(2, (size_t[]){H, E + H}, -0.9f, 0.9f, nm[g]);
        in[4] = rand_tensor(1, (size_t[]){3 * H}, -0.5f, 0.5f, "bias");
        return 5;
    }
    in[0] = rand_tensor(3, (size_t[]){B, T, 3 * H}, -1.5f, 1.5f, "xp");
    in[1] = rand_tensor(2, (size_t[]){3 * H, H}, -0.9f, 0.9f, "weight_hh");
    in[2] = rand_tensor(1, (size_t[]){3 * H}, -0.5f, 0.5f, "bias_hh");
    return 3;
}

static void gradcheck_op(int engine, size_t B, size_t T, size_t E, size_t H) {
    Tensor *in[5];
    int n = make_inputs(in, engine, B, T, E, H);
    OpCase c = {.cfg = {.state_eps = 1e-8f}, .engine = engine};
    char name[96];
    snprintf(name, sizeof name, "%s cell B%zu T%zu E%zu H%zu", engine ? "engine" : "torch", B, T, E, H);
    GradCheckOpts o = gradcheck_default_opts();
    CHECK(gradcheck(name, op_fn, in, n, &c, &o, NULL) == 0, "%s", name);
    for (int i = 0; i < n; i++) tensor_destroy(in[i]);
}

/* Gradients of input 0 (xp or x) for an output gradient that is non-zero only at step s. */
static float *grad_from_step(Tensor **in, int n, OpCase *c, size_t B, size_t T, size_t H, size_t s) {
    for (int i = 0; i < n; i++) memset(in[i]->grad, 0, in[i]->numel * sizeof(float));
    Tape tp;
    tape_init(&tp, 0);
    Tensor *h = op_fn(&tp, in, c);
    float *seed = xcalloc(h->numel, sizeof(float));
    for (size_t b = 0; b < B; b++)
        for (size_t j = 0; j < H; j++) seed[(b * T + s) * H + j] = 1.0f + 0.1f * (float)j;
    tape_backward_seed(&tp, h, seed);
    float *g = xmalloc(in[0]->numel * sizeof(float));
    memcpy(g, in[0]->grad, in[0]->numel * sizeof(float));
    xfree(seed);
    tape_free(&tp);
    return g;
}

static void tbptt_case(int engine) {
    size_t B = 2, T = 9, E = 3, H = 4, k = 4, s = 6; /* s's window is [4, 8) */
    Tensor *in[5];
    int n = make_inputs(in, engine, B, T, E, H);
    size_t F = in[0]->shape[2];
    OpCase full = {.cfg = {.state_eps = 1e-8f}, .engine = engine}, cut = full;
    cut.cfg.tbptt = k;
    float *gf = grad_from_step(in, n, &full, B, T, H, s), *gc = grad_from_step(in, n, &cut, B, T, H, s);
    double before = 0, inside = 0, full_before = 0;
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++)
            for (size_t j = 0; j < F; j++) {
                size_t i = (b * T + t) * F + j;
                if (t < 4) before = fmax(before, fabs(gc[i])), full_before = fmax(full_before, fabs(gf[i]));
                else inside = fmax(inside, fabs(gc[i] - gf[i]));
            }
    printf("  %s tbptt 4, output at step 6: steps 0-3 max |g| %.1e (full BPTT %.1e), steps 4-8 vs full %.1e\n",
           engine ? "engine" : "torch ", before, full_before, inside);
    CHECK(before == 0 && full_before > 1e-4 && inside == 0, "truncated BPTT cuts exactly at the window start");
    xfree(gf), xfree(gc);
    for (int i = 0; i < n; i++) tensor_destroy(in[i]);
}

/* ------------------------------------------------------------------ whole models */
static Model *make(const char *json, Err *err) {
    cJSON *cfg = cJSON_Parse(json);
    Model *m = NULL;
    if (model_create(&m, cfg, 7, err)) m = NULL;
    cJSON_Delete(cfg);
    return m;
}

typedef struct Ctx {
    Model *m;
    int32_t x[14], y[14];
} Ctx;

static Tensor *loss_fn(Tape *tp, Tensor **in, void *user) {
    Ctx *c = user;
    return model_loss(c->m, tp, c->x, c->y, 2, 7, NULL, 1);
}

static void batch(Ctx *c) {
    for (int i = 0; i < 14; i++) {
        c->x[i] = (i * 7 + 3) % 11;
        c->y[i] = (i * 5 + 1) % 11;
    }
}

static void gradcheck_model(const char *name, const char *json) {
    Err err = {0};
    Model *m = make(json, &err);
    CHECK(m != NULL, "%s: %s", name, err.msg);
    if (!m) return;
    for (size_t p = 0; p < m->ps.n; p++) /* gains and biases away from their init */
        if (m->ps.t[p]->ndim == 1)
            for (size_t j = 0; j < m->ps.t[p]->numel; j++) m->ps.t[p]->data[j] += 0.05f * (float)((j * 7 + p) % 5) - 0.1f;
    Ctx c = {.m = m};
    batch(&c);
    GradCheckOpts o = gradcheck_default_opts();
    o.max_per_input = 12;
    CHECK(gradcheck(name, loss_fn, m->ps.t, (int)m->ps.n, &c, &o, NULL) == 0, "%s gradient check", name);
    model_free(m);
}

#define TINY "\"vocab_size\":11,\"seq_len\":8,\"softcap\":5,\"embed_init_std\":0.7,\"zero_init_proj\":false,\"layers\":0"
#define MLP6 "\"mlp_hidden\":6,"

static void test_models(void) {
    gradcheck_model("hgru GgMm torch cell, dim 5", "{\"arch\":\"hgru\",\"layout\":\"GgMm\",\"dim\":5," MLP6 TINY "}");
    gradcheck_model("hgru Gm engine cell, dim 5, tbptt 0", "{\"arch\":\"hgru\",\"layout\":\"Gm\",\"dim\":5,\"gru_variant\":\"engine\"," MLP6 TINY "}");
    gradcheck_model("hgru_engine shape: embed 3 -> engine GRU 4, untied",
                    "{\"arch\":\"hgru_engine\",\"layout\":\"g\",\"embed_dim\":3,\"dim\":4," TINY "}");
    gradcheck_model("hgru mg: MLGRU widening embed 3 -> dim 5, then torch GRU",
                    "{\"arch\":\"hgru\",\"layout\":\"mg\",\"embed_dim\":3,\"dim\":5,\"tie_embeddings\":false," TINY "}");
}

/* ------------------------------------------------------------------ QAT */
static Model *with_quant(const char *json, const char *quant, Err *err) {
    Model *m = make(json, err);
    if (!m) return NULL;
    cJSON *q = cJSON_Parse(quant);
    int rc = quant_plan_attach(m, q, NULL, NULL, NULL, err);
    cJSON_Delete(q);
    if (rc) {
        model_free(m);
        return NULL;
    }
    m->qat_active = 1;
    return m;
}

/* loss and gradients of one forward/backward */
static float run_grads(Model *m, float *g) {
    Ctx c = {.m = m};
    batch(&c);
    Tape tp;
    tape_init(&tp, 0);
    params_zero_grad(&m->ps);
    Tensor *loss = model_loss(m, &tp, c.x, c.y, 2, 7, NULL, 1);
    tape_backward(&tp, loss);
    float l = loss->data[0];
    memcpy(g, m->ps.grads, m->ps.total * sizeof(float));
    tape_free(&tp);
    return l;
}

static void qat_equals_quantized_float(const char *name, const char *json, const char *quant) {
    Err err = {0};
    Model *q = with_quant(json, quant, &err), *f = make(json, &err);
    CHECK(q && f, "%s: %s", name, err.msg);
    if (!q || !f) return;
    for (size_t p = 0; p < q->ps.n; p++) { /* f holds the quantized weights q's forward uses */
        const ParamPlan *pp = &q->qplan->p[p];
        Tensor *t = q->ps.t[p];
        if (pp->store == STORE_QUANT) fake_quantize_weights(f->ps.t[p]->data, t->data, t->shape[0], t->shape[1], &pp->spec);
    }
    float *gq = xmalloc(q->ps.total * sizeof(float)), *gf = xmalloc(f->ps.total * sizeof(float));
    float lq = run_grads(q, gq), lf = run_grads(f, gf);
    size_t nq = 0;
    for (size_t p = 0; p < q->ps.n; p++) nq += q->qplan->p[p].store == STORE_QUANT;
    int same = lq == lf && !memcmp(gq, gf, q->ps.total * sizeof(float));
    printf("  %-56s %zu quantized tensors, loss %.6f: %s\n", name, nq, lq, same ? "bit-identical" : "DIFFER");
    CHECK(same && nq >= 3, "%s: QAT = the float model on quantized weights (loss %.9g vs %.9g)", name, lq, lf);
    xfree(gq), xfree(gf);
    model_free(q);
    model_free(f);
}

static void test_qat(void) {
    const char *gru = "{\"arch\":\"hgru\",\"layout\":\"Gm\",\"dim\":6,\"gru_variant\":\"engine\"," MLP6 TINY "}";
    const char *tern = "{\"weights\":\"ternary\",\"min_numel\":0,\"group\":0,\"qat\":true}";
    const char *centred = "{\"weights\":\"ternary\",\"min_numel\":0,\"group\":0,\"ternary_center\":true,\"qat\":true}";
    qat_equals_quantized_float("ternary absmean per tensor, engine GRU + MLGRU", gru, tern);
    qat_equals_quantized_float("ternary mean-centred (the engine's), engine GRU + MLGRU", gru, centred);
    qat_equals_quantized_float("ternary groups of 4, torch GRU",
                               "{\"arch\":\"hgru\",\"layout\":\"g\",\"dim\":8," TINY "}",
                               "{\"weights\":\"ternary\",\"min_numel\":0,\"group\":4,\"qat\":true}");
    /* the engine's quantizer on a hand-worked example: mean 0.3, mean |w| 0.4, so codes are the
     * signs of w - mu = {0.6, -0.6, 0, -0.3, 0.3, 0} beyond 0.2: {1, -1, 0, -1, 1, 0}, scale 0.4
     * (BitNet's absmean would give round(w / 0.4) = {1, -1, 1, 0, 1, 1}) */
    float w[6] = {0.9f, -0.3f, 0.3f, 0.0f, 0.6f, 0.3f}, out[6];
    int8_t codes[6];
    float scale;
    QuantSpec s = {.kind = QUANT_TERNARY, .group = 0, .center = 1};
    quantize_weights(codes, &scale, w, 2, 3, &s);
    fake_quantize_weights(out, w, 2, 3, &s);
    int8_t want[6] = {1, -1, 0, -1, 1, 0};
    CHECK(!memcmp(codes, want, 6) && fabsf(scale - 0.4f) < 1e-6f && fabsf(out[0] - 0.4f) < 1e-6f && out[2] == 0.0f,
          "centred codes %d %d %d %d %d %d scale %g", codes[0], codes[1], codes[2], codes[3], codes[4], codes[5], scale);
    printf("  mean-centred ternary on a hand-worked example: codes and scale as the engine's\n");
}

/* ------------------------------------------------------------------ init and presets */
static void test_init(void) {
    Err err = {0};
    Model *m = make("{\"arch\":\"hgru\",\"layout\":\"gg\",\"dim\":48,\"gru_keep_bias\":1.5,\"vocab_size\":16,\"layers\":2}", &err);
    Model *e = make("{\"arch\":\"hgru_engine\",\"vocab_size\":16,\"embed_dim\":8,\"dim\":40,\"gru_keep_bias\":2}", &err);
    CHECK(m && e, "models: %s", err.msg);
    if (!m || !e) return;
    double worst = 0;
    for (size_t p = 0; p < m->ps.n; p++) {
        const Tensor *t = m->ps.t[p];
        if (!strstr(t->name, "weight_hh")) continue;
        size_t H = t->shape[1];
        for (size_t g = 0; g < 3; g++)
            for (size_t i = 0; i < H; i++)
                for (size_t j = 0; j < H; j++) {
                    double d = 0;
                    for (size_t k = 0; k < H; k++) d += (double)t->data[(g * H + i) * H + k] * t->data[(g * H + j) * H + k];
                    worst = fmax(worst, fabs(d - (i == j)));
                }
    }
    const Tensor *wz = NULL, *be = NULL, *bhh = NULL;
    for (size_t p = 0; p < e->ps.n; p++) {
        if (!strcmp(e->ps.t[p]->name, "blocks.0.gru.w_z")) wz = e->ps.t[p];
        if (!strcmp(e->ps.t[p]->name, "blocks.0.gru.bias")) be = e->ps.t[p];
    }
    for (size_t p = 0; p < m->ps.n; p++)
        if (!strcmp(m->ps.t[p]->name, "blocks.0.gru.bias_hh")) bhh = m->ps.t[p];
    double worst_e = 0;
    size_t H = 40, E = 8;
    for (size_t i = 0; wz && i < H; i++)
        for (size_t j = 0; j < H; j++) {
            double d = 0;
            for (size_t k = 0; k < H; k++) d += (double)wz->data[i * (E + H) + E + k] * wz->data[j * (E + H) + E + k];
            worst_e = fmax(worst_e, fabs(d - (i == j)));
        }
    printf("  orthogonal state matrices: max |W W^T - I| %.1e (torch cell), %.1e (engine w_z)\n", worst, worst_e);
    CHECK(worst < 1e-5 && worst_e < 1e-5, "state matrices orthogonal");
    CHECK(bhh && bhh->data[48] == 1.5f && bhh->data[0] == 0.0f && be && be->data[0] == -2.0f && be->data[40] == 0.0f,
          "keep bias on b_hz (+) and the engine's b_z (-)");
    model_free(m);
    model_free(e);
}

static void test_presets(void) {
    Err err = {0};
    cJSON *cfg = cJSON_Parse("{\"arch\":\"hgru_engine\"}");
    Model *m = NULL;
    CHECK(model_create(&m, cfg, 1, &err) == 0, "hgru_engine builds: %s", err.msg);
    size_t n = m ? model_num_params(m) : 0;
    printf("  hgru_engine: %zu parameters (engine: 50261 x 256 + 3 x 1024 x 1280 + 3 x 1024 + 50261 x 1024)\n", n);
    CHECK(n == 68269312, "hgru_engine has %zu parameters", n);
    model_free(m);
    cJSON_Delete(cfg);
    struct {
        const char *json, *expect;
    } bad[] = {
        {"{\"arch\":\"hgru\",\"layout\":\"Gm\",\"layers\":2,\"embed_dim\":8,\"dim\":16,\"vocab_size\":16}", "tie_embeddings"},
        {"{\"arch\":\"hgru\",\"layout\":\"Gm\",\"layers\":2,\"embed_dim\":8,\"dim\":16,\"vocab_size\":16,\"tie_embeddings\":false,"
         "\"resid_mix\":true}",
         "resid_mix"},
        {"{\"arch\":\"hgru\",\"gru_variant\":\"cudnn\"}", "model.gru_variant"},
        {"{\"arch\":\"hgru\",\"mlgru_scan\":\"fast\"}", "model.mlgru_scan"},
        {"{\"arch\":\"hgru\",\"gru_tbptt\":-1}", "model.gru_tbptt"},
        {"{\"arch\":\"hgru\",\"layout\":\"GXg\"}", "model.layout"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Model *b = make(bad[i].json, &err);
        CHECK(!b && strstr(err.msg, bad[i].expect), "%s: \"%s\" should name %s", bad[i].json, err.msg, bad[i].expect);
        model_free(b);
    }
    printf("  %zu bad hgru configs refused, each naming the key\n", sizeof bad / sizeof bad[0]);
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    rng_seed(&rng, 12);
    gradcheck_op(0, 2, 5, 0, 3);
    gradcheck_op(0, 1, 1, 0, 4);
    gradcheck_op(1, 2, 5, 2, 3);
    gradcheck_op(1, 3, 1, 3, 2);
    tbptt_case(0);
    tbptt_case(1);
    test_models();
    test_qat();
    test_init();
    test_presets();
    return test_summary("test_gru");
}
