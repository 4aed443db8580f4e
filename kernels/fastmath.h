/* fastmath.h — branch-free exp / tanh / sigmoid that gcc vectorizes inside plain loops.
 *
 * expf: Cody–Waite range reduction x = n·ln2 + r, |r| <= ln2/2, and the degree-6 minimax
 * polynomial of the Cephes library (S. Moshier) for e^r; relative error about 1e-7, the same
 * order as libm's expf. Inputs below -87.3 give exactly 0 (masked attention scores are -inf).
 * tanhf: an odd Taylor polynomial through x^15 for |x| < 0.55 (error < 1e-7 relative), else
 * 1 − 2/(e^{2|x|} + 1) with the sign restored. */
#ifndef TERN_FASTMATH_H
#define TERN_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float fast_expf(float x) {
    const float hi = 88.3762626647949f, lo = -87.3365447504f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    /* round to nearest with the 1.5*2^23 trick: floorf would be a libm call without
     * -ffast-math and stop the loop from vectorizing */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return x < lo ? 0.0f : y;
}

static inline float fast_tanhf(float x) {
    float ax = x < 0 ? -x : x;
    float x2 = x * x;
    /* odd series coefficients of tanh */
    float p = 929569.0f / 638512875.0f;
    p = p * x2 - 21844.0f / 6081075.0f;
    p = p * x2 + 1382.0f / 155925.0f;
    p = p * x2 - 62.0f / 2835.0f;
    p = p * x2 + 17.0f / 315.0f;
    p = p * x2 - 2.0f / 15.0f;
    p = p * x2 + 1.0f / 3.0f;
    float small = x - x * x2 * p;
    float e = fast_expf(2.0f * ax);
    float big = 1.0f - 2.0f / (e + 1.0f);
    big = x < 0 ? -big : big;
    return ax < 0.55f ? small : big;
}

static inline float fast_sigmoidf(float x) { return 1.0f / (1.0f + fast_expf(-x)); }

#endif
