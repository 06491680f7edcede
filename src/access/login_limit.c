/* login_limit.c — failures and lockouts per login key in a bounded table; see
 * login_limit.h. A linear table: it holds at most a few thousand keys and is touched only
 * by logins, which cost an scrypt hash (tens of milliseconds) each anyway. */
#include "access/login_limit.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char key[LOGIN_LIMIT_KEY_MAX];
    unsigned failures;
    int64_t window_start_ms;
    int64_t blocked_until_ms;
    unsigned lockouts; /* lockouts so far: each doubles the next */
    int64_t last_ms;   /* last activity, for eviction */
};

struct login_limit {
    struct login_limit_config c;
    struct entry *e;
    size_t n, cap;
};

int login_limit_new(struct login_limit **out, const struct login_limit_config *c, size_t capacity)
{
    struct login_limit *l = calloc(1, sizeof *l);
    if (l == NULL || capacity == 0 || (l->e = calloc(capacity, sizeof *l->e)) == NULL) {
        free(l);
        return CANARY_ENOMEM;
    }
    l->c = *c;
    l->cap = capacity;
    *out = l;
    return CANARY_OK;
}

void login_limit_free(struct login_limit *l)
{
    if (l == NULL)
        return;
    free(l->e);
    free(l);
}

static struct entry *find(struct login_limit *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].key, key) == 0)
            return &l->e[i];
    return NULL;
}

/* A slot for a new key: a free one, else the least recently used key that is not locked
 * out, else the one whose lockout ends first. */
static struct entry *slot(struct login_limit *l, int64_t now_ms)
{
    if (l->n < l->cap)
        return &l->e[l->n++];
    struct entry *idle = NULL, *locked = NULL;
    for (size_t i = 0; i < l->n; i++) {
        struct entry *e = &l->e[i];
        if (e->blocked_until_ms > now_ms) {
            if (locked == NULL || e->blocked_until_ms < locked->blocked_until_ms)
                locked = e;
        } else if (idle == NULL || e->last_ms < idle->last_ms) {
            idle = e;
        }
    }
    return idle != NULL ? idle : locked;
}

int64_t login_limit_blocked_ms(struct login_limit *l, const char *key, int64_t now_ms)
{
    struct entry *e = find(l, key);
    if (e == NULL || e->blocked_until_ms <= now_ms)
        return 0;
    return e->blocked_until_ms - now_ms;
}

int64_t login_limit_fail(struct login_limit *l, const char *key, unsigned max_failures,
                         int64_t now_ms)
{
    struct entry *e = find(l, key);
    if (e == NULL) {
        e = slot(l, now_ms);
        memset(e, 0, sizeof *e);
        snprintf(e->key, sizeof e->key, "%s", key);
    }
    e->last_ms = now_ms;
    if (e->failures == 0 || now_ms - e->window_start_ms > l->c.window_ms) {
        e->failures = 0;
        e->window_start_ms = now_ms;
    }
    e->failures++;
    if (e->failures < max_failures)
        return 0;
    int64_t lock = l->c.lockout_ms;
    for (unsigned i = 0; i < e->lockouts && lock < l->c.lockout_max_ms; i++)
        lock *= 2;
    if (lock > l->c.lockout_max_ms)
        lock = l->c.lockout_max_ms;
    e->lockouts++;
    e->failures = 0;
    e->blocked_until_ms = now_ms + lock;
    return lock;
}

void login_limit_succeed(struct login_limit *l, const char *key)
{
    struct entry *e = find(l, key);
    if (e == NULL)
        return;
    *e = l->e[--l->n];
}

size_t login_limit_size(const struct login_limit *l)
{
    return l->n;
}
