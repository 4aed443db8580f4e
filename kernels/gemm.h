/* gemm.h — single-precision matrix multiply, row-major.
 *
 * C[M,N] = alpha * op(A) op(B) + beta * C, op(X) = X or X^T.
 * A is [M,K] (or [K,M] when ta), B is [K,N] (or [N,K] when tb); lda/ldb/ldc are row strides.
 * sgemm goes through CBLAS (OpenBLAS); sgemm_ref is the naive triple loop tests compare with.
 * Inside an OpenMP parallel region OpenBLAS (OpenMP build) runs single-threaded, which is what
 * the per-head attention loops want. */
#ifndef TERN_GEMM_H
#define TERN_GEMM_H

#include <stddef.h>

void sgemm(int ta, int tb, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
           const float *B, size_t ldb, float beta, float *C, size_t ldc);
void sgemm_ref(int ta, int tb, size_t M, size_t N, size_t K, float alpha, const float *A,
               size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* y[M] = alpha * op(A) x + beta * y */
void sgemv(int ta, size_t M, size_t N, float alpha, const float *A, size_t lda, const float *x,
           float beta, float *y);

/* Name of the BLAS library and its configured threading (for logs and benchmarks). */
void blas_info(char *buf, size_t n);
void blas_set_threads(int n);

#endif
