/* bench_moe — the MoE channel mixer's speed (experiments/chimera/README.md, section MoE, has the
 * results).
 *
 *   bench_moe [threads] [tokens]
 *
 * layer:    the moe kind alone (router, sort-based dispatch, 16 routed SwiGLU experts top-2 + 1
 *           shared, hidden 768, dim 512) forward+backward on `tokens` tokens (default 2048), and
 *           its peer measured in the same run: the swiglu kind with the same active width
 *           (hidden 3 x 768 = 2304: what each token computes in the MoE, as one dense FFN).
 * dispatch: the routed part's forward alone (kernels/moe.c), sort-based (one GEMM per expert over
 *           its gathered rows) against the dense per-token reference (each token's experts as
 *           [1, C] products, the same sgemm), same inputs.
 * One JSON object per measurement on stdout. */
#include <stdio.h>
#include <stdlib.h>

#include "autodiff/ops.h"
#include "bench_common.h"
#include "kernels/blas_core.h"
#include "kernels/gemm.h"
#include "kernels/moe.h"
#include "kernels/util.h"

static void bench_layer(int threads, size_t N, Rng *rng) {
    const size_t C = 512;
    struct { const char *kind, *cfg, *what; } runs[] = {
        {"moe", "{\"moe_experts\":16,\"moe_topk\":2,\"moe_shared\":1,\"moe_hidden\":768}", "moe 16 experts top-2 + 1 shared, hidden 768"},
        {"swiglu", "{\"swiglu_hidden\":2304}", "swiglu hidden 2304 (the same active width)"},
    };
    for (int r = 0; r < 2; r++) {
        BlockBench b;
        block_bench_init(&b, runs[r].kind, runs[r].cfg, &(StackConfig){.dim = C, .layers = 1, .mlp_mult = 2}, "blocks.0.", 1, N, rng);
        double t = best_of(5, block_bench_run, &b);
        printf("{\"bench\":\"moe_layer\",\"impl\":\"tern\",\"kind\":\"%s\",\"what\":\"%s\",\"tokens\":%zu,\"dim\":%zu,\"params\":%zu,"
               "\"threads\":%d,\"fwd_bwd_ms\":%.2f}\n",
               runs[r].kind, runs[r].what, N, C, b.ps.total, threads, t * 1e3);
        fflush(stdout);
        block_bench_free(&b);
    }
}

typedef struct Disp {
    MoeShape s;
    float *h, *sc, *bias, *y, **gu, **dn;
    MoeSaved sv;
    int ref;
} Disp;

static double disp_run(void *p) {
    Disp *d = p;
    double t0 = now_seconds();
    if (d->ref) moe_forward_ref(&d->s, d->y, d->h, d->sc, d->bias, 1.0f, (const float *const *)d->gu, (const float *const *)d->dn, NULL, NULL, sgemm);
    else moe_forward(&d->s, d->y, &d->sv, d->h, d->sc, d->bias, 1.0f, (const float *const *)d->gu, (const float *const *)d->dn, NULL, sgemm);
    return now_seconds() - t0;
}

static void bench_dispatch(int threads, size_t N, Rng *rng) {
    Disp d = {.s = {.N = N, .C = 512, .E = 16, .K = 2, .H = 768}};
    size_t C = d.s.C, E = d.s.E, H = d.s.H;
    d.h = xmalloc(N * C * sizeof(float)), d.sc = xmalloc(N * E * sizeof(float)), d.bias = xcalloc(E, sizeof(float));
    d.y = xmalloc(N * C * sizeof(float));
    rng_fill_normal(rng, d.h, N * C, 0, 1);
    rng_fill_uniform(rng, d.sc, N * E, 0, 1);
    d.gu = xmalloc(E * sizeof(float *)), d.dn = xmalloc(E * sizeof(float *));
    for (size_t e = 0; e < E; e++) {
        d.gu[e] = xmalloc(2 * H * C * sizeof(float)), d.dn[e] = xmalloc(C * H * sizeof(float));
        rng_fill_normal(rng, d.gu[e], 2 * H * C, 0, 0.04f), rng_fill_normal(rng, d.dn[e], C * H, 0, 0.04f);
    }
    float *f = xmalloc(moe_saved_floats(&d.s) * sizeof(float));
    int32_t *iw = xmalloc(moe_saved_ints(&d.s) * sizeof(int32_t));
    size_t *z = xmalloc((E + 1) * sizeof(size_t));
    moe_saved_bind(&d.sv, &d.s, f, iw, z);
    for (d.ref = 0; d.ref < 2; d.ref++) {
        double t = best_of(3, disp_run, &d);
        printf("{\"bench\":\"moe_dispatch_fwd\",\"impl\":\"%s\",\"tokens\":%zu,\"E\":%zu,\"K\":%zu,\"C\":%zu,\"H\":%zu,\"threads\":%d,"
               "\"fwd_ms\":%.2f}\n",
               d.ref ? "dense per-token reference" : "sort-based", N, E, d.s.K, C, H, threads, t * 1e3);
        fflush(stdout);
    }
    for (size_t e = 0; e < E; e++) xfree(d.gu[e]), xfree(d.dn[e]);
    xfree(d.gu), xfree(d.dn), xfree(d.h), xfree(d.sc), xfree(d.bias), xfree(d.y), xfree(f), xfree(iw), xfree(z);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    size_t N = argc > 2 ? (size_t)atol(argv[2]) : 2048;
    blas_core_setup(argv, 1);
    tern_set_threads(threads);
    Rng rng;
    rng_seed(&rng, 7);
    bench_layer(threads, N, &rng);
    bench_dispatch(threads, N, &rng);
    return 0;
}
