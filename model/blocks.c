#include "model/blocks.h"

#include "model/qat.h"

Tensor *attn_block_forward(Model *m, Tape *tp, const AttnBlockW *w, const AttnBlockCfg *c, Tensor *x, Tensor *x0,
                           size_t B, size_t T) {
    size_t C = c->dim, H = c->heads, G = c->kv_heads, D = c->head_dim;
    float eps = c->eps;
    Tensor *m0 = tensor_view(tp, w->resid_mix, 0, 1, &C);
    Tensor *m1 = tensor_view(tp, w->resid_mix, C, 1, &C);
    x = op_mix(tp, x, m0, x0, m1);
    Tensor *h = op_rmsnorm(tp, x, NULL, eps);
    Tensor *q = op_reshape(tp, model_linear(m, tp, h, w->c_q, NULL), 4, (size_t[]){B, T, H, D});
    Tensor *k = op_reshape(tp, model_linear(m, tp, h, w->c_k, NULL), 4, (size_t[]){B, T, G, D});
    Tensor *v = op_reshape(tp, model_linear(m, tp, h, w->c_v, NULL), 4, (size_t[]){B, T, G, D});
    if (!c->no_qk_norm) {
        q = op_rmsnorm_heads(tp, q, D, eps);
        k = op_rmsnorm_heads(tp, k, D, eps);
    }
    Tensor *y = op_attention(tp, q, k, v, w->q_gain, c->rope, 0.0f);
    y = op_reshape(tp, y, 3, (size_t[]){B, T, C});
    if (c->subln) y = op_rmsnorm(tp, y, NULL, eps);
    y = model_linear(m, tp, y, w->proj, NULL);
    x = op_add_mul(tp, x, w->attn_scale, y);
    h = op_rmsnorm(tp, x, NULL, eps);
    Tensor *u = model_linear(m, tp, h, w->fc, NULL);
    u = c->swiglu ? op_swiglu(tp, u) : op_act(tp, u, c->act);
    if (c->subln) u = op_rmsnorm(tp, u, NULL, eps);
    u = model_linear(m, tp, u, w->mlp_proj, NULL);
    return op_add_mul(tp, x, w->mlp_scale, u);
}
