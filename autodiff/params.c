#include "autodiff/params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/meminfo.h"
#include "kernels/reduce.h"
#include "kernels/util.h"

void params_init(ParamStore *ps) { memset(ps, 0, sizeof *ps); }

void params_free(ParamStore *ps) {
    for (size_t i = 0; i < ps->n; i++) {
        xfree((void *)ps->t[i]->name);
        xfree(ps->t[i]);
    }
    xfree(ps->t);
    xfree(ps->values);
    xfree_lazy(ps->grads, ps->total ? ps->total : 1, sizeof(float));
    memset(ps, 0, sizeof *ps);
}

Tensor *params_add(ParamStore *ps, const char *name, int ndim, const size_t *shape) {
    TERN_CHECK(!ps->finalized, "params_add(%s) after finalize", name);
    TERN_CHECK(params_index(ps, name) < 0, "duplicate parameter name %s", name);
    TERN_CHECK(ndim >= 1 && ndim <= TENSOR_MAX_DIMS, "parameter %s: bad ndim %d", name, ndim);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 64;
        ps->t = xrealloc(ps->t, ps->cap * sizeof *ps->t);
    }
    Tensor *t = xcalloc(1, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = shape_numel(ndim, shape);
    t->requires_grad = 1;
    t->is_param = 1;
    t->name = xstrdup(name);
    t->param_index = (int32_t)ps->n;
    ps->t[ps->n++] = t;
    return t;
}

void params_finalize(ParamStore *ps) {
    Err err = {0};
    if (params_finalize_checked(ps, &err)) {
        fprintf(stderr, "tern: %s\n", err.msg);
        exit(1);
    }
}

int params_finalize_checked(ParamStore *ps, Err *err) {
    TERN_CHECK(!ps->finalized, "params_finalize twice");
    size_t total = 0;
    /* each tensor starts on a 16-float (64-byte) boundary so SIMD loops stay aligned */
    for (size_t i = 0; i < ps->n; i++) total += (ps->t[i]->numel + 15) & ~(size_t)15;
    ps->total = total;
    /* a model the machine cannot hold with its gradients is refused here, before the allocator
     * or the OOM killer meets it mid-way (the shapes come from a config or a file). The values
     * are zeroed, hence resident; the gradients are mapped lazily and cost nothing until a
     * backward writes them, so forward-only work (evaluation, MeZO, generation) never pays them. */
    char what[96];
    snprintf(what, sizeof what, "the model's %zu parameters (values + gradients)", total);
    if (mem_check(2 * total * sizeof(float), what, err)) return -1;
    ps->values = xcalloc(total ? total : 1, sizeof(float));
    ps->grads = xcalloc_lazy(total ? total : 1, sizeof(float));
    size_t off = 0;
    for (size_t i = 0; i < ps->n; i++) {
        ps->t[i]->data = ps->values + off;
        ps->t[i]->grad = ps->grads + off;
        off += (ps->t[i]->numel + 15) & ~(size_t)15;
    }
    ps->finalized = 1;
    return 0;
}

long params_index(const ParamStore *ps, const char *name) {
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->t[i]->name, name) == 0) return (long)i;
    return -1;
}

Tensor *params_find(const ParamStore *ps, const char *name) {
    long i = params_index(ps, name);
    return i < 0 ? NULL : ps->t[i];
}

void params_zero_grad(ParamStore *ps) {
    if (ps->grads) memset(ps->grads, 0, ps->total * sizeof(float));
}

double params_grad_norm(const ParamStore *ps) { return ps->grads ? sqrt(reduce_sumsq(ps->grads, ps->total)) : 0.0; }

int params_grads_finite(const ParamStore *ps) { return ps->grads ? reduce_all_finite(ps->grads, ps->total) : 1; }

void params_freeze(ParamStore *ps) {
    TERN_CHECK(ps->finalized, "params_freeze before params_finalize");
    for (size_t i = 0; i < ps->n; i++) {
        ps->t[i]->grad = NULL;
        ps->t[i]->requires_grad = 0;
    }
    xfree_lazy(ps->grads, ps->total ? ps->total : 1, sizeof(float));
    ps->grads = NULL;
}

int params_values_finite(const ParamStore *ps) { return reduce_all_finite(ps->values, ps->total); }

Tensor *params_add2(ParamStore *ps, const char *name, int ndim, size_t a, size_t b) {
    size_t shape[2] = {a, b};
    return params_add(ps, name, ndim, shape);
}
