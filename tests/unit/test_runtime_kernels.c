/* Runtime kernels: every instruction-set table this CPU can run (scalar, AVX2, AVX-512,
 * AVX-512 VNNI) against the scalar path and against a double-precision reference built from
 * format.h's unpacker: the integer path (int8 activations) must be bit-identical across tables
 * and thread counts, the float path (dequantize on the fly) equal to rounding. All dtypes, ternary
 * group sizes, activation blocks, batch sizes and row lengths that take the chunked kernels and
 * the ones that fall back to the element-wise path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "runtime/rt_internal.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
static float frand(void) { return (float)rnd() / 2097152.0f - 1.0f; }

typedef struct Case {
    uint32_t dt;
    size_t rows, cols, group, act_block;
    int act_bits;
} Case;

static void make(RtTensor *t, uint8_t **mem, float **scales, const Case *c) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "w");
    t->dtype = t->stored_dtype = c->dt;
    t->rows = c->rows;
    t->cols = c->cols;
    t->group = c->group;
    t->act_bits = c->act_bits;
    t->act_block = c->act_block;
    t->row_bytes = tern_row_bytes(c->dt, c->cols);
    t->qmax = tern_dtype_qmax(c->dt);
    *mem = rt_alloc(t->rows * t->row_bytes + 64);
    int8_t *codes = malloc(c->cols);
    float *row = malloc(c->cols * sizeof(float));
    for (size_t r = 0; r < c->rows; r++) {
        uint8_t *dst = *mem + r * t->row_bytes;
        if (c->dt == TERN_DT_F32 || c->dt == TERN_DT_F16) {
            for (size_t i = 0; i < c->cols; i++) row[i] = frand();
            if (c->dt == TERN_DT_F32) tern_pack_f32_row(dst, row, c->cols);
            else tern_pack_f16_row(dst, row, c->cols);
        } else {
            int q = t->qmax;
            for (size_t i = 0; i < c->cols; i++) codes[i] = (int8_t)((int)(rnd() % (uint32_t)(2 * q + 1)) - q);
            tern_pack_row(c->dt, dst, codes, c->cols);
        }
    }
    t->data = *mem;
    t->nscales = (size_t)tern_num_scales(c->dt, (uint32_t)c->group, c->rows, c->cols);
    *scales = malloc((t->nscales ? t->nscales : 1) * sizeof(float));
    for (size_t i = 0; i < t->nscales; i++) (*scales)[i] = 0.01f + 0.05f * (frand() + 1.0f);
    t->scales = t->nscales ? *scales : NULL;
    rt_tensor_plan(t);
    free(codes);
    free(row);
}

/* double-precision reference from the definitions: float path sum x * (code * scale); integer
 * path sum over columns of code_w * code_x * wscale * ascale with the activations quantized as
 * quantize_act_int8 does */
static void reference(double *y, double *yabs, const float *x, size_t n, const RtTensor *t, int intpath) {
    float *w = malloc(t->cols * sizeof(float));
    RtActQ a;
    void *mem = rt_alloc(rt_actq_bytes(n, t->cols));
    rt_actq_init(&a, mem, n, t->cols, t->act_block);
    rt_quantize_act(&a, x);
    for (size_t r = 0; r < t->rows; r++) {
        rt_tensor_row_float(t, r, w);
        for (size_t k = 0; k < n; k++) {
            double s = 0, sa = 0;
            for (size_t c = 0; c < t->cols; c++) {
                double xa = intpath ? (double)a.q[k * a.cols_pad + c] * a.scale[k * a.nblk + (t->act_block ? c / t->act_block : 0)]
                                    : (double)x[k * t->cols + c];
                s += xa * w[c];
                sa += fabs(xa * w[c]);
            }
            y[k * t->rows + r] = s;
            yabs[k * t->rows + r] = sa;
        }
    }
    rt_free(mem);
    free(w);
}

static int g_tables;
static RtKernels g_k[4];

static void run_case(const Case *c, size_t n) {
    RtTensor t;
    uint8_t *mem;
    float *scales;
    make(&t, &mem, &scales, c);
    float *x = malloc(n * c->cols * sizeof(float));
    for (size_t i = 0; i < n * c->cols; i++) x[i] = frand() * (i % 7 == 0 ? 3.0f : 1.0f);
    int intpath = c->act_bits == 8 && !tern_dtype_is_float(c->dt);
    size_t ny = n * c->rows;
    float *yref = malloc(ny * sizeof(float)), *y = malloc(ny * sizeof(float));
    double *yd = malloc(ny * sizeof(double)), *ya = malloc(ny * sizeof(double));
    rt_linear_ref(yref, x, n, &t, 0);
    reference(yd, ya, x, n, &t, intpath);
    /* errors relative to sum |x w| (the sum's condition): float accumulation stays far below 1e-5 */
    double worst = 0;
    for (size_t i = 0; i < ny; i++) {
        double e = fabs(yref[i] - yd[i]) / (1e-12 + ya[i]);
        if (e > worst) worst = e;
    }
    char what[160];
    snprintf(what, sizeof what, "%s %zux%zu g%zu a%zu %s n=%zu%s", tern_dtype_name(c->dt), c->rows, c->cols, c->group, c->act_block,
             intpath ? "int8-act" : "float", n, t.simd ? "" : " (element-wise)");
    CHECK(worst < 2e-5, "%s: reference path vs double definition: rel err %.3g", what, worst);
    void *scratch = rt_alloc(rt_linear_scratch_bytes(n, c->cols, 2));
    for (int k = 0; k < g_tables; k++)
        for (int threads = 1; threads <= 2; threads++) {
            memset(y, 0xff, ny * sizeof(float));
            rt_linear(&g_k[k], y, x, n, &t, 0, scratch, threads);
            if (intpath) {
                size_t bad = 0;
                for (size_t i = 0; i < ny; i++) bad += memcmp(&y[i], &yref[i], 4) != 0;
                CHECK(bad == 0, "%s: %s kernels, %d thread(s): %zu of %zu outputs differ from the scalar path", what, g_k[k].name,
                      threads, bad, ny);
            } else {
                double w2 = 0;
                for (size_t i = 0; i < ny; i++) {
                    double e = fabs((double)y[i] - yd[i]) / (1e-12 + ya[i]);
                    if (e > w2) w2 = e;
                }
                CHECK(w2 < 2e-5, "%s: %s kernels: rel err %.3g", what, g_k[k].name, w2);
            }
        }
    printf("  %-52s ok (%d tables, ref err %.1e)\n", what, g_tables, worst);
    rt_free(scratch);
    rt_free(mem);
    free(scales);
    free(x);
    free(y);
    free(yref);
    free(yd);
    free(ya);
}

static void test_primitives(void) {
    /* raw kernels on random data: unpackers and integer dots equal the scalar ones */
    size_t n = 1024;
    uint8_t *row = rt_alloc(2 * n), *u0 = rt_alloc(n), *u1 = rt_alloc(n);
    int8_t *x = rt_alloc(n), *w = rt_alloc(n);
    for (size_t i = 0; i < 2 * n; i++) row[i] = (uint8_t)rnd();
    for (size_t i = 0; i < n; i++) {
        x[i] = (int8_t)((int)(rnd() % 255) - 127);
        w[i] = (int8_t)((int)(rnd() % 255) - 127);
    }
    const uint32_t dts[] = {TERN_DT_T2, TERN_DT_I4, TERN_DT_I5, TERN_DT_I6};
    for (int k = 1; k < g_tables; k++) {
        int ok = 1;
        for (size_t d = 0; d < 4; d++) {
            g_k[0].unpack_u8(dts[d], u0, row, n);
            g_k[k].unpack_u8(dts[d], u1, row, n);
            ok &= !memcmp(u0, u1, n);
            for (size_t i = 0; i < n; i++) ok &= u0[i] == tern_row_u(dts[d], row, i);
        }
        CHECK(ok, "%s unpackers", g_k[k].name);
        for (size_t i = 0; i < n; i++) u0[i] = (uint8_t)(rnd() % 63);
        CHECK(g_k[k].dot_u8s8(u0, x, n) == g_k[0].dot_u8s8(u0, x, n), "%s dot_u8s8", g_k[k].name);
        CHECK(g_k[k].dot_s8s8(w, x, n) == g_k[0].dot_s8s8(w, x, n), "%s dot_s8s8", g_k[k].name);
        CHECK(g_k[k].t2_dot(row, x, n / 128) == g_k[0].t2_dot(row, x, n / 128), "%s t2_dot", g_k[k].name);
        printf("  %-12s unpack (2-bit, int4, int5, int6), u8 x s8, s8 x s8, 2-bit dots == scalar: %s\n", g_k[k].name, ok ? "ok" : "FAIL");
    }
    /* attention kernels: 16 scores of a transposed key block; a weighted sum of value rows */
    for (int k = 1; k < g_tables; k++) {
        const size_t Ds[] = {64, 40, 24, 130};
        double worst = 0;
        for (size_t di = 0; di < 4; di++) {
            size_t D = Ds[di], nr = 37, stride = D + 7;
            float *q = malloc(D * sizeof(float)), *blk = malloc(16 * D * sizeof(float)), *v = malloc(nr * stride * sizeof(float));
            float *wv = malloc(nr * sizeof(float)), a[16], b[16], *o1 = malloc(D * sizeof(float)), *o2 = malloc(D * sizeof(float));
            for (size_t i = 0; i < D; i++) q[i] = frand();
            for (size_t i = 0; i < 16 * D; i++) blk[i] = frand();
            for (size_t i = 0; i < nr * stride; i++) v[i] = frand();
            for (size_t i = 0; i < nr; i++) wv[i] = frand() + 1.0f;
            g_k[0].kblock_scores(a, q, blk, D);
            g_k[k].kblock_scores(b, q, blk, D);
            for (int j = 0; j < 16; j++) worst = fmax(worst, fabs(a[j] - b[j]) / (1 + fabs(a[j])));
            g_k[0].weighted_rows(o1, wv, v, nr, stride, D);
            g_k[k].weighted_rows(o2, wv, v, nr, stride, D);
            for (size_t j = 0; j < D; j++) worst = fmax(worst, fabs(o1[j] - o2[j]) / (1 + fabs(o1[j])));
            free(q);
            free(blk);
            free(v);
            free(wv);
            free(o1);
            free(o2);
        }
        CHECK(worst < 1e-5, "%s attention kernels: rel err %.3g", g_k[k].name, worst);
        printf("  %-12s attention kernels (head dims 64, 40, 24, 130) == scalar to %.1e\n", g_k[k].name, worst);
    }
    rt_free(row);
    rt_free(u0);
    rt_free(u1);
    rt_free(x);
    rt_free(w);
}

int main(void) {
    printf("test_runtime_kernels\n");
    int best = rt_cpu_isa();
    const int levels[] = {RT_ISA_SCALAR, RT_ISA_AVX2, RT_ISA_AVX512, RT_ISA_AVX512VNNI};
    const char *names[] = {"scalar", "avx2", "avx512", "avx512vnni"};
    for (int i = 0; i < 4; i++) {
        if (levels[i] > best) {
            printf("  (this CPU has no %s: not tested here)\n", names[i]);
            continue;
        }
        rt_kernels_select(&g_k[g_tables], levels[i]);
        g_tables++;
    }
    test_primitives();
    const Case cases[] = {
        {TERN_DT_T2, 37, 256, 128, 0, 8},  {TERN_DT_T2, 13, 1408, 128, 0, 8},  {TERN_DT_T2, 37, 512, 0, 0, 8},    {TERN_DT_T2, 19, 512, 256, 128, 8},
        {TERN_DT_T2, 19, 512, 128, 256, 8}, {TERN_DT_T2, 23, 200, 128, 0, 8}, {TERN_DT_T2, 11, 256, 64, 0, 8},
        {TERN_DT_T2, 29, 384, 128, 0, 0},  {TERN_DT_T2, 13, 300, 0, 0, 0},    {TERN_DT_I5, 41, 512, 0, 0, 0},
        {TERN_DT_I5, 41, 512, 0, 0, 8},    {TERN_DT_I5, 17, 512, 0, 128, 8},  {TERN_DT_I5, 9, 100, 0, 0, 8},
        {TERN_DT_I5, 9, 100, 0, 0, 0},     {TERN_DT_I4, 33, 256, 0, 0, 8},    {TERN_DT_I4, 33, 256, 0, 0, 0},
        {TERN_DT_I6, 31, 384, 0, 0, 8},    {TERN_DT_I6, 31, 384, 0, 0, 0},    {TERN_DT_I8, 27, 640, 0, 0, 8},
        {TERN_DT_I8, 27, 640, 0, 0, 0},    {TERN_DT_F16, 21, 333, 0, 0, 0},   {TERN_DT_F32, 21, 257, 0, 0, 0},
        {TERN_DT_I8, 5, 70000, 0, 0, 8}, /* beyond the int32-safe chunked range: element-wise */
    };
    const size_t ns[] = {1, 3, 70};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t j = 0; j < 3; j++) {
            if (cases[i].cols > 10000 && ns[j] > 1) continue;
            run_case(&cases[i], ns[j]);
        }
    return test_summary("test_runtime_kernels");
}
