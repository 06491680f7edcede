/* plot_svg.h — a small chart writer: one XY chart per SVG document, for the reports the
 * canary tool writes (`canary eval --plots`: score histograms, ROC curves).
 *
 * A chart has a title and an optional subtitle, two linear axes with "nice" ticks (steps of
 * 1, 2 or 5 times a power of ten) and a light grid, and any number of series drawn in the
 * order they were added: histograms (filled, translucent bars under a step outline, so two
 * can overlay), lines (optionally filled below), vertical reference lines and point markers.
 * Each series with a label gets a legend entry. Colours come from the Okabe–Ito palette,
 * which stays distinguishable for colour-blind readers and in greyscale print.
 *
 * Promises:
 *  - the document is standalone, well-formed SVG 1.1 (UTF-8): text is XML-escaped, control
 *    characters dropped and invalid UTF-8 replaced, so any file name can go into a title;
 *  - no NaN or infinity ever reaches the output: non-finite points are skipped (a line
 *    breaks there), an axis without finite data shows 0..1;
 *  - the same chart gives byte-identical output (no clock, no random ids);
 *  - a chart copies what it is given: the caller's arrays and strings may be freed after
 *    each call.
 * Rendering needs nothing but the SVG: fonts are a generic sans-serif stack, styles are
 * attributes (no CSS), so browsers, rsvg-convert and Inkscape draw it alike.
 *
 * Not thread-safe per chart; charts are independent. */
#ifndef CANARY_CLI_PLOT_SVG_H
#define CANARY_CLI_PLOT_SVG_H

#include <stdbool.h>
#include <stddef.h>

/* The Okabe–Ito palette (Okabe & Ito, "Color Universal Design", 2008), plus greys. */
enum plot_color {
    PLOT_BLUE,       /* #0072B2 */
    PLOT_VERMILLION, /* #D55E00 */
    PLOT_GREEN,      /* #009E73 */
    PLOT_ORANGE,     /* #E69F00 */
    PLOT_PURPLE,     /* #CC79A7 */
    PLOT_SKY,        /* #56B4E9 */
    PLOT_GREY,       /* #7A7A7A */
    PLOT_BLACK,      /* #222222 */
    PLOT_COLOR_COUNT
};

/* "#0072B2" and so on; an out-of-range colour gives black. */
const char *plot_color_hex(enum plot_color c);

enum plot_stroke { PLOT_SOLID, PLOT_DASHED, PLOT_DOTTED };

/* How a series is drawn. A NULL style means: the next palette colour, solid, defaults. */
struct plot_style {
    enum plot_color color;
    enum plot_stroke stroke;
    double width;        /* stroke width in px; 0 = the default (2 for lines, 1.5 outlines) */
    double fill_opacity; /* histograms: bar fill (0 = default 0.35); lines: fill between the
                            line and y = 0 when > 0 (default none) */
};

enum plot_axis { PLOT_X, PLOT_Y };

enum plot_legend {
    PLOT_LEGEND_ABOVE,    /* a row between the title and the plot (default): never
                             covers data */
    PLOT_LEGEND_TOP_LEFT, /* boxes inside the plot area */
    PLOT_LEGEND_TOP_RIGHT,
    PLOT_LEGEND_BOTTOM_RIGHT,
    PLOT_LEGEND_NONE
};

struct plot;

/* A new, empty chart of width x height px (each clamped to 200..4000). Returns NULL when
 * out of memory. Free with plot_free. */
struct plot *plot_new(unsigned width_px, unsigned height_px);

/* Frees the chart; NULL is allowed. */
void plot_free(struct plot *p);

/* Sets the title (bold, top left) and the subtitle below it (either may be NULL). */
int plot_set_title(struct plot *p, const char *title, const char *subtitle);

/* Labels an axis and fixes its range. lo and hi may be NaN: that end then comes from the
 * data, widened to the nearest tick (a histogram's y axis always starts at 0). A fixed range
 * keeps exactly [lo, hi] and shows the ticks inside it. Returns 0 or CANARY_EINVAL (lo >= hi
 * when both are given) or CANARY_ENOMEM. */
int plot_set_axis(struct plot *p, enum plot_axis axis, const char *label, double lo, double hi);

/* Where the legend goes (default PLOT_LEGEND_ABOVE). */
void plot_set_legend(struct plot *p, enum plot_legend where);

/* Adds a histogram: n_bins bars, bar i spanning [edges[i], edges[i + 1]) with height
 * heights[i] (edges has n_bins + 1 entries, increasing). label may be NULL (no legend
 * entry). Returns 0, CANARY_EINVAL (n_bins == 0, edges not increasing) or CANARY_ENOMEM. */
int plot_add_histogram(struct plot *p, const char *label, const struct plot_style *style,
                       const double *edges, const double *heights, size_t n_bins);

/* Adds a line through n points (x[i], y[i]) in the given order. Returns 0, CANARY_EINVAL
 * (n == 0) or CANARY_ENOMEM. */
int plot_add_line(struct plot *p, const char *label, const struct plot_style *style,
                  const double *x, const double *y, size_t n);

/* Adds a vertical line across the plot at x (e.g. a threshold). Returns 0 or CANARY_ENOMEM. */
int plot_add_vline(struct plot *p, const char *label, const struct plot_style *style, double x);

/* Adds a point marker (a disc with a white rim) at (x, y). Returns 0 or CANARY_ENOMEM. */
int plot_add_marker(struct plot *p, const char *label, const struct plot_style *style, double x,
                    double y);

/* Renders the chart: *out receives a malloc'd NUL-terminated SVG document (free it) and *len
 * its length (len may be NULL). Returns 0 or CANARY_ENOMEM. */
int plot_render(const struct plot *p, char **out, size_t *len);

/* Renders the chart into the file at path (created or replaced). Returns 0, CANARY_ENOMEM, or
 * CANARY_EIO with a message naming the path in err. */
int plot_save(const struct plot *p, const char *path, char *err, size_t errlen);

/* ---- Helpers (public for the tests and for other charts) ---- */

/* "Nice" ticks covering [lo, hi] (Heckbert, "Nice numbers for graph labels", Graphics Gems,
 * 1990): about `target` ticks (>= 2) at a step of 1, 2 or 5 times a power of ten, the first
 * at or below lo and the last at or above hi. Writes at most cap ticks, returns how many
 * (0 when lo or hi is not finite or cap < 2); *step (may be NULL) receives the step.
 * lo == hi is widened to a unit-sized range around it. */
size_t plot_nice_ticks(double lo, double hi, size_t target, double *ticks, size_t cap,
                       double *step);

/* Formats a tick value with as many decimals as the step needs ("0.25" for step 0.05, "1500"
 * for step 500), never "-0"; values of 1e6 and beyond, and steps below 1e-6, in short
 * scientific form ("2.5e+06"). */
void plot_format_tick(double v, double step, char *buf, size_t len);

/* Appends s to out (capacity outlen, always NUL-terminated) as XML text: & < > " ' escaped,
 * control characters other than tab and newline dropped, invalid UTF-8 bytes replaced by
 * U+FFFD. Returns the length the whole result needs (excluding the NUL), like snprintf. */
size_t plot_escape(const char *s, char *out, size_t outlen);

#endif
