/* agent.c — agents (ternrt.h): text in (observe), text out (act), state saved and restored; the
 * interface of the Hybrid-GRU engine (sumithkumar07/Hybrid-GRU: hybrid_gru_agent_observe / _act /
 * _save_state / _load_state) on tern's sessions. An agent owns its session; the model is only
 * read, so agents on one model run concurrently without locks.
 *
 * Saved state (native byte order: a blob is for this machine and this model):
 *   "TRTAGNT1", u32 model CRC (the container's), u32 vocab, u64 max_ctx, u64 state floats,
 *   u64 tokens in context, u64 rng[4], i32 have_logits, i32 previous token,
 *   float logits[vocab], float state[...], i32 tokens[...]
 * The state is laid out for a KV cache of rt_stack_cap_for(n_past) positions (what a fresh
 * session holding n_past tokens has); a blob whose state is laid out for max_ctx (written before
 * the cache grew with the context) restores too. */
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_internal.h"

struct TrtAgent {
    TrtSession *s;
    TrtSampling sp;
    int fed; /* anything observed yet (the first text starts with BOS) */
};

typedef struct AgentHeader {
    char magic[8];
    uint32_t crc, vocab;
    uint64_t max_ctx, nstate, n_past, rng[4];
    int32_t have_logits, prev_tok;
} AgentHeader;

static const char kMagic[8] = {'T', 'R', 'T', 'A', 'G', 'N', 'T', '1'};

static int fail(RtErr *e, char *err, size_t errlen) {
    rt_err_out(e, err, errlen);
    return -1;
}

int trt_agent_new(const TrtModel *m, const TrtAgentOptions *opt, TrtAgent **out, char *err, size_t errlen) {
    RtErr e = {{0}};
    *out = NULL;
    if (!m->tok) return fail((rt_err(&e, "the artifact has no tokenizer: agents read and write text"), &e), err, errlen);
    TrtAgent *a = calloc(1, sizeof *a);
    if (!a) return fail((rt_err(&e, "out of memory"), &e), err, errlen);
    TrtAgentOptions o = {0};
    if (opt) o = *opt;
    TrtSessionOptions so = {o.seed, o.threads > 0 ? o.threads : 1, o.max_context};
    if (trt_session_new(m, &so, &a->s, err, errlen)) {
        free(a);
        return -1;
    }
    if (a->s->max_ctx < 4) {
        trt_agent_free(a);
        return fail((rt_err(&e, "an agent needs a context of at least 4 tokens"), &e), err, errlen);
    }
    a->sp = (TrtSampling){1.0f, o.top_p > 0 ? o.top_p : 1.0f, o.repetition_penalty > 0 ? o.repetition_penalty : 1.0f, 64,
                          o.stop_at_eos};
    *out = a;
    return 0;
}

void trt_agent_free(TrtAgent *a) {
    if (!a) return;
    trt_session_free(a->s);
    free(a);
}

/* Feeds ids, in pieces that leave room as rt_session_make_room allows. */
static int feed(TrtAgent *a, const int32_t *ids, size_t n, char *err, size_t errlen) {
    size_t piece = a->s->max_ctx / 2;
    for (size_t i = 0; i < n; i += piece) {
        size_t k = n - i < piece ? n - i : piece;
        RtErr e = {{0}};
        if (rt_session_make_room(a->s, k, &e)) return fail(&e, err, errlen);
        if (trt_session_observe(a->s, ids + i, k, NULL, err, errlen)) return -1;
    }
    a->fed = 1;
    return 0;
}

int trt_agent_observe(TrtAgent *a, const char *text, char *err, size_t errlen) {
    const TrtModel *m = a->s->m;
    int32_t *ids = NULL;
    size_t n = 0;
    if (trt_encode(m, text, strlen(text), &ids, &n, err, errlen)) return -1;
    int32_t bos = tokenizer_bos(m->tok);
    int rc = 0;
    if (!a->fed && bos >= 0) rc = feed(a, &bos, 1, err, errlen);
    if (!rc) rc = feed(a, ids, n, err, errlen);
    free(ids);
    return rc;
}

int trt_agent_act(TrtAgent *a, size_t n, float temperature, char **text, char *err, size_t errlen) {
    RtErr e = {{0}};
    const TrtModel *m = a->s->m;
    *text = NULL;
    if (!a->s->have_logits && trt_agent_observe(a, "", err, errlen)) return -1;
    if (!a->s->have_logits) return fail((rt_err(&e, "nothing to continue: observe some text first"), &e), err, errlen);
    int32_t *ids = malloc((n ? n : 1) * sizeof(int32_t)), eos = tokenizer_eos(m->tok);
    if (!ids) return fail((rt_err(&e, "out of memory"), &e), err, errlen);
    TrtSampling sp = a->sp;
    sp.temperature = temperature > 0 ? temperature : 0.0f;
    size_t k = 0;
    int rc = 0;
    while (k < n && !rc) {
        int32_t id = trt_sample(a->s, &sp);
        if (id < 0) rc = fail((rt_err(&e, "sampling failed (out of memory)"), &e), err, errlen);
        else ids[k++] = id, rc = feed(a, &id, 1, err, errlen); /* fed back, so the next call continues after it */
        if (sp.stop_at_eos && id == eos) break;
    }
    size_t len = 0;
    if (!rc) rc = trt_decode(m, ids, k, text, &len, err, errlen);
    free(ids);
    return rc;
}

const float *trt_agent_logits(const TrtAgent *a) { return trt_session_logits(a->s); }

/* ---------------------------------------------------------------- saving and restoring */

static uint32_t model_crc(const TrtModel *m) { return tern_rd_u32(m->container + m->container_len - TERN_CRC_SIZE); }

/* state floats of a blob for n_past tokens */
static size_t saved_floats(const TrtSession *s, size_t n_past) { return rt_stack_state_floats(s, rt_stack_cap_for(s, n_past)); }

size_t trt_agent_state_size(const TrtAgent *a) {
    size_t nstate = saved_floats(a->s, a->s->n_past);
    return sizeof(AgentHeader) + (a->s->m->info.vocab_size + nstate) * sizeof(float) + a->s->n_past * sizeof(int32_t);
}

int trt_agent_save(const TrtAgent *a, void *buf, size_t size, char *err, size_t errlen) {
    RtErr e = {{0}};
    TrtSession *s = a->s;
    size_t need = trt_agent_state_size(a), V = s->m->info.vocab_size, nstate;
    if (size < need) return fail((rt_err(&e, "agent state needs %zu bytes, the buffer has %zu", need, size), &e), err, errlen);
    int32_t *prev;
    const float *st = rt_stack_state(s, &nstate, &prev);
    size_t cap = rt_stack_cap_for(s, s->n_past);
    nstate = rt_stack_state_floats(s, cap);
    AgentHeader h = {{0}, model_crc(s->m), (uint32_t)V, s->max_ctx, nstate, s->n_past, {0}, s->have_logits, *prev};
    memcpy(h.magic, kMagic, sizeof kMagic);
    memcpy(h.rng, s->rng, sizeof h.rng);
    uint8_t *p = buf;
    memcpy(p, &h, sizeof h);
    memcpy(p += sizeof h, s->logits, V * sizeof(float));
    rt_stack_state_copy(s, p += V * sizeof(float), cap, st, rt_stack_cache_cap(s), s->n_past);
    memcpy(p += nstate * sizeof(float), s->tokens, s->n_past * sizeof(int32_t));
    return 0;
}

int trt_agent_restore(TrtAgent *a, const void *buf, size_t size, char *err, size_t errlen) {
    RtErr e = {{0}};
    TrtSession *s = a->s;
    size_t V = s->m->info.vocab_size, nstate;
    int32_t *prev;
    AgentHeader h;
    if (size < sizeof h) return fail((rt_err(&e, "agent state: %zu bytes is too short (truncated)", size), &e), err, errlen);
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, kMagic, sizeof kMagic)) return fail((rt_err(&e, "agent state: not a saved agent (bad magic)"), &e), err, errlen);
    if (h.crc != model_crc(s->m) || h.vocab != V)
        return fail((rt_err(&e, "agent state: saved by an agent of another model"), &e), err, errlen);
    if (h.max_ctx != s->max_ctx)
        return fail((rt_err(&e, "agent state: saved with max_context %llu, this agent has %zu", (unsigned long long)h.max_ctx, s->max_ctx), &e),
                    err, errlen);
    if (h.n_past > s->max_ctx) return fail((rt_err(&e, "agent state: corrupt header"), &e), err, errlen);
    /* the state's layout: for the cache a session of n_past tokens has, or (older blobs) max_ctx */
    size_t src_cap = rt_stack_cap_for(s, (size_t)h.n_past);
    nstate = rt_stack_state_floats(s, src_cap);
    if (h.nstate != nstate && h.nstate == rt_stack_state_floats(s, s->max_ctx)) src_cap = s->max_ctx, nstate = (size_t)h.nstate;
    if (h.nstate != nstate) return fail((rt_err(&e, "agent state: saved by an agent of another model (or another KV cache type)"), &e), err, errlen);
    if ((h.have_logits != 0 && h.have_logits != 1) || h.prev_tok < -1 || h.prev_tok >= (int32_t)V)
        return fail((rt_err(&e, "agent state: corrupt header"), &e), err, errlen);
    size_t need = sizeof h + (V + nstate) * sizeof(float) + (size_t)h.n_past * sizeof(int32_t);
    if (size != need) return fail((rt_err(&e, "agent state: %zu bytes, expected %zu (truncated or damaged)", size, need), &e), err, errlen);
    const uint8_t *p = (const uint8_t *)buf + sizeof h;
    const int32_t *tok = (const int32_t *)(p + (V + nstate) * sizeof(float));
    for (size_t i = 0; i < h.n_past; i++) {
        int32_t t;
        memcpy(&t, tok + i, sizeof t);
        if (t < 0 || (size_t)t >= V) return fail((rt_err(&e, "agent state: token %zu is outside the vocabulary", i), &e), err, errlen);
    }
    if (rt_stack_reserve(s, (size_t)h.n_past, &e)) return fail(&e, err, errlen);
    float *st = rt_stack_state(s, &nstate, &prev);
    memcpy(s->logits, p, V * sizeof(float));
    rt_stack_state_copy(s, st, rt_stack_cache_cap(s), p + V * sizeof(float), src_cap, (size_t)h.n_past);
    memcpy(s->tokens, tok, h.n_past * sizeof(int32_t));
    memcpy(s->rng, h.rng, sizeof h.rng);
    s->n_past = h.n_past;
    s->have_logits = h.have_logits;
    *prev = h.prev_tok;
    a->fed = h.n_past > 0;
    return 0;
}
