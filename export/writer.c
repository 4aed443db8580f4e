#include "export/writer.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "export/format.h"
#include "kernels/quant.h"
#include "model/gpt.h"
#include "model/qat.h"
#include "model/trn.h"
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
    char grp[32] = "";
    if (tern_dtype_is_ternary(e->dtype)) snprintf(grp, sizeof grp, e->group ? "/g%u" : "/tensor", e->group);
    snprintf(buf, n, "%s%s%s%s%s", base, grp, (e->flags & TERN_TENSOR_BYTE_CODES) ? "/bytes" : "", e->act_bits ? "+a8" : "",
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

static int gpt_hparams(const Model *m, const cJSON *run_config, TernGptHparams *h, Err *err) {
    GptConfig c;
    gpt_config_defaults(&c);
    if (cfg_read(m->config, "model", kGptConfigFields, kGptConfigFieldCount, &c, err)) return -1;
    size_t hidden = c.mlp_hidden ? c.mlp_hidden : c.mlp_mult * c.dim;
    size_t v[7] = {c.vocab_size, c.layers, c.dim, c.heads, c.kv_heads, hidden, c.seq_len};
    for (int i = 0; i < 7; i++)
        if (v[i] > UINT32_MAX) return err_set(err, "export: model dimension %zu does not fit the format", v[i]);
    memset(h, 0, sizeof *h);
    h->vocab_size = (uint32_t)c.vocab_size;
    h->layers = (uint32_t)c.layers;
    h->dim = (uint32_t)c.dim;
    h->heads = (uint32_t)c.heads;
    h->kv_heads = (uint32_t)c.kv_heads;
    h->mlp_hidden = (uint32_t)hidden;
    h->seq_len = (uint32_t)c.seq_len;
    if (!strcmp(c.mlp_act, "relu2")) h->mlp_act = TERN_ACT_RELU2;
    else if (!strcmp(c.mlp_act, "leaky_relu2")) h->mlp_act = TERN_ACT_LEAKY_RELU2;
    else if (!strcmp(c.mlp_act, "swiglu")) h->mlp_act = TERN_ACT_SWIGLU;
    else return err_set(err, "export: unknown model.mlp_act \"%s\"", c.mlp_act);
    h->flags = (c.tie_embeddings ? TERN_GPT_TIE_EMBEDDINGS : 0) | (c.skips ? TERN_GPT_SKIPS : 0) |
               (c.subln ? TERN_GPT_SUBLN : 0) | (c.emb_norm ? 0 : TERN_GPT_NO_EMB_NORM) | (c.qk_norm ? 0 : TERN_GPT_NO_QK_NORM);
    h->softcap = (float)c.softcap;
    h->rope_base = (float)c.rope_base;
    /* the trainer's RMSNorm replaces eps <= 0 by FLT_EPSILON (as torch's RMSNorm with eps=None) */
    h->norm_eps = c.norm_eps > 0 ? (float)c.norm_eps : FLT_EPSILON;
    h->eval_seq_len = eval_seq_len_of(run_config);
    return 0;
}

/* The TRN hybrid's hyper-parameters from the model's resolved config (model/trn_hybrid.c writes
 * mlp_hidden, swiglu_hidden and omega_init_len resolved). Only what the forward needs at
 * evaluation: initialisation settings, the scan kind and the readout warm-up (w = 1 at
 * evaluation) are training matters. */
static int trn_hparams(const Model *m, const cJSON *run_config, TernTrnHparams *h, Err *err) {
    TrnHybridConfig c;
    trn_hybrid_config_defaults(&c);
    if (cfg_read(m->config, "model", kTrnHybridConfigFields, kTrnHybridConfigFieldCount, &c, err)) return -1;
    size_t L = strlen(c.layout);
    if (L < 1 || L > TERN_TRN_LAYOUT_MAX) return err_set(err, "export: model.layout must have 1..%u letters", TERN_TRN_LAYOUT_MAX);
    size_t hidden = c.mlp_hidden ? c.mlp_hidden : c.mlp_mult * c.dim;
    size_t v[11] = {c.vocab_size, L, c.dim, c.heads, c.kv_heads, hidden, c.seq_len, c.oscillators, c.swiglu_hidden, c.bigram_rows,
                    c.bigram_dim};
    for (int i = 0; i < 11; i++)
        if (v[i] > UINT32_MAX) return err_set(err, "export: model dimension %zu does not fit the format", v[i]);
    if (!c.swiglu_hidden) return err_set(err, "export: model.swiglu_hidden is not resolved in the checkpoint's config");
    memset(h, 0, sizeof *h);
    h->vocab_size = (uint32_t)c.vocab_size;
    h->layers = (uint32_t)L;
    h->dim = (uint32_t)c.dim;
    h->heads = (uint32_t)c.heads;
    h->kv_heads = (uint32_t)c.kv_heads;
    h->mlp_hidden = (uint32_t)hidden;
    h->seq_len = (uint32_t)c.seq_len;
    if (!strcmp(c.mlp_act, "relu2")) h->mlp_act = TERN_ACT_RELU2;
    else if (!strcmp(c.mlp_act, "leaky_relu2")) h->mlp_act = TERN_ACT_LEAKY_RELU2;
    else return err_set(err, "export: model.mlp_act \"%s\" is not a TRN hybrid activation", c.mlp_act);
    h->flags = (c.tie_embeddings ? TERN_TRN_TIE_EMBEDDINGS : 0) | (c.skips ? TERN_TRN_SKIPS : 0) |
               (c.token_shift ? TERN_TRN_TOKEN_SHIFT : 0);
    h->softcap = (float)c.softcap;
    h->rope_base = (float)c.rope_base;
    h->norm_eps = c.norm_eps > 0 ? (float)c.norm_eps : FLT_EPSILON;
    h->eval_seq_len = eval_seq_len_of(run_config);
    h->oscillators = (uint32_t)c.oscillators;
    h->swiglu_hidden = (uint32_t)c.swiglu_hidden;
    h->bigram_rows = (uint32_t)c.bigram_rows;
    h->bigram_dim = (uint32_t)(c.bigram_rows ? c.bigram_dim : 0);
    h->amp_max = (float)c.amp_max;
    memcpy(h->layout, c.layout, L);
    return 0;
}

int export_build(const Model *m, const cJSON *run_config, const ExportOptions *opt, uint8_t **out, size_t *out_len,
                 ExportReport *rep, Err *err) {
    *out = NULL;
    *out_len = 0;
    memset(rep, 0, sizeof *rep);
    const QuantPlan *qp = m->qplan;
    if (!qp || qp->n != m->ps.n) return err_set(err, "export: the model has no quantization plan attached");
    /* the architecture's hyper-parameters, encoded (arch id + fixed-size struct, format.h) */
    uint8_t hpbuf[TERN_TRN_HPARAMS_SIZE > TERN_GPT_HPARAMS_SIZE ? TERN_TRN_HPARAMS_SIZE : TERN_GPT_HPARAMS_SIZE];
    uint32_t arch_id, hp_size;
    if (!strcmp(m->ops->arch, "gpt")) {
        TernGptHparams hp;
        if (gpt_hparams(m, run_config, &hp, err)) return -1;
        tern_gpt_hparams_encode(hpbuf, &hp);
        arch_id = TERN_ARCH_GPT;
        hp_size = TERN_GPT_HPARAMS_SIZE;
    } else if (!strcmp(m->ops->arch, "trn_hybrid")) {
        TernTrnHparams hp;
        if (trn_hparams(m, run_config, &hp, err)) return -1;
        tern_trn_hparams_encode(hpbuf, &hp);
        arch_id = TERN_ARCH_TRN_HYBRID;
        hp_size = TERN_TRN_HPARAMS_SIZE;
    } else {
        return err_set(err, "export: architecture \"%s\" is not supported by artifact format %u (gpt, trn_hybrid)", m->ops->arch,
                       TERN_FORMAT_VERSION);
    }

    int byte_codes = opt->int_storage == EXPORT_INT_BYTES || (opt->int_storage == EXPORT_INT_AUTO && arch_id == TERN_ARCH_TRN_HYBRID);
    size_t n = m->ps.n;
    Plan *plans = xcalloc(n ? n : 1, sizeof(Plan));
    for (size_t i = 0; i < n; i++)
        if (plan_tensor(&plans[i], m->ps.t[i], &qp->p[i], qp, byte_codes, err)) {
            xfree(plans);
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
    h.arch = arch_id;
    h.n_tensors = (uint32_t)n;
    h.entry_size = TERN_TENSOR_ENTRY_SIZE;
    h.hparams_off = TERN_HEADER_SIZE;
    h.hparams_size = hp_size;
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
    memcpy(c + h.hparams_off, hpbuf, hp_size);
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
