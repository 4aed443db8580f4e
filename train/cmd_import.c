/* tern import MODEL.gguf -o DIR: a pretrained llama-family GGUF (f32 / f16 tensors) becomes a
 * tern checkpoint (DIR/model.h5, arch "llama") and a SentencePiece model of its tokenizer
 * (DIR/tokenizer.model), so that eval, logits (teacher files for distillation), fine-tuning
 * (train.init_from, MeZO) and prepare work on it like on any tern model. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/gguf.h"
#include "kernels/ggml_blocks.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: tern import MODEL.gguf -o DIR [--json]\n"
               "  Converts a llama-architecture GGUF (F32, F16, Q8_0, TQ1_0 or TQ2_0 tensors; e.g. karpathy's tinyllamas) into\n"
               "  DIR/model.h5 (a tern checkpoint, arch \"llama\") and DIR/tokenizer.model (its SentencePiece\n"
               "  tokenizer). Then: tern eval / tern logits --ckpt DIR/model.h5, tern prepare --tokenizer\n"
               "  DIR/tokenizer.model, train.init_from=DIR/model.h5.\n");
}

/* Copies GGUF tensor `name` into t. permute_heads > 0 (Wq, Wk): within each head of that size,
 * rows 0, 2, 4, ... then the negated rows 1, 3, 5, ...: Meta rotates adjacent pairs
 * (x_2i, x_2i+1) by +t theta_i, tern rotates (x_i, x_i+D/2) by -t theta_i; with S = diag(1, -1)
 * on each pair, R(-a) = S R(a) S, so tern's rotation of the permuted, sign-flipped q and k is
 * S times Meta's rotated ones, and q.k (hence attention) is unchanged. */
static int load_tensor(const Gguf *g, const char *name, Tensor *t, size_t permute_heads, Err *err) {
    const GgufTensor *gt = gguf_tensor(g, name);
    if (!gt) return err_set(err, "%s: tensor %s missing", g->path, name);
    size_t want_in = t->ndim == 2 ? t->shape[1] : t->shape[0], want_out = t->ndim == 2 ? t->shape[0] : 1;
    if (gt->dims[0] != want_in || (gt->ndim > 1 ? gt->dims[1] : 1) != want_out)
        return err_set(err, "%s: tensor %s has shape [%llu, %llu], expected [%zu, %zu]", g->path, name,
                       (unsigned long long)gt->dims[0], (unsigned long long)(gt->ndim > 1 ? gt->dims[1] : 1), want_in, want_out);
    if (gguf_tensor_f32(g, gt, t->data, t->numel, err)) return -1;
    if (permute_heads) {
        size_t D = permute_heads, cols = t->shape[1], rows = t->shape[0];
        float *tmp = xmalloc(D * cols * sizeof(float));
        for (size_t h = 0; h < rows / D; h++) {
            float *blk = t->data + h * D * cols;
            for (size_t j = 0; j < D; j++) {
                size_t src = j < D / 2 ? 2 * j : 2 * (j - D / 2) + 1;
                float sign = j < D / 2 ? 1.0f : -1.0f;
                for (size_t c = 0; c < cols; c++) tmp[j * cols + c] = sign * blk[src * cols + c];
            }
            memcpy(blk, tmp, D * cols * sizeof(float));
        }
        xfree(tmp);
    }
    return 0;
}

/* A block's tensors: GGUF name, tern name, RoPE permutation, and GGUF dims [in, out] as
 * C (embedding_length), K (head_count_kv * head dim), H (feed_forward_length) or 1. */
static const struct {
    const char *gguf, *tern;
    int rope;
    char in, out;
} kBlockTensors[] = {{"attn_norm.weight", "attn_norm.weight", 0, 'C', '1'}, {"attn_q.weight", "attn.wq.weight", 1, 'C', 'C'},
                     {"attn_k.weight", "attn.wk.weight", 1, 'C', 'K'},      {"attn_v.weight", "attn.wv.weight", 0, 'C', 'K'},
                     {"attn_output.weight", "attn.wo.weight", 0, 'C', 'C'}, {"ffn_norm.weight", "ffn_norm.weight", 0, 'C', '1'},
                     {"ffn_gate.weight", "ffn.w1.weight", 0, 'C', 'H'},     {"ffn_down.weight", "ffn.w2.weight", 0, 'H', 'C'},
                     {"ffn_up.weight", "ffn.w3.weight", 0, 'C', 'H'}};

/* The hyper-parameters must describe the tensors the file holds: checked before the model is
 * built, so that a damaged header (one flipped byte) is one line naming the disagreement
 * instead of a model of the wrong size allocated first. */
static int check_block_tensors(const Gguf *g, uint64_t dim, uint64_t layers, uint64_t hidden, uint64_t heads, uint64_t kv_heads, Err *err) {
    uint64_t kv;
    if (__builtin_mul_overflow(kv_heads, dim / heads, &kv)) kv = 0;
    char name[160];
    for (uint64_t i = 0; i < layers; i++)
        for (size_t j = 0; j < sizeof kBlockTensors / sizeof kBlockTensors[0]; j++) {
            snprintf(name, sizeof name, "blk.%llu.%s", (unsigned long long)i, kBlockTensors[j].gguf);
            const GgufTensor *t = gguf_tensor(g, name);
            if (!t) return err_set(err, "%s: tensor %s missing (llama.block_count says %llu blocks)", g->path, name, (unsigned long long)layers);
            uint64_t want[2];
            for (int d = 0; d < 2; d++) {
                char k = d ? kBlockTensors[j].out : kBlockTensors[j].in;
                want[d] = k == 'C' ? dim : k == 'K' ? kv : k == 'H' ? hidden : 1;
            }
            uint64_t have1 = t->ndim > 1 ? t->dims[1] : 1;
            if (t->ndim > 2 || t->dims[0] != want[0] || have1 != want[1])
                return err_set(err, "%s: tensor %s is [%llu, %llu], the hyper-parameters (embedding_length %llu, head_count %llu, "
                                    "head_count_kv %llu, feed_forward_length %llu) say [%llu, %llu]", g->path, name,
                               (unsigned long long)t->dims[0], (unsigned long long)have1, (unsigned long long)dim, (unsigned long long)heads,
                               (unsigned long long)kv_heads, (unsigned long long)hidden, (unsigned long long)want[0], (unsigned long long)want[1]);
        }
    snprintf(name, sizeof name, "blk.%llu.attn_norm.weight", (unsigned long long)layers);
    if (gguf_tensor(g, name))
        return err_set(err, "%s: holds tensor %s but llama.block_count says %llu blocks", g->path, name, (unsigned long long)layers);
    return 0;
}

static int do_import(const char *in, const char *dir, int json, Err *err) {
    Gguf g;
    if (gguf_open(&g, in, err)) return -1;
    Model *m = NULL;
    cJSON *cfg = NULL;
    uint8_t *proto = NULL;
    size_t proto_len = 0;
    int rc = 0;
    char *arch = NULL;
    uint64_t dim = 0, layers = 0, hidden = 0, heads = 0, kv_heads = 0, ctx = 0, rope_dims = 0;
    double eps = 1e-5, rope_base = 10000.0;
    if (gguf_get_str(&g, "general.architecture", &arch, err)) goto done;
    if (strcmp(arch, "llama")) {
        rc = err_set(err, "%s: architecture \"%s\" cannot be imported (llama only)", in, arch);
        goto done;
    }
    if (gguf_get_u64(&g, "llama.embedding_length", &dim, err) || gguf_get_u64(&g, "llama.block_count", &layers, err) ||
        gguf_get_u64(&g, "llama.feed_forward_length", &hidden, err) || gguf_get_u64(&g, "llama.attention.head_count", &heads, err) ||
        gguf_get_u64(&g, "llama.context_length", &ctx, err) ||
        gguf_get_f64(&g, "llama.attention.layer_norm_rms_epsilon", &eps, err)) {
        rc = -1;
        goto done;
    }
    kv_heads = heads;
    if (gguf_find(&g, "llama.attention.head_count_kv") && gguf_get_u64(&g, "llama.attention.head_count_kv", &kv_heads, err)) goto fail;
    if (gguf_find(&g, "llama.rope.freq_base") && gguf_get_f64(&g, "llama.rope.freq_base", &rope_base, err)) goto fail;
    if (heads == 0 || dim % heads) {
        rc = err_set(err, "%s: embedding_length %llu is not a multiple of head_count %llu", in, (unsigned long long)dim, (unsigned long long)heads);
        goto done;
    }
    if (gguf_find(&g, "llama.rope.dimension_count")) {
        if (gguf_get_u64(&g, "llama.rope.dimension_count", &rope_dims, err)) goto fail;
        if (rope_dims != dim / heads) {
            rc = err_set(err, "%s: RoPE on %llu of %llu head dimensions is not supported", in, (unsigned long long)rope_dims,
                         (unsigned long long)(dim / heads));
            goto done;
        }
    }
    const GgufTensor *emb = gguf_tensor(&g, "token_embd.weight"), *outw = gguf_tensor(&g, "output.weight");
    if (!emb || emb->ndim != 2 || emb->dims[0] != dim) {
        rc = err_set(err, "%s: token_embd.weight missing or not [%llu, vocab]", in, (unsigned long long)dim);
        goto done;
    }
    uint64_t vocab = emb->dims[1];
    int tied = !outw || (outw->type == emb->type && outw->numel == emb->numel && outw->data && emb->data &&
                         memcmp(outw->data, emb->data, ggml_row_bytes((int)emb->type, (size_t)emb->dims[0]) * (size_t)emb->dims[1]) == 0);
    if (check_block_tensors(&g, dim, layers, hidden, heads, kv_heads, err)) goto fail;
    cJSON *ms = cJSON_CreateObject();
    cJSON_AddStringToObject(ms, "arch", "llama");
    cJSON_AddNumberToObject(ms, "vocab_size", (double)vocab);
    cJSON_AddNumberToObject(ms, "layers", (double)layers);
    cJSON_AddNumberToObject(ms, "dim", (double)dim);
    cJSON_AddNumberToObject(ms, "heads", (double)heads);
    cJSON_AddNumberToObject(ms, "kv_heads", (double)kv_heads);
    cJSON_AddNumberToObject(ms, "hidden", (double)hidden);
    cJSON_AddNumberToObject(ms, "seq_len", (double)ctx);
    cJSON_AddNumberToObject(ms, "norm_eps", eps);
    cJSON_AddNumberToObject(ms, "rope_base", rope_base);
    cJSON_AddBoolToObject(ms, "tie_embeddings", tied);
    rc = model_create(&m, ms, 0, err);
    cJSON_Delete(ms);
    if (rc) { /* the hyper-parameters are out of the model's ranges */
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        err_set(err, "%s: %s", in, msg);
        goto done;
    }
    size_t D = (size_t)(dim / heads);
    char name[128], tname[128];
    if (load_tensor(&g, "token_embd.weight", params_find(&m->ps, "tok_emb.weight"), 0, err)) goto fail;
    if (load_tensor(&g, "output_norm.weight", params_find(&m->ps, "norm.weight"), 0, err)) goto fail;
    if (!tied && load_tensor(&g, "output.weight", params_find(&m->ps, "output.weight"), 0, err)) goto fail;
    for (uint64_t i = 0; i < layers; i++)
        for (size_t j = 0; j < sizeof kBlockTensors / sizeof kBlockTensors[0]; j++) {
            snprintf(name, sizeof name, "blk.%llu.%s", (unsigned long long)i, kBlockTensors[j].gguf);
            snprintf(tname, sizeof tname, "blocks.%llu.%s", (unsigned long long)i, kBlockTensors[j].tern);
            if (load_tensor(&g, name, params_find(&m->ps, tname), kBlockTensors[j].rope ? D : 0, err)) goto fail;
        }
    if (gguf_sentencepiece_model(&g, &proto, &proto_len, err)) goto fail;

    if (make_dirs(dir, err)) goto fail;
    char tok_path[1100], ck_path[1100];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.model", dir);
    snprintf(ck_path, sizeof ck_path, "%s/model.h5", dir);
    if (write_file_atomic(tok_path, proto, proto_len, err)) goto fail;
    cfg = cJSON_CreateObject();
    const char *base = strrchr(dir, '/');
    cJSON_AddStringToObject(cfg, "name", base && base[1] ? base + 1 : dir);
    cJSON_AddNumberToObject(cfg, "seed", 0);
    cJSON_AddItemToObject(cfg, "model", cJSON_Duplicate(m->config, 1));
    cJSON *data = cJSON_AddObjectToObject(cfg, "data");
    cJSON_AddNumberToObject(data, "seq_len", (double)ctx);
    cJSON_AddStringToObject(data, "tokenizer", tok_path);
    cJSON *src = cJSON_AddObjectToObject(cfg, "imported_from");
    cJSON_AddStringToObject(src, "gguf", in);
    char *gname = NULL;
    Err e2 = {0};
    if (!gguf_get_str(&g, "general.name", &gname, &e2)) cJSON_AddStringToObject(src, "name", gname);
    free(gname);
    char *text = cJSON_PrintUnformatted(cfg);
    CheckpointData cd = {.ps = &m->ps, .bs = &m->bs, .total = m->ps.total, .config_json = text};
    rc = checkpoint_save(ck_path, &cd, err);
    cJSON_free(text);
    if (rc) goto done;
    size_t nparams = model_num_params(m);
    if (json) {
        printf("{\"checkpoint\":\"%s\",\"tokenizer\":\"%s\",\"params\":%zu,\"vocab_size\":%llu,\"layers\":%llu,\"dim\":%llu,"
               "\"tied\":%s}\n", ck_path, tok_path, nparams, (unsigned long long)vocab, (unsigned long long)layers,
               (unsigned long long)dim, tied ? "true" : "false");
    }
    fprintf(stderr, "tern import: %s -> %s (llama, %zu parameters, %llu x %llu, vocab %llu, context %llu%s) + %s\n", in, ck_path,
            nparams, (unsigned long long)layers, (unsigned long long)dim, (unsigned long long)vocab, (unsigned long long)ctx,
            tied ? ", tied head" : "", tok_path);
    goto done;
fail:
    rc = -1;
done:
    free(arch);
    free(proto);
    cJSON_Delete(cfg);
    model_free(m);
    gguf_close(&g);
    return rc;
}

int cmd_import(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *v;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if ((v = cli_value(argc, argv, &i, "out"))) {
            out = v;
        } else if (cli_is_flag(argv[i], "json")) {
            json = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "tern import: unknown option %s (see --help)\n", argv[i]);
            return 2;
        } else if (!in) {
            in = argv[i];
        } else {
            fprintf(stderr, "tern import: more than one input (%s)\n", argv[i]);
            return 2;
        }
    }
    if (!in || !out) {
        usage(stderr);
        return 2;
    }
    Err err = {0};
    if (do_import(in, out, json, &err)) {
        fprintf(stderr, "tern import: %s\n", err.msg);
        return 1;
    }
    return 0;
}
