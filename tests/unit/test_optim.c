/* Optimizers against their definitions: Muon's Newton–Schulz orthogonalisation (symmetric rank-k
 * updates through OpenBLAS) equals the plain double-precision iteration, for wide, tall and
 * square matrices; the result's singular values land in Muon's (0.5, 1.5) band; AdamW's step
 * equals the textbook formula; schedules hit their defining points. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "check.h"
#include "kernels/blas_core.h"
#include "kernels/rng.h"
#include "kernels/util.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    Rng rng;
    rng_seed(&rng, 3);
    printf("Muon orthogonalisation vs the double-precision reference\n");
    size_t shapes[][2] = {{1, 1}, {7, 13}, {13, 7}, {64, 64}, {96, 256}, {256, 96}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t r = shapes[s][0], c = shapes[s][1];
        float *G = xmalloc(r * c * 4), *a = xmalloc(r * c * 4), *b = xmalloc(r * c * 4);
        float *work = xmalloc(muon_work_floats(r, c) * 4);
        rng_fill_normal(&rng, G, r * c, 0, 1);
        muon_orthogonalize(a, G, r, c, 5, work);
        muon_orthogonalize_ref(b, G, r, c, 5);
        char what[64];
        snprintf(what, sizeof what, "NS5 %zux%zu", r, c);
        compare_arrays(what, a, b, r * c, 2e-5, 2e-4);
        if (r > 1 && c > 1) {
            /* singular values of O: O O^T (smaller side) has eigenvalues sigma^2; check the trace
             * and the Frobenius norm: mean sigma^2 within the band */
            double fro = 0;
            for (size_t i = 0; i < r * c; i++) fro += (double)a[i] * a[i];
            double mean_sq = fro / (double)(r < c ? r : c);
            printf("    mean squared singular value %.3f\n", mean_sq);
            CHECK(mean_sq > 0.25 && mean_sq < 2.25, "singular values out of Muon's band");
        }
        xfree(G); xfree(a); xfree(b); xfree(work);
    }

    printf("AdamW step vs the formula\n");
    ParamStore ps;
    params_init(&ps);
    Tensor *w = params_add(&ps, "w", 1, (size_t[]){5});
    params_finalize(&ps);
    float p0[5] = {0.5f, -1.0f, 2.0f, 0.0f, 3.0f}, g[2][5] = {{0.1f, -0.2f, 0.3f, 1e-3f, -2.0f}, {0.05f, 0.1f, -0.3f, 0.0f, 1.0f}};
    memcpy(w->data, p0, sizeof p0);
    Optimizer o;
    Err err = {0};
    const char *json = "{\"groups\":{\"g\":{\"type\":\"adamw\",\"lr\":0.1,\"beta1\":0.9,\"beta2\":0.99,\"eps\":1e-8,\"wd\":0.5}},"
                       "\"rules\":[{\"match\":\"*\",\"group\":\"g\"}]}";
    cJSON *j = cJSON_Parse(json);
    CHECK(optimizer_init(&o, &ps, j, NULL, NULL, &err) == 0, "%s", err.msg);
    cJSON_Delete(j);
    double m[5] = {0}, v[5] = {0}, p[5];
    for (int i = 0; i < 5; i++) p[i] = p0[i];
    for (int t = 1; t <= 2; t++) {
        memcpy(w->grad, g[t - 1], sizeof g[0]);
        optimizer_step(&o, 0.5); /* lr 0.1 x multiplier 0.5 */
        double lr = 0.05;
        for (int i = 0; i < 5; i++) {
            m[i] = 0.9 * m[i] + 0.1 * g[t - 1][i];
            v[i] = 0.99 * v[i] + 0.01 * g[t - 1][i] * g[t - 1][i];
            double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.99, t));
            p[i] = p[i] * (1 - lr * 0.5) - lr * mh / (sqrt(vh) + 1e-8);
        }
    }
    float pf[5];
    for (int i = 0; i < 5; i++) pf[i] = (float)p[i];
    compare_arrays("AdamW, 2 steps, decoupled wd", w->data, pf, 5, 1e-6, 1e-5);
    optimizer_free(&o);
    params_free(&ps);

    printf("schedules\n");
    Schedule sc;
    schedule_defaults(&sc);
    sc.warmdown_steps = 10;
    sc.total_steps = 100;
    double a1 = schedule_lr_mult(&sc, 0, 0), a2 = schedule_lr_mult(&sc, 90, 0), a3 = schedule_lr_mult(&sc, 95, 0),
           a4 = schedule_lr_mult(&sc, 99, 0);
    printf("  warmdown(10 of 100): step 0 %.2f, 90 %.2f, 95 %.2f, 99 %.2f\n", a1, a2, a3, a4);
    CHECK(a1 == 1 && fabs(a2 - 1.0) < 1e-12 && fabs(a3 - 0.5) < 1e-12 && fabs(a4 - 0.1) < 1e-12, "step warmdown");
    sc.total_steps = 0;
    sc.max_seconds = 100;
    /* 10 steps took 50 s (5 s/step): window 50 s; 60 s elapsed -> 40 s remaining -> 0.8 */
    double wc = schedule_lr_mult(&sc, 12, 60.0);
    printf("  wall-clock warmdown: 12 steps in 60 s of a 100 s budget -> %.3f\n", wc);
    CHECK(fabs(wc - 40.0 / 50.0) < 1e-9, "wall-clock warmdown");
    strcpy(sc.kind, "cosine");
    sc.total_steps = 100;
    sc.max_seconds = 0;
    sc.min_lr_frac = 0.1;
    sc.warmup_steps = 10;
    double c0 = schedule_lr_mult(&sc, 0, 0), c50 = schedule_lr_mult(&sc, 50, 0), c100 = schedule_lr_mult(&sc, 100, 0);
    printf("  cosine with 10 warm-up steps: step 0 %.3f, 50 %.3f, 100 %.3f\n", c0, c50, c100);
    CHECK(fabs(c0 - 0.1 * (0.1 + 0.9)) < 1e-9 && fabs(c50 - 0.55) < 1e-9 && fabs(c100 - 0.1) < 1e-9, "cosine");
    return test_summary("test_optim");
}
