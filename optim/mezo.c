#include "optim/mezo.h"

#include <fnmatch.h>
#include <math.h>
#include <string.h>

#include "kernels/rng.h"

#define F(type, m, h) CFG_F(type, MezoConfig, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, MezoConfig, m, lo, hi, h)
const CfgField kMezoFields[] = {
    F(CFG_BOOL, enabled, "train with MeZO (forward passes only) instead of backprop + the optimizer groups"),
    R(CFG_FLOAT, lr, 0, 1e30, "MeZO learning rate (paper: 1e-6 / 1e-7 full-parameter on OPT-13B)"),
    R(CFG_FLOAT, eps, 1e-30, 1e6, "perturbation scale (paper: 1e-3)"),
    R(CFG_FLOAT, wd, 0, 1e6, "decoupled weight decay on matrices"),
    R(CFG_SIZE, samples, 1, MEZO_MAX_SAMPLES, "perturbations averaged per step (n-SPSA)"),
    F(CFG_STRING, perturbation, "gaussian | rademacher"),
    F(CFG_STRING, match, "glob: parameters MeZO tunes (others stay fixed)"),
    F(CFG_BOOL, sparse_ternary, "ternary-QAT tensors: perturb and update only weights whose ternary code is non-zero"),
};
#undef F
#undef R
const size_t kMezoFieldCount = sizeof kMezoFields / sizeof kMezoFields[0];

void mezo_defaults(MezoConfig *c) {
    memset(c, 0, sizeof *c);
    c->lr = 1e-6;
    c->eps = 1e-3;
    c->samples = 1;
    strcpy(c->perturbation, "gaussian");
    strcpy(c->match, "*");
}

int mezo_validate(const MezoConfig *c, Err *err) {
    if (strcmp(c->perturbation, "gaussian") && strcmp(c->perturbation, "rademacher"))
        return err_set(err, "config: optim.mezo.perturbation must be gaussian or rademacher, got \"%s\"", c->perturbation);
    return 0;
}

int mezo_init(Mezo *m, const MezoConfig *c, const ParamStore *ps, Err *err) {
    memset(m, 0, sizeof *m);
    m->c = *c;
    m->rademacher = !strcmp(c->perturbation, "rademacher");
    m->ranges = xcalloc(ps->n ? ps->n : 1, sizeof(MezoRange));
    for (size_t p = 0; p < ps->n; p++) {
        const Tensor *t = ps->t[p];
        if (fnmatch(c->match, t->name, 0) != 0) continue;
        MezoRange *r = &m->ranges[m->nranges++];
        r->off = params_offset(ps, t);
        r->n = t->numel;
        r->decay = t->ndim >= 2;
        r->param = p;
        m->nfloats += t->numel;
    }
    if (!m->nranges) {
        mezo_free(m);
        return err_set(err, "config: optim.mezo.match \"%s\" matches no parameter", c->match);
    }
    return 0;
}

int mezo_sparse_init(Mezo *m, const ParamStore *ps, const QuantSpec *const *specs, Err *err) {
    size_t ncodes = 0, nscales = 0;
    for (size_t r = 0; r < m->nranges; r++) {
        MezoRange *rg = &m->ranges[r];
        const Tensor *t = ps->t[rg->param];
        const QuantSpec *s = specs[rg->param];
        if (!s || s->kind != QUANT_TERNARY || t->ndim != 2) continue; /* the QAT forward quantizes 2-D only */
        rg->spec = s;
        rg->rows = (size_t)t->shape[0];
        rg->cols = t->numel / rg->rows;
        ncodes += rg->n;
        nscales += quant_num_scales(s, rg->rows, rg->cols);
    }
    if (!ncodes)
        return err_set(err, "config: optim.mezo.sparse_ternary needs a ternary QAT plan (quant.qat with ternary weights) on a "
                            "tensor MeZO tunes; none has one");
    m->codes = xcalloc(ncodes, 1);
    m->scales = xcalloc(nscales, sizeof(float));
    ncodes = nscales = 0;
    for (size_t r = 0; r < m->nranges; r++) {
        MezoRange *rg = &m->ranges[r];
        if (!rg->spec) continue;
        rg->codes = m->codes + ncodes;
        rg->scales = m->scales + nscales;
        ncodes += rg->n;
        nscales += quant_num_scales(rg->spec, rg->rows, rg->cols);
    }
    return 0;
}

size_t mezo_mask(Mezo *m, const float *values, int active) {
    m->masked = active && m->codes;
    if (!m->masked) return m->nfloats;
    size_t live = 0;
    for (size_t r = 0; r < m->nranges; r++) {
        const MezoRange *rg = &m->ranges[r];
        if (!rg->codes) {
            live += rg->n;
            continue;
        }
        quantize_weights(rg->codes, rg->scales, values + rg->off, rg->rows, rg->cols, rg->spec);
        for (size_t i = 0; i < rg->n; i++) live += rg->codes[i] != 0;
    }
    return live;
}

void mezo_free(Mezo *m) {
    xfree(m->ranges);
    xfree(m->codes);
    xfree(m->scales);
    memset(m, 0, sizeof *m);
}

uint64_t mezo_key(uint64_t seed, uint64_t step, size_t k) { return rng_hash(rng_hash(seed ^ 0x4d655a4full, step), k); }

/* The stream: pair j of flat indices (2j, 2j+1) takes one 64-bit hash of (key, j), split into
 * two 24-bit uniforms u1 in (0, 1], u2 in [0, 1); Box-Muller gives both elements,
 * z_2j = r cos(2 pi u2) and z_2j+1 = r sin(2 pi u2), r = sqrt(-2 ln u1). Rademacher: the top bit
 * of a hash per element. */
static inline void normal_pair(uint64_t key, uint64_t j, float *z0, float *z1) {
    uint64_t h = rng_hash(key, j);
    float u1 = ((float)(h >> 40) + 1.0f) * 0x1.0p-24f;
    float u2 = (float)(h & 0xFFFFFFu) * 0x1.0p-24f;
    float r = sqrtf(-2.0f * logf(u1)), a = 6.2831853071795865f * u2;
    *z0 = r * cosf(a);
    *z1 = r * sinf(a);
}

float mezo_z(const Mezo *m, uint64_t key, size_t i) {
    if (m->rademacher) return (rng_hash(key, i) >> 63) ? 1.0f : -1.0f;
    float z0, z1;
    normal_pair(key, i >> 1, &z0, &z1);
    return (i & 1) ? z1 : z0;
}

/* z[0..n) = the stream at flat indices [start, start + n) */
static void fill_z(const Mezo *m, uint64_t key, size_t start, size_t n, float *z) {
    if (m->rademacher) {
        for (size_t i = 0; i < n; i++) z[i] = (rng_hash(key, start + i) >> 63) ? 1.0f : -1.0f;
        return;
    }
    size_t i = 0;
    if (start & 1) z[i++] = mezo_z(m, key, start);
    for (; i + 1 < n; i += 2) normal_pair(key, (start + i) >> 1, &z[i], &z[i + 1]);
    if (i < n) z[i] = mezo_z(m, key, start + i);
}

/* The same where mk[i] != 0, and 0 or the stream elsewhere: a normal pair is drawn when either of
 * its elements is live (Box-Muller makes both at once), so each live z equals the dense stream's
 * bit for bit; the saving is the pairs with both elements masked. Rademacher draws all (one hash
 * an element is cheaper than a mispredicted branch on a random mask). */
static void fill_z_masked(const Mezo *m, uint64_t key, size_t start, size_t n, const int8_t *mk, float *z) {
    if (m->rademacher) {
        fill_z(m, key, start, n, z);
        return;
    }
    size_t i = 0;
    if ((start & 1) && n) {
        z[0] = mk[0] ? mezo_z(m, key, start) : 0.0f;
        i = 1;
    }
    for (; i + 1 < n; i += 2) {
        if (mk[i] | mk[i + 1])
            normal_pair(key, (start + i) >> 1, &z[i], &z[i + 1]);
        else
            z[i] = z[i + 1] = 0.0f;
    }
    if (i < n) z[i] = mk[i] ? mezo_z(m, key, start + i) : 0.0f;
}

enum { ZBLOCK = 2048 };

/* the range's mask in force this step (NULL: dense) */
static const int8_t *range_mask(const Mezo *m, const MezoRange *rg) { return m->masked ? rg->codes : NULL; }

void mezo_perturb(const Mezo *m, float *values, uint64_t key, float scale) {
    for (size_t r = 0; r < m->nranges; r++) {
        const MezoRange *rg = &m->ranges[r];
        float *v = values + rg->off;
        const int8_t *mask = range_mask(m, rg);
        size_t nb = (rg->n + ZBLOCK - 1) / ZBLOCK;
#pragma omp parallel for schedule(static) if (nb > 8)
        for (size_t b = 0; b < nb; b++) {
            float z[ZBLOCK];
            size_t i0 = b * ZBLOCK, len = rg->n - i0 < ZBLOCK ? rg->n - i0 : ZBLOCK;
            if (mask) {
                const int8_t *mk = mask + i0;
                fill_z_masked(m, key, rg->off + i0, len, mk, z);
                for (size_t i = 0; i < len; i++) { /* a select, not a branch: the mask is random */
                    float nv = v[i0 + i] + scale * z[i];
                    v[i0 + i] = mk[i] ? nv : v[i0 + i];
                }
                continue;
            }
            fill_z(m, key, rg->off + i0, len, z);
            for (size_t i = 0; i < len; i++) v[i0 + i] += scale * z[i];
        }
    }
}

void mezo_update(const Mezo *m, float *values, const uint64_t *keys, const double *g, size_t n, double lr) {
    float wd = (float)(lr * m->c.wd);
    for (size_t r = 0; r < m->nranges; r++) {
        const MezoRange *rg = &m->ranges[r];
        float *v = values + rg->off;
        float decay = rg->decay ? wd : 0.0f;
        const int8_t *mask = range_mask(m, rg);
        size_t nb = (rg->n + ZBLOCK - 1) / ZBLOCK;
#pragma omp parallel for schedule(static) if (nb > 8)
        for (size_t b = 0; b < nb; b++) {
            float z[ZBLOCK];
            double s[ZBLOCK];
            size_t i0 = b * ZBLOCK, len = rg->n - i0 < ZBLOCK ? rg->n - i0 : ZBLOCK;
            const int8_t *mk = mask ? mask + i0 : NULL;
            memset(s, 0, len * sizeof(double));
            for (size_t k = 0; k < n; k++) {
                if (mk) {
                    fill_z_masked(m, keys[k], rg->off + i0, len, mk, z);
                    for (size_t i = 0; i < len; i++) s[i] += g[k] * (double)z[i]; /* masked ones are not written */
                    continue;
                }
                fill_z(m, keys[k], rg->off + i0, len, z);
                for (size_t i = 0; i < len; i++) s[i] += g[k] * (double)z[i];
            }
            for (size_t i = 0; i < len; i++) {
                float nv = v[i0 + i] - ((float)(lr * s[i] / (double)n) + decay * v[i0 + i]);
                v[i0 + i] = !mk || mk[i] ? nv : v[i0 + i];
            }
        }
    }
}
