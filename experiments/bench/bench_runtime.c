/* bench_runtime — measurements for experiments/bench/RUNTIME.md (run by runtime_bench.sh):
 *   stream [MB]     STREAM-like memory bandwidth (read-only sum, copy, triad; McCalpin's
 *                   kernels, own code), 1 thread and all threads, best of 5
 *   matvec          packed-weight GB/s of the runtime's ternary 2-bit matvec (int8 activations)
 *                   and int5 weight-only matvec, matrices from cache-resident to DRAM-resident
 *   fp32 CKPT       tern's own fp32 forward (autodiff ops, no-grad tape) of a checkpoint at
 *                   batch 1: one token at context 1, and KV-cache-less generation (each new
 *                   token recomputes the whole sequence)
 * Output: one JSON object per line on stdout. */
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/blas_core.h"
#include "runtime/rt_internal.h"
#include "train/model_io.h"

static double now(void) { return now_seconds(); }

static int cmd_stream(size_t mb) {
    size_t n = mb * ((size_t)1 << 20) / sizeof(float);
    float *a = rt_alloc(n * 4), *b = rt_alloc(n * 4), *c = rt_alloc(n * 4);
    if (!a || !b || !c) return 1;
    int maxt = omp_get_max_threads();
    for (int nt = 1; nt <= maxt; nt = nt == maxt ? maxt + 1 : (nt * 2 > maxt ? maxt : nt * 2)) {
#pragma omp parallel for num_threads(nt)
        for (size_t i = 0; i < n; i++) {
            a[i] = 1.0f;
            b[i] = 2.0f;
            c[i] = 0.5f;
        }
        double best_read = 1e30, best_copy = 1e30, best_triad = 1e30, sink = 0;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now(), s = 0;
            /* 64 independent partial sums: a single float sum would be an add-latency chain */
#pragma omp parallel num_threads(nt) reduction(+ : s)
            {
                float acc[64] = {0};
#pragma omp for schedule(static)
                for (size_t i = 0; i < n / 64; i++)
                    for (size_t j = 0; j < 64; j++) acc[j] += a[64 * i + j];
                for (size_t j = 0; j < 64; j++) s += acc[j];
            }
            double t1 = now();
#pragma omp parallel for num_threads(nt)
            for (size_t i = 0; i < n; i++) c[i] = a[i];
            double t2 = now();
#pragma omp parallel for num_threads(nt)
            for (size_t i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
            double t3 = now();
            sink += s;
            best_read = fmin(best_read, t1 - t0);
            best_copy = fmin(best_copy, t2 - t1);
            best_triad = fmin(best_triad, t3 - t2);
        }
        printf("{\"bench\":\"stream\",\"threads\":%d,\"array_mb\":%zu,\"read_gbs\":%.2f,\"copy_gbs\":%.2f,\"triad_gbs\":%.2f,\"sink\":%g}\n", nt, mb,
               4.0 * n / best_read / 1e9, 8.0 * n / best_copy / 1e9, 12.0 * n / best_triad / 1e9, sink);
    }
    rt_free(a);
    rt_free(b);
    rt_free(c);
    return 0;
}

static void make_tensor(RtTensor *t, uint32_t dt, size_t rows, size_t cols, int act_bits, uint8_t **mem, float **sc) {
    memset(t, 0, sizeof *t);
    t->dtype = t->stored_dtype = dt;
    t->rows = rows;
    t->cols = cols;
    t->group = dt == TERN_DT_T2 ? 128 : 0;
    t->act_bits = act_bits;
    t->row_bytes = tern_row_bytes(dt, cols);
    t->qmax = tern_dtype_qmax(dt);
    *mem = rt_alloc(rows * t->row_bytes + 64);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < rows * t->row_bytes; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (*mem)[i] = (uint8_t)(s >> 24);
    }
    if (dt == TERN_DT_T2) /* valid codes only: no pair equal to 3 */
        for (size_t i = 0; i < rows * t->row_bytes; i++) (*mem)[i] &= (uint8_t)~(((*mem)[i] & 0xAA) >> 1 & (*mem)[i] & 0x55);
    t->data = *mem;
    t->nscales = (size_t)tern_num_scales(dt, (uint32_t)t->group, rows, cols);
    *sc = rt_alloc(t->nscales * sizeof(float));
    for (size_t i = 0; i < t->nscales; i++) (*sc)[i] = 0.01f;
    t->scales = *sc;
    rt_tensor_plan(t);
}

static int cmd_matvec(void) {
    RtKernels k;
    rt_kernels_select(&k, RT_ISA_AVX512VNNI);
    const size_t shapes[][2] = {{512, 512}, {2048, 2048}, {4096, 4096}, {8192, 8192}, {16384, 16384}};
    const uint32_t dts[] = {TERN_DT_T2, TERN_DT_I5};
    int maxt = omp_get_max_threads();
    for (size_t d = 0; d < 2; d++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            size_t rows = shapes[si][0], cols = shapes[si][1];
            RtTensor t;
            uint8_t *mem;
            float *sc;
            make_tensor(&t, dts[d], rows, cols, dts[d] == TERN_DT_T2 ? 8 : 0, &mem, &sc);
            float *x = rt_alloc(cols * 4), *y = rt_alloc(rows * 4);
            for (size_t i = 0; i < cols; i++) x[i] = sinf((float)i);
            void *scr = rt_alloc(rt_linear_scratch_bytes(1, cols, maxt));
            double bytes = (double)rows * t.row_bytes + t.nscales * 4.0;
            for (int nt = 1; nt <= maxt; nt++) {
                rt_linear(&k, y, x, 1, &t, 0, scr, nt); /* warm */
                int reps = (int)fmax(3, fmin(2000, 2e8 / bytes));
                double best = 1e30;
                for (int b = 0; b < 3; b++) {
                    double t0 = now();
                    for (int r = 0; r < reps; r++) rt_linear(&k, y, x, 1, &t, 0, scr, nt);
                    best = fmin(best, (now() - t0) / reps);
                }
                printf("{\"bench\":\"matvec\",\"kernels\":\"%s\",\"dtype\":\"%s\",\"path\":\"%s\",\"rows\":%zu,\"cols\":%zu,\"packed_mb\":%.2f,"
                       "\"threads\":%d,\"us\":%.2f,\"gbs\":%.2f,\"gmacs\":%.2f}\n",
                       k.name, tern_dtype_name(dts[d]), t.act_bits ? "int8-act" : "weight-only", rows, cols, bytes / 1e6, nt, best * 1e6,
                       bytes / best / 1e9, (double)rows * cols / best / 1e9);
                fflush(stdout);
            }
            rt_free(scr);
            rt_free(x);
            rt_free(y);
            rt_free(mem);
            rt_free(sc);
        }
    return 0;
}

static int cmd_fp32(const char *ckpt, size_t prompt, size_t gen, int threads) {
    if (threads > 0) tern_set_threads(threads);
    Err err = {0};
    Model *m = NULL;
    cJSON *cfg = NULL;
    if (model_load_checkpoint(ckpt, 0, &m, &cfg, &err)) {
        fprintf(stderr, "bench_runtime: %s\n", err.msg);
        return 1;
    }
    size_t V = m->vocab, total = prompt + gen;
    if (total > m->max_seq_len) total = m->max_seq_len, gen = total - prompt;
    int32_t *ids = malloc(total * sizeof(int32_t));
    for (size_t i = 0; i < total; i++) ids[i] = (int32_t)((i * 2654435761u) % V);
    Tape tp;
    tape_init(&tp, 0);
    /* (a) one token, context 1 */
    double best1 = 1e30;
    for (int rep = 0; rep < 30; rep++) {
        double t0 = now();
        tape_reset(&tp);
        tape_no_grad_begin(&tp);
        model_logits(m, &tp, ids, 1, 1);
        tape_no_grad_end(&tp);
        best1 = fmin(best1, now() - t0);
    }
    /* (b) generation without a KV cache: every step recomputes the sequence so far */
    double t0 = now();
    for (size_t g = 0; g < gen; g++) {
        size_t T = prompt + g;
        tape_reset(&tp);
        tape_no_grad_begin(&tp);
        Tensor *z = model_logits(m, &tp, ids, 1, T);
        tape_no_grad_end(&tp);
        const float *last = z->data + (T - 1) * V;
        size_t best = 0;
        for (size_t v = 1; v < V; v++)
            if (last[v] > last[best]) best = v;
        ids[T] = (int32_t)best;
    }
    double tg = now() - t0;
    /* (c) prefill: one forward of the prompt */
    double bestp = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t1 = now();
        tape_reset(&tp);
        tape_no_grad_begin(&tp);
        model_logits(m, &tp, ids, 1, prompt);
        tape_no_grad_end(&tp);
        bestp = fmin(bestp, now() - t1);
    }
    printf("{\"bench\":\"tern_fp32\",\"checkpoint\":\"%s\",\"params\":%zu,\"threads\":%d,\"single_token_ms\":%.3f,\"single_token_tok_per_s\":%.1f,"
           "\"prompt\":%zu,\"gen\":%zu,\"recompute_decode_tok_per_s\":%.2f,\"prefill_tok_per_s\":%.1f}\n",
           ckpt, model_num_params(m), tern_get_threads(), best1 * 1e3, 1.0 / best1, prompt, gen, gen / tg, prompt / bestp);
    tape_free(&tp);
    free(ids);
    model_free(m);
    cJSON_Delete(cfg);
    return 0;
}

int main(int argc, char **argv) {
    blas_core_setup(argv, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: bench_runtime stream [MB] | matvec | fp32 CKPT [PROMPT GEN THREADS]\n");
        return 2;
    }
    if (!strcmp(argv[1], "stream")) return cmd_stream(argc > 2 ? (size_t)atoi(argv[2]) : 256);
    if (!strcmp(argv[1], "matvec")) return cmd_matvec();
    if (!strcmp(argv[1], "fp32") && argc > 2)
        return cmd_fp32(argv[2], argc > 3 ? (size_t)atoi(argv[3]) : 128, argc > 4 ? (size_t)atoi(argv[4]) : 128, argc > 5 ? atoi(argv[5]) : 0);
    fprintf(stderr, "bench_runtime: unknown command\n");
    return 2;
}
