/* ingest_line.c — InfluxDB line protocol (what Telegraf sends) into struct reading.
 *
 * One reading per line, as in
 * https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/:
 *   <measurement>[,<tag>=<value>...] <field>=<value>[,<field>=<value>...] [<timestamp>]
 *   air,device=kitchen-1,room=kitchen gas_ppm=412.5,flame=f,seq=1042i 1763676000123000000
 * The tag "device" is the device id; the integer field "seq" (42i or 42u) is the reading's
 * seq; every other field is a metric value: a float (1.5, -3, 1e3), an integer (12i), an
 * unsigned integer (12u) or a boolean (t, true, f, false... as 1 and 0). The measurement
 * name and the other tags are read past and ignored.
 *
 * Lexical rules: '\n' always ends a line (the protocol allows no newline inside a value) and
 * a '\r' before it is dropped; blank lines and lines whose first non-blank byte is '#' are
 * skipped but counted, so errors name the line of the body ("line 3: values.gas_ppm").
 * Sections are separated by runs of spaces or tabs. Inside names, tag values and strings a
 * backslash escapes the byte after it (`my\ air`, `a\,b`, `k\=v`, "say \"hi\""). Names and
 * the device id are never unescaped: they are checked as written, and since a metric name or
 * device id may hold none of , = space or backslash, an escaped one is simply invalid.
 *
 * The body is checked as a whole first (not empty, no NUL byte, UTF-8, at most max_batch
 * reading lines, counted without allocating); then every line on its own, so one bad line
 * does not spoil its batch. Every line is scanned once; fields are compared for duplicates
 * only after a line was found to have at most max_metrics + 1 of them (the metrics and seq),
 * so the work is O(length) whatever the input.
 *
 * Choices the protocol leaves open: a timestamp must not be negative, is truncated to whole
 * milliseconds (which, for a non-negative number, is also rounding towards -infinity) and,
 * as in the JSON format, must stay below 2^53 ms; seq must be below 2^53 too. Lines longer
 * than 64 KiB and numbers longer than 127 characters are rejected as invalid: no sender
 * writes them, and the second bound lets strtod() read a copy on the stack. */
#include "ingest/ingest.h"

#include "core/error.h"
#include "core/metric.h"
#include "core/utf8.h"
#include "ingest/ingest_text.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^53, the first integer a double cannot tell from its neighbour; seq and ts stay below. */
#define MAX_EXACT_INT 9007199254740992ull

/* 256 metrics of ~90 bytes each is 23 KiB; a line beyond this is not a reading. */
#define MAX_LINE_BYTES 65536

/* The shortest text that reads back as the same double never needs more than 24
 * characters; this leaves room for senders that pad with zeros. */
#define MAX_NUMBER_CHARS 127

/* Returned by the steps of a line: the reading was rejected, go on with the next line. */
#define LINE_REJECTED 1

/* One field as written on its line: spans into the body, nothing copied or unescaped. */
struct field_span {
    const char *key; /* field key, escapes included */
    size_t key_len;
    const char *val; /* value; a string value includes its quotes */
    size_t val_len;
    bool is_string; /* the value is a double-quoted string */
};

/* One line split into its sections, before any value is interpreted. */
struct line_parts {
    const char *device; /* value of the device tag as written, or NULL without one */
    size_t device_len;
    struct field_span *fields; /* the parse's scratch array of max_metrics + 1 entries */
    size_t n_fields;
    const char *ts; /* timestamp text, or NULL when the line has none */
    size_t ts_len;
};

/* What every step needs: the batch, the limits, and where in the body the line is. */
struct line_ctx {
    struct ingest_batch *b;
    const struct ingest_limits *lim;
    enum line_precision precision;
    int64_t recv_ms;
    struct field_span *scratch; /* max_metrics + 1 entries, reused by every line */
    size_t i;                   /* index of the reading */
    size_t lineno;              /* 1-based line of the body, blank and comment lines included */
};

/* A field value read as a number. */
enum value_kind { VALUE_FLOAT, VALUE_INT, VALUE_UINT, VALUE_BOOL };

enum value_error { VALUE_OK, VALUE_EMPTY, VALUE_SYNTAX, VALUE_RANGE, VALUE_TOO_LONG };

struct field_value {
    enum value_kind kind;
    double d;      /* the value as a metric; finite */
    uint64_t mag;  /* VALUE_INT and VALUE_UINT: the magnitude, exact */
    bool negative; /* VALUE_INT: below zero */
};

/* Marks the reading invalid with the field "line <n>: <path>". */
static void reject_line(const struct line_ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reject_line(const struct line_ctx *c, const char *path, const char *fmt, ...)
{
    char field[128], reason[320];
    snprintf(field, sizeof field, "line %zu: %s", c->lineno, path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    ingest_batch_reject(c->b, c->i, field, "%s", reason);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && is_blank(*p))
        p++;
    return p;
}

/* Returns the end of the line that starts at p (its '\n', or end) and sets *text_end to the
 * end of its text, without a '\r' before the '\n'. */
static const char *line_end(const char *p, const char *end, const char **text_end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl != NULL ? nl : end;
    *text_end = (e > p && e[-1] == '\r') ? e - 1 : e;
    return e;
}

/* True when the line text [p, end) holds a reading: it is neither blank nor a comment. */
static bool line_has_reading(const char *p, const char *end)
{
    p = skip_blanks(p, end);
    return p < end && *p != '#';
}

/* Counts the reading lines of the body, stopping once there are more than stop_after: the
 * max_batch check must come before anything is allocated for the readings. */
static size_t count_readings(const char *body, size_t len, size_t stop_after)
{
    const char *p = body, *end = body + len;
    size_t n = 0;
    while (p < end && n <= stop_after) {
        const char *text_end;
        const char *e = line_end(p, end, &text_end);
        if (line_has_reading(p, text_end))
            n++;
        p = e < end ? e + 1 : end;
    }
    return n;
}

/* Returns the first unescaped ',', space or tab of [p, end) — or '=' too when stop_at_eq —
 * or end. A backslash escapes the byte after it, whatever that byte is, as InfluxDB reads. */
static const char *scan_name(const char *p, const char *end, bool stop_at_eq)
{
    while (p < end) {
        char c = *p;
        if (c == '\\') {
            p += end - p >= 2 ? 2 : 1;
            continue;
        }
        if (c == ',' || is_blank(c) || (stop_at_eq && c == '='))
            break;
        p++;
    }
    return p;
}

/* p is at a string's opening quote. Returns the byte after its closing quote, or NULL when
 * the line ends first. */
static const char *scan_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\') {
            if (end - p < 2)
                return NULL;
            p++;
        }
    }
    return NULL;
}

/* Reads the tags after the measurement ([,<key>=<value>]...) up to the first blank, noting
 * the device tag. Returns false after rejecting the reading. */
static bool split_tags(const struct line_ctx *c, const char **pp, const char *end,
                       struct line_parts *lp)
{
    char ex[48];
    const char *p = *pp;
    while (p < end && *p == ',') {
        const char *k = p + 1;
        const char *eq = scan_name(k, end, true);
        if (eq == k) {
            reject_line(c, "", "a tag has an empty key");
            return false;
        }
        if (eq == end || *eq != '=') {
            reject_line(c, "", "tag '%s' has no value (write <key>=<value>)",
                        ingest_excerpt(k, (size_t)(eq - k), ex, sizeof ex));
            return false;
        }
        const char *v = eq + 1;
        p = scan_name(v, end, false);
        if (p == v) {
            reject_line(c, "", "tag '%s' has an empty value (leave the tag out instead)",
                        ingest_excerpt(k, (size_t)(eq - k), ex, sizeof ex));
            return false;
        }
        if (eq - k == 6 && memcmp(k, "device", 6) == 0) {
            if (lp->device != NULL) {
                reject_line(c, "device", "appears twice among the tags");
                return false;
            }
            lp->device = v;
            lp->device_len = (size_t)(p - v);
        }
    }
    *pp = p;
    return true;
}

/* Reads one field's value starting at v into f. Returns the byte after it, or NULL after
 * rejecting the reading. */
static const char *split_value(const struct line_ctx *c, const char *v, const char *end,
                               struct field_span *f)
{
    char ex[48];
    const char *ve;
    f->is_string = v < end && *v == '"';
    if (f->is_string) {
        ve = scan_string(v, end);
        if (ve == NULL) {
            reject_line(c, "", "the string value of field '%s' has no closing quote",
                        ingest_excerpt(f->key, f->key_len, ex, sizeof ex));
            return NULL;
        }
        if (ve < end && *ve != ',' && !is_blank(*ve)) {
            reject_line(c, "", "field '%s' has text after the closing quote of its value",
                        ingest_excerpt(f->key, f->key_len, ex, sizeof ex));
            return NULL;
        }
    } else {
        ve = scan_name(v, end, false);
    }
    f->val = v;
    f->val_len = (size_t)(ve - v);
    return ve;
}

/* Reads the field set (<key>=<value>[,...]) into lp->fields, rejecting a line with more
 * fields than a reading can have before anything else looks at them. Returns false after
 * rejecting the reading. */
static bool split_fields(const struct line_ctx *c, const char **pp, const char *end,
                         struct line_parts *lp)
{
    char ex[48];
    size_t cap = (size_t)c->lim->max_metrics + 1;
    const char *p = *pp;
    for (;;) {
        if (lp->n_fields == cap) {
            reject_line(c, "values", "holds more than %u metrics (limit ingest.max_metrics)",
                        c->lim->max_metrics);
            return false;
        }
        const char *k = p;
        const char *eq = scan_name(k, end, true);
        if (eq == k) {
            reject_line(c, "", "a field has an empty name");
            return false;
        }
        if (eq == end || *eq != '=') {
            reject_line(c, "", "field '%s' has no value (write <field>=<value>)",
                        ingest_excerpt(k, (size_t)(eq - k), ex, sizeof ex));
            return false;
        }
        struct field_span *f = &lp->fields[lp->n_fields++];
        f->key = k;
        f->key_len = (size_t)(eq - k);
        p = split_value(c, eq + 1, end, f);
        if (p == NULL)
            return false;
        if (p == end || *p != ',')
            break;
        p++;
    }
    *pp = p;
    return true;
}

/* Splits the line text [p, end) into its sections without interpreting any value. Returns
 * false after rejecting the reading when the line is malformed. */
static bool split_line(const struct line_ctx *c, const char *p, const char *end,
                       struct line_parts *lp)
{
    char ex[48];
    p = skip_blanks(p, end);
    const char *measurement = p;
    p = scan_name(p, end, false);
    if (p == measurement) {
        reject_line(c, "",
                    "the measurement name is missing (a line starts "
                    "<measurement>[,<tag>=<value>...] and a blank)");
        return false;
    }
    if (!split_tags(c, &p, end, lp))
        return false;
    p = skip_blanks(p, end);
    if (p == end) {
        reject_line(c, "",
                    "has no fields (expected <measurement>[,<tag>=<value>...] "
                    "<field>=<value>[,...] [<timestamp>])");
        return false;
    }
    if (!split_fields(c, &p, end, lp))
        return false;
    p = skip_blanks(p, end);
    if (p == end)
        return true;
    lp->ts = p;
    while (p < end && !is_blank(*p))
        p++;
    lp->ts_len = (size_t)(p - lp->ts);
    p = skip_blanks(p, end);
    if (p != end) {
        reject_line(c, "", "unexpected text after the timestamp: '%s'",
                    ingest_excerpt(p, (size_t)(end - p), ex, sizeof ex));
        return false;
    }
    return true;
}

/* Reads "[-]digits" (no sign when is_unsigned) as an exact integer of at most 64 bits,
 * signed or not. */
static enum value_error parse_integer(const char *s, size_t n, bool is_unsigned,
                                      struct field_value *v)
{
    bool negative = !is_unsigned && n > 0 && s[0] == '-';
    if (negative) {
        s++;
        n--;
    }
    if (n == 0)
        return VALUE_SYNTAX;
    for (size_t k = 0; k < n; k++) {
        if (!is_digit(s[k]))
            return VALUE_SYNTAX;
    }
    uint64_t limit = is_unsigned ? UINT64_MAX : negative ? (uint64_t)INT64_MAX + 1 : INT64_MAX;
    uint64_t m = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned d = (unsigned)(s[k] - '0');
        if (m > (limit - d) / 10)
            return VALUE_RANGE;
        m = m * 10 + d;
    }
    v->kind = is_unsigned ? VALUE_UINT : VALUE_INT;
    v->mag = m;
    v->negative = negative && m != 0;
    v->d = v->negative ? -(double)m : (double)m;
    return VALUE_OK;
}

/* True when s[0..n) is a decimal float: -?(digits[.digits]|.digits)([eE][+-]?digits)?.
 * Checked before strtod() so that nan, inf and hex floats, which strtod() accepts, are not. */
static bool float_syntax_ok(const char *s, size_t n)
{
    size_t k = 0, digits = 0;
    if (k < n && s[k] == '-')
        k++;
    for (; k < n && is_digit(s[k]); k++)
        digits++;
    if (k < n && s[k] == '.') {
        for (k++; k < n && is_digit(s[k]); k++)
            digits++;
    }
    if (digits == 0)
        return false;
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        size_t exp_digits = 0;
        for (; k < n && is_digit(s[k]); k++)
            exp_digits++;
        if (exp_digits == 0)
            return false;
    }
    return k == n;
}

/* strtod() reads the C locale's '.', which is what canary runs in (no setlocale() call). */
static enum value_error parse_float(const char *s, size_t n, struct field_value *v)
{
    char buf[MAX_NUMBER_CHARS + 1];
    if (!float_syntax_ok(s, n))
        return VALUE_SYNTAX;
    if (n > MAX_NUMBER_CHARS)
        return VALUE_TOO_LONG;
    memcpy(buf, s, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (!isfinite(d))
        return VALUE_RANGE;
    v->kind = VALUE_FLOAT;
    v->d = d;
    return VALUE_OK;
}

/* The boolean spellings of line protocol. */
static bool parse_bool(const char *s, size_t n, double *out)
{
    static const char *const spellings[] = {"t", "T", "true",  "True",  "TRUE",
                                            "f", "F", "false", "False", "FALSE"};
    for (size_t k = 0; k < sizeof spellings / sizeof spellings[0]; k++) {
        if (strlen(spellings[k]) == n && memcmp(spellings[k], s, n) == 0) {
            *out = k < 5 ? 1.0 : 0.0;
            return true;
        }
    }
    return false;
}

/* Reads an unquoted field value: a boolean, 12i, 12u or a float. */
static enum value_error parse_value(const char *s, size_t n, struct field_value *v)
{
    if (n == 0)
        return VALUE_EMPTY;
    if (parse_bool(s, n, &v->d)) {
        v->kind = VALUE_BOOL;
        return VALUE_OK;
    }
    if (s[n - 1] == 'i' || s[n - 1] == 'u')
        return parse_integer(s, n - 1, s[n - 1] == 'u', v);
    return parse_float(s, n, v);
}

static bool is_seq(const struct field_span *f)
{
    return f->key_len == 3 && memcmp(f->key, "seq", 3) == 0;
}

static int take_device(const struct line_ctx *c, const struct line_parts *lp, struct reading *r)
{
    char ex[48];
    const struct ingest_limits *lim = c->lim;
    if (lp->device == NULL) {
        reject_line(c, "device", "is required (add the tag device=<id>)");
        return LINE_REJECTED;
    }
    if (!device_id_valid(lp->device, lp->device_len, lim->max_device_len)) {
        if (lp->device_len > lim->max_device_len)
            reject_line(c, "device", "is longer than %u bytes (limit ingest.max_device_len)",
                        lim->max_device_len);
        else
            reject_line(c, "device",
                        "'%s' is not a valid device id (letters, digits and . _ : -, "
                        "starting with a letter or digit)",
                        ingest_excerpt(lp->device, lp->device_len, ex, sizeof ex));
        return LINE_REJECTED;
    }
    r->device = arena_strndup(&c->b->arena, lp->device, lp->device_len);
    return r->device != NULL ? CANARY_OK : CANARY_ENOMEM;
}

/* Rejects the line when two fields share a key. Keys are compared as written: two spellings
 * of one name differ only by escapes, and an escaped key is never a valid name. */
static int check_duplicates(const struct line_ctx *c, const struct line_parts *lp)
{
    char ex[48];
    for (size_t a = 0; a < lp->n_fields; a++) {
        const struct field_span *fa = &lp->fields[a];
        for (size_t k = a + 1; k < lp->n_fields; k++) {
            const struct field_span *fk = &lp->fields[k];
            if (fa->key_len != fk->key_len || memcmp(fa->key, fk->key, fa->key_len) != 0)
                continue;
            if (is_seq(fa))
                reject_line(c, "seq", "appears twice");
            else
                reject_line(c, "values", "field '%s' appears twice",
                            ingest_excerpt(fa->key, fa->key_len, ex, sizeof ex));
            return LINE_REJECTED;
        }
    }
    return CANARY_OK;
}

static int take_seq(const struct line_ctx *c, const struct line_parts *lp, struct reading *r)
{
    char ex[48];
    for (size_t k = 0; k < lp->n_fields; k++) {
        const struct field_span *f = &lp->fields[k];
        if (!is_seq(f))
            continue;
        struct field_value v;
        if (f->is_string || parse_value(f->val, f->val_len, &v) != VALUE_OK ||
            (v.kind != VALUE_INT && v.kind != VALUE_UINT) || v.negative || v.mag >= MAX_EXACT_INT) {
            reject_line(c, "seq",
                        "must be a whole number from 0 to 2^53 written as an integer (42i or "
                        "42u), got %s%s%s",
                        f->is_string ? "a string" : "'",
                        f->is_string ? "" : ingest_excerpt(f->val, f->val_len, ex, sizeof ex),
                        f->is_string ? "" : "'");
            return LINE_REJECTED;
        }
        r->seq = v.mag;
        r->has_seq = true;
    }
    return CANARY_OK;
}

static const char *precision_unit(enum line_precision p)
{
    switch (p) {
    case LINE_PRECISION_NS:
        return "nanoseconds";
    case LINE_PRECISION_US:
        return "microseconds";
    case LINE_PRECISION_MS:
        return "milliseconds";
    case LINE_PRECISION_S:
        return "seconds";
    }
    return NULL;
}

/* Converts a timestamp t in the given precision to Unix ms, truncating the sub-millisecond
 * part. Returns false when the result would reach 2^53 ms. */
static bool ts_to_ms(uint64_t t, enum line_precision p, int64_t *ms)
{
    uint64_t v = t;
    if (p == LINE_PRECISION_NS)
        v = t / 1000000;
    else if (p == LINE_PRECISION_US)
        v = t / 1000;
    else if (p == LINE_PRECISION_S) {
        if (t > MAX_EXACT_INT / 1000)
            return false;
        v = t * 1000;
    }
    if (v >= MAX_EXACT_INT)
        return false;
    *ms = (int64_t)v;
    return true;
}

static int take_ts(const struct line_ctx *c, const struct line_parts *lp, struct reading *r)
{
    char ex[48];
    if (lp->ts == NULL)
        return CANARY_OK;
    struct field_value v;
    enum value_error e = parse_integer(lp->ts, lp->ts_len, false, &v);
    int64_t ms;
    if (e == VALUE_SYNTAX) {
        reject_line(c, "ts", "must be a whole number of %s since the Unix epoch, got '%s'",
                    precision_unit(c->precision),
                    ingest_excerpt(lp->ts, lp->ts_len, ex, sizeof ex));
        return LINE_REJECTED;
    }
    if (e == VALUE_OK && v.negative) {
        reject_line(c, "ts", "must not be before the Unix epoch, got '%s'",
                    ingest_excerpt(lp->ts, lp->ts_len, ex, sizeof ex));
        return LINE_REJECTED;
    }
    if (e != VALUE_OK || !ts_to_ms(v.mag, c->precision, &ms)) {
        reject_line(c, "ts",
                    "is out of range (at most 2^53 milliseconds since the Unix epoch), "
                    "got '%s'",
                    ingest_excerpt(lp->ts, lp->ts_len, ex, sizeof ex));
        return LINE_REJECTED;
    }
    r->ts_ms = ms;
    r->has_ts = true;
    return CANARY_OK;
}

/* True when the field becomes a metric value (or, if it cannot, makes the reading invalid):
 * seq does not, and neither does a string field when strict_fields is off. */
static bool is_metric_field(const struct line_ctx *c, const struct field_span *f)
{
    return !is_seq(f) && (!f->is_string || c->lim->strict_fields);
}

static void reject_value(const struct line_ctx *c, const char *path, enum value_error e,
                         const struct field_span *f)
{
    char ex[48];
    switch (e) {
    case VALUE_EMPTY:
        reject_line(c, path, "must be a finite number, got nothing");
        break;
    case VALUE_RANGE:
        reject_line(c, path, "must be a finite number (got an overflow)");
        break;
    case VALUE_TOO_LONG:
        reject_line(c, path, "must be a number of at most %d characters", MAX_NUMBER_CHARS);
        break;
    case VALUE_SYNTAX:
    case VALUE_OK:
        reject_line(c, path, "must be a finite number, got '%s'",
                    ingest_excerpt(f->val, f->val_len, ex, sizeof ex));
        break;
    }
}

/* Checks a metric field's name and value and appends it to r->values. */
static int take_metric(const struct line_ctx *c, const struct field_span *f, struct reading *r)
{
    char ex[48], path[80];
    const struct ingest_limits *lim = c->lim;
    if (!metric_name_valid(f->key, f->key_len, lim->max_metric_len)) {
        if (f->key_len > lim->max_metric_len)
            reject_line(c, "values",
                        "metric name '%s' is longer than %u bytes (limit ingest.max_metric_len)",
                        ingest_excerpt(f->key, f->key_len, ex, sizeof ex), lim->max_metric_len);
        else
            reject_line(c, "values",
                        "metric name '%s' is not snake_case ([a-z][a-z0-9_]*, e.g. gas_ppm)",
                        ingest_excerpt(f->key, f->key_len, ex, sizeof ex));
        return LINE_REJECTED;
    }
    snprintf(path, sizeof path, "values.%.*s", (int)f->key_len, f->key);
    if (f->is_string) {
        reject_line(c, path, "must be a finite number, got a string");
        return LINE_REJECTED;
    }
    struct field_value v;
    enum value_error e = parse_value(f->val, f->val_len, &v);
    if (e != VALUE_OK) {
        reject_value(c, path, e, f);
        return LINE_REJECTED;
    }
    struct metric_value *mv = &r->values[r->n_values++];
    mv->name = arena_strndup(&c->b->arena, f->key, f->key_len);
    if (mv->name == NULL)
        return CANARY_ENOMEM;
    mv->value = v.d;
    mv->score = 0;
    mv->flags = 0;
    return CANARY_OK;
}

static int take_values(const struct line_ctx *c, const struct line_parts *lp, struct reading *r)
{
    size_t n = 0;
    for (size_t k = 0; k < lp->n_fields; k++)
        n += is_metric_field(c, &lp->fields[k]);
    if (n == 0) {
        reject_line(c, "values", "must hold at least one metric (a number or boolean field)");
        return LINE_REJECTED;
    }
    if (n > c->lim->max_metrics) {
        reject_line(c, "values", "holds more than %u metrics (limit ingest.max_metrics)",
                    c->lim->max_metrics);
        return LINE_REJECTED;
    }
    r->values = arena_alloc(&c->b->arena, n * sizeof *r->values);
    if (r->values == NULL)
        return CANARY_ENOMEM;
    r->n_values = 0;
    for (size_t k = 0; k < lp->n_fields; k++) {
        if (!is_metric_field(c, &lp->fields[k]))
            continue;
        int rc = take_metric(c, &lp->fields[k], r);
        if (rc != CANARY_OK)
            return rc;
    }
    return CANARY_OK;
}

/* Parses the line text [p, end) into reading c->i. Returns 0 (the reading may have been
 * rejected) or CANARY_ENOMEM. */
static int parse_reading_line(const struct line_ctx *c, const char *p, const char *end)
{
    struct reading *r = &c->b->readings[c->i];
    r->recv_ms = c->recv_ms;
    r->ts_ms = c->recv_ms;
    if (end - p > MAX_LINE_BYTES) {
        reject_line(c, "", "the line is longer than %d bytes", MAX_LINE_BYTES);
        return CANARY_OK;
    }
    struct line_parts lp = {.fields = c->scratch};
    if (!split_line(c, p, end, &lp))
        return CANARY_OK;
    int rc = take_device(c, &lp, r);
    if (rc == CANARY_OK)
        rc = check_duplicates(c, &lp);
    if (rc == CANARY_OK)
        rc = take_seq(c, &lp, r);
    if (rc == CANARY_OK)
        rc = take_ts(c, &lp, r);
    if (rc == CANARY_OK)
        rc = take_values(c, &lp, r);
    return rc == LINE_REJECTED ? CANARY_OK : rc;
}

static int parse_lines(struct line_ctx *c, const char *body, size_t len)
{
    const char *p = body, *end = body + len;
    while (p < end && c->i < c->b->n) {
        const char *text_end;
        const char *e = line_end(p, end, &text_end);
        c->lineno++;
        if (line_has_reading(p, text_end)) {
            int rc = parse_reading_line(c, p, text_end);
            if (rc != CANARY_OK)
                return rc;
            c->i++;
        }
        p = e < end ? e + 1 : end;
    }
    assert(c->i == c->b->n); /* count_readings() and this loop agree on what a reading is */
    return CANARY_OK;
}

int line_precision_parse(const char *s, enum line_precision *out)
{
    static const char *const names[] = {"ns", "us", "ms", "s"};
    static const enum line_precision values[] = {LINE_PRECISION_NS, LINE_PRECISION_US,
                                                 LINE_PRECISION_MS, LINE_PRECISION_S};
    for (size_t k = 0; s != NULL && k < sizeof names / sizeof names[0]; k++) {
        if (strcmp(s, names[k]) == 0) {
            *out = values[k];
            return CANARY_OK;
        }
    }
    return CANARY_EINVAL;
}

int ingest_parse_line(const char *body, size_t len, const struct ingest_limits *lim,
                      enum line_precision precision, int64_t recv_ms, struct ingest_batch *out,
                      struct ingest_fatal *fatal)
{
    size_t bad;
    ingest_batch_size_for(out, len);
    if (len == 0) {
        ingest_fatal_set(fatal, 400, "", "the body is empty; send one reading per line");
        return CANARY_EINVAL;
    }
    if (memchr(body, '\0', len) != NULL) {
        ingest_fatal_set(fatal, 400, "", "the body contains a NUL byte");
        return CANARY_EINVAL;
    }
    if (!utf8_valid(body, len, &bad)) {
        ingest_fatal_set(fatal, 400, "", "the body is not valid UTF-8 (at byte %zu)", bad);
        return CANARY_EINVAL;
    }
    if (precision_unit(precision) == NULL) {
        ingest_fatal_set(fatal, 400, "precision",
                         "unknown timestamp precision (use ns, us, ms or s)");
        return CANARY_EINVAL;
    }
    size_t n = count_readings(body, len, lim->max_batch);
    if (n == 0) {
        ingest_fatal_set(fatal, 400, "", "the body holds no readings, only blank or comment lines");
        return CANARY_EINVAL;
    }
    if (n > lim->max_batch) {
        ingest_fatal_set(fatal, 413, "ingest.max_batch",
                         "the body holds more than %u readings (limit ingest.max_batch)",
                         lim->max_batch);
        return CANARY_ELIMIT;
    }
    struct line_ctx c = {.b = out, .lim = lim, .precision = precision, .recv_ms = recv_ms};
    int rc = ingest_batch_reserve(out, n);
    if (rc == CANARY_OK) {
        c.scratch = arena_alloc(&out->arena, ((size_t)lim->max_metrics + 1) * sizeof *c.scratch);
        rc = c.scratch != NULL ? CANARY_OK : CANARY_ENOMEM;
    }
    if (rc == CANARY_OK) {
        out->is_array = n > 1;
        rc = parse_lines(&c, body, len);
    }
    if (rc == CANARY_ENOMEM)
        ingest_fatal_set(fatal, 503, "", "out of memory");
    return rc;
}
