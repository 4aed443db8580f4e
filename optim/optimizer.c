/* Parameter groups, AdamW (Loshchilov & Hutter; PyTorch's bias-corrected form), Muon (K. Jordan)
 * and SGD with momentum, on the flat parameter / grad / state buffers. */
#include "optim/optimizer.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/util.h"

#define F(type, m, h) CFG_F(type, OptGroup, m, h)
#define R(type, m, lo, hi, h) CFG_R(type, OptGroup, m, lo, hi, h)
/* Ranges: what any run could want, nothing that only a typo gives (a negative lr, beta >= 1,
 * eps <= 0, a billion Newton-Schulz steps that hang step 1). lr goes up to float32's largest value: a huge
 * lr is how tests force a divergence. */
static const CfgField kGroupFields[] = {
    F(CFG_STRING, type, "adamw | muon | sgd"),
    R(CFG_FLOAT, lr, 0, 3.4e38, "learning rate (times the schedule's multiplier)"),
    R(CFG_FLOAT, beta1, 0, 1, "AdamW beta1, < 1"),
    R(CFG_FLOAT, beta2, 0, 1, "AdamW beta2, < 1"),
    R(CFG_FLOAT, eps, 1e-30, 1, "AdamW eps"),
    R(CFG_FLOAT, wd, 0, 1e6, "decoupled weight decay: p *= 1 - lr*wd"),
    R(CFG_FLOAT, momentum, 0, 1, "Muon / SGD momentum, < 1"),
    R(CFG_FLOAT, momentum_warmup_start, 0, 1, "Muon momentum at step 0, < 1"),
    R(CFG_SIZE, momentum_warmup_steps, 0, 1e15, "steps to reach `momentum` (linear)"),
    R(CFG_SIZE, ns_steps, 1, 100, "Muon Newton-Schulz steps"),
    F(CFG_BOOL, nesterov, "Nesterov momentum"),
};
#undef R
#undef F
#define NGROUP_FIELDS (sizeof kGroupFields / sizeof kGroupFields[0])

static void group_defaults(OptGroup *g, const char *name, const char *type, double lr) {
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    snprintf(g->type, sizeof g->type, "%s", type);
    g->lr = lr;
    g->beta1 = 0.9;
    g->beta2 = 0.95;
    g->eps = 1e-8;
    g->momentum = 0.95;
    g->momentum_warmup_start = 0.85;
    g->momentum_warmup_steps = 500;
    g->ns_steps = 5;
    g->nesterov = 1;
}

/* The parameter-golf defaults: matrices -> Muon 0.04, embedding -> Adam 0.05, untied head ->
 * Adam 0.008, vectors and scalars -> Adam 0.04, betas (0.9, 0.95), eps 1e-8. */
static size_t default_groups(OptGroup *g) {
    group_defaults(&g[0], "matrix", "muon", 0.04);
    group_defaults(&g[1], "embed", "adamw", 0.05);
    group_defaults(&g[2], "head", "adamw", 0.008);
    group_defaults(&g[3], "scalar", "adamw", 0.04);
    return 4;
}

static int kind_of(const char *t, OptKind *k) {
    if (!strcmp(t, "adamw") || !strcmp(t, "adam")) *k = OPT_ADAMW;
    else if (!strcmp(t, "muon")) *k = OPT_MUON;
    else if (!strcmp(t, "sgd")) *k = OPT_SGD;
    else return -1;
    return 0;
}

static long find_group(const Optimizer *o, const char *name) {
    for (size_t i = 0; i < o->ngroups; i++)
        if (!strcmp(o->groups[i].name, name)) return (long)i;
    return -1;
}

int optimizer_init(Optimizer *o, ParamStore *ps, const cJSON *optim, const char *default_rules,
                   cJSON *resolved, Err *err) {
    memset(o, 0, sizeof *o);
    o->ps = ps;
    o->groups = xcalloc(64, sizeof(OptGroup));
    o->ngroups = default_groups(o->groups);
    const cJSON *groups = optim ? cJSON_GetObjectItemCaseSensitive(optim, "groups") : NULL;
    if (groups && !cJSON_IsObject(groups)) return err_set(err, "config: optim.groups must be an object");
    for (const cJSON *g = groups ? groups->child : NULL; g; g = g->next) {
        long gi = find_group(o, g->string);
        if (gi < 0) {
            if (o->ngroups == 64) return err_set(err, "config: too many optimizer groups");
            gi = (long)o->ngroups++;
            group_defaults(&o->groups[gi], g->string, "adamw", 0.001);
        }
        char where[96];
        snprintf(where, sizeof where, "optim.groups.%s", g->string);
        if (cfg_read(g, where, kGroupFields, NGROUP_FIELDS, &o->groups[gi], err)) return -1;
    }
    for (size_t i = 0; i < o->ngroups; i++) {
        OptGroup *g = &o->groups[i];
        if (kind_of(g->type, &g->kind))
            return err_set(err, "config: optim.groups.%s.type must be adamw, muon or sgd, got \"%s\"", g->name, g->type);
        /* the ranges are closed; these ends are open */
        if (g->beta1 >= 1 || g->beta2 >= 1) return err_set(err, "config: optim.groups.%s: betas must be in [0, 1)", g->name);
        if (g->momentum >= 1 || g->momentum_warmup_start >= 1)
            return err_set(err, "config: optim.groups.%s: momentum and momentum_warmup_start must be in [0, 1)", g->name);
    }

    /* rules */
    const cJSON *rules = optim ? cJSON_GetObjectItemCaseSensitive(optim, "rules") : NULL;
    cJSON *dflt = NULL;
    if (!rules) rules = dflt = cJSON_Parse(default_rules ? default_rules : "[{\"match\":\"*\",\"group\":\"scalar\"}]");
    if (!cJSON_IsArray(rules)) {
        cJSON_Delete(dflt);
        return err_set(err, "config: optim.rules must be an array of {match, ndim, group}");
    }
    o->group_of = xmalloc(ps->n * sizeof(int));
    int rc = 0;
    for (size_t p = 0; p < ps->n && !rc; p++) {
        const Tensor *t = ps->t[p];
        o->group_of[p] = -1;
        int ri = 0;
        for (const cJSON *r = rules->child; r; r = r->next, ri++) {
            const cJSON *match = cJSON_GetObjectItemCaseSensitive(r, "match");
            const cJSON *nd = cJSON_GetObjectItemCaseSensitive(r, "ndim");
            const cJSON *grp = cJSON_GetObjectItemCaseSensitive(r, "group");
            for (const cJSON *k = r->child; k; k = k->next)
                if (strcmp(k->string, "match") && strcmp(k->string, "ndim") && strcmp(k->string, "group")) {
                    rc = err_set(err, "config: unknown key optim.rules[%d].%s (known: match, ndim, group)", ri, k->string);
                    break;
                }
            if (rc) break;
            if (!cJSON_IsString(match) || !cJSON_IsString(grp) ||
                (nd && !(cJSON_IsNumber(nd) && nd->valuedouble >= 1 && nd->valuedouble <= TENSOR_MAX_DIMS &&
                         nd->valuedouble == (int)nd->valuedouble))) {
                rc = err_set(err, "config: optim.rules[%d] needs string match and group (and an integer ndim in [1, %d])", ri,
                             TENSOR_MAX_DIMS);
                break;
            }
            if (fnmatch(match->valuestring, t->name, 0) != 0) continue;
            if (nd && (int)nd->valuedouble != t->ndim) continue;
            long gi = find_group(o, grp->valuestring);
            if (gi < 0) {
                rc = err_set(err, "config: optim.rules[%d] names unknown group \"%s\"", ri, grp->valuestring);
                break;
            }
            o->group_of[p] = (int)gi;
            break;
        }
        if (!rc && o->group_of[p] < 0) rc = err_set(err, "config: no optim rule matches parameter %s", t->name);
        if (!rc) {
            OptGroup *g = &o->groups[o->group_of[p]];
            if (g->kind == OPT_MUON && t->ndim != 2)
                rc = err_set(err, "config: parameter %s (%d-D) cannot use Muon group \"%s\": Muon needs matrices", t->name, t->ndim, g->name);
            g->nparams++;
            g->nfloats += t->numel;
        }
    }
    if (!rc && resolved) {
        cJSON *gs = cJSON_AddObjectToObject(resolved, "groups");
        for (size_t i = 0; i < o->ngroups; i++) {
            cJSON *g = cJSON_AddObjectToObject(gs, o->groups[i].name);
            cfg_write(g, kGroupFields, NGROUP_FIELDS, &o->groups[i]);
        }
        cJSON_AddItemToObject(resolved, "rules", cJSON_Duplicate(rules, 1));
    }
    cJSON_Delete(dflt);
    if (rc) return rc;

    o->state_floats = ps->total ? ps->total : 1;
    o->state_a = xcalloc_lazy(o->state_floats, sizeof(float));
    o->state_b = xcalloc_lazy(o->state_floats, sizeof(float));
    size_t work = 0;
    for (size_t p = 0; p < ps->n; p++)
        if (o->groups[o->group_of[p]].kind == OPT_MUON) {
            size_t w = muon_work_floats(ps->t[p]->shape[0], ps->t[p]->shape[1]) + ps->t[p]->numel * 2;
            if (w > work) work = w;
        }
    o->work_floats = work;
    o->work = work ? xmalloc(work * sizeof(float)) : NULL;
    return 0;
}

void optimizer_free(Optimizer *o) {
    xfree(o->owner);
    xfree(o->upd);
    xfree(o->groups);
    xfree(o->group_of);
    xfree_lazy(o->state_a, o->state_floats, sizeof(float));
    xfree_lazy(o->state_b, o->state_floats, sizeof(float));
    xfree(o->work);
    memset(o, 0, sizeof *o);
}

double optimizer_momentum(const Optimizer *o, const OptGroup *g) {
    if (g->kind != OPT_MUON || g->momentum_warmup_steps == 0) return g->momentum;
    double frac = (double)o->step / (double)g->momentum_warmup_steps;
    if (frac > 1) frac = 1;
    return (1 - frac) * g->momentum_warmup_start + frac * g->momentum;
}

/* PyTorch Adam/AdamW arithmetic: denom = sqrt(v)/sqrt(bc2) + eps; p -= lr/bc1 * m/denom. */
static void adamw_update(float *restrict p, const float *restrict gr, float *restrict m, float *restrict v,
                         size_t n, const OptGroup *g, double lr, uint64_t t) {
    float b1 = (float)g->beta1, b2 = (float)g->beta2, eps = (float)g->eps;
    float bc1 = 1.0f - powf(b1, (float)t), bc2 = 1.0f - powf(b2, (float)t);
    float step = (float)lr / bc1, inv_sqrt_bc2 = 1.0f / sqrtf(bc2);
    float decay = 1.0f - (float)(lr * g->wd);
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = gr[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) * inv_sqrt_bc2 + eps;
        p[i] = p[i] * decay - step * m[i] / denom;
    }
}

/* Momentum (Nesterov or heavy ball): buf <- mu buf + g; u <- g + mu buf (or buf). u may be NULL
 * (a rank that does not orthogonalise this matrix only keeps its momentum current). */
static void muon_momentum(const Optimizer *o, const Tensor *t, float *restrict buf, float *restrict u, const OptGroup *g) {
    size_t n = t->numel;
    float mu = (float)optimizer_momentum(o, g);
    const float *gr = t->grad;
    for (size_t i = 0; i < n; i++) {
        buf[i] = mu * buf[i] + gr[i];
        if (u) u[i] = g->nesterov ? gr[i] + mu * buf[i] : buf[i];
    }
}

/* p <- p (1 - lr wd) - lr sqrt(max(1, rows/cols)) upd */
static void muon_apply(Tensor *t, const float *restrict upd, const OptGroup *g, double lr) {
    size_t rows = t->shape[0], cols = t->shape[1], n = t->numel;
    float scale = (float)(lr * sqrt(rows > cols ? (double)rows / (double)cols : 1.0));
    float decay = 1.0f - (float)(lr * g->wd);
    float *p = t->data;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) p[i] = p[i] * decay - scale * upd[i];
}

static void muon_update(Optimizer *o, Tensor *t, float *restrict buf, const OptGroup *g, double lr) {
    size_t n = t->numel;
    float *u = o->work, *upd = o->work + n, *ws = o->work + 2 * n;
    muon_momentum(o, t, buf, u, g);
    muon_orthogonalize(upd, u, t->shape[0], t->shape[1], g->ns_steps, ws);
    muon_apply(t, upd, g, lr);
}

void optimizer_shard(Optimizer *o, int rank, int world, OptBcastFn bcast, void *ctx) {
    ParamStore *ps = o->ps;
    xfree(o->owner);
    xfree(o->upd);
    o->owner = NULL;
    o->upd = NULL;
    o->shard_rank = 0;
    o->shard_world = 1;
    if (world <= 1) return;
    o->shard_rank = rank;
    o->shard_world = world;
    o->bcast = bcast;
    o->bcast_ctx = ctx;
    o->owner = xmalloc(ps->n * sizeof(int));
    o->upd = xcalloc(ps->total ? ps->total : 1, sizeof(float));
    /* longest-processing-time-first: each matrix, largest Newton-Schulz cost (~ m^2 n + m^3 per
     * iteration, m = min dim) first, goes to the least loaded rank; ties to the lower rank */
    double *load = xcalloc((size_t)world, sizeof(double));
    for (size_t p = 0; p < ps->n; p++) o->owner[p] = -1;
    for (;;) {
        long best = -1;
        double best_cost = -1;
        for (size_t p = 0; p < ps->n; p++) {
            if (o->owner[p] != -1 || o->groups[o->group_of[p]].kind != OPT_MUON) continue;
            double r = (double)ps->t[p]->shape[0], c = (double)ps->t[p]->shape[1];
            double m = r < c ? r : c, nn = r < c ? c : r, cost = m * m * nn + m * m * m;
            if (cost > best_cost) best_cost = cost, best = (long)p;
        }
        if (best < 0) break;
        int to = 0;
        for (int k = 1; k < world; k++)
            if (load[k] < load[to]) to = k;
        o->owner[best] = to;
        load[to] += best_cost;
    }
    for (size_t p = 0; p < ps->n; p++)
        if (o->owner[p] == -1 && o->groups[o->group_of[p]].kind == OPT_MUON) o->owner[p] = 0;
    xfree(load);
}

/* Sharded Muon: owners orthogonalise, every matrix's update is broadcast from its owner, and all
 * ranks apply it. */
static void muon_step_sharded(Optimizer *o, double lr_mult) {
    ParamStore *ps = o->ps;
    for (size_t p = 0; p < ps->n; p++) {
        if (o->owner[p] < 0) continue;
        Tensor *x = ps->t[p];
        const OptGroup *g = &o->groups[o->group_of[p]];
        size_t off = params_offset(ps, x);
        int mine = o->owner[p] == o->shard_rank;
        muon_momentum(o, x, o->state_a + off, mine ? o->work : NULL, g);
        if (mine) muon_orthogonalize(o->upd + off, o->work, x->shape[0], x->shape[1], g->ns_steps, o->work + x->numel);
    }
    for (size_t p = 0; p < ps->n; p++) {
        if (o->owner[p] < 0) continue;
        Tensor *x = ps->t[p];
        size_t off = params_offset(ps, x);
        o->bcast(o->bcast_ctx, o->upd + off, x->numel, o->owner[p]);
        muon_apply(x, o->upd + off, &o->groups[o->group_of[p]], o->groups[o->group_of[p]].lr * lr_mult);
    }
}

static void sgd_update(float *restrict p, const float *restrict gr, float *restrict buf, size_t n,
                       const OptGroup *g, double lr) {
    float mu = (float)g->momentum, decay = 1.0f - (float)(lr * g->wd);
    for (size_t i = 0; i < n; i++) {
        buf[i] = mu * buf[i] + gr[i];
        float d = g->nesterov ? gr[i] + mu * buf[i] : buf[i];
        p[i] = p[i] * decay - (float)lr * d;
    }
}

void optimizer_step(Optimizer *o, double lr_mult) {
    ParamStore *ps = o->ps;
    uint64_t t = o->step + 1;
    int sharded = o->shard_world > 1 && o->owner;
    if (sharded) muon_step_sharded(o, lr_mult);
    for (size_t p = 0; p < ps->n; p++) {
        Tensor *x = ps->t[p];
        const OptGroup *g = &o->groups[o->group_of[p]];
        size_t off = params_offset(ps, x);
        double lr = g->lr * lr_mult;
        switch (g->kind) {
        case OPT_ADAMW: adamw_update(x->data, x->grad, o->state_a + off, o->state_b + off, x->numel, g, lr, t); break;
        case OPT_MUON:
            if (!sharded) muon_update(o, x, o->state_a + off, g, lr);
            break;
        case OPT_SGD: sgd_update(x->data, x->grad, o->state_a + off, x->numel, g, lr); break;
        }
    }
    o->step = t;
}

void optimizer_describe(const Optimizer *o, char *buf, size_t n) {
    size_t used = 0;
    for (size_t i = 0; i < o->ngroups && used < n; i++) {
        const OptGroup *g = &o->groups[i];
        if (!g->nparams) continue;
        used += (size_t)snprintf(buf + used, n - used, "  %-8s %-6s lr %-8g wd %-6g %4zu tensors %11zu params\n", g->name,
                                 g->type, g->lr, g->wd, g->nparams, g->nfloats);
    }
}
