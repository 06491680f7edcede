/* test_store_trust.c — the device_trust table (src/store/sqlite_trust.c): put, get and the
 * restart listing; keep_reasons; releases that stay; bad states and scores refused with
 * nothing stored; hostile text stored as it is; a reopened store still has the rows; trust
 * rows in a store_write batch commit with its readings or not at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
    char dir[64];
    char path[128];
    struct store *s;
};

static struct store_options options(const char *path, bool read_only)
{
    struct store_options opt = {.path = path,
                                .read_only = read_only,
                                .busy_timeout_ms = 1000,
                                .chunk_max_readings = 64,
                                .chunk_max_span_ms = 3600000};
    return opt;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/canary-trust-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    struct store_options opt = options(f->path, false);
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

static struct store_trust trust(const char *device, const char *state, double score, int64_t ms,
                                const char *reasons)
{
    struct store_trust t;
    memset(&t, 0, sizeof t);
    snprintf(t.device, sizeof t.device, "%s", device);
    snprintf(t.state, sizeof t.state, "%s", state);
    t.score = score;
    t.since_ms = ms;
    t.updated_ms = ms;
    snprintf(t.reasons, sizeof t.reasons, "%s", reasons);
    return t;
}

struct listing {
    char devices[8][READING_ID_BUF];
    size_t n;
};

static void collect(void *arg, const struct store_trust *t)
{
    struct listing *l = arg;
    if (l->n < 8)
        snprintf(l->devices[l->n++], READING_ID_BUF, "%s", t->device);
}

static void test_put_get_each(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct store_trust out;
    assert_int_equal(store_trust_get(f->s, "kitchen-1", &out, err, sizeof err), CANARY_ENOTFOUND);
    struct store_trust rows[3] = {
        trust("kitchen-1", "quarantined", 0.12, 1000, "[{\"check\":\"frozen\"}]"),
        trust("b-2", "suspect", 0.5, 2000, "[]"),
        trust("a-3", "trusted", 1, 3000, ""),
    };
    assert_int_equal(store_trust_put(f->s, rows, 3, false, err, sizeof err), 0);
    assert_int_equal(store_trust_get(f->s, "kitchen-1", &out, err, sizeof err), 0);
    assert_string_equal(out.state, "quarantined");
    assert_true(out.score > 0.119 && out.score < 0.121);
    assert_int_equal(out.since_ms, 1000);
    assert_string_equal(out.reasons, "[{\"check\":\"frozen\"}]");
    assert_int_equal(out.released_ms, 0);
    /* Only the rows that are not trusted are listed (what a restart restores), by device. */
    struct listing l = {.n = 0};
    assert_int_equal(store_trust_each(f->s, collect, &l, err, sizeof err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.devices[0], "b-2");
    assert_string_equal(l.devices[1], "kitchen-1");

    /* keep_reasons: the score moves, the stored explanation stays. */
    struct store_trust upd = trust("kitchen-1", "quarantined", 0.3, 1000, "stale");
    upd.updated_ms = 5000;
    assert_int_equal(store_trust_put(f->s, &upd, 1, true, err, sizeof err), 0);
    assert_int_equal(store_trust_get(f->s, "kitchen-1", &out, err, sizeof err), 0);
    assert_string_equal(out.reasons, "[{\"check\":\"frozen\"}]");
    assert_int_equal(out.updated_ms, 5000);

    /* A release is recorded with its actor, and later writes without one keep it. */
    struct store_trust rel = trust("kitchen-1", "trusted", 1, 6000, "[]");
    rel.released_ms = 6000;
    snprintf(rel.released_by, sizeof rel.released_by, "alice");
    assert_int_equal(store_trust_put(f->s, &rel, 1, false, err, sizeof err), 0);
    struct store_trust later = trust("kitchen-1", "suspect", 0.55, 7000, "[]");
    assert_int_equal(store_trust_put(f->s, &later, 1, false, err, sizeof err), 0);
    assert_int_equal(store_trust_get(f->s, "kitchen-1", &out, err, sizeof err), 0);
    assert_string_equal(out.state, "suspect");
    assert_int_equal(out.released_ms, 6000);
    assert_string_equal(out.released_by, "alice");

    /* The rows survive a reopen, and a reader sees them. */
    store_close(f->s);
    struct store_options opt = options(f->path, false);
    assert_int_equal(store_open(&f->s, &opt, err, sizeof err), 0);
    struct store *ro;
    struct store_options ropt = options(f->path, true);
    assert_int_equal(store_open(&ro, &ropt, err, sizeof err), 0);
    assert_int_equal(store_trust_get(ro, "kitchen-1", &out, err, sizeof err), 0);
    assert_string_equal(out.released_by, "alice");
    store_close(ro);
}

static void test_bad_rows_refused(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct store_trust rows[2] = {
        trust("ok-1", "suspect", 0.5, 1, "[]"),
        trust("bad-2", "paranoid", 0.5, 1, "[]"),
    };
    assert_int_equal(store_trust_put(f->s, rows, 2, false, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "bad-2"));
    struct store_trust out;
    assert_int_equal(store_trust_get(f->s, "ok-1", &out, err, sizeof err), CANARY_ENOTFOUND);
    static const double bad_scores[] = {-0.1, 1.5, 0.0 / 0.0};
    for (size_t i = 0; i < 3; i++) {
        struct store_trust t = trust("x", "suspect", bad_scores[i], 1, "[]");
        assert_int_equal(store_trust_put(f->s, &t, 1, false, err, sizeof err), CANARY_EINVAL);
        assert_non_null(strstr(err, "score"));
    }
    /* Hostile text is data: quotes, SQL and a long reason are stored exactly. */
    struct store_trust t = trust("q'; DROP TABLE device_trust;--", "suspect", 0.5, 1, "");
    memset(t.reasons, 'r', sizeof t.reasons - 1);
    t.reasons[sizeof t.reasons - 1] = '\0';
    assert_int_equal(store_trust_put(f->s, &t, 1, false, err, sizeof err), 0);
    assert_int_equal(store_trust_get(f->s, t.device, &out, err, sizeof err), 0);
    assert_int_equal(strlen(out.reasons), sizeof t.reasons - 1);
    assert_int_equal(store_trust_put(f->s, NULL, 0, false, err, sizeof err), 0);
}

/* canaryd's writer stores trust rows in the commit that carries the readings (and the
 * tamper event) that moved them: one transaction, so a crash cannot keep one without the
 * other; a bad row refuses the whole batch. */
static void test_trust_in_batch(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct metric_value v = {.name = "gas_ppm", .value = 412};
    struct reading r = {.device = "kitchen-1",
                        .seq = 1,
                        .ts_ms = 1000,
                        .recv_ms = 1000,
                        .values = &v,
                        .n_values = 1,
                        .has_seq = true,
                        .has_ts = true};
    const struct reading *readings[] = {&r};
    struct store_trust rows[2] = {
        trust("kitchen-1", "quarantined", 0.1, 1000, "[{\"check\":\"frozen\"}]"),
        trust("kitchen-2", "suspect", 0.6, 1000, "[]"),
    };
    bool keep[2] = {false, false};
    struct store_batch b = {
        .readings = readings, .n_readings = 1, .trust = rows, .trust_keep = keep, .n_trust = 2};
    /* A bad row: nothing of the batch is stored. */
    snprintf(rows[1].state, sizeof rows[1].state, "paranoid");
    assert_int_equal(store_write(f->s, &b, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "kitchen-2"));
    uint64_t logged = 99;
    assert_int_equal(store_log_backlog(f->s, &logged, err, sizeof err), 0);
    assert_int_equal(logged, 0);
    struct store_trust out;
    assert_int_equal(store_trust_get(f->s, "kitchen-1", &out, err, sizeof err), CANARY_ENOTFOUND);
    /* Good rows: readings and trust together; keep[i] applies per row. */
    snprintf(rows[1].state, sizeof rows[1].state, "suspect");
    assert_int_equal(store_write(f->s, &b, err, sizeof err), 0);
    assert_int_equal(store_log_backlog(f->s, &logged, err, sizeof err), 0);
    assert_int_equal(logged, 1);
    assert_int_equal(store_trust_get(f->s, "kitchen-1", &out, err, sizeof err), 0);
    assert_string_equal(out.state, "quarantined");
    rows[0].score = 0.05;
    snprintf(rows[0].reasons, sizeof rows[0].reasons, "stale copy");
    snprintf(rows[1].reasons, sizeof rows[1].reasons, "[{\"check\":\"drift\"}]");
    keep[0] = true;
    r.seq = 2;
    assert_int_equal(store_write(f->s, &b, err, sizeof err), 0);
    assert_int_equal(store_trust_get(f->s, "kitchen-1", &out, err, sizeof err), 0);
    assert_true(out.score < 0.051);
    assert_string_equal(out.reasons, "[{\"check\":\"frozen\"}]"); /* kept */
    assert_int_equal(store_trust_get(f->s, "kitchen-2", &out, err, sizeof err), 0);
    assert_string_equal(out.reasons, "[{\"check\":\"drift\"}]"); /* replaced */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_each, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_rows_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trust_in_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
