#include "export/writer.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "export/format.h"
#include "kernels/quant.h"
#include "model/block.h"
#include "model/qat.h"
#include "tern_code_bytes.h"

size_t export_code_bytes(void) { return (size_t)TERN_CODE_BYTES; }
size_t export_code_files(void) { return (size_t)TERN_CODE_FILES; }

static size_t align_up(size_t x) { return (x + TERN_ALIGN - 1) / TERN_ALIGN * TERN_ALIGN; }



/* The stored form of one parameter. */
typedef struct Plan {
    const Tensor *t;
    TernTensorEntry e;
    const QuantSpec *spec; /* quantized tensors */
} Plan;

static int plan_tensor(Plan *p, const Tensor *t, const ParamPlan *pp, const QuantPlan *qp, int byte_codes, Err *err) {
    memset(p, 0, sizeof *p);
    p->t = t;
    TernTensorEntry *e = &p->e;
    if (strlen(t->name) >= TERN_NAME_MAX)
        return err_set(err, "export: parameter name %s is longer than %u bytes", t->name, TERN_NAME_MAX - 1);
    snprintf(e->name, sizeof e->name, "%s", t->name);
    if (t->ndim < 1 || t->ndim > 2) return err_set(err, "export: %s has %d dimensions (1 or 2 supported)", t->name, t->ndim);
    e->ndim = (uint32_t)t->ndim;
    e->rows = t->ndim == 2 ? t->shape[0] : 1;
    e->cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
    if (pp->store == STORE_F32) {
        e->dtype = TERN_DT_F32;
    } else if (pp->store == STORE_F16) {
        e->dtype = TERN_DT_F16;
    } else {
        const QuantSpec *s = &pp->spec;
        p->spec = s;
        if (s->kind == QUANT_TERNARY) {
            e->dtype = !strcmp(qp->ternary_packing, "base3") ? TERN_DT_T3 : TERN_DT_T2;
            if (s->group > UINT32_MAX) return err_set(err, "export: %s: ternary group %zu too large", t->name, s->group);
            e->group = (uint32_t)s->group;
        } else if (s->kind == QUANT_INT) {
            switch (s->bits) {
            case 8: e->dtype = TERN_DT_I8; break;
            case 6: e->dtype = TERN_DT_I6; break;
            case 5: e->dtype = TERN_DT_I5; break;
            case 4: e->dtype = TERN_DT_I4; break;
            default: return err_set(err, "export: %s: int%d has no packed dtype (int4, int5, int6, int8)", t->name, s->bits);
            }
        } else {
            return err_set(err, "export: %s: quantized with kind none", t->name);
        }
        e->scale_dtype = s->scale_fp16 ? TERN_SCALE_F16 : TERN_SCALE_F32;
        if (s->act_bits != 0 && s->act_bits != 8) return err_set(err, "export: %s: act_bits %d (0 or 8)", t->name, s->act_bits);
        e->act_bits = (uint32_t)s->act_bits;
        if (s->act_block > UINT32_MAX) return err_set(err, "export: %s: act_block too large", t->name);
        e->act_block = (uint32_t)s->act_block;
        if (byte_codes && tern_flags_valid(e->dtype, TERN_TENSOR_BYTE_CODES)) e->flags = TERN_TENSOR_BYTE_CODES;
    }
    e->data_size = e->rows * tern_stored_row_bytes(e->dtype, e->flags, e->cols);
    uint64_t ns = tern_num_scales(e->dtype, e->group, e->rows, e->cols);
    e->scale_size = ns * (e->scale_dtype == TERN_SCALE_F16 ? 2 : e->scale_dtype == TERN_SCALE_F32 ? 4 : 0);
    return 0;
}

static void describe(char *buf, size_t n, const TernTensorEntry *e) {
    const char *base = tern_dtype_name(e->dtype);
    char grp[32] = "", act[32] = "";
    if (tern_dtype_is_ternary(e->dtype)) snprintf(grp, sizeof grp, e->group ? "/g%u" : "/tensor", e->group);
    if (e->act_bits) snprintf(act, sizeof act, e->act_block ? "+a8/b%u" : "+a8", e->act_block); /* b: activation block */
    snprintf(buf, n, "%s%s%s%s%s", base, grp, (e->flags & TERN_TENSOR_BYTE_CODES) ? "/bytes" : "", act,
             e->scale_dtype == TERN_SCALE_F16 ? " s16" : "");
}

/* Quantizes (or converts) one parameter into dst (data) and sdst (scales). Non-finite values
 * (a weight beyond fp16's range stored as fp16, a diverged model) are refused: readers reject
 * them. */
static int pack_tensor(uint8_t *dst, uint8_t *sdst, const Plan *p, Err *err) {
    const TernTensorEntry *e = &p->e;
    size_t rows = (size_t)e->rows, cols = (size_t)e->cols, rb = tern_stored_row_bytes(e->dtype, e->flags, cols);
    const float *w = p->t->data;
    for (size_t i = 0; i < rows * cols; i++) {
        float v = w[i];
        if (!(v == v) || v > 3.4028235e38f || v < -3.4028235e38f)
            return err_set(err, "export: %s holds a non-finite value (element %zu)", e->name, i);
        if (e->dtype == TERN_DT_F16 && (v > 65504.0f || v < -65504.0f))
            return err_set(err, "export: %s: %g does not fit fp16 (use --passthrough fp32 or export.fp32_match)", e->name, (double)v);
    }
    if (e->dtype == TERN_DT_F32) {
        tern_pack_f32_row(dst, w, rows * cols);
        return 0;
    }
    if (e->dtype == TERN_DT_F16) {
        tern_pack_f16_row(dst, w, rows * cols);
        return 0;
    }
    size_t ns = (size_t)tern_num_scales(e->dtype, e->group, e->rows, e->cols);
    int8_t *codes = xmalloc(rows * cols);
    float *scales = xmalloc(ns * sizeof(float));
    quantize_weights(codes, scales, w, rows, cols, p->spec);
    uint32_t layout = (e->flags & TERN_TENSOR_BYTE_CODES) ? TERN_DT_I8 : e->dtype; /* byte codes: the int8 layout */
    for (size_t r = 0; r < rows; r++) tern_pack_row(layout, dst + r * rb, codes + r * cols, cols);
    /* fp16 scales were already rounded to fp16 by the quantizer, so this conversion is exact */
    if (e->scale_dtype == TERN_SCALE_F16) tern_pack_f16_row(sdst, scales, ns);
    else tern_pack_f32_row(sdst, scales, ns);
    xfree(codes);
    xfree(scales);
    return 0;
}

/* the run's data.seq_len: the default evaluation window (0 = the model's seq_len) */
static uint32_t eval_seq_len_of(const cJSON *run_config) {
    const cJSON *data = run_config ? cJSON_GetObjectItemCaseSensitive(run_config, "data") : NULL;
    const cJSON *sl = data ? cJSON_GetObjectItemCaseSensitive(data, "seq_len") : NULL;
    return cJSON_IsNumber(sl) && sl->valuedouble > 0 && sl->valuedouble <= UINT32_MAX ? (uint32_t)sl->valuedouble : 0;
}

/* The model's key/values (model_export_kv: the stack's keys, every layer's block kinds, each kind's
 * keys) plus the default evaluation window, in the format's encoding. */
static int encode_kv(const Model *m, const cJSON *run_config, uint8_t **out, size_t *len, Err *err) {
    KvList kl = {0};
    if (model_export_kv(m, &kl, err)) {
        kv_free(&kl);
        return -1;
    }
    kv_add_u32(&kl, "stack.eval_seq_len", eval_seq_len_of(run_config));
    TernKv *kv = xcalloc(kl.n ? kl.n : 1, sizeof(TernKv));
    int rc = kl.n > TERN_KV_MAX ? err_set(err, "export: %zu hyper-parameters (at most %u)", kl.n, TERN_KV_MAX) : 0;
    for (size_t i = 0; i < kl.n && !rc; i++) {
        const KvEntry *e = &kl.e[i];
        TernKv *k = &kv[i];
        if (strlen(e->key) >= TERN_KV_KEY_MAX || (e->type == KV_STR && strlen(e->s) > TERN_KV_STR_MAX)) {
            rc = err_set(err, "export: hyper-parameter %s does not fit the format", e->key);
            break;
        }
        snprintf(k->key, sizeof k->key, "%s", e->key);
        switch (e->type) {
        case KV_U32:
            if (e->u > UINT32_MAX) rc = err_set(err, "export: %s = %llu does not fit the format", e->key, (unsigned long long)e->u);
            k->type = TERN_KV_U32, k->u = (uint32_t)e->u;
            break;
        case KV_BOOL: k->type = TERN_KV_BOOL, k->u = (uint32_t)e->u; break;
        case KV_F32: k->type = TERN_KV_F32, k->f = (float)e->f; break;
        case KV_STR: k->type = TERN_KV_STR, memcpy(k->s, e->s, strlen(e->s) + 1); break; /* length checked above */
        }
    }
    if (!rc) {
        *len = tern_kv_section_size(kv, kl.n);
        *out = xmalloc(*len);
        tern_kv_encode(*out, kv, kl.n);
    }
    xfree(kv);
    kv_free(&kl);
    return rc;
}

int export_build(const Model *m, const cJSON *run_config, const ExportOptions *opt, uint8_t **out, size_t *out_len,
                 ExportReport *rep, Err *err) {
    *out = NULL;
    *out_len = 0;
    memset(rep, 0, sizeof *rep);
    const QuantPlan *qp = m->qplan;
    if (!qp || qp->n != m->ps.n) return err_set(err, "export: the model has no quantization plan attached");
    uint8_t *kvbuf = NULL;
    size_t kv_size = 0;
    if (encode_kv(m, run_config, &kvbuf, &kv_size, err)) return -1;
    int byte_codes = opt->int_storage == EXPORT_INT_BYTES || (opt->int_storage == EXPORT_INT_AUTO && model_prefers_byte_codes(m));
    /* every parameter, then the buffers the runtime needs (stored fp32 under their names) */
    size_t n = m->ps.n, nbuf = 0;
    Tensor *bufs = xcalloc(m->bs.n ? m->bs.n : 1, sizeof(Tensor));
    for (size_t i = 0; i < m->bs.n; i++) {
        const Buffer *b = &m->bs.b[i];
        if (!b->exported) continue;
        TERN_CHECK(b->dtype == BUF_F32, "export: buffer %s: only float32 buffers can be exported", b->name);
        Tensor *t = &bufs[nbuf++];
        t->name = b->name, t->ndim = b->ndim, t->shape[0] = b->shape[0], t->shape[1] = b->shape[1];
        t->numel = b->numel, t->data = b->data;
    }
    static const ParamPlan kBufferPlan = {STORE_F32, {0}};
    Plan *plans = xcalloc(n + nbuf ? n + nbuf : 1, sizeof(Plan));
    int prc = 0;
    for (size_t i = 0; i < n + nbuf && !prc; i++)
        prc = i < n ? plan_tensor(&plans[i], m->ps.t[i], &qp->p[i], qp, byte_codes, err)
                    : plan_tensor(&plans[i], &bufs[i - n], &kBufferPlan, qp, byte_codes, err);
    n += nbuf;
    if (prc) {
        xfree(plans);
        xfree(bufs);
        xfree(kvbuf);
        return -1;
    }
    char *cfg_text = run_config ? cJSON_Print(run_config) : NULL;
    size_t cfg_len = cfg_text ? strlen(cfg_text) : 0;
    size_t tok_len = opt->tok_kind == TERN_TOK_FILE ? opt->tok_len : 0;

    /* layout */
    TernHeader h;
    memset(&h, 0, sizeof h);
    h.version = TERN_FORMAT_VERSION;
    h.header_size = TERN_HEADER_SIZE;
    h.n_tensors = (uint32_t)n;
    h.entry_size = TERN_TENSOR_ENTRY_SIZE;
    h.hparams_off = TERN_HEADER_SIZE;
    h.hparams_size = kv_size;
    h.table_off = h.hparams_off + h.hparams_size;
    h.config_off = h.table_off + (uint64_t)n * TERN_TENSOR_ENTRY_SIZE;
    h.config_size = cfg_len;
    h.tokenizer_off = h.config_off + cfg_len;
    h.tokenizer_size = tok_len;
    h.tokenizer_kind = (uint32_t)opt->tok_kind;
    h.payload_off = align_up(h.tokenizer_off + tok_len);
    size_t off = (size_t)h.payload_off;
    for (size_t i = 0; i < n; i++) {
        TernTensorEntry *e = &plans[i].e;
        e->data_off = off;
        off = align_up(off + e->data_size);
        e->scale_off = e->scale_size ? off : 0;
        off = align_up(off + e->scale_size);
    }
    h.payload_size = off - h.payload_off;
    h.container_size = off + TERN_CRC_SIZE;
    size_t csize = (size_t)h.container_size;

    uint8_t *c = xcalloc(csize, 1);
    tern_header_encode(c, &h);
    memcpy(c + h.hparams_off, kvbuf, kv_size);
    xfree(kvbuf);
    if (cfg_len) memcpy(c + h.config_off, cfg_text, cfg_len);
    if (tok_len) memcpy(c + h.tokenizer_off, opt->tok_bytes, tok_len);
    rep->ntensors = n;
    rep->t = xcalloc(n ? n : 1, sizeof(ExportTensorInfo));
    for (size_t i = 0; i < n; i++) {
        const TernTensorEntry *e = &plans[i].e;
        tern_entry_encode(c + h.table_off + i * TERN_TENSOR_ENTRY_SIZE, e);
        if (pack_tensor(c + e->data_off, e->scale_size ? c + e->scale_off : NULL, &plans[i], err)) {
            xfree(c);
            xfree(plans);
            xfree(bufs);
            if (cfg_text) cJSON_free(cfg_text);
            export_report_free(rep);
            return -1;
        }
        ExportTensorInfo *ti = &rep->t[i];
        snprintf(ti->name, sizeof ti->name, "%s", e->name);
        describe(ti->dtype, sizeof ti->dtype, e);
        ti->rows = (size_t)e->rows;
        ti->cols = (size_t)e->cols;
        ti->numel = plans[i].t->numel;
        ti->raw_bytes = 4 * ti->numel;
        ti->packed_bytes = (size_t)(e->data_size + e->scale_size);
        rep->params += ti->numel;
        rep->raw_bytes += ti->raw_bytes;
        rep->packed_bytes += ti->packed_bytes;
    }
    int any_bytes = 0;
    for (size_t i = 0; i < n; i++) any_bytes |= (plans[i].e.flags & TERN_TENSOR_BYTE_CODES) != 0;
    tern_wr_u32(c + csize - TERN_CRC_SIZE, tern_crc32(0, c, csize - TERN_CRC_SIZE));
    if (cfg_text) cJSON_free(cfg_text);
    xfree(plans);
    xfree(bufs);

    /* compress */
    int level = opt->zstd_level > 0 ? opt->zstd_level : qp->zstd_level;
    if (level < 1 || level > ZSTD_maxCLevel()) level = 22;
    double t0 = now_seconds();
    size_t bound = ZSTD_compressBound(csize);
    uint8_t *file = malloc(TERN_PREAMBLE_SIZE + bound);
    if (!file) {
        xfree(c);
        export_report_free(rep);
        return err_set(err, "export: out of memory for the compressed artifact (%zu bytes)", bound);
    }
    TernPreamble pre = {TERN_FORMAT_VERSION, 0, h.container_size};
    tern_preamble_encode(file, &pre);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t zr = cc ? 0 : (size_t)-1;
    if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(zr) && opt->zstd_workers > 0) zr = ZSTD_CCtx_setParameter(cc, ZSTD_c_nbWorkers, opt->zstd_workers);
    if (!ZSTD_isError(zr) && opt->zstd_workers > 0 && any_bytes) {
        /* Byte codes have no long-range redundancy (weights are noise-like): independent 2 MB jobs
         * (no overlap) compress them in parallel, and better than one long level-22 job (the
         * default TRN hybrid: 14.7 MB in 10 s with 2 workers against 15.1 MB in 40 s). The output
         * depends on the job size, not on the number of workers. */
        zr = ZSTD_CCtx_setParameter(cc, ZSTD_c_jobSize, 2 << 20);
        if (!ZSTD_isError(zr)) zr = ZSTD_CCtx_setParameter(cc, ZSTD_c_overlapLog, 1);
    }
    if (!ZSTD_isError(zr)) zr = ZSTD_compress2(cc, file + TERN_PREAMBLE_SIZE, bound, c, csize);
    ZSTD_freeCCtx(cc);
    xfree(c);
    if (ZSTD_isError(zr)) {
        free(file);
        export_report_free(rep);
        return err_set(err, "export: zstd compression failed: %s", ZSTD_getErrorName(zr));
    }
    rep->seconds_compress = now_seconds() - t0;
    rep->container_bytes = csize;
    rep->file_bytes = TERN_PREAMBLE_SIZE + zr;
    rep->tokenizer_bytes = tok_len;
    rep->zstd_level = level;
    *out = file;
    *out_len = rep->file_bytes;
    return 0;
}

void export_report_free(ExportReport *rep) {
    xfree(rep->t);
    rep->t = NULL;
    rep->ntensors = 0;
}

int export_write_file(const char *path, const uint8_t *data, size_t len, Err *err) {
    return write_file_atomic(path, data, len, err);
}
