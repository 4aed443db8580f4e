/* format.h — the tern artifact format (version 2): the one contract between the exporter
 * (export/writer.c, inside the framework) and the inference runtime (runtime/, built alone).
 * Everything both sides must agree on lives here: magic numbers, the version, the byte layout
 * of the preamble, header, typed key/value hyper-parameters and tensor table (with encode/decode
 * functions, so no side ever memcpy's a C struct with its padding and endianness), the packing
 * of every dtype, IEEE half conversion and the CRC-32. docs/FORMAT.md describes the same bytes
 * in prose. Header-only C11, libc only (stdint/stddef/string).
 *
 * File = a zstd skippable frame (the preamble: magic, version, container size, so a reader can
 * reject a foreign or newer file before decompressing anything) followed by exactly one zstd
 * frame (content size and XXH64 content checksum set) whose content is the container:
 *   header (128 B) | key/values | tensor table (n x 128 B) | config JSON | tokenizer bytes |
 *   payload (per-tensor packed rows and scales, each blob 64-byte aligned) | CRC-32 (4 B).
 * All integers are little-endian; offsets are from the container's first byte.
 *
 * Versioning: TERN_FORMAT_VERSION changes whenever a reader of the old version would misread a
 * new file. Readers accept exactly the versions they know. Version 2 replaced version 1's fixed
 * hyper-parameter struct per architecture by typed key/values (as GGUF's metadata): the backbone
 * is a list of layers, each naming its block kinds, and every kind reads its own keys. A new
 * block kind or key is not a version change: readers refuse keys and kinds they do not know
 * with one line, so none is misread. */
#ifndef TERN_FORMAT_H
#define TERN_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TERN_FORMAT_VERSION 2u
#define TERN_MAGIC "TERNART" /* 8 bytes with the NUL */
#define TERN_MAGIC_LEN 8u

/* zstd skippable frames have magic 0x184D2A50..0x184D2A5F (RFC 8878 §3.1.2); decompressors
 * skip them, so `zstd -d model.tern` still yields the container. */
#define TERN_SKIPPABLE_MAGIC 0x184D2A5Eu
#define TERN_PREAMBLE_SIZE 32u      /* 8 bytes of frame header + 24 bytes of content */
#define TERN_HEADER_SIZE 128u
#define TERN_TENSOR_ENTRY_SIZE 128u
#define TERN_NAME_MAX 64u           /* including the NUL */
#define TERN_ALIGN 64u              /* payload blobs: cache line / AVX-512 alignment */
#define TERN_KV_KEY_MAX 64u        /* key bytes, NUL excluded, at most this minus one */
#define TERN_KV_STR_MAX 256u       /* string value bytes, at most */
#define TERN_KV_MAX 4096u          /* entries */
#define TERN_LAYERS_MAX 256u
#define TERN_CRC_SIZE 4u
#define TERN_CHUNK 128u             /* ternary 2-bit block; also the runtime's kernel chunk */

typedef enum TernDtype {
    TERN_DT_F32 = 0, /* IEEE binary32 */
    TERN_DT_F16 = 1, /* IEEE binary16 */
    TERN_DT_I8 = 2,  /* int8 codes in [-127, 127], two's complement bytes */
    TERN_DT_I6 = 3,  /* int6 codes in [-31, 31], 6-bit fields of a little-endian bit stream */
    TERN_DT_I5 = 4,  /* int5 codes in [-15, 15], parameter-golf's 8 values per 5 bytes */
    TERN_DT_I4 = 5,  /* int4 codes in [-7, 7], two per byte, low nibble first */
    TERN_DT_T2 = 6,  /* ternary, 2 bits per weight in 128-weight blocks (llama.cpp TQ2_0 order) */
    TERN_DT_T3 = 7,  /* ternary, base 3, 5 trits per byte (parameter-golf ternary record) */
    TERN_DT_COUNT
} TernDtype;

typedef enum TernScaleDtype { TERN_SCALE_NONE = 0, TERN_SCALE_F32 = 1, TERN_SCALE_F16 = 2 } TernScaleDtype;
typedef enum TernTokKind { TERN_TOK_NONE = 0, TERN_TOK_FILE = 1, TERN_TOK_BYTE = 2 } TernTokKind;

/* ---------------------------------------------------------------- little-endian access */
static inline void tern_wr_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tern_wr_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t tern_rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t tern_rd_u64(const uint8_t *p) {
    return (uint64_t)tern_rd_u32(p) | (uint64_t)tern_rd_u32(p + 4) << 32;
}
static inline void tern_wr_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    tern_wr_u32(p, u);
}
static inline float tern_rd_f32(const uint8_t *p) {
    uint32_t u = tern_rd_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---------------------------------------------------------------- IEEE half
 * Round to nearest even, overflow to infinity, NaN kept quiet. Must give the same bits as
 * kernels/quant.c (tests/unit/test_export_format.c checks every half and many floats). */
static inline uint16_t tern_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: half subnormal */
        /* the value in units of 2^-24, rounded to nearest even, done on the integer mantissa */
        uint32_t e = a >> 23;
        if (e < 102) return (uint16_t)sign; /* < 2^-25: rounds to 0 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* value = m * 2^(e-150) = (m >> (126-e)) units of 2^-24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ffu);
    uint32_t rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry into the exponent is right */
    return (uint16_t)(sign | h);
}

static inline float tern_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else { /* subnormal: normalise */
            int k = 0;
            while (!(m & 0x400u)) {
                m <<= 1;
                k++;
            }
            x = sign | (uint32_t)(113 - k) << 23 | (m & 0x3ffu) << 13;
        }
    } else if (e == 31) {
        x = sign | 0x7f800000u | m << 13;
    } else {
        x = sign | (e + 112) << 23 | m << 13;
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---------------------------------------------------------------- CRC-32
 * IEEE 802.3 / zlib crc32 (reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF).
 * The table is built on the stack per call (256 x 8 steps): no global state, and negligible
 * next to the megabytes it checks. Pass crc = 0 to start; chain calls with the previous result. */
static inline uint32_t tern_crc32(uint32_t crc, const void *data, size_t n) {
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

/* ---------------------------------------------------------------- preamble (skippable frame)
 *  0 u32 TERN_SKIPPABLE_MAGIC   4 u32 24 (frame content size)
 *  8 char[8] "TERNART\0"       16 u32 version   20 u32 flags (0)   24 u64 container size */
typedef struct TernPreamble {
    uint32_t version, flags;
    uint64_t container_size;
} TernPreamble;

static inline void tern_preamble_encode(uint8_t *p, const TernPreamble *pr) {
    memset(p, 0, TERN_PREAMBLE_SIZE);
    tern_wr_u32(p, TERN_SKIPPABLE_MAGIC);
    tern_wr_u32(p + 4, TERN_PREAMBLE_SIZE - 8);
    memcpy(p + 8, TERN_MAGIC, TERN_MAGIC_LEN);
    tern_wr_u32(p + 16, pr->version);
    tern_wr_u32(p + 20, pr->flags);
    tern_wr_u64(p + 24, pr->container_size);
}

/* 0 ok; -1 not a tern artifact (wrong magic or frame). The version is returned unchecked. */
static inline int tern_preamble_decode(const uint8_t *p, size_t n, TernPreamble *pr) {
    if (n < TERN_PREAMBLE_SIZE || tern_rd_u32(p) != TERN_SKIPPABLE_MAGIC ||
        tern_rd_u32(p + 4) != TERN_PREAMBLE_SIZE - 8 || memcmp(p + 8, TERN_MAGIC, TERN_MAGIC_LEN))
        return -1;
    pr->version = tern_rd_u32(p + 16);
    pr->flags = tern_rd_u32(p + 20);
    pr->container_size = tern_rd_u64(p + 24);
    return 0;
}

/* ---------------------------------------------------------------- container header (128 B)
 *   0 char[8] magic     8 u32 version      12 u32 header size (128)   16 u32 reserved (0; v1's arch)
 *  20 u32 n_tensors    24 u32 entry size (128)                        28 u32 flags (0)
 *  32 u64 kv off       40 u64 kv size      48 u64 table off
 *  56 u64 config off   64 u64 config size  72 u64 tokenizer off       80 u64 tokenizer size
 *  88 u32 tokenizer kind (TernTokKind)     92 u32 reserved (0)
 *  96 u64 payload off 104 u64 payload size 112 u64 container size (with the CRC)
 * 120 u64 reserved (0) */
typedef struct TernHeader {
    uint32_t version, header_size, arch, n_tensors, entry_size, flags;
    uint64_t hparams_off, hparams_size, table_off;
    uint64_t config_off, config_size, tokenizer_off, tokenizer_size;
    uint32_t tokenizer_kind;
    uint64_t payload_off, payload_size, container_size;
} TernHeader;

static inline void tern_header_encode(uint8_t *p, const TernHeader *h) {
    memset(p, 0, TERN_HEADER_SIZE);
    memcpy(p, TERN_MAGIC, TERN_MAGIC_LEN);
    tern_wr_u32(p + 8, h->version);
    tern_wr_u32(p + 12, h->header_size);
    tern_wr_u32(p + 16, h->arch);
    tern_wr_u32(p + 20, h->n_tensors);
    tern_wr_u32(p + 24, h->entry_size);
    tern_wr_u32(p + 28, h->flags);
    tern_wr_u64(p + 32, h->hparams_off);
    tern_wr_u64(p + 40, h->hparams_size);
    tern_wr_u64(p + 48, h->table_off);
    tern_wr_u64(p + 56, h->config_off);
    tern_wr_u64(p + 64, h->config_size);
    tern_wr_u64(p + 72, h->tokenizer_off);
    tern_wr_u64(p + 80, h->tokenizer_size);
    tern_wr_u32(p + 88, h->tokenizer_kind);
    tern_wr_u64(p + 96, h->payload_off);
    tern_wr_u64(p + 104, h->payload_size);
    tern_wr_u64(p + 112, h->container_size);
}

/* 0 ok, -1 wrong magic. Fields are returned unchecked (the reader validates them). */
static inline int tern_header_decode(const uint8_t *p, TernHeader *h) {
    if (memcmp(p, TERN_MAGIC, TERN_MAGIC_LEN)) return -1;
    h->version = tern_rd_u32(p + 8);
    h->header_size = tern_rd_u32(p + 12);
    h->arch = tern_rd_u32(p + 16);
    h->n_tensors = tern_rd_u32(p + 20);
    h->entry_size = tern_rd_u32(p + 24);
    h->flags = tern_rd_u32(p + 28);
    h->hparams_off = tern_rd_u64(p + 32);
    h->hparams_size = tern_rd_u64(p + 40);
    h->table_off = tern_rd_u64(p + 48);
    h->config_off = tern_rd_u64(p + 56);
    h->config_size = tern_rd_u64(p + 64);
    h->tokenizer_off = tern_rd_u64(p + 72);
    h->tokenizer_size = tern_rd_u64(p + 80);
    h->tokenizer_kind = tern_rd_u32(p + 88);
    h->payload_off = tern_rd_u64(p + 96);
    h->payload_size = tern_rd_u64(p + 104);
    h->container_size = tern_rd_u64(p + 112);
    return 0;
}

/* ---------------------------------------------------------------- tensor table entry (128 B)
 *   0 char[64] name (NUL-terminated, NUL-padded)
 *  64 u8 dtype (TernDtype)   65 u8 scale dtype (TernScaleDtype)   66 u8 act_bits (0 | 8)
 *  67 u8 ndim (1 | 2)        68 u32 group (ternary: weights per scale along a row, 0 = one
 *  scale for the tensor; 0 otherwise)      72 u32 act_block (0 = one activation scale per
 *  token; else per block of this many input values)                  76 u32 flags
 *  (TERN_TENSOR_BYTE_CODES or 0)
 *  80 u64 rows   88 u64 cols   (1-D tensors: rows = 1, cols = n)
 *  96 u64 data off  104 u64 data size (rows x tern_stored_row_bytes)  112 u64 scale off
 * 120 u64 scale size */
typedef struct TernTensorEntry {
    char name[TERN_NAME_MAX];
    uint32_t dtype, scale_dtype, act_bits, ndim, group, act_block, flags;
    uint64_t rows, cols, data_off, data_size, scale_off, scale_size;
} TernTensorEntry;

static inline void tern_entry_encode(uint8_t *p, const TernTensorEntry *e) {
    memset(p, 0, TERN_TENSOR_ENTRY_SIZE);
    size_t n = strnlen(e->name, TERN_NAME_MAX - 1);
    memcpy(p, e->name, n);
    p[64] = (uint8_t)e->dtype;
    p[65] = (uint8_t)e->scale_dtype;
    p[66] = (uint8_t)e->act_bits;
    p[67] = (uint8_t)e->ndim;
    tern_wr_u32(p + 68, e->group);
    tern_wr_u32(p + 72, e->act_block);
    tern_wr_u32(p + 76, e->flags);
    tern_wr_u64(p + 80, e->rows);
    tern_wr_u64(p + 88, e->cols);
    tern_wr_u64(p + 96, e->data_off);
    tern_wr_u64(p + 104, e->data_size);
    tern_wr_u64(p + 112, e->scale_off);
    tern_wr_u64(p + 120, e->scale_size);
}

/* 0 ok, -1 when the name is not NUL-terminated within its 64 bytes. */
static inline int tern_entry_decode(const uint8_t *p, TernTensorEntry *e) {
    if (!memchr(p, 0, TERN_NAME_MAX)) return -1;
    memcpy(e->name, p, TERN_NAME_MAX);
    e->dtype = p[64];
    e->scale_dtype = p[65];
    e->act_bits = p[66];
    e->ndim = p[67];
    e->group = tern_rd_u32(p + 68);
    e->act_block = tern_rd_u32(p + 72);
    e->flags = tern_rd_u32(p + 76);
    e->rows = tern_rd_u64(p + 80);
    e->cols = tern_rd_u64(p + 88);
    e->data_off = tern_rd_u64(p + 96);
    e->data_size = tern_rd_u64(p + 104);
    e->scale_off = tern_rd_u64(p + 112);
    e->scale_size = tern_rd_u64(p + 120);
    return 0;
}

/* ---------------------------------------------------------------- key/values (hyper-parameters)
 * The section at hparams_off, hparams_size bytes, exactly:
 *   u32 count (<= TERN_KV_MAX), then per entry
 *   u32 key length k (1 .. TERN_KV_KEY_MAX - 1), k bytes of key (printable ASCII),
 *   u32 type (TernKvType), the value: U32 u32 | F32 f32 | BOOL u32 (0 or 1) |
 *   STR u32 length (<= TERN_KV_STR_MAX) and that many bytes (no NUL).
 * Keys are unique. The stack's keys are "stack.*", per-layer kinds "layer.<i>.mixer" /
 * "layer.<i>.channel" (block kind names, "" = none) and "layer.<i>.shift", each kind's own keys
 * "<kind>.*" (docs/FORMAT.md lists them). */
typedef enum TernKvType { TERN_KV_U32 = 0, TERN_KV_F32 = 1, TERN_KV_BOOL = 2, TERN_KV_STR = 3, TERN_KV_TYPES } TernKvType;

typedef struct TernKv {
    char key[TERN_KV_KEY_MAX];
    uint32_t type;
    uint32_t u;                     /* U32, BOOL */
    float f;                        /* F32 */
    char s[TERN_KV_STR_MAX + 1];    /* STR, NUL-terminated in memory */
} TernKv;

static inline size_t tern_kv_entry_size(const TernKv *kv) {
    size_t n = 8 + strlen(kv->key) + 4;
    return n + (kv->type == TERN_KV_STR ? strlen(kv->s) : 0);
}

/* Bytes of the encoded section. */
static inline size_t tern_kv_section_size(const TernKv *kv, size_t n) {
    size_t total = 4;
    for (size_t i = 0; i < n; i++) total += tern_kv_entry_size(&kv[i]);
    return total;
}

/* Encodes n entries into p (tern_kv_section_size bytes). Keys and strings must fit the limits. */
static inline void tern_kv_encode(uint8_t *p, const TernKv *kv, size_t n) {
    tern_wr_u32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(kv[i].key);
        tern_wr_u32(p, (uint32_t)kl);
        memcpy(p + 4, kv[i].key, kl);
        p += 4 + kl;
        tern_wr_u32(p, kv[i].type);
        p += 4;
        if (kv[i].type == TERN_KV_F32) {
            tern_wr_f32(p, kv[i].f);
            p += 4;
        } else if (kv[i].type == TERN_KV_STR) {
            size_t sl = strlen(kv[i].s);
            tern_wr_u32(p, (uint32_t)sl);
            memcpy(p + 4, kv[i].s, sl);
            p += 4 + sl;
        } else {
            tern_wr_u32(p, kv[i].u);
            p += 4;
        }
    }
}

/* Decodes a section of len bytes into out (room for max entries). 0 ok; -1 malformed, with
 * *why saying what (truncated, a bad length, an unknown type, a repeated key, trailing bytes). */
static inline int tern_kv_decode(const uint8_t *p, size_t len, TernKv *out, size_t max, size_t *n_out, const char **why) {
    *n_out = 0;
    if (len < 4) return *why = "truncated count", -1;
    uint32_t n = tern_rd_u32(p);
    if (n > TERN_KV_MAX || n > max) return *why = "too many entries", -1;
    size_t o = 4;
    for (uint32_t i = 0; i < n; i++) {
        TernKv *e = &out[i];
        memset(e, 0, sizeof *e);
        if (len - o < 4) return *why = "truncated key length", -1;
        uint32_t kl = tern_rd_u32(p + o);
        o += 4;
        if (kl == 0 || kl >= TERN_KV_KEY_MAX || len - o < (size_t)kl + 4) return *why = "bad key length", -1;
        for (uint32_t c = 0; c < kl; c++)
            if (p[o + c] < 0x21 || p[o + c] > 0x7e) return *why = "key is not printable ASCII", -1;
        memcpy(e->key, p + o, kl);
        o += kl;
        e->type = tern_rd_u32(p + o);
        o += 4;
        if (e->type >= TERN_KV_TYPES) return *why = "unknown value type", -1;
        if (len - o < 4) return *why = "truncated value", -1;
        if (e->type == TERN_KV_STR) {
            uint32_t sl = tern_rd_u32(p + o);
            o += 4;
            if (sl > TERN_KV_STR_MAX || len - o < sl) return *why = "bad string length", -1;
            memcpy(e->s, p + o, sl);
            if (memchr(e->s, 0, sl)) return *why = "NUL inside a string", -1;
            o += sl;
        } else if (e->type == TERN_KV_F32) {
            e->f = tern_rd_f32(p + o);
            o += 4;
        } else {
            e->u = tern_rd_u32(p + o);
            o += 4;
            if (e->type == TERN_KV_BOOL && e->u > 1) return *why = "boolean other than 0 or 1", -1;
        }
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(out[j].key, e->key)) return *why = "repeated key", -1;
    }
    if (o != len) return *why = "bytes after the last entry", -1;
    *n_out = n;
    return 0;
}

/* ---------------------------------------------------------------- dtypes
 * Integer dtypes store u = code + qmax (qmax = 2^(N-1) - 1) in N bits, LSB first, in a
 * little-endian bit stream per row: code i of a row occupies bits N*i .. N*i+N-1. A row is
 * padded with zero bits to a whole number of groups of 8/gcd(N,8) codes (int4: 2, int5: 8,
 * int6: 4), so for int5 a group is parameter-golf's 40-bit word (value i at bits 5i..5i+4 of
 * 5 little-endian bytes) and a row whose length is a multiple of 8 is byte-for-byte the
 * parameter-golf layout (openai/parameter-golf, records/.../TRN_Hybrid_Int5, _pack_int5).
 * int8 is the plain two's complement byte. Ternary 2-bit uses u = w + 1 in 128-weight blocks of
 * 32 bytes, byte m of a block holding weights m, m+32, m+64, m+96 in bits 0-1, 2-3, 4-5, 6-7
 * (llama.cpp TQ2_0's order, ggml-quants.c quantize_row_tq2_0_ref; bitnet.cpp's I2_S uses the
 * same blocks with the pairs reversed); a row is padded with u = 1 (weight 0) to whole blocks.
 * Ternary base-3 packs 5 consecutive weights per byte, t0 + 3 t1 + 9 t2 + 27 t3 + 81 t4 with
 * t = w + 1 (the parameter-golf ternary record's export); a row is padded with t = 1. */
static inline int tern_dtype_valid(uint32_t dt) { return dt < TERN_DT_COUNT; }
static inline int tern_dtype_is_float(uint32_t dt) { return dt == TERN_DT_F32 || dt == TERN_DT_F16; }
static inline int tern_dtype_is_ternary(uint32_t dt) { return dt == TERN_DT_T2 || dt == TERN_DT_T3; }
static inline int tern_dtype_is_intn(uint32_t dt) { return dt >= TERN_DT_I8 && dt <= TERN_DT_I4; }

/* Bits of an integer code (int dtypes), 2 for ternary, 0 for floats. */
static inline int tern_dtype_bits(uint32_t dt) {
    switch (dt) {
    case TERN_DT_I8: return 8;
    case TERN_DT_I6: return 6;
    case TERN_DT_I5: return 5;
    case TERN_DT_I4: return 4;
    case TERN_DT_T2: return 2;
    default: return 0;
    }
}
/* Largest |code|: the offset added before packing (ternary: 1). */
static inline int tern_dtype_qmax(uint32_t dt) {
    if (tern_dtype_is_ternary(dt)) return 1;
    int b = tern_dtype_bits(dt);
    return b ? (1 << (b - 1)) - 1 : 0;
}
static inline const char *tern_dtype_name(uint32_t dt) {
    static const char *const names[TERN_DT_COUNT] = {"fp32", "fp16", "int8", "int6", "int5", "int4", "ternary2", "ternary3"};
    return dt < TERN_DT_COUNT ? names[dt] : "?";
}

/* Codes per packing group of an N-bit integer dtype: 8 / gcd(N, 8). */
static inline size_t tern_int_group(int bits) {
    int g = 8, a = bits, b = 8;
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return (size_t)(g / a);
}

/* Bytes of one packed row of `cols` elements; 0 when cols is 0 or absurdly large (> 2^40). */
static inline size_t tern_row_bytes(uint32_t dt, uint64_t cols) {
    if (cols == 0 || cols > ((uint64_t)1 << 40)) return 0;
    size_t c = (size_t)cols;
    switch (dt) {
    case TERN_DT_F32: return 4 * c;
    case TERN_DT_F16: return 2 * c;
    case TERN_DT_I8: return c;
    case TERN_DT_I6:
    case TERN_DT_I5:
    case TERN_DT_I4: {
        int b = tern_dtype_bits(dt);
        size_t g = tern_int_group(b);
        return (c + g - 1) / g * (g * (size_t)b / 8);
    }
    case TERN_DT_T2: return (c + TERN_CHUNK - 1) / TERN_CHUNK * (TERN_CHUNK / 4);
    case TERN_DT_T3: return (c + 4) / 5;
    default: return 0;
    }
}

/* Number of scales of a [rows, cols] tensor (matches kernels/quant.c quant_num_scales). */
static inline uint64_t tern_num_scales(uint32_t dt, uint32_t group, uint64_t rows, uint64_t cols) {
    if (tern_dtype_is_intn(dt)) return rows;
    if (tern_dtype_is_ternary(dt)) return group ? rows * ((cols + group - 1) / group) : 1;
    return 0;
}

/* Packs the signed codes of one row (cols values, each within +-qmax) into dst (row_bytes). */
static inline void tern_pack_row(uint32_t dt, uint8_t *dst, const int8_t *codes, size_t cols) {
    size_t nb = tern_row_bytes(dt, cols);
    if (dt == TERN_DT_I8) {
        memcpy(dst, codes, cols);
        return;
    }
    if (dt == TERN_DT_T2) {
        memset(dst, 0x55, nb); /* u = 1 (weight 0) in every pair: the padding */
        for (size_t i = 0; i < cols; i++) {
            size_t blk = i / TERN_CHUNK, j = i % TERN_CHUNK;
            uint8_t *b = dst + blk * (TERN_CHUNK / 4) + (j % 32);
            int sh = 2 * (int)(j / 32);
            *b = (uint8_t)((*b & ~(3u << sh)) | (uint32_t)(codes[i] + 1) << sh);
        }
        return;
    }
    if (dt == TERN_DT_T3) {
        for (size_t k = 0; k < nb; k++) {
            unsigned v = 0, mul = 1;
            for (size_t t = 0; t < 5; t++, mul *= 3) {
                size_t i = 5 * k + t;
                v += (unsigned)(i < cols ? codes[i] + 1 : 1) * mul;
            }
            dst[k] = (uint8_t)v;
        }
        return;
    }
    int bits = tern_dtype_bits(dt), off = tern_dtype_qmax(dt);
    memset(dst, 0, nb);
    for (size_t i = 0; i < cols; i++) {
        uint32_t u = (uint32_t)(codes[i] + off);
        size_t bit = (size_t)bits * i;
        /* an N <= 8 bit field spans at most two bytes */
        dst[bit / 8] |= (uint8_t)(u << (bit % 8));
        if (bit % 8 + (size_t)bits > 8) dst[bit / 8 + 1] |= (uint8_t)(u >> (8 - bit % 8));
    }
}

/* The unsigned stored value u of element i of a packed row (int and ternary-2 dtypes; for
 * base-3 the trit t). code = u - qmax. */
static inline unsigned tern_row_u(uint32_t dt, const uint8_t *row, size_t i) {
    switch (dt) {
    case TERN_DT_I8: return (unsigned)((int)(int8_t)row[i] + 127);
    case TERN_DT_T2: {
        size_t j = i % TERN_CHUNK;
        return (row[(i / TERN_CHUNK) * (TERN_CHUNK / 4) + j % 32] >> (2 * (j / 32))) & 3u;
    }
    case TERN_DT_T3: {
        unsigned v = row[i / 5];
        for (size_t t = 0; t < i % 5; t++) v /= 3;
        return v % 3;
    }
    default: {
        int bits = tern_dtype_bits(dt);
        size_t bit = (size_t)bits * i;
        unsigned v = row[bit / 8] >> (bit % 8);
        if (bit % 8 + (size_t)bits > 8) v |= (unsigned)row[bit / 8 + 1] << (8 - bit % 8);
        return v & ((1u << bits) - 1u);
    }
    }
}

static inline int tern_row_code(uint32_t dt, const uint8_t *row, size_t i) {
    return (int)tern_row_u(dt, row, i) - tern_dtype_qmax(dt);
}

/* Unpacks a row into signed codes. */
static inline void tern_unpack_row(uint32_t dt, int8_t *codes, const uint8_t *row, size_t cols) {
    for (size_t i = 0; i < cols; i++) codes[i] = (int8_t)tern_row_code(dt, row, i);
}

/* Float rows. */
static inline void tern_pack_f32_row(uint8_t *dst, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) tern_wr_f32(dst + 4 * i, x[i]);
}
static inline void tern_pack_f16_row(uint8_t *dst, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t h = tern_f32_to_f16(x[i]);
        dst[2 * i] = (uint8_t)h;
        dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
}
static inline float tern_row_float(uint32_t dt, const uint8_t *row, size_t i) {
    if (dt == TERN_DT_F32) return tern_rd_f32(row + 4 * i);
    return tern_f16_to_f32((uint16_t)(row[2 * i] | row[2 * i + 1] << 8));
}

/* ---------------------------------------------------------------- tensor flags
 * TERN_TENSOR_BYTE_CODES: the codes of an int4 / int5 / int6 tensor are stored one per byte,
 * exactly as the int8 dtype stores its codes (two's complement, |code| <= the dtype's qmax), so
 * a row takes cols bytes. Bit-packed codes straddle byte boundaries and zstd barely compresses
 * them (a freshly initialised TRN hybrid: 16.5 MB of int5 -> 16.3 MB); one code per byte
 * compresses to about the codes' entropy (-> 14.1 MB), as the parameter-golf int5 / int6 records
 * store theirs. The dtype still says which codes the tensor holds. Readers that do not know a
 * flag reject the tensor ("unknown flags"), so a flag never gets misread. */
enum { TERN_TENSOR_BYTE_CODES = 1u << 0, TERN_TENSOR_KNOWN_FLAGS = 1u };

static inline int tern_flags_valid(uint32_t dt, uint32_t flags) {
    if (flags & ~(uint32_t)TERN_TENSOR_KNOWN_FLAGS) return 0;
    return !(flags & TERN_TENSOR_BYTE_CODES) || dt == TERN_DT_I4 || dt == TERN_DT_I5 || dt == TERN_DT_I6;
}

/* Bytes of one stored row: the dtype's packing, or cols bytes with TERN_TENSOR_BYTE_CODES. */
static inline size_t tern_stored_row_bytes(uint32_t dt, uint32_t flags, uint64_t cols) {
    return tern_row_bytes((flags & TERN_TENSOR_BYTE_CODES) ? TERN_DT_I8 : dt, cols);
}

/* Is every byte code of a row within +-qmax of dtype dt? */
static inline int tern_byte_codes_valid(uint32_t dt, const uint8_t *row, size_t cols) {
    int q = tern_dtype_qmax(dt);
    for (size_t i = 0; i < cols; i++) {
        int v = (int)(int8_t)row[i];
        if (v > q || v < -q) return 0;
    }
    return 1;
}

/* Is every stored value of a packed row a valid code (u <= 2 qmax; base-3 bytes <= 242)?
 * Padding past cols is not checked. Readers reject rows that fail. */
static inline int tern_row_valid(uint32_t dt, const uint8_t *row, size_t cols) {
    if (dt == TERN_DT_T3) {
        for (size_t k = 0; k < (cols + 4) / 5; k++)
            if (row[k] > 242) return 0;
        return 1;
    }
    if (dt == TERN_DT_I8) {
        for (size_t i = 0; i < cols; i++)
            if ((int8_t)row[i] == -128) return 0;
        return 1;
    }
    unsigned lim = 2u * (unsigned)tern_dtype_qmax(dt);
    for (size_t i = 0; i < cols; i++)
        if (tern_row_u(dt, row, i) > lim) return 0;
    return 1;
}

#endif
