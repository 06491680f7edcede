/* plan.h — the outbox rows an alert's life produces: the first message of a notification
 * cycle, each escalation step, and the all-clear.
 *
 * A notification cycle starts when an alert opens, re-opens, or escalates in severity
 * (alert_action OPENED, REOPENED, ESCALATED): step 0 of every matching route goes out then
 * (kind "alert"); step i (kind "escalation") after i times notify.escalate_after_min without
 * an acknowledgement, for alerts of at least notify.escalate_severity. When the alert
 * resolves, everyone who was (or is being) told about it gets an all-clear (kind
 * "all_clear"): on the same channel, but a voice call's all-clear goes as an SMS when the
 * recipient has an SMS number (nobody should be rung to hear that it is over).
 *
 * Rows carry a dedupe key that names the alert, the cycle, the kind, the step, the
 * recipient and the channel, so planning the same transition twice (a retried commit, a
 * restarted scheduler) adds nothing. The payload is a small JSON snapshot of the moment
 * (event, cycle, severity, value, peak, time): the delivery thread writes the text from it
 * and from the store, so the text is written once, off the pipeline's path.
 *
 * Pure: configuration, alert and clock in, rows out; no I/O, thread-safe. */
#ifndef CANARY_NOTIFY_PLAN_H
#define CANARY_NOTIFY_PLAN_H

#include "core/config.h"
#include "decide/alert.h"
#include "notify/route.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether an alert event starts a notification cycle (opened, re-opened, severity rose). */
bool notify_event_starts_cycle(enum alert_action action);

/* Fills rows[0..cap) with the notifications of step `step` of the cycle that began at
 * cycle_ms for alert a (step 0: kind "alert", event = what happened; later steps: kind
 * "escalation"). plan is the caller's scratch space. *more_steps (if not NULL) receives
 * whether a matching route has a later step. Returns the number of rows. */
size_t notify_plan_step(const struct canary_config *cfg, const struct alert *a,
                        enum alert_action event, unsigned step, int64_t cycle_ms, int64_t now_ms,
                        struct notify_plan *plan, struct store_notification *rows, size_t cap,
                        bool *more_steps);

/* Fills rows with the all-clear of resolved alert a: one per recipient and channel among
 * `notified` (the alert's earlier rows: kinds alert and escalation, not failed or
 * cancelled; others are skipped). Returns the number of rows. */
size_t notify_plan_all_clear(const struct canary_config *cfg, const struct alert *a,
                             const struct store_notification *notified, size_t n_notified,
                             int64_t now_ms, struct store_notification *rows, size_t cap);

/* Whether an earlier row makes its recipient and channel owed an all-clear. */
bool notify_row_wants_all_clear(const struct store_notification *n);

/* The payload snapshot. */
struct notify_payload {
    enum alert_action event; /* opened, reopened, escalated, resolved */
    int64_t cycle_ms;        /* when the cycle began (resolved: when it resolved) */
    int64_t at_ms;           /* when the event happened */
    enum alert_severity severity;
    double value; /* NAN when not known */
    double peak;
};

/* Parses a row's payload. Returns 0 or CANARY_EINVAL (not a payload this module wrote). */
int notify_payload_parse(const char *json, struct notify_payload *out);

#endif
