/* refdump — runs one tern layer or model on inputs written by a PyTorch reference script and
 * writes tern's outputs and gradients back, so the Python side can compare them.
 *
 *   refdump <case> IN.h5 OUT.h5
 *
 * Cases: attention, xent (more are added by the model tests). Inputs and attributes are
 * documented beside each case; the scripts in this folder produce them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/ops.h"
#include "data/h5io.h"
#include "refdump_cases.h"

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

typedef struct Case {
    const char *name;
    int (*fn)(hid_t, hid_t);
} Case;

int main(int argc, char **argv) {
    static const Case cases[] = {{"attention", case_attention}, {"xent", case_xent} REFDUMP_EXTRA_CASES};
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
