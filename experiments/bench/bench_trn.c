/* bench_trn — TRN hybrid performance (experiments/bench/TRN.md has the results).
 *
 *   bench_trn [threads] [scan|layer|model|all] [micro_batches] [steps]
 *
 * scan:  the linear-scan kernels alone at the TRN shape (B=1, T=1024, R=2 drives, K=256
 *        channels), forward and forward+backward, every kind.
 * layer: one TRN layer (both projections, the fused core, W_res, res_scale) forward+backward at
 *        B=1, T=1024, d=512, K=256, with every scan kind, and the fused core op alone.
 * model: training throughput of the default trn_hybrid (10 x 512, TTATTATTAT, K=256, BigramHash
 *        10240x128): per step `micro_batches` forward+backward passes of 1 x 1024 tokens (FineWeb
 *        from $TERN_BENCH_SHARD when set, else random), global gradient-norm clip at 0.3, one
 *        optimizer step with the recipe's groups (Muon + Adam); model GFLOP/s against the
 *        machine's sgemm peak at the same thread count.
 * One JSON object per measurement on stdout; experiments/bench/torch_trn.py runs the PyTorch
 * peer and this program in the same run and prints the ratios. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/ops.h"
#include "bench_common.h"
#include "data/shard.h"
#include "kernels/blas_core.h"
#include "kernels/gemm.h"
#include "kernels/scan.h"
#include "kernels/util.h"
#include "model/model.h"
#include "model/trn.h"
#include "optim/optimizer.h"

/* ------------------------------------------------------------------ scan kernels */
typedef struct ScanB {
    ScanKind kind;
    size_t B, T, R, C;
    float *a, *x, *h, *g, *da, *dx, *work;
    int bwd, iters;
} ScanB;

static double scan_run(void *p) {
    ScanB *s = p;
    double t0 = now_seconds();
    for (int i = 0; i < s->iters; i++) {
        scan_forward(s->kind, s->h, s->a, s->x, s->B, s->T, s->R, s->C, s->work);
        if (s->bwd) scan_backward(s->kind, s->da, s->dx, s->g, s->a, s->h, s->B, s->T, s->R, s->C, s->work);
    }
    return (now_seconds() - t0) / s->iters;
}

static void bench_scan(int threads, Rng *rng) {
    ScanB s = {.B = 1, .T = 1024, .R = 2, .C = 256, .iters = 50};
    size_t na = s.B * s.T * s.C, nx = na * s.R;
    s.a = xmalloc(na * 4), s.x = xmalloc(nx * 4), s.h = xmalloc(nx * 4), s.g = xmalloc(nx * 4);
    s.da = xcalloc(na, 4), s.dx = xcalloc(nx, 4);
    rng_fill_uniform(rng, s.a, na, 0.0f, 1.0f);
    rng_fill_normal(rng, s.x, nx, 0, 1);
    rng_fill_normal(rng, s.g, nx, 0, 1);
    for (int k = 0; k < SCAN_COUNT; k++) {
        s.kind = (ScanKind)k;
        s.work = xmalloc((scan_workspace_floats(s.kind, s.B, s.T, s.R, s.C) + 1) * 4);
        s.bwd = 0;
        double tf = best_of(5, scan_run, &s);
        s.bwd = 1;
        double tfb = best_of(5, scan_run, &s);
        printf("{\"bench\":\"trn_scan\",\"kind\":\"%s\",\"B\":%zu,\"T\":%zu,\"R\":%zu,\"C\":%zu,\"threads\":%d,"
               "\"fwd_ms\":%.4f,\"fwd_bwd_ms\":%.4f}\n",
               scan_kind_name(s.kind), s.B, s.T, s.R, s.C, threads, tf * 1e3, tfb * 1e3);
        fflush(stdout);
        xfree(s.work);
    }
    xfree(s.a), xfree(s.x), xfree(s.h), xfree(s.g), xfree(s.da), xfree(s.dx);
}

/* ------------------------------------------------------------------ one TRN layer */
typedef struct LayerB {
    TrnLayer L;
    ParamStore ps;
    Tensor *h;
    Tape tp;
    TrnCoreCfg cfg;
    int core_only, iters;
    Tensor *proj, *psi; /* core_only inputs */
} LayerB;

static double layer_run(void *p) {
    LayerB *b = p;
    double t0 = now_seconds();
    for (int i = 0; i < b->iters; i++) {
        tape_reset(&b->tp);
        Tensor *y = b->core_only ? op_trn_core(&b->tp, b->proj, b->L.omega_base, b->psi, b->L.lambda, &b->cfg)
                                 : trn_layer_forward(NULL, &b->L, &b->tp, b->h, &b->cfg, 1.0f);
        seed_backward(&b->tp, y);
    }
    return (now_seconds() - t0) / b->iters;
}

static void bench_layer(int threads, Rng *rng) {
    size_t B = 1, T = 1024, d = 512, K = 256;
    LayerB b = {.iters = 5};
    params_init(&b.ps);
    trn_layer_add_params(&b.L, &b.ps, "trn", d, K);
    params_finalize(&b.ps);
    TrnLayerInit in = {.w_res_std = 2e-3, .w_phase_std = 1e-3, .res_scale = 0.05, .lambda = 0.5,
                       .gate_bias = 0.65, .erase_bias = -2, .omega_len = T};
    trn_layer_init(&b.L, rng, &in);
    for (size_t i = 0; i < b.ps.n; i++) b.ps.t[i]->requires_grad = 1;
    b.h = tensor_create(3, (size_t[]){B, T, d}, 1, "h");
    rng_fill_normal(rng, b.h->data, b.h->numel, 0, 1);
    b.proj = tensor_create(3, (size_t[]){B, T, 6 * K}, 1, "proj");
    b.psi = tensor_create(3, (size_t[]){B, T, K}, 1, "psi");
    rng_fill_normal(rng, b.proj->data, b.proj->numel, 0, 1);
    rng_fill_normal(rng, b.psi->data, b.psi->numel, 0, 0.1f);
    tape_init(&b.tp, 0);
    for (int k = 0; k < SCAN_COUNT; k++) {
        b.cfg = (TrnCoreCfg){.scan = (ScanKind)k, .amp_max = 3.0f};
        b.core_only = 0;
        double tl = best_of(3, layer_run, &b);
        b.core_only = 1;
        double tc = best_of(3, layer_run, &b);
        printf("{\"bench\":\"trn_layer\",\"scan\":\"%s\",\"B\":%zu,\"T\":%zu,\"d\":%zu,\"K\":%zu,\"threads\":%d,"
               "\"layer_fwd_bwd_ms\":%.3f,\"core_fwd_bwd_ms\":%.3f}\n",
               scan_kind_name((ScanKind)k), B, T, d, K, threads, tl * 1e3, tc * 1e3);
        fflush(stdout);
    }
    tape_free(&b.tp);
    tensor_destroy(b.h), tensor_destroy(b.proj), tensor_destroy(b.psi);
    params_free(&b.ps);
}

/* ------------------------------------------------------------------ whole-model training */
/* The best sgemm rate at this thread count over a few model-like shapes (as bench_gpt). */
static double sgemm_peak(void) {
    size_t shapes[][3] = {{1024, 512, 512}, {1024, 512, 2048}, {1024, 2048, 512}, {2048, 2048, 2048}};
    double best = 0;
    for (int s = 0; s < 4; s++) {
        size_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *A = xcalloc(M * K, 4), *B = xcalloc(K * N, 4), *C = xcalloc(M * N, 4);
        for (size_t i = 0; i < M * K; i++) A[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < K * N; i++) B[i] = (float)(i % 5) * 0.1f;
        sgemm(0, 0, M, N, K, 1, A, K, B, N, 0, C, N);
        int it = (int)(4e9 / (2.0 * M * N * K)) + 1;
        double t0 = now_seconds();
        for (int i = 0; i < it; i++) sgemm(0, 0, M, N, K, 1, A, K, B, N, 0, C, N);
        double g = 2.0 * M * N * K * it / (now_seconds() - t0) * 1e-9;
        if (g > best) best = g;
        xfree(A), xfree(B), xfree(C);
    }
    return best;
}

static void bench_model(int threads, int micro, int steps, Rng *rng) {
    Err err = {0};
    cJSON *msec = cJSON_Parse("{\"arch\":\"trn_hybrid\"}");
    Model *m = NULL;
    if (model_create(&m, msec, 1337, &err)) {
        fprintf(stderr, "bench_trn: %s\n", err.msg);
        exit(1);
    }
    size_t T = 1024;
    TrainRate tr = train_rate(m, "{\"groups\":{\"matrix\":{\"wd\":0.04}}}", micro, steps, T, rng);
    double t_fb = tr.fwd_bwd_s, t_opt = tr.opt_s, loss = tr.loss;
    int real = tr.real_data;
    /* model FLOPs per token: 6 x the GEMM weights (block matrices, the bigram projection, the tied
     * head; not the bigram table, a gather) + causal attention (QK^T and PV) in the A blocks */
    double matw = 0;
    size_t nattn = 0;
    for (size_t i = 0; i < m->ps.n; i++) {
        const char *n = m->ps.t[i]->name;
        if (m->ps.t[i]->ndim == 2 && !strstr(n, "resid_mix") && !strstr(n, "skip") && strcmp(n, "bigram.embed.weight"))
            matw += (double)m->ps.t[i]->numel;
        if (strstr(n, "attn.c_q.weight")) nattn++;
    }
    double flops_tok = 6 * matw + 3.0 * (double)nattn * 2 * 2 * ((double)(T + 1) / 2) * 512;
    double tokens = (double)steps * micro * T, total = t_fb + t_opt, peak = sgemm_peak();
    printf("{\"bench\":\"trn_hybrid_train\",\"impl\":\"tern\",\"params\":%zu,\"micro_batches\":%d,\"B\":1,\"T\":%zu,"
           "\"threads\":%d,\"data\":\"%s\",\"step_s\":%.3f,\"tokens_per_s\":%.1f,\"fwd_bwd_tokens_per_s\":%.1f,"
           "\"optimizer_s_per_step\":%.3f,\"model_gflop_per_token\":%.4f,\"model_gflops\":%.1f,"
           "\"sgemm_peak_gflops\":%.1f,\"peak_fraction\":%.3f,\"loss\":%.4f,\"peak_rss_mb\":%.0f}\n",
           model_num_params(m), micro, T, threads, real ? "fineweb" : "random", total / steps, tokens / total,
           tokens / t_fb, t_opt / steps, flops_tok * 1e-9, flops_tok * tokens / total * 1e-9, peak,
           flops_tok * tokens / total * 1e-9 / peak, loss, peak_rss_bytes() / 1048576.0);
    fflush(stdout);
    model_free(m);
    cJSON_Delete(msec);
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
    if (all || !strcmp(what, "scan")) bench_scan(threads, &rng);
    if (all || !strcmp(what, "layer")) bench_layer(threads, &rng);
    if (all || !strcmp(what, "model")) bench_model(threads, micro, steps, &rng);
    return 0;
}
