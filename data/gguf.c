#include "data/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/protobuf.h"
#include "kernels/ggml_blocks.h"
#include "kernels/quant.h"

typedef struct Cur {
    const uint8_t *p, *end;
    uint32_t version;
    int bad;
} Cur;

static int need(Cur *c, uint64_t n) {
    if (c->bad || (uint64_t)(c->end - c->p) < n) {
        c->bad = 1;
        return 0;
    }
    return 1;
}
static uint32_t rd_u32(Cur *c) {
    uint32_t v = 0;
    if (need(c, 4)) memcpy(&v, c->p, 4), c->p += 4;
    return v;
}
static uint64_t rd_u64(Cur *c) {
    uint64_t v = 0;
    if (need(c, 8)) memcpy(&v, c->p, 8), c->p += 8;
    return v;
}
/* counts and string lengths: u32 in version 1, u64 from version 2 */
static uint64_t rd_count(Cur *c) { return c->version == 1 ? rd_u32(c) : rd_u64(c); }
static const uint8_t *rd_str(Cur *c, uint64_t *len) {
    *len = rd_count(c);
    if (!need(c, *len)) return NULL;
    const uint8_t *s = c->p;
    c->p += *len;
    return s;
}

static size_t scalar_size(uint32_t t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

/* Skips one value of type t (arrays of arrays are refused, as in ggml). */
static void skip_value(Cur *c, uint32_t t, int nested) {
    if (t == GGUF_STRING) {
        uint64_t n;
        rd_str(c, &n);
    } else if (t == GGUF_ARRAY && !nested) {
        uint32_t et = rd_u32(c);
        uint64_t n = rd_count(c);
        size_t es = scalar_size(et);
        if (es) {
            if (n > (uint64_t)(c->end - c->p) / es) c->bad = 1;
            else c->p += n * es;
        } else if (et == GGUF_STRING) {
            for (uint64_t i = 0; i < n && !c->bad; i++) skip_value(c, GGUF_STRING, 1);
        } else {
            c->bad = 1;
        }
    } else {
        size_t s = scalar_size(t);
        if (!s) c->bad = 1;
        else if (need(c, s)) c->p += s;
    }
}

static char *dup_n(const uint8_t *s, uint64_t n) {
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void gguf_close(Gguf *g) {
    for (size_t i = 0; i < g->nkv; i++) free((char *)g->kv[i].key);
    for (size_t i = 0; i < g->ntensors; i++) free((char *)g->tensors[i].name);
    xfree(g->kv);
    xfree(g->tensors);
    if (g->map) munmap(g->map, g->size);
    free(g->path);
    memset(g, 0, sizeof *g);
}

int gguf_open(Gguf *g, const char *path, Err *err) {
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set(err, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 24) {
        close(fd);
        return err_set(err, "%s: not a GGUF file (too short)", path);
    }
    g->size = (size_t)st.st_size;
    void *map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return err_set(err, "%s: cannot map (%s)", path, strerror(errno));
    g->map = map;
    g->path = xstrdup(path);
    Cur c = {g->map, g->map + g->size, 1, 0};
    if (memcmp(c.p, "GGUF", 4) != 0) {
        gguf_close(g);
        return err_set(err, "%s: not a GGUF file (wrong magic)", path);
    }
    c.p += 4;
    g->version = c.version = rd_u32(&c);
    if (g->version < 1 || g->version > 3) {
        uint32_t v = g->version;
        gguf_close(g);
        return err_set(err, "%s: GGUF version %u is not supported (1 to 3)", path, v);
    }
    uint64_t nt = rd_count(&c), nkv = rd_count(&c);
    /* every entry takes at least 8 bytes: a bound that keeps corrupt counts from allocating */
    if (nt > g->size / 8 || nkv > g->size / 8) {
        size_t size = g->size;
        gguf_close(g);
        return err_set(err, "%s: truncated or corrupt header (%llu tensors, %llu metadata entries in %zu bytes)", path,
                       (unsigned long long)nt, (unsigned long long)nkv, size);
    }
    g->kv = xcalloc(nkv ? nkv : 1, sizeof(GgufKv));
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < nkv && !c.bad; i++) {
        uint64_t kl;
        const uint8_t *k = rd_str(&c, &kl);
        uint32_t t = rd_u32(&c);
        if (c.bad) break;
        GgufKv *kv = &g->kv[g->nkv++];
        kv->key = dup_n(k, kl);
        kv->type = t;
        kv->count = 1;
        if (t == GGUF_ARRAY) {
            const uint8_t *at = c.p;
            kv->elem_type = rd_u32(&c);
            kv->count = rd_count(&c);
            kv->data = c.p;
            c.p = at;
        } else {
            kv->data = c.p;
        }
        skip_value(&c, t, 0);
        if (!c.bad && !strcmp(kv->key, "general.alignment") && t == GGUF_U32) {
            uint32_t a;
            memcpy(&a, kv->data, 4);
            alignment = a;
        }
    }
    if (c.bad || alignment == 0 || (alignment & (alignment - 1))) {
        gguf_close(g);
        return err_set(err, "%s: corrupt metadata (truncated or an unknown value type)", path);
    }
    g->tensors = xcalloc(nt ? nt : 1, sizeof(GgufTensor));
    uint64_t *offs = xcalloc(nt ? nt : 1, sizeof(uint64_t));
    for (uint64_t i = 0; i < nt && !c.bad; i++) {
        uint64_t nl;
        const uint8_t *nm = rd_str(&c, &nl);
        uint32_t nd = rd_u32(&c);
        if (c.bad || nd < 1 || nd > 4) {
            c.bad = 1;
            break;
        }
        GgufTensor *t = &g->tensors[g->ntensors++];
        t->name = dup_n(nm, nl);
        t->ndim = nd;
        t->numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            t->dims[d] = rd_count(&c);
            if (t->dims[d] == 0 || t->numel > UINT64_MAX / 8 / t->dims[d]) c.bad = 1;
            else t->numel *= t->dims[d];
        }
        t->type = rd_u32(&c);
        offs[i] = rd_u64(&c);
    }
    if (c.bad) {
        xfree(offs);
        gguf_close(g);
        return err_set(err, "%s: corrupt tensor table", path);
    }
    uint64_t base = (uint64_t)(c.p - g->map);
    base = (base + alignment - 1) / alignment * alignment;
    for (size_t i = 0; i < g->ntensors; i++) {
        GgufTensor *t = &g->tensors[i];
        /* F32, F16 and the block types tern writes (kernels/ggml_blocks.h); others stay unread */
        uint64_t be = ggml_block_elems((int)t->type), esz = be && t->dims[0] % be == 0 ? ggml_block_bytes((int)t->type) : 0;
        uint64_t bytes = esz ? t->numel / be * esz : 0;
        if (esz && (base + offs[i] < base || base + offs[i] > g->size || bytes > g->size - (base + offs[i]))) {
            char name[128];
            snprintf(name, sizeof name, "%s", t->name);
            xfree(offs);
            gguf_close(g);
            return err_set(err, "%s: tensor %s runs past the end of the file (truncated?)", path, name);
        }
        t->data = esz ? g->map + base + offs[i] : NULL;
    }
    xfree(offs);
    return 0;
}

const GgufKv *gguf_find(const Gguf *g, const char *key) {
    for (size_t i = 0; i < g->nkv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

static int num_at(uint32_t t, const uint8_t *p, double *out) {
    switch (t) {
    case GGUF_U8: *out = *p; return 0;
    case GGUF_I8: *out = (int8_t)*p; return 0;
    case GGUF_BOOL: *out = *p != 0; return 0;
    case GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_I16: { int16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_I32: { int32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_F32: { float v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_U64: { uint64_t v; memcpy(&v, p, 8); *out = (double)v; return 0; }
    case GGUF_I64: { int64_t v; memcpy(&v, p, 8); *out = (double)v; return 0; }
    case GGUF_F64: memcpy(out, p, 8); return 0;
    default: return -1;
    }
}

int gguf_get_f64(const Gguf *g, const char *key, double *out, Err *err) {
    const GgufKv *kv = gguf_find(g, key);
    if (!kv) return err_set(err, "%s: metadata %s missing", g->path, key);
    if (kv->type == GGUF_ARRAY || num_at(kv->type, kv->data, out)) return err_set(err, "%s: metadata %s is not a number", g->path, key);
    return 0;
}

int gguf_get_u64(const Gguf *g, const char *key, uint64_t *out, Err *err) {
    double v;
    if (gguf_get_f64(g, key, &v, err)) return -1;
    /* range first: converting NaN or anything outside [0, 2^64) to uint64 is undefined */
    if (!(v >= 0 && v < 18446744073709551616.0) || v != (double)(uint64_t)v)
        return err_set(err, "%s: metadata %s must be a non-negative integer", g->path, key);
    *out = (uint64_t)v;
    return 0;
}

int gguf_get_str(const Gguf *g, const char *key, char **out, Err *err) {
    const GgufKv *kv = gguf_find(g, key);
    if (!kv) return err_set(err, "%s: metadata %s missing", g->path, key);
    if (kv->type != GGUF_STRING) return err_set(err, "%s: metadata %s is not a string", g->path, key);
    Cur c = {kv->data, g->map + g->size, g->version, 0};
    uint64_t n;
    const uint8_t *s = rd_str(&c, &n);
    *out = dup_n(s, n);
    return 0;
}

int gguf_array_strings(const Gguf *g, const GgufKv *kv, const char **s, size_t *len, Err *err) {
    if (kv->type != GGUF_ARRAY || kv->elem_type != GGUF_STRING)
        return err_set(err, "%s: metadata %s is not an array of strings", g->path, kv->key);
    Cur c = {kv->data, g->map + g->size, g->version, 0};
    for (uint64_t i = 0; i < kv->count; i++) {
        uint64_t n;
        s[i] = (const char *)rd_str(&c, &n);
        len[i] = (size_t)n;
    }
    return c.bad ? err_set(err, "%s: metadata %s is truncated", g->path, kv->key) : 0;
}

int gguf_array_num(const Gguf *g, const GgufKv *kv, uint64_t i, double *out, Err *err) {
    size_t es = scalar_size(kv->elem_type);
    if (kv->type != GGUF_ARRAY || !es) return err_set(err, "%s: metadata %s is not a numeric array", g->path, kv->key);
    if (i >= kv->count) return err_set(err, "%s: metadata %s has %llu elements", g->path, kv->key, (unsigned long long)kv->count);
    num_at(kv->elem_type, kv->data + i * es, out);
    return 0;
}

const GgufTensor *gguf_tensor(const Gguf *g, const char *name) {
    for (size_t i = 0; i < g->ntensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

int gguf_tensor_f32(const Gguf *g, const GgufTensor *t, float *out, size_t numel, Err *err) {
    if (t->numel != numel) return err_set(err, "%s: tensor %s has %llu values, expected %zu", g->path, t->name, (unsigned long long)t->numel, numel);
    if (t->type == GGML_F32) {
        memcpy(out, t->data, numel * sizeof(float));
    } else if (t->type == GGML_F16) {
        for (size_t i = 0; i < numel; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
    } else if (t->data && (t->type == GGML_TYPE_Q8_0 || t->type == GGML_TYPE_TQ2_0 || t->type == GGML_TYPE_TQ1_0)) {
        size_t n0 = (size_t)t->dims[0], rb = ggml_row_bytes((int)t->type, n0);
        for (size_t r = 0; r < numel / n0; r++) {
            if (t->type == GGML_TYPE_Q8_0) ggml_dequantize_q8_0(out + r * n0, t->data + r * rb, n0);
            else if (t->type == GGML_TYPE_TQ2_0) ggml_dequantize_tq2_0(out + r * n0, t->data + r * rb, n0);
            else ggml_dequantize_tq1_0(out + r * n0, t->data + r * rb, n0);
        }
    } else {
        return err_set(err, "%s: tensor %s has ggml type %u; only F32, F16, Q8_0, TQ1_0 and TQ2_0 can be imported", g->path,
                       t->name, t->type);
    }
    return 0;
}

int gguf_sentencepiece_model(const Gguf *g, uint8_t **out, size_t *len, Err *err) {
    char *model = NULL;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, err)) return -1;
    int is_llama = !strcmp(model, "llama");
    free(model);
    if (!is_llama) return err_set(err, "%s: tokenizer.ggml.model is not \"llama\" (SentencePiece): cannot convert it", g->path);
    const GgufKv *tok = gguf_find(g, "tokenizer.ggml.tokens"), *sc = gguf_find(g, "tokenizer.ggml.scores"),
                 *ty = gguf_find(g, "tokenizer.ggml.token_type");
    if (!tok || !sc || !ty) return err_set(err, "%s: tokenizer.ggml.tokens / scores / token_type missing", g->path);
    size_t n = (size_t)tok->count;
    if (sc->count != n || ty->count != n || n == 0)
        return err_set(err, "%s: tokenizer arrays disagree in length (%zu tokens)", g->path, n);
    const char **s = xmalloc(n * sizeof(char *));
    size_t *sl = xmalloc(n * sizeof(size_t));
    int rc = gguf_array_strings(g, tok, s, sl, err);
    PbWriter w = {0};
    int has_byte = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        double score, type;
        if (gguf_array_num(g, sc, i, &score, err) || gguf_array_num(g, ty, i, &type, err)) {
            rc = -1;
            break;
        }
        if (type < 1 || type > 6) {
            rc = err_set(err, "%s: token %zu has type %g (1 to 6 expected)", g->path, i, type);
            break;
        }
        has_byte |= type == 6;
        PbWriter p = {0};
        pb_put_bytes(&p, 1, s[i], sl[i]);
        pb_put_float(&p, 2, (float)score);
        pb_put_varint(&p, 3, (uint64_t)type);
        pb_put_bytes(&w, 1, p.buf, p.n); /* ModelProto.pieces */
        pb_writer_free(&p);
    }
    uint64_t bos = 1, eos = 2, unk = 0;
    const GgufKv *kv;
    if (!rc && (kv = gguf_find(g, "tokenizer.ggml.bos_token_id"))) rc = gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &bos, err);
    if (!rc && (kv = gguf_find(g, "tokenizer.ggml.eos_token_id"))) rc = gguf_get_u64(g, "tokenizer.ggml.eos_token_id", &eos, err);
    if (!rc && (kv = gguf_find(g, "tokenizer.ggml.unknown_token_id"))) rc = gguf_get_u64(g, "tokenizer.ggml.unknown_token_id", &unk, err);
    if (!rc) {
        PbWriter t = {0}; /* TrainerSpec */
        pb_put_varint(&t, 3, 2);           /* model_type: BPE */
        pb_put_varint(&t, 4, n);           /* vocab_size */
        pb_put_varint(&t, 35, has_byte);   /* byte_fallback */
        pb_put_varint(&t, 40, unk);        /* unk_id */
        pb_put_varint(&t, 41, bos);        /* bos_id */
        pb_put_varint(&t, 42, eos);        /* eos_id */
        pb_put_varint(&t, 43, (uint64_t)(int64_t)-1); /* pad_id: none */
        pb_put_bytes(&w, 2, t.buf, t.n);
        pb_writer_free(&t);
        PbWriter nz = {0}; /* NormalizerSpec */
        pb_put_bytes(&nz, 1, "identity", 8);
        double prefix = 1; /* llama.cpp's default; tern's exports say (tokenizer.ggml.add_space_prefix) */
        const GgufKv *sp = gguf_find(g, "tokenizer.ggml.add_space_prefix");
        if (sp && sp->type == GGUF_BOOL) num_at(GGUF_BOOL, sp->data, &prefix);
        pb_put_varint(&nz, 3, prefix != 0); /* add_dummy_prefix */
        pb_put_varint(&nz, 4, 0);          /* remove_extra_whitespaces */
        pb_put_varint(&nz, 5, 1);          /* escape_whitespaces */
        pb_put_bytes(&w, 3, nz.buf, nz.n);
        pb_writer_free(&nz);
    }
    xfree(s);
    xfree(sl);
    if (rc) {
        pb_writer_free(&w);
        return -1;
    }
    *out = w.buf;
    *len = w.n;
    return 0;
}
