#include "autodiff/tape.h"

#include <string.h>

#include "kernels/util.h"

void tape_init(Tape *tp, size_t arena_bytes) {
    memset(tp, 0, sizeof *tp);
    arena_init(&tp->arena, arena_bytes);
}

void tape_free(Tape *tp) {
    arena_free(&tp->arena);
    xfree(tp->entries);
    memset(tp, 0, sizeof *tp);
}

void tape_reset(Tape *tp) {
    tp->n = 0;
    arena_reset(&tp->arena);
}

Tensor *tensor_new(Tape *tp, int ndim, const size_t *shape) {
    TERN_CHECK(ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "tensor_new: bad ndim %d", ndim);
    Tensor *t = arena_alloc(&tp->arena, sizeof *t);
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = shape_numel(ndim, shape);
    t->data = arena_alloc(&tp->arena, (t->numel ? t->numel : 1) * sizeof(float));
    return t;
}

Tensor *tensor_new1(Tape *tp, size_t a) { return tensor_new(tp, 1, (size_t[]){a}); }
Tensor *tensor_new2(Tape *tp, size_t a, size_t b) { return tensor_new(tp, 2, (size_t[]){a, b}); }
Tensor *tensor_new3(Tape *tp, size_t a, size_t b, size_t c) {
    return tensor_new(tp, 3, (size_t[]){a, b, c});
}
Tensor *tensor_new4(Tape *tp, size_t a, size_t b, size_t c, size_t d) {
    return tensor_new(tp, 4, (size_t[]){a, b, c, d});
}

Tensor *tensor_zeros(Tape *tp, int ndim, const size_t *shape) {
    Tensor *t = tensor_new(tp, ndim, shape);
    memset(t->data, 0, t->numel * sizeof(float));
    return t;
}

Tensor *tensor_view(Tape *tp, Tensor *src, size_t offset, int ndim, const size_t *shape) {
    size_t n = shape_numel(ndim, shape);
    TERN_CHECK(offset + n <= src->numel, "tensor_view: %zu+%zu elements exceed source %zu (%s)",
               offset, n, src->numel, src->name ? src->name : "?");
    Tensor *t = arena_alloc(&tp->arena, sizeof *t);
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = n;
    Tensor *root = src->base ? src->base : src;
    t->base = root;
    t->offset = offset + (src->base ? src->offset : 0);
    t->data = root->data + t->offset;
    t->requires_grad = src->requires_grad;
    t->name = src->name;
    return t;
}

float *tensor_grad(Tape *tp, Tensor *t) {
    if (t->base) {
        float *g = tensor_grad(tp, t->base);
        return g + t->offset;
    }
    if (!t->grad) t->grad = arena_calloc(&tp->arena, t->numel ? t->numel : 1, sizeof(float));
    return t->grad;
}

int tape_wants_grad(const Tape *tp, Tensor *const *in, int nin) {
    if (tp->no_grad > 0) return 0;
    for (int i = 0; i < nin; i++)
        if (in[i] && in[i]->requires_grad) return 1;
    return 0;
}

TapeEntry *tape_record(Tape *tp, const char *op, BackwardFn bw, Tensor *out, Tensor *const *in,
                       int nin) {
    TERN_CHECK(nin <= TAPE_MAX_IN, "op %s: too many inputs", op);
    if (tp->n == tp->cap) {
        tp->cap = tp->cap ? tp->cap * 2 : 256;
        tp->entries = xrealloc(tp->entries, tp->cap * sizeof *tp->entries);
        tp->entry_reallocs++;
    }
    TapeEntry *e = &tp->entries[tp->n++];
    memset(e, 0, sizeof *e);
    e->op = op;
    e->backward = bw;
    e->out = out;
    e->nin = nin;
    for (int i = 0; i < nin; i++) e->in[i] = in[i];
    out->requires_grad = 1;
    return e;
}

/* Output grad of an entry, or NULL when no gradient reached it (nothing to propagate). */
static int has_grad(const Tensor *t) {
    const Tensor *r = t->base ? t->base : t;
    return r->grad != NULL;
}

void tape_backward_seed(Tape *tp, Tensor *out, const float *seed) {
    float *g = tensor_grad(tp, out);
    for (size_t i = 0; i < out->numel; i++) g[i] += seed[i];
    for (size_t i = tp->n; i-- > 0;) {
        TapeEntry *e = &tp->entries[i];
        if (!has_grad(e->out)) continue;
        e->backward(tp, e);
    }
}

void tape_backward(Tape *tp, Tensor *loss) {
    TERN_CHECK(loss->numel == 1, "tape_backward: loss must have one element, has %zu", loss->numel);
    const float one = 1.0f;
    tape_backward_seed(tp, loss, &one);
}
