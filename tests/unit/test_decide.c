/* test_decide.c — the decide stage (src/decide/decide.c): from scored readings to alerts — gas
 * leaks, thresholds, anomalies, rate, stuck sensors, fire, offline; acknowledge/resolve by a
 * person, restore at start-up, expiry. Readings go through the real detectors first, as in
 * src/pipeline/worker.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/metric.h"
#include "decide/decide.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0  1763676000000LL
#define SEC 1000LL

#define MAX_RECORDS    4096
#define DEV_MAX_SERIES 12

/* One transition handed to emit: the alert after it, and its event (none for UPDATED). */
struct record {
    struct alert a;
    struct alert_event ev;
    bool has_ev;
};

struct fixture {
    struct decide_params params;
    struct detect_params detect;
    struct decide_ctx ctx;
    uint64_t next_id; /* the next id handed out */
    struct record *rec;
    size_t n;
};

/* A device as the worker keeps it: its series, stream timing and alert machines. */
struct dev {
    const char *id;
    struct device_series series[DEV_MAX_SERIES];
    size_t n_series;
    struct gap_state gap;
    struct decide_device dd;
    uint32_t flags[DEV_MAX_SERIES]; /* flags of the last reading's values, in reading order */
};

static uint64_t next_alert_id(void *arg)
{
    struct fixture *fx = arg;
    return fx->next_id++;
}

static void on_emit(void *arg, const struct alert *a, const struct alert_event *ev)
{
    struct fixture *fx = arg;
    assert_non_null(a);
    assert_true(fx->n < MAX_RECORDS);
    /* Every transition is of an alert with an id; an event names it. */
    assert_int_not_equal(a->id, 0);
    struct record *r = &fx->rec[fx->n++];
    r->a = *a;
    r->has_ev = ev != NULL;
    if (ev != NULL) {
        assert_int_equal(ev->alert_id, a->id);
        assert_int_not_equal(ev->action, ALERT_ACTION_UPDATED);
        assert_int_not_equal(ev->action, ALERT_ACTION_NONE);
        assert_true(ev->actor[0] != '\0');
        r->ev = *ev;
    }
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->rec = calloc(MAX_RECORDS, sizeof *fx->rec);
    assert_non_null(fx->rec);
    fx->params.fsm.open_after = 3;
    fx->params.fsm.resolve_after_ms = 60 * SEC;
    fx->params.fsm.reopen_window_ms = 300 * SEC;
    fx->params.anomaly_severity = SEVERITY_LOW;
    fx->params.offline_alerts = true;
    fx->params.offline_severity = SEVERITY_MEDIUM;
    detect_params_default(&fx->detect);
    fx->next_id = 1;
    fx->ctx.params = &fx->params;
    fx->ctx.next_alert_id = next_alert_id;
    fx->ctx.id_arg = fx;
    fx->ctx.emit = on_emit;
    fx->ctx.emit_arg = fx;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    free(fx->rec);
    free(fx);
    return 0;
}

static struct dev *dev_new(const char *id)
{
    struct dev *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->id = id;
    return d;
}

static void dev_free(struct dev *d)
{
    decide_device_free(&d->dd);
    assert_null(d->dd.slots);
    assert_int_equal(d->dd.n, 0);
    free(d);
}

static struct device_series *dev_series(struct dev *d, const char *metric)
{
    for (size_t i = 0; i < d->n_series; i++) {
        if (strcmp(d->series[i].metric, metric) == 0)
            return &d->series[i];
    }
    assert_true(d->n_series < DEV_MAX_SERIES);
    struct device_series *s = &d->series[d->n_series++];
    snprintf(s->metric, sizeof s->metric, "%s", metric);
    const struct metric_info *m = metric_info_or_generic(metric);
    series_init(&s->state, m, &m->limits);
    return s;
}

/* Sends one reading of d measured at ts: (metric, value) pairs ended by NULL. Scores it like
 * the worker (gap, detect_value per value) and hands it to decide_reading; returns its code. */
static int dev_send(struct fixture *fx, struct dev *d, int64_t ts, ...)
{
    struct metric_value v[DEV_MAX_SERIES];
    uint32_t n = 0;
    va_list ap;
    va_start(ap, ts);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        assert_true(n < DEV_MAX_SERIES);
        v[n].name = name;
        v[n].value = va_arg(ap, double);
        v[n].score = 0;
        v[n].flags = 0;
        n++;
    }
    va_end(ap);
    struct reading r = {0};
    r.device = d->id;
    r.ts_ms = ts;
    r.recv_ms = ts + 50;
    r.values = v;
    r.n_values = n;
    r.has_ts = true;
    uint32_t gap = gap_update(&d->gap, &fx->detect, ts);
    for (uint32_t k = 0; k < n; k++) {
        struct device_series *s = dev_series(d, v[k].name);
        detect_value(&s->state, &fx->detect, &v[k], ts);
        v[k].flags |= gap;
        d->flags[k] = v[k].flags;
    }
    return decide_reading(&fx->ctx, &d->dd, d->id, &r, d->series, d->n_series, NULL);
}

static enum alert_action action_of(const struct record *r)
{
    return r->has_ev ? r->ev.action : ALERT_ACTION_UPDATED;
}

/* Transitions since record index `from` of alerts of `kind` with `action`. */
static size_t count_since(const struct fixture *fx, size_t from, enum alert_kind kind,
                          enum alert_action action)
{
    size_t c = 0;
    for (size_t i = from; i < fx->n; i++)
        c += fx->rec[i].a.kind == kind && action_of(&fx->rec[i]) == action;
    return c;
}

static size_t count(const struct fixture *fx, enum alert_kind kind, enum alert_action action)
{
    return count_since(fx, 0, kind, action);
}

/* Transitions with an event (anything but UPDATED) since `from`, of any kind. */
static size_t events_since(const struct fixture *fx, size_t from)
{
    size_t c = 0;
    for (size_t i = from; i < fx->n; i++)
        c += fx->rec[i].has_ev;
    return c;
}

/* The first transition of `kind` with `action`, or NULL. */
static const struct record *find(const struct fixture *fx, enum alert_kind kind,
                                 enum alert_action action)
{
    for (size_t i = 0; i < fx->n; i++) {
        if (fx->rec[i].a.kind == kind && action_of(&fx->rec[i]) == action)
            return &fx->rec[i];
    }
    return NULL;
}

static const struct record *last(const struct fixture *fx)
{
    assert_true(fx->n > 0);
    return &fx->rec[fx->n - 1];
}

#define assert_contains(hay, needle) assert_contains_at((hay), (needle), __FILE__, __LINE__)
static void assert_contains_at(const char *hay, const char *needle, const char *file, int line)
{
    if (strstr(hay, needle) == NULL) {
        print_error("\"%s\" does not contain \"%s\"\n", hay, needle);
        _fail(file, line);
    }
}

/* Deterministic noise for baselines (xorshift64*, Box-Muller). */
static double noise(uint64_t *s)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        u[i] = ((double)((*s * 2685821657736338717ULL) >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

/* ---- gas and thresholds ------------------------------------------------------------------ */

/* The most decimals any number in a message has ("505.663" -> 3). */
static int max_decimals(const char *msg)
{
    int most = 0;
    for (const char *p = msg; *p; p++) {
        if (*p == '.' && p > msg && p[-1] >= '0' && p[-1] <= '9') {
            int n = 0;
            while (p[1 + n] >= '0' && p[1 + n] <= '9')
                n++;
            most = n > most ? n : most;
        }
    }
    return most;
}

static void test_gas_critical_opens_at_once(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("kitchen-1");
    assert_int_equal(dev_send(fx, d, T0, "gas_ppm", 6000.0, NULL), CANARY_OK);
    assert_int_equal(fx->n, 1);
    const struct record *r = &fx->rec[0];
    assert_true(r->has_ev);
    assert_int_equal(r->ev.action, ALERT_ACTION_OPENED);
    assert_int_equal(r->a.kind, ALERT_KIND_GAS_LEAK);
    assert_int_equal(r->a.severity, SEVERITY_CRITICAL);
    assert_int_equal(r->ev.severity, SEVERITY_CRITICAL);
    assert_int_equal(r->a.state, ALERT_STATE_OPEN);
    assert_int_equal(r->a.id, 1);
    assert_string_equal(r->a.device, "kitchen-1");
    assert_string_equal(r->a.metric, "gas_ppm");
    assert_int_equal(r->a.opened_ms, T0);
    assert_true(r->a.value == 6000);
    assert_true(r->a.limit == 5000);
    assert_contains(r->a.message, "kitchen-1");
    assert_contains(r->a.message, "6000");
    assert_contains(r->a.message, "5000");
    assert_contains(r->a.message, "critical");
    assert_string_equal(r->ev.actor, "canary");
    assert_int_equal(r->ev.ts_ms, T0);
    assert_string_equal(r->ev.note, r->a.message);
    /* The leak goes on: still the one alert, nothing else raised. */
    for (int i = 1; i < 20; i++)
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "gas_ppm", 6000.0 + 10 * i, NULL), 0);
    assert_int_equal(events_since(fx, 0), 1);
    for (size_t i = 0; i < fx->n; i++)
        assert_int_equal(fx->rec[i].a.id, 1);
    assert_int_equal(fx->next_id, 2);
    dev_free(d);
}

static void test_gas_warn_then_escalates(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("boiler-2");
    assert_int_equal(dev_send(fx, d, T0, "gas_ppm", 1500.0, NULL), 0);
    assert_int_equal(dev_send(fx, d, T0 + SEC, "gas_ppm", 1520.0, NULL), 0);
    assert_int_equal(fx->n, 0); /* hold-off */
    assert_int_equal(dev_send(fx, d, T0 + 2 * SEC, "gas_ppm", 1510.0, NULL), 0);
    assert_int_equal(fx->n, 1);
    const struct record *r = &fx->rec[0];
    assert_int_equal(r->ev.action, ALERT_ACTION_OPENED);
    assert_int_equal(r->a.kind, ALERT_KIND_GAS_LEAK);
    assert_int_equal(r->a.severity, SEVERITY_HIGH);
    assert_true(r->a.limit == 1000);
    assert_contains(r->a.message, "boiler-2");
    assert_contains(r->a.message, "1510");
    assert_contains(r->a.message, "1000");
    uint64_t id = r->a.id;
    /* Rising past critical: the same alert escalates. */
    assert_int_equal(dev_send(fx, d, T0 + 3 * SEC, "gas_ppm", 5600.0, NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_GAS_LEAK, ALERT_ACTION_ESCALATED), 1);
    r = find(fx, ALERT_KIND_GAS_LEAK, ALERT_ACTION_ESCALATED);
    assert_int_equal(r->a.id, id);
    assert_int_equal(r->ev.alert_id, id);
    assert_int_equal(r->a.severity, SEVERITY_CRITICAL);
    assert_int_equal(r->ev.severity, SEVERITY_CRITICAL);
    assert_true(r->a.limit == 5000);
    assert_true(r->a.peak == 5600);
    assert_contains(r->a.message, "5600");
    assert_contains(r->a.message, "5000");
    assert_contains(r->a.message, "critical");
    assert_int_equal(count(fx, ALERT_KIND_GAS_LEAK, ALERT_ACTION_OPENED), 1);
    assert_int_equal(fx->next_id, id + 1);
    dev_free(d);
}

static void test_temperature_threshold_severities(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("oven-1");
    for (int i = 0; i < 3; i++)
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "temperature_c", 55.0, NULL), 0);
    assert_int_equal(fx->n, 1);
    const struct record *r = &fx->rec[0];
    assert_int_equal(r->ev.action, ALERT_ACTION_OPENED);
    assert_int_equal(r->a.kind, ALERT_KIND_THRESHOLD);
    assert_int_equal(r->a.severity, SEVERITY_MEDIUM);
    assert_string_equal(r->a.metric, "temperature_c");
    assert_true(r->a.limit == 50);
    assert_contains(r->a.message, "oven-1");
    assert_contains(r->a.message, "55");
    assert_contains(r->a.message, "50");
    uint64_t id = r->a.id;
    assert_int_equal(dev_send(fx, d, T0 + 3 * SEC, "temperature_c", 70.0, NULL), 0);
    r = last(fx);
    assert_int_equal(r->ev.action, ALERT_ACTION_ESCALATED);
    assert_int_equal(r->a.id, id);
    assert_int_equal(r->a.severity, SEVERITY_HIGH);
    assert_true(r->a.limit == 65);
    assert_contains(r->a.message, "65");
    assert_contains(r->a.message, "critical");

    /* Straight above critical: high, after the hold-off (not critical, so not at once). */
    struct dev *e = dev_new("oven-2");
    size_t from = fx->n;
    assert_int_equal(dev_send(fx, e, T0, "temperature_c", 70.0, NULL), 0);
    assert_int_equal(dev_send(fx, e, T0 + SEC, "temperature_c", 70.0, NULL), 0);
    assert_int_equal(fx->n, from);
    assert_int_equal(dev_send(fx, e, T0 + 2 * SEC, "temperature_c", 70.0, NULL), 0);
    assert_int_equal(count_since(fx, from, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED), 1);
    assert_int_equal(last(fx)->a.severity, SEVERITY_HIGH);
    assert_string_equal(last(fx)->a.device, "oven-2");
    dev_free(d);
    dev_free(e);
}

/* A gas value hovering at its warn limit (inside the hysteresis) is one alert, not hundreds. */
static void test_hovering_at_limit_one_alert(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("tank-7");
    static const double hover[] = {1004, 962, 1011, 955, 998, 1030, 970, 951};
    int64_t t = T0;
    for (int i = 0; i < 600; i++, t += SEC)
        assert_int_equal(dev_send(fx, d, t, "gas_ppm", hover[i % 8], NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_GAS_LEAK, ALERT_ACTION_OPENED), 1);
    assert_int_equal(events_since(fx, 0), 1);
    /* Clear for a minute: resolved once. */
    for (int i = 0; i < 61; i++, t += SEC)
        assert_int_equal(dev_send(fx, d, t, "gas_ppm", 400.0 + (i % 2), NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_GAS_LEAK, ALERT_ACTION_RESOLVED), 1);
    assert_int_equal(events_since(fx, 0), 2);
    dev_free(d);
}

/* ---- anomaly, rate, flat line ------------------------------------------------------------ */

/* 300 readings of noise_db around 60 dB: a calm, learned baseline. */
static int64_t noise_baseline(struct fixture *fx, struct dev *d)
{
    uint64_t s = 0x1234567ULL;
    int64_t t = T0;
    for (int i = 0; i < 300; i++, t += SEC) {
        double x = round((60.0 + 0.5 * noise(&s)) * 10.0) / 10.0;
        assert_int_equal(dev_send(fx, d, t, "noise_db", x, NULL), 0);
    }
    assert_int_equal(fx->n, 0);
    return t;
}

static void test_anomaly_within_limits(void **state)
{
    struct fixture *fx = *state;
    fx->params.anomaly_severity = SEVERITY_HIGH; /* the configured one, not a fixed one */
    struct dev *d = dev_new("press-4");
    int64_t t = noise_baseline(fx, d);
    for (int i = 0; i < 2; i++, t += SEC) {
        assert_int_equal(dev_send(fx, d, t, "noise_db", 75.0, NULL), 0);
        assert_true(d->flags[0] & FLAG_ANOMALY);
        assert_false(d->flags[0] & (FLAG_WARN | FLAG_CRITICAL));
    }
    assert_int_equal(fx->n, 0);
    assert_int_equal(dev_send(fx, d, t, "noise_db", 75.0, NULL), 0);
    assert_true(d->flags[0] & FLAG_ANOMALY);
    assert_int_equal(fx->n, 1);
    const struct record *r = &fx->rec[0];
    assert_int_equal(r->ev.action, ALERT_ACTION_OPENED);
    assert_int_equal(r->a.kind, ALERT_KIND_ANOMALY);
    assert_int_equal(r->a.severity, SEVERITY_HIGH);
    assert_string_equal(r->a.metric, "noise_db");
    assert_true(r->a.value == 75);
    assert_true(isnan(r->a.limit));
    assert_contains(r->a.message, "press-4");
    assert_contains(r->a.message, "75");
    if (max_decimals(r->a.message) > 2) /* as the sensor resolves it, not "75.0312 +/- 1.2533" */
        fail_msg("message with too many decimals: %s", r->a.message);
    assert_int_equal(count(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED), 0);
    dev_free(d);
}

static void test_anomaly_beyond_limit_is_threshold_only(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("press-5");
    int64_t t = noise_baseline(fx, d);
    for (int i = 0; i < 10; i++, t += SEC) {
        assert_int_equal(dev_send(fx, d, t, "noise_db", 95.0, NULL), 0);
        assert_true(d->flags[0] & FLAG_WARN);
        if (i == 0)
            assert_true(d->flags[0] & FLAG_ANOMALY); /* the detector did call it unusual */
    }
    assert_int_equal(count(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED), 1);
    const struct record *r = find(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED);
    assert_int_equal(r->a.severity, SEVERITY_MEDIUM);
    assert_true(r->a.limit == 85);
    for (size_t i = 0; i < fx->n; i++)
        assert_int_not_equal(fx->rec[i].a.kind, ALERT_KIND_ANOMALY);
    dev_free(d);
}

static void test_rate_alert(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("store-room");
    int first_rate = -1;
    for (int i = 0; i <= 90; i++) {
        double x = 20.0 + 15.0 * i / 60.0; /* 15 C/min, below the warn limit all along */
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "temperature_c", x, NULL), 0);
        if ((d->flags[0] & FLAG_RATE) && first_rate < 0)
            first_rate = i;
    }
    assert_true(first_rate > 0);
    assert_int_equal(count(fx, ALERT_KIND_RATE, ALERT_ACTION_OPENED), 1);
    const struct record *r = find(fx, ALERT_KIND_RATE, ALERT_ACTION_OPENED);
    assert_int_equal(r->a.severity, SEVERITY_MEDIUM);
    assert_string_equal(r->a.metric, "temperature_c");
    assert_int_equal(r->a.opened_ms, T0 + (first_rate + 2) * SEC); /* after the hold-off */
    assert_contains(r->a.message, "store-room");
    assert_contains(r->a.message, "per minute");
    assert_contains(r->a.message, "8.3");
    if (max_decimals(r->a.message) > 2)
        fail_msg("message with too many decimals: %s", r->a.message);
    assert_int_equal(count(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED), 0);
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED), 0);
    dev_free(d);
}

static void test_gas_rate_alerts_only_on_rises(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("utility-room");
    /* Gas falls 2000 ppm/min (a window opened after cooking): good news, no alert... */
    for (int i = 0; i <= 90; i++)
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "gas_ppm", 4000.0 - 2000.0 * i / 60.0, NULL),
                         0);
    assert_int_equal(count(fx, ALERT_KIND_RATE, ALERT_ACTION_OPENED), 0);
    /* ... the same speed upwards, below the warn level, is one. */
    for (int i = 91; i <= 180; i++)
        assert_int_equal(
            dev_send(fx, d, T0 + i * SEC, "gas_ppm", 1000.0 + 2000.0 * (i - 91) / 60.0 - 900, NULL),
            0);
    assert_int_equal(count(fx, ALERT_KIND_RATE, ALERT_ACTION_OPENED), 1);
    dev_free(d);
}

static void test_flatline_sensor_fault(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("mine-shaft-2");
    for (int i = 1; i <= 61; i++) {
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "gas_ppm", 412.0, NULL), 0);
        assert_int_equal(fx->n, 0);
    }
    assert_int_equal(dev_send(fx, d, T0 + 62 * SEC, "gas_ppm", 412.0, NULL), 0);
    assert_int_equal(fx->n, 1);
    const struct record *r = &fx->rec[0];
    assert_int_equal(r->ev.action, ALERT_ACTION_OPENED);
    assert_int_equal(r->a.kind, ALERT_KIND_SENSOR_FAULT);
    assert_int_equal(r->a.severity, SEVERITY_MEDIUM);
    assert_string_equal(r->a.metric, "gas_ppm");
    assert_contains(r->a.message, "mine-shaft-2");
    assert_contains(r->a.message, "412");
    assert_contains(r->a.message, "stuck");
    /* The sensor moves again: clear, and resolved a minute after the last flat value. */
    for (int i = 63; i < 63 + 60; i++)
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "gas_ppm", 400.0 + (i % 2), NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_SENSOR_FAULT, ALERT_ACTION_RESOLVED), 1);
    assert_int_equal(find(fx, ALERT_KIND_SENSOR_FAULT, ALERT_ACTION_RESOLVED)->ev.ts_ms,
                     T0 + 122 * SEC);
    dev_free(d);
}

/* ---- fire -------------------------------------------------------------------------------- */

static void test_fire_flame_and_rising_temperature(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("warehouse-9");
    int fire_at = -1;
    for (int i = 0; i <= 60; i++) {
        double temp = 20.0 + 20.0 * i / 60.0; /* 20 C/min, stays below warn */
        size_t from = fx->n;
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "flame", 1.0, "temperature_c", temp, NULL),
                         0);
        if (count_since(fx, from, ALERT_KIND_FIRE, ALERT_ACTION_OPENED) > 0) {
            fire_at = i;
            /* At once, no hold-off: the rate is over its limit on this very reading. */
            assert_true(d->flags[1] & FLAG_RATE);
            assert_true(temp < 50);
            break;
        }
        assert_false(d->flags[1] & FLAG_RATE);
    }
    assert_true(fire_at > 0);
    const struct record *r = find(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED);
    assert_string_equal(r->a.metric, ALERT_METRIC_DEVICE);
    assert_int_equal(r->a.severity, SEVERITY_CRITICAL);
    assert_int_equal(r->a.opened_ms, T0 + fire_at * SEC);
    assert_contains(r->a.message, "warehouse-9");
    assert_contains(r->a.message, "Fire");
    /* The flame itself is a threshold alert (crit 0.5, not a gas: high). */
    const struct record *fl = find(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED);
    assert_non_null(fl);
    assert_string_equal(fl->a.metric, "flame");
    assert_int_equal(fl->a.severity, SEVERITY_HIGH);
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED), 1);
    dev_free(d);
}

static void test_fire_flame_and_hot(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("kiln-1");
    assert_int_equal(dev_send(fx, d, T0, "temperature_c", 55.0, "flame", 1.0, NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED), 1); /* first reading */
    const struct record *r = find(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED);
    assert_int_equal(r->a.severity, SEVERITY_CRITICAL);
    assert_string_equal(r->a.metric, "device");
    assert_true(r->a.value == 55);
    assert_contains(r->a.message, "kiln-1");
    assert_contains(r->a.message, "55");
    /* Flame gone: fire resolves a minute later. */
    int64_t t = T0;
    for (int i = 1; i <= 60; i++)
        assert_int_equal(dev_send(fx, d, t + i * SEC, "temperature_c", 30.0, "flame", 0.0, NULL),
                         0);
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_RESOLVED), 1);
    assert_int_equal(find(fx, ALERT_KIND_FIRE, ALERT_ACTION_RESOLVED)->a.id, r->a.id);
    dev_free(d);
}

static void test_flame_alone_no_fire(void **state)
{
    struct fixture *fx = *state;
    /* A flame sensor with no temperature sensor on the device. */
    struct dev *d = dev_new("hall-1");
    for (int i = 0; i < 10; i++)
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "flame", 1.0, NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED), 1);
    const struct record *r = find(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED);
    assert_string_equal(r->a.metric, "flame");
    assert_int_equal(r->a.severity, SEVERITY_HIGH);
    assert_int_equal(r->a.opened_ms, T0 + 2 * SEC);
    assert_true(r->a.limit == 0.5);
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED), 0);

    /* Flame with a cool, steady temperature: no fire either. */
    struct dev *e = dev_new("hall-2");
    for (int i = 0; i < 180; i++)
        assert_int_equal(dev_send(fx, e, T0 + i * SEC, "flame", 1.0, "temperature_c",
                                  22.0 + 0.1 * (i % 2), NULL),
                         0);
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED), 0);
    dev_free(d);
    dev_free(e);
}

static void test_rising_without_flame_no_fire(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("attic-3");
    for (int i = 0; i <= 80; i++) {
        double temp = 20.0 + 20.0 * i / 60.0;
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "flame", 0.0, "temperature_c", temp, NULL),
                         0);
    }
    assert_int_equal(count(fx, ALERT_KIND_RATE, ALERT_ACTION_OPENED), 1);
    assert_string_equal(find(fx, ALERT_KIND_RATE, ALERT_ACTION_OPENED)->a.metric, "temperature_c");
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED), 0);
    dev_free(d);
}

static void test_fire_stale_temperature(void **state)
{
    struct fixture *fx = *state;
    /* Hot temperature 200 s before the flame: too old to count. */
    struct dev *d = dev_new("loft-1");
    assert_int_equal(dev_send(fx, d, T0, "temperature_c", 55.0, NULL), 0);
    assert_int_equal(dev_send(fx, d, T0 + 200 * SEC, "flame", 1.0, NULL), 0);
    assert_int_equal(dev_send(fx, d, T0 + 201 * SEC, "flame", 1.0, NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED), 0);
    /* 100 s before: it counts. */
    struct dev *e = dev_new("loft-2");
    assert_int_equal(dev_send(fx, e, T0, "temperature_c", 55.0, NULL), 0);
    assert_int_equal(dev_send(fx, e, T0 + 100 * SEC, "flame", 1.0, NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED), 1);
    assert_string_equal(find(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED)->a.device, "loft-2");
    dev_free(d);
    dev_free(e);
}

/* ---- offline ----------------------------------------------------------------------------- */

static void test_offline(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("remote-8");
    assert_int_equal(dev_send(fx, d, T0, "temperature_c", 21.0, NULL), 0);
    assert_int_equal(fx->n, 0);
    assert_int_equal(decide_offline(&fx->ctx, &d->dd, d->id, true, T0 + 50, T0 + 600 * SEC), 0);
    assert_int_equal(fx->n, 1);
    const struct record *r = &fx->rec[0];
    assert_int_equal(r->ev.action, ALERT_ACTION_OPENED);
    assert_int_equal(r->a.kind, ALERT_KIND_OFFLINE);
    assert_int_equal(r->a.severity, SEVERITY_MEDIUM);
    assert_string_equal(r->a.metric, ALERT_METRIC_DEVICE);
    assert_string_equal(r->a.device, "remote-8");
    assert_int_equal(r->a.opened_ms, T0 + 600 * SEC);
    assert_contains(r->a.message, "remote-8");
    assert_contains(r->a.message, "offline");
    uint64_t id = r->a.id;
    /* Still offline on the next tick: nothing new. */
    assert_int_equal(decide_offline(&fx->ctx, &d->dd, d->id, true, T0 + 50, T0 + 601 * SEC), 0);
    assert_int_equal(events_since(fx, 0), 1);
    /* The next reading resolves it. */
    assert_int_equal(dev_send(fx, d, T0 + 700 * SEC, "temperature_c", 21.0, NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_OFFLINE, ALERT_ACTION_RESOLVED), 1);
    r = last(fx);
    assert_int_equal(r->ev.action, ALERT_ACTION_RESOLVED);
    assert_int_equal(r->a.id, id);
    assert_string_equal(r->a.resolved_by, "canary");
    assert_int_equal(r->a.state, ALERT_STATE_RESOLVED);
    /* Offline again soon after: the same alert re-opens, at once. */
    assert_int_equal(
        decide_offline(&fx->ctx, &d->dd, d->id, true, T0 + 700 * SEC + 50, T0 + 800 * SEC), 0);
    r = last(fx);
    assert_int_equal(r->ev.action, ALERT_ACTION_REOPENED);
    assert_int_equal(r->a.id, id);
    assert_int_equal(events_since(fx, 0), 3);
    dev_free(d);
}

static void test_offline_severity_and_disabled(void **state)
{
    struct fixture *fx = *state;
    fx->params.offline_severity = SEVERITY_HIGH;
    struct dev *d = dev_new("remote-9");
    assert_int_equal(decide_offline(&fx->ctx, &d->dd, d->id, true, T0, T0 + 600 * SEC), 0);
    assert_int_equal(fx->n, 1);
    assert_int_equal(fx->rec[0].a.severity, SEVERITY_HIGH);

    fx->params.offline_alerts = false;
    struct dev *e = dev_new("remote-10");
    assert_int_equal(decide_offline(&fx->ctx, &e->dd, e->id, true, T0, T0 + 600 * SEC), 0);
    assert_int_equal(dev_send(fx, e, T0 + 700 * SEC, "temperature_c", 21.0, NULL), 0);
    assert_int_equal(fx->n, 1);
    assert_int_equal(e->dd.n, 0); /* no machine kept for nothing */
    /* An offline alert opened before they were switched off still resolves. */
    assert_int_equal(dev_send(fx, d, T0 + 700 * SEC, "temperature_c", 21.0, NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_OFFLINE, ALERT_ACTION_RESOLVED), 1);
    dev_free(d);
    dev_free(e);
}

/* ---- people ------------------------------------------------------------------------------ */

static void test_acknowledge_and_resolve(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("lab-1");
    struct dev *other = dev_new("lab-2");
    assert_int_equal(dev_send(fx, d, T0, "gas_ppm", 6000.0, NULL), 0);
    uint64_t id = fx->rec[0].a.id;
    size_t n = fx->n;

    assert_int_equal(decide_acknowledge(&fx->ctx, &d->dd, id + 100, "alice", "x", T0 + SEC),
                     CANARY_ENOTFOUND);
    assert_int_equal(decide_acknowledge(&fx->ctx, &other->dd, id, "alice", "x", T0 + SEC),
                     CANARY_ENOTFOUND); /* another device's alert */
    assert_int_equal(decide_resolve(&fx->ctx, &d->dd, id + 100, "alice", "x", T0 + SEC),
                     CANARY_ENOTFOUND);
    assert_int_equal(fx->n, n);

    assert_int_equal(decide_acknowledge(&fx->ctx, &d->dd, id, "alice", "on my way", T0 + 5 * SEC),
                     0);
    assert_int_equal(fx->n, n + 1);
    const struct record *r = last(fx);
    assert_int_equal(r->ev.action, ALERT_ACTION_ACKNOWLEDGED);
    assert_int_equal(r->ev.alert_id, id);
    assert_string_equal(r->ev.actor, "alice");
    assert_string_equal(r->ev.note, "on my way");
    assert_int_equal(r->ev.ts_ms, T0 + 5 * SEC);
    assert_int_equal(r->a.state, ALERT_STATE_ACKNOWLEDGED);
    assert_string_equal(r->a.acknowledged_by, "alice");
    assert_int_equal(r->a.acknowledged_ms, T0 + 5 * SEC);
    /* Twice: conflict, no event. */
    assert_int_equal(decide_acknowledge(&fx->ctx, &d->dd, id, "bob", NULL, T0 + 6 * SEC),
                     CANARY_ECONFLICT);
    assert_int_equal(fx->n, n + 1);

    assert_int_equal(decide_resolve(&fx->ctx, &d->dd, id, "bob", "valve closed", T0 + 9 * SEC), 0);
    r = last(fx);
    assert_int_equal(r->ev.action, ALERT_ACTION_RESOLVED);
    assert_string_equal(r->ev.actor, "bob");
    assert_string_equal(r->ev.note, "valve closed");
    assert_int_equal(r->ev.ts_ms, T0 + 9 * SEC);
    assert_int_equal(r->a.state, ALERT_STATE_RESOLVED);
    assert_string_equal(r->a.resolved_by, "bob");
    assert_int_equal(r->a.resolved_ms, T0 + 9 * SEC);
    assert_int_equal(decide_resolve(&fx->ctx, &d->dd, id, "bob", NULL, T0 + 10 * SEC),
                     CANARY_ECONFLICT);
    assert_int_equal(decide_acknowledge(&fx->ctx, &d->dd, id, "bob", NULL, T0 + 10 * SEC),
                     CANARY_ECONFLICT);
    assert_int_equal(fx->n, n + 2);

    /* The leak is still there: the same alert re-opens at once (critical). */
    assert_int_equal(dev_send(fx, d, T0 + 11 * SEC, "gas_ppm", 6100.0, NULL), 0);
    r = last(fx);
    assert_int_equal(r->ev.action, ALERT_ACTION_REOPENED);
    assert_int_equal(r->a.id, id);
    assert_int_equal(r->a.state, ALERT_STATE_OPEN);
    /* Anonymous, without comment. */
    assert_int_equal(decide_resolve(&fx->ctx, &d->dd, id, "", NULL, T0 + 12 * SEC), 0);
    r = last(fx);
    assert_string_equal(r->ev.actor, "anonymous");
    assert_string_equal(r->ev.note, "");
    assert_string_equal(r->a.resolved_by, "anonymous");
    assert_int_equal(fx->next_id, id + 1);
    dev_free(d);
    dev_free(other);
}

/* ---- restore, expire, memory ------------------------------------------------------------- */

static struct alert stored_alert(const char *device, uint64_t id, enum alert_state st)
{
    struct alert a;
    memset(&a, 0, sizeof a);
    a.id = id;
    snprintf(a.device, sizeof a.device, "%s", device);
    snprintf(a.metric, sizeof a.metric, "%s", "gas_ppm");
    a.kind = ALERT_KIND_GAS_LEAK;
    a.severity = SEVERITY_HIGH;
    a.state = st;
    a.opened_ms = T0 - 3600 * SEC;
    a.updated_ms = T0 - 60 * SEC;
    a.value = 1500;
    a.peak = 1800;
    a.limit = 1000;
    snprintf(a.message, sizeof a.message, "%s", "Gas leak suspected (restored).");
    return a;
}

static void test_restore_open_alert(void **state)
{
    struct fixture *fx = *state;
    fx->next_id = 1000;
    struct dev *d = dev_new("plant-5");
    struct alert a = stored_alert("plant-5", 77, ALERT_STATE_OPEN);
    assert_int_equal(decide_restore(&d->dd, &a, T0), 0);
    /* Clear readings: resolved only after resolve_after of them, never because of the restart. */
    for (int i = 1; i < 60; i++) {
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "gas_ppm", 400.0 + (i % 2), NULL), 0);
        assert_int_equal(events_since(fx, 0), 0);
    }
    assert_int_equal(dev_send(fx, d, T0 + 60 * SEC, "gas_ppm", 401.0, NULL), 0);
    assert_int_equal(events_since(fx, 0), 1);
    const struct record *r = last(fx);
    assert_int_equal(r->ev.action, ALERT_ACTION_RESOLVED);
    assert_int_equal(r->a.id, 77);
    assert_int_equal(r->a.opened_ms, T0 - 3600 * SEC);
    assert_string_equal(r->a.resolved_by, "canary");
    assert_int_equal(fx->next_id, 1000); /* no new alert */

    /* A restored acknowledged alert: acknowledging is a conflict, resolving works by id. */
    struct dev *e = dev_new("plant-6");
    struct alert b = stored_alert("plant-6", 78, ALERT_STATE_ACKNOWLEDGED);
    snprintf(b.acknowledged_by, sizeof b.acknowledged_by, "%s", "alice");
    b.acknowledged_ms = T0 - 30 * SEC;
    assert_int_equal(decide_restore(&e->dd, &b, T0), 0);
    assert_int_equal(decide_acknowledge(&fx->ctx, &e->dd, 78, "bob", NULL, T0 + SEC),
                     CANARY_ECONFLICT);
    /* The condition persists: the restored alert goes on (no new id, no second alert). */
    assert_int_equal(dev_send(fx, e, T0 + 2 * SEC, "gas_ppm", 1500.0, NULL), 0);
    assert_int_equal(dev_send(fx, e, T0 + 3 * SEC, "gas_ppm", 1500.0, NULL), 0);
    assert_int_equal(dev_send(fx, e, T0 + 4 * SEC, "gas_ppm", 1500.0, NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_GAS_LEAK, ALERT_ACTION_OPENED), 0);
    assert_int_equal(fx->next_id, 1000);
    assert_int_equal(decide_resolve(&fx->ctx, &e->dd, 78, "bob", "checked", T0 + 5 * SEC), 0);
    assert_int_equal(last(fx)->a.id, 78);
    assert_string_equal(last(fx)->ev.actor, "bob");
    dev_free(d);
    dev_free(e);
}

static void test_restore_resolved_reopens(void **state)
{
    struct fixture *fx = *state;
    fx->next_id = 500;
    struct dev *d = dev_new("plant-7");
    struct alert a = stored_alert("plant-7", 91, ALERT_STATE_RESOLVED);
    a.resolved_ms = T0 - 100 * SEC;
    snprintf(a.resolved_by, sizeof a.resolved_by, "%s", "canary");
    assert_int_equal(decide_restore(&d->dd, &a, T0), 0);
    assert_int_equal(dev_send(fx, d, T0, "gas_ppm", 6000.0, NULL), 0);
    assert_int_equal(fx->n, 1);
    assert_int_equal(fx->rec[0].ev.action, ALERT_ACTION_REOPENED);
    assert_int_equal(fx->rec[0].a.id, 91);
    assert_int_equal(fx->rec[0].a.severity, SEVERITY_CRITICAL);
    assert_int_equal(fx->next_id, 500);

    /* Resolved longer ago than the window: a new alert. */
    struct dev *e = dev_new("plant-8");
    struct alert b = stored_alert("plant-8", 92, ALERT_STATE_RESOLVED);
    b.resolved_ms = T0 - 400 * SEC;
    assert_int_equal(decide_restore(&e->dd, &b, T0), 0);
    assert_int_equal(dev_send(fx, e, T0, "gas_ppm", 6000.0, NULL), 0);
    assert_int_equal(last(fx)->ev.action, ALERT_ACTION_OPENED);
    assert_int_equal(last(fx)->a.id, 500);
    dev_free(d);
    dev_free(e);
}

static void test_expire(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("site-1");
    /* noise_db: a threshold without a rate limit, so the alert is the device's only machine. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "noise_db", 110.0, NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED), 1);
    uint64_t id = fx->rec[0].a.id;
    for (int i = 3; i <= 62; i++)
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "noise_db", 60.0 + 0.1 * (i % 2), NULL), 0);
    assert_int_equal(count(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_RESOLVED), 1);
    int64_t resolved = T0 + 62 * SEC;
    assert_int_equal(last(fx)->ev.ts_ms, resolved);
    assert_int_equal(d->dd.n, 1);
    decide_expire(&fx->ctx, &d->dd, resolved + 300 * SEC);
    assert_int_equal(d->dd.n, 1); /* may still re-open */
    decide_expire(&fx->ctx, &d->dd, resolved + 300 * SEC + 1);
    assert_int_equal(d->dd.n, 0);
    assert_int_equal(decide_resolve(&fx->ctx, &d->dd, id, "bob", NULL, resolved), CANARY_ENOTFOUND);

    /* An open alert is never dropped, however old; a pending condition neither. */
    struct dev *e = dev_new("site-2");
    assert_int_equal(dev_send(fx, e, T0, "gas_ppm", 6000.0, NULL), 0);
    assert_int_equal(dev_send(fx, e, T0, "temperature_c", 55.0, NULL), 0);
    uint64_t open_id = last(fx)->a.id; /* the gas alert; the temperature one is pending */
    assert_int_equal(e->dd.n, 2);
    decide_expire(&fx->ctx, &e->dd, T0 + 30 * 86400 * SEC);
    assert_int_equal(e->dd.n, 2);
    assert_int_equal(decide_acknowledge(&fx->ctx, &e->dd, open_id, "alice", NULL, T0 + SEC), 0);
    dev_free(d);
    dev_free(e);
}

/* Many alerts on one device: the machine array grows and every alert stays addressable. */
static void test_many_alerts_one_device(void **state)
{
    struct fixture *fx = *state;
    struct dev *d = dev_new("refinery-1");
    for (int i = 0; i < 3; i++)
        assert_int_equal(dev_send(fx, d, T0 + i * SEC, "gas_ppm", 6000.0, "co_ppm", 200.0,
                                  "smoke_ppm", 2000.0, "temperature_c", 70.0, "humidity_pct", 95.0,
                                  "noise_db", 110.0, "vibration_mm_s", 12.0, "flame", 1.0, NULL),
                         0);
    /* gas, co, smoke (critical, at once), temperature, humidity, noise, vibration, flame
     * (after the hold-off), and fire. */
    assert_int_equal(count(fx, ALERT_KIND_GAS_LEAK, ALERT_ACTION_OPENED), 3);
    assert_int_equal(count(fx, ALERT_KIND_THRESHOLD, ALERT_ACTION_OPENED), 5);
    assert_int_equal(count(fx, ALERT_KIND_FIRE, ALERT_ACTION_OPENED), 1);
    assert_int_equal(events_since(fx, 0), 9);
    assert_true(d->dd.n >= 9);
    assert_true(d->dd.cap >= d->dd.n);
    assert_int_equal(fx->n, 9);
    size_t opened = fx->n; /* acknowledging adds records */
    for (size_t i = 0; i < opened; i++) {
        assert_int_equal(fx->rec[i].a.id, i + 1); /* distinct ids, in order */
        assert_int_equal(
            decide_acknowledge(&fx->ctx, &d->dd, fx->rec[i].a.id, "ops", NULL, T0 + 10 * SEC), 0);
    }
    dev_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gas_critical_opens_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gas_warn_then_escalates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_temperature_threshold_severities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hovering_at_limit_one_alert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anomaly_within_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anomaly_beyond_limit_is_threshold_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rate_alert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gas_rate_alerts_only_on_rises, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flatline_sensor_fault, setup, teardown),

        cmocka_unit_test_setup_teardown(test_fire_flame_and_rising_temperature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fire_flame_and_hot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flame_alone_no_fire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rising_without_flame_no_fire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fire_stale_temperature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_severity_and_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acknowledge_and_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_open_alert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_resolved_reopens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_alerts_one_device, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
