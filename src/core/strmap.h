/* strmap.h — a hash map from strings to pointers (open addressing, linear probing).
 *
 * Keys are copied into the map; values are caller-owned pointers. Lookups do not allocate.
 * Not thread-safe: a map belongs to one thread (a worker's devices, the writer's ids). */
#ifndef CANARY_CORE_STRMAP_H
#define CANARY_CORE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_entry {
    char *key; /* NULL: empty slot */
    uint64_t hash;
    void *value;
};

struct strmap {
    struct strmap_entry *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
};

/* FNV-1a 64-bit hash of a string; also what shards devices across workers. */
uint64_t strmap_hash(const char *s);

void strmap_init(struct strmap *m);

/* Frees the map's slots and key copies (not the values). */
void strmap_free(struct strmap *m);

/* Returns the value stored under key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);

/* Stores value under key (replacing an existing value). Returns 0 or CANARY_ENOMEM. */
int strmap_put(struct strmap *m, const char *key, void *value);

/* Calls fn for every entry, in no particular order. The map must not change meanwhile. */
void strmap_each(const struct strmap *m, void (*fn)(void *arg, const char *key, void *value),
                 void *arg);

#endif
