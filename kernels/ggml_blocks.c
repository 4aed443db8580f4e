#include "kernels/ggml_blocks.h"

#include <math.h>
#include <string.h>

#include "kernels/quant.h"

size_t ggml_block_elems(int type) {
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: return 1;
    case GGML_TYPE_Q8_0: return GGML_QK8_0;
    case GGML_TYPE_TQ1_0: case GGML_TYPE_TQ2_0: return GGML_QK_K;
    default: return 0;
    }
}

size_t ggml_block_bytes(int type) {
    switch (type) {
    case GGML_TYPE_F32: return 4;
    case GGML_TYPE_F16: return 2;
    case GGML_TYPE_Q8_0: return GGML_Q8_0_BYTES;
    case GGML_TYPE_TQ1_0: return GGML_TQ1_0_BYTES;
    case GGML_TYPE_TQ2_0: return GGML_TQ2_0_BYTES;
    default: return 0;
    }
}

size_t ggml_row_bytes(int type, size_t n) {
    size_t e = ggml_block_elems(type);
    return e ? n / e * ggml_block_bytes(type) : 0;
}

static void put_f16(uint8_t *p, float v) {
    uint16_t h = f32_to_f16(v);
    memcpy(p, &h, 2);
}

static float get_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return f16_to_f32(h);
}

/* ---- Q8_0: [d fp16][q int8 x 32] */
void ggml_quantize_q8_0(uint8_t *out, const float *x, size_t n) {
    for (size_t b = 0; b < n / GGML_QK8_0; b++, x += GGML_QK8_0, out += GGML_Q8_0_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < GGML_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_f16(out, d);
        for (int j = 0; j < GGML_QK8_0; j++) out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

void ggml_dequantize_q8_0(float *y, const uint8_t *in, size_t n) {
    for (size_t b = 0; b < n / GGML_QK8_0; b++, y += GGML_QK8_0, in += GGML_Q8_0_BYTES) {
        float d = get_f16(in);
        for (int j = 0; j < GGML_QK8_0; j++) y[j] = d * (float)(int8_t)in[2 + j];
    }
}

/* ---- TQ2_0: [qs u8 x 64][d fp16] */
void ggml_pack_tq2_0(uint8_t *out, const int8_t *t, const float *scale, size_t n) {
    for (size_t b = 0; b < n / GGML_QK_K; b++, t += GGML_QK_K, out += GGML_TQ2_0_BYTES) {
        for (int half = 0; half < 2; half++)
            for (int m = 0; m < 32; m++) {
                unsigned q = 0;
                for (int k = 0; k < 4; k++) q |= (unsigned)(t[half * 128 + m + 32 * k] + 1) << (2 * k);
                out[half * 32 + m] = (uint8_t)q;
            }
        put_f16(out + 64, scale[b]);
    }
}

void ggml_dequantize_tq2_0(float *y, const uint8_t *in, size_t n) {
    for (size_t b = 0; b < n / GGML_QK_K; b++, in += GGML_TQ2_0_BYTES) {
        float d = get_f16(in + 64);
        for (int j = 0; j < 64; j += 32)
            for (int k = 0; k < 4; k++)
                for (int m = 0; m < 32; m++) *y++ = d * (float)((int)((in[j + m] >> (2 * k)) & 3) - 1);
    }
}

/* ---- TQ1_0: [qs u8 x 48][qh u8 x 4][d fp16] */

/* five (or four, times 3) codes c in {0, 1, 2}, most significant first -> ceil(c * 256 / 243) */
static uint8_t pack_trits(const int8_t *t, size_t stride, int count) {
    unsigned c = 0;
    for (int k = 0; k < count; k++) c = c * 3 + (unsigned)(t[k * stride] + 1);
    if (count == 4) c *= 3;
    return (uint8_t)((c * 256 + 242) / 243);
}

void ggml_pack_tq1_0(uint8_t *out, const int8_t *t, const float *scale, size_t n) {
    for (size_t b = 0; b < n / GGML_QK_K; b++, t += GGML_QK_K, out += GGML_TQ1_0_BYTES) {
        for (int m = 0; m < 32; m++) out[m] = pack_trits(t + m, 32, 5);             /* weights 0..159 */
        for (int m = 0; m < 16; m++) out[32 + m] = pack_trits(t + 160 + m, 16, 5);  /* 160..239 */
        for (int j = 0; j < 4; j++) out[48 + j] = pack_trits(t + 240 + j, 4, 4);    /* 240..255 */
        put_f16(out + 52, scale[b]);
    }
}

/* trit k (0 = most significant) of a packed byte, by ggml's multiply-and-shift */
static int trit_at(uint8_t q, int k) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    uint8_t s = (uint8_t)(q * pow3[k]);
    return (int)(((unsigned)s * 3) >> 8);
}

void ggml_dequantize_tq1_0(float *y, const uint8_t *in, size_t n) {
    for (size_t b = 0; b < n / GGML_QK_K; b++, in += GGML_TQ1_0_BYTES, y += GGML_QK_K) {
        float d = get_f16(in + 52);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 32; m++) y[m + 32 * k] = d * (float)(trit_at(in[m], k) - 1);
        for (int k = 0; k < 5; k++)
            for (int m = 0; m < 16; m++) y[160 + m + 16 * k] = d * (float)(trit_at(in[32 + m], k) - 1);
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 4; j++) y[240 + j + 4 * k] = d * (float)(trit_at(in[48 + j], k) - 1);
    }
}
