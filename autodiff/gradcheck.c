#include "autodiff/gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/util.h"

GradCheckOpts gradcheck_default_opts(void) {
    GradCheckOpts o = {.eps = 1e-3, .atol = 2e-4, .rtol = 1e-2, .max_per_input = 64, .seed = 1234};
    return o;
}

static double probe(Tape *tp, GradCheckFn fn, Tensor **inputs, void *user, const float *w) {
    tape_reset(tp);
    tape_no_grad_begin(tp);
    Tensor *out = fn(tp, inputs, user);
    double s = 0;
    for (size_t i = 0; i < out->numel; i++) s += (double)w[i] * out->data[i];
    tape_no_grad_end(tp);
    return s;
}

int gradcheck(const char *name, GradCheckFn fn, Tensor **inputs, int nin, void *user,
              const GradCheckOpts *opts, GradCheckResult *res) {
    GradCheckOpts o = opts ? *opts : gradcheck_default_opts();
    GradCheckResult r;
    memset(&r, 0, sizeof r);
    r.worst_input = -1;
    Tape tp;
    tape_init(&tp, 1 << 20);
    Rng rng;
    rng_seed(&rng, o.seed);

    for (int k = 0; k < nin; k++)
        if (inputs[k]->requires_grad) memset(inputs[k]->grad, 0, inputs[k]->numel * sizeof(float));

    /* analytic */
    Tensor *out = fn(&tp, inputs, user);
    size_t nout = out->numel;
    float *w = xmalloc(nout * sizeof(float));
    for (size_t i = 0; i < nout; i++) w[i] = (float)(rng_uniform(&rng) * 2.0 - 1.0);
    tape_backward_seed(&tp, out, w);
    float **analytic = xcalloc((size_t)nin, sizeof(float *));
    for (int k = 0; k < nin; k++) {
        if (!inputs[k]->requires_grad) continue;
        analytic[k] = xmalloc(inputs[k]->numel * sizeof(float));
        memcpy(analytic[k], inputs[k]->grad, inputs[k]->numel * sizeof(float));
    }

    /* numeric */
    double worst_excess = -1;
    for (int k = 0; k < nin; k++) {
        Tensor *x = inputs[k];
        if (!x->requires_grad) continue;
        size_t n = x->numel, count = n < o.max_per_input ? n : o.max_per_input;
        for (size_t c = 0; c < count; c++) {
            size_t i = n <= o.max_per_input ? c : (size_t)rng_below(&rng, n);
            float saved = x->data[i];
            x->data[i] = saved + (float)o.eps;
            double lp = probe(&tp, fn, inputs, user, w);
            x->data[i] = saved - (float)o.eps;
            double lm = probe(&tp, fn, inputs, user, w);
            x->data[i] = saved;
            /* use the actually representable step */
            double step = (double)(saved + (float)o.eps) - (double)(saved - (float)o.eps);
            double num = (lp - lm) / step;
            double an = analytic[k][i];
            double abs_err = fabs(an - num);
            double mag = fmax(fabs(an), fabs(num));
            double rel = mag > 0 ? abs_err / mag : 0;
            double tol = o.atol + o.rtol * mag;
            r.checked++;
            if (abs_err > tol) r.failed++;
            if (abs_err > r.max_abs_err) r.max_abs_err = abs_err;
            if (mag > o.atol && rel > r.max_rel_err) r.max_rel_err = rel;
            if (abs_err - tol > worst_excess) {
                worst_excess = abs_err - tol;
                r.worst_input = k;
                r.worst_index = i;
                r.worst_analytic = an;
                r.worst_numeric = num;
            }
        }
    }
    printf("gradcheck %-28s %5zu elements  max abs err %.3e  max rel err %.3e  (atol %.0e rtol %.0e)  %s\n",
           name, r.checked, r.max_abs_err, r.max_rel_err, o.atol, o.rtol, r.failed ? "FAIL" : "ok");
    if (r.failed)
        printf("  worst: input %d element %zu analytic %.6e numeric %.6e (%zu failed)\n", r.worst_input,
               r.worst_index, r.worst_analytic, r.worst_numeric, r.failed);
    for (int k = 0; k < nin; k++) xfree(analytic[k]);
    xfree(analytic);
    xfree(w);
    tape_free(&tp);
    if (res) *res = r;
    return r.failed ? 1 : 0;
}
