/* Finite-difference gradient check for every op, on random inputs and several shapes
 * (odd sizes and T = 1 included), with gradcheck's defaults: Richardson-extrapolated central
 * differences, rtol 2e-3 plus the forward's float32 rounding bound (autodiff/gradcheck.h).
 * Then the check itself: a backward 1% off, and one with a dropped term, must be caught. */
#include <string.h>

#include "autodiff/gradcheck.h"
#include "autodiff/ops.h"
#include "check.h"
#include "kernels/blas_core.h"
#include "kernels/util.h"
#include "wrong_grad.h"

static Rng rng;

typedef struct Case {
    int op;
    size_t a, b, c, d, e; /* op-specific sizes */
    int flag, flag2;
    ActKind act;
    int32_t *idx;
    const RopeTable *rope;
    const DistillTarget *dt;
} Case;

enum {
    OP_ADD, OP_ADD_BCAST, OP_ADD_SCALAR, OP_SUB, OP_SUB_BCAST, OP_MUL, OP_MUL_BCAST, OP_SCALE,
    OP_ADD_MUL, OP_MIX, OP_SUM, OP_MEAN, OP_RESHAPE, OP_CONCAT, OP_SLICE, OP_TOKEN_SHIFT,
    OP_EMBEDDING, OP_MATMUL, OP_LINEAR, OP_ACT, OP_SWIGLU, OP_RMSNORM, OP_RMSNORM_HEADS,
    OP_SOFTMAX, OP_XENT, OP_DISTILL, OP_ATTENTION
};

static Tensor *build(Tape *tp, Tensor **in, void *user) {
    Case *c = user;
    switch (c->op) {
    case OP_ADD: case OP_ADD_BCAST: case OP_ADD_SCALAR: return op_add(tp, in[0], in[1]);
    case OP_SUB: case OP_SUB_BCAST: return op_sub(tp, in[0], in[1]);
    case OP_MUL: case OP_MUL_BCAST: return op_mul(tp, in[0], in[1]);
    case OP_SCALE: return op_scale(tp, in[0], -1.7f);
    case OP_ADD_MUL: return op_add_mul(tp, in[0], in[1], in[2]);
    case OP_MIX: return op_mix(tp, in[0], in[1], in[2], in[3]);
    case OP_SUM: return op_sum(tp, op_mul(tp, in[0], in[0]));
    case OP_MEAN: return op_mean(tp, op_mul(tp, in[0], in[0]));
    case OP_RESHAPE: {
        Tensor *r = op_reshape(tp, in[0], 2, (size_t[]){c->b, c->a});
        return op_mul(tp, r, in[1]); /* in[1] is [c->a] broadcast over the reshaped rows */
    }
    case OP_CONCAT: {
        Tensor *xs[3] = {in[0], in[1], in[2]};
        return op_mul(tp, op_concat(tp, xs, 3), op_concat(tp, xs, 3));
    }
    case OP_SLICE: return op_mul(tp, op_slice(tp, in[0], c->c, c->d), op_slice(tp, in[0], 0, c->d));
    case OP_TOKEN_SHIFT: return op_token_shift(tp, in[0], op_sigmoid(tp, in[1]));
    case OP_EMBEDDING: return op_mul(tp, op_embedding(tp, in[0], c->idx, c->c, 0, NULL), in[1]);
    case OP_MATMUL: return op_matmul(tp, in[0], in[1], c->flag, c->flag2);
    case OP_LINEAR: return op_linear(tp, in[0], in[1], c->flag ? in[2] : NULL);
    case OP_ACT: return op_act(tp, in[0], c->act);
    case OP_SWIGLU: return op_swiglu(tp, in[0]);
    case OP_RMSNORM: return op_rmsnorm(tp, in[0], c->flag ? in[1] : NULL, 1e-6f);
    case OP_RMSNORM_HEADS: return op_rmsnorm_heads(tp, in[0], c->c, 1e-6f);
    case OP_SOFTMAX: return op_softmax(tp, in[0]);
    case OP_XENT: return op_cross_entropy(tp, in[0], c->idx, c->flag ? 5.0f : 0.0f, -1, NULL);
    case OP_DISTILL: return op_distill(tp, in[0], c->idx, c->flag ? 5.0f : 0.0f, c->dt, NULL);
    case OP_ATTENTION:
        return op_attention(tp, in[0], in[1], in[2], c->flag2 ? in[3] : NULL, c->rope, 0.0f);
    }
    return NULL;
}

/* build() with the backward of its last op made wrong: scaled by c->e, or input c->d dropped */
static Tensor *build_wrong(Tape *tp, Tensor **in, void *user) {
    Case *c = user;
    Tensor *out = build(tp, in, user);
    wrong_grad_arm(tp, c->op == OP_LINEAR ? "linear" : "attention", c->e ? 1.01f : 1.0f, c->e ? -1 : (int)c->d);
    return out;
}

static Tensor *rnd(int ndim, const size_t *shape, float std, float shift) {
    Tensor *t = tensor_create(ndim, shape, 1, "x");
    for (size_t i = 0; i < t->numel; i++) t->data[i] = shift + std * rng_normal(&rng);
    return t;
}
#define S(...) ((size_t[]){__VA_ARGS__})

static int run(const char *name, Case *c, Tensor **in, int nin) {
    int bad = gradcheck(name, build, in, nin, c, NULL, NULL);
    if (bad) g_failures++;
    for (int i = 0; i < nin; i++) tensor_destroy(in[i]);
    return bad;
}

/* Pushes values away from a kink at 0 so central differences do not straddle it. */
static void away_from_zero(Tensor *t, float margin) {
    for (size_t i = 0; i < t->numel; i++)
        if (fabsf(t->data[i]) < margin) t->data[i] = t->data[i] < 0 ? -margin : margin;
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    rng_seed(&rng, 7);
    char name[96];

    /* elementwise + broadcast: odd shapes */
    size_t sh[][3] = {{1, 1, 1}, {2, 3, 5}, {3, 1, 17}};
    for (size_t s = 0; s < 3; s++) {
        size_t *d = sh[s];
        Case c = {.op = OP_ADD};
        snprintf(name, sizeof name, "add %zux%zux%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(3, d, 1, 0)}, 2);
        c.op = OP_ADD_BCAST;
        snprintf(name, sizeof name, "add bias [%zu]", d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(1, S(d[2]), 1, 0)}, 2);
        c.op = OP_ADD_SCALAR;
        snprintf(name, sizeof name, "add scalar %zux%zux%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(1, S(1), 1, 0)}, 2);
        c.op = OP_SUB;
        snprintf(name, sizeof name, "sub %zux%zux%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(3, d, 1, 0)}, 2);
        c.op = OP_SUB_BCAST;
        snprintf(name, sizeof name, "sub broadcast [%zu,%zu]", d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(2, S(d[1], d[2]), 1, 0)}, 2);
        c.op = OP_MUL;
        snprintf(name, sizeof name, "mul %zux%zux%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(3, d, 1, 0)}, 2);
        c.op = OP_MUL_BCAST;
        snprintf(name, sizeof name, "mul broadcast [%zu]", d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(1, S(d[2]), 1, 0)}, 2);
        c.op = OP_SCALE;
        snprintf(name, sizeof name, "scale %zux%zux%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0)}, 1);
        c.op = OP_ADD_MUL;
        snprintf(name, sizeof name, "add_mul %zux%zux%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(1, S(d[2]), 1, 0), rnd(3, d, 1, 0)}, 3);
        c.op = OP_MIX;
        snprintf(name, sizeof name, "mix %zux%zux%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(1, S(d[2]), 1, 0), rnd(3, d, 1, 0), rnd(1, S(d[2]), 1, 0)}, 4);
        c.op = OP_SUM;
        snprintf(name, sizeof name, "sum %zux%zux%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0)}, 1);
        c.op = OP_MEAN;
        snprintf(name, sizeof name, "mean %zux%zux%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0)}, 1);
        c.op = OP_TOKEN_SHIFT; /* [B, T, C]: T = 1 in the first shape */
        snprintf(name, sizeof name, "token_shift B%zu T%zu C%zu", d[0], d[1], d[2]);
        run(name, &c, (Tensor *[]){rnd(3, d, 1, 0), rnd(1, S(d[2]), 1, 0)}, 2);
    }
    {
        Case c = {.op = OP_RESHAPE, .a = 6, .b = 5};
        run("reshape [5,2,3] -> [5,6]", &c, (Tensor *[]){rnd(3, S(5, 2, 3), 1, 0), rnd(1, S(6), 1, 0)}, 2);
        c.op = OP_CONCAT;
        run("concat 3 x last dim", &c, (Tensor *[]){rnd(2, S(4, 3), 1, 0), rnd(2, S(4, 1), 1, 0), rnd(2, S(4, 5), 1, 0)}, 3);
        c = (Case){.op = OP_SLICE, .c = 2, .d = 3};
        run("slice [..., 2:5] of 7", &c, (Tensor *[]){rnd(3, S(2, 3, 7), 1, 0)}, 1);
        int32_t idx[9] = {0, 3, 3, 1, 4, 0, 3, 2, 2}; /* repeats accumulate */
        c = (Case){.op = OP_EMBEDDING, .c = 9, .idx = idx};
        run("embedding V5 C7 N9", &c, (Tensor *[]){rnd(2, S(5, 7), 1, 0), rnd(2, S(9, 7), 1, 0)}, 2);
    }
    /* matmul: every transpose combination, odd sizes */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            size_t M = 5, K = 3, N = 7;
            Case c = {.op = OP_MATMUL, .flag = ta, .flag2 = tb};
            snprintf(name, sizeof name, "matmul M5 K3 N7 ta%d tb%d", ta, tb);
            run(name, &c, (Tensor *[]){rnd(2, ta ? S(K, M) : S(M, K), 1, 0), rnd(2, tb ? S(N, K) : S(K, N), 1, 0)}, 2);
        }
    for (int bias = 0; bias < 2; bias++) {
        Case c = {.op = OP_LINEAR, .flag = bias};
        snprintf(name, sizeof name, "linear [2,3,9]->11%s", bias ? " +bias" : "");
        run(name, &c, (Tensor *[]){rnd(3, S(2, 3, 9), 1, 0), rnd(2, S(11, 9), 0.3f, 0), rnd(1, S(11), 1, 0)}, 3);
        snprintf(name, sizeof name, "linear [1,1,1]->1%s", bias ? " +bias" : "");
        run(name, &c, (Tensor *[]){rnd(3, S(1, 1, 1), 1, 0), rnd(2, S(1, 1), 1, 0), rnd(1, S(1), 1, 0)}, 3);
    }
    for (int k = 0; k < ACT_COUNT; k++) {
        Case c = {.op = OP_ACT, .act = (ActKind)k};
        Tensor *x = rnd(2, S(7, 13), 1.5f, 0);
        if (k == ACT_RELU || k == ACT_RELU2 || k == ACT_LEAKY_RELU2) away_from_zero(x, 0.01f);
        snprintf(name, sizeof name, "%s 7x13", act_name((ActKind)k));
        run(name, &c, (Tensor *[]){x}, 1);
    }
    {
        Case c = {.op = OP_SWIGLU};
        run("swiglu [3,5,2x9]", &c, (Tensor *[]){rnd(3, S(3, 5, 18), 1.5f, 0)}, 1);
        for (int gain = 0; gain < 2; gain++) {
            c = (Case){.op = OP_RMSNORM, .flag = gain};
            snprintf(name, sizeof name, "rmsnorm%s [4,13]", gain ? "+gain" : "");
            run(name, &c, (Tensor *[]){rnd(2, S(4, 13), 1, 0.2f), rnd(1, S(13), 1, 1)}, 2);
            snprintf(name, sizeof name, "rmsnorm%s [1,1]", gain ? "+gain" : "");
            run(name, &c, (Tensor *[]){rnd(2, S(1, 1), 1, 1.0f), rnd(1, S(1), 1, 1)}, 2);
        }
        c = (Case){.op = OP_RMSNORM_HEADS, .c = 6};
        run("rmsnorm_heads [2,3,4x6]", &c, (Tensor *[]){rnd(3, S(2, 3, 24), 1, 0.1f)}, 1);
        c = (Case){.op = OP_SOFTMAX};
        run("softmax [3,11]", &c, (Tensor *[]){rnd(2, S(3, 11), 2, 0)}, 1);
        run("softmax [1,1]", &c, (Tensor *[]){rnd(2, S(1, 1), 2, 0)}, 1);
        int32_t tg[6] = {3, 0, -1, 10, 7, 7};
        for (int cap = 0; cap < 2; cap++) {
            c = (Case){.op = OP_XENT, .idx = tg, .flag = cap};
            snprintf(name, sizeof name, "cross_entropy%s N6 V11 (1 ignored)", cap ? "+softcap5" : "");
            run(name, &c, (Tensor *[]){rnd(2, S(6, 11), 4, 0)}, 1);
        }
    }
    {
        /* distillation against a random teacher's top-k (tail class when k < V), with and
         * without softcap, at temperatures 1 and 2, hard-label weights 0.5 / 0.3 / 0 */
        enum { DN = 6, DV = 11 };
        int32_t tg[DN] = {3, 0, 9, 10, 7, 7};
        static int32_t tidx[DN * DV];
        static float tval[DN * DV], tlse[DN];
        size_t kk[3] = {4, DV, 1};
        float temps[3] = {1.0f, 2.0f, 1.5f}, alphas[3] = {0.5f, 0.7f, 1.0f};
        for (int v = 0; v < 3; v++) {
            size_t k = kk[v];
            for (size_t r = 0; r < DN; r++) {
                float zt[DV];
                for (size_t i = 0; i < DV; i++) zt[i] = 2.0f * rng_normal(&rng) / temps[v];
                double mx = -1e30, se = 0;
                for (size_t i = 0; i < DV; i++) mx = zt[i] > mx ? zt[i] : mx;
                for (size_t i = 0; i < DV; i++) se += exp(zt[i] - mx);
                tlse[r] = (float)(mx + log(se));
                int used[DV] = {0};
                for (size_t j = 0; j < k; j++) { /* top-k by selection */
                    size_t best = 0;
                    for (size_t i = 0; i < DV; i++)
                        if (!used[i] && (used[best] || zt[i] > zt[best])) best = i;
                    used[best] = 1;
                    tidx[r * k + j] = (int32_t)best;
                    tval[r * k + j] = zt[best];
                }
            }
            DistillTarget dt = {.idx = tidx, .val = tval, .lse = tlse, .k = k, .temperature = temps[v], .alpha = alphas[v]};
            for (int cap = 0; cap < 2; cap++) {
                Case c = {.op = OP_DISTILL, .idx = tg, .flag = cap, .dt = &dt};
                snprintf(name, sizeof name, "distill%s N6 V11 k%zu T%.1f alpha%.1f", cap ? "+softcap5" : "", k, temps[v], alphas[v]);
                run(name, &c, (Tensor *[]){rnd(2, S(DN, DV), 3, 0)}, 1);
            }
            /* values: alpha 0 is exactly cross-entropy; k = V, alpha 1 is T^2 KL(p || q) */
            Tape tp;
            tape_init(&tp, 0);
            Tensor *z = rnd(2, S(DN, DV), 3, 0);
            DistillTarget d0 = dt;
            d0.alpha = 0;
            float a = op_distill(&tp, z, tg, 0, &d0, NULL)->data[0], b = op_cross_entropy(&tp, z, tg, 0, -1, NULL)->data[0];
            printf("  distill alpha=0 %.7f vs cross_entropy %.7f\n", a, b);
            CHECK(fabsf(a - b) <= 1e-6f * fabsf(b), "alpha 0 == cross-entropy");
            if (k == DV) {
                d0.alpha = 1;
                float kl = op_distill(&tp, z, tg, 0, &d0, NULL)->data[0];
                double ref = 0;
                for (size_t r = 0; r < DN; r++) {
                    double mx = -1e30, se = 0, T = temps[v];
                    for (size_t i = 0; i < DV; i++) mx = z->data[r * DV + i] / T > mx ? z->data[r * DV + i] / T : mx;
                    for (size_t i = 0; i < DV; i++) se += exp(z->data[r * DV + i] / T - mx);
                    for (size_t j = 0; j < DV; j++) {
                        double lp = tval[r * DV + j] - tlse[r], lq = z->data[r * DV + tidx[r * DV + j]] / T - mx - log(se);
                        ref += T * T * exp(lp) * (lp - lq) / DN;
                    }
                }
                printf("  distill k=V alpha=1 %.7f vs T^2 KL(p||q) in double %.7f\n", kl, ref);
                CHECK(fabs(kl - ref) <= 1e-5 * fabs(ref) + 1e-6, "full-vocabulary distillation == T^2 KL");
            }
            tensor_destroy(z);
            tape_free(&tp);
        }
    }
    /* attention: with RoPE + q_gain + GQA, without RoPE, T = 1, T crossing a block */
    size_t acfg[][6] = {{2, 5, 4, 2, 8, 1}, {1, 1, 2, 1, 4, 1}, {1, 7, 3, 3, 6, 0}, {1, 131, 2, 1, 4, 1}};
    for (size_t s = 0; s < 4; s++) {
        size_t B = acfg[s][0], T = acfg[s][1], H = acfg[s][2], G = acfg[s][3], D = acfg[s][4];
        int use_rope = (int)acfg[s][5];
        RopeTable rt;
        rope_table_init(&rt, T, D, 10000.0f);
        Case c = {.op = OP_ATTENTION, .rope = use_rope ? &rt : NULL, .flag2 = use_rope};
        snprintf(name, sizeof name, "attention B%zu T%zu H%zu G%zu D%zu%s", B, T, H, G, D, use_rope ? " rope+gain" : "");
        run(name, &c, (Tensor *[]){rnd(4, S(B, T, H, D), 1, 0), rnd(4, S(B, T, G, D), 1, 0), rnd(4, S(B, T, G, D), 1, 0), rnd(1, S(H), 0.3f, 1.2f)},
            4);
        rope_table_free(&rt);
    }
    {
        /* the check catches real bugs: linear's backward 1% too large; attention without the
         * gradient to k (a dropped term) */
        GradCheckResult r;
        Case c = {.op = OP_LINEAR, .flag = 1, .e = 1};
        Tensor *in[3] = {rnd(3, S(2, 3, 9), 1, 0), rnd(2, S(11, 9), 0.3f, 0), rnd(1, S(11), 1, 0)};
        int caught = gradcheck("linear, backward x1.01 (must FAIL)", build_wrong, in, 3, &c, NULL, &r);
        CHECK(caught && r.failed > 0, "a 1%% gradient error went unnoticed");
        for (int i = 0; i < 3; i++) tensor_destroy(in[i]);
        RopeTable rt;
        rope_table_init(&rt, 5, 8, 10000.0f);
        c = (Case){.op = OP_ATTENTION, .rope = &rt, .flag2 = 1, .d = 1};
        Tensor *ain[4] = {rnd(4, S(2, 5, 4, 8), 1, 0), rnd(4, S(2, 5, 2, 8), 1, 0), rnd(4, S(2, 5, 2, 8), 1, 0), rnd(1, S(4), 0.3f, 1.2f)};
        caught = gradcheck("attention, dk dropped (must FAIL)", build_wrong, ain, 4, &c, NULL, &r);
        CHECK(caught && r.failed > 0, "a dropped gradient term went unnoticed");
        for (int i = 0; i < 4; i++) tensor_destroy(ain[i]);
        rope_table_free(&rt);
    }
    return test_summary("test_gradcheck");
}
