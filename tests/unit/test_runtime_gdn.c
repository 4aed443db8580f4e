/* The chimera preset's Gated DeltaNet layers (G and S) through export and the runtime, without
 * training: random models (ternary g128 weights with int8 activations in blocks of 64 -- the
 * chimera seed's QAT -- int5 bit-packed, fp32 passthrough; d_v = d_k and 2 d_k; convolutions of
 * 4, 3 and none) exported in memory and loaded by the runtime. Checked:
 *   - the runtime's logits at every position of a 150-token window (prefill in three chunks)
 *     against the trainer's forward "as exported" (the chunkwise kernel; fake quantization on);
 *   - decode (one token at a time through the recurrent state and the convolution history) and
 *     uneven feeds give the prefill's logits, and every layer's state after the 150 tokens is the
 *     prefill's;
 *   - damaged gdn key/values are refused with one line. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "export/writer.h"
#include "kernels/rng.h"
#include "model/model.h"
#include "model/qat.h"
#include "rt_parity.h"

typedef struct Cfg {
    const char *name, *model, *quant, *exp;
} Cfg;

static const Cfg kCfgs[] = {
    {"ternary g128 + int8 act blocks of 64, GGS, 2 heads of 64, conv 4",
     "{\"vocab_size\":300,\"layout\":\"GGS\",\"dim\":128,\"seq_len\":160,\"gdn_heads\":2,\"swiglu_hidden\":256}",
     "{\"weights\":\"ternary\",\"group\":128,\"act_bits\":8,\"act_block\":64,\"min_numel\":1000,\"embed\":false}", "{}"},
    {"int5 bit-packed, GS, 4 heads of 32, dv = 2 dk, conv 3, chunk 16, untied",
     "{\"vocab_size\":280,\"layout\":\"GS\",\"dim\":128,\"seq_len\":160,\"gdn_heads\":4,\"gdn_head_dim\":32,\"gdn_expand_v\":2,"
     "\"gdn_conv\":3,\"gdn_chunk\":16,\"tie_embeddings\":false}",
     "{\"weights\":\"int5\",\"min_numel\":1000}", "{}"},
    {"no quantization, fp32 passthrough, G without convolution, recurrent kernel",
     "{\"vocab_size\":270,\"layout\":\"G\",\"dim\":64,\"seq_len\":160,\"gdn_head_dim\":16,\"gdn_conv\":0,\"gdn_kernel\":\"recurrent\"}",
     "{\"weights\":\"none\"}", "{\"passthrough\":\"fp32\"}"},
};

/* weights at the scales training keeps them: decays from fast to slow, strengths around 1/2 */
static void randomize_gdn(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < m->ps.n; i++) {
        Tensor *t = m->ps.t[i];
        const char *n = t->name;
        size_t cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
        if (strstr(n, "A_log")) {
            for (size_t j = 0; j < t->numel; j++) t->data[j] = logf(1.0f + 15.0f * (float)rng_uniform(&r));
        } else if (strstr(n, "dt_bias")) rng_fill_uniform(&r, t->data, t->numel, -6.0f, -2.0f);
        else if (strstr(n, "resid_mix")) rng_fill_uniform(&r, t->data, t->numel, 0.0f, 1.0f);
        else if (t->ndim == 1) rng_fill_uniform(&r, t->data, t->numel, 0.5f, 1.5f); /* scales, norms, skips */
        else if (strstr(n, "tok_emb") || strstr(n, "lm_head")) rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.5f);
        else rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.7f / sqrtf((float)cols));
    }
}

/* Damaged gdn key/values: refused with one line naming the artifact. */
static void test_damage(const uint8_t *art, size_t alen) {
    size_t clen;
    TernHeader h;
    uint8_t *c = rt_container_of(art, alen, &clen, &h), *b = malloc(clen);
    size_t hp = (size_t)h.hparams_off, hn = (size_t)h.hparams_size;
    struct {
        const char *what, *expect, *key;
        uint32_t v;
    } cases[] = {
        {"heads + 1", "the hyper-parameters need", "gdn.heads", 3},
        {"heads 0", "gdn.heads", "gdn.heads", 0},
        {"value dim 32", "the hyper-parameters need", "gdn.value_dim", 32},
        {"conv 3 (tensors of 4)", "the hyper-parameters need", "gdn.conv", 3},
        {"conv 0 (tensors left over)", "its layers use", "gdn.conv", 0},
        {"conv 17", "gdn.conv", "gdn.conv", 17},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(b, c, clen);
        uint32_t type = 0;
        size_t off = kv_value_off(c + hp, hn, cases[k].key, &type);
        if (!off) {
            CHECK(0, "%s: key %s not in the fixture", cases[k].what, cases[k].key);
            continue;
        }
        tern_wr_u32(b + hp + off, cases[k].v);
        TrtModel *m = NULL;
        RtErr e = {{0}};
        int rc = rt_load_container(&m, b, clen, "bad.tern", RT_ISA_SCALAR, 0, &e);
        CHECK(rc != 0 && strstr(e.msg, cases[k].expect) && !strchr(e.msg, '\n') && !strncmp(e.msg, "bad.tern: ", 10), "%s: %s",
              cases[k].what, e.msg);
        if (!rc) trt_model_free(m);
    }
    printf("  damaged gdn key/values: %zu cases, each refused with one line\n", sizeof cases / sizeof cases[0]);
    free(c);
    free(b);
}

/* every layer's mixer state of two sessions: the largest difference */
static double state_diff(const TrtSession *a, const TrtSession *b, size_t L, size_t *nfloats) {
    double w = 0;
    *nfloats = 0;
    for (size_t l = 0; l < L; l++) {
        size_t na, nb;
        const float *sa = rt_stack_mixer_state(a, l, &na), *sb = rt_stack_mixer_state(b, l, &nb);
        if (!sa || na != nb) return INFINITY;
        double d = max_diff(sa, sb, na);
        w = d > w ? d : w;
        *nfloats += na;
    }
    return w;
}

static void run_cfg(size_t ci, const size_t T) {
    const Cfg *cf = &kCfgs[ci];
    Err err = {0};
    cJSON *msec = cJSON_Parse(cf->model), *q = cJSON_Parse(cf->quant), *x = cJSON_Parse(cf->exp);
    cJSON_AddStringToObject(msec, "arch", "chimera");
    Model *m = NULL;
    uint8_t *art = NULL;
    size_t alen = 0;
    ExportReport rep = {0};
    cJSON *run = cJSON_CreateObject();
    if (model_create(&m, msec, 11 + ci, &err) || quant_plan_attach(m, q, x, NULL, NULL, &err)) {
        CHECK(0, "%s: %s", cf->name, err.msg);
        goto done;
    }
    randomize_gdn(m, 300 + ci);
    cJSON_AddItemToObject(run, "model", cJSON_Duplicate(m->config, 1));
    ExportOptions eo = {0};
    eo.zstd_level = 3;
    eo.tok_kind = TERN_TOK_BYTE;
    if (export_build(m, run, &eo, &art, &alen, &rep, &err)) {
        CHECK(0, "%s: export: %s", cf->name, err.msg);
        goto done;
    }
    TrtModel *rm = NULL;
    char emsg[512];
    TrtLoadOptions lopt = {getenv("TERN_PARITY_ISA"), 0, NULL};
    if (trt_model_load_memory(&rm, art, alen, cf->name, &lopt, emsg, sizeof emsg)) {
        CHECK(0, "%s: load: %s", cf->name, emsg);
        goto done;
    }
    CHECK(trt_model_info(rm)->params == model_num_params(m), "%s: parameter count", cf->name);
    /* the trainer's forward, as exported */
    int32_t ids[160];
    Rng r;
    rng_seed(&r, 9 + ci);
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)rng_below(&r, m->vocab);
    Tape tp;
    Tensor *z = logits_as_exported(m, &tp, ids, T);
    size_t V = m->vocab, L = trt_model_info(rm)->layers, nstate = 0;
    float *pre = malloc(T * V * sizeof(float)), *dec = malloc(T * V * sizeof(float)), *pcs = malloc(T * V * sizeof(float));
    TrtSessionOptions so = {1, 2, 0};
    TrtSession *s = NULL, *s2 = NULL;
    int ok = !trt_session_new(rm, &so, &s, emsg, sizeof emsg) && !trt_session_new(rm, &so, &s2, emsg, sizeof emsg);
    ok = ok && !trt_session_observe(s, ids, T, pre, emsg, sizeof emsg);
    CHECK(ok, "%s: session: %s", cf->name, emsg);
    double worst = max_diff(pre, z->data, T * V), dce = fabs(mean_ce(pre, ids, T, V) - mean_ce(z->data, ids, T, V));
    if (strstr(cf->quant, "act_bits\":8")) /* int8 activations: a value at a rounding boundary may take the other code */
        CHECK(dce < 5e-3, "%s: cross-entropy differs from the trainer's by %.3g", cf->name, dce);
    else
        CHECK(worst < 2e-4, "%s: logits differ from the trainer's by up to %.3g", cf->name, worst);
    for (size_t i = 0; i < T && ok; i++) {
        ok = !trt_session_observe(s2, ids + i, 1, NULL, emsg, sizeof emsg);
        memcpy(dec + i * V, trt_session_logits(s2), V * sizeof(float));
    }
    double wdec = max_diff(dec, pre, T * V), wst = state_diff(s, s2, L, &nstate);
    CHECK(ok && wdec < 1e-4, "%s: decode vs prefill max diff %.3g", cf->name, wdec);
    CHECK(nstate > 0 && wst < 1e-5, "%s: decode state vs prefill state max diff %.3g", cf->name, wst);
    const size_t lens[] = {37, 1, 1, 64, 5, 70, 2};
    trt_session_reset(s2);
    ok = ok && !feed_pieces(s2, ids, T, lens, sizeof lens / sizeof lens[0], pcs, V);
    double wpcs = max_diff(pcs, pre, T * V);
    CHECK(ok && wpcs < 1e-4, "%s: pieces vs prefill max diff %.3g", cf->name, wpcs);
    printf("  %-74s %7zu B  max|dlogit| %.1e, |dCE| %.1e (vs tern); decode vs prefill: logits %.1e, state %.1e (%zu floats); "
           "pieces %.1e  %s\n",
           cf->name, alen, worst, dce, wdec, wst, nstate, wpcs, trt_model_info(rm)->isa);
    if (ci == 0) test_damage(art, alen);
    trt_session_free(s);
    trt_session_free(s2);
    free(pre), free(dec), free(pcs);
    tape_free(&tp);
    trt_model_free(rm);
done:
    free(art);
    export_report_free(&rep);
    model_free(m);
    cJSON_Delete(run), cJSON_Delete(msec), cJSON_Delete(q), cJSON_Delete(x);
}

int main(void) {
    printf("test_runtime_gdn\n");
    for (size_t ci = 0; ci < sizeof kCfgs / sizeof kCfgs[0]; ci++) run_cfg(ci, 150);
    return test_summary("test_runtime_gdn");
}
