/* alert_fsm.c — the alert lifecycle state machine; the rules are in alert_fsm.h. */
#include "decide/alert_fsm.h"

#include "core/error.h"

#include <math.h>
#include <stdio.h>

/* A still-open alert rewrites its record (latest value, peak) at most this often. */
#define UPDATE_INTERVAL_MS 5000

static void set_actor(char *dst, const char *actor)
{
    snprintf(dst, ALERT_ACTOR_LEN, "%s", actor != NULL && actor[0] ? actor : "anonymous");
}

/* The side is fixed by the first active observation of a run, which is always beyond the
 * limit: later ones may sit inside the hysteresis band, and an escalation changes the limit
 * (warn_low -> crit_low), so comparing each value with the current limit gets the side wrong. */
static bool more_extreme(const struct alert_fsm *f, double value)
{
    return f->low ? value < f->rec.peak : value > f->rec.peak;
}

static enum alert_action open_now(struct alert_fsm *f, enum alert_severity severity, double value,
                                  double limit, int64_t now_ms)
{
    struct alert *a = &f->rec;
    enum alert_action action = a->id != 0 ? ALERT_ACTION_REOPENED : ALERT_ACTION_OPENED;
    if (action == ALERT_ACTION_OPENED) {
        a->opened_ms = now_ms;
        a->severity = severity;
        a->peak = value;
    } else {
        if (severity > a->severity)
            a->severity = severity;
        if (more_extreme(f, value))
            a->peak = value;
    }
    a->state = ALERT_STATE_OPEN;
    a->resolved_ms = 0;
    a->resolved_by[0] = '\0';
    a->acknowledged_ms = 0;
    a->acknowledged_by[0] = '\0';
    a->value = value;
    a->limit = limit;
    a->updated_ms = now_ms;
    f->phase = FSM_ACTIVE;
    f->count = 0;
    f->last_active_ms = now_ms;
    return action;
}

enum alert_action alert_fsm_observe(struct alert_fsm *f, const struct alert_fsm_params *p,
                                    bool active, enum alert_severity severity, double value,
                                    double limit, int64_t now_ms)
{
    struct alert *a = &f->rec;
    switch (f->phase) {
    case FSM_RESOLVED:
        if (!active)
            return ALERT_ACTION_NONE;
        if (now_ms - a->resolved_ms > p->reopen_window_ms)
            a->id = 0; /* too late to re-open: this will be a new alert */
        f->phase = FSM_PENDING;
        f->count = 0;
        __attribute__((fallthrough)); /* count this observation */
    case FSM_IDLE:
    case FSM_PENDING:
        if (!active) {
            f->phase = a->id != 0 ? FSM_RESOLVED : FSM_IDLE;
            f->count = 0;
            return ALERT_ACTION_NONE;
        }
        if (f->count == 0)
            f->low = !isnan(limit) && value < limit;
        f->phase = FSM_PENDING;
        f->count++;
        if (f->count >= p->open_after || severity == SEVERITY_CRITICAL)
            return open_now(f, severity, value, limit, now_ms);
        return ALERT_ACTION_NONE;
    case FSM_ACTIVE:
        if (active) {
            /* A late observation (a backlog with its real timestamps) must not move the last
             * active time back: the resolve timer would then count from the past. */
            if (now_ms > f->last_active_ms)
                f->last_active_ms = now_ms;
            if (value != a->value || more_extreme(f, value))
                f->unsaved = true;
            a->value = value;
            if (more_extreme(f, value))
                a->peak = value;
            if (severity > a->severity) {
                f->unsaved = false;
                a->severity = severity;
                a->limit = limit;
                a->state = ALERT_STATE_OPEN;
                a->updated_ms = now_ms;
                return ALERT_ACTION_ESCALATED;
            }
            if (f->unsaved && now_ms - a->updated_ms >= UPDATE_INTERVAL_MS) {
                a->updated_ms = now_ms;
                f->unsaved = false;
                return ALERT_ACTION_UPDATED;
            }

            return ALERT_ACTION_NONE;
        }
        if (now_ms - f->last_active_ms >= p->resolve_after_ms) {
            a->state = ALERT_STATE_RESOLVED;
            a->resolved_ms = now_ms;
            a->updated_ms = now_ms;
            a->value = value;
            set_actor(a->resolved_by, "canary");
            f->phase = FSM_RESOLVED;
            return ALERT_ACTION_RESOLVED;
        }
        return ALERT_ACTION_NONE;
    }
    return ALERT_ACTION_NONE;
}

int alert_fsm_acknowledge(struct alert_fsm *f, const char *actor, int64_t now_ms)
{
    if (f->phase != FSM_ACTIVE || f->rec.state != ALERT_STATE_OPEN)
        return CANARY_ECONFLICT;
    f->rec.state = ALERT_STATE_ACKNOWLEDGED;
    f->rec.acknowledged_ms = now_ms;
    f->rec.updated_ms = now_ms;
    set_actor(f->rec.acknowledged_by, actor);
    return CANARY_OK;
}

int alert_fsm_resolve(struct alert_fsm *f, const char *actor, int64_t now_ms)
{
    if (f->phase != FSM_ACTIVE)
        return CANARY_ECONFLICT;
    f->rec.state = ALERT_STATE_RESOLVED;
    f->rec.resolved_ms = now_ms;
    f->rec.updated_ms = now_ms;
    set_actor(f->rec.resolved_by, actor);
    f->phase = FSM_RESOLVED;
    f->count = 0;
    return CANARY_OK;
}

bool alert_fsm_expired(const struct alert_fsm *f, const struct alert_fsm_params *p, int64_t now_ms)
{
    if (f->phase == FSM_IDLE)
        return true;
    return f->phase == FSM_RESOLVED && now_ms - f->rec.resolved_ms > p->reopen_window_ms;
}
