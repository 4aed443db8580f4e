/* Llama-2 (Touvron et al., arXiv 2307.09288), as karpathy's llama2.c / llama.cpp run it (the
 * llama preset of the stack, model/presets.c, with its attention and glu kinds): token
 * embedding; per block x += Wo attn(rmsnorm(x) g_attn) with RoPE and grouped-query heads, then
 * x += W2 (silu(W1 h) * W3 h), h = rmsnorm(x) g_ffn; final rmsnorm with gain; logits = x Wout^T
 * (Wout tied to the embedding or its own). No biases, no softcap.
 *
 * RoPE: Meta's layout rotates adjacent pairs (x_2i, x_2i+1) by +t theta_i; tern's attention op
 * rotates (x_i, x_i+D/2) by -t theta_i. The two agree once the rows of Wq and Wk are permuted
 * within each head (even rows first, then the odd rows negated): `tern import` does that (see
 * train/cmd_import.c), and since q and k are transformed alike the scores are unchanged.
 * Checkpoints therefore hold the transformed matrices.
 * This file converts such a model into the GPT preset for the artifact format. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"

static size_t cfg_size(const cJSON *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsNumber(v) ? (size_t)v->valuedouble : 0;
}

static double cfg_num(const cJSON *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const Tensor *find(const Model *m, const char *fmt, size_t i) {
    char name[128];
    snprintf(name, sizeof name, fmt, i);
    const Tensor *t = params_find(&m->ps, name);
    TERN_CHECK(t != NULL, "llama_to_gpt: %s missing", name);
    return t;
}

/* a norm gain's values, or NULL when the model has none (norm_gain off) */
static const float *gain(const Model *m, const char *fmt, size_t i) {
    char name[128];
    snprintf(name, sizeof name, fmt, i);
    const Tensor *t = params_find(&m->ps, name);
    return t ? t->data : NULL;
}

/* The same function as a GPT (the gpt preset), for the artifact format and the runtime: no
 * embedding or q/k norm, identity residual mixing, q gains and scales 1, no skips, no softcap,
 * SwiGLU with fc = [W1; W3]; the RMSNorm gains are folded into the weights that read the normed
 * activations (rmsnorm(x) * g then W  ==  rmsnorm(x) then W diag(g)), so the head becomes
 * Wout diag(g_final) and is stored untied. Exact in real arithmetic; in float32 the products
 * differ by rounding only. */
int llama_to_gpt(const Model *lm, Model **out, Err *err) {
    *out = NULL;
    if (strcmp(lm->arch, "llama")) return err_set(err, "llama_to_gpt: model is %s, not llama", lm->arch);
    const cJSON *lc = lm->config;
    size_t vocab = cfg_size(lc, "vocab_size"), layers = cfg_size(lc, "layers"), C = cfg_size(lc, "dim"),
           Hd = cfg_size(lc, "hidden");
    int tied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(lc, "tie_embeddings"));
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "arch", "gpt");
    cJSON_AddNumberToObject(s, "vocab_size", (double)vocab);
    cJSON_AddNumberToObject(s, "layers", (double)layers);
    cJSON_AddNumberToObject(s, "dim", (double)C);
    cJSON_AddNumberToObject(s, "heads", (double)cfg_size(lc, "heads"));
    cJSON_AddNumberToObject(s, "kv_heads", (double)cfg_size(lc, "kv_heads"));
    cJSON_AddNumberToObject(s, "mlp_hidden", (double)Hd);
    cJSON_AddNumberToObject(s, "seq_len", (double)cfg_size(lc, "seq_len"));
    cJSON_AddStringToObject(s, "mlp_act", "swiglu");
    cJSON_AddNumberToObject(s, "softcap", 0);
    cJSON_AddNumberToObject(s, "rope_base", cfg_num(lc, "rope_base"));
    cJSON_AddNumberToObject(s, "norm_eps", cfg_num(lc, "norm_eps"));
    cJSON_AddNumberToObject(s, "qk_gain_init", 1);
    cJSON_AddBoolToObject(s, "tie_embeddings", 0);
    cJSON_AddBoolToObject(s, "skips", 0);
    cJSON_AddBoolToObject(s, "emb_norm", 0);
    cJSON_AddBoolToObject(s, "qk_norm", 0);
    Model *m = NULL;
    int rc = model_create(&m, s, 0, err);
    cJSON_Delete(s);
    if (rc) return -1;
    /* dst[r, :] = src[r, :] * gain (gain may be NULL) */
    #define COPY_SCALED(dst, src, rows, gain)                                        \
        for (size_t r_ = 0; r_ < (rows); r_++)                                      \
            for (size_t c_ = 0; c_ < C; c_++)                                        \
                (dst)[r_ * C + c_] = (src)[r_ * C + c_] * ((gain) ? (gain)[c_] : 1.0f)
    char name[128];
    Tensor *t;
    const Tensor *emb = find(lm, "tok_emb.weight", 0);
    memcpy(params_find(&m->ps, "tok_emb.weight")->data, emb->data, emb->numel * sizeof(float));
    const Tensor *head = tied ? emb : find(lm, "output.weight", 0);
    t = params_find(&m->ps, "lm_head.weight");
    COPY_SCALED(t->data, head->data, vocab, gain(lm, "norm.weight", 0));
    for (size_t i = 0; i < layers; i++) {
        const float *ga = gain(lm, "blocks.%zu.attn_norm.weight", i), *gf = gain(lm, "blocks.%zu.ffn_norm.weight", i);
        const Tensor *wq = find(lm, "blocks.%zu.attn.wq.weight", i), *wk = find(lm, "blocks.%zu.attn.wk.weight", i),
                     *wv = find(lm, "blocks.%zu.attn.wv.weight", i), *wo = find(lm, "blocks.%zu.attn.wo.weight", i),
                     *w1 = find(lm, "blocks.%zu.ffn.w1.weight", i), *w2 = find(lm, "blocks.%zu.ffn.w2.weight", i),
                     *w3 = find(lm, "blocks.%zu.ffn.w3.weight", i);
#define DST(nm) (snprintf(name, sizeof name, "blocks.%zu.%s", i, nm), params_find(&m->ps, name))
        t = DST("attn.c_q.weight");
        COPY_SCALED(t->data, wq->data, wq->shape[0], ga);
        t = DST("attn.c_k.weight");
        COPY_SCALED(t->data, wk->data, wk->shape[0], ga);
        t = DST("attn.c_v.weight");
        COPY_SCALED(t->data, wv->data, wv->shape[0], ga);
        memcpy(DST("attn.proj.weight")->data, wo->data, wo->numel * sizeof(float));
        t = DST("mlp.fc.weight");
        COPY_SCALED(t->data, w1->data, Hd, gf);
        COPY_SCALED(t->data + Hd * C, w3->data, Hd, gf);
        memcpy(DST("mlp.proj.weight")->data, w2->data, w2->numel * sizeof(float));
        Tensor *v;
        v = DST("attn.q_gain");
        for (size_t j = 0; j < v->numel; j++) v->data[j] = 1.0f;
        v = DST("attn_scale");
        for (size_t j = 0; j < v->numel; j++) v->data[j] = 1.0f;
        v = DST("mlp_scale");
        for (size_t j = 0; j < v->numel; j++) v->data[j] = 1.0f;
        v = DST("resid_mix");
        for (size_t j = 0; j < C; j++) v->data[j] = 1.0f, v->data[C + j] = 0.0f;
#undef DST
    }
#undef COPY_SCALED
    *out = m;
    return 0;
}
