/* tern export --format gguf --ckpt CKPT -o model.gguf [--quant f32|f16|q8_0|tq2_0|tq1_0]: a
 * checkpoint of the `llama` preset (imported teachers, llama-shaped students) as a GGUF v3 file
 * that llama.cpp runs, with its SentencePiece tokenizer embedded the way llama.cpp reads one
 * (tokenizer.ggml.model "llama": tokens, scores, token types, special ids). docs/GGUF.md.
 *
 * The inverse of `tern import` (train/cmd_import.c): tensors keep GGUF's names, and the rows of
 * Wq and Wk go back to Meta's adjacent-pair RoPE layout — within each head of D rows, GGUF row 2i
 * is tern row i and GGUF row 2i + 1 is minus tern row i + D/2 (import's permutation inverted).
 *
 * Types: f32 writes every tensor in float32; f16 and q8_0 write the matrices in that type (q8_0
 * falls back to f16 for a matrix whose rows are not a multiple of 32, as ggml requires) and the
 * norm gains in float32. tq2_0 / tq1_0 write the matrices that the checkpoint's ternary
 * quantization plan (model/qat.h) quantizes as those types — the same trits and scales tern's
 * own ternary evaluation uses, so the mapping is exact up to the fp16 rounding of the scale
 * (none when quant.scale_dtype is fp16) — and the other tensors as the plan stores them (f16 or
 * f32). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/gguf_write.h"
#include "data/sentencepiece.h"
#include "kernels/ggml_blocks.h"
#include "kernels/quant.h"
#include "model/qat.h"
#include "train/cli.h"
#include "train/model_io.h"

typedef enum GgufQuant { GQ_F32, GQ_F16, GQ_Q8_0, GQ_TQ2_0, GQ_TQ1_0 } GgufQuant;
static const char *const kQuantNames[] = {"f32", "f16", "q8_0", "tq2_0", "tq1_0"};

typedef struct LlamaDims {
    size_t vocab, layers, C, heads, kv_heads, D, hidden, ctx;
    double eps, rope_base;
    int tied;
} LlamaDims;

static void usage(FILE *f) {
    fprintf(f, "usage: tern export --format gguf --ckpt CKPT.h5 -o OUT.gguf [options]\n"
               "  Writes a llama-preset checkpoint as a GGUF v3 file for llama.cpp (docs/GGUF.md).\n"
               "  --quant T        f32 (default) | f16 | q8_0 | tq2_0 | tq1_0; tq2_0 / tq1_0 need a checkpoint\n"
               "                   trained with ternary QAT (quant.weights = ternary, groups of 256 or 0)\n"
               "  --tokenizer F    the SentencePiece model to embed (default: the checkpoint's data.tokenizer)\n"
               "  --ema            export the checkpoint's EMA weights when it has them\n"
               "  --json           one JSON object on stdout\n");
}

static size_t cfg_size(const cJSON *c, const char *key, size_t dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsNumber(v) ? (size_t)v->valuedouble : dflt;
}

/* The llama preset with nothing llama.cpp's llama graph lacks (a key set away from the preset). */
static int read_dims(const Model *m, LlamaDims *d, Err *err) {
    const cJSON *c = m->config;
    static const char *const kOff[] = {"skips", "emb_norm", "qk_norm", "q_gain", "resid_mix", "branch_scales", "token_shift"};
    for (size_t i = 0; i < sizeof kOff / sizeof kOff[0]; i++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, kOff[i])))
            return err_set(err, "model.%s is on: llama.cpp's llama architecture has no such part (GGUF export needs it off)", kOff[i]);
    if (cfg_size(c, "softcap", 0) || cfg_size(c, "bigram_rows", 0))
        return err_set(err, "model.%s is set: llama.cpp's llama architecture has no such part (GGUF export needs it 0)",
                       cfg_size(c, "softcap", 0) ? "softcap" : "bigram_rows");
    d->vocab = m->vocab;
    d->layers = cfg_size(c, "layers", 0);
    d->C = cfg_size(c, "dim", 0);
    d->heads = cfg_size(c, "heads", 0);
    d->kv_heads = cfg_size(c, "kv_heads", d->heads);
    d->hidden = cfg_size(c, "hidden", 0);
    d->ctx = cfg_size(c, "seq_len", 0);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "norm_eps");
    d->eps = cJSON_IsNumber(v) ? v->valuedouble : 1e-5;
    v = cJSON_GetObjectItemCaseSensitive(c, "rope_base");
    d->rope_base = cJSON_IsNumber(v) ? v->valuedouble : 10000.0;
    d->tied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "tie_embeddings"));
    if (!d->layers || !d->C || !d->heads || d->C % d->heads || !d->hidden)
        return err_set(err, "the checkpoint's model section lacks layers / dim / heads / hidden");
    d->D = d->C / d->heads;
    return 0;
}

/* ---- the tokenizer: a SentencePiece BPE model, as llama.cpp's "llama" vocabulary */
static int put_tokenizer(GgufWriter *w, const char *path, size_t vocab, Err *err) {
    if (!strcmp(path, "byte"))
        return err_set(err, "the byte tokenizer cannot be embedded: llama.cpp's \"llama\" vocabulary is a SentencePiece model "
                            "(--tokenizer names one)");
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "%s: cannot open the tokenizer (--tokenizer names another)", path);
    GgufBuf b = {0};
    uint8_t chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) {
        b.p = xrealloc(b.p, b.n + r);
        memcpy(b.p + b.n, chunk, r);
        b.n += r;
    }
    fclose(f);
    SpModel *sp = NULL;
    int rc = sp_model_parse(&sp, b.p, b.n, err);
    xfree(b.p);
    if (rc) return err_prefix(err, "only a SentencePiece tokenizer can be embedded in a GGUF");
    const SpTrainerSpec *ts = sp_model_trainer_spec(sp);
    const SpNormalizerSpec *ns = sp_model_normalizer_spec(sp);
    size_t n = sp_model_num_pieces(sp);
    if (ts->model_type != SP_BPE || n > vocab) {
        sp_model_free(sp);
        return ts->model_type != SP_BPE
                   ? err_set(err, "%s: a SentencePiece %s model; llama.cpp's \"llama\" tokenizer reproduces BPE models only", path,
                             ts->model_type == SP_UNIGRAM ? "unigram" : "word/char")
                   : err_set(err, "%s: the tokenizer has %zu pieces but the model only %zu ids", path, n, vocab);
    }
    /* ids the tokenizer does not use (a vocabulary padded for speed) become unused tokens */
    const char **s = xmalloc(vocab * sizeof(char *));
    size_t *len = xmalloc(vocab * sizeof(size_t));
    float *score = xmalloc(vocab * sizeof(float));
    int32_t *type = xmalloc(vocab * sizeof(int32_t));
    char *pad = xmalloc((vocab - n) * 24 + 1);
    for (size_t i = 0; i < vocab; i++) {
        if (i < n) {
            const SpPiece *p = sp_model_piece(sp, (int32_t)i);
            s[i] = p->text, len[i] = p->len, score[i] = p->score, type[i] = (int32_t)p->type;
        } else {
            char *q = pad + (i - n) * 24;
            len[i] = (size_t)snprintf(q, 24, "<tern_unused_%zu>", i);
            s[i] = q, score[i] = -1e9f, type[i] = PIECE_UNUSED;
        }
    }
    gguf_put_str(w, "tokenizer.ggml.model", "llama");
    gguf_put_arr_str(w, "tokenizer.ggml.tokens", s, len, vocab);
    gguf_put_arr_f32(w, "tokenizer.ggml.scores", score, vocab);
    gguf_put_arr_i32(w, "tokenizer.ggml.token_type", type, vocab);
    int32_t ids[4] = {sp_model_bos(sp), sp_model_eos(sp), sp_model_unk(sp), sp_model_pad(sp)};
    static const char *const kIdKeys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0) gguf_put_u32(w, kIdKeys[k], (uint32_t)ids[k]);
    gguf_put_bool(w, "tokenizer.ggml.add_bos_token", ids[0] >= 0);
    gguf_put_bool(w, "tokenizer.ggml.add_eos_token", 0);
    gguf_put_bool(w, "tokenizer.ggml.add_space_prefix", ns->add_dummy_prefix);
    xfree(s), xfree(len), xfree(score), xfree(type), xfree(pad);
    sp_model_free(sp);
    return 0;
}

/* ---- tensors */

/* GGUF row of tern row r for Wq / Wk (D rows per head): returns the source row and its sign. */
static size_t rope_src_row(size_t r, size_t D, float *sign) {
    size_t h = r / D, j = r % D;
    *sign = (j & 1) ? -1.0f : 1.0f;
    return h * D + ((j & 1) ? j / 2 + D / 2 : j / 2);
}

/* A ternary matrix as TQ2_0 / TQ1_0 rows at out: the plan's own trits and scales (computed on
 * tern's row order, as its evaluation does), moved with their rows (and negated with them) into
 * GGUF order, one scale per 256-block. Refuses groups that straddle the blocks. */
static int pack_ternary(uint8_t *out, const char *name, const Tensor *t, size_t rope, int type, const QuantSpec *s,
                        int *ternary_inexact, Err *err) {
    size_t rows = t->shape[0], cols = t->shape[1], G = s->group;
    if (cols % GGML_QK_K || (G && (G % GGML_QK_K || cols % G)))
        return err_set(err, "%s: %zu x %zu with ternary groups of %zu: %s needs rows that are a multiple of 256 and one scale "
                            "per 256-block (quant.group 0, 256 or a multiple of 256 dividing the row)",
                       name, rows, cols, G, type == GGML_TYPE_TQ2_0 ? "tq2_0" : "tq1_0");
    int8_t *codes = xmalloc(t->numel);
    float *scales = xmalloc(quant_num_scales(s, rows, cols) * sizeof(float));
    quantize_weights(codes, scales, t->data, rows, cols, s);
    size_t nb = cols / GGML_QK_K;
    int8_t *crow = xmalloc(cols);
    float *bs = xmalloc(nb * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        float sign = 1.0f;
        size_t src = rope ? rope_src_row(r, rope, &sign) : r;
        for (size_t c = 0; c < cols; c++) crow[c] = (int8_t)(sign < 0 ? -codes[src * cols + c] : codes[src * cols + c]);
        for (size_t b = 0; b < nb; b++) {
            bs[b] = G ? scales[src * (cols / G) + b * GGML_QK_K / G] : scales[0];
            if (f16_to_f32(f32_to_f16(bs[b])) != bs[b]) *ternary_inexact = 1;
        }
        uint8_t *dst = out + r * ggml_row_bytes(type, cols);
        if (type == GGML_TYPE_TQ2_0) ggml_pack_tq2_0(dst, crow, bs, cols);
        else ggml_pack_tq1_0(dst, crow, bs, cols);
    }
    xfree(codes), xfree(scales), xfree(crow), xfree(bs);
    return 0;
}

/* One tensor in the chosen type. w: tern's values [rows, cols]; rope: D for Wq / Wk, else 0;
 * pp: its plan (tq types only). Returns the GGUF type written, or -1 with err set. */
static int add_tensor(GgufWriter *w, const char *name, const Tensor *t, size_t rope, GgufQuant q, const ParamPlan *pp,
                      int *ternary_inexact, Err *err) {
    size_t rows = t->ndim == 2 ? t->shape[0] : 1, cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
    uint64_t dims[2] = {cols, rows};
    int type = GGML_TYPE_F32;
    if (t->ndim == 2) {
        if (q == GQ_F16) type = GGML_TYPE_F16;
        else if (q == GQ_Q8_0) type = cols % GGML_QK8_0 ? GGML_TYPE_F16 : GGML_TYPE_Q8_0;
        else if (q == GQ_TQ2_0 || q == GQ_TQ1_0) {
            if (pp->store == STORE_F16) type = GGML_TYPE_F16;
            else if (pp->store == STORE_QUANT) type = q == GQ_TQ2_0 ? GGML_TYPE_TQ2_0 : GGML_TYPE_TQ1_0;
        }
    }
    /* rows in GGUF order (Wq / Wk permuted back to Meta's RoPE layout) */
    float *x = xmalloc(t->numel * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        float sign = 1.0f;
        size_t src = rope ? rope_src_row(r, rope, &sign) : r;
        for (size_t c = 0; c < cols; c++) x[r * cols + c] = sign * t->data[src * cols + c];
    }
    size_t bytes = ggml_row_bytes(type, cols) * rows;
    uint8_t *out = xmalloc(bytes ? bytes : 1);
    if (type == GGML_TYPE_F32) {
        memcpy(out, x, bytes);
    } else if (type == GGML_TYPE_F16) {
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h = f32_to_f16(x[i]);
            memcpy(out + 2 * i, &h, 2);
        }
    } else if (type == GGML_TYPE_Q8_0) {
        for (size_t r = 0; r < rows; r++) ggml_quantize_q8_0(out + r * ggml_row_bytes(type, cols), x + r * cols, cols);
    } else if (pack_ternary(out, name, t, rope, type, &pp->spec, ternary_inexact, err)) {
        xfree(x), xfree(out);
        return -1;
    }
    xfree(x);
    gguf_add_tensor(w, name, t->ndim == 2 ? 2 : 1, dims, (uint32_t)type, out, bytes);
    return type;
}

typedef struct TensorMap {
    const char *tern, *gguf;
    int rope;
} TensorMap;

static const TensorMap kBlock[] = {{"attn_norm.weight", "attn_norm.weight", 0}, {"attn.wq.weight", "attn_q.weight", 1},
                                   {"attn.wk.weight", "attn_k.weight", 1},      {"attn.wv.weight", "attn_v.weight", 0},
                                   {"attn.wo.weight", "attn_output.weight", 0}, {"ffn_norm.weight", "ffn_norm.weight", 0},
                                   {"ffn.w1.weight", "ffn_gate.weight", 0},     {"ffn.w2.weight", "ffn_down.weight", 0},
                                   {"ffn.w3.weight", "ffn_up.weight", 0}};

typedef struct ExportStats {
    size_t count[64];
    int ternary_inexact, nternary;
    size_t bytes;
} ExportStats;

/* A tern parameter by name, or a norm gain of ones when the model has none (norm_gain off). */
static int add_named(GgufWriter *w, const Model *m, const char *tname, const char *gname, size_t rope, GgufQuant q, ExportStats *st,
                     unsigned char *used, Err *err) {
    const Tensor *t = params_find(&m->ps, tname);
    Tensor ones = {0};
    if (!t) {
        if (!strstr(tname, "norm")) return err_set(err, "tensor %s missing from the checkpoint", tname);
        size_t C = cfg_size(m->config, "dim", 0);
        ones.ndim = 1, ones.shape[0] = C, ones.numel = C;
        ones.data = xmalloc(C * sizeof(float));
        for (size_t i = 0; i < C; i++) ones.data[i] = 1.0f;
        t = &ones;
    }
    long idx = t == &ones ? -1 : params_index(&m->ps, tname);
    if (idx >= 0) used[idx] = 1;
    const ParamPlan *pp = idx >= 0 && m->qplan ? &m->qplan->p[idx] : NULL;
    ParamPlan f32 = {.store = STORE_F32};
    if (!pp) pp = &f32;
    if ((q == GQ_TQ2_0 || q == GQ_TQ1_0) && pp->store == STORE_QUANT && pp->spec.kind != QUANT_TERNARY)
        return err_set(err, "%s: the quantization plan stores it as int%d; %s needs ternary (quant.weights = ternary)", tname,
                       pp->spec.bits, kQuantNames[q]);
    int type = add_tensor(w, gname, t, rope, q, pp, &st->ternary_inexact, err);
    xfree(ones.data);
    if (type < 0) return -1;
    st->count[type]++;
    st->nternary += type == GGML_TYPE_TQ1_0 || type == GGML_TYPE_TQ2_0;
    return 0;
}

static int add_tensors(GgufWriter *w, const Model *m, const LlamaDims *d, GgufQuant q, ExportStats *st, Err *err) {
    unsigned char *used = xcalloc(m->ps.n ? m->ps.n : 1, 1);
    int rc = add_named(w, m, "tok_emb.weight", "token_embd.weight", 0, q, st, used, err);
    if (!rc) rc = add_named(w, m, "norm.weight", "output_norm.weight", 0, q, st, used, err);
    if (!rc && !d->tied) rc = add_named(w, m, "output.weight", "output.weight", 0, q, st, used, err);
    char tn[160], gn[160];
    for (size_t i = 0; i < d->layers && !rc; i++)
        for (size_t j = 0; j < sizeof kBlock / sizeof kBlock[0] && !rc; j++) {
            snprintf(tn, sizeof tn, "blocks.%zu.%s", i, kBlock[j].tern);
            snprintf(gn, sizeof gn, "blk.%zu.%s", i, kBlock[j].gguf);
            rc = add_named(w, m, tn, gn, kBlock[j].rope ? d->D : 0, q, st, used, err);
        }
    for (size_t i = 0; i < m->ps.n && !rc; i++)
        if (!used[i])
            rc = err_set(err, "the checkpoint holds %s, which llama.cpp's llama architecture has no place for", m->ps.t[i]->name);
    xfree(used);
    return rc;
}

static void put_hparams(GgufWriter *w, const LlamaDims *d, const char *name) {
    gguf_put_str(w, "general.architecture", "llama");
    gguf_put_str(w, "general.name", name);
    gguf_put_u32(w, "llama.vocab_size", (uint32_t)d->vocab);
    gguf_put_u32(w, "llama.context_length", (uint32_t)d->ctx);
    gguf_put_u32(w, "llama.embedding_length", (uint32_t)d->C);
    gguf_put_u32(w, "llama.block_count", (uint32_t)d->layers);
    gguf_put_u32(w, "llama.feed_forward_length", (uint32_t)d->hidden);
    gguf_put_u32(w, "llama.attention.head_count", (uint32_t)d->heads);
    gguf_put_u32(w, "llama.attention.head_count_kv", (uint32_t)d->kv_heads);
    gguf_put_u32(w, "llama.rope.dimension_count", (uint32_t)d->D);
    gguf_put_f32(w, "llama.rope.freq_base", (float)d->rope_base);
    gguf_put_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)d->eps);
}

typedef struct GgufArgs {
    const char *ckpt, *out, *tokenizer;
    GgufQuant quant;
    int ema, json;
} GgufArgs;

static int parse_args(int argc, char **argv, GgufArgs *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "format"))) {
            if (strcmp(v, "gguf")) return fprintf(stderr, "tern export: --format %s: gguf expected here\n", v), 2;
        } else if ((v = cli_value(argc, argv, &i, "ckpt"))) a->ckpt = v;
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) a->out = argv[++i];
        else if ((v = cli_value(argc, argv, &i, "out"))) a->out = v;
        else if ((v = cli_value(argc, argv, &i, "tokenizer"))) a->tokenizer = v;
        else if ((v = cli_value(argc, argv, &i, "quant"))) {
            size_t k = 0;
            while (k < 5 && strcmp(v, kQuantNames[k])) k++;
            if (k == 5) return fprintf(stderr, "tern export: --quant %s: GGUF types are f32, f16, q8_0, tq2_0, tq1_0\n", v), 2;
            a->quant = (GgufQuant)k;
        } else if (cli_is_flag(argv[i], "ema")) a->ema = 1;
        else if (cli_is_flag(argv[i], "json")) a->json = 1;
        else return fprintf(stderr, "tern export: %s is not an option of --format gguf (see --format gguf --help)\n", argv[i]), 2;
    }
    if (!a->ckpt || !a->out) {
        usage(stderr);
        return 2;
    }
    return -1; /* go on */
}

static void report(const GgufArgs *a, const LlamaDims *d, const ExportStats *st, size_t bytes) {
    static const struct { int type; const char *name; } kTypes[] = {
        {GGML_TYPE_F32, "f32"}, {GGML_TYPE_F16, "f16"}, {GGML_TYPE_Q8_0, "q8_0"}, {GGML_TYPE_TQ2_0, "tq2_0"}, {GGML_TYPE_TQ1_0, "tq1_0"}};
    char types[160] = "";
    size_t o = 0;
    for (size_t k = 0; k < 5; k++)
        if (st->count[kTypes[k].type])
            o += (size_t)snprintf(types + o, sizeof types - o, "%s%s %zu", o ? ", " : "", kTypes[k].name, st->count[kTypes[k].type]);
    if (a->json) {
        printf("{\"gguf\":\"%s\",\"checkpoint\":\"%s\",\"quant\":\"%s\",\"bytes\":%zu,\"layers\":%zu,\"dim\":%zu,\"vocab_size\":%zu,"
               "\"ternary_tensors\":%d,\"ternary_exact\":%s}\n",
               a->out, a->ckpt, kQuantNames[a->quant], bytes, d->layers, d->C, d->vocab, st->nternary,
               st->ternary_inexact ? "false" : "true");
    }
    fprintf(stderr, "tern export: %s -> %s (GGUF v3, llama, %zu x %zu, vocab %zu; tensors: %s; %zu bytes)\n", a->ckpt, a->out,
            d->layers, d->C, d->vocab, types, bytes);
    if (st->ternary_inexact)
        fprintf(stderr, "tern export: note: ternary scales were rounded to fp16 (train with quant.scale_dtype = fp16 for an exact "
                        "mapping)\n");
}

int cmd_export_gguf(int argc, char **argv) {
    GgufArgs a;
    int prc = parse_args(argc, argv, &a);
    if (prc >= 0) return prc;
    Err err = {0};
    Model *m = NULL;
    cJSON *cfg = NULL;
    GgufWriter w;
    gguf_writer_init(&w);
    ExportStats st;
    memset(&st, 0, sizeof st);
    LlamaDims d;
    memset(&d, 0, sizeof d);
    int status = 1;
    if (model_load_checkpoint(a.ckpt, a.ema, &m, &cfg, &err)) goto out;
    if (strcmp(m->arch, "llama")) {
        err_set(&err, "%s: architecture \"%s\" cannot be exported to GGUF: only the llama preset (model.arch = \"llama\": imported "
                      "teachers and llama-shaped students) runs in llama.cpp; use the tern format (tern export without --format) for %s",
                a.ckpt, m->arch, m->arch);
        goto out;
    }
    if (read_dims(m, &d, &err)) goto out;
    if (a.quant == GQ_TQ2_0 || a.quant == GQ_TQ1_0) {
        if (quant_plan_attach(m, cJSON_GetObjectItemCaseSensitive(cfg, "quant"), cJSON_GetObjectItemCaseSensitive(cfg, "export"), NULL,
                              NULL, &err))
            goto out;
        const ParamPlan *first = NULL;
        int any = 0;
        for (size_t i = 0; i < m->qplan->n; i++) {
            const ParamPlan *pp = &m->qplan->p[i];
            if (pp->store == STORE_QUANT && !first) first = pp;
            any |= pp->store == STORE_QUANT && pp->spec.kind == QUANT_TERNARY;
        }
        if (!any) {
            char buf[48];
            err_set(&err, "%s: --quant %s needs a checkpoint trained with ternary QAT (quant.weights = ternary); its quant plan "
                          "stores %s", a.ckpt, kQuantNames[a.quant], first ? store_name(first, buf, sizeof buf) : "no tensor quantized");
            goto out;
        }
    }
    if (!a.tokenizer) {
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "data"), "tokenizer");
        if (cJSON_IsString(tp) && tp->valuestring[0]) a.tokenizer = tp->valuestring;
    }
    if (!a.tokenizer) {
        err_set(&err, "%s has no data.tokenizer: name its SentencePiece model with --tokenizer (llama.cpp needs the vocabulary)", a.ckpt);
        goto out;
    }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(cfg, "name");
    put_hparams(&w, &d, cJSON_IsString(nm) ? nm->valuestring : "tern");
    if (put_tokenizer(&w, a.tokenizer, d.vocab, &err)) goto out;
    if (add_tensors(&w, m, &d, a.quant, &st, &err)) goto out;
    uint8_t *bytes = NULL;
    size_t n = 0;
    gguf_writer_bytes(&w, &bytes, &n);
    int wrc = write_file_atomic(a.out, bytes, n, &err);
    xfree(bytes);
    if (wrc) goto out;
    report(&a, &d, &st, n);
    status = 0;
out:
    if (status) fprintf(stderr, "tern export: %s\n", err.msg);
    gguf_writer_free(&w);
    model_free(m);
    cJSON_Delete(cfg);
    return status;
}
