#include "train/model_io.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "train/checkpoint.h"

int model_load_checkpoint(const char *path, int use_ema, Model **out, cJSON **config, Err *err) {
    *out = NULL;
    char *text = checkpoint_read_config(path, err);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return err_set(err, "%s: stored config is not valid JSON", path);
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    Model *m = NULL;
    if (model_create(&m, cJSON_GetObjectItemCaseSensitive(root, "model"), cJSON_IsNumber(seed) ? (uint64_t)seed->valuedouble : 0, err)) {
        cJSON_Delete(root);
        return err_prefix(err, "%s", path);
    }
    int have_buffers = 0;
    if (checkpoint_load(path, &m->ps, NULL, NULL, NULL, NULL, err) || checkpoint_load_buffers(path, &m->bs, &have_buffers, err)) {
        model_free(m);
        cJSON_Delete(root);
        return -1;
    }
    int found;
    if (use_ema && checkpoint_read_ema(path, m->ps.values, m->ps.total, &found, err)) {
        model_free(m);
        cJSON_Delete(root);
        return -1;
    }
    *out = m;
    if (config) *config = root;
    else cJSON_Delete(root);
    return 0;
}
