/* tern export --ckpt F -o model.tern [overrides] [--json] [--merge-lora [--base B]]: the
 * checkpoint's parameters (a LoRA run's: its base with the adapters folded in) stored as
 * its quantization plan says (model/qat.h, from the quant/export sections of its config, with
 * command-line overrides), packed and zstd-compressed by export/writer.c, plus a size table
 * against the parameter-golf limit (compressed model bytes + runtime code bytes <= 16,000,000). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "export/format.h"
#include "export/writer.h"
#include "kernels/jsoncfg.h"
#include "model/lora.h"
#include "model/qat.h"
#include "train/cli.h"
#include "train/model_io.h"

#define PGOLF_LIMIT 16000000.0

static void usage(FILE *f) {
    fprintf(f,
            "usage: tern export --ckpt CKPT.h5 -o OUT.tern [options]\n"
            "       tern export --format gguf --ckpt CKPT.h5 -o OUT.gguf [--quant f32|f16|q8_0|tq2_0|tq1_0]\n"
            "       (a llama-preset checkpoint for llama.cpp: see tern export --format gguf --help)\n"
            "Quantization comes from the checkpoint's quant/export config; these override it:\n"
            "  --quant KIND         quant.weights: none | int4 | int5 | int6 | int8 | ternary\n"
            "  --group G            quant.group (ternary weights per scale; 0 = per tensor)\n"
            "  --act-bits 0|8       quant.act_bits (int8 activations in the runtime's integer kernels)\n"
            "  --scale-dtype D      quant.scale_dtype: fp16 | fp32\n"
            "  --min-numel N        quant.min_numel (2-D tensors with more weights are quantized)\n"
            "  --embed 0|1          quant.embed (quantize the token embedding / tied head)\n"
            "  --ternary-packing P  export.ternary_packing: 2bit | base3\n"
            "  --passthrough D      export.passthrough: fp16 | fp32 for tensors not quantized\n"
            "  --zstd-level L       export.zstd_level (1..22)\n"
            "  --set KEY=VALUE      any quant.* or export.* key, e.g. --set quant.rules=[] (repeatable)\n"
            "                       (per-layer quant.rules of the config still apply unless overridden)\n"
            "  --tokenizer FILE     embed this tokenizer (default: the checkpoint's data.tokenizer)\n"
            "  --no-tokenizer       embed none (tern-run then cannot encode text or count bytes)\n"
            "  --ema                export the checkpoint's EMA weights when it has them\n"
            "  --merge-lora         CKPT is a LoRA run's (train.lora): fold its adapters into its base,\n"
            "                       W += (alpha/r) B A, then quantize as the plan says\n"
            "  --base B.h5          the base checkpoint, when not at the path the LoRA run stored (its\n"
            "                       hash must match the run's train.lora.base_hash either way)\n"
            "  --threads N          zstd worker threads (default 0: single-threaded, reproducible bytes)\n"
            "  --json               one JSON object on stdout (size table included)\n"
            "Writes OUT atomically (temporary file + rename). Prints bytes per tensor (raw fp32 and\n"
            "packed), the compressed total and the parameter-golf total: artifact bytes + the bytes of the\n"
            "runtime's C sources (runtime/, export/format.h and the tokenizer/bpb/util files it compiles).\n");
}

static int read_file(const char *path, uint8_t **out, size_t *len, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "%s: cannot open tokenizer file", path);
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) buf = xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        xfree(buf);
        return err_set(err, "%s: read error", path);
    }
    *out = buf;
    *len = n;
    return 0;
}

/* is_string: the value is text and is quoted, so that a value that happens to be valid JSON
 * (e.g. "true" or "8") stays a string */
static int set_key(cJSON *cfg, const char *key, const char *value, int is_string, Err *err) {
    char buf[1024];
    if (is_string && (strchr(value, '"') || strchr(value, '\\'))) return err_set(err, "--%s: bad value %s", key, value);
    snprintf(buf, sizeof buf, is_string ? "%s=\"%s\"" : "%s=%s", key, value);
    return cfg_set_path(cfg, buf, err);
}

static void fmt_thousands(char *buf, size_t n, size_t v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%zu", v);
    size_t len = strlen(tmp), o = 0;
    for (size_t i = 0; i < len && o + 1 < n; i++) {
        if (i && (len - i) % 3 == 0 && o + 2 < n) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
}

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *outp = NULL, *tokpath = NULL, *base = NULL;
    int json = 0, use_ema = 0, no_tok = 0, threads = 0, merge_lora = 0;
    const char *sets[64];
    int nsets = 0;
    struct {
        const char *flag, *key;
        int is_string;
        const char *value;
    } ov[] = {{"quant", "quant.weights", 1, NULL},       {"group", "quant.group", 0, NULL},
              {"act-bits", "quant.act_bits", 0, NULL},    {"scale-dtype", "quant.scale_dtype", 1, NULL},
              {"min-numel", "quant.min_numel", 0, NULL},  {"embed", "quant.embed", 0, NULL},
              {"ternary-packing", "export.ternary_packing", 1, NULL}, {"passthrough", "export.passthrough", 1, NULL},
              {"zstd-level", "export.zstd_level", 0, NULL}};
    const size_t nov = sizeof ov / sizeof ov[0];
    /* --format gguf: a llama.cpp model file instead (train/export_gguf.c) */
    for (int i = 1; i < argc; i++) {
        const char *fmt = NULL;
        if (!strcmp(argv[i], "--format") && i + 1 < argc) fmt = argv[i + 1];
        else if (!strncmp(argv[i], "--format=", 9)) fmt = argv[i] + 9;
        if (!fmt) continue;
        if (!strcmp(fmt, "gguf")) return cmd_export_gguf(argc, argv);
        if (strcmp(fmt, "tern")) {
            fprintf(stderr, "tern export: --format %s: the formats are tern (the default) and gguf\n", fmt);
            return 2;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        int matched = 0;
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        for (size_t k = 0; k < nov && !matched; k++)
            if ((v = cli_value(argc, argv, &i, ov[k].flag))) {
                ov[k].value = v;
                matched = 1;
            }
        if (matched) continue;
        if ((v = cli_value(argc, argv, &i, "format"))) continue; /* tern */
        if ((v = cli_value(argc, argv, &i, "ckpt"))) ckpt = v;
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) outp = argv[++i];
        else if ((v = cli_value(argc, argv, &i, "out"))) outp = v;
        else if ((v = cli_value(argc, argv, &i, "tokenizer"))) tokpath = v;
        else if ((v = cli_value(argc, argv, &i, "set"))) {
            if (nsets == 64) {
                fprintf(stderr, "tern export: too many --set\n");
                return 2;
            }
            sets[nsets++] = v;
        } else if ((v = cli_value(argc, argv, &i, "threads"))) threads = atoi(v);
        else if (cli_is_flag(argv[i], "no-tokenizer")) no_tok = 1;
        else if (cli_is_flag(argv[i], "ema")) use_ema = 1;
        else if (cli_is_flag(argv[i], "merge-lora")) merge_lora = 1;
        else if ((v = cli_value(argc, argv, &i, "base"))) base = v;
        else if (cli_is_flag(argv[i], "json")) json = 1;
        else {
            fprintf(stderr, "tern export: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!ckpt || !outp) {
        usage(stderr);
        return 2;
    }
    Err err = {0};
    Model *m = NULL;
    cJSON *cfg = NULL;
    uint8_t *tok_bytes = NULL, *art = NULL;
    size_t tok_len = 0, art_len = 0;
    Tokenizer *tok = NULL;
    ExportReport rep;
    memset(&rep, 0, sizeof rep);
    int status = 1;
    if (base && !merge_lora) {
        err_set(&err, "--base is the base of a LoRA checkpoint: it goes with --merge-lora");
        goto out;
    }
    if (model_load_checkpoint_base(ckpt, use_ema, base, &m, &cfg, &err)) goto out;
    if (m->lora && !merge_lora) {
        err_set(&err, "%s is a LoRA checkpoint (adapters only): export it with --merge-lora", ckpt);
        goto out;
    }
    if (merge_lora && !m->lora) {
        err_set(&err, "--merge-lora: %s is not a LoRA checkpoint (its config has no train.lora)", ckpt);
        goto out;
    }
    if (m->lora) lora_merge(m);
    if (!strcmp(m->arch, "llama")) {
        /* the artifact format runs Llama blocks as GPT blocks with the norm gains folded in */
        Model *gm = NULL;
        if (llama_to_gpt(m, &gm, &err)) goto out;
        model_free(m);
        m = gm;
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "model", cJSON_Duplicate(m->config, 1));
    }
    for (size_t k = 0; k < nov; k++) {
        const char *v = ov[k].value;
        if (v && !strcmp(ov[k].flag, "embed")) /* a boolean in the config */
            v = (!strcmp(v, "1") || !strcmp(v, "true")) ? "true" : (!strcmp(v, "0") || !strcmp(v, "false")) ? "false" : v;
        if (v && set_key(cfg, ov[k].key, v, ov[k].is_string, &err)) goto out;
    }
    for (int k = 0; k < nsets; k++) {
        if (strncmp(sets[k], "quant.", 6) && strncmp(sets[k], "export.", 7)) {
            err_set(&err, "--set %s: only quant.* and export.* keys change an export", sets[k]);
            goto out;
        }
        if (cfg_set_path(cfg, sets[k], &err)) goto out;
    }
    cJSON *rq = cJSON_CreateObject(), *rx = cJSON_CreateObject();
    if (quant_plan_attach(m, cJSON_GetObjectItemCaseSensitive(cfg, "quant"), cJSON_GetObjectItemCaseSensitive(cfg, "export"), rq, rx,
                          &err)) {
        cJSON_Delete(rq);
        cJSON_Delete(rx);
        goto out;
    }
    /* the artifact records the plan it was written with */
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quant");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "export");
    cJSON_AddItemToObject(cfg, "quant", rq);
    cJSON_AddItemToObject(cfg, "export", rx);

    ExportOptions opt = {0};
    opt.zstd_workers = threads > 0 ? threads : 0;
    if (!no_tok && !tokpath) {
        const cJSON *dsec = cJSON_GetObjectItemCaseSensitive(cfg, "data");
        const cJSON *tp = dsec ? cJSON_GetObjectItemCaseSensitive(dsec, "tokenizer") : NULL;
        if (cJSON_IsString(tp) && tp->valuestring[0]) tokpath = tp->valuestring;
    }
    const char *tokname = "";
    if (!no_tok && tokpath) {
        tokname = tokpath;
        if (!strcmp(tokpath, "byte")) {
            opt.tok_kind = TERN_TOK_BYTE;
            tok = tokenizer_byte_new();
        } else {
            if (read_file(tokpath, &tok_bytes, &tok_len, &err)) goto out;
            if (tokenizer_load_memory(&tok, tok_bytes, tok_len, tokpath, &err)) goto out;
            opt.tok_kind = TERN_TOK_FILE;
            opt.tok_bytes = tok_bytes;
            opt.tok_len = tok_len;
        }
        if (tokenizer_vocab_size(tok) > m->vocab) {
            err_set(&err, "%s: the tokenizer has %zu ids but the model only %zu", tokpath, tokenizer_vocab_size(tok), m->vocab);
            goto out;
        }
    }
    if (export_build(m, cfg, &opt, &art, &art_len, &rep, &err)) goto out;
    if (export_write_file(outp, art, art_len, &err)) goto out;

    size_t code = export_code_bytes(), total = art_len + code;
    int fits = (double)total <= PGOLF_LIMIT;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "artifact", outp);
        cJSON_AddStringToObject(o, "checkpoint", ckpt);
        cJSON_AddNumberToObject(o, "format_version", TERN_FORMAT_VERSION);
        cJSON_AddNumberToObject(o, "params", (double)rep.params);
        cJSON_AddNumberToObject(o, "raw_bytes", (double)rep.raw_bytes);
        cJSON_AddNumberToObject(o, "packed_bytes", (double)rep.packed_bytes);
        cJSON_AddNumberToObject(o, "container_bytes", (double)rep.container_bytes);
        cJSON_AddNumberToObject(o, "bytes", (double)art_len);
        cJSON_AddNumberToObject(o, "zstd_level", rep.zstd_level);
        cJSON_AddNumberToObject(o, "tokenizer_bytes", (double)rep.tokenizer_bytes);
        cJSON_AddStringToObject(o, "tokenizer", tokname);
        cJSON_AddNumberToObject(o, "code_bytes", (double)code);
        cJSON_AddNumberToObject(o, "code_files", (double)export_code_files());
        cJSON_AddNumberToObject(o, "pgolf_total", (double)total);
        cJSON_AddNumberToObject(o, "pgolf_limit", PGOLF_LIMIT);
        cJSON_AddBoolToObject(o, "fits", fits);
        cJSON_AddNumberToObject(o, "seconds_compress", rep.seconds_compress);
        cJSON *arr = cJSON_AddArrayToObject(o, "tensors");
        for (size_t i = 0; i < rep.ntensors; i++) {
            const ExportTensorInfo *t = &rep.t[i];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", t->name);
            cJSON_AddStringToObject(e, "dtype", t->dtype);
            cJSON *sh = cJSON_AddArrayToObject(e, "shape");
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->rows));
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->cols));
            cJSON_AddNumberToObject(e, "raw_bytes", (double)t->raw_bytes);
            cJSON_AddNumberToObject(e, "packed_bytes", (double)t->packed_bytes);
            cJSON_AddItemToArray(arr, e);
        }
        char *txt = cJSON_PrintUnformatted(o);
        printf("%s\n", txt);
        cJSON_free(txt);
        cJSON_Delete(o);
    } else {
        char a[32], b[32], c2[32], d[32];
        fprintf(stderr, "%-34s %-12s %-22s %13s %13s\n", "tensor", "shape", "dtype", "raw bytes", "packed bytes");
        for (size_t i = 0; i < rep.ntensors; i++) {
            const ExportTensorInfo *t = &rep.t[i];
            char shape[32];
            snprintf(shape, sizeof shape, "%zux%zu", t->rows, t->cols);
            fmt_thousands(a, sizeof a, t->raw_bytes);
            fmt_thousands(b, sizeof b, t->packed_bytes);
            fprintf(stderr, "%-34s %-12s %-22s %13s %13s\n", t->name, shape, t->dtype, a, b);
        }
        fmt_thousands(a, sizeof a, rep.raw_bytes);
        fmt_thousands(b, sizeof b, rep.packed_bytes);
        fprintf(stderr, "%-34s %-12s %-22s %13s %13s\n", "total", "", "", a, b);
        fmt_thousands(a, sizeof a, rep.params);
        fmt_thousands(b, sizeof b, rep.container_bytes);
        fmt_thousands(c2, sizeof c2, art_len);
        fprintf(stderr, "params %s; container %s bytes (with config %s and tokenizer %zu bytes); zstd-%d -> %s bytes (%.1fs)\n", a, b,
                "JSON", rep.tokenizer_bytes, rep.zstd_level, c2, rep.seconds_compress);
        fmt_thousands(a, sizeof a, code);
        fmt_thousands(b, sizeof b, total);
        fmt_thousands(d, sizeof d, fits ? (size_t)(PGOLF_LIMIT - (double)total) : (size_t)((double)total - PGOLF_LIMIT));
        fprintf(stderr, "code bytes %s (%zu runtime C source files)\nparameter-golf total %s + %s = %s bytes: %s the 16,000,000-byte limit (%s %s)\n",
                a, export_code_files(), c2, a, b, fits ? "within" : "OVER", fits ? "margin" : "excess", d);
        fprintf(stderr, "wrote %s\n", outp);
    }
    status = 0;
out:
    if (status) fprintf(stderr, "tern export: %s\n", err.msg);
    free(art);
    xfree(tok_bytes);
    if (tok) tokenizer_free(tok);
    export_report_free(&rep);
    model_free(m);
    cJSON_Delete(cfg);
    return status;
}
