/* The mlstm block (chimera preset, X layers) through export and the runtime, without training:
 * random chimera models (ternary group 128 with int8 activations in blocks of 64 -- the seed's QAT
 * plan --, int5, and unquantized fp32; sigmoid and exponential forget gates; other conv and
 * block sizes) are exported in memory and loaded by the runtime. Checked:
 *   - the runtime's logits at every position of a 150-token window (prefill over three chunks of
 *     64) against the trainer's forward "as exported" (fake quantization on, fp16-stored tensors
 *     rounded: what `tern eval --quantized` computes, with the chunkwise form);
 *   - decode, one token at a time: every layer's state (memory, normaliser, stabiliser and the
 *     convolution's window) after N tokens equals the prefill's, bit for bit, for N at and
 *     across chunk boundaries; the logits agree; uneven feeds after a reset give the same;
 *   - damaged mlstm key/values are refused with one line. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check.h"
#include "export/writer.h"
#include "kernels/blas_core.h"
#include "kernels/rng.h"
#include "model/model.h"
#include "model/qat.h"
#include "runtime/rt_internal.h"
#include "rt_parity.h"

typedef struct Cfg {
    const char *name, *model, *quant, *exp;
} Cfg;

static const Cfg kCfgs[] = {
    {"ternary g128 + int8 act blocks of 64, XX, dim 128, heads of 32",
     "{\"vocab_size\":300,\"layout\":\"XX\",\"dim\":128,\"seq_len\":160,\"mlstm_head_dim\":32}",
     "{\"act_bits\":8,\"act_block\":64,\"weights\":\"ternary\",\"min_numel\":1000,\"group\":128}", "{}"},
    {"int5, XXX (skips), exp forget gate, conv 3, qkv_block 8",
     "{\"vocab_size\":270,\"layout\":\"XXX\",\"dim\":64,\"seq_len\":160,\"mlstm_head_dim\":64,\"mlstm_forget\":\"exp\","
     "\"mlstm_conv\":3,\"mlstm_qkv_block\":8}",
     "{\"weights\":\"int5\",\"min_numel\":1000}", "{}"},
    {"no quantization, fp32 passthrough, X, recurrent training form",
     "{\"vocab_size\":260,\"layout\":\"X\",\"dim\":64,\"seq_len\":160,\"mlstm_head_dim\":16,\"mlstm_form\":\"recurrent\"}",
     "{\"weights\":\"none\"}", "{\"passthrough\":\"fp32\"}"},
};

static void randomize_mlstm(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < m->ps.n; i++) {
        Tensor *t = m->ps.t[i];
        const char *n = t->name;
        size_t cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
        if (strstr(n, "resid_mix")) rng_fill_uniform(&r, t->data, t->numel, 0.0f, 1.0f);
        else if (strstr(n, "scale") || strstr(n, "skip")) rng_fill_uniform(&r, t->data, t->numel, 0.5f, 1.5f);
        else if (strstr(n, "gates.bias")) rng_fill_normal(&r, t->data, t->numel, 1.0f, 1.5f);
        else if (t->ndim == 1) rng_fill_normal(&r, t->data, t->numel, 0.0f, 1.0f);
        else if (strstr(n, "tok_emb") || strstr(n, "lm_head")) rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.5f);
        else rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.7f / sqrtf((float)cols));
    }
}

/* every layer's mixer state of two sessions, bit for bit */
static int same_states(const TrtSession *a, const TrtSession *b, size_t L) {
    for (size_t l = 0; l < L; l++) {
        size_t na, nb;
        const float *sa = rt_stack_mixer_state(a, l, &na), *sb = rt_stack_mixer_state(b, l, &nb);
        if (!sa || na != nb || memcmp(sa, sb, na * sizeof(float))) return 0;
    }
    return 1;
}

/* Decode token by token; at the checkpoints a fresh session prefills the same N tokens at once:
 * the states must be identical. Returns the decode logits in dec. */
static void decode_vs_prefill(const TrtModel *rm, const Cfg *cf, const int32_t *ids, size_t T, size_t V, size_t L, float *dec) {
    const size_t marks[] = {1, 63, 64, 65, 129, T};
    TrtSessionOptions so = {1, 2, 0};
    TrtSession *s = NULL;
    char emsg[512];
    int ok = !trt_session_new(rm, &so, &s, emsg, sizeof emsg), same = 1;
    size_t nm = 0;
    for (size_t i = 0; i < T && ok; i++) {
        ok = !trt_session_observe(s, ids + i, 1, NULL, emsg, sizeof emsg);
        memcpy(dec + i * V, trt_session_logits(s), V * sizeof(float));
        if (i + 1 == marks[nm]) {
            TrtSession *p = NULL;
            ok = ok && !trt_session_new(rm, &so, &p, emsg, sizeof emsg) && !trt_session_observe(p, ids, i + 1, NULL, emsg, sizeof emsg);
            same &= ok && same_states(s, p, L);
            trt_session_free(p);
            nm++;
        }
    }
    CHECK(ok && same && nm == sizeof marks / sizeof marks[0], "%s: decode state vs prefill state after N tokens (%s)", cf->name, emsg);
    trt_session_free(s);
}

/* damaged mlstm key/values: refused with one line */
static void test_damage(const uint8_t *art, size_t alen) {
    size_t clen = (size_t)ZSTD_getFrameContentSize(art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE);
    uint8_t *c = malloc(clen), *b = malloc(clen);
    CHECK(ZSTD_decompress(c, clen, art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE) == clen, "decompress");
    const char *keys[] = {"mlstm.heads", "mlstm.head_dim", "mlstm.qkv_block", "mlstm.norm_eps", "mlstm.conv"};
    const uint32_t vals[] = {5, 0, 7, 0xff800000u /* -inf */, 65};
    const char *expect[] = {"the hyper-parameters need", "mlstm.head_dim", "does not divide", "not finite", "mlstm.conv"};
    size_t n = 0;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        memcpy(b, c, clen);
        const uint8_t *hit = NULL;
        for (size_t o = 0; o + strlen(keys[k]) + 8 < clen && !hit; o++)
            if (!memcmp(c + o, keys[k], strlen(keys[k])) && tern_rd_u32(c + o - 4) == strlen(keys[k])) hit = c + o;
        if (!hit) {
            CHECK(0, "key %s not in the artifact", keys[k]);
            continue;
        }
        tern_wr_u32(b + (hit - c) + strlen(keys[k]) + 4, vals[k]);
        TrtModel *m = NULL;
        RtErr e = {{0}};
        int rc = rt_load_container(&m, b, clen, "bad.tern", RT_ISA_SCALAR, 0, &e);
        CHECK(rc != 0 && strstr(e.msg, expect[k]) && !strchr(e.msg, '\n'), "%s = %u: %s", keys[k], vals[k], e.msg);
        if (!rc) trt_model_free(m);
        n++;
    }
    printf("  damaged mlstm key/values: %zu cases, each refused with one line\n", n);
    free(c);
    free(b);
}

static void run_cfg(const Cfg *cf, size_t ci) {
    const size_t T = 150;
    Err err = {0};
    cJSON *msec = cJSON_Parse(cf->model), *q = cJSON_Parse(cf->quant), *x = cJSON_Parse(cf->exp);
    cJSON_AddStringToObject(msec, "arch", "chimera");
    Model *m = NULL;
    if (model_create(&m, msec, 11 + ci, &err) || quant_plan_attach(m, q, x, NULL, NULL, &err)) {
        CHECK(0, "%s: %s", cf->name, err.msg);
        return;
    }
    randomize_mlstm(m, 300 + ci);
    cJSON *run = cJSON_CreateObject();
    cJSON_AddItemToObject(run, "model", cJSON_Duplicate(m->config, 1));
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(run, "data"), "seq_len", 128);
    ExportOptions eo = {0};
    eo.zstd_level = 3;
    eo.tok_kind = TERN_TOK_BYTE;
    uint8_t *art = NULL;
    size_t alen = 0;
    ExportReport rep;
    TrtModel *rm = NULL;
    char emsg[512];
    TrtLoadOptions lopt = {getenv("TERN_PARITY_ISA"), 0, NULL};
    if (export_build(m, run, &eo, &art, &alen, &rep, &err) || trt_model_load_memory(&rm, art, alen, cf->name, &lopt, emsg, sizeof emsg)) {
        CHECK(0, "%s: export / load: %s %s", cf->name, err.msg, emsg);
        return;
    }
    CHECK(!strcmp(trt_model_info(rm)->arch, "chimera") && trt_model_info(rm)->params == model_num_params(m), "%s: info", cf->name);
    m->qat_active = 1;
    quant_plan_round_passthrough(m);
    int32_t ids[160];
    Rng r;
    rng_seed(&r, 9 + ci);
    for (size_t i = 0; i < T; i++) ids[i] = (int32_t)rng_below(&r, m->vocab);
    Tape tp;
    tape_init(&tp, 0);
    tape_no_grad_begin(&tp);
    Tensor *z = model_logits(m, &tp, ids, 1, T);
    tape_no_grad_end(&tp);
    size_t V = m->vocab, L = strlen(cJSON_GetObjectItem(m->config, "layout")->valuestring);
    float *pre = malloc(T * V * sizeof(float)), *dec = malloc(T * V * sizeof(float)), *pcs = malloc(T * V * sizeof(float));
    TrtSessionOptions so = {1, 2, 0};
    TrtSession *s = NULL;
    int ok = !trt_session_new(rm, &so, &s, emsg, sizeof emsg) && !trt_session_observe(s, ids, T, pre, emsg, sizeof emsg);
    CHECK(ok, "%s: session: %s", cf->name, emsg);
    double worst = max_diff(pre, z->data, T * V), dce = fabs(mean_ce(pre, ids, T, V) - mean_ce(z->data, ids, T, V));
    if (strstr(cf->quant, "act_bits\":8")) /* int8 activations: a value at a rounding boundary may take the other code */
        CHECK(dce < 5e-3, "%s: cross-entropy differs from the trainer's by %.3g", cf->name, dce);
    else
        CHECK(worst < 2e-4, "%s: logits differ from the trainer's by up to %.3g", cf->name, worst);
    decode_vs_prefill(rm, cf, ids, T, V, L, dec);
    double wdec = max_diff(dec, pre, T * V);
    CHECK(wdec == 0, "%s: decode vs prefill logits max diff %.3g", cf->name, wdec);
    trt_session_reset(s);
    static const size_t lens[] = {37, 1, 1, 64, 5, 70, 2};
    ok = !feed_pieces(s, ids, T, lens, sizeof lens / sizeof lens[0], pcs, V);
    double wpcs = max_diff(pcs, pre, T * V);
    CHECK(ok && wpcs == 0, "%s: pieces vs prefill max diff %.3g", cf->name, wpcs);
    printf("  %-66s %7zu B  max|dlogit| %.1e, |dCE| %.1e vs tern; decode = prefill (states and logits), pieces %.1e\n", cf->name, alen,
           worst, dce, wpcs);
    if (ci == 0) test_damage(art, alen);
    trt_session_free(s);
    free(pre), free(dec), free(pcs);
    tape_free(&tp);
    trt_model_free(rm);
    free(art);
    export_report_free(&rep);
    model_free(m);
    cJSON_Delete(run), cJSON_Delete(msec), cJSON_Delete(q), cJSON_Delete(x);
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    printf("test_runtime_mlstm\n");
    for (size_t ci = 0; ci < sizeof kCfgs / sizeof kCfgs[0]; ci++) run_cfg(&kCfgs[ci], ci);
    return test_summary("test_runtime_mlstm");
}
