/* arena.h — per-step bump allocator for activations, saved context and activation grads.
 *
 * arena_alloc carves 64-byte aligned blocks; arena_reset forgets them all at once. When a step
 * needed more than the first block, reset replaces the chain by one block of the high-water size,
 * so from the second step on, a step of the same shape never calls malloc. */
#ifndef TERN_ARENA_H
#define TERN_ARENA_H

#include <stddef.h>

typedef struct ArenaBlock {
    struct ArenaBlock *next;
    size_t cap, used;
    unsigned char *mem;
} ArenaBlock;

typedef struct Arena {
    ArenaBlock *head;       /* current block (most recent) */
    size_t used_total;      /* bytes handed out since the last reset */
    size_t high_water;      /* max used_total over the arena's life */
    size_t block_allocs;    /* number of malloc calls made (for the no-malloc test) */
} Arena;

void arena_init(Arena *a, size_t initial_bytes);
void *arena_alloc(Arena *a, size_t bytes);          /* uninitialised */
void *arena_calloc(Arena *a, size_t n, size_t size); /* zeroed */
void arena_reset(Arena *a);
void arena_free(Arena *a);
size_t arena_capacity(const Arena *a);

#endif
