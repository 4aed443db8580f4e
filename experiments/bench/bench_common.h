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
#include <string.h>

#include "autodiff/tape.h"
#include "data/shard.h"
#include "kernels/util.h"
#include "model/block.h"
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

/* One block kind alone on a [B, T, C] input: forward + backward timed by best_of(block_bench_run).
 * block_bench_init reads the kind's keys from cfg_json over the caller's stack config sc. */
typedef struct BlockBench {
    const BlockKind *k;
    void *cfg, *inst;
    StackConfig sc;
    ParamStore ps;
    BufferStore bs; /* the kind's buffers (MoE's routing bias) and per-step counters */
    float *step;
    Tensor *h;
    Tape tp;
} BlockBench;

static inline void block_bench_init(BlockBench *b, const char *kind, const char *cfg_json, const StackConfig *sc,
                                    const char *prefix, size_t B, size_t T, Rng *rng) {
    Err err = {0};
    memset(b, 0, sizeof *b);
    b->k = block_kind_find(kind);
    b->sc = *sc;
    b->cfg = xcalloc(1, b->k->cfg_bytes);
    b->inst = xcalloc(1, b->k->inst_bytes);
    b->k->defaults(b->cfg);
    cJSON *c = cJSON_Parse(cfg_json);
    if (cfg_read(c, "model", b->k->fields, b->k->nfields, b->cfg, &err) || b->k->resolve(b->cfg, &b->sc, 1, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    cJSON_Delete(c);
    params_init(&b->ps);
    b->k->add_params(b->inst, b->cfg, &b->sc, &b->ps, prefix);
    params_finalize(&b->ps);
    b->k->init(b->inst, b->cfg, &b->sc, rng);
    buffers_init(&b->bs);
    size_t nstep = b->k->step_floats ? b->k->step_floats(b->cfg, &b->sc) : 0;
    b->step = xcalloc(nstep ? nstep : 1, sizeof(float));
    if (b->k->add_buffers) b->k->add_buffers(b->inst, b->cfg, &b->sc, &b->bs, prefix, nstep ? b->step : NULL);
    for (size_t i = 0; i < b->ps.n; i++) b->ps.t[i]->requires_grad = 1;
    b->h = tensor_create(3, (size_t[]){B, T, b->sc.dim}, 1, "h");
    rng_fill_normal(rng, b->h->data, b->h->numel, 0, 1);
    tape_init(&b->tp, 0);
}

static inline double block_bench_run(void *p) {
    BlockBench *b = p;
    double t0 = now_seconds();
    tape_reset(&b->tp);
    BlockCtx ctx = {NULL, &b->tp, b->h->shape[0], b->h->shape[1], 1, &b->sc, NULL, 0};
    seed_backward(&b->tp, b->k->forward(b->inst, b->cfg, &ctx, b->h));
    return now_seconds() - t0;
}

static inline void block_bench_free(BlockBench *b) {
    tape_free(&b->tp);
    tensor_destroy(b->h);
    params_free(&b->ps);
    if (b->k->free_inst) b->k->free_inst(b->inst);
    buffers_free(&b->bs);
    xfree(b->cfg), xfree(b->inst), xfree(b->step);
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
