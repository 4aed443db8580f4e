/* gemm_small.c — the register-blocked small sgemm (kernels/gemm_small.h). */
#include "kernels/gemm_small.h"

/* a * b + c as one FMA: ISO C mode (-std=c11) turns GCC's contraction off, which halves the tiles'
 * throughput (separate multiply and add); the result is deterministic either way */
#pragma GCC optimize("fp-contract=fast")

#include <string.h>

#include "kernels/gemm.h"
#include "kernels/util.h"

#if defined(__AVX512F__)
#define VW 16 /* floats per vector */
#define MR 8  /* rows of a C tile: 2 MR accumulators + 2 B vectors + 1 broadcast of 32 registers */
#else
#define VW 8
#define MR 6 /* of 16 registers */
#endif
#define NR (2 * VW) /* columns of a C tile */
/* keeps a B vector in a register: without it GCC folds the load into every FMA that uses it,
 * and the loads (2 MR + MR per k) rather than the FMAs bound the loop */
#if defined(__GNUC__) && defined(__AVX__) /* a vector register that holds a whole vf */
#define IN_REG(v) __asm__("" : "+v"(v))
#else
#define IN_REG(v) (void)0
#endif
typedef float vf __attribute__((vector_size(VW * sizeof(float))));

/* through memcpy: unaligned rows, and no vector return value (the ABI of a 64-byte return
 * depends on the ISA) */
static inline void vload(vf *v, const float *p) { memcpy(v, p, sizeof *v); }

/* one column block j0 of C, nv vectors wide (1 or 2), for rows i0 .. i0 + rows - 1 (rows <= MR):
 * C = alpha op(A)[:, p0..p1) Bp[p0..p1) + beta C with op(A)(i, p) = A[i ar + p ap]; Bp rows of
 * stride Np hold op(B) (zero beyond column N when packed) */
static inline __attribute__((always_inline)) void tile(float *C, size_t ldc, const float *A, size_t ar, size_t ap,
                                                       const float *Bp, size_t Np, size_t p0, size_t p1, size_t i0,
                                                       size_t rows, size_t j0, size_t N, float alpha, float beta,
                                                       const size_t nv) {
    vf c[MR][2];
    for (size_t r = 0; r < MR; r++) c[r][0] = c[r][1] = (vf){0};
    const float *a0 = A + i0 * ar;
    if (rows == MR) {
        for (size_t p = p0; p < p1; p++) {
            vf b0, b1 = {0};
            vload(&b0, Bp + p * Np + j0);
            IN_REG(b0);
            if (nv == 2) {
                vload(&b1, Bp + p * Np + j0 + VW);
                IN_REG(b1);
            }
            const float *ap0 = a0 + p * ap;
            for (size_t r = 0; r < MR; r++) {
                float a = ap0[r * ar];
                c[r][0] += a * b0;
                if (nv == 2) c[r][1] += a * b1;
            }
        }
    } else {
        for (size_t p = p0; p < p1; p++) {
            vf b0, b1 = {0};
            vload(&b0, Bp + p * Np + j0);
            if (nv == 2) vload(&b1, Bp + p * Np + j0 + VW);
            const float *ap0 = a0 + p * ap;
            for (size_t r = 0; r < rows; r++) {
                float a = ap0[r * ar];
                c[r][0] += a * b0;
                if (nv == 2) c[r][1] += a * b1;
            }
        }
    }
    for (size_t r = 0; r < rows; r++) {
        float *cr = C + (i0 + r) * ldc;
        for (size_t h = 0; h < nv; h++) {
            size_t col = j0 + h * VW;
            if (col >= N) break;
            vf out = alpha * c[r][h];
            if (col + VW <= N) {
                if (beta != 0.0f) {
                    vf old;
                    vload(&old, cr + col);
                    out += beta * old;
                }
                memcpy(cr + col, &out, sizeof out);
            } else {
                float o[VW];
                memcpy(o, &out, sizeof out);
                for (size_t j = 0; col + j < N; j++) cr[col + j] = beta != 0.0f ? o[j] + beta * cr[col + j] : o[j];
            }
        }
    }
}

void gemm_small(int ta, int tb, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda, const float *B,
                size_t ldb, float beta, float *C, size_t ldc) {
    gemm_small_tri(ta, tb, GEMM_FULL, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_small_tri(int ta, int tb, GemmTri tri, size_t M, size_t N, size_t K, float alpha, const float *A, size_t lda,
                    const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    if (M == 0 || N == 0) return;
    size_t Np = (N + NR - 1) / NR * NR;
    if (K == 0 || K * Np > GEMM_SMALL_MAX_PANEL) {
        sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* op(B) as rows of stride Np: B itself when it is not transposed (its ragged last columns,
     * fewer than VW, into a zero-padded [K][VW] panel), else all of it into a zero-padded panel */
    float Bp[GEMM_SMALL_MAX_PANEL] __attribute__((aligned(64)));
    const float *Bq = Bp;
    size_t Nv = N; /* columns the tiles of Bq cover; the rest come from the tail panel */
    if (!tb) {
        Bq = B;
        Np = ldb;
        Nv = N / VW * VW;
        for (size_t p = 0; Nv < N && p < K; p++)
            for (size_t j = 0; j < VW; j++) Bp[p * VW + j] = Nv + j < N ? B[p * ldb + Nv + j] : 0.0f;
    } else {
        /* B's rows read in order, four at a time (they may lie 4 KiB apart and cold: four streams
         * of misses in flight instead of one) */
        size_t j = 0;
        for (; j + 4 <= N; j += 4) {
            const float *b0 = B + j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
            for (size_t p = 0; p < K; p++) {
                float *d = Bp + p * Np + j;
                d[0] = b0[p], d[1] = b1[p], d[2] = b2[p], d[3] = b3[p];
            }
        }
        for (; j < N; j++)
            for (size_t p = 0; p < K; p++) Bp[p * Np + j] = B[j * ldb + p];
        for (size_t p = 0; p < K; p++)
            for (size_t j = N; j < Np; j++) Bp[p * Np + j] = 0.0f;
    }
    /* op(A)(i, p) = A[i ar + p ap] */
    size_t ar = ta ? 1 : lda, ap = ta ? lda : 1;
    for (size_t i0 = 0; i0 < M; i0 += MR) {
        size_t rows = M - i0 < MR ? M - i0 : MR, last = i0 + rows - 1;
        /* the k range where this block's rows of op(A) can be non-zero */
        size_t p0 = tri == GEMM_A_UPPER ? TERN_MIN(i0, K) : 0, p1 = tri == GEMM_A_LOWER ? TERN_MIN(last + 1, K) : K;
        size_t n1 = tri == GEMM_C_LOWER ? TERN_MIN(last + 1, N) : N; /* columns wanted */
        size_t j0 = 0;
        for (; j0 < n1 && j0 + VW < Nv; j0 += NR) tile(C, ldc, A, ar, ap, Bq, Np, p0, p1, i0, rows, j0, Nv, alpha, beta, 2);
        if (j0 < n1 && j0 < Nv) tile(C, ldc, A, ar, ap, Bq, Np, p0, p1, i0, rows, j0, Nv, alpha, beta, 1), j0 += VW;
        if (j0 < n1 && Nv < N) /* the ragged tail of an untransposed B */
            tile(C + Nv, ldc, A, ar, ap, Bp, VW, p0, p1, i0, rows, 0, N - Nv, alpha, beta, 1);
    }
}
