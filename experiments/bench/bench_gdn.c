/* bench_gdn — Gated DeltaNet performance (experiments/chimera/README.md has the results).
 *
 *   bench_gdn [threads] [core|layer|model|all] [micro_batches] [steps]
 *
 * core:  the gated delta rule op alone (op_gated_delta: the recurrence with its backward) at
 *        B = 4, T = 1024, 8 heads of d_k = d_v = 64 (dim 512), forward and forward + backward:
 *        the chunkwise WY / UT form at chunks of 32, 64 and 128 and the per-token recurrence.
 * layer: one gdn layer (model/blocks/gdn.c: seven projections, three short convolutions, L2
 *        norms, decay, the core, gated norm) forward + backward at B = 4, T = 1024, d = 512,
 *        chunked and recurrent.
 * model: training throughput of a small all-G chimera (4 x 512: Gated DeltaNet + SwiGLU) and of
 *        the GPT preset at the same width and depth with its MLP widened to the same parameter
 *        count, per step `micro_batches` x (1 x 1024) tokens, grad clip 0.3, the models' default
 *        optimizer groups (Muon + Adam).
 * One JSON object per measurement on stdout; experiments/bench/torch_gdn.py runs the PyTorch
 * peer and this program in the same run and prints the ratios. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/ops.h"
#include "bench_common.h"
#include "kernels/blas_core.h"
#include "kernels/gemm.h"
#include "kernels/gdn_math.h"
#include "model/block.h"

#define B_ 4
#define T_ 1024
#define DIM 512
#define HEADS 8
#define HD 64

/* ------------------------------------------------------------------ the op */
typedef struct CoreB {
    Tensor *in[5];
    GdnKernel kind;
    size_t chunk;
    int bwd;
    Tape tp;
} CoreB;

static double core_run(void *p) {
    CoreB *b = p;
    double t0 = now_seconds();
    tape_reset(&b->tp);
    Tensor *y = op_gated_delta(&b->tp, b->in[0], b->in[1], b->in[2], b->in[3], b->in[4], b->kind, b->chunk);
    if (b->bwd) seed_backward(&b->tp, y);
    return now_seconds() - t0;
}

static void l2rows(Tensor *t, size_t n, float scale) {
    for (size_t r = 0; r < t->numel / n; r++) gdn_l2norm_row(t->data + r * n, t->data + r * n, n, scale);
}

static void bench_core(int threads, Rng *rng) {
    CoreB b = {0};
    size_t qs[4] = {B_, T_, HEADS, HD}, hs[3] = {B_, T_, HEADS};
    for (int i = 0; i < 3; i++) b.in[i] = tensor_create(4, qs, 1, "qkv");
    for (int i = 3; i < 5; i++) b.in[i] = tensor_create(3, hs, 1, "gb");
    for (int i = 0; i < 3; i++) rng_fill_normal(rng, b.in[i]->data, b.in[i]->numel, 0, 1);
    l2rows(b.in[0], HD, 0.125f), l2rows(b.in[1], HD, 1.0f);
    rng_fill_uniform(rng, b.in[3]->data, b.in[3]->numel, -0.7f, -0.001f); /* decays 0.5 .. 1 */
    rng_fill_uniform(rng, b.in[4]->data, b.in[4]->numel, 0.0f, 1.0f);
    tape_init(&b.tp, 0);
    struct {
        GdnKernel kind;
        size_t chunk;
    } runs[] = {{GDN_CHUNKED, 64}, {GDN_CHUNKED, 32}, {GDN_CHUNKED, 128}, {GDN_RECURRENT, 1}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        b.kind = runs[r].kind, b.chunk = runs[r].chunk;
        int reps = b.kind == GDN_CHUNKED ? 5 : 3; /* the short runs take more tries on a shared machine */
        b.bwd = 0;
        double tf = best_of(reps, core_run, &b);
        b.bwd = 1;
        double tfb = best_of(reps, core_run, &b);
        printf("{\"bench\":\"gdn_core\",\"impl\":\"tern\",\"kernel\":\"%s\",\"chunk\":%zu,\"B\":%d,\"T\":%d,\"H\":%d,\"dk\":%d,"
               "\"dv\":%d,\"threads\":%d,\"fwd_ms\":%.2f,\"fwd_bwd_ms\":%.2f}\n",
               gdn_kernel_name(b.kind), b.chunk, B_, T_, HEADS, HD, HD, threads, tf * 1e3, tfb * 1e3);
        fflush(stdout);
    }
    tape_free(&b.tp);
    for (int i = 0; i < 5; i++) tensor_destroy(b.in[i]);
}

/* ------------------------------------------------------------------ one layer */
static void bench_layer(int threads, Rng *rng) {
    const char *kernels[2] = {"chunked", "recurrent"};
    for (int r = 0; r < 2; r++) {
        BlockBench b;
        char js[128];
        snprintf(js, sizeof js, "{\"gdn_kernel\":\"%s\"}", kernels[r]);
        block_bench_init(&b, "gdn", js, &(StackConfig){.dim = DIM, .norm_eps = 1e-5}, "", B_, T_, rng);
        double t = best_of(3, block_bench_run, &b);
        printf("{\"bench\":\"gdn_layer\",\"impl\":\"tern\",\"kernel\":\"%s\",\"B\":%d,\"T\":%d,\"d\":%d,\"H\":%d,\"dk\":%d,"
               "\"threads\":%d,\"fwd_bwd_ms\":%.2f}\n",
               kernels[r], B_, T_, DIM, HEADS, HD, threads, t * 1e3);
        fflush(stdout);
        block_bench_free(&b);
    }
}

/* ------------------------------------------------------------------ training throughput */
static void bench_model(const char *what, const char *json, int threads, int micro, int steps, Rng *rng) {
    Err err = {0};
    cJSON *msec = cJSON_Parse(json);
    Model *m = NULL;
    if (model_create(&m, msec, 1337, &err)) {
        fprintf(stderr, "bench_gdn: %s\n", err.msg);
        exit(1);
    }
    TrainRate r = train_rate(m, "{}", micro, steps, T_, rng);
    double tokens = (double)steps * micro * T_;
    printf("{\"bench\":\"train\",\"impl\":\"tern\",\"model\":\"%s\",\"params\":%zu,\"micro_batches\":%d,\"B\":1,\"T\":%d,"
           "\"threads\":%d,\"data\":\"%s\",\"tokens_per_s\":%.1f,\"fwd_bwd_tokens_per_s\":%.1f,\"loss\":%.4f,"
           "\"peak_rss_mb\":%.0f}\n",
           what, model_num_params(m), micro, T_, threads, r.real_data ? "fineweb" : "random", tokens / (r.fwd_bwd_s + r.opt_s),
           tokens / r.fwd_bwd_s, r.loss, peak_rss_bytes() / 1048576.0);
    fflush(stdout);
    model_free(m);
    cJSON_Delete(msec);
}

/* The chimera "GGGG" at 512 has 4 x (5 d^2 + 2 H d + 3 d 4 + 2 H + 64) Gated DeltaNet weights and
 * 4 x 3 d 768 SwiGLU weights (plus the same scaffold as the GPT); the GPT's layer has 3 d^2 of
 * attention (GQA 8 / 4 heads) and 2 d mlp_hidden of MLP: mlp_hidden makes the counts equal. */
static size_t gpt_hidden_for_chimera(void) {
    size_t d = DIM, gdn = 5 * d * d + 2 * HEADS * d + 3 * d * 4 + 2 * HEADS + HD, swi = 3 * d * 768;
    return (gdn + swi - 3 * d * d) / (2 * d);
}

int main(int argc, char **argv) {
    blas_core_setup(argv, 1);
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *what = argc > 2 ? argv[2] : "all";
    int micro = argc > 3 ? atoi(argv[3]) : 4, steps = argc > 4 ? atoi(argv[4]) : 2;
    tern_set_threads(threads);
    blas_set_threads(threads);
    Rng rng;
    rng_seed(&rng, 1);
    int all = !strcmp(what, "all");
    if (all || !strcmp(what, "core")) bench_core(threads, &rng);
    if (all || !strcmp(what, "layer")) bench_layer(threads, &rng);
    if (all || !strcmp(what, "model")) {
        char gpt[256];
        snprintf(gpt, sizeof gpt, "{\"arch\":\"gpt\",\"layers\":4,\"mlp_hidden\":%zu}", gpt_hidden_for_chimera());
        bench_model("chimera GGGG 4x512", "{\"arch\":\"chimera\",\"layout\":\"GGGG\"}", threads, micro, steps, &rng);
        bench_model("gpt 4x512 (same parameters)", gpt, threads, micro, steps, &rng);
    }
    return 0;
}
