/* unit_support.c — helpers the cmocka unit tests share (see unit_support.h). */
#include "unit_support.h"

#include "core/error.h"
#include "core/metric.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>

#include <cmocka.h>

uint64_t test_rng_next(struct test_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}

size_t test_rng_below(struct test_rng *r, size_t n)
{
    return (size_t)(test_rng_next(r) % n);
}

double test_rng_uniform(struct test_rng *r)
{
    return ((double)(test_rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

double test_rng_gauss(struct test_rng *r)
{
    double u = test_rng_uniform(r), v = test_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

char *test_repeat(const char *prefix, const char *unit, size_t n, const char *suffix)
{
    size_t pl = strlen(prefix), ul = strlen(unit), sl = strlen(suffix);
    char *s = malloc(pl + ul * n + sl + 1);
    assert_non_null(s);
    memcpy(s, prefix, pl);
    for (size_t k = 0; k < n; k++)
        memcpy(s + pl + k * ul, unit, ul);
    memcpy(s + pl + ul * n, suffix, sl + 1);
    return s;
}

bool test_printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s < 0x20 || *s >= 0x7f || *s == '"' || *s == '\\')
            return false;
    }
    return true;
}

size_t test_fuzz_edit(struct test_rng *r, char *buf, size_t len, size_t cap, char c,
                      unsigned truncate_one_in)
{
    size_t at = len > 0 ? test_rng_below(r, len + 1) : 0;
    switch (test_rng_below(r, 5)) {
    case 0: /* replace a byte */
        if (at < len)
            buf[at] = c;
        break;
    case 1: /* insert a byte */
        if (len < cap) {
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = c;
            len++;
        }
        break;
    case 2: /* delete a byte */
        if (at < len) {
            memmove(buf + at, buf + at + 1, len - at - 1);
            len--;
        }
        break;
    case 3: /* duplicate a stretch */
        if (at < len) {
            size_t n = 1 + test_rng_below(r, len - at);
            if (len + n <= cap) {
                memmove(buf + at + n, buf + at, len - at);
                len += n;
            }
        }
        break;
    default: /* truncate */
        if (truncate_one_in <= 1 || test_rng_below(r, truncate_one_in) == 0)
            len = at;
        break;
    }
    return len;
}

int parse_fixture_setup(void **state)
{
    struct parse_fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    ingest_batch_init(&fx->b);
    fx->lim = (struct ingest_limits){.max_batch = 100,
                                     .max_metrics = 8,
                                     .max_device_len = 64,
                                     .max_metric_len = 64,
                                     .strict_fields = false};
    *state = fx;
    return 0;
}

int parse_fixture_teardown(void **state)
{
    struct parse_fixture *fx = *state;
    ingest_batch_free(&fx->b);
    free(fx);
    return 0;
}

char *parse_fixture_reset(struct parse_fixture *fx, const char *body, size_t len)
{
    ingest_batch_free(&fx->b);
    ingest_batch_init(&fx->b);
    memset(&fx->f, 0, sizeof fx->f);
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, body, len);
    return copy;
}

static void fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_at(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error("%s\n", msg);
    _fail(file, line);
}

static void in_batch(const struct ingest_batch *b, size_t i, const char *file, int line)
{
    if (i >= b->n)
        fail_at(file, line, "reading %zu asked for, the batch holds %zu", i, b->n);
}

void assert_reading_pending_at(const struct ingest_batch *b, size_t i, const char *file, int line)
{
    in_batch(b, i, file, line);
    if (b->status[i] != READING_PENDING)
        fail_at(file, line, "reading %zu: status %s, error '%s': '%s'", i,
                reading_status_name(b->status[i]), b->errors[i].field, b->errors[i].reason);
}

void assert_reading_rejected_at(const struct ingest_batch *b, size_t i, const char *field,
                                const char *reason, const char *file, int line)
{
    in_batch(b, i, file, line);
    if (b->status[i] != READING_INVALID)
        fail_at(file, line, "reading %zu: status %s, want invalid (%s: %s)", i,
                reading_status_name(b->status[i]), field, reason);
    _assert_string_equal(b->errors[i].field, field, file, line);
    _assert_string_equal(b->errors[i].reason, reason, file, line);
}

void assert_parsed_value_at(const struct reading *r, size_t k, const char *name, double want,
                            const char *file, int line)
{
    if (k >= r->n_values)
        fail_at(file, line, "value %zu asked for, the reading holds %u", k, r->n_values);
    _assert_string_equal(r->values[k].name, name, file, line);
    double got = r->values[k].value;
    if (got != want || signbit(got) != signbit(want))
        fail_at(file, line, "%s: got %.17g, want %.17g", name, got, want);
    if (r->values[k].score != 0.0f || r->values[k].flags != 0)
        fail_at(file, line, "%s: a fresh value has score %g and flags %u, want 0 and 0", name,
                (double)r->values[k].score, (unsigned)r->values[k].flags);
}

void assert_reading_well_formed_at(const struct reading *r, const struct ingest_limits *lim,
                                   const char *file, int line)
{
    if (r->device == NULL || !device_id_valid(r->device, strlen(r->device), lim->max_device_len))
        fail_at(file, line, "device id '%s' is not valid", r->device ? r->device : "(null)");
    if (r->n_values < 1 || r->n_values > lim->max_metrics)
        fail_at(file, line, "%u values, want 1 to %u", r->n_values, lim->max_metrics);
    for (uint32_t k = 0; k < r->n_values; k++) {
        const char *name = r->values[k].name;
        if (!metric_name_valid(name, strlen(name), lim->max_metric_len))
            fail_at(file, line, "metric name '%s' is not valid", name);
        if (!isfinite(r->values[k].value))
            fail_at(file, line, "%s = %g is not finite", name, r->values[k].value);
        for (uint32_t j = 0; j < k; j++) {
            if (strcmp(r->values[j].name, name) == 0)
                fail_at(file, line, "metric '%s' appears twice", name);
        }
    }
}

size_t assert_parse_outcome_at(const struct parse_fixture *fx, int rc, int64_t recv_ms,
                               const char *file, int line)
{
    if (rc != CANARY_OK) {
        if (rc != CANARY_EINVAL && rc != CANARY_ELIMIT)
            fail_at(file, line, "parse returned %d, want OK, EINVAL or ELIMIT", rc);
        _assert_int_equal((unsigned long)fx->f.http_status, rc == CANARY_ELIMIT ? 413u : 400u, file,
                          line);
        if (fx->f.reason[0] == '\0' || !test_printable(fx->f.reason))
            fail_at(file, line, "fatal reason '%s' is empty or not printable", fx->f.reason);
        return 0;
    }
    const struct ingest_batch *b = &fx->b;
    if (b->n < 1 || b->n > fx->lim.max_batch)
        fail_at(file, line, "%zu readings, want 1 to %u", b->n, fx->lim.max_batch);
    size_t valid = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct reading *r = &b->readings[i];
        _assert_int_equal((unsigned long)r->recv_ms, (unsigned long)recv_ms, file, line);
        if (b->status[i] == READING_INVALID) {
            if (!test_printable(b->errors[i].field) || b->errors[i].reason[0] == '\0' ||
                !test_printable(b->errors[i].reason))
                fail_at(file, line, "reading %zu: error '%s': '%s' is empty or not printable", i,
                        b->errors[i].field, b->errors[i].reason);
            continue;
        }
        assert_reading_pending_at(b, i, file, line);
        assert_reading_well_formed_at(r, &fx->lim, file, line);
        if (r->has_ts ? r->ts_ms < 0 || r->ts_ms >= 9007199254740992LL : r->ts_ms != recv_ms)
            fail_at(file, line, "reading %zu: ts %lld (has_ts %d) out of range", i,
                    (long long)r->ts_ms, (int)r->has_ts);
        valid++;
    }
    return valid;
}
