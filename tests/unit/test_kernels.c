/* Fast kernels equal their naive references (random inputs, several shapes incl. odd sizes). */
#include <string.h>

#include "check.h"
#include "kernels/act.h"
#include "kernels/attention.h"
#include "kernels/blas_core.h"
#include "kernels/gemm.h"
#include "kernels/gemm_small.h"
#include "kernels/norm.h"
#include "kernels/quant.h"
#include "kernels/reduce.h"
#include "kernels/rng.h"
#include "kernels/softmax.h"
#include "kernels/util.h"

static Rng rng;

static float *randn(size_t n, float std) {
    float *x = xmalloc(n * sizeof(float));
    rng_fill_normal(&rng, x, n, 0.0f, std);
    return x;
}
static float *zeros(size_t n) { return xcalloc(n, sizeof(float)); }

static void test_gemm(void) {
    printf("sgemm vs sgemm_ref\n");
    size_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {64, 33, 17}, {128, 96, 200}};
    for (size_t s = 0; s < TERN_ARRAY_LEN(shapes); s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                float *A = randn(M * K, 1), *B = randn(K * N, 1), *C1 = randn(M * N, 1);
                float *C2 = xmalloc(M * N * sizeof(float));
                memcpy(C2, C1, M * N * sizeof(float));
                sgemm(ta, tb, M, N, K, 0.7f, A, ta ? M : K, B, tb ? K : N, 0.5f, C1, N);
                sgemm_ref(ta, tb, M, N, K, 0.7f, A, ta ? M : K, B, tb ? K : N, 0.5f, C2, N);
                char what[96];
                snprintf(what, sizeof what, "sgemm M%zu N%zu K%zu ta%d tb%d", M, N, K, ta, tb);
                compare_arrays(what, C1, C2, M * N, 1e-5, 1e-4);
                xfree(A); xfree(B); xfree(C1); xfree(C2);
            }
}

/* gemm_small vs sgemm_ref: every transpose, whole and partial tiles (rows 1..9, columns around the
 * vector widths 8 / 16 / 32 and the mLSTM's D + 1), padded row strides, beta 0 over a C full of
 * NaN (must not be read), a panel too big for the stack (the sgemm fallback), and the triangular
 * shapes (op(A) with zeros above / below the diagonal; only C's lower triangle compared) */
static void gemm_small_case(size_t M, size_t N, size_t K, int ta, int tb, int zb, GemmTri tri) {
    size_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    float *A = randn((ta ? K : M) * lda, 1), *B = randn((tb ? N : K) * ldb, 1), *C1 = randn(M * ldc, 1);
    float *C2 = xmalloc(M * ldc * sizeof(float)), beta = zb ? 0.0f : 0.5f;
    for (size_t i = 0; i < M; i++) /* zero op(A)[i][p] where the shape says so */
        for (size_t p = 0; p < K; p++)
            if ((tri == GEMM_A_LOWER && p > i) || (tri == GEMM_A_UPPER && p < i)) A[ta ? p * lda + i : i * lda + p] = 0.0f;
    if (zb)
        for (size_t i = 0; i < M * ldc; i++) C1[i] = NAN;
    memcpy(C2, C1, M * ldc * sizeof(float));
    gemm_small_tri(ta, tb, tri, M, N, K, 0.7f, A, lda, B, ldb, beta, C1, ldc);
    sgemm_ref(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, C2, ldc);
    char what[96];
    snprintf(what, sizeof what, "gemm_small M%zu N%zu K%zu ta%d tb%d beta%g tri%d", M, N, K, ta, tb, beta, (int)tri);
    size_t n = 0;
    for (size_t i = 0; i < M; i++) {
        for (size_t j = N; j < ldc; j++) /* the padding columns stay untouched */
            CHECK(memcmp(&C1[i * ldc + j], &C2[i * ldc + j], sizeof(float)) == 0, "%s: wrote past N", what);
        for (size_t j = 0; j < N && (tri != GEMM_C_LOWER || j <= i); j++) C1[n] = C1[i * ldc + j], C2[n++] = C2[i * ldc + j];
    }
    compare_arrays(what, C1, C2, n, 1e-5, 1e-4);
    xfree(A); xfree(B); xfree(C1); xfree(C2);
}

static void test_gemm_small(void) {
    printf("gemm_small vs sgemm_ref\n");
    Rng saved = rng; /* the later tests draw the inputs they drew before this test existed */
    size_t shapes[][3] = {{1, 1, 1}, {9, 7, 3}, {8, 16, 5}, {13, 33, 17}, {64, 65, 64}, {32, 64, 32}, {6, 48, 1},
                          {130, 100, 129}, {64, 64, 300}};
    for (size_t s = 0; s < TERN_ARRAY_LEN(shapes); s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int zb = 0; zb < 2; zb++) gemm_small_case(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, zb, GEMM_FULL);
    size_t sq[][3] = {{64, 64, 64}, {37, 65, 37}, {9, 40, 9}, {64, 64, 33}, {20, 50, 70}};
    for (size_t s = 0; s < TERN_ARRAY_LEN(sq); s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int tri = GEMM_A_LOWER; tri <= GEMM_C_LOWER; tri++)
                    gemm_small_case(sq[s][0], sq[s][1], sq[s][2], ta, tb, 1, (GemmTri)tri);
    rng = saved;
}

static void test_act(void) {
    printf("activations vs reference\n");
    size_t n = 100003; /* odd, above the OpenMP threshold */
    float *x = randn(n, 3.0f);
    for (size_t i = 0; i < 50; i++) x[i] = (float)((int)i - 25) * 1.7f; /* include large |x| */
    x[50] = 25.0f; /* softplus threshold branch */
    float *dy = randn(n, 1.0f);
    for (int k = 0; k < ACT_COUNT; k++) {
        float *y1 = zeros(n), *y2 = zeros(n), *d1 = zeros(n), *d2 = zeros(n);
        act_forward((ActKind)k, y1, x, n);
        act_forward_ref((ActKind)k, y2, x, n);
        act_backward((ActKind)k, d1, dy, x, y1, n);
        act_backward_ref((ActKind)k, d2, dy, x, y2, n);
        char what[64];
        snprintf(what, sizeof what, "%s forward", act_name((ActKind)k));
        compare_arrays(what, y1, y2, n, 1e-6, 2e-6);
        snprintf(what, sizeof what, "%s backward", act_name((ActKind)k));
        compare_arrays(what, d1, d2, n, 1e-6, 2e-6);
        xfree(y1); xfree(y2); xfree(d1); xfree(d2);
    }
    size_t N = 37, H = 51;
    float *xs = randn(N * 2 * H, 2.0f), *d = randn(N * H, 1.0f);
    float *o1 = zeros(N * H), *o2 = zeros(N * H), *g1 = zeros(N * 2 * H), *g2 = zeros(N * 2 * H);
    swiglu_forward(o1, xs, N, H);
    swiglu_forward_ref(o2, xs, N, H);
    swiglu_backward(g1, d, xs, N, H);
    swiglu_backward_ref(g2, d, xs, N, H);
    compare_arrays("swiglu forward", o1, o2, N * H, 1e-6, 2e-6);
    compare_arrays("swiglu backward", g1, g2, N * 2 * H, 1e-6, 2e-6);
    xfree(x); xfree(dy); xfree(xs); xfree(d); xfree(o1); xfree(o2); xfree(g1); xfree(g2);
}

static void test_norm_softmax(void) {
    printf("rmsnorm / softmax / cross-entropy vs reference\n");
    size_t shapes[][2] = {{1, 1}, {3, 7}, {130, 64}, {1000, 513}};
    for (size_t s = 0; s < TERN_ARRAY_LEN(shapes); s++) {
        size_t N = shapes[s][0], C = shapes[s][1];
        float *x = randn(N * C, 1.5f), *w = randn(C, 1.0f), *dy = randn(N * C, 1.0f);
        float *y1 = zeros(N * C), *y2 = zeros(N * C), *r1 = zeros(N), *r2 = zeros(N);
        float *dx1 = zeros(N * C), *dx2 = zeros(N * C), *dw1 = zeros(C), *dw2 = zeros(C);
        float *scratch = zeros(rmsnorm_scratch_floats(C));
        char what[96];
        for (int gain = 0; gain < 2; gain++) {
            memset(dx1, 0, N * C * 4); memset(dx2, 0, N * C * 4); memset(dw1, 0, C * 4); memset(dw2, 0, C * 4);
            rmsnorm_forward(y1, r1, x, gain ? w : NULL, N, C, 1e-6f);
            rmsnorm_forward_ref(y2, r2, x, gain ? w : NULL, N, C, 1e-6f);
            rmsnorm_backward(dx1, gain ? dw1 : NULL, dy, x, gain ? w : NULL, r1, N, C, scratch);
            rmsnorm_backward_ref(dx2, gain ? dw2 : NULL, dy, x, gain ? w : NULL, r2, N, C);
            snprintf(what, sizeof what, "rmsnorm%s fwd %zux%zu", gain ? "+gain" : "", N, C);
            compare_arrays(what, y1, y2, N * C, 1e-6, 1e-5);
            snprintf(what, sizeof what, "rmsnorm%s bwd dx %zux%zu", gain ? "+gain" : "", N, C);
            compare_arrays(what, dx1, dx2, N * C, 1e-5, 1e-4);
            if (gain) {
                snprintf(what, sizeof what, "rmsnorm+gain bwd dw %zux%zu", N, C);
                compare_arrays(what, dw1, dw2, C, 1e-4, 1e-4);
            }
        }
        softmax_forward(y1, x, N, C);
        softmax_forward_ref(y2, x, N, C);
        snprintf(what, sizeof what, "softmax fwd %zux%zu", N, C);
        compare_arrays(what, y1, y2, N * C, 1e-7, 1e-5);
        memset(dx1, 0, N * C * 4); memset(dx2, 0, N * C * 4);
        softmax_backward(dx1, dy, y1, N, C);
        softmax_backward_ref(dx2, dy, y2, N, C);
        snprintf(what, sizeof what, "softmax bwd %zux%zu", N, C);
        compare_arrays(what, dx1, dx2, N * C, 1e-6, 1e-5);

        int32_t *tg = xmalloc(N * sizeof(int32_t));
        for (size_t r = 0; r < N; r++) tg[r] = (int32_t)rng_below(&rng, C);
        if (N > 2) tg[1] = -100;
        float *dl = randn(N, 1.0f);
        for (int cap = 0; cap < 2; cap++) {
            float sc = cap ? 30.0f : 0.0f;
            float *l1 = zeros(N), *l2 = zeros(N);
            float *x10 = xmalloc(N * C * 4);
            for (size_t i = 0; i < N * C; i++) x10[i] = 10.0f * x[i]; /* exercise the cap */
            xent_forward(l1, r1, x10, tg, N, C, sc, -100);
            xent_forward_ref(l2, r2, x10, tg, N, C, sc, -100);
            memset(dx1, 0, N * C * 4); memset(dx2, 0, N * C * 4);
            xent_backward(dx1, dl, x10, r1, tg, N, C, sc, -100);
            xent_backward_ref(dx2, dl, x10, r2, tg, N, C, sc, -100);
            snprintf(what, sizeof what, "xent%s loss %zux%zu", cap ? "+softcap" : "", N, C);
            compare_arrays(what, l1, l2, N, 2e-5, 2e-6);
            snprintf(what, sizeof what, "xent%s grad %zux%zu", cap ? "+softcap" : "", N, C);
            compare_arrays(what, dx1, dx2, N * C, 1e-6, 1e-4);
            xfree(l1); xfree(l2); xfree(x10);
        }
        xfree(tg); xfree(dl);
        xfree(x); xfree(w); xfree(dy); xfree(y1); xfree(y2); xfree(r1); xfree(r2);
        xfree(dx1); xfree(dx2); xfree(dw1); xfree(dw2); xfree(scratch);
    }
}

static void test_attention(void) {
    printf("attention (blocked, recomputing) vs naive reference\n");
    size_t cfg[][5] = {{1, 1, 2, 1, 8}, {2, 37, 4, 2, 16}, {1, 130, 2, 2, 8}, {1, 300, 8, 4, 64}};
    for (size_t s = 0; s < TERN_ARRAY_LEN(cfg); s++) {
        size_t B = cfg[s][0], T = cfg[s][1], H = cfg[s][2], G = cfg[s][3], D = cfg[s][4];
        size_t nq = B * T * H * D, nk = B * T * G * D;
        float *q = randn(nq, 1), *k = randn(nk, 1), *v = randn(nk, 1), *dO = randn(nq, 1);
        float *o1 = zeros(nq), *o2 = zeros(nq), *l1 = zeros(B * H * T), *l2 = zeros(B * H * T);
        float *scratch = zeros(attention_scratch_floats(T));
        float scale = 1.0f / sqrtf((float)D) * 1.5f;
        attention_forward(o1, l1, q, k, v, B, T, H, G, D, scale, scratch);
        attention_forward_ref(o2, l2, q, k, v, B, T, H, G, D, scale);
        char what[96];
        snprintf(what, sizeof what, "attn fwd B%zu T%zu H%zu G%zu D%zu", B, T, H, G, D);
        compare_arrays(what, o1, o2, nq, 1e-5, 1e-4);
        compare_arrays("attn lse", l1, l2, B * H * T, 1e-5, 1e-5);
        float *dq1 = zeros(nq), *dk1 = zeros(nk), *dv1 = zeros(nk);
        float *dq2 = zeros(nq), *dk2 = zeros(nk), *dv2 = zeros(nk);
        attention_backward(dq1, dk1, dv1, dO, q, k, v, o1, l1, B, T, H, G, D, scale, scratch);
        attention_backward_ref(dq2, dk2, dv2, dO, q, k, v, B, T, H, G, D, scale);
        compare_arrays("attn bwd dq", dq1, dq2, nq, 1e-4, 1e-3);
        compare_arrays("attn bwd dk", dk1, dk2, nk, 1e-4, 1e-3);
        compare_arrays("attn bwd dv", dv1, dv2, nk, 1e-4, 1e-3);
        xfree(q); xfree(k); xfree(v); xfree(dO); xfree(o1); xfree(o2); xfree(l1); xfree(l2);
        xfree(scratch); xfree(dq1); xfree(dk1); xfree(dv1); xfree(dq2); xfree(dk2); xfree(dv2);
    }
    /* RoPE: backward is the exact transpose of forward: <R x, y> == <x, R^T y> */
    RopeTable rt;
    rope_table_init(&rt, 50, 16, 10000.0f);
    size_t n = 2 * 50 * 3 * 16;
    float *x = randn(n, 1), *y = randn(n, 1), *rx = zeros(n), *rty = zeros(n);
    rope_forward(rx, x, &rt, 2, 50, 3);
    rope_backward(rty, y, &rt, 2, 50, 3);
    double a = reduce_dot(rx, y, n), b = reduce_dot(x, rty, n);
    printf("  rope <Rx,y> %.9f vs <x,R^T y> %.9f\n", a, b);
    CHECK(fabs(a - b) < 1e-4 * (1 + fabs(a)), "rope adjoint mismatch");
    /* and it preserves norms (a rotation) */
    double nx = reduce_sumsq(x, n), nrx = reduce_sumsq(rx, n);
    CHECK(fabs(nx - nrx) < 1e-4 * nx, "rope changes the norm: %f vs %f", nx, nrx);
    rope_table_free(&rt);
    xfree(x); xfree(y); xfree(rx); xfree(rty);
}

static void test_reduce(void) {
    printf("deterministic reductions\n");
    size_t n = 5000001;
    float *x = randn(n, 1);
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    double a = reduce_sumsq(x, n);
    printf("  sumsq %.6f vs serial %.6f\n", a, ref);
    CHECK(fabs(a - ref) < 1e-9 * ref, "sumsq differs");
    tern_set_threads(1);
    double b = reduce_sumsq(x, n);
    tern_set_threads(2);
    double c = reduce_sumsq(x, n);
    CHECK(a == b && b == c, "reduction depends on thread count: %.17g %.17g %.17g", a, b, c);
    x[77] = NAN;
    CHECK(!reduce_all_finite(x, n), "NaN not detected");
    xfree(x);
}

static void test_quant(void) {
    printf("quantizers vs reference (full-sort quantile)\n");
    size_t shapes[][2] = {{1, 1}, {3, 7}, {64, 512}, {10, 1000}};
    for (size_t s = 0; s < TERN_ARRAY_LEN(shapes); s++) {
        size_t R = shapes[s][0], C = shapes[s][1];
        float *w = randn(R * C, 0.05f), *a = zeros(R * C), *b = zeros(R * C);
        QuantSpec specs[] = {{.kind = QUANT_INT, .bits = 5, .quantile = 0.9999984},
                             {.kind = QUANT_INT, .bits = 8, .quantile = 0.99, .scale_fp16 = 1},
                             {.kind = QUANT_TERNARY, .group = 128},
                             {.kind = QUANT_TERNARY, .group = 0, .scale_fp16 = 1}};
        for (size_t k = 0; k < TERN_ARRAY_LEN(specs); k++) {
            fake_quantize_weights(a, w, R, C, &specs[k]);
            fake_quantize_weights_ref(b, w, R, C, &specs[k]);
            char what[96];
            snprintf(what, sizeof what, "%s%d %zux%zu%s", specs[k].kind == QUANT_INT ? "int" : "ternary G",
                     specs[k].kind == QUANT_INT ? specs[k].bits : (int)specs[k].group, R, C, specs[k].scale_fp16 ? " fp16 scales" : "");
            compare_arrays(what, a, b, R * C, 0, 1e-6);
        }
        xfree(w); xfree(a); xfree(b);
    }
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        if (f == f && f32_to_f16(f) != h && !(h == 0x8000 && f32_to_f16(f) == 0x8000)) bad++;
    }
    printf("  fp16 -> fp32 -> fp16 round trip over all 65536 halves: %d mismatches\n", bad);
    CHECK(bad == 0, "half round trip");
}

/* The BLAS core rule (kernels/blas_core.c): a core below the CPU is replaced, never one at or
 * above it, and names the table does not know are left alone. */
static void test_blas_core_rule(void) {
    static const struct {
        const char *now;
        CpuIsa isa;
        const char *want; /* NULL: keep */
    } cases[] = {{"Prescott", ISA_AVX512, "SkylakeX"}, {"Prescott", ISA_AVX2, "Haswell"}, {"PRESCOTT", ISA_AVX2, "Haswell"},
                 {"Core2", ISA_AVX512, "SkylakeX"},    {"Nehalem", ISA_AVX2, "Haswell"},   {"Sandybridge", ISA_AVX2, "Haswell"},
                 {"Barcelona", ISA_AVX2, "Haswell"},   {"Unknown", ISA_AVX512, "SkylakeX"}, {"Haswell", ISA_AVX512, "SkylakeX"},
                 {"Zen", ISA_AVX512, "SkylakeX"},      {"Haswell", ISA_AVX2, NULL},        {"Zen", ISA_AVX2, NULL},
                 {"SkylakeX", ISA_AVX512, NULL},       {"Cooperlake", ISA_AVX512, NULL},   {"SapphireRapids", ISA_AVX512, NULL},
                 {"SkylakeX", ISA_AVX2, NULL},         {"Prescott", ISA_OLD, NULL},        {"NEOVERSEN1", ISA_OLD, NULL},
                 {"SomeFutureCore", ISA_AVX512, NULL}};
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = blas_core_upgrade(cases[i].now, cases[i].isa), *want = cases[i].want;
        if (got == want || (got && want && !strcmp(got, want))) continue;
        printf("  %s on %s: %s, expected %s\n", cases[i].now, cpu_isa_name(cases[i].isa), got ? got : "kept", want ? want : "kept");
        bad++;
    }
    CpuInfo ci;
    cpu_info_detect(&ci);
    printf("  BLAS core rule: %zu cases, %d wrong; this CPU: %s (family %u model %u), %s, core %s\n", sizeof cases / sizeof cases[0],
           bad, ci.brand, ci.family, ci.model, cpu_isa_name(ci.isa), blas_core_name());
    CHECK(bad == 0, "blas_core_upgrade");
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    rng_seed(&rng, 42);
    test_gemm();
    test_gemm_small();
    test_act();
    test_norm_softmax();
    test_attention();
    test_reduce();
    test_quant();
    test_blas_core_rule();
    return test_summary("test_kernels");
}
