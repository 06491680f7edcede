/* test_plot_svg.c — unit tests of the chart writer (src/cli/plot_svg.c): nice ticks, tick
 * labels, XML escaping, and rendered documents that are well-formed, deterministic and free
 * of NaN and infinity whatever data they are given. */
#include "cli/plot_svg.h"
#include "core/error.h"
#include "core/utf8.h"
#include "unit_support.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* True when step is 1, 2 or 5 times a power of ten. */
static bool nice_step(double step)
{
    double e = floor(log10(step));
    double f = step / pow(10, e);
    return fabs(f - 1) < 1e-9 || fabs(f - 2) < 1e-9 || fabs(f - 5) < 1e-9 || fabs(f - 10) < 1e-9;
}

/* Checks the promises of plot_nice_ticks for one range. */
static void check_ticks(double lo, double hi, size_t target)
{
    double t[32], step = 0;
    size_t n = plot_nice_ticks(lo, hi, target, t, 32, &step);
    assert_true(n >= 2);
    assert_true(nice_step(step));
    assert_true(t[0] <= fmin(lo, hi) + 1e-12 * fabs(lo));
    assert_true(t[n - 1] >= fmax(lo, hi) - 1e-12 * fabs(hi));
    for (size_t i = 1; i < n; i++)
        assert_true(fabs((t[i] - t[i - 1]) - step) <= step * 1e-6);
    /* About the asked number: never more than 2.5 times it (plus the two ends). */
    assert_true(n <= 2 * target + 3);
}

static void test_nice_ticks_known(void **state)
{
    (void)state;
    double t[32], step;
    size_t n = plot_nice_ticks(0, 1, 6, t, 32, &step);
    assert_int_equal(n, 6);
    assert_true(fabs(step - 0.2) < 1e-12);
    assert_true(t[0] == 0 && fabs(t[5] - 1) < 1e-12);

    n = plot_nice_ticks(0.3, 0.8, 6, t, 32, &step);
    assert_true(fabs(step - 0.1) < 1e-12);
    assert_true(fabs(t[0] - 0.3) < 1e-12); /* not 0.2: 0.3 / 0.1 is 2.9999... in doubles */
    assert_true(fabs(t[n - 1] - 0.8) < 1e-12);

    n = plot_nice_ticks(-3.7, 12.1, 5, t, 32, &step);
    assert_true(fabs(step - 5) < 1e-12);
    assert_true(t[0] == -5 && t[n - 1] == 15);

    n = plot_nice_ticks(0, 1234567, 5, t, 32, &step);
    assert_true(fabs(step - 500000) < 1e-6);
}

static void test_nice_ticks_edges(void **state)
{
    (void)state;
    double t[32], step;
    assert_int_equal(plot_nice_ticks(NAN, 1, 5, t, 32, &step), 0);
    assert_int_equal(plot_nice_ticks(0, INFINITY, 5, t, 32, &step), 0);
    assert_int_equal(plot_nice_ticks(0, 1, 5, t, 1, &step), 0);
    assert_int_equal(plot_nice_ticks(-DBL_MAX, DBL_MAX, 5, t, 32, &step), 0);
    /* A single value is widened around it. */
    size_t n = plot_nice_ticks(7, 7, 5, t, 32, &step);
    assert_true(n >= 2 && t[0] < 7 && t[n - 1] > 7);
    n = plot_nice_ticks(0, 0, 5, t, 32, &step);
    assert_true(n >= 2 && t[0] < 0 && t[n - 1] > 0);
    /* Reversed ends work like ordered ones. */
    check_ticks(10, -10, 5);
    /* A small cap takes a coarser step rather than cutting the range short. */
    n = plot_nice_ticks(0, 100, 50, t, 4, &step);
    assert_true(n >= 2 && n <= 4 && t[0] <= 0 && t[n - 1] >= 100);
    /* No "-0": a tick at zero is exactly zero. */
    n = plot_nice_ticks(-0.3, 0.3, 7, t, 32, &step);
    for (size_t i = 0; i < n; i++) {
        if (fabs(t[i]) < step / 2)
            assert_false(signbit(t[i]));
    }
}

static void test_nice_ticks_random(void **state)
{
    (void)state;
    struct test_rng r = {0x9E3779B97F4A7C15ULL};
    for (int i = 0; i < 5000; i++) {
        double scale = pow(10, (double)test_rng_below(&r, 24) - 12);
        double lo = (test_rng_uniform(&r) - 0.5) * scale * 10;
        double hi = lo + test_rng_uniform(&r) * scale;
        check_ticks(lo, hi, 2 + test_rng_below(&r, 10));
    }
}

static void test_format_tick(void **state)
{
    (void)state;
    char b[64];
    plot_format_tick(0.25, 0.05, b, sizeof b);
    assert_string_equal(b, "0.25");
    plot_format_tick(1500, 500, b, sizeof b);
    assert_string_equal(b, "1500");
    plot_format_tick(0.2, 0.2, b, sizeof b);
    assert_string_equal(b, "0.2");
    plot_format_tick(1, 0.2, b, sizeof b);
    assert_string_equal(b, "1.0");
    plot_format_tick(-1e-17, 0.1, b, sizeof b);
    assert_string_equal(b, "0.0");
    plot_format_tick(-0.0, 1, b, sizeof b);
    assert_string_equal(b, "0");
    plot_format_tick(2500000, 500000, b, sizeof b);
    assert_string_equal(b, "2.5e+06");
    plot_format_tick(NAN, 1, b, sizeof b);
    assert_string_equal(b, "");
}

static void test_escape(void **state)
{
    (void)state;
    char b[128];
    size_t n = plot_escape("a<b & \"c\" 'd'>", b, sizeof b);
    assert_string_equal(b, "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
    assert_int_equal(n, strlen(b));
    /* Control characters go, tab and newline stay. */
    plot_escape("x\x01y\tz\n\x1b[0m", b, sizeof b);
    assert_string_equal(b, "xy\tz\n[0m");
    /* Valid UTF-8 stays; a bad byte becomes U+FFFD; a cut sequence at the end too. */
    plot_escape("caf\xc3\xa9 \xff ok \xe2\x82", b, sizeof b);
    assert_string_equal(b, "caf\xc3\xa9 \xef\xbf\xbd ok \xef\xbf\xbd\xef\xbf\xbd");
    assert_true(utf8_valid(b, strlen(b), NULL));
    /* Overlong and surrogate encodings are not valid UTF-8 either. */
    plot_escape("\xc0\xaf\xed\xa0\x80", b, sizeof b);
    assert_true(utf8_valid(b, strlen(b), NULL));
    assert_null(strchr(b, '/'));
    /* A short buffer holds whole pieces only and the result says what was needed. */
    n = plot_escape("ab&cd", b, 5);
    assert_int_equal(n, 9);
    assert_string_equal(b, "ab");
    n = plot_escape("abc", NULL, 0);
    assert_int_equal(n, 3);
    n = plot_escape(NULL, b, sizeof b);
    assert_int_equal(n, 0);
    assert_string_equal(b, "");
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Checks a rendered document: the prolog and root, balanced groups, no NaN or inf anywhere,
 * valid UTF-8, nothing but the expected characters in attribute numbers. */
static void check_document(const char *svg, size_t len)
{
    assert_int_equal(strlen(svg), len);
    assert_true(strncmp(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ", 44) == 0);
    assert_true(len > 8 && strcmp(svg + len - 7, "</svg>\n") == 0);
    assert_int_equal(count(svg, "<svg"), 1);
    assert_int_equal(count(svg, "<g"), count(svg, "</g>"));
    assert_int_equal(count(svg, "<text"), count(svg, "</text>"));
    assert_true(utf8_valid(svg, len, NULL));
    char *lower = strdup(svg);
    assert_non_null(lower);
    for (char *c = lower; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    /* "nan"/"inf" as printf writes them: after a quote, a space or a path command. */
    static const char *const bad[] = {"\"nan", "\"-nan", " nan", "\"inf", "\"-inf", " inf",
                                      "mnan",  "lnan",   "vnan", "hnan",  "minf",   "linf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (strstr(lower, bad[i]) != NULL)
            fail_msg("rendered SVG holds \"%s\"", bad[i]);
    }
    free(lower);
}

static struct plot *sample_chart(void)
{
    struct plot *p = plot_new(720, 440);
    assert_non_null(p);
    assert_int_equal(plot_set_title(p, "Scores <model> & \"data\"", "a subtitle"), 0);
    assert_int_equal(plot_set_axis(p, PLOT_X, "anomaly score", NAN, NAN), 0);
    assert_int_equal(plot_set_axis(p, PLOT_Y, "share of rows (%)", NAN, NAN), 0);
    double edges[6] = {0.3, 0.4, 0.5, 0.6, 0.7, 0.8}, h1[5] = {10, 40, 30, 5, 0},
           h2[5] = {0, 2, 8, NAN, 30};
    struct plot_style blue = {.color = PLOT_BLUE}, red = {.color = PLOT_VERMILLION};
    assert_int_equal(plot_add_histogram(p, "normal", &blue, edges, h1, 5), 0);
    assert_int_equal(plot_add_histogram(p, "anomalous", &red, edges, h2, 5), 0);
    double x[5] = {0.3, 0.4, NAN, 0.6, 0.7}, y[5] = {1, 2, 3, INFINITY, 5};
    assert_int_equal(plot_add_line(p, "a line", NULL, x, y, 5), 0);
    struct plot_style dash = {.color = PLOT_BLACK, .stroke = PLOT_DASHED};
    assert_int_equal(plot_add_vline(p, "threshold 0.61", &dash, 0.61), 0);
    assert_int_equal(plot_add_vline(p, NULL, &dash, NAN), 0);
    assert_int_equal(plot_add_marker(p, "point", NULL, 0.5, 20), 0);
    assert_int_equal(plot_add_marker(p, NULL, NULL, NAN, 20), 0);
    return p;
}

static void test_render_sample(void **state)
{
    (void)state;
    struct plot *p = sample_chart();
    char *svg;
    size_t len;
    assert_int_equal(plot_render(p, &svg, &len), 0);
    check_document(svg, len);
    assert_non_null(strstr(svg, "<title>Scores &lt;model&gt; &amp; &quot;data&quot;</title>"));
    assert_non_null(strstr(svg, ">anomaly score</text>"));
    assert_non_null(strstr(svg, ">threshold 0.61</text>"));
    assert_non_null(strstr(svg, "stroke-dasharray"));
    assert_non_null(strstr(svg, "<circle"));
    assert_non_null(strstr(svg, "clip-path=\"url(#plot-area)\""));
    assert_true(count(svg, "<rect") >= 8);
    /* Deterministic: the same chart, the same bytes. */
    char *again;
    assert_int_equal(plot_render(p, &again, NULL), 0);
    assert_string_equal(svg, again);
    free(again);
    free(svg);
    plot_free(p);
}

static void test_render_empty_and_degenerate(void **state)
{
    (void)state;
    /* Nothing at all. */
    struct plot *p = plot_new(10, 10); /* clamped to the minimum size */
    char *svg;
    size_t len;
    assert_int_equal(plot_render(p, &svg, &len), 0);
    check_document(svg, len);
    assert_non_null(strstr(svg, "width=\"200\""));
    free(svg);
    plot_free(p);

    /* Only non-finite data, and extreme values. */
    p = plot_new(600, 400);
    double x[3] = {NAN, NAN, NAN}, y[3] = {NAN, INFINITY, -INFINITY};
    assert_int_equal(plot_add_line(p, "nothing", NULL, x, y, 3), 0);
    assert_int_equal(plot_render(p, &svg, &len), 0);
    check_document(svg, len);
    free(svg);
    double bx[2] = {-1e308, 1e308}, by[2] = {1e308, -1e308};
    assert_int_equal(plot_add_line(p, "huge", NULL, bx, by, 2), 0);
    assert_int_equal(plot_render(p, &svg, &len), 0);
    check_document(svg, len);
    free(svg);
    plot_free(p);

    /* A fixed range keeps its ends; data outside it is clipped, not an error. */
    p = plot_new(520, 520);
    assert_int_equal(plot_set_axis(p, PLOT_X, "false positive rate", 0, 1), 0);
    assert_int_equal(plot_set_axis(p, PLOT_Y, "true positive rate", 0, 1), 0);
    double rx[4] = {0, 0.1, 0.5, 2}, ry[4] = {0, 0.9, 0.95, 3};
    struct plot_style fill = {.color = PLOT_BLUE, .fill_opacity = 0.1};
    assert_int_equal(plot_add_line(p, "ROC (AUC 0.97)", &fill, rx, ry, 4), 0);
    plot_set_legend(p, PLOT_LEGEND_BOTTOM_RIGHT);
    assert_int_equal(plot_render(p, &svg, &len), 0);
    check_document(svg, len);
    assert_non_null(strstr(svg, ">1.0</text>"));
    assert_null(strstr(svg, ">1.2</text>"));
    free(svg);
    plot_free(p);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct plot *p = plot_new(400, 300);
    double e[3] = {0, 1, 1}, h[2] = {1, 2};
    assert_int_equal(plot_add_histogram(p, "x", NULL, e, h, 2), CANARY_EINVAL);
    double e2[3] = {0, NAN, 1};
    assert_int_equal(plot_add_histogram(p, "x", NULL, e2, h, 2), CANARY_EINVAL);
    assert_int_equal(plot_add_histogram(p, "x", NULL, e, h, 0), CANARY_EINVAL);
    assert_int_equal(plot_add_line(p, "x", NULL, e, h, 0), CANARY_EINVAL);
    assert_int_equal(plot_set_axis(p, PLOT_X, "x", 1, 1), CANARY_EINVAL);
    assert_int_equal(plot_set_axis(p, PLOT_X, "x", 2, 1), CANARY_EINVAL);
    assert_int_equal(plot_set_axis(p, PLOT_X, "x", 0, INFINITY), CANARY_EINVAL);
    assert_int_equal(plot_set_axis(p, PLOT_Y, NULL, NAN, 5), 0);
    char *svg;
    size_t len;
    assert_int_equal(plot_render(p, &svg, &len), 0);
    check_document(svg, len);
    free(svg);
    plot_free(p);
    plot_free(NULL);
    assert_string_equal(plot_color_hex(PLOT_BLUE), "#0072B2");
    assert_string_equal(plot_color_hex((enum plot_color)99), "#222222");
}

static void test_save(void **state)
{
    (void)state;
    struct plot *p = sample_chart();
    char err[256] = "";
    assert_int_equal(plot_save(p, "/nonexistent-dir/x.svg", err, sizeof err), CANARY_EIO);
    assert_non_null(strstr(err, "/nonexistent-dir/x.svg"));
    char path[] = "/tmp/canary-plot-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(plot_save(p, path, err, sizeof err), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    check_document(buf, n);
    plot_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nice_ticks_known),
        cmocka_unit_test(test_nice_ticks_edges),
        cmocka_unit_test(test_nice_ticks_random),
        cmocka_unit_test(test_format_tick),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_render_sample),
        cmocka_unit_test(test_render_empty_and_degenerate),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_save),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
