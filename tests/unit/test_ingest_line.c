/* test_ingest_line.c — unit tests of the line protocol parser (src/ingest/ingest_line.c).
 *
 * Every body is copied into a buffer of exactly its length, with no NUL after it, so that
 * the sanitizer build catches any read past the end. Statuses, error fields, error reasons
 * and values are compared exactly; the fuzz loop at the end checks the parser's promises
 * (valid readings are well-formed, errors are sanitised, nothing crashes) on mutated input. */
#include "core/error.h"
#include "core/metric.h"
#include "ingest/ingest.h"
#include "unit_support.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define RECV_MS 1763676000999LL

#define SEQ_REASON "must be a whole number from 0 to 2^53 written as an integer (42i or 42u), got "
#define DEVICE_REASON                                                                              \
    "is not a valid device id (letters, digits and . _ : -, starting with a letter or digit)"
#define NO_FIELDS_REASON                                                                           \
    "has no fields (expected <measurement>[,<tag>=<value>...] <field>=<value>[,...] "              \
    "[<timestamp>])"
#define TS_RANGE_REASON  "is out of range (at most 2^53 milliseconds since the Unix epoch), got "
#define NO_METRIC_REASON "must hold at least one metric (a number or boolean field)"

/* Parses body[0..len) from a fresh batch; the body lives in a buffer of exactly len bytes. */
static int parse_n(struct parse_fixture *fx, const char *body, size_t len, enum line_precision p)
{
    char *copy = parse_fixture_reset(fx, body, len);
    int rc = ingest_parse_line(copy, len, &fx->lim, p, RECV_MS, &fx->b, &fx->f);
    free(copy);
    return rc;
}

static int parse_p(struct parse_fixture *fx, const char *body, enum line_precision p)
{
    return parse_n(fx, body, strlen(body), p);
}

static int parse(struct parse_fixture *fx, const char *body)
{
    return parse_p(fx, body, LINE_PRECISION_NS);
}

/* Parses a one-line body that must come back as one invalid reading. */
static void expect_invalid(struct parse_fixture *fx, const char *body, const char *field,
                           const char *reason)
{
    assert_int_equal(parse(fx, body), CANARY_OK);
    assert_int_equal(fx->b.n, 1);
    assert_false(fx->b.is_array);
    assert_reading_rejected(&fx->b, 0, field, reason);
}

/* Parses a one-line body that must come back as one valid reading; returns it. */
static const struct reading *expect_valid_prec(struct parse_fixture *fx, const char *body,
                                               enum line_precision p)
{
    int rc = parse_p(fx, body, p);
    if (rc != CANARY_OK)
        fail_msg("'%s': rc %d, %d %s: %s", body, rc, fx->f.http_status, fx->f.field, fx->f.reason);
    assert_int_equal(fx->b.n, 1);
    assert_false(fx->b.is_array);
    assert_reading_pending(&fx->b, 0);
    assert_int_equal(fx->b.readings[0].recv_ms, RECV_MS);
    return &fx->b.readings[0];
}

static const struct reading *expect_valid(struct parse_fixture *fx, const char *body)
{
    return expect_valid_prec(fx, body, LINE_PRECISION_NS);
}

static void expect_fatal_n(struct parse_fixture *fx, const char *body, size_t len, int rc,
                           int status, const char *field, const char *reason)
{
    assert_int_equal(parse_n(fx, body, len, LINE_PRECISION_NS), rc);
    assert_int_equal(fx->f.http_status, status);
    assert_string_equal(fx->f.field, field);
    assert_string_equal(fx->f.reason, reason);
}

static void test_precision_parse(void **state)
{
    (void)state;
    enum line_precision p = LINE_PRECISION_S;
    assert_int_equal(line_precision_parse("ns", &p), CANARY_OK);
    assert_int_equal(p, LINE_PRECISION_NS);
    assert_int_equal(line_precision_parse("us", &p), CANARY_OK);
    assert_int_equal(p, LINE_PRECISION_US);
    assert_int_equal(line_precision_parse("ms", &p), CANARY_OK);
    assert_int_equal(p, LINE_PRECISION_MS);
    assert_int_equal(line_precision_parse("s", &p), CANARY_OK);
    assert_int_equal(p, LINE_PRECISION_S);
    const char *bad[] = {"", "NS", "n", "m", "h", "sec", "ms ", " s", "u", "µs"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        assert_int_equal(line_precision_parse(bad[k], &p), CANARY_EINVAL);
    assert_int_equal(line_precision_parse(NULL, &p), CANARY_EINVAL);
    assert_int_equal(p, LINE_PRECISION_S);
}

static void test_single_line(void **state)
{
    struct parse_fixture *fx = *state;
    const struct reading *r = expect_valid(fx, "air,device=kitchen-1,room=kitchen "
                                               "gas_ppm=412.5,temperature_c=24.1 "
                                               "1763676000123456789\n");
    assert_string_equal(r->device, "kitchen-1");
    assert_true(r->has_ts);
    assert_int_equal(r->ts_ms, 1763676000123LL);
    assert_false(r->has_seq);
    assert_int_equal(r->seq, 0);
    assert_int_equal(r->n_values, 2);
    assert_parsed_value(r, 0, "gas_ppm", 412.5);
    assert_parsed_value(r, 1, "temperature_c", 24.1);
}

static void test_no_timestamp(void **state)
{
    struct parse_fixture *fx = *state;
    const struct reading *r = expect_valid(fx, "air,device=a gas_ppm=1");
    assert_false(r->has_ts);
    assert_int_equal(r->ts_ms, RECV_MS);
    /* Trailing blanks are not a timestamp either. */
    r = expect_valid(fx, "air,device=a gas_ppm=1 \t ");
    assert_false(r->has_ts);
    assert_int_equal(r->ts_ms, RECV_MS);
}

static void test_several_lines(void **state)
{
    struct parse_fixture *fx = *state;
    assert_int_equal(parse(fx, "air,device=a gas_ppm=1 1000000000\n"
                               "air,device=b gas_ppm=2,seq=7i 2000000000\n"
                               "air,device=c gas_ppm=3"),
                     CANARY_OK);
    assert_int_equal(fx->b.n, 3);
    assert_true(fx->b.is_array);
    const char *devices[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        assert_reading_pending(&fx->b, i);
        assert_string_equal(fx->b.readings[i].device, devices[i]);
        assert_parsed_value(&fx->b.readings[i], 0, "gas_ppm", (double)(i + 1));
        assert_int_equal(fx->b.readings[i].recv_ms, RECV_MS);
    }
    assert_int_equal(fx->b.readings[0].ts_ms, 1000);
    assert_int_equal(fx->b.readings[1].ts_ms, 2000);
    assert_false(fx->b.readings[0].has_seq);
    assert_true(fx->b.readings[1].has_seq);
    assert_int_equal(fx->b.readings[1].seq, 7);
    assert_false(fx->b.readings[2].has_ts);
    assert_int_equal(fx->b.readings[2].ts_ms, RECV_MS);
}

static void test_one_reading_among_comments_is_not_an_array(void **state)
{
    struct parse_fixture *fx = *state;
    assert_int_equal(parse(fx, "# written by telegraf\n\nair,device=a v=1\n\n# end\n"), CANARY_OK);
    assert_int_equal(fx->b.n, 1);
    assert_false(fx->b.is_array);
    assert_reading_pending(&fx->b, 0);
}

static void test_precisions(void **state)
{
    struct parse_fixture *fx = *state;
    const struct {
        enum line_precision p;
        const char *ts;
        int64_t ms;
    } ok[] = {
        {LINE_PRECISION_NS, "1763676000123456789", 1763676000123LL},
        {LINE_PRECISION_US, "1763676000123456", 1763676000123LL},
        {LINE_PRECISION_MS, "1763676000123", 1763676000123LL},
        {LINE_PRECISION_S, "1763676000", 1763676000000LL},
        {LINE_PRECISION_NS, "0", 0},
        {LINE_PRECISION_NS, "-0", 0},
        {LINE_PRECISION_NS, "999999", 0},
        {LINE_PRECISION_NS, "1999999", 1},
        {LINE_PRECISION_US, "1999", 1},
        {LINE_PRECISION_NS, "9223372036854775807", 9223372036854LL},
        {LINE_PRECISION_US, "9007199254740991999", 9007199254740991LL},
        {LINE_PRECISION_MS, "9007199254740991", 9007199254740991LL},
        {LINE_PRECISION_S, "9007199254740", 9007199254740000LL},
        {LINE_PRECISION_MS, "000000000000000000000000042", 42},
    };
    char body[128];
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        snprintf(body, sizeof body, "m,device=a v=1 %s", ok[k].ts);
        const struct reading *r = expect_valid_prec(fx, body, ok[k].p);
        assert_true(r->has_ts);
        assert_int_equal(r->ts_ms, ok[k].ms);
    }
    const struct {
        enum line_precision p;
        const char *ts;
    } out_of_range[] = {
        {LINE_PRECISION_NS, "9223372036854775808"},
        {LINE_PRECISION_US, "9007199254740992000"},
        {LINE_PRECISION_MS, "9007199254740992"},
        {LINE_PRECISION_S, "9007199254741"},
        {LINE_PRECISION_S, "9223372036854775807"},
        /* 18446744073709552 s times 1000 wraps to 384 ms in 64 bits. */
        {LINE_PRECISION_S, "18446744073709552"},
    };
    char reason[160];
    for (size_t k = 0; k < sizeof out_of_range / sizeof out_of_range[0]; k++) {
        snprintf(body, sizeof body, "m,device=a v=1 %s", out_of_range[k].ts);
        assert_int_equal(parse_p(fx, body, out_of_range[k].p), CANARY_OK);
        snprintf(reason, sizeof reason, TS_RANGE_REASON "'%s'", out_of_range[k].ts);
        assert_reading_rejected(&fx->b, 0, "line 1: ts", reason);
        assert_false(fx->b.readings[0].has_ts);
        assert_int_equal(fx->b.readings[0].ts_ms, RECV_MS);
    }
    /* The same digits mean different times in different precisions. */
    assert_int_equal(expect_valid_prec(fx, "m,device=a v=1 5000", LINE_PRECISION_US)->ts_ms, 5);
    assert_int_equal(expect_valid_prec(fx, "m,device=a v=1 5000", LINE_PRECISION_S)->ts_ms,
                     5000000);
}

static void test_unknown_precision_is_fatal(void **state)
{
    struct parse_fixture *fx = *state;
    const char *body = "m,device=a v=1";
    assert_int_equal(parse_n(fx, body, strlen(body), (enum line_precision)42), CANARY_EINVAL);
    assert_int_equal(fx->f.http_status, 400);
    assert_string_equal(fx->f.field, "precision");
    assert_string_equal(fx->f.reason, "unknown timestamp precision (use ns, us, ms or s)");
}

static void test_field_types(void **state)
{
    struct parse_fixture *fx = *state;
    fx->lim.max_metrics = 16;
    const struct reading *r =
        expect_valid(fx, "m,device=d a=1.5,b=-3,c=1e3,d=12i,e=12u,f=-7i,g=.5,h=2.,k=-0.25E-2,"
                         "l=9223372036854775807i,n=-9223372036854775808i,"
                         "o=18446744073709551615u,p=-0i,q=1e-400,s=00012");
    assert_int_equal(r->n_values, 15);
    assert_parsed_value(r, 0, "a", 1.5);
    assert_parsed_value(r, 1, "b", -3.0);
    assert_parsed_value(r, 2, "c", 1000.0);
    assert_parsed_value(r, 3, "d", 12.0);
    assert_parsed_value(r, 4, "e", 12.0);
    assert_parsed_value(r, 5, "f", -7.0);
    assert_parsed_value(r, 6, "g", 0.5);
    assert_parsed_value(r, 7, "h", 2.0);
    assert_parsed_value(r, 8, "k", -0.25e-2);
    assert_parsed_value(r, 9, "l", (double)INT64_MAX);
    assert_parsed_value(r, 10, "n", (double)INT64_MIN);
    assert_parsed_value(r, 11, "o", (double)UINT64_MAX);
    assert_parsed_value(r, 12, "p", 0.0);
    assert_parsed_value(r, 13, "q", 0.0); /* underflow is a tiny number, not an error */
    assert_parsed_value(r, 14, "s", 12.0);
}

static void test_booleans(void **state)
{
    struct parse_fixture *fx = *state;
    fx->lim.max_metrics = 16;
    const struct reading *r = expect_valid(fx, "m,device=d b1=t,b2=T,b3=true,b4=True,b5=TRUE,"
                                               "b6=f,b7=F,b8=false,b9=False,b10=FALSE");
    assert_int_equal(r->n_values, 10);
    const char *names[] = {"b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", "b10"};
    for (size_t k = 0; k < 10; k++)
        assert_parsed_value(r, k, names[k], k < 5 ? 1.0 : 0.0);
    expect_invalid(fx, "m,device=d flame=tRUE", "line 1: values.flame",
                   "must be a finite number, got 'tRUE'");
    expect_invalid(fx, "m,device=d flame=yes", "line 1: values.flame",
                   "must be a finite number, got 'yes'");
}

static void test_seq(void **state)
{
    struct parse_fixture *fx = *state;
    const struct reading *r = expect_valid(fx, "m,device=d seq=1042i,gas_ppm=1");
    assert_true(r->has_seq);
    assert_int_equal(r->seq, 1042);
    assert_int_equal(r->n_values, 1);
    assert_parsed_value(r, 0, "gas_ppm", 1.0);
    r = expect_valid(fx, "m,device=d gas_ppm=1,seq=7u");
    assert_true(r->has_seq);
    assert_int_equal(r->seq, 7);
    r = expect_valid(fx, "m,device=d gas_ppm=1,seq=0i");
    assert_true(r->has_seq);
    assert_int_equal(r->seq, 0);
    r = expect_valid(fx, "m,device=d gas_ppm=1,seq=9007199254740991i");
    assert_int_equal(r->seq, 9007199254740991ULL);

    expect_invalid(fx, "m,device=d v=1,seq=9007199254740992i", "line 1: seq",
                   SEQ_REASON "'9007199254740992i'");
    expect_invalid(fx, "m,device=d v=1,seq=18446744073709551615u", "line 1: seq",
                   SEQ_REASON "'18446744073709551615u'");
    expect_invalid(fx, "m,device=d v=1,seq=99999999999999999999u", "line 1: seq",
                   SEQ_REASON "'99999999999999999999u'");
    expect_invalid(fx, "m,device=d v=1,seq=-1i", "line 1: seq", SEQ_REASON "'-1i'");
    expect_invalid(fx, "m,device=d v=1,seq=5", "line 1: seq", SEQ_REASON "'5'");
    expect_invalid(fx, "m,device=d v=1,seq=5.0", "line 1: seq", SEQ_REASON "'5.0'");
    expect_invalid(fx, "m,device=d v=1,seq=t", "line 1: seq", SEQ_REASON "'t'");
    expect_invalid(fx, "m,device=d v=1,seq=", "line 1: seq", SEQ_REASON "''");
    expect_invalid(fx, "m,device=d v=1,seq=\"5\"", "line 1: seq", SEQ_REASON "a string");
    assert_false(fx->b.readings[0].has_seq);
    /* seq is not a metric: a line needs one besides it. */
    expect_invalid(fx, "m,device=d seq=1i", "line 1: values", NO_METRIC_REASON);
}

static void test_escaping(void **state)
{
    struct parse_fixture *fx = *state;
    const struct reading *r =
        expect_valid(fx, "my\\ air\\,x,device=kitchen-1,loc=floor\\ 1\\,\\ west,k\\=ey=v\\=al,"
                         "eq=a=b gas_ppm=1 5000000");
    assert_string_equal(r->device, "kitchen-1");
    assert_int_equal(r->ts_ms, 5);
    assert_int_equal(r->n_values, 1);
    assert_parsed_value(r, 0, "gas_ppm", 1.0);

    /* An escaped comma does not end the measurement, so there is no device tag. */
    expect_invalid(fx, "m\\,device=evil v=1", "line 1: device",
                   "is required (add the tag device=<id>)");
    /* An escaped space does not end the measurement. */
    r = expect_valid(fx, "m\\ x,device=a v=1");
    assert_string_equal(r->device, "a");
    /* An escaped backslash leaves the comma after it unescaped. */
    r = expect_valid(fx, "m,loc=a\\\\,device=b v=1");
    assert_string_equal(r->device, "b");
    /* An escaped key is not the device tag. */
    expect_invalid(fx, "m,dev\\ice=a v=1", "line 1: device",
                   "is required (add the tag device=<id>)");
    /* Escapes in the device id are checked as written, and are not valid there. */
    expect_invalid(fx, "m,device=kit\\ chen v=1", "line 1: device", "'kit? chen' " DEVICE_REASON);
    expect_invalid(fx, "m,device=a\\,b v=1", "line 1: device", "'a?,b' " DEVICE_REASON);
    /* ... nor in metric names. */
    expect_invalid(fx, "m,device=a gas\\ ppm=1", "line 1: values",
                   "metric name 'gas? ppm' is not snake_case ([a-z][a-z0-9_]*, e.g. gas_ppm)");
    /* String values hold escaped quotes, commas, blanks and '=' without ending early. */
    r = expect_valid(fx, "m,device=a note=\"say \\\"hi\\\", a=b ok\\\\\",v=2 7000000");
    assert_int_equal(r->n_values, 1);
    assert_parsed_value(r, 0, "v", 2.0);
    assert_int_equal(r->ts_ms, 7);
}

static void test_comments_and_blank_lines(void **state)
{
    struct parse_fixture *fx = *state;
    assert_int_equal(parse(fx, "# header\n"         /* 1 */
                               "\n"                 /* 2 */
                               "   \n"              /* 3 */
                               "m,device=a v=1\n"   /* 4 */
                               "  # indented\n"     /* 5 */
                               "\t\n"               /* 6 */
                               "m,room=x v=2\n"     /* 7 */
                               "\r\n"               /* 8 */
                               "  m,device=c v=3\n" /* 9 */
                               "#m,device=d v=4"),  /* 10 */
                     CANARY_OK);
    assert_int_equal(fx->b.n, 3);
    assert_true(fx->b.is_array);
    assert_reading_pending(&fx->b, 0);
    assert_string_equal(fx->b.readings[0].device, "a");
    assert_reading_rejected(&fx->b, 1, "line 7: device", "is required (add the tag device=<id>)");
    assert_reading_pending(&fx->b, 2);
    assert_string_equal(fx->b.readings[2].device, "c");
    assert_parsed_value(&fx->b.readings[2], 0, "v", 3.0);
}

static void test_crlf(void **state)
{
    struct parse_fixture *fx = *state;
    assert_int_equal(parse(fx, "m,device=a v=1 1000000\r\nm,device=b v=2i\r\n\r\n"), CANARY_OK);
    assert_int_equal(fx->b.n, 2);
    assert_reading_pending(&fx->b, 0);
    assert_reading_pending(&fx->b, 1);
    assert_int_equal(fx->b.readings[0].ts_ms, 1);
    assert_parsed_value(&fx->b.readings[1], 0, "v", 2.0);
    assert_false(fx->b.readings[1].has_ts);
    /* A final line without '\n' may end in '\r' too. */
    assert_int_equal(expect_valid(fx, "m,device=a v=1 2000000\r")->ts_ms, 2);
    /* Only one '\r', and only before the end of the line, is dropped. */
    expect_invalid(fx, "m,device=a v=1\r\r\n", "line 1: values.v",
                   "must be a finite number, got '1?'");
    expect_invalid(fx, "m,device=a v=1\r 5\n", "line 1: values.v",
                   "must be a finite number, got '1?'");
}

static void test_missing_device(void **state)
{
    struct parse_fixture *fx = *state;
    expect_invalid(fx, "m,room=k v=1", "line 1: device", "is required (add the tag device=<id>)");
    expect_invalid(fx, "m v=1", "line 1: device", "is required (add the tag device=<id>)");
    expect_invalid(fx, "m,Device=a v=1", "line 1: device", "is required (add the tag device=<id>)");
    expect_invalid(fx, "m,devices=a v=1", "line 1: device",
                   "is required (add the tag device=<id>)");
    expect_invalid(fx, "m,device_id=a v=1", "line 1: device",
                   "is required (add the tag device=<id>)");
    assert_null(fx->b.readings[0].device);
    assert_int_equal(fx->b.readings[0].ts_ms, RECV_MS);
    assert_int_equal(fx->b.readings[0].recv_ms, RECV_MS);
}

static void test_invalid_device(void **state)
{
    struct parse_fixture *fx = *state;
    expect_invalid(fx, "m,device=bad/id v=1", "line 1: device", "'bad/id' " DEVICE_REASON);
    expect_invalid(fx, "m,device=-lead v=1", "line 1: device", "'-lead' " DEVICE_REASON);
    expect_invalid(fx, "m,device=ab\"c v=1", "line 1: device", "'ab?c' " DEVICE_REASON);
    expect_invalid(fx, "m,device=caf\xc3\xa9 v=1", "line 1: device", "'caf?\?' " DEVICE_REASON);
    /* Long untrusted text is cut to 40 bytes. */
    char *body = test_repeat("m,device=/", "a", 49, " v=1");
    char *want = test_repeat("'/", "a", 39, "...' " DEVICE_REASON);
    expect_invalid(fx, body, "line 1: device", want);
    free(body);
    free(want);

    fx->lim.max_device_len = 8;
    assert_string_equal(expect_valid(fx, "m,device=abcdefgh v=1")->device, "abcdefgh");
    expect_invalid(fx, "m,device=abcdefghi v=1", "line 1: device",
                   "is longer than 8 bytes (limit ingest.max_device_len)");

    expect_invalid(fx, "m,device=a,device=b v=1", "line 1: device", "appears twice among the tags");
    expect_invalid(fx, "m,device=a,x=1,device=a v=1", "line 1: device",
                   "appears twice among the tags");
    expect_invalid(fx, "m,device= v=1",
                   "line 1: ", "tag 'device' has an empty value (leave the tag out instead)");
    expect_invalid(fx, "m,device v=1",
                   "line 1: ", "tag 'device' has no value (write <key>=<value>)");
    expect_invalid(fx, "m,device", "line 1: ", "tag 'device' has no value (write <key>=<value>)");
    expect_invalid(fx, "m,=x v=1", "line 1: ", "a tag has an empty key");
    expect_invalid(fx, "m,device=a, v=1", "line 1: ", "a tag has an empty key");
}

static void test_string_fields(void **state)
{
    struct parse_fixture *fx = *state;
    fx->lim.strict_fields = false;
    const struct reading *r =
        expect_valid(fx, "m,device=a gas_ppm=\"abc\",Status=\"ok\",temperature_c=1");
    assert_int_equal(r->n_values, 1);
    assert_parsed_value(r, 0, "temperature_c", 1.0);
    expect_invalid(fx, "m,device=a gas_ppm=\"abc\",note=\"\"", "line 1: values", NO_METRIC_REASON);

    fx->lim.strict_fields = true;
    expect_invalid(fx, "m,device=a gas_ppm=\"abc\",temperature_c=1", "line 1: values.gas_ppm",
                   "must be a finite number, got a string");
    expect_invalid(fx, "m,device=a temperature_c=1,gas_ppm=\"\"", "line 1: values.gas_ppm",
                   "must be a finite number, got a string");
    expect_invalid(fx, "m,device=a Status=\"ok\",temperature_c=1", "line 1: values",
                   "metric name 'Status' is not snake_case ([a-z][a-z0-9_]*, e.g. gas_ppm)");
    /* Numbers and booleans are as valid in strict mode as elsewhere. */
    assert_int_equal(expect_valid(fx, "m,device=a v=1,w=t,seq=3u")->n_values, 2);
}

static void test_duplicate_fields(void **state)
{
    struct parse_fixture *fx = *state;
    expect_invalid(fx, "m,device=a a=1,b=2,a=3", "line 1: values", "field 'a' appears twice");
    expect_invalid(fx, "m,device=a a=1,a=1", "line 1: values", "field 'a' appears twice");
    expect_invalid(fx, "m,device=a seq=1i,v=1,seq=2i", "line 1: seq", "appears twice");
    /* Even fields that would be skipped may not appear twice. */
    expect_invalid(fx, "m,device=a s=\"x\",v=1,s=\"y\"", "line 1: values",
                   "field 's' appears twice");
    /* Names differing in case are different names (and the upper-case one is invalid). */
    expect_invalid(fx, "m,device=a v=1,V=2", "line 1: values",
                   "metric name 'V' is not snake_case ([a-z][a-z0-9_]*, e.g. gas_ppm)");
}

static void test_too_many_metrics(void **state)
{
    struct parse_fixture *fx = *state;
    fx->lim.max_metrics = 3;
    const char *limit = "holds more than 3 metrics (limit ingest.max_metrics)";
    assert_int_equal(expect_valid(fx, "m,device=a a=1,b=2,c=3")->n_values, 3);
    const struct reading *r = expect_valid(fx, "m,device=a a=1,b=2,seq=9i,c=3");
    assert_int_equal(r->n_values, 3);
    assert_int_equal(r->seq, 9);
    expect_invalid(fx, "m,device=a a=1,b=2,c=3,d=4", "line 1: values", limit);
    expect_invalid(fx, "m,device=a a=1,b=2,c=3,d=4,e=5", "line 1: values", limit);
    /* The count is checked before the names are compared. */
    expect_invalid(fx, "m,device=a a=1,a=1,a=1,a=1,a=1", "line 1: values", limit);
    /* Skipped string fields do not count as metrics, but do count as fields. */
    assert_int_equal(expect_valid(fx, "m,device=a a=1,b=2,s=\"x\",c=3")->n_values, 3);
    expect_invalid(fx, "m,device=a a=1,b=2,s=\"x\",t=\"y\",c=3", "line 1: values", limit);
}

static void test_malformed_lines(void **state)
{
    struct parse_fixture *fx = *state;
    expect_invalid(fx, "m,device=a", "line 1: ", NO_FIELDS_REASON);
    expect_invalid(fx, "m,device=a   ", "line 1: ", NO_FIELDS_REASON);
    expect_invalid(fx, "m", "line 1: ", NO_FIELDS_REASON);
    expect_invalid(fx, "m,device=a v",
                   "line 1: ", "field 'v' has no value (write <field>=<value>)");
    expect_invalid(fx, "m,device=a v 1",
                   "line 1: ", "field 'v' has no value (write <field>=<value>)");
    expect_invalid(fx, "m,device=a =1", "line 1: ", "a field has an empty name");
    expect_invalid(fx, "m,device=a v=1,", "line 1: ", "a field has an empty name");
    expect_invalid(fx, "m,device=a v=1,,w=2", "line 1: ", "a field has an empty name");
    expect_invalid(fx, ",device=a v=1", "line 1: ",
                   "the measurement name is missing (a line starts "
                   "<measurement>[,<tag>=<value>...] and a blank)");
    expect_invalid(fx, "m,device=a s=\"abc",
                   "line 1: ", "the string value of field 's' has no closing quote");
    expect_invalid(fx, "m,device=a s=\"abc\\\"",
                   "line 1: ", "the string value of field 's' has no closing quote");
    expect_invalid(fx, "m,device=a s=\"abc\\",
                   "line 1: ", "the string value of field 's' has no closing quote");
    expect_invalid(fx, "m,device=a s=\"a\"b",
                   "line 1: ", "field 's' has text after the closing quote of its value");
    expect_invalid(fx, "m,device=a v=1 123 456",
                   "line 1: ", "unexpected text after the timestamp: '456'");
    expect_invalid(fx, "m,device=a v=1 w=2", "line 1: ts",
                   "must be a whole number of nanoseconds since the Unix epoch, got 'w=2'");
    /* Leading blanks and runs of blanks between sections are fine. */
    const struct reading *r = expect_valid(fx, " \t m,device=a  \t v=1 \t 3000000 \t");
    assert_int_equal(r->ts_ms, 3);
}

static void test_bad_numbers(void **state)
{
    struct parse_fixture *fx = *state;
    const char *overflow = "must be a finite number (got an overflow)";
    const struct {
        const char *text;
        const char *reason; /* NULL: "must be a finite number, got '<text>'" */
    } cases[] = {
        {"NaN", NULL},
        {"nan", NULL},
        {"-nan", NULL},
        {"inf", NULL},
        {"-Inf", NULL},
        {"+Inf", NULL},
        {"Infinity", NULL},
        {"12x", NULL},
        {"0x10", NULL},
        {"1e", NULL},
        {"1e+", NULL},
        {"e5", NULL},
        {"--1", NULL},
        {"+1", NULL},
        {"1.2.3", NULL},
        {".", NULL},
        {"-", NULL},
        {"1_000", NULL},
        {"-1u", NULL},
        {"1.5i", NULL},
        {"1e3i", NULL},
        {"i", NULL},
        {"u", NULL},
        {"-i", NULL},
        {"12iu", NULL},
        {"1\\ 2", NULL},
        {"", "must be a finite number, got nothing"},
        {"1e999", overflow},
        {"-1e999", overflow},
        {"1e309", overflow},
        {"99999999999999999999i", overflow},
        {"9223372036854775808i", overflow},
        {"-9223372036854775809i", overflow},
        {"18446744073709551616u", overflow},
    };
    char body[128], reason[160], ex[48];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(body, sizeof body, "m,device=a v=%s", cases[k].text);
        if (cases[k].reason != NULL) {
            snprintf(reason, sizeof reason, "%s", cases[k].reason);
        } else {
            snprintf(ex, sizeof ex, "%s", cases[k].text);
            for (char *p = ex; *p != '\0'; p++)
                *p = *p == '\\' ? '?' : *p;
            snprintf(reason, sizeof reason, "must be a finite number, got '%s'", ex);
        }
        expect_invalid(fx, body, "line 1: values.v", reason);
    }
    /* 127 characters is long enough for any number; 128 is rejected without strtod(). */
    char *ok = test_repeat("m,device=a v=1", "0", 126, "");
    assert_parsed_value(expect_valid(fx, ok), 0, "v", 1e126);
    free(ok);
    char *too_long = test_repeat("m,device=a v=1", "0", 127, "");
    expect_invalid(fx, too_long, "line 1: values.v", "must be a number of at most 127 characters");
    free(too_long);
    /* The first bad value of a line is the one reported. */
    expect_invalid(fx, "m,device=a a=1,b=x,c=NaN", "line 1: values.b",
                   "must be a finite number, got 'x'");
}

static void test_bad_timestamps(void **state)
{
    struct parse_fixture *fx = *state;
    expect_invalid(fx, "m,device=a v=1 -1", "line 1: ts",
                   "must not be before the Unix epoch, got '-1'");
    expect_invalid(fx, "m,device=a v=1 -1763676000123456789", "line 1: ts",
                   "must not be before the Unix epoch, got '-1763676000123456789'");
    expect_invalid(fx, "m,device=a v=1 abc", "line 1: ts",
                   "must be a whole number of nanoseconds since the Unix epoch, got 'abc'");
    expect_invalid(fx, "m,device=a v=1 12i", "line 1: ts",
                   "must be a whole number of nanoseconds since the Unix epoch, got '12i'");
    expect_invalid(fx, "m,device=a v=1 +12", "line 1: ts",
                   "must be a whole number of nanoseconds since the Unix epoch, got '+12'");
    expect_invalid(fx, "m,device=a v=1 -", "line 1: ts",
                   "must be a whole number of nanoseconds since the Unix epoch, got '-'");
    expect_invalid(fx, "m,device=a v=1 99999999999999999999", "line 1: ts",
                   TS_RANGE_REASON "'99999999999999999999'");
    assert_int_equal(parse_p(fx, "m,device=a v=1 1.5", LINE_PRECISION_S), CANARY_OK);
    assert_reading_rejected(&fx->b, 0, "line 1: ts",
                            "must be a whole number of seconds since the Unix epoch, got '1.5'");
    assert_int_equal(parse_p(fx, "m,device=a v=1 1e3", LINE_PRECISION_MS), CANARY_OK);
    assert_reading_rejected(
        &fx->b, 0, "line 1: ts",
        "must be a whole number of milliseconds since the Unix epoch, got '1e3'");
    assert_int_equal(parse_p(fx, "m,device=a v=1 x", LINE_PRECISION_US), CANARY_OK);
    assert_reading_rejected(&fx->b, 0, "line 1: ts",
                            "must be a whole number of microseconds since the Unix epoch, got 'x'");
}

static void test_max_batch(void **state)
{
    struct parse_fixture *fx = *state;
    fx->lim.max_batch = 3;
    const char *over = "the body holds more than 3 readings (limit ingest.max_batch)";
    const char *four = "m,device=a v=1\nm,device=b v=1\nm,device=c v=1\nm,device=d v=1\n";
    expect_fatal_n(fx, four, strlen(four), CANARY_ELIMIT, 413, "ingest.max_batch", over);
    assert_int_equal(fx->b.n, 0);
    /* Invalid lines are readings too; blank and comment lines are not. */
    const char *bad = "x\ny\nz\nw";
    expect_fatal_n(fx, bad, strlen(bad), CANARY_ELIMIT, 413, "ingest.max_batch", over);
    assert_int_equal(parse(fx, "# a\nm,device=a v=1\n\n# b\nm,device=b v=1\n \t\nm,device=c v=1\n"
                               "# c\n\n"),
                     CANARY_OK);
    assert_int_equal(fx->b.n, 3);

    /* A huge batch is refused without being parsed. */
    fx->lim.max_batch = 10000;
    char *many = test_repeat("", "m,device=a v=1\n", 200000, "");
    expect_fatal_n(fx, many, strlen(many), CANARY_ELIMIT, 413, "ingest.max_batch",
                   "the body holds more than 10000 readings (limit ingest.max_batch)");
    free(many);
    char *exact = test_repeat("", "m,device=a v=1\n", 10000, "");
    assert_int_equal(parse(fx, exact), CANARY_OK);
    assert_int_equal(fx->b.n, 10000);
    assert_reading_pending(&fx->b, 9999);
    free(exact);
}

static void test_empty_body(void **state)
{
    struct parse_fixture *fx = *state;
    expect_fatal_n(fx, "", 0, CANARY_EINVAL, 400, "",
                   "the body is empty; send one reading per line");
    const char *only_comments[] = {"\n", "   ", "# only\n\n  \r\n", "#", "\r\n\r\n\t"};
    for (size_t k = 0; k < sizeof only_comments / sizeof only_comments[0]; k++)
        expect_fatal_n(fx, only_comments[k], strlen(only_comments[k]), CANARY_EINVAL, 400, "",
                       "the body holds no readings, only blank or comment lines");
}

static void test_nul_byte(void **state)
{
    struct parse_fixture *fx = *state;
    expect_fatal_n(fx, "m,device=a v=1\n\0", 16, CANARY_EINVAL, 400, "",
                   "the body contains a NUL byte");
    expect_fatal_n(fx, "m,device=a\0 v=1", 15, CANARY_EINVAL, 400, "",
                   "the body contains a NUL byte");
}

static void test_utf8(void **state)
{
    struct parse_fixture *fx = *state;
    const char *bad = "m,device=a v=1\n\xff";
    expect_fatal_n(fx, bad, strlen(bad), CANARY_EINVAL, 400, "",
                   "the body is not valid UTF-8 (at byte 15)");
    const char *overlong = "m,device=a,x=\xc0\xaf v=1";
    expect_fatal_n(fx, overlong, strlen(overlong), CANARY_EINVAL, 400, "",
                   "the body is not valid UTF-8 (at byte 13)");
    const char *truncated = "m,device=a v=1 \xe2\x82";
    expect_fatal_n(fx, truncated, strlen(truncated), CANARY_EINVAL, 400, "",
                   "the body is not valid UTF-8 (at byte 15)");
    /* UTF-8 in the ignored parts of a line is fine. */
    const struct reading *r = expect_valid(fx, "temp\xc3\xa9rature,device=a,lieu=caf\xc3\xa9 v=1");
    assert_string_equal(r->device, "a");
}

static void test_long_lines(void **state)
{
    struct parse_fixture *fx = *state;
    /* "m,device=a,pad=" + pad + " v=1" is 19 + pad bytes. */
    char *at_limit = test_repeat("m,device=a,pad=", "x", 65536 - 19, " v=1");
    assert_int_equal(strlen(at_limit), 65536);
    assert_string_equal(expect_valid(fx, at_limit)->device, "a");
    free(at_limit);

    char *over =
        test_repeat("m,device=a v=1\nm,device=a,pad=", "x", 65537 - 19, " v=1\nm,device=b v=2");
    assert_int_equal(parse(fx, over), CANARY_OK);
    assert_int_equal(fx->b.n, 3);
    assert_reading_pending(&fx->b, 0);
    assert_reading_rejected(&fx->b, 1, "line 2: ", "the line is longer than 65536 bytes");
    assert_reading_pending(&fx->b, 2);
    assert_string_equal(fx->b.readings[2].device, "b");
    free(over);
}

static void test_hostile_lines(void **state)
{
    struct parse_fixture *fx = *state;
    /* 16000 fields, all alike: rejected by count before any two are compared. */
    char *fields = test_repeat("m,device=a ", "a=1,", 16000, "a=1");
    expect_invalid(fx, fields, "line 1: values",
                   "holds more than 8 metrics (limit ingest.max_metrics)");
    free(fields);
    /* 16000 ignored tags are only read past. */
    char *tags = test_repeat("m", ",t=v", 16000, ",device=a v=1");
    assert_string_equal(expect_valid(fx, tags)->device, "a");
    free(tags);
    /* Backslashes escape each other in pairs: an even run leaves the blank after it a
     * separator, an odd one escapes it, and the measurement runs to the end of the line. */
    char *backslashes = test_repeat("", "\\", 60000, " v=1");
    expect_invalid(fx, backslashes, "line 1: device", "is required (add the tag device=<id>)");
    free(backslashes);
    backslashes = test_repeat("", "\\", 60001, " v=1");
    expect_invalid(fx, backslashes, "line 1: ", NO_FIELDS_REASON);
    free(backslashes);
    char *odd_backslashes = test_repeat("", "\\", 60001, "");
    expect_invalid(fx, odd_backslashes, "line 1: ", NO_FIELDS_REASON);
    free(odd_backslashes);
    /* An unterminated string, and quotes after quotes. */
    char *open = test_repeat("m,device=a v=\"", "a", 60000, "");
    expect_invalid(fx, open, "line 1: ", "the string value of field 'v' has no closing quote");
    free(open);
    char *quotes = test_repeat("m,device=a v=", "\"", 60000, "");
    expect_invalid(fx, quotes,
                   "line 1: ", "field 'v' has text after the closing quote of its value");
    free(quotes);
    /* A very long number, timestamp and metric name. */
    char *digits = test_repeat("m,device=a v=", "9", 60000, "");
    expect_invalid(fx, digits, "line 1: values.v", "must be a number of at most 127 characters");
    free(digits);
    char *ts = test_repeat("m,device=a v=1 ", "9", 60000, "");
    char *ts_reason = test_repeat(TS_RANGE_REASON "'", "9", 40, "...'");
    expect_invalid(fx, ts, "line 1: ts", ts_reason);
    free(ts);
    free(ts_reason);
    char *name = test_repeat("m,device=a ", "n", 60000, "=1");
    char *name_reason = test_repeat("metric name '", "n", 40,
                                    "...' is longer than 64 bytes (limit ingest.max_metric_len)");
    expect_invalid(fx, name, "line 1: values", name_reason);
    free(name);
    free(name_reason);
    /* A million blank lines around one reading. */
    char *blank = test_repeat("", "\n", 1000000, "m,device=a v=1\n");
    assert_int_equal(parse(fx, blank), CANARY_OK);
    assert_int_equal(fx->b.n, 1);
    assert_reading_pending(&fx->b, 0);
    free(blank);
}

/* --- fuzzing ------------------------------------------------------------------------------ */

static const char *const fuzz_seeds[] = {
    "air,device=kitchen-1,room=kitchen gas_ppm=412.5,temperature_c=24.1 1763676000123456789",
    "air,device=a seq=1042i,flame=f,motion=true,light_lux=12u 1763676000",
    "my\\ air\\,x,device=b,loc=a\\ b\\,c note=\"say \\\"hi\\\"\",noise_db=-3e2",
    "# comment\n\nm,device=c v=1\r\nm,device=d w=2i 5",
    "m,device=e a=1,b=2,c=3,d=4,e=5 -1",
    "m,device=f v=NaN,x=\"unterminated",
};

/* Bytes that matter to the grammar, and a few that the body checks refuse. */
static const char fuzz_special[] = {',', '=', ' ', '\t', '\\', '"', '\n', '\r', '#',    '\0',
                                    '-', '.', 'e', 'i',  'u',  't', '0',  '9',  '\x80', '\xff'};

static size_t fuzz_mutate(struct test_rng *r, char *buf, size_t len, size_t cap)
{
    size_t steps = 1 + test_rng_below(r, 8);
    for (size_t s = 0; s < steps; s++) {
        char c = test_rng_below(r, 4) == 0 ? (char)test_rng_below(r, 256)
                                           : fuzz_special[test_rng_below(r, sizeof fuzz_special)];
        len = test_fuzz_edit(r, buf, len, cap, c, 1);
    }
    return len;
}

/* Checks what the parser promises about any outcome, on top of what every body parser does.
 * Returns the number of valid readings. */
static size_t check_outcome(const struct parse_fixture *fx, int rc)
{
    size_t valid = assert_parse_outcome(fx, rc, RECV_MS);
    if (rc != CANARY_OK)
        return 0;
    assert_int_equal(fx->b.is_array, fx->b.n > 1);
    for (size_t i = 0; i < fx->b.n; i++) {
        const struct reading *r = &fx->b.readings[i];
        if (fx->b.status[i] == READING_INVALID)
            assert_int_equal(strncmp(fx->b.errors[i].field, "line ", 5), 0);
        else if (r->has_seq)
            assert_true(r->seq < 9007199254740992ULL);
        else
            assert_int_equal(r->seq, 0);
    }
    return valid;
}

static void test_fuzz(void **state)
{
    struct parse_fixture *fx = *state;
    fx->lim = (struct ingest_limits){.max_batch = 8,
                                     .max_metrics = 4,
                                     .max_device_len = 16,
                                     .max_metric_len = 16,
                                     .strict_fields = false};
    enum { CAP = 1024, ITERATIONS = 6000 };
    static char buf[CAP];
    struct test_rng r = {.s = 0x5eed1e55c0ffee01ULL};
    size_t valid = 0, invalid = 0, fatal = 0;
    for (int it = 0; it < ITERATIONS; it++) {
        size_t len = 0;
        size_t mode = test_rng_below(&r, 3);
        if (mode == 0) { /* random bytes, mostly grammar bytes */
            len = test_rng_below(&r, 200);
            for (size_t k = 0; k < len; k++)
                buf[k] = test_rng_below(&r, 3) == 0
                             ? (char)test_rng_below(&r, 256)
                             : fuzz_special[test_rng_below(&r, sizeof fuzz_special)];
        } else { /* one or several seeds, mutated */
            size_t parts = mode == 1 ? 1 : 1 + test_rng_below(&r, 4);
            for (size_t p = 0; p < parts; p++) {
                const char *seed =
                    fuzz_seeds[test_rng_below(&r, sizeof fuzz_seeds / sizeof *fuzz_seeds)];
                size_t n = strlen(seed);
                if (len + n + 1 > CAP / 2)
                    break;
                memcpy(buf + len, seed, n);
                len += n;
                buf[len++] = '\n';
            }
            len = fuzz_mutate(&r, buf, len, CAP);
        }
        fx->lim.strict_fields = test_rng_below(&r, 2) == 0;
        int rc = parse_n(fx, buf, len, (enum line_precision)test_rng_below(&r, 4));
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

#define T(f) cmocka_unit_test_setup_teardown(f, parse_fixture_setup, parse_fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precision_parse),
        T(test_single_line),
        T(test_no_timestamp),
        T(test_several_lines),
        T(test_one_reading_among_comments_is_not_an_array),
        T(test_precisions),
        T(test_unknown_precision_is_fatal),
        T(test_field_types),
        T(test_booleans),
        T(test_seq),
        T(test_escaping),
        T(test_comments_and_blank_lines),
        T(test_crlf),
        T(test_missing_device),
        T(test_invalid_device),
        T(test_string_fields),
        T(test_duplicate_fields),
        T(test_too_many_metrics),
        T(test_malformed_lines),
        T(test_bad_numbers),
        T(test_bad_timestamps),
        T(test_max_batch),
        T(test_empty_body),
        T(test_nul_byte),
        T(test_utf8),
        T(test_long_lines),
        T(test_hostile_lines),
        T(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
