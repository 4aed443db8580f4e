/* ops_quant.h — fake quantization for quantization-aware training, with the straight-through
 * estimator (Bengio et al. 2013; as in BitNet b1.58 and the parameter-golf int5 QAT): the
 * forward uses the quantize-dequantize value, the backward passes the gradient through to the
 * float master unchanged. */
#ifndef TERN_OPS_QUANT_H
#define TERN_OPS_QUANT_H

#include "autodiff/tape.h"
#include "kernels/quant.h"

/* W [rows, cols] (2-D) -> dequantize(quantize(W)) per spec; grad passes through. */
Tensor *op_fake_quant_weight(Tape *tp, Tensor *W, const QuantSpec *spec);
/* x [..., C] -> int8 absmax fake quantization per row (block 0) or per block; grad passes through. */
Tensor *op_fake_quant_act(Tape *tp, Tensor *x, size_t block);
/* x -> fp16-rounded x; grad passes through (tensors stored in half precision). */
Tensor *op_round_f16(Tape *tp, Tensor *x);

#endif
