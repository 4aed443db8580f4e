#include "data/gguf_write.h"

#include <stdlib.h>
#include <string.h>

#include "data/gguf.h"

static void buf_put(GgufBuf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void buf_u32(GgufBuf *b, uint32_t v) { buf_put(b, &v, 4); }
static void buf_u64(GgufBuf *b, uint64_t v) { buf_put(b, &v, 8); }
static void buf_str(GgufBuf *b, const char *s, size_t n) {
    buf_u64(b, n);
    buf_put(b, s, n);
}

void gguf_writer_init(GgufWriter *w) { memset(w, 0, sizeof *w); }

void gguf_writer_free(GgufWriter *w) {
    xfree(w->kv.p);
    for (size_t i = 0; i < w->nt; i++) {
        free(w->t[i].name);
        xfree(w->t[i].data);
    }
    xfree(w->t);
    memset(w, 0, sizeof *w);
}

static void key(GgufWriter *w, const char *k, uint32_t type) {
    buf_str(&w->kv, k, strlen(k));
    buf_u32(&w->kv, type);
    w->nkv++;
}

void gguf_put_str(GgufWriter *w, const char *k, const char *value) {
    key(w, k, GGUF_STRING);
    buf_str(&w->kv, value, strlen(value));
}
void gguf_put_u32(GgufWriter *w, const char *k, uint32_t value) {
    key(w, k, GGUF_U32);
    buf_u32(&w->kv, value);
}
void gguf_put_f32(GgufWriter *w, const char *k, float value) {
    key(w, k, GGUF_F32);
    buf_put(&w->kv, &value, 4);
}
void gguf_put_bool(GgufWriter *w, const char *k, int value) {
    key(w, k, GGUF_BOOL);
    uint8_t v = value != 0;
    buf_put(&w->kv, &v, 1);
}
static void arr_head(GgufWriter *w, const char *k, uint32_t elem, size_t n) {
    key(w, k, GGUF_ARRAY);
    buf_u32(&w->kv, elem);
    buf_u64(&w->kv, n);
}
void gguf_put_arr_str(GgufWriter *w, const char *k, const char *const *s, const size_t *len, size_t n) {
    arr_head(w, k, GGUF_STRING, n);
    for (size_t i = 0; i < n; i++) buf_str(&w->kv, s[i], len[i]);
}
void gguf_put_arr_f32(GgufWriter *w, const char *k, const float *v, size_t n) {
    arr_head(w, k, GGUF_F32, n);
    buf_put(&w->kv, v, n * 4);
}
void gguf_put_arr_i32(GgufWriter *w, const char *k, const int32_t *v, size_t n) {
    arr_head(w, k, GGUF_I32, n);
    buf_put(&w->kv, v, n * 4);
}

void gguf_add_tensor(GgufWriter *w, const char *name, uint32_t ndim, const uint64_t *dims, uint32_t type, uint8_t *data,
                     size_t bytes) {
    if (w->nt == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->t = xrealloc(w->t, w->cap * sizeof *w->t);
    }
    GgufOutTensor *t = &w->t[w->nt++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->ndim = ndim;
    for (uint32_t d = 0; d < ndim && d < 4; d++) t->dims[d] = dims[d];
    t->type = type;
    t->data = data;
    t->bytes = bytes;
}

static size_t align_up(size_t n) { return (n + GGUF_WRITE_ALIGNMENT - 1) / GGUF_WRITE_ALIGNMENT * GGUF_WRITE_ALIGNMENT; }

void gguf_writer_bytes(const GgufWriter *w, uint8_t **out, size_t *len) {
    GgufBuf b = {0};
    buf_put(&b, "GGUF", 4);
    buf_u32(&b, 3);
    buf_u64(&b, w->nt);
    buf_u64(&b, w->nkv + 1);
    buf_put(&b, w->kv.p, w->kv.n);
    /* general.alignment, written like the other keys */
    const char *ak = "general.alignment";
    buf_str(&b, ak, strlen(ak));
    buf_u32(&b, GGUF_U32);
    buf_u32(&b, GGUF_WRITE_ALIGNMENT);
    size_t off = 0;
    for (size_t i = 0; i < w->nt; i++) {
        const GgufOutTensor *t = &w->t[i];
        buf_str(&b, t->name, strlen(t->name));
        buf_u32(&b, t->ndim);
        for (uint32_t d = 0; d < t->ndim; d++) buf_u64(&b, t->dims[d]);
        buf_u32(&b, t->type);
        buf_u64(&b, off);
        off = align_up(off + t->bytes);
    }
    static const uint8_t zeros[GGUF_WRITE_ALIGNMENT];
    buf_put(&b, zeros, align_up(b.n) - b.n);
    for (size_t i = 0; i < w->nt; i++) {
        buf_put(&b, w->t[i].data, w->t[i].bytes);
        buf_put(&b, zeros, align_up(w->t[i].bytes) - w->t[i].bytes);
    }
    *out = b.p;
    *len = b.n;
}

int gguf_writer_save(const GgufWriter *w, const char *path, Err *err) {
    uint8_t *p = NULL;
    size_t n = 0;
    gguf_writer_bytes(w, &p, &n);
    int rc = write_file_atomic(path, p, n, err);
    xfree(p);
    return rc;
}
