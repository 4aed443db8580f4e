/* registry.c — the table of block kinds, and the small helpers they share. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/block.h"

static const BlockKind *const kKinds[] = {&kBlockAttention, &kBlockMlp,   &kBlockSwiglu, &kBlockGlu,  &kBlockTrn,
                                          &kBlockGru,       &kBlockMlgru, &kBlockGdn,    &kBlockMlstm, &kBlockMoe};
enum { N_KINDS = sizeof kKinds / sizeof kKinds[0] };
_Static_assert(N_KINDS <= 16, "a preset places at most 16 kinds (model/stack.c STACK_MAX_KINDS)");

size_t block_kind_count(void) { return N_KINDS; }
const BlockKind *block_kind_at(size_t i) { return i < N_KINDS ? kKinds[i] : NULL; }

const BlockKind *block_kind_find(const char *name) {
    for (size_t i = 0; i < N_KINDS; i++)
        if (!strcmp(kKinds[i]->name, name)) return kKinds[i];
    return NULL;
}

Tensor *block_param(ParamStore *ps, const char *prefix, const char *name, int ndim, size_t a, size_t b) {
    char full[160];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return params_add2(ps, full, ndim, a, b);
}

/* torch.nn.Linear's default init U(-1/sqrt(in), 1/sqrt(in)), as the parameter-golf CastedLinear */
void block_init_linear(Tensor *w, Rng *rng) {
    float bound = 1.0f / sqrtf((float)w->shape[1]);
    rng_fill_uniform(rng, w->data, w->numel, -bound, bound);
}

void block_fill(Tensor *t, float v) {
    for (size_t i = 0; i < t->numel; i++) t->data[i] = v;
}

/* ---------------------------------------------------------------- key/value lists */
static KvEntry *kv_new(KvList *kv, const char *key, KvType type) {
    if (kv->n == kv->cap) {
        kv->cap = kv->cap ? 2 * kv->cap : 32;
        kv->e = xrealloc(kv->e, kv->cap * sizeof *kv->e);
    }
    KvEntry *e = &kv->e[kv->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->type = type;
    return e;
}

void kv_add_u32(KvList *kv, const char *key, uint64_t v) { kv_new(kv, key, KV_U32)->u = v; }
void kv_add_f32(KvList *kv, const char *key, double v) { kv_new(kv, key, KV_F32)->f = v; }
void kv_add_bool(KvList *kv, const char *key, int v) { kv_new(kv, key, KV_BOOL)->u = v != 0; }
void kv_add_str(KvList *kv, const char *key, const char *v) { snprintf(kv_new(kv, key, KV_STR)->s, CFG_STR_MAX, "%s", v); }

void kv_free(KvList *kv) {
    xfree(kv->e);
    memset(kv, 0, sizeof *kv);
}
