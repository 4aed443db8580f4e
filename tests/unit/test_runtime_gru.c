/* Hybrid-GRU stacks (presets hgru, hgru_engine) through export and the runtime, without training:
 * random models in several configurations — both GRU cells and the MLGRU, with and without
 * MLPs; fp32, ternary 2-bit per tensor (BitNet's and the engine's mean-centred quantizer) and
 * per group of 128 with int8 activations (the integer kernels), base-3 packing, int5; a
 * widening first layer under a narrower embedding (the engine's 256 -> 1024 shape, scaled down)
 * — are exported in memory and loaded by the runtime (tests/unit/rt_parity.h). Checked:
 *   - the runtime's logits over a 150-token window (three prefill chunks) against the trainer's
 *     forward as exported; decode and uneven feeds against the prefill;
 *   - the recurrent state after N tokens fed one at a time equals the state after a prefill of
 *     the same N tokens (bit for bit), and its size is H floats per GRU / MLGRU layer: constant
 *     in the context length;
 *   - damaged GRU hyper-parameters are refused with one line. */
#include "rt_parity.h"

#include "kernels/blas_core.h"

#define HG "hgru"
#define HE "hgru_engine"
static const ParityCfg kCfgs[] = {
    {"fp32, GgMm (both GRU-like cells, with and without MLPs), torch cell", HG,
     "{\"vocab_size\":300,\"layout\":\"GgMm\",\"layers\":0,\"dim\":64,\"seq_len\":160,\"mlp_hidden\":96}", "{\"weights\":\"none\"}",
     "{\"passthrough\":\"fp32\"}", EXPORT_INT_AUTO, NULL},
    {"ternary g128 + int8 act (integer kernels), Gm, torch cell, untied", HG,
     "{\"vocab_size\":300,\"layout\":\"Gm\",\"layers\":0,\"dim\":128,\"seq_len\":160,\"tie_embeddings\":false}",
     "{\"act_bits\":8,\"weights\":\"ternary\",\"min_numel\":1000,\"group\":128}", "{}", EXPORT_INT_AUTO, "hgru.tern"},
    {"ternary per tensor, engine cell (gG), mean-centred quantizer, base-3 packing", HG,
     "{\"vocab_size\":280,\"layout\":\"gG\",\"layers\":0,\"dim\":96,\"seq_len\":160,\"gru_variant\":\"engine\"}",
     "{\"weights\":\"ternary\",\"min_numel\":1000,\"group\":0,\"ternary_center\":true}", "{\"ternary_packing\":\"base3\"}",
     EXPORT_INT_AUTO, NULL},
    {"hgru_engine shape 128 -> 256, vocab 320, ternary g128 + int8 act", HE,
     "{\"vocab_size\":320,\"embed_dim\":128,\"dim\":256,\"seq_len\":160}",
     "{\"act_bits\":8,\"weights\":\"ternary\",\"min_numel\":1000,\"group\":128}", "{}", EXPORT_INT_AUTO, NULL},
    {"hgru_engine shape 48 -> 80, ternary per tensor, fp16 passthrough", HE,
     "{\"vocab_size\":260,\"embed_dim\":48,\"dim\":80,\"seq_len\":160}", "{\"weights\":\"ternary\",\"min_numel\":1000,\"group\":0}", "{}",
     EXPORT_INT_AUTO, NULL},
    {"int5, MLGRU widening 64 -> 128 then torch GRU + MLP (mG)", HG,
     "{\"vocab_size\":300,\"layout\":\"mG\",\"layers\":0,\"embed_dim\":64,\"dim\":128,\"seq_len\":160,\"tie_embeddings\":false}",
     "{\"weights\":\"int5\",\"min_numel\":1000}", "{}", EXPORT_INT_BITS, NULL},
};

/* state after a prefill of n tokens vs after n single-token observes */
static void state_check(ParityRun *pr, const ParityCfg *cf, size_t n, size_t layers_state) {
    TrtSessionOptions so = {1, 1, 0};
    TrtSession *a = NULL, *b = NULL;
    char err[256] = "";
    int ok = !trt_session_new(pr->rm, &so, &a, err, sizeof err) && !trt_session_new(pr->rm, &so, &b, err, sizeof err);
    ok = ok && !trt_session_observe(a, pr->ids, n, NULL, err, sizeof err);
    for (size_t i = 0; i < n && ok; i++) ok = !trt_session_observe(b, pr->ids + i, 1, NULL, err, sizeof err);
    CHECK(ok, "%s: sessions: %s", cf->name, err);
    if (ok) {
        size_t na, nb;
        int32_t *pa, *pb;
        const float *sa = rt_stack_state(a, &na, &pa), *sb = rt_stack_state(b, &nb, &pb);
        int same = na == nb && !memcmp(sa, sb, na * sizeof(float));
        double norm = 0;
        for (size_t i = 0; i < na; i++) norm += fabs(sa[i]);
        printf("    state after %zu tokens: %zu floats, decode == prefill %s (sum |h| %.3g)\n", n, na, same ? "bit for bit" : "DIFFERS",
               norm);
        CHECK(same && norm > 0, "%s: decode state equals the prefill state", cf->name);
        CHECK(na == layers_state, "%s: %zu floats of state, expected %zu (H per recurrent layer)", cf->name, na, layers_state);
    }
    trt_session_free(a);
    trt_session_free(b);
}

/* Damaged GRU hyper-parameters of the hgru_engine artifact: refused with one line. */
static void test_damage(const ParityRun *pr) {
    size_t clen;
    uint8_t *c = parity_container(pr->art, pr->alen, &clen), *b = malloc(clen);
    TernHeader h;
    memset(&h, 0, sizeof h);
    tern_header_decode(c, &h);
    struct {
        const char *what, *expect, *key, *sv; /* sv: same-length string value, else u32 v */
        uint32_t v;
    } cases[] = {
        {"unknown cell", "gru.variant \"engind\" is not torch or engine", "gru.variant", "engind", 0},
        {"state eps NaN", "gru.state_eps is not finite", "gru.state_eps", NULL, 0x7fc00000u},
        {"embedding width", "tensor blocks.0.gru.w_z is 256 x 384, the hyper-parameters need 256 x 352", "stack.embed_dim", NULL, 96},
        {"no widening", "blocks.0.gru.w_z is 256 x 384, the hyper-parameters need 256 x 512", "stack.embed_dim", NULL, 256},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(b, c, clen);
        uint32_t type = 0;
        size_t off = kv_value_off(c + h.hparams_off, (size_t)h.hparams_size, cases[k].key, &type) + (size_t)h.hparams_off;
        if (cases[k].sv) memcpy(b + off + 4, cases[k].sv, strlen(cases[k].sv));
        else tern_wr_u32(b + off, cases[k].v);
        TrtModel *m = NULL;
        RtErr e = {{0}};
        int rc = rt_load_container(&m, b, clen, "bad.tern", RT_ISA_SCALAR, 0, &e);
        CHECK(rc != 0 && strstr(e.msg, cases[k].expect) && !strchr(e.msg, '\n'), "%s: %s", cases[k].what, e.msg);
        if (!rc) trt_model_free(m);
    }
    printf("    damaged GRU hyper-parameters: %zu cases, each refused with one line\n", sizeof cases / sizeof cases[0]);
    free(c);
    free(b);
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    printf("test_runtime_gru\n");
    for (size_t ci = 0; ci < sizeof kCfgs / sizeof kCfgs[0]; ci++) {
        const ParityCfg *cf = &kCfgs[ci];
        ParityRun pr;
        if (parity_build(&pr, cf, 31 + ci, NULL)) {
            parity_done(&pr);
            continue;
        }
        CHECK(trt_model_info(pr.rm)->params == model_num_params(pr.m), "%s: parameter count", cf->name);
        parity_logits(&pr, cf, 150, 5 + ci);
        size_t H = trt_model_info(pr.rm)->dim, nrec = 0;
        for (const char *l = strstr(cf->model, "layout") ? strstr(cf->model, "layout") + 9 : "g"; *l && *l != '"'; l++) nrec++;
        state_check(&pr, cf, 100, nrec * ((H + 15) / 16 * 16));
        if (ci == 3) test_damage(&pr);
        parity_done(&pr);
    }
    return test_summary("test_runtime_gru");
}
