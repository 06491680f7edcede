/* test_compose.c — a notification's context from the store (notify/compose.c): the device's
 * name and place, the trend of the last minutes (direction, rate, and since when: a value
 * that peaked and falls back is falling, not "rising for 5 minutes"), the normal range of
 * the hour before the alert, the other sensors' values; and the message of each channel
 * (short text for SMS and calls, subject/text/HTML for e-mail, the webhook's JSON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/config.h"
#include "notify/compose.h"
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T0 1763683200000LL /* the alert opens at T0 + 60 min */

struct fixture {
    char dir[64];
    char path[128];
    struct store *s;
    struct canary_config cfg;
    struct composed c;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/canary-compose-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    struct store_options opt = {.path = f->path,
                                .busy_timeout_ms = 1000,
                                .chunk_max_readings = 512,
                                .chunk_max_span_ms = 3600000};
    char err[256];
    assert_int_equal(store_open(&f->s, &opt, err, sizeof err), 0);
    config_init(&f->cfg);
    struct store_device d = {0};
    snprintf(d.id, sizeof d.id, "kitchen-1");
    snprintf(d.name, sizeof d.name, "Kitchen sensor");
    snprintf(d.location, sizeof d.location, "Kitchen");
    snprintf(d.kind, sizeof d.kind, "kitchen");
    d.registered = true;
    assert_int_equal(store_device_create(f->s, &d, T0, err, sizeof err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    compose_free(&f->c);
    store_close(f->s);
    config_free(&f->cfg);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* One reading a second from T0 for `seconds`, gas from gas(t), temperature 21.5. */
static void write_series(struct store *s, int seconds, double (*gas)(int t))
{
    struct metric_value *v = calloc((size_t)seconds * 2, sizeof *v);
    struct reading *r = calloc((size_t)seconds, sizeof *r);
    const struct reading **rp = calloc((size_t)seconds, sizeof *rp);
    for (int t = 0; t < seconds; t++) {
        v[2 * t] = (struct metric_value){.name = "gas_ppm", .value = gas(t)};
        v[2 * t + 1] = (struct metric_value){.name = "temperature_c", .value = 21.5};
        r[t] = (struct reading){.device = "kitchen-1",
                                .seq = (uint64_t)t + 1,
                                .ts_ms = T0 + (int64_t)t * 1000,
                                .recv_ms = T0 + (int64_t)t * 1000,
                                .values = &v[2 * t],
                                .n_values = 2,
                                .has_seq = true,
                                .has_ts = true};
        rp[t] = &r[t];
    }
    struct store_batch b = {.readings = rp, .n_readings = (size_t)seconds};
    char err[256];
    assert_int_equal(store_write(s, &b, err, sizeof err), 0);
    size_t moved;
    assert_int_equal(store_compact_all(s, &moved, err, sizeof err), 0);
    free(v);
    free(r);
    free(rp);
}

/* Normal around 400 for an hour, then a leak rising 20 ppm a second for 4 minutes. */
static double rising(int t)
{
    if (t < 3600)
        return 400 + (t % 10) * 10; /* 400..490 */
    return 500 + (t - 3600) * 20.0;
}

/* The same leak peaking after 3 minutes, then falling 10 ppm a second for 2 minutes. */
static double peaked(int t)
{
    if (t < 3780)
        return rising(t);
    return rising(3780) - (t - 3780) * 10.0;
}

static struct alert leak(int64_t at_ms, double value)
{
    struct alert a;
    memset(&a, 0, sizeof a);
    a.id = 9;
    snprintf(a.device, sizeof a.device, "kitchen-1");
    snprintf(a.metric, sizeof a.metric, "gas_ppm");
    a.kind = ALERT_KIND_GAS_LEAK;
    a.severity = SEVERITY_CRITICAL;
    a.state = ALERT_STATE_OPEN;
    a.opened_ms = T0 + 3600 * 1000LL;
    a.updated_ms = at_ms;
    a.value = a.peak = value;
    a.limit = 5000;
    return a;
}

static void test_rising_leak_context(void **state)
{
    struct fixture *f = *state;
    write_series(f->s, 3600 + 240, rising);
    int64_t at = T0 + (3600 + 239) * 1000LL;
    struct alert a = leak(at, rising(3839));
    compose_explain_alert(&f->c, f->s, &f->cfg, &a, at);
    const struct explain_context *x = &f->c.ctx;
    assert_string_equal(x->device_name, "Kitchen sensor");
    assert_string_equal(x->location, "Kitchen");
    assert_true(fabs(x->rate_per_min - 1200) < 1);               /* 20 ppm a second */
    assert_true(x->trend_ms >= 239000 && x->trend_ms <= 250000); /* since its low point */
    /* Normal: 10th..90th percentile of 400..490 over the hour before. */
    assert_true(fabs(x->normal_level - 445) < 6);
    assert_true(fabs(x->normal_scale - 40) < 6);
    assert_int_equal(x->n_related, 1);
    assert_string_equal(x->related[0].metric, "temperature_c");
    assert_non_null(strstr(f->c.expl.short_text, "rising"));
    assert_non_null(strstr(f->c.expl.title, "Kitchen"));
}

static void test_peaked_leak_is_falling(void **state)
{
    struct fixture *f = *state;
    write_series(f->s, 3600 + 300, peaked);
    int64_t at = T0 + (3600 + 299) * 1000LL;
    struct alert a = leak(at, peaked(3899));
    compose_explain_alert(&f->c, f->s, &f->cfg, &a, at);
    const struct explain_context *x = &f->c.ctx;
    assert_true(x->rate_per_min < 0);
    assert_true(x->trend_ms >= 115000 && x->trend_ms <= 121000); /* since the peak */
    assert_null(strstr(f->c.expl.short_text, "rising"));
}

static void test_messages_per_channel(void **state)
{
    struct fixture *f = *state;
    write_series(f->s, 3600 + 60, rising);
    int64_t at = T0 + 3659 * 1000LL;
    struct alert a = leak(at, rising(3659));
    struct store_notification row;
    memset(&row, 0, sizeof row);
    row.id = 77;
    row.alert_id = 9;
    snprintf(row.kind, sizeof row.kind, "alert");
    snprintf(row.address, sizeof row.address, "+4915112345678");
    struct notify_payload pl = {.event = ALERT_ACTION_OPENED,
                                .cycle_ms = a.opened_ms,
                                .at_ms = at,
                                .severity = SEVERITY_CRITICAL,
                                .value = a.value,
                                .peak = a.peak};
    const char *channels[] = {"sms", "voice", "email", "webhook"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(row.channel, sizeof row.channel, "%s", channels[i]);
        compose_context(&f->c, f->s, &f->cfg, &row, &a, &pl, at + 5);
        explain_alert(&f->c.ctx, &f->c.expl);
        assert_int_equal(compose_message(&f->c, &row, at + 5), 0);
        const struct notify_message *m = &f->c.msg;
        assert_string_equal(m->idempotency_key, "canary-n-77");
        assert_string_equal(m->to, "+4915112345678");
        assert_non_null(strstr(m->text, "Gas leak"));
        if (strcmp(channels[i], "email") == 0) {
            assert_non_null(strstr(m->subject, "[canary CRITICAL] Gas leak"));
            assert_non_null(strstr(m->text_long, "What to do"));
            assert_non_null(strstr(m->html, "<html"));
        }
        if (strcmp(channels[i], "webhook") == 0) {
            assert_non_null(strstr(m->json, "\"type\":\"alert.opened\""));
            assert_non_null(strstr(m->json, "\"id\":\"canary-n-77\""));
        }
        compose_free(&f->c);
    }
    /* An escalation says "escalated" to webhooks. */
    snprintf(row.kind, sizeof row.kind, "escalation");
    compose_context(&f->c, f->s, &f->cfg, &row, &a, &pl, at + 600000);
    explain_alert(&f->c.ctx, &f->c.expl);
    assert_int_equal(compose_message(&f->c, &row, at + 600000), 0);
    assert_non_null(strstr(f->c.msg.json, "\"type\":\"alert.escalated\""));
}

static void test_unknown_device_and_no_history(void **state)
{
    struct fixture *f = *state;
    struct alert a = leak(T0, 6000);
    snprintf(a.device, sizeof a.device, "ghost-1");
    compose_explain_alert(&f->c, f->s, &f->cfg, &a, T0);
    assert_null(f->c.ctx.device_name);
    assert_true(isnan(f->c.ctx.normal_level));
    assert_int_equal(f->c.ctx.trend_ms, 0);
    assert_true(explain_check(&f->c.expl));
    assert_non_null(strstr(f->c.expl.short_text, "ghost-1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rising_leak_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peaked_leak_is_falling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_per_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_device_and_no_history, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
