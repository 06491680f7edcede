/* test_explain.c — unit tests of the alert explanations (src/notify/explain.c).
 *
 * Every alert kind with every metric family, with a full context and with an empty one,
 * produces a title, a description, an action and a short form that pass explain_check()
 * (one line of valid UTF-8, short form <= 160 characters) and never say "nan", "inf" or
 * "(null)"; the gas-leak example comes out word for word; numbers, values and
 * durations are written for people; hostile device names (quotes, newlines, bidi controls,
 * invalid UTF-8, 10,000 characters) come out flattened and cut, and escaped in HTML; the
 * writer seam takes good text and falls back to the template on anything else.
 * Set EXPLAIN_PRINT=1 to print every explanation (that is how docs/ALERTING.md's examples
 * were made). */
#include "notify/explain.h"

#include "core/utf8.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define OPENED_MS 1763676000000LL /* 2025-11-20 22:00:00 UTC */

static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* True when s holds `word` (any case) not as part of a longer word. */
static bool has_word(const char *s, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = s; *p; p++) {
        if (strncasecmp(p, word, n) != 0)
            continue;
        bool before = p > s && isalpha((unsigned char)p[-1]);
        bool after = isalpha((unsigned char)p[n]);
        if (!before && !after)
            return true;
    }
    return false;
}

/* No number formatting accident may reach a person. */
static void assert_clean(const char *s)
{
    if (has_word(s, "nan") || has_word(s, "inf") || has_word(s, "infinity"))
        fail_msg("a non-finite number in: %s", s);
    if (strstr(s, "(null)") != NULL)
        fail_msg("\"(null)\" in: %s", s);
    if (strstr(s, "  ") != NULL)
        fail_msg("double space in: %s", s);
    if (strstr(s, " .") != NULL || strstr(s, "..") != NULL || strstr(s, " ,") != NULL)
        fail_msg("stray punctuation in: %s", s);
}

static void assert_explanation(const struct explanation *e)
{
    if (!explain_check(e))
        fail_msg("explain_check failed: title \"%s\" short \"%s\"", e->title, e->short_text);
    assert_true(chars(e->short_text) <= EXPLAIN_SHORT_CHARS);
    assert_clean(e->title);
    assert_clean(e->description);
    assert_clean(e->action);
    assert_clean(e->short_text);
    assert_int_equal(e->source, EXPLAIN_SOURCE_TEMPLATE);
}

static void print(const char *what, const struct explanation *e)
{
    if (getenv("EXPLAIN_PRINT") == NULL)
        return;
    printf("== %s\ntitle:       %s\ndescription: %s\naction:      %s\nshort (%zu):  %s\n\n", what,
           e->title, e->description, e->action, chars(e->short_text), e->short_text);
}

static const struct explain_related related[] = {
    {"temperature_c", 24.13}, {"humidity_pct", 45.2}, {"gas_ppm", 4800}, {"flame", 0},
    {"smoke_ppm", NAN},       {"noise_db", 61},
};

/* The example: a methane leak in a kitchen. */
static void gas_context(struct explain_context *c)
{
    explain_context_init(c);
    c->device_id = "kitchen-1";
    c->device_name = "Kitchen sensor";
    c->location = "Kitchen";
    c->metric = "gas_ppm";
    c->gas = "methane";
    c->kind = ALERT_KIND_GAS_LEAK;
    c->severity = SEVERITY_CRITICAL;
    c->value = 4800;
    c->peak = 5100;
    c->limit = 1000;
    c->normal_level = 450;
    c->normal_scale = 150;
    c->rate_per_min = 900;
    c->trend_ms = 180000;
    c->related = related;
    c->n_related = sizeof related / sizeof related[0];
    c->opened_ms = OPENED_MS;
    c->now_ms = OPENED_MS + 12 * 60000;
}

static void test_gas_leak_example(void **state)
{
    (void)state;
    struct explain_context c;
    gas_context(&c);
    struct explanation e;
    explain_alert(&c, &e);
    print("gas leak", &e);
    assert_explanation(&e);
    assert_string_equal(e.title, "Gas leak suspected in Kitchen");
    assert_string_equal(e.short_text,
                        "Gas leak suspected in Kitchen: methane at 4,800 ppm and rising for 3 "
                        "minutes (normal 300 to 600 ppm). Ventilate, do not switch on electrics, "
                        "shut the gas valve.");
    assert_string_equal(e.description,
                        "Gas leak suspected in Kitchen: methane at 4,800 ppm and rising for 3 "
                        "minutes (+900 ppm a minute). That is above the critical level of 1,000 "
                        "ppm. Normal here is 300 to 600 ppm. Other readings: temperature 24.1 °C, "
                        "humidity 45.2%, flame none, noise 61 dB. Device kitchen-1 (Kitchen "
                        "sensor), severity critical, open since 22:00 UTC (12 minutes).");
    assert_non_null(strstr(e.action, "Ventilate"));
    assert_non_null(strstr(e.action, "gas valve"));

    /* Without the gas's name it is "gas"; carbon monoxide gets its own advice. */
    c.gas = NULL;
    explain_alert(&c, &e);
    assert_non_null(strstr(e.short_text, ": gas at 4,800 ppm"));
    c.metric = "co_ppm";
    c.value = 180;
    c.limit = 150;
    explain_alert(&c, &e);
    print("carbon monoxide", &e);
    assert_explanation(&e);
    assert_string_equal(e.title, "Carbon monoxide alarm in Kitchen");
    assert_non_null(strstr(e.action, "fresh air"));
}

static const char *const metrics[] = {
    "gas_ppm",      "co_ppm", "co2_ppm",        "smoke_ppm", "temperature_c",  "humidity_pct",
    "pressure_hpa", "flame",  "motion",         "light_lux", "vibration_mm_s", "noise_db",
    "valve_open",   "relay",  "model:boiler-7", "device",    "lpg_level_x",    NULL,
};

static void test_every_kind_and_family(void **state)
{
    (void)state;
    size_t n = 0;
    for (int k = 0; k < ALERT_KIND_COUNT; k++) {
        for (size_t m = 0; m < sizeof metrics / sizeof metrics[0]; m++) {
            for (int full = 0; full < 2; full++) {
                for (int low = 0; low < 2; low++) {
                    struct explain_context c;
                    if (full) {
                        gas_context(&c);
                        c.anomaly_score = 0.934;
                        c.anomaly_threshold = 0.8;
                        c.stuck_count = 60;
                        c.last_seen_ms = OPENED_MS - 300000;
                        c.detail = "signature did not verify";
                        c.resolved_ms = c.now_ms;
                        c.resolved_by = low ? "alice" : "canary";
                        if (low) {
                            c.value = -3.25;
                            c.limit = 2;
                            c.rate_per_min = -0.4;
                        }
                    } else {
                        explain_context_init(&c);
                    }
                    c.metric = metrics[m];
                    c.kind = (enum alert_kind)k;
                    c.severity = (enum alert_severity)((k + m) % SEVERITY_COUNT);
                    struct explanation e, a;
                    explain_alert(&c, &e);
                    assert_explanation(&e);
                    /* The description opens with the title. */
                    assert_memory_equal(e.description, e.title, strlen(e.title));
                    explain_all_clear(&c, &a);
                    assert_explanation(&a);
                    if (full && !low && m == 0) {
                        char what[64];
                        snprintf(what, sizeof what, "%s / %s", alert_kind_name(c.kind), metrics[m]);
                        print(what, &e);
                        print("all clear", &a);
                    }
                    n++;
                }
            }
        }
    }
    assert_true(n >= ALERT_KIND_COUNT * 17 * 4);
}

/* Per kind, the words that matter. */
static void test_kind_templates(void **state)
{
    (void)state;
    struct explain_context c;
    struct explanation e;
    static const struct explain_related fire_related[] = {
        {"flame", 1}, {"temperature_c", 78.4}, {"smoke_ppm", 420}};

    gas_context(&c);
    c.kind = ALERT_KIND_FIRE;
    c.metric = "device";
    c.related = fire_related;
    c.n_related = 3;
    explain_alert(&c, &e);
    print("fire", &e);
    assert_string_equal(e.title, "Fire suspected in Kitchen");
    assert_non_null(strstr(e.short_text, "flame detected, temperature 78.4 °C"));
    assert_non_null(strstr(e.short_text, "call the fire brigade"));
    assert_non_null(strstr(e.description, "Other readings: smoke 420 ppm."));

    gas_context(&c);
    c.kind = ALERT_KIND_THRESHOLD;
    c.metric = "temperature_c";
    c.severity = SEVERITY_HIGH;
    c.value = -3.25;
    c.limit = 2;
    c.normal_level = 19;
    c.normal_scale = 1.5;
    c.rate_per_min = -0.4;
    c.location = NULL;
    explain_alert(&c, &e);
    print("threshold low", &e);
    assert_string_equal(e.title, "Temperature too low at Kitchen sensor");
    assert_non_null(strstr(e.description, "below the critical level of 2 °C"));
    assert_non_null(strstr(e.description, "17.5 to 20.5 °C"));
    assert_non_null(strstr(e.action, "frost"));

    c.value = 71.5;
    c.limit = 65;
    c.rate_per_min = 1.5;
    explain_alert(&c, &e);
    assert_string_equal(e.title, "Temperature too high at Kitchen sensor");
    assert_non_null(strstr(e.description, "above the critical level of 65 °C"));

    gas_context(&c);
    c.kind = ALERT_KIND_ANOMALY;
    c.metric = "vibration_mm_s";
    c.severity = SEVERITY_MEDIUM;
    c.value = 6.123;
    c.normal_level = 2.1;
    c.normal_scale = 0.4;
    c.rate_per_min = NAN;
    c.anomaly_score = 0.934;
    c.anomaly_threshold = 0.8;
    explain_alert(&c, &e);
    print("anomaly", &e);
    assert_string_equal(e.title, "Unusual vibration reading in Kitchen");
    assert_non_null(strstr(e.description, "6.12 mm/s"));
    assert_non_null(strstr(e.description, "Anomaly score 0.93 (alerts from 0.8)"));

    c.metric = "model:boiler";
    explain_alert(&c, &e);
    print("model anomaly", &e);
    assert_string_equal(e.title, "Unusual behaviour in Kitchen (model boiler)");
    assert_non_null(strstr(e.short_text, "score 0.93"));
    assert_non_null(strstr(e.action, "retrain"));

    gas_context(&c);
    c.kind = ALERT_KIND_RATE;
    c.metric = "temperature_c";
    c.value = 48;
    c.rate_per_min = 12.5;
    c.limit = 8.3;
    c.normal_level = NAN;
    explain_alert(&c, &e);
    print("rate", &e);
    assert_string_equal(e.title, "Temperature rising fast in Kitchen");
    assert_non_null(strstr(e.description, "up 12.5 °C a minute, now 48 °C"));
    assert_non_null(strstr(e.description, "The limit is 8.3 °C a minute."));
    assert_non_null(strstr(e.action, "fire"));

    gas_context(&c);
    c.kind = ALERT_KIND_SENSOR_FAULT;
    c.value = 412;
    c.stuck_count = 60;
    explain_alert(&c, &e);
    print("sensor fault", &e);
    assert_string_equal(e.title, "Methane sensor may be stuck in Kitchen");
    assert_non_null(strstr(e.description, "exactly 412 ppm 60 times in a row"));
    assert_non_null(strstr(e.action, "go unnoticed"));

    gas_context(&c);
    c.kind = ALERT_KIND_OFFLINE;
    c.metric = "device";
    c.last_seen_ms = OPENED_MS - 300000;
    explain_alert(&c, &e);
    print("offline", &e);
    assert_string_equal(e.title, "No data from Kitchen sensor in Kitchen");
    assert_non_null(strstr(e.description, "nothing heard since 21:55 UTC (17 minutes ago)"));
    assert_null(strstr(e.description, "Other readings")); /* stale: not quoted */

    gas_context(&c);
    c.kind = ALERT_KIND_TAMPER;
    c.metric = "device";
    c.detail = "signature did not verify\nfor seq 1042";
    explain_alert(&c, &e);
    print("tamper", &e);
    assert_string_equal(e.title, "Suspicious data from Kitchen sensor");
    assert_non_null(strstr(e.description, "Reason: signature did not verify for seq 1042."));
    assert_non_null(strstr(e.description, "quarantined")); /* a tamper alert is a quarantine */
    assert_non_null(strstr(e.action, "release it"));
    assert_non_null(strstr(e.action, "new key"));
}

static void test_all_clear(void **state)
{
    (void)state;
    struct explain_context c;
    gas_context(&c);
    c.value = 420;
    c.rate_per_min = NAN;
    c.resolved_ms = OPENED_MS + 12 * 60000;
    c.resolved_by = "canary";
    struct explanation e;
    explain_all_clear(&c, &e);
    print("all clear", &e);
    assert_explanation(&e);
    assert_string_equal(e.title, "All clear in Kitchen: methane back to normal");
    assert_string_equal(e.short_text,
                        "All clear in Kitchen: methane back to normal (420 ppm) after 12 minutes.");
    assert_non_null(strstr(e.description, "has resolved"));
    assert_non_null(strstr(e.description, "the most extreme reading was 5,100 ppm"));
    assert_non_null(strstr(e.action, "cause"));

    c.resolved_by = "alice\n(on call)";
    explain_all_clear(&c, &e);
    assert_explanation(&e);
    assert_non_null(strstr(e.description, "was resolved by alice (on call)."));

    c.kind = ALERT_KIND_OFFLINE;
    c.metric = "device";
    explain_all_clear(&c, &e);
    assert_string_equal(e.title, "Kitchen sensor is back online");
    assert_non_null(strstr(e.action, "No action needed"));
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        double v;
        int d;
        const char *want;
    } cases[] = {
        {4800, 0, "4,800"},
        {1234567.89, 2, "1,234,568"},
        {24.13, 1, "24.1"},
        {24.0, 1, "24"},
        {0.3456, 3, "0.346"},
        {-3.25, 1, "-3.3"},
        {-0.04, 1, "0"},
        {999.6, 0, "1,000"},
        {99.96, 2, "100"},
        {12.25, 2, "12.3"},
        {7.1, 2, "7.1"},
        {0, 2, "0"},
        {1000000, 0, "1,000,000"},
        {-45210.5, 1, "-45,211"},
        {0.5, 0, "1"},
        {NAN, 2, "unknown"},
        {INFINITY, 2, "unknown"},
        {-INFINITY, 0, "unknown"},
        {1e20, 0, "1e+20"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        explain_format_number(buf, sizeof buf, cases[i].v, cases[i].d);
        if (strcmp(buf, cases[i].want) != 0)
            fail_msg("%g with %d decimals: got \"%s\", want \"%s\"", cases[i].v, cases[i].d, buf,
                     cases[i].want);
    }
    /* snprintf-like: the length it needed, cut to fit. */
    assert_int_equal(explain_format_number(buf, 4, 4800, 0), 5);
    assert_string_equal(buf, "4,8");

    static const struct {
        const char *metric;
        double v;
        const char *want;
    } values[] = {
        {"gas_ppm", 4800, "4,800 ppm"},
        {"temperature_c", 24.13, "24.1 °C"},
        {"humidity_pct", 55, "55%"},
        {"vibration_mm_s", 7.123, "7.12 mm/s"},
        {"flame", 1, "detected"},
        {"flame", 0, "none"},
        {"valve_open", 0, "closed"},
        {"relay", 1, "on"},
        {"noise_db", 85.04, "85 dB"},
        {"pressure_hpa", 1013.25, "1,013 hPa"},
        {"some_counter", 3.14159, "3.14"},
        {"gas_ppm", NAN, "unknown"},
        {NULL, 2.5, "2.5"},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        explain_format_value(buf, sizeof buf, values[i].metric, values[i].v);
        assert_string_equal(buf, values[i].want);
    }

    static const struct {
        int64_t ms;
        const char *want;
    } durations[] = {
        {0, "0 seconds"},
        {1000, "1 second"},
        {45000, "45 seconds"},
        {60000, "1 minute"},
        {180000, "3 minutes"},
        {3600000, "1 hour"},
        {7500000, "2 hours 5 minutes"},
        {3 * 86400000LL, "3 days"},
        {-5, "0 seconds"},
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        explain_format_duration(buf, sizeof buf, durations[i].ms);
        assert_string_equal(buf, durations[i].want);
    }
}

static char *repeat(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

static void test_hostile_names(void **state)
{
    (void)state;
    char *long_name = repeat("\xC3\x84", 10000); /* "Ä" x 10,000 */
    static const char *const names[] = {
        "Kitchen \"main\"\nBcc: evil@example.com\r\n",
        "\t  spaced   out  \t",
        "rtl\xE2\x80\xAE"
        "gnp.exe",                           /* U+202E RIGHT-TO-LEFT OVERRIDE */
        "zero\xE2\x80\x8Bwidth\xEF\xBB\xBF", /* U+200B, U+FEFF */
        "bad \xFF\xFE utf8 \xC3",
        "<script>alert('x')</script> & co",
        "line\xE2\x80\xA8separator\xC2\x85next", /* U+2028, U+0085 */
        "",
    };
    struct explain_context c;
    struct explanation e;
    for (size_t i = 0; i < sizeof names / sizeof names[0] + 1; i++) {
        const char *name = i < sizeof names / sizeof names[0] ? names[i] : long_name;
        for (int k = 0; k < ALERT_KIND_COUNT; k++) {
            gas_context(&c);
            c.kind = (enum alert_kind)k;
            c.device_id = name;
            c.device_name = name;
            c.location = name;
            c.gas = name;
            c.detail = name;
            c.resolved_by = name;
            explain_alert(&c, &e);
            assert_explanation(&e);
            explain_all_clear(&c, &e);
            assert_explanation(&e);
        }
    }

    gas_context(&c);
    c.location = names[0];
    explain_alert(&c, &e);
    assert_string_equal(e.title, "Gas leak suspected in Kitchen \"main\" Bcc: evil@example.com");
    c.location = names[2];
    explain_alert(&c, &e);
    assert_string_equal(e.title, "Gas leak suspected in rtlgnp.exe");
    c.location = names[4];
    explain_alert(&c, &e);
    assert_string_equal(e.title, "Gas leak suspected in bad ?? utf8 ?");
    c.location = names[6];
    explain_alert(&c, &e);
    assert_string_equal(e.title, "Gas leak suspected in line separator next");

    /* A very long place: cut to EXPLAIN_NAME_CHARS characters and an ellipsis. */
    c.location = long_name;
    explain_alert(&c, &e);
    assert_true(chars(e.title) == strlen("Gas leak suspected in ") + EXPLAIN_NAME_CHARS + 1);
    assert_non_null(strstr(e.title, "\xE2\x80\xA6"));
    assert_true(chars(e.short_text) <= EXPLAIN_SHORT_CHARS);
    print("long place", &e);

    /* HTML escapes every field; the plain text stays plain. */
    c.location = names[5];
    c.device_name = names[5];
    explain_alert(&c, &e);
    char html[8192], text[8192];
    size_t hl = explain_render_html(&e, &c, false, html, sizeof html);
    assert_true(hl < sizeof html);
    assert_null(strstr(html, "<script>"));
    assert_non_null(strstr(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"));
    size_t tl = explain_render_text(&e, &c, false, text, sizeof text);
    assert_true(tl < sizeof text);
    assert_non_null(strstr(text, "<script>alert('x')</script> & co"));
    assert_non_null(strstr(text, "What to do: Ventilate"));
    assert_true(utf8_valid(text, strlen(text), NULL));

    /* Rendering into a small buffer: cut at a character boundary, the full length returned. */
    c.location = long_name;
    explain_alert(&c, &e);
    for (size_t cap = 1; cap < 200; cap += 7) {
        char small[256];
        size_t need = explain_render_html(&e, &c, false, small, cap);
        assert_true(need >= cap);
        assert_true(strlen(small) < cap);
        assert_true(utf8_valid(small, strlen(small), NULL));
    }
    free(long_name);
}

static void test_empty_context(void **state)
{
    (void)state;
    struct explain_context c;
    explain_context_init(&c);
    struct explanation e;
    explain_alert(&c, &e);
    print("empty context", &e);
    assert_explanation(&e);
    assert_non_null(strstr(e.title, "unknown device"));
    char buf[4096];
    assert_true(explain_render_text(&e, &c, false, buf, sizeof buf) < sizeof buf);
    assert_false(has_word(buf, "nan"));
    assert_null(strstr(buf, "(null)"));
    assert_true(explain_render_html(&e, &c, true, buf, sizeof buf) < sizeof buf);
    assert_false(has_word(buf, "nan"));
    assert_null(strstr(buf, "(null)"));
}

static void test_times_and_related(void **state)
{
    (void)state;
    struct explain_context c;
    gas_context(&c);
    c.utc_offset_min = 60;
    struct explanation e;
    explain_alert(&c, &e);
    assert_non_null(strstr(e.description, "open since 23:00 UTC+01:00 (12 minutes)"));
    c.utc_offset_min = -330;
    explain_alert(&c, &e);
    assert_non_null(strstr(e.description, "open since 16:30 UTC-05:30"));
    /* Opened on another day: the date is written. */
    c.utc_offset_min = 0;
    c.now_ms = OPENED_MS + 3 * 86400000LL;
    explain_alert(&c, &e);
    assert_non_null(strstr(e.description, "open since 20 Nov 2025 22:00 UTC (3 days)"));

    /* At most EXPLAIN_MAX_RELATED related readings; unknown values and the alert's own metric
     * are left out. */
    struct explain_related many[20];
    for (int i = 0; i < 20; i++)
        many[i] = (struct explain_related){"noise_db", 50 + i};
    many[0] = (struct explain_related){"gas_ppm", 1};
    many[1] = (struct explain_related){"humidity_pct", NAN};
    gas_context(&c);
    c.related = many;
    c.n_related = 20;
    explain_alert(&c, &e);
    const char *p = strstr(e.description, "Other readings: ");
    assert_non_null(p);
    size_t quoted = 0;
    for (const char *q = p; (q = strstr(q, "noise")) != NULL; q++)
        quoted++;
    assert_int_equal(quoted, EXPLAIN_MAX_RELATED);
    assert_null(strstr(p, "gas 1"));
}

/* ---- the writer seam ---- */

static int good_writer(void *arg, const struct explain_context *ctx, bool all_clear,
                       const struct explanation *draft, struct explanation *out,
                       unsigned timeout_ms)
{
    (void)ctx;
    (void)all_clear;
    assert_int_equal(timeout_ms, 2500);
    /* The writer sees the template's draft. */
    assert_string_equal(draft->title, "Gas leak suspected in Kitchen");
    (*(int *)arg)++;
    snprintf(out->title, sizeof out->title, "Possible methane leak in the kitchen");
    snprintf(out->description, sizeof out->description, "Methane is at 4,800 ppm.");
    snprintf(out->action, sizeof out->action, "Open the windows and shut the gas valve.");
    snprintf(out->short_text, sizeof out->short_text, "Methane leak in the kitchen: ventilate.");
    return 0;
}

static int failing_writer(void *arg, const struct explain_context *ctx, bool all_clear,
                          const struct explanation *draft, struct explanation *out,
                          unsigned timeout_ms)
{
    (void)ctx;
    (void)all_clear;
    (void)draft;
    (void)timeout_ms;
    (*(int *)arg)++;
    snprintf(out->title, sizeof out->title, "half-written");
    return -1; /* timed out */
}

/* Returns "success" with text that must not be used: arg selects the flaw. */
static int bad_writer(void *arg, const struct explain_context *ctx, bool all_clear,
                      const struct explanation *draft, struct explanation *out, unsigned timeout_ms)
{
    (void)ctx;
    (void)all_clear;
    (void)timeout_ms;
    *out = *draft;
    switch (*(int *)arg) {
    case 0:
        out->title[0] = '\0';
        break; /* empty */
    case 1:
        snprintf(out->action, sizeof out->action, "line\nbreak");
        break; /* control */
    case 2:
        memset(out->short_text, 'x', 161);
        out->short_text[161] = '\0';
        break; /* long */
    case 3:
        memset(out->description, 'y', sizeof out->description);
        break; /* unterminated */
    case 4:
        snprintf(out->title, sizeof out->title, "bad \xC3(");
        break; /* invalid UTF-8 */
    }
    return 0;
}

static void test_writer_seam(void **state)
{
    (void)state;
    struct explain_context c;
    gas_context(&c);
    struct explanation template_text, e;
    explain_alert(&c, &template_text);

    int calls = 0;
    explain_with(&c, false, good_writer, &calls, 2500, &e);
    assert_int_equal(calls, 1);
    assert_int_equal(e.source, EXPLAIN_SOURCE_WRITER);
    assert_string_equal(e.title, "Possible methane leak in the kitchen");

    calls = 0;
    explain_with(&c, false, failing_writer, &calls, 2500, &e);
    assert_int_equal(calls, 1);
    assert_int_equal(e.source, EXPLAIN_SOURCE_TEMPLATE);
    assert_memory_equal(&e, &template_text, sizeof e);

    for (int flaw = 0; flaw < 5; flaw++) {
        explain_with(&c, false, bad_writer, &flaw, 2500, &e);
        assert_int_equal(e.source, EXPLAIN_SOURCE_TEMPLATE);
        assert_memory_equal(&e, &template_text, sizeof e);
    }

    /* No writer: the template; the all-clear goes through the same seam. */
    explain_with(&c, false, NULL, NULL, 0, &e);
    assert_memory_equal(&e, &template_text, sizeof e);
    struct explanation clear;
    explain_all_clear(&c, &clear);
    explain_with(&c, true, NULL, NULL, 0, &e);
    assert_memory_equal(&e, &clear, sizeof e);
}

static void test_deterministic(void **state)
{
    (void)state;
    struct explain_context c;
    gas_context(&c);
    struct explanation a, b;
    memset(&a, 0xAA, sizeof a);
    memset(&b, 0x55, sizeof b);
    explain_alert(&c, &a);
    explain_alert(&c, &b);
    assert_memory_equal(&a, &b, sizeof a); /* padding included: every byte is written */
}

static void test_from_alert(void **state)
{
    (void)state;
    struct alert a;
    memset(&a, 0, sizeof a);
    snprintf(a.device, sizeof a.device, "boiler-1");
    snprintf(a.metric, sizeof a.metric, "temperature_c");
    a.kind = ALERT_KIND_THRESHOLD;
    a.severity = SEVERITY_HIGH;
    a.value = 71.46;
    a.peak = 74;
    a.limit = 65;
    a.opened_ms = OPENED_MS;
    struct explain_context c;
    explain_context_init(&c);
    explain_context_from_alert(&c, &a);
    struct explanation e;
    explain_alert(&c, &e);
    assert_explanation(&e);
    assert_string_equal(e.title, "Temperature too high at boiler-1");
    assert_non_null(strstr(e.description, "temperature at 71.5 °C"));
    assert_non_null(strstr(e.description, "above the critical level of 65 °C"));
}

/* A gas classifier's alert (decide_gas): the texts name the class and its probability from
 * the alert's message, and give gas or fire advice. */
static void test_gas_classifier_alert(void **state)
{
    (void)state;
    struct alert a;
    memset(&a, 0, sizeof a);
    snprintf(a.device, sizeof a.device, "kitchen-1");
    snprintf(a.metric, sizeof a.metric, "model:kgas");
    a.kind = ALERT_KIND_GAS_LEAK;
    a.severity = SEVERITY_CRITICAL;
    a.value = 0.974;
    a.peak = 0.99;
    a.limit = 0.9;
    a.opened_ms = OPENED_MS;
    snprintf(a.message, sizeof a.message,
             "Possible gas leak at kitchen-1: the gas classifier kgas reads Smoke with "
             "probability 0.97 (level 0.90) for 3 readings in a row (mq2 812).");
    for (int fire = 0; fire < 2; fire++) {
        a.kind = fire ? ALERT_KIND_FIRE : ALERT_KIND_GAS_LEAK;
        struct explain_context c;
        explain_context_init(&c);
        explain_context_from_alert(&c, &a);
        struct explanation e;
        explain_alert(&c, &e);
        assert_explanation(&e);
        const char *lead = "the gas classifier kgas reads Smoke (probability 0.97)";
        assert_non_null(strstr(e.description, lead));
        assert_non_null(strstr(e.short_text, lead));
        assert_non_null(strstr(e.description, "alerts from probability 0.9"));
        assert_null(strstr(e.description, "flame detected"));
        assert_non_null(strstr(e.action, fire ? "fire brigade" : "Ventilate"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gas_leak_example), cmocka_unit_test(test_every_kind_and_family),
        cmocka_unit_test(test_kind_templates),   cmocka_unit_test(test_all_clear),
        cmocka_unit_test(test_numbers),          cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_empty_context),    cmocka_unit_test(test_times_and_related),
        cmocka_unit_test(test_writer_seam),      cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_from_alert),       cmocka_unit_test(test_gas_classifier_alert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
