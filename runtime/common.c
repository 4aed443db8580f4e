/* common.c — the math the runtime's stack and block kinds share, each op as the trainer's
 * kernel computes it: RMSNorm (kernels/norm.c), RoPE angles (kernels/attention.c), the softcap,
 * SwiGLU (kernels/act.c). */
#include <math.h>
#include <string.h>

#include "kernels/fastmath.h"
#include "runtime/rt_internal.h"

void rt_rmsnorm(float *out, const float *in, const float *w, size_t N, size_t C, float eps) {
    for (size_t r = 0; r < N; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        float ss = 0.0f;
        for (size_t c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        if (w)
            for (size_t c = 0; c < C; c++) y[c] = x[c] * s * w[c];
        else
            for (size_t c = 0; c < C; c++) y[c] = x[c] * s;
    }
}

void rt_rope_inv_freq(float *inv_freq, size_t D, float base) {
    /* exactly as kernels/attention.c rope_table_init computes them */
    for (size_t i = 0; i < D / 2; i++) inv_freq[i] = 1.0f / powf(base, (float)(2 * i) / (float)D);
}

void rt_rope_rows(float *cosb, float *sinb, const float *inv_freq, size_t half, size_t p0, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < half; j++) {
            /* as kernels/attention.c: the angle in float, cos/sin in double, stored as float */
            float f = (float)(p0 + i) * inv_freq[j];
            cosb[i * half + j] = (float)cos((double)f);
            sinb[i * half + j] = (float)sin((double)f);
        }
}

void rt_softcap(float *z, size_t V, float cap) {
    if (cap <= 0) return;
    float inv = 1.0f / cap;
    for (size_t i = 0; i < V; i++) z[i] = cap * tanhf(z[i] * inv);
}

/* NaN -> 0 before fast_sigmoidf, which converts a float to an int on the way (UB for NaN; a
 * hostile artifact can make NaN activations); finite values are the trainer's numerics. */
void rt_swiglu(float *out, const float *fc, size_t n, size_t H) {
    for (size_t i = 0; i < n; i++) {
        const float *g = fc + i * 2 * H, *u = g + H;
        float *o = out + i * H;
        for (size_t j = 0; j < H; j++) {
            float x = g[j] == g[j] ? g[j] : 0.0f;
            o[j] = g[j] * fast_sigmoidf(x) * u[j];
        }
    }
}
