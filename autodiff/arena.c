#include "autodiff/arena.h"

#include <string.h>

#include "autodiff/tensor.h"
#include "kernels/util.h"

static ArenaBlock *block_new(Arena *a, size_t cap) {
    ArenaBlock *b = xcalloc(1, sizeof *b);
    b->cap = cap;
    b->mem = xmalloc(cap);
    a->block_allocs++;
    return b;
}

void arena_init(Arena *a, size_t initial_bytes) {
    memset(a, 0, sizeof *a);
    if (initial_bytes) a->head = block_new(a, initial_bytes);
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t need = (bytes + 63) & ~(size_t)63;
    if (need == 0) need = 64;
    if (!a->head || a->head->used + need > a->head->cap) {
        ArenaBlock **sp = &a->spare;
        while (*sp && (*sp)->cap < need) sp = &(*sp)->next;
        if (*sp) { /* a block emptied by a release: no malloc */
            ArenaBlock *b = *sp;
            *sp = b->next;
            b->used = 0;
            b->next = a->head;
            a->head = b;
            goto carve;
        }
        size_t cap = a->head ? a->head->cap * 2 : ((size_t)1 << 20);
        if (cap < need) cap = need;
        ArenaBlock *b = block_new(a, cap);
        b->next = a->head;
        a->head = b;
    }
carve:;
    void *p = a->head->mem + a->head->used;
    a->head->used += need;
    a->used_total += need;
    if (a->used_total > a->high_water) a->high_water = a->used_total;
    return p;
}

void *arena_calloc(Arena *a, size_t n, size_t size) {
    void *p = arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

static void free_chain(ArenaBlock *b) {
    while (b) {
        ArenaBlock *n = b->next;
        xfree(b->mem);
        xfree(b);
        b = n;
    }
}

void arena_reset(Arena *a) {
    if ((a->head && a->head->next) || a->spare) {
        /* More than one block this step: replace them with one block big enough for the step's
         * peak of live bytes. */
        size_t cap = a->high_water + (a->high_water >> 4);
        free_chain(a->head);
        free_chain(a->spare);
        a->spare = NULL;
        a->head = block_new(a, cap);
    } else if (a->head) {
        a->head->used = 0;
    }
    a->used_total = 0;
}

void arena_free(Arena *a) {
    free_chain(a->head);
    free_chain(a->spare);
    memset(a, 0, sizeof *a);
}

size_t arena_capacity(const Arena *a) {
    size_t c = 0;
    for (const ArenaBlock *b = a->head; b; b = b->next) c += b->cap;
    for (const ArenaBlock *b = a->spare; b; b = b->next) c += b->cap;
    return c;
}

ArenaMark arena_mark(const Arena *a) {
    ArenaMark m = {a->head, a->head ? a->head->used : 0, a->used_total};
    return m;
}

void arena_release(Arena *a, ArenaMark m) {
    while (a->head != m.block) {
        TERN_CHECK(a->head, "arena_release: the mark is not from this arena");
        ArenaBlock *b = a->head;
        a->head = b->next;
        b->next = a->spare;
        a->spare = b;
    }
    if (a->head) a->head->used = m.used;
    a->used_total = m.used_total;
}
