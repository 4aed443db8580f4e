#include "train/lora_ft.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/ops.h"
#include "model/lora.h"
#include "model/qat.h"
#include "train/checkpoint.h"

int lora_open_base(Model *m, const char *path, const char *expect, char hash_out[17], Err *err) {
    if (checkpoint_load(path, &m->ps, NULL, NULL, NULL, NULL, err)) return err_prefix(err, "train.lora.base");
    snprintf(hash_out, 17, "%016llx", (unsigned long long)lora_params_hash(&m->ps));
    if (expect && expect[0] && strcmp(expect, hash_out))
        return err_set(err, "train.lora.base %s: its parameters hash to %s, the LoRA run was trained on base %s (a different "
                            "or modified checkpoint)", path, hash_out, expect);
    return 0;
}

int lora_setup(Model *m, const LoraConfig *lc, uint64_t seed, Err *err) {
    const char *globs[LORA_MAX_TARGETS];
    for (size_t i = 0; i < lc->ntargets; i++) globs[i] = lc->targets[i];
    int n = lora_attach(m, lc->rank, globs, lc->ntargets, 0, err);
    if (n < 0) return -1;
    if (n == 0) {
        lora_detach(m);
        return err_set(err, "config: train.lora.targets (\"%s\"%s) match no 2-D parameter of this %s model", globs[0],
                       lc->ntargets > 1 ? ", ..." : "", m->arch);
    }
    lora_configure(m, (float)(lc->alpha / (double)lc->rank), (float)lc->dropout, seed);
    Rng rng;
    rng_seed(&rng, seed ^ 0x4c6f5241ull);
    lora_reset(m, &rng);
    return 0;
}

int lora_check_targets(Model *m, Err *err) {
    Lora *L = m->lora;
    size_t T = m->max_seq_len < 8 ? m->max_seq_len : 8;
    int32_t idx[8] = {0}, tgt[8] = {0};
    for (size_t i = 0; i < T; i++) idx[i] = tgt[i] = (int32_t)(i % m->vocab);
    Tape tp;
    tape_init(&tp, 0);
    uint64_t forwards = m->train_forwards;
    /* B is zero in a fresh adapter, so A gets no gradient yet; B's gradient is (x A^T)^T g */
    Tensor *loss = model_loss(m, &tp, idx, tgt, 1, T, NULL, 0);
    tape_backward(&tp, loss);
    m->train_forwards = forwards;
    int rc = 0;
    for (size_t k = 0; k < L->npairs && !rc; k++) {
        const Tensor *B = L->B[k];
        int any = 0;
        for (size_t i = 0; i < B->numel && !any; i++) any = B->grad[i] != 0.0f;
        if (!any) /* "lora.<name>.B" -> "<name>" */
            rc = err_set(err, "config: train.lora.targets: %.*s is not applied as a linear layer (embedding, tied head or a "
                              "kind's own op), an adapter on it would never train", (int)(strlen(B->name) - 7), B->name + 5);
    }
    tape_free(&tp);
    params_zero_grad(&L->ps);
    return rc;
}

int lora_config_of(const cJSON *root, LoraConfig *lc, int *is_lora, Err *err) {
    const cJSON *train = cJSON_GetObjectItemCaseSensitive(root, "train");
    const cJSON *sec = cJSON_IsObject(train) ? cJSON_GetObjectItemCaseSensitive(train, "lora") : NULL;
    if (runconfig_read_lora(sec, lc, err)) return -1;
    *is_lora = lc->enabled;
    return 0;
}

int lora_load_checkpoint(Model *m, const char *ckpt, const cJSON *root, const char *base_override, int use_ema, Err *err) {
    LoraConfig lc;
    int is_lora = 0;
    if (lora_config_of(root, &lc, &is_lora, err)) return err_prefix(err, "%s: stored config", ckpt);
    if (!is_lora) return err_set(err, "%s: not a LoRA checkpoint (its config has no train.lora)", ckpt);
    if (!lc.base_hash[0]) return err_set(err, "%s: stored config: train.lora.base_hash is missing", ckpt);
    char hash[17];
    if (lora_open_base(m, base_override ? base_override : lc.base, lc.base_hash, hash, err)) return -1;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quant");
    const cJSON *qat = cJSON_IsObject(q) ? cJSON_GetObjectItemCaseSensitive(q, "qat") : NULL;
    if (cJSON_IsTrue(qat)) { /* the base the adapters were trained on */
        if (quant_plan_attach(m, q, cJSON_GetObjectItemCaseSensitive(root, "export"), NULL, NULL, err))
            return err_prefix(err, "%s", ckpt);
        quant_plan_bake(m);
    }
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (lora_setup(m, &lc, cJSON_IsNumber(seed) ? (uint64_t)seed->valuedouble : 0, err)) return err_prefix(err, "%s", ckpt);
    if (checkpoint_load(ckpt, &m->lora->ps, NULL, NULL, NULL, NULL, err)) return -1;
    int found = 0;
    if (use_ema && checkpoint_read_ema(ckpt, m->lora->ps.values, m->lora->ps.total, &found, err)) return -1;
    return 0;
}
