/* test_dataset.c — unit tests of the CSV loader (src/ml/dataset.c).
 *
 * Files are written to a fresh temporary directory (removed at the end) and loaded with
 * dataset_load_csv; in-memory texts go through dataset_parse_csv from an exact-size heap
 * copy, so the sanitizer build catches any read past the end. Error messages are compared
 * exactly: they are what a user sees. Numbers are checked bit for bit against strtod. */
#include "core/error.h"
#include "ml/dataset.h"
#include "unit_support.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static char tmpdir[256];

static int group_setup(void **state)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/canary_dataset_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to <tmpdir>/name and returns the path (static buffer). */
static const char *write_file(const char *name, const char *text, size_t len)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Parses text from an exact-size heap copy (no NUL after it). */
static int parse(struct dataset *d, const char *text, const struct dataset_options *o, char *err,
                 size_t errlen)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, text, n);
    int rc = dataset_parse_csv(d, "data.csv", copy, n, o, err, errlen);
    free(copy);
    return rc;
}

/* Printable ASCII only: a message can go to a terminal or a log as it is. */
static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* The load fails with rc and exactly this message, and leaves d empty. */
static void expect_error(const char *text, const struct dataset_options *o, int rc, const char *msg)
{
    struct dataset d;
    char err[512] = "";
    int got = parse(&d, text, o, err, sizeof err);
    if (got != rc || strcmp(err, msg) != 0) {
        fprintf(stderr, "input: %s\ngot %d \"%s\"\nwant %d \"%s\"\n", text, got, err, rc, msg);
        fail();
    }
    assert_true(printable(err));
    assert_int_equal(d.n_rows, 0);
    assert_null(d.x);
    dataset_free(&d);
}

static void assert_same_double(double got, double want)
{
    if (memcmp(&got, &want, sizeof got) != 0 && !(isnan(got) && isnan(want))) {
        fprintf(stderr, "got %.17g want %.17g\n", got, want);
        fail();
    }
}

static void test_basic_file(void **state)
{
    const char *text = "f0,f1,label\n1.5,-2,0\n3e2,0.25,1\n,7,0\n";
    const char *path = write_file("basic.csv", text, strlen(text));
    struct dataset d;
    char err[256];
    struct dataset_options o = {.label_column = "label"};
    assert_int_equal(dataset_load_csv(&d, path, &o, err, sizeof err), 0);
    assert_int_equal(d.n_rows, 3);
    assert_int_equal(d.n_cols, 2);
    assert_string_equal(d.col_names[0], "f0");
    assert_string_equal(d.col_names[1], "f1");
    const double want[] = {1.5, -2, 300, 0.25, NAN, 7};
    for (int i = 0; i < 6; i++)
        assert_same_double(d.x[i], want[i]);
    assert_non_null(d.labels);
    assert_same_double(d.labels[0], 0);
    assert_same_double(d.labels[1], 1);
    assert_same_double(d.labels[2], 0);
    assert_null(d.ts_ms);
    assert_null(d.devices);
    assert_null(d.device_id);
    assert_int_equal(d.n_devices, 0);
    assert_int_equal(dataset_col_index(&d, "f1"), 1);
    assert_int_equal(dataset_col_index(&d, "label"), -1);
    assert_same_double(dataset_row(&d, 1)[0], 300);
    dataset_free(&d);
    dataset_free(&d); /* idempotent */

    /* No options: every column is a value column, the label too. */
    assert_int_equal(dataset_load_csv(&d, path, NULL, err, sizeof err), 0);
    assert_int_equal(d.n_cols, 3);
    assert_string_equal(d.col_names[2], "label");
    assert_null(d.labels);
    dataset_free(&d);

    /* A file that is not there. */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nope.csv", tmpdir);
    assert_int_equal(dataset_load_csv(&d, missing, NULL, err, sizeof err), CANARY_EIO);
    char want_msg[400];
    snprintf(want_msg, sizeof want_msg, "%s: cannot open: No such file or directory", missing);
    assert_string_equal(err, want_msg);
}

static void test_line_ends_and_blanks(void **state)
{
    static const char *const texts[] = {
        "a,b\n1,2\n3,4\n",
        "a,b\r\n1,2\r\n3,4\r\n",
        "a,b\n1,2\n3,4",                   /* no newline at the end */
        "a,b\r\n1,2\r\n3,4",               /* the same with CRLF */
        "\n\na,b\n\n1,2\r\n\r\n3,4\n\n\n", /* blank lines anywhere */
        "\xEF\xBB\xBF"
        "a,b\n1,2\n3,4\n",                 /* a byte order mark */
        " a , b \n 1 , 2 \n3,4\n",         /* spaces around names and numbers */
        "\"a\",\"b\"\n\"1\",\"2\"\n3,4\n", /* quoted names and numbers */
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        struct dataset d;
        char err[256] = "";
        int rc = parse(&d, texts[t], NULL, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "text %zu: %s\n", t, err);
        assert_int_equal(rc, 0);
        assert_int_equal(d.n_rows, 2);
        assert_int_equal(d.n_cols, 2);
        assert_string_equal(d.col_names[0], "a");
        assert_string_equal(d.col_names[1], "b");
        for (int i = 0; i < 4; i++)
            assert_same_double(d.x[i], i + 1);
        dataset_free(&d);
    }
}

static void test_missing_values(void **state)
{
    struct dataset d;
    char err[256];
    const char *text = "a,b,c\n,nan,NA\nN/A,null,NaN\n  ,\"\",1\n";
    assert_int_equal(parse(&d, text, NULL, err, sizeof err), 0);
    assert_int_equal(d.n_rows, 3);
    for (int i = 0; i < 8; i++)
        assert_true(isnan(d.x[i]));
    assert_same_double(d.x[8], 1);
    dataset_free(&d);

    /* A single column: an empty field on a line of its own is a blank line, skipped. */
    assert_int_equal(parse(&d, "a\n1\n\n2\n", NULL, err, sizeof err), 0);
    assert_int_equal(d.n_rows, 2);
    dataset_free(&d);
}

static void test_subset_and_max_rows(void **state)
{
    const char *text = "ts,x,y,z,label\n1,10,20,30,0\n2,11,21,31,1\n3,12,22,32,0\n";
    const char *const cols[] = {"z", "x"};
    struct dataset_options o = {.value_columns = cols, .n_value_columns = 2};
    struct dataset d;
    char err[256];
    assert_int_equal(parse(&d, text, &o, err, sizeof err), 0);
    assert_int_equal(d.n_cols, 2);
    assert_string_equal(d.col_names[0], "z");
    assert_string_equal(d.col_names[1], "x");
    const double want[] = {30, 10, 31, 11, 32, 12};
    for (int i = 0; i < 6; i++)
        assert_same_double(d.x[i], want[i]);
    dataset_free(&d);

    /* A column may be a value and the label at once when asked. */
    const char *const with_label[] = {"label"};
    o = (struct dataset_options){
        .label_column = "label", .value_columns = with_label, .n_value_columns = 1, .max_rows = 2};
    assert_int_equal(parse(&d, text, &o, err, sizeof err), 0);
    assert_int_equal(d.n_rows, 2);
    assert_same_double(d.x[1], 1);
    assert_same_double(d.labels[1], 1);
    dataset_free(&d);

    /* max_rows stops before a bad row; more than the file has is all of it. */
    const char *bad = "a\n1\n2\nxyz\n";
    o = (struct dataset_options){.max_rows = 2};
    assert_int_equal(parse(&d, bad, &o, err, sizeof err), 0);
    assert_int_equal(d.n_rows, 2);
    dataset_free(&d);
    o.max_rows = 100;
    assert_int_equal(parse(&d, text, &o, err, sizeof err), 0);
    assert_int_equal(d.n_rows, 3);
    dataset_free(&d);

    /* Every other column: the named ones are set apart. */
    o = (struct dataset_options){.label_column = "label", .timestamp_column = "ts"};
    assert_int_equal(parse(&d, text, &o, err, sizeof err), 0);
    assert_int_equal(d.n_cols, 3);
    assert_string_equal(d.col_names[0], "x");
    assert_string_equal(d.col_names[2], "z");
    assert_int_equal(d.ts_ms[2], 3000);
    dataset_free(&d);
}

static void test_timestamps(void **state)
{
    static const struct {
        const char *field;
        int64_t ms;
    } cases[] = {
        {"1392388200", 1392388200000LL},      /* seconds */
        {"1392388200.5", 1392388200500LL},    /* fractional seconds */
        {"1392388200.1234", 1392388200123LL}, /* rounded to the ms */
        {"1392388200.9996", 1392388200999LL + 1},
        {"1392388200123", 1392388200123LL}, /* milliseconds */
        {"99999999999", 99999999999000LL},  /* below 1e11: seconds (year 5138) */
        {"100000000000", 100000000000LL},   /* from 1e11: milliseconds */
        {"0", 0},
        {"-86400", -86400000LL},
        {"1.3923882e9", 1392388200000LL},         /* what strtod reads */
        {"2014-02-14 14:30:00", 1392388200000LL}, /* NAB */
        {"2014-02-14T14:30:00Z", 1392388200000LL},
        {"2014-02-14T14:30:00.25Z", 1392388200250LL},
        {"2014-02-14t14:30:00z", 1392388200000LL},
        {"2014-02-14T15:30:00+01:00", 1392388200000LL},
        {"2014-02-14T15:30:00+0100", 1392388200000LL},
        {"2014-02-14T09:30:00-05", 1392388200000LL},
        {"2014-02-14 14:30", 1392388200000LL},
        {"2014-02-14", 1392336000000LL},
        {"2016-02-29 00:00:00", 1456704000000LL}, /* leap day */
        {"1969-12-31 23:59:59", -1000},
        {"\"2014-02-14 14:30:00\"", 1392388200000LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "timestamp,value\n%s,1\n", cases[i].field);
        struct dataset_options o = {.timestamp_column = "timestamp"};
        struct dataset d;
        char err[256] = "";
        int rc = parse(&d, text, &o, err, sizeof err);
        if (rc != 0 || d.ts_ms[0] != cases[i].ms) {
            fprintf(stderr, "%s: rc %d %s got %lld want %lld\n", cases[i].field, rc, err,
                    rc ? 0LL : (long long)d.ts_ms[0], (long long)cases[i].ms);
            fail();
        }
        assert_int_equal(d.n_cols, 1);
        dataset_free(&d);
    }
    static const char *const bad[] = {"",
                                      "abc",
                                      "2014-13-01 00:00:00",
                                      "2015-02-29 00:00:00",
                                      "2014-02-14 24:00:00",
                                      "2014-02-14 14:61:00",
                                      "2014-02-14 14:30:00 UTC",
                                      "2014-02-14T14:30:00+25:00",
                                      "2014/02/14 14:30:00",
                                      "1392388200x",
                                      "1e300"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128], msg[256];
        snprintf(text, sizeof text, "timestamp,value\n%s,1\n", bad[i]);
        snprintf(msg, sizeof msg,
                 "data.csv:2: column 'timestamp': not a timestamp (Unix seconds or ms, or ISO "
                 "8601 \"2014-02-14 14:30:00\"): \"%s\"",
                 bad[i]);
        struct dataset_options o = {.timestamp_column = "timestamp"};
        expect_error(text, &o, CANARY_EINVAL, msg);
    }
}

static void test_devices_quoted(void **state)
{
    const char *text = "device,value\n"
                       "kitchen-1,1\n"
                       "\"hall, east\",2\n"
                       "kitchen-1,3\n"
                       "\"say \"\"hi\"\"\",4\n"
                       "\"two\nlines\",5\n"
                       "  hall, east  ,6\n"; /* 3 fields: an error below */
    struct dataset_options o = {.device_column = "device"};
    struct dataset d;
    char err[256];
    o.max_rows = 5;
    assert_int_equal(parse(&d, text, &o, err, sizeof err), 0);
    assert_int_equal(d.n_rows, 5);
    assert_int_equal(d.n_cols, 1);
    assert_int_equal(d.n_devices, 4);
    assert_string_equal(d.device_names[0], "kitchen-1");
    assert_string_equal(d.device_names[1], "hall, east");
    assert_string_equal(d.device_names[2], "say \"hi\"");
    assert_string_equal(d.device_names[3], "two\nlines");
    assert_ptr_equal(d.devices[0], d.devices[2]); /* interned */
    assert_ptr_equal(d.devices[1], d.device_names[1]);
    const uint32_t ids[] = {0, 1, 0, 2, 3};
    for (int r = 0; r < 5; r++) {
        assert_int_equal(d.device_id[r], ids[r]);
        assert_same_double(d.x[r], r + 1);
    }
    dataset_free(&d);

    /* The row after the two-line field is on line 8; its unquoted name would be trimmed but it
     * has a comma: 3 fields, reported before the bad number the shift makes. */
    o.max_rows = 0;
    expect_error(text, &o, CANARY_EINVAL, "data.csv:8: 3 fields, the header has 2");

    /* Many devices (the intern table grows). */
    size_t cap = 200000, w = 0;
    char *big = malloc(cap);
    assert_non_null(big);
    w += (size_t)snprintf(big + w, cap - w, "device,value\n");
    for (int i = 0; i < 5000; i++)
        w += (size_t)snprintf(big + w, cap - w, "dev-%d,%d\n", i % 1500, i);
    assert_int_equal(parse(&d, big, &o, err, sizeof err), 0);
    assert_int_equal(d.n_rows, 5000);
    assert_int_equal(d.n_devices, 1500);
    for (int i = 0; i < 5000; i++) {
        char name[32];
        snprintf(name, sizeof name, "dev-%d", i % 1500);
        assert_string_equal(d.devices[i], name);
        assert_int_equal(d.device_id[i], i % 1500);
    }
    dataset_free(&d);
    free(big);
}

static void test_errors(void **state)
{
    struct dataset_options label = {.label_column = "label"};
    expect_error("f1,f2,label\n1,2,0\n1,2,0\n1,abc,1\n", &label, CANARY_EINVAL,
                 "data.csv:4: column 'f2': not a number: \"abc\"");
    expect_error("f1,f2\n1,2\n1,2,3\n", NULL, CANARY_EINVAL,
                 "data.csv:3: 3 fields, the header has 2");
    expect_error("f1,f2\n1,2\n1\n", NULL, CANARY_EINVAL, "data.csv:3: 1 field, the header has 2");
    expect_error("f1,f2\n1,2\n", &label, CANARY_ENOTFOUND,
                 "data.csv: no column 'label' (the header has: f1, f2)");
    const char *const cols[] = {"f1", "f9"};
    struct dataset_options subset = {.value_columns = cols, .n_value_columns = 2};
    expect_error("f1,f2\n1,2\n", &subset, CANARY_ENOTFOUND,
                 "data.csv: no column 'f9' (the header has: f1, f2)");
    const char *const twice[] = {"f1", "f1"};
    subset.value_columns = twice;
    expect_error("f1,f2\n1,2\n", &subset, CANARY_EINVAL,
                 "data.csv: value column 'f1' is named twice");
    expect_error("", NULL, CANARY_EINVAL, "data.csv: empty file (no header)");
    expect_error("\n\r\n\n", NULL, CANARY_EINVAL, "data.csv: empty file (no header)");
    expect_error("f1,f2\n", NULL, CANARY_EINVAL, "data.csv: no data rows after the header");
    expect_error("f1,f2", NULL, CANARY_EINVAL, "data.csv: no data rows after the header");
    expect_error("f1,f2\n\n\n", NULL, CANARY_EINVAL, "data.csv: no data rows after the header");
    expect_error("f1,f1\n1,2\n", NULL, CANARY_EINVAL,
                 "data.csv: column 'f1' appears twice in the header (columns 1 and 2)");
    struct dataset_options by_name = {.label_column = "f1"};
    expect_error("f1,f1\n1,2\n", &by_name, CANARY_EINVAL,
                 "data.csv: column 'f1' appears twice in the header (columns 1 and 2)");
    expect_error("f1\ninf\n", NULL, CANARY_EINVAL,
                 "data.csv:2: column 'f1': not a number: \"inf\"");
    expect_error("f1\n1e999\n", NULL, CANARY_EINVAL,
                 "data.csv:2: column 'f1': not a number: \"1e999\"");
    expect_error("f1\n0x\n", NULL, CANARY_EINVAL, "data.csv:2: column 'f1': not a number: \"0x\"");
    expect_error("f1\n1 2\n", NULL, CANARY_EINVAL,
                 "data.csv:2: column 'f1': not a number: \"1 2\"");
    expect_error("f1\n\"1\nx\"\n", NULL, CANARY_EINVAL,
                 "data.csv:2: column 'f1': not a number: \"1?x\"");
    expect_error("f1,f2\n1,\"abc\n", NULL, CANARY_EINVAL,
                 "data.csv:2: a quoted field is not closed");
    expect_error("f1,f2\n1,\"2\"x\n", NULL, CANARY_EINVAL,
                 "data.csv:2: text after the closing quote of a field");
    expect_error("f1,label\n1,\n", &label, CANARY_EINVAL,
                 "data.csv:2: column 'label': the label is missing");
    expect_error("f1,label\n1,yes\n", &label, CANARY_EINVAL,
                 "data.csv:2: column 'label': not a label (a number, true or false): \"yes\"");
    expect_error("f1,label\n1,nan\n", &label, CANARY_EINVAL,
                 "data.csv:2: column 'label': not a label (a number, true or false): \"nan\"");
    /* A long bad field is cut in the message. */
    expect_error("f1\n0123456789012345678901234567890123456789abcdef\n", NULL, CANARY_EINVAL,
                 "data.csv:2: column 'f1': not a number: "
                 "\"0123456789012345678901234567890123456789...\"");
    struct dataset_options no_names = {.n_value_columns = 1};
    expect_error("f1\n1\n", &no_names, CANARY_EINVAL, "data.csv: 1 value columns but no names");

    /* errlen 0 and a NULL err are fine. */
    struct dataset d;
    assert_int_equal(parse(&d, "f1\nx\n", NULL, NULL, 0), CANARY_EINVAL);
    dataset_free(&d);

    /* Labels: true/false, and classes. */
    assert_int_equal(parse(&d, "f1,label\n1,true\n2,FALSE\n3,2\n", &label, NULL, 0), 0);
    assert_same_double(d.labels[0], 1);
    assert_same_double(d.labels[1], 0);
    assert_same_double(d.labels[2], 2);
    dataset_free(&d);
}

/* Class names as labels (the gas data: "NoGas", "Smoke", ...), numbered in sorted order. */
static void test_label_classes(void **state)
{
    const char *text = "Serial Number,MQ2,Gas\n"
                       "0,555,NoGas\n"
                       "1,556,Smoke\n"
                       "2,557, NoGas \n"
                       "3,558,\"Mixture\"\n"
                       "4,559,Perfume\n"
                       "5,560,10\n"
                       "6,561,2\n";
    const char *const cols[] = {"MQ2"};
    struct dataset_options o = {
        .label_column = "Gas", .label_classes = true, .value_columns = cols, .n_value_columns = 1};
    struct dataset d;
    char err[256];
    assert_int_equal(parse(&d, text, &o, err, sizeof err), 0);
    assert_int_equal(d.n_classes, 6);
    static const char *const names[] = {"10", "2", "Mixture", "NoGas", "Perfume", "Smoke"};
    for (int k = 0; k < 6; k++)
        assert_string_equal(d.class_names[k], names[k]);
    const double want[] = {3, 5, 3, 2, 4, 0, 1};
    for (int r = 0; r < 7; r++)
        assert_same_double(d.labels[r], want[r]);
    assert_int_equal(d.n_cols, 1);
    dataset_free(&d);
    assert_null(d.class_names);

    /* Without the option the names are not labels; with it a missing one still is an error. */
    o.label_classes = false;
    expect_error(text, &o, CANARY_EINVAL,
                 "data.csv:2: column 'Gas': not a label (a number, true or false): \"NoGas\"");
    o = (struct dataset_options){.label_column = "Gas", .label_classes = true};
    expect_error("a,Gas\n1,Smoke\n2,\n", &o, CANARY_EINVAL,
                 "data.csv:3: column 'Gas': the label is missing");
    /* Numeric labels stay numeric without the option: no class names. */
    struct dataset_options plain = {.label_column = "Gas"};
    assert_int_equal(parse(&d, "a,Gas\n1,0\n2,1\n", &plain, err, sizeof err), 0);
    assert_null(d.class_names);
    assert_int_equal(d.n_classes, 0);
    dataset_free(&d);
}

/* Every number is what strtod makes of it, bit for bit: the fast path and the fallback. */
static void test_numbers_exact(void **state)
{
    enum { N = 20000 };
    struct test_rng rng = {12345};
    size_t cap = (size_t)N * 40 + 16, w = 0;
    char *text = malloc(cap);
    char(*fields)[40] = malloc(sizeof(char[40]) * N);
    assert_non_null(text);
    assert_non_null(fields);
    w += (size_t)snprintf(text, cap, "v\n");
    for (int i = 0; i < N; i++) {
        double v = test_rng_gauss(&rng) * pow(10.0, (double)test_rng_below(&rng, 40) - 20);
        switch (i % 8) {
        case 0:
            snprintf(fields[i], 40, "%.17g", v);
            break;
        case 1:
            snprintf(fields[i], 40, "%.6f", v);
            break;
        case 2:
            snprintf(fields[i], 40, "%.3e", v);
            break;
        case 3:
            snprintf(fields[i], 40, "%.10g", v);
            break;
        case 4:
            snprintf(fields[i], 40, "%llu", (unsigned long long)test_rng_next(&rng));
            break;
        case 5:
            snprintf(fields[i], 40, "%.20f", v); /* more digits than the fast path takes */
            break;
        case 6:
            snprintf(fields[i], 40, "%d.%de%d", (int)test_rng_below(&rng, 1000),
                     (int)test_rng_below(&rng, 1000), (int)test_rng_below(&rng, 60) - 30);
            break;
        default:
            snprintf(fields[i], 40, "%.15g", v);
        }
        w += (size_t)snprintf(text + w, cap - w, "%s\n", fields[i]);
    }
    struct dataset d;
    char err[256];
    assert_int_equal(parse(&d, text, NULL, err, sizeof err), 0);
    assert_int_equal(d.n_rows, N);
    for (int i = 0; i < N; i++)
        assert_same_double(d.x[i], strtod(fields[i], NULL));
    dataset_free(&d);
    free(text);
    free(fields);

    /* Edge cases of the syntax. */
    assert_int_equal(
        parse(&d, "v\n.5\n5.\n-0\n+3\n1E+2\n007\n0.000\n4.9e-324\n", NULL, err, sizeof err), 0);
    const double want[] = {0.5, 5, -0.0, 3, 100, 7, 0, 4.9e-324};
    for (int i = 0; i < 8; i++)
        assert_same_double(d.x[i], want[i]);
    dataset_free(&d);
}

/* A larger file, as the benchmarks load: values and labels survive a round trip. */
static void test_large_file(void **state)
{
    enum { ROWS = 100000 };
    size_t cap = (size_t)ROWS * 64, w = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    w += (size_t)snprintf(text, cap, "f0,f1,f2,label\n");
    for (int i = 0; i < ROWS; i++)
        w += (size_t)snprintf(text + w, cap - w, "%.9f,%d.%03d,%de-3,%d\r\n", i * 0.001, i % 1000,
                              i % 997, i, i % 50 == 0);
    const char *path = write_file("large.csv", text, w);
    struct dataset d;
    char err[256];
    struct dataset_options o = {.label_column = "label"};
    assert_int_equal(dataset_load_csv(&d, path, &o, err, sizeof err), 0);
    assert_int_equal(d.n_rows, ROWS);
    assert_int_equal(d.n_cols, 3);
    for (int i = 0; i < ROWS; i += 997) {
        char b[32];
        snprintf(b, sizeof b, "%.9f", i * 0.001);
        assert_same_double(d.x[i * 3], strtod(b, NULL));
        snprintf(b, sizeof b, "%de-3", i);
        assert_same_double(d.x[i * 3 + 2], strtod(b, NULL));
        assert_same_double(d.labels[i], i % 50 == 0);
    }
    dataset_free(&d);
    free(text);
}

/* Random edits of a small file full of quotes, CRLFs and blank lines: every outcome is a
 * dataset that keeps its promises or an EINVAL with a printable message (and under the
 * sanitizers, no read or write out of bounds). */
static void test_fuzz(void **state)
{
    static const char seed[] = "ts,device,\"a\",b,label\r\n"
                               "2014-02-14 14:30:00,\"x, \"\"1\"\"\",1.5,,0\r\n"
                               "\r\n"
                               "1392388200,y,-2e3,nan,1\n"
                               "1392388200123,\"multi\nline\",7,8,true";
    struct dataset_options o = {
        .label_column = "label", .timestamp_column = "ts", .device_column = "device"};
    struct test_rng rng = {777};
    char buf[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = sizeof seed - 1;
        memcpy(buf, seed, len);
        int edits = 1 + (int)test_rng_below(&rng, 4);
        static const char pool[] = ",\"\r\n0.-eT: x";
        for (int e = 0; e < edits; e++)
            len = test_fuzz_edit(&rng, buf, len, sizeof buf - 1,
                                 pool[test_rng_below(&rng, sizeof pool - 1)], 20);
        char *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, buf, len);
        struct dataset d;
        char err[256] = "";
        int rc = dataset_parse_csv(&d, "f.csv", copy, len, &o, err, sizeof err);
        free(copy);
        if (rc == 0) {
            assert_true(d.n_rows >= 1);
            for (size_t r = 0; r < d.n_rows; r++) {
                assert_true(d.device_id[r] < d.n_devices);
                assert_ptr_equal(d.devices[r], d.device_names[d.device_id[r]]);
                assert_true(isfinite(d.labels[r]));
            }
        } else {
            assert_true(rc == CANARY_EINVAL || rc == CANARY_ENOTFOUND);
            if (!printable(err)) {
                fprintf(stderr, "not printable: %s\n", err);
                fail();
            }
            assert_true(strncmp(err, "f.csv", 5) == 0);
        }
        dataset_free(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_file),     cmocka_unit_test(test_line_ends_and_blanks),
        cmocka_unit_test(test_missing_values), cmocka_unit_test(test_subset_and_max_rows),
        cmocka_unit_test(test_timestamps),     cmocka_unit_test(test_devices_quoted),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_numbers_exact),
        cmocka_unit_test(test_large_file),     cmocka_unit_test(test_label_classes),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
