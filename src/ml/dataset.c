/* dataset.c — the numeric CSV loader (contract in dataset.h).
 *
 * One pass over a buffer holding the whole file: a field scanner that understands RFC 4180
 * quoting (unescaping quoted fields in place), and per column a role decided once from the
 * header (value column k of x, label, timestamp, device, or ignored). Rows are counted up
 * front by counting newlines (an upper bound when quoted fields span lines), so the output
 * arrays are allocated once. Numbers take a fast exact path (Clinger's: at most 19
 * significant digits and a power of ten up to 1e22, both exact in a double, give a
 * correctly rounded quotient or product) and fall back to strtod for everything else, so
 * every value is what strtod would give. When the parse is done the names that must outlive
 * it (value columns, distinct devices) are copied into one small block and the file buffer
 * is freed. */
#include "ml/dataset.h"

#include "core/error.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- Errors ---- */

/* Writes s[0..n) into out (outlen bytes) as a short printable excerpt for a message: at
 * most 40 bytes, control bytes, quotes and backslashes as '?', "..." when cut. */
static void excerpt(const char *s, size_t n, char *out, size_t outlen)
{
    size_t cut = n > 40 ? 40 : n, w = 0;
    for (size_t i = 0; i < cut && w + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[w++] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (cut < n && w + 4 < outlen) {
        memcpy(out + w, "...", 3);
        w += 3;
    }
    out[w] = '\0';
}

/* A column name as a message shows it (names come from the file: they may hold anything). */
struct shown {
    char s[48];
};

static struct shown shown(const char *name)
{
    struct shown v;
    excerpt(name, strlen(name), v.s, sizeof v.s);
    return v;
}

/* ---- Numbers ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

/* The words read as a missing value (any case), besides the empty field. */
static bool is_missing(const char *s, size_t n)
{
    static const char *const words[] = {"nan", "na", "n/a", "null"};
    if (n == 0)
        return true;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == n && strncasecmp(s, words[i], n) == 0)
            return true;
    return false;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Clinger's fast path: s[0..n) (trimmed) is [+-]digits[.digits][(e|E)[+-]digits] with at
 * most 19 significant digits, a mantissa below 2^53 and a decimal exponent within +-22.
 * Returns false when it is anything else, for strtod to decide. */
static bool parse_fast(const char *s, size_t n, double *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    uint64_t m = 0;
    int digits = 0, sig = 0, exp10 = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (m == 0 && s[i] == '0')
            continue;
        if (++sig > 19)
            return false;
        m = m * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
            exp10--;
            if (m == 0 && s[i] == '0')
                continue;
            if (++sig > 19)
                return false;
            m = m * 10 + (uint64_t)(s[i] - '0');
        }
    }
    if (digits == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        int e = 0, edigits = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, edigits++) {
            if (e > 10000)
                return false;
            e = e * 10 + (s[i] - '0');
        }
        if (edigits == 0)
            return false;
        exp10 += eneg ? -e : e;
    }
    if (i != n)
        return false;
    double v;
    if (m == 0)
        v = 0.0;
    else if (m > (1ull << 53) || exp10 < -22 || exp10 > 22)
        return false;
    else if (exp10 < 0)
        v = (double)m / pow10_exact[-exp10];
    else
        v = (double)m * pow10_exact[exp10];
    *out = neg ? -v : v;
    return true;
}

/* A finite number in s[0..n) (trimmed, not missing). */
static bool parse_number(const char *s, size_t n, double *out)
{
    if (n == 0)
        return false;
    if (parse_fast(s, n, out))
        return true;
    char tmp[512];
    if (n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + n || !isfinite(v) || (errno == ERANGE && fabs(v) > 1.0))
        return false;
    *out = v; /* an underflow to a denormal or zero is kept, as strtod gives it */
    return true;
}

/* ---- Timestamps ---- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil, http://howardhinnant.github.io/date_algorithms.html). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* Reads exactly k digits at s[*i] into *v. */
static bool digits_n(const char *s, size_t n, size_t *i, int k, int *v)
{
    int x = 0;
    for (int j = 0; j < k; j++, (*i)++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9')
            return false;
        x = x * 10 + (s[*i] - '0');
    }
    *v = x;
    return true;
}

/* ISO 8601 "YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][Z|+-HH[[:]MM]]" to Unix ms. */
static bool parse_iso8601(const char *s, size_t n, int64_t *ms)
{
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0;
    if (!digits_n(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || !digits_n(s, n, &i, 2, &mo) ||
        i >= n || s[i++] != '-' || !digits_n(s, n, &i, 2, &d))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return false;
    if (i < n && (s[i] == ' ' || s[i] == 'T' || s[i] == 't')) {
        i++;
        if (!digits_n(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || !digits_n(s, n, &i, 2, &mi))
            return false;
        if (i < n && s[i] == ':') {
            i++;
            if (!digits_n(s, n, &i, 2, &sec))
                return false;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                i++;
                int k = 0;
                double scale = 100;
                for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, k++) {
                    if (k < 3)
                        frac_ms += (int)(scale * (s[i] - '0'));
                    else if (k == 3 && s[i] >= '5')
                        frac_ms++; /* rounded to the millisecond */
                    scale /= 10;
                }
                if (k == 0)
                    return false;
            }
        }
        if (h > 23 || mi > 59 || sec > 60) /* 60: a leap second, read as the next second */
            return false;
    }
    int64_t offset_min = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
        if (!digits_n(s, n, &i, 2, &oh))
            return false;
        if (i < n && s[i] == ':')
            i++;
        if (i < n && !digits_n(s, n, &i, 2, &om))
            return false;
        if (oh > 23 || om > 59)
            return false;
        offset_min = sign * (oh * 60 + om);
    }
    if (i != n)
        return false;
    int64_t days = days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    *ms = secs * 1000 + frac_ms;
    return true;
}

/* Below this magnitude a numeric timestamp is in seconds, at or above in milliseconds. */
#define SECONDS_BELOW 1e11

/* A numeric timestamp: [+-]digits[.digits], or anything strtod reads ("1.4e9"). */
static bool parse_epoch(const char *s, size_t n, int64_t *ms)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    int64_t ip = 0;
    int digits = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (digits >= 17)
            return false; /* beyond any plausible ms timestamp */
        ip = ip * 10 + (s[i] - '0');
    }
    /* The fraction, as thousandths rounded half up, and a carry past them. */
    int64_t frac_milli = 0, frac_round = 0;
    int fdigits = 0;
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, fdigits++) {
            if (fdigits < 3)
                frac_milli = frac_milli * 10 + (s[i] - '0');
            else if (fdigits == 3)
                frac_round = s[i] >= '5';
        }
        for (int k = fdigits; k < 3; k++)
            frac_milli *= 10;
    }
    if (i == n && digits + fdigits > 0) {
        int64_t v;
        if ((double)ip < SECONDS_BELOW)
            v = ip * 1000 + frac_milli + frac_round;
        else
            v = ip + (frac_milli >= 500);
        *ms = neg ? -v : v;
        return true;
    }
    double d;
    if (!parse_number(s, n, &d))
        return false;
    double v = fabs(d) < SECONDS_BELOW ? d * 1000.0 : d;
    if (!(fabs(v) < 9e18))
        return false;
    *ms = llround(v);
    return true;
}

static bool parse_timestamp(const char *s, size_t n, int64_t *ms)
{
    if (n >= 10 && s[4] == '-' && s[7] == '-')
        return parse_iso8601(s, n, ms);
    return parse_epoch(s, n, ms);
}

/* A label: a finite number, or true/false. */
static bool parse_label(const char *s, size_t n, double *out)
{
    if (n == 4 && strncasecmp(s, "true", 4) == 0) {
        *out = 1;
        return true;
    }
    if (n == 5 && strncasecmp(s, "false", 5) == 0) {
        *out = 0;
        return true;
    }
    return parse_number(s, n, out);
}

/* ---- The field scanner ---- */

struct parser {
    const char *name; /* for messages */
    char *buf;        /* the file, NUL after the last byte */
    size_t len;
    size_t pos;
    size_t line; /* line of buf[pos], from 1 */
    char *err;
    size_t errlen;
};

/* A field: f[0..n) after unquoting, and whether it ended its record. */
struct field {
    char *f;
    size_t n;
    bool quoted;
    bool last;
};

/* Consumes a line end at p->pos if there is one ("\n", "\r\n" or a lone "\r"). */
static bool eat_line_end(struct parser *p)
{
    if (p->pos < p->len && p->buf[p->pos] == '\n') {
        p->pos++;
    } else if (p->pos < p->len && p->buf[p->pos] == '\r') {
        p->pos++;
        if (p->pos < p->len && p->buf[p->pos] == '\n')
            p->pos++;
    } else {
        return false;
    }
    p->line++;
    return true;
}

/* Reads the field at p->pos. A quoted field is unescaped in place. Returns 0 or
 * CANARY_EINVAL (an unterminated quote, or text after a closing quote). */
static int next_field(struct parser *p, struct field *out)
{
    char *b = p->buf;
    size_t i = p->pos;
    out->quoted = false;
    if (i < p->len && b[i] == '"') {
        size_t start_line = p->line, w = i;
        out->quoted = true;
        out->f = b + i;
        for (i++;; i++) {
            if (i >= p->len) {
                canary_errf(p->err, p->errlen, "%s:%zu: a quoted field is not closed", p->name,
                            start_line);
                return CANARY_EINVAL;
            }
            if (b[i] == '"') {
                if (i + 1 < p->len && b[i + 1] == '"') {
                    b[w++] = '"';
                    i++;
                    continue;
                }
                i++;
                break;
            }
            if (b[i] == '\n' || (b[i] == '\r' && (i + 1 >= p->len || b[i + 1] != '\n')))
                p->line++;
            b[w++] = b[i];
        }
        out->n = w - (size_t)(out->f - b);
        while (i < p->len && is_space(b[i]))
            i++;
        if (i < p->len && b[i] != ',' && b[i] != '\n' && b[i] != '\r') {
            canary_errf(p->err, p->errlen, "%s:%zu: text after the closing quote of a field",
                        p->name, p->line);
            return CANARY_EINVAL;
        }
    } else {
        out->f = b + i;
        while (i < p->len && b[i] != ',' && b[i] != '\n' && b[i] != '\r')
            i++;
        out->n = i - (size_t)(out->f - b);
    }
    p->pos = i;
    if (i < p->len && b[i] == ',') {
        p->pos++;
        out->last = false;
    } else {
        eat_line_end(p);
        out->last = true;
    }
    return 0;
}

/* Skips blank lines; true if a record starts at p->pos. */
static bool at_record(struct parser *p)
{
    while (p->pos < p->len && eat_line_end(p))
        ;
    return p->pos < p->len;
}

/* ---- Interning device names ---- */

struct intern {
    uint32_t *slots; /* id + 1, 0 = empty; capacity a power of two */
    size_t cap;
    char **names; /* into the file buffer, NUL-terminated */
    size_t *lens;
    size_t n, names_cap;
};

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The id of s[0..n) (which stays valid and NUL-terminated), adding it if new; -1 on OOM. */
static long intern_get(struct intern *t, char *s, size_t n)
{
    if (2 * (t->n + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        uint32_t *slots = calloc(cap, sizeof *slots);
        if (slots == NULL)
            return -1;
        for (size_t k = 0; k < t->n; k++) {
            size_t j = hash_bytes(t->names[k], t->lens[k]) & (cap - 1);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = (uint32_t)k + 1;
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    size_t j = hash_bytes(s, n) & (t->cap - 1);
    for (; t->slots[j]; j = (j + 1) & (t->cap - 1)) {
        uint32_t id = t->slots[j] - 1;
        if (t->lens[id] == n && memcmp(t->names[id], s, n) == 0)
            return id;
    }
    if (t->n == t->names_cap) {
        size_t nc = t->names_cap ? 2 * t->names_cap : 64;
        char **names = realloc(t->names, nc * sizeof *names);
        if (names == NULL)
            return -1;
        t->names = names;
        size_t *lens = realloc(t->lens, nc * sizeof *lens);
        if (lens == NULL)
            return -1;
        t->lens = lens;
        t->names_cap = nc;
    }
    t->names[t->n] = s;
    t->lens[t->n] = n;
    t->slots[j] = (uint32_t)t->n + 1;
    return (long)t->n++;
}

static void intern_free(struct intern *t)
{
    free(t->slots);
    free(t->names);
    free(t->lens);
}

/* ---- The loader ---- */

enum { ROLE_VALUE = 1, ROLE_LABEL = 2, ROLE_TS = 4, ROLE_DEVICE = 8 };

struct column {
    char *name; /* in the file buffer, NUL-terminated */
    unsigned roles;
    size_t value_idx; /* with ROLE_VALUE: the column of x */
};

/* Finds the header column called name; CANARY_ENOTFOUND or CANARY_EINVAL (twice) if not
 * exactly one. */
static int find_column(const struct column *cols, size_t n, const char *name, const char *file,
                       size_t *at, char *err, size_t errlen)
{
    size_t found = n;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cols[i].name, name) != 0)
            continue;
        if (found < n) {
            canary_errf(err, errlen,
                        "%s: column '%s' appears twice in the header (columns %zu and %zu)", file,
                        shown(name).s, found + 1, i + 1);
            return CANARY_EINVAL;
        }
        found = i;
    }
    if (found == n) {
        char list[512];
        size_t w = 0;
        list[0] = '\0';
        for (size_t i = 0; i < n && w < sizeof list; i++) {
            int k =
                snprintf(list + w, sizeof list - w, "%s%s", i ? ", " : "", shown(cols[i].name).s);
            if (k < 0)
                break;
            w += (size_t)k;
        }
        canary_errf(err, errlen, "%s: no column '%s' (the header has: %s)", file, shown(name).s,
                    list);
        return CANARY_ENOTFOUND;
    }
    *at = found;
    return 0;
}

/* Everything a load allocates, freed on failure in one place. */
struct load {
    struct parser p;
    struct column *cols;
    size_t n_cols_file;
    struct intern devs;
    size_t cap_rows;
    bool label_classes;   /* options.label_classes */
    struct intern labels; /* with it: the class names, in order of first appearance */
    uint32_t *label_id;   /* and each row's, until they are sorted */
};

/* Reads the header and decides each column's role. */
static int read_header(struct load *L, struct dataset *d, const struct dataset_options *o)
{
    struct parser *p = &L->p;
    /* A UTF-8 byte order mark, as spreadsheet programs write it, is not part of the name. */
    if (p->len >= 3 && memcmp(p->buf, "\xEF\xBB\xBF", 3) == 0)
        p->pos = 3;
    if (!at_record(p)) {
        canary_errf(p->err, p->errlen, "%s: empty file (no header)", p->name);
        return CANARY_EINVAL;
    }
    size_t cap = 0;
    for (;;) {
        struct field f;
        int rc = next_field(p, &f);
        if (rc != 0)
            return rc;
        if (L->n_cols_file == cap) {
            cap = cap ? 2 * cap : 16;
            struct column *c = realloc(L->cols, cap * sizeof *c);
            if (c == NULL)
                return CANARY_ENOMEM;
            L->cols = c;
        }
        const char *s = f.f;
        size_t n = f.n;
        if (!f.quoted)
            trim(&s, &n);
        char *name = (char *)s;
        name[n] = '\0'; /* the delimiter after it is consumed; buf has a byte past the end */
        L->cols[L->n_cols_file++] = (struct column){name, 0, 0};
        if (f.last)
            break;
    }

    static const struct dataset_options none = {0};
    if (o == NULL)
        o = &none;
    if (o->n_value_columns > 0 && o->value_columns == NULL) {
        canary_errf(p->err, p->errlen, "%s: %zu value columns but no names", p->name,
                    o->n_value_columns);
        return CANARY_EINVAL;
    }
    const char *role_col[3] = {o->label_column, o->timestamp_column, o->device_column};
    const unsigned role_bit[3] = {ROLE_LABEL, ROLE_TS, ROLE_DEVICE};
    for (int r = 0; r < 3; r++) {
        if (role_col[r] == NULL)
            continue;
        size_t at;
        int rc = find_column(L->cols, L->n_cols_file, role_col[r], p->name, &at, p->err, p->errlen);
        if (rc != 0)
            return rc;
        L->cols[at].roles |= role_bit[r];
    }
    if (o->n_value_columns > 0) {
        d->n_cols = o->n_value_columns;
        for (size_t k = 0; k < o->n_value_columns; k++) {
            size_t at;
            int rc = find_column(L->cols, L->n_cols_file, o->value_columns[k], p->name, &at, p->err,
                                 p->errlen);
            if (rc != 0)
                return rc;
            if (L->cols[at].roles & ROLE_VALUE) {
                canary_errf(p->err, p->errlen, "%s: value column '%s' is named twice", p->name,
                            shown(o->value_columns[k]).s);
                return CANARY_EINVAL;
            }
            L->cols[at].roles |= ROLE_VALUE;
            L->cols[at].value_idx = k;
        }
    } else {
        for (size_t i = 0; i < L->n_cols_file; i++) {
            if (L->cols[i].roles)
                continue;
            for (size_t j = 0; j < i; j++) {
                if (strcmp(L->cols[j].name, L->cols[i].name) == 0) {
                    canary_errf(p->err, p->errlen,
                                "%s: column '%s' appears twice in the header (columns %zu and %zu)",
                                p->name, shown(L->cols[i].name).s, j + 1, i + 1);
                    return CANARY_EINVAL;
                }
            }
            L->cols[i].roles = ROLE_VALUE;
            L->cols[i].value_idx = d->n_cols++;
        }
    }
    return 0;
}

/* Allocates the per-row arrays for up to L->cap_rows rows. */
static int alloc_rows(struct load *L, struct dataset *d, const struct dataset_options *o)
{
    /* Every record but the header ends at a newline or at the end: an upper bound. */
    size_t nl = 1;
    for (const char *q = L->p.buf + L->p.pos;
         (q = memchr(q, '\n', (size_t)(L->p.buf + L->p.len - q))); q++)
        nl++;
    if (o != NULL && o->max_rows > 0 && o->max_rows < nl)
        nl = o->max_rows;
    L->cap_rows = nl;
    if (d->n_cols > 0 && nl > SIZE_MAX / sizeof(double) / d->n_cols)
        return CANARY_ENOMEM;
    d->x = malloc(nl * (d->n_cols ? d->n_cols : 1) * sizeof(double));
    if (d->x == NULL)
        return CANARY_ENOMEM;
    if (o != NULL && o->label_column && (d->labels = malloc(nl * sizeof(double))) == NULL)
        return CANARY_ENOMEM;
    L->label_classes = o != NULL && o->label_column && o->label_classes;
    if (L->label_classes && (L->label_id = malloc(nl * sizeof(uint32_t))) == NULL)
        return CANARY_ENOMEM;
    if (o != NULL && o->timestamp_column && (d->ts_ms = malloc(nl * sizeof(int64_t))) == NULL)
        return CANARY_ENOMEM;
    if (o != NULL && o->device_column && (d->device_id = malloc(nl * sizeof(uint32_t))) == NULL)
        return CANARY_ENOMEM;
    return 0;
}

/* One field of a data row, by its column's roles. */
static int take_field(struct load *L, struct dataset *d, const struct column *c, struct field *f,
                      size_t line)
{
    struct parser *p = &L->p;
    size_t r = d->n_rows;
    const char *s = f->f;
    size_t n = f->n;
    trim(&s, &n);
    char ex[64];
    if (c->roles & ROLE_VALUE) {
        double v = NAN;
        if (!is_missing(s, n) && !parse_number(s, n, &v)) {
            excerpt(s, n, ex, sizeof ex);
            canary_errf(p->err, p->errlen, "%s:%zu: column '%s': not a number: \"%s\"", p->name,
                        line, shown(c->name).s, ex);
            return CANARY_EINVAL;
        }
        d->x[r * d->n_cols + c->value_idx] = v;
    }
    if (c->roles & ROLE_LABEL) {
        if (n == 0) {
            canary_errf(p->err, p->errlen, "%s:%zu: column '%s': the label is missing", p->name,
                        line, shown(c->name).s);
            return CANARY_EINVAL;
        }
        if (L->label_classes) {
            /* A class name: unquoted names are trimmed, quoted ones taken as written. */
            char *name = f->quoted ? f->f : (char *)s;
            size_t len = f->quoted ? f->n : n;
            name[len] = '\0';
            long id = intern_get(&L->labels, name, len);
            if (id < 0)
                return CANARY_ENOMEM;
            L->label_id[r] = (uint32_t)id;
        } else if (!parse_label(s, n, &d->labels[r])) {
            excerpt(s, n, ex, sizeof ex);
            canary_errf(p->err, p->errlen,
                        "%s:%zu: column '%s': not a label (a number, true or false): \"%s\"",
                        p->name, line, shown(c->name).s, ex);
            return CANARY_EINVAL;
        }
    }
    if (c->roles & ROLE_TS) {
        if (!parse_timestamp(s, n, &d->ts_ms[r])) {
            excerpt(s, n, ex, sizeof ex);
            canary_errf(p->err, p->errlen,
                        "%s:%zu: column '%s': not a timestamp (Unix seconds or ms, or ISO 8601 "
                        "\"2014-02-14 14:30:00\"): \"%s\"",
                        p->name, line, shown(c->name).s, ex);
            return CANARY_EINVAL;
        }
    }
    if (c->roles & ROLE_DEVICE) {
        /* Unquoted names are trimmed; quoted ones are taken as written. */
        char *name = f->quoted ? f->f : (char *)s;
        size_t len = f->quoted ? f->n : n;
        name[len] = '\0';
        long id = intern_get(&L->devs, name, len);
        if (id < 0)
            return CANARY_ENOMEM;
        d->device_id[r] = (uint32_t)id;
    }
    return 0;
}

static int read_rows(struct load *L, struct dataset *d)
{
    struct parser *p = &L->p;
    while (d->n_rows < L->cap_rows && at_record(p)) {
        size_t line = p->line, nf = 0;
        int bad = 0; /* a field's error, reported unless the field count is wrong too */
        for (;;) {
            struct field f;
            int rc = next_field(p, &f);
            if (rc != 0)
                return rc;
            if (bad == 0 && nf < L->n_cols_file && L->cols[nf].roles)
                bad = take_field(L, d, &L->cols[nf], &f, line);
            nf++;
            if (f.last)
                break;
        }
        /* A wrong field count first: it explains the bad values of a shifted row. */
        if (bad != 0 && (bad == CANARY_ENOMEM || nf == L->n_cols_file))
            return bad;
        if (nf != L->n_cols_file) {
            canary_errf(p->err, p->errlen, "%s:%zu: %zu field%s, the header has %zu", p->name, line,
                        nf, nf == 1 ? "" : "s", L->n_cols_file);
            return CANARY_EINVAL;
        }
        d->n_rows++;
    }
    if (d->n_rows == 0) {
        canary_errf(p->err, p->errlen, "%s: no data rows after the header", p->name);
        return CANARY_EINVAL;
    }
    return 0;
}

struct named {
    const char *name;
    uint32_t id;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

/* Numbers the class names in sorted order, copies them to *w, and sets each row's label. */
static int keep_classes(struct load *L, struct dataset *d, char **w)
{
    size_t k = L->labels.n;
    struct named *order = malloc(k * sizeof *order);
    uint32_t *rank = malloc(k * sizeof *rank);
    d->class_names = malloc(k * sizeof(char *));
    if (order == NULL || rank == NULL || d->class_names == NULL) {
        free(order);
        free(rank);
        return CANARY_ENOMEM;
    }
    for (size_t i = 0; i < k; i++)
        order[i] = (struct named){L->labels.names[i], (uint32_t)i};
    qsort(order, k, sizeof *order, by_name);
    for (size_t i = 0; i < k; i++) {
        uint32_t id = order[i].id;
        rank[id] = (uint32_t)i;
        memcpy(*w, L->labels.names[id], L->labels.lens[id]);
        (*w)[L->labels.lens[id]] = '\0';
        d->class_names[i] = *w;
        *w += L->labels.lens[id] + 1;
    }
    d->n_classes = k;
    for (size_t r = 0; r < d->n_rows; r++)
        d->labels[r] = rank[L->label_id[r]];
    free(order);
    free(rank);
    return 0;
}

/* Copies the names that outlive the file buffer into one block: value column names, class
 * names, then the distinct device names; points col_names, class_names, device_names and
 * devices at them. */
static int keep_names(struct load *L, struct dataset *d)
{
    size_t total = 0;
    for (size_t i = 0; i < L->n_cols_file; i++)
        if (L->cols[i].roles & ROLE_VALUE)
            total += strlen(L->cols[i].name) + 1;
    for (size_t k = 0; k < L->devs.n; k++)
        total += L->devs.lens[k] + 1;
    for (size_t k = 0; k < L->labels.n; k++)
        total += L->labels.lens[k] + 1;
    d->storage_ = malloc(total ? total : 1);
    d->col_names = calloc(d->n_cols ? d->n_cols : 1, sizeof(char *));
    if (d->storage_ == NULL || d->col_names == NULL)
        return CANARY_ENOMEM;
    char *w = d->storage_;
    for (size_t i = 0; i < L->n_cols_file; i++) {
        if (!(L->cols[i].roles & ROLE_VALUE))
            continue;
        size_t n = strlen(L->cols[i].name) + 1;
        memcpy(w, L->cols[i].name, n);
        d->col_names[L->cols[i].value_idx] = w;
        w += n;
    }
    if (L->label_id != NULL) {
        int rc = keep_classes(L, d, &w);
        if (rc != 0)
            return rc;
    }
    if (d->device_id == NULL)
        return 0;
    d->n_devices = L->devs.n;
    d->device_names = malloc((d->n_devices ? d->n_devices : 1) * sizeof(char *));
    d->devices = malloc(d->n_rows * sizeof(char *));
    if (d->device_names == NULL || d->devices == NULL)
        return CANARY_ENOMEM;
    for (size_t k = 0; k < L->devs.n; k++) {
        memcpy(w, L->devs.names[k], L->devs.lens[k]);
        w[L->devs.lens[k]] = '\0';
        d->device_names[k] = w;
        w += L->devs.lens[k] + 1;
    }
    for (size_t r = 0; r < d->n_rows; r++)
        d->devices[r] = d->device_names[d->device_id[r]];
    return 0;
}

/* Gives back the rows allocated but not used (the estimate counted every newline). */
static void shrink_rows(struct load *L, struct dataset *d)
{
    if (d->n_rows == L->cap_rows)
        return;
    void *q;
    if ((q = realloc(d->x, d->n_rows * (d->n_cols ? d->n_cols : 1) * sizeof(double))))
        d->x = q;
    if (d->labels && (q = realloc(d->labels, d->n_rows * sizeof(double))))
        d->labels = q;
    if (d->ts_ms && (q = realloc(d->ts_ms, d->n_rows * sizeof(int64_t))))
        d->ts_ms = q;
    if (d->device_id && (q = realloc(d->device_id, d->n_rows * sizeof(uint32_t))))
        d->device_id = q;
}

/* Parses buf[0..len) (owned, with a writable byte at buf[len]) into d; frees buf. */
static int parse_owned(struct dataset *d, const char *name, char *buf, size_t len,
                       const struct dataset_options *o, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    struct load L = {.p = {name, buf, len, 0, 1, err, errlen}};
    buf[len] = '\0';
    int rc = read_header(&L, d, o);
    if (rc == 0)
        rc = alloc_rows(&L, d, o);
    if (rc == 0)
        rc = read_rows(&L, d);
    if (rc == 0) {
        shrink_rows(&L, d);
        rc = keep_names(&L, d);
    }
    if (rc == CANARY_ENOMEM)
        canary_errf(err, errlen, "%s: out of memory", name);
    free(L.cols);
    intern_free(&L.devs);
    intern_free(&L.labels);
    free(L.label_id);
    free(buf);
    if (rc != 0)
        dataset_free(d);
    return rc;
}

int dataset_parse_csv(struct dataset *d, const char *name, const char *text, size_t len,
                      const struct dataset_options *o, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    char *buf = malloc(len + 1);
    if (buf == NULL) {
        canary_errf(err, errlen, "%s: out of memory", name);
        return CANARY_ENOMEM;
    }
    memcpy(buf, text, len);
    return parse_owned(d, name, buf, len, o, err, errlen);
}

int dataset_load_csv(struct dataset *d, const char *path, const struct dataset_options *o,
                     char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        canary_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return CANARY_EIO;
    }
    /* The size is a hint (a pipe has none): read until the end, growing if need be. */
    struct stat st;
    size_t cap = (fstat(fileno(fp), &st) == 0 && st.st_size > 0) ? (size_t)st.st_size + 1 : 65536;
    size_t len = 0;
    char *buf = malloc(cap + 1);
    int rc = 0;
    while (buf != NULL) {
        len += fread(buf + len, 1, cap - len, fp);
        if (len < cap)
            break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (buf == NULL) {
        canary_errf(err, errlen, "%s: out of memory", path);
        rc = CANARY_ENOMEM;
    } else if (ferror(fp)) {
        canary_errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        free(buf);
        rc = CANARY_EIO;
    }
    fclose(fp);
    if (rc != 0)
        return rc;
    return parse_owned(d, path, buf, len, o, err, errlen);
}

void dataset_free(struct dataset *d)
{
    free(d->col_names);
    free(d->x);
    free(d->labels);
    free(d->ts_ms);
    free(d->devices);
    free(d->device_id);
    free(d->device_names);
    free(d->class_names);
    free(d->storage_);
    memset(d, 0, sizeof *d);
}

long dataset_col_index(const struct dataset *d, const char *name)
{
    for (size_t i = 0; i < d->n_cols; i++)
        if (strcmp(d->col_names[i], name) == 0)
            return (long)i;
    return -1;
}
