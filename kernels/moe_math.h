/* moe_math.h — the routing of one token of a mixture-of-experts layer, the scalar code the
 * trainer (kernels/moe.c) and the runtime (runtime/blocks/moe.c) both compile, so both pick the
 * same experts with the same weights (DeepSeek-V3, arXiv 2412.19437; backbones.md §6.1):
 *   sel = the K largest of s_e + b_e, best first, ties to the lower index
 *   w_k = gamma * s_{sel_k} / sum_j s_{sel_j}
 * Pure C on libc (listed in runtime/sources.cmake). */
#ifndef TERN_MOE_MATH_H
#define TERN_MOE_MATH_H

#include <stddef.h>
#include <stdint.h>

/* sel[K]: the K largest of s + bias (bias may be NULL), by K passes of a max-scan over the E
 * experts (E, K small); returns sum_k s[sel_k] and writes the gate weights w[K]. */
static inline float moe_route_token(const float *s, const float *bias, size_t E, size_t K, float gamma, int32_t *sel, float *w) {
    for (size_t k = 0; k < K; k++) {
        int32_t best = -1;
        float bv = 0.0f;
        for (size_t e = 0; e < E; e++) {
            int taken = 0;
            for (size_t j = 0; j < k && !taken; j++) taken = sel[j] == (int32_t)e;
            float v = s[e] + (bias ? bias[e] : 0.0f);
            if (!taken && (best < 0 || v > bv)) best = (int32_t)e, bv = v;
        }
        sel[k] = best;
    }
    float S = 0.0f;
    for (size_t k = 0; k < K; k++) S += s[sel[k]];
    for (size_t k = 0; k < K; k++) w[k] = gamma * s[sel[k]] / S;
    return S;
}

#endif
