/* test_ingest_json.c — unit tests of the JSON wire format parser (src/ingest/ingest_json.c).
 *
 * Every body is copied into a buffer of exactly its length, with no NUL after it, so that
 * the sanitizer build catches any read past the end. Statuses, error fields, error reasons
 * and values are compared exactly. Hostile bodies (deep nesting, 100k keys, escaped NULs,
 * invalid UTF-8) check the hardening of the parse stage; the fuzz loop at the end checks the
 * parser's promises on thousands of mutated bodies. */
#include "core/error.h"
#include "core/metric.h"
#include "ingest/ingest.h"
#include "unit_support.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define RECV_MS 1763676000999LL

#define DEVICE_CHARSET_REASON                                                                      \
    "is not a valid device id (letters, digits and . _ : -, starting with a letter or digit)"
#define SEQ_RANGE_REASON                                                                           \
    "must be a whole number from 0 to 2^53, got a fraction or an out-of-range number"
#define TS_RANGE_REASON                                                                            \
    "must be Unix time in whole milliseconds, got a fraction or an out-of-range number"
#define METRIC_NAME_REASON   "is not snake_case ([a-z][a-z0-9_]*, e.g. gas_ppm)"
#define UNKNOWN_FIELD_REASON "unknown field (a reading has device, seq, ts and values)"

/* The JSON tests run with unknown fields rejected, as canaryd does by default. */
static int setup(void **state)
{
    int rc = parse_fixture_setup(state);
    if (rc == 0)
        ((struct parse_fixture *)*state)->lim.strict_fields = true;
    return rc;
}

/* Parses body[0..len) from a fresh batch; the body lives in a buffer of exactly len bytes. */
static int parse_n(struct parse_fixture *fx, const char *body, size_t len)
{
    char *copy = parse_fixture_reset(fx, body, len);
    int rc = ingest_parse_json(copy, len, &fx->lim, RECV_MS, &fx->b, &fx->f);
    free(copy);
    return rc;
}

static int parse(struct parse_fixture *fx, const char *body)
{
    return parse_n(fx, body, strlen(body));
}

/* Parses a one-object body that must come back as one invalid reading. */
static void expect_invalid(struct parse_fixture *fx, const char *body, const char *field,
                           const char *reason)
{
    int rc = parse(fx, body);
    if (rc != CANARY_OK)
        fail_msg("%s: rc %d, %d '%s': %s", body, rc, fx->f.http_status, fx->f.field, fx->f.reason);
    assert_int_equal(fx->b.n, 1);
    assert_false(fx->b.is_array);
    assert_reading_rejected(&fx->b, 0, field, reason);
    assert_int_equal(fx->b.readings[0].recv_ms, RECV_MS);
}

/* Parses a one-object body that must come back as one valid reading; returns it. */
static const struct reading *expect_valid(struct parse_fixture *fx, const char *body)
{
    int rc = parse(fx, body);
    if (rc != CANARY_OK)
        fail_msg("%s: rc %d, %d '%s': %s", body, rc, fx->f.http_status, fx->f.field, fx->f.reason);
    assert_int_equal(fx->b.n, 1);
    assert_false(fx->b.is_array);
    assert_reading_pending(&fx->b, 0);
    assert_int_equal(fx->b.readings[0].recv_ms, RECV_MS);
    return &fx->b.readings[0];
}

static void expect_fatal_n(struct parse_fixture *fx, const char *body, size_t len, int rc,
                           int status, const char *field, const char *reason)
{
    assert_int_equal(parse_n(fx, body, len), rc);
    assert_int_equal(fx->f.http_status, status);
    assert_string_equal(fx->f.field, field);
    assert_string_equal(fx->f.reason, reason);
}

static void expect_fatal(struct parse_fixture *fx, const char *body, const char *reason)
{
    expect_fatal_n(fx, body, strlen(body), CANARY_EINVAL, 400, "", reason);
}

/* A reading body with the given "values" member text. */
static void with_values(char *buf, size_t len, const char *values)
{
    snprintf(buf, len, "{\"device\":\"d\",\"seq\":1,\"values\":%s}", values);
}

static double elapsed_s(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* ---- well-formed bodies ---- */

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(reading_status_name(READING_PENDING), "pending");
    assert_string_equal(reading_status_name(READING_ACCEPTED), "accepted");
    assert_string_equal(reading_status_name(READING_INVALID), "invalid");
    assert_string_equal(reading_status_name(READING_DUPLICATE), "duplicate");
    assert_string_equal(reading_status_name(READING_UNKNOWN_DEVICE), "unknown_device");
    assert_string_equal(reading_status_name(READING_UNAVAILABLE), "unavailable");
}

static void test_single_object(void **state)
{
    struct parse_fixture *fx = *state;
    const struct reading *r = expect_valid(
        fx, "{\"device\":\"kitchen-1\",\"seq\":1042,\"ts\":1763676000123,"
            "\"values\":{\"gas_ppm\":412.5,\"temperature_c\":24.1,\"noise_db\":-3e2}}");
    assert_string_equal(r->device, "kitchen-1");
    assert_true(r->has_seq);
    assert_int_equal(r->seq, 1042);
    assert_true(r->has_ts);
    assert_int_equal(r->ts_ms, 1763676000123LL);
    assert_int_equal(r->n_values, 3);
    assert_parsed_value(r, 0, "gas_ppm", 412.5);
    assert_parsed_value(r, 1, "temperature_c", 24.1);
    assert_parsed_value(r, 2, "noise_db", -300.0);

    /* Field order does not matter; whitespace around tokens is fine. */
    r = expect_valid(fx, " \r\n\t{ \"values\" : { \"a\" : 1 } , \"ts\" : 5 , \"seq\" : 0 ,"
                         " \"device\" : \"A.b_c:d-9\" } \n");
    assert_string_equal(r->device, "A.b_c:d-9");
    assert_int_equal(r->seq, 0);
    assert_int_equal(r->ts_ms, 5);
    assert_parsed_value(r, 0, "a", 1.0);
}

static void test_ts_absent_defaults_to_recv(void **state)
{
    struct parse_fixture *fx = *state;
    const struct reading *r = expect_valid(fx, "{\"device\":\"d\",\"seq\":7,\"values\":{\"x\":1}}");
    assert_false(r->has_ts);
    assert_int_equal(r->ts_ms, RECV_MS);
    assert_int_equal(r->recv_ms, RECV_MS);
    assert_true(r->has_seq);
    assert_int_equal(r->seq, 7);
    /* ts 0 is a timestamp (1970), not "absent". */
    r = expect_valid(fx, "{\"device\":\"d\",\"seq\":7,\"ts\":0,\"values\":{\"x\":1}}");
    assert_true(r->has_ts);
    assert_int_equal(r->ts_ms, 0);
}

static void test_batch(void **state)
{
    struct parse_fixture *fx = *state;
    assert_int_equal(parse(fx, "[{\"device\":\"a\",\"seq\":1,\"ts\":1000,\"values\":{\"x\":1}},"
                               "{\"device\":\"b\",\"seq\":2,\"values\":{\"x\":2,\"y\":true}},\n"
                               "{\"device\":\"c\",\"seq\":3,\"ts\":3000,\"values\":{\"x\":3}}]"),
                     CANARY_OK);
    assert_int_equal(fx->b.n, 3);
    assert_true(fx->b.is_array);
    const char *devices[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        assert_reading_pending(&fx->b, i);
        const struct reading *r = &fx->b.readings[i];
        assert_string_equal(r->device, devices[i]);
        assert_int_equal(r->seq, i + 1);
        assert_parsed_value(r, 0, "x", (double)(i + 1));
        assert_int_equal(r->recv_ms, RECV_MS);
    }
    assert_int_equal(fx->b.readings[0].ts_ms, 1000);
    assert_false(fx->b.readings[1].has_ts);
    assert_int_equal(fx->b.readings[1].ts_ms, RECV_MS);
    assert_int_equal(fx->b.readings[1].n_values, 2);
    assert_parsed_value(&fx->b.readings[1], 1, "y", 1.0);
    assert_int_equal(fx->b.readings[2].ts_ms, 3000);

    /* An array of one reading is still a batch. */
    assert_int_equal(parse(fx, "[{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":1}}]"), CANARY_OK);
    assert_int_equal(fx->b.n, 1);
    assert_true(fx->b.is_array);
    assert_reading_pending(&fx->b, 0);
}

static void test_booleans(void **state)
{
    struct parse_fixture *fx = *state;
    const struct reading *r = expect_valid(
        fx, "{\"device\":\"d\",\"seq\":1,\"values\":{\"flame\":true,\"motion\":false}}");
    assert_int_equal(r->n_values, 2);
    assert_parsed_value(r, 0, "flame", 1.0);
    assert_parsed_value(r, 1, "motion", 0.0);
}

static void test_numbers(void **state)
{
    struct parse_fixture *fx = *state;
    const struct reading *r =
        expect_valid(fx, "{\"device\":\"d\",\"seq\":1,\"values\":{\"a\":-0,\"b\":1e-400,"
                         "\"c\":1.7976931348623157e308,\"d\":-2.5E+3,\"e\":0.1}}");
    assert_parsed_value(r, 0, "a", -0.0);
    assert_parsed_value(r, 1, "b", 0.0); /* underflow is a tiny number, not an error */
    assert_parsed_value(r, 2, "c", 1.7976931348623157e308);
    assert_parsed_value(r, 3, "d", -2500.0);
    assert_parsed_value(r, 4, "e", 0.1);
}

/* ---- per-reading errors ---- */

static void test_device_errors(void **state)
{
    struct parse_fixture *fx = *state;
    expect_invalid(fx, "{\"seq\":1,\"values\":{\"x\":1}}", "device", "is required");
    expect_invalid(fx, "{\"device\":42,\"seq\":1,\"values\":{\"x\":1}}", "device",
                   "must be a string, got a number");
    expect_invalid(fx, "{\"device\":null,\"seq\":1,\"values\":{\"x\":1}}", "device",
                   "must be a string, got null");
    expect_invalid(fx, "{\"device\":true,\"seq\":1,\"values\":{\"x\":1}}", "device",
                   "must be a string, got a boolean");
    expect_invalid(fx, "{\"device\":[\"a\"],\"seq\":1,\"values\":{\"x\":1}}", "device",
                   "must be a string, got an array");
    expect_invalid(fx, "{\"device\":{},\"seq\":1,\"values\":{\"x\":1}}", "device",
                   "must be a string, got an object");

    const struct {
        const char *json;  /* as written in the body */
        const char *shown; /* as quoted in the reason */
    } bad[] = {
        {"", ""},
        {"a/b", "a/b"},
        {"a b", "a b"},
        {"a+b", "a+b"},
        {"a#b", "a#b"},
        {"-a", "-a"},
        {".a", ".a"},
        {"_a", "_a"},
        {"k\\u00fcche", "k??che"},
        {"tab\\there", "tab?here"},
        {"quote\\\"d", "quote?d"},
        {"back\\\\slash", "back?slash"},
    };
    char body[256], reason[256];
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(body, sizeof body, "{\"device\":\"%s\",\"seq\":1,\"values\":{\"x\":1}}",
                 bad[k].json);
        snprintf(reason, sizeof reason, "'%s' " DEVICE_CHARSET_REASON, bad[k].shown);
        expect_invalid(fx, body, "device", reason);
    }

    /* Exactly max_device_len bytes is fine; one more is too long. */
    char *ok = test_repeat("{\"device\":\"", "d", 64, "\",\"seq\":1,\"values\":{\"x\":1}}");
    const struct reading *r = expect_valid(fx, ok);
    assert_int_equal(strlen(r->device), 64);
    free(ok);
    char *longer = test_repeat("{\"device\":\"", "d", 65, "\",\"seq\":1,\"values\":{\"x\":1}}");
    expect_invalid(fx, longer, "device", "is longer than 64 bytes (limit ingest.max_device_len)");
    free(longer);
    /* Too long and with bad bytes: the length is what is reported, nothing is quoted. */
    longer = test_repeat("{\"device\":\"", "/", 100, "\",\"seq\":1,\"values\":{\"x\":1}}");
    expect_invalid(fx, longer, "device", "is longer than 64 bytes (limit ingest.max_device_len)");
    free(longer);
}

static void test_seq_errors(void **state)
{
    struct parse_fixture *fx = *state;
    expect_invalid(fx, "{\"device\":\"d\",\"values\":{\"x\":1}}", "seq",
                   "is required (the device's message counter)");
    const char *out_of_range[] = {"-1",     "1.5",   "9007199254740992", "1e999",
                                  "-1e999", "1e300", "0.000001"};
    char body[160];
    for (size_t k = 0; k < sizeof out_of_range / sizeof *out_of_range; k++) {
        snprintf(body, sizeof body, "{\"device\":\"d\",\"seq\":%s,\"values\":{\"x\":1}}",
                 out_of_range[k]);
        expect_invalid(fx, body, "seq", SEQ_RANGE_REASON);
        assert_string_equal(fx->b.readings[0].device, "d");
    }
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":\"5\",\"values\":{\"x\":1}}", "seq",
                   "must be a whole number from 0 to 2^53, got a string");
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":true,\"values\":{\"x\":1}}", "seq",
                   "must be a whole number from 0 to 2^53, got a boolean");
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":null,\"values\":{\"x\":1}}", "seq",
                   "must be a whole number from 0 to 2^53, got null");
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":[1],\"values\":{\"x\":1}}", "seq",
                   "must be a whole number from 0 to 2^53, got an array");

    /* Whole numbers in any JSON spelling, up to 2^53 - 1. */
    const struct {
        const char *json;
        uint64_t want;
    } ok[] = {{"0", 0},
              {"-0", 0},
              {"9007199254740991", 9007199254740991ULL},
              {"1e3", 1000},
              {"42.0", 42}};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        snprintf(body, sizeof body, "{\"device\":\"d\",\"seq\":%s,\"values\":{\"x\":1}}",
                 ok[k].json);
        const struct reading *r = expect_valid(fx, body);
        assert_true(r->has_seq);
        assert_int_equal(r->seq, ok[k].want);
    }
}

static void test_ts_errors(void **state)
{
    struct parse_fixture *fx = *state;
    const char *out_of_range[] = {"1.5", "-1", "-1763676000000", "9007199254740992", "1e999"};
    char body[160];
    for (size_t k = 0; k < sizeof out_of_range / sizeof *out_of_range; k++) {
        snprintf(body, sizeof body, "{\"device\":\"d\",\"seq\":1,\"ts\":%s,\"values\":{\"x\":1}}",
                 out_of_range[k]);
        expect_invalid(fx, body, "ts", TS_RANGE_REASON);
        assert_false(fx->b.readings[0].has_ts);
    }
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":1,\"ts\":\"1763676000123\",\"values\":{\"x\":1}}",
                   "ts", "must be Unix time in whole milliseconds, got a string");
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":1,\"ts\":null,\"values\":{\"x\":1}}", "ts",
                   "must be Unix time in whole milliseconds, got null");
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":1,\"ts\":{},\"values\":{\"x\":1}}", "ts",
                   "must be Unix time in whole milliseconds, got an object");
    const struct reading *r = expect_valid(
        fx, "{\"device\":\"d\",\"seq\":1,\"ts\":9007199254740991,\"values\":{\"x\":1}}");
    assert_true(r->has_ts);
    assert_int_equal(r->ts_ms, 9007199254740991LL);
}

static void test_values_errors(void **state)
{
    struct parse_fixture *fx = *state;
    char body[512];
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":1}", "values", "is required");
    const struct {
        const char *json;
        const char *type;
    } not_object[] = {{"[1]", "an array"},
                      {"1", "a number"},
                      {"\"x\"", "a string"},
                      {"null", "null"},
                      {"true", "a boolean"}};
    char reason[160];
    for (size_t k = 0; k < sizeof not_object / sizeof not_object[0]; k++) {
        with_values(body, sizeof body, not_object[k].json);
        snprintf(reason, sizeof reason, "must be an object of metric: number, got %s",
                 not_object[k].type);
        expect_invalid(fx, body, "values", reason);
    }
    with_values(body, sizeof body, "{}");
    expect_invalid(fx, body, "values", "must hold at least one metric");

    /* max_metrics (8) is fine, 9 is one too many. */
    with_values(body, sizeof body,
                "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8}");
    assert_int_equal(expect_valid(fx, body)->n_values, 8);
    with_values(body, sizeof body,
                "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9}");
    expect_invalid(fx, body, "values", "holds more than 8 metrics (limit ingest.max_metrics)");

    /* Metric names. */
    const struct {
        const char *json;
        const char *shown;
    } bad_names[] = {
        {"Gas_ppm", "Gas_ppm"}, {"1gas", "1gas"},       {"_gas", "_gas"}, {"gas-ppm", "gas-ppm"},
        {"gas ppm", "gas ppm"}, {"gas.ppm", "gas.ppm"}, {"", ""},         {"g\\u00e1s", "g??s"},
        {"a\\nb", "a?b"},       {"q\\\"", "q?"},
    };
    for (size_t k = 0; k < sizeof bad_names / sizeof bad_names[0]; k++) {
        char values[128];
        snprintf(values, sizeof values, "{\"ok\":1,\"%s\":2}", bad_names[k].json);
        with_values(body, sizeof body, values);
        snprintf(reason, sizeof reason, "metric name '%s' " METRIC_NAME_REASON, bad_names[k].shown);
        expect_invalid(fx, body, "values", reason);
    }
    char *ok = test_repeat("{\"device\":\"d\",\"seq\":1,\"values\":{\"", "m", 64, "\":1}}");
    assert_int_equal(strlen(expect_valid(fx, ok)->values[0].name), 64);
    free(ok);
    char *longer = test_repeat("{\"device\":\"d\",\"seq\":1,\"values\":{\"", "m", 65, "\":1}}");
    expect_invalid(fx, longer, "values",
                   "metric name 'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm...' is longer than 64 "
                   "bytes (limit ingest.max_metric_len)");
    free(longer);

    /* Values must be finite numbers or booleans. */
    const struct {
        const char *json;
        const char *type;
    } bad_values[] = {
        {"\"412\"", "a string"}, {"null", "null"}, {"[1]", "an array"}, {"{\"v\":1}", "an object"}};
    for (size_t k = 0; k < sizeof bad_values / sizeof bad_values[0]; k++) {
        char values[128];
        snprintf(values, sizeof values, "{\"gas_ppm\":1,\"x\":%s}", bad_values[k].json);
        with_values(body, sizeof body, values);
        snprintf(reason, sizeof reason, "must be a finite number, got %s", bad_values[k].type);
        expect_invalid(fx, body, "values.x", reason);
    }
}

static void test_overflowing_number(void **state)
{
    struct parse_fixture *fx = *state;
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":1,\"values\":{\"a\":1,\"x\":1e999}}", "values.x",
                   "must be a finite number (got an overflow)");
    expect_invalid(fx, "{\"device\":\"d\",\"seq\":1,\"values\":{\"y\":-1e999}}", "values.y",
                   "must be a finite number (got an overflow)");
}

static void test_nan_and_infinity_are_malformed(void **state)
{
    struct parse_fixture *fx = *state;
    /* The literal starts at byte 36 of each body. */
    const char *literals[] = {"NaN", "Infinity", "-Infinity", "nan", "inf", "-inf", "+1"};
    char body[160];
    for (size_t k = 0; k < sizeof literals / sizeof *literals; k++) {
        snprintf(body, sizeof body, "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":%s}}",
                 literals[k]);
        int rc = parse(fx, body);
        if (rc != CANARY_EINVAL)
            fail_msg("%s: rc %d, want a fatal error", literals[k], rc);
        assert_int_equal(fx->f.http_status, 400);
        assert_string_equal(fx->f.field, "");
        assert_string_equal(fx->f.reason, "malformed JSON at byte 36 (line 1, column 37)");
    }
}

static void test_unknown_fields(void **state)
{
    struct parse_fixture *fx = *state;
    const char *body = "{\"device\":\"d\",\"seq\":1,\"unit\":\"si\",\"values\":{\"x\":1}}";
    expect_invalid(fx, body, "unit", UNKNOWN_FIELD_REASON);
    /* Names are case-sensitive. */
    expect_invalid(fx, "{\"Device\":\"d\",\"seq\":1,\"values\":{\"x\":1}}", "Device",
                   UNKNOWN_FIELD_REASON);

    fx->lim.strict_fields = false;
    const struct reading *r = expect_valid(fx, body);
    assert_string_equal(r->device, "d");
    assert_int_equal(r->n_values, 1);
    assert_parsed_value(r, 0, "x", 1.0);
    /* Ignored fields may hold anything, nested. */
    r = expect_valid(fx, "{\"meta\":{\"a\":[1,{\"b\":null}]},\"device\":\"d\",\"seq\":1,"
                         "\"values\":{\"x\":2}}");
    assert_parsed_value(r, 0, "x", 2.0);
}

static void test_duplicate_keys(void **state)
{
    struct parse_fixture *fx = *state;
    expect_invalid(fx, "{\"device\":\"a\",\"device\":\"b\",\"seq\":1,\"values\":{\"x\":1}}", "",
                   "field 'device' appears twice");
    expect_invalid(fx, "{\"device\":\"a\",\"seq\":1,\"seq\":2,\"values\":{\"x\":1}}", "",
                   "field 'seq' appears twice");
    expect_invalid(fx, "{\"device\":\"a\",\"seq\":1,\"ts\":1,\"ts\":1,\"values\":{\"x\":1}}", "",
                   "field 'ts' appears twice");
    expect_invalid(fx, "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":1},\"values\":{\"y\":1}}", "",
                   "field 'values' appears twice");
    expect_invalid(fx, "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":1,\"y\":2,\"x\":3}}",
                   "values", "metric 'x' appears twice");
    /* Duplicated unknown fields are duplicates too, even when unknown fields are ignored. */
    fx->lim.strict_fields = false;
    expect_invalid(fx, "{\"device\":\"a\",\"seq\":1,\"n\":1,\"n\":2,\"values\":{\"x\":1}}", "",
                   "field 'n' appears twice");
}

/* An escaped NUL (\u0000) must not cut a device id or a metric name short: "a\u0000b" is not
 * the device "a". cJSON decodes the escape into a NUL byte, and C strings end there. */
static void test_escaped_nul_is_not_a_terminator(void **state)
{
    struct parse_fixture *fx = *state;
    const char *bodies[] = {
        "{\"device\":\"a\\u0000b\",\"seq\":1,\"values\":{\"x\":1}}",
        "{\"device\":\"a\",\"seq\":1,\"values\":{\"gas_ppm\\u0000zz\":1}}",
        "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":1},\"ts\\u0000\":5}",
    };
    for (size_t k = 0; k < sizeof bodies / sizeof *bodies; k++) {
        int rc = parse(fx, bodies[k]);
        if (rc != CANARY_OK) { /* refusing the whole body is fine */
            assert_int_equal(rc, CANARY_EINVAL);
            assert_int_equal(fx->f.http_status, 400);
            continue;
        }
        assert_int_equal(fx->b.n, 1);
        if (fx->b.status[0] != READING_INVALID)
            fail_msg("%s: accepted as device '%s' (status %s); an escaped NUL was taken for the "
                     "end of a string",
                     bodies[k], fx->b.readings[0].device != NULL ? fx->b.readings[0].device : "",
                     reading_status_name(fx->b.status[0]));
    }
}

/* ---- fatal errors about the whole body ---- */

static void test_malformed_json_position(void **state)
{
    struct parse_fixture *fx = *state;
    expect_fatal(fx, "{\"device\":\"a\",\n\"seq\":x}",
                 "malformed JSON at byte 21 (line 2, column 7)");
    expect_fatal(fx, "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":tru}}",
                 "malformed JSON at byte 36 (line 1, column 37)");
    expect_fatal(fx, "[\n  {\"device\":\"a\"},\n  {\"device\" \"b\"}\n]",
                 "malformed JSON at byte 32 (line 3, column 13)");
    /* Bodies that stop in the middle of a value. */
    const char *truncated[] = {"{",           "[",     "{\"device\":",    "{\"device\":\"a\"",
                               "[{\"a\":1},", "\"abc", "{\"device\":\"a", "   "};
    for (size_t k = 0; k < sizeof truncated / sizeof *truncated; k++) {
        assert_int_equal(parse(fx, truncated[k]), CANARY_EINVAL);
        assert_int_equal(fx->f.http_status, 400);
        assert_string_equal(fx->f.field, "");
        size_t at, line, col;
        if (sscanf(fx->f.reason, "malformed JSON at byte %zu (line %zu, column %zu)", &at, &line,
                   &col) != 3)
            fail_msg("'%s': reason '%s'", truncated[k], fx->f.reason);
        assert_true(at <= strlen(truncated[k]));
        assert_int_equal(line, 1);
        assert_int_equal(col, at + 1);
    }
}

static void test_trailing_garbage(void **state)
{
    struct parse_fixture *fx = *state;
    const char *one = "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":1}}";
    char body[256];
    snprintf(body, sizeof body, "%s x", one);
    expect_fatal(fx, body, "unexpected data after the JSON value at byte 40");
    snprintf(body, sizeof body, "%s%s", one, one);
    expect_fatal(fx, body, "unexpected data after the JSON value at byte 39");
    snprintf(body, sizeof body, "%s,", one);
    expect_fatal(fx, body, "unexpected data after the JSON value at byte 39");
    snprintf(body, sizeof body, "[%s]]", one);
    expect_fatal(fx, body, "unexpected data after the JSON value at byte 41");
    /* Trailing whitespace is fine. */
    snprintf(body, sizeof body, "%s \t\r\n\n", one);
    assert_int_equal(parse(fx, body), CANARY_OK);
    assert_reading_pending(&fx->b, 0);
}

static void test_empty_body(void **state)
{
    struct parse_fixture *fx = *state;
    expect_fatal_n(fx, "", 0, CANARY_EINVAL, 400, "",
                   "the body is empty; send a reading object or an array of them");
}

static void test_nul_byte(void **state)
{
    struct parse_fixture *fx = *state;
    static const char inside[] = "{\"device\":\"a\0b\",\"seq\":1,\"values\":{\"x\":1}}";
    expect_fatal_n(fx, inside, sizeof inside - 1, CANARY_EINVAL, 400, "",
                   "the body contains a NUL byte");
    static const char after[] = "{\"device\":\"a\",\"seq\":1,\"values\":{\"x\":1}}\0";
    expect_fatal_n(fx, after, sizeof after - 1, CANARY_EINVAL, 400, "",
                   "the body contains a NUL byte");
    expect_fatal_n(fx, "\0", 1, CANARY_EINVAL, 400, "", "the body contains a NUL byte");
}

static void test_invalid_utf8(void **state)
{
    struct parse_fixture *fx = *state;
    /* Each sequence goes inside the device string, which starts at byte 11. */
    const struct {
        const char *seq;
        size_t at; /* offset of the bad sequence within the device string */
    } bad[] = {
        {"\xc0\x80", 0},         /* overlong NUL */
        {"\xc1\xbf", 0},         /* overlong */
        {"ab\xe0\x80\x80", 2},   /* overlong 3-byte */
        {"\xf0\x80\x80\x80", 0}, /* overlong 4-byte */
        {"\xed\xa0\x80", 0},     /* surrogate U+D800 */
        {"x\xed\xbf\xbf", 1},    /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 0}, /* above U+10FFFF */
        {"\x80", 0},             /* lone continuation */
        {"abc\xff", 3},          /* never valid */
        {"\xe2\x82", 0},         /* truncated before the closing quote */
        {"\xe2\x28\xa1", 0},     /* bad continuation */
    };
    char body[128], reason[128];
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int n = snprintf(body, sizeof body, "{\"device\":\"%s\",\"seq\":1,\"values\":{\"x\":1}}",
                         bad[k].seq);
        snprintf(reason, sizeof reason, "the body is not valid UTF-8 (at byte %zu)",
                 11 + bad[k].at);
        expect_fatal_n(fx, body, (size_t)n, CANARY_EINVAL, 400, "", reason);
    }
    /* A multi-byte character cut by the end of the body. */
    expect_fatal_n(fx, "{\"a\":\"\xf0\x9f\x98", 9, CANARY_EINVAL, 400, "",
                   "the body is not valid UTF-8 (at byte 6)");
    /* Valid multi-byte text is fine where text is free (an ignored field). */
    fx->lim.strict_fields = false;
    const struct reading *r = expect_valid(
        fx, "{\"note\":\"K\xc3\xbc\x63he \xe2\x82\xac \xf0\x9f\x94\xa5 \xf4\x8f\xbf\xbf\","
            "\"device\":\"d\",\"seq\":1,\"values\":{\"x\":1}}");
    assert_string_equal(r->device, "d");
}

static void test_escaped_surrogates_are_malformed(void **state)
{
    struct parse_fixture *fx = *state;
    /* Lone UTF-16 surrogates cannot become UTF-8; the string starts at byte 11. */
    const char *bodies[] = {"{\"device\":\"\\ud800\",\"seq\":1,\"values\":{\"x\":1}}",
                            "{\"device\":\"\\udc00\",\"seq\":1,\"values\":{\"x\":1}}",
                            "{\"device\":\"\\ud800\\u0041\",\"seq\":1,\"values\":{\"x\":1}}"};
    for (size_t k = 0; k < sizeof bodies / sizeof *bodies; k++) {
        assert_int_equal(parse(fx, bodies[k]), CANARY_EINVAL);
        assert_int_equal(fx->f.http_status, 400);
        assert_int_equal(strncmp(fx->f.reason, "malformed JSON at byte ", 23), 0);
    }
}

static void test_top_level_types(void **state)
{
    struct parse_fixture *fx = *state;
    expect_fatal(fx, "42", "the body must be a reading object or an array of them, got a number");
    expect_fatal(fx, "\"kitchen-1\"",
                 "the body must be a reading object or an array of them, got a string");
    expect_fatal(fx, "true",
                 "the body must be a reading object or an array of them, got a boolean");
    expect_fatal(fx, "null", "the body must be a reading object or an array of them, got null");
    expect_fatal(fx, "[]", "the batch is empty");
    expect_fatal(fx, " [ \n ] ", "the batch is empty");
}

static void test_max_batch(void **state)
{
    struct parse_fixture *fx = *state;
    fx->lim.max_batch = 3;
    char *three = test_repeat("[", "{\"device\":\"d\",\"seq\":1,\"values\":{\"x\":1}},", 2,
                              "{\"device\":\"d\",\"seq\":2,\"values\":{\"x\":1}}]");
    assert_int_equal(parse(fx, three), CANARY_OK);
    assert_int_equal(fx->b.n, 3);
    free(three);
    char *four = test_repeat("[", "{\"device\":\"d\",\"seq\":1,\"values\":{\"x\":1}},", 3,
                             "{\"device\":\"d\",\"seq\":2,\"values\":{\"x\":1}}]");
    expect_fatal_n(fx, four, strlen(four), CANARY_ELIMIT, 413, "ingest.max_batch",
                   "the batch holds more than 3 readings (limit ingest.max_batch)");
    free(four);
    /* Elements that are not readings count as well. */
    expect_fatal_n(fx, "[1,2,3,4,5,6,7]", 15, CANARY_ELIMIT, 413, "ingest.max_batch",
                   "the batch holds more than 3 readings (limit ingest.max_batch)");
    /* A huge array is refused without looking at every element. */
    fx->lim.max_batch = 100;
    char *huge = test_repeat("[", "0,", 200000, "0]");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_fatal_n(fx, huge, strlen(huge), CANARY_ELIMIT, 413, "ingest.max_batch",
                   "the batch holds more than 100 readings (limit ingest.max_batch)");
    assert_true(elapsed_s(&t0) < 2.0);
    free(huge);
}

static void test_one_bad_reading_in_a_batch(void **state)
{
    struct parse_fixture *fx = *state;
    assert_int_equal(parse(fx, "[{\"device\":\"a\",\"seq\":10,\"ts\":100,\"values\":{\"x\":1.5}},"
                               "{\"device\":\"b\",\"seq\":\"11\",\"values\":{\"x\":2}},"
                               "{\"device\":\"c\",\"seq\":12,\"values\":{\"x\":3,\"y\":false}},"
                               "42,"
                               "{\"device\":\"e\",\"seq\":14,\"values\":{\"x\":\"5\"}},"
                               "{\"device\":\"f\",\"seq\":15,\"ts\":200,\"values\":{\"z\":-6}}]"),
                     CANARY_OK);
    assert_int_equal(fx->b.n, 6);
    assert_true(fx->b.is_array);
    assert_reading_pending(&fx->b, 0);
    assert_reading_rejected(&fx->b, 1, "seq",
                            "must be a whole number from 0 to 2^53, got a string");
    assert_reading_pending(&fx->b, 2);
    assert_reading_rejected(&fx->b, 3, "", "a reading must be a JSON object, got a number");
    assert_reading_rejected(&fx->b, 4, "values.x", "must be a finite number, got a string");
    assert_reading_pending(&fx->b, 5);

    const struct reading *r = &fx->b.readings[0];
    assert_string_equal(r->device, "a");
    assert_int_equal(r->seq, 10);
    assert_int_equal(r->ts_ms, 100);
    assert_int_equal(r->n_values, 1);
    assert_parsed_value(r, 0, "x", 1.5);
    r = &fx->b.readings[2];
    assert_string_equal(r->device, "c");
    assert_int_equal(r->seq, 12);
    assert_false(r->has_ts);
    assert_int_equal(r->ts_ms, RECV_MS);
    assert_int_equal(r->n_values, 2);
    assert_parsed_value(r, 0, "x", 3.0);
    assert_parsed_value(r, 1, "y", 0.0);
    r = &fx->b.readings[5];
    assert_string_equal(r->device, "f");
    assert_int_equal(r->seq, 15);
    assert_int_equal(r->ts_ms, 200);
    assert_parsed_value(r, 0, "z", -6.0);
    for (size_t i = 0; i < fx->b.n; i++)
        assert_int_equal(fx->b.readings[i].recv_ms, RECV_MS);
}

/* ---- hostile bodies ---- */

static void test_deep_nesting(void **state)
{
    struct parse_fixture *fx = *state;
    const struct {
        const char *prefix, *unit, *suffix;
    } shapes[] = {
        {"", "[", ""},
        {"", "{\"a\":", ""},
        {"{\"device\":\"d\",\"seq\":1,\"values\":{\"x\":", "[", ""},
        {"{\"device\":\"d\",\"seq\":1,\"values\":{\"x\":1},\"m\":", "{\"a\":", "1"},
    };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        char *body = test_repeat(shapes[k].prefix, shapes[k].unit, 100000, shapes[k].suffix);
        int rc = parse(fx, body);
        free(body);
        assert_int_equal(rc, CANARY_EINVAL);
        assert_int_equal(fx->f.http_status, 400);
        assert_int_equal(strncmp(fx->f.reason, "malformed JSON at byte ", 23), 0);
    }
    /* Closed deep nesting is refused as well, and never overflows the stack. */
    char *open = test_repeat("", "[", 100000, "");
    char *body = test_repeat(open, "]", 100000, "");
    free(open);
    assert_int_equal(parse(fx, body), CANARY_EINVAL);
    free(body);
    /* Moderate nesting in an ignored field is harmless. */
    fx->lim.strict_fields = false;
    open = test_repeat("{\"device\":\"d\",\"seq\":1,\"values\":{\"x\":1},\"m\":", "[", 200, "");
    body = test_repeat(open, "]", 200, "}");
    free(open);
    expect_valid(fx, body);
    free(body);
}

static void test_many_keys_rejected_quickly(void **state)
{
    struct parse_fixture *fx = *state;
    enum { KEYS = 100000 };
    char *body = malloc((size_t)KEYS * 24 + 128);
    assert_non_null(body);
    struct timespec t0;

    /* 100k distinct top-level keys. */
    size_t n = 0;
    body[n++] = '{';
    for (int k = 0; k < KEYS; k++)
        n += (size_t)sprintf(body + n, "%s\"k%d\":%d", k ? "," : "", k, k);
    body[n++] = '}';
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(parse_n(fx, body, n), CANARY_OK);
    assert_true(elapsed_s(&t0) < 2.0);
    assert_int_equal(fx->b.n, 1);
    assert_int_equal(fx->b.status[0], READING_INVALID);
    assert_string_equal(fx->b.errors[0].field, "");

    /* The same with unknown fields ignored: still refused, still fast. */
    fx->lim.strict_fields = false;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(parse_n(fx, body, n), CANARY_OK);
    assert_true(elapsed_s(&t0) < 2.0);
    assert_int_equal(fx->b.status[0], READING_INVALID);
    assert_string_equal(fx->b.errors[0].field, "");

    /* 100k identical keys: a duplicate check over all of them would be O(n^2). */
    n = 0;
    body[n++] = '{';
    for (int k = 0; k < KEYS; k++)
        n += (size_t)sprintf(body + n, "%s\"device\":\"d\"", k ? "," : "");
    body[n++] = '}';
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(parse_n(fx, body, n), CANARY_OK);
    assert_true(elapsed_s(&t0) < 2.0);
    assert_int_equal(fx->b.status[0], READING_INVALID);

    /* 100k metrics, distinct and identical. */
    for (int same = 0; same < 2; same++) {
        n = (size_t)sprintf(body, "{\"device\":\"d\",\"seq\":1,\"values\":{");
        for (int k = 0; k < KEYS; k++)
            n += same ? (size_t)sprintf(body + n, "%s\"x\":1", k ? "," : "")
                      : (size_t)sprintf(body + n, "%s\"m%d\":1", k ? "," : "", k);
        body[n++] = '}';
        body[n++] = '}';
        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_int_equal(parse_n(fx, body, n), CANARY_OK);
        assert_true(elapsed_s(&t0) < 2.0);
        assert_reading_rejected(&fx->b, 0, "values",
                                "holds more than 8 metrics (limit ingest.max_metrics)");
    }
    free(body);
}

static void test_reasons_are_sanitised(void **state)
{
    struct parse_fixture *fx = *state;
    fx->lim.max_device_len = 128;
    /* Control characters, quotes, backslashes and non-ASCII bytes never reach a reason, and
     * quoted text is cut at 40 bytes. */
    const char *bodies[] = {
        "{\"device\":\"\\u001b[31mred\\\"quoted\\\"\\r\\nX-Injected: 1\\u0007\",\"seq\":1,"
        "\"values\":{\"x\":1}}",
        "{\"device\":\"d\",\"seq\":1,\"values\":{\"\\u001b]0;title\\u0007\\\"\\\\\":1}}",
        "{\"device\":\"d\",\"seq\":1,\"values\":{\"x\\n\":1,\"x\\n\":2}}",
        "{\"device\":\"d\",\"\\r\\nSet-Cookie: a=b\\\"\":1,\"seq\":1,\"values\":{\"x\":1}}",
        "{\"device\":\"d\",\"\\u00e9\\u00e9\":1,\"seq\":1,\"values\":{\"x\":1}}",
        "{\"device\":\"d\",\"seq\":1,\"\\n\":1,\"\\n\":1,\"values\":{\"x\":1}}",
    };
    for (size_t k = 0; k < sizeof bodies / sizeof *bodies; k++) {
        assert_int_equal(parse(fx, bodies[k]), CANARY_OK);
        assert_int_equal(fx->b.status[0], READING_INVALID);
        const struct reading_error *e = &fx->b.errors[0];
        if (!test_printable(e->field) || !test_printable(e->reason))
            fail_msg("body %zu: unsanitised error '%s': '%s'", k, e->field, e->reason);
    }
    expect_invalid(fx, bodies[0], "device",
                   "'?[31mred?quoted???X-Injected: 1?' " DEVICE_CHARSET_REASON);
    expect_invalid(fx, bodies[3], "??Set-Cookie: a=b?", UNKNOWN_FIELD_REASON);

    /* Long untrusted text is cut to 40 bytes and "...". */
    char *body = test_repeat("{\"device\":\"", "a/", 60, "\",\"seq\":1,\"values\":{\"x\":1}}");
    expect_invalid(fx, body, "device",
                   "'a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/...' " DEVICE_CHARSET_REASON);
    free(body);
    body = test_repeat("{\"device\":\"d\",\"seq\":1,\"", "Z", 5000, "\":1,\"values\":{\"x\":1}}");
    expect_invalid(fx, body, "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ...", UNKNOWN_FIELD_REASON);
    free(body);
    body = test_repeat("{\"device\":\"d\",\"seq\":1,\"values\":{\"", "Q", 5000, "\":1}}");
    expect_invalid(fx, body, "values",
                   "metric name 'QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ...' is longer than 64 "
                   "bytes (limit ingest.max_metric_len)");
    free(body);
    body = test_repeat("{\"device\":\"d\",\"seq\":1,\"values\":{\"", "q", 5000, "\":1,\"");
    char *dup = test_repeat(body, "q", 5000, "\":2}}");
    free(body);
    expect_invalid(fx, dup, "values",
                   "metric 'qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...' appears twice");
    free(dup);
}

/* ---- fuzz ---- */

static const char *const fuzz_seeds[] = {
    "{\"device\":\"kitchen-1\",\"seq\":1042,\"ts\":1763676000123,"
    "\"values\":{\"gas_ppm\":412.5,\"temperature_c\":24.1}}",
    "[{\"device\":\"a\",\"seq\":1,\"values\":{\"flame\":true,\"motion\":false}},"
    "{\"device\":\"b\",\"seq\":2,\"ts\":5,\"values\":{\"x\":-1e3}}]",
    "{\"seq\":0,\"values\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4},\"device\":\"k\\u00fc\"}",
    "{\"device\":\"d\",\"seq\":9007199254740991,\"note\":{\"x\":[1,2,null]},"
    "\"values\":{\"light_lux\":0.5e-3}}",
    "[{\"device\":\"e\",\"seq\":3,\"values\":{\"x\":1e999}},42,\"s\",{\"device\":\"f\"}]",
};

/* Bytes that matter to the grammar, and a few that the body checks refuse. */
static const char fuzz_special[] = {'{', '}',  '[', ']', ':',  ',',    '"',    '\\',
                                    ' ', '-',  '.', 'e', '0',  '9',    't',    'n',
                                    'u', '\n', 'a', '_', '\0', '\x80', '\xc3', '\xff'};

/* Replaces a byte by one of its own kind (digit, letter), which keeps most bodies JSON. */
static void gentle_replace(struct test_rng *r, char *c)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzA_-.:/ ";
    if (*c >= '0' && *c <= '9')
        *c = (char)('0' + test_rng_below(r, 10));
    else if ((*c >= 'a' && *c <= 'z') || *c == '_' || *c == '-')
        *c = letters[test_rng_below(r, sizeof letters - 1)];
}

static size_t fuzz_mutate(struct test_rng *r, char *buf, size_t len, size_t cap)
{
    size_t steps = 1 + test_rng_below(r, 4);
    for (size_t s = 0; s < steps; s++) {
        if (test_rng_below(r, 2) == 0) {
            if (len > 0)
                gentle_replace(r, &buf[test_rng_below(r, len)]);
            continue;
        }
        char c = test_rng_below(r, 4) == 0 ? (char)test_rng_below(r, 256)
                                           : fuzz_special[test_rng_below(r, sizeof fuzz_special)];
        len = test_fuzz_edit(r, buf, len, cap, c, 4);
    }
    return len;
}

/* Checks what the parser promises about any outcome, on top of what every body parser does.
 * Returns the number of valid readings. */
static size_t check_outcome(const struct parse_fixture *fx, int rc)
{
    size_t valid = assert_parse_outcome(fx, rc, RECV_MS);
    for (size_t i = 0; rc == CANARY_OK && i < fx->b.n; i++) {
        const struct reading *r = &fx->b.readings[i];
        if (fx->b.status[i] == READING_PENDING) {
            assert_true(r->has_seq);
            assert_true(r->seq < 9007199254740992ULL);
        }
    }
    return valid;
}

static void test_fuzz(void **state)
{
    struct parse_fixture *fx = *state;
    fx->lim = (struct ingest_limits){.max_batch = 4,
                                     .max_metrics = 4,
                                     .max_device_len = 16,
                                     .max_metric_len = 16,
                                     .strict_fields = false};
    enum { CAP = 2048, ITERATIONS = 8000 };
    static char buf[CAP];
    struct test_rng r = {.s = 0x6a50f0221dULL};
    size_t valid = 0, invalid = 0, fatal = 0;
    for (int it = 0; it < ITERATIONS; it++) {
        size_t len = 0;
        size_t mode = test_rng_below(&r, 8);
        if (mode == 0) { /* random grammar bytes */
            len = test_rng_below(&r, 200);
            for (size_t k = 0; k < len; k++)
                buf[k] = test_rng_below(&r, 3) == 0
                             ? (char)test_rng_below(&r, 256)
                             : fuzz_special[test_rng_below(&r, sizeof fuzz_special)];
        } else if (mode <= 3) { /* several seeds in an array, mutated */
            buf[len++] = '[';
            size_t parts = 1 + test_rng_below(&r, 5);
            for (size_t p = 0; p < parts; p++) {
                const char *seed = fuzz_seeds[test_rng_below(&r, 3)];
                size_t n = strlen(seed);
                if (len + n + 2 > CAP / 2)
                    break;
                if (p > 0)
                    buf[len++] = ',';
                memcpy(buf + len, seed, n);
                len += n;
            }
            buf[len++] = ']';
            len = fuzz_mutate(&r, buf, len, CAP);
        } else { /* one seed, mutated */
            const char *seed =
                fuzz_seeds[test_rng_below(&r, sizeof fuzz_seeds / sizeof *fuzz_seeds)];
            len = strlen(seed);
            memcpy(buf, seed, len);
            len = fuzz_mutate(&r, buf, len, CAP);
        }
        fx->lim.strict_fields = test_rng_below(&r, 2) == 0;
        int rc = parse_n(fx, buf, len);
        size_t ok = check_outcome(fx, rc);
        valid += ok;
        if (rc == CANARY_OK)
            invalid += fx->b.n - ok;
        else
            fatal++;
    }
    /* The loop must reach all three outcomes, or it tests less than it seems to. */
    if (valid < 500 || invalid < 500 || fatal < 500)
        fail_msg("fuzz outcomes: %zu valid, %zu invalid readings, %zu fatal bodies", valid, invalid,
                 fatal);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, parse_fixture_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        T(test_single_object),
        T(test_ts_absent_defaults_to_recv),
        T(test_batch),
        T(test_booleans),
        T(test_numbers),
        T(test_device_errors),
        T(test_seq_errors),
        T(test_ts_errors),
        T(test_values_errors),
        T(test_overflowing_number),
        T(test_nan_and_infinity_are_malformed),
        T(test_unknown_fields),
        T(test_duplicate_keys),
        T(test_escaped_nul_is_not_a_terminator),
        T(test_malformed_json_position),
        T(test_trailing_garbage),
        T(test_empty_body),
        T(test_nul_byte),
        T(test_invalid_utf8),
        T(test_escaped_surrogates_are_malformed),
        T(test_top_level_types),
        T(test_max_batch),
        T(test_one_bad_reading_in_a_batch),
        T(test_deep_nesting),
        T(test_many_keys_rejected_quickly),
        T(test_reasons_are_sanitised),
        T(test_fuzz),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
