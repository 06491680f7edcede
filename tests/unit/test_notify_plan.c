/* test_notify_plan.c — the outbox rows of an alert's life (notify/plan.c): step 0 of a cycle
 * with one row per recipient and channel and keys that make a re-plan a no-op; escalation
 * steps with their own keys; the all-clear to whoever was told (a call's as an SMS, failed and
 * cancelled rows left out, one per recipient and channel); rows that pass the store's check;
 * the payload snapshot and its parser's refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/error.h"
#include "notify/plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1763683200000LL /* 2026-11-21 00:00 UTC, outside any quiet hours set here */

static void set(struct canary_config *cfg, const char *key, const char *value)
{
    char err[512];
    if (config_set(cfg, key, value, CONFIG_SRC_ENV, err, sizeof err) != 0)
        fail_msg("%s = %s: %s", key, value, err);
}

static int setup(void **state)
{
    struct canary_config *cfg = calloc(1, sizeof *cfg);
    config_init(cfg);
    set(cfg, "notify.twilio_account_sid", "AC0123456789abcdef");
    set(cfg, "notify.twilio_auth_token", "tok");
    set(cfg, "notify.twilio_from", "+15005550006");
    set(cfg, "notify.smtp_url", "smtp://mail.example.com:587");
    set(cfg, "notify.smtp_from", "canary@example.com");
    set(cfg, "recipient.alice.sms", "+4915112345678");
    set(cfg, "recipient.alice.voice", "+4915112345679");
    set(cfg, "recipient.alice.email", "alice@example.com");
    set(cfg, "recipient.bob.voice", "+441632960961");
    set(cfg, "route.gas.kinds", "gas_leak");
    set(cfg, "route.gas.steps", "sms:alice+email:alice, voice:alice+voice:bob");
    set(cfg, "route.copy.steps", "sms:alice"); /* the same target from a second route */
    char err[512];
    assert_int_equal(config_validate(cfg, err, sizeof err), 0);
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    config_free(*state);
    free(*state);
    return 0;
}

static struct alert gas_alert(void)
{
    struct alert a;
    memset(&a, 0, sizeof a);
    a.id = 42;
    snprintf(a.device, sizeof a.device, "kitchen-1");
    snprintf(a.metric, sizeof a.metric, "gas_ppm");
    a.kind = ALERT_KIND_GAS_LEAK;
    a.severity = SEVERITY_CRITICAL;
    a.state = ALERT_STATE_OPEN;
    a.opened_ms = T0;
    a.value = 4800;
    a.peak = 5100;
    a.limit = 1000;
    return a;
}

static const struct store_notification *row_for(const struct store_notification *rows, size_t n,
                                                const char *recipient, const char *channel)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].recipient, recipient) == 0 && strcmp(rows[i].channel, channel) == 0)
            return &rows[i];
    }
    return NULL;
}

static void test_cycle_events(void **state)
{
    (void)state;
    assert_true(notify_event_starts_cycle(ALERT_ACTION_OPENED));
    assert_true(notify_event_starts_cycle(ALERT_ACTION_REOPENED));
    assert_true(notify_event_starts_cycle(ALERT_ACTION_ESCALATED));
    assert_false(notify_event_starts_cycle(ALERT_ACTION_ACKNOWLEDGED));
    assert_false(notify_event_starts_cycle(ALERT_ACTION_RESOLVED));
    assert_false(notify_event_starts_cycle(ALERT_ACTION_COMMENTED));
    assert_false(notify_event_starts_cycle(ALERT_ACTION_UPDATED));
}

static void test_step_zero(void **state)
{
    struct canary_config *cfg = *state;
    struct alert a = gas_alert();
    static struct notify_plan plan;
    static struct store_notification rows[NOTIFY_PLAN_MAX];
    bool more = false;
    size_t n = notify_plan_step(cfg, &a, ALERT_ACTION_OPENED, 0, T0, T0 + 5, &plan, rows,
                                NOTIFY_PLAN_MAX, &more);
    assert_int_equal(n, 2); /* sms:alice named twice is planned once */
    assert_true(more);
    const struct store_notification *sms = row_for(rows, n, "alice", "sms");
    assert_non_null(sms);
    assert_string_equal(sms->kind, "alert");
    assert_string_equal(sms->address, "+4915112345678");
    assert_int_equal(sms->alert_id, 42);
    assert_int_equal(sms->step, 0);
    assert_int_equal(sms->created_ms, T0 + 5);
    assert_int_equal(sms->next_attempt_ms, T0 + 5);
    assert_string_equal(sms->dedupe_key, "a42/c1763683200000/alert/s0/alice/sms");
    assert_non_null(row_for(rows, n, "alice", "email"));
    char err[256];
    for (size_t i = 0; i < n; i++)
        assert_int_equal(store_notification_check(&rows[i], err, sizeof err), 0);

    /* Planning the same transition again gives the same keys (the store ignores them). */
    static struct store_notification again[NOTIFY_PLAN_MAX];
    size_t m = notify_plan_step(cfg, &a, ALERT_ACTION_OPENED, 0, T0, T0 + 900, &plan, again,
                                NOTIFY_PLAN_MAX, NULL);
    assert_int_equal(m, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(again[i].dedupe_key, rows[i].dedupe_key);

    /* A re-open is a new cycle: new keys. */
    m = notify_plan_step(cfg, &a, ALERT_ACTION_REOPENED, 0, T0 + 60000, T0 + 60000, &plan, again,
                         NOTIFY_PLAN_MAX, NULL);
    assert_int_equal(m, n);
    assert_string_not_equal(again[0].dedupe_key, rows[0].dedupe_key);

    /* Another kind: only the catch-all route. */
    a.kind = ALERT_KIND_OFFLINE;
    m = notify_plan_step(cfg, &a, ALERT_ACTION_OPENED, 0, T0, T0, &plan, again, NOTIFY_PLAN_MAX,
                         NULL);
    assert_int_equal(m, 1); /* route "copy" matches every alert */
    a.kind = ALERT_KIND_GAS_LEAK;

    /* cap is respected. */
    m = notify_plan_step(cfg, &a, ALERT_ACTION_OPENED, 0, T0, T0, &plan, again, 1, NULL);
    assert_int_equal(m, 1);
}

static void test_escalation_steps(void **state)
{
    struct canary_config *cfg = *state;
    struct alert a = gas_alert();
    static struct notify_plan plan;
    static struct store_notification rows[NOTIFY_PLAN_MAX];
    bool more = true;
    size_t n = notify_plan_step(cfg, &a, ALERT_ACTION_OPENED, 1, T0, T0 + 600000, &plan, rows,
                                NOTIFY_PLAN_MAX, &more);
    assert_int_equal(n, 2);
    assert_false(more);
    const struct store_notification *call = row_for(rows, n, "bob", "voice");
    assert_non_null(call);
    assert_string_equal(call->kind, "escalation");
    assert_int_equal(call->step, 1);
    assert_string_equal(call->dedupe_key, "a42/c1763683200000/escalation/s1/bob/voice");
    /* Past the last step: nothing more. */
    n = notify_plan_step(cfg, &a, ALERT_ACTION_OPENED, 2, T0, T0 + 1200000, &plan, rows,
                         NOTIFY_PLAN_MAX, &more);
    assert_int_equal(n, 0);
    assert_false(more);
}

static struct store_notification earlier(const char *kind, const char *recipient,
                                         const char *channel, const char *address,
                                         const char *status)
{
    struct store_notification r;
    memset(&r, 0, sizeof r);
    r.alert_id = 42;
    snprintf(r.kind, sizeof r.kind, "%s", kind);
    snprintf(r.recipient, sizeof r.recipient, "%s", recipient);
    snprintf(r.channel, sizeof r.channel, "%s", channel);
    snprintf(r.address, sizeof r.address, "%s", address);
    snprintf(r.status, sizeof r.status, "%s", status);
    return r;
}

static void test_all_clear(void **state)
{
    struct canary_config *cfg = *state;
    struct alert a = gas_alert();
    a.state = ALERT_STATE_RESOLVED;
    a.resolved_ms = T0 + 720000;
    struct store_notification old[] = {
        earlier("alert", "alice", "sms", "+4915112345678", "delivered"),
        earlier("alert", "alice", "email", "alice@example.com", "pending"),
        earlier("escalation", "alice", "voice", "+4915112345679", "delivered"), /* -> her SMS */
        earlier("escalation", "bob", "voice", "+441632960961", "sending"),      /* bob has no SMS */
        earlier("escalation", "carol", "sms", "+15005550001", "failed"),
        earlier("escalation", "dave", "sms", "+15005550002", "cancelled"),
        earlier("all_clear", "erin", "sms", "+15005550003", "delivered"),
    };
    size_t n_old = sizeof old / sizeof old[0];
    old[5].alert_id = 42;
    static struct store_notification rows[16];
    size_t n = notify_plan_all_clear(cfg, &a, old, n_old, T0 + 720001, rows, 16);
    assert_int_equal(n, 3);
    const struct store_notification *sms = row_for(rows, n, "alice", "sms");
    assert_non_null(sms);
    assert_string_equal(sms->kind, "all_clear");
    assert_string_equal(sms->dedupe_key, "a42/r1763683920000/all_clear/alice/sms");
    assert_non_null(row_for(rows, n, "alice", "email"));
    assert_null(row_for(rows, n, "alice", "voice"));
    const struct store_notification *bob = row_for(rows, n, "bob", "voice");
    assert_non_null(bob);
    assert_string_equal(bob->address, "+441632960961");
    assert_null(row_for(rows, n, "carol", "sms"));
    assert_null(row_for(rows, n, "dave", "sms"));
    assert_null(row_for(rows, n, "erin", "sms"));
    struct notify_payload pl;
    assert_int_equal(notify_payload_parse(sms->payload, &pl), 0);
    assert_int_equal(pl.event, ALERT_ACTION_RESOLVED);
    assert_int_equal(pl.at_ms, T0 + 720000);
    /* Rows of another alert are not this one's. */
    old[0].alert_id = 7;
    n = notify_plan_all_clear(cfg, &a, old, 1, T0, rows, 16);
    assert_int_equal(n, 0);
}

static void test_payload(void **state)
{
    struct canary_config *cfg = *state;
    struct alert a = gas_alert();
    a.limit = NAN;
    a.peak = INFINITY;
    static struct notify_plan plan;
    static struct store_notification rows[NOTIFY_PLAN_MAX];
    size_t n = notify_plan_step(cfg, &a, ALERT_ACTION_ESCALATED, 0, T0 + 7, T0 + 9, &plan, rows,
                                NOTIFY_PLAN_MAX, NULL);
    assert_true(n > 0);
    struct notify_payload pl;
    assert_int_equal(notify_payload_parse(rows[0].payload, &pl), 0);
    assert_int_equal(pl.event, ALERT_ACTION_ESCALATED);
    assert_int_equal(pl.cycle_ms, T0 + 7);
    assert_int_equal(pl.at_ms, T0 + 9);
    assert_int_equal(pl.severity, SEVERITY_CRITICAL);
    assert_true(pl.value == 4800);
    assert_true(isnan(pl.peak)); /* not finite: written as null */

    const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"event\":\"opened\"}",
        "{\"event\":\"exploded\",\"cycle\":1,\"at\":1,\"severity\":\"critical\"}",
        "{\"event\":\"opened\",\"cycle\":\"1\",\"at\":1,\"severity\":\"critical\"}",
        "{\"event\":\"opened\",\"cycle\":1,\"at\":1,\"severity\":\"apocalyptic\"}",
        "{\"event\":7,\"cycle\":1,\"at\":1,\"severity\":\"critical\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (notify_payload_parse(bad[i], &pl) != CANARY_EINVAL)
            fail_msg("payload %zu parsed: %s", i, bad[i]);
    }
    assert_int_equal(
        notify_payload_parse(
            "{\"event\":\"opened\",\"cycle\":1,\"at\":2,\"severity\":\"low\",\"value\":null}", &pl),
        0);
    assert_true(isnan(pl.value));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cycle_events),
        cmocka_unit_test_setup_teardown(test_step_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escalation_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payload, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
