/* test_notify_route.c — alert delivery routing: the [notify], [recipient.<name>] and
 * [route.<name>] configuration (core/config_notify.c) and the plan of one escalation step
 * (notify/route.c): matching, steps, quiet hours across midnight, critical alerts ignoring
 * them, unknown recipients, and the messages that name the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/error.h"
#include "notify/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2026-11-21 00:00:00 UTC */
#define DAY0_MS  1763683200000LL
#define AT(h, m) (DAY0_MS + ((int64_t)(h)*60 + (m)) * 60000)

static void set(struct canary_config *cfg, const char *key, const char *value)
{
    char err[512];
    int rc = config_set(cfg, key, value, CONFIG_SRC_ENV, err, sizeof err);
    if (rc != 0)
        fail_msg("%s = %s: %s", key, value, err);
}

static int set_err(struct canary_config *cfg, const char *key, const char *value, char *err,
                   size_t errlen)
{
    return config_set(cfg, key, value, CONFIG_SRC_FLAG, err, errlen);
}

/* Providers for every channel, two people, and two routes. */
static void configure(struct canary_config *cfg)
{
    config_init(cfg);
    set(cfg, "notify.twilio_account_sid", "AC0123456789abcdef");
    set(cfg, "notify.twilio_auth_token", "tok");
    set(cfg, "notify.twilio_from", "+15005550006");
    set(cfg, "notify.twilio_whatsapp_from", "+14155238886");
    set(cfg, "notify.smtp_url", "smtp://mail.example.com:587");
    set(cfg, "notify.smtp_from", "canary@example.com");
    set(cfg, "notify.webhook_secret", "whsec");
    set(cfg, "recipient.alice.sms", "+4915112345678");
    set(cfg, "recipient.alice.voice", "+4915112345678");
    set(cfg, "recipient.alice.email", "alice@example.com");
    set(cfg, "recipient.bob.sms", "+441632960961");
    set(cfg, "recipient.bob.whatsapp", "+441632960961");
    set(cfg, "recipient.ops.webhook", "https://hooks.example.com/canary");
    set(cfg, "route.gas.severities", ">=high");
    set(cfg, "route.gas.kinds", "gas_leak, fire");
    set(cfg, "route.gas.devices", "kitchen-*, boiler-1");
    set(cfg, "route.gas.steps", "sms:alice+email:alice, voice:alice, sms:bob+whatsapp:bob");
    set(cfg, "route.all.steps", "webhook:ops");
}

static struct alert make_alert(const char *device, enum alert_kind kind,
                               enum alert_severity severity)
{
    struct alert a;
    memset(&a, 0, sizeof a);
    a.id = 1;
    snprintf(a.device, sizeof a.device, "%s", device);
    snprintf(a.metric, sizeof a.metric, "gas_ppm");
    a.kind = kind;
    a.severity = severity;
    return a;
}

static bool has(const struct notify_plan *p, const char *recipient, enum notify_channel ch,
                const char *address)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->targets[i].recipient, recipient) == 0 && p->targets[i].channel == ch)
            return address == NULL || strcmp(p->targets[i].address, address) == 0;
    }
    return false;
}

static void test_config_parses_and_validates(void **state)
{
    (void)state;
    struct canary_config cfg;
    configure(&cfg);
    char err[512] = "";
    assert_int_equal(config_validate(&cfg, err, sizeof err), 0);
    assert_int_equal(cfg.n_recipients, 3);
    assert_int_equal(cfg.n_routes, 2);
    const struct config_route *r = &cfg.routes[0];
    assert_string_equal(r->name, "gas");
    assert_int_equal(r->n_steps, 3);
    assert_int_equal(r->steps[0].n_targets, 2);
    assert_string_equal(r->steps[0].targets[1].channel, "email");
    assert_string_equal(r->steps[2].targets[1].recipient, "bob");
    assert_int_equal(r->severity_mask, (1u << SEVERITY_HIGH) | (1u << SEVERITY_CRITICAL));
    set(&cfg, "route.gas.severities", "low, critical");
    assert_int_equal(cfg.routes[0].severity_mask, (1u << SEVERITY_LOW) | (1u << SEVERITY_CRITICAL));
    set(&cfg, "route.gas.severities", ">medium");
    assert_int_equal(cfg.routes[0].severity_mask,
                     (1u << SEVERITY_HIGH) | (1u << SEVERITY_CRITICAL));
    assert_int_equal((int)cfg.notify.escalate_after_min, 10);

    /* Written back and read again, the sections are the same; secrets never appear. */
    char path[] = "/tmp/canary-route-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    config_write(&cfg, f, false);
    fclose(f);
    f = fopen(path, "r");
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_null(strstr(text, "whsec"));
    assert_null(strstr(text, "= tok"));
    assert_non_null(strstr(text, "[route.gas]"));
    assert_non_null(strstr(text, "steps = sms:alice+email:alice, voice:alice"));
    struct canary_config again;
    config_init(&again);
    assert_int_equal(config_load_file(&again, path, err, sizeof err), 0);
    assert_int_equal(again.n_recipients, 3);
    assert_int_equal(again.n_routes, 2);
    assert_int_equal(again.routes[0].n_steps, 3);
    assert_string_equal(again.recipients[1].whatsapp, "+441632960961");
    assert_int_equal(again.routes[0].severity_mask, cfg.routes[0].severity_mask);
    unlink(path);
    config_free(&again);
    config_free(&cfg);
}

struct bad_value {
    const char *key, *value, *expect; /* expect: a piece of the message */
};

static void test_config_errors_name_the_key(void **state)
{
    (void)state;
    const struct bad_value cases[] = {
        {"recipient.alice.sms", "015112345678", "recipient.alice.sms: '015112345678' is not"},
        {"recipient.alice.sms", "+49 151 1234", "E.164"},
        {"recipient.alice.voice", "+0123456789", "E.164"},
        {"recipient.alice.whatsapp", "+1234567890123456", "E.164"},
        {"recipient.alice.email", "alice.example.com", "recipient.alice.email"},
        {"recipient.alice.webhook", "ftp://x", "recipient.alice.webhook"},
        {"recipient.alice.quiet_hours", "22:00-7:00", "recipient.alice.quiet_hours"},
        {"recipient.alice.quiet_hours", "25:00-07:00", "HH:MM-HH:MM"},
        {"recipient.alice.quiet_hours", "22:00-22:00", "empty"},
        {"recipient.alice.quiet_hours", "22:00-07:00 Europe/Berlin", "UTC offset"},
        {"recipient.alice.rate_limit_per_hour", "-1", "recipient.alice.rate_limit_per_hour"},
        {"recipient.alice.pager", "1", "unknown field 'pager'"},
        {"recipient.a b.sms", "+4915112345678", "expected recipient.<name>.<field>"},
        {"route.gas.severities", "urgent", "route.gas.severities"},
        {"route.gas.severities", ">=", "route.gas.severities"},
        {"route.gas.kinds", "gas_leak, flood", "'flood' is not an alert kind"},
        {"route.gas.steps", "pager:alice", "unknown channel 'pager'"},
        {"route.gas.steps", "sms:alice, alice", "step 1 is not CHANNEL:RECIPIENT"},
        {"route.gas.steps", "", "no steps"},
        {"route.gas.colour", "red", "unknown field 'colour'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct canary_config cfg;
        config_init(&cfg);
        char err[512] = "";
        int rc = set_err(&cfg, cases[i].key, cases[i].value, err, sizeof err);
        if (rc == 0 || strstr(err, cases[i].expect) == NULL)
            fail_msg("%s = %s: rc %d, message \"%s\", expected \"%s\"", cases[i].key,
                     cases[i].value, rc, err, cases[i].expect);
        config_free(&cfg);
    }
}

static void test_validate_relations(void **state)
{
    (void)state;
    struct {
        const char *key, *value, *expect;
    } cases[] = {
        {"route.gas.steps", "sms:carol",
         "step 0 names recipient 'carol', which has no "
         "[recipient.carol] section"},
        {"route.gas.steps", "sms:alice, whatsapp:alice",
         "step 1 sends whatsapp to 'alice', but recipient.alice.whatsapp is not set"},
        {"notify.quiet_hours", "22-07", "notify.quiet_hours"},
        {"notify.twilio_from", "5005550006", "notify.twilio_from"},
        {"notify.smtp_url", "http://mail", "notify.smtp_url"},
        {"notify.twilio_auth_token", "", "needs notify.twilio_account_sid"},
        {"notify.smtp_from", "", "needs notify.smtp_url and notify.smtp_from"},
        {"notify.webhook_secret", "", "needs notify.webhook_secret"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct canary_config cfg;
        configure(&cfg);
        set(&cfg, cases[i].key, cases[i].value);
        char err[512] = "";
        int rc = config_validate(&cfg, err, sizeof err);
        if (rc == 0 || strstr(err, cases[i].expect) == NULL)
            fail_msg("%s = %s: rc %d, message \"%s\", expected \"%s\"", cases[i].key,
                     cases[i].value, rc, err, cases[i].expect);
        config_free(&cfg);
    }
    /* A route section without steps is caught too. */
    struct canary_config cfg;
    configure(&cfg);
    set(&cfg, "route.empty.kinds", "fire");
    char err[512];
    assert_int_equal(config_validate(&cfg, err, sizeof err), CANARY_EINVAL);
    assert_non_null(strstr(err, "route.empty: no steps"));
    config_free(&cfg);
}

static void test_secrets_only_from_safe_sources(void **state)
{
    (void)state;
    struct canary_config cfg;
    config_init(&cfg);
    char err[512];
    const char *secrets[] = {"notify.twilio_auth_token", "notify.smtp_password",
                             "notify.webhook_secret"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(config_set(&cfg, secrets[i], "s3cret", CONFIG_SRC_FLAG, err, sizeof err),
                         CANARY_EPERM);
        assert_non_null(strstr(err, secrets[i]));
        assert_non_null(strstr(err, "is a secret"));
        assert_int_equal(
            config_set(&cfg, secrets[i], "s3cret", CONFIG_SRC_FILE_SHARED, err, sizeof err),
            CANARY_EPERM);
        assert_int_equal(config_set(&cfg, secrets[i], "s3cret", CONFIG_SRC_ENV, err, sizeof err),
                         0);
    }
    /* From a file: only one that group and others cannot read. */
    char path[] = "/tmp/canary-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "tok-from-file\n", 14), 14);
    close(fd);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(
        config_set(&cfg, "notify.twilio_auth_token_file", path, CONFIG_SRC_FLAG, err, sizeof err),
        CANARY_EPERM);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(
        config_set(&cfg, "notify.twilio_auth_token_file", path, CONFIG_SRC_FLAG, err, sizeof err),
        0);
    assert_string_equal(cfg.notify.twilio_auth_token, "tok-from-file");
    unlink(path);
    config_free(&cfg);
}

static void test_quiet_hours_windows(void **state)
{
    (void)state;
    struct config_quiet_hours q;
    char err[256];
    assert_int_equal(config_quiet_hours_parse("22:00-07:00", &q, err, sizeof err), 0);
    assert_int_equal(q.mode, 1);
    /* Across midnight: 22:00 up to (not including) 07:00. */
    assert_false(config_quiet_hours_active(&q, AT(21, 59)));
    assert_true(config_quiet_hours_active(&q, AT(22, 0)));
    assert_true(config_quiet_hours_active(&q, AT(23, 59)));
    assert_true(config_quiet_hours_active(&q, AT(0, 0)));
    assert_true(config_quiet_hours_active(&q, AT(6, 59)));
    assert_false(config_quiet_hours_active(&q, AT(7, 0)));
    assert_false(config_quiet_hours_active(&q, AT(12, 0)));
    /* Within one day. */
    assert_int_equal(config_quiet_hours_parse("12:30-13:30", &q, err, sizeof err), 0);
    assert_false(config_quiet_hours_active(&q, AT(12, 29)));
    assert_true(config_quiet_hours_active(&q, AT(12, 30)));
    assert_false(config_quiet_hours_active(&q, AT(13, 30)));
    /* A UTC offset: 22:00-07:00 at +02:00 is 20:00-05:00 UTC. */
    assert_int_equal(config_quiet_hours_parse("22:00-07:00 UTC+02:00", &q, err, sizeof err), 0);
    assert_int_equal(q.utc_offset_min, 120);
    assert_true(config_quiet_hours_active(&q, AT(20, 0)));
    assert_false(config_quiet_hours_active(&q, AT(19, 59)));
    assert_false(config_quiet_hours_active(&q, AT(5, 0)));
    assert_int_equal(config_quiet_hours_parse("22:00-07:00 -05:30", &q, err, sizeof err), 0);
    assert_int_equal(q.utc_offset_min, -330);
    assert_true(config_quiet_hours_active(&q, AT(3, 30))); /* 22:00 local */
    assert_false(config_quiet_hours_active(&q, AT(12, 30)));
    /* Before 1970 or after, the minute of the day is the same. */
    assert_true(config_quiet_hours_active(&q, AT(3, 30) - 400LL * 86400000));
    assert_int_equal(config_quiet_hours_parse("off", &q, err, sizeof err), 0);
    assert_int_equal(q.mode, 2);
    assert_false(config_quiet_hours_active(&q, AT(23, 0)));
    assert_int_equal(config_quiet_hours_parse("22:00-07:00 +15:00", &q, err, sizeof err),
                     CANARY_EINVAL);
}

static void test_plan_matching_and_steps(void **state)
{
    (void)state;
    struct canary_config cfg;
    configure(&cfg);
    struct notify_plan p;
    struct alert gas = make_alert("kitchen-2", ALERT_KIND_GAS_LEAK, SEVERITY_HIGH);

    /* Step 0: alice by SMS and e-mail (route gas), ops by webhook (route all). */
    assert_int_equal(notify_route_plan(&cfg, &gas, 0, AT(12, 0), &p), 3);
    assert_true(has(&p, "alice", NOTIFY_CHANNEL_SMS, "+4915112345678"));
    assert_true(has(&p, "alice", NOTIFY_CHANNEL_EMAIL, "alice@example.com"));
    assert_true(has(&p, "ops", NOTIFY_CHANNEL_WEBHOOK, "https://hooks.example.com/canary"));
    assert_int_equal(p.routes, 2);
    assert_true(p.more_steps);
    /* Step 1: the call; step 2: bob; step 3: nothing left. */
    assert_int_equal(notify_route_plan(&cfg, &gas, 1, AT(12, 0), &p), 1);
    assert_true(has(&p, "alice", NOTIFY_CHANNEL_VOICE, NULL));
    assert_string_equal(p.targets[0].route, "gas");
    assert_true(p.more_steps);
    assert_int_equal(notify_route_plan(&cfg, &gas, 2, AT(12, 0), &p), 2);
    assert_true(has(&p, "bob", NOTIFY_CHANNEL_SMS, "+441632960961"));
    assert_true(has(&p, "bob", NOTIFY_CHANNEL_WHATSAPP, "+441632960961"));
    assert_false(p.more_steps);
    assert_int_equal(notify_route_plan(&cfg, &gas, 3, AT(12, 0), &p), 0);
    assert_int_equal(p.routes, 2);

    /* Severity below the route's: only the catch-all route. */
    struct alert low = make_alert("kitchen-2", ALERT_KIND_GAS_LEAK, SEVERITY_MEDIUM);
    assert_int_equal(notify_route_plan(&cfg, &low, 0, AT(12, 0), &p), 1);
    assert_true(has(&p, "ops", NOTIFY_CHANNEL_WEBHOOK, NULL));
    /* Another kind, another device: likewise. */
    struct alert th = make_alert("kitchen-2", ALERT_KIND_THRESHOLD, SEVERITY_CRITICAL);
    assert_int_equal(notify_route_plan(&cfg, &th, 0, AT(12, 0), &p), 1);
    struct alert cellar = make_alert("cellar-1", ALERT_KIND_FIRE, SEVERITY_CRITICAL);
    assert_int_equal(notify_route_plan(&cfg, &cellar, 0, AT(12, 0), &p), 1);
    /* An exact device id in the list matches too. */
    struct alert boiler = make_alert("boiler-1", ALERT_KIND_FIRE, SEVERITY_CRITICAL);
    assert_int_equal(notify_route_plan(&cfg, &boiler, 0, AT(12, 0), &p), 3);
    assert_true(notify_route_matches(&cfg.routes[0], &boiler));
    assert_false(notify_route_matches(&cfg.routes[0], &cellar));

    /* Two routes naming the same recipient and channel plan it once. */
    set(&cfg, "route.dup.steps", "sms:alice+webhook:ops");
    assert_int_equal(notify_route_plan(&cfg, &gas, 0, AT(12, 0), &p), 3);
    assert_int_equal(p.routes, 3);
    /* No routes: nothing, no escalation. */
    config_free_notify(&cfg);
    assert_int_equal(notify_route_plan(&cfg, &gas, 0, AT(12, 0), &p), 0);
    assert_false(p.more_steps);
    assert_int_equal(p.routes, 0);
    config_free(&cfg);
}

static void test_plan_quiet_hours(void **state)
{
    (void)state;
    struct canary_config cfg;
    configure(&cfg);
    set(&cfg, "notify.quiet_hours", "22:00-07:00");
    set(&cfg, "recipient.ops.quiet_hours", "off"); /* the webhook never sleeps */
    set(&cfg, "recipient.bob.quiet_hours", "01:00-05:00 +01:00");
    char err[512];
    assert_int_equal(config_validate(&cfg, err, sizeof err), 0);
    struct notify_plan p;
    struct alert high = make_alert("kitchen-1", ALERT_KIND_GAS_LEAK, SEVERITY_HIGH);
    struct alert crit = make_alert("kitchen-1", ALERT_KIND_GAS_LEAK, SEVERITY_CRITICAL);

    /* 23:30 and 03:00 UTC: alice is quiet (the global window, across midnight), ops is not. */
    int64_t nights[] = {AT(23, 30), AT(3, 0)};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(notify_route_plan(&cfg, &high, 0, nights[i], &p), 1);
        assert_true(has(&p, "ops", NOTIFY_CHANNEL_WEBHOOK, NULL));
        assert_int_equal(p.quiet, 2);
        /* Critical alerts ignore quiet hours. */
        assert_int_equal(notify_route_plan(&cfg, &crit, 0, nights[i], &p), 3);
        assert_int_equal(p.quiet, 0);
    }
    /* Daytime: everyone. */
    assert_int_equal(notify_route_plan(&cfg, &high, 0, AT(7, 0), &p), 3);
    assert_int_equal(p.quiet, 0);
    /* bob's own window (01:00-05:00 at +01:00 = 00:00-04:00 UTC) replaces the global one. */
    assert_int_equal(notify_route_plan(&cfg, &high, 2, AT(23, 30), &p), 2);
    assert_int_equal(notify_route_plan(&cfg, &high, 2, AT(0, 30), &p), 0);
    assert_int_equal(p.quiet, 2);
    assert_true(p.routes > 0);
    assert_int_equal(notify_route_plan(&cfg, &crit, 2, AT(0, 30), &p), 2);
    config_free(&cfg);
}

static void test_plan_unknown_recipients(void **state)
{
    (void)state;
    /* config_validate refuses these; a plan from an unvalidated configuration skips them,
     * counts them, and still sends to everyone it can reach. */
    struct canary_config cfg;
    configure(&cfg);
    set(&cfg, "route.gas.steps", "sms:carol+sms:alice+whatsapp:alice");
    char err[512];
    assert_int_equal(config_validate(&cfg, err, sizeof err), CANARY_EINVAL);
    struct notify_plan p;
    struct alert gas = make_alert("kitchen-1", ALERT_KIND_GAS_LEAK, SEVERITY_CRITICAL);
    assert_int_equal(notify_route_plan(&cfg, &gas, 0, AT(12, 0), &p), 2);
    assert_int_equal(p.unknown, 2);
    assert_true(has(&p, "alice", NOTIFY_CHANNEL_SMS, NULL));
    assert_true(has(&p, "ops", NOTIFY_CHANNEL_WEBHOOK, NULL));
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parses_and_validates),
        cmocka_unit_test(test_config_errors_name_the_key),
        cmocka_unit_test(test_validate_relations),
        cmocka_unit_test(test_secrets_only_from_safe_sources),
        cmocka_unit_test(test_quiet_hours_windows),
        cmocka_unit_test(test_plan_matching_and_steps),
        cmocka_unit_test(test_plan_quiet_hours),
        cmocka_unit_test(test_plan_unknown_recipients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
