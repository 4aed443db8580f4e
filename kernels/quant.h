/* quant.h — the quantizers shared by quantization-aware training (fake quantization with a
 * straight-through gradient), the exporter (integer codes + scales) and the evaluation of a
 * checkpoint "as exported". The runtime only dequantizes (export/format.h).
 *
 * intN, per row, symmetric (parameter-golf int5/int6/int8 records):
 *   qmax = 2^(N-1) - 1; clip_r = quantile(|w_r|, q) with PyTorch's linear interpolation
 *   (torch.quantile), at least 1e-8; scale_r = clip_r / qmax;
 *   code = clamp(round_half_even(clamp(w, -clip_r, clip_r) / scale_r), -qmax, qmax).
 * ternary, BitNet b1.58 (Ma et al. 2024, arXiv 2402.17764): per group of G consecutive weights
 *   of a row (G = 0: the whole tensor), scale = mean |w| (at least 1e-5);
 *   code = clamp(round_half_even(w / scale), -1, 1).
 *   center = 1, the Hybrid-GRU engine's variant (sumithkumar07/Hybrid-GRU quantize()): the
 *   group's mean mu is subtracted first, code = +1 if w - mu > scale / 2, -1 if < -scale / 2,
 *   else 0 (its strict comparisons: exact ties stay 0); the dequantized value is still
 *   code * scale (mu is not stored).
 * activations, int8 absmax per token (row) or per block of B values of a row:
 *   s = max|x| (at least 1e-5) / 127; code = clamp(round_half_even(x / s), -128, 127).
 * Dequantized value = code * scale. When scales are stored as fp16 the fake quantizer rounds
 * them to fp16 first (scale_fp16 = 1), so training, export and runtime see the same numbers. */
#ifndef TERN_QUANT_H
#define TERN_QUANT_H

#include <stddef.h>
#include <stdint.h>

typedef enum QuantKind { QUANT_NONE = 0, QUANT_INT, QUANT_TERNARY } QuantKind;

typedef struct QuantSpec {
    QuantKind kind;
    int bits;            /* QUANT_INT: 2..8 */
    size_t group;        /* QUANT_TERNARY: weights per scale along a row; 0 = per tensor */
    double quantile;     /* QUANT_INT: per-row clip quantile of |w| */
    int scale_fp16;      /* scales stored (and therefore applied) in fp16 */
    int act_bits;        /* 0 = activations in float; 8 = int8 fake-quant of the layer input */
    size_t act_block;    /* 0 = per token (row); else per block of this many values */
    int center;          /* QUANT_TERNARY: subtract the group mean first (the engine's quantizer) */
} QuantSpec;

/* Number of scales a [rows, cols] tensor gets under spec. */
size_t quant_num_scales(const QuantSpec *s, size_t rows, size_t cols);

/* Codes (int8) and scales for w [rows, cols]. */
void quantize_weights(int8_t *codes, float *scales, const float *w, size_t rows, size_t cols, const QuantSpec *s);
void dequantize_weights(float *w, const int8_t *codes, const float *scales, size_t rows, size_t cols, const QuantSpec *s);
/* out = dequantize(quantize(w)); out may equal w. scratch: quant_scratch_floats(rows, cols). */
void fake_quantize_weights(float *out, const float *w, size_t rows, size_t cols, const QuantSpec *s);

/* int8 activations: codes and per-row (or per-block) scales; fake version out = code * scale. */
size_t quant_act_num_scales(size_t rows, size_t cols, size_t block);
void quantize_act_int8(int8_t *codes, float *scales, const float *x, size_t rows, size_t cols, size_t block);
void fake_quantize_act_int8(float *out, const float *x, size_t rows, size_t cols, size_t block);

/* torch.quantile(|x|, q) for one row (linear interpolation between order statistics). */
double abs_quantile(const float *x, size_t n, double q);

/* IEEE half conversion, round to nearest even. */
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

/* Naive references used by the tests. */
void fake_quantize_weights_ref(float *out, const float *w, size_t rows, size_t cols, const QuantSpec *s);

#endif
