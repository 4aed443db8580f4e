/* mLSTM (kernels/mlstm.h, autodiff/ops_mlstm.c, model/blocks/mlstm.c): the chunkwise form (several
 * chunk sizes, T not a multiple of the chunk) and the parallel form against the stabilised
 * recurrent reference, forward and every gradient, within 1e-5 of the largest value; an
 * independent float64 oracle of the unstabilised equations; bit-identical results on 1 and 2
 * threads; finite-difference checks of every new op (odd sizes, T = 1, T not a multiple of the
 * chunk, both forget gates); and whole tiny chimera models with the mlstm kind (every parameter's
 * gradient). */
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "autodiff/gradcheck.h"
#include "autodiff/ops.h"
#include "check.h"
#include "kernels/blas_core.h"
#include "kernels/mlstm.h"
#include "kernels/util.h"
#include "model/model.h"

static Rng rng;

static float *rand_arr(size_t n, float mean, float std) {
    float *x = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = mean + std * rng_normal(&rng);
    return x;
}

/* ------------------------------------------------------------------ forms vs the reference */
typedef struct Cell {
    MlstmShape s;
    size_t nx, ng;
    float *q, *k, *v, *ig, *fg, *dh;
} Cell;

static Cell cell_new(size_t B, size_t T, size_t H, size_t D, int exp_forget, float ig_mean) {
    Cell c = {.s = {B, T, H, D, 4, exp_forget}, .nx = B * T * H * D, .ng = B * T * H};
    c.q = rand_arr(c.nx, 0, 1), c.k = rand_arr(c.nx, 0, 1), c.v = rand_arr(c.nx, 0, 1), c.dh = rand_arr(c.nx, 0, 1);
    c.ig = rand_arr(c.ng, ig_mean, 2.0f);
    /* sigmoid gate: long and short memories; exponential gate: log f around -0.3, some > 0 */
    c.fg = exp_forget ? rand_arr(c.ng, -0.3f, 0.3f) : rand_arr(c.ng, 2.0f, 2.5f);
    return c;
}

static void cell_free(Cell *c) { xfree(c->q), xfree(c->k), xfree(c->v), xfree(c->ig), xfree(c->fg), xfree(c->dh); }

/* out: h, dq, dk, dv, dig, dfg concatenated (4 nx + 2 ng floats) */
static float *run_form(const Cell *c, MlstmForm f, size_t L) {
    MlstmShape s = c->s;
    s.L = L;
    size_t nx = c->nx, ng = c->ng;
    float *out = xcalloc(4 * nx + 2 * ng, sizeof(float));
    float *saved = xmalloc((mlstm_saved_floats(f, &s) + 1) * sizeof(float));
    float *work = xmalloc((mlstm_work_floats(f, &s, omp_get_max_threads()) + 1) * sizeof(float));
    mlstm_forward(f, out, saved, c->q, c->k, c->v, c->ig, c->fg, &s, work);
    mlstm_backward(f, out + nx, out + 2 * nx, out + 3 * nx, out + 4 * nx, out + 4 * nx + ng, c->dh, out, saved, c->q, c->k, c->v,
                   c->ig, c->fg, &s, work);
    xfree(saved), xfree(work);
    return out;
}

/* |a - b| <= tol * max(max |b|, 0.1) per array (the floor: gradients that cancel to float noise) */
static void compare_scaled(const char *what, const float *a, const float *b, size_t n, double tol) {
    double mx = 0.1;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(b[i]));
    compare_arrays(what, a, b, n, tol * mx, 0.0);
}

static void forms_case(size_t B, size_t T, size_t H, size_t D, int exp_forget, float ig_mean) {
    Cell c = cell_new(B, T, H, D, exp_forget, ig_mean);
    float *ref = run_form(&c, MLSTM_RECURRENT, 5);
    static const char *part[] = {"h", "dq", "dk", "dv", "dig", "dfg"};
    size_t off[7] = {0, c.nx, 2 * c.nx, 3 * c.nx, 4 * c.nx, 4 * c.nx + c.ng, 4 * c.nx + 2 * c.ng};
    size_t chunks[] = {1, 3, 4, 16, 1000};
    for (int k = 0; k <= 5; k++) {
        MlstmForm f = k < 5 ? MLSTM_CHUNKWISE : MLSTM_PARALLEL;
        float *o = run_form(&c, f, k < 5 ? chunks[k] : 0);
        for (int p = 0; p < 6; p++) {
            char what[128];
            snprintf(what, sizeof what, "%s L%zu %s B%zu T%zu H%zu D%zu %s", mlstm_form_name(f), k < 5 ? chunks[k] : T, part[p], B, T, H,
                     D, exp_forget ? "exp" : "sig");
            compare_scaled(what, o + off[p], ref + off[p], off[p + 1] - off[p], 1e-5);
        }
        xfree(o);
    }
    xfree(ref);
    cell_free(&c);
}

/* The unstabilised equations in double (C_t = f C + i k v^T, h = C^T q / (max(|n.q|, 1) + eps)),
 * for gates small enough not to overflow: an oracle that shares no code with the kernels. */
static void oracle_case(void) {
    size_t T = 9, D = 3;
    Cell c = cell_new(1, T, 1, D, 0, 0.0f);
    for (size_t t = 0; t < T; t++) c.ig[t] = 0.5f * c.ig[t];
    float *got = run_form(&c, MLSTM_CHUNKWISE, 4);
    double C[3][4] = {{0}}, sc = 1.0 / sqrt((double)D), worst = 0;
    for (size_t t = 0; t < T; t++) {
        double f = 1.0 / (1.0 + exp(-(double)c.fg[t])), i = exp((double)c.ig[t]), nq = 0, num[3] = {0};
        for (size_t a = 0; a < D; a++)
            for (size_t b = 0; b <= D; b++) C[a][b] = f * C[a][b] + i * sc * c.k[t * D + a] * (b < D ? c.v[t * D + b] : 1.0);
        for (size_t a = 0; a < D; a++) {
            for (size_t b = 0; b < D; b++) num[b] += C[a][b] * c.q[t * D + a];
            nq += C[a][D] * c.q[t * D + a];
        }
        for (size_t b = 0; b < D; b++) worst = fmax(worst, fabs(num[b] / (fmax(fabs(nq), 1.0) + 1e-6) - got[t * D + b]));
    }
    printf("  %-44s max abs err %.3e  %s\n", "chunkwise vs float64 unstabilised oracle", worst, worst < 1e-5 ? "ok" : "FAIL");
    CHECK(worst < 1e-5, "oracle %g", worst);
    xfree(got);
    cell_free(&c);
}

/* Exponential forget gates with log f = 30 per step: the state's log scale passes 88 after three
 * tokens. The empty state must weigh nothing (m_{-1} = -inf): with m_{-1} = 0 every token's weight
 * e^{ig - m} underflowed and h was 0 / 0. All forms stay finite and agree to 1e-4 of the largest
 * value (log weights of -480 inside a chunk carry float rounding of 3e-5 in their exponents). */
static void overflow_case(void) {
    Cell c = cell_new(2, 40, 2, 4, 1, 0.0f);
    for (size_t i = 0; i < c.ng; i++) c.fg[i] = 30.0f + (float)(i % 3);
    float *ref = run_form(&c, MLSTM_RECURRENT, 8);
    size_t n = 4 * c.nx + 2 * c.ng;
    int finite = 1;
    for (size_t i = 0; i < n; i++) finite &= isfinite(ref[i]);
    CHECK(finite, "recurrent form not finite with log f = 30");
    for (int f = 0; f < 2; f++) {
        float *o = run_form(&c, f ? MLSTM_PARALLEL : MLSTM_CHUNKWISE, 16);
        compare_scaled(f ? "parallel, log f = 30: h and every gradient" : "chunkwise L16, log f = 30: h and every gradient", o, ref,
                       n, 1e-4);
        xfree(o);
    }
    xfree(ref);
    cell_free(&c);
}

static void determinism(void) {
    Cell c = cell_new(2, 70, 3, 8, 0, 0.0f);
    for (int f = 0; f < MLSTM_FORM_COUNT; f++) {
        float *o[2];
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            o[th - 1] = run_form(&c, (MlstmForm)f, 16);
        }
        int same = !memcmp(o[0], o[1], (4 * c.nx + 2 * c.ng) * sizeof(float));
        printf("  %-44s %s\n", mlstm_form_name((MlstmForm)f), same ? "1 and 2 threads bit-identical" : "DIFFER");
        CHECK(same, "%s not deterministic", mlstm_form_name((MlstmForm)f));
        xfree(o[0]), xfree(o[1]);
    }
    omp_set_num_threads(2);
    cell_free(&c);
}

/* ------------------------------------------------------------------ op gradchecks */
typedef struct OpCase {
    int which; /* 0 cell, 1 conv, 2 headwise, 3 group norm */
    MlstmCfg cfg;
    size_t D;
} OpCase;

static Tensor *build(Tape *tp, Tensor **in, void *user) {
    OpCase *c = user;
    switch (c->which) {
    case 0: return op_mlstm(tp, in[0], in[1], in[2], in[3], in[4], &c->cfg);
    case 1: return op_causal_conv(tp, in[0], in[1], in[2]);
    case 2: return op_headwise(tp, in[0], in[1]);
    default: return op_group_norm(tp, in[0], c->D, 1e-5f);
    }
}

static Tensor *rnd(int ndim, const size_t *shape, float mean, float std) {
    Tensor *t = tensor_create(ndim, shape, 1, "x");
    for (size_t i = 0; i < t->numel; i++) t->data[i] = mean + std * rng_normal(&rng);
    return t;
}
#define S(...) ((size_t[]){__VA_ARGS__})

static void check_op(const char *name, OpCase *c, Tensor **in, int nin) {
    GradCheckOpts o = gradcheck_default_opts();
    o.max_per_input = 48;
    CHECK(gradcheck(name, build, in, nin, c, &o, NULL) == 0, "%s", name);
    for (int i = 0; i < nin; i++) tensor_destroy(in[i]);
}

static void op_gradchecks(void) {
    /* B, T, H, D, chunk, form, forget */
    struct { size_t B, T, H, D, L; MlstmForm f; int ex; } cs[] = {
        {2, 7, 2, 3, 3, MLSTM_CHUNKWISE, 0}, {1, 1, 1, 5, 4, MLSTM_CHUNKWISE, 0}, {1, 9, 3, 2, 4, MLSTM_CHUNKWISE, 1},
        {2, 6, 1, 3, 0, MLSTM_PARALLEL, 0},  {1, 8, 2, 3, 3, MLSTM_RECURRENT, 0}, {1, 5, 1, 2, 2, MLSTM_RECURRENT, 1}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        OpCase c = {.which = 0, .cfg = {cs[i].f, cs[i].L ? cs[i].L : cs[i].T, cs[i].ex}};
        size_t B = cs[i].B, T = cs[i].T, H = cs[i].H, D = cs[i].D;
        Tensor *in[5] = {rnd(4, S(B, T, H, D), 0, 1), rnd(4, S(B, T, H, D), 0, 1), rnd(4, S(B, T, H, D), 0, 1),
                         rnd(3, S(B, T, H), 0, 1), cs[i].ex ? rnd(3, S(B, T, H), -0.2f, 0.3f) : rnd(3, S(B, T, H), 1.5f, 1.5f)};
        char name[96];
        snprintf(name, sizeof name, "mlstm %s L%zu B%zu T%zu H%zu D%zu %s", mlstm_form_name(cs[i].f), c.cfg.chunk, B, T, H, D,
                 cs[i].ex ? "exp" : "sigmoid");
        check_op(name, &c, in, 5);
    }
    OpCase cv = {.which = 1};
    check_op("causal_conv B2 T5 I3 K4", &cv, (Tensor *[]){rnd(3, S(2, 5, 3), 0, 1), rnd(2, S(3, 4), 0, 1), rnd(1, S(3), 0, 1)}, 3);
    check_op("causal_conv B1 T1 I17 K2", &cv, (Tensor *[]){rnd(3, S(1, 1, 17), 0, 1), rnd(2, S(17, 2), 0, 1), rnd(1, S(17), 0, 1)}, 3);
    OpCase hw = {.which = 2};
    check_op("headwise N6 I6 bs3", &hw, (Tensor *[]){rnd(3, S(2, 3, 6), 0, 1), rnd(2, S(6, 3), 0, 1)}, 2);
    check_op("headwise N5 I20 bs4", &hw, (Tensor *[]){rnd(2, S(5, 20), 0, 1), rnd(2, S(20, 4), 0, 1)}, 2);
    OpCase gn = {.which = 3, .D = 5};
    check_op("group_norm N3 groups of 5", &gn, (Tensor *[]){rnd(3, S(1, 3, 15), 0.5f, 1)}, 1);
}

/* ------------------------------------------------------------------ whole models */
#include "model_check.h"

#define model_gradcheck(name, json, B, T) model_gradcheck_opts(name, json, B, T, 0, 0)

#define TINY "\"arch\":\"chimera\",\"vocab_size\":11,\"dim\":8,\"seq_len\":16,\"softcap\":3.0,\"zero_init_proj\":false," \
             "\"embed_init_std\":0.5,\"mlstm_head_dim\":4,\"mlstm_qkv_block\":2,\"mlstm_conv\":3,\"mlstm_chunk\":3," \
             "\"mlstm_igate_bias_std\":0.5"
#define SIG_FGATE ",\"mlstm_fgate_bias_lo\":1,\"mlstm_fgate_bias_hi\":2"

static void model_tests(void) {
    Err err = {0};
    printf("bad configs are errors naming the key\n");
    const char *bad[] = {"{\"arch\":\"chimera\",\"mlstm_form\":\"fast\"}", "{\"arch\":\"chimera\",\"mlstm_forget\":\"tanh\"}",
                         "{\"arch\":\"chimera\",\"mlstm_head_dim\":0}", "{\"arch\":\"chimera\",\"mlstm_qkv_block\":3}",
                         "{\"arch\":\"chimera\",\"mlstm_chunk\":0}", "{\"arch\":\"chimera\",\"layout\":\"XA\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear(&err);
        Model *b = make(bad[i], &err);
        CHECK(b == NULL && err.msg[0], "%s accepted", bad[i]);
        printf("  %-48s -> %s\n", bad[i], err.msg);
        model_free(b);
    }
    printf("whole tiny chimera models: every parameter's gradient\n");
    model_gradcheck("chimera XX chunkwise B2 T7", "{" TINY SIG_FGATE ",\"layout\":\"XX\"}", 2, 7);
    model_gradcheck("chimera X parallel B1 T1", "{" TINY SIG_FGATE ",\"layout\":\"X\",\"mlstm_form\":\"parallel\"}", 1, 1);
    model_gradcheck("chimera XXX recurrent exp forget B1 T5",
                    "{" TINY ",\"layout\":\"XXX\",\"mlstm_form\":\"recurrent\",\"mlstm_forget\":\"exp\","
                    "\"mlstm_fgate_bias_lo\":-0.5,\"mlstm_fgate_bias_hi\":0}", 1, 5);
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    rng_seed(&rng, 7);
    omp_set_num_threads(2);
    printf("chunkwise and parallel forms vs the recurrent reference (forward, every gradient)\n");
    forms_case(2, 13, 2, 5, 0, 0.0f);
    forms_case(1, 1, 1, 3, 0, 0.0f);
    forms_case(1, 37, 3, 8, 1, 0.0f);
    oracle_case();
    overflow_case();
    printf("determinism\n");
    determinism();
    printf("op gradients (finite differences)\n");
    op_gradchecks();
    model_tests();
    return test_summary("test_mlstm");
}
