/* swiglu — the runtime's TRN-hybrid SwiGLU channel mixer (model/blocks/swiglu.c):
 * out = down(silu(gate) * up), [gate | up] = gate_up(h). Key: swiglu.hidden. */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/rt_internal.h"

typedef struct RtSwiglu {
    size_t C, hidden;
    const RtTensor *gate_up, *down;
} RtSwiglu;

static void swiglu_forward(const void *inst, const RtFwd *f, float *state, float *y, const float *h) {
    const RtSwiglu *a = inst;
    size_t n = f->n;
    float *gu = f->scratch, *sw = gu + n * 2 * a->hidden;
    rt_linear(f->k, gu, h, n, a->gate_up, 0, f->lin, f->threads);
    rt_swiglu(sw, gu, n, a->hidden);
    rt_linear(f->k, y, sw, n, a->down, 0, f->lin, f->threads);
}

static size_t swiglu_scratch(const void *inst, size_t P, size_t max_ctx, int threads) {
    return 3 * P * ((const RtSwiglu *)inst)->hidden;
}

static size_t swiglu_max_cols(const void *inst) {
    const RtSwiglu *a = inst;
    return a->hidden > a->C ? a->hidden : a->C;
}

static void swiglu_unbind(void *inst) { free(inst); }

static int swiglu_bind(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e) {
    RtSwiglu *a = calloc(1, sizeof *a);
    if (!a) return rt_err(e, "out of memory");
    *inst = a;
    uint32_t hid;
    if (rt_kv_u32(kv, "swiglu.hidden", 1, 1u << 20, &hid, e)) return -1;
    a->C = d->C;
    a->hidden = hid;
    char name[TERN_NAME_MAX + 32];
    snprintf(name, sizeof name, "blocks.%zu.gate_up.weight", layer);
    if (rt_want_tensor(m, name, 2 * a->hidden, a->C, &a->gate_up, used, e)) return -1;
    snprintf(name, sizeof name, "blocks.%zu.down.weight", layer);
    return rt_want_tensor(m, name, a->C, a->hidden, &a->down, used, e);
}

const RtBlockKind rt_block_swiglu = {"swiglu", 1, swiglu_bind, swiglu_unbind, NULL, NULL, swiglu_scratch, swiglu_max_cols,
                                     swiglu_forward, NULL};
