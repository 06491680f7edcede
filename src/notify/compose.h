/* compose.h — the message an outbox row sends: its explanation, written from the alert, the
 * moment the row captured, and what the store knows around it.
 *
 * The context of the explanation (explain.h) is gathered from the store at delivery time,
 * off the pipeline's path: the device's name, place and kind; the trend of the alert's
 * metric over the minutes before the event (least squares over up to TREND_WINDOW); its
 * normal range over the hour before the alert opened (the 10th to 90th percentile, when
 * there are enough readings); the anomaly score of the latest reading; and the other
 * sensors' latest values (related readings). What cannot be read is left out: the text
 * is still complete, only less specific.
 *
 * Then the channel's message: the short form for SMS, WhatsApp and voice; subject, plain
 * text and HTML for e-mail; the signed JSON payload for webhooks. Not thread-safe per
 * composition (each delivery thread composes into its own struct composed). */
#ifndef CANARY_NOTIFY_COMPOSE_H
#define CANARY_NOTIFY_COMPOSE_H

#include "core/config.h"
#include "notify/explain.h"
#include "notify/notify.h"
#include "notify/plan.h"
#include "store/store.h"

#include <stddef.h>

#define COMPOSE_TEXT_MAX 8192

/* Everything one message borrows from: keep it alive until the send returns. */
struct composed {
    struct explain_context ctx;
    struct explanation expl;
    struct alert alert; /* the alert as the row's moment saw it */
    struct store_device device;
    struct explain_related related[EXPLAIN_MAX_RELATED];
    char related_metrics[EXPLAIN_MAX_RELATED][READING_METRIC_BUF];
    char subject[EXPLAIN_TITLE_MAX + 32];
    char text[COMPOSE_TEXT_MAX];
    char html[COMPOSE_TEXT_MAX * 2];
    char key[64];   /* idempotency key: "canary-n-<row id>" */
    char *json;     /* webhook body (malloc'd; compose_free) */
    char event[32]; /* "opened", "escalated", "resolved", ... */
    struct notify_message msg;
};

/* Fills the explanation context of row (its alert a, as stored now, and its payload) from
 * the store. The caller then writes the explanation (explain_with) into c->expl. */
void compose_context(struct composed *c, struct store *s, const struct canary_config *cfg,
                     const struct store_notification *row, const struct alert *a,
                     const struct notify_payload *pl, int64_t now_ms);

/* The template explanation of alert a as it stands (its all-clear when resolved), with the
 * same context a notification gets, into c->expl (for the API; no LLM, no I/O but store
 * reads). */
void compose_explain_alert(struct composed *c, struct store *s, const struct canary_config *cfg,
                           const struct alert *a, int64_t now_ms);

/* Builds c->msg for the row's channel from c->expl (and c->ctx). Returns 0 or CANARY_ENOMEM. */
int compose_message(struct composed *c, const struct store_notification *row, int64_t now_ms);

/* Frees what compose_message allocated. */
void compose_free(struct composed *c);

#endif
