/* rt_parity.h — the export -> runtime round trip the runtime tests share: a model of a config
 * with random weights is exported in memory (export/writer.c) and loaded by the runtime, and
 * the runtime's logits are checked against the trainer's forward "as exported" (fake quantization
 * on, fp16-stored tensors rounded: what `tern eval --quantized` computes) over a window of T
 * tokens (batched prefill over several chunks), then one token at a time (decode, through the
 * session's state) and in uneven pieces after a reset. Header-only: each test includes it once. */
#ifndef TERN_TEST_RT_PARITY_H
#define TERN_TEST_RT_PARITY_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check.h"
#include "export/writer.h"
#include "kernels/rng.h"
#include "model/model.h"
#include "model/qat.h"
#include "runtime/rt_internal.h"

typedef struct ParityCfg {
    const char *name, *arch, *model, *quant, *exp;
    int int_storage; /* ExportIntStorage */
    const char *fixture;
} ParityCfg;

/* What a case leaves for further checks (parity_done frees it). */
typedef struct ParityRun {
    Model *m;
    TrtModel *rm;
    uint8_t *art;
    size_t alen;
    ExportReport rep;
    int have_rep;
    int32_t ids[512];
    size_t T;
} ParityRun;

static inline void randomize(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < m->ps.n; i++) {
        Tensor *t = m->ps.t[i];
        const char *n = t->name;
        size_t cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
        if (strstr(n, "q_gain")) rng_fill_uniform(&r, t->data, t->numel, 1.0f, 2.0f);
        else if (strstr(n, "resid_mix")) rng_fill_uniform(&r, t->data, t->numel, 0.0f, 1.0f);
        else if (strstr(n, "scale") || strstr(n, "skip_weights")) rng_fill_uniform(&r, t->data, t->numel, 0.5f, 1.5f);
        else if (strstr(n, "lambda_pcg")) rng_fill_uniform(&r, t->data, t->numel, 0.5f, 2.0f);
        else if (strstr(n, "omega_base")) rng_fill_uniform(&r, t->data, t->numel, 0.05f, 2.5f);
        else if (t->ndim == 1) rng_fill_normal(&r, t->data, t->numel, 0.0f, 1.0f); /* biases, token_shift_mu */
        else if (strstr(n, "tok_emb") || strstr(n, "lm_head") || strstr(n, "bigram.embed")) rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.5f);
        else rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.7f / sqrtf((float)cols));
    }
}

/* cross-entropy of the next token at every position, averaged: what evaluation measures */
static inline double mean_ce(const float *z, const int32_t *ids, size_t T, size_t V) {
    double s = 0;
    for (size_t i = 0; i + 1 < T; i++) {
        const float *l = z + i * V;
        double mx = -1e30, sum = 0;
        for (size_t v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        for (size_t v = 0; v < V; v++) sum += exp(l[v] - mx);
        s += mx + log(sum) - l[ids[i + 1]];
    }
    return s / (double)(T - 1);
}

static inline double max_diff(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= w)) w = d; /* NaN counts as the worst */
    }
    return w;
}

/* Feeds ids in pieces of the given lengths (cycled); logits of every position into out. */
static inline int feed_pieces(TrtSession *s, const int32_t *ids, size_t T, const size_t *len, size_t nlen, float *out, size_t V) {
    char err[256];
    size_t i = 0, k = 0;
    while (i < T) {
        size_t n = len[k++ % nlen];
        if (n > T - i) n = T - i;
        if (trt_session_observe(s, ids + i, n, out + i * V, err, sizeof err)) {
            printf("    observe: %s\n", err);
            return -1;
        }
        i += n;
    }
    return 0;
}

/* Builds, exports and loads the case's model (random weights from seed); NULL members on failure. */
static inline int parity_build(ParityRun *pr, const ParityCfg *cf, uint64_t seed, const char *fixdir) {
    memset(pr, 0, sizeof *pr);
    Err err = {0};
    cJSON *msec = cJSON_Parse(cf->model), *q = cJSON_Parse(cf->quant), *x = cJSON_Parse(cf->exp), *run = NULL;
    cJSON_AddStringToObject(msec, "arch", cf->arch);
    int rc = model_create(&pr->m, msec, seed, &err) || quant_plan_attach(pr->m, q, x, NULL, NULL, &err);
    if (!rc) {
        randomize(pr->m, 200 + seed);
        run = cJSON_CreateObject();
        cJSON_AddItemToObject(run, "model", cJSON_Duplicate(pr->m->config, 1));
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(run, "data"), "seq_len", 128);
        ExportOptions eo = {0};
        eo.zstd_level = 3;
        eo.tok_kind = pr->m->vocab >= 259 ? TERN_TOK_BYTE : TERN_TOK_NONE;
        eo.int_storage = cf->int_storage;
        rc = export_build(pr->m, run, &eo, &pr->art, &pr->alen, &pr->rep, &err);
        pr->have_rep = !rc;
    }
    char emsg[512] = "";
    TrtLoadOptions lopt = {getenv("TERN_PARITY_ISA"), 0, NULL};
    if (!rc && trt_model_load_memory(&pr->rm, pr->art, pr->alen, cf->name, &lopt, emsg, sizeof emsg)) rc = -1;
    CHECK(!rc, "%s: %s%s", cf->name, err.msg, emsg);
    if (!rc && fixdir && cf->fixture) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", fixdir, cf->fixture);
        if (export_write_file(path, pr->art, pr->alen, &err)) printf("  cannot write %s: %s\n", path, err.msg);
    }
    cJSON_Delete(run);
    cJSON_Delete(msec);
    cJSON_Delete(q);
    cJSON_Delete(x);
    return rc ? -1 : 0;
}

/* The trainer's logits of one window "as exported": fake quantization on, fp16-stored tensors
 * rounded (what `tern eval --quantized` computes); tp is initialised here. */
static inline Tensor *logits_as_exported(Model *m, Tape *tp, const int32_t *ids, size_t T) {
    m->qat_active = 1;
    quant_plan_round_passthrough(m);
    tape_init(tp, 0);
    tape_no_grad_begin(tp);
    Tensor *z = model_logits(m, tp, ids, 1, T);
    tape_no_grad_end(tp);
    return z;
}

/* The trainer's logits "as exported" against the runtime's prefill, decode and uneven pieces
 * over T random tokens. Returns the worst prefill difference. */
static inline double parity_logits(ParityRun *pr, const ParityCfg *cf, size_t T, uint64_t seed) {
    Model *m = pr->m;
    Rng r;
    rng_seed(&r, seed);
    pr->T = T;
    for (size_t i = 0; i < T; i++) pr->ids[i] = (int32_t)rng_below(&r, m->vocab);
    if (T > 42) pr->ids[40] = pr->ids[41] = pr->ids[42]; /* a repeated token: BigramHash's (t, t) bucket */
    Tape tp;
    Tensor *z = logits_as_exported(m, &tp, pr->ids, T);
    size_t V = m->vocab;
    float *pre = malloc(T * V * sizeof(float)), *dec = malloc(T * V * sizeof(float)), *pcs = malloc(T * V * sizeof(float));
    char emsg[512] = "";
    TrtSessionOptions so = {1, 2, 0};
    TrtSession *s = NULL, *s2 = NULL;
    int ok = !trt_session_new(pr->rm, &so, &s, emsg, sizeof emsg) && !trt_session_new(pr->rm, &so, &s2, emsg, sizeof emsg);
    ok = ok && !trt_session_observe(s, pr->ids, T, pre, emsg, sizeof emsg);
    CHECK(ok, "%s: session: %s", cf->name, emsg);
    double worst = max_diff(pre, z->data, T * V);
    double ce_rt = mean_ce(pre, pr->ids, T, V), ce_fw = mean_ce(z->data, pr->ids, T, V), dce = fabs(ce_rt - ce_fw);
    if (strstr(cf->quant, "act_bits\":8")) /* int8 activations: a value within rounding of a .5 boundary may take the other code */
        CHECK(dce < 5e-3, "%s: cross-entropy %.6f vs the trainer's %.6f", cf->name, ce_rt, ce_fw);
    else
        CHECK(worst < 2e-4, "%s: logits differ from the trainer's by up to %.3g", cf->name, worst);
    for (size_t i = 0; i < T && ok; i++) { /* decode: one token at a time through the session's state */
        ok = !trt_session_observe(s2, pr->ids + i, 1, NULL, emsg, sizeof emsg);
        memcpy(dec + i * V, trt_session_logits(s2), V * sizeof(float));
    }
    double wdec = max_diff(dec, pre, T * V);
    CHECK(ok && wdec < 1e-4, "%s: decode vs prefill max diff %.3g", cf->name, wdec);
    const size_t lens[] = {37, 1, 1, 64, 5, 70, 2}; /* across chunk boundaries, after a reset of a used session */
    trt_session_reset(s2);
    ok = ok && !feed_pieces(s2, pr->ids, T, lens, sizeof lens / sizeof lens[0], pcs, V);
    double wpcs = max_diff(pcs, pre, T * V);
    CHECK(ok && wpcs < 1e-4, "%s: pieces 37+1+1+64+5+... vs prefill max diff %.3g", cf->name, wpcs);
    printf("  %-86s %7zu B  max|dlogit| %.1e, |dCE| %.1e (prefill vs tern); decode vs prefill %.1e, pieces %.1e  %s\n", cf->name,
           pr->alen, worst, dce, wdec, wpcs, trt_model_info(pr->rm)->isa);
    trt_session_free(s);
    trt_session_free(s2);
    free(pre), free(dec), free(pcs);
    tape_free(&tp);
    return worst;
}

/* Offset of key's value in an encoded key/value section (the bytes after its type), 0 if absent. */
static inline size_t kv_value_off(const uint8_t *p, size_t len, const char *key, uint32_t *type) {
    size_t o = 4, n = tern_rd_u32(p);
    for (size_t i = 0; i < n && o + 4 <= len; i++) {
        size_t kl = tern_rd_u32(p + o);
        int hit = kl == strlen(key) && !memcmp(p + o + 4, key, kl);
        o += 4 + kl;
        uint32_t t = tern_rd_u32(p + o);
        o += 4;
        if (hit) {
            *type = t;
            return o;
        }
        o += t == TERN_KV_STR ? 4 + tern_rd_u32(p + o) : 4;
    }
    return 0;
}

/* The decompressed container of an artifact (malloc'd) and its length. */
static inline uint8_t *parity_container(const uint8_t *art, size_t alen, size_t *clen) {
    *clen = (size_t)ZSTD_getFrameContentSize(art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE);
    uint8_t *c = malloc(*clen);
    CHECK(ZSTD_decompress(c, *clen, art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE) == *clen, "decompress");
    return c;
}

/* The container of an artifact (malloc'd, *clen bytes) and its decoded header. */
static inline uint8_t *rt_container_of(const uint8_t *art, size_t alen, size_t *clen, TernHeader *h) {
    uint8_t *c = parity_container(art, alen, clen);
    memset(h, 0, sizeof *h);
    tern_header_decode(c, h);
    return c;
}

static inline void parity_done(ParityRun *pr) {
    if (pr->have_rep) export_report_free(&pr->rep);
    trt_model_free(pr->rm);
    free(pr->art);
    model_free(pr->m);
    memset(pr, 0, sizeof *pr);
}

#endif
