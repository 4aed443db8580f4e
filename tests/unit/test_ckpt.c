/* test_ckpt.c — activation checkpointing per layer (Model.checkpoint_blocks, train.checkpoint_blocks).
 *
 * For tiny gpt, trn_hybrid, hgru and chimera (G, X, E = MoE) models: two models built from the
 * same config and seed, one checkpointing, run the same training micro-steps; the loss, every
 * parameter gradient, the kinds' per-step counters (MoE load: the recompute must not count
 * tokens again) and train_forwards must be equal bit for bit (memcmp), and at a longer window
 * the activation memory (outer arena + the checkpoint tape's) must be lower with it. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "autodiff/tape.h"
#include "check.h"
#include "kernels/rng.h"
#include "model/lora.h"
#include "model/model.h"

static const char *kTargets[] = {"*.attn.c_q.weight", "*.attn.c_v.weight", "*.mlp.fc.weight"};

/* LoRA adapters with dropout (masks keyed by the training forward: the recompute must draw the
 * same ones) on a frozen base (the layers' inputs then need no gradient). */
static void attach_lora(Model *m) {
    Err err = {0};
    if (lora_attach(m, 2, kTargets, 3, 0, &err) < 0) printf("  lora_attach: %s\n", err.msg);
    lora_configure(m, 2.0f, 0.3f, 11);
    Rng rng;
    rng_seed(&rng, 5);
    lora_reset(m, &rng);
    for (size_t k = 0; k < m->lora->npairs; k++) rng_fill_uniform(&rng, m->lora->B[k]->data, m->lora->B[k]->numel, -0.2f, 0.2f);
    params_freeze(&m->ps);
}

static size_t grads_differ(const ParamStore *a, const ParamStore *b) {
    size_t diff = 0;
    for (size_t i = 0; i < a->total; i++) diff += memcmp(&a->grads[i], &b->grads[i], sizeof(float)) != 0;
    return diff;
}

static Model *make(const char *json, int ckpt) {
    cJSON *cfg = cJSON_Parse(json);
    Model *m = NULL;
    Err err = {0};
    if (model_create(&m, cfg, 777, &err)) printf("  model_create: %s\n", err.msg);
    cJSON_Delete(cfg);
    if (m) m->checkpoint_blocks = ckpt;
    return m;
}

/* One training micro-step from zero grads; returns the loss, leaves the grads in m->ps. */
static float step(Model *m, Tape *tp, const int32_t *x, const int32_t *y, size_t B, size_t T) {
    params_zero_grad(&m->ps);
    if (m->lora) params_zero_grad(&m->lora->ps);
    tape_reset(tp);
    Tensor *loss = model_loss(m, tp, x, y, B, T, NULL, 1);
    tape_backward(tp, loss);
    return loss->data[0];
}

static void compare(const char *name, const char *json, size_t B, size_t T, int lora) {
    printf("%s (B%zu T%zu)\n", name, B, T);
    Model *a = make(json, 0), *b = make(json, 1);
    CHECK(a && b, "model_create failed");
    if (!a || !b) return;
    if (lora) {
        attach_lora(a);
        attach_lora(b);
    }
    size_t n = B * T, V = a->vocab;
    int32_t *x = xmalloc(2 * n * sizeof(int32_t)), *y = x + n;
    Rng rng;
    rng_seed(&rng, 99);
    for (size_t i = 0; i < 2 * n; i++) x[i] = (int32_t)(rng_next(&rng) % V);
    Tape ta, tb;
    tape_init(&ta, 0);
    tape_init(&tb, 0);
    size_t ns_a, ns_b;
    float *sa = model_step_counts(a, &ns_a), *sb = model_step_counts(b, &ns_b);
    for (int it = 0; it < 3; it++) { /* the same counters over several forwards; warm-ups move */
        float la = step(a, &ta, x, y, B, T), lb = step(b, &tb, x, y, B, T);
        CHECK(memcmp(&la, &lb, sizeof la) == 0, "step %d: loss %.9g with checkpointing vs %.9g without", it, lb, la);
        const ParamStore *pa = lora ? &a->lora->ps : &a->ps, *pb = lora ? &b->lora->ps : &b->ps;
        size_t diff = grads_differ(pa, pb);
        double norm = params_grad_norm(pa);
        CHECK(diff == 0 && norm > 0, "step %d: %zu of %zu gradient values differ (norm %g)", it, diff, pa->total, norm);
        if (it == 0) printf("  loss %.6f, %zu gradient values (norm %.3g): %zu differ\n", la, pa->total, norm, diff);
    }
    CHECK(ns_a == ns_b && (!ns_a || memcmp(sa, sb, ns_a * sizeof(float)) == 0), "per-step counters differ");
    CHECK(a->train_forwards == b->train_forwards, "train_forwards %llu vs %llu", (unsigned long long)a->train_forwards,
          (unsigned long long)b->train_forwards);
    size_t hw_a = ta.arena.high_water, hw_b = tb.arena.high_water + model_ckpt_high_water(b);
    printf("  activation memory: %zu bytes without, %zu with (outer %zu + layer tape %zu)\n", hw_a, hw_b,
           tb.arena.high_water, model_ckpt_high_water(b));
    CHECK(hw_b < hw_a, "checkpointing did not lower the arena high-water (%zu vs %zu)", hw_b, hw_a);
    tape_free(&ta);
    tape_free(&tb);
    xfree(x);
    model_free(a);
    model_free(b);
}

/* Off the training path nothing changes: an eval (no-grad) forward never checkpoints. */
static void eval_unchanged(void) {
    const char *json = "{\"arch\":\"gpt\",\"vocab_size\":13,\"dim\":16,\"heads\":2,\"kv_heads\":1,\"layers\":3,\"seq_len\":16}";
    Model *a = make(json, 0), *b = make(json, 1);
    int32_t x[16];
    for (int i = 0; i < 16; i++) x[i] = (int32_t)((i * 7) % 13);
    Tape ta, tb;
    tape_init(&ta, 0);
    tape_init(&tb, 0);
    tape_no_grad_begin(&ta);
    tape_no_grad_begin(&tb);
    Tensor *za = model_logits(a, &ta, x, 1, 16), *zb = model_logits(b, &tb, x, 1, 16);
    CHECK(memcmp(za->data, zb->data, za->numel * sizeof(float)) == 0, "eval logits differ");
    CHECK(model_ckpt_high_water(b) == 0, "an eval forward used the checkpoint tape");
    printf("eval forward: logits equal, checkpoint tape unused\n");
    tape_free(&ta);
    tape_free(&tb);
    model_free(a);
    model_free(b);
}

int main(void) {
    compare("gpt 4 layers, skips, resid_mix",
            "{\"arch\":\"gpt\",\"vocab_size\":11,\"dim\":16,\"heads\":2,\"kv_heads\":1,\"layers\":4,\"seq_len\":64,"
            "\"zero_init_proj\":false,\"bigram_rows\":7,\"bigram_dim\":4}",
            2, 64, 0);
    compare("gpt 2 layers, LoRA dropout 0.3 on a frozen base",
            "{\"arch\":\"gpt\",\"vocab_size\":48,\"dim\":16,\"heads\":2,\"kv_heads\":1,\"layers\":2,\"seq_len\":64,"
            "\"zero_init_proj\":false}",
            2, 64, 1);
    compare("trn_hybrid TAT, readout warm-up",
            "{\"arch\":\"trn_hybrid\",\"layout\":\"TAT\",\"vocab_size\":11,\"dim\":8,\"heads\":2,\"kv_heads\":1,"
            "\"mlp_hidden\":8,\"swiglu_hidden\":6,\"oscillators\":3,\"seq_len\":64,\"zero_init_proj\":false,"
            "\"res_warmup\":5}",
            2, 64, 0);
    compare("hgru GgMm", "{\"arch\":\"hgru\",\"layout\":\"GgMm\",\"dim\":8,\"mlp_hidden\":6,\"vocab_size\":11,\"seq_len\":64,"
                         "\"zero_init_proj\":false,\"layers\":0}",
            2, 64, 0);
    compare("chimera GXE, MoE 4 experts top-2",
            "{\"arch\":\"chimera\",\"layout\":\"GXE\",\"vocab_size\":11,\"dim\":8,\"seq_len\":64,\"zero_init_proj\":false,"
            "\"gdn_heads\":2,\"gdn_head_dim\":3,\"swiglu_hidden\":6,\"moe_hidden\":5,\"moe_experts\":4,\"moe_topk\":2}",
            2, 64, 0);
    eval_unchanged();
    return test_summary("test_ckpt");
}
