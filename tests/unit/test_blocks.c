/* The block registry and the stack (model/block.h, model/stack.h):
 *   - the registry: kind names unique, no key owned by two tables (the stack's and every kind's),
 *     every preset letter maps to registered kinds of the right role;
 *   - every preset builds from its defaults; bad layouts and keys are errors naming the key;
 *   - the stack's scaffold options are real and general: a GPT with norm gains, BigramHash and
 *     neither resid_mix nor branch scales, and a TRN hybrid whose T layers have no token shift,
 *     pass a finite-difference check of every parameter;
 *   - the artifact's key/values name every layer's kinds, and a kind without a runtime
 *     counterpart (Llama's feed-forward) refuses export with a message;
 *   - buffers: train_forwards is one, saved to /buffers and restored bit-exactly, and a
 *     checkpoint without /buffers (written before they existed) is reported as such; a buffer
 *     marked for export is a float32 tensor of the artifact, unmarked ones are not. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "autodiff/gradcheck.h"
#include "check.h"
#include "export/format.h"
#include "export/writer.h"
#include "model/qat.h"
#include "model/stack.h"
#include "train/checkpoint.h"

static Model *make(const char *json, Err *err) {
    cJSON *cfg = cJSON_Parse(json);
    Model *m = NULL;
    if (model_create(&m, cfg, 99, err)) m = NULL;
    cJSON_Delete(cfg);
    return m;
}

static void test_registry(void) {
    size_t nk = block_kind_count(), nkeys = 0;
    for (size_t i = 0; i < nk; i++) {
        const BlockKind *k = block_kind_at(i);
        CHECK(block_kind_find(k->name) == k, "kind %s found by name", k->name);
        CHECK(k->forward && k->add_params && k->init && k->resolve && k->defaults, "kind %s has the whole contract", k->name);
        for (size_t f = 0; f < k->nfields; f++) {
            nkeys++;
            for (size_t s = 0; s < kStackFieldCount; s++)
                CHECK(strcmp(k->fields[f].key, kStackFields[s].key), "key %s of kind %s is also a stack key", k->fields[f].key, k->name);
            for (size_t j = i + 1; j < nk; j++)
                for (size_t g = 0; g < block_kind_at(j)->nfields; g++)
                    CHECK(strcmp(k->fields[f].key, block_kind_at(j)->fields[g].key), "key %s owned by kinds %s and %s",
                          k->fields[f].key, k->name, block_kind_at(j)->name);
        }
    }
    for (size_t p = 0; p < preset_count(); p++) {
        const Preset *pr = preset_at(p);
        for (size_t t = 0; t < pr->ntypes; t++) {
            const LayerType *lt = &pr->types[t];
            CHECK(!lt->mixer || (block_kind_find(lt->mixer->name) && lt->mixer->role == BLOCK_MIXER), "%s letter %c mixer", pr->name,
                  lt->letter);
            CHECK(!lt->channel || (block_kind_find(lt->channel->name) && lt->channel->role == BLOCK_CHANNEL), "%s letter %c channel",
                  pr->name, lt->letter);
        }
        char json[128];
        snprintf(json, sizeof json, "{\"arch\":\"%s\"}", pr->name);
        Err err = {0};
        Model *m = make(json, &err);
        CHECK(m != NULL, "preset %s builds from its defaults: %s", pr->name, err.msg);
        if (m) CHECK(!strcmp(m->arch, pr->name) && buffers_find(&m->bs, "train_forwards"), "preset %s: arch and buffers", pr->name);
        model_free(m);
    }
    printf("  registry: %zu kinds, %zu kind keys + %zu stack keys, none shared; %zu presets build\n", nk, nkeys, kStackFieldCount,
           preset_count());
}

static void test_bad_configs(void) {
    struct {
        const char *json, *expect;
    } bad[] = {
        {"{\"arch\":\"trn_hybrid\",\"layout\":\"TXA\"}", "model.layout"},
        {"{\"arch\":\"gpt\",\"layout\":\"AAA\",\"layers\":4}", "model.layers"},
        {"{\"arch\":\"gpt\",\"oscillators\":4}", "unknown key model.oscillators for arch gpt"},
        {"{\"arch\":\"gpt\",\"dim\":8,\"dim\":16}", "duplicate key model.dim"},
        {"{\"arch\":\"gpt\",\"mlp_act\":\"gelu\"}", "model.mlp_act"},
        {"{\"arch\":\"llama\",\"hidden\":0}", "model.hidden"},
        {"{\"arch\":\"chimera9\"}", "unknown model.arch"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Err err = {0};
        Model *m = make(bad[i].json, &err);
        CHECK(!m && strstr(err.msg, bad[i].expect) && !strchr(err.msg, '\n'), "%s: \"%s\" should name %s", bad[i].json, err.msg,
              bad[i].expect);
        model_free(m);
    }
    printf("  %zu bad configs refused, each naming the key\n", sizeof bad / sizeof bad[0]);
}

typedef struct Ctx {
    Model *m;
    int32_t x[12], y[12];
} Ctx;

static Tensor *loss_fn(Tape *tp, Tensor **in, void *user) {
    Ctx *c = user;
    c->m->train_forwards = 0;
    return model_loss(c->m, tp, c->x, c->y, 2, 6, NULL, 0);
}

static void gradcheck_model(const char *name, const char *json) {
    Err err = {0};
    Model *m = make(json, &err);
    CHECK(m != NULL, "%s: %s", name, err.msg);
    if (!m) return;
    for (size_t p = 0; p < m->ps.n; p++) /* gains and scales away from their init, so every path matters */
        if (m->ps.t[p]->ndim == 1)
            for (size_t j = 0; j < m->ps.t[p]->numel; j++) m->ps.t[p]->data[j] += 0.05f * (float)((j * 7 + p) % 5) - 0.1f;
    Ctx c = {.m = m};
    for (int i = 0; i < 12; i++) {
        c.x[i] = (i * 7 + 3) % 13;
        c.y[i] = (i * 5 + 1) % 13;
    }
    GradCheckOpts o = gradcheck_default_opts();
    o.max_per_input = 10;
    CHECK(gradcheck(name, loss_fn, m->ps.t, (int)m->ps.n, &c, &o, NULL) == 0, "%s gradient check", name);
    model_free(m);
}

static void test_scaffold_options(void) {
    gradcheck_model("gpt + norm gains + BigramHash, no resid_mix / branch scales / skips",
                    "{\"arch\":\"gpt\",\"vocab_size\":13,\"layers\":2,\"dim\":8,\"heads\":2,\"kv_heads\":1,\"seq_len\":8,"
                    "\"zero_init_proj\":false,\"norm_gain\":true,\"resid_mix\":false,\"branch_scales\":false,\"skips\":false,"
                    "\"bigram_rows\":5,\"bigram_dim\":4,\"embed_init_std\":0.5,\"softcap\":4}");
    gradcheck_model("trn_hybrid TA, T without token shift, untied, no emb norm",
                    "{\"arch\":\"trn_hybrid\",\"vocab_size\":13,\"layout\":\"TA\",\"dim\":8,\"heads\":2,\"kv_heads\":1,\"seq_len\":8,"
                    "\"oscillators\":3,\"swiglu_hidden\":8,\"mlp_hidden\":8,\"token_shift\":false,\"bigram_rows\":0,"
                    "\"tie_embeddings\":false,\"emb_norm\":false,\"zero_init_proj\":false,\"embed_init_std\":0.5,"
                    "\"w_res_init_std\":0.3,\"res_scale_init\":1.0,\"w_phase_init_std\":0.5,\"res_warmup\":0}");
}

static size_t count_key_prefix(const KvList *kv, const char *prefix) {
    size_t n = 0;
    for (size_t i = 0; i < kv->n; i++) n += !strncmp(kv->e[i].key, prefix, strlen(prefix));
    return n;
}

static void test_export_kv(void) {
    Err err = {0};
    Model *m = make("{\"arch\":\"trn_hybrid\",\"layout\":\"TTA\",\"dim\":64,\"heads\":2,\"kv_heads\":1,\"oscillators\":8,"
                    "\"vocab_size\":64,\"bigram_rows\":0}",
                    &err);
    KvList kv = {0};
    CHECK(m && model_export_kv(m, &kv, &err) == 0, "trn_hybrid key/values: %s", err.msg);
    CHECK(count_key_prefix(&kv, "layer.") == 9 && count_key_prefix(&kv, "trn.") == 2 && count_key_prefix(&kv, "attn.") == 6 &&
              count_key_prefix(&kv, "swiglu.") == 1 && count_key_prefix(&kv, "mlp.") == 3,
          "every layer's kinds and each used kind's keys once (%zu entries)", kv.n);
    for (size_t i = 0; i < kv.n; i++)
        if (!strcmp(kv.e[i].key, "layer.2.mixer")) CHECK(!strcmp(kv.e[i].s, "attention"), "layer 2 is attention: %s", kv.e[i].s);
    kv_free(&kv);
    model_free(m);
    m = make("{\"arch\":\"llama\",\"vocab_size\":16,\"layers\":1,\"dim\":8,\"heads\":2,\"kv_heads\":1,\"hidden\":8,\"seq_len\":8}", &err);
    CHECK(m && model_export_kv(m, &kv, &err) != 0 && strstr(err.msg, "export:"), "llama refuses native export: %s", err.msg);
    kv_free(&kv);
    model_free(m);
    printf("  artifact key/values: per-layer kinds and per-kind keys; Llama names refused with a message\n");
}

static void test_buffers_checkpoint(void) {
    Err err = {0};
    const char *cfg = "{\"arch\":\"trn_hybrid\",\"layout\":\"T\",\"dim\":16,\"oscillators\":4,\"vocab_size\":32,\"bigram_rows\":0}";
    Model *a = make(cfg, &err), *b = make(cfg, &err);
    CHECK(a && b, "models: %s", err.msg);
    if (!a || !b) return;
    char path[64];
    snprintf(path, sizeof path, "/tmp/tern_test_blocks_%ld.h5", (long)getpid());
    a->train_forwards = 123456789012345ull; /* beyond float precision: stored as uint64 */
    CheckpointData cd = {.ps = &a->ps, .bs = &a->bs, .total = a->ps.total, .config_json = "{}"};
    CHECK(checkpoint_save(path, &cd, &err) == 0, "save: %s", err.msg);
    int found = 0;
    CHECK(checkpoint_load_buffers(path, &b->bs, &found, &err) == 0 && found && b->train_forwards == a->train_forwards,
          "buffers restored bit-exactly (%llu)", (unsigned long long)b->train_forwards);
    /* a checkpoint without buffers: found = 0, nothing changed */
    cd.bs = NULL;
    b->train_forwards = 7;
    CHECK(checkpoint_save(path, &cd, &err) == 0 && checkpoint_load_buffers(path, &b->bs, &found, &err) == 0 && !found &&
              b->train_forwards == 7,
          "no /buffers: reported, buffers untouched");
    unlink(path);
    model_free(a);
    model_free(b);
    printf("  buffers: train_forwards saved to /buffers and restored exactly; legacy checkpoints detected\n");
}

/* An exported buffer is in the artifact's tensor table (fp32, its values); train_forwards is not. */
static void test_buffer_export(void) {
    Err err = {0};
    Model *m = make("{\"arch\":\"gpt\",\"vocab_size\":16,\"layers\":1,\"dim\":8,\"heads\":2,\"kv_heads\":1,\"seq_len\":8}", &err);
    CHECK(m && quant_plan_attach(m, NULL, NULL, NULL, NULL, &err) == 0, "model: %s", err.msg);
    if (!m) return;
    float bias[3] = {0.5f, -1.25f, 3.0f};
    buffers_add(&m->bs, "blocks.0.router_bias", BUF_F32, 1, 3, 0, bias, 1);
    ExportOptions eo = {0};
    eo.zstd_level = 1;
    uint8_t *art = NULL;
    size_t alen = 0;
    ExportReport rep;
    CHECK(export_build(m, NULL, &eo, &art, &alen, &rep, &err) == 0, "export: %s", err.msg);
    if (art) {
        size_t clen = (size_t)ZSTD_getFrameContentSize(art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE);
        uint8_t *c = malloc(clen);
        ZSTD_decompress(c, clen, art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE);
        TernHeader h;
        memset(&h, 0, sizeof h);
        tern_header_decode(c, &h);
        int found = 0, counter = 0;
        for (size_t i = 0; i < h.n_tensors; i++) {
            TernTensorEntry e;
            tern_entry_decode(c + h.table_off + i * TERN_TENSOR_ENTRY_SIZE, &e);
            counter |= !strcmp(e.name, "train_forwards");
            if (!strcmp(e.name, "blocks.0.router_bias"))
                found = e.dtype == TERN_DT_F32 && e.cols == 3 && tern_rd_f32(c + e.data_off + 4) == -1.25f;
        }
        CHECK(found && !counter && h.n_tensors == m->ps.n + 1, "exported buffer in the table (%u tensors)", h.n_tensors);
        free(c);
        free(art);
        export_report_free(&rep);
    }
    model_free(m);
    printf("  an exported buffer is an fp32 tensor of the artifact; train_forwards is not exported\n");
}

/* Forward-only work drops each sub-layer's scratch as soon as the residual stream holds its result
 * (model/stack.c, Settle): the per-token losses must equal, bit for bit, those of the same forward
 * with the tape recording (which keeps everything), on every preset's letters, the U-Net skips,
 * resid_mix, the widening first layer and a long enough sequence that layers dominate the peak;
 * and the forward-only arena peak must be lower. */
static void forward_only_case(const char *name, const char *json, size_t B, size_t T) {
    Err err = {0};
    Model *m = make(json, &err);
    CHECK(m != NULL, "%s: %s", name, err.msg);
    if (!m) return;
    size_t n = B * T;
    int32_t *x = xmalloc(n * sizeof(int32_t)), *y = xmalloc(n * sizeof(int32_t));
    float *rec = xmalloc(n * sizeof(float)), *fwd = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        x[i] = (int32_t)((i * 7 + 3) % 11);
        y[i] = (int32_t)((i * 5 + 1) % 11);
    }
    Tape tp;
    tape_init(&tp, 0);
    model_loss(m, &tp, x, y, B, T, rec, 0); /* recorded: parameters require grad */
    size_t hw_rec = tp.arena.high_water;
    tape_free(&tp);
    tape_init(&tp, 0);
    tape_no_grad_begin(&tp);
    model_loss(m, &tp, x, y, B, T, fwd, 0);
    tape_no_grad_end(&tp);
    size_t hw_fwd = tp.arena.high_water;
    /* a second forward on the same tape reuses the consolidated block and gives the same losses */
    tape_reset(&tp);
    size_t allocs = tp.arena.block_allocs;
    tape_no_grad_begin(&tp);
    model_loss(m, &tp, x, y, B, T, rec, 0);
    tape_no_grad_end(&tp);
    CHECK(memcmp(rec, fwd, n * sizeof(float)) == 0, "%s: repeated forward-only losses differ", name);
    CHECK(tp.arena.block_allocs == allocs, "%s: the second forward-only pass allocated", name);
    tape_free(&tp);
    tape_init(&tp, 0);
    model_loss(m, &tp, x, y, B, T, rec, 0);
    tape_free(&tp);
    CHECK(memcmp(rec, fwd, n * sizeof(float)) == 0, "%s: forward-only losses differ from the recorded forward", name);
    CHECK(hw_fwd < hw_rec, "%s: forward-only arena peak %zu not below the recorded %zu", name, hw_fwd, hw_rec);
    printf("  %-44s arena peak: recorded %8zu B, forward-only %8zu B (%.2fx)\n", name, hw_rec, hw_fwd,
           (double)hw_rec / (double)hw_fwd);
    xfree(x);
    xfree(y);
    xfree(rec);
    xfree(fwd);
    model_free(m);
}

static void test_forward_only(void) {
    printf("forward-only: bit-identical losses, lower arena peak\n");
    forward_only_case("gpt, 6 layers, U-Net skips, resid_mix, softcap",
                      "{\"arch\":\"gpt\",\"vocab_size\":11,\"layers\":6,\"dim\":16,\"heads\":2,\"kv_heads\":1,\"seq_len\":64,"
                      "\"zero_init_proj\":false,\"bigram_rows\":5,\"bigram_dim\":4,\"softcap\":4}", 2, 64);
    forward_only_case("trn_hybrid TTA", "{\"arch\":\"trn_hybrid\",\"vocab_size\":11,\"layout\":\"TTA\",\"dim\":16,\"heads\":2,"
                      "\"kv_heads\":1,\"seq_len\":64,\"oscillators\":3,\"zero_init_proj\":false}", 2, 64);
    forward_only_case("llama, 3 layers", "{\"arch\":\"llama\",\"vocab_size\":11,\"layers\":3,\"dim\":16,\"heads\":2,"
                      "\"kv_heads\":1,\"hidden\":24,\"seq_len\":64}", 2, 64);
    forward_only_case("hgru GgMm", "{\"arch\":\"hgru\",\"layout\":\"GgMm\",\"dim\":12,\"mlp_hidden\":16,\"vocab_size\":11,"
                      "\"seq_len\":64,\"zero_init_proj\":false,\"layers\":0}", 2, 64);
    forward_only_case("hgru_engine, widening first layer (E 6 -> C 12)",
                      "{\"arch\":\"hgru_engine\",\"layout\":\"gg\",\"embed_dim\":6,\"dim\":12,\"vocab_size\":11,\"seq_len\":64,"
                      "\"layers\":0}", 2, 64);
    forward_only_case("chimera GXGS", "{\"arch\":\"chimera\",\"layout\":\"GXGS\",\"vocab_size\":11,\"dim\":16,\"seq_len\":64,"
                      "\"swiglu_hidden\":24,\"gdn_heads\":2,\"gdn_chunk\":16,\"mlstm_head_dim\":8,\"mlstm_chunk\":16,"
                      "\"zero_init_proj\":false}", 2, 64);
}

int main(void) {
    printf("test_blocks\n");
    test_forward_only();
    test_registry();
    test_bad_configs();
    test_scaffold_options();
    test_export_kv();
    test_buffers_checkpoint();
    test_buffer_export();
    return test_summary("test_blocks");
}
