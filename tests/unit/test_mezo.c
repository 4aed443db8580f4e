/* MeZO (optim/mezo.*): the perturbation stream (deterministic, the same at any thread count,
 * N(0,1) / +-1 moments), the +eps / -2eps / +eps round trip, parameter selection by glob, the
 * update against a naive double-precision reference, and the two-sided estimate
 * (L(theta + eps z) - L(theta - eps z)) / (2 eps) against the backprop directional derivative
 * grad . z on a small GPT. */
#include <cjson/cJSON.h>
#include <string.h>

#include "autodiff/tape.h"
#include "check.h"
#include "kernels/blas_core.h"
#include "kernels/util.h"
#include "model/model.h"
#include "optim/mezo.h"

static Model *make(const char *json, Err *err) {
    cJSON *cfg = cJSON_Parse(json);
    Model *m = NULL;
    if (model_create(&m, cfg, 77, err)) printf("  model_create: %s\n", err->msg);
    cJSON_Delete(cfg);
    return m;
}

static float batch_loss(Model *m, Tape *tp, const int32_t *x, const int32_t *y, size_t B, size_t T) {
    tape_reset(tp);
    tape_no_grad_begin(tp);
    float l = model_loss(m, tp, x, y, B, T, NULL, 0)->data[0];
    tape_no_grad_end(tp);
    return l;
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    Err err = {0};
    const char *cfg = "{\"arch\":\"gpt\",\"vocab_size\":50,\"layers\":2,\"dim\":32,\"heads\":2,\"kv_heads\":1,\"seq_len\":16}";
    Model *m = make(cfg, &err);
    CHECK(m != NULL, "model");
    if (!m) return test_summary("test_mezo");
    ParamStore *ps = &m->ps;
    size_t N = ps->total;

    printf("perturbation stream\n");
    for (int rad = 0; rad < 2; rad++) {
        MezoConfig c;
        mezo_defaults(&c);
        if (rad) strcpy(c.perturbation, "rademacher");
        Mezo mz;
        CHECK(mezo_init(&mz, &c, ps, &err) == 0, "mezo_init: %s", err.msg);
        size_t numel = 0;
        for (size_t p = 0; p < ps->n; p++) numel += ps->t[p]->numel;
        CHECK(mz.nfloats == numel && mz.nranges == ps->n, "match * selects all %zu parameters (got %zu)", numel, mz.nfloats);
        /* moments over a long stream */
        double s1 = 0, s2 = 0, s4 = 0;
        size_t n = 1000000, not_pm1 = 0;
        for (size_t i = 0; i < n; i++) {
            double z = mezo_z(&mz, 12345, i);
            s1 += z, s2 += z * z, s4 += z * z * z * z;
            if (rad && z != 1.0 && z != -1.0) not_pm1++;
        }
        double mean = s1 / n, var = s2 / n - mean * mean, kurt = s4 / n;
        printf("  %-10s mean %+.5f var %.5f E[z^4] %.4f (expect 0, 1, %s)\n", c.perturbation, mean, var, kurt, rad ? "1" : "3");
        CHECK(fabs(mean) < 0.005 && fabs(var - 1) < 0.01 && fabs(kurt - (rad ? 1.0 : 3.0)) < (rad ? 1e-9 : 0.05),
              "moments of the %s stream", c.perturbation);
        CHECK(!not_pm1, "rademacher values are +-1");
        /* same perturbation at 1 and 2 threads, and for the same key twice */
        float *a = xmalloc(N * sizeof(float)), *b = xmalloc(N * sizeof(float));
        memset(a, 0, N * sizeof(float));
        memset(b, 0, N * sizeof(float));
        int th = tern_get_threads();
        tern_set_threads(1);
        mezo_perturb(&mz, a, 99, 1.0f);
        tern_set_threads(2);
        mezo_perturb(&mz, b, 99, 1.0f);
        tern_set_threads(th);
        CHECK(memcmp(a, b, N * sizeof(float)) == 0, "1 and 2 threads give the same z");
        CHECK(a[0] == mezo_z(&mz, 99, 0) && a[N - 1] == mezo_z(&mz, 99, N - 1), "perturb adds z at each flat index");
        xfree(a);
        xfree(b);
        mezo_free(&mz);
    }
    CHECK(mezo_key(1, 5, 0) != mezo_key(1, 5, 1) && mezo_key(1, 5, 0) != mezo_key(1, 6, 0) &&
              mezo_key(1, 5, 0) != mezo_key(2, 5, 0) && mezo_key(1, 5, 0) == mezo_key(1, 5, 0),
          "keys differ by seed, step and sample, and repeat");

    printf("selection and round trip\n");
    MezoConfig c;
    mezo_defaults(&c);
    strcpy(c.match, "blocks.*");
    Mezo mz;
    CHECK(mezo_init(&mz, &c, ps, &err) == 0, "mezo_init blocks.*: %s", err.msg);
    printf("  match blocks.*: %zu tensors, %zu of %zu floats\n", mz.nranges, mz.nfloats, N);
    CHECK(mz.nfloats > 0 && mz.nfloats < N, "a strict subset");
    float *theta0 = xmalloc(N * sizeof(float));
    memcpy(theta0, ps->values, N * sizeof(float));
    mezo_perturb(&mz, ps->values, 7, 1e-3f);
    mezo_perturb(&mz, ps->values, 7, -2e-3f);
    mezo_perturb(&mz, ps->values, 7, 1e-3f);
    compare_arrays("theta after +eps, -2eps, +eps", ps->values, theta0, N, 1e-8, 1e-6);
    Tensor *emb = params_find(ps, "tok_emb.weight");
    CHECK(emb && memcmp(emb->data, theta0 + params_offset(ps, emb), emb->numel * sizeof(float)) == 0,
          "unselected parameters untouched, bit for bit");
    MezoConfig bad = c;
    strcpy(bad.match, "nothing.*");
    Mezo mz2;
    CHECK(mezo_init(&mz2, &bad, ps, &err) != 0 && strstr(err.msg, "nothing.*"), "a glob matching nothing is an error");
    strcpy(bad.perturbation, "uniform");
    CHECK(mezo_validate(&bad, &err) != 0 && strstr(err.msg, "perturbation"), "unknown perturbation refused: %s", err.msg);

    printf("update\n");
    mz.c.wd = 0.1;
    uint64_t keys[3] = {11, 12, 13};
    double g[3] = {0.7, -1.3, 0.25};
    double lr = 1e-2;
    float *ref = xmalloc(N * sizeof(float));
    memcpy(ref, ps->values, N * sizeof(float));
    for (size_t r = 0; r < mz.nranges; r++)
        for (size_t i = 0; i < mz.ranges[r].n; i++) {
            size_t j = mz.ranges[r].off + i;
            double s = 0;
            for (int k = 0; k < 3; k++) s += g[k] * mezo_z(&mz, keys[k], j);
            ref[j] = (float)((double)ref[j] - lr * (s / 3 + (mz.ranges[r].decay ? mz.c.wd * ref[j] : 0)));
        }
    mezo_update(&mz, ps->values, keys, g, 3, lr);
    compare_arrays("update vs double reference (3 samples, wd)", ps->values, ref, N, 1e-7, 1e-6);
    memcpy(ps->values, theta0, N * sizeof(float));
    mezo_free(&mz);

    printf("two-sided estimate vs backprop directional derivative\n");
    strcpy(c.match, "*");
    CHECK(mezo_init(&mz, &c, ps, &err) == 0, "mezo_init");
    /* give the zero-initialised output projections some weight so every path carries gradient */
    for (size_t i = 0; i < N; i++)
        if (ps->values[i] == 0.0f) ps->values[i] = 0.02f * mezo_z(&mz, 5, i);
    size_t B = 2, T = 16;
    int32_t x[32], y[32];
    for (size_t i = 0; i < B * T; i++) {
        x[i] = (int32_t)((i * 7 + 3) % 50);
        y[i] = (int32_t)((i * 11 + 5) % 50);
    }
    Tape tp;
    tape_init(&tp, 0);
    params_zero_grad(ps);
    Tensor *loss = model_loss(m, &tp, x, y, B, T, NULL, 0);
    tape_backward(&tp, loss);
    double worst = 0;
    for (uint64_t key = 100; key < 106; key++) {
        double dd = 0;
        for (size_t i = 0; i < N; i++) dd += (double)ps->grads[i] * mezo_z(&mz, key, i);
        float eps = 2.5e-4f; /* |eps z| = 0.03 over 16k weights: central-difference error O(eps^2) */
        mezo_perturb(&mz, ps->values, key, eps);
        float lp = batch_loss(m, &tp, x, y, B, T);
        mezo_perturb(&mz, ps->values, key, -2 * eps);
        float lm = batch_loss(m, &tp, x, y, B, T);
        mezo_perturb(&mz, ps->values, key, eps);
        double est = ((double)lp - (double)lm) / (2.0 * eps);
        double e = fabs(est - dd) / (fabs(dd) + 1e-2);
        printf("  key %llu: estimate %+.5f  grad.z %+.5f  rel err %.2e\n", (unsigned long long)key, est, dd, e);
        if (e > worst) worst = e;
    }
    CHECK(worst < 1e-2, "estimate within 1%% of grad . z (worst %.2e)", worst);
    tape_free(&tp);
    mezo_free(&mz);
    xfree(theta0);
    xfree(ref);
    model_free(m);
    return test_summary("test_mezo");
}
