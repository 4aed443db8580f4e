/* load.c — reading an artifact: preamble, zstd frame, container, tensor table, tokenizer, then
 * the stack binds the key/values and tensors (stack.c). Every offset, size and count read from the file is
 * checked (with overflow-safe arithmetic) before it is used, so a truncated, bit-flipped or
 * hostile file gives one clear line instead of a crash (tests/unit/test_runtime_corrupt.c,
 * tests/fuzz/fuzz_artifact.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_stableOutBuffer (zstd >= 1.4.4): no window buffer */
#include <zstd.h>

#include "runtime/rt_internal.h"

#define RT_DEFAULT_MAX_CONTAINER ((size_t)16 << 30)
#define RT_SLACK 64 /* readable bytes past every packed buffer: SIMD unpackers read ahead */

/* [off, off + size) inside [0, limit)? */
static int in_range(uint64_t off, uint64_t size, uint64_t limit) { return off <= limit && size <= limit - off; }

static void model_destroy(TrtModel *m) {
    if (!m) return;
    rt_stack_unbind(m);
    if (m->have_bc) bpb_free(&m->bc);
    if (m->tok) tokenizer_free(m->tok);
    rt_free(m->tensors);
    rt_free(m->expanded);
    rt_free(m->scale_mem);
    rt_free(m->config_json);
    rt_free(m->container);
    free(m);
}

void trt_model_free(TrtModel *m) { model_destroy(m); }

static int load_tensors(TrtModel *m, const char *name, RtErr *e) {
    const TernHeader *h = &m->hdr;
    const uint8_t *c = m->container;
    uint64_t limit = h->container_size - TERN_CRC_SIZE;
    size_t n = h->n_tensors;
    m->tensors = rt_alloc(n * sizeof(RtTensor));
    if (!m->tensors) return rt_err(e, "%s: out of memory for %zu tensors", name, n);
    m->ntensors = n;
    size_t nscales_total = 0, expand_bytes = 0;
    TernTensorEntry *ent = rt_alloc(n * sizeof(TernTensorEntry));
    if (!ent) return rt_err(e, "%s: out of memory", name);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        TernTensorEntry *te = &ent[i];
        const uint8_t *ep = c + h->table_off + i * TERN_TENSOR_ENTRY_SIZE;
        if (tern_entry_decode(ep, te)) {
            rc = rt_err(e, "%s: tensor %zu: name is not NUL-terminated (corrupt table)", name, i);
            break;
        }
        size_t nl = strlen(te->name);
        int pad_ok = nl > 0;
        for (size_t k = nl; k < TERN_NAME_MAX; k++) pad_ok &= ep[k] == 0;
        if (!pad_ok) {
            rc = rt_err(e, "%s: tensor %zu: empty name or bytes after its end (corrupt table)", name, i);
            break;
        }
        const char *tn = te->name;
        if (!tern_dtype_valid(te->dtype)) rc = rt_err(e, "%s: tensor %s: unknown dtype %u", name, tn, te->dtype);
        else if (te->ndim != 1 && te->ndim != 2) rc = rt_err(e, "%s: tensor %s: ndim %u (1 or 2)", name, tn, te->ndim);
        else if (te->rows == 0 || te->cols == 0 || te->rows > ((uint64_t)1 << 32) || te->cols > ((uint64_t)1 << 32) ||
                 (te->ndim == 1 && te->rows != 1))
            rc = rt_err(e, "%s: tensor %s: bad shape %llu x %llu", name, tn, (unsigned long long)te->rows, (unsigned long long)te->cols);
        else if (te->flags & ~(uint32_t)TERN_TENSOR_KNOWN_FLAGS) rc = rt_err(e, "%s: tensor %s: unknown flags 0x%x", name, tn, te->flags);
        else if (!tern_flags_valid(te->dtype, te->flags))
            rc = rt_err(e, "%s: tensor %s: byte codes only apply to int4, int5 and int6, not %s", name, tn, tern_dtype_name(te->dtype));
        if (rc) break;
        int isf = tern_dtype_is_float(te->dtype);
        uint64_t rb = tern_stored_row_bytes(te->dtype, te->flags, te->cols);
        if (rb == 0 || te->rows > UINT64_MAX / rb || te->data_size != te->rows * rb) {
            rc = rt_err(e, "%s: tensor %s: data size %llu does not match %s %llu x %llu", name, tn, (unsigned long long)te->data_size,
                        tern_dtype_name(te->dtype), (unsigned long long)te->rows, (unsigned long long)te->cols);
            break;
        }
        uint64_t ns = isf ? 0 : tern_num_scales(te->dtype, te->group, te->rows, te->cols);
        uint32_t want_sd = te->scale_dtype;
        if (isf ? (want_sd != TERN_SCALE_NONE || te->group || te->act_bits || te->act_block)
                : (want_sd != TERN_SCALE_F16 && want_sd != TERN_SCALE_F32)) {
            rc = rt_err(e, "%s: tensor %s: scale dtype %u / group / activation fields do not fit dtype %s", name, tn, want_sd,
                        tern_dtype_name(te->dtype));
            break;
        }
        if (!isf && (te->act_bits != 0 && te->act_bits != 8)) {
            rc = rt_err(e, "%s: tensor %s: act_bits %u (0 or 8)", name, tn, te->act_bits);
            break;
        }
        if (!tern_dtype_is_ternary(te->dtype) && te->group) {
            rc = rt_err(e, "%s: tensor %s: a group size only applies to ternary tensors", name, tn);
            break;
        }
        uint64_t ssz = ns * (want_sd == TERN_SCALE_F16 ? 2 : 4);
        if (te->scale_size != ssz) {
            rc = rt_err(e, "%s: tensor %s: scale size %llu, expected %llu", name, tn, (unsigned long long)te->scale_size,
                        (unsigned long long)ssz);
            break;
        }
        if (!in_range(te->data_off, te->data_size, limit) || te->data_off < h->payload_off || te->data_off % TERN_ALIGN ||
            (ssz && (!in_range(te->scale_off, ssz, limit) || te->scale_off < h->payload_off || te->scale_off % TERN_ALIGN))) {
            rc = rt_err(e, "%s: tensor %s: data or scales outside the payload (truncated or corrupt)", name, tn);
            break;
        }
        for (size_t j = 0; j < i && !rc; j++)
            if (!strcmp(ent[j].name, tn)) rc = rt_err(e, "%s: tensor %s appears twice", name, tn);
        if (rc) break;
        nscales_total += (size_t)ns;
        if (te->dtype == TERN_DT_T3) expand_bytes += (size_t)(te->rows * tern_row_bytes(TERN_DT_T2, te->cols)) + RT_SLACK;
    }
    if (!rc) {
        m->scale_mem = rt_alloc((nscales_total ? nscales_total : 1) * sizeof(float));
        m->expanded = expand_bytes ? rt_alloc(expand_bytes) : NULL;
        if (!m->scale_mem || (expand_bytes && !m->expanded)) rc = rt_err(e, "%s: out of memory for scales", name);
    }
    float *sp = m->scale_mem;
    uint8_t *xp = m->expanded;
    for (size_t i = 0; i < n && !rc; i++) {
        const TernTensorEntry *te = &ent[i];
        RtTensor *t = &m->tensors[i];
        memcpy(t->name, te->name, TERN_NAME_MAX);
        t->dtype = t->stored_dtype = te->dtype;
        t->act_bits = (int)te->act_bits;
        t->act_block = te->act_block;
        t->group = te->group;
        t->rows = (size_t)te->rows;
        t->cols = (size_t)te->cols;
        t->row_bytes = tern_row_bytes(te->dtype, te->cols);
        t->qmax = tern_dtype_qmax(te->dtype);
        t->data = c + te->data_off;
        int bytes = (te->flags & TERN_TENSOR_BYTE_CODES) != 0;
        if (bytes) { /* codes one per byte: the kernels read them as int8 rows, in place */
            t->dtype = TERN_DT_I8;
            t->row_bytes = tern_row_bytes(TERN_DT_I8, te->cols);
            t->qmax = tern_dtype_qmax(TERN_DT_I8);
        }
        if (!tern_dtype_is_float(te->dtype)) {
            t->nscales = (size_t)tern_num_scales(te->dtype, te->group, te->rows, te->cols);
            t->scales = sp;
            const uint8_t *s = c + te->scale_off;
            for (size_t k = 0; k < t->nscales; k++) {
                float v = te->scale_dtype == TERN_SCALE_F16 ? tern_f16_to_f32((uint16_t)(s[2 * k] | s[2 * k + 1] << 8))
                                                            : tern_rd_f32(s + 4 * k);
                if (!(v == v) || v > 3.0e38f || v < -3.0e38f) {
                    rc = rt_err(e, "%s: tensor %s: scale %zu is not finite", name, t->name, k);
                    break;
                }
                sp[k] = v;
            }
            sp += t->nscales;
            if (rc) break;
            for (size_t r = 0; r < t->rows; r++)
                if (bytes ? !tern_byte_codes_valid(te->dtype, t->data + r * t->row_bytes, t->cols)
                          : !tern_row_valid(te->dtype, t->data + r * t->row_bytes, t->cols)) {
                    rc = rt_err(e, "%s: tensor %s: row %zu holds codes outside the %s range (corrupt)", name, t->name, r,
                                tern_dtype_name(te->dtype));
                    break;
                }
            if (rc) break;
            if (te->dtype == TERN_DT_T3) { /* the kernels run on the 2-bit layout */
                size_t rb2 = tern_row_bytes(TERN_DT_T2, t->cols);
                int8_t *codes = rt_alloc(t->cols);
                if (!codes) {
                    rc = rt_err(e, "%s: out of memory", name);
                    break;
                }
                for (size_t r = 0; r < t->rows; r++) {
                    tern_unpack_row(TERN_DT_T3, codes, t->data + r * t->row_bytes, t->cols);
                    tern_pack_row(TERN_DT_T2, xp + r * rb2, codes, t->cols);
                }
                rt_free(codes);
                t->data = xp;
                t->dtype = TERN_DT_T2;
                t->row_bytes = rb2;
                xp += t->rows * rb2 + RT_SLACK;
            }
        } else {
            /* weights read as numbers must be numbers: reject inf / NaN */
            for (size_t k = 0; k < t->rows * t->cols && !rc; k++) {
                float v = tern_row_float(t->dtype, t->data, k);
                if (!(v == v) || v > 3.4028235e38f || v < -3.4028235e38f)
                    rc = rt_err(e, "%s: tensor %s: element %zu is not finite (corrupt)", name, t->name, k);
            }
            if (rc) break;
        }
        rt_tensor_plan(t);
    }
    rt_free(ent);
    return rc;
}

static void weights_summary(TrtModel *m) {
    size_t count[TERN_DT_COUNT] = {0}, a8 = 0;
    for (size_t i = 0; i < m->ntensors; i++) {
        count[m->tensors[i].stored_dtype]++;
        a8 += m->tensors[i].act_bits == 8;
    }
    size_t o = 0;
    m->summary[0] = 0;
    for (int d = TERN_DT_COUNT - 1; d >= 0; d--)
        if (count[d] && o < sizeof m->summary)
            o += (size_t)snprintf(m->summary + o, sizeof m->summary - o, "%s%s x%zu", o ? ", " : "", tern_dtype_name((uint32_t)d),
                                  count[d]);
    if (a8 && o < sizeof m->summary) snprintf(m->summary + o, sizeof m->summary - o, " (%zu with int8 activations)", a8);
}

/* one line for an artifact of another format version */
static int version_error(RtErr *e, const char *name, uint32_t v) {
    if (v < TERN_FORMAT_VERSION)
        return rt_err(e, "%s: artifact format version %u was written by an older tern: re-export it with this tern (tern export --ckpt ...)",
                      name, v);
    return rt_err(e, "%s: artifact format version %u is not supported (this runtime reads version %u)", name, v, TERN_FORMAT_VERSION);
}

static int check_header(const uint8_t *src, size_t len, const char *name, int check_crc, TernHeader *hp, RtErr *e) {
    if (len < TERN_HEADER_SIZE + TERN_CRC_SIZE) return rt_err(e, "%s: container of %zu bytes is too short (truncated)", name, len);
    TernHeader h;
    if (tern_header_decode(src, &h)) return rt_err(e, "%s: not a tern artifact (wrong container magic)", name);
    if (h.version != TERN_FORMAT_VERSION) return version_error(e, name, h.version);
    if (h.container_size != len) return rt_err(e, "%s: container says %llu bytes but holds %zu (truncated or corrupt)", name,
                                              (unsigned long long)h.container_size, len);
    if (check_crc && tern_rd_u32(src + len - TERN_CRC_SIZE) != tern_crc32(0, src, len - TERN_CRC_SIZE))
        return rt_err(e, "%s: CRC-32 mismatch (corrupt artifact)", name);
    uint64_t limit = len - TERN_CRC_SIZE;
    if (h.header_size != TERN_HEADER_SIZE || h.entry_size != TERN_TENSOR_ENTRY_SIZE || h.flags || h.arch || tern_rd_u32(src + 92) ||
        tern_rd_u64(src + 120))
        return rt_err(e, "%s: unexpected header/entry size, flags or reserved bytes (corrupt header)", name);
    if (h.n_tensors == 0 || h.n_tensors > 100000 || !in_range(h.table_off, (uint64_t)h.n_tensors * TERN_TENSOR_ENTRY_SIZE, limit))
        return rt_err(e, "%s: tensor table (%u entries) outside the container (corrupt)", name, h.n_tensors);
    if (!in_range(h.hparams_off, h.hparams_size, limit) || !in_range(h.config_off, h.config_size, limit) ||
        !in_range(h.tokenizer_off, h.tokenizer_size, limit) || !in_range(h.payload_off, h.payload_size, limit))
        return rt_err(e, "%s: a section lies outside the container (truncated or corrupt)", name);
    if (h.tokenizer_kind > TERN_TOK_BYTE || (h.tokenizer_kind != TERN_TOK_FILE && h.tokenizer_size))
        return rt_err(e, "%s: unknown tokenizer kind %u", name, h.tokenizer_kind);
    *hp = h;
    return 0;
}

/* owned: NULL (the bytes at src are copied), or an rt_alloc'd buffer of len + RT_SLACK bytes
 * holding the container, which the model takes over (or frees on failure) */
static int load_container(TrtModel **out, uint8_t *owned, const uint8_t *src, size_t len, const char *name, int isa, int check_crc,
                          RtErr *e) {
    *out = NULL;
    if (owned) src = owned;
    TernHeader h;
    if (check_header(src, len, name, check_crc, &h, e)) {
        rt_free(owned);
        return -1;
    }
    TrtModel *m = calloc(1, sizeof *m);
    if (!m) {
        rt_free(owned);
        return rt_err(e, "%s: out of memory", name);
    }
    m->hdr = h;
    m->container = owned ? owned : rt_alloc(len + RT_SLACK);
    m->config_json = rt_alloc((size_t)h.config_size + 1);
    if (!m->container || !m->config_json) {
        model_destroy(m);
        return rt_err(e, "%s: out of memory for %zu bytes", name, len);
    }
    if (!owned) memcpy(m->container, src, len);
    src = m->container;
    m->container_len = len;
    memcpy(m->config_json, src + h.config_off, (size_t)h.config_size);
    rt_kernels_select(&m->k, isa);
    int rc = load_tensors(m, name, e);
    if (!rc && h.tokenizer_kind != TERN_TOK_NONE) {
        Err te = {0};
        if (h.tokenizer_kind == TERN_TOK_BYTE) m->tok = tokenizer_byte_new();
        else if (tokenizer_load_memory(&m->tok, src + h.tokenizer_off, (size_t)h.tokenizer_size, "embedded tokenizer", &te))
            rc = rt_err(e, "%s: %s", name, te.msg);
    }
    if (!rc) {
        rc = rt_stack_bind(m, src + h.hparams_off, (size_t)h.hparams_size, e);
        if (rc) { /* bind cleans up after itself */
            char tmp[sizeof e->msg];
            snprintf(tmp, sizeof tmp, "%s", e->msg);
            rt_err(e, "%s: %s", name, tmp);
        }
    }
    if (!rc && m->tok) {
        if (tokenizer_vocab_size(m->tok) > m->info.vocab_size)
            rc = rt_err(e, "%s: the embedded tokenizer has %zu ids but the model only %zu", name, tokenizer_vocab_size(m->tok),
                        m->info.vocab_size);
        else {
            Err be = {0};
            if (bpb_init(&m->bc, m->tok, m->info.vocab_size, &be)) rc = rt_err(e, "%s: %s", name, be.msg);
            else m->have_bc = 1;
        }
    }
    if (rc) {
        model_destroy(m);
        return -1;
    }
    weights_summary(m);
    TrtModelInfo *in = &m->info;
    in->format_version = h.version;
    in->container_bytes = len;
    in->has_tokenizer = m->tok != NULL;
    in->bos = m->tok ? tokenizer_bos(m->tok) : -1;
    in->eos = m->tok ? tokenizer_eos(m->tok) : -1;
    in->isa = m->k.name;
    in->config_json = m->config_json;
    in->weights_summary = m->summary;
    size_t wb = 0;
    for (size_t i = 0; i < m->ntensors; i++) wb += m->tensors[i].rows * m->tensors[i].row_bytes + m->tensors[i].nscales * 4;
    in->weight_bytes = wb;
    *out = m;
    return 0;
}

int rt_load_container(TrtModel **out, const uint8_t *src, size_t len, const char *name, int isa, int check_crc, RtErr *e) {
    return load_container(out, NULL, src, len, name, isa, check_crc, e);
}

static int check_options(const TrtLoadOptions *opt, int *isa, int *kv16, RtErr *e) {
    *isa = rt_isa_from_name(opt ? opt->isa : NULL);
    if (*isa < 0) return rt_err(e, "unknown instruction set \"%s\" (auto, avx512vnni, avx512, avx2, scalar)", opt->isa);
    const char *kvc = opt && opt->kv_cache ? opt->kv_cache : "f32";
    if (strcmp(kvc, "f32") && strcmp(kvc, "f16")) return rt_err(e, "unknown KV cache type \"%s\" (f32, f16)", kvc);
    *kv16 = !strcmp(kvc, "f16");
    return 0;
}

/* What the preamble and the zstd frame header say, checked: the first `have` bytes of a len-byte
 * artifact are at d (have >= min(len, TERN_PREAMBLE_SIZE + 18): 18 is zstd's longest frame
 * header). *clen: the container's size; *isa, *kv16: the options, checked. */
static int check_head(const uint8_t *d, size_t have, size_t len, const char *name, const TrtLoadOptions *opt, size_t *clen, int *isa,
                      int *kv16, RtErr *e) {
    TernPreamble pre;
    if (have >= 4 && tern_rd_u32(d) != TERN_SKIPPABLE_MAGIC) {
        if (tern_rd_u32(d) == 0xFD2FB528u) return rt_err(e, "%s: a plain zstd file, not a tern artifact (no tern preamble)", name);
        return rt_err(e, "%s: not a tern artifact (wrong magic)", name);
    }
    if (len < TERN_PREAMBLE_SIZE) return rt_err(e, "%s: %zu bytes is too short to be a tern artifact (truncated?)", name, len);
    if (tern_preamble_decode(d, have, &pre)) {
        if (have >= 4 && tern_rd_u32(d) == 0xFD2FB528u)
            return rt_err(e, "%s: a plain zstd file, not a tern artifact (no tern preamble)", name);
        return rt_err(e, "%s: not a tern artifact (wrong magic)", name);
    }
    if (pre.version != TERN_FORMAT_VERSION) return version_error(e, name, pre.version);
    if (pre.flags) return rt_err(e, "%s: unknown preamble flags 0x%x", name, pre.flags);
    size_t maxc = opt && opt->max_container_bytes ? opt->max_container_bytes : RT_DEFAULT_MAX_CONTAINER;
    const uint8_t *z = d + TERN_PREAMBLE_SIZE;
    size_t zlen = len - TERN_PREAMBLE_SIZE;
    if (zlen == 0) return rt_err(e, "%s: truncated after the preamble (no compressed data)", name);
    unsigned long long fcs = ZSTD_getFrameContentSize(z, have - TERN_PREAMBLE_SIZE);
    if (fcs == ZSTD_CONTENTSIZE_ERROR) return rt_err(e, "%s: the compressed data is not a zstd frame (corrupt)", name);
    if (fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs != pre.container_size)
        return rt_err(e, "%s: zstd frame size does not match the preamble (corrupt)", name);
    if (pre.container_size > maxc)
        return rt_err(e, "%s: container of %llu bytes exceeds the limit of %zu bytes", name, (unsigned long long)pre.container_size,
                      maxc);
    *clen = (size_t)pre.container_size;
    return check_options(opt, isa, kv16, e);
}

static int load_bytes(TrtModel **out, const uint8_t *d, size_t len, const char *name, const TrtLoadOptions *opt, RtErr *e) {
    *out = NULL;
    size_t clen;
    int isa, kv16;
    if (check_head(d, len, len, name, opt, &clen, &isa, &kv16, e)) return -1;
    const uint8_t *z = d + TERN_PREAMBLE_SIZE;
    size_t zlen = len - TERN_PREAMBLE_SIZE;
    size_t fsz = ZSTD_findFrameCompressedSize(z, zlen);
    if (ZSTD_isError(fsz)) return rt_err(e, "%s: truncated or corrupt zstd frame (%s)", name, ZSTD_getErrorName(fsz));
    if (fsz != zlen) return rt_err(e, "%s: %zu unexpected bytes after the zstd frame", name, zlen - fsz);
    /* decompressed straight into the buffer the model keeps (no second copy) */
    uint8_t *c = rt_alloc(clen + RT_SLACK);
    if (!c) return rt_err(e, "%s: out of memory for %zu bytes", name, clen);
    size_t got = ZSTD_decompress(c, clen, z, zlen);
    if (ZSTD_isError(got)) {
        rt_free(c);
        return rt_err(e, "%s: corrupt compressed data (%s)", name, ZSTD_getErrorName(got));
    }
    if (got != clen) {
        rt_free(c);
        return rt_err(e, "%s: decompressed %zu bytes, expected %zu (corrupt)", name, got, clen);
    }
    int rc = load_container(out, c, NULL, clen, name, isa, 1, e);
    if (!rc) (*out)->info.file_bytes = len;
    if (!rc) (*out)->kv_f16 = kv16;
    return rc;
}

/* The zstd frame of a file streamed into c[clen] (zlen bytes from the file's position), so the
 * compressed bytes are never held whole: the checks of load_bytes, in stream form. */
static int stream_frame(FILE *f, size_t zlen, uint8_t *c, size_t clen, const char *name, RtErr *e) {
    enum { IN_CHUNK = 1 << 20 };
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    uint8_t *ib = malloc(IN_CHUNK);
    int rc = dc && ib ? 0 : rt_err(e, "%s: out of memory", name), done = 0;
    /* the output is the whole container, never moved: zstd writes into it directly instead of
     * keeping its own window (up to 128 MB at level 22); a zstd without the option keeps it */
    if (dc) (void)ZSTD_DCtx_setParameter(dc, ZSTD_d_stableOutBuffer, 1);
    ZSTD_outBuffer ob = {c, clen, 0};
    size_t read = 0;
    while (!rc && !done && read < zlen) {
        size_t want = zlen - read < IN_CHUNK ? zlen - read : IN_CHUNK, r = fread(ib, 1, want, f);
        if (r != want) {
            rc = rt_err(e, "%s: read error", name);
            break;
        }
        read += r;
        ZSTD_inBuffer in = {ib, r, 0};
        while (!rc && in.pos < in.size) {
            size_t before_in = in.pos, before_out = ob.pos, ret = ZSTD_decompressStream(dc, &ob, &in);
            if (ZSTD_isError(ret)) rc = rt_err(e, "%s: corrupt compressed data (%s)", name, ZSTD_getErrorName(ret));
            else if (ret == 0) {
                done = 1;
                if (in.pos < in.size || read < zlen)
                    rc = rt_err(e, "%s: %zu unexpected bytes after the zstd frame", name, (in.size - in.pos) + (zlen - read));
                break;
            } else if (in.pos == before_in && ob.pos == before_out)
                rc = rt_err(e, "%s: decompressed more than the %zu bytes expected (corrupt)", name, clen);
        }
    }
    if (!rc && !done) rc = rt_err(e, "%s: truncated or corrupt zstd frame (the file ends inside it)", name);
    if (!rc && ob.pos != clen) rc = rt_err(e, "%s: decompressed %zu bytes, expected %zu (corrupt)", name, ob.pos, clen);
    free(ib);
    ZSTD_freeDCtx(dc);
    return rc;
}

/* A regular file of len bytes: the head checked, then the frame decompressed straight from the
 * file into the container the model keeps (peak memory: the container, not file + container). */
static int load_file_stream(TrtModel **out, FILE *f, size_t len, const char *name, const TrtLoadOptions *opt, RtErr *e) {
    *out = NULL;
    uint8_t head[TERN_PREAMBLE_SIZE + 18];
    size_t have = len < sizeof head ? len : sizeof head, clen;
    int isa, kv16;
    if (fread(head, 1, have, f) != have) return rt_err(e, "%s: read error", name);
    if (check_head(head, have, len, name, opt, &clen, &isa, &kv16, e)) return -1;
    if (fseek(f, (long)TERN_PREAMBLE_SIZE, SEEK_SET)) return rt_err(e, "%s: read error", name);
    uint8_t *c = rt_alloc(clen + RT_SLACK);
    if (!c) return rt_err(e, "%s: out of memory for %zu bytes", name, clen);
    if (stream_frame(f, len - TERN_PREAMBLE_SIZE, c, clen, name, e)) {
        rt_free(c);
        return -1;
    }
    int rc = load_container(out, c, NULL, clen, name, isa, 1, e);
    if (!rc) (*out)->info.file_bytes = len;
    if (!rc) (*out)->kv_f16 = kv16;
    return rc;
}

int trt_model_load_memory(TrtModel **out, const void *data, size_t len, const char *name, const TrtLoadOptions *opt, char *err,
                          size_t errlen) {
    RtErr e = {{0}};
    int rc = load_bytes(out, data, len, name ? name : "artifact", opt, &e);
    if (rc) rt_err_out(&e, err, errlen);
    return rc;
}

int trt_model_load(TrtModel **out, const char *path, const TrtLoadOptions *opt, char *err, size_t errlen) {
    RtErr e = {{0}};
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rt_err(&e, "%s: cannot open (%s)", path, strerror(errno));
        rt_err_out(&e, err, errlen);
        return -1;
    }
    long flen = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (flen >= 0 && fseek(f, 0, SEEK_SET) == 0) { /* a regular file: streamed */
        int rc = load_file_stream(out, f, (size_t)flen, path, opt, &e);
        fclose(f);
        if (rc) rt_err_out(&e, err, errlen);
        return rc;
    }
    clearerr(f); /* a pipe: read whole */
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : rt_err(&e, "%s: out of memory", path);
    while (!rc) {
        if (n == cap) {
            uint8_t *nb = cap < ((size_t)1 << 40) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                rc = rt_err(&e, "%s: out of memory reading the file", path);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) rc = rt_err(&e, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (!rc) rc = load_bytes(out, buf, n, path, opt, &e);
    free(buf);
    if (rc) rt_err_out(&e, err, errlen);
    return rc;
}

const TrtModelInfo *trt_model_info(const TrtModel *m) { return &m->info; }
