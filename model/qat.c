#include "model/qat.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/ops.h"
#include "model/lora.h"

typedef struct QuantCfg {
    int qat, embed, ternary_center;
    long act_bits; /* CFG_INT fields are long */
    char weights[CFG_STR_MAX], scale_dtype[CFG_STR_MAX];
    size_t min_numel, group, act_block;
    double clip_quantile, start_lr_frac;
    long start_step;
} QuantCfg;

#define Q(type, m, h) CFG_F(type, QuantCfg, m, h)
#define QR(type, m, lo, hi, h) CFG_R(type, QuantCfg, m, lo, hi, h)
static const CfgField kQuantFields[] = {
    Q(CFG_BOOL, qat, "fake-quantize weights during training (late switch below)"),
    Q(CFG_STRING, weights, "none | int4 | int5 | int6 | int8 | ternary"),
    QR(CFG_SIZE, min_numel, 0, 1e15, "quantize 2-D tensors with more weights than this"),
    Q(CFG_BOOL, embed, "quantize the token embedding / tied head too"),
    QR(CFG_FLOAT, clip_quantile, 0, 1, "intN: per-row clip quantile of |w|, in (0, 1]"),
    QR(CFG_SIZE, group, 0, 1 << 30, "ternary: weights per scale along a row (0 = per tensor)"),
    Q(CFG_BOOL, ternary_center, "ternary: subtract the group mean before rounding (the Hybrid-GRU engine's quantizer)"),
    Q(CFG_STRING, scale_dtype, "fp32 | fp16 scales"),
    QR(CFG_INT, act_bits, 0, 8, "0 = float activations, 8 = int8 fake-quantized layer inputs"),
    QR(CFG_SIZE, act_block, 0, 1 << 30, "activation scale per token (0) or per block of N values"),
    QR(CFG_FLOAT, start_lr_frac, 0, 1, "QAT starts when the LR multiplier drops below this (0 = never by LR)"),
    QR(CFG_INT, start_step, -1, 1e15, "QAT starts at this step (-1 = never by step; 0 = from the start)"),
    CFG_CHILD("rules", CFG_ARRAY, "per-layer overrides"),
};
#undef Q
#undef QR

typedef struct ExportCfg {
    char passthrough[CFG_STR_MAX], ternary_packing[CFG_STR_MAX];
    long zstd_level;
} ExportCfg;

#define X(type, m, h) CFG_F(type, ExportCfg, m, h)
#define XR(type, m, lo, hi, h) CFG_R(type, ExportCfg, m, lo, hi, h)
static const CfgField kExportFields[] = {
    X(CFG_STRING, passthrough, "fp16 | fp32 storage for tensors that are not quantized"),
    X(CFG_STRING, ternary_packing, "2bit | base3 (5 trits per byte)"),
    XR(CFG_INT, zstd_level, 1, 22, "zstd compression level"),
    CFG_CHILD("fp32_match", CFG_ARRAY, "globs of tensors kept in fp32"),
};
#undef X
#undef XR

static const char *kDefaultFp32[] = {"*resid_mix*", "*attn_scale*", "*mlp_scale*", "*q_gain*", "*skip_weights*", "*moe.router*"};

static int parse_weights(const char *w, QuantSpec *s) {
    memset(s, 0, sizeof *s);
    if (!strcmp(w, "none")) s->kind = QUANT_NONE;
    else if (!strcmp(w, "ternary")) s->kind = QUANT_TERNARY;
    else if (!strcmp(w, "int4") || !strcmp(w, "int5") || !strcmp(w, "int6") || !strcmp(w, "int8")) {
        s->kind = QUANT_INT;
        s->bits = w[3] - '0';
    } else return -1;
    return 0;
}

static int spec_from(const QuantCfg *q, QuantSpec *s, Err *err, const char *where) {
    if (parse_weights(q->weights, s))
        return err_set(err, "config: %s.weights must be none, int4, int5, int6, int8 or ternary, got \"%s\"", where, q->weights);
    if (strcmp(q->scale_dtype, "fp32") && strcmp(q->scale_dtype, "fp16"))
        return err_set(err, "config: %s.scale_dtype must be fp32 or fp16", where);
    if (q->act_bits != 0 && q->act_bits != 8) return err_set(err, "config: %s.act_bits must be 0 or 8", where);
    if (q->clip_quantile <= 0 || q->clip_quantile > 1) return err_set(err, "config: %s.clip_quantile must be in (0, 1]", where);
    s->group = q->group;
    s->center = q->ternary_center;
    s->quantile = q->clip_quantile;
    s->scale_fp16 = !strcmp(q->scale_dtype, "fp16");
    s->act_bits = (int)q->act_bits;
    s->act_block = q->act_block;
    return 0;
}

int quant_plan_attach(Model *m, const cJSON *quant, const cJSON *exp, cJSON *rq, cJSON *rx, Err *err) {
    QuantCfg q = {.qat = 0, .embed = 1, .min_numel = 65536, .group = 128, .clip_quantile = 0.9999984,
                  .start_lr_frac = 0.3, .start_step = -1};
    strcpy(q.weights, "int5");
    strcpy(q.scale_dtype, "fp32");
    if (cfg_read(quant, "quant", kQuantFields, sizeof kQuantFields / sizeof kQuantFields[0], &q, err)) return -1;
    ExportCfg x = {.zstd_level = 22};
    strcpy(x.passthrough, "fp16");
    strcpy(x.ternary_packing, "2bit");
    if (cfg_read(exp, "export", kExportFields, sizeof kExportFields / sizeof kExportFields[0], &x, err)) return -1;
    if (strcmp(x.passthrough, "fp16") && strcmp(x.passthrough, "fp32")) return err_set(err, "config: export.passthrough must be fp16 or fp32");
    if (strcmp(x.ternary_packing, "2bit") && strcmp(x.ternary_packing, "base3"))
        return err_set(err, "config: export.ternary_packing must be 2bit or base3");
    QuantSpec dflt;
    if (spec_from(&q, &dflt, err, "quant")) return -1;
    const cJSON *rules = quant ? cJSON_GetObjectItemCaseSensitive(quant, "rules") : NULL;
    if (rules && !cJSON_IsArray(rules)) return err_set(err, "config: quant.rules must be an array");
    const cJSON *fp32m = exp ? cJSON_GetObjectItemCaseSensitive(exp, "fp32_match") : NULL;
    if (fp32m && !cJSON_IsArray(fp32m)) return err_set(err, "config: export.fp32_match must be an array of globs");

    QuantPlan *qp = xcalloc(1, sizeof *qp);
    qp->n = m->ps.n;
    qp->p = xcalloc(qp->n, sizeof(ParamPlan));
    qp->qat = q.qat;
    qp->start_lr_frac = q.start_lr_frac;
    qp->start_step = q.start_step;
    snprintf(qp->ternary_packing, sizeof qp->ternary_packing, "%s", x.ternary_packing);
    qp->zstd_level = (int)x.zstd_level;
    int rc = 0;
    for (size_t i = 0; i < m->ps.n && !rc; i++) {
        const Tensor *t = m->ps.t[i];
        ParamPlan *pp = &qp->p[i];
        QuantSpec spec = dflt;
        int matched = 0;
        int ri = 0;
        for (const cJSON *r = rules ? rules->child : NULL; r; r = r->next, ri++) {
            const cJSON *mt = cJSON_GetObjectItemCaseSensitive(r, "match");
            if (!cJSON_IsString(mt)) {
                rc = err_set(err, "config: quant.rules[%d] needs a string \"match\"", ri);
                break;
            }
            if (fnmatch(mt->valuestring, t->name, 0)) continue;
            QuantCfg rq2 = q;
            cJSON *copy = cJSON_Duplicate(r, 1);
            cJSON_DeleteItemFromObjectCaseSensitive(copy, "match");
            char where[64];
            snprintf(where, sizeof where, "quant.rules[%d]", ri);
            rc = cfg_read(copy, where, kQuantFields, sizeof kQuantFields / sizeof kQuantFields[0], &rq2, err);
            cJSON_Delete(copy);
            if (!rc) rc = spec_from(&rq2, &spec, err, where);
            matched = 1;
            break;
        }
        if (rc) break;
        /* control tensors (fp32_match) are never quantized, whatever their size */
        int keep32 = !strcmp(x.passthrough, "fp32"), control = 0;
        if (fp32m) {
            for (const cJSON *g = fp32m->child; g; g = g->next)
                if (cJSON_IsString(g) && !fnmatch(g->valuestring, t->name, 0)) control = 1;
        } else {
            for (size_t k = 0; k < sizeof kDefaultFp32 / sizeof kDefaultFp32[0]; k++)
                if (!fnmatch(kDefaultFp32[k], t->name, 0)) control = 1;
        }
        int is_embed = !strcmp(t->name, "tok_emb.weight");
        int eligible = !control && t->ndim == 2 && (matched || (t->numel > q.min_numel && (!is_embed || q.embed)));
        if (eligible && spec.kind != QUANT_NONE) {
            pp->store = STORE_QUANT;
            pp->spec = spec;
            continue;
        }
        keep32 |= control;
        pp->store = keep32 ? STORE_F32 : STORE_F16;
    }
    if (rc) {
        quant_plan_free(qp);
        xfree(qp);
        return -1;
    }
    if (rq) {
        cfg_write(rq, kQuantFields, sizeof kQuantFields / sizeof kQuantFields[0] - 1, &q);
        if (rules) cJSON_AddItemToObject(rq, "rules", cJSON_Duplicate(rules, 1));
    }
    if (rx) {
        cfg_write(rx, kExportFields, sizeof kExportFields / sizeof kExportFields[0] - 1, &x);
        cJSON *arr = cJSON_AddArrayToObject(rx, "fp32_match");
        if (fp32m) {
            for (const cJSON *g = fp32m->child; g; g = g->next) cJSON_AddItemToArray(arr, cJSON_Duplicate(g, 1));
        } else {
            for (size_t k = 0; k < sizeof kDefaultFp32 / sizeof kDefaultFp32[0]; k++)
                cJSON_AddItemToArray(arr, cJSON_CreateString(kDefaultFp32[k]));
        }
    }
    if (m->qplan) {
        quant_plan_free(m->qplan);
        xfree(m->qplan);
    }
    m->qplan = qp;
    m->qat_active = 0;
    return 0;
}

void quant_plan_free(QuantPlan *qp) {
    if (!qp) return;
    xfree(qp->p);
    qp->p = NULL;
}

int qat_update(Model *m, unsigned long long step, double lr_mult) {
    QuantPlan *qp = m->qplan;
    if (!qp || !qp->qat || m->qat_active) return 0;
    int by_step = qp->start_step >= 0 && step >= (unsigned long long)qp->start_step;
    int by_lr = qp->start_lr_frac > 0 && lr_mult < qp->start_lr_frac;
    if (by_step || by_lr) {
        m->qat_active = 1;
        return 1;
    }
    return 0;
}

void quant_plan_round_passthrough(Model *m) {
    if (!m->qplan) return;
    for (size_t i = 0; i < m->ps.n; i++)
        if (m->qplan->p[i].store == STORE_F16) {
            Tensor *t = m->ps.t[i];
            for (size_t k = 0; k < t->numel; k++) t->data[k] = f16_to_f32(f32_to_f16(t->data[k]));
        }
}

void quant_plan_bake(Model *m) {
    if (!m->qplan) return;
    size_t most = 0;
    for (size_t i = 0; i < m->ps.n; i++)
        if (m->qplan->p[i].store == STORE_QUANT && m->ps.t[i]->numel > most) most = m->ps.t[i]->numel;
    float *tmp = xmalloc((most ? most : 1) * sizeof(float));
    for (size_t i = 0; i < m->ps.n; i++) {
        const ParamPlan *pp = &m->qplan->p[i];
        Tensor *t = m->ps.t[i];
        if (pp->store != STORE_QUANT) continue;
        fake_quantize_weights(tmp, t->data, t->shape[0], t->shape[1], &pp->spec);
        memcpy(t->data, tmp, t->numel * sizeof(float));
    }
    xfree(tmp);
    m->qplan->qat = 0; /* baked: the forward needs no fake quantization of its own */
    m->qat_active = 0;
}

const char *store_name(const ParamPlan *pp, char *buf, size_t n) {
    if (pp->store == STORE_F32) snprintf(buf, n, "fp32");
    else if (pp->store == STORE_F16) snprintf(buf, n, "fp16");
    else if (pp->spec.kind == QUANT_TERNARY) snprintf(buf, n, "ternary/g%zu%s", pp->spec.group, pp->spec.act_bits ? "+a8" : "");
    else snprintf(buf, n, "int%d%s", pp->spec.bits, pp->spec.act_bits ? "+a8" : "");
    return buf;
}

static const ParamPlan *plan_of(const Model *m, const Tensor *W) {
    if (!m || !m->qat_active || !m->qplan || !W->is_param || (size_t)W->param_index >= m->qplan->n) return NULL;
    const ParamPlan *pp = &m->qplan->p[W->param_index];
    return pp->store == STORE_QUANT ? pp : NULL;
}

const QuantSpec *model_quant_spec(const Model *m, const Tensor *W) {
    const ParamPlan *pp = plan_of(m, W);
    return pp ? &pp->spec : NULL;
}

Tensor *model_weight(Model *m, Tape *tp, Tensor *W) {
    const ParamPlan *pp = plan_of(m, W);
    return pp ? op_fake_quant_weight(tp, W, &pp->spec) : W;
}

Tensor *model_linear(Model *m, Tape *tp, Tensor *x, Tensor *W, Tensor *b) {
    const ParamPlan *pp = plan_of(m, W);
    Tensor *fused = !pp && m && m->lora ? lora_apply(m, tp, x, W, b) : NULL; /* one op, [N, r] saved */
    if (fused) return fused;
    Tensor *delta = m && m->lora ? lora_delta(m, tp, x, W) : NULL; /* adapters see the float input */
    if (pp) {
        if (pp->spec.act_bits == 8) x = op_fake_quant_act(tp, x, pp->spec.act_block);
        W = op_fake_quant_weight(tp, W, &pp->spec);
    }
    Tensor *y = op_linear(tp, x, W, b);
    return delta ? op_add(tp, y, delta) : y;
}
