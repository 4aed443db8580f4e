/* bench_gpt — training throughput of the baseline GPT (default config: 9 x 512, vocab 1024,
 * 17.06 M parameters) at B=1, T=1024 per micro-step, `accum` micro-steps per optimizer step,
 * forward + backward + Muon/Adam update, on real FineWeb tokens when present (else random).
 * Prints one JSON line: tokens/s, model GFLOP/s, the machine's measured sgemm peak at the same
 * thread count, and peak RSS.
 *
 *   bench_gpt [threads] [accum] [steps] */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shard.h"
#include "kernels/blas_core.h"
#include "kernels/gemm.h"
#include "kernels/rng.h"
#include "kernels/util.h"
#include "model/model.h"
#include "optim/optimizer.h"

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
        xfree(A);
        xfree(B);
        xfree(C);
    }
    return best;
}

int main(int argc, char **argv) {
    blas_core_setup(argv, 1);
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int accum = argc > 2 ? atoi(argv[2]) : 4;
    int steps = argc > 3 ? atoi(argv[3]) : 3;
    const char *data = getenv("TERN_BENCH_SHARD");
    tern_set_threads(threads);
    blas_set_threads(threads);
    Err err = {0};
    cJSON *cfg = cJSON_Parse("{\"arch\":\"gpt\"}");
    Model *m;
    if (model_create(&m, cfg, 1337, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    Optimizer opt;
    if (optimizer_init(&opt, &m->ps, NULL, m->default_groups, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t T = 1024;
    int32_t *tok = xmalloc((size_t)(accum * (steps + 1) + 1) * (T + 1) * sizeof(int32_t));
    size_t ntok = (size_t)(accum * (steps + 1) + 1) * (T + 1);
    Shard sh;
    if (data && shard_open(&sh, data, 1024, &err) == 0 && sh.ntokens >= ntok) {
        shard_copy(&sh, 0, ntok, tok);
        shard_close(&sh);
    } else {
        Rng r;
        rng_seed(&r, 5);
        for (size_t i = 0; i < ntok; i++) tok[i] = (int32_t)rng_below(&r, 1024);
    }
    Tape tp;
    tape_init(&tp, 0);
    float seed = 1.0f / (float)accum;
    double t_fb = 0, t_opt = 0, t0 = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) t0 = now_seconds(); /* step 0 warms the arena and the page cache */
        params_zero_grad(&m->ps);
        double a = now_seconds();
        for (int k = 0; k < accum; k++) {
            const int32_t *x = tok + (size_t)(s * accum + k) * (T + 1);
            tape_reset(&tp);
            Tensor *loss = model_loss(m, &tp, x, x + 1, 1, T, NULL, 1);
            tape_backward_seed(&tp, loss, &seed);
        }
        double b = now_seconds();
        optimizer_step(&opt, 1.0);
        double c = now_seconds();
        if (s >= 1) {
            t_fb += b - a;
            t_opt += c - b;
        }
    }
    double total = now_seconds() - t0;
    double tokens = (double)steps * accum * T;
    /* model FLOPs: 6 x matmul weights (incl. the tied head) + causal attention (QK^T, PV) x3 */
    double matw = 0;
    for (size_t i = 0; i < m->ps.n; i++)
        if (m->ps.t[i]->ndim == 2 && strstr(m->ps.t[i]->name, "resid_mix") == NULL && strstr(m->ps.t[i]->name, "skip") == NULL)
            matw += (double)m->ps.t[i]->numel;
    double attn = 3.0 * 9 * 2 * 2 * ((double)(T + 1) / 2) * 512;
    double flops_tok = 6 * matw + attn;
    double peak = sgemm_peak();
    double gflops = flops_tok * tokens / total * 1e-9;
    printf("{\"bench\":\"gpt_train\",\"impl\":\"tern\",\"threads\":%d,\"tokens_per_step\":%zu,\"steps\":%d,"
           "\"tok_per_s\":%.1f,\"fwd_bwd_tok_per_s\":%.1f,\"optimizer_s_per_step\":%.3f,\"model_gflop_per_token\":%.4f,"
           "\"model_gflops\":%.1f,\"sgemm_peak_gflops\":%.1f,\"peak_fraction\":%.3f,\"peak_rss_mb\":%.0f,\"blas_core\":\"%s\"}\n",
           threads, (size_t)accum * T, steps, tokens / total, tokens / t_fb, t_opt / steps, flops_tok * 1e-9, gflops, peak,
           gflops / peak, peak_rss_bytes() / 1e6, blas_core_name());
    tape_free(&tp);
    optimizer_free(&opt);
    model_free(m);
    cJSON_Delete(cfg);
    xfree(tok);
    return 0;
}
