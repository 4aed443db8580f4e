/* act.h — pointwise activations, forward and backward.
 *
 * Shapes: n elements, any layout. Backward ACCUMULATES into din (din += dout * f'(x)).
 * Each has a naive reference (double precision libm) beside the fast one. */
#ifndef TERN_ACT_H
#define TERN_ACT_H

#include <stddef.h>

typedef enum ActKind {
    ACT_RELU = 0,
    ACT_RELU2,         /* relu(x)^2 */
    ACT_LEAKY_RELU2,   /* leaky_relu(x, 0.5)^2 */
    ACT_SILU,          /* x * sigmoid(x) */
    ACT_SIGMOID,
    ACT_TANH,
    ACT_SOFTPLUS,      /* log(1 + e^x), x for x > 20 (PyTorch's threshold) */
    ACT_EXP,
    ACT_COUNT
} ActKind;

const char *act_name(ActKind k);
int act_from_name(const char *s); /* -1 if unknown */

void act_forward(ActKind k, float *out, const float *in, size_t n);
/* in = forward input, out = forward output (some derivatives use one, some the other) */
void act_backward(ActKind k, float *din, const float *dout, const float *in, const float *out,
                  size_t n);
void act_forward_ref(ActKind k, float *out, const float *in, size_t n);
void act_backward_ref(ActKind k, float *din, const float *dout, const float *in, const float *out,
                      size_t n);

/* SwiGLU on a split last dimension: x is [N, 2H] = [gate | up], out[N,H] = silu(gate) * up. */
void swiglu_forward(float *out, const float *x, size_t N, size_t H);
void swiglu_backward(float *dx, const float *dout, const float *x, size_t N, size_t H);
void swiglu_forward_ref(float *out, const float *x, size_t N, size_t H);
void swiglu_backward_ref(float *dx, const float *dout, const float *x, size_t N, size_t H);

#endif
