/* gradcheck.h — finite-difference gradient checking for ops and whole models.
 *
 * fn builds an output from `inputs` on the tape. The scalar probed is L = sum_i w_i out_i with
 * fixed random weights w (accumulated in double), so every output element contributes.
 * Analytic: one backward seeded with w. Numeric, on up to max_per_input sampled elements of each
 * input that requires grad (all when fewer): central differences at steps h = eps and 2h,
 * combined by Richardson extrapolation, which cancels the O(h^2) truncation term
 * (error O(h^4)); what is left is float32 rounding in the forward, bounded per element from the
 * outputs the nudge changed (see gradcheck.c). An element passes when
 *   |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|) + rounding bound.
 * The bound makes the check hold whatever BLAS kernel or CPU computes the forward; rtol and atol
 * only cover the analytic side's own rounding, so they can stay tight enough to catch a
 * gradient that is 1% off. Callers keep kinks (relu at 0) more than 2 * eps away. */
#ifndef TERN_GRADCHECK_H
#define TERN_GRADCHECK_H

#include "autodiff/tape.h"
#include "kernels/rng.h"

typedef Tensor *(*GradCheckFn)(Tape *tp, Tensor **inputs, void *user);

typedef struct GradCheckOpts {
    double eps, atol, rtol;
    size_t max_per_input;
    uint64_t seed;
} GradCheckOpts;

typedef struct GradCheckResult {
    size_t checked, failed;
    double max_abs_err, max_rel_err;
    double worst_ratio;            /* max over elements of |analytic - numeric| / tolerance */
    double worst_analytic, worst_numeric, worst_tol;
    int worst_input;
    size_t worst_index;
} GradCheckResult;

GradCheckOpts gradcheck_default_opts(void);
/* Inputs are heap tensors (tensor_create); their grads are zeroed here. Returns 0 when all
 * checked elements pass. Prints one summary line to stdout prefixed with `name`. */
int gradcheck(const char *name, GradCheckFn fn, Tensor **inputs, int nin, void *user,
              const GradCheckOpts *opts, GradCheckResult *res);

#endif
