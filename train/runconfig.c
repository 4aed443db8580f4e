#include "train/runconfig.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "train/run_dir.h"

#define D(type, m, h) CFG_F(type, DataConfig, m, h)
static const CfgField kDataFields[] = {
    D(CFG_STRING, train, "training shards (glob, comma-separated globs allowed)"),
    D(CFG_STRING, val, "validation shards (glob)"),
    D(CFG_STRING, tokenizer, "tokenizer file, for val_bpb"),
    D(CFG_SIZE, seq_len, "training and evaluation sequence length"),
};
#undef D
#define T(type, m, h) CFG_F(type, TrainConfig, m, h)
static const CfgField kTrainFields[] = {
    T(CFG_SIZE, batch_tokens, "tokens per optimizer step"),
    T(CFG_SIZE, micro_batch, "sequences per micro-step"),
    T(CFG_SIZE, max_steps, "stop after this many steps (0 = no limit)"),
    T(CFG_SIZE, max_tokens, "stop after this many training tokens (0 = no limit)"),
    T(CFG_FLOAT, max_seconds, "wall-clock budget (0 = no limit)"),
    T(CFG_SIZE, val_every, "validate every N steps (0 = only at the end)"),
    T(CFG_SIZE, val_tokens, "cap on validation tokens (0 = whole split)"),
    T(CFG_SIZE, log_every, "log every N steps"),
    T(CFG_SIZE, ckpt_every, "checkpoint every N steps (0 = only at the end)"),
    CFG_R(CFG_SIZE, TrainConfig, keep_ckpts, 0, 1e9, "keep the newest N ckpt/step_N.h5 (latest.h5 always); 0 = keep all"),
    T(CFG_SIZE, max_bad_steps, "stop after N non-finite steps in a row"),
    T(CFG_FLOAT, grad_clip, "global gradient-norm clip (0 = off)"),
    T(CFG_BOOL, eval_at_end, "validate after the last step"),
    T(CFG_STRING, init_from, "checkpoint whose parameters initialise a fresh run (fine-tuning); names and shapes must match"),
};
#undef T
#define DI(type, m, h) CFG_F(type, DistillConfig, m, h)
static const CfgField kDistillFields[] = {
    DI(CFG_STRING, teacher, "teacher-logit files from `tern logits` (glob), one per training shard; empty = no distillation"),
    DI(CFG_FLOAT, alpha, "weight of the teacher (soft) loss; the labels get 1 - alpha"),
};
#undef DI
#define R(type, m, h) CFG_F(type, RunConfig, m, h)
static const CfgField kRunFields[] = {
    R(CFG_STRING, name, "run name (runs/NAME)"),
    R(CFG_STRING, out_dir, "folder holding runs"),
    R(CFG_INT, seed, "seed for init and data order"),
    R(CFG_INT, threads, "OpenMP/BLAS threads (0 = OMP_NUM_THREADS or all cores)"),
    {"model", CFG_SECTION, 0, "model architecture and shape"},
    {"data", CFG_SECTION, 0, "data paths"},
    {"optim", CFG_SECTION, 0, "optimizer groups, schedule, EMA"},
    {"train", CFG_SECTION, 0, "batch and budget"},
    {"quant", CFG_SECTION, 0, "quantization-aware training"},
    {"export", CFG_SECTION, 0, "artifact export"},
    {"distill", CFG_SECTION, 0, "distillation from teacher logits"},
};
#undef R
#define N(a) (sizeof a / sizeof a[0])

static void defaults(RunConfig *rc) {
    memset(rc, 0, sizeof *rc);
    strcpy(rc->name, "run");
    strcpy(rc->out_dir, "runs");
    rc->seed = 1337;
    rc->data.seq_len = 1024;
    rc->train.batch_tokens = 8192;
    rc->train.micro_batch = 1;
    rc->train.log_every = 10;
    rc->train.max_bad_steps = 10;
    rc->train.keep_ckpts = 3;
    rc->train.eval_at_end = 1;
    schedule_defaults(&rc->schedule);
    ema_defaults(&rc->ema);
    mezo_defaults(&rc->mezo);
    rc->distill.alpha = 0.5;
}

static const cJSON *get(const cJSON *o, const char *k) { return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL; }

int runconfig_from_json(RunConfig *rc, cJSON *root, Err *err) {
    defaults(rc);
    rc->root = root;
    if (cfg_read(root, "config", kRunFields, N(kRunFields), rc, err)) return -1;
    if (cfg_read(get(root, "data"), "data", kDataFields, N(kDataFields), &rc->data, err)) return -1;
    if (cfg_read(get(root, "train"), "train", kTrainFields, N(kTrainFields), &rc->train, err)) return -1;
    /* optim: schedule / ema / grad_clip live here; groups and rules are read by the optimizer */
    const cJSON *optim = get(root, "optim");
    if (optim) {
        if (!cJSON_IsObject(optim)) return err_set(err, "config: optim must be an object");
        for (const cJSON *k = optim->child; k; k = k->next)
            if (strcmp(k->string, "groups") && strcmp(k->string, "rules") && strcmp(k->string, "schedule") &&
                strcmp(k->string, "ema") && strcmp(k->string, "mezo"))
                return err_set(err, "config: unknown key optim.%s (known: groups, rules, schedule, ema, mezo)", k->string);
    }
    if (cfg_read(get(optim, "schedule"), "optim.schedule", kScheduleFields, kScheduleFieldCount, &rc->schedule, err)) return -1;
    if (cfg_read(get(optim, "ema"), "optim.ema", kEmaFields, kEmaFieldCount, &rc->ema, err)) return -1;
    if (cfg_read(get(optim, "mezo"), "optim.mezo", kMezoFields, kMezoFieldCount, &rc->mezo, err)) return -1;
    if (mezo_validate(&rc->mezo, err)) return -1;
    if (schedule_validate(&rc->schedule, err)) return -1;
    if (rc->ema.enabled && (rc->ema.decay <= 0 || rc->ema.decay >= 1))
        return err_set(err, "config: optim.ema.decay must be in (0, 1)");
    if (cfg_read(get(root, "distill"), "distill", kDistillFields, N(kDistillFields), &rc->distill, err)) return -1;
    if (!(rc->distill.alpha >= 0 && rc->distill.alpha <= 1)) return err_set(err, "config: distill.alpha must be in [0, 1]");
    if (rc->distill.teacher[0] && rc->mezo.enabled)
        return err_set(err, "config: distill.teacher with optim.mezo.enabled is not supported (distil with backprop)");
    if (rc->data.seq_len == 0) return err_set(err, "config: data.seq_len must be positive");
    if (rc->train.micro_batch == 0) return err_set(err, "config: train.micro_batch must be positive");
    if (rc->train.batch_tokens == 0) return err_set(err, "config: train.batch_tokens must be positive");
    if (rc->train.grad_clip < 0) return err_set(err, "config: train.grad_clip must be >= 0");
    if (rc->threads < 0) return err_set(err, "config: threads must be >= 0");
    if (run_name_check(rc->out_dir, rc->name, err)) return -1;
    return 0;
}

int runconfig_load(RunConfig *rc, const char *path, char **sets, int nsets, Err *err) {
    memset(rc, 0, sizeof *rc);
    cJSON *root = path ? cfg_load_file(path, err) : cJSON_CreateObject();
    if (!root) return -1;
    for (int i = 0; i < nsets; i++)
        if (cfg_set_path(root, sets[i], err)) {
            cJSON_Delete(root);
            return -1;
        }
    if (runconfig_from_json(rc, root, err)) {
        cJSON_Delete(root);
        rc->root = NULL;
        return -1;
    }
    return 0;
}

void runconfig_free(RunConfig *rc) {
    cJSON_Delete(rc->root);
    rc->root = NULL;
}

void runconfig_resolve(RunConfig *rc) {
    cJSON *root = rc->root;
    cfg_write(root, kRunFields, 4, rc); /* name, out_dir, seed, threads */
    cfg_write(cfg_section(root, "data"), kDataFields, N(kDataFields), &rc->data);
    cfg_write(cfg_section(root, "train"), kTrainFields, N(kTrainFields), &rc->train);
    cJSON *optim = cfg_section(root, "optim");
    cfg_write(cfg_section(optim, "schedule"), kScheduleFields, kScheduleFieldCount, &rc->schedule);
    cfg_write(cfg_section(optim, "ema"), kEmaFields, kEmaFieldCount, &rc->ema);
    cfg_write(cfg_section(optim, "mezo"), kMezoFields, kMezoFieldCount, &rc->mezo);
    cfg_write(cfg_section(root, "distill"), kDistillFields, N(kDistillFields), &rc->distill);
}
