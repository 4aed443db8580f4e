/* lora.h — low-rank adapters (Hu et al. 2021, LoRA, arXiv 2106.09685) attached to a model's
 * linear layers: y = x W^T + s (drop(x) A^T) B^T with s = alpha / r, A [r, in] ~
 * U(-1/sqrt(in), 1/sqrt(in)) and B [out, r] = 0, so a fresh adapter changes nothing until
 * trained. Used by score-first test-time training at evaluation (parameter-golf
 * records/…/LoRA_TTT; s = 1, no dropout) and by LoRA fine-tuning (train.lora, train/README.md),
 * where the base is frozen (params_freeze) and only the adapters' store is trained. Adapters
 * live in their own ParamStore; the model's own parameters are untouched until lora_merge. */
#ifndef TERN_LORA_H
#define TERN_LORA_H

#include <stddef.h>

#include "model/model.h"

typedef struct Lora {
    ParamStore ps;       /* adapter parameters: lora.<param>.A / .B, lora.head.A / .B */
    int32_t *pair_of;    /* per model parameter index: adapter pair index or -1 */
    Tensor **A, **B;
    size_t npairs, rank;
    Tensor *headA, *headB;
    float scale;         /* alpha / r (1 for test-time training) */
    float dropout;       /* on the adapter's input path, training forwards only */
    uint64_t seed;       /* dropout masks: hash of (seed, training forward, pair) */
    int training;        /* set by model_forward: the current forward is a training one */
    uint64_t forward_id; /* the model's training-forward count at that forward */
} Lora;

/* Adapters of rank r on every 2-D parameter whose name matches one of the globs, and on the
 * output head when head != 0. Returns the number of adapted matrices (>= 0) or -1. */
int lora_attach(Model *m, size_t rank, const char *const *globs, size_t nglobs, int head, Err *err);
void lora_detach(Model *m);
/* Fresh adapters: A uniform, B zero. */
void lora_reset(Model *m, Rng *rng);
/* The adapter's contribution for weight W applied to x, or NULL when W has none. */
Tensor *lora_delta(Model *m, Tape *tp, Tensor *x, const Tensor *W);
/* x W^T (+ b) plus W's adapter as one op (op_lora_linear), or NULL when W has none. */
Tensor *lora_apply(Model *m, Tape *tp, Tensor *x, Tensor *W, Tensor *b);
/* The adapted linear on its own as a composition of ops, the reference of op_lora_linear:
 * x W^T (+ b) + scale * (dropout(x) A^T) B^T. x [.., in], W [out, in], A [r, in], B [out, r];
 * dropout p in [0, 1) with mask key `key` (p = 0: none). */
Tensor *lora_linear(Tape *tp, Tensor *x, Tensor *W, Tensor *b, Tensor *A, Tensor *B, float scale, float p, uint64_t key);
/* Scaling and dropout of every adapter (lora_attach sets 1 and 0). */
void lora_configure(Model *m, float scale, float dropout, uint64_t seed);
/* Folds the adapters into the weights, W += scale * B A (the head's into the untied head or the
 * tied embedding), and detaches them: the model then computes what it computed with them, up to
 * float rounding, without them. */
void lora_merge(Model *m);
/* FNV-1a (64-bit) over every parameter's name, shape and value bits, in store order: identifies
 * a LoRA run's base weights (train.lora.base_hash). */
uint64_t lora_params_hash(const ParamStore *ps);
/* Logits of the output head: x W^T plus the head adapter when attached. */
Tensor *model_head(Model *m, Tape *tp, Tensor *x, Tensor *W);

#endif
