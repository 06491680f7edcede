/* explain.c — the templates behind explain.h: alerts in plain language, offline, without
 * allocation, for any context (missing numbers are left out, hostile names are flattened and
 * cut).
 *
 * How a text is put together. First the facts are written once, each as a phrase ready to
 * use ("methane", "4,800 ppm", "and rising for 3 minutes", "300 to 600 ppm", "in Kitchen").
 * Then each alert kind has a title and a lead ("methane at 4,800 ppm and rising for 3
 * minutes"); the description is title, lead and whichever supporting sentences have facts
 * (the limit crossed, the normal range, the anomaly score, other readings, the device and
 * since when); the action comes from the metric family (a gas leak and a carbon monoxide
 * alarm call for different things). The short form tries the richest variant first and drops
 * parts (the normal range, the trend, the action) until it fits 160 characters. */
#include "notify/explain.h"

#include "core/metric.h"
#include "core/utf8.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ELLIPSIS "\xE2\x80\xA6" /* U+2026 */

/* ---- text buffers that never split a character ---- */

struct sb {
    char *p;
    size_t cap; /* bytes, with the NUL */
    size_t len;
    bool cut;
};

static void sb_init(struct sb *b, char *buf, size_t cap)
{
    b->p = buf;
    b->cap = cap;
    b->len = 0;
    b->cut = false;
    if (cap > 0)
        buf[0] = '\0';
}

/* Length of the longest prefix of s[0..n) that fits `room` bytes without splitting a UTF-8
 * sequence. */
static size_t fit_utf8(const char *s, size_t n, size_t room)
{
    if (n <= room)
        return n;
    size_t k = room;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

static void sb_addn(struct sb *b, const char *s, size_t n)
{
    if (b->cut || b->cap == 0)
        return;
    size_t room = b->cap - 1 - b->len;
    if (n <= room) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
        return;
    }
    /* Does not fit: keep what does, leaving room for the ellipsis. */
    b->cut = true;
    size_t el = sizeof ELLIPSIS - 1;
    size_t keep = room > el ? fit_utf8(s, n, room - el) : 0;
    memcpy(b->p + b->len, s, keep);
    b->len += keep;
    if (b->cap - 1 - b->len >= el) {
        memcpy(b->p + b->len, ELLIPSIS, el);
        b->len += el;
    }
    b->p[b->len] = '\0';
}

static void sb_add(struct sb *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

static void sb_addf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(struct sb *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof tmp ? (size_t)n : fit_utf8(tmp, sizeof tmp - 1, sizeof tmp - 1);
    sb_addn(b, tmp, len);
}

/* Copies src into dst[cap], cut at a character boundary. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = fit_utf8(src, strlen(src), cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Number of code points in valid UTF-8. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Decodes the character at s (n bytes left): its length, and *cp, or 0 when invalid. */
static size_t utf8_next(const char *s, size_t n, uint32_t *cp)
{
    unsigned char c = (unsigned char)s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (len == 0 || len > n || !utf8_valid(s, len, NULL))
        return 0;
    uint32_t v = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < len; i++)
        v = (v << 6) | ((unsigned char)s[i] & 0x3F);
    *cp = v;
    return len;
}

/* Copies untrusted text (a device name, a place, a detector's sentence) into dst as one clean
 * line of at most max_chars characters: control characters and line separators become
 * spaces, bidi and zero-width controls (which can make text read differently from what it
 * is) are dropped, invalid bytes become '?', runs of spaces collapse, and a cut ends in "…". */
static void clean_text(char *dst, size_t cap, const char *src, size_t max_chars)
{
    struct sb b;
    sb_init(&b, dst, cap);
    if (src == NULL)
        return;
    size_t n = strlen(src), chars = 0;
    bool space = true; /* no leading space */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_next(src + i, n - i, &cp);
        const char *piece = src + i;
        size_t plen = len;
        if (len == 0) {
            piece = "?";
            plen = 1;
            len = 1;
        } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == 0x2028 ||
                   cp == 0x2029) {
            piece = " ";
            plen = 1;
        } else if ((cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
                   (cp >= 0x2066 && cp <= 0x2069) || cp == 0x061C || cp == 0xFEFF) {
            i += len;
            continue;
        }
        i += len;
        if (piece[0] == ' ' && plen == 1) {
            if (space)
                continue;
            space = true;
        } else {
            space = false;
        }
        if (chars == max_chars) {
            while (b.len > 0 && b.p[b.len - 1] == ' ')
                b.p[--b.len] = '\0';
            sb_add(&b, ELLIPSIS);
            return;
        }
        size_t before = b.len;
        sb_addn(&b, piece, plen);
        if (b.cut || b.len == before)
            return;
        chars++;
    }
    while (b.len > 0 && b.p[b.len - 1] == ' ')
        b.p[--b.len] = '\0';
}

/* ---- numbers, values, durations, times ---- */

size_t explain_format_number(char *buf, size_t len, double v, int max_decimals)
{
    if (!isfinite(v))
        return (size_t)snprintf(buf, len, "unknown");
    double a = fabs(v);
    int d = max_decimals < 0 ? 0 : max_decimals > 6 ? 6 : max_decimals;
    if (a >= 100)
        d = 0;
    else if (a >= 10 && d > 1)
        d = 1;
    double scale = pow(10, d);
    if (a * scale >= 9e15) /* beyond exact integers: scientific, still locale-free enough */
        return (size_t)snprintf(buf, len, "%.3g", v);
    unsigned long long units = (unsigned long long)llround(a * scale);
    unsigned long long ip = units, fp = 0;
    for (int i = 0; i < d; i++)
        ip /= 10;
    fp = units - ip * (unsigned long long)scale;

    char digits[32], out[64];
    int nd = snprintf(digits, sizeof digits, "%llu", ip);
    size_t o = 0;
    if (v < 0 && units != 0)
        out[o++] = '-';
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    if (d > 0 && fp != 0) {
        char frac[24];
        snprintf(frac, sizeof frac, "%0*llu", d, fp);
        int fl = d;
        while (fl > 0 && frac[fl - 1] == '0')
            fl--;
        out[o++] = '.';
        memcpy(out + o, frac, (size_t)fl);
        o += (size_t)fl;
    }
    out[o] = '\0';
    return (size_t)snprintf(buf, len, "%s", out);
}

/* Decimals a metric's values deserve: as many as its sensors resolve (0.1 -> 1, 0.01 -> 2). */
static int metric_decimals(const struct metric_info *mi)
{
    if (mi == NULL || !(mi->resolution > 0))
        return 2;
    if (mi->resolution >= 1)
        return 0;
    int d = (int)ceil(-log10(mi->resolution) - 1e-9);
    return d > 4 ? 4 : d;
}

static const char *unit_sep(const char *unit)
{
    return unit[0] == '\0' || strcmp(unit, "%") == 0 ? "" : " ";
}

size_t explain_format_value(char *buf, size_t len, const char *metric, double v)
{
    const struct metric_info *mi = metric != NULL ? metric_lookup(metric) : NULL;
    if (!isfinite(v))
        return (size_t)snprintf(buf, len, "unknown");
    if (mi != NULL && mi->binary) {
        bool on = v >= 0.5;
        const char *word;
        if (strcmp(mi->name, "flame") == 0 || strcmp(mi->name, "motion") == 0)
            word = on ? "detected" : "none";
        else if (strcmp(mi->name, "valve_open") == 0)
            word = on ? "open" : "closed";
        else
            word = on ? "on" : "off";
        return (size_t)snprintf(buf, len, "%s", word);
    }
    char num[48];
    explain_format_number(num, sizeof num, v, metric_decimals(mi));
    const char *unit = mi != NULL ? mi->unit : "";
    return (size_t)snprintf(buf, len, "%s%s%s", num, unit_sep(unit), unit);
}

size_t explain_format_duration(char *buf, size_t len, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (s < 60)
        return (size_t)snprintf(buf, len, "%lld second%s", (long long)s, s == 1 ? "" : "s");
    int64_t m = (s + 30) / 60;
    if (m < 60)
        return (size_t)snprintf(buf, len, "%lld minute%s", (long long)m, m == 1 ? "" : "s");
    int64_t h = m / 60;
    m %= 60;
    if (h < 48) {
        if (m == 0)
            return (size_t)snprintf(buf, len, "%lld hour%s", (long long)h, h == 1 ? "" : "s");
        return (size_t)snprintf(buf, len, "%lld hour%s %lld minute%s", (long long)h,
                                h == 1 ? "" : "s", (long long)m, m == 1 ? "" : "s");
    }
    int64_t days = h / 24;
    return (size_t)snprintf(buf, len, "%lld days", (long long)days);
}

/* "14:03 UTC", or "20 Nov 14:03 UTC" when not today; "UTC+01:00" with an offset. */
static void format_clock(char *buf, size_t len, int64_t ms, int64_t now_ms, int offset_min,
                         bool always_date)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(ms / 1000 + (int64_t)offset_min * 60);
    time_t tn = (time_t)(now_ms / 1000 + (int64_t)offset_min * 60);
    struct tm tm, tmn;
    gmtime_r(&t, &tm);
    gmtime_r(&tn, &tmn);
    char zone[16] = "UTC";
    if (offset_min != 0) {
        int a = offset_min < 0 ? -offset_min : offset_min;
        snprintf(zone, sizeof zone, "UTC%c%02d:%02d", offset_min < 0 ? '-' : '+', a / 60 % 100,
                 a % 60);
    }
    bool today = now_ms > 0 && tm.tm_year == tmn.tm_year && tm.tm_yday == tmn.tm_yday;
    if (always_date || !today)
        snprintf(buf, len, "%d %s %04d %02d:%02d %s", tm.tm_mday, months[tm.tm_mon],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, zone);
    else
        snprintf(buf, len, "%02d:%02d %s", tm.tm_hour, tm.tm_min, zone);
}

/* ---- metric families ---- */

enum family {
    FAM_GAS,
    FAM_CO,
    FAM_CO2,
    FAM_SMOKE,
    FAM_TEMPERATURE,
    FAM_HUMIDITY,
    FAM_PRESSURE,
    FAM_FLAME,
    FAM_MOTION,
    FAM_LIGHT,
    FAM_VIBRATION,
    FAM_NOISE,
    FAM_ACTUATOR,
    FAM_MODEL,
    FAM_DEVICE,
    FAM_OTHER,
};

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static enum family family_of(const char *metric)
{
    static const struct {
        const char *name;
        enum family fam;
    } known[] = {
        {"gas_ppm", FAM_GAS},
        {"co_ppm", FAM_CO},
        {"co2_ppm", FAM_CO2},
        {"smoke_ppm", FAM_SMOKE},
        {"temperature_c", FAM_TEMPERATURE},
        {"humidity_pct", FAM_HUMIDITY},
        {"pressure_hpa", FAM_PRESSURE},
        {"flame", FAM_FLAME},
        {"motion", FAM_MOTION},
        {"light_lux", FAM_LIGHT},
        {"vibration_mm_s", FAM_VIBRATION},
        {"noise_db", FAM_NOISE},
        {"buzzer", FAM_ACTUATOR},
        {"valve_open", FAM_ACTUATOR},
        {"relay", FAM_ACTUATOR},
    };
    if (metric == NULL || metric[0] == '\0' || strcmp(metric, ALERT_METRIC_DEVICE) == 0)
        return FAM_DEVICE;
    if (starts(metric, "model:"))
        return FAM_MODEL;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(metric, known[i].name) == 0)
            return known[i].fam;
    }
    /* Unknown metrics: a few names are clear enough to pick a family's advice. */
    if (starts(metric, "gas") || starts(metric, "methane") || starts(metric, "lpg") ||
        starts(metric, "propane") || starts(metric, "butane"))
        return FAM_GAS;
    if (strstr(metric, "smoke") != NULL)
        return FAM_SMOKE;
    if (starts(metric, "temp"))
        return FAM_TEMPERATURE;
    if (starts(metric, "humid"))
        return FAM_HUMIDITY;
    return FAM_OTHER;
}

static bool safety_family(enum family f)
{
    return f == FAM_GAS || f == FAM_CO || f == FAM_SMOKE || f == FAM_FLAME;
}

/* ---- the facts, as phrases ---- */

#define NAME_BUF (EXPLAIN_NAME_CHARS * 4 + 8)

struct facts {
    enum family fam;
    const struct metric_info *mi; /* NULL for unknown metrics, models, device */
    const char *metric;           /* never NULL */
    char device[NAME_BUF];        /* device id, cleaned ("unknown device" if none) */
    char name[NAME_BUF];          /* device name, cleaned, "" if none or same as the id */
    char location[NAME_BUF];
    char who[NAME_BUF];       /* the device as people know it: name, else id */
    char where[NAME_BUF + 8]; /* "in Kitchen" or "at kitchen-1" */
    char model[NAME_BUF];     /* model name of "model:<name>" */
    char label[NAME_BUF];     /* "methane", "temperature", ... */
    char Label[NAME_BUF];     /* capitalised */
    char value[64];           /* "4,800 ppm", "" when unknown */
    char peak[64];
    char limit[64];
    char normal[128];  /* "300 to 600 ppm" */
    char trend[96];    /* "and rising for 3 minutes" */
    char rate[64];     /* "+900 ppm a minute" */
    char rate_abs[48]; /* "900 ppm" */
    bool rising;       /* meaningful rate, up */
    bool low;          /* the value is below its limit */
    char score[16], threshold[16];
    char since[48];       /* "14:03 UTC" */
    char open_for[48];    /* "12 minutes" */
    char related[320];    /* "temperature 24.1 °C, humidity 45%" */
    char temperature[64]; /* fire: the temperature from value or related */
    char detail[240];
    char severity[16];
    char gas_class[64]; /* a gas classifier's alert: the class it reads ("" if unknown) */
};

/* A gas classifier's alert (a model's gas_leak or fire, decide_gas): its message says
 * "... reads <class> with probability <p> ...". */
static bool is_classifier(const struct facts *f, enum alert_kind kind);

static void find_gas_class(char *out, size_t cap, const char *detail)
{
    out[0] = '\0';
    const char *p = detail != NULL ? strstr(detail, " reads ") : NULL;
    const char *end = p != NULL ? strstr(p + 7, " with probability") : NULL;
    if (end != NULL && (size_t)(end - (p + 7)) < cap && end > p + 7)
        snprintf(out, cap, "%.*s", (int)(end - (p + 7)), p + 7);
}

static void capitalise(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
    if (dst[0] >= 'a' && dst[0] <= 'z')
        dst[0] = (char)(dst[0] - 'a' + 'A');
}

static void metric_label(char *dst, size_t cap, const char *metric, const struct metric_info *mi,
                         enum family fam, const char *gas)
{
    char clean[NAME_BUF];
    switch (fam) {
    case FAM_GAS:
        clean_text(clean, sizeof clean, gas != NULL && gas[0] ? gas : "gas", 32);
        snprintf(dst, cap, "%s", clean);
        return;
    case FAM_CO:
        snprintf(dst, cap, "carbon monoxide");
        return;
    case FAM_CO2:
        snprintf(dst, cap, "carbon dioxide");
        return;
    case FAM_MODEL:
    case FAM_DEVICE:
        snprintf(dst, cap, "readings");
        return;
    default:
        break;
    }
    if (mi != NULL && mi->label[0] != '\0') {
        snprintf(dst, cap, "%s", mi->label);
        if (dst[0] >= 'A' && dst[0] <= 'Z')
            dst[0] = (char)(dst[0] - 'A' + 'a');
        return;
    }
    clean_text(dst, cap, metric, 32);
}

static void format_related(struct facts *f, const struct explain_context *ctx)
{
    struct sb b;
    sb_init(&b, f->related, sizeof f->related);
    size_t shown = 0;
    for (size_t i = 0; i < ctx->n_related && ctx->related != NULL && shown < EXPLAIN_MAX_RELATED;
         i++) {
        const struct explain_related *r = &ctx->related[i];
        if (r->metric == NULL || !isfinite(r->value) || strcmp(r->metric, f->metric) == 0)
            continue;
        /* A fire's lead already names the flame and the temperature. */
        if (ctx->kind == ALERT_KIND_FIRE &&
            (strcmp(r->metric, "flame") == 0 || strcmp(r->metric, "temperature_c") == 0))
            continue;
        char label[NAME_BUF], value[64];
        enum family fam = family_of(r->metric);
        metric_label(label, sizeof label, r->metric, metric_lookup(r->metric), fam, ctx->gas);
        explain_format_value(value, sizeof value, r->metric, r->value);
        sb_addf(&b, "%s%s %s", shown ? ", " : "", label, value);
        shown++;
    }
}

static double related_value(const struct explain_context *ctx, const char *metric)
{
    for (size_t i = 0; i < ctx->n_related && ctx->related != NULL; i++) {
        if (ctx->related[i].metric != NULL && strcmp(ctx->related[i].metric, metric) == 0)
            return ctx->related[i].value;
    }
    return NAN;
}

static void gather(struct facts *f, const struct explain_context *ctx)
{
    memset(f, 0, sizeof *f);
    f->metric = ctx->metric != NULL ? ctx->metric : ALERT_METRIC_DEVICE;
    f->fam = family_of(f->metric);
    f->mi = metric_lookup(f->metric);

    clean_text(f->device, sizeof f->device, ctx->device_id, EXPLAIN_NAME_CHARS);
    if (f->device[0] == '\0')
        snprintf(f->device, sizeof f->device, "unknown device");
    clean_text(f->name, sizeof f->name, ctx->device_name, EXPLAIN_NAME_CHARS);
    if (strcmp(f->name, f->device) == 0)
        f->name[0] = '\0';
    clean_text(f->location, sizeof f->location, ctx->location, EXPLAIN_NAME_CHARS);
    snprintf(f->who, sizeof f->who, "%s", f->name[0] ? f->name : f->device);
    if (f->location[0] != '\0')
        snprintf(f->where, sizeof f->where, "in %s", f->location);
    else
        snprintf(f->where, sizeof f->where, "at %s", f->who);
    if (f->fam == FAM_MODEL)
        clean_text(f->model, sizeof f->model, f->metric + strlen("model:"), 32);
    if (is_classifier(f, ctx->kind)) {
        char raw[64];
        find_gas_class(raw, sizeof raw, ctx->detail);
        clean_text(f->gas_class, sizeof f->gas_class, raw, 40);
    }

    metric_label(f->label, sizeof f->label, f->metric, f->mi, f->fam, ctx->gas);
    capitalise(f->Label, sizeof f->Label, f->label);

    const char *vm = f->mi != NULL ? f->metric : NULL; /* unit and resolution, when known */
    if (isfinite(ctx->value))
        explain_format_value(f->value, sizeof f->value, vm, ctx->value);
    if (isfinite(ctx->peak))
        explain_format_value(f->peak, sizeof f->peak, vm, ctx->peak);
    if (isfinite(ctx->limit) && !(f->mi != NULL && f->mi->binary))
        explain_format_value(f->limit, sizeof f->limit, vm, ctx->limit);
    f->low = isfinite(ctx->value) && isfinite(ctx->limit) && ctx->value < ctx->limit;

    /* Normal range: level +/- scale, the low end not below the metric's physical minimum. */
    if (isfinite(ctx->normal_level) && isfinite(ctx->normal_scale) && ctx->normal_scale > 0 &&
        !(f->mi != NULL && f->mi->binary) && f->fam != FAM_DEVICE && f->fam != FAM_MODEL) {
        double lo = ctx->normal_level - ctx->normal_scale;
        double hi = ctx->normal_level + ctx->normal_scale;
        if (f->mi != NULL && isfinite(f->mi->min) && lo < f->mi->min)
            lo = f->mi->min;
        int d = metric_decimals(f->mi);
        char a[32], b[32];
        explain_format_number(a, sizeof a, lo, d);
        explain_format_number(b, sizeof b, hi, d);
        const char *unit = f->mi != NULL ? f->mi->unit : "";
        snprintf(f->normal, sizeof f->normal, "%s to %s%s%s", a, b, unit_sep(unit), unit);
    }

    /* Trend: only a change people would notice (a sensor step, or half a percent a minute). */
    if (isfinite(ctx->rate_per_min) && !(f->mi != NULL && f->mi->binary)) {
        double floor_rate = f->mi != NULL ? f->mi->resolution : 0;
        if (isfinite(ctx->value) && 0.005 * fabs(ctx->value) > floor_rate)
            floor_rate = 0.005 * fabs(ctx->value);
        if (fabs(ctx->rate_per_min) >= floor_rate && ctx->rate_per_min != 0) {
            f->rising = ctx->rate_per_min > 0;
            char dur[48] = "";
            if (ctx->trend_ms >= 60000) {
                explain_format_duration(dur, sizeof dur, ctx->trend_ms);
                snprintf(f->trend, sizeof f->trend, "and %s for %s",
                         f->rising ? "rising" : "falling", dur);
            } else {
                snprintf(f->trend, sizeof f->trend, "and %s", f->rising ? "rising" : "falling");
            }
            explain_format_value(f->rate_abs, sizeof f->rate_abs, vm, fabs(ctx->rate_per_min));
            snprintf(f->rate, sizeof f->rate, "%s%s a minute", f->rising ? "+" : "-", f->rate_abs);
        }
    }

    if (isfinite(ctx->anomaly_score))
        explain_format_number(f->score, sizeof f->score, ctx->anomaly_score, 2);
    if (isfinite(ctx->anomaly_threshold))
        explain_format_number(f->threshold, sizeof f->threshold, ctx->anomaly_threshold, 2);
    if (ctx->opened_ms > 0) {
        format_clock(f->since, sizeof f->since, ctx->opened_ms, ctx->now_ms, ctx->utc_offset_min,
                     false);
        if (ctx->now_ms > ctx->opened_ms)
            explain_format_duration(f->open_for, sizeof f->open_for, ctx->now_ms - ctx->opened_ms);
    }
    format_related(f, ctx);

    double t = f->fam == FAM_TEMPERATURE ? ctx->value : related_value(ctx, "temperature_c");
    if (isfinite(t))
        explain_format_value(f->temperature, sizeof f->temperature, "temperature_c", t);
    clean_text(f->detail, sizeof f->detail, ctx->detail, 160);
    snprintf(f->severity, sizeof f->severity, "%s", alert_severity_name(ctx->severity));
}

/* ---- titles, leads, actions ---- */

static bool is_model(const struct facts *f)
{
    return f->fam == FAM_MODEL;
}

static bool is_classifier(const struct facts *f, enum alert_kind kind)
{
    return is_model(f) && (kind == ALERT_KIND_GAS_LEAK || kind == ALERT_KIND_FIRE);
}

static void make_title(struct sb *b, const struct facts *f, enum alert_kind kind)
{
    switch (kind) {
    case ALERT_KIND_GAS_LEAK:
        switch (f->fam) {
        case FAM_CO:
            sb_addf(b, "Carbon monoxide alarm %s", f->where);
            return;
        case FAM_CO2:
            sb_addf(b, "Carbon dioxide too high %s", f->where);
            return;
        case FAM_SMOKE:
            sb_addf(b, "Smoke detected %s", f->where);
            return;
        default:
            sb_addf(b, "Gas leak suspected %s", f->where);
            return;
        }
    case ALERT_KIND_FIRE:
        sb_addf(b, "Fire suspected %s", f->where);
        return;
    case ALERT_KIND_THRESHOLD:
        if (f->fam == FAM_FLAME)
            sb_addf(b, "Flame detected %s", f->where);
        else if (f->fam == FAM_MOTION)
            sb_addf(b, "Motion detected %s", f->where);
        else if (f->fam == FAM_SMOKE && !f->low)
            sb_addf(b, "Smoke detected %s", f->where);
        else if (f->fam == FAM_CO && !f->low)
            sb_addf(b, "Carbon monoxide alarm %s", f->where);
        else if (f->mi != NULL && f->mi->binary)
            sb_addf(b, "%s %s %s", f->Label, f->value[0] ? f->value : "changed", f->where);
        else
            sb_addf(b, "%s too %s %s", f->Label, f->low ? "low" : "high", f->where);
        return;
    case ALERT_KIND_ANOMALY:
        if (is_model(f))
            sb_addf(b, "Unusual behaviour %s (model %s)", f->where, f->model);
        else
            sb_addf(b, "Unusual %s reading %s", f->label, f->where);
        return;
    case ALERT_KIND_RATE:
        if (f->rate[0])
            sb_addf(b, "%s %s fast %s", f->Label, f->rising ? "rising" : "falling", f->where);
        else
            sb_addf(b, "%s changing fast %s", f->Label, f->where);
        return;
    case ALERT_KIND_SENSOR_FAULT:
        if (f->fam == FAM_DEVICE || is_model(f))
            sb_addf(b, "Sensor may be faulty %s", f->where);
        else
            sb_addf(b, "%s sensor may be stuck %s", f->Label, f->where);
        return;
    case ALERT_KIND_OFFLINE:
        if (f->location[0] != '\0')
            sb_addf(b, "No data from %s in %s", f->who, f->location);
        else
            sb_addf(b, "No data from %s", f->who);
        return;
    case ALERT_KIND_TAMPER:
        sb_addf(b, "Suspicious data from %s", f->who);
        return;
    }
    sb_addf(b, "Alert %s", f->where);
}

/* The facts sentence after the title, short or with the rate. */
static void make_lead(struct sb *b, const struct facts *f, const struct explain_context *ctx,
                      bool with_trend, bool with_rate)
{
    const char *trend = with_trend ? f->trend : "";
    const char *sp = trend[0] ? " " : "";
    char rate[80] = "";
    if (is_classifier(f, ctx->kind)) {
        char p[32];
        explain_format_number(p, sizeof p, ctx->value, 2);
        sb_addf(b, "the gas classifier %s reads %s (probability %s)", f->model,
                f->gas_class[0] ? f->gas_class : "a dangerous class", p);
        return;
    }
    if (with_rate && with_trend && f->rate[0])
        snprintf(rate, sizeof rate, " (%s)", f->rate);
    switch (ctx->kind) {
    case ALERT_KIND_FIRE:
        sb_add(b, "flame detected");
        if (f->temperature[0])
            sb_addf(b, ", temperature %s%s%s%s", f->temperature,
                    f->fam == FAM_TEMPERATURE ? sp : "", f->fam == FAM_TEMPERATURE ? trend : "",
                    f->fam == FAM_TEMPERATURE ? rate : "");
        return;
    case ALERT_KIND_ANOMALY:
        if (is_model(f)) {
            sb_add(b, "readings unlike its normal pattern");
            if (f->score[0])
                sb_addf(b, " (score %s)", f->score);
            return;
        }
        if (f->value[0])
            sb_addf(b, "%s at %s%s%s%s", f->label, f->value, sp, trend, rate);
        else
            sb_addf(b, "%s unlike its usual level", f->label);
        return;
    case ALERT_KIND_RATE:
        if (f->rate[0] && f->value[0])
            sb_addf(b, "%s %s %s a minute, now %s", f->label, f->rising ? "up" : "down",
                    f->rate_abs, f->value);
        else if (f->value[0])
            sb_addf(b, "%s changing fast, now %s", f->label, f->value);
        else
            sb_addf(b, "%s changing fast", f->label);
        return;
    case ALERT_KIND_SENSOR_FAULT:
        if (f->value[0] && ctx->stuck_count > 0)
            sb_addf(b, "it has read exactly %s %u times in a row", f->value, ctx->stuck_count);
        else if (f->value[0])
            sb_addf(b, "it keeps reading exactly %s", f->value);
        else
            sb_add(b, "its readings look stuck or implausible");
        return;
    case ALERT_KIND_OFFLINE: {
        int64_t last = ctx->last_seen_ms > 0 ? ctx->last_seen_ms : ctx->opened_ms;
        if (last > 0) {
            char when[48], dur[48] = "";
            format_clock(when, sizeof when, last, ctx->now_ms, ctx->utc_offset_min, false);
            if (ctx->now_ms > last)
                explain_format_duration(dur, sizeof dur, ctx->now_ms - last);
            sb_addf(b, "nothing heard since %s%s%s%s", when, dur[0] ? " (" : "", dur,
                    dur[0] ? " ago)" : "");
        } else {
            sb_add(b, "it has stopped sending readings");
        }
        return;
    }
    case ALERT_KIND_TAMPER:
        /* The only tamper alert is a quarantine (docs/TAMPER.md): its data is doubted. */
        sb_add(b, "its readings look tampered with and it is quarantined");
        return;
    case ALERT_KIND_GAS_LEAK:
    case ALERT_KIND_THRESHOLD:
        break;
    }
    if (f->mi != NULL && f->mi->binary) {
        sb_addf(b, "%s %s", f->label, f->value[0] ? f->value : "triggered");
        return;
    }
    if (f->value[0])
        sb_addf(b, "%s at %s%s%s%s", f->label, f->value, sp, trend, rate);
    else
        sb_addf(b, "%s beyond its limit", f->label);
}

struct advice {
    const char *action; /* full */
    const char *brief;  /* for the short form */
};

static struct advice family_advice(const struct facts *f, enum alert_kind kind)
{
    struct advice a;
    switch (f->fam) {
    case FAM_GAS:
        a.action = "Ventilate: open windows and doors. Do not switch lights or appliances on or "
                   "off and avoid flames and sparks. Shut the gas valve if it is safe to reach, "
                   "leave the building and call the gas emergency number from outside.";
        a.brief = "Ventilate, do not switch on electrics, shut the gas valve.";
        return a;
    case FAM_CO:
        a.action = "Get everyone out into fresh air now and open windows. Switch off "
                   "fuel-burning appliances (boiler, stove, heater) if it is safe. Call "
                   "emergency services if anyone has a headache, dizziness or nausea, and do "
                   "not go back in until the level is normal.";
        a.brief = "Get everyone into fresh air, open windows, switch off burners.";
        return a;
    case FAM_CO2:
        a.action = "Ventilate the room and reduce the number of people in it; leave if anyone "
                   "feels drowsy or short of breath. Check the ventilation and any source of "
                   "carbon dioxide (dry ice, fermentation, a gas supply).";
        a.brief = "Ventilate; leave if anyone feels drowsy.";
        return a;
    case FAM_SMOKE:
    case FAM_FLAME:
        a.action = "Check the area for fire or smouldering at once, without putting yourself "
                   "at risk. If there is fire, leave, close doors behind you and call the fire "
                   "brigade.";
        a.brief = "Check for fire now; if there is one, leave and call the fire brigade.";
        return a;
    case FAM_TEMPERATURE:
        if (f->low && kind != ALERT_KIND_RATE) {
            a.action = "Check the heating and look for open windows or doors; protect water "
                       "pipes and sensitive equipment from frost.";
            a.brief = "Check the heating; protect pipes from frost.";
        } else {
            a.action = "Check for a heat source, a fire or failed cooling near the sensor. In an "
                       "equipment room, check air conditioning and fans and reduce the load. If "
                       "the temperature keeps rising, treat it as a possible fire.";
            a.brief = "Check for a heat source or failed cooling.";
        }
        return a;
    case FAM_HUMIDITY:
        if (f->low) {
            a.action = "The air is very dry: check the humidifier and the heating, and protect "
                       "materials that crack or build up static.";
            a.brief = "Check the humidifier and the heating.";
        } else {
            a.action = "Look for a water leak, condensation or a failed dehumidifier or "
                       "ventilation, and dry the area to prevent damage and mould.";
            a.brief = "Look for leaks; ventilate or dry the area.";
        }
        return a;
    case FAM_VIBRATION:
        a.action = "Inspect the machine: mounting, bearings, balance and alignment. If the "
                   "vibration stays this high or keeps rising, stop the machine if you can and "
                   "have it checked before running it again.";
        a.brief = "Inspect the machine; stop it if vibration keeps rising.";
        return a;
    case FAM_NOISE:
        a.action = "Find the source of the noise. Above 85 dB use hearing protection; a machine "
                   "that has become louder may be about to fail.";
        a.brief = "Find the source; use hearing protection.";
        return a;
    case FAM_MOTION:
        a.action = "Check who or what is in the area, from a safe distance or on camera.";
        a.brief = "Check who or what is in the area.";
        return a;
    default:
        a.action = "Check the device and its surroundings to find out why the reading is "
                   "outside its limits, and fix the cause or adjust the limits.";
        a.brief = "Check the device and its surroundings.";
        return a;
    }
}

static struct advice advice_for(const struct facts *f, enum alert_kind kind)
{
    struct advice a;
    switch (kind) {
    case ALERT_KIND_FIRE:
        a.action = "Leave the area now and call the fire brigade. Close doors behind you to slow "
                   "the fire and do not use lifts. Fight it only if it is small, you have the "
                   "right extinguisher and a clear way out.";
        a.brief = "Leave now, call the fire brigade, close doors behind you.";
        return a;
    case ALERT_KIND_GAS_LEAK:
    case ALERT_KIND_THRESHOLD:
        if (is_classifier(f, kind)) { /* no sensor family: the classifier says it is gas */
            struct facts gas = *f;
            gas.fam = FAM_GAS;
            return family_advice(&gas, kind);
        }
        return family_advice(f, kind);
    case ALERT_KIND_ANOMALY:
        if (is_model(f)) {
            a.action = "Inspect the device and its surroundings and compare with recent "
                       "changes (maintenance, load, season). If this is normal operation now, "
                       "retrain the model on recent history.";
            a.brief = "Inspect the device; compare with recent changes.";
            return a;
        }
        if (safety_family(f->fam) && !f->low)
            return family_advice(f, kind);
        a.action = "Check the area and the sensor. If nothing explains the reading, watch for "
                   "further alerts; if it is the new normal here, the detector will learn it.";
        a.brief = "Check the area and the sensor.";
        return a;
    case ALERT_KIND_RATE:
        if (f->fam == FAM_TEMPERATURE && f->rising) {
            a.action = "A fast temperature rise can be the first sign of a fire: check the area "
                       "now, without putting yourself at risk.";
            a.brief = "A fast rise can mean fire: check the area now.";
            return a;
        }
        if (safety_family(f->fam) && f->rising) {
            a.action = "A fast rise can mean a leak or a fire is starting: check the area now, "
                       "ventilate, and keep flames and sparks away.";
            a.brief = "Check the area now and ventilate.";
            return a;
        }
        a.action = "Check what is changing at the device: equipment starting or failing, a "
                   "door or window, a leak. Watch whether it settles.";
        a.brief = "Check what is changing at the device.";
        return a;
    case ALERT_KIND_SENSOR_FAULT:
        if (safety_family(f->fam))
            a.action = "Check the sensor's wiring and power, then clean or replace it. Until it "
                       "works, a real leak or fire here could go unnoticed.";
        else
            a.action = "Check the sensor's wiring and power, then clean or replace it. Until it "
                       "works, its readings cannot be trusted.";
        a.brief = "Check or replace the sensor.";
        return a;
    case ALERT_KIND_OFFLINE:
        a.action = "Check the device's power and network (Wi-Fi, the MQTT broker, cabling). "
                   "Until it is back, this place is not monitored.";
        a.brief = "Check its power and network.";
        return a;
    case ALERT_KIND_TAMPER:
        a.action = "Check the device and its sensor on site (moved, covered, opened, replaced?). "
                   "Its readings are kept but not trusted. When it is fine, release it (canary "
                   "device release); if its key may have leaked, give it a new key first.";
        a.brief = "Check the device on site, then release it.";
        return a;
    }
    return family_advice(f, kind);
}

/* ---- the explanation ---- */

static const char *level_word(const struct explain_context *ctx)
{
    if (ctx->kind == ALERT_KIND_THRESHOLD)
        return ctx->severity >= SEVERITY_HIGH ? "critical" : "warning";
    return ctx->severity >= SEVERITY_CRITICAL ? "critical" : "warning";
}

static void make_description(struct sb *b, const struct facts *f, const struct explain_context *ctx,
                             const char *title)
{
    sb_addf(b, "%s: ", title);
    make_lead(b, f, ctx, true, true);
    sb_add(b, ".");
    enum alert_kind k = ctx->kind;
    if (is_classifier(f, k) && isfinite(ctx->limit)) {
        char level[32];
        explain_format_number(level, sizeof level, ctx->limit, 2);
        sb_addf(b, " The classifier alerts from probability %s.", level);
    }
    if ((k == ALERT_KIND_THRESHOLD || k == ALERT_KIND_GAS_LEAK) && f->limit[0] &&
        !is_classifier(f, k))
        sb_addf(b, " That is %s the %s level of %s.", f->low ? "below" : "above", level_word(ctx),
                f->limit);
    if (k == ALERT_KIND_RATE && f->limit[0])
        sb_addf(b, " The limit is %s a minute.", f->limit);
    if (f->normal[0] && k != ALERT_KIND_OFFLINE && k != ALERT_KIND_TAMPER && k != ALERT_KIND_FIRE)
        sb_addf(b, " Normal here is %s.", f->normal);
    if (k == ALERT_KIND_ANOMALY && !is_model(f) && f->score[0])
        sb_addf(b, " Anomaly score %s%s%s%s.", f->score, f->threshold[0] ? " (alerts from " : "",
                f->threshold, f->threshold[0] ? ")" : "");
    if (is_model(f) && f->threshold[0])
        sb_addf(b, " The model alerts from %s.", f->threshold);
    if (k == ALERT_KIND_TAMPER && f->detail[0])
        sb_addf(b, " Reason: %s", f->detail);
    if (k == ALERT_KIND_TAMPER && f->detail[0] && b->len > 0 && b->p[b->len - 1] != '.')
        sb_add(b, ".");
    /* A device that is silent or forged has no current readings to quote. */
    if (f->related[0] && k != ALERT_KIND_OFFLINE && k != ALERT_KIND_TAMPER)
        sb_addf(b, " Other readings: %s.", f->related);
    sb_addf(b, " Device %s", f->device);
    if (f->name[0])
        sb_addf(b, " (%s)", f->name);
    sb_addf(b, ", severity %s", f->severity);
    if (f->since[0])
        sb_addf(b, ", open since %s%s%s%s", f->since, f->open_for[0] ? " (" : "", f->open_for,
                f->open_for[0] ? ")" : "");
    sb_add(b, ".");
}

/* The short form, from the richest variant down to the title alone. */
static void make_short(char *out, size_t cap, const struct facts *f,
                       const struct explain_context *ctx, const char *title, const char *brief)
{
    for (int variant = 0; variant < 5; variant++) {
        bool trend = variant < 2, normal = variant < 1, lead = variant < 3, action = variant != 4;
        char tmp[EXPLAIN_SHORT_MAX * 2];
        struct sb b;
        sb_init(&b, tmp, sizeof tmp);
        sb_add(&b, title);
        if (lead) {
            sb_add(&b, ": ");
            make_lead(&b, f, ctx, trend, false);
            if (normal && f->normal[0] &&
                (ctx->kind == ALERT_KIND_GAS_LEAK || ctx->kind == ALERT_KIND_THRESHOLD ||
                 (ctx->kind == ALERT_KIND_ANOMALY && !is_model(f))))
                sb_addf(&b, " (normal %s)", f->normal);
        }
        sb_add(&b, ".");
        if (action && variant < 4)
            sb_addf(&b, " %s", brief);
        if (!b.cut && utf8_chars(tmp) <= EXPLAIN_SHORT_CHARS) {
            copy_str(out, cap, tmp);
            return;
        }
    }
    /* Even the title alone is too long (a very long place name): cut it. */
    struct sb b;
    char tmp[EXPLAIN_SHORT_MAX];
    sb_init(&b, tmp, sizeof tmp);
    size_t n = 0, i = 0, len = strlen(title);
    while (i < len && n < EXPLAIN_SHORT_CHARS - 1) {
        i++;
        while (i < len && ((unsigned char)title[i] & 0xC0) == 0x80)
            i++;
        n++;
    }
    sb_addn(&b, title, i);
    if (i < len)
        sb_add(&b, ELLIPSIS);
    copy_str(out, cap, tmp);
}

void explain_context_init(struct explain_context *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->kind = ALERT_KIND_THRESHOLD;
    ctx->severity = SEVERITY_INFO;
    ctx->value = ctx->peak = ctx->limit = NAN;
    ctx->normal_level = ctx->normal_scale = ctx->rate_per_min = NAN;
    ctx->anomaly_score = ctx->anomaly_threshold = NAN;
}

void explain_context_from_alert(struct explain_context *ctx, const struct alert *a)
{
    ctx->device_id = a->device;
    ctx->metric = a->metric;
    ctx->kind = a->kind;
    ctx->severity = a->severity;
    ctx->value = a->value;
    ctx->peak = a->peak;
    ctx->limit = a->limit;
    ctx->opened_ms = a->opened_ms;
    ctx->resolved_ms = a->resolved_ms;
    ctx->resolved_by = a->resolved_by[0] ? a->resolved_by : NULL;
    ctx->detail = a->message[0] ? a->message : NULL;
}

void explain_alert(const struct explain_context *ctx, struct explanation *out)
{
    struct facts f;
    gather(&f, ctx);
    memset(out, 0, sizeof *out);
    out->source = EXPLAIN_SOURCE_TEMPLATE;
    struct sb b;
    sb_init(&b, out->title, sizeof out->title);
    make_title(&b, &f, ctx->kind);
    sb_init(&b, out->description, sizeof out->description);
    make_description(&b, &f, ctx, out->title);
    struct advice a = advice_for(&f, ctx->kind);
    sb_init(&b, out->action, sizeof out->action);
    sb_add(&b, a.action);
    make_short(out->short_text, sizeof out->short_text, &f, ctx, out->title, a.brief);
}

/* ---- all clear ---- */

static void kind_phrase(char *buf, size_t len, const struct facts *f, enum alert_kind kind)
{
    switch (kind) {
    case ALERT_KIND_GAS_LEAK:
        snprintf(buf, len, "%s",
                 f->fam == FAM_CO      ? "carbon monoxide"
                 : f->fam == FAM_CO2   ? "carbon dioxide"
                 : f->fam == FAM_SMOKE ? "smoke"
                                       : "gas leak");
        return;
    case ALERT_KIND_FIRE:
        snprintf(buf, len, "fire");
        return;
    case ALERT_KIND_THRESHOLD:
        snprintf(buf, len, "%s limit", f->label);
        return;
    case ALERT_KIND_ANOMALY:
        if (f->fam == FAM_MODEL)
            snprintf(buf, len, "model %s", f->model);
        else
            snprintf(buf, len, "unusual %s", f->label);
        return;
    case ALERT_KIND_RATE:
        snprintf(buf, len, "%s rate", f->label);
        return;
    case ALERT_KIND_SENSOR_FAULT:
        snprintf(buf, len, "faulty sensor");
        return;
    case ALERT_KIND_OFFLINE:
        snprintf(buf, len, "offline");
        return;
    case ALERT_KIND_TAMPER:
        snprintf(buf, len, "security");
        return;
    }
    snprintf(buf, len, "%s", alert_kind_name(kind));
}

void explain_all_clear(const struct explain_context *ctx, struct explanation *out)
{
    struct facts f;
    gather(&f, ctx);
    memset(out, 0, sizeof *out);
    out->source = EXPLAIN_SOURCE_TEMPLATE;
    enum alert_kind k = ctx->kind;

    char phrase[NAME_BUF + 32], lasted[48] = "", resolved_by[NAME_BUF] = "";
    kind_phrase(phrase, sizeof phrase, &f, k);
    if (ctx->resolved_ms > ctx->opened_ms && ctx->opened_ms > 0)
        explain_format_duration(lasted, sizeof lasted, ctx->resolved_ms - ctx->opened_ms);
    clean_text(resolved_by, sizeof resolved_by, ctx->resolved_by, 32);
    /* Closed by a person, the condition may well still be there: say who closed it, never
     * "back to normal". */
    bool by_person = resolved_by[0] && strcmp(resolved_by, "canary") != 0;

    struct sb b;
    sb_init(&b, out->title, sizeof out->title);
    switch (by_person && k != ALERT_KIND_OFFLINE ? ALERT_KIND_COUNT : (int)k) {
    case ALERT_KIND_COUNT:
        sb_addf(&b, "Resolved by %s: %s alert %s", resolved_by, phrase, f.where);
        break;
    case ALERT_KIND_OFFLINE:
        sb_addf(&b, "%s is back online", f.who);
        break;
    case ALERT_KIND_TAMPER:
        sb_addf(&b, "Security alert closed for %s", f.who);
        break;
    case ALERT_KIND_FIRE:
        sb_addf(&b, "All clear %s: no more signs of fire", f.where);
        break;
    case ALERT_KIND_SENSOR_FAULT:
        sb_addf(&b, "Sensor working again %s", f.where);
        break;
    default:
        if (f.fam == FAM_MODEL || f.fam == FAM_DEVICE)
            sb_addf(&b, "All clear %s: behaviour back to normal", f.where);
        else
            sb_addf(&b, "All clear %s: %s back to normal", f.where, f.label);
    }

    sb_init(&b, out->description, sizeof out->description);
    sb_addf(&b, "%s. The %s alert of %s", out->title, phrase, f.device);
    if (f.since[0])
        sb_addf(&b, " that opened at %s", f.since);
    if (by_person)
        sb_addf(&b, " was resolved by %s.", resolved_by);
    else
        sb_add(&b, " has resolved: the condition has been clear for a while.");
    bool value_sentence = f.value[0] && k != ALERT_KIND_OFFLINE && k != ALERT_KIND_TAMPER &&
                          k != ALERT_KIND_FIRE && f.fam != FAM_MODEL && f.fam != FAM_DEVICE;
    if (value_sentence) {
        sb_addf(&b, " %s is now %s", f.Label, f.value);
        if (f.normal[0])
            sb_addf(&b, " (normal %s)", f.normal);
        sb_add(&b, ".");
    }
    if (lasted[0])
        sb_addf(&b, " It lasted %s", lasted);
    if (lasted[0] && f.peak[0] && value_sentence)
        sb_addf(&b, "; the most extreme reading was %s", f.peak);
    if (lasted[0])
        sb_add(&b, ".");

    sb_init(&b, out->action, sizeof out->action);
    if (k == ALERT_KIND_GAS_LEAK || k == ALERT_KIND_FIRE ||
        (k == ALERT_KIND_THRESHOLD && safety_family(f.fam)))
        sb_add(&b, "Before the area is used normally again, make sure the cause has been found "
                   "and fixed (have the installation or appliances checked). Note the cause on "
                   "the alert for the record.");
    else if (k == ALERT_KIND_TAMPER)
        sb_add(&b, "If the cause is not known, keep an eye on the device's security events.");
    else
        sb_add(&b, "No action needed. If you know what caused it, note it on the alert for the "
                   "record.");

    /* Short: "All clear in Kitchen: gas back to normal (420 ppm) after 12 minutes." */
    for (int variant = 0; variant < 3; variant++) {
        char tmp[EXPLAIN_SHORT_MAX * 2];
        struct sb s;
        sb_init(&s, tmp, sizeof tmp);
        sb_add(&s, out->title);
        if (variant == 0 && value_sentence && by_person)
            sb_addf(&s, " (%s now %s)", f.label, f.value);
        else if (variant == 0 && value_sentence && k != ALERT_KIND_SENSOR_FAULT)
            sb_addf(&s, " (%s)", f.value);
        if (variant <= 1 && lasted[0])
            sb_addf(&s, " after %s", lasted);
        sb_add(&s, ".");
        if (!s.cut && utf8_chars(tmp) <= EXPLAIN_SHORT_CHARS) {
            copy_str(out->short_text, sizeof out->short_text, tmp);
            return;
        }
    }
    make_short(out->short_text, sizeof out->short_text, &f, ctx, out->title, "");
}

/* ---- the writer seam ---- */

static bool field_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == 0 || n == cap || !utf8_valid(s, n, NULL))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7F)
            return false;
    }
    return true;
}

bool explain_check(const struct explanation *e)
{
    return field_ok(e->title, sizeof e->title) && field_ok(e->description, sizeof e->description) &&
           field_ok(e->action, sizeof e->action) && field_ok(e->short_text, sizeof e->short_text) &&
           utf8_chars(e->short_text) <= EXPLAIN_SHORT_CHARS;
}

void explain_with(const struct explain_context *ctx, bool all_clear, explain_writer_fn writer,
                  void *arg, unsigned timeout_ms, struct explanation *out)
{
    if (all_clear)
        explain_all_clear(ctx, out);
    else
        explain_alert(ctx, out);
    if (writer == NULL)
        return;
    struct explanation w;
    memset(&w, 0, sizeof w);
    if (writer(arg, ctx, all_clear, out, &w, timeout_ms) != 0 || !explain_check(&w))
        return; /* the template stands */
    *out = w;
    out->source = EXPLAIN_SOURCE_WRITER;
}

/* ---- rendering for e-mail ---- */

/* A bounded writer that counts what it would have written (snprintf-like). */
struct out {
    char *p;
    size_t cap, len; /* len counts everything, written or not */
};

static void out_add(struct out *o, const char *s, size_t n)
{
    if (o->cap > 0 && o->len < o->cap - 1) {
        size_t room = o->cap - 1 - o->len;
        size_t k = fit_utf8(s, n, room);
        memcpy(o->p + o->len, s, k);
        o->p[o->len + k] = '\0';
        if (k < n) {
            /* Cut: nothing more may be written, or a later short piece would follow a gap. */
            o->cap = o->len + k + 1;
        }
    }
    o->len += n;
}

static void out_s(struct out *o, const char *s)
{
    out_add(o, s, strlen(s));
}

static void out_html(struct out *o, const char *s)
{
    for (const char *p = s; *p != '\0';) {
        switch (*p) {
        case '&':
            out_s(o, "&amp;");
            break;
        case '<':
            out_s(o, "&lt;");
            break;
        case '>':
            out_s(o, "&gt;");
            break;
        case '"':
            out_s(o, "&quot;");
            break;
        case '\'':
            out_s(o, "&#39;");
            break;
        default: {
            /* A whole character at a time, so a cut never splits one. */
            size_t n = 1;
            while (((unsigned char)p[n] & 0xC0) == 0x80)
                n++;
            out_add(o, p, n);
            p += n;
            continue;
        }
        }
        p++;
    }
}

struct fact_row {
    const char *name;
    char value[NAME_BUF + 64];
};

/* The facts as rows; returns their number. */
static size_t fact_rows(const struct facts *f, const struct explain_context *ctx, bool all_clear,
                        struct fact_row rows[10])
{
    size_t n = 0;
    rows[n].name = "Device";
    snprintf(rows[n++].value, sizeof rows[0].value, "%s", f->device);
    if (f->name[0]) {
        rows[n].name = "Name";
        snprintf(rows[n++].value, sizeof rows[0].value, "%s", f->name);
    }
    if (f->location[0]) {
        rows[n].name = "Location";
        snprintf(rows[n++].value, sizeof rows[0].value, "%s", f->location);
    }
    rows[n].name = "Alert";
    snprintf(rows[n++].value, sizeof rows[0].value, "%s, %s", alert_kind_name(ctx->kind),
             f->severity);
    if (f->fam != FAM_DEVICE) {
        rows[n].name = "Metric";
        clean_text(rows[n++].value, sizeof rows[0].value, f->metric, 64);
    }
    if (f->value[0]) {
        rows[n].name = all_clear ? "Value now" : "Value";
        snprintf(rows[n++].value, sizeof rows[0].value, "%s", f->value);
    }
    if (f->limit[0]) {
        rows[n].name = ctx->kind == ALERT_KIND_RATE ? "Limit a minute" : "Limit";
        snprintf(rows[n++].value, sizeof rows[0].value, "%s", f->limit);
    }
    if (f->normal[0]) {
        rows[n].name = "Normal";
        snprintf(rows[n++].value, sizeof rows[0].value, "%s", f->normal);
    }
    if (ctx->opened_ms > 0) {
        rows[n].name = "Opened";
        format_clock(rows[n++].value, sizeof rows[0].value, ctx->opened_ms, ctx->now_ms,
                     ctx->utc_offset_min, true);
    }
    if (all_clear && ctx->resolved_ms > 0) {
        rows[n].name = "Resolved";
        format_clock(rows[n++].value, sizeof rows[0].value, ctx->resolved_ms, ctx->now_ms,
                     ctx->utc_offset_min, true);
    }
    return n;
}

size_t explain_render_text(const struct explanation *e, const struct explain_context *ctx,
                           bool all_clear, char *buf, size_t len)
{
    struct facts f;
    gather(&f, ctx);
    struct fact_row rows[10];
    size_t n = fact_rows(&f, ctx, all_clear, rows);
    struct out o = {buf, len, 0};
    if (len > 0)
        buf[0] = '\0';
    out_s(&o, e->title);
    out_s(&o, "\n\n");
    out_s(&o, e->description);
    out_s(&o, "\n\nWhat to do: ");
    out_s(&o, e->action);
    out_s(&o, "\n\n");
    for (size_t i = 0; i < n; i++) {
        char line[NAME_BUF + 128];
        snprintf(line, sizeof line, "%-15s %s\n", rows[i].name, rows[i].value);
        out_s(&o, line);
    }
    out_s(&o, "\n-- \ncanary\n");
    return o.len;
}

static const char *severity_colour(enum alert_severity s)
{
    switch (s) {
    case SEVERITY_CRITICAL:
        return "#b00020";
    case SEVERITY_HIGH:
        return "#c0392b";
    case SEVERITY_MEDIUM:
        return "#b9770e";
    default:
        return "#555555";
    }
}

size_t explain_render_html(const struct explanation *e, const struct explain_context *ctx,
                           bool all_clear, char *buf, size_t len)
{
    struct facts f;
    gather(&f, ctx);
    struct fact_row rows[10];
    size_t n = fact_rows(&f, ctx, all_clear, rows);
    struct out o = {buf, len, 0};
    if (len > 0)
        buf[0] = '\0';
    out_s(&o, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    out_html(&o, e->title);
    out_s(&o, "</title></head>\n<body style=\"font-family:sans-serif;max-width:40em\">\n"
              "<h2 style=\"color:");
    out_s(&o, all_clear ? "#1e8449" : severity_colour(ctx->severity));
    out_s(&o, "\">");
    out_html(&o, e->title);
    out_s(&o, "</h2>\n<p>");
    out_html(&o, e->description);
    out_s(&o, "</p>\n<p><strong>What to do:</strong> ");
    out_html(&o, e->action);
    out_s(&o, "</p>\n<table style=\"border-collapse:collapse\">\n");
    for (size_t i = 0; i < n; i++) {
        out_s(&o, "<tr><th style=\"text-align:left;padding-right:1em\">");
        out_html(&o, rows[i].name);
        out_s(&o, "</th><td>");
        out_html(&o, rows[i].value);
        out_s(&o, "</td></tr>\n");
    }
    out_s(&o, "</table>\n<p style=\"color:#777;font-size:small\">Sent by canary.</p>\n"
              "</body></html>\n");
    return o.len;
}
