/* bench_limiter.c — what a rate-limit check costs (core/limiter.h, verify/device_limit.h):
 * nanoseconds per limiter_take() for one hot key, a fleet of 1,000 devices in turn, a flood of
 * new addresses that keeps evicting (100,000 keys per round into the default 65,536-bucket
 * table), two threads at once, and device_limit_charge() of a one-reading batch (what HTTP and
 * MQTT ingest add per message). Prints a table; `make bench-limits` runs it
 * (docs/BENCHMARKS.md, "Rate limits"). Median of 5 runs of each row. */
#include "core/clock.h"
#include "core/limiter.h"
#include "verify/device_limit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RUNS 5

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Keys prepared in advance so the loop measures the check, not snprintf. */
struct keys {
    char (*text)[24];
    size_t *len;
    size_t n;
};

static void make_keys(struct keys *k, size_t n, const char *fmt)
{
    k->n = n;
    k->text = malloc(n * sizeof *k->text);
    k->len = malloc(n * sizeof *k->len);
    for (size_t i = 0; i < n; i++)
        k->len[i] = (size_t)snprintf(k->text[i], sizeof k->text[i], fmt, (unsigned)i);
}

static volatile unsigned sink;

/* ns per check over iters checks cycling through keys. */
static double run_keys(struct limiter *l, const struct keys *k, size_t iters)
{
    int64_t t0 = now_ns(), ms = clock_mono_ms();
    unsigned passed = 0;
    for (size_t i = 0; i < iters; i++) {
        size_t j = i % k->n;
        passed += limiter_take(l, k->text[j], k->len[j], 1, ms + (int64_t)(i >> 16), NULL);
    }
    sink += passed;
    return (double)(now_ns() - t0) / (double)iters;
}

struct thread_arg {
    struct limiter *l;
    const struct keys *k;
    size_t iters;
    double ns;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    a->ns = run_keys(a->l, a->k, a->iters);
    return NULL;
}

int main(void)
{
    const size_t iters = 2000000;
    struct keys hot, fleet, flood, fleet2;
    make_keys(&hot, 1, "kitchen-%u");
    make_keys(&fleet, 1000, "site-a-%04u");
    make_keys(&fleet2, 1000, "site-b-%04u");
    make_keys(&flood, 100000, "10.%u");
    double v[RUNS];

    printf("Rate limiter: cost of one check (median of %d runs of %zu checks; 1 core unless "
           "said)\n\n",
           RUNS, iters);
    printf("| case | table | ns per check |\n|---|---|---|\n");

    struct limiter *l;
    limiter_create(&l, 100, 1000, 131072);
    for (int r = 0; r < RUNS; r++)
        v[r] = run_keys(l, &hot, iters);
    printf("| one device, again and again | 131,072 | %.0f |\n", median(v, RUNS));
    for (int r = 0; r < RUNS; r++)
        v[r] = run_keys(l, &fleet, iters);
    printf("| 1,000 devices in turn | 131,072 | %.0f |\n", median(v, RUNS));
    limiter_free(l);

    limiter_create(&l, 2000, 4000, 65536);
    for (int r = 0; r < RUNS; r++)
        v[r] = run_keys(l, &flood, iters);
    struct limiter_stats st;
    limiter_stats(l, &st);
    printf("| a flood of 100,000 addresses (every check a new key or an eviction) | 65,536 | %.0f "
           "|\n",
           median(v, RUNS));
    limiter_free(l);

    limiter_create(&l, 100, 1000, 131072);
    for (int r = 0; r < RUNS; r++) {
        struct thread_arg a[2] = {{l, &fleet, iters, 0}, {l, &fleet2, iters, 0}};
        pthread_t th[2];
        for (int t = 0; t < 2; t++)
            pthread_create(&th[t], NULL, thread_main, &a[t]);
        for (int t = 0; t < 2; t++)
            pthread_join(th[t], NULL);
        v[r] = (a[0].ns + a[1].ns) / 2;
    }
    printf("| 2 threads, 1,000 devices each (per thread) | 131,072 | %.0f |\n", median(v, RUNS));
    limiter_free(l);

    /* device_limit_charge() of a one-reading batch, as ingest calls it. */
    struct canary_config cfg;
    config_init(&cfg);
    struct device_limit *dl;
    device_limit_create(&dl, &cfg);
    struct ingest_batch b;
    ingest_batch_init(&b);
    ingest_batch_reserve(&b, 1);
    b.readings[0].device = "site-a-0042";
    struct device_limit_refusal why;
    for (int r = 0; r < RUNS; r++) {
        int64_t t0 = now_ns();
        unsigned passed = 0;
        for (size_t i = 0; i < iters; i++) {
            b.status[0] = READING_PENDING;
            passed += device_limit_charge(dl, &b, DEVICE_LIMIT_HTTP, (int64_t)i, &why);
        }
        sink += passed;
        v[r] = (double)(now_ns() - t0) / (double)iters;
    }
    printf("| device_limit_charge(), one-reading batch | 131,072 (default) | %.0f |\n",
           median(v, RUNS));
    b.readings[0].device = NULL;
    ingest_batch_free(&b);
    device_limit_free(dl);
    config_free(&cfg);
    printf("\nMemory: 24 bytes per bucket, allocated at start (defaults: 65,536 addresses = 1.5 "
           "MiB, 131,072 devices = 3 MiB); the flood row ended with %zu of %zu buckets used and "
           "%llu evictions.\n",
           st.entries, st.capacity, (unsigned long long)st.evicted);
    return 0;
}
