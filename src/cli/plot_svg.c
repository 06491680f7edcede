/* plot_svg.c — the chart writer of plot_svg.h: keeps copies of the series, works out the
 * axis ranges and the layout (margins from the longest tick label, legend rows), and prints
 * the SVG into a growing buffer.
 *
 * Layout, outside in: a 16 px pad; the title and subtitle at the top left; the legend row
 * (PLOT_LEGEND_ABOVE); the plot area, whose left margin fits the widest y tick label and the
 * rotated y axis label, and whose bottom margin fits the x tick labels and the x label. Text
 * widths are estimated from the character count (no font metrics in a CLI), generously, so
 * nothing overlaps with the usual sans-serif fonts. */
#include "cli/plot_svg.h"

#include "core/error.h"
#include "core/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAD           16.0
#define TITLE_SIZE    17.0
#define SUBTITLE_SIZE 12.5
#define LABEL_SIZE    13.0
#define TICK_SIZE     11.5
#define LEGEND_SIZE   12.5
#define CHAR_WIDTH    0.58 /* average advance of a sans-serif character, in font sizes */
#define MAX_TICKS     24
#define FONT_FAMILY   "Helvetica Neue, Helvetica, Arial, DejaVu Sans, Liberation Sans, sans-serif"
#define INK           "#222222" /* title */
#define INK_SOFT      "#555555" /* subtitle, tick labels */
#define AXIS_COLOR    "#8c8c8c"
#define GRID_COLOR    "#e9e9e9"

static const char *const palette[PLOT_COLOR_COUNT] = {
    "#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#7A7A7A", "#222222",
};

const char *plot_color_hex(enum plot_color c)
{
    return (unsigned)c < PLOT_COLOR_COUNT ? palette[c] : palette[PLOT_BLACK];
}

enum series_kind { SERIES_HISTOGRAM, SERIES_LINE, SERIES_VLINE, SERIES_MARKER };

struct series {
    enum series_kind kind;
    char *label; /* NULL: no legend entry */
    struct plot_style style;
    double *x; /* histogram: n + 1 edges; line: n; vline, marker: 1 */
    double *y; /* histogram: n heights; line: n; marker: 1; vline: NULL */
    size_t n;
};

struct axis {
    char *label;
    double lo, hi; /* NaN = from the data */
};

struct plot {
    unsigned width, height;
    char *title, *subtitle;
    struct axis axes[2];
    enum plot_legend legend;
    struct series *series;
    size_t n_series, cap_series;
    unsigned next_color; /* for series added without a style */
};

/* ---- helpers ------------------------------------------------------------------------ */

static double nice_number(double x, bool round)
{
    double e = floor(log10(x));
    double f = x / pow(10, e);
    double nf;
    if (round)
        nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else
        nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * pow(10, e);
}

size_t plot_nice_ticks(double lo, double hi, size_t target, double *ticks, size_t cap, double *step)
{
    if (!isfinite(lo) || !isfinite(hi) || cap < 2)
        return 0;
    if (lo > hi) {
        double t = lo;
        lo = hi;
        hi = t;
    }
    if (!(hi - lo > fmax(fabs(lo), fabs(hi)) * 1e-12)) {
        double w = fmax(fabs(lo) * 0.1, 0.5);
        lo -= w;
        hi += w;
    }
    if (!isfinite(hi - lo))
        return 0;
    if (target < 2)
        target = 2;
    double d = nice_number(nice_number(hi - lo, false) / (double)(target - 1), true);
    double k0, k1;
    for (;;) {
        /* The tolerance keeps 0.3 / 0.1 = 2.9999999999999996 from starting a tick early. */
        k0 = floor(lo / d + 1e-9);
        k1 = ceil(hi / d - 1e-9);
        if (k1 - k0 + 1 <= (double)cap)
            break;
        d = nice_number(d * 2, true);
    }
    size_t n = (size_t)(k1 - k0) + 1;
    for (size_t i = 0; i < n; i++) {
        double v = (k0 + (double)i) * d;
        ticks[i] = fabs(v) < d * 1e-9 ? 0 : v;
    }
    if (step != NULL)
        *step = d;
    return n;
}

void plot_format_tick(double v, double step, char *buf, size_t len)
{
    if (len == 0)
        return;
    if (!isfinite(v)) {
        snprintf(buf, len, "%s", "");
        return;
    }
    if (step > 0 && isfinite(step) && fabs(v) < step * 1e-6)
        v = 0; /* a tick at zero computed as 1e-17 */
    int decimals = 0;
    if (step > 0 && step < 1 && isfinite(step))
        decimals = (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) >= 1e6 || decimals > 6)
        snprintf(buf, len, "%.3g", v);
    else
        snprintf(buf, len, "%.*f", decimals, v);
    /* "-0", "-0.00": a value that rounds to zero prints without a sign. */
    if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1))
        memmove(buf, buf + 1, strlen(buf));
}

/* Output of plot_escape: whole pieces only, so a short buffer never ends inside an entity
 * or a UTF-8 sequence. */
struct esc_out {
    char *out;
    size_t outlen, need, written;
    bool full;
};

static void esc_emit(struct esc_out *o, const void *piece, size_t n)
{
    if (!o->full && o->need + n < o->outlen) {
        memcpy(o->out + o->need, piece, n);
        o->written = o->need + n;
    } else {
        o->full = true;
    }
    o->need += n;
}

size_t plot_escape(const char *s, char *out, size_t outlen)
{
    struct esc_out o = {.out = out, .outlen = outlen};
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; u != NULL && u[i] != '\0';) {
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            size_t have = 1;
            while (have < n && u[i + have] != '\0')
                have++;
            if (have == n && utf8_valid((const char *)&u[i], n, NULL)) {
                esc_emit(&o, &u[i], n);
                i += n;
            } else {
                esc_emit(&o, "\xEF\xBF\xBD", 3); /* U+FFFD, for one bad byte */
                i++;
            }
            continue;
        }
        if (c == '&')
            esc_emit(&o, "&amp;", 5);
        else if (c == '<')
            esc_emit(&o, "&lt;", 4);
        else if (c == '>')
            esc_emit(&o, "&gt;", 4);
        else if (c == '"')
            esc_emit(&o, "&quot;", 6);
        else if (c == '\'')
            esc_emit(&o, "&#39;", 5);
        else if ((c >= 0x20 && c != 0x7f) || c == '\t' || c == '\n')
            esc_emit(&o, &u[i], 1); /* other control characters are not allowed in XML */
        i++;
    }
    if (outlen > 0)
        out[o.written] = '\0';
    return o.need;
}

/* The UTF-8 characters in s (for width estimates). */
static size_t text_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *u = (const unsigned char *)s; u && *u; u++)
        n += (*u & 0xC0) != 0x80;
    return n;
}

static double text_width(const char *s, double size)
{
    return (double)text_chars(s) * size * CHAR_WIDTH;
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = true;
    return d;
}

/* ---- the growing output buffer ------------------------------------------------------ */

struct sbuf {
    char *data;
    size_t len, cap;
    bool oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *grown = realloc(b->data, cap);
    if (grown == NULL) {
        b->oom = true;
        return;
    }
    b->data = grown;
    b->cap = cap;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n >= 0) {
        sb_reserve(b, (size_t)n);
        if (!b->oom) {
            vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
            b->len += (size_t)n;
        }
    }
    va_end(ap2);
}

/* Appends s as escaped XML text. */
static void sb_text(struct sbuf *b, const char *s)
{
    size_t n = plot_escape(s, NULL, 0);
    sb_reserve(b, n);
    if (b->oom)
        return;
    plot_escape(s, b->data + b->len, n + 1);
    b->len += n;
}

/* ---- building a chart --------------------------------------------------------------- */

struct plot *plot_new(unsigned width_px, unsigned height_px)
{
    struct plot *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->width = width_px < 200 ? 200 : width_px > 4000 ? 4000 : width_px;
    p->height = height_px < 200 ? 200 : height_px > 4000 ? 4000 : height_px;
    for (int a = 0; a < 2; a++)
        p->axes[a].lo = p->axes[a].hi = NAN;
    p->legend = PLOT_LEGEND_ABOVE;
    return p;
}

void plot_free(struct plot *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_series; i++) {
        free(p->series[i].label);
        free(p->series[i].x);
        free(p->series[i].y);
    }
    free(p->series);
    free(p->title);
    free(p->subtitle);
    free(p->axes[0].label);
    free(p->axes[1].label);
    free(p);
}

int plot_set_title(struct plot *p, const char *title, const char *subtitle)
{
    bool oom = false;
    char *t = dup_or_null(title, &oom), *s = dup_or_null(subtitle, &oom);
    if (oom) {
        free(t);
        free(s);
        return CANARY_ENOMEM;
    }
    free(p->title);
    free(p->subtitle);
    p->title = t;
    p->subtitle = s;
    return 0;
}

int plot_set_axis(struct plot *p, enum plot_axis axis, const char *label, double lo, double hi)
{
    if (axis != PLOT_X && axis != PLOT_Y)
        return CANARY_EINVAL;
    if (isinf(lo) || isinf(hi) || (!isnan(lo) && !isnan(hi) && !(lo < hi)))
        return CANARY_EINVAL;
    bool oom = false;
    char *l = dup_or_null(label, &oom);
    if (oom)
        return CANARY_ENOMEM;
    struct axis *a = &p->axes[axis];
    free(a->label);
    a->label = l;
    a->lo = lo;
    a->hi = hi;
    return 0;
}

void plot_set_legend(struct plot *p, enum plot_legend where)
{
    p->legend = where;
}

/* Appends a series, copying label, style and the n_x / n_y values. */
static int add_series(struct plot *p, enum series_kind kind, const char *label,
                      const struct plot_style *style, const double *x, size_t n_x, const double *y,
                      size_t n_y, size_t n)
{
    if (p->n_series == p->cap_series) {
        size_t cap = p->cap_series ? p->cap_series * 2 : 8;
        struct series *grown = realloc(p->series, cap * sizeof *grown);
        if (grown == NULL)
            return CANARY_ENOMEM;
        p->series = grown;
        p->cap_series = cap;
    }
    struct series s = {.kind = kind, .n = n};
    if (style != NULL) {
        s.style = *style;
    } else {
        s.style.color = (enum plot_color)(p->next_color % PLOT_GREY);
        p->next_color++;
    }
    bool oom = false;
    s.label = dup_or_null(label, &oom);
    s.x = malloc(n_x * sizeof *s.x);
    s.y = n_y ? malloc(n_y * sizeof *s.y) : NULL;
    if (oom || s.x == NULL || (n_y && s.y == NULL)) {
        free(s.label);
        free(s.x);
        free(s.y);
        return CANARY_ENOMEM;
    }
    memcpy(s.x, x, n_x * sizeof *s.x);
    if (n_y)
        memcpy(s.y, y, n_y * sizeof *s.y);
    p->series[p->n_series++] = s;
    return 0;
}

int plot_add_histogram(struct plot *p, const char *label, const struct plot_style *style,
                       const double *edges, const double *heights, size_t n_bins)
{
    if (n_bins == 0)
        return CANARY_EINVAL;
    for (size_t i = 0; i < n_bins; i++) {
        if (!(edges[i] < edges[i + 1]) || !isfinite(edges[i]) || !isfinite(edges[i + 1]))
            return CANARY_EINVAL;
    }
    return add_series(p, SERIES_HISTOGRAM, label, style, edges, n_bins + 1, heights, n_bins,
                      n_bins);
}

int plot_add_line(struct plot *p, const char *label, const struct plot_style *style,
                  const double *x, const double *y, size_t n)
{
    if (n == 0)
        return CANARY_EINVAL;
    return add_series(p, SERIES_LINE, label, style, x, n, y, n, n);
}

int plot_add_vline(struct plot *p, const char *label, const struct plot_style *style, double x)
{
    return add_series(p, SERIES_VLINE, label, style, &x, 1, NULL, 0, 1);
}

int plot_add_marker(struct plot *p, const char *label, const struct plot_style *style, double x,
                    double y)
{
    return add_series(p, SERIES_MARKER, label, style, &x, 1, &y, 1, 1);
}

/* ---- rendering ---------------------------------------------------------------------- */

/* An axis as drawn: its range and ticks. */
struct scale {
    double lo, hi;
    double ticks[MAX_TICKS];
    size_t n_ticks;
    double step;
    double px_lo, px_hi; /* pixel positions of lo and hi */
};

static void extend(double *lo, double *hi, double v)
{
    if (!isfinite(v))
        return;
    if (isnan(*lo) || v < *lo)
        *lo = v;
    if (isnan(*hi) || v > *hi)
        *hi = v;
}

/* The data extent of an axis over every series; on the y axis a histogram or a filled line
 * brings in 0 (bars and areas stand on it). */
static void data_extent(const struct plot *p, enum plot_axis axis, double *lo, double *hi)
{
    *lo = *hi = NAN;
    for (size_t i = 0; i < p->n_series; i++) {
        const struct series *s = &p->series[i];
        if (axis == PLOT_X) {
            size_t n = s->kind == SERIES_HISTOGRAM ? s->n + 1 : s->n;
            for (size_t k = 0; k < n; k++)
                extend(lo, hi, s->x[k]);
        } else if (s->kind != SERIES_VLINE) {
            for (size_t k = 0; k < s->n; k++) {
                /* A line's points count only where x is finite too (they are drawn). */
                if (s->kind == SERIES_HISTOGRAM || isfinite(s->x[k]))
                    extend(lo, hi, s->y[k]);
            }
            if (s->kind == SERIES_HISTOGRAM ||
                (s->kind == SERIES_LINE && s->style.fill_opacity > 0))
                extend(lo, hi, 0);
        }
    }
}

static void make_scale(const struct plot *p, enum plot_axis axis, size_t target, struct scale *sc)
{
    const struct axis *a = &p->axes[axis];
    double dlo, dhi;
    data_extent(p, axis, &dlo, &dhi);
    double lo = isnan(a->lo) ? dlo : a->lo;
    double hi = isnan(a->hi) ? dhi : a->hi;
    if (isnan(lo) && isnan(hi)) {
        lo = 0;
        hi = 1;
    } else if (isnan(lo)) {
        lo = hi < 0 ? hi * 2 : hi > 0 ? 0 : -1;
    } else if (isnan(hi)) {
        hi = lo > 0 ? lo * 2 : lo < 0 ? 0 : 1;
    }
    if (lo > hi) {
        double t = lo;
        lo = hi;
        hi = t;
    }
    double ticks[MAX_TICKS];
    size_t n = plot_nice_ticks(lo, hi, target, ticks, MAX_TICKS, &sc->step);
    if (n == 0) { /* not finite after all (extreme values): a plain unit range */
        lo = 0;
        hi = 1;
        n = plot_nice_ticks(lo, hi, target, ticks, MAX_TICKS, &sc->step);
    }
    /* Auto ends widen to the outer ticks; fixed ends stay where they were put. */
    sc->lo = isnan(a->lo) ? fmin(ticks[0], lo) : lo;
    sc->hi = isnan(a->hi) ? fmax(ticks[n - 1], hi) : hi;
    if (!(sc->hi > sc->lo)) {
        sc->lo = ticks[0];
        sc->hi = ticks[n - 1];
    }
    double eps = sc->step * 1e-6;
    sc->n_ticks = 0;
    for (size_t i = 0; i < n; i++) {
        if (ticks[i] >= sc->lo - eps && ticks[i] <= sc->hi + eps)
            sc->ticks[sc->n_ticks++] = ticks[i];
    }
}

/* Maps a data value to a pixel position; huge values are clamped far outside the plot (the
 * clip path hides them) so the numbers printed stay short and finite. */
static double to_px(const struct scale *sc, double v)
{
    double t = (v - sc->lo) / (sc->hi - sc->lo);
    double px = sc->px_lo + t * (sc->px_hi - sc->px_lo);
    if (!isfinite(px))
        px = v > 0 ? 1e5 : -1e5;
    return fmax(-1e5, fmin(1e5, px));
}

static void stroke_attrs(struct sbuf *b, const struct plot_style *st, double default_width)
{
    double w = st->width > 0 && isfinite(st->width) ? st->width : default_width;
    sb_printf(b, " stroke=\"%s\" stroke-width=\"%.2f\"", plot_color_hex(st->color), w);
    if (st->stroke == PLOT_DASHED)
        sb_printf(b, " stroke-dasharray=\"%.1f %.1f\"", 3 * w, 2 * w);
    else if (st->stroke == PLOT_DOTTED)
        sb_printf(b, " stroke-dasharray=\"0.1 %.1f\" stroke-linecap=\"round\"", 2.5 * w);
}

static double hist_opacity(const struct plot_style *st)
{
    return st->fill_opacity > 0 && st->fill_opacity <= 1 ? st->fill_opacity : 0.35;
}

static void draw_histogram(struct sbuf *b, const struct series *s, const struct scale *sx,
                           const struct scale *sy)
{
    const char *color = plot_color_hex(s->style.color);
    double y0 = to_px(sy, fmax(0, sy->lo));
    sb_printf(b, "<g fill=\"%s\" fill-opacity=\"%.2f\">\n", color, hist_opacity(&s->style));
    for (size_t i = 0; i < s->n; i++) {
        double h = s->y[i];
        if (!isfinite(h) || h <= 0)
            continue;
        double xa = to_px(sx, s->x[i]), xb = to_px(sx, s->x[i + 1]), yh = to_px(sy, h);
        sb_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", xa,
                  fmin(yh, y0), fabs(xb - xa), fabs(y0 - yh));
    }
    sb_printf(b, "</g>\n");
    /* One step outline over the bars: crisper than a border per bar, and it shows where two
     * overlaid histograms cross. */
    sb_printf(b, "<path fill=\"none\" stroke-linejoin=\"miter\"");
    stroke_attrs(b, &s->style, 1.5);
    sb_printf(b, " d=\"M%.2f %.2f", to_px(sx, s->x[0]), y0);
    for (size_t i = 0; i < s->n; i++) {
        double h = isfinite(s->y[i]) && s->y[i] > 0 ? s->y[i] : 0;
        sb_printf(b, "V%.2fH%.2f", h > 0 ? to_px(sy, h) : y0, to_px(sx, s->x[i + 1]));
    }
    sb_printf(b, "V%.2f\"/>\n", y0);
}

static void draw_line(struct sbuf *b, const struct series *s, const struct scale *sx,
                      const struct scale *sy)
{
    /* Runs of finite points; each is one path (and one filled area). */
    double y0 = to_px(sy, fmin(fmax(0, sy->lo), sy->hi));
    size_t i = 0;
    while (i < s->n) {
        while (i < s->n && !(isfinite(s->x[i]) && isfinite(s->y[i])))
            i++;
        size_t start = i;
        while (i < s->n && isfinite(s->x[i]) && isfinite(s->y[i]))
            i++;
        if (i == start)
            break;
        if (s->style.fill_opacity > 0 && i - start > 1) {
            sb_printf(b, "<path stroke=\"none\" fill=\"%s\" fill-opacity=\"%.2f\" d=\"M%.2f %.2f",
                      plot_color_hex(s->style.color), fmin(s->style.fill_opacity, 1),
                      to_px(sx, s->x[start]), y0);
            for (size_t k = start; k < i; k++)
                sb_printf(b, "L%.2f %.2f", to_px(sx, s->x[k]), to_px(sy, s->y[k]));
            sb_printf(b, "L%.2f %.2fZ\"/>\n", to_px(sx, s->x[i - 1]), y0);
        }
        sb_printf(b, "<path fill=\"none\" stroke-linejoin=\"round\" stroke-linecap=\"round\"");
        stroke_attrs(b, &s->style, 2);
        sb_printf(b, " d=\"");
        for (size_t k = start; k < i; k++)
            sb_printf(b, "%c%.2f %.2f", k == start ? 'M' : 'L', to_px(sx, s->x[k]),
                      to_px(sy, s->y[k]));
        if (i - start == 1) /* a single point: a dot, not nothing */
            sb_printf(b, "h0.01");
        sb_printf(b, "\"/>\n");
    }
}

static void draw_series(struct sbuf *b, const struct series *s, const struct scale *sx,
                        const struct scale *sy)
{
    switch (s->kind) {
    case SERIES_HISTOGRAM:
        draw_histogram(b, s, sx, sy);
        break;
    case SERIES_LINE:
        draw_line(b, s, sx, sy);
        break;
    case SERIES_VLINE:
        if (isfinite(s->x[0])) {
            double x = to_px(sx, s->x[0]);
            sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"", x, sy->px_hi, x,
                      sy->px_lo);
            stroke_attrs(b, &s->style, 1.75);
            sb_printf(b, "/>\n");
        }
        break;
    case SERIES_MARKER:
        if (isfinite(s->x[0]) && isfinite(s->y[0]))
            sb_printf(b,
                      "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"5\" fill=\"%s\" stroke=\"#ffffff\" "
                      "stroke-width=\"1.5\"/>\n",
                      to_px(sx, s->x[0]), to_px(sy, s->y[0]), plot_color_hex(s->style.color));
        break;
    }
}

#define SWATCH_W  22.0
#define ENTRY_GAP 20.0

/* Draws the legend swatch of s with its left edge at x, centred on y. */
static void draw_swatch(struct sbuf *b, const struct series *s, double x, double y)
{
    const char *color = plot_color_hex(s->style.color);
    switch (s->kind) {
    case SERIES_HISTOGRAM:
        sb_printf(b,
                  "<rect x=\"%.2f\" y=\"%.2f\" width=\"14\" height=\"12\" fill=\"%s\" "
                  "fill-opacity=\"%.2f\"",
                  x + 4, y - 6, color, hist_opacity(&s->style));
        stroke_attrs(b, &s->style, 1.5);
        sb_printf(b, "/>\n");
        break;
    case SERIES_LINE:
    case SERIES_VLINE:
        sb_printf(b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"", x, y, x + SWATCH_W,
                  y);
        stroke_attrs(b, &s->style, s->kind == SERIES_LINE ? 2 : 1.75);
        sb_printf(b, "/>\n");
        break;
    case SERIES_MARKER:
        sb_printf(b,
                  "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"5\" fill=\"%s\" stroke=\"#ffffff\" "
                  "stroke-width=\"1.5\"/>\n",
                  x + SWATCH_W / 2, y, color);
        break;
    }
}

static double entry_width(const struct series *s)
{
    return SWATCH_W + 6 + text_width(s->label, LEGEND_SIZE);
}

/* Lays the legend out in rows no wider than max_w starting at (x, y): returns the number of
 * rows, drawing them when b is not NULL. */
static int legend_rows(struct sbuf *b, const struct plot *p, double x, double y, double max_w)
{
    int rows = 0;
    double cx = x;
    for (size_t i = 0; i < p->n_series; i++) {
        const struct series *s = &p->series[i];
        if (s->label == NULL)
            continue;
        double w = entry_width(s);
        if (rows == 0 || (cx > x && cx + w > x + max_w)) {
            rows++;
            cx = x;
        }
        double cy = y + (rows - 1) * 20.0;
        if (b != NULL) {
            draw_swatch(b, s, cx, cy);
            sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\">", cx + SWATCH_W + 6,
                      cy + LEGEND_SIZE * 0.35);
            sb_text(b, s->label);
            sb_printf(b, "</text>\n");
        }
        cx += w + ENTRY_GAP;
    }
    return rows;
}

/* A legend box stacked inside the plot area, in one of its corners. */
static void legend_box(struct sbuf *b, const struct plot *p, double x0, double y0, double x1,
                       double y1)
{
    double w = 0;
    int n = 0;
    for (size_t i = 0; i < p->n_series; i++) {
        if (p->series[i].label != NULL) {
            w = fmax(w, entry_width(&p->series[i]));
            n++;
        }
    }
    if (n == 0)
        return;
    double bw = w + 20, bh = n * 20.0 + 12;
    double bx = p->legend == PLOT_LEGEND_TOP_LEFT ? x0 + 10 : x1 - 10 - bw;
    double by = p->legend == PLOT_LEGEND_BOTTOM_RIGHT ? y1 - 10 - bh : y0 + 10;
    sb_printf(b,
              "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" rx=\"4\" "
              "fill=\"#ffffff\" fill-opacity=\"0.92\" stroke=\"#d9d9d9\"/>\n",
              bx, by, bw, bh);
    double cy = by + 16;
    for (size_t i = 0; i < p->n_series; i++) {
        const struct series *s = &p->series[i];
        if (s->label == NULL)
            continue;
        draw_swatch(b, s, bx + 10, cy);
        sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\">", bx + 10 + SWATCH_W + 6,
                  cy + LEGEND_SIZE * 0.35);
        sb_text(b, s->label);
        sb_printf(b, "</text>\n");
        cy += 20;
    }
}

static bool has_legend_entries(const struct plot *p)
{
    for (size_t i = 0; i < p->n_series; i++) {
        if (p->series[i].label != NULL)
            return true;
    }
    return false;
}

int plot_render(const struct plot *p, char **out, size_t *len)
{
    struct sbuf b = {0};
    double W = p->width, H = p->height;

    /* Ticks first: the left margin depends on the widest y label. */
    struct scale sx, sy;
    size_t target_x = (size_t)fmax(3, fmin(10, W / 90));
    size_t target_y = (size_t)fmax(3, fmin(8, H / 65));
    make_scale(p, PLOT_X, target_x, &sx);
    make_scale(p, PLOT_Y, target_y, &sy);
    char tick[64];
    double y_label_w = 0, x_last_w = 0;
    for (size_t i = 0; i < sy.n_ticks; i++) {
        plot_format_tick(sy.ticks[i], sy.step, tick, sizeof tick);
        y_label_w = fmax(y_label_w, text_width(tick, TICK_SIZE));
    }
    if (sx.n_ticks > 0) {
        plot_format_tick(sx.ticks[sx.n_ticks - 1], sx.step, tick, sizeof tick);
        x_last_w = text_width(tick, TICK_SIZE);
    }

    double top = PAD;
    double title_y = 0, subtitle_y = 0;
    if (p->title != NULL) {
        title_y = top + TITLE_SIZE * 0.8;
        top = title_y + 8;
    }
    if (p->subtitle != NULL) {
        subtitle_y = top + SUBTITLE_SIZE * 0.8 + 2;
        top = subtitle_y + 6;
    }
    double x0 = PAD + (p->axes[PLOT_Y].label ? LABEL_SIZE + 10 : 0) + y_label_w + 8;
    double x1 = W - PAD - fmax(8, x_last_w / 2);
    double legend_y = 0;
    int legend_n = 0;
    if (p->legend == PLOT_LEGEND_ABOVE && has_legend_entries(p)) {
        legend_n = legend_rows(NULL, p, x0, 0, x1 - x0);
        legend_y = top + 16;
        top = legend_y + (legend_n - 1) * 20.0 + 10;
    }
    double y0 = top + (legend_n > 0 ? 10 : 16); /* the plot area's top */
    double y1 = H - PAD - TICK_SIZE - 8 - (p->axes[PLOT_X].label ? LABEL_SIZE + 10 : 0);
    if (y1 - y0 < 40)
        y1 = y0 + 40;
    if (x1 - x0 < 40)
        x1 = x0 + 40;
    sx.px_lo = x0;
    sx.px_hi = x1;
    sy.px_lo = y1;
    sy.px_hi = y0;

    sb_printf(&b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
              "viewBox=\"0 0 %.0f %.0f\" font-family=\"%s\">\n",
              W, H, W, H, FONT_FAMILY);
    sb_printf(&b, "<title>");
    sb_text(&b, p->title ? p->title : "chart");
    sb_printf(&b, "</title>\n");
    sb_printf(&b, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
    sb_printf(&b,
              "<defs><clipPath id=\"plot-area\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
              "height=\"%.2f\"/></clipPath></defs>\n",
              x0, y0 - 1, x1 - x0, y1 - y0 + 2);

    /* Grid: light lines at every tick, under the data. */
    sb_printf(&b, "<g stroke=\"%s\" stroke-width=\"1\">\n", GRID_COLOR);
    for (size_t i = 0; i < sy.n_ticks; i++) {
        double y = to_px(&sy, sy.ticks[i]);
        sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x0, y, x1, y);
    }
    for (size_t i = 0; i < sx.n_ticks; i++) {
        double x = to_px(&sx, sx.ticks[i]);
        sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x, y0, x, y1);
    }
    sb_printf(&b, "</g>\n");

    sb_printf(&b, "<g clip-path=\"url(#plot-area)\">\n");
    for (size_t i = 0; i < p->n_series; i++)
        draw_series(&b, &p->series[i], &sx, &sy);
    sb_printf(&b, "</g>\n");

    /* Axes: the x axis at the bottom, the y axis at the left, with short tick marks. */
    sb_printf(&b, "<g stroke=\"%s\" stroke-width=\"1\">\n", AXIS_COLOR);
    sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x0, y1, x1, y1);
    sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x0, y0, x0, y1);
    for (size_t i = 0; i < sx.n_ticks; i++) {
        double x = to_px(&sx, sx.ticks[i]);
        sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x, y1, x,
                  y1 + 4);
    }
    for (size_t i = 0; i < sy.n_ticks; i++) {
        double y = to_px(&sy, sy.ticks[i]);
        sb_printf(&b, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x0 - 4, y, x0,
                  y);
    }
    sb_printf(&b, "</g>\n");

    sb_printf(&b, "<g font-size=\"%.1f\" fill=\"%s\">\n", TICK_SIZE, INK_SOFT);
    for (size_t i = 0; i < sx.n_ticks; i++) {
        plot_format_tick(sx.ticks[i], sx.step, tick, sizeof tick);
        sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n",
                  to_px(&sx, sx.ticks[i]), y1 + 6 + TICK_SIZE, tick);
    }
    for (size_t i = 0; i < sy.n_ticks; i++) {
        plot_format_tick(sy.ticks[i], sy.step, tick, sizeof tick);
        sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", x0 - 8,
                  to_px(&sy, sy.ticks[i]) + TICK_SIZE * 0.35, tick);
    }
    sb_printf(&b, "</g>\n");

    sb_printf(&b, "<g font-size=\"%.1f\" fill=\"%s\">\n", LABEL_SIZE, INK);
    if (p->axes[PLOT_X].label != NULL) {
        sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", (x0 + x1) / 2,
                  H - PAD);
        sb_text(&b, p->axes[PLOT_X].label);
        sb_printf(&b, "</text>\n");
    }
    if (p->axes[PLOT_Y].label != NULL) {
        double ly = (y0 + y1) / 2, lx = PAD + LABEL_SIZE * 0.8;
        sb_printf(&b,
                  "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" "
                  "transform=\"rotate(-90 %.2f %.2f)\">",
                  lx, ly, lx, ly);
        sb_text(&b, p->axes[PLOT_Y].label);
        sb_printf(&b, "</text>\n");
    }
    sb_printf(&b, "</g>\n");

    if (p->title != NULL) {
        sb_printf(&b,
                  "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" font-weight=\"bold\" "
                  "fill=\"%s\">",
                  PAD, title_y, TITLE_SIZE, INK);
        sb_text(&b, p->title);
        sb_printf(&b, "</text>\n");
    }
    if (p->subtitle != NULL) {
        sb_printf(&b, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" fill=\"%s\">", PAD,
                  subtitle_y, SUBTITLE_SIZE, INK_SOFT);
        sb_text(&b, p->subtitle);
        sb_printf(&b, "</text>\n");
    }

    if (p->legend != PLOT_LEGEND_NONE && has_legend_entries(p)) {
        sb_printf(&b, "<g font-size=\"%.1f\" fill=\"%s\">\n", LEGEND_SIZE, INK);
        if (p->legend == PLOT_LEGEND_ABOVE)
            legend_rows(&b, p, x0, legend_y, x1 - x0);
        else
            legend_box(&b, p, x0, y0, x1, y1);
        sb_printf(&b, "</g>\n");
    }
    sb_printf(&b, "</svg>\n");

    if (b.oom) {
        free(b.data);
        return CANARY_ENOMEM;
    }
    *out = b.data;
    if (len != NULL)
        *len = b.len;
    return 0;
}

int plot_save(const struct plot *p, const char *path, char *err, size_t errlen)
{
    char *svg;
    size_t len;
    if (plot_render(p, &svg, &len) != 0) {
        snprintf(err, errlen, "%s: out of memory rendering the chart", path);
        return CANARY_ENOMEM;
    }
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(svg);
        return CANARY_EIO;
    }
    size_t wrote = fwrite(svg, 1, len, f);
    int saved = errno;
    int closed = fclose(f);
    if (wrote != len || closed != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(wrote != len ? saved : errno));
        free(svg);
        return CANARY_EIO;
    }
    free(svg);
    return 0;
}
