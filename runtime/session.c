/* session.c — sessions (a context with its KV cache and its own random stream), feeding tokens
 * and text, sampling and generation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_internal.h"

/* xoshiro256** seeded through splitmix64 (Blackman & Vigna): per session, so sessions never
 * share random state and a seed reproduces a generation exactly. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rng_next(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

int trt_session_new(const TrtModel *m, const TrtSessionOptions *opt, TrtSession **out, char *err, size_t errlen) {
    RtErr e = {{0}};
    *out = NULL;
    TrtSession *s = calloc(1, sizeof *s);
    if (!s) {
        rt_err(&e, "out of memory");
        rt_err_out(&e, err, errlen);
        return -1;
    }
    s->m = m;
    s->kv_f16 = m->kv_f16;
    uint64_t seed = opt ? opt->seed : 0;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&seed);
    s->threads = opt && opt->threads > 0 ? opt->threads : RT_MAX_THREADS();
    if (s->threads < 1) s->threads = 1;
    s->max_ctx = opt && opt->max_context ? opt->max_context : m->info.seq_len;
    if (s->max_ctx > m->info.seq_len) s->max_ctx = m->info.seq_len;
    s->tokens = rt_alloc(s->max_ctx * sizeof(int32_t));
    s->logits = rt_alloc(m->info.vocab_size * sizeof(float));
    if (!s->tokens || !s->logits || rt_stack_session_init(s, &e)) {
        if (!e.msg[0]) rt_err(&e, "out of memory");
        trt_session_free(s);
        rt_err_out(&e, err, errlen);
        return -1;
    }
    if (m->tok) s->tscratch = tokscratch_new(m->tok);
    *out = s;
    return 0;
}

void trt_session_free(TrtSession *s) {
    if (!s) return;
    if (s->state) rt_stack_session_free(s);
    if (s->tscratch) tokscratch_free(s->tscratch);
    rt_free(s->tokens);
    rt_free(s->logits);
    free(s);
}

void trt_session_reset(TrtSession *s) {
    s->n_past = 0;
    s->have_logits = 0;
}

size_t trt_session_length(const TrtSession *s) { return s->n_past; }

size_t trt_session_cache_positions(const TrtSession *s) { return rt_stack_cache_cap(s); }

size_t trt_session_state_bytes(const TrtSession *s) { return rt_stack_state_floats(s, rt_stack_cache_cap(s)) * sizeof(float); }

const float *trt_session_logits(const TrtSession *s) { return s->have_logits ? s->logits : NULL; }

int trt_session_observe(TrtSession *s, const int32_t *ids, size_t n, float *logits, char *err, size_t errlen) {
    RtErr e = {{0}};
    size_t V = s->m->info.vocab_size;
    if (n == 0) return 0;
    if (n > s->max_ctx - s->n_past) {
        rt_err(&e, "%zu tokens do not fit the context (%zu of %zu used)", n, s->n_past, s->max_ctx);
        rt_err_out(&e, err, errlen);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= V) {
            rt_err(&e, "token id %d at position %zu is outside the vocabulary [0, %zu)", ids[i], i, V);
            rt_err_out(&e, err, errlen);
            return -1;
        }
    if (rt_stack_reserve(s, s->n_past + n, &e)) {
        rt_err_out(&e, err, errlen);
        return -1;
    }
    rt_stack_forward(s, ids, n, logits);
    memcpy(s->tokens + s->n_past, ids, n * sizeof(int32_t));
    s->n_past += n;
    s->have_logits = 1;
    return 0;
}

int trt_session_observe_text(TrtSession *s, const char *text, size_t len, int add_bos, size_t *n_tokens, char *err,
                             size_t errlen) {
    RtErr e = {{0}};
    if (!s->m->tok) {
        rt_err(&e, "the artifact has no tokenizer: feed token ids instead");
        rt_err_out(&e, err, errlen);
        return -1;
    }
    TokenBuf buf = {0};
    int32_t bos = tokenizer_bos(s->m->tok);
    if (add_bos && bos >= 0) {
        buf.ids = malloc(sizeof(int32_t));
        if (!buf.ids) {
            rt_err(&e, "out of memory");
            rt_err_out(&e, err, errlen);
            return -1;
        }
        buf.ids[0] = bos;
        buf.n = buf.cap = 1;
    }
    Err te = {0};
    if (tokenizer_encode_ex(s->m->tok, s->tscratch, text, len, TOK_ENCODE_ALLOW_INVALID_UTF8, &buf, &te)) {
        tokenbuf_free(&buf);
        rt_err(&e, "%s", te.msg);
        rt_err_out(&e, err, errlen);
        return -1;
    }
    int rc = trt_session_observe(s, buf.ids, buf.n, NULL, err, errlen);
    if (n_tokens) *n_tokens = rc ? 0 : buf.n;
    tokenbuf_free(&buf);
    return rc;
}

/* Room for k more tokens (k <= max_ctx / 2). A model whose layers never read the position (GRU,
 * MLGRU, MLPs: rt_stack_position_free) streams on: the state is kept and only the oldest token
 * history (what the repetition penalty reads) is dropped, so the result is the unbounded
 * stream's. Otherwise the newer half of the context is kept and re-fed (positions restart at 0). */
int rt_session_make_room(TrtSession *s, size_t k, RtErr *e) {
    if (k <= s->max_ctx - s->n_past) return 0;
    size_t keep = s->max_ctx / 2, drop = s->n_past - keep;
    if (rt_stack_position_free(s->m)) {
        memmove(s->tokens, s->tokens + drop, keep * sizeof(int32_t));
        s->n_past = keep; /* > 0: a forward at position 0 would restart the state */
        return 0;
    }
    int32_t *tmp = malloc(keep * sizeof(int32_t) + 1);
    if (!tmp) return rt_err(e, "out of memory");
    memcpy(tmp, s->tokens + drop, keep * sizeof(int32_t));
    trt_session_reset(s);
    char msg[sizeof e->msg];
    int rc = trt_session_observe(s, tmp, keep, NULL, msg, sizeof msg);
    free(tmp);
    return rc ? rt_err(e, "%s", msg) : 0;
}

void trt_sampling_defaults(TrtSampling *sp) {
    sp->temperature = 0.7f;
    sp->top_p = 0.92f;
    sp->repetition_penalty = 1.1f;
    sp->repetition_window = 64;
    sp->stop_at_eos = 1;
}

typedef struct Cand {
    double p;
    int32_t id;
} Cand;

static int cand_cmp(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

int32_t trt_sample(TrtSession *s, const TrtSampling *sp) {
    size_t V = s->m->info.vocab_size;
    if (!s->have_logits) return -1;
    TrtSampling d;
    if (!sp) {
        trt_sampling_defaults(&d);
        sp = &d;
    }
    double *z = malloc(V * sizeof(double));
    Cand *c = malloc(V * sizeof(Cand));
    if (!z || !c) {
        free(z);
        free(c);
        return -1;
    }
    for (size_t i = 0; i < V; i++) z[i] = s->logits[i];
    if (sp->repetition_penalty > 0 && sp->repetition_penalty != 1.0f) {
        /* CTRL (Keskar et al. 2019) as llama.cpp applies it: each distinct recent token once */
        size_t win = sp->repetition_window ? sp->repetition_window : 64;
        size_t from = s->n_past > win ? s->n_past - win : 0;
        uint8_t *seen = calloc(V, 1);
        if (seen) {
            for (size_t i = from; i < s->n_past; i++) {
                int32_t t = s->tokens[i];
                if (t < 0 || (size_t)t >= V || seen[t]) continue;
                seen[t] = 1;
                z[t] = z[t] > 0 ? z[t] / sp->repetition_penalty : z[t] * sp->repetition_penalty;
            }
            free(seen);
        }
    }
    int32_t best = 0;
    for (size_t i = 1; i < V; i++)
        if (z[i] > z[best]) best = (int32_t)i;
    if (!(sp->temperature > 0)) {
        free(z);
        free(c);
        return best;
    }
    double mx = z[best], sum = 0;
    for (size_t i = 0; i < V; i++) {
        c[i].p = exp((z[i] - mx) / sp->temperature);
        c[i].id = (int32_t)i;
        sum += c[i].p;
    }
    size_t keep = V;
    if (sp->top_p > 0 && sp->top_p < 1) {
        /* nucleus (Holtzman et al. 2020): the smallest set of most likely tokens whose mass
         * reaches top_p; ties broken by id so the order never depends on qsort */
        qsort(c, V, sizeof(Cand), cand_cmp);
        double acc = 0;
        for (keep = 0; keep < V;) {
            acc += c[keep++].p / sum;
            if (acc >= sp->top_p) break;
        }
    }
    double tot = 0;
    for (size_t i = 0; i < keep; i++) tot += c[i].p;
    double u = rng_uniform(s->rng) * tot, acc = 0;
    int32_t pick = c[keep - 1].id;
    for (size_t i = 0; i < keep; i++) {
        acc += c[i].p;
        if (u < acc) {
            pick = c[i].id;
            break;
        }
    }
    free(z);
    free(c);
    return pick;
}

int trt_generate(TrtSession *s, size_t n, const TrtSampling *sp, TrtTokenCallback cb, void *ctx, int32_t *out_ids, size_t *n_out,
                 char *err, size_t errlen) {
    RtErr e = {{0}};
    if (n_out) *n_out = 0;
    if (!s->have_logits) {
        int32_t bos = s->m->tok ? tokenizer_bos(s->m->tok) : -1;
        if (bos < 0) {
            rt_err(&e, "nothing to continue: feed a prompt first");
            rt_err_out(&e, err, errlen);
            return -1;
        }
        if (trt_session_observe(s, &bos, 1, NULL, err, errlen)) return -1;
    }
    int32_t eos = s->m->tok ? tokenizer_eos(s->m->tok) : -1;
    for (size_t i = 0; i < n; i++) {
        int32_t id = trt_sample(s, sp);
        if (id < 0) {
            rt_err(&e, "sampling failed (out of memory)");
            rt_err_out(&e, err, errlen);
            return -1;
        }
        if (out_ids) out_ids[i] = id;
        if (n_out) *n_out = i + 1;
        int stop = 0;
        if (cb) {
            char buf[256];
            size_t len = s->m->tok ? tokenizer_piece_bytes(s->m->tok, id, buf, sizeof buf) : 0;
            if (len > sizeof buf) len = sizeof buf;
            stop = cb(ctx, id, buf, len);
        }
        if (stop || (sp && sp->stop_at_eos && id == eos)) break;
        if (i + 1 == n) break; /* the last token needs no forward pass */
        if (rt_session_make_room(s, 1, &e)) {
            rt_err_out(&e, err, errlen);
            return -1;
        }
        if (trt_session_observe(s, &id, 1, NULL, err, errlen)) return -1;
    }
    return 0;
}

int trt_decode(const TrtModel *m, const int32_t *ids, size_t n, char **text, size_t *len, char *err, size_t errlen) {
    RtErr e = {{0}};
    if (!m->tok) {
        rt_err(&e, "the artifact has no tokenizer");
        rt_err_out(&e, err, errlen);
        return -1;
    }
    Err te = {0};
    if (tokenizer_decode(m->tok, ids, n, text, len, &te)) {
        rt_err(&e, "%s", te.msg);
        rt_err_out(&e, err, errlen);
        return -1;
    }
    return 0;
}

int trt_encode(const TrtModel *m, const char *text, size_t len, int32_t **ids, size_t *n, char *err, size_t errlen) {
    RtErr e = {{0}};
    if (!m->tok) {
        rt_err(&e, "the artifact has no tokenizer");
        rt_err_out(&e, err, errlen);
        return -1;
    }
    TokenBuf buf = {0};
    Err te = {0};
    if (tokenizer_encode_ex(m->tok, NULL, text, len, TOK_ENCODE_ALLOW_INVALID_UTF8, &buf, &te)) {
        tokenbuf_free(&buf);
        rt_err(&e, "%s", te.msg);
        rt_err_out(&e, err, errlen);
        return -1;
    }
    *ids = malloc((buf.n ? buf.n : 1) * sizeof(int32_t));
    if (!*ids) {
        tokenbuf_free(&buf);
        rt_err(&e, "out of memory");
        rt_err_out(&e, err, errlen);
        return -1;
    }
    if (buf.n) memcpy(*ids, buf.ids, buf.n * sizeof(int32_t));
    *n = buf.n;
    tokenbuf_free(&buf);
    return 0;
}
