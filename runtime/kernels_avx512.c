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

/* 64 values per step in four 16-lane accumulators */
T5 static float dot_u8f32_512(const uint8_t *u, const float *x, size_t n, int off) {
    const __m512i o = _mm512_set1_epi32(off);
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int q = 0; q < 4; q++) {
            __m512i v = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(u + i + 16 * q))), o);
            a[q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(x + i + 16 * q), a[q]);
        }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
    for (; i < n; i++) s += (float)((int)u[i] - off) * x[i];
    return s;
}

T5 static float dot_s8f32_512(const int8_t *q, const float *x, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i v0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(q + i)));
        __m512i v1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(q + i + 16)));
        a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v0), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v1), _mm512_loadu_ps(x + i + 16), a1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++) s += (float)q[i] * x[i];
    return s;
}

T5 static float dot_f16f32_512(const uint8_t *h, const float *x, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(h + 2 * i))), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(h + 2 * i + 32))),
                             _mm512_loadu_ps(x + i + 16), a1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++) s += tern_f16_to_f32((uint16_t)(h[2 * i] | h[2 * i + 1] << 8)) * x[i];
    return s;
}

T5 static inline __m256i hsum8_512(__m256i a0, __m256i a1, __m256i a2, __m256i a3, __m256i a4, __m256i a5, __m256i a6, __m256i a7) {
    __m256i t0 = _mm256_hadd_epi32(a0, a1), t1 = _mm256_hadd_epi32(a2, a3);
    __m256i t2 = _mm256_hadd_epi32(a4, a5), t3 = _mm256_hadd_epi32(a6, a7);
    __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u0, u1, 0x31));
}

T5V static inline __m256i t2_chunk_vnni(const uint8_t *w, const int8_t *xc) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)w);
    __m256i a = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_and_si256(b, m3), _mm256_loadu_si256((const __m256i *)(const void *)xc));
    __m256i a2 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_and_si256(_mm256_srli_epi16(b, 2), m3),
                                     _mm256_loadu_si256((const __m256i *)(const void *)(xc + 32)));
    a = _mm256_dpbusd_epi32(a, _mm256_and_si256(_mm256_srli_epi16(b, 4), m3), _mm256_loadu_si256((const __m256i *)(const void *)(xc + 64)));
    a2 = _mm256_dpbusd_epi32(a2, _mm256_and_si256(_mm256_srli_epi16(b, 6), m3), _mm256_loadu_si256((const __m256i *)(const void *)(xc + 96)));
    return _mm256_add_epi32(a, a2);
}

T5V static float t2_row_g1_vnni(const uint8_t *w, const int8_t *x, const int32_t *csum, const float *ws, float as, size_t nchunks) {
    float acc = 0.0f;
    size_t c = 0;
    const __m256 vas = _mm256_set1_ps(as);
    for (; c + 8 <= nchunks; c += 8) {
        const uint8_t *wc = w + 32 * c;
        const int8_t *xc = x + TERN_CHUNK * c;
        __m256i s = hsum8_512(t2_chunk_vnni(wc, xc), t2_chunk_vnni(wc + 32, xc + 128), t2_chunk_vnni(wc + 64, xc + 256),
                              t2_chunk_vnni(wc + 96, xc + 384), t2_chunk_vnni(wc + 128, xc + 512), t2_chunk_vnni(wc + 160, xc + 640),
                              t2_chunk_vnni(wc + 192, xc + 768), t2_chunk_vnni(wc + 224, xc + 896));
        s = _mm256_sub_epi32(s, _mm256_loadu_si256((const __m256i *)(const void *)(csum + c)));
        __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(_mm256_loadu_ps(ws + c), vas));
        float tv[8];
        _mm256_storeu_ps(tv, t);
        for (int j = 0; j < 8; j++) acc += tv[j];
    }
    for (; c < nchunks; c++) acc += (float)(hsum256_epi32(t2_chunk_vnni(w + 32 * c, x + TERN_CHUNK * c)) - csum[c]) * (ws[c] * as);
    return acc;
}

T5 static void kblock_scores_512(float *out, const float *q, const float *blk, size_t D) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    size_t c = 0;
    for (; c + 2 <= D; c += 2) {
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[c]), _mm512_loadu_ps(blk + 16 * c), a0);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(q[c + 1]), _mm512_loadu_ps(blk + 16 * c + 16), a1);
    }
    for (; c < D; c++) a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[c]), _mm512_loadu_ps(blk + 16 * c), a0);
    _mm512_storeu_ps(out, _mm512_add_ps(a0, a1));
}

T5 static void weighted_rows_512(float *o, const float *w, const float *v, size_t n, size_t stride, size_t D) {
    for (size_t c0 = 0; c0 < D; c0 += 64) {
        size_t left = D - c0;
        __mmask16 m[4];
        for (int b = 0; b < 4; b++) {
            size_t l = left > 16 * (size_t)b ? left - 16 * (size_t)b : 0;
            m[b] = l >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << l) - 1);
        }
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t j = 0; j < n; j++) {
            const float *vr = v + j * stride + c0;
            __m512 wj = _mm512_set1_ps(w[j]);
            a0 = _mm512_fmadd_ps(wj, _mm512_maskz_loadu_ps(m[0], vr), a0);
            a1 = _mm512_fmadd_ps(wj, _mm512_maskz_loadu_ps(m[1], vr + 16), a1);
            a2 = _mm512_fmadd_ps(wj, _mm512_maskz_loadu_ps(m[2], vr + 32), a2);
            a3 = _mm512_fmadd_ps(wj, _mm512_maskz_loadu_ps(m[3], vr + 48), a3);
        }
        _mm512_mask_storeu_ps(o + c0, m[0], a0);
        _mm512_mask_storeu_ps(o + c0 + 16, m[1], a1);
        _mm512_mask_storeu_ps(o + c0 + 32, m[2], a2);
        _mm512_mask_storeu_ps(o + c0 + 48, m[3], a3);
    }
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
    k->dot_u8f32 = dot_u8f32_512;
    k->dot_s8f32 = dot_s8f32_512;
    k->dot_f16f32 = dot_f16f32_512;
    if (vnni) k->t2_row_g1 = t2_row_g1_vnni; /* else AVX2's (256-bit maddubs) */
    k->kblock_scores = kblock_scores_512;
    k->weighted_rows = weighted_rows_512;
}
#else
void rt_kernels_avx512(RtKernels *k, int vnni, int vbmi) {
    (void)vnni;
    (void)vbmi;
    rt_kernels_scalar(k);
}
#endif
