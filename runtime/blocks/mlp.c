/* mlp — the runtime's parameter-golf MLP (model/blocks/mlp.c): out = proj(act(fc h)), act relu^2,
 * leaky_relu(0.5)^2 or SwiGLU (fc rows: gate, then up); [subln: rmsnorm before proj].
 * Keys: mlp.hidden, mlp.act, mlp.subln. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_internal.h"

enum { ACT_RELU2, ACT_LEAKY_RELU2, ACT_SWIGLU };

typedef struct RtMlp {
    size_t C, hidden, fc_rows;
    int act, subln;
    const RtTensor *fc, *proj;
} RtMlp;

static void mlp_forward(const void *inst, const RtFwd *f, float *state, float *y, const float *h) {
    const RtMlp *a = inst;
    size_t n = f->n, Hd = a->hidden;
    float *fc = f->scratch, *act = fc + n * a->fc_rows;
    rt_linear(f->k, fc, h, n, a->fc, 0, f->lin, f->threads);
    if (a->act == ACT_SWIGLU) {
        rt_swiglu(act, fc, n, Hd);
    } else {
        float neg = a->act == ACT_LEAKY_RELU2 ? 0.5f : 0.0f;
        for (size_t i = 0; i < n * Hd; i++) {
            float v = fc[i], r = v > 0 ? v : neg * v;
            act[i] = r * r;
        }
    }
    if (a->subln) rt_rmsnorm(act, act, NULL, n, Hd, f->eps);
    rt_linear(f->k, y, act, n, a->proj, 0, f->lin, f->threads);
}

static size_t mlp_scratch(const void *inst, size_t P, size_t max_ctx, int threads) {
    const RtMlp *a = inst;
    return P * (a->fc_rows + a->hidden);
}

static size_t mlp_max_cols(const void *inst) {
    const RtMlp *a = inst;
    return a->hidden > a->C ? a->hidden : a->C;
}

static void mlp_unbind(void *inst) { free(inst); }

static int mlp_bind(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e) {
    RtMlp *a = calloc(1, sizeof *a);
    if (!a) return rt_err(e, "out of memory");
    *inst = a;
    uint32_t hid;
    const char *act;
    if (rt_kv_u32(kv, "mlp.hidden", 1, 1u << 20, &hid, e) || rt_kv_str(kv, "mlp.act", &act, e) || rt_kv_bool(kv, "mlp.subln", &a->subln, e))
        return -1;
    if (!strcmp(act, "relu2")) a->act = ACT_RELU2;
    else if (!strcmp(act, "leaky_relu2")) a->act = ACT_LEAKY_RELU2;
    else if (!strcmp(act, "swiglu")) a->act = ACT_SWIGLU;
    else return rt_err(e, "mlp.act \"%s\" is not relu2, leaky_relu2 or swiglu", act);
    a->C = d->C;
    a->hidden = hid;
    a->fc_rows = a->act == ACT_SWIGLU ? 2 * a->hidden : a->hidden;
    char name[TERN_NAME_MAX + 32];
    snprintf(name, sizeof name, "blocks.%zu.mlp.fc.weight", layer);
    if (rt_want_tensor(m, name, a->fc_rows, a->C, &a->fc, used, e)) return -1;
    snprintf(name, sizeof name, "blocks.%zu.mlp.proj.weight", layer);
    return rt_want_tensor(m, name, a->C, a->hidden, &a->proj, used, e);
}

const RtBlockKind rt_block_mlp = {"mlp", 1, mlp_bind, mlp_unbind, NULL, NULL, mlp_scratch, mlp_max_cols, mlp_forward, NULL};
