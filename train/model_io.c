#include "train/model_io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/checkpoint.h"
#include "train/lora_ft.h"

/* The run-level numbers the commands take from a stored config (the model section is checked by
 * model_create): integers in range when present, so that a damaged file cannot turn into an
 * out-of-range conversion or a huge evaluation window. */
static int check_stored_numbers(const char *path, const cJSON *root, Err *err) {
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    const cJSON *sl = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "data"), "seq_len");
    if (seed && !(cJSON_IsNumber(seed) && seed->valuedouble >= 0 && seed->valuedouble <= 9007199254740992.0 &&
                  seed->valuedouble == floor(seed->valuedouble)))
        return err_set(err, "%s: stored config: seed must be an integer in [0, 2^53]", path);
    if (sl && !(cJSON_IsNumber(sl) && sl->valuedouble >= 1 && sl->valuedouble <= MODEL_MAX_SEQ && sl->valuedouble == floor(sl->valuedouble)))
        return err_set(err, "%s: stored config: data.seq_len must be an integer in [1, %.0f]", path, MODEL_MAX_SEQ);
    return 0;
}

int model_load_checkpoint(const char *path, int use_ema, Model **out, cJSON **config, Err *err) {
    return model_load_checkpoint_base(path, use_ema, NULL, out, config, err);
}

int model_load_checkpoint_base(const char *path, int use_ema, const char *base, Model **out, cJSON **config, Err *err) {
    *out = NULL;
    char *text = checkpoint_read_config(path, err);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return err_set(err, "%s: stored config is not valid JSON", path);
    if (check_stored_numbers(path, root, err)) {
        cJSON_Delete(root);
        return -1;
    }
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
        return err_prefix(err, "%s", path);
    }
    LoraConfig lc;
    int is_lora = 0;
    if (lora_config_of(root, &lc, &is_lora, err)) {
        model_free(m);
        cJSON_Delete(root);
        return err_prefix(err, "%s: stored config", path);
    }
    if (is_lora || base) {
        int bad = !is_lora ? err_set(err, "%s: not a LoRA checkpoint (its config has no train.lora), a base makes no sense", path)
                           : lora_load_checkpoint(m, path, root, base, use_ema, err);
        int have = 0;
        if (bad || checkpoint_load_buffers(path, &m->bs, &have, err)) {
            model_free(m);
            cJSON_Delete(root);
            return -1;
        }
        *out = m;
        if (config) *config = root;
        else cJSON_Delete(root);
        return 0;
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
