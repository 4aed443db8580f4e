/* The moe block kind (model/blocks/moe.c, kernels/moe.c): the sort-based dispatch against the
 * dense per-token reference (bit for bit with the naive GEMM, within float rounding with
 * OpenBLAS), the counting sort's stability, thread-count determinism of forward and backward,
 * finite-difference checks of op_moe (odd sizes, T = 1, a non-zero bias) and of whole tiny
 * chimera models with MoE layers (every parameter), the bias update against a hand computation,
 * the bias buffer (registered, exported, counted only by training forwards, updated after a step),
 * the kind's config errors and the default model's parameter count. */
#include <cjson/cJSON.h>
#include <omp.h>
#include <string.h>

#include "autodiff/gradcheck.h"
#include "autodiff/ops.h"
#include "check.h"
#include "kernels/gemm.h"
#include "kernels/moe.h"
#include "kernels/util.h"
#include "model/model.h"

#define S(...) ((size_t[]){__VA_ARGS__})

static Rng rng;

static float *rand_arr(size_t n, float lo, float hi) {
    float *x = xmalloc((n ? n : 1) * sizeof(float));
    rng_fill_uniform(&rng, x, n, lo, hi);
    return x;
}

/* Affinities whose biased values are at least `gap` apart within each token (a shuffled grid in
 * sigmoid space): the selection cannot flip under a finite-difference nudge. */
static void spread_scores(float *s, const float *bias, size_t N, size_t E, float gap) {
    for (size_t n = 0; n < N; n++) {
        int32_t order[256];
        for (size_t e = 0; e < E; e++) order[e] = (int32_t)e;
        for (size_t e = E; e > 1; e--) {
            size_t j = (size_t)(rng_uniform(&rng) * (double)e) % e;
            int32_t t = order[e - 1];
            order[e - 1] = order[j], order[j] = t;
        }
        for (size_t e = 0; e < E; e++) s[n * E + order[e]] = 0.15f + gap * (float)e - (bias ? bias[order[e]] : 0.0f);
    }
}

typedef struct Experts {
    size_t E, C, H;
    float **gu, **dn;
} Experts;

static Experts make_experts(size_t E, size_t C, size_t H) {
    Experts x = {E, C, H, xmalloc(E * sizeof(float *)), xmalloc(E * sizeof(float *))};
    for (size_t e = 0; e < E; e++) x.gu[e] = rand_arr(2 * H * C, -0.6f, 0.6f), x.dn[e] = rand_arr(C * H, -0.6f, 0.6f);
    return x;
}

static void free_experts(Experts *x) {
    for (size_t e = 0; e < x->E; e++) xfree(x->gu[e]), xfree(x->dn[e]);
    xfree(x->gu), xfree(x->dn);
}

typedef struct Saved {
    MoeSaved sv;
    float *f;
    int32_t *i;
    size_t *z;
} Saved;

static Saved saved_new(const MoeShape *s) {
    Saved o = {.f = xmalloc(moe_saved_floats(s) * sizeof(float)), .i = xmalloc(moe_saved_ints(s) * sizeof(int32_t)),
               .z = xmalloc((s->E + 1) * sizeof(size_t))};
    moe_saved_bind(&o.sv, s, o.f, o.i, o.z);
    return o;
}
static void saved_free(Saved *o) { xfree(o->f), xfree(o->i), xfree(o->z); }

/* sort-based == dense per-token: routing exactly, outputs bit for bit with sgemm_ref and within
 * rounding with OpenBLAS; the sort is stable and the loads are the selection counts */
static void dispatch_vs_dense(size_t N, size_t C, size_t E, size_t K, size_t H, float gamma, int act_q) {
    long qa[2 * 16]; /* QAT: expert e's input per token or per block of 3, its hidden per block of 4 or float */
    for (size_t e = 0; e < E && act_q; e++) qa[e] = e % 2 ? 0 : 3, qa[E + e] = e % 3 ? 4 : -1;
    MoeShape s = {.N = N, .C = C, .E = E, .K = K, .H = H, .act_in = act_q ? qa : NULL, .act_hid = act_q ? qa + E : NULL};
    Experts x = make_experts(E, C, H);
    float *h = rand_arr(N * C, -1, 1), *sc = rand_arr(N * E, 0.02f, 0.98f), *bias = rand_arr(E, -0.3f, 0.3f);
    if (N > 2) sc[E + 1] = sc[E] + bias[0] - bias[1]; /* a near tie of biased scores */
    float *y = xcalloc(N * C, sizeof(float)), *yr = xcalloc(N * C, sizeof(float)), *wr = xmalloc(N * K * sizeof(float));
    float *load = xcalloc(E, sizeof(float));
    int32_t *selr = xmalloc(N * K * sizeof(int32_t));
    Saved sv = saved_new(&s);
    moe_forward(&s, y, &sv.sv, h, sc, bias, gamma, (const float *const *)x.gu, (const float *const *)x.dn, load, sgemm_ref);
    moe_forward_ref(&s, yr, h, sc, bias, gamma, (const float *const *)x.gu, (const float *const *)x.dn, selr, wr, sgemm_ref);
    char what[96];
    snprintf(what, sizeof what, "N%zu C%zu E%zu K%zu H%zu%s", N, C, E, K, H, act_q ? " int8 act" : "");
    CHECK(!memcmp(sv.sv.sel, selr, N * K * sizeof(int32_t)), "%s: selections differ", what);
    CHECK(!memcmp(sv.sv.w, wr, N * K * sizeof(float)), "%s: gate weights differ", what);
    CHECK(!memcmp(y, yr, N * C * sizeof(float)), "%s: sort-based output != dense reference (naive GEMM)", what);
    int stable = 1, counts = 1;
    for (size_t e = 0; e < E; e++) {
        size_t c = 0;
        for (size_t r = 0; r < N * K; r++) c += selr[r] == (int32_t)e;
        counts &= load[e] == (float)c && sv.sv.offset[e + 1] - sv.sv.offset[e] == c;
        for (size_t p = sv.sv.offset[e]; p + 1 < sv.sv.offset[e + 1]; p++) stable &= sv.sv.perm[p] < sv.sv.perm[p + 1];
    }
    for (size_t r = 0; r < N * K; r++) stable &= sv.sv.perm[sv.sv.inv[r]] == (int32_t)r;
    CHECK(stable, "%s: the counting sort is not stable / inv is not perm's inverse", what);
    CHECK(counts, "%s: loads are not the selection counts", what);
    printf("  %-44s routing and output bit-exact: %s\n", what, !memcmp(y, yr, N * C * sizeof(float)) ? "ok" : "FAIL");
    moe_forward(&s, y, &sv.sv, h, sc, bias, gamma, (const float *const *)x.gu, (const float *const *)x.dn, NULL, sgemm);
    snprintf(what, sizeof what, "N%zu C%zu E%zu K%zu H%zu, OpenBLAS", N, C, E, K, H);
    if (!act_q) compare_arrays(what, y, yr, N * C, 1e-5, 1e-5); /* int8 codes may round apart */
    saved_free(&sv);
    free_experts(&x);
    xfree(h), xfree(sc), xfree(bias), xfree(y), xfree(yr), xfree(wr), xfree(load), xfree(selr);
}

/* the exact tie: token 1's experts 0 and 1 have equal biased scores; expert 0 must come first */
static void tie_break(void) {
    MoeShape s = {.N = 1, .C = 2, .E = 4, .K = 2, .H = 2};
    float sc[4] = {0.5f, 0.75f, 0.25f, 0.875f}, bias[4] = {0.25f, 0.0f, 0.0f, -0.125f}, w[2], ssum;
    int32_t sel[2];
    moe_route(&s, sc, bias, 1.0f, sel, w, &ssum); /* biased: 0.75, 0.75, 0.25, 0.75 (exact) -> 0, 1 */
    CHECK(sel[0] == 0 && sel[1] == 1, "tie-break: got %d %d, want 0 1", sel[0], sel[1]);
    CHECK(w[0] == 0.5f / 1.25f && w[1] == 0.75f / 1.25f, "gate weights %g %g", w[0], w[1]);
    printf("  exact three-way tie -> the lower indices: ok\n");
}

/* forward and every gradient identical with 1 and 2 threads */
static void determinism(void) {
    size_t N = 300, C = 24, E = 6, K = 2, H = 20;
    MoeShape s = {.N = N, .C = C, .E = E, .K = K, .H = H};
    Experts x = make_experts(E, C, H);
    float *h = rand_arr(N * C, -1, 1), *sc = rand_arr(N * E, 0.02f, 0.98f), *bias = rand_arr(E, -0.1f, 0.1f), *dy = rand_arr(N * C, -1, 1);
    float *out[2][5];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        Saved sv = saved_new(&s);
        float *y = xcalloc(N * C, sizeof(float)), *dh = xcalloc(N * C, sizeof(float)), *ds = xcalloc(N * E, sizeof(float));
        float *dgu = xcalloc(E * 2 * H * C, sizeof(float)), *ddn = xcalloc(E * C * H, sizeof(float));
        float *pg[16], *pd[16];
        for (size_t e = 0; e < E; e++) pg[e] = dgu + e * 2 * H * C, pd[e] = ddn + e * C * H;
        float *work = xmalloc(moe_work_floats(&s) * sizeof(float));
        moe_forward(&s, y, &sv.sv, h, sc, bias, 1.5f, (const float *const *)x.gu, (const float *const *)x.dn, NULL, sgemm);
        moe_backward(&s, dy, &sv.sv, (const float *const *)x.gu, (const float *const *)x.dn, 1.5f, dh, ds, pg, pd, work, sgemm);
        out[run][0] = y, out[run][1] = dh, out[run][2] = ds, out[run][3] = dgu, out[run][4] = ddn;
        xfree(work);
        saved_free(&sv);
    }
    omp_set_num_threads(2);
    size_t n[5] = {N * C, N * C, N * E, E * 2 * H * C, E * C * H};
    const char *nm[5] = {"y", "dh", "dscores", "dgate_up", "ddown"};
    for (int i = 0; i < 5; i++) {
        CHECK(!memcmp(out[0][i], out[1][i], n[i] * sizeof(float)), "%s differs between 1 and 2 threads", nm[i]);
        xfree(out[0][i]), xfree(out[1][i]);
    }
    printf("  1 vs 2 threads: forward and gradients bit-identical\n");
    free_experts(&x);
    xfree(h), xfree(sc), xfree(bias), xfree(dy);
}

/* ------------------------------------------------------------------ op gradients */
typedef struct OpCase {
    size_t E, K, H;
    float gamma;
    const float *bias;
} OpCase;

/* in: h [B, T, C], logits [B, T, E], then gu[0..E), dn[0..E) */
static Tensor *moe_fn(Tape *tp, Tensor **in, void *user) {
    const OpCase *c = user;
    MoeOpCfg cfg = {.E = c->E, .K = c->K, .H = c->H, .gamma = c->gamma, .bias = c->bias};
    return op_moe(tp, in[0], op_sigmoid(tp, in[1]), in + 2, in + 2 + c->E, &cfg);
}

static void op_gradcheck(const char *name, size_t B, size_t T, size_t C, size_t E, size_t K, size_t H, int with_bias) {
    Tensor *in[2 + 2 * 16];
    float *bias = rand_arr(E, -0.05f, 0.05f); /* affinities stay in (0.1, 0.9) */
    in[0] = tensor_create(3, S(B, T, C), 1, "h");
    rng_fill_uniform(&rng, in[0]->data, in[0]->numel, -1, 1);
    in[1] = tensor_create(3, S(B, T, E), 1, "logits");
    float *sig = xmalloc(B * T * E * sizeof(float));
    spread_scores(sig, with_bias ? bias : NULL, B * T, E, 0.7f / (float)E);
    for (size_t i = 0; i < B * T * E; i++) in[1]->data[i] = logf(sig[i] / (1.0f - sig[i])); /* sigmoid^-1 */
    for (size_t e = 0; e < E; e++) {
        in[2 + e] = tensor_create(2, S(2 * H, C), 1, "gate_up");
        in[2 + E + e] = tensor_create(2, S(C, H), 1, "down");
        rng_fill_uniform(&rng, in[2 + e]->data, in[2 + e]->numel, -0.7f, 0.7f);
        rng_fill_uniform(&rng, in[2 + E + e]->data, in[2 + E + e]->numel, -0.7f, 0.7f);
    }
    OpCase c = {E, K, H, 1.7f, with_bias ? bias : NULL};
    GradCheckOpts o = gradcheck_default_opts();
    o.atol = 2e-4;
    o.rtol = 1e-2;
    o.max_per_input = 48;
    int nin = (int)(2 + 2 * E);
    if (gradcheck(name, moe_fn, in, nin, &c, &o, NULL)) g_failures++;
    for (int i = 0; i < nin; i++) tensor_destroy(in[i]);
    xfree(bias), xfree(sig);
}

/* ------------------------------------------------------------------ bias update */
static void bias_update(void) {
    float bias[5] = {0.0f, 0.25f, -0.5f, 0.0f, 1.0f}, load[5] = {7, 1, 3, 4, 0}; /* mean 3 */
    double bal = moe_bias_update(bias, load, 5, 0.01f);
    /* by hand: sign(3 - load) = -1, +1, 0, -1, +1 */
    float want[5] = {0.0f - 0.01f, 0.25f + 0.01f, -0.5f, 0.0f - 0.01f, 1.0f + 0.01f};
    CHECK(!memcmp(bias, want, sizeof want), "bias %g %g %g %g %g", bias[0], bias[1], bias[2], bias[3], bias[4]);
    CHECK(fabs(bal - 7.0 / 3.0) < 1e-12, "balance %g, want 7/3", bal);
    float zero[3] = {0, 0, 0}, b3[3] = {1, 2, 3};
    CHECK(moe_bias_update(b3, zero, 3, 0.5f) == 0.0 && b3[0] == 1 && b3[2] == 3, "no tokens: no update, balance 0");
    printf("  bias update by hand: ok (balance %.4f)\n", bal);
}

/* ------------------------------------------------------------------ whole models */
#include "model_check.h"

#define model_gradcheck(name, json, B, T) model_gradcheck_opts(name, json, B, T, 1, 3e-4)

#define TINY "\"arch\":\"chimera\",\"vocab_size\":11,\"dim\":8,\"seq_len\":16,\"softcap\":3.0,\"zero_init_proj\":false," \
             "\"embed_init_std\":0.5,\"gdn_heads\":2,\"gdn_head_dim\":3,\"swiglu_hidden\":6,\"moe_hidden\":5"

/* the buffer: registered and exported; training forwards count N K tokens per MoE layer, evaluation
 * forwards none; model_after_step moves the bias by the hand-computed signs */
static void buffer_and_step(void) {
    Err err = {0};
    Model *m = make("{" TINY ",\"layout\":\"EGE\",\"moe_experts\":5,\"moe_topk\":2,\"moe_bias_rate\":0.125}", &err);
    CHECK(m != NULL, "model: %s", err.msg);
    if (!m) return;
    Buffer *b0 = buffers_find(&m->bs, "blocks.0.moe.bias"), *b2 = buffers_find(&m->bs, "blocks.2.moe.bias");
    CHECK(b0 && b2 && b0->exported && b0->dtype == BUF_F32 && b0->numel == 5 && !buffers_find(&m->bs, "blocks.1.moe.bias"),
          "bias buffers missing or wrong");
    size_t n = 0;
    float *cnt = model_step_counts(m, &n);
    CHECK(n == 10 && cnt, "step counters: %zu", n);
    if (!b0 || !b2 || n != 10) {
        model_free(m);
        return;
    }
    int32_t x[12], y[12];
    for (int i = 0; i < 12; i++) x[i] = (i * 3 + 1) % 11, y[i] = (i * 4 + 2) % 11;
    Tape tp;
    tape_init(&tp, 1 << 20);
    model_loss(m, &tp, x, y, 2, 6, NULL, 0);
    double tot = 0;
    for (size_t i = 0; i < n; i++) tot += cnt[i];
    CHECK(tot == 0, "an evaluation forward counted %g tokens", tot);
    tape_reset(&tp);
    model_loss(m, &tp, x, y, 2, 6, NULL, 1);
    tape_reset(&tp);
    model_loss(m, &tp, x, y, 1, 5, NULL, 1);
    double t0 = 0, t1 = 0;
    for (size_t e = 0; e < 5; e++) t0 += cnt[e], t1 += cnt[5 + e];
    CHECK(t0 == 17 * 2 && t1 == 17 * 2, "counted %g and %g tokens, want %d each (17 tokens x top-2)", t0, t1, 34);
    float want[10], *bias[2] = {b0->data, b2->data};
    double worst = 0;
    for (int l = 0; l < 2; l++) {
        double mx = 0;
        for (size_t e = 0; e < 5; e++) {
            float c = cnt[5 * l + e], d = 34.0f / 5.0f - c;
            want[5 * l + e] = bias[l][e] + (d > 0 ? 0.125f : d < 0 ? -0.125f : 0.0f);
            mx = c > mx ? c : mx;
        }
        worst = mx / (34.0 / 5.0) > worst ? mx / (34.0 / 5.0) : worst;
    }
    double bal = model_after_step(m);
    CHECK(!memcmp(bias[0], want, 5 * sizeof(float)) && !memcmp(bias[1], want + 5, 5 * sizeof(float)), "bias after the step");
    CHECK(fabs(bal - worst) < 1e-12, "balance %g, want %g", bal, worst);
    printf("  buffer, counts and update after a step: ok (loads %g %g %g %g %g, balance %.3f)\n", cnt[0], cnt[1], cnt[2], cnt[3],
           cnt[4], bal);
    tape_free(&tp);
    model_free(m);
}

static void model_tests(void) {
    Err err = {0};
    printf("chimera GXGEGXGS at its default width\n");
    Model *m = make("{\"arch\":\"chimera\",\"layout\":\"GXGEGXGS\"}", &err);
    CHECK(m != NULL, "default model: %s", err.msg);
    if (m) {
        /* the E layer's MoE at d = 512: router 16 x 512, 16 routed + 1 shared SwiGLU experts of
         * hidden 768 (round_up(2/3 * 2 * 512, 256)), 3 x 512 x 768 each, in place of a SwiGLU */
        size_t C = 512, want = 16 * C + 17 * 3 * C * 768, got = 0, nt = 0;
        for (size_t i = 0; i < m->ps.n; i++)
            if (!strncmp(m->ps.t[i]->name, "blocks.3.moe.", 13)) got += m->ps.t[i]->numel, nt++;
        printf("  layer 3's MoE: %zu weights in %zu tensors (by hand: %zu in %d)\n", got, nt, want, 35);
        CHECK(got == want && nt == 35 && !params_find(&m->ps, "blocks.3.gate_up.weight") && params_find(&m->ps, "blocks.2.gate_up.weight"),
              "layer 3's MoE: %zu weights in %zu tensors, expected %zu in 35, and no SwiGLU", got, nt, want);
        model_free(m);
    }
    printf("bad configs are errors naming the key\n");
    const char *bad[] = {"{\"arch\":\"chimera\",\"layout\":\"E\",\"moe_topk\":17}", "{\"arch\":\"chimera\",\"moe_experts\":0}",
                         "{\"arch\":\"chimera\",\"moe_experts\":257}", "{\"arch\":\"chimera\",\"moe_bias_rate\":-1}",
                         "{\"arch\":\"chimera\",\"moe_shared\":17}", "{\"arch\":\"chimera\",\"moe_route_scale\":0}",
                         "{\"arch\":\"chimera\",\"layout\":\"E\",\"moe_hidden\":0,\"mlp_mult\":0}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear(&err);
        Model *b = make(bad[i], &err);
        printf("  %-56s -> %s\n", bad[i], err.msg);
        CHECK(b == NULL && strstr(err.msg, "model.moe_"), "%s accepted or the message names no key", bad[i]);
        model_free(b);
    }
    printf("whole tiny models: every parameter's gradient\n");
    model_gradcheck("chimera E B2 T5, 4 experts top-2, 1 shared", "{" TINY ",\"layout\":\"E\",\"moe_experts\":4}", 2, 5);
    model_gradcheck("chimera GE B1 T1, 3 experts top-1, no shared", "{" TINY ",\"layout\":\"GE\",\"moe_experts\":3,\"moe_topk\":1,"
                    "\"moe_shared\":0}", 1, 1);
    model_gradcheck("chimera EE B1 T5, 5 experts top-3, 2 shared, scale 2.5", "{" TINY ",\"layout\":\"EE\",\"moe_experts\":5,"
                    "\"moe_topk\":3,\"moe_shared\":2,\"moe_route_scale\":2.5}", 1, 5);
}

int main(void) {
    rng_seed(&rng, 2024);
    omp_set_num_threads(2);
    printf("sort-based dispatch == dense per-token reference\n");
    tie_break();
    dispatch_vs_dense(1, 5, 3, 2, 3, 1.0f, 0);
    dispatch_vs_dense(37, 9, 7, 3, 11, 2.5f, 0);
    dispatch_vs_dense(200, 16, 16, 2, 24, 1.0f, 0);
    dispatch_vs_dense(13, 7, 4, 4, 5, 1.0f, 0); /* K = E: every expert */
    dispatch_vs_dense(50, 8, 9, 1, 6, 1.0f, 0);
    dispatch_vs_dense(41, 6, 5, 2, 10, 1.0f, 1); /* QAT: int8 activations, per expert its own blocks */
    printf("determinism\n");
    determinism();
    printf("op gradients\n");
    op_gradcheck("moe B2 T5 C7 E4 K2 H3, bias", 2, 5, 7, 4, 2, 3, 1);
    op_gradcheck("moe B1 T1 C5 E3 K2 H2", 1, 1, 5, 3, 2, 2, 0);
    op_gradcheck("moe B1 T9 C6 E5 K1 H4, bias", 1, 9, 6, 5, 1, 4, 1);
    op_gradcheck("moe B3 T3 C4 E3 K3 H3", 3, 3, 4, 3, 3, 3, 0);
    printf("bias update\n");
    bias_update();
    buffer_and_step();
    model_tests();
    return test_summary("test_moe");
}
