/* MeZO (optim/mezo.*): the perturbation stream (deterministic, the same at any thread count,
 * N(0,1) / +-1 moments), the +eps / -2eps / +eps round trip, parameter selection by glob, the
 * update against a naive double-precision reference, and the two-sided estimate
 * (L(theta + eps z) - L(theta - eps z)) / (2 eps) against the backprop directional derivative
 * grad . z on a small GPT; sparse ternary MeZO (code-0 weights never written, the others exactly
 * as dense MeZO with the same z, the mask equal to the QAT forward's zeros). */
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

/* n elements where a and b differ bitwise, over the elements with (mk == NULL or mk[i] != 0) == live */
static size_t bit_diffs(const float *a, const float *b, const uint8_t *mk, int live, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        if ((!mk || (mk[i] != 0) == live) && memcmp(&a[i], &b[i], sizeof(float))) d++;
    return d;
}

/* Sparse ternary: every 2-D tensor gets a ternary spec (two variants: groups of 16 with fp16
 * scales; per tensor, centred). The mask must equal (fake-quantized value != 0) from the naive
 * reference quantizer; perturb / update must leave masked weights bit-identical and match dense
 * MeZO (same keys) bit for bit on the others. */
static void test_sparse(const ParamStore *ps, int rademacher) {
    Err err = {0};
    size_t N = ps->total;
    MezoConfig c;
    mezo_defaults(&c);
    c.wd = 0.1;
    if (rademacher) strcpy(c.perturbation, "rademacher");
    Mezo md, ms;
    CHECK(mezo_init(&md, &c, ps, &err) == 0 && mezo_init(&ms, &c, ps, &err) == 0, "mezo_init: %s", err.msg);
    QuantSpec grouped = {.kind = QUANT_TERNARY, .group = 16, .scale_fp16 = 1}, centred = {.kind = QUANT_TERNARY, .center = 1};
    const QuantSpec **specs = xcalloc(ps->n, sizeof *specs);
    CHECK(mezo_sparse_init(&ms, ps, specs, &err) != 0 && strstr(err.msg, "optim.mezo.sparse_ternary"),
          "no ternary tensor: refused naming the key (%s)", err.msg);
    for (size_t p = 0; p < ps->n; p++)
        if (ps->t[p]->ndim == 2) specs[p] = p % 2 ? &centred : &grouped;
    CHECK(mezo_sparse_init(&ms, ps, specs, &err) == 0, "mezo_sparse_init: %s", err.msg);

    /* weights: the model's, zeros replaced by small values (zero-init projections) */
    float *theta0 = xmalloc(N * sizeof(float)), *vd = xmalloc(N * sizeof(float)), *vs = xmalloc(N * sizeof(float));
    float *fq = xmalloc(N * sizeof(float));
    uint8_t *live = xcalloc(N, 1);
    for (size_t i = 0; i < N; i++) theta0[i] = ps->values[i] != 0.0f ? ps->values[i] : 0.02f * mezo_z(&md, 5, i);
    size_t nlive = 0;
    for (size_t p = 0; p < ps->n; p++) {
        const Tensor *t = ps->t[p];
        size_t off = params_offset(ps, t);
        if (!specs[p]) {
            memset(live + off, 1, t->numel);
            nlive += t->numel;
            continue;
        }
        fake_quantize_weights_ref(fq + off, theta0 + off, (size_t)t->shape[0], t->numel / (size_t)t->shape[0], specs[p]);
        for (size_t i = 0; i < t->numel; i++) nlive += live[off + i] = fq[off + i] != 0.0f;
    }
    memcpy(vs, theta0, N * sizeof(float));
    size_t got = mezo_mask(&ms, vs, 1);
    printf("  %-10s perturbed %zu of %zu weights (%.1f%%)\n", c.perturbation, got, ms.nfloats, 100.0 * (double)got / (double)ms.nfloats);
    CHECK(got == nlive && nlive < ms.nfloats && nlive > ms.nfloats / 2, "mask = non-zero quantized values (%zu vs reference %zu)", got, nlive);
    size_t wrong = 0;
    for (size_t r = 0; r < ms.nranges; r++)
        if (ms.ranges[r].codes)
            for (size_t i = 0; i < ms.ranges[r].n; i++) wrong += (ms.ranges[r].codes[i] != 0) != live[ms.ranges[r].off + i];
    CHECK(wrong == 0, "mask element by element (%zu wrong)", wrong);

    memcpy(vd, theta0, N * sizeof(float));
    uint64_t keys[2] = {21, 22};
    double g[2] = {0.9, -0.4};
    /* +eps alone against the naive reference v + eps z(i) */
    mezo_perturb(&ms, vs, keys[0], 1e-3f);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
        float want = live[i] ? theta0[i] + 1e-3f * mezo_z(&md, keys[0], i) : theta0[i];
        bad += memcmp(&want, &vs[i], sizeof(float)) != 0;
    }
    CHECK(bad == 0, "+eps: live weights get eps z(flat index), masked ones nothing (%zu differ)", bad);
    mezo_perturb(&ms, vs, keys[0], -2e-3f);
    mezo_perturb(&ms, vs, keys[0], 1e-3f);
    for (int k = 0; k < 3; k++) mezo_perturb(&md, vd, keys[0], k == 1 ? -2e-3f : 1e-3f);
    CHECK(bit_diffs(vs, theta0, live, 0, N) == 0, "masked weights bit-identical after +eps, -2eps, +eps");
    CHECK(bit_diffs(vs, vd, live, 1, N) == 0, "live weights bit-identical to dense MeZO after the round trip");
    mezo_update(&ms, vs, keys, g, 2, 1e-2);
    mezo_update(&md, vd, keys, g, 2, 1e-2);
    CHECK(bit_diffs(vs, theta0, live, 0, N) == 0, "masked weights untouched by the update (weight decay included)");
    CHECK(bit_diffs(vs, vd, live, 1, N) == 0, "live weights updated bit for bit as dense MeZO");
    CHECK(bit_diffs(vs, theta0, live, 1, N) > nlive / 2, "live weights did move");
    /* QAT not active yet: dense */
    memcpy(vs, theta0, N * sizeof(float));
    memcpy(vd, theta0, N * sizeof(float));
    CHECK(mezo_mask(&ms, vs, 0) == ms.nfloats, "QAT off: every selected weight perturbed");
    mezo_perturb(&ms, vs, keys[1], 1e-3f);
    mezo_perturb(&md, vd, keys[1], 1e-3f);
    CHECK(bit_diffs(vs, vd, NULL, 1, N) == 0, "QAT off: identical to dense");
    xfree(theta0), xfree(vd), xfree(vs), xfree(fq), xfree(live), xfree(specs);
    mezo_free(&md);
    mezo_free(&ms);
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

    printf("sparse ternary\n");
    test_sparse(ps, 0);
    test_sparse(ps, 1);

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
