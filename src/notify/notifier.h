/* notifier.h — canaryd's delivery stage: sends what the outbox holds, retries, escalates.
 *
 *   writer --(alert transitions + outbox rows, one commit)--> store
 *   store --claim--> delivery thread --notify_send--> Twilio / webhook / SMTP
 *   scheduler --(every second: open, unacknowledged alerts past escalate_after_min)-->
 *             next escalation step's rows --> store
 *
 * Delivery threads (notify.workers) each own a store handle and a notify client, and serve
 * a class of channels (Twilio; webhooks; e-mail), so one slow or dead provider holds only
 * its own thread; the pipeline never waits for any of them. A row is claimed ('sending'),
 * its text composed (compose.h) and sent; the result is recorded: delivered with the
 * provider's id, back to pending with exponential backoff and jitter (never sooner than a
 * provider's Retry-After) until notify.max_attempts, or failed. An escalation row of an
 * alert acknowledged or resolved meanwhile is cancelled; a non-critical row to a recipient
 * past rate_limit_per_hour is cancelled and counted. At start, rows left 'sending' by a
 * crash go back to pending (at-least-once delivery).
 *
 * Counters go to the pipeline's (notifications_*, escalations, llm_fallbacks in
 * /api/v1/stats). Logs name the row, alert, recipient and channel, never an address or a
 * secret. */
#ifndef CANARY_NOTIFY_NOTIFIER_H
#define CANARY_NOTIFY_NOTIFIER_H

#include "core/config.h"
#include "pipeline/pipeline.h"

#include <stddef.h>

struct notifier;

/* Starts the delivery threads and the escalation scheduler on cfg's store (cfg is copied;
 * p receives counters and is asked to wake the threads after commits that add rows).
 * With notify.workers = 0 nothing is started (*out = NULL): rows stay in the outbox.
 * Returns 0, or an error with a message. */
int notifier_start(struct notifier **out, const struct canary_config *cfg, struct pipeline *p,
                   char *err, size_t errlen);

/* Wakes the delivery threads (new rows are due). Never blocks long; thread-safe. */
void notifier_kick(struct notifier *n);

/* Stops the threads (a send in progress finishes, within its timeout) and frees. NULL is
 * fine. */
void notifier_stop(struct notifier *n);

#endif
