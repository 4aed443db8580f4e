/* Quantization-aware training: with QAT on, the forward and every gradient are exactly those of
 * the model whose planned weights were replaced by their quantize-dequantize values (the
 * straight-through estimator), for the GPT and the TRN hybrid, int5 and ternary; the plan puts
 * each tensor where the config says; the late switch turns on when the LR multiplier drops
 * below the threshold (and stays on). */
#include <cjson/cJSON.h>
#include <string.h>

#include "check.h"
#include "kernels/blas_core.h"
#include "model/model.h"
#include "model/qat.h"

static Model *make(const char *json) {
    cJSON *cfg = cJSON_Parse(json);
    Model *m = NULL;
    Err err = {0};
    if (model_create(&m, cfg, 99, &err)) printf("  model_create: %s\n", err.msg);
    cJSON_Delete(cfg);
    return m;
}

static int attach(Model *m, const char *quant, const char *exp) {
    cJSON *q = cJSON_Parse(quant), *x = exp ? cJSON_Parse(exp) : NULL;
    Err err = {0};
    int rc = quant_plan_attach(m, q, x, NULL, NULL, &err);
    if (rc) printf("  quant_plan_attach: %s\n", err.msg);
    cJSON_Delete(q);
    cJSON_Delete(x);
    return rc;
}

static void ste_case(const char *name, const char *model_json, const char *quant_json) {
    Model *a = make(model_json), *b = make(model_json);
    if (!a || !b || attach(a, quant_json, NULL)) {
        g_failures++;
        return;
    }
    int32_t x[24], y[24];
    for (int i = 0; i < 24; i++) {
        x[i] = (i * 5 + 1) % 30;
        y[i] = (i * 11 + 3) % 30;
    }
    size_t nq = 0;
    for (size_t i = 0; i < b->ps.n; i++) {
        const ParamPlan *pp = &a->qplan->p[i];
        if (pp->store != STORE_QUANT) continue;
        Tensor *t = b->ps.t[i];
        fake_quantize_weights(t->data, t->data, t->shape[0], t->shape[1], &pp->spec);
        nq++;
    }
    a->qat_active = 1;
    Tape tp;
    tape_init(&tp, 0);
    params_zero_grad(&a->ps);
    Tensor *la = model_loss(a, &tp, x, y, 2, 12, NULL, 0);
    tape_backward(&tp, la);
    float lossa = la->data[0];
    tape_reset(&tp);
    params_zero_grad(&b->ps);
    Tensor *lb = model_loss(b, &tp, x, y, 2, 12, NULL, 0);
    tape_backward(&tp, lb);
    int same_grads = memcmp(a->ps.grads, b->ps.grads, a->ps.total * sizeof(float)) == 0;
    printf("  %-34s %zu of %zu tensors quantized; loss %.7f vs %.7f; gradients %s\n", name, nq, a->ps.n, lossa, lb->data[0],
           same_grads ? "bit-identical" : "DIFFER");
    CHECK(nq > 0 && lossa == lb->data[0] && same_grads, "%s: QAT forward/backward differs from the quantized model", name);
    tape_free(&tp);
    model_free(a);
    model_free(b);
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    printf("QAT = the quantized model, with straight-through gradients\n");
    const char *gpt = "{\"arch\":\"gpt\",\"vocab_size\":30,\"layers\":3,\"dim\":16,\"heads\":2,\"kv_heads\":1,\"seq_len\":16,"
                      "\"zero_init_proj\":false,\"embed_init_std\":0.3}";
    const char *trn = "{\"arch\":\"trn_hybrid\",\"vocab_size\":30,\"layout\":\"TAT\",\"dim\":16,\"heads\":2,\"kv_heads\":1,"
                      "\"oscillators\":4,\"mlp_hidden\":32,\"swiglu_hidden\":16,\"bigram_rows\":11,\"bigram_dim\":8,\"seq_len\":16,"
                      "\"zero_init_proj\":false,\"embed_init_std\":0.3}";
    ste_case("gpt int5 (all matrices)", gpt, "{\"qat\":true,\"weights\":\"int5\",\"min_numel\":0}");
    ste_case("gpt ternary g8 fp16 scales", gpt, "{\"qat\":true,\"weights\":\"ternary\",\"group\":8,\"scale_dtype\":\"fp16\",\"min_numel\":0}");
    ste_case("gpt int6 attention / int4 rest", gpt,
             "{\"qat\":true,\"weights\":\"int4\",\"min_numel\":0,\"rules\":[{\"match\":\"*attn*\",\"weights\":\"int6\"}]}");
    ste_case("trn_hybrid int5 (all matrices)", trn, "{\"qat\":true,\"weights\":\"int5\",\"min_numel\":0}");

    printf("the plan of the default baseline (int5, > 65,536 weights)\n");
    Model *m = make("{\"arch\":\"gpt\"}");
    attach(m, "{\"weights\":\"int5\"}", NULL);
    size_t counts[3] = {0};
    for (size_t i = 0; i < m->ps.n; i++) counts[m->qplan->p[i].store]++;
    printf("  %zu int5, %zu fp16, %zu fp32 tensors\n", counts[STORE_QUANT], counts[STORE_F16], counts[STORE_F32]);
    CHECK(counts[STORE_QUANT] == 9 * 6 + 1, "quantized tensors: %zu", counts[STORE_QUANT]);
    long qg = params_index(&m->ps, "blocks.0.attn.q_gain"), rm = params_index(&m->ps, "blocks.0.resid_mix");
    CHECK(m->qplan->p[qg].store == STORE_F32 && m->qplan->p[rm].store == STORE_F32, "control tensors must stay fp32");
    attach(m, "{\"weights\":\"int5\",\"embed\":false}", "{\"passthrough\":\"fp16\",\"fp32_match\":[]}");
    long te = params_index(&m->ps, "tok_emb.weight");
    CHECK(m->qplan->p[te].store == STORE_F16 && m->qplan->p[qg].store == STORE_F16, "embed:false keeps the embedding fp16");

    printf("late QAT switch\n");
    attach(m, "{\"qat\":true,\"start_lr_frac\":0.3}", NULL);
    int s1 = qat_update(m, 10, 1.0), s2 = qat_update(m, 11, 0.5), s3 = qat_update(m, 12, 0.29), s4 = qat_update(m, 13, 1.0);
    printf("  lr 1.0 -> %d, 0.5 -> %d, 0.29 -> %d (on), back to 1.0 -> stays %s\n", s1, s2, s3, m->qat_active ? "on" : "OFF");
    CHECK(!s1 && !s2 && s3 && !s4 && m->qat_active, "switch");
    attach(m, "{\"qat\":true,\"start_step\":5,\"start_lr_frac\":0}", NULL);
    CHECK(!qat_update(m, 4, 0.1) && qat_update(m, 5, 1.0), "start_step");
    attach(m, "{\"qat\":false,\"start_step\":0}", NULL);
    CHECK(!qat_update(m, 100, 0.0) && !m->qat_active, "qat:false never switches on");

    printf("bad quant config\n");
    cJSON *bad = cJSON_Parse("{\"weights\":\"int3\"}");
    Err err = {0};
    CHECK(quant_plan_attach(m, bad, NULL, NULL, NULL, &err) != 0 && strstr(err.msg, "quant.weights"), "int3 accepted");
    printf("  %s\n", err.msg);
    cJSON_Delete(bad);
    model_free(m);
    return test_summary("test_qat");
}
