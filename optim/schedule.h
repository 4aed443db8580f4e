/* schedule.h — learning-rate multipliers, EMA of the weights.
 *
 * The multiplier is the product of a linear warm-up (0 -> 1 over warmup_steps) and the kind:
 *   constant: 1;
 *   cosine:   min + (1 - min) * (1 + cos(pi * s / total)) / 2 over total_steps;
 *   warmdown: the parameter-golf rule — 1 until the last warmdown_steps, then linear to 0;
 *             with a time budget (max_seconds > 0) its wall-clock form: the step time is
 *             estimated from elapsed time so far, the warm-down window is warmdown_steps of those
 *             steps, and the multiplier is remaining_time / window once that drops below 1.
 * (train_gpt.py lr_mul). */
#ifndef TERN_SCHEDULE_H
#define TERN_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "autodiff/params.h"
#include "kernels/jsoncfg.h"

typedef struct Schedule {
    char kind[CFG_STR_MAX]; /* constant | cosine | warmdown */
    size_t warmup_steps, warmdown_steps;
    double min_lr_frac;
    /* filled by the trainer from the run's budget */
    uint64_t total_steps;
    double max_seconds;
} Schedule;

extern const CfgField kScheduleFields[];
extern const size_t kScheduleFieldCount;
void schedule_defaults(Schedule *s);
int schedule_validate(const Schedule *s, Err *err);
double schedule_lr_mult(const Schedule *s, uint64_t step, double elapsed_seconds);
/* The multiplier without the warm-up factor: what late QAT watches, so that a warm-up (a small
 * multiplier at the start) does not switch quantization on. */
double schedule_decay_mult(const Schedule *s, uint64_t step, double elapsed_seconds);

typedef struct Ema {
    int enabled;
    double decay, start_frac;
    float *shadow;      /* flat copy of the parameters */
    float *swap;        /* scratch for swapping in/out */
    size_t n;
    int started;
} Ema;

extern const CfgField kEmaFields[];
extern const size_t kEmaFieldCount;
void ema_defaults(Ema *e);
void ema_init(Ema *e, const ParamStore *ps);
void ema_free(Ema *e);
/* After an optimizer step; `progress` in [0, 1] is the fraction of the budget used. */
void ema_update(Ema *e, const ParamStore *ps, double progress);
/* Swap EMA weights into the model (and back): used around evaluation and checkpoint writes. */
void ema_swap(Ema *e, ParamStore *ps);

#endif
