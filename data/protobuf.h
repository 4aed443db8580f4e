/* protobuf.h — a tiny reader for the protobuf wire format (no libprotobuf).
 *
 * Enough to walk a serialized message field by field: varint (wire type 0), 64-bit (1),
 * length-delimited (2) and 32-bit (5). Groups (3, 4) are long deprecated and rejected. Every read
 * is bounds-checked: a truncated or corrupt message gives an error with the byte offset, never a
 * read past the end. Nested messages are read by starting a new reader on a field's bytes. */
#ifndef TERN_PROTOBUF_H
#define TERN_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2, PB_FIXED32 = 5 };

typedef struct PbReader {
    const uint8_t *p, *end;
    size_t base; /* offset of the reader's first byte inside the outermost message (for errors) */
    const uint8_t *start;
} PbReader;

typedef struct PbField {
    uint32_t number;
    int wire;            /* PB_* */
    uint64_t u64;        /* PB_VARINT, PB_FIXED64, PB_FIXED32 value (zero-extended) */
    const uint8_t *data; /* PB_LEN payload */
    size_t len;
    size_t offset;       /* where the field's key starts, from the outermost message */
    size_t data_offset;  /* where a PB_LEN payload starts, from the outermost message */
} PbField;

void pb_reader_init(PbReader *r, const void *data, size_t len);
/* A reader over a PB_LEN field's payload (a nested message); offsets stay absolute. */
void pb_reader_sub(PbReader *r, const PbField *f);
/* Reads the next field. Returns 1 when a field was read, 0 at the clean end of the message,
 * -1 on malformed input (err: what and at which byte). */
int pb_next(PbReader *r, PbField *f, Err *err);

/* Interpretations of a scalar field. */
static inline int32_t pb_as_int32(const PbField *f) { return (int32_t)(uint32_t)f->u64; }
static inline int pb_as_bool(const PbField *f) { return f->u64 != 0; }
float pb_as_float(const PbField *f);

/* A growing buffer that serializes fields (for writing SentencePiece models). */
typedef struct PbWriter {
    uint8_t *buf;
    size_t n, cap;
} PbWriter;

void pb_put_varint(PbWriter *w, uint32_t number, uint64_t v);
void pb_put_float(PbWriter *w, uint32_t number, float v);
/* A length-delimited field: bytes, a string, or a nested message's serialized bytes. */
void pb_put_bytes(PbWriter *w, uint32_t number, const void *data, size_t len);
void pb_writer_free(PbWriter *w);

#endif
