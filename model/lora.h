/* lora.h — low-rank adapters (Hu et al. 2021, LoRA) attached to a model's linear layers, used by
 * score-first test-time training at evaluation (parameter-golf records/…/LoRA_TTT):
 * y = x W^T + (x A^T) B^T with A [r, in] ~ U(-1/sqrt(in), 1/sqrt(in)) and B [out, r] = 0, so a
 * fresh adapter changes nothing until trained. Adapters live in their own ParamStore; the model's
 * own parameters are untouched. */
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
} Lora;

/* Adapters of rank r on every 2-D parameter whose name matches one of the globs, and on the
 * output head when head != 0. Returns the number of adapted matrices (>= 0) or -1. */
int lora_attach(Model *m, size_t rank, const char *const *globs, size_t nglobs, int head, Err *err);
void lora_detach(Model *m);
/* Fresh adapters: A uniform, B zero. */
void lora_reset(Model *m, Rng *rng);
/* The adapter's contribution for weight W applied to x, or NULL when W has none. */
Tensor *lora_delta(Model *m, Tape *tp, Tensor *x, const Tensor *W);
/* Logits of the output head: x W^T plus the head adapter when attached. */
Tensor *model_head(Model *m, Tape *tp, Tensor *x, Tensor *W);

#endif
