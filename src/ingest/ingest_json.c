/* ingest_json.c — the JSON wire format (ARCHITECTURE.md) into struct reading.
 *
 * Accepted shape of a reading:
 *   {"device": "<id>", "seq": <0..2^53>, "ts": <Unix ms, optional>,
 *    "values": {"<metric>": <finite number | true | false>, ...}}
 * and a batch is a JSON array of them.
 *
 * Why not a JSON library: this is the hottest code of ingest. cJSON (what the project used
 * first) builds a heap node per value and the readings are then copied out of the tree;
 * measured on the in-process pipeline that was 1.0-1.5 us of a 3.3 us reading, the largest
 * stage (docs/BENCHMARKS.md). This parser reads the wire format in one pass straight into
 * the batch's arena: no allocation per value, no tree.
 *
 * It is still a strict JSON parser (RFC 8259): the body must be one JSON value with only
 * whitespace after it, every string and number must be well-formed (no raw control
 * characters, valid escapes, no lone surrogates), and the body as a whole must be valid
 * UTF-8 and free of NUL bytes. Strings are handled with explicit lengths, so an escaped NUL
 * (\u0000) is an ordinary — and for device ids and metric names invalid — character, never
 * an early end. Values of ignored fields are skipped iteratively (no recursion) down to
 * MAX_DEPTH levels, so hostile nesting cannot exhaust the stack.
 *
 * Errors come in two levels (ingest.h): a body that is not valid JSON, or not a reading or
 * an array of them, is refused as a whole with its byte, line and column; a reading that is
 * valid JSON but wrong gets its own error naming the field, and its batch goes on. Work per
 * reading is bounded by the limits: duplicate keys are found by hash among at most
 * MAX_KEYS keys, and metrics beyond max_metrics are only counted. */
#include "ingest/ingest.h"

#include "core/error.h"
#include "core/metric.h"
#include "core/utf8.h"
#include "ingest/ingest_text.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest integer a double holds exactly; seq and ts must stay below it. */
#define MAX_EXACT_INT 9007199254740992.0
/* Nesting allowed inside the values of ignored fields. */
#define MAX_DEPTH 1000
/* Keys a reading object may have before it is refused outright (device, seq, ts, values and
 * ignored ones when strict_fields is off). */
#define MAX_KEYS 64
/* Longest number text accepted (JSON has no limit; no sensor writes 500 digits). */
#define MAX_NUMBER_CHARS 500

enum jtype { J_STRING, J_NUMBER, J_BOOL, J_NULL, J_ARRAY, J_OBJECT, J_BAD };

static const char *type_name(enum jtype t)
{
    static const char *const names[] = {"a string", "a number",  "a boolean", "null",
                                        "an array", "an object", "invalid"};
    return names[t];
}

struct jp {
    const char *start; /* the body */
    const char *p;     /* cursor */
    const char *end;
    struct ingest_fatal *fatal;
    int rc; /* the first fatal error, or 0 */
};

/* ---------------------------------------------------------------- lexical level */

static int fail_at(struct jp *j, const char *at)
{
    if (j->rc != 0)
        return j->rc;
    size_t off = (size_t)(at - j->start), line = 1, col = 1;
    for (const char *q = j->start; q < at; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    ingest_fatal_set(j->fatal, 400, "", "malformed JSON at byte %zu (line %zu, column %zu)", off,
                     line, col);
    j->rc = CANARY_EINVAL;
    return j->rc;
}

static void ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* The type of the value at the cursor (after whitespace), by its first character. */
static enum jtype peek(const struct jp *j)
{
    if (j->p >= j->end)
        return J_BAD;
    switch (*j->p) {
    case '"':
        return J_STRING;
    case '{':
        return J_OBJECT;
    case '[':
        return J_ARRAY;
    case 't':
    case 'f':
        return J_BOOL;
    case 'n':
        return J_NULL;
    default:
        return (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) ? J_NUMBER : J_BAD;
    }
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* A decoded string: the first `cap` bytes in buf, its full length, and (when want_hash) a
 * hash of all of it (FNV-1a, for duplicate keys). */
struct jstr {
    char *buf;
    size_t cap;
    size_t len;
    uint64_t hash;
    bool want_hash;
};

static void put(struct jstr *s, unsigned char c)
{
    if (s->len < s->cap)
        s->buf[s->len] = (char)c;
    s->len++;
    if (s->want_hash)
        s->hash = (s->hash ^ c) * 0x100000001b3ULL;
}

/* Appends a run of plain bytes (the common case: no escapes). */
static void put_run(struct jstr *s, const char *run, size_t n)
{
    if (s->len < s->cap)
        memcpy(s->buf + s->len, run, n < s->cap - s->len ? n : s->cap - s->len);
    s->len += n;
    if (s->want_hash)
        for (size_t i = 0; i < n; i++)
            s->hash = (s->hash ^ (unsigned char)run[i]) * 0x100000001b3ULL;
}

static void put_utf8(struct jstr *s, unsigned cp)
{
    if (cp < 0x80) {
        put(s, (unsigned char)cp);
    } else if (cp < 0x800) {
        put(s, (unsigned char)(0xC0 | (cp >> 6)));
        put(s, (unsigned char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        put(s, (unsigned char)(0xE0 | (cp >> 12)));
        put(s, (unsigned char)(0x80 | ((cp >> 6) & 0x3F)));
        put(s, (unsigned char)(0x80 | (cp & 0x3F)));
    } else {
        put(s, (unsigned char)(0xF0 | (cp >> 18)));
        put(s, (unsigned char)(0x80 | ((cp >> 12) & 0x3F)));
        put(s, (unsigned char)(0x80 | ((cp >> 6) & 0x3F)));
        put(s, (unsigned char)(0x80 | (cp & 0x3F)));
    }
}

/* Parses the string at the cursor (on its '"'), decoding into s (buf may be NULL, cap 0). */
static int parse_string(struct jp *j, struct jstr *s)
{
    const char *p = j->p + 1, *end = j->end;
    s->len = 0;
    s->hash = 0xcbf29ce484222325ULL;
    for (;;) {
        if (p >= end)
            return fail_at(j, end);
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail_at(j, p);
        if (c != '\\') {
            const char *run = p;
            while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
                p++;
            put_run(s, run, (size_t)(p - run));
            continue;
        }
        const char *esc = p++;
        if (p >= end)
            return fail_at(j, end);
        switch (*p) {
        case '"':
        case '\\':
        case '/':
            put(s, (unsigned char)*p);
            break;
        case 'b':
            put(s, '\b');
            break;
        case 'f':
            put(s, '\f');
            break;
        case 'n':
            put(s, '\n');
            break;
        case 'r':
            put(s, '\r');
            break;
        case 't':
            put(s, '\t');
            break;
        case 'u': {
            unsigned cp, lo;
            if (end - p < 5 || hex4(p + 1, &cp) != 0)
                return fail_at(j, esc);
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail_at(j, esc); /* a low surrogate with no high one before it */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 7 || p[1] != '\\' || p[2] != 'u' || hex4(p + 3, &lo) != 0 ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return fail_at(j, esc); /* a high surrogate must be followed by a low one */
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            put_utf8(s, cp);
            break;
        }
        default:
            return fail_at(j, esc);
        }
        p++;
    }
    j->p = p + 1;
    return CANARY_OK;
}

/* Exact powers of ten representable in a double. */
static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Clinger's fast path (W. D. Clinger, "How to read floating point numbers accurately",
 * PLDI 1990): a decimal with at most 15 significant digits is an exact integer mantissa m,
 * and 10^k is exact for |k| <= 22, so m * 10^k (or m / 10^-k) is one correctly rounded
 * IEEE operation — the same double strtod() returns. The sensor values of the wire format
 * ("412.5", "21.37", "1763676000123") all take this path. [p, end) is a well-formed
 * unsigned JSON number. Returns false when the path does not apply. */
static bool fast_decimal(const char *p, const char *end, double *out)
{
    uint64_t m = 0;
    int digits = 0, e10 = 0;
    bool seen_nonzero = false;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        seen_nonzero = seen_nonzero || *p != '0';
        if (seen_nonzero && ++digits > 15)
            return false;
        m = m * 10 + (uint64_t)(*p - '0');
    }
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            seen_nonzero = seen_nonzero || *p != '0';
            if (seen_nonzero && ++digits > 15)
                return false;
            m = m * 10 + (uint64_t)(*p - '0');
            e10--;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = *p == '-';
        if (*p == '+' || *p == '-')
            p++;
        int e = 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (e > 1000)
                return false;
            e = e * 10 + (*p - '0');
        }
        e10 += eneg ? -e : e;
    }
    if (e10 < -22 || e10 > 22)
        return false;
    *out = e10 >= 0 ? (double)m * pow10_exact[e10] : (double)m / pow10_exact[-e10];
    return true;
}

/* Parses the number at the cursor (RFC 8259 grammar) into *out (inf when it overflows). */

static int parse_number(struct jp *j, double *out)
{
    const char *start = j->p, *p = j->p, *end = j->end;
    bool neg = p < end && *p == '-';
    if (neg)
        p++;
    if (p >= end)
        return fail_at(j, p);
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return fail_at(j, start);
    }
    bool integer = true;
    if (p < end && *p == '.') {
        integer = false;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail_at(j, p);
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = false;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail_at(j, p);
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t len = (size_t)(p - start);
    (void)integer;
    if (fast_decimal(start + neg, p, out)) {
        if (neg)
            *out = -*out;
    } else {
        if (len > MAX_NUMBER_CHARS)
            return fail_at(j, start);
        char buf[MAX_NUMBER_CHARS + 1];
        memcpy(buf, start, len);
        buf[len] = '\0';
        *out = strtod(buf, NULL); /* the C locale: canary never calls setlocale() */
    }
    j->p = p;
    return CANARY_OK;
}

static int parse_literal(struct jp *j, const char *word, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return fail_at(j, j->p);
    j->p += n;
    return CANARY_OK;
}

/* Parses a scalar of the given type (strings without keeping them). */
static int parse_scalar(struct jp *j, enum jtype t, double *num)
{
    struct jstr none = {NULL, 0, 0, 0, false};
    double ignored;
    switch (t) {
    case J_STRING:
        return parse_string(j, &none);
    case J_NUMBER:
        return parse_number(j, num ? num : &ignored);
    case J_BOOL:
        if (*j->p == 't') {
            if (num)
                *num = 1;
            return parse_literal(j, "true", 4);
        }
        if (num)
            *num = 0;
        return parse_literal(j, "false", 5);
    case J_NULL:
        return parse_literal(j, "null", 4);
    default:
        return fail_at(j, j->p);
    }
}

/* Skips (validating) the value at the cursor, of any type, without recursion. */
static int skip_value(struct jp *j)
{
    char stack[MAX_DEPTH]; /* the closer of every open container */
    int depth = 0;
    for (;;) {
        ws(j);
        enum jtype t = peek(j);
        if (t == J_ARRAY || t == J_OBJECT) {
            if (depth == MAX_DEPTH)
                return fail_at(j, j->p);
            stack[depth++] = t == J_ARRAY ? ']' : '}';
            j->p++;
            ws(j);
            if (j->p < j->end && *j->p == stack[depth - 1]) {
                j->p++;
                depth--;
            } else if (t == J_OBJECT) {
                goto key;
            } else {
                continue; /* the array's first value */
            }
        } else if (parse_scalar(j, t, NULL) != 0) {
            return j->rc;
        }
        /* After a value: close containers, or go on to the next member. */
        for (;;) {
            if (depth == 0)
                return CANARY_OK;
            ws(j);
            if (j->p >= j->end)
                return fail_at(j, j->end);
            if (*j->p == stack[depth - 1]) {
                j->p++;
                depth--;
                continue;
            }
            if (*j->p != ',')
                return fail_at(j, j->p);
            j->p++;
            if (stack[depth - 1] == ']')
                break; /* the next array value */
        key:
            ws(j);
            struct jstr none = {NULL, 0, 0, 0, false};
            if (j->p >= j->end || *j->p != '"')
                return fail_at(j, j->p);
            if (parse_string(j, &none) != 0)
                return j->rc;
            ws(j);
            if (j->p >= j->end || *j->p != ':')
                return fail_at(j, j->p);
            j->p++;
            break; /* the member's value */
        }
    }
}

/* ---------------------------------------------------------------- readings */

struct value_tmp {
    char name[READING_METRIC_BUF];
    size_t len;
    uint64_t hash;
    double value;
};

/* What the values object of a reading held, checked in the order the errors are reported. */
struct values_seen {
    size_t n;                               /* members */
    struct value_tmp v[READING_MAX_VALUES]; /* the first ones (up to max_metrics) */
    char dup[48];                           /* a metric that appears twice, "" if none */
    char bad_field[96], bad_reason[200];    /* the first member error, "" if none */
};

static void member_error(struct values_seen *vs, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void member_error(struct values_seen *vs, const char *field, const char *fmt, ...)
{
    if (vs->bad_reason[0] != '\0')
        return;
    snprintf(vs->bad_field, sizeof vs->bad_field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vs->bad_reason, sizeof vs->bad_reason, fmt, ap);
    va_end(ap);
}

static int parse_values(struct jp *j, const struct ingest_limits *lim, struct values_seen *vs)
{
    vs->n = 0;
    vs->dup[0] = vs->bad_field[0] = vs->bad_reason[0] = '\0';
    size_t keep = lim->max_metrics < READING_MAX_VALUES ? lim->max_metrics : READING_MAX_VALUES;
    j->p++; /* '{' */
    ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return CANARY_OK;
    }
    char ex[48];
    for (;;) {
        ws(j);
        if (j->p >= j->end || *j->p != '"')
            return fail_at(j, j->p);
        struct value_tmp *t = vs->n < keep ? &vs->v[vs->n] : NULL;
        char scratch[READING_METRIC_BUF];
        struct jstr name = {t ? t->name : scratch, READING_MAX_METRIC_LEN, 0, 0, true};
        if (parse_string(j, &name) != 0)
            return j->rc;
        size_t shown = name.len < READING_MAX_METRIC_LEN ? name.len : READING_MAX_METRIC_LEN;
        ws(j);
        if (j->p >= j->end || *j->p != ':')
            return fail_at(j, j->p);
        j->p++;
        ws(j);
        enum jtype type = peek(j);
        double value = 0;
        if (type == J_ARRAY || type == J_OBJECT ? skip_value(j) : parse_scalar(j, type, &value))
            return j->rc;
        if (t != NULL) {
            t->len = name.len;
            t->hash = name.hash;
            t->value = value;
            for (size_t k = 0; k < vs->n && vs->dup[0] == '\0'; k++) {
                if (vs->v[k].hash == name.hash && vs->v[k].len == name.len)
                    ingest_excerpt(name.buf, shown, vs->dup, sizeof vs->dup);
            }
            if (!metric_name_valid(name.buf, name.len, lim->max_metric_len)) {
                ingest_excerpt(name.buf, shown, ex, sizeof ex);
                if (name.len > lim->max_metric_len)
                    member_error(vs, "values",
                                 "metric name '%s' is longer than %u bytes (limit "
                                 "ingest.max_metric_len)",
                                 ex, lim->max_metric_len);
                else
                    member_error(vs, "values",
                                 "metric name '%s' is not snake_case ([a-z][a-z0-9_]*, e.g. "
                                 "gas_ppm)",
                                 ex);
            } else if (type == J_NUMBER && !isfinite(value)) {
                char field[96];
                snprintf(field, sizeof field, "values.%.*s", (int)name.len, name.buf);
                member_error(vs, field, "must be a finite number (got an overflow)");
            } else if (type != J_NUMBER && type != J_BOOL) {
                char field[96];
                snprintf(field, sizeof field, "values.%.*s", (int)name.len, name.buf);
                member_error(vs, field, "must be a finite number, got %s", type_name(type));
            }
        }
        vs->n++;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return CANARY_OK;
        }
        return fail_at(j, j->p);
    }
}

/* A number field of a reading: absent, of the wrong type, or its value. */
struct num_field {
    bool present;
    enum jtype type;
    double value;
};

static bool whole(const struct num_field *f, double lo)
{
    double d = f->value;
    return f->type == J_NUMBER && isfinite(d) && d == floor(d) && d >= lo && d < MAX_EXACT_INT;
}

/* Applies the checks of a parsed reading object in a fixed order (so a reading with several
 * faults always names the same one) and fills the reading. Returns 0 or CANARY_ENOMEM. */
static int finish_reading(struct ingest_batch *b, size_t i, const struct ingest_limits *lim,
                          bool too_many, const char *dup, const char *unknown,
                          const struct jstr *dev, enum jtype dev_type, bool dev_present,
                          const struct num_field *seq, const struct num_field *ts,
                          enum jtype vals_type, bool vals_present, const struct values_seen *vs)
{
    struct reading *r = &b->readings[i];
    char ex[48];
    if (too_many) {
        ingest_batch_reject(b, i, "", "a reading has at most 4 fields (device, seq, ts, values)");
        return CANARY_OK;
    }
    if (dup[0] != '\0') {
        ingest_batch_reject(b, i, "", "field '%s' appears twice", dup);
        return CANARY_OK;
    }
    if (unknown[0] != '\0' && lim->strict_fields) {
        ingest_batch_reject(b, i, unknown,
                            "unknown field (a reading has device, seq, ts and values)");
        return CANARY_OK;
    }
    if (!dev_present) {
        ingest_batch_reject(b, i, "device", "is required");
        return CANARY_OK;
    }
    if (dev_type != J_STRING) {
        ingest_batch_reject(b, i, "device", "must be a string, got %s", type_name(dev_type));
        return CANARY_OK;
    }
    size_t shown = dev->len < dev->cap ? dev->len : dev->cap;
    if (!device_id_valid(dev->buf, dev->len, lim->max_device_len)) {
        if (dev->len > lim->max_device_len)
            ingest_batch_reject(b, i, "device",
                                "is longer than %u bytes (limit ingest.max_device_len)",
                                lim->max_device_len);
        else
            ingest_batch_reject(b, i, "device",
                                "'%s' is not a valid device id (letters, digits and . _ : -, "
                                "starting with a letter or digit)",
                                ingest_excerpt(dev->buf, shown, ex, sizeof ex));
        return CANARY_OK;
    }
    r->device = arena_strndup(&b->arena, dev->buf, dev->len);
    if (r->device == NULL)
        return CANARY_ENOMEM;
    if (!seq->present) {
        ingest_batch_reject(b, i, "seq", "is required (the device's message counter)");
        return CANARY_OK;
    }
    if (!whole(seq, 0)) {
        ingest_batch_reject(b, i, "seq", "must be a whole number from 0 to 2^53, got %s",
                            seq->type == J_NUMBER ? "a fraction or an out-of-range number"
                                                  : type_name(seq->type));
        return CANARY_OK;
    }
    r->seq = (uint64_t)seq->value;
    r->has_seq = true;
    if (ts->present) {
        if (!whole(ts, 0)) {
            ingest_batch_reject(b, i, "ts", "must be Unix time in whole milliseconds, got %s",
                                ts->type == J_NUMBER ? "a fraction or an out-of-range number"
                                                     : type_name(ts->type));
            return CANARY_OK;
        }
        r->ts_ms = (int64_t)ts->value;
        r->has_ts = true;
    }
    if (!vals_present) {
        ingest_batch_reject(b, i, "values", "is required");
        return CANARY_OK;
    }
    if (vals_type != J_OBJECT) {
        ingest_batch_reject(b, i, "values", "must be an object of metric: number, got %s",
                            type_name(vals_type));
        return CANARY_OK;
    }
    if (vs->n == 0) {
        ingest_batch_reject(b, i, "values", "must hold at least one metric");
        return CANARY_OK;
    }
    if (vs->n > lim->max_metrics) {
        ingest_batch_reject(b, i, "values", "holds more than %u metrics (limit ingest.max_metrics)",
                            lim->max_metrics);
        return CANARY_OK;
    }
    if (vs->dup[0] != '\0') {
        ingest_batch_reject(b, i, "values", "metric '%s' appears twice", vs->dup);
        return CANARY_OK;
    }
    if (vs->bad_reason[0] != '\0') {
        ingest_batch_reject(b, i, vs->bad_field, "%s", vs->bad_reason);
        return CANARY_OK;
    }
    r->values = arena_alloc(&b->arena, vs->n * sizeof *r->values);
    if (r->values == NULL)
        return CANARY_ENOMEM;
    for (size_t k = 0; k < vs->n; k++) {
        struct metric_value *mv = &r->values[k];
        mv->name = arena_strndup(&b->arena, vs->v[k].name, vs->v[k].len);
        if (mv->name == NULL)
            return CANARY_ENOMEM;
        mv->value = vs->v[k].value;
        mv->score = 0;
        mv->flags = 0;
    }
    r->n_values = (uint32_t)vs->n;
    return CANARY_OK;
}

/* Parses the reading at the cursor into readings[i]. Returns 0 (the reading may be
 * invalid), or a fatal error. */
static int parse_reading(struct jp *j, struct ingest_batch *b, size_t i,
                         const struct ingest_limits *lim, int64_t recv_ms, struct values_seen *vs)
{
    struct reading *r = &b->readings[i];
    r->recv_ms = recv_ms;
    r->ts_ms = recv_ms;
    enum jtype t = peek(j);
    if (t != J_OBJECT) {
        if (t == J_ARRAY ? skip_value(j) : parse_scalar(j, t, NULL))
            return j->rc;
        ingest_batch_reject(b, i, "", "a reading must be a JSON object, got %s", type_name(t));
        return CANARY_OK;
    }
    struct {
        uint64_t hash;
        size_t len;
    } keys[MAX_KEYS];
    size_t n_keys = 0;
    bool too_many = false;
    char dup[48] = "", unknown[48] = "";
    char devbuf[READING_ID_BUF];
    struct jstr dev = {devbuf, READING_MAX_ID_LEN, 0, 0, false};
    bool dev_present = false, vals_present = false;
    enum jtype dev_type = J_NULL, vals_type = J_NULL;
    struct num_field seq = {false, J_NULL, 0}, ts = {false, J_NULL, 0};
    vs->n = 0;
    j->p++;
    ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        goto done;
    }
    for (;;) {
        ws(j);
        if (j->p >= j->end || *j->p != '"')
            return fail_at(j, j->p);
        char kbuf[64];
        struct jstr key = {kbuf, sizeof kbuf, 0, 0, true};
        if (parse_string(j, &key) != 0)
            return j->rc;
        size_t kshown = key.len < key.cap ? key.len : key.cap;
        ws(j);
        if (j->p >= j->end || *j->p != ':')
            return fail_at(j, j->p);
        j->p++;
        ws(j);
        if (n_keys < MAX_KEYS) {
            for (size_t k = 0; k < n_keys && dup[0] == '\0'; k++) {
                if (keys[k].hash == key.hash && keys[k].len == key.len)
                    ingest_excerpt(kbuf, kshown, dup, sizeof dup);
            }
            keys[n_keys].hash = key.hash;
            keys[n_keys].len = key.len;
        } else {
            too_many = true;
        }
        n_keys++;
        enum jtype vt = peek(j);
        struct num_field *num = NULL;
        int rc;
        if (key.len == 6 && memcmp(kbuf, "device", 6) == 0) {
            dev_present = true;
            dev_type = vt;
            if (vt == J_STRING)
                rc = parse_string(j, &dev);
            else
                rc = vt == J_ARRAY || vt == J_OBJECT ? skip_value(j) : parse_scalar(j, vt, NULL);

        } else if (key.len == 6 && memcmp(kbuf, "values", 6) == 0) {
            vals_present = true;
            vals_type = vt;
            if (vt == J_OBJECT)
                rc = parse_values(j, lim, vs);
            else
                rc = vt == J_ARRAY ? skip_value(j) : parse_scalar(j, vt, NULL);
        } else {
            if (key.len == 3 && memcmp(kbuf, "seq", 3) == 0)
                num = &seq;
            else if (key.len == 2 && memcmp(kbuf, "ts", 2) == 0)
                num = &ts;
            else if (unknown[0] == '\0')
                ingest_excerpt(kbuf, kshown, unknown, sizeof unknown);
            if (num != NULL) {
                num->present = true;
                num->type = vt;
            }
            rc = vt == J_ARRAY || vt == J_OBJECT ? skip_value(j)
                                                 : parse_scalar(j, vt, num ? &num->value : NULL);
        }
        if (rc != 0)
            return j->rc ? j->rc : rc;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            break;
        }
        return fail_at(j, j->p);
    }
done:
    return finish_reading(b, i, lim, too_many, dup, unknown, &dev, dev_type, dev_present, &seq, &ts,
                          vals_type, vals_present, vs);
}

/* ---------------------------------------------------------------- the body */

/* Grows the batch's per-reading arrays to cap entries (copying the n in use). */
static int grow(struct ingest_batch *b, size_t n, size_t cap)
{
    struct reading *r = arena_calloc(&b->arena, cap * sizeof *r);
    enum reading_status *s = arena_calloc(&b->arena, cap * sizeof *s);
    struct reading_error *e = arena_calloc(&b->arena, cap * sizeof *e);
    if (r == NULL || s == NULL || e == NULL)
        return CANARY_ENOMEM;
    if (n > 0) {
        memcpy(r, b->readings, n * sizeof *r);
        memcpy(s, b->status, n * sizeof *s);
        memcpy(e, b->errors, n * sizeof *e);
    }
    b->readings = r;
    b->status = s;
    b->errors = e;
    return CANARY_OK;
}

static int parse_batch(struct jp *j, const struct ingest_limits *lim, int64_t recv_ms,
                       struct ingest_batch *out, struct values_seen *vs)
{
    size_t n = 0, cap = 0;
    j->p++; /* '[' */
    ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        out->n = 0;
        return CANARY_OK;
    }
    for (;;) {
        ws(j);
        if (n == lim->max_batch) {
            ingest_fatal_set(j->fatal, 413, "ingest.max_batch",
                             "the batch holds more than %u readings (limit ingest.max_batch)",
                             lim->max_batch);
            return CANARY_ELIMIT;
        }
        if (n == cap) {
            size_t want = cap ? cap * 2 : 16;
            if (want > lim->max_batch)
                want = lim->max_batch;
            if (grow(out, n, want) != 0)
                return CANARY_ENOMEM;
            cap = want;
        }
        out->n = n + 1;
        int rc = parse_reading(j, out, n, lim, recv_ms, vs);
        if (rc != 0)
            return rc;
        n++;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return CANARY_OK;
        }
        return fail_at(j, j->p);
    }
}

int ingest_parse_json(const char *body, size_t len, const struct ingest_limits *lim,
                      int64_t recv_ms, struct ingest_batch *out, struct ingest_fatal *fatal)
{
    ingest_batch_size_for(out, len);
    size_t bad;
    if (len == 0) {
        ingest_fatal_set(fatal, 400, "",
                         "the body is empty; send a reading object or an array of them");
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
    struct values_seen *vs = malloc(sizeof *vs); /* ~20 KB: not on the HTTP thread's stack */
    if (vs == NULL) {
        ingest_fatal_set(fatal, 503, "", "out of memory");
        return CANARY_ENOMEM;
    }
    struct jp j = {body, body, body + len, fatal, 0};
    ws(&j);
    enum jtype top = peek(&j);
    int rc;
    if (top == J_ARRAY) {
        out->is_array = true;
        rc = parse_batch(&j, lim, recv_ms, out, vs);
    } else if (top == J_OBJECT) {
        rc = grow(out, 0, 1);
        out->n = 1;
        if (rc == 0)
            rc = parse_reading(&j, out, 0, lim, recv_ms, vs);
    } else {
        rc = parse_scalar(&j, top, NULL);
        if (rc == 0) {
            ws(&j);
            if (j.p == j.end) {
                ingest_fatal_set(fatal, 400, "",
                                 "the body must be a reading object or an array of them, got %s",
                                 type_name(top));
                rc = CANARY_EINVAL;
            }
        }
    }
    free(vs);
    if (rc == 0) {
        ws(&j);
        if (j.p != j.end) {
            ingest_fatal_set(fatal, 400, "", "unexpected data after the JSON value at byte %zu",
                             (size_t)(j.p - body));
            rc = CANARY_EINVAL;
        } else if (out->n == 0) {
            ingest_fatal_set(fatal, 400, "", "the batch is empty");
            rc = CANARY_EINVAL;
        }
    }
    if (rc == CANARY_ENOMEM)
        ingest_fatal_set(fatal, 503, "", "out of memory");
    if (rc != 0)
        out->n = 0;
    return rc;
}
