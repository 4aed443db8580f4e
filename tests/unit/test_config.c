/* Config ranges and memory checks: cfg_read's range / finiteness / duplicate rules on a small
 * table and on the exported layer tables; the memory plan's extrapolated arena against the
 * arena a real micro-step at the target shape fills (gpt, trn_hybrid, llama; training and
 * forward-only); and, in a child process under an address-space limit, the clean refusals of
 * params_finalize and xmalloc (one line, exit status 1). */
#include <cjson/cJSON.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "kernels/jsoncfg.h"
#include "kernels/meminfo.h"
#include "model/block.h"
#include "model/model.h"
#include "model/qat.h"
#include "optim/mezo.h"
#include "optim/schedule.h"
#include "train/memplan.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

typedef struct Demo {
    long n;
    size_t s;
    double x;
} Demo;

static const CfgField kDemo[] = {
    CFG_R(CFG_INT, Demo, n, -2, 5, "an integer"),
    CFG_R(CFG_SIZE, Demo, s, 1, 65536, "a size"),
    CFG_R(CFG_FLOAT, Demo, x, 1e-30, 1, "a float"),
};

/* cfg_read of `json` into a Demo; returns 0 or -1, the message in err. */
static int read_demo(const char *json, Demo *d, Err *err) {
    cJSON *o = cJSON_Parse(json);
    memset(d, 0, sizeof *d);
    err_clear(err);
    int rc = cfg_read(o, "demo", kDemo, sizeof kDemo / sizeof kDemo[0], d, err);
    cJSON_Delete(o);
    return rc;
}

static void expect_rejected(const char *json, const char *msg) {
    Demo d;
    Err err = {0};
    int rc = read_demo(json, &d, &err);
    CHECK(rc != 0 && strstr(err.msg, msg), "%s: want an error containing \"%s\", got rc %d \"%s\"", json, msg, rc, err.msg);
}

static void test_ranges(void) {
    printf("cfg_read ranges\n");
    Demo d;
    Err err = {0};
    CHECK(read_demo("{\"n\":-2,\"s\":65536,\"x\":1}", &d, &err) == 0 && d.n == -2 && d.s == 65536 && d.x == 1, "bounds accepted: %s", err.msg);
    CHECK(read_demo("{\"n\":5,\"s\":1,\"x\":1e-30}", &d, &err) == 0 && d.n == 5 && d.s == 1, "bounds accepted: %s", err.msg);
    expect_rejected("{\"n\":6}", "config: demo.n must be in [-2, 5], got 6");
    expect_rejected("{\"n\":-3}", "demo.n must be in [-2, 5], got -3");
    expect_rejected("{\"s\":0}", "demo.s must be in [1, 65536], got 0");
    expect_rejected("{\"s\":65537}", "demo.s must be in [1, 65536], got 65537");
    expect_rejected("{\"x\":0}", "demo.x must be in [1e-30, 1], got 0");
    expect_rejected("{\"x\":1e999}", "demo.x must be finite");
    expect_rejected("{\"n\":-1e999}", "demo.n must be finite");
    expect_rejected("{\"s\":2.5}", "demo.s must be an integer");
    expect_rejected("{\"s\":4,\"s\":0}", "duplicate key demo.s");
    expect_rejected("{\"m\":1}", "unknown key demo.m");

    /* every number of the exported layer tables has a range */
    struct {
        const char *name;
        const CfgField *f;
        size_t n;
    } tables[16] = {{"model (the stack)", kStackFields, kStackFieldCount},
                  {"optim.schedule", kScheduleFields, kScheduleFieldCount},
                  {"optim.ema", kEmaFields, kEmaFieldCount},
                  {"optim.mezo", kMezoFields, kMezoFieldCount}};
    size_t ntables = 4;
    for (size_t k = 0; k < block_kind_count() && ntables < 16; k++, ntables++) /* every block kind's own keys */
        tables[ntables].name = block_kind_at(k)->name, tables[ntables].f = block_kind_at(k)->fields,
        tables[ntables].n = block_kind_at(k)->nfields;
    for (size_t t = 0; t < ntables; t++)
        for (size_t i = 0; i < tables[t].n; i++) {
            const CfgField *f = &tables[t].f[i];
            int numeric = f->type == CFG_INT || f->type == CFG_SIZE || f->type == CFG_FLOAT;
            CHECK(!numeric || (f->has_range && f->lo <= f->hi), "%s.%s has no range", tables[t].name, f->key);
        }
}

/* Arena high-water of one micro-step at (B, T), measured directly. */
static size_t arena_at(Model *m, size_t B, size_t T, int backward) {
    Tape tp;
    tape_init(&tp, 0);
    int32_t *tok = xcalloc(B * T, sizeof(int32_t));
    for (size_t i = 0; i < B * T; i++) tok[i] = (int32_t)(i % 5);
    float *per = xmalloc(B * T * sizeof(float));
    if (backward) {
        Tensor *loss = model_loss(m, &tp, tok, tok, B, T, NULL, 1);
        tape_backward(&tp, loss);
    } else {
        tape_no_grad_begin(&tp);
        model_loss(m, &tp, tok, tok, B, T, per, 0);
        tape_no_grad_end(&tp);
    }
    size_t hw = tp.arena.high_water;
    tape_free(&tp);
    xfree(tok);
    xfree(per);
    return hw;
}

/* quant: a "quant" section with qat on (NULL: none); the real arena is then measured with the
 * fake quantization active, as after QAT's late switch. */
static void test_arena_plan(const char *what, const char *json, const char *quant) {
    cJSON *cfg = cJSON_Parse(json);
    Model *m = NULL;
    Err err = {0};
    if (model_create(&m, cfg, 7, &err)) printf("  model_create: %s\n", err.msg);
    cJSON_Delete(cfg);
    CHECK(m != NULL, "%s: model", what);
    if (!m) return;
    if (quant) {
        cJSON *q = cJSON_Parse(quant);
        CHECK(quant_plan_attach(m, q, NULL, NULL, NULL, &err) == 0, "%s: quant plan: %s", what, err.msg);
        cJSON_Delete(q);
    }
    const size_t B = 3, T = 80; /* T past the probes' 32 positions: the plan extrapolates */
    for (int backward = 1; backward >= 0; backward--) {
        MemPlanShape s = {.B = B, .T = T, .tokens = B * T, .forward_only = !backward, .world = 1};
        MemPlan p;
        uint64_t forwards = m->train_forwards;
        memplan_measure(&p, m, &s);
        CHECK(m->train_forwards == forwards && !m->qat_active, "%s: the probes leave the model's state alone", what);
        m->qat_active = quant != NULL;
        double real = (double)arena_at(m, B, T, backward), rel = ((double)p.activations - real) / real;
        m->qat_active = 0;
        printf("  %-34s %s arena at B=%zu T=%zu: planned %zu, real %.0f bytes (%+.3f%%)\n", what, backward ? "training" : "forward ",
               B, T, p.activations, real, 100 * rel);
        /* exact up to per-chunk scan terms (chunks of 64 steps): 0.5% */
        CHECK(rel > -0.005 && rel < 0.005, "%s: planned arena %zu vs real %.0f", what, p.activations, real);
        CHECK(p.total >= p.params + p.optimizer + p.activations && p.available > 0, "%s: plan totals", what);
    }
    model_free(m);
}

/* Runs fn in a child under an address-space limit; returns its exit status (-1: a signal) and
 * its stderr in buf. */
static int in_child(void (*fn)(void), size_t limit, char *buf, size_t n) {
    int fd[2];
    if (pipe(fd)) return -2;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        struct rlimit rl = {limit, limit};
        setrlimit(RLIMIT_AS, &rl);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fd[0], buf + got, n - 1 - got)) > 0) got += (size_t)r;
    buf[got] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void big_model(void) {
    ParamStore ps;
    params_init(&ps);
    params_add2(&ps, "w", 2, (size_t)1 << 16, (size_t)1 << 14); /* 1 Gi floats: 8 GiB with grads */
    params_finalize(&ps);
}

static void big_malloc(void) { xfree(xmalloc((size_t)3 << 30)); }

static void test_refusals(void) {
    printf("memory refusals\n");
    char h[32];
    format_bytes(512, h, sizeof h);
    CHECK(!strcmp(h, "512 B"), "format_bytes(512) = %s", h);
    format_bytes(1.5 * 1073741824.0, h, sizeof h);
    CHECK(!strcmp(h, "1.5 GiB"), "format_bytes(1.5 GiB) = %s", h);
    MemAvail a = mem_available();
    CHECK(a.bytes > 0 && a.limit, "mem_available: %zu bytes (%s)", a.bytes, a.limit);
    if (UNDER_ASAN) {
        printf("  skip: address-space limits under ASan\n");
        return;
    }
    char buf[2048];
    int st = in_child(big_model, (size_t)2 << 30, buf, sizeof buf);
    printf("  params_finalize under ulimit -v 2 GiB: status %d: %s", st, buf);
    CHECK(st == 1 && strstr(buf, "the model's 1073741824 parameters (values + gradients) need 8.0 GiB") && strstr(buf, "ulimit -v") &&
              count_lines(buf) == 1, "one line, exit 1");
    st = in_child(big_malloc, (size_t)2 << 30, buf, sizeof buf);
    printf("  xmalloc(3 GiB) under ulimit -v 2 GiB: status %d: %s", st, buf);
    CHECK(st == 1 && strstr(buf, "tern: out of memory: cannot allocate 3.0 GiB (3221225472 bytes) at unit/test_config.c:") &&
              count_lines(buf) == 1, "one line naming size and place, exit 1");
}

int main(void) {
    test_ranges();
    printf("memory plan vs real arenas\n");
#define GPT "{\"arch\":\"gpt\",\"vocab_size\":97,\"layers\":3,\"dim\":48,\"heads\":4,\"kv_heads\":2,\"seq_len\":128}"
    test_arena_plan("gpt (GQA, skips)", GPT, NULL);
    test_arena_plan("gpt, QAT int5 weights", GPT, "{\"qat\":true,\"weights\":\"int5\",\"min_numel\":1000}");
    test_arena_plan("gpt, QAT ternary + int8 inputs", GPT, "{\"qat\":true,\"weights\":\"ternary\",\"act_bits\":8,\"min_numel\":1000}");
    test_arena_plan("trn_hybrid TATT (chunked scan)",
                    "{\"arch\":\"trn_hybrid\",\"layout\":\"TATT\",\"vocab_size\":97,\"dim\":32,\"heads\":2,\"kv_heads\":1,"
                    "\"oscillators\":8,\"scan\":\"chunked\",\"bigram_rows\":64,\"bigram_dim\":8,\"seq_len\":128}",
                    NULL);
    test_arena_plan("llama (untied)", "{\"arch\":\"llama\",\"vocab_size\":97,\"layers\":2,\"dim\":32,\"heads\":4,\"kv_heads\":2,"
                                      "\"hidden\":40,\"seq_len\":128,\"tie_embeddings\":false}",
                    NULL);
    test_refusals();
    return test_summary("test_config");
}
