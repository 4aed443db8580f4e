/* The architecture registry: model.arch -> constructor. */
#include <cjson/cJSON.h>
#include <string.h>

#include "model/model.h"
#include "model/qat.h"
#include "model/lora.h"
#include "model/trn.h"

typedef struct Arch {
    const char *name;
    int (*create)(Model **, const cJSON *, uint64_t, Err *);
} Arch;

static const Arch kArchs[] = {
    {"gpt", gpt_create},
    {"trn_hybrid", trn_hybrid_create},
    {"llama", llama_create},
};

int model_create(Model **out, const cJSON *section, uint64_t seed, Err *err) {
    *out = NULL;
    if (!section || !cJSON_IsObject(section)) return err_set(err, "config: model section missing");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(section, "arch");
    const char *name = cJSON_IsString(arch) ? arch->valuestring : "gpt";
    if (arch && !cJSON_IsString(arch)) return err_set(err, "config: model.arch must be a string");
    for (size_t i = 0; i < sizeof kArchs / sizeof kArchs[0]; i++)
        if (!strcmp(kArchs[i].name, name)) return kArchs[i].create(out, section, seed, err);
    char known[256] = "";
    for (size_t i = 0; i < sizeof kArchs / sizeof kArchs[0]; i++) {
        if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
        strncat(known, kArchs[i].name, sizeof known - strlen(known) - 1);
    }
    return err_set(err, "config: unknown model.arch \"%s\" (known: %s)", name, known);
}

void model_free(Model *m) {
    if (!m) return;
    if (m->ops && m->ops->destroy) m->ops->destroy(m);
    if (m->qplan) {
        quant_plan_free(m->qplan);
        xfree(m->qplan);
    }
    lora_detach(m);
    params_free(&m->ps);
    cJSON_Delete(m->config);
    xfree(m);
}

size_t model_num_params(const Model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->ps.n; i++) n += m->ps.t[i]->numel;
    return n;
}
