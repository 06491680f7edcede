/* alert_fsm.h — the lifecycle of one alert, as a pure state machine.
 *
 * One machine per (device, metric, kind). It is fed an observation per relevant reading —
 * is the condition active, how severe, what value — and answers with the transition, if
 * any. Rules:
 *  - hold-off: a condition must be seen on open_after consecutive observations before the
 *    alert opens (critical conditions open at once), so one noisy value opens nothing;
 *  - while open, a higher severity escalates the alert (an acknowledged alert becomes open
 *    again, so the escalation is seen);
 *  - auto-resolve: when the condition has been clear for resolve_after_ms (measured from
 *    the last active observation), the alert resolves — a value hovering at a limit keeps
 *    one alert open instead of opening hundreds;
 *  - re-open: a condition back within reopen_window_ms of resolving re-opens the same
 *    alert (same id, event "reopened"); later, a new alert opens.
 * Silence is not "clear": only observations move the machine, so an alert never resolves
 * because its device stopped talking. Acknowledge and resolve by a person are explicit
 * calls. Pure: no I/O, no clock reads, no allocation. */
#ifndef CANARY_DECIDE_ALERT_FSM_H
#define CANARY_DECIDE_ALERT_FSM_H

#include "decide/alert.h"

#include <stdbool.h>
#include <stdint.h>

struct alert_fsm_params {
    uint32_t open_after;      /* consecutive active observations before opening */
    int64_t resolve_after_ms; /* clear this long: resolve */
    int64_t reopen_window_ms; /* active again within this after resolving: re-open */
};

enum alert_fsm_phase {
    FSM_IDLE = 0, /* nothing: the machine may be discarded */
    FSM_PENDING,  /* condition seen, not yet for open_after observations */
    FSM_ACTIVE,   /* open or acknowledged (rec.state tells which) */
    FSM_RESOLVED, /* resolved; may re-open within the window */
};

struct alert_fsm {
    enum alert_fsm_phase phase;
    uint32_t count;         /* consecutive active observations while pending */
    int64_t last_active_ms; /* last observation with the condition active */
    bool low;               /* the condition is on the low side (value below its limit on the
                               first active observation of the run): the peak is the minimum */
    bool unsaved;           /* value or peak changed since the record was last emitted */
    struct alert rec;       /* the alert (rec.id == 0 until the caller assigns one on open) */
};

/* Feeds one observation. Returns the transition (ALERT_ACTION_OPENED, ESCALATED, REOPENED,
 * RESOLVED, UPDATED for a changed value worth storing, or NONE). On OPENED the caller
 * assigns rec.id. The caller fills rec's device/metric/kind before the first call and
 * may rewrite rec.message after any transition. UPDATED comes at most every 5 s, and only
 * when the value or the peak changed since the record was last emitted. */
enum alert_action alert_fsm_observe(struct alert_fsm *f, const struct alert_fsm_params *p,
                                    bool active, enum alert_severity severity, double value,
                                    double limit, int64_t now_ms);

/* A person acknowledges the alert. Returns 0, or CANARY_ECONFLICT when it is not open
 * (already acknowledged, resolved, or not opened). */
int alert_fsm_acknowledge(struct alert_fsm *f, const char *actor, int64_t now_ms);

/* A person resolves the alert. Returns 0, or CANARY_ECONFLICT when it is not open or
 * acknowledged. */
int alert_fsm_resolve(struct alert_fsm *f, const char *actor, int64_t now_ms);

/* True when the machine holds nothing worth keeping at now_ms (idle, or resolved longer
 * ago than the re-open window); the caller may discard it. */
bool alert_fsm_expired(const struct alert_fsm *f, const struct alert_fsm_params *p, int64_t now_ms);

#endif
