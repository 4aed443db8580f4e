/* ggml_blocks.h — the block layouts of llama.cpp / ggml that `tern export --format gguf` writes
 * (ggml's ggml-common.h; the layouts summarised in ../shared/notes/quant_optim.md §2.4). A row of
 * n weights is n / QK blocks, stored one after another; ggml requires n to be a multiple of QK.
 *
 *   Q8_0  (ggml type 8):  QK = 32;  fp16 d, then int8 q[32];           value = d * q
 *   TQ2_0 (ggml type 35): QK = 256; u8 qs[64], then fp16 d;              value = d * t, t in {-1, 0, 1}
 *         in each 128-weight half (32 bytes) byte m holds weights m, m+32, m+64, m+96 in bits
 *         0-1, 2-3, 4-5, 6-7, each as the code t + 1
 *   TQ1_0 (ggml type 34): QK = 256; u8 qs[48], u8 qh[4], then fp16 d;    value = d * t
 *         a byte packs 5 trits c_k = t + 1 (4 in qh) most significant first,
 *         c = ((((c0 3 + c1) 3 + c2) 3 + c3) 3 + c4), stored as ceil(c * 256 / 243); qh's 4 trits are
 *         multiplied by 3 first, so that its first trit is the top one as well. Trit k is read back
 *         without division: ((u8)(q * 3^k) * 3) >> 8. Bytes 0..31 hold weights m + 32k (k = 0..4),
 *         bytes 32..47 hold 160 + m + 16k, qh[j] holds 240 + j + 4k (k = 0..3).
 *
 * Q8_0 quantizes floats (ggml's reference rule: d = max|x| / 127, q = round(x / d), half away
 * from zero). The ternary encoders take trits and the block's scale as they are (tern's ternary
 * QAT already chose both), so that nothing is re-derived: the block decodes to exactly
 * fp16(scale) * t. The decoders are the references the tests check the encoders with; they read
 * the trits the way ggml does (the multiply-and-shift above), independently of the encoders. */
#ifndef TERN_GGML_BLOCKS_H
#define TERN_GGML_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

enum { GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_Q8_0 = 8, GGML_TYPE_TQ1_0 = 34, GGML_TYPE_TQ2_0 = 35 };

#define GGML_QK8_0 32
#define GGML_QK_K 256
#define GGML_Q8_0_BYTES 34  /* 2 + 32 */
#define GGML_TQ2_0_BYTES 66 /* 64 + 2 */
#define GGML_TQ1_0_BYTES 54 /* 48 + 4 + 2 */

/* Elements per block and bytes per block of a type (F32 / F16: 1 element). 0 for other types. */
size_t ggml_block_elems(int type);
size_t ggml_block_bytes(int type);
/* Bytes of a row of n elements (n a multiple of the block size). */
size_t ggml_row_bytes(int type, size_t n);

/* x[n] -> n / 32 Q8_0 blocks at out (n a multiple of 32). */
void ggml_quantize_q8_0(uint8_t *out, const float *x, size_t n);
void ggml_dequantize_q8_0(float *y, const uint8_t *in, size_t n);

/* t[n] in {-1, 0, 1} with one scale per 256-block (scale[n / 256], stored as fp16) -> blocks. */
void ggml_pack_tq2_0(uint8_t *out, const int8_t *t, const float *scale, size_t n);
void ggml_pack_tq1_0(uint8_t *out, const int8_t *t, const float *scale, size_t n);
/* References: blocks -> values d * t (as ggml's dequantize_row_tq*_0 computes them). */
void ggml_dequantize_tq2_0(float *y, const uint8_t *in, size_t n);
void ggml_dequantize_tq1_0(float *y, const uint8_t *in, size_t n);

#endif
