/* login_limit.h — how often a login may fail: per user name and per source address, a
 * lockout after too many failures in a window, longer at each repeat.
 *
 * A key ("user:alice", "addr:192.0.2.7") may fail max_failures times within window_ms;
 * the failure that reaches the limit locks the key out for lockout_ms, doubled at each
 * further lockout up to lockout_max_ms (30 s, 60 s, 120 s, ... with the defaults). A
 * successful login clears its key. While a key is locked out the caller answers 429 with
 * Retry-After and checks no password (so a locked-out guesser costs no scrypt time).
 *
 * The table is bounded (capacity keys): when it is full the least recently used key that
 * is not locked out is forgotten first, so a flood of made-up user names cannot grow
 * memory; if every key is locked out the oldest lockout is forgotten. Not thread-safe: the
 * owner serialises calls. Times are monotonic milliseconds. */
#ifndef CANARY_ACCESS_LOGIN_LIMIT_H
#define CANARY_ACCESS_LOGIN_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOGIN_LIMIT_KEY_MAX 80

struct login_limit_config {
    int64_t window_ms;      /* failures older than this are forgotten */
    int64_t lockout_ms;     /* the first lockout */
    int64_t lockout_max_ms; /* the longest lockout */
};

struct login_limit;

/* Returns 0 or CANARY_ENOMEM. */
int login_limit_new(struct login_limit **out, const struct login_limit_config *c, size_t capacity);
void login_limit_free(struct login_limit *l);

/* 0 when key may try now, else the milliseconds until it may. */
int64_t login_limit_blocked_ms(struct login_limit *l, const char *key, int64_t now_ms);

/* Records a failure of key, allowed max_failures in a window. Returns the lockout it
 * started in ms (0 when none started). */
int64_t login_limit_fail(struct login_limit *l, const char *key, unsigned max_failures,
                         int64_t now_ms);

/* Forgets key's failures and lockouts (a successful login). */
void login_limit_succeed(struct login_limit *l, const char *key);

/* Keys tracked now (for tests and stats). */
size_t login_limit_size(const struct login_limit *l);

#endif
