/* bench_core — the performance foundation of issue #2.
 *
 *  1. matmul op (tape, arena, sgemm) vs raw cblas_sgemm GFLOP/s at M x K x N =
 *     1024x512x512 and 1024x512x2048, forward only and forward+backward (linear).
 *  2. fused causal attention forward+backward, B=1, T=1024, H=8 (GQA 4 kv heads and MHA), D=64.
 * Prints one JSON object per measurement on stdout (the run script compares with PyTorch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/blas_core.h"
#include "kernels/gemm.h"
#include "kernels/rng.h"
#include "kernels/util.h"

static double best_of(int reps, double (*fn)(void *), void *ud) {
    double best = 1e30;
    fn(ud); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t = fn(ud);
        if (t < best) best = t;
    }
    return best;
}

typedef struct MM {
    size_t M, K, N;
    float *A, *B, *C;
    Tensor *x, *W;
    Tape *tp;
    int iters;
} MM;

static double raw_sgemm(void *p) {
    MM *m = p;
    double t0 = now_seconds();
    for (int i = 0; i < m->iters; i++) sgemm(0, 1, m->M, m->N, m->K, 1.0f, m->A, m->K, m->B, m->K, 0.0f, m->C, m->N);
    return (now_seconds() - t0) / m->iters;
}

static double op_fwd(void *p) {
    MM *m = p;
    double t0 = now_seconds();
    for (int i = 0; i < m->iters; i++) {
        tape_reset(m->tp);
        tape_no_grad_begin(m->tp);
        op_linear(m->tp, m->x, m->W, NULL);
        tape_no_grad_end(m->tp);
    }
    return (now_seconds() - t0) / m->iters;
}

static double op_fwd_bwd(void *p) {
    MM *m = p;
    double t0 = now_seconds();
    for (int i = 0; i < m->iters; i++) {
        tape_reset(m->tp);
        Tensor *y = op_linear(m->tp, m->x, m->W, NULL);
        float *g = tensor_grad(m->tp, y);
        g[0] = 1.0f; /* any seed: the cost is the same */
        for (size_t e = m->tp->n; e-- > 0;) m->tp->entries[e].backward(m->tp, &m->tp->entries[e]);
    }
    return (now_seconds() - t0) / m->iters;
}

typedef struct AT {
    Tensor *q, *k, *v;
    RopeTable rt;
    Tape *tp;
    int iters;
} AT;

static double attn_fwd_bwd(void *p) {
    AT *a = p;
    double t0 = now_seconds();
    for (int i = 0; i < a->iters; i++) {
        tape_reset(a->tp);
        Tensor *y = op_attention(a->tp, a->q, a->k, a->v, NULL, NULL, 0.0f);
        float *g = tensor_grad(a->tp, y);
        for (size_t j = 0; j < y->numel; j++) g[j] = 1e-3f * (float)(j % 7);
        a->tp->entries[a->tp->n - 1].backward(a->tp, &a->tp->entries[a->tp->n - 1]);
    }
    return (now_seconds() - t0) / a->iters;
}

static double attn_fwd(void *p) {
    AT *a = p;
    double t0 = now_seconds();
    for (int i = 0; i < a->iters; i++) {
        tape_reset(a->tp);
        tape_no_grad_begin(a->tp);
        op_attention(a->tp, a->q, a->k, a->v, NULL, NULL, 0.0f);
        tape_no_grad_end(a->tp);
    }
    return (now_seconds() - t0) / a->iters;
}

int main(int argc, char **argv) {
    blas_core_setup(argv, 1);
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    tern_set_threads(threads);
    blas_set_threads(threads);
    Rng rng;
    rng_seed(&rng, 1);
    Tape tp;
    tape_init(&tp, 0);
    size_t shapes[][3] = {{1024, 512, 512}, {1024, 512, 2048}};
    for (int s = 0; s < 2; s++) {
        MM m = {.M = shapes[s][0], .K = shapes[s][1], .N = shapes[s][2], .tp = &tp, .iters = 20};
        m.A = xmalloc(m.M * m.K * 4);
        m.B = xmalloc(m.N * m.K * 4);
        m.C = xmalloc(m.M * m.N * 4);
        rng_fill_normal(&rng, m.A, m.M * m.K, 0, 1);
        rng_fill_normal(&rng, m.B, m.N * m.K, 0, 1);
        m.x = tensor_create(2, (size_t[]){m.M, m.K}, 1, "x");
        m.W = tensor_create(2, (size_t[]){m.N, m.K}, 1, "W");
        memcpy(m.x->data, m.A, m.M * m.K * 4);
        memcpy(m.W->data, m.B, m.N * m.K * 4);
        double flops = 2.0 * m.M * m.K * m.N;
        double t_raw = best_of(5, raw_sgemm, &m);
        double t_op = best_of(5, op_fwd, &m);
        double t_fb = best_of(5, op_fwd_bwd, &m);
        printf("{\"bench\":\"matmul\",\"blas_core\":\"%s\",\"M\":%zu,\"K\":%zu,\"N\":%zu,\"threads\":%d,"
               "\"raw_sgemm_gflops\":%.1f,\"op_forward_gflops\":%.1f,\"op_ratio\":%.3f,"
               "\"op_fwd_bwd_gflops\":%.1f,\"op_fwd_bwd_ratio\":%.3f}\n",
               blas_core_name(), m.M, m.K, m.N, threads, flops / t_raw * 1e-9, flops / t_op * 1e-9, t_raw / t_op,
               3 * flops / t_fb * 1e-9, 3 * t_raw / t_fb);
        xfree(m.A); xfree(m.B); xfree(m.C);
        tensor_destroy(m.x);
        tensor_destroy(m.W);
    }
    for (int gqa = 1; gqa >= 0; gqa--) {
        size_t B = 1, T = 1024, H = 8, G = gqa ? 4 : 8, D = 64;
        AT a = {.tp = &tp, .iters = 5};
        a.q = tensor_create(4, (size_t[]){B, T, H, D}, 1, "q");
        a.k = tensor_create(4, (size_t[]){B, T, G, D}, 1, "k");
        a.v = tensor_create(4, (size_t[]){B, T, G, D}, 1, "v");
        rng_fill_normal(&rng, a.q->data, a.q->numel, 0, 1);
        rng_fill_normal(&rng, a.k->data, a.k->numel, 0, 1);
        rng_fill_normal(&rng, a.v->data, a.v->numel, 0, 1);
        double tf = best_of(3, attn_fwd, &a);
        double tfb = best_of(3, attn_fwd_bwd, &a);
        /* causal useful FLOPs: QK^T and PV over the lower triangle, x3 for fwd+bwd (+1 recompute) */
        double fl = 2.0 * 2.0 * B * H * (double)T * (T + 1) / 2 * D;
        printf("{\"bench\":\"attention\",\"B\":%zu,\"T\":%zu,\"H\":%zu,\"G\":%zu,\"D\":%zu,\"threads\":%d,"
               "\"fwd_ms\":%.2f,\"fwd_bwd_ms\":%.2f,\"fwd_bwd_useful_gflops\":%.1f}\n",
               B, T, H, G, D, threads, tf * 1e3, tfb * 1e3, 3 * fl / tfb * 1e-9);
        tensor_destroy(a.q); tensor_destroy(a.k); tensor_destroy(a.v);
    }
    tape_free(&tp);
    return 0;
}
