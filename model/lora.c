#include "model/lora.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/ops.h"

int lora_attach(Model *m, size_t rank, const char *const *globs, size_t nglobs, int head, Err *err) {
    if (rank == 0) return err_set(err, "LoRA rank must be positive");
    lora_detach(m);
    Lora *L = xcalloc(1, sizeof *L);
    L->rank = rank;
    L->pair_of = xmalloc(m->ps.n * sizeof(int32_t));
    L->A = xcalloc(m->ps.n, sizeof(Tensor *));
    L->B = xcalloc(m->ps.n, sizeof(Tensor *));
    params_init(&L->ps);
    char name[512];
    for (size_t i = 0; i < m->ps.n; i++) {
        const Tensor *t = m->ps.t[i];
        L->pair_of[i] = -1;
        if (t->ndim != 2) continue;
        int match = 0;
        for (size_t g = 0; g < nglobs && !match; g++) match = fnmatch(globs[g], t->name, 0) == 0;
        if (!match) continue;
        L->pair_of[i] = (int32_t)L->npairs;
        snprintf(name, sizeof name, "lora.%s.A", t->name);
        L->A[L->npairs] = params_add(&L->ps, name, 2, (size_t[]){rank, t->shape[1]});
        snprintf(name, sizeof name, "lora.%s.B", t->name);
        L->B[L->npairs] = params_add(&L->ps, name, 2, (size_t[]){t->shape[0], rank});
        L->npairs++;
    }
    if (head) {
        /* the head maps the final hidden state (width = tok_emb columns) to the vocabulary */
        Tensor *emb = params_find(&m->ps, "tok_emb.weight");
        if (!emb) {
            lora_detach(m);
            xfree(L->pair_of);
            xfree(L->A);
            xfree(L->B);
            xfree(L);
            return err_set(err, "LoRA head adapter: model has no tok_emb.weight");
        }
        L->headA = params_add(&L->ps, "lora.head.A", 2, (size_t[]){rank, emb->shape[1]});
        L->headB = params_add(&L->ps, "lora.head.B", 2, (size_t[]){m->vocab, rank});
    }
    params_finalize(&L->ps);
    m->lora = L;
    return (int)L->npairs + (head ? 1 : 0);
}

void lora_detach(Model *m) {
    Lora *L = m->lora;
    if (!L) return;
    params_free(&L->ps);
    xfree(L->pair_of);
    xfree(L->A);
    xfree(L->B);
    xfree(L);
    m->lora = NULL;
}

static void reset_pair(Tensor *A, Tensor *B, Rng *rng) {
    float bound = 1.0f / sqrtf((float)A->shape[1]);
    rng_fill_uniform(rng, A->data, A->numel, -bound, bound);
    memset(B->data, 0, B->numel * sizeof(float));
}

void lora_reset(Model *m, Rng *rng) {
    Lora *L = m->lora;
    if (!L) return;
    for (size_t i = 0; i < L->npairs; i++) reset_pair(L->A[i], L->B[i], rng);
    if (L->headA) reset_pair(L->headA, L->headB, rng);
    params_zero_grad(&L->ps);
}

Tensor *lora_delta(Model *m, Tape *tp, Tensor *x, const Tensor *W) {
    Lora *L = m->lora;
    if (!L || !W->is_param || (size_t)W->param_index >= m->ps.n) return NULL;
    int32_t k = L->pair_of[W->param_index];
    if (k < 0) return NULL;
    return op_linear(tp, op_linear(tp, x, L->A[k], NULL), L->B[k], NULL);
}

Tensor *model_head(Model *m, Tape *tp, Tensor *x, Tensor *W) {
    Tensor *y = op_linear(tp, x, W, NULL);
    Lora *L = m->lora;
    if (L && L->headA) y = op_add(tp, y, op_linear(tp, op_linear(tp, x, L->headA, NULL), L->headB, NULL));
    return y;
}
