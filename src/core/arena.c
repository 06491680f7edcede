/* arena.c — bump allocation in linked blocks; see arena.h. */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    struct arena_block *next;
    size_t size; /* usable bytes in data[] */
    size_t used;
    _Alignas(16) unsigned char data[];
};

void arena_init(struct arena *a, size_t block_size)
{
    a->head = NULL;
    a->block_size = block_size < 256 ? 256 : block_size;
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n || need > SIZE_MAX - sizeof(struct arena_block))
        return NULL; /* the request cannot be represented: out of memory, not an overflow */

    struct arena_block *b = a->head;
    if (b == NULL || b->size - b->used < need) {
        size_t size = need > a->block_size ? need : a->block_size;
        struct arena_block *nb = malloc(sizeof *nb + size);
        if (nb == NULL)
            return NULL;
        nb->size = size;
        nb->used = 0;
        if (b != NULL && need > a->block_size) {
            /* An oversized request gets its own block behind the current one, so the
             * current block's free space stays usable. */
            nb->next = b->next;
            b->next = nb;
            nb->used = need;
            return nb->data;
        }
        nb->next = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

void *arena_calloc(struct arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void arena_adopt(struct arena *dst, struct arena *src)
{
    struct arena_block *first = src->head;
    src->head = NULL;
    if (first == NULL)
        return;
    if (dst->head == NULL) {
        dst->head = first;
        return;
    }
    /* Behind dst's current block, so its free space stays in use. */
    struct arena_block *last = first;
    while (last->next != NULL)
        last = last->next;
    last->next = dst->head->next;
    dst->head->next = first;
}

void arena_reset(struct arena *a)
{
    struct arena_block *b = a->head;
    if (b == NULL)
        return;
    /* Keep the newest block (the largest the arena has grown to be useful with). */
    struct arena_block *rest = b->next;
    while (rest != NULL) {
        struct arena_block *next = rest->next;
        free(rest);
        rest = next;
    }
    b->next = NULL;
    b->used = 0;
}

void arena_free(struct arena *a)
{
    struct arena_block *b = a->head;
    while (b != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}
