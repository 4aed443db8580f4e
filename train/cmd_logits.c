/* tern logits --ckpt TEACHER.h5 --data SHARD -o OUT.h5 [--k 32] [--temperature 1] [--dtype f16|f32]
 *             [--seq-len T] [--max-tokens N] [--batch B]
 * Writes a teacher's top-k logits for every position of one shard (data/teacher.h). The teacher
 * sees the shard in non-overlapping windows of T tokens, the windows the student's loader and
 * evaluation use. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shard.h"
#include "data/teacher.h"
#include "kernels/gemm.h"
#include "model/qat.h"
#include "train/cli.h"
#include "train/model_io.h"
#include "train/progress.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tern logits --ckpt TEACHER.h5 --data SHARD.bin -o OUT.h5 [options]\n"
            "  --k K             logits kept per position (default 32)\n"
            "  --temperature T   logits are divided by T before top-k and log-sum-exp (default 1)\n"
            "  --dtype f16|f32   storage of the values (default f16)\n"
            "  --seq-len T       teacher context window (default: the checkpoint's data.seq_len)\n"
            "  --max-tokens N    stop after N positions\n"
            "  --batch B         windows per forward (default 4)\n"
            "  --threads N       OpenMP/BLAS threads\n"
            "  --quantized       the logits of the model as exported: quantized tensors fake-quantized per the\n"
            "                    checkpoint's quant plan, fp16 tensors rounded (as tern eval --quantized)\n");
}

int cmd_logits(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *out = NULL, *dtype = "f16";
    size_t k = 32, T = 0, max_tokens = 0, B = 4;
    double temp = 1.0;
    int threads = 0, quantized = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_is_flag(argv[i], "help")) {
            usage(stdout);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "ckpt"))) ckpt = v;
        else if ((v = cli_value(argc, argv, &i, "data"))) data = v;
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if ((v = cli_value(argc, argv, &i, "out"))) out = v;
        else if ((v = cli_value(argc, argv, &i, "k"))) k = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "temperature"))) temp = atof(v);
        else if ((v = cli_value(argc, argv, &i, "dtype"))) dtype = v;
        else if ((v = cli_value(argc, argv, &i, "seq-len"))) T = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "max-tokens"))) max_tokens = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "batch"))) B = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "threads"))) threads = atoi(v);
        else if (cli_is_flag(argv[i], "quantized")) quantized = 1;
        else {
            fprintf(stderr, "tern logits: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!ckpt || !data || !out || k == 0 || B == 0 || !(temp > 0) || (strcmp(dtype, "f16") && strcmp(dtype, "f32"))) {
        usage(stderr);
        return 2;
    }
    if (threads > 0) {
        tern_set_threads(threads);
        blas_set_threads(threads);
    }
    Err err = {0};
    Model *m = NULL;
    cJSON *cfg = NULL;
    Shard sh;
    memset(&sh, 0, sizeof sh);
    TeacherWriter w;
    int opened = 0, status = 1;
    int32_t *x = NULL, *idx = NULL;
    float *val = NULL, *lse = NULL;
    if (model_load_checkpoint(ckpt, 0, &m, &cfg, &err)) goto out;
    if (quantized) {
        if (quant_plan_attach(m, cJSON_GetObjectItemCaseSensitive(cfg, "quant"), cJSON_GetObjectItemCaseSensitive(cfg, "export"),
                              NULL, NULL, &err))
            goto out;
        m->qat_active = 1;
        quant_plan_round_passthrough(m);
    }
    if (k > m->vocab) {
        err_set(&err, "--k %zu exceeds the teacher's vocabulary %zu", k, m->vocab);
        goto out;
    }
    if (!T) {
        const cJSON *sl = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "data"), "seq_len");
        T = cJSON_IsNumber(sl) ? (size_t)sl->valuedouble : 1024;
    }
    if (T > m->max_seq_len) {
        err_set(&err, "--seq-len %zu exceeds the teacher's seq_len %zu", T, m->max_seq_len);
        goto out;
    }
    if (shard_open(&sh, data, m->vocab, &err)) goto out;
    size_t positions = sh.ntokens ? sh.ntokens - 1 : 0;
    if (max_tokens && max_tokens < positions) positions = max_tokens;
    size_t nw = (positions + T - 1) / T;
    TeacherMeta meta = {.k = k, .vocab_size = m->vocab, .seq_len = T, .temperature = temp, .offset = 0, .fp16 = !strcmp(dtype, "f16")};
    snprintf(meta.shard, sizeof meta.shard, "%s", data);
    snprintf(meta.teacher, sizeof meta.teacher, "%s (%s, %zu parameters)", ckpt, m->arch, model_num_params(m));
    {
        /* create the output's folder (as prepare / import do) */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", out);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            if (make_dirs(dir, &err)) goto out;
        }
    }
    if (teacher_writer_open(&w, out, &meta, &err)) goto out;
    opened = 1;
    x = xmalloc(B * T * sizeof(int32_t));
    idx = xmalloc(B * T * k * sizeof(int32_t));
    val = xmalloc(B * T * k * sizeof(float));
    lse = xmalloc(B * T * sizeof(float));
    Tape tp;
    tape_init(&tp, 0);
    Progress prog;
    progress_init(&prog);
    float inv_t = (float)(1.0 / temp);
    for (size_t w0 = 0; w0 < nw; w0 += B) {
        size_t nb = TERN_MIN(B, nw - w0);
        /* the last window may be short: pad by repeating its first token (causal: padding never
         * affects earlier positions) and keep only the real rows */
        size_t rows_total = 0;
        for (size_t b = 0; b < nb; b++) {
            size_t start = (w0 + b) * T, len = TERN_MIN(T, positions - start);
            shard_copy(&sh, start, len, x + b * T);
            for (size_t i = len; i < T; i++) x[b * T + i] = x[b * T];
        }
        tape_reset(&tp);
        tape_no_grad_begin(&tp);
        Tensor *z = model_logits(m, &tp, x, nb, T);
        tape_no_grad_end(&tp);
        for (size_t b = 0; b < nb; b++) {
            size_t start = (w0 + b) * T, len = TERN_MIN(T, positions - start);
            for (size_t i = 0; i < len; i++) {
                float *row = z->data + (b * T + i) * m->vocab;
                if (temp != 1.0)
                    for (size_t c = 0; c < m->vocab; c++) row[c] *= inv_t;
                teacher_topk_row(row, m->vocab, k, idx + rows_total * k, val + rows_total * k, lse + rows_total);
                rows_total++;
            }
        }
        if (teacher_writer_append(&w, idx, val, lse, rows_total, &err)) break;
        char line[160];
        snprintf(line, sizeof line, "logits: %zu / %zu positions", TERN_MIN((w0 + nb) * T, positions), positions);
        progress_update(&prog, (double)TERN_MIN((w0 + nb) * T, positions) / (double)(positions ? positions : 1), line, 0);
    }
    progress_done(&prog);
    tape_free(&tp);
    if (err.code) goto out;
    opened = 0;
    if (teacher_writer_close(&w, &err)) goto out;
    fprintf(stderr, "tern logits: %zu positions x top-%zu (%s) -> %s\n", positions, k, dtype, out);
    status = 0;
out:
    if (status) fprintf(stderr, "tern logits: %s\n", err.msg);
    if (opened) teacher_writer_abort(&w);
    shard_close(&sh);
    model_free(m);
    cJSON_Delete(cfg);
    xfree(x);
    xfree(idx);
    xfree(val);
    xfree(lse);
    return status;
}
