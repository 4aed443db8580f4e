/* kernels_avx512.c — AVX-512 (F, BW, VL, DQ) kernels, with VNNI's vpdpbusd (u8 x s8 products
 * summed straight into int32, no int16 stage) and VBMI's byte permute + vpmultishiftqb (eight
 * arbitrary 8-bit fields of every 64-bit lane: one instruction extracts eight N-bit codes) where
 * the CPU has them. On Zen 4 a 512-bit op runs as two 256-bit halves, so the ternary kernel uses
 * 256-bit VNNI (two per cycle, the same 64 int8 MAC/cycle; quant_optim.md §8.1). */
#include "runtime/rt_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c,avx2")))
#define T5V __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c,avx2")))
#define T5B __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,fma,f16c,avx2")))

T5 static inline int32_t hsum256_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

T5V static int32_t t2_dot_vnni(const uint8_t *w, const int8_t *x, size_t nchunks) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
    for (size_t c = 0; c < nchunks; c++) {
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(w + 32 * c));
        const int8_t *xc = x + TERN_CHUNK * c;
        acc0 = _mm256_dpbusd_epi32(acc0, _mm256_and_si256(b, m3), _mm256_loadu_si256((const __m256i *)(const void *)xc));
        acc1 = _mm256_dpbusd_epi32(acc1, _mm256_and_si256(_mm256_srli_epi16(b, 2), m3),
                                   _mm256_loadu_si256((const __m256i *)(const void *)(xc + 32)));
        acc0 = _mm256_dpbusd_epi32(acc0, _mm256_and_si256(_mm256_srli_epi16(b, 4), m3),
                                   _mm256_loadu_si256((const __m256i *)(const void *)(xc + 64)));
        acc1 = _mm256_dpbusd_epi32(acc1, _mm256_and_si256(_mm256_srli_epi16(b, 6), m3),
                                   _mm256_loadu_si256((const __m256i *)(const void *)(xc + 96)));
    }
    return hsum256_epi32(_mm256_add_epi32(acc0, acc1));
}

T5 static int32_t t2_dot_512(const uint8_t *w, const int8_t *x, size_t nchunks) {
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (size_t c = 0; c < nchunks; c++) {
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(w + 32 * c));
        const int8_t *xc = x + TERN_CHUNK * c;
        __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(b, m3), _mm256_loadu_si256((const __m256i *)(const void *)xc));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(b, 2), m3),
                                                     _mm256_loadu_si256((const __m256i *)(const void *)(xc + 32))));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(b, 4), m3),
                                                     _mm256_loadu_si256((const __m256i *)(const void *)(xc + 64))));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(b, 6), m3),
                                                     _mm256_loadu_si256((const __m256i *)(const void *)(xc + 96))));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    return hsum256_epi32(acc);
}

T5V static int32_t dot_u8s8_vnni(const uint8_t *u, const int8_t *x, size_t n) {
    __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0;
    for (size_t i = 0; i < n; i += 128) {
        acc0 = _mm512_dpbusd_epi32(acc0, _mm512_loadu_si512(u + i), _mm512_loadu_si512(x + i));
        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_loadu_si512(u + i + 64), _mm512_loadu_si512(x + i + 64));
    }
    return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

T5 static int32_t dot_u8s8_512(const uint8_t *u, const int8_t *x, size_t n) {
    const __m512i ones = _mm512_set1_epi16(1);
    __m512i acc = _mm512_setzero_si512();
    for (size_t i = 0; i < n; i += 128) {
        __m512i p = _mm512_maddubs_epi16(_mm512_loadu_si512(u + i), _mm512_loadu_si512(x + i));
        p = _mm512_add_epi16(p, _mm512_maddubs_epi16(_mm512_loadu_si512(u + i + 64), _mm512_loadu_si512(x + i + 64)));
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(p, ones));
    }
    return _mm512_reduce_add_epi32(acc);
}

T5V static int32_t dot_s8s8_vnni(const int8_t *w, const int8_t *x, size_t n) {
    __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0;
    for (size_t i = 0; i < n; i += 128) {
        __m512i a = _mm512_loadu_si512(w + i), b = _mm512_loadu_si512(x + i);
        __m512i a2 = _mm512_loadu_si512(w + i + 64), b2 = _mm512_loadu_si512(x + i + 64);
        /* |w| as the unsigned operand, sign(w) moved onto x: x * sign(w) never overflows since
         * activations lie in [-127, 127] */
        __mmask64 neg = _mm512_movepi8_mask(a), neg2 = _mm512_movepi8_mask(a2);
        b = _mm512_mask_sub_epi8(b, neg, _mm512_setzero_si512(), b);
        b2 = _mm512_mask_sub_epi8(b2, neg2, _mm512_setzero_si512(), b2);
        acc0 = _mm512_dpbusd_epi32(acc0, _mm512_abs_epi8(a), b);
        acc1 = _mm512_dpbusd_epi32(acc1, _mm512_abs_epi8(a2), b2);
    }
    return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

T5 static int32_t dot_s8s8_512(const int8_t *w, const int8_t *x, size_t n) {
    const __m512i ones = _mm512_set1_epi16(1);
    __m512i acc = _mm512_setzero_si512();
    for (size_t i = 0; i < n; i += 64) {
        __m512i a = _mm512_loadu_si512(w + i), b = _mm512_loadu_si512(x + i);
        __mmask64 neg = _mm512_movepi8_mask(a);
        b = _mm512_mask_sub_epi8(b, neg, _mm512_setzero_si512(), b);
        acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(a), b), ones));
    }
    return _mm512_reduce_add_epi32(acc);
}

T5 static float dot_f32_512(const float *w, const float *x, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, x + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

T5 static void f16_to_f32_512(float *dst, const uint8_t *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(src + 2 * i))));
    for (; i < n; i++) dst[i] = tern_f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
}

T5 static void u8_to_f32_512(float *dst, const uint8_t *u, size_t n, int off, float scale) {
    const __m512i o = _mm512_set1_epi32(off);
    const __m512 s = _mm512_set1_ps(scale);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(u + i)));
        _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, o)), s));
    }
    for (; i < n; i++) dst[i] = (float)((int)u[i] - off) * scale;
}

T5 static void s8_to_f32_512(float *dst, const int8_t *q, size_t n, float scale) {
    const __m512 s = _mm512_set1_ps(scale);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(q + i)));
        _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_cvtepi32_ps(v), s));
    }
    for (; i < n; i++) dst[i] = (float)q[i] * scale;
}

/* VBMI: 64 N-bit codes from 8N bytes. Byte permute puts group g's N bytes at the bottom of
 * 64-bit lane g; vpmultishiftqb then takes byte j of each lane from bit offset N j. */
T5B static void unpack_u8_vbmi(uint32_t dt, uint8_t *u, const uint8_t *row, size_t n) {
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
    int N = tern_dtype_bits(dt);
    uint8_t idx[64], ctl[64];
    for (int g = 0; g < 8; g++)
        for (int j = 0; j < 8; j++) {
            idx[8 * g + j] = (uint8_t)(N * g + (j < N ? j : 0));
            ctl[8 * g + j] = (uint8_t)(N * j);
        }
    const __m512i vidx = _mm512_loadu_si512(idx), vctl = _mm512_loadu_si512(ctl);
    const __m512i mask = _mm512_set1_epi8((char)((1 << N) - 1));
    const __mmask64 lm = (__mmask64)((N == 8) ? ~0ULL : ((1ULL << (8 * N)) - 1));
    for (size_t i = 0; i < n / 64; i++) {
        __m512i v = _mm512_maskz_loadu_epi8(lm, row + (size_t)(8 * N) * i);
        v = _mm512_multishift_epi64_epi8(vctl, _mm512_permutexvar_epi8(vidx, v));
        _mm512_storeu_si512(u + 64 * i, _mm512_and_si512(v, mask));
    }
}

void rt_kernels_avx512(RtKernels *k, int vnni, int vbmi) {
    rt_kernels_avx2(k); /* unpack without VBMI */
    k->name = vnni ? "avx512vnni" : "avx512";
    k->t2_dot = vnni ? t2_dot_vnni : t2_dot_512;
    if (vbmi) k->unpack_u8 = unpack_u8_vbmi;
    k->dot_u8s8 = vnni ? dot_u8s8_vnni : dot_u8s8_512;
    k->dot_s8s8 = vnni ? dot_s8s8_vnni : dot_s8s8_512;
    k->dot_f32 = dot_f32_512;
    k->f16_to_f32 = f16_to_f32_512;
    k->u8_to_f32 = u8_to_f32_512;
    k->s8_to_f32 = s8_to_f32_512;
}
#else
void rt_kernels_avx512(RtKernels *k, int vnni, int vbmi) {
    (void)vnni;
    (void)vbmi;
    rt_kernels_scalar(k);
}
#endif
