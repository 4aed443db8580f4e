#include "train/model_io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/h5io.h"
#include "train/checkpoint.h"

int model_load_checkpoint(const char *path, int use_ema, Model **out, cJSON **config, Err *err) {
    *out = NULL;
    char *text = checkpoint_read_config(path, err);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return err_set(err, "%s: stored config is not valid JSON", path);
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    /* a run config's seed is an integer of at most 2^53 (kernels/jsoncfg.c); anything else would
     * not even convert */
    double sv = cJSON_IsNumber(seed) ? seed->valuedouble : 0;
    if (!(fabs(sv) <= 9007199254740992.0)) {
        cJSON_Delete(root);
        return err_set(err, "%s: stored config has an out-of-range seed", path);
    }
    Model *m = NULL;
    if (model_create(&m, cJSON_GetObjectItemCaseSensitive(root, "model"), (uint64_t)(int64_t)sv, err)) {
        cJSON_Delete(root);
        return err_set(err, "%s: %s", path, err->msg);
    }
    if (checkpoint_load(path, &m->ps, NULL, NULL, NULL, NULL, err)) {
        model_free(m);
        cJSON_Delete(root);
        return -1;
    }
    if (use_ema) {
        hid_t f = h5_open_read(path, err);
        if (f >= 0 && h5_exists(f, "ema/shadow")) {
            if (h5_read_f32(f, "ema/shadow", m->ps.values, m->ps.total, err)) {
                h5_close(f);
                model_free(m);
                cJSON_Delete(root);
                return -1;
            }
        }
        h5_close(f);
    }
    *out = m;
    if (config) *config = root;
    else cJSON_Delete(root);
    return 0;
}
