/* test_sim_fleet.c — the simulated fleet's model (src/cli/sim_fleet.h): determinism, sensor
 * quantisation, plausible ranges, silence of a clean fleet against the default alert limits,
 * the shapes of the three scenarios, the ground truth they leave, and the actuator states a
 * commanded device adds to its readings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli/sim_fleet.h"
#include "core/error.h"
#include "core/metric.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2026-03-20 00:00:00 UTC: runs start at local midnight so a day covers the whole cycle. */
#define T0_MS 1773964800000LL

static struct sim_fleet_config config(uint64_t seed, unsigned n, enum sim_scenario sc, unsigned k,
                                      int64_t start_ms, int64_t end_ms)
{
    return (struct sim_fleet_config){seed, n, "sim", 0, sc, k, start_ms, end_ms};
}

static void fleet_init(struct sim_fleet *f, const struct sim_fleet_config *cfg)
{
    char err[256] = "";
    int rc = sim_fleet_init(f, cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("sim_fleet_init: %s", err);
}

/* A clean fleet of n devices whose ids are "<prefix>-0001", ... */
static void fleet_named(struct sim_fleet *f, uint64_t seed, unsigned n, const char *prefix)
{
    struct sim_fleet_config cfg = config(seed, n, SIM_SCENARIO_NONE, 0, 0, 0);
    cfg.prefix = prefix;
    fleet_init(f, &cfg);
}

static int value_index(const struct sim_reading *r, const char *metric)
{
    for (unsigned k = 0; k < r->n_values; k++) {
        if (strcmp(r->values[k].metric, metric) == 0)
            return (int)k;
    }
    return -1;
}

static void assert_same_reading(const struct sim_reading *a, const struct sim_reading *b)
{
    assert_int_equal(a->device, b->device);
    assert_int_equal(a->ts_ms, b->ts_ms);
    assert_int_equal(a->n_values, b->n_values);
    for (unsigned k = 0; k < a->n_values; k++) {
        assert_string_equal(a->values[k].metric, b->values[k].metric);
        assert_memory_equal(&a->values[k].value, &b->values[k].value, sizeof(double));
    }
}

/* ---- determinism ------------------------------------------------------------------- */

static void same_seed_same_readings(void **state)
{
    (void)state;
    struct sim_fleet_config cfg = config(42, 13, SIM_SCENARIO_NONE, 0, 0, 0);
    struct sim_fleet a, b;
    fleet_init(&a, &cfg);
    fleet_init(&b, &cfg);
    char ja[SIM_READING_JSON_MAX], jb[SIM_READING_JSON_MAX];
    for (int t = 0; t < 600; t++) {
        for (unsigned d = 0; d < a.n_devices; d++) {
            struct sim_reading ra, rb;
            sim_fleet_reading(&a, d, T0_MS + t * 1000, &ra);
            sim_fleet_reading(&b, d, T0_MS + t * 1000, &rb);
            assert_same_reading(&ra, &rb);
            assert_true(sim_reading_json(&a, &ra, (uint64_t)t, ja, sizeof ja) > 0);
            assert_true(sim_reading_json(&b, &rb, (uint64_t)t, jb, sizeof jb) > 0);
            assert_string_equal(ja, jb);
        }
    }
    for (unsigned d = 0; d < a.n_devices; d++) {
        assert_string_equal(sim_fleet_device(&a, d)->kind, sim_fleet_device(&b, d)->kind);
        assert_string_equal(sim_fleet_device(&a, d)->hardware, sim_fleet_device(&b, d)->hardware);
    }
    sim_fleet_free(&a);
    sim_fleet_free(&b);
}

static void different_seed_different_readings(void **state)
{
    (void)state;
    struct sim_fleet_config c1 = config(1, 12, SIM_SCENARIO_NONE, 0, 0, 0);
    struct sim_fleet_config c2 = config(2, 12, SIM_SCENARIO_NONE, 0, 0, 0);
    struct sim_fleet a, b;
    fleet_init(&a, &c1);
    fleet_init(&b, &c2);
    /* Device 1 is a kitchen in both fleets; its gas baseline and noise must differ. */
    assert_string_equal(sim_fleet_device(&a, 0)->kind, "kitchen");
    assert_string_equal(sim_fleet_device(&b, 0)->kind, "kitchen");
    unsigned differ = 0;
    for (int t = 0; t < 20; t++) {
        struct sim_reading ra, rb;
        sim_fleet_reading(&a, 0, T0_MS + t * 1000, &ra);
        sim_fleet_reading(&b, 0, T0_MS + t * 1000, &rb);
        assert_string_equal(ra.values[0].metric, "gas_ppm");
        differ += ra.values[0].value != rb.values[0].value;
    }
    assert_true(differ >= 15);
    /* The profile decks of devices 2..12 are shuffled differently. */
    unsigned same_kind = 0;
    for (unsigned d = 1; d < 12; d++)
        same_kind += strcmp(sim_fleet_device(&a, d)->kind, sim_fleet_device(&b, d)->kind) == 0;
    assert_true(same_kind < 11);
    sim_fleet_free(&a);
    sim_fleet_free(&b);
}

/* Polling order must not matter: device 5 alone reads as device 5 among the others. */
static void devices_are_independent(void **state)
{
    (void)state;
    struct sim_fleet_config cfg = config(7, 9, SIM_SCENARIO_NONE, 0, 0, 0);
    struct sim_fleet all, one;
    fleet_init(&all, &cfg);
    fleet_init(&one, &cfg);
    for (int t = 0; t < 300; t++) {
        struct sim_reading ra, rb;
        for (unsigned d = 0; d < all.n_devices; d++) {
            if (d != 5)
                sim_fleet_reading(&all, d, T0_MS + t * 700 + (int64_t)d, &ra);
        }
        sim_fleet_reading(&all, 5, T0_MS + t * 1000, &ra);
        sim_fleet_reading(&one, 5, T0_MS + t * 1000, &rb);
        assert_same_reading(&ra, &rb);
    }
    sim_fleet_free(&all);
    sim_fleet_free(&one);
}

/* ---- sensors ------------------------------------------------------------------------ */

static void dht11_and_dht22_quantisation(void **state)
{
    (void)state;
    struct sim_fleet_config cfg = config(3, 48, SIM_SCENARIO_NONE, 0, 0, 0);
    struct sim_fleet f;
    fleet_init(&f, &cfg);
    unsigned n11 = 0, n22 = 0, fractional22 = 0;
    for (unsigned d = 0; d < f.n_devices; d++) {
        bool dht11 = strstr(sim_fleet_device(&f, d)->hardware, "DHT11") != NULL;
        bool dht22 = strstr(sim_fleet_device(&f, d)->hardware, "DHT22") != NULL;
        assert_true(dht11 != dht22);
        n11 += dht11;
        n22 += dht22;
        for (int t = 0; t < 2000; t++) {
            struct sim_reading r;
            sim_fleet_reading(&f, d, T0_MS + t * 10000, &r);
            const char *metrics[] = {"temperature_c", "humidity_pct"};
            for (int m = 0; m < 2; m++) {
                int k = value_index(&r, metrics[m]);
                assert_true(k >= 0);
                double v = r.values[k].value;
                if (dht11) {
                    assert_true(v == floor(v));
                    assert_int_equal(r.values[k].decimals, 0);
                } else {
                    assert_true(fabs(v * 10 - round(v * 10)) < 1e-9);
                    assert_int_equal(r.values[k].decimals, 1);
                    fractional22 += v != floor(v);
                }
            }
            int g = value_index(&r, "gas_ppm");
            if (g >= 0)
                assert_true(r.values[g].value == floor(r.values[g].value));
        }
    }
    assert_true(n11 >= 5);
    assert_true(n22 >= 5);
    assert_true(fractional22 > 1000); /* a DHT22 really reports tenths */
    sim_fleet_free(&f);
}

static void values_in_plausible_range_over_a_week(void **state)
{
    (void)state;
    struct sim_fleet_config cfg = config(11, 36, SIM_SCENARIO_NONE, 0, 0, 0);
    struct sim_fleet f;
    fleet_init(&f, &cfg);
    unsigned seen_metrics = 0;
    const char *seen[16] = {0};
    for (unsigned d = 0; d < f.n_devices; d++) {
        for (int64_t t = 0; t < 7 * 86400; t += 30) {
            struct sim_reading r;
            sim_fleet_reading(&f, d, T0_MS + t * 1000, &r);
            assert_true(r.n_values >= 3 && r.n_values <= 6);
            for (unsigned k = 0; k < r.n_values; k++) {
                const struct metric_info *m = metric_lookup(r.values[k].metric);
                assert_non_null(m);
                double v = r.values[k].value;
                assert_true(isfinite(v));
                assert_true(v >= m->min && v <= m->max);
                if (m->binary)
                    assert_true(v == 0 || v == 1);
                unsigned s = 0;
                while (s < seen_metrics && strcmp(seen[s], m->name) != 0)
                    s++;
                if (s == seen_metrics)
                    seen[seen_metrics++] = m->name;
            }
        }
    }
    assert_int_equal(seen_metrics, 9); /* gas, co, temp, hum, flame, motion, light, vib, noise */
    sim_fleet_free(&f);
}

/* A clean fleet over a whole simulated day at 1 Hz: no value reaches a default warn or
 * critical limit, flame stays 0, no flatline check trips, and motion and light move. */
static void clean_day_raises_no_threshold(void **state)
{
    (void)state;
    struct sim_fleet_config cfg = config(5, 24, SIM_SCENARIO_NONE, 0, 0, 0);
    struct sim_fleet f;
    fleet_init(&f, &cfg);
    unsigned motion_ones = 0, dark = 0, bright = 0;
    for (unsigned d = 0; d < f.n_devices; d++) {
        double last[SIM_MAX_VALUES];
        unsigned run[SIM_MAX_VALUES] = {0};
        for (int64_t t = 0; t < 86400; t++) {
            struct sim_reading r;
            sim_fleet_reading(&f, d, T0_MS + t * 1000, &r);
            for (unsigned k = 0; k < r.n_values; k++) {
                const struct metric_info *m = metric_lookup(r.values[k].metric);
                const struct metric_limits *l = &m->limits;
                double v = r.values[k].value;
                if (!isnan(l->warn_high))
                    assert_true(v < l->warn_high);
                if (!isnan(l->crit_high))
                    assert_true(v < l->crit_high);
                if (!isnan(l->warn_low))
                    assert_true(v > l->warn_low);
                if (!isnan(l->crit_low))
                    assert_true(v > l->crit_low);
                run[k] = t > 0 && v == last[k] ? run[k] + 1 : 1;
                last[k] = v;
                if (l->flatline_count > 0)
                    assert_true(run[k] < l->flatline_count);
                if (strcmp(m->name, "motion") == 0)
                    motion_ones += v == 1;
                if (strcmp(m->name, "light_lux") == 0 && t == 2 * 3600)
                    dark += v == 0;
                if (strcmp(m->name, "light_lux") == 0 && t == 12 * 3600)
                    bright += v >= 50;
            }
        }
    }
    assert_true(motion_ones > 100);
    assert_true(dark >= 4);   /* at 02:00 unoccupied rooms are dark ... */
    assert_true(bright >= 8); /* ... and at noon every lit room is bright */
    sim_fleet_free(&f);
}

/* The MQ-4 reads a clean-air baseline of 300-600 ppm with 1-3 % noise; rooms are warmer at
 * 15:00 than at 03:00. */
static void sensors_have_their_datasheet_shape(void **state)
{
    (void)state;
    struct sim_fleet_config cfg = config(6, 12, SIM_SCENARIO_NONE, 0, 0, 0);
    struct sim_fleet f;
    fleet_init(&f, &cfg);
    unsigned gas_devices = 0;
    double warmer_c = 0;
    for (unsigned d = 0; d < f.n_devices; d++) {
        double gas_sum = 0, gas_jumps = 0, prev = 0, t03 = 0, t15 = 0;
        unsigned n = 0;
        for (int64_t t = 0; t < 86400; t++) {
            struct sim_reading r;
            sim_fleet_reading(&f, d, T0_MS + t * 1000, &r);
            int g = value_index(&r, "gas_ppm"), c = value_index(&r, "temperature_c");
            if (g >= 0) {
                gas_sum += r.values[g].value;
                gas_jumps += t > 0 ? fabs(r.values[g].value - prev) : 0;
                prev = r.values[g].value;
                n++;
            }
            if (t >= 2.5 * 3600 && t < 3.5 * 3600)
                t03 += r.values[c].value / 3600;
            if (t >= 14.5 * 3600 && t < 15.5 * 3600)
                t15 += r.values[c].value / 3600;
        }
        warmer_c += (t15 - t03) / f.n_devices;
        if (n == 0)
            continue;
        gas_devices++;
        double mean = gas_sum / n;
        /* mean |step| of Gaussian noise sigma is 2 sigma / sqrt(pi) = 1.13 sigma */
        double noise = gas_jumps / (n - 1) / 1.128 / mean;
        assert_true(mean >= 300 * 0.9 && mean <= 600 * 1.1);
        assert_true(noise >= 0.008 && noise <= 0.035);
    }
    assert_int_equal(gas_devices, 6); /* kitchen, boiler room, garage in each deck */
    assert_true(warmer_c >= 1.0);
    sim_fleet_free(&f);
}

/* ---- scenarios ---------------------------------------------------------------------- */

/* The readings of one device at 1 Hz from T0. */
struct run {
    struct sim_reading r[1800];
    unsigned n;
};

static struct run *run_device(struct sim_fleet *f, unsigned d, unsigned seconds)
{
    struct run *run = malloc(sizeof *run);
    assert_non_null(run);
    assert_true(seconds <= sizeof run->r / sizeof run->r[0]);
    for (run->n = 0; run->n < seconds; run->n++)
        sim_fleet_reading(f, d, T0_MS + (int64_t)run->n * 1000, &run->r[run->n]);
    return run;
}

/* Value of metric in reading i of the run (the metric must be there). */
static double at(const struct run *run, unsigned i, const char *metric)
{
    int k = value_index(&run->r[i], metric);
    assert_true(k >= 0);
    return run->r[i].values[k].value;
}

static void gas_leak_crosses_critical_and_clears(void **state)
{
    (void)state;
    int64_t start = T0_MS + 600000, end = start + 120000;
    struct sim_fleet_config cfg = config(9, 12, SIM_SCENARIO_GAS_LEAK, 2, start, end);
    struct sim_fleet f;
    fleet_init(&f, &cfg);
    unsigned affected = 0, sources = 0, reached = 0;
    for (unsigned d = 0; d < f.n_devices; d++) {
        const struct sim_device_info *info = sim_fleet_device(&f, d);
        bool in = info->in_scenario;
        if (!sim_fleet_has_metric(&f, d, "gas_ppm")) {
            assert_false(in);
            continue;
        }
        affected += in;
        sources += info->scenario_source;
        /* A leak fills its room: every gas sensor at a source's location sees it. */
        bool mate = false;
        for (unsigned o = 0; o < f.n_devices; o++) {
            const struct sim_device_info *oi = sim_fleet_device(&f, o);
            mate |= o != d && oi->scenario_source && !strcmp(oi->location, info->location);
        }
        assert_true(in == (info->scenario_source || mate));
        if (in && !info->scenario_source) {
            reached++;
            struct run *run = run_device(&f, d, 1800);
            double peak = 0, before = 0;
            for (unsigned i = 0; i < run->n; i++) {
                int64_t t = run->r[i].ts_ms;
                double gas = at(run, i, "gas_ppm");
                if (t < start || t >= end + 300000)
                    assert_true(gas < 1000);
                if (t == start - 1000)
                    before = gas;
                if (t == start + 5000) /* rising from the start, not waiting for the source */
                    assert_true(gas > before + 100);
                if (t == start + 60000)
                    assert_true(gas >= 1000);
                peak = fmax(peak, gas);
            }
            /* 40-70 % of the source's excess, reached more slowly: 78-100 % of the way */
            assert_true(peak >= 2500 && peak <= 7800);
            free(run);
            continue;
        }
        struct run *run = run_device(&f, d, 1800);
        double peak = 0;
        int64_t first_crit = 0;
        for (unsigned i = 0; i < run->n; i++) {
            int64_t t = run->r[i].ts_ms;
            double gas = at(run, i, "gas_ppm");
            if (t < start || !in || t >= end + 300000)
                assert_true(gas < 1000); /* below warn before, elsewhere, and after */
            if (t >= start && t < end && gas > peak)
                peak = gas;
            if (first_crit == 0 && gas >= 5000)
                first_crit = t;
        }
        if (in) {
            assert_true(first_crit > start && first_crit < start + 60000);
            assert_true(peak >= 7500 && peak <= 11000); /* ~8000-10000 plus sensor noise */
        } else {
            assert_int_equal(first_crit, 0);
        }
        free(run);
    }
    assert_int_equal(sources, 2);
    assert_true(reached >= 1); /* seed 9 puts a second gas sensor in a source's room */
    assert_int_equal(affected, f.n_affected);
    sim_fleet_free(&f);
}

/* Least-squares slope of metric over readings [from, from + n), per minute. */
static double slope_per_min(const struct run *run, const char *metric, unsigned from, unsigned n)
{
    double st = 0, sv = 0, stt = 0, stv = 0;
    for (unsigned i = from; i < from + n; i++) {
        double t = (double)(run->r[i].ts_ms - run->r[from].ts_ms) / 60000.0;
        double v = at(run, i, metric);
        st += t;
        sv += v;
        stt += t * t;
        stv += t * v;
    }
    return (n * stv - st * sv) / (n * stt - st * st);
}

static void fire_sets_flame_and_heats_fast(void **state)
{
    (void)state;
    int64_t start = T0_MS + 300000, end = start + 360000;
    struct sim_fleet_config cfg = config(4, 18, SIM_SCENARIO_FIRE, 3, start, end);
    struct sim_fleet f;
    fleet_init(&f, &cfg);
    unsigned fires = 0, with_humidity = 0;
    for (unsigned d = 0; d < f.n_devices; d++) {
        if (!sim_fleet_has_metric(&f, d, "flame"))
            continue;
        bool in = sim_fleet_device(&f, d)->in_scenario;
        struct run *run = run_device(&f, d, 1500);
        for (unsigned i = 0; i < run->n; i++) {
            bool burning = in && run->r[i].ts_ms >= start && run->r[i].ts_ms < end;
            assert_true(at(run, i, "flame") == (burning ? 1 : 0));
        }
        if (in) {
            fires++;
            unsigned s = 300; /* index of the first reading of the fire */
            assert_int_equal(run->r[s].ts_ms, start);
            double rate = slope_per_min(run, "temperature_c", s, 120);
            assert_true(rate >= 8.3 && rate <= 21);
            double hottest = 0;
            for (unsigned i = s; i < s + 360; i++)
                hottest = fmax(hottest, at(run, i, "temperature_c"));
            assert_true(hottest >= 66 && hottest <= 94); /* 70-90 °C plus the room's cycle */
            assert_true(at(run, 1499, "temperature_c") < hottest - 20); /* cooled down */
            if (sim_fleet_has_metric(&f, d, "humidity_pct")) {
                with_humidity++;
                assert_true(at(run, s + 300, "humidity_pct") <
                            0.5 * at(run, s - 1, "humidity_pct"));
            }
        }
        free(run);
    }
    assert_int_equal(fires, 3);
    assert_int_equal(with_humidity, 3);
    sim_fleet_free(&f);
}

static void sensor_fault_repeats_one_value(void **state)
{
    (void)state;
    int64_t start = T0_MS + 200000, end = start + 150000;
    struct sim_fleet_config cfg = config(8, 12, SIM_SCENARIO_SENSOR_FAULT, 4, start, end);
    struct sim_fleet f;
    fleet_init(&f, &cfg);
    unsigned faults = 0;
    char first[SIM_READING_JSON_MAX], now[SIM_READING_JSON_MAX];
    for (unsigned d = 0; d < f.n_devices; d++) {
        if (!sim_fleet_device(&f, d)->in_scenario)
            continue;
        faults++;
        bool gas = sim_fleet_has_metric(&f, d, "gas_ppm");
        const char *metric = gas ? "gas_ppm" : "temperature_c";
        struct run *run = run_device(&f, d, 600);
        unsigned frozen = 0, changes_after = 0, changes_before = 0;
        double stuck = at(run, 200, metric); /* the first reading of the fault */
        for (unsigned i = 1; i < run->n; i++) {
            int64_t t = run->r[i].ts_ms;
            double v = at(run, i, metric), prev = at(run, i - 1, metric);
            if (t >= start && t < end) {
                assert_memory_equal(&v, &stuck, sizeof v);
                /* the same number on the wire too: only seq and ts move */
                struct sim_reading one = run->r[i];
                one.n_values = 0;
                one.values[one.n_values++] = run->r[i].values[value_index(&run->r[i], metric)];
                one.ts_ms = 0;
                assert_true(sim_reading_json(&f, &one, 0, now, sizeof now) > 0);
                if (frozen == 0)
                    strcpy(first, now);
                assert_string_equal(now, first);
                frozen++;
            } else if (t >= end) {
                changes_after += v != prev;
            } else {
                changes_before += v != prev;
            }
        }
        assert_int_equal(frozen, 150);
        if (gas) { /* a live MQ-4 never sits still for long */
            assert_true(changes_before > 100);
            assert_true(changes_after > 100);
        }
        free(run);
    }
    assert_int_equal(faults, 4);
    sim_fleet_free(&f);
}

/* The sensor fault goes to gas sensors first (the default flatline check watches gas), and to
 * temperature sensors only when the fleet has too few gas sensors. */
static void sensor_fault_prefers_gas_sensors(void **state)
{
    (void)state;
    int64_t start = T0_MS + 5000, end = start + 10000;
    for (unsigned k = 1; k <= 6; k++) {
        struct sim_fleet_config cfg = config(12, 6, SIM_SCENARIO_SENSOR_FAULT, k, start, end);
        struct sim_fleet f;
        fleet_init(&f, &cfg);
        struct sim_reading r;
        for (int t = 0; t < 20; t++) {
            for (unsigned d = 0; d < f.n_devices; d++)
                sim_fleet_reading(&f, d, T0_MS + t * 1000, &r);
        }
        struct sim_truth_row rows[6 * SIM_MAX_VALUES];
        size_t n = sim_fleet_truth(&f, rows, 6 * SIM_MAX_VALUES);
        assert_int_equal(n, k); /* one frozen sensor per device */
        unsigned gas_rows = 0;
        for (size_t i = 0; i < n; i++) {
            bool has_gas = sim_fleet_has_metric(&f, rows[i].device, "gas_ppm");
            assert_string_equal(rows[i].metric, has_gas ? "gas_ppm" : "temperature_c");
            gas_rows += has_gas;
        }
        /* a deck of six has three gas devices: kitchen, boiler room, garage */
        assert_int_equal(gas_rows, k < 3 ? k : 3);
        sim_fleet_free(&f);
    }
}

/* A scenario with too few eligible devices is refused with a message that says so. */
static void scenario_needs_eligible_devices(void **state)
{
    (void)state;
    struct sim_fleet_config cfg = config(1, 1, SIM_SCENARIO_GAS_LEAK, 2, T0_MS, T0_MS + 1000);
    struct sim_fleet f;
    char err[256] = "";
    assert_int_equal(sim_fleet_init(&f, &cfg, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "gas sensor"));
    cfg.scenario_devices = 1; /* device 1 is a kitchen: every scenario can run on it */
    for (int s = SIM_SCENARIO_GAS_LEAK; s <= SIM_SCENARIO_SENSOR_FAULT; s++) {
        cfg.scenario = (enum sim_scenario)s;
        assert_int_equal(sim_fleet_init(&f, &cfg, err, sizeof err), 0);
        assert_true(sim_fleet_device(&f, 0)->in_scenario);
        sim_fleet_free(&f);
    }
    cfg.prefix = "bad/prefix";
    assert_int_equal(sim_fleet_init(&f, &cfg, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "prefix"));
}

/* ---- ground truth ------------------------------------------------------------------- */

/* Runs a scenario fleet and the same fleet without the scenario side by side at 1 Hz.
 * Every value that differs must lie inside a truth row of its (device, metric); every
 * reading outside the rows must be identical; rows start at the scenario's first reading,
 * and each row's end is the last reading that differs (or, for the flame and the frozen
 * sensor, the last reading of the scenario). */
static void check_truth(enum sim_scenario sc, unsigned k, const char *kind)
{
    int64_t start = T0_MS + 100500, end = start + 120000; /* starts between two readings */
    struct sim_fleet_config cfg = config(21, 14, sc, k, start, end);
    struct sim_fleet_config clean_cfg = cfg;
    clean_cfg.scenario = SIM_SCENARIO_NONE;
    struct sim_fleet f, c;
    fleet_init(&f, &cfg);
    fleet_init(&c, &clean_cfg);
    enum { SECONDS = 1200 };
    int64_t last_diff[14][SIM_MAX_VALUES] = {{0}};
    struct sim_reading(*fr)[SECONDS] = malloc(14 * sizeof *fr);
    assert_non_null(fr);
    for (unsigned t = 0; t < SECONDS; t++) {
        for (unsigned d = 0; d < f.n_devices; d++) {
            struct sim_reading cr;
            sim_fleet_reading(&f, d, T0_MS + (int64_t)t * 1000, &fr[d][t]);
            sim_fleet_reading(&c, d, T0_MS + (int64_t)t * 1000, &cr);
            for (unsigned m = 0; m < cr.n_values; m++) {
                if (fr[d][t].values[m].value != cr.values[m].value)
                    last_diff[d][m] = cr.ts_ms;
            }
        }
    }
    struct sim_truth_row rows[14 * SIM_MAX_VALUES];
    size_t n = sim_fleet_truth(&f, rows, sizeof rows / sizeof rows[0]);
    assert_true(n <= sim_fleet_truth_max(&f));
    int64_t first_ts = T0_MS + 101000; /* first reading at or after start */
    int64_t last_in = T0_MS + 220000;  /* last reading before end */
    unsigned devices_seen = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sim_truth_row *r = &rows[i];
        assert_true(sim_fleet_device(&f, r->device)->in_scenario);
        assert_string_equal(r->device_id, sim_fleet_device(&f, r->device)->id);
        assert_string_equal(r->kind, kind);
        assert_int_equal(r->start_ms, first_ts);
        int m = value_index(&fr[r->device][0], r->metric);
        assert_true(m >= 0);
        if (sc == SIM_SCENARIO_SENSOR_FAULT || strcmp(r->metric, "flame") == 0)
            assert_int_equal(r->end_ms, last_in);
        else if (strcmp(r->metric, "humidity_pct") == 0) /* a DHT11 may round a 1 % dip away */
            assert_true(r->end_ms >= last_diff[r->device][m]);
        else
            assert_int_equal(r->end_ms, last_diff[r->device][m]);
        assert_true(r->end_ms >= last_in);
        devices_seen += i == 0 || rows[i - 1].device != r->device;
        if (i > 0)
            assert_true(rows[i - 1].device <= r->device);
    }
    assert_int_equal(devices_seen, f.n_affected); /* k, and for a gas leak their rooms */
    assert_true(f.n_affected >= k);
    /* Outside the rows, the scenario fleet reads exactly as the clean one. */
    for (unsigned d = 0; d < f.n_devices; d++) {
        for (unsigned m = 0; m < fr[d][0].n_values; m++) {
            if (last_diff[d][m] == 0)
                continue;
            bool covered = false;
            for (size_t i = 0; i < n; i++) {
                covered |= rows[i].device == d &&
                           strcmp(rows[i].metric, fr[d][0].values[m].metric) == 0 &&
                           last_diff[d][m] <= rows[i].end_ms;
            }
            assert_true(covered);
        }
    }
    free(fr);
    sim_fleet_free(&f);
    sim_fleet_free(&c);
}

static void truth_gas_leak(void **state)
{
    (void)state;
    check_truth(SIM_SCENARIO_GAS_LEAK, 2, "gas_leak");
}

static void truth_fire(void **state)
{
    (void)state;
    check_truth(SIM_SCENARIO_FIRE, 3, "fire");
}

static void truth_sensor_fault(void **state)
{
    (void)state;
    check_truth(SIM_SCENARIO_SENSOR_FAULT, 5, "sensor_fault");
}

/* The gas-leak rows name exactly the gas sensor; fire rows name flame and temperature of
 * every burning device, plus humidity and gas where it has them. */
static void truth_metrics_per_scenario(void **state)
{
    (void)state;
    int64_t start = T0_MS + 10000, end = start + 60000;
    struct sim_fleet_config cfg = config(33, 30, SIM_SCENARIO_FIRE, 6, start, end);
    struct sim_fleet f;
    fleet_init(&f, &cfg);
    struct sim_reading r;
    for (int t = 0; t < 400; t++) {
        for (unsigned d = 0; d < f.n_devices; d++)
            sim_fleet_reading(&f, d, T0_MS + t * 1000, &r);
    }
    struct sim_truth_row rows[6 * SIM_MAX_VALUES];
    size_t n = sim_fleet_truth(&f, rows, 6 * SIM_MAX_VALUES);
    size_t expected = 0;
    for (unsigned d = 0; d < f.n_devices; d++) {
        if (!sim_fleet_device(&f, d)->in_scenario)
            continue;
        const char *all[] = {"gas_ppm", "co_ppm",    "temperature_c",  "humidity_pct", "flame",
                             "motion",  "light_lux", "vibration_mm_s", "noise_db"};
        for (unsigned m = 0; m < sizeof all / sizeof all[0]; m++) {
            const char *name = all[m];
            if (!sim_fleet_has_metric(&f, d, name))
                continue;
            bool burns = !strcmp(name, "flame") || !strcmp(name, "temperature_c") ||
                         !strcmp(name, "humidity_pct") || !strcmp(name, "gas_ppm") ||
                         !strcmp(name, "co_ppm");
            bool listed = false;
            for (size_t i = 0; i < n; i++)
                listed |= rows[i].device == d && !strcmp(rows[i].metric, name);
            assert_true(listed == burns);
            expected += burns;
        }
    }
    assert_int_equal(n, expected);
    assert_true(n >= 6 * 3);
    /* A short buffer gets the first rows and the full count. */
    struct sim_truth_row two[2];
    assert_int_equal(sim_fleet_truth(&f, two, 2), n);
    assert_string_equal(two[0].metric, rows[0].metric);
    assert_int_equal(two[1].end_ms, rows[1].end_ms);
    sim_fleet_free(&f);
}

/* ---- wire format -------------------------------------------------------------------- */

static void json_is_the_wire_format(void **state)
{
    (void)state;
    struct sim_fleet f;
    fleet_named(&f, 1, 1, "lab.3");
    struct sim_reading r = {
        0,
        1763676000123LL,
        3,
        {{"gas_ppm", 412, 0}, {"temperature_c", 21.5, 1}, {"vibration_mm_s", 2.5, 2}}};
    char buf[SIM_READING_JSON_MAX];
    int n = sim_reading_json(&f, &r, 1763676000000ULL, buf, sizeof buf);
    const char *want = "{\"device\":\"lab.3-0001\",\"seq\":1763676000000,\"ts\":1763676000123,"
                       "\"values\":{\"gas_ppm\":412,\"temperature_c\":21.5,"
                       "\"vibration_mm_s\":2.50}}";
    assert_string_equal(buf, want);
    assert_int_equal(n, (int)strlen(want));
    assert_int_equal(sim_reading_json(&f, &r, 1763676000000ULL, buf, 20), CANARY_ELIMIT);
    /* one byte short: the closing brace or the NUL does not fit */
    assert_int_equal(sim_reading_json(&f, &r, 1763676000000ULL, buf, strlen(want)), CANARY_ELIMIT);
    assert_int_equal(sim_reading_json(&f, &r, 1763676000000ULL, buf, strlen(want) + 1), n);
    sim_fleet_free(&f);
}

/* ---- actuators ---------------------------------------------------------------------- */

/* A device never commanded sends exactly the model's reading; a commanded one adds the
 * states of the actuators it was told to switch, after its sensors. */
static void commanded_actuators_follow_the_sensors(void **state)
{
    (void)state;
    struct sim_fleet f;
    fleet_named(&f, 3, 6, "p");
    struct sim_actuators act;
    sim_actuators_init(&act);
    for (unsigned d = 0; d < f.n_devices; d++) {
        struct sim_reading model, with;
        sim_fleet_reading(&f, d, T0_MS, &model);
        with = model;
        sim_reading_add_actuators(&with, &act);
        assert_same_reading(&model, &with);
    }
    act.state[SIM_ACTUATOR_RELAY] = 0;
    act.state[SIM_ACTUATOR_BUZZER] = 1;
    struct sim_reading r;
    sim_fleet_reading(&f, 0, T0_MS + 1000, &r);
    unsigned sensors = r.n_values;
    sim_reading_add_actuators(&r, &act);
    /* after the sensors, in enum order, only the commanded ones, as whole 0 / 1 */
    assert_int_equal(r.n_values, sensors + 2);
    assert_string_equal(r.values[sensors].metric, "buzzer");
    assert_true(r.values[sensors].value == 1 && r.values[sensors].decimals == 0);
    assert_string_equal(r.values[sensors + 1].metric, "relay");
    assert_true(r.values[sensors + 1].value == 0);
    char buf[SIM_READING_JSON_MAX];
    assert_true(sim_reading_json(&f, &r, 1, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, ",\"buzzer\":1,\"relay\":0}}"));
    for (unsigned k = sensors; k < r.n_values; k++) {
        const struct metric_info *m = metric_lookup(r.values[k].metric);
        assert_non_null(m);
        assert_true(m->binary);
    }
    assert_string_equal(sim_actuator_metric(SIM_ACTUATOR_VALVE), "valve_open");
    sim_fleet_free(&f);
}

/* The longest reading there can be (the longest prefix, a six-digit device number, the
 * largest seq and ts, six sensors and three actuators) still fits SIM_READING_JSON_MAX. */
static void longest_reading_fits(void **state)
{
    (void)state;
    char prefix[SIM_PREFIX_MAX + 1];
    memset(prefix, 'x', SIM_PREFIX_MAX);
    prefix[SIM_PREFIX_MAX] = '\0';
    struct sim_fleet f;
    fleet_named(&f, 5, SIM_MAX_DEVICES, prefix);
    struct sim_actuators act = {{1, 1, 1}};
    struct sim_reading r = {SIM_MAX_DEVICES - 1, INT64_MAX, SIM_MAX_VALUES, {{0}}};
    for (unsigned k = 0; k < SIM_MAX_VALUES; k++)
        r.values[k] = (struct sim_value){"vibration_mm_s", -1e6 - 0.25, 3};
    sim_reading_add_actuators(&r, &act);
    assert_int_equal(r.n_values, SIM_MAX_VALUES + SIM_MAX_ACTUATORS);
    char buf[SIM_READING_JSON_MAX];
    int n = sim_reading_json(&f, &r, UINT64_MAX, buf, sizeof buf);
    assert_true(n > 0 && n < SIM_READING_JSON_MAX);
    sim_fleet_free(&f);
}

static void scenario_names_round_trip(void **state)
{
    (void)state;
    const char *names[] = {"none", "gas-leak", "fire", "sensor-fault"};
    const char *kinds[] = {"", "gas_leak", "fire", "sensor_fault"};
    for (int i = 0; i < 4; i++) {
        enum sim_scenario s;
        assert_int_equal(sim_scenario_parse(names[i], &s), 0);
        assert_int_equal(s, i);
        assert_string_equal(sim_scenario_name(s), names[i]);
        assert_string_equal(sim_scenario_kind(s), kinds[i]);
    }
    enum sim_scenario s;
    assert_int_equal(sim_scenario_parse("gas_leak", &s), CANARY_EINVAL);
    assert_int_equal(sim_scenario_parse("", &s), CANARY_EINVAL);
}

/* Two fleets side by side (the demo's two sites) never claim the same place; the default
 * prefix numbers its sites. */
static void test_site_names_follow_the_prefix(void **state)
{
    (void)state;
    struct sim_fleet a, b, c;
    fleet_named(&a, 1, 8, "site-a");
    fleet_named(&b, 1, 30, "site_b");
    fleet_named(&c, 1, 30, "sim");
    assert_non_null(strstr(sim_fleet_device(&a, 0)->location, "Site A, "));
    assert_non_null(strstr(sim_fleet_device(&b, 0)->location, "Site B 1, "));
    assert_non_null(strstr(sim_fleet_device(&b, 29)->location, "Site B 2, "));
    assert_non_null(strstr(sim_fleet_device(&c, 0)->location, "Site 1, "));
    assert_non_null(strstr(sim_fleet_device(&c, 29)->location, "Site 2, "));
    for (unsigned i = 0; i < 8; i++)
        assert_string_not_equal(sim_fleet_device(&a, i)->location,
                                sim_fleet_device(&b, i)->location);
    sim_fleet_free(&a);
    sim_fleet_free(&b);
    sim_fleet_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_site_names_follow_the_prefix),
        cmocka_unit_test(same_seed_same_readings),
        cmocka_unit_test(different_seed_different_readings),
        cmocka_unit_test(devices_are_independent),
        cmocka_unit_test(dht11_and_dht22_quantisation),
        cmocka_unit_test(values_in_plausible_range_over_a_week),
        cmocka_unit_test(clean_day_raises_no_threshold),
        cmocka_unit_test(sensors_have_their_datasheet_shape),
        cmocka_unit_test(gas_leak_crosses_critical_and_clears),
        cmocka_unit_test(fire_sets_flame_and_heats_fast),
        cmocka_unit_test(sensor_fault_repeats_one_value),
        cmocka_unit_test(sensor_fault_prefers_gas_sensors),
        cmocka_unit_test(scenario_needs_eligible_devices),
        cmocka_unit_test(truth_gas_leak),
        cmocka_unit_test(truth_fire),
        cmocka_unit_test(truth_sensor_fault),
        cmocka_unit_test(truth_metrics_per_scenario),
        cmocka_unit_test(json_is_the_wire_format),
        cmocka_unit_test(commanded_actuators_follow_the_sensors),
        cmocka_unit_test(longest_reading_fits),
        cmocka_unit_test(scenario_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
