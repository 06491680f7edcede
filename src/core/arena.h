/* arena.h — a bump allocator for memory that dies together.
 *
 * Parsing a request allocates its readings, strings and results from one arena and frees
 * them with one call, so the hot path does not call malloc per reading. Allocations are
 * 16-byte aligned. An arena is owned by one thread at a time. */
#ifndef CANARY_CORE_ARENA_H
#define CANARY_CORE_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
    struct arena_block *head; /* current block; older blocks follow via ->next */
    size_t block_size;        /* size of a new block (larger requests get their own) */
};

/* Prepares an empty arena; no memory is allocated until the first arena_alloc(). */
void arena_init(struct arena *a, size_t block_size);

/* Returns n bytes (16-byte aligned, uninitialised), or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);

/* Returns n zeroed bytes, or NULL. */
void *arena_calloc(struct arena *a, size_t n);

/* Copies len bytes of s and a terminating NUL into the arena. Returns NULL when out of memory. */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/* Moves every block of src into dst (src is left empty and may be reused after
 * arena_init()). What was allocated from src now lives, and dies, with dst. */
void arena_adopt(struct arena *dst, struct arena *src);

/* Frees everything but the first block, which is kept for reuse. */
void arena_reset(struct arena *a);

/* Frees all memory; the arena may be reused after arena_init(). */
void arena_free(struct arena *a);

#endif
