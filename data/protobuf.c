/* protobuf.c — bounds-checked protobuf wire-format reader (see protobuf.h). The encoding rules
 * are those of the public protobuf documentation ("Encoding", protobuf.dev). */
#include "data/protobuf.h"

#include <string.h>

void pb_reader_init(PbReader *r, const void *data, size_t len) {
    r->p = r->start = (const uint8_t *)data;
    r->end = r->p + len;
    r->base = 0;
}

void pb_reader_sub(PbReader *r, const PbField *f) {
    r->p = r->start = f->data;
    r->end = f->data + f->len;
    r->base = f->data_offset;
}

static size_t offset_of(const PbReader *r, const uint8_t *p) { return r->base + (size_t)(p - r->start); }

static int read_varint(PbReader *r, uint64_t *out, Err *err) {
    uint64_t v = 0;
    const uint8_t *p = r->p;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p >= r->end) return err_set(err, "truncated varint at byte %zu", offset_of(r, r->p));
        uint8_t b = *p++;
        /* The tenth byte may only carry the top bit of a 64-bit value. */
        if (shift == 63 && (b & 0x7e))
            return err_set(err, "varint too long at byte %zu", offset_of(r, r->p));
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            r->p = p;
            *out = v;
            return 0;
        }
    }
    return err_set(err, "varint too long at byte %zu", offset_of(r, r->p));
}

int pb_next(PbReader *r, PbField *f, Err *err) {
    if (r->p >= r->end) return 0;
    memset(f, 0, sizeof *f);
    f->offset = offset_of(r, r->p);
    uint64_t key;
    if (read_varint(r, &key, err)) return -1;
    f->wire = (int)(key & 7);
    uint64_t number = key >> 3;
    if (number == 0 || number > 536870911u)
        return err_set(err, "invalid field number %llu at byte %zu", (unsigned long long)number, f->offset);
    f->number = (uint32_t)number;
    size_t left;
    switch (f->wire) {
    case PB_VARINT:
        return read_varint(r, &f->u64, err) ? -1 : 1;
    case PB_FIXED64:
        left = (size_t)(r->end - r->p);
        if (left < 8) return err_set(err, "truncated 64-bit field %u at byte %zu", f->number, f->offset);
        for (int i = 7; i >= 0; i--) f->u64 = (f->u64 << 8) | r->p[i];
        r->p += 8;
        return 1;
    case PB_FIXED32:
        left = (size_t)(r->end - r->p);
        if (left < 4) return err_set(err, "truncated 32-bit field %u at byte %zu", f->number, f->offset);
        f->u64 = (uint64_t)r->p[0] | (uint64_t)r->p[1] << 8 | (uint64_t)r->p[2] << 16 | (uint64_t)r->p[3] << 24;
        r->p += 4;
        return 1;
    case PB_LEN: {
        uint64_t n;
        if (read_varint(r, &n, err)) return -1;
        left = (size_t)(r->end - r->p);
        if (n > left)
            return err_set(err, "field %u at byte %zu claims %llu bytes but only %zu remain", f->number,
                           f->offset, (unsigned long long)n, left);
        f->data = r->p;
        f->data_offset = offset_of(r, r->p);
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default:
        return err_set(err, "unsupported wire type %d (field %u) at byte %zu", f->wire, f->number, f->offset);
    }
}

float pb_as_float(const PbField *f) {
    uint32_t bits = (uint32_t)f->u64;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* ---------------------------------------------------------------- writer */
static void put_raw(PbWriter *w, const void *d, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->buf = xrealloc(w->buf, w->cap);
    }
    memcpy(w->buf + w->n, d, n);
    w->n += n;
}

static void put_uvarint(PbWriter *w, uint64_t v) {
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    put_raw(w, b, n);
}

void pb_put_varint(PbWriter *w, uint32_t number, uint64_t v) {
    put_uvarint(w, (uint64_t)number << 3 | PB_VARINT);
    put_uvarint(w, v);
}

void pb_put_float(PbWriter *w, uint32_t number, float v) {
    put_uvarint(w, (uint64_t)number << 3 | PB_FIXED32);
    uint8_t b[4];
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(u >> (8 * i));
    put_raw(w, b, 4);
}

void pb_put_bytes(PbWriter *w, uint32_t number, const void *data, size_t len) {
    put_uvarint(w, (uint64_t)number << 3 | PB_LEN);
    put_uvarint(w, len);
    put_raw(w, data, len);
}

void pb_writer_free(PbWriter *w) {
    xfree(w->buf);
    memset(w, 0, sizeof *w);
}
