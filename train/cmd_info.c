/* tern info FILE [--json] [--verify]: what a checkpoint or token shard holds; --verify reads every
 * dataset of an HDF5 file so that HDF5 checks every stored checksum. Without FILE: the machine
 * tern runs on (CPU, BLAS and its kernels, threads). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/h5io.h"
#include "data/shard.h"
#include "kernels/blas_core.h"
#include "kernels/util.h"
#include "train/checkpoint.h"
#include "train/cli.h"
#include "train/model_io.h"

static int info_checkpoint(const char *path, int json) {
    Err err = {0};
    Model *m = NULL;
    cJSON *cfg = NULL;
    if (model_load_checkpoint(path, 0, &m, &cfg, &err)) {
        fprintf(stderr, "tern info: %s\n", err.msg);
        return 1;
    }
    TrainState st;
    memset(&st, 0, sizeof st);
    Err e2 = {0};
    hid_t f = h5_open_read(path, &e2);
    int has_optim = f >= 0 && h5_exists(f, "optim/state_a"), has_ema = f >= 0 && h5_exists(f, "ema/shadow");
    h5_close(f);
    if (checkpoint_load(path, &m->ps, NULL, NULL, NULL, &st, &e2)) {
        fprintf(stderr, "tern info: %s\n", e2.msg);
        model_free(m);
        cJSON_Delete(cfg);
        return 1;
    }
    size_t n = model_num_params(m);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddStringToObject(o, "kind", "checkpoint");
        cJSON_AddStringToObject(o, "arch", m->arch);
        cJSON_AddNumberToObject(o, "params", (double)n);
        cJSON_AddNumberToObject(o, "step", (double)st.step);
        cJSON_AddNumberToObject(o, "tokens", (double)st.tokens);
        cJSON_AddBoolToObject(o, "optimizer_state", has_optim);
        cJSON_AddBoolToObject(o, "ema", has_ema);
        cJSON *tab = cJSON_AddArrayToObject(o, "tensors");
        for (size_t i = 0; i < m->ps.n; i++) {
            const Tensor *t = m->ps.t[i];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", t->name);
            cJSON *sh = cJSON_AddArrayToObject(e, "shape");
            for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
            cJSON_AddNumberToObject(e, "numel", (double)t->numel);
            cJSON_AddItemToArray(tab, e);
        }
        cJSON_AddItemToObject(o, "config", cJSON_Duplicate(cfg, 1));
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        printf("%s: tern checkpoint, arch %s, %zu parameters (%.1f MB fp32), step %llu, %llu tokens seen\n", path,
               m->arch, n, n * 4.0 / 1e6, (unsigned long long)st.step, (unsigned long long)st.tokens);
        printf("optimizer state: %s   EMA weights: %s\n", has_optim ? "yes" : "no", has_ema ? "yes" : "no");
        printf("%-40s %-16s %12s\n", "tensor", "shape", "numel");
        for (size_t i = 0; i < m->ps.n; i++) {
            const Tensor *t = m->ps.t[i];
            char sh[64];
            tensor_shape_str(t, sh, sizeof sh);
            printf("%-40s %-16s %12zu\n", t->name, sh, t->numel);
        }
        char *s = cJSON_Print(cfg);
        printf("config:\n%s\n", s);
        cJSON_free(s);
    }
    model_free(m);
    cJSON_Delete(cfg);
    return 0;
}

static int info_shard(const char *path, int json) {
    Err err = {0};
    Shard s;
    if (shard_open(&s, path, 0, &err)) {
        fprintf(stderr, "tern info: %s\n", err.msg);
        return 1;
    }
    size_t docs = 0;
    for (size_t i = 0; i < s.ntokens; i++) docs += shard_token(&s, i) == 1;
    if (json)
        printf("{\"file\":\"%s\",\"kind\":\"shard\",\"tokens\":%zu,\"max_token\":%u,\"bos_count\":%zu}\n", path, s.ntokens,
               s.max_token, docs);
    else
        printf("%s: token shard, %zu tokens, max id %u, %zu BOS(=1) tokens\n", path, s.ntokens, s.max_token, docs);
    shard_close(&s);
    return 0;
}

/* Exit 1 on damage; a file written before checksums were stored is read whole and reported as
 * such (nothing to compare against). */
static int info_verify(const char *path, int json) {
    Err err = {0};
    hid_t f = h5_open_read(path, &err);
    if (f < 0) {
        fprintf(stderr, "tern info: %s (--verify checks HDF5 checkpoints, teacher-logit files and .h5 shards)\n", err.msg);
        return 1;
    }
    H5Verify v;
    h5_verify(f, &v);
    h5_close(f);
    int damaged = v.damaged[0] != 0;
    if (damaged) fprintf(stderr, "tern info: %s: %s: %s\n", path, v.damaged, v.cause);
    char summary[160];
    if (v.checksummed == 0)
        snprintf(summary, sizeof summary, "no checksums (written before tern stored them): %zu datasets read, damage cannot be detected",
                 v.datasets);
    else if (v.checksummed < v.datasets)
        snprintf(summary, sizeof summary, "ok: %zu datasets verified by their checksums; %zu more have no checksum", v.checksummed,
                 v.datasets - v.checksummed);
    else snprintf(summary, sizeof summary, "ok: all %zu datasets verified by their checksums", v.datasets);
    if (json)
        printf("{\"file\":\"%s\",\"ok\":%s,\"datasets\":%zu,\"checksummed\":%zu,\"damaged\":\"%s\"}\n", path,
               damaged ? "false" : "true", v.datasets, v.checksummed, v.damaged);
    else if (!damaged) printf("%s: %s\n", path, summary);
    return damaged;
}

static int info_environment(int json) {
    CpuInfo ci;
    cpu_info_detect(&ci);
    char core[160];
    blas_core_describe(core, sizeof core);
    const char *wait = getenv("OMP_WAIT_POLICY");
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "environment");
        cJSON_AddStringToObject(o, "cpu", ci.brand);
        cJSON_AddNumberToObject(o, "cpu_family", ci.family);
        cJSON_AddNumberToObject(o, "cpu_model", ci.model);
        cJSON_AddStringToObject(o, "isa", cpu_isa_name(ci.isa));
        cJSON_AddBoolToObject(o, "avx512_bf16", ci.avx512_bf16);
        cJSON_AddStringToObject(o, "blas", blas_config());
        cJSON_AddStringToObject(o, "blas_core", blas_core_name());
        cJSON_AddStringToObject(o, "blas_core_origin", core);
        cJSON_AddNumberToObject(o, "threads", tern_get_threads());
        cJSON_AddStringToObject(o, "omp_wait_policy", wait ? wait : "");
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        printf("cpu:       %s (family %u model %u), %s%s\n", ci.brand[0] ? ci.brand : "unknown", ci.family, ci.model,
               cpu_isa_name(ci.isa), ci.avx512_bf16 ? " + BF16" : "");
        printf("blas:      %s\n", blas_config());
        printf("kernels:   %s\n", core);
        printf("threads:   %d (OMP_WAIT_POLICY %s)\n", tern_get_threads(), wait ? wait : "unset");
    }
    return 0;
}

int cmd_info(int argc, char **argv) {
    const char *file = NULL;
    int json = 0, verify = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_flag(argv[i], "help")) {
            printf("usage: tern info [FILE] [--json] [--verify]   (checkpoint .h5 or token shard .bin; without FILE: this machine)\n"
                   "  --verify   read every dataset of an HDF5 file, checking its checksums (exit 1 on damage)\n");
            return 0;
        } else if (cli_is_flag(argv[i], "json")) json = 1;
        else if (cli_is_flag(argv[i], "verify")) verify = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "tern info: unknown option %s\n", argv[i]);
            return 2;
        } else file = argv[i];
    }
    if (!file && verify) {
        fprintf(stderr, "usage: tern info FILE --verify   (--verify needs a file)\n");
        return 2;
    }
    if (!file) return info_environment(json);
    if (verify) return info_verify(file, json);
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "tern info: %s: cannot open\n", file);
        return 1;
    }
    unsigned char magic[8] = {0};
    size_t got = fread(magic, 1, 8, f);
    fclose(f);
    if (got == 8 && !memcmp(magic, "\x89HDF\r\n\x1a\n", 8)) {
        Err e = {0};
        hid_t h = h5_open_read(file, &e);
        int is_ckpt = h >= 0 && h5_attr_exists(h, "/", "format");
        int is_tokens = h >= 0 && h5_exists(h, "tokens");
        h5_close(h);
        if (is_ckpt) return info_checkpoint(file, json);
        if (is_tokens) return info_shard(file, json);
        fprintf(stderr, "tern info: %s: an HDF5 file but neither a tern checkpoint nor a token shard\n", file);
        return 1;
    }
    return info_shard(file, json);
}
