/* limiter.c — token buckets in a fixed-size, set-associative table; contracts in limiter.h. */
#include "core/limiter.h"

#include "core/error.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define WAYS        8
#define MAX_STRIPES 1024

struct bucket {
    uint64_t tag;    /* the key's hash with the low bit set; 0: empty */
    int64_t last_ms; /* when the tokens were last brought up to date */
    double tokens;
};

/* A lock and the counters of the sets it guards, alone on its cache line: counters shared by
 * all threads would bounce between cores on every check. */
struct stripe {
    pthread_mutex_t lock;
    uint64_t entries, allowed, refused, evicted;
} __attribute__((aligned(64)));

struct limiter {
    double rate, burst;
    size_t n_sets; /* power of two */
    size_t n_stripes;
    uint8_t hash_key[16];
    struct bucket *buckets; /* n_sets * WAYS */
    struct stripe *stripes;
};

/* ---- SipHash-2-4 (reference: https://github.com/veorq/SipHash) ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t limiter_siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the table ---- */

int limiter_create(struct limiter **out, double rate, double burst, size_t capacity)
{
    *out = NULL;
    if (!(rate > 0) || !isfinite(rate) || !(burst >= 1) || !isfinite(burst) ||
        capacity > ((size_t)1 << 28))
        return CANARY_EINVAL;
    struct limiter *l = calloc(1, sizeof *l);
    if (l == NULL)
        return CANARY_ENOMEM;
    l->rate = rate;
    l->burst = burst;
    l->n_sets = 1;
    while (l->n_sets * WAYS < capacity)
        l->n_sets *= 2;
    l->n_stripes = l->n_sets < MAX_STRIPES ? l->n_sets : MAX_STRIPES;
    l->buckets = calloc(l->n_sets * WAYS, sizeof *l->buckets);
    l->stripes = aligned_alloc(64, l->n_stripes * sizeof *l->stripes);
    if (l->buckets == NULL || l->stripes == NULL) {
        free(l->buckets);
        free(l->stripes);
        free(l);
        return CANARY_ENOMEM;
    }
    for (size_t i = 0; i < l->n_stripes; i++) {
        memset(&l->stripes[i], 0, sizeof l->stripes[i]);
        pthread_mutex_init(&l->stripes[i].lock, NULL);
    }
    if (getrandom(l->hash_key, sizeof l->hash_key, 0) != (ssize_t)sizeof l->hash_key) {
        /* No entropy source: still a working table, only its sets are predictable. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(l->hash_key, &ts, sizeof ts < sizeof l->hash_key ? sizeof ts : 16);
    }
    *out = l;
    return CANARY_OK;
}

void limiter_free(struct limiter *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n_stripes; i++)
        pthread_mutex_destroy(&l->stripes[i].lock);
    free(l->stripes);
    free(l->buckets);
    free(l);
}

/* Finds key's set and locks its stripe. */
static struct bucket *lock_set(struct limiter *l, const void *key, size_t key_len, uint64_t *tag,
                               struct stripe **stripe)
{
    uint64_t h = limiter_siphash(l->hash_key, key, key_len);
    size_t set = (size_t)(h >> 17) & (l->n_sets - 1);
    *tag = h | 1;
    *stripe = &l->stripes[set & (l->n_stripes - 1)];
    pthread_mutex_lock(&(*stripe)->lock);
    return &l->buckets[set * WAYS];
}

static void refill(const struct limiter *l, struct bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * l->rate / 1000.0;
        if (b->tokens > l->burst)
            b->tokens = l->burst;
        b->last_ms = now_ms;
    }
}

bool limiter_take(struct limiter *l, const void *key, size_t key_len, double cost, int64_t now_ms,
                  int64_t *retry_after_ms)
{
    uint64_t tag;
    struct stripe *st;
    struct bucket *set = lock_set(l, key, key_len, &tag, &st);
    struct bucket *b = NULL, *victim = &set[0];
    for (int i = 0; i < WAYS; i++) {
        if (set[i].tag == tag) {
            b = &set[i];
            break;
        }
        /* Prefer an empty way, else the one used least recently. */
        if (victim->tag != 0 && (set[i].tag == 0 || set[i].last_ms < victim->last_ms))
            victim = &set[i];
    }
    if (b == NULL) {
        if (victim->tag != 0)
            st->evicted++;
        else
            st->entries++;
        b = victim;
        b->tag = tag;
        b->tokens = l->burst;
        b->last_ms = now_ms;
    }
    refill(l, b, now_ms);
    bool ok = b->tokens >= cost;
    double missing = 0;
    if (ok)
        b->tokens -= cost;
    else
        missing = (cost < l->burst ? cost : l->burst) - b->tokens;
    if (ok)
        st->allowed++;
    else
        st->refused++;
    pthread_mutex_unlock(&st->lock);
    if (!ok && retry_after_ms != NULL)
        *retry_after_ms = (int64_t)ceil(missing * 1000.0 / l->rate - 1e-6); /* float noise */
    return ok;
}

void limiter_give_back(struct limiter *l, const void *key, size_t key_len, double tokens)
{
    uint64_t tag;
    struct stripe *st;
    struct bucket *set = lock_set(l, key, key_len, &tag, &st);
    for (int i = 0; i < WAYS; i++) {
        if (set[i].tag == tag) {
            set[i].tokens += tokens;
            if (set[i].tokens > l->burst)
                set[i].tokens = l->burst;
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
}

void limiter_stats(const struct limiter *l, struct limiter_stats *out)
{
    memset(out, 0, sizeof *out);
    out->rate = l->rate;
    out->burst = l->burst;
    out->capacity = l->n_sets * WAYS;
    for (size_t i = 0; i < l->n_stripes; i++) {
        struct stripe *st = &l->stripes[i];
        pthread_mutex_lock(&st->lock); /* the locks are mutable even in a const table */
        out->entries += st->entries;
        out->allowed += st->allowed;
        out->refused += st->refused;
        out->evicted += st->evicted;
        pthread_mutex_unlock(&st->lock);
    }
}
