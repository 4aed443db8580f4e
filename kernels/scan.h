/* scan.h — first-order linear recurrences h_t = a_t * h_{t-1} + x_t (h_{-1} = 0), forward and
 * backward, with three parallel strategies and a naive reference.
 *
 * Shapes (row-major, C contiguous):
 *   a      [B, T, C]      decay per batch, time, channel
 *   x, h   [B, T, R, C]   R right-hand sides that share a (TRN: R = 2, the real and imaginary
 *                         drives of a complex state with a real decay)
 *
 * The recurrence is the prefix composition of the affine maps s -> a_t s + x_t under the
 * associative operator (a1, x1) o (a2, x2) = (a1 a2, a2 x1 + x2) (Blelloch 1990, "Prefix sums
 * and their applications"; Martin & Cundy 2018 for linear RNNs).
 *
 * Backward (reverse-mode, g = dL/dh):
 *   lam_t = g_t + a_{t+1} lam_{t+1}         (lam_{T-1} = g_{T-1}: the same recurrence run
 *                                            backwards with the coefficients shifted by one)
 *   dx_t += lam_t
 *   da_t += sum_r lam_{t,r} h_{t-1,r}      (h_{-1} = 0)
 * Every kind ACCUMULATES into da and dx. No kind ever divides by a cumulative product of a
 * (the PR #669 CPU fallback does, and breaks when the product underflows).
 *
 * Kinds:
 *   SCAN_SEQUENTIAL  the plain loop over t, parallel over (batch, blocks of 64 channels) and
 *                    vectorised over channels: O(T C) work, the state stays in L1.
 *   SCAN_KOGGE_STONE the Kogge-Stone prefix network (Kogge & Stone 1973): ceil(log2 T) passes,
 *                    each parallel over (batch, time): O(T log T C) work, depth log T. What
 *                    PR #669 runs on the GPU.
 *   SCAN_CHUNKED     two-level: local scans of 64-step chunks in parallel, a sequential pass
 *                    over the chunk carries, then a parallel fix-up: about 2x the sequential
 *                    work, but parallel over (batch, chunks, channels) for short, wide-batch-poor
 *                    problems.
 * Results of all kinds agree to float rounding; each kind is bit-reproducible for any thread
 * count (no cross-thread reductions). experiments/bench/TRN.md has the timings that chose
 * scan_default_kind(). */
#ifndef TERN_SCAN_H
#define TERN_SCAN_H

#include <stddef.h>

typedef enum ScanKind {
    SCAN_SEQUENTIAL = 0,
    SCAN_KOGGE_STONE,
    SCAN_CHUNKED,
    SCAN_COUNT
} ScanKind;

const char *scan_kind_name(ScanKind k);
/* "sequential" | "kogge_stone" | "chunked" | "auto" (= scan_default_kind); -1 if unknown */
int scan_kind_from_name(const char *s);
ScanKind scan_default_kind(void);

/* Floats of workspace the kind needs (0 for SCAN_SEQUENTIAL). */
size_t scan_workspace_floats(ScanKind k, size_t B, size_t T, size_t R, size_t C);

/* h = scan(a, x). work: scan_workspace_floats floats (may be NULL when that is 0). */
void scan_forward(ScanKind k, float *h, const float *a, const float *x, size_t B, size_t T, size_t R,
                  size_t C, float *work);
/* da += ..., dx += ... (see above) from dh; a and h are the forward's. */
void scan_backward(ScanKind k, float *da, float *dx, const float *dh, const float *a, const float *h,
                   size_t B, size_t T, size_t R, size_t C, float *work);

/* Naive references: one channel at a time, double accumulators. */
void scan_forward_ref(float *h, const float *a, const float *x, size_t B, size_t T, size_t R, size_t C);
void scan_backward_ref(float *da, float *dx, const float *dh, const float *a, const float *h, size_t B,
                       size_t T, size_t R, size_t C);

#endif
