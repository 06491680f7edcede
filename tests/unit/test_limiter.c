/* test_limiter.c — core/limiter.h (token buckets in a fixed table) and verify/device_limit.h
 * (the per-device ingest limit built on it): SipHash-2-4 against the reference vectors; burst,
 * refill, Retry-After, cost above the burst, give-back capped at the burst; keys independent;
 * bad arguments refused; a flood of a million keys keeps the table at its size while a key in
 * steady use keeps its bucket; threads hammering one key get exactly the burst; a batch is
 * charged per device, all or nothing, only for pending readings. */
#include "core/error.h"
#include "core/limiter.h"
#include "verify/device_limit.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_siphash_reference_vectors(void **state)
{
    (void)state;
    /* From the SipHash paper's appendix / the reference implementation's vectors.h: key
     * 00..0f, messages 00, 00 01, ... of length 0 to 15. */
    static const uint64_t expect[16] = {
        0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
        0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
        0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
        0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL, 0xa129ca6149be45e5ULL};
    uint8_t key[16], msg[16];
    for (int i = 0; i < 16; i++)
        key[i] = msg[i] = (uint8_t)i;
    for (size_t len = 0; len < 16; len++)
        assert_true(limiter_siphash(key, msg, len) == expect[len]);
}

static void test_bucket_behaviour(void **state)
{
    (void)state;
    struct limiter *l;
    assert_int_equal(limiter_create(&l, 2, 5, 64), 0); /* 2 a second, bursts of 5 */
    int64_t t = 1000000, wait = -1;
    for (int i = 0; i < 5; i++)
        assert_true(limiter_take(l, "a", 1, 1, t, &wait));
    assert_false(limiter_take(l, "a", 1, 1, t, &wait));
    assert_int_equal(wait, 500); /* one token at 2 a second */
    assert_false(limiter_take(l, "a", 1, 1, t + 499, &wait));
    assert_int_equal(wait, 1);
    assert_true(limiter_take(l, "a", 1, 1, t + 500, &wait));
    /* Another key has its own bucket; a key is its bytes ("a" and "a\0" differ). */
    assert_true(limiter_take(l, "b", 1, 5, t + 500, NULL));
    assert_false(limiter_take(l, "b", 1, 1, t + 500, NULL));
    assert_true(limiter_take(l, "a\0", 2, 5, t + 500, NULL));
    /* Refill stops at the burst: after a long pause, 5 and not more. */
    assert_true(limiter_take(l, "a", 1, 5, t + 100000, &wait));
    assert_false(limiter_take(l, "a", 1, 1, t + 100000, &wait));
    /* Time going backwards (a caller's stale clock) neither refills nor breaks. */
    assert_false(limiter_take(l, "a", 1, 1, t, &wait));
    /* A cost above the burst never passes; its wait is the time to fill the bucket. */
    assert_false(limiter_take(l, "c", 1, 6, t, &wait));
    assert_int_equal(wait, 0); /* full already: it will never pass, and says so at once */
    assert_true(limiter_take(l, "c", 1, 5, t, NULL));
    assert_false(limiter_take(l, "c", 1, 6, t, &wait));
    assert_int_equal(wait, 2500);
    /* Give-back: up to the burst, and nothing for an unknown key. */
    limiter_give_back(l, "c", 1, 3);
    assert_true(limiter_take(l, "c", 1, 3, t, NULL));
    assert_false(limiter_take(l, "c", 1, 1, t, NULL));
    limiter_give_back(l, "c", 1, 100);
    assert_true(limiter_take(l, "c", 1, 5, t, NULL));
    assert_false(limiter_take(l, "c", 1, 1, t, NULL));
    limiter_give_back(l, "never-seen", 10, 3);
    struct limiter_stats st;
    limiter_stats(l, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.capacity, 64);
    assert_int_equal(st.evicted, 0);
    assert_true(st.refused >= 8);
    assert_true(st.rate == 2 && st.burst == 5);
    limiter_free(l);
    limiter_free(NULL);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct limiter *l = (struct limiter *)1;
    assert_int_equal(limiter_create(&l, 0, 5, 64), CANARY_EINVAL);
    assert_null(l);
    assert_int_equal(limiter_create(&l, -1, 5, 64), CANARY_EINVAL);
    assert_int_equal(limiter_create(&l, 1, 0.5, 64), CANARY_EINVAL);
    assert_int_equal(limiter_create(&l, INFINITY, 5, 64), CANARY_EINVAL);
    assert_int_equal(limiter_create(&l, 1, NAN, 64), CANARY_EINVAL);
    assert_int_equal(limiter_create(&l, 1, 5, (size_t)1 << 40), CANARY_EINVAL);
    /* Capacity rounds up to whole sets of 8, a power of two; 0 gives one set. */
    assert_int_equal(limiter_create(&l, 1, 1, 0), 0);
    struct limiter_stats st;
    limiter_stats(l, &st);
    assert_int_equal(st.capacity, 8);
    limiter_free(l);
    assert_int_equal(limiter_create(&l, 1, 1, 100), 0);
    limiter_stats(l, &st);
    assert_int_equal(st.capacity, 128);
    limiter_free(l);
}

static void test_flood_stays_bounded(void **state)
{
    (void)state;
    struct limiter *l;
    assert_int_equal(limiter_create(&l, 1, 3, 1024), 0);
    /* The abuser spends its burst, then a million new keys pour in, one millisecond per ten;
     * the abuser keeps trying every millisecond and must stay refused (its bucket kept). */
    int64_t t = 5000;
    const char abuser[] = "10.0.0.66";
    for (int i = 0; i < 3; i++)
        assert_true(limiter_take(l, abuser, sizeof abuser, 1, t, NULL));
    unsigned passed = 0;
    char key[32];
    for (unsigned i = 0; i < 1000000; i++) {
        int n = snprintf(key, sizeof key, "flood-%u", i);
        assert_true(limiter_take(l, key, (size_t)n, 1, t, NULL)); /* new: a full bucket */
        if (i % 10 == 9) {
            t++;
            /* 1 token a second: at most one pass per 1000 ms. */
            passed += limiter_take(l, abuser, sizeof abuser, 1, t, NULL);
        }
    }
    struct limiter_stats st;
    limiter_stats(l, &st);
    print_message("1,000,000 keys into 1,024 buckets: %zu held, %llu evicted; the abuser "
                  "passed %u times in %lld ms\n",
                  st.entries, (unsigned long long)st.evicted, passed, (long long)(t - 5000));
    assert_int_equal(st.capacity, 1024);
    assert_true(st.entries <= 1024);
    assert_true(st.evicted >= 1000000 - 1024);
    /* 100 s passed: refilled at 1/s it may pass about 100 times, never a fresh burst more. */
    assert_true(passed <= (unsigned)((t - 5000) / 1000) + 1);
    limiter_free(l);
}

struct hammer {
    struct limiter *l;
    unsigned passed;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 20000; i++)
        h->passed += limiter_take(h->l, "shared", 6, 1, 42, NULL);
    return NULL;
}

static void test_threads_share_one_bucket(void **state)
{
    (void)state;
    struct limiter *l;
    assert_int_equal(limiter_create(&l, 1, 1000, 64), 0);
    struct hammer h[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){l, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
    }
    unsigned total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += h[i].passed;
    }
    assert_int_equal(total, 1000); /* the clock stands still: exactly the burst */
    struct limiter_stats st;
    limiter_stats(l, &st);
    assert_int_equal(st.allowed, 1000);
    assert_int_equal(st.refused, 79000);
    limiter_free(l);
}

/* ---- verify/device_limit.h ---- */

static void parse(const char *json, struct ingest_batch *b)
{
    struct ingest_limits lim = {10000, 32, 64, 64, true};
    struct ingest_fatal fatal;
    ingest_batch_init(b);
    assert_int_equal(ingest_parse_json(json, strlen(json), &lim, 1763676000000, b, &fatal), 0);
}

static void test_device_limit_batches(void **state)
{
    (void)state;
    struct canary_config cfg;
    config_init(&cfg);
    struct device_limit *dl = (struct device_limit *)1;
    cfg.limits.device_rate = 0;
    assert_int_equal(device_limit_create(&dl, &cfg), 0);
    assert_null(dl); /* off */
    struct ingest_batch b;
    parse("{\"device\":\"d1\",\"seq\":1,\"values\":{\"x\":1}}", &b);
    struct device_limit_refusal why;
    assert_true(device_limit_charge(NULL, &b, DEVICE_LIMIT_HTTP, 0, &why));
    ingest_batch_free(&b);

    cfg.limits.device_rate = 1;
    cfg.limits.device_burst = 4;
    cfg.limits.device_table = 64;
    assert_int_equal(device_limit_create(&dl, &cfg), 0);
    assert_non_null(dl);
    /* d1 x3 (one run), d2 x1: passes; d1 has 1 token left, d2 3. */
    parse("[{\"device\":\"d1\",\"seq\":1,\"values\":{\"x\":1}},"
          "{\"device\":\"d1\",\"seq\":2,\"values\":{\"x\":1}},"
          "{\"device\":\"d2\",\"seq\":1,\"values\":{\"x\":1}},"
          "{\"device\":\"d1\",\"seq\":3,\"values\":{\"x\":1}}]",
          &b);
    assert_true(device_limit_charge(dl, &b, DEVICE_LIMIT_HTTP, 1000, &why));
    ingest_batch_free(&b);
    /* d2 x2 then d1 x2: d1 is over; d2's two tokens are given back, nothing charged. */
    parse("[{\"device\":\"d2\",\"seq\":2,\"values\":{\"x\":1}},"
          "{\"device\":\"d2\",\"seq\":3,\"values\":{\"x\":1}},"
          "{\"device\":\"d1\",\"seq\":4,\"values\":{\"x\":1}},"
          "{\"device\":\"d1\",\"seq\":5,\"values\":{\"x\":1}}]",
          &b);
    assert_false(device_limit_charge(dl, &b, DEVICE_LIMIT_MQTT, 1000, &why));
    assert_string_equal(why.device, "d1");
    assert_int_equal(why.readings, 4);
    assert_int_equal(why.retry_after_ms, 1000);
    ingest_batch_free(&b);
    /* Readings no longer pending (rejected before) cost nothing: d2 still has 3. */
    parse("[{\"device\":\"d2\",\"seq\":4,\"values\":{\"x\":1}},"
          "{\"device\":\"d2\",\"seq\":5,\"values\":{\"x\":\"bad\"}},"
          "{\"device\":\"d2\",\"seq\":6,\"values\":{\"x\":1}},"
          "{\"device\":\"d2\",\"seq\":7,\"values\":{\"x\":1}}]",
          &b);
    assert_int_equal(b.status[1], READING_INVALID);
    assert_true(device_limit_charge(dl, &b, DEVICE_LIMIT_HTTP, 1000, &why));
    ingest_batch_free(&b);
    parse("{\"device\":\"d2\",\"seq\":8,\"values\":{\"x\":1}}", &b);
    assert_false(device_limit_charge(dl, &b, DEVICE_LIMIT_HTTP, 1000, &why));
    ingest_batch_free(&b);
    struct device_limit_stats st;
    device_limit_stats(dl, &st);
    assert_true(st.enabled);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.http_refused_requests, 1);
    assert_int_equal(st.http_refused_readings, 1);
    assert_int_equal(st.mqtt_dropped_messages, 1);
    assert_int_equal(st.mqtt_refused_readings, 4);
    device_limit_free(dl);
    device_limit_stats(NULL, &st);
    assert_false(st.enabled);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_reference_vectors),
        cmocka_unit_test(test_bucket_behaviour),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_flood_stays_bounded),
        cmocka_unit_test(test_threads_share_one_bucket),
        cmocka_unit_test(test_device_limit_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
