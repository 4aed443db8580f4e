/* bench_mlstm — mLSTM performance (experiments/chimera/README.md, section mLSTM, has the results).
 *
 *   bench_mlstm [threads] [cell|layer|model|all] [micro_batches] [steps]
 *
 * cell:  the mLSTM cell alone (kernels/mlstm.h) forward+backward at B=4, T=1024, 16 heads of 64
 *        (the dim-512 block's inner width 1024): chunkwise at chunks 32, 64, 128, the parallel
 *        form, and the recurrent reference.
 * layer: the whole mlstm block (model/blocks/mlstm.c: projections, conv, gates, cell, norm) at
 *        B=4, T=1024, dim 512, forward+backward, with each training form.
 * model: training throughput (forward+backward + AdamW/Muon step) of a small all-X chimera model
 *        and of the parameter-golf GPT of about the same parameter count, B=4 x T=1024 per step.
 * One JSON object per measurement on stdout; experiments/bench/torch_mlstm.py runs the PyTorch
 * peer and this program in the same run and prints the ratios. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/ops.h"
#include "bench_common.h"
#include "kernels/blas_core.h"
#include "kernels/gemm.h"
#include "kernels/mlstm.h"
#include "kernels/util.h"
#include "model/block.h"
#include "model/model.h"
#include "optim/optimizer.h"

/* ------------------------------------------------------------------ the cell */
typedef struct CellB {
    Tensor *in[5];
    MlstmCfg cfg;
    Tape tp;
} CellB;

static double cell_run(void *p) {
    CellB *b = p;
    double t0 = now_seconds();
    tape_reset(&b->tp);
    seed_backward(&b->tp, op_mlstm(&b->tp, b->in[0], b->in[1], b->in[2], b->in[3], b->in[4], &b->cfg));
    return now_seconds() - t0;
}

static void bench_cell(int threads, Rng *rng) {
    size_t B = 4, T = 1024, H = 16, D = 64;
    CellB b;
    tape_init(&b.tp, 0);
    for (int i = 0; i < 5; i++) {
        b.in[i] = tensor_create(i < 3 ? 4 : 3, i < 3 ? (size_t[]){B, T, H, D} : (size_t[]){B, T, H}, 1, "x");
        rng_fill_normal(rng, b.in[i]->data, b.in[i]->numel, i == 4 ? 3.0f : 0.0f, 1.0f);
    }
    struct { MlstmForm f; size_t L; } runs[] = {{MLSTM_CHUNKWISE, 32}, {MLSTM_CHUNKWISE, 64}, {MLSTM_CHUNKWISE, 128},
                                                {MLSTM_PARALLEL, T}, {MLSTM_RECURRENT, 64}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        b.cfg = (MlstmCfg){runs[r].f, runs[r].L, 0};
        double t = best_of(runs[r].f == MLSTM_CHUNKWISE ? 5 : 3, cell_run, &b);
        printf("{\"bench\":\"mlstm_cell\",\"impl\":\"tern\",\"form\":\"%s\",\"chunk\":%zu,\"B\":%zu,\"T\":%zu,\"H\":%zu,\"D\":%zu,"
               "\"threads\":%d,\"fwd_bwd_ms\":%.2f}\n",
               mlstm_form_name(runs[r].f), runs[r].L, B, T, H, D, threads, t * 1e3);
        fflush(stdout);
    }
    for (int i = 0; i < 5; i++) tensor_destroy(b.in[i]);
    tape_free(&b.tp);
}

/* ------------------------------------------------------------------ one block */
static void bench_layer(int threads, Rng *rng) {
    size_t B = 4, T = 1024, C = 512;
    const char *forms[] = {"chunkwise", "parallel", "recurrent"};
    for (int f = 0; f < 3; f++) {
        BlockBench b;
        char js[96];
        snprintf(js, sizeof js, "{\"mlstm_form\":\"%s\"}", forms[f]);
        block_bench_init(&b, "mlstm", js, &(StackConfig){.dim = C, .layers = 1}, "blocks.0.", B, T, rng);
        double t = best_of(3, block_bench_run, &b);
        printf("{\"bench\":\"mlstm_layer\",\"impl\":\"tern\",\"form\":\"%s\",\"B\":%zu,\"T\":%zu,\"dim\":%zu,\"params\":%zu,"
               "\"threads\":%d,\"fwd_bwd_ms\":%.2f}\n",
               forms[f], B, T, C, b.ps.total, threads, t * 1e3);
        fflush(stdout);
        block_bench_free(&b);
    }
}

/* ------------------------------------------------------------------ training throughput */
static void bench_train(const char *name, const char *json, int threads, int micro, int steps, Rng *rng) {
    Err err = {0};
    cJSON *msec = cJSON_Parse(json), *osec = cJSON_Parse("{}");
    Model *m = NULL;
    Optimizer opt;
    if (model_create(&m, msec, 1337, &err) || optimizer_init(&opt, &m->ps, osec, m->default_groups, NULL, &err)) {
        fprintf(stderr, "bench_mlstm: %s\n", err.msg);
        exit(1);
    }
    size_t T = 1024, ntok = (size_t)micro * (T + 1);
    int32_t *tok = xmalloc(ntok * sizeof(int32_t));
    for (size_t i = 0; i < ntok; i++) tok[i] = (int32_t)rng_below(rng, 1024);
    Tape tp;
    tape_init(&tp, 0);
    float seed = 1.0f / (float)micro;
    double total = 0, loss = 0;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up */
        double a = now_seconds();
        params_zero_grad(&m->ps);
        for (int k = 0; k < micro; k++) {
            tape_reset(&tp);
            const int32_t *x = tok + (size_t)k * (T + 1); /* one row of T per micro-batch */
            Tensor *l = model_loss(m, &tp, x, x + 1, 1, T, NULL, 1);
            tape_backward_seed(&tp, l, &seed);
            loss = l->data[0];
        }
        optimizer_step(&opt, 1.0);
        if (s > 0) total += now_seconds() - a;
    }
    double tokens = (double)steps * micro * T;
    printf("{\"bench\":\"train\",\"impl\":\"tern\",\"model\":\"%s\",\"params\":%zu,\"micro_batches\":%d,\"T\":%zu,\"threads\":%d,"
           "\"step_s\":%.3f,\"tokens_per_s\":%.1f,\"loss\":%.4f,\"peak_rss_mb\":%.0f}\n",
           name, model_num_params(m), micro, T, threads, total / steps, tokens / total, loss, peak_rss_bytes() / 1048576.0);
    fflush(stdout);
    tape_free(&tp);
    optimizer_free(&opt);
    model_free(m);
    xfree(tok);
    cJSON_Delete(msec);
    cJSON_Delete(osec);
}

/* all-X chimera (4 x 512, inner 1024) and the GPT of about its parameter count */
static void bench_models(int threads, int micro, int steps, Rng *rng) {
    bench_train("chimera XXXX", "{\"arch\":\"chimera\",\"layout\":\"XXXX\",\"dim\":512}", threads, micro, steps, rng);
    bench_train("gpt x4", "{\"arch\":\"gpt\",\"layers\":4,\"dim\":512,\"mlp_mult\":2}", threads, micro, steps, rng);
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
    if (all || !strcmp(what, "cell")) bench_cell(threads, &rng);
    if (all || !strcmp(what, "layer")) bench_layer(threads, &rng);
    if (all || !strcmp(what, "model")) bench_models(threads, micro, steps, &rng);
    return 0;
}
