/* kernels_avx2.c — AVX2 (+FMA, F16C) kernels, compiled with function target attributes so the
 * library needs no -march flag and picks them at run time (cpu.c).
 *
 * Ternary: a 2-bit chunk is 32 bytes (format.h); shifting by 0/2/4/6 and masking with 3 yields
 * the stored values u in {0,1,2} of weights m, m+32, m+64, m+96, which multiply contiguous
 * 32-byte slices of the int8 activations with vpmaddubsw (u8 x s8 -> s16; four products of
 * at most 2 * 127 each stay far from int16 saturation), then vpmaddwd by ones widens to int32.
 * This is the I2_S / TQ2_0 kernel shape of bitnet.cpp and llama.cpp (quant_optim.md §2).
 * intN: rows are first unpacked to bytes. Eight N-bit fields span N bytes; within a 16-bit
 * window starting at byte floor(N i / 8) field i sits at bit s_i = N i mod 8 <= 7, so a byte
 * shuffle builds the windows, a multiply by 2^(16-N-s_i) moves each field to the top and one
 * shift right by 16-N brings it down (AVX2 has no per-lane 16-bit variable shift). */
#include "runtime/rt_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define T2 __attribute__((target("avx2,fma,f16c")))

T2 static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

T2 static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

T2 static int32_t t2_dot_avx2(const uint8_t *w, const int8_t *x, size_t nchunks) {
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (size_t c = 0; c < nchunks; c++) {
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(w + 32 * c));
        const int8_t *xc = x + TERN_CHUNK * c;
        __m256i u0 = _mm256_and_si256(b, m3);
        __m256i u1 = _mm256_and_si256(_mm256_srli_epi16(b, 2), m3);
        __m256i u2 = _mm256_and_si256(_mm256_srli_epi16(b, 4), m3);
        __m256i u3 = _mm256_and_si256(_mm256_srli_epi16(b, 6), m3);
        __m256i p = _mm256_maddubs_epi16(u0, _mm256_loadu_si256((const __m256i *)(const void *)xc));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u1, _mm256_loadu_si256((const __m256i *)(const void *)(xc + 32))));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u2, _mm256_loadu_si256((const __m256i *)(const void *)(xc + 64))));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(u3, _mm256_loadu_si256((const __m256i *)(const void *)(xc + 96))));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    return hsum_epi32(acc);
}

/* Shuffle and multiplier tables for N-bit fields, 8 fields per 128-bit lane; the upper lane
 * reads the next N bytes. */
T2 static void nbit_tables(int N, __m256i *shuf, __m256i *mul) {
    int8_t s[32];
    int16_t m[16];
    for (int lane = 0; lane < 2; lane++)
        for (int i = 0; i < 8; i++) {
            int bit = N * i, byte = bit / 8 + lane * N;
            s[lane * 16 + 2 * i] = (int8_t)byte;
            s[lane * 16 + 2 * i + 1] = (int8_t)(byte + 1);
            m[lane * 8 + i] = (int16_t)(1 << (16 - N - bit % 8));
        }
    *shuf = _mm256_loadu_si256((const __m256i *)(const void *)s);
    *mul = _mm256_loadu_si256((const __m256i *)(const void *)m);
}

/* 16 fields from 2N bytes at p, as 16-bit lanes (reads 16 bytes). */
T2 static inline __m256i nbit16(const uint8_t *p, __m256i shuf, __m256i mul, int N) {
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)p));
    v = _mm256_mullo_epi16(_mm256_shuffle_epi8(v, shuf), mul);
    return _mm256_srli_epi16(v, 16 - N);
}

T2 static void unpack_u8_avx2(uint32_t dt, uint8_t *u, const uint8_t *row, size_t n) {
    if (dt == TERN_DT_T2) {
        const __m256i m3 = _mm256_set1_epi8(3);
        for (size_t c = 0; c < n / TERN_CHUNK; c++) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(row + 32 * c));
            uint8_t *o = u + TERN_CHUNK * c;
            _mm256_storeu_si256((__m256i *)(void *)o, _mm256_and_si256(b, m3));
            _mm256_storeu_si256((__m256i *)(void *)(o + 32), _mm256_and_si256(_mm256_srli_epi16(b, 2), m3));
            _mm256_storeu_si256((__m256i *)(void *)(o + 64), _mm256_and_si256(_mm256_srli_epi16(b, 4), m3));
            _mm256_storeu_si256((__m256i *)(void *)(o + 96), _mm256_and_si256(_mm256_srli_epi16(b, 6), m3));
        }
        return;
    }
    if (dt == TERN_DT_I4) {
        const __m128i m15 = _mm_set1_epi8(15);
        for (size_t i = 0; i < n / 32; i++) {
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(row + 16 * i));
            __m128i lo = _mm_and_si128(b, m15), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m15);
            _mm_storeu_si128((__m128i *)(void *)(u + 32 * i), _mm_unpacklo_epi8(lo, hi));
            _mm_storeu_si128((__m128i *)(void *)(u + 32 * i + 16), _mm_unpackhi_epi8(lo, hi));
        }
        return;
    }
    int N = tern_dtype_bits(dt);
    __m256i shuf, mul;
    nbit_tables(N, &shuf, &mul);
    /* 32 fields (4N bytes) per step: fields 0-15 and 16-31, packed to bytes and put in order */
    for (size_t i = 0; i < n / 32; i++) {
        const uint8_t *p = row + (size_t)(4 * N) * i;
        __m256i a = nbit16(p, shuf, mul, N), b = nbit16(p + 2 * N, shuf, mul, N);
        __m256i r = _mm256_permute4x64_epi64(_mm256_packus_epi16(a, b), 0xd8);
        _mm256_storeu_si256((__m256i *)(void *)(u + 32 * i), r);
    }
}

T2 static int32_t dot_u8s8_avx2(const uint8_t *u, const int8_t *x, size_t n) {
    /* u <= 62 (int6): two products of 62 * 127 plus two more stay below 32767 */
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (size_t i = 0; i < n; i += 64) {
        __m256i p = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(u + i)),
                                         _mm256_loadu_si256((const __m256i *)(const void *)(x + i)));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(u + i + 32)),
                                                     _mm256_loadu_si256((const __m256i *)(const void *)(x + i + 32))));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    return hsum_epi32(acc);
}

T2 static int32_t dot_s8s8_avx2(const int8_t *w, const int8_t *x, size_t n) {
    /* |w| x sign(w) x: codes and activations lie in [-127, 127], so pairs stay below 32767 */
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (size_t i = 0; i < n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(w + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(x + i));
        __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(b, a));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    return hsum_epi32(acc);
}

T2 static float dot_f32_avx2(const float *w, const float *x, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

T2 static float dot_u8f32_avx2(const uint8_t *u, const float *x, size_t n, int off) {
    const __m256i o = _mm256_set1_epi32(off);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i v0 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(u + i))), o);
        __m256i v1 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(u + i + 8))), o);
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v0), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v1), _mm256_loadu_ps(x + i + 8), a1);
    }
    float s = hsum_ps(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += (float)((int)u[i] - off) * x[i];
    return s;
}

T2 static float dot_s8f32_avx2(const int8_t *q, const float *x, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i v0 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(q + i)));
        __m256i v1 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(q + i + 8)));
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v0), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v1), _mm256_loadu_ps(x + i + 8), a1);
    }
    float s = hsum_ps(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += (float)q[i] * x[i];
    return s;
}

T2 static float dot_f16f32_avx2(const uint8_t *h, const float *x, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(h + 2 * i))), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(h + 2 * i + 16))), _mm256_loadu_ps(x + i + 8),
                             a1);
    }
    float s = hsum_ps(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += tern_f16_to_f32((uint16_t)(h[2 * i] | h[2 * i + 1] << 8)) * x[i];
    return s;
}

/* Eight int32 lane-vectors -> their eight sums, in order (three rounds of pairwise adds). */
T2 static inline __m256i hsum8_epi32(__m256i a0, __m256i a1, __m256i a2, __m256i a3, __m256i a4, __m256i a5, __m256i a6, __m256i a7) {
    __m256i t0 = _mm256_hadd_epi32(a0, a1), t1 = _mm256_hadd_epi32(a2, a3);
    __m256i t2 = _mm256_hadd_epi32(a4, a5), t3 = _mm256_hadd_epi32(a6, a7);
    __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

/* int32 lanes of sum(u x) for one 2-bit chunk */
T2 static inline __m256i t2_chunk_avx2(const uint8_t *w, const int8_t *xc) {
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)w);
    __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(b, m3), _mm256_loadu_si256((const __m256i *)(const void *)xc));
    p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(b, 2), m3),
                                                 _mm256_loadu_si256((const __m256i *)(const void *)(xc + 32))));
    p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(b, 4), m3),
                                                 _mm256_loadu_si256((const __m256i *)(const void *)(xc + 64))));
    p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(b, 6), m3),
                                                 _mm256_loadu_si256((const __m256i *)(const void *)(xc + 96))));
    return _mm256_madd_epi16(p, ones);
}

/* Eight chunks at a time: their sums come out of one transpose-and-add, the scaling is one
 * vector multiply, and the eight terms are then added in chunk order (as the reference). */
T2 static float t2_row_g1_avx2(const uint8_t *w, const int8_t *x, const int32_t *csum, const float *ws, float as, size_t nchunks) {
    float acc = 0.0f;
    size_t c = 0;
    const __m256 vas = _mm256_set1_ps(as);
    for (; c + 8 <= nchunks; c += 8) {
        const uint8_t *wc = w + 32 * c;
        const int8_t *xc = x + TERN_CHUNK * c;
        __m256i s = hsum8_epi32(t2_chunk_avx2(wc, xc), t2_chunk_avx2(wc + 32, xc + 128), t2_chunk_avx2(wc + 64, xc + 256),
                                t2_chunk_avx2(wc + 96, xc + 384), t2_chunk_avx2(wc + 128, xc + 512), t2_chunk_avx2(wc + 160, xc + 640),
                                t2_chunk_avx2(wc + 192, xc + 768), t2_chunk_avx2(wc + 224, xc + 896));
        s = _mm256_sub_epi32(s, _mm256_loadu_si256((const __m256i *)(const void *)(csum + c)));
        __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(_mm256_loadu_ps(ws + c), vas));
        float tv[8];
        _mm256_storeu_ps(tv, t);
        for (int j = 0; j < 8; j++) acc += tv[j];
    }
    for (; c < nchunks; c++) acc += (float)(hsum_epi32(t2_chunk_avx2(w + 32 * c, x + TERN_CHUNK * c)) - csum[c]) * (ws[c] * as);
    return acc;
}

T2 static void kblock_scores_avx2(float *out, const float *q, const float *blk, size_t D) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (size_t c = 0; c < D; c++) {
        __m256 qc = _mm256_set1_ps(q[c]);
        a0 = _mm256_fmadd_ps(qc, _mm256_loadu_ps(blk + 16 * c), a0);
        a1 = _mm256_fmadd_ps(qc, _mm256_loadu_ps(blk + 16 * c + 8), a1);
    }
    _mm256_storeu_ps(out, a0);
    _mm256_storeu_ps(out + 8, a1);
}

T2 static void weighted_rows_avx2(float *o, const float *w, const float *v, size_t n, size_t stride, size_t D) {
    size_t c0 = 0;
    for (; c0 + 32 <= D; c0 += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t j = 0; j < n; j++) {
            const float *vr = v + j * stride + c0;
            __m256 wj = _mm256_set1_ps(w[j]);
            a0 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vr), a0);
            a1 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vr + 8), a1);
            a2 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vr + 16), a2);
            a3 = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vr + 24), a3);
        }
        _mm256_storeu_ps(o + c0, a0);
        _mm256_storeu_ps(o + c0 + 8, a1);
        _mm256_storeu_ps(o + c0 + 16, a2);
        _mm256_storeu_ps(o + c0 + 24, a3);
    }
    for (; c0 + 8 <= D; c0 += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (size_t j = 0; j < n; j++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(v + j * stride + c0), a0);
        _mm256_storeu_ps(o + c0, a0);
    }
    for (; c0 < D; c0++) {
        float a = 0.0f;
        for (size_t j = 0; j < n; j++) a += w[j] * v[j * stride + c0];
        o[c0] = a;
    }
}

/* F16C: eight halves per instruction, exact (every half is a float) */
T2 static void f16_to_f32_avx2(float *dst, const uint16_t *h, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(h + i))));
    for (; i < n; i++) dst[i] = tern_f16_to_f32(h[i]);
}

void rt_kernels_avx2(RtKernels *k) {
    k->name = "avx2";
    k->t2_dot = t2_dot_avx2;
    k->unpack_u8 = unpack_u8_avx2;
    k->dot_u8s8 = dot_u8s8_avx2;
    k->dot_s8s8 = dot_s8s8_avx2;
    k->dot_f32 = dot_f32_avx2;
    k->dot_u8f32 = dot_u8f32_avx2;
    k->dot_s8f32 = dot_s8f32_avx2;
    k->dot_f16f32 = dot_f16f32_avx2;
    k->t2_row_g1 = t2_row_g1_avx2;
    k->kblock_scores = kblock_scores_avx2;
    k->weighted_rows = weighted_rows_avx2;
    k->f16_to_f32 = f16_to_f32_avx2;
}
#else
void rt_kernels_avx2(RtKernels *k) { rt_kernels_scalar(k); }
#endif
