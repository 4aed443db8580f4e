#include "autodiff/arena.h"

#include <string.h>

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
        size_t cap = a->head ? a->head->cap * 2 : ((size_t)1 << 20);
        if (cap < need) cap = need;
        ArenaBlock *b = block_new(a, cap);
        b->next = a->head;
        a->head = b;
    }
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
    if (a->head && a->head->next) {
        /* More than one block this step: replace them with one block big enough for all. */
        size_t cap = a->high_water + (a->high_water >> 4);
        free_chain(a->head);
        a->head = block_new(a, cap);
    } else if (a->head) {
        a->head->used = 0;
    }
    a->used_total = 0;
}

void arena_free(Arena *a) {
    free_chain(a->head);
    memset(a, 0, sizeof *a);
}

size_t arena_capacity(const Arena *a) {
    size_t c = 0;
    for (const ArenaBlock *b = a->head; b; b = b->next) c += b->cap;
    return c;
}
