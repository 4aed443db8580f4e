#include "autodiff/gradcheck.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/util.h"

/* Rounding of the float32 forward. Each output element is stored in float32 (half an ulp) after
 * reductions that add a few more (dot products in BLAS kernels of any blocking, softmax sums,
 * norms); an output a nudge does not reach is bit-identical in every probe and adds nothing to
 * L(x+h) - L(x-h). A reached element's error is taken as at most kRoundingUlps units of
 * u = FLT_EPSILON/2 times its magnitude. Every gradient check in the unit tests still passes with
 * 2 under the Prescott, Haswell, SkylakeX and Cooperlake kernels (worst err/tol 0.96); 8 leaves
 * a factor 4 for other CPUs and BLAS kernels. */
static const double kRoundingUlps = 8.0;

GradCheckOpts gradcheck_default_opts(void) {
    GradCheckOpts o = {.eps = 1e-3, .atol = 1e-6, .rtol = 2e-3, .max_per_input = 64, .seed = 1234};
    return o;
}

static double probe(Tape *tp, GradCheckFn fn, Tensor **inputs, void *user, const float *w, float *out_copy) {
    tape_reset(tp);
    tape_no_grad_begin(tp);
    Tensor *out = fn(tp, inputs, user);
    double s = 0;
    for (size_t i = 0; i < out->numel; i++) s += (double)w[i] * out->data[i];
    memcpy(out_copy, out->data, out->numel * sizeof(float));
    tape_no_grad_end(tp);
    return s;
}

/* The outputs a nudge of x[i] reaches: those whose four probes are not all equal. When none
 * moved, the change was below every output's rounding and all of them are counted. */
static void mark_reached(float *const out[4], size_t n, unsigned char *reached) {
    size_t any = 0;
    for (size_t j = 0; j < n; j++) {
        reached[j] = out[0][j] != out[1][j] || out[0][j] != out[2][j] || out[0][j] != out[3][j];
        any += reached[j];
    }
    if (!any) memset(reached, 1, n);
}

/* Bound on the rounding in L(a) - L(b): the w-weighted magnitude of the outputs reached. */
static double rounding_bound(const float *a, const float *b, const float *w, const unsigned char *reached, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        if (reached[i]) s += fabs((double)w[i]) * (fabs((double)a[i]) + fabs((double)b[i]));
    return kRoundingUlps * (FLT_EPSILON / 2) * s;
}

typedef struct Probes {
    Tape *tp;
    GradCheckFn fn;
    Tensor **inputs;
    void *user;
    const float *w;
    size_t nout;
    float *out[4]; /* outputs at x+h, x-h, x+2h, x-2h */
    unsigned char *reached;
} Probes;

/* dL/dx[i] by Richardson extrapolation of central differences at h and 2h (D(h) = f' + c h^2 +
 * O(h^4), so (4 D(h) - D(2h)) / 3 = f' + O(h^4)), written for the steps float32 can actually
 * represent (for |x| > 8 the step grows to stay 2^13 ulps of x). err gets what the value
 * may be off by: the rounding bound plus the size of the extrapolation's correction, which is
 * D(h)'s truncation error where f is smooth and large where a kink lies within 2h (there the
 * difference quotients say nothing, and the element is not held to them). */
static double numeric_grad(Probes *p, Tensor *x, size_t i, double eps, double *err) {
    float saved = x->data[i];
    double h = fmax(eps, fabs((double)saved) * 0x1p-13), l[4], step[2], d[2], bound[2];
    for (int s = 0; s < 2; s++) {
        float up = (float)(saved + (s + 1) * h), down = (float)(saved - (s + 1) * h);
        x->data[i] = up;
        l[2 * s] = probe(p->tp, p->fn, p->inputs, p->user, p->w, p->out[2 * s]);
        x->data[i] = down;
        l[2 * s + 1] = probe(p->tp, p->fn, p->inputs, p->user, p->w, p->out[2 * s + 1]);
        step[s] = (double)up - (double)down;
    }
    x->data[i] = saved;
    mark_reached(p->out, p->nout, p->reached);
    for (int s = 0; s < 2; s++) {
        d[s] = (l[2 * s] - l[2 * s + 1]) / step[s];
        bound[s] = rounding_bound(p->out[2 * s], p->out[2 * s + 1], p->w, p->reached, p->nout) / step[s];
    }
    double a2 = step[0] * step[0] / 4, b2 = step[1] * step[1] / 4;
    double r = (b2 * d[0] - a2 * d[1]) / (b2 - a2);
    *err = (b2 * bound[0] + a2 * bound[1]) / (b2 - a2) + fabs(r - d[0]);
    return r;
}

static void print_result(const char *name, const GradCheckOpts *o, const GradCheckResult *r) {
    printf("gradcheck %-28s %5zu elements  max abs err %.3e  max rel err %.3e  worst err/tol %.2f  (rtol %.0e)  %s\n",
           name, r->checked, r->max_abs_err, r->max_rel_err, r->worst_ratio, o->rtol, r->failed ? "FAIL" : "ok");
    if (r->failed)
        printf("  worst: input %d element %zu analytic %.6e numeric %.6e tolerance %.2e (%zu failed)\n", r->worst_input,
               r->worst_index, r->worst_analytic, r->worst_numeric, r->worst_tol, r->failed);
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
    Probes p = {.tp = &tp, .fn = fn, .inputs = inputs, .user = user, .w = w, .nout = nout};
    for (int s = 0; s < 4; s++) p.out[s] = xmalloc(nout * sizeof(float));
    p.reached = xmalloc(nout);
    for (int k = 0; k < nin; k++) {
        Tensor *x = inputs[k];
        if (!x->requires_grad) continue;
        size_t n = x->numel, count = n < o.max_per_input ? n : o.max_per_input;
        for (size_t c = 0; c < count; c++) {
            size_t i = n <= o.max_per_input ? c : (size_t)rng_below(&rng, n);
            double bound;
            double num = numeric_grad(&p, x, i, o.eps, &bound);
            double an = analytic[k][i];
            double abs_err = fabs(an - num);
            double mag = fmax(fabs(an), fabs(num));
            double tol = o.atol + o.rtol * mag + bound;
            r.checked++;
            if (!(abs_err <= tol)) r.failed++;
            if (abs_err > r.max_abs_err) r.max_abs_err = abs_err;
            if (mag > tol && abs_err / mag > r.max_rel_err) r.max_rel_err = abs_err / mag;
            double ratio = isnan(abs_err) ? INFINITY : abs_err / tol;
            if (ratio > r.worst_ratio || r.worst_input < 0) {
                r.worst_ratio = ratio;
                r.worst_input = k;
                r.worst_index = i;
                r.worst_analytic = an;
                r.worst_numeric = num;
                r.worst_tol = tol;
            }
        }
    }
    print_result(name, &o, &r);
    for (int s = 0; s < 4; s++) xfree(p.out[s]);
    xfree(p.reached);
    for (int k = 0; k < nin; k++) xfree(analytic[k]);
    xfree(analytic);
    xfree(w);
    tape_free(&tp);
    if (res) *res = r;
    return r.failed ? 1 : 0;
}
