/* arena.h — per-step bump allocator for activations, saved context and activation grads.
 *
 * arena_alloc carves 64-byte aligned blocks; arena_reset forgets them all at once. When a step
 * needed more than the first block, reset replaces the chain by one block of the high-water size,
 * so from the second step on, a step of the same shape never calls malloc.
 *
 * Marks (forward-only work): arena_mark records the bump position; arena_release drops every
 * block handed out after it, so a no-grad forward can free a layer's scratch as soon as the
 * layer's output has been copied below the mark. Blocks emptied by a release are kept as spares
 * and reused before any new malloc; high_water is then the peak of LIVE bytes, which is what the
 * block made at the next reset must hold. */
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
    ArenaBlock *spare;      /* blocks emptied by arena_release, reused before malloc */
    size_t used_total;      /* bytes handed out since the last reset */
    size_t high_water;      /* max used_total over the arena's life */
    size_t block_allocs;    /* number of malloc calls made (for the no-malloc test) */
} Arena;

typedef struct ArenaMark {
    ArenaBlock *block;      /* head at the mark (NULL: the arena was empty) */
    size_t used, used_total;
} ArenaMark;

void arena_init(Arena *a, size_t initial_bytes);
void *arena_alloc(Arena *a, size_t bytes);          /* uninitialised */
void *arena_calloc(Arena *a, size_t n, size_t size); /* zeroed */
void arena_reset(Arena *a);
void arena_free(Arena *a);
size_t arena_capacity(const Arena *a);
ArenaMark arena_mark(const Arena *a);
/* Forget everything allocated after m (m must come from this arena since its last reset, and
 * marks are released in LIFO order). */
void arena_release(Arena *a, ArenaMark m);

#endif
