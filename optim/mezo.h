/* mezo.h — MeZO: zeroth-order fine-tuning with forward passes only (Malladi et al., "Fine-Tuning
 * Language Models with Just Forward Passes", arXiv 2305.17333; princeton-nlp/MeZO).
 *
 * One step (SPSA, n samples): for each sample k a key s_k is derived from (seed, step, k); the
 * perturbation z_k ~ N(0, I) (or Rademacher +-1) over the selected parameters is a pure function
 * of (s_k, flat index), so it is regenerated instead of stored. theta += eps z; l+ = L(theta);
 * theta -= 2 eps z; l- = L(theta) on the same batch; theta += eps z (restored up to round-off);
 * g_k = (l+ - l-) / (2 eps). Then theta <- theta - lr ((1/n) sum_k g_k z_k + wd theta), weight
 * decay only on matrices (MeZO skips biases and norm gains). Memory: the parameters and a few
 * scalars — no gradients, no optimizer state, no activations kept for a backward pass.
 *
 * The keys depend on the step only, so a resumed run regenerates the same perturbations, and
 * data-parallel ranks only exchange the two losses.
 *
 * Sparse ternary MeZO (sparse_ternary): on tensors whose QAT plan is ternary, only the latent
 * weights whose ternary code is non-zero are perturbed and updated (weight decay included). The
 * mask is the codes themselves (int8, 1 byte a weight, allocated at init): computed once per step
 * from the unperturbed weights with the quantizer the QAT forward uses (quantize_weights, the
 * current per-group scale), before the +eps perturbation, and kept for the -2eps, +eps and the
 * update, so masked weights are never written. z stays keyed by flat position (a masked element
 * skips its z; unmasked ones get exactly the dense z), so dense and sparse runs share a stream. */
#ifndef TERN_MEZO_H
#define TERN_MEZO_H

#include <stddef.h>
#include <stdint.h>

#include "autodiff/params.h"
#include "kernels/jsoncfg.h"
#include "kernels/quant.h"

/* most perturbations per step (the trainer keeps one key and one estimate per sample) */
#define MEZO_MAX_SAMPLES 1024

typedef struct MezoConfig {
    int enabled;
    double lr, eps, wd;
    size_t samples;                   /* n of n-SPSA */
    char perturbation[CFG_STR_MAX];   /* gaussian | rademacher */
    char match[CFG_STR_MAX];          /* glob over parameter names: which ones MeZO tunes */
    int sparse_ternary;               /* perturb / update only weights whose ternary code is non-zero */
} MezoConfig;

extern const CfgField kMezoFields[];
extern const size_t kMezoFieldCount;
void mezo_defaults(MezoConfig *c);
int mezo_validate(const MezoConfig *c, Err *err);

typedef struct MezoRange {
    size_t off, n;
    int decay;    /* weight decay applies (tensors of rank >= 2) */
    size_t param; /* index in the ParamStore */
    /* sparse ternary: the plan's spec (NULL: always dense), the tensor as [rows, cols], and this
     * step's codes [n] (into Mezo.codes) and scales (into Mezo.scales) */
    const QuantSpec *spec;
    size_t rows, cols;
    int8_t *codes;
    float *scales;
} MezoRange;

typedef struct Mezo {
    MezoConfig c;
    int rademacher;
    MezoRange *ranges;
    size_t nranges, nfloats;
    int8_t *codes; /* sparse ternary: one byte per weight of the ternary ranges */
    float *scales;
    int masked;    /* the mask of mezo_mask is in force (perturb / update skip code-0 weights) */
} Mezo;

/* Selects the parameters whose names match c->match (error when none does). */
int mezo_init(Mezo *m, const MezoConfig *c, const ParamStore *ps, Err *err);
void mezo_free(Mezo *m);
/* Sparse ternary: specs[p] is parameter p's ternary QAT spec (NULL when it has none); the ranges
 * of ternary tensors get a mask buffer. Error (naming optim.mezo.sparse_ternary) when no selected
 * tensor has one. */
int mezo_sparse_init(Mezo *m, const ParamStore *ps, const QuantSpec *const *specs, Err *err);
/* Once per step, before the first perturbation: active (QAT on) -> codes from values, the mask in
 * force; else dense. Returns the number of weights the step perturbs. */
size_t mezo_mask(Mezo *m, const float *values, int active);
/* The key of sample k at a step. */
uint64_t mezo_key(uint64_t seed, uint64_t step, size_t k);
/* z at flat index i for key (N(0,1) or +-1). */
float mezo_z(const Mezo *m, uint64_t key, size_t i);
/* values += scale * z(key) over the selected ranges (OpenMP; identical at any thread count). */
void mezo_perturb(const Mezo *m, float *values, uint64_t key, float scale);
/* values -= lr * ((1/n) sum_k g[k] z(keys[k]) + wd * values) over the selected ranges. */
void mezo_update(const Mezo *m, float *values, const uint64_t *keys, const double *g, size_t n, double lr);

#endif
