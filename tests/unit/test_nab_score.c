/* test_nab_score.c — unit tests of NAB's scoring (bench/nab_score.c).
 *
 * Hand-made files whose scores are worked out on paper from NAB's definitions (nab_score.h):
 * a file of 100 one-minute rows (probationary period: the first 15) with one window on rows
 * 40..49 (10 rows), under the standard profile (A_TP 1, A_FP 0.11, A_FN 1). The scaled
 * sigmoid 2/(1 + e^(5y)) - 1 is tanh(-5y/2), which gives the expected values below in
 * closed form. Then the normalisation (the perfect detector scores 100, the null one 0),
 * the exact threshold sweep against a brute force over every candidate, and the loaders. */
#include "core/error.h"
#include "nab_score.h"
#include "unit_support.h"

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

#define assert_near(a, b, tol) assert_near_at((a), (b), (tol), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double tol, const char *file, int line)
{
    if (!(fabs(a - b) <= tol)) {
        fprintf(stderr, "%s:%d: %.17g is not %.17g (tolerance %g)\n", file, line, a, b, tol);
        fail();
    }
}

#define ROWS   100
#define MINUTE 60000

static const struct nab_profile standard = {"standard", 1.0, 0.11, 1.0};
static const struct nab_profile low_fn = {"reward_low_FN_rate", 1.0, 0.11, 2.0};

/* S(y) in closed form. */
static double S(double y)
{
    return tanh(-2.5 * y);
}

/* The raw standard score of the 100-row file, window on rows 40..49, with a detection
 * (score 1, else 0) on each row listed (-1 ends the list), at threshold 0.5. */
static double raw_with(const int *rows, struct nab_result *res)
{
    int64_t ts[ROWS];
    double scores[ROWS];
    for (int i = 0; i < ROWS; i++) {
        ts[i] = (int64_t)i * MINUTE;
        scores[i] = 0;
    }
    for (; *rows >= 0; rows++)
        scores[*rows] = 1;
    struct nab_window w = {40 * MINUTE, 49 * MINUTE};
    struct nab_corpus c = {0};
    char err[256];
    assert_int_equal(nab_corpus_add(&c, "f.csv", ts, scores, ROWS, &w, 1, err, sizeof err), 0);
    assert_int_equal(c.n_points, ROWS - 15);
    assert_int_equal(c.n_windows, 1);
    assert_int_equal(c.n_windows_scored, 1);
    struct nab_result r;
    assert_int_equal(nab_score_at(&c, &standard, 0.5, &r, NULL), 0);
    nab_corpus_free(&c);
    if (res != NULL)
        *res = r;
    return r.raw;
}

static void test_sigmoid_and_probation(void **state)
{
    (void)state;
    assert_near(nab_scaled_sigmoid(-1.0), 0.98661429815143, 1e-12);
    assert_near(nab_scaled_sigmoid(-0.5), 0.84828363995751, 1e-12);
    assert_near(nab_scaled_sigmoid(0.0), 0.0, 1e-15);
    assert_near(nab_scaled_sigmoid(1.0), -0.98661429815143, 1e-12);
    assert_near(nab_scaled_sigmoid(2.999), S(2.999), 1e-12);
    assert_near(nab_scaled_sigmoid(3.0), -1.0, 0); /* NAB's cut-off */
    assert_near(nab_scaled_sigmoid(40.0), -1.0, 0);
    /* 15 % of the rows, at most 750 (15 % of 5,000). */
    assert_int_equal(nab_probation_rows(100), 15);
    assert_int_equal(nab_probation_rows(7), 1);
    assert_int_equal(nab_probation_rows(4000), 600);
    assert_int_equal(nab_probation_rows(5000), 750);
    assert_int_equal(nab_probation_rows(22695), 750);
}

static void test_detection_at_window_start(void **state)
{
    (void)state;
    struct nab_result r;
    assert_near(raw_with((const int[]){40, -1}, &r), 1.0, 1e-12); /* exactly A_TP */
    assert_int_equal(r.windows_detected, 1);
    assert_int_equal(r.windows_missed, 0);
    assert_int_equal(r.tp, 1);
    assert_int_equal(r.fn, 9);
    assert_int_equal(r.fp, 0);
    assert_int_equal(r.tn, ROWS - 15 - 10);
}

static void test_detection_at_window_end(void **state)
{
    (void)state;
    /* Last row: y = -(49 - 49 + 1) / 10 = -0.1, worth S(-0.1) / S(-1). */
    assert_near(raw_with((const int[]){49, -1}, NULL), S(-0.1) / S(-1), 1e-12);
    assert_true(S(-0.1) / S(-1) < 0.25);
}

static void test_only_first_detection_in_window_counts(void **state)
{
    (void)state;
    /* Rows 42 and 45: the earlier one, y = -(49 - 42 + 1) / 10 = -0.8. */
    assert_near(raw_with((const int[]){42, 45, -1}, NULL), S(-0.8) / S(-1), 1e-12);
    /* Every row of the window: as good as the first alone. */
    assert_near(raw_with((const int[]){40, 41, 42, 43, 44, 45, 46, 47, 48, 49, -1}, NULL), 1.0,
                1e-12);
}

static void test_detection_before_window(void **state)
{
    (void)state;
    /* Row 20, before any window: the full -A_FP; the window is missed: -A_FN. */
    struct nab_result r;
    assert_near(raw_with((const int[]){20, -1}, &r), -0.11 - 1.0, 1e-12);
    assert_int_equal(r.fp, 1);
    assert_int_equal(r.windows_missed, 1);
}

static void test_detection_after_window(void **state)
{
    (void)state;
    /* Right after: row 50, y = (50 - 49) / (10 - 1): costs little. */
    assert_near(raw_with((const int[]){50, -1}, NULL), 0.11 * S(1.0 / 9) - 1.0, 1e-12);
    assert_true(0.11 * S(1.0 / 9) > -0.035);
    /* Long after: row 90, y = 41 / 9 >= 3: the full A_FP. */
    assert_near(raw_with((const int[]){90, -1}, NULL), -0.11 - 1.0, 1e-12);
    /* A hit and a late FP add up. */
    assert_near(raw_with((const int[]){40, 90, -1}, NULL), 1.0 - 0.11, 1e-12);
}

static void test_no_detection_and_probation(void **state)
{
    (void)state;
    struct nab_result r;
    assert_near(raw_with((const int[]){-1}, &r), -1.0, 0);
    assert_int_equal(r.windows_missed, 1);
    /* Rows 0..14 are the probationary period: a detection there counts for nothing. */
    assert_near(raw_with((const int[]){3, 14, -1}, &r), -1.0, 0);
    assert_int_equal(r.fp, 0);
    assert_near(raw_with((const int[]){15, -1}, NULL), -0.11 - 1.0, 1e-12);
}

/* Builds a file whose scores are scores[] with the window rows [lo, hi] (several files may go
 * in one corpus). */
static void add_file(struct nab_corpus *c, const double *scores, size_t n, size_t lo, size_t hi)
{
    int64_t *ts = malloc(n * sizeof *ts);
    assert_non_null(ts);
    for (size_t i = 0; i < n; i++)
        ts[i] = 1400000000000 + (int64_t)i * MINUTE;
    struct nab_window w = {ts[lo], ts[hi]};
    char err[256];
    assert_int_equal(nab_corpus_add(c, "f.csv", ts, scores, n, &w, 1, err, sizeof err), 0);
    free(ts);
}

static void test_normalisation_perfect_and_null(void **state)
{
    (void)state;
    /* Two files; the perfect detector fires on the first row of each window only. */
    double a[200] = {0}, b[300] = {0};
    a[120] = 1;
    b[200] = 1;
    struct nab_corpus c = {0};
    add_file(&c, a, 200, 120, 139);
    add_file(&c, b, 300, 200, 229);
    const struct nab_profile *profiles[] = {&standard, &low_fn};
    for (int k = 0; k < 2; k++) {
        const struct nab_profile *p = profiles[k];
        struct nab_result r;
        assert_int_equal(nab_optimise(&c, p, &r), 0);
        double perfect = nab_perfect_raw(p, 2), null = nab_null_raw(&c, p);
        assert_near(null, -2 * p->fn_weight, 1e-12);
        assert_near(r.raw, perfect, 1e-12);
        assert_near(nab_normalised(r.raw, null, perfect), 100.0, 1e-9);
        assert_near(nab_normalised(null, null, perfect), 0.0, 0);
    }
    nab_corpus_free(&c);

    /* The null detector itself (every row 0.5), optimised: 0. */
    double h[200], g[300];
    for (int i = 0; i < 200; i++)
        h[i] = 0.5;
    for (int i = 0; i < 300; i++)
        g[i] = 0.5;
    add_file(&c, h, 200, 120, 139);
    add_file(&c, g, 300, 200, 229);
    struct nab_result r;
    assert_int_equal(nab_optimise(&c, &standard, &r), 0);
    assert_near(r.threshold, 1.1, 0); /* better to detect nothing than everything */
    assert_near(nab_normalised(r.raw, nab_null_raw(&c, &standard), nab_perfect_raw(&standard, 2)),
                0.0, 1e-12);
    nab_corpus_free(&c);
}

static void test_window_in_probation(void **state)
{
    (void)state;
    /* A window on rows 2..5 of 100: never scored, not in S_null, but in S_perfect. */
    double s[100] = {0};
    struct nab_corpus c = {0};
    add_file(&c, s, 100, 2, 5);
    assert_int_equal(c.n_windows, 1);
    assert_int_equal(c.n_windows_scored, 0);
    assert_near(nab_null_raw(&c, &standard), 0.0, 0);
    struct nab_result r;
    assert_int_equal(nab_score_at(&c, &standard, 0.5, &r, NULL), 0);
    assert_near(r.raw, 0.0, 0);
    assert_int_equal(r.windows_missed, 0);
    nab_corpus_free(&c);
}

static void test_threshold_choice(void **state)
{
    (void)state;
    /* Row 20 scores 0.9 (an FP before the window), row 42 0.7 (in it), row 60 0.3 (an FP
     * after it). Candidates: 1.1 -> -1; 0.9 -> -1.11; 0.7 -> S(-0.8)/S(-1) - 0.11;
     * 0.3 -> that + 0.11 S(11/9); 0 -> every row. The best: 0.7. */
    double s[ROWS] = {0};
    s[20] = 0.9;
    s[42] = 0.7;
    s[60] = 0.3;
    struct nab_corpus c = {0};
    add_file(&c, s, ROWS, 40, 49);
    struct nab_result r;
    assert_int_equal(nab_optimise(&c, &standard, &r), 0);
    assert_near(r.threshold, 0.7, 0);
    assert_near(r.raw, S(-0.8) / S(-1) - 0.11, 1e-12);
    assert_int_equal(r.windows_detected, 1);
    assert_int_equal(r.fp, 1);
    nab_corpus_free(&c);
}

/* The sweep against the definition: every candidate threshold scored on its own. */
static void test_sweep_matches_brute_force(void **state)
{
    (void)state;
    struct test_rng rng = {0x9e3779b97f4a7c15u};
    for (int round = 0; round < 20; round++) {
        struct nab_corpus c = {0};
        size_t n_files = 1 + test_rng_below(&rng, 4);
        double *all = NULL;
        size_t n_all = 0;
        for (size_t f = 0; f < n_files; f++) {
            size_t n = 50 + test_rng_below(&rng, 400);
            double *s = malloc(n * sizeof *s);
            all = realloc(all, (n_all + n) * sizeof *all);
            assert_non_null(s);
            assert_non_null(all);
            for (size_t i = 0; i < n; i++) {
                /* Coarse scores: many ties, as real detectors give. */
                s[i] = (double)test_rng_below(&rng, 20) / 19.0;
                all[n_all++] = s[i];
            }
            size_t lo = test_rng_below(&rng, n - 10), hi = lo + 1 + test_rng_below(&rng, 9);
            add_file(&c, s, n, lo, hi);
            free(s);
        }
        const struct nab_profile *profiles[] = {&standard, &low_fn};
        for (int k = 0; k < 2; k++) {
            struct nab_result best, r;
            assert_int_equal(nab_score_at(&c, profiles[k], 1.1, &best, NULL), 0);
            for (size_t i = 0; i < n_all; i++) {
                assert_int_equal(nab_score_at(&c, profiles[k], all[i], &r, NULL), 0);
                if (r.raw > best.raw + 1e-12 ||
                    (fabs(r.raw - best.raw) <= 1e-12 && r.threshold > best.threshold))
                    best = r;
            }
            assert_int_equal(nab_optimise(&c, profiles[k], &r), 0);
            assert_near(r.raw, best.raw, 1e-9);
            assert_near(r.threshold, best.threshold, 0);
            /* Per-file parts add up to the whole. */
            struct nab_result *pf = calloc(c.n_files, sizeof *pf);
            assert_non_null(pf);
            assert_int_equal(nab_score_at(&c, profiles[k], r.threshold, &best, pf), 0);
            double sum = 0;
            size_t windows = 0;
            for (size_t f = 0; f < c.n_files; f++) {
                sum += pf[f].raw;
                windows += pf[f].windows_detected + pf[f].windows_missed;
            }
            assert_near(sum, best.raw, 1e-9);
            assert_int_equal(windows, c.n_windows_scored);
            free(pf);
        }
        free(all);
        nab_corpus_free(&c);
    }
}

static void test_bad_files(void **state)
{
    (void)state;
    int64_t ts[10];
    double s[10] = {0};
    for (int i = 0; i < 10; i++)
        ts[i] = (int64_t)i * MINUTE;
    struct nab_corpus c = {0};
    char err[256];
    struct nab_window outside = {100 * MINUTE, 110 * MINUTE};
    assert_int_equal(nab_corpus_add(&c, "x.csv", ts, s, 10, &outside, 1, err, sizeof err),
                     CANARY_EINVAL);
    assert_non_null(strstr(err, "x.csv: window 1 holds no row"));
    struct nab_window overlap[2] = {{1 * MINUTE, 5 * MINUTE}, {4 * MINUTE, 6 * MINUTE}};
    assert_int_equal(nab_corpus_add(&c, "x.csv", ts, s, 10, overlap, 2, err, sizeof err),
                     CANARY_EINVAL);
    assert_non_null(strstr(err, "overlap"));
    s[3] = NAN;
    assert_int_equal(nab_corpus_add(&c, "x.csv", ts, s, 10, NULL, 0, err, sizeof err),
                     CANARY_EINVAL);
    assert_non_null(strstr(err, "row 4"));
    assert_int_equal(c.n_files, 0);
    assert_int_equal(c.n_points, 0);
    nab_corpus_free(&c);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_loaders(void **state)
{
    (void)state;
    char dir[] = "/tmp/canary-nab-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char prof[64], win[64], bad[64];
    snprintf(prof, sizeof prof, "%s/profiles.json", dir);
    snprintf(win, sizeof win, "%s/windows.json", dir);
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    write_file(prof, "{\"standard\": {\"CostMatrix\": {\"tpWeight\": 1.0, \"fnWeight\": 1.0,"
                     " \"fpWeight\": 0.11, \"tnWeight\": 1.0}},\n"
                     " \"reward_low_FN_rate\": {\"CostMatrix\": {\"tpWeight\": 1.0,"
                     " \"fnWeight\": 2.0, \"fpWeight\": 0.11, \"tnWeight\": 1.0}}}\n");
    write_file(win, "{\"a/one.csv\": [], \"b/two.csv\": ["
                    "[\"2014-04-11 00:00:00.000000\", \"2014-04-11 02:00:00.000000\"],"
                    "[\"2014-04-10 07:15:00.000000\", \"2014-04-10 16:45:00.000000\"]]}\n");
    struct nab_profile p[NAB_PROFILES_MAX];
    size_t n;
    char err[512];
    assert_int_equal(nab_profiles_load(prof, p, NAB_PROFILES_MAX, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(p[0].name, "standard");
    assert_near(p[0].fp_weight, 0.11, 0);
    assert_string_equal(p[1].name, "reward_low_FN_rate");
    assert_near(p[1].fn_weight, 2.0, 0);

    struct nab_labels l;
    assert_int_equal(nab_labels_load(win, &l, err, sizeof err), 0);
    assert_int_equal(l.n_files, 2);
    assert_int_equal(l.n_windows, 2);
    assert_null(nab_labels_find(&l, "c/none.csv"));
    assert_int_equal(nab_labels_find(&l, "a/one.csv")->n, 0);
    const struct nab_file_windows *two = nab_labels_find(&l, "b/two.csv");
    assert_int_equal(two->n, 2);
    /* Sorted by start; 2014-04-10 07:15:00 UTC is 1397114100 s. */
    assert_true(two->windows[0].start_ms == 1397114100000);
    assert_true(two->windows[0].end_ms == 1397114100000 + (9 * 60 + 30) * 60000);
    nab_labels_free(&l);

    write_file(bad, "{\"a.csv\": [[\"2014-04-11 02:00:00\", \"2014-04-11\"]]}");
    assert_int_equal(nab_labels_load(bad, &l, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "'a.csv', window 1"));
    write_file(bad, "{\"standard\": {\"CostMatrix\": {\"tpWeight\": \"1\"}}}");
    assert_int_equal(nab_profiles_load(bad, p, NAB_PROFILES_MAX, &n, err, sizeof err),
                     CANARY_EINVAL);
    assert_non_null(strstr(err, "CostMatrix.tpWeight"));
    write_file(bad, "{\"standard\": ");
    assert_int_equal(nab_profiles_load(bad, p, NAB_PROFILES_MAX, &n, err, sizeof err),
                     CANARY_EINVAL);
    assert_non_null(strstr(err, "not valid JSON"));
    assert_int_equal(nab_labels_load("/nonexistent/x.json", &l, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "/nonexistent/x.json"));

    unlink(prof);
    unlink(win);
    unlink(bad);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigmoid_and_probation),
        cmocka_unit_test(test_detection_at_window_start),
        cmocka_unit_test(test_detection_at_window_end),
        cmocka_unit_test(test_only_first_detection_in_window_counts),
        cmocka_unit_test(test_detection_before_window),
        cmocka_unit_test(test_detection_after_window),
        cmocka_unit_test(test_no_detection_and_probation),
        cmocka_unit_test(test_normalisation_perfect_and_null),
        cmocka_unit_test(test_window_in_probation),
        cmocka_unit_test(test_threshold_choice),
        cmocka_unit_test(test_sweep_matches_brute_force),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_loaders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
