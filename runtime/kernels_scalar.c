/* kernels_scalar.c — the portable kernels: plain C on the format's definitions (format.h). They
 * run everywhere and are the reference the SIMD kernels are tested against. */
#include <string.h>

#include "runtime/rt_internal.h"

static int32_t t2_dot_scalar(const uint8_t *w, const int8_t *x, size_t nchunks) {
    int32_t s = 0;
    for (size_t c = 0; c < nchunks; c++) {
        const uint8_t *b = w + c * 32;
        const int8_t *xc = x + c * TERN_CHUNK;
        for (int k = 0; k < 4; k++)
            for (int m = 0; m < 32; m++) s += (int32_t)((b[m] >> (2 * k)) & 3) * xc[32 * k + m];
    }
    return s;
}

static void unpack_u8_scalar(uint32_t dt, uint8_t *u, const uint8_t *row, size_t n) {
    switch (dt) {
    case TERN_DT_T2:
        for (size_t c = 0; c < n / TERN_CHUNK; c++)
            for (int k = 0; k < 4; k++)
                for (int m = 0; m < 32; m++) u[c * TERN_CHUNK + 32 * k + m] = (row[c * 32 + m] >> (2 * k)) & 3;
        break;
    case TERN_DT_I4:
        for (size_t i = 0; i < n / 2; i++) {
            u[2 * i] = row[i] & 15;
            u[2 * i + 1] = row[i] >> 4;
        }
        break;
    case TERN_DT_I5: /* 8 values per 40-bit little-endian word */
        for (size_t g = 0; g < n / 8; g++) {
            const uint8_t *p = row + 5 * g;
            uint64_t w = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32;
            for (int j = 0; j < 8; j++) u[8 * g + j] = (uint8_t)((w >> (5 * j)) & 31);
        }
        break;
    case TERN_DT_I6: /* 4 values per 24-bit word */
        for (size_t g = 0; g < n / 4; g++) {
            const uint8_t *p = row + 3 * g;
            uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
            for (int j = 0; j < 4; j++) u[4 * g + j] = (uint8_t)((w >> (6 * j)) & 63);
        }
        break;
    default:
        for (size_t i = 0; i < n; i++) u[i] = (uint8_t)tern_row_u(dt, row, i);
    }
}

static int32_t dot_u8s8_scalar(const uint8_t *u, const int8_t *x, size_t n) {
    int32_t s = 0;
    for (size_t i = 0; i < n; i++) s += (int32_t)u[i] * x[i];
    return s;
}

static int32_t dot_s8s8_scalar(const int8_t *w, const int8_t *x, size_t n) {
    int32_t s = 0;
    for (size_t i = 0; i < n; i++) s += (int32_t)w[i] * x[i];
    return s;
}

static float dot_f32_scalar(const float *w, const float *x, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_u8f32_scalar(const uint8_t *u, const float *x, size_t n, int off) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += (float)((int)u[i] - off) * x[i];
    return s;
}

static float dot_s8f32_scalar(const int8_t *q, const float *x, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += (float)q[i] * x[i];
    return s;
}

static float dot_f16f32_scalar(const uint8_t *h, const float *x, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += tern_f16_to_f32((uint16_t)(h[2 * i] | h[2 * i + 1] << 8)) * x[i];
    return s;
}

static float t2_row_g1_scalar(const uint8_t *w, const int8_t *x, const int32_t *csum, const float *ws, float as, size_t nchunks) {
    float acc = 0.0f;
    for (size_t c = 0; c < nchunks; c++)
        acc += (float)(t2_dot_scalar(w + 32 * c, x + TERN_CHUNK * c, 1) - csum[c]) * (ws[c] * as);
    return acc;
}

static void kblock_scores_scalar(float *out, const float *q, const float *blk, size_t D) {
    for (int j = 0; j < 16; j++) out[j] = 0.0f;
    for (size_t c = 0; c < D; c++)
        for (int j = 0; j < 16; j++) out[j] += q[c] * blk[16 * c + j];
}

static void weighted_rows_scalar(float *o, const float *w, const float *v, size_t n, size_t stride, size_t D) {
    for (size_t c = 0; c < D; c++) o[c] = 0.0f;
    for (size_t j = 0; j < n; j++)
        for (size_t c = 0; c < D; c++) o[c] += w[j] * v[j * stride + c];
}

static void f16_to_f32_scalar(float *dst, const uint16_t *h, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = tern_f16_to_f32(h[i]);
}

void rt_kernels_scalar(RtKernels *k) {
    k->name = "scalar";
    k->t2_dot = t2_dot_scalar;
    k->unpack_u8 = unpack_u8_scalar;
    k->dot_u8s8 = dot_u8s8_scalar;
    k->dot_s8s8 = dot_s8s8_scalar;
    k->dot_f32 = dot_f32_scalar;
    k->dot_u8f32 = dot_u8f32_scalar;
    k->dot_s8f32 = dot_s8f32_scalar;
    k->dot_f16f32 = dot_f16f32_scalar;
    k->t2_row_g1 = t2_row_g1_scalar;
    k->kblock_scores = kblock_scores_scalar;
    k->weighted_rows = weighted_rows_scalar;
    k->f16_to_f32 = f16_to_f32_scalar;
}
