/* ingest_json.c — the JSON wire format (ARCHITECTURE.md) into struct reading, with cJSON.
 *
 * Accepted shape of a reading:
 *   {"device": "<id>", "seq": <0..2^53>, "ts": <Unix ms, optional>,
 *    "values": {"<metric>": <finite number | true | false>, ...}}
 * The body is checked as a whole first (UTF-8, no NUL bytes, one JSON value, nothing but
 * whitespace after it); then every reading on its own, so one bad reading does not spoil
 * its batch. Work per reading is bounded by the limits: objects with more keys than a
 * reading can have are rejected before their keys are compared, so duplicate-key checks
 * stay O(max_metrics^2) whatever the input. */
#include "ingest/ingest.h"

#include "core/error.h"
#include "core/metric.h"
#include "core/utf8.h"
#include "ingest/ingest_text.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Largest integer a double holds exactly; seq and ts must stay below it. */
#define MAX_EXACT_INT 9007199254740992.0

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "invalid";
}

static size_t count_children(const cJSON *v, size_t stop_after)
{
    size_t n = 0;
    for (const cJSON *c = v->child; c != NULL && n <= stop_after; c = c->next)
        n++;
    return n;
}

/* Returns the first key that appears twice among the children of obj, or NULL. */
static const char *duplicate_key(const cJSON *obj)
{
    for (const cJSON *a = obj->child; a != NULL; a = a->next) {
        for (const cJSON *b = a->next; b != NULL; b = b->next) {
            if (strcmp(a->string, b->string) == 0)
                return a->string;
        }
    }
    return NULL;
}

static bool whole_number(const cJSON *v, double lo, double *out)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < lo || d >= MAX_EXACT_INT)
        return false;
    *out = d;
    return true;
}

static int parse_values(struct ingest_batch *b, size_t i, const cJSON *values,
                        const struct ingest_limits *lim)
{
    struct reading *r = &b->readings[i];
    char ex[48];
    if (!cJSON_IsObject(values)) {
        ingest_batch_reject(b, i, "values", "must be an object of metric: number, got %s",
                            type_name(values));
        return 0;
    }
    size_t n = count_children(values, lim->max_metrics);
    if (n == 0) {
        ingest_batch_reject(b, i, "values", "must hold at least one metric");
        return 0;
    }
    if (n > lim->max_metrics) {
        ingest_batch_reject(b, i, "values", "holds more than %u metrics (limit ingest.max_metrics)",
                            lim->max_metrics);
        return 0;
    }
    const char *dup = duplicate_key(values);
    if (dup != NULL) {
        ingest_batch_reject(b, i, "values", "metric '%s' appears twice",
                            ingest_excerpt(dup, strlen(dup), ex, sizeof ex));
        return 0;
    }
    r->values = arena_alloc(&b->arena, n * sizeof *r->values);
    if (r->values == NULL)
        return CANARY_ENOMEM;
    r->n_values = 0;
    for (const cJSON *m = values->child; m != NULL; m = m->next) {
        size_t klen = strlen(m->string);
        if (!metric_name_valid(m->string, klen, lim->max_metric_len)) {
            if (klen > lim->max_metric_len)
                ingest_batch_reject(b, i, "values",
                                    "metric name '%s' is longer than %u bytes (limit "
                                    "ingest.max_metric_len)",
                                    ingest_excerpt(m->string, strlen(m->string), ex, sizeof ex),
                                    lim->max_metric_len);
            else
                ingest_batch_reject(b, i, "values",
                                    "metric name '%s' is not snake_case ([a-z][a-z0-9_]*, "
                                    "e.g. gas_ppm)",
                                    ingest_excerpt(m->string, strlen(m->string), ex, sizeof ex));
            return 0;
        }
        double v;
        if (cJSON_IsNumber(m)) {
            v = m->valuedouble;
            if (!isfinite(v)) {
                char field[80];
                snprintf(field, sizeof field, "values.%s", m->string);
                ingest_batch_reject(b, i, field, "must be a finite number (got an overflow)");
                return 0;
            }
        } else if (cJSON_IsBool(m)) {
            v = cJSON_IsTrue(m) ? 1.0 : 0.0;
        } else {
            char field[80];
            snprintf(field, sizeof field, "values.%s", m->string);
            ingest_batch_reject(b, i, field, "must be a finite number, got %s", type_name(m));
            return 0;
        }
        struct metric_value *mv = &r->values[r->n_values++];
        mv->name = arena_strndup(&b->arena, m->string, klen);
        if (mv->name == NULL)
            return CANARY_ENOMEM;
        mv->value = v;
        mv->score = 0;
        mv->flags = 0;
    }
    return 0;
}

static int parse_reading(struct ingest_batch *b, size_t i, const cJSON *obj,
                         const struct ingest_limits *lim, int64_t recv_ms)
{
    struct reading *r = &b->readings[i];
    char ex[48];
    r->recv_ms = recv_ms;
    r->ts_ms = recv_ms;
    if (!cJSON_IsObject(obj)) {
        ingest_batch_reject(b, i, "", "a reading must be a JSON object, got %s", type_name(obj));
        return 0;
    }
    /* device, seq, ts, values: anything beyond that many keys is unknown or duplicated. */
    if (count_children(obj, 64) > 64) {
        ingest_batch_reject(b, i, "", "a reading has at most 4 fields (device, seq, ts, values)");
        return 0;
    }
    const char *dup = duplicate_key(obj);
    if (dup != NULL) {
        ingest_batch_reject(b, i, "", "field '%s' appears twice",
                            ingest_excerpt(dup, strlen(dup), ex, sizeof ex));
        return 0;
    }
    const cJSON *device = NULL, *seq = NULL, *ts = NULL, *values = NULL;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        if (strcmp(c->string, "device") == 0)
            device = c;
        else if (strcmp(c->string, "seq") == 0)
            seq = c;
        else if (strcmp(c->string, "ts") == 0)
            ts = c;
        else if (strcmp(c->string, "values") == 0)
            values = c;
        else if (lim->strict_fields) {
            ingest_batch_reject(b, i, ingest_excerpt(c->string, strlen(c->string), ex, sizeof ex),
                                "unknown field (a reading has device, seq, ts and values)");
            return 0;
        }
    }
    if (device == NULL) {
        ingest_batch_reject(b, i, "device", "is required");
        return 0;
    }
    if (!cJSON_IsString(device)) {
        ingest_batch_reject(b, i, "device", "must be a string, got %s", type_name(device));
        return 0;
    }
    size_t dlen = strlen(device->valuestring);
    if (!device_id_valid(device->valuestring, dlen, lim->max_device_len)) {
        if (dlen > lim->max_device_len)
            ingest_batch_reject(b, i, "device",
                                "is longer than %u bytes (limit ingest.max_device_len)",
                                lim->max_device_len);
        else
            ingest_batch_reject(
                b, i, "device",
                "'%s' is not a valid device id (letters, digits and . _ : -, "
                "starting with a letter or digit)",
                ingest_excerpt(device->valuestring, strlen(device->valuestring), ex, sizeof ex));
        return 0;
    }
    r->device = arena_strndup(&b->arena, device->valuestring, dlen);
    if (r->device == NULL)
        return CANARY_ENOMEM;
    if (seq == NULL) {
        ingest_batch_reject(b, i, "seq", "is required (the device's message counter)");
        return 0;
    }
    double d;
    if (!whole_number(seq, 0, &d)) {
        ingest_batch_reject(b, i, "seq", "must be a whole number from 0 to 2^53, got %s",
                            cJSON_IsNumber(seq) ? "a fraction or an out-of-range number"
                                                : type_name(seq));
        return 0;
    }
    r->seq = (uint64_t)d;
    r->has_seq = true;
    if (ts != NULL) {
        if (!whole_number(ts, 0, &d)) {
            ingest_batch_reject(b, i, "ts", "must be Unix time in whole milliseconds, got %s",
                                cJSON_IsNumber(ts) ? "a fraction or an out-of-range number"
                                                   : type_name(ts));
            return 0;
        }
        r->ts_ms = (int64_t)d;
        r->has_ts = true;
    }
    if (values == NULL) {
        ingest_batch_reject(b, i, "values", "is required");
        return 0;
    }
    return parse_values(b, i, values, lim);
}

int ingest_parse_json(const char *body, size_t len, const struct ingest_limits *lim,
                      int64_t recv_ms, struct ingest_batch *out, struct ingest_fatal *fatal)
{
    size_t bad;
    ingest_batch_size_for(out, len);
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
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (root == NULL) {
        size_t at = end != NULL && end >= body ? (size_t)(end - body) : 0;
        if (at > len)
            at = len;
        size_t line = 1, col = 1;
        for (size_t k = 0; k < at; k++) {
            if (body[k] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        ingest_fatal_set(fatal, 400, "", "malformed JSON at byte %zu (line %zu, column %zu)", at,
                         line, col);
        return CANARY_EINVAL;
    }
    for (const char *p = end; p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(root);
            ingest_fatal_set(fatal, 400, "", "unexpected data after the JSON value at byte %zu",
                             (size_t)(p - body));
            return CANARY_EINVAL;
        }
    }
    int rc = CANARY_OK;
    if (cJSON_IsArray(root)) {
        size_t n = count_children(root, lim->max_batch);
        if (n == 0) {
            ingest_fatal_set(fatal, 400, "", "the batch is empty");
            rc = CANARY_EINVAL;
        } else if (n > lim->max_batch) {
            ingest_fatal_set(fatal, 413, "ingest.max_batch",
                             "the batch holds more than %u readings (limit ingest.max_batch)",
                             lim->max_batch);
            rc = CANARY_ELIMIT;
        } else if ((rc = ingest_batch_reserve(out, n)) == 0) {
            out->is_array = true;
            size_t i = 0;
            for (const cJSON *e = root->child; e != NULL && rc == 0; e = e->next)
                rc = parse_reading(out, i++, e, lim, recv_ms);
        }
    } else if (cJSON_IsObject(root)) {
        rc = ingest_batch_reserve(out, 1);
        if (rc == 0)
            rc = parse_reading(out, 0, root, lim, recv_ms);
    } else {
        ingest_fatal_set(fatal, 400, "",
                         "the body must be a reading object or an array of them, got %s",
                         type_name(root));
        rc = CANARY_EINVAL;
    }
    cJSON_Delete(root);
    if (rc == CANARY_ENOMEM)
        ingest_fatal_set(fatal, 503, "", "out of memory");
    return rc;
}
