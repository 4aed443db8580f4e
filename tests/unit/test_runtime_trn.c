/* The TRN hybrid (the trn_hybrid preset, openai/parameter-golf PR #669) through export and the
 * runtime, without training: random hybrids in several configurations (int5 bit-packed and one
 * code per byte, ternary and int5 with int8 activations, per-layer int4/int6/int8 rules, fp16 /
 * fp32 passthrough, layouts with and without attention, odd depth with U-Net skips, token shift
 * and BigramHash on and off, W_res widths that take the padded-row path) are exported in memory
 * with export/writer.c and loaded by the runtime's stack and block kinds. Checked:
 *   - the runtime's logits at every position of a 150-token window (batched prefill over three
 *     chunks) against the trainer's forward "as exported" (fake quantization on, fp16-stored
 *     tensors rounded: what `tern eval --quantized` computes);
 *   - decode (one token at a time: the recurrent state, token shift, BigramHash's previous token
 *     and the KV caches carried in the session) and uneven feeds give the prefill's logits, and
 *     a reset session starts afresh;
 *   - generation is deterministic per seed, also across a context shift;
 *   - damaged key/values (kinds, layer counts, shapes, types, values), header fields and tensor
 *     flags are refused with one line.
 * A small artifact is written to argv[1] (when given) for the fuzzer's seed corpus. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check.h"
#include "rt_compare.h"
#include "export/writer.h"
#include "kernels/blas_core.h"
#include "kernels/rng.h"
#include "model/model.h"
#include "model/qat.h"
#include "runtime/rt_internal.h"

typedef struct Cfg {
    const char *name, *model, *quant, *exp;
    int int_storage;   /* ExportIntStorage */
    const char *fixture;
} Cfg;

static const Cfg kCfgs[] = {
    {"int5 bit-packed, TAT (skips), token shift, bigram, K 16 (W_res padded rows)",
     "{\"vocab_size\":300,\"layout\":\"TAT\",\"dim\":128,\"heads\":2,\"kv_heads\":1,\"seq_len\":160,\"oscillators\":16,"
     "\"bigram_rows\":64,\"bigram_dim\":32}",
     "{\"weights\":\"int5\",\"min_numel\":1000}", "{}", EXPORT_INT_BITS, "trn.tern"},
    {"int5 one code per byte (the TRN default), same model",
     "{\"vocab_size\":300,\"layout\":\"TAT\",\"dim\":128,\"heads\":2,\"kv_heads\":1,\"seq_len\":160,\"oscillators\":16,"
     "\"bigram_rows\":64,\"bigram_dim\":32}",
     "{\"weights\":\"int5\",\"min_numel\":1000}", "{}", EXPORT_INT_AUTO, NULL},
    {"ternary 2-bit g128 + int8 act, TTA, untied, relu2, softcap 15, no token shift, no bigram",
     "{\"vocab_size\":320,\"layout\":\"TTA\",\"dim\":128,\"heads\":2,\"kv_heads\":2,\"seq_len\":160,\"oscillators\":32,"
     "\"tie_embeddings\":false,\"mlp_act\":\"relu2\",\"softcap\":15,\"token_shift\":false,\"bigram_rows\":0}",
     "{\"act_bits\":8,\"weights\":\"ternary\",\"min_numel\":1000,\"group\":128,\"embed\":false}", "{}", EXPORT_INT_AUTO, NULL},
    {"int5 + int8 act blocks of 128, fp16 scales, ATTA without skips, K 48",
     "{\"vocab_size\":260,\"layout\":\"ATTA\",\"dim\":128,\"heads\":4,\"kv_heads\":2,\"seq_len\":160,\"oscillators\":48,"
     "\"skips\":false,\"bigram_rows\":100,\"bigram_dim\":16,\"swiglu_hidden\":128}",
     "{\"act_bits\":8,\"weights\":\"int5\",\"min_numel\":1000,\"act_block\":128,\"scale_dtype\":\"fp16\"}", "{}", EXPORT_INT_BITS, NULL},
    {"rules: int4 proj / int6 W_res / int8 + int8 act gate_up, bytes, TATTA, fp16 embedding",
     "{\"vocab_size\":280,\"layout\":\"TATTA\",\"dim\":128,\"heads\":2,\"kv_heads\":1,\"seq_len\":160,\"oscillators\":24,"
     "\"bigram_rows\":50,\"bigram_dim\":64,\"norm_eps\":1e-5}",
     "{\"weights\":\"int6\",\"min_numel\":1000,\"embed\":false,\"rules\":[{\"match\":\"*proj.proj.weight\",\"weights\":\"int4\"},"
     "{\"match\":\"*gate_up*\",\"act_bits\":8,\"weights\":\"int8\"}]}",
     "{}", EXPORT_INT_BYTES, NULL},
    {"no quantization, fp32 passthrough, TRN blocks only (T), K 8",
     "{\"vocab_size\":270,\"layout\":\"T\",\"dim\":64,\"heads\":2,\"kv_heads\":1,\"seq_len\":160,\"oscillators\":8,"
     "\"bigram_rows\":32,\"bigram_dim\":16,\"swiglu_hidden\":96}",
     "{\"weights\":\"none\"}", "{\"passthrough\":\"fp32\"}", EXPORT_INT_AUTO, NULL},
};

static void randomize(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < m->ps.n; i++) {
        Tensor *t = m->ps.t[i];
        const char *n = t->name;
        size_t cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
        if (strstr(n, "q_gain")) rng_fill_uniform(&r, t->data, t->numel, 1.0f, 2.0f);
        else if (strstr(n, "resid_mix")) rng_fill_uniform(&r, t->data, t->numel, 0.0f, 1.0f);
        else if (strstr(n, "scale") || strstr(n, "skip_weights")) rng_fill_uniform(&r, t->data, t->numel, 0.5f, 1.5f);
        else if (strstr(n, "lambda_pcg")) rng_fill_uniform(&r, t->data, t->numel, 0.5f, 2.0f);
        else if (strstr(n, "omega_base")) rng_fill_uniform(&r, t->data, t->numel, 0.05f, 2.5f);
        else if (t->ndim == 1) rng_fill_normal(&r, t->data, t->numel, 0.0f, 1.0f); /* biases, token_shift_mu */
        else if (strstr(n, "tok_emb") || strstr(n, "lm_head") || strstr(n, "bigram.embed")) rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.5f);
        else rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.7f / sqrtf((float)cols));
    }
}

/* Feeds ids in pieces of the given lengths (cycled); logits of every position into out. */
static int feed_pieces(TrtSession *s, const int32_t *ids, size_t T, const size_t *len, size_t nlen, float *out, size_t V) {
    char err[256];
    size_t i = 0, k = 0;
    while (i < T) {
        size_t n = len[k++ % nlen];
        if (n > T - i) n = T - i;
        if (trt_session_observe(s, ids + i, n, out + i * V, err, sizeof err)) {
            printf("    observe: %s\n", err);
            return -1;
        }
        i += n;
    }
    return 0;
}

static void test_generation(const TrtModel *rm) {
    int32_t a[40], b[40], c[40], p[3] = {1, 2, 3};
    uint64_t seeds[3] = {42, 42, 43};
    int32_t *outs[3] = {a, b, c};
    TrtSampling sp = {3.0f, 0.98f, 1.1f, 64, 0}; /* hot: a random model is peaky */
    for (int k = 0; k < 3; k++) {
        TrtSessionOptions so = {seeds[k], 1, 0};
        TrtSession *s = NULL;
        char err[256];
        size_t n = 0;
        int rc = trt_session_new(rm, &so, &s, err, sizeof err);
        if (!rc) rc = trt_session_observe(s, p, 3, NULL, err, sizeof err);
        if (!rc) rc = trt_generate(s, 40, &sp, NULL, NULL, outs[k], &n, err, sizeof err);
        CHECK(!rc && n == 40, "generation with seed %llu: %s", (unsigned long long)seeds[k], rc ? err : "");
        trt_session_free(s);
    }
    CHECK(!memcmp(a, b, sizeof a), "same seed -> same tokens");
    CHECK(memcmp(a, c, sizeof a) != 0, "another seed -> other tokens");
    /* a context of 16: 40 greedy tokens shift the context twice; twice the same */
    int32_t g1[40], g2[40];
    int32_t *gs[2] = {g1, g2};
    for (int k = 0; k < 2; k++) {
        TrtSessionOptions so = {7, 1, 16};
        TrtSession *s = NULL;
        char err[256];
        size_t n = 0;
        TrtSampling gr = {0.0f, 1.0f, 1.0f, 64, 0};
        int rc = trt_session_new(rm, &so, &s, err, sizeof err);
        if (!rc) rc = trt_session_observe(s, p, 3, NULL, err, sizeof err);
        if (!rc) rc = trt_generate(s, 40, &gr, NULL, NULL, gs[k], &n, err, sizeof err);
        CHECK(!rc && n == 40 && trt_session_length(s) <= 16, "generation past a full context: %s", rc ? err : "");
        trt_session_free(s);
    }
    CHECK(!memcmp(g1, g2, sizeof g1), "greedy generation through context shifts is deterministic");
    printf("  generation: seed 42 twice identical, seed 43 differs; 40 greedy tokens in a context of 16 repeat\n");
}

/* Offset of key's value in an encoded key/value section (the bytes after its type), 0 if absent. */
static size_t kv_value_off(const uint8_t *p, size_t len, const char *key, uint32_t *type) {
    size_t o = 4, n = tern_rd_u32(p);
    for (size_t i = 0; i < n && o + 4 <= len; i++) {
        size_t kl = tern_rd_u32(p + o);
        int hit = kl == strlen(key) && !memcmp(p + o + 4, key, kl);
        o += 4 + kl;
        uint32_t t = tern_rd_u32(p + o);
        o += 4;
        if (hit) {
            *type = t;
            return o;
        }
        o += t == TERN_KV_STR ? 4 + tern_rd_u32(p + o) : 4;
    }
    return 0;
}

/* Damaged key/values, header fields and tensor flags: refused with one line naming the artifact. */
static void test_damage(const uint8_t *art, size_t alen) {
    size_t clen = (size_t)ZSTD_getFrameContentSize(art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE);
    uint8_t *c = malloc(clen), *b = malloc(clen);
    CHECK(ZSTD_decompress(c, clen, art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE) == clen, "decompress");
    TernHeader h;
    memset(&h, 0, sizeof h);
    tern_header_decode(c, &h);
    size_t hp = (size_t)h.hparams_off, hn = (size_t)h.hparams_size;
    /* the first fixture is TAT: layer 0 is TRN + SwiGLU with a token shift, layer 1 attention + MLP */
    struct {
        const char *what, *expect, *key;
        int kind; /* 0: value bytes = s (same length), 1: u32 = v, 2: type = v, 3: key byte 0 = v, 4: header u32 at v = 3 */
        const char *sv;
        uint32_t v;
    } cases[] = {
        {"unknown block kind", "block kind \"xyz\" is not supported", "layer.0.mixer", 0, "xyz", 0},
        {"a channel kind as mixer", "is not a token mixer", "layer.0.mixer", 0, "mlp", 0},
        {"fewer layers", "unknown hyper-parameter layer.2", "stack.layers", 1, NULL, 2},
        {"more layers", "layer.3.mixer is missing", "stack.layers", 1, NULL, 4},
        {"oscillators + 1", "the hyper-parameters need", "trn.oscillators", 1, NULL, 17},
        {"token shift off", "its layers use", "layer.0.shift", 1, NULL, 0},
        {"amp_max NaN", "trn.amp_max is not finite", "trn.amp_max", 1, NULL, 0x7fc00000u},
        {"bigram_rows 1", "bigram_rows", "stack.bigram_rows", 1, NULL, 1},
        {"bool 2", "corrupt", "stack.skips", 1, NULL, 2},
        {"dim as f32", "is a f32, expected a u32", "stack.dim", 2, NULL, TERN_KV_F32},
        {"unknown type", "unknown value type", "stack.dim", 2, NULL, 9},
        {"renamed key", "stack.skips is missing", "stack.skips", 3, NULL, 'x'},
        {"v1 arch field set", "reserved bytes", NULL, 4, NULL, 16},
        {"format version 1", "re-export it with this tern", NULL, 4, NULL, 8},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(b, c, clen);
        uint32_t type = 0;
        size_t off = cases[k].key ? kv_value_off(c + hp, hn, cases[k].key, &type) : 0;
        if (cases[k].key && !off) {
            CHECK(0, "%s: key %s not in the fixture", cases[k].what, cases[k].key);
            continue;
        }
        off += hp;
        switch (cases[k].kind) {
        case 0: memcpy(b + off + 4, cases[k].sv, strlen(cases[k].sv)); break;
        case 1: tern_wr_u32(b + off, cases[k].v); break;
        case 2: tern_wr_u32(b + off - 4, cases[k].v); break;
        case 3: b[off - 5] = (uint8_t)cases[k].v; break; /* the key's last byte */
        case 4: tern_wr_u32(b + cases[k].v, cases[k].v == 8 ? 1 : 3); break;
        }
        TrtModel *m = NULL;
        RtErr e = {{0}};
        int rc = rt_load_container(&m, b, clen, "bad.tern", RT_ISA_SCALAR, 0, &e);
        CHECK(rc != 0 && strstr(e.msg, cases[k].expect) && !strchr(e.msg, '\n') && !strncmp(e.msg, "bad.tern: ", 10), "%s: %s",
              cases[k].what, e.msg);
        if (!rc) trt_model_free(m);
    }
    /* tensor flags: byte codes on an fp16 / fp32 tensor, an unknown flag */
    size_t nflag = 0;
    for (size_t i = 0; i < h.n_tensors; i++) {
        const uint8_t *ep = c + h.table_off + i * TERN_TENSOR_ENTRY_SIZE;
        uint32_t flags[2] = {TERN_TENSOR_BYTE_CODES, 0x40};
        for (int f = 0; f < 2; f++) {
            if (f == 0 && !tern_dtype_is_float(ep[64])) continue;
            memcpy(b, c, clen);
            tern_wr_u32(b + h.table_off + i * TERN_TENSOR_ENTRY_SIZE + 76, flags[f]);
            TrtModel *m = NULL;
            RtErr e = {{0}};
            int rc = rt_load_container(&m, b, clen, "bad.tern", RT_ISA_SCALAR, 0, &e);
            CHECK(rc != 0 && strstr(e.msg, f ? "unknown flags" : "byte codes only apply"), "tensor %zu flags 0x%x: %s", i, flags[f], e.msg);
            if (!rc) trt_model_free(m);
            nflag++;
        }
        if (nflag > 6) break;
    }
    printf("  damaged key/values, header fields and tensor flags: %zu cases, each refused with one line\n",
           sizeof cases / sizeof cases[0] + nflag);
    free(c);
    free(b);
}

int main(int argc, char **argv) {
    blas_core_setup(argv, 1);
    const char *fixdir = argc > 1 ? argv[1] : NULL;
    printf("test_runtime_trn\n");
    const size_t T = 150; /* three prefill chunks of 64 */
    for (size_t ci = 0; ci < sizeof kCfgs / sizeof kCfgs[0]; ci++) {
        const Cfg *cf = &kCfgs[ci];
        Err err = {0};
        cJSON *msec = cJSON_Parse(cf->model), *q = cJSON_Parse(cf->quant), *x = cJSON_Parse(cf->exp);
        cJSON_AddStringToObject(msec, "arch", "trn_hybrid");
        Model *m = NULL;
        if (model_create(&m, msec, 11 + ci, &err) || quant_plan_attach(m, q, x, NULL, NULL, &err)) {
            CHECK(0, "%s: %s", cf->name, err.msg);
            continue;
        }
        randomize(m, 200 + ci);
        cJSON *run = cJSON_CreateObject();
        cJSON_AddItemToObject(run, "model", cJSON_Duplicate(m->config, 1));
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(run, "data"), "seq_len", 128);
        ExportOptions eo = {0};
        eo.zstd_level = 3;
        eo.tok_kind = m->vocab >= 259 ? TERN_TOK_BYTE : TERN_TOK_NONE;
        eo.int_storage = cf->int_storage;
        uint8_t *art = NULL;
        size_t alen = 0;
        ExportReport rep;
        if (export_build(m, run, &eo, &art, &alen, &rep, &err)) {
            CHECK(0, "%s: export: %s", cf->name, err.msg);
            continue;
        }
        TrtModel *rm = NULL;
        char emsg[512];
        TrtLoadOptions lopt = {getenv("TERN_PARITY_ISA"), 0};
        if (trt_model_load_memory(&rm, art, alen, cf->name, &lopt, emsg, sizeof emsg)) {
            CHECK(0, "%s: load: %s", cf->name, emsg);
            continue;
        }
        if (fixdir && cf->fixture) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", fixdir, cf->fixture);
            if (export_write_file(path, art, alen, &err)) printf("  cannot write %s: %s\n", path, err.msg);
        }
        const TrtModelInfo *in = trt_model_info(rm);
        size_t nbytes = 0;
        for (size_t i = 0; i < rep.ntensors; i++) nbytes += strstr(rep.t[i].dtype, "/bytes") != NULL;
        CHECK(!strcmp(in->arch, "trn_hybrid") && in->eval_seq_len == 128 && in->params == model_num_params(m) && in->seq_len == 160,
              "%s: info (arch %s, params %zu)", cf->name, in->arch, in->params);
        CHECK((cf->int_storage == EXPORT_INT_BITS) == (nbytes == 0) || strstr(cf->quant, "ternary") || strstr(cf->quant, "none"),
              "%s: %zu tensors stored one code per byte", cf->name, nbytes);

        /* the trainer's forward, as exported */
        m->qat_active = 1;
        quant_plan_round_passthrough(m);
        int32_t ids[160];
        Rng r;
        rng_seed(&r, 9 + ci);
        for (size_t i = 0; i < T; i++) ids[i] = (int32_t)rng_below(&r, m->vocab);
        ids[40] = ids[41] = ids[42]; /* a repeated token: BigramHash's (t, t) bucket */
        Tape tp;
        tape_init(&tp, 0);
        tape_no_grad_begin(&tp);
        Tensor *z = model_logits(m, &tp, ids, 1, T);
        tape_no_grad_end(&tp);
        size_t V = m->vocab;
        float *pre = malloc(T * V * sizeof(float)), *dec = malloc(T * V * sizeof(float)), *pcs = malloc(T * V * sizeof(float));
        TrtSessionOptions so = {1, 2, 0};
        TrtSession *s = NULL, *s2 = NULL;
        int ok = !trt_session_new(rm, &so, &s, emsg, sizeof emsg) && !trt_session_new(rm, &so, &s2, emsg, sizeof emsg);
        ok = ok && !trt_session_observe(s, ids, T, pre, emsg, sizeof emsg);
        CHECK(ok, "%s: session: %s", cf->name, emsg);
        double worst = max_diff(pre, z->data, T * V);
        double ce_rt = mean_ce(pre, ids, T, V), ce_fw = mean_ce(z->data, ids, T, V), dce = fabs(ce_rt - ce_fw);
        int a8 = strstr(cf->quant, "act_bits\":8") != NULL;
        if (a8) /* int8 activations: a value within rounding of a .5 boundary may take the other code (see test_runtime_parity) */
            CHECK(dce < 5e-3, "%s: cross-entropy %.6f vs the trainer's %.6f", cf->name, ce_rt, ce_fw);
        else
            CHECK(worst < 2e-4, "%s: logits differ from the trainer's by up to %.3g", cf->name, worst);
        /* decode: one token at a time through the session's state */
        for (size_t i = 0; i < T && ok; i++) {
            ok = !trt_session_observe(s2, ids + i, 1, NULL, emsg, sizeof emsg);
            memcpy(dec + i * V, trt_session_logits(s2), V * sizeof(float));
        }
        if (getenv("TERN_PARITY_VERBOSE"))
            for (size_t i = 0; i < T; i++) {
                double d = max_diff(pre + i * V, z->data + i * V, V);
                if (d > 1e-4) printf("    position %zu: max |dlogit| %.3g\n", i, d);
            }
        double wdec = max_diff(dec, pre, T * V);
        CHECK(ok && wdec < 1e-4, "%s: decode vs prefill max diff %.3g", cf->name, wdec);
        /* uneven pieces (across chunk boundaries) after a reset of a used session */
        const size_t lens[] = {37, 1, 1, 64, 5, 70, 2};
        trt_session_reset(s2);
        ok = ok && !feed_pieces(s2, ids, T, lens, sizeof lens / sizeof lens[0], pcs, V);
        double wpcs = max_diff(pcs, pre, T * V);
        CHECK(ok && wpcs < 1e-4, "%s: pieces 37+1+1+64+5+... vs prefill max diff %.3g", cf->name, wpcs);
        printf("  %-86s %7zu B  max|dlogit| %.1e, |dCE| %.1e (prefill vs tern); decode vs prefill %.1e, pieces %.1e  %s\n", cf->name,
               alen, worst, dce, wdec, wpcs, in->isa);
        if (ci == 0) {
            test_generation(rm);
            test_damage(art, alen);
        }
        trt_session_free(s);
        trt_session_free(s2);
        free(pre);
        free(dec);
        free(pcs);
        tape_free(&tp);
        trt_model_free(rm);
        free(art);
        export_report_free(&rep);
        model_free(m);
        cJSON_Delete(run);
        cJSON_Delete(msec);
        cJSON_Delete(q);
        cJSON_Delete(x);
    }
    return test_summary("test_runtime_trn");
}
