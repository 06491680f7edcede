/* limiter.h — token buckets for many keys (client addresses, device ids) in a table of fixed
 * size, safe to call from many threads at once.
 *
 * Each key has a bucket of `burst` tokens refilled at `rate` tokens per second; a call takes
 * `cost` tokens or is refused with the time until it could pass. The table never grows: it
 * holds `capacity` buckets (rounded up to a power of two), 8 per set, a key's set chosen by a
 * keyed hash (SipHash-2-4 under a random key drawn at creation, so an attacker cannot aim
 * many keys at one set). A key that finds its set full takes the place of the bucket used
 * least recently; that bucket's history is lost (its key starts again with a full bucket).
 * So memory is bounded under a flood of new keys, and a key that keeps sending stays in the
 * table because it is always the most recently used of its set. Keys are identified by their
 * 64-bit hash (two keys with the same hash share a bucket; with a secret hash key an attacker
 * cannot find such a pair).
 *
 * Cost of a check (bench/bench_limiter.c, docs/BENCHMARKS.md): one SipHash of the key, one
 * mutex (one of up to 1,024 stripes), a scan of 8 entries. */
#ifndef CANARY_CORE_LIMITER_H
#define CANARY_CORE_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct limiter;

/* Creates a table of at least capacity buckets (at least 8). rate > 0 tokens per second,
 * burst >= 1. Returns 0, CANARY_EINVAL (bad arguments) or CANARY_ENOMEM. */
int limiter_create(struct limiter **out, double rate, double burst, size_t capacity);

/* Frees the table. NULL is fine. */
void limiter_free(struct limiter *l);

/* Takes cost tokens from key's bucket at now_ms (monotonic). Returns true when they were
 * there. Otherwise takes nothing, returns false and sets *retry_after_ms (when not NULL) to
 * the wait until cost tokens will be there (cost > burst never passes: the wait is then the
 * time to refill the whole bucket). Thread-safe. */
bool limiter_take(struct limiter *l, const void *key, size_t key_len, double cost, int64_t now_ms,
                  int64_t *retry_after_ms);

/* Gives back tokens taken by limiter_take() (when the caller refuses the work after all),
 * up to the burst. Does nothing when the key has been evicted since. Thread-safe. */
void limiter_give_back(struct limiter *l, const void *key, size_t key_len, double tokens);

struct limiter_stats {
    double rate, burst;
    size_t capacity;  /* buckets */
    size_t entries;   /* buckets in use */
    uint64_t allowed; /* calls that passed */
    uint64_t refused; /* calls that were refused */
    uint64_t evicted; /* buckets given to a new key while still holding another */
};

/* A snapshot of the counters. Thread-safe. */
void limiter_stats(const struct limiter *l, struct limiter_stats *out);

/* SipHash-2-4 of data under a 16-byte key (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012); exposed for the unit tests' reference vectors. */
uint64_t limiter_siphash(const uint8_t key[16], const void *data, size_t len);

#endif
