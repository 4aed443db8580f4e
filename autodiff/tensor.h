/* tensor.h — float32 tensors (up to 4 dims, contiguous, row-major).
 *
 * A Tensor is a header over data that lives elsewhere: the parameter store's flat buffer, the
 * per-step arena (activations), or its own heap block (tensor_create; tests and tools).
 * grad follows the same ownership. A view (base != NULL) aliases base's data and grad at
 * `offset`, so reshapes and parameter slices need no copy and no tape entry. */
#ifndef TERN_TENSOR_H
#define TERN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIMS 4

typedef struct Tensor {
    float *data;
    float *grad;           /* NULL until a gradient is needed (see tensor_grad) */
    struct Tensor *base;   /* views: data = base->data + offset, grad likewise */
    size_t offset;
    size_t shape[TENSOR_MAX_DIMS];
    size_t numel;
    int ndim;
    uint8_t requires_grad;
    uint8_t is_param;
    uint8_t owns_memory;   /* tensor_create: data and grad freed by tensor_destroy */
    int32_t param_index;   /* position in its ParamStore (parameters), else -1 or 0 */
    const char *name;
} Tensor;

size_t shape_numel(int ndim, const size_t *shape);
/* rows/cols when the tensor is read as a matrix over its last dimension */
static inline size_t tensor_cols(const Tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
static inline size_t tensor_rows(const Tensor *t) { return t->numel / (tensor_cols(t) ? tensor_cols(t) : 1); }
int tensor_same_shape(const Tensor *a, const Tensor *b);
/* "[2, 3, 4]" */
void tensor_shape_str(const Tensor *t, char *buf, size_t n);

/* Heap tensor with zeroed data and (if requires_grad) zeroed grad. */
Tensor *tensor_create(int ndim, const size_t *shape, int requires_grad, const char *name);
void tensor_destroy(Tensor *t);

/* Always-on check for programming errors in op use (shape mismatch...): prints and aborts. */
void tern_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define TERN_CHECK(cond, ...)                  \
    do {                                       \
        if (!(cond)) tern_fatal(__VA_ARGS__);  \
    } while (0)

#endif
