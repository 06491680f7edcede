/* test_verify.c — unit tests of the verify stage (src/verify/verify.c): the timestamp window
 * [now - max_past, now + max_future] and the plausible ranges of known metrics.
 *
 * Batches are built with the JSON parser (the way canaryd builds them) or by hand where a
 * reading the parser would never produce is needed. Reasons are compared exactly. */
#include "core/error.h"
#include "core/metric.h"
#include "ingest/ingest.h"
#include "unit_support.h"
#include "verify/verify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define NOW_MS        1763676000000LL
#define MAX_PAST_MS   604800000LL /* 7 days, the default ingest.max_past_s */
#define MAX_FUTURE_MS 300000LL    /* 5 minutes, the default ingest.max_future_s */

static const struct verify_policy policy = {MAX_PAST_MS, MAX_FUTURE_MS};

static const struct ingest_limits limits = {.max_batch = 100,
                                            .max_metrics = 16,
                                            .max_device_len = 64,
                                            .max_metric_len = 64,
                                            .strict_fields = true};

struct fixture {
    struct ingest_batch b;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    ingest_batch_init(&fx->b);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    ingest_batch_free(&fx->b);
    free(fx);
    return 0;
}

/* Parses a JSON body received at recv_ms into a fresh batch; every reading must parse. */
static void load_at(struct fixture *fx, const char *body, int64_t recv_ms)
{
    ingest_batch_free(&fx->b);
    ingest_batch_init(&fx->b);
    struct ingest_fatal f;
    int rc = ingest_parse_json(body, strlen(body), &limits, recv_ms, &fx->b, &f);
    if (rc != CANARY_OK)
        fail_msg("%s: rc %d: %s", body, rc, f.reason);
}

static void load(struct fixture *fx, const char *body)
{
    load_at(fx, body, NOW_MS);
}

/* One reading with a ts and one value. */
static void load_one(struct fixture *fx, int64_t ts_ms, const char *metric, const char *value)
{
    char body[256];
    snprintf(body, sizeof body, "{\"device\":\"d\",\"seq\":1,\"ts\":%lld,\"values\":{\"%s\":%s}}",
             (long long)ts_ms, metric, value);
    load(fx, body);
    assert_int_equal(fx->b.status[0], READING_PENDING);
}

/* Verifies a one-reading batch that must pass. */
static void expect_ok(struct fixture *fx)
{
    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 1);
    assert_reading_pending(&fx->b, 0);
}

static void expect_rejected(struct fixture *fx, const char *field, const char *reason)
{
    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 0);
    assert_reading_rejected(&fx->b, 0, field, reason);
}

static void test_ts_window_bounds_pass(void **state)
{
    struct fixture *fx = *state;
    const int64_t ok[] = {NOW_MS, NOW_MS - 1, NOW_MS + 1, NOW_MS - MAX_PAST_MS,
                          NOW_MS + MAX_FUTURE_MS};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        load_one(fx, ok[k], "gas_ppm", "1");
        expect_ok(fx);
    }
}

static void test_ts_too_old(void **state)
{
    struct fixture *fx = *state;
    load_one(fx, NOW_MS - MAX_PAST_MS - 1, "gas_ppm", "1");
    expect_rejected(fx, "ts",
                    "1763071199999 is 604800 s before the server's clock (limit "
                    "ingest.max_past_s = 604800)");
    load_one(fx, NOW_MS - 30LL * 86400000, "gas_ppm", "1");
    expect_rejected(fx, "ts",
                    "1761084000000 is 2592000 s before the server's clock (limit "
                    "ingest.max_past_s = 604800)");
}

static void test_ts_in_seconds_gets_a_hint(void **state)
{
    struct fixture *fx = *state;
    /* The same instant in Unix seconds: January 1970 when read as milliseconds. */
    load_one(fx, NOW_MS / 1000, "gas_ppm", "1");
    expect_rejected(fx, "ts",
                    "1763676000 is 1761912324 s before the server's clock (limit "
                    "ingest.max_past_s = 604800); ts is Unix time in milliseconds and this "
                    "looks like seconds");
    load_one(fx, 0, "gas_ppm", "1");
    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 0);
    assert_string_equal(fx->b.errors[0].field, "ts");
    assert_non_null(strstr(fx->b.errors[0].reason, "looks like seconds"));
}

static void test_ts_in_the_future(void **state)
{
    struct fixture *fx = *state;
    load_one(fx, NOW_MS + MAX_FUTURE_MS + 1, "gas_ppm", "1");
    expect_rejected(fx, "ts",
                    "1763676300001 is 300 s after the server's clock (limit "
                    "ingest.max_future_s = 300); is the device's clock set?");
    /* Microseconds sent as milliseconds land far in the future. */
    load_one(fx, NOW_MS * 1000, "gas_ppm", "1");
    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 0);
    assert_string_equal(fx->b.errors[0].field, "ts");
    assert_non_null(strstr(fx->b.errors[0].reason, " s after the server's clock"));
}

static void test_zero_window(void **state)
{
    struct fixture *fx = *state;
    const struct verify_policy exact = {0, 0};
    load_one(fx, NOW_MS, "gas_ppm", "1");
    assert_int_equal(verify_batch(&fx->b, &exact, NOW_MS), 1);
    load_one(fx, NOW_MS - 1, "gas_ppm", "1");
    assert_int_equal(verify_batch(&fx->b, &exact, NOW_MS), 0);
    assert_string_equal(fx->b.errors[0].field, "ts");
    load_one(fx, NOW_MS + 1, "gas_ppm", "1");
    assert_int_equal(verify_batch(&fx->b, &exact, NOW_MS), 0);
    assert_string_equal(fx->b.errors[0].field, "ts");
}

static void test_no_ts_passes(void **state)
{
    struct fixture *fx = *state;
    /* Received long ago (ts_ms = recv_ms), but the device sent no ts: nothing to judge. */
    load_at(fx, "{\"device\":\"d\",\"seq\":1,\"values\":{\"gas_ppm\":1}}", 0);
    assert_false(fx->b.readings[0].has_ts);
    assert_int_equal(fx->b.readings[0].ts_ms, 0);
    expect_ok(fx);
    load_at(fx, "{\"device\":\"d\",\"seq\":1,\"values\":{\"gas_ppm\":1}}", NOW_MS * 10);
    expect_ok(fx);
}

static void test_plausible_ranges(void **state)
{
    struct fixture *fx = *state;
    load_one(fx, NOW_MS, "humidity_pct", "130");
    expect_rejected(fx, "values.humidity_pct", "130 is outside the plausible range [0, 100] %");
    load_one(fx, NOW_MS, "humidity_pct", "-0.5");
    expect_rejected(fx, "values.humidity_pct", "-0.5 is outside the plausible range [0, 100] %");
    load_one(fx, NOW_MS, "temperature_c", "-70");
    expect_rejected(fx, "values.temperature_c",
                    "-70 is outside the plausible range [-60, 150] \xc2\xb0"
                    "C");
    load_one(fx, NOW_MS, "gas_ppm", "2e6");
    expect_rejected(fx, "values.gas_ppm", "2e+06 is outside the plausible range [0, 1e+06] ppm");
    load_one(fx, NOW_MS, "pressure_hpa", "299.9");
    expect_rejected(fx, "values.pressure_hpa",
                    "299.9 is outside the plausible range [300, 1100] hPa");
    /* A unitless metric has no trailing unit. */
    load_one(fx, NOW_MS, "flame", "2");
    expect_rejected(fx, "values.flame", "2 is outside the plausible range [0, 1]");

    /* The first value out of range is named, not the others. */
    load(fx, "{\"device\":\"d\",\"seq\":1,\"ts\":1763676000000,\"values\":{\"gas_ppm\":5,"
             "\"noise_db\":200,\"humidity_pct\":101}}");
    expect_rejected(fx, "values.noise_db", "200 is outside the plausible range [0, 194] dB");
}

static void test_range_boundaries_pass(void **state)
{
    struct fixture *fx = *state;
    for (size_t i = 0; i < metric_catalogue_size(); i++) {
        const struct metric_info *m = metric_catalogue_entry(i);
        char v[64];
        const double edges[] = {m->min, m->max, (m->min + m->max) / 2};
        for (size_t k = 0; k < 3; k++) {
            snprintf(v, sizeof v, "%.17g", edges[k]);
            load_one(fx, NOW_MS, m->name, v);
            assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 1);
            assert_reading_pending(&fx->b, 0);
        }
        /* Just outside either end is refused. */
        const double outside[] = {nextafter(m->min, -INFINITY), nextafter(m->max, INFINITY)};
        for (size_t k = 0; k < 2; k++) {
            snprintf(v, sizeof v, "%.17g", outside[k]);
            load_one(fx, NOW_MS, m->name, v);
            assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 0);
            char field[96];
            snprintf(field, sizeof field, "values.%s", m->name);
            assert_string_equal(fx->b.errors[0].field, field);
        }
    }
    /* Booleans are 0 and 1, the whole range of the binary metrics. */
    load(fx, "{\"device\":\"d\",\"seq\":1,\"values\":{\"flame\":true,\"motion\":false}}");
    expect_ok(fx);
}

static void test_unknown_metrics_pass(void **state)
{
    struct fixture *fx = *state;
    const char *values[] = {"0", "-1e300", "1e300", "-0", "123456789.125"};
    for (size_t k = 0; k < sizeof values / sizeof *values; k++) {
        load_one(fx, NOW_MS, "my_widget_rpm", values[k]);
        expect_ok(fx);
    }
    /* A known-looking but different name is unknown. */
    load_one(fx, NOW_MS, "humidity_pct2", "130");
    expect_ok(fx);
}

static void test_non_finite_known_value_is_refused(void **state)
{
    struct fixture *fx = *state;
    /* The parser never produces NaN, but verify must not wave one through either. */
    load_one(fx, NOW_MS, "humidity_pct", "50");
    fx->b.readings[0].values[0].value = NAN;
    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 0);
    assert_int_equal(fx->b.status[0], READING_INVALID);
    assert_string_equal(fx->b.errors[0].field, "values.humidity_pct");
    load_one(fx, NOW_MS, "gas_ppm", "50");
    fx->b.readings[0].values[0].value = INFINITY;
    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 0);
    assert_string_equal(fx->b.errors[0].field, "values.gas_ppm");
}

static void test_ts_is_checked_before_values(void **state)
{
    struct fixture *fx = *state;
    load_one(fx, NOW_MS + MAX_FUTURE_MS + 1000, "humidity_pct", "130");
    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 0);
    assert_string_equal(fx->b.errors[0].field, "ts");
}

static void test_batch_counts_and_leaves_others_alone(void **state)
{
    struct fixture *fx = *state;
    load(fx, "[{\"device\":\"a\",\"seq\":1,\"ts\":1763676000000,\"values\":{\"gas_ppm\":1}},"
             "{\"device\":\"b\",\"seq\":\"x\",\"values\":{\"humidity_pct\":500}},"
             "{\"device\":\"c\",\"seq\":3,\"ts\":1,\"values\":{\"gas_ppm\":1}},"
             "{\"device\":\"d\",\"seq\":4,\"values\":{\"humidity_pct\":100}},"
             "{\"device\":\"e\",\"seq\":5,\"values\":{\"humidity_pct\":100.5}},"
             "{\"device\":\"f\",\"seq\":6,\"values\":{\"x\":1}},"
             "{\"device\":\"g\",\"seq\":7,\"values\":{\"humidity_pct\":-1}}]");
    assert_int_equal(fx->b.n, 7);
    /* Reading 1 is already invalid (parse); reading 6 is marked a duplicate by hand, as a
     * later stage would. Neither may be touched. */
    assert_reading_rejected(&fx->b, 1, "seq",
                            "must be a whole number from 0 to 2^53, got a string");
    fx->b.status[6] = READING_DUPLICATE;
    fx->b.errors[6].field = "marker";
    fx->b.errors[6].reason = "set by the test";

    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 3);
    assert_reading_pending(&fx->b, 0);
    assert_reading_rejected(&fx->b, 1, "seq",
                            "must be a whole number from 0 to 2^53, got a string");
    assert_int_equal(fx->b.status[2], READING_INVALID);
    assert_string_equal(fx->b.errors[2].field, "ts");
    assert_reading_pending(&fx->b, 3);
    assert_reading_rejected(&fx->b, 4, "values.humidity_pct",
                            "100.5 is outside the plausible range [0, 100] %");
    assert_reading_pending(&fx->b, 5);
    assert_int_equal(fx->b.status[6], READING_DUPLICATE);
    assert_string_equal(fx->b.errors[6].field, "marker");
    assert_string_equal(fx->b.errors[6].reason, "set by the test");

    /* Verifying again changes nothing and counts the same. */
    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 3);
    assert_string_equal(fx->b.errors[2].field, "ts");
}

static void test_empty_batch(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(fx->b.n, 0);
    assert_int_equal(verify_batch(&fx->b, &policy, NOW_MS), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ts_window_bounds_pass),
        T(test_ts_too_old),
        T(test_ts_in_seconds_gets_a_hint),
        T(test_ts_in_the_future),
        T(test_zero_window),
        T(test_no_ts_passes),
        T(test_plausible_ranges),
        T(test_range_boundaries_pass),
        T(test_unknown_metrics_pass),
        T(test_non_finite_known_value_is_refused),
        T(test_ts_is_checked_before_values),
        T(test_batch_counts_and_leaves_others_alone),
        T(test_empty_batch),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
