/* trainer.h — the training loop: micro-batches with gradient accumulation to a batch given in
 * tokens, the optimizer with its schedule, clipping and EMA, periodic validation, metrics,
 * checkpoints, resume, and clean stops (budget, signal, divergence).
 *
 * The loop allocates nothing after the first step: activations come from the tape's arena,
 * token buffers and optimizer state are allocated once. */
#ifndef TERN_TRAINER_H
#define TERN_TRAINER_H

#include <signal.h>
#include <stdio.h>

#include "data/bpb.h"
#include "data/loader.h"
#include "autodiff/ops.h"
#include "data/teacher.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "optim/mezo.h"
#include "optim/optimizer.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include "train/eval.h"
#include "train/memplan.h"
#include "train/progress.h"
#include "train/runconfig.h"

typedef struct Trainer {
    RunConfig *rc;
    Model *model;
    ParamStore *tps;          /* the trained parameters: the model's, or its LoRA adapters' (base frozen) */
    Optimizer opt;
    Loader loader;
    TokenStream val;
    int have_val;
    Tokenizer *tok;
    ByteCounter bc;
    int have_bc;
    Tape tape;          /* training steps and validation (between steps) */
    int32_t *x, *y;
    size_t B, T, accum;
    uint64_t total_steps;       /* 0 when only a time budget bounds the run */
    TrainState st;
    uint64_t bad_in_row;
    char run_dir[1024];
    FILE *metrics;
    Progress prog;
    volatile sig_atomic_t *stop_flag; /* set by a signal handler: checkpoint and stop */
    double last_val_loss, last_val_bpb;
    double tokens_per_s;
    int quiet;
    long long qat_start_step; /* -1 until QAT switches on in this process */
    Dist dist;                /* rank / world (a world of one without MPI) */
    Mezo mezo;                /* forward-only training (optim.mezo.enabled) */
    /* distillation (distill.teacher): one teacher-logit reader per training shard */
    TeacherReader *teachers;
    size_t nteachers;
    int *teacher_of_shard;
    int32_t *t_idx;
    float *t_val, *t_lse;
    size_t *win_shard, *win_off;
    DistillTarget dt;
    int use_mezo;
    size_t mezo_live;         /* weights the last MeZO step perturbed (all selected ones unless sparse_ternary) */
    uint64_t resyncs;         /* times the ranks' parameters had drifted apart and were re-broadcast */
    MemPlan mem;              /* the run's memory estimate (train/memplan.h) */
} Trainer;

/* Builds everything for rc (model, optimizer, data). resume_ckpt: a checkpoint to continue from
 * (NULL = fresh run). dist: this process's rank in a data-parallel world (NULL = a world of one);
 * train.batch_tokens is the global batch, split over the ranks, and only rank 0 writes the run
 * folder, which it must hold (run_dir_lock: the lock, and the refusal to reuse a run). */
int trainer_init(Trainer *t, RunConfig *rc, const char *resume_ckpt, const Dist *dist, Err *err);
/* Resolves and checks everything (model, optimizer, data) without creating the run folder. */
int trainer_init_dry(Trainer *t, RunConfig *rc, Err *err);
/* Runs until the budget (or stop_after_step, when non-zero, or the stop flag). Returns 0 on a
 * normal end, 1 when stopped by a signal (checkpoint written), -1 on error (err set). */
int trainer_run(Trainer *t, uint64_t stop_after_step, Err *err);
int trainer_save(Trainer *t, Err *err);
/* Writes summary.json (and prints the summary as JSON on stdout when json is set). outcome:
 * trainer_run's return value; a failed run (-1) has "status": "failed" and its error. */
int trainer_summary(Trainer *t, int json, int outcome, const char *error, Err *err);
void trainer_free(Trainer *t);

#endif
