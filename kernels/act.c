#include "kernels/act.h"

#include <math.h>
#include <string.h>

#include "kernels/fastmath.h"

#define PAR_MIN 32768 /* below this, thread start-up costs more than the loop */

static const char *const kNames[ACT_COUNT] = {"relu", "relu2", "leaky_relu2", "silu",
                                              "sigmoid", "tanh", "softplus", "exp"};

const char *act_name(ActKind k) { return (unsigned)k < ACT_COUNT ? kNames[k] : "?"; }

int act_from_name(const char *s) {
    for (int i = 0; i < ACT_COUNT; i++)
        if (strcmp(s, kNames[i]) == 0) return i;
    return -1;
}

static inline float softplus1(float x) { return x > 20.0f ? x : log1pf(fast_expf(x)); }

void act_forward(ActKind k, float *restrict out, const float *restrict in, size_t n) {
    switch (k) {
    case ACT_RELU:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) out[i] = in[i] > 0 ? in[i] : 0.0f;
        break;
    case ACT_RELU2:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float r = in[i] > 0 ? in[i] : 0.0f;
            out[i] = r * r;
        }
        break;
    case ACT_LEAKY_RELU2:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float r = in[i] > 0 ? in[i] : 0.5f * in[i];
            out[i] = r * r;
        }
        break;
    case ACT_SILU:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) out[i] = in[i] * fast_sigmoidf(in[i]);
        break;
    case ACT_SIGMOID:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) out[i] = fast_sigmoidf(in[i]);
        break;
    case ACT_TANH:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) out[i] = fast_tanhf(in[i]);
        break;
    case ACT_SOFTPLUS:
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) out[i] = softplus1(in[i]);
        break;
    case ACT_EXP:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) out[i] = fast_expf(in[i]);
        break;
    default: break;
    }
}

void act_backward(ActKind k, float *restrict din, const float *restrict dout,
                  const float *restrict in, const float *restrict out, size_t n) {
    switch (k) {
    case ACT_RELU:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) din[i] += in[i] > 0 ? dout[i] : 0.0f;
        break;
    case ACT_RELU2:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) din[i] += in[i] > 0 ? 2.0f * in[i] * dout[i] : 0.0f;
        break;
    case ACT_LEAKY_RELU2:
        /* y = (s x)^2 with s = 1 or 0.5: dy/dx = 2 s^2 x */
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) din[i] += (in[i] > 0 ? 2.0f : 0.5f) * in[i] * dout[i];
        break;
    case ACT_SILU:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float s = fast_sigmoidf(in[i]);
            din[i] += dout[i] * s * (1.0f + in[i] * (1.0f - s));
        }
        break;
    case ACT_SIGMOID:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
        break;
    case ACT_TANH:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) din[i] += dout[i] * (1.0f - out[i] * out[i]);
        break;
    case ACT_SOFTPLUS:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) din[i] += in[i] > 20.0f ? dout[i] : dout[i] * fast_sigmoidf(in[i]);
        break;
    case ACT_EXP:
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) din[i] += dout[i] * out[i];
        break;
    default: break;
    }
}

static double ref_f(ActKind k, double x) {
    switch (k) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_RELU2: return x > 0 ? x * x : 0;
    case ACT_LEAKY_RELU2: return x > 0 ? x * x : 0.25 * x * x;
    case ACT_SILU: return x / (1.0 + exp(-x));
    case ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case ACT_TANH: return tanh(x);
    case ACT_SOFTPLUS: return x > 20 ? x : log1p(exp(x));
    case ACT_EXP: return exp(x);
    default: return 0;
    }
}

static double ref_df(ActKind k, double x) {
    double s = 1.0 / (1.0 + exp(-x));
    switch (k) {
    case ACT_RELU: return x > 0 ? 1 : 0;
    case ACT_RELU2: return x > 0 ? 2 * x : 0;
    case ACT_LEAKY_RELU2: return x > 0 ? 2 * x : 0.5 * x;
    case ACT_SILU: return s * (1 + x * (1 - s));
    case ACT_SIGMOID: return s * (1 - s);
    case ACT_TANH: return 1 - tanh(x) * tanh(x);
    case ACT_SOFTPLUS: return x > 20 ? 1 : s;
    case ACT_EXP: return exp(x);
    default: return 0;
    }
}

void act_forward_ref(ActKind k, float *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)ref_f(k, in[i]);
}

void act_backward_ref(ActKind k, float *din, const float *dout, const float *in, const float *out,
                      size_t n) {
    (void)out;
    for (size_t i = 0; i < n; i++) din[i] += (float)(dout[i] * ref_df(k, in[i]));
}

void swiglu_forward(float *restrict out, const float *restrict x, size_t N, size_t H) {
#pragma omp parallel for schedule(static) if (N * H >= PAR_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *g = x + r * 2 * H, *u = g + H;
        float *o = out + r * H;
#pragma omp simd
        for (size_t j = 0; j < H; j++) o[j] = g[j] * fast_sigmoidf(g[j]) * u[j];
    }
}

void swiglu_backward(float *restrict dx, const float *restrict dout, const float *restrict x,
                     size_t N, size_t H) {
#pragma omp parallel for schedule(static) if (N * H >= PAR_MIN)
    for (size_t r = 0; r < N; r++) {
        const float *g = x + r * 2 * H, *u = g + H, *d = dout + r * H;
        float *dg = dx + r * 2 * H, *du = dg + H;
#pragma omp simd
        for (size_t j = 0; j < H; j++) {
            float s = fast_sigmoidf(g[j]);
            float silu = g[j] * s;
            du[j] += d[j] * silu;
            dg[j] += d[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
        }
    }
}

void swiglu_forward_ref(float *out, const float *x, size_t N, size_t H) {
    for (size_t r = 0; r < N; r++)
        for (size_t j = 0; j < H; j++) {
            double g = x[r * 2 * H + j], u = x[r * 2 * H + H + j];
            out[r * H + j] = (float)(g / (1 + exp(-g)) * u);
        }
}

void swiglu_backward_ref(float *dx, const float *dout, const float *x, size_t N, size_t H) {
    for (size_t r = 0; r < N; r++)
        for (size_t j = 0; j < H; j++) {
            double g = x[r * 2 * H + j], u = x[r * 2 * H + H + j], d = dout[r * H + j];
            double s = 1 / (1 + exp(-g));
            dx[r * 2 * H + H + j] += (float)(d * g * s);
            dx[r * 2 * H + j] += (float)(d * u * s * (1 + g * (1 - s)));
        }
}
