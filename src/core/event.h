/* event.h — a recorded event: something that went wrong at the edge of canaryd (a forged or
 * malformed message, a device speaking for another) that an operator should be able to see
 * later. Events are stored (store.h), counted, and listed by GET /api/v1/events.
 *
 * Two categories: "security" (the message could be an attack: a topic naming one device and
 * a payload another, an unknown device while registration is closed) and "ingest" (the
 * message is broken: not JSON, binary garbage, too large, a topic of the wrong shape).
 * A flood of events is rate-limited by the producer (core/rate_limit.h) and recorded as one
 * "suppressed" event that counts the rest, so it cannot fill the disk. */
#ifndef CANARY_CORE_EVENT_H
#define CANARY_CORE_EVENT_H

#include "core/reading.h"

#include <stdint.h>

#define EVENT_KIND_LEN   32
#define EVENT_SOURCE_LEN 160
#define EVENT_DETAIL_LEN 256

enum event_category { EVENT_SECURITY = 0, EVENT_INGEST = 1 };

struct event_record {
    uint64_t id; /* assigned by the store; 0 before */
    int64_t ts_ms;
    enum event_category category;
    char kind[EVENT_KIND_LEN];     /* "topic_device_mismatch", "malformed_payload", ... */
    char device[READING_ID_BUF];   /* the device concerned, "" if none could be read */
    char source[EVENT_SOURCE_LEN]; /* where it came from: "mqtt canary/x/up", "http 10.0.0.7" */
    char detail[EVENT_DETAIL_LEN]; /* a sentence an operator can act on */
    uint32_t count;                /* 1, or the events a "suppressed" record stands for */
};

/* "security" / "ingest". */
const char *event_category_name(enum event_category c);

/* Parses a category name. Returns 0 or -1. */
int event_category_parse(const char *s, enum event_category *out);

#endif
