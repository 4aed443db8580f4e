/* memplan.h — the memory a training run will take, known before its big allocations, so that a
 * run the machine cannot hold is refused with one line instead of dying in step 1.
 *
 * params: the flat value and grad buffers (exact; params_finalize already refused a model
 * whose buffers alone cannot fit). optimizer: state_a and state_b, one float each per parameter
 * whatever the group's type (optim/optimizer.h), the Muon Newton–Schulz workspace (added once
 * the groups are known), the sharded-Muon update buffer with several ranks, the two EMA copies.
 * activations: the per-step arena (autodiff/arena.h) of a training micro-step and, with
 * validation, the evaluation arena beside it (both stay allocated). data: token buffers.
 * base: what the process holds besides the parameters (code, libraries, BLAS buffers, RoPE
 * tables), read from its resident set.
 *
 * The arena is measured, not modelled: every allocation an op makes is proportional to B*T
 * (activations and their grads), to T alone (the attention backward's per-thread score
 * blocks), or constant (tensor headers, fake-quantized weight copies), so its high-water mark
 * is exactly c0 + c1 T + c2 B T. Three forward(+backward) probes on short zero-token windows —
 * (1, T/2), (1, T), (2, T) with T = min(seq_len, 32) — fix the three coefficients, and the
 * plan extrapolates to (micro_batch, seq_len); QAT's weight copies (a constant) take one more
 * probe with the fake quantization on. The probes touch no model state (the training-forward
 * counter and the QAT switch are restored, grads are zeroed after). */
#ifndef TERN_MEMPLAN_H
#define TERN_MEMPLAN_H

#include <stddef.h>

#include "kernels/util.h"
#include "model/model.h"

typedef struct MemPlanShape {
    size_t B, T;       /* micro-batch and sequence length of a training micro-step */
    size_t tokens;     /* token-buffer length the trainer keeps (B*T, or all micro-steps with MeZO) */
    size_t eval_B;     /* validation batch (0 = no validation) */
    int forward_only;  /* MeZO: training scores without a backward pass */
    int ema, world;
    ParamStore *train;       /* the trained store when not the model's (LoRA: the adapters; the
                                model's own are frozen, values only); NULL = the model's */
} MemPlanShape;

typedef struct MemPlan {
    size_t params, optimizer, activations, data, base;
    size_t total;      /* what the run's peak resident set should be */
    size_t available;  /* what it holds now plus what the machine still gives it */
    const char *limit; /* the bound that decided `available` (kernels/meminfo.h) */
} MemPlan;

/* Measures the arenas on m (built, parameters allocated) and fills p. */
void memplan_measure(MemPlan *p, Model *m, const MemPlanShape *s);
/* Adds bytes to the optimizer's share (the Muon workspace, once the groups are resolved). */
void memplan_add_optimizer(MemPlan *p, size_t bytes);
/* -1 with "needs ~X (params A, optimizer B, activations C, other D), only Y available (limit)"
 * when the plan exceeds what is available. */
int memplan_check(const MemPlan *p, Err *err);
/* One line: "~X peak (params A, optimizer B, activations C, other D); Y available (limit)". */
void memplan_describe(const MemPlan *p, char *buf, size_t n);

#endif
