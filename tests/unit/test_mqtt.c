/* test_mqtt.c — unit tests of the MQTT side's pure parts: the topic contract, the
 * crash-safe journal (replay, torn tails, release), commands and action rules, the event
 * rate limit. The broker-facing behaviour is tested in tests/integration/test_mqtt.c. */
#include "core/command.h"
#include "core/error.h"
#include "core/rate_limit.h"
#include "decide/action.h"
#include "mqtt/journal.h"
#include "mqtt/mqtt_topic.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static void assert_topic(const char *topic, enum mqtt_topic_kind kind, const char *device)
{
    struct mqtt_topic t;
    mqtt_topic_parse("canary", "homeassistant", topic, 64, &t);
    assert_int_equal(t.kind, kind);
    if (device != NULL) {
        assert_int_equal(t.device_len, strlen(device));
        assert_memory_equal(t.device, device, t.device_len);
    }
    if (kind == TOPIC_INVALID)
        assert_non_null(t.error);
}

static void test_topics(void **state)
{
    (void)state;
    assert_topic("canary/kitchen-1/up", TOPIC_UP, "kitchen-1");
    assert_topic("canary/kitchen-1/status", TOPIC_STATUS, "kitchen-1");
    assert_topic("canary/a.b:c_d-1/cmd/ack", TOPIC_CMD_ACK, "a.b:c_d-1");
    assert_topic("canary/kitchen-1/cmd", TOPIC_IGNORED, NULL);
    assert_topic("canary/kitchen-1/state", TOPIC_IGNORED, NULL);
    assert_topic("homeassistant/status", TOPIC_HA_STATUS, NULL);
    assert_topic("other/kitchen-1/up", TOPIC_IGNORED, NULL);
    assert_topic("canaryx/kitchen-1/up", TOPIC_IGNORED, NULL);
    /* Hostile or malformed shapes under our prefix are refused with a reason. */
    assert_topic("canary/kitchen-1", TOPIC_INVALID, NULL);
    assert_topic("canary//up", TOPIC_INVALID, NULL);
    assert_topic("canary/kitchen 1/up", TOPIC_INVALID, NULL);
    assert_topic("canary/kitchen-1/up/extra", TOPIC_INVALID, NULL);
    assert_topic("canary/kitchen-1/", TOPIC_INVALID, NULL);
    char long_topic[200];
    snprintf(long_topic, sizeof long_topic, "canary/%0100d/up", 7);
    assert_topic(long_topic, TOPIC_INVALID, NULL);
}

struct collected {
    uint64_t seqnos[64];
    char payloads[64][32];
    size_t n;
};

static int collect(void *arg, const struct journal_record *r)
{
    struct collected *c = arg;
    assert_true(c->n < 64);
    c->seqnos[c->n] = r->seqno;
    snprintf(c->payloads[c->n], 32, "%.*s", (int)r->payload_len, r->payload);
    assert_int_equal(r->topic_len, strlen("canary/d/up"));
    assert_memory_equal(r->topic, "canary/d/up", r->topic_len);
    c->n++;
    return 0;
}

static void journal_dir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/canary-journal-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static size_t count_segments(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^j\\.' || true", dir);
    FILE *f = popen(cmd, "r");
    size_t n = 0;
    assert_int_equal(fscanf(f, "%zu", &n), 1);
    pclose(f);
    return n;
}

static void append(struct journal *j, const char *payload, uint64_t *seqno)
{
    assert_int_equal(journal_append(j, "canary/d/up", 11, payload, strlen(payload), 1000, 1, seqno),
                     0);
}

static void test_journal_replays_what_was_not_released(void **state)
{
    (void)state;
    char dir[64], path[128], err[256];
    journal_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/j", dir);
    struct journal *j;
    assert_int_equal(journal_open(&j, path, 4096, err, sizeof err), 0);
    uint64_t s = 0;
    for (int i = 0; i < 10; i++) {
        char p[32];
        snprintf(p, sizeof p, "{\"seq\":%d}", i);
        append(j, p, &s);
        assert_int_equal(s, (uint64_t)i + 1);
    }
    journal_release(j, 4);
    /* A crash: the handle is dropped without a clean close (the fd is left to the OS). */
    struct journal *j2;
    assert_int_equal(journal_open(&j2, path, 4096, err, sizeof err), 0);
    assert_int_equal(journal_last_seqno(j2), 10);
    struct collected c = {.n = 0};
    assert_int_equal(journal_replay(j2, collect, &c, err, sizeof err), 0);
    /* One segment: release does not split it, so all ten come back (the pipeline's
     * duplicate check drops the ones already stored). */
    assert_int_equal(c.n, 10);
    assert_int_equal(c.seqnos[0], 1);
    assert_string_equal(c.payloads[9], "{\"seq\":9}");
    /* New records continue the numbering; releasing everything and closing leaves nothing. */
    append(j2, "{\"seq\":10}", &s);
    assert_int_equal(s, 11);
    journal_release(j2, 11);
    journal_close(j2);
    assert_int_equal(count_segments(dir), 0);
    journal_close(j);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_journal_torn_tail_and_rotation(void **state)
{
    (void)state;
    char dir[64], path[128], err[256];
    journal_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/j", dir);
    struct journal *j;
    assert_int_equal(journal_open(&j, path, 4096, err, sizeof err), 0);
    uint64_t s = 0;
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 20; i++)
        append(j, big, &s); /* ~12 KB: several 4 KB segments */
    assert_true(count_segments(dir) >= 3);
    journal_release(j, 14);
    size_t left = count_segments(dir);
    assert_true(left >= 1 && left < 4);
    journal_close(j);
    /* Tear the newest segment's last record in half, as a crash mid-write would. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "f=$(ls %s/j.* | sort | tail -1); truncate -s -300 $f", dir);
    assert_int_equal(system(cmd), 0);
    struct journal *j2;
    assert_int_equal(journal_open(&j2, path, 4096, err, sizeof err), 0);
    struct collected c = {.n = 0};
    char small[32];
    (void)small;
    struct journal_stats st;
    journal_get_stats(j2, &st);
    assert_int_equal(st.torn, 1);
    assert_true(st.replayed >= 1 && st.replayed < 20);
    journal_close(j2);
    /* Garbage in place of a segment is reported, never a crash. */
    snprintf(cmd, sizeof cmd, "head -c 5000 /dev/urandom > %s/j.00000000000000ff", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(journal_open(&j2, path, 4096, err, sizeof err), 0);
    journal_get_stats(j2, &st);
    assert_true(st.torn >= 1);
    journal_close(j2);
    (void)c;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_commands(void **state)
{
    (void)state;
    char err[160];
    const char *field = NULL;
    assert_int_equal(command_check("buzzer", "on", 0, false, err, sizeof err, &field), 0);
    assert_int_equal(command_check("valve", "close", 0, false, err, sizeof err, &field), 0);
    assert_int_equal(command_check("interval_s", NULL, 5, true, err, sizeof err, &field), 0);
    assert_int_equal(command_check("siren", "on", 0, false, err, sizeof err, &field), -1);
    assert_string_equal(field, "command");
    assert_int_equal(command_check("valve", "on", 0, false, err, sizeof err, &field), -1);
    assert_string_equal(field, "state");
    assert_int_equal(command_check("interval_s", NULL, 0, true, err, sizeof err, &field), -1);
    assert_string_equal(field, "value");
    assert_int_equal(command_check("interval_s", NULL, 2.5, true, err, sizeof err, &field), -1);
    assert_int_equal(command_check("buzzer", "on", 1, true, err, sizeof err, &field), -1);
    assert_string_equal(field, "value");
    struct device_command c = {.id = 42};
    snprintf(c.command, sizeof c.command, "valve");
    snprintf(c.state, sizeof c.state, "close");
    char json[COMMAND_JSON_MAX];
    assert_true(command_json(&c, json, sizeof json) > 0);
    assert_string_equal(json, "{\"id\":\"c-42\",\"command\":\"valve\",\"state\":\"close\"}");
    snprintf(c.command, sizeof c.command, "interval_s");
    c.value = 5;
    assert_true(command_json(&c, json, sizeof json) > 0);
    assert_string_equal(json, "{\"id\":\"c-42\",\"command\":\"interval_s\",\"value\":5}");
    assert_int_equal(command_json(&c, json, 10), -1);
    uint64_t id;
    assert_int_equal(command_id_parse("c-42", &id), 0);
    assert_int_equal(id, 42);
    const char *bad[] = {"", "c-", "42", "c-0", "c-4x", "c--1", "c-99999999999999999999999", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(command_id_parse(bad[i], &id), -1);
}

static void test_action_rules(void **state)
{
    (void)state;
    struct action_rule r;
    char err[256];
    assert_int_equal(action_rule_parse(" critical: buzzer=on , valve=close ", &r, err, sizeof err),
                     0);
    assert_true(r.set);
    assert_int_equal(r.min_severity, SEVERITY_CRITICAL);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.commands[1].command, "valve");
    assert_string_equal(r.commands[1].state, "close");
    assert_int_equal(action_rule_parse("high: interval_s=5", &r, err, sizeof err), 0);
    assert_true(r.commands[0].value == 5);
    assert_int_equal(action_rule_parse("", &r, err, sizeof err), 0);
    assert_false(r.set);
    const char *bad[] = {"buzzer=on",
                         "loud: buzzer=on",
                         "high:",
                         "high: buzzer",
                         "high: buzzer=up",
                         "high: interval_s=x",
                         "high: a=1,b=2,c=3,d=4,e=5",
                         NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(action_rule_parse(bad[i], &r, err, sizeof err), -1);

    struct canary_config cfg;
    config_init(&cfg);
    struct action_rules rules;
    assert_int_equal(action_rules_load(&cfg, &rules, err, sizeof err), 0);
    assert_non_null(action_rules_match(&rules, ALERT_KIND_GAS_LEAK, SEVERITY_CRITICAL));
    assert_null(action_rules_match(&rules, ALERT_KIND_GAS_LEAK, SEVERITY_HIGH));
    assert_null(action_rules_match(&rules, ALERT_KIND_ANOMALY, SEVERITY_CRITICAL));
    snprintf(cfg.actions.threshold, sizeof cfg.actions.threshold, "high: relay=maybe");
    assert_int_equal(action_rules_load(&cfg, &rules, err, sizeof err), -1);
    assert_non_null(strstr(err, "actions.threshold"));
    config_free(&cfg);
}

static void test_rate_limit(void **state)
{
    (void)state;
    struct rate_limit r;
    rate_limit_init(&r, 10, 5, 0);
    int passed = 0;
    for (int i = 0; i < 100; i++)
        passed += rate_limit_allow(&r, 0);
    assert_int_equal(passed, 5);
    assert_int_equal(rate_limit_take_suppressed(&r), 95);
    assert_int_equal(rate_limit_take_suppressed(&r), 0);
    passed = 0;
    for (int i = 0; i < 100; i++)
        passed += rate_limit_allow(&r, 1000); /* a second later: 10 more, capped at 5 */
    assert_int_equal(passed, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_journal_replays_what_was_not_released),
        cmocka_unit_test(test_journal_torn_tail_and_rotation),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_action_rules),
        cmocka_unit_test(test_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
