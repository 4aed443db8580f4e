/* libFuzzer target: checkpoints (train/checkpoint.c, train/model_io.c on data/h5io.c) and the
 * resume they drive. A tiny model (gpt, llama or trn_hybrid, shapes from the input) is built,
 * and the input is decoded into a valid HDF5 file laid out as checkpoint_save writes it for that
 * model (tests/fuzz/fuzz_h5gen.h): format / version / config attributes, /params/<name>,
 * /optim/state_a, /optim/state_b, /ema/shadow and the /state attributes, each of which the input
 * may drop, retype, reshape (huge, never written), fill with NaN / Inf / limits or replace by a
 * group. The stored config may be another model's, carry odd seeds, or be fuzzed text.
 * The file is then read the ways tern reads it: checkpoint_read_config + model_load_checkpoint
 * (config -> model_create -> parameters, EMA weights), checkpoint_load into the model with
 * optimizer state, EMA and train state, and a training loader set to the restored cursor. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "train/checkpoint.h"
#include "train/model_io.h"
#include "tests/fuzz/fuzz_h5gen.h"
#include "tests/fuzz/fuzz_tokens.h"

static const char *const kSeeds[] = {"1", "0", "-1", "3.5", "1e300", "18446744073709551616", "\"x\"", "null"};

/* A tiny model's run config: {"seed": S, "model": {...}} with shapes from the input. */
static void tiny_config(Fz *f, char *buf, size_t cap) {
    size_t arch = fz_range(f, 0, 2), V = fz_range(f, 2, 40), L = fz_range(f, 1, 3), D = 4 * fz_range(f, 1, 4);
    const char *seed = kSeeds[fz_range(f, 0, TERN_ARRAY_LEN(kSeeds) - 1)];
    if (arch == 0)
        snprintf(buf, cap, "{\"seed\":%s,\"model\":{\"arch\":\"gpt\",\"vocab_size\":%zu,\"layers\":%zu,\"dim\":%zu,\"heads\":2,"
                 "\"kv_heads\":1,\"mlp_mult\":2,\"seq_len\":16}}", seed, V, L, D);
    else if (arch == 1)
        snprintf(buf, cap, "{\"seed\":%s,\"model\":{\"arch\":\"llama\",\"vocab_size\":%zu,\"layers\":%zu,\"dim\":%zu,\"heads\":2,"
                 "\"kv_heads\":1,\"hidden\":12,\"seq_len\":16,\"tie_embeddings\":%s}}", seed, V, L, D, L > 1 ? "false" : "true");
    else
        snprintf(buf, cap, "{\"seed\":%s,\"model\":{\"arch\":\"trn_hybrid\",\"vocab_size\":%zu,\"layout\":\"%s\",\"dim\":%zu,"
                 "\"heads\":2,\"kv_heads\":1,\"mlp_hidden\":8,\"swiglu_hidden\":6,\"oscillators\":3,\"seq_len\":8,"
                 "\"bigram_rows\":%zu,\"bigram_dim\":4}}", seed, V, L == 1 ? "T" : L == 2 ? "TA" : "ATA", D, (size_t)(L == 3 ? 0 : 5));
}

static Model *build(const char *config) {
    cJSON *root = cJSON_Parse(config);
    Model *m = NULL;
    Err err;
    if (model_create(&m, cJSON_GetObjectItemCaseSensitive(root, "model"), 1, &err)) fz_fail(__FILE__, __LINE__, "template: %s", err.msg);
    cJSON_Delete(root);
    return m;
}

static void build_spec(GenSpec *s, const Model *m, const char *config) {
    gen_attr_str(s, "/", "format", "tern-checkpoint");
    gen_attr_num(s, "/", "version", GT_I64, 1);
    gen_attr_str(s, "/", "config", config);
    char name[160];
    for (size_t i = 0; i < m->ps.n; i++) {
        const Tensor *t = m->ps.t[i];
        snprintf(name, sizeof name, "params/%s", t->name);
        gen_dataset(s, name, GT_F32, t->ndim, t->shape);
    }
    size_t total = m->ps.total;
    gen_dataset(s, "optim/state_a", GT_F32, 1, &total);
    gen_dataset(s, "optim/state_b", GT_F32, 1, &total);
    gen_dataset(s, "ema/shadow", GT_F32, 1, &total);
    static const char *const kState[] = {"step", "tokens", "train_forwards", "loader_epoch", "loader_pos", "loader_seed",
                                         "bad_steps", "qat_active"};
    for (size_t i = 0; i < TERN_ARRAY_LEN(kState); i++) gen_attr_num(s, "state", kState[i], GT_I64, (double)(3 * i + 1));
    gen_attr_num(s, "state", "elapsed_seconds", GT_F64, 12.5);
}

/* What cmd_eval / cmd_info / cmd_export do: rebuild the stored model and load its weights. */
static void load_as_model(const char *path, Fz *f) {
    Err err;
    char *text = checkpoint_read_config(path, &err);
    if (!text) {
        fz_check_error(&err, path);
        return;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    int small = fz_model_section_small(cJSON_GetObjectItemCaseSensitive(root, "model"));
    cJSON_Delete(root);
    if (!small) return;
    Model *m = NULL;
    cJSON *cfg = NULL;
    if (model_load_checkpoint(path, (int)fz_range(f, 0, 1), &m, &cfg, &err)) {
        fz_check_error(&err, path);
        return;
    }
    FZ_ASSERT(m && cfg, "model_load_checkpoint succeeded without a model");
    model_free(m);
    cJSON_Delete(cfg);
}

/* A shard for the resumed loader: 200 tokens below 16, written once. */
static const char *resume_shard(void) {
    static const char *path;
    if (!path) {
        uint32_t tok[200];
        for (int i = 0; i < 200; i++) tok[i] = (uint32_t)(i * 7 % 16);
        Err err;
        path = fz_scratch_path("_resume.bin");
        if (shard_write_bin(path, tok, 200, &err)) fz_fail(__FILE__, __LINE__, "%s", err.msg);
    }
    return path;
}

/* What `tern train --resume` does: every buffer, then the loader at the stored cursor. */
static void load_for_resume(const char *path, Model *m, Fz *f) {
    size_t total = m->ps.total, opts = fz_range(f, 0, 7);
    float *a = opts & 1 ? malloc(total * sizeof(float)) : NULL, *b = opts & 1 ? malloc(total * sizeof(float)) : NULL;
    float *ema = opts & 2 ? malloc(total * sizeof(float)) : NULL;
    TrainState st;
    Err err;
    if (checkpoint_load(path, &m->ps, a, b, ema, opts & 4 ? &st : NULL, &err)) {
        fz_check_error(&err, path);
    } else if (opts & 4) {
        Loader L;
        if (loader_open(&L, resume_shard(), fz_range(f, 1, 16), st.loader_seed, 0, 1, 16, &err))
            fz_fail(__FILE__, __LINE__, "%s", err.msg);
        fz_exercise_loader_cursor(&L, st.loader_epoch, st.loader_pos, fz_range(f, 1, 4), 2, 16);
        loader_close(&L);
    }
    free(a);
    free(b);
    free(ema);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const kNames[] = {"params", "optim", "state", "ema/shadow", "config", "format", "params/tok_emb.weight", NULL};
    Fz f = {data, size}, choices = fz_take_front(&f, 16);
    char config[1024], stored[1024];
    tiny_config(&f, config, sizeof config);
    Model *m = build(config);
    uint8_t which = fz_u8(&f);
    if (which >= 224) { /* fuzzed text */
        size_t n = fz_range(&f, 0, sizeof stored - 1);
        fz_back(&f, stored, n);
        stored[n] = 0;
    } else if (which >= 192) { /* another model's config */
        tiny_config(&f, stored, sizeof stored);
    } else {
        memcpy(stored, config, sizeof stored);
    }
    GenSpec *spec = calloc(1, sizeof *spec);
    spec->extra_names = kNames;
    build_spec(spec, m, stored);
    const char *path = fz_scratch_path("_ckpt.h5");
    h5gen_write(spec, &f, path);
    free(spec);
    load_as_model(path, &choices);
    load_for_resume(path, m, &choices);
    model_free(m);
    fz_check_h5_closed("the checkpoint readers");
    return 0;
}
