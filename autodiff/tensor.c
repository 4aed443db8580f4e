#include "autodiff/tensor.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/util.h"

size_t shape_numel(int ndim, const size_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

int tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

void tensor_shape_str(const Tensor *t, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %zu" : "%zu", t->shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

Tensor *tensor_create(int ndim, const size_t *shape, int requires_grad, const char *name) {
    TERN_CHECK(ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "tensor_create: bad ndim %d", ndim);
    Tensor *t = xcalloc(1, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = shape_numel(ndim, shape);
    t->data = xcalloc(t->numel ? t->numel : 1, sizeof(float));
    if (requires_grad) t->grad = xcalloc(t->numel ? t->numel : 1, sizeof(float));
    t->requires_grad = (uint8_t)(requires_grad != 0);
    t->owns_memory = 1;
    t->name = name;
    return t;
}

void tensor_destroy(Tensor *t) {
    if (!t) return;
    if (t->owns_memory) {
        xfree(t->data);
        xfree(t->grad);
    }
    xfree(t);
}

void tern_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tern: internal error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}
