#include "train/memplan.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernels/meminfo.h"
#include "model/qat.h"

/* Arena high-water mark of one micro-step at (B, T) on a fresh tape: forward + backward, or the
 * forward alone (no grad) as evaluation and MeZO run it. Tokens are 0, a valid id of any vocab. */
static double probe(Model *m, size_t B, size_t T, int backward) {
    Tape tp;
    tape_init(&tp, 0);
    model_ckpt_reset(m); /* checkpointed layers run on the model's own tape: measured too */
    int32_t *tok = xcalloc(B * T, sizeof(int32_t));
    float *per = backward ? NULL : xmalloc(B * T * sizeof(float));
    if (backward) {
        Tensor *loss = model_loss(m, &tp, tok, tok, B, T, NULL, 1);
        const float one = 1.0f;
        tape_backward_seed(&tp, loss, &one);
    } else {
        tape_no_grad_begin(&tp);
        model_loss(m, &tp, tok, tok, B, T, per, 0);
        tape_no_grad_end(&tp);
    }
    double hw = (double)tp.arena.high_water + (double)model_ckpt_high_water(m);
    tape_free(&tp);
    model_ckpt_reset(m);
    xfree(tok);
    xfree(per);
    return hw;
}

/* double -> size_t, saturating (an absurd batch extrapolates past SIZE_MAX) */
static size_t to_size(double v) { return v <= 0 ? 0 : v >= (double)SIZE_MAX ? SIZE_MAX : (size_t)v; }

static size_t add_sat(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* c0 + c1 T + c2 B T from three probes (memplan.h). */
static size_t arena_bytes(Model *m, size_t B, size_t T, int backward) {
    size_t Tb = TERN_MIN(T, (size_t)32), Ta = Tb / 2;
    double a_b = probe(m, 1, Tb, backward);
    double per_seq = B > 1 ? probe(m, 2, Tb, backward) - a_b : 0;         /* c2 Tb */
    double slope = Ta > 0 && Tb < T ? (a_b - probe(m, 1, Ta, backward)) / (double)(Tb - Ta) : 0; /* c1 + c2 */
    double bytes = a_b + slope * (double)(T - Tb) + (double)(B - 1) * per_seq * (double)T / (double)Tb;
    return to_size(bytes);
}

static int quantizes_activations(const QuantPlan *qp) {
    for (size_t i = 0; i < qp->n; i++)
        if (qp->p[i].store == STORE_QUANT && qp->p[i].spec.act_bits) return 1;
    return 0;
}

/* Late QAT adds fake-quantized weight copies to every forward: a constant, measured by one more
 * probe with it on (quantizing every weight is the probes' dearest part). When layer inputs are
 * quantized too their copies scale with B*T: then every probe runs with QAT on. */
static size_t plan_arena(Model *m, size_t B, size_t T, int backward) {
    const QuantPlan *qp = m->qplan;
    int qat = qp && qp->qat, act = qat && quantizes_activations(qp);
    m->qat_active = act;
    double bytes = (double)arena_bytes(m, B, T, backward);
    if (qat && !act) {
        size_t t = TERN_MIN(T, (size_t)16);
        m->qat_active = 1;
        double on = probe(m, 1, t, backward);
        m->qat_active = 0;
        bytes += on - probe(m, 1, t, backward);
    }
    return to_size(bytes);
}

void memplan_measure(MemPlan *p, Model *m, const MemPlanShape *s) {
    memset(p, 0, sizeof *p);
    size_t n = m->ps.total;
    /* n itself passed params_finalize's memory check. Gradients and optimizer state are mapped
     * lazily: a forward-only run (MeZO) never makes them resident. */
    size_t copies = s->forward_only ? 1 : 2; /* values (+ grads) */
    p->params = copies * n * sizeof(float);
    if (s->train && s->train != &m->ps) { /* frozen values + the trained store's values (and grads) */
        p->params = (n + copies * s->train->total) * sizeof(float);
        n = s->train->total;
    }
    p->optimizer = ((s->forward_only ? 0 : 2 + (s->world > 1)) + 2 * (s->ema != 0)) * n * sizeof(float);
    uint64_t forwards = m->train_forwards;
    int qat = m->qat_active;
    p->activations = plan_arena(m, s->B, s->T, !s->forward_only);
    if (s->eval_B) p->activations = add_sat(p->activations, plan_arena(m, s->eval_B, s->T, 0));
    m->qat_active = qat;
    m->train_forwards = forwards;
    /* only a backward probe wrote gradients; zeroing untouched ones would make them resident,
     * which a forward-only run (MeZO) never needs */
    if (!s->forward_only) {
        params_zero_grad(&m->ps);
        if (s->train) params_zero_grad(s->train);
    }
    p->data = to_size(8.0 * (double)s->tokens + 12.0 * (double)s->eval_B * (double)s->T); /* x, y (+ per-token loss) */
    size_t rss = current_rss_bytes();
    p->base = rss > p->params ? rss - p->params : 0;
    p->total = add_sat(add_sat(add_sat(p->base + p->params, p->optimizer), p->activations), p->data);
    MemAvail a = mem_available();
    p->available = a.bytes > SIZE_MAX - rss ? SIZE_MAX : rss + a.bytes;
    p->limit = a.limit;
}

void memplan_add_optimizer(MemPlan *p, size_t bytes) {
    p->optimizer = add_sat(p->optimizer, bytes);
    p->total = add_sat(p->total, bytes);
}

static void describe(const MemPlan *p, const char *lead, const char *sep, char *buf, size_t n) {
    char t[32], a[32], o[32], c[32], d[32], av[32];
    format_bytes((double)p->total, t, sizeof t);
    format_bytes((double)p->params, a, sizeof a);
    format_bytes((double)p->optimizer, o, sizeof o);
    format_bytes((double)p->activations, c, sizeof c);
    format_bytes((double)(p->data + p->base), d, sizeof d);
    format_bytes((double)p->available, av, sizeof av);
    snprintf(buf, n, "%s~%s (params %s, optimizer %s, activations %s, other %s)%s%s available (%s)", lead, t, a, o, c, d, sep, av,
             p->limit);
}

int memplan_check(const MemPlan *p, Err *err) {
    if (p->total <= p->available) return 0;
    char line[512];
    describe(p, "needs ", ", only ", line, sizeof line);
    return err_set(err, "%s", line);
}

void memplan_describe(const MemPlan *p, char *buf, size_t n) { describe(p, "", "; ", buf, n); }
