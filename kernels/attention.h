/* attention.h — rotary position embedding and fused causal attention (grouped-query).
 *
 * Layout (B batch, T time, H query heads, G = Hkv key/value heads, D head dim):
 *   q, out, dq, dout: [B, T, H, D]      k, v, dk, dv: [B, T, G, D]      lse: [B, H, T]
 * Query head h reads key/value head h / (H / G).
 *
 * Forward (per b, h; rows in blocks of ATTN_BLOCK): S = scale * Q K^T over the causal prefix
 * (sgemm), P = softmax(S) row-wise with lse = log-sum-exp saved, O = P V (sgemm).
 * Nothing T x T is kept: backward recomputes P from Q, K and lse (FlashAttention's
 * recomputation, Dao et al. 2022), so memory is O(ATTN_BLOCK * T) per thread.
 * Backward (per b, g, looping the query heads of the group so dK/dV have one writer):
 *   Dr = rowsum(dO * O);  dV += P^T dO;  dP = dO V^T;  dS = P * (dP - Dr);
 *   dQ += scale dS K;  dK += scale dS^T Q.      All gradients ACCUMULATE.
 * OpenMP: forward over (b, h, row block), backward over (b, g).
 */
#ifndef TERN_ATTENTION_H
#define TERN_ATTENTION_H

#include <stddef.h>

#define ATTN_BLOCK 128

typedef struct RopeTable {
    size_t T, D;     /* positions 0..T-1, head dim D (even) */
    float base;
    float *cos, *sin; /* [T, D/2] each */
} RopeTable;

/* cos/sin of t * base^(-2i/D), computed in float32 as PyTorch's Rotary does. */
int rope_table_init(RopeTable *rt, size_t T, size_t D, float base);
void rope_table_free(RopeTable *rt);

/* x: [N_tok, nh, D] rows for positions pos0 + (row index / nh) mod T ... Precisely: token i of
 * the [B, T] grid has position i % T. Rotation (half split, as the parameter-golf reference):
 *   y1 = x1 cos + x2 sin,  y2 = -x1 sin + x2 cos. */
void rope_forward(float *out, const float *in, const RopeTable *rt, size_t B, size_t T, size_t nh);
/* din += R^T dout */
void rope_backward(float *din, const float *dout, const RopeTable *rt, size_t B, size_t T,
                   size_t nh);

size_t attention_scratch_floats(size_t T);
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       size_t B, size_t T, size_t H, size_t G, size_t D, float scale,
                       float *scratch);
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *out, const float *lse,
                        size_t B, size_t T, size_t H, size_t G, size_t D, float scale,
                        float *scratch);

/* Naive references: full T x T scores in double, no blocking. */
void attention_forward_ref(float *out, float *lse, const float *q, const float *k, const float *v,
                           size_t B, size_t T, size_t H, size_t G, size_t D, float scale);
void attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, size_t B, size_t T, size_t H,
                            size_t G, size_t D, float scale);

#endif
