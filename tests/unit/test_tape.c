/* Tape semantics: gradient accumulation across uses, no-grad records nothing, arena reset
 * leaves parameters intact, and a repeated step allocates nothing. */
#include <string.h>

#include "autodiff/ops.h"
#include "autodiff/params.h"
#include "check.h"
#include "kernels/blas_core.h"
#include "kernels/util.h"

static Tensor *model_step(Tape *tp, ParamStore *ps, const float *xin, size_t N) {
    Tensor *W = params_find(ps, "w"), *b = params_find(ps, "b");
    Tensor *x = tensor_new2(tp, N, 4);
    memcpy(x->data, xin, N * 4 * sizeof(float));
    Tensor *h = op_linear(tp, x, W, b);
    h = op_add(tp, op_silu(tp, h), h); /* h used twice */
    return op_mean(tp, op_mul(tp, h, h));
}

int main(int argc, char **argv) {
    (void)argc;
    blas_core_setup(argv, 1);
    printf("tape: accumulation across uses\n");
    {
        /* y = x*x + 3x  =>  dy/dx = 2x + 3, x used three times */
        Tape tp;
        tape_init(&tp, 0);
        Tensor *x = tensor_create(1, (size_t[]){3}, 1, "x");
        float xv[3] = {0.5f, -2.0f, 4.0f};
        memcpy(x->data, xv, sizeof xv);
        Tensor *y = op_sum(&tp, op_add(&tp, op_mul(&tp, x, x), op_scale(&tp, x, 3.0f)));
        tape_backward(&tp, y);
        for (int i = 0; i < 3; i++) {
            float want = 2 * xv[i] + 3;
            printf("  dy/dx[%d] = %.6f (want %.6f)\n", i, x->grad[i], want);
            CHECK(fabsf(x->grad[i] - want) < 1e-6f, "accumulated gradient wrong");
        }
        /* a second backward over a new step adds on top (+= semantics) */
        tape_reset(&tp);
        y = op_sum(&tp, op_scale(&tp, x, 2.0f));
        tape_backward(&tp, y);
        CHECK(fabsf(x->grad[0] - (2 * xv[0] + 3 + 2)) < 1e-6f, "grads must accumulate across backward calls");
        tensor_destroy(x);
        tape_free(&tp);
    }

    printf("tape: no-grad mode records nothing\n");
    ParamStore ps;
    params_init(&ps);
    Tensor *W = params_add(&ps, "w", 2, (size_t[]){5, 4});
    Tensor *b = params_add(&ps, "b", 1, (size_t[]){5});
    params_finalize(&ps);
    for (size_t i = 0; i < W->numel; i++) W->data[i] = 0.1f * (float)((int)(i % 7) - 3);
    for (size_t i = 0; i < b->numel; i++) b->data[i] = 0.05f * (float)i;
    CHECK(ps.total >= 25 && W->data == ps.values && b->grad == ps.grads + (b->data - ps.values),
          "params must be slices of one value and one grad buffer");
    float xin[6 * 4];
    for (int i = 0; i < 24; i++) xin[i] = 0.3f * (float)(i % 5) - 0.5f;
    Tape tp;
    tape_init(&tp, 0);
    tape_no_grad_begin(&tp);
    Tensor *loss_ng = model_step(&tp, &ps, xin, 6);
    printf("  entries recorded in no-grad: %zu\n", tp.n);
    CHECK(tp.n == 0, "no-grad recorded %zu entries", tp.n);
    float loss_nograd = loss_ng->data[0];
    tape_no_grad_end(&tp);
    tape_reset(&tp);
    Tensor *loss = model_step(&tp, &ps, xin, 6);
    printf("  entries recorded with grad: %zu; loss %.7f vs no-grad %.7f\n", tp.n, loss->data[0], loss_nograd);
    CHECK(tp.n > 0, "nothing recorded");
    CHECK(loss->data[0] == loss_nograd, "no-grad forward differs");

    printf("tape: arena reset leaves parameters intact\n");
    float *snapshot = xmalloc(ps.total * sizeof(float));
    memcpy(snapshot, ps.values, ps.total * sizeof(float));
    tape_backward(&tp, loss);
    float *gsnap = xmalloc(ps.total * sizeof(float));
    memcpy(gsnap, ps.grads, ps.total * sizeof(float));
    tape_reset(&tp);
    /* scribble over the arena */
    for (int i = 0; i < 10; i++) memset(arena_alloc(&tp.arena, 4096), 0xAB, 4096);
    CHECK(memcmp(snapshot, ps.values, ps.total * sizeof(float)) == 0, "parameters changed by reset");
    CHECK(memcmp(gsnap, ps.grads, ps.total * sizeof(float)) == 0, "parameter grads changed by reset");
    double gn = 0;
    for (size_t i = 0; i < ps.total; i++) gn += fabs(gsnap[i]);
    CHECK(gn > 0, "no gradient reached the parameters");

    printf("tape: no allocation after the first step\n");
    tape_reset(&tp);
    for (int step = 0; step < 4; step++) {
        tape_reset(&tp);
        Tensor *l = model_step(&tp, &ps, xin, 6);
        tape_backward(&tp, l);
        if (step == 1) {
            size_t blocks = tp.arena.block_allocs, reallocs = tp.entry_reallocs;
            for (int s2 = 0; s2 < 3; s2++) {
                tape_reset(&tp);
                l = model_step(&tp, &ps, xin, 6);
                tape_backward(&tp, l);
            }
            printf("  arena mallocs %zu -> %zu, tape reallocs %zu -> %zu\n", blocks, tp.arena.block_allocs,
                   reallocs, tp.entry_reallocs);
            CHECK(tp.arena.block_allocs == blocks && tp.entry_reallocs == reallocs, "hot loop allocated");
        }
    }
    /* a big first step spills into several blocks; after reset it is one block */
    Tape t2;
    tape_init(&t2, 4096);
    for (int i = 0; i < 50; i++) arena_alloc(&t2.arena, 3000);
    tape_reset(&t2);
    size_t before = t2.arena.block_allocs;
    for (int i = 0; i < 50; i++) arena_alloc(&t2.arena, 3000);
    tape_reset(&t2);
    printf("  spill step then steady: block allocs %zu -> %zu\n", before, t2.arena.block_allocs);
    CHECK(t2.arena.block_allocs == before, "arena did not consolidate");
    tape_free(&t2);

    /* marks: a release forgets what came after it, keeps what came before, reuses the emptied
     * blocks without malloc, and the next reset makes one block of the peak of LIVE bytes */
    Arena ar;
    arena_init(&ar, 4096);
    float *keep = arena_alloc(&ar, 1000 * sizeof(float));
    for (int i = 0; i < 1000; i++) keep[i] = (float)i;
    ArenaMark mk = arena_mark(&ar);
    size_t live0 = ar.used_total;
    for (int i = 0; i < 20; i++) memset(arena_alloc(&ar, 5000), 0xCD, 5000); /* spills into new blocks */
    size_t peak = ar.used_total, allocs = ar.block_allocs;
    arena_release(&ar, mk);
    CHECK(ar.used_total == live0, "release: used %zu, expected %zu", ar.used_total, live0);
    for (int i = 0; i < 20; i++) memset(arena_alloc(&ar, 5000), 0xEF, 5000);
    CHECK(ar.block_allocs == allocs, "release: refilling the released bytes allocated (%zu -> %zu)", allocs,
          ar.block_allocs);
    int intact = 1;
    for (int i = 0; i < 1000; i++) intact &= keep[i] == (float)i;
    CHECK(intact, "release: bytes allocated before the mark were overwritten");
    arena_release(&ar, mk);
    CHECK(ar.high_water == peak, "high water %zu, expected the live peak %zu", ar.high_water, peak);
    arena_reset(&ar);
    size_t steady = ar.block_allocs;
    CHECK(ar.head && !ar.head->next && !ar.spare && ar.head->cap >= peak, "reset did not consolidate the released blocks");
    mk = arena_mark(&ar);
    for (int i = 0; i < 20; i++) arena_alloc(&ar, 5000);
    arena_release(&ar, mk);
    arena_reset(&ar);
    CHECK(ar.block_allocs == steady, "a marked step of the same shape allocated after the reset");
    printf("  marks: release keeps %zu B, peak %zu B, reuse without malloc: ok\n", live0, peak);
    arena_free(&ar);

    xfree(snapshot);
    xfree(gsnap);
    tape_free(&tp);
    params_free(&ps);
    return test_summary("test_tape");
}
