/* test_durability.c — nothing acknowledged is ever lost.
 *
 * - kill -9 under load: writers post batches with unique seqs and record every reading
 *   answered 2xx; canaryd is killed mid-stream and restarted on the same database; every
 *   acknowledged reading is there exactly once, and re-sending them is recognised as
 *   duplicates (the dedupe windows survived the crash).
 * - SIGTERM under load: a graceful stop answers every admitted request and stores it.
 * - the database goes away (another process holds its write lock): commits are retried,
 *   /readyz turns 503, ingest turns to 503 + Retry-After once max_inflight is reached
 *   (back-pressure, not unbounded buffering); when the lock is released everything that
 *   was acknowledged is stored and /readyz is 200 again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WRITERS     4
#define DEVICES_PER 3
#define BATCH       50
#define MAX_ACKED   200000

struct writer {
    struct daemon *d;
    int index;
    _Atomic bool *stop;
    uint64_t next_seq;
    /* acknowledged (device index, seq) pairs */
    int *acked_dev;
    uint64_t *acked_seq;
    size_t n_acked;
    size_t sent_batches, ok_batches, failed_batches, busy_batches;
};

static void device_name(char *buf, size_t len, int writer, int dev)
{
    snprintf(buf, len, "dur-%d-%d", writer, dev);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char *body = malloc(BATCH * 160 + 16);
    int devs[BATCH];
    uint64_t seqs[BATCH];
    while (!atomic_load(w->stop) && w->n_acked + BATCH < MAX_ACKED) {
        size_t len = 0;
        body[len++] = '[';
        for (int i = 0; i < BATCH; i++) {
            int dev = i % DEVICES_PER;
            char name[32];
            device_name(name, sizeof name, w->index, dev);
            devs[i] = dev;
            seqs[i] = w->next_seq + (uint64_t)(i / DEVICES_PER);
            len += (size_t)sprintf(body + len,
                                   "%s{\"device\":\"%s\",\"seq\":%llu,\"values\":{\"gas_ppm\":%d,"
                                   "\"temperature_c\":21.5,\"humidity_pct\":40}}",
                                   i ? "," : "", name, (unsigned long long)seqs[i], 400 + i);
        }
        body[len++] = ']';
        body[len] = '\0';
        w->next_seq += BATCH / DEVICES_PER + 1;
        struct http_response r;
        int rc = http_call(w->d, "POST", "/api/v1/ingest", "application/json", body, len, &r);
        w->sent_batches++;
        if (rc == 0 && r.status == 200) {
            for (int i = 0; i < BATCH; i++) {
                w->acked_dev[w->n_acked] = devs[i];
                w->acked_seq[w->n_acked] = seqs[i];
                w->n_acked++;
            }
            w->ok_batches++;
        } else if (rc == 0 && r.status == 503) {
            w->busy_batches++;
        } else {
            w->failed_batches++;
            if (rc != 0) {
                /* connection refused: the daemon is gone */
                struct timespec ts = {0, 20000000};
                nanosleep(&ts, NULL);
            }
        }
        http_response_free(&r);
    }
    free(body);
    return NULL;
}

static void writers_run(struct writer *w, pthread_t *th, struct daemon *d, _Atomic bool *stop,
                        uint64_t first_seq)
{
    for (int i = 0; i < WRITERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].d = d;
        w[i].index = i;
        w[i].stop = stop;
        w[i].next_seq = first_seq;
        w[i].acked_dev = malloc(MAX_ACKED * sizeof(int));
        w[i].acked_seq = malloc(MAX_ACKED * sizeof(uint64_t));
        pthread_create(&th[i], NULL, writer_main, &w[i]);
    }
}

static void writers_free(struct writer *w)
{
    for (int i = 0; i < WRITERS; i++) {
        free(w[i].acked_dev);
        free(w[i].acked_seq);
    }
}

/* Counts the stored readings of a device per seq (count[] indexed by seq). */
static void stored_seqs(struct daemon *d, const char *device, unsigned char *count, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path,
             "/api/v1/devices/%s/readings?metric=gas_ppm&from=-1h&to=now&limit=10000", device);
    cJSON *j;
    long st = http_get_json(d, path, &j);
    if (st == 404) { /* never got a reading through */
        cJSON_Delete(j);
        return;
    }
    assert_int_equal(st, 200);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "more"))); /* the page holds them all */
    cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "readings"))
    {
        double seq = json_number(r, "seq");
        assert_true(seq >= 0 && seq < (double)cap);
        if (count[(size_t)seq] < 255)
            count[(size_t)seq]++;
    }
    cJSON_Delete(j);
}

/* Checks every acknowledged reading is stored exactly once. Returns how many were checked. */
static size_t verify_acked(struct daemon *d, struct writer *w)
{
    size_t checked = 0;
    const size_t cap = 1000000;
    for (int wi = 0; wi < WRITERS; wi++) {
        for (int dev = 0; dev < DEVICES_PER; dev++) {
            char name[32];
            device_name(name, sizeof name, wi, dev);
            unsigned char *count = calloc(cap, 1);
            stored_seqs(d, name, count, cap);
            for (size_t k = 0; k < w[wi].n_acked; k++) {
                if (w[wi].acked_dev[k] != dev)
                    continue;
                uint64_t seq = w[wi].acked_seq[k];
                if (count[seq] != 1)
                    fail_msg("%s seq %llu was acknowledged but is stored %d times", name,
                             (unsigned long long)seq, count[seq]);
                checked++;
            }
            for (size_t s = 0; s < cap; s++) {
                if (count[s] > 1)
                    fail_msg("%s seq %zu is stored %d times", name, s, count[s]);
            }
            free(count);
        }
    }
    return checked;
}

static void test_kill9_loses_nothing_acknowledged(void **state)
{
    (void)state;
    struct daemon d;
    daemon_init(&d, "--set", "store.compact_interval_ms=200", NULL);
    daemon_start(&d);
    _Atomic bool stop = false;
    struct writer w[WRITERS];
    pthread_t th[WRITERS];
    writers_run(w, th, &d, &stop, 1);
    /* Let it run until it has acknowledged a good amount (20,000, or at least 1,000 after 4 s
     * on a slow machine), then pull the plug. */
    for (int i = 0; i < 3000; i++) {
        size_t acked = 0;
        for (int k = 0; k < WRITERS; k++)
            acked += w[k].n_acked;
        if (acked > 20000 || (i >= 200 && acked >= 1000))
            break;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(daemon_stop(&d, SIGKILL), 128 + SIGKILL);
    atomic_store(&stop, true);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    size_t acked = 0;
    for (int k = 0; k < WRITERS; k++)
        acked += w[k].n_acked;
    assert_true(acked >= 1000);

    daemon_start(&d);
    size_t checked = verify_acked(&d, w);
    assert_int_equal(checked, acked);
    print_message("kill -9: %zu acknowledged readings, all stored exactly once\n", acked);

    /* Re-sending acknowledged readings: duplicates, not new data. */
    char body[256];
    snprintf(body, sizeof body, "{\"device\":\"dur-0-%d\",\"seq\":%llu,\"values\":{\"gas_ppm\":1}}",
             w[0].acked_dev[0], (unsigned long long)w[0].acked_seq[0]);
    cJSON *j;
    assert_int_equal(http_post_json(&d, "/api/v1/ingest", body, &j), 409);
    cJSON_Delete(j);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    writers_free(w);
    daemon_cleanup(&d);
}

static void test_sigterm_drains_and_stores(void **state)
{
    (void)state;
    struct daemon d;
    daemon_init(&d, NULL);
    daemon_start(&d);
    _Atomic bool stop = false;
    struct writer w[WRITERS];
    pthread_t th[WRITERS];
    writers_run(w, th, &d, &stop, 1);
    struct timespec ts = {0, 500000000};
    nanosleep(&ts, NULL);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    atomic_store(&stop, true);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    daemon_start(&d);
    size_t acked = 0;
    for (int k = 0; k < WRITERS; k++)
        acked += w[k].n_acked;
    assert_true(acked > 0);
    assert_int_equal(verify_acked(&d, w), acked);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    writers_free(w);
    daemon_cleanup(&d);
}

struct post_arg {
    struct daemon *d;
    const char *body;
    long status;
};

static void *post_thread(void *arg)
{
    struct post_arg *p = arg;
    cJSON *j;
    p->status = http_post_json(p->d, "/api/v1/ingest", p->body, &j);
    cJSON_Delete(j);
    return NULL;
}

static bool not_ready(void *arg)
{
    cJSON *j;
    long st = http_get_json(arg, "/readyz", &j);
    cJSON_Delete(j);
    return st == 503;
}

static bool ready(void *arg)
{
    cJSON *j;
    long st = http_get_json(arg, "/readyz", &j);
    cJSON_Delete(j);
    return st == 200;
}

/* The held batch (60 readings) is admitted: in flight, waiting for the store. */
static bool held_admitted(void *arg)
{
    cJSON *j;
    long st = http_get_json(arg, "/api/v1/stats", &j);
    bool admitted = st == 200 && json_number(j, "pipeline.inflight") >= 60;
    cJSON_Delete(j);
    return admitted;
}

static void test_store_outage_backpressure_and_recovery(void **state)
{
    (void)state;
    struct daemon d;
    daemon_init(&d, "--set", "store.busy_timeout_ms=50", "--set", "ingest.max_inflight=100",
                "--set", "ingest.max_batch=60", NULL);
    daemon_start(&d);
    cJSON *j;
    assert_int_equal(http_post_json(&d, "/api/v1/ingest",
                                    "{\"device\":\"out-1\",\"seq\":1,\"values\":{\"gas_ppm\":1}}",
                                    &j),
                     200);
    cJSON_Delete(j);

    /* Another process takes the database's write lock: canaryd's commits fail. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(d.db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    char batch[8192] = "[";
    for (int i = 0; i < 60; i++) {
        char one[96];
        snprintf(one, sizeof one, "%s{\"device\":\"out-1\",\"seq\":%d,\"values\":{\"gas_ppm\":%d}}",
                 i ? "," : "", i + 2, i);
        strcat(batch, one);
    }
    strcat(batch, "]");
    struct post_arg held = {&d, batch, 0};
    pthread_t t;
    pthread_create(&t, NULL, post_thread, &held);
    assert_true(wait_until(not_ready, &d, 5000)); /* /readyz reports the outage */
    /* (/readyz can turn before the held batch is admitted, by a commit of canaryd's own: on a
     * loaded machine the thread may not even have sent it yet.) */
    assert_true(wait_until(held_admitted, &d, 10000));

    /* 60 readings are in flight; another 60 exceed max_inflight (100): 503 + Retry-After. */
    char batch2[8192] = "[";
    for (int i = 0; i < 60; i++) {
        char one[96];
        snprintf(one, sizeof one, "%s{\"device\":\"out-2\",\"seq\":%d,\"values\":{\"gas_ppm\":%d}}",
                 i ? "," : "", i + 1, i);
        strcat(batch2, one);
    }
    strcat(batch2, "]");
    struct http_response r;
    assert_int_equal(
        http_call(&d, "POST", "/api/v1/ingest", "application/json", batch2, strlen(batch2), &r), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.retry_after, "1");
    assert_non_null(strstr(r.body, "overloaded"));
    http_response_free(&r);
    assert_int_equal(held.status, 0); /* the admitted request is still waiting, not failed */

    /* The database comes back: the waiting request is answered and stored. */
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    pthread_join(t, NULL);
    assert_int_equal(held.status, 200);
    assert_true(wait_until(ready, &d, 5000));
    assert_int_equal(http_get_json(&d, "/api/v1/devices/out-1", &j), 200);
    assert_true(json_number(j, "readings") == 61);
    cJSON_Delete(j);
    assert_int_equal(http_get_json(&d, "/api/v1/stats", &j), 200);
    assert_true(json_number(j, "counters.commit_failures") >= 1);
    assert_true(json_number(j, "counters.requests_overloaded") >= 1);
    cJSON_Delete(j);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_loses_nothing_acknowledged),
        cmocka_unit_test(test_sigterm_drains_and_stores),
        cmocka_unit_test(test_store_outage_backpressure_and_recovery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
