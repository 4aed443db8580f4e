/* gemm_small.h — a register-blocked sgemm for the small per-chunk products of the chunkwise
 * recurrent kernels (kernels/delta.c, kernels/mlstm.c: 32..128 x 64..65 matrices, tens of
 * thousands of calls per training step, each inside one OpenMP thread).
 *
 * Same contract as sgemm (kernels/gemm.h): C[M,N] = alpha op(A) op(B) + beta C, row-major with row
 * strides, op(X) = X or X^T; beta == 0 never reads C. Its reference is sgemm_ref.
 *
 * Why not OpenBLAS here: at these sizes a BLAS call spends a large share of its time packing A and
 * B and choosing its path, and its speed depends on the core OpenBLAS picked (with the Haswell
 * AVX2 kernels the chunked cells ran 1.45x slower than with SkylakeX's on the project's Zen 5 VM;
 * experiments/chimera/README.md). gemm_small packs only op(B), once per call (an untransposed B
 * is read in place, its ragged last columns padded), and keeps a tile of C in registers: 8 rows
 * x 2 vectors of 16 floats with AVX-512, 6 x 2 x 8 otherwise (GCC vector extensions, so any ISA
 * compiles it). Products whose panel would not fit GEMM_SMALL_MAX_PANEL floats go to sgemm.
 * Deterministic: each C entry sums its K products in
 * order p = 0 .. K-1, whatever M, N or the thread. */
#ifndef TERN_GEMM_SMALL_H
#define TERN_GEMM_SMALL_H

#include <stddef.h>

/* the largest op(B) panel (K x N rounded up to the vector width) gemm_small packs, in floats */
#define GEMM_SMALL_MAX_PANEL (128 * 128)

/* Triangular shapes the chunk kernels know: the skipped products are exact zeros (GEMM_A_*), or
 * entries the caller overwrites (GEMM_C_LOWER), so about half the work goes for square ones. */
typedef enum GemmTri {
    GEMM_FULL = 0,
    GEMM_A_LOWER, /* op(A)[i][p] == 0 for p > i: row i sums over p <= i only */
    GEMM_A_UPPER, /* op(A)[i][p] == 0 for p < i */
    GEMM_C_LOWER  /* only C[i][j], j <= i, is wanted; entries above the diagonal are left undefined
                   * (some are written, some not) */
} GemmTri;

void gemm_small(int ta, int tb, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda, const float *B,
                size_t ldb, float beta, float *C, size_t ldc);

void gemm_small_tri(int ta, int tb, GemmTri tri, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                    const float *B, size_t ldb, float beta, float *C, size_t ldc);

#endif
