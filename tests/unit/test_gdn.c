/* Gated DeltaNet: the chunkwise WY / UT kernel against the per-token recurrence (forward and every
 * gradient, several chunk sizes, odd sizes, T = 1, T not a multiple of the chunk), finite-
 * difference checks of every new op (gated delta rule in both forms, short convolution, per-head
 * L2 norm, log-space decay), thread-count determinism, a float64 oracle of the recurrence written
 * independently here (backbones.md §2.3), and whole tiny chimera models (every parameter's
 * gradient), the gdn kind's config errors and its parameter count. */
#include <cjson/cJSON.h>
#include <omp.h>
#include <string.h>

#include "autodiff/gradcheck.h"
#include "autodiff/ops.h"
#include "check.h"
#include "kernels/delta.h"
#include "kernels/util.h"
#include "model/model.h"

static Rng rng;

typedef struct Inputs {
    GdnShape s;
    float *q, *k, *v, *g, *beta, *dout;
} Inputs;

static float *rand_arr(size_t n, float lo, float hi) {
    float *x = xmalloc(n * sizeof(float));
    rng_fill_uniform(&rng, x, n, lo, hi);
    return x;
}

/* q scaled by dk^-1/2 and k of unit norm (as the layer gives them), decays from 0.37 to 1,
 * write strengths in (0, 1) */
static Inputs make_inputs(size_t B, size_t T, size_t H, size_t dk, size_t dv) {
    Inputs in = {.s = {B, T, H, dk, dv}};
    size_t nq = B * T * H * dk, nv = B * T * H * dv, nh = B * T * H;
    in.q = rand_arr(nq, -1, 1), in.k = rand_arr(nq, -1, 1), in.v = rand_arr(nv, -1, 1);
    in.g = rand_arr(nh, -1.0f, -1e-3f), in.beta = rand_arr(nh, 0.02f, 0.98f), in.dout = rand_arr(nv, -1, 1);
    for (size_t r = 0; r < nh; r++) {
        float sq = 0, sk = 0;
        for (size_t i = 0; i < dk; i++) sq += in.q[r * dk + i] * in.q[r * dk + i], sk += in.k[r * dk + i] * in.k[r * dk + i];
        for (size_t i = 0; i < dk; i++) in.q[r * dk + i] /= sqrtf(sq * (float)dk), in.k[r * dk + i] /= sqrtf(sk);
    }
    return in;
}

static void free_inputs(Inputs *in) { xfree(in->q), xfree(in->k), xfree(in->v), xfree(in->g), xfree(in->beta), xfree(in->dout); }

/* forward and backward of one kind; out[0] = o, out[1..5] = dq, dk, dv, dg, dbeta */
static void run_kind(float **out, const Inputs *in, GdnKernel kind, size_t chunk) {
    const GdnShape *s = &in->s;
    size_t nq = s->B * s->T * s->H * s->dk, nv = s->B * s->T * s->H * s->dv, nh = s->B * s->T * s->H;
    size_t n[6] = {nv, nq, nq, nv, nh, nh};
    for (int i = 0; i < 6; i++) out[i] = xcalloc(n[i], sizeof(float));
    float *saved = xmalloc((gdn_saved_floats(kind, s, chunk) + 1) * sizeof(float));
    float *work = xmalloc((gdn_work_floats(kind, s, chunk) + 1) * sizeof(float));
    gdn_forward(kind, out[0], saved, in->q, in->k, in->v, in->g, in->beta, s, chunk, work);
    gdn_backward(kind, out[1], out[2], out[3], out[4], out[5], in->dout, saved, in->q, in->k, in->v, in->g, in->beta, s, chunk, work);
    xfree(saved), xfree(work);
}

static const char *kOut[6] = {"o", "dq", "dk", "dv", "dg", "dbeta"};

/* chunked == recurrent within 1e-5 (absolute floor 1e-5 on the relative error) */
static void chunk_vs_recurrent(size_t B, size_t T, size_t H, size_t dk, size_t dv, const size_t *chunks, size_t nch) {
    Inputs in = make_inputs(B, T, H, dk, dv);
    float *ref[6];
    run_kind(ref, &in, GDN_RECURRENT, 1);
    size_t nq = B * T * H * dk, nv = B * T * H * dv, nh = B * T * H, n[6] = {nv, nq, nq, nv, nh, nh};
    for (size_t c = 0; c < nch; c++) {
        float *got[6];
        run_kind(got, &in, GDN_CHUNKED, chunks[c]);
        for (int i = 0; i < 6; i++) {
            char what[96];
            snprintf(what, sizeof what, "B%zu T%zu H%zu dk%zu dv%zu chunk %zu: %s", B, T, H, dk, dv, chunks[c], kOut[i]);
            compare_arrays(what, got[i], ref[i], n[i], 1e-5, 1e-5);
            xfree(got[i]);
        }
    }
    for (int i = 0; i < 6; i++) xfree(ref[i]);
    free_inputs(&in);
}

/* ------------------------------------------------------------------ float64 oracle */
/* The recurrence in double, written from the paper's form S_t = S_{t-1} alpha (I - beta k k^T)
 * + beta v k^T with S [dv][dk] (the paper's layout, transposed from the kernels'), o = S q, and
 * its gradients by a reverse walk over stored states. One (batch, head) lane of length T. */
static void oracle(double *o, double *dq, double *dk, double *dv, double *dg, double *db, const Inputs *in, size_t b, size_t h) {
    const GdnShape *s = &in->s;
    size_t T = s->T, K = s->dk, V = s->dv;
    double *S = xcalloc((T + 1) * K * V, sizeof(double)), *dS = xcalloc(K * V, sizeof(double));
#define AT(arr, t, d, w) arr[((b * T + (t)) * s->H + h) * (w) + (d)]
    for (size_t t = 0; t < T; t++) {
        double a = exp(AT(in->g, t, 0, 1)), bt = AT(in->beta, t, 0, 1);
        double *Sp = S + t * K * V, *Sn = Sp + K * V;
        for (size_t r = 0; r < V; r++) { /* row r of S: Sn_r = a (Sp_r - beta (Sp_r . k) k) + beta v_r k */
            double sk = 0;
            for (size_t c = 0; c < K; c++) sk += Sp[r * K + c] * AT(in->k, t, c, K);
            for (size_t c = 0; c < K; c++)
                Sn[r * K + c] = a * (Sp[r * K + c] - bt * sk * AT(in->k, t, c, K)) + bt * AT(in->v, t, r, V) * AT(in->k, t, c, K);
        }
        for (size_t r = 0; r < V; r++) {
            double acc = 0;
            for (size_t c = 0; c < K; c++) acc += Sn[r * K + c] * AT(in->q, t, c, K);
            o[t * V + r] = acc;
        }
    }
    for (size_t t = T; t-- > 0;) {
        double a = exp(AT(in->g, t, 0, 1)), bt = AT(in->beta, t, 0, 1);
        const double *Sp = S + t * K * V, *Sn = Sp + K * V;
        for (size_t c = 0; c < K; c++) { /* o = Sn q */
            double acc = 0;
            for (size_t r = 0; r < V; r++) acc += Sn[r * K + c] * AT(in->dout, t, r, V);
            dq[t * K + c] = acc;
        }
        for (size_t r = 0; r < V; r++)
            for (size_t c = 0; c < K; c++) dS[r * K + c] += AT(in->dout, t, r, V) * AT(in->q, t, c, K);
        /* Sn = a Sp (I - beta k k^T) + beta v k^T: differentiate each factor */
        double dgt = 0, dbt = 0;
        for (size_t c = 0; c < K; c++) dk[t * K + c] = 0;
        for (size_t r = 0; r < V; r++) {
            double sk = 0, dsk = 0, vr = AT(in->v, t, r, V);
            for (size_t c = 0; c < K; c++) sk += Sp[r * K + c] * AT(in->k, t, c, K), dsk += dS[r * K + c] * AT(in->k, t, c, K);
            double dsS = 0;
            for (size_t c = 0; c < K; c++) dsS += dS[r * K + c] * Sp[r * K + c];
            dgt += a * (dsS - bt * sk * dsk);
            dbt += -a * sk * dsk + vr * dsk;
            dv[t * V + r] = bt * dsk;
            for (size_t c = 0; c < K; c++)
                dk[t * K + c] += -a * bt * (dsk * Sp[r * K + c] + sk * dS[r * K + c]) + bt * vr * dS[r * K + c];
        }
        dg[t] = dgt, db[t] = dbt;
        double *dSp = xcalloc(K * V, sizeof(double)); /* dSp_r = a (dS_r - beta (dS_r . k) k) */
        for (size_t r = 0; r < V; r++) {
            double dsk = 0;
            for (size_t c = 0; c < K; c++) dsk += dS[r * K + c] * AT(in->k, t, c, K);
            for (size_t c = 0; c < K; c++) dSp[r * K + c] = a * (dS[r * K + c] - bt * dsk * AT(in->k, t, c, K));
        }
        memcpy(dS, dSp, K * V * sizeof(double));
        xfree(dSp);
    }
#undef AT
    xfree(S), xfree(dS);
}

static void oracle_check(size_t B, size_t T, size_t H, size_t dk, size_t dv, size_t chunk) {
    Inputs in = make_inputs(B, T, H, dk, dv);
    float *got[6];
    run_kind(got, &in, GDN_CHUNKED, chunk);
    size_t w[6] = {dv, dk, dk, dv, 1, 1};
    double *ref[6];
    for (int i = 0; i < 6; i++) ref[i] = xmalloc(B * T * H * w[i] * sizeof(double));
    double *lane[6];
    for (int i = 0; i < 6; i++) lane[i] = xmalloc(T * w[i] * sizeof(double));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            oracle(lane[0], lane[1], lane[2], lane[3], lane[4], lane[5], &in, b, h);
            for (int i = 0; i < 6; i++)
                for (size_t t = 0; t < T; t++) memcpy(ref[i] + ((b * T + t) * H + h) * w[i], lane[i] + t * w[i], w[i] * sizeof(double));
        }
    for (int i = 0; i < 6; i++) {
        size_t n = B * T * H * w[i];
        float *rf = xmalloc(n * sizeof(float));
        for (size_t j = 0; j < n; j++) rf[j] = (float)ref[i][j];
        char what[96];
        snprintf(what, sizeof what, "vs float64 oracle T%zu chunk %zu: %s", T, chunk, kOut[i]);
        compare_arrays(what, got[i], rf, n, 2e-5, 1e-4);
        xfree(rf), xfree(ref[i]), xfree(lane[i]), xfree(got[i]);
    }
    free_inputs(&in);
}

/* ------------------------------------------------------------------ determinism */
static void determinism(GdnKernel kind) {
    Inputs in = make_inputs(3, 150, 5, 16, 24);
    float *out[2][6];
    for (int th = 1; th <= 2; th++) {
        omp_set_num_threads(th);
        run_kind(out[th - 1], &in, kind, 64);
    }
    omp_set_num_threads(2);
    const GdnShape *s = &in.s;
    size_t nq = s->B * s->T * s->H * s->dk, nv = s->B * s->T * s->H * s->dv, nh = s->B * s->T * s->H, n[6] = {nv, nq, nq, nv, nh, nh};
    int same = 1;
    for (int i = 0; i < 6; i++) same &= !memcmp(out[0][i], out[1][i], n[i] * sizeof(float));
    printf("  %-44s %s\n", gdn_kernel_name(kind), same ? "1 and 2 threads bit-identical" : "DIFFER");
    CHECK(same, "%s not deterministic across thread counts", gdn_kernel_name(kind));
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 6; i++) xfree(out[t][i]);
    free_inputs(&in);
}

/* ------------------------------------------------------------------ op gradchecks */
typedef struct OpCase {
    int which; /* 0 gated delta, 1 short conv, 2 l2norm, 3 decay */
    GdnKernel kind;
    size_t chunk, K, n;
    float scale;
} OpCase;

static Tensor *build(Tape *tp, Tensor **in, void *user) {
    OpCase *c = user;
    switch (c->which) {
    case 0: return op_gated_delta(tp, in[0], in[1], in[2], in[3], in[4], c->kind, c->chunk);
    case 1: return op_short_conv(tp, in[0], in[1], c->K);
    case 2: return op_l2norm_heads(tp, in[0], c->n, c->scale);
    default: return op_gdn_decay(tp, in[0], in[1], in[2]);
    }
}

#define S(...) ((size_t[]){__VA_ARGS__})
static Tensor *from(int ndim, const size_t *shape, const float *data) {
    Tensor *t = tensor_create(ndim, shape, 1, "x");
    memcpy(t->data, data, t->numel * sizeof(float));
    return t;
}

static Tensor *rnd(int ndim, const size_t *shape, float lo, float hi) {
    Tensor *t = tensor_create(ndim, shape, 1, "x");
    rng_fill_uniform(&rng, t->data, t->numel, lo, hi);
    return t;
}

static void check_op(const char *name, OpCase *c, Tensor **in, int nin, double atol, double rtol) {
    GradCheckOpts o = gradcheck_default_opts();
    o.atol = atol;
    o.rtol = rtol;
    o.max_per_input = 48;
    if (gradcheck(name, build, in, nin, c, &o, NULL)) g_failures++;
    for (int i = 0; i < nin; i++) tensor_destroy(in[i]);
}

static void delta_gradchecks(void) {
    struct {
        size_t B, T, H, dk, dv, chunk;
        GdnKernel kind;
    } cases[] = {{2, 5, 2, 3, 2, 1, GDN_RECURRENT}, {1, 1, 1, 4, 3, 1, GDN_RECURRENT},  {2, 7, 3, 3, 5, 3, GDN_CHUNKED},
                 {1, 1, 2, 5, 3, 64, GDN_CHUNKED},  {1, 9, 1, 2, 3, 4, GDN_CHUNKED},    {2, 6, 1, 4, 4, 6, GDN_CHUNKED}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Inputs x = make_inputs(cases[i].B, cases[i].T, cases[i].H, cases[i].dk, cases[i].dv);
        size_t B = x.s.B, T = x.s.T, H = x.s.H;
        Tensor *in[5] = {from(4, S(B, T, H, x.s.dk), x.q), from(4, S(B, T, H, x.s.dk), x.k), from(4, S(B, T, H, x.s.dv), x.v),
                         from(3, S(B, T, H), x.g), from(3, S(B, T, H), x.beta)};
        for (size_t j = 0; j < in[3]->numel; j++) in[3]->data[j] -= 0.01f; /* keep g < 0 under the nudges */
        OpCase c = {.which = 0, .kind = cases[i].kind, .chunk = cases[i].chunk};
        char name[96];
        snprintf(name, sizeof name, "gated_delta %s B%zu T%zu H%zu dk%zu dv%zu chunk %zu", gdn_kernel_name(c.kind), B, T, H, x.s.dk,
                 x.s.dv, c.chunk);
        check_op(name, &c, in, 5, 2e-4, 1e-2);
        free_inputs(&x);
    }
}

static void layer_op_gradchecks(void) {
    size_t conv[][4] = {{2, 7, 5, 4}, {1, 1, 3, 4}, {1, 3, 2, 4}, {2, 5, 3, 1}, {1, 6, 4, 3}};
    for (size_t i = 0; i < 5; i++) {
        size_t B = conv[i][0], T = conv[i][1], D = conv[i][2], K = conv[i][3];
        Tensor *in[2] = {rnd(3, S(B, T, D), -1.5f, 1.5f), rnd(2, S(D, K), -0.8f, 0.8f)};
        OpCase c = {.which = 1, .K = K};
        char name[96];
        snprintf(name, sizeof name, "short_conv B%zu T%zu D%zu K%zu", B, T, D, K);
        check_op(name, &c, in, 2, 2e-4, 1e-2);
    }
    Tensor *l2[1] = {rnd(3, S(2, 3, 15), -1, 1)};
    OpCase c2 = {.which = 2, .n = 5, .scale = 0.4472136f};
    check_op("l2norm_heads [2, 3, 15] groups of 5, scale 5^-1/2", &c2, l2, 1, 2e-4, 1e-2);
    Tensor *l2b[1] = {rnd(2, S(1, 7), -0.3f, 0.3f)};
    OpCase c3 = {.which = 2, .n = 7, .scale = 1.0f};
    check_op("l2norm_heads [1, 7] one group", &c3, l2b, 1, 2e-4, 1e-2);
    /* decay: a around the softplus knee and beyond its threshold of 20 */
    Tensor *dec[3] = {rnd(3, S(2, 4, 3), -4, 4), tensor_create(1, S(3), 1, "A_log"), tensor_create(1, S(3), 1, "dt_bias")};
    float al[3] = {-1.0f, 0.5f, 2.0f}, dt[3] = {-3.0f, 0.2f, 1.0f};
    memcpy(dec[1]->data, al, sizeof al), memcpy(dec[2]->data, dt, sizeof dt);
    dec[0]->data[5] = 22.0f;
    OpCase c4 = {.which = 3};
    check_op("gdn_decay [2, 4, 3]", &c4, dec, 3, 2e-4, 1e-2);
}

/* ------------------------------------------------------------------ whole models */
#include "model_check.h"

#define model_gradcheck(name, json, B, T) model_gradcheck_opts(name, json, B, T, 1, 3e-4)

/* 3-wide heads unless a case says otherwise */
#define TINY "\"arch\":\"chimera\",\"vocab_size\":11,\"dim\":8,\"swiglu_hidden\":6,\"seq_len\":16,\"softcap\":3.0," \
             "\"zero_init_proj\":false,\"embed_init_std\":0.5,\"gdn_heads\":2"

static void model_tests(void) {
    Err err = {0};
    printf("chimera at its default width, all Gated DeltaNet (GGGGGGGS)\n");
    Model *m = make("{\"arch\":\"chimera\",\"layout\":\"GGGGGGGS\"}", &err);
    CHECK(m != NULL, "default model: %s", err.msg);
    if (m) {
        /* per gdn layer at d = 512, 8 heads of 64 (expand_v 1): q, k, v, g, o 512^2 each, a and
         * b 8 x 512, three convolutions 512 x 4, A_log, dt_bias 8, o_norm 64; the SwiGLU 3 x 512 x
         * 768 (round_up(2/3 * 2 * 512, 256)); the stack's norms, scales, resid_mix and skips */
        size_t C = 512, gdn = 5 * C * C + 2 * 8 * C + 3 * C * 4 + 2 * 8 + 64, mlp = 3 * C * 768;
        size_t per_layer = gdn + mlp + 2 * C /* attn_scale, mlp_scale */ + 2 * C /* resid_mix */;
        size_t want = 1024 * C + 8 * per_layer + 4 * C /* skip_weights */;
        size_t n = model_num_params(m);
        printf("  parameters: %zu (by hand: %zu)\n", n, want);
        CHECK(n == want, "parameter count %zu, expected %zu", n, want);
        Tensor *al = params_find(&m->ps, "blocks.0.gdn.A_log"), *dt = params_find(&m->ps, "blocks.0.gdn.dt_bias");
        int ok = al && dt;
        for (size_t h = 0; ok && h < 8; h++) {
            double A = exp(al->data[h]), d = log1p(exp(dt->data[h])); /* softplus(dt_bias) = dt */
            ok = A > 0 && A <= 16 && d >= 1e-3 * 0.999 && d <= 0.1 * 1.001;
        }
        CHECK(ok, "A_log / dt_bias init outside fla's ranges");
        model_free(m);
    }
    printf("bad configs are errors naming the key\n");
    const char *bad[] = {"{\"arch\":\"chimera\",\"gdn_kernel\":\"fast\"}", "{\"arch\":\"chimera\",\"gdn_head_dim\":0}",
                         "{\"arch\":\"chimera\",\"gdn_chunk\":0}", "{\"arch\":\"chimera\",\"gdn_expand_v\":1.3}",
                         "{\"arch\":\"chimera\",\"gdn_conv\":17}", "{\"arch\":\"chimera\",\"layout\":\"GGA\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear(&err);
        Model *b = make(bad[i], &err);
        printf("  %-48s -> %s\n", bad[i], err.msg);
        CHECK(b == NULL && err.msg[0], "%s accepted", bad[i]);
        model_free(b);
    }
    printf("whole tiny models: every parameter's gradient\n");
    model_gradcheck("chimera G B2 T5 chunk 2", "{" TINY ",\"gdn_head_dim\":3,\"layout\":\"G\",\"gdn_chunk\":2}", 2, 5);
    model_gradcheck("chimera GS B1 T1", "{" TINY ",\"gdn_head_dim\":3,\"layout\":\"GS\"}", 1, 1);
    model_gradcheck("chimera GGS recurrent, untied, dv 2x", "{" TINY ",\"gdn_head_dim\":3,\"layout\":\"GGS\",\"gdn_kernel\":\"recurrent\","
                    "\"tie_embeddings\":false,\"gdn_expand_v\":2}", 1, 7);
    /* without the convolution (silu(h Wk) alone) a 3-wide k can come out near zero, where the L2
     * norm bends too sharply for finite differences: 4-wide heads */
    model_gradcheck("chimera GS no conv, head dim 4", "{" TINY ",\"layout\":\"GS\",\"gdn_conv\":0,\"gdn_head_dim\":4}", 2, 6);
    model_gradcheck("chimera GG conv 3, chunk 4, T 9", "{" TINY ",\"gdn_head_dim\":3,\"layout\":\"GG\",\"gdn_conv\":3,\"gdn_chunk\":4}", 1, 9);
}

int main(void) {
    rng_seed(&rng, 77);
    omp_set_num_threads(2);
    printf("chunked == recurrent (forward and every gradient)\n");
    chunk_vs_recurrent(2, 130, 3, 16, 16, S(1, 7, 16, 64), 4);
    chunk_vs_recurrent(1, 1, 2, 5, 3, S(1, 64), 2);
    chunk_vs_recurrent(3, 37, 2, 7, 9, S(5, 32, 64), 3);
    chunk_vs_recurrent(1, 200, 1, 64, 64, S(64, 48), 2);
    printf("float64 oracle\n");
    oracle_check(2, 21, 2, 5, 4, 8);
    oracle_check(1, 70, 1, 8, 6, 64);
    printf("determinism\n");
    determinism(GDN_CHUNKED);
    determinism(GDN_RECURRENT);
    printf("op gradients\n");
    delta_gradchecks();
    layer_op_gradchecks();
    model_tests();
    return test_summary("test_gdn");
}
