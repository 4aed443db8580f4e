/* The runtime's KV cache (runtime/blocks/attention.c, stack.c rt_stack_reserve), on a GQA GPT
 * (4 heads on 2 KV heads, seq_len 300: the last capacity is not a power of two nor a whole key
 * block) exported in memory:
 *   - it grows with the context used: a fresh session holds 64 positions, one that has seen N
 *     tokens holds the next doubling >= N (capped at seq_len), and its state is exactly that
 *     many positions of keys and values (trt_session_state_bytes);
 *   - growth is exact: logits fed token by token through every growth step equal the batched
 *     prefill (< 1e-4, as the parity test), and a session whose cache grew while fed equals,
 *     bit for bit, one fed the same pieces into a cache already at full size;
 *   - the fp16 cache (TrtLoadOptions.kv_cache "f16") holds half the bytes and its logits stay
 *     within 2e-3 * (1 + max|logit|) of the fp32 cache's (keys and values rounded to 11
 *     significant bits: relative error <= 2^-11 each); its decode equals its prefill;
 *   - agents save the state at the capacity their length needs and restore it into agents of
 *     any capacity, continuing exactly; a bad kv_cache name is refused with one line. */
#include "rt_parity.h"

#include "kernels/blas_core.h"

static const ParityCfg kGpt = {"gpt GQA 4/2 heads, int5 weight-only, seq_len 300", "gpt",
                               "{\"vocab_size\":300,\"layers\":2,\"dim\":128,\"heads\":4,\"kv_heads\":2,\"seq_len\":300}",
                               "{\"weights\":\"int5\",\"min_numel\":1000}", "{}", EXPORT_INT_AUTO, NULL};

enum { L_ = 2, G_ = 2, D_ = 32, KV_ = 64, T_ = 300 };

/* bytes of the state of a cache of cap positions: per layer keys in whole blocks of 16, values,
 * padded to 16 floats (stack.c) */
static size_t expect_bytes(size_t cap, int f16) {
    size_t elems = (cap + 15) / 16 * 16 * G_ * D_ + cap * KV_, floats = f16 ? (elems + 1) / 2 : elems;
    return L_ * ((floats + 15) / 16 * 16) * sizeof(float);
}

static size_t expect_cap(size_t n) {
    size_t c = 64;
    while (c < n) c *= 2;
    return c < T_ ? c : T_;
}

static TrtModel *load_kv(const ParityRun *pr, const char *kv) {
    TrtLoadOptions lo = {getenv("TERN_PARITY_ISA"), 0, kv};
    TrtModel *m = NULL;
    char err[256] = "";
    int rc = trt_model_load_memory(&m, pr->art, pr->alen, "kvcache", &lo, err, sizeof err);
    CHECK(!rc, "load with kv_cache %s: %s", kv, err);
    return rc ? NULL : m;
}

/* feeds ids one at a time, checking the capacity and state bytes after each; logits into out */
static void decode_growing(TrtModel *m, const int32_t *ids, float *out, int f16, const char *what) {
    TrtSessionOptions so = {1, 2, 0};
    TrtSession *s = NULL;
    char err[256] = "";
    CHECK(!trt_session_new(m, &so, &s, err, sizeof err), "%s: session: %s", what, err);
    if (!s) return;
    CHECK(trt_session_cache_positions(s) == 64 && trt_session_state_bytes(s) == expect_bytes(64, f16),
          "%s: a fresh session holds %zu positions, %zu bytes", what, trt_session_cache_positions(s), trt_session_state_bytes(s));
    size_t V = trt_model_info(m)->vocab_size, bad = 0;
    for (size_t i = 0; i < T_; i++) {
        if (trt_session_observe(s, ids + i, 1, NULL, err, sizeof err)) {
            CHECK(0, "%s: observe: %s", what, err);
            break;
        }
        memcpy(out + i * V, trt_session_logits(s), V * sizeof(float));
        size_t cap = trt_session_cache_positions(s), bytes = trt_session_state_bytes(s);
        if (cap != expect_cap(i + 1) || bytes != expect_bytes(cap, f16)) {
            if (!bad++) printf("    after %zu tokens: %zu positions (%zu expected), %zu bytes (%zu expected)\n", i + 1, cap, expect_cap(i + 1), bytes,
                               expect_bytes(expect_cap(i + 1), f16));
        }
        if (i + 1 == 128) CHECK(cap == 128, "%s: 128 tokens seen, %zu positions held", what, cap);
    }
    CHECK(bad == 0, "%s: %zu steps with another capacity or size than expected", what, bad);
    trt_session_free(s);
}

static void prefill(TrtModel *m, const int32_t *ids, float *out, size_t T) {
    TrtSessionOptions so = {1, 2, 0};
    TrtSession *s = NULL;
    char err[256] = "";
    int ok = !trt_session_new(m, &so, &s, err, sizeof err) && !trt_session_observe(s, ids, T, out, err, sizeof err);
    CHECK(ok, "prefill: %s", err);
    CHECK(!s || trt_session_cache_positions(s) == expect_cap(T), "prefill of %zu holds %zu positions", T, s ? trt_session_cache_positions(s) : 0);
    trt_session_free(s);
}

/* the same pieces into a session whose cache grows and into one already at full size */
static void growth_is_exact(TrtModel *m, const int32_t *ids) {
    size_t V = trt_model_info(m)->vocab_size;
    float *a = malloc(T_ * V * sizeof(float)), *b = malloc(T_ * V * sizeof(float));
    TrtSessionOptions so = {1, 2, 0};
    TrtSession *s1 = NULL, *s2 = NULL;
    char err[256] = "";
    int ok = !trt_session_new(m, &so, &s1, err, sizeof err) && !trt_session_new(m, &so, &s2, err, sizeof err);
    ok = ok && !trt_session_observe(s2, ids, T_, NULL, err, sizeof err); /* grows s2 to T_, then forgets */
    if (ok) trt_session_reset(s2);
    const size_t lens[] = {37, 1, 1, 64, 5, 70, 2};
    ok = ok && !feed_pieces(s1, ids, T_, lens, 7, a, V) && !feed_pieces(s2, ids, T_, lens, 7, b, V);
    CHECK(ok, "growth: %s", err);
    CHECK(ok && !memcmp(a, b, T_ * V * sizeof(float)), "a growing cache gives other logits than a full-size one (max diff %.3g)",
          max_diff(a, b, T_ * V));
    trt_session_free(s1);
    trt_session_free(s2);
    free(a), free(b);
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* save at 100-odd tokens, restore into a fresh agent and into one whose cache is full size */
static void agents(TrtModel *m) {
    char err[256] = "", *t0 = NULL, *t1 = NULL, *t2 = NULL;
    TrtAgentOptions o = {.seed = 7, .threads = 1};
    TrtAgent *a = NULL, *b = NULL, *c = NULL;
    int ok = !trt_agent_new(m, &o, &a, err, sizeof err) && !trt_agent_new(m, &o, &b, err, sizeof err) &&
             !trt_agent_new(m, &o, &c, err, sizeof err);
    const char *text = "A lantern swung over the river while seven crows watched the old mill turn, turn, turn.";
    ok = ok && !trt_agent_observe(a, text, err, sizeof err);
    static char longtext[400];
    memset(longtext, 'x', 280);
    ok = ok && !trt_agent_observe(c, longtext, err, sizeof err); /* c's cache: full size */
    CHECK(ok, "agents: %s", err);
    if (!ok) goto out;
    int32_t *tids = NULL;
    size_t n = 0;
    CHECK(!trt_encode(m, text, strlen(text), &tids, &n, err, sizeof err), "encode: %s", err);
    free(tids);
    n += trt_model_info(m)->bos >= 0; /* the first text starts with BOS */
    size_t need = trt_agent_state_size(a);
    size_t V = trt_model_info(m)->vocab_size, hdr = 8 + 4 + 4 + 8 * 3 + 8 * 4 + 4 + 4;
    CHECK(need == hdr + V * 4 + expect_bytes(expect_cap(n), 0) + n * 4, "agent state of %zu tokens: %zu bytes", n, need);
    uint8_t *blob = malloc(need + 1);
    ok = !trt_agent_save(a, blob + 1, need, err, sizeof err) && /* unaligned on purpose */
         !trt_agent_restore(b, blob + 1, need, err, sizeof err) && !trt_agent_restore(c, blob + 1, need, err, sizeof err);
    CHECK(ok, "save / restore: %s", err);
    CHECK(ok && !memcmp(trt_agent_logits(a), trt_agent_logits(b), V * sizeof(float)) &&
              !memcmp(trt_agent_logits(a), trt_agent_logits(c), V * sizeof(float)),
          "restored agents' logits differ");
    ok = ok && !trt_agent_act(a, 40, 0.0f, &t0, err, sizeof err) && !trt_agent_act(b, 40, 0.0f, &t1, err, sizeof err) &&
         !trt_agent_act(c, 40, 0.0f, &t2, err, sizeof err);
    CHECK(ok && !strcmp(t0, t1) && !strcmp(t0, t2), "restored agents continue differently: %s", err);
    free(blob);
out:
    free(t0), free(t1), free(t2);
    trt_agent_free(a), trt_agent_free(b), trt_agent_free(c);
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    printf("test_runtime_kvcache\n");
    ParityRun pr;
    if (parity_build(&pr, &kGpt, 5, NULL)) return test_summary("test_runtime_kvcache");
    size_t V = 300;
    Rng r;
    rng_seed(&r, 11);
    int32_t ids[T_];
    for (size_t i = 0; i < T_; i++) ids[i] = (int32_t)rng_below(&r, V);
    TrtModel *m32 = load_kv(&pr, NULL), *m16 = load_kv(&pr, "f16");
    if (m32 && m16) {
        float *pre = malloc(T_ * V * sizeof(float)), *dec = malloc(T_ * V * sizeof(float));
        float *pre16 = malloc(T_ * V * sizeof(float)), *dec16 = malloc(T_ * V * sizeof(float));
        prefill(m32, ids, pre, T_);
        decode_growing(m32, ids, dec, 0, "f32");
        double wd = max_diff(dec, pre, T_ * V);
        CHECK(wd < 1e-4, "f32: decode through growth vs prefill max diff %.3g", wd);
        growth_is_exact(m32, ids);
        prefill(m16, ids, pre16, T_);
        decode_growing(m16, ids, dec16, 1, "f16");
        double wd16 = max_diff(dec16, pre16, T_ * V), w16 = max_diff(pre16, pre, T_ * V), mag = max_abs(pre, T_ * V);
        CHECK(wd16 < 1e-4, "f16: decode vs prefill max diff %.3g", wd16);
        CHECK(w16 < 2e-3 * (1 + mag), "f16 cache vs f32 cache: max|dlogit| %.3g (|logit| up to %.3g)", w16, mag);
        double ce32 = mean_ce(pre, ids, T_, V), ce16 = mean_ce(pre16, ids, T_, V);
        printf("  decode vs prefill %.1e (f32), %.1e (f16); f16 vs f32 cache: max|dlogit| %.2e of |logit| <= %.2f, CE %.6f vs %.6f\n", wd,
               wd16, w16, mag, ce16, ce32);
        agents(m32);
        free(pre), free(dec), free(pre16), free(dec16);
    }
    TrtLoadOptions bad = {NULL, 0, "bf16"};
    TrtModel *mb = NULL;
    char err[256] = "";
    int rc = trt_model_load_memory(&mb, pr.art, pr.alen, "kvcache", &bad, err, sizeof err);
    CHECK(rc && mb == NULL && strstr(err, "unknown KV cache type"), "kv_cache \"bf16\" accepted or unclear: %s", err);
    trt_model_free(m32);
    trt_model_free(m16);
    parity_done(&pr);
    return test_summary("test_runtime_kvcache");
}
