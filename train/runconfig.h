/* runconfig.h — one JSON file describes a run: name, seed, model, data, optim, train, quant,
 * export. `--set a.b=value` overrides any key. Unknown keys and wrong types are errors naming
 * the key. The resolved config (every default filled in) is saved with the run and in every
 * checkpoint. */
#ifndef TERN_RUNCONFIG_H
#define TERN_RUNCONFIG_H

#include <stddef.h>

#include "kernels/jsoncfg.h"
#include "optim/mezo.h"
#include "optim/schedule.h"

struct cJSON;

typedef struct DataConfig {
    char train[CFG_STR_MAX];     /* glob(s) of training shards */
    char val[CFG_STR_MAX];       /* glob(s) of validation shards */
    char tokenizer[CFG_STR_MAX]; /* tokenizer file for bits-per-byte (optional) */
    size_t seq_len;
} DataConfig;

typedef struct TrainConfig {
    size_t batch_tokens;   /* tokens per optimizer step (all ranks, all micro-steps) */
    size_t micro_batch;    /* sequences per micro-step per rank */
    size_t max_steps, max_tokens;
    double max_seconds;
    size_t val_every;      /* steps; 0 = only at the end */
    size_t val_tokens;     /* cap on validation tokens per eval (0 = the whole split) */
    size_t log_every;
    size_t ckpt_every;     /* steps; 0 = only at the end */
    size_t keep_ckpts;     /* newest ckpt/step_N.h5 kept (latest.h5 always); 0 = keep all */
    size_t max_bad_steps;  /* stop after this many non-finite steps in a row */
    double grad_clip;      /* global L2 norm; 0 = off */
    int eval_at_end;
    int plot;              /* RUN_DIR/loss.png at the end (train/plot.h); a failure is only a warning */
    int checkpoint_blocks; /* activation checkpointing per layer: recompute in backward */
    char init_from[CFG_STR_MAX]; /* checkpoint whose parameters start a fresh run (fine-tuning) */
} TrainConfig;

/* train.lora: LoRA fine-tuning (train/README.md). Enabled when the section is present. */
#define LORA_MAX_TARGETS 16
typedef struct LoraConfig {
    int enabled;
    size_t rank;
    double alpha, dropout;
    char base[CFG_STR_MAX];      /* the frozen base checkpoint */
    char base_hash[CFG_STR_MAX]; /* its parameters' hash (16 hex digits); "" = recorded by the run */
    char targets[LORA_MAX_TARGETS][CFG_STR_MAX]; /* globs over 2-D parameter names */
    size_t ntargets;
} LoraConfig;

typedef struct DistillConfig {
    char teacher[CFG_STR_MAX]; /* teacher-logit files (glob / comma list), one per training shard; "" = off */
    double alpha;              /* weight of the soft (teacher) loss; 1 - alpha on the labels */
} DistillConfig;

typedef struct RunConfig {
    char name[CFG_STR_MAX];
    char out_dir[CFG_STR_MAX];
    long seed;
    long threads;
    DataConfig data;
    TrainConfig train;
    Schedule schedule;
    Ema ema;
    MezoConfig mezo;
    DistillConfig distill;
    LoraConfig lora;
    struct cJSON *root;     /* the whole (resolved) tree; sections model/optim/quant/export kept as given */
} RunConfig;

/* Loads `path` (NULL: start from an empty object), applies the --set assignments, reads and
 * validates every section. The model and optimizer sections are validated when the model and
 * optimizer are built. */
int runconfig_load(RunConfig *rc, const char *path, char **sets, int nsets, Err *err);
/* Same from an already-parsed tree (takes ownership). */
int runconfig_from_json(RunConfig *rc, struct cJSON *root, Err *err);
void runconfig_free(RunConfig *rc);
/* Reads a train.lora section (NULL: LoRA off, lc->enabled = 0) with every key checked. */
int runconfig_read_lora(const struct cJSON *sec, LoraConfig *lc, Err *err);
/* Writes the resolved values of the run-level sections back into rc->root. */
void runconfig_resolve(RunConfig *rc);

#endif
