/* tern eval --ckpt F --data SHARD [--tokenizer M] [--seq-len T] [--sliding S] [--max-tokens N]
 *           [--batch B] [--ema] [--json] */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpb.h"
#include "data/loader.h"
#include "kernels/gemm.h"
#include "train/cli.h"
#include "train/eval.h"
#include "train/model_io.h"
#include "model/lora.h"
#include "model/qat.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tern eval --ckpt CKPT.h5 --data SHARD_GLOB [options]\n"
            "  --tokenizer FILE  tokenizer for val_bpb (default: the checkpoint's data.tokenizer)\n"
            "  --seq-len T       window length (default: the checkpoint's data.seq_len)\n"
            "  --sliding S       sliding-window evaluation with stride S (default: standard windows)\n"
            "  --max-tokens N    score at most N targets\n"
            "  --batch B         windows per forward (default 4)\n"
            "  --threads N       OpenMP/BLAS threads\n"
            "  --ema             use the checkpoint's EMA weights when it has them\n"
            "  --quantized       evaluate as exported: quantized tensors fake-quantized per the checkpoint's\n"
            "                    quant/export config, fp16-stored tensors rounded to fp16\n"
            "  --ttt             score-first LoRA test-time training per document (see --ttt-*)\n"
            "  --ttt-rank R      adapter rank (default 8)      --ttt-lr LR  Adam lr (default 0.01)\n"
            "  --ttt-chunk N     targets per chunk (default 256); context = --seq-len\n"
            "  --json            one JSON object on stdout\n");
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *tokpath = NULL;
    size_t T = 0, stride = 0, max_tokens = 0, B = 4;
    int json = 0, use_ema = 0, threads = 0, quantized = 0, ttt = 0;
    TttOptions to;
    ttt_defaults(&to);
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_is_flag(argv[i], "help")) {
            usage(stdout);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "ckpt"))) ckpt = v;
        else if ((v = cli_value(argc, argv, &i, "data"))) data = v;
        else if ((v = cli_value(argc, argv, &i, "tokenizer"))) tokpath = v;
        else if ((v = cli_value(argc, argv, &i, "seq-len"))) T = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "sliding"))) stride = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "max-tokens"))) max_tokens = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "batch"))) B = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "threads"))) threads = atoi(v);
        else if (cli_is_flag(argv[i], "ema")) use_ema = 1;
        else if (cli_is_flag(argv[i], "quantized")) quantized = 1;
        else if (cli_is_flag(argv[i], "ttt")) ttt = 1;
        else if ((v = cli_value(argc, argv, &i, "ttt-rank"))) to.rank = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "ttt-lr"))) to.lr = atof(v);
        else if ((v = cli_value(argc, argv, &i, "ttt-chunk"))) to.chunk = strtoull(v, NULL, 10);
        else if (cli_is_flag(argv[i], "json")) json = 1;
        else {
            fprintf(stderr, "tern eval: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!ckpt || !data || B == 0) {
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
    Tokenizer *tok = NULL;
    ByteCounter bc;
    int have_bc = 0, status = 1;
    TokenStream s;
    memset(&s, 0, sizeof s);
    if (model_load_checkpoint(ckpt, use_ema, &m, &cfg, &err)) goto out;
    /* a LoRA run's adapters: folded in first when the weights are quantized as exported (export
     * --merge-lora quantizes the merged weights) or when test-time training adds its own */
    if (m->lora && (quantized || ttt)) lora_merge(m);
    if (quantized) {
        if (quant_plan_attach(m, cJSON_GetObjectItemCaseSensitive(cfg, "quant"), cJSON_GetObjectItemCaseSensitive(cfg, "export"),
                              NULL, NULL, &err))
            goto out;
        m->qat_active = 1;
        quant_plan_round_passthrough(m);
    }
    const cJSON *dsec = cJSON_GetObjectItemCaseSensitive(cfg, "data");
    if (!T) {
        const cJSON *sl = cJSON_GetObjectItemCaseSensitive(dsec, "seq_len");
        T = cJSON_IsNumber(sl) ? (size_t)sl->valuedouble : 1024;
    }
    if (T > m->max_seq_len) {
        err_set(&err, "--seq-len %zu exceeds the model's seq_len %zu", T, m->max_seq_len);
        goto out;
    }
    if (!tokpath) {
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(dsec, "tokenizer");
        if (cJSON_IsString(tp) && tp->valuestring[0]) tokpath = tp->valuestring;
    }
    if (tokpath) {
        if (tokenizer_load(&tok, tokpath, &err)) goto out;
        if (bpb_init(&bc, tok, m->vocab, &err)) goto out;
        have_bc = 1;
    }
    if (stream_open(&s, data, m->vocab, &err)) goto out;
    /* nothing to score is an error, not "val_loss nan": standard windows need T + 1 tokens
     * (inputs and shifted targets); sliding and TTT score shorter streams, but need two */
    if ((stride || ttt) && s.ntokens < 2) {
        err_set(&err, "%s: %zu tokens: nothing to score (needs at least 2)", data, s.ntokens);
        goto out;
    }
    if (!stride && !ttt && s.ntokens < T + 1) {
        err_set(&err, "%s: %zu tokens: too few for one %zu-token window (needs %zu; more data or a smaller --seq-len)", data,
                s.ntokens, T, T + 1);
        goto out;
    }
    Tape tp;
    tape_init(&tp, 0);
    EvalResult r;
    if (ttt) {
        to.context = T;
        int32_t bos = tok ? tokenizer_bos(tok) : 1;
        if (eval_ttt(m, &tp, &s, bos < 0 ? 1 : bos, have_bc ? &bc : NULL, &to, max_tokens, &r, &err)) {
            tape_free(&tp);
            goto out;
        }
    } else if (stride) eval_sliding(m, &tp, &s, T, stride, B, have_bc ? &bc : NULL, max_tokens, &r);
    else eval_standard(m, &tp, &s, T, B, have_bc ? &bc : NULL, max_tokens, NULL, &r);
    tape_free(&tp);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "checkpoint", ckpt);
        cJSON_AddStringToObject(o, "data", data);
        cJSON_AddStringToObject(o, "mode", ttt ? "ttt" : stride ? "sliding" : "standard");
        cJSON_AddBoolToObject(o, "quantized", quantized);
        if (stride) cJSON_AddNumberToObject(o, "stride", (double)stride);
        cJSON_AddNumberToObject(o, "seq_len", (double)T);
        cJSON_AddNumberToObject(o, "val_loss", r.val_loss);
        if (have_bc) cJSON_AddNumberToObject(o, "val_bpb", r.val_bpb);
        cJSON_AddNumberToObject(o, "tokens", r.tokens);
        cJSON_AddNumberToObject(o, "bytes", r.bytes);
        cJSON_AddNumberToObject(o, "seconds", r.seconds);
        char *txt = cJSON_PrintUnformatted(o);
        printf("%s\n", txt);
        cJSON_free(txt);
        cJSON_Delete(o);
    } else {
        printf("val_loss %.6f", r.val_loss);
        if (have_bc) printf("  val_bpb %.6f", r.val_bpb);
        printf("  tokens %.0f  bytes %.0f  (%s, T=%zu, %.1fs)\n", r.tokens, r.bytes,
               ttt ? "LoRA test-time training" : stride ? "sliding window" : "standard", T, r.seconds);
    }
    status = 0;
out:
    if (status) fprintf(stderr, "tern eval: %s\n", err.msg);
    stream_close(&s);
    if (have_bc) bpb_free(&bc);
    if (tok) tokenizer_free(tok);
    model_free(m);
    cJSON_Delete(cfg);
    return status;
}
