/* The baseline GPT: exact parameter count of the default config, a finite-difference check of
 * every parameter's gradient on a tiny config (odd layer count, GQA, each MLP activation), that
 * the check notices the final norm's backward 1% off, and determinism of the forward pass. */
#include <cjson/cJSON.h>
#include <string.h>

#include "autodiff/gradcheck.h"
#include "check.h"
#include "kernels/blas_core.h"
#include "model/model.h"
#include "wrong_grad.h"

typedef struct Ctx {
    Model *m;
    int32_t x[16], y[16];
    size_t B, T;
} Ctx;

static Tensor *loss_fn(Tape *tp, Tensor **in, void *user) {
    (void)in;
    Ctx *c = user;
    return model_loss(c->m, tp, c->x, c->y, c->B, c->T, NULL, 0);
}

/* the loss with the final RMSNorm's backward 1% too large: every gradient below it is off */
static Tensor *wrong_loss_fn(Tape *tp, Tensor **in, void *user) {
    Tensor *loss = loss_fn(tp, in, user);
    wrong_grad_arm(tp, "rmsnorm", 1.01f, -1);
    return loss;
}

/* The models here are smooth at the scale of a step (relu^2 and leaky_relu(0.5)^2 have a
 * continuous derivative): a step of 1e-2 instead of gradcheck's 1e-3 divides the float32
 * rounding in the difference quotients by 10 (Richardson extrapolation keeps the truncation at
 * O(h^4)), which is what lets a gradient 1% off show at the model level. */
static GradCheckOpts model_opts(void) {
    GradCheckOpts o = gradcheck_default_opts();
    o.eps = 1e-2;
    o.max_per_input = 12;
    return o;
}

static Model *make(const char *json, Err *err) {
    cJSON *cfg = cJSON_Parse(json);
    Model *m = NULL;
    if (model_create(&m, cfg, 1234, err)) printf("  model_create: %s\n", err->msg);
    cJSON_Delete(cfg);
    return m;
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    Err err = {0};
    printf("default baseline config\n");
    Model *m = make("{\"arch\":\"gpt\"}", &err);
    CHECK(m != NULL, "default model");
    if (m) {
        size_t n = model_num_params(m);
        printf("  parameters: %zu (reference 17,059,912)\n", n);
        CHECK(n == 17059912, "parameter count %zu", n);
        CHECK(m->ps.n == 1 + 1 + 9 * 10, "tensor count %zu", m->ps.n);
        model_free(m);
    }

    printf("bad configs are errors naming the key\n");
    const char *bad[] = {"{\"arch\":\"gpt\",\"heads\":3}", "{\"arch\":\"gpt\",\"layer\":3}",
                         "{\"arch\":\"gpt\",\"dim\":\"big\"}", "{\"arch\":\"gpt\",\"mlp_act\":\"gelu\"}",
                         "{\"arch\":\"nope\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err_clear(&err);
        Model *b = make(bad[i], &err);
        CHECK(b == NULL && err.msg[0], "%s accepted", bad[i]);
        model_free(b);
    }

    const char *acts[] = {"relu2", "leaky_relu2", "swiglu"};
    for (int a = 0; a < 3; a++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"arch\":\"gpt\",\"vocab_size\":11,\"layers\":3,\"dim\":8,\"heads\":2,\"kv_heads\":1,"
                 "\"mlp_mult\":2,\"seq_len\":8,\"mlp_act\":\"%s\",\"softcap\":3.0,\"zero_init_proj\":false,"
                 "\"embed_init_std\":0.5}", acts[a]);
        m = make(json, &err);
        if (!m) {
            g_failures++;
            continue;
        }
        Ctx c = {.m = m, .B = 2, .T = 5};
        for (int i = 0; i < 10; i++) {
            c.x[i] = (i * 7 + 3) % 11;
            c.y[i] = (i * 5 + 1) % 11;
        }
        GradCheckOpts o = model_opts();
        char name[64];
        snprintf(name, sizeof name, "gpt tiny (%s) all params", acts[a]);
        int bad_grads = gradcheck(name, loss_fn, m->ps.t, (int)m->ps.n, &c, &o, NULL);
        CHECK(bad_grads == 0, "gradient check failed");
        /* untied head as well */
        model_free(m);
    }
    {
        /* a Llama (model/llama.c): gradient check, then llama_to_gpt computes the same loss as a
         * GPT without embedding / q-k norms and with the norm gains folded into the weights */
        Model *lm = make("{\"arch\":\"llama\",\"vocab_size\":11,\"layers\":2,\"dim\":8,\"heads\":2,\"kv_heads\":1,"
                         "\"hidden\":12,\"seq_len\":8,\"tie_embeddings\":false,\"init_std\":0.3}", &err);
        CHECK(lm != NULL, "llama config");
        if (lm) {
            for (size_t p = 0; p < lm->ps.n; p++) /* norm gains away from 1, so folding matters */
                if (lm->ps.t[p]->ndim == 1)
                    for (size_t j = 0; j < lm->ps.t[p]->numel; j++) lm->ps.t[p]->data[j] = 0.5f + 0.1f * (float)(j % 7);
            Ctx c = {.m = lm, .B = 2, .T = 5};
            for (int i = 0; i < 10; i++) {
                c.x[i] = (i * 7 + 3) % 11;
                c.y[i] = (i * 5 + 1) % 11;
            }
            GradCheckOpts o = model_opts();
            CHECK(gradcheck("llama tiny (GQA, SwiGLU, untied) all params", loss_fn, lm->ps.t, (int)lm->ps.n, &c, &o, NULL) == 0,
                  "gradcheck");
            Model *gm = NULL;
            CHECK(llama_to_gpt(lm, &gm, &err) == 0, "llama_to_gpt: %s", err.msg);
            if (gm) {
                Tape tp;
                tape_init(&tp, 0);
                float a = model_loss(lm, &tp, c.x, c.y, 2, 5, NULL, 0)->data[0];
                tape_reset(&tp);
                float b = model_loss(gm, &tp, c.x, c.y, 2, 5, NULL, 0)->data[0];
                printf("  llama loss %.7f, as a GPT (gains folded, no emb/qk norm) %.7f\n", a, b);
                CHECK(fabsf(a - b) <= 1e-5f * fabsf(a), "llama_to_gpt changes the function");
                tape_free(&tp);
                model_free(gm);
            }
            model_free(lm);
        }
    }
    {
        m = make("{\"arch\":\"gpt\",\"vocab_size\":13,\"layers\":2,\"dim\":8,\"heads\":2,\"kv_heads\":2,"
                 "\"seq_len\":8,\"tie_embeddings\":false,\"zero_init_proj\":false,\"skips\":false,\"embed_init_std\":0.5}", &err);
        Ctx c = {.m = m, .B = 1, .T = 7};
        for (int i = 0; i < 7; i++) {
            c.x[i] = (i * 3) % 13;
            c.y[i] = (i * 4 + 2) % 13;
        }
        GradCheckOpts o = model_opts();
        CHECK(gradcheck("gpt tiny untied, no skips", loss_fn, m->ps.t, (int)m->ps.n, &c, &o, NULL) == 0, "gradcheck");
        GradCheckResult r;
        CHECK(gradcheck("  final norm backward x1.01 (must FAIL)", wrong_loss_fn, m->ps.t, (int)m->ps.n, &c, &o, &r) && r.failed,
              "a 1%% gradient error in the model went unnoticed");
        /* determinism: two forwards give the same bits */
        Tape tp;
        tape_init(&tp, 0);
        float l1 = model_loss(m, &tp, c.x, c.y, 1, 7, NULL, 0)->data[0];
        tape_reset(&tp);
        float l2 = model_loss(m, &tp, c.x, c.y, 1, 7, NULL, 0)->data[0];
        printf("  repeat forward: %.9g vs %.9g\n", l1, l2);
        CHECK(l1 == l2, "forward not deterministic");
        tape_free(&tp);
        model_free(m);
    }
    return test_summary("test_gpt");
}
