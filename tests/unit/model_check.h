/* model_check.h — whole-model helpers shared by the block kinds' unit tests (test_gdn, test_mlstm,
 * test_moe): build a model from a JSON model section, and finite-difference check every parameter
 * gradient of its cross-entropy on fixed tokens (ids < 11, so any test vocabulary of 11+ works). */
#ifndef TERN_TEST_MODEL_CHECK_H
#define TERN_TEST_MODEL_CHECK_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "autodiff/gradcheck.h"
#include "check.h"
#include "model/model.h"

static Model *make(const char *json, Err *err) {
    cJSON *cfg = cJSON_Parse(json);
    Model *m = NULL;
    if (model_create(&m, cfg, 4321, err)) printf("  model_create: %s\n", err->msg);
    cJSON_Delete(cfg);
    return m;
}

typedef struct ModelCheckCtx {
    Model *m;
    size_t B, T;
    int training;
    int32_t x[64], y[64];
} ModelCheckCtx;

static Tensor *model_check_loss(Tape *tp, Tensor **in, void *user) {
    (void)in;
    ModelCheckCtx *c = user;
    return model_loss(c->m, tp, c->x, c->y, c->B, c->T, NULL, c->training);
}

/* B * T <= 64; atol 0 keeps gradcheck's default */
static void model_gradcheck_opts(const char *name, const char *json, size_t B, size_t T, int training, double atol) {
    Err err = {0};
    Model *m = make(json, &err);
    CHECK(m != NULL, "%s: %s", name, err.msg);
    if (!m) return;
    CHECK(B * T <= 64, "%s: B * T = %zu exceeds the helper's 64 tokens", name, B * T);
    ModelCheckCtx c = {.m = m, .B = B, .T = T, .training = training};
    for (size_t i = 0; i < B * T && i < 64; i++) {
        c.x[i] = (int32_t)((i * 7 + 3) % 11);
        c.y[i] = (int32_t)((i * 5 + 1) % 11);
    }
    GradCheckOpts o = gradcheck_default_opts();
    o.max_per_input = 8;
    if (atol > 0) o.atol = atol;
    CHECK(gradcheck(name, model_check_loss, m->ps.t, (int)m->ps.n, &c, &o, NULL) == 0, "%s gradient check", name);
    model_free(m);
}

#endif
