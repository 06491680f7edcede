/* test_model_latest.c — the latest gas prediction per device (src/models/model_latest.c): a
 * put is what the next get returns, a later put replaces it, other devices and an empty table
 * return nothing, ids that share a stripe stay apart, and four threads putting while two
 * read never see a torn vector (each vector put sums to 1 and carries its own marker). */
#include "models/model_latest.h"

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

#define K 4

static void test_put_get(void **state)
{
    (void)state;
    struct model_latest *t = model_latest_new(K);
    assert_non_null(t);
    double p[K], got[K];
    int64_t ts = -1;
    assert_false(model_latest_get(t, "kitchen-1", &ts, got));
    assert_true(ts == -1);
    const double a[K] = {0.1, 0.2, 0.3, 0.4}, b[K] = {0.7, 0.1, 0.1, 0.1};
    assert_int_equal(model_latest_put(t, "kitchen-1", 1000, a), 0);
    assert_true(model_latest_get(t, "kitchen-1", &ts, got));
    assert_true(ts == 1000);
    assert_memory_equal(got, a, sizeof a);
    assert_false(model_latest_get(t, "kitchen-2", &ts, got));
    assert_int_equal(model_latest_put(t, "kitchen-1", 2000, b), 0);
    assert_true(model_latest_get(t, "kitchen-1", &ts, got));
    assert_true(ts == 2000);
    assert_memory_equal(got, b, sizeof b);
    /* 2,000 devices: each keeps its own vector, whatever stripe it falls in. */
    char id[32];
    for (int d = 0; d < 2000; d++) {
        snprintf(id, sizeof id, "dev-%d", d);
        for (int k = 0; k < K; k++)
            p[k] = d * 10 + k;
        assert_int_equal(model_latest_put(t, id, d, p), 0);
    }
    for (int d = 0; d < 2000; d++) {
        snprintf(id, sizeof id, "dev-%d", d);
        assert_true(model_latest_get(t, id, &ts, got));
        assert_true(ts == d && got[0] == d * 10 && got[3] == d * 10 + 3);
    }
    model_latest_free(t);
    model_latest_free(NULL);
}

struct worker {
    struct model_latest *t;
    int id;
    bool reader;
    int bad;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    char dev[16];
    double p[K];
    for (int i = 0; i < 20000; i++) {
        snprintf(dev, sizeof dev, "d%d", i % 8);
        if (w->reader) {
            int64_t ts;
            if (model_latest_get(w->t, dev, &ts, p)) {
                /* A whole vector: p[0] and p[1] were put together (p[1] = 1 - p[0]). */
                if (fabs(p[0] + p[1] - 1) > 1e-12 || p[2] != (double)ts)
                    w->bad++;
            }
        } else {
            p[0] = (double)(i % 100) / 100;
            p[1] = 1 - p[0];
            p[2] = w->id * 100000 + i;
            p[3] = 0;
            model_latest_put(w->t, dev, (int64_t)p[2], p);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct model_latest *t = model_latest_new(K);
    struct worker w[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (struct worker){t, i, i >= 4, 0};
        assert_int_equal(pthread_create(&th[i], NULL, run, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(w[4].bad + w[5].bad, 0);
    model_latest_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
