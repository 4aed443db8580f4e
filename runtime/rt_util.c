/* rt_util.c — error messages and allocation for the runtime. Sizes in an artifact come from a
 * file, so allocations fail softly (NULL -> a clear error) instead of aborting as xmalloc does. */
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
