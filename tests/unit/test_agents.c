/* The agent API of libternrt (ternrt.h trt_agent_*), on a ternary hgru model with a byte
 * tokenizer exported in memory:
 *   - 16 agents, each with its own seed and prompt, run a script (observe, act, save, observe,
 *     act) alone, one after the other; then all 16 run it again from 4 threads at once, each
 *     thread interleaving its 4 agents call by call: every agent's texts and saved states equal
 *     its solo run's, byte for byte (one read-only model, no shared mutable state);
 *   - a saved state restored into a fresh agent (another seed) continues exactly as the agent
 *     it was saved from; damaged, truncated or foreign blobs are refused with one line;
 *   - streaming: an agent with a 16-token context observes 200 tokens of text and its next-token
 *     logits equal those of a session that saw all of it at once (the GRU state is all the
 *     history there is); a GPT agent (attention) past its context keeps working.
 * Sizes: the state blob of a GRU agent is constant in the length of what it has seen. */
#include <pthread.h>

#include "rt_parity.h"

#include "kernels/blas_core.h"

#define NAGENTS 16
#define NTHREADS 4

static const ParityCfg kModel = {"hgru Gm ternary g128 + int8 act", "hgru",
                                 "{\"vocab_size\":259,\"layout\":\"Gm\",\"layers\":0,\"dim\":128,\"seq_len\":256}",
                                 "{\"act_bits\":8,\"weights\":\"ternary\",\"min_numel\":1000,\"group\":128}", "{}", EXPORT_INT_AUTO, NULL};

typedef struct Script {
    const TrtModel *m;
    int id;
    TrtAgent *a;
    int step;             /* next step of the script */
    char *out1, *out2;
    uint8_t *blob;
    size_t blob_len;
    int failed;
} Script;

static void prompt(int id, char *buf, size_t n) {
    static const char *const what[] = {"the river", "a lantern", "seven crows", "the old mill"};
    snprintf(buf, n, "Agent %d remembers %s and %d stones.", id, what[id % 4], 3 * id + 1);
}

/* One step of an agent's script; returns 0 when the script is done. */
static int script_step(Script *s) {
    char err[256] = "", buf[128];
    int rc = 0;
    switch (s->step++) {
    case 0: {
        TrtAgentOptions o = {.seed = 1000 + (uint64_t)s->id, .threads = 1};
        rc = trt_agent_new(s->m, &o, &s->a, err, sizeof err);
        break;
    }
    case 1:
        prompt(s->id, buf, sizeof buf);
        rc = trt_agent_observe(s->a, buf, err, sizeof err);
        break;
    case 2: rc = trt_agent_act(s->a, 24, 0.9f, &s->out1, err, sizeof err); break;
    case 3:
        s->blob_len = trt_agent_state_size(s->a);
        s->blob = malloc(s->blob_len);
        rc = trt_agent_save(s->a, s->blob, s->blob_len, err, sizeof err);
        break;
    case 4: rc = trt_agent_observe(s->a, " And then?", err, sizeof err); break;
    case 5: rc = trt_agent_act(s->a, 16, 0.7f, &s->out2, err, sizeof err); break;
    default: trt_agent_free(s->a); s->a = NULL; return 0;
    }
    if (rc) {
        printf("    agent %d step %d: %s\n", s->id, s->step - 1, err);
        s->failed = 1;
    }
    return 1;
}

static void script_free(Script *s) {
    free(s->out1), free(s->out2), free(s->blob);
    trt_agent_free(s->a);
}

typedef struct Worker {
    Script *s[NAGENTS / NTHREADS];
} Worker;

static void *worker(void *arg) {
    Worker *w = arg;
    for (int live = 1; live;) { /* round robin over this thread's agents, one call each */
        live = 0;
        for (int k = 0; k < NAGENTS / NTHREADS; k++) live |= script_step(w->s[k]);
    }
    return NULL;
}

static void test_threads(const TrtModel *m) {
    static Script solo[NAGENTS], many[NAGENTS];
    for (int i = 0; i < NAGENTS; i++) {
        solo[i] = (Script){.m = m, .id = i};
        while (script_step(&solo[i])) {}
    }
    Worker w[NTHREADS];
    pthread_t th[NTHREADS];
    for (int i = 0; i < NAGENTS; i++) {
        many[i] = (Script){.m = m, .id = i};
        w[i % NTHREADS].s[i / NTHREADS] = &many[i];
    }
    for (int t = 0; t < NTHREADS; t++) pthread_create(&th[t], NULL, worker, &w[t]);
    for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
    int same = 0, distinct = 0;
    for (int i = 0; i < NAGENTS; i++) {
        const Script *a = &solo[i], *b = &many[i];
        int ok = !a->failed && !b->failed && a->out1 && b->out1 && a->out2 && b->out2 && !strcmp(a->out1, b->out1) &&
                 !strcmp(a->out2, b->out2) && a->blob_len == b->blob_len && !memcmp(a->blob, b->blob, a->blob_len);
        CHECK(ok, "agent %d: 4-thread run equals its solo run", i);
        same += ok;
        distinct += i && a->out1 && solo[0].out1 && strcmp(a->out1, solo[0].out1);
    }
    printf("  16 agents from 4 threads: %d of 16 equal their solo runs (texts and saved states); %d of 15 differ from agent 0\n",
           same, distinct);
    CHECK(distinct >= 14, "agents with other seeds and prompts say other things");
    if (solo[3].out1) printf("    agent 3 said: \"%.40s...\"\n", solo[3].out1);
    /* restore agent 5's saved state into a fresh agent with another seed: it continues as agent 5 did */
    TrtAgentOptions o = {.seed = 77, .threads = 1};
    TrtAgent *r = NULL;
    char err[256] = "", *out = NULL;
    int rc = trt_agent_new(m, &o, &r, err, sizeof err) || trt_agent_restore(r, solo[5].blob, solo[5].blob_len, err, sizeof err) ||
             trt_agent_observe(r, " And then?", err, sizeof err) || trt_agent_act(r, 16, 0.7f, &out, err, sizeof err);
    CHECK(!rc && out && solo[5].out2 && !strcmp(out, solo[5].out2), "restored agent continues as the saved one: %s", err);
    printf("  save / restore: a fresh agent restored from agent 5's state (%zu bytes) continues with the same text\n", solo[5].blob_len);
    /* damaged blobs */
    uint8_t *b = malloc(solo[5].blob_len);
    struct {
        const char *what, *expect;
        size_t len, off;
        uint8_t byte;
    } bad[] = {
        {"truncated", "truncated", solo[5].blob_len - 3, 0, 0},
        {"magic", "bad magic", solo[5].blob_len, 0, 'X'},
        {"model", "another model", solo[5].blob_len, 8, 0x5a},
        {"context", "max_context", solo[5].blob_len, 16, 0x07},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memcpy(b, solo[5].blob, solo[5].blob_len);
        if (bad[k].byte) b[bad[k].off] ^= bad[k].byte;
        rc = trt_agent_restore(r, b, bad[k].len, err, sizeof err);
        CHECK(rc && strstr(err, bad[k].expect) && strstr(err, "agent state"), "%s blob refused: %s", bad[k].what, err);
    }
    printf("  %zu damaged state blobs refused with one line each\n", sizeof bad / sizeof bad[0]);
    free(b);
    free(out);
    trt_agent_free(r);
    for (int i = 0; i < NAGENTS; i++) script_free(&solo[i]), script_free(&many[i]);
}

/* An agent with a 16-token context streams 200 tokens; a session with room for all of them sees
 * them at once: same next-token logits, and the agent's state blob does not grow. */
static void test_streaming(const TrtModel *m) {
    char text[256], err[256] = "";
    for (int i = 0; i < 199; i++) text[i] = (char)('a' + (i * 7) % 26);
    text[199] = 0;
    TrtAgentOptions o = {.seed = 1, .threads = 1, .max_context = 16};
    TrtAgent *a = NULL;
    TrtSessionOptions so = {1, 1, 256};
    TrtSession *s = NULL;
    char head[3] = {text[0], text[1], 0};
    int rc = trt_agent_new(m, &o, &a, err, sizeof err) || trt_agent_observe(a, head, err, sizeof err);
    size_t small = rc ? 0 : trt_agent_state_size(a);
    rc = rc || trt_agent_observe(a, text + 2, err, sizeof err) || trt_session_new(m, &so, &s, err, sizeof err) ||
         trt_session_observe_text(s, text, strlen(text), 1, NULL, err, sizeof err);
    CHECK(!rc, "streaming: %s", err);
    if (!rc) {
        double d = max_diff(trt_agent_logits(a), trt_session_logits(s), trt_model_info(m)->vocab_size);
        size_t big = trt_agent_state_size(a);
        printf("  streaming: 200 tokens through a 16-token context, next-token logits vs one 200-token session: max diff %.1e; "
               "state %zu bytes after 3 tokens, %zu after 200\n", d, small, big);
        CHECK(d < 1e-5 && big <= small + 16 * sizeof(int32_t), "the stream's state is the unbounded one's, and bounded");
    }
    trt_session_free(s);
    trt_agent_free(a);
}

/* A GPT (attention: positions matter) agent past its context: the newer half is kept and re-fed. */
static void test_attention_agent(void) {
    const ParityCfg gpt = {"gpt", "gpt", "{\"vocab_size\":259,\"layers\":1,\"dim\":64,\"heads\":2,\"kv_heads\":1,\"seq_len\":128}",
                           "{\"weights\":\"none\"}", "{}", EXPORT_INT_AUTO, NULL};
    ParityRun pr;
    if (parity_build(&pr, &gpt, 4, NULL)) return;
    char err[256] = "", *out = NULL, text[101];
    for (int i = 0; i < 100; i++) text[i] = (char)('a' + (i * 5) % 26);
    text[100] = 0;
    TrtAgentOptions o = {.seed = 2, .threads = 1, .max_context = 16};
    TrtAgent *a = NULL;
    int rc = trt_agent_new(pr.rm, &o, &a, err, sizeof err) || trt_agent_observe(a, text, err, sizeof err) ||
             trt_agent_act(a, 40, 1.0f, &out, err, sizeof err);
    CHECK(!rc && out, "a GPT agent past its 16-token context: %s", err);
    printf("  a GPT agent (16-token context) observed 100 tokens and generated 40: ok\n");
    free(out);
    trt_agent_free(a);
    parity_done(&pr);
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    printf("test_agents\n");
    ParityRun pr;
    if (parity_build(&pr, &kModel, 3, NULL)) return test_summary("test_agents");
    test_threads(pr.rm);
    test_streaming(pr.rm);
    parity_done(&pr);
    test_attention_agent();
    return test_summary("test_agents");
}
