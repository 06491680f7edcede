/* test_alert_fsm.c — the alert lifecycle state machine (src/decide/alert_fsm.c): hold-off,
 * escalation, auto-resolve, re-open window, acknowledge/resolve by a person, expiry, peaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/error.h"
#include "decide/alert_fsm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define T0  1763676000000LL
#define SEC 1000LL

static const struct alert_fsm_params params = {3, 60 * SEC, 300 * SEC};

/* A fresh machine, as decide creates one: identity filled, everything else zero. */
static void fsm_init(struct alert_fsm *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->rec.device, sizeof f->rec.device, "%s", "boiler-3");
    snprintf(f->rec.metric, sizeof f->rec.metric, "%s", "gas_ppm");
    f->rec.kind = ALERT_KIND_GAS_LEAK;
    f->rec.limit = NAN;
}

static enum alert_action obs(struct alert_fsm *f, bool active, enum alert_severity sev,
                             double value, double limit, int64_t now_ms)
{
    return alert_fsm_observe(f, &params, active, sev, value, limit, now_ms);
}

/* Opens f with open_after active observations at T0, T0+1 s, T0+2 s and gives it id. */
static void open_alert(struct alert_fsm *f, enum alert_severity sev, double value, double limit,
                       uint64_t id)
{
    fsm_init(f);
    for (uint32_t i = 0; i + 1 < params.open_after; i++)
        assert_int_equal(obs(f, true, sev, value, limit, T0 + i * SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(f, true, sev, value, limit, T0 + (params.open_after - 1) * SEC),
                     ALERT_ACTION_OPENED);
    f->rec.id = id;
}

/* Resolves an open f by clear observations every second; returns the time it resolved. */
static int64_t clear_until_resolved(struct alert_fsm *f, int64_t from_ms)
{
    for (int64_t t = from_ms; t < from_ms + 3600 * SEC; t += SEC) {
        enum alert_action a = obs(f, false, SEVERITY_INFO, 400, NAN, t);
        if (a == ALERT_ACTION_RESOLVED)
            return t;
        assert_int_equal(a, ALERT_ACTION_NONE);
    }
    fail_msg("never resolved");
    return 0;
}

static void test_hold_off(void **state)
{
    (void)state;
    struct alert_fsm f;
    fsm_init(&f);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, T0), ALERT_ACTION_NONE);
    assert_int_equal(f.phase, FSM_PENDING);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1300, 1000, T0 + SEC), ALERT_ACTION_NONE);
    assert_int_equal(f.phase, FSM_PENDING);
    assert_int_equal(f.rec.id, 0);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1250, 1000, T0 + 2 * SEC), ALERT_ACTION_OPENED);
    assert_int_equal(f.phase, FSM_ACTIVE);
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);
    assert_int_equal(f.rec.severity, SEVERITY_HIGH);
    assert_int_equal(f.rec.opened_ms, T0 + 2 * SEC);
    assert_int_equal(f.rec.updated_ms, T0 + 2 * SEC);
    assert_int_equal(f.rec.acknowledged_ms, 0);
    assert_int_equal(f.rec.resolved_ms, 0);
    assert_true(f.rec.value == 1250);
    assert_true(f.rec.peak == 1250);
    assert_true(f.rec.limit == 1000);
    /* The identity the caller filled is untouched. */
    assert_string_equal(f.rec.device, "boiler-3");
    assert_string_equal(f.rec.metric, "gas_ppm");
    assert_int_equal(f.rec.kind, ALERT_KIND_GAS_LEAK);
}

static void test_hold_off_reset_by_inactive(void **state)
{
    (void)state;
    struct alert_fsm f;
    fsm_init(&f);
    int64_t t = T0;
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, t += SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, t += SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, false, SEVERITY_HIGH, 900, NAN, t += SEC), ALERT_ACTION_NONE);
    assert_int_equal(f.phase, FSM_IDLE);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, t += SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, t += SEC), ALERT_ACTION_NONE);
    assert_int_equal(f.phase, FSM_PENDING);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, t += SEC), ALERT_ACTION_OPENED);

    /* Alternating from the start never opens (one noisy value opens nothing). */
    struct alert_fsm g;
    fsm_init(&g);
    for (int i = 0; i < 600; i++)
        assert_int_equal(obs(&g, i % 2 == 0, SEVERITY_HIGH, 1200, 1000, T0 + i * SEC),
                         ALERT_ACTION_NONE);
    assert_int_not_equal(g.phase, FSM_ACTIVE);
}

static void test_critical_opens_at_once(void **state)
{
    (void)state;
    struct alert_fsm f;
    fsm_init(&f);
    assert_int_equal(obs(&f, true, SEVERITY_CRITICAL, 6000, 5000, T0), ALERT_ACTION_OPENED);
    assert_int_equal(f.phase, FSM_ACTIVE);
    assert_int_equal(f.rec.severity, SEVERITY_CRITICAL);
    assert_int_equal(f.rec.opened_ms, T0);
    /* Also in the middle of a pending run of lower severity. */
    struct alert_fsm g;
    fsm_init(&g);
    assert_int_equal(obs(&g, true, SEVERITY_HIGH, 1200, 1000, T0), ALERT_ACTION_NONE);
    assert_int_equal(obs(&g, true, SEVERITY_CRITICAL, 7000, 5000, T0 + SEC), ALERT_ACTION_OPENED);
    assert_int_equal(g.rec.severity, SEVERITY_CRITICAL);
}

/* A condition flapping every reading while open is one alert that does not resolve. */
static void test_noisy_signal_one_alert(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1010, 1000, 7);
    int64_t t = T0 + 2 * SEC;
    int64_t last_active = t;
    int opened = 0, resolved = 0, reopened = 0;
    for (int i = 0; i < 600; i++) {
        t += SEC;
        bool active = i % 2 == 1;
        enum alert_action a = obs(&f, active, SEVERITY_HIGH, active ? 1003 : 990, 1000, t);
        if (active)
            last_active = t;
        opened += a == ALERT_ACTION_OPENED;
        resolved += a == ALERT_ACTION_RESOLVED;
        reopened += a == ALERT_ACTION_REOPENED;
        assert_int_equal(f.phase, FSM_ACTIVE);
    }
    assert_int_equal(opened, 0);
    assert_int_equal(resolved, 0);
    assert_int_equal(reopened, 0);
    assert_int_equal(f.rec.id, 7);
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);
    /* Then clear: it resolves exactly resolve_after_ms after the last active observation. */
    int64_t at = clear_until_resolved(&f, t + SEC);
    assert_int_equal(at, last_active + params.resolve_after_ms);
}

static void test_escalation(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_MEDIUM, 55, 50, 11);
    int64_t t = T0 + 3 * SEC;
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 70, 65, t), ALERT_ACTION_ESCALATED);
    assert_int_equal(f.rec.severity, SEVERITY_HIGH);
    assert_true(f.rec.limit == 65);
    assert_true(f.rec.value == 70);
    assert_int_equal(f.rec.updated_ms, t);
    assert_int_equal(f.rec.id, 11);
    assert_int_equal(f.rec.opened_ms, T0 + 2 * SEC); /* the same alert */
    /* Falling back does not de-escalate, and the same severity does not escalate again. */
    assert_int_not_equal(obs(&f, true, SEVERITY_MEDIUM, 56, 50, t + SEC), ALERT_ACTION_ESCALATED);
    assert_int_not_equal(obs(&f, true, SEVERITY_HIGH, 71, 65, t + 2 * SEC), ALERT_ACTION_ESCALATED);
    assert_int_equal(f.rec.severity, SEVERITY_HIGH);

    /* Acknowledged, then worse: open again so the escalation is seen. */
    assert_int_equal(alert_fsm_acknowledge(&f, "alice", t + 3 * SEC), CANARY_OK);
    assert_int_equal(f.rec.state, ALERT_STATE_ACKNOWLEDGED);
    assert_int_not_equal(obs(&f, true, SEVERITY_HIGH, 72, 65, t + 4 * SEC), ALERT_ACTION_ESCALATED);
    assert_int_equal(f.rec.state, ALERT_STATE_ACKNOWLEDGED); /* same severity: stays acked */
    assert_int_equal(obs(&f, true, SEVERITY_CRITICAL, 90, 80, t + 5 * SEC), ALERT_ACTION_ESCALATED);
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);
    assert_int_equal(f.rec.severity, SEVERITY_CRITICAL);
    assert_int_equal(f.phase, FSM_ACTIVE);
    /* It can be acknowledged again. */
    assert_int_equal(alert_fsm_acknowledge(&f, "bob", t + 6 * SEC), CANARY_OK);
    assert_string_equal(f.rec.acknowledged_by, "bob");
}

static void test_auto_resolve(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 3);
    int64_t last_active = T0 + 2 * SEC;
    /* Clear observations: nothing until resolve_after_ms after the last active one. */
    for (int64_t t = last_active + SEC; t < last_active + params.resolve_after_ms; t += SEC)
        assert_int_equal(obs(&f, false, SEVERITY_HIGH, 400, NAN, t), ALERT_ACTION_NONE);
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);
    int64_t at = last_active + params.resolve_after_ms;
    assert_int_equal(obs(&f, false, SEVERITY_HIGH, 410, NAN, at), ALERT_ACTION_RESOLVED);
    assert_int_equal(f.phase, FSM_RESOLVED);
    assert_int_equal(f.rec.state, ALERT_STATE_RESOLVED);
    assert_string_equal(f.rec.resolved_by, "canary");
    assert_int_equal(f.rec.resolved_ms, at);
    assert_int_equal(f.rec.updated_ms, at);
    assert_int_equal(f.rec.id, 3);
    assert_true(f.rec.peak == 1200);
    /* More clear observations change nothing. */
    assert_int_equal(obs(&f, false, SEVERITY_HIGH, 400, NAN, at + SEC), ALERT_ACTION_NONE);
    assert_int_equal(f.rec.resolved_ms, at);

    /* An acknowledged alert resolves the same way. */
    struct alert_fsm g;
    open_alert(&g, SEVERITY_HIGH, 1200, 1000, 4);
    assert_int_equal(alert_fsm_acknowledge(&g, "alice", T0 + 3 * SEC), CANARY_OK);
    assert_int_equal(clear_until_resolved(&g, T0 + 4 * SEC), T0 + 62 * SEC);
    assert_string_equal(g.rec.resolved_by, "canary");
    assert_string_equal(g.rec.acknowledged_by, "alice"); /* history kept */
}

/* Silence is not "clear": a device that stops talking keeps its alert open. */
static void test_silence_never_resolves(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 5);
    /* An hour and a day of nothing: still live, not discardable. */
    assert_false(alert_fsm_expired(&f, &params, T0 + 3600 * SEC));
    assert_false(alert_fsm_expired(&f, &params, T0 + 86400 * SEC));
    assert_int_equal(f.phase, FSM_ACTIVE);
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);
    /* The condition is still there when the device speaks again: the same alert goes on. */
    enum alert_action a = obs(&f, true, SEVERITY_HIGH, 1300, 1000, T0 + 3600 * SEC);
    assert_true(a == ALERT_ACTION_NONE || a == ALERT_ACTION_UPDATED);
    assert_int_equal(f.rec.id, 5);
    assert_int_equal(f.rec.opened_ms, T0 + 2 * SEC);
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);
}

/* A late observation (a device's backlog, sent with its real, older timestamps) must not move
 * "last active" back in time: the condition was active at t, so it is not yet clear for
 * resolve_after_ms one second after t. */
static void test_late_observation_does_not_shorten_resolve(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 8);
    int64_t t = T0 + 1000 * SEC;
    obs(&f, true, SEVERITY_HIGH, 1300, 1000, t);             /* live: active now */
    obs(&f, true, SEVERITY_HIGH, 1250, 1000, t - 100 * SEC); /* backlog from 100 s ago */
    assert_int_equal(obs(&f, false, SEVERITY_HIGH, 400, NAN, t + SEC), ALERT_ACTION_NONE);
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);
    assert_int_equal(clear_until_resolved(&f, t + 2 * SEC), t + params.resolve_after_ms);
    /* The record's timestamps do not go backwards either. */
    assert_true(f.rec.updated_ms >= t);
}

static void test_reopen_within_window(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 42);
    int64_t resolved = clear_until_resolved(&f, T0 + 3 * SEC);
    int64_t t = resolved + 100 * SEC;
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1100, 1000, t), ALERT_ACTION_NONE);
    assert_int_equal(f.rec.id, 42);
    assert_int_equal(f.phase, FSM_PENDING);
    assert_int_equal(f.rec.state, ALERT_STATE_RESOLVED); /* not yet re-opened */
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1100, 1000, t + SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1150, 1000, t + 2 * SEC), ALERT_ACTION_REOPENED);
    assert_int_equal(f.rec.id, 42);
    assert_int_equal(f.phase, FSM_ACTIVE);
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);
    assert_int_equal(f.rec.resolved_ms, 0);
    assert_string_equal(f.rec.resolved_by, "");
    assert_int_equal(f.rec.opened_ms, T0 + 2 * SEC); /* the same alert */
    assert_true(f.rec.value == 1150);
    assert_true(f.rec.peak == 1200); /* the peak of the alert so far */

    /* A pending re-open that fails goes back to resolved, id kept, window from the resolve. */
    resolved = clear_until_resolved(&f, t + 3 * SEC);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1100, 1000, resolved + SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, false, SEVERITY_HIGH, 900, NAN, resolved + 2 * SEC),
                     ALERT_ACTION_NONE);
    assert_int_equal(f.phase, FSM_RESOLVED);
    assert_int_equal(f.rec.id, 42);
    assert_int_equal(f.rec.resolved_ms, resolved);

    /* A critical condition within the window re-opens at once. */
    assert_int_equal(obs(&f, true, SEVERITY_CRITICAL, 6000, 5000, resolved + 10 * SEC),
                     ALERT_ACTION_REOPENED);
    assert_int_equal(f.rec.id, 42);
    assert_int_equal(f.rec.severity, SEVERITY_CRITICAL);
}

static void test_new_alert_after_window(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 42);
    int64_t resolved = clear_until_resolved(&f, T0 + 3 * SEC);
    int64_t t = resolved + params.reopen_window_ms + SEC;
    assert_int_equal(obs(&f, true, SEVERITY_MEDIUM, 1100, 1000, t), ALERT_ACTION_NONE);
    assert_int_equal(f.rec.id, 0); /* a new alert: the caller assigns a new id */
    assert_int_equal(obs(&f, true, SEVERITY_MEDIUM, 1100, 1000, t + SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, true, SEVERITY_MEDIUM, 1100, 1000, t + 2 * SEC), ALERT_ACTION_OPENED);
    assert_int_equal(f.rec.opened_ms, t + 2 * SEC);
    assert_int_equal(f.rec.severity, SEVERITY_MEDIUM); /* the new alert's own severity */
    assert_true(f.rec.peak == 1100);                   /* and its own peak */
    assert_int_equal(f.rec.resolved_ms, 0);
    assert_string_equal(f.rec.resolved_by, "");
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);

    /* Exactly at the window's end it is still the same alert. */
    struct alert_fsm g;
    open_alert(&g, SEVERITY_HIGH, 1200, 1000, 43);
    resolved = clear_until_resolved(&g, T0 + 3 * SEC);
    assert_int_equal(obs(&g, true, SEVERITY_CRITICAL, 6000, 5000, resolved + 300 * SEC),
                     ALERT_ACTION_REOPENED);
    assert_int_equal(g.rec.id, 43);
    /* After it, a critical condition opens a new alert at once. */
    struct alert_fsm h;
    open_alert(&h, SEVERITY_HIGH, 1200, 1000, 44);
    resolved = clear_until_resolved(&h, T0 + 3 * SEC);
    assert_int_equal(obs(&h, true, SEVERITY_CRITICAL, 6000, 5000, resolved + 301 * SEC),
                     ALERT_ACTION_OPENED);
    assert_int_equal(h.rec.id, 0);
}

static void test_acknowledge_and_resolve_by_person(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 9);
    assert_int_equal(alert_fsm_acknowledge(&f, "alice", T0 + 10 * SEC), CANARY_OK);
    assert_int_equal(f.rec.state, ALERT_STATE_ACKNOWLEDGED);
    assert_int_equal(f.phase, FSM_ACTIVE);
    assert_string_equal(f.rec.acknowledged_by, "alice");
    assert_int_equal(f.rec.acknowledged_ms, T0 + 10 * SEC);
    assert_int_equal(f.rec.updated_ms, T0 + 10 * SEC);
    /* Twice: conflict, and the first acknowledgement stands. */
    assert_int_equal(alert_fsm_acknowledge(&f, "bob", T0 + 11 * SEC), CANARY_ECONFLICT);
    assert_string_equal(f.rec.acknowledged_by, "alice");
    assert_int_equal(f.rec.acknowledged_ms, T0 + 10 * SEC);
    /* Resolve an acknowledged alert. */
    assert_int_equal(alert_fsm_resolve(&f, "bob", T0 + 20 * SEC), CANARY_OK);
    assert_int_equal(f.rec.state, ALERT_STATE_RESOLVED);
    assert_int_equal(f.phase, FSM_RESOLVED);
    assert_string_equal(f.rec.resolved_by, "bob");
    assert_int_equal(f.rec.resolved_ms, T0 + 20 * SEC);
    assert_int_equal(f.rec.updated_ms, T0 + 20 * SEC);
    /* Nothing more to do by hand on a resolved alert. */
    assert_int_equal(alert_fsm_acknowledge(&f, "carol", T0 + 21 * SEC), CANARY_ECONFLICT);
    assert_int_equal(alert_fsm_resolve(&f, "carol", T0 + 21 * SEC), CANARY_ECONFLICT);
    assert_string_equal(f.rec.resolved_by, "bob");
    assert_int_equal(f.rec.resolved_ms, T0 + 20 * SEC);

    /* Resolve an open (not acknowledged) alert; anonymous actors. */
    struct alert_fsm g;
    open_alert(&g, SEVERITY_HIGH, 1200, 1000, 10);
    assert_int_equal(alert_fsm_acknowledge(&g, "", T0 + 5 * SEC), CANARY_OK);
    assert_string_equal(g.rec.acknowledged_by, "anonymous");
    struct alert_fsm h;
    open_alert(&h, SEVERITY_HIGH, 1200, 1000, 11);
    assert_int_equal(alert_fsm_resolve(&h, NULL, T0 + 5 * SEC), CANARY_OK);
    assert_string_equal(h.rec.resolved_by, "anonymous");
    struct alert_fsm k;
    open_alert(&k, SEVERITY_HIGH, 1200, 1000, 12);
    assert_int_equal(alert_fsm_acknowledge(&k, NULL, T0 + 5 * SEC), CANARY_OK);
    assert_string_equal(k.rec.acknowledged_by, "anonymous");
    assert_int_equal(alert_fsm_resolve(&k, "", T0 + 6 * SEC), CANARY_OK);
    assert_string_equal(k.rec.resolved_by, "anonymous");

    /* A long actor is cut to fit, still terminated. */
    struct alert_fsm m;
    open_alert(&m, SEVERITY_HIGH, 1200, 1000, 13);
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(alert_fsm_acknowledge(&m, longname, T0 + 5 * SEC), CANARY_OK);
    assert_int_equal(strlen(m.rec.acknowledged_by), ALERT_ACTOR_LEN - 1);
}

static void test_person_conflicts(void **state)
{
    (void)state;
    /* Idle: nothing to acknowledge or resolve. */
    struct alert_fsm f;
    fsm_init(&f);
    assert_int_equal(alert_fsm_acknowledge(&f, "alice", T0), CANARY_ECONFLICT);
    assert_int_equal(alert_fsm_resolve(&f, "alice", T0), CANARY_ECONFLICT);
    assert_int_equal(f.phase, FSM_IDLE);
    assert_int_equal(f.rec.acknowledged_ms, 0);
    assert_int_equal(f.rec.resolved_ms, 0);
    /* Pending: not opened yet. */
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, T0), ALERT_ACTION_NONE);
    assert_int_equal(alert_fsm_acknowledge(&f, "alice", T0 + SEC), CANARY_ECONFLICT);
    assert_int_equal(alert_fsm_resolve(&f, "alice", T0 + SEC), CANARY_ECONFLICT);
    assert_int_equal(f.phase, FSM_PENDING);
    /* The hold-off count survives the refused calls. */
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, T0 + 2 * SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, T0 + 3 * SEC), ALERT_ACTION_OPENED);
    /* Auto-resolved: conflict for both. */
    f.rec.id = 1;
    clear_until_resolved(&f, T0 + 4 * SEC);
    assert_int_equal(alert_fsm_acknowledge(&f, "alice", T0 + 100 * SEC), CANARY_ECONFLICT);
    assert_int_equal(alert_fsm_resolve(&f, "alice", T0 + 100 * SEC), CANARY_ECONFLICT);
    assert_string_equal(f.rec.resolved_by, "canary");
    /* Resolved and pending a re-open: still not open. */
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, T0 + 101 * SEC), ALERT_ACTION_NONE);
    assert_int_equal(alert_fsm_acknowledge(&f, "alice", T0 + 102 * SEC), CANARY_ECONFLICT);
    assert_int_equal(alert_fsm_resolve(&f, "alice", T0 + 102 * SEC), CANARY_ECONFLICT);
}

/* A person resolves, the condition persists: the same alert re-opens within the window. */
static void test_resolved_by_person_condition_persists(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 21);
    assert_int_equal(alert_fsm_resolve(&f, "bob", T0 + 10 * SEC), CANARY_OK);
    int64_t t = T0 + 11 * SEC;
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, t), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, t + SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, t + 2 * SEC), ALERT_ACTION_REOPENED);
    assert_int_equal(f.rec.id, 21);
    assert_int_equal(f.rec.state, ALERT_STATE_OPEN);
    assert_int_equal(f.rec.resolved_ms, 0);
    assert_string_equal(f.rec.resolved_by, "");

    /* Acknowledged, resolved by hand, back: the acknowledgement is not carried over. */
    struct alert_fsm g;
    open_alert(&g, SEVERITY_HIGH, 1200, 1000, 22);
    assert_int_equal(alert_fsm_acknowledge(&g, "alice", T0 + 5 * SEC), CANARY_OK);
    assert_int_equal(alert_fsm_resolve(&g, "alice", T0 + 6 * SEC), CANARY_OK);
    assert_int_equal(obs(&g, true, SEVERITY_CRITICAL, 6000, 5000, T0 + 7 * SEC),
                     ALERT_ACTION_REOPENED);
    assert_int_equal(g.rec.state, ALERT_STATE_OPEN);
    assert_int_equal(g.rec.acknowledged_ms, 0);
    assert_string_equal(g.rec.acknowledged_by, "");
    assert_int_equal(alert_fsm_acknowledge(&g, "alice", T0 + 8 * SEC), CANARY_OK);
}

static void test_expired(void **state)
{
    (void)state;
    struct alert_fsm f;
    fsm_init(&f);
    assert_true(alert_fsm_expired(&f, &params, T0)); /* idle */
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1200, 1000, T0), ALERT_ACTION_NONE);
    assert_false(alert_fsm_expired(&f, &params, T0 + 86400 * SEC)); /* pending */
    assert_int_equal(obs(&f, false, SEVERITY_HIGH, 900, NAN, T0 + SEC), ALERT_ACTION_NONE);
    assert_true(alert_fsm_expired(&f, &params, T0 + SEC)); /* idle again */

    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 31);
    assert_false(alert_fsm_expired(&f, &params, T0 + 365 * 86400 * SEC)); /* active */
    assert_int_equal(alert_fsm_acknowledge(&f, "alice", T0 + 3 * SEC), CANARY_OK);
    assert_false(alert_fsm_expired(&f, &params, T0 + 365 * 86400 * SEC)); /* acknowledged */
    int64_t resolved = clear_until_resolved(&f, T0 + 4 * SEC);
    assert_false(alert_fsm_expired(&f, &params, resolved));
    assert_false(alert_fsm_expired(&f, &params, resolved + params.reopen_window_ms));
    assert_true(alert_fsm_expired(&f, &params, resolved + params.reopen_window_ms + 1));
    assert_true(alert_fsm_expired(&f, &params, resolved + 86400 * SEC));
}

static void test_peak_high_side(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 1);
    assert_true(f.rec.peak == 1200);
    int64_t t = T0 + 3 * SEC;
    obs(&f, true, SEVERITY_HIGH, 1500, 1000, t);
    assert_true(f.rec.peak == 1500);
    obs(&f, true, SEVERITY_HIGH, 1300, 1000, t + SEC);
    assert_true(f.rec.peak == 1500);
    assert_true(f.rec.value == 1300);
    obs(&f, true, SEVERITY_CRITICAL, 5200, 5000, t + 2 * SEC); /* escalates */
    assert_true(f.rec.peak == 5200);
    obs(&f, true, SEVERITY_HIGH, 1100, 1000, t + 3 * SEC);
    assert_true(f.rec.peak == 5200);
    assert_true(f.rec.value == 1100);
    /* Without a limit (anomaly, rate): the maximum. */
    struct alert_fsm g;
    open_alert(&g, SEVERITY_LOW, 30, NAN, 2);
    obs(&g, true, SEVERITY_LOW, 35, NAN, t);
    obs(&g, true, SEVERITY_LOW, 31, NAN, t + SEC);
    assert_true(g.rec.peak == 35);
}

static void test_peak_low_side(void **state)
{
    (void)state;
    /* A low-side alert (value below its limit) peaks downwards. */
    struct alert_fsm f;
    open_alert(&f, SEVERITY_MEDIUM, 8, 10, 1);
    assert_true(f.rec.peak == 8);
    int64_t t = T0 + 3 * SEC;
    obs(&f, true, SEVERITY_MEDIUM, 5, 10, t);
    assert_true(f.rec.peak == 5);
    obs(&f, true, SEVERITY_MEDIUM, 7, 10, t + SEC);
    assert_true(f.rec.peak == 5);
    assert_true(f.rec.value == 7);
}

/* Low side, escalating from warn_low 10 to crit_low 5: the limit passed in changes, the side
 * does not. The peak must follow the value down to 4, then 3. */
static void test_peak_low_side_across_escalation(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_MEDIUM, 8, 10, 1);
    int64_t t = T0 + 3 * SEC;
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 4, 5, t), ALERT_ACTION_ESCALATED);
    assert_true(f.rec.value == 4);
    assert_true(f.rec.peak == 4);
    obs(&f, true, SEVERITY_HIGH, 3, 5, t + SEC);
    assert_true(f.rec.peak == 3);
    obs(&f, true, SEVERITY_HIGH, 4.5, 5, t + 2 * SEC);
    assert_true(f.rec.peak == 3);
}

/* A high-side alert that opens while the value hovers inside the hysteresis band (1001, 990,
 * 980 against warn 1000: still WARN) must not have its peak walk down with the value. */
static void test_peak_high_side_in_hysteresis_band(void **state)
{
    (void)state;
    struct alert_fsm f;
    fsm_init(&f);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1001, 1000, T0), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 990, 1000, T0 + SEC), ALERT_ACTION_NONE);
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 980, 1000, T0 + 2 * SEC), ALERT_ACTION_OPENED);
    assert_true(f.rec.peak == 980);
    obs(&f, true, SEVERITY_HIGH, 970, 1000, T0 + 3 * SEC);
    obs(&f, true, SEVERITY_HIGH, 960, 1000, T0 + 4 * SEC);
    assert_true(f.rec.value == 960);
    assert_true(f.rec.peak == 980); /* the maximum while open */
    obs(&f, true, SEVERITY_HIGH, 1020, 1000, T0 + 5 * SEC);
    assert_true(f.rec.peak == 1020);
}

/* While open, a changing value is written back (UPDATED) at most every 5 s. */
static void test_updated_rate_limited(void **state)
{
    (void)state;
    struct alert_fsm f;
    open_alert(&f, SEVERITY_HIGH, 1200, 1000, 1);
    int64_t last_write = f.rec.updated_ms;
    int updates = 0;
    for (int i = 1; i <= 60; i++) {
        int64_t t = T0 + 2 * SEC + i * SEC;
        double v = 1200 + 10 * i;
        enum alert_action a = obs(&f, true, SEVERITY_HIGH, v, 1000, t);
        assert_true(a == ALERT_ACTION_NONE || a == ALERT_ACTION_UPDATED);
        assert_true(f.rec.value == v); /* the record always holds the latest */
        assert_true(f.rec.peak == v);
        if (a == ALERT_ACTION_UPDATED) {
            assert_true(t - last_write >= 5 * SEC);
            assert_int_equal(f.rec.updated_ms, t);
            last_write = t;
            updates++;
        } else {
            assert_true(t - last_write < 5 * SEC); /* due, but not written */
        }
    }
    assert_int_equal(updates, 12);
    /* An unchanged value (below the peak) is written once, then not again. */
    int64_t t = T0 + 70 * SEC;
    assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1500, 1000, t), ALERT_ACTION_UPDATED);
    for (int i = 1; i <= 30; i++)
        assert_int_equal(obs(&f, true, SEVERITY_HIGH, 1500, 1000, t + i * SEC), ALERT_ACTION_NONE);
    /* Clear observations write nothing until the alert resolves. */

    for (int i = 1; i < 60; i++)
        assert_int_equal(obs(&f, false, SEVERITY_HIGH, 900, NAN, T0 + 62 * SEC + i * SEC),
                         ALERT_ACTION_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_off),
        cmocka_unit_test(test_hold_off_reset_by_inactive),
        cmocka_unit_test(test_critical_opens_at_once),
        cmocka_unit_test(test_noisy_signal_one_alert),
        cmocka_unit_test(test_escalation),
        cmocka_unit_test(test_auto_resolve),
        cmocka_unit_test(test_silence_never_resolves),
        cmocka_unit_test(test_late_observation_does_not_shorten_resolve),
        cmocka_unit_test(test_reopen_within_window),
        cmocka_unit_test(test_new_alert_after_window),
        cmocka_unit_test(test_acknowledge_and_resolve_by_person),
        cmocka_unit_test(test_person_conflicts),
        cmocka_unit_test(test_resolved_by_person_condition_persists),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_peak_high_side),
        cmocka_unit_test(test_peak_low_side),
        cmocka_unit_test(test_peak_low_side_across_escalation),
        cmocka_unit_test(test_peak_high_side_in_hysteresis_band),
        cmocka_unit_test(test_updated_rate_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
