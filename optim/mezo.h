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
 * data-parallel ranks only exchange the two losses. */
#ifndef TERN_MEZO_H
#define TERN_MEZO_H

#include <stddef.h>
#include <stdint.h>

#include "autodiff/params.h"
#include "kernels/jsoncfg.h"

/* most perturbations per step (the trainer keeps one key and one estimate per sample) */
#define MEZO_MAX_SAMPLES 1024

typedef struct MezoConfig {
    int enabled;
    double lr, eps, wd;
    size_t samples;                   /* n of n-SPSA */
    char perturbation[CFG_STR_MAX];   /* gaussian | rademacher */
    char match[CFG_STR_MAX];          /* glob over parameter names: which ones MeZO tunes */
} MezoConfig;

extern const CfgField kMezoFields[];
extern const size_t kMezoFieldCount;
void mezo_defaults(MezoConfig *c);
int mezo_validate(const MezoConfig *c, Err *err);

typedef struct MezoRange {
    size_t off, n;
    int decay; /* weight decay applies (tensors of rank >= 2) */
} MezoRange;

typedef struct Mezo {
    MezoConfig c;
    int rademacher;
    MezoRange *ranges;
    size_t nranges, nfloats;
} Mezo;

/* Selects the parameters whose names match c->match (error when none does). */
int mezo_init(Mezo *m, const MezoConfig *c, const ParamStore *ps, Err *err);
void mezo_free(Mezo *m);
/* The key of sample k at a step. */
uint64_t mezo_key(uint64_t seed, uint64_t step, size_t k);
/* z at flat index i for key (N(0,1) or +-1). */
float mezo_z(const Mezo *m, uint64_t key, size_t i);
/* values += scale * z(key) over the selected ranges (OpenMP; identical at any thread count). */
void mezo_perturb(const Mezo *m, float *values, uint64_t key, float scale);
/* values -= lr * ((1/n) sum_k g[k] z(keys[k]) + wd * values) over the selected ranges. */
void mezo_update(const Mezo *m, float *values, const uint64_t *keys, const double *g, size_t n, double lr);

#endif
