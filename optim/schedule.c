#include "optim/schedule.h"

#include <math.h>
#include <string.h>

#include "kernels/util.h"

#define F(type, m, h) CFG_F(type, Schedule, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, Schedule, m, lo, hi, h)
const CfgField kScheduleFields[] = {
    F(CFG_STRING, kind, "constant | cosine | warmdown"),
    R(CFG_SIZE, warmup_steps, 0, 1e15, "linear warm-up steps"),
    R(CFG_SIZE, warmdown_steps, 0, 1e15, "warmdown: linear decay to 0 over the last N steps"),
    R(CFG_FLOAT, min_lr_frac, 0, 1, "cosine: final multiplier"),
};
#undef F
#undef R
const size_t kScheduleFieldCount = sizeof kScheduleFields / sizeof kScheduleFields[0];

void schedule_defaults(Schedule *s) {
    memset(s, 0, sizeof *s);
    strcpy(s->kind, "warmdown");
    s->warmdown_steps = 1200;
}

int schedule_validate(const Schedule *s, Err *err) {
    if (strcmp(s->kind, "constant") && strcmp(s->kind, "cosine") && strcmp(s->kind, "warmdown"))
        return err_set(err, "config: optim.schedule.kind must be constant, cosine or warmdown, got \"%s\"", s->kind);
    return 0;
}

double schedule_lr_mult(const Schedule *s, uint64_t step, double elapsed) {
    double warm = s->warmup_steps ? fmin(1.0, (double)(step + 1) / (double)s->warmup_steps) : 1.0;
    return warm * schedule_decay_mult(s, step, elapsed);
}

double schedule_decay_mult(const Schedule *s, uint64_t step, double elapsed) {
    double m = 1.0;
    if (!strcmp(s->kind, "cosine") && s->total_steps) {
        double f = fmin(1.0, (double)step / (double)s->total_steps);
        m = s->min_lr_frac + (1 - s->min_lr_frac) * 0.5 * (1 + cos(M_PI * f));
    } else if (!strcmp(s->kind, "warmdown") && s->warmdown_steps) {
        if (s->max_seconds > 0) {
            double step_s = elapsed / (double)(step > 0 ? step : 1);
            double window = (double)s->warmdown_steps * step_s;
            double remaining = fmax(s->max_seconds - elapsed, 0.0);
            m = remaining <= window ? remaining / fmax(window, 1e-9) : 1.0;
        } else if (s->total_steps) {
            uint64_t start = s->total_steps > s->warmdown_steps ? s->total_steps - s->warmdown_steps : 0;
            if (step >= start && step < s->total_steps)
                m = fmax((double)(s->total_steps - step) / (double)s->warmdown_steps, 0.0);
            else if (step >= s->total_steps)
                m = 0.0;
        }
    }
    return m;
}

#define E(type, m, h) CFG_F(type, Ema, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, Ema, m, lo, hi, h)
const CfgField kEmaFields[] = {
    E(CFG_BOOL, enabled, "keep an EMA of the weights for eval and checkpoints"),
    R(CFG_FLOAT, decay, 0, 1, "EMA decay per step, in (0, 1) when enabled"),
    R(CFG_FLOAT, start_frac, 0, 1, "start averaging after this fraction of the budget"),
};
#undef E
#undef R
const size_t kEmaFieldCount = sizeof kEmaFields / sizeof kEmaFields[0];

void ema_defaults(Ema *e) {
    memset(e, 0, sizeof *e);
    e->decay = 0.997;
    e->start_frac = 0.5;
}

void ema_init(Ema *e, const ParamStore *ps) {
    if (!e->enabled) return;
    e->n = ps->total;
    e->shadow = xmalloc(e->n * sizeof(float));
    e->swap = xmalloc(e->n * sizeof(float));
    memcpy(e->shadow, ps->values, e->n * sizeof(float));
}

void ema_free(Ema *e) {
    xfree(e->shadow);
    xfree(e->swap);
    e->shadow = e->swap = NULL;
}

void ema_update(Ema *e, const ParamStore *ps, double progress) {
    if (!e->enabled) return;
    float *s = e->shadow;
    const float *p = ps->values;
    size_t n = e->n;
    if (progress < e->start_frac) {
        memcpy(s, p, n * sizeof(float)); /* track the weights until averaging starts */
        return;
    }
    e->started = 1;
    float d = (float)e->decay;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) s[i] = d * s[i] + (1.0f - d) * p[i];
}

void ema_swap(Ema *e, ParamStore *ps) {
    if (!e->enabled) return;
    memcpy(e->swap, ps->values, e->n * sizeof(float));
    memcpy(ps->values, e->shadow, e->n * sizeof(float));
    memcpy(e->shadow, e->swap, e->n * sizeof(float));
}
