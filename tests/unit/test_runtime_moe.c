/* The chimera preset's MoE layers (E: Gated DeltaNet + MoE) through export and the runtime,
 * without training: random models with a routing bias large enough to change most tokens'
 * choice of experts (so a runtime that dropped or misread the exported bias would disagree),
 * exported in memory and loaded by the runtime (runtime/blocks/moe.c). Checked:
 *   - the bias travels: blocks.<i>.moe.bias is in the artifact, fp32, bit for bit;
 *   - the runtime's logits over a 150-token window (prefill in three chunks) against the
 *     trainer's forward "as exported" (fake quantization on); decode one token at a time and
 *     uneven feeds give the prefill's logits (rt_parity.h);
 *   - damaged moe key/values are refused with one line. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "export/writer.h"
#include "kernels/rng.h"
#include "model/model.h"
#include "model/qat.h"
#include "rt_parity.h"

static const ParityCfg kCfgs[] = {
    {"fp32, GE, 6 experts top-2 + 1 shared, hidden 48", "chimera",
     "{\"vocab_size\":270,\"layout\":\"GE\",\"dim\":64,\"seq_len\":160,\"gdn_head_dim\":16,\"moe_experts\":6,\"moe_hidden\":48}",
     "{\"weights\":\"none\"}", "{\"passthrough\":\"fp32\"}", 0, NULL},
    {"ternary g128 + int8 act blocks of 64, EGE, 4 experts top-2 + 2 shared", "chimera",
     "{\"vocab_size\":300,\"layout\":\"EGE\",\"dim\":128,\"seq_len\":160,\"gdn_heads\":2,\"moe_experts\":4,\"moe_shared\":2,"
     "\"moe_hidden\":128}",
     "{\"weights\":\"ternary\",\"group\":128,\"act_bits\":8,\"act_block\":64,\"min_numel\":1000,\"embed\":false}", "{}", 0, NULL},
    {"int5 bit-packed, XE, 5 experts top-1, no shared, route scale 2.5, untied", "chimera",
     "{\"vocab_size\":280,\"layout\":\"XE\",\"dim\":64,\"seq_len\":160,\"moe_experts\":5,\"moe_topk\":1,\"moe_shared\":0,"
     "\"moe_hidden\":64,\"moe_route_scale\":2.5,\"tie_embeddings\":false}",
     "{\"weights\":\"int5\",\"min_numel\":1000}", "{}", 0, NULL},
    {"per-expert rules: ternary + int8 act, expert 1 int6 float act, expert 2's down int8 act per token", "chimera",
     "{\"vocab_size\":260,\"layout\":\"GE\",\"dim\":128,\"seq_len\":160,\"gdn_heads\":2,\"moe_experts\":3,\"moe_hidden\":64}",
     "{\"weights\":\"ternary\",\"group\":128,\"act_bits\":8,\"act_block\":64,\"min_numel\":1000,\"embed\":false,"
     "\"rules\":[{\"match\":\"*moe.experts.1.*\",\"weights\":\"int6\",\"act_bits\":0},"
     "{\"match\":\"*moe.experts.2.down*\",\"weights\":\"int8\",\"act_bits\":8,\"act_block\":0}]}",
     "{}", 0, NULL},
};

/* Builds the case's model with random weights and a random routing bias, exports and loads it. */
static int build(ParityRun *pr, const ParityCfg *cf, uint64_t seed) {
    memset(pr, 0, sizeof *pr);
    Err err = {0};
    cJSON *msec = cJSON_Parse(cf->model), *q = cJSON_Parse(cf->quant), *x = cJSON_Parse(cf->exp), *run = cJSON_CreateObject();
    cJSON_AddStringToObject(msec, "arch", cf->arch);
    int rc = model_create(&pr->m, msec, seed, &err) || quant_plan_attach(pr->m, q, x, NULL, NULL, &err);
    if (!rc) {
        randomize(pr->m, 200 + seed);
        Rng r;
        rng_seed(&r, 77 + seed);
        for (size_t i = 0; i < pr->m->bs.n; i++)
            if (strstr(pr->m->bs.b[i].name, "moe.bias")) rng_fill_uniform(&r, pr->m->bs.b[i].data, pr->m->bs.b[i].numel, -0.4f, 0.4f);
        cJSON_AddItemToObject(run, "model", cJSON_Duplicate(pr->m->config, 1));
        ExportOptions eo = {0};
        eo.zstd_level = 3;
        eo.tok_kind = TERN_TOK_BYTE;
        rc = export_build(pr->m, run, &eo, &pr->art, &pr->alen, &pr->rep, &err);
        pr->have_rep = !rc;
    }
    char emsg[512] = "";
    TrtLoadOptions lopt = {getenv("TERN_PARITY_ISA"), 0, NULL};
    if (!rc && trt_model_load_memory(&pr->rm, pr->art, pr->alen, cf->name, &lopt, emsg, sizeof emsg)) rc = -1;
    CHECK(!rc, "%s: %s%s", cf->name, err.msg, emsg);
    cJSON_Delete(run), cJSON_Delete(msec), cJSON_Delete(q), cJSON_Delete(x);
    return rc ? -1 : 0;
}

/* every moe.bias buffer is an fp32 tensor of the artifact, equal bit for bit */
static void bias_travels(const ParityRun *pr, const ParityCfg *cf) {
    size_t n = 0;
    for (size_t i = 0; i < pr->m->bs.n; i++) {
        const Buffer *b = &pr->m->bs.b[i];
        if (!strstr(b->name, "moe.bias")) continue;
        const RtTensor *t = NULL;
        for (size_t j = 0; j < pr->rm->ntensors && !t; j++)
            if (!strcmp(pr->rm->tensors[j].name, b->name)) t = &pr->rm->tensors[j];
        CHECK(t && t->dtype == TERN_DT_F32 && t->rows * t->cols == b->numel && !memcmp(t->data, b->data, b->numel * sizeof(float)),
              "%s: %s missing from the artifact or changed", cf->name, b->name);
        n++;
    }
    CHECK(n > 0, "%s: no routing bias", cf->name);
    printf("  %zu routing bias(es) in the artifact, fp32, bit-exact\n", n);
}

/* Damaged moe key/values: refused with one line naming the artifact. */
static void test_damage(const uint8_t *art, size_t alen) {
    size_t clen;
    TernHeader h;
    uint8_t *c = rt_container_of(art, alen, &clen, &h), *b = malloc(clen);
    size_t hp = (size_t)h.hparams_off, hn = (size_t)h.hparams_size;
    struct {
        const char *what, *expect, *key;
        uint32_t v;
    } cases[] = {
        {"experts 5 (tensors of 6)", "the hyper-parameters need", "moe.experts", 5},
        {"experts 0", "moe.experts", "moe.experts", 0},
        {"top-k above the experts", "moe.topk", "moe.topk", 7},
        {"top-k 0", "moe.topk", "moe.topk", 0},
        {"hidden 47", "the hyper-parameters need", "moe.hidden", 47},
        {"no shared expert (one stored)", "its layers use", "moe.shared", 0},
        {"route scale NaN", "moe.route_scale", "moe.route_scale", 0x7fc00000u},
        {"route scale -1", "moe.route_scale", "moe.route_scale", 0xbf800000u},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(b, c, clen);
        uint32_t type = 0;
        size_t off = kv_value_off(c + hp, hn, cases[k].key, &type);
        if (!off) {
            CHECK(0, "%s: key %s not in the fixture", cases[k].what, cases[k].key);
            continue;
        }
        tern_wr_u32(b + hp + off, cases[k].v);
        TrtModel *m = NULL;
        RtErr e = {{0}};
        int rc = rt_load_container(&m, b, clen, "bad.tern", RT_ISA_SCALAR, 0, &e);
        CHECK(rc != 0 && strstr(e.msg, cases[k].expect) && !strchr(e.msg, '\n') && !strncmp(e.msg, "bad.tern: ", 10), "%s: %s",
              cases[k].what, e.msg);
        if (!rc) trt_model_free(m);
    }
    printf("  damaged moe key/values: %zu cases, each refused with one line\n", sizeof cases / sizeof cases[0]);
    free(c);
    free(b);
}

/* an artifact whose routing bias holds a NaN (its checksum aside): refused with one line */
static void nan_bias(const ParityRun *pr) {
    size_t clen;
    TernHeader h;
    uint8_t *c = rt_container_of(pr->art, pr->alen, &clen, &h);
    const RtTensor *t = NULL;
    for (size_t j = 0; j < pr->rm->ntensors && !t; j++)
        if (strstr(pr->rm->tensors[j].name, "moe.bias")) t = &pr->rm->tensors[j];
    size_t off = t ? (size_t)(t->data - pr->rm->container) : 0;
    CHECK(t && off + 4 <= clen && !memcmp(c + off, t->data, t->rows * t->cols * sizeof(float)), "bias tensor not found in the container");
    if (t && off + 4 <= clen) {
        tern_wr_u32(c + off + 4, 0x7fc00000u); /* the second value */
        TrtModel *m = NULL;
        RtErr e = {{0}};
        int rc = rt_load_container(&m, c, clen, "bad.tern", RT_ISA_SCALAR, 0, &e);
        CHECK(rc != 0 && strstr(e.msg, "blocks.1.moe.bias: element 1 is not finite") && !strchr(e.msg, '\n'), "NaN bias: %s", e.msg);
        printf("  a NaN routing bias: %s\n", e.msg);
        if (!rc) trt_model_free(m);
    }
    free(c);
}

int main(void) {
    printf("test_runtime_moe\n");
    for (size_t ci = 0; ci < sizeof kCfgs / sizeof kCfgs[0]; ci++) {
        ParityRun pr;
        if (build(&pr, &kCfgs[ci], 31 + ci)) {
            parity_done(&pr);
            continue;
        }
        bias_travels(&pr, &kCfgs[ci]);
        if (strstr(kCfgs[ci].name, "per-expert rules")) { /* the rules took: the experts differ as asked */
            const RtTensor *t[3] = {NULL, NULL, NULL};
            const char *nm[3] = {"blocks.1.moe.experts.0.down.weight", "blocks.1.moe.experts.1.down.weight", "blocks.1.moe.experts.2.down.weight"};
            for (size_t j = 0; j < pr.rm->ntensors; j++)
                for (int q = 0; q < 3; q++)
                    if (!strcmp(pr.rm->tensors[j].name, nm[q])) t[q] = &pr.rm->tensors[j];
            CHECK(t[0] && t[1] && t[2] && tern_dtype_is_ternary(t[0]->dtype) && t[0]->act_bits == 8 && t[0]->act_block == 64 &&
                      t[1]->dtype == TERN_DT_I6 && t[1]->act_bits == 0 && t[2]->dtype == TERN_DT_I8 && t[2]->act_bits == 8 &&
                      t[2]->act_block == 0,
                  "per-expert rules not in the artifact");
        }
        parity_logits(&pr, &kCfgs[ci], 150, 5 + ci);
        if (ci == 0) test_damage(pr.art, pr.alen), nan_bias(&pr);
        parity_done(&pr);
    }
    return test_summary("test_runtime_moe");
}
