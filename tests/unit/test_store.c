/* test_store.c — the SQLite store: batches, compaction, queries, devices, alerts, purge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1763676000000LL

struct fixture {
    char dir[64];
    char path[128];
    struct store *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/canary-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    struct store_options opt = {.path = f->path,
                                .read_only = false,
                                .synchronous_full = false,
                                .busy_timeout_ms = 1000,
                                .chunk_max_readings = 4,
                                .chunk_max_span_ms = 3600000};
    char err[256];
    assert_int_equal(store_open(&f->s, &opt, err, sizeof err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->s);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Builds a reading with three metrics; the values encode (device index, i). */
struct fake {
    struct reading r;
    struct metric_value v[3];
};

static void make_reading(struct fake *fk, const char *device, uint64_t seq, int64_t ts, double base)
{
    static const char *names[3] = {"gas_ppm", "temperature_c", "humidity_pct"};
    memset(fk, 0, sizeof *fk);
    for (int k = 0; k < 3; k++) {
        fk->v[k].name = names[k];
        fk->v[k].value = base + k;
        fk->v[k].score = 0.25f * (float)k;
        fk->v[k].flags = k == 2 ? FLAG_ANOMALY : 0;
    }
    fk->r.device = device;
    fk->r.seq = seq;
    fk->r.has_seq = true;
    fk->r.ts_ms = ts;
    fk->r.recv_ms = ts + 5;
    fk->r.values = fk->v;
    fk->r.n_values = 3;
}

static void write_readings(struct store *s, const char *device, int from, int to)
{
    int n = to - from;
    struct fake *fk = calloc((size_t)n, sizeof *fk);
    const struct reading **rp = calloc((size_t)n, sizeof *rp);
    for (int i = 0; i < n; i++) {
        make_reading(&fk[i], device, (uint64_t)(from + i + 1), T0 + (from + i) * 1000, from + i);
        rp[i] = &fk[i].r;
    }
    struct store_batch b = {.readings = rp, .n_readings = (size_t)n};
    char err[256];
    assert_int_equal(store_write(s, &b, err, sizeof err), 0);
    free(fk);
    free(rp);
}

static void check_range(struct store *s, const char *device, int expect_first, int expect_n)
{
    struct store_readings_query q = {device, NULL, T0 - 100000, T0 + 10000000, 100000, false};
    struct store_readings_result res;
    char err[256];
    assert_int_equal(store_readings(s, &q, &res, err, sizeof err), 0);
    assert_int_equal(res.n, expect_n);
    for (size_t i = 0; i < res.n; i++) {
        const struct store_reading *r = &res.rows[i];
        int idx = expect_first + (int)i;
        assert_int_equal(r->ts_ms, T0 + idx * 1000);
        assert_int_equal(r->recv_ms, T0 + idx * 1000 + 5);
        assert_int_equal(r->seq, (uint64_t)idx + 1);
        assert_int_equal(r->n_values, 3);
        assert_string_equal(r->values[0].metric, "gas_ppm");
        assert_true(r->values[0].value == idx);
        assert_string_equal(r->values[2].metric, "humidity_pct");
        assert_true(r->values[2].value == idx + 2);
        assert_true(fabsf(r->values[1].score - 0.25f) < 1e-4);
        assert_int_equal(r->values[2].flags, FLAG_ANOMALY);
    }
    store_readings_free(&res);
}

static void test_write_read_before_and_after_compaction(void **state)
{
    struct fixture *f = *state;
    write_readings(f->s, "dev-a", 0, 7); /* few readings of a device: to the log */
    write_readings(f->s, "dev-b", 0, 3);
    check_range(f->s, "dev-a", 0, 7); /* all still in the log */

    size_t moved;
    char err[256];
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    assert_int_equal(moved, 10);
    check_range(f->s, "dev-a", 0, 7); /* all in chunks of at most 4 */
    check_range(f->s, "dev-b", 0, 3);
    write_readings(f->s, "dev-a", 7, 10);
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    assert_int_equal(moved, 3); /* 4 + 3: the tail chunk of 3 took one, a new one holds 2 */
    check_range(f->s, "dev-a", 0, 10);

    /* More readings: the tail chunk (2 readings of dev-a) is extended, the rest is new. */
    write_readings(f->s, "dev-a", 10, 15);
    check_range(f->s, "dev-a", 0, 15); /* chunks + log */
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    assert_int_equal(moved, 5);
    check_range(f->s, "dev-a", 0, 15);

    struct store_stats st;
    assert_int_equal(store_stats(f->s, &st, err, sizeof err), 0);
    assert_int_equal(st.readings_total, 18);
    assert_int_equal(st.log_rows, 0);
    assert_int_equal(st.devices, 2);
    /* dev-a: 15 readings in chunks of 4 -> 4 chunks; dev-b: 1 chunk. */
    assert_int_equal(st.chunks, 5);
}

/* One compaction step folds one partition of the devices (the partition of the oldest log
 * row), so a step touches a sixteenth of the devices; the log empties in steps. Devices
 * are numbered in the order they are first seen: dev-1 is 1, dev-2 is 2, dev-17 is 17,
 * and 17 shares dev-1's partition. */
static void test_compaction_steps_one_partition_at_a_time(void **state)
{
    struct fixture *f = *state;
    char err[256], name[16];
    for (int d = 1; d <= 17; d++) {
        snprintf(name, sizeof name, "dev-%d", d);
        write_readings(f->s, name, 0, 2);
    }
    write_readings(f->s, "dev-2", 2, 5); /* after dev-17: dev-2's rows are not contiguous */
    write_readings(f->s, "dev-1", 2, 3);

    size_t moved;
    struct store_stats st;
    assert_int_equal(store_compact(f->s, 0, &moved, err, sizeof err), 0);
    assert_int_equal(moved, 2 + 2 + 1); /* the oldest row is dev-1's: dev-1 and dev-17 */
    assert_int_equal(store_stats(f->s, &st, err, sizeof err), 0);
    assert_int_equal(st.log_rows, 17 * 2 + 3 + 1 - 5);
    check_range(f->s, "dev-1", 0, 3);  /* from chunks */
    check_range(f->s, "dev-2", 0, 5);  /* still from the log */
    check_range(f->s, "dev-17", 0, 2); /* from chunks */

    assert_int_equal(store_compact(f->s, 0, &moved, err, sizeof err), 0);
    assert_int_equal(moved, 2 + 3); /* dev-2, both of its rows */
    for (int step = 3; step <= 16; step++) {
        assert_int_equal(store_compact(f->s, 0, &moved, err, sizeof err), 0);
        assert_int_equal(moved, 2);
    }
    assert_int_equal(store_compact(f->s, 0, &moved, err, sizeof err), 0);
    assert_int_equal(moved, 0); /* empty */
    assert_int_equal(store_stats(f->s, &st, err, sizeof err), 0);
    assert_int_equal(st.log_rows, 0);
    assert_int_equal(st.readings_total, 17 * 2 + 3 + 1);
    for (int d = 3; d <= 17; d++) {
        snprintf(name, sizeof name, "dev-%d", d);
        check_range(f->s, name, 0, 2);
    }
    check_range(f->s, "dev-2", 0, 5);
}

/* tests/fixtures/store-v2.db was written by canaryd at schema version 2 (before the log's
 * partitions): one batch of seq 1..3 for dev-01..dev-20 (gas_ppm = 10 * n + seq,
 * temperature_c = 20 + seq), never compacted, so all 60 readings sit in one log row that
 * holds every device. Opening it migrates it; the old row must read and compact as before,
 * and before the newer rows of the same devices. */
#define FIXTURE_V2_TS 1795227131523LL /* seq 1; seq k is (k - 1) s later */

static void check_fixture_device(struct store *s, int n, int readings)
{
    char name[16];
    snprintf(name, sizeof name, "dev-%02d", n);
    struct store_readings_query q = {name, "gas_ppm", 0, INT64_MAX, 100, false};
    struct store_readings_result res;
    char err[256];
    assert_int_equal(store_readings(s, &q, &res, err, sizeof err), 0);
    assert_int_equal(res.n, readings);
    for (size_t i = 0; i < res.n; i++) {
        assert_int_equal(res.rows[i].seq, i + 1);
        assert_int_equal(res.rows[i].ts_ms, FIXTURE_V2_TS + (int64_t)i * 1000);
        assert_true(res.rows[i].values[0].value == 10.0 * n + (double)(i + 1));
    }
    store_readings_free(&res);
}

static void test_migrates_a_version_2_log(void **state)
{
    struct fixture *f = *state;
    store_close(f->s);
    f->s = NULL;
    const char *src = getenv("CANARY_SOURCE_DIR");
    if (src == NULL)
        fail_msg("CANARY_SOURCE_DIR is not set; run this test through ctest");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/tests/fixtures/store-v2.db %s/v2.db", src, f->dir);
    assert_int_equal(system(cmd), 0);
    char path[160], err[256];
    snprintf(path, sizeof path, "%s/v2.db", f->dir);
    struct store_options opt = {.path = path,
                                .busy_timeout_ms = 1000,
                                .chunk_max_readings = 4,
                                .chunk_max_span_ms = 3600000};
    assert_int_equal(store_open(&f->s, &opt, err, sizeof err), 0);
    for (int n = 1; n <= 20; n++)
        check_fixture_device(f->s, n, 3); /* from the old log row */

    /* seq 4 and 5 of every device: new rows, in the devices' own partitions. */
    for (int seq = 4; seq <= 5; seq++) {
        struct fake fk[20];
        const struct reading *rp[20];
        char names[20][16];
        for (int n = 1; n <= 20; n++) {
            snprintf(names[n - 1], sizeof names[0], "dev-%02d", n);
            make_reading(&fk[n - 1], names[n - 1], (uint64_t)seq, FIXTURE_V2_TS + (seq - 1) * 1000,
                         10.0 * n + seq);
            rp[n - 1] = &fk[n - 1].r;
        }
        struct store_batch b = {.readings = rp, .n_readings = 20};
        assert_int_equal(store_write(f->s, &b, err, sizeof err), 0);
    }
    for (int n = 1; n <= 20; n++)
        check_fixture_device(f->s, n, 5); /* old row + new rows */

    size_t moved;
    assert_int_equal(store_compact(f->s, 0, &moved, err, sizeof err), 0);
    assert_true(moved >= 60); /* the old row goes first, with partition 0's new rows */
    for (int n = 1; n <= 20; n++)
        check_fixture_device(f->s, n, 5); /* chunks + the log's rest */
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    struct store_stats st;
    assert_int_equal(store_stats(f->s, &st, err, sizeof err), 0);
    assert_int_equal(st.log_rows, 0);
    assert_int_equal(st.readings_total, 100);
    assert_int_equal(st.devices, 20);
    for (int n = 1; n <= 20; n++)
        check_fixture_device(f->s, n, 5); /* all from chunks, in order */
}

static void test_limit_order_and_metric_filter(void **state)
{
    struct fixture *f = *state;
    char err[256];
    size_t moved;
    write_readings(f->s, "dev-a", 0, 7);
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    write_readings(f->s, "dev-a", 7, 14);
    write_readings(f->s, "dev-a", 14, 20);
    assert_int_equal(store_compact(f->s, 7, &moved, err, sizeof err), 0); /* partial */
    assert_int_equal(moved, 7); /* 0..14 in chunks, 14..20 still in the log */

    struct store_readings_query q = {"dev-a", "temperature_c", T0, T0 + 19000, 5, true};
    struct store_readings_result res;
    assert_int_equal(store_readings(f->s, &q, &res, err, sizeof err), 0);
    assert_int_equal(res.n, 5);
    assert_true(res.more);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(res.rows[i].ts_ms, T0 + (19 - i) * 1000);
        assert_int_equal(res.rows[i].n_values, 1);
        assert_string_equal(res.rows[i].values[0].metric, "temperature_c");
        assert_true(res.rows[i].values[0].value == 19 - i + 1);
    }
    store_readings_free(&res);

    q.newest_first = false;
    q.from_ms = T0 + 3000;
    q.limit = 4;
    assert_int_equal(store_readings(f->s, &q, &res, err, sizeof err), 0);
    assert_int_equal(res.n, 4);
    assert_int_equal(res.rows[0].ts_ms, T0 + 3000);
    assert_int_equal(res.rows[3].ts_ms, T0 + 6000);
    store_readings_free(&res);

    /* Unknown device and unknown metric give empty results, not errors. */
    q.device = "nope";
    assert_int_equal(store_readings(f->s, &q, &res, err, sizeof err), 0);
    assert_int_equal(res.n, 0);
    store_readings_free(&res);
    q.device = "dev-a";
    q.metric = "nope_x";
    assert_int_equal(store_readings(f->s, &q, &res, err, sizeof err), 0);
    assert_int_equal(res.n, 0);
    store_readings_free(&res);
}

/* A page that ends exactly at a chunk boundary is not the last one: `more` says so in both
 * orders, and paging on from the last row reads every reading once (it stopped after the
 * first page before). */
static void test_page_ending_at_a_chunk_boundary_has_more(void **state)
{
    struct fixture *f = *state;
    char err[256];
    size_t moved;
    write_readings(f->s, "dev-c", 0, 12);
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    assert_int_equal(moved, 12); /* three chunks of 4 */
    for (int newest = 0; newest <= 1; newest++) {
        struct store_readings_query q = {"dev-c", NULL, T0, T0 + 11000, 4, newest == 1};
        int seen = 0;
        for (int page = 0; page < 10; page++) {
            struct store_readings_result res;
            assert_int_equal(store_readings(f->s, &q, &res, err, sizeof err), 0);
            for (size_t i = 0; i < res.n; i++, seen++)
                assert_int_equal(res.rows[i].ts_ms,
                                 newest ? T0 + (11 - seen) * 1000 : T0 + seen * 1000);
            bool more = res.more;
            if (res.n > 0 && newest)
                q.to_ms = res.rows[res.n - 1].ts_ms - 1;
            else if (res.n > 0)
                q.from_ms = res.rows[res.n - 1].ts_ms + 1;
            store_readings_free(&res);
            assert_true(more == (seen < 12));
            if (!more)
                break;
        }
        assert_int_equal(seen, 12);
    }
}

struct series_seen {
    int n;
    struct store_series s[8];
};

static void on_series(void *arg, const struct store_series *ser)
{
    struct series_seen *seen = arg;
    if (seen->n < 8)
        seen->s[seen->n] = *ser;
    seen->n++;
}

static void test_busy_device_skips_the_log(void **state)
{
    struct fixture *f = *state;
    char err[256];
    write_readings(f->s, "busy", 0, 40); /* 40 readings of one device in one commit */
    write_readings(f->s, "quiet", 0, 2); /* 2: the log */
    struct store_stats st;
    assert_int_equal(store_stats(f->s, &st, err, sizeof err), 0);
    assert_int_equal(st.log_rows, 2);
    assert_int_equal(st.chunks, 10); /* 40 in chunks of 4 (chunk_max_readings here) */
    assert_int_equal(st.readings_total, 42);
    check_range(f->s, "busy", 0, 40);
    /* The device row and the series summaries are current without a compaction. */
    struct store_device d;
    assert_int_equal(store_device_get(f->s, "busy", &d, err, sizeof err), 0);
    assert_int_equal(d.readings, 40);
    assert_int_equal(d.window.high, 40);
    assert_int_equal(d.last_seen_ms, T0 + 39000 + 5);
    struct series_seen seen = {0};
    assert_int_equal(store_series_list(f->s, "busy", on_series, &seen, err, sizeof err), 0);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.s[0].count, 40);
    assert_true(seen.s[0].max_value == 39);
    /* Out-of-order readings in one commit are stored in time order. */
    enum { N = 40 };
    struct fake fk[N];
    const struct reading *rp[N];
    for (int i = 0; i < N; i++) {
        int t = 100 + (i * 7) % N; /* a permutation of 100..139 */
        make_reading(&fk[i], "busy", (uint64_t)t + 1, T0 + t * 1000, t);
        rp[i] = &fk[i].r;
    }
    struct store_batch b = {.readings = rp, .n_readings = N};
    assert_int_equal(store_write(f->s, &b, err, sizeof err), 0);
    assert_int_equal(store_stats(f->s, &st, err, sizeof err), 0);
    assert_int_equal(st.log_rows, 2); /* still only the quiet device's */
    struct store_readings_query q = {"busy", "gas_ppm", T0 + 100000, T0 + 139000, 100, false};
    struct store_readings_result res;
    assert_int_equal(store_readings(f->s, &q, &res, err, sizeof err), 0);
    assert_int_equal(res.n, N);
    for (size_t i = 0; i < res.n; i++)
        assert_int_equal(res.rows[i].ts_ms, T0 + (100 + (int64_t)i) * 1000);
    store_readings_free(&res);
}

static void test_downsample_uses_chunks_and_log(void **state)
{
    struct fixture *f = *state;
    char err[256];
    size_t moved;
    write_readings(f->s, "dev-a", 0, 40);
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    write_readings(f->s, "dev-a", 40, 44); /* stays in the log */
    struct store_bucket b[4];
    assert_int_equal(
        store_downsample(f->s, "dev-a", "gas_ppm", T0, T0 + 43999, b, 4, err, sizeof err), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(b[i].count, 11);
        assert_true(b[i].min == i * 11);
        assert_true(b[i].max == i * 11 + 10);
        assert_true(fabs(b[i].sum - (11 * (i * 11) + 55)) < 1e-9);
        assert_int_equal(b[i].anomalies, 0);
    }
    assert_int_equal(b[0].from_ms, T0);
    assert_int_equal(b[3].to_ms, T0 + 43999);
    assert_int_equal(
        store_downsample(f->s, "dev-a", "humidity_pct", T0, T0 + 43999, b, 1, err, sizeof err), 0);
    assert_int_equal(b[0].count, 44);
    assert_int_equal(b[0].anomalies, 44);
    assert_true(b[0].flags & FLAG_ANOMALY);
}

static void test_series_summary_merges_log(void **state)
{
    struct fixture *f = *state;
    char err[256];
    size_t moved;
    write_readings(f->s, "dev-a", 0, 10);
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    write_readings(f->s, "dev-a", 10, 12);
    struct series_seen seen = {0};
    assert_int_equal(store_series_list(f->s, "dev-a", on_series, &seen, err, sizeof err), 0);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.s[0].metric, "gas_ppm");
    assert_string_equal(seen.s[1].metric, "humidity_pct");
    assert_int_equal(seen.s[0].count, 12);
    assert_true(seen.s[0].last_value == 11);
    assert_int_equal(seen.s[0].last_ts_ms, T0 + 11000);
    assert_true(seen.s[0].max_value == 11);
    assert_int_equal(seen.s[0].max_ts_ms, T0 + 11000);
    assert_true(seen.s[0].min_value == 0);
    assert_int_equal(seen.s[1].last_flags, FLAG_ANOMALY);
}

struct devices_seen {
    int n;
    struct store_device d[4];
};

static void on_device(void *arg, const struct store_device *d)
{
    struct devices_seen *seen = arg;
    if (seen->n < 4)
        seen->d[seen->n] = *d;
    seen->n++;
}

static void test_devices_window_survives_compaction(void **state)
{
    struct fixture *f = *state;
    char err[256];
    size_t moved;
    write_readings(f->s, "dev-a", 0, 5); /* seqs 1..5 */
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    write_readings(f->s, "dev-a", 6, 8); /* seqs 7, 8: 6 missing */
    struct devices_seen seen = {0};
    assert_int_equal(store_devices_load(f->s, on_device, &seen, err, sizeof err), 0);
    assert_int_equal(seen.n, 1);
    const struct store_device *d = &seen.d[0];
    assert_string_equal(d->id, "dev-a");
    assert_int_equal(d->readings, 7);
    assert_int_equal(d->window.high, 8);
    assert_true(seq_window_fresh(&d->window, 6, 64));
    assert_false(seq_window_fresh(&d->window, 5, 64));
    assert_false(seq_window_fresh(&d->window, 8, 64));
    assert_int_equal(d->last_seen_ms, T0 + 7000 + 5);
    assert_int_equal(d->first_seen_ms, T0 + 5);
    assert_int_equal(d->max_ts_ms, T0 + 7000);

    struct store_device got;
    assert_int_equal(store_device_get(f->s, "dev-a", &got, err, sizeof err), 0);
    assert_int_equal(got.readings, 7);
    assert_int_equal(store_device_get(f->s, "dev-zzz", &got, err, sizeof err), CANARY_ENOTFOUND);

    assert_int_equal(
        store_device_update(f->s, "dev-a", "Kitchen", NULL, "kitchen", err, sizeof err), 0);
    assert_int_equal(store_device_update(f->s, "nope", "x", NULL, NULL, err, sizeof err),
                     CANARY_ENOTFOUND);
    struct store_device created = {0};
    snprintf(created.id, sizeof created.id, "dev-new");
    snprintf(created.name, sizeof created.name, "New one");
    assert_int_equal(store_device_create(f->s, &created, T0, err, sizeof err), 0);
    assert_int_equal(store_device_create(f->s, &created, T0, err, sizeof err), CANARY_ECONFLICT);

    struct store_device list[4];
    int n = store_devices_list(f->s, "", list, 4, err, sizeof err);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "dev-a");
    assert_string_equal(list[0].name, "Kitchen");
    assert_string_equal(list[0].kind, "kitchen");
    assert_false(list[0].registered);
    assert_string_equal(list[1].id, "dev-new");
    assert_true(list[1].registered);
    assert_int_equal(list[1].readings, 0);
    n = store_devices_list(f->s, "dev-a", list, 4, err, sizeof err);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "dev-new");

    /* A reading for the device the API created goes to the same row. */
    write_readings(f->s, "dev-new", 0, 1);
    assert_int_equal(store_device_get(f->s, "dev-new", &got, err, sizeof err), 0);
    assert_int_equal(got.readings, 1);
    assert_true(got.registered);
}

static struct alert make_alert(uint64_t id, const char *device, enum alert_state state,
                               int64_t resolved_ms)
{
    struct alert a;
    memset(&a, 0, sizeof a);
    a.id = id;
    snprintf(a.device, sizeof a.device, "%s", device);
    snprintf(a.metric, sizeof a.metric, "gas_ppm");
    a.kind = ALERT_KIND_GAS_LEAK;
    a.severity = SEVERITY_CRITICAL;
    a.state = state;
    a.opened_ms = T0 + (int64_t)id;
    a.updated_ms = T0 + (int64_t)id;
    a.resolved_ms = resolved_ms;
    a.value = 5400;
    a.peak = 8000;
    a.limit = NAN;
    snprintf(a.message, sizeof a.message, "alert %llu", (unsigned long long)id);
    return a;
}

static void count_live(void *arg, const struct alert *a)
{
    (void)a;
    (*(int *)arg)++;
}

static void test_alerts(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct alert alerts[3] = {make_alert(1, "dev-a", ALERT_STATE_OPEN, 0),
                              make_alert(2, "dev-b", ALERT_STATE_RESOLVED, T0 + 100),
                              make_alert(3, "dev-a", ALERT_STATE_RESOLVED, T0 - 100000)};
    alerts[1].kind = ALERT_KIND_THRESHOLD;
    alerts[1].severity = SEVERITY_MEDIUM;
    struct alert_event ev = {1, T0 + 1, ALERT_ACTION_OPENED, SEVERITY_CRITICAL, "canary", "opened"};
    struct store_batch b = {.alerts = alerts, .n_alerts = 3, .events = &ev, .n_events = 1};
    assert_int_equal(store_write(f->s, &b, err, sizeof err), 0);

    /* Update alert 1 to acknowledged (same id: an update, not a new row). */
    struct alert upd = alerts[0];
    upd.state = ALERT_STATE_ACKNOWLEDGED;
    upd.acknowledged_ms = T0 + 50;
    snprintf(upd.acknowledged_by, sizeof upd.acknowledged_by, "alice");
    struct alert_event ev2 = {1,       T0 + 50, ALERT_ACTION_ACKNOWLEDGED, SEVERITY_CRITICAL,
                              "alice", "on it"};
    struct store_batch b2 = {.alerts = &upd, .n_alerts = 1, .events = &ev2, .n_events = 1};
    assert_int_equal(store_write(f->s, &b2, err, sizeof err), 0);

    struct alert got;
    assert_int_equal(store_alert_get(f->s, 1, &got, err, sizeof err), 0);
    assert_int_equal(got.state, ALERT_STATE_ACKNOWLEDGED);
    assert_string_equal(got.acknowledged_by, "alice");
    assert_string_equal(got.device, "dev-a");
    assert_int_equal(got.kind, ALERT_KIND_GAS_LEAK);
    assert_true(got.peak == 8000);
    assert_true(isnan(got.limit));
    assert_int_equal(store_alert_get(f->s, 99, &got, err, sizeof err), CANARY_ENOTFOUND);

    struct alert_event evs[4];
    assert_int_equal(store_alert_events(f->s, 1, evs, 4, err, sizeof err), 2);
    assert_int_equal(evs[0].action, ALERT_ACTION_OPENED);
    assert_int_equal(evs[1].action, ALERT_ACTION_ACKNOWLEDGED);
    assert_string_equal(evs[1].actor, "alice");
    assert_string_equal(evs[1].note, "on it");

    struct alert list[4];
    struct store_alert_filter flt = {-1, -1, -1, NULL, 0, 0, 0, 4};
    assert_int_equal(store_alerts_list(f->s, &flt, list, err, sizeof err), 3);
    assert_int_equal(list[0].id, 3); /* newest first */
    flt.state = ALERT_STATE_RESOLVED;
    assert_int_equal(store_alerts_list(f->s, &flt, list, err, sizeof err), 2);
    flt.state = -1;
    flt.severity = SEVERITY_HIGH;
    assert_int_equal(store_alerts_list(f->s, &flt, list, err, sizeof err), 2);
    flt.severity = -1;
    flt.device = "dev-b";
    assert_int_equal(store_alerts_list(f->s, &flt, list, err, sizeof err), 1);
    assert_int_equal(list[0].id, 2);
    flt.device = NULL;
    flt.before_id = 3;
    flt.limit = 1;
    assert_int_equal(store_alerts_list(f->s, &flt, list, err, sizeof err), 1);
    assert_int_equal(list[0].id, 2);

    int live = 0;
    assert_int_equal(store_alerts_live(f->s, T0, count_live, &live, err, sizeof err), 0);
    assert_int_equal(live, 2); /* 1 (acknowledged) and 2 (resolved after T0) */
    uint64_t max_id;
    assert_int_equal(store_alert_max_id(f->s, &max_id, err, sizeof err), 0);
    assert_int_equal(max_id, 3);

    struct store_stats st;
    assert_int_equal(store_stats(f->s, &st, err, sizeof err), 0);
    assert_int_equal(st.alerts_open, 1);
    assert_int_equal(st.alerts_by_severity[SEVERITY_CRITICAL], 1);

    size_t deleted;
    assert_int_equal(store_purge(f->s, 0, T0, 100, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 1); /* alert 3 (no events) */
    assert_int_equal(store_alert_get(f->s, 3, &got, err, sizeof err), CANARY_ENOTFOUND);
    assert_int_equal(store_alert_get(f->s, 2, &got, err, sizeof err), 0);
}

static void test_purge_readings(void **state)
{
    struct fixture *f = *state;
    char err[256];
    size_t moved, deleted;
    write_readings(f->s, "dev-a", 0, 12); /* chunks of 4: t_last T0+3s, +7s, +11s */
    assert_int_equal(store_compact_all(f->s, &moved, err, sizeof err), 0);
    assert_int_equal(store_purge(f->s, T0 + 8000, 0, 100, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 2);
    check_range(f->s, "dev-a", 8, 4);
}

static void test_reopen_persists_everything(void **state)
{
    struct fixture *f = *state;
    char err[256];
    write_readings(f->s, "dev-a", 0, 6);
    store_close(f->s);
    struct store_options opt = {.path = f->path,
                                .read_only = false,
                                .synchronous_full = true,
                                .busy_timeout_ms = 1000,
                                .chunk_max_readings = 4,
                                .chunk_max_span_ms = 3600000};
    assert_int_equal(store_open(&f->s, &opt, err, sizeof err), 0);
    check_range(f->s, "dev-a", 0, 6);
    /* A reader handle sees the same. */
    struct store *r;
    struct store_options ro = {.path = f->path,
                               .read_only = true,
                               .synchronous_full = false,
                               .busy_timeout_ms = 1000,
                               .chunk_max_readings = 4,
                               .chunk_max_span_ms = 3600000};
    assert_int_equal(store_open(&r, &ro, err, sizeof err), 0);
    check_range(r, "dev-a", 0, 6);
    store_close(r);
    assert_int_equal(store_schema_version(), 7);
}

static void test_open_errors_are_clear(void **state)
{
    (void)state;
    struct store *s;
    char err[256] = "";
    struct store_options opt = {.path = "/nonexistent-dir/x.db",
                                .read_only = false,
                                .synchronous_full = false,
                                .busy_timeout_ms = 100,
                                .chunk_max_readings = 4,
                                .chunk_max_span_ms = 1000};
    assert_int_equal(store_open(&s, &opt, err, sizeof err), CANARY_EIO);
    assert_non_null(strstr(err, "/nonexistent-dir/x.db"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_read_before_and_after_compaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_compaction_steps_one_partition_at_a_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_migrates_a_version_2_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_order_and_metric_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_ending_at_a_chunk_boundary_has_more, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_busy_device_skips_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_downsample_uses_chunks_and_log, setup, teardown),

        cmocka_unit_test_setup_teardown(test_series_summary_merges_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices_window_survives_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_readings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_persists_everything, setup, teardown),
        cmocka_unit_test(test_open_errors_are_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
