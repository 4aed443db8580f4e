#include "model/lora.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/rng.h"

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
    L->scale = 1.0f;
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

void lora_configure(Model *m, float scale, float dropout, uint64_t seed) {
    Lora *L = m->lora;
    if (!L) return;
    L->scale = scale;
    L->dropout = dropout;
    L->seed = seed;
}

/* scale * (drop(x) A^T) B^T: x [.., in] -> [.., r] -> [.., out] */
static Tensor *adapter(Tape *tp, Tensor *x, Tensor *A, Tensor *B, float scale, float p, uint64_t key) {
    Tensor *h = op_linear(tp, op_dropout(tp, x, p, key), A, NULL);
    Tensor *d = op_linear(tp, h, B, NULL);
    return scale == 1.0f ? d : op_scale(tp, d, scale);
}

Tensor *lora_linear(Tape *tp, Tensor *x, Tensor *W, Tensor *b, Tensor *A, Tensor *B, float scale, float p, uint64_t key) {
    return op_add(tp, op_linear(tp, x, W, b), adapter(tp, x, A, B, scale, p, key));
}

/* the dropout rate and mask key of adapter k in the current forward (rate 0 outside training) */
static float drop_of(const Lora *L, size_t k, uint64_t *key) {
    *key = rng_hash(L->seed ^ 0x6c6f7261ull, L->forward_id * 1048573ull + k);
    return L->training ? L->dropout : 0.0f;
}

Tensor *lora_delta(Model *m, Tape *tp, Tensor *x, const Tensor *W) {
    Lora *L = m->lora;
    if (!L || !W->is_param || (size_t)W->param_index >= m->ps.n) return NULL;
    int32_t k = L->pair_of[W->param_index];
    if (k < 0) return NULL;
    uint64_t key;
    float p = drop_of(L, (size_t)k, &key);
    return adapter(tp, x, L->A[k], L->B[k], L->scale, p, key);
}

Tensor *lora_apply(Model *m, Tape *tp, Tensor *x, Tensor *W, Tensor *b) {
    Lora *L = m->lora;
    if (!L || !W->is_param || (size_t)W->param_index >= m->ps.n) return NULL;
    int32_t k = L->pair_of[W->param_index];
    if (k < 0) return NULL;
    uint64_t key;
    float p = drop_of(L, (size_t)k, &key);
    return op_lora_linear(tp, x, W, b, L->A[k], L->B[k], L->scale, p, key);
}

Tensor *model_head(Model *m, Tape *tp, Tensor *x, Tensor *W) {
    Tensor *y = op_linear(tp, x, W, NULL);
    Lora *L = m->lora;
    if (L && L->headA) {
        uint64_t key;
        float p = drop_of(L, L->npairs, &key);
        y = op_add(tp, y, adapter(tp, x, L->headA, L->headB, L->scale, p, key));
    }
    return y;
}

/* W [out, in] += scale * B [out, r] A [r, in], accumulated in double per element */
static void merge_pair(float *W, const Tensor *A, const Tensor *B, float scale) {
    size_t out = B->shape[0], r = A->shape[0], in = A->shape[1];
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < out; i++)
        for (size_t j = 0; j < in; j++) {
            double acc = 0;
            for (size_t k = 0; k < r; k++) acc += (double)B->data[i * r + k] * (double)A->data[k * in + j];
            W[i * in + j] += (float)((double)scale * acc);
        }
}

void lora_merge(Model *m) {
    Lora *L = m->lora;
    if (!L) return;
    for (size_t i = 0; i < m->ps.n; i++)
        if (L->pair_of[i] >= 0) merge_pair(m->ps.t[i]->data, L->A[L->pair_of[i]], L->B[L->pair_of[i]], L->scale);
    if (L->headA) {
        Tensor *head = params_find(&m->ps, "lm_head.weight");
        if (!head) head = params_find(&m->ps, "output.weight");
        /* a tied head's adapter cannot be folded: the embedding lookup would change too */
        TERN_CHECK(head, "lora_merge: the head adapter of a tied head cannot be merged");
        merge_pair(head->data, L->headA, L->headB, L->scale);
    }
    lora_detach(m);
}

/* FNV-1a, 64-bit, over n bytes */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t lora_params_hash(const ParamStore *ps) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < ps->n; i++) {
        const Tensor *t = ps->t[i];
        h = fnv1a(h, t->name, strlen(t->name) + 1);
        for (int d = 0; d < t->ndim; d++) {
            uint64_t s = t->shape[d];
            h = fnv1a(h, &s, sizeof s);
        }
        h = fnv1a(h, t->data, t->numel * sizeof(float));
    }
    return h;
}
