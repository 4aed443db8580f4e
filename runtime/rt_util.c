/* rt_util.c — error messages, allocation, tensor and key/value lookup for the runtime. Sizes in
 * an artifact come from a file, so allocations fail softly (NULL -> a clear error) instead of
 * aborting as xmalloc does. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_internal.h"

int rt_err(RtErr *e, const char *fmt, ...) {
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void rt_err_out(const RtErr *e, char *err, size_t errlen) {
    if (err && errlen) snprintf(err, errlen, "%s", e->msg);
}

void *rt_alloc(size_t bytes) {
    if (bytes > ((size_t)1 << 46)) return NULL;
    size_t n = (bytes + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
    memset(p, 0, n ? n : 64);
    return p;
}

void rt_free(void *p) { free(p); }

int rt_mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int rt_want_tensor(const TrtModel *m, const char *name, size_t rows, size_t cols, const RtTensor **out, size_t *used, RtErr *e) {
    const RtTensor *t = NULL;
    for (size_t i = 0; i < m->ntensors && !t; i++)
        if (!strcmp(m->tensors[i].name, name)) t = &m->tensors[i];
    if (!t) return rt_err(e, "tensor %s is missing", name);
    if (t->rows != rows || t->cols != cols)
        return rt_err(e, "tensor %s is %zu x %zu, the hyper-parameters need %zu x %zu", name, t->rows, t->cols, rows, cols);
    *out = t;
    (*used)++;
    return 0;
}

int rt_want_vec(const TrtModel *m, const char *name, size_t rows, size_t cols, float **out, size_t *used, RtErr *e) {
    const RtTensor *t;
    *out = NULL;
    if (rt_want_tensor(m, name, rows, cols, &t, used, e)) return -1;
    float *v = rt_alloc(rows * cols * sizeof(float));
    if (!v) return rt_err(e, "out of memory");
    for (size_t r = 0; r < rows; r++) rt_tensor_row_float(t, r, v + r * cols);
    *out = v;
    return 0;
}

const TernKv *rt_kv_find(const RtKvSet *s, const char *key) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->kv[i].key, key)) {
            s->seen[i] = 1;
            return &s->kv[i];
        }
    return NULL;
}

static const TernKv *kv_want(const RtKvSet *s, const char *key, uint32_t type, RtErr *e) {
    static const char *const names[TERN_KV_TYPES] = {"u32", "f32", "bool", "string"};
    const TernKv *kv = rt_kv_find(s, key);
    if (!kv) {
        rt_err(e, "hyper-parameter %s is missing", key);
        return NULL;
    }
    if (kv->type != type) {
        rt_err(e, "hyper-parameter %s is a %s, expected a %s", key, names[kv->type], names[type]);
        return NULL;
    }
    return kv;
}

int rt_kv_u32(const RtKvSet *s, const char *key, uint32_t lo, uint32_t hi, uint32_t *out, RtErr *e) {
    const TernKv *kv = kv_want(s, key, TERN_KV_U32, e);
    if (!kv) return -1;
    if (kv->u < lo || kv->u > hi) return rt_err(e, "%s = %u is out of range [%u, %u]", key, kv->u, lo, hi);
    *out = kv->u;
    return 0;
}

int rt_kv_f32(const RtKvSet *s, const char *key, float *out, RtErr *e) {
    const TernKv *kv = kv_want(s, key, TERN_KV_F32, e);
    if (!kv) return -1;
    if (!(kv->f == kv->f) || kv->f > 3.4028235e38f || kv->f < -3.4028235e38f) return rt_err(e, "%s is not finite", key);
    *out = kv->f;
    return 0;
}

int rt_kv_bool(const RtKvSet *s, const char *key, int *out, RtErr *e) {
    const TernKv *kv = kv_want(s, key, TERN_KV_BOOL, e);
    if (!kv) return -1;
    *out = (int)kv->u;
    return 0;
}

int rt_kv_str(const RtKvSet *s, const char *key, const char **out, RtErr *e) {
    const TernKv *kv = kv_want(s, key, TERN_KV_STR, e);
    if (!kv) return -1;
    *out = kv->s;
    return 0;
}

void rt_info_fill(TrtModel *m, const char *arch, size_t vocab, size_t layers, size_t dim, size_t heads, size_t kv_heads,
                  size_t mlp_hidden, size_t seq_len, size_t eval_seq_len) {
    TrtModelInfo *in = &m->info;
    in->arch = arch;
    in->vocab_size = vocab;
    in->layers = layers;
    in->dim = dim;
    in->heads = heads;
    in->kv_heads = kv_heads;
    in->mlp_hidden = mlp_hidden;
    in->seq_len = seq_len;
    in->eval_seq_len = eval_seq_len ? eval_seq_len : seq_len;
    size_t params = 0;
    for (size_t i = 0; i < m->ntensors; i++) params += m->tensors[i].rows * m->tensors[i].cols;
    in->params = params;
}
