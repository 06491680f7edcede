/* test_sim_mqtt.c — the pure parts of the simulator's MQTT transport (src/cli/sim_command.h):
 * reading each command, refusing bad ones with a sentence and the id when it could be read,
 * writing acks that are valid JSON whatever the id and error hold, and what a command does
 * to a device's actuators. Also the body of a --register request (src/cli/sim_register.h),
 * escaped whatever the strings hold, and which options `canary simulate --transport mqtt`
 * takes: --url only with --register. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli/commands.h"
#include "cli/sim_command.h"
#include "cli/sim_register.h"
#include "core/error.h"
#include "unit_support.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse(const char *payload, struct sim_command *c, char *err)
{
    return sim_command_parse(payload, strlen(payload), c, err, SIM_COMMAND_ERROR_MAX);
}

/* The command is refused, err holds want (a substring), and the id read is id. */
static void assert_refused(const char *payload, const char *id, const char *want)
{
    struct sim_command c;
    char err[SIM_COMMAND_ERROR_MAX] = "";
    assert_int_equal(parse(payload, &c, err), CANARY_EINVAL);
    if (strstr(err, want) == NULL)
        fail_msg("payload %s: error \"%s\" does not say \"%s\"", payload, err, want);
    assert_string_equal(c.id, id);
    for (const char *q = err; *q != '\0'; q++)
        assert_true(*q >= 0x20 && *q < 0x7f);
}

static void actuator_commands(void **state)
{
    (void)state;
    static const struct {
        const char *payload;
        enum sim_actuator actuator;
        bool on;
    } cases[] = {
        {"{\"id\":\"c-42\",\"command\":\"buzzer\",\"state\":\"on\"}", SIM_ACTUATOR_BUZZER, true},
        {"{\"id\":\"c-1\",\"command\":\"buzzer\",\"state\":\"off\"}", SIM_ACTUATOR_BUZZER, false},
        {"{\"command\":\"valve\",\"state\":\"open\",\"id\":\"v\"}", SIM_ACTUATOR_VALVE, true},
        {"{\"id\":\"v2\",\"command\":\"valve\",\"state\":\"close\",\"x\":[1]}", SIM_ACTUATOR_VALVE,
         false},
        {" {\"id\":\"r\",\"command\":\"relay\",\"state\":\"on\"} ", SIM_ACTUATOR_RELAY, true},
        {"{\"id\":\"r\",\"command\":\"relay\",\"state\":\"off\",\"value\":3}", SIM_ACTUATOR_RELAY,
         false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sim_command c;
        char err[SIM_COMMAND_ERROR_MAX] = "";
        assert_int_equal(parse(cases[i].payload, &c, err), 0);
        assert_int_equal(c.kind, SIM_COMMAND_ACTUATOR);
        assert_int_equal(c.actuator, cases[i].actuator);
        assert_int_equal(c.on, cases[i].on);
    }
    struct sim_command c;
    char err[SIM_COMMAND_ERROR_MAX];
    assert_int_equal(parse(cases[0].payload, &c, err), 0);
    assert_string_equal(c.id, "c-42");
}

static void interval_command(void **state)
{
    (void)state;
    struct sim_command c;
    char err[SIM_COMMAND_ERROR_MAX];
    assert_int_equal(parse("{\"id\":\"c-45\",\"command\":\"interval_s\",\"value\":5}", &c, err), 0);
    assert_int_equal(c.kind, SIM_COMMAND_INTERVAL);
    assert_int_equal(c.interval_s, 5);
    assert_int_equal(parse("{\"id\":\"a\",\"command\":\"interval_s\",\"value\":1}", &c, err), 0);
    assert_int_equal(c.interval_s, SIM_INTERVAL_MIN_S);
    assert_int_equal(parse("{\"id\":\"a\",\"command\":\"interval_s\",\"value\":3600.0}", &c, err),
                     0);
    assert_int_equal(c.interval_s, SIM_INTERVAL_MAX_S);
    const char *bad[] = {
        "{\"id\":\"a\",\"command\":\"interval_s\",\"value\":0}",
        "{\"id\":\"a\",\"command\":\"interval_s\",\"value\":3601}",
        "{\"id\":\"a\",\"command\":\"interval_s\",\"value\":2.5}",
        "{\"id\":\"a\",\"command\":\"interval_s\",\"value\":-5}",
        "{\"id\":\"a\",\"command\":\"interval_s\",\"value\":\"5\"}",
        "{\"id\":\"a\",\"command\":\"interval_s\"}",
        "{\"id\":\"a\",\"command\":\"interval_s\",\"value\":1e999}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_refused(bad[i], "a", "whole number of seconds from 1 to 3600");
}

static void bad_commands_are_refused_with_their_id(void **state)
{
    (void)state;
    assert_refused("{\"id\":\"c-7\",\"command\":\"siren\",\"state\":\"on\"}", "c-7",
                   "unknown command \"siren\"");
    assert_refused("{\"id\":\"c-7\",\"command\":\"buzzer\",\"state\":\"loud\"}", "c-7",
                   "state of 'buzzer' must be \"on\" or \"off\", got \"loud\"");
    assert_refused("{\"id\":\"c-7\",\"command\":\"valve\",\"state\":\"on\"}", "c-7",
                   "\"open\" or \"close\"");
    assert_refused("{\"id\":\"c-7\",\"command\":\"relay\"}", "c-7", "needs a field 'state'");
    assert_refused("{\"id\":\"c-7\",\"command\":\"relay\",\"state\":1}", "c-7",
                   "needs a field 'state'");
    assert_refused("{\"id\":\"c-7\"}", "c-7", "field 'command' must be a string");
    assert_refused("{\"id\":\"c-7\",\"command\":[\"buzzer\"]}", "c-7", "'command'");
    /* names are case-sensitive, as in the daemon */
    assert_refused("{\"id\":\"c-7\",\"command\":\"BUZZER\",\"state\":\"on\"}", "c-7",
                   "unknown command");
}

static void unreadable_payloads_get_an_empty_id(void **state)
{
    (void)state;
    assert_refused("", "", "not a JSON object");
    assert_refused("buzzer on", "", "not a JSON object");
    assert_refused("[1,2]", "", "not a JSON object");
    assert_refused("{\"id\":\"c-1\",\"command\":\"buzzer\"", "", "not a JSON object");
    assert_refused("{\"command\":\"buzzer\",\"state\":\"on\"}", "", "field 'id'");
    assert_refused("{\"id\":42,\"command\":\"buzzer\",\"state\":\"on\"}", "", "field 'id'");
    assert_refused("{\"id\":\"\",\"command\":\"buzzer\",\"state\":\"on\"}", "", "field 'id'");
    assert_refused("{\"id\":\"a\\nb\",\"command\":\"buzzer\",\"state\":\"on\"}", "",
                   "printable ASCII");
    char *long_id = test_repeat("{\"id\":\"", "x", SIM_COMMAND_ID_MAX + 1,
                                "\",\"command\":\"buzzer\",\"state\":\"on\"}");
    assert_refused(long_id, "", "1 to 64");
    free(long_id);
    char *ok_id = test_repeat("{\"id\":\"", "x", SIM_COMMAND_ID_MAX,
                              "\",\"command\":\"buzzer\",\"state\":\"on\"}");
    struct sim_command c;
    char err[SIM_COMMAND_ERROR_MAX];
    assert_int_equal(parse(ok_id, &c, err), 0);
    assert_int_equal(strlen(c.id), SIM_COMMAND_ID_MAX);
    free(ok_id);
    char *huge = test_repeat("{\"id\":\"c\",\"pad\":\"", "y", SIM_COMMAND_PAYLOAD_MAX, "\"}");
    assert_refused(huge, "", "larger than 4096 bytes");
    free(huge);
}

/* The payload is not NUL-terminated: parsing stops at len. */
static void payload_length_is_respected(void **state)
{
    (void)state;
    const char *p = "{\"id\":\"a\",\"command\":\"relay\",\"state\":\"on\"}garbage";
    struct sim_command c;
    char err[SIM_COMMAND_ERROR_MAX];
    size_t len = strlen(p) - strlen("garbage");
    assert_int_equal(sim_command_parse(p, len, &c, err, sizeof err), 0);
    assert_int_equal(sim_command_parse(p, len - 1, &c, err, sizeof err), CANARY_EINVAL);
}

/* An echoed value is cut and cleaned: the sentence stays short and plain. */
static void echoed_values_are_cut_and_cleaned(void **state)
{
    (void)state;
    char *p = test_repeat("{\"id\":\"a\",\"command\":\"", "\\u0001\\\"z", 40, "\"}");
    struct sim_command c;
    char err[SIM_COMMAND_ERROR_MAX];
    assert_int_equal(parse(p, &c, err), CANARY_EINVAL);
    assert_true(strlen(err) < SIM_COMMAND_ERROR_MAX);
    assert_non_null(strstr(err, "??z??z"));
    assert_non_null(strstr(err, "...\""));
    free(p);
}

static cJSON *parse_ack(const char *ack)
{
    cJSON *root = cJSON_Parse(ack);
    assert_non_null(root);
    assert_true(cJSON_IsObject(root));
    return root;
}

static void acks_are_the_wire_format(void **state)
{
    (void)state;
    char buf[SIM_COMMAND_ACK_MAX];
    int n = sim_command_ack("c-42", NULL, buf, sizeof buf);
    assert_string_equal(buf, "{\"id\":\"c-42\",\"status\":\"ok\"}");
    assert_int_equal(n, (int)strlen(buf));
    n = sim_command_ack("c-42", "unknown command \"x\"", buf, sizeof buf);
    assert_string_equal(
        buf, "{\"id\":\"c-42\",\"status\":\"error\",\"error\":\"unknown command \\\"x\\\"\"}");
    assert_int_equal(n, (int)strlen(buf));
    sim_command_ack("", "the command is not a JSON object", buf, sizeof buf);
    cJSON *root = parse_ack(buf);
    assert_string_equal(cJSON_GetObjectItem(root, "id")->valuestring, "");
    assert_string_equal(cJSON_GetObjectItem(root, "status")->valuestring, "error");
    cJSON_Delete(root);
    /* too small: every length short of the whole refuses, the exact one fits */
    const char *want = "{\"id\":\"c-42\",\"status\":\"ok\"}";
    for (size_t len = 0; len <= strlen(want); len++)
        assert_int_equal(sim_command_ack("c-42", NULL, buf, len), CANARY_ELIMIT);
    assert_int_equal(sim_command_ack("c-42", NULL, buf, strlen(want) + 1), (int)strlen(want));
}

/* Every refusal of a hostile payload yields an ack that fits and parses back to its id. */
static void acks_of_refusals_always_fit(void **state)
{
    (void)state;
    struct test_rng rng = {0x5eed};
    char ids[][SIM_COMMAND_ID_MAX + 1] = {"\"\\\"\\\\", "plain"};
    memset(ids[1], '"', SIM_COMMAND_ID_MAX);
    ids[1][SIM_COMMAND_ID_MAX] = '\0';
    for (int round = 0; round < 2000; round++) {
        char payload[512];
        int len = snprintf(payload, sizeof payload,
                           "{\"id\":\"c-%d\",\"command\":\"buzzer\",\"state\":\"on\"}", round);
        len = (int)test_fuzz_edit(&rng, payload, (size_t)len, sizeof payload - 1, '"', 20);
        struct sim_command c;
        char err[SIM_COMMAND_ERROR_MAX], ack[SIM_COMMAND_ACK_MAX];
        int rc = sim_command_parse(payload, (size_t)len, &c, err, sizeof err);
        for (size_t k = 0; k < 3; k++) {
            const char *id = k < 2 ? ids[k] : c.id;
            int n = sim_command_ack(id, rc != 0 ? err : NULL, ack, sizeof ack);
            assert_true(n > 0);
            cJSON *root = parse_ack(ack);
            assert_string_equal(cJSON_GetObjectItem(root, "id")->valuestring, id);
            cJSON_Delete(root);
        }
    }
}

static void apply_switches_one_actuator(void **state)
{
    (void)state;
    struct sim_actuators a;
    sim_actuators_init(&a);
    for (unsigned i = 0; i < SIM_MAX_ACTUATORS; i++)
        assert_int_equal(a.state[i], -1);
    struct sim_command c = {.kind = SIM_COMMAND_ACTUATOR, .actuator = SIM_ACTUATOR_VALVE};
    c.on = true;
    sim_command_apply(&c, &a);
    assert_int_equal(a.state[SIM_ACTUATOR_VALVE], 1);
    c.on = false;
    sim_command_apply(&c, &a);
    assert_int_equal(a.state[SIM_ACTUATOR_VALVE], 0);
    assert_int_equal(a.state[SIM_ACTUATOR_BUZZER], -1);
    assert_int_equal(a.state[SIM_ACTUATOR_RELAY], -1);
    struct sim_command iv = {.kind = SIM_COMMAND_INTERVAL, .interval_s = 9};
    sim_command_apply(&iv, &a);
    assert_int_equal(a.state[SIM_ACTUATOR_BUZZER], -1);
    assert_int_equal(a.state[SIM_ACTUATOR_VALVE], 0);
}

/* The body parses back to the three strings it was given. */
static void assert_body_round_trips(const char *name, const char *location, const char *kind)
{
    char buf[SIM_REGISTER_BODY_MAX];
    int n = sim_register_body(name, location, kind, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(n, (int)strlen(buf));
    cJSON *root = cJSON_Parse(buf);
    if (root == NULL)
        fail_msg("not JSON: %s", buf);
    assert_int_equal(cJSON_GetArraySize(root), 3);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "name")->valuestring, name);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "location")->valuestring, location);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "kind")->valuestring, kind);
    cJSON_Delete(root);
}

static void register_body_is_escaped_json(void **state)
{
    (void)state;
    char buf[SIM_REGISTER_BODY_MAX];
    int n = sim_register_body("Kitchen 1", "Site 1, kitchen", "kitchen", buf, sizeof buf);
    assert_string_equal(
        buf, "{\"name\":\"Kitchen 1\",\"location\":\"Site 1, kitchen\",\"kind\":\"kitchen\"}");
    assert_int_equal(n, (int)strlen(buf));
    sim_register_body("say \"hi\"", "back\\slash", "tab\there\nnew\x01\x1f", buf, sizeof buf);
    assert_string_equal(buf, "{\"name\":\"say \\\"hi\\\"\",\"location\":\"back\\\\slash\","
                             "\"kind\":\"tab\\u0009here\\u000anew\\u0001\\u001f\"}");
    assert_body_round_trips("say \"hi\"", "back\\slash", "tab\there\nnew\x01\x1f");
    assert_body_round_trips("", "", "");
    assert_body_round_trips("Küche 1", "Étage 2, \u2603", "\x7f");
    /* the worst case fits: 127 bytes of control characters in every string */
    char *worst = test_repeat("", "\x01", SIM_REGISTER_TEXT_MAX, "");
    assert_body_round_trips(worst, worst, worst);
    free(worst);
    /* too small: every length short of the whole refuses and leaves no partial body */
    const char *want = "{\"name\":\"a\\\"\",\"location\":\"b\",\"kind\":\"c\"}";
    for (size_t len = 0; len <= strlen(want); len++) {
        memset(buf, 'x', sizeof buf);
        assert_int_equal(sim_register_body("a\"", "b", "c", buf, len), CANARY_ELIMIT);
        if (len > 0)
            assert_int_equal(buf[0], '\0');
    }
    assert_int_equal(sim_register_body("a\"", "b", "c", buf, strlen(want) + 1), (int)strlen(want));
    assert_string_equal(buf, want);
}

/* Runs `canary simulate` in this process with the given arguments (NULL-terminated) and
 * returns its exit status; out receives what it wrote on stdout and stderr. */
static int simulate(char *out, size_t len, ...)
{
    char *argv[32] = {"simulate"};
    int argc = 1;
    va_list ap;
    va_start(ap, len);
    for (char *a; argc < 31 && (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    fflush(stdout);
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved_out = dup(1), saved_err = dup(2);
    assert_true(saved_out >= 0 && saved_err >= 0);
    assert_true(dup2(fileno(tmp), 1) >= 0 && dup2(fileno(tmp), 2) >= 0);
    int rc = cmd_simulate(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    rewind(tmp);
    size_t n = fread(out, 1, len - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return rc;
}

static void assert_says(const char *out, const char *want)
{
    if (strstr(out, want) == NULL)
        fail_msg("expected \"%s\" in:\n%s", want, out);
}

static void url_with_mqtt_needs_register(void **state)
{
    (void)state;
    char out[4096];
    const char *why = "--url with --transport mqtt only says where --register names the devices "
                      "(readings go to --broker): add --register, or drop --url";
    assert_int_equal(
        simulate(out, sizeof out, "--transport", "mqtt", "--url", "http://127.0.0.1:8080", NULL),
        2);
    assert_says(out, why);
    assert_says(out, "see canary simulate --help");
    /* the order of the options does not matter */
    assert_int_equal(simulate(out, sizeof out, "--url=http://127.0.0.1:8080", "--devices", "2",
                              "--transport=mqtt", NULL),
                     2);
    assert_says(out, why);
    /* with --register the URL is checked like over HTTP */
    assert_int_equal(simulate(out, sizeof out, "--transport", "mqtt", "--register", "--url",
                              "ftp://127.0.0.1", NULL),
                     2);
    assert_says(out, "--url must be an http:// or https:// URL with a host");
    /* the HTTP-only options stay HTTP-only */
    assert_int_equal(simulate(out, sizeof out, "--transport", "mqtt", "--register", "--url",
                              "http://127.0.0.1:8080", "--batch", "5", NULL),
                     2);
    assert_says(out, "--batch is for --transport http");
    assert_int_equal(simulate(out, sizeof out, "--connections", "3", "--transport", "mqtt", NULL),
                     2);
    assert_says(out, "--connections is for --transport http");
    /* --register with --url is accepted: the run starts (and fails, no broker on port 1),
     * and its summary carries the registration counts */
    assert_int_equal(simulate(out, sizeof out, "--transport", "mqtt", "--register", "--url",
                              "http://127.0.0.1:1", "--broker", "127.0.0.1:1", "--devices", "1",
                              "--duration", "0.2", "--drain", "0", "--quiet", NULL),
                     1);
    assert_says(out, "simulate: transport=mqtt devices=1 ");
    assert_says(out, " registered=0 register_404=0 register_failed=0\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(actuator_commands),
        cmocka_unit_test(interval_command),
        cmocka_unit_test(bad_commands_are_refused_with_their_id),
        cmocka_unit_test(unreadable_payloads_get_an_empty_id),
        cmocka_unit_test(payload_length_is_respected),
        cmocka_unit_test(echoed_values_are_cut_and_cleaned),
        cmocka_unit_test(acks_are_the_wire_format),
        cmocka_unit_test(acks_of_refusals_always_fit),
        cmocka_unit_test(apply_switches_one_actuator),
        cmocka_unit_test(register_body_is_escaped_json),
        cmocka_unit_test(url_with_mqtt_needs_register),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
