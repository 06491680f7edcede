/* test_attack_transform.c — the compromised-device attacks of `canary attack device`
 * (src/cli/attack_transform.c) on real simulated readings (sim_fleet.h): every kind changes
 * exactly the intended readings of the intended window and metric, as a sensor could send
 * them (resolution, plausible range); the window's boundaries; the ground truth's first and
 * last seq and ts; and bad parameters refused with a message naming the option. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli/attack_transform.h"
#include "core/error.h"
#include "core/metric.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLOCK_START_MS 1795000000000LL /* the simulated clock's start */
#define SEQ0           1000000ULL
#define N_READINGS     240 /* one a second */
#define WIN_START_S    100
#define WIN_LEN_S      60

/* A clean stream of one device and the same stream after the attack. */
struct streams {
    struct sim_reading clean[N_READINGS];
    struct sim_reading attacked[N_READINGS];
    bool counted[N_READINGS]; /* attack_apply() said attacked */
    struct attack_state st;
};

static void make_fleet(struct sim_fleet *f)
{
    struct sim_fleet_config cfg = {.seed = 7, .n_devices = 12, .prefix = "t"};
    char err[256];
    int rc = sim_fleet_init(f, &cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("sim_fleet_init: %s", err);
}

/* Index of a device of the fleet with (want_gas) or without a gas sensor. */
static unsigned device_with_gas(const struct sim_fleet *f, bool want_gas)
{
    for (unsigned d = 0; d < f->n_devices; d++) {
        if (sim_fleet_has_metric(f, d, "gas_ppm") == want_gas)
            return d;
    }
    fail_msg("no device %s gas", want_gas ? "with" : "without");
    return 0;
}

static void spec_of(struct attack_spec *spec, const char *kind, const char *device)
{
    char err[256];
    attack_spec_defaults(spec);
    assert_int_equal(attack_spec_set(spec, "--kind", kind, err, sizeof err), 0);
    assert_int_equal(attack_spec_set(spec, "--device", device, err, sizeof err), 0);
    assert_int_equal(attack_spec_set(spec, "--start", "100", err, sizeof err), 0);
    assert_int_equal(attack_spec_set(spec, "--duration", "60", err, sizeof err), 0);
}

/* Runs device d of a fresh fleet through the attack, at 1 reading/s from the clock start. */
static struct streams *run_attack(const struct attack_spec *spec, bool gas)
{
    struct streams *s = calloc(1, sizeof *s);
    assert_non_null(s);
    struct sim_fleet f;
    make_fleet(&f);
    unsigned d = device_with_gas(&f, gas);
    char err[256] = "";
    int rc = attack_state_init(&s->st, spec, gas, CLOCK_START_MS, err, sizeof err);
    if (rc != 0)
        fail_msg("attack_state_init: %s", err);
    for (unsigned i = 0; i < N_READINGS; i++) {
        sim_fleet_reading(&f, d, CLOCK_START_MS + 1000LL * i, &s->clean[i]);
        s->attacked[i] = s->clean[i];
        s->counted[i] = attack_apply(&s->st, &s->attacked[i], SEQ0 + i);
    }
    sim_fleet_free(&f);
    return s;
}

static void streams_free(struct streams *s)
{
    attack_state_free(&s->st);
    free(s);
}

static bool in_window(unsigned i)
{
    return i >= WIN_START_S && i < WIN_START_S + WIN_LEN_S;
}

static bool on_grid(const struct sim_value *v)
{
    double step = pow(10.0, -(double)v->decimals);
    double k = v->value / step;
    const struct metric_info *mi = metric_info_or_generic(v->metric);
    return fabs(k - round(k)) < 1e-6 && v->value >= mi->min && v->value <= mi->max;
}

/* Every reading outside the window is untouched; inside it only `metric` ("" = any) may
 * change, on the sensor's grid. Returns how many values changed. */
static unsigned check_only_window(const struct streams *s, const char *metric)
{
    unsigned changed = 0;
    for (unsigned i = 0; i < N_READINGS; i++) {
        const struct sim_reading *c = &s->clean[i], *a = &s->attacked[i];
        assert_int_equal(a->n_values, c->n_values);
        assert_int_equal(a->ts_ms, c->ts_ms);
        if (!in_window(i))
            assert_false(s->counted[i]);
        for (unsigned k = 0; k < c->n_values; k++) {
            assert_string_equal(a->values[k].metric, c->values[k].metric);
            assert_true(on_grid(&a->values[k]));
            if (a->values[k].value == c->values[k].value)
                continue;
            changed++;
            if (!in_window(i))
                fail_msg("reading %u (outside the window) changed %s", i, c->values[k].metric);
            if (metric[0] != '\0' && strcmp(c->values[k].metric, metric) != 0)
                fail_msg("reading %u: %s changed, only %s should", i, c->values[k].metric, metric);
        }
    }
    return changed;
}

static double value_of(const struct sim_reading *r, const char *metric)
{
    for (unsigned k = 0; k < r->n_values; k++) {
        if (strcmp(r->values[k].metric, metric) == 0)
            return r->values[k].value;
    }
    fail_msg("no %s in the reading", metric);
    return NAN;
}

static void check_truth_whole_window(const struct streams *s)
{
    const struct attack_truth *t = &s->st.truth;
    assert_true(t->any);
    assert_int_equal(t->first_seq, SEQ0 + WIN_START_S);
    assert_int_equal(t->last_seq, SEQ0 + WIN_START_S + WIN_LEN_S - 1);
    assert_int_equal(t->first_ts_ms, CLOCK_START_MS + 1000LL * WIN_START_S);
    assert_int_equal(t->last_ts_ms, CLOCK_START_MS + 1000LL * (WIN_START_S + WIN_LEN_S - 1));
    assert_int_equal(t->readings, WIN_LEN_S);
    for (unsigned i = WIN_START_S; i < WIN_START_S + WIN_LEN_S; i++)
        assert_true(s->counted[i]);
}

static void spike_changes_every_fifth_reading_only(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "spike", "t-0001");
    struct streams *s = run_attack(&spec, true);
    assert_string_equal(s->st.metric, "gas_ppm");
    assert_int_equal(check_only_window(s, "gas_ppm"), WIN_LEN_S / ATTACK_SPIKE_EVERY);
    for (unsigned i = WIN_START_S; i < WIN_START_S + WIN_LEN_S; i++) {
        bool spike = (i - WIN_START_S) % ATTACK_SPIKE_EVERY == 0;
        assert_int_equal(s->counted[i], spike);
        double diff = value_of(&s->attacked[i], "gas_ppm") - value_of(&s->clean[i], "gas_ppm");
        assert_true(spike ? diff == 3000 : diff == 0);
    }
    const struct attack_truth *t = &s->st.truth;
    assert_int_equal(t->first_seq, SEQ0 + WIN_START_S);
    assert_int_equal(t->last_seq, SEQ0 + WIN_START_S + WIN_LEN_S - ATTACK_SPIKE_EVERY);
    assert_int_equal(t->readings, WIN_LEN_S / ATTACK_SPIKE_EVERY);
    assert_int_equal(t->window_readings, WIN_LEN_S);
    streams_free(s);
}

static void spike_every_and_metric_options(void **state)
{
    (void)state;
    struct attack_spec spec;
    char err[256];
    spec_of(&spec, "spike", "t-0001");
    assert_int_equal(attack_spec_set(&spec, "--every", "20", err, sizeof err), 0);
    assert_int_equal(attack_spec_set(&spec, "--metric", "humidity_pct", err, sizeof err), 0);
    assert_int_equal(attack_spec_set(&spec, "--magnitude", "-25", err, sizeof err), 0);
    struct streams *s = run_attack(&spec, true);
    assert_int_equal(check_only_window(s, "humidity_pct"), 3);
    double diff = value_of(&s->attacked[WIN_START_S + 20], "humidity_pct") -
                  value_of(&s->clean[WIN_START_S + 20], "humidity_pct");
    assert_true(fabs(diff + 25) < 1e-9);
    streams_free(s);
}

static void bias_adds_the_magnitude_in_the_window(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "bias", "t-0001");
    struct streams *s = run_attack(&spec, true);
    assert_int_equal(check_only_window(s, "gas_ppm"), WIN_LEN_S);
    for (unsigned i = WIN_START_S; i < WIN_START_S + WIN_LEN_S; i++)
        assert_true(value_of(&s->attacked[i], "gas_ppm") - value_of(&s->clean[i], "gas_ppm") ==
                    300);
    check_truth_whole_window(s);
    streams_free(s);
}

static void scale_multiplies_on_the_sensor_grid(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "scale", "t-0001");
    struct streams *s = run_attack(&spec, false);
    assert_string_equal(s->st.metric, "temperature_c");
    check_only_window(s, "temperature_c");
    for (unsigned i = WIN_START_S; i < WIN_START_S + WIN_LEN_S; i++) {
        double c = value_of(&s->clean[i], "temperature_c");
        double a = value_of(&s->attacked[i], "temperature_c");
        assert_true(fabs(a - c * 1.5) <= 0.5 + 1e-9); /* rounded to at most a whole degree */
    }
    check_truth_whole_window(s);
    streams_free(s);
}

static void ramp_drifts_linearly_to_the_magnitude(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "ramp", "t-0001");
    struct streams *s = run_attack(&spec, true);
    check_only_window(s, "gas_ppm");
    for (unsigned i = WIN_START_S; i < WIN_START_S + WIN_LEN_S; i++) {
        double want = 1500.0 * (i - WIN_START_S) / WIN_LEN_S;
        double diff = value_of(&s->attacked[i], "gas_ppm") - value_of(&s->clean[i], "gas_ppm");
        assert_true(fabs(diff - want) <= 0.5 + 1e-9);
    }
    check_truth_whole_window(s);
    streams_free(s);
}

static void freeze_repeats_the_last_value_before_the_window(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "freeze", "t-0001");
    struct streams *s = run_attack(&spec, true);
    assert_true(check_only_window(s, "gas_ppm") > WIN_LEN_S / 2);
    double frozen = value_of(&s->clean[WIN_START_S - 1], "gas_ppm");
    for (unsigned i = WIN_START_S; i < WIN_START_S + WIN_LEN_S; i++)
        assert_true(value_of(&s->attacked[i], "gas_ppm") == frozen);
    check_truth_whole_window(s);
    streams_free(s);
}

static void noise_replaces_the_signal(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "noise", "t-0001");
    struct streams *s = run_attack(&spec, true);
    assert_true(check_only_window(s, "gas_ppm") > WIN_LEN_S * 9 / 10);
    /* around the last value before the window, with the default sigma of 150 ppm */
    double base = value_of(&s->clean[WIN_START_S - 1], "gas_ppm"), sum = 0, sq = 0;
    for (unsigned i = WIN_START_S; i < WIN_START_S + WIN_LEN_S; i++) {
        double x = value_of(&s->attacked[i], "gas_ppm") - base;
        sum += x;
        sq += x * x;
    }
    double mean = sum / WIN_LEN_S, sd = sqrt(sq / WIN_LEN_S - mean * mean);
    assert_true(fabs(mean) < 80);
    assert_true(sd > 100 && sd < 210);
    check_truth_whole_window(s);
    /* the same seed gives the same noise; another seed other noise */
    struct streams *again = run_attack(&spec, true);
    assert_memory_equal(again->attacked, s->attacked, sizeof s->attacked);
    char err[256];
    assert_int_equal(attack_spec_set(&spec, "--attack-seed", "2", err, sizeof err), 0);
    struct streams *other = run_attack(&spec, true);
    assert_memory_not_equal(other->attacked, s->attacked, sizeof s->attacked);
    streams_free(again);
    streams_free(other);
    streams_free(s);
}

static void replay_sends_the_earlier_window_again(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "replay", "t-0001");
    struct streams *s = run_attack(&spec, true);
    assert_string_equal(s->st.metric, "");
    check_only_window(s, "");
    /* every metric of reading 100 + i is what reading 40 + i said */
    for (unsigned i = 0; i < WIN_LEN_S; i++) {
        const struct sim_reading *a = &s->attacked[WIN_START_S + i];
        const struct sim_reading *src = &s->clean[WIN_START_S - WIN_LEN_S + i];
        for (unsigned k = 0; k < a->n_values; k++)
            assert_true(a->values[k].value == src->values[k].value);
        assert_int_equal(a->ts_ms, CLOCK_START_MS + 1000LL * (WIN_START_S + i));
    }
    check_truth_whole_window(s);
    streams_free(s);
}

static void replay_loops_a_shorter_source_and_can_name_a_metric(void **state)
{
    (void)state;
    struct attack_spec spec;
    char err[256];
    spec_of(&spec, "replay", "t-0001");
    assert_int_equal(attack_spec_set(&spec, "--replay-from", "20", err, sizeof err), 0);
    assert_int_equal(attack_spec_set(&spec, "--metric", "gas_ppm", err, sizeof err), 0);
    struct streams *s = run_attack(&spec, true);
    check_only_window(s, "gas_ppm");
    for (unsigned i = 0; i < WIN_LEN_S; i++) {
        double a = value_of(&s->attacked[WIN_START_S + i], "gas_ppm");
        double src = value_of(&s->clean[WIN_START_S - 20 + i % 20], "gas_ppm");
        assert_true(a == src);
    }
    streams_free(s);
}

static void fake_leak_rises_towards_the_magnitude(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "fake-leak", "t-0001");
    struct streams *s = run_attack(&spec, true);
    assert_int_equal(check_only_window(s, "gas_ppm"), WIN_LEN_S);
    double prev = 0;
    for (unsigned i = WIN_START_S; i < WIN_START_S + WIN_LEN_S; i++) {
        double g = value_of(&s->attacked[i], "gas_ppm");
        if (i >= WIN_START_S + 10)
            assert_true(g > prev * 0.9); /* rising, up to the noise */
        prev = g;
    }
    double last = value_of(&s->attacked[WIN_START_S + WIN_LEN_S - 1], "gas_ppm");
    assert_true(last > 7000 && last < 9500);
    assert_true(value_of(&s->attacked[WIN_START_S], "gas_ppm") > 600); /* moves at once */
    check_truth_whole_window(s);
    streams_free(s);
}

/* The truth's first observable reading: the first attacked one with a value more than one
 * sensor step away from what the device would have sent. A bias is observable at once, a
 * ramp once it has moved more than a step, a freeze on a whole-degree sensor only when the
 * sensor would have sent a value two degrees away. */
static void truth_marks_the_first_observable_change(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "bias", "t-0001");
    struct streams *s = run_attack(&spec, true);
    assert_true(s->st.truth.observable);
    assert_int_equal(s->st.truth.first_observable_seq, s->st.truth.first_seq);
    assert_int_equal(s->st.truth.first_observable_ts_ms, s->st.truth.first_ts_ms);
    streams_free(s);

    spec_of(&spec, "ramp", "t-0001"); /* 1500 ppm over 60 readings: 0, 25, 50, ... */
    s = run_attack(&spec, true);
    assert_true(s->st.truth.observable);
    assert_int_equal(s->st.truth.first_observable_seq, SEQ0 + WIN_START_S + 1);
    assert_int_equal(s->st.truth.first_observable_ts_ms,
                     CLOCK_START_MS + 1000LL * (WIN_START_S + 1));
    streams_free(s);

    struct attack_state st;
    char err[256];
    spec_of(&spec, "freeze", "t-0001");
    assert_int_equal(attack_state_init(&st, &spec, false, CLOCK_START_MS, err, sizeof err), 0);
    struct sim_reading r = {.ts_ms = CLOCK_START_MS + 99000, .n_values = 1};
    r.values[0] = (struct sim_value){"temperature_c", 22, 0};
    assert_false(attack_apply(&st, &r, 1)); /* the last value before the window: 22 */
    const double would[] = {22, 23, 21, 22, 24, 23};
    for (unsigned i = 0; i < 6; i++) {
        r.ts_ms = CLOCK_START_MS + 100000 + 1000LL * i;
        r.values[0].value = would[i];
        assert_true(attack_apply(&st, &r, 2 + i));
        assert_true(r.values[0].value == 22);
        /* 23 and 21 are one step away: no more than the sensor's own noise */
        assert_int_equal(st.truth.observable, i >= 4);
    }
    assert_int_equal(st.truth.first_seq, 2);
    assert_int_equal(st.truth.first_observable_seq, 6);
    attack_state_free(&st);
}

/* A reading at exactly the start is attacked; one at exactly start + duration is not. */
static void window_boundaries_are_half_open(void **state)
{
    (void)state;
    struct attack_spec spec;
    spec_of(&spec, "bias", "t-0001");
    struct attack_state st;
    char err[256];
    assert_int_equal(attack_state_init(&st, &spec, true, CLOCK_START_MS, err, sizeof err), 0);
    struct sim_reading r = {.ts_ms = CLOCK_START_MS + 99999, .n_values = 1};
    r.values[0] = (struct sim_value){"gas_ppm", 400, 0};
    assert_false(attack_apply(&st, &r, 1));
    assert_true(r.values[0].value == 400);
    r.ts_ms = CLOCK_START_MS + 100000;
    assert_true(attack_apply(&st, &r, 2));
    assert_true(r.values[0].value == 700);
    r.ts_ms = CLOCK_START_MS + 159999;
    r.values[0].value = 400;
    assert_true(attack_apply(&st, &r, 3));
    r.ts_ms = CLOCK_START_MS + 160000;
    r.values[0].value = 400;
    assert_false(attack_apply(&st, &r, 4));
    assert_true(r.values[0].value == 400);
    assert_int_equal(st.truth.first_seq, 2);
    assert_int_equal(st.truth.last_seq, 3);
    /* a reading without the attacked metric is left alone and not counted */
    struct sim_reading other = {.ts_ms = CLOCK_START_MS + 100500, .n_values = 1};
    other.values[0] = (struct sim_value){"temperature_c", 20, 1};
    assert_false(attack_apply(&st, &other, 5));
    /* duration 0: open-ended */
    assert_int_equal(attack_spec_set(&spec, "--duration", "0", err, sizeof err), 0);
    attack_state_free(&st);
    assert_int_equal(attack_state_init(&st, &spec, true, CLOCK_START_MS, err, sizeof err), 0);
    r.ts_ms = CLOCK_START_MS + 86400000LL * 365;
    assert_true(attack_apply(&st, &r, 6));
    attack_state_free(&st);
    attack_state_free(&st); /* twice is safe */
}

/* Values are kept inside the plausible range: a spike at the top jumps down instead. */
static void values_stay_plausible(void **state)
{
    (void)state;
    struct attack_spec spec;
    char err[256];
    spec_of(&spec, "spike", "t-0001");
    assert_int_equal(attack_spec_set(&spec, "--metric", "humidity_pct", err, sizeof err), 0);
    struct attack_state st;
    assert_int_equal(attack_state_init(&st, &spec, true, CLOCK_START_MS, err, sizeof err), 0);
    struct sim_reading r = {.ts_ms = CLOCK_START_MS + 100000, .n_values = 1};
    r.values[0] = (struct sim_value){"humidity_pct", 100, 1};
    assert_true(attack_apply(&st, &r, 1));
    assert_true(fabs(r.values[0].value - 70) < 1e-9);
    attack_state_free(&st);
    spec_of(&spec, "bias", "t-0001");
    assert_int_equal(attack_spec_set(&spec, "--magnitude", "-5000", err, sizeof err), 0);
    assert_int_equal(attack_state_init(&st, &spec, true, CLOCK_START_MS, err, sizeof err), 0);
    r.values[0] = (struct sim_value){"gas_ppm", 400, 0};
    assert_true(attack_apply(&st, &r, 2));
    assert_true(r.values[0].value == 0);
    attack_state_free(&st);
}

static void expect_set_error(const char *name, const char *value, const char *words)
{
    struct attack_spec spec;
    attack_spec_defaults(&spec);
    char err[256] = "";
    assert_int_equal(attack_spec_set(&spec, name, value, err, sizeof err), CANARY_EINVAL);
    if (strstr(err, words) == NULL)
        fail_msg("%s '%s': message '%s' lacks '%s'", name, value, err, words);
}

static void bad_values_are_refused(void **state)
{
    (void)state;
    expect_set_error("--kind", "melt", "--kind must be spike");
    expect_set_error("--kind", "", "--kind must be");
    expect_set_error("--start", "-1", "--start must be a number from 0");
    expect_set_error("--start", "1e400", "--start");
    expect_set_error("--start", "12abc", "--start");
    expect_set_error("--duration", "nan", "--duration");
    expect_set_error("--magnitude", "inf", "--magnitude");
    expect_set_error("--every", "0", "--every must be a whole number from 1");
    expect_set_error("--every", "-3", "--every");
    expect_set_error("--attack-seed", "x", "--attack-seed");
    expect_set_error("--device", "", "--device must be 1 to 64");
    expect_set_error("--device", "a b", "--device");
    char *long_id = calloc(1, 200);
    memset(long_id, 'd', 65);
    expect_set_error("--device", long_id, "--device must be 1 to 64");
    free(long_id);
    expect_set_error("--metric", "gas ppm", "--metric");
    expect_set_error("--metric", "Gas!", "not a valid metric name");
    expect_set_error("--bogus", "1", "unknown attack option '--bogus'");
    expect_set_error("--real-leak", "0", "--real-leak is the ppm the room's gas rises to");
    expect_set_error("--real-leak", "-5", "--real-leak");
    expect_set_error("--real-leak", "2e6", "--real-leak must be a number from 0 to 1e+06");
    assert_true(attack_spec_has_option("--replay-from"));
    assert_false(attack_spec_has_option("--devices"));
}

static void expect_check_error(const char *kind, const char *opt, const char *value,
                               const char *words)
{
    struct attack_spec spec;
    spec_of(&spec, kind, "t-0001");
    char err[256] = "";
    if (opt != NULL)
        assert_int_equal(attack_spec_set(&spec, opt, value, err, sizeof err), 0);
    assert_int_equal(attack_spec_check(&spec, err, sizeof err), CANARY_EINVAL);
    if (strstr(err, words) == NULL)
        fail_msg("%s %s %s: message '%s' lacks '%s'", kind, opt ? opt : "", value ? value : "", err,
                 words);
}

static void inconsistent_specs_are_refused(void **state)
{
    (void)state;
    struct attack_spec spec;
    char err[256];
    attack_spec_defaults(&spec);
    assert_int_equal(attack_spec_check(&spec, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "--kind is required"));
    assert_int_equal(attack_spec_set(&spec, "--kind", "bias", err, sizeof err), 0);
    assert_int_equal(attack_spec_check(&spec, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "--device is required"));
    expect_check_error("bias", "--every", "3", "--every is for --kind spike only");
    expect_check_error("spike", "--replay-from", "3", "--replay-from is for --kind replay");
    expect_check_error("freeze", "--real-leak", "8000", "--real-leak is for --kind replay only");
    expect_check_error("freeze", "--magnitude", "3", "means nothing for --kind freeze");
    expect_check_error("replay", "--magnitude", "3", "means nothing for --kind replay");
    expect_check_error("scale", "--magnitude", "1", "factor above 0 and not 1");
    expect_check_error("scale", "--magnitude", "-2", "factor above 0");
    expect_check_error("bias", "--magnitude", "0", "unchanged");
    expect_check_error("fake-leak", "--magnitude", "-10", "above 0");
    expect_check_error("fake-leak", "--metric", "temperature_c", "fakes gas_ppm");
    expect_check_error("ramp", "--duration", "0", "--kind ramp needs a --duration");
    expect_check_error("noise", "--metric", "flame", "0/1 metric");
    expect_check_error("replay", "--replay-from", "101", "must not begin before the run");
    expect_check_error("replay", "--start", "30", "must not begin before the run");
    /* boundary: a source window starting exactly at the clock's start is fine */
    spec_of(&spec, "replay", "t-0001");
    assert_int_equal(attack_spec_set(&spec, "--replay-from", "100", err, sizeof err), 0);
    assert_int_equal(attack_spec_check(&spec, err, sizeof err), 0);
    /* fake leak on a device without gas */
    spec_of(&spec, "fake-leak", "t-0005");
    struct attack_state st;
    assert_int_equal(attack_state_init(&st, &spec, false, CLOCK_START_MS, err, sizeof err),
                     CANARY_EINVAL);
    assert_non_null(strstr(err, "needs a device with a gas sensor"));
    attack_state_free(&st);
}

static void kinds_round_trip(void **state)
{
    (void)state;
    for (int k = 0; k < ATTACK_KIND_COUNT; k++) {
        enum attack_kind out;
        assert_int_equal(attack_kind_parse(attack_kind_name((enum attack_kind)k), &out), 0);
        assert_int_equal(out, k);
        assert_true(attack_default_magnitude((enum attack_kind)k, "gas_ppm") != 0 ||
                    k == ATTACK_FREEZE || k == ATTACK_REPLAY);
    }
    enum attack_kind out;
    assert_int_equal(attack_kind_parse("SPIKE", &out), CANARY_EINVAL);
    assert_string_equal(attack_kind_name(ATTACK_KIND_COUNT), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spike_changes_every_fifth_reading_only),
        cmocka_unit_test(spike_every_and_metric_options),
        cmocka_unit_test(bias_adds_the_magnitude_in_the_window),
        cmocka_unit_test(scale_multiplies_on_the_sensor_grid),
        cmocka_unit_test(ramp_drifts_linearly_to_the_magnitude),
        cmocka_unit_test(freeze_repeats_the_last_value_before_the_window),
        cmocka_unit_test(noise_replaces_the_signal),
        cmocka_unit_test(replay_sends_the_earlier_window_again),
        cmocka_unit_test(replay_loops_a_shorter_source_and_can_name_a_metric),
        cmocka_unit_test(fake_leak_rises_towards_the_magnitude),
        cmocka_unit_test(truth_marks_the_first_observable_change),
        cmocka_unit_test(window_boundaries_are_half_open),
        cmocka_unit_test(values_stay_plausible),
        cmocka_unit_test(bad_values_are_refused),
        cmocka_unit_test(inconsistent_specs_are_refused),
        cmocka_unit_test(kinds_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
