/* Muon's orthogonalisation (K. Jordan, github.com/KellerJordan/Muon; as used by the
 * parameter-golf baseline): X0 = G / (|G|_F + 1e-7), transposed when rows > cols so that
 * X X^T is the smaller Gram matrix; then `steps` times A = X X^T, B = bA + cA^2, X = aX + BX
 * with (a, b, c) = (3.4445, -4.7750, 2.0315). A and A^2 = A A^T are symmetric, so both come
 * from a rank-k update of one triangle (ssyrk: half the FLOPs of a general product), mirrored
 * to the other; X = aX + BX is a general sgemm. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "kernels/gemm.h"
#include "kernels/reduce.h"
#include "optim/optimizer.h"

static const float NS_A = 3.4445f, NS_B = -4.7750f, NS_C = 2.0315f;

/* Copies the upper triangle of the symmetric [m, m] matrix onto the lower one. */
static void mirror_upper(float *A, size_t m) {
    for (size_t i = 1; i < m; i++)
        for (size_t j = 0; j < i; j++) A[i * m + j] = A[j * m + i];
}

size_t muon_work_floats(size_t rows, size_t cols) {
    size_t m = rows < cols ? rows : cols, n = rows < cols ? cols : rows;
    return 2 * m * n + 2 * m * m;
}

void muon_orthogonalize(float *out, const float *G, size_t rows, size_t cols, size_t steps, float *work) {
    int tr = rows > cols;
    size_t m = tr ? cols : rows, n = tr ? rows : cols;
    float *X = work, *X2 = X + m * n, *A = X2 + m * n, *B = A + m * m;
    float inv = (float)(1.0 / (sqrt(reduce_sumsq(G, rows * cols)) + 1e-7));
    if (tr) {
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++) X[j * n + i] = G[i * cols + j] * inv;
    } else {
        for (size_t i = 0; i < m * n; i++) X[i] = G[i] * inv;
    }
    for (size_t s = 0; s < steps; s++) {
        /* A = X X^T (upper triangle), mirrored */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (blasint)m, (blasint)n, 1.0f, X, (blasint)n, 0.0f, A, (blasint)m);
        mirror_upper(A, m);
        /* B = bA + c A A^T (upper triangle), mirrored */
        memcpy(B, A, m * m * sizeof(float));
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (blasint)m, (blasint)m, NS_C, A, (blasint)m, NS_B, B, (blasint)m);
        mirror_upper(B, m);
        memcpy(X2, X, m * n * sizeof(float));
        sgemm(0, 0, m, n, m, 1.0f, B, m, X, n, NS_A, X2, n);    /* X2 = aX + B X */
        float *t = X;
        X = X2;
        X2 = t;
    }
    if (tr) {
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++) out[i * cols + j] = X[j * n + i];
    } else {
        memcpy(out, X, m * n * sizeof(float));
    }
}

void muon_orthogonalize_ref(float *out, const float *G, size_t rows, size_t cols, size_t steps) {
    int tr = rows > cols;
    size_t m = tr ? cols : rows, n = tr ? rows : cols;
    double *X = malloc(m * n * sizeof(double)), *A = malloc(m * m * sizeof(double));
    double *B = malloc(m * m * sizeof(double)), *Y = malloc(m * n * sizeof(double));
    double ss = 0;
    for (size_t i = 0; i < rows * cols; i++) ss += (double)G[i] * G[i];
    double inv = 1.0 / (sqrt(ss) + 1e-7);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            if (tr) X[j * n + i] = G[i * cols + j] * inv;
            else X[i * n + j] = G[i * cols + j] * inv;
        }
    for (size_t s = 0; s < steps; s++) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < m; j++) {
                double acc = 0;
                for (size_t k = 0; k < n; k++) acc += X[i * n + k] * X[j * n + k];
                A[i * m + j] = acc;
            }
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < m; j++) {
                double acc = 0;
                for (size_t k = 0; k < m; k++) acc += A[i * m + k] * A[k * m + j];
                B[i * m + j] = NS_B * A[i * m + j] + NS_C * acc;
            }
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                double acc = 0;
                for (size_t k = 0; k < m; k++) acc += B[i * m + k] * X[k * n + j];
                Y[i * n + j] = NS_A * X[i * n + j] + acc;
            }
        memcpy(X, Y, m * n * sizeof(double));
    }
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) out[i * cols + j] = (float)(tr ? X[j * n + i] : X[i * n + j]);
    free(X);
    free(A);
    free(B);
    free(Y);
}
