#include "autodiff/buffers.h"

#include <string.h>

#include "autodiff/tensor.h"
#include "kernels/util.h"

void buffers_init(BufferStore *bs) { memset(bs, 0, sizeof *bs); }

void buffers_free(BufferStore *bs) {
    for (size_t i = 0; i < bs->n; i++) xfree(bs->b[i].name);
    xfree(bs->b);
    memset(bs, 0, sizeof *bs);
}

size_t buffer_elem_bytes(BufDtype dtype) { return dtype == BUF_U64 ? sizeof(uint64_t) : sizeof(float); }

Buffer *buffers_find(const BufferStore *bs, const char *name) {
    for (size_t i = 0; i < bs->n; i++)
        if (!strcmp(bs->b[i].name, name)) return &bs->b[i];
    return NULL;
}

Buffer *buffers_add(BufferStore *bs, const char *name, BufDtype dtype, int ndim, size_t a, size_t b, void *data,
                    int exported) {
    TERN_CHECK(!buffers_find(bs, name), "duplicate buffer name %s", name);
    TERN_CHECK(ndim == 1 || ndim == 2, "buffer %s: ndim %d (1 or 2)", name, ndim);
    if (bs->n == bs->cap) {
        bs->cap = bs->cap ? 2 * bs->cap : 8;
        bs->b = xrealloc(bs->b, bs->cap * sizeof *bs->b);
    }
    Buffer *buf = &bs->b[bs->n++];
    memset(buf, 0, sizeof *buf);
    buf->name = xstrdup(name);
    buf->dtype = dtype;
    buf->ndim = ndim;
    buf->shape[0] = a;
    buf->shape[1] = ndim == 2 ? b : 1;
    buf->numel = a * buf->shape[1];
    buf->data = data;
    buf->exported = exported;
    return buf;
}
