#include "kernels/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/util.h"

uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0)); /* inf / nan */
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);                                       /* overflow */
    if (absx < 0x38800000u) {                                                                          /* subnormal */
        float a;
        memcpy(&a, &absx, 4);
        /* scale so the half subnormal unit (2^-24) becomes 1, round to nearest even */
        float r = nearbyintf(a * 16777216.0f);
        return (uint16_t)(sign | (uint32_t)r);
    }
    uint32_t mant = absx & 0x7fffffu;
    uint32_t exp = (absx >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* may carry into the exponent: correct */
    return (uint16_t)(sign | h);
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        float v = (float)mant * 5.9604644775390625e-8f; /* 2^-24 */
        return sign ? -v : v;
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (mant << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* torch.quantile for a float32 tensor, step for step: q and the rank are float32, the rank is
 * truncated for the lower order statistic and ceiled for the upper, and the two are blended
 * with ATen's lerp (start + w(end - start) for w < 0.5, else end - (end - start)(1 - w)). */
double abs_quantile(const float *x, size_t n, double q) {
    if (n == 0) return 0.0;
    float rank = (float)q * (float)(n - 1);
    size_t lo = (size_t)rank, hi = (size_t)ceilf(rank);
    if (hi > n - 1) hi = n - 1;
    if (lo > hi) lo = hi;
    float w = rank - (float)lo;
    /* the quantiles used are near 1: only the `need` largest values matter */
    size_t need = n - lo;
    float top[64];
    float *buf = need <= 64 ? top : malloc(n * sizeof(float));
    if (need <= 64) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            float a = fabsf(x[i]);
            if (k < need || a > top[need - 1]) {
                size_t j = k < need ? k++ : need - 1;
                while (j > 0 && top[j - 1] < a) {
                    top[j] = top[j - 1];
                    j--;
                }
                top[j] = a;
            }
        }
    } else {
        for (size_t i = 0; i < n; i++) buf[i] = fabsf(x[i]);
        qsort(buf, n, sizeof(float), cmp_desc);
    }
    /* ascending order statistic r is the (n-1-r)-th largest */
    float vlo = buf[n - 1 - lo], vhi = buf[n - 1 - hi];
    if (buf != top) free(buf);
    float r = fabsf(w) < 0.5f ? vlo + w * (vhi - vlo) : vhi - (vhi - vlo) * (1.0f - w);
    return (double)r;
}

size_t quant_num_scales(const QuantSpec *s, size_t rows, size_t cols) {
    if (s->kind == QUANT_INT) return rows;
    if (s->kind == QUANT_TERNARY) return s->group ? rows * ((cols + s->group - 1) / s->group) : 1;
    return 0;
}

static float maybe_half(float v, int fp16) { return fp16 ? f16_to_f32(f32_to_f16(v)) : v; }

/* One ternary group of n weights: codes (may be NULL) and/or the dequantized values out (may be
 * NULL, may equal w); returns the scale. Sums in double, in index order. */
static float ternary_group(int8_t *codes, float *out, const float *w, size_t n, const QuantSpec *s) {
    double sum = 0, mean = 0;
    for (size_t i = 0; i < n; i++) sum += fabs((double)w[i]);
    if (s->center) {
        for (size_t i = 0; i < n; i++) mean += (double)w[i];
        mean /= (double)n;
    }
    float scale = (float)(sum / (double)n);
    if (scale < 1e-5f) scale = 1e-5f;
    scale = maybe_half(scale, s->scale_fp16);
    for (size_t i = 0; i < n; i++) {
        float q;
        if (s->center) {
            double v = (double)w[i] - mean, t = 0.5 * (double)scale;
            q = v > t ? 1.0f : (v < -t ? -1.0f : 0.0f);
        } else {
            q = nearbyintf(w[i] / scale);
            q = q != q ? 0.0f : (q > 1 ? 1.0f : (q < -1 ? -1.0f : q)); /* NaN -> 0 */
        }
        if (codes) codes[i] = (int8_t)q;
        if (out) out[i] = q * scale;
    }
    return scale;
}

void quantize_weights(int8_t *codes, float *scales, const float *w, size_t rows, size_t cols, const QuantSpec *s) {
    if (s->kind == QUANT_INT) {
        float qmax = (float)((1 << (s->bits - 1)) - 1);
#pragma omp parallel for schedule(static) if (rows * cols >= 65536)
        for (size_t r = 0; r < rows; r++) {
            const float *wr = w + r * cols;
            float clip = (float)abs_quantile(wr, cols, s->quantile);
            if (clip < 1e-8f) clip = 1e-8f;
            float scale = maybe_half(clip / qmax, s->scale_fp16);
            if (scale <= 0) scale = 1e-8f; /* fp16 underflow */
            scales[r] = scale;
            for (size_t c = 0; c < cols; c++) {
                float v = wr[c] > clip ? clip : (wr[c] < -clip ? -clip : wr[c]);
                float q = nearbyintf(v / scale);
                q = q > qmax ? qmax : (q < -qmax ? -qmax : q);
                codes[r * cols + c] = q == q ? (int8_t)q : 0; /* NaN -> 0: casting NaN is undefined */
            }
        }
    } else if (s->kind == QUANT_TERNARY) {
        size_t G = s->group ? s->group : rows * cols;
        size_t per_row = s->group ? (cols + G - 1) / G : 0;
        size_t ngroups = s->group ? rows * per_row : 1;
#pragma omp parallel for schedule(static) if (rows * cols >= 65536)
        for (size_t g = 0; g < ngroups; g++) {
            size_t r = s->group ? g / per_row : 0, c0 = s->group ? (g % per_row) * G : 0;
            size_t n = s->group ? TERN_MIN(G, cols - c0) : rows * cols, off = s->group ? r * cols + c0 : 0;
            scales[g] = ternary_group(codes + off, NULL, w + off, n, s);
        }
    }
}

void dequantize_weights(float *w, const int8_t *codes, const float *scales, size_t rows, size_t cols, const QuantSpec *s) {
    if (s->kind == QUANT_INT) {
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) w[r * cols + c] = (float)codes[r * cols + c] * scales[r];
    } else if (s->kind == QUANT_TERNARY) {
        size_t per_row = s->group ? (cols + s->group - 1) / s->group : 0;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) {
                float sc = s->group ? scales[r * per_row + c / s->group] : scales[0];
                w[r * cols + c] = (float)codes[r * cols + c] * sc;
            }
    }
}

/* Allocation-free: used on every training forward once QAT is on. */
void fake_quantize_weights(float *out, const float *w, size_t rows, size_t cols, const QuantSpec *s) {
    if (s->kind == QUANT_INT) {
        float qmax = (float)((1 << (s->bits - 1)) - 1);
#pragma omp parallel for schedule(static) if (rows * cols >= 65536)
        for (size_t r = 0; r < rows; r++) {
            const float *wr = w + r * cols;
            float *o = out + r * cols;
            float clip = (float)abs_quantile(wr, cols, s->quantile);
            if (clip < 1e-8f) clip = 1e-8f;
            float scale = maybe_half(clip / qmax, s->scale_fp16);
            if (scale <= 0) scale = 1e-8f;
            for (size_t c = 0; c < cols; c++) {
                float v = wr[c] > clip ? clip : (wr[c] < -clip ? -clip : wr[c]);
                float q = nearbyintf(v / scale);
                q = q > qmax ? qmax : (q < -qmax ? -qmax : q);
                o[c] = q * scale;
            }
        }
    } else if (s->kind == QUANT_TERNARY) {
        size_t G = s->group ? s->group : rows * cols;
        size_t per_row = s->group ? (cols + G - 1) / G : 0;
        size_t ngroups = s->group ? rows * per_row : 1;
#pragma omp parallel for schedule(static) if (rows * cols >= 65536)
        for (size_t g = 0; g < ngroups; g++) {
            size_t r = s->group ? g / per_row : 0, c0 = s->group ? (g % per_row) * G : 0;
            size_t n = s->group ? TERN_MIN(G, cols - c0) : rows * cols, off = s->group ? r * cols + c0 : 0;
            ternary_group(NULL, out + off, w + off, n, s);
        }
    } else if (out != w) {
        memcpy(out, w, rows * cols * sizeof(float));
    }
}

size_t quant_act_num_scales(size_t rows, size_t cols, size_t block) {
    return block ? rows * ((cols + block - 1) / block) : rows;
}

void quantize_act_int8(int8_t *codes, float *scales, const float *x, size_t rows, size_t cols, size_t block) {
    size_t B = block ? block : cols, per_row = (cols + B - 1) / B;
#pragma omp parallel for schedule(static) if (rows * cols >= 65536)
    for (size_t r = 0; r < rows; r++)
        for (size_t b = 0; b < per_row; b++) {
            size_t c0 = b * B, n = TERN_MIN(B, cols - c0);
            const float *xb = x + r * cols + c0;
            float m = 0;
            for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(xb[i]));
            if (m < 1e-5f) m = 1e-5f;
            float s = m / 127.0f;
            scales[r * per_row + b] = s;
            for (size_t i = 0; i < n; i++) {
                float q = nearbyintf(xb[i] / s);
                codes[r * cols + c0 + i] = q == q ? (int8_t)(q > 127 ? 127 : (q < -128 ? -128 : q)) : 0;
            }
        }
}

void fake_quantize_act_int8(float *out, const float *x, size_t rows, size_t cols, size_t block) {
    size_t B = block ? block : cols, per_row = (cols + B - 1) / B;
#pragma omp parallel for schedule(static) if (rows * cols >= 65536)
    for (size_t r = 0; r < rows; r++)
        for (size_t b = 0; b < per_row; b++) {
            size_t c0 = b * B, n = TERN_MIN(B, cols - c0);
            const float *xb = x + r * cols + c0;
            float *ob = out + r * cols + c0;
            float m = 0;
            for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(xb[i]));
            if (m < 1e-5f) m = 1e-5f;
            float s = m / 127.0f;
            for (size_t i = 0; i < n; i++) {
                float q = nearbyintf(xb[i] / s);
                q = q > 127 ? 127 : (q < -128 ? -128 : q);
                ob[i] = q * s;
            }
        }
}

void fake_quantize_weights_ref(float *out, const float *w, size_t rows, size_t cols, const QuantSpec *s) {
    if (s->kind == QUANT_INT) {
        double qmax = (double)((1 << (s->bits - 1)) - 1);
        float *tmp = malloc(cols * sizeof(float));
        for (size_t r = 0; r < rows; r++) {
            /* full sort: the definition of torch.quantile */
            for (size_t c = 0; c < cols; c++) tmp[c] = fabsf(w[r * cols + c]);
            qsort(tmp, cols, sizeof(float), cmp_desc);
            float rank = (float)s->quantile * (float)(cols - 1);
            size_t lo = (size_t)rank, hi = (size_t)ceilf(rank);
            float wgt = rank - (float)lo, vlo = tmp[cols - 1 - lo], vhi = tmp[cols - 1 - hi];
            float clip = wgt < 0.5f ? vlo + wgt * (vhi - vlo) : vhi - (vhi - vlo) * (1.0f - wgt);
            float fclip = clip < 1e-8f ? 1e-8f : clip;
            float scale = maybe_half(fclip / (float)qmax, s->scale_fp16);
            for (size_t c = 0; c < cols; c++) {
                float v = fminf(fmaxf(w[r * cols + c], -fclip), fclip);
                double q = nearbyint((double)(v / scale));
                q = fmin(fmax(q, -qmax), qmax);
                out[r * cols + c] = (float)q * scale;
            }
        }
        free(tmp);
    } else if (s->kind == QUANT_TERNARY) {
        size_t G = s->group ? s->group : rows * cols;
        for (size_t start = 0; start < rows * cols;) {
            size_t r = start / cols, c0 = start % cols;
            size_t n = s->group ? TERN_MIN(G, cols - c0) : rows * cols;
            double sum = 0, mu = 0;
            for (size_t i = 0; i < n; i++) sum += fabs(w[start + i]), mu += s->center ? w[start + i] / (double)n : 0;
            float scale = fmaxf((float)(sum / (double)n), 1e-5f);
            scale = maybe_half(scale, s->scale_fp16);
            for (size_t i = 0; i < n; i++) {
                double q = fmin(fmax(nearbyint((double)(w[start + i] / scale)), -1), 1);
                if (s->center) q = fabs(w[start + i] - mu) > 0.5 * scale ? copysign(1.0, w[start + i] - mu) : 0.0;
                out[start + i] = (float)q * scale;
            }
            (void)r;
            start += n;
        }
    } else {
        memcpy(out, w, rows * cols * sizeof(float));
    }
}
