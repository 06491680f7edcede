/* test_replay.c — `canary replay` end to end: this build's canary binary on small CSV files,
 * as a user runs it.
 *
 * The series (written by the tests into a temporary directory): a temperature_c sensor, one
 * reading a minute, 20 °C with a little structured noise, a spike to 35 °C at row 60, a
 * reading above the warn limit (55 °C) at row 80 and a 20-minute hole before row 100. It
 * checks the output's shape (one line per row, timestamps as written, scores in [0,1]), the
 * flags (warm-up for the first 30 rows, anomaly, warn, gap, refused), that the scores and
 * flags are exactly those of the detect library called directly and those canaryd itself
 * gives the same readings sent over HTTP, the configuration (--set, --config, --metric),
 * directory mode, and bad input (a message naming file, line and column; no partial
 * output). Every test works in its own temporary directory, removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli_run.h"
#include "harness.h"

#include "core/config.h"
#include "core/reading.h"
#include "detect/detect.h"
#include "detect/detect_config.h"
#include "tamper/tamper.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROWS 120

struct fx {
    struct test_dir t;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    test_dir_make(&f->t, "replay");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    test_dir_remove(&f->t);
    free(f);
    return 0;
}

#define in_dir(f, name) test_dir_path(&(f)->t, name)

static void spit(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* Runs `canary replay <args...>`. */
#define run_replay(f, ...) cli_run((f)->t.dir, NULL, "replay", __VA_ARGS__, NULL)

/* ---- the series ---- */

/* Row i's value and time (ms after the first row). */
static double value_at(int i)
{
    if (i == 60)
        return 35.0;
    if (i == 80)
        return 55.0;
    return 20.0 + 0.1 * (i % 5) + 0.05 * (i % 3);
}

static int64_t offset_ms(int i)
{
    return (int64_t)i * 60000 + (i >= 100 ? 20 * 60000 : 0);
}

/* Writes the series as CSV: ISO timestamps from 2024-03-01 10:00 UTC (iso), or Unix ms
 * from base_ms; the value column is named column. */
static void write_series(const char *path, const char *column, bool iso, int64_t base_ms)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "timestamp,%s\n", column);
    for (int i = 0; i < ROWS; i++) {
        int64_t min = offset_ms(i) / 60000;
        if (iso)
            fprintf(fp, "2024-03-01 %02d:%02d:00,%.2f\n", (int)(10 + min / 60), (int)(min % 60),
                    value_at(i));
        else
            fprintf(fp, "%lld,%.2f\n", (long long)(base_ms + offset_ms(i)), value_at(i));
    }
    assert_int_equal(fclose(fp), 0);
}

/* One parsed output line. */
struct out_row {
    char ts[40];
    char value[40];
    char score[40]; /* "" when not scored */
    char flags[160];
};

static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    assert_true(n < cap);
    memcpy(dst, src, n + 1);
}

/* Splits the output CSV (no quoted fields in these tests) into rows; checks the header. */
static size_t parse_output(const char *text, const char *header, struct out_row *rows, size_t cap)
{
    const char *nl = strchr(text, '\n');
    assert_non_null(nl);
    if (strncmp(text, header, (size_t)(nl - text)) != 0 || strlen(header) != (size_t)(nl - text))
        fail_msg("header: got \"%.*s\", wanted \"%s\"", (int)(nl - text), text, header);
    size_t n = 0;
    for (const char *p = nl + 1; *p != '\0'; n++) {
        assert_true(n < cap);
        const char *end = strchr(p, '\n');
        assert_non_null(end);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(end - p), p);
        char *fields[4] = {line, NULL, NULL, NULL};
        for (int k = 1; k < 4; k++) {
            char *c = strchr(fields[k - 1], ',');
            if (c == NULL)
                fail_msg("line %zu has fewer than 4 fields: %s", n + 2, line);
            *c = '\0';
            fields[k] = c + 1;
        }
        copy_field(rows[n].ts, sizeof rows[n].ts, fields[0]);
        copy_field(rows[n].value, sizeof rows[n].value, fields[1]);
        copy_field(rows[n].score, sizeof rows[n].score, fields[2]);
        copy_field(rows[n].flags, sizeof rows[n].flags, fields[3]);
        p = end + 1;
    }
    return n;
}

/* True when the '|'-joined list holds name. */
static bool has_flag(const char *flags, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = flags; (p = strstr(p, name)) != NULL; p += len) {
        if ((p == flags || p[-1] == '|') && (p[len] == '\0' || p[len] == '|'))
            return true;
    }
    return false;
}

/* The flag names of a bit set, '|'-joined, in bit order (as the output promises). */
static void flag_names(uint32_t flags, char *buf, size_t len)
{
    buf[0] = '\0';
    for (uint32_t bit = 1; bit != 0 && bit <= flags; bit <<= 1) {
        if (flags & bit) {
            size_t at = strlen(buf);
            snprintf(buf + at, len - at, "%s%s", at ? "|" : "", reading_flag_name(bit));
        }
    }
}

/* ---- tests ---- */

static void test_scores_flags_and_warmup(void **state)
{
    struct fx *f = *state;
    const char *in = in_dir(f, "kitchen.csv"), *out = in_dir(f, "scores.csv");
    write_series(in, "temperature_c", true, 0);
    struct cli_run r = run_replay(f, "--input", in, "--output", out);
    cli_expect_status(&r, 0);
    expect_contains(r.err, "120 rows");
    expect_contains(r.err, "30 in warm-up");
    cli_run_free(&r);

    char *text = file_slurp(out, NULL);
    assert_non_null(text);
    static struct out_row rows[ROWS + 8];
    size_t n = parse_output(text, "timestamp,temperature_c,score,flags", rows, ROWS + 8);
    assert_int_equal(n, ROWS);
    assert_string_equal(rows[0].ts, "2024-03-01 10:00:00"); /* as written */
    assert_string_equal(rows[0].value, "20");
    assert_string_equal(rows[61].value, "20.15");
    for (size_t i = 0; i < n; i++) {
        char *end;
        double s = strtod(rows[i].score, &end);
        if (*end != '\0' || !(s >= 0 && s <= 1))
            fail_msg("row %zu: score \"%s\" is not in [0,1]", i, rows[i].score);
        /* detect.warmup_readings = 30: the first 30 rows learn, score 0, carry warmup. */
        assert_int_equal(has_flag(rows[i].flags, "warmup"), i < 30);
        if (i < 30)
            assert_true(s == 0);
    }
    assert_true(has_flag(rows[60].flags, "anomaly"));
    assert_true(strtod(rows[60].score, NULL) >= 0.5); /* detect.anomaly_threshold */
    assert_false(has_flag(rows[59].flags, "anomaly"));
    assert_true(has_flag(rows[80].flags, "warn")); /* temperature_c warns at 50 °C */
    assert_true(has_flag(rows[100].flags, "gap")); /* 21 minutes after a minute's rhythm */
    assert_false(has_flag(rows[99].flags, "gap"));
    free(text);

    /* Standard output when no --output. */
    r = run_replay(f, "--input", in);
    cli_expect_status(&r, 0);
    char *again = file_slurp(out, NULL);
    assert_string_equal(r.out, again);
    free(again);
    cli_run_free(&r);
}

/* The output is what the detect library (and the tamper checks after it) gives when called
 * directly, the way canaryd's shards call them, with canaryd's default configuration: same
 * float score, same flags. */
static void test_same_as_detect_library(void **state)
{
    struct fx *f = *state;
    const char *in = in_dir(f, "series.csv"), *out = in_dir(f, "scores.csv");
    const int64_t base = 1709287200000; /* 2024-03-01 10:00:00 UTC */
    write_series(in, "temperature_c", false, base);
    struct cli_run r = run_replay(f, "--input", in, "--output", out);
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    char *text = file_slurp(out, NULL);
    static struct out_row rows[ROWS + 8];
    assert_int_equal(parse_output(text, "timestamp,temperature_c,score,flags", rows, ROWS + 8),
                     ROWS);
    free(text);

    struct canary_config cfg;
    config_init(&cfg);
    struct detect_params p;
    detect_params_from_config(&cfg, &p);
    struct series_state s;
    detect_series_setup(&s, &cfg, NULL, "temperature_c");
    struct series_state *series[1] = {&s};
    struct gap_state gap = {0};
    struct tamper_series tser;
    tamper_series_init(&tser, "temperature_c");
    struct tamper_series *tseries[1] = {&tser};
    struct tamper_device trust;
    tamper_device_init(&trust);
    for (int i = 0; i < ROWS; i++) {
        struct metric_value v = {.name = "temperature_c", .value = atof(rows[i].value)};
        detect_reading(&gap, series, &p, &v, 1, base + offset_ms(i));
        int64_t ts = base + offset_ms(i);
        struct reading reading = {"replay", 0, ts, ts, &v, 1, false, true};
        struct tamper_outcome judged;
        tamper_reading(&cfg.tamper, &trust, tseries, &reading, &judged);
        char want[160];
        flag_names(v.flags, want, sizeof want);
        float got = strtof(rows[i].score, NULL); /* 9 digits: the same float */
        if (got != v.score || strcmp(rows[i].flags, want) != 0)
            fail_msg("row %d: replay gave %s \"%s\", the library %.9g \"%s\"", i, rows[i].score,
                     rows[i].flags, (double)v.score, want);
    }
    config_free(&cfg);
}

/* The same readings sent to canaryd over HTTP get the same scores and flags: replay runs
 * exactly what canaryd runs live. */
static void test_same_as_canaryd(void **state)
{
    struct fx *f = *state;
    const int64_t base = (now_ms() - 3 * 3600000) / 60000 * 60000;
    const char *in = in_dir(f, "live.csv"), *out = in_dir(f, "scores.csv");
    write_series(in, "temperature_c", false, base);
    struct cli_run r = run_replay(f, "--input", in, "--output", out);
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    char *text = file_slurp(out, NULL);
    static struct out_row rows[ROWS + 8];
    assert_int_equal(parse_output(text, "timestamp,temperature_c,score,flags", rows, ROWS + 8),
                     ROWS);
    free(text);

    struct daemon d;
    daemon_init(&d, NULL);
    daemon_start(&d);
    size_t cap = 256 * ROWS, len = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    len += (size_t)snprintf(body + len, cap - len, "[");
    for (int i = 0; i < ROWS; i++)
        len +=
            (size_t)snprintf(body + len, cap - len,
                             "%s{\"device\":\"replay-1\",\"seq\":%d,\"ts\":%lld,"
                             "\"values\":{\"temperature_c\":%s}}",
                             i ? "," : "", i + 1, (long long)(base + offset_ms(i)), rows[i].value);
    snprintf(body + len, cap - len, "]");
    assert_int_equal(http_post_json(&d, "/api/v1/ingest", body, NULL), 200);
    free(body);

    cJSON *j = NULL;
    assert_int_equal(http_get_json(&d,
                                   "/api/v1/devices/replay-1/readings?order=asc&limit=1000"
                                   "&from=-5h",
                                   &j),
                     200);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "readings");
    assert_int_equal(cJSON_GetArraySize(list), ROWS);
    int i = 0;
    for (const cJSON *e = list->child; e != NULL; e = e->next, i++) {
        assert_true((int64_t)json_number((cJSON *)e, "ts_ms") == base + offset_ms(i));
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(e, "values"), "temperature_c");
        double live = cJSON_GetObjectItemCaseSensitive(v, "score")->valuedouble;
        char live_flags[160] = "";
        for (const cJSON *fl = cJSON_GetObjectItemCaseSensitive(v, "flags")->child; fl != NULL;
             fl = fl->next) {
            size_t at = strlen(live_flags);
            snprintf(live_flags + at, sizeof live_flags - at, "%s%s", at ? "|" : "",
                     fl->valuestring);
        }
        /* The store keeps a score to 1/65535 and the API rounds it to 4 decimals; flags are
         * listed in bit order there too. */
        if (fabs(live - strtod(rows[i].score, NULL)) > 0.00005 + 0.5 / 65535 ||
            strcmp(live_flags, rows[i].flags) != 0)
            fail_msg("row %d: replay %s \"%s\", canaryd %.4f \"%s\"", i, rows[i].score,
                     rows[i].flags, live, live_flags);
    }
    cJSON_Delete(j);
    assert_int_equal(daemon_stop(&d, SIGTERM), 0);
    daemon_cleanup(&d);
}

static void test_configuration(void **state)
{
    struct fx *f = *state;
    const char *in = in_dir(f, "series.csv"), *out = in_dir(f, "scores.csv");
    write_series(in, "temperature_c", true, 0);
    static struct out_row rows[ROWS + 8];

    /* --set: canaryd's keys. */
    struct cli_run r =
        run_replay(f, "--input", in, "--output", out, "--set", "detect.warmup_readings=5");
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    char *text = file_slurp(out, NULL);
    assert_int_equal(parse_output(text, "timestamp,temperature_c,score,flags", rows, ROWS + 8),
                     ROWS);
    free(text);
    assert_true(has_flag(rows[4].flags, "warmup"));
    assert_false(has_flag(rows[5].flags, "warmup"));
    r = run_replay(f, "--input", in, "--output", out, "--set",
                   "metric.temperature_c.warn_high=20.1");
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    text = file_slurp(out, NULL);
    parse_output(text, "timestamp,temperature_c,score,flags", rows, ROWS + 8);
    free(text);
    assert_false(has_flag(rows[0].flags, "warn")); /* 20.0 */
    assert_true(has_flag(rows[2].flags, "warn"));  /* 20.3 */

    /* --config: the same keys from a file; --device picks [device.D.M] limits. */
    const char *conf = in_dir(f, "canary.conf");
    spit(conf, "[metric.temperature_c]\nwarn_high = 30\n\n[device.boiler-1.temperature_c]\n"
               "warn_high = 20.1\n");
    r = run_replay(f, "--input", in, "--output", out, "--config", conf);
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    text = file_slurp(out, NULL);
    parse_output(text, "timestamp,temperature_c,score,flags", rows, ROWS + 8);
    free(text);
    assert_false(has_flag(rows[2].flags, "warn"));
    assert_true(has_flag(rows[60].flags, "warn")); /* 35 >= 30 */
    r = run_replay(f, "--input", in, "--output", out, "--config", conf, "--device", "boiler-1");
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    text = file_slurp(out, NULL);
    parse_output(text, "timestamp,temperature_c,score,flags", rows, ROWS + 8);
    free(text);
    assert_true(has_flag(rows[2].flags, "warn"));

    /* A column that is not a catalogued metric is a generic one: no limits, so 55 is no
     * warning and only the statistical score speaks (the spike to 35 is its anomaly; the one
     * to 55, twenty rows later, is less surprising to a series that has just shown a spike);
     * --metric names its metric. */
    const char *generic = in_dir(f, "generic.csv");
    write_series(generic, "value", true, 0);
    r = run_replay(f, "--input", generic, "--output", out);
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    text = file_slurp(out, NULL);
    parse_output(text, "timestamp,value,score,flags", rows, ROWS + 8);
    free(text);
    assert_false(has_flag(rows[80].flags, "warn"));
    assert_true(has_flag(rows[60].flags, "anomaly"));
    assert_false(has_flag(rows[59].flags, "anomaly"));
    r = run_replay(f, "--input", generic, "--output", out, "--metric", "temperature_c");
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    text = file_slurp(out, NULL);
    parse_output(text, "timestamp,value,score,flags", rows, ROWS + 8);
    free(text);
    assert_true(has_flag(rows[80].flags, "warn"));
    r = run_replay(f, "--input", generic, "--output", out, "--metric", "value=temperature_c");
    cli_expect_status(&r, 0);
    cli_run_free(&r);
    text = file_slurp(out, NULL);
    parse_output(text, "timestamp,value,score,flags", rows, ROWS + 8);
    free(text);
    assert_true(has_flag(rows[80].flags, "warn"));
}

/* Several value columns: the row's score is the highest of its values'; a missing value is a
 * metric the reading lacks; a row without values is no reading; an implausible value makes
 * the reading refused, as canaryd's verify stage would. */
static void test_several_columns_missing_and_refused(void **state)
{
    struct fx *f = *state;
    const char *in = in_dir(f, "multi.csv");
    FILE *fp = fopen(in, "w");
    assert_non_null(fp);
    fprintf(fp, "ts,temperature_c,humidity_pct\n");
    for (int i = 0; i < 50; i++) {
        double t = i == 45 ? 40.0 : 20.0 + 0.1 * (i % 4);
        if (i == 40)
            fprintf(fp, "%d,,\n", 1700000000 + 60 * i);
        else if (i == 41)
            fprintf(fp, "%d,%.1f,\n", 1700000000 + 60 * i, t);
        else if (i == 42)
            fprintf(fp, "%d,500,50\n", 1700000000 + 60 * i); /* 500 °C: not plausible */
        else
            fprintf(fp, "%d,%.1f,%.1f\n", 1700000000 + 60 * i, t, 50.0 + 0.5 * (i % 3));
    }
    fclose(fp);
    struct cli_run r = run_replay(f, "--input", in);
    cli_expect_status(&r, 0);
    expect_contains(r.err, "1 refused, 1 empty");
    const char *p = r.out;
    assert_true(strncmp(p, "ts,temperature_c,humidity_pct,score,flags\n", 42) == 0);
    char line[256];
    for (int i = 0; i <= 45; i++) {
        p = strchr(p, '\n') + 1;
        const char *e = strchr(p, '\n');
        snprintf(line, sizeof line, "%.*s", (int)(e - p), p);
        if (i == 40)
            assert_string_equal(line, "1700002400,,,,");
        if (i == 41) { /* humidity missing: the temperature alone is the reading */
            assert_true(strncmp(line, "1700002460,20.1,,", 17) == 0);
            double score = strtod(line + 17, NULL);
            assert_true(line[17] != ',' && score >= 0 && score < 0.5);
        }
        if (i == 42)
            assert_string_equal(line, "1700002520,500,50,,refused");
        if (i == 45) /* 40 °C: the row's score is the temperature's, not the humidity's */
            assert_true(has_flag(strrchr(line, ',') + 1, "anomaly"));
    }
    cli_run_free(&r);
}

static void test_directory_mode(void **state)
{
    struct fx *f = *state;
    const char *in = in_dir(f, "in"), *sub = in_dir(f, "in/site-b"), *out = in_dir(f, "out");
    assert_int_equal(mkdir(in, 0755), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    write_series(in_dir(f, "in/a.csv"), "temperature_c", true, 0);
    write_series(in_dir(f, "in/site-b/b.csv"), "value", false, 1700000000000);
    spit(in_dir(f, "in/site-b/notes.txt"), "not a CSV file\n");
    struct cli_run r = run_replay(f, "--input", in, "--output", out, "--jobs", "2");
    cli_expect_status(&r, 0);
    expect_contains(r.err, "2 of 2 files, 240 rows");
    cli_run_free(&r);
    struct stat st;
    assert_int_equal(stat(in_dir(f, "out/site-b/notes.txt"), &st), -1);
    /* Each output is what the file alone gives. */
    const char *names[2] = {"a.csv", "site-b/b.csv"};
    for (int k = 0; k < 2; k++) {
        char src[160], dst[160];
        snprintf(src, sizeof src, "in/%s", names[k]);
        snprintf(dst, sizeof dst, "out/%s", names[k]);
        r = run_replay(f, "--input", in_dir(f, src));
        cli_expect_status(&r, 0);
        char *written = file_slurp(in_dir(f, dst), NULL);
        assert_non_null(written);
        assert_string_equal(written, r.out);
        free(written);
        cli_run_free(&r);
    }

    /* One bad file: the others are still written, the bad one is named and not written. */
    spit(in_dir(f, "in/site-b/bad.csv"), "timestamp,value\n1700000000,1\n1700000060,x\n");
    r = run_replay(f, "--input", in, "--output", out);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "in/site-b/bad.csv:3: column 'value': not a number: \"x\"");
    expect_contains(r.err, "2 of 3 files");
    assert_int_equal(stat(in_dir(f, "out/site-b/bad.csv"), &st), -1);
    cli_run_free(&r);

    /* A directory needs an output directory. */
    r = run_replay(f, "--input", in);
    cli_expect_status(&r, 2);
    expect_contains(r.err, "--output DIR is required");
    cli_run_free(&r);
}

static void test_bad_input(void **state)
{
    struct fx *f = *state;
    const char *bad = in_dir(f, "bad.csv"), *out = in_dir(f, "never.csv");
    spit(bad, "timestamp,value\n2024-03-01 10:00:00,1\n2024-03-01 10:01:00,abc\n");
    struct cli_run r = run_replay(f, "--input", bad, "--output", out);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "bad.csv:3: column 'value': not a number: \"abc\"");
    cli_run_free(&r);
    struct stat st;
    assert_int_equal(stat(out, &st), -1); /* no partial output */

    spit(bad, "timestamp,value\n2024-03-01 10:00:00,1\nyesterday,2\n");
    r = run_replay(f, "--input", bad);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "bad.csv:3: column 'timestamp': not a timestamp");
    cli_run_free(&r);

    spit(bad, "timestamp,value\n2024-03-01 10:00:00,1\n2024-03-01 10:01:00\n");
    r = run_replay(f, "--input", bad);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "bad.csv:3: 1 field, the header has 2");
    cli_run_free(&r);

    spit(bad, "when,value\n1,2\n");
    r = run_replay(f, "--input", bad);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "no timestamp column");
    expect_contains(r.err, "the header has: when, value");
    cli_run_free(&r);

    spit(bad, "");
    r = run_replay(f, "--input", bad);
    cli_expect_status(&r, 1);
    expect_contains(r.err, "empty file");
    cli_run_free(&r);

    spit(bad, "timestamp,value\n1,2\n");
    r = run_replay(f, "--input", bad, "--value-columns", "gas_ppm");
    cli_expect_status(&r, 1);
    expect_contains(r.err, "no value column 'gas_ppm'");
    cli_run_free(&r);

    r = run_replay(f, "--input", bad, "--metric", "Not-A-Metric");
    cli_expect_status(&r, 1);
    expect_contains(r.err, "not a valid metric name");
    cli_run_free(&r);

    r = run_replay(f, "--input", in_dir(f, "missing.csv"));
    cli_expect_status(&r, 1);
    expect_contains(r.err, "missing.csv: No such file or directory");
    cli_run_free(&r);

    r = run_replay(f, "--input", bad, "--set", "detect.z_half=fast");
    cli_expect_status(&r, 2);
    expect_contains(r.err, "detect.z_half");
    cli_run_free(&r);

    r = run_replay(f, "--input", bad, "--config", in_dir(f, "no.conf"));
    cli_expect_status(&r, 2);
    cli_run_free(&r);

    r = run_replay(f, "--output", out);
    cli_expect_status(&r, 2);
    expect_contains(r.err, "--input");
    cli_run_free(&r);

    r = run_replay(f, "--input", bad, "--frobnicate", "1");
    cli_expect_status(&r, 2);
    expect_contains(r.err, "unknown option: --frobnicate");
    cli_run_free(&r);

    r = run_replay(f, "--help");
    cli_expect_status(&r, 0);
    expect_contains(r.out, "usage: canary replay");
    cli_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scores_flags_and_warmup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_as_detect_library, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_as_canaryd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configuration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_columns_missing_and_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
