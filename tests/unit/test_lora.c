/* LoRA fine-tuning (model/lora.h, train.lora): the adapted linear and its dropout against finite
 * differences, the fused op against its composition of ops; a step on the frozen base (no gradient buffer) equals the full model's step —
 * every parameter differentiated — restricted to the adapters, through two AdamW steps; merging
 * the adapters into the weights leaves the forward unchanged within 1e-5; the base hash sees
 * one changed value; baking the QAT plan into a frozen base gives what fake quantization on the
 * fly gives. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "autodiff/gradcheck.h"
#include "autodiff/ops.h"
#include "check.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/qat.h"
#include "optim/optimizer.h"

static const char *kModel = "{\"arch\":\"gpt\",\"vocab_size\":48,\"layers\":2,\"dim\":32,\"heads\":2,\"kv_heads\":2,\"seq_len\":16,"
                            "\"zero_init_proj\":false}"; /* zero projections would hide every adapter */
static const char *kTargets[] = {"*.attn.c_q.weight", "*.attn.c_v.weight", "*.mlp.fc.weight"};

static Model *make(void) {
    cJSON *cfg = cJSON_Parse(kModel);
    Model *m = NULL;
    Err err = {0};
    if (model_create(&m, cfg, 7, &err)) printf("  model_create: %s\n", err.msg);
    cJSON_Delete(cfg);
    return m;
}

/* adapters on kTargets, scale alpha/r = 2, with B random (a fresh B is zero: A would get no
 * gradient and the checks below would see half of the adapter) */
static int attach(Model *m, size_t rank, float dropout) {
    Err err = {0};
    int n = lora_attach(m, rank, kTargets, 3, 0, &err);
    if (n < 0) {
        printf("  lora_attach: %s\n", err.msg);
        return -1;
    }
    lora_configure(m, 2.0f, dropout, 11);
    Rng rng;
    rng_seed(&rng, 5);
    lora_reset(m, &rng);
    for (size_t k = 0; k < m->lora->npairs; k++) rng_fill_uniform(&rng, m->lora->B[k]->data, m->lora->B[k]->numel, -0.2f, 0.2f);
    return n;
}

static void tokens(int32_t *x, int32_t *y, size_t n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        x[i] = (int32_t)rng_below(&r, 48);
        y[i] = (int32_t)rng_below(&r, 48);
    }
}

/* ---- gradient check of the adapted linear: x [3, 5, 12], W [10, 12], b [10], A [4, 12], B [10, 4] */
typedef struct {
    float p;
} LinCase;

static Tensor *build_lin(Tape *tp, Tensor **in, void *user) {
    const LinCase *c = user;
    return op_lora_linear(tp, in[0], in[1], in[2], in[3], in[4], 2.0f, c->p, 1234);
}

/* the fused op against its reference composition (lora_linear): outputs and every gradient */
static void test_fused_vs_composition(void) {
    printf("op_lora_linear == the composition of ops (forward, every gradient)\n");
    const size_t N = 150, in = 24, out = 20, r = 3; /* N > 2 row blocks of the dropout */
    const size_t sx[2] = {N, in}, sw[2] = {out, in}, sb[1] = {out}, sa[2] = {r, in}, sbb[2] = {out, r};
    Tensor *t[5] = {tensor_create(2, sx, 1, "x"), tensor_create(2, sw, 1, "W"), tensor_create(1, sb, 1, "b"),
                    tensor_create(2, sa, 1, "A"), tensor_create(2, sbb, 1, "B")};
    Rng rng;
    rng_seed(&rng, 8);
    for (int i = 0; i < 5; i++) rng_fill_uniform(&rng, t[i]->data, t[i]->numel, -1.0f, 1.0f);
    float *seed = xmalloc(N * out * sizeof(float));
    rng_fill_uniform(&rng, seed, N * out, -1.0f, 1.0f);
    float *ref[5], *got;
    for (int k = 0; k < 2; k++) {
        float p = k ? 0.3f : 0.0f;
        Tensor *bias = k ? NULL : t[2];
        Tape tp;
        tape_init(&tp, 0);
        for (int i = 0; i < 5; i++) memset(t[i]->grad, 0, t[i]->numel * sizeof(float));
        Tensor *y1 = lora_linear(&tp, t[0], t[1], bias, t[3], t[4], 1.5f, p, 77);
        tape_backward_seed(&tp, y1, seed);
        float *yref = xmalloc(N * out * sizeof(float));
        memcpy(yref, y1->data, N * out * sizeof(float));
        for (int i = 0; i < 5; i++) {
            ref[i] = xmalloc(t[i]->numel * sizeof(float));
            memcpy(ref[i], t[i]->grad, t[i]->numel * sizeof(float));
            memset(t[i]->grad, 0, t[i]->numel * sizeof(float));
        }
        tape_reset(&tp);
        Tensor *y2 = op_lora_linear(&tp, t[0], t[1], bias, t[3], t[4], 1.5f, p, 77);
        tape_backward_seed(&tp, y2, seed);
        got = y2->data;
        char what[64];
        snprintf(what, sizeof what, "p %.1f%s: y", (double)p, bias ? " + bias" : "");
        compare_arrays(what, got, yref, N * out, 1e-5, 1e-5);
        const char *names[5] = {"dx", "dW", "db", "dA", "dB"};
        for (int i = 0; i < 5; i++) {
            if (i == 2 && !bias) continue;
            snprintf(what, sizeof what, "p %.1f%s: %s", (double)p, bias ? " + bias" : "", names[i]);
            compare_arrays(what, t[i]->grad, ref[i], t[i]->numel, 1e-4, 1e-5);
        }
        for (int i = 0; i < 5; i++) xfree(ref[i]);
        xfree(yref);
        tape_free(&tp);
    }
    xfree(seed);
    for (int i = 0; i < 5; i++) tensor_destroy(t[i]);
}

static void test_gradcheck(void) {
    printf("adapted linear vs finite differences\n");
    const size_t sx[3] = {3, 5, 12}, sw[2] = {10, 12}, sb[1] = {10}, sa[2] = {4, 12}, sbb[2] = {10, 4};
    Tensor *in[5] = {tensor_create(3, sx, 1, "x"), tensor_create(2, sw, 1, "W"), tensor_create(1, sb, 1, "b"),
                     tensor_create(2, sa, 1, "A"), tensor_create(2, sbb, 1, "B")};
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < 5; i++) rng_fill_uniform(&r, in[i]->data, in[i]->numel, -1.0f, 1.0f);
    for (int k = 0; k < 2; k++) {
        LinCase c = {k ? 0.3f : 0.0f};
        char name[64];
        snprintf(name, sizeof name, "op_lora_linear (dropout %.1f)", (double)c.p);
        CHECK(gradcheck(name, build_lin, in, 5, &c, NULL, NULL) == 0, "%s", name);
    }
    /* the frozen base: W and b without grad, A and B still checked */
    in[1]->requires_grad = in[2]->requires_grad = 0;
    LinCase c = {0.25f};
    CHECK(gradcheck("op_lora_linear, W and b frozen", build_lin, in, 5, &c, NULL, NULL) == 0, "frozen W");
    for (int i = 0; i < 5; i++) tensor_destroy(in[i]);
}

/* dropout: a fraction p of the elements zeroed, the rest scaled by 1 / (1 - p), reproducible
 * from its key and different across keys */
static void test_dropout(void) {
    printf("dropout\n");
    const size_t n = 20000;
    Tape tp;
    tape_init(&tp, 0);
    Tensor *x = tensor_new1(&tp, n);
    for (size_t i = 0; i < n; i++) x->data[i] = 1.0f;
    Tensor *a = op_dropout(&tp, x, 0.25f, 9), *b = op_dropout(&tp, x, 0.25f, 9), *c = op_dropout(&tp, x, 0.25f, 10);
    size_t zeros = 0, same = 0, diff = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        zeros += a->data[i] == 0.0f;
        bad += a->data[i] != 0.0f && fabsf(a->data[i] - 1.0f / 0.75f) > 1e-6f;
        same += a->data[i] == b->data[i];
        diff += a->data[i] != c->data[i];
    }
    double frac = (double)zeros / (double)n; /* binomial: sd = sqrt(p(1-p)/n) = 0.003 */
    printf("  dropped %.4f (p 0.25), %zu differ from another key's mask\n", frac, diff);
    CHECK(fabs(frac - 0.25) < 0.02, "dropped fraction %.4f", frac);
    CHECK(bad == 0, "%zu kept elements not scaled by 1/(1-p)", bad);
    CHECK(same == n, "the same key gave another mask");
    CHECK(diff > n / 10, "another key gave nearly the same mask (%zu differ)", diff);
    CHECK(op_dropout(&tp, x, 0.0f, 9) == x, "p = 0 must return its input");
    tape_free(&tp);
}

/* naive AdamW (PyTorch's bias-corrected form, optim/optimizer.h) in double, over one tensor */
static void adamw_ref(float *p, const float *g, double *m, double *v, size_t n, double lr, double wd, uint64_t t) {
    const double b1 = 0.9, b2 = 0.95, eps = 1e-6;
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
        double mh = m[i] / (1 - pow(b1, (double)t)), vh = v[i] / (1 - pow(b2, (double)t));
        p[i] = (float)(p[i] * (1 - lr * wd) - lr * mh / (sqrt(vh) + eps));
    }
}

static void test_step_equals_full(void) {
    printf("LoRA step (frozen base) == the full model's step restricted to the adapters\n");
    Model *lo = make(), *full = make();
    if (!lo || !full || attach(lo, 4, 0.0f) < 0 || attach(full, 4, 0.0f) < 0) {
        CHECK(0, "setup");
        return;
    }
    params_freeze(&lo->ps);
    CHECK(lo->ps.grads == NULL, "a frozen base keeps no gradient buffer");
    float *base0 = xmalloc(lo->ps.total * sizeof(float));
    memcpy(base0, lo->ps.values, lo->ps.total * sizeof(float));
    const ParamStore *aps = &lo->lora->ps, *fps = &full->lora->ps;
    cJSON *oc = cJSON_Parse("{\"groups\":{\"lora\":{\"type\":\"adamw\",\"lr\":0.01,\"wd\":0.1,\"eps\":1e-6}},"
                            "\"rules\":[{\"match\":\"*\",\"group\":\"lora\"}]}");
    Optimizer opt;
    Err err = {0};
    CHECK(optimizer_init(&opt, &lo->lora->ps, oc, NULL, NULL, &err) == 0, "optimizer_init: %s", err.msg);
    cJSON_Delete(oc);
    double *m = xcalloc(fps->total, sizeof(double)), *v = xcalloc(fps->total, sizeof(double));
    const size_t B = 2, T = 16;
    int32_t x[32], y[32];
    Tape tp;
    tape_init(&tp, 0);
    for (uint64_t step = 1; step <= 2; step++) {
        tokens(x, y, B * T, 100 + step);
        params_zero_grad(&lo->lora->ps);
        params_zero_grad(&full->ps);
        params_zero_grad(&full->lora->ps);
        tape_reset(&tp);
        Tensor *l1 = model_loss(lo, &tp, x, y, B, T, NULL, 1);
        tape_backward(&tp, l1);
        double loss1 = l1->data[0]; /* the arena is dropped by the next reset */
        size_t entries_lora = tp.n;
        tape_reset(&tp);
        Tensor *l2 = model_loss(full, &tp, x, y, B, T, NULL, 1);
        tape_backward(&tp, l2);
        printf("  step %llu: loss %.6f vs %.6f; tape %zu vs %zu entries; full base grad norm %.3e\n", (unsigned long long)step,
               loss1, (double)l2->data[0], entries_lora, tp.n, params_grad_norm(&full->ps));
        CHECK(params_grad_norm(&full->ps) > 0, "the full model's base must have gradients");
        CHECK(params_grad_norm(aps) > 1e-4, "the adapters must have gradients (norm %.3e)", params_grad_norm(aps));
        compare_arrays("adapter grads: frozen base vs full", aps->grads, fps->grads, aps->total, 1e-7, 1e-5);
        optimizer_step(&opt, 1.0);
        for (size_t i = 0; i < fps->n; i++) {
            const Tensor *t = fps->t[i];
            size_t off = params_offset(fps, t);
            adamw_ref(t->data, t->grad, m + off, v + off, t->numel, 0.01, 0.1, step);
        }
        compare_arrays("adapters after the AdamW step", aps->values, fps->values, aps->total, 1e-6, 1e-5);
    }
    CHECK(memcmp(base0, lo->ps.values, lo->ps.total * sizeof(float)) == 0, "the frozen base changed");
    tape_free(&tp);
    optimizer_free(&opt);
    xfree(m);
    xfree(v);
    xfree(base0);
    model_free(lo);
    model_free(full);
}

static void test_merge(void) {
    printf("merge == unmerged forward\n");
    Model *m = make();
    if (!m || attach(m, 4, 0.3f) < 0) { /* dropout: off in evaluation forwards, merged or not */
        CHECK(0, "setup");
        return;
    }
    const size_t B = 2, T = 16, V = 48;
    int32_t x[32], y[32];
    tokens(x, y, B * T, 7);
    Tape tp;
    tape_init(&tp, 0);
    Tensor *z = model_forward(m, &tp, x, B, T, 0);
    float *before = xmalloc(B * T * V * sizeof(float));
    memcpy(before, z->data, B * T * V * sizeof(float));
    lora_merge(m);
    CHECK(m->lora == NULL, "lora_merge detaches the adapters");
    tape_reset(&tp);
    z = model_forward(m, &tp, x, B, T, 0);
    double dmax = compare_arrays("logits merged vs unmerged (1e-5)", z->data, before, B * T * V, 1e-5, 0);
    /* the adapters mattered: the same model without them differs by far more */
    Model *base = make();
    tape_reset(&tp);
    Tensor *zb = model_forward(base, &tp, x, B, T, 0);
    double dbase = 0;
    for (size_t i = 0; i < B * T * V; i++) dbase = fmax(dbase, fabs((double)zb->data[i] - before[i]));
    printf("  base alone differs by %.3e (merge error %.3e)\n", dbase, dmax);
    CHECK(dbase > 1e-3, "the adapters changed nothing (%.3e): the merge check means nothing", dbase);
    tape_free(&tp);
    xfree(before);
    model_free(base);
    model_free(m);
}

static void test_hash(void) {
    printf("base hash\n");
    Model *a = make(), *b = make();
    uint64_t ha = lora_params_hash(&a->ps), hb = lora_params_hash(&b->ps);
    CHECK(ha == hb, "the same parameters hash alike");
    b->ps.t[3]->data[5] = nextafterf(b->ps.t[3]->data[5], 1e30f);
    CHECK(lora_params_hash(&b->ps) != ha, "one ulp of one value must change the hash");
    model_free(a);
    model_free(b);
}

/* a QAT base baked once == fake quantization on every forward */
static void test_bake(void) {
    printf("QAT base baked once == fake-quantized forward\n");
    const char *plans[2] = {"{\"qat\":true,\"weights\":\"int5\",\"min_numel\":0}",
                            "{\"qat\":true,\"weights\":\"ternary\",\"group\":16,\"min_numel\":0}"};
    for (int k = 0; k < 2; k++) {
        Model *live = make(), *baked = make();
        cJSON *q = cJSON_Parse(plans[k]);
        Err err = {0};
        CHECK(quant_plan_attach(live, q, NULL, NULL, NULL, &err) == 0 && quant_plan_attach(baked, q, NULL, NULL, NULL, &err) == 0,
              "%s", err.msg);
        cJSON_Delete(q);
        attach(live, 4, 0.0f);
        attach(baked, 4, 0.0f);
        live->qat_active = 1;
        quant_plan_bake(baked);
        CHECK(!baked->qat_active && !baked->qplan->qat, "baking switches QAT off");
        int32_t x[32], y[32];
        tokens(x, y, 32, 9);
        Tape tp;
        tape_init(&tp, 0);
        Tensor *z1 = model_forward(live, &tp, x, 2, 16, 1);
        Tape tp2;
        tape_init(&tp2, 0);
        Tensor *z2 = model_forward(baked, &tp2, x, 2, 16, 1);
        compare_arrays(k ? "ternary: baked vs live logits" : "int5: baked vs live logits", z2->data, z1->data, 32 * 48, 1e-5, 1e-5);
        tape_free(&tp);
        tape_free(&tp2);
        model_free(live);
        model_free(baked);
    }
}

int main(void) {
    test_gradcheck();
    test_dropout();
    test_fused_vs_composition();
    test_step_equals_full();
    test_merge();
    test_hash();
    test_bake();
    return test_summary("test_lora");
}
