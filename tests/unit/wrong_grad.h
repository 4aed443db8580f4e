/* wrong_grad.h — deliberately wrong gradients, so that the tests can show a gradient check
 * catches them: an op's real backward runs, then what it added to each input's grad is scaled
 * (a gradient 1% off) or, for one input, taken back (a dropped term). Test-only: the state is
 * one static per test binary, which runs single-threaded. */
#ifndef TERN_TEST_WRONG_GRAD_H
#define TERN_TEST_WRONG_GRAD_H

#include <stdlib.h>
#include <string.h>

#include "autodiff/tape.h"

static BackwardFn g_wrong_real; /* the op's own backward */
static float g_wrong_scale;     /* its contribution to every input grad is multiplied by this */
static int g_wrong_drop;        /* except this input's, which is dropped (-1: none) */

static void wrong_backward(Tape *tp, TapeEntry *e) {
    float *before[TAPE_MAX_IN] = {0};
    for (int k = 0; k < e->nin; k++)
        if (e->in[k]->grad) {
            before[k] = malloc(e->in[k]->numel * sizeof(float));
            memcpy(before[k], e->in[k]->grad, e->in[k]->numel * sizeof(float));
        }
    g_wrong_real(tp, e);
    for (int k = 0; k < e->nin; k++) {
        float *g = e->in[k]->grad, s = k == g_wrong_drop ? 0.0f : g_wrong_scale;
        if (!g) continue;
        for (size_t i = 0; i < e->in[k]->numel; i++) {
            float b = before[k] ? before[k][i] : 0.0f;
            g[i] = b + s * (g[i] - b);
        }
        free(before[k]);
    }
}

/* Makes the last entry recorded on tp for `op` wrong (nothing happens in no-grad mode, where
 * nothing was recorded). */
static void wrong_grad_arm(Tape *tp, const char *op, float scale, int drop) {
    for (size_t n = tp->n; n-- > 0;) {
        TapeEntry *e = &tp->entries[n];
        if (strcmp(e->op, op)) continue;
        if (e->backward != wrong_backward) g_wrong_real = e->backward;
        e->backward = wrong_backward;
        g_wrong_scale = scale;
        g_wrong_drop = drop;
        return;
    }
}

#endif
