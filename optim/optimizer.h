/* optimizer.h — parameter groups and the optimizers that update them (AdamW, Muon, SGD).
 *
 * Optimizers see only the ParamStore's flat value and grad buffers, plus names and shapes to
 * assign each tensor to a group. State lives in two flat buffers with the same offsets as the
 * parameters (state_a: Adam first moment / Muon and SGD momentum; state_b: Adam second moment),
 * so checkpoints save it as two arrays and MPI could shard it by offset.
 *
 * Groups come from config (optim.groups: name -> {type, lr, ...}); each parameter goes to the
 * group of the first rule in optim.rules (or the model's default rules) whose glob `match`
 * matches its name and whose `ndim` (when given) equals its rank. */
#ifndef TERN_OPTIMIZER_H
#define TERN_OPTIMIZER_H

#include <stddef.h>
#include <stdint.h>

#include "autodiff/params.h"
#include "kernels/jsoncfg.h"

struct cJSON;

typedef enum OptKind { OPT_ADAMW = 0, OPT_MUON, OPT_SGD } OptKind;

typedef struct OptGroup {
    char name[64];
    char type[CFG_STR_MAX];   /* adamw | muon | sgd */
    OptKind kind;
    double lr, beta1, beta2, eps, wd;
    double momentum, momentum_warmup_start;
    size_t momentum_warmup_steps, ns_steps;
    int nesterov;
    /* filled at init */
    size_t nparams, nfloats;
} OptGroup;

/* Sends buf[n] from rank `root` to every rank (an MPI broadcast, supplied by the caller). */
typedef void (*OptBcastFn)(void *ctx, float *buf, size_t n, int root);

typedef struct Optimizer {
    ParamStore *ps;
    OptGroup *groups;
    size_t ngroups;
    int *group_of;            /* per parameter index */
    float *state_a, *state_b; /* flat, same offsets as params; mapped lazily (xcalloc_lazy): a
                               * forward-only run (MeZO) never makes them resident */
    size_t state_floats;
    float *work;              /* Newton–Schulz scratch */
    size_t work_floats;
    uint64_t step;            /* optimizer steps taken */
    /* sharded Muon (optimizer_shard): this rank orthogonalises only the matrices it owns */
    int shard_rank, shard_world;
    int *owner;               /* per parameter index: the rank that orthogonalises it (-1: not Muon) */
    float *upd;               /* flat [total] buffer of Muon updates */
    OptBcastFn bcast;
    void *bcast_ctx;
} Optimizer;

/* optim: the "optim" section of a run config (may be NULL); default_rules: the model's JSON
 * array of rules. Resolved groups and rules are written back into `resolved` (if not NULL). */
int optimizer_init(Optimizer *o, ParamStore *ps, const struct cJSON *optim, const char *default_rules,
                   struct cJSON *resolved, Err *err);
void optimizer_free(Optimizer *o);
/* One update of every parameter from its grad; lr_mult scales every group's lr. */
void optimizer_step(Optimizer *o, double lr_mult);
/* Data parallelism: every rank holds the same averaged gradients and takes the same step, so
 * Muon's Newton-Schulz iterations (the optimizer's cost) would be repeated on every rank. After
 * this call each Muon matrix is orthogonalised by one owner rank (owners balanced by the
 * iterations' FLOPs, largest first) and its update broadcast with `bcast`; momentum and the
 * elementwise updates still run everywhere, so every rank ends with identical parameters and
 * state. world <= 1 undoes it. */
void optimizer_shard(Optimizer *o, int rank, int world, OptBcastFn bcast, void *ctx);
/* Current Muon momentum of a group (warm-up applied). */
double optimizer_momentum(const Optimizer *o, const OptGroup *g);
/* One line per group: name, type, lr, tensors, floats. */
void optimizer_describe(const Optimizer *o, char *buf, size_t n);

/* Newton–Schulz orthogonalisation (Muon): X <- NS_steps(G / (|G|_F + 1e-7)) with the quintic
 * coefficients (3.4445, -4.7750, 2.0315) of K. Jordan's Muon, on the transpose when rows >
 * cols. out and G are [rows, cols]; work holds muon_work_floats(rows, cols) floats. */
void muon_orthogonalize(float *out, const float *G, size_t rows, size_t cols, size_t steps, float *work);
size_t muon_work_floats(size_t rows, size_t cols);
void muon_orthogonalize_ref(float *out, const float *G, size_t rows, size_t cols, size_t steps);

#endif
