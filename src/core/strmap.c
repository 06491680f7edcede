/* strmap.c — open-addressing string map; see strmap.h. The table grows at 70% load, and
 * there is no delete (devices and metrics only ever appear), which keeps probing simple. */
#include "core/strmap.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

uint64_t strmap_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

void strmap_init(struct strmap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void strmap_free(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    strmap_init(m);
}

static struct strmap_entry *probe(const struct strmap *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct strmap_entry *e = &m->slots[i];
        if (e->key == NULL || (e->hash == h && strcmp(e->key, key) == 0))
            return e;
    }
}

void *strmap_get(const struct strmap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    struct strmap_entry *e = probe(m, key, strmap_hash(key));
    return e->key != NULL ? e->value : NULL;
}

static int grow(struct strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct strmap_entry *slots = calloc(cap, sizeof *slots);
    if (slots == NULL)
        return CANARY_ENOMEM;
    struct strmap old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slots[i].key != NULL)
            *probe(m, old.slots[i].key, old.slots[i].hash) = old.slots[i];
    }
    free(old.slots);
    return CANARY_OK;
}

int strmap_put(struct strmap *m, const char *key, void *value)
{
    if ((m->count + 1) * 10 > m->cap * 7 && grow(m) != 0)
        return CANARY_ENOMEM;
    uint64_t h = strmap_hash(key);
    struct strmap_entry *e = probe(m, key, h);
    if (e->key == NULL) {
        e->key = strdup(key);
        if (e->key == NULL)
            return CANARY_ENOMEM;
        e->hash = h;
        m->count++;
    }
    e->value = value;
    return CANARY_OK;
}

void strmap_each(const struct strmap *m, void (*fn)(void *arg, const char *key, void *value),
                 void *arg)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != NULL)
            fn(arg, m->slots[i].key, m->slots[i].value);
    }
}
