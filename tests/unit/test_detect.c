/* test_detect.c — the streaming detectors (src/detect/): thresholds with hysteresis, the
 * robust level/scale anomaly score, rate of change, flat line, and gaps in a device's stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/metric.h"
#include "core/reading.h"
#include "detect/detect.h"
#include "unit_support.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define T0 1763676000000LL /* 2025-11-20 22:00 UTC, a multiple of the rate ring's 7.5 s slots */

/* Fails with both values printed when |a - b| > eps (cmocka 1.1 compares floats only). */
#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), #a, __FILE__, __LINE__)
static void assert_near_at(double a, double b, double eps, const char *expr, const char *file,
                           int line)
{
    if (!(fabs(a - b) <= eps)) {
        print_error("%s = %.9g, expected %.9g +/- %.3g\n", expr, a, b, eps);
        _fail(file, line);
    }
}

/* A score must be a number in [0,1], whatever came in. */
#define assert_score_valid(s) assert_score_valid_at((s), __FILE__, __LINE__)
static void assert_score_valid_at(double s, const char *file, int line)
{
    if (isnan(s) || s < 0 || s > 1) {
        print_error("score %.9g is not in [0,1]\n", s);
        _fail(file, line);
    }
}

static struct detect_params default_params(void)
{
    struct detect_params p;
    detect_params_default(&p);
    return p;
}

/* A series of a catalogue (or unknown) metric with its default limits. */
static void init_series(struct series_state *s, const char *metric)
{
    const struct metric_info *m = metric_info_or_generic(metric);
    series_init(s, m, &m->limits);
}

/* Runs one value through detect_value and returns its flags; *score gets its score. */
static uint32_t feed(struct series_state *s, const struct detect_params *p, const char *name,
                     double x, int64_t ts_ms, double *score)
{
    struct metric_value v = {name, x, -1.0f, 0xdeadbeef};
    detect_value(s, p, &v, ts_ms);
    if (score != NULL)
        *score = v.score;
    return v.flags;
}

static struct metric_limits limits_off(void)
{
    struct metric_limits l = {NAN, NAN, NAN, NAN, 0, NAN, 0};
    return l;
}

/* ---- threshold_update ------------------------------------------------------------------ */

static void test_threshold_high_warn_then_critical(void **state)
{
    (void)state;
    const struct metric_limits *l = &metric_lookup("gas_ppm")->limits; /* 1000 / 5000, h 50 */
    struct threshold_state t = {0};
    assert_int_equal(threshold_update(&t, l, 400), 0);
    assert_int_equal(threshold_update(&t, l, 999), 0);
    assert_int_equal(threshold_update(&t, l, 1000), FLAG_WARN); /* at the limit counts */
    assert_int_equal(t.high, THRESHOLD_WARN);
    assert_int_equal(t.low, THRESHOLD_NONE);
    assert_int_equal(threshold_update(&t, l, 4999), FLAG_WARN);
    assert_int_equal(threshold_update(&t, l, 5000), FLAG_CRITICAL); /* only the worse level */
    assert_int_equal(t.high, THRESHOLD_CRITICAL);
    assert_int_equal(threshold_update(&t, l, 1e6), FLAG_CRITICAL);
    /* A fresh state jumps straight to critical. */
    struct threshold_state u = {0};
    assert_int_equal(threshold_update(&u, l, 7000), FLAG_CRITICAL);
}

static void test_threshold_hysteresis_hovering_at_warn(void **state)
{
    (void)state;
    struct metric_limits l = limits_off();
    l.warn_high = 1000;
    l.crit_high = 5000;
    l.hysteresis = 50;
    struct threshold_state t = {0};
    static const double hover[] = {1001, 990, 1005, 960, 999, 1000, 951, 1020, 955};
    for (size_t i = 0; i < sizeof hover / sizeof hover[0]; i++)
        assert_int_equal(threshold_update(&t, &l, hover[i]), FLAG_WARN);
    /* Back inside by the hysteresis: cleared. */
    assert_int_equal(threshold_update(&t, &l, 949), 0);
    assert_int_equal(t.high, THRESHOLD_NONE);
    /* Once cleared, the band below the limit does not re-enter. */
    assert_int_equal(threshold_update(&t, &l, 990), 0);
    assert_int_equal(threshold_update(&t, &l, 999.9), 0);
    assert_int_equal(threshold_update(&t, &l, 1000), FLAG_WARN);
    /* Exactly back by the hysteresis also clears. */
    assert_int_equal(threshold_update(&t, &l, 950), 0);
}

static void test_threshold_leaving_critical(void **state)
{
    (void)state;
    struct metric_limits l = limits_off();
    l.warn_high = 1000;
    l.crit_high = 5000;
    l.hysteresis = 50;
    struct threshold_state t = {0};
    assert_int_equal(threshold_update(&t, &l, 6000), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&t, &l, 4960), FLAG_CRITICAL); /* within hysteresis */
    assert_int_equal(threshold_update(&t, &l, 4999), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&t, &l, 4949), FLAG_WARN); /* falls back to warn */
    assert_int_equal(t.high, THRESHOLD_WARN);
    assert_int_equal(threshold_update(&t, &l, 4990), FLAG_WARN); /* warn does not re-enter crit */
    assert_int_equal(threshold_update(&t, &l, 960), FLAG_WARN);
    assert_int_equal(threshold_update(&t, &l, 940), 0);
    /* Straight from critical to below warn - hysteresis: none at once. */
    assert_int_equal(threshold_update(&t, &l, 5000), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&t, &l, 900), 0);
    assert_int_equal(t.high, THRESHOLD_NONE);
}

static void test_threshold_low_side(void **state)
{
    (void)state;
    struct metric_limits l = limits_off();
    l.warn_low = 10;
    l.crit_low = 5;
    l.hysteresis = 1;
    struct threshold_state t = {0};
    assert_int_equal(threshold_update(&t, &l, 20), 0);
    assert_int_equal(threshold_update(&t, &l, 10.5), 0);
    assert_int_equal(threshold_update(&t, &l, 10), FLAG_WARN | FLAG_LOW);
    assert_int_equal(t.low, THRESHOLD_WARN);
    assert_int_equal(t.high, THRESHOLD_NONE);
    assert_int_equal(threshold_update(&t, &l, 10.9), FLAG_WARN | FLAG_LOW); /* hysteresis */
    assert_int_equal(threshold_update(&t, &l, 5), FLAG_CRITICAL | FLAG_LOW);
    assert_int_equal(threshold_update(&t, &l, -40), FLAG_CRITICAL | FLAG_LOW);
    assert_int_equal(threshold_update(&t, &l, 5.9), FLAG_CRITICAL | FLAG_LOW);
    assert_int_equal(threshold_update(&t, &l, 6.5), FLAG_WARN | FLAG_LOW);
    assert_int_equal(threshold_update(&t, &l, 11.5), 0);
    assert_int_equal(t.low, THRESHOLD_NONE);

    /* Both sides configured: the side that is crossed speaks, FLAG_LOW only for the low one. */
    l.warn_high = 30;
    l.crit_high = 40;
    struct threshold_state u = {0};
    assert_int_equal(threshold_update(&u, &l, 35), FLAG_WARN);
    assert_int_equal(threshold_update(&u, &l, 45), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&u, &l, 20), 0);
    assert_int_equal(threshold_update(&u, &l, 4), FLAG_CRITICAL | FLAG_LOW);
}

static void test_threshold_nan_limits_are_off(void **state)
{
    (void)state;
    struct metric_limits l = limits_off();
    l.hysteresis = 5;
    struct threshold_state t = {0};
    static const double xs[] = {0, 1e9, -1e9, 1e300, -1e300, 42};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
        assert_int_equal(threshold_update(&t, &l, xs[i]), 0);
    assert_int_equal(t.high, THRESHOLD_NONE);
    assert_int_equal(t.low, THRESHOLD_NONE);

    /* Only a critical limit: no warn level ever, and critical clears with hysteresis. */
    l.crit_high = 100;
    assert_int_equal(threshold_update(&t, &l, 99), 0);
    assert_int_equal(threshold_update(&t, &l, 100), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&t, &l, 96), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&t, &l, 95), 0);
    assert_int_equal(t.high, THRESHOLD_NONE);

    /* The pressure catalogue entry has every limit off. */
    struct threshold_state p = {0};
    const struct metric_limits *pl = &metric_lookup("pressure_hpa")->limits;
    assert_int_equal(threshold_update(&p, pl, 300), 0);
    assert_int_equal(threshold_update(&p, pl, 1100), 0);
}

static void test_threshold_binary_flame(void **state)
{
    (void)state;
    const struct metric_limits *l = &metric_lookup("flame")->limits; /* crit_high 0.5, h 0 */
    struct threshold_state t = {0};
    assert_int_equal(threshold_update(&t, l, 0), 0);
    assert_int_equal(threshold_update(&t, l, 1), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&t, l, 1), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&t, l, 0), 0); /* no hysteresis: clears at once */
    assert_int_equal(threshold_update(&t, l, 0), 0);
    assert_int_equal(threshold_update(&t, l, 1), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&t, l, 0.5), FLAG_CRITICAL);
    assert_int_equal(threshold_update(&t, l, 0.49), 0);
}

/* ---- robust_update and the anomaly flag ---------------------------------------------------- */

static void test_robust_warmup_scores_zero(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    /* Wildly varying first values on a metric without limits: no anomaly during warm-up. */
    struct series_state s;
    init_series(&s, "pressure_hpa");
    static const double wild[] = {300, 1100, 305, 1013, 1099, 301, 700, 1100, 300, 999};
    for (uint32_t i = 0; i < p.warmup_readings; i++) {
        double score;
        uint32_t flags = feed(&s, &p, "pressure_hpa", wild[i % 10], T0 + i * 1000LL, &score);
        assert_true(flags & FLAG_WARMUP);
        assert_false(flags & FLAG_ANOMALY);
        assert_near(score, 0, 0);
    }
    /* The next value is scored: warm-up is over. */
    double score;
    uint32_t flags = feed(&s, &p, "pressure_hpa", 700, T0 + 30000, &score);
    assert_false(flags & FLAG_WARMUP);
    assert_score_valid(score);

    /* The same through robust_update directly: *warm is true exactly for warmup_readings. */
    struct robust_state r = {0};
    for (uint32_t i = 0; i < 2 * p.warmup_readings; i++) {
        bool warm = !(i < p.warmup_readings);
        double sc = robust_update(&r, &p, 0.1, (i % 2) ? 1e4 : -1e4, 0, true, &warm);
        assert_int_equal(warm, i < p.warmup_readings);
        if (warm)
            assert_near(sc, 0, 0);
        assert_score_valid(sc);
    }
    /* Thresholds do not wait for warm-up: a gas leak on the first value is flagged. */
    struct series_state g;
    init_series(&g, "gas_ppm");
    uint32_t gf = feed(&g, &p, "gas_ppm", 6000, T0, NULL);
    assert_true(gf & FLAG_CRITICAL);
    assert_true(gf & FLAG_WARMUP);
}

/* 10,000 identical values, then one step of the sensor's resolution: never an anomaly. */
static void check_constant(const char *metric, double x, double step)
{
    struct detect_params p = default_params();
    struct series_state s;
    init_series(&s, metric);
    double max_score = 0;
    for (int i = 0; i < 10000; i++) {
        double score;
        uint32_t flags = feed(&s, &p, metric, x, T0 + i * 1000LL, &score);
        assert_false(flags & FLAG_ANOMALY);
        assert_score_valid(score);
        if (score > max_score)
            max_score = score;
    }
    assert_true(max_score < 0.01);
    double score;
    uint32_t flags = feed(&s, &p, metric, x + step, T0 + 10000000LL, &score);
    assert_false(flags & FLAG_ANOMALY);
    assert_true(score < 0.2);
    flags = feed(&s, &p, metric, x - step, T0 + 10001000LL, &score);
    assert_false(flags & FLAG_ANOMALY);
    assert_true(score < 0.2);
}

static void test_robust_constant_signal(void **state)
{
    (void)state;
    /* Near zero the resolution is the floor that matters; at 1013 hPa the relative one. */
    check_constant("temperature_c", 5.0, 0.1);
    check_constant("pressure_hpa", 1013.2, 0.1);
    check_constant("gas_ppm", 0, 1);
    check_constant("gas_ppm", 37, 1);

    /* A larger step is seen (the score is not stuck at 0 either) without being flagged: at
     * 5.0 C, 2 C (too large to be the sensor's quantum) is z = 20; one such value is a lone
     * spike, which scores below the threshold (robust.c) while the series' range is still
     * being learned (500 values a second apart: less than SPATIAL_AFTER, less than a day). */
    struct detect_params p = default_params();
    struct series_state s;
    init_series(&s, "temperature_c");
    for (int i = 0; i < 500; i++)
        feed(&s, &p, "temperature_c", 5.0, T0 + i * 1000LL, NULL);
    double score;
    assert_false(feed(&s, &p, "temperature_c", 7.0, T0 + 500000, &score) & FLAG_ANOMALY);
    print_message("constant 5.0 C, then 7.0 C: score %.3f\n", score);
    assert_true(score > 0.1 && score < p.anomaly_threshold);

    /* Once the range is learned (1,000 values, or a whole day), a value beyond it by more than
     * a sigma is a novel value: an onset by itself (flagged, at or above the threshold, never
     * 1), and the usual value after it is not flagged. */
    init_series(&s, "temperature_c");
    for (int i = 0; i < 1000; i++)
        feed(&s, &p, "temperature_c", 5.0, T0 + i * 1000LL, NULL);
    assert_true(feed(&s, &p, "temperature_c", 7.0, T0 + 1000000, &score) & FLAG_ANOMALY);
    print_message("after 1,000 values of 5.0 C, 7.0 C: score %.3f\n", score);
    assert_true(score >= p.anomaly_threshold && score < 1);
    assert_false(feed(&s, &p, "temperature_c", 5.0, T0 + 1001000, &score) & FLAG_ANOMALY);
    /* A day of values every 10 minutes (180: 30 hours, a day after the warm-up) learns the
     * range as well; the same 180 values a minute apart (3 hours) do not. */
    init_series(&s, "temperature_c");
    for (int i = 0; i < 180; i++)
        feed(&s, &p, "temperature_c", 5.0, T0 + i * 600000LL, NULL);
    assert_true(feed(&s, &p, "temperature_c", 7.0, T0 + 180 * 600000LL, &score) & FLAG_ANOMALY);
    init_series(&s, "temperature_c");
    for (int i = 0; i < 180; i++)
        feed(&s, &p, "temperature_c", 5.0, T0 + i * 60000LL, NULL);
    assert_false(feed(&s, &p, "temperature_c", 7.0, T0 + 180 * 60000LL, &score) & FLAG_ANOMALY);

    /* An unknown metric (generic resolution 0) that never changes, at 0. */
    struct series_state u;
    init_series(&u, "widget_count");
    for (int i = 0; i < 1000; i++) {
        uint32_t flags = feed(&u, &p, "widget_count", 0, T0 + i * 1000LL, &score);
        assert_false(flags & FLAG_ANOMALY);
        assert_near(score, 0, 1e-12);
    }
}

/* A DHT11 reports whole degrees (the catalogue's resolution is 0.1 °C, a DHT22's). Once it
 * has shown its 1 °C step, a step of one quantum is normal, not an anomaly — also when the
 * temperature then sits still for an hour and moves by one degree. */
static void test_robust_learns_the_sensor_quantum(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct series_state s;
    init_series(&s, "temperature_c");
    int64_t t = T0;
    for (int i = 0; i < 40; i++, t += 1000)
        feed(&s, &p, "temperature_c", i % 10 == 5 ? 13 : 12, t, NULL); /* steps of 1 */
    assert_near(s.quantum, 1, 1e-12);
    for (int i = 0; i < 3600; i++, t += 1000)
        assert_false(feed(&s, &p, "temperature_c", 12, t, NULL) & FLAG_ANOMALY);
    double score;
    assert_false(feed(&s, &p, "temperature_c", 13, t, &score) & FLAG_ANOMALY);
    assert_true(score < 0.5);
    /* A leak jumping from a flat zero is not a quantum: it is anomalous — seen on its first
     * value, flagged by its second (one value alone is a lone spike). */
    struct series_state g;
    init_series(&g, "gas_ppm");
    t = T0;
    for (int i = 0; i < 100; i++, t += 1000)
        feed(&g, &p, "gas_ppm", (i % 2) ? 401 : 400, t, NULL);
    assert_near(g.quantum, 1, 1e-12);
    assert_false(feed(&g, &p, "gas_ppm", 900, t, &score) & FLAG_ANOMALY);
    assert_true(score > 0.4);
    assert_true(feed(&g, &p, "gas_ppm", 900, t + 1000, &score) & FLAG_ANOMALY);
    assert_true(score >= p.anomaly_threshold);
    assert_near(g.quantum, 1, 1e-12);
}

static void test_robust_gaussian_noise_false_rate(void **state)
{

    (void)state;
    struct detect_params p = default_params();
    const int n = 100000;
    /* Humidity 45 % +/- 1.5, quantised to the sensor's 0.1 like a real reading. */
    struct series_state s;
    init_series(&s, "humidity_pct");
    struct test_rng g = {0x9E3779B97F4A7C15ULL};
    int anomalies = 0;
    double max_score = 0;
    for (int i = 0; i < n; i++) {
        double x = round((45.0 + 1.5 * test_rng_gauss(&g)) * 10.0) / 10.0;
        double score;
        uint32_t flags = feed(&s, &p, "humidity_pct", x, T0 + i * 1000LL, &score);
        assert_score_valid(score);
        anomalies += (flags & FLAG_ANOMALY) != 0;
        if (score > max_score)
            max_score = score;
    }
    print_message("gaussian noise: %d anomalies in %d values, max score %.3f\n", anomalies, n,
                  max_score);
    assert_true(anomalies < n / 1000); /* < 0.1% */

    /* The bare detector around 0 (no relative floor at work), unit noise. */
    struct robust_state r = {0};
    anomalies = 0;
    for (int i = 0; i < n; i++) {
        bool warm;
        double sc = robust_update(&r, &p, 0.001, test_rng_gauss(&g), 0, true, &warm);
        assert_score_valid(sc);
        anomalies += sc >= p.anomaly_threshold;
    }
    assert_true(anomalies < n / 1000);
}

/* Feeds n values of mean + sigma * noise into a robust state; returns the largest score. */
static double feed_noise(struct robust_state *r, const struct detect_params *p, struct test_rng *g,
                         double mean, double sigma, int n)
{
    double max_score = 0;
    for (int i = 0; i < n; i++) {
        bool warm;
        double sc = robust_update(r, p, 0.01, mean + sigma * test_rng_gauss(g), 0, true, &warm);
        if (sc > max_score)
            max_score = sc;
    }
    return max_score;
}

/* Alarm-rate calibration: a quiet series never has its tails discounted; a series that opens
 * an episode every 200 values (five times the nominal one per 1,000) has, and the discount of
 * a value's likelihood is exactly -log10 of the excess (compared with the same state at the
 * nominal rate), never a raise. */
static void test_robust_chatty_series_is_calibrated(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct test_rng g = {0xC0FFEE1234ULL};

    struct robust_state quiet = {0};
    feed_noise(&quiet, &p, &g, 50, 1, 20000);
    assert_true(quiet.onset_rate > 0);
    assert_true(quiet.onset_rate < 0.001f); /* white noise: no onsets, the prior decays */

    struct robust_state r = {0};
    int onsets = 0;
    for (int i = 0; i < 12000; i++) {
        bool warm;
        double x = 50 + test_rng_gauss(&g) + (i % 200 >= 190 ? 40 : 0); /* 10-value bursts */
        double sc = robust_update(&r, &p, 0.01, x, 0, true, &warm);
        assert_score_valid(sc);
        onsets += sc >= p.anomaly_threshold;
    }
    print_message("bursts every 200 values: %d onsets, onset rate %.5f\n", onsets,
                  (double)r.onset_rate);
    assert_true(onsets >= 20);
    assert_true(r.onset_rate > 0.002f); /* more than twice the nominal rate */

    /* The same state at the nominal rate, the same next values: the calibrated likelihood is
     * the nominal one with its tail multiplied by the excess. */
    int compared = 0;
    for (int i = 0; i < 10; i++) {
        struct robust_state nominal = r;
        nominal.onset_rate = 0.001f;
        double excess = (double)r.onset_rate / 0.001, x = 50 + 40 + test_rng_gauss(&g);
        bool warm;
        robust_update(&r, &p, 0.01, x, 0, true, &warm);
        robust_update(&nominal, &p, 0.01, x, 0, true, &warm);
        double lc = r.likely, ln = nominal.likely;
        assert_true(lc <= ln);
        double qc = 5 * lc / (1 - lc), qn = 5 * ln / (1 - ln);
        if (qn - log10(excess) > 0.01) {
            assert_near(qc, qn - log10(excess), 1e-3 * qn + 1e-4);
            compared++;
        }
    }
    assert_true(compared >= 5);
}

/* Runs a 20-value burst to 50 + 40 sigma into r (noise N(50, 1) otherwise) and returns the
 * score of its episode's onset (0: none); *flagged is whether the onset carried the flag. */
static double burst_onset(struct robust_state *r, const struct detect_params *p, struct test_rng *g,
                          bool *flagged)
{
    double onset = 0;
    *flagged = false;
    for (int i = 0; i < 20; i++) {
        bool warm;
        double sc = robust_update(r, p, 0.01, 90 + test_rng_gauss(g), 0, true, &warm);
        if (onset == 0 && sc >= p->anomaly_threshold) {
            onset = sc;
            *flagged = r->anomalous;
        }
    }
    return onset;
}

/* The onset's strength: the same burst reports a higher onset score on a series that has never
 * been up there than on one whose routine bursts reach the same part of its range — both are
 * episodes (at or above the threshold, flagged), and the score is the documented
 * threshold + (1 - threshold) q / (q + 1), q = -log10 of the share of values in the least
 * visited eighth of the range among the last LIK_SHORT values'. */
static void test_robust_onset_strength_is_rarity_of_the_range(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct test_rng g = {0xBADC0DEULL};
    bool flagged;

    struct robust_state fresh = {0};
    feed_noise(&fresh, &p, &g, 50, 1, 3000);
    double first = burst_onset(&fresh, &p, &g, &flagged);
    assert_true(first >= p.anomaly_threshold);
    assert_true(flagged);

    struct robust_state routine = {0};
    for (int b = 0; b < 5; b++) {
        feed_noise(&routine, &p, &g, 50, 1, 1000);
        burst_onset(&routine, &p, &g, &flagged);
    }
    feed_noise(&routine, &p, &g, 50, 1, 1000);
    double again = burst_onset(&routine, &p, &g, &flagged);
    print_message("onset of a 40-sigma burst: %.3f on a series never up there, %.3f after five "
                  "such bursts\n",
                  first, again);
    assert_true(again >= p.anomaly_threshold);
    assert_true(flagged);
    assert_true(first > again + 0.05);

    /* The documented value, from the state at a fresh onset. */
    struct robust_state r = {0};
    feed_noise(&r, &p, &g, 50, 1, 2000);
    for (int i = 0; i < 20; i++) {
        bool warm;
        double x = 90 + test_rng_gauss(&g);
        double sc = robust_update(&r, &p, 0.01, x, 0, true, &warm);
        if (sc < p.anomaly_threshold)
            continue;
        double total = 0, least = INFINITY;
        for (int k = 0; k < COARSE_BINS; k++)
            total += r.coarse_n[k];
        for (int k = 0; k < LIK_SHORT; k++)
            least = fmin(least, r.coarse_n[r.coarse_recent[k]]);
        assert_near(total, r.n, 1e-3 * r.n); /* every value counted once, re-binned or not */
        double q = -log10(least / total);
        assert_near(sc, 0.5 + 0.5 * q / (q + 1), 1e-6);
        break;
    }

    /* The counts keep their proportions over any length of history (halved together once
     * they hold 2^20 values), and describe the range as it is now: values that were spread
     * over the whole range while it was narrow end up in the eighth that holds them now. */
    struct robust_state h = {0};
    for (int i = 0; i < 3000000; i++) {
        bool warm;
        robust_update(&h, &p, 0.01, i % 4 == 0 ? 100 + 0.001 * (i % 7) : 0.001 * (i % 5), 0, true,
                      &warm);
    }
    print_message("coarse counts after 3,000,000 values near 0 (3/4) and 100 (1/4): %.0f, %.0f, "
                  "%.0f in between\n",
                  (double)h.coarse_n[0], (double)h.coarse_n[COARSE_BINS - 1],
                  (double)(h.coarse_n[1] + h.coarse_n[COARSE_BINS / 2]));
    assert_true(h.coarse_n[0] < (float)(1 << 20));
    assert_near((double)h.coarse_n[0] / h.coarse_n[COARSE_BINS - 1], 3, 0.01);
    for (int k = 1; k < COARSE_BINS - 1; k++)
        assert_near(h.coarse_n[k], 0, 1e-3);

    struct robust_state w = {0};
    for (int i = 0; i < 1000; i++) {
        bool warm;
        robust_update(&w, &p, 0.01, 50 + 0.01 * (i % 10), 0, true, &warm); /* 50.00 .. 50.09 */
    }
    bool warm;
    robust_update(&w, &p, 0.01, 0, 0, true, &warm);
    robust_update(&w, &p, 0.01, 100, 0, true, &warm); /* the range is now 0 .. 100 */
    /* 50.00 .. 50.09, the top eighth of 0 .. 50.09, spread over the eighths of 0 .. 100 that
     * eighth overlaps (43.8 .. 50.09: the fourth and fifth): */
    assert_near(w.coarse_n[COARSE_BINS / 2 - 1] + w.coarse_n[COARSE_BINS / 2], 1000, 1e-2);
    assert_near(w.coarse_n[0], 1, 1e-3);
    assert_near(w.coarse_n[COARSE_BINS - 1], 1, 1e-3);
}

/* Feeds 5-minute values of N(50, 1) from *ts up to (not including) until, with a 3-value spike to
 * 90 starting at each multiple of a day plus spike_at (spike_at < 0: none); returns the score
 * of the last episode onset among them (0: none). */
static double feed_day(struct robust_state *r, const struct detect_params *p, struct test_rng *g,
                       int64_t *ts, int64_t until, int64_t spike_at)
{
    const int64_t day = 86400000LL, step = 300000LL;
    double onset = 0;
    for (; *ts < until; *ts += step) {
        int64_t into = (*ts % day) - spike_at;
        bool spike = spike_at >= 0 && into >= 0 && into < 3 * step;
        bool warm;
        double sc =
            robust_update(r, p, 0.01, (spike ? 90 : 50) + test_rng_gauss(g), *ts, true, &warm);
        if (sc >= p->anomaly_threshold)
            onset = sc;
    }
    return onset;
}

/* The onset's strength knows the time of day: a spike into a part of the range the series
 * visits at that hour every day (on each of the last COARSE_DAYS days) reports just above the
 * threshold — a daily routine — while the same spike at an hour it never went there reports
 * high. Both are episodes. And a part of the range the series spends half its time in is
 * news at an hour it never went there: a day that stays at the night's level. */
static void test_robust_onset_strength_daily_routine(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct test_rng g = {0xDA11ULL};
    const int64_t day = 86400000LL, hour = 3600000LL, t0 = 20000 * day; /* 2024-10-04 00:00 */
    struct robust_state r = {0};
    int64_t ts = t0;
    feed_day(&r, &p, &g, &ts, t0 + 5 * day, 14 * hour); /* five days, a spike at 14:00 each */
    struct robust_state other = r, later = r;
    int64_t ts_other = ts, ts_later = ts + 4 * day; /* after four days without readings */
    double routine = feed_day(&r, &p, &g, &ts, ts + 15 * hour, 14 * hour);
    double unusual = feed_day(&other, &p, &g, &ts_other, ts_other + 15 * hour, 3 * hour);
    print_message("a 40-sigma spike after five days of one at 14:00: onset %.3f at 14:00, %.3f "
                  "at 03:00\n",
                  routine, unusual);
    /* Visited at 14:00 on each of the last three days: its share is at least (3 + f) / 4. */
    assert_true(routine >= p.anomaly_threshold && routine < 0.56);
    assert_true(unusual > 0.75);
    /* Four silent days later, the last three days hold no visit: no routine any more. */
    double back = feed_day(&later, &p, &g, &ts_later, ts_later + 15 * hour, 14 * hour);
    print_message("... and at 14:00 after four days without readings: %.3f\n", back);
    assert_true(back > 0.75);

    /* Nights (00-12 UTC) at 50, days at 90, for eight days; then a day that stays at 50. */
    struct robust_state dn = {0};
    struct test_rng g2 = {0xD1A9ULL};
    double night_day = 0;
    for (int64_t t = t0; t < t0 + 8 * day + 15 * hour; t += 300000LL) {
        bool warm, day_time = (t % day) >= 12 * hour && t < t0 + 8 * day;
        double sc = robust_update(&dn, &p, 0.01, (day_time ? 90 : 50) + test_rng_gauss(&g2), t,
                                  true, &warm);
        if (t >= t0 + 8 * day + 12 * hour && sc >= p.anomaly_threshold && night_day == 0)
            night_day = sc;
    }
    print_message("a day at the night's level (half the history): onset %.3f\n", night_day);
    assert_true(night_day > 0.7); /* by its overall share alone: at most 0.62 */

    /* Without timestamps there is no time of day: the routine spike reports its rarity. */
    struct robust_state untimed = {0};
    double last = 0;
    for (int i = 0; i < 6 * 288; i++) {
        bool warm;
        double x = (i % 288 >= 168 && i % 288 < 171 ? 90 : 50) + test_rng_gauss(&g);
        double sc = robust_update(&untimed, &p, 0.01, x, 0, true, &warm);
        if (sc >= p.anomaly_threshold)
            last = sc;
    }
    print_message("the same without timestamps: last onset %.3f\n", last);
    assert_true(last > 0.75);
}

/* A 20-sigma spike on a noisy series: its score is the highest the series has had, it does
 * not drag the level, and the usual values after it are not anomalies. */
static void test_robust_spike_flagged_and_does_not_drag(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct robust_state r = {0};
    struct test_rng g = {12345};
    double before = feed_noise(&r, &p, &g, 20, 1, 1000);
    double level = r.level;
    bool warm;
    double sc = robust_update(&r, &p, 0.01, 40, 0, true, &warm); /* +20 sigma */
    assert_false(warm);
    print_message("20-sigma spike: score %.3f (the largest before it %.3f)\n", sc, before);
    /* (The noise's own largest score, early in the series, is about a third: the slow view
     * of a white-noise average wanders most while its spread is still being learned.) */
    assert_true(sc > 0.45 && sc > 1.5 * before);
    /* The spike moved the level by far less than one sigma ... */
    assert_true(fabs(r.level - level) < 0.5);
    /* ... so the next normal values are not anomalies (the spike keeps the short-term mean
     * up for LIK_SHORT values: their score stays below the threshold). */
    double after = feed_noise(&r, &p, &g, 20, 1, 20);
    assert_true(after < p.anomaly_threshold);

    /* Downwards too. */
    sc = robust_update(&r, &p, 0.01, 0, 0, true, &warm);
    assert_true(sc > 0.3);
    after = feed_noise(&r, &p, &g, 20, 1, 20);
    assert_true(after < p.anomaly_threshold);

    /* Through detect_value on a quiet series: the spike stands out; a repeat of it is an
     * anomaly; the usual values around it are not. */
    struct series_state s;
    init_series(&s, "humidity_pct");
    int64_t ts = T0;
    for (int i = 0; i < 500; i++, ts += 1000)
        assert_false(feed(&s, &p, "humidity_pct", 45.0 + 0.1 * (i % 3), ts, NULL) & FLAG_ANOMALY);
    double score;
    uint32_t flags = feed(&s, &p, "humidity_pct", 60.0, ts, &score);
    assert_false(flags & (FLAG_WARN | FLAG_CRITICAL));
    assert_true(score > 0.4);
    ts += 1000;
    flags = feed(&s, &p, "humidity_pct", 60.0, ts, &score);
    assert_true(flags & FLAG_ANOMALY);
    assert_true(score >= p.anomaly_threshold);
    for (int i = 0; i < 5; i++) {
        ts += 1000;
        flags = feed(&s, &p, "humidity_pct", 45.0 + 0.1 * (i % 3), ts, &score);
        assert_false(flags & FLAG_ANOMALY);
        assert_true(score < p.anomaly_threshold);
    }
}

/* A sustained shift of 20 sigma is one anomaly episode: its onset scores above the
 * threshold once (the score marks an episode once), its values carry FLAG_ANOMALY, and after
 * warmup_readings values in one direction it is re-baselined: the level is the new value and
 * the new normal scores low again. */
static void test_robust_level_shift_rebaselined(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct robust_state r = {0};
    struct test_rng g = {777};
    feed_noise(&r, &p, &g, 20, 1, 1000);
    uint32_t onsets = 0, flagged = 0;
    for (uint32_t i = 0; i < p.warmup_readings; i++) {
        bool warm;
        double sc = robust_update(&r, &p, 0.01, 40 + test_rng_gauss(&g), 0, true, &warm);
        assert_score_valid(sc);
        onsets += sc >= p.anomaly_threshold;
        flagged += r.anomalous;
        if (i >= 2) /* within two values the short-term mean is far beyond its usual */
            assert_true(r.anomalous);
    }
    print_message("level shift: onset scored %u time(s), %u of the first %u shifted values "
                  "flagged, level now %.2f, sigma %.2f\n",
                  onsets, flagged, p.warmup_readings, r.level, 1.2533 * r.scale);
    assert_int_equal(onsets, 1);
    /* Re-baselined: the level is the new one (within a couple of sigma) ... */
    assert_near(r.level, 40, 2);
    /* ... the new normal never scores at the threshold again, and once the shift has left
     * the likelihood's memory it is not flagged either. */
    double after = feed_noise(&r, &p, &g, 40, 1, 40);
    assert_true(after < p.anomaly_threshold);
    assert_false(r.anomalous);
    after = feed_noise(&r, &p, &g, 40, 1, 200);
    assert_true(after < 0.2);
}

/* Counts the onsets (scores at or above the threshold) of n values of N(mean, 1) fed to r. */
static int onsets_in(struct robust_state *r, const struct detect_params *p, struct test_rng *g,
                     double mean, int n)
{
    int onsets = 0;
    for (int i = 0; i < n; i++) {
        bool warm;
        onsets += robust_update(r, p, 0.01, mean + test_rng_gauss(g), 0, true, &warm) >=
                  p->anomaly_threshold;
    }
    return onsets;
}

/* An episode lasts until its evidence is gone: a burst (15 sigma, 25 values) that dips back to
 * normal for 20 values, long enough for the likelihood to fall under the threshold but not
 * back to usual, and then resumes is one excursion: one onset (the episode re-armed at the
 * dip before, and the resumption opened a second). A dip long enough for the likelihood to
 * call the short-term mean usual again (a tail above 10 %) ends the episode, and the
 * resumption is a new one; so is a burst after a quiet stretch. */
static void test_robust_episode_lasts_until_evidence_gone(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    int dips[] = {20, 40}, want[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        struct robust_state r = {0};
        struct test_rng g = {4242};
        assert_int_equal(onsets_in(&r, &p, &g, 20, 1000), 0);
        int onsets = onsets_in(&r, &p, &g, 35, 25);
        onsets += onsets_in(&r, &p, &g, 20, dips[k]);
        print_message("dip of %d values: the likelihood at its end %.3f\n", dips[k], r.likely);
        if (k == 0)
            assert_true(r.likely < p.anomaly_threshold && r.likely > 1.0 / 6);
        else
            assert_true(r.likely < 1.0 / 6);
        onsets += onsets_in(&r, &p, &g, 35, 25);
        assert_int_equal(onsets, want[k]);
        assert_int_equal(onsets_in(&r, &p, &g, 20, 300), 0);
        assert_int_equal(onsets_in(&r, &p, &g, 35, 10), 1);
    }
}

/* A two-level signal (a machine on and off: 20 or 60, noise 1, switching every 150 values,
 * no timestamps): once the series has gone through one switch each way, both levels are
 * known regimes — a switch is not an anomaly, while a value beyond both (a jump to 100 while
 * off) is flagged within LIK_SHORT values. */
static void test_robust_two_level_signal(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct robust_state r = {0};
    struct test_rng g = {99};
    bool warm;
    int flagged_late = 0;
    for (int i = 0; i < 6000; i++) {
        double x = ((i / 150) % 2 ? 60 : 20) + test_rng_gauss(&g);
        robust_update(&r, &p, 0.01, x, 0, true, &warm);
        if (i >= 600)
            flagged_late += r.anomalous;
    }
    print_message("two levels: %d values flagged after the first four switches, levels %.1f "
                  "and %.1f\n",
                  flagged_late, r.level, r.alt_level);
    assert_int_equal(flagged_late, 0);
    assert_near(fmin(r.level, r.alt_level), 20, 1);
    assert_near(fmax(r.level, r.alt_level), 60, 1);
    /* A value not learned (beyond a limit) is judged against both regimes as well. */
    struct robust_state before = r;
    double other = fabs(r.level - 20) < fabs(r.level - 60) ? 60 : 20;
    assert_true(robust_update(&r, &p, 0.01, other, 0, false, &warm) < p.anomaly_threshold);
    assert_near(r.level, before.level, 0);
    int first = -1;
    for (int i = 0; i < LIK_SHORT && first < 0; i++) {
        double sc = robust_update(&r, &p, 0.01, 100 + test_rng_gauss(&g), 0, true, &warm);
        if (r.anomalous && sc >= p.anomaly_threshold)
            first = i;
    }
    print_message("two levels: a jump beyond both flagged on its value %d\n", first + 1);
    assert_true(first >= 0);
}

/* After a shift has become the new normal the level and scale must still see a 20-sigma
 * excursion: a shift must not leave the scale inflated (blind). The likelihood has learned
 * that the series moves, so a lone spike is less surprising than before, but an excursion
 * that lasts is flagged within LIK_SHORT values. */
static void test_robust_sensitive_after_level_shift(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct robust_state r = {0};
    struct test_rng g = {4242};
    feed_noise(&r, &p, &g, 20, 1, 1000);
    feed_noise(&r, &p, &g, 40, 1, (int)p.warmup_readings + 30); /* shift, re-baselined */
    print_message("after shift: level %.2f, sigma %.2f\n", r.level, 1.2533 * r.scale);
    assert_near(r.level, 40, 1.5);
    assert_true(1.2533 * r.scale < 1.5);
    bool warm;
    int first = -1;
    for (int i = 0; i < LIK_SHORT && first < 0; i++) {
        double sc = robust_update(&r, &p, 0.01, 60, 0, true, &warm); /* +20 sigma */
        assert_true(r.run == i + 1); /* an outlier to the level and scale: not learned */
        if (r.anomalous && sc >= p.anomaly_threshold)
            first = i;
    }
    print_message("excursion after shift: flagged on its value %d\n", first + 1);
    assert_true(first >= 0);
}

/* A sustained shift hidden in the noise of single values (+1.5 sigma: no value is an outlier,
 * most are within the usual spread) is what the slow view is for: the mean of the last ~10
 * values is far beyond its own usual distance from the level, and the shift is flagged within
 * a few dozen values, while the noise before it is not. */
static void test_robust_slow_view_sees_a_small_sustained_shift(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct robust_state r = {0};
    struct test_rng g = {31337};
    double before = feed_noise(&r, &p, &g, 20, 1, 3000);
    assert_true(before < p.anomaly_threshold);
    bool warm;
    int first = -1;
    double max_raw = 0;
    for (int i = 0; i < 60 && first < 0; i++) {
        double x = 21.5 + test_rng_gauss(&g);
        double z = fabs(x - r.level) / (1.2533 * r.scale);
        max_raw = fmax(max_raw, 1 - exp2(-(z / p.z_half) * (z / p.z_half)));
        double sc = robust_update(&r, &p, 0.01, x, 0, true, &warm);
        if (sc >= p.anomaly_threshold && r.anomalous)
            first = i;
    }
    print_message("+1.5 sigma shift: flagged on its value %d (largest raw score of a value "
                  "%.2f, the largest score before %.3f)\n",
                  first + 1, max_raw, before);
    assert_true(first >= 0 && first < 40);
    assert_true(max_raw < 0.9); /* no value of it was an outlier */
    /* Its values that are themselves above the usual carry the flag: three in a row (what
     * alerts.open_after asks for at its default) within the next 20. */
    int in_row = 0, best = 0;
    for (int i = 0; i < 20; i++) {
        robust_update(&r, &p, 0.01, 21.5 + test_rng_gauss(&g), 0, true, &warm);
        in_row = r.anomalous ? in_row + 1 : 0;
        best = in_row > best ? in_row : best;
    }
    print_message("+1.5 sigma shift: %d flagged values in a row\n", best);
    assert_true(best >= 3);
}

/* Values beyond a limit are scored but not learned (detect.h): after an hour-long gas leak the
 * return to the usual level is not an anomaly, and the leak itself is seen all along (its
 * alert is the threshold's: decide/ raises no anomaly alert beyond a limit). */
static void test_robust_alarm_values_not_learned(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct series_state s;
    init_series(&s, "gas_ppm");
    struct test_rng g = {99};
    int64_t ts = T0;
    for (int i = 0; i < 300; i++, ts += 1000)
        feed(&s, &p, "gas_ppm", round(40 + 3 * test_rng_gauss(&g)), ts, NULL);
    struct robust_state before = s.robust;
    double score;
    for (int i = 0; i < 3600; i++, ts += 1000) {
        uint32_t flags = feed(&s, &p, "gas_ppm", 6000 + (i % 7), ts, &score);
        assert_true(flags & FLAG_CRITICAL);
        if (i == 0)
            print_message("leak: score %.3f\n", score);
        assert_true(score > 0.3); /* seen: far from the level */
    }
    /* Neither the level and scale nor the likelihood's window and long-run distribution
     * learned it. */
    assert_int_equal(s.robust.n, before.n);
    assert_near(s.robust.level, before.level, 0);
    assert_int_equal(s.robust.lik.scored, before.lik.scored);
    assert_near(s.robust.lik.recent_sum, before.lik.recent_sum, 0);
    assert_near(s.robust.lik.lt_mean, before.lik.lt_mean, 0);
    assert_near(s.robust.lik.lt_var, before.lik.lt_var, 0);
    assert_near(s.robust.smooth, before.smooth, 0); /* nor the slow view */
    assert_near(s.robust.smooth_scale, before.smooth_scale, 0);
    assert_int_equal(s.robust.slow_lik.scored, before.slow_lik.scored);
    assert_near(s.robust.slow_lik.lt_mean, before.slow_lik.lt_mean, 0);
    uint32_t flags = feed(&s, &p, "gas_ppm", 41, ts, &score);
    assert_false(flags & (FLAG_ANOMALY | FLAG_WARN | FLAG_CRITICAL));
    assert_true(score < 0.5);
}

/* A daily rhythm (5-minute values: 40 by day, 20 by night, with noise): once the series has
 * two weeks behind it, each hour is judged against its own profile — the routine edges are
 * not anomalies, and a day that stays at the night's value (within the overall range, so the
 * plain level cannot tell) is, once the likelihood has forgotten the weeks before the
 * profile (its memory is about 4,000 values, two weeks here). Without timestamps there is no
 * profile. */
static double daily(int64_t ts_ms, struct test_rng *g)
{
    int hour = (int)((ts_ms / 3600000) % 24);
    return (hour >= 8 && hour < 20 ? 40 : 20) + 0.5 * test_rng_gauss(g);
}

/* Between one and two weeks the hour profile is young: its view has a likelihood of its own.
 * The same daily rhythm: the routine edges of days 8 to 10 are not anomalies, and on day 10
 * a day that stays at the night's value is flagged within its first two hours, although its
 * regime (night) explains every value and the profile is not yet part of the raw score. */
static void test_robust_young_hour_profile(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct robust_state r = {0};
    struct test_rng g = {1789};
    const int64_t step = 300000, day = 86400000;
    int64_t ts = 1700006400000LL; /* 2023-11-15 00:00 UTC */
    int64_t start = ts;
    bool warm;
    int flagged_young = 0;
    for (; ts < start + 10 * day + 8 * 3600000LL; ts += step) { /* up to day 10, 08:00 */
        robust_update(&r, &p, 0.01, daily(ts, &g), ts, true, &warm);
        if (ts >= start + 8 * day)
            flagged_young += r.anomalous;
    }
    print_message("young profile: %d values of days 8-10 flagged, %u raw scores in its "
                  "likelihood\n",
                  flagged_young, r.hour_lik.scored);
    assert_int_equal(flagged_young, 0);
    assert_true(r.hour_lik.scored > 0);
    int first = -1;
    for (int i = 0; i < 24 && first < 0; i++, ts += step) {
        double sc = robust_update(&r, &p, 0.01, 20 + 0.5 * test_rng_gauss(&g), ts, true, &warm);
        if (r.anomalous && sc >= p.anomaly_threshold)
            first = i;
    }
    print_message("young profile: a day at the night's value flagged on its value %d\n", first + 1);
    assert_true(first >= 0);
}

static void test_robust_hour_of_day_profile(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct robust_state r = {0};
    struct test_rng g = {2024};
    const int64_t step = 300000, day = 86400000;
    int64_t ts = 1700006400000LL; /* 2023-11-15 00:00 UTC */
    int64_t start = ts;
    bool warm;
    int flagged_late = 0;
    for (; ts < start + 35 * day + 8 * 3600000LL; ts += step) { /* up to day 35, 08:00 */
        robust_update(&r, &p, 0.01, daily(ts, &g), ts, true, &warm);
        if (ts >= start + 15 * day)
            flagged_late += r.anomalous;
    }
    print_message("daily rhythm: %d values flagged after the first 15 days\n", flagged_late);
    assert_int_equal(flagged_late, 0);
    /* The day stays at night: flagged within the first hour of it. */
    int first = -1;
    for (int i = 0; i < 12 && first < 0; i++, ts += step) {
        double sc = robust_update(&r, &p, 0.01, 20 + 0.5 * test_rng_gauss(&g), ts, true, &warm);
        if (r.anomalous && sc >= p.anomaly_threshold)
            first = i;
    }
    print_message("a day at the night's value: flagged on its value %d\n", first + 1);
    assert_true(first >= 0);

    /* The same series without timestamps: no profile is learned. */
    struct robust_state u = {0};
    for (ts = start; ts < start + 3 * day; ts += step)
        robust_update(&u, &p, 0.01, daily(ts, &g), 0, true, &warm);
    assert_int_equal(u.hour_n[8], 0);
    assert_true(u.first_ts_ms == 0);
}

static void test_robust_score_bounds_huge_values(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    /* A known metric (resolution 0.1) after warm-up, hit by huge values. */
    struct series_state s;
    init_series(&s, "pressure_hpa");
    int64_t ts = T0;
    for (int i = 0; i < 100; i++, ts += 1000)
        feed(&s, &p, "pressure_hpa", 1013.0 + 0.1 * (i % 2), ts, NULL);
    static const double huge[] = {1e300, -1e300, 1e300, 1013.0, -1e300, 1013.1};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++, ts += 1000) {
        double score;
        uint32_t flags = feed(&s, &p, "pressure_hpa", huge[i], ts, &score);
        assert_score_valid(score);
        if (i > 0 && fabs(huge[i]) > 1e100) /* the first alone is a lone spike */
            assert_true(flags & FLAG_ANOMALY);
    }
    for (int i = 0; i < 50; i++, ts += 1000) {
        double score;
        feed(&s, &p, "pressure_hpa", 1013.0, ts, &score);
        assert_score_valid(score);
    }
    assert_false(isnan(s.robust.level));
    assert_false(isnan(s.robust.scale));

    /* An unknown metric (generic resolution 0): huge alternating values from the start. */
    struct series_state u;
    init_series(&u, "widget_count");
    for (int i = 0; i < 200; i++, ts += 1000) {
        double score;
        feed(&u, &p, "widget_count", (i % 2) ? 1e300 : -1e300, ts, &score);
        assert_score_valid(score);
    }
    for (int i = 0; i < 200; i++, ts += 1000) {
        double score;
        feed(&u, &p, "widget_count", 7.0 + (i % 5), ts, &score);
        assert_score_valid(score);
    }
}

/* The largest finite values (an unknown metric has no range check beyond finiteness) must not
 * overflow the detector into NaN: the score stays in [0,1] and the series keeps working. */
static void test_robust_score_never_nan_at_double_range(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct series_state u;
    init_series(&u, "widget_count");
    int64_t ts = T0;
    for (int i = 0; i < 100; i++, ts += 1000) {
        double score;
        feed(&u, &p, "widget_count", (i % 2) ? DBL_MAX : -DBL_MAX, ts, &score);
        assert_score_valid(score);
    }
    assert_false(isnan(u.robust.level));
    assert_false(isnan(u.robust.scale));
    /* The series still scores: after a calm stretch (the scale must first forget values of
     * 1e308: it halves every ~350 values at scale_alpha 0.002, so about 350,000 values) a
     * jump that lasts is flagged again. */
    for (int i = 0; i < 400000; i++, ts += 1000)
        feed(&u, &p, "widget_count", 5.0, ts, NULL);
    double score;
    uint32_t flags = feed(&u, &p, "widget_count", 5e9, ts, &score);
    assert_score_valid(score);
    flags = feed(&u, &p, "widget_count", 5e9, ts + 1000, &score);
    assert_score_valid(score);
    assert_true(flags & FLAG_ANOMALY);
}

/* ---- rate_update ----------------------------------------------------------------------- */

static void test_rate_nan_until_half_window(void **state)
{
    (void)state;
    struct detect_params p = default_params(); /* window 60 s */
    struct rate_state r = {0};
    r.per_min = NAN;
    for (int i = 0; i < 30; i++)
        assert_true(isnan(rate_update(&r, &p, T0 + i * 1000LL, 20.0 + i)));
    double rate = rate_update(&r, &p, T0 + 30000, 50.0);
    assert_false(isnan(rate));
    assert_true(rate > 0);
    assert_near(r.per_min, rate, 0);
}

/* Feeds a ramp of slope_per_min at 1 s steps from t0: the rate is within 10% once the window
 * is full and within 3% once the smoothing has settled (two windows). */
static void check_ramp(double slope_per_min, int64_t t0)
{
    struct detect_params p = default_params();
    struct rate_state r = {0};
    r.per_min = NAN;
    for (int i = 0; i <= 300; i++) {
        double rate = rate_update(&r, &p, t0 + i * 1000LL, 20.0 + slope_per_min * i / 60.0);
        if (i == 60)
            assert_near(rate, slope_per_min, 0.1 * fabs(slope_per_min)); /* window just full */
        if (i >= 120)
            assert_near(rate, slope_per_min, 0.03 * fabs(slope_per_min));
    }
}

static void test_rate_linear_ramp(void **state)
{
    (void)state;
    check_ramp(10.0, T0);
    check_ramp(10.0, T0 + 1234); /* not aligned to the ring's slots */
    check_ramp(-10.0, T0 + 777);
    check_ramp(600.0, T0 + 5);
}

static void test_rate_out_of_order_ignored(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct rate_state a, b;
    memset(&a, 0, sizeof a); /* padding too: the states are compared bytewise */
    memset(&b, 0, sizeof b);
    a.per_min = b.per_min = NAN;
    for (int i = 0; i < 90; i++) {
        int64_t ts = T0 + i * 1000LL;
        double x = 20.0 + i / 6.0;
        double ra = rate_update(&a, &p, ts, x);
        double rb = rate_update(&b, &p, ts, x);
        assert_memory_equal(&a, &b, sizeof a);
        if (i == 10 || i == 45) {
            /* b also sees a late reading and a repeated timestamp with absurd values. */
            double late = rate_update(&b, &p, ts - 5000, 1e6);
            double same = rate_update(&b, &p, ts, -1e6);
            if (isnan(rb)) {
                assert_true(isnan(late));
                assert_true(isnan(same));
            } else {
                assert_near(late, ra, 0);
                assert_near(same, ra, 0);
            }
            assert_memory_equal(&a, &b, sizeof a);
        }
    }
}

/* After a pause longer than the window no entry from before it is used: the rate is unknown
 * until half a window of new history exists, then measured on the new values only. */
static void test_rate_pause_longer_than_window(void **state)
{
    (void)state;
    struct detect_params p = default_params(); /* window 60 s */
    struct rate_state r = {0};
    r.per_min = NAN;
    for (int i = 0; i <= 60; i++)
        rate_update(&r, &p, T0 + i * 1000LL, 20.0);
    int64_t t1 = T0 + 60000 + 61000; /* a minute and a second of silence */
    for (int i = 0; i < 30; i++)
        assert_true(isnan(rate_update(&r, &p, t1 + i * 1000LL, 80.0 + i)));
    double rate = rate_update(&r, &p, t1 + 30000, 110.0);
    assert_false(isnan(rate));
    /* Only the new ramp (60 per minute, lagged by the smoothing), not the jump from 20. */
    assert_true(rate > 10 && rate < 70);
}

/* The longest window the configuration allows (a day: its entries' ages still fit in 32 bits)
 * and timestamps before 1970 measure a ramp as any other. */
static void test_rate_day_window_and_early_timestamps(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    p.rate_window_ms = 86400000LL;
    struct rate_state r = {0};
    r.per_min = NAN;
    double rate = NAN;
    for (int i = 0; i <= 96; i++) /* two days of 30-minute values, 1 unit per hour */
        rate = rate_update(&r, &p, T0 + i * 1800000LL, 20.0 + i / 2.0);
    assert_near(rate, 1.0 / 60, 0.03 / 60);
    p = default_params();
    struct rate_state e = {0};
    e.per_min = NAN;
    for (int i = 0; i <= 300; i++)
        rate = rate_update(&e, &p, -86400000LL + i * 1000LL, 20.0 + 10.0 * i / 60.0);
    assert_near(rate, 10.0, 0.3);
}

/* The budget: at most 1 KB of detector state per (device, metric). */
static void test_series_state_within_budget(void **state)
{
    (void)state;
    assert_true(sizeof(struct series_state) <= 1024);
}

static void test_rate_flag_temperature(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    /* 15 C/min: flagged as soon as a rate exists, and on every value after the window. */
    struct series_state fast;
    init_series(&fast, "temperature_c"); /* max_rate_per_min 8.3 */
    int first_flag = -1;
    for (int i = 0; i <= 120; i++) {
        uint32_t f =
            feed(&fast, &p, "temperature_c", 20.0 + 15.0 * i / 60.0, T0 + i * 1000LL, NULL);
        if (i < 30)
            assert_false(f & FLAG_RATE); /* no rate yet */
        if ((f & FLAG_RATE) && first_flag < 0)
            first_flag = i;
        if (i >= 60)
            assert_true(f & FLAG_RATE);
    }
    assert_true(first_flag >= 30 && first_flag <= 45);

    /* 10 C/min, just above the UL 521 limit: flagged once the window is full. */
    struct series_state just;
    init_series(&just, "temperature_c");
    for (int i = 0; i <= 300; i++) {
        uint32_t f =
            feed(&just, &p, "temperature_c", 20.0 + 10.0 * i / 60.0, T0 + i * 1000LL, NULL);
        if (i >= 90)
            assert_true(f & FLAG_RATE);
    }

    /* 7 C/min and 4 C/min, falling 7 C/min: never. */
    static const double slow[] = {7.0, 4.0, -7.0};
    for (size_t k = 0; k < sizeof slow / sizeof slow[0]; k++) {
        struct series_state s;
        init_series(&s, "temperature_c");
        for (int i = 0; i <= 600; i++) {
            double x = 20.0 + slow[k] * i / 60.0;
            assert_false(feed(&s, &p, "temperature_c", x, T0 + i * 1000LL, NULL) & FLAG_RATE);
        }
    }

    /* Falling fast is a rate too (|change|). */
    struct series_state fall;
    init_series(&fall, "temperature_c");
    uint32_t f = 0;
    for (int i = 0; i <= 90; i++)
        f = feed(&fall, &p, "temperature_c", 40.0 - 15.0 * i / 60.0, T0 + i * 1000LL, NULL);
    assert_true(f & FLAG_RATE);

    /* A metric without a rate limit never flags. */
    struct series_state pr;
    init_series(&pr, "pressure_hpa");
    for (int i = 0; i <= 120; i++)
        assert_false(feed(&pr, &p, "pressure_hpa", 300.0 + 5.0 * i, T0 + i * 1000LL, NULL) &
                     FLAG_RATE);
}

/* ---- flat line ------------------------------------------------------------------------- */

static void test_flatline_gas(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct series_state s;
    init_series(&s, "gas_ppm");
    assert_int_equal(s.limits.flatline_count, 60);
    int64_t ts = T0;
    for (int i = 1; i <= 59; i++, ts += 1000)
        assert_false(feed(&s, &p, "gas_ppm", 412, ts, NULL) & FLAG_FLATLINE);
    assert_true(feed(&s, &p, "gas_ppm", 412, ts, NULL) & FLAG_FLATLINE); /* the 60th */
    ts += 1000;
    assert_true(feed(&s, &p, "gas_ppm", 412, ts, NULL) & FLAG_FLATLINE);
    ts += 1000;
    assert_false(feed(&s, &p, "gas_ppm", 413, ts, NULL) & FLAG_FLATLINE); /* cleared */
    ts += 1000;
    /* The count restarts with the new value: 413 is already 1 of 60. */
    for (int i = 2; i <= 59; i++, ts += 1000)
        assert_false(feed(&s, &p, "gas_ppm", 413, ts, NULL) & FLAG_FLATLINE);
    assert_true(feed(&s, &p, "gas_ppm", 413, ts, NULL) & FLAG_FLATLINE);
    ts += 1000;
    /* Alternating values never flag. */
    for (int i = 0; i < 200; i++, ts += 1000)
        assert_false(feed(&s, &p, "gas_ppm", 400 + (i % 2), ts, NULL) & FLAG_FLATLINE);
}

static void test_flatline_off_for_temperature(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct series_state s;
    init_series(&s, "temperature_c");
    assert_int_equal(s.limits.flatline_count, 0);
    for (int i = 0; i < 1000; i++)
        assert_false(feed(&s, &p, "temperature_c", 21.5, T0 + i * 1000LL, NULL) & FLAG_FLATLINE);
}

/* ---- gap_update ------------------------------------------------------------------------ */

static void test_gap_regular_never_flags(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct gap_state g = {0};
    for (int i = 0; i < 5000; i++)
        assert_int_equal(gap_update(&g, &p, T0 + i * 1000LL), 0);
    assert_near(g.interval_ms, 1000, 1e-6);
}

static void test_gap_long_pause_flagged(void **state)
{
    (void)state;
    struct detect_params p = default_params(); /* factor 5, min 30 s */
    struct gap_state g = {0};
    int64_t ts = T0;
    for (int i = 0; i < 4; i++, ts += 1000) /* three intervals */
        assert_int_equal(gap_update(&g, &p, ts), 0);
    ts += 59000; /* 60 s after the last reading */
    assert_int_equal(gap_update(&g, &p, ts), FLAG_GAP);
    /* The gap did not teach the interval: a second one right after is still a gap. */
    assert_near(g.interval_ms, 1000, 1e-6);
    ts += 1000;
    assert_int_equal(gap_update(&g, &p, ts), 0);
    ts += 60000;
    assert_int_equal(gap_update(&g, &p, ts), FLAG_GAP);
    ts += 60000;
    assert_int_equal(gap_update(&g, &p, ts), FLAG_GAP); /* back to back */
    ts += 1000;
    assert_int_equal(gap_update(&g, &p, ts), 0);
    assert_near(g.interval_ms, 1000, 1e-6);
}

/* A device reconfigured from 1 s to 60 s readings: three gaps, then the new rhythm. */
static void test_gap_new_rhythm_is_learned(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct gap_state g = {0};
    int64_t ts = T0;
    for (int i = 0; i < 10; i++, ts += 1000)
        assert_int_equal(gap_update(&g, &p, ts), 0);
    assert_int_equal(gap_update(&g, &p, ts += 60000), FLAG_GAP);
    assert_int_equal(gap_update(&g, &p, ts += 60000), FLAG_GAP);
    assert_int_equal(gap_update(&g, &p, ts += 60000), 0); /* third in a row: a rhythm */
    assert_near(g.interval_ms, 60000, 1e-6);
    for (int i = 0; i < 20; i++)
        assert_int_equal(gap_update(&g, &p, ts += 60000), 0);
    /* Gaps are judged against the new rhythm from now on. */
    assert_int_equal(gap_update(&g, &p, ts += 600000), FLAG_GAP);
}

static void test_gap_short_pause_below_min(void **state)
{

    (void)state;
    struct detect_params p = default_params();
    struct gap_state g = {0};
    int64_t ts = T0;
    for (int i = 0; i < 10; i++, ts += 1000)
        assert_int_equal(gap_update(&g, &p, ts), 0);
    ts += 9000; /* 10 s: more than 5x the usual 1 s, not more than gap_min */
    assert_int_equal(gap_update(&g, &p, ts), 0);

    /* gap_min is exclusive: exactly 30 s is not a gap, 30.001 s is. */
    struct gap_state h = {0};
    ts = T0;
    for (int i = 0; i < 10; i++, ts += 1000)
        assert_int_equal(gap_update(&h, &p, ts), 0);
    ts += 29000;
    assert_int_equal(gap_update(&h, &p, ts), 0);
    struct gap_state k = {0};
    ts = T0;
    for (int i = 0; i < 10; i++, ts += 1000)
        assert_int_equal(gap_update(&k, &p, ts), 0);
    ts += 29001;
    assert_int_equal(gap_update(&k, &p, ts), FLAG_GAP);

    /* A slow device (one reading a minute) is not in a gap at every reading. */
    struct gap_state slow = {0};
    for (int i = 0; i < 100; i++)
        assert_int_equal(gap_update(&slow, &p, T0 + i * 60000LL), 0);
    assert_int_equal(gap_update(&slow, &p, T0 + 99 * 60000LL + 301000), FLAG_GAP);
}

static void test_gap_out_of_order_ignored(void **state)
{
    (void)state;
    struct detect_params p = default_params();
    struct gap_state g, before;
    memset(&g, 0, sizeof g); /* padding too: the state is compared bytewise */
    int64_t ts = T0;
    for (int i = 0; i < 10; i++, ts += 1000)
        assert_int_equal(gap_update(&g, &p, ts), 0);
    int64_t newest = ts - 1000;
    memcpy(&before, &g, sizeof g);
    assert_int_equal(gap_update(&g, &p, newest - 120000), 0); /* far in the past */
    assert_int_equal(gap_update(&g, &p, newest), 0);          /* same instant */
    assert_memory_equal(&g, &before, sizeof g);
    /* Timing continues from the newest reading, not from the late one. */
    assert_int_equal(gap_update(&g, &p, newest + 1000), 0);
    assert_int_equal(gap_update(&g, &p, newest + 61000), FLAG_GAP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_high_warn_then_critical),
        cmocka_unit_test(test_threshold_hysteresis_hovering_at_warn),
        cmocka_unit_test(test_threshold_leaving_critical),
        cmocka_unit_test(test_threshold_low_side),
        cmocka_unit_test(test_threshold_nan_limits_are_off),
        cmocka_unit_test(test_threshold_binary_flame),
        cmocka_unit_test(test_robust_warmup_scores_zero),
        cmocka_unit_test(test_robust_constant_signal),
        cmocka_unit_test(test_robust_learns_the_sensor_quantum),
        cmocka_unit_test(test_robust_gaussian_noise_false_rate),
        cmocka_unit_test(test_robust_spike_flagged_and_does_not_drag),
        cmocka_unit_test(test_robust_chatty_series_is_calibrated),
        cmocka_unit_test(test_robust_onset_strength_is_rarity_of_the_range),
        cmocka_unit_test(test_robust_onset_strength_daily_routine),
        cmocka_unit_test(test_robust_level_shift_rebaselined),
        cmocka_unit_test(test_robust_episode_lasts_until_evidence_gone),
        cmocka_unit_test(test_robust_sensitive_after_level_shift),
        cmocka_unit_test(test_robust_slow_view_sees_a_small_sustained_shift),
        cmocka_unit_test(test_robust_two_level_signal),
        cmocka_unit_test(test_robust_alarm_values_not_learned),
        cmocka_unit_test(test_robust_hour_of_day_profile),
        cmocka_unit_test(test_robust_young_hour_profile),
        cmocka_unit_test(test_robust_score_bounds_huge_values),
        cmocka_unit_test(test_robust_score_never_nan_at_double_range),
        cmocka_unit_test(test_rate_nan_until_half_window),
        cmocka_unit_test(test_rate_linear_ramp),
        cmocka_unit_test(test_rate_out_of_order_ignored),
        cmocka_unit_test(test_rate_pause_longer_than_window),
        cmocka_unit_test(test_rate_day_window_and_early_timestamps),
        cmocka_unit_test(test_series_state_within_budget),
        cmocka_unit_test(test_rate_flag_temperature),
        cmocka_unit_test(test_flatline_gas),
        cmocka_unit_test(test_flatline_off_for_temperature),
        cmocka_unit_test(test_gap_regular_never_flags),
        cmocka_unit_test(test_gap_long_pause_flagged),
        cmocka_unit_test(test_gap_new_rhythm_is_learned),
        cmocka_unit_test(test_gap_short_pause_below_min),
        cmocka_unit_test(test_gap_out_of_order_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
