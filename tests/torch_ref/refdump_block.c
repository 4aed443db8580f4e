/* refdump case "block_init": one block kind's forward and backward on its own (model/block.h), for the
 * PyTorch parity of a layer (tests/torch_ref/mlstm.py).
 *
 * Attributes: kind (registry name), cfg (JSON of the kind's keys), seed, layers (the stack's layer
 * count some inits read), perturb (> 0: every parameter += perturb * N(0, 1) after the kind's
 * init, so that zero-initialised gates and unit gains are exercised too). Datasets x [B, T, C]
 * (the normed residual the kind sees) and dout [B, T, C]. Writes params/<name>, y, dx and
 * grads/<name>. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/block.h"
#include "refdump_cases.h"

static int fail(const char *msg) {
    fprintf(stderr, "refdump: %s\n", msg);
    return 1;
}

int refdump_case_block(hid_t in, hid_t out) {
    Err err = {0};
    char *kname = h5_attr_get_str(in, "/", "kind", &err), *cjs = kname ? h5_attr_get_str(in, "/", "cfg", &err) : NULL;
    if (!cjs) return fail(err.msg);
    const BlockKind *k = block_kind_find(kname);
    if (!k) return fail("unknown block kind");
    Tensor *x = refdump_load(in, "x", 1), *dout = refdump_load(in, "dout", 0);
    size_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    void *cfg = calloc(1, k->cfg_bytes ? k->cfg_bytes : 1);
    k->defaults(cfg);
    cJSON *sec = cJSON_Parse(cjs);
    StackConfig sc = {.dim = C, .seq_len = T, .layers = (size_t)refdump_attr(in, "layers", 1), .mlp_mult = 2};
    if (cfg_read(sec, "model", k->fields, k->nfields, cfg, &err) || k->resolve(cfg, &sc, 1, &err)) return fail(err.msg);
    ParamStore ps;
    params_init(&ps);
    void *inst = calloc(1, k->inst_bytes);
    k->add_params(inst, cfg, &sc, &ps, "blocks.0.");
    params_finalize(&ps);
    Rng rng;
    rng_seed(&rng, (uint64_t)refdump_attr(in, "seed", 1));
    k->init(inst, cfg, &sc, &rng);
    float perturb = (float)refdump_attr(in, "perturb", 0);
    char name[512];
    for (size_t i = 0; i < ps.n; i++) {
        Tensor *t = ps.t[i];
        for (size_t j = 0; perturb > 0 && j < t->numel; j++) t->data[j] += perturb * rng_normal(&rng);
        snprintf(name, sizeof name, "params/%s", t->name);
        refdump_save(out, name, t, t->data);
    }
    Tape tp;
    tape_init(&tp, 0);
    BlockCtx ctx = {NULL, &tp, B, T, 0, &sc, NULL, 0};
    Tensor *y = k->forward(inst, cfg, &ctx, x);
    tape_backward_seed(&tp, y, dout->data);
    refdump_save(out, "y", y, y->data);
    refdump_save(out, "dx", x, tensor_grad(&tp, x));
    for (size_t i = 0; i < ps.n; i++) {
        snprintf(name, sizeof name, "grads/%s", ps.t[i]->name);
        refdump_save(out, name, ps.t[i], ps.t[i]->grad);
    }
    if (k->free_inst) k->free_inst(inst);
    tape_free(&tp);
    params_free(&ps);
    cJSON_Delete(sec);
    free(inst), free(cfg), free(kname), free(cjs);
    tensor_destroy(x), tensor_destroy(dout);
    return 0;
}
