/* bench_common.h — what the benchmarks share: the best of a few timed runs, a backward pass
 * seeded with a fixed small gradient, and the
 * training-step loop (micro-steps of forward + backward at B = 1, gradient-norm clip 0.3, one
 * optimizer step with the model's default groups) on FineWeb tokens from $TERN_BENCH_SHARD when
 * set, else random tokens. Header-only: each benchmark is one program. */
#ifndef TERN_BENCH_COMMON_H
#define TERN_BENCH_COMMON_H

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "autodiff/tape.h"
#include "data/shard.h"
#include "kernels/util.h"
#include "model/model.h"
#include "optim/optimizer.h"

static inline double best_of(int reps, double (*fn)(void *), void *ud) {
    double best = 1e30;
    fn(ud); /* warm-up: first-touch pages, arena growth */
    for (int r = 0; r < reps; r++) {
        double t = fn(ud);
        if (t < best) best = t;
    }
    return best;
}

/* d(out) = 1e-3 * ((j mod 7) - 3), then every recorded backward, newest first */
static inline void seed_backward(Tape *tp, Tensor *y) {
    float *g = tensor_grad(tp, y);
    for (size_t j = 0; j < y->numel; j++) g[j] = 1e-3f * (float)((int)(j % 7) - 3);
    for (size_t e = tp->n; e-- > 0;) tp->entries[e].backward(tp, &tp->entries[e]);
}

typedef struct TrainRate {
    double fwd_bwd_s, opt_s, loss; /* over `steps` measured steps (after one warm-up step) */
    int real_data;
} TrainRate;

/* `steps` + 1 optimizer steps of `micro` x (1 x T) tokens; the first is a warm-up. */
static inline TrainRate train_rate(Model *m, const char *optim_json, int micro, int steps, size_t T, Rng *rng) {
    Err err = {0};
    TrainRate r = {0};
    cJSON *osec = cJSON_Parse(optim_json);
    Optimizer opt;
    if (optimizer_init(&opt, &m->ps, osec, m->default_groups, NULL, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    size_t ntok = (size_t)(micro * (steps + 1)) * (T + 1);
    int32_t *tok = xmalloc(ntok * sizeof(int32_t));
    const char *data = getenv("TERN_BENCH_SHARD");
    Shard sh;
    r.real_data = data && shard_open(&sh, data, m->vocab, &err) == 0;
    if (r.real_data && sh.ntokens >= ntok) shard_copy(&sh, 0, ntok, tok);
    else
        for (size_t i = 0; i < ntok; i++) tok[i] = (int32_t)rng_below(rng, m->vocab);
    if (r.real_data) shard_close(&sh);
    Tape tp;
    tape_init(&tp, 0);
    float seed = 1.0f / (float)micro; /* the trainer's mean over micro-steps */
    for (int s = 0; s <= steps; s++) {
        params_zero_grad(&m->ps);
        double a = now_seconds();
        for (int k = 0; k < micro; k++) {
            const int32_t *x = tok + (size_t)(s * micro + k) * (T + 1);
            tape_reset(&tp);
            Tensor *l = model_loss(m, &tp, x, x + 1, 1, T, NULL, 1);
            tape_backward_seed(&tp, l, &seed);
            r.loss = l->data[0];
        }
        double b = now_seconds();
        double gn = params_grad_norm(&m->ps);
        if (gn > 0.3) {
            float sc = (float)(0.3 / gn);
            for (size_t i = 0; i < m->ps.total; i++) m->ps.grads[i] *= sc;
        }
        optimizer_step(&opt, 1.0);
        double c = now_seconds();
        if (s > 0) r.fwd_bwd_s += b - a, r.opt_s += c - b;
    }
    tape_free(&tp);
    optimizer_free(&opt);
    xfree(tok);
    cJSON_Delete(osec);
    return r;
}

#endif
