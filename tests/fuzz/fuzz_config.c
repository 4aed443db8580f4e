/* libFuzzer target: the JSON run-config resolver (kernels/jsoncfg.c, train/runconfig.c) and
 * the sections read when a run is built: the model (model_create, for models small enough to
 * build: fz_model_section_small), quantization / export plans, optimizer groups and rules, MeZO.
 * The input is a config file's text and up to 8 --set assignments (after a split point, one per
 * line). What must hold besides no crash, leak or undefined behaviour:
 *   - every error is one line;
 *   - a built model's resolved section rebuilds a model with the same parameters;
 *   - the resolved config of a run that builds (what config.json and every checkpoint store)
 *     reads back, and resolves to the same values again. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/qat.h"
#include "optim/optimizer.h"
#include "train/runconfig.h"
#include "tests/fuzz/fuzz_common.h"

static int build_run(RunConfig *rc);

/* The resolved tree must read back, resolve to the same values and build again. */
static void check_resolved_rereads(RunConfig *rc) {
    runconfig_resolve(rc);
    char *text = cJSON_PrintUnformatted(rc->root);
    RunConfig again;
    Err err;
    cJSON *copy = cJSON_Parse(text);
    FZ_ASSERT(copy, "the resolved config is not JSON: %s", text);
    int r = runconfig_from_json(&again, copy, &err);
    FZ_ASSERT(r == 0, "the resolved config does not read back: %s\n%s", err.msg, text);
    runconfig_resolve(&again);
    if (!cJSON_Compare(rc->root, again.root, 1)) { /* key order may change, values may not */
        char *text2 = cJSON_PrintUnformatted(again.root);
        fz_fail(__FILE__, __LINE__, "resolving twice changed the config:\n%s\n%s", text, text2);
    }
    FZ_ASSERT(build_run(&again) != 0, "the saved config of a run that builds is refused:\n%s", text);
    free(text);
    runconfig_free(&again);
}

static void check_same_params(const Model *a, const Model *b) {
    FZ_ASSERT(a->ps.n == b->ps.n && a->ps.total == b->ps.total, "the resolved model section builds another model");
    for (size_t i = 0; i < a->ps.n; i++) {
        const Tensor *x = a->ps.t[i], *y = b->ps.t[i];
        FZ_ASSERT(!strcmp(x->name, y->name) && tensor_same_shape(x, y), "parameter %s differs after resolving", x->name);
    }
}

/* Replaces root's section `key` by `value` (taken over), as the trainer stores resolved ones. */
static void replace_section(cJSON *root, const char *key, cJSON *value) {
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON_AddItemToObject(root, key, value);
}

/* What trainer_init does with the sections (train/trainer.c), short of opening data: builds the
 * model, the quantization plan, the optimizer and MeZO, and puts the resolved sections into the
 * tree as the saved config.json holds them. Returns 1 when all of it worked, 0 when something
 * was refused, -1 when the model is too large to build here. */
static int build_run(RunConfig *rc) {
    Err err;
    cJSON *root = rc->root, *msec = cfg_section(root, "model");
    if (!cJSON_GetObjectItemCaseSensitive(msec, "seq_len")) cJSON_AddNumberToObject(msec, "seq_len", (double)rc->data.seq_len);
    fz_model_section_shrink(msec);
    if (!fz_model_section_small(msec)) return -1;
    Model *m = NULL, *m2 = NULL;
    if (model_create(&m, msec, (uint64_t)rc->seed, &err)) {
        fz_check_error(&err, NULL);
        return 0;
    }
    int r = model_create(&m2, m->config, 7, &err);
    FZ_ASSERT(r == 0, "the resolved model section is refused: %s", err.msg);
    check_same_params(m, m2);
    model_free(m2);
    replace_section(root, "model", cJSON_Duplicate(m->config, 1));
    int ok = 0;
    cJSON *rq = cJSON_CreateObject(), *rx = cJSON_CreateObject(), *ro = cJSON_CreateObject();
    Optimizer opt; /* freed whether init worked or not, as trainer_free does */
    memset(&opt, 0, sizeof opt);
    if (quant_plan_attach(m, cJSON_GetObjectItemCaseSensitive(root, "quant"), cJSON_GetObjectItemCaseSensitive(root, "export"), rq, rx, &err) ||
        optimizer_init(&opt, &m->ps, cJSON_GetObjectItemCaseSensitive(root, "optim"), m->default_groups, ro, &err)) {
        fz_check_error(&err, NULL);
    } else {
        Mezo mz;
        ok = !rc->mezo.enabled || mezo_init(&mz, &rc->mezo, &m->ps, &err) == 0;
        if (!ok) fz_check_error(&err, NULL);
        else if (rc->mezo.enabled) mezo_free(&mz);
        cJSON *optim = cfg_section(root, "optim");
        replace_section(root, "quant", rq);
        replace_section(root, "export", rx);
        replace_section(optim, "groups", cJSON_DetachItemFromObject(ro, "groups"));
        replace_section(optim, "rules", cJSON_DetachItemFromObject(ro, "rules"));
        rq = rx = NULL;
    }
    optimizer_free(&opt);
    cJSON_Delete(rq);
    cJSON_Delete(rx);
    cJSON_Delete(ro);
    model_free(m);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Fz f = {data, size};
    int from_file = fz_u8(&f) < 224;
    const uint8_t *json, *sets_raw;
    size_t njson, nsets_raw;
    fz_split(&f, &json, &njson, &sets_raw, &nsets_raw);
    const char *path = fz_scratch_path("_config.json");
    fz_write_file(path, json, njson);
    /* the --set assignments: one per line (argv strings hold no NUL, so a NUL ends one early) */
    char *buf = malloc(nsets_raw + 1), *sets[8];
    memcpy(buf, sets_raw, nsets_raw);
    buf[nsets_raw] = 0;
    int nsets = 0;
    for (char *save = NULL, *s = strtok_r(buf, "\n", &save); s && nsets < 8; s = strtok_r(NULL, "\n", &save)) sets[nsets++] = s;
    RunConfig rc;
    Err err;
    if (runconfig_load(&rc, from_file ? path : NULL, sets, nsets, &err) == 0) {
        if (build_run(&rc) == 1) check_resolved_rereads(&rc);
        runconfig_free(&rc);
    } else {
        fz_check_error(&err, NULL);
    }
    free(buf);
    return 0;
}
