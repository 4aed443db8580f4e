#include "train/runconfig.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "train/run_dir.h"

/* Every number has a range (kernels/jsoncfg.h): wide enough for any real run, narrow enough that
 * a typo (a sign, an exponent) is an error naming the key instead of a hang or a huge
 * allocation. Counts of steps and tokens stop at 2^50 (beyond any budget); sizes are bounded
 * again, jointly, by the memory estimate (train/memplan.h). */
#define kMaxCount 1125899906842624.0 /* 2^50 */
#define kMaxSeqLen 1048576.0         /* 2^20 tokens */
#define N(a) (sizeof a / sizeof a[0])

#define D(type, m, h) CFG_F(type, DataConfig, m, h)
#define DR(type, m, lo, hi, h) CFG_R(type, DataConfig, m, lo, hi, h)
static const CfgField kDataFields[] = {
    D(CFG_STRING, train, "training shards (glob, comma-separated globs allowed)"),
    D(CFG_STRING, val, "validation shards (glob)"),
    D(CFG_STRING, tokenizer, "tokenizer file, for val_bpb"),
    DR(CFG_SIZE, seq_len, 1, kMaxSeqLen, "training and evaluation sequence length"),
};
#undef D
#undef DR
#define T(type, m, h) CFG_F(type, TrainConfig, m, h)
#define TR(type, m, lo, hi, h) CFG_R(type, TrainConfig, m, lo, hi, h)
static const CfgField kTrainFields[] = {
    TR(CFG_SIZE, batch_tokens, 1, 1e12, "tokens per optimizer step"),
    TR(CFG_SIZE, micro_batch, 1, 1 << 20, "sequences per micro-step"),
    TR(CFG_SIZE, max_steps, 0, kMaxCount, "stop after this many steps (0 = no limit)"),
    TR(CFG_SIZE, max_tokens, 0, kMaxCount, "stop after this many training tokens (0 = no limit)"),
    TR(CFG_FLOAT, max_seconds, 0, 1e10, "wall-clock budget (0 = no limit)"),
    TR(CFG_SIZE, val_every, 0, kMaxCount, "validate every N steps (0 = only at the end)"),
    TR(CFG_SIZE, val_tokens, 0, kMaxCount, "cap on validation tokens (0 = whole split)"),
    TR(CFG_SIZE, log_every, 0, kMaxCount, "log every N steps (0 = never)"),
    TR(CFG_SIZE, ckpt_every, 0, kMaxCount, "checkpoint every N steps (0 = only at the end)"),
    TR(CFG_SIZE, keep_ckpts, 0, 1e9, "keep the newest N ckpt/step_N.h5 (latest.h5 always); 0 = keep all"),
    TR(CFG_SIZE, max_bad_steps, 1, kMaxCount, "stop after N non-finite steps in a row"),
    TR(CFG_FLOAT, grad_clip, 0, 1e30, "global gradient-norm clip (0 = off)"),
    T(CFG_BOOL, eval_at_end, "validate after the last step"),
    T(CFG_BOOL, plot, "draw RUN_DIR/loss.png at the end of the run (as tern plot RUN_DIR does)"),
    T(CFG_BOOL, checkpoint_blocks, "activation checkpointing: keep only each layer's output, recompute the layer in backward (same loss and gradients, less memory)"),
    T(CFG_STRING, init_from, "checkpoint whose parameters initialise a fresh run (fine-tuning); names and shapes must match"),
    CFG_CHILD("lora", CFG_SECTION, "LoRA fine-tuning: rank, alpha, dropout, targets, base, base_hash"),
};
#undef T
#undef TR
#define LO(type, m, h) CFG_F(type, LoraConfig, m, h)
#define LOR(type, m, lo, hi, h) CFG_R(type, LoraConfig, m, lo, hi, h)
static const CfgField kLoraFields[] = {
    LOR(CFG_SIZE, rank, 1, 65536, "adapter rank r"),
    LOR(CFG_FLOAT, alpha, 1e-6, 1e6, "the adapters' output is scaled by alpha / rank"),
    LOR(CFG_FLOAT, dropout, 0, 0.99, "dropout on the adapters' input (training only)"),
    LO(CFG_STRING, base, "the base checkpoint (frozen; the run's checkpoints hold the adapters only)"),
    LO(CFG_STRING, base_hash, "the base parameters' hash; empty = recorded at the start, then checked on resume and export"),
    CFG_CHILD("targets", CFG_ARRAY, "globs over 2-D parameter names, e.g. \"*.attn.c_q.weight\""),
};
#undef LO
#undef LOR
static const char *kLoraDefaultTargets[] = {"*.attn.c_q.weight", "*.attn.c_v.weight", "*.attn.wq.weight", "*.attn.wv.weight"};

/* train.lora: every key checked; targets default to the attention's query and value projections
 * (the original LoRA paper's choice) under both naming schemes. */
int runconfig_read_lora(const cJSON *sec, LoraConfig *lc, Err *err) {
    memset(lc, 0, sizeof *lc);
    lc->rank = 8;
    lc->alpha = 16;
    if (!sec) return 0;
    lc->enabled = 1;
    if (cfg_read(sec, "train.lora", kLoraFields, N(kLoraFields), lc, err)) return -1;
    if (!lc->base[0]) return err_set(err, "config: train.lora.base (the base checkpoint) is required");
    if (lc->base_hash[0] && strspn(lc->base_hash, "0123456789abcdef") != 16)
        return err_set(err, "config: train.lora.base_hash must be 16 lowercase hex digits, got \"%s\"", lc->base_hash);
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(sec, "targets");
    if (!tg) {
        for (size_t i = 0; i < N(kLoraDefaultTargets); i++) snprintf(lc->targets[i], CFG_STR_MAX, "%s", kLoraDefaultTargets[i]);
        lc->ntargets = N(kLoraDefaultTargets);
        return 0;
    }
    int i = 0;
    for (const cJSON *g = tg->child; g; g = g->next, i++) {
        if (!cJSON_IsString(g) || !g->valuestring[0] || strlen(g->valuestring) >= CFG_STR_MAX)
            return err_set(err, "config: train.lora.targets[%d] must be a non-empty glob string", i);
        if (lc->ntargets == LORA_MAX_TARGETS) return err_set(err, "config: train.lora.targets: at most %d globs", LORA_MAX_TARGETS);
        snprintf(lc->targets[lc->ntargets++], CFG_STR_MAX, "%s", g->valuestring);
    }
    if (!lc->ntargets) return err_set(err, "config: train.lora.targets is empty (give at least one glob)");
    return 0;
}

static void write_lora(cJSON *train, const LoraConfig *lc) {
    if (!lc->enabled) return;
    cJSON *sec = cfg_section(train, "lora");
    cfg_write(sec, kLoraFields, N(kLoraFields) - 1, lc);
    cJSON_DeleteItemFromObjectCaseSensitive(sec, "targets");
    cJSON *arr = cJSON_AddArrayToObject(sec, "targets");
    for (size_t i = 0; i < lc->ntargets; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(lc->targets[i]));
}

#define DI(type, m, h) CFG_F(type, DistillConfig, m, h)
#define DIR(type, m, lo, hi, h) CFG_R(type, DistillConfig, m, lo, hi, h)
static const CfgField kDistillFields[] = {
    DI(CFG_STRING, teacher, "teacher-logit files from `tern logits` (glob), one per training shard; empty = no distillation"),
    DIR(CFG_FLOAT, alpha, 0, 1, "weight of the teacher (soft) loss; the labels get 1 - alpha"),
};
#undef DI
#undef DIR
#define R(type, m, h) CFG_F(type, RunConfig, m, h)
#define RR(type, m, lo, hi, h) CFG_R(type, RunConfig, m, lo, hi, h)
static const CfgField kRunFields[] = {
    R(CFG_STRING, name, "run name (runs/NAME)"),
    R(CFG_STRING, out_dir, "folder holding runs"),
    RR(CFG_INT, seed, 0, kMaxCount, "seed for init and data order"),
    RR(CFG_INT, threads, 0, 4096, "OpenMP/BLAS threads (0 = OMP_NUM_THREADS or all cores)"),
    CFG_CHILD("model", CFG_SECTION, "model architecture and shape"),
    CFG_CHILD("data", CFG_SECTION, "data paths"),
    CFG_CHILD("optim", CFG_SECTION, "optimizer groups, schedule, EMA"),
    CFG_CHILD("train", CFG_SECTION, "batch and budget"),
    CFG_CHILD("quant", CFG_SECTION, "quantization-aware training"),
    CFG_CHILD("export", CFG_SECTION, "artifact export"),
    CFG_CHILD("distill", CFG_SECTION, "distillation from teacher logits"),
};
#undef R
#undef RR

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
    rc->train.plot = 1;
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
    if (runconfig_read_lora(get(get(root, "train"), "lora"), &rc->lora, err)) return -1;
    if (rc->lora.enabled && rc->train.init_from[0])
        return err_set(err, "config: train.init_from with train.lora: the base checkpoint is train.lora.base");
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
    if (rc->distill.teacher[0] && rc->mezo.enabled)
        return err_set(err, "config: distill.teacher with optim.mezo.enabled is not supported (distil with backprop)");
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
    cfg_write(cfg_section(root, "train"), kTrainFields, N(kTrainFields) - 1, &rc->train);
    write_lora(cfg_section(root, "train"), &rc->lora);
    cJSON *optim = cfg_section(root, "optim");
    cfg_write(cfg_section(optim, "schedule"), kScheduleFields, kScheduleFieldCount, &rc->schedule);
    cfg_write(cfg_section(optim, "ema"), kEmaFields, kEmaFieldCount, &rc->ema);
    cfg_write(cfg_section(optim, "mezo"), kMezoFields, kMezoFieldCount, &rc->mezo);
    cfg_write(cfg_section(root, "distill"), kDistillFields, N(kDistillFields), &rc->distill);
}
