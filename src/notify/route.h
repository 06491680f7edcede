/* route.h — which people and channels an alert goes to at one escalation step.
 *
 * A pure function of the configuration ([route.<name>] and [recipient.<name>] sections,
 * core/config.h), the alert and the time: no I/O, no state, safe from any thread. Every
 * route whose severities, kinds and devices match the alert contributes the targets of
 * its step `step` (step 0 when the alert opens, step i after i escalation intervals
 * without an acknowledgement). A target whose recipient is in quiet hours (the
 * recipient's own window, else notify.quiet_hours) is held back unless the alert is
 * critical: critical alerts ignore quiet hours. The same (recipient, channel) named by two
 * routes is planned once. Rate limits are not applied here: they need the outbox's
 * history and belong to the delivery step. */
#ifndef CANARY_NOTIFY_ROUTE_H
#define CANARY_NOTIFY_ROUTE_H

#include "core/config.h"
#include "decide/alert.h"
#include "notify/notify.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOTIFY_PLAN_MAX 64 /* targets in one plan; more are counted in `dropped` */

/* One notification to make: pointers into the configuration (valid while it lives). */
struct notify_target {
    const char *recipient; /* the recipient's name */
    enum notify_channel channel;
    const char *address; /* E.164 number, e-mail address or URL */
    const char *route;   /* the route that named it first */
};

struct notify_plan {
    struct notify_target targets[NOTIFY_PLAN_MAX];
    size_t n;
    size_t quiet;    /* targets held back by quiet hours */
    size_t unknown;  /* named recipients missing, or without an address for the channel
                        (config_validate_notify refuses such configurations) */
    size_t dropped;  /* targets beyond NOTIFY_PLAN_MAX */
    size_t routes;   /* routes that matched the alert */
    bool more_steps; /* a matching route has a step after this one: escalation continues */
};

/* Whether route r applies to alert a (severity, kind, device globs; empty = any). */
bool notify_route_matches(const struct config_route *r, const struct alert *a);

/* Fills *out with the targets of step `step` for alert a at now_ms (UTC). Returns the
 * number of targets (out->n); 0 when no route matches, no matching route has that step,
 * or every target is in quiet hours. */
size_t notify_route_plan(const struct canary_config *cfg, const struct alert *a, unsigned step,
                         int64_t now_ms, struct notify_plan *out);

#endif
