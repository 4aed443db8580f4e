/* refdump — runs one tern layer or model on inputs written by a PyTorch reference script and
 * writes tern's outputs and gradients back, so the Python side can compare them.
 *
 *   refdump <case> IN.h5 OUT.h5
 *
 * Cases: attention, xent, distill, model, quant, block (one block kind on its own, with the
 * caller's weights), block_init (one block kind on its own, initialised by tern: refdump_block.c).
 * Inputs and attributes are
 * documented beside each case; the scripts in this folder produce them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/ops.h"
#include "data/h5io.h"
#include "kernels/blas_core.h"
#include "kernels/quant.h"
#include "model/block.h"
#include "model/model.h"
#include "optim/optimizer.h"
#include "refdump_cases.h"
#include <cjson/cJSON.h>

static Tensor *load(hid_t f, const char *name, int requires_grad) {
    Err err = {0};
    size_t shape[4];
    int nd = h5_shape(f, name, shape, &err);
    if (nd < 0) {
        fprintf(stderr, "refdump: %s\n", err.msg);
        exit(1);
    }
    Tensor *t = tensor_create(nd, shape, requires_grad, name);
    if (h5_read_f32(f, name, t->data, t->numel, &err)) {
        fprintf(stderr, "refdump: %s\n", err.msg);
        exit(1);
    }
    return t;
}

Tensor *refdump_load(hid_t f, const char *name, int requires_grad) { return load(f, name, requires_grad); }

void refdump_save(hid_t f, const char *name, const Tensor *t, const float *data) {
    Err err = {0};
    if (h5_write_f32(f, name, t->ndim, t->shape, data, &err)) {
        fprintf(stderr, "refdump: %s\n", err.msg);
        exit(1);
    }
}

double refdump_attr(hid_t f, const char *key, double dflt) {
    double v;
    if (!h5_attr_exists(f, "/", key)) return dflt;
    if (h5_attr_get_f64(f, "/", key, &v, NULL)) return dflt;
    return v;
}

static int case_attention(hid_t in, hid_t out) {
    Tensor *q = load(in, "q", 1), *k = load(in, "k", 1), *v = load(in, "v", 1);
    Tensor *gain = load(in, "q_gain", 1), *dout = load(in, "dout", 0);
    int use_rope = (int)refdump_attr(in, "rope", 1);
    float base = (float)refdump_attr(in, "rope_base", 10000.0);
    RopeTable rt;
    rope_table_init(&rt, q->shape[1], q->shape[3], base);
    Tape tp;
    tape_init(&tp, 0);
    Tensor *y = op_attention(&tp, q, k, v, gain, use_rope ? &rt : NULL, 0.0f);
    tape_backward_seed(&tp, y, dout->data);
    refdump_save(out, "out", y, y->data);
    refdump_save(out, "dq", q, q->grad);
    refdump_save(out, "dk", k, k->grad);
    refdump_save(out, "dv", v, v->grad);
    refdump_save(out, "dq_gain", gain, gain->grad);
    tape_free(&tp);
    rope_table_free(&rt);
    return 0;
}

static int case_xent(hid_t in, hid_t out) {
    Tensor *logits = load(in, "logits", 1), *tg = load(in, "targets", 0);
    float softcap = (float)refdump_attr(in, "softcap", 0);
    int32_t ignore = (int32_t)refdump_attr(in, "ignore_index", -100);
    size_t N = tensor_rows(logits);
    int32_t *targets = malloc(N * sizeof(int32_t));
    for (size_t i = 0; i < N; i++) targets[i] = (int32_t)tg->data[i];
    float *per = malloc(N * sizeof(float));
    Tape tp;
    tape_init(&tp, 0);
    Tensor *loss = op_cross_entropy(&tp, logits, targets, softcap, ignore, per);
    tape_backward(&tp, loss);
    refdump_save(out, "loss", loss, loss->data);
    refdump_save(out, "per_token", tg, per);
    refdump_save(out, "dlogits", logits, logits->grad);
    tape_free(&tp);
    free(targets);
    free(per);
    return 0;
}

/* distill: logits [N, V], targets [N], tidx [N, k] (ids as floats), tval [N, k], tlse [N];
 * attributes softcap, temperature, alpha. Writes loss, per_token, dlogits. */
static int case_distill(hid_t in, hid_t out) {
    Tensor *logits = load(in, "logits", 1), *tg = load(in, "targets", 0), *ti = load(in, "tidx", 0);
    Tensor *tv = load(in, "tval", 0), *tl = load(in, "tlse", 0);
    size_t N = tensor_rows(logits), k = tensor_cols(ti);
    int32_t *targets = malloc(N * sizeof(int32_t)), *idx = malloc(N * k * sizeof(int32_t));
    for (size_t i = 0; i < N; i++) targets[i] = (int32_t)tg->data[i];
    for (size_t i = 0; i < N * k; i++) idx[i] = (int32_t)ti->data[i];
    DistillTarget dt = {.idx = idx, .val = tv->data, .lse = tl->data, .k = k,
                        .temperature = (float)refdump_attr(in, "temperature", 1), .alpha = (float)refdump_attr(in, "alpha", 0.5)};
    float *per = malloc(N * sizeof(float));
    Tape tp;
    tape_init(&tp, 0);
    Tensor *loss = op_distill(&tp, logits, targets, (float)refdump_attr(in, "softcap", 0), &dt, per);
    tape_backward(&tp, loss);
    refdump_save(out, "loss", loss, loss->data);
    refdump_save(out, "per_token", tg, per);
    refdump_save(out, "dlogits", logits, logits->grad);
    tape_free(&tp);
    free(targets);
    free(idx);
    free(per);
    return 0;
}

/* gpt: attributes "model" (model-section JSON), "optim" (optim-section JSON), "steps" (optimizer
 * steps), "seed"; datasets x, y [B, T] (token ids as floats). Writes params0/<name> (initial
 * weights), loss, grads/<name>, then runs `steps` optimizer steps on the same batch (constant lr)
 * and writes after/<name> and losses (the loss before each step). */
static int case_model(hid_t in, hid_t out) {
    Err err = {0};
    char *mjson = h5_attr_get_str(in, "/", "model", &err), *ojson = h5_attr_get_str(in, "/", "optim", &err);
    if (!mjson || !ojson) {
        fprintf(stderr, "refdump: %s\n", err.msg);
        return 1;
    }
    cJSON *msec = cJSON_Parse(mjson), *osec = cJSON_Parse(ojson);
    Model *m = NULL;
    if (model_create(&m, msec, (uint64_t)refdump_attr(in, "seed", 1), &err)) {
        fprintf(stderr, "refdump: %s\n", err.msg);
        return 1;
    }
    Optimizer opt;
    if (optimizer_init(&opt, &m->ps, osec, m->default_groups, NULL, &err)) {
        fprintf(stderr, "refdump: %s\n", err.msg);
        return 1;
    }
    Tensor *xt = refdump_load(in, "x", 0), *yt = refdump_load(in, "y", 0);
    size_t B = xt->shape[0], T = xt->shape[1], n = B * T;
    int32_t *x = malloc(n * sizeof(int32_t)), *y = malloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) {
        x[i] = (int32_t)xt->data[i];
        y[i] = (int32_t)yt->data[i];
    }
    char name[512];
    for (size_t i = 0; i < m->ps.n; i++) {
        snprintf(name, sizeof name, "params0/%s", m->ps.t[i]->name);
        refdump_save(out, name, m->ps.t[i], m->ps.t[i]->data);
    }
    int steps = (int)refdump_attr(in, "steps", 0);
    float *losses = malloc((size_t)(steps + 1) * sizeof(float));
    Tape tp;
    tape_init(&tp, 0);
    for (int s = 0; s <= steps; s++) {
        params_zero_grad(&m->ps);
        tape_reset(&tp);
        Tensor *loss = model_loss(m, &tp, x, y, B, T, NULL, 1);
        tape_backward(&tp, loss);
        losses[s] = loss->data[0];
        if (s == 0) {
            refdump_save(out, "loss", loss, loss->data);
            for (size_t i = 0; i < m->ps.n; i++) {
                snprintf(name, sizeof name, "grads/%s", m->ps.t[i]->name);
                refdump_save(out, name, m->ps.t[i], m->ps.t[i]->grad);
            }
        }
        if (s < steps) optimizer_step(&opt, 1.0);
    }
    for (size_t i = 0; i < m->ps.n; i++) {
        snprintf(name, sizeof name, "after/%s", m->ps.t[i]->name);
        refdump_save(out, name, m->ps.t[i], m->ps.t[i]->data);
    }
    size_t ns = (size_t)steps + 1;
    Err e2 = {0};
    h5_write_f32(out, "losses", 1, &ns, losses, &e2);
    tape_free(&tp);
    optimizer_free(&opt);
    model_free(m);
    free(x);
    free(y);
    free(losses);
    free(mjson);
    free(ojson);
    cJSON_Delete(msec);
    cJSON_Delete(osec);
    return 0;
}

/* quant: dataset w [rows, cols]; attributes kind (1 int, 2 ternary), bits, group, quantile,
 * scale_fp16; writes codes, scales, fake (dequantized), and half (f32 -> f16 -> f32 of w). */
static int case_quant(hid_t in, hid_t out) {
    Tensor *w = refdump_load(in, "w", 0);
    QuantSpec s = {.kind = (QuantKind)refdump_attr(in, "kind", 1), .bits = (int)refdump_attr(in, "bits", 5),
                   .group = (size_t)refdump_attr(in, "group", 0), .quantile = refdump_attr(in, "quantile", 0.9999984),
                   .scale_fp16 = (int)refdump_attr(in, "scale_fp16", 0)};
    size_t rows = w->shape[0], cols = w->shape[1], ns = quant_num_scales(&s, rows, cols);
    int8_t *codes = malloc(rows * cols);
    float *scales = malloc(ns * sizeof(float)), *fc = malloc(rows * cols * sizeof(float));
    quantize_weights(codes, scales, w->data, rows, cols, &s);
    for (size_t i = 0; i < rows * cols; i++) fc[i] = codes[i];
    refdump_save(out, "codes", w, fc);
    Err err = {0};
    h5_write_f32(out, "scales", 1, &ns, scales, &err);
    fake_quantize_weights(fc, w->data, rows, cols, &s);
    refdump_save(out, "fake", w, fc);
    for (size_t i = 0; i < rows * cols; i++) fc[i] = f16_to_f32(f32_to_f16(w->data[i]));
    refdump_save(out, "half", w, fc);
    free(codes);
    free(scales);
    free(fc);
    return 0;
}

/* block: one block kind on its own (tern's layer vs a PyTorch twin). Attribute "block" = JSON
 * {"kind": name, "stack": {stack keys: dim, norm_eps, ...}, "cfg": {the kind's keys}};
 * datasets h [B, T, C], dout [B, T, C] and p/<name> for each of the kind's parameters (names
 * without the "blocks.<i>." prefix). Writes out, dh and g/<name>. A training forward. */
static int case_block(hid_t in, hid_t out) {
    Err err = {0};
    char *js = h5_attr_get_str(in, "/", "block", &err);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    const cJSON *kn = j ? cJSON_GetObjectItemCaseSensitive(j, "kind") : NULL;
    const BlockKind *k = cJSON_IsString(kn) ? block_kind_find(kn->valuestring) : NULL;
    if (!k) {
        fprintf(stderr, "refdump: block: attribute \"block\" must name a registered kind\n");
        return 1;
    }
    StackConfig sc;
    memset(&sc, 0, sizeof sc);
    void *cfg = calloc(1, k->cfg_bytes ? k->cfg_bytes : 1), *inst = calloc(1, k->inst_bytes);
    k->defaults(cfg);
    if (cfg_read(cJSON_GetObjectItemCaseSensitive(j, "stack"), "stack", kStackFields, kStackFieldCount, &sc, &err) ||
        cfg_read(cJSON_GetObjectItemCaseSensitive(j, "cfg"), "cfg", k->fields, k->nfields, cfg, &err) || k->resolve(cfg, &sc, 1, &err)) {
        fprintf(stderr, "refdump: block: %s\n", err.msg);
        return 1;
    }
    ParamStore ps;
    params_init(&ps);
    k->add_params(inst, cfg, &sc, &ps, "");
    params_finalize(&ps);
    params_zero_grad(&ps);
    char name[512];
    for (size_t i = 0; i < ps.n; i++) {
        snprintf(name, sizeof name, "p/%s", ps.t[i]->name);
        Tensor *src = load(in, name, 0);
        memcpy(ps.t[i]->data, src->data, ps.t[i]->numel * sizeof(float));
        tensor_destroy(src);
    }
    /* the kind's buffers (MoE's routing bias) from "b/<name>" when given; its per-step counters
     * (the training forward below adds to them) written as "counts" */
    BufferStore bs;
    buffers_init(&bs);
    size_t nstep = k->step_floats ? k->step_floats(cfg, &sc) : 0;
    float *step = calloc(nstep ? nstep : 1, sizeof(float));
    if (k->add_buffers) k->add_buffers(inst, cfg, &sc, &bs, "", nstep ? step : NULL);
    for (size_t i = 0; i < bs.n; i++) {
        snprintf(name, sizeof name, "b/%s", bs.b[i].name);
        if (!h5_exists(in, name)) continue;
        Tensor *src = load(in, name, 0);
        TERN_CHECK(src->numel == bs.b[i].numel && bs.b[i].dtype == BUF_F32, "refdump: block: %s has the wrong size", name);
        memcpy(bs.b[i].data, src->data, src->numel * sizeof(float));
        tensor_destroy(src);
    }
    Tensor *h = load(in, "h", 1), *dout = load(in, "dout", 0);
    Tape tp;
    tape_init(&tp, 0);
    BlockCtx ctx = {NULL, &tp, h->shape[0], h->shape[1], 1, &sc, NULL, 0};
    Tensor *y = k->forward(inst, cfg, &ctx, h);
    tape_backward_seed(&tp, y, dout->data);
    refdump_save(out, "out", y, y->data);
    refdump_save(out, "dh", h, h->grad);
    for (size_t i = 0; i < ps.n; i++) {
        snprintf(name, sizeof name, "g/%s", ps.t[i]->name);
        refdump_save(out, name, ps.t[i], ps.t[i]->grad);
    }
    if (nstep) {
        Tensor *cnt = tensor_create(1, (size_t[]){nstep}, 0, "counts");
        memcpy(cnt->data, step, nstep * sizeof(float));
        refdump_save(out, "counts", cnt, cnt->data);
        tensor_destroy(cnt);
    }
    if (k->free_inst) k->free_inst(inst);
    buffers_free(&bs);
    free(step);
    tape_free(&tp);
    params_free(&ps);
    free(cfg), free(inst), free(js);
    cJSON_Delete(j);
    return 0;
}

typedef struct Case {
    const char *name;
    int (*fn)(hid_t, hid_t);
} Case;

int main(int argc, char **argv) {
    blas_core_setup(argv, 1);
    static const Case cases[] = {{"attention", case_attention}, {"xent", case_xent},     {"distill", case_distill},
                                 {"model", case_model},         {"quant", case_quant}, {"block", case_block},
                                 {"block_init", refdump_case_block}};
    if (argc != 4) {
        fprintf(stderr, "usage: refdump <case> IN.h5 OUT.h5\n");
        return 2;
    }
    Err err = {0};
    hid_t in = h5_open_read(argv[2], &err);
    if (in < 0) {
        fprintf(stderr, "refdump: %s\n", err.msg);
        return 1;
    }
    hid_t out = h5_create(argv[3], &err);
    if (out < 0) {
        fprintf(stderr, "refdump: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!strcmp(cases[i].name, argv[1])) {
            int rc = cases[i].fn(in, out);
            h5_close(out);
            h5_close(in);
            return rc;
        }
    fprintf(stderr, "refdump: unknown case %s\n", argv[1]);
    return 2;
}
