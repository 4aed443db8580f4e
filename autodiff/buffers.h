/* buffers.h — model state that is not trained by gradient but belongs to the model: saved in
 * checkpoints (/buffers/<name>), restored bit-exactly on resume, and (when marked) exported to
 * the artifact. Examples: the training-forward counter behind TRN's readout warm-up, MoE expert
 * biases updated by their load error, test-time memories.
 *
 * A buffer does not own its memory: the block kind (or the stack) that registers it keeps the
 * storage and registers a pointer to it, as a ParamStore tensor points into the flat buffer.
 * Optimizers, all-reduce, EMA and MeZO never see buffers. */
#ifndef TERN_BUFFERS_H
#define TERN_BUFFERS_H

#include <stddef.h>
#include <stdint.h>

typedef enum BufDtype { BUF_F32 = 0, BUF_U64 = 1 } BufDtype;

typedef struct Buffer {
    char *name;
    BufDtype dtype;
    int ndim;            /* 1 or 2 */
    size_t shape[2];
    size_t numel;
    void *data;          /* numel elements of dtype, owned by whoever registered the buffer */
    int exported;        /* written to artifacts (the runtime needs it) */
} Buffer;

typedef struct BufferStore {
    Buffer *b;
    size_t n, cap;
} BufferStore;

void buffers_init(BufferStore *bs);
void buffers_free(BufferStore *bs);
/* Registers a buffer over `data` (ndim 1: [a], ndim 2: [a, b]). Fatal on a duplicate name. */
Buffer *buffers_add(BufferStore *bs, const char *name, BufDtype dtype, int ndim, size_t a, size_t b, void *data,
                    int exported);
Buffer *buffers_find(const BufferStore *bs, const char *name);
size_t buffer_elem_bytes(BufDtype dtype);

#endif
