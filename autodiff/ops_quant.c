#include "autodiff/ops_quant.h"

#include <string.h>

static void ste_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0];
    if (!x->requires_grad) return;
    const float *g = tensor_grad(tp, e->out);
    float *gx = tensor_grad(tp, x);
    size_t n = x->numel;
#pragma omp parallel for simd schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) gx[i] += g[i];
}

static Tensor *finish(Tape *tp, Tensor *x, Tensor *out, const char *name) {
    if (tape_wants_grad(tp, &x, 1)) tape_record(tp, name, ste_backward, out, &x, 1);
    return out;
}

Tensor *op_fake_quant_weight(Tape *tp, Tensor *W, const QuantSpec *spec) {
    TERN_CHECK(W->ndim == 2, "fake_quant_weight: %s must be 2-D", W->name ? W->name : "weight");
    Tensor *out = tensor_new(tp, 2, W->shape);
    fake_quantize_weights(out->data, W->data, W->shape[0], W->shape[1], spec);
    out->name = W->name;
    return finish(tp, W, out, "fake_quant_weight");
}

Tensor *op_fake_quant_act(Tape *tp, Tensor *x, size_t block) {
    Tensor *out = tensor_new(tp, x->ndim, x->shape);
    fake_quantize_act_int8(out->data, x->data, tensor_rows(x), tensor_cols(x), block);
    return finish(tp, x, out, "fake_quant_act");
}

Tensor *op_round_f16(Tape *tp, Tensor *x) {
    Tensor *out = tensor_new(tp, x->ndim, x->shape);
    for (size_t i = 0; i < x->numel; i++) out->data[i] = f16_to_f32(f32_to_f16(x->data[i]));
    out->name = x->name;
    return finish(tp, x, out, "round_f16");
}
