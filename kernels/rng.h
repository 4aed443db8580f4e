/* rng.h — deterministic random numbers.
 *
 * Rng is a small sequential generator (xoshiro256**, Blackman & Vigna) whose whole state is
 * four words, so checkpoints can save and restore it exactly. The counter-based functions
 * (rng_hash / rng_normal_at) give the i-th number of a keyed stream without any state, so that
 * MeZO can regenerate a perturbation z element by element, in parallel, in any order. */
#ifndef TERN_RNG_H
#define TERN_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
double rng_uniform(Rng *r);        /* [0, 1) with 53 bits */
float rng_normal(Rng *r);          /* N(0, 1), Box–Muller */
uint64_t rng_below(Rng *r, uint64_t n); /* uniform integer in [0, n), unbiased */

void rng_fill_normal(Rng *r, float *x, size_t n, float mean, float std);
void rng_fill_uniform(Rng *r, float *x, size_t n, float lo, float hi);

/* splitmix64 finaliser: a bijective 64-bit mixer. */
static inline uint64_t rng_mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline uint64_t rng_hash(uint64_t key, uint64_t counter) {
    return rng_mix64(key ^ rng_mix64(counter + 0x632be59bd9b4e019ull));
}
/* N(0,1) at position `index` of the stream `key` (stateless). */
float rng_normal_at(uint64_t key, uint64_t index);

#endif
