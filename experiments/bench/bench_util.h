/* bench_util.h — what the benchmark programs share: the best of a few timed runs after a warm-up,
 * and a backward pass seeded with a fixed small gradient. */
#ifndef TERN_BENCH_UTIL_H
#define TERN_BENCH_UTIL_H

#include "autodiff/tape.h"

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

#endif
